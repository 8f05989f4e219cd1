//! Idle and request deadlines for TCP server sessions: one rule, used by
//! hello, lab, msg and tcpfile alike.
//!
//! Owns two limits and the bookkeeping that keeps them cheap:
//! * **idle** (`tcp_idle_timeout`): a connection that makes no *progress*
//!   for this long is closed. Progress is the peer doing something: bytes
//!   received, or output taken (`poll_transmit` handing bytes to the
//!   reactor, `advance_file` reporting a `sendfile`). The reactor only asks
//!   for output while its buffer for the socket has room, so a peer that
//!   stops reading stops making progress too. A session that has nothing to
//!   offer because it waits on its own schedule (a paced lab stream) counts
//!   that wait as progress: the peer cannot be idle while the server is.
//! * **request** (`tcp_request_timeout`): a request line (msg: a frame
//!   header) must be complete within this long of its start, however slowly
//!   its bytes trickle in — the slowloris defence, as nginx's
//!   `client_header_timeout`. The first request's clock starts at accept, so
//!   a connection that never sends a byte is closed after the shorter of
//!   the two; a later request's clock starts with its first byte. Between
//!   requests only the idle limit applies.
//!
//! The deadline reported to the reactor ([`IdleTimer::poll_timeout`]) may be
//! earlier than the real one: progress only moves a timestamp, and when the
//! reported deadline pops it either fires (the real deadline has come) or
//! moves to the real one. A busy connection therefore pushes no heap entry
//! per read or write. It never fires early: [`IdleTimer::on_timeout`] closes
//! only at `now ≥` the real deadline.
//!
//! Pure: no clock, no socket. Time arrives as `now`; tests run in virtual
//! time.

use crate::time::{Duration, Instant};

/// Default for `tcp_idle_timeout`: long enough for a person typing into
/// `nc`, short enough that forgotten connections give their descriptors
/// back within minutes (hello's value before it applied to every protocol).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Default for `tcp_request_timeout`: a request line is at most a few
/// hundred bytes and any real client sends it in one write, so 10 s is
/// generous even over a bad link, while a slowloris connection gives its
/// descriptor back after 10 s instead of never.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The two limits of every TCP server connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpTimeouts {
    /// Longest stretch without progress.
    pub idle: Duration,
    /// Longest time from the start of a request line (or frame header) to
    /// its end.
    pub request: Duration,
}

impl Default for TcpTimeouts {
    fn default() -> Self {
        Self {
            idle: DEFAULT_IDLE_TIMEOUT,
            request: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Which limit ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// No progress for the idle timeout.
    Idle,
    /// A request was not complete within the request timeout.
    Request,
}

impl Expired {
    /// A short reason for logs and `CloseReason::Protocol`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle timeout",
            Self::Request => "request timeout",
        }
    }
}

/// The idle and request clocks of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleTimer {
    timeouts: TcpTimeouts,
    last_progress: Instant,
    /// When the request being read began; `None` between requests.
    request_since: Option<Instant>,
    /// The deadline reported to the reactor; never later than the real one.
    check: Instant,
}

impl IdleTimer {
    /// The clocks of a connection accepted at `now`: its first request's
    /// clock runs from here.
    pub fn new(now: Instant, timeouts: TcpTimeouts) -> Self {
        let mut timer = Self {
            timeouts,
            last_progress: now,
            request_since: Some(now),
            check: now,
        };
        timer.check = timer.deadline();
        timer
    }

    /// The limits in force.
    pub fn timeouts(&self) -> TcpTimeouts {
        self.timeouts
    }

    /// The peer made progress at `now` (bytes in, output taken). Moves only
    /// a timestamp: the reported deadline catches up when it pops.
    pub fn touch(&mut self, now: Instant) {
        self.last_progress = self.last_progress.max(now);
    }

    /// A request (line, frame header) has begun and is not complete yet.
    /// Keeps the clock of a request already running (the first one's runs
    /// from accept).
    pub fn begin_request(&mut self, now: Instant) {
        if self.request_since.is_none() {
            self.request_since = Some(now);
            // The only change that can bring the real deadline forward.
            self.check = self.check.min(self.deadline());
        }
    }

    /// The request being read is complete (or there will be no more).
    pub fn end_request(&mut self) {
        self.request_since = None;
    }

    /// Whether a request's clock is running.
    pub fn in_request(&self) -> bool {
        self.request_since.is_some()
    }

    /// The real deadline: the earlier of the idle and the request limits.
    pub fn deadline(&self) -> Instant {
        let idle = self.last_progress + self.timeouts.idle;
        match self.request_since {
            Some(since) => idle.min(since + self.timeouts.request),
            None => idle,
        }
    }

    /// The deadline to report from `Driven::poll_timeout`: at or before
    /// [`deadline`](Self::deadline), and unchanged by progress. `None` when
    /// the limits are so large that it never comes.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.check < Instant::MAX).then_some(self.check)
    }

    /// Call from `Driven::handle_timeout`: which limit expired at `now`,
    /// if any. When the reported deadline has come but the real one has
    /// not (there was progress), the reported one moves to the real one.
    pub fn on_timeout(&mut self, now: Instant) -> Option<Expired> {
        if now < self.check {
            return None;
        }
        let idle = self.last_progress + self.timeouts.idle;
        let request = self
            .request_since
            .map_or(Instant::MAX, |since| since + self.timeouts.request);
        if now >= request {
            Some(Expired::Request)
        } else if now >= idle {
            Some(Expired::Idle)
        } else {
            self.check = idle.min(request);
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Running a session's idle and request limits in virtual time.

    use crate::proto::testing::cx;
    use crate::proto::{CloseReason, Driven};
    use crate::time::Instant;

    /// Fires every deadline `s` reports up to and including `until`, as the
    /// reactor would (no transmits are taken: that would be progress), and
    /// returns the instant at which it asked to close for a timeout. Stops
    /// early, with `None`, at a deadline that `handle_timeout` does not
    /// move (one that waits for a transmit).
    #[track_caller]
    pub(crate) fn timed_out_by<S: Driven + ?Sized>(s: &mut S, until: Instant) -> Option<Instant> {
        for _ in 0..10_000 {
            let due = s.poll_timeout().filter(|&d| d <= until)?;
            s.handle_timeout(&mut cx(due, None));
            if let Some(reason) = s.poll_close() {
                assert_eq!(
                    reason,
                    CloseReason::TimedOut { tries: 1 },
                    "only a timeout closes here"
                );
                return Some(due);
            }
            if s.poll_timeout() == Some(due) {
                return None;
            }
        }
        panic!("more than 10 000 deadlines before {until}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn timer(idle_ms: u64, request_ms: u64) -> IdleTimer {
        IdleTimer::new(
            at(0),
            TcpTimeouts {
                idle: Duration::from_millis(idle_ms),
                request: Duration::from_millis(request_ms),
            },
        )
    }

    fn ns_before(t: Instant) -> Instant {
        Instant::from_nanos(t.as_nanos() - 1)
    }

    #[test]
    fn a_silent_connection_expires_at_exactly_the_shorter_limit() {
        let mut t = timer(300, 10_000);
        assert_eq!(t.poll_timeout(), Some(at(300)));
        assert_eq!(t.on_timeout(ns_before(at(300))), None);
        assert_eq!(t.on_timeout(at(300)), Some(Expired::Idle));
        // With a shorter request limit, the request limit ends it.
        let mut t = timer(300_000, 10_000);
        assert_eq!(t.poll_timeout(), Some(at(10_000)));
        assert_eq!(t.on_timeout(ns_before(at(10_000))), None);
        assert_eq!(t.on_timeout(at(10_000)), Some(Expired::Request));
    }

    #[test]
    fn progress_postpones_without_moving_the_reported_deadline() {
        let mut t = timer(1_000, 60_000);
        t.end_request();
        t.touch(at(400));
        assert_eq!(t.poll_timeout(), Some(at(1_000)), "no heap push per byte");
        // It pops, sees the progress, and moves to the real deadline.
        assert_eq!(t.on_timeout(at(1_000)), None);
        assert_eq!(t.poll_timeout(), Some(at(1_400)));
        assert_eq!(t.on_timeout(ns_before(at(1_400))), None);
        assert_eq!(t.on_timeout(at(1_400)), Some(Expired::Idle));
    }

    #[test]
    fn a_trickled_request_expires_at_the_request_deadline() {
        let mut t = timer(300, 10_000);
        let mut now = 0;
        let mut fired = None;
        // One byte every 100 ms never lets the idle limit fire.
        while fired.is_none() && now < 20_000 {
            now += 100;
            t.touch(at(now));
            t.begin_request(at(now));
            while t.poll_timeout().is_some_and(|d| d <= at(now)) && fired.is_none() {
                fired = t.on_timeout(at(now));
            }
        }
        assert_eq!(fired, Some(Expired::Request));
        assert_eq!(now, 10_000, "at the request deadline, not later");
    }

    #[test]
    fn a_later_request_starts_its_clock_at_its_first_byte() {
        let mut t = timer(60_000, 10_000);
        t.touch(at(50));
        t.end_request();
        assert_eq!(t.deadline(), at(60_050), "between requests: idle only");
        // The reported deadline (10 s, from accept) is early: it re-arms.
        assert_eq!(t.on_timeout(at(10_000)), None);
        assert_eq!(t.poll_timeout(), Some(at(60_050)));
        t.touch(at(20_000));
        t.begin_request(at(20_000));
        assert_eq!(t.poll_timeout(), Some(at(30_000)), "brought forward");
        t.touch(at(29_000));
        t.begin_request(at(29_000)); // still the same request
        assert_eq!(t.on_timeout(ns_before(at(30_000))), None);
        assert_eq!(t.on_timeout(at(30_000)), Some(Expired::Request));
    }

    #[test]
    fn huge_limits_mean_never() {
        let mut t = IdleTimer::new(
            at(5),
            TcpTimeouts {
                idle: Duration::MAX,
                request: Duration::MAX,
            },
        );
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.on_timeout(at(u64::MAX / 2_000_000)), None);
    }
}
