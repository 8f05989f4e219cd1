//! TCP above the stack's IP layer: listening ports, the connection table,
//! and what each connection wants from the reactor (a segment sent, a
//! deadline armed).
//!
//! Owns the demultiplexing of segments to [`Connection`]s by (remote
//! address, remote port, local port), the listeners (a port and the
//! acceptor that makes the session above each connection), passive and
//! active opens with unguessable ISNs ([`IsnGenerator`]), the bounds on
//! half-open ([`MAX_HALF_OPEN`], oldest dropped) and on all connections
//! ([`MAX_CONNECTIONS`], refused with RST), and two queues that spare any
//! scan of the table: the connections that may have a segment to send, and
//! the changes to the connections' deadlines, each connection being a
//! *part* of the stack session (its slab index is its
//! [`PartId`]) with its own entry on the reactor's heap.
//!
//! It must never build IP headers or compute checksums (the stack does),
//! never hold a segment copy for later (segments are pulled from the engine
//! when the device can take them), and never scan the table.

use crate::proto::tcp::conn::{Config, Tcb};
use crate::proto::tcp::isn::IsnGenerator;
use crate::proto::tcp::session::{Connection, CounterCell};
use crate::proto::{Context, PartId, StreamAcceptor, StreamSession};
use crate::time::Instant;
use crate::wire::tcp::{Control, Repr};
use core::fmt;
use hashbrown::HashMap;
use slab::Slab;
use std::collections::VecDeque;
use std::hash::RandomState;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Most connections in SYN-RECEIVED at once: the SYN-flood bound. Each
/// holds a session and an engine's state for a peer that has not proved it
/// can receive; 1 024 is Linux's default `tcp_max_syn_backlog` for a small
/// machine, and far above what honest clients keep half-open. When full,
/// the oldest half-open connection is dropped for the new SYN (a real
/// client retransmits; a flood's SYNs age out first).
pub const MAX_HALF_OPEN: usize = 1_024;

/// Most connections of any state at once (TIME-WAIT included): above the
/// contract's 10 000 concurrent idle connections, so that bound is the
/// machine's memory, not ours. At it, a SYN takes the place of the oldest
/// connection in TIME-WAIT (which only guards against old duplicates, as
/// Linux recycles its TIME-WAIT buckets); with none, it is answered with
/// RST.
pub const MAX_CONNECTIONS: usize = 16_384;

/// The ephemeral ports of active opens: IANA's dynamic range (RFC 6335).
pub const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 49_152..=65_535;

/// Which connection a segment belongs to: (remote address, remote port,
/// local port). The local address is always the stack's.
type Key = (Ipv4Addr, u16, u16);

/// One connection and the stack's bookkeeping for it.
#[derive(Debug)]
struct Slot {
    conn: Connection,
    key: Key,
    /// Tells this connection from an earlier one in the same slab entry,
    /// for entries left in [`Tcp::ready`] and [`Tcp::half_open`].
    generation: u32,
    /// The deadline last reported for this part and not yet fired.
    armed: Option<Instant>,
    /// In [`Tcp::ready`].
    queued: bool,
    /// In SYN-RECEIVED and counted in [`Tcp::half_open_count`].
    half_open: bool,
    /// Entered TIME-WAIT (and was queued in [`Tcp::time_wait`]).
    time_wait: bool,
}

/// What the TCP layer did, merged into the stack's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct TcpCounters {
    pub segments_in: u64,
    pub segments_out: u64,
    pub half_open_dropped: u64,
    pub time_wait_reclaimed: u64,
    pub accepted: u64,
    pub closed: u64,
}

/// Why [`Stack::connect`](super::Stack::connect) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// [`MAX_CONNECTIONS`] are open.
    TooManyConnections,
    /// Every ephemeral port towards that address and port is in use.
    NoPort,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyConnections => {
                write!(f, "{MAX_CONNECTIONS} TCP connections are open")
            }
            Self::NoPort => f.write_str("no ephemeral port is free"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// What became of a segment for the stack's address.
pub(super) enum Input {
    /// A connection took it, or it was dropped on purpose.
    Done,
    /// It matched nothing that takes it: answer with RST.
    Reset,
}

/// The TCP layer of a stack. See the module docs.
pub(super) struct Tcp {
    addr: Ipv4Addr,
    config: Config,
    isn: IsnGenerator,
    listeners: Vec<(u16, Box<dyn StreamAcceptor>)>,
    slots: Slab<Slot>,
    demux: HashMap<Key, usize, RandomState>,
    /// Half-open connections, oldest first; entries of connections that
    /// left SYN-RECEIVED stay until they reach the front (or a compaction).
    half_open: VecDeque<(usize, u32)>,
    half_open_count: usize,
    /// Connections in TIME-WAIT, oldest first (entries of freed ones stay
    /// until they reach the front).
    time_wait: VecDeque<(usize, u32)>,
    /// Connections that may have a segment to send, in the order they
    /// became so.
    ready: VecDeque<(usize, u32)>,
    /// Part deadline changes for the reactor, in order.
    parts: VecDeque<(PartId, Option<Instant>)>,
    next_generation: u32,
    next_port: u16,
    pub(super) counters: TcpCounters,
    /// The reactor's key of the stack's entry, for the connections' tags.
    entry: usize,
    /// [`MAX_CONNECTIONS`], lowered by tests.
    max_connections: usize,
}

impl fmt::Debug for Tcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tcp")
            .field(
                "ports",
                &self.listeners.iter().map(|l| l.0).collect::<Vec<_>>(),
            )
            .field("connections", &self.slots.len())
            .field("half_open", &self.half_open_count)
            .finish_non_exhaustive()
    }
}

impl Tcp {
    /// No listener, `config`, ISNs keyed by `key`.
    pub(super) fn new(addr: Ipv4Addr, config: Config, key: [u8; 16]) -> Self {
        let start = u16::from_le_bytes([key[0], key[1]]);
        let span = EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start();
        Self {
            addr,
            config,
            isn: IsnGenerator::new(key),
            listeners: Vec::new(),
            slots: Slab::new(),
            demux: HashMap::with_hasher(RandomState::new()),
            half_open: VecDeque::new(),
            half_open_count: 0,
            time_wait: VecDeque::new(),
            ready: VecDeque::new(),
            parts: VecDeque::new(),
            next_generation: 0,
            // Not the first port every time: a restarted client does not
            // meet its predecessor's TIME-WAIT on the server.
            next_port: EPHEMERAL_PORTS.start() + start % span,
            counters: TcpCounters::default(),
            entry: 0,
            max_connections: MAX_CONNECTIONS,
        }
    }

    pub(super) fn set_listeners(&mut self, listeners: Vec<(u16, Box<dyn StreamAcceptor>)>) {
        self.listeners = listeners;
    }

    pub(super) fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    #[cfg(test)]
    pub(super) fn set_max_connections(&mut self, n: usize) {
        self.max_connections = n;
    }

    pub(super) fn set_isn_key(&mut self, key: [u8; 16]) {
        self.isn = IsnGenerator::new(key);
    }

    pub(super) fn config(&self) -> &Config {
        &self.config
    }

    /// Remembers the reactor's key for the stack's entry (for tags).
    pub(super) fn set_entry(&mut self, entry: usize) {
        self.entry = entry;
    }

    /// Open connections, of any state.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Open connections in SYN-RECEIVED.
    pub(super) fn half_open(&self) -> usize {
        self.half_open_count
    }

    fn cx(&self, now: Instant, remote: SocketAddr) -> Context {
        Context::new(now, self.entry, Some(remote))
    }

    /// One segment from `src` whose checksum the stack checked.
    pub(super) fn input(&mut self, now: Instant, src: Ipv4Addr, segment: &Repr<'_>) -> Input {
        self.counters.segments_in += 1;
        let key = (src, segment.src_port, segment.dst_port);
        let is_syn = segment.control == Control::Syn && segment.ack_number.is_none();
        if let Some(&i) = self.demux.get(&key)
            && is_syn
            && self.slots[i].conn.is_closed()
        {
            // A new incarnation of a 4-tuple whose connection is over but
            // not yet collected: collect it now, and take the SYN afresh.
            self.free(i);
        }
        if let Some(&i) = self.demux.get(&key) {
            let remote = SocketAddr::new(src.into(), segment.src_port);
            let mut cx = self.cx(now, remote);
            self.slots[i].conn.handle_segment(&mut cx, segment);
            self.touched(i);
            return Input::Done;
        }
        if !is_syn {
            return Input::Reset;
        }
        let Some(listener) = self.listeners.iter().position(|l| l.0 == segment.dst_port) else {
            return Input::Reset;
        };
        if self.slots.len() >= self.max_connections && !self.reclaim_time_wait() {
            return Input::Reset;
        }
        if self.half_open_count >= MAX_HALF_OPEN {
            self.drop_oldest_half_open();
        }
        let local = SocketAddr::new(self.addr.into(), segment.dst_port);
        let remote = SocketAddr::new(src.into(), segment.src_port);
        let mut cx = self.cx(now, remote);
        let Some(app) = self.listeners[listener].1.accept(&mut cx, remote) else {
            return Input::Reset;
        };
        let iss = self.isn.isn(local, remote, now);
        let tcb = Tcb::accept(&self.config, local, remote, segment, iss, now);
        let i = self.insert(key, Connection::new(tcb, app), true);
        self.counters.accepted += 1;
        self.touched(i);
        Input::Done
    }

    /// Active open to `remote` from an ephemeral port.
    pub(super) fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
        app: Box<dyn StreamSession>,
    ) -> Result<CounterCell, ConnectError> {
        if self.slots.len() >= self.max_connections && !self.reclaim_time_wait() {
            return Err(ConnectError::TooManyConnections);
        }
        let port = self.ephemeral_port(remote)?;
        let local = SocketAddr::new(self.addr.into(), port);
        let remote_addr = SocketAddr::V4(remote);
        let iss = self.isn.isn(local, remote_addr, now);
        let tcb = Tcb::connect(&self.config, local, remote_addr, iss, now);
        let key = (*remote.ip(), remote.port(), port);
        let counters = CounterCell::default();
        let conn = Connection::new(tcb, app).with_counters(counters.clone());
        let i = self.insert(key, conn, false);
        self.touched(i);
        Ok(counters)
    }

    /// The next free port towards `remote`, round robin over the range.
    fn ephemeral_port(&mut self, remote: SocketAddrV4) -> Result<u16, ConnectError> {
        let span = usize::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port == *EPHEMERAL_PORTS.end() {
                *EPHEMERAL_PORTS.start()
            } else {
                port + 1
            };
            if !self
                .demux
                .contains_key(&(*remote.ip(), remote.port(), port))
            {
                return Ok(port);
            }
        }
        Err(ConnectError::NoPort)
    }

    fn insert(&mut self, key: Key, conn: Connection, half_open: bool) -> usize {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let i = self.slots.insert(Slot {
            conn,
            key,
            generation,
            armed: None,
            queued: false,
            half_open,
            time_wait: false,
        });
        self.demux.insert(key, i);
        if half_open {
            self.half_open_count += 1;
            self.half_open.push_back((i, generation));
        }
        i
    }

    /// Drops the oldest connection still in SYN-RECEIVED, silently (its
    /// peer, if real, retransmits its SYN or ACK and meets a new one or a
    /// RST).
    fn drop_oldest_half_open(&mut self) {
        while let Some((i, generation)) = self.half_open.pop_front() {
            if self
                .slots
                .get(i)
                .is_some_and(|s| s.generation == generation && s.half_open)
            {
                self.counters.half_open_dropped += 1;
                self.free(i);
                return;
            }
        }
    }

    /// Frees the oldest connection in TIME-WAIT, if there is one.
    fn reclaim_time_wait(&mut self) -> bool {
        while let Some((i, generation)) = self.time_wait.pop_front() {
            if self.slots.get(i).is_some_and(|s| {
                s.generation == generation
                    && s.conn.tcb().state() == crate::proto::tcp::conn::State::TimeWait
            }) {
                self.counters.time_wait_reclaimed += 1;
                self.free(i);
                return true;
            }
        }
        false
    }

    /// After any call into connection `i`: it may have something to send,
    /// may have left SYN-RECEIVED, and its deadline may be earlier than
    /// the one armed.
    fn touched(&mut self, i: usize) {
        use crate::proto::tcp::conn::State;
        let slot = &mut self.slots[i];
        if !slot.queued {
            slot.queued = true;
            self.ready.push_back((i, slot.generation));
        }
        let state = slot.conn.tcb().state();
        if !slot.time_wait && state == State::TimeWait {
            slot.time_wait = true;
            self.time_wait.push_back((i, slot.generation));
        }
        if slot.half_open && state != State::SynReceived {
            slot.half_open = false;
            self.half_open_count -= 1;
        }
        // Stale entries reach the front in time; a compaction keeps a
        // flood of handshakes that complete (or of TIME-WAITs that end)
        // from growing the queues past twice their bound.
        let slots = &self.slots;
        if self.half_open.len() > 2 * MAX_HALF_OPEN {
            self.half_open.retain(|&(j, g)| {
                slots
                    .get(j)
                    .is_some_and(|s| s.generation == g && s.half_open)
            });
        }
        if self.time_wait.len() > 2 * MAX_CONNECTIONS {
            self.time_wait
                .retain(|&(j, g)| slots.get(j).is_some_and(|s| s.generation == g));
        }
        self.rearm(i);
    }

    /// Reports connection `i`'s deadline if it must wake earlier than the
    /// one armed (or none is): a later one waits for the armed one to
    /// fire, which costs one spurious call and spares a heap entry per
    /// segment.
    fn rearm(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if let Some(at) = slot.conn.poll_timeout()
            && slot.armed.is_none_or(|armed| at < armed)
        {
            slot.armed = Some(at);
            self.parts.push_back((part_id(i), Some(at)));
        }
    }

    /// Forgets connection `i`: its table entries, and its part.
    fn free(&mut self, i: usize) {
        let slot = self.slots.remove(i);
        self.demux.remove(&slot.key);
        if slot.half_open {
            self.half_open_count -= 1;
        }
        self.counters.closed += 1;
        self.parts.push_back((part_id(i), None));
    }

    /// The next segment of a connection with something to send, written
    /// at the start of `out`: its destination and length. `None`: no
    /// connection has anything to send now.
    pub(super) fn poll_segment(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Option<(Ipv4Addr, usize)> {
        while let Some(&(i, generation)) = self.ready.front() {
            let Some(slot) = self.slots.get_mut(i).filter(|s| s.generation == generation) else {
                self.ready.pop_front();
                continue;
            };
            let remote = slot.conn.tcb().remote();
            let mut cx = Context::new(now, self.entry, Some(remote));
            let sent = slot.conn.poll_segment(&mut cx, out);
            if let Some(n) = sent {
                let dst = slot.key.0;
                self.rearm(i);
                self.counters.segments_out += 1;
                return Some((dst, n));
            }
            self.ready.pop_front();
            slot.queued = false;
            if slot.conn.is_closed() {
                self.free(i);
            } else {
                self.rearm(i);
            }
        }
        None
    }

    /// The next change to a connection's deadline, for the reactor.
    pub(super) fn poll_part(&mut self) -> Option<(PartId, Option<Instant>)> {
        self.parts.pop_front()
    }

    /// Connection `part`'s armed deadline came.
    pub(super) fn part_timeout(&mut self, now: Instant, part: PartId) {
        let Ok(i) = usize::try_from(part.0) else {
            return;
        };
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        slot.armed = None;
        let mut cx = Context::new(now, self.entry, Some(slot.conn.tcb().remote()));
        slot.conn.handle_timeout(&mut cx);
        self.touched(i);
    }

    /// The listeners' earliest deadline (hello's ID expiry).
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.listeners
            .iter()
            .filter_map(|l| l.1.poll_timeout())
            .min()
    }

    /// Fires the listeners' due timers.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        let mut cx = Context::new(now, self.entry, None);
        for (_, l) in &mut self.listeners {
            if l.poll_timeout().is_some_and(|t| t <= now) {
                l.handle_timeout(&mut cx);
            }
        }
    }
}

/// Connection `i`'s part number. Slab indices stay below
/// [`MAX_CONNECTIONS`], far inside `u32`.
fn part_id(i: usize) -> PartId {
    PartId(u32::try_from(i).unwrap_or(u32::MAX))
}
