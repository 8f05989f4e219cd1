//! The stop-and-wait server: one session per client address.
//!
//! Owns the server's half of the spec's GET and PUT flows, and the bounds
//! on what strangers can get out of it. The server never retransmits on a
//! timer: a client that lost something retransmits its last packet, and a
//! repeated ACK, DTA or FIN gets the server's last answer again. A client
//! silent for `timeout × tries` is dropped ("soft close"), throwing away an
//! upload that was not finished. After a finished transfer the session
//! stays to answer a lost FIN's retransmissions, and a new GET or PUT from
//! the same address starts afresh.
//!
//! Rules it must keep (see `docs/protocols/stopwait.md`):
//! * **Nothing is acknowledged that is not stored.** The `A|F` that ends a
//!   PUT leaves only after [`Sink::commit`](crate::proto::data::Sink)
//!   succeeded; a failed commit answers `E` with its reason. A GET's FIN
//!   leaves only once exactly the bytes the file had at open were sent and
//!   acknowledged; a file that changed meanwhile ends with `E`.
//! * **Unvalidated peers get little.** Until the peer answers what the
//!   session sent (the ACK of block 1, or block 1 of an upload) its source
//!   address may be spoofed: the session sends its first answer once, then
//!   never more than [`AMPLIFICATION`] times the bytes it received, and it
//!   ends `unvalidated_lifetime` after it started.
//! * **Bounded places.** The acceptor admits at most `max_sessions` in all
//!   and `max_sessions_per_peer` per IP address; at a bound a new request
//!   evicts the oldest unvalidated session, else the oldest finished one
//!   (validated, only waiting to repeat a last answer; through
//!   [`DatagramAcceptor::poll_evict`]); only when every place holds a
//!   transfer in progress is it refused with `E|0|00000|busy`.
//! * **Names are exact.** A request name is at most 100 bytes of UTF-8;
//!   anything else is answered `E` with a reason, never decoded lossily
//!   (which could map two names onto one file).

use super::{MAX_FILE, StopwaitConfig};
use crate::proto::arq::{Acked, Received, Receiver, Sender};
use crate::proto::budget::{self, BudgetConfig, SharedBudget};
use crate::proto::data::{FileError, Files};
use crate::proto::{
    Admission, CloseReason, Context, DatagramAcceptor, DatagramInput, DatagramSession, Driven,
    Transmit, Wake,
};
use crate::time::Instant;
use crate::wire::stopwait::{Bit, Kind, MAX_MESSAGE, Packet};
use bytes::BytesMut;
use core::cell::RefCell;
use log::{debug, info};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

/// Bytes an unvalidated session may send per byte received from its peer
/// (its first answer excepted): QUIC's anti-amplification factor
/// (RFC 9000 §8.1), so a spoofed request cannot turn the server into a
/// large multiplier against the address it names.
pub const AMPLIFICATION: u64 = 3;

enum Job {
    /// Nothing running (a new session, between transfers, or refused).
    Idle,
    /// Serving a GET; `fin` once the last block is acknowledged.
    Get {
        name: String,
        sender: Sender,
        fin: bool,
        /// The file's size when it was opened: exactly this many bytes
        /// must be sent before the FIN may claim the file is complete.
        size: Option<u64>,
    },
    /// A GET whose FIN went out: only a lost FIN is left to repeat, so the
    /// file and its read-ahead are let go.
    Sent,
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
    /// The reflection budget every session of the socket draws from.
    budget: SharedBudget,
    job: Job,
    /// The last datagram sent: repeated on a duplicate.
    last_answer: Vec<u8>,
    /// Datagrams to send now.
    out: VecDeque<Vec<u8>>,
    last_heard: Instant,
    /// When the session began: an unvalidated one ends a lifetime later.
    started: Instant,
    /// The peer answered what we sent, so its address is real; until then
    /// the anti-amplification limit and the unvalidated lifetime apply.
    validated: bool,
    /// Bytes received from the peer and sent to it: the amplification
    /// budget of an unvalidated session.
    received: u64,
    sent: u64,
    /// This session's place in its acceptor's bounds; `None` for a session
    /// made without an acceptor, and once the session has ended.
    place: Option<Place>,
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

/// The `E` text for an I/O failure: the reasons a client can act on
/// (exists, full, denied) by name, everything else as a server error.
fn io_text(kind: ErrorKind) -> &'static [u8] {
    match kind {
        ErrorKind::AlreadyExists => b"file exists",
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => b"disk full",
        ErrorKind::FileTooLarge => b"file too large",
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => b"access denied",
        _ => b"server error",
    }
}

fn error_text(e: FileError) -> &'static [u8] {
    match e {
        FileError::NotFound => b"file not found",
        FileError::Forbidden => b"forbidden",
        FileError::Exists => b"file exists",
        FileError::TooLarge => b"file too large",
        FileError::Io(kind) => io_text(kind),
    }
}

/// Whether `payload` is a GET or PUT whose name is too long to parse: it
/// deserves an answer, where noise does not.
fn is_long_request(payload: &[u8]) -> bool {
    payload.len() > crate::wire::stopwait::HEADER_LEN + MAX_MESSAGE
        && matches!(
            Packet::parse_header(payload),
            Ok((Kind::Get | Kind::Put, _, _))
        )
}

const NAME_TOO_LONG: &[u8] = b"name too long";
const NAME_NOT_UTF8: &[u8] = b"name is not UTF-8";
const FILE_CHANGED: &[u8] = b"file changed while being read";
const BUSY: &[u8] = b"busy";

impl StopwaitServer {
    /// A session over `files`, created when its first datagram arrived at
    /// `now`, outside any acceptor's bounds, drawing from `budget` what it
    /// sends an unvalidated peer.
    pub fn new(
        files: Rc<dyn Files>,
        config: StopwaitConfig,
        budget: SharedBudget,
        now: Instant,
    ) -> Self {
        Self {
            files,
            config,
            budget,
            job: Job::Idle,
            last_answer: Vec::new(),
            out: VecDeque::new(),
            last_heard: now,
            started: now,
            validated: false,
            received: 0,
            sent: 0,
            place: None,
            close: None,
        }
    }

    fn answer(&mut self, d: Vec<u8>) {
        self.last_answer.clone_from(&d);
        self.out.push_back(d);
    }

    fn repeat(&mut self) {
        if !self.last_answer.is_empty() {
            self.out.push_back(self.last_answer.clone());
        }
    }

    fn refuse(&mut self, text: &[u8]) {
        self.answer(datagram(Kind::Error, Bit::Zero, 0, text));
        self.job = Job::Idle;
    }

    /// The peer answered what we sent: its address is real.
    fn validate(&mut self) {
        if !self.validated {
            self.validated = true;
            if let Some(place) = &mut self.place {
                place.validate();
            }
        }
    }

    fn end(&mut self, reason: CloseReason) {
        if self.close.is_none() {
            self.close = Some(reason);
            // Free the place now: the reactor reaps the entry only at the
            // end of its turn, and a new request may need the place sooner.
            self.place = None;
        }
    }

    fn start_get(&mut self, cx: &Context, name: &str) {
        match self.files.open(name) {
            Ok(source) if source.size().is_some_and(|s| s > MAX_FILE) => {
                self.refuse(b"file too large");
            }
            Ok(source) => {
                info!("{} stopwait GET {name}", cx.tag);
                let size = source.size();
                let sender = Sender::new(self.config.arq(), source);
                self.job = Job::Get {
                    name: name.to_owned(),
                    sender,
                    fin: false,
                    size,
                };
                self.send_next(cx);
            }
            Err(e) => {
                debug!("{} stopwait GET {name}: {e}", cx.tag);
                self.refuse(error_text(e));
            }
        }
    }

    fn start_put(&mut self, cx: &Context, name: &str) {
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

    /// GET: the next block, or the FIN once every block is acknowledged
    /// and they add up to the size the file had at open.
    fn send_next(&mut self, cx: &Context) {
        let Job::Get {
            sender,
            fin,
            size,
            name,
        } = &mut self.job
        else {
            return;
        };
        let size = *size;
        match sender.poll_block(cx.now) {
            Ok(Some((index, payload))) => {
                let read = sender.bytes_sent();
                // A short block before the size, or bytes past it: the file
                // was truncated or grew under us, and what the client
                // would assemble is no version of it.
                if size.is_some_and(|s| read > s || (payload.len() < MAX_MESSAGE && read < s)) {
                    info!("{} stopwait GET {name}: the file changed", cx.tag);
                    return self.refuse(FILE_CHANGED);
                }
                let block = u32::try_from(index).unwrap_or(u32::MAX);
                let d = datagram(Kind::Data, Bit::of_block(block), block, &payload);
                self.answer(d);
            }
            Ok(None) if sender.is_done() => {
                if size.is_some_and(|s| sender.bytes_sent() != s) {
                    info!("{} stopwait GET {name}: the file changed", cx.tag);
                    return self.refuse(FILE_CHANGED);
                }
                *fin = true;
                self.job = Job::Sent;
                self.answer(datagram(Kind::Fin, Bit::Fin, 0, b"I'm Done"));
            }
            Ok(None) => {}
            Err(kind) => self.refuse(io_text(kind)),
        }
    }

    fn on_get_packet(&mut self, cx: &Context, p: &Packet<'_>) {
        let Job::Get { sender, fin, .. } = &mut self.job else {
            return;
        };
        match (p.kind, *fin) {
            // A client that missed the FIN repeats its last ACK; the GET
            // again means our first block was lost.
            (Kind::Ack, true) | (Kind::Get, _) => self.repeat(),
            (Kind::Ack, false) => {
                let base = sender.base();
                let names = |i: u64| u64::from(p.block) == i && p.bit == Bit::of_block(p.block);
                if names(base) {
                    // It acknowledges what we sent: the address is real.
                    let advanced = sender.on_ack(base, cx.now) == Acked::Advanced;
                    self.validate();
                    if advanced {
                        self.send_next(cx);
                    }
                } else if base > 1 && names(base - 1) {
                    // The previous block's ACK again: our block was lost.
                    self.repeat();
                }
                // Anything else (a very late ACK) is ignored.
            }
            _ => {}
        }
    }

    fn on_put_packet(&mut self, cx: &Context, p: &Packet<'_>) {
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
                            // Block 1 answers our ACK 0: the address is real.
                            self.validate();
                            let d = datagram(Kind::Ack, p.bit, p.block, b"ack");
                            self.answer(d);
                        }
                        Ok(_) => self.repeat(),
                        Err(kind) => {
                            debug!("{} stopwait PUT {name}: {kind}", cx.tag);
                            self.refuse(io_text(kind));
                        }
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
                // The `A|F` is the upload's "stored": it leaves only once
                // the commit (the rename under the final name) succeeded.
                match receiver.commit() {
                    Ok(bytes) => {
                        info!("{} stopwait PUT {name}: {bytes} bytes stored", cx.tag);
                        *committed = Some(p.block);
                        let d = datagram(Kind::Ack, Bit::Fin, p.block, b"ack");
                        self.answer(d);
                    }
                    Err(kind) => {
                        info!("{} stopwait PUT {name}: not stored: {kind}", cx.tag);
                        self.refuse(io_text(kind));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_datagram(&mut self, cx: &Context, input: DatagramInput<'_>) {
        let DatagramInput::Datagram { payload, .. } = input else {
            return;
        };
        if let Some(place) = &mut self.place {
            place.set_key(cx.tag.key);
        }
        // Everything the peer sends earns an unvalidated session its
        // budget: a client's retransmitted request may be answered again.
        self.received += payload.len() as u64;
        let p = match Packet::parse(payload) {
            Ok(p) => p,
            Err(_) if is_long_request(payload) => {
                self.last_heard = cx.now;
                return self.refuse(NAME_TOO_LONG);
            }
            Err(_) => return,
        };
        self.last_heard = cx.now;
        if let Kind::Get | Kind::Put = p.kind {
            let Ok(name) = core::str::from_utf8(p.message) else {
                return self.refuse(NAME_NOT_UTF8);
            };
            let same_request = matches!((&self.job, p.kind),
                (Job::Get { name: n, .. }, Kind::Get) | (Job::Put { name: n, .. }, Kind::Put) if n == name);
            // The same request during its transfer is a retransmission (our
            // first answer was lost); any other request starts afresh.
            if !(same_request && self.busy()) {
                if p.kind == Kind::Get {
                    self.start_get(cx, name);
                } else {
                    self.start_put(cx, name);
                }
                return;
            }
        }
        match self.job {
            Job::Get { .. } => self.on_get_packet(cx, &p),
            // A client that missed the FIN repeats its last ACK.
            Job::Sent if p.kind == Kind::Ack => self.repeat(),
            Job::Put { .. } => self.on_put_packet(cx, &p),
            // After a refusal a retransmission (a FIN whose commit failed,
            // say) gets the refusal again: its first copy may be lost.
            Job::Idle if self.last_answer.first() == Some(&b'E') => self.repeat(),
            Job::Sent | Job::Idle => {}
        }
    }

    fn busy(&self) -> bool {
        match &self.job {
            Job::Get { fin, .. } => !fin,
            Job::Idle | Job::Sent => false,
            Job::Put { committed, .. } => committed.is_none(),
        }
    }

    fn soft_close_at(&self) -> Instant {
        self.last_heard + self.config.timeout.saturating_mul(self.config.tries)
    }

    /// When the session ends if its peer has still not answered.
    fn unvalidated_until(&self) -> Instant {
        self.started + self.config.unvalidated_lifetime
    }

    /// Whether the peer has answered what this session sent.
    pub fn is_validated(&self) -> bool {
        self.validated
    }
}

impl Driven for StopwaitServer {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if self.close.is_some() {
            return;
        }
        if !self.validated && cx.now >= self.unvalidated_until() {
            debug!("{} stopwait peer never answered: session dropped", cx.tag);
            return self.end(CloseReason::TimedOut { tries: 1 });
        }
        if cx.now >= self.soft_close_at() {
            debug!("{} stopwait client silent: session dropped", cx.tag);
            self.end(CloseReason::TimedOut {
                tries: self.config.tries,
            });
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.close.is_some() {
            return None;
        }
        let soft = self.soft_close_at();
        Some(if self.validated {
            soft
        } else {
            soft.min(self.unvalidated_until())
        })
    }

    /// The soft close and the unvalidated lifetime: a millisecond late is
    /// fine.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl DatagramSession for StopwaitServer {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        self.on_datagram(cx, input);
        // A session with no transfer in progress keeps its place only to
        // repeat a last answer: at a bound it may be evicted.
        let busy = self.busy();
        if let Some(place) = &mut self.place {
            place.set_busy(busy);
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        loop {
            let d = self.out.pop_front()?;
            let len = d.len() as u64;
            // The first answer always goes; after it, a peer that has not
            // shown its address is real gets at most AMPLIFICATION times
            // what it sent.
            if !self.validated
                && self.sent > 0
                && self.sent + len > self.received.saturating_mul(AMPLIFICATION)
            {
                debug!(
                    "{} stopwait answer withheld: peer unvalidated ({} bytes in, {} out)",
                    cx.tag, self.received, self.sent
                );
                continue;
            }
            // And every byte to an unvalidated address comes out of the
            // process's reflection budget (`proto::budget`): a flood of
            // spoofed requests from ever new ports, each worth a first
            // answer, cannot send a victim more than its rate.
            if !self.validated
                && let Some(peer) = cx.tag.peer
                && self
                    .budget
                    .borrow_mut()
                    .take(peer.ip(), len, cx.now)
                    .is_err()
            {
                debug!("{} stopwait answer withheld: UDP budget spent", cx.tag);
                continue;
            }
            self.sent += len;
            buf.extend_from_slice(&d);
            return Some(Transmit::new(None, d.len()));
        }
    }
}

/// The sessions in progress on one stopwait socket, shared by the acceptor
/// (which bounds them and picks whom to evict) and the sessions' [`Place`]s.
#[derive(Debug, Default)]
struct Table {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
    /// Sessions that may be evicted, in eviction order: unvalidated ones
    /// first, then finished ones (which only wait to repeat a last
    /// answer), each oldest first (ids only grow); with their IP address
    /// and, once their first call told them, their slab key.
    evictable: BTreeMap<(Class, u64), (IpAddr, Option<usize>)>,
    next_id: u64,
    /// Keys of sessions evicted, for [`DatagramAcceptor::poll_evict`].
    evicted: Vec<usize>,
}

/// Why a session may be evicted; the order is the eviction order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// Its peer never answered.
    Unvalidated,
    /// Validated, with no transfer in progress.
    Finished,
}

impl Table {
    fn forget(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_peer.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&ip);
            }
        }
    }

    /// Evicts the first evictable session (of `ip`, if given). Returns
    /// whether there was one.
    fn evict_first(&mut self, only: Option<IpAddr>) -> bool {
        let found = self
            .evictable
            .iter()
            .find(|(_, (ip, key))| key.is_some() && only.is_none_or(|o| o == *ip))
            .map(|(&at, &(ip, key))| (at, ip, key));
        let Some((at, ip, Some(key))) = found else {
            return false;
        };
        self.evictable.remove(&at);
        self.forget(ip);
        self.evicted.push(key);
        true
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// In the evictable set under this class.
    Evictable(Class),
    /// Validated with a transfer in progress: never evicted.
    Busy,
    /// Evicted: the table forgot it already.
    Gone,
}

/// A session's place in its acceptor's [`Table`]; freed when dropped.
struct Place {
    table: Rc<RefCell<Table>>,
    id: u64,
    ip: IpAddr,
    key: Option<usize>,
    standing: Standing,
}

impl Place {
    /// Tells the table the session's slab key (known from its first call),
    /// so it can be named for eviction.
    fn set_key(&mut self, key: usize) {
        if self.key.is_none() {
            self.key = Some(key);
            if let Standing::Evictable(class) = self.standing
                && let Some(entry) = self.table.borrow_mut().evictable.get_mut(&(class, self.id))
            {
                entry.1 = Some(key);
            }
        }
    }

    /// Leaves the evictable set; `false` if it was evicted already.
    fn take_out(&mut self) -> bool {
        if let Standing::Evictable(class) = self.standing {
            let kept = self
                .table
                .borrow_mut()
                .evictable
                .remove(&(class, self.id))
                .is_some();
            self.standing = if kept { Standing::Busy } else { Standing::Gone };
        }
        self.standing != Standing::Gone
    }

    fn validate(&mut self) {
        if self.standing == Standing::Evictable(Class::Unvalidated) {
            self.take_out();
        }
    }

    /// A validated session started (`true`) or ended (`false`) a transfer.
    fn set_busy(&mut self, busy: bool) {
        match (self.standing, busy) {
            (Standing::Evictable(Class::Finished), true) => {
                self.take_out();
            }
            (Standing::Busy, false) => {
                self.table
                    .borrow_mut()
                    .evictable
                    .insert((Class::Finished, self.id), (self.ip, self.key));
                self.standing = Standing::Evictable(Class::Finished);
            }
            _ => {}
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.take_out() {
            self.table.borrow_mut().forget(self.ip);
        }
    }
}

/// The acceptor on stopwait's UDP socket: a GET or PUT from a new address
/// starts that address's session, within the bounds; a request with a bad
/// name is answered `E` without a session; anything else from a stranger
/// is ignored.
pub struct StopwaitAcceptor {
    files: Rc<dyn Files>,
    config: StopwaitConfig,
    table: Rc<RefCell<Table>>,
    budget: SharedBudget,
}

impl core::fmt::Debug for StopwaitAcceptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StopwaitAcceptor")
            .field("config", &self.config)
            .field("sessions", &self.table.borrow().total)
            .finish_non_exhaustive()
    }
}

impl StopwaitAcceptor {
    /// Sessions over `files` with these timers and bounds, sending
    /// unvalidated peers what a default budget of their own allows;
    /// [`with_budget`](Self::with_budget) shares one with other services.
    pub fn new(files: Rc<dyn Files>, config: StopwaitConfig) -> Self {
        Self {
            files,
            config,
            table: Rc::default(),
            budget: budget::shared(BudgetConfig::default()),
        }
    }

    /// The same, drawing from `budget`: the budget bounds what the whole
    /// process reflects, so every UDP service should share one.
    #[must_use]
    pub fn with_budget(mut self, budget: SharedBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Sessions holding a place now, and how many of them are unvalidated.
    pub fn sessions(&self) -> (usize, usize) {
        let t = self.table.borrow();
        let unvalidated = t
            .evictable
            .keys()
            .filter(|(class, _)| *class == Class::Unvalidated)
            .count();
        (t.total, unvalidated)
    }

    /// A place for a session from `ip`, evicting at a bound the oldest
    /// unvalidated session, else the oldest finished one; `None` when every
    /// place is taken by a transfer in progress.
    fn place(&self, ip: IpAddr) -> Option<Place> {
        let mut t = self.table.borrow_mut();
        let mine = t.per_peer.get(&ip).copied().unwrap_or(0);
        if mine >= self.config.max_sessions_per_peer {
            if !t.evict_first(Some(ip)) {
                return None;
            }
        } else if t.total >= self.config.max_sessions && !t.evict_first(None) {
            return None;
        }
        t.total += 1;
        *t.per_peer.entry(ip).or_insert(0) += 1;
        let id = t.next_id;
        t.next_id += 1;
        t.evictable.insert((Class::Unvalidated, id), (ip, None));
        Some(Place {
            table: self.table.clone(),
            id,
            ip,
            key: None,
            standing: Standing::Evictable(Class::Unvalidated),
        })
    }
}

fn refusal(reply: &mut BytesMut, text: &[u8]) -> Admission {
    Packet {
        kind: Kind::Error,
        bit: Bit::Zero,
        block: 0,
        message: text,
    }
    .emit(reply);
    Admission::Reply
}

/// No timers of its own: the budget refills lazily, on the next `take`.
impl Driven for StopwaitAcceptor {}

impl DatagramAcceptor for StopwaitAcceptor {
    fn accept(
        &mut self,
        cx: &mut Context,
        from: SocketAddr,
        payload: &[u8],
        reply: &mut BytesMut,
    ) -> Admission {
        let request = match Packet::parse(payload) {
            Ok(p) if matches!(p.kind, Kind::Get | Kind::Put) => p,
            // Answered without a session: the answer is smaller than the
            // request, and the name could never be served.
            Err(_) if is_long_request(payload) => return refusal(reply, NAME_TOO_LONG),
            _ => return Admission::Ignore,
        };
        if core::str::from_utf8(request.message).is_err() {
            return refusal(reply, NAME_NOT_UTF8);
        }
        let Some(place) = self.place(from.ip()) else {
            debug!(
                "{} stopwait request refused: every place is validated",
                cx.tag
            );
            return refusal(reply, BUSY);
        };
        let mut session =
            StopwaitServer::new(self.files.clone(), self.config, self.budget.clone(), cx.now);
        session.place = Some(place);
        Admission::shared(Box::new(session))
    }

    fn max_sessions(&self) -> Option<usize> {
        Some(self.config.max_sessions)
    }

    fn poll_evict(&mut self) -> Option<usize> {
        let key = self.table.borrow_mut().evicted.pop()?;
        debug!("stopwait: unvalidated session #{key} evicted for a new request");
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::{MemoryFiles, Sink, Source};

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    // A session's calls, with the key the reactor would give it.

    fn cx(now: Instant, key: usize) -> Context {
        Context::new(now, key, None)
    }

    /// Feeds `d` from `from` and returns what the session sends.
    fn feed(
        s: &mut dyn DatagramSession,
        key: usize,
        now: Instant,
        from: SocketAddr,
        d: &[u8],
    ) -> Vec<Vec<u8>> {
        let input = DatagramInput::Datagram {
            endpoint: crate::proto::EndpointId::HOME,
            from,
            payload: d,
            kernel_ns: None,
        };
        s.handle_input(&mut cx(now, key), input);
        drain(s, key, now)
    }

    fn drain(s: &mut dyn DatagramSession, key: usize, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut b = BytesMut::new();
            if s.poll_transmit(&mut cx(now, key), 65_507, &mut b).is_none() {
                return out;
            }
            out.push(b.to_vec());
        }
    }

    /// A first datagram to the acceptor: the session it admits, or the
    /// stateless reply.
    fn admit(
        a: &mut StopwaitAcceptor,
        now: Instant,
        from: SocketAddr,
        d: &[u8],
    ) -> Result<Box<dyn DatagramSession>, Vec<u8>> {
        let mut reply = BytesMut::new();
        match a.accept(&mut cx(now, usize::MAX), from, d, &mut reply) {
            Admission::Start(admit) if !admit.own_socket && admit.bind.is_empty() => {
                Ok(admit.session)
            }
            Admission::Reply => Err(reply.to_vec()),
            other => panic!("{other:?}"),
        }
    }

    /// A session outside any acceptor, with a budget of its own.
    fn server(files: Rc<dyn Files>) -> StopwaitServer {
        StopwaitServer::new(files, StopwaitConfig::default(), Rc::default(), at(0))
    }

    fn acceptor(files: &MemoryFiles, config: StopwaitConfig) -> StopwaitAcceptor {
        StopwaitAcceptor::new(Rc::new(files.clone()), config)
    }

    fn evictions(a: &mut StopwaitAcceptor) -> Vec<usize> {
        core::iter::from_fn(|| a.poll_evict()).collect()
    }

    #[test]
    fn two_concurrent_uploads_of_one_new_name_store_exactly_one() {
        let files = MemoryFiles::default();
        let mut a = acceptor(&files, StopwaitConfig::default());
        let (p1, p2) = (peer(1000), peer(2000));
        let mut s1 = admit(&mut a, at(0), p1, b"P000000new").unwrap();
        let mut s2 = admit(&mut a, at(0), p2, b"P000000new").unwrap();
        assert_eq!(feed(&mut *s1, 1, at(0), p1, b"P000000new"), [b"A000000ack"]);
        assert_eq!(feed(&mut *s2, 2, at(0), p2, b"P000000new"), [b"A000000ack"]);
        assert_eq!(feed(&mut *s1, 1, at(1), p1, b"D100001one"), [b"A100001ack"]);
        assert_eq!(feed(&mut *s2, 2, at(1), p2, b"D100001two"), [b"A100001ack"]);
        // The second FIN arrives first: its upload is stored.
        assert_eq!(
            feed(&mut *s2, 2, at(2), p2, b"FF00001I'm Done"),
            [b"AF00001ack"]
        );
        // The other commit fails, and no `A|F` claims it was stored.
        assert_eq!(
            feed(&mut *s1, 1, at(2), p1, b"FF00001I'm Done"),
            [b"E000000file exists"]
        );
        assert_eq!(files.get("new").unwrap(), b"two");
        // Its client lost that answer and repeats the FIN: it is refused
        // again, not left to time out (exit 2) as if the server vanished.
        assert_eq!(
            feed(&mut *s1, 1, at(3), p1, b"FF00001I'm Done"),
            [b"E000000file exists"]
        );
        assert_eq!(files.get("new").unwrap(), b"two");
    }

    /// Files whose uploads fail to commit with `kind`, and whose GETs read
    /// `yields` while announcing `size`.
    struct Faulty {
        commit: ErrorKind,
        size: u64,
        yields: usize,
    }

    struct FailingSink(ErrorKind);

    impl Sink for FailingSink {
        fn write_all(&mut self, _: &[u8]) -> Result<(), ErrorKind> {
            Ok(())
        }

        fn commit(self: Box<Self>) -> Result<u64, ErrorKind> {
            Err(self.0)
        }
    }

    /// A file that shrank after it was opened: `size()` still says what it
    /// was, reading yields less.
    struct Shrunk {
        size: u64,
        left: usize,
    }

    impl Source for Shrunk {
        fn size(&self) -> Option<u64> {
            Some(self.size)
        }

        fn read_into(&mut self, dst: &mut BytesMut, max: usize) -> Result<usize, ErrorKind> {
            let n = max.min(self.left);
            dst.extend_from_slice(&vec![b'x'; n]);
            self.left -= n;
            Ok(n)
        }
    }

    impl Files for Faulty {
        fn open(&self, _: &str) -> Result<Box<dyn Source>, FileError> {
            Ok(Box::new(Shrunk {
                size: self.size,
                left: self.yields,
            }))
        }

        fn create(&self, _: &str, _: Option<u64>) -> Result<Box<dyn Sink>, FileError> {
            Ok(Box::new(FailingSink(self.commit)))
        }
    }

    #[test]
    fn a_failed_commit_answers_its_reason_and_never_the_final_ack() {
        for (kind, text) in [
            (ErrorKind::AlreadyExists, &b"E000000file exists"[..]),
            (ErrorKind::StorageFull, b"E000000disk full"),
            (ErrorKind::QuotaExceeded, b"E000000disk full"),
            (ErrorKind::PermissionDenied, b"E000000access denied"),
            (ErrorKind::ReadOnlyFilesystem, b"E000000access denied"),
            (ErrorKind::Other, b"E000000server error"),
        ] {
            let files = Faulty {
                commit: kind,
                size: 0,
                yields: 0,
            };
            let mut s = server(Rc::new(files));
            let p = peer(1);
            feed(&mut s, 1, at(0), p, b"P000000f");
            assert_eq!(feed(&mut s, 1, at(0), p, b"D100001abc"), [b"A100001ack"]);
            assert_eq!(
                feed(&mut s, 1, at(0), p, b"FF00001I'm Done"),
                [text],
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_file_that_shrinks_while_served_ends_with_an_error_not_a_fin() {
        // 250 bytes at open, 150 when read: block 2 comes up short.
        // 300 at open, 200 when read: blocks are full, the end comes early.
        // 100 at open, none when read: refused before any block.
        for (size, yields, blocks) in [(250, 150, 1u32), (300, 200, 2), (100, 0, 0)] {
            let files = Faulty {
                commit: ErrorKind::Other,
                size,
                yields,
            };
            let mut s = server(Rc::new(files));
            let p = peer(1);
            let mut answers = feed(&mut s, 1, at(0), p, b"G000000f");
            for block in 1..=blocks {
                let got = answers.pop().unwrap();
                assert_eq!(got[0], b'D', "{size}/{yields}: block {block}");
                let ack = format!("A{}{block:05}ack", block % 2);
                answers = feed(&mut s, 1, at(1), p, ack.as_bytes());
            }
            assert_eq!(
                answers,
                [b"E000000file changed while being read"],
                "{size}/{yields}"
            );
        }
    }

    #[test]
    fn names_over_100_bytes_or_not_utf8_are_refused_never_decoded_lossily() {
        let files = MemoryFiles::default();
        // What a lossy decode of both names below would open.
        files.insert("a\u{fffd}", b"wrong file".to_vec());
        let mut a = acceptor(&files, StopwaitConfig::default());
        for bad in [&b"G000000a\xff"[..], b"G000000a\xfe", b"P000000a\xff"] {
            assert_eq!(
                admit(&mut a, at(0), peer(1), bad).err().unwrap(),
                b"E000000name is not UTF-8"
            );
        }
        let long = [&b"G000000"[..], &[b'n'; 101]].concat();
        assert_eq!(
            admit(&mut a, at(0), peer(1), &long).err().unwrap(),
            b"E000000name too long"
        );
        // 100 bytes is a name like any other.
        let ok = [&b"G000000"[..], &[b'n'; 100]].concat();
        let mut s = admit(&mut a, at(0), peer(1), &ok).unwrap();
        assert_eq!(
            feed(&mut *s, 1, at(0), peer(1), &ok),
            [b"E000000file not found"]
        );
        // The same rules inside a session (a peer that has one already).
        assert_eq!(
            feed(&mut *s, 1, at(1), peer(1), &long),
            [b"E000000name too long"]
        );
        assert_eq!(
            feed(&mut *s, 1, at(2), peer(1), b"G000000a\xff"),
            [b"E000000name is not UTF-8"]
        );
    }

    #[test]
    fn a_silent_stranger_gets_exactly_one_d1_and_the_session_ends_at_the_lifetime() {
        let files = MemoryFiles::default();
        files.insert("f", vec![b'x'; 1000]);
        let mut a = acceptor(&files, StopwaitConfig::default());
        let p = peer(1);
        let mut s = admit(&mut a, at(0), p, b"G000000f").unwrap();
        let first = feed(&mut *s, 1, at(0), p, b"G000000f");
        assert_eq!(first.len(), 1);
        assert_eq!(&first[0][..7], b"D100001");
        // The "client" repeats its 8-byte request: 3 × 16 bytes is not
        // enough for a second 107-byte block, nor is 3 × 32.
        for t in [500, 1_000, 2_999] {
            assert!(feed(&mut *s, 1, at(t), p, b"G000000f").is_empty(), "{t}");
        }
        // No timer resends anything, and the session ends at exactly 3 s.
        assert_eq!(s.poll_timeout(), Some(at(3_000)));
        s.handle_timeout(&mut cx(at(2_999), 1));
        assert!(drain(&mut *s, 1, at(2_999)).is_empty());
        assert_eq!(s.poll_close(), None);
        s.handle_timeout(&mut cx(at(3_000), 1));
        assert!(drain(&mut *s, 1, at(3_000)).is_empty());
        assert_eq!(s.poll_close(), Some(CloseReason::TimedOut { tries: 1 }));
        assert_eq!(a.sessions(), (0, 0), "its place is free");
    }

    #[test]
    fn enough_repeated_requests_earn_a_repeat_and_a_validated_peer_is_not_limited() {
        let files = MemoryFiles::default();
        files.insert("f", vec![b'x'; 1000]);
        let p = peer(1);
        let mut s = server(Rc::new(files));
        assert_eq!(feed(&mut s, 1, at(0), p, b"G000000f").len(), 1);
        // 107 + 107 bytes need 72 received: the ninth 8-byte request.
        for n in 2..=8 {
            assert!(feed(&mut s, 1, at(0), p, b"G000000f").is_empty(), "{n}");
        }
        assert_eq!(feed(&mut s, 1, at(0), p, b"G000000f").len(), 1);
        assert!(!s.is_validated());
        // Its ACK validates it: then every repeat is answered, and the
        // lifetime no longer applies (the soft close does).
        assert_eq!(feed(&mut s, 1, at(1), p, b"A100001ack").len(), 1);
        assert!(s.is_validated());
        for _ in 0..20 {
            assert_eq!(feed(&mut s, 1, at(1), p, b"A100001ack").len(), 1);
        }
        assert_eq!(s.poll_timeout(), Some(at(25_001)));
    }

    #[test]
    fn at_the_bound_the_oldest_unvalidated_session_is_evicted_else_busy() {
        let files = MemoryFiles::default();
        files.insert("f", vec![b'x'; 1000]);
        let config = StopwaitConfig {
            max_sessions: 3,
            max_sessions_per_peer: 2,
            ..StopwaitConfig::default()
        };
        let mut a = acceptor(&files, config);
        let other = SocketAddr::from(([198, 51, 100, 7], 9));
        // Two from one host, keys 10 and 11.
        let mut s10 = admit(&mut a, at(0), peer(1), b"G000000f").unwrap();
        feed(&mut *s10, 10, at(0), peer(1), b"G000000f");
        let mut s11 = admit(&mut a, at(1), peer(2), b"G000000f").unwrap();
        feed(&mut *s11, 11, at(1), peer(2), b"G000000f");
        assert!(evictions(&mut a).is_empty());
        // A third from that host: its own oldest unvalidated one goes.
        let mut s12 = admit(&mut a, at(2), peer(3), b"G000000f").unwrap();
        assert_eq!(evictions(&mut a), [10]);
        drop(s10);
        feed(&mut *s12, 12, at(2), peer(3), b"G000000f");
        assert_eq!(a.sessions(), (2, 2));
        // Both validate; another host takes the last place.
        feed(&mut *s11, 11, at(3), peer(2), b"A100001ack");
        feed(&mut *s12, 12, at(3), peer(3), b"A100001ack");
        let mut s20 = admit(&mut a, at(4), other, b"G000000f").unwrap();
        feed(&mut *s20, 20, at(4), other, b"G000000f");
        assert_eq!(a.sessions(), (3, 1));
        // At the total bound a newcomer evicts the unvalidated one...
        let far = SocketAddr::from(([203, 0, 113, 5], 9));
        let mut s30 = admit(&mut a, at(5), far, b"G000000f").unwrap();
        assert_eq!(evictions(&mut a), [20]);
        drop(s20);
        feed(&mut *s30, 30, at(5), far, b"G000000f");
        feed(&mut *s30, 30, at(5), far, b"A100001ack");
        // ...and when every place is validated, it is refused politely.
        let late = SocketAddr::from(([203, 0, 113, 6], 9));
        assert_eq!(
            admit(&mut a, at(6), late, b"G000000f").err().unwrap(),
            b"E000000busy"
        );
        assert_eq!(
            admit(&mut a, at(6), peer(4), b"G000000f").err().unwrap(),
            b"E000000busy",
            "the full host too"
        );
        assert!(evictions(&mut a).is_empty());
        // A session that ends frees its place at once.
        drop(s11);
        assert!(admit(&mut a, at(7), late, b"G000000f").is_ok());
        assert_eq!(a.max_sessions(), Some(3));
        drop((s12, s30));
    }

    #[test]
    fn finished_sessions_are_evicted_after_unvalidated_ones_and_let_go_of_their_file() {
        let files = MemoryFiles::default();
        files.insert("small", vec![b'x'; 10]);
        files.insert("big", vec![b'x'; 1000]);
        let config = StopwaitConfig {
            max_sessions: 3,
            ..StopwaitConfig::default()
        };
        let mut a = acceptor(&files, config);
        let p = |n: u8| SocketAddr::from(([198, 51, 100, n], 9));
        // 1 finishes a GET, 2 is in the middle of one, 3 never answers.
        let mut s1 = admit(&mut a, at(0), p(1), b"G000000small").unwrap();
        feed(&mut *s1, 1, at(0), p(1), b"G000000small");
        assert_eq!(
            feed(&mut *s1, 1, at(1), p(1), b"A100001ack"),
            [b"FF00000I'm Done"]
        );
        let mut s2 = admit(&mut a, at(2), p(2), b"G000000big").unwrap();
        feed(&mut *s2, 2, at(2), p(2), b"G000000big");
        feed(&mut *s2, 2, at(3), p(2), b"A100001ack");
        let mut s3 = admit(&mut a, at(4), p(3), b"G000000big").unwrap();
        feed(&mut *s3, 3, at(4), p(3), b"G000000big");
        // The unvalidated one goes first, though it is the youngest...
        let mut s4 = admit(&mut a, at(5), p(4), b"G000000big").unwrap();
        assert_eq!(evictions(&mut a), [3]);
        drop(s3);
        feed(&mut *s4, 4, at(5), p(4), b"G000000big");
        feed(&mut *s4, 4, at(5), p(4), b"A100001ack");
        // ...then the finished one (it still repeats its FIN until then)...
        assert_eq!(
            feed(&mut *s1, 1, at(5), p(1), b"A100001ack"),
            [b"FF00000I'm Done"]
        );
        let mut s5 = admit(&mut a, at(6), p(5), b"G000000big").unwrap();
        assert_eq!(evictions(&mut a), [1]);
        drop(s1);
        feed(&mut *s5, 5, at(6), p(5), b"G000000big");
        feed(&mut *s5, 5, at(6), p(5), b"A100001ack");
        // ...never a transfer in progress.
        assert_eq!(
            admit(&mut a, at(7), p(6), b"G000000big").err().unwrap(),
            b"E000000busy"
        );
        assert!(evictions(&mut a).is_empty());
        assert_eq!(a.sessions(), (3, 0));
        drop((s4, s5));
        drop(s2);
    }
}
