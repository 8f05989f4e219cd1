//! Idle exit: "no request on any listener for this long" → stop.
//!
//! Owns the last-activity instant and the rule. Pure, so it is tested in
//! virtual time. The reactor notes activity once per turn (a field write,
//! not a heap push) and keeps a single heap entry: when it pops, either the
//! server really was idle for the whole span, or the entry is re-armed at
//! `last_activity + after` — the lazy re-arm that keeps a busy server from
//! pushing one deadline per request.

use crate::time::{Duration, Instant};

/// The idle-exit rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleExit {
    after: Duration,
    last_activity: Instant,
}

impl IdleExit {
    /// Exit after `after` with no activity, counting from `now`.
    pub fn new(after: Duration, now: Instant) -> Self {
        Self {
            after,
            last_activity: now,
        }
    }

    /// A request arrived at `now`.
    pub fn note_activity(&mut self, now: Instant) {
        self.last_activity = self.last_activity.max(now);
    }

    /// When the server exits if nothing else arrives.
    pub fn deadline(&self) -> Instant {
        self.last_activity + self.after
    }

    /// Whether the server has been idle for the whole span at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::timers::{Owner, TimerSlot, Timers};

    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    #[test]
    fn fires_at_exactly_its_deadline() {
        let idle = IdleExit::new(Duration::from_secs(120), ms(0));
        assert!(!idle.is_due(Instant::from_nanos(ms(120_000).as_nanos() - 1)));
        assert!(idle.is_due(ms(120_000)));
    }

    #[test]
    fn activity_pushes_the_deadline() {
        let mut idle = IdleExit::new(Duration::from_secs(10), ms(0));
        idle.note_activity(ms(4_000));
        assert!(!idle.is_due(ms(10_000)));
        assert_eq!(idle.deadline(), ms(14_000));
        // Out-of-order notes never move it back.
        idle.note_activity(ms(1_000));
        assert_eq!(idle.deadline(), ms(14_000));
    }

    /// The reactor's use: one heap entry, re-armed lazily on pop.
    #[test]
    fn lazy_rearm_on_the_heap_fires_once_at_the_true_deadline() {
        let mut timers = Timers::new();
        let mut slot = TimerSlot::default();
        let mut idle = IdleExit::new(Duration::from_secs(10), ms(0));
        slot.sync(&mut timers, Owner::IdleExit, Some(idle.deadline()));
        for t in (1_000..=7_000).step_by(1_000) {
            idle.note_activity(ms(t)); // busy: no heap pushes
        }
        assert_eq!(timers.len(), 1);

        let mut fired_at = None;
        let mut now = ms(0);
        while fired_at.is_none() {
            now = timers.next_deadline().unwrap();
            let (_, stamp, _) = timers.pop_due(now).unwrap();
            assert!(slot.take_if_current(stamp));
            if idle.is_due(now) {
                fired_at = Some(now);
            } else {
                slot.sync(&mut timers, Owner::IdleExit, Some(idle.deadline()));
            }
        }
        assert_eq!(fired_at, Some(ms(17_000)));
        assert_eq!(now, ms(17_000));
    }
}
