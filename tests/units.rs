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
use std::process::{Command, Stdio};
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
        .args(["bench", "hello", "-t", "0", "--interval", "200ms", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Longer than a refused or zero-length run would take to exit.
    thread::sleep(Duration::from_millis(1500));
    let early = child.try_wait().unwrap();
    common::send_signal(child.id(), 2);
    let status = common::wait_child(&mut child, LIMIT).expect("bench exited after SIGINT");
    let mut text = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut text).unwrap();
    let mut errors = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut errors).unwrap();
    assert_eq!(early, None, "-t 0 ended by itself: {errors}");
    assert!(status.success(), "{status}: {errors}");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
    assert!(doc["summary"].is_object(), "{doc}");
}
