//! One latency-like distribution: an HDR histogram plus exact count, min,
//! max and sum.
//!
//! Owns the clamping policy: values above [`MAX_TRACKABLE_NS`] (one hour)
//! are recorded as one hour and counted in `clamped`; nothing panics on any
//! `u64`. The histogram is allocated on the first sample (an unused
//! distribution costs a few words) and kept, zeroed, across interval resets.
//! Percentiles come from the histogram through `stats::Percentiles` (the
//! crate's one percentile code: 3 significant digits, so within 0.1 %),
//! clamped into the exact `[min, max]`; count, min, max and mean are exact.

use hdrhistogram::Histogram;

use super::{Bucket, Distribution, finite_or_zero};

/// The largest value a histogram resolves (`stats`' bound, the one of
/// every percentile mioperf prints). Larger values are recorded as this
/// and counted as clamped.
pub use crate::stats::MAX_TRACKABLE_NS;

/// Most buckets a [`super::Histograms`] list holds.
pub const MAX_BUCKETS: usize = 60;

/// Samples of one quantity (ns). See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Hist {
    /// `None` until the first sample, or if the histogram could not be built.
    h: Option<Histogram<u64>>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
    clamped: u64,
}

impl Hist {
    /// Records one sample. Never panics.
    pub(crate) fn record(&mut self, v: u64) {
        if self.h.is_none() {
            // Should it ever fail, the exact figures below still hold and
            // percentiles fall back to max.
            self.h = crate::stats::histogram();
        }
        if v > MAX_TRACKABLE_NS {
            self.clamped = self.clamped.saturating_add(1);
        }
        crate::stats::record(self.h.as_mut(), v);
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count = self.count.saturating_add(1);
        self.sum = self.sum.saturating_add(u128::from(v));
    }

    /// Forgets every sample, keeping the allocation.
    pub(crate) fn reset(&mut self) {
        if let Some(h) = self.h.as_mut() {
            h.reset();
        }
        self.count = 0;
        self.min = 0;
        self.max = 0;
        self.sum = 0;
        self.clamped = 0;
    }

    /// How many samples.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The figures, or `None` without samples.
    pub(crate) fn distribution(&self) -> Option<Distribution> {
        if self.count == 0 {
            return None;
        }
        let p = crate::stats::Percentiles::from_histogram(
            self.h.as_ref(),
            self.min,
            self.max,
            usize::try_from(self.count).unwrap_or(usize::MAX),
        );
        #[allow(
            clippy::cast_precision_loss,
            reason = "the mean is reported as floating point"
        )]
        let mean = self.sum as f64 / self.count as f64;
        Some(Distribution {
            count: self.count,
            min: self.min,
            mean: finite_or_zero(mean),
            p50: p.p50,
            p90: p.p90,
            p99: p.p99,
            p999: p.p999,
            max: self.max,
            clamped: self.clamped,
        })
    }

    /// At most [`MAX_BUCKETS`] log-spaced buckets covering every sample;
    /// empty without samples. Each bucket holds the samples in
    /// `[lo_ns, hi_ns)`; the first starts at the smallest sample, the last
    /// ends just past the largest (one hour for clamped samples), and the
    /// counts sum to `count`.
    pub(crate) fn buckets(&self) -> Vec<Bucket> {
        let Some(h) = self.h.as_ref() else {
            return Vec::new();
        };
        if self.count == 0 {
            return Vec::new();
        }
        let lo = self.min.min(MAX_TRACKABLE_NS);
        let hi = self.max.min(MAX_TRACKABLE_NS).saturating_add(1);
        let edges = log_edges(lo, hi, MAX_BUCKETS);
        let mut out: Vec<Bucket> = edges
            .windows(2)
            .map(|w| Bucket {
                lo_ns: w[0],
                hi_ns: w[1],
                count: 0,
            })
            .collect();
        let last = out.len().saturating_sub(1);
        for v in h.iter_recorded() {
            // A histogram slot stands for a small range of values; place it
            // by its lowest value, clamped to the exact range.
            let value = h.lowest_equivalent(v.value_iterated_to()).clamp(lo, hi - 1);
            let idx = out.partition_point(|b| b.hi_ns <= value).min(last);
            if let Some(b) = out.get_mut(idx) {
                b.count = b.count.saturating_add(v.count_at_value());
            }
        }
        out
    }
}

/// Strictly increasing edges from `lo` to `hi` (`lo < hi`), at most `n + 1`
/// of them, spaced evenly in log scale (linear, width 1, when the range is
/// narrower than `n`).
fn log_edges(lo: u64, hi: u64, n: usize) -> Vec<u64> {
    let n = n.max(1);
    let span = hi.saturating_sub(lo);
    if span <= n as u64 {
        return (lo..=hi).collect();
    }
    // Log spacing needs a positive start; a zero sample lands in the first
    // bucket, which then starts at 0.
    let base = lo.max(1);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "edges are rounded to whole nanoseconds and clamped"
    )]
    let edge = |i: usize| -> u64 {
        let ratio = hi as f64 / base as f64;
        let v = base as f64 * ratio.powf(i as f64 / n as f64);
        if v.is_finite() && v > 0.0 {
            (v.round() as u64).min(hi)
        } else {
            hi
        }
    };
    let mut edges = Vec::with_capacity(n + 1);
    edges.push(lo);
    for i in 1..n {
        let e = edge(i);
        if e > *edges.last().unwrap_or(&lo) && e < hi {
            edges.push(e);
        }
    }
    edges.push(hi);
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_latencies_give_known_percentiles() {
        let mut h = Hist::default();
        for us in 1..=1000u64 {
            h.record(us * 1_000);
        }
        let d = h.distribution().unwrap();
        assert_eq!(
            (d.count, d.min, d.max, d.clamped),
            (1000, 1_000, 1_000_000, 0)
        );
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(near(d.p50, 500_000), "{}", d.p50);
        assert!(near(d.p90, 900_000), "{}", d.p90);
        assert!(near(d.p99, 990_000), "{}", d.p99);
        assert!(near(d.p999, 999_000), "{}", d.p999);
        assert!((d.mean - 500_500.0).abs() < 1e-6);
    }

    #[test]
    fn empty_has_no_distribution_and_no_buckets() {
        let h = Hist::default();
        assert_eq!(h.distribution(), None);
        assert!(h.buckets().is_empty());
    }

    #[test]
    fn huge_values_clamp_and_count() {
        let mut h = Hist::default();
        h.record(u64::MAX);
        h.record(5);
        let d = h.distribution().unwrap();
        assert_eq!((d.count, d.clamped, d.min, d.max), (2, 1, 5, u64::MAX));
        assert!(d.mean.is_finite());
        assert!(d.p999 >= MAX_TRACKABLE_NS - MAX_TRACKABLE_NS / 1000);
        let b = h.buckets();
        assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), 2);
        assert!(b.len() <= MAX_BUCKETS);
    }

    #[test]
    fn buckets_cover_every_sample() {
        let mut h = Hist::default();
        for v in [0, 1, 7, 900, 1_000, 25_000, 3_000_000, 3_000_000] {
            h.record(v);
        }
        let b = h.buckets();
        assert!(!b.is_empty() && b.len() <= MAX_BUCKETS);
        assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), 8);
        assert_eq!(b[0].lo_ns, 0);
        assert_eq!(b.last().unwrap().hi_ns, 3_000_001);
        assert!(b.windows(2).all(|w| w[0].hi_ns == w[1].lo_ns));
        assert!(b.iter().all(|b| b.lo_ns < b.hi_ns));
    }

    #[test]
    fn single_value_gives_one_bucket() {
        let mut h = Hist::default();
        h.record(42);
        h.record(42);
        let b = h.buckets();
        assert_eq!(
            b,
            vec![Bucket {
                lo_ns: 42,
                hi_ns: 43,
                count: 2
            }]
        );
    }

    #[test]
    fn reset_forgets() {
        let mut h = Hist::default();
        h.record(10);
        h.reset();
        assert_eq!(h.count(), 0);
        assert_eq!(h.distribution(), None);
        h.record(20);
        assert_eq!(h.distribution().unwrap().min, 20);
    }
}
