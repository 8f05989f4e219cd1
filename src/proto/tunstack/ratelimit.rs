//! A rate limit on ICMP error messages (RFC 1812 §4.3.2.8, RFC 1122
//! §3.2.2): a generic cell rate algorithm in virtual time.
//!
//! Owns one decision: may an error be sent at `now`? It must never read a
//! clock; its state is one instant, so it cannot grow.

use crate::time::{Duration, Instant};

/// ICMP errors the stack sends per second at most, sustained: Linux's
/// `icmp_ratelimit` (one per millisecond). A flood of UDP to closed ports
/// must not turn the stack into a reflector of equal volume.
pub const ICMP_ERRORS_PER_SEC: u32 = 1_000;

/// ICMP errors the stack may send at once after a quiet spell: Linux's
/// `icmp_msgs_burst`, so a short scan still gets its answers.
pub const ICMP_ERROR_BURST: u32 = 50;

/// See the module docs.
#[derive(Clone, Copy, Debug)]
pub(super) struct RateLimit {
    /// The theoretical arrival time of the next conforming message.
    tat: Instant,
    interval: Duration,
    tolerance: Duration,
}

impl RateLimit {
    /// At most `per_sec` per second sustained, `burst` at once.
    pub(super) fn new(per_sec: u32, burst: u32) -> Self {
        let interval = Duration::from_secs(1) / per_sec.max(1);
        Self {
            tat: Instant::ZERO,
            interval,
            tolerance: interval * burst.saturating_sub(1),
        }
    }

    /// Whether one more may go at `now`; if so, it is counted.
    pub(super) fn allow(&mut self, now: Instant) -> bool {
        let earliest = Instant::from_nanos(
            self.tat
                .as_nanos()
                .saturating_sub(crate::time::duration_nanos(self.tolerance)),
        );
        if now < earliest {
            return false;
        }
        self.tat = self.tat.max(now).saturating_add(self.interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testing::at;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let mut r = RateLimit::new(ICMP_ERRORS_PER_SEC, ICMP_ERROR_BURST);
        let start = at(10_000);
        let allowed = (0..100).filter(|_| r.allow(start)).count();
        assert_eq!(allowed, 50);
        // One more per millisecond, not a nanosecond before.
        assert!(!r.allow(start + Duration::from_nanos(999_999)));
        assert!(r.allow(start + Duration::from_millis(1)));
        assert!(!r.allow(start + Duration::from_millis(1)));
        // A quiet second refills the whole burst, and no more.
        let later = start + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| r.allow(later)).count(), 50);
    }
}
