//! CPU use of a bench run: the load generator's thread and the in-process
//! server's, as figures of an interval or of the whole run.
//!
//! Pure arithmetic on CPU times the caller read (`bench::cpu` samples
//! `getrusage`); it never reads a clock or the kernel. Percentages are of
//! the wall time between the two samples, so one busy thread reads 100 %.

use super::finite_or_zero;
use serde::Serialize;

/// One thread's (or thread group's) CPU use over a span.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CpuShare {
    /// User CPU time, seconds.
    pub user_seconds: f64,
    /// System (kernel) CPU time, seconds.
    pub system_seconds: f64,
    /// `user_seconds` as a percentage of the span's wall time.
    pub user_percent: f64,
    /// `system_seconds` as a percentage of the span's wall time.
    pub system_percent: f64,
    /// `user_percent + system_percent`.
    pub total_percent: f64,
}

/// CPU use over one span (an interval or the whole run).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CpuUsage {
    /// Wall time between the two samples, seconds.
    pub seconds: f64,
    /// The load generator: the bench's reactor thread.
    pub generator: CpuShare,
    /// The in-process server's thread (every thread of the process but the
    /// generator's); `None` with `--server`.
    pub server: Option<CpuShare>,
}

/// User and system nanoseconds spent over a span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSpent {
    /// User CPU, ns.
    pub user_ns: u64,
    /// System CPU, ns.
    pub system_ns: u64,
}

#[expect(
    clippy::cast_precision_loss,
    reason = "CPU nanoseconds become floating-point seconds and percentages"
)]
fn share(spent: CpuSpent, wall_ns: u64) -> CpuShare {
    let pct = |ns: u64| {
        if wall_ns == 0 {
            0.0
        } else {
            finite_or_zero(ns as f64 * 100.0 / wall_ns as f64)
        }
    };
    let (user_percent, system_percent) = (pct(spent.user_ns), pct(spent.system_ns));
    CpuShare {
        user_seconds: spent.user_ns as f64 / 1e9,
        system_seconds: spent.system_ns as f64 / 1e9,
        user_percent,
        system_percent,
        total_percent: user_percent + system_percent,
    }
}

impl CpuUsage {
    /// The figures of a span `wall_ns` long in which the generator spent
    /// `generator` and the server `server`.
    #[must_use]
    #[expect(
        clippy::cast_precision_loss,
        reason = "wall nanoseconds become floating-point seconds"
    )]
    pub fn new(wall_ns: u64, generator: CpuSpent, server: Option<CpuSpent>) -> Self {
        Self {
            seconds: wall_ns as f64 / 1e9,
            generator: share(generator, wall_ns),
            server: server.map(|s| share(s, wall_ns)),
        }
    }
}

#[cfg(test)]
#[expect(
    clippy::float_cmp,
    reason = "each figure is one division of whole numbers that are exact in f64"
)]
mod tests {
    use super::*;

    #[test]
    fn percent_of_wall_time() {
        let g = CpuSpent {
            user_ns: 750_000_000,
            system_ns: 250_000_000,
        };
        let s = CpuSpent {
            user_ns: 100_000_000,
            system_ns: 400_000_000,
        };
        let u = CpuUsage::new(2_000_000_000, g, Some(s));
        assert_eq!(u.seconds, 2.0);
        assert_eq!(u.generator.user_seconds, 0.75);
        assert_eq!(u.generator.user_percent, 37.5);
        assert_eq!(u.generator.system_percent, 12.5);
        assert_eq!(u.generator.total_percent, 50.0);
        let server = u.server.unwrap();
        assert_eq!(server.system_seconds, 0.4);
        assert_eq!(server.total_percent, 25.0);
        let none = CpuUsage::new(0, g, None);
        assert_eq!(none.generator.total_percent, 0.0);
        assert!(none.server.is_none());
    }
}
