//! Sans-IO protocol sessions: bytes or datagrams and `now` in; bytes,
//! deadlines and an end out.
//!
//! Owns the seam between protocols and the reactor: the session traits
//! ([`StreamSession`], [`DatagramSession`]), the acceptor traits
//! ([`StreamAcceptor`], [`DatagramAcceptor`]), [`Driven`] (timers and an end,
//! which every driven object has: sessions, acceptors and timer-only jobs
//! alike), the [`Context`] lent on every call and the [`drive`] order of
//! calls. Nothing under `proto/` may touch a socket, a file descriptor, a
//! path or the clock: time arrives as `cx.now`, input as [`StreamInput`] or
//! [`DatagramInput`], and an architecture-guard test in `lib.rs` enforces it.
//! Nothing here names a protocol: state that several sessions of one
//! protocol share (hello's ID registry, stopwait's UDP budget, the proxy's
//! totals) lives in that protocol, behind a handle its acceptor and its
//! sessions hold, and any deadline it has is its acceptor's.
//!
//! # Endpoints
//! A session talks through one or more *endpoints*, numbered by
//! [`EndpointId`]: endpoint 0 ([`EndpointId::HOME`]) is the socket it was
//! created or admitted on; an admission may ask the reactor for more (the
//! impairment proxy's flow has a second UDP socket towards the server).
//! Input says which endpoint it came from, and a [`Transmit`] says which
//! endpoint it leaves by.
//!
//! # The order of calls
//! After *any* call into a session (input, timeout, a file advance) the
//! driver — [`drive::after_call`], the one function the reactor, the
//! simulator and the fuzzing world all use — calls, always in this order:
//! 1. `poll_transmit` until it returns `None` or the transport is full (it
//!    may arm retransmission or pacing timers as it goes);
//! 2. [`Driven::poll_timeout`] and [`Driven::wake`], and arms the deadline
//!    heap if it changed;
//! 3. [`Driven::poll_close`];
//! 4. `wants_input`, to pause or resume reading;
//! 5. [`Driven::poll_part_timeout`] until `None` ([`drive::drain_parts`]),
//!    for the objects that multiplex parts with deadlines of their own.

pub mod arq;
pub mod budget;
pub mod data;
pub mod drive;
pub mod hello;
pub mod http;
pub mod idle;
pub mod lab;
pub mod msg;
pub mod outcome;
pub mod proxy;
pub mod stopwait;
pub mod tcp;
pub mod tcpfile;
pub mod tftp;
pub mod tunstack;
pub mod window;

use crate::time::Instant;
use bytes::BytesMut;
use core::fmt;
use std::io::ErrorKind;
use std::net::SocketAddr;

/// The reactor's name for a session in logs: `[#12 127.0.0.1:40000]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The slab key of the session's entry.
    pub key: usize,
    /// The peer, where there is one.
    pub peer: Option<SocketAddr>,
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peer {
            Some(peer) => write!(f, "[#{} {peer}]", self.key),
            None => write!(f, "[#{}]", self.key),
        }
    }
}

/// Per-call view of the reactor: the time and who is being called. Lent
/// for the duration of one call, never stored.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    /// The reactor's clock, read once per turn; never decreases.
    pub now: Instant,
    /// Who is being called, for log lines.
    pub tag: Tag,
}

impl Context {
    /// A context for the entry `key` talking to `peer` at `now`.
    pub fn new(now: Instant, key: usize, peer: Option<SocketAddr>) -> Self {
        Self {
            now,
            tag: Tag { key, peer },
        }
    }
}

/// How punctual a deadline's wake-up must be. One kind per deadline: a
/// session says which with [`Driven::wake`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wake {
    /// At its instant (the timerfd's accuracy): retransmission timers.
    #[default]
    Exact,
    /// To the microsecond: the reactor wakes early and spins the last
    /// stretch (see `reactor::wait`). Pacing deadlines.
    Paced,
    /// Up to a millisecond late is fine (expiry and idle timers): the
    /// reactor then re-arms its timerfd at most once per millisecond
    /// instead of on every change, which a timer re-armed per packet
    /// would otherwise cost.
    Coarse,
}

/// Why a session ended. Outcomes, not errors: a transfer finishing and a
/// peer vanishing are both normal ends of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The conversation reached its end.
    Completed,
    /// The peer closed or reset the connection.
    PeerClosed,
    /// The retry budget ran out.
    TimedOut {
        /// Attempts made.
        tries: u32,
    },
    /// The peer broke the protocol; the text says how.
    Protocol(&'static str),
    /// Given up for a local reason (shutdown, a failed socket).
    Aborted,
}

/// How a close reads in a log line (`-v`): words, not Rust's `Debug`.
impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Completed => f.write_str("completed"),
            Self::PeerClosed => f.write_str("the peer closed"),
            Self::TimedOut { tries } => write!(f, "timed out after {tries} tries"),
            Self::Protocol(why) => write!(f, "protocol error: {why}"),
            Self::Aborted => f.write_str("aborted"),
        }
    }
}

/// Timers, an end and backpressure: what the reactor drives in every
/// object it holds, be it a session, an acceptor or a timer-only job (a
/// progress ticker). Every method has a no-op default, so an object without
/// timers (most acceptors) implements none of them.
pub trait Driven {
    /// Fires every timer due at `cx.now`. A call with nothing due is a
    /// no-op, so spurious calls are safe.
    fn handle_timeout(&mut self, _cx: &mut Context) {}

    /// The earliest instant at which `handle_timeout` must run, or `None`.
    /// Changes only in the object's own `handle_*`/`poll_transmit` calls —
    /// or, for an acceptor that says so
    /// ([`StreamAcceptor::sessions_move_deadline`]), in those of its
    /// sessions (state they share).
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// How punctual the deadline from `poll_timeout` must be.
    fn wake(&self) -> Wake {
        Wake::Exact
    }

    /// `Some` once the object is done, with why. The reactor then flushes
    /// what is buffered, closes and frees the entry. On TCP it shuts its
    /// write half down and discards input until the peer closes too
    /// (bounded by a linger time), so the last answer is never lost to a
    /// reset. Asked after every call; an acceptor is never closed.
    fn poll_close(&mut self) -> Option<CloseReason> {
        None
    }

    /// Read-side backpressure: `false` pauses reading this session's own
    /// sockets until it turns `true` again. (A session on a shared UDP
    /// socket is not asked: the socket is not its alone to stop reading.
    /// Acceptors are not asked either.)
    fn wants_input(&self) -> bool {
        true
    }

    /// The next change to the deadline of one of the object's *parts*:
    /// things it multiplexes that each need a timer of their own on the
    /// reactor's one heap (a TUN stack's TCP connections). `(part,
    /// Some(at))` arms `part` at `at`, replacing its previous arming;
    /// `(part, None)` forgets the part (it is gone). Drained after every
    /// call, after [`wants_input`](Self::wants_input). An arming may be
    /// early (a part may keep an earlier wake-up rather than re-arm on
    /// every change): [`handle_part_timeout`](Self::handle_part_timeout)
    /// with nothing due is a no-op.
    fn poll_part_timeout(&mut self) -> Option<(PartId, Option<Instant>)> {
        None
    }

    /// The deadline armed for `part` came. Only the current arming of a
    /// part is delivered, never a replaced one.
    fn handle_part_timeout(&mut self, _cx: &mut Context, _part: PartId) {}
}

/// Names one part of a session whose deadline is its own heap entry (see
/// [`Driven::poll_part_timeout`]). A part's number may be reused once the
/// session reported it gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartId(pub u32);

/// One unit of input on a TCP stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamInput<'a> {
    /// In-order bytes. Frames may be split or joined arbitrarily; the
    /// session must take all of them.
    Bytes(&'a [u8]),
    /// The peer shut down its write half (a read returned 0).
    End,
    /// The connection failed: refused, reset, unreachable. The reactor
    /// frees the entry after this call.
    Failed(ErrorKind),
}

/// A region of an open file the reactor may send as-is (zero-copy
/// `sendfile`) on the session's TCP stream. The descriptor belongs to the
/// session's [`data::Source`]; the reactor only uses it during the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileChunk {
    /// The open file's descriptor number.
    pub fd: i32,
    /// Where in the file to start.
    pub offset: u64,
    /// How many bytes the session wants sent from there.
    pub len: u64,
}

/// A protocol state machine for one TCP connection.
pub trait StreamSession: Driven {
    /// Feeds input. Never fails: protocol errors become output and/or an
    /// end ([`Driven::poll_close`]).
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>);

    /// Appends at most `limit` bytes of output to `buf` and returns how
    /// many. `None`: nothing to send now.
    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize>;

    /// Zero-copy output: a file region to send once every byte from
    /// `poll_transmit` is on the wire. The reactor sends what the socket
    /// takes and reports it with [`advance_file`](Self::advance_file).
    fn poll_file(&mut self) -> Option<FileChunk> {
        None
    }

    /// `n` bytes of the last [`FileChunk`] were sent.
    fn advance_file(&mut self, _cx: &mut Context, _n: u64) {}
}

/// Which of a session's endpoints (sockets, later devices) a datagram came
/// from or leaves by. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointId(pub u8);

impl EndpointId {
    /// The endpoint the session was created or admitted on.
    pub const HOME: Self = Self(0);
    /// Most endpoints one session may have (they share its entry's token).
    pub const MAX: usize = 16;
}

/// One unit of input on a session's datagram endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatagramInput<'a> {
    /// One datagram arrived.
    Datagram {
        /// The endpoint it arrived on.
        endpoint: EndpointId,
        /// Its source address.
        from: SocketAddr,
        /// Its bytes.
        payload: &'a [u8],
        /// When the kernel received it (`CLOCK_REALTIME` ns), on sockets
        /// with receive timestamps on (client sockets of sessions that
        /// [want them](DatagramSession::wants_receive_timestamps)); only differences
        /// between two stamps are meaningful.
        kernel_ns: Option<u64>,
    },
    /// One packet arrived on a device endpoint (a TUN device: a whole IP
    /// datagram; the addresses are inside it, there is none outside).
    Packet {
        /// The endpoint it arrived on.
        endpoint: EndpointId,
        /// Its bytes.
        payload: &'a [u8],
    },
    /// The endpoint reported an error for an earlier send: an ICMP port
    /// unreachable on a connected client socket. The session decides
    /// whether that ends it.
    Failed {
        /// The endpoint that failed.
        endpoint: EndpointId,
        /// What failed.
        kind: ErrorKind,
    },
}

/// Metadata for the datagram a session appended to the buffer of
/// [`DatagramSession::poll_transmit`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The endpoint it leaves by.
    pub endpoint: EndpointId,
    /// Its destination; `None`: the session's peer.
    pub to: Option<SocketAddr>,
    /// How many bytes were appended.
    pub len: usize,
}

impl Transmit {
    /// `len` bytes to `to` (`None`: the peer) through the home endpoint.
    pub fn new(to: Option<SocketAddr>, len: usize) -> Self {
        Self {
            endpoint: EndpointId::HOME,
            to,
            len,
        }
    }

    /// The same datagram through `endpoint` instead.
    pub fn via(self, endpoint: EndpointId) -> Self {
        Self { endpoint, ..self }
    }
}

/// A protocol state machine for one datagram conversation.
pub trait DatagramSession: Driven {
    /// Feeds input. Never fails: protocol errors become datagrams and/or
    /// an end ([`Driven::poll_close`]).
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>);

    /// Appends the next datagram (at most `limit` bytes) to `buf`. `None`:
    /// nothing to send now (idle, or blocked by a window or pacing). Each
    /// call is exactly one datagram.
    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit>;

    /// Whether it reads [`DatagramInput::Datagram`]'s `kernel_ns`: only
    /// then does a client's socket ask the kernel to stamp each datagram
    /// (the stamps cost every received packet on the host some time).
    /// Asked once, when the session is added.
    fn wants_receive_timestamps(&self) -> bool {
        false
    }
}

/// Lives on a listening TCP socket and turns connections into sessions.
pub trait StreamAcceptor: Driven {
    /// A TCP connection from `peer` was accepted. `None` refuses it (the
    /// reactor closes the socket).
    fn accept(&mut self, cx: &mut Context, peer: SocketAddr) -> Option<Box<dyn StreamSession>>;

    /// Whether calls into this acceptor's sessions may move its deadline
    /// (they share state with it, as hello's sessions share its ID
    /// registry): the reactor then re-reads the deadline after every call
    /// into one of them. Asked once per session, at its admission; `false`
    /// spares every other protocol that read.
    fn sessions_move_deadline(&self) -> bool {
        false
    }
}

/// Where an admitted datagram session lives, and what endpoints it owns.
pub struct Admit {
    /// The per-peer session.
    pub session: Box<dyn DatagramSession>,
    /// Its home endpoint: `false` shares the acceptor's socket (it then
    /// receives every later datagram from the same address, and its
    /// transmits leave through that socket); `true` gives it a socket of
    /// its own on the acceptor's address and a new port (TFTP's new
    /// transfer ID), which receives everything that arrives on it, from
    /// anyone.
    pub own_socket: bool,
    /// More UDP sockets of its own, bound to these addresses (port 0: an
    /// ephemeral port): endpoints 1, 2, … in this order. Whatever arrives
    /// on them, from anyone, goes to the session.
    pub bind: Vec<SocketAddr>,
}

/// What an acceptor makes of a datagram from a peer it has no session for.
pub enum Admission {
    /// Send the bytes the acceptor appended to `reply` back to the sender,
    /// and keep no state.
    Reply,
    /// Drop the datagram silently.
    Ignore,
    /// Start a session; it receives this datagram first.
    Start(Admit),
}

impl Admission {
    /// A session for this peer on the acceptor's socket.
    pub fn shared(session: Box<dyn DatagramSession>) -> Self {
        Self::Start(Admit {
            session,
            own_socket: false,
            bind: Vec::new(),
        })
    }

    /// A session on a socket of its own.
    pub fn own_socket(session: Box<dyn DatagramSession>) -> Self {
        Self::Start(Admit {
            session,
            own_socket: true,
            bind: Vec::new(),
        })
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reply => f.write_str("Reply"),
            Self::Ignore => f.write_str("Ignore"),
            Self::Start(a) => f
                .debug_struct("Start")
                .field("own_socket", &a.own_socket)
                .field("bind", &a.bind)
                .finish_non_exhaustive(),
        }
    }
}

/// Lives on a server UDP socket and turns first contact into sessions or
/// stateless answers.
pub trait DatagramAcceptor: Driven {
    /// A datagram arrived from `from`, which has no session here.
    fn accept(
        &mut self,
        cx: &mut Context,
        from: SocketAddr,
        payload: &[u8],
        reply: &mut BytesMut,
    ) -> Admission;

    /// Most per-peer sessions this acceptor wants on its socket at once,
    /// below the reactor's own bound; `None` leaves the reactor's.
    fn max_sessions(&self) -> Option<usize> {
        None
    }

    /// Drains the sessions this acceptor wants closed now, named by the
    /// slab key they were given (`cx.tag.key` in their own calls). The
    /// reactor asks after every `accept` and, before it acts on the
    /// admission, closes each named session at once: no flush, no linger,
    /// its sockets and its peer's place freed. This is how an acceptor at
    /// its cap evicts an unvalidated session for a new request. A key that
    /// is not a live session is ignored.
    fn poll_evict(&mut self) -> Option<usize> {
        None
    }

    /// As [`StreamAcceptor::sessions_move_deadline`].
    fn sessions_move_deadline(&self) -> bool {
        false
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A tiny harness for scripting sessions in virtual time.

    use super::*;

    /// `ms` milliseconds after the epoch.
    pub(crate) fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A context for entry 0 talking to `peer` at `now`.
    pub(crate) fn cx(now: Instant, peer: Option<SocketAddr>) -> Context {
        Context::new(now, 0, peer)
    }

    /// Calls `handle_input` on a stream session at `now`.
    #[track_caller]
    pub(crate) fn feed(
        s: &mut dyn StreamSession,
        now: Instant,
        peer: SocketAddr,
        input: StreamInput<'_>,
    ) {
        s.handle_input(&mut cx(now, Some(peer)), input);
    }

    /// Calls `handle_input` on a datagram session with one datagram from
    /// `from` on its home endpoint at `now`.
    #[track_caller]
    pub(crate) fn feed_datagram(
        s: &mut dyn DatagramSession,
        now: Instant,
        from: SocketAddr,
        payload: &[u8],
    ) {
        s.handle_input(
            &mut cx(now, Some(from)),
            DatagramInput::Datagram {
                endpoint: EndpointId::HOME,
                from,
                payload,
                kernel_ns: None,
            },
        );
    }

    /// Drains every transmission of a stream session at `now` and returns
    /// their bytes, joined.
    #[track_caller]
    pub(crate) fn drain_tx(s: &mut dyn StreamSession, now: Instant) -> Vec<u8> {
        let mut cx = cx(now, None);
        let mut buf = BytesMut::new();
        while let Some(n) = s.poll_transmit(&mut cx, 64 * 1024, &mut buf) {
            assert!(n > 0 || buf.is_empty(), "empty transmit");
        }
        buf.to_vec()
    }

    /// Drains every datagram a session sends at `now`, with its metadata.
    #[track_caller]
    pub(crate) fn drain_datagrams(
        s: &mut dyn DatagramSession,
        now: Instant,
    ) -> Vec<(Transmit, Vec<u8>)> {
        let mut cx = cx(now, None);
        let mut out = Vec::new();
        let mut buf = BytesMut::new();
        while let Some(t) = s.poll_transmit(&mut cx, 65_507, &mut buf) {
            assert_eq!(t.len, buf.len(), "one datagram per call");
            out.push((t, buf.split().to_vec()));
        }
        out
    }

    /// Every datagram a session sends at `now`, joined.
    #[track_caller]
    pub(crate) fn drain_joined(s: &mut dyn DatagramSession, now: Instant) -> Vec<u8> {
        drain_datagrams(s, now)
            .into_iter()
            .flat_map(|(_, d)| d)
            .collect()
    }
}
