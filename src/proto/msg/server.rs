//! The msg server: counts frames, answers receipts.
//!
//! Owns the per-connection frame state machine. A frame's body is counted
//! and dropped as it arrives, so a 64 MiB message costs no memory; a length
//! above `msg_max` is answered `ERR too large <max>` and the connection
//! closes (the rest of the input is ignored).

use crate::proto::{
    Acceptor, Admission, CloseReason, Context, Input, Request, Session, Side, Transmit,
};
use crate::time::Instant;
use crate::wire::msg::{Answer, FrameHeader, HEADER_LEN};
use bytes::BytesMut;
use log::debug;
use std::net::SocketAddr;

/// Answers not yet handed to the reactor beyond which reading pauses (a
/// client that never reads its receipts cannot make the server buffer).
const OUT_HIGH_WATER: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
enum State {
    /// Collecting the 4-byte length.
    Header {
        bytes: [u8; HEADER_LEN],
        have: usize,
    },
    /// Counting the body: `remaining` of `len` still to come.
    Body { len: u32, remaining: u32 },
    /// Refused or finished: input is ignored.
    Closed,
}

/// One msg connection.
#[derive(Debug)]
pub struct MsgStream {
    max: u32,
    state: State,
    out: BytesMut,
    frames: u64,
    close: Option<CloseReason>,
}

impl MsgStream {
    /// A connection that accepts frames of at most `max` payload bytes.
    pub fn new(max: u32) -> Self {
        Self {
            max,
            state: State::Header {
                bytes: [0; HEADER_LEN],
                have: 0,
            },
            out: BytesMut::new(),
            frames: 0,
            close: None,
        }
    }

    fn frame_done(&mut self, len: u32) {
        self.frames += 1;
        Answer::Ok(u64::from(len)).emit_frame(&mut self.out);
        self.state = State::Header {
            bytes: [0; HEADER_LEN],
            have: 0,
        };
    }
}

impl Session for MsgStream {
    fn side(&self) -> Side {
        Side::Server
    }

    fn handle_input(&mut self, cx: &mut Context<'_>, input: Input<'_>) {
        let mut bytes = match input {
            Input::Stream(bytes) => bytes,
            Input::StreamEnd => {
                if !matches!(self.state, State::Closed) {
                    self.state = State::Closed;
                    self.close = Some(CloseReason::PeerClosed);
                }
                return;
            }
            Input::Failed(_) => {
                self.state = State::Closed;
                self.close = Some(CloseReason::Aborted);
                return;
            }
            Input::Datagram { .. } => return,
        };
        while !bytes.is_empty() {
            match &mut self.state {
                State::Closed => return,
                State::Header {
                    bytes: header,
                    have,
                } => {
                    let take = (HEADER_LEN - *have).min(bytes.len());
                    header[*have..*have + take].copy_from_slice(&bytes[..take]);
                    *have += take;
                    bytes = &bytes[take..];
                    if *have < HEADER_LEN {
                        continue;
                    }
                    let len = FrameHeader::parse(header).map_or(0, |h| h.len);
                    if len > self.max {
                        debug!("{} frame of {len} bytes refused (max {})", cx.tag, self.max);
                        Answer::TooLarge(u64::from(self.max)).emit_frame(&mut self.out);
                        self.state = State::Closed;
                        self.close = Some(CloseReason::Protocol("frame too large"));
                        return;
                    }
                    if len == 0 {
                        self.frame_done(0);
                    } else {
                        self.state = State::Body {
                            len,
                            remaining: len,
                        };
                    }
                }
                State::Body { len, remaining } => {
                    let take = (*remaining as usize).min(bytes.len());
                    // Counted, not kept.
                    *remaining -= take as u32;
                    bytes = &bytes[take..];
                    if *remaining == 0 {
                        let len = *len;
                        self.frame_done(len);
                    }
                }
            }
        }
    }

    fn handle_timeout(&mut self, _cx: &mut Context<'_>) {}

    fn poll_transmit(
        &mut self,
        _cx: &mut Context<'_>,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        if self.out.is_empty() || limit == 0 {
            return None;
        }
        let len = self.out.len().min(limit);
        buf.extend_from_slice(&self.out.split_to(len));
        Some(Transmit { to: None, len })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_request(&mut self) -> Option<Request> {
        self.close.take().map(Request::Close)
    }

    fn wants_input(&self) -> bool {
        self.out.len() < OUT_HIGH_WATER
    }
}

/// The acceptor on msg's TCP listener (msg has no UDP side).
#[derive(Debug)]
pub struct MsgAcceptor {
    max: u32,
}

impl MsgAcceptor {
    /// Frames above `max` payload bytes are refused.
    pub fn new(max: u32) -> Self {
        Self { max }
    }
}

impl Acceptor for MsgAcceptor {
    fn accept_stream(
        &mut self,
        _cx: &mut Context<'_>,
        _peer: SocketAddr,
    ) -> Option<Box<dyn Session>> {
        Some(Box::new(MsgStream::new(self.max)))
    }

    fn accept_datagram(
        &mut self,
        _: &mut Context<'_>,
        _: SocketAddr,
        _: &[u8],
        _: &mut BytesMut,
    ) -> Admission {
        Admission::Ignore
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testing::{at, drain_requests, drain_tx, feed, shared};
    use crate::time::Duration;
    use crate::wire::msg::emit_frame;

    fn peer() -> SocketAddr {
        "127.0.0.1:7777".parse().unwrap()
    }

    fn frames(bytes: &[u8]) -> Vec<Answer> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = FrameHeader::parse(rest).unwrap().len as usize;
            out.push(Answer::parse(&rest[HEADER_LEN..HEADER_LEN + len]).unwrap());
            rest = &rest[HEADER_LEN + len..];
        }
        out
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut b = BytesMut::new();
        emit_frame(&vec![7u8; len], &mut b).unwrap();
        b.to_vec()
    }

    #[test]
    fn receipts_for_several_frames_of_any_size() {
        let mut sh = shared(Duration::from_secs(1), 1);
        let mut s = MsgStream::new(1 << 20);
        let mut wire = Vec::new();
        for len in [0, 1, 65_536] {
            wire.extend(frame(len));
        }
        feed(&mut s, &mut sh, at(0), peer(), Input::Stream(&wire));
        assert_eq!(
            frames(&drain_tx(&mut s, &mut sh, at(0))),
            vec![Answer::Ok(0), Answer::Ok(1), Answer::Ok(65_536)]
        );
        assert!(drain_requests(&mut s).is_empty());
    }

    #[test]
    fn a_frame_written_one_byte_at_a_time() {
        let mut sh = shared(Duration::from_secs(1), 1);
        let mut s = MsgStream::new(1 << 20);
        for b in frame(300) {
            feed(&mut s, &mut sh, at(0), peer(), Input::Stream(&[b]));
        }
        assert_eq!(
            frames(&drain_tx(&mut s, &mut sh, at(0))),
            vec![Answer::Ok(300)]
        );
    }

    #[test]
    fn oversize_length_is_refused_and_closes_without_reading_the_body() {
        let mut sh = shared(Duration::from_secs(1), 1);
        let mut s = MsgStream::new(100);
        let mut wire = frame(101);
        wire.extend(frame(5));
        feed(&mut s, &mut sh, at(0), peer(), Input::Stream(&wire));
        assert_eq!(
            frames(&drain_tx(&mut s, &mut sh, at(0))),
            vec![Answer::TooLarge(100)]
        );
        assert_eq!(
            drain_requests(&mut s),
            vec![Request::Close(CloseReason::Protocol("frame too large"))]
        );
        // The limit itself is fine.
        let mut s = MsgStream::new(100);
        feed(&mut s, &mut sh, at(0), peer(), Input::Stream(&frame(100)));
        assert_eq!(
            frames(&drain_tx(&mut s, &mut sh, at(0))),
            vec![Answer::Ok(100)]
        );
    }

    #[test]
    fn a_huge_frame_costs_no_memory() {
        let mut sh = shared(Duration::from_secs(1), 1);
        let mut s = MsgStream::new(u32::MAX);
        feed(
            &mut s,
            &mut sh,
            at(0),
            peer(),
            Input::Stream(&(10u32 << 20).to_be_bytes()),
        );
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..160 {
            feed(&mut s, &mut sh, at(0), peer(), Input::Stream(&chunk));
        }
        assert_eq!(
            frames(&drain_tx(&mut s, &mut sh, at(0))),
            vec![Answer::Ok(10 << 20)]
        );
        assert!(s.out.capacity() < 1024);
    }

    #[test]
    fn eof_mid_frame_closes_quietly() {
        let mut sh = shared(Duration::from_secs(1), 1);
        let mut s = MsgStream::new(100);
        feed(
            &mut s,
            &mut sh,
            at(0),
            peer(),
            Input::Stream(&frame(50)[..20]),
        );
        feed(&mut s, &mut sh, at(0), peer(), Input::StreamEnd);
        assert_eq!(drain_tx(&mut s, &mut sh, at(0)), b"");
        assert_eq!(
            drain_requests(&mut s),
            vec![Request::Close(CloseReason::PeerClosed)]
        );
    }
}
