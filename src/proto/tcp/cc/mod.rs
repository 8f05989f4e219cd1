//! Congestion control behind one small trait, in the manner of
//! quinn-proto's `congestion` module and smoltcp's `tcp::congestion`.
//!
//! Owns the congestion window (`cwnd`), the slow-start threshold and the
//! fast-recovery state of one connection. It never sees a segment, a
//! sequence number or a clock: the engine counts duplicate ACKs, tracks
//! the `recover` point of RFC 6582 and the bytes in flight, retransmits,
//! and tells the algorithm what happened through [`CongestionControl`].
//! The engine sends while `flight < window()` (and the peer's window
//! allows).
//!
//! # How the engine drives it
//! - Every ACK that acknowledges new data: [`CongestionControl::on_ack`]
//!   with an [`Ack`] (bytes newly acknowledged, the flight after it, and
//!   whether it covers `recover`).
//! - The third duplicate ACK, when the cumulative ACK is above `recover`
//!   (RFC 6582 §3.2 step 2; otherwise the engine does not enter fast
//!   retransmit): the engine sets `recover = SND.NXT`, retransmits the
//!   first unacknowledged segment and calls
//!   [`CongestionControl::on_fast_retransmit`].
//! - Each further duplicate ACK: [`CongestionControl::on_duplicate_ack`]
//!   (it inflates the window in recovery, and is ignored otherwise).
//! - A retransmission-timer expiry: [`CongestionControl::on_rto`].

pub mod cubic;
pub mod newreno;

use super::rtt::RttEstimator;
use crate::time::Instant;
use core::fmt;

pub use cubic::Cubic;
pub use newreno::NewReno;

/// The algorithms a connection may be given, for a command-line flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    /// [`NewReno`], the default: RFC 5681 + RFC 6582.
    #[default]
    NewReno,
    /// [`Cubic`]: RFC 9438.
    Cubic,
}

impl Algorithm {
    /// A controller of this kind for a sender MSS of `mss` bytes.
    pub fn build(self, mss: usize) -> Box<dyn CongestionControl> {
        match self {
            Self::NewReno => Box::new(NewReno::new(mss)),
            Self::Cubic => Box::new(Cubic::new(mss)),
        }
    }
}

/// The slow-start threshold before any loss: RFC 5681 §3.1, "SHOULD be set
/// arbitrarily high (e.g., to the size of the largest possible advertised
/// window)", so that slow start ends only at the first loss.
pub const INITIAL_SSTHRESH: usize = usize::MAX;

/// RFC 6928's ceiling on the initial window in bytes when ten segments
/// would exceed it: IW = min(10·MSS, max(2·MSS, 14600)).
pub const IW_BYTES: usize = 14_600;

/// RFC 6928's initial window in segments.
pub const IW_SEGMENTS: usize = 10;

/// The initial window of RFC 6928 §2 for a sender MSS of `mss` bytes.
pub fn initial_window(mss: usize) -> usize {
    (IW_SEGMENTS.saturating_mul(mss)).min((2usize.saturating_mul(mss)).max(IW_BYTES))
}

/// The slow-start threshold after a loss, RFC 5681 equation (4):
/// `max(FlightSize / 2, 2·SMSS)`.
pub fn loss_ssthresh(flight: usize, mss: usize) -> usize {
    (flight / 2).max(2usize.saturating_mul(mss))
}

/// The window on entering fast recovery, RFC 5681 §3.2 step 3: the new
/// ssthresh plus the three segments the duplicate ACKs say have left.
pub fn recovery_window(ssthresh: usize, mss: usize) -> usize {
    ssthresh.saturating_add(3usize.saturating_mul(mss))
}

/// The window after an ACK of new data during fast recovery, RFC 6582
/// §3.2 step 3, and whether recovery ends. Shared by every algorithm here:
/// they differ in how they grow and how far they cut, not in recovery.
/// - A full ACK (`covers_recover`) deflates to
///   min(ssthresh, max(FlightSize, SMSS) + SMSS), option (1), which avoids
///   a burst when little is in flight, and ends recovery.
/// - A partial ACK deflates by the data it acknowledged and adds back one
///   SMSS if that was at least one SMSS, so about ssthresh stays in flight
///   when recovery ends.
pub fn recovery_ack(cwnd: usize, ssthresh: usize, mss: usize, ack: Ack) -> (usize, bool) {
    if ack.covers_recover {
        let cwnd = ssthresh.min(ack.flight.max(mss).saturating_add(mss));
        return (cwnd, true);
    }
    let mut cwnd = cwnd.saturating_sub(ack.bytes_acked);
    if ack.bytes_acked >= mss {
        cwnd = cwnd.saturating_add(mss);
    }
    (cwnd.max(mss), false)
}

/// Slow start, RFC 5681 equation (2) with RFC 3465's L = 1 SMSS: the
/// window grows by what was acknowledged, at most one SMSS per ACK.
pub fn slow_start(cwnd: usize, bytes_acked: usize, mss: usize) -> usize {
    cwnd.saturating_add(bytes_acked.min(mss))
}

/// One acknowledgment of new data, as the engine saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Bytes this ACK newly acknowledges (SND.UNA moved by this much),
    /// SYN and FIN excluded. Zero is ignored.
    pub bytes_acked: usize,
    /// Bytes still in flight after this ACK (SND.NXT − SND.UNA).
    pub flight: usize,
    /// Whether the ACK acknowledges everything up to and including the
    /// RFC 6582 `recover` point (SEG.ACK ≥ recover, with `recover` set to
    /// SND.NXT at fast retransmit and to the ISS at the start). In
    /// recovery, `true` is a *full* ACK (recovery ends) and `false` a
    /// *partial* ACK (the engine retransmits the next hole, re-arms the
    /// RTO timer on the first one, and recovery goes on). Outside recovery
    /// it is not looked at.
    pub covers_recover: bool,
}

/// A congestion controller. Object-safe, so the engine may hold a
/// `Box<dyn CongestionControl>` chosen by a flag. Every quantity is in
/// bytes.
pub trait CongestionControl: fmt::Debug {
    /// The algorithm's name for logs and counters (`"newreno"`).
    fn name(&self) -> &'static str;

    /// New data was acknowledged. `rtt` is the connection's estimator,
    /// already updated with this ACK's sample if it had one (delay-based
    /// or time-based algorithms read it; [`NewReno`] does not).
    fn on_ack(&mut self, now: Instant, ack: Ack, rtt: &RttEstimator);

    /// A duplicate ACK beyond the third, or any while in recovery: each
    /// one means a segment left the network (RFC 5681 §3.2 step 4).
    fn on_duplicate_ack(&mut self, now: Instant);

    /// The third duplicate ACK: the engine retransmits the first
    /// unacknowledged segment and the algorithm enters fast recovery.
    /// `flight` is the bytes in flight when the loss was detected.
    fn on_fast_retransmit(&mut self, now: Instant, flight: usize);

    /// The retransmission timer expired with `flight` bytes outstanding:
    /// the window collapses to the loss window (RFC 5681 §3.1) and any
    /// recovery ends.
    fn on_rto(&mut self, now: Instant, flight: usize);

    /// The congestion window: the engine keeps at most this many bytes in
    /// flight.
    fn window(&self) -> usize;

    /// The slow-start threshold.
    fn ssthresh(&self) -> usize;

    /// The sender MSS (SMSS), after the handshake settled it. Before any
    /// ACK or loss it also resets the initial window to the one for this
    /// MSS.
    fn set_mss(&mut self, mss: usize);

    /// Whether the connection is in fast recovery.
    fn in_recovery(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_picks_the_algorithm() {
        assert_eq!(Algorithm::default().build(1460).name(), "newreno");
        let cubic = Algorithm::Cubic.build(1460);
        assert_eq!(cubic.name(), "cubic");
        assert_eq!(cubic.window(), 14_600);
        assert_eq!(cubic.ssthresh(), INITIAL_SSTHRESH);
    }

    #[test]
    fn loss_ssthresh_is_half_the_flight_at_least_two_segments() {
        assert_eq!(loss_ssthresh(10_000, 1000), 5_000);
        assert_eq!(loss_ssthresh(3_000, 1000), 2_000);
    }
}
