//! [`Run`]: what every bench session of one run shares.
//!
//! Owns the run's bookkeeping: the recorder and the closed intervals, the
//! `-t` end, the `-n` budget, the session slots and their sequence
//! numbers, the success and failure counts that may stop a run, the
//! SIGINT end, and the [`END_GRACE`] after a `-t` end. It is passive:
//! sessions and the driver call it with the reactor's `now`. It never
//! reads the clock, never starts or ends a session itself, and never
//! records anything on its own.

use crate::bench::report::{IntervalReport, Recorder};
use crate::time::{Duration, Instant};
use core::cell::{Cell, RefCell};

/// Failures in a row, with no success between them, after which the run
/// stops: a server that refuses everything would otherwise be hammered in
/// a tight reconnect loop for the whole `-t`.
pub const MAX_FAILURES_IN_A_ROW: u32 = 64;

/// How long after a `-t` end a session already in flight whose outcome
/// carries its measurement (a stream: its losses and schedule errors come
/// with its end) may still deliver that outcome. A stream is planned to
/// end an interval before the run, but on a loaded machine its last
/// segments or its end arrive a few ms late; dropping it then loses the
/// whole stream (a one-stream run exits 2, "no stream succeeded", with
/// its packets measured). A quarter second
/// covers a loaded machine's scheduling delays many times over, stays
/// below the lab client's shortest silence end (1 s unless `--timeout`
/// is lower), and stretches a run that needs it by at most that much.
/// Nothing starts in the grace, a SIGINT ends it at once, and what
/// settles in it is recorded at the end (see [`Run::record_at`]).
pub const END_GRACE: Duration = Duration::from_millis(250);

/// Distinct failure causes a run tells apart for its final message; any
/// further cause still counts in the total. A run failing in more ways
/// than this is reported by its commonest few, and the tally stays small
/// however long the run.
const MAX_FAILURE_CAUSES: usize = 16;

/// What every bench session of one run shares.
#[derive(Debug)]
pub struct Run {
    /// Where figures go.
    pub recorder: RefCell<Recorder>,
    /// Closed intervals, oldest first (for the JSON document and the SVG).
    pub intervals: RefCell<Vec<IntervalReport>>,
    end_at: Option<Instant>,
    /// Requests or transfers that may still start; `None`: unlimited.
    budget: Cell<Option<u64>>,
    stopped: Cell<bool>,
    active: Cell<usize>,
    free_slots: RefCell<Vec<usize>>,
    /// Per-slot sequence numbers that outlive one session of the slot.
    slot_seq: RefCell<Vec<u64>>,
    successes: Cell<u64>,
    failures_in_a_row: Cell<u32>,
    failures: Cell<u64>,
    /// Each cause seen, with how often, in order of first appearance.
    causes: RefCell<Vec<(String, u64)>>,
    last_event: Cell<Instant>,
    fatal: RefCell<Option<String>>,
    interrupted_at: Cell<Option<Instant>>,
}

impl Run {
    /// A run of `slots` sessions at once that started at `start`.
    #[must_use]
    pub fn new(
        recorder: Recorder,
        start: Instant,
        end_at: Option<Instant>,
        budget: Option<u64>,
        slots: usize,
    ) -> Self {
        Self {
            recorder: RefCell::new(recorder),
            intervals: RefCell::new(Vec::new()),
            end_at,
            budget: Cell::new(budget),
            stopped: Cell::new(false),
            active: Cell::new(0),
            free_slots: RefCell::new((0..slots).rev().collect()),
            slot_seq: RefCell::new(vec![0; slots]),
            successes: Cell::new(0),
            failures_in_a_row: Cell::new(0),
            failures: Cell::new(0),
            causes: RefCell::new(Vec::new()),
            last_event: Cell::new(start),
            fatal: RefCell::new(None),
            interrupted_at: Cell::new(None),
        }
    }

    /// The `-t` end, if any.
    pub fn end_at(&self) -> Option<Instant> {
        self.end_at
    }

    /// Whether nothing may be recorded or started any more at `now`.
    pub fn over(&self, now: Instant) -> bool {
        self.stopped.get() || self.end_at.is_some_and(|end| now >= end)
    }

    /// Whether `now` is in the [`END_GRACE`] of a `-t` run that reached
    /// its end and was not stopped (SIGINT, fatal): a session in flight
    /// that opted in may still settle.
    pub fn in_end_grace(&self, now: Instant) -> bool {
        !self.stopped.get()
            && self
                .end_at
                .is_some_and(|end| now >= end && now < end.saturating_add(END_GRACE))
    }

    /// When something that happens at `now` is recorded: at most the `-t`
    /// end, so what settles in the [`END_GRACE`] lands in the last
    /// interval and every rate stays over the planned span.
    pub fn record_at(&self, now: Instant) -> Instant {
        self.end_at.map_or(now, |end| now.min(end))
    }

    /// Takes one request or transfer from the `-n` budget; `false` when
    /// the run is over or the budget is spent.
    pub fn take(&self, now: Instant) -> bool {
        if self.over(now) {
            return false;
        }
        match self.budget.get() {
            None => true,
            Some(0) => false,
            Some(n) => {
                self.budget.set(Some(n - 1));
                true
            }
        }
    }

    /// Whether a new session could still get work at `now`.
    pub fn may_start(&self, now: Instant) -> bool {
        !self.over(now) && self.budget.get() != Some(0)
    }

    /// A free slot for a new session, marked busy.
    pub fn claim_slot(&self) -> Option<usize> {
        let slot = self.free_slots.borrow_mut().pop()?;
        self.active.set(self.active.get() + 1);
        Some(slot)
    }

    /// The session in `slot` ended (exactly once per claim).
    pub fn release_slot(&self, slot: usize) {
        self.active.set(self.active.get().saturating_sub(1));
        self.free_slots.borrow_mut().push(slot);
    }

    /// Sessions alive.
    pub fn active(&self) -> usize {
        self.active.get()
    }

    /// The next sequence number of `slot` (starting at 0).
    pub fn next_seq(&self, slot: usize) -> u64 {
        let mut seqs = self.slot_seq.borrow_mut();
        let Some(seq) = seqs.get_mut(slot) else {
            return 0;
        };
        let current = *seq;
        *seq += 1;
        current
    }

    /// A request or transfer succeeded at `now`.
    pub fn succeeded(&self, now: Instant) {
        self.successes.set(self.successes.get() + 1);
        self.failures_in_a_row.set(0);
        self.note(now);
    }

    /// A request or transfer failed at `now`; too many in a row stop the run.
    pub fn failed(&self, now: Instant, why: &str) {
        let n = self.failures_in_a_row.get() + 1;
        self.failures_in_a_row.set(n);
        self.failures.set(self.failures.get() + 1);
        self.tally(why);
        self.note(now);
        if n >= MAX_FAILURES_IN_A_ROW && self.successes.get() == 0 {
            self.stop_with(format!(
                "{n} failures in a row and no success; the last: {why}"
            ));
        }
    }

    /// Ends the run early but normally (SIGINT): nothing more is started
    /// or recorded, and the report covers the run up to `now`.
    pub fn interrupt(&self, now: Instant) {
        if !self.stopped.get() {
            self.stopped.set(true);
            self.interrupted_at.set(Some(now));
        }
    }

    /// When the run was interrupted, if it was.
    pub fn interrupted_at(&self) -> Option<Instant> {
        self.interrupted_at.get()
    }

    /// A session could not even start (no socket: the open-file limit, no
    /// route): a local fault, so enough of them in a row stop the run even
    /// after successes, where a lost answer would not.
    pub fn start_failed(&self, now: Instant, why: &str) {
        self.failed(now, why);
        if self.failures_in_a_row.get() >= MAX_FAILURES_IN_A_ROW {
            self.stop_with(format!(
                "{MAX_FAILURES_IN_A_ROW} sessions in a row could not start; the last: {why}"
            ));
        }
    }

    /// No further request or transfer may start (what is left of the run
    /// is too short for one).
    pub fn exhaust(&self) {
        self.budget.set(Some(0));
    }

    /// Stops the run for good with `why` (exit 2).
    pub fn stop_with(&self, why: String) {
        self.stopped.set(true);
        self.fatal.borrow_mut().get_or_insert(why);
    }

    fn tally(&self, why: &str) {
        let mut causes = self.causes.borrow_mut();
        if let Some((_, n)) = causes.iter_mut().find(|(c, _)| c == why) {
            *n += 1;
        } else if causes.len() < MAX_FAILURE_CAUSES {
            causes.push((why.to_owned(), 1));
        }
    }

    /// Why requests or transfers failed, for a person: how many of all
    /// that ended, and the commonest cause (the first seen among equals),
    /// e.g. `10 of 10 failed: tcpfile: not found: f`. `None` when none
    /// failed.
    pub fn failure_summary(&self) -> Option<String> {
        let failed = self.failures.get();
        if failed == 0 {
            return None;
        }
        let ended = failed + self.successes.get();
        let causes = self.causes.borrow();
        let mut top: Option<&(String, u64)> = None;
        for cause in causes.iter() {
            if top.is_none_or(|t| cause.1 > t.1) {
                top = Some(cause);
            }
        }
        let (why, n) = top?;
        Some(if *n == failed {
            format!("{failed} of {ended} failed: {why}")
        } else {
            format!("{failed} of {ended} failed, {n} of them: {why}")
        })
    }

    fn note(&self, now: Instant) {
        if now > self.last_event.get() {
            self.last_event.set(now);
        }
    }

    /// Requests or transfers that succeeded.
    pub fn successes(&self) -> u64 {
        self.successes.get()
    }

    /// When the last request or transfer ended.
    pub fn last_event(&self) -> Instant {
        self.last_event.get()
    }

    /// Why the run was stopped early, if it was.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::MAX_FAILURES_IN_A_ROW;
    use crate::bench::load::testing::run;
    use crate::proto::testing::at;

    #[test]
    fn too_many_failures_stop_the_run() {
        let r = run(None, None);
        for _ in 0..MAX_FAILURES_IN_A_ROW {
            assert!(r.fatal().is_none());
            r.failed(at(1), "refused");
        }
        assert!(r.fatal().is_some_and(|w| w.contains("refused")));
        assert!(!r.may_start(at(1)));

        // After a success, lost answers alone do not stop a run; sockets
        // that cannot even open do.
        let r = run(None, None);
        r.succeeded(at(1));
        for _ in 0..2 * MAX_FAILURES_IN_A_ROW {
            r.failed(at(2), "timeout");
        }
        assert!(r.fatal().is_none());
        for _ in 0..MAX_FAILURES_IN_A_ROW {
            r.start_failed(at(3), "too many open files");
        }
        assert!(r.fatal().is_some_and(|w| w.contains("could not start")));
        let r = run(None, None);
        r.exhaust();
        assert!(!r.may_start(at(0)) && !r.take(at(0)));
    }

    #[test]
    fn the_failure_summary_names_the_commonest_cause() {
        let r = run(None, None);
        assert_eq!(r.failure_summary(), None);
        r.failed(at(1), "tftp: no answer after 5 tries");
        for _ in 0..3 {
            r.failed(at(2), "tftp: error 1: File not found");
        }
        r.succeeded(at(3));
        assert_eq!(
            r.failure_summary().as_deref(),
            Some("4 of 5 failed, 3 of them: tftp: error 1: File not found")
        );
        let r = run(None, None);
        r.failed(at(1), "tcpfile: not found: f");
        r.failed(at(1), "tcpfile: not found: f");
        assert_eq!(
            r.failure_summary().as_deref(),
            Some("2 of 2 failed: tcpfile: not found: f")
        );
    }
}
