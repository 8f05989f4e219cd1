//! Per-direction figures of a `--bidir` run: what the client sent (the
//! puts) and what it received (the gets), beside the run's totals.
//!
//! Owns two tallies the driver's sessions count into as their bytes move
//! and as their transfers succeed, by the same rule as the run's recorder
//! (nothing at or after the run's end), so the two directions add up to the
//! totals. It never reads a clock or touches a socket, and holds no figure
//! the recorder already keeps: a direction's rate is its bytes over the
//! summary's own span.

use crate::app::output::{format_bitrate, format_bytes};
use crate::bench::load::Settle;
use crate::bench::report::Document;
use crate::cli::bench::BenchMode;
use core::cell::Cell;
use std::rc::Rc;

/// One direction's counters.
#[derive(Debug, Default)]
pub struct Tally {
    /// Payload bytes moved, counted as they move.
    pub bytes: Rc<Cell<u64>>,
    /// Transfers that succeeded.
    pub transfers: Cell<u64>,
}

impl Tally {
    /// `settle`, counting a success into this direction.
    pub fn counting(self: &Rc<Self>, settle: Settle) -> Settle {
        let tally = self.clone();
        Box::new(move |run, now, took| {
            let ok = settle(run, now, took);
            if ok {
                tally.transfers.set(tally.transfers.get() + 1);
            }
            ok
        })
    }
}

/// Both directions of a file run, named from the client as the modes are.
#[derive(Debug, Default)]
pub struct Directions {
    /// The client sent: `put` (iperf3's default direction).
    pub sent: Rc<Tally>,
    /// The client received: `get` (the server sends, iperf3's `-R`).
    pub received: Rc<Tally>,
}

impl Directions {
    /// The tally a session of `mode` counts into.
    pub fn of(&self, mode: BenchMode) -> Rc<Tally> {
        if mode == BenchMode::Put {
            self.sent.clone()
        } else {
            self.received.clone()
        }
    }

    fn rows(&self) -> [(&'static str, &'static str, &Tally); 2] {
        [
            ("put", "client", &self.sent),
            ("get", "server", &self.received),
        ]
    }

    /// The `"directions"` member of the JSON document: per direction its
    /// sender, bytes, transfers, and rate over the run's `seconds`.
    pub fn json(&self, seconds: f64) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (mode, sender, t) in self.rows() {
            let bytes = t.bytes.get();
            out.insert(
                mode.into(),
                serde_json::json!({
                    "sender": sender,
                    "bytes": bytes,
                    "transfers": t.transfers.get(),
                    "seconds": seconds,
                    "bits_per_second": bits_per_second(bytes, seconds),
                }),
            );
        }
        serde_json::Value::Object(out)
    }

    /// The lines the table adds below its totals.
    pub fn render(&self, seconds: f64) -> String {
        use core::fmt::Write as _;
        let mut out = String::from("Directions (sender):\n");
        for (mode, sender, t) in self.rows() {
            let bytes = t.bytes.get();
            let _ = writeln!(
                out,
                "  {mode:<4} ({sender:<6})  {:>12}  {:>14}  {} transfers",
                format_bytes(bytes),
                format_bitrate(bits_per_second(bytes, seconds)),
                t.transfers.get()
            );
        }
        out
    }
}

/// `doc` with the `"directions"` of a `--bidir` run (`Some`), else as it is.
pub fn attach(doc: Document, directions: Option<&Directions>) -> Document {
    match directions {
        Some(d) => {
            let seconds = doc.summary.figures.seconds;
            doc.with_directions(d.json(seconds))
        }
        None => doc,
    }
}

/// `bytes` over `seconds` in bit/s; 0 for an empty span.
#[expect(
    clippy::cast_precision_loss,
    reason = "a rate: 53 bits of mantissa are far more than its precision"
)]
fn bits_per_second(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 && seconds.is_finite() {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::load::Run;
    use crate::bench::report::Recorder;
    use crate::time::{Duration, Instant};

    #[test]
    fn each_mode_counts_into_its_own_direction() {
        let d = Directions::default();
        d.of(BenchMode::Put).bytes.set(1_000);
        d.of(BenchMode::Get).bytes.set(3_000);
        let run = Run::new(
            Recorder::new(Instant::ZERO, None),
            Instant::ZERO,
            None,
            None,
            1,
        );
        let ok: Settle = Box::new(|_, _, _| true);
        let failed: Settle = Box::new(|_, _, _| false);
        let took = Duration::from_millis(1);
        assert!(d.of(BenchMode::Get).counting(ok)(&run, Instant::ZERO, took));
        assert!(!d.of(BenchMode::Put).counting(failed)(
            &run,
            Instant::ZERO,
            took
        ));
        let v = d.json(2.0);
        assert_eq!(v["put"]["bytes"], 1_000);
        assert_eq!(v["put"]["sender"], "client");
        assert_eq!(v["put"]["transfers"], 0);
        assert_eq!(v["put"]["bits_per_second"], 4_000.0);
        assert_eq!(v["get"]["bytes"], 3_000);
        assert_eq!(v["get"]["transfers"], 1);
        assert_eq!(d.json(0.0)["get"]["bits_per_second"], 0.0);
        let text = d.render(2.0);
        assert!(text.contains("put  (client)"), "{text}");
        assert!(text.contains("12.0 Kbit/s"), "{text}");
    }
}
