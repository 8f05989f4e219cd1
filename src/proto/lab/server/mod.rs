//! The lab server: request lines over TCP, one request per datagram over UDP.
//!
//! Owns what the server answers and when:
//! * **TCP** ([`LabStream`], `stream.rs`): echo lines (kept open), or one
//!   file or stream after which the connection closes (end of transmission
//!   is EOF). Output is produced only as the reactor asks for it, so a
//!   123 MB file never sits in memory and never blocks other sessions.
//! * **UDP**: echo is answered statelessly by [`LabDatagramAcceptor`]
//!   (`accept.rs`, beside [`LabStreamAcceptor`]); a file or a stream gets a
//!   per-peer [`LabDatagrams`] session (`datagrams.rs`) on the same socket,
//!   which sends as the schedule and the peer's send budget
//!   (`proto::budget`, a [`SharedBudget`](crate::proto::budget::SharedBudget)
//!   the acceptor lends it) allow.
//!
//! Both transports emit stream segments the same way (`segment.rs`) and
//! refuse an oversized file with the same line (`file_too_large`).
//!
//! Error lines: `ERROR file too large: limit <file_max>` (the spec's exact
//! text) and `ERROR <reason>` for malformed requests; over TCP the
//! connection stays open after an error, so the client may try again.
//!
//! A TCP connection lives under [`crate::proto::idle`]'s limits: each
//! request line must be complete within `request` of its first byte (the
//! first line's from accept), and the connection closes after `idle`
//! without progress. While a stream waits for its own schedule the peer
//! has nothing to take, so that wait is not idleness.
//!
//! Nothing here touches a socket or the clock: the acceptors and sessions
//! are driven by the reactor through the seam.

mod accept;
mod datagrams;
mod segment;
mod stream;

pub use accept::{LabDatagramAcceptor, LabStreamAcceptor};
pub use datagrams::LabDatagrams;
pub use stream::LabStream;

/// The line that refuses a file above `file_max`, exactly as the spec has it.
pub(super) fn file_too_large(limit: u64) -> String {
    format!("ERROR file too large: limit {limit}")
}

#[cfg(test)]
mod testing {
    //! What the server's tests share.

    use crate::proto::budget::{self, BudgetConfig, SharedBudget};
    use crate::time::Instant;
    use std::net::SocketAddr;

    pub(super) fn us(v: u64) -> Instant {
        Instant::from_micros(v)
    }

    pub(super) fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    /// The default budget (loopback peers are exempt from it).
    pub(super) fn sh() -> SharedBudget {
        budget::shared(BudgetConfig::default())
    }
}
