//! What a bench run measured, and how it is shown: terminal table, JSON
//! document, JSON lines per interval, SVG plots.
//!
//! Owns the [`Recorder`] (counters and HDR histograms, fed by the bench's
//! sessions with the reactor's `now`) and every figure derived from it. It
//! never reads a clock or touches a socket: time arrives as arguments, so
//! the arithmetic is tested on fixed inputs. The one exception is
//! [`Environment::detect`], which reads `/proc` and is kept apart from the
//! rest; [`write_svg`] writes the file it is given.
//!
//! No figure is ever NaN or infinite: every `f64` goes through
//! [`finite_or_zero`], and an undefined figure (a percentile without
//! samples) is `None`, serialized as `null`. Keys are always present.
//!
//! # API
//! * [`Recorder::new`]`(start, interval)`; `add_bytes`, `add_packets`,
//!   `add_request(latency)`, `add_transfer(bytes, took)`,
//!   `add_schedule_error(late_ns)`, `add_stream_counts`, `add_error`,
//!   `add_timeout` — each takes `now` first;
//! * [`Recorder::next_interval`] is the deadline at which
//!   [`Recorder::close_interval`]`(now)` must be called; it returns the
//!   finished [`IntervalReport`] (interval policy: see [`recorder`]);
//! * [`Recorder::finish`]`(now)` returns the [`Summary`];
//! * [`Document`] joins inputs, [`Environment`], intervals and summary;
//!   [`render_table`], [`to_json`], [`json_line`], [`json_summary_line`],
//!   [`render_svg`] and [`write_svg`] show it.
//!
//! # JSON schema (`schema_version` 2)
//! The keys, their units and when each is present are documented in
//! `docs/json.md` and checked by `docs/schema/mioperf.schema.json`
//! (`$defs/bench_document`, `$defs/bench_interval_event`,
//! `$defs/bench_end_event`; `tests/json_schema.rs` validates real runs
//! against it). In short, [`to_json`] writes one pretty document
//! `{ "schema_version", "tool", "inputs", "environment", "intervals":
//! [INTERVAL], "summary" }`; [`json_line`] writes
//! `{"event":"interval","data":INTERVAL}` and [`json_summary_line`]
//! `{"event":"end","data":SUMMARY}`, one line each, without a newline,
//! after [`json_start_line`]'s `{"event":"start","data":{...}}` (iperf3's
//! `--json-stream` framing). Units follow the one rule of every
//! mioperf document: sizes in `bytes`, a span's length in `seconds`
//! (float), every other duration in integer nanoseconds (`*_ns`, means
//! excepted), rates as `*_per_second`, data rates in bits.
//!
//! A new key goes into the struct here, into `docs/json.md` and into the
//! schema's `$defs` in the same commit: the schema refuses unknown keys.

pub mod cpu;
pub mod hist;
pub mod recorder;
mod svg;
pub mod table;

pub use cpu::{CpuShare, CpuSpent, CpuUsage};
pub use hist::{MAX_BUCKETS, MAX_TRACKABLE_NS};
pub use recorder::Recorder;
pub use svg::{render_svg, write_svg};
pub use table::render_table;
pub use table::{table_foot, table_head, table_row};

use serde::Serialize;

/// The version of the JSON layout in the module docs; bumped on any change
/// that removes or renames a key.
/// 2: `*_per_sec` became `*_per_second`, `bytes_per_sec`, `start_s` and
/// `end_s` went, `srtt_us_mean` became `srtt_mean_ns` (issue 16).
pub const SCHEMA_VERSION: u32 = 2;

/// `x` if finite, else 0. Every `f64` of a report passes through here.
pub fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// Order statistics of one quantity, in nanoseconds. Percentiles are from an
/// HDR histogram with 3 significant digits (within 0.1 %), clamped into
/// `[min, max]`; `count`, `min`, `max` and `mean` are exact.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Distribution {
    /// How many samples.
    pub count: u64,
    /// Smallest sample.
    pub min: u64,
    /// Arithmetic mean (finite).
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample (exact, even when clamped in the histogram).
    pub max: u64,
    /// Samples above [`MAX_TRACKABLE_NS`], recorded in the histogram as that.
    pub clamped: u64,
}

impl Distribution {
    /// The same figures as the crate's [`crate::stats::Percentiles`].
    pub fn percentiles(&self) -> crate::stats::Percentiles {
        crate::stats::Percentiles {
            p50: self.p50,
            p90: self.p90,
            p99: self.p99,
            p999: self.p999,
            max: self.max,
            count: usize::try_from(self.count).unwrap_or(usize::MAX),
        }
    }
}

/// Stream schedule error (arrival − scheduled time), signed nanoseconds.
/// |error| is recorded in the histogram (`abs_ns`); the sign survives in
/// `early`, `min_ns`, `max_ns` and `mean_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ScheduleError {
    /// How many samples.
    pub count: u64,
    /// Samples that arrived before their schedule (negative error).
    pub early: u64,
    /// Most negative (earliest) error.
    pub min_ns: i64,
    /// Most positive (latest) error.
    pub max_ns: i64,
    /// Signed mean.
    pub mean_ns: f64,
    /// Distribution of |error|.
    pub abs_ns: Distribution,
}

/// One histogram bucket: `count` samples in `[lo_ns, hi_ns)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Lowest value in the bucket.
    pub lo_ns: u64,
    /// One past the highest value in the bucket.
    pub hi_ns: u64,
    /// Samples in it.
    pub count: u64,
}

/// The figures of one span: an interval or the whole run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figures {
    /// Span start, seconds since the run's start (for the table and plots;
    /// the JSON has `start_ns`, one unit per duration: docs/json.md).
    #[serde(skip)]
    pub start_s: f64,
    /// Span end, seconds since the run's start (not in the JSON either).
    #[serde(skip)]
    pub end_s: f64,
    /// Span length, seconds (`end_s - start_s`).
    pub seconds: f64,
    /// Span start, ns since the run's start.
    pub start_ns: u64,
    /// Span end, ns since the run's start.
    pub end_ns: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
    /// Datagrams or messages delivered.
    pub packets: u64,
    /// Requests answered.
    pub requests: u64,
    /// Transfers completed.
    pub transfers: u64,
    /// Bytes of the completed transfers (not part of `bytes`).
    pub transfer_bytes: u64,
    /// Failed requests or transfers.
    pub errors: u64,
    /// Timed-out requests or transfers.
    pub timeouts: u64,
    /// Stream segments lost.
    pub lost: u64,
    /// Stream segments reordered.
    pub reordered: u64,
    /// Stream segments duplicated.
    pub duplicates: u64,
    /// `bytes` per second over `seconds` (0 for a zero-length span). Not in
    /// the JSON: a data rate is said once, in bits, as iperf3 does.
    #[serde(skip)]
    pub bytes_per_sec: f64,
    /// 8 × `bytes_per_sec`; JSON `bits_per_second`.
    #[serde(rename = "bits_per_second")]
    pub bits_per_sec: f64,
    /// `packets` per second; JSON `packets_per_second`.
    #[serde(rename = "packets_per_second")]
    pub packets_per_sec: f64,
    /// `requests` per second; JSON `requests_per_second`.
    #[serde(rename = "requests_per_second")]
    pub requests_per_sec: f64,
    /// `transfers` per second; JSON `transfers_per_second`.
    #[serde(rename = "transfers_per_second")]
    pub transfers_per_sec: f64,
    /// Request latency; `None` without requests.
    pub latency_ns: Option<Distribution>,
    /// Transfer time; `None` without transfers.
    pub transfer_ns: Option<Distribution>,
    /// Stream schedule error; `None` without samples.
    pub schedule_error: Option<ScheduleError>,
}

/// One report interval's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IntervalReport {
    /// 0 for the first interval, then 1, 2, …
    pub index: u64,
    /// What happened in it (flattened into the JSON object).
    #[serde(flatten)]
    pub figures: Figures,
    /// Packets or segments sent again in it (stopwait, tftp, window;
    /// counted when each transfer ends); `None` where not known.
    pub retransmits: Option<u64>,
    /// CPU use in it; `None` where it could not be read.
    pub cpu: Option<CpuUsage>,
}

/// Histogram buckets of the whole run, for plotting; each list is empty
/// without samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histograms {
    /// Request latency.
    pub latency_ns: Vec<Bucket>,
    /// Transfer time.
    pub transfer_ns: Vec<Bucket>,
    /// |schedule error|.
    pub schedule_error_abs_ns: Vec<Bucket>,
}

/// The whole run's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Totals from the start to the end (flattened into the JSON object).
    #[serde(flatten)]
    pub figures: Figures,
    /// How many intervals were closed.
    pub intervals: u64,
    /// Buckets for plots.
    pub histograms: Histograms,
    /// The engines' counters (window), else `None`.
    pub tcp: Option<TcpTotals>,
    /// Packets or segments sent again in the run (stopwait and tftp:
    /// successful transfers' own counts; window: the engines'); `None`
    /// where not known (kernel TCP, request/response protocols).
    pub retransmits: Option<u64>,
    /// CPU use over the run; `None` where it could not be read.
    pub cpu: Option<CpuUsage>,
}

/// The client engines' counters summed over a run's connections (`bench
/// window`): on a GET the client is the receiver, so its retransmits are
/// few and its out-of-order and duplicate segments tell the path's losses;
/// on a PUT it is the sender and its retransmits are the transfer's.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TcpTotals {
    /// Connections whose counters are summed.
    pub connections: u64,
    /// Segments received.
    pub segments_in: u64,
    /// Segments sent, retransmissions included.
    pub segments_out: u64,
    /// Segments retransmitted, for any reason.
    pub retransmits: u64,
    /// Of which fast retransmits.
    pub fast_retransmits: u64,
    /// Retransmission timer expiries.
    pub rto_expiries: u64,
    /// Duplicate segments received.
    pub duplicate_segments: u64,
    /// Out-of-order segments received and kept.
    pub out_of_order: u64,
    /// Mean of the connections' final smoothed RTTs, microseconds; JSON
    /// `srtt_mean_ns`, whole nanoseconds like every other duration.
    #[serde(rename = "srtt_mean_ns", serialize_with = "micros_as_nanos")]
    pub srtt_us_mean: f64,
}

/// Writes a mean in microseconds as whole nanoseconds (JSON durations are
/// integers of ns; docs/json.md).
#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's serialize_with passes a reference"
)]
fn micros_as_nanos<S: serde::Serializer>(us: &f64, s: S) -> Result<S::Ok, S::Error> {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a finite non-negative mean; `as` saturates"
    )]
    let ns = (finite_or_zero(*us) * 1e3).round().max(0.0) as u64;
    s.serialize_u64(ns)
}

/// Where the run happened: kernel, CPU count, pinning, seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Environment {
    /// mioperf's version.
    pub version: String,
    /// `std::env::consts::OS`.
    pub os: String,
    /// `std::env::consts::ARCH`.
    pub arch: String,
    /// Kernel release (`/proc/sys/kernel/osrelease`), if readable.
    pub kernel: Option<String>,
    /// Host name (`/proc/sys/kernel/hostname`), if readable.
    pub hostname: Option<String>,
    /// CPUs available to the process (`available_parallelism`).
    pub cpus: Option<usize>,
    /// The process's CPU affinity as a list (`Cpus_allowed_list`, e.g. `0-3,8`).
    pub allowed_cpus: Option<String>,
    /// How many CPUs `allowed_cpus` names.
    pub allowed_cpu_count: Option<usize>,
    /// The CPU the reactor was pinned to, if any.
    pub pinned_cpu: Option<usize>,
    /// The generator's seed, if any.
    pub seed: Option<u64>,
}

impl Environment {
    /// The environment with only what needs no I/O (version, OS, arch, seed,
    /// pinning); the rest `None`. For tests and as the base of `detect`.
    pub fn new(seed: Option<u64>, pinned_cpu: Option<usize>) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            kernel: None,
            hostname: None,
            cpus: None,
            allowed_cpus: None,
            allowed_cpu_count: None,
            pinned_cpu,
            seed,
        }
    }

    /// Reads the machine: kernel release and host name from
    /// `/proc/sys/kernel`, the CPU count, and the affinity from
    /// `/proc/self/status`. **Does I/O**; everything else here is pure. A
    /// figure that can't be read is `None`; never fails.
    pub fn detect(seed: Option<u64>, pinned_cpu: Option<usize>) -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let allowed_cpus = read("/proc/self/status").and_then(|s| cpus_allowed_list(&s));
        Self {
            kernel: read("/proc/sys/kernel/osrelease"),
            hostname: read("/proc/sys/kernel/hostname"),
            cpus: std::thread::available_parallelism().ok().map(usize::from),
            allowed_cpu_count: allowed_cpus.as_deref().and_then(cpu_list_len),
            allowed_cpus,
            ..Self::new(seed, pinned_cpu)
        }
    }
}

/// The `Cpus_allowed_list:` value of a `/proc/<pid>/status` text.
pub fn cpus_allowed_list(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// How many CPUs a kernel CPU list (`0-3,8,10-11`) names; `None` if malformed.
pub fn cpu_list_len(list: &str) -> Option<usize> {
    let mut n = 0usize;
    for part in list.trim().split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        n = n.checked_add(if let Some((a, b)) = part.split_once('-') {
            // "0-31:4" (stride) is not used by Cpus_allowed_list; refuse it.
            let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
            b.checked_sub(a)?.checked_add(1)?
        } else {
            part.parse::<usize>().ok()?;
            1
        })?;
    }
    Some(n)
}

/// One JSON document: inputs, environment, intervals, totals.
#[derive(Clone, Debug, Serialize)]
pub struct Document {
    /// The command's inputs as given (flags, resolved defaults).
    pub inputs: serde_json::Value,
    /// Where it ran.
    pub environment: Environment,
    /// Per-interval figures, oldest first.
    pub intervals: Vec<IntervalReport>,
    /// Totals.
    pub summary: Summary,
    /// `--bidir`: each direction's figures (`bench::direction`), else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directions: Option<serde_json::Value>,
}

impl Document {
    /// Joins the parts.
    pub fn new(
        inputs: serde_json::Value,
        environment: Environment,
        intervals: Vec<IntervalReport>,
        summary: Summary,
    ) -> Self {
        Self {
            inputs,
            environment,
            intervals,
            summary,
            directions: None,
        }
    }

    /// The document with a `--bidir` run's per-direction figures.
    #[must_use]
    pub fn with_directions(mut self, directions: serde_json::Value) -> Self {
        self.directions = Some(directions);
        self
    }
}

/// The document as written: the schema version and tool name first.
#[derive(Serialize)]
struct Versioned<'a> {
    schema_version: u32,
    tool: &'static str,
    #[serde(flatten)]
    doc: &'a Document,
}

/// `{"event": ..., "data": ...}`, iperf3's `--json-stream` framing.
#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    event: &'static str,
    data: &'a T,
}

/// Serializes or, should serde ever fail (it can't for these types), says
/// so in a JSON object instead of panicking.
fn json_or_error(result: serde_json::Result<String>) -> String {
    result.unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("cannot serialize the report: {e}") }).to_string()
    })
}

/// The whole document as pretty JSON (see the module docs for the keys).
/// No NaN or infinity can appear: floats are finite by construction.
pub fn to_json(doc: &Document) -> String {
    json_or_error(serde_json::to_string_pretty(&Versioned {
        schema_version: SCHEMA_VERSION,
        tool: "mioperf",
        doc,
    }))
}

/// One interval as one line of JSON, `{"event":"interval","data":{…}}`,
/// with no newline (the caller adds it).
pub fn json_line(report: &IntervalReport) -> String {
    json_or_error(serde_json::to_string(&Event {
        event: "interval",
        data: report,
    }))
}

/// What a `--json-stream` says before the run: the document's head and the
/// run's limits (the start event's `data`).
#[derive(Serialize)]
struct StartData<'a> {
    schema_version: u32,
    tool: &'static str,
    inputs: &'a serde_json::Value,
    environment: &'a Environment,
    limits: &'a serde_json::Value,
}

/// The run's inputs, environment and `limits` as one line of JSON,
/// `{"event":"start","data":{…}}`, with no newline; the first line of a
/// `--json-stream`.
pub fn json_start_line(
    inputs: &serde_json::Value,
    environment: &Environment,
    limits: &serde_json::Value,
) -> String {
    json_or_error(serde_json::to_string(&Event {
        event: "start",
        data: &StartData {
            schema_version: SCHEMA_VERSION,
            tool: "mioperf",
            inputs,
            environment,
            limits,
        },
    }))
}

/// The summary as one line of JSON, `{"event":"end","data":{…}}`, with no
/// newline; the last line of a `--json-stream`.
pub fn json_summary_line(summary: &Summary) -> String {
    json_or_error(serde_json::to_string(&Event {
        event: "end",
        data: summary,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Duration, Instant};
    use proptest::prelude::*;
    use serde_json::Value;

    /// Every number in `v` is finite (`serde_json` can't hold NaN in a
    /// `Value`, but a text with `NaN` would not parse: both are checked).
    fn all_finite(v: &Value) -> bool {
        match v {
            Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
            Value::Array(a) => a.iter().all(all_finite),
            Value::Object(o) => o.values().all(all_finite),
            _ => true,
        }
    }

    pub(super) fn fixed_document() -> Document {
        let ms = Instant::from_millis;
        let mut r = Recorder::new(ms(0), Some(Duration::from_secs(1)));
        let mut intervals = Vec::new();
        for sec in 0..3u64 {
            for i in 0..100u64 {
                let at = ms(sec * 1_000 + i * 10);
                r.add_bytes(at, 12_500);
                r.add_packets(at, 10);
                r.add_request(at, Duration::from_micros(50 + i + sec * 100));
            }
            r.add_error(ms(sec * 1_000 + 500));
            intervals.push(r.close_interval(ms((sec + 1) * 1_000)));
        }
        r.add_timeout(ms(3_000));
        let summary = r.finish(ms(3_000));
        let mut env = Environment::new(Some(42), Some(3));
        env.kernel = Some("6.1.0-test".into());
        env.cpus = Some(8);
        env.allowed_cpus = Some("0-7".into());
        env.allowed_cpu_count = Some(8);
        Document::new(
            serde_json::json!({"protocol": "lab", "mode": "echo", "parallel": 4}),
            env,
            intervals,
            summary,
        )
    }

    pub(super) fn empty_document() -> Document {
        let mut r = Recorder::new(Instant::ZERO, Some(Duration::from_secs(1)));
        let summary = r.finish(Instant::ZERO);
        Document::new(
            Value::Null,
            Environment::new(None, None),
            Vec::new(),
            summary,
        )
    }

    const FIGURE_KEYS: &[&str] = &[
        "seconds",
        "start_ns",
        "end_ns",
        "bytes",
        "packets",
        "requests",
        "transfers",
        "transfer_bytes",
        "errors",
        "timeouts",
        "lost",
        "reordered",
        "duplicates",
        "bits_per_second",
        "packets_per_second",
        "requests_per_second",
        "transfers_per_second",
        "latency_ns",
        "transfer_ns",
        "schedule_error",
    ];

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    fn sorted(extra: &[&'static str], base: &[&'static str]) -> Vec<&'static str> {
        let mut k: Vec<&str> = base.iter().chain(extra).copied().collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn json_round_trips_with_the_schema_keys() {
        let doc = fixed_document();
        let v: Value = serde_json::from_str(&to_json(&doc)).unwrap();
        assert_eq!(
            keys(&v),
            [
                "environment",
                "inputs",
                "intervals",
                "schema_version",
                "summary",
                "tool"
            ]
        );
        assert_eq!(v["schema_version"], 2);
        assert_eq!(v["inputs"]["parallel"], 4);
        assert_eq!(
            keys(&v["environment"]),
            sorted(
                &[],
                &[
                    "version",
                    "os",
                    "arch",
                    "kernel",
                    "hostname",
                    "cpus",
                    "allowed_cpus",
                    "allowed_cpu_count",
                    "pinned_cpu",
                    "seed"
                ]
            )
        );
        assert_eq!(v["environment"]["seed"], 42);
        let intervals = v["intervals"].as_array().unwrap();
        assert_eq!(intervals.len(), 3);
        assert_eq!(
            keys(&intervals[0]),
            sorted(&["index", "retransmits", "cpu"], FIGURE_KEYS)
        );
        assert_eq!(intervals[1]["index"], 1);
        assert_eq!(intervals[1]["bits_per_second"], 10_000_000.0);
        assert_eq!(
            keys(&intervals[0]["latency_ns"]),
            sorted(
                &[],
                &[
                    "count", "min", "mean", "p50", "p90", "p99", "p999", "max", "clamped"
                ]
            )
        );
        let s = &v["summary"];
        assert_eq!(
            keys(s),
            sorted(
                &["intervals", "histograms", "tcp", "retransmits", "cpu"],
                FIGURE_KEYS
            )
        );
        assert_eq!(
            keys(&s["histograms"]),
            ["latency_ns", "schedule_error_abs_ns", "transfer_ns"]
        );
        let buckets = s["histograms"]["latency_ns"].as_array().unwrap();
        assert!(!buckets.is_empty() && buckets.len() <= MAX_BUCKETS);
        assert_eq!(keys(&buckets[0]), ["count", "hi_ns", "lo_ns"]);
        assert_eq!(
            (s["requests"].as_u64(), s["errors"].as_u64()),
            (Some(300), Some(3))
        );
        assert_eq!(s["timeouts"], 1);
        assert!(s["transfer_ns"].is_null() && s["schedule_error"].is_null());
        assert!(all_finite(&v));
    }

    #[test]
    fn empty_run_json_has_nulls_not_nans() {
        let json = to_json(&empty_document());
        let v: Value = serde_json::from_str(&json).unwrap();
        assert!(all_finite(&v));
        assert!(v["summary"]["latency_ns"].is_null());
        assert_eq!(v["summary"]["bits_per_second"], 0.0);
        assert!(!json.contains("NaN") && !json.contains("inf"));
    }

    #[test]
    #[expect(
        clippy::float_cmp,
        reason = "the guard returns its input or exactly zero"
    )]
    fn serde_json_writes_non_finite_floats_as_null() {
        // The guard behind finite_or_zero: should a NaN slip through, serde_json
        // would still write valid JSON (null), never `NaN`.
        assert_eq!(serde_json::to_string(&f64::NAN).unwrap(), "null");
        assert_eq!(serde_json::to_string(&f64::INFINITY).unwrap(), "null");
        assert_eq!(finite_or_zero(f64::NAN), 0.0);
        assert_eq!(finite_or_zero(f64::NEG_INFINITY), 0.0);
        assert_eq!(finite_or_zero(1.5), 1.5);
    }

    #[test]
    fn json_lines_are_single_lines() {
        let doc = fixed_document();
        let line = json_line(&doc.intervals[0]);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "interval");
        assert_eq!(
            keys(&v["data"]),
            sorted(&["index", "retransmits", "cpu"], FIGURE_KEYS)
        );
        let end = json_summary_line(&doc.summary);
        assert!(!end.contains('\n'));
        let v: Value = serde_json::from_str(&end).unwrap();
        assert_eq!(v["event"], "end");
        assert_eq!(v["data"]["requests"], 300);
    }

    #[test]
    fn table_shows_intervals_totals_and_percentiles() {
        let t = render_table(&fixed_document());
        assert!(t.contains("seed 42") && t.contains("6.1.0-test"), "{t}");
        assert!(
            t.contains("0.00-1.00 s") && t.contains("2.00-3.00 s"),
            "{t}"
        );
        assert!(t.contains("10 Mbit/s"), "{t}");
        assert!(t.contains("1.19 MiB") && !t.contains("MBytes"), "{t}");
        assert!(t.contains("total"), "{t}");
        assert!(t.contains("Latency") && t.contains("p99.9"), "{t}");
        assert!(t.contains("µs"), "{t}");
        assert_eq!(t.lines().count(), 3 + 3 + 2, "{t}");
    }

    #[test]
    fn table_of_an_empty_run() {
        let t = render_table(&empty_document());
        assert!(t.contains("no samples"), "{t}");
        assert!(t.contains("0 bit/s"), "{t}");
        assert!(!t.contains("NaN") && !t.contains("inf"), "{t}");
    }

    #[test]
    fn tcp_totals_say_the_rtt_in_whole_nanoseconds() {
        let t = TcpTotals {
            connections: 2,
            srtt_us_mean: 15.5,
            ..TcpTotals::default()
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["srtt_mean_ns"], 15_500);
        assert!(v.get("srtt_us_mean").is_none(), "{v}");
    }

    #[test]
    fn cpu_lists() {
        let status = "Name:\tx\nCpus_allowed:\tff\nCpus_allowed_list:\t0-3,8\nMems_allowed:\t1\n";
        assert_eq!(cpus_allowed_list(status).as_deref(), Some("0-3,8"));
        assert_eq!(cpus_allowed_list("Name: x\n"), None);
        assert_eq!(cpu_list_len("0-3,8"), Some(5));
        assert_eq!(cpu_list_len("0"), Some(1));
        assert_eq!(cpu_list_len("3-1"), None);
        assert_eq!(cpu_list_len("a"), None);
    }

    #[test]
    fn detect_never_fails() {
        let e = Environment::detect(Some(7), None);
        assert_eq!(e.seed, Some(7));
        assert!(!e.version.is_empty());
    }

    /// One recorder call, for the property test.
    #[derive(Clone, Debug)]
    enum Op {
        Bytes(u64),
        Packets(u64),
        Request(u64),
        Transfer(u64, u64),
        Schedule(i64),
        Stream(u64, u64, u64),
        Error,
        Timeout,
        Close,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<u64>().prop_map(Op::Bytes),
            any::<u64>().prop_map(Op::Packets),
            any::<u64>().prop_map(Op::Request),
            (any::<u64>(), any::<u64>()).prop_map(|(b, t)| Op::Transfer(b, t)),
            any::<i64>().prop_map(Op::Schedule),
            (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(l, r, d)| Op::Stream(l, r, d)),
            Just(Op::Error),
            Just(Op::Timeout),
            Just(Op::Close),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn no_input_yields_non_finite_json(
            start in any::<u64>(),
            interval in proptest::option::of(any::<u64>()),
            steps in proptest::collection::vec((op(), any::<u64>()), 0..40),
        ) {
            let mut r = Recorder::new(
                Instant::from_nanos(start),
                interval.map(Duration::from_nanos),
            );
            let mut intervals = Vec::new();
            for (op, at) in steps {
                let now = Instant::from_nanos(at);
                match op {
                    Op::Bytes(n) => r.add_bytes(now, n),
                    Op::Packets(n) => r.add_packets(now, n),
                    Op::Request(ns) => r.add_request(now, Duration::from_nanos(ns)),
                    Op::Transfer(b, ns) => r.add_transfer(now, b, Duration::from_nanos(ns)),
                    Op::Schedule(e) => r.add_schedule_error(now, e),
                    Op::Stream(l, o, d) => r.add_stream_counts(now, l, o, d),
                    Op::Error => r.add_error(now),
                    Op::Timeout => r.add_timeout(now),
                    Op::Close => {
                        let i = r.close_interval(now);
                        let line = json_line(&i);
                        prop_assert!(!line.contains('\n'));
                        let v: Value = serde_json::from_str(&line).unwrap();
                        prop_assert!(all_finite(&v));
                        intervals.push(i);
                    }
                }
            }
            let summary = r.finish(Instant::from_nanos(start));
            let doc = Document::new(Value::Null, Environment::new(None, None), intervals, summary);
            let v: Value = serde_json::from_str(&to_json(&doc)).unwrap();
            prop_assert!(all_finite(&v));
            let t = render_table(&doc);
            prop_assert!(!t.contains("NaN") && !t.contains("inf"));
        }
    }
}
