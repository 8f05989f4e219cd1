//! A seeded lossy link for deterministic simulations of UDP protocols.
//!
//! Owns one direction of a simulated network path: a queue of datagrams
//! each stamped with the virtual instant it arrives, and a seeded PRNG that
//! decides, per datagram, whether it is dropped, duplicated, or held back
//! long enough for a later one to overtake it. The same seed and the same
//! sends always give the same deliveries, so a failing seed is a
//! reproducible bug report.
//!
//! It must never read a clock, sleep, or touch a socket: time is whatever
//! the driving test passes as `now`, and the driver jumps it to the next
//! delivery or deadline. Test-only; nothing in the product depends on it.

use crate::time::{Duration, Instant, duration_nanos};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// splitmix64: tiny, seedable from any `u64` (zero included), and good
/// enough that the fault decisions of neighbouring seeds are unrelated.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`: the top 53 bits, which an `f64` holds exactly.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `[0, n)`; `n == 0` gives 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// What a link does to the datagrams it carries.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Faults {
    /// Probability that a datagram is lost.
    pub(crate) drop: f64,
    /// Probability that a datagram that was not lost arrives twice.
    pub(crate) duplicate: f64,
    /// Probability that a copy is held back by up to `reorder_max` extra.
    pub(crate) reorder: f64,
    /// One-way delay of every copy.
    pub(crate) delay: Duration,
    /// The largest extra delay of a held-back copy. Several round trips'
    /// worth, so a held-back copy can arrive after the protocol moved on
    /// by more than one block (the very late duplicate).
    pub(crate) reorder_max: Duration,
}

impl Faults {
    /// Immediate, in order, nothing lost.
    pub(crate) const PERFECT: Self = Self {
        drop: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        delay: Duration::ZERO,
        reorder_max: Duration::ZERO,
    };

    /// The acceptance rates of issue 5: 10 % loss, 5 % duplicates, 10 %
    /// reordered, over a 10 ms path whose stragglers lag up to 200 ms.
    pub(crate) const LOSSY: Self = Self {
        drop: 0.10,
        duplicate: 0.05,
        reorder: 0.10,
        delay: Duration::from_millis(10),
        reorder_max: Duration::from_millis(200),
    };
}

/// What a link did, so a test can show its faults actually happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkStats {
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
    pub(crate) duplicated: u64,
    pub(crate) delayed: u64,
    pub(crate) delivered: u64,
}

/// A datagram in flight, ordered by arrival and then by send order, so
/// equal arrival instants keep FIFO order and the heap stays deterministic.
#[derive(Debug)]
struct InFlight<T> {
    at: Instant,
    order: u64,
    datagram: T,
}

impl<T> PartialEq for InFlight<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl<T> Eq for InFlight<T> {}

impl<T> PartialOrd for InFlight<T> {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for InFlight<T> {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// One direction of a path. `T` is what travels: the bytes, or the bytes
/// with the address they were sent to where a driver needs it.
#[derive(Debug)]
pub(crate) struct Link<T = Vec<u8>> {
    rng: Rng,
    faults: Faults,
    queue: BinaryHeap<Reverse<InFlight<T>>>,
    order: u64,
    pub(crate) stats: LinkStats,
}

impl<T: Clone> Link<T> {
    pub(crate) fn new(seed: u64, faults: Faults) -> Self {
        Self {
            rng: Rng::new(seed),
            faults,
            queue: BinaryHeap::new(),
            order: 0,
            stats: LinkStats::default(),
        }
    }

    /// A datagram enters the link at `now`.
    pub(crate) fn send(&mut self, now: Instant, datagram: T) {
        self.stats.sent += 1;
        if self.rng.chance(self.faults.drop) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.faults.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = now + self.faults.delay;
            if self.rng.chance(self.faults.reorder) {
                self.stats.delayed += 1;
                let extra = self.rng.below(duration_nanos(self.faults.reorder_max) + 1);
                at += Duration::from_nanos(extra);
            }
            self.order += 1;
            self.queue.push(Reverse(InFlight {
                at,
                order: self.order,
                datagram: datagram.clone(),
            }));
        }
    }

    /// When the next datagram arrives, if any is in flight.
    pub(crate) fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(f)| f.at)
    }

    /// The next datagram that has arrived by `now`.
    pub(crate) fn receive(&mut self, now: Instant) -> Option<T> {
        if self.next_arrival()? > now {
            return None;
        }
        let Reverse(f) = self.queue.pop()?;
        self.stats.delivered += 1;
        Some(f.datagram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_deliveries() {
        let run = |seed| {
            let mut link: Link = Link::new(seed, Faults::LOSSY);
            for i in 0u32..1_000 {
                link.send(Instant::from_millis(u64::from(i)), i.to_be_bytes().to_vec());
            }
            let mut out = Vec::new();
            while let Some(d) = link.receive(Instant::MAX) {
                out.push(d);
            }
            (out, link.stats)
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7).0, run(8).0);
        let (out, stats) = run(7);
        assert_eq!(stats.delivered, out.len() as u64);
        assert_eq!(
            stats.sent - stats.dropped + stats.duplicated,
            stats.delivered
        );
        // Roughly the configured rates, and overtaking really happens.
        assert!((60..150).contains(&stats.dropped), "{stats:?}");
        assert!((20..90).contains(&stats.duplicated), "{stats:?}");
        assert!(out.windows(2).any(|w| w[0] > w[1]), "something overtook");
    }

    #[test]
    fn a_perfect_link_is_fifo_and_immediate() {
        let mut link: Link = Link::new(1, Faults::PERFECT);
        link.send(Instant::from_millis(5), b"a".to_vec());
        link.send(Instant::from_millis(5), b"b".to_vec());
        assert_eq!(link.next_arrival(), Some(Instant::from_millis(5)));
        assert_eq!(link.receive(Instant::from_millis(4)), None);
        assert_eq!(link.receive(Instant::from_millis(5)), Some(b"a".to_vec()));
        assert_eq!(link.receive(Instant::from_millis(5)), Some(b"b".to_vec()));
        assert_eq!(link.receive(Instant::MAX), None);
    }
}
