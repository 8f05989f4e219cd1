//! The TFTP server: one session per transfer, on its own socket (its TID).
//!
//! Owns request handling and option negotiation. Policies, as documented in
//! `docs/protocols/tftp.md`:
//! * blksize is granted as asked but never above `max_blksize` (1468, an
//!   Ethernet MTU's worth); windowsize never above `max_windowsize` (64);
//!   timeout as asked (1–255 s); tsize answered with the file's size on an
//!   RRQ (octet mode) and checked against `max_file_size` on a WRQ. Only
//!   options the client asked for appear in the OACK.
//! * After an OACK to an RRQ no data moves until the client's ACK 0: the
//!   OACK doubles as a check that the client's address is real.
//! * A datagram from anyone but the transfer's peer gets ERROR 5 and the
//!   transfer goes on.
//! * Uploads follow the store's write policy (create-only unless
//!   `--allow-overwrite`; error 6 when the file exists); `read_only` refuses
//!   every WRQ. Each transfer gives up after its retry budget, so a
//!   vanished client never wedges a session; sessions are bounded per peer
//!   and in all.

use super::engine::{Engine, Event, Phase};
use super::netascii::{FromNetascii, ToNetascii};
use crate::proto::data::{FileError, Files, Sink, Source};
use crate::proto::{
    Acceptor, Admission, CloseReason, Context, Input, Request, Session, Side, Transmit,
};
use crate::time::{Duration, Instant};
use crate::wire::tftp::{ErrorCode, Mode, Options, Packet};
use bytes::BytesMut;
use core::cell::RefCell;
use log::{debug, info};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

/// The server's TFTP limits (config keys `tftp_max_blksize`,
/// `tftp_max_windowsize`, `tftp_timeout`, `tftp_tries`, `tftp_read_only`,
/// `tftp_max_sessions`, `tftp_max_sessions_per_peer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TftpConfig {
    /// Largest blksize granted.
    pub max_blksize: u16,
    /// Largest windowsize granted.
    pub max_windowsize: u16,
    /// Retransmission timeout unless the client negotiates one.
    pub timeout: Duration,
    /// Sends of one packet before giving up.
    pub tries: u32,
    /// Refuse every WRQ.
    pub read_only: bool,
    /// Transfers at once, in all.
    pub max_sessions: usize,
    /// Transfers at once from one IP address.
    pub max_sessions_per_peer: usize,
}

impl Default for TftpConfig {
    fn default() -> Self {
        Self {
            max_blksize: 1468,
            max_windowsize: 64,
            timeout: Duration::from_secs(1),
            tries: 5,
            read_only: false,
            max_sessions: 256,
            max_sessions_per_peer: 16,
        }
    }
}

/// Transfers in progress, counted so the acceptor can bound them.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// Held by a session; frees its place in [`Counts`] when dropped.
struct Place {
    counts: Rc<RefCell<Counts>>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut c = self.counts.borrow_mut();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_peer.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_peer.remove(&self.ip);
            }
        }
    }
}

fn error_packet(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    Packet::Error { code, message }.emit(&mut b);
    b.to_vec()
}

fn file_error(e: FileError) -> (ErrorCode, &'static str) {
    match e {
        FileError::NotFound => (ErrorCode::FileNotFound, "File not found"),
        FileError::Forbidden => (ErrorCode::AccessViolation, "Access violation"),
        FileError::Exists => (ErrorCode::FileExists, "File already exists"),
        FileError::TooLarge => (ErrorCode::DiskFull, "File too large"),
        FileError::Io(_) => (ErrorCode::NotDefined, "Server error"),
    }
}

/// What waits for the client's answer to our OACK.
enum Pending {
    None,
    Source(Box<dyn Source>),
    Sink(Box<dyn Sink>),
}

/// One transfer.
pub struct TftpServer {
    files: Rc<dyn Files>,
    config: TftpConfig,
    peer: SocketAddr,
    engine: Engine,
    pending: Pending,
    started: bool,
    /// ERROR 5 answers owed to strangers (bounded).
    strangers: VecDeque<SocketAddr>,
    /// After a WRQ completes: keep answering a repeated last block until then.
    dally_until: Option<Instant>,
    close: Option<CloseReason>,
    _place: Place,
}

impl core::fmt::Debug for TftpServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TftpServer")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl TftpServer {
    fn fail(&mut self, code: ErrorCode, message: &str, reason: CloseReason) {
        self.engine.out.push_back(error_packet(code, message));
        self.engine.phase = Phase::Done;
        self.close.get_or_insert(reason);
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Nothing => {}
            Event::Complete => match self.engine.phase {
                // An upload: dally so a lost final ACK can be repeated.
                Phase::Receiving { .. } => self.dally_until = Some(now + self.engine.timeout * 2),
                _ => {
                    self.close.get_or_insert(CloseReason::Completed);
                }
            },
            Event::GiveUp(tries) => {
                self.engine.phase = Phase::Done;
                self.close.get_or_insert(CloseReason::TimedOut { tries });
            }
            Event::Failed(why) => {
                debug!("tftp transfer failed: {why}");
                self.fail(ErrorCode::NotDefined, "Server error", CloseReason::Aborted);
            }
        }
    }

    /// Grants what the client asked, within limits; the OACK lists exactly
    /// the options granted (only ones that were asked for).
    fn negotiate(&mut self, asked: &Options, size: Option<u64>) -> Options {
        let mut granted = Options::default();
        if let Some(b) = asked.blksize {
            let b = b.min(self.config.max_blksize);
            self.engine.blksize = usize::from(b);
            granted.blksize = Some(b);
        }
        if let Some(t) = asked.timeout {
            self.engine.timeout = Duration::from_secs(u64::from(t));
            granted.timeout = Some(t);
        }
        if asked.tsize.is_some() {
            granted.tsize = size;
        }
        if let Some(w) = asked.windowsize {
            let w = w.min(self.config.max_windowsize).max(1);
            self.engine.window = w;
            granted.windowsize = Some(w);
        }
        granted
    }

    fn start(&mut self, cx: &Context<'_>, payload: &[u8]) {
        let Ok(request @ (Packet::Rrq { .. } | Packet::Wrq { .. })) = Packet::parse(payload) else {
            return self.fail(
                ErrorCode::IllegalOperation,
                "Illegal TFTP operation",
                CloseReason::Protocol("not a request"),
            );
        };
        match request {
            Packet::Rrq {
                filename,
                mode,
                options,
            } => {
                let source = match self.files.open(filename) {
                    Ok(s) => s,
                    Err(e) => {
                        let (code, text) = file_error(e);
                        debug!("{} tftp RRQ {filename:?}: {e}", cx.tag);
                        return self.fail(code, text, CloseReason::Protocol("refused"));
                    }
                };
                // netascii changes the length: no tsize then.
                let size = if mode == Mode::Octet {
                    source.size()
                } else {
                    None
                };
                let source: Box<dyn Source> = match mode {
                    Mode::Octet => source,
                    Mode::Netascii => Box::new(ToNetascii::new(source)),
                };
                let granted = self.negotiate(&options, size);
                info!("{} tftp RRQ {filename:?} {mode} {granted}", cx.tag);
                if granted.is_empty() {
                    let event = self.engine.start_sending(source, cx.now);
                    self.on_event(event, cx.now);
                } else {
                    self.pending = Pending::Source(source);
                    self.engine
                        .handshake(&Packet::Oack { options: granted }, cx.now);
                }
            }
            Packet::Wrq {
                filename,
                mode,
                options,
            } => {
                if self.config.read_only {
                    return self.fail(
                        ErrorCode::AccessViolation,
                        "Read-only server",
                        CloseReason::Protocol("read-only"),
                    );
                }
                let sink = match self
                    .files
                    .create(filename, options.tsize.filter(|_| mode == Mode::Octet))
                {
                    Ok(s) => s,
                    Err(e) => {
                        let (code, text) = file_error(e);
                        debug!("{} tftp WRQ {filename:?}: {e}", cx.tag);
                        return self.fail(code, text, CloseReason::Protocol("refused"));
                    }
                };
                let sink: Box<dyn Sink> = match mode {
                    Mode::Octet => sink,
                    Mode::Netascii => Box::new(FromNetascii::new(sink)),
                };
                let granted = self.negotiate(&options, options.tsize);
                info!("{} tftp WRQ {filename:?} {mode} {granted}", cx.tag);
                if granted.is_empty() {
                    self.engine.start_receiving(sink, true, cx.now);
                } else {
                    self.pending = Pending::Sink(sink);
                    self.engine
                        .handshake(&Packet::Oack { options: granted }, cx.now);
                }
            }
            _ => {}
        }
    }
}

impl Session for TftpServer {
    fn side(&self) -> Side {
        Side::Server
    }

    /// Retransmission timers: a millisecond late is fine.
    fn is_coarse(&self) -> bool {
        true
    }

    fn handle_input(&mut self, cx: &mut Context<'_>, input: Input<'_>) {
        let Input::Datagram { from, payload, .. } = input else {
            return;
        };
        if !self.started {
            self.started = true;
            return self.start(cx, payload);
        }
        if from != self.peer {
            // RFC 1350: a stranger gets ERROR 5; the transfer goes on.
            if self.strangers.len() < 16 {
                self.strangers.push_back(from);
            }
            return;
        }
        let Ok(p) = Packet::parse(payload) else {
            return;
        };
        let event = match (p, &self.engine.phase) {
            (Packet::Ack { block: 0 }, Phase::Handshake { .. }) => {
                match core::mem::replace(&mut self.pending, Pending::None) {
                    Pending::Source(source) => self.engine.start_sending(source, cx.now),
                    other => {
                        self.pending = other;
                        Event::Nothing
                    }
                }
            }
            (Packet::Data { block: 1, data }, Phase::Handshake { .. }) => {
                match core::mem::replace(&mut self.pending, Pending::None) {
                    Pending::Sink(sink) => {
                        self.engine.start_receiving(sink, false, cx.now);
                        self.engine.on_data(1, data, cx.now)
                    }
                    other => {
                        self.pending = other;
                        Event::Nothing
                    }
                }
            }
            (Packet::Ack { block }, _) => self.engine.on_ack(block, cx.now),
            (Packet::Data { block, data }, _) => self.engine.on_data(block, data, cx.now),
            (Packet::Error { code, message }, _) => {
                debug!("{} tftp peer error {code:?}: {message:?}", cx.tag);
                self.engine.phase = Phase::Done;
                self.close.get_or_insert(CloseReason::PeerClosed);
                Event::Nothing
            }
            // The request again: our first answer was lost; the timer
            // resends it, nothing to do now.
            _ => Event::Nothing,
        };
        self.on_event(event, cx.now);
    }

    fn handle_timeout(&mut self, cx: &mut Context<'_>) {
        if self.dally_until.is_some_and(|at| at <= cx.now) {
            self.close.get_or_insert(CloseReason::Completed);
            return;
        }
        let event = self.engine.on_timeout(cx.now);
        self.on_event(event, cx.now);
    }

    fn poll_transmit(
        &mut self,
        _cx: &mut Context<'_>,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        if let Some(stranger) = self.strangers.pop_front() {
            let d = error_packet(ErrorCode::UnknownTransferId, "Unknown transfer ID");
            buf.extend_from_slice(&d);
            return Some(Transmit {
                to: Some(stranger),
                len: d.len(),
            });
        }
        let d = self.engine.out.pop_front()?;
        buf.extend_from_slice(&d);
        Some(Transmit {
            to: Some(self.peer),
            len: d.len(),
        })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.close.is_some() {
            return None;
        }
        self.dally_until.or_else(|| self.engine.poll_timeout())
    }

    fn poll_request(&mut self) -> Option<Request> {
        // Close only once the last packets (an ERROR, the final ACK) are out.
        if self.engine.out.is_empty() {
            self.close.take().map(Request::Close)
        } else {
            None
        }
    }
}

/// The acceptor on the TFTP port: each valid request starts a transfer on a
/// new socket; anything else sent to the port is ignored (an answer would
/// only help reflection).
pub struct TftpAcceptor {
    files: Rc<dyn Files>,
    config: TftpConfig,
    counts: Rc<RefCell<Counts>>,
}

impl core::fmt::Debug for TftpAcceptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TftpAcceptor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TftpAcceptor {
    /// Transfers over `files` within `config`'s limits.
    pub fn new(files: Rc<dyn Files>, config: TftpConfig) -> Self {
        Self {
            files,
            config,
            counts: Rc::default(),
        }
    }

    fn place(&self, ip: IpAddr) -> Option<Place> {
        let mut c = self.counts.borrow_mut();
        let mine = c.per_peer.get(&ip).copied().unwrap_or(0);
        if c.total >= self.config.max_sessions || mine >= self.config.max_sessions_per_peer {
            return None;
        }
        c.total += 1;
        *c.per_peer.entry(ip).or_insert(0) += 1;
        Some(Place {
            counts: self.counts.clone(),
            ip,
        })
    }
}

impl Acceptor for TftpAcceptor {
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
        from: SocketAddr,
        payload: &[u8],
        reply: &mut BytesMut,
    ) -> Admission {
        if !matches!(
            Packet::parse(payload),
            Ok(Packet::Rrq { .. } | Packet::Wrq { .. })
        ) {
            return Admission::Ignore;
        }
        let Some(place) = self.place(from.ip()) else {
            debug!("{} tftp request refused: too many transfers", cx.tag);
            Packet::Error {
                code: ErrorCode::NotDefined,
                message: "Too many transfers",
            }
            .emit(reply);
            return Admission::Reply;
        };
        Admission::OwnSocket(Box::new(TftpServer {
            files: self.files.clone(),
            config: self.config,
            peer: from,
            engine: Engine::new(self.config.timeout, self.config.tries),
            pending: Pending::None,
            started: false,
            strangers: VecDeque::new(),
            dally_until: None,
            close: None,
            _place: place,
        }))
    }
}
