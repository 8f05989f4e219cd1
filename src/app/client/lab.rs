//! `mioperf lab HOST PORT REQUEST`: one echo, file or stream, and what
//! arrived.
//!
//! Exit 0 on success, 1 when the server answered `ERROR`, 2 on a mismatch,
//! an incomplete file, a failure or a timeout. A stream's losses are
//! measurements, not errors.

use super::{Bar, client_reactor, resolve, run_client};
use crate::app::output::{Report, Stream, Timeout, View, format_bitrate, rate};
use crate::app::{Failure, error};
use crate::cli::{LabArgs, duration};
use crate::proto::lab;
use crate::proto::outcome::{OutcomeSlot, Progress};
use crate::stats::StreamStats;
use serde_json::{Value, json};
use std::fmt::Write as _;

/// `mioperf lab`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn lab_client(args: &LabArgs) -> Result<(), Failure> {
    if args.request.contains('\n') {
        return Err(Failure::Error("the request must be one line".into()));
    }
    // Said before anything is opened: the server could not take it anyway.
    let max = crate::wire::lab::MAX_UDP_PAYLOAD;
    if args.udp && args.request.len() > max {
        return Err(Failure::Error(format!(
            "the request is {} bytes: one UDP datagram holds at most {max} (use TCP for more)",
            args.request.len()
        )));
    }
    let server = resolve(&args.host, args.port)?;
    let mut reactor = client_reactor()?;
    let slot = OutcomeSlot::new();
    let transport = if args.udp {
        lab::Transport::Udp { server }
    } else {
        lab::Transport::Tcp
    };
    let progress = Progress::new();
    let session = Box::new(
        lab::Client::new(
            args.request.as_bytes(),
            transport,
            args.max_count,
            args.timeout,
            slot.clone(),
        )
        .with_progress(progress.clone()),
    );
    let file_size = match crate::wire::lab::Request::parse(args.request.as_bytes()) {
        Ok(crate::wire::lab::Request::File(n)) => Some(n),
        _ => None,
    };
    match transport {
        lab::Transport::Tcp => reactor.connect_tcp(server, session),
        lab::Transport::Udp { .. } => crate::reactor::udp_client_socket(server)
            .and_then(|s| reactor.add_udp_session(s, Some(server), session)),
    }
    .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    // Only a file has a size to show progress against.
    let bar = file_size.filter(|_| !args.json).map(|total| Bar {
        total: Some(total),
        progress,
    });
    run_client(reactor, bar, &slot)?;

    let timeout = args.timeout;
    let view = View {
        header: json!({
            "protocol": "lab", "transport": if args.udp { "udp" } else { "tcp" },
            "server": server.to_string(), "request": args.request,
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
    };
    view.show(slot.take(), slot.take_partial().as_ref())
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
