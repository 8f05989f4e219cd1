//! The world: one client, a server, two links and the virtual clock, run
//! turn by turn as the reactor runs its sessions.
//!
//! Owns the sessions' slots, the server's sockets (the acceptor's, and one
//! per session that has its own), the links and the deadline bookkeeping.
//! Every call into a session ends in [`drive::after_call`], the reactor's
//! own order of calls; what differs from the reactor is only where the
//! datagrams go (a link instead of a socket). See the module docs of
//! [`crate::sim`] for the invariants and what is not modelled.

use super::report::{Delivery, Dir, MAX_TRANSMITS_PER_FLUSH, PerSide, Report, Role, SimError};
use crate::proto::proxy::impair::{ImpairConfig, Impairment};
use crate::proto::{
    Admission, Admit, CloseReason, Context, DatagramAcceptor, DatagramInput, DatagramSession,
    EndpointId, drive,
};
use crate::time::Instant;
use bytes::{Bytes, BytesMut};
use core::fmt;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

/// The largest UDP payload, as the reactor lends it to `poll_transmit`.
const MAX_DATAGRAM: usize = 65_507;

/// Datagrams one session may send per step: the reactor's `send_budget`.
/// The rest is sent in the next step, at the same instant.
const SEND_BUDGET: usize = 1024;

/// Payload bytes a socket holds for a session that does not want input
/// (Linux's default `net.core.rmem_default`); what does not fit is dropped.
const SOCKET_BUFFER: usize = 212_992;

/// Where the acceptor's own-socket sessions get their ports (TFTP's
/// transfer IDs), counting up.
const FIRST_TRANSFER_PORT: u16 = 50_000;

/// What answers the client.
pub enum Server {
    /// An acceptor on the server address: first contact is admitted the way
    /// the reactor admits it (`Reply`, `Ignore`, a session on the
    /// acceptor's socket or on one of its own).
    Acceptor(Box<dyn DatagramAcceptor>),
    /// One session that owns the server address and hears everything sent
    /// to it.
    Session(Box<dyn DatagramSession>),
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acceptor(_) => f.write_str("Server::Acceptor"),
            Self::Session(_) => f.write_str("Server::Session"),
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

/// A scripted loss: `(direction, 1-based count of datagrams offered in
/// that direction, bytes) -> lose it`.
pub type LossRule = Box<dyn FnMut(Dir, u64, &[u8]) -> bool>;

/// A datagram on a link, or held in a socket.
#[derive(Clone, Debug)]
struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    payload: Bytes,
}

/// Datagrams a socket holds for a session that does not want input.
#[derive(Debug, Default)]
struct Held {
    queue: VecDeque<Datagram>,
    bytes: usize,
}

/// A session and the socket it speaks through.
struct Slot {
    session: Box<dyn DatagramSession>,
    /// The address its datagrams leave from.
    addr: SocketAddr,
    /// Where a transmit without a destination goes.
    peer: Option<SocketAddr>,
    /// The deadline last reported, and the stamp it was armed with.
    armed: Option<(Instant, u64)>,
    /// Its own socket, which it alone reads (and which holds datagrams
    /// while it does not want input); `None` for a session on the
    /// acceptor's socket, which is read for every peer.
    own: Option<Held>,
    /// What the last call said: whether it reads its socket.
    wants_input: bool,
    /// The last flush stopped at the send budget: flush again next step.
    backlog: bool,
    /// Datagrams sent since its output last ran dry.
    burst: u64,
}

impl Slot {
    fn new(
        session: Box<dyn DatagramSession>,
        addr: SocketAddr,
        peer: SocketAddr,
        own_socket: bool,
    ) -> Self {
        Self {
            session,
            addr,
            peer: Some(peer),
            armed: None,
            own: own_socket.then(Held::default),
            wants_input: true,
            backlog: false,
            burst: 0,
        }
    }

    /// Whether the next turn has work for it before anything else: the
    /// rest of a flush, or held datagrams it now wants.
    fn ready(&self) -> bool {
        self.backlog || (self.wants_input && self.own.as_ref().is_some_and(|h| !h.queue.is_empty()))
    }
}

/// What a server-side address leads to.
#[derive(Clone, Copy, Debug)]
enum Socket {
    /// The acceptor's socket.
    Listener,
    /// A session's own socket (a server session, an own-socket session).
    Session(usize),
}

/// Whose deadline fires.
#[derive(Clone, Copy, Debug)]
enum Owner {
    Slot(usize),
    Acceptor,
}

/// What a socket did with a datagram released to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Taken {
    /// Its session has it.
    Delivered,
    /// Held until its session wants input.
    Held,
    /// The socket's buffer was full.
    Dropped,
}

/// A client, a server and the links between them, run in virtual time.
///
/// Build it with [`World::new`], optionally add a scripted loss with
/// [`World::with_loss`], then [`World::run`] it once.
pub struct World {
    config: Config,
    now: Instant,
    steps: u64,
    up: Impairment<Datagram>,
    down: Impairment<Datagram>,
    /// Slot 0 is the client; closed sessions leave `None` behind, so a slot
    /// number is never reused.
    slots: Vec<Option<Slot>>,
    acceptor: Option<Box<dyn DatagramAcceptor>>,
    /// The acceptor's deadline last reported, and its stamp.
    acceptor_armed: Option<(Instant, u64)>,
    /// Server-side sockets by address.
    sockets: BTreeMap<SocketAddr, Socket>,
    /// The per-peer sessions on the acceptor's socket.
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
    buffer_drops: PerSide,
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

fn role(key: usize) -> Role {
    if key == 0 { Role::Client } else { Role::Server }
}

impl World {
    /// A world in which `client` talks to `server`, at virtual time zero.
    ///
    /// # Errors
    /// [`SimError::Config`] when a link's configuration is refused.
    pub fn new(
        config: Config,
        client: Box<dyn DatagramSession>,
        server: Server,
    ) -> Result<Self, SimError> {
        let link = |dir, mut c: ImpairConfig, stream| {
            c.seed = crate::rng::mix(config.seed, stream);
            Impairment::new(c).map_err(|error| SimError::Config { dir, error })
        };
        let up = link(Dir::Up, config.up, 1)?;
        let down = link(Dir::Down, config.down, 2)?;
        let mut world = Self {
            now: Instant::ZERO,
            steps: 0,
            up,
            down,
            slots: vec![Some(Slot::new(client, config.client, config.server, true))],
            acceptor: None,
            acceptor_armed: None,
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
            buffer_drops: PerSide::default(),
            undeliverable: 0,
            admitted: 0,
            config,
        };
        match server {
            Server::Acceptor(a) => {
                world.acceptor = Some(a);
                world.sockets.insert(world.config.server, Socket::Listener);
                world.sync_acceptor();
            }
            Server::Session(s) => {
                let key = world.slots.len();
                let (addr, peer) = (world.config.server, world.config.client);
                world.slots.push(Some(Slot::new(s, addr, peer, true)));
                world.sockets.insert(addr, Socket::Session(key));
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

    /// One reactor turn at `now`: first what the last turn left (the rest
    /// of a flush cut by the send budget, datagrams held for a session that
    /// wants input again), then every datagram due is received, then every
    /// deadline due fires. What the turn sends, even with no latency, is
    /// received in a later turn, as a real datagram would be.
    fn turn(&mut self) -> Result<(), SimError> {
        let ready: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(Slot::ready))
            .map(|(key, _)| key)
            .collect();
        for key in ready {
            if self.slots[key].as_ref().is_some_and(|s| s.backlog) {
                self.step()?;
                self.flush(key)?;
            }
            while let Some(d) = self.unhold(key) {
                self.step()?;
                self.deliver(key, &d)?;
            }
        }
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
            self.release(dir, &d)?;
        }
        let mut timers: Vec<(u64, Owner)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(key, slot)| {
                let (at, stamp) = slot.as_ref()?.armed?;
                (at <= self.now).then_some((stamp, Owner::Slot(key)))
            })
            .chain(
                self.acceptor_armed
                    .filter(|&(at, _)| at <= self.now)
                    .map(|(_, stamp)| (stamp, Owner::Acceptor)),
            )
            .collect();
        // Arming order, as the reactor's stamps break ties.
        timers.sort_unstable_by_key(|&(stamp, _)| stamp);
        for (stamp, owner) in timers {
            // An earlier call this turn may have closed or re-armed it: a
            // stale entry, which the reactor's stamp check skips too.
            let current = match owner {
                Owner::Slot(key) => self.slots[key].as_ref().and_then(|s| s.armed),
                Owner::Acceptor => self.acceptor_armed,
            };
            if current.is_some_and(|(at, st)| st == stamp && at <= self.now) {
                self.step()?;
                match owner {
                    Owner::Slot(key) => self.fire(key)?,
                    Owner::Acceptor => self.fire_acceptor(),
                }
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
            buffer_drops: self.buffer_drops,
            undeliverable: self.undeliverable,
            admitted: self.admitted,
            server_sessions_open: self.slots.iter().skip(1).flatten().count(),
        }
    }

    /// The earliest instant with something to do: now, if the last turn
    /// left work; else the earliest release or deadline. The acceptor's
    /// deadline (protocol-wide state such as ID expiry) is kept only while
    /// something else may still happen: alone, it does not keep a settled
    /// world running.
    fn next_instant(&self) -> Option<Instant> {
        if self.slots.iter().flatten().any(Slot::ready) {
            return Some(self.now);
        }
        let timers = self
            .slots
            .iter()
            .filter_map(|slot| Some(slot.as_ref()?.armed?.0));
        let next = [self.up.next_release(), self.down.next_release()]
            .into_iter()
            .flatten()
            .chain(timers)
            .min();
        match (next, self.acceptor_armed) {
            (None, _) if self.client_closed.is_some() => None,
            (next, Some((at, _))) => Some(next.map_or(at, |n| n.min(at))),
            (next, None) => next,
        }
    }

    fn link(&mut self, dir: Dir) -> &mut Impairment<Datagram> {
        match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        }
    }

    /// Delivers a datagram `dir`'s link released.
    fn release(&mut self, dir: Dir, d: &Datagram) -> Result<(), SimError> {
        let target = match dir {
            Dir::Down if d.to == self.config.client => self.slots[0].as_ref().map(|_| 0),
            Dir::Down => None,
            Dir::Up => match self.sockets.get(&d.to) {
                Some(Socket::Session(key)) => Some(*key),
                Some(Socket::Listener) => {
                    let delivered = self.at_listener(d)?;
                    self.record(dir, d, delivered);
                    return Ok(());
                }
                None => None,
            },
        };
        let Some(key) = target else {
            self.record(dir, d, false);
            self.undeliverable += 1;
            return Ok(());
        };
        let taken = self.take(key, d);
        self.record(dir, d, taken != Taken::Dropped);
        match taken {
            Taken::Delivered => self.deliver(key, d),
            Taken::Held => Ok(()),
            Taken::Dropped => {
                self.buffer_drops.bump(role(key));
                Ok(())
            }
        }
    }

    /// What the own socket of `key` does with `d`: hand it over, or hold it
    /// behind what it already holds, as a socket buffer does.
    fn take(&mut self, key: usize, d: &Datagram) -> Taken {
        let Some(slot) = self.slots[key].as_mut() else {
            return Taken::Dropped;
        };
        let Some(held) = slot.own.as_mut() else {
            return Taken::Delivered;
        };
        if slot.wants_input && held.queue.is_empty() {
            return Taken::Delivered;
        }
        if held.bytes + d.payload.len() > SOCKET_BUFFER {
            return Taken::Dropped;
        }
        held.bytes += d.payload.len();
        held.queue.push_back(d.clone());
        Taken::Held
    }

    /// The next datagram `key`'s socket holds, if it wants input.
    fn unhold(&mut self, key: usize) -> Option<Datagram> {
        let slot = self.slots.get_mut(key)?.as_mut()?;
        if !slot.wants_input {
            return None;
        }
        let held = slot.own.as_mut()?;
        let d = held.queue.pop_front()?;
        held.bytes -= d.payload.len();
        Some(d)
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
            // The acceptor's socket is read for every peer: the reactor
            // does not pause it for one session.
            self.deliver(key, d)?;
            return Ok(true);
        }
        let Some(acceptor) = self.acceptor.as_mut() else {
            return Ok(false);
        };
        let mut reply = BytesMut::new();
        let mut cx = Context::new(self.now, usize::MAX, Some(d.from));
        let admission = acceptor.accept(&mut cx, d.from, &d.payload, &mut reply);
        // As the reactor does: evictions first, closed at once.
        let evicted: Vec<usize> = core::iter::from_fn(|| acceptor.poll_evict()).collect();
        for key in evicted {
            if key != 0 {
                self.close(key, CloseReason::Aborted);
            }
        }
        self.sync_acceptor();
        match admission {
            Admission::Reply => {
                self.sent.server += 1;
                self.send(Dir::Down, self.config.server, d.from, reply.freeze());
            }
            Admission::Ignore => {}
            // The links are the proxy's impairment model already; a world of
            // two parties has no third one for more endpoints to talk to.
            Admission::Start(Admit { bind, .. }) if !bind.is_empty() => return Ok(false),
            Admission::Start(Admit {
                session,
                own_socket: false,
                ..
            }) => {
                let key = self.admit(session, self.config.server, d.from, false);
                self.peers.insert(d.from, key);
                self.deliver(key, d)?;
            }
            Admission::Start(Admit {
                session,
                own_socket: true,
                ..
            }) => {
                let addr = self.fresh_addr();
                let key = self.admit(session, addr, d.from, true);
                self.sockets.insert(addr, Socket::Session(key));
                self.deliver(key, d)?;
            }
        }
        Ok(true)
    }

    fn admit(
        &mut self,
        session: Box<dyn DatagramSession>,
        addr: SocketAddr,
        peer: SocketAddr,
        own_socket: bool,
    ) -> usize {
        self.admitted += 1;
        self.slots
            .push(Some(Slot::new(session, addr, peer, own_socket)));
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
        let Some(slot) = self.slots.get_mut(key).and_then(Option::as_mut) else {
            return Ok(());
        };
        let mut cx = Context::new(self.now, key, slot.peer);
        let input = DatagramInput::Datagram {
            endpoint: EndpointId::HOME,
            from: d.from,
            payload: &d.payload,
            kernel_ns: None,
        };
        slot.session.handle_input(&mut cx, input);
        self.flush(key)
    }

    fn fire(&mut self, key: usize) -> Result<(), SimError> {
        let Some(slot) = self.slots.get_mut(key).and_then(Option::as_mut) else {
            return Ok(());
        };
        let mut cx = Context::new(self.now, key, slot.peer);
        // The heap entry is consumed; the flush re-arms whatever is wanted.
        slot.armed = None;
        slot.session.handle_timeout(&mut cx);
        self.flush(key)
    }

    fn fire_acceptor(&mut self) {
        let Some(acceptor) = self.acceptor.as_mut() else {
            return;
        };
        self.acceptor_armed = None;
        acceptor.handle_timeout(&mut Context::new(self.now, usize::MAX, None));
        self.sync_acceptor();
    }

    /// Re-reads the acceptor's deadline, as the reactor does after every
    /// call into the acceptor or one of its sessions (state they share).
    fn sync_acceptor(&mut self) {
        let Some(acceptor) = self.acceptor.as_ref() else {
            return;
        };
        let wanted = acceptor.poll_timeout();
        if wanted != self.acceptor_armed.map(|(at, _)| at) {
            self.acceptor_armed = wanted.map(|at| (at, self.next_stamp));
            self.next_stamp += 1;
        }
    }

    /// After any call into a session: the one driver's order of calls
    /// ([`drive::after_call`]), with the reactor's send budget.
    fn flush(&mut self, key: usize) -> Result<(), SimError> {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(key).and_then(Option::as_mut) else {
            return Ok(());
        };
        let mut cx = Context::new(now, key, slot.peer);
        let peer = slot.peer;
        let ((out, cut), after) = drive::after_call(slot.session.as_mut(), &mut cx, |s, cx| {
            let mut out = Vec::new();
            let mut buf = BytesMut::new();
            while out.len() < SEND_BUDGET {
                let Some(t) = s.poll_transmit(cx, MAX_DATAGRAM, &mut buf) else {
                    return (out, false);
                };
                let payload = buf.split().freeze();
                // As the reactor does: no destination and no peer, no
                // datagram; nor through an endpoint the session lacks.
                let to = (t.endpoint == EndpointId::HOME)
                    .then(|| t.to.or(peer))
                    .flatten();
                out.push(to.map(|to| (to, payload)));
            }
            (out, true)
        });
        slot.backlog = cut;
        slot.burst = if cut {
            slot.burst + out.len() as u64
        } else {
            0
        };
        if slot.burst >= MAX_TRANSMITS_PER_FLUSH {
            return Err(SimError::Flood {
                role: role(key),
                now,
            });
        }
        slot.wants_input = after.wants_input;
        if after.deadline != slot.armed.map(|(at, _)| at) {
            slot.armed = after.deadline.map(|at| (at, self.next_stamp));
            self.next_stamp += 1;
        }
        let addr = slot.addr;
        let dir = if key == 0 { Dir::Up } else { Dir::Down };
        for datagram in out {
            self.sent.bump(role(key));
            if let Some((to, payload)) = datagram {
                self.send(dir, addr, to, payload);
            }
        }
        if let Some(reason) = after.close {
            self.close(key, reason);
        }
        if key != 0 {
            self.sync_acceptor();
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
            self.scripted_drops.bump(match dir {
                Dir::Up => Role::Client,
                Dir::Down => Role::Server,
            });
            return;
        }
        let now = self.now;
        let len = payload.len();
        let _verdict = self
            .link(dir)
            .push(now, Datagram { from, to, payload }, len);
    }

    /// Frees a session's slot, its address and what its socket held, as
    /// the reactor reaps it.
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
