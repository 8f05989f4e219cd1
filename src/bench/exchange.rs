//! The request/response protocols a [`Repeat`](super::load::Repeat)
//! session can drive: hello, lab echo and msg.
//!
//! Owns only what a load generator needs of each protocol — the next
//! request, where an answer ends in a TCP stream, and whether it answers the
//! request — and builds all of it from the `wire` codecs, so the bench
//! speaks exactly what the clients speak. No I/O, no time.

use super::load::{BadFraming, Exchange, Run, Verdict};
use super::plan::Transport;
use crate::rng::SplitMix64;
use crate::wire::hello::{HelloId, ID_SPACE, MAX_REQUEST, Request as HelloRequest, Response};
use crate::wire::line;
use crate::wire::msg::{Answer, FrameHeader, HEADER_LEN};
use bytes::BytesMut;
use core::ops::Range;
use std::rc::Rc;

/// Splits a line-framed answer off the front of `bytes`.
fn split_line(bytes: &[u8], max: usize) -> Result<Option<(usize, Range<usize>)>, BadFraming> {
    match line::split(bytes, max) {
        Ok(Some(l)) => Ok(Some((l.consumed, 0..l.len))),
        Ok(None) => Ok(None),
        Err(_) => Err(BadFraming),
    }
}

/// `HELLO <id>` and its `OK`/`RESET`. Each slot cycles through its own
/// range of the 10 000 IDs (as `rr.c ids` does), from a seeded offset, so
/// slots never ask for each other's IDs and a server with a short ID
/// lifetime keeps answering `OK`.
#[derive(Debug)]
pub struct HelloExchange {
    run: Rc<Run>,
    slot: usize,
    base: u64,
    span: u64,
    offset: u64,
    transport: Transport,
    current: Option<HelloId>,
}

impl HelloExchange {
    /// The exchange of `slot` out of `slots`, seeded with `seed`.
    pub fn new(run: Rc<Run>, slot: usize, slots: usize, seed: u64, transport: Transport) -> Self {
        let space = ID_SPACE as u64;
        let span = (space / slots.max(1) as u64).max(1);
        let base = (slot as u64 * span) % space;
        let offset = crate::rng::mix(seed, slot as u64) % span;
        Self {
            run,
            slot,
            base,
            span,
            offset,
            transport,
            current: None,
        }
    }
}

impl HelloExchange {
    /// The slot's next ID (`None` only if the arithmetic left the ID space,
    /// which the constructor rules out).
    pub fn next_id(&mut self) -> Option<HelloId> {
        let seq = self.run.next_seq(self.slot);
        let value = self.base + (self.offset + seq) % self.span;
        self.current = u16::try_from(value)
            .ok()
            .and_then(|v| HelloId::from_value(v).ok());
        self.current
    }
}

impl Exchange for HelloExchange {
    fn request(&mut self, transport: Transport, buf: &mut BytesMut) {
        if let Some(id) = self.next_id() {
            HelloRequest { id }.emit(buf);
        }
        if transport == Transport::Tcp {
            buf.extend_from_slice(b"\n");
        }
    }

    fn split(&self, bytes: &[u8]) -> Result<Option<(usize, Range<usize>)>, BadFraming> {
        split_line(bytes, MAX_REQUEST)
    }

    fn check(&mut self, answer: &[u8]) -> Verdict {
        let Some(current) = self.current else {
            return Verdict::Wrong;
        };
        match Response::parse(line::trim_datagram(answer)) {
            Ok(Response::Ok { id, .. }) if id == current => Verdict::Answered,
            Ok(Response::Reset { id }) if id == current => match self.transport {
                Transport::Udp => Verdict::Answered,
                // The server closes a TCP connection after RESET.
                Transport::Tcp => Verdict::AnsweredThenClosed,
            },
            // Over UDP, the late answer to a request that timed out.
            Ok(Response::Ok { .. } | Response::Reset { .. })
                if self.transport == Transport::Udp =>
            {
                Verdict::Stale
            }
            _ => Verdict::Wrong,
        }
    }
}

/// A lab echo of fixed seeded printable bytes (no `\n`, so it is one line
/// over TCP and never looks like a stream or file request: it starts with
/// a letter other than `s`).
#[derive(Debug)]
pub struct EchoExchange {
    payload: Vec<u8>,
}

impl EchoExchange {
    /// `len` bytes drawn from `seed`.
    pub fn new(len: usize, seed: u64) -> Self {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrtuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut rng = SplitMix64::new(seed);
        let mut payload: Vec<u8> = (0..len)
            .map(|_| {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "a remainder below the alphabet's length"
                )]
                let i = (rng.next_u64() % ALPHABET.len() as u64) as usize;
                ALPHABET[i]
            })
            .collect();
        if let Some(first) = payload.first_mut() {
            *first = b'e';
        }
        Self { payload }
    }
}

impl Exchange for EchoExchange {
    fn request(&mut self, transport: Transport, buf: &mut BytesMut) {
        buf.extend_from_slice(&self.payload);
        if transport == Transport::Tcp {
            buf.extend_from_slice(b"\n");
        }
    }

    fn split(&self, bytes: &[u8]) -> Result<Option<(usize, Range<usize>)>, BadFraming> {
        split_line(bytes, self.payload.len() + 2)
    }

    fn check(&mut self, answer: &[u8]) -> Verdict {
        if answer == self.payload.as_slice() {
            Verdict::Answered
        } else {
            Verdict::Wrong
        }
    }
}

/// One msg frame of `len` bytes and its `OK <len>` receipt.
#[derive(Debug)]
pub struct MsgExchange {
    frame: Vec<u8>,
    len: u64,
}

/// Longest receipt frame accepted (`ERR too large 4294967295` fits).
const MAX_RECEIPT: usize = 64;

impl MsgExchange {
    /// Frames of `len` payload bytes (at most `u32::MAX`; the plan holds it
    /// to the server's 64 MiB).
    pub fn new(len: u32) -> Self {
        let mut frame = BytesMut::with_capacity(HEADER_LEN + len as usize);
        FrameHeader { len }.emit(&mut frame);
        frame.resize(HEADER_LEN + len as usize, b'm');
        Self {
            frame: frame.to_vec(),
            len: u64::from(len),
        }
    }
}

impl Exchange for MsgExchange {
    fn request(&mut self, _transport: Transport, buf: &mut BytesMut) {
        buf.extend_from_slice(&self.frame);
    }

    fn split(&self, bytes: &[u8]) -> Result<Option<(usize, Range<usize>)>, BadFraming> {
        let Ok(header) = FrameHeader::parse(bytes) else {
            return Ok(None);
        };
        let len = header.len as usize;
        if len > MAX_RECEIPT {
            return Err(BadFraming);
        }
        if bytes.len() < HEADER_LEN + len {
            return Ok(None);
        }
        Ok(Some((HEADER_LEN + len, HEADER_LEN..HEADER_LEN + len)))
    }

    fn check(&mut self, answer: &[u8]) -> Verdict {
        match Answer::parse(answer) {
            Ok(Answer::Ok(n)) if n == self.len => Verdict::Answered,
            _ => Verdict::Wrong,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Recorder;
    use crate::time::Instant;

    fn run(slots: usize) -> Rc<Run> {
        Rc::new(Run::new(
            Recorder::new(Instant::ZERO, None),
            Instant::ZERO,
            None,
            None,
            slots,
        ))
    }

    #[test]
    fn hello_slots_use_disjoint_id_ranges() {
        let r = run(4);
        let mut seen = std::collections::HashSet::new();
        for slot in 0..4 {
            let mut e = HelloExchange::new(r.clone(), slot, 4, 7, Transport::Udp);
            for _ in 0..2500 {
                let mut buf = BytesMut::new();
                e.request(Transport::Udp, &mut buf);
                let req = HelloRequest::parse(&buf).unwrap();
                assert!(seen.insert(req.id.value()), "ID {} asked twice", req.id);
            }
        }
        assert_eq!(seen.len(), 10_000);
    }

    #[test]
    fn hello_checks_the_id() {
        let r = run(1);
        let mut e = HelloExchange::new(r, 0, 1, 1, Transport::Tcp);
        let mut buf = BytesMut::new();
        e.request(Transport::Tcp, &mut buf);
        assert!(buf.ends_with(b"\n"));
        let id = HelloRequest::parse(&buf[..buf.len() - 1]).unwrap().id;
        let ok = format!("OK {id} 127.0.0.1 4000");
        assert_eq!(e.check(ok.as_bytes()), Verdict::Answered);
        assert_eq!(
            e.check(format!("RESET {id}").as_bytes()),
            Verdict::AnsweredThenClosed
        );
        assert_eq!(e.check(b"ERROR busy"), Verdict::Wrong);
        let other = (id.value() + 1) % 10_000;
        assert_eq!(e.check(format!("RESET {other}").as_bytes()), Verdict::Wrong);
        let r = run(1);
        let mut udp = HelloExchange::new(r, 0, 1, 1, Transport::Udp);
        udp.request(Transport::Udp, &mut BytesMut::new());
        assert_eq!(
            udp.check(format!("RESET {other}").as_bytes()),
            Verdict::Stale
        );
    }

    #[test]
    fn echo_is_one_plain_line() {
        let mut e = EchoExchange::new(100, 3);
        let mut buf = BytesMut::new();
        e.request(Transport::Tcp, &mut buf);
        assert_eq!(buf.len(), 101);
        assert!(!buf[..100].contains(&b'\n'));
        assert!(matches!(
            crate::wire::lab::Request::parse(&buf[..100]),
            Ok(crate::wire::lab::Request::Echo(_))
        ));
        let (used, range) = e.split(&buf).unwrap().unwrap();
        assert_eq!(used, 101);
        let answer = buf[range].to_vec();
        assert_eq!(e.check(&answer), Verdict::Answered);
        assert_eq!(e.check(b"nope"), Verdict::Wrong);
    }

    #[test]
    fn msg_receipt_framing() {
        let mut e = MsgExchange::new(10);
        let mut receipt = BytesMut::new();
        Answer::Ok(10).emit_frame(&mut receipt);
        assert_eq!(e.split(&receipt[..3]), Ok(None));
        let (used, range) = e.split(&receipt).unwrap().unwrap();
        assert_eq!(used, receipt.len());
        assert_eq!(e.check(&receipt[range]), Verdict::Answered);
        let mut huge = BytesMut::new();
        FrameHeader { len: 1 << 20 }.emit(&mut huge);
        assert_eq!(e.split(&huge), Err(BadFraming));
    }
}
