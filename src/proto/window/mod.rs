//! window: the userspace TCP engine carried in UDP datagrams (the
//! contract's "tcp engine, carried two ways", window part).
//!
//! Owns the carrier: one TCP segment per UDP datagram, the UDP 4-tuple
//! naming the connection (the ports inside the segment are ignored and the
//! TCP checksum is left zero: UDP's own checksum covers the datagram). A
//! [`WindowAcceptor`] on the server's UDP socket admits a session for a
//! peer's SYN and answers anything else from a peer without a session
//! with a RST (never a RST to a RST); a [`Carried`] session is one
//! connection — a [`Connection`]: the engine with an ordinary stream
//! session above it, tcpfile's on both ends.
//!
//! It must never interpret what the engine does with a segment, never
//! answer a datagram that is not a TCP segment (no reflection), and never
//! hold more half-open connections than [`WindowConfig::max_half_open`]:
//! past it the oldest half-open one is dropped for the new SYN.

use crate::proto::tcp::conn::{self, MAX_SEGMENT_OVERHEAD, State, Tcb};
use crate::proto::tcp::isn::IsnGenerator;
use crate::proto::tcp::session::{Connection, CounterCell};
use crate::proto::{
    Admission, CloseReason, Context, DatagramAcceptor, DatagramInput, DatagramSession, Driven,
    EndpointId, StreamAcceptor, StreamSession, Transmit,
};
use crate::time::Instant;
use crate::wire::tcp::{Control, Packet, Repr};
use bytes::BytesMut;
use core::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;

/// The UDP port of the window server.
pub const PORT: u16 = 50_003;

/// Most half-open (SYN-RECEIVED) connections at once: a spoofed SYN
/// flood costs at most this many sessions, and a real client's SYN
/// always finds a place, taking the oldest half-open one's (the
/// validated-peer rule: a peer that completed its handshake is never
/// evicted for a newcomer). 256 is far more than real clients open at
/// once, and each costs a few hundred bytes until it times out.
pub const MAX_HALF_OPEN: usize = 256;

/// Most connections at once on one server socket, TIME-WAIT included; at
/// it a SYN takes the place of the oldest connection in TIME-WAIT (or the
/// oldest half-open one), and with neither it is answered with RST
/// (refused politely, no established transfer disturbed).
pub const MAX_CONNECTIONS: usize = 4_096;

/// The largest UDP payload the carrier sends: a segment of the engine's
/// MSS plus the largest TCP header. 1472 is what fits in a 1500-byte MTU
/// after the IPv4 and UDP headers, so the default MSS is 1472 − 20 = 1452
/// bytes of data per datagram with no options (timestamps take 12 of
/// them; the engine accounts for its options itself).
pub const DEFAULT_DATAGRAM: usize = 1_472;

/// How a window endpoint behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowConfig {
    /// The engine's configuration (its MSS is the datagram size minus the
    /// 20-byte TCP header).
    pub tcp: conn::Config,
    /// See [`MAX_HALF_OPEN`].
    pub max_half_open: usize,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            tcp: conn::Config {
                mss: mss_for(DEFAULT_DATAGRAM),
                ..conn::Config::default()
            },
            max_half_open: MAX_HALF_OPEN,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// The MSS for datagrams of `datagram` bytes of UDP payload.
#[must_use]
pub fn mss_for(datagram: usize) -> u16 {
    u16::try_from(datagram.saturating_sub(crate::wire::tcp::HEADER_LEN)).unwrap_or(u16::MAX)
}

/// Sessions of one kind (half-open, or in TIME-WAIT), oldest first.
#[derive(Debug, Default)]
struct Aged {
    /// Slab keys, oldest first. A key may be stale (its session moved on
    /// or ended): `members` tells.
    order: VecDeque<usize>,
    members: hashbrown::HashSet<usize>,
}

impl Aged {
    fn insert(&mut self, key: usize) {
        if self.members.insert(key) {
            self.order.push_back(key);
        }
    }

    fn remove(&mut self, key: usize) {
        self.members.remove(&key);
        // Stale keys are dropped as they reach the front, so the queue
        // stays within twice the members.
        if self.order.len() > 2 * self.members.len() + 16 {
            let members = &self.members;
            self.order.retain(|k| members.contains(k));
        }
    }

    fn len(&self) -> usize {
        self.members.len()
    }

    fn pop_oldest(&mut self) -> Option<usize> {
        while let Some(key) = self.order.pop_front() {
            if self.members.remove(&key) {
                return Some(key);
            }
        }
        None
    }
}

/// What the acceptor and its sessions share: which sessions are half open
/// or in TIME-WAIT, oldest first, and how many are open at all.
#[derive(Debug, Default)]
struct Table {
    /// Sessions still in SYN-RECEIVED.
    half_open: Aged,
    /// Sessions in TIME-WAIT: they only guard against old duplicates, so
    /// at the connection cap the oldest gives way to a new SYN (as Linux
    /// recycles its TIME-WAIT buckets).
    time_wait: Aged,
    /// Sessions alive.
    open: usize,
    /// Keys the acceptor asks the reactor to close now.
    evicted: Vec<usize>,
}

impl Table {
    fn ended(&mut self, key: usize) {
        self.half_open.remove(key);
        self.time_wait.remove(key);
        self.open = self.open.saturating_sub(1);
    }

    /// Makes room for one more connection, if it takes an eviction: the
    /// oldest half-open one when they are at their bound; at the
    /// connection cap, the oldest in TIME-WAIT, else the oldest half-open.
    /// `false`: no room (every connection is established).
    fn make_room(&mut self, max_half_open: usize, max_connections: usize) -> bool {
        let victim = if self.open >= max_connections {
            self.time_wait
                .pop_oldest()
                .or_else(|| self.half_open.pop_oldest())
        } else if self.half_open.len() >= max_half_open {
            self.half_open.pop_oldest()
        } else {
            return true;
        };
        match victim {
            Some(key) => {
                self.evicted.push(key);
                true
            }
            None => false,
        }
    }
}

/// The server's acceptor on its UDP socket.
pub struct WindowAcceptor {
    local: SocketAddr,
    app: Box<dyn StreamAcceptor>,
    config: WindowConfig,
    isn: IsnGenerator,
    table: Rc<RefCell<Table>>,
}

impl core::fmt::Debug for WindowAcceptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WindowAcceptor")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl WindowAcceptor {
    /// Serves `app`'s sessions (tcpfile's, with zero-copy off) over the
    /// engine on the socket bound to `local`; `isn_key` keys the initial
    /// sequence numbers (RFC 6528: secret, random per process).
    pub fn new(
        local: SocketAddr,
        app: Box<dyn StreamAcceptor>,
        config: WindowConfig,
        isn_key: [u8; 16],
    ) -> Self {
        Self {
            local,
            app,
            config,
            isn: IsnGenerator::new(isn_key),
            table: Rc::default(),
        }
    }
}

/// No timers of its own: half-open sessions time out by their own SYN-ACK
/// retries.
impl Driven for WindowAcceptor {}

impl DatagramAcceptor for WindowAcceptor {
    fn accept(
        &mut self,
        cx: &mut Context,
        from: SocketAddr,
        payload: &[u8],
        reply: &mut BytesMut,
    ) -> Admission {
        let Ok(packet) = Packet::new_checked(payload) else {
            return Admission::Ignore;
        };
        let Ok(segment) = Repr::parse(&packet) else {
            return Admission::Ignore;
        };
        if segment.control != Control::Syn || segment.ack_number.is_some() {
            // No connection: RFC 9293's answer for a closed port.
            return reset(&segment, reply);
        }
        let mut table = self.table.borrow_mut();
        if !table.make_room(self.config.max_half_open, self.config.max_connections) {
            log::debug!("{} window SYN refused: {} connections", cx.tag, table.open);
            return reset(&segment, reply);
        }
        let Some(app) = self.app.accept(cx, from) else {
            return reset(&segment, reply);
        };
        let iss = self.isn.isn(self.local, from, cx.now);
        let tcb = Tcb::accept(&self.config.tcp, self.local, from, &segment, iss, cx.now);
        table.open += 1;
        let session = Carried::accepted(
            Connection::new(tcb, app),
            from,
            self.config.tcp.mss,
            self.table.clone(),
        );
        Admission::shared(Box::new(session))
    }

    fn max_sessions(&self) -> Option<usize> {
        // One more than the bound: the SYN that finds the table full must
        // reach `accept`, which evicts a half-open session for it.
        Some(self.config.max_connections + 1)
    }

    fn poll_evict(&mut self) -> Option<usize> {
        let key = self.table.borrow_mut().evicted.pop()?;
        log::debug!("window: half-open session #{key} dropped for a new SYN");
        Some(key)
    }
}

fn reset(segment: &Repr<'_>, reply: &mut BytesMut) -> Admission {
    reply.resize(crate::wire::tcp::HEADER_LEN, 0);
    match conn::reset_for(segment, reply) {
        Some(n) => {
            reply.truncate(n);
            Admission::Reply
        }
        None => Admission::Ignore,
    }
}

/// One connection carried in UDP datagrams to and from `peer`: a server's
/// (admitted by [`WindowAcceptor`], on its shared socket) or a client's
/// (on a connected socket of its own).
pub struct Carried {
    conn: Option<Connection>,
    /// A client's connection before its first call, which brings `now`.
    opening: Option<Box<Opening>>,
    peer: SocketAddr,
    /// The largest segment the engine writes: its MSS and header room.
    segment_max: usize,
    /// The admitting acceptor's table, for a server session.
    table: Option<Rc<RefCell<Table>>>,
    /// This session's slab key, learnt on its first call.
    key: Option<usize>,
    /// What the table knows of it.
    stage: Stage,
    /// Datagrams that were not TCP segments.
    malformed: u64,
    /// Where a client's engine counters go (given to its connection once
    /// it opens).
    counters: Option<CounterCell>,
    /// The reactor delivers the admitting SYN to the new session too; the
    /// engine already has it.
    skip_syn: bool,
}

/// Where a server session stands in its acceptor's [`Table`], so each move
/// is reported once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Not reported yet.
    New,
    /// In SYN-RECEIVED: one of the half-open.
    HalfOpen,
    /// Past the handshake.
    Open,
    /// In TIME-WAIT.
    TimeWait,
    /// Gone from the table.
    Ended,
}

/// What an active open needs once it knows the time.
struct Opening {
    config: conn::Config,
    local: SocketAddr,
    isn_key: [u8; 16],
    app: Box<dyn StreamSession>,
}

impl core::fmt::Debug for Carried {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Carried")
            .field("peer", &self.peer)
            .field("state", &self.conn.as_ref().map(|c| c.tcb().state()))
            .finish_non_exhaustive()
    }
}

impl Carried {
    /// A server's `conn` carried to and from `peer`.
    fn accepted(conn: Connection, peer: SocketAddr, mss: u16, table: Rc<RefCell<Table>>) -> Self {
        Self {
            conn: Some(conn),
            opening: None,
            peer,
            segment_max: MAX_SEGMENT_OVERHEAD + usize::from(mss),
            table: Some(table),
            key: None,
            stage: Stage::New,
            malformed: 0,
            skip_syn: true,
            counters: None,
        }
    }

    /// A client connection from `local` (its connected socket's address)
    /// to `server`, with `app` above the engine. The SYN leaves on the
    /// session's first call.
    #[must_use]
    pub fn connect(
        config: conn::Config,
        local: SocketAddr,
        server: SocketAddr,
        isn_key: [u8; 16],
        app: Box<dyn StreamSession>,
    ) -> Self {
        let segment_max = MAX_SEGMENT_OVERHEAD + usize::from(config.mss);
        Self {
            conn: None,
            opening: Some(Box::new(Opening {
                config,
                local,
                isn_key,
                app,
            })),
            peer: server,
            segment_max,
            table: None,
            key: None,
            stage: Stage::New,
            malformed: 0,
            skip_syn: false,
            counters: None,
        }
    }

    /// Leaves the connection's counters in `cell` as it goes (the last
    /// are the final ones).
    #[must_use]
    pub fn with_counters(mut self, cell: CounterCell) -> Self {
        self.counters = Some(cell);
        self
    }

    /// The connection, once open.
    #[must_use]
    pub fn connection(&self) -> Option<&Connection> {
        self.conn.as_ref()
    }

    /// Datagrams from the peer that were not TCP segments.
    #[must_use]
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    fn conn(&mut self, now: Instant) -> &mut Connection {
        if let Some(o) = self.opening.take() {
            let iss = IsnGenerator::new(o.isn_key).isn(o.local, self.peer, now);
            let tcb = Tcb::connect(&o.config, o.local, self.peer, iss, now);
            let conn = Connection::new(tcb, o.app);
            self.conn = Some(match self.counters.take() {
                Some(cell) => conn.with_counters(cell),
                None => conn,
            });
        }
        self.conn
            .as_mut()
            .expect("a session is accepted or opening")
    }

    /// Keeps the acceptor's table (or the client's counters) in step with
    /// the connection.
    fn note(&mut self, cx: &Context) {
        let (Some(table), Some(conn)) = (&self.table, &self.conn) else {
            return;
        };
        let key = *self.key.get_or_insert(cx.tag.key);
        let now = match conn.tcb().state() {
            _ if conn.is_closed() => Stage::Ended,
            State::SynReceived => Stage::HalfOpen,
            State::TimeWait => Stage::TimeWait,
            _ => Stage::Open,
        };
        if now == self.stage || self.stage == Stage::Ended {
            return;
        }
        let mut table = table.borrow_mut();
        match now {
            Stage::HalfOpen => table.half_open.insert(key),
            Stage::Open => table.half_open.remove(key),
            Stage::TimeWait => {
                table.half_open.remove(key);
                table.time_wait.insert(key);
            }
            Stage::Ended => table.ended(key),
            Stage::New => {}
        }
        self.stage = now;
    }
}

impl Drop for Carried {
    fn drop(&mut self) {
        // An evicted or reaped session leaves the table even if it never
        // reported its end.
        // (A session the reactor refused before its first call has no
        // key, and was never half-open in the table.)
        if self.stage != Stage::Ended
            && let Some(table) = &self.table
        {
            table.borrow_mut().ended(self.key.unwrap_or(usize::MAX));
        }
    }
}

impl Driven for Carried {
    fn handle_timeout(&mut self, cx: &mut Context) {
        self.conn(cx.now).handle_timeout(cx);
        self.note(cx);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.conn.as_ref().and_then(Connection::poll_timeout)
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        let conn = self.conn.as_ref().filter(|c| c.is_closed())?;
        let tcb = conn.tcb();
        Some(match tcb.error() {
            None => CloseReason::Completed,
            Some(conn::Error::TimedOut) => CloseReason::TimedOut {
                tries: u32::try_from(tcb.counters().rto_expiries).unwrap_or(u32::MAX),
            },
            Some(conn::Error::Reset | conn::Error::Refused) => CloseReason::PeerClosed,
        })
    }
}

impl DatagramSession for Carried {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        match input {
            DatagramInput::Datagram { .. } if core::mem::take(&mut self.skip_syn) => {}
            DatagramInput::Datagram { from, payload, .. } if from == self.peer => {
                match Packet::new_checked(payload).and_then(|p| Repr::parse(&p)) {
                    Ok(segment) => self.conn(cx.now).handle_segment(cx, &segment),
                    Err(_) => self.malformed += 1,
                }
            }
            // Another sender on a client's socket, or a device packet:
            // not this connection's. ICMP errors (`Failed`) are soft
            // errors (RFC 1122 4.2.3.9): the engine's timers decide.
            DatagramInput::Datagram { .. }
            | DatagramInput::Packet { .. }
            | DatagramInput::Failed { .. } => {}
        }
        self.note(cx);
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        let room = limit.min(self.segment_max);
        let start = buf.len();
        buf.resize(start + room, 0);
        let sent = self.conn(cx.now).poll_segment(cx, &mut buf[start..]);
        buf.truncate(start + sent.unwrap_or(0));
        self.note(cx);
        sent.map(|len| Transmit::new(Some(self.peer), len).via(EndpointId::HOME))
    }
}

#[cfg(test)]
mod tests;
