//! A deterministic network simulator for sans-IO sessions.
//!
//! Owns a small virtual world: one client [`Session`], a server (an
//! [`Acceptor`] that admits sessions the way the reactor does, or one server
//! session), one impaired link per direction between them
//! ([`Impairment`], each with its own [`ImpairConfig`] and a seed derived
//! from the run's seed), and a virtual clock that jumps straight to the next
//! event: the earliest link release or session deadline. Every call into a
//! session follows the reactor's order (see [`crate::proto`]): after each
//! `handle_input` or `handle_timeout`, `poll_transmit` until `None`, then
//! `poll_timeout`, then `poll_request` until `None`.
//!
//! It must never read a clock, sleep, or touch a socket or a file: time is
//! the virtual `now`, addresses are labels, and the same seed replays the
//! same run exactly, so a failing seed is a bug report. A run that does not
//! end within its step bound is an error ([`SimError::StepLimit`]), never a
//! hang, and nothing a session does makes the simulator panic.
//!
//! # Invariants
//! * `now` never decreases, and every session sees the same `now` for the
//!   event it is handling.
//! * Time advances in turns, as the reactor's: at each instant, every
//!   datagram due is received (in release order, the client-to-server link
//!   first on a tie), then every deadline due fires, in arming order as the
//!   reactor's stamps break ties. What a turn sends is received in a later
//!   turn, even over a link without latency.
//! * One step is one event: a datagram released by a link, or one session's
//!   timer firing.
//!
//! # What it does not model
//! Coarse deadlines fire exactly (the reactor may be up to a millisecond
//! late); `wants_input` is not consulted (the UDP sessions here always want
//! input); there are no ICMP errors (`Input::Failed`), no per-turn send
//! budgets and no socket buffers; the hello registry's expiry is not
//! driven. Datagrams to an address with no open socket are counted as
//! undeliverable and vanish.

#[cfg(test)]
mod faults;

use crate::proto::proxy::impair::{ConfigError, Counters, ImpairConfig, Impairment};
use crate::proto::{
    Acceptor, Admission, CloseReason, Context, Input, Request, Session, Shared, Side, Tag, hello,
};
use crate::time::{Duration, Instant};
use bytes::{Bytes, BytesMut};
use core::fmt;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The largest UDP payload, as the reactor lends it to `poll_transmit`.
const MAX_DATAGRAM: usize = 65_507;

/// More transmits than this from one flush is a session that never stops
/// producing: an error rather than an endless loop.
const MAX_TRANSMITS_PER_FLUSH: u64 = 1 << 20;

/// Where the acceptor's own-socket sessions get their ports (TFTP's
/// transfer IDs), counting up.
const FIRST_TRANSFER_PORT: u16 = 50_000;

/// One direction of the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    /// From the client towards the server.
    Up,
    /// From the server towards the client.
    Down,
}

/// What answers the client.
pub enum Server {
    /// An acceptor on the server address: first contact is admitted the way
    /// the reactor admits it (`Reply`, `Ignore`, `Shared`, `OwnSocket`).
    Acceptor(Box<dyn Acceptor>),
    /// One session that owns the server address and hears everything sent
    /// to it.
    Session(Box<dyn Session>),
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acceptor(_) => f.write_str("Server::Acceptor"),
            Self::Session(s) => write!(f, "Server::Session({s:?})"),
        }
    }
}

/// How a world is built. The [`Default`] is two perfect links, seed 0,
/// `127.0.0.1:40000` talking to `127.0.0.1:6969`, and a step bound of ten
/// million.
#[derive(Clone, Debug)]
pub struct Config {
    /// The run's seed; each link's generator is seeded from it (the `seed`
    /// fields of `up` and `down` are ignored), so one number replays a run.
    pub seed: u64,
    /// What the client-to-server link does.
    pub up: ImpairConfig,
    /// What the server-to-client link does.
    pub down: ImpairConfig,
    /// Events after which the run fails with [`SimError::StepLimit`].
    pub max_steps: u64,
    /// The client's address.
    pub client: SocketAddr,
    /// The server's address (the acceptor's socket, or the server session's).
    pub server: SocketAddr,
    /// Keep every released datagram, bytes included, in [`World::trace`].
    pub trace: bool,
    /// After the client closes, keep running until nothing is in flight and
    /// no server session has a deadline, so the server's own ending can be
    /// checked. Off: stop as soon as the client closes.
    pub settle: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 0,
            up: ImpairConfig::default(),
            down: ImpairConfig::default(),
            max_steps: 10_000_000,
            client: SocketAddr::from(([127, 0, 0, 1], 40_000)),
            server: SocketAddr::from(([127, 0, 0, 1], 6969)),
            trace: false,
            settle: true,
        }
    }
}

impl Config {
    /// The same impairments both ways (each direction still draws its own
    /// decisions), with the given seed.
    pub fn symmetric(seed: u64, link: ImpairConfig) -> Self {
        Self {
            seed,
            up: link,
            down: link,
            ..Self::default()
        }
    }
}

/// Why a run failed. Outcomes of the conversation (a give-up, a refusal)
/// are not errors: they are the client's [`CloseReason`] in the [`Report`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimError {
    /// A link's configuration was refused.
    Config {
        /// Which link.
        dir: Dir,
        /// Why.
        error: ConfigError,
    },
    /// The step bound was reached: a livelock, or a bound too small.
    StepLimit {
        /// Events handled.
        steps: u64,
        /// Virtual time reached.
        now: Instant,
    },
    /// The client is still open but nothing can ever happen again: nothing
    /// in flight and no deadline anywhere.
    Stalled {
        /// When the world went quiet.
        now: Instant,
    },
    /// A session kept producing datagrams in one flush without end.
    Flood {
        /// Which role the session plays.
        side: Side,
        /// When.
        now: Instant,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config { dir, error } => write!(f, "{dir:?} link: {error}"),
            Self::StepLimit { steps, now } => {
                write!(f, "no end after {steps} steps (livelock?) at {now}")
            }
            Self::Stalled { now } => write!(
                f,
                "stalled at {now}: the client is open but has no deadline and nothing is in flight"
            ),
            Self::Flood { side, now } => write!(
                f,
                "a {side:?} session produced over {MAX_TRANSMITS_PER_FLUSH} datagrams in one flush at {now}"
            ),
        }
    }
}

impl std::error::Error for SimError {}

/// A datagram a link released, as [`World::trace`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// When it came out of the link.
    pub at: Instant,
    /// Which link.
    pub dir: Dir,
    /// The socket that sent it.
    pub from: SocketAddr,
    /// Where it was sent.
    pub to: SocketAddr,
    /// Its bytes.
    pub payload: Bytes,
    /// Whether an open socket was there to take it.
    pub delivered: bool,
}

/// A count per role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerSide {
    /// The client's.
    pub client: u64,
    /// Every server-side socket's, stateless replies included.
    pub server: u64,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The client's `Request::Close` reason.
    pub outcome: CloseReason,
    /// Virtual time from the start to the client's close.
    pub elapsed: Duration,
    /// When the run stopped: the client's close, or later when settling.
    pub ended_at: Instant,
    /// Events handled.
    pub steps: u64,
    /// What the client-to-server link did.
    pub up: Counters,
    /// What the server-to-client link did.
    pub down: Counters,
    /// Datagrams each side produced (before any loss).
    pub sent: PerSide,
    /// Datagrams a scripted loss rule ([`World::with_loss`]) took, by the
    /// side that sent them.
    pub scripted_drops: PerSide,
    /// Datagrams released to an address with no open socket.
    pub undeliverable: u64,
    /// Sessions the acceptor admitted (`Shared` or `OwnSocket`).
    pub admitted: u64,
    /// Server sessions still open when the run stopped.
    pub server_sessions_open: usize,
}

/// A scripted loss: `(direction, 1-based count of datagrams offered in
/// that direction, bytes) -> lose it`.
pub type LossRule = Box<dyn FnMut(Dir, u64, &[u8]) -> bool>;

/// A datagram on a link.
#[derive(Clone, Debug)]
struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    payload: Bytes,
}

/// A session and the socket it speaks through.
struct Slot {
    session: Box<dyn Session>,
    /// The address its datagrams leave from.
    addr: SocketAddr,
    /// Where a transmit without a destination goes.
    peer: Option<SocketAddr>,
    /// The deadline last reported, and the stamp it was armed with.
    armed: Option<(Instant, u64)>,
}

/// What a server-side address leads to.
#[derive(Clone, Copy, Debug)]
enum Socket {
    /// The acceptor's socket.
    Listener,
    /// A session's own socket (a server session, an own-socket session).
    Session(usize),
}

/// A client, a server and the links between them, run in virtual time.
///
/// Build it with [`World::new`], optionally add a scripted loss with
/// [`World::with_loss`], then [`World::run`] it once.
pub struct World {
    config: Config,
    now: Instant,
    steps: u64,
    shared: Shared,
    up: Impairment<Datagram>,
    down: Impairment<Datagram>,
    /// Slot 0 is the client; closed sessions leave `None` behind, so a slot
    /// number is never reused.
    slots: Vec<Option<Slot>>,
    acceptor: Option<Box<dyn Acceptor>>,
    /// Server-side sockets by address.
    sockets: BTreeMap<SocketAddr, Socket>,
    /// The acceptor's per-peer (`Shared`) sessions.
    peers: BTreeMap<SocketAddr, usize>,
    next_port: u16,
    next_stamp: u64,
    offered: [u64; 2],
    loss: Option<LossRule>,
    trace: Vec<Delivery>,
    started: bool,
    client_closed: Option<(Instant, CloseReason)>,
    sent: PerSide,
    scripted_drops: PerSide,
    undeliverable: u64,
    admitted: u64,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("steps", &self.steps)
            .field("slots", &self.slots.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

/// A session's slot and a context for calling it, borrowed from the
/// world's fields so the rest of the world stays usable.
fn slot_cx<'a>(
    slots: &'a mut [Option<Slot>],
    shared: &'a mut Shared,
    now: Instant,
    key: usize,
) -> Option<(&'a mut Slot, Context<'a>)> {
    let slot = slots.get_mut(key)?.as_mut()?;
    let cx = Context {
        now,
        tag: Tag {
            key,
            peer: slot.peer,
        },
        shared,
    };
    Some((slot, cx))
}

impl World {
    /// A world in which `client` (which must play [`Side::Client`]) talks
    /// to `server`, at virtual time zero.
    ///
    /// # Errors
    /// [`SimError::Config`] when a link's configuration is refused.
    pub fn new(config: Config, client: Box<dyn Session>, server: Server) -> Result<Self, SimError> {
        let link = |dir, mut c: ImpairConfig, stream| {
            c.seed = crate::rng::mix(config.seed, stream);
            Impairment::new(c).map_err(|error| SimError::Config { dir, error })
        };
        let up = link(Dir::Up, config.up, 1)?;
        let down = link(Dir::Down, config.down, 2)?;
        let mut world = Self {
            now: Instant::ZERO,
            steps: 0,
            shared: Shared::new(hello::Registry::new(Duration::from_secs(60), 4096)),
            up,
            down,
            slots: vec![Some(Slot {
                session: client,
                addr: config.client,
                peer: Some(config.server),
                armed: None,
            })],
            acceptor: None,
            sockets: BTreeMap::new(),
            peers: BTreeMap::new(),
            next_port: FIRST_TRANSFER_PORT,
            next_stamp: 0,
            offered: [0; 2],
            loss: None,
            trace: Vec::new(),
            started: false,
            client_closed: None,
            sent: PerSide::default(),
            scripted_drops: PerSide::default(),
            undeliverable: 0,
            admitted: 0,
            config,
        };
        match server {
            Server::Acceptor(a) => {
                world.acceptor = Some(a);
                world.sockets.insert(world.config.server, Socket::Listener);
            }
            Server::Session(s) => {
                let key = world.slots.len();
                world.slots.push(Some(Slot {
                    session: s,
                    addr: world.config.server,
                    peer: Some(world.config.client),
                    armed: None,
                }));
                world
                    .sockets
                    .insert(world.config.server, Socket::Session(key));
            }
        }
        Ok(world)
    }

    /// Adds a scripted loss in front of both links: what `rule` picks is
    /// lost before the link sees it (and so is not in its counters).
    #[must_use]
    pub fn with_loss(mut self, rule: impl FnMut(Dir, u64, &[u8]) -> bool + 'static) -> Self {
        self.loss = Some(Box::new(rule));
        self
    }

    /// The virtual time reached.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Every datagram the links released, in order, when
    /// [`Config::trace`] is on.
    pub fn trace(&self) -> &[Delivery] {
        &self.trace
    }

    /// Runs until the client closes (and, with [`Config::settle`], until
    /// the world is quiet), and reports how it went.
    ///
    /// # Errors
    /// [`SimError::StepLimit`] when the step bound is reached,
    /// [`SimError::Stalled`] when the client can never close,
    /// [`SimError::Flood`] when a session never stops sending.
    pub fn run(&mut self) -> Result<Report, SimError> {
        if !self.started {
            self.started = true;
            // A new client speaks first, as the reactor flushes a session
            // it has just created.
            self.flush(0)?;
        }
        loop {
            if self.client_closed.is_some() && !self.config.settle {
                return Ok(self.report());
            }
            let Some(at) = self.next_instant() else {
                return match self.client_closed {
                    Some(_) => Ok(self.report()),
                    None => Err(SimError::Stalled { now: self.now }),
                };
            };
            self.now = self.now.max(at);
            self.turn()?;
        }
    }

    /// One reactor turn at `now`: every datagram due is received, then
    /// every deadline due fires. What the turn sends, even with no latency,
    /// is received in a later turn, as a real datagram would be.
    fn turn(&mut self) -> Result<(), SimError> {
        let mut due = Vec::new();
        loop {
            let up = self.up.next_release().filter(|&at| at <= self.now);
            let down = self.down.next_release().filter(|&at| at <= self.now);
            let dir = match (up, down) {
                (Some(u), Some(d)) if d < u => Dir::Down,
                (Some(_), _) => Dir::Up,
                (None, Some(_)) => Dir::Down,
                (None, None) => break,
            };
            let now = self.now;
            if let Some(d) = self.link(dir).poll_release(now) {
                due.push((dir, d));
            }
        }
        for (dir, d) in due {
            self.step()?;
            self.release(dir, d)?;
        }
        let mut timers: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(key, slot)| {
                let (at, stamp) = slot.as_ref()?.armed?;
                (at <= self.now).then_some((stamp, key))
            })
            .collect();
        // Arming order, as the reactor's stamps break ties.
        timers.sort_unstable();
        for (stamp, key) in timers {
            // An earlier call this turn may have closed or re-armed it: a
            // stale entry, which the reactor's stamp check skips too.
            let current = self.slots[key].as_ref().and_then(|s| s.armed);
            if current.is_some_and(|(at, st)| st == stamp && at <= self.now) {
                self.step()?;
                self.fire(key)?;
            }
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), SimError> {
        if self.steps >= self.config.max_steps {
            return Err(SimError::StepLimit {
                steps: self.steps,
                now: self.now,
            });
        }
        self.steps += 1;
        Ok(())
    }

    fn report(&self) -> Report {
        let (closed_at, outcome) = self
            .client_closed
            .clone()
            .unwrap_or((self.now, CloseReason::Aborted));
        Report {
            outcome,
            elapsed: closed_at.saturating_since(Instant::ZERO),
            ended_at: self.now,
            steps: self.steps,
            up: self.up.counters(),
            down: self.down.counters(),
            sent: self.sent,
            scripted_drops: self.scripted_drops,
            undeliverable: self.undeliverable,
            admitted: self.admitted,
            server_sessions_open: self.slots.iter().skip(1).flatten().count(),
        }
    }

    /// The earliest release or deadline.
    fn next_instant(&self) -> Option<Instant> {
        let timers = self
            .slots
            .iter()
            .filter_map(|slot| Some(slot.as_ref()?.armed?.0));
        [self.up.next_release(), self.down.next_release()]
            .into_iter()
            .flatten()
            .chain(timers)
            .min()
    }

    fn link(&mut self, dir: Dir) -> &mut Impairment<Datagram> {
        match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        }
    }

    /// Delivers a datagram `dir`'s link released.
    fn release(&mut self, dir: Dir, d: Datagram) -> Result<(), SimError> {
        let target = match dir {
            Dir::Down if d.to == self.config.client => self.slots[0].as_ref().map(|_| 0),
            Dir::Down => None,
            Dir::Up => match self.sockets.get(&d.to) {
                Some(Socket::Session(key)) => Some(*key),
                Some(Socket::Listener) => {
                    let delivered = self.at_listener(&d)?;
                    self.record(dir, &d, delivered);
                    return Ok(());
                }
                None => None,
            },
        };
        self.record(dir, &d, target.is_some());
        match target {
            Some(key) => self.deliver(key, &d),
            None => {
                self.undeliverable += 1;
                Ok(())
            }
        }
    }

    fn record(&mut self, dir: Dir, d: &Datagram, delivered: bool) {
        if self.config.trace {
            self.trace.push(Delivery {
                at: self.now,
                dir,
                from: d.from,
                to: d.to,
                payload: d.payload.clone(),
                delivered,
            });
        }
    }

    /// A datagram at the acceptor's socket: to the sender's session, or to
    /// the acceptor. Returns whether anything took it.
    fn at_listener(&mut self, d: &Datagram) -> Result<bool, SimError> {
        if let Some(&key) = self.peers.get(&d.from) {
            self.deliver(key, d)?;
            return Ok(true);
        }
        let Some(acceptor) = self.acceptor.as_mut() else {
            return Ok(false);
        };
        let mut reply = BytesMut::new();
        let mut cx = Context {
            now: self.now,
            tag: Tag {
                key: usize::MAX,
                peer: Some(d.from),
            },
            shared: &mut self.shared,
        };
        let admission = acceptor.accept_datagram(&mut cx, d.from, &d.payload, &mut reply);
        // As the reactor does: evictions first, closed at once.
        let evicted: Vec<usize> = core::iter::from_fn(|| acceptor.poll_evict()).collect();
        for key in evicted {
            if key != 0 {
                self.close(key, CloseReason::Aborted);
            }
        }
        match admission {
            Admission::Reply => {
                self.sent.server += 1;
                self.send(Dir::Down, self.config.server, d.from, reply.freeze());
            }
            Admission::Ignore => {}
            Admission::Shared(session) => {
                let key = self.admit(session, self.config.server, d.from);
                self.peers.insert(d.from, key);
                self.deliver(key, d)?;
            }
            Admission::OwnSocket(session) => {
                let addr = self.fresh_addr();
                let key = self.admit(session, addr, d.from);
                self.sockets.insert(addr, Socket::Session(key));
                self.deliver(key, d)?;
            }
            // The links are the proxy's impairment model already; a world of
            // two parties has no third one for a relay to talk to.
            Admission::Relay { .. } => return Ok(false),
        }
        Ok(true)
    }

    fn admit(&mut self, session: Box<dyn Session>, addr: SocketAddr, peer: SocketAddr) -> usize {
        self.admitted += 1;
        self.slots.push(Some(Slot {
            session,
            addr,
            peer: Some(peer),
            armed: None,
        }));
        self.slots.len() - 1
    }

    /// A new port on the server's host that nothing uses (a transfer ID).
    fn fresh_addr(&mut self) -> SocketAddr {
        loop {
            let addr = SocketAddr::new(self.config.server.ip(), self.next_port);
            self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_TRANSFER_PORT);
            if addr != self.config.client && !self.sockets.contains_key(&addr) {
                return addr;
            }
        }
    }

    fn deliver(&mut self, key: usize, d: &Datagram) -> Result<(), SimError> {
        let Some((slot, mut cx)) = slot_cx(&mut self.slots, &mut self.shared, self.now, key) else {
            return Ok(());
        };
        let input = Input::Datagram {
            from: d.from,
            payload: &d.payload,
            kernel_ns: None,
        };
        slot.session.handle_input(&mut cx, input);
        self.flush(key)
    }

    fn fire(&mut self, key: usize) -> Result<(), SimError> {
        let Some((slot, mut cx)) = slot_cx(&mut self.slots, &mut self.shared, self.now, key) else {
            return Ok(());
        };
        // The heap entry is consumed; the flush re-arms whatever is wanted.
        slot.armed = None;
        slot.session.handle_timeout(&mut cx);
        self.flush(key)
    }

    /// The reactor's flush: transmits, then the deadline, then requests.
    fn flush(&mut self, key: usize) -> Result<(), SimError> {
        let now = self.now;
        let mut out = Vec::new();
        let Some((slot, mut cx)) = slot_cx(&mut self.slots, &mut self.shared, self.now, key) else {
            return Ok(());
        };
        let side = slot.session.side();
        let mut buf = BytesMut::new();
        loop {
            if out.len() as u64 >= MAX_TRANSMITS_PER_FLUSH {
                return Err(SimError::Flood { side, now });
            }
            let Some(t) = slot.session.poll_transmit(&mut cx, MAX_DATAGRAM, &mut buf) else {
                break;
            };
            let payload = buf.split().freeze();
            // As the reactor does: no destination and no peer, no datagram.
            out.push(t.to.or(slot.peer).map(|to| (to, payload)));
        }
        let wanted = slot.session.poll_timeout();
        let mut close = None;
        while let Some(Request::Close(reason)) = slot.session.poll_request() {
            close.get_or_insert(reason);
        }
        let addr = slot.addr;
        if wanted != slot.armed.map(|(at, _)| at) {
            slot.armed = wanted.map(|at| (at, self.next_stamp));
            self.next_stamp += 1;
        }
        let dir = if key == 0 { Dir::Up } else { Dir::Down };
        for datagram in out {
            match dir {
                Dir::Up => self.sent.client += 1,
                Dir::Down => self.sent.server += 1,
            }
            if let Some((to, payload)) = datagram {
                self.send(dir, addr, to, payload);
            }
        }
        if let Some(reason) = close {
            self.close(key, reason);
        }
        Ok(())
    }

    fn send(&mut self, dir: Dir, from: SocketAddr, to: SocketAddr, payload: Bytes) {
        let i = dir as usize;
        self.offered[i] += 1;
        let n = self.offered[i];
        if let Some(rule) = self.loss.as_mut()
            && rule(dir, n, &payload)
        {
            match dir {
                Dir::Up => self.scripted_drops.client += 1,
                Dir::Down => self.scripted_drops.server += 1,
            }
            return;
        }
        let now = self.now;
        let len = payload.len();
        let _verdict = self
            .link(dir)
            .push(now, Datagram { from, to, payload }, len);
    }

    /// Frees a session's slot and its address, as the reactor reaps it.
    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(slot) = self.slots.get_mut(key).and_then(Option::take) else {
            return;
        };
        if key == 0 {
            self.client_closed = Some((self.now, reason));
            return;
        }
        if self
            .sockets
            .get(&slot.addr)
            .is_some_and(|s| matches!(s, Socket::Session(k) if *k == key))
        {
            self.sockets.remove(&slot.addr);
        }
        if let Some(peer) = slot.peer
            && self.peers.get(&peer) == Some(&key)
        {
            self.peers.remove(&peer);
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Link presets shared by the protocols' simulation tests.

    use super::*;

    /// The rates of issue 5: 10 % loss, 5 % duplicates and 10 % reordered
    /// over a 10 ms path whose stragglers lag up to 200 ms, several round
    /// trips, so a held-back copy can arrive after the protocol has moved
    /// on by more than one block (the very late duplicate).
    pub(crate) fn lossy() -> ImpairConfig {
        ImpairConfig {
            latency: Duration::from_millis(10),
            drop: 0.10,
            duplicate: 0.05,
            reorder: 0.10,
            reorder_max: Duration::from_millis(200),
            ..ImpairConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;
    use std::rc::Rc;

    const MS: Duration = Duration::from_millis(1);

    type Heard = Rc<RefCell<Vec<(Instant, SocketAddr, Vec<u8>)>>>;

    /// Sends `count` numbered datagrams at once, records every answer,
    /// and closes `Completed` once it has `count` answers, or `TimedOut`
    /// at `give_up_at`.
    struct Pinger {
        count: u32,
        sent: u32,
        heard: Heard,
        give_up_at: Instant,
        close: Option<CloseReason>,
    }

    impl Pinger {
        fn boxed(count: u32, give_up_at: Instant) -> (Box<dyn Session>, Heard) {
            let heard = Heard::default();
            let p = Self {
                count,
                sent: 0,
                heard: heard.clone(),
                give_up_at,
                close: None,
            };
            (Box::new(p), heard)
        }
    }

    impl Session for Pinger {
        fn side(&self) -> Side {
            Side::Client
        }

        fn handle_input(&mut self, cx: &mut Context<'_>, input: Input<'_>) {
            if let Input::Datagram { from, payload, .. } = input {
                let mut heard = self.heard.borrow_mut();
                heard.push((cx.now, from, payload.to_vec()));
                if heard.len() >= self.count as usize {
                    self.close.get_or_insert(CloseReason::Completed);
                }
            }
        }

        fn handle_timeout(&mut self, cx: &mut Context<'_>) {
            if cx.now >= self.give_up_at {
                self.close.get_or_insert(CloseReason::TimedOut { tries: 1 });
            }
        }

        fn poll_transmit(
            &mut self,
            _cx: &mut Context<'_>,
            _limit: usize,
            buf: &mut BytesMut,
        ) -> Option<crate::proto::Transmit> {
            if self.sent >= self.count {
                return None;
            }
            buf.extend_from_slice(&self.sent.to_be_bytes());
            self.sent += 1;
            Some(crate::proto::Transmit { to: None, len: 4 })
        }

        fn poll_timeout(&self) -> Option<Instant> {
            self.close.is_none().then_some(self.give_up_at)
        }

        fn poll_request(&mut self) -> Option<Request> {
            self.close.take().map(Request::Close)
        }
    }

    /// Answers every datagram with the same bytes, to whoever sent it.
    #[derive(Default)]
    struct Echo {
        out: Vec<(SocketAddr, Vec<u8>)>,
        close_after: Option<usize>,
        answered: usize,
        close: Option<CloseReason>,
    }

    impl Session for Echo {
        fn side(&self) -> Side {
            Side::Server
        }

        fn handle_input(&mut self, _cx: &mut Context<'_>, input: Input<'_>) {
            if let Input::Datagram { from, payload, .. } = input {
                self.out.push((from, payload.to_vec()));
            }
        }

        fn handle_timeout(&mut self, _cx: &mut Context<'_>) {}

        fn poll_transmit(
            &mut self,
            _cx: &mut Context<'_>,
            _limit: usize,
            buf: &mut BytesMut,
        ) -> Option<crate::proto::Transmit> {
            if self.out.is_empty() {
                return None;
            }
            let (to, d) = self.out.remove(0);
            buf.extend_from_slice(&d);
            self.answered += 1;
            if self.close_after == Some(self.answered) {
                self.close = Some(CloseReason::Completed);
            }
            // Half the answers name their destination, half rely on the
            // socket's peer: both routes must reach the client.
            let to = self.answered.is_multiple_of(2).then_some(to);
            Some(crate::proto::Transmit { to, len: d.len() })
        }

        fn poll_timeout(&self) -> Option<Instant> {
            None
        }

        fn poll_request(&mut self) -> Option<Request> {
            self.close.take().map(Request::Close)
        }
    }

    /// Admits every datagram the same way.
    struct Admit(fn() -> Option<Box<dyn Session>>, bool, u32);

    impl Acceptor for Admit {
        fn accept_stream(
            &mut self,
            _cx: &mut Context<'_>,
            _peer: SocketAddr,
        ) -> Option<Box<dyn Session>> {
            None
        }

        fn accept_datagram(
            &mut self,
            _cx: &mut Context<'_>,
            _from: SocketAddr,
            payload: &[u8],
            reply: &mut BytesMut,
        ) -> Admission {
            self.2 += 1;
            match (self.0)() {
                Some(s) if self.1 => Admission::OwnSocket(s),
                Some(s) => Admission::Shared(s),
                None => {
                    reply.extend_from_slice(payload);
                    Admission::Reply
                }
            }
        }
    }

    fn echo() -> Option<Box<dyn Session>> {
        Some(Box::new(Echo::default()))
    }

    fn echo_once() -> Option<Box<dyn Session>> {
        Some(Box::new(Echo {
            close_after: Some(1),
            ..Echo::default()
        }))
    }

    fn latency(ms: u64) -> ImpairConfig {
        ImpairConfig {
            latency: Duration::from_millis(ms),
            ..ImpairConfig::default()
        }
    }

    #[test]
    fn a_perfect_link_delivers_in_order_after_exactly_its_latency() {
        let (client, heard) = Pinger::boxed(50, Instant::from_secs(10));
        let config = Config {
            up: latency(7),
            down: latency(3),
            trace: true,
            ..Config::default()
        };
        let server = Server::Session(Box::new(Echo::default()));
        let mut world = World::new(config.clone(), client, server).unwrap();
        let report = world.run().unwrap();
        assert_eq!(report.outcome, CloseReason::Completed);
        assert_eq!(report.elapsed, 10 * MS);
        let heard = heard.borrow();
        let numbers: Vec<u32> = heard
            .iter()
            .map(|(_, _, d)| u32::from_be_bytes(d[..4].try_into().unwrap()))
            .collect();
        assert_eq!(numbers, (0..50).collect::<Vec<_>>(), "in order");
        assert!(
            heard
                .iter()
                .all(|&(at, from, _)| { at == Instant::ZERO + 10 * MS && from == config.server })
        );
        // Every upward datagram came out exactly 7 ms after it went in.
        assert!(
            world
                .trace()
                .iter()
                .filter(|d| d.dir == Dir::Up)
                .all(|d| d.at == Instant::ZERO + 7 * MS && d.delivered)
        );
        assert_eq!(
            report.sent,
            PerSide {
                client: 50,
                server: 50
            }
        );
        assert_eq!((report.up.offered, report.up.forwarded), (50, 50));
        assert_eq!((report.down.offered, report.down.dropped), (50, 0));
        // 50 releases each way; the client closed on the last one.
        assert_eq!(report.steps, 100);
        assert_eq!(report.undeliverable, 0);
        assert_eq!(report.server_sessions_open, 1, "the echo never closes");
    }

    #[test]
    fn a_zero_timer_re_armed_forever_trips_the_step_bound() {
        /// Always due, never done.
        struct Spinner;
        impl Session for Spinner {
            fn side(&self) -> Side {
                Side::Client
            }
            fn handle_input(&mut self, _cx: &mut Context<'_>, _input: Input<'_>) {}
            fn handle_timeout(&mut self, _cx: &mut Context<'_>) {}
            fn poll_transmit(
                &mut self,
                _cx: &mut Context<'_>,
                _limit: usize,
                _buf: &mut BytesMut,
            ) -> Option<crate::proto::Transmit> {
                None
            }
            fn poll_timeout(&self) -> Option<Instant> {
                Some(Instant::ZERO)
            }
            fn poll_request(&mut self) -> Option<Request> {
                None
            }
        }
        let config = Config {
            max_steps: 1_000,
            ..Config::default()
        };
        let server = Server::Session(Box::new(Echo::default()));
        let mut world = World::new(config, Box::new(Spinner), server).unwrap();
        let err = world.run().unwrap_err();
        assert_eq!(
            err,
            SimError::StepLimit {
                steps: 1_000,
                now: Instant::ZERO
            }
        );
        assert!(err.to_string().contains("livelock"), "{err}");
    }

    #[test]
    fn a_client_with_nothing_left_to_wait_for_is_stalled_not_hung() {
        // It sends one datagram, loses it, and has no timer to retry.
        let (client, _) = Pinger::boxed(1, Instant::MAX);
        let config = Config::symmetric(
            3,
            ImpairConfig {
                drop: 1.0,
                ..ImpairConfig::default()
            },
        );
        let server = Server::Session(Box::new(Echo::default()));
        let mut world = World::new(config, client, server).unwrap();
        // Its deadline is the end of time: one step reaches it and it gives
        // up, so the run ends rather than stalls.
        let report = world.run().unwrap();
        assert_eq!(report.outcome, CloseReason::TimedOut { tries: 1 });
        assert_eq!(report.up.dropped, 1);

        /// Sends once and waits without a deadline.
        struct Silent(bool);
        impl Session for Silent {
            fn side(&self) -> Side {
                Side::Client
            }
            fn handle_input(&mut self, _cx: &mut Context<'_>, _input: Input<'_>) {}
            fn handle_timeout(&mut self, _cx: &mut Context<'_>) {}
            fn poll_transmit(
                &mut self,
                _cx: &mut Context<'_>,
                _limit: usize,
                buf: &mut BytesMut,
            ) -> Option<crate::proto::Transmit> {
                core::mem::replace(&mut self.0, false).then(|| {
                    buf.extend_from_slice(b"x");
                    crate::proto::Transmit { to: None, len: 1 }
                })
            }
            fn poll_timeout(&self) -> Option<Instant> {
                None
            }
            fn poll_request(&mut self) -> Option<Request> {
                None
            }
        }
        let config = Config {
            up: latency(5),
            ..Config::default()
        };
        let server = Server::Session(Box::new(Echo::default()));
        let mut world = World::new(config, Box::new(Silent(true)), server).unwrap();
        let err = world.run().unwrap_err();
        assert_eq!(
            err,
            SimError::Stalled {
                now: Instant::ZERO + 5 * MS
            }
        );
    }

    /// A lossy run of 300 pings, with its trace.
    fn lossy_run(seed: u64) -> (Vec<Delivery>, Report) {
        let (client, _) = Pinger::boxed(300, Instant::from_secs(5));
        let link = ImpairConfig {
            latency: 10 * MS,
            rate_bytes_per_sec: Some(100_000),
            drop: 0.1,
            duplicate: 0.1,
            reorder: 0.2,
            reorder_max: 50 * MS,
            ..ImpairConfig::default()
        };
        let config = Config {
            trace: true,
            ..Config::symmetric(seed, link)
        };
        let server = Server::Acceptor(Box::new(Admit(echo, false, 0)));
        let mut world = World::new(config, client, server).unwrap();
        let report = world.run().unwrap();
        (world.trace().to_vec(), report)
    }

    #[test]
    fn the_same_seed_replays_the_same_run_and_another_seed_does_not() {
        let (a, ra) = lossy_run(11);
        let (b, rb) = lossy_run(11);
        assert!(a.len() > 300, "{}", a.len());
        assert_eq!(a, b);
        assert_eq!(ra, rb);
        let (c, rc) = lossy_run(12);
        assert_ne!(a, c);
        assert_ne!(ra.up, rc.up);
        // Each direction draws its own decisions from the one seed.
        assert_ne!(
            (ra.up.dropped, ra.up.duplicated, ra.up.reordered),
            (ra.down.dropped, ra.down.duplicated, ra.down.reordered)
        );
        assert!(ra.up.dropped > 0 && ra.up.duplicated > 0 && ra.up.reordered > 0);
        // Time only moves forward.
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn admission_follows_the_reactor() {
        let run = |acceptor: Admit| {
            let (client, heard) = Pinger::boxed(3, Instant::from_secs(1));
            let server = Server::Acceptor(Box::new(acceptor));
            let mut world = World::new(Config::default(), client, server).unwrap();
            let report = world.run().unwrap();
            let heard = heard.borrow().clone();
            (report, heard)
        };
        let server = Config::default().server;

        // Shared: one session for the peer, answers from the server's address.
        let (report, heard) = run(Admit(echo, false, 0));
        assert_eq!(report.admitted, 1);
        assert_eq!(heard.len(), 3);
        assert!(heard.iter().all(|(_, from, _)| *from == server));

        // Stateless replies: no session at all.
        let (report, heard) = run(Admit(|| None, false, 0));
        assert_eq!((report.admitted, heard.len()), (0, 3));
        assert_eq!(report.server_sessions_open, 0);

        // Own socket: answers come from a new port on the server's host.
        // Every ping went to the server's address, so each one is first
        // contact there and gets a session (and port) of its own.
        let (report, heard) = run(Admit(echo, true, 0));
        assert_eq!(report.admitted, 3);
        let froms: Vec<SocketAddr> = heard.iter().map(|(_, f, _)| *f).collect();
        assert!(froms.iter().all(|f| f.ip() == server.ip() && *f != server));
        assert_eq!(
            froms
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            3
        );

        // A shared session that closes gives its peer back to the acceptor.
        let (report, heard) = run(Admit(echo_once, false, 0));
        assert_eq!((report.admitted, heard.len()), (3, 3));
        assert_eq!(report.server_sessions_open, 0);
    }

    #[test]
    fn datagrams_to_closed_or_unknown_sockets_vanish_and_are_counted() {
        // The client gives up at 5 ms; the echoes arrive at 20 ms.
        let (client, heard) = Pinger::boxed(4, Instant::from_millis(5));
        let config = Config::symmetric(0, latency(10));
        let server = Server::Session(Box::new(Echo::default()));
        let mut world = World::new(config, client, server).unwrap();
        let report = world.run().unwrap();
        assert_eq!(report.outcome, CloseReason::TimedOut { tries: 1 });
        assert_eq!(report.elapsed, 5 * MS);
        assert!(heard.borrow().is_empty());
        assert_eq!(report.undeliverable, 4);
        assert_eq!(report.ended_at, Instant::ZERO + 20 * MS, "settled");

        // Without settling the run stops at the client's close.
        let (client, _) = Pinger::boxed(4, Instant::from_millis(5));
        let config = Config {
            settle: false,
            ..Config::symmetric(0, latency(10))
        };
        let server = Server::Session(Box::new(Echo::default()));
        let report = World::new(config, client, server).unwrap().run().unwrap();
        assert_eq!(report.ended_at, Instant::ZERO + 5 * MS);
    }

    #[test]
    fn a_scripted_loss_is_applied_before_the_link() {
        let (client, heard) = Pinger::boxed(10, Instant::from_secs(1));
        let server = Server::Session(Box::new(Echo::default()));
        let world = World::new(Config::default(), client, server).unwrap();
        let mut world = world.with_loss(|dir, n, _| dir == Dir::Up && n % 2 == 0);
        let report = world.run().unwrap();
        assert_eq!(report.outcome, CloseReason::TimedOut { tries: 1 });
        assert_eq!(
            report.scripted_drops,
            PerSide {
                client: 5,
                server: 0
            }
        );
        assert_eq!(report.up.offered, 5);
        let numbers: Vec<u32> = heard
            .borrow()
            .iter()
            .map(|(_, _, d)| u32::from_be_bytes(d[..4].try_into().unwrap()))
            .collect();
        assert_eq!(numbers, [0, 2, 4, 6, 8], "the 2nd, 4th, … were lost");
    }

    #[test]
    fn bad_link_configurations_are_errors() {
        let (client, _) = Pinger::boxed(1, Instant::from_secs(1));
        let config = Config {
            down: ImpairConfig {
                drop: 2.0,
                ..ImpairConfig::default()
            },
            ..Config::default()
        };
        let server = Server::Session(Box::new(Echo::default()));
        let err = World::new(config, client, server).unwrap_err();
        assert_eq!(
            err,
            SimError::Config {
                dir: Dir::Down,
                error: ConfigError::Probability { field: "drop" }
            }
        );
        assert!(err.to_string().starts_with("Down link"), "{err}");
    }

    #[test]
    fn link_seeds_are_distinct_per_direction_and_run() {
        let seeds: std::collections::BTreeSet<u64> = (0..100)
            .flat_map(|s| [crate::rng::mix(s, 1), crate::rng::mix(s, 2)])
            .collect();
        assert_eq!(seeds.len(), 200);
    }
}
