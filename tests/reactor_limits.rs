//! The reactor at the edge of its descriptors, as a real process: a
//! listener that met `EMFILE` must accept its queued connections once
//! descriptors are free again, with no new connection to wake it
//! (issue 11, defect 3); and one protocol flooded with idle connections
//! must leave the others their descriptors (defect 4).
//!
//! The descriptor limit is set with `prlimit(1)`: at start-up
//! (`prlimit --nofile=N mioperf serve`, which the budget reads) or on the
//! running server (`prlimit --pid`, which the budget cannot foresee: the
//! way to make `accept` itself fail). Tests are skipped, saying why, where
//! `prlimit` is missing.

#![allow(
    clippy::disallowed_methods,
    reason = "tests measure real time and pace real sockets against a real process"
)]

mod common;

use common::{Server, TCP_READ_TIMEOUT, tcp_connect};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a request may wait before it counts as "not accepted".
const UNANSWERED: Duration = Duration::from_millis(400);

fn have_prlimit() -> bool {
    let ok = Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: prlimit(1) not found");
    }
    ok
}

/// Sets the running process's descriptor limit (soft and hard).
fn set_nofile(pid: u32, limit: usize) {
    let status = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit --pid {pid}: {status}");
}

/// Descriptors the process holds now.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// Sends `HELLO id` on `stream` (which may not be accepted yet: the bytes
/// wait in the kernel either way).
fn send_hello(stream: &mut TcpStream, id: u32) {
    stream
        .write_all(format!("HELLO {id}\n").as_bytes())
        .expect("write HELLO");
}

/// The answer line on `stream` within `limit`, or `None`.
fn answer_within(stream: &TcpStream, limit: Duration) -> Option<String> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut line = String::new();
    let got = BufReader::new(stream).read_line(&mut line);
    stream.set_read_timeout(Some(TCP_READ_TIMEOUT)).unwrap();
    match got {
        Ok(n) if n > 0 => Some(line.trim_end().to_owned()),
        _ => None,
    }
}

/// Defect 3. The server's limit is lowered to a few descriptors above what
/// it holds; connections are opened until one is not answered (its accept
/// failed with EMFILE), two more are queued behind it, then the accepted
/// ones are closed. The queued ones must be answered with no new
/// connection arriving: on main the listener's one readiness edge was
/// spent on the failed accept, and nothing ever retried it.
#[test]
fn queued_connections_are_accepted_after_emfile_without_a_new_arrival() {
    if !have_prlimit() {
        return;
    }
    let mut server = Server::hello(&[]);
    let addr = server.tcp("hello");
    let pid = server.pid();
    let spare = 3;
    set_nofile(pid, open_fds(pid) + spare);

    // Fill the descriptors; bounded: the limit leaves `spare` of them.
    let mut accepted = Vec::new();
    let mut queued = Vec::new();
    for id in 1..=spare as u32 + 2 {
        let mut stream = tcp_connect(addr);
        send_hello(&mut stream, id);
        match answer_within(&stream, UNANSWERED) {
            Some(answer) => {
                assert!(answer.starts_with(&format!("OK {id} ")), "{answer:?}");
                accepted.push(stream);
            }
            None => {
                queued.push((id, stream));
                break;
            }
        }
    }
    assert!(
        !queued.is_empty(),
        "every connection was accepted: the limit did not bite"
    );
    for id in 100..102 {
        let mut stream = tcp_connect(addr);
        send_hello(&mut stream, id);
        queued.push((id, stream));
    }
    for (_, stream) in &queued {
        assert_eq!(answer_within(stream, Duration::from_millis(100)), None);
    }

    // Free the descriptors; from here on no connection is opened.
    drop(accepted);
    let deadline = Instant::now() + Duration::from_secs(4);
    for (id, stream) in &queued {
        let left = deadline.saturating_duration_since(Instant::now());
        let answer = answer_within(stream, left.max(Duration::from_millis(1)));
        assert!(
            answer
                .as_deref()
                .is_some_and(|a| a.starts_with(&format!("OK {id} "))),
            "queued connection {id} not served after descriptors were freed: {answer:?}\n\
             stderr:\n{}",
            server.stderr()
        );
    }
    server.assert_running();
}
