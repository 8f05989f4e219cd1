//! `NewReno`: RFC 5681 (slow start, congestion avoidance, fast retransmit,
//! fast recovery) with RFC 6582's partial-ACK handling and RFC 6928's
//! initial window.
//!
//! Owns only the window arithmetic; the engine counts duplicate ACKs,
//! keeps `recover` and retransmits (see the [`super`] docs). Growth in
//! congestion avoidance uses byte counting (RFC 5681 §3.1's alternative
//! to equation 3, RFC 3465): one SMSS per window of acknowledged bytes,
//! which is exactly one SMSS per RTT whatever the ACK pattern (delayed
//! ACKs included). Slow start adds min(N, SMSS) per ACK (RFC 3465 with
//! L = 1·SMSS, as RFC 5681 equation 2).
//!
//! Not implemented: restart after idle (RFC 5681 §4.1) and the
//! application-limited rules of RFC 7661; the engine may add them.

use super::{
    Ack, CongestionControl, INITIAL_SSTHRESH, initial_window, loss_ssthresh, recovery_ack,
    recovery_window, slow_start,
};
use crate::proto::tcp::rtt::RttEstimator;
use crate::time::Instant;

/// RFC 5681/6582 congestion control. See the module docs.
#[derive(Clone, Debug)]
pub struct NewReno {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged in congestion avoidance not yet turned into
    /// window growth (byte counting).
    acked_in_ca: usize,
    recovering: bool,
    /// An RTO fired and no new data was acknowledged since: a further RTO
    /// keeps ssthresh (RFC 5681 §3.1, after equation 4: "the value of
    /// ssthresh is held constant" for a segment retransmitted again).
    after_rto: bool,
    /// No ACK or loss yet: `set_mss` may still reset the initial window.
    fresh: bool,
}

impl NewReno {
    /// A controller for a sender MSS of `mss` bytes, with RFC 6928's
    /// initial window. An `mss` of zero is treated as one byte.
    pub fn new(mss: usize) -> Self {
        let mss = mss.max(1);
        Self {
            mss,
            cwnd: initial_window(mss),
            ssthresh: INITIAL_SSTHRESH,
            acked_in_ca: 0,
            recovering: false,
            after_rto: false,
            fresh: true,
        }
    }
}

impl CongestionControl for NewReno {
    fn name(&self) -> &'static str {
        "newreno"
    }

    fn on_ack(&mut self, _now: Instant, ack: Ack, _rtt: &RttEstimator) {
        if ack.bytes_acked == 0 {
            return;
        }
        self.fresh = false;
        self.after_rto = false;
        if self.recovering {
            let (cwnd, ended) = recovery_ack(self.cwnd, self.ssthresh, self.mss, ack);
            self.cwnd = cwnd;
            if ended {
                self.recovering = false;
                self.acked_in_ca = 0;
            }
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = slow_start(self.cwnd, ack.bytes_acked, self.mss);
        } else {
            // Congestion avoidance, byte counting.
            self.acked_in_ca = self.acked_in_ca.saturating_add(ack.bytes_acked);
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(self.mss);
            }
        }
    }

    fn on_duplicate_ack(&mut self, _now: Instant) {
        if self.recovering {
            // RFC 5681 §3.2 step 4: each duplicate ACK is a segment that
            // left the network; inflate so a new one may be sent.
            self.cwnd = self.cwnd.saturating_add(self.mss);
        }
    }

    fn on_fast_retransmit(&mut self, _now: Instant, flight: usize) {
        if self.recovering {
            // RFC 6582 §3.2 step 2: no second reduction for the same
            // window; the engine's `recover` check should prevent this.
            return;
        }
        self.fresh = false;
        // RFC 5681 §3.2 steps 2 and 3.
        self.ssthresh = loss_ssthresh(flight, self.mss);
        self.cwnd = recovery_window(self.ssthresh, self.mss);
        self.recovering = true;
        self.acked_in_ca = 0;
    }

    fn on_rto(&mut self, _now: Instant, flight: usize) {
        self.fresh = false;
        if !self.after_rto {
            self.ssthresh = loss_ssthresh(flight, self.mss);
        }
        self.after_rto = true;
        // The loss window LW: one full-sized segment.
        self.cwnd = self.mss;
        self.recovering = false;
        self.acked_in_ca = 0;
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

    const MSS: usize = 1000;

    fn ack(bytes_acked: usize, flight: usize, covers_recover: bool) -> Ack {
        Ack {
            bytes_acked,
            flight,
            covers_recover,
        }
    }

    /// One round trip in virtual time: a whole window is sent and every
    /// segment of it is acknowledged, one ACK per segment. Returns the
    /// instant after it.
    fn round_trip(cc: &mut NewReno, now: Instant, rtt: &RttEstimator) -> Instant {
        let window = cc.window();
        let segments = window / MSS;
        for i in 0..segments {
            let flight = window - (i + 1) * MSS;
            cc.on_ack(now, ack(MSS, flight, true), rtt);
        }
        now + crate::time::Duration::from_millis(100)
    }

    #[test]
    fn initial_window_follows_rfc6928() {
        assert_eq!(initial_window(1460), 14_600);
        assert_eq!(initial_window(1000), 10_000);
        // Large MSS: max(2 * MSS, 14600) wins over 10 * MSS.
        assert_eq!(initial_window(9000), 18_000);
        assert_eq!(initial_window(4000), 14_600);
        assert_eq!(NewReno::new(536).window(), 5_360);
    }

    #[test]
    fn set_mss_resets_only_the_initial_window() {
        let mut cc = NewReno::new(536);
        cc.set_mss(1460);
        assert_eq!(cc.window(), 14_600);
        cc.on_ack(Instant::ZERO, ack(1460, 0, true), &RttEstimator::default());
        cc.set_mss(1000);
        assert_eq!(cc.window(), 14_600 + 1460);
    }

    #[test]
    fn slow_start_doubles_per_round_trip() {
        let rtt = RttEstimator::default();
        let mut cc = NewReno::new(MSS);
        let mut now = Instant::ZERO;
        let mut want = 10 * MSS;
        for _ in 0..5 {
            assert_eq!(cc.window(), want);
            now = round_trip(&mut cc, now, &rtt);
            want *= 2;
        }
        assert_eq!(cc.window(), 320 * MSS);
    }

    #[test]
    fn slow_start_counts_at_most_one_mss_per_ack() {
        let rtt = RttEstimator::default();
        let mut cc = NewReno::new(MSS);
        // A stretch ACK of 5 segments grows the window by 1 SMSS only.
        cc.on_ack(Instant::ZERO, ack(5 * MSS, 0, true), &rtt);
        assert_eq!(cc.window(), 11 * MSS);
        // A small ACK grows it by what it acknowledged.
        cc.on_ack(Instant::ZERO, ack(100, 0, true), &rtt);
        assert_eq!(cc.window(), 11 * MSS + 100);
    }

    #[test]
    fn congestion_avoidance_adds_one_mss_per_round_trip() {
        let rtt = RttEstimator::default();
        let mut cc = NewReno::new(MSS);
        // Enter CA through a loss: flight 40 MSS -> ssthresh 20 MSS.
        cc.on_fast_retransmit(Instant::ZERO, 40 * MSS);
        cc.on_ack(Instant::ZERO, ack(MSS, 19 * MSS, true), &rtt);
        assert!(!cc.in_recovery());
        assert_eq!(cc.window(), 20 * MSS);
        let mut now = Instant::from_secs(1);
        for round in 1..=5 {
            now = round_trip(&mut cc, now, &rtt);
            assert_eq!(cc.window(), (20 + round) * MSS, "round {round}");
        }
        // Delayed ACKs (one per two segments) grow it just as fast.
        let w = cc.window();
        let mut left = w;
        while left > 0 {
            let n = left.min(2 * MSS);
            cc.on_ack(now, ack(n, left - n, true), &rtt);
            left -= n;
        }
        assert_eq!(cc.window(), w + MSS);
    }

    #[test]
    fn third_dupack_halves_and_enters_recovery() {
        let mut cc = NewReno::new(MSS);
        let now = Instant::from_millis(10);
        // The first two duplicate ACKs change nothing (limited transmit is
        // the engine's business).
        cc.on_duplicate_ack(now);
        cc.on_duplicate_ack(now);
        assert_eq!(cc.window(), 10 * MSS);
        cc.on_fast_retransmit(now, 10 * MSS);
        assert!(cc.in_recovery());
        assert_eq!(cc.ssthresh(), 5 * MSS);
        // ssthresh + 3 SMSS for the three segments that left.
        assert_eq!(cc.window(), 8 * MSS);
        cc.on_duplicate_ack(now);
        assert_eq!(cc.window(), 9 * MSS);
        // A second fast retransmit in the same recovery does not cut again.
        cc.on_fast_retransmit(now, 9 * MSS);
        assert_eq!(cc.ssthresh(), 5 * MSS);
        assert_eq!(cc.window(), 9 * MSS);
    }

    #[test]
    fn ssthresh_floor_is_two_mss() {
        let mut cc = NewReno::new(MSS);
        cc.on_fast_retransmit(Instant::ZERO, 3 * MSS);
        assert_eq!(cc.ssthresh(), 2 * MSS);
    }

    #[test]
    fn partial_ack_deflates_and_full_ack_exits() {
        let rtt = RttEstimator::default();
        let mut cc = NewReno::new(MSS);
        let now = Instant::from_millis(10);
        cc.on_fast_retransmit(now, 20 * MSS);
        for _ in 0..4 {
            cc.on_duplicate_ack(now);
        }
        // ssthresh 10, cwnd 10 + 3 + 4 = 17 MSS.
        assert_eq!(cc.window(), 17 * MSS);
        // A partial ACK of 3 segments: 17 - 3 + 1 = 15.
        cc.on_ack(now, ack(3 * MSS, 17 * MSS, false), &rtt);
        assert!(cc.in_recovery());
        assert_eq!(cc.window(), 15 * MSS);
        // Exactly one SMSS still earns the add-back: 15 - 1 + 1.
        cc.on_ack(now, ack(MSS, 16 * MSS, false), &rtt);
        assert_eq!(cc.window(), 15 * MSS);
        // A partial ACK of less than one SMSS: no add-back.
        cc.on_ack(now, ack(500, 16 * MSS, false), &rtt);
        assert_eq!(cc.window(), 15 * MSS - 500);
        // The full ACK: min(ssthresh, max(flight, SMSS) + SMSS).
        cc.on_ack(now, ack(MSS, 4 * MSS, true), &rtt);
        assert!(!cc.in_recovery());
        assert_eq!(cc.window(), 5 * MSS);
        assert_eq!(cc.ssthresh(), 10 * MSS);
    }

    #[test]
    fn full_ack_with_much_in_flight_sets_ssthresh() {
        let rtt = RttEstimator::default();
        let mut cc = NewReno::new(MSS);
        cc.on_fast_retransmit(Instant::ZERO, 20 * MSS);
        cc.on_ack(Instant::ZERO, ack(MSS, 12 * MSS, true), &rtt);
        assert_eq!(cc.window(), 10 * MSS);
        // Back in congestion avoidance: the next ACK does not double.
        cc.on_ack(Instant::ZERO, ack(MSS, 12 * MSS, true), &rtt);
        assert_eq!(cc.window(), 10 * MSS);
    }

    #[test]
    fn rto_collapses_to_one_segment_then_slow_starts() {
        let rtt = RttEstimator::default();
        let mut cc = NewReno::new(MSS);
        let t = Instant::from_secs(1);
        cc.on_fast_retransmit(t, 16 * MSS);
        assert!(cc.in_recovery());
        cc.on_rto(t, 16 * MSS);
        assert!(!cc.in_recovery());
        assert_eq!(cc.window(), MSS);
        assert_eq!(cc.ssthresh(), 8 * MSS);
        // A second RTO of the same segment holds ssthresh.
        cc.on_rto(t + crate::time::Duration::from_secs(2), 2 * MSS);
        assert_eq!(cc.ssthresh(), 8 * MSS);
        assert_eq!(cc.window(), MSS);
        // Slow start again: 1, 2, 4, 8 then congestion avoidance.
        let mut now = t + crate::time::Duration::from_secs(6);
        for want in [1, 2, 4, 8, 9] {
            assert_eq!(cc.window(), want * MSS);
            now = round_trip(&mut cc, now, &rtt);
        }
        // After new data was acknowledged, a new RTO recomputes ssthresh.
        cc.on_rto(now, 10 * MSS);
        assert_eq!(cc.ssthresh(), 5 * MSS);
    }

    #[test]
    fn rto_floor_keeps_ssthresh_at_two_segments() {
        let mut cc = NewReno::new(MSS);
        cc.on_rto(Instant::ZERO, 0);
        assert_eq!(cc.ssthresh(), 2 * MSS);
        assert_eq!(cc.window(), MSS);
    }
}
