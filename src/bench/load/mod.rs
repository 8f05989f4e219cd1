//! The bench's sessions: what runs on the reactor during a bench.
//!
//! Owns the run's shared state ([`Run`]: the recorder, the end, the count
//! budget, which sessions are alive) and three session kinds that feed it
//! with the reactor's `cx.now`, one file each:
//! * [`Repeat`] (`repeat.rs`): one request outstanding on one socket or
//!   connection, the next sent when the answer arrives; the protocol's
//!   part is an [`Exchange`] (request bytes, answer framing, answer
//!   check), built on the `wire` codecs;
//! * [`Tracked`] (`tracked.rs`): wraps one existing protocol client session
//!   (a transfer, a connection; stream or datagram) unchanged, counts its
//!   bytes as they move, and records its outcome when it closes;
//! * [`Controller`] (`controller.rs`): a timer-only job
//!   ([`Driven`](crate::proto::Driven), added detached) that closes report
//!   intervals and owns the `-t` end.
//!
//! They never open sockets (the driver asks the reactor) and never read
//! the clock. The reactor is single-threaded, so shared state is `Rc` and
//! `Cell`. Nothing is recorded past the end of a `-t` run (what a stream
//! settles in the [`END_GRACE`] is recorded at the end): the last interval
//! closes exactly at the end.
//!
//! This module only gathers them: every path stays `bench::load::X`.

mod controller;
mod repeat;
mod run;
mod tracked;

pub use controller::{Controller, OnInterval};
pub use repeat::{BadFraming, Exchange, Repeat, Verdict};
pub use run::{END_GRACE, MAX_FAILURES_IN_A_ROW, Run};
pub use tracked::{Count, RETRY_BACKOFF, Settle, Tracked};

#[cfg(test)]
mod testing {
    //! What the sessions' tests share: a run in virtual time and the
    //! reactor's calls they script.

    use super::Run;
    use crate::bench::report::Recorder;
    use crate::proto::testing::{at, cx};
    use crate::proto::{CloseReason, Driven};
    use std::rc::Rc;

    /// A run of two slots that started at 0 ms.
    pub(super) fn run(end_ms: Option<u64>, budget: Option<u64>) -> Rc<Run> {
        Rc::new(Run::new(
            Recorder::new(at(0), None),
            at(0),
            end_ms.map(at),
            budget,
            2,
        ))
    }

    pub(super) fn timeout(s: &mut dyn Driven, ms: u64) {
        s.handle_timeout(&mut cx(at(ms), None));
    }

    /// Every end the session reports now (at most a few: each is taken).
    pub(super) fn closes(s: &mut dyn Driven) -> Vec<CloseReason> {
        core::iter::from_fn(|| s.poll_close()).take(4).collect()
    }
}
