//! The pure half of the UDP impairment proxy (`mioperf proxy`).
//!
//! Owns the decisions the proxy makes about each datagram it relays: when
//! it may leave, whether it is lost, copied, delayed or held back. The
//! sockets, the per-client upstream mapping and the clock belong to the
//! reactor side; nothing here may touch a socket or read the time, so the
//! same model drives both the real proxy and deterministic simulations.

pub mod flow;
pub mod impair;

pub use flow::{ProxyAcceptor, ProxyConfig};

use impair::Counters;

/// What every mapping of a proxy did, added up; kept in `proto::Shared`
/// because mappings come and go and the report must outlive them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// The links' counters: `[to the server, to the clients]`.
    pub links: [Counters; 2],
    /// Datagrams dropped because the bytes held by all mappings were at
    /// the bound, `[to the server, to the clients]`.
    pub overflow: [u64; 2],
    /// Datagrams on a mapping's upstream socket from an address that is
    /// not the server's IP.
    pub strays: u64,
    /// Client mappings started.
    pub mappings_opened: u64,
    /// Client mappings forgotten after their idle time.
    pub mappings_idled: u64,
    /// Bytes held right now (queued or in flight) by all mappings.
    pub held_bytes: usize,
}
