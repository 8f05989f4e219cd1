//! CPU time of the load generator and of the in-process server, sampled
//! with `getrusage` for the report's `cpu` figures.
//!
//! Owns the samples and their differences. The generator is the bench's
//! reactor thread, the one that creates the [`CpuMeter`] and samples it
//! (`RUSAGE_THREAD`); the in-process server runs on a thread of its own,
//! and the process has no other thread during a run, so the server's
//! share is the process's (`RUSAGE_SELF`) minus the generator's. With
//! `--server` there is no server share. It never reads a clock: the
//! caller passes the reactor's `now`, whose differences are the wall time
//! the percentages divide by. It must be sampled from the generator's
//! thread only.

use super::report::{CpuSpent, CpuUsage};
use crate::reactor::sys::rusage::{self, CpuTime};
use crate::time::Instant;

/// One reading: when, this thread's CPU time, the process's.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    thread: CpuTime,
    process: CpuTime,
}

impl Sample {
    fn read(at: Instant) -> Option<Self> {
        Some(Self {
            at,
            thread: rusage::thread().ok()?,
            process: rusage::process().ok()?,
        })
    }
}

fn spent(from: CpuTime, to: CpuTime) -> CpuSpent {
    CpuSpent {
        user_ns: to.user_ns.saturating_sub(from.user_ns),
        system_ns: to.system_ns.saturating_sub(from.system_ns),
    }
}

/// `to − from` split into the generator's and the rest of the process's.
fn usage(from: &Sample, to: &Sample, server: bool) -> CpuUsage {
    let generator = spent(from.thread, to.thread);
    let process = spent(from.process, to.process);
    // The kernel scales each task's user/system split on its own, so the
    // difference can dip a hair below zero: saturate.
    let others = CpuSpent {
        user_ns: process.user_ns.saturating_sub(generator.user_ns),
        system_ns: process.system_ns.saturating_sub(generator.system_ns),
    };
    let wall_ns = to.at.as_nanos().saturating_sub(from.at.as_nanos());
    CpuUsage::new(wall_ns, generator, server.then_some(others))
}

/// Samples CPU time at the run's start, each interval's close and the end.
#[derive(Debug)]
pub struct CpuMeter {
    server: bool,
    start: Option<Sample>,
    last: Option<Sample>,
}

impl CpuMeter {
    /// Starts measuring at `now`; `server`: an in-process server runs on
    /// another thread of this process.
    pub fn start(now: Instant, server: bool) -> Self {
        let first = Sample::read(now);
        Self {
            server,
            start: first,
            last: first,
        }
    }

    /// CPU use since the previous lap (or the start), up to `now`; `None`
    /// if `getrusage` failed.
    pub fn lap(&mut self, now: Instant) -> Option<CpuUsage> {
        let sample = Sample::read(now)?;
        let since = self.last.replace(sample)?;
        Some(usage(&since, &sample, self.server))
    }

    /// CPU use from the start up to `now`.
    pub fn total(&self, now: Instant) -> Option<CpuUsage> {
        let sample = Sample::read(now)?;
        Some(usage(self.start.as_ref()?, &sample, self.server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(user_ns: u64, system_ns: u64) -> CpuTime {
        CpuTime { user_ns, system_ns }
    }

    #[test]
    fn the_server_is_the_process_minus_the_generator() {
        let from = Sample {
            at: Instant::from_millis(1_000),
            thread: t(100, 100),
            process: t(300, 300),
        };
        let to = Sample {
            at: Instant::from_millis(2_000),
            thread: t(500_000_100, 100),
            process: t(700_000_300, 250_000_300),
        };
        let u = usage(&from, &to, true);
        assert!((u.seconds - 1.0).abs() < 1e-12);
        assert!((u.generator.user_percent - 50.0).abs() < 1e-9, "{u:?}");
        let s = u.server.unwrap();
        assert!((s.user_percent - 20.0).abs() < 1e-9, "{u:?}");
        assert!((s.system_percent - 25.0).abs() < 1e-9, "{u:?}");
        assert!(usage(&from, &to, false).server.is_none());
        // A split that dips below the generator's saturates at zero.
        let odd = Sample {
            process: t(400_000_000, 250_000_300),
            ..to
        };
        assert!(usage(&from, &odd, true).server.unwrap().user_seconds.abs() < 1e-12);
    }

    #[test]
    fn a_meter_measures_this_thread() {
        let mut m = CpuMeter::start(Instant::from_millis(0), false);
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(std::hint::black_box(x), 1);
        let lap = m.lap(Instant::from_millis(1_000)).unwrap();
        assert!(lap.generator.user_seconds + lap.generator.system_seconds > 0.0);
        let total = m.total(Instant::from_millis(1_000)).unwrap();
        assert!(total.generator.user_seconds >= lap.generator.user_seconds);
    }
}
