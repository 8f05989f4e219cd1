//! The pure half of the UDP impairment proxy (`mioperf proxy`).
//!
//! Owns the decisions the proxy makes about each datagram it relays: when
//! it may leave, whether it is lost, copied, delayed or held back, and
//! which way (the [`flow`] of one client, over two endpoints). The sockets
//! and the clock belong to the reactor side; nothing here may touch a
//! socket or read the time, so the same model drives both the real proxy
//! and deterministic simulations.

pub mod flow;
pub mod impair;

pub use flow::{ProxyAcceptor, ProxyConfig};

use core::cell::RefCell;
use impair::Counters;
use std::rc::Rc;

/// The [`Totals`] of one proxy, shared by its acceptor, its flows and
/// whoever reports them ([`ProxyAcceptor::totals`]).
pub type SharedTotals = Rc<RefCell<Totals>>;

/// What every mapping of a proxy did, added up; held behind a
/// [`SharedTotals`] because mappings come and go and the report must
/// outlive them.
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
    /// How late held copies left, against the instant they were due.
    pub lateness: Lateness,
}

/// Width of one [`Lateness`] bucket.
pub const LATENESS_BUCKET_NS: u64 = 5_000;
/// Buckets of [`Lateness`]: 5 µs each, up to 1 ms; later ones go in the last.
pub const LATENESS_BUCKETS: usize = 200;

/// A histogram of release lateness (the time a held copy left minus the
/// time it was due, as the reactor's clock saw it at the start of the turn
/// that sent it): the proxy's own measure of how well it keeps `--latency`
/// and `--rate`. Copies released in the turn they arrived (nothing held
/// them) are not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Lateness {
    /// Copies measured.
    pub count: u64,
    /// The latest, in nanoseconds.
    pub max_ns: u64,
    #[serde(skip)]
    buckets: [u64; LATENESS_BUCKETS],
}

impl Default for Lateness {
    fn default() -> Self {
        Self {
            count: 0,
            max_ns: 0,
            buckets: [0; LATENESS_BUCKETS],
        }
    }
}

impl Lateness {
    /// Counts one copy that left `ns` after it was due.
    pub fn record(&mut self, ns: u64) {
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
        let i = usize::try_from(ns / LATENESS_BUCKET_NS)
            .unwrap_or(usize::MAX)
            .min(LATENESS_BUCKETS - 1);
        self.buckets[i] += 1;
    }

    /// The upper bound of the bucket holding the `per_mille`-th value, in
    /// nanoseconds (the max if that is lower); `None` with no sample.
    pub fn quantile_ns(&self, per_mille: u64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = (self.count * per_mille).div_ceil(1000).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                // The last bucket holds everything later: its bound is the max.
                if i == LATENESS_BUCKETS - 1 {
                    return Some(self.max_ns);
                }
                let upper = (i as u64 + 1) * LATENESS_BUCKET_NS;
                return Some(upper.min(self.max_ns.max(1)));
            }
        }
        Some(self.max_ns)
    }
}
