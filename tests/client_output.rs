//! One rule for every client that can write a download to standard
//! output: `-o -` with `--json` is refused up front (exit 2, one line),
//! before any socket, device or file is opened.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::run_with_timeout;
use std::time::{Duration, Instant};

#[test]
fn every_client_refuses_stdout_for_both_the_file_and_the_json() {
    // Port 9 (discard) on loopback: nobody answers, so a client that went
    // ahead would wait for its timeout instead of refusing at once.
    let server = "127.0.0.1:9";
    let clients: [&[&str]; 5] = [
        &["get", server, "f"],
        &["stopwait", "get", server, "f"],
        &["tftp", "get", server, "f"],
        &["window", "get", server, "f"],
        &["tunstack", "get", "http://192.0.2.2/f"],
    ];
    for client in clients {
        let mut args = client.to_vec();
        args.extend_from_slice(&["-o", "-", "--json", "--timeout", "5s"]);
        let started = Instant::now();
        let out = run_with_timeout(&args, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{client:?}: {stderr}");
        assert!(
            stderr.contains("-o - and --json both want standard output"),
            "{client:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{client:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{client:?}: nothing on stdout");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{client:?}: refused before waiting"
        );
    }
}
