//! The TFTP server: one session per transfer, on its own socket (its TID).
//!
//! Owns request handling, option negotiation, peer validation and the
//! bounds on transfers. Policies, as documented in `docs/protocols/tftp.md`:
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
//!   every WRQ. The ACK of the last block leaves only after the upload is
//!   committed under its final name; a failed commit answers an ERROR
//!   (6, 3, 2, or 0 with a reason) instead. Each transfer gives up after its
//!   retry budget, so a vanished client never wedges a session.
//! * A file served is read to the size it had at open: one that ends
//!   sooner (truncated under us) ends the transfer with ERROR 0, never a
//!   short success.
//! * **Validation** (QUIC's anti-amplification rule, RFC 9000 §8): a request
//!   can come from a spoofed address, so until the peer answers on the
//!   transfer socket (any ACK, DATA or ERROR from its address and port, which
//!   only a peer that received our first answer can know) a session is
//!   *unvalidated*: it sends its first answer once per request received
//!   and nothing more beyond [`AMPLIFICATION`] times the bytes received from
//!   that peer, it retransmits no slower than the configured `timeout`, and
//!   it ends after `unvalidated_lifetime` whatever `timeout` was negotiated.
//! * Sessions are bounded per peer and in all. At a bound, a new request
//!   evicts the oldest unvalidated session, or one that only dallies after
//!   a stored upload (the same peer's first when the per-peer bound is the
//!   one hit); only when there is none is it refused.
//!   A request repeated from the same address and port while its session is
//!   unvalidated never starts or replaces a transfer: the client cannot tell
//!   two transfers for its port apart, and may lock onto the first one's
//!   late answer. The repeat credits the existing session instead (its
//!   bytes, and one more first answer), which resends at its next timer.
//! * The acceptor answers a request-shaped datagram with an empty or
//!   non-UTF-8 name or an unknown mode with one ERROR 4, no larger than
//!   [`AMPLIFICATION`] times the datagram; garbage gets nothing.

use super::engine::{Engine, Event, Phase};
use super::netascii::{FromNetascii, ToNetascii};
use crate::proto::data::{FileError, Files, Sink, Source};
use crate::proto::{
    Admission, CloseReason, Context, DatagramAcceptor, DatagramInput, DatagramSession, Driven,
    Transmit, Wake,
};
use crate::time::{Duration, Instant};
use crate::wire::tftp::{Block, ErrorCode, Mode, Options, Packet, RequestFault};
use bytes::BytesMut;
use core::cell::RefCell;
use log::{debug, info};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

/// What an unvalidated session may send, as a multiple of what it received
/// from its peer: QUIC's anti-amplification factor (RFC 9000 §8.1). A
/// spoofed request then buys its victim one first answer and at most three
/// times its own size beyond that.
pub const AMPLIFICATION: u64 = 3;

/// The server's TFTP limits (config keys `tftp_max_blksize`,
/// `tftp_max_windowsize`, `tftp_timeout`, `tftp_tries`, `tftp_read_only`,
/// `tftp_max_sessions`, `tftp_max_sessions_per_peer`,
/// `tftp_unvalidated_lifetime`).
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
    /// How long a session whose peer never answered lives, whatever
    /// `timeout` it negotiated: without it, 16 spoofed requests asking
    /// `timeout=255` would hold a peer's places for 21 minutes. A few
    /// seconds: a real client answers within one round trip, and retries
    /// its request when our first answer is lost.
    pub unvalidated_lifetime: Duration,
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
            unvalidated_lifetime: Duration::from_secs(6),
        }
    }
}

/// One transfer in the acceptor's table.
#[derive(Debug)]
struct Record {
    peer: SocketAddr,
    /// The session's slab key, known from its first call.
    key: Option<usize>,
    /// Its peer answered on the transfer socket.
    validated: bool,
    /// Its upload is stored and it only dallies to repeat the final ACK:
    /// it may go at a bound like an unvalidated one.
    finished: bool,
    /// Requests repeated by the peer while unvalidated, and their bytes,
    /// not yet taken by the session (which the acceptor cannot wake).
    repeats: u32,
    repeated_bytes: u64,
}

/// Transfers in progress, so the acceptor can bound them and pick what to
/// evict. Records are keyed by an increasing number: iteration order is
/// age, oldest first.
#[derive(Debug, Default)]
struct Counts {
    records: BTreeMap<u64, Record>,
    per_peer: HashMap<IpAddr, usize>,
    next: u64,
}

impl Counts {
    fn remove(&mut self, id: u64) -> Option<Record> {
        let record = self.records.remove(&id)?;
        let ip = record.peer.ip();
        if let Some(n) = self.per_peer.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&ip);
            }
        }
        Some(record)
    }

    /// The oldest unvalidated (or merely dallying) transfer (from `ip`,
    /// when given) that has a key to evict it by.
    fn oldest_unvalidated(&self, ip: Option<IpAddr>) -> Option<u64> {
        self.records
            .iter()
            .find(|(_, r)| {
                (!r.validated || r.finished)
                    && r.key.is_some()
                    && ip.is_none_or(|ip| r.peer.ip() == ip)
            })
            .map(|(&id, _)| id)
    }
}

/// Held by a session: its record in [`Counts`], removed when dropped (if
/// the acceptor has not evicted it first).
struct Place {
    counts: Rc<RefCell<Counts>>,
    id: u64,
}

impl Place {
    fn bind(&self, key: usize) {
        if let Some(r) = self.counts.borrow_mut().records.get_mut(&self.id) {
            r.key.get_or_insert(key);
        }
    }

    /// The repeated requests credited since the last call, and their bytes.
    fn take_credit(&self) -> (u32, u64) {
        match self.counts.borrow_mut().records.get_mut(&self.id) {
            Some(r) => (
                core::mem::take(&mut r.repeats),
                core::mem::take(&mut r.repeated_bytes),
            ),
            None => (0, 0),
        }
    }

    fn finish(&self) {
        if let Some(r) = self.counts.borrow_mut().records.get_mut(&self.id) {
            r.finished = true;
        }
    }

    fn validate(&self) {
        if let Some(r) = self.counts.borrow_mut().records.get_mut(&self.id) {
            r.validated = true;
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.counts.borrow_mut().remove(self.id);
    }
}

fn error_packet(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    Packet::Error { code, message }.emit(&mut b);
    b.to_vec()
}

fn file_error(e: FileError) -> (ErrorCode, String) {
    match e {
        FileError::NotFound => (ErrorCode::FileNotFound, "File not found".into()),
        FileError::Forbidden => (ErrorCode::AccessViolation, "Access violation".into()),
        FileError::Exists => (ErrorCode::FileExists, "File already exists".into()),
        FileError::TooLarge => (ErrorCode::DiskFull, "File too large".into()),
        FileError::Io(kind) => kind_error(kind),
    }
}

/// The ERROR for a local failure of this kind (RFC 1350's codes where one
/// fits, 0 with the reason otherwise).
pub(super) fn kind_error(kind: ErrorKind) -> (ErrorCode, String) {
    let code = match kind {
        ErrorKind::AlreadyExists => ErrorCode::FileExists,
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => {
            ErrorCode::DiskFull
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => ErrorCode::AccessViolation,
        ErrorKind::NotFound => ErrorCode::FileNotFound,
        _ => {
            let why = std::io::Error::from(kind).to_string();
            return (ErrorCode::NotDefined, format!("Server error: {why}"));
        }
    };
    (code, code.message().into())
}

/// A file read no further than the size it had at open, which fails with
/// `UnexpectedEof` if it ends sooner (truncated while served): the client
/// must see an ERROR then, not a short file that looks complete. Bytes
/// appended meanwhile are not sent (the size at open is what `tsize` said).
struct AtOpenSize {
    inner: Box<dyn Source>,
    size: u64,
    read: u64,
}

impl Source for AtOpenSize {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }

    fn read_into(&mut self, dst: &mut BytesMut, max: usize) -> Result<usize, ErrorKind> {
        let left = self.size - self.read;
        if left == 0 {
            return Ok(0);
        }
        let max = usize::try_from(left).unwrap_or(usize::MAX).min(max);
        let n = self.inner.read_into(dst, max)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof);
        }
        self.read += n as u64;
        Ok(n)
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
    /// An RRQ: a failure reading is the file's, not the disk's.
    reading: bool,
    /// ERROR 5 answers owed to strangers (bounded).
    strangers: VecDeque<SocketAddr>,
    /// After a WRQ completes: keep answering a repeated last block until then.
    dally_until: Option<Instant>,
    /// The peer answered on this socket (see the module docs).
    validated: bool,
    /// Bytes received from the peer, and sent to it, while unvalidated.
    received: u64,
    sent: u64,
    /// First answers earned and not yet sent: one per request received
    /// (the request, then each repeat the acceptor credited). A repeat buys
    /// what a request from a new port would buy anyway, a first answer, so
    /// this adds no amplification; the 3x budget alone would not: DATA 1 is
    /// 516 bytes and an RRQ 10, so a client whose DATA 1 was lost would
    /// have to repeat its request 34 times.
    owed: u32,
    /// The timeout negotiated, used once the peer is validated; until then
    /// the engine runs on no more than the configured one, so an answer a
    /// repeat earned is not held back 255 s, past the lifetime.
    negotiated_timeout: Duration,
    /// Datagrams to the unvalidated peer held back by the budget.
    withheld: u64,
    /// When an unvalidated session ends.
    expires: Option<Instant>,
    close: Option<CloseReason>,
    place: Place,
}

impl core::fmt::Debug for TftpServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TftpServer")
            .field("peer", &self.peer)
            .field("validated", &self.validated)
            .finish_non_exhaustive()
    }
}

impl TftpServer {
    /// Takes what repeated requests earned while unvalidated.
    fn collect_credit(&mut self) {
        if self.validated {
            return;
        }
        let (repeats, bytes) = self.place.take_credit();
        self.owed += repeats;
        self.received += bytes;
    }

    fn fail(&mut self, code: ErrorCode, message: &str, reason: CloseReason) {
        self.engine.out.push_back(error_packet(code, message));
        self.engine.phase = Phase::Done;
        self.close.get_or_insert(reason);
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Nothing => {}
            Event::Complete => match self.engine.phase {
                // An upload: dally so a lost final ACK can be repeated, as
                // long as a client on our own timer and tries may resend
                // its last block (two timeouts lost a client's final ACK
                // about one upload in ten at 20 % loss each way). The file
                // is stored: the place may go to a new request meanwhile.
                Phase::Receiving { .. } => {
                    self.dally_until = Some(now + self.engine.timeout * self.config.tries.max(2));
                    self.place.finish();
                }
                _ => {
                    self.close.get_or_insert(CloseReason::Completed);
                }
            },
            Event::GiveUp(tries) => {
                self.engine.phase = Phase::Done;
                self.close.get_or_insert(CloseReason::TimedOut { tries });
            }
            Event::Failed(kind) => {
                let (code, text) = match kind {
                    ErrorKind::UnexpectedEof if self.reading => (
                        ErrorCode::NotDefined,
                        "File changed while being read".to_owned(),
                    ),
                    // The store refuses an upload shorter or longer than
                    // its tsize.
                    ErrorKind::UnexpectedEof | ErrorKind::InvalidData => (
                        ErrorCode::NotDefined,
                        "Upload size differs from tsize".to_owned(),
                    ),
                    kind => kind_error(kind),
                };
                debug!("tftp transfer failed: {kind:?}: ERROR {code:?} {text:?}");
                self.fail(code, &text, CloseReason::Aborted);
            }
            Event::Violation(why) => {
                self.fail(ErrorCode::IllegalOperation, why, CloseReason::Protocol(why));
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
            self.negotiated_timeout = Duration::from_secs(u64::from(t));
            self.engine.timeout = self.negotiated_timeout.min(self.config.timeout);
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

    fn start(&mut self, cx: &Context, payload: &[u8]) {
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
                self.reading = true;
                let source = match self.files.open(filename) {
                    Ok(s) => s,
                    Err(e) => {
                        let (code, text) = file_error(e);
                        debug!("{} tftp RRQ {filename:?}: {e}", cx.tag);
                        return self.fail(code, &text, CloseReason::Protocol("refused"));
                    }
                };
                let source: Box<dyn Source> = match source.size() {
                    Some(size) => Box::new(AtOpenSize {
                        inner: source,
                        size,
                        read: 0,
                    }),
                    None => source,
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
                        return self.fail(code, &text, CloseReason::Protocol("refused"));
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

impl Driven for TftpServer {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if self.close.is_some() {
            return;
        }
        // Before the engine's timer: a repeat earns the resend it queues.
        self.collect_credit();
        if self.expires.is_some_and(|at| at <= cx.now) {
            debug!(
                "{} tftp peer never answered: ending after {:?} ({} datagrams withheld)",
                cx.tag, self.config.unvalidated_lifetime, self.withheld
            );
            self.engine.phase = Phase::Done;
            self.engine.out.clear();
            self.close = Some(CloseReason::TimedOut { tries: 1 });
            return;
        }
        if self.dally_until.is_some_and(|at| at <= cx.now) {
            self.close.get_or_insert(CloseReason::Completed);
            return;
        }
        let event = self.engine.on_timeout(cx.now);
        self.on_event(event, cx.now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.close.is_some() {
            return None;
        }
        let timer = self.dally_until.or_else(|| self.engine.poll_timeout());
        match (timer, self.expires) {
            (Some(t), Some(e)) => Some(t.min(e)),
            (t, e) => t.or(e),
        }
    }

    /// Retransmission timers: a millisecond late is fine.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        // Close only once the last packets (an ERROR, the final ACK) are out.
        if self.engine.out.is_empty() {
            self.close.take()
        } else {
            None
        }
    }
}

impl DatagramSession for TftpServer {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        let DatagramInput::Datagram { from, payload, .. } = input else {
            return;
        };
        if !self.started {
            self.started = true;
            self.place.bind(cx.tag.key);
            self.received += payload.len() as u64;
            self.expires = Some(cx.now + self.config.unvalidated_lifetime);
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
            self.received += payload.len() as u64;
            return;
        };
        if !self.validated {
            self.received += payload.len() as u64;
            // Only a peer that got our first answer knows this socket's
            // port; the request again proves nothing.
            if matches!(
                p,
                Packet::Ack { .. } | Packet::Data { .. } | Packet::Error { .. }
            ) {
                self.validated = true;
                self.expires = None;
                self.place.validate();
                // Before the handshake's answer starts the transfer below.
                self.engine.timeout = self.negotiated_timeout;
            }
        }
        let event = match (p, &self.engine.phase) {
            (Packet::Ack { block: Block(0) }, Phase::Handshake { .. }) => {
                match core::mem::replace(&mut self.pending, Pending::None) {
                    Pending::Source(source) => self.engine.start_sending(source, cx.now),
                    other => {
                        self.pending = other;
                        Event::Nothing
                    }
                }
            }
            (Packet::Data { block, data }, Phase::Handshake { .. }) if block == Block(1) => {
                match core::mem::replace(&mut self.pending, Pending::None) {
                    Pending::Sink(sink) => {
                        self.engine.start_receiving(sink, false, cx.now);
                        self.engine.on_data(block, data, cx.now)
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

    fn poll_transmit(
        &mut self,
        _cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        if let Some(stranger) = self.strangers.pop_front() {
            let d = error_packet(ErrorCode::UnknownTransferId, "Unknown transfer ID");
            buf.extend_from_slice(&d);
            return Some(Transmit::new(Some(stranger), d.len()));
        }
        loop {
            let d = self.engine.out.pop_front()?;
            if !self.validated {
                // Until validated only the first answer (or its copy) is
                // queued: it goes once per request received; beyond that,
                // what the peer's own bytes pay for (RFC 9000 §8.1).
                if self.owed > 0 {
                    self.owed -= 1;
                } else if self.sent + d.len() as u64 > AMPLIFICATION * self.received {
                    self.withheld += 1;
                    continue;
                }
                self.sent += d.len() as u64;
            }
            buf.extend_from_slice(&d);
            return Some(Transmit::new(Some(self.peer), d.len()));
        }
    }
}

/// The acceptor on the TFTP port: each valid request starts a transfer on a
/// new socket; a request-shaped datagram it cannot serve gets one ERROR 4;
/// anything else sent to the port is ignored (an answer would only help
/// reflection).
pub struct TftpAcceptor {
    files: Rc<dyn Files>,
    config: TftpConfig,
    counts: Rc<RefCell<Counts>>,
    /// Keys of sessions evicted for a new request, for `poll_evict`.
    evicted: VecDeque<usize>,
}

impl core::fmt::Debug for TftpAcceptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TftpAcceptor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the acceptor does with a request.
enum Decision {
    /// Start a transfer in this place.
    Admit(Place),
    /// A repeat from the address and port of an unvalidated transfer,
    /// credited to it.
    Repeat,
    /// At the bounds with nothing to evict.
    Full,
}

impl TftpAcceptor {
    /// Transfers over `files` within `config`'s limits.
    pub fn new(files: Rc<dyn Files>, config: TftpConfig) -> Self {
        Self {
            files,
            config,
            counts: Rc::default(),
            evicted: VecDeque::new(),
        }
    }

    fn evict(&mut self, c: &mut Counts, id: u64) {
        if let Some(key) = c.remove(id).and_then(|r| r.key) {
            self.evicted.push_back(key);
        }
    }

    fn decide(&mut self, from: SocketAddr, payload: &[u8]) -> Decision {
        let counts = self.counts.clone();
        let mut c = counts.borrow_mut();
        // The same address and port asking again before its transfer was
        // ever answered: our first answer (or its request) was lost, or
        // this is the network's copy. Either way the transfer stays: the
        // client knows a transfer only by the port that answers it, so a
        // second one would race the first one's late answer, and a client
        // that locked onto the first would find its socket gone. Whatever
        // the bytes: one unvalidated transfer per address and port.
        if let Some(r) = c
            .records
            .values_mut()
            .find(|r| r.peer == from && !r.validated)
        {
            r.repeats = r.repeats.saturating_add(1);
            r.repeated_bytes += payload.len() as u64;
            return Decision::Repeat;
        }
        let ip = from.ip();
        let mine = c.per_peer.get(&ip).copied().unwrap_or(0);
        if mine >= self.config.max_sessions_per_peer {
            match c.oldest_unvalidated(Some(ip)) {
                Some(id) => self.evict(&mut c, id),
                None => return Decision::Full,
            }
        }
        if c.records.len() >= self.config.max_sessions {
            match c.oldest_unvalidated(None) {
                Some(id) => self.evict(&mut c, id),
                None => return Decision::Full,
            }
        }
        let id = c.next;
        c.next += 1;
        c.records.insert(
            id,
            Record {
                peer: from,
                key: None,
                validated: false,
                finished: false,
                repeats: 0,
                repeated_bytes: 0,
            },
        );
        *c.per_peer.entry(ip).or_insert(0) += 1;
        Decision::Admit(Place {
            counts: self.counts.clone(),
            id,
        })
    }
}

/// Appends an ERROR of `code` to `reply`, its message cut so the datagram
/// is at most [`AMPLIFICATION`] times the `asked` bytes it answers.
fn small_error(reply: &mut BytesMut, code: ErrorCode, message: &str, asked: usize) {
    let factor = usize::try_from(AMPLIFICATION).unwrap_or(usize::MAX);
    let room = asked.saturating_mul(factor).saturating_sub(5);
    let mut end = message.len().min(room);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Packet::Error {
        code,
        message: &message[..end],
    }
    .emit(reply);
}

/// No timers: a session's place is freed by the session itself.
impl Driven for TftpAcceptor {}

impl DatagramAcceptor for TftpAcceptor {
    fn accept(
        &mut self,
        cx: &mut Context,
        from: SocketAddr,
        payload: &[u8],
        reply: &mut BytesMut,
    ) -> Admission {
        match Packet::parse(payload) {
            Ok(Packet::Rrq { .. } | Packet::Wrq { .. }) => {}
            Ok(_) => return Admission::Ignore,
            Err(_) => {
                let Some(fault) = RequestFault::of(payload) else {
                    return Admission::Ignore;
                };
                debug!("{} tftp request refused: {fault:?}", cx.tag);
                small_error(
                    reply,
                    ErrorCode::IllegalOperation,
                    fault.message(),
                    payload.len(),
                );
                return Admission::Reply;
            }
        }
        let place = match self.decide(from, payload) {
            Decision::Admit(place) => place,
            Decision::Repeat => {
                debug!("{} tftp request repeated: credited to its transfer", cx.tag);
                return Admission::Ignore;
            }
            Decision::Full => {
                debug!("{} tftp request refused: too many transfers", cx.tag);
                small_error(
                    reply,
                    ErrorCode::NotDefined,
                    "Too many transfers",
                    payload.len(),
                );
                return Admission::Reply;
            }
        };
        Admission::own_socket(Box::new(TftpServer {
            files: self.files.clone(),
            config: self.config,
            peer: from,
            engine: Engine::new(self.config.timeout, self.config.tries),
            pending: Pending::None,
            started: false,
            reading: false,
            strangers: VecDeque::new(),
            dally_until: None,
            validated: false,
            received: 0,
            sent: 0,
            owed: 1,
            negotiated_timeout: self.config.timeout,
            withheld: 0,
            expires: None,
            close: None,
            place,
        }))
    }

    fn poll_evict(&mut self) -> Option<usize> {
        self.evicted.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::EndpointId;
    use crate::proto::data::MemoryFiles;
    use crate::proto::testing::at;
    use std::collections::BTreeMap;

    /// What the acceptor did with a datagram.
    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        /// A session under this key.
        Session(usize),
        /// A stateless answer.
        Reply(Vec<u8>),
        Ignored,
    }

    /// An acceptor and its sessions, driven by hand in virtual time the way
    /// the reactor drives them (evictions before admissions, transmits
    /// then the end after every call).
    struct Rig {
        acceptor: TftpAcceptor,
        sessions: BTreeMap<usize, Box<dyn DatagramSession>>,
        next_key: usize,
        /// Every datagram sent, by session key.
        sent: Vec<(usize, SocketAddr, Vec<u8>)>,
        closed: BTreeMap<usize, (Instant, CloseReason)>,
        evicted: Vec<usize>,
    }

    fn peer(ip: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, ip)), port)
    }

    fn rrq(name: &str, options: Options) -> Vec<u8> {
        let mut b = BytesMut::new();
        Packet::Rrq {
            filename: name,
            mode: Mode::Octet,
            options,
        }
        .emit(&mut b);
        b.to_vec()
    }

    fn wrq(name: &str) -> Vec<u8> {
        let mut b = BytesMut::new();
        Packet::Wrq {
            filename: name,
            mode: Mode::Octet,
            options: Options::default(),
        }
        .emit(&mut b);
        b.to_vec()
    }

    fn data(block: u16, bytes: &[u8]) -> Vec<u8> {
        let (mut b, block) = (BytesMut::new(), Block(block));
        Packet::Data { block, data: bytes }.emit(&mut b);
        b.to_vec()
    }

    fn ack(block: u16) -> Vec<u8> {
        let (mut b, block) = (BytesMut::new(), Block(block));
        Packet::Ack { block }.emit(&mut b);
        b.to_vec()
    }

    impl Rig {
        fn new(files: Rc<dyn Files>, config: TftpConfig) -> Self {
            Self {
                acceptor: TftpAcceptor::new(files, config),
                sessions: BTreeMap::new(),
                next_key: 10,
                sent: Vec::new(),
                closed: BTreeMap::new(),
                evicted: Vec::new(),
            }
        }

        fn files(files: &MemoryFiles, config: TftpConfig) -> Self {
            Self::new(Rc::new(files.clone()), config)
        }

        fn cx(key: usize, now: Instant) -> Context {
            Context::new(now, key, None)
        }

        /// A datagram at the listening port.
        fn request(&mut self, from: SocketAddr, payload: &[u8], now: Instant) -> Got {
            let mut reply = BytesMut::new();
            let mut acceptor = core::mem::replace(
                &mut self.acceptor,
                TftpAcceptor::new(Rc::new(MemoryFiles::default()), TftpConfig::default()),
            );
            let admission =
                acceptor.accept(&mut Self::cx(usize::MAX, now), from, payload, &mut reply);
            while let Some(key) = acceptor.poll_evict() {
                // Dropped at once, as the reactor reaps it.
                assert!(
                    self.sessions.remove(&key).is_some(),
                    "evicted {key}: not live"
                );
                self.evicted.push(key);
            }
            self.acceptor = acceptor;
            match admission {
                Admission::Reply => Got::Reply(reply.to_vec()),
                Admission::Ignore => Got::Ignored,
                Admission::Start(admit) if admit.own_socket && admit.bind.is_empty() => {
                    let key = self.next_key;
                    self.next_key += 1;
                    self.sessions.insert(key, admit.session);
                    self.input(key, from, payload, now);
                    Got::Session(key)
                }
                other @ Admission::Start(_) => panic!("{other:?}"),
            }
        }

        fn with(
            &mut self,
            key: usize,
            now: Instant,
            f: impl FnOnce(&mut dyn DatagramSession, &mut Context),
        ) {
            let Some(mut s) = self.sessions.remove(&key) else {
                return;
            };
            let mut cx = Self::cx(key, now);
            f(s.as_mut(), &mut cx);
            let mut buf = BytesMut::new();
            while let Some(t) = s.poll_transmit(&mut cx, 65_536, &mut buf) {
                let d = buf.split().to_vec();
                self.sent.push((key, t.to.unwrap(), d));
            }
            let _ = s.poll_timeout();
            if let Some(reason) = s.poll_close() {
                self.closed.insert(key, (now, reason));
            } else {
                self.sessions.insert(key, s);
            }
        }

        /// A datagram on session `key`'s own socket.
        fn input(&mut self, key: usize, from: SocketAddr, payload: &[u8], now: Instant) {
            self.with(key, now, |s, cx| {
                s.handle_input(
                    cx,
                    DatagramInput::Datagram {
                        endpoint: EndpointId::HOME,
                        from,
                        payload,
                        kernel_ns: None,
                    },
                );
            });
        }

        /// Fires session `key`'s timers, one deadline after another, until
        /// `until` or its end; returns the deadlines it was woken at.
        fn run(&mut self, key: usize, until: Instant) -> Vec<Instant> {
            let mut woken = Vec::new();
            for _ in 0..10_000 {
                let Some(at) = self.sessions.get(&key).and_then(|s| s.poll_timeout()) else {
                    break;
                };
                if at > until {
                    break;
                }
                woken.push(at);
                self.with(key, at, |s, cx| s.handle_timeout(cx));
            }
            woken
        }

        fn sent_by(&self, key: usize) -> Vec<Vec<u8>> {
            self.sent
                .iter()
                .filter(|(k, _, _)| *k == key)
                .map(|(_, _, d)| d.clone())
                .collect()
        }

        fn live(&self) -> usize {
            self.sessions.len()
        }
    }

    #[expect(
        clippy::cast_possible_truncation,
        reason = "a test pattern: the low byte is the point"
    )]
    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 300) as u8).collect()
    }

    fn error_of(d: &[u8]) -> Option<(u16, String)> {
        match Packet::parse(d) {
            Ok(Packet::Error { code, message }) => Some((code.into(), message.to_owned())),
            _ => None,
        }
    }

    // ---- defect 6: unvalidated peers get little ----

    /// Bytes sent and received for one request whose sender never answers,
    /// until the session ends on its own; `config` as given.
    fn to_a_silent_peer(request: &[u8], config: TftpConfig) -> (u64, u64, Instant, Rig) {
        let files = MemoryFiles::default();
        files.insert("f", bytes(100_000));
        let mut rig = Rig::files(&files, config);
        let Got::Session(key) = rig.request(peer(1, 1000), request, at(0)) else {
            panic!("not admitted")
        };
        rig.run(key, Instant::from_secs(10_000));
        let (ended, _) = rig.closed.get(&key).cloned().expect("ended on its own");
        let sent = rig.sent_by(key).iter().map(|d| d.len() as u64).sum();
        (sent, request.len() as u64, ended, rig)
    }

    #[test]
    fn a_silent_stranger_gets_one_data_1_and_the_session_ends_at_exactly_the_lifetime() {
        // Shorter than the retry budget (5 tries of 1 s), which would
        // otherwise end the session first.
        let config = TftpConfig {
            unvalidated_lifetime: Duration::from_secs(3),
            ..TftpConfig::default()
        };
        let (sent, _, ended, rig) = to_a_silent_peer(&rrq("f", Options::default()), config);
        let all = rig.sent_by(10);
        assert_eq!(all.len(), 1, "DATA 1 once, never again");
        assert!(all[0].starts_with(b"\x00\x03\x00\x01"));
        assert_eq!(sent, 516);
        assert_eq!(ended, Instant::ZERO + config.unvalidated_lifetime);
        assert_eq!(rig.closed[&10].1, CloseReason::TimedOut { tries: 1 });
    }

    #[test]
    fn a_negotiated_timeout_does_not_stretch_an_unvalidated_session() {
        // 255 s x 5 tries would hold the place for 21 minutes.
        let asked = Options {
            timeout: Some(255),
            blksize: Some(1468),
            ..Options::default()
        };
        let config = TftpConfig::default();
        let request = rrq("f", asked);
        let (sent, received, ended, rig) = to_a_silent_peer(&request, config);
        // Unvalidated, the OACK is resent on the configured 1 s timer: its
        // 5 tries run out first, else the lifetime would end it.
        assert_eq!(ended, at(5_000));
        assert!(ended <= Instant::ZERO + config.unvalidated_lifetime);
        // The OACK may go again, within three times the request.
        let oack = rig.sent_by(10)[0].len() as u64;
        assert!(
            sent <= oack.max(AMPLIFICATION * received),
            "{sent} {received}"
        );
    }

    #[test]
    fn what_an_unvalidated_session_sends_is_bounded_by_its_first_answer_and_3x() {
        let config = TftpConfig::default();
        let cases = [
            rrq("f", Options::default()),
            rrq(
                "f",
                Options {
                    blksize: Some(1468),
                    ..Options::default()
                },
            ),
            rrq(
                "f",
                Options {
                    windowsize: Some(16),
                    ..Options::default()
                },
            ),
            wrq("new"),
        ];
        for request in cases {
            let (sent, received, _, rig) = to_a_silent_peer(&request, config);
            let first = rig.sent_by(10)[0].len() as u64;
            assert!(
                sent <= first.max(AMPLIFICATION * received),
                "{request:?}: {sent} bytes for {received}"
            );
            // A windowed RRQ gets an OACK, never a window of DATA.
            assert!(
                rig.sent_by(10)
                    .iter()
                    .all(|d| !d.starts_with(b"\x00\x03\x00\x02")),
                "{request:?}"
            );
        }
    }

    #[test]
    fn a_peer_that_answers_gets_retransmissions_as_before() {
        let files = MemoryFiles::default();
        files.insert("f", bytes(2_000));
        let mut rig = Rig::files(&files, TftpConfig::default());
        let client = peer(1, 1000);
        let Got::Session(key) = rig.request(client, &rrq("f", Options::default()), at(0)) else {
            panic!()
        };
        rig.input(key, client, &ack(1), at(10));
        // DATA 2 is lost; the validated session sends it again at its timeout.
        rig.run(key, at(2_500));
        let data2 = rig
            .sent_by(key)
            .iter()
            .filter(|d| d.starts_with(b"\x00\x03\x00\x02"))
            .count();
        assert_eq!(data2, 3, "sent at 10 ms, 1010 ms, 2010 ms");
        assert!(
            rig.sessions.contains_key(&key),
            "validated: no 3 s lifetime"
        );
    }

    #[test]
    fn at_the_per_peer_cap_the_oldest_unvalidated_session_of_that_peer_goes() {
        let files = MemoryFiles::default();
        files.insert("f", bytes(2_000));
        let config = TftpConfig {
            max_sessions_per_peer: 2,
            ..TftpConfig::default()
        };
        let mut rig = Rig::files(&files, config);
        let req = rrq("f", Options::default());
        let other = rig.request(peer(2, 1), &req, at(0));
        let a = rig.request(peer(1, 1), &req, at(1));
        let b = rig.request(peer(1, 2), &req, at(2));
        assert_eq!(
            (other, a, b),
            (Got::Session(10), Got::Session(11), Got::Session(12))
        );
        // The oldest of the peer's, not the other peer's even older one.
        assert_eq!(rig.request(peer(1, 3), &req, at(3)), Got::Session(13));
        assert_eq!(rig.evicted, vec![11]);
        // A validated session is never evicted: 12 answers, so 13 goes.
        rig.input(12, peer(1, 2), &ack(1), at(4));
        assert_eq!(rig.request(peer(1, 4), &req, at(5)), Got::Session(14));
        assert_eq!(rig.evicted, vec![11, 13]);
        // All validated: refused, with a small ERROR.
        rig.input(14, peer(1, 4), &ack(1), at(6));
        let Got::Reply(d) = rig.request(peer(1, 5), &req, at(7)) else {
            panic!()
        };
        assert_eq!(error_of(&d), Some((0, "Too many transfers".into())));
        assert_eq!(rig.live(), 3);
    }

    #[test]
    fn at_the_total_cap_the_oldest_unvalidated_session_goes() {
        let files = MemoryFiles::default();
        files.insert("f", bytes(2_000));
        let config = TftpConfig {
            max_sessions: 3,
            ..TftpConfig::default()
        };
        let mut rig = Rig::files(&files, config);
        let req = rrq("f", Options::default());
        for (i, ip) in [1u8, 2, 3].into_iter().enumerate() {
            rig.request(peer(ip, 1), &req, at(i as u64));
        }
        rig.input(10, peer(1, 1), &ack(1), at(5));
        assert_eq!(rig.request(peer(4, 1), &req, at(6)), Got::Session(13));
        assert_eq!(rig.evicted, vec![11], "the oldest unvalidated, not 10");
        assert_eq!(rig.live(), 3);
    }

    #[test]
    fn a_flood_of_silent_requests_never_locks_out_a_client() {
        let files = MemoryFiles::default();
        files.insert("f", bytes(1_000));
        let mut rig = Rig::files(&files, TftpConfig::default());
        let req = rrq("f", Options::default());
        for port in 0..1_000u16 {
            let ip = (port % 40) as u8;
            rig.request(peer(ip, 2_000 + port), &req, at(u64::from(port)));
        }
        assert!(rig.live() <= 256);
        let client = peer(7, 9_999);
        let Got::Session(key) = rig.request(client, &req, at(1_000)) else {
            panic!("locked out")
        };
        rig.input(key, client, &ack(1), at(1_001));
        rig.input(key, client, &ack(2), at(1_002));
        assert_eq!(rig.closed[&key].1, CloseReason::Completed);
    }

    fn data_1s(rig: &Rig, key: usize) -> usize {
        rig.sent_by(key)
            .iter()
            .filter(|d| d.starts_with(b"\x00\x03\x00\x01"))
            .count()
    }

    #[test]
    fn a_repeated_request_earns_a_resend_from_the_same_transfer_never_a_new_one() {
        let files = MemoryFiles::default();
        files.insert("f", bytes(1_000));
        let mut rig = Rig::files(&files, TftpConfig::default());
        let client = peer(1, 1000);
        let req = rrq("f", Options::default());
        assert_eq!(rig.request(client, &req, at(0)), Got::Session(10));
        assert_eq!(data_1s(&rig, 10), 1);
        // DATA 1 was lost; the client repeats its request, soon and late.
        assert_eq!(rig.request(client, &req, at(600)), Got::Ignored);
        rig.run(10, at(1_000));
        assert_eq!(data_1s(&rig, 10), 2, "resent at the 1 s timer");
        assert_eq!(rig.request(client, &req, at(1_500)), Got::Ignored);
        rig.run(10, at(2_000));
        assert_eq!(data_1s(&rig, 10), 3);
        // Nothing more earned: the 3 s timer's copy is withheld (3 x 30
        // bytes received pay for no 516-byte DATA 1).
        rig.run(10, at(3_500));
        assert_eq!(data_1s(&rig, 10), 3);
        // One first answer per request received, nothing else.
        assert_eq!(rig.sent_by(10).len(), 3);
        assert_eq!((rig.live(), rig.evicted.len()), (1, 0), "no other transfer");
        // The client answers the first transfer's DATA 1: served to the end.
        rig.input(10, client, &ack(1), at(3_600));
        assert!(rig.sent_by(10)[3].starts_with(b"\x00\x03\x00\x02"));
        rig.input(10, client, &ack(2), at(3_610));
        assert_eq!(rig.closed[&10].1, CloseReason::Completed);
        // Validated, a repeat starts a transfer of its own (as before).
        assert_eq!(rig.request(client, &req, at(4_000)), Got::Session(11));
        rig.input(11, client, &ack(1), at(4_010));
        assert_eq!(rig.request(client, &req, at(5_000)), Got::Session(12));
        assert!(rig.evicted.is_empty());
    }

    /// The proxy test's failure: the client repeats its WRQ, then the first
    /// transfer's late ACK 0 reaches it and it uploads to that transfer ID.
    #[test]
    fn a_client_locked_onto_the_first_transfers_late_answer_is_served() {
        let files = MemoryFiles::default();
        let mut rig = Rig::files(&files, TftpConfig::default());
        let client = peer(1, 1000);
        assert_eq!(rig.request(client, &wrq("new"), at(0)), Got::Session(10));
        // ACK 0 is slow; the client repeats its WRQ well after it.
        assert_eq!(rig.request(client, &wrq("new"), at(1_200)), Got::Ignored);
        assert_eq!(rig.request(client, &wrq("new"), at(2_400)), Got::Ignored);
        rig.run(10, at(2_500));
        assert_eq!(rig.live(), 1);
        assert!(rig.evicted.is_empty());
        rig.input(10, client, &data(1, b"hello"), at(2_600));
        assert_eq!(rig.sent_by(10).last().unwrap(), &ack(1));
        assert_eq!(files.get("new").as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn an_unvalidated_oack_is_resent_at_the_configured_timeout_not_the_negotiated_one() {
        let files = MemoryFiles::default();
        files.insert("f", bytes(2_000));
        let mut rig = Rig::files(&files, TftpConfig::default());
        let client = peer(1, 1000);
        let asked = Options {
            timeout: Some(255),
            blksize: Some(512),
            ..Options::default()
        };
        let req = rrq("f", asked);
        assert_eq!(rig.request(client, &req, at(0)), Got::Session(10));
        assert_eq!(rig.request(client, &req, at(500)), Got::Ignored);
        assert_eq!(rig.run(10, at(1_000)), vec![at(1_000)]);
        assert_eq!(rig.sent_by(10).len(), 2, "the OACK again at 1 s, not 255 s");
        // Validated: the negotiated 255 s governs the transfer.
        rig.input(10, client, &ack(0), at(1_100));
        assert_eq!(data_1s(&rig, 10), 1);
        rig.run(10, at(200_000));
        assert_eq!(data_1s(&rig, 10), 1, "no DATA 1 again before 255 s");
        rig.run(10, at(256_100));
        assert_eq!(data_1s(&rig, 10), 2);
    }

    #[test]
    fn an_upload_repeats_its_lost_final_ack_as_long_as_the_client_may_retry() {
        let files = MemoryFiles::default();
        let config = TftpConfig::default();
        let mut rig = Rig::files(&files, config);
        let client = peer(1, 1000);
        assert_eq!(rig.request(client, &wrq("new"), at(0)), Got::Session(10));
        rig.input(10, client, &data(1, b"hello"), at(10));
        assert_eq!(files.get("new").as_deref(), Some(&b"hello"[..]));
        // The final ACK is lost three times; a client on our timer and
        // tries resends its last block at 1, 2, 3 s: still answered.
        rig.run(10, at(3_010));
        rig.input(10, client, &data(1, b"hello"), at(3_010));
        assert_eq!(rig.sent_by(10).last().unwrap(), &ack(1));
        assert_eq!(rig.sent_by(10).len(), 3, "ACK 0, ACK 1, ACK 1 again");
        rig.run(10, at(60_000));
        let end = at(10) + config.timeout * config.tries;
        assert_eq!(rig.closed[&10], (end, CloseReason::Completed));
    }

    #[test]
    fn a_dallying_upload_gives_its_place_to_a_new_request() {
        let files = MemoryFiles::default();
        files.insert("f", bytes(2_000));
        let config = TftpConfig {
            max_sessions: 2,
            ..TftpConfig::default()
        };
        let mut rig = Rig::files(&files, config);
        assert_eq!(
            rig.request(peer(1, 1), &wrq("new"), at(0)),
            Got::Session(10)
        );
        rig.input(10, peer(1, 1), &data(1, b"hello"), at(1));
        assert_eq!(rig.request(peer(2, 1), &wrq("b"), at(2)), Got::Session(11));
        rig.input(11, peer(2, 1), &data(1, &[0; 512]), at(3));
        // 10 only dallies (its file is stored); 11 is mid-upload.
        let req = rrq("f", Options::default());
        assert_eq!(rig.request(peer(3, 1), &req, at(4)), Got::Session(12));
        assert_eq!(rig.evicted, vec![10]);
        assert_eq!(files.get("new").as_deref(), Some(&b"hello"[..]));
    }

    // ---- defect 2: error codes, and no silence for a bad request ----

    #[test]
    fn a_bad_name_or_mode_gets_one_small_error_4_and_garbage_nothing() {
        let mut rig = Rig::files(&MemoryFiles::default(), TftpConfig::default());
        for (request, text) in [
            (&b"\x00\x01\x00octet\x00"[..], "Empty file name"),
            (b"\x00\x02\xc3\x28\x00octet\x00", "File name not UTF-8"),
            (b"\x00\x01f\x00mail\x00", "Unknown mode"),
        ] {
            let Got::Reply(d) = rig.request(peer(1, 1), request, at(0)) else {
                panic!("{request:?}")
            };
            assert_eq!(error_of(&d), Some((4, text.into())), "{request:?}");
            assert!(d.len() as u64 <= AMPLIFICATION * request.len() as u64);
        }
        // The shortest such request: the message is cut to 3x.
        let Got::Reply(d) = rig.request(peer(1, 1), b"\x00\x01f\x00\x00", at(0)) else {
            panic!()
        };
        assert_eq!(d.len(), 15);
        assert_eq!(error_of(&d).unwrap().0, 4);
        for garbage in [
            &b"\x00\x01f\x00octet"[..],
            b"\x00\x09xx",
            b"hello",
            b"\x00\x04\x00\x01",
        ] {
            assert_eq!(rig.request(peer(1, 1), garbage, at(0)), Got::Ignored);
        }
        assert_eq!(rig.live(), 0);
    }

    /// Files whose uploads fail the way a real disk fails.
    struct Failing {
        create: Option<FileError>,
        write: Option<ErrorKind>,
        commit: Option<ErrorKind>,
    }

    struct FailingSink {
        write: Option<ErrorKind>,
        commit: Option<ErrorKind>,
    }

    impl Sink for FailingSink {
        fn write_all(&mut self, _: &[u8]) -> Result<(), ErrorKind> {
            self.write.map_or(Ok(()), Err)
        }

        fn commit(self: Box<Self>) -> Result<u64, ErrorKind> {
            self.commit.map_or(Ok(0), Err)
        }
    }

    impl Files for Failing {
        fn open(&self, _: &str) -> Result<Box<dyn Source>, FileError> {
            Err(FileError::NotFound)
        }

        fn create(&self, _: &str, _: Option<u64>) -> Result<Box<dyn Sink>, FileError> {
            match self.create {
                Some(e) => Err(e),
                None => Ok(Box::new(FailingSink {
                    write: self.write,
                    commit: self.commit,
                })),
            }
        }
    }

    /// Uploads one block to `files`; what the server sent after the WRQ.
    fn upload_to(files: Rc<dyn Files>) -> Vec<Vec<u8>> {
        let mut rig = Rig::new(files, TftpConfig::default());
        let client = peer(1, 1);
        let Got::Session(key) = rig.request(client, &wrq("x"), at(0)) else {
            panic!()
        };
        rig.input(key, client, &data(1, b"hello"), at(10));
        rig.sent_by(key)
    }

    #[test]
    fn disk_full_read_only_and_too_large_answer_3_2_and_3() {
        let io = |kind| FileError::Io(kind);
        for (create, write, commit, code) in [
            (Some(io(ErrorKind::ReadOnlyFilesystem)), None, None, 2),
            (Some(io(ErrorKind::PermissionDenied)), None, None, 2),
            (Some(io(ErrorKind::StorageFull)), None, None, 3),
            (Some(FileError::TooLarge), None, None, 3),
            (None, Some(ErrorKind::StorageFull), None, 3),
            (None, Some(ErrorKind::QuotaExceeded), None, 3),
            (None, Some(ErrorKind::FileTooLarge), None, 3),
            (None, None, Some(ErrorKind::AlreadyExists), 6),
            (None, None, Some(ErrorKind::StorageFull), 3),
            (None, None, Some(ErrorKind::ReadOnlyFilesystem), 2),
            (None, Some(ErrorKind::BrokenPipe), None, 0),
        ] {
            let got = upload_to(Rc::new(Failing {
                create,
                write,
                commit,
            }));
            let last = got.last().unwrap();
            assert_eq!(
                error_of(last).map(|e| e.0),
                Some(code),
                "{create:?} {write:?} {commit:?}: {got:?}"
            );
            assert!(
                !got.contains(&ack(1)),
                "{create:?} {write:?} {commit:?}: the block was never stored"
            );
        }
        // Past max_file_size while receiving (no tsize): 3, not 0.
        let mut files = MemoryFiles::default();
        files.max_file_size = Some(3);
        let got = upload_to(Rc::new(files));
        assert_eq!(error_of(got.last().unwrap()).map(|e| e.0), Some(3));
        // The reason travels with a code 0.
        let got = upload_to(Rc::new(Failing {
            create: None,
            write: Some(ErrorKind::BrokenPipe),
            commit: None,
        }));
        assert!(error_of(got.last().unwrap()).unwrap().1.contains("pipe"));
    }

    // ---- defect 1: never acknowledge what is not stored ----

    #[test]
    fn two_uploads_of_one_new_name_one_stored_the_other_refused_with_6() {
        let files = MemoryFiles::default(); // create-only
        let mut rig = Rig::files(&files, TftpConfig::default());
        let (a, b) = (peer(1, 1), peer(2, 2));
        let (first, second) = (bytes(700), vec![9u8; 700]);
        // Both requests in before either finishes.
        assert_eq!(rig.request(a, &wrq("same"), at(0)), Got::Session(10));
        assert_eq!(rig.request(b, &wrq("same"), at(1)), Got::Session(11));
        rig.input(10, a, &data(1, &first[..512]), at(2));
        rig.input(11, b, &data(1, &second[..512]), at(3));
        rig.input(10, a, &data(2, &first[512..]), at(4));
        rig.input(11, b, &data(2, &second[512..]), at(5));
        assert_eq!(rig.sent_by(10).last(), Some(&ack(2)), "A stored");
        let to_b = rig.sent_by(11);
        assert_eq!(
            error_of(to_b.last().unwrap()),
            Some((6, "File already exists".into()))
        );
        assert!(
            !to_b.contains(&ack(2)),
            "B was never told its file is stored"
        );
        assert_eq!(files.get("same").unwrap(), first, "byte-exact A's");
    }

    // ---- defect 9: a file that shrinks while served ----

    /// A source whose size says more than it yields (truncated after open).
    struct Shrunk(crate::proto::data::MemorySource, u64);

    impl Source for Shrunk {
        fn size(&self) -> Option<u64> {
            Some(self.1)
        }

        fn read_into(&mut self, dst: &mut BytesMut, max: usize) -> Result<usize, ErrorKind> {
            self.0.read_into(dst, max)
        }
    }

    struct ShrinkingFiles(usize, u64);

    impl Files for ShrinkingFiles {
        fn open(&self, _: &str) -> Result<Box<dyn Source>, FileError> {
            let inner = crate::proto::data::MemorySource::new(bytes(self.0));
            Ok(Box::new(Shrunk(inner, self.1)))
        }

        fn create(&self, _: &str, _: Option<u64>) -> Result<Box<dyn Sink>, FileError> {
            Err(FileError::Forbidden)
        }
    }

    #[test]
    fn a_file_truncated_while_served_ends_with_an_error_not_a_short_success() {
        // 1000 bytes at open, 600 by the time they are read; and a file
        // cut at a block boundary, whose short success would be an empty
        // block.
        for (has, said) in [(600, 1_000), (512, 1_000), (0, 10)] {
            let mut rig = Rig::new(Rc::new(ShrinkingFiles(has, said)), TftpConfig::default());
            let client = peer(1, 1);
            let Got::Session(key) = rig.request(client, &rrq("f", Options::default()), at(0))
            else {
                panic!()
            };
            for block in 1..=3 {
                rig.input(key, client, &ack(block), at(u64::from(block)));
            }
            let sent = rig.sent_by(key);
            let last = sent.last().unwrap();
            assert_eq!(
                error_of(last),
                Some((0, "File changed while being read".into())),
                "{has} of {said}: {sent:?}"
            );
            // No short DATA block (what a client takes for the end) went.
            assert!(
                sent.iter()
                    .filter(|d| d.starts_with(b"\x00\x03"))
                    .all(|d| d.len() == 516),
                "{has} of {said}"
            );
        }
    }

    #[test]
    fn a_file_that_grows_while_served_is_sent_at_its_size_at_open() {
        let mut rig = Rig::new(Rc::new(ShrinkingFiles(2_000, 600)), TftpConfig::default());
        let client = peer(1, 1);
        let Got::Session(key) = rig.request(client, &rrq("f", Options::default()), at(0)) else {
            panic!()
        };
        rig.input(key, client, &ack(1), at(1));
        rig.input(key, client, &ack(2), at(2));
        let sent = rig.sent_by(key);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].len(), 4 + 88);
        assert_eq!(rig.closed[&key].1, CloseReason::Completed);
    }
}
