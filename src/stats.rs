//! Figures from raw samples: percentiles and stream statistics.
//!
//! Owns the arithmetic behind every number mioperf prints, so it can be
//! tested on fixed inputs. Pure: no I/O, no clock. Values are integers
//! (nanoseconds, counts) until the very end, and no function returns a NaN
//! or an infinity: an undefined figure is `None`.

use crate::proto::lab::StreamSample;
use hdrhistogram::Histogram;

/// Significant decimal digits every latency histogram keeps: a percentile
/// read from one is within 0.1 % of the exact order statistic (values
/// below 2048 are exact).
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// The largest value a histogram resolves: one hour in nanoseconds, far
/// above any timeout of a request or transfer. Larger values are recorded
/// as this; the exact `max` is kept beside the histogram.
pub const MAX_TRACKABLE_NS: u64 = 3_600 * 1_000_000_000;

/// An empty histogram with the crate's bounds and precision: the one kind
/// every percentile mioperf prints is read from. `None` only if
/// `hdrhistogram` refused the constant bounds (it checks `1 <= low`,
/// `2 * low <= high`, `sigfig <= 5`, all true here); callers then fall
/// back to the exact `max`.
pub fn histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, HISTOGRAM_SIGFIG).ok()
}

/// Records `value` in `h`, clamped to [`MAX_TRACKABLE_NS`]. Never panics.
pub fn record(h: Option<&mut Histogram<u64>>, value: u64) {
    if let Some(h) = h {
        h.saturating_record(value.min(MAX_TRACKABLE_NS));
    }
}

/// The value at `quantile` (0 to 1) of `h`, clamped into the exact
/// `[min, max]` of the samples (a histogram slot stands for a small range
/// that may reach past them); `max` without a histogram.
pub fn quantile(h: Option<&Histogram<u64>>, quantile: f64, min: u64, max: u64) -> u64 {
    h.map_or(max, |h| h.value_at_quantile(quantile))
        .clamp(min, max)
}

/// Order statistics of a set of values (nanoseconds, usually).
///
/// Percentiles are read from an HDR histogram ([`histogram`]) with
/// [`HISTOGRAM_SIGFIG`] significant digits: each is within 0.1 % of the
/// exact nearest-rank value (exact below 2048), and never outside the
/// samples' range. `max` and `count` are exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// How many values.
    pub count: usize,
}

impl Percentiles {
    /// The percentiles of `values` (in any order); `None` if empty.
    pub fn of(values: &[u64]) -> Option<Self> {
        let (&first, _) = values.split_first()?;
        let mut h = histogram();
        let (mut min, mut max) = (first, first);
        for &v in values {
            record(h.as_mut(), v);
            min = min.min(v);
            max = max.max(v);
        }
        Some(Self::from_histogram(h.as_ref(), min, max, values.len()))
    }

    /// The percentiles of samples already recorded in `h`, whose exact
    /// `min`, `max` and `count` the caller kept.
    pub fn from_histogram(h: Option<&Histogram<u64>>, min: u64, max: u64, count: usize) -> Self {
        let q = |at: f64| quantile(h, at, min, max);
        Self {
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max,
            count,
        }
    }
}

/// What a stream's samples say.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StreamStats {
    /// Segments expected.
    pub expected: u64,
    /// Datagrams or segments that arrived, duplicates included.
    pub received: u64,
    /// Distinct sequence numbers that arrived.
    pub unique: u64,
    /// Expected but never seen.
    pub lost: u64,
    /// Arrivals of a sequence number seen before.
    pub duplicated: u64,
    /// Arrivals with a sequence number below one seen before.
    pub reordered: u64,
    /// Segments per second from the first arrival to the last.
    pub rate_per_s: Option<f64>,
    /// The rate asked for (`None` for interval 0).
    pub requested_rate_per_s: Option<f64>,
    /// Achieved over requested, minus one (0.001 = 0.1 % fast).
    pub rate_error: Option<f64>,
    /// Payload bytes per second over the same span.
    pub bytes_per_s: Option<f64>,
    /// |Δarrival − Δscheduled| between consecutive in-order first
    /// arrivals, ns: the inter-arrival error against the schedule.
    pub schedule_error_ns: Option<Percentiles>,
    /// Largest |(arrival − first arrival) − (scheduled − first scheduled)|,
    /// ns: how far the stream strayed from its grid.
    pub max_drift_ns: Option<u64>,
}

/// Computes [`StreamStats`] from samples in arrival order.
pub fn stream_stats(
    samples: &[StreamSample],
    expected: u64,
    interval_ns: u64,
    size: u32,
) -> StreamStats {
    let mut seen = std::collections::HashSet::with_capacity(samples.len());
    let (mut duplicated, mut reordered) = (0, 0);
    // The arrivals that extend the sequence: the first arrival of a number
    // above every number before it. Errors are measured between these only,
    // so a late or repeated segment cannot fake a gap.
    let mut in_order: Vec<StreamSample> = Vec::with_capacity(samples.len());
    for s in samples {
        if !seen.insert(s.seq) {
            duplicated += 1;
        } else if in_order.last().is_some_and(|last| s.seq < last.seq) {
            reordered += 1;
        } else {
            in_order.push(*s);
        }
    }
    let unique = seen.len() as u64;
    let received = samples.len() as u64;

    let errors: Vec<u64> = in_order
        .windows(2)
        .map(|pair| {
            let d_rx = i128::from(pair[1].rx_ns) - i128::from(pair[0].rx_ns);
            let d_sched = i128::from(pair[1].sched_ns) - i128::from(pair[0].sched_ns);
            u64::try_from((d_rx - d_sched).unsigned_abs()).unwrap_or(u64::MAX)
        })
        .collect();
    let max_drift_ns = samples.first().and_then(|first| {
        samples
            .iter()
            .map(|s| {
                let rx = i128::from(s.rx_ns) - i128::from(first.rx_ns);
                let sched = i128::from(s.sched_ns) - i128::from(first.sched_ns);
                u64::try_from((rx - sched).unsigned_abs()).unwrap_or(u64::MAX)
            })
            .max()
    });

    let span_ns = match (
        samples.iter().map(|s| s.rx_ns).min(),
        samples.iter().map(|s| s.rx_ns).max(),
    ) {
        (Some(lo), Some(hi)) if hi > lo => Some(hi - lo),
        _ => None,
    };
    #[allow(
        clippy::cast_precision_loss,
        reason = "rates are reported as floating point"
    )]
    let rate_per_s = span_ns.map(|ns| (unique.saturating_sub(1)) as f64 * 1e9 / ns as f64);
    #[allow(
        clippy::cast_precision_loss,
        reason = "rates are reported as floating point"
    )]
    let requested_rate_per_s = (interval_ns > 0).then(|| 1e9 / interval_ns as f64);
    let rate_error = match (rate_per_s, requested_rate_per_s) {
        (Some(got), Some(want)) => Some(got / want - 1.0),
        _ => None,
    };
    let bytes_per_s = rate_per_s.map(|r| r * f64::from(size));
    StreamStats {
        expected,
        received,
        unique,
        lost: expected.saturating_sub(unique),
        duplicated,
        reordered,
        rate_per_s,
        requested_rate_per_s,
        rate_error,
        bytes_per_s,
        schedule_error_ns: Percentiles::of(&errors),
        max_drift_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seq: u64, sched_ns: u64, rx_ns: u64) -> StreamSample {
        StreamSample {
            seq,
            sched_ns,
            rx_ns,
        }
    }

    /// Exact nearest rank: the smallest value with at least `per_mille`
    /// of the set at or below it (the figure the histogram approximates).
    fn nearest_rank(values: &[u64], per_mille: usize) -> u64 {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted[(sorted.len() * per_mille).div_ceil(1000).saturating_sub(1)]
    }

    #[test]
    fn small_values_give_exact_nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).rev().collect();
        let p = Percentiles::of(&v).unwrap();
        assert_eq!(
            (p.p50, p.p90, p.p99, p.p999, p.max, p.count),
            (50, 90, 99, 100, 100, 100)
        );
        assert_eq!(Percentiles::of(&[7]).unwrap().p50, 7);
        assert_eq!(Percentiles::of(&[0, 0]).unwrap().p99, 0);
        assert_eq!(Percentiles::of(&[]), None);
    }

    #[test]
    fn large_values_are_within_the_stated_precision() {
        // Nanosecond latencies from 1 µs to ~1 s, spread unevenly.
        let mut rng = crate::rng::SplitMix64::new(16);
        let v: Vec<u64> = (0..10_000)
            .map(|_| 1_000 + (rng.next_u64() % 1_000_000_000) / (1 + rng.next_u64() % 1000))
            .collect();
        let p = Percentiles::of(&v).unwrap();
        for (got, per_mille) in [(p.p50, 500), (p.p90, 900), (p.p99, 990), (p.p999, 999)] {
            let want = nearest_rank(&v, per_mille);
            let error = got.abs_diff(want);
            assert!(error * 1000 <= want, "p{per_mille}: {got} vs exact {want}");
        }
        assert_eq!(p.max, *v.iter().max().unwrap());
        assert_eq!(p.count, 10_000);
    }

    #[test]
    fn values_past_the_histogram_keep_an_exact_max() {
        let p = Percentiles::of(&[5, u64::MAX]).unwrap();
        assert_eq!((p.max, p.p50), (u64::MAX, 5));
        assert!(p.p999 >= MAX_TRACKABLE_NS, "{}", p.p999);
    }

    #[test]
    fn perfect_stream() {
        let samples: Vec<_> = (0..5)
            .map(|i| s(i, i * 100_000, 1_000 + i * 100_000))
            .collect();
        let st = stream_stats(&samples, 5, 100_000, 64);
        assert_eq!(
            (st.unique, st.lost, st.duplicated, st.reordered),
            (5, 0, 0, 0)
        );
        assert_eq!(st.schedule_error_ns.unwrap().max, 0);
        assert_eq!(st.max_drift_ns, Some(0));
        assert_eq!(st.rate_per_s, Some(10_000.0));
        assert_eq!(st.rate_error, Some(0.0));
        assert_eq!(st.bytes_per_s, Some(640_000.0));
    }

    #[test]
    fn loss_duplication_reordering_and_jitter() {
        let samples = vec![
            s(0, 0, 0),
            s(2, 200, 210), // 1 is late: error |210 - 200| = 10
            s(1, 100, 220), // reordered: not an in-order arrival
            s(2, 200, 230), // duplicate
            s(3, 300, 330), // against (2, 210): |120 - 100| = 20
        ];
        let st = stream_stats(&samples, 5, 100, 16);
        assert_eq!(
            (st.received, st.unique, st.lost, st.duplicated, st.reordered),
            (5, 4, 1, 1, 1)
        );
        let e = st.schedule_error_ns.unwrap();
        assert_eq!((e.count, e.p50, e.max), (2, 10, 20));
        assert_eq!(st.max_drift_ns, Some(120));
    }

    #[test]
    fn empty_and_single_samples_give_no_rates() {
        let st = stream_stats(&[], 10, 100, 16);
        assert_eq!(
            (st.lost, st.rate_per_s, st.schedule_error_ns),
            (10, None, None)
        );
        let st = stream_stats(&[s(0, 0, 5)], 1, 0, 16);
        assert_eq!(
            (st.rate_per_s, st.requested_rate_per_s, st.rate_error),
            (None, None, None)
        );
    }
}
