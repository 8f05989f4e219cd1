//! The TFTP client: `get` (RRQ) and `put` (WRQ).
//!
//! Owns the request, the reading of the server's first answer (an OACK with
//! what it granted, or DATA 1 / ACK 0 when it ignores options, which means
//! the defaults: 512-byte blocks, window 1), the transfer ID (learned from
//! that first answer; later datagrams from anywhere else get ERROR 5), and
//! the outcome. A granted blksize or windowsize larger than asked is a
//! protocol error.

use super::engine::{Engine, Event, Phase};
use super::netascii::{FromNetascii, ToNetascii};
use crate::proto::data::{Sink, Source};
use crate::proto::outcome::{ClientError, Outcome, OutcomeSlot, Progress, Refusal};
use crate::proto::{CloseReason, Context, DatagramInput, DatagramSession, Driven, Transmit, Wake};
use crate::time::{Duration, Instant};
use crate::wire::tftp::{Block, DEFAULT_BLKSIZE, ErrorCode, Mode, Options, Packet};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// Which way the file goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Read from the server (RRQ).
    Get,
    /// Write to the server (WRQ).
    Put,
}

/// A finished transfer: every block is through. A refusal is the
/// server's ERROR packet (its code and text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// Bytes moved.
    pub bytes: u64,
    /// From the request to the end.
    pub elapsed: Duration,
    /// Packets sent again after a timeout.
    pub retransmissions: u64,
    /// The block size used.
    pub blksize: u16,
    /// The window used.
    pub windowsize: u16,
}

enum Local {
    Sink(Box<dyn Sink>),
    Source(Box<dyn Source>),
    Taken,
}

/// One TFTP transfer from the client's side.
pub struct TftpClient {
    server: SocketAddr,
    tid: Option<SocketAddr>,
    verb: Verb,
    filename: String,
    mode: Mode,
    asked: Options,
    engine: Engine,
    local: Local,
    started: Option<Instant>,
    strangers: VecDeque<SocketAddr>,
    done: bool,
    outcome: OutcomeSlot<Done>,
    progress: Progress,
    close: Option<CloseReason>,
}

impl core::fmt::Debug for TftpClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TftpClient")
            .field("filename", &self.filename)
            .field("verb", &self.verb)
            .finish_non_exhaustive()
    }
}

impl TftpClient {
    /// Fetches `filename` from `server` into `sink`.
    #[allow(
        clippy::too_many_arguments,
        reason = "the request's fields, each needed once"
    )]
    pub fn get(
        server: SocketAddr,
        filename: &str,
        mode: Mode,
        options: Options,
        sink: Box<dyn Sink>,
        timeout: Duration,
        tries: u32,
        outcome: OutcomeSlot<Done>,
    ) -> Self {
        let sink: Box<dyn Sink> = match mode {
            Mode::Octet => sink,
            Mode::Netascii => Box::new(FromNetascii::new(sink)),
        };
        Self::new(
            server,
            Verb::Get,
            filename,
            mode,
            options,
            Local::Sink(sink),
            timeout,
            tries,
            outcome,
        )
    }

    /// Stores `source` on `server` as `filename`.
    #[allow(
        clippy::too_many_arguments,
        reason = "the request's fields, each needed once"
    )]
    pub fn put(
        server: SocketAddr,
        filename: &str,
        mode: Mode,
        options: Options,
        source: Box<dyn Source>,
        timeout: Duration,
        tries: u32,
        outcome: OutcomeSlot<Done>,
    ) -> Self {
        let source: Box<dyn Source> = match mode {
            Mode::Octet => source,
            Mode::Netascii => Box::new(ToNetascii::new(source)),
        };
        Self::new(
            server,
            Verb::Put,
            filename,
            mode,
            options,
            Local::Source(source),
            timeout,
            tries,
            outcome,
        )
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "private constructor behind get and put"
    )]
    fn new(
        server: SocketAddr,
        verb: Verb,
        filename: &str,
        mode: Mode,
        asked: Options,
        local: Local,
        timeout: Duration,
        tries: u32,
        outcome: OutcomeSlot<Done>,
    ) -> Self {
        Self {
            server,
            tid: None,
            verb,
            filename: filename.to_owned(),
            mode,
            asked,
            engine: Engine::new(timeout, tries),
            local,
            started: None,
            strangers: VecDeque::new(),
            done: false,
            outcome,
            progress: Progress::new(),
            close: None,
        }
    }

    /// Counts moved bytes into `progress`.
    #[must_use]
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    fn finish(&mut self, outcome: Outcome<Done>, reason: CloseReason) {
        if !self.done {
            self.done = true;
            self.outcome.set(outcome);
            self.close = Some(reason);
        }
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Nothing => {}
            Event::Complete => {
                let done = Done {
                    bytes: self.engine.bytes(),
                    elapsed: now - self.started.unwrap_or(now),
                    retransmissions: self.engine.retransmissions,
                    blksize: u16::try_from(self.engine.blksize).unwrap_or(u16::MAX),
                    windowsize: self.engine.window,
                };
                self.finish(Ok(done), CloseReason::Completed);
            }
            Event::GiveUp(tries) => self.finish(
                Err(ClientError::TimedOut { tries }),
                CloseReason::TimedOut { tries },
            ),
            Event::Failed(kind) => {
                self.engine
                    .out
                    .push_back(error_bytes(ErrorCode::NotDefined, "Client error"));
                // The local file failed: said as plainly as ever.
                let why = std::io::Error::from(kind).to_string();
                self.finish(Err(ClientError::Local(why)), CloseReason::Aborted);
            }
            Event::Violation(why) => {
                self.engine
                    .out
                    .push_back(error_bytes(ErrorCode::NotDefined, "Client error"));
                self.finish(Err(ClientError::Protocol(why.into())), CloseReason::Aborted);
            }
        }
        self.progress.set(self.engine.bytes());
    }

    /// Starts the transfer with what the server granted (`None`: it
    /// ignored options, so the defaults).
    fn begin(&mut self, granted: Option<&Options>, now: Instant) -> Event {
        if let Some(g) = granted {
            let too_big = |got: Option<u16>, asked: Option<u16>| {
                got.zip(asked).is_some_and(|(g, a)| g > a) || (got.is_some() && asked.is_none())
            };
            if too_big(g.blksize, self.asked.blksize)
                || too_big(g.windowsize, self.asked.windowsize)
            {
                return Event::Violation("the server granted an option larger than asked");
            }
            self.engine.blksize = usize::from(g.blksize.unwrap_or(DEFAULT_BLKSIZE));
            self.engine.window = g.windowsize.unwrap_or(1);
            // A download's size, when the server answered our tsize=0 (RFC
            // 2349): the progress bar's total.
            if let (Some(size), Local::Sink(_)) = (g.tsize, &self.local) {
                self.progress.set_total(size);
            }
            if let Some(t) = g.timeout {
                self.engine.timeout = Duration::from_secs(u64::from(t));
            }
        } else {
            self.engine.blksize = usize::from(DEFAULT_BLKSIZE);
            self.engine.window = 1;
        }
        match core::mem::replace(&mut self.local, Local::Taken) {
            Local::Sink(sink) => {
                // After an OACK the client acknowledges block 0.
                self.engine.start_receiving(sink, granted.is_some(), now);
                Event::Nothing
            }
            Local::Source(source) => self.engine.start_sending(source, now),
            Local::Taken => Event::Nothing,
        }
    }
}

fn error_bytes(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    Packet::Error { code, message }.emit(&mut b);
    b.to_vec()
}

impl Driven for TftpClient {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if self.done {
            return;
        }
        let event = self.engine.on_timeout(cx.now);
        self.on_event(event, cx.now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            None
        } else {
            self.engine.poll_timeout()
        }
    }

    /// Retransmission timers: a millisecond late is fine.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        // Only once the last packets (an ERROR, the final ACK) are out.
        if self.engine.out.is_empty() {
            self.close.take()
        } else {
            None
        }
    }
}

impl DatagramSession for TftpClient {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        let (from, payload) = match input {
            DatagramInput::Datagram { from, payload, .. } => (from, payload),
            DatagramInput::Failed { kind, .. } => {
                return self.finish(Err(ClientError::Io(kind)), CloseReason::Aborted);
            }
            // A UDP client has no device endpoint.
            DatagramInput::Packet { .. } => return,
        };
        if self.done {
            return;
        }
        match self.tid {
            // The first answer names the transfer: same host, new port.
            None if from.ip() == self.server.ip() => self.tid = Some(from),
            None => return,
            Some(tid) if tid != from => {
                if self.strangers.len() < 16 {
                    self.strangers.push_back(from);
                }
                return;
            }
            Some(_) => {}
        }
        let Ok(p) = Packet::parse(payload) else {
            return;
        };
        let handshaking = matches!(self.engine.phase, Phase::Handshake { .. });
        let event = match (p, self.verb, handshaking) {
            (Packet::Error { code, message }, _, _) => {
                let refusal = Refusal {
                    answer: message.to_owned(),
                    code: Some(code.into()),
                };
                return self.finish(Err(ClientError::Refused(refusal)), CloseReason::Completed);
            }
            (Packet::Oack { options }, _, true) => self.begin(Some(&options), cx.now),
            (Packet::Data { block, data }, Verb::Get, true) => {
                let e = self.begin(None, cx.now);
                if e == Event::Nothing {
                    self.engine.on_data(block, data, cx.now)
                } else {
                    e
                }
            }
            (Packet::Ack { block: Block(0) }, Verb::Put, true) => self.begin(None, cx.now),
            (Packet::Data { block, data }, Verb::Get, false) => {
                self.engine.on_data(block, data, cx.now)
            }
            (Packet::Ack { block }, Verb::Put, false) => self.engine.on_ack(block, cx.now),
            _ => Event::Nothing,
        };
        self.on_event(event, cx.now);
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        if self.started.is_none() {
            self.started = Some(cx.now);
            let options = self.asked;
            let filename = self.filename.clone();
            let request = match self.verb {
                Verb::Get => Packet::Rrq {
                    filename: &filename,
                    mode: self.mode,
                    options,
                },
                Verb::Put => Packet::Wrq {
                    filename: &filename,
                    mode: self.mode,
                    options,
                },
            };
            self.engine.handshake(&request, cx.now);
        }
        if let Some(stranger) = self.strangers.pop_front() {
            let d = error_bytes(ErrorCode::UnknownTransferId, "Unknown transfer ID");
            buf.extend_from_slice(&d);
            return Some(Transmit::new(Some(stranger), d.len()));
        }
        let d = self.engine.out.pop_front()?;
        buf.extend_from_slice(&d);
        // Until the server answers, everything goes to its request port.
        Some(Transmit::new(
            Some(self.tid.unwrap_or(self.server)),
            d.len(),
        ))
    }
}
