//! CUBIC (RFC 9438): the window grows as a cubic function of the time
//! since the last congestion event, concave up to the window where that
//! loss happened (`W_max`) and convex beyond it, with a Reno-friendly
//! floor (`W_est`) for short-RTT paths where Reno would grow faster.
//!
//! Owns only the window arithmetic, like [`super::NewReno`], and shares its
//! interface and its fast-recovery mechanics (RFC 6582 inflation and
//! partial-ACK deflation, driven by the engine the same way); what
//! differs is the multiplicative decrease (β = 0.7 instead of 0.5) and
//! the growth in congestion avoidance. Slow start is RFC 5681's (`HyStart++`
//! is not implemented). Time comes from the `now` of each call and the
//! RTT from the engine's [`RttEstimator`]; no clock is read.

use super::{
    Ack, CongestionControl, INITIAL_SSTHRESH, initial_window, recovery_ack, recovery_window,
    slow_start,
};
use crate::proto::tcp::rtt::RttEstimator;
use crate::time::Instant;

/// RFC 9438 §5.1: the scaling constant C, in segments per second³.
pub const C: f64 = 0.4;

/// RFC 9438 §4.6: the multiplicative decrease factor `β_cubic`.
pub const BETA: f64 = 0.7;

/// RFC 9438 §4.3: the Reno-friendly additive increase `α_cubic` =
/// 3(1 − β)/(1 + β), so that `W_est` grows as fast as Reno on average.
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// RFC 9438 §4.2: the target window is at most 1.5 × cwnd one RTT ahead,
/// which bounds the growth per RTT as slow start does.
const MAX_TARGET_RATIO: f64 = 1.5;

#[expect(
    clippy::cast_precision_loss,
    reason = "windows are far below 2^52 bytes; exactness beyond is moot"
)]
fn to_f64(bytes: usize) -> f64 {
    bytes as f64
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "clamped to [0, usize::MAX as f64] first; fractions of a byte are dropped on purpose"
)]
fn to_bytes(x: f64) -> usize {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        x.min(to_f64(usize::MAX)) as usize
    }
}

/// RFC 9438 CUBIC. See the module docs.
#[derive(Clone, Debug)]
pub struct Cubic {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    recovering: bool,
    /// As [`super::NewReno`]: a further RTO keeps ssthresh and `W_max`.
    after_rto: bool,
    /// No ACK or loss yet: `set_mss` may still reset the initial window.
    fresh: bool,
    /// The window (bytes) just before the last congestion event.
    w_max: f64,
    /// When the current congestion-avoidance epoch began (its first ACK
    /// in congestion avoidance); `None` outside one.
    epoch_start: Option<Instant>,
    /// K of RFC 9438 equation 2, in seconds, for this epoch.
    k: f64,
    /// The Reno-friendly estimate `W_est`, in bytes.
    w_est: f64,
    /// Fractional bytes of growth not yet added to `cwnd`.
    credit: f64,
}

impl Cubic {
    /// A controller for a sender MSS of `mss` bytes, with RFC 6928's
    /// initial window. An `mss` of zero is treated as one byte.
    pub fn new(mss: usize) -> Self {
        let mss = mss.max(1);
        Self {
            mss,
            cwnd: initial_window(mss),
            ssthresh: INITIAL_SSTHRESH,
            recovering: false,
            after_rto: false,
            fresh: true,
            w_max: 0.0,
            epoch_start: None,
            k: 0.0,
            w_est: 0.0,
            credit: 0.0,
        }
    }

    /// `W_max` in bytes (for tests and counters).
    pub fn w_max(&self) -> usize {
        to_bytes(self.w_max)
    }

    /// `W_cubic(t)` of RFC 9438 equation 1, in bytes, `t` seconds into the
    /// epoch.
    fn w_cubic(&self, t: f64) -> f64 {
        let mss = to_f64(self.mss);
        (C * (t - self.k).powi(3)) * mss + self.w_max
    }

    /// A congestion event (RFC 9438 §4.6, with fast convergence §4.7):
    /// remembers `W_max`, returns the new ssthresh.
    fn reduce(&mut self, flight: usize) -> usize {
        let cwnd = to_f64(self.cwnd);
        self.w_max = if cwnd < self.w_max {
            // Fast convergence: a loss below the last W_max means a new
            // flow is taking bandwidth; release some of it.
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        self.epoch_start = None;
        self.credit = 0.0;
        // ssthresh from the flight, as RFC 5681 does (RFC 9438 §4.6 allows
        // either); never below 2 SMSS.
        to_bytes(to_f64(flight) * BETA).max(2usize.saturating_mul(self.mss))
    }

    fn congestion_avoidance(&mut self, now: Instant, bytes_acked: usize, rtt: &RttEstimator) {
        let mss = to_f64(self.mss);
        let cwnd = to_f64(self.cwnd);
        let start = *self.epoch_start.get_or_insert_with(|| {
            // RFC 9438 equation 2, general form: K from the window the
            // epoch starts with.
            self.k = ((self.w_max - cwnd).max(0.0) / mss / C).cbrt();
            self.w_est = cwnd;
            now
        });
        let t = (now - start).as_secs_f64();
        let rtt = rtt.srtt().map_or(0.0, |d| d.as_secs_f64());
        let target = self.w_cubic(t + rtt).clamp(cwnd, cwnd * MAX_TARGET_RATIO);
        // RFC 9438 §4.3: W_est += α · segments_acked / cwnd (in segments).
        self.w_est += ALPHA * to_f64(bytes_acked) / cwnd * mss;
        if self.w_cubic(t) < self.w_est {
            // The Reno-friendly region.
            if self.w_est > cwnd {
                self.cwnd = to_bytes(self.w_est);
                self.credit = 0.0;
            }
            return;
        }
        // §4.4/4.5: cwnd += (target − cwnd) / cwnd per acknowledged segment.
        self.credit += (target - cwnd) / cwnd * to_f64(bytes_acked);
        let whole = self.credit.floor();
        self.credit -= whole;
        self.cwnd = self.cwnd.saturating_add(to_bytes(whole));
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }

    fn on_ack(&mut self, now: Instant, ack: Ack, rtt: &RttEstimator) {
        if ack.bytes_acked == 0 {
            return;
        }
        self.fresh = false;
        self.after_rto = false;
        if self.recovering {
            let (cwnd, ended) = recovery_ack(self.cwnd, self.ssthresh, self.mss, ack);
            self.cwnd = cwnd;
            self.recovering = !ended;
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = slow_start(self.cwnd, ack.bytes_acked, self.mss);
        } else {
            self.congestion_avoidance(now, ack.bytes_acked, rtt);
        }
    }

    fn on_duplicate_ack(&mut self, _now: Instant) {
        if self.recovering {
            self.cwnd = self.cwnd.saturating_add(self.mss);
        }
    }

    fn on_fast_retransmit(&mut self, _now: Instant, flight: usize) {
        if self.recovering {
            return;
        }
        self.fresh = false;
        self.ssthresh = self.reduce(flight);
        self.cwnd = recovery_window(self.ssthresh, self.mss);
        self.recovering = true;
    }

    fn on_rto(&mut self, _now: Instant, flight: usize) {
        self.fresh = false;
        if !self.after_rto {
            self.ssthresh = self.reduce(flight);
        }
        self.after_rto = true;
        self.epoch_start = None;
        self.cwnd = self.mss;
        self.recovering = false;
    }

    fn window(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn set_mss(&mut self, mss: usize) {
        self.mss = mss.max(1);
        if self.fresh {
            self.cwnd = initial_window(self.mss);
        }
    }

    fn in_recovery(&self) -> bool {
        self.recovering
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    const MSS: usize = 1000;

    fn rtt_of(ms: u64) -> RttEstimator {
        let mut r = RttEstimator::default();
        r.on_sample(Duration::from_millis(ms));
        r
    }

    fn ack(bytes_acked: usize, flight: usize, covers_recover: bool) -> Ack {
        Ack {
            bytes_acked,
            flight,
            covers_recover,
        }
    }

    /// Grows a fresh controller to `w` segments in slow start, then loses
    /// a segment with `w` in flight and completes the recovery.
    fn after_loss_at(w: usize, now: Instant, rtt: &RttEstimator) -> Cubic {
        let mut cc = Cubic::new(MSS);
        while cc.window() < w * MSS {
            cc.on_ack(now, ack(MSS, 0, true), rtt);
        }
        cc.on_fast_retransmit(now, w * MSS);
        cc.on_ack(now, ack(MSS, w * MSS, true), rtt);
        cc
    }

    /// One round trip: a window's worth of ACKs, one per segment, at `now`.
    fn round_trip(cc: &mut Cubic, now: Instant, rtt: &RttEstimator) {
        let w = cc.window();
        let mut left = w;
        while left > 0 {
            let n = left.min(MSS);
            left -= n;
            cc.on_ack(now, ack(n, left, true), rtt);
        }
    }

    #[test]
    fn loss_cuts_to_beta_and_remembers_w_max() {
        let rtt = rtt_of(100);
        let cc = after_loss_at(100, Instant::ZERO, &rtt);
        assert_eq!(cc.w_max(), 100 * MSS);
        assert_eq!(cc.ssthresh(), 70 * MSS);
        assert_eq!(cc.window(), 70 * MSS);
        assert!(!cc.in_recovery());
    }

    #[test]
    fn fast_convergence_lowers_w_max_on_a_second_loss_below_it() {
        let rtt = rtt_of(100);
        let mut cc = after_loss_at(100, Instant::ZERO, &rtt);
        // Lost again at 70 segments, below W_max = 100: W_max = 70 · 1.7 / 2.
        cc.on_fast_retransmit(Instant::from_secs(1), 70 * MSS);
        assert_eq!(cc.w_max(), 59_500);
        assert_eq!(cc.ssthresh(), 49 * MSS);
    }

    #[test]
    fn growth_is_concave_to_w_max_at_k_then_convex() {
        // W_max 100 segments, cwnd 70: K = cbrt(30 / 0.4) ≈ 4.217 s.
        // An RTT of 100 ms and W_max this large keep it out of the
        // Reno-friendly region.
        let rtt = rtt_of(100);
        let mut now = Instant::from_secs(10);
        let mut cc = after_loss_at(100, now, &rtt);
        let mut at = Vec::new();
        for _ in 0..80 {
            round_trip(&mut cc, now, &rtt);
            now += Duration::from_millis(100);
            at.push(cc.window());
        }
        // Fast at first (concave), flat near W_max, fast again (convex).
        let early = at[9] - at[0];
        let plateau = at[44] - at[35];
        let late = at[79] - at[70];
        assert!(early > 2 * plateau, "{early} {plateau}");
        assert!(late > 2 * plateau, "{late} {plateau}");
        // Around K (42 rounds) the window is within 3 % of W_max.
        assert!(at[41].abs_diff(100 * MSS) < 3 * MSS, "{}", at[41]);
        // And never more than 1.5x per RTT.
        for pair in at.windows(2) {
            assert!(pair[1] * 2 <= pair[0] * 3);
        }
    }

    #[test]
    fn reno_friendly_region_on_short_rtts() {
        // W_max 20 segments at a 1 ms RTT: cubic growth takes seconds
        // (K ≈ 2.5 s), Reno's +α per RTT is faster; W_est takes over.
        let rtt = rtt_of(1);
        let mut now = Instant::from_secs(1);
        let mut cc = after_loss_at(20, now, &rtt);
        let start = cc.window();
        for _ in 0..100 {
            round_trip(&mut cc, now, &rtt);
            now += Duration::from_millis(1);
        }
        // 100 RTTs · α ≈ 0.53 segments per RTT ≈ +52 segments, roughly.
        let grown = (cc.window() - start) / MSS;
        assert!((40..=60).contains(&grown), "grew {grown} segments");
    }

    #[test]
    fn rto_collapses_to_one_segment() {
        let rtt = rtt_of(100);
        let mut cc = after_loss_at(100, Instant::ZERO, &rtt);
        cc.on_rto(Instant::from_secs(1), 70 * MSS);
        assert_eq!(cc.window(), MSS);
        assert_eq!(cc.ssthresh(), 49 * MSS);
        cc.on_rto(Instant::from_secs(2), 70 * MSS);
        assert_eq!(cc.ssthresh(), 49 * MSS, "held on a repeated RTO");
    }

    #[test]
    fn recovery_matches_newreno_mechanics() {
        let rtt = rtt_of(100);
        let mut cc = Cubic::new(MSS);
        cc.on_fast_retransmit(Instant::ZERO, 20 * MSS);
        assert_eq!(cc.window(), 17 * MSS);
        cc.on_duplicate_ack(Instant::ZERO);
        assert_eq!(cc.window(), 18 * MSS);
        cc.on_ack(Instant::ZERO, ack(2 * MSS, 10 * MSS, false), &rtt);
        assert_eq!(cc.window(), 17 * MSS);
        assert!(cc.in_recovery());
    }
}
