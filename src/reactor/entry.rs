//! One slab entry: a socket (or none), its role, and its I/O state.
//!
//! Owns the per-entry bookkeeping the reactor needs between turns: buffered
//! TCP output, UDP datagrams waiting for room, the timer slot, registered
//! interest and the close protocol. It never calls into a session on its
//! own; the reactor does, through these fields.

use super::capture::Capture;
use super::sys::tun::TunDevice;
use super::timers::{Stamp, TimerSlot};
use crate::proto::{
    CloseReason, DatagramAcceptor, DatagramSession, Driven, EndpointId, PartId, StreamAcceptor,
    StreamSession,
};
use crate::time::{Duration, Instant};
use bytes::BytesMut;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Interest, Token};
use signal_hook_mio::v1_0::Signals;
use std::collections::VecDeque;
use std::hash::RandomState;
use std::net::{Shutdown, SocketAddr};

/// Bits of a mio token above the slab key that carry the endpoint index.
const ENDPOINT_BITS: u32 = EndpointId::MAX.trailing_zeros();
const ENDPOINT_SHIFT: u32 = usize::BITS - ENDPOINT_BITS;
const KEY_MASK: usize = (1 << ENDPOINT_SHIFT) - 1;

/// What a readiness event names: an entry, and which of its endpoints.
/// Encoded in the mio token as the slab key with the endpoint index in the
/// top bits (slab keys are bounded by descriptors, far below them); the
/// home endpoint's token is the plain key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EventKey {
    pub(super) key: usize,
    pub(super) endpoint: EndpointId,
}

impl EventKey {
    /// The home endpoint of `key`.
    pub(super) fn home(key: usize) -> Self {
        Self {
            key,
            endpoint: EndpointId::HOME,
        }
    }

    pub(super) fn token(self) -> Token {
        debug_assert!(self.key <= KEY_MASK);
        Token(self.key | (usize::from(self.endpoint.0) << ENDPOINT_SHIFT))
    }

    pub(super) fn from_token(token: Token) -> Self {
        Self {
            key: token.0 & KEY_MASK,
            // The shift leaves at most ENDPOINT_BITS bits.
            endpoint: EndpointId(u8::try_from(token.0 >> ENDPOINT_SHIFT).unwrap_or(u8::MAX)),
        }
    }
}

/// What the entry reads and writes: its home endpoint.
pub(super) enum Io {
    Listener(TcpListener),
    Stream(TcpStream),
    Udp(UdpSocket),
    /// A per-peer session whose home endpoint is the UDP socket of the
    /// acceptor that admitted it (`Entry::acceptor`).
    SharedUdp,
    /// The waiter's timerfd (owned by the waiter).
    Timer,
    /// Boxed: one per process, and inline it would make every entry's `Io`
    /// 72 bytes instead of 24.
    Signals(Box<Signals>),
    /// A device session's TUN device (boxed: it carries its name, and
    /// inline it would grow every entry's `Io`).
    Tun(Box<TunDevice>),
    /// A session with no socket (timer-only jobs; benches and tests).
    Detached,
}

/// One of a session's endpoints beyond its home: a UDP socket of its own,
/// registered under the entry's key with its index in the token.
pub(super) struct Endpoint {
    pub(super) socket: UdpSocket,
    pub(super) interest: Interest,
}

/// A TCP listener's acceptor and what the listener remembers between turns.
pub(super) struct Listen {
    pub(super) acceptor: Box<dyn StreamAcceptor>,
    pub(super) accept: AcceptState,
}

/// An acceptor and, on a UDP socket, the per-peer sessions it admitted.
pub(super) struct Demux {
    pub(super) acceptor: Box<dyn DatagramAcceptor>,
    /// Peer → child entry. Keys are chosen by whoever sends datagrams, so the
    /// map uses `SipHash` with a random key rather than a fast fixed hash.
    pub(super) peers: hashbrown::HashMap<SocketAddr, usize, RandomState>,
    /// Children whose datagrams wait for the shared socket to drain.
    pub(super) blocked: Vec<usize>,
    /// Most per-peer sessions it may hold at once: its share of the
    /// descriptor budget.
    pub(super) max_open: usize,
}

/// What a TCP listener remembers between turns: its open connections
/// against its cap, and the pause before retrying `accept` after the
/// process ran out of descriptors or memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AcceptState {
    /// Connections accepted here and not yet freed (closing ones too: they
    /// still hold their descriptor).
    pub(super) open: usize,
    /// Most connections it may hold at once: its share of the descriptor
    /// budget.
    pub(super) max_open: usize,
    /// It stopped accepting at `max_open`; the next connection freed wakes it.
    pub(super) at_cap: bool,
    /// The last pause after a shortage; `None` once an accept succeeded.
    pub(super) backoff: Option<Duration>,
    /// When `accept` is retried after a shortage; until then readiness
    /// events are left to that retry.
    pub(super) retry_at: Option<Instant>,
}

impl Default for AcceptState {
    fn default() -> Self {
        Self {
            open: 0,
            max_open: usize::MAX,
            at_cap: false,
            backoff: None,
            retry_at: None,
        }
    }
}

impl Demux {
    pub(super) fn new(acceptor: Box<dyn DatagramAcceptor>, max_open: usize) -> Self {
        Self {
            acceptor,
            peers: hashbrown::HashMap::with_hasher(RandomState::new()),
            blocked: Vec::new(),
            max_open,
        }
    }
}

/// Who drives the entry.
pub(super) enum Role {
    StreamAcceptor(Box<Listen>),
    DatagramAcceptor(Box<Demux>),
    Stream(Box<dyn StreamSession>),
    Datagram(Box<dyn DatagramSession>),
    /// A timer-only job.
    Job(Box<dyn Driven>),
    Internal,
}

impl Role {
    /// The driven object, if the entry has one.
    pub(super) fn driven(&mut self) -> Option<&mut dyn Driven> {
        match self {
            Self::StreamAcceptor(l) => Some(&mut *l.acceptor),
            Self::DatagramAcceptor(d) => Some(&mut *d.acceptor),
            Self::Stream(s) => Some(&mut **s),
            Self::Datagram(s) => Some(&mut **s),
            Self::Job(j) => Some(&mut **j),
            Self::Internal => None,
        }
    }

    pub(super) fn is_acceptor(&self) -> bool {
        matches!(self, Self::StreamAcceptor(_) | Self::DatagramAcceptor(_))
    }
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

/// What a datagram session's entry holds beyond a stream's.
#[derive(Default)]
pub(super) struct UdpState {
    /// Output that met `WouldBlock`, oldest first, whichever endpoint it
    /// leaves by (sent in order: the front's socket must drain first).
    pub(super) pending: VecDeque<Pending>,
    /// Endpoints beyond the home one.
    pub(super) more: Vec<Endpoint>,
    /// Some endpoint in `more` has `WRITABLE` registered: when none has and
    /// nothing waits for one, updating interest skips them all (the proxy
    /// flushes its flows several times per datagram).
    pub(super) more_writable: bool,
    /// A device session's capture file: its endpoints 1 (inbound) and 2
    /// (outbound), write-only, never registered for readiness.
    pub(super) capture: Option<Capture>,
    /// The live heap arming of each part the session reported
    /// ([`Driven::poll_part_timeout`](crate::proto::Driven::poll_part_timeout)):
    /// a popped part deadline is delivered only if its stamp is here.
    pub(super) parts: hashbrown::HashMap<PartId, Stamp>,
    /// The peer the home socket is connected to (a client's own socket):
    /// datagrams to it leave by `send`, which uses the route the kernel
    /// cached at `connect`, where `sendto` with the address looks the
    /// route up again for every datagram.
    pub(super) connected: Option<SocketAddr>,
}

/// UDP payload that met `WouldBlock`: one datagram, or several of
/// `segment` bytes each (the last may be shorter) to send with GSO.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) endpoint: EndpointId,
    pub(super) to: SocketAddr,
    pub(super) bytes: BytesMut,
    pub(super) segment: usize,
}

#[expect(
    clippy::struct_excessive_bools,
    reason = "independent facts about reading and writing, each set and read alone; an enum would encode their product"
)]
pub(super) struct Entry {
    pub(super) io: Io,
    pub(super) role: Role,
    pub(super) peer: Option<SocketAddr>,
    /// TCP output not yet accepted by the socket.
    pub(super) out: BytesMut,
    /// A datagram session's queue and extra endpoints (boxed: a TCP entry
    /// has none, and an idle connection should cost little).
    pub(super) udp: Option<Box<UdpState>>,
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
    /// The acceptor that admitted this session: its deadline is re-read
    /// after every call into the session (they may share state), a
    /// listener's count of open connections drops when the entry is freed,
    /// and a shared UDP session sends through its socket. A `u32` keeps the
    /// entry within its size (slab keys are bounded by descriptors).
    pub(super) acceptor: Option<u32>,
    /// Calls into this session may move its acceptor's deadline
    /// (`sessions_move_deadline`): re-read it after each.
    pub(super) moves_acceptor: bool,
}

impl Entry {
    #[inline]
    pub(super) fn new(io: Io, role: Role, peer: Option<SocketAddr>, interest: Interest) -> Self {
        Self {
            io,
            role,
            peer,
            out: BytesMut::new(),
            udp: None,
            slot: TimerSlot::default(),
            interest,
            phase: Phase::Open,
            read_paused: false,
            read_closed: false,
            write_shut: false,
            write_blocked: false,
            write_queued: false,
            acceptor: None,
            moves_acceptor: false,
        }
    }

    /// Whether the entry counts as a session (client mode exits when none
    /// is left): everything driven but acceptors.
    pub(super) fn is_session(&self) -> bool {
        matches!(
            self.role,
            Role::Stream(_) | Role::Datagram(_) | Role::Job(_)
        )
    }

    /// The acceptor's key, if it admitted this entry.
    pub(super) fn acceptor_key(&self) -> Option<usize> {
        self.acceptor.map(|k| k as usize)
    }

    /// Whether `WRITABLE` interest is needed on `endpoint`: output waits for
    /// room there, a connect is in progress, or (a shared UDP socket) a
    /// child waits.
    pub(super) fn wants_write(&self, endpoint: EndpointId) -> bool {
        let queued = self.pending_front().is_some_and(|p| p.endpoint == endpoint);
        if endpoint != EndpointId::HOME {
            return queued;
        }
        queued
            || !self.out.is_empty()
            || self.write_blocked
            || self.phase == Phase::Connecting
            || matches!(&self.role, Role::DatagramAcceptor(d) if !d.blocked.is_empty())
    }

    /// The extra endpoints, 1, 2, … in order.
    pub(super) fn more(&self) -> &[Endpoint] {
        self.udp.as_ref().map_or(&[], |u| u.more.as_slice())
    }

    /// The oldest datagram waiting for room.
    pub(super) fn pending_front(&self) -> Option<&Pending> {
        self.udp.as_ref()?.pending.front()
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
    /// need (issue 11, descriptor budget); 208 → 184 when a datagram
    /// session's queue and extra endpoints moved behind one box (issue 12),
    /// which a TCP entry never allocates.
    #[test]
    fn an_entry_stays_small() {
        assert!(size_of::<Io>() <= 24, "{}", size_of::<Io>());
        assert!(size_of::<Entry>() <= 184, "{}", size_of::<Entry>());
    }
}
