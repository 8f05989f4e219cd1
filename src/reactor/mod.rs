//! The reactor: one `mio::Poll`, one slab, one deadline heap.
//!
//! Owns every socket, file descriptor and session in the process, and the
//! clock. It is the *only* module that touches mio, sockets, descriptors or
//! the time: sessions receive bytes and `now`, and answer with bytes,
//! deadlines and an end (see `proto`). It must never contain protocol
//! logic, nor name a protocol.
//!
//! # One turn
//! 1. **Wait**: zero timeout if a socket is still ready from a budget
//!    cut-off, else until the earliest deadline (a timerfd wakes it, see
//!    [`wait`]). `EINTR` means poll again.
//! 2. **Read the clock once**: every session called this turn sees the same
//!    `now`.
//! 3. **I/O**: for each ready key (and last turn's still-ready keys)
//!    accept, read or receive until `WouldBlock` or the per-turn budget;
//!    write pending output within the session's share of the turn's write
//!    budget; then flush the session (`flush.rs`). Then the streams
//!    waiting for their share take their goes, round-robin.
//! 4. **Timers**: pop every due deadline; a stale stamp is skipped.
//! 5. **Reap**: free every entry closed this turn, only now, so no key is
//!    reused while the same batch of events is being walked.
//!
//! # Endpoints
//! A session's home endpoint is a TCP stream, a UDP socket (its own or
//! its acceptor's) or a TUN device (`device.rs`: whole IP packets in as
//! `DatagramInput::Packet`, one `write` per packet out); a datagram
//! session may have extra UDP sockets, and a device session a capture file
//! as its write-only endpoints 1 and 2 (`capture.rs`, pcapng).
//!
//! # Invariants
//! * An entry's mio token is its slab key, with the endpoint index in the
//!   top bits for a session's extra endpoints (`entry::EventKey`).
//! * `WRITABLE` interest is registered only while output is pending.
//! * A session's deadline is on the heap iff its `TimerSlot` holds it.

mod capture;
mod clock;
mod datagram;
mod device;
mod entry;
mod flush;
mod idle;
mod stream;
pub(crate) mod sys;
pub mod timers;
pub mod wait;

pub use capture::{Capture, Direction as CaptureDirection};
pub use clock::Clock;
pub use device::{CAPTURE_INBOUND, CAPTURE_OUTBOUND};
pub use idle::IdleExit;
pub use sys::tun::{TunDevice, TunError, TunSetup};
pub use wait::TimerMode;

use crate::proto::{
    Context, DatagramAcceptor, DatagramSession, Driven, EndpointId, StreamAcceptor, StreamSession,
};
use crate::time::{Duration, Instant};
use bytes::BytesMut;
use entry::{Entry, EventKey, Io, Listen, Phase, Role, UdpState};
use log::{debug, trace};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use timers::{Owner, TimerSlot, Timers};
use wait::Waiter;

/// The reactor's timer primitive on its own, so it can be measured against
/// the whole reactor (`benches/deadline.rs`) without `unsafe` outside
/// `reactor/sys`: a non-blocking one-shot `timerfd` on `CLOCK_MONOTONIC`,
/// and that clock.
pub mod raw {
    use std::io;
    use std::os::fd::{AsRawFd, RawFd};

    /// `CLOCK_MONOTONIC` in nanoseconds.
    pub fn monotonic_ns() -> u64 {
        super::sys::monotonic_ns()
    }

    /// A one-shot timerfd armed with absolute `CLOCK_MONOTONIC` times.
    #[derive(Debug)]
    pub struct Timer(super::sys::TimerFd);

    impl Timer {
        /// A disarmed timer.
        ///
        /// # Errors
        /// `timerfd_create` failed.
        pub fn new() -> io::Result<Self> {
            super::sys::TimerFd::new().map(Self)
        }

        /// Fires at `monotonic_ns` (absolute).
        ///
        /// # Errors
        /// `timerfd_settime` failed.
        pub fn set_abs(&self, monotonic_ns: u64) -> io::Result<()> {
            self.0.set_abs(monotonic_ns)
        }

        /// Consumes an expiry.
        pub fn drain(&self) {
            self.0.drain();
        }
    }

    impl AsRawFd for Timer {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_raw_fd()
        }
    }
}

/// The process's soft descriptor limit (`RLIMIT_NOFILE`), which the
/// descriptor budget splits between protocols at start-up.
///
/// # Errors
/// `getrlimit` failed.
pub fn descriptor_limit() -> io::Result<u64> {
    sys::nofile_soft_limit()
}

/// Accept queue length asked of the kernel (it caps it at `somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

/// Largest UDP payload a session may produce (IPv4: 65535 − 20 − 8).
pub const MAX_DATAGRAM: usize = 65_507;

/// Tunables of the reactor itself (protocol limits live in `config`).
#[derive(Clone, Debug)]
pub struct ReactorConfig {
    /// How deadlines wake the loop.
    pub timer: TimerMode,
    /// Bytes read from one TCP stream per turn before others get a go.
    pub read_budget: usize,
    /// Datagrams received on one UDP socket per turn.
    pub datagram_budget: usize,
    /// Connections accepted from one listener per turn.
    pub accept_budget: usize,
    /// Bytes written to all TCP streams together in one turn, shared
    /// round-robin between the sessions that have output: this bounds how
    /// long a turn takes, so a request waiting behind bulk writers is
    /// answered within about one budget's worth of writing. 512 KiB: with
    /// 100 bulk readers, 1 MiB gave hello p50 0.65 ms and 512 KiB 0.33 ms
    /// at the same bulk throughput (`benches/fairness.sh`); 256 KiB halved
    /// p50 again but not p99, and raises the per-turn overhead.
    pub write_budget: usize,
    /// Least a session may write when it gets its turn, however many are
    /// ready: smaller writes would spend more in system calls than in
    /// copying (and `sendfile` chunks this size are still zero-copy).
    pub min_write_share: usize,
    /// Datagrams one session may send per turn.
    pub send_budget: usize,
    /// Per-peer sessions one server UDP socket may hold.
    pub max_shared_sessions: usize,
    /// How early the reactor wakes for a precise (pacing) deadline, to spin
    /// the rest; zero trusts the timerfd alone.
    pub spin: Duration,
    /// For this long after the last event, poll without sleeping instead of
    /// blocking: the CPU never halts between the steps of a lock-step
    /// exchange, so the next datagram is seen without a wake-up (about
    /// 40 µs per halted vCPU here, docs/performance.md §7). It costs up to
    /// one CPU while traffic flows; zero (the default) never busy-polls.
    pub busy_poll: Duration,
    /// Stop asking a session for output once this much is buffered.
    pub high_water: usize,
    /// How long a closing TCP connection may take to flush and see EOF.
    pub linger: Duration,
    /// Exit after this long with no input on any socket.
    pub idle_exit: Option<Duration>,
    /// Exit once no session is left (client mode).
    pub exit_when_no_sessions: bool,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        Self {
            timer: TimerMode::Timerfd,
            read_budget: 256 * 1024,
            datagram_budget: 256,
            accept_budget: 256,
            write_budget: 512 * 1024,
            min_write_share: 64 * 1024,
            send_budget: 1024,
            max_shared_sessions: 4096,
            spin: Duration::from_micros(100),
            busy_poll: Duration::ZERO,
            high_water: 256 * 1024,
            linger: Duration::from_secs(2),
            idle_exit: None,
            exit_when_no_sessions: false,
        }
    }
}

/// Why [`Reactor::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// SIGINT or SIGTERM arrived (the signal number).
    Signal(i32),
    /// No input arrived for the idle-exit span.
    Idle,
    /// Client mode: every session has ended.
    SessionsDone,
}

/// A readiness event, copied out of `Events` so handlers may borrow the reactor.
#[derive(Clone, Copy, Debug)]
struct Ready {
    at: EventKey,
    readable: bool,
    writable: bool,
}

/// How far a transmit step got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// The session has nothing more to send now.
    All,
    /// The socket took all it could; `WRITABLE` brings the rest.
    SocketFull,
    /// The turn's budget ran out with the socket still writable.
    BudgetSpent,
}

/// The single-threaded event loop. See the module docs for one turn.
pub struct Reactor {
    poll: Poll,
    events: Events,
    ready: Vec<Ready>,
    entries: Slab<Entry>,
    timers: Timers,
    /// Part deadlines armed across all entries (`UdpState::parts`): live
    /// heap owners besides one per entry, so compaction counts them.
    parts_armed: usize,
    clock: Clock,
    waiter: Waiter,
    config: ReactorConfig,
    now: Instant,
    /// When a poll last returned events: `busy_poll` counts from here.
    last_event: Instant,
    still_ready: Vec<usize>,
    /// Streams whose output waits for their next share of the write
    /// budget, oldest first: served before anything else next turn, so
    /// every writer gets its go in turn (round-robin).
    deferred: Vec<usize>,
    /// Streams the write budget did not reach this turn, in order: they
    /// go before `deferred` next turn.
    starved: Vec<usize>,
    /// What is left of this turn's `write_budget`.
    write_left: usize,
    /// What one stream may write per go this turn (see [`fair_share`]).
    write_share: usize,
    /// Written in the current go before its flush (a `WRITABLE` event
    /// drains buffered output first): the flush gets the rest of the share.
    go_written: usize,
    reap: Vec<usize>,
    read_buf: Box<[u8]>,
    dgram_buf: BytesMut,
    /// Receive buffers for `recvmmsg`, made on first use (2 MiB).
    recv_batch: Option<Box<sys::RecvBatch>>,
    /// Stateless replies of the current receive batch: (to, start, len) in `replies_buf`.
    replies: Vec<(SocketAddr, usize, usize)>,
    replies_buf: BytesMut,
    idle: Option<(IdleExit, TimerSlot)>,
    activity: bool,
    sessions: usize,
    gso: bool,
    exit: Option<Exit>,
    stats: Stats,
}

/// Counters the reactor keeps about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Turns of the loop.
    pub turns: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent (a device's packets and capture records included).
    pub datagrams_out: u64,
    /// Stateless UDP replies dropped because the socket buffer was full.
    pub replies_dropped: u64,
    /// Per-peer UDP sessions refused because the socket held the maximum.
    pub sessions_refused: u64,
    /// Sessions closed because their acceptor evicted them to make room.
    pub sessions_evicted: u64,
    /// Deadlines popped whose stamp was stale.
    pub stale_timers: u64,
    /// Heap compactions.
    pub compactions: u64,
    /// Datagrams (or device packets) dropped because a session's queue of
    /// output waiting for room was at its bound.
    pub queue_dropped: u64,
}

impl Reactor {
    /// A reactor with no sockets yet.
    ///
    /// # Errors
    /// Creating the poll instance or the timerfd failed.
    pub fn new(config: ReactorConfig) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut clock = Clock::new();
        let now = clock.now();
        let waiter = Waiter::new(config.timer)?;
        // The default 50 µs slack would let the kernel defer our wake-ups.
        if let Err(e) = sys::set_timer_slack_ns(1) {
            debug!("timer slack unchanged: {e}");
        }
        let mut reactor = Self {
            poll,
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            entries: Slab::new(),
            timers: Timers::new(),
            parts_armed: 0,
            clock,
            waiter,
            now,
            last_event: now,
            still_ready: Vec::new(),
            deferred: Vec::new(),
            starved: Vec::new(),
            write_left: 0,
            write_share: 0,
            go_written: 0,
            reap: Vec::new(),
            read_buf: vec![0; 64 * 1024].into_boxed_slice(),
            dgram_buf: BytesMut::with_capacity(MAX_DATAGRAM),
            recv_batch: None,
            replies: Vec::new(),
            replies_buf: BytesMut::new(),
            idle: None,
            activity: false,
            sessions: 0,
            gso: true,
            exit: None,
            stats: Stats::default(),
            config,
        };
        if let Some(fd) = reactor.waiter.timerfd().map(AsRawFd::as_raw_fd) {
            let key = reactor.entries.insert(Entry::new(
                Io::Timer,
                Role::Internal,
                None,
                Interest::READABLE,
            ));
            reactor
                .poll
                .registry()
                .register(&mut SourceFd(&fd), Token(key), Interest::READABLE)?;
        }
        if let Some(after) = reactor.config.idle_exit {
            let idle = IdleExit::new(after, now);
            let mut slot = TimerSlot::default();
            slot.sync(&mut reactor.timers, Owner::IdleExit, Some(idle.deadline()));
            reactor.idle = Some((idle, slot));
        }
        Ok(reactor)
    }

    /// The reactor's own counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Deadlines on the heap, stale ones included.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Reads the clock (outside a turn; for callers that report timings).
    pub fn now(&mut self) -> Instant {
        self.clock.now()
    }

    /// Stops on SIGINT and SIGTERM: [`run`](Self::run) returns [`Exit::Signal`].
    ///
    /// # Errors
    /// Installing the handlers or registering their pipe failed.
    pub fn watch_signals(&mut self) -> io::Result<()> {
        let mut signals =
            Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
        let entry = self.entries.vacant_entry();
        self.poll
            .registry()
            .register(&mut signals, Token(entry.key()), Interest::READABLE)?;
        entry.insert(Entry::new(
            Io::Signals(Box::new(signals)),
            Role::Internal,
            None,
            Interest::READABLE,
        ));
        Ok(())
    }

    /// Binds a TCP listener on `addr` whose connections `acceptor` turns into
    /// sessions. Returns the bound address (port 0 picks a free port).
    ///
    /// # Errors
    /// Binding or registering failed.
    pub fn listen_tcp(
        &mut self,
        addr: SocketAddr,
        acceptor: Box<dyn StreamAcceptor>,
    ) -> io::Result<SocketAddr> {
        self.listen_tcp_capped(addr, acceptor, usize::MAX)
    }

    /// [`listen_tcp`](Self::listen_tcp) holding at most `max_connections`
    /// open connections at once (its share of the descriptor budget). At
    /// the cap the listener stops accepting: newcomers wait in the kernel's
    /// backlog, and are taken as its own connections close.
    ///
    /// # Errors
    /// Binding or registering failed.
    pub fn listen_tcp_capped(
        &mut self,
        addr: SocketAddr,
        acceptor: Box<dyn StreamAcceptor>,
        max_connections: usize,
    ) -> io::Result<SocketAddr> {
        let mut listener = TcpListener::bind(addr)?;
        // mio listens with a backlog of 128: a burst of a thousand connects
        // overflowed it (and waited a second for the SYN retry).
        if let Err(e) = sys::set_listen_backlog(listener.as_raw_fd(), LISTEN_BACKLOG) {
            debug!("listen backlog unchanged: {e}");
        }
        let local = listener.local_addr()?;
        let entry = self.entries.vacant_entry();
        self.poll
            .registry()
            .register(&mut listener, Token(entry.key()), Interest::READABLE)?;
        let mut listen = Listen {
            acceptor,
            accept: entry::AcceptState::default(),
        };
        listen.accept.max_open = max_connections.max(1);
        let key = entry.key();
        entry.insert(Entry::new(
            Io::Listener(listener),
            Role::StreamAcceptor(Box::new(listen)),
            Some(local),
            Interest::READABLE,
        ));
        self.sync_acceptor(key);
        Ok(local)
    }

    /// Binds a UDP socket on `addr` whose datagrams `acceptor` answers or
    /// turns into per-peer sessions.
    ///
    /// # Errors
    /// Binding or registering failed.
    pub fn bind_udp(
        &mut self,
        addr: SocketAddr,
        acceptor: Box<dyn DatagramAcceptor>,
    ) -> io::Result<SocketAddr> {
        self.bind_udp_capped(addr, acceptor, usize::MAX)
    }

    /// [`bind_udp`](Self::bind_udp) holding at most `max_sessions` per-peer
    /// sessions (its share of the descriptor budget), below the reactor's
    /// and the acceptor's own bounds. A request beyond it is dropped.
    ///
    /// # Errors
    /// Binding or registering failed.
    pub fn bind_udp_capped(
        &mut self,
        addr: SocketAddr,
        acceptor: Box<dyn DatagramAcceptor>,
        max_sessions: usize,
    ) -> io::Result<SocketAddr> {
        let mut socket = UdpSocket::bind(addr)?;
        if let Err(e) = sys::set_recv_buffer(socket.as_raw_fd(), SERVER_RECV_BUFFER) {
            debug!("receive buffer unchanged: {e}");
        }
        let local = socket.local_addr()?;
        let entry = self.entries.vacant_entry();
        self.poll
            .registry()
            .register(&mut socket, Token(entry.key()), Interest::READABLE)?;
        let key = entry.key();
        entry.insert(Entry::new(
            Io::Udp(socket),
            datagram::demux(acceptor, max_sessions.max(1)),
            Some(local),
            Interest::READABLE,
        ));
        self.sync_acceptor(key);
        Ok(local)
    }

    /// Starts a TCP connection to `addr` driven by `session` (client side).
    ///
    /// # Errors
    /// Creating the socket or registering it failed (a refused connection
    /// arrives later, as [`StreamInput::Failed`](crate::proto::StreamInput::Failed)).
    pub fn connect_tcp(
        &mut self,
        addr: SocketAddr,
        session: Box<dyn StreamSession>,
    ) -> io::Result<usize> {
        let mut stream = TcpStream::connect(addr)?;
        let interest = Interest::READABLE | Interest::WRITABLE;
        let entry = self.entries.vacant_entry();
        let key = entry.key();
        self.poll
            .registry()
            .register(&mut stream, Token(key), interest)?;
        let mut e = Entry::new(
            Io::Stream(stream),
            Role::Stream(session),
            Some(addr),
            interest,
        );
        e.phase = Phase::Connecting;
        entry.insert(e);
        self.sessions += 1;
        self.flush(key);
        Ok(key)
    }

    /// Adds a UDP socket driven by `session` (client side). `peer` is where
    /// datagrams go when the session names no destination, and what log
    /// lines show.
    ///
    /// # Errors
    /// Registering failed.
    pub fn add_udp_session(
        &mut self,
        mut socket: UdpSocket,
        peer: Option<SocketAddr>,
        session: Box<dyn DatagramSession>,
    ) -> io::Result<usize> {
        // Only a session that measures arrival times has the kernel stamp
        // each datagram: the stamps cost a control message per datagram,
        // and while any socket asks for them the kernel stamps every
        // packet the host receives.
        if session.wants_receive_timestamps()
            && let Err(e) = sys::enable_rx_timestamps(socket.as_raw_fd())
        {
            debug!("no receive timestamps: {e}");
        }
        let connected = socket.peer_addr().ok();
        let entry = self.entries.vacant_entry();
        let key = entry.key();
        self.poll
            .registry()
            .register(&mut socket, Token(key), Interest::READABLE)?;
        let mut e = Entry::new(
            Io::Udp(socket),
            Role::Datagram(session),
            peer,
            Interest::READABLE,
        );
        e.udp = Some(Box::new(UdpState {
            connected,
            ..UdpState::default()
        }));
        entry.insert(e);
        self.sessions += 1;
        self.flush(key);
        Ok(key)
    }

    /// Adds a timer-only job (a progress ticker, a bench's controller): it
    /// has no socket, only timers and an end. It counts as a session for
    /// client mode's exit.
    pub fn add_detached(&mut self, job: Box<dyn Driven>) -> usize {
        let key = self.entries.insert(Entry::new(
            Io::Detached,
            Role::Job(job),
            None,
            Interest::READABLE,
        ));
        self.sessions += 1;
        self.flush(key);
        key
    }

    /// Runs turns until a signal, idle exit, or (in client mode) the last
    /// session ends.
    ///
    /// # Errors
    /// Only a failure of the poll itself; socket errors end their session.
    pub fn run(&mut self) -> io::Result<Exit> {
        loop {
            if let Some(exit) = self.exit {
                return Ok(exit);
            }
            self.turn()?;
        }
    }

    /// Why the loop would stop now, if it would (for a caller that runs
    /// [`turn`](Self::turn) itself).
    pub fn exit(&self) -> Option<Exit> {
        self.exit
    }

    /// One turn of the loop (see the module docs).
    ///
    /// # Errors
    /// Only a failure of the poll itself.
    pub fn turn(&mut self) -> io::Result<()> {
        // A session added between turns may already have ended (it is in
        // `reap`): then this turn must not block, or a client whose only
        // session ended at its creation would wait for an event that
        // never comes.
        let mut timeout = if self.still_ready.is_empty()
            && self.deferred.is_empty()
            && self.starved.is_empty()
            && self.reap.is_empty()
        {
            self.waiter
                .prepare(&mut self.clock, self.timers.next_wake(), self.config.spin)?
        } else {
            Some(Duration::ZERO)
        };
        // Busy-poll: shortly after traffic, do not sleep (the timerfd stays
        // armed, and due timers fire each turn as usual).
        if !self.config.busy_poll.is_zero()
            && self.now.saturating_since(self.last_event) < self.config.busy_poll
        {
            timeout = Some(Duration::ZERO);
        }
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        self.now = self.clock.now();
        self.stats.turns += 1;
        if !self.events.is_empty() {
            self.last_event = self.now;
        }

        let mut ready = core::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|ev| Ready {
            at: EventKey::from_token(ev.token()),
            readable: ev.is_readable() || ev.is_read_closed() || ev.is_error(),
            writable: ev.is_writable() || ev.is_write_closed() || ev.is_error(),
        }));
        let again = core::mem::take(&mut self.still_ready);
        ready.extend(again.iter().map(|&token| Ready {
            at: EventKey::from_token(Token(token)),
            readable: true,
            writable: true,
        }));
        // Streams waiting for their share of the write budget: those the
        // budget did not reach last turn, then those it served (round-robin).
        let mut waiting = core::mem::take(&mut self.starved);
        waiting.append(&mut self.deferred);
        self.write_left = self.config.write_budget;
        self.write_share = fair_share(
            self.config.write_budget,
            ready.len() + waiting.len(),
            self.config.min_write_share,
        );
        // Events first: a request that arrived during the last turn's
        // writing is answered before this turn's.
        for r in &ready {
            self.on_ready(*r);
        }
        self.take_turns_writing(waiting);
        self.ready = ready;

        self.fire_timers();
        if self.activity {
            self.activity = false;
            if let Some((idle, _)) = &mut self.idle {
                idle.note_activity(self.now);
            }
        }
        self.reap_closed();
        self.maybe_compact();
        if self.config.exit_when_no_sessions && self.sessions == 0 && self.exit.is_none() {
            self.exit = Some(Exit::SessionsDone);
        }
        Ok(())
    }

    fn on_ready(&mut self, r: Ready) {
        let key = r.at.key;
        let Some(entry) = self.entries.get_mut(key) else {
            return; // sporadic event for a freed key
        };
        if entry.phase == Phase::Dead {
            return;
        }
        if r.at.endpoint != EndpointId::HOME {
            // One of a session's own extra endpoints: send what waited,
            // then read what arrived.
            if r.readable {
                self.receive_datagrams(r.at);
            }
            self.flush(key);
            return;
        }
        match (&entry.io, &entry.role) {
            (Io::Listener(_), _) => self.accept(key),
            (Io::Udp(_), Role::DatagramAcceptor(_)) => {
                if r.writable {
                    self.resume_blocked(key);
                }
                if r.readable {
                    self.answer_datagrams(key);
                }
            }
            (Io::Udp(_), _) => {
                if r.readable {
                    self.receive_datagrams(r.at);
                }
                self.flush(key);
            }
            // Still ready after a send budget ran out.
            (Io::SharedUdp, _) => self.flush(key),
            (Io::Stream(_), _) => self.stream_ready(r),
            (Io::Tun(_), _) => {
                if r.readable {
                    self.receive_packets(key);
                }
                self.flush(key);
            }
            (Io::Timer, _) => self.waiter.on_ready(),
            (Io::Signals(_), _) => self.signals(key),
            (Io::Detached, _) => {}
        }
    }

    /// Gives the streams in `waiting` (oldest first) their go at writing,
    /// while the turn's write budget lasts. The first always gets one, so
    /// writers make progress however busy the events keep the budget;
    /// those not reached keep their place ahead of everyone deferred this
    /// turn. A go writes only: a stream's input arrives as events.
    fn take_turns_writing(&mut self, waiting: Vec<usize>) {
        let mut skipped = Vec::new();
        for (i, key) in waiting.into_iter().enumerate() {
            if i == 0 {
                self.write_left = self.write_left.max(self.write_share);
            }
            if self.write_left == 0 {
                skipped.push(key);
                continue;
            }
            let Some(entry) = self.entries.get_mut(key) else {
                continue;
            };
            if entry.phase == Phase::Dead || !matches!(entry.io, Io::Stream(_)) {
                continue;
            }
            entry.write_queued = false;
            if self.write_out(key) {
                self.flush(key);
            }
        }
        skipped.append(&mut self.starved);
        self.starved = skipped;
    }

    fn fire_timers(&mut self) {
        while let Some((owner, stamp, _at)) = self.timers.pop_due(self.now) {
            match owner {
                Owner::Entry(key) => {
                    let Some(entry) = self.entries.get_mut(key) else {
                        self.stats.stale_timers += 1;
                        continue;
                    };
                    if !entry.slot.take_if_current(stamp) {
                        self.stats.stale_timers += 1;
                        continue;
                    }
                    match entry.phase {
                        Phase::Closing { .. } => {
                            debug!("[#{key}{}] linger expired", fmt_peer(entry.peer));
                            entry.phase = Phase::Dead;
                            self.reap.push(key);
                        }
                        Phase::Dead => {}
                        Phase::Open | Phase::Connecting => {
                            if !self.rearm_if_moved(key) {
                                self.on_timer(key);
                            }
                        }
                    }
                }
                Owner::Part(key, part) => {
                    let Some(entry) = self.entries.get_mut(key) else {
                        self.stats.stale_timers += 1;
                        continue;
                    };
                    // Only the live arming fires; it is spent once popped.
                    let current = entry.udp.as_deref_mut().is_some_and(|udp| {
                        let live = udp.parts.get(&part) == Some(&stamp);
                        if live {
                            udp.parts.remove(&part);
                            self.parts_armed -= 1;
                        }
                        live
                    });
                    if !current || !matches!(entry.phase, Phase::Open) {
                        self.stats.stale_timers += 1;
                        continue;
                    }
                    let mut cx = Context::new(self.now, key, entry.peer);
                    if let Some(session) = entry.role.driven() {
                        session.handle_part_timeout(&mut cx, part);
                    }
                    self.flush(key);
                }
                Owner::IdleExit => {
                    let Some((idle, slot)) = &mut self.idle else {
                        continue;
                    };
                    if !slot.take_if_current(stamp) {
                        continue;
                    }
                    if self.activity {
                        idle.note_activity(self.now);
                    }
                    if idle.is_due(self.now) {
                        log::info!(
                            "idle for {:?}: exiting",
                            self.config.idle_exit.unwrap_or_default()
                        );
                        self.exit = Some(Exit::Idle);
                    } else {
                        slot.sync(&mut self.timers, Owner::IdleExit, Some(idle.deadline()));
                    }
                }
            }
        }
    }

    /// The armed deadline of the session or job at `key` popped, but its
    /// deadline has since moved later (`act_on` keeps the earlier heap
    /// entry): arms the one it has now, or none, and says so. An acceptor
    /// keeps its deadline armed exactly (`sync_acceptor`): false.
    fn rearm_if_moved(&mut self, key: usize) -> bool {
        let entry = &mut self.entries[key];
        if entry.role.is_acceptor() {
            return false;
        }
        let Some(session) = entry.role.driven() else {
            return false;
        };
        let want = session.poll_timeout();
        if want.is_some_and(|at| at <= self.now) {
            return false;
        }
        let wake = session.wake();
        entry
            .slot
            .sync_with(&mut self.timers, Owner::Entry(key), want, wake);
        true
    }

    /// The deadline of the entry at `key` is due: an acceptor's (its own
    /// timers, a listener's accept retry), a session's or a job's.
    fn on_timer(&mut self, key: usize) {
        let entry = &mut self.entries[key];
        let mut cx = Context::new(self.now, key, entry.peer);
        if entry.role.is_acceptor() {
            if let Role::StreamAcceptor(listen) = &mut entry.role
                && listen.accept.retry_at.is_some_and(|at| at <= self.now)
            {
                // The retry after a descriptor shortage.
                listen.accept.retry_at = None;
                listen.acceptor.handle_timeout(&mut cx);
                self.accept(key);
                return;
            }
            if let Some(acceptor) = entry.role.driven() {
                acceptor.handle_timeout(&mut cx);
            }
            self.sync_acceptor(key);
            return;
        }
        if let Some(session) = entry.role.driven() {
            session.handle_timeout(&mut cx);
        }
        self.flush(key);
    }

    fn signals(&mut self, key: usize) {
        let Io::Signals(signals) = &mut self.entries[key].io else {
            return;
        };
        if let Some(signal) = signals.pending().next() {
            log::info!("signal {signal}: shutting down");
            self.exit = Some(Exit::Signal(signal));
        }
    }

    fn reap_closed(&mut self) {
        while let Some(key) = self.reap.pop() {
            let Some(entry) = self.entries.try_remove(key) else {
                continue;
            };
            if entry.is_session() {
                self.sessions -= 1;
            }
            self.parts_armed -= entry.udp.as_ref().map_or(0, |udp| udp.parts.len());
            if let Some(acceptor) = entry.acceptor_key() {
                self.detach_child(acceptor, key, entry.peer);
                self.release_connection(acceptor);
            }
            trace!("[#{key}{}] freed", fmt_peer(entry.peer));
            // Dropping the socket closes it, which also removes it from
            // the epoll set: no deregister call needed.
        }
    }

    /// A connection the listener at `key` accepted was freed: one more may
    /// be accepted, and a listener that stopped at its cap resumes (its
    /// backlog raised no new edge while it waited).
    fn release_connection(&mut self, key: usize) {
        if let Some(Entry {
            role: Role::StreamAcceptor(listen),
            ..
        }) = self.entries.get_mut(key)
        {
            let state = &mut listen.accept;
            state.open = state.open.saturating_sub(1);
            if state.at_cap {
                state.at_cap = false;
                self.still_ready.push(key);
            }
        }
    }

    /// Rebuilds the heap when stale entries outnumber live owners.
    fn maybe_compact(&mut self) {
        let live = self.entries.len() + 1 + self.parts_armed;
        if self.timers.len() <= 2 * live + 1024 {
            return;
        }
        let entries = &self.entries;
        let idle = self.idle.as_ref().map(|(_, slot)| *slot);
        self.timers.compact(|owner, stamp| match owner {
            Owner::Entry(key) => entries.get(key).is_some_and(|e| e.slot.is_current(stamp)),
            Owner::Part(key, part) => entries
                .get(key)
                .and_then(|e| e.udp.as_deref())
                .and_then(|udp| udp.parts.get(&part))
                .is_some_and(|s| *s == stamp),
            Owner::IdleExit => idle.is_some_and(|s| s.is_current(stamp)),
        });
        self.stats.compactions += 1;
    }
}

/// Receive buffer asked for on a server's UDP socket (the kernel caps it at
/// `net.core.rmem_max`). Every peer's requests queue on that one socket,
/// and the kernel charges each small datagram its ~770-byte buffer, so the
/// default 208 KiB holds about 270: 1 000 clients with one request each
/// (`bench hello -P 1000`) overflowed it, a third of their requests were
/// dropped, and each drop idled its client for a whole timeout.
const SERVER_RECV_BUFFER: usize = 4 << 20;

/// A UDP socket for a client talking to `server`: bound to an ephemeral
/// port, connected (so an ICMP "port unreachable" fails fast instead of
/// timing out), with a 4 MiB receive buffer so a fast stream is not lost
/// to a full buffer before the reactor reads it.
///
/// # Errors
/// Binding or connecting failed.
pub fn udp_client_socket(server: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(server)?;
    if let Err(e) = sys::set_recv_buffer(socket.as_raw_fd(), 4 << 20) {
        debug!("receive buffer unchanged: {e}");
    }
    Ok(socket)
}

/// What one stream may write per go in a turn with `ready` ready keys: an
/// equal part of the turn's `budget`, but never less than `min` (writes
/// that small cost more in system calls than they move) nor more than the
/// budget. Keys that are not writers only make the parts smaller, which
/// errs on the side of short turns.
fn fair_share(budget: usize, ready: usize, min: usize) -> usize {
    (budget / ready.max(1)).clamp(min.min(budget), budget)
}

fn fmt_peer(peer: Option<SocketAddr>) -> String {
    peer.map(|p| format!(" {p}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::PartId;
    use crate::proto::{Driven, StreamInput};
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;

    /// Ends at its first call: a client session that finds it cannot
    /// even start (the lab client's oversized datagram, say).
    struct EndsAtOnce;

    impl Driven for EndsAtOnce {
        fn poll_close(&mut self) -> Option<CloseReason> {
            Some(CloseReason::Aborted)
        }
    }

    impl DatagramSession for EndsAtOnce {
        fn handle_input(&mut self, _: &mut Context, _: DatagramInput<'_>) {}
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            _: &mut BytesMut,
        ) -> Option<Transmit> {
            None
        }
    }

    /// A timer-only job with one deadline and nothing to do at it.
    struct Watchdog(Instant);

    impl Driven for Watchdog {
        fn poll_timeout(&self) -> Option<Instant> {
            Some(self.0)
        }
    }

    /// A session that ends as it is added is reaped by the next turn at
    /// once, instead of that turn blocking in `poll` (in a client reactor
    /// with nothing else, no event and no deadline would ever wake it).
    #[test]
    fn a_session_that_ends_as_it_is_added_is_reaped_without_blocking() {
        let config = ReactorConfig {
            exit_when_no_sessions: true,
            ..ReactorConfig::default()
        };
        let mut reactor = Reactor::new(config).unwrap();
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        let socket = udp_client_socket(to).unwrap();
        // A watchdog deadline 5 s out bounds the test: without the fix the
        // turn blocks until it.
        let start = reactor.now();
        reactor.add_detached(Box::new(Watchdog(start + Duration::from_secs(5))));
        let before = reactor.entries.len();
        reactor
            .add_udp_session(socket, Some(to), Box::new(EndsAtOnce))
            .unwrap();
        reactor.turn().unwrap();
        assert!(
            reactor.now() < start + Duration::from_secs(1),
            "the turn blocked until the watchdog"
        );
        assert_eq!(reactor.entries.len(), before, "the session was freed");
    }

    /// With `busy_poll`, turns inside the window after an event (the
    /// reactor's start counts as one) poll without sleeping: three turns
    /// with nothing ready return at once instead of blocking until the
    /// watchdog deadline 5 s out.
    #[test]
    fn busy_poll_turns_do_not_sleep_inside_the_window() {
        let config = ReactorConfig {
            busy_poll: Duration::from_secs(3600),
            ..ReactorConfig::default()
        };
        let mut reactor = Reactor::new(config).unwrap();
        let start = reactor.now();
        reactor.add_detached(Box::new(Watchdog(start + Duration::from_secs(5))));
        let turns = reactor.stats().turns;
        for _ in 0..3 {
            reactor.turn().unwrap();
        }
        assert!(
            reactor.now() < start + Duration::from_secs(1),
            "a turn slept until the watchdog"
        );
        assert_eq!(reactor.stats().turns, turns + 3);
    }

    #[test]
    fn a_fair_share_divides_the_turn_within_bounds() {
        let (budget, min) = (1 << 20, 64 << 10);
        assert_eq!(fair_share(budget, 0, min), budget, "alone: all of it");
        assert_eq!(fair_share(budget, 1, min), budget);
        assert_eq!(fair_share(budget, 4, min), 256 << 10);
        assert_eq!(fair_share(budget, 100, min), min, "never below min");
        assert_eq!(fair_share(16, 1, 64), 16, "min never above the budget");
    }

    /// Sends endless bytes once its peer has said something.
    struct Bulk {
        started: bool,
    }

    impl Driven for Bulk {}

    impl StreamSession for Bulk {
        fn handle_input(&mut self, _: &mut Context, _: StreamInput<'_>) {
            self.started = true;
        }
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            limit: usize,
            buf: &mut BytesMut,
        ) -> Option<usize> {
            if !self.started || limit == 0 {
                return None;
            }
            buf.resize(buf.len() + limit, b'x');
            Some(limit)
        }
    }

    struct BulkAcceptor;

    impl Driven for BulkAcceptor {}

    impl StreamAcceptor for BulkAcceptor {
        fn accept(&mut self, _: &mut Context, _: SocketAddr) -> Option<Box<dyn StreamSession>> {
            Some(Box::new(Bulk { started: false }))
        }
    }

    /// Bytes waiting to be read on `client` (non-blocking, bounded).
    fn drain(client: &mut StdStream) -> usize {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        for _ in 0..1000 {
            match client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    }

    /// Four sessions that always have output, and a turn's budget that
    /// covers two shares: each turn two of them write, and over two turns
    /// every one has written exactly one share — those the budget did not
    /// reach go first the next turn, so no writer is starved.
    #[test]
    fn writers_take_turns_within_the_turns_budget() {
        let share = 16 * 1024;
        let config = ReactorConfig {
            write_budget: 2 * share,
            min_write_share: share,
            high_water: share,
            ..ReactorConfig::default()
        };
        let mut reactor = Reactor::new(config).unwrap();
        let addr = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), Box::new(BulkAcceptor))
            .unwrap();
        let mut clients: Vec<StdStream> =
            (0..4).map(|_| StdStream::connect(addr).unwrap()).collect();
        for _ in 0..20 {
            if reactor.stats().accepted == 4 {
                break;
            }
            reactor.turn().unwrap();
        }
        assert_eq!(reactor.stats().accepted, 4);
        for c in &mut clients {
            c.set_nonblocking(true).unwrap();
            c.write_all(b"go").unwrap();
        }
        // The first turn that reads all four inputs; bounded.
        for _ in 0..20 {
            reactor.turn().unwrap();
            if reactor.starved.len() + reactor.deferred.len() == 4 {
                break;
            }
        }
        let first: Vec<usize> = clients.iter_mut().map(drain).collect();
        assert_eq!(first.iter().sum::<usize>(), 2 * share, "{first:?}");
        reactor.turn().unwrap();
        let second: Vec<usize> = clients.iter_mut().map(drain).collect();
        let both: Vec<usize> = first.iter().zip(&second).map(|(a, b)| a + b).collect();
        assert_eq!(
            both, [share; 4],
            "one share each: {first:?} then {second:?}"
        );
    }

    // ---- Turn-by-turn datagram tests on loopback (mio's `expect_events`
    // style: arrange the sockets, run a bounded number of turns, assert what
    // the reactor did in them).

    use crate::proto::{Admission, Admit, CloseReason, DatagramInput, Transmit};
    use core::cell::Cell;
    use std::net::UdpSocket as StdUdp;
    use std::rc::Rc;

    /// A reactor whose turns never block for long: a job ticks every 50 ms.
    fn test_reactor() -> Reactor {
        let mut reactor = Reactor::new(ReactorConfig::default()).unwrap();
        reactor.add_detached(Box::new(Tick(Some(Instant::ZERO))));
        reactor
    }

    /// Wakes the reactor every 50 ms, so a test's bounded loop of turns is
    /// bounded in time too.
    struct Tick(Option<Instant>);

    impl Driven for Tick {
        fn poll_timeout(&self) -> Option<Instant> {
            self.0
        }
        fn handle_timeout(&mut self, cx: &mut Context) {
            self.0 = Some(cx.now + Duration::from_millis(50));
        }
    }

    fn client() -> StdUdp {
        let c = StdUdp::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c
    }

    fn recv(c: &StdUdp) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let (n, _) = c.recv_from(&mut buf).expect("an answer within 2 s");
        buf[..n].to_vec()
    }

    /// Answers its first datagram with its number, then ends.
    struct OneShot {
        number: u8,
        answer: bool,
        done: bool,
    }

    impl Driven for OneShot {
        fn poll_close(&mut self) -> Option<CloseReason> {
            (self.done && !self.answer).then_some(CloseReason::Completed)
        }
    }

    impl DatagramSession for OneShot {
        fn handle_input(&mut self, _: &mut Context, input: DatagramInput<'_>) {
            if let DatagramInput::Datagram { .. } = input
                && !self.done
            {
                self.answer = true;
                self.done = true;
            }
        }
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            buf: &mut BytesMut,
        ) -> Option<Transmit> {
            if !core::mem::take(&mut self.answer) {
                return None;
            }
            buf.extend_from_slice(&[self.number]);
            Some(Transmit::new(None, 1))
        }
    }

    /// Admits a numbered `OneShot` per datagram from a peer without a
    /// session.
    struct Numbering(Rc<Cell<u8>>);

    impl Driven for Numbering {}

    impl DatagramAcceptor for Numbering {
        fn accept(
            &mut self,
            _: &mut Context,
            _: SocketAddr,
            _: &[u8],
            _: &mut BytesMut,
        ) -> Admission {
            self.0.set(self.0.get() + 1);
            Admission::shared(Box::new(OneShot {
                number: self.0.get(),
                answer: false,
                done: false,
            }))
        }
    }

    /// The demux race: a session that ends in the middle of a receive batch
    /// is reaped only at the end of the turn, but the next datagram from its
    /// peer in the same batch must start a new session, not vanish into the
    /// dead one.
    #[test]
    fn a_datagram_behind_its_sessions_end_in_one_batch_starts_a_new_session() {
        let mut reactor = test_reactor();
        let admitted = Rc::new(Cell::new(0));
        let addr = reactor
            .bind_udp(
                "127.0.0.1:0".parse().unwrap(),
                Box::new(Numbering(admitted.clone())),
            )
            .unwrap();
        let c = client();
        c.send_to(b"a", addr).unwrap();
        c.send_to(b"b", addr).unwrap();
        // Both are queued before the turn: one `recvmmsg` takes both.
        for _ in 0..5 {
            reactor.turn().unwrap();
            if reactor.stats().datagrams_in == 2 {
                break;
            }
        }
        assert_eq!(reactor.stats().datagrams_in, 2);
        assert_eq!(admitted.get(), 2, "the second datagram was admitted anew");
        assert_eq!((recv(&c), recv(&c)), (vec![1], vec![2]));
        reactor.turn().unwrap();
        assert_eq!(reactor.sessions, 1, "both reaped: only the ticker is left");
    }

    /// Relays between a client on the shared socket (endpoint 0) and a
    /// server reached through an endpoint of its own (1), tagging what it
    /// forwards with the endpoint it arrived on.
    struct Relay {
        server: SocketAddr,
        out: Vec<(EndpointId, Option<SocketAddr>, Vec<u8>)>,
    }

    impl Driven for Relay {}

    impl DatagramSession for Relay {
        fn handle_input(&mut self, _: &mut Context, input: DatagramInput<'_>) {
            let DatagramInput::Datagram {
                endpoint, payload, ..
            } = input
            else {
                return;
            };
            let mut tagged = vec![b'0' + endpoint.0];
            tagged.extend_from_slice(payload);
            if endpoint == EndpointId::HOME {
                self.out.push((EndpointId(1), Some(self.server), tagged));
            } else {
                self.out.push((EndpointId::HOME, None, tagged));
            }
        }
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            buf: &mut BytesMut,
        ) -> Option<Transmit> {
            if self.out.is_empty() {
                return None;
            }
            let (endpoint, to, bytes) = self.out.remove(0);
            buf.extend_from_slice(&bytes);
            Some(Transmit::new(to, bytes.len()).via(endpoint))
        }
    }

    struct RelayAcceptor(SocketAddr);

    impl Driven for RelayAcceptor {}

    impl DatagramAcceptor for RelayAcceptor {
        fn accept(
            &mut self,
            _: &mut Context,
            _: SocketAddr,
            _: &[u8],
            _: &mut BytesMut,
        ) -> Admission {
            Admission::Start(Admit {
                session: Box::new(Relay {
                    server: self.0,
                    out: Vec::new(),
                }),
                own_socket: false,
                bind: vec!["127.0.0.1:0".parse().unwrap()],
            })
        }
    }

    #[test]
    fn an_extra_endpoint_carries_a_sessions_second_conversation() {
        let mut reactor = test_reactor();
        let server = client();
        let addr = reactor
            .bind_udp(
                "127.0.0.1:0".parse().unwrap(),
                Box::new(RelayAcceptor(server.local_addr().unwrap())),
            )
            .unwrap();
        let c = client();
        c.send_to(b"ping", addr).unwrap();
        for _ in 0..5 {
            reactor.turn().unwrap();
            if reactor.stats().datagrams_out == 1 {
                break;
            }
        }
        let mut buf = [0u8; 64];
        let (n, relay) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"0ping", "left by endpoint 1, came from 0");
        assert_ne!(relay, addr, "endpoint 1 is a socket of its own");
        server.send_to(b"pong", relay).unwrap();
        for _ in 0..5 {
            reactor.turn().unwrap();
            if reactor.stats().datagrams_out == 2 {
                break;
            }
        }
        assert_eq!(recv(&c), b"1pong", "arrived on endpoint 1, left by 0");
    }

    /// An acceptor whose deadline its sessions move (state they share, as
    /// hello's registry is): the reactor re-reads it after a call into a
    /// session, fires it once, and not again.
    struct Shared {
        due: Rc<Cell<Option<Instant>>>,
        fired: Rc<Cell<u32>>,
    }

    impl Driven for Shared {
        fn poll_timeout(&self) -> Option<Instant> {
            self.due.get()
        }
        fn handle_timeout(&mut self, cx: &mut Context) {
            if self.due.get().is_some_and(|at| at <= cx.now) {
                self.due.set(None);
                self.fired.set(self.fired.get() + 1);
            }
        }
    }

    /// On input it sets a timer of its own; when that fires, it moves the
    /// acceptor's deadline: a change outside any call into the acceptor.
    struct Arms {
        acceptor_due: Rc<Cell<Option<Instant>>>,
        own: Option<Instant>,
    }

    impl Driven for Arms {
        fn poll_timeout(&self) -> Option<Instant> {
            self.own
        }
        fn handle_timeout(&mut self, cx: &mut Context) {
            if self.own.take().is_some() {
                self.acceptor_due.set(Some(cx.now));
            }
        }
    }

    impl DatagramSession for Arms {
        fn handle_input(&mut self, cx: &mut Context, _: DatagramInput<'_>) {
            self.own = Some(cx.now);
        }
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            _: &mut BytesMut,
        ) -> Option<Transmit> {
            None
        }
    }

    impl DatagramAcceptor for Shared {
        fn sessions_move_deadline(&self) -> bool {
            true
        }

        fn accept(
            &mut self,
            _: &mut Context,
            _: SocketAddr,
            _: &[u8],
            _: &mut BytesMut,
        ) -> Admission {
            Admission::shared(Box::new(Arms {
                acceptor_due: self.due.clone(),
                own: None,
            }))
        }
    }

    #[test]
    fn an_acceptors_deadline_moved_by_its_session_fires_once() {
        let mut reactor = test_reactor();
        let (due, fired) = (Rc::new(Cell::new(None)), Rc::new(Cell::new(0)));
        let addr = reactor
            .bind_udp(
                "127.0.0.1:0".parse().unwrap(),
                Box::new(Shared {
                    due: due.clone(),
                    fired: fired.clone(),
                }),
            )
            .unwrap();
        let c = client();
        // Admitted, delivered to the new session; its own timer then
        // moves the acceptor's deadline.
        c.send_to(b"x", addr).unwrap();
        for _ in 0..5 {
            reactor.turn().unwrap();
            if fired.get() > 0 {
                break;
            }
        }
        assert_eq!(fired.get(), 1);
        let acceptor = reactor
            .entries
            .iter()
            .find(|(_, e)| matches!(e.role, Role::DatagramAcceptor(_)))
            .map(|(_, e)| e.slot.deadline());
        assert_eq!(
            acceptor,
            Some(None),
            "disarmed after it fired: no second pop"
        );
    }

    /// Parts (a TUN stack's connections): on its first datagram it arms
    /// part 1 at +400 ms, part 2 at +300 ms and part 3 at +200 ms; on its
    /// second it re-arms part 1 earlier, 10 ms after that datagram, and
    /// forgets part 2. (The margins keep the order whatever the load on
    /// the machine running the test.) Every firing is recorded with its
    /// time.
    struct Parted {
        base: Option<Instant>,
        datagrams: u32,
        reports: std::collections::VecDeque<(PartId, Option<Instant>)>,
        fired: Rc<core::cell::RefCell<Vec<(PartId, Instant)>>>,
    }

    impl Driven for Parted {
        fn poll_part_timeout(&mut self) -> Option<(PartId, Option<Instant>)> {
            self.reports.pop_front()
        }
        fn handle_part_timeout(&mut self, cx: &mut Context, part: PartId) {
            self.fired.borrow_mut().push((part, cx.now));
        }
    }

    impl DatagramSession for Parted {
        fn handle_input(&mut self, cx: &mut Context, _: DatagramInput<'_>) {
            let base = *self.base.get_or_insert(cx.now);
            let ms = |n| Some(base + Duration::from_millis(n));
            self.datagrams += 1;
            match self.datagrams {
                1 => self.reports.extend([
                    (PartId(1), ms(400)),
                    (PartId(2), ms(300)),
                    (PartId(3), ms(200)),
                ]),
                2 => self.reports.extend([
                    (PartId(1), Some(cx.now + Duration::from_millis(10))),
                    (PartId(2), None),
                ]),
                _ => {}
            }
        }
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            _: &mut BytesMut,
        ) -> Option<Transmit> {
            None
        }
    }

    struct PartedAcceptor(Rc<core::cell::RefCell<Vec<(PartId, Instant)>>>);

    impl Driven for PartedAcceptor {}

    impl DatagramAcceptor for PartedAcceptor {
        fn accept(
            &mut self,
            _: &mut Context,
            _: SocketAddr,
            _: &[u8],
            _: &mut BytesMut,
        ) -> Admission {
            Admission::shared(Box::new(Parted {
                base: None,
                datagrams: 0,
                reports: std::collections::VecDeque::new(),
                fired: self.0.clone(),
            }))
        }
    }

    #[test]
    fn only_the_current_arming_of_each_part_fires_in_order_and_none_after_forget() {
        let mut reactor = test_reactor();
        let fired = Rc::new(core::cell::RefCell::new(Vec::new()));
        let addr = reactor
            .bind_udp(
                "127.0.0.1:0".parse().unwrap(),
                Box::new(PartedAcceptor(fired.clone())),
            )
            .unwrap();
        let c = client();
        c.send_to(b"arm", addr).unwrap();
        // Both datagrams in (turns are bounded: Tick wakes every 50 ms).
        for _ in 0..20 {
            reactor.turn().unwrap();
            if reactor.stats().datagrams_in >= 1 {
                break;
            }
        }
        c.send_to(b"rearm", addr).unwrap();
        for _ in 0..20 {
            reactor.turn().unwrap();
            if reactor.stats().datagrams_in >= 2 {
                break;
            }
        }
        assert_eq!(reactor.stats().datagrams_in, 2);
        // Past every deadline ever armed (+400 ms), with a margin; the
        // turns are bounded by Tick's 50 ms wake-ups.
        let start = reactor.now;
        while reactor.now < start + Duration::from_millis(500) {
            reactor.turn().unwrap();
        }
        let parts: Vec<PartId> = fired.borrow().iter().map(|f| f.0).collect();
        assert_eq!(
            parts,
            [PartId(1), PartId(3)],
            "part 1 once (at its new, earlier arming), part 3 after it, part 2 never"
        );
        let times: Vec<Instant> = fired.borrow().iter().map(|f| f.1).collect();
        assert!(times[0] <= times[1], "{times:?}");
    }

    /// A job whose deadline the test moves, calling `flush` as the reactor
    /// does after any call into it; counts the calls that find it due.
    struct Movable {
        due: Rc<Cell<Option<Instant>>>,
        fired: Rc<Cell<u32>>,
        calls: Rc<Cell<u32>>,
    }

    impl Driven for Movable {
        fn poll_timeout(&self) -> Option<Instant> {
            self.due.get()
        }
        fn handle_timeout(&mut self, cx: &mut Context) {
            self.calls.set(self.calls.get() + 1);
            if self.due.get().is_some_and(|at| at <= cx.now) {
                self.due.set(None);
                self.fired.set(self.fired.get() + 1);
            }
        }
    }

    /// A deadline that moves later with every call (a request answered, the
    /// next one's timeout further out) keeps its first heap entry; when that
    /// pops, the session is not called, and its deadline of now is armed.
    /// Virtual time: the test sets the reactor's `now` and fires.
    #[test]
    fn a_deadline_moved_later_keeps_its_heap_entry_and_is_rearmed_when_that_pops() {
        let ms = Instant::from_millis;
        let mut reactor = Reactor::new(ReactorConfig::default()).unwrap();
        let (due, fired, calls) = (
            Rc::new(Cell::new(Some(ms(10)))),
            Rc::new(Cell::new(0)),
            Rc::new(Cell::new(0)),
        );
        let key = reactor.add_detached(Box::new(Movable {
            due: due.clone(),
            fired: fired.clone(),
            calls: calls.clone(),
        }));
        let heap = reactor.pending_timers();
        for i in 1..=100 {
            due.set(Some(ms(10 + i)));
            reactor.flush(key);
        }
        assert_eq!(
            reactor.pending_timers(),
            heap,
            "no push for a later deadline"
        );
        assert_eq!(reactor.entries[key].slot.deadline(), Some(ms(10)));
        reactor.now = ms(10);
        reactor.fire_timers();
        assert_eq!(calls.get(), 0, "not called before its deadline");
        assert_eq!(reactor.entries[key].slot.deadline(), Some(ms(110)));
        reactor.now = ms(110);
        reactor.fire_timers();
        assert_eq!((calls.get(), fired.get()), (1, 1));
        // An earlier deadline is armed at once.
        due.set(Some(ms(300)));
        reactor.flush(key);
        due.set(Some(ms(200)));
        reactor.flush(key);
        assert_eq!(reactor.entries[key].slot.deadline(), Some(ms(200)));
        reactor.now = ms(200);
        reactor.fire_timers();
        assert_eq!(fired.get(), 2);
    }

    /// Remembers the kernel stamp of each datagram it receives.
    struct Stamps {
        wants: bool,
        seen: Rc<core::cell::RefCell<Vec<Option<u64>>>>,
    }

    impl Driven for Stamps {}

    impl DatagramSession for Stamps {
        fn handle_input(&mut self, _: &mut Context, input: DatagramInput<'_>) {
            if let DatagramInput::Datagram { kernel_ns, .. } = input {
                self.seen.borrow_mut().push(kernel_ns);
            }
        }
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            _: &mut BytesMut,
        ) -> Option<Transmit> {
            None
        }
        fn wants_receive_timestamps(&self) -> bool {
            self.wants
        }
    }

    /// A client socket has the kernel stamp its datagrams only for a session
    /// that reads the stamps, and its entry knows the peer it is connected
    /// to (datagrams to it leave by `send`).
    #[test]
    fn receive_timestamps_only_for_a_session_that_wants_them() {
        let mut reactor = test_reactor();
        let server = client();
        let server_addr = server.local_addr().unwrap();
        let mut seen = Vec::new();
        for wants in [false, true] {
            let log = Rc::new(core::cell::RefCell::new(Vec::new()));
            let socket = udp_client_socket(server_addr).unwrap();
            let local = socket.local_addr().unwrap();
            let key = reactor
                .add_udp_session(
                    socket,
                    Some(server_addr),
                    Box::new(Stamps {
                        wants,
                        seen: log.clone(),
                    }),
                )
                .unwrap();
            let connected = reactor.entries[key].udp.as_ref().and_then(|u| u.connected);
            assert_eq!(connected, Some(server_addr));
            server.send_to(b"x", local).unwrap();
            for _ in 0..10 {
                reactor.turn().unwrap();
                if !log.borrow().is_empty() {
                    break;
                }
            }
            seen.push(log.borrow().first().copied().flatten().is_some());
        }
        assert_eq!(seen, [false, true], "stamped: without asking, asking");
    }
}
