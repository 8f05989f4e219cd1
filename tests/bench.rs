//! `mioperf bench` against the real binary, on loopback, bounded in time:
//! what the bench counts against what a server saw (hello IDs registered,
//! tcpfile files sent, lab echo datagrams), a paced stream's rate against
//! the bitrate asked for, a `--json` smoke of every mode with the
//! document's schema checked, and the refusals of bad flags. Speed goals
//! are never asserted here (that is `benches/compare.sh`).

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::{Server, run_with_timeout, temp_path, udp_socket};
use serde_json::Value;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// Bound of one bench run in these tests.
const BENCH_LIMIT: Duration = Duration::from_secs(20);

/// `mioperf bench ARGS --json` (see [`common::bench_json`]).
#[track_caller]
fn bench_json(args: &[&str]) -> Value {
    common::bench_json(args, BENCH_LIMIT)
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an unsigned integer in {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"));
    assert!(x.is_finite() && x >= 0.0, "{key} = {x}");
    x
}

/// The figures every interval and the summary carry, with their types.
#[track_caller]
fn check_figures(v: &Value) {
    for key in [
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
        "start_ns",
        "end_ns",
    ] {
        u(v, key);
    }
    for key in [
        "seconds",
        "bits_per_second",
        "packets_per_second",
        "requests_per_second",
        "transfers_per_second",
    ] {
        f(v, key);
    }
    for key in ["latency_ns", "transfer_ns", "schedule_error"] {
        assert!(
            v[key].is_null() || v[key].is_object(),
            "{key} is neither null nor an object in {v}"
        );
    }
    if let Some(d) = v["latency_ns"].as_object() {
        for key in ["count", "min", "p50", "p90", "p99", "p999", "max"] {
            assert!(d[key].is_u64(), "latency_ns.{key} in {v}");
        }
    }
}

/// The whole document: top-level keys, inputs, environment, intervals
/// (about `expected_intervals` of them) and summary.
#[track_caller]
fn check_document(doc: &Value, expected_intervals: std::ops::RangeInclusive<usize>) {
    assert_eq!(doc["schema_version"], 2);
    assert_eq!(doc["tool"], "mioperf");
    for key in [
        "protocol",
        "mode",
        "transport",
        "parallel",
        "server",
        "seed",
    ] {
        assert!(!doc["inputs"][key].is_null(), "inputs.{key} missing: {doc}");
    }
    for key in ["version", "os", "arch"] {
        assert!(doc["environment"][key].is_string(), "environment.{key}");
    }
    let intervals = doc["intervals"].as_array().expect("intervals array");
    assert!(
        expected_intervals.contains(&intervals.len()),
        "{} intervals, expected {expected_intervals:?}",
        intervals.len()
    );
    for (i, iv) in intervals.iter().enumerate() {
        assert_eq!(u(iv, "index"), i as u64);
        check_figures(iv);
    }
    let summary = &doc["summary"];
    check_figures(summary);
    assert!(summary["histograms"].is_object());
    assert_eq!(
        usize::try_from(u(summary, "intervals")).unwrap(),
        intervals.len()
    );
}

/// A fresh folder, removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Self {
        let p = temp_path(&format!("bench-root-{tag}"));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_mode_writes_a_valid_document() {
    // 0.6 s at 200 ms: three intervals (a late timer may merge or split one).
    let modes: &[&[&str]] = &[
        &["hello"],
        &["hello", "--tcp", "-P", "4"],
        &["hello", "--mode", "connect", "-P", "4"],
        &["lab"],
        &["lab", "--tcp", "-l", "100"],
        &["lab", "--mode", "file", "-l", "100K"],
        &["lab", "--mode", "file", "--tcp", "-l", "100K"],
        &["lab", "--mode", "stream", "-b", "1M", "-l", "500"],
        &["lab", "--mode", "stream", "--tcp", "-b", "1M", "-l", "500"],
        &["msg", "-P", "2", "-l", "1000"],
        &["tcpfile", "-l", "100K", "-P", "2"],
        &["tcpfile", "--mode", "put", "-l", "100K"],
        &["stopwait", "-l", "5000"],
        &["stopwait", "--mode", "put", "-l", "5000"],
        &["tftp", "-l", "50K", "-P", "2"],
        &["tftp", "--mode", "put", "-l", "50K", "--windowsize", "4"],
    ];
    // Two at a time: the whole smoke stays a few seconds.
    let failures: Vec<String> = modes
        .chunks(2)
        .flat_map(|pair| {
            let handles: Vec<_> = pair
                .iter()
                .map(|args| {
                    let mut args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
                    args.extend(["-t", "600ms", "--interval", "200ms"].map(String::from));
                    thread::spawn(move || {
                        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                        let result = std::panic::catch_unwind(|| {
                            let doc = bench_json(&refs);
                            check_document(&doc, 2..=4);
                            let s = &doc["summary"];
                            assert!(
                                u(s, "requests") + u(s, "transfers") > 0,
                                "nothing completed: {s}"
                            );
                            assert_eq!(u(s, "errors"), 0, "errors in {s}");
                            assert!(u(s, "bytes") > 0, "no bytes counted: {s}");
                        });
                        result.err().map(|_| format!("{args:?}"))
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().unwrap_or_else(|_| Some("thread".into())))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(failures.is_empty(), "modes that failed: {failures:?}");
}

#[test]
fn json_stream_writes_one_line_per_interval_then_the_summary() {
    let out = run_with_timeout(
        &[
            "bench",
            "hello",
            "-t",
            "500ms",
            "--interval",
            "100ms",
            "--json-stream",
        ],
        BENCH_LIMIT,
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (first, lines) = lines.split_first().expect("some lines");
    assert_eq!(first["event"], "start");
    let (last, intervals) = lines.split_last().expect("some lines");
    assert_eq!(last["event"], "end");
    check_figures(&last["data"]);
    assert!(
        (4..=6).contains(&intervals.len()),
        "{} intervals",
        intervals.len()
    );
    for line in intervals {
        assert_eq!(line["event"], "interval");
        check_figures(&line["data"]);
    }
}

#[test]
fn hello_requests_equal_the_ids_the_server_registered() {
    let server = Server::hello(&[]);
    let addr = server.udp("hello");
    let doc = bench_json(&[
        "hello",
        "-n",
        "500",
        "-P",
        "4",
        "--server",
        &addr.to_string(),
    ]);
    let s = &doc["summary"];
    assert_eq!(u(s, "requests"), 500, "{s}");
    assert_eq!(u(s, "packets"), 500);
    assert_eq!(u(s, "errors") + u(s, "timeouts"), 0);
    // Ask the server about every ID: those the bench registered answer RESET.
    let socket = udp_socket();
    let mut taken = 0;
    for id in 0..10_000 {
        let answer = common::udp_text_on(&socket, addr, format!("HELLO {id}").as_bytes());
        if answer.starts_with("RESET") {
            taken += 1;
        }
    }
    assert_eq!(taken, 500, "IDs registered on the server");
}

#[test]
fn tcpfile_bytes_equal_files_times_size() {
    let root = Root::new("get");
    let size = 200_000u64;
    std::fs::write(
        root.0.join("f.bin"),
        vec![b'x'; usize::try_from(size).unwrap()],
    )
    .unwrap();
    let server = Server::spawn(&[
        "--only",
        "tcpfile",
        "--listen",
        "tcpfile=127.0.0.1:0",
        "--root",
        root.0.to_str().unwrap(),
    ]);
    let addr = server.tcp("tcpfile");
    let doc = bench_json(&[
        "tcpfile",
        "-n",
        "20",
        "-P",
        "4",
        "--name",
        "f.bin",
        "--server",
        &addr.to_string(),
    ]);
    let s = &doc["summary"];
    assert_eq!(u(s, "transfers"), 20, "{s}");
    assert_eq!(u(s, "transfer_bytes"), 20 * size);
    assert_eq!(u(s, "bytes"), 20 * size);
    // The server logs one line per GET it completed.
    let (served, log) =
        server.stderr_lines_with("GET f.bin: 200000 bytes", 20, Duration::from_secs(5));
    assert_eq!(served, 20, "server served {served} GETs:\n{log}");
}

#[test]
fn lab_udp_echo_datagrams_equal_what_the_server_received() {
    // A counting echo server of our own: the observer is the test.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (received, stop) = (received.clone(), stop.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    received.fetch_add(1, Ordering::Relaxed);
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        })
    };
    let doc = bench_json(&[
        "lab",
        "-n",
        "300",
        "-P",
        "3",
        "-l",
        "200",
        "--server",
        &addr.to_string(),
    ]);
    stop.store(true, Ordering::Relaxed);
    echo.join().unwrap();
    let s = &doc["summary"];
    assert_eq!(u(s, "packets"), 300, "{s}");
    assert_eq!(u(s, "requests"), 300);
    assert_eq!(u(s, "bytes"), 300 * 200);
    assert_eq!(received.load(Ordering::Relaxed), 300);
}

#[test]
fn paced_stream_rate_matches_the_bitrate() {
    // 4 Mbit/s of 1000-byte segments: one every 2 ms for 2 s. On a loaded
    // machine (test binaries in parallel) the stream's end often arrives
    // after the -t end: it must still count (the bench's END_GRACE), within
    // the planned span; dropped, it left a run with no success (exit 2).
    let doc = bench_json(&[
        "lab", "--mode", "stream", "-b", "4M", "-l", "1000", "-t", "2s",
    ]);
    let s = &doc["summary"];
    assert_eq!(u(s, "transfers"), 1, "the one stream is counted: {s}");
    assert!(
        u(s, "end_ns") <= 2_000_000_000,
        "a late end stretched the span: {s}"
    );
    let rate = f(s, "bits_per_second");
    let error = (rate / 4e6 - 1.0).abs();
    assert!(
        error < 0.03,
        "stream rate {rate} bit/s is {:.2} % off",
        error * 100.0
    );
    assert_eq!(u(s, "lost"), 0, "{s}");
    assert!(s["schedule_error"].is_object());
}

#[test]
fn busy_poll_runs_and_is_echoed() {
    // That both reactors get the setting is a unit test (`bench::local`,
    // `bench`); what it does to a turn is the reactor's, in virtual time.
    // Here: a busy-polling run completes and says what it ran with.
    let doc = bench_json(&[
        "stopwait",
        "-l",
        "20K",
        "-n",
        "3",
        "--interval",
        "0s",
        "--busy-poll",
        "1ms",
    ]);
    assert_eq!(u(&doc["summary"], "transfers"), 3, "{doc}");
    assert_eq!(u(&doc["summary"], "errors"), 0, "{doc}");
    let secs = f(&doc["inputs"], "busy_poll_s");
    assert!((secs - 0.001).abs() < 1e-12, "busy_poll_s {secs}");
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for (args, needle) in [
        (&["bench", "hello", "-P", "0"][..], "-P 0"),
        (&["bench", "hello", "-P", "20000"], "out of range"),
        (&["bench", "tcpfile", "--udp"], "TCP only"),
        (&["bench", "lab", "--mode", "get"], "does not apply"),
        (&["bench", "hello", "-n", "0"], "-n 0"),
        (&["bench", "lab", "-b", "1M"], "stream only"),
        (&["bench", "stopwait", "-l", "99999999"], "out of range"),
        (&["bench", "lab", "--interval", "1ms"], "too short"),
        (&["bench", "hello", "--server", "nowhere"], "HOST:PORT"),
        (&["bench", "tftp", "--busy-poll", "soon"], "--busy-poll"),
    ] {
        let out = run_with_timeout(args, BENCH_LIMIT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unreachable_server_exits_2() {
    // A bound UDP socket that never answers: every request times out.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let out = run_with_timeout(
        &[
            "bench",
            "hello",
            "-t",
            "1s",
            "--timeout",
            "100ms",
            "--server",
            &addr,
        ],
        BENCH_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    // Nothing listening on TCP: refused at once, stopped after a burst.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = run_with_timeout(
        &[
            "bench",
            "hello",
            "--mode",
            "connect",
            "-t",
            "5s",
            "--server",
            &format!("127.0.0.1:{port}"),
        ],
        BENCH_LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("failures in a row"), "{stderr}");
}

#[test]
fn parallel_above_the_open_file_limit_is_refused() {
    let script = format!(
        "ulimit -n 256 && exec {} bench hello -P 1000 -t 1s",
        common::bin()
    );
    let out = common::run_command(
        std::process::Command::new("sh").args(["-c", &script]),
        BENCH_LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("open files") && stderr.contains("256"),
        "{stderr}"
    );
}

#[test]
fn sigint_ends_the_run_with_its_report() {
    let mut child = std::process::Command::new(common::bin())
        .args([
            "bench",
            "hello",
            "-t",
            "30s",
            "--interval",
            "200ms",
            "--json",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_secs(1));
    common::send_signal(child.id(), 2);
    let status = common::wait_child(&mut child, BENCH_LIMIT).expect("bench exited after SIGINT");
    assert!(status.success());
    let mut text = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut text).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    check_document(&doc, 3..=7);
    let seconds = f(&doc["summary"], "seconds");
    assert!((0.8..5.0).contains(&seconds), "ran {seconds} s of 30");
    assert!(u(&doc["summary"], "requests") > 0);
}

#[test]
fn svg_is_written() {
    let path = temp_path("bench.svg");
    let _ = bench_json(&[
        "lab",
        "--mode",
        "file",
        "-l",
        "10K",
        "-t",
        "300ms",
        "--interval",
        "100ms",
        "--svg",
        path.to_str().unwrap(),
    ]);
    let svg = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn a_run_where_nothing_succeeds_names_the_cause_in_plain_words() {
    let root = Root::new("missing");
    let server = Server::spawn(&[
        "--only",
        "tcpfile,stopwait,tftp",
        "--listen",
        "tcpfile=127.0.0.1:0",
        "--listen",
        "stopwait=127.0.0.1:0",
        "--listen",
        "tftp=127.0.0.1:0",
        "--root",
        root.0.to_str().unwrap(),
    ]);
    let runs = [
        ("tcpfile", server.tcp("tcpfile"), "not found: nosuchfile"),
        ("stopwait", server.udp("stopwait"), "not found"),
        ("tftp", server.udp("tftp"), "File not found"),
    ];
    for (proto, addr, cause) in runs {
        let addr = addr.to_string();
        let out = run_with_timeout(
            &[
                "bench",
                proto,
                "-n",
                "10",
                "--name",
                "nosuchfile",
                "--server",
                &addr,
            ],
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{proto}: {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains("no transfer succeeded")
                && last.contains("10 of 10 failed")
                && last.contains(cause),
            "{proto}: {stderr}"
        );
        assert!(!stderr.contains("Some("), "{proto}: Debug text: {stderr}");
    }
    // A refused connection is said as the system says it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let out = run_with_timeout(
        &["bench", "tcpfile", "-n", "3", "-v", "--server", &closed],
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("3 of 3 failed: tcpfile: connection refused"),
        "{stderr}"
    );
    for debug in ["Some(", "Failed(", "Err(", "Ok("] {
        assert!(!stderr.contains(debug), "Debug text {debug}: {stderr}");
    }
}
