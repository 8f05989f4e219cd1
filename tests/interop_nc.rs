//! Interop with a client we did not write: netcat-openbsd (`nc`) speaks
//! hello to a real `mioperf serve` over TCP and UDP.
//!
//! Without `nc` these tests skip with a note on standard error, except under
//! CI (`CI` set), where a missing `nc` is a failure: `.ci/run` installs it.

#![allow(
    clippy::disallowed_methods,
    reason = "tests measure real time against real processes"
)]

mod common;

use common::{Server, parse_ok, run_command, udp_text};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Whether netcat-openbsd is installed (another netcat lacks `-N` and
/// `-W`); fails under CI when it is not.
fn have_nc(test: &str) -> bool {
    let help = Command::new("nc")
        .arg("-h")
        .stdin(Stdio::null())
        .output()
        .map(|out| {
            let mut text = out.stdout;
            text.extend_from_slice(&out.stderr);
            String::from_utf8_lossy(&text).into_owned()
        });
    let found = help.as_ref().is_ok_and(|h| h.contains("OpenBSD netcat"));
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: netcat-openbsd (`nc`) is not installed ({help:?}), and CI is set: \
             the CI script must install it"
        );
        // Straight to the process's stderr, past the test harness's capture.
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped: nc not installed (apt-get install netcat-openbsd)"
        );
    }
    found
}

/// Runs `printf INPUT | nc ARGS...` (bounded) and returns its stdout.
fn nc(input: &str, args: &[&str]) -> String {
    let out = run_command(
        Command::new("sh")
            .args([
                "-c",
                "input=$1; shift; printf '%s' \"$input\" | nc \"$@\"",
                "sh",
                input,
            ])
            .args(args),
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "nc {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("nc output is UTF-8")
}

#[test]
fn nc_tcp_hello() {
    if !have_nc("nc_tcp_hello") {
        return;
    }
    let server = Server::hello(&[]);
    let port = server.tcp("hello").port().to_string();
    // -N: shut down the write side at EOF on stdin; the server answers,
    // sees our EOF, and closes, which ends nc.
    let answer = nc("HELLO 77\n", &["-N", "127.0.0.1", &port]);
    let line = answer
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("TCP answer not one line: {answer:?}"));
    let (id, ip, client_port) = parse_ok(line);
    assert_eq!((id.as_str(), ip.as_str()), ("77", "127.0.0.1"));
    assert_ne!(client_port, 0);

    // Two requests on one connection, CRLF on the second.
    let answer = nc("HELLO 79\nHELLO 77\r\n", &["-N", "127.0.0.1", &port]);
    let lines: Vec<&str> = answer.lines().collect();
    assert_eq!(lines.len(), 2, "{answer:?}");
    assert!(lines[0].starts_with("OK 79 127.0.0.1 "), "{answer:?}");
    assert_eq!(lines[1], "RESET 77");
}

#[test]
fn nc_udp_hello() {
    if !have_nc("nc_udp_hello") {
        return;
    }
    let server = Server::hello(&[]);
    let udp = server.udp("hello");
    let port = udp.port().to_string();
    // -W1: quit after one datagram in; -w2 bounds the wait if none comes.
    let answer = nc("HELLO 78", &["-u", "-W1", "-w2", "127.0.0.1", &port]);
    let (id, ip, client_port) = parse_ok(&answer);
    assert_eq!((id.as_str(), ip.as_str()), ("78", "127.0.0.1"));
    assert_ne!(client_port, 0);
    assert!(!answer.ends_with('\n'), "UDP answers carry no newline");

    // The registration nc made is visible to everyone.
    assert_eq!(udp_text(udp, b"HELLO 78"), "RESET 78");
    // And a trailing newline from nc's side is ignored.
    let answer = nc("HELLO 80\n", &["-u", "-W1", "-w2", "127.0.0.1", &port]);
    assert!(answer.starts_with("OK 80 127.0.0.1 "), "{answer:?}");
}
