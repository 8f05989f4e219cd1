//! `mioperf lab HOST PORT [REQUEST]`: one echo, file or stream, and what
//! arrived; without a request, a prompt that sends one per line
//! (`lab/prompt.rs`), each run by `lab/run.rs` on one reactor.
//!
//! Exit 0 on success, 1 when the server answered `ERROR`, 2 on a mismatch,
//! an incomplete file, a failure or a timeout. A stream's losses are
//! measurements, not errors.

mod line;
mod live;
mod prompt;
mod run;

use crate::app::Failure;
use crate::app::output::{Report, Stream, Timeout, View, format_bitrate, rate};
use crate::cli::{LabArgs, duration};
use crate::proto::lab;
use crate::stats::StreamStats;
use line::Pace;
use prompt::{DEFAULT_COUNT, DEFAULT_INTERVAL_MS, DEFAULT_SIZE};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::net::SocketAddr;

/// `mioperf lab`: one request, or the prompt when there is none.
///
/// # Errors
/// Per the contract's exit codes.
pub fn lab_client(args: &LabArgs) -> Result<(), Failure> {
    if args.interval.is_some() && args.bitrate.is_some() {
        return Err(Failure::Error(
            "--interval and -b both set a stream's pace: give one".into(),
        ));
    }
    let Some(request) = &args.request else {
        return prompt::prompt(args);
    };
    let request = single_request(args, request).map_err(Failure::Error)?;
    run::Runner::new(args)?.request(&request)
}

/// The request a command line asks for: REQUEST as written, or the bare
/// word `stream` shaped by `--interval`, `--count`, `--size` and `-b`.
fn single_request(args: &LabArgs, request: &str) -> Result<String, String> {
    if request == "stream" {
        let pace = match (args.bitrate, &args.interval) {
            (Some(rate), _) => Pace::Bitrate(rate),
            (None, interval) => Pace::Interval(interval.map_or_else(
                || DEFAULT_INTERVAL_MS.to_owned(),
                |d| line::interval_ms_text(duration_ns(d)),
            )),
        };
        let count = args.count.unwrap_or(DEFAULT_COUNT);
        return line::stream_request(&pace, count, args.size.unwrap_or(DEFAULT_SIZE));
    }
    if args.bitrate.is_some() && request.starts_with("stream-") {
        return Err(format!(
            "-b and the interval of '{request}' both set the pace: give one \
             (e.g. `stream --count N --size BYTES -b RATE`)"
        ));
    }
    let shaping = args.interval.is_some()
        || args.count.is_some()
        || args.size.is_some()
        || args.bitrate.is_some();
    if shaping {
        return Err(
            "--interval, --count, --size and -b shape the request `stream`, not this one".into(),
        );
    }
    Ok(request.to_owned())
}

/// A flag's duration in whole nanoseconds, the stream header's unit
/// (saturating: the request check refuses anything that long).
fn duration_ns(d: crate::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// How the answers to `request` are shown.
fn view(args: &LabArgs, server: SocketAddr, request: &str) -> View {
    let timeout = args.timeout;
    View {
        header: json!({
            "protocol": "lab", "transport": if args.udp { "udp" } else { "tcp" },
            "server": server.to_string(), "request": request,
        }),
        json: args.json,
        text: Stream::Stdout,
        server: Some(server),
        refusal_prefix: "",
        title: None,
        timeout: Timeout {
            as_text: true,
            ..Timeout::said(move |_| {
                format!("no answer from {server} for {}", duration::format(timeout))
            })
        },
    }
}

impl Report for lab::Report {
    fn text(&self) -> String {
        match self {
            Self::Echo {
                bytes,
                matched,
                rtt,
            } => format!(
                "echo {bytes} bytes, rtt {:.1} µs, {}",
                rtt.as_secs_f64() * 1e6,
                if *matched { "matched" } else { "MISMATCH" }
            ),
            Self::File {
                expected,
                received,
                first_bad,
                elapsed,
                ..
            } => {
                let bits_per_s = rate(received.saturating_mul(8), elapsed.as_secs_f64());
                let mut text = format!(
                    "file {received} of {expected} bytes in {:.3} s = {}, pattern {}",
                    elapsed.as_secs_f64(),
                    format_bitrate(bits_per_s),
                    match first_bad {
                        None => "ok".to_string(),
                        Some(at) => format!("BROKEN at byte {at}"),
                    }
                );
                if !file_ok(self) {
                    text.push_str(", INCOMPLETE");
                }
                text
            }
            Self::Stream {
                expected,
                size,
                interval_ns,
                samples,
                kernel_timestamps,
                ..
            } => {
                let st = crate::stats::stream_stats(samples, *expected, *interval_ns, *size);
                stream_text(&st, *expected, *size, *interval_ns, *kernel_timestamps)
            }
        }
    }

    fn json(&self, doc: &mut Value) {
        match self {
            Self::Echo {
                bytes,
                matched,
                rtt,
            } => {
                doc["outcome"] = json!(if *matched { "ok" } else { "mismatch" });
                doc["echo"] = json!({"bytes": bytes, "matched": matched, "rtt_ns": rtt.as_nanos()});
            }
            Self::File {
                expected,
                received,
                first_bad,
                elapsed,
                datagrams,
                complete,
            } => {
                let secs = elapsed.as_secs_f64();
                let bits_per_s = rate(received.saturating_mul(8), secs);
                doc["outcome"] = json!(if file_ok(self) { "ok" } else { "incomplete" });
                doc["bytes"] = json!(received);
                doc["seconds"] = json!(secs);
                doc["bits_per_second"] = json!(bits_per_s);
                doc["file"] = json!({
                    "expected_bytes": expected, "pattern_ok": first_bad.is_none(),
                    "first_bad_offset": first_bad, "datagrams": datagrams, "complete": complete,
                });
            }
            Self::Stream {
                expected,
                size,
                interval_ns,
                samples,
                kernel_timestamps,
                complete,
            } => {
                let st = crate::stats::stream_stats(samples, *expected, *interval_ns, *size);
                doc["outcome"] = json!("ok");
                doc["stream"] = json!({
                    "expected": expected, "size_bytes": size, "interval_ns": interval_ns,
                    "kernel_timestamps": kernel_timestamps, "complete": complete,
                    "stats": stats_json(&st),
                });
            }
        }
    }

    fn verdict(&self) -> Result<(), Failure> {
        match self {
            Self::Echo { matched: false, .. } => {
                Err(Failure::Error("the echo did not match".into()))
            }
            Self::File { .. } if !file_ok(self) => {
                Err(Failure::Error("the file did not arrive intact".into()))
            }
            _ => Ok(()),
        }
    }
}

/// Whether a file report is a whole, intact file.
fn file_ok(report: &lab::Report) -> bool {
    matches!(
        report,
        lab::Report::File { expected, received, first_bad: None, complete: true, .. }
            if received == expected
    )
}

/// A stream's statistics in the keys of every mioperf document (rates
/// `*_per_second`, a data rate in bits; docs/json.md), whatever
/// [`StreamStats`]'s own field names are.
fn stats_json(st: &StreamStats) -> Value {
    json!({
        "expected": st.expected, "received": st.received, "unique": st.unique,
        "lost": st.lost, "duplicated": st.duplicated, "reordered": st.reordered,
        "segments_per_second": st.rate_per_s,
        "requested_segments_per_second": st.requested_rate_per_s,
        "rate_error": st.rate_error,
        "bits_per_second": st.bytes_per_s.map(|b| b * 8.0),
        "schedule_error_ns": st.schedule_error_ns, "max_drift_ns": st.max_drift_ns,
    })
}

/// The summary of a stream: what arrived, at what rate, how punctually.
fn stream_text(
    st: &StreamStats,
    expected: u64,
    size: u32,
    interval_ns: u64,
    kernel_timestamps: bool,
) -> String {
    let us = |ns: u64| {
        #[allow(clippy::cast_precision_loss, reason = "for display")]
        let v = ns as f64 / 1e3;
        v
    };
    let mut text = format!(
        "stream {expected} × {size} B every {:.3} ms\nreceived {}/{expected}, lost {}, reordered {}, duplicated {}",
        us(interval_ns) / 1e3,
        st.unique,
        st.lost,
        st.reordered,
        st.duplicated
    );
    if let Some(rate) = st.rate_per_s {
        let _ = write!(text, "\nrate {rate:.1} segments/s");
        if let (Some(want), Some(err)) = (st.requested_rate_per_s, st.rate_error) {
            let _ = write!(text, " (requested {want:.1}/s, {:+.3} %)", err * 100.0);
        }
        if let Some(bps) = st.bytes_per_s {
            let _ = write!(text, ", {}", format_bitrate(bps * 8.0));
        }
    }
    if let Some(e) = st.schedule_error_ns {
        let _ = write!(
            text,
            "\nschedule error p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({})",
            us(e.p50),
            us(e.p99),
            us(e.max),
            if kernel_timestamps {
                "kernel receive timestamps"
            } else {
                "reactor clock"
            }
        );
    }
    if let Some(d) = st.max_drift_ns {
        let _ = write!(text, "\nmax drift from the schedule {:.1} µs", us(d));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn file(received: u64, complete: bool) -> lab::Report {
        lab::Report::File {
            expected: 1000,
            received,
            first_bad: None,
            elapsed: Duration::from_millis(2),
            datagrams: 0,
            complete,
        }
    }

    #[test]
    fn a_whole_file_is_ok_and_a_short_one_is_not() {
        let whole = file(1000, true);
        assert_eq!(
            whole.text(),
            "file 1000 of 1000 bytes in 0.002 s = 4 Mbit/s, pattern ok"
        );
        assert!(whole.verdict().is_ok());
        let short = file(600, false);
        assert!(short.text().ends_with("pattern ok, INCOMPLETE"));
        let mut doc = json!({});
        short.json(&mut doc);
        assert_eq!(doc["outcome"], "incomplete");
        assert_eq!(
            (&doc["bytes"], &doc["file"]["expected_bytes"]),
            (&json!(600), &json!(1000))
        );
        assert!(matches!(short.verdict(), Err(Failure::Error(_))));
    }

    #[test]
    fn a_different_echo_is_a_mismatch() {
        let echo = lab::Report::Echo {
            bytes: 3,
            matched: false,
            rtt: Duration::from_micros(12),
        };
        assert_eq!(echo.text(), "echo 3 bytes, rtt 12.0 µs, MISMATCH");
        let mut doc = json!({});
        echo.json(&mut doc);
        assert_eq!(doc["outcome"], "mismatch");
        assert_eq!(doc["echo"]["rtt_ns"], 12_000);
        assert!(echo.verdict().is_err());
    }
}
