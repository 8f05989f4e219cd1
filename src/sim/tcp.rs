//! Engine ↔ engine: two TCP [`Tcb`]s talking over seeded impaired links,
//! in virtual time.
//!
//! Owns a world of its own, smaller than [`super::World`] because a
//! [`Tcb`] is not a datagram session: a client `Tcb` (active open at time
//! zero), a server that accepts the first SYN it hears (before that, any
//! other segment is answered by [`reset_for`], a closed port), one
//! [`Impairment`] per direction (the proxy's seeded model: loss,
//! duplication, reordering, latency, a serializing bottleneck with a
//! tail-drop queue), an application on each side that writes a seeded byte
//! pattern and checks every byte it reads against it, and the virtual
//! clock, which jumps to the earliest link release or `Tcb` deadline.
//! Every segment crosses as bytes: [`Tcb::poll_segment`] writes it, the
//! carrier here fills the checksum over an IPv4 pseudo-header, and the
//! other side verifies it and parses it back with [`Packet`] and [`Repr`],
//! so the codec is on the path of every byte.
//!
//! It must never read a clock, sleep, or touch a socket or a file: the same
//! [`Config`] replays the same run exactly, so a failing seed is a bug
//! report. It never hangs: a run that has not ended within
//! [`Config::max_steps`] events or [`Config::time_limit`] of virtual time,
//! or that goes quiet with a connection still open, ends with an
//! [`Outcome`] saying so, and [`Report::ok`] is false. It never panics on
//! what an engine emits: a segment that does not parse is an
//! [`Outcome::Malformed`].
//!
//! # The turn
//! One step is one event, earliest first: a segment released by a link
//! (the client-to-server link first on a tie), else a deadline (the
//! client's first on a tie). After the event, each side's application
//! reads what arrived, writes what fits ([`Tcb::send_room`]) and closes
//! once it has written everything and the connection is synchronized; then
//! [`Tcb::poll_segment`] runs until `None` and each segment is pushed onto
//! its link. A slow reader ([`Config::read_rate`]) also wakes on its own
//! to read. The run ends when both `Tcb`s are Closed or in TIME-WAIT with
//! nothing left to read ([`Outcome::Done`]), or when one fails.
//!
//! # What it does not model
//! No IP layer (no fragmentation, no ICMP), no corruption (a checksum
//! failure would be the engine's or the codec's bug, and ends the run), and
//! no application that stops reading altogether.

use super::report::{Dir, Role};
use crate::proto::proxy::impair::{
    ConfigError, Counters as LinkCounters, ImpairConfig, Impairment,
};
use crate::proto::tcp::conn::{
    self, Counters, Error as TcpError, MAX_SEGMENT_OVERHEAD, State, Tcb, reset_for,
};
use crate::rng::mix;
use crate::time::{Duration, Instant, duration_nanos};
use crate::wire::tcp::{Control, Packet, Repr};
use bytes::Bytes;
use core::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// The client's address: a label (the TEST-NET-1 block the tunstack uses).
pub const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 40_000);

/// The server's address, where it accepts the first SYN.
pub const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 7000);

/// Bytes an IPv4 header adds to every segment on the wire: the bottleneck
/// serializes it too, so a rate means what it would on a real link.
pub const IP_HEADER_LEN: usize = 20;

/// Segments one side may emit after one event before it is called a flood:
/// a thousand times what the default 1 MiB buffers allow in flight (about
/// 720 full segments), so only a `poll_segment` that never returns `None`
/// reaches it.
pub const MAX_SEGMENTS_PER_EVENT: usize = 1 << 20;

/// The default bound on events: a 4 MiB transfer takes about 4 000 (one
/// per segment each way, ACKs being delayed); a livelock reaches this in
/// tens of seconds of wall time in a debug build, rather than never.
pub const DEFAULT_MAX_STEPS: u64 = 10_000_000;

/// The default bound on virtual time: longer than the engine's default
/// user timeout (5 minutes), so an engine that gives up does so before the
/// simulator does, and the run reports the engine's error, not a stall.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(3600);

/// Largest chunk the application writes per `send` call: what a reader of
/// a file would hand over at once.
const APP_CHUNK: usize = 64 * 1024;

/// Bytes a slow reader may save up and read at once: small against any
/// receive buffer a test gives, so the window closes, and the reader wakes
/// once per this many bytes (when the data is there).
const READ_BURST: u64 = 4096;

/// The room `poll_segment` is given: any header and the largest MSS a
/// 16-bit option can carry.
const SEGMENT_BUFFER: usize = MAX_SEGMENT_OVERHEAD + u16::MAX as usize;

/// How a run is set up. [`Config::new`] gives perfect links, the engine's
/// default configuration on both sides, nothing to send, and the default
/// bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The run's seed: each link's generator, the pattern of each
    /// direction's bytes and (unless [`Config::iss`] says) the initial
    /// sequence numbers derive from it.
    pub seed: u64,
    /// The client-to-server link (its `seed` is ignored).
    pub up: ImpairConfig,
    /// The server-to-client link (its `seed` is ignored).
    pub down: ImpairConfig,
    /// The client engine's configuration.
    pub client: conn::Config,
    /// The server engine's configuration.
    pub server: conn::Config,
    /// Bytes the client sends (then closes).
    pub upload: u64,
    /// Bytes the server sends (then closes).
    pub download: u64,
    /// The client's and the server's initial sequence numbers; `None`:
    /// drawn from the seed.
    pub iss: Option<(u32, u32)>,
    /// Events after which the run ends as [`Outcome::StepLimit`].
    pub max_steps: u64,
    /// Virtual time after which the run ends as [`Outcome::TimeLimit`].
    pub time_limit: Duration,
    /// Bytes per second each application reads at most (a slow reader, as
    /// `curl --limit-rate`, so the receive window can close); `None` reads
    /// everything as soon as it arrives.
    pub read_rate: Option<u64>,
    /// Keep one line per segment a link releases in [`Report::trace`].
    pub trace: bool,
}

impl Config {
    /// `link` both ways (each direction draws its own decisions), `tcp` on
    /// both sides, nothing to send yet.
    pub fn new(seed: u64, link: ImpairConfig, tcp: &conn::Config) -> Self {
        Self {
            seed,
            up: link,
            down: link,
            client: tcp.clone(),
            server: tcp.clone(),
            upload: 0,
            download: 0,
            iss: None,
            max_steps: DEFAULT_MAX_STEPS,
            time_limit: DEFAULT_TIME_LIMIT,
            read_rate: None,
            trace: false,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both connections reached Closed or TIME-WAIT without an error, and
    /// both applications read all they were given.
    Done,
    /// A connection failed (reset, refused, timed out).
    Failed {
        /// Whose.
        role: Role,
        /// Why.
        error: TcpError,
    },
    /// Nothing in flight, no deadline, and a connection still open.
    Stalled,
    /// [`Config::max_steps`] events handled without an end: a livelock.
    StepLimit,
    /// [`Config::time_limit`] reached without an end.
    TimeLimit,
    /// A segment that failed its checksum or did not parse.
    Malformed {
        /// The link it travelled.
        dir: Dir,
    },
    /// One side kept emitting segments after one event
    /// ([`MAX_SEGMENTS_PER_EVENT`]).
    Flood {
        /// Which side.
        role: Role,
    },
}

/// One direction's data, as its receiver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes the sender was to send.
    pub len: u64,
    /// Bytes the sender's engine took ([`Tcb::send`]).
    pub queued: u64,
    /// Bytes the receiver read.
    pub delivered: u64,
    /// Where the first wrong byte was, if any was (reading past `len`
    /// counts as wrong).
    pub first_mismatch: Option<u64>,
    /// The receiver saw the FIN after the last byte.
    pub fin: bool,
    /// When the sender's engine took the first byte.
    pub started: Option<Instant>,
    /// When the receiver read the last byte.
    pub done: Option<Instant>,
}

impl Transfer {
    fn new(len: u64) -> Self {
        Self {
            len,
            queued: 0,
            delivered: 0,
            first_mismatch: None,
            fin: false,
            started: None,
            done: None,
        }
    }

    /// Every byte arrived, in order, unaltered, then the FIN.
    pub fn exact(&self) -> bool {
        self.delivered == self.len && self.first_mismatch.is_none() && self.fin
    }

    /// Payload bytes per second from the first byte taken to the last byte
    /// read; `None` for an empty or unfinished transfer.
    pub fn goodput(&self) -> Option<f64> {
        let (started, done) = (self.started?, self.done?);
        let secs = done.saturating_since(started).as_secs_f64();
        #[expect(
            clippy::cast_precision_loss,
            reason = "a byte count under 2^53 is exact in an f64"
        )]
        let bytes = self.len as f64;
        (secs > 0.0).then(|| bytes / secs)
    }
}

/// What a run did. Always returned (a failed run too), so a failing seed
/// can be read whole.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The seed it ran with.
    pub seed: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Client to server.
    pub upload: Transfer,
    /// Server to client.
    pub download: Transfer,
    /// Virtual time when it ended.
    pub ended_at: Instant,
    /// Events handled.
    pub steps: u64,
    /// The client's state at the end.
    pub client_state: State,
    /// The server's state at the end; `None` if no SYN ever reached it.
    pub server_state: Option<State>,
    /// The client engine's counters.
    pub client: Counters,
    /// The server engine's counters (zero if it never existed).
    pub server: Counters,
    /// What the client-to-server link did.
    pub up: LinkCounters,
    /// What the server-to-client link did.
    pub down: LinkCounters,
    /// RSTs the server sent before it had a connection (a closed port).
    pub stray_resets: u64,
    /// One line per released segment, when [`Config::trace`] was on.
    pub trace: Vec<String>,
}

impl Report {
    /// It ended cleanly and both directions arrived byte-exact.
    pub fn ok(&self) -> bool {
        self.outcome == Outcome::Done && self.upload.exact() && self.download.exact()
    }
}

impl fmt::Display for Report {
    /// One line: the seed, how it ended, what arrived, the retransmissions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} {:?} at {} in {} steps: up {}/{} fin {} mismatch {:?}, down {}/{} fin {} \
             mismatch {:?}; client {:?} rtx {} rto {}, server {:?} rtx {} rto {}",
            self.seed,
            self.outcome,
            self.ended_at,
            self.steps,
            self.upload.delivered,
            self.upload.len,
            self.upload.fin,
            self.upload.first_mismatch,
            self.download.delivered,
            self.download.len,
            self.download.fin,
            self.download.first_mismatch,
            self.client_state,
            self.client.retransmits,
            self.client.rto_expiries,
            self.server_state,
            self.server.retransmits,
            self.server.rto_expiries,
        )
    }
}

/// The Mathis et al. bound on a Reno flow's goodput, bytes per second:
/// `MSS / RTT · sqrt(3/2) / sqrt(p)` (sqrt(3/2) ≈ 1.22), for random loss
/// with probability `p` per segment.
pub fn mathis_bound(mss: u16, rtt: Duration, p: f64) -> f64 {
    f64::from(mss) / rtt.as_secs_f64() * 1.5_f64.sqrt() / p.sqrt()
}

/// Block `block` (eight bytes) of the pattern keyed by `key`: output
/// `block` of the generator seeded with `key` ([`mix`]), so no two
/// positions within 2^67 bytes repeat a run, and a byte delivered at the
/// wrong offset shows.
fn pattern_word(key: u64, block: u64) -> [u8; 8] {
    mix(key, block).to_le_bytes()
}

/// Fills `out` with the pattern keyed by `key` from `offset` on.
fn fill_pattern(key: u64, offset: u64, out: &mut [u8]) {
    let mut word = pattern_word(key, offset / 8);
    for (pos, b) in (offset..).zip(out.iter_mut()) {
        if pos.is_multiple_of(8) {
            word = pattern_word(key, pos / 8);
        }
        *b = word[(pos % 8) as usize];
    }
}

/// The first position in `data` that differs from the pattern keyed by
/// `key` from `offset` on.
fn check_pattern(key: u64, offset: u64, data: &[u8]) -> Option<u64> {
    let mut word = pattern_word(key, offset / 8);
    for (pos, &b) in (offset..).zip(data.iter()) {
        if pos.is_multiple_of(8) {
            word = pattern_word(key, pos / 8);
        }
        if b != word[(pos % 8) as usize] {
            return Some(pos);
        }
    }
    None
}

/// A slow reader's allowance: a token bucket of [`READ_BURST`] bytes
/// filling at `rate` bytes per second.
#[derive(Clone, Copy, Debug)]
struct Pace {
    rate: u64,
    tokens: u64,
    /// The instant the tokens were counted up to.
    at: Instant,
}

impl Pace {
    fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            tokens: READ_BURST,
            at: Instant::ZERO,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = u128::from(duration_nanos(now.saturating_since(self.at)));
        let add = elapsed * u128::from(self.rate) / 1_000_000_000;
        let add = u64::try_from(add).unwrap_or(u64::MAX);
        if add == 0 {
            return;
        }
        self.tokens = self.tokens.saturating_add(add).min(READ_BURST);
        self.at = if self.tokens == READ_BURST {
            now
        } else {
            self.at + self.time_for(add)
        };
    }

    /// How long `n` tokens take to come.
    fn time_for(&self, n: u64) -> Duration {
        let ns = (u128::from(n) * 1_000_000_000).div_ceil(u128::from(self.rate));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// When `want` tokens (at most a burst) will be there.
    fn ready_at(&self, want: u64) -> Instant {
        let missing = want.min(READ_BURST).saturating_sub(self.tokens);
        self.at + self.time_for(missing)
    }
}

/// One side: its engine (the server's appears with the first SYN), its
/// application's progress, and the pattern keys of what it sends and
/// receives.
struct Side {
    role: Role,
    addr: SocketAddrV4,
    peer: SocketAddrV4,
    tcb: Option<Tcb>,
    /// What this side sends: the receiver's record lives in the other side.
    send_key: u64,
    /// Bytes to send.
    send_len: u64,
    /// Bytes handed to the engine.
    queued: u64,
    started: Option<Instant>,
    closed: bool,
    /// What this side receives.
    recv: Transfer,
    recv_key: u64,
    /// A slow reader's allowance; `None` reads everything.
    pace: Option<Pace>,
    /// When a slow reader, with data waiting, reads next.
    wake: Option<Instant>,
}

impl Side {
    /// The application's turn: read everything (a slow reader: what its
    /// allowance lets it), write what fits, close when all is written and
    /// the connection is synchronized (a close in SYN-SENT would, by RFC
    /// 9293, delete the connection).
    fn app(&mut self, now: Instant, chunk: &mut [u8]) {
        let Some(tcb) = self.tcb.as_mut() else {
            return;
        };
        if let Some(p) = self.pace.as_mut() {
            p.refill(now);
        }
        self.wake = None;
        // Each `received` is one contiguous run; a wrapped buffer has two.
        // The bound only stops an engine that never empties it.
        for _ in 0..1024 {
            let data = tcb.received();
            let allowed = self.pace.map_or(usize::MAX, |p| {
                usize::try_from(p.tokens).unwrap_or(usize::MAX)
            });
            if data.is_empty() {
                break;
            }
            if allowed == 0 {
                let waiting = data.len() as u64;
                self.wake = self.pace.map(|p| p.ready_at(waiting));
                break;
            }
            let data = &data[..data.len().min(allowed)];
            let n = data.len();
            if let Some(p) = self.pace.as_mut() {
                p.tokens -= n as u64;
            }
            if self.recv.first_mismatch.is_none() {
                let in_range = self.recv.len.saturating_sub(self.recv.delivered);
                let checked = &data[..n.min(usize::try_from(in_range).unwrap_or(usize::MAX))];
                self.recv.first_mismatch =
                    check_pattern(self.recv_key, self.recv.delivered, checked).or_else(|| {
                        // More than was sent is wrong from the first extra byte.
                        (checked.len() < n).then_some(self.recv.len)
                    });
            }
            self.recv.delivered += n as u64;
            tcb.consume(n);
        }
        if self.recv.done.is_none() && self.recv.len > 0 && self.recv.delivered >= self.recv.len {
            self.recv.done = Some(now);
        }
        if tcb.fin_received() {
            self.recv.fin = true;
            if self.recv.done.is_none() {
                self.recv.done = Some(now);
            }
        }

        while self.queued < self.send_len {
            let left = usize::try_from(self.send_len - self.queued).unwrap_or(usize::MAX);
            let n = tcb.send_room().min(left).min(chunk.len());
            if n == 0 {
                break;
            }
            fill_pattern(self.send_key, self.queued, &mut chunk[..n]);
            let taken = tcb.send(&chunk[..n]);
            if taken == 0 {
                break;
            }
            self.started.get_or_insert(now);
            self.queued += taken as u64;
        }
        if !self.closed
            && self.queued == self.send_len
            && matches!(tcb.state(), State::Established | State::CloseWait)
        {
            tcb.close();
            self.closed = true;
        }
    }

    /// The connection is over and the application has read all of it (a
    /// slow reader may still be reading in TIME-WAIT).
    fn ended(&self) -> bool {
        self.tcb.as_ref().is_some_and(|t| {
            matches!(t.state(), State::Closed | State::TimeWait) && t.received().is_empty()
        })
    }
}

/// Runs one connection as `config` says and reports how it went.
///
/// # Errors
/// A link configuration the impairment model refuses.
pub fn run(config: &Config) -> Result<Report, ConfigError> {
    Ok(Sim::new(config)?.run())
}

/// The world while it runs.
struct Sim<'c> {
    config: &'c Config,
    now: Instant,
    steps: u64,
    up: Impairment<Bytes>,
    down: Impairment<Bytes>,
    client: Side,
    server: Side,
    /// The server's ISS, used when the first SYN arrives.
    server_iss: u32,
    stray_resets: u64,
    trace: Vec<String>,
    segment: Vec<u8>,
    chunk: Vec<u8>,
}

/// What happens next.
#[derive(Clone, Copy, Debug)]
enum Event {
    Release(Dir),
    Timer(Role),
    /// A slow reader's next read.
    Read(Role),
}

impl<'c> Sim<'c> {
    fn new(config: &'c Config) -> Result<Self, ConfigError> {
        let link = |mut c: ImpairConfig, stream| {
            c.seed = mix(config.seed, stream);
            Impairment::new(c)
        };
        let up = link(config.up, 1)?;
        let down = link(config.down, 2)?;
        let (up_key, down_key) = (mix(config.seed, 3), mix(config.seed, 4));
        let (client_iss, server_iss) = config.iss.unwrap_or_else(|| {
            #[expect(clippy::cast_possible_truncation, reason = "any 32 bits will do")]
            let iss = |s| mix(config.seed, s) as u32;
            (iss(5), iss(6))
        });
        let client_tcb = Tcb::connect(
            &config.client,
            SocketAddr::V4(CLIENT),
            SocketAddr::V4(SERVER),
            client_iss,
            Instant::ZERO,
        );
        Ok(Self {
            config,
            now: Instant::ZERO,
            steps: 0,
            up,
            down,
            client: Side {
                role: Role::Client,
                addr: CLIENT,
                peer: SERVER,
                tcb: Some(client_tcb),
                send_key: up_key,
                send_len: config.upload,
                queued: 0,
                started: None,
                closed: false,
                recv: Transfer::new(config.download),
                recv_key: down_key,
                pace: config.read_rate.map(Pace::new),
                wake: None,
            },
            server: Side {
                role: Role::Server,
                addr: SERVER,
                peer: CLIENT,
                tcb: None,
                send_key: down_key,
                send_len: config.download,
                queued: 0,
                started: None,
                closed: false,
                recv: Transfer::new(config.upload),
                recv_key: up_key,
                pace: config.read_rate.map(Pace::new),
                wake: None,
            },
            server_iss,
            stray_resets: 0,
            trace: Vec::new(),
            segment: vec![0; SEGMENT_BUFFER],
            chunk: vec![0; APP_CHUNK],
        })
    }

    fn run(mut self) -> Report {
        // The client's SYN is ready at time zero.
        let outcome = match self.pump() {
            Some(o) => o,
            None => self.events(),
        };
        self.report(outcome)
    }

    /// The event loop, until an end.
    fn events(&mut self) -> Outcome {
        loop {
            if let Some(o) = self.failed() {
                return o;
            }
            if self.client.ended() && self.server.ended() {
                return Outcome::Done;
            }
            if self.steps >= self.config.max_steps {
                return Outcome::StepLimit;
            }
            let Some((at, event)) = self.next_event() else {
                return Outcome::Stalled;
            };
            if at > Instant::ZERO.saturating_add(self.config.time_limit) {
                return Outcome::TimeLimit;
            }
            self.now = self.now.max(at);
            self.steps += 1;
            let delivered = match event {
                Event::Release(dir) => self.release(dir),
                Event::Timer(role) => {
                    let now = self.now;
                    if let Some(tcb) = self.side(role).tcb.as_mut() {
                        tcb.handle_timeout(now);
                    }
                    None
                }
                // The read itself happens in `pump`, as every turn's.
                Event::Read(role) => {
                    self.side(role).wake = None;
                    None
                }
            };
            if let Some(o) = delivered.or_else(|| self.pump()) {
                return o;
            }
        }
    }

    /// The earliest event: a link release (up first on a tie), else a
    /// deadline (the client's first on a tie), else a slow reader's read.
    fn next_event(&self) -> Option<(Instant, Event)> {
        let candidates = [
            (self.up.next_release(), Event::Release(Dir::Up)),
            (self.down.next_release(), Event::Release(Dir::Down)),
            (
                self.client.tcb.as_ref().and_then(Tcb::poll_timeout),
                Event::Timer(Role::Client),
            ),
            (
                self.server.tcb.as_ref().and_then(Tcb::poll_timeout),
                Event::Timer(Role::Server),
            ),
            (self.client.wake, Event::Read(Role::Client)),
            (self.server.wake, Event::Read(Role::Server)),
        ];
        let mut best: Option<(Instant, Event)> = None;
        for (at, event) in candidates {
            if let Some(at) = at
                && best.is_none_or(|(b, _)| at < b)
            {
                best = Some((at, event));
            }
        }
        best
    }

    fn side(&mut self, role: Role) -> &mut Side {
        match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        }
    }

    fn failed(&self) -> Option<Outcome> {
        [&self.client, &self.server].into_iter().find_map(|s| {
            let error = s.tcb.as_ref()?.error()?;
            Some(Outcome::Failed {
                role: s.role,
                error,
            })
        })
    }

    /// Hands the next segment `dir` releases to its receiver.
    fn release(&mut self, dir: Dir) -> Option<Outcome> {
        let now = self.now;
        let link = match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        };
        let bytes = link.poll_release(now)?;
        let role = match dir {
            Dir::Up => Role::Server,
            Dir::Down => Role::Client,
        };
        let side = match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        };
        let src = *side.peer.ip();
        let dst = *side.addr.ip();
        let repr = match Packet::new_checked(&bytes[..]) {
            Ok(p) if p.verify_checksum(src, dst) => Repr::parse(&p).ok(),
            _ => None,
        };
        let Some(repr) = repr else {
            return Some(Outcome::Malformed { dir });
        };
        if self.config.trace {
            // The options the engine's recovery and RTT rest on, which
            // `Repr`'s one line leaves out.
            let sack: Vec<_> = repr.sack_ranges.iter().flatten().collect();
            self.trace.push(format!(
                "{now} {dir:?} {repr} ts {:?} sack {sack:?}",
                repr.timestamp
            ));
        }
        if repr.src_port != side.peer.port() || repr.dst_port != side.addr.port() {
            return Some(Outcome::Malformed { dir });
        }
        if let Some(tcb) = side.tcb.as_mut() {
            tcb.handle_segment(now, &repr);
            return None;
        }
        // The server before its first SYN: a listening port.
        if repr.control == Control::Syn && repr.ack_number.is_none() {
            side.tcb = Some(Tcb::accept(
                &self.config.server,
                SocketAddr::V4(side.addr),
                SocketAddr::V4(side.peer),
                &repr,
                self.server_iss,
                now,
            ));
        } else if let Some(n) = reset_for(&repr, &mut self.segment) {
            self.stray_resets += 1;
            return self.emit(Role::Server, n);
        }
        None
    }

    /// Each side's application, then each side's segments onto its link.
    fn pump(&mut self) -> Option<Outcome> {
        let now = self.now;
        for role in [Role::Client, Role::Server] {
            let mut chunk = core::mem::take(&mut self.chunk);
            self.side(role).app(now, &mut chunk);
            self.chunk = chunk;
            let mut emitted = 0;
            loop {
                let side = match role {
                    Role::Client => &mut self.client,
                    Role::Server => &mut self.server,
                };
                let Some(tcb) = side.tcb.as_mut() else {
                    break;
                };
                let Some(n) = tcb.poll_segment(now, &mut self.segment) else {
                    break;
                };
                if let Some(o) = self.emit(role, n) {
                    return Some(o);
                }
                emitted += 1;
                if emitted >= MAX_SEGMENTS_PER_EVENT {
                    return Some(Outcome::Flood { role });
                }
            }
        }
        None
    }

    /// Checksums the `n` bytes in the segment buffer as `role` sent them,
    /// checks they parse, and offers them to `role`'s outgoing link.
    fn emit(&mut self, role: Role, n: usize) -> Option<Outcome> {
        let (from, to, dir) = match role {
            Role::Client => (CLIENT, SERVER, Dir::Up),
            Role::Server => (SERVER, CLIENT, Dir::Down),
        };
        let Some(bytes) = self.segment.get_mut(..n) else {
            return Some(Outcome::Malformed { dir });
        };
        match Packet::new_checked(&mut *bytes) {
            Ok(mut p) => p.fill_checksum(*from.ip(), *to.ip()),
            Err(_) => return Some(Outcome::Malformed { dir }),
        }
        // Parsed here too, so a segment the link then loses is checked.
        let parsed = Packet::new_checked(&bytes[..])
            .ok()
            .and_then(|p| Repr::parse(&p).ok());
        if parsed.is_none() {
            return Some(Outcome::Malformed { dir });
        }
        let now = self.now;
        let link = match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        };
        link.push(now, Bytes::copy_from_slice(bytes), n + IP_HEADER_LEN);
        None
    }

    fn report(self, outcome: Outcome) -> Report {
        let transfer = |sender: &Side, receiver: &Side| Transfer {
            queued: sender.queued,
            started: sender.started,
            ..receiver.recv
        };
        let tcb = |s: &Side| s.tcb.as_ref().map(|t| (t.state(), t.counters()));
        let client = tcb(&self.client);
        let server = tcb(&self.server);
        Report {
            seed: self.config.seed,
            outcome,
            upload: transfer(&self.client, &self.server),
            download: transfer(&self.server, &self.client),
            ended_at: self.now,
            steps: self.steps,
            client_state: client.map_or(State::Closed, |c| c.0),
            server_state: server.map(|s| s.0),
            client: client.map(|c| c.1).unwrap_or_default(),
            server: server.map(|s| s.1).unwrap_or_default(),
            up: self.up.counters(),
            down: self.down.counters(),
            stray_resets: self.stray_resets,
            trace: self.trace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_checks_what_it_fills() {
        let mut buf = vec![0; 1000];
        fill_pattern(7, 13, &mut buf);
        assert_eq!(check_pattern(7, 13, &buf), None);
        // The same bytes at another offset, or under another key, differ.
        assert_eq!(check_pattern(7, 14, &buf), Some(14));
        assert_eq!(check_pattern(8, 13, &buf), Some(13));
        // One flipped byte is found where it is.
        buf[500] ^= 1;
        assert_eq!(check_pattern(7, 13, &buf), Some(513));
        // Filling in pieces gives the same bytes as at once.
        let mut pieces = vec![0; 1000];
        let (a, b) = pieces.split_at_mut(333);
        fill_pattern(7, 13, a);
        fill_pattern(7, 13 + 333, b);
        buf[500] ^= 1;
        assert_eq!(pieces, buf);
    }

    #[test]
    fn the_mathis_bound_is_mss_over_rtt_times_1_22_over_root_p() {
        let b = mathis_bound(1460, Duration::from_millis(20), 0.01);
        // 1460 / 0.02 * 1.2247 / 0.1 = 894 000 bytes/s.
        assert!((b - 894_064.0).abs() < 100.0, "{b}");
    }

    #[test]
    fn a_slow_reader_gets_its_rate_in_bursts() {
        let mut p = Pace::new(1000);
        assert_eq!(p.tokens, READ_BURST, "it starts with a burst");
        p.tokens = 0;
        assert_eq!(p.ready_at(500), Instant::from_millis(500));
        assert_eq!(
            p.ready_at(1 << 20),
            Instant::from_millis(4096),
            "a burst at most"
        );
        p.refill(Instant::from_micros(1500));
        assert_eq!(p.tokens, 1);
        // The half token left over is not lost.
        p.refill(Instant::from_micros(2500));
        assert_eq!(p.tokens, 2);
        p.refill(Instant::from_secs(100));
        assert_eq!(p.tokens, READ_BURST, "saved up to a burst, no more");
    }

    #[test]
    fn goodput_counts_from_the_first_byte_taken_to_the_last_read() {
        let mut t = Transfer::new(1_000_000);
        assert_eq!(t.goodput(), None);
        t.started = Some(Instant::from_millis(20));
        t.done = Some(Instant::from_millis(1020));
        assert_eq!(t.goodput(), Some(1_000_000.0));
    }
}
