//! A reactor in miniature for the server targets: a server's acceptors,
//! their sessions, virtual time, and the checks.
//!
//! It calls sessions exactly as `reactor` does: after any `handle_input` or
//! `handle_timeout`, [`drive::after_call`] (the one driver, see
//! [`crate::proto`]) with a transmit step that pulls `poll_transmit` until
//! `None` or a budget. A TCP connection's output waits in a buffer bounded
//! by a high-water mark until the scripted peer reads it; a closing
//! connection is only flushed (never fed), then dropped on the peer's EOF
//! or after the linger time; a UDP session is dropped when it closes. An
//! acceptor's own deadline (state its sessions share, such as hello's ID
//! expiry) is read afresh whenever the world looks for the next deadline,
//! so it is current after every call into one of its sessions.
//!
//! # Invariants (each a panic, so libFuzzer reports it)
//! * No call panics, and the virtual clock never goes back.
//! * `poll_transmit` appends exactly the `len` it reports, within `limit`;
//!   a datagram fits in a UDP payload, leaves by the home endpoint, and
//!   goes only to an address that has sent us something.
//! * What a server sends is well-formed for its protocol's codec (the
//!   target's checks: every TFTP datagram parses, every hello line, …).
//! * After any call the reported deadline is not in the past, and a timer
//!   that fires moves on: a session whose deadline stays at `now` after
//!   [`MAX_FIRES_AT_ONE_INSTANT`] calls of `handle_timeout` would make the
//!   reactor spin; an acceptor's deadline must be past `now` once its
//!   `handle_timeout` ran (a hello ID due to expire is gone).
//! * A session that asked to close is never given input or timeouts again.
//! * (Targets that ask for it) a UDP session whose peers fall silent ends
//!   within [`SILENCE_BOUND`] of virtual time.

use crate::proto::{
    Admission, Admit, CloseReason, Context, DatagramAcceptor, DatagramInput, DatagramSession,
    Driven, EndpointId, StreamAcceptor, StreamInput, StreamSession, drive,
};
use crate::time::{Duration, Instant};
use bytes::BytesMut;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The largest UDP payload, as the reactor lends it to `poll_transmit`.
const MAX_DATAGRAM: usize = 65_507;
/// Datagrams one session may send per flush (the reactor's `send_budget`).
const SEND_BUDGET: usize = 1024;
/// Per-peer sessions one UDP socket may hold (the reactor's default).
const MAX_SHARED_SESSIONS: usize = 4096;
/// How long a closing TCP connection waits for the peer's EOF (the reactor's `linger`).
const LINGER: Duration = Duration::from_secs(2);
/// Bytes sent in one run beyond which the script stops early: a run must
/// stay fast whatever the input asks for.
const MAX_OUTPUT: usize = 8 << 20;
/// Bytes of each TCP connection's output kept for the end-of-run checks.
const TRANSCRIPT_MAX: usize = 256 * 1024;
/// Calls of `handle_timeout` at one instant after which a deadline that is
/// still due means the reactor would spin.
pub(crate) const MAX_FIRES_AT_ONE_INSTANT: u32 = 64;
/// How long UDP sessions may live once their peers fall silent (at the
/// end of the script), where a target checks it.
pub(crate) const SILENCE_BOUND: Duration = Duration::from_secs(24 * 3600);
/// Steps of the final drain (each jumps to the next deadline).
const DRAIN_STEPS: usize = 4096;

/// The peers of a run: two ports on loopback (validated), a documentation
/// address (not validated: the UDP budget applies) and IPv6 loopback.
pub(crate) fn peer(i: usize) -> SocketAddr {
    match i % 4 {
        0 => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000),
        1 => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_001),
        2 => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40_000),
        _ => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 40_000),
    }
}

/// What a target checks in its server's output.
#[derive(Clone, Copy)]
pub(crate) struct Checks {
    /// One datagram the server sent (a reply or a session's).
    pub(crate) datagram: fn(&[u8]),
    /// The bytes a TCP connection sent, up to [`TRANSCRIPT_MAX`].
    pub(crate) stream: fn(&[u8]),
    /// UDP sessions must end within [`SILENCE_BOUND`] once peers are silent.
    pub(crate) udp_sessions_end: bool,
}

/// No check beyond the world's own.
pub(crate) fn nothing(_: &[u8]) {}

/// The server under test: what listens on TCP, what on UDP (either may be
/// missing; a protocol on both has one of each over shared state).
#[derive(Default)]
pub(crate) struct Server {
    pub(crate) stream: Option<Box<dyn StreamAcceptor>>,
    pub(crate) datagram: Option<Box<dyn DatagramAcceptor>>,
}

impl Server {
    /// A TCP-only server.
    pub(crate) fn stream(acceptor: impl StreamAcceptor + 'static) -> Self {
        Self {
            stream: Some(Box::new(acceptor)),
            datagram: None,
        }
    }

    /// A UDP-only server.
    pub(crate) fn datagram(acceptor: impl DatagramAcceptor + 'static) -> Self {
        Self {
            stream: None,
            datagram: Some(Box::new(acceptor)),
        }
    }

    /// The acceptors, as what the reactor drives.
    fn driven(&mut self) -> impl Iterator<Item = &mut dyn Driven> {
        let stream = self.stream.as_deref_mut().map(|a| a as &mut dyn Driven);
        let datagram = self.datagram.as_deref_mut().map(|a| a as &mut dyn Driven);
        stream.into_iter().chain(datagram)
    }

    /// The earliest deadline of either acceptor.
    fn poll_timeout(&self) -> Option<Instant> {
        let stream = self.stream.as_ref().and_then(|a| a.poll_timeout());
        let datagram = self.datagram.as_ref().and_then(|a| a.poll_timeout());
        stream.into_iter().chain(datagram).min()
    }
}

/// A session and the endpoint it is driven through.
enum Io {
    Stream {
        session: Box<dyn StreamSession>,
        conn: Conn,
    },
    Datagram {
        session: Box<dyn DatagramSession>,
        /// On a socket of its own (TFTP's transfer ID), not the acceptor's.
        own: bool,
    },
}

impl Io {
    fn driven(&mut self) -> &mut dyn Driven {
        match self {
            Self::Stream { session, .. } => session.as_mut(),
            Self::Datagram { session, .. } => session.as_mut(),
        }
    }

    fn conn(&self) -> Option<&Conn> {
        match self {
            Self::Stream { conn, .. } => Some(conn),
            Self::Datagram { .. } => None,
        }
    }

    fn is_own_socket(&self) -> bool {
        matches!(self, Self::Datagram { own: true, .. })
    }
}

struct Conn {
    /// Output the peer has not read yet (the socket buffer and `out`).
    out: BytesMut,
    transcript: Vec<u8>,
    read_closed: bool,
    /// Closing gracefully: flushed, never fed; dropped on EOF or at this time.
    linger_until: Option<Instant>,
}

struct Slot {
    io: Io,
    peer: SocketAddr,
    deadline: Option<Instant>,
    /// Calls of `handle_timeout` at the instant they were made.
    fires: (Instant, u32),
    still_ready: bool,
}

impl Slot {
    /// When the world must call in next: the linger's end of a closing
    /// connection, else the session's deadline.
    fn due_at(&self) -> Option<Instant> {
        match self.io.conn() {
            Some(Conn {
                linger_until: Some(until),
                ..
            }) => Some(*until),
            _ => self.deadline,
        }
    }
}

/// The miniature reactor.
pub(crate) struct World {
    now: Instant,
    server: Server,
    /// Index = key; 0 is the acceptors'. Keys are never reused.
    slots: Vec<Option<Slot>>,
    by_peer: BTreeMap<SocketAddr, usize>,
    heard_from: BTreeSet<SocketAddr>,
    high_water: usize,
    output: usize,
    checks: Checks,
}

impl World {
    pub(crate) fn new(server: Server, start: Instant, high_water: usize, checks: Checks) -> Self {
        Self {
            now: start,
            server,
            slots: vec![None],
            by_peer: BTreeMap::new(),
            heard_from: BTreeSet::new(),
            high_water: high_water.max(1),
            output: 0,
            checks,
        }
    }

    /// Whether the run has sent so much that the script should stop.
    pub(crate) fn exhausted(&self) -> bool {
        self.output > MAX_OUTPUT
    }

    fn live(&self, pick: impl Fn(&Slot) -> bool) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(&pick))
            .map(|(k, _)| k)
            .collect()
    }

    fn choose(&self, n: usize, pick: impl Fn(&Slot) -> bool) -> Option<usize> {
        let keys = self.live(pick);
        (!keys.is_empty()).then(|| keys[n % keys.len()])
    }

    fn insert(&mut self, io: Io, peer: SocketAddr) -> usize {
        self.slots.push(Some(Slot {
            io,
            peer,
            deadline: None,
            fires: (self.now, 0),
            still_ready: false,
        }));
        self.slots.len() - 1
    }

    fn drop_slot(&mut self, key: usize) {
        let Some(slot) = self.slots.get_mut(key).and_then(Option::take) else {
            return;
        };
        if self.by_peer.get(&slot.peer) == Some(&key) {
            self.by_peer.remove(&slot.peer);
        }
        if let Some(conn) = slot.io.conn() {
            (self.checks.stream)(&conn.transcript);
        }
    }

    // ---- script events -------------------------------------------------

    /// Moves the clock on and fires what is due.
    pub(crate) fn advance(&mut self, by: Duration) {
        let next = self.now + by;
        assert!(next >= self.now, "time went back");
        self.now = next;
        self.end_turn();
    }

    /// Jumps to the earliest deadline (plus `extra`), if there is one.
    pub(crate) fn advance_to_next_deadline(&mut self, extra: Duration) {
        if let Some(at) = self.next_deadline() {
            self.now = self.now.max(at) + extra;
        }
        self.end_turn();
    }

    /// A TCP connection from `peer` is accepted.
    pub(crate) fn connect(&mut self, peer: SocketAddr) {
        let key = self.slots.len();
        let mut cx = Context::new(self.now, key, Some(peer));
        let Some(acceptor) = self.server.stream.as_mut() else {
            return;
        };
        let Some(session) = acceptor.accept(&mut cx, peer) else {
            return;
        };
        let conn = Conn {
            out: BytesMut::new(),
            transcript: Vec::new(),
            read_closed: false,
            linger_until: None,
        };
        let key = self.insert(Io::Stream { session, conn }, peer);
        self.flush(key);
        self.end_turn();
    }

    fn open_stream(&self, n: usize) -> Option<usize> {
        self.choose(n, |s| s.io.conn().is_some_and(|c| !c.read_closed))
    }

    /// Bytes arrive on the `n`th open connection (if it reads).
    pub(crate) fn stream(&mut self, n: usize, bytes: &[u8]) {
        if let Some(key) = self.open_stream(n) {
            let slot = self.slots[key].as_mut().expect("live");
            let Io::Stream { session, conn } = &mut slot.io else {
                return;
            };
            // A closing connection's input is read and discarded; a paused
            // one is not read at all.
            if conn.linger_until.is_none() && session.wants_input() {
                let mut cx = Context::new(self.now, key, Some(slot.peer));
                session.handle_input(&mut cx, StreamInput::Bytes(bytes));
                self.flush(key);
            }
        }
        self.end_turn();
    }

    /// The peer of the `n`th open connection shuts its write half down.
    pub(crate) fn stream_end(&mut self, n: usize) {
        if let Some(key) = self.open_stream(n) {
            let slot = self.slots[key].as_mut().expect("live");
            let Io::Stream { session, conn } = &mut slot.io else {
                return;
            };
            conn.read_closed = true;
            if conn.linger_until.is_some() {
                // The peer saw our FIN and closed too: done.
                self.drop_slot(key);
            } else {
                let mut cx = Context::new(self.now, key, Some(slot.peer));
                session.handle_input(&mut cx, StreamInput::End);
                self.flush(key);
            }
        }
        self.end_turn();
    }

    /// The peer of the `n`th connection reads up to `max` bytes.
    pub(crate) fn peer_reads(&mut self, n: usize, max: usize) {
        if let Some(key) = self.choose(n, |s| s.io.conn().is_some()) {
            let slot = self.slots[key].as_mut().expect("live");
            let Io::Stream { conn, .. } = &mut slot.io else {
                return;
            };
            let take = max.min(conn.out.len());
            let read = conn.out.split_to(take);
            let room = TRANSCRIPT_MAX.saturating_sub(conn.transcript.len());
            conn.transcript.extend_from_slice(&read[..take.min(room)]);
            let done = conn.linger_until.is_some() && conn.out.is_empty() && conn.read_closed;
            if done {
                self.drop_slot(key);
            } else {
                // Writable again: the reactor flushes.
                self.flush(key);
            }
        }
        self.end_turn();
    }

    /// The socket of the `n`th session fails (reset, ICMP unreachable). A
    /// TCP entry is freed without a flush; a UDP session is told and
    /// decides itself whether that ends it, as the seam says.
    pub(crate) fn fail(&mut self, n: usize) {
        const KIND: std::io::ErrorKind = std::io::ErrorKind::ConnectionReset;
        if let Some(key) = self.choose(n, |_| true) {
            let slot = self.slots[key].as_mut().expect("live");
            let mut cx = Context::new(self.now, key, Some(slot.peer));
            match &mut slot.io {
                Io::Stream { session, conn } => {
                    if conn.linger_until.is_none() {
                        session.handle_input(&mut cx, StreamInput::Failed(KIND));
                    }
                    self.drop_slot(key);
                }
                Io::Datagram { session, .. } => {
                    let input = DatagramInput::Failed {
                        endpoint: EndpointId::HOME,
                        kind: KIND,
                    };
                    session.handle_input(&mut cx, input);
                    self.flush(key);
                }
            }
        }
        self.end_turn();
    }

    /// A datagram from `from` to the server's socket: to `from`'s session,
    /// or to the acceptor.
    pub(crate) fn datagram_to_listener(&mut self, from: SocketAddr, payload: &[u8]) {
        self.heard(from);
        if let Some(&key) = self.by_peer.get(&from)
            && self.slots[key].is_some()
        {
            self.deliver(key, from, payload);
            self.end_turn();
            return;
        }
        let Some(acceptor) = self.server.datagram.as_mut() else {
            self.end_turn();
            return;
        };
        let mut reply = BytesMut::new();
        let mut cx = Context::new(self.now, 0, Some(from));
        let admission = acceptor.accept(&mut cx, from, payload, &mut reply);
        // Evictions first: the admission may need the places they free.
        let evicted: Vec<usize> = core::iter::from_fn(|| acceptor.poll_evict()).collect();
        let limit = acceptor
            .max_sessions()
            .map_or(MAX_SHARED_SESSIONS, |m| m.min(MAX_SHARED_SESSIONS));
        for victim in evicted {
            if victim != 0 {
                self.drop_slot(victim);
            }
        }
        match admission {
            Admission::Reply => {
                assert!(reply.len() <= MAX_DATAGRAM, "reply too large");
                (self.checks.datagram)(&reply);
                self.output += reply.len();
            }
            Admission::Ignore => {}
            Admission::Start(Admit { bind, .. }) if !bind.is_empty() => {
                panic!("no server here binds more sockets")
            }
            Admission::Start(Admit {
                session,
                own_socket: false,
                ..
            }) => {
                if self.by_peer.len() < limit {
                    let key = self.insert(
                        Io::Datagram {
                            session,
                            own: false,
                        },
                        from,
                    );
                    self.by_peer.insert(from, key);
                    self.deliver(key, from, payload);
                }
            }
            Admission::Start(Admit {
                session,
                own_socket: true,
                ..
            }) => {
                let key = self.insert(Io::Datagram { session, own: true }, from);
                self.deliver(key, from, payload);
            }
        }
        self.end_turn();
    }

    /// A datagram from `from` to the `n`th session's own socket.
    pub(crate) fn datagram_to_session(&mut self, n: usize, from: SocketAddr, payload: &[u8]) {
        if let Some(key) = self.choose(n, |s| s.io.is_own_socket()) {
            self.heard(from);
            self.deliver(key, from, payload);
        }
        self.end_turn();
    }

    /// Whether any session has a socket of its own.
    pub(crate) fn has_own_sockets(&self) -> bool {
        self.slots.iter().flatten().any(|s| s.io.is_own_socket())
    }

    fn heard(&mut self, from: SocketAddr) {
        self.heard_from.insert(from);
    }

    fn deliver(&mut self, key: usize, from: SocketAddr, payload: &[u8]) {
        let slot = self.slots[key].as_mut().expect("live");
        let Io::Datagram { session, .. } = &mut slot.io else {
            return;
        };
        let mut cx = Context::new(self.now, key, Some(slot.peer));
        session.handle_input(
            &mut cx,
            DatagramInput::Datagram {
                endpoint: EndpointId::HOME,
                from,
                payload,
                kernel_ns: None,
            },
        );
        self.flush(key);
    }

    /// Ends the run: every deadline is let fire, in order, until none is
    /// left or the step bound; then the end-of-run checks.
    pub(crate) fn finish(mut self) {
        // From here on nobody sends anything.
        let quiet_from = self.now;
        for _ in 0..DRAIN_STEPS {
            if self.exhausted() || self.next_deadline().is_none() {
                break;
            }
            self.advance_to_next_deadline(Duration::ZERO);
            if self.checks.udp_sessions_end {
                let silent = self.now.saturating_since(quiet_from);
                let udp = self.live(|s| s.io.conn().is_none());
                assert!(
                    silent <= SILENCE_BOUND || udp.is_empty(),
                    "UDP sessions {udp:?} still live after {silent:?} of silence"
                );
            }
        }
        for key in 0..self.slots.len() {
            self.drop_slot(key);
        }
    }

    // ---- the reactor's part --------------------------------------------

    fn next_deadline(&self) -> Option<Instant> {
        let sessions = self.slots.iter().flatten().filter_map(Slot::due_at);
        sessions.chain(self.server.poll_timeout()).min()
    }

    /// The end of a reactor turn: sessions cut off by a budget are flushed
    /// again, then every due deadline fires, earliest first.
    fn end_turn(&mut self) {
        for key in self.live(|s| s.still_ready) {
            self.flush(key);
        }
        loop {
            let due = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(k, s)| {
                    let at = s.as_ref()?.due_at()?;
                    (at <= self.now).then_some((at, k))
                })
                .min();
            let Some((_, key)) = due else {
                break;
            };
            self.fire(key);
        }
        let now = self.now;
        let mut cx = Context::new(now, 0, None);
        for acceptor in self.server.driven() {
            if acceptor.poll_timeout().is_some_and(|at| at <= now) {
                acceptor.handle_timeout(&mut cx);
                assert!(
                    acceptor.poll_timeout().is_none_or(|at| at > now),
                    "an acceptor's deadline is still due after its handle_timeout at {now} \
                     (a hello ID due to expire is still there)"
                );
            }
        }
    }

    fn fire(&mut self, key: usize) {
        let now = self.now;
        let slot = self.slots[key].as_mut().expect("live");
        if slot.io.conn().is_some_and(|c| c.linger_until.is_some()) {
            // Linger expired: the reactor closes without the session.
            self.drop_slot(key);
            return;
        }
        slot.fires = if slot.fires.0 == now {
            (now, slot.fires.1 + 1)
        } else {
            (now, 1)
        };
        assert!(
            slot.fires.1 <= MAX_FIRES_AT_ONE_INSTANT,
            "session #{key}: deadline {:?} still due after {} calls of handle_timeout at {now}: the reactor would spin",
            slot.deadline,
            slot.fires.1
        );
        let mut cx = Context::new(now, key, Some(slot.peer));
        slot.io.driven().handle_timeout(&mut cx);
        self.flush(key);
    }

    /// After any call into a session: the one driver's order of calls,
    /// with this world's transmit step (a stream's high-water mark, the
    /// datagram send budget) and checks.
    fn flush(&mut self, key: usize) {
        let now = self.now;
        let Some(slot) = self.slots[key].as_mut() else {
            return;
        };
        let mut cx = Context::new(now, key, Some(slot.peer));
        let peer = slot.peer;
        let (high_water, checks, heard_from) = (self.high_water, self.checks, &self.heard_from);
        let mut output = self.output;
        let (still_ready, after) = match &mut slot.io {
            Io::Stream { session, conn } => {
                drive::after_call(session.as_mut(), &mut cx, |s, cx| {
                    stream_transmit(s, cx, conn, high_water, &mut output)
                })
            }
            Io::Datagram { session, .. } => {
                drive::after_call(session.as_mut(), &mut cx, |s, cx| {
                    datagram_transmit(s, cx, peer, checks, heard_from, &mut output)
                })
            }
        };
        self.output = output;
        slot.still_ready = still_ready;
        if let Some(d) = after.deadline {
            assert!(
                d >= now,
                "session #{key} reports deadline {d} before now {now}"
            );
        }
        slot.deadline = after.deadline;
        let Some(reason) = after.close else {
            return;
        };
        let graceful = match &mut slot.io {
            Io::Stream { conn, .. } => {
                let graceful = conn.linger_until.is_none()
                    && !matches!(reason, CloseReason::Aborted | CloseReason::TimedOut { .. })
                    && !(conn.read_closed && conn.out.is_empty());
                if graceful {
                    conn.linger_until = Some(now + LINGER);
                    slot.deadline = None;
                }
                graceful || conn.linger_until.is_some()
            }
            Io::Datagram { .. } => false,
        };
        if !graceful {
            self.drop_slot(key);
        }
    }
}

/// A stream's transmit step: output up to the high-water mark, then a
/// bounded piece of its file. Returns whether it must be flushed again.
fn stream_transmit(
    s: &mut dyn StreamSession,
    cx: &mut Context,
    conn: &mut Conn,
    high_water: usize,
    output: &mut usize,
) -> bool {
    while conn.out.len() < high_water {
        let limit = high_water - conn.out.len();
        let before = conn.out.len();
        let Some(len) = s.poll_transmit(cx, limit, &mut conn.out) else {
            break;
        };
        let appended = conn.out.len() - before;
        assert_eq!(len, appended, "transmit len is not what was appended");
        assert!(len <= limit, "transmit of {len} over limit {limit}");
        *output += appended;
        if appended == 0 && *output > MAX_OUTPUT {
            break;
        }
    }
    if conn.out.is_empty()
        && let Some(chunk) = s.poll_file()
    {
        // sendfile: a bounded piece per flush, as the write budget.
        let n = chunk.len.min(64 * 1024);
        s.advance_file(cx, n);
        *output += usize::try_from(n).unwrap_or(usize::MAX);
        return n > 0;
    }
    false
}

/// A datagram session's transmit step: at most the send budget, each
/// datagram checked. Returns whether the budget cut it short.
fn datagram_transmit(
    s: &mut dyn DatagramSession,
    cx: &mut Context,
    peer: SocketAddr,
    checks: Checks,
    heard_from: &BTreeSet<SocketAddr>,
    output: &mut usize,
) -> bool {
    let mut buf = BytesMut::new();
    for _ in 0..SEND_BUDGET {
        buf.clear();
        let Some(t) = s.poll_transmit(cx, MAX_DATAGRAM, &mut buf) else {
            return false;
        };
        assert_eq!(t.len, buf.len(), "transmit len is not the datagram's");
        assert!(t.len <= MAX_DATAGRAM, "datagram of {} bytes", t.len);
        assert_eq!(
            t.endpoint,
            EndpointId::HOME,
            "a datagram by another endpoint"
        );
        let to = t.to.unwrap_or(peer);
        assert!(
            heard_from.contains(&to),
            "datagram to {to}, which never sent anything"
        );
        (checks.datagram)(&buf);
        *output += buf.len();
    }
    true
}

#[cfg(test)]
mod tests {
    //! The checks themselves can fail: sessions that break the contract
    //! on purpose.

    use super::*;
    use crate::proto::Transmit;

    #[derive(Clone, Copy)]
    enum Fault {
        /// Re-arms its deadline at `now` whenever it fires.
        Spins,
        /// Reports a deadline before `now`.
        PastDeadline,
        /// Reports a longer transmit than it appended.
        WrongLen,
        /// Sends to an address nobody heard from.
        ToStranger,
        /// Behaves.
        None,
    }

    struct Bad {
        fault: Fault,
        now: Instant,
        sent: bool,
    }

    impl Driven for Bad {
        fn handle_timeout(&mut self, cx: &mut Context) {
            self.now = cx.now;
        }
        fn poll_timeout(&self) -> Option<Instant> {
            match self.fault {
                Fault::Spins => Some(self.now),
                Fault::PastDeadline => Some(Instant::ZERO),
                _ => None,
            }
        }
    }

    impl DatagramSession for Bad {
        fn handle_input(&mut self, cx: &mut Context, _: DatagramInput<'_>) {
            self.now = cx.now;
        }
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            buf: &mut BytesMut,
        ) -> Option<Transmit> {
            if self.sent {
                return None;
            }
            self.sent = true;
            buf.extend_from_slice(b"x");
            Some(match self.fault {
                Fault::WrongLen => Transmit::new(None, 2),
                Fault::ToStranger => Transmit::new(Some(peer(2)), 1),
                _ => Transmit::new(None, 1),
            })
        }
    }

    struct Admit(Fault);

    impl Driven for Admit {}

    impl DatagramAcceptor for Admit {
        fn accept(
            &mut self,
            cx: &mut Context,
            _: SocketAddr,
            _: &[u8],
            _: &mut BytesMut,
        ) -> Admission {
            Admission::shared(Box::new(Bad {
                fault: self.0,
                now: cx.now,
                sent: false,
            }))
        }
    }

    fn run(fault: Fault) {
        let checks = Checks {
            datagram: nothing,
            stream: nothing,
            udp_sessions_end: false,
        };
        let server = Server::datagram(Admit(fault));
        let mut world = World::new(server, Instant::from_secs(1), 1, checks);
        world.datagram_to_listener(peer(0), b"hi");
        world.advance(Duration::from_secs(1));
    }

    #[test]
    fn a_session_that_behaves_passes() {
        run(Fault::None);
    }

    #[test]
    #[should_panic(expected = "the reactor would spin")]
    fn a_deadline_that_never_moves_on_fails() {
        run(Fault::Spins);
    }

    #[test]
    #[should_panic(expected = "before now")]
    fn a_deadline_in_the_past_fails() {
        run(Fault::PastDeadline);
    }

    #[test]
    #[should_panic(expected = "transmit len")]
    fn a_transmit_that_lies_about_its_length_fails() {
        run(Fault::WrongLen);
    }

    #[test]
    #[should_panic(expected = "never sent anything")]
    fn a_datagram_to_a_silent_address_fails() {
        run(Fault::ToStranger);
    }
}
