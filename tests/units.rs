//! One language for sizes, rates and durations, against the real binary
//! (issue 16, items 6 and 7): the examples the issue names start the
//! commands they were refused by, bad values are one-line usage errors
//! (exit 2), and `bench -t 0` runs until interrupted, as iperf3's does,
//! then reports.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::{Server, run_with_timeout};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Bound of one command in these tests.
const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn the_issues_examples_start_their_commands() {
    // Both printed `ready` only once their flags were accepted.
    let _serve = Server::hello(&["--max-file-size", "1G", "--msg-max", "16Mi"]);
    let _proxy = Server::proxy(&[
        "--listen",
        "127.0.0.1:0",
        "--rate",
        "1Mi",
        "--queue",
        "64KiB",
        "--latency",
        "0.001",
    ]);
}

#[test]
fn bad_values_are_one_line_usage_errors() {
    for (args, says) in [
        (&["proxy", "--rate", "fast"][..], "not a rate in bytes/s"),
        (&["serve", "--max-file-size", "lots"], "not a size"),
        (&["serve", "--id-ttl", "5 s"], "not a duration"),
        (&["bench", "hello", "-t", "1parsec"], "unknown unit"),
        (&["bench", "lab", "-l", "10Mbit"], "a size is in bytes"),
    ] {
        let out = run_with_timeout(args, LIMIT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(first.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn bench_t_0_runs_until_interrupted_then_reports() {
    let mut child = Command::new(common::bin())
        .args(["bench", "hello", "-t", "0", "-i", "200ms", "--json-stream"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let event = |line: &str| -> serde_json::Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    // No time limit in what the run says it was asked, then intervals as
    // it runs: no sleep, the run's own output says when it is under way.
    let start = event(&rx.recv_timeout(LIMIT).expect("a start event"));
    assert_eq!(start["event"], "start");
    assert!(start["data"]["inputs"]["time_s"].is_null(), "{start}");
    for _ in 0..2 {
        let interval = event(&rx.recv_timeout(LIMIT).expect("an interval event"));
        assert_eq!(interval["event"], "interval", "{interval}");
    }
    assert_eq!(child.try_wait().unwrap(), None, "-t 0 ended by itself");
    common::send_signal(child.id(), 2);
    let status = common::wait_child(&mut child, LIMIT).expect("bench exited after SIGINT");
    assert!(status.success(), "{status}");
    let last = rx.iter().last().expect("an end event");
    assert_eq!(event(&last)["event"], "end", "{last}");
}
