//! A reactor in miniature for the server targets: one acceptor, its
//! sessions, virtual time, and the checks.
//!
//! It calls sessions exactly as `reactor` does (see [`crate::proto`]):
//! after any `handle_input` or `handle_timeout`, `poll_transmit` until
//! `None` or a budget, then `poll_timeout`, then `poll_request` until
//! `None`, then `wants_input`. A TCP connection's output waits in a buffer
//! bounded by a high-water mark until the scripted peer reads it; a closing
//! connection is only flushed (never fed), then dropped on the peer's EOF
//! or after the linger time; a UDP session is dropped when it closes.
//!
//! # Invariants (each a panic, so libFuzzer reports it)
//! * No call panics, and the virtual clock never goes back.
//! * `poll_transmit` appends exactly the `len` it reports, within `limit`;
//!   a stream transmit has no destination; a datagram fits in a UDP
//!   payload and goes only to an address that has sent us something.
//! * What a server sends is well-formed for its protocol's codec (the
//!   target's checks: every TFTP datagram parses, every hello line, …).
//! * After any call the reported deadline is not in the past, and a timer
//!   that fires moves on: a session whose deadline stays at `now` after
//!   [`MAX_FIRES_AT_ONE_INSTANT`] calls of `handle_timeout` would make the
//!   reactor spin.
//! * A session that asked to close is never given input or timeouts again.
//! * (Targets that ask for it) a UDP session whose peers fall silent ends
//!   within [`SILENCE_BOUND`] of virtual time.

use crate::proto::{
    Acceptor, Admission, CloseReason, Context, Input, Request, Session, Shared, Tag,
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

enum Sock {
    Stream(Conn),
    /// A per-peer session on the acceptor's socket.
    Shared,
    /// A session on a socket of its own (TFTP's transfer ID).
    Own,
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
    session: Box<dyn Session>,
    sock: Sock,
    peer: SocketAddr,
    deadline: Option<Instant>,
    /// Calls of `handle_timeout` at the instant they were made.
    fires: (Instant, u32),
    still_ready: bool,
}

/// The miniature reactor.
pub(crate) struct World {
    now: Instant,
    shared: Shared,
    acceptor: Box<dyn Acceptor>,
    /// Index = key; 0 is the acceptor's. Keys are never reused.
    slots: Vec<Option<Slot>>,
    by_peer: BTreeMap<SocketAddr, usize>,
    heard_from: BTreeSet<SocketAddr>,
    high_water: usize,
    output: usize,
    checks: Checks,
}

impl World {
    pub(crate) fn new(
        acceptor: Box<dyn Acceptor>,
        shared: Shared,
        start: Instant,
        high_water: usize,
        checks: Checks,
    ) -> Self {
        Self {
            now: start,
            shared,
            acceptor,
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

    fn cx(shared: &mut Shared, now: Instant, key: usize, peer: Option<SocketAddr>) -> Context<'_> {
        Context {
            now,
            tag: Tag { key, peer },
            shared,
        }
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

    fn insert(&mut self, session: Box<dyn Session>, sock: Sock, peer: SocketAddr) -> usize {
        self.slots.push(Some(Slot {
            session,
            sock,
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
        if let Sock::Stream(conn) = &slot.sock {
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
        let mut cx = Self::cx(&mut self.shared, self.now, key, Some(peer));
        let Some(session) = self.acceptor.accept_stream(&mut cx, peer) else {
            return;
        };
        let conn = Conn {
            out: BytesMut::new(),
            transcript: Vec::new(),
            read_closed: false,
            linger_until: None,
        };
        let key = self.insert(session, Sock::Stream(conn), peer);
        self.flush(key);
        self.end_turn();
    }

    fn open_stream(&self, n: usize) -> Option<usize> {
        self.choose(n, |s| matches!(&s.sock, Sock::Stream(c) if !c.read_closed))
    }

    /// Bytes arrive on the `n`th open connection (if it reads).
    pub(crate) fn stream(&mut self, n: usize, bytes: &[u8]) {
        if let Some(key) = self.open_stream(n) {
            let slot = self.slots[key].as_mut().expect("live");
            let Sock::Stream(conn) = &slot.sock else {
                return;
            };
            // A closing connection's input is read and discarded; a paused
            // one is not read at all.
            if conn.linger_until.is_none() && slot.session.wants_input() {
                let mut cx = Self::cx(&mut self.shared, self.now, key, Some(slot.peer));
                slot.session.handle_input(&mut cx, Input::Stream(bytes));
                self.flush(key);
            }
        }
        self.end_turn();
    }

    /// The peer of the `n`th open connection shuts its write half down.
    pub(crate) fn stream_end(&mut self, n: usize) {
        if let Some(key) = self.open_stream(n) {
            let slot = self.slots[key].as_mut().expect("live");
            let Sock::Stream(conn) = &mut slot.sock else {
                return;
            };
            conn.read_closed = true;
            if conn.linger_until.is_some() {
                // The peer saw our FIN and closed too: done.
                self.drop_slot(key);
            } else {
                let mut cx = Self::cx(&mut self.shared, self.now, key, Some(slot.peer));
                slot.session.handle_input(&mut cx, Input::StreamEnd);
                self.flush(key);
            }
        }
        self.end_turn();
    }

    /// The peer of the `n`th connection reads up to `max` bytes.
    pub(crate) fn peer_reads(&mut self, n: usize, max: usize) {
        if let Some(key) = self.choose(n, |s| matches!(s.sock, Sock::Stream(_))) {
            let slot = self.slots[key].as_mut().expect("live");
            let Sock::Stream(conn) = &mut slot.sock else {
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

    /// The socket of the `n`th session fails (reset, ICMP unreachable).
    pub(crate) fn fail(&mut self, n: usize) {
        if let Some(key) = self.choose(n, |_| true) {
            let slot = self.slots[key].as_mut().expect("live");
            let closing = matches!(&slot.sock, Sock::Stream(c) if c.linger_until.is_some());
            if !closing {
                let mut cx = Self::cx(&mut self.shared, self.now, key, Some(slot.peer));
                slot.session
                    .handle_input(&mut cx, Input::Failed(std::io::ErrorKind::ConnectionReset));
            }
            // The reactor frees the entry without flushing it.
            self.drop_slot(key);
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
        let mut reply = BytesMut::new();
        let mut cx = Self::cx(&mut self.shared, self.now, 0, Some(from));
        let admission = self
            .acceptor
            .accept_datagram(&mut cx, from, payload, &mut reply);
        // Evictions first: the admission may need the places they free.
        while let Some(victim) = self.acceptor.poll_evict() {
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
            Admission::Shared(session) => {
                let limit = self
                    .acceptor
                    .max_sessions()
                    .map_or(MAX_SHARED_SESSIONS, |m| m.min(MAX_SHARED_SESSIONS));
                if self.by_peer.len() < limit {
                    let key = self.insert(session, Sock::Shared, from);
                    self.by_peer.insert(from, key);
                    self.deliver(key, from, payload);
                }
            }
            Admission::OwnSocket(session) => {
                let key = self.insert(session, Sock::Own, from);
                self.deliver(key, from, payload);
            }
            Admission::Relay { .. } => panic!("no server here relays"),
        }
        self.end_turn();
    }

    /// A datagram from `from` to the `n`th session's own socket.
    pub(crate) fn datagram_to_session(&mut self, n: usize, from: SocketAddr, payload: &[u8]) {
        if let Some(key) = self.choose(n, |s| matches!(s.sock, Sock::Own)) {
            self.heard(from);
            self.deliver(key, from, payload);
        }
        self.end_turn();
    }

    /// Whether any session has a socket of its own.
    pub(crate) fn has_own_sockets(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|s| matches!(s.sock, Sock::Own))
    }

    fn heard(&mut self, from: SocketAddr) {
        self.heard_from.insert(from);
    }

    fn deliver(&mut self, key: usize, from: SocketAddr, payload: &[u8]) {
        let slot = self.slots[key].as_mut().expect("live");
        let mut cx = Self::cx(&mut self.shared, self.now, key, Some(slot.peer));
        slot.session.handle_input(
            &mut cx,
            Input::Datagram {
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
                let udp = self.live(|s| !matches!(s.sock, Sock::Stream(_)));
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
        let sessions = self.slots.iter().flatten().filter_map(|s| match &s.sock {
            Sock::Stream(Conn {
                linger_until: Some(until),
                ..
            }) => Some(*until),
            _ => s.deadline,
        });
        sessions.chain(self.shared.hello.next_expiry()).min()
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
                    let s = s.as_ref()?;
                    let at = match &s.sock {
                        Sock::Stream(Conn {
                            linger_until: Some(until),
                            ..
                        }) => *until,
                        _ => s.deadline?,
                    };
                    (at <= self.now).then_some((at, k))
                })
                .min();
            let Some((_, key)) = due else {
                break;
            };
            self.fire(key);
        }
        if self
            .shared
            .hello
            .next_expiry()
            .is_some_and(|at| at <= self.now)
        {
            self.shared.hello.expire_due(self.now);
            assert!(
                self.shared
                    .hello
                    .next_expiry()
                    .is_none_or(|at| at > self.now),
                "a hello ID due to expire is still there"
            );
        }
    }

    fn fire(&mut self, key: usize) {
        let now = self.now;
        let slot = self.slots[key].as_mut().expect("live");
        if let Sock::Stream(Conn {
            linger_until: Some(_),
            ..
        }) = &slot.sock
        {
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
        let mut cx = Self::cx(&mut self.shared, now, key, Some(slot.peer));
        slot.session.handle_timeout(&mut cx);
        self.flush(key);
    }

    /// After any call into a session: transmit, deadline, requests,
    /// backpressure — the reactor's `flush`.
    fn flush(&mut self, key: usize) {
        let now = self.now;
        let Some(slot) = self.slots[key].as_mut() else {
            return;
        };
        let mut cx = Self::cx(&mut self.shared, now, key, Some(slot.peer));
        // 1. Transmit.
        slot.still_ready = false;
        match &mut slot.sock {
            Sock::Stream(conn) => {
                while conn.out.len() < self.high_water {
                    let limit = self.high_water - conn.out.len();
                    let before = conn.out.len();
                    let Some(t) = slot.session.poll_transmit(&mut cx, limit, &mut conn.out) else {
                        break;
                    };
                    let appended = conn.out.len() - before;
                    assert_eq!(t.len, appended, "transmit len is not what was appended");
                    assert!(t.len <= limit, "transmit of {} over limit {limit}", t.len);
                    assert!(t.to.is_none(), "a stream transmit has a destination");
                    self.output += appended;
                    if appended == 0 && self.output > MAX_OUTPUT {
                        break;
                    }
                }
                if conn.out.is_empty()
                    && let Some(chunk) = slot.session.poll_file()
                {
                    // sendfile: a bounded piece per flush, as the write budget.
                    let n = chunk.len.min(64 * 1024);
                    slot.session.advance_file(&mut cx, n);
                    self.output += usize::try_from(n).unwrap_or(usize::MAX);
                    slot.still_ready = n > 0;
                }
            }
            Sock::Shared | Sock::Own => {
                let mut buf = BytesMut::new();
                let mut sent = 0;
                loop {
                    if sent >= SEND_BUDGET {
                        slot.still_ready = true;
                        break;
                    }
                    buf.clear();
                    let Some(t) = slot.session.poll_transmit(&mut cx, MAX_DATAGRAM, &mut buf)
                    else {
                        break;
                    };
                    sent += 1;
                    assert_eq!(t.len, buf.len(), "transmit len is not the datagram's");
                    assert!(t.len <= MAX_DATAGRAM, "datagram of {} bytes", t.len);
                    let to = t.to.unwrap_or(slot.peer);
                    assert!(
                        self.heard_from.contains(&to),
                        "datagram to {to}, which never sent anything"
                    );
                    (self.checks.datagram)(&buf);
                    self.output += buf.len();
                }
            }
        }
        // 2. Deadline.
        let deadline = slot.session.poll_timeout();
        if let Some(d) = deadline {
            assert!(
                d >= now,
                "session #{key} reports deadline {d} before now {now}"
            );
        }
        slot.deadline = deadline;
        // 3. Requests.
        let mut close: Option<CloseReason> = None;
        while let Some(request) = slot.session.poll_request() {
            match request {
                Request::Close(reason) => {
                    close.get_or_insert(reason);
                }
            }
        }
        let _ = slot.session.wants_input();
        let Some(reason) = close else {
            return;
        };
        let graceful = match &mut slot.sock {
            Sock::Stream(conn) => {
                let graceful = conn.linger_until.is_none()
                    && !matches!(reason, CloseReason::Aborted | CloseReason::TimedOut { .. })
                    && !(conn.read_closed && conn.out.is_empty());
                if graceful {
                    conn.linger_until = Some(now + LINGER);
                    slot.deadline = None;
                }
                graceful || conn.linger_until.is_some()
            }
            _ => false,
        };
        if !graceful {
            self.drop_slot(key);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The checks themselves can fail: sessions that break the contract
    //! on purpose.

    use super::*;
    use crate::proto::hello::Registry;
    use crate::proto::{Side, Transmit};

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

    impl Session for Bad {
        fn side(&self) -> Side {
            Side::Server
        }
        fn handle_input(&mut self, cx: &mut Context<'_>, _: Input<'_>) {
            self.now = cx.now;
        }
        fn handle_timeout(&mut self, cx: &mut Context<'_>) {
            self.now = cx.now;
        }
        fn poll_transmit(
            &mut self,
            _: &mut Context<'_>,
            _: usize,
            buf: &mut BytesMut,
        ) -> Option<Transmit> {
            if self.sent {
                return None;
            }
            self.sent = true;
            buf.extend_from_slice(b"x");
            Some(match self.fault {
                Fault::WrongLen => Transmit { to: None, len: 2 },
                Fault::ToStranger => Transmit {
                    to: Some(peer(2)),
                    len: 1,
                },
                _ => Transmit { to: None, len: 1 },
            })
        }
        fn poll_timeout(&self) -> Option<Instant> {
            match self.fault {
                Fault::Spins => Some(self.now),
                Fault::PastDeadline => Some(Instant::ZERO),
                _ => None,
            }
        }
        fn poll_request(&mut self) -> Option<Request> {
            None
        }
    }

    struct Admit(Fault);

    impl Acceptor for Admit {
        fn accept_stream(
            &mut self,
            _: &mut Context<'_>,
            _: SocketAddr,
        ) -> Option<Box<dyn Session>> {
            None
        }
        fn accept_datagram(
            &mut self,
            cx: &mut Context<'_>,
            _: SocketAddr,
            _: &[u8],
            _: &mut BytesMut,
        ) -> Admission {
            Admission::Shared(Box::new(Bad {
                fault: self.0,
                now: cx.now,
                sent: false,
            }))
        }
    }

    fn run(fault: Fault) {
        let shared = Shared::new(Registry::new(Duration::from_secs(1), 1));
        let checks = Checks {
            datagram: nothing,
            stream: nothing,
            udp_sessions_end: false,
        };
        let mut world = World::new(
            Box::new(Admit(fault)),
            shared,
            Instant::from_secs(1),
            1,
            checks,
        );
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
