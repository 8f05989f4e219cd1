//! msg against the real binary: frames of 0 B, 1 B, 64 KiB and 10 MiB, a
//! frame written one byte at a time, several frames per connection, an
//! oversize length, and the `mioperf msg` client.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;
mod timeouts;

use common::{Server, run_with_timeout, tcp_connect, temp_path};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

fn msg(extra: &[&str]) -> Server {
    let mut args = vec!["--only", "msg", "--listen", "msg=127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::spawn(&args)
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// Reads one answer frame and returns its payload as text.
fn answer(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut payload).unwrap();
    String::from_utf8(payload).unwrap()
}

fn connect(server: &Server) -> TcpStream {
    tcp_connect(server.tcp("msg"))
}

#[test]
fn receipts_for_frames_of_every_size_on_one_connection() {
    let server = msg(&[]);
    assert!(
        server.listeners().keys().all(|(_, t)| t == "tcp"),
        "msg is TCP only"
    );
    let mut s = connect(&server);
    for len in [0usize, 1, 65_536, 10 << 20] {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "a test pattern: the low byte is the point"
        )]
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        s.write_all(&frame(&payload)).unwrap();
        assert_eq!(answer(&mut s), format!("OK {len}"));
    }
}

#[test]
fn pipelined_frames_are_answered_in_order() {
    let server = msg(&[]);
    let mut s = connect(&server);
    let mut wire = Vec::new();
    for len in 0..50usize {
        wire.extend(frame(&vec![b'x'; len]));
    }
    s.write_all(&wire).unwrap();
    for len in 0..50 {
        assert_eq!(answer(&mut s), format!("OK {len}"));
    }
}

#[test]
fn a_frame_written_one_byte_at_a_time() {
    let server = msg(&[]);
    let mut s = connect(&server);
    s.set_nodelay(true).unwrap();
    for b in frame(b"slowly, slowly") {
        s.write_all(&[b]).unwrap();
        s.flush().unwrap();
    }
    assert_eq!(answer(&mut s), "OK 14");
}

#[test]
fn an_oversize_length_is_refused_and_the_connection_closes() {
    let server = msg(&["--msg-max", "1000"]);
    let mut s = connect(&server);
    s.write_all(&1001u32.to_be_bytes()).unwrap();
    assert_eq!(answer(&mut s), "ERR too large 1000");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "closed after the refusal");
    // The default limit is the spec's 64 MiB.
    let server = msg(&[]);
    let mut s = connect(&server);
    s.write_all(&(64u32 << 20).wrapping_add(1).to_be_bytes())
        .unwrap();
    assert_eq!(answer(&mut s), "ERR too large 67108864");
}

fn client(addr: SocketAddr, file: &str, json: bool) -> std::process::Output {
    let port = addr.port().to_string();
    let mut args = vec!["msg", "127.0.0.1", port.as_str(), file];
    if json {
        args.push("--json");
    }
    run_with_timeout(&args, Duration::from_secs(20))
}

#[test]
fn the_msg_client_sends_a_file_and_reports_the_receipt() {
    let server = msg(&[]);
    let path = temp_path("msg-client.bin");
    std::fs::write(&path, vec![7u8; 3 << 20]).unwrap();
    let out = client(server.tcp("msg"), path.to_str().unwrap(), true);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (j["outcome"].as_str(), j["bytes"].as_u64()),
        (Some("ok"), Some(3 << 20))
    );
}

#[test]
fn the_msg_client_reads_stdin_and_exits_1_when_refused() {
    let server = msg(&["--msg-max", "10"]);
    let port = server.tcp("msg").port().to_string();
    let mut child = Command::new(common::bin())
        .args(["msg", "127.0.0.1", &port, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"more than ten bytes")
        .unwrap();
    let out = common::wait_child(&mut child, Duration::from_secs(10)).expect("client exits");
    assert_eq!(out.code(), Some(1));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(stdout.trim(), "ERR too large 10");
}

#[test]
fn the_msg_client_fails_with_exit_2_on_a_missing_file() {
    let server = msg(&[]);
    let out = client(server.tcp("msg"), "/nonexistent/file", false);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_msg_client_repeats_a_frame_and_counts_every_receipt() {
    let server = msg(&[]);
    let path = temp_path("msg-repeat.bin");
    std::fs::write(&path, [1u8; 64]).unwrap();
    let port = server.tcp("msg").port().to_string();
    let out = run_with_timeout(
        &[
            "msg",
            "127.0.0.1",
            &port,
            path.to_str().unwrap(),
            "--count",
            "50000",
            "--json",
        ],
        Duration::from_secs(20),
    );
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (j["msg"]["frames"].as_u64(), j["bytes"].as_u64()),
        (Some(50_000), Some(64 * 50_000))
    );
    assert!(j["msg"]["frames_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_connection_that_never_sends_a_byte_is_closed_after_the_idle_timeout() {
    let server = msg(&timeouts::SHORT_IDLE);
    let closed = timeouts::silent(server.tcp("msg"));
    timeouts::assert_closed_between(&closed, Duration::from_millis(290), Duration::from_secs(3));
    assert!(closed.received.is_empty(), "{closed:?}");
}

#[test]
fn a_slowloris_frame_header_is_closed_at_the_request_timeout() {
    // A header is only 4 bytes: three of them, 100 ms apart, then nothing.
    // The idle limit (5 s) is far; the request limit (1 s) closes it.
    let server = msg(&["--tcp-idle-timeout", "5s", "--tcp-request-timeout", "1s"]);
    let closed = timeouts::slowloris(server.tcp("msg"), &[0, 0, 1], Duration::from_millis(100));
    timeouts::assert_closed_between(&closed, Duration::from_millis(900), Duration::from_secs(3));
    assert!(closed.received.is_empty(), "{closed:?}");
}
