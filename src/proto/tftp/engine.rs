//! One TFTP transfer after its request: blocks out or blocks in.
//!
//! Owns what both roles do once a transfer runs: turning the ARQ core's
//! block indices into 16-bit block numbers that roll over past 65535 to 0
//! (and back: [`Block`]), filling the RFC 7440 window, going
//! back to the first unacknowledged block when an ACK shows a gap,
//! re-acknowledging duplicates and out-of-order blocks, and the handshake
//! packet (a request, an OACK, ACK 0) resent until the peer answers. The
//! server and the clients wrap it with the parts that differ: requests,
//! negotiation, transfer IDs.

use crate::proto::arq::{ArqConfig, EndRule, Received, Receiver, Sender, Timeout};
use crate::proto::data::{Sink, Source};
use crate::time::{Duration, Instant};
use crate::wire::tftp::{Block, Packet};
use bytes::BytesMut;
use std::collections::VecDeque;

/// What happened to the transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Event {
    /// Nothing to report.
    Nothing,
    /// Every block is through (sender: the last one acknowledged;
    /// receiver: the last one written, and acknowledged).
    Complete,
    /// The retry budget ran out.
    GiveUp(u32),
    /// A local failure (the file, by kind); the server maps it onto an
    /// ERROR code (`server::kind_error`).
    Failed(std::io::ErrorKind),
    /// The peer broke the protocol; the text says how.
    Violation(&'static str),
}

pub(super) enum Phase {
    /// Waiting for an answer to `packet`, resent on timeout.
    Handshake {
        packet: Vec<u8>,
        at: Instant,
        tries: u32,
    },
    Sending(Sender),
    Receiving {
        receiver: Receiver,
        last_ack: Vec<u8>,
    },
    Done,
}

pub(super) struct Engine {
    pub(super) phase: Phase,
    pub(super) blksize: usize,
    pub(super) window: u16,
    pub(super) timeout: Duration,
    pub(super) max_tries: u32,
    pub(super) out: VecDeque<Vec<u8>>,
    pub(super) retransmissions: u64,
    /// Bytes moved, fixed when the transfer completes.
    moved: u64,
    /// The highest block index sent so far: anything at or below it that
    /// goes out again is a retransmission (timer or go-back-N alike).
    highest_sent: u64,
}

fn packet(p: &Packet<'_>) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(p.buffer_len());
    p.emit(&mut b);
    b.to_vec()
}

impl Engine {
    pub(super) fn new(timeout: Duration, max_tries: u32) -> Self {
        Self {
            phase: Phase::Done,
            blksize: usize::from(crate::wire::tftp::DEFAULT_BLKSIZE),
            window: 1,
            timeout,
            max_tries,
            out: VecDeque::new(),
            retransmissions: 0,
            moved: 0,
            highest_sent: 0,
        }
    }

    fn arq(&self) -> ArqConfig {
        ArqConfig {
            block_size: self.blksize,
            window: self.window,
            timeout: self.timeout,
            max_tries: self.max_tries,
            end: EndRule::ShortBlock,
        }
    }

    /// Sends `p` and waits for the peer's answer, resending it on timeout.
    pub(super) fn handshake(&mut self, p: &Packet<'_>, now: Instant) {
        let bytes = packet(p);
        self.out.push_back(bytes.clone());
        self.phase = Phase::Handshake {
            packet: bytes,
            at: now,
            tries: 1,
        };
    }

    /// Starts sending `source` (DATA 1 goes out at once).
    pub(super) fn start_sending(&mut self, source: Box<dyn Source>, now: Instant) -> Event {
        self.phase = Phase::Sending(Sender::new(self.arq(), source));
        self.fill(now)
    }

    /// Starts receiving into `sink`; `ack0`: acknowledge block 0 first
    /// (a server answering a WRQ without options, or a client after OACK).
    pub(super) fn start_receiving(&mut self, sink: Box<dyn Sink>, ack0: bool, now: Instant) {
        let mut receiver = Receiver::new(self.arq(), sink);
        receiver.start(now);
        let last_ack = packet(&Packet::Ack { block: Block(0) });
        if ack0 {
            self.out.push_back(last_ack.clone());
        }
        self.phase = Phase::Receiving { receiver, last_ack };
    }

    /// Queues DATA up to the window.
    fn fill(&mut self, now: Instant) -> Event {
        let Phase::Sending(sender) = &mut self.phase else {
            return Event::Nothing;
        };
        loop {
            match sender.poll_block(now) {
                Ok(Some((index, data))) => {
                    if index <= self.highest_sent {
                        self.retransmissions += 1;
                    }
                    self.highest_sent = self.highest_sent.max(index);
                    let block = Block::from_index(index);
                    self.out
                        .push_back(packet(&Packet::Data { block, data: &data }));
                }
                Ok(None) => return Event::Nothing,
                Err(kind) => return Event::Failed(kind),
            }
        }
    }

    /// An ACK arrived.
    pub(super) fn on_ack(&mut self, block: Block, now: Instant) -> Event {
        let Phase::Sending(sender) = &mut self.phase else {
            return Event::Nothing;
        };
        let index = block.index_near(sender.base().saturating_sub(1));
        if sender.on_ack(index, now) == crate::proto::arq::Acked::Advanced {
            if sender.is_done() {
                self.moved = sender.bytes_sent();
                self.phase = Phase::Done;
                return Event::Complete;
            }
            // RFC 7440: an ACK short of what was sent means a gap; go back
            // to it. (Duplicate ACKs never trigger anything: no Sorcerer's
            // Apprentice.)
            sender.rewind();
            return self.fill(now);
        }
        Event::Nothing
    }

    /// A DATA arrived.
    pub(super) fn on_data(&mut self, block: Block, data: &[u8], now: Instant) -> Event {
        let Phase::Receiving { receiver, last_ack } = &mut self.phase else {
            return Event::Nothing;
        };
        let index = block.index_near(receiver.expected());
        match receiver.on_block(index, data, now) {
            Ok(Received::Accepted { ack: Some(i), last }) => {
                *last_ack = packet(&Packet::Ack {
                    block: Block::from_index(i),
                });
                if last {
                    // The ACK of the last block says "stored": it leaves
                    // only once the file is under its final name. A failed
                    // commit (the name appeared meanwhile, the disk filled)
                    // answers an ERROR instead, never this ACK.
                    self.moved = receiver.bytes();
                    return match receiver.commit() {
                        Ok(_) => {
                            self.out.push_back(last_ack.clone());
                            Event::Complete
                        }
                        Err(kind) => Event::Failed(kind),
                    };
                }
                self.out.push_back(last_ack.clone());
                Event::Nothing
            }
            Ok(Received::Accepted { ack: None, .. } | Received::Stray) => Event::Nothing,
            Ok(Received::Duplicate { ack } | Received::OutOfOrder { ack }) => {
                *last_ack = packet(&Packet::Ack {
                    block: Block::from_index(ack),
                });
                self.out.push_back(last_ack.clone());
                Event::Nothing
            }
            Err(kind) => Event::Failed(kind),
        }
    }

    /// Fires whatever timer is due.
    pub(super) fn on_timeout(&mut self, now: Instant) -> Event {
        match &mut self.phase {
            Phase::Handshake { packet, at, tries } => {
                if now < *at + self.timeout {
                    return Event::Nothing;
                }
                if *tries >= self.max_tries {
                    return Event::GiveUp(*tries);
                }
                *tries += 1;
                *at = now;
                self.retransmissions += 1;
                self.out.push_back(packet.clone());
                Event::Nothing
            }
            Phase::Sending(sender) => match sender.on_timeout(now) {
                // `fill` counts every block that goes out again.
                Some(Timeout::Retransmit) => self.fill(now),
                Some(Timeout::GiveUp { tries }) => Event::GiveUp(tries),
                None => Event::Nothing,
            },
            Phase::Receiving { receiver, last_ack } => match receiver.on_timeout(now) {
                Some(Timeout::Retransmit) => {
                    self.retransmissions += 1;
                    self.out.push_back(last_ack.clone());
                    Event::Nothing
                }
                Some(Timeout::GiveUp { tries }) => Event::GiveUp(tries),
                None => Event::Nothing,
            },
            Phase::Done => Event::Nothing,
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Handshake { at, .. } => Some(*at + self.timeout),
            Phase::Sending(sender) => sender.poll_timeout(),
            Phase::Receiving { receiver, .. } => receiver.poll_timeout(),
            Phase::Done => None,
        }
    }

    /// Bytes moved so far.
    pub(super) fn bytes(&self) -> u64 {
        match &self.phase {
            Phase::Sending(s) => s.bytes_sent(),
            Phase::Receiving { receiver, .. } => receiver.bytes(),
            _ => self.moved,
        }
    }
}
