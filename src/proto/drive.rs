//! The order of calls after any input: written once, used by the reactor,
//! the simulator and the fuzzing world.
//!
//! Owns the sequence the seam promises (see the `proto` module docs):
//! transmit, read the deadline, ask for the end, ask about input. It never
//! sends anything itself: the caller's `transmit` step does, which is where
//! the reactor's socket writers (budgets, backpressure, GSO) and the
//! simulator's links differ. Keeping the order here means a simulated run
//! exercises the same protocol calls, in the same order, as a real one.

use super::{CloseReason, Context, Driven, PartId, Wake};
use crate::time::Instant;

/// What a session said after a call, besides its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct After {
    /// When `handle_timeout` must run next.
    pub deadline: Option<Instant>,
    /// How punctually.
    pub wake: Wake,
    /// It is done, and why.
    pub close: Option<CloseReason>,
    /// Whether its endpoints should be read.
    pub wants_input: bool,
}

/// After any call into `session`: `transmit` (which pulls its output and
/// returns how far it got), then the deadline, the end and the input
/// wish, in the order of the seam.
#[inline]
pub fn after_call<S: Driven + ?Sized, T>(
    session: &mut S,
    cx: &mut Context,
    transmit: impl FnOnce(&mut S, &mut Context) -> T,
) -> (T, After) {
    let sent = transmit(session, cx);
    // Read after transmitting: `poll_transmit` may arm pacing or
    // retransmission timers.
    let deadline = session.poll_timeout();
    let wake = session.wake();
    let close = session.poll_close();
    let wants_input = session.wants_input();
    (
        sent,
        After {
            deadline,
            wake,
            close,
            wants_input,
        },
    )
}

/// Step 5 of the order, after [`after_call`]: hands every change to the
/// deadlines of `session`'s parts to `arm` (see
/// [`Driven::poll_part_timeout`]). Bounded by what the session reports:
/// it reports each part whose deadline moved, once.
#[inline]
pub fn drain_parts<S: Driven + ?Sized>(
    session: &mut S,
    mut arm: impl FnMut(PartId, Option<Instant>),
) {
    while let Some((part, at)) = session.poll_part_timeout() {
        arm(part, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testing::{at, cx};
    use core::cell::RefCell;

    /// Records the order in which the driver calls it.
    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<&'static str>>,
    }

    impl Driven for Recorder {
        fn poll_timeout(&self) -> Option<Instant> {
            self.calls.borrow_mut().push("poll_timeout");
            Some(at(5))
        }
        fn wake(&self) -> Wake {
            self.calls.borrow_mut().push("wake");
            Wake::Paced
        }
        fn poll_close(&mut self) -> Option<CloseReason> {
            self.calls.borrow_mut().push("poll_close");
            Some(CloseReason::Completed)
        }
        fn wants_input(&self) -> bool {
            self.calls.borrow_mut().push("wants_input");
            false
        }
    }

    #[test]
    fn transmit_comes_first_then_the_deadline_the_end_and_the_input_wish() {
        let mut r = Recorder::default();
        let (sent, after) = after_call(&mut r, &mut cx(at(1), None), |r, _| {
            r.calls.borrow_mut().push("transmit");
            7
        });
        assert_eq!(sent, 7);
        assert_eq!(
            *r.calls.borrow(),
            [
                "transmit",
                "poll_timeout",
                "wake",
                "poll_close",
                "wants_input"
            ]
        );
        assert_eq!(
            after,
            After {
                deadline: Some(at(5)),
                wake: Wake::Paced,
                close: Some(CloseReason::Completed),
                wants_input: false,
            }
        );
    }
}
