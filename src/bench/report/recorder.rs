//! The [`Recorder`]: counters and histograms per interval and in total.
//!
//! Pure: every entry point takes the reactor's `now`; nothing reads a clock.
//!
//! # Interval policy
//! Interval deadlines sit on the grid `start + k·interval` (k = 1, 2, …).
//! [`Recorder::close_interval`]`(now)` ends the open interval **at `now`**
//! (its rates use that real length) and opens the next one at `now`; the
//! next deadline is the first grid point strictly after `now`. So a late
//! close makes this interval longer and the next one shorter, and the grid
//! never drifts. A close more than one interval late merges the skipped
//! grid slots into one report (no empty reports are invented). An early
//! close is a snapshot: the deadline stays where it was. A `now` earlier
//! than the interval's start is taken as the start (zero length, rates 0).
//!
//! A sample belongs to the interval open when it is added: its `now` only
//! tracks the latest time seen. Since the reactor closes an interval when
//! its deadline fires, everything counted before the close falls in
//! `[interval start, close)`.

use super::hist::Hist;
use super::{
    Figures, Histograms, IntervalReport, ScheduleError, Summary, TcpTotals, finite_or_zero,
};
use crate::time::{Duration, Instant, duration_nanos};

/// Everything counted over one span (an interval, or the whole run).
#[derive(Debug, Default)]
struct Tally {
    bytes: u64,
    packets: u64,
    requests: u64,
    transfers: u64,
    transfer_bytes: u64,
    errors: u64,
    timeouts: u64,
    lost: u64,
    reordered: u64,
    duplicates: u64,
    latency: Hist,
    transfer: Hist,
    schedule: SignedHist,
}

/// Signed schedule errors: |error| goes into the histogram; the sign is kept
/// in `early` (count of negative errors), the signed min/max and the signed
/// sum (for the signed mean).
#[derive(Debug, Default)]
struct SignedHist {
    abs: Hist,
    early: u64,
    min: i64,
    max: i64,
    sum: i128,
}

impl SignedHist {
    fn record(&mut self, late_ns: i64) {
        if self.abs.count() == 0 {
            self.min = late_ns;
            self.max = late_ns;
        } else {
            self.min = self.min.min(late_ns);
            self.max = self.max.max(late_ns);
        }
        if late_ns < 0 {
            self.early = self.early.saturating_add(1);
        }
        self.sum = self.sum.saturating_add(i128::from(late_ns));
        self.abs.record(late_ns.unsigned_abs());
    }

    fn reset(&mut self) {
        self.abs.reset();
        self.early = 0;
        self.min = 0;
        self.max = 0;
        self.sum = 0;
    }

    fn stats(&self) -> Option<ScheduleError> {
        let abs = self.abs.distribution()?;
        #[allow(
            clippy::cast_precision_loss,
            reason = "the mean is reported as floating point"
        )]
        let mean = self.sum as f64 / abs.count as f64;
        Some(ScheduleError {
            count: abs.count,
            early: self.early,
            min_ns: self.min,
            max_ns: self.max,
            mean_ns: finite_or_zero(mean),
            abs_ns: abs,
        })
    }
}

impl Tally {
    fn reset(&mut self) {
        let Self {
            bytes,
            packets,
            requests,
            transfers,
            transfer_bytes,
            errors,
            timeouts,
            lost,
            reordered,
            duplicates,
            latency,
            transfer,
            schedule,
        } = self;
        for c in [
            bytes,
            packets,
            requests,
            transfers,
            transfer_bytes,
            errors,
            timeouts,
            lost,
            reordered,
            duplicates,
        ] {
            *c = 0;
        }
        latency.reset();
        transfer.reset();
        schedule.reset();
    }

    /// The figures of this tally over `[from, to]`, both relative to `origin`.
    fn figures(&self, origin: Instant, from: Instant, to: Instant) -> Figures {
        let start_ns = from.as_nanos().saturating_sub(origin.as_nanos());
        let end_ns = to
            .as_nanos()
            .saturating_sub(origin.as_nanos())
            .max(start_ns);
        let len_ns = end_ns - start_ns;
        Figures {
            start_s: secs(start_ns),
            end_s: secs(end_ns),
            seconds: secs(len_ns),
            start_ns,
            end_ns,
            bytes: self.bytes,
            packets: self.packets,
            requests: self.requests,
            transfers: self.transfers,
            transfer_bytes: self.transfer_bytes,
            errors: self.errors,
            timeouts: self.timeouts,
            lost: self.lost,
            reordered: self.reordered,
            duplicates: self.duplicates,
            bytes_per_sec: rate(self.bytes, len_ns),
            bits_per_sec: finite_or_zero(rate(self.bytes, len_ns) * 8.0),
            packets_per_sec: rate(self.packets, len_ns),
            requests_per_sec: rate(self.requests, len_ns),
            transfers_per_sec: rate(self.transfers, len_ns),
            latency_ns: self.latency.distribution(),
            transfer_ns: self.transfer.distribution(),
            schedule_error: self.schedule.stats(),
        }
    }
}

/// Seconds from nanoseconds, as f64 (always finite).
#[allow(
    clippy::cast_precision_loss,
    reason = "seconds are reported as floating point"
)]
fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `count` per second over `len_ns`; 0 for a zero-length span.
#[allow(
    clippy::cast_precision_loss,
    reason = "rates are reported as floating point"
)]
pub(crate) fn rate(count: u64, len_ns: u64) -> f64 {
    if len_ns == 0 {
        return 0.0;
    }
    finite_or_zero(count as f64 * 1e9 / len_ns as f64)
}

/// Counters and histograms of one run. See the module docs for the
/// interval policy.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    /// Interval length in ns; `None` keeps totals only (and for a zero
    /// interval, which would otherwise fire forever).
    interval_ns: Option<u64>,
    /// Where the open interval started.
    interval_start: Instant,
    /// When the open interval is due to close.
    deadline: Option<Instant>,
    /// How many intervals were closed.
    closed: u64,
    /// The latest `now` seen.
    latest: Instant,
    current: Tally,
    total: Tally,
    /// The engines' counters, run totals only; `None` until one is added.
    tcp: Option<TcpTotals>,
    /// Sum of the final smoothed RTTs, for the mean.
    srtt_us_sum: u128,
    /// Retransmissions (open interval, run total), for protocols whose
    /// clients count them; `None` reports them as unknown.
    retransmits: Option<(u64, u64)>,
}

impl Recorder {
    /// A recorder whose first interval starts at `start`; `interval` `None`
    /// (or zero) keeps only totals.
    pub fn new(start: Instant, interval: Option<Duration>) -> Self {
        let interval_ns = interval.map(duration_nanos).filter(|&ns| ns > 0);
        Self {
            start,
            interval_ns,
            interval_start: start,
            deadline: interval_ns.map(|ns| start.saturating_add(Duration::from_nanos(ns))),
            closed: 0,
            latest: start,
            current: Tally::default(),
            total: Tally::default(),
            tcp: None,
            srtt_us_sum: 0,
            retransmits: None,
        }
    }

    /// The same recorder, counting retransmissions: its reports say how
    /// many (0 included) instead of "unknown".
    #[must_use]
    pub fn with_retransmits(mut self) -> Self {
        self.retransmits = Some((0, 0));
        self
    }

    /// Whether reports carry a retransmission count.
    pub fn counts_retransmits(&self) -> bool {
        self.retransmits.is_some()
    }

    /// `n` packets or segments were sent again (by one transfer that just
    /// ended). Ignored unless the recorder counts them.
    pub fn add_retransmits(&mut self, now: Instant, n: u64) {
        self.saw(now);
        if let Some((current, total)) = &mut self.retransmits {
            *current = current.saturating_add(n);
            *total = total.saturating_add(n);
        }
    }

    /// When the run started (the `start` given to [`Recorder::new`]).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The report interval, if intervals are kept.
    pub fn interval(&self) -> Option<Duration> {
        self.interval_ns.map(Duration::from_nanos)
    }

    /// How many intervals [`Recorder::close_interval`] has closed.
    pub fn intervals_closed(&self) -> u64 {
        self.closed
    }

    /// Whether the open interval has counted anything yet (useful to skip a
    /// trailing empty interval before [`Recorder::finish`]).
    pub fn interval_has_data(&self) -> bool {
        let t = &self.current;
        [
            t.bytes,
            t.packets,
            t.requests,
            t.transfers,
            t.errors,
            t.timeouts,
            t.lost,
            t.reordered,
            t.duplicates,
            t.schedule.abs.count(),
        ]
        .iter()
        .any(|&c| c > 0)
    }

    fn saw(&mut self, now: Instant) {
        self.latest = self.latest.max(now);
    }

    /// `n` payload bytes delivered.
    pub fn add_bytes(&mut self, now: Instant, n: u64) {
        self.saw(now);
        for t in [&mut self.current, &mut self.total] {
            t.bytes = t.bytes.saturating_add(n);
        }
    }

    /// `n` datagrams or messages delivered.
    pub fn add_packets(&mut self, now: Instant, n: u64) {
        self.saw(now);
        for t in [&mut self.current, &mut self.total] {
            t.packets = t.packets.saturating_add(n);
        }
    }

    /// One request answered after `latency`. Counts a request and records
    /// its latency; bytes are not counted here (use
    /// [`Recorder::add_bytes`]).
    pub fn add_request(&mut self, now: Instant, latency: Duration) {
        self.saw(now);
        let ns = duration_nanos(latency);
        for t in [&mut self.current, &mut self.total] {
            t.requests = t.requests.saturating_add(1);
            t.latency.record(ns);
        }
    }

    /// One transfer of `bytes` completed in `took`. Counts a transfer, adds
    /// `bytes` to `transfer_bytes` and records `took`. It does **not** add
    /// to `bytes` (the throughput counter): feed that with
    /// [`Recorder::add_bytes`] as data arrives, so intervals see it.
    pub fn add_transfer(&mut self, now: Instant, bytes: u64, took: Duration) {
        self.saw(now);
        let ns = duration_nanos(took);
        for t in [&mut self.current, &mut self.total] {
            t.transfers = t.transfers.saturating_add(1);
            t.transfer_bytes = t.transfer_bytes.saturating_add(bytes);
            t.transfer.record(ns);
        }
    }

    /// A stream datagram arrived `late_ns` after its schedule (negative:
    /// early). `|late_ns|` goes into the histogram; the sign is kept in the
    /// signed min/max/mean and the `early` count.
    pub fn add_schedule_error(&mut self, now: Instant, late_ns: i64) {
        self.saw(now);
        for t in [&mut self.current, &mut self.total] {
            t.schedule.record(late_ns);
        }
    }

    /// A stream ended with these counts (added to the running sums).
    pub fn add_stream_counts(&mut self, now: Instant, lost: u64, reordered: u64, duplicates: u64) {
        self.saw(now);
        for t in [&mut self.current, &mut self.total] {
            t.lost = t.lost.saturating_add(lost);
            t.reordered = t.reordered.saturating_add(reordered);
            t.duplicates = t.duplicates.saturating_add(duplicates);
        }
    }

    /// A request or transfer failed (refused, protocol error).
    pub fn add_error(&mut self, now: Instant) {
        self.saw(now);
        for t in [&mut self.current, &mut self.total] {
            t.errors = t.errors.saturating_add(1);
        }
    }

    /// A request or transfer timed out.
    pub fn add_timeout(&mut self, now: Instant) {
        self.saw(now);
        for t in [&mut self.current, &mut self.total] {
            t.timeouts = t.timeouts.saturating_add(1);
        }
    }

    /// A connection of the userspace TCP engine ended with counters `c`
    /// (run totals only: a connection's counters are known once, at its end).
    pub fn add_tcp(&mut self, now: Instant, c: &crate::proto::tcp::conn::Counters) {
        self.saw(now);
        self.add_retransmits(now, c.retransmits);
        let t = self.tcp.get_or_insert_with(TcpTotals::default);
        t.connections = t.connections.saturating_add(1);
        for (sum, n) in [
            (&mut t.segments_in, c.segments_in),
            (&mut t.segments_out, c.segments_out),
            (&mut t.retransmits, c.retransmits),
            (&mut t.fast_retransmits, c.fast_retransmits),
            (&mut t.rto_expiries, c.rto_expiries),
            (&mut t.duplicate_segments, c.duplicate_segments),
            (&mut t.out_of_order, c.out_of_order),
        ] {
            *sum = sum.saturating_add(n);
        }
        self.srtt_us_sum = self.srtt_us_sum.saturating_add(u128::from(c.srtt_us));
        #[expect(
            clippy::cast_precision_loss,
            reason = "the mean is reported as floating point"
        )]
        let mean = self.srtt_us_sum as f64 / t.connections as f64;
        t.srtt_us_mean = finite_or_zero(mean);
    }

    /// When the current interval ends, if intervals are kept: a point of the
    /// grid `start + k·interval`. Changes only in
    /// [`Recorder::close_interval`].
    pub fn next_interval(&self) -> Option<Instant> {
        self.deadline
    }

    /// Closes the current interval at `now` and starts the next (see the
    /// module docs for late and early closes). Works without intervals too,
    /// as a snapshot since the previous close.
    pub fn close_interval(&mut self, now: Instant) -> IntervalReport {
        self.saw(now);
        let end = now.max(self.interval_start);
        let report = IntervalReport {
            index: self.closed,
            figures: self.current.figures(self.start, self.interval_start, end),
            retransmits: self.retransmits.map(|(current, _)| current),
            cpu: None,
        };
        if let Some((current, _)) = &mut self.retransmits {
            *current = 0;
        }
        self.closed = self.closed.saturating_add(1);
        self.current.reset();
        self.interval_start = end;
        if let (Some(ns), Some(deadline)) = (self.interval_ns, self.deadline)
            && end >= deadline
        {
            // First grid point strictly after `end`.
            let k = (end.as_nanos() - self.start.as_nanos()) / ns + 1;
            self.deadline = Some(Instant::from_nanos(
                self.start.as_nanos().saturating_add(k.saturating_mul(ns)),
            ));
        }
        report
    }

    /// Totals of the whole run, from `start` to `now` (or the latest time
    /// seen, if later). It does not close the open interval: call
    /// [`Recorder::close_interval`] first to report the trailing partial
    /// interval. May be called more than once.
    pub fn finish(&mut self, now: Instant) -> Summary {
        self.saw(now);
        Summary {
            figures: self.total.figures(self.start, self.start, self.latest),
            intervals: self.closed,
            histograms: Histograms {
                latency_ns: self.total.latency.buckets(),
                transfer_ns: self.total.transfer.buckets(),
                schedule_error_abs_ns: self.total.schedule.abs.buckets(),
            },
            tcp: self.tcp.clone(),
            retransmits: self.retransmits.map(|(_, total)| total),
            cpu: None,
        }
    }
}

#[cfg(test)]
#[expect(
    clippy::float_cmp,
    reason = "each figure is one division of whole numbers, so it is exactly the f64 nearest its value, as the literal is"
)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn rates_over_intervals() {
        let mut r = Recorder::new(ms(1_000), Some(Duration::from_secs(1)));
        assert_eq!(r.next_interval(), Some(ms(2_000)));
        r.add_bytes(ms(1_100), 1_000_000);
        r.add_packets(ms(1_100), 1_000);
        for _ in 0..500 {
            r.add_request(ms(1_200), Duration::from_micros(100));
        }
        let i = r.close_interval(ms(2_000));
        let f = &i.figures;
        assert_eq!((i.index, f.start_ns, f.end_ns), (0, 0, 1_000_000_000));
        assert_eq!((f.start_s, f.end_s, f.seconds), (0.0, 1.0, 1.0));
        assert_eq!(f.bytes_per_sec, 1_000_000.0);
        assert_eq!(f.bits_per_sec, 8_000_000.0);
        assert_eq!(f.packets_per_sec, 1_000.0);
        assert_eq!(f.requests_per_sec, 500.0);
        assert_eq!(f.latency_ns.unwrap().p50, 100_000);
        // Half a second, half the bytes: same rate.
        r.add_bytes(ms(2_300), 500_000);
        let i = r.close_interval(ms(2_500));
        assert_eq!(i.figures.bytes_per_sec, 1_000_000.0);
        assert_eq!(i.figures.latency_ns, None);
        let s = r.finish(ms(2_500));
        assert_eq!(s.figures.bytes, 1_500_000);
        assert_eq!(s.figures.requests, 500);
        assert_eq!(s.figures.seconds, 1.5);
        assert_eq!(s.figures.bytes_per_sec, 1_000_000.0);
        assert_eq!(s.intervals, 2);
    }

    #[test]
    fn late_close_does_not_drift_the_grid() {
        let mut r = Recorder::new(ms(0), Some(Duration::from_secs(1)));
        // Closed 300 ms late: this interval is 1.3 s, the next ends on the grid.
        let i = r.close_interval(ms(1_300));
        assert_eq!((i.figures.start_ns, i.figures.end_ns), (0, 1_300_000_000));
        assert_eq!(r.next_interval(), Some(ms(2_000)));
        let i = r.close_interval(ms(2_000));
        assert_eq!(i.figures.seconds, 0.7);
        assert_eq!(r.next_interval(), Some(ms(3_000)));
        // More than a whole interval late: skipped slots merge into one report.
        let i = r.close_interval(ms(5_500));
        assert_eq!((i.index, i.figures.start_s, i.figures.end_s), (2, 2.0, 5.5));
        assert_eq!(r.next_interval(), Some(ms(6_000)));
        // Exactly on the grid.
        r.close_interval(ms(6_000));
        assert_eq!(r.next_interval(), Some(ms(7_000)));
    }

    #[test]
    fn early_close_keeps_the_deadline() {
        let mut r = Recorder::new(ms(0), Some(Duration::from_secs(1)));
        let i = r.close_interval(ms(400));
        assert_eq!(i.figures.end_ns, 400_000_000);
        assert_eq!(r.next_interval(), Some(ms(1_000)));
        let i = r.close_interval(ms(1_000));
        assert_eq!(i.figures.start_ns, 400_000_000);
    }

    #[test]
    fn zero_length_and_backwards_closes_give_zero_rates() {
        let mut r = Recorder::new(ms(1_000), Some(Duration::from_secs(1)));
        r.add_bytes(ms(1_000), 10);
        let i = r.close_interval(ms(1_000));
        assert_eq!((i.figures.seconds, i.figures.bytes_per_sec), (0.0, 0.0));
        let i = r.close_interval(ms(500));
        assert_eq!((i.figures.start_ns, i.figures.end_ns), (0, 0));
        assert_eq!(i.figures.bits_per_sec, 0.0);
        let s = r.finish(ms(900));
        assert_eq!((s.figures.seconds, s.figures.bytes_per_sec), (0.0, 0.0));
    }

    #[test]
    fn no_interval_keeps_totals_only() {
        let mut r = Recorder::new(ms(0), None);
        assert_eq!(r.next_interval(), None);
        let mut z = Recorder::new(ms(0), Some(Duration::ZERO));
        assert_eq!(z.next_interval(), None);
        z.close_interval(ms(5));
        assert_eq!(z.next_interval(), None);
        r.add_error(ms(1));
        r.add_timeout(ms(2));
        r.add_timeout(ms(3));
        let s = r.finish(ms(2_000));
        assert_eq!(
            (s.figures.errors, s.figures.timeouts, s.intervals),
            (1, 2, 0)
        );
        assert_eq!(s.figures.seconds, 2.0);
    }

    #[test]
    fn empty_run_has_no_distributions() {
        let mut r = Recorder::new(ms(0), Some(Duration::from_secs(1)));
        assert!(!r.interval_has_data());
        let s = r.finish(ms(0));
        let f = &s.figures;
        assert_eq!(
            (f.latency_ns, f.transfer_ns, f.schedule_error),
            (None, None, None)
        );
        assert_eq!((f.bytes_per_sec, f.requests_per_sec), (0.0, 0.0));
        assert!(s.histograms.latency_ns.is_empty());
    }

    #[test]
    fn schedule_error_keeps_the_sign() {
        let mut r = Recorder::new(ms(0), None);
        for e in [-300, -100, 0, 200, 1_000] {
            r.add_schedule_error(ms(1), e);
        }
        r.add_stream_counts(ms(2), 3, 2, 1);
        let s = r.finish(ms(1_000));
        let e = s.figures.schedule_error.unwrap();
        assert_eq!((e.count, e.early, e.min_ns, e.max_ns), (5, 2, -300, 1_000));
        assert_eq!(e.mean_ns, 160.0);
        assert_eq!((e.abs_ns.min, e.abs_ns.max), (0, 1_000));
        assert_eq!(
            s.histograms
                .schedule_error_abs_ns
                .iter()
                .map(|b| b.count)
                .sum::<u64>(),
            5
        );
        let f = &s.figures;
        assert_eq!((f.lost, f.reordered, f.duplicates), (3, 2, 1));
        // Extremes don't overflow.
        r.add_schedule_error(ms(3), i64::MIN);
        r.add_schedule_error(ms(3), i64::MAX);
        let e = r.finish(ms(3)).figures.schedule_error.unwrap();
        assert_eq!(
            (e.min_ns, e.max_ns, e.abs_ns.clamped),
            (i64::MIN, i64::MAX, 2)
        );
    }

    #[test]
    fn transfers_are_counted_apart_from_bytes() {
        let mut r = Recorder::new(ms(0), None);
        r.add_transfer(ms(10), 4_096, Duration::from_millis(10));
        r.add_transfer(ms(30), 4_096, Duration::from_millis(20));
        let s = r.finish(ms(1_000));
        let f = &s.figures;
        assert_eq!((f.transfers, f.transfer_bytes, f.bytes), (2, 8_192, 0));
        assert_eq!(f.transfers_per_sec, 2.0);
        let t = f.transfer_ns.unwrap();
        assert_eq!(
            (t.min, t.max, t.mean),
            (10_000_000, 20_000_000, 15_000_000.0)
        );
    }

    #[test]
    fn engine_counters_are_summed_over_connections() {
        use crate::proto::tcp::conn::Counters;
        let mut r = Recorder::new(ms(0), Some(Duration::from_secs(1)));
        assert_eq!(r.finish(ms(1)).tcp, None, "none without a connection");
        let c = |retransmits, srtt_us| Counters {
            retransmits,
            fast_retransmits: 1,
            out_of_order: 3,
            srtt_us,
            ..Counters::default()
        };
        r.add_tcp(ms(10), &c(4, 10_000));
        r.add_tcp(ms(20), &c(2, 20_000));
        let t = r.finish(ms(30)).tcp.unwrap();
        assert_eq!(
            (
                t.connections,
                t.retransmits,
                t.fast_retransmits,
                t.out_of_order
            ),
            (2, 6, 2, 6)
        );
        assert_eq!(t.srtt_us_mean, 15_000.0);
        assert!(
            !r.interval_has_data(),
            "run totals only: intervals do not see them"
        );
    }

    #[test]
    fn retransmits_are_counted_per_interval_and_in_total_when_asked() {
        let mut plain = Recorder::new(ms(0), Some(Duration::from_secs(1)));
        plain.add_retransmits(ms(1), 5);
        assert_eq!(plain.close_interval(ms(1_000)).retransmits, None);
        assert_eq!(plain.finish(ms(1_000)).retransmits, None, "unknown, not 0");

        let mut r = Recorder::new(ms(0), Some(Duration::from_secs(1))).with_retransmits();
        assert!(r.counts_retransmits());
        r.add_retransmits(ms(10), 3);
        r.add_retransmits(ms(20), 4);
        assert_eq!(r.close_interval(ms(1_000)).retransmits, Some(7));
        assert_eq!(r.close_interval(ms(2_000)).retransmits, Some(0));
        let c = crate::proto::tcp::conn::Counters {
            retransmits: 2,
            ..Default::default()
        };
        r.add_tcp(ms(2_500), &c);
        assert_eq!(r.close_interval(ms(3_000)).retransmits, Some(2));
        assert_eq!(r.finish(ms(3_000)).retransmits, Some(9));
    }

    #[test]
    fn huge_latency_clamps() {
        let mut r = Recorder::new(ms(0), Some(Duration::from_secs(1)));
        r.add_request(ms(1), Duration::MAX);
        let i = r.close_interval(ms(1_000));
        let l = i.figures.latency_ns.unwrap();
        assert_eq!((l.count, l.clamped, l.max), (1, 1, u64::MAX));
        assert!(l.mean.is_finite());
    }
}
