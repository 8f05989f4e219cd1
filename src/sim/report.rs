//! What a simulated run tells its caller: how it ended ([`Report`]), why it
//! failed ([`SimError`]) and, when asked, every datagram the links released
//! ([`Delivery`]).
//!
//! Owns only values: nothing here runs the world, so a test can build,
//! compare and print them freely. Every count is a plain integer and every
//! type compares by value, so two runs of one seed compare equal as a whole.

use crate::proto::CloseReason;
use crate::proto::proxy::impair::{ConfigError, Counters};
use crate::time::{Duration, Instant};
use bytes::Bytes;
use core::fmt;
use std::net::SocketAddr;

/// More transmits than this from one session, without its output ever
/// running dry, is a session that never stops producing: an error rather
/// than an endless loop.
pub(super) const MAX_TRANSMITS_PER_FLUSH: u64 = 1 << 20;

/// One direction of the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    /// From the client towards the server.
    Up,
    /// From the server towards the client.
    Down,
}

/// Which end of the path a session plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The client session.
    Client,
    /// A server session (the server session, or one the acceptor admitted).
    Server,
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
    /// A session kept producing datagrams without end.
    Flood {
        /// Which role the session plays.
        role: Role,
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
            Self::Flood { role, now } => write!(
                f,
                "a {role:?} session produced over {MAX_TRANSMITS_PER_FLUSH} datagrams in one flush at {now}"
            ),
        }
    }
}

impl std::error::Error for SimError {}

/// A datagram a link released, as `World::trace` keeps it.
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
    /// Whether an open socket was there to take it (and had room for it).
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

impl PerSide {
    /// Adds one to `role`'s count.
    pub(super) fn bump(&mut self, role: Role) {
        match role {
            Role::Client => self.client += 1,
            Role::Server => self.server += 1,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Why the client closed (its `poll_close`).
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
    /// Datagrams a scripted loss rule (`World::with_loss`) took, by the
    /// side that sent them.
    pub scripted_drops: PerSide,
    /// Datagrams a full socket buffer dropped while its session did not
    /// want input, by the side whose socket it was.
    pub buffer_drops: PerSide,
    /// Datagrams released to an address with no open socket.
    pub undeliverable: u64,
    /// Sessions the acceptor admitted (on its socket or on their own).
    pub admitted: u64,
    /// Server sessions still open when the run stopped.
    pub server_sessions_open: usize,
}
