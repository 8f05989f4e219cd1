//! `mioperf bench` output as it happens, against the real binary: the
//! `--json-stream` events (start, one per interval, end) and the table's
//! rows are read from the pipe as they arrive, each timed, and must come
//! while the run is still going, not all at its end; `--logfile` appends
//! what would go to standard output; the CPU and retransmission figures
//! are where the JSON says they are. All on loopback, in-process servers,
//! every wait bounded.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests time the lines of a real process"
)]

mod common;

use common::{bin, run_with_timeout, temp_path, wait_child};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Bound of one bench run in these tests.
const BENCH_LIMIT: Duration = Duration::from_secs(30);
/// How long before the process's exit its first interval must have been
/// read: a run of `-t 3s -i 1s` closes it at 1 s and exits after 3 s, so a
/// report held back to the end would arrive a few milliseconds before the
/// exit, and a live one about 2 s before.
const EARLY_ENOUGH: Duration = Duration::from_secs(1);

/// What a run wrote, line by line, with when each line was read, and when
/// the process was seen to exit (both since the spawn).
struct Timed {
    lines: Vec<(Duration, String)>,
    exited_at: Duration,
    status: ExitStatus,
    stderr: String,
}

/// Runs `mioperf ARGS`, reading its standard output line by line as it
/// arrives, on a thread that stamps each line with the time it was read.
fn run_timed(args: &[&str]) -> Timed {
    let spawned = Instant::now();
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mioperf");
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((spawned.elapsed(), line)).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("stderr piped");
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let Some(status) = wait_child(&mut child, BENCH_LIMIT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("bench {args:?} still running after {BENCH_LIMIT:?}");
    };
    let exited_at = spawned.elapsed();
    // The pipe reaches EOF with the exit: the reader ends promptly.
    let _ = reader.join();
    Timed {
        lines: rx.try_iter().collect(),
        exited_at,
        status,
        stderr: errors.join().unwrap_or_default(),
    }
}

impl Timed {
    #[track_caller]
    fn assert_success(&self) {
        assert!(
            self.status.success(),
            "exit {:?}\nstdout: {:?}\nstderr: {}",
            self.status,
            self.lines,
            self.stderr
        );
    }

    /// When the first line matching `pick` was read, and the line.
    #[track_caller]
    fn first(&self, pick: impl Fn(&str) -> bool) -> (Duration, &str) {
        self.lines.iter().find(|(_, l)| pick(l)).map_or_else(
            || panic!("no such line in {:?}", self.lines),
            |(at, l)| (*at, l.as_str()),
        )
    }

    /// How long before the exit the first line matching `pick` was read.
    #[track_caller]
    fn lead(&self, pick: impl Fn(&str) -> bool) -> Duration {
        self.exited_at.saturating_sub(self.first(pick).0)
    }
}

fn event(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn is_event(line: &str, name: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|v| v["event"] == name)
}

#[test]
fn json_stream_events_arrive_as_the_run_goes() {
    let run = run_timed(&["bench", "hello", "-t", "3s", "-i", "1s", "--json-stream"]);
    run.assert_success();
    let events: Vec<Value> = run.lines.iter().map(|(_, l)| event(l)).collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(names.first(), Some(&"start"), "{names:?}");
    assert_eq!(names.last(), Some(&"end"), "{names:?}");
    let intervals = names.iter().filter(|&&n| n == "interval").count();
    assert!(
        (3..=4).contains(&intervals) && names.len() == intervals + 2,
        "{names:?}"
    );

    // The start event: inputs, environment, limits.
    let start = &events[0]["data"];
    assert_eq!(start["inputs"]["protocol"], "hello", "{start}");
    assert!(start["environment"]["version"].is_string(), "{start}");
    assert_eq!(start["limits"]["max_parallel"], 10_000, "{start}");

    // Read while the run went on, not at its end.
    let lead = run.lead(|l| is_event(l, "interval"));
    assert!(
        lead >= EARLY_ENOUGH,
        "the first interval was read only {lead:?} before the exit: {:?}",
        run.lines
    );
    let (first_interval, _) = run.first(|l| is_event(l, "interval"));
    let (end, _) = run.first(|l| is_event(l, "end"));
    assert!(end.saturating_sub(first_interval) >= EARLY_ENOUGH);
    assert!(run.lead(|l| is_event(l, "start")) >= 2 * EARLY_ENOUGH);

    // Every interval and the end carry the CPU figures of both threads;
    // hello has no retransmission count.
    for e in &events[1..] {
        let cpu = &e["data"]["cpu"];
        for who in ["generator", "server"] {
            for key in ["user_seconds", "system_seconds", "total_percent"] {
                let x = cpu[who][key].as_f64().unwrap_or(-1.0);
                assert!(x >= 0.0 && x.is_finite(), "{who}.{key} in {e}");
            }
        }
        assert!(e["data"]["retransmits"].is_null(), "{e}");
    }
}

#[test]
fn table_rows_arrive_as_intervals_end() {
    let run = run_timed(&["bench", "hello", "-t", "3s", "-i", "1s"]);
    run.assert_success();
    let row = |l: &str| l.starts_with("0.00-1.00 s");
    let lead = run.lead(row);
    assert!(
        lead >= EARLY_ENOUGH,
        "the first row was read only {lead:?} before the exit: {:?}",
        run.lines
    );
    assert!(run.lead(|l| l.starts_with("Interval")) >= 2 * EARLY_ENOUGH);
    let (total, _) = run.first(|l| l.ends_with("total"));
    assert!(total > run.first(row).0);
    let (_, cpu) = run.first(|l| l.starts_with("CPU"));
    assert!(cpu.contains("generator") && cpu.contains("server"), "{cpu}");
}

#[test]
fn logfile_appends_what_stdout_would_show() {
    let path = temp_path("bench-logfile");
    let log = path.to_str().expect("UTF-8 temp path");
    let _ = std::fs::remove_file(&path);
    for extra in [&[][..], &["--json-stream"][..]] {
        let mut args = vec!["bench", "hello", "-n", "50", "--logfile", log];
        args.extend_from_slice(extra);
        let out = run_with_timeout(&args, BENCH_LIMIT);
        assert!(out.status.success(), "{out:?}");
        assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    }
    let text = std::fs::read_to_string(&path).expect("log file written");
    let _ = std::fs::remove_file(&path);
    // The table of the first run, then the second run's events after it.
    let total = text.find("  total\n").expect("the table's total row");
    let start = text.find(r#"{"event":"start""#).expect("a start event");
    let end = text.find(r#"{"event":"end""#).expect("an end event");
    assert!(total < start && start < end, "{text}");

    let out = run_with_timeout(
        &[
            "bench",
            "hello",
            "-n",
            "5",
            "--logfile",
            "/nonexistent-dir/x.log",
        ],
        BENCH_LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--logfile /nonexistent-dir/x.log"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// Runs a bench with `--json` and returns its summary.
#[track_caller]
fn summary(args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = run_with_timeout(&all, BENCH_LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout).expect("JSON");
    doc["summary"].clone()
}

#[test]
fn retransmits_are_counted_where_the_client_knows_them() {
    for args in [
        &["tftp", "-l", "100K", "-n", "3"][..],
        &["stopwait", "-l", "10K", "-n", "3"][..],
        &["window", "-l", "100K", "-n", "2"][..],
    ] {
        let s = summary(args);
        assert!(s["retransmits"].is_u64(), "{args:?}: {s}");
        assert!(
            s["cpu"]["server"]["total_percent"].is_f64(),
            "{args:?}: {s}"
        );
    }
    // Kernel TCP's count is not read: unknown, not zero.
    let s = summary(&["tcpfile", "-l", "100K", "-n", "2"]);
    assert!(s["retransmits"].is_null(), "{s}");
}

#[test]
fn with_an_outside_server_only_the_generator_cpu_is_reported() {
    let server = common::Server::hello(&[]);
    let addr = server.udp("hello").to_string();
    let s = summary(&["hello", "-n", "20", "--server", &addr]);
    assert!(s["cpu"]["server"].is_null(), "{s}");
    assert!(s["cpu"]["generator"]["user_seconds"].is_f64(), "{s}");
}

/// Runs a bench with `--json` and returns the whole document.
#[track_caller]
fn document(args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = run_with_timeout(&all, BENCH_LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).expect("JSON")
}

#[test]
fn through_a_lossy_proxy_the_resends_are_counted() {
    let root = temp_path("bench-stream-root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    // PUTs: the bench's client sends the data, so every loss either way
    // makes it time out and send again (the count it reports).
    for (proto, length) in [("tftp", "30K"), ("stopwait", "5K")] {
        let server = common::Server::spawn(&[
            "--only",
            proto,
            "--listen",
            &format!("{proto}=127.0.0.1:0"),
            "--root",
            root.to_str().unwrap(),
            "--allow-overwrite",
        ]);
        let upstream = server.udp(proto).to_string();
        let proxy = common::Server::proxy(&[
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
        // A short per-packet timeout: each loss costs 50 ms, not 5 s.
        let doc = document(&[
            proto,
            "--mode",
            "put",
            "-l",
            length,
            "-n",
            "4",
            "--server",
            &via,
            "--timeout",
            "50ms",
            "-i",
            "100ms",
        ]);
        let s = &doc["summary"];
        let total = s["retransmits"].as_u64().unwrap_or(0);
        // 60 (tftp) or 50 (stopwait) blocks and their ACKs per transfer at
        // 5 % loss: some were sent again.
        assert!(total > 0, "{proto}: no retransmits counted: {s}");
        let per_interval: u64 = doc["intervals"]
            .as_array()
            .expect("intervals")
            .iter()
            .map(|i| i["retransmits"].as_u64().expect("a count per interval"))
            .sum();
        assert_eq!(per_interval, total, "{proto}: {doc}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
