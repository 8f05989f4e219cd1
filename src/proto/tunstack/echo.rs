//! TCP echo on [`ECHO_PORT`](super::ECHO_PORT) (RFC 862 over TCP): every
//! byte received is sent back; when the peer shuts its write half down,
//! what is still buffered is sent and then the connection closes.
//!
//! Owns one connection's echo buffer, bounded by [`MAX_ECHO_BUFFER`]. It
//! must never hold more: past the bound it stops reading
//! ([`Driven::wants_input`]), so a peer that writes without reading is
//! slowed by TCP's own window rather than by our memory.

use crate::proto::{CloseReason, Context, Driven, StreamAcceptor, StreamInput, StreamSession};
use bytes::BytesMut;
use std::net::SocketAddr;

/// Most bytes received and not yet echoed: a receive window's worth for a
/// fast local peer (the engine's own buffers hold the rest), small enough
/// that thousands of echo connections cost little.
pub const MAX_ECHO_BUFFER: usize = 64 * 1024;

/// One echo connection.
#[derive(Debug, Default)]
pub struct EchoSession {
    buf: BytesMut,
    /// The peer shut its write half down: close once `buf` is sent.
    ended: bool,
    /// The connection failed: nothing more to do.
    failed: bool,
}

impl Driven for EchoSession {
    fn poll_close(&mut self) -> Option<CloseReason> {
        if self.failed {
            Some(CloseReason::PeerClosed)
        } else if self.ended && self.buf.is_empty() {
            Some(CloseReason::Completed)
        } else {
            None
        }
    }

    fn wants_input(&self) -> bool {
        self.buf.len() < MAX_ECHO_BUFFER
    }
}

impl StreamSession for EchoSession {
    fn handle_input(&mut self, _cx: &mut Context, input: StreamInput<'_>) {
        match input {
            StreamInput::Bytes(b) => self.buf.extend_from_slice(b),
            StreamInput::End => self.ended = true,
            StreamInput::Failed(_) => self.failed = true,
        }
    }

    fn poll_transmit(
        &mut self,
        _cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        let n = limit.min(self.buf.len());
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&self.buf.split_to(n));
        Some(n)
    }
}

/// Makes an [`EchoSession`] for every connection.
#[derive(Debug, Default)]
pub struct EchoAcceptor;

impl Driven for EchoAcceptor {}

impl StreamAcceptor for EchoAcceptor {
    fn accept(&mut self, _cx: &mut Context, _peer: SocketAddr) -> Option<Box<dyn StreamSession>> {
        Some(Box::new(EchoSession::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testing::{at, drain_tx, feed};

    fn peer() -> SocketAddr {
        "192.0.2.2:40000".parse().unwrap()
    }

    #[test]
    fn echoes_and_closes_only_after_the_last_byte_after_end() {
        let mut s = EchoSession::default();
        feed(&mut s, at(0), peer(), StreamInput::Bytes(b"hello"));
        feed(&mut s, at(0), peer(), StreamInput::End);
        assert_eq!(s.poll_close(), None, "bytes still to echo");
        assert_eq!(drain_tx(&mut s, at(0)), b"hello");
        assert_eq!(s.poll_close(), Some(CloseReason::Completed));
    }

    #[test]
    fn stops_reading_at_its_bound() {
        let mut s = EchoSession::default();
        feed(
            &mut s,
            at(0),
            peer(),
            StreamInput::Bytes(&vec![7; MAX_ECHO_BUFFER]),
        );
        assert!(!s.wants_input());
        let mut cx = crate::proto::testing::cx(at(0), None);
        let mut out = BytesMut::new();
        assert_eq!(s.poll_transmit(&mut cx, 10, &mut out), Some(10));
        assert!(s.wants_input());
    }
}
