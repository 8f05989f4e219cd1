//! The stop-and-wait clients: `get` receives, `put` sends.
//!
//! Owns the client's half of the flows and the retransmission timer: the
//! client resends its last packet after `timeout` without an answer, up to
//! `tries` packets in all, then gives up. Progress (an expected answer)
//! resets the count. Only datagrams from the server's address count.
//!
//! One exception to "resend the last packet": the client's first answer
//! (the ACK of block 1, or block 1 of an upload) is what validates it to
//! the server, and a server forgets a peer that has not answered within a
//! few seconds (`unvalidated_lifetime`, shorter than the default 5 s
//! timer). So while that answer is unconfirmed, a timeout resends the
//! *request* and then the answer: a server that still has the session takes
//! the answer as a retransmission; one that dropped it starts afresh on the
//! request, the answer right behind validates the fresh session, and if
//! the fresh block 1 (GET) or ACK 0 (PUT) arrives the client answers it
//! again. Resending the answer alone would reach no session, and the
//! transfer would hang until the client gives up.

use super::{MAX_FILE, StopwaitConfig};
use crate::proto::arq::{Acked, Received, Receiver, Sender};
use crate::proto::data::{Sink, Source};
use crate::proto::outcome::{ClientError, Outcome, OutcomeSlot, Progress};
use crate::proto::{CloseReason, Context, DatagramInput, DatagramSession, Driven, Transmit, Wake};
use crate::time::{Duration, Instant};
use crate::wire::stopwait::{Bit, Kind, Packet};
use bytes::BytesMut;
use std::net::SocketAddr;

/// A finished transfer: every byte moved. A refusal is the server's `E…`
/// packet (its text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// File size.
    pub bytes: u64,
    /// From the request to the end.
    pub elapsed: Duration,
    /// Packets sent again after a timeout.
    pub retransmissions: u64,
}

fn datagram(kind: Kind, bit: Bit, block: u32, message: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    Packet {
        kind,
        bit,
        block,
        message,
    }
    .emit(&mut b);
    b.to_vec()
}

/// The retransmission side every client shares.
struct Link {
    server: SocketAddr,
    config: StopwaitConfig,
    /// The GET or PUT, resent while `validating`.
    request: Vec<u8>,
    /// Our first answer is out and not yet confirmed by the server's next
    /// step: a timeout resends the request instead of it.
    validating: bool,
    /// The request was resent while validating: the server's first answer
    /// may come again, and is answered again.
    restarting: bool,
    last_sent: Vec<u8>,
    out: Vec<Vec<u8>>,
    sent_at: Instant,
    started: Instant,
    tries: u32,
    retransmissions: u64,
    done: bool,
    outcome: OutcomeSlot<Done>,
    progress: Progress,
    close: Option<CloseReason>,
}

impl Link {
    fn new(
        server: SocketAddr,
        config: StopwaitConfig,
        first: Vec<u8>,
        outcome: OutcomeSlot<Done>,
    ) -> Self {
        Self {
            server,
            config,
            out: vec![first.clone()],
            request: first.clone(),
            validating: false,
            restarting: false,
            last_sent: first,
            sent_at: Instant::ZERO,
            started: Instant::ZERO,
            tries: 1,
            retransmissions: 0,
            done: false,
            outcome,
            progress: Progress::new(),
            close: None,
        }
    }

    /// Sends a new packet (progress was made).
    fn send(&mut self, d: Vec<u8>, now: Instant) {
        self.last_sent.clone_from(&d);
        self.out.push(d);
        self.sent_at = now;
        self.tries = 1;
        self.restarting = false;
    }

    /// The server answered our resent request: send our first answer
    /// again. A retransmission, and not progress: the try count goes on, so
    /// a loss pattern that always eats that answer still ends in a give-up.
    fn answer_restart(&mut self, now: Instant) {
        self.restarting = false;
        self.retransmissions += 1;
        self.out.push(self.last_sent.clone());
        self.sent_at = now;
    }

    fn finish(&mut self, outcome: Outcome<Done>, reason: CloseReason) {
        if !self.done {
            self.done = true;
            self.outcome.set(outcome);
            self.close = Some(reason);
        }
    }

    fn refused(&mut self, p: &Packet<'_>) {
        let text = String::from_utf8_lossy(p.message).into_owned();
        self.finish(Err(ClientError::refused(text)), CloseReason::Completed);
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.done || now < self.sent_at + self.config.timeout {
            return;
        }
        if self.tries >= self.config.tries {
            return self.finish(
                Err(ClientError::TimedOut { tries: self.tries }),
                CloseReason::TimedOut { tries: self.tries },
            );
        }
        self.tries += 1;
        self.retransmissions += 1;
        if self.validating {
            // The request first: to a server that forgot us it starts a
            // fresh session, which the answer right behind it validates; a
            // session still there takes the answer as the retransmission
            // it is.
            self.restarting = true;
            self.out.push(self.request.clone());
        }
        self.out.push(self.last_sent.clone());
        self.sent_at = now;
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut BytesMut) -> Option<Transmit> {
        if self.out.is_empty() {
            return None;
        }
        if self.started == Instant::ZERO && self.sent_at == Instant::ZERO {
            self.started = now;
            self.sent_at = now;
        }
        let d = self.out.remove(0);
        buf.extend_from_slice(&d);
        Some(Transmit::new(Some(self.server), d.len()))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.done).then(|| self.sent_at + self.config.timeout)
    }

    /// The datagram, if it is from the server and well formed.
    fn accept<'a>(&self, input: &DatagramInput<'a>) -> Option<Packet<'a>> {
        match *input {
            DatagramInput::Datagram { from, payload, .. } if from == self.server && !self.done => {
                Packet::parse(payload).ok()
            }
            _ => None,
        }
    }

    /// The socket failed: the transfer cannot go on.
    fn fail(&mut self, kind: std::io::ErrorKind) {
        self.finish(Err(ClientError::Io(kind)), CloseReason::Aborted);
    }
}

/// `G|0|00000|name`, then the blocks into a sink.
pub struct GetClient {
    link: Link,
    receiver: Receiver,
}

impl core::fmt::Debug for GetClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GetClient")
            .field("receiver", &self.receiver)
            .finish_non_exhaustive()
    }
}

impl GetClient {
    /// Fetches `name` from `server` into `sink` (committed only after the FIN).
    pub fn new(
        name: &str,
        server: SocketAddr,
        sink: Box<dyn Sink>,
        config: StopwaitConfig,
        outcome: OutcomeSlot<Done>,
    ) -> Self {
        let first = datagram(Kind::Get, Bit::Zero, 0, name.as_bytes());
        Self {
            link: Link::new(server, config, first, outcome),
            receiver: Receiver::new(config.arq(), sink),
        }
    }

    /// Counts received bytes into `progress`.
    #[must_use]
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.link.progress = progress;
        self
    }
}

impl Driven for GetClient {
    fn handle_timeout(&mut self, cx: &mut Context) {
        self.link.on_timeout(cx.now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.link.poll_timeout()
    }

    /// Retransmission timers: a millisecond late is fine.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.link.close.take()
    }
}

impl DatagramSession for GetClient {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        if let DatagramInput::Failed { kind, .. } = input {
            return self.link.fail(kind);
        }
        let Some(p) = self.link.accept(&input) else {
            return;
        };
        match p.kind {
            Kind::Data => {
                let expected = self.receiver.expected();
                // Both fields must name the expected block (the seed's fix).
                if u64::from(p.block) == expected && p.bit == Bit::of_block(p.block) {
                    match self.receiver.on_block(expected, p.message, cx.now) {
                        Ok(Received::Accepted { .. }) => {
                            self.link.progress.set(self.receiver.bytes());
                            self.link
                                .send(datagram(Kind::Ack, p.bit, p.block, b"ack"), cx.now);
                            // Until block 2 (or the FIN) shows the server
                            // has our ACK 1, the session may be unvalidated.
                            self.link.validating = p.block == 1;
                        }
                        Ok(_) => {}
                        Err(kind) => self.link.finish(
                            Err(ClientError::Local(format!(
                                "writing the output: {}",
                                std::io::Error::from(kind)
                            ))),
                            CloseReason::Aborted,
                        ),
                    }
                } else if self.link.restarting && p.block == 1 && expected == 2 {
                    // The server answered our resent GET with block 1: a
                    // fresh session, or the old one repeating itself.
                    self.link.answer_restart(cx.now);
                }
                // A copy of an earlier block is not answered: the server
                // answers every repeated ACK, so answering repeated blocks
                // too would keep every duplicated datagram bouncing for the
                // rest of the transfer (the Sorcerer's Apprentice). A lost
                // ACK is resent by the timer.
            }
            Kind::Fin => {
                let elapsed = cx.now - self.link.started;
                let retransmissions = self.link.retransmissions;
                match self.receiver.commit() {
                    Ok(bytes) => self.link.finish(
                        Ok(Done {
                            bytes,
                            elapsed,
                            retransmissions,
                        }),
                        CloseReason::Completed,
                    ),
                    Err(kind) => self.link.finish(
                        Err(ClientError::Local(format!(
                            "saving the output: {}",
                            std::io::Error::from(kind)
                        ))),
                        CloseReason::Aborted,
                    ),
                }
            }
            Kind::Error => self.link.refused(&p),
            _ => {}
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        self.link.poll_transmit(cx.now, buf)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PutState {
    /// Waiting for `A|0|00000`.
    Request,
    /// Sending blocks.
    Blocks,
    /// Waiting for `A|F|last`.
    Fin { last: u32 },
}

/// `P|0|00000|name`, the blocks, then `F|F|last|I'm Done`.
pub struct PutClient {
    link: Link,
    sender: Sender,
    state: PutState,
}

impl core::fmt::Debug for PutClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PutClient")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl PutClient {
    /// Stores `source` (at most 9 999 900 bytes) as `name` on `server`.
    pub fn new(
        name: &str,
        server: SocketAddr,
        source: Box<dyn Source>,
        config: StopwaitConfig,
        outcome: OutcomeSlot<Done>,
    ) -> Self {
        let first = datagram(Kind::Put, Bit::Zero, 0, name.as_bytes());
        let mut link = Link::new(server, config, first, outcome);
        if source.size().is_some_and(|s| s > MAX_FILE) {
            link.finish(
                Err(ClientError::Local(format!(
                    "stop-and-wait carries at most {MAX_FILE} bytes"
                ))),
                CloseReason::Aborted,
            );
        }
        Self {
            link,
            sender: Sender::new(config.arq(), source),
            state: PutState::Request,
        }
    }

    /// Counts sent bytes into `progress`.
    #[must_use]
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.link.progress = progress;
        self
    }

    fn send_next(&mut self, now: Instant) {
        match self.sender.poll_block(now) {
            Ok(Some((index, payload))) => {
                let block = u32::try_from(index).unwrap_or(u32::MAX);
                self.link.progress.set(self.sender.bytes_sent());
                self.link.send(
                    datagram(Kind::Data, Bit::of_block(block), block, &payload),
                    now,
                );
                // Until its ACK, block 1 is what validates us to the server.
                self.link.validating = index == 1;
            }
            Ok(None) if self.sender.is_done() => {
                let last = u32::try_from(self.sender.base() - 1).unwrap_or(u32::MAX);
                self.state = PutState::Fin { last };
                self.link
                    .send(datagram(Kind::Fin, Bit::Fin, last, b"I'm Done"), now);
                self.link.validating = false;
            }
            Ok(None) => {}
            Err(kind) => self.link.finish(
                Err(ClientError::Local(format!(
                    "reading the input: {}",
                    std::io::Error::from(kind)
                ))),
                CloseReason::Aborted,
            ),
        }
    }
}

impl Driven for PutClient {
    fn handle_timeout(&mut self, cx: &mut Context) {
        self.link.on_timeout(cx.now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.link.poll_timeout()
    }

    /// Retransmission timers: a millisecond late is fine.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.link.close.take()
    }
}

impl DatagramSession for PutClient {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        if let DatagramInput::Failed { kind, .. } = input {
            return self.link.fail(kind);
        }
        let Some(p) = self.link.accept(&input) else {
            return;
        };
        match (p.kind, self.state) {
            (Kind::Error, _) => self.link.refused(&p),
            (Kind::Ack, PutState::Request) if p.block == 0 && p.bit == Bit::Zero => {
                self.state = PutState::Blocks;
                self.send_next(cx.now);
            }
            (Kind::Ack, PutState::Blocks)
                if p.block == 0 && p.bit == Bit::Zero && self.link.restarting =>
            {
                // The server answered our resent PUT with ACK 0: send
                // block 1 again.
                self.link.answer_restart(cx.now);
            }
            (Kind::Ack, PutState::Blocks) => {
                let base = self.sender.base();
                if u64::from(p.block) == base
                    && p.bit == Bit::of_block(p.block)
                    && self.sender.on_ack(base, cx.now) == Acked::Advanced
                {
                    self.send_next(cx.now);
                }
            }
            (Kind::Ack, PutState::Fin { last }) if p.bit == Bit::Fin && p.block == last => {
                let elapsed = cx.now - self.link.started;
                let done = Done {
                    bytes: self.sender.bytes_sent(),
                    elapsed,
                    retransmissions: self.link.retransmissions,
                };
                self.link.finish(Ok(done), CloseReason::Completed);
            }
            _ => {}
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        self.link.poll_transmit(cx.now, buf)
    }
}
