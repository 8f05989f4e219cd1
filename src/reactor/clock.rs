//! The reactor's clock: the only place the process reads the time.
//!
//! Owns the epoch (the monotonic time at which the reactor started) and the
//! guarantee that the `Instant`s it hands out never decrease. Everything
//! else receives time as an argument; `clippy.toml` bans `Instant::now`,
//! `SystemTime::now` and `thread::sleep` elsewhere.

use super::sys;
use crate::time::Instant;

/// Reads `CLOCK_MONOTONIC` and expresses it as an [`Instant`] since the epoch.
#[derive(Debug)]
pub struct Clock {
    epoch_ns: u64,
    last: Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Self {
            epoch_ns: sys::monotonic_ns(),
            last: Instant::ZERO,
        }
    }

    /// The current instant; never earlier than the previous answer.
    pub fn now(&mut self) -> Instant {
        let raw = Instant::from_nanos(sys::monotonic_ns().saturating_sub(self.epoch_ns));
        self.last = self.last.max(raw);
        self.last
    }

    /// `at` as absolute `CLOCK_MONOTONIC` nanoseconds, for arming a timerfd.
    pub(crate) fn to_monotonic_ns(&self, at: Instant) -> u64 {
        self.epoch_ns.saturating_add(at.as_nanos())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
