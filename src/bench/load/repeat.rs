//! [`Repeat`]: request/response on one socket or connection, one request
//! outstanding, the next sent when the answer arrives.
//!
//! Owns the request/response turn (ready, waiting with a timeout, done),
//! TCP answer reassembly, and what an answer counts for in the run's
//! recorder. The protocol's part is an [`Exchange`] (request bytes, answer
//! framing, answer check). It never parses a protocol itself (the exchange
//! does), never records at or after the run's end, and gives its slot back
//! exactly once.

use super::run::Run;
use crate::bench::plan::Transport;
use crate::proto::{
    CloseReason, Context, DatagramInput, DatagramSession, Driven, StreamInput, StreamSession,
    Transmit, Wake,
};
use crate::time::{Duration, Instant};
use bytes::BytesMut;
use std::rc::Rc;

/// The bytes of a TCP answer stream can never frame an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFraming;

/// What an answer meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A right answer; the next request may go.
    Answered,
    /// A right answer after which the server closes the connection (hello
    /// RESET over TCP): counted, then this session ends.
    AnsweredThenClosed,
    /// Not an answer to what was asked: counted as an error.
    Wrong,
    /// A well-formed answer to an earlier request (a UDP answer that
    /// arrived after its timeout): ignored, the current request still waits.
    Stale,
}

/// The protocol's part of a [`Repeat`] session.
pub trait Exchange {
    /// Appends the next request, framed for `transport`.
    fn request(&mut self, transport: Transport, buf: &mut BytesMut);
    /// TCP: the length of the first whole answer at the front of `bytes`
    /// (framing included) and the answer's own range, `Ok(None)` when more
    /// bytes are needed, `Err` when no answer can ever be made of them.
    ///
    /// # Errors
    /// The bytes break the protocol's framing.
    fn split(&self, bytes: &[u8]) -> Result<Option<(usize, core::ops::Range<usize>)>, BadFraming>;
    /// Checks one answer (without its framing) against the request.
    fn check(&mut self, answer: &[u8]) -> Verdict;
}

#[derive(Clone, Copy, Debug)]
enum Turn {
    /// The next request is due.
    Ready,
    /// Sent at `sent_at`; a timeout at `deadline`.
    Waiting { sent_at: Instant, deadline: Instant },
    /// Closed (and the slot released).
    Done,
}

/// Longest TCP backlog of answer bytes a [`Repeat`] keeps before deciding
/// the server is not speaking the protocol.
const MAX_INBOX: usize = 1 << 20;

/// Request/response on one socket or connection. See the module docs.
#[derive(Debug)]
pub struct Repeat<E> {
    exchange: E,
    transport: Transport,
    run: Rc<Run>,
    slot: usize,
    timeout: Duration,
    turn: Turn,
    inbox: Vec<u8>,
    close: Option<CloseReason>,
}

impl<E: Exchange> Repeat<E> {
    /// A session in `slot` (claimed by the caller) that waits `timeout` for
    /// each answer.
    pub fn new(
        exchange: E,
        transport: Transport,
        run: Rc<Run>,
        slot: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            exchange,
            transport,
            run,
            slot,
            timeout,
            turn: Turn::Ready,
            inbox: Vec::new(),
            close: None,
        }
    }

    fn end(&mut self, reason: CloseReason) {
        if matches!(self.turn, Turn::Done) {
            return;
        }
        self.turn = Turn::Done;
        self.close = Some(reason);
        self.run.release_slot(self.slot);
    }

    fn fail(&mut self, now: Instant, why: &str) {
        if !self.run.over(now) {
            self.run.recorder.borrow_mut().add_error(now);
            self.run.failed(now, why);
        }
        self.end(CloseReason::Aborted);
    }

    fn answer(&mut self, now: Instant, answer_len: usize, verdict: Verdict) {
        let Turn::Waiting { sent_at, .. } = self.turn else {
            return; // late answer to a request that already timed out
        };
        if self.run.over(now) {
            return self.end(CloseReason::Aborted);
        }
        match verdict {
            Verdict::Answered | Verdict::AnsweredThenClosed => {
                let mut rec = self.run.recorder.borrow_mut();
                rec.add_request(now, now.saturating_since(sent_at));
                rec.add_packets(now, 1);
                rec.add_bytes(now, answer_len as u64);
                drop(rec);
                self.run.succeeded(now);
                self.turn = Turn::Ready;
                if verdict == Verdict::AnsweredThenClosed {
                    self.end(CloseReason::Completed);
                }
            }
            Verdict::Wrong => self.fail(now, "a wrong answer"),
            Verdict::Stale => {}
        }
    }
}

impl<E: Exchange> Repeat<E> {
    fn on_datagram(&mut self, now: Instant, payload: &[u8]) {
        if matches!(self.turn, Turn::Waiting { .. }) {
            let verdict = self.exchange.check(payload);
            self.answer(now, payload.len(), verdict);
        }
    }

    fn on_bytes(&mut self, now: Instant, bytes: &[u8]) {
        self.inbox.extend_from_slice(bytes);
        loop {
            match self.exchange.split(&self.inbox) {
                Ok(Some((used, range))) => {
                    let verdict = match self.inbox.get(range) {
                        Some(answer) => self.exchange.check(answer),
                        None => Verdict::Wrong,
                    };
                    self.inbox.drain(..used.min(self.inbox.len()));
                    self.answer(now, used, verdict);
                    if matches!(self.turn, Turn::Done) {
                        return;
                    }
                }
                Ok(None) if self.inbox.len() <= MAX_INBOX => break,
                Ok(None) | Err(BadFraming) => return self.fail(now, "a malformed answer"),
            }
        }
    }

    fn on_end(&mut self, now: Instant) {
        if matches!(self.turn, Turn::Waiting { .. }) {
            self.fail(now, "the server closed the connection");
        } else {
            self.end(CloseReason::PeerClosed);
        }
    }

    fn on_failed(&mut self, now: Instant, kind: std::io::ErrorKind) {
        self.fail(now, &std::io::Error::from(kind).to_string());
    }

    /// Appends the next request, if one is due: its length.
    fn next_request(&mut self, now: Instant, buf: &mut BytesMut) -> Option<usize> {
        if !matches!(self.turn, Turn::Ready) {
            return None;
        }
        if !self.run.take(now) {
            self.end(CloseReason::Completed);
            return None;
        }
        let before = buf.len();
        self.exchange.request(self.transport, buf);
        self.turn = Turn::Waiting {
            sent_at: now,
            deadline: now + self.timeout,
        };
        Some(buf.len() - before)
    }
}

impl<E: Exchange> Driven for Repeat<E> {
    fn handle_timeout(&mut self, cx: &mut Context) {
        let now = cx.now;
        if self.run.over(now) {
            return self.end(CloseReason::Aborted);
        }
        if let Turn::Waiting { deadline, .. } = self.turn
            && now >= deadline
        {
            self.run.recorder.borrow_mut().add_timeout(now);
            self.run.failed(now, "no answer within the timeout");
            match self.transport {
                // A lost datagram: the next request goes out, the late
                // answer (if any) is ignored as stale.
                Transport::Udp => self.turn = Turn::Ready,
                // A stalled connection is not worth waiting on.
                Transport::Tcp => self.end(CloseReason::TimedOut { tries: 1 }),
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let end = self.run.end_at();
        match self.turn {
            Turn::Done => None,
            Turn::Ready => end,
            Turn::Waiting { deadline, .. } => Some(end.map_or(deadline, |e| e.min(deadline))),
        }
    }

    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl<E: Exchange> StreamSession for Repeat<E> {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        match input {
            StreamInput::Bytes(bytes) => self.on_bytes(cx.now, bytes),
            StreamInput::End => self.on_end(cx.now),
            StreamInput::Failed(kind) => self.on_failed(cx.now, kind),
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        self.next_request(cx.now, buf)
    }
}

impl<E: Exchange> DatagramSession for Repeat<E> {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        match input {
            DatagramInput::Datagram { payload, .. } => self.on_datagram(cx.now, payload),
            DatagramInput::Failed { kind, .. } => self.on_failed(cx.now, kind),
            // A UDP client has no device endpoint.
            DatagramInput::Packet { .. } => {}
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        let len = self.next_request(cx.now, buf)?;
        Some(Transmit::new(None, len))
    }
}

#[cfg(test)]
mod tests {
    //! The session scripted in virtual time: no socket, no clock.

    use super::*;
    use crate::bench::exchange::EchoExchange;
    use crate::bench::load::testing::{closes, run, timeout};
    use crate::proto::testing::{at, drain_joined, drain_tx, feed_datagram};
    use std::net::SocketAddr;

    fn peer() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    fn echo(run: &Rc<Run>, transport: Transport) -> Repeat<EchoExchange> {
        let slot = run.claim_slot().unwrap();
        Repeat::new(
            EchoExchange::new(8, 1),
            transport,
            run.clone(),
            slot,
            Duration::from_millis(100),
        )
    }

    fn answer(s: &mut dyn DatagramSession, ms: u64, bytes: &[u8]) {
        feed_datagram(s, at(ms), peer(), bytes);
    }

    #[test]
    fn repeat_counts_answers_and_stops_at_the_budget() {
        let r = run(None, Some(2));
        let mut s = echo(&r, Transport::Udp);
        let request = drain_joined(&mut s, at(1));
        assert_eq!(request.len(), 8);
        answer(&mut s, 2, b"wrong!!!");
        assert_eq!(closes(&mut s), vec![CloseReason::Aborted]);
        assert_eq!(r.active(), 0, "a wrong answer frees the slot");

        let r = run(None, Some(2));
        let mut s = echo(&r, Transport::Udp);
        for ms in [1, 3] {
            let request = drain_joined(&mut s, at(ms));
            answer(&mut s, ms + 1, &request);
        }
        // The budget is spent: the next poll closes instead of sending.
        assert!(drain_joined(&mut s, at(5)).is_empty());
        assert_eq!(closes(&mut s), vec![CloseReason::Completed]);
        let summary = r.recorder.borrow_mut().finish(at(5));
        assert_eq!(summary.figures.requests, 2);
        assert_eq!(summary.figures.bytes, 16);
        assert_eq!(r.successes(), 2);
        assert_eq!(r.active(), 0);
    }

    #[test]
    fn repeat_timeouts_resend_over_udp_and_close_over_tcp() {
        let r = run(None, None);
        let mut s = echo(&r, Transport::Udp);
        let first = drain_joined(&mut s, at(0));
        assert_eq!(s.poll_timeout(), Some(at(100)));
        timeout(&mut s, 100);
        assert_eq!(drain_joined(&mut s, at(100)), first, "a new request");
        // The late answer to the first counts for the second: same bytes.
        answer(&mut s, 101, &first);
        let summary = r.recorder.borrow_mut().finish(at(101));
        assert_eq!((summary.figures.timeouts, summary.figures.requests), (1, 1));

        let r = run(None, None);
        let mut s = echo(&r, Transport::Tcp);
        let _ = drain_tx(&mut s, at(0));
        timeout(&mut s, 100);
        assert_eq!(closes(&mut s), vec![CloseReason::TimedOut { tries: 1 }]);
        assert_eq!(r.active(), 0);
    }

    #[test]
    fn nothing_is_recorded_at_the_end() {
        let r = run(Some(50), None);
        let mut s = echo(&r, Transport::Udp);
        let request = drain_joined(&mut s, at(0));
        assert_eq!(
            s.poll_timeout(),
            Some(at(50)),
            "the end comes before the timeout"
        );
        answer(&mut s, 50, &request);
        assert_eq!(closes(&mut s), vec![CloseReason::Aborted]);
        let summary = r.recorder.borrow_mut().finish(at(50));
        assert_eq!(summary.figures.requests, 0);
        assert!(!r.may_start(at(50)));
    }
}
