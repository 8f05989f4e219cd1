//! `getrusage(2)`: CPU time of the calling thread or of the whole process,
//! for the load generator's CPU figures (`bench`). Holds no policy: the
//! caller decides when to sample and what the differences mean.

use std::io;

/// User and system CPU time, nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CpuTime {
    /// Time spent running user code.
    pub(crate) user_ns: u64,
    /// Time spent in the kernel on the caller's behalf.
    pub(crate) system_ns: u64,
}

/// CPU time of the calling thread (`RUSAGE_THREAD`, Linux).
///
/// # Errors
/// `getrusage` failed (it cannot with these arguments; kept for honesty).
pub(crate) fn thread() -> io::Result<CpuTime> {
    usage(libc::RUSAGE_THREAD)
}

/// CPU time of the whole process, every thread, ended ones included
/// (`RUSAGE_SELF`).
///
/// # Errors
/// As [`thread`].
pub(crate) fn process() -> io::Result<CpuTime> {
    usage(libc::RUSAGE_SELF)
}

fn usage(who: libc::c_int) -> io::Result<CpuTime> {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the struct we lend it.
    if unsafe { libc::getrusage(who, &raw mut ru) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(CpuTime {
        user_ns: timeval_ns(ru.ru_utime),
        system_ns: timeval_ns(ru.ru_stime),
    })
}

fn timeval_ns(tv: libc::timeval) -> u64 {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u64::try_from(tv.tv_usec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000)
        .saturating_add(micros.saturating_mul(1_000))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_has_spent_at_least_what_this_thread_has() {
        // Burn a little CPU in this thread so both figures are non-zero.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(std::hint::black_box(x), 1);
        let t = super::thread().unwrap();
        let p = super::process().unwrap();
        assert!(t.user_ns + t.system_ns > 0, "{t:?}");
        assert!(
            p.user_ns + p.system_ns >= t.user_ns + t.system_ns,
            "{p:?} < {t:?}"
        );
    }
}
