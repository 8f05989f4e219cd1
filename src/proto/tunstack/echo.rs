//! TCP echo on [`ECHO_PORT`](super::ECHO_PORT) (RFC 862 over TCP): every
//! byte received is sent back; when the peer shuts its write half down,
//! what is still buffered is sent and then the connection closes.
//!
//! Owns one connection's echo buffer, bounded by [`MAX_ECHO_BUFFER`], and
//! its idle limit (the project's `tcp_idle_timeout`, [`crate::proto::idle`]:
//! a forgotten `nc` does not hold its connection for ever). It must never
//! hold more: past the bound it stops reading ([`Driven::wants_input`]), so
//! a peer that writes without reading is slowed by TCP's own window rather
//! than by our memory.

use crate::proto::idle::{IdleTimer, TcpTimeouts};
use crate::proto::{
    CloseReason, Context, Driven, StreamAcceptor, StreamInput, StreamSession, Wake,
};
use crate::time::Instant;
use bytes::BytesMut;
use std::net::SocketAddr;

/// Most bytes received and not yet echoed: a receive window's worth for a
/// fast local peer (the engine's own buffers hold the rest), small enough
/// that thousands of echo connections cost little.
pub const MAX_ECHO_BUFFER: usize = 64 * 1024;

/// One echo connection.
#[derive(Debug)]
pub struct EchoSession {
    buf: BytesMut,
    timer: IdleTimer,
    /// The idle limit ended it.
    expired: bool,
    /// The peer shut its write half down: close once `buf` is sent.
    ended: bool,
    /// The connection failed: nothing more to do.
    failed: bool,
}

impl EchoSession {
    /// A connection accepted at `now`, closed after `timeouts.idle`
    /// without progress (echo has no requests: only the idle limit).
    pub fn new(now: Instant, timeouts: TcpTimeouts) -> Self {
        let mut timer = IdleTimer::new(now, timeouts);
        timer.end_request();
        Self {
            buf: BytesMut::new(),
            timer,
            expired: false,
            ended: false,
            failed: false,
        }
    }
}

impl Driven for EchoSession {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if !self.expired && self.timer.on_timeout(cx.now).is_some() {
            log::debug!("{} echo idle: closing", cx.tag);
            self.expired = true;
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.expired {
            None
        } else {
            self.timer.poll_timeout()
        }
    }

    /// The idle limit may fire a little late, never early.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        if self.expired {
            Some(CloseReason::TimedOut { tries: 1 })
        } else if self.failed {
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
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        match input {
            StreamInput::Bytes(b) => {
                self.timer.touch(cx.now);
                self.buf.extend_from_slice(b);
            }
            StreamInput::End => self.ended = true,
            StreamInput::Failed(_) => self.failed = true,
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        let n = limit.min(self.buf.len());
        if n == 0 {
            return None;
        }
        self.timer.touch(cx.now);
        buf.extend_from_slice(&self.buf.split_to(n));
        Some(n)
    }
}

/// Makes an [`EchoSession`] for every connection.
#[derive(Debug, Default)]
pub struct EchoAcceptor {
    timeouts: TcpTimeouts,
}

impl EchoAcceptor {
    /// Sessions with the idle limit of `timeouts`.
    pub fn new(timeouts: TcpTimeouts) -> Self {
        Self { timeouts }
    }
}

impl Driven for EchoAcceptor {}

impl StreamAcceptor for EchoAcceptor {
    fn accept(&mut self, cx: &mut Context, _peer: SocketAddr) -> Option<Box<dyn StreamSession>> {
        Some(Box::new(EchoSession::new(cx.now, self.timeouts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testing::{at, drain_tx, feed};

    fn peer() -> SocketAddr {
        "192.0.2.2:40000".parse().unwrap()
    }

    fn session() -> EchoSession {
        EchoSession::new(at(0), TcpTimeouts::default())
    }

    #[test]
    fn echoes_and_closes_only_after_the_last_byte_after_end() {
        let mut s = session();
        feed(&mut s, at(0), peer(), StreamInput::Bytes(b"hello"));
        feed(&mut s, at(0), peer(), StreamInput::End);
        assert_eq!(s.poll_close(), None, "bytes still to echo");
        assert_eq!(drain_tx(&mut s, at(0)), b"hello");
        assert_eq!(s.poll_close(), Some(CloseReason::Completed));
    }

    #[test]
    fn stops_reading_at_its_bound() {
        let mut s = session();
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

    #[test]
    fn an_idle_connection_closes_at_the_idle_limit_and_not_before() {
        let idle = TcpTimeouts::default().idle;
        let mut s = session();
        feed(&mut s, at(1_000), peer(), StreamInput::Bytes(b"x"));
        let _ = drain_tx(&mut s, at(1_000));
        let mut cx = crate::proto::testing::cx(at(0), None);
        // The deadline reported may be early; firing it there does not close.
        for _ in 0..10 {
            let Some(t) = s.poll_timeout() else { break };
            cx.now = t;
            s.handle_timeout(&mut cx);
            if s.poll_close().is_some() {
                break;
            }
        }
        assert_eq!(cx.now, at(1_000) + idle, "idle from the last progress");
        assert_eq!(s.poll_close(), Some(CloseReason::TimedOut { tries: 1 }));
    }
}
