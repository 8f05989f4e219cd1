//! The msg server: counts frames, answers receipts.
//!
//! Owns the per-connection frame state machine. A frame's body is counted
//! and dropped as it arrives, so a 64 MiB message costs no memory; a length
//! above `msg_max` is answered `ERR too large <max>` and the connection
//! closes (the rest of the input is ignored).
//!
//! Time limits follow [`crate::proto::idle`]: a frame header is the
//! request (its 4 bytes must arrive within `request` of its first byte,
//! the first frame's from accept); a body only has to make progress.

use crate::proto::idle::{IdleTimer, TcpTimeouts};
use crate::proto::{
    CloseReason, Context, Driven, StreamAcceptor, StreamInput, StreamSession, Wake,
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
    /// Idle and header clocks.
    timer: IdleTimer,
}

impl MsgStream {
    /// A connection accepted at `now` that accepts frames of at most `max`
    /// payload bytes, under the limits of `timeouts`.
    pub fn new(max: u32, now: Instant, timeouts: TcpTimeouts) -> Self {
        Self {
            max,
            state: State::Header {
                bytes: [0; HEADER_LEN],
                have: 0,
            },
            out: BytesMut::new(),
            frames: 0,
            close: None,
            timer: IdleTimer::new(now, timeouts),
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

impl Driven for MsgStream {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if let Some(expired) = self.timer.on_timeout(cx.now) {
            debug!("{} {}: closing", cx.tag, expired.as_str());
            self.state = State::Closed;
            self.close = Some(CloseReason::TimedOut { tries: 1 });
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.state, State::Closed) {
            None
        } else {
            self.timer.poll_timeout()
        }
    }

    /// The idle and header limits may fire a little late, never early.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }

    fn wants_input(&self) -> bool {
        self.out.len() < OUT_HIGH_WATER
    }
}

impl StreamSession for MsgStream {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        let bytes = match input {
            StreamInput::Bytes(bytes) => bytes,
            StreamInput::End => {
                if !matches!(self.state, State::Closed) {
                    self.state = State::Closed;
                    self.close = Some(CloseReason::PeerClosed);
                }
                return;
            }
            StreamInput::Failed(_) => {
                self.state = State::Closed;
                self.close = Some(CloseReason::Aborted);
                return;
            }
        };
        if bytes.is_empty() {
            return;
        }
        self.timer.touch(cx.now);
        self.read_frames(cx, bytes);
        // A header begun and not finished runs the request clock.
        if let State::Header { have: 1.., .. } = self.state {
            self.timer.begin_request(cx.now);
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        if self.out.is_empty() || limit == 0 {
            return None;
        }
        let len = self.out.len().min(limit);
        buf.extend_from_slice(&self.out.split_to(len));
        self.timer.touch(cx.now);
        Some(len)
    }
}

impl MsgStream {
    /// Counts `bytes` into frames, answering each complete one.
    fn read_frames(&mut self, cx: &Context, mut bytes: &[u8]) {
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
                    self.timer.end_request();
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
                    let take = u32::try_from(bytes.len()).map_or(*remaining, |n| n.min(*remaining));
                    // Counted, not kept.
                    *remaining -= take;
                    bytes = &bytes[take as usize..];
                    if *remaining == 0 {
                        let len = *len;
                        self.frame_done(len);
                    }
                }
            }
        }
    }
}

/// The acceptor on msg's TCP listener (msg has no UDP side).
#[derive(Debug)]
pub struct MsgAcceptor {
    max: u32,
    timeouts: TcpTimeouts,
}

impl MsgAcceptor {
    /// Frames above `max` payload bytes are refused.
    pub fn new(max: u32) -> Self {
        Self {
            max,
            timeouts: TcpTimeouts::default(),
        }
    }

    /// The idle and header limits of its connections (default
    /// [`TcpTimeouts::default`]).
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: TcpTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }
}

/// No timers of its own.
impl Driven for MsgAcceptor {}

impl StreamAcceptor for MsgAcceptor {
    fn accept(&mut self, cx: &mut Context, _peer: SocketAddr) -> Option<Box<dyn StreamSession>> {
        Some(Box::new(MsgStream::new(self.max, cx.now, self.timeouts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::idle::testing::timed_out_by;
    use crate::proto::testing::{at, drain_tx, feed};
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

    fn stream(max: u32) -> MsgStream {
        MsgStream::new(max, at(0), TcpTimeouts::default())
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut b = BytesMut::new();
        emit_frame(&vec![7u8; len], &mut b).unwrap();
        b.to_vec()
    }

    #[test]
    fn receipts_for_several_frames_of_any_size() {
        let mut s = stream(1 << 20);
        let mut wire = Vec::new();
        for len in [0, 1, 65_536] {
            wire.extend(frame(len));
        }
        feed(&mut s, at(0), peer(), StreamInput::Bytes(&wire));
        assert_eq!(
            frames(&drain_tx(&mut s, at(0))),
            vec![Answer::Ok(0), Answer::Ok(1), Answer::Ok(65_536)]
        );
        assert_eq!(s.poll_close(), None);
    }

    #[test]
    fn a_frame_written_one_byte_at_a_time() {
        let mut s = stream(1 << 20);
        for b in frame(300) {
            feed(&mut s, at(0), peer(), StreamInput::Bytes(&[b]));
        }
        assert_eq!(frames(&drain_tx(&mut s, at(0))), vec![Answer::Ok(300)]);
    }

    #[test]
    fn oversize_length_is_refused_and_closes_without_reading_the_body() {
        let mut s = stream(100);
        let mut wire = frame(101);
        wire.extend(frame(5));
        feed(&mut s, at(0), peer(), StreamInput::Bytes(&wire));
        assert_eq!(
            frames(&drain_tx(&mut s, at(0))),
            vec![Answer::TooLarge(100)]
        );
        assert_eq!(
            s.poll_close(),
            Some(CloseReason::Protocol("frame too large"))
        );
        // The limit itself is fine.
        let mut s = stream(100);
        feed(&mut s, at(0), peer(), StreamInput::Bytes(&frame(100)));
        assert_eq!(frames(&drain_tx(&mut s, at(0))), vec![Answer::Ok(100)]);
    }

    #[test]
    fn a_huge_frame_costs_no_memory() {
        let mut s = stream(u32::MAX);
        feed(
            &mut s,
            at(0),
            peer(),
            StreamInput::Bytes(&(10u32 << 20).to_be_bytes()),
        );
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..160 {
            feed(&mut s, at(0), peer(), StreamInput::Bytes(&chunk));
        }
        assert_eq!(frames(&drain_tx(&mut s, at(0))), vec![Answer::Ok(10 << 20)]);
        assert!(s.out.capacity() < 1024);
    }

    #[test]
    fn eof_mid_frame_closes_quietly() {
        let mut s = stream(100);
        feed(&mut s, at(0), peer(), StreamInput::Bytes(&frame(50)[..20]));
        feed(&mut s, at(0), peer(), StreamInput::End);
        assert_eq!(drain_tx(&mut s, at(0)), b"");
        assert_eq!(s.poll_close(), Some(CloseReason::PeerClosed));
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn ns_before(t: Instant) -> Instant {
        Instant::from_nanos(t.as_nanos() - 1)
    }

    fn limits(idle_ms: u64, request_ms: u64) -> TcpTimeouts {
        TcpTimeouts {
            idle: Duration::from_millis(idle_ms),
            request: Duration::from_millis(request_ms),
        }
    }

    #[test]
    fn a_connection_that_never_sends_closes_at_exactly_the_idle_limit() {
        let mut s = MsgStream::new(100, ms(0), limits(300, 10_000));
        assert_eq!(s.poll_timeout(), Some(ms(300)), "armed from accept");
        assert_eq!(timed_out_by(&mut s, ns_before(ms(300))), None);
        assert_eq!(timed_out_by(&mut s, ms(10_000)), Some(ms(300)));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn a_body_that_keeps_coming_is_not_idle_and_a_stalled_one_is() {
        let mut s = MsgStream::new(1 << 20, ms(0), limits(1_000, 2_000));
        feed(
            &mut s,
            ms(0),
            peer(),
            StreamInput::Bytes(&1000u32.to_be_bytes()),
        );
        // 10 bytes every 800 ms, for 20 s: far past both limits.
        for i in 1..=25u64 {
            assert_eq!(timed_out_by(&mut s, ms(800 * i)), None, "{i}");
            feed(&mut s, ms(800 * i), peer(), StreamInput::Bytes(&[0; 10]));
        }
        // Then nothing: closed exactly one idle limit after the last byte.
        assert_eq!(timed_out_by(&mut s, ms(60_000)), Some(ms(21_000)));
    }

    #[test]
    fn a_header_trickled_at_one_byte_a_second_closes_at_the_request_limit() {
        let mut s = MsgStream::new(100, ms(0), limits(60_000, 2_500));
        feed(&mut s, ms(0), peer(), StreamInput::Bytes(&frame(3)));
        assert_eq!(frames(&drain_tx(&mut s, ms(0))), vec![Answer::Ok(3)]);
        // The next header's clock starts with its first byte, at 5 s.
        let mut closed = None;
        for (i, b) in 7u32.to_be_bytes().iter().enumerate() {
            let now = ms(5_000 + 1_000 * i as u64);
            closed = timed_out_by(&mut s, ns_before(now));
            if closed.is_some() {
                break;
            }
            feed(&mut s, now, peer(), StreamInput::Bytes(&[*b]));
        }
        assert_eq!(closed, Some(ms(7_500)));
    }

    #[test]
    fn a_receipt_the_client_takes_is_progress() {
        let mut s = MsgStream::new(100, ms(0), limits(1_000, 10_000));
        feed(&mut s, ms(0), peer(), StreamInput::Bytes(&frame(3)));
        // The reactor takes the receipt only at 900 ms (its socket was full).
        assert_eq!(timed_out_by(&mut s, ms(899)), None);
        assert!(!drain_tx(&mut s, ms(900)).is_empty());
        assert_eq!(timed_out_by(&mut s, ms(10_000)), Some(ms(1_900)));
    }
}
