//! `mioperf bench` directions against the real binary and its in-process
//! server: `--bidir` moves bytes both ways and reports each direction (the
//! two summing to the totals), `-R` is `--mode get` (the server sends), and
//! contradictory direction flags are refused with one line, exit 2.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::run_with_timeout;
use serde_json::Value;
use std::time::Duration;

/// Bound of one bench run in these tests.
const BENCH_LIMIT: Duration = Duration::from_secs(30);

/// `mioperf bench ARGS --json` (see [`common::bench_json`]).
#[track_caller]
fn bench_json(args: &[&str]) -> Value {
    common::bench_json(args, BENCH_LIMIT)
}

#[test]
fn bidir_reports_both_directions_and_they_sum_to_the_total() {
    for proto in ["tcpfile", "tftp"] {
        // -P 4: eight sessions, of which -n 4 starts the first four claimed:
        // they must not all go the same way.
        let doc = bench_json(&[proto, "--bidir", "-P", "4", "-n", "4", "-l", "100K"]);
        let dirs = &doc["directions"];
        let put = dirs["put"]["bytes"].as_u64().expect("put bytes");
        let get = dirs["get"]["bytes"].as_u64().expect("get bytes");
        assert!(put > 0 && get > 0, "{proto}: {dirs}");
        assert_eq!(dirs["put"]["sender"], "client");
        assert_eq!(dirs["get"]["sender"], "server");
        assert_eq!(
            Some(put + get),
            doc["summary"]["bytes"].as_u64(),
            "{proto}: the directions sum to the total"
        );
        let transfers = dirs["put"]["transfers"].as_u64().unwrap_or(0)
            + dirs["get"]["transfers"].as_u64().unwrap_or(0);
        assert_eq!(Some(transfers), doc["summary"]["transfers"].as_u64());
        assert_eq!(doc["inputs"]["bidir"], true);
    }
}

#[test]
fn bidir_table_shows_each_sender() {
    let out = run_with_timeout(
        &["bench", "stopwait", "--bidir", "-n", "2", "-l", "10K"],
        BENCH_LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("put  (client)"), "{stdout}");
    assert!(stdout.contains("get  (server)"), "{stdout}");
}

#[test]
fn reverse_is_the_server_sending_which_is_get() {
    // The inputs, but the in-process server's port, which differs per run.
    let run = |args: &[&str]| {
        let mut doc = bench_json(args);
        doc["inputs"]["server"] = Value::Null;
        doc
    };
    let reverse = run(&["tcpfile", "-R", "-n", "2", "-l", "100K"]);
    let get = run(&["tcpfile", "--mode", "get", "-n", "2", "-l", "100K"]);
    let put = run(&["tcpfile", "--mode", "put", "-n", "2", "-l", "100K"]);
    assert_eq!(reverse["inputs"], get["inputs"]);
    assert_ne!(reverse["inputs"], put["inputs"]);
    assert_eq!(reverse["inputs"]["mode"], "get");
    assert!(reverse.get("directions").is_none(), "only --bidir adds it");
    assert_eq!(
        reverse["summary"]["transfer_bytes"],
        get["summary"]["transfer_bytes"]
    );
}

#[test]
fn contradictory_directions_are_refused_in_one_line() {
    let cases: [(&[&str], &str); 6] = [
        (&["tcpfile", "--bidir", "-n", "1"], "cannot go both ways"),
        (
            &["tcpfile", "-R", "--mode", "put"],
            "contradicts --mode put",
        ),
        (&["tftp", "--bidir", "-R"], "contradict"),
        (&["window", "--bidir", "--mode", "put"], "drop --mode put"),
        (&["hello", "-R"], "file protocols only"),
        (&["lab", "--bidir"], "file protocols only"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        let out = run_with_timeout(&all, BENCH_LIMIT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
