//! The msg client: one frame from a source, then its receipt.
//!
//! Owns the sending of a frame of known length (header, then the body as
//! the socket takes it, pulled from the [`Source`] in pieces, so a large
//! file is never held in memory) and the check of the answer: `OK <L>` with
//! L equal to what was sent, or `ERR too large <max>`.

use crate::proto::data::Source;
use crate::proto::outcome::{ClientError, Outcome, OutcomeSlot};
use crate::proto::{CloseReason, Context, Driven, StreamInput, StreamSession};
use crate::time::{Duration, Instant};
use crate::wire::msg::{Answer, FrameHeader, HEADER_LEN};
use bytes::BytesMut;

/// The server's receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// `OK <len>` arrived after `elapsed` (from the first byte sent).
    One {
        /// Payload bytes the server counted.
        len: u64,
        /// From the first byte sent to the receipt.
        elapsed: Duration,
    },
    /// Every one of `frames` receipts arrived, each for the right length
    /// (from [`RepeatClient`]).
    Many {
        /// Frames sent and acknowledged.
        frames: u64,
        /// Payload bytes in all of them.
        bytes: u64,
        /// From the first byte sent to the last receipt.
        elapsed: Duration,
    },
    /// `ERR too large <max>`: an answer, whose limit the caller reports
    /// (as a refusal).
    TooLarge {
        /// The server's limit.
        max: u64,
    },
}

/// The longest answer frame accepted.
const MAX_ANSWER: usize = 256;

/// One frame and its receipt.
pub struct Client {
    source: Box<dyn Source>,
    len: u32,
    header_sent: bool,
    sent: u64,
    started: Option<Instant>,
    last_activity: Instant,
    timeout: Duration,
    answer: Vec<u8>,
    done: bool,
    outcome: OutcomeSlot<Receipt>,
    close: Option<CloseReason>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("len", &self.len)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Sends `len` bytes from `source` as one frame; gives up after
    /// `timeout` without progress.
    pub fn new(
        source: Box<dyn Source>,
        len: u32,
        timeout: Duration,
        outcome: OutcomeSlot<Receipt>,
    ) -> Self {
        Self {
            source,
            len,
            header_sent: false,
            sent: 0,
            started: None,
            last_activity: Instant::ZERO,
            timeout,
            answer: Vec::new(),
            done: false,
            outcome,
            close: None,
        }
    }

    fn finish(&mut self, outcome: Outcome<Receipt>, reason: CloseReason) {
        if !self.done {
            self.done = true;
            self.outcome.set(outcome);
            self.close = Some(reason);
        }
    }
}

impl Driven for Client {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if !self.done && self.poll_timeout().is_some_and(|at| at <= cx.now) {
            self.finish(
                Err(ClientError::TimedOut { tries: 1 }),
                CloseReason::TimedOut { tries: 1 },
            );
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.done && self.started.is_some()).then(|| self.last_activity + self.timeout)
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl StreamSession for Client {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        if self.done {
            return;
        }
        self.last_activity = cx.now;
        match input {
            StreamInput::Bytes(bytes) => {
                self.answer.extend_from_slice(bytes);
                let Ok(header) = FrameHeader::parse(&self.answer) else {
                    return;
                };
                let len = header.len as usize;
                if len > MAX_ANSWER {
                    return self.finish(
                        Err(ClientError::Protocol(format!(
                            "answer frame of {len} bytes"
                        ))),
                        CloseReason::Protocol("answer too long"),
                    );
                }
                if self.answer.len() < HEADER_LEN + len {
                    return;
                }
                let elapsed = cx.now - self.started.unwrap_or(cx.now);
                let outcome = match Answer::parse(&self.answer[HEADER_LEN..HEADER_LEN + len]) {
                    Ok(Answer::Ok(n)) if n == u64::from(self.len) => {
                        Ok(Receipt::One { len: n, elapsed })
                    }
                    Ok(Answer::Ok(n)) => Err(ClientError::Protocol(format!(
                        "receipt for {n} bytes, {} sent",
                        self.len
                    ))),
                    Ok(Answer::TooLarge(max)) => Ok(Receipt::TooLarge { max }),
                    Err(e) => Err(ClientError::Protocol(format!("malformed answer: {e}"))),
                };
                self.finish(outcome, CloseReason::Completed);
            }
            StreamInput::End => self.finish(
                Err(ClientError::Protocol(
                    "connection closed before the receipt".into(),
                )),
                CloseReason::PeerClosed,
            ),
            StreamInput::Failed(kind) => {
                self.finish(Err(ClientError::Io(kind)), CloseReason::Aborted);
            }
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        if self.done || limit == 0 {
            return None;
        }
        if self.started.is_none() {
            self.started = Some(cx.now);
            self.last_activity = cx.now;
        }
        if !self.header_sent {
            if limit < HEADER_LEN {
                return None;
            }
            FrameHeader { len: self.len }.emit(buf);
            self.header_sent = true;
            return Some(HEADER_LEN);
        }
        let remaining = u64::from(self.len) - self.sent;
        if remaining == 0 {
            return None;
        }
        let max = usize::try_from(remaining).unwrap_or(usize::MAX).min(limit);
        match self.source.read_into(buf, max) {
            Ok(0) => {
                self.finish(
                    Err(ClientError::Local(format!(
                        "the input ended after {} of {} bytes",
                        self.sent, self.len
                    ))),
                    CloseReason::Aborted,
                );
                None
            }
            Ok(n) => {
                self.sent += n as u64;
                self.last_activity = cx.now;
                Some(n)
            }
            Err(kind) => {
                self.finish(
                    Err(ClientError::Local(format!(
                        "reading the input: {}",
                        std::io::Error::from(kind)
                    ))),
                    CloseReason::Aborted,
                );
                None
            }
        }
    }
}

/// The same frame `count` times on one connection, pipelined: for
/// measuring frames per second. Every receipt is checked.
pub struct RepeatClient {
    payload: bytes::Bytes,
    count: u64,
    /// Frames fully handed to the reactor, and bytes of the current one.
    queued: u64,
    offset: usize,
    receipts: u64,
    started: Option<Instant>,
    last_activity: Instant,
    timeout: Duration,
    answers: Vec<u8>,
    done: bool,
    outcome: OutcomeSlot<Receipt>,
    close: Option<CloseReason>,
}

impl core::fmt::Debug for RepeatClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RepeatClient")
            .field("count", &self.count)
            .field("receipts", &self.receipts)
            .finish_non_exhaustive()
    }
}

impl RepeatClient {
    /// Sends `payload` as `count` frames (`payload` must fit a u32 length).
    pub fn new(
        payload: &[u8],
        count: u64,
        timeout: Duration,
        outcome: OutcomeSlot<Receipt>,
    ) -> Self {
        let mut frame = BytesMut::with_capacity(HEADER_LEN + payload.len());
        // Callers check the length; an oversize payload fails at the server.
        let _ = crate::wire::msg::emit_frame(payload, &mut frame);
        Self {
            payload: frame.freeze(),
            count,
            queued: 0,
            offset: 0,
            receipts: 0,
            started: None,
            last_activity: Instant::ZERO,
            timeout,
            answers: Vec::new(),
            done: false,
            outcome,
            close: None,
        }
    }

    fn finish(&mut self, outcome: Outcome<Receipt>, reason: CloseReason) {
        if !self.done {
            self.done = true;
            self.outcome.set(outcome);
            self.close = Some(reason);
        }
    }
}

impl Driven for RepeatClient {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if !self.done && self.poll_timeout().is_some_and(|at| at <= cx.now) {
            self.finish(
                Err(ClientError::TimedOut { tries: 1 }),
                CloseReason::TimedOut { tries: 1 },
            );
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.done && self.started.is_some()).then(|| self.last_activity + self.timeout)
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl StreamSession for RepeatClient {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        if self.done {
            return;
        }
        self.last_activity = cx.now;
        let bytes = match input {
            StreamInput::Bytes(bytes) => bytes,
            StreamInput::End => {
                let why = format!(
                    "connection closed after {} of {} receipts",
                    self.receipts, self.count
                );
                return self.finish(Err(ClientError::Protocol(why)), CloseReason::PeerClosed);
            }
            StreamInput::Failed(kind) => {
                return self.finish(Err(ClientError::Io(kind)), CloseReason::Aborted);
            }
        };
        self.answers.extend_from_slice(bytes);
        let want = (self.payload.len() - HEADER_LEN) as u64;
        let mut used = 0;
        while let Ok(h) = FrameHeader::parse(&self.answers[used..]) {
            let len = h.len as usize;
            if len > MAX_ANSWER {
                return self.finish(
                    Err(ClientError::Protocol("answer too long".into())),
                    CloseReason::Protocol("answer too long"),
                );
            }
            let Some(payload) = self.answers.get(used + HEADER_LEN..used + HEADER_LEN + len) else {
                break;
            };
            match Answer::parse(payload) {
                Ok(Answer::Ok(n)) if n == want => self.receipts += 1,
                Ok(Answer::TooLarge(max)) => {
                    return self.finish(Ok(Receipt::TooLarge { max }), CloseReason::Completed);
                }
                other => {
                    let why = format!("unexpected answer {other:?} to a {want}-byte frame");
                    return self.finish(
                        Err(ClientError::Protocol(why)),
                        CloseReason::Protocol("wrong receipt"),
                    );
                }
            }
            used += HEADER_LEN + len;
        }
        self.answers.drain(..used);
        if self.receipts == self.count {
            let elapsed = cx.now - self.started.unwrap_or(cx.now);
            let receipt = Receipt::Many {
                frames: self.count,
                bytes: self.count * want,
                elapsed,
            };
            self.finish(Ok(receipt), CloseReason::Completed);
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        if self.done || self.queued == self.count || limit == 0 {
            return None;
        }
        if self.started.is_none() {
            self.started = Some(cx.now);
            self.last_activity = cx.now;
        }
        // Whole frames while they fit, so small frames go out in big writes.
        let before = buf.len();
        while self.queued < self.count && buf.len() - before < limit {
            let room = limit - (buf.len() - before);
            let rest = &self.payload[self.offset..];
            let n = rest.len().min(room);
            buf.extend_from_slice(&rest[..n]);
            self.offset += n;
            if self.offset == self.payload.len() {
                self.offset = 0;
                self.queued += 1;
            }
        }
        Some(buf.len() - before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::MemorySource;
    use crate::proto::testing::{at, cx, drain_tx, feed};

    fn peer() -> std::net::SocketAddr {
        "127.0.0.1:7001".parse().unwrap()
    }

    fn client(payload: &[u8]) -> (Client, OutcomeSlot<Receipt>) {
        let slot = OutcomeSlot::new();
        let len = u32::try_from(payload.len()).unwrap();
        let c = Client::new(
            Box::new(MemorySource::new(payload.to_vec())),
            len,
            Duration::from_secs(5),
            slot.clone(),
        );
        (c, slot)
    }

    fn answer(a: Answer) -> Vec<u8> {
        let mut b = BytesMut::new();
        a.emit_frame(&mut b);
        b.to_vec()
    }

    #[test]
    fn sends_one_frame_and_checks_the_receipt() {
        let (mut c, slot) = client(b"hello");
        assert_eq!(drain_tx(&mut c, at(0)), b"\x00\x00\x00\x05hello");
        let a = answer(Answer::Ok(5));
        feed(&mut c, at(2), peer(), StreamInput::Bytes(&a[..3]));
        assert!(!slot.is_set());
        feed(&mut c, at(3), peer(), StreamInput::Bytes(&a[3..]));
        assert_eq!(
            slot.get(),
            Some(Ok(Receipt::One {
                len: 5,
                elapsed: Duration::from_millis(3)
            }))
        );
    }

    #[test]
    fn wrong_receipt_and_refusal() {
        let (mut c, slot) = client(b"abc");
        drain_tx(&mut c, at(0));
        feed(
            &mut c,
            at(1),
            peer(),
            StreamInput::Bytes(&answer(Answer::Ok(4))),
        );
        assert!(matches!(slot.get(), Some(Err(ClientError::Protocol(_)))));
        let (mut c, slot) = client(b"abc");
        drain_tx(&mut c, at(0));
        feed(
            &mut c,
            at(1),
            peer(),
            StreamInput::Bytes(&answer(Answer::TooLarge(2))),
        );
        assert_eq!(slot.get(), Some(Ok(Receipt::TooLarge { max: 2 })));
    }

    #[test]
    fn repeat_sends_count_frames_and_checks_every_receipt() {
        let slot = OutcomeSlot::new();
        let mut c = RepeatClient::new(b"ab", 3, Duration::from_secs(5), slot.clone());
        assert_eq!(
            drain_tx(&mut c, at(0)),
            b"\x00\x00\x00\x02ab\x00\x00\x00\x02ab\x00\x00\x00\x02ab"
        );
        let mut receipts = answer(Answer::Ok(2));
        receipts.extend(answer(Answer::Ok(2)));
        feed(&mut c, at(1), peer(), StreamInput::Bytes(&receipts[..7]));
        feed(&mut c, at(1), peer(), StreamInput::Bytes(&receipts[7..]));
        assert!(!slot.is_set());
        feed(
            &mut c,
            at(4),
            peer(),
            StreamInput::Bytes(&answer(Answer::Ok(2))),
        );
        assert_eq!(
            slot.get(),
            Some(Ok(Receipt::Many {
                frames: 3,
                bytes: 6,
                elapsed: Duration::from_millis(4)
            }))
        );
    }

    #[test]
    fn empty_frame_and_silence() {
        let (mut c, slot) = client(b"");
        assert_eq!(drain_tx(&mut c, at(0)), b"\x00\x00\x00\x00");
        assert_eq!(c.poll_timeout(), Some(at(5_000)));
        c.handle_timeout(&mut cx(at(5_000), None));
        assert_eq!(slot.get(), Some(Err(ClientError::TimedOut { tries: 1 })));
    }
}
