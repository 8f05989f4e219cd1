//! Thin, safe wrappers over the few Linux system calls mio does not offer.
//!
//! Owns every `unsafe` block in the crate (the crate root denies
//! `unsafe_code`; this module alone allows it). Each wrapper is small, checks
//! the return value, and turns failure into `io::Error`. It must never hold
//! protocol state or policy: callers decide when to call.
#![allow(unsafe_code, reason = "the one module that calls libc directly")]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock as `std::time::Instant`
/// on Linux, and the one a `timerfd` is armed against.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    debug_assert_eq!(rc, 0);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000) + nanos
}

/// A one-shot `timerfd` on `CLOCK_MONOTONIC`, non-blocking, armed with
/// absolute times. Readable (in epoll) once its deadline has passed.
#[derive(Debug)]
pub(crate) struct TimerFd {
    fd: OwnedFd,
}

impl TimerFd {
    /// Creates a disarmed timer.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Arms the timer to fire at `monotonic_ns` (absolute), replacing any
    /// earlier setting. A time in the past fires at once.
    pub(crate) fn set_abs(&self, monotonic_ns: u64) -> io::Result<()> {
        // 0 would disarm; the earliest meaningful instant is 1 ns.
        let ns = monotonic_ns.max(1);
        self.settime(
            libc::TFD_TIMER_ABSTIME,
            libc::timespec {
                tv_sec: libc::time_t::try_from(ns / 1_000_000_000).unwrap_or(libc::time_t::MAX),
                // Always below 10^9, so it fits.
                tv_nsec: libc::c_long::try_from(ns % 1_000_000_000).unwrap_or(0),
            },
        )
    }

    /// Disarms the timer.
    pub(crate) fn disarm(&self) -> io::Result<()> {
        self.settime(
            0,
            libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        )
    }

    fn settime(&self, flags: libc::c_int, value: libc::timespec) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: `spec` is a valid itimerspec; a null old-value pointer is allowed.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                flags,
                &raw const spec,
                core::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes the expiry count so edge-triggered epoll reports the next one.
    pub(crate) fn drain(&self) {
        let mut count = 0u64;
        // SAFETY: reads at most 8 bytes into a u64; EAGAIN (nothing to read) is fine.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut count).cast(), 8) };
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
        assert!(a > 0);
    }

    #[test]
    fn timerfd_arms_and_disarms() {
        let t = TimerFd::new().unwrap();
        t.set_abs(monotonic_ns() + 1_000_000_000).unwrap();
        t.disarm().unwrap();
        t.set_abs(1).unwrap(); // in the past: fires at once
        // Poll the fd directly: readable now.
        let mut pfd = libc::pollfd {
            fd: t.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, 1 s timeout.
        let n = unsafe { libc::poll(&raw mut pfd, 1, 1000) };
        assert_eq!(n, 1);
        t.drain();
    }
}
