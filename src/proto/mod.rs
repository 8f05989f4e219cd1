//! Sans-IO protocol sessions: bytes or datagrams and `now` in; bytes,
//! deadlines and requests out.
//!
//! Owns the seam between protocols and the reactor: the [`Session`] and
//! [`Acceptor`] traits, the [`Context`] lent on every call, and the
//! [`Request`] values through which a session asks for what only the reactor
//! can do. Nothing under `proto/` may touch a socket, a file descriptor, a
//! path or the clock: time arrives as `cx.now`, input as [`Input`], and an
//! architecture-guard test in `lib.rs` enforces it.
//!
//! # The order of calls
//! After *any* call into a session (`handle_input` or `handle_timeout`) the
//! reactor calls, always in this order:
//! 1. [`Session::poll_transmit`] until it returns `None` (it may arm
//!    retransmission or pacing timers as it goes);
//! 2. [`Session::poll_timeout`], and arms the deadline heap if it changed;
//! 3. [`Session::poll_request`] until it returns `None`;
//! 4. [`Session::wants_input`], to pause or resume reading.

pub mod arq;
pub mod budget;
pub mod data;
pub mod hello;
pub mod idle;
pub mod lab;
pub mod msg;
pub mod outcome;
pub mod proxy;
pub mod stopwait;
pub mod tcpfile;
pub mod tftp;

use crate::time::Instant;
use bytes::BytesMut;
use core::fmt;
use std::net::SocketAddr;

/// Which end of a conversation a session plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// It started the conversation.
    Client,
    /// It answered a peer that came to it.
    Server,
}

/// The reactor's name for a session in logs: `[#12 127.0.0.1:40000]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The slab key (also the mio token) of the session's entry.
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

/// State that outlives any one session, owned by the reactor and lent to
/// sessions one call at a time.
#[derive(Debug)]
pub struct Shared {
    /// The hello connection-ID registry, shared by hello over TCP and UDP.
    pub hello: hello::Registry,
    /// What may still be sent to UDP peers whose address is not validated.
    pub udp_budget: budget::UdpBudget,
    /// The impairment proxy's counters and its bound on bytes held.
    pub proxy: proxy::Totals,
}

impl Shared {
    /// Shared state around a hello registry, with the default UDP budget.
    pub fn new(hello: hello::Registry) -> Self {
        Self {
            hello,
            udp_budget: budget::UdpBudget::default(),
            proxy: proxy::Totals::default(),
        }
    }
}

/// Per-call view of reactor-owned state. Lent for the duration of one call,
/// never stored.
#[derive(Debug)]
pub struct Context<'a> {
    /// The reactor's clock, read once per turn; never decreases.
    pub now: Instant,
    /// Who is being called, for log lines.
    pub tag: Tag,
    /// Cross-session state.
    pub shared: &'a mut Shared,
}

/// One unit of input from the reactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// In-order bytes from this session's TCP stream. Frames may be split or
    /// joined arbitrarily; the session must take all of them.
    Stream(&'a [u8]),
    /// The peer shut down its write half (a read returned 0).
    StreamEnd,
    /// One datagram that arrived on this session's UDP socket.
    Datagram {
        /// Its source address.
        from: SocketAddr,
        /// Its bytes.
        payload: &'a [u8],
        /// When the kernel received it (`CLOCK_REALTIME` ns), on sockets
        /// with receive timestamps on (client sockets); only differences
        /// between two stamps are meaningful.
        kernel_ns: Option<u64>,
    },
    /// The socket failed: connection refused, reset, unreachable.
    /// The reactor closes the entry after this call.
    Failed(std::io::ErrorKind),
}

/// Metadata for bytes a session appended to the buffer of `poll_transmit`.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// `None` on a connected TCP stream; the destination on a UDP socket.
    pub to: Option<SocketAddr>,
    /// How many bytes were appended.
    pub len: usize,
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

/// Something only the reactor can do on the session's behalf.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Flush what is buffered, then close and free this entry. On TCP the
    /// reactor shuts its write half down and discards input until the peer
    /// closes too (bounded by a linger time), so the last answer is never
    /// lost to a reset.
    Close(CloseReason),
}

/// A protocol state machine for one conversation.
pub trait Session {
    /// Which end this session plays.
    fn side(&self) -> Side;

    /// Feeds input. Never fails: protocol errors become transmits and/or
    /// [`Request::Close`].
    fn handle_input(&mut self, cx: &mut Context<'_>, input: Input<'_>);

    /// Fires every timer due at `cx.now`. A call with nothing due is a no-op,
    /// so spurious calls are safe.
    fn handle_timeout(&mut self, cx: &mut Context<'_>);

    /// Appends at most `limit` bytes of the next transmission to `buf`.
    /// `None`: nothing to send now (idle, or blocked by a window or pacing).
    /// On UDP each call is exactly one datagram.
    fn poll_transmit(
        &mut self,
        cx: &mut Context<'_>,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit>;

    /// The earliest instant at which `handle_timeout` must run, or `None`.
    /// Changes only in `handle_*` and `poll_transmit`, so call it after those.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Drains requests for the reactor. Call after `poll_timeout`.
    fn poll_request(&mut self) -> Option<Request>;

    /// Read-side backpressure: `false` pauses reading from this session's
    /// socket until it turns `true` again.
    fn wants_input(&self) -> bool {
        true
    }

    /// Zero-copy output: a file region to send once every byte from
    /// `poll_transmit` is on the wire. The reactor sends what the socket
    /// takes and reports it with [`advance_file`](Self::advance_file).
    fn poll_file(&mut self) -> Option<FileChunk> {
        None
    }

    /// `n` bytes of the last [`FileChunk`] were sent.
    fn advance_file(&mut self, _cx: &mut Context<'_>, _n: u64) {}

    /// Whether the deadline from `poll_timeout` is a pacing deadline that
    /// should be met to the microsecond: the reactor then wakes early and
    /// spins the last stretch (see `reactor::wait`). Retransmission and
    /// expiry timers leave this `false`.
    fn is_paced(&self) -> bool {
        false
    }

    /// Whether the deadline from `poll_timeout` may fire up to a
    /// millisecond late (retransmission and expiry timers): the reactor then
    /// re-arms its timerfd at most once per millisecond instead of on every
    /// change, which a timer re-armed per packet would otherwise cost.
    fn is_coarse(&self) -> bool {
        false
    }
}

/// What an acceptor makes of a datagram from a peer it has no session for.
#[derive(Debug)]
pub enum Admission {
    /// Send the bytes the acceptor appended to `reply` back to the sender,
    /// and keep no state.
    Reply,
    /// Drop the datagram silently.
    Ignore,
    /// Start a session for this peer on the same socket: it receives this
    /// datagram and every later one from the same address, and its
    /// transmits leave through the same socket.
    Shared(Box<dyn Session>),
    /// Start a session on a socket of its own (the listener's address, a
    /// new port — TFTP's new transfer ID). It receives this datagram first,
    /// then everything that arrives on its socket, from anyone.
    OwnSocket(Box<dyn Session>),
    /// Like [`Shared`](Self::Shared), plus a second UDP socket of the
    /// session's own, bound to `bind` (port 0: an ephemeral port): the
    /// impairment proxy's upstream side. Transmits addressed to the peer
    /// leave through the shared socket, all others through the session's
    /// own; whatever arrives on its own socket, from anyone, is delivered
    /// to the session as well.
    Relay {
        /// The per-peer session.
        session: Box<dyn Session>,
        /// Where its own socket binds.
        bind: SocketAddr,
    },
}

impl fmt::Debug for dyn Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({:?})", self.side())
    }
}

/// Lives on a listening TCP socket or a server UDP socket and turns first
/// contact into sessions or stateless answers.
pub trait Acceptor {
    /// A TCP connection from `peer` was accepted. `None` refuses it (the
    /// reactor closes the socket).
    fn accept_stream(&mut self, cx: &mut Context<'_>, peer: SocketAddr)
    -> Option<Box<dyn Session>>;

    /// A datagram arrived from `from`.
    fn accept_datagram(
        &mut self,
        cx: &mut Context<'_>,
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
    /// reactor asks after every `accept_datagram` and, before it acts on
    /// the admission, closes each named session at once: no flush, no
    /// linger, its socket and its peer's place freed. This is how an
    /// acceptor at its cap evicts an unvalidated session for a new request.
    /// A key that is not a live session is ignored.
    fn poll_evict(&mut self) -> Option<usize> {
        None
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A tiny harness for scripting sessions in virtual time.

    use super::*;
    use crate::time::Duration;

    /// `ms` milliseconds after the epoch.
    pub(crate) fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Shared state with a registry of the given TTL and bound.
    pub(crate) fn shared(ttl: Duration, max_ids: usize) -> Shared {
        Shared::new(hello::Registry::new(ttl, max_ids))
    }

    /// Calls `handle_input` with the given input at `now`.
    #[track_caller]
    pub(crate) fn feed(
        s: &mut dyn Session,
        shared: &mut Shared,
        now: Instant,
        peer: SocketAddr,
        input: Input<'_>,
    ) {
        let mut cx = Context {
            now,
            tag: Tag {
                key: 0,
                peer: Some(peer),
            },
            shared,
        };
        s.handle_input(&mut cx, input);
    }

    /// Drains every transmission at `now` and returns their bytes, joined.
    #[track_caller]
    pub(crate) fn drain_tx(s: &mut dyn Session, shared: &mut Shared, now: Instant) -> Vec<u8> {
        let mut cx = Context {
            now,
            tag: Tag { key: 0, peer: None },
            shared,
        };
        let mut buf = BytesMut::new();
        while let Some(t) = s.poll_transmit(&mut cx, 64 * 1024, &mut buf) {
            assert!(t.len > 0 || buf.is_empty(), "empty transmit");
        }
        buf.to_vec()
    }

    /// Drains every request.
    pub(crate) fn drain_requests(s: &mut dyn Session) -> Vec<Request> {
        core::iter::from_fn(|| s.poll_request()).collect()
    }
}
