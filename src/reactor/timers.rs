//! The deadline heap: one min-heap for every timer in the process.
//!
//! Owns every pending deadline: those of sessions, acceptors and timer-only
//! jobs (one per slab entry), and idle exit. It never calls anyone: the reactor pops what is due and asks the
//! owner whether the popped stamp is still the one it armed.
//!
//! Invariants:
//! * Stamps come from one counter and are never reused, so a heap entry can
//!   only ever match the arming that created it — not a later arming of the
//!   same owner, and not a new owner that reused a slab key.
//! * Re-arming never searches the heap: the old entry stays, *stale*, and is
//!   discarded when it pops (lazy cancellation). A stale entry can only cause
//!   an early, harmless wake-up.
//! * Ties pop in arming order (the stamp breaks them), so runs are
//!   deterministic.
//! * [`Timers::compact`] bounds the memory stale entries take under churn.
//!
//! Each deadline says how punctual its wake-up must be ([`Wake`]): a pacing
//! deadline makes the reactor spin for the last microseconds, an ordinary
//! one arms the timerfd at exactly its instant, and a coarse one (expiry
//! bookkeeping that nothing waits on) may be rounded up to the next
//! millisecond, so that a stream of them re-arms the timerfd at most once
//! per millisecond.

use crate::proto::PartId;
use crate::time::Instant;
use core::cmp::Ordering;
use core::fmt;
use std::collections::BinaryHeap;

/// Identifies one arming. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(u64);

pub use crate::proto::Wake;

/// Who a deadline belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The session, acceptor or job in this slab entry.
    Entry(usize),
    /// One part of the session in this slab entry (a TUN stack's TCP
    /// connection): see `Driven::poll_part_timeout`.
    Part(usize, PartId),
    /// The reactor's idle-exit check.
    IdleExit,
}

#[derive(Clone, Copy, Debug)]
struct Deadline {
    at: Instant,
    stamp: Stamp,
    owner: Owner,
    wake: Wake,
}

// `BinaryHeap` is a max-heap: order by (at, stamp) reversed to pop the
// earliest first. Stamps are unique, so the owner never takes part.
impl Ord for Deadline {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.stamp).cmp(&(self.at, self.stamp))
    }
}

impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.stamp == other.stamp
    }
}

impl Eq for Deadline {}

/// The min-heap of deadlines.
#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Deadline>,
    next_stamp: u64,
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers")
            .field("len", &self.heap.len())
            .field("next", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

impl Timers {
    /// An empty heap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a deadline for `owner` at `at`, and returns its fresh stamp.
    pub fn arm(&mut self, owner: Owner, at: Instant) -> Stamp {
        self.arm_with(owner, at, Wake::Exact)
    }

    /// [`arm`](Self::arm), saying how punctual the wake-up must be.
    pub fn arm_with(&mut self, owner: Owner, at: Instant, wake: Wake) -> Stamp {
        let stamp = Stamp(self.next_stamp);
        self.next_stamp += 1;
        self.heap.push(Deadline {
            at,
            stamp,
            owner,
            wake,
        });
        stamp
    }

    /// The earliest deadline, possibly stale.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|d| d.at)
    }

    /// The earliest deadline and how punctual it must be.
    pub fn next_wake(&self) -> Option<(Instant, Wake)> {
        self.heap.peek().map(|d| (d.at, d.wake))
    }

    /// Removes and returns the earliest deadline if it is due at `now`
    /// (`at <= now`). The caller checks whether the stamp is still live.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Owner, Stamp, Instant)> {
        if self.heap.peek()?.at > now {
            return None;
        }
        self.heap.pop().map(|d| (d.owner, d.stamp, d.at))
    }

    /// Entries in the heap, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the heap is empty.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Drops every entry for which `is_live` says false. O(n): call it only
    /// when stale entries clearly outnumber live ones.
    pub fn compact(&mut self, mut is_live: impl FnMut(Owner, Stamp) -> bool) {
        let mut entries = core::mem::take(&mut self.heap).into_vec();
        entries.retain(|d| is_live(d.owner, d.stamp));
        self.heap = BinaryHeap::from(entries);
    }
}

/// The owner's half of a timer: what it has armed right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerSlot {
    armed: Option<(Instant, Stamp)>,
    wake: Wake,
}

impl TimerSlot {
    /// Makes the armed deadline `want`. Pushes onto the heap only when `want`
    /// differs from what is armed; the old entry goes stale.
    pub fn sync(&mut self, timers: &mut Timers, owner: Owner, want: Option<Instant>) {
        self.sync_with(timers, owner, want, Wake::Exact);
    }

    /// [`sync`](Self::sync), saying how punctual the wake-up must be.
    pub fn sync_with(
        &mut self,
        timers: &mut Timers,
        owner: Owner,
        want: Option<Instant>,
        wake: Wake,
    ) {
        if self.armed.map(|(at, _)| at) == want && (want.is_none() || self.wake == wake) {
            return;
        }
        self.wake = wake;
        self.armed = want.map(|at| (at, timers.arm_with(owner, at, wake)));
    }

    /// True (and disarms) when `stamp` is the live arming; false for a stale pop.
    pub fn take_if_current(&mut self, stamp: Stamp) -> bool {
        if self.is_current(stamp) {
            self.armed = None;
            true
        } else {
            false
        }
    }

    /// Whether `stamp` is the live arming.
    pub fn is_current(&self, stamp: Stamp) -> bool {
        matches!(self.armed, Some((_, s)) if s == stamp)
    }

    /// The armed deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.armed.map(|(at, _)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slab::Slab;

    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let mut t = Timers::new();
        t.arm(Owner::Entry(1), ms(30));
        t.arm(Owner::Entry(2), ms(10));
        t.arm(Owner::Entry(3), ms(20));
        assert_eq!(t.next_deadline(), Some(ms(10)));
        assert!(t.pop_due(ms(9)).is_none());
        assert_eq!(t.pop_due(ms(10)).unwrap().0, Owner::Entry(2));
        assert!(t.pop_due(ms(19)).is_none());
        assert_eq!(t.pop_due(ms(100)).unwrap().0, Owner::Entry(3));
        assert_eq!(t.pop_due(ms(100)).unwrap().0, Owner::Entry(1));
        assert!(t.is_empty());
    }

    #[test]
    fn ties_pop_in_arming_order() {
        let mut t = Timers::new();
        for k in 0..100 {
            t.arm(Owner::Entry(k), ms(5));
        }
        for k in 0..100 {
            assert_eq!(t.pop_due(ms(5)).unwrap().0, Owner::Entry(k));
        }
    }

    #[test]
    fn rearm_makes_old_entry_stale() {
        let mut t = Timers::new();
        let mut slot = TimerSlot::default();
        slot.sync(&mut t, Owner::Entry(0), Some(ms(10)));
        slot.sync(&mut t, Owner::Entry(0), Some(ms(10))); // unchanged: no push
        assert_eq!(t.len(), 1);
        slot.sync(&mut t, Owner::Entry(0), Some(ms(20)));
        assert_eq!(t.len(), 2);
        let (_, stale, _) = t.pop_due(ms(10)).unwrap();
        assert!(!slot.take_if_current(stale));
        let (_, live, _) = t.pop_due(ms(20)).unwrap();
        assert!(slot.take_if_current(live));
        assert_eq!(slot.deadline(), None);
    }

    #[test]
    fn precision_is_reported_and_rearms() {
        let mut t = Timers::new();
        let mut slot = TimerSlot::default();
        slot.sync_with(&mut t, Owner::Entry(0), Some(ms(10)), Wake::Paced);
        assert_eq!(t.next_wake(), Some((ms(10), Wake::Paced)));
        slot.sync_with(&mut t, Owner::Entry(0), Some(ms(10)), Wake::Paced);
        assert_eq!(t.len(), 1);
        slot.sync(&mut t, Owner::Entry(0), Some(ms(10)));
        assert_eq!(t.len(), 2, "same instant, different precision: re-armed");
    }

    #[test]
    fn disarm_leaves_only_stale_entries() {
        let mut t = Timers::new();
        let mut slot = TimerSlot::default();
        slot.sync(&mut t, Owner::Entry(0), Some(ms(10)));
        slot.sync(&mut t, Owner::Entry(0), None);
        let (_, stamp, _) = t.pop_due(ms(10)).unwrap();
        assert!(!slot.take_if_current(stamp));
    }

    /// A session's deadline is popped after its slab key was freed and
    /// reused by a new session: the new session must not see it.
    #[test]
    fn stale_entries_ignored_after_slab_key_reuse() {
        let mut t = Timers::new();
        let mut slab: Slab<TimerSlot> = Slab::new();
        let old = slab.insert(TimerSlot::default());
        slab[old].sync(&mut t, Owner::Entry(old), Some(ms(10)));
        slab.remove(old);
        let new = slab.insert(TimerSlot::default());
        assert_eq!(old, new, "slab reuses the key");
        slab[new].sync(&mut t, Owner::Entry(new), Some(ms(50)));

        let (owner, stamp, _) = t.pop_due(ms(10)).unwrap();
        assert_eq!(owner, Owner::Entry(new));
        assert!(!slab[new].take_if_current(stamp), "stale pop must not fire");
        let (_, stamp, _) = t.pop_due(ms(50)).unwrap();
        assert!(slab[new].take_if_current(stamp));
    }

    #[test]
    fn compact_drops_stale_entries_and_keeps_order() {
        let mut t = Timers::new();
        let mut slot = TimerSlot::default();
        for i in 0..1000 {
            slot.sync(&mut t, Owner::Entry(0), Some(ms(1000 - i)));
        }
        let mut other = TimerSlot::default();
        other.sync(&mut t, Owner::Entry(1), Some(ms(5000)));
        assert_eq!(t.len(), 1001);
        t.compact(|owner, stamp| match owner {
            Owner::Entry(0) => slot.is_current(stamp),
            Owner::Entry(1) => other.is_current(stamp),
            _ => false,
        });
        assert_eq!(t.len(), 2);
        let (_, s, at) = t.pop_due(Instant::MAX).unwrap();
        assert_eq!(at, ms(1));
        assert!(slot.take_if_current(s));
        let (_, s, _) = t.pop_due(Instant::MAX).unwrap();
        assert!(other.take_if_current(s));
    }
}
