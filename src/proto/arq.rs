//! The block-transfer core shared by stop-and-wait and TFTP, both directions.
//!
//! Owns numbering, windows, acknowledgement and retransmission of a file
//! cut into blocks: a [`Sender`] reads blocks from a [`Source`] on demand
//! and keeps the unacknowledged ones for retransmission; a [`Receiver`]
//! accepts exactly the next block, writes it to a [`Sink`], and says what
//! to acknowledge. The server of a GET and the client of a PUT are the same
//! sender; the other two roles are the same receiver.
//!
//! Blocks are numbered 1, 2, 3, … as `u64` *indices* here. Mapping an index
//! to what travels on the wire (stop-and-wait's 5 digits and alternating
//! bit, TFTP's 16 bits that roll over) is the protocol's business, and so
//! is refusing a packet whose wire fields do not name the expected index —
//! which is how the seed's bug (a very late duplicate with the right bit
//! written twice) cannot happen: the receiver only ever accepts the one
//! index it expects.
//!
//! Pure: `now` in, decisions out; no sockets, no clock.

use crate::proto::data::{Sink, Source};
use crate::time::{Duration, Instant};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::ErrorKind;

/// How a transfer's end is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndRule {
    /// TFTP: the first block shorter than the block size is the last (a file
    /// whose size is a multiple of the block size ends with an empty block).
    ShortBlock,
    /// Stop-and-wait: blocks carry the file and nothing more (a FIN ends the
    /// transfer); only an empty file is one empty block.
    ExactBlocks,
}

/// The knobs of one transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArqConfig {
    /// Bytes per full block.
    pub block_size: usize,
    /// Blocks in flight before an acknowledgement is needed (1 is
    /// stop-and-wait; RFC 7440 windowsize otherwise).
    pub window: u16,
    /// Silence after which the sender retransmits or the receiver re-acks.
    pub timeout: Duration,
    /// Attempts (first send included) before giving up.
    pub max_tries: u32,
    /// How the last block is recognised.
    pub end: EndRule,
}

/// What a timeout asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Send again (the window from its oldest block; or the last ACK).
    Retransmit,
    /// The retry budget is spent.
    GiveUp {
        /// Attempts made.
        tries: u32,
    },
}

/// The sending half.
pub struct Sender {
    config: ArqConfig,
    source: Box<dyn Source>,
    /// Index of the oldest unacknowledged block.
    base: u64,
    /// Blocks `base..base + unacked.len()`, kept for retransmission.
    unacked: VecDeque<Bytes>,
    /// Next index to put on the wire (a rewind sets it back to `base`).
    next: u64,
    /// The source is exhausted: no block beyond the buffered ones.
    source_done: bool,
    tries: u32,
    deadline: Option<Instant>,
    bytes_sent: u64,
    /// File bytes read ahead: blocks are small (100–1468 bytes) and one
    /// read per block would cost a system call per block.
    readahead: BytesMut,
    source_eof: bool,
}

/// Bytes read from the source at a time.
const READAHEAD: usize = 64 * 1024;

impl core::fmt::Debug for Sender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sender")
            .field("base", &self.base)
            .field("in_flight", &self.unacked.len())
            .field("next", &self.next)
            .field("source_done", &self.source_done)
            .finish_non_exhaustive()
    }
}

/// What an acknowledgement did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acked {
    /// The window moved.
    Advanced,
    /// It acknowledged nothing new (a duplicate, or older).
    Duplicate,
    /// It names a block never sent.
    Unexpected,
}

impl Sender {
    /// A sender of `source`'s bytes, starting at block 1.
    pub fn new(config: ArqConfig, source: Box<dyn Source>) -> Self {
        Self {
            config,
            source,
            base: 1,
            unacked: VecDeque::new(),
            next: 1,
            source_done: false,
            tries: 0,
            deadline: None,
            bytes_sent: 0,
            readahead: BytesMut::new(),
            source_eof: false,
        }
    }

    /// Reads the next block from the source: a full block, or a short one
    /// at the end.
    fn read_block(&mut self) -> Result<Option<Bytes>, ErrorKind> {
        let size = self.config.block_size;
        while self.readahead.len() < size && !self.source_eof {
            let want = READAHEAD.max(size) - self.readahead.len();
            if self.source.read_into(&mut self.readahead, want)? == 0 {
                self.source_eof = true;
            }
        }
        let block = self.readahead.split_to(size.min(self.readahead.len()));
        let short = block.len() < self.config.block_size;
        let first = self.base == 1 && self.unacked.is_empty() && self.bytes_sent == 0;
        match self.config.end {
            EndRule::ExactBlocks if block.is_empty() => {
                self.source_done = true;
                // Only an empty file is sent as one empty block.
                Ok(first.then(Bytes::new))
            }
            EndRule::ShortBlock | EndRule::ExactBlocks => {
                self.source_done = short;
                Ok(Some(block.freeze()))
            }
        }
    }

    /// The next block to put on the wire, `(index, payload)`, if the window
    /// has room: a retransmission after a rewind first, then new blocks.
    /// Arms the retransmission deadline.
    ///
    /// # Errors
    /// The source failed to read.
    pub fn poll_block(&mut self, now: Instant) -> Result<Option<(u64, Bytes)>, ErrorKind> {
        let buffered_end = self.base + self.unacked.len() as u64;
        let payload = if self.next < buffered_end {
            self.unacked[usize::try_from(self.next - self.base).unwrap_or(0)].clone()
        } else if self.unacked.len() < usize::from(self.config.window) && !self.source_done {
            match self.read_block()? {
                Some(block) => {
                    self.unacked.push_back(block.clone());
                    self.bytes_sent += block.len() as u64;
                    block
                }
                None => return Ok(None),
            }
        } else {
            return Ok(None);
        };
        let index = self.next;
        self.next += 1;
        if self.deadline.is_none() {
            self.deadline = Some(now + self.config.timeout);
        }
        Ok(Some((index, payload)))
    }

    /// The receiver has every block up to `index` (cumulative).
    pub fn on_ack(&mut self, index: u64, now: Instant) -> Acked {
        let buffered_end = self.base + self.unacked.len() as u64;
        if index < self.base {
            return Acked::Duplicate;
        }
        if index >= buffered_end {
            return Acked::Unexpected;
        }
        let drop = usize::try_from(index + 1 - self.base).unwrap_or(usize::MAX);
        self.unacked.drain(..drop.min(self.unacked.len()));
        self.base = index + 1;
        self.next = self.next.max(self.base);
        self.tries = 0;
        self.deadline = (!self.unacked.is_empty()).then(|| now + self.config.timeout);
        Acked::Advanced
    }

    /// Go back to the oldest unacknowledged block (go-back-N).
    pub fn rewind(&mut self) {
        self.next = self.base;
    }

    /// When the window must be retransmitted if no acknowledgement arrives.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_done() { None } else { self.deadline }
    }

    /// Fires the retransmission timer if it is due at `now`.
    pub fn on_timeout(&mut self, now: Instant) -> Option<Timeout> {
        let due = self.deadline.is_some_and(|at| at <= now);
        if !due || self.is_done() {
            return None;
        }
        self.tries += 1;
        if self.tries >= self.config.max_tries {
            self.deadline = None;
            return Some(Timeout::GiveUp { tries: self.tries });
        }
        self.rewind();
        // A fresh deadline is armed by the retransmission's poll_block.
        self.deadline = None;
        Some(Timeout::Retransmit)
    }

    /// Every block is sent and acknowledged.
    pub fn is_done(&self) -> bool {
        self.source_done && self.unacked.is_empty()
    }

    /// The oldest unacknowledged block (the last acknowledged is `base - 1`).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Bytes read from the source so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// The source's size, when known.
    pub fn size(&self) -> Option<u64> {
        self.source.size()
    }
}

/// What the receiver made of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// The expected block, written. `ack`: acknowledge this index now
    /// (the window is complete, or this was the last block); `last`: the
    /// transfer is complete (for [`EndRule::ShortBlock`]).
    Accepted {
        /// Index to acknowledge now, if any.
        ack: Option<u64>,
        /// It was the last block.
        last: bool,
    },
    /// A block already written: acknowledge `ack` (the last in-order
    /// block) again, so a sender that missed it can go on.
    Duplicate {
        /// The last block received in order.
        ack: u64,
    },
    /// A copy of a block already written, arriving mid-window: say nothing
    /// (the window's own ACK follows).
    Stray,
    /// A block beyond the expected one (one was lost): acknowledge `ack`,
    /// the last in order, so the sender goes back (RFC 7440).
    OutOfOrder {
        /// The last block received in order.
        ack: u64,
    },
}

/// The receiving half.
pub struct Receiver {
    config: ArqConfig,
    sink: Option<Box<dyn Sink>>,
    /// The only index that will be accepted next.
    expected: u64,
    since_ack: u16,
    tries: u32,
    deadline: Option<Instant>,
    last: bool,
    bytes: u64,
}

impl core::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Receiver")
            .field("expected", &self.expected)
            .field("bytes", &self.bytes)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver writing into `sink`, expecting block 1 first.
    pub fn new(config: ArqConfig, sink: Box<dyn Sink>) -> Self {
        Self {
            config,
            sink: Some(sink),
            expected: 1,
            since_ack: 0,
            tries: 0,
            deadline: None,
            last: false,
            bytes: 0,
        }
    }

    /// Arms the silence timer from `now` (call when the transfer starts).
    pub fn start(&mut self, now: Instant) {
        self.deadline = Some(now + self.config.timeout);
    }

    /// The block with index `index` arrived.
    ///
    /// # Errors
    /// The sink failed (disk full, too large): the transfer must stop.
    pub fn on_block(
        &mut self,
        index: u64,
        data: &[u8],
        now: Instant,
    ) -> Result<Received, ErrorKind> {
        if self.last || index < self.expected {
            // Mid-window, an ACK for a stray copy would read as a gap to
            // the sender and rewind it onto blocks already here, whose
            // copies would do the same again: a lasting echo of one
            // duplicate. Only between windows (our ACK may have been lost)
            // is it answered.
            if self.since_ack > 0 && !self.last {
                return Ok(Received::Stray);
            }
            return Ok(Received::Duplicate {
                ack: self.expected - 1,
            });
        }
        if index > self.expected {
            // The sender goes back to `expected` on this ACK: count the
            // window from there too, or every later window is acknowledged
            // part-way and each such ACK rewinds the sender again.
            self.since_ack = 0;
            return Ok(Received::OutOfOrder {
                ack: self.expected - 1,
            });
        }
        if data.len() > self.config.block_size {
            return Err(ErrorKind::InvalidData);
        }
        if let Some(sink) = self.sink.as_mut() {
            sink.write_all(data)?;
        }
        self.bytes += data.len() as u64;
        self.expected += 1;
        self.tries = 0;
        self.deadline = Some(now + self.config.timeout);
        self.since_ack += 1;
        let last = self.config.end == EndRule::ShortBlock && data.len() < self.config.block_size;
        self.last = last;
        let ack = (last || self.since_ack >= self.config.window).then(|| {
            self.since_ack = 0;
            index
        });
        Ok(Received::Accepted { ack, last })
    }

    /// Fires the silence timer if it is due: re-acknowledge (or, before any
    /// block, resend the request), or give up.
    pub fn on_timeout(&mut self, now: Instant) -> Option<Timeout> {
        if self.deadline.is_none_or(|at| at > now) || self.last {
            return None;
        }
        self.tries += 1;
        if self.tries >= self.config.max_tries {
            self.deadline = None;
            return Some(Timeout::GiveUp { tries: self.tries });
        }
        self.since_ack = 0;
        self.deadline = Some(now + self.config.timeout);
        Some(Timeout::Retransmit)
    }

    /// When [`on_timeout`](Self::on_timeout) must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.last { None } else { self.deadline }
    }

    /// The last block received in order (0 before any).
    pub fn last_in_order(&self) -> u64 {
        self.expected - 1
    }

    /// The next index that will be accepted.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the last block has arrived ([`EndRule::ShortBlock`] rule).
    pub fn is_complete(&self) -> bool {
        self.last
    }

    /// Commits the sink: the file appears under its name.
    ///
    /// # Errors
    /// The commit failed (exists, I/O), or it was committed already.
    pub fn commit(&mut self) -> Result<u64, ErrorKind> {
        let sink = self.sink.take().ok_or(ErrorKind::Other)?;
        sink.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::{MemorySink, MemorySource};

    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    fn config(block_size: usize, window: u16, end: EndRule) -> ArqConfig {
        ArqConfig {
            block_size,
            window,
            timeout: Duration::from_secs(5),
            max_tries: 5,
            end,
        }
    }

    #[expect(
        clippy::cast_possible_truncation,
        reason = "a test pattern: the low byte is the point"
    )]
    fn sender(len: usize, block: usize, window: u16, end: EndRule) -> Sender {
        let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
        Sender::new(
            config(block, window, end),
            Box::new(MemorySource::new(bytes)),
        )
    }

    fn blocks(s: &mut Sender, now: Instant) -> Vec<(u64, usize)> {
        core::iter::from_fn(|| s.poll_block(now).unwrap())
            .map(|(i, b)| (i, b.len()))
            .collect()
    }

    #[test]
    fn stopwait_blocks_exact_and_empty_file() {
        // 250 bytes in 100-byte blocks: 100, 100, 50; no trailing empty block.
        let mut s = sender(250, 100, 1, EndRule::ExactBlocks);
        for (i, len) in [(1, 100), (2, 100), (3, 50)] {
            assert_eq!(blocks(&mut s, ms(0)), vec![(i, len)]);
            assert_eq!(s.on_ack(i, ms(1)), Acked::Advanced);
        }
        assert!(s.is_done());
        // A multiple of 100: exactly two blocks.
        let mut s = sender(200, 100, 1, EndRule::ExactBlocks);
        assert_eq!(blocks(&mut s, ms(0)), vec![(1, 100)]);
        s.on_ack(1, ms(0));
        assert_eq!(blocks(&mut s, ms(0)), vec![(2, 100)]);
        s.on_ack(2, ms(0));
        assert_eq!(blocks(&mut s, ms(0)), vec![]);
        assert!(s.is_done());
        // An empty file is one empty block.
        let mut s = sender(0, 100, 1, EndRule::ExactBlocks);
        assert_eq!(blocks(&mut s, ms(0)), vec![(1, 0)]);
        s.on_ack(1, ms(0));
        assert!(s.is_done());
    }

    #[test]
    fn tftp_blocks_end_with_a_short_or_empty_block() {
        let mut s = sender(1024, 512, 1, EndRule::ShortBlock);
        for (i, len) in [(1, 512), (2, 512), (3, 0)] {
            assert_eq!(blocks(&mut s, ms(0)), vec![(i, len)]);
            s.on_ack(i, ms(0));
        }
        assert!(s.is_done());
    }

    #[test]
    fn retransmits_exactly_at_the_timeout_then_gives_up() {
        let mut s = sender(1000, 100, 1, EndRule::ExactBlocks);
        assert_eq!(blocks(&mut s, ms(0)), vec![(1, 100)]);
        assert_eq!(s.poll_timeout(), Some(ms(5_000)));
        assert_eq!(s.on_timeout(ms(4_999)), None);
        for t in 1..5u64 {
            let now = ms(5_000 * t);
            assert_eq!(s.on_timeout(now), Some(Timeout::Retransmit), "try {t}");
            assert_eq!(blocks(&mut s, now), vec![(1, 100)], "block 1 again");
            assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(5)));
        }
        assert_eq!(s.on_timeout(ms(25_000)), Some(Timeout::GiveUp { tries: 5 }));
    }

    #[test]
    fn duplicate_and_unexpected_acks_change_nothing() {
        let mut s = sender(1000, 100, 1, EndRule::ExactBlocks);
        blocks(&mut s, ms(0));
        assert_eq!(s.on_ack(0, ms(1)), Acked::Duplicate);
        assert_eq!(s.on_ack(7, ms(1)), Acked::Unexpected);
        assert_eq!(s.on_ack(1, ms(1)), Acked::Advanced);
        assert_eq!(s.on_ack(1, ms(2)), Acked::Duplicate);
        // Sorcerer's Apprentice: a duplicate ACK does not resend anything.
        assert_eq!(blocks(&mut s, ms(2)), vec![(2, 100)]);
        assert_eq!(blocks(&mut s, ms(2)), vec![]);
    }

    #[test]
    fn windows_go_back_n() {
        let mut s = sender(10 * 512 + 3, 512, 4, EndRule::ShortBlock);
        assert_eq!(
            blocks(&mut s, ms(0))
                .iter()
                .map(|b| b.0)
                .collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        // Block 3 was lost: the receiver acks 2; the window slides by two.
        assert_eq!(s.on_ack(2, ms(1)), Acked::Advanced);
        assert_eq!(
            blocks(&mut s, ms(1))
                .iter()
                .map(|b| b.0)
                .collect::<Vec<_>>(),
            vec![5, 6]
        );
        // On timeout the whole window goes again from block 3.
        assert_eq!(s.on_timeout(ms(5_001)), Some(Timeout::Retransmit));
        assert_eq!(
            blocks(&mut s, ms(5_001))
                .iter()
                .map(|b| b.0)
                .collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );
    }

    #[test]
    fn receiver_accepts_only_the_expected_block() {
        let (sink, committed) = MemorySink::new();
        let mut r = Receiver::new(config(100, 1, EndRule::ExactBlocks), Box::new(sink));
        assert_eq!(
            r.on_block(1, &[1; 100], ms(0)),
            Ok(Received::Accepted {
                ack: Some(1),
                last: false
            })
        );
        // The seed's bug: a very late duplicate of block 1 — whatever its
        // bit on the wire — is never written again.
        assert_eq!(
            r.on_block(1, &[9; 100], ms(1)),
            Ok(Received::Duplicate { ack: 1 })
        );
        assert_eq!(
            r.on_block(3, &[3; 100], ms(1)),
            Ok(Received::OutOfOrder { ack: 1 })
        );
        assert_eq!(
            r.on_block(2, &[2; 50], ms(2)),
            Ok(Received::Accepted {
                ack: Some(2),
                last: false
            })
        );
        assert_eq!(r.commit(), Ok(150));
        let got = committed.borrow().clone().unwrap();
        assert_eq!(&got[..100], &[1; 100]);
        assert_eq!(&got[100..], &[2; 50]);
    }

    #[test]
    fn receiver_windows_and_the_short_last_block() {
        let (sink, _) = MemorySink::new();
        let mut r = Receiver::new(config(512, 3, EndRule::ShortBlock), Box::new(sink));
        assert_eq!(
            r.on_block(1, &[0; 512], ms(0)),
            Ok(Received::Accepted {
                ack: None,
                last: false
            })
        );
        assert_eq!(
            r.on_block(2, &[0; 512], ms(0)),
            Ok(Received::Accepted {
                ack: None,
                last: false
            })
        );
        assert_eq!(
            r.on_block(3, &[0; 512], ms(0)),
            Ok(Received::Accepted {
                ack: Some(3),
                last: false
            })
        );
        assert_eq!(
            r.on_block(4, &[0; 10], ms(0)),
            Ok(Received::Accepted {
                ack: Some(4),
                last: true
            })
        );
        assert!(r.is_complete());
        assert_eq!(
            r.on_block(4, &[0; 10], ms(1)),
            Ok(Received::Duplicate { ack: 4 }),
            "a lost final ACK"
        );
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn receiver_silence_reacks_then_gives_up() {
        let (sink, _) = MemorySink::new();
        let mut r = Receiver::new(config(512, 1, EndRule::ShortBlock), Box::new(sink));
        r.start(ms(0));
        assert_eq!(r.on_timeout(ms(4_999)), None);
        for t in 1..5 {
            assert_eq!(r.on_timeout(ms(5_000 * t)), Some(Timeout::Retransmit));
        }
        assert_eq!(r.on_timeout(ms(25_000)), Some(Timeout::GiveUp { tries: 5 }));
    }

    #[test]
    fn receiver_stays_in_step_with_a_rewound_window() {
        let (sink, _) = MemorySink::new();
        let mut r = Receiver::new(config(4, 4, EndRule::ShortBlock), Box::new(sink));
        r.start(ms(0));
        let full = [0u8; 4];
        assert_eq!(
            r.on_block(1, &full, ms(0)),
            Ok(Received::Accepted {
                ack: None,
                last: false
            })
        );
        // A stray copy mid-window is not answered: its ACK would rewind
        // the sender onto blocks already here.
        assert_eq!(r.on_block(1, &full, ms(0)), Ok(Received::Stray));
        // Block 2 lost: block 3 is out of order, and the sender goes back
        // to 2, so the next window is 2..=5 and is acknowledged at 5.
        assert_eq!(
            r.on_block(3, &full, ms(0)),
            Ok(Received::OutOfOrder { ack: 1 })
        );
        for i in 2..5 {
            assert_eq!(
                r.on_block(i, &full, ms(0)),
                Ok(Received::Accepted {
                    ack: None,
                    last: false
                }),
                "{i}"
            );
        }
        assert_eq!(
            r.on_block(5, &full, ms(0)),
            Ok(Received::Accepted {
                ack: Some(5),
                last: false
            })
        );
        // Between windows a copy is answered: our ACK may have been lost.
        assert_eq!(
            r.on_block(5, &full, ms(0)),
            Ok(Received::Duplicate { ack: 5 })
        );
    }
}
