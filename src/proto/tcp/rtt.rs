//! Round-trip time estimation and the retransmission timeout, exactly as
//! RFC 6298.
//!
//! Owns SRTT, RTTVAR, the RTO computed from them and its exponential
//! backoff. It never measures anything itself and never reads the clock:
//! the engine hands it samples (a `Duration` it measured between two
//! instants it was given) and tells it when the retransmission timer
//! expired and when new data was acknowledged. It keeps no timer either:
//! the engine arms its RTO deadline at `now + rto()`.
//!
//! # Karn's rule (RFC 6298 §3)
//! An ACK for a segment that was retransmitted is ambiguous: it may answer
//! the first transmission or the retransmission. [`RttEstimator::on_sample`]
//! must therefore only be given samples from segments that were **never
//! retransmitted** (or samples made unambiguous by RFC 7323 timestamps,
//! whose echo names the transmission it answers). The backed-off RTO is
//! kept until an acknowledgment of new data arrives
//! ([`RttEstimator::on_ack_of_new_data`]); a valid sample alone does not
//! clear it, so the two calls are separate.

use crate::time::Duration;

/// RFC 6298 §2.4's upper bound on the RTO: "a maximum value MAY be placed
/// on RTO provided it is at least 60 seconds". Backoff stops doubling here.
pub const MAX_RTO: Duration = Duration::from_secs(60);

/// RFC 6298 §2.4's floor, "RTO SHOULD be rounded up to 1 second". Kept as
/// a named value for reference and for [`RttConfig::rfc6298`]; the default
/// floor is [`MIN_RTO`].
pub const RFC_MIN_RTO: Duration = Duration::from_secs(1);

/// The default floor on the RTO: 200 ms, as Linux (`TCP_RTO_MIN`).
///
/// Why not RFC 6298's 1 s: the stack runs over a TUN device and in the
/// simulator, where RTTs are micro- to milliseconds. With a 1 s floor every
/// tail loss the duplicate ACKs cannot repair stalls a transfer for a
/// second, which is what the goodput-under-loss figures would measure
/// instead of the congestion control. RFC 8961 (§4, requirement 1) allows
/// a floor below 1 s; 200 ms still stays well above a delayed-ACK timer
/// (RFC 1122's 500 ms upper bound is rare in practice; Linux delays at
/// most 200 ms and quick-acks otherwise, so spurious timeouts are rare).
pub const MIN_RTO: Duration = Duration::from_millis(200);

/// RFC 6298 §2.1: "Until a round-trip time (RTT) measurement has been
/// made … the sender SHOULD set RTO <- 1 second".
pub const INITIAL_RTO: Duration = Duration::from_secs(1);

/// The clock granularity G of RFC 6298 §2: the least variance term, so
/// that the RTO stays above SRTT when RTTVAR decays to zero on a steady
/// path. Our clock has nanoseconds, but deadlines fire through a timerfd
/// and a reactor turn; 1 ms is what a timer can be trusted to within.
pub const GRANULARITY: Duration = Duration::from_millis(1);

/// The K of RFC 6298 §2.3: RTO = SRTT + max(G, K·RTTVAR).
const K: u32 = 4;

/// The bounds and starting point of the RTO. See the constants for why
/// each default was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttConfig {
    /// The floor on the computed RTO (not on a backed-off one, which only
    /// grows). Default [`MIN_RTO`] (200 ms, Linux's), not RFC 6298's 1 s.
    pub min_rto: Duration,
    /// The ceiling on the RTO, backoff included. Default [`MAX_RTO`].
    pub max_rto: Duration,
    /// The RTO before the first sample. Default [`INITIAL_RTO`].
    pub initial_rto: Duration,
    /// The clock granularity G. Default [`GRANULARITY`].
    pub granularity: Duration,
}

impl Default for RttConfig {
    fn default() -> Self {
        Self {
            min_rto: MIN_RTO,
            max_rto: MAX_RTO,
            initial_rto: INITIAL_RTO,
            granularity: GRANULARITY,
        }
    }
}

impl RttConfig {
    /// RFC 6298 to the letter: the 1 s floor.
    pub fn rfc6298() -> Self {
        Self {
            min_rto: RFC_MIN_RTO,
            ..Self::default()
        }
    }
}

/// SRTT, RTTVAR and the RTO of one connection (RFC 6298).
#[derive(Clone, Debug)]
pub struct RttEstimator {
    config: RttConfig,
    /// `None` until the first sample (RFC 6298 §2.1).
    srtt: Option<Duration>,
    rttvar: Duration,
    /// The RTO from the estimates, clamped, before backoff.
    base_rto: Duration,
    /// How many times the RTO was doubled since new data was last
    /// acknowledged. Stops growing once the RTO reaches `max_rto`, so it
    /// stays small and the shift below cannot overflow.
    backoffs: u32,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new(RttConfig::default())
    }
}

impl RttEstimator {
    /// An estimator with no sample yet: the RTO is `config.initial_rto`.
    pub fn new(config: RttConfig) -> Self {
        Self {
            config,
            srtt: None,
            rttvar: Duration::ZERO,
            base_rto: config
                .initial_rto
                .clamp(config.min_rto.min(config.max_rto), config.max_rto),
            backoffs: 0,
        }
    }

    /// The configuration this estimator was built with.
    pub fn config(&self) -> &RttConfig {
        &self.config
    }

    /// A measured RTT `r` of a segment that was **not retransmitted**
    /// (Karn's rule, see the module docs). RFC 6298 §2.2 for the first
    /// sample, §2.3 for the later ones (RTTVAR first, with the old SRTT).
    pub fn on_sample(&mut self, r: Duration) {
        let srtt = match self.srtt {
            None => {
                self.rttvar = r / 2;
                r
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                // RTTVAR <- (1 - 1/4) * RTTVAR + 1/4 * |SRTT - R'|
                self.rttvar = (self.rttvar.saturating_mul(3)).saturating_add(delta) / 4;
                // SRTT <- (1 - 1/8) * SRTT + 1/8 * R'
                (srtt.saturating_mul(7)).saturating_add(r) / 8
            }
        };
        self.srtt = Some(srtt);
        let var = self.rttvar.saturating_mul(K).max(self.config.granularity);
        self.base_rto = srtt.saturating_add(var).clamp(
            self.config.min_rto.min(self.config.max_rto),
            self.config.max_rto,
        );
    }

    /// The retransmission timer expired (RFC 6298 §5.5): doubles the RTO,
    /// up to `max_rto`. The engine re-arms its timer with the new
    /// [`rto`](Self::rto).
    pub fn backoff(&mut self) {
        if self.rto() < self.config.max_rto {
            self.backoffs += 1;
        }
    }

    /// New data was acknowledged: the backed-off RTO gives way to the one
    /// computed from the estimates (Karn's algorithm keeps the backoff
    /// until then).
    pub fn on_ack_of_new_data(&mut self) {
        self.backoffs = 0;
    }

    /// The smoothed RTT; `None` before the first sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The RTT variation; zero before the first sample.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// How many times the current RTO was doubled.
    pub fn backoffs(&self) -> u32 {
        self.backoffs
    }

    /// The retransmission timeout to arm now: the computed RTO, clamped to
    /// `[min_rto, max_rto]`, doubled once per [`backoff`](Self::backoff)
    /// and capped at `max_rto`.
    pub fn rto(&self) -> Duration {
        // `backoffs` only grows while the RTO is below `max_rto` (≥ 1 ns),
        // so it stays under 64 and `checked_shl` is a formality.
        let factor = 1u32.checked_shl(self.backoffs).unwrap_or(u32::MAX);
        self.base_rto
            .saturating_mul(factor)
            .min(self.config.max_rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A floor low enough to see the raw RFC formula.
    fn raw() -> RttEstimator {
        RttEstimator::new(RttConfig {
            min_rto: Duration::ZERO,
            ..RttConfig::default()
        })
    }

    #[test]
    fn initial_rto_before_any_sample() {
        let r = RttEstimator::default();
        assert_eq!(r.rto(), Duration::from_secs(1));
        assert_eq!(r.srtt(), None);
        assert_eq!(r.rttvar(), Duration::ZERO);
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        let mut r = raw();
        r.on_sample(ms(100));
        assert_eq!(r.srtt(), Some(ms(100)));
        assert_eq!(r.rttvar(), ms(50));
        // 100 + max(1, 4 * 50)
        assert_eq!(r.rto(), ms(300));
    }

    #[test]
    fn later_samples_follow_rfc6298_2_3() {
        let mut r = raw();
        r.on_sample(ms(100));
        r.on_sample(ms(200));
        // RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 37.5 + 25 = 62.5 (old SRTT)
        assert_eq!(r.rttvar(), Duration::from_micros(62_500));
        // SRTT = 7/8 * 100 + 1/8 * 200 = 112.5
        assert_eq!(r.srtt(), Some(Duration::from_micros(112_500)));
        // RTO = 112.5 + 4 * 62.5 = 362.5
        assert_eq!(r.rto(), Duration::from_micros(362_500));
        r.on_sample(ms(80));
        // RTTVAR = 3/4 * 62.5 + 1/4 * |112.5 - 80| = 46.875 + 8.125 = 55
        assert_eq!(r.rttvar(), ms(55));
        // SRTT = 7/8 * 112.5 + 1/8 * 80 = 98.4375 + 10 = 108.4375
        assert_eq!(r.srtt(), Some(Duration::from_nanos(108_437_500)));
        assert_eq!(r.rto(), Duration::from_nanos(108_437_500 + 220_000_000));
    }

    #[test]
    fn granularity_bounds_the_variance_term() {
        let mut r = raw();
        for _ in 0..200 {
            r.on_sample(ms(10));
        }
        // RTTVAR decays to (almost) zero; G keeps RTO above SRTT.
        assert!(r.rttvar() < Duration::from_micros(1));
        assert_eq!(r.srtt(), Some(ms(10)));
        assert_eq!(r.rto(), ms(11));
    }

    #[test]
    fn floor_applies_to_small_rtts() {
        let mut r = RttEstimator::default();
        r.on_sample(ms(1));
        assert_eq!(r.rto(), MIN_RTO);
        let mut strict = RttEstimator::new(RttConfig::rfc6298());
        strict.on_sample(ms(1));
        assert_eq!(strict.rto(), Duration::from_secs(1));
        // Above the floor the formula shows through.
        r.on_sample(ms(400));
        assert!(r.rto() > MIN_RTO);
    }

    #[test]
    fn backoff_doubles_and_caps_at_max() {
        let mut r = RttEstimator::default();
        let expect = [1, 2, 4, 8, 16, 32, 60, 60, 60];
        for want in expect {
            assert_eq!(r.rto(), Duration::from_secs(want));
            r.backoff();
        }
        assert_eq!(r.backoffs(), 6, "stops counting at the cap");
        r.on_ack_of_new_data();
        assert_eq!(r.rto(), Duration::from_secs(1));
    }

    #[test]
    fn max_rto_caps_the_computed_rto() {
        let mut r = RttEstimator::default();
        r.on_sample(Duration::from_secs(100));
        assert_eq!(r.rto(), MAX_RTO);
    }

    #[test]
    fn karn_backoff_survives_a_sample_until_new_data_is_acked() {
        let mut r = raw();
        r.on_sample(ms(100));
        r.backoff();
        r.backoff();
        assert_eq!(r.rto(), ms(1200));
        // A valid sample (from a never-retransmitted segment) updates the
        // estimate but the backoff holds until new data is acknowledged.
        r.on_sample(ms(100));
        // RTTVAR = 3/4 * 50 + 0 = 37.5; RTO = 100 + 150 = 250, doubled twice.
        assert_eq!(r.rto(), ms(1000));
        r.on_ack_of_new_data();
        assert_eq!(r.rto(), ms(250));
    }
}
