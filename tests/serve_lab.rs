//! The lab protocol against the real binary, over TCP and UDP: every
//! request form of the spec, the exact error lines, count capping, TCP
//! close after a file or stream, echo keeping TCP open, and a slow reader
//! that must not hold anyone else up.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;
mod timeouts;

use common::{Server, bin, run_with_timeout, tcp_connect, udp_socket};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn lab(extra: &[&str]) -> Server {
    let mut args = vec!["--only", "lab", "--listen", "lab=127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::spawn(&args)
}

/// Reads exactly `n` bytes (bounded in time).
fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.read_exact(&mut buf).unwrap();
    buf
}

/// Reads until EOF (bounded in time).
fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    out
}

fn header(segment: &[u8]) -> (u64, u64) {
    let seq = u64::from_be_bytes(segment[0..8].try_into().unwrap());
    let sched = u64::from_be_bytes(segment[8..16].try_into().unwrap());
    (seq, sched)
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "a test pattern: the low byte is the point"
)]
fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len)
        .map(|i| b'A' + (i % 26) as u8)
        .collect()
}

fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    let n = socket.recv(&mut buf).expect("a datagram");
    buf.truncate(n);
    buf
}

#[test]
fn tcp_echo_keeps_the_connection_open() {
    let server = lab(&[]);
    let mut s = tcp_connect(server.tcp("lab"));
    s.write_all(b"hello lab\n").unwrap();
    assert_eq!(read_exact(&mut s, 10), b"hello lab\n");
    s.write_all(b"with cr\r\n+5\n").unwrap();
    assert_eq!(read_exact(&mut s, 12), b"with cr\r\n+5\n");
}

#[test]
fn tcp_file_is_ready_then_exactly_n_bytes_then_eof() {
    let server = lab(&[]);
    let mut s = tcp_connect(server.tcp("lab"));
    s.write_all(b"100000\n").unwrap();
    let all = read_to_eof(&mut s);
    assert!(all.starts_with(b"READY 100000\n"));
    assert_eq!(&all[13..], pattern(0, 100_000).as_slice());
}

#[test]
fn tcp_error_lines_are_exact_and_the_connection_stays() {
    let server = lab(&["--file-max", "1000"]);
    let mut s = tcp_connect(server.tcp("lab"));
    s.write_all(b"1001\nstream-1-2\nstream-1-0-16\nstream-NaN-1-16\nstream-1-1-8\n0\n")
        .unwrap();
    let expected = "ERROR file too large: limit 1000\n\
                    ERROR bad stream request: expected stream-<interval_ms>-<count>-<size>\n\
                    ERROR bad stream request: count must be a decimal of at least 1\n\
                    ERROR bad stream request: interval_ms must be a decimal from 0 to 3600000\n\
                    ERROR bad stream request: size must be a decimal of at least 16\n\
                    ERROR bad file request: size must be at least 1\n";
    assert_eq!(
        String::from_utf8(read_exact(&mut s, expected.len())).unwrap(),
        expected
    );
    s.write_all(b"still here\n").unwrap();
    assert_eq!(read_exact(&mut s, 11), b"still here\n");
}

#[test]
fn default_file_limit_is_the_spec_line() {
    let server = lab(&[]);
    let mut s = tcp_connect(server.tcp("lab"));
    s.write_all(b"123456790\n").unwrap();
    let line = "ERROR file too large: limit 123456789\n";
    assert_eq!(read_exact(&mut s, line.len()), line.as_bytes());
    let u = udp_socket();
    u.send_to(b"123456790", server.udp("lab")).unwrap();
    assert_eq!(recv(&u), line.trim_end().as_bytes());
}

#[test]
fn tcp_stream_segments_have_exact_stamps_then_eof() {
    let server = lab(&[]);
    let mut s = tcp_connect(server.tcp("lab"));
    let started = Instant::now();
    s.write_all(b"stream-2-5-20\n").unwrap();
    let all = read_to_eof(&mut s);
    assert_eq!(all.len(), 100);
    let stamps: Vec<_> = all.chunks(20).map(header).collect();
    let want: Vec<_> = (0..5).map(|i| (i, i * 2_000_000)).collect();
    assert_eq!(stamps, want);
    assert!(all.chunks(20).all(|seg| seg[16..].iter().all(|&b| b == 0)));
    // Four intervals of 2 ms must have passed: the server paced it.
    assert!(started.elapsed() >= Duration::from_millis(8));
}

#[test]
fn stream_count_is_capped_at_stream_max_count() {
    let server = lab(&["--stream-max-count", "3"]);
    let mut s = tcp_connect(server.tcp("lab"));
    s.write_all(b"stream-0-100000-16\n").unwrap();
    assert_eq!(read_to_eof(&mut s).len(), 48);
    let u = udp_socket();
    u.send_to(b"stream-0-100000-16", server.udp("lab")).unwrap();
    for seq in 0..3 {
        assert_eq!(header(&recv(&u)).0, seq);
    }
    u.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        u.recv(&mut [0u8; 64]).is_err(),
        "nothing after the last segment"
    );
}

#[test]
fn udp_echo_file_and_stream() {
    let server = lab(&[]);
    let to = server.udp("lab");
    let u = udp_socket();
    u.send_to(b"echo me\n", to).unwrap();
    assert_eq!(recv(&u), b"echo me\n", "the datagram unchanged");

    u.send_to(b"3000", to).unwrap();
    assert_eq!(recv(&u), b"READY 3000");
    let mut data = Vec::new();
    for _ in 0..3 {
        data.extend(recv(&u));
    }
    assert_eq!(data, pattern(0, 3000));
    assert_eq!(recv(&u), b"DONE 3000");

    u.send_to(b"stream-0.5-4-64", to).unwrap();
    for i in 0..4 {
        let d = recv(&u);
        assert_eq!(d.len(), 64);
        assert_eq!(header(&d), (i, i * 500_000));
    }
    u.send_to(b"stream-1-2-65508", to).unwrap();
    assert_eq!(
        recv(&u),
        b"ERROR bad stream request: size must be 16..=65507 over UDP"
    );
}

#[test]
fn udp_empty_datagram_is_ignored() {
    let server = lab(&[]);
    let u = udp_socket();
    u.send_to(b"", server.udp("lab")).unwrap();
    u.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(u.recv(&mut [0u8; 64]).is_err());
    u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    u.send_to(b"x", server.udp("lab")).unwrap();
    assert_eq!(recv(&u), b"x");
}

#[test]
fn udp_second_transfer_from_the_same_address_is_busy() {
    let server = lab(&[]);
    let u = udp_socket();
    u.send_to(b"stream-20-5-32", server.udp("lab")).unwrap();
    assert_eq!(header(&recv(&u)).0, 0);
    u.send_to(b"stream-1-1-16", server.udp("lab")).unwrap();
    assert_eq!(
        recv(&u),
        b"ERROR busy: a transfer to this address is running"
    );
}

/// A client that never reads a 50 MB file must not slow anyone else down.
#[test]
fn slow_reader_does_not_stall_other_clients() {
    let server = lab(&[]);
    let mut slow = tcp_connect(server.tcp("lab"));
    slow.write_all(b"50000000\n").unwrap();
    std::thread::sleep(Duration::from_millis(200)); // let its buffers fill
    for i in 0..20 {
        let t0 = Instant::now();
        let mut fast = tcp_connect(server.tcp("lab"));
        fast.write_all(format!("ping {i}\n").as_bytes()).unwrap();
        assert_eq!(
            read_exact(&mut fast, 6 + i.to_string().len()),
            format!("ping {i}\n").as_bytes()
        );
        let u = udp_socket();
        u.send_to(b"pong", server.udp("lab")).unwrap();
        assert_eq!(recv(&u), b"pong");
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "answered in {:?}",
            t0.elapsed()
        );
    }
    // And the slow reader still gets every byte.
    let all = read_to_eof(&mut slow);
    assert_eq!(all.len(), 15 + 50_000_000);
    assert!(
        all[15..]
            .iter()
            .zip((b'A'..=b'Z').cycle())
            .all(|(&b, want)| b == want)
    );
}

/// A TCP client that leaves mid-stream: the server notices and goes on.
#[test]
fn client_leaving_mid_stream_is_harmless() {
    let server = lab(&[]);
    let mut s = tcp_connect(server.tcp("lab"));
    s.write_all(b"stream-1-10000-1000\n").unwrap();
    read_exact(&mut s, 1000);
    drop(s);
    std::thread::sleep(Duration::from_millis(100));
    let mut t = tcp_connect(server.tcp("lab"));
    t.write_all(b"alive?\n").unwrap();
    assert_eq!(read_exact(&mut t, 7), b"alive?\n");
}

fn lab_client(addr: SocketAddr, args: &[&str]) -> (i32, serde_json::Value) {
    let port = addr.port().to_string();
    let mut all = vec!["lab", "127.0.0.1", port.as_str()];
    all.extend_from_slice(args);
    all.push("--json");
    let out = run_with_timeout(&all, Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout:?} {:?}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

#[test]
fn the_lab_client_over_tcp_and_udp() {
    let server = lab(&[]);
    let (rc, j) = lab_client(server.tcp("lab"), &["hello"]);
    assert_eq!((rc, j["outcome"].as_str()), (0, Some("ok")));
    assert_eq!(j["echo"]["matched"], true);

    let (rc, j) = lab_client(server.tcp("lab"), &["1000000"]);
    assert_eq!(
        (rc, j["bytes"].as_u64(), j["file"]["pattern_ok"].as_bool()),
        (0, Some(1_000_000), Some(true))
    );

    let (rc, j) = lab_client(server.udp("lab"), &["--udp", "100000"]);
    assert_eq!(rc, 0, "{j}");
    assert_eq!(j["bytes"].as_u64(), Some(100_000));

    let (rc, j) = lab_client(server.udp("lab"), &["--udp", "stream-1-50-64"]);
    assert_eq!(rc, 0, "{j}");
    let st = &j["stream"]["stats"];
    assert_eq!(
        (st["unique"].as_u64(), st["lost"].as_u64()),
        (Some(50), Some(0))
    );
    assert_eq!(j["stream"]["kernel_timestamps"], true);
    assert!(st["schedule_error_ns"]["p50"].as_u64().is_some());
    // No NaN or infinity can reach the JSON: every rate is a number or null.
    assert!(st["segments_per_second"].is_number());

    let (rc, j) = lab_client(server.tcp("lab"), &["stream-0-20-16"]);
    assert_eq!((rc, j["stream"]["stats"]["unique"].as_u64()), (0, Some(20)));

    let (rc, j) = lab_client(server.tcp("lab"), &["999999999"]);
    assert_eq!((rc, j["outcome"].as_str()), (1, Some("refused")));
}

#[test]
fn the_lab_client_reports_failures_with_exit_2() {
    // Nothing listens on the port of a socket we just closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let out = run_with_timeout(&["lab", "127.0.0.1", &port, "x"], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    let silent = udp_socket();
    let port = silent.local_addr().unwrap().port().to_string();
    let out = run_with_timeout(
        &[
            "lab",
            "127.0.0.1",
            &port,
            "--udp",
            "--timeout",
            "200ms",
            "x",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    let _ = bin();
}

#[test]
fn a_tcp_connection_that_never_sends_a_byte_is_closed_after_the_idle_timeout() {
    let server = lab(&timeouts::SHORT_IDLE);
    let closed = timeouts::silent(server.tcp("lab"));
    timeouts::assert_closed_between(&closed, Duration::from_millis(290), Duration::from_secs(3));
    assert!(closed.received.is_empty(), "{closed:?}");
}

#[test]
fn a_slowloris_echo_line_is_closed_at_the_request_timeout() {
    let server = lab(&timeouts::SHORT_IDLE);
    let line = b"an echo line sent one byte every 100 ms, never ending";
    let closed = timeouts::slowloris(server.tcp("lab"), line, Duration::from_millis(100));
    timeouts::assert_closed_between(&closed, Duration::from_millis(900), Duration::from_secs(3));
    assert!(closed.sent < line.len(), "{closed:?}");
    assert!(closed.received.is_empty(), "{closed:?}");
}

#[test]
fn a_tcp_stream_slower_than_the_idle_timeout_runs_to_its_end() {
    // The server waiting for its own schedule is not the client idling.
    let server = lab(&timeouts::SHORT_IDLE);
    let mut s = tcp_connect(server.tcp("lab"));
    s.write_all(b"stream-500-3-16\n").unwrap();
    let got = read_exact(&mut s, 48);
    assert_eq!(got.len(), 48);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "EOF after the stream");
}

#[test]
fn an_echo_larger_than_a_datagram_is_refused_at_once_with_exit_2() {
    // Nobody needs to listen: the request is refused before anything is sent.
    let silent = udp_socket();
    let port = silent.local_addr().unwrap().port().to_string();
    let big = "a".repeat(65_508);
    let started = Instant::now();
    let out = run_with_timeout(
        &["lab", "127.0.0.1", &port, "--udp", "--timeout", "2s", &big],
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused up front, not at the timeout"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("65508 bytes") && stderr.contains("65507"),
        "{stderr}"
    );
    // The largest datagram still goes (and times out against a silent peer).
    let fits = "a".repeat(65_507);
    let out = run_with_timeout(
        &[
            "lab",
            "127.0.0.1",
            &port,
            "--udp",
            "--timeout",
            "300ms",
            &fits,
        ],
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no answer"), "{stderr}");
}
