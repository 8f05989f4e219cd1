//! The stop-and-wait server: one session per client address.
//!
//! Owns the server's half of the spec's GET and PUT flows. The server never
//! retransmits on a timer: a client that lost something retransmits its
//! last packet, and a repeated ACK, DTA or FIN gets the server's last answer
//! again. A client silent for `timeout × tries` is dropped ("soft close"),
//! throwing away an upload that was not finished. After a finished transfer
//! the session stays to answer a lost FIN's retransmissions, and a new GET
//! or PUT from the same address starts afresh.

use super::{MAX_FILE, StopwaitConfig};
use crate::proto::arq::{Acked, Received, Receiver, Sender};
use crate::proto::data::{FileError, Files};
use crate::proto::{
    Acceptor, Admission, CloseReason, Context, Input, Request, Session, Side, Transmit,
};
use crate::time::Instant;
use crate::wire::stopwait::{Bit, Kind, Packet};
use bytes::BytesMut;
use log::{debug, info};
use std::net::SocketAddr;
use std::rc::Rc;

enum Job {
    /// Nothing running (a new session, or between transfers).
    Idle,
    /// Serving a GET; `fin` once the last block is acknowledged.
    Get {
        name: String,
        sender: Sender,
        fin: bool,
    },
    /// Receiving a PUT; `committed` once the FIN was answered.
    Put {
        name: String,
        receiver: Receiver,
        committed: Option<u32>,
    },
}

/// One client's transfers.
pub struct StopwaitServer {
    files: Rc<dyn Files>,
    config: StopwaitConfig,
    job: Job,
    /// The last datagram sent: repeated on a duplicate.
    last_answer: Vec<u8>,
    /// Datagrams to send now.
    out: Vec<Vec<u8>>,
    last_heard: Instant,
    close: Option<CloseReason>,
}

impl core::fmt::Debug for StopwaitServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StopwaitServer").finish_non_exhaustive()
    }
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

fn error_text(e: FileError) -> &'static [u8] {
    match e {
        FileError::NotFound => b"file not found",
        FileError::Forbidden => b"forbidden",
        FileError::Exists => b"file exists",
        FileError::TooLarge => b"file too large",
        FileError::Io(_) => b"server error",
    }
}

impl StopwaitServer {
    /// A session over `files`, created when its first datagram arrived at `now`.
    pub fn new(files: Rc<dyn Files>, config: StopwaitConfig, now: Instant) -> Self {
        Self {
            files,
            config,
            job: Job::Idle,
            last_answer: Vec::new(),
            out: Vec::new(),
            last_heard: now,
            close: None,
        }
    }

    fn answer(&mut self, d: Vec<u8>) {
        self.last_answer.clone_from(&d);
        self.out.push(d);
    }

    fn repeat(&mut self) {
        if !self.last_answer.is_empty() {
            self.out.push(self.last_answer.clone());
        }
    }

    fn refuse(&mut self, text: &[u8]) {
        self.answer(datagram(Kind::Error, Bit::Zero, 0, text));
        self.job = Job::Idle;
    }

    fn start_get(&mut self, cx: &Context<'_>, name: &str) {
        match self.files.open(name) {
            Ok(source) if source.size().is_some_and(|s| s > MAX_FILE) => {
                self.refuse(b"file too large")
            }
            Ok(source) => {
                info!("{} stopwait GET {name}", cx.tag);
                let sender = Sender::new(self.config.arq(), source);
                self.job = Job::Get {
                    name: name.to_owned(),
                    sender,
                    fin: false,
                };
                self.send_next(cx.now);
            }
            Err(e) => {
                debug!("{} stopwait GET {name}: {e}", cx.tag);
                self.refuse(error_text(e));
            }
        }
    }

    fn start_put(&mut self, cx: &Context<'_>, name: &str) {
        match self.files.create(name, None) {
            Ok(sink) => {
                info!("{} stopwait PUT {name}", cx.tag);
                let receiver = Receiver::new(self.config.arq(), sink);
                self.job = Job::Put {
                    name: name.to_owned(),
                    receiver,
                    committed: None,
                };
                self.answer(datagram(Kind::Ack, Bit::Zero, 0, b"ack"));
            }
            Err(e) => {
                debug!("{} stopwait PUT {name}: {e}", cx.tag);
                self.refuse(error_text(e));
            }
        }
    }

    /// GET: the next block, or the FIN once every block is acknowledged.
    fn send_next(&mut self, now: Instant) {
        let Job::Get { sender, fin, .. } = &mut self.job else {
            return;
        };
        match sender.poll_block(now) {
            Ok(Some((index, payload))) => {
                let block = u32::try_from(index).unwrap_or(u32::MAX);
                let d = datagram(Kind::Data, Bit::of_block(block), block, &payload);
                self.answer(d);
            }
            Ok(None) if sender.is_done() => {
                *fin = true;
                self.answer(datagram(Kind::Fin, Bit::Fin, 0, b"I'm Done"));
            }
            Ok(None) => {}
            Err(_) => self.refuse(b"server error"),
        }
    }

    fn on_get_packet(&mut self, cx: &Context<'_>, p: &Packet<'_>) {
        let Job::Get { sender, fin, .. } = &mut self.job else {
            return;
        };
        match (p.kind, *fin) {
            // A client that missed the FIN repeats its last ACK.
            (Kind::Ack, true) => self.repeat(),
            (Kind::Ack, false) => {
                let base = sender.base();
                let names = |i: u64| u64::from(p.block) == i && p.bit == Bit::of_block(p.block);
                if names(base) {
                    if sender.on_ack(base, cx.now) == Acked::Advanced {
                        self.send_next(cx.now);
                    }
                } else if base > 1 && names(base - 1) {
                    // The previous block's ACK again: our block was lost.
                    self.repeat();
                }
                // Anything else (a very late ACK) is ignored.
            }
            // The GET again: our first block was lost.
            (Kind::Get, _) => self.repeat(),
            _ => {}
        }
    }

    fn on_put_packet(&mut self, cx: &Context<'_>, p: &Packet<'_>) {
        let Job::Put {
            receiver,
            committed,
            name,
        } = &mut self.job
        else {
            return;
        };
        match p.kind {
            Kind::Put => self.repeat(),
            Kind::Data if committed.is_none() => {
                let expected = receiver.expected();
                let block = u64::from(p.block);
                // Both the number and the bit must name the expected block.
                if block == expected && p.bit == Bit::of_block(p.block) {
                    if expected > u64::from(crate::wire::stopwait::MAX_BLOCK) {
                        return self.refuse(b"file too large");
                    }
                    match receiver.on_block(block, p.message, cx.now) {
                        Ok(Received::Accepted { .. }) => {
                            let d = datagram(Kind::Ack, p.bit, p.block, b"ack");
                            self.answer(d);
                        }
                        Ok(_) => self.repeat(),
                        Err(_) => self.refuse(b"server error"),
                    }
                } else if block + 1 == expected && p.bit == Bit::of_block(p.block) {
                    self.repeat();
                }
            }
            Kind::Fin if committed.is_some() => self.repeat(),
            Kind::Fin => {
                let last = u64::from(p.block);
                if last != receiver.last_in_order() {
                    return self.refuse(b"incomplete");
                }
                match receiver.commit() {
                    Ok(bytes) => {
                        info!("{} stopwait PUT {name}: {bytes} bytes stored", cx.tag);
                        *committed = Some(p.block);
                        let d = datagram(Kind::Ack, Bit::Fin, p.block, b"ack");
                        self.answer(d);
                    }
                    Err(std::io::ErrorKind::AlreadyExists) => self.refuse(b"file exists"),
                    Err(_) => self.refuse(b"server error"),
                }
            }
            _ => {}
        }
    }

    fn busy(&self) -> bool {
        match &self.job {
            Job::Idle => false,
            Job::Get { fin, .. } => !fin,
            Job::Put { committed, .. } => committed.is_none(),
        }
    }
}

impl Session for StopwaitServer {
    fn side(&self) -> Side {
        Side::Server
    }

    /// Retransmission timers: a millisecond late is fine.
    fn is_coarse(&self) -> bool {
        true
    }

    fn handle_input(&mut self, cx: &mut Context<'_>, input: Input<'_>) {
        let Input::Datagram { payload, .. } = input else {
            return;
        };
        let Ok(p) = Packet::parse(payload) else {
            return;
        };
        self.last_heard = cx.now;
        let name = String::from_utf8_lossy(p.message).into_owned();
        let same_request = matches!((&self.job, p.kind),
            (Job::Get { name: n, .. }, Kind::Get) | (Job::Put { name: n, .. }, Kind::Put) if *n == name);
        match p.kind {
            // The same request during its transfer is a retransmission (our
            // first answer was lost); any other request starts afresh.
            Kind::Get | Kind::Put if !(same_request && self.busy()) => {
                if p.kind == Kind::Get {
                    self.start_get(cx, &name);
                } else {
                    self.start_put(cx, &name);
                }
            }
            _ => match self.job {
                Job::Get { .. } => self.on_get_packet(cx, &p),
                Job::Put { .. } => self.on_put_packet(cx, &p),
                Job::Idle => {}
            },
        }
    }

    fn handle_timeout(&mut self, cx: &mut Context<'_>) {
        if cx.now >= self.soft_close_at() && self.close.is_none() {
            debug!("{} stopwait client silent: session dropped", cx.tag);
            self.close = Some(CloseReason::TimedOut {
                tries: self.config.tries,
            });
        }
    }

    fn poll_transmit(
        &mut self,
        _cx: &mut Context<'_>,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        if self.out.is_empty() {
            return None;
        }
        let d = self.out.remove(0);
        buf.extend_from_slice(&d);
        Some(Transmit {
            to: None,
            len: d.len(),
        })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.close.is_none().then(|| self.soft_close_at())
    }

    fn poll_request(&mut self) -> Option<Request> {
        self.close.take().map(Request::Close)
    }
}

impl StopwaitServer {
    fn soft_close_at(&self) -> Instant {
        self.last_heard + self.config.timeout.saturating_mul(self.config.tries)
    }
}

/// The acceptor on stopwait's UDP socket: a GET or PUT from a new address
/// starts that address's session; anything else from a stranger is ignored.
pub struct StopwaitAcceptor {
    files: Rc<dyn Files>,
    config: StopwaitConfig,
}

impl core::fmt::Debug for StopwaitAcceptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StopwaitAcceptor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl StopwaitAcceptor {
    /// Sessions over `files` with these timers.
    pub fn new(files: Rc<dyn Files>, config: StopwaitConfig) -> Self {
        Self { files, config }
    }
}

impl Acceptor for StopwaitAcceptor {
    fn accept_stream(
        &mut self,
        _cx: &mut Context<'_>,
        _peer: SocketAddr,
    ) -> Option<Box<dyn Session>> {
        None
    }

    fn accept_datagram(
        &mut self,
        cx: &mut Context<'_>,
        _from: SocketAddr,
        payload: &[u8],
        _reply: &mut BytesMut,
    ) -> Admission {
        match Packet::parse(payload) {
            Ok(p) if matches!(p.kind, Kind::Get | Kind::Put) => Admission::Shared(Box::new(
                StopwaitServer::new(self.files.clone(), self.config, cx.now),
            )),
            _ => Admission::Ignore,
        }
    }
}
