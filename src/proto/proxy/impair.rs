//! A seeded impairment model for one direction of a datagram path.
//!
//! Owns what a bad link does to the datagrams offered to it: a FIFO
//! serializer at a byte rate, a tail-drop queue in front of it, a fixed
//! propagation latency, and random loss, duplication, extra delay and
//! reordering drawn from a seeded generator. Datagrams go in with
//! [`Impairment::push`] and come out, in release-time order, through
//! [`Impairment::poll_release`]; [`Impairment::next_release`] is the
//! deadline the reactor arms.
//!
//! It must never read a clock, sleep or touch a socket: `now` is an
//! argument, so the same seed and the same pushes always give the same
//! releases, and a failing run is a reproducible bug report. Bad
//! configuration is an error from [`Impairment::new`], never a panic.

use crate::rng::SplitMix64;
use crate::time::{Duration, Instant, duration_nanos};
use core::fmt;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// What one direction of the link does. The [`Default`] does nothing: no
/// rate limit, no latency, no queue limit, nothing lost, copied or delayed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ImpairConfig {
    /// Serialization rate in bytes per second; `None` is unlimited. A
    /// datagram cannot start leaving before the previous one has finished,
    /// so the rate shapes bursts rather than averaging them.
    pub rate_bytes_per_sec: Option<u64>,
    /// Propagation delay added to every datagram once it has left.
    pub latency: Duration,
    /// Bytes that may wait for the serializer (the one being serialized
    /// does not count). A datagram that would overflow it is tail-dropped.
    /// `None` is unbounded. Without a rate nothing ever waits.
    pub queue_bytes: Option<usize>,
    /// Probability that a datagram is lost before it reaches the queue.
    pub drop: f64,
    /// Probability that a datagram that left is delivered twice. Each copy
    /// draws its own extra delay and reordering.
    pub duplicate: f64,
    /// Probability that a copy is delayed by an extra amount drawn
    /// uniformly from `delay_min..=delay_max`.
    pub delay: f64,
    /// Shortest extra delay.
    pub delay_min: Duration,
    /// Longest extra delay.
    pub delay_max: Duration,
    /// Probability that a copy is held back by an amount drawn uniformly
    /// from `reorder_min..=reorder_max`, so later datagrams overtake it.
    pub reorder: f64,
    /// Shortest hold-back of a reordered copy.
    pub reorder_min: Duration,
    /// Longest hold-back of a reordered copy.
    pub reorder_max: Duration,
    /// Seed of the generator; the same seed replays the same decisions.
    pub seed: u64,
}

/// Why an [`ImpairConfig`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A probability outside `[0, 1]` (or NaN).
    Probability {
        /// The offending field.
        field: &'static str,
    },
    /// A range whose minimum exceeds its maximum.
    Range {
        /// The offending pair's name.
        field: &'static str,
    },
    /// A rate of zero, which would hold every datagram forever; use `None`
    /// for "unlimited".
    ZeroRate,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Probability { field } => write!(f, "{field}: probability must be within [0, 1]"),
            Self::Range { field } => write!(f, "{field}: minimum exceeds maximum"),
            Self::ZeroRate => f.write_str("rate must be positive (omit it for unlimited)"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ImpairConfig {
    /// Checks every probability and range.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found: a probability outside `[0, 1]`, a
    /// range whose minimum exceeds its maximum, or a zero rate.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, p) in [
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("delay", self.delay),
            ("reorder", self.reorder),
        ] {
            // `contains` is false for NaN, which must be refused too.
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::Probability { field });
            }
        }
        if self.delay_min > self.delay_max {
            return Err(ConfigError::Range { field: "delay" });
        }
        if self.reorder_min > self.reorder_max {
            return Err(ConfigError::Range { field: "reorder" });
        }
        if self.rate_bytes_per_sec == Some(0) {
            return Err(ConfigError::ZeroRate);
        }
        Ok(())
    }
}

/// What the link did, for the proxy's final report and for tests that
/// must show each impairment actually happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Datagrams pushed.
    pub offered: u64,
    /// Copies released (duplicates included).
    pub forwarded: u64,
    /// Bytes of the released copies.
    pub bytes_forwarded: u64,
    /// Datagrams lost at random.
    pub dropped: u64,
    /// Datagrams tail-dropped because the queue was full.
    pub queue_dropped: u64,
    /// Datagrams that got a second copy.
    pub duplicated: u64,
    /// Copies given an extra delay.
    pub delayed: u64,
    /// Copies held back so later ones may overtake them.
    pub reordered: u64,
}

impl Counters {
    /// Adds what happened between `earlier` and `later`, two readings of
    /// the same link, so many short-lived links can feed one total.
    pub fn add_progress(&mut self, later: &Self, earlier: &Self) {
        let fields = [
            (&mut self.offered, later.offered, earlier.offered),
            (&mut self.forwarded, later.forwarded, earlier.forwarded),
            (
                &mut self.bytes_forwarded,
                later.bytes_forwarded,
                earlier.bytes_forwarded,
            ),
            (&mut self.dropped, later.dropped, earlier.dropped),
            (
                &mut self.queue_dropped,
                later.queue_dropped,
                earlier.queue_dropped,
            ),
            (&mut self.duplicated, later.duplicated, earlier.duplicated),
            (&mut self.delayed, later.delayed, earlier.delayed),
            (&mut self.reordered, later.reordered, earlier.reordered),
        ];
        for (total, now, then) in fields {
            *total += now.saturating_sub(then);
        }
    }
}

/// The fate of one pushed datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Lost at random.
    Dropped,
    /// Tail-dropped: the queue was full.
    QueueDropped,
    /// Will be released; `copies` is 1, or 2 when duplicated.
    Accepted {
        /// How many copies will come out.
        copies: u8,
    },
}

/// Uniform in `min..=max`, to the nanosecond.
fn between(rng: &mut SplitMix64, min: Duration, max: Duration) -> Duration {
    let (lo, hi) = (duration_nanos(min), duration_nanos(max));
    let span = hi.saturating_sub(lo);
    let offset = match span.checked_add(1) {
        // Modulo bias is below 2^-30 for any span under a second; a
        // simulation cannot tell.
        Some(n) => rng.next_u64() % n,
        None => rng.next_u64(),
    };
    Duration::from_nanos(lo.saturating_add(offset))
}

/// A copy waiting for its release instant, ordered by that instant and
/// then by push order, so ties come out first-in first-out.
#[derive(Debug)]
struct Held<T> {
    at: Instant,
    order: u64,
    len: usize,
    datagram: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl<T> Eq for Held<T> {}

impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// One direction of an impaired link carrying datagrams of type `T`
/// (`Clone` so a duplicate can be made; use a cheap-to-clone buffer).
#[derive(Debug)]
pub struct Impairment<T> {
    config: ImpairConfig,
    rng: SplitMix64,
    /// When the serializer finishes the last accepted datagram.
    link_free_at: Instant,
    /// Accepted datagrams whose serialization had not started when last
    /// looked at: (start instant, length). Front starts first.
    waiting: VecDeque<(Instant, usize)>,
    waiting_bytes: usize,
    held: BinaryHeap<Reverse<Held<T>>>,
    next_order: u64,
    counters: Counters,
}

impl<T: Clone> Impairment<T> {
    /// A link with the given behaviour, or why the configuration is wrong.
    ///
    /// # Errors
    ///
    /// What [`ImpairConfig::validate`] finds wrong.
    pub fn new(config: ImpairConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            rng: SplitMix64::new(config.seed),
            config,
            link_free_at: Instant::ZERO,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            held: BinaryHeap::new(),
            next_order: 0,
            counters: Counters::default(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ImpairConfig {
        &self.config
    }

    /// What has happened so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Copies accepted but not yet released.
    pub fn in_flight(&self) -> usize {
        self.held.len()
    }

    /// Offers a datagram of `len` bytes at `now`. `now` must not go
    /// backwards between calls; if it does, the link simply treats the
    /// earlier instant as "still busy".
    pub fn push(&mut self, now: Instant, datagram: T, len: usize) -> Verdict {
        self.counters.offered += 1;
        if self.rng.chance(self.config.drop) {
            self.counters.dropped += 1;
            return Verdict::Dropped;
        }

        // Datagrams whose serialization has begun have left the queue.
        while let Some(&(start, n)) = self.waiting.front() {
            if start > now {
                break;
            }
            self.waiting.pop_front();
            self.waiting_bytes -= n;
        }
        let start = now.max(self.link_free_at);
        let must_wait = start > now;
        if must_wait
            && let Some(cap) = self.config.queue_bytes
            && self.waiting_bytes.saturating_add(len) > cap
        {
            self.counters.queue_dropped += 1;
            return Verdict::QueueDropped;
        }
        if must_wait {
            self.waiting.push_back((start, len));
            self.waiting_bytes += len;
        }
        let departs = start.saturating_add(self.serialization(len));
        self.link_free_at = departs;
        let arrives = departs.saturating_add(self.config.latency);

        let copies = if self.rng.chance(self.config.duplicate) {
            self.counters.duplicated += 1;
            2
        } else {
            1
        };
        if copies == 2 {
            self.hold(arrives, datagram.clone(), len);
        }
        self.hold(arrives, datagram, len);
        Verdict::Accepted { copies }
    }

    /// The next copy due at `now`, in release-time order, ties in push
    /// order; `None` when nothing is due yet.
    pub fn poll_release(&mut self, now: Instant) -> Option<T> {
        self.poll_release_due(now).map(|(_, datagram)| datagram)
    }

    /// [`poll_release`](Self::poll_release), with the instant the copy was
    /// due, so a caller can tell how late it actually left.
    pub fn poll_release_due(&mut self, now: Instant) -> Option<(Instant, T)> {
        if self.held.peek()?.0.at > now {
            return None;
        }
        let Reverse(held) = self.held.pop()?;
        self.counters.forwarded += 1;
        self.counters.bytes_forwarded += held.len as u64;
        Some((held.at, held.datagram))
    }

    /// When the next copy is due, for the reactor's deadline heap.
    pub fn next_release(&self) -> Option<Instant> {
        self.held.peek().map(|Reverse(h)| h.at)
    }

    /// Time to clock `len` bytes out, rounded up so a rate is never beaten.
    fn serialization(&self, len: usize) -> Duration {
        let Some(rate) = self.config.rate_bytes_per_sec else {
            return Duration::ZERO;
        };
        let ns = (len as u128 * 1_000_000_000).div_ceil(u128::from(rate.max(1)));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Schedules one copy, with its own extra delay and hold-back.
    fn hold(&mut self, arrives: Instant, datagram: T, len: usize) {
        let mut at = arrives;
        let c = self.config;
        if self.rng.chance(c.delay) {
            self.counters.delayed += 1;
            at = at.saturating_add(between(&mut self.rng, c.delay_min, c.delay_max));
        }
        if self.rng.chance(c.reorder) {
            self.counters.reordered += 1;
            at = at.saturating_add(between(&mut self.rng, c.reorder_min, c.reorder_max));
        }
        let order = self.next_order;
        self.next_order += 1;
        self.held.push(Reverse(Held {
            at,
            order,
            len,
            datagram,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    /// Releases every copy at its own instant: (instant, datagram).
    fn drain<T: Clone>(link: &mut Impairment<T>) -> Vec<(Instant, T)> {
        let mut out = Vec::new();
        while let Some(at) = link.next_release() {
            let d = link.poll_release(at).expect("due at its own instant");
            out.push((at, d));
        }
        out
    }

    /// Pushes `n` datagrams of `len` bytes, one every `gap`, releasing
    /// what is due as time moves, and returns (instant, id) in release order.
    fn run(config: ImpairConfig, n: u32, len: usize, gap: Duration) -> Vec<(Instant, u32)> {
        let mut link = Impairment::new(config).unwrap();
        let mut out = Vec::new();
        let mut now = Instant::ZERO;
        for id in 0..n {
            while let Some(at) = link.next_release().filter(|&at| at <= now) {
                out.push((at, link.poll_release(now).unwrap()));
            }
            link.push(now, id, len);
            now += gap;
        }
        out.extend(drain(&mut link));
        out
    }

    fn everything(seed: u64) -> ImpairConfig {
        ImpairConfig {
            rate_bytes_per_sec: Some(1_000_000),
            latency: 10 * MS,
            queue_bytes: Some(20_000),
            drop: 0.1,
            duplicate: 0.1,
            delay: 0.2,
            delay_min: MS,
            delay_max: 5 * MS,
            reorder: 0.1,
            reorder_min: 2 * MS,
            reorder_max: 20 * MS,
            seed,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_releases() {
        let a = run(everything(7), 2_000, 1_200, MS);
        let b = run(everything(7), 2_000, 1_200, MS);
        assert!(a.len() > 1_000);
        assert_eq!(a, b);
    }

    #[test]
    fn different_seeds_give_different_releases() {
        let a = run(everything(7), 2_000, 1_200, MS);
        let b = run(everything(8), 2_000, 1_200, MS);
        assert_ne!(a, b);
    }

    #[test]
    fn no_impairment_is_fifo_at_exactly_now_plus_latency() {
        let config = ImpairConfig {
            latency: 25 * MS,
            ..ImpairConfig::default()
        };
        let out = run(config, 500, 1_000, Duration::from_micros(300));
        assert_eq!(out.len(), 500);
        for (i, &(at, id)) in out.iter().enumerate() {
            assert_eq!(id as usize, i);
            let pushed = Instant::from_micros(300 * u64::from(id));
            assert_eq!(at, pushed + 25 * MS);
        }
    }

    #[test]
    fn equal_release_instants_come_out_in_push_order() {
        let config = ImpairConfig {
            latency: 3 * MS,
            duplicate: 0.5,
            seed: 1,
            ..ImpairConfig::default()
        };
        let mut link = Impairment::new(config).unwrap();
        for id in 0..200u32 {
            link.push(Instant::ZERO, id, 10);
        }
        let out = drain(&mut link);
        assert!(out.iter().all(|&(at, _)| at == Instant::ZERO + 3 * MS));
        // A duplicate's two copies sit side by side, in push order overall.
        let ids: Vec<u32> = out.iter().map(|&(_, id)| id).collect();
        assert!(ids.is_sorted(), "{ids:?}");
        assert_eq!(ids.len() as u64, 200 + link.counters().duplicated);
    }

    #[test]
    fn a_thousand_kilobytes_at_one_megabyte_per_second_take_one_second() {
        let config = ImpairConfig {
            rate_bytes_per_sec: Some(1_000_000),
            ..ImpairConfig::default()
        };
        let mut link = Impairment::new(config).unwrap();
        for id in 0..1_000u32 {
            assert_eq!(
                link.push(Instant::ZERO, id, 1_000),
                Verdict::Accepted { copies: 1 }
            );
        }
        let out = drain(&mut link);
        assert_eq!(out.len(), 1_000);
        for (i, &(at, id)) in out.iter().enumerate() {
            assert_eq!(id as usize, i);
            assert_eq!(at, Instant::from_millis(i as u64 + 1));
        }
        assert_eq!(out.last().unwrap().0, Instant::from_secs(1));
        assert_eq!(link.counters().bytes_forwarded, 1_000_000);
    }

    #[test]
    fn a_full_queue_tail_drops_exactly_the_overflow() {
        let config = ImpairConfig {
            rate_bytes_per_sec: Some(1_000_000),
            queue_bytes: Some(10_000),
            ..ImpairConfig::default()
        };
        let mut link = Impairment::new(config).unwrap();
        // One starts at once; ten fill the queue; the other 89 overflow it.
        let verdicts: Vec<_> = (0..100u32)
            .map(|id| link.push(Instant::ZERO, id, 1_000))
            .collect();
        assert!(
            verdicts[..11]
                .iter()
                .all(|v| *v == Verdict::Accepted { copies: 1 })
        );
        assert!(verdicts[11..].iter().all(|v| *v == Verdict::QueueDropped));
        assert_eq!(link.counters().queue_dropped, 89);
        // 2.5 ms later two more have started, which frees exactly two slots.
        let later = Instant::from_micros(2_500);
        assert_eq!(
            link.push(later, 100, 1_000),
            Verdict::Accepted { copies: 1 }
        );
        assert_eq!(
            link.push(later, 101, 1_000),
            Verdict::Accepted { copies: 1 }
        );
        assert_eq!(link.push(later, 102, 1_000), Verdict::QueueDropped);
        let ids: Vec<u32> = drain(&mut link).into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100, 101]);
    }

    #[test]
    fn a_drop_probability_of_a_fifth_drops_a_fifth() {
        let config = ImpairConfig {
            drop: 0.2,
            seed: 42,
            ..ImpairConfig::default()
        };
        let mut link = Impairment::new(config).unwrap();
        for id in 0..100_000u32 {
            link.push(Instant::ZERO, id, 100);
        }
        let c = link.counters();
        assert!((19_000..=21_000).contains(&c.dropped), "{c:?}");
        assert_eq!(link.in_flight() as u64, 100_000 - c.dropped);
    }

    #[test]
    fn duplicates_counted_are_duplicates_delivered() {
        let config = ImpairConfig {
            duplicate: 0.3,
            latency: 5 * MS,
            seed: 3,
            ..ImpairConfig::default()
        };
        let out = run(config, 10_000, 500, MS);
        let mut seen = vec![0u32; 10_000];
        for &(_, id) in &out {
            seen[id as usize] += 1;
        }
        let twice = seen.iter().filter(|&&n| n == 2).count() as u64;
        assert!(seen.iter().all(|&n| n == 1 || n == 2));
        let mut link = Impairment::new(config).unwrap();
        for id in 0..10_000u32 {
            link.push(Instant::from_millis(u64::from(id)), id, 500);
        }
        assert_eq!(link.counters().duplicated, twice);
        assert!((2_700..=3_300).contains(&twice), "{twice}");
        assert_eq!(out.len() as u64, 10_000 + twice);
    }

    #[test]
    fn reordered_copies_are_the_ones_overtaken() {
        let config = ImpairConfig {
            latency: 10 * MS,
            reorder: 0.1,
            reorder_min: 5 * MS,
            reorder_max: 20 * MS,
            seed: 11,
            ..ImpairConfig::default()
        };
        let mut link = Impairment::new(config).unwrap();
        for id in 0..10_000u32 {
            link.push(Instant::from_millis(u64::from(id)), id, 500);
        }
        let reordered = link.counters().reordered;
        let out = drain(&mut link);
        // A copy is overtaken when some later-pushed copy came out first.
        let mut overtaken = 0u64;
        let mut newest = None;
        for &(_, id) in &out {
            match newest {
                Some(n) if id < n => overtaken += 1,
                _ => newest = Some(id),
            }
        }
        assert!((900..=1_100).contains(&reordered), "{reordered}");
        // Only held-back copies can be overtaken, and a 5 ms hold-back over
        // a 1 ms gap is overtaken unless the next five are all held too.
        assert!(overtaken <= reordered, "{overtaken} > {reordered}");
        assert!(
            overtaken * 100 >= reordered * 99,
            "{overtaken} of {reordered}"
        );
    }

    #[test]
    fn extra_delay_stays_within_its_range() {
        let config = ImpairConfig {
            latency: 10 * MS,
            delay: 0.5,
            delay_min: 3 * MS,
            delay_max: 7 * MS,
            seed: 5,
            ..ImpairConfig::default()
        };
        let mut link = Impairment::new(config).unwrap();
        for id in 0..10_000u64 {
            link.push(Instant::from_millis(id), id, 100);
        }
        let out = drain(&mut link);
        let mut extra_seen = 0;
        let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
        for &(at, id) in &out {
            let extra = (at - Instant::from_millis(id))
                .checked_sub(10 * MS)
                .expect("no datagram leaves before its latency");
            if extra > Duration::ZERO {
                assert!((3 * MS..=7 * MS).contains(&extra), "{extra:?}");
                extra_seen += 1;
                lo = lo.min(extra);
                hi = hi.max(extra);
            }
        }
        assert_eq!(extra_seen, link.counters().delayed);
        assert!((4_500..=5_500).contains(&extra_seen), "{extra_seen}");
        // The draws spread across the range rather than sticking to an end.
        assert!(
            lo < 3 * MS + MS / 10 && hi + MS / 10 > 7 * MS,
            "{lo:?}..{hi:?}"
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let ok = ImpairConfig::default();
        assert!(Impairment::<u8>::new(ok).is_ok());
        let bad = [
            (
                ImpairConfig { drop: 1.5, ..ok },
                ConfigError::Probability { field: "drop" },
            ),
            (
                ImpairConfig {
                    duplicate: -0.1,
                    ..ok
                },
                ConfigError::Probability { field: "duplicate" },
            ),
            (
                ImpairConfig {
                    delay: f64::NAN,
                    ..ok
                },
                ConfigError::Probability { field: "delay" },
            ),
            (
                ImpairConfig {
                    reorder: f64::INFINITY,
                    ..ok
                },
                ConfigError::Probability { field: "reorder" },
            ),
            (
                ImpairConfig {
                    delay_min: 2 * MS,
                    delay_max: MS,
                    ..ok
                },
                ConfigError::Range { field: "delay" },
            ),
            (
                ImpairConfig {
                    reorder_min: 2 * MS,
                    reorder_max: MS,
                    ..ok
                },
                ConfigError::Range { field: "reorder" },
            ),
            (
                ImpairConfig {
                    rate_bytes_per_sec: Some(0),
                    ..ok
                },
                ConfigError::ZeroRate,
            ),
        ];
        for (config, want) in bad {
            assert_eq!(Impairment::<u8>::new(config).unwrap_err(), want);
            assert!(!want.to_string().is_empty());
        }
        // The edges of [0, 1] are legal.
        let edges = ImpairConfig {
            drop: 1.0,
            duplicate: 0.0,
            ..ok
        };
        let mut link = Impairment::new(edges).unwrap();
        assert_eq!(link.push(Instant::ZERO, 1u8, 10), Verdict::Dropped);
    }

    #[test]
    fn empty_and_largest_datagrams_are_carried() {
        let config = ImpairConfig {
            rate_bytes_per_sec: Some(1),
            latency: MS,
            queue_bytes: Some(0),
            ..ImpairConfig::default()
        };
        let mut link = Impairment::new(config).unwrap();
        // Empty: no serialization time, so it never occupies the link.
        assert_eq!(
            link.push(Instant::ZERO, 0u8, 0),
            Verdict::Accepted { copies: 1 }
        );
        assert_eq!(link.next_release(), Some(Instant::ZERO + MS));
        // Largest UDP payload at one byte per second: 65 507 s on the wire.
        assert_eq!(
            link.push(Instant::ZERO, 1u8, 65_507),
            Verdict::Accepted { copies: 1 }
        );
        // The link is busy and the queue holds nothing: tail drop.
        assert_eq!(link.push(Instant::ZERO, 2u8, 1), Verdict::QueueDropped);
        let out = drain(&mut link);
        assert_eq!(
            out,
            [
                (Instant::ZERO + MS, 0),
                (Instant::from_secs(65_507) + MS, 1)
            ]
        );
        assert_eq!(link.counters().bytes_forwarded, 65_507);
    }

    #[test]
    fn huge_delays_saturate_instead_of_overflowing() {
        let config = ImpairConfig {
            latency: Duration::MAX,
            delay: 1.0,
            delay_min: Duration::ZERO,
            delay_max: Duration::MAX,
            reorder: 1.0,
            reorder_max: Duration::MAX,
            ..ImpairConfig::default()
        };
        let mut link = Impairment::new(config).unwrap();
        link.push(Instant::from_secs(1), 9u8, 65_507);
        assert_eq!(link.next_release(), Some(Instant::MAX));
        assert_eq!(link.poll_release(Instant::MAX), Some(9));
    }

    fn arb_config() -> impl Strategy<Value = ImpairConfig> {
        (
            (
                proptest::option::of(1u64..10_000_000),
                0u64..50_000_000,
                proptest::option::of(0usize..200_000),
                0.0..=1.0f64,
                0.0..=1.0f64,
                0.0..=1.0f64,
            ),
            (
                0u64..20_000_000,
                0u64..20_000_000,
                0.0..=1.0f64,
                0u64..20_000_000,
                0u64..20_000_000,
                any::<u64>(),
            ),
        )
            .prop_map(
                |((rate, lat, queue, drop, duplicate, delay), (d1, d2, reorder, r1, r2, seed))| {
                    ImpairConfig {
                        rate_bytes_per_sec: rate,
                        latency: Duration::from_nanos(lat),
                        queue_bytes: queue,
                        drop,
                        duplicate,
                        delay,
                        delay_min: Duration::from_nanos(d1.min(d2)),
                        delay_max: Duration::from_nanos(d1.max(d2)),
                        reorder,
                        reorder_min: Duration::from_nanos(r1.min(r2)),
                        reorder_max: Duration::from_nanos(r1.max(r2)),
                        seed,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_links_never_panic_and_release_in_time_order(
            config in arb_config(),
            ops in proptest::collection::vec(
                (0u64..5_000_000, 0usize..=65_507, any::<bool>()),
                0..200,
            ),
        ) {
            let mut link = Impairment::new(config).unwrap();
            let mut now = Instant::ZERO;
            let mut last = Instant::ZERO;
            let mut released = 0u64;
            let mut accepted = 0u64;
            let mut release = |link: &mut Impairment<usize>, now: Instant| -> Result<(), TestCaseError> {
                while let Some(at) = link.next_release().filter(|&at| at <= now) {
                    let len = link.poll_release(now);
                    prop_assert!(len.is_some());
                    prop_assert!(at >= last, "{} before {}", at, last);
                    last = at;
                    released += 1;
                }
                prop_assert_eq!(link.poll_release(now), None);
                Ok(())
            };
            for (advance, len, poll) in ops {
                now += Duration::from_nanos(advance);
                if let Verdict::Accepted { copies } = link.push(now, len, len) {
                    accepted += u64::from(copies);
                }
                if poll {
                    release(&mut link, now)?;
                }
            }
            release(&mut link, Instant::MAX)?;
            let c = link.counters();
            prop_assert_eq!(link.in_flight(), 0);
            prop_assert_eq!(released, accepted);
            prop_assert_eq!(c.forwarded, accepted);
            prop_assert_eq!(
                c.offered,
                c.dropped + c.queue_dropped + (accepted - c.duplicated)
            );
        }
    }
}
