//! `mioperf bench window` against the real binary, on loopback, bounded in
//! time: the in-process server serves window, every transfer is counted
//! once with its bytes, the engines' counters reach the JSON (and show the
//! losses of a path through `mioperf proxy`), a server saw each GET the
//! bench counted, and the flags that do not apply are refused. Speed goals
//! are never asserted here (that is `benches/loss_sweep.sh`).

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::{Server, run_with_timeout, temp_path};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Bound of one bench run in these tests.
const BENCH_LIMIT: Duration = Duration::from_secs(30);

/// `mioperf bench window ARGS --json` (see [`common::bench_json`]).
#[track_caller]
fn bench_json(args: &[&str]) -> Value {
    let mut all = vec!["window"];
    all.extend_from_slice(args);
    common::bench_json(&all, BENCH_LIMIT)
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an unsigned integer in {v}"))
}

/// A temporary server root, removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Self {
        let p = temp_path(&format!("bench-window-root-{tag}"));
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
fn gets_from_the_in_process_server_are_counted_with_the_engines_counters() {
    let svg = temp_path("bench-window.svg");
    let size = 300_000u64;
    let doc = bench_json(&[
        "-n",
        "6",
        "-P",
        "2",
        "-l",
        "300K",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let inputs = &doc["inputs"];
    assert_eq!(inputs["protocol"], "window", "{inputs}");
    assert_eq!(inputs["mode"], "get");
    assert_eq!(inputs["transport"], "udp");
    assert_eq!(inputs["cc"], "newreno");
    assert_eq!(inputs["in_process_server"], true);
    let s = &doc["summary"];
    assert_eq!(u(s, "transfers"), 6, "{s}");
    assert_eq!(u(s, "transfer_bytes"), 6 * size);
    assert_eq!(u(s, "bytes"), 6 * size, "progress counted as it arrived");
    assert_eq!((u(s, "errors"), u(s, "timeouts")), (0, 0));
    assert_eq!(u(&s["transfer_ns"], "count"), 6, "one time per transfer");
    let tcp = &s["tcp"];
    assert_eq!(u(tcp, "connections"), 6, "one engine per transfer: {tcp}");
    // A GET's client receives the file: at least a segment per MSS.
    assert!(u(tcp, "segments_in") >= 6 * size / 1452, "{tcp}");
    assert!(tcp["srtt_mean_ns"].as_u64().unwrap() > 0, "{tcp}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    assert!(picture.starts_with("<svg") && picture.trim_end().ends_with("</svg>"));
}

#[test]
fn puts_to_the_in_process_server_count_the_senders_segments() {
    let size = 200_000u64;
    let doc = bench_json(&["--mode", "put", "-n", "4", "-P", "2", "-l", "200K"]);
    let s = &doc["summary"];
    assert_eq!(doc["inputs"]["mode"], "put");
    assert_eq!(u(s, "transfers"), 4, "{s}");
    assert_eq!(u(s, "transfer_bytes"), 4 * size);
    let tcp = &s["tcp"];
    assert_eq!(u(tcp, "connections"), 4, "{tcp}");
    // The client sends the file this time.
    assert!(u(tcp, "segments_out") >= 4 * size / 1452, "{tcp}");
}

#[test]
fn through_a_lossy_proxy_every_get_is_whole_and_the_losses_show() {
    let root = Root::new("proxy");
    let size = 200_000u64;
    std::fs::write(
        root.0.join("f.bin"),
        vec![b'w'; usize::try_from(size).unwrap()],
    )
    .unwrap();
    let server = Server::spawn(&[
        "--only",
        "window",
        "--listen",
        "window=127.0.0.1:0",
        "--root",
        root.0.to_str().unwrap(),
    ]);
    let upstream = server.udp("window").to_string();
    let proxy = Server::proxy(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--drop",
        "0.05",
        "--seed",
        "1",
    ]);
    let via = proxy.udp("proxy").to_string();
    let doc = bench_json(&[
        "-n",
        "4",
        "-P",
        "2",
        "--name",
        "f.bin",
        "--server",
        &via,
        "--timeout",
        "20s",
    ]);
    let s = &doc["summary"];
    assert_eq!(doc["inputs"]["in_process_server"], false);
    assert_eq!(u(s, "transfers"), 4, "{s}");
    assert_eq!(u(s, "transfer_bytes"), 4 * size);
    assert_eq!(u(s, "errors"), 0, "{s}");
    let tcp = &s["tcp"];
    assert_eq!(u(tcp, "connections"), 4, "{tcp}");
    // 5 % of ~560 data segments lost: the receivers kept later ones out
    // of order (or saw retransmitted ones twice).
    assert!(
        u(tcp, "out_of_order") + u(tcp, "duplicate_segments") > 0,
        "no loss seen by the engines: {tcp}"
    );
    // The server committed what the bench counted.
    let (served, log) =
        server.stderr_lines_with("GET f.bin: 200000 bytes", 4, Duration::from_secs(5));
    assert_eq!(served, 4, "server served {served} GETs:\n{log}");
}

#[test]
fn flags_that_do_not_apply_exit_2_with_a_message() {
    for (args, needle) in [
        (&["bench", "window", "--tcp"][..], "UDP only"),
        (&["bench", "window", "--mode", "echo"], "does not apply"),
        (&["bench", "window", "--windowsize", "16"], "tftp only"),
        (&["bench", "tftp", "--cc", "cubic"], "window only"),
        (&["bench", "window", "--cc", "vegas"], "newreno or cubic"),
        (&["bench", "window", "-l", "100Gi"], "out of range"),
    ] {
        let out = run_with_timeout(args, BENCH_LIMIT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
