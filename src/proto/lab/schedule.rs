//! The absolute pacing grid of a stream.
//!
//! Owns one rule: segment `i` is due at exactly `start + i × interval` and
//! carries `i × interval` as its scheduled time. The grid never moves, so
//! a late wake-up sends every due segment at once (each stamped with its
//! own scheduled time) and lateness never accumulates. Pure: `now` in,
//! answers out.

use crate::time::{Duration, Instant};

/// Which segment is due when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    start: Instant,
    interval_ns: u64,
    count: u64,
    next: u64,
}

impl Schedule {
    /// `count` segments, the first due at `start`.
    pub fn new(start: Instant, interval_ns: u64, count: u64) -> Self {
        Self {
            start,
            interval_ns,
            count,
            next: 0,
        }
    }

    /// Scheduled offset of segment `seq` from the start, in ns.
    pub fn scheduled_ns(&self, seq: u64) -> u64 {
        seq.saturating_mul(self.interval_ns)
    }

    /// When segment `seq` is due.
    pub fn due_at(&self, seq: u64) -> Instant {
        self.start + Duration::from_nanos(self.scheduled_ns(seq))
    }

    /// When the next unsent segment is due; `None` once all are sent.
    pub fn next_due(&self) -> Option<Instant> {
        (self.next < self.count).then(|| self.due_at(self.next))
    }

    /// The next segment if it is due at `now`: `(seq, scheduled_ns)`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(u64, u64)> {
        let due = self.next_due()?;
        if due > now {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        Some((seq, self.scheduled_ns(seq)))
    }

    /// Segments sent so far.
    pub fn sent(&self) -> u64 {
        self.next
    }

    /// Whether every segment has been sent.
    pub fn is_done(&self) -> bool {
        self.next >= self.count
    }

    /// Whether the stream is paced (a zero interval means "as fast as the
    /// socket takes it").
    pub fn is_paced(&self) -> bool {
        self.interval_ns > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Instant {
        Instant::from_micros(v)
    }

    #[test]
    fn segment_i_is_due_at_exactly_start_plus_i_intervals() {
        let mut s = Schedule::new(us(1_000), 100_000, 5);
        assert_eq!(s.pop_due(us(1_000)), Some((0, 0)));
        assert_eq!(s.next_due(), Some(us(1_100)));
        assert_eq!(
            s.pop_due(Instant::from_nanos(us(1_100).as_nanos() - 1)),
            None
        );
        assert_eq!(s.pop_due(us(1_100)), Some((1, 100_000)));
    }

    #[test]
    fn late_wakeup_sends_every_due_segment_with_its_own_stamp() {
        let mut s = Schedule::new(us(0), 100_000, 10);
        s.pop_due(us(0)).unwrap();
        // Woken 350 µs late: segments 1, 2 and 3 are due, and only they.
        let burst: Vec<_> = core::iter::from_fn(|| s.pop_due(us(350))).collect();
        assert_eq!(burst, vec![(1, 100_000), (2, 200_000), (3, 300_000)]);
        // The grid did not move: segment 4 is still due at 400 µs.
        assert_eq!(s.next_due(), Some(us(400)));
    }

    #[test]
    fn lateness_never_accumulates() {
        let mut s = Schedule::new(us(0), 1_000_000, 1_000);
        let mut now = us(0);
        while let Some(due) = s.next_due() {
            // Every wake-up is 300 µs late.
            now = now.max(due + Duration::from_micros(300));
            while s.pop_due(now).is_some() {}
        }
        // The last segment left 300 µs after its slot, not 1000 × 300 µs.
        assert_eq!(now, s.due_at(999) + Duration::from_micros(300));
        assert!(s.is_done());
    }

    #[test]
    fn zero_interval_is_always_due_and_stops_at_count() {
        let mut s = Schedule::new(us(5), 0, 3);
        assert!(!s.is_paced());
        assert_eq!(s.pop_due(us(5)), Some((0, 0)));
        assert_eq!(s.pop_due(us(5)), Some((1, 0)));
        assert_eq!(s.pop_due(us(5)), Some((2, 0)));
        assert_eq!(s.pop_due(us(5)), None);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing() {
        let s = Schedule::new(us(0), u64::MAX / 2, u64::MAX);
        assert_eq!(s.due_at(u64::MAX), Instant::MAX);
    }
}
