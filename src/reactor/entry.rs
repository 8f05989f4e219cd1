//! One slab entry: a socket (or none), its role, and its I/O state.
//!
//! Owns the per-entry bookkeeping the reactor needs between turns: buffered
//! TCP output, UDP datagrams waiting for room, the timer slot, registered
//! interest and the close protocol. It never calls into a session on its
//! own; the reactor does, through these fields.

use super::timers::TimerSlot;
use crate::proto::{Acceptor, CloseReason, Session};
use crate::time::{Duration, Instant};
use bytes::BytesMut;
use mio::Interest;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use signal_hook_mio::v1_0::Signals;
use std::collections::VecDeque;
use std::hash::RandomState;
use std::net::{Shutdown, SocketAddr};

/// What the entry reads and writes.
pub(super) enum Io {
    Listener(TcpListener),
    Stream(TcpStream),
    Udp(UdpSocket),
    /// A per-peer session on its parent's UDP socket (`Admission::Shared`).
    SharedUdp {
        parent: usize,
    },
    /// A per-peer session on its parent's UDP socket with a socket of its
    /// own as well (`Admission::Relay`). Boxed: few entries have one.
    Relay(Box<Relay>),
    /// The waiter's timerfd (owned by the waiter).
    Timer,
    /// Boxed: one per process, and inline it would make every entry's `Io`
    /// 72 bytes instead of 24.
    Signals(Box<Signals>),
    /// A session with no socket (timer-only; benches and tests).
    Detached,
}

/// The two sockets of a relaying session (the impairment proxy's flow).
pub(super) struct Relay {
    /// The shared socket's entry, through which the peer is reached.
    pub(super) parent: usize,
    /// The session's own socket, registered under the entry's key with
    /// [`UPSTREAM`](super::UPSTREAM) set, for everyone but the peer.
    pub(super) socket: UdpSocket,
}

/// An acceptor and, on a UDP socket, the per-peer sessions it admitted.
pub(super) struct Demux {
    pub(super) acceptor: Box<dyn Acceptor>,
    /// Peer → child entry. Keys are chosen by whoever sends datagrams, so the
    /// map uses SipHash with a random key rather than a fast fixed hash.
    pub(super) peers: hashbrown::HashMap<SocketAddr, usize, RandomState>,
    /// Children whose datagrams wait for the shared socket to drain.
    pub(super) blocked: Vec<usize>,
    /// A TCP listener's accept state; on a UDP socket only `max_open`
    /// counts (its per-peer sessions, held in `peers`).
    pub(super) accept: AcceptState,
}

/// What a TCP listener remembers between turns: its open connections
/// against its cap, and the pause before retrying `accept` after the
/// process ran out of descriptors or memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AcceptState {
    /// Connections accepted here and not yet freed (closing ones too: they
    /// still hold their descriptor).
    pub(super) open: usize,
    /// Most connections (or per-peer sessions) it may hold at once: its
    /// share of the descriptor budget.
    pub(super) max_open: usize,
    /// It stopped accepting at `max_open`; the next connection freed wakes it.
    pub(super) at_cap: bool,
    /// The last pause after a shortage; `None` once an accept succeeded.
    pub(super) backoff: Option<Duration>,
}

impl Default for AcceptState {
    fn default() -> Self {
        Self {
            open: 0,
            max_open: usize::MAX,
            at_cap: false,
            backoff: None,
        }
    }
}

impl Demux {
    pub(super) fn new(acceptor: Box<dyn Acceptor>) -> Self {
        Self {
            acceptor,
            peers: hashbrown::HashMap::with_hasher(RandomState::new()),
            blocked: Vec::new(),
            accept: AcceptState::default(),
        }
    }
}

/// Who drives the entry.
pub(super) enum Role {
    Acceptor(Box<Demux>),
    Session(Box<dyn Session>),
    Internal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Outbound TCP connect in progress.
    Connecting,
    Open,
    /// Flushing, then waiting for the peer's EOF until `until`.
    Closing {
        until: Instant,
    },
    /// On the reap list.
    Dead,
}

/// UDP payload that met `WouldBlock`: one datagram, or several of
/// `segment` bytes each (the last may be shorter) to send with GSO.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) to: SocketAddr,
    pub(super) bytes: BytesMut,
    pub(super) segment: usize,
}

pub(super) struct Entry {
    pub(super) io: Io,
    pub(super) role: Role,
    pub(super) peer: Option<SocketAddr>,
    /// TCP output not yet accepted by the socket.
    pub(super) out: BytesMut,
    /// UDP output that met `WouldBlock`, oldest first.
    pub(super) pending: VecDeque<Pending>,
    pub(super) slot: TimerSlot,
    pub(super) interest: Interest,
    pub(super) phase: Phase,
    /// Reading stopped because the session does not want input.
    pub(super) read_paused: bool,
    pub(super) read_closed: bool,
    pub(super) write_shut: bool,
    /// The last transmit met a full socket (bytes or a file region wait).
    pub(super) write_blocked: bool,
    /// Waiting on the reactor's round-robin list for its next share of the
    /// write budget: until that go it writes nothing, even when an event
    /// says the socket has room (it would jump the queue).
    pub(super) write_queued: bool,
    /// The listener that accepted this connection, whose count of open
    /// connections drops when this entry is freed. A `u32` keeps the entry
    /// within its size (slab keys are bounded by descriptors, far below).
    pub(super) listener: Option<u32>,
}

impl Entry {
    pub(super) fn new(io: Io, role: Role, peer: Option<SocketAddr>, interest: Interest) -> Self {
        Self {
            io,
            role,
            peer,
            out: BytesMut::new(),
            pending: VecDeque::new(),
            slot: TimerSlot::default(),
            interest,
            phase: Phase::Open,
            read_paused: false,
            read_closed: false,
            write_shut: false,
            write_blocked: false,
            write_queued: false,
            listener: None,
        }
    }

    pub(super) fn is_session(&self) -> bool {
        matches!(self.role, Role::Session(_))
    }

    /// Whether `WRITABLE` interest is needed: output waits for room, a
    /// connect is in progress, or (a shared UDP socket) a child waits.
    pub(super) fn wants_write(&self) -> bool {
        !self.out.is_empty()
            || self.write_blocked
            || !self.pending.is_empty()
            || self.phase == Phase::Connecting
            || matches!(&self.role, Role::Acceptor(d) if !d.blocked.is_empty())
    }

    /// Starts closing. A TCP stream closes gracefully (flush, half-close,
    /// wait for the peer's EOF until `linger_until`), because closing with
    /// unread input sends a RST that can destroy the last answer in flight.
    /// Returns true when the entry is dead at once and must be reaped.
    pub(super) fn begin_close(&mut self, reason: &CloseReason, linger_until: Instant) -> bool {
        if matches!(self.phase, Phase::Closing { .. } | Phase::Dead) {
            return false;
        }
        // Pointless when the connection never opened, when the peer already
        // closed with nothing left to send, or when it stopped answering
        // (a timeout): waiting for its EOF would only delay the end.
        let graceful = matches!(self.io, Io::Stream(_))
            && !matches!(reason, CloseReason::Aborted | CloseReason::TimedOut { .. })
            && self.phase == Phase::Open
            && !(self.read_closed && self.out.is_empty());
        if graceful {
            self.phase = Phase::Closing {
                until: linger_until,
            };
            false
        } else {
            self.phase = Phase::Dead;
            true
        }
    }

    /// Shuts the write half of a closing stream down once its output is
    /// out. Returns true if it did so just now.
    pub(super) fn shut_write_if_flushed(&mut self) -> bool {
        let Io::Stream(stream) = &self.io else {
            return false;
        };
        if !matches!(self.phase, Phase::Closing { .. }) || !self.out.is_empty() || self.write_shut {
            return false;
        }
        self.write_shut = true;
        let _ = stream.shutdown(Shutdown::Write);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection pays for an `Entry`; `docs/performance.md` §4
    /// measures what an idle one costs. Growing it should be a decision:
    /// 200 → 208 bytes for `listener`, which per-listener connection caps
    /// need (issue 11, descriptor budget).
    #[test]
    fn an_entry_stays_small() {
        assert!(size_of::<Io>() <= 24, "{}", size_of::<Io>());
        assert!(size_of::<Entry>() <= 208, "{}", size_of::<Entry>());
    }
}
