//! What a bench run measured, and how it is shown: terminal table, JSON
//! document, JSON lines per interval, SVG plots.
//!
//! Owns the [`Recorder`] (counters and HDR histograms, fed by the bench's
//! sessions with the reactor's `now`) and every figure derived from it. It
//! never reads a clock or touches a socket: time arrives as arguments, so
//! the arithmetic is tested on fixed inputs. No figure is ever NaN or
//! infinite; an undefined one is absent.
//!
//! API CONTRACT (skeleton; the bench driver is written against it):
//! * `Recorder::new(start, interval)`; `add_bytes`, `add_packets`,
//!   `add_request(latency)`, `add_transfer(bytes, took)`,
//!   `add_schedule_error(late_ns)`, `add_stream_counts`, `add_error`,
//!   `add_timeout` — each takes `now` first so it lands in the right interval;
//! * `next_interval()` is the deadline at which `close_interval(now)` must
//!   be called; it returns the finished [`IntervalReport`];
//! * `finish(now)` returns the [`Summary`];
//! * [`Document`] joins inputs, [`Environment`], intervals and summary;
//!   `render_table`, `to_json`, `json_line`, `write_svg` show it.

use crate::time::{Duration, Instant};

/// Counters and histograms of one run. See the module docs.
#[derive(Debug)]
pub struct Recorder {
    _start: Instant,
}

impl Recorder {
    /// A recorder whose first interval starts at `start`; `interval` `None`
    /// keeps only totals.
    pub fn new(start: Instant, interval: Option<Duration>) -> Self {
        let _ = interval;
        Self { _start: start }
    }
    /// `n` payload bytes delivered.
    pub fn add_bytes(&mut self, now: Instant, n: u64) {
        let _ = (now, n);
        unimplemented!()
    }
    /// `n` datagrams or messages delivered.
    pub fn add_packets(&mut self, now: Instant, n: u64) {
        let _ = (now, n);
        unimplemented!()
    }
    /// One request answered after `latency`.
    pub fn add_request(&mut self, now: Instant, latency: Duration) {
        let _ = (now, latency);
        unimplemented!()
    }
    /// One transfer of `bytes` completed in `took`.
    pub fn add_transfer(&mut self, now: Instant, bytes: u64, took: Duration) {
        let _ = (now, bytes, took);
        unimplemented!()
    }
    /// A stream datagram arrived `late_ns` after its schedule (negative: early).
    pub fn add_schedule_error(&mut self, now: Instant, late_ns: i64) {
        let _ = (now, late_ns);
        unimplemented!()
    }
    /// A stream ended with these counts.
    pub fn add_stream_counts(&mut self, now: Instant, lost: u64, reordered: u64, duplicates: u64) {
        let _ = (now, lost, reordered, duplicates);
        unimplemented!()
    }
    /// A request or transfer failed (refused, protocol error).
    pub fn add_error(&mut self, now: Instant) {
        let _ = now;
        unimplemented!()
    }
    /// A request or transfer timed out.
    pub fn add_timeout(&mut self, now: Instant) {
        let _ = now;
        unimplemented!()
    }
    /// When the current interval ends, if intervals are kept.
    pub fn next_interval(&self) -> Option<Instant> {
        unimplemented!()
    }
    /// Closes the current interval at `now` and starts the next.
    pub fn close_interval(&mut self, now: Instant) -> IntervalReport {
        let _ = now;
        unimplemented!()
    }
    /// Totals of the whole run, ended at `now`.
    pub fn finish(&mut self, now: Instant) -> Summary {
        let _ = now;
        unimplemented!()
    }
}

/// One report interval's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct IntervalReport {}

/// The whole run's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {}

/// Where the run happened: kernel, CPU count, pinning, seed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Environment {}

/// One JSON document: inputs, environment, intervals, totals.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Document {
    /// The command's inputs as given (flags, resolved defaults).
    pub inputs: serde_json::Value,
    /// Where it ran.
    pub environment: Environment,
    /// Per-interval figures, oldest first.
    pub intervals: Vec<IntervalReport>,
    /// Totals.
    pub summary: Summary,
}
