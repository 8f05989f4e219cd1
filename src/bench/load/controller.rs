//! [`Controller`]: the bench's timer-only job (added detached), which
//! closes report intervals and owns the `-t` end.
//!
//! Owns the interval grid's clock: it wakes at the next interval boundary
//! or the end, whichever is first, and hands each closed interval to the
//! [`OnInterval`] sink. It never closes an interval past the end (the run
//! has no data there), leaves those due at the `-t` end to the driver
//! (closed after a stream's end grace), never records figures, and holds
//! no session.

use super::run::Run;
use crate::bench::report::IntervalReport;
use crate::proto::{CloseReason, Context, Driven};
use crate::time::Instant;
use core::cell::RefCell;
use std::rc::Rc;

/// Where interval reports go as they close (shared by the controller and
/// the driver, which closes the last one of a count-bounded run), with the
/// reactor's `now` when it closed. The sink may add what the recorder
/// cannot know (the CPU use, read from the kernel) before the report is
/// kept, then shows it at once: rows and lines appear as intervals end.
pub type OnInterval = Rc<RefCell<dyn FnMut(&mut IntervalReport, Instant)>>;

/// The timer-only job (added detached) that closes intervals and owns
/// the `-t` end.
pub struct Controller {
    run: Rc<Run>,
    on_interval: OnInterval,
    close: Option<CloseReason>,
    done: bool,
}

impl core::fmt::Debug for Controller {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Controller")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller that hands each closed interval to `on_interval`.
    pub fn new(run: Rc<Run>, on_interval: OnInterval) -> Self {
        Self {
            run,
            on_interval,
            close: None,
            done: false,
        }
    }

    /// Closes every interval due by `at`, at `at` (≤ `now`, the reactor's
    /// time, which the sink gets): a close a little late makes that
    /// interval a little longer (its rates use the real length; the grid
    /// does not drift). Called by the driver at the end of a run as well.
    pub fn close_due(run: &Run, at: Instant, now: Instant, on_interval: &OnInterval) {
        loop {
            let due = run.recorder.borrow().next_interval();
            match due {
                Some(deadline) if deadline <= at => {
                    let mut report = run.recorder.borrow_mut().close_interval(at);
                    (on_interval.borrow_mut())(&mut report, now);
                    run.intervals.borrow_mut().push(report);
                }
                _ => break,
            }
        }
    }
}

impl Driven for Controller {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if self.done {
            return;
        }
        // Intervals past the end are not closed: the run has no data there.
        // Those due at the `-t` end are closed by the driver after the run,
        // so what settles in the END_GRACE still lands in the last one.
        if self.run.end_at().is_none_or(|end| cx.now < end) {
            Self::close_due(&self.run, cx.now, cx.now, &self.on_interval);
        }
        if self.run.over(cx.now) || (self.run.active() == 0 && !self.run.may_start(cx.now)) {
            self.done = true;
            self.close = Some(CloseReason::Completed);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        let next = self.run.recorder.borrow().next_interval();
        match (next, self.run.end_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}
