//! How the reactor sleeps until its next deadline.
//!
//! Owns the choice between two ways of waking up on time:
//! * [`TimerMode::Timerfd`] (the default): one `timerfd` registered in the
//!   poll set is armed, with an absolute time, at the earliest deadline, and
//!   the poll itself waits with no timeout. Wakes within tens of µs.
//! * [`TimerMode::Poll`]: the deadline becomes `Poll::poll`'s timeout, which
//!   mio rounds *up* to whole milliseconds (`epoll_wait` takes ms). Kept for
//!   comparison: it is what a plain mio loop gets.
//!
//! It re-arms the timerfd only when the earliest deadline changes, so a busy
//! server pays no system call per turn.
//!
//! **Precise deadlines** (stream pacing) get one more step: the timerfd is
//! armed `spin` early, and for the last stretch the reactor polls with a
//! zero timeout, turn after turn, until the deadline — still serving every
//! socket meanwhile. A timerfd alone wakes 40–100 µs late on this kind of
//! machine; the spin trades that much CPU per deadline for accuracy.
//! Ordinary deadlines (retransmission, expiry) never spin.

use super::clock::Clock;
use super::sys::TimerFd;
use super::timers::Wake;
use crate::time::{Duration, Instant};
use std::io;

/// How the reactor honours deadlines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimerMode {
    /// A `timerfd` in the poll set: sub-millisecond wake-ups.
    #[default]
    Timerfd,
    /// The poll timeout alone: rounded up to whole milliseconds by mio.
    Poll,
}

/// Arms the wake-up for the next deadline.
#[derive(Debug)]
pub(crate) struct Waiter {
    timerfd: Option<TimerFd>,
    armed: Option<Instant>,
}

impl Waiter {
    pub(crate) fn new(mode: TimerMode) -> io::Result<Self> {
        let timerfd = match mode {
            TimerMode::Timerfd => Some(TimerFd::new()?),
            TimerMode::Poll => None,
        };
        Ok(Self {
            timerfd,
            armed: None,
        })
    }

    /// The timerfd to register in the poll set, if this mode uses one.
    pub(crate) fn timerfd(&self) -> Option<&TimerFd> {
        self.timerfd.as_ref()
    }

    /// Prepares to wait for `next` and returns the timeout for `Poll::poll`.
    pub(crate) fn prepare(
        &mut self,
        clock: &mut Clock,
        next: Option<(Instant, Wake)>,
        spin: Duration,
    ) -> io::Result<Option<Duration>> {
        let Some((next, how)) = next else {
            if self.armed.take().is_some()
                && let Some(tfd) = &self.timerfd
            {
                tfd.disarm()?;
            }
            return Ok(None);
        };
        let now = clock.now();
        let wake = match how {
            // Wake `spin` early and busy-poll the rest.
            Wake::Paced => Instant::from_nanos(
                next.as_nanos()
                    .saturating_sub(crate::time::duration_nanos(spin)),
            ),
            // Round up to the next whole millisecond: a stream of such
            // deadlines then re-arms the timerfd once per millisecond.
            Wake::Coarse => Instant::from_nanos(
                next.as_nanos()
                    .div_ceil(1_000_000)
                    .saturating_mul(1_000_000),
            ),
            Wake::Exact => next,
        };
        if wake <= now {
            return Ok(Some(Duration::ZERO));
        }
        match &self.timerfd {
            Some(tfd) => {
                if self.armed != Some(wake) {
                    tfd.set_abs(clock.to_monotonic_ns(wake))?;
                    self.armed = Some(wake);
                }
                Ok(None)
            }
            None => Ok(Some(wake - now)),
        }
    }

    /// The timerfd fired: consume it so the next expiry is reported.
    pub(crate) fn on_ready(&mut self) {
        if let Some(tfd) = &self.timerfd {
            tfd.drain();
        }
        self.armed = None;
    }
}
