//! `mioperf serve` as a real process, spoken to with std sockets: the hello
//! wire contract (`shared/spec/protocols.md`, "hello"), the serve command
//! line, signals, idle exit, and the reactor under misbehaving clients.

#![allow(
    clippy::disallowed_methods,
    reason = "tests measure real time and pace real sockets against a real process"
)]

mod common;
mod timeouts;

use common::{
    Server, TempFile, assert_closed, parse_ok, run, run_with_timeout, tcp_connect, tcp_exchange,
    tcp_exchange_lines, tcp_read_lines, tcp_read_to_eof, udp_exchange_on, udp_socket, udp_text,
    udp_text_on,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// A tiny deterministic generator for "random" IDs (no extra crate).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ---------------------------------------------------------------- UDP wire

#[test]
fn udp_ok_names_the_clients_real_address() {
    let server = Server::hello(&[]);
    let socket = udp_socket();
    let me = socket.local_addr().unwrap();
    let answer = udp_text_on(&socket, server.udp("hello"), b"HELLO 0042");
    assert_eq!(answer, format!("OK 0042 127.0.0.1 {}", me.port()));
    let (id, ip, port) = parse_ok(&answer);
    assert_eq!(
        (id.as_str(), ip.as_str(), port),
        ("0042", "127.0.0.1", me.port())
    );
}

#[test]
fn udp_second_registration_is_reset_echoing_the_id_as_written() {
    let server = Server::hello(&[]);
    let udp = server.udp("hello");
    assert!(udp_text(udp, b"HELLO 0042").starts_with("OK 0042 127.0.0.1 "));
    // Numerically the same ID, written differently, from other sockets.
    assert_eq!(udp_text(udp, b"HELLO 42"), "RESET 42");
    assert_eq!(udp_text(udp, b"HELLO 042"), "RESET 042");
    assert_eq!(udp_text(udp, b"HELLO 0042"), "RESET 0042");
    // A different ID is unaffected.
    assert!(udp_text(udp, b"HELLO 43").starts_with("OK 43 "));
}

#[test]
fn udp_trailing_newline_or_crlf_is_ignored_and_answers_have_none() {
    let server = Server::hello(&[]);
    let socket = udp_socket();
    let port = socket.local_addr().unwrap().port();
    let udp = server.udp("hello");
    assert_eq!(
        udp_exchange_on(&socket, udp, b"HELLO 1\n"),
        format!("OK 1 127.0.0.1 {port}").into_bytes()
    );
    assert_eq!(
        udp_exchange_on(&socket, udp, b"HELLO 2\r\n"),
        format!("OK 2 127.0.0.1 {port}").into_bytes()
    );
    assert_eq!(udp_exchange_on(&socket, udp, b"HELLO 1\r\n"), b"RESET 1");
    assert_eq!(udp_exchange_on(&socket, udp, b"HELLO 2\n"), b"RESET 2");
}

#[test]
fn udp_errors_name_the_reason() {
    let server = Server::hello(&[]);
    let socket = udp_socket();
    let udp = server.udp("hello");
    let cases: &[(&[u8], &str)] = &[
        (b"HELLO x", "ERROR bad id"),
        (b"HELLO 12345", "ERROR bad id"),
        (b"HELLO -1", "ERROR bad id"),
        (b"HELLO", "ERROR bad id"),
        (b"GET 1", "ERROR unknown verb"),
        (b"hello 1", "ERROR unknown verb"),
        (b"garbage", "ERROR unknown verb"),
        (b"\x00\xff\xfe\x01", "ERROR unknown verb"),
        (&[b'A'; 300], "ERROR line too long"),
        (&[b'1'; 1_000], "ERROR line too long"),
    ];
    for (request, expected) in cases {
        assert_eq!(
            udp_text_on(&socket, udp, request),
            *expected,
            "request {:?}",
            String::from_utf8_lossy(request)
        );
    }
    // None of that registered anything, and the socket still serves.
    assert!(udp_text_on(&socket, udp, b"HELLO 1").starts_with("OK 1 "));
}

// ------------------------------------------------------- one registry

#[test]
fn registry_is_shared_between_udp_and_tcp() {
    let server = Server::hello(&[]);
    let (tcp, udp) = (server.tcp("hello"), server.udp("hello"));

    assert!(udp_text(udp, b"HELLO 100").starts_with("OK 100 "));
    let mut stream = tcp_connect(tcp);
    stream.write_all(b"HELLO 100\n").unwrap();
    let read = tcp_read_lines(&mut stream, 1);
    assert_eq!(read.text, "RESET 100\n");
    assert_closed(&mut stream);

    let mut stream = tcp_connect(tcp);
    let port = stream.local_addr().unwrap().port();
    stream.write_all(b"HELLO 0101\n").unwrap();
    assert_eq!(
        tcp_read_lines(&mut stream, 1).text,
        format!("OK 0101 127.0.0.1 {port}\n")
    );
    assert_eq!(udp_text(udp, b"HELLO 101"), "RESET 101");
}

// ---------------------------------------------------------------- TCP wire

#[test]
fn tcp_several_requests_on_one_connection() {
    let server = Server::hello(&[]);
    let mut stream = tcp_connect(server.tcp("hello"));
    let port = stream.local_addr().unwrap().port();

    // One at a time.
    for id in ["1", "0002", "3"] {
        stream
            .write_all(format!("HELLO {id}\n").as_bytes())
            .unwrap();
        let read = tcp_read_lines(&mut stream, 1);
        assert_eq!(read.text, format!("OK {id} 127.0.0.1 {port}\n"));
    }
    // Pipelined in one write, with a CRLF among them.
    stream.write_all(b"HELLO 4\nHELLO 5\r\nHELLO 6\n").unwrap();
    let read = tcp_read_lines(&mut stream, 3);
    assert_eq!(
        read.text,
        format!("OK 4 127.0.0.1 {port}\nOK 5 127.0.0.1 {port}\nOK 6 127.0.0.1 {port}\n")
    );
    assert!(!read.eof);

    // Our EOF ends it quietly: the server closes too, with nothing more.
    stream.shutdown(Shutdown::Write).unwrap();
    assert_closed(&mut stream);
}

#[test]
fn tcp_reset_closes_that_connection_and_others_keep_working() {
    let server = Server::hello(&[]);
    let tcp = server.tcp("hello");
    let mut owner = tcp_connect(tcp);
    owner.write_all(b"HELLO 7\n").unwrap();
    assert!(tcp_read_lines(&mut owner, 1).text.starts_with("OK 7 "));

    let mut intruder = tcp_connect(tcp);
    // What follows the refused line is ignored.
    intruder.write_all(b"HELLO 0007\nHELLO 8\n").unwrap();
    let read = tcp_read_to_eof(&mut intruder);
    assert_eq!(read.text, "RESET 0007\n");
    assert!(read.eof, "the server must close after RESET");

    // The first connection is still served, and 8 was never registered.
    owner.write_all(b"HELLO 8\n").unwrap();
    assert!(tcp_read_lines(&mut owner, 1).text.starts_with("OK 8 "));
    // And so are new ones.
    assert!(tcp_exchange(tcp, b"HELLO 9\n").starts_with("OK 9 127.0.0.1 "));
}

#[test]
fn tcp_error_answers_then_closes() {
    let server = Server::hello(&[]);
    let tcp = server.tcp("hello");
    for (request, expected) in [
        (&b"FOO 1\n"[..], "ERROR unknown verb\n"),
        (b"HELLO x\n", "ERROR bad id\n"),
        (b"HELLO 99999\r\n", "ERROR bad id\n"),
        (b"\n", "ERROR unknown verb\n"),
    ] {
        let mut stream = tcp_connect(tcp);
        stream.write_all(request).unwrap();
        let read = tcp_read_to_eof(&mut stream);
        assert_eq!(read.text, expected, "request {request:?}");
        assert!(read.eof, "no close after {expected:?}");
    }
    // A good request before the bad one is answered first.
    let mut stream = tcp_connect(tcp);
    stream.write_all(b"HELLO 5\nBAD\nHELLO 6\n").unwrap();
    let read = tcp_read_to_eof(&mut stream);
    assert!(read.eof);
    let lines: Vec<&str> = read.text.lines().collect();
    assert_eq!(lines.len(), 2, "{:?}", read.text);
    assert!(lines[0].starts_with("OK 5 "));
    assert_eq!(lines[1], "ERROR unknown verb");
    assert_eq!(
        udp_text(server.udp("hello"), b"HELLO 6").split(' ').next(),
        Some("OK")
    );
}

#[test]
fn tcp_256_bytes_without_newline_is_too_long() {
    let server = Server::hello(&[]);
    let tcp = server.tcp("hello");
    let mut stream = tcp_connect(tcp);
    stream.write_all(&[b'x'; 256]).unwrap();
    let read = tcp_read_to_eof(&mut stream);
    assert_eq!(read.text, "ERROR line too long\n");
    assert!(read.eof);

    // 255 bytes with no newline yet is not an error (yet): nothing comes back.
    let mut stream = tcp_connect(tcp);
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream.write_all(&[b'1'; 255]).unwrap();
    let mut buf = [0u8; 64];
    let err = stream
        .read(&mut buf)
        .expect_err("no answer to a partial line");
    assert!(matches!(
        err.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut
    ));
    // The 256th byte tips it over.
    stream.write_all(b"1").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let read = tcp_read_to_eof(&mut stream);
    assert_eq!(read.text, "ERROR line too long\n");
    assert!(read.eof);
}

#[test]
fn tcp_request_in_one_byte_writes_is_answered() {
    let server = Server::hello(&[]);
    let mut stream = tcp_connect(server.tcp("hello"));
    let port = stream.local_addr().unwrap().port();
    for byte in b"HELLO 1234\r\n" {
        stream.write_all(&[*byte]).unwrap();
        stream.flush().unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        tcp_read_lines(&mut stream, 1).text,
        format!("OK 1234 127.0.0.1 {port}\n")
    );
}

#[test]
fn tcp_binary_garbage_gets_an_error() {
    let server = Server::hello(&[]);
    let tcp = server.tcp("hello");
    let mut junk: Vec<u8> = (0u8..=255).rev().collect();
    junk.retain(|&b| b != b'\n');
    junk.truncate(100);
    junk.push(b'\n');
    let mut stream = tcp_connect(tcp);
    stream.write_all(&junk).unwrap();
    let read = tcp_read_to_eof(&mut stream);
    assert_eq!(read.text, "ERROR unknown verb\n");
    assert!(read.eof);
    assert!(tcp_exchange_lines(tcp, b"HELLO 1\n", 1).starts_with("OK 1 "));
}

// ---------------------------------------------------------------- expiry

#[test]
fn id_expires_after_ttl_and_not_before() {
    let ttl = Duration::from_millis(300);
    let server = Server::hello(&["--id-ttl", "300ms"]);
    let udp = server.udp("hello");
    let socket = udp_socket();

    let t0 = Instant::now();
    assert!(udp_text_on(&socket, udp, b"HELLO 0042").starts_with("OK 0042 "));
    let mut resets = 0;
    let deadline = t0 + Duration::from_secs(3);
    // Bounded: at most ~3 s / 20 ms polls, and the deadline.
    let ok_at = loop {
        assert!(Instant::now() < deadline, "ID 42 did not expire within 3 s");
        let answer = udp_text_on(&socket, udp, b"HELLO 42");
        let received = t0.elapsed();
        match answer.split(' ').next() {
            Some("RESET") => {
                assert_eq!(answer, "RESET 42");
                resets += 1;
            }
            Some("OK") => {
                // Registered at or after t0, so it cannot expire before t0 + ttl.
                assert!(
                    received + Duration::from_millis(50) >= ttl,
                    "expired early: OK after {received:?} with a 300ms TTL"
                );
                break received;
            }
            _ => panic!("unexpected answer {answer:?}"),
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(
        resets > 0,
        "never saw RESET before the expiry (OK at {ok_at:?})"
    );

    // Re-registered now: RESET again, over TCP too.
    assert_eq!(
        tcp_exchange(server.tcp("hello"), b"HELLO 42\n"),
        "RESET 42\n"
    );
}

/// With room for one ID, a *different* ID can only get in once the
/// reactor's deadline has expired the first: nothing else frees the slot.
fn expiry_frees_capacity(timer: &str) {
    let server = Server::hello(&["--id-ttl", "200ms", "--max-ids", "1", "--timer", timer]);
    let udp = server.udp("hello");
    let t0 = Instant::now();
    assert!(udp_text(udp, b"HELLO 1").starts_with("OK 1 "));
    assert_eq!(udp_text(udp, b"HELLO 2"), "ERROR busy");
    let deadline = t0 + Duration::from_secs(3);
    loop {
        assert!(Instant::now() < deadline, "ID 1 never expired");
        thread::sleep(Duration::from_millis(20));
        let answer = udp_text(udp, b"HELLO 2");
        if answer.starts_with("OK 2 ") {
            assert!(t0.elapsed() >= Duration::from_millis(150), "expired early");
            break;
        }
        assert_eq!(answer, "ERROR busy");
    }
    assert_eq!(udp_text(udp, b"HELLO 1"), "ERROR busy");
}

#[test]
fn expiry_is_driven_by_the_timer_and_frees_capacity() {
    expiry_frees_capacity("timerfd");
}

#[test]
fn expiry_works_with_the_poll_timer_too() {
    expiry_frees_capacity("poll");
}

#[test]
fn max_ids_refuses_a_third_id_with_busy() {
    let server = Server::hello(&["--max-ids", "2"]);
    let (tcp, udp) = (server.tcp("hello"), server.udp("hello"));
    assert!(udp_text(udp, b"HELLO 1").starts_with("OK 1 "));
    assert!(tcp_exchange_lines(tcp, b"HELLO 2\n", 1).starts_with("OK 2 "));
    assert_eq!(udp_text(udp, b"HELLO 3"), "ERROR busy");
    let mut stream = tcp_connect(tcp);
    stream.write_all(b"HELLO 3\n").unwrap();
    let read = tcp_read_to_eof(&mut stream);
    assert_eq!(read.text, "ERROR busy\n");
    assert!(read.eof, "ERROR busy closes the connection");
    // Taken IDs are still RESET, not busy.
    assert_eq!(udp_text(udp, b"HELLO 2"), "RESET 2");
}

// ------------------------------------------------------- lifecycle

#[test]
fn idle_exit_exits_zero_after_the_quiet_period() {
    let mut server = Server::hello(&["--idle-exit", "300ms"]);
    // An open connection with half a request does not keep it alive.
    let mut open = tcp_connect(server.tcp("hello"));
    open.write_all(b"HELLO 1").unwrap();
    let status = server
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s into a 300ms idle exit"));
    let lived = server.started().elapsed();
    assert!(status.success(), "idle exit status {status}");
    assert!(
        lived >= Duration::from_millis(280),
        "exited after only {lived:?}"
    );
    let read = tcp_read_to_eof(&mut open);
    assert!(read.eof && read.text.is_empty(), "{read:?}");
}

#[test]
fn idle_exit_is_postponed_by_requests() {
    let mut server = Server::hello(&["--idle-exit", "400ms"]);
    let udp = server.udp("hello");
    let start = Instant::now();
    let mut last_request = start;
    // A request every 100 ms for 1 s: four times the idle span.
    for id in 0..10 {
        last_request = Instant::now();
        let answer = udp_text(udp, format!("HELLO {id}").as_bytes());
        assert!(answer.starts_with(&format!("OK {id} ")), "{answer:?}");
        thread::sleep(Duration::from_millis(100));
    }
    server.assert_running();
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("no idle exit 5 s after the last request");
    assert!(status.success(), "idle exit status {status}");
    let quiet = last_request.elapsed();
    assert!(
        quiet >= Duration::from_millis(350),
        "exited {quiet:?} after the last request with a 400ms idle exit"
    );
    assert!(start.elapsed() >= Duration::from_secs(1));
}

fn exits_zero_on(signal: i32) {
    let mut server = Server::hello(&[]);
    let tcp = server.tcp("hello");
    // Some state: an answered request and an idle open connection.
    assert!(tcp_exchange_lines(tcp, b"HELLO 1\n", 1).starts_with("OK 1 "));
    let mut open = tcp_connect(tcp);
    open.write_all(b"HELLO 2").unwrap();
    server.signal(signal);
    let status = server
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after signal {signal}"));
    assert_eq!(
        status.code(),
        Some(0),
        "status after signal {signal}: {status}"
    );
    // Its sockets are gone with it.
    let read = tcp_read_to_eof(&mut open);
    assert!(read.eof, "open connection not closed: {read:?}");
    assert!(TcpStream::connect(tcp).is_err(), "listener still accepting");
}

#[test]
fn sigterm_exits_zero() {
    exits_zero_on(libc::SIGTERM);
}

#[test]
fn sigint_exits_zero() {
    exits_zero_on(libc::SIGINT);
}

// ------------------------------------------------------- command line

#[test]
fn serve_only_hello_on_port_zero_prints_listeners_then_ready() {
    let server = Server::hello(&[]);
    let lines = server.stdout_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[2], "ready");
    let (tcp, udp) = (server.tcp("hello"), server.udp("hello"));
    assert_eq!(lines[0], format!("listening hello tcp {tcp}"));
    assert_eq!(lines[1], format!("listening hello udp {udp}"));
    assert_eq!(server.listeners().len(), 2);
    for addr in [tcp, udp] {
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
    }
    assert!(udp_text(udp, b"HELLO 1").starts_with("OK 1 "));
    assert!(tcp_exchange_lines(tcp, b"HELLO 2\n", 1).starts_with("OK 2 "));
}

#[test]
fn serve_help_mentions_listen() {
    let out = run(&["serve", "--help"]);
    assert_exit(&out, 0);
    let help = stdout(&out);
    for flag in ["--listen", "--only", "--id-ttl", "--idle-exit", "--config"] {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }
}

/// Flags that keep a wrongly accepted command on port 0 and short-lived.
const SAFE: [&str; 6] = [
    "--only",
    "hello",
    "--listen",
    "hello=127.0.0.1:0",
    "--idle-exit",
    "1s",
];

#[track_caller]
fn assert_usage_error(args: &[&str], mentions: &str) {
    let out = run_with_timeout(args, Duration::from_secs(5));
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(mentions),
        "{args:?}: stderr does not name {mentions:?}:\n{err}"
    );
    assert!(
        !stdout(&out).contains("ready"),
        "{args:?} printed ready:\n{}",
        stdout(&out)
    );
}

#[test]
fn serve_unknown_protocol_is_a_usage_error() {
    assert_usage_error(
        &["serve", "--only", "gopher", "--idle-exit", "1s"],
        "gopher",
    );
    assert_usage_error(
        &[
            "serve",
            "--listen",
            "gopher=127.0.0.1:0",
            "--idle-exit",
            "1s",
        ],
        "gopher",
    );
}

/// A bare number is seconds (issue 16: one duration language, as iperf3's
/// `-t`), so a bad duration is one with a unit that is not one.
#[test]
fn serve_duration_with_an_unknown_unit_is_a_usage_error() {
    let mut args = vec!["serve", "--id-ttl", "5x"];
    args.extend_from_slice(&SAFE);
    assert_usage_error(&args, "unit");
    let mut args = vec!["serve", "--idle-exit", "soon", "--only", "hello"];
    args.extend_from_slice(&SAFE[2..4]);
    assert_usage_error(&args, "soon");
}

#[test]
fn serve_bad_listen_address_is_a_usage_error() {
    assert_usage_error(
        &[
            "serve",
            "--only",
            "hello",
            "--listen",
            "hello=nowhere",
            "--idle-exit",
            "1s",
        ],
        "nowhere",
    );
}

#[test]
fn serve_reads_a_toml_config_file() {
    let config = TempFile::new(
        "ok.toml",
        "id_ttl = \"250ms\"\nonly = [\"hello\"]\n\n[listen]\nhello = \"127.0.0.1:0\"\n",
    );
    let server = Server::spawn(&["--config", config.as_str()]);
    let udp = server.udp("hello");
    assert_eq!(server.listeners().len(), 2);
    // The file's 250ms TTL (not the 30 s default) is in force.
    let t0 = Instant::now();
    assert!(udp_text(udp, b"HELLO 5").starts_with("OK 5 "));
    let deadline = t0 + Duration::from_secs(3);
    loop {
        assert!(Instant::now() < deadline, "config id_ttl not applied");
        thread::sleep(Duration::from_millis(20));
        let answer = udp_text(udp, b"HELLO 5");
        if answer.starts_with("OK 5 ") {
            assert!(t0.elapsed() >= Duration::from_millis(200));
            break;
        }
        assert_eq!(answer, "RESET 5");
    }
}

#[test]
fn serve_config_with_unknown_key_is_a_usage_error() {
    let config = TempFile::new("bad.toml", "colour = \"blue\"\n");
    let mut args = vec!["serve", "--config", config.as_str()];
    args.extend_from_slice(&SAFE);
    assert_usage_error(&args, "colour");
}

#[test]
fn serve_missing_config_file_is_an_error() {
    let missing = common::temp_path("missing.toml");
    let mut args = vec!["serve", "--config", missing.to_str().unwrap()];
    args.extend_from_slice(&SAFE);
    assert_usage_error(&args, "missing.toml");
}

// ------------------------------------------------------- the hello client

fn client(addr: SocketAddr, id: &str, extra: &[&str]) -> Output {
    let port = addr.port().to_string();
    let mut args = vec!["hello", "127.0.0.1", port.as_str(), id];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn client_udp_ok_then_reset() {
    let server = Server::hello(&[]);
    let udp = server.udp("hello");
    let out = client(udp, "0031", &[]);
    assert_exit(&out, 0);
    let line = stdout(&out);
    let (id, ip, _port) = parse_ok(line.strip_suffix('\n').expect("one line"));
    assert_eq!((id.as_str(), ip.as_str()), ("0031", "127.0.0.1"));

    let out = client(udp, "31", &["--udp"]);
    assert_exit(&out, 1);
    assert_eq!(stdout(&out), "RESET 31\n");
}

#[test]
fn client_tcp_ok_then_reset() {
    let server = Server::hello(&[]);
    let tcp = server.tcp("hello");
    let out = client(tcp, "32", &["--tcp"]);
    assert_exit(&out, 0);
    let line = stdout(&out);
    let (id, ip, _port) = parse_ok(line.strip_suffix('\n').expect("one line"));
    assert_eq!((id.as_str(), ip.as_str()), ("32", "127.0.0.1"));

    let out = client(tcp, "32", &["--tcp"]);
    assert_exit(&out, 1);
    assert_eq!(stdout(&out), "RESET 32\n");
    // And the UDP side agrees.
    assert_exit(&client(server.udp("hello"), "32", &[]), 1);
}

#[test]
fn client_json_prints_one_object() {
    let server = Server::hello(&[]);
    for (transport, addr, extra) in [
        ("udp", server.udp("hello"), &[][..]),
        ("tcp", server.tcp("hello"), &["--tcp"][..]),
    ] {
        let id = if transport == "udp" { "33" } else { "34" };
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let out = client(addr, id, &args);
        assert_exit(&out, 0);
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 1, "one JSON line: {text:?}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(json["outcome"], "ok", "{json}");
        assert_eq!(json["protocol"], "hello", "{json}");
        assert_eq!(json["transport"], transport, "{json}");
        assert_eq!(json["id"], id, "{json}");
        let answer = json["answer"].as_str().expect("answer is a string");
        assert!(answer.starts_with(&format!("OK {id} 127.0.0.1 ")), "{json}");

        let out = client(addr, id, &args);
        assert_exit(&out, 1);
        let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
        assert_eq!(json["outcome"], "reset", "{json}");
    }
}

#[test]
fn client_error_answer_exits_two() {
    let server = Server::hello(&["--max-ids", "0"]);
    let out = client(server.udp("hello"), "1", &[]);
    assert_exit(&out, 2);
    assert!(
        format!("{}{}", stdout(&out), stderr(&out)).contains("ERROR busy"),
        "{out:?}"
    );
}

/// A loopback port with (almost certainly) nothing behind it.
fn dead_tcp_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn dead_udp_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn client_connection_refused_exits_two() {
    for (addr, extra) in [
        (dead_tcp_port(), &["--tcp"][..]),
        (dead_udp_port(), &[][..]),
    ] {
        let started = Instant::now();
        let out = client(addr, "1", &[extra, &["--timeout", "5s"]].concat());
        assert_exit(&out, 2);
        assert!(stdout(&out).is_empty(), "{out:?}");
        assert!(
            stderr(&out).contains("refused"),
            "{extra:?}: stderr does not say refused:\n{}",
            stderr(&out)
        );
        // The refusal is reported, not waited out.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{extra:?} took the timeout"
        );
    }
}

#[test]
fn client_timeout_exits_two() {
    let silent = udp_socket();
    let addr = silent.local_addr().unwrap();
    let started = Instant::now();
    let out = client(addr, "7", &["--timeout", "200ms"]);
    let took = started.elapsed();
    assert_exit(&out, 2);
    assert!(took >= Duration::from_millis(200), "gave up after {took:?}");
    assert!(stdout(&out).is_empty(), "{out:?}");
    // The request did go out.
    let mut buf = [0u8; 512];
    let (n, _) = silent.recv_from(&mut buf).expect("the client's request");
    assert_eq!(&buf[..n], b"HELLO 7");

    let out = client(addr, "7", &["--timeout", "200ms", "--json"]);
    assert_exit(&out, 2);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    assert_eq!(json["outcome"], "timeout", "{json}");
}

/// A TCP "server" that completes handshakes (the kernel's backlog) but
/// never reads, answers or closes.
fn silent_tcp() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[test]
fn client_tcp_timeout_exits_two() {
    let (_listener, addr) = silent_tcp();
    let started = Instant::now();
    let out = client(addr, "7", &["--tcp", "--timeout", "200ms"]);
    let took = started.elapsed();
    assert_exit(&out, 2);
    assert!(took >= Duration::from_millis(200), "gave up after {took:?}");
    assert!(stdout(&out).is_empty(), "{out:?}");
    assert!(stderr(&out).contains("no answer"), "{}", stderr(&out));
}

#[test]
fn client_tcp_timeout_is_prompt() {
    let (_listener, addr) = silent_tcp();
    let started = Instant::now();
    let out = client(addr, "7", &["--tcp", "--timeout", "200ms"]);
    let took = started.elapsed();
    assert_exit(&out, 2);
    assert!(
        took < Duration::from_millis(1_500),
        "--timeout 200ms, but the client took {took:?} to give up"
    );
}

// ------------------------------------------------------- robustness

#[test]
fn half_open_and_vanishing_clients_do_not_stall_others() {
    let mut server = Server::hello(&[]);
    let (tcp, udp) = (server.tcp("hello"), server.udp("hello"));

    // 50 connections that send half a line and go silent.
    let mut silent: Vec<TcpStream> = (0..50)
        .map(|i| {
            let mut s = tcp_connect(tcp);
            s.write_all(format!("HELLO {}", 1000 + i).as_bytes())
                .unwrap();
            s
        })
        .collect();

    // One that connects and vanishes with a reset: closing with unread
    // data in the receive buffer makes the kernel send RST.
    let mut rude = tcp_connect(tcp);
    rude.write_all(b"HELLO 5\n").unwrap();
    let mut peek = [0u8; 1];
    assert_eq!(rude.peek(&mut peek).unwrap(), 1, "answer arrived");
    drop(rude);
    // And one that connects and leaves at once.
    drop(tcp_connect(tcp));

    let started = Instant::now();
    let mut stream = tcp_connect(tcp);
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    stream.write_all(b"HELLO 6\n").unwrap();
    assert!(tcp_read_lines(&mut stream, 1).text.starts_with("OK 6 "));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "TCP answer took {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let socket = udp_socket();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    assert!(udp_text_on(&socket, udp, b"HELLO 7").starts_with("OK 7 "));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "UDP answer took {:?}",
        started.elapsed()
    );

    // The silent ones kept their partial lines: finishing one completes it.
    silent[0].write_all(b"\n").unwrap();
    assert!(
        tcp_read_lines(&mut silent[0], 1)
            .text
            .starts_with("OK 1000 ")
    );
    server.assert_running();
}

#[test]
fn udp_flood_is_answered_and_the_server_survives() {
    const TOTAL: usize = 2_000;
    const WINDOW: usize = 50;
    let mut server = Server::hello(&[]);
    let udp = server.udp("hello");
    let socket = udp_socket();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut answered = 0usize;
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(60);
    // Bounded: TOTAL / WINDOW batches, each reading at most WINDOW answers.
    for _batch in 0..TOTAL / WINDOW {
        assert!(Instant::now() < deadline, "flood took over 60 s");
        for _ in 0..WINDOW {
            let id = rng.next() % 10_000;
            socket
                .send_to(format!("HELLO {id}").as_bytes(), udp)
                .unwrap();
        }
        for _ in 0..WINDOW {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    assert_eq!(from, udp);
                    let answer = std::str::from_utf8(&buf[..n]).expect("UTF-8 answer");
                    assert!(
                        answer.starts_with("OK ") || answer.starts_with("RESET "),
                        "flood answer {answer:?}"
                    );
                    answered += 1;
                }
                Err(_) => break, // lost: tolerated below
            }
        }
    }
    assert!(
        answered * 100 >= TOTAL * 95,
        "only {answered} of {TOTAL} flood requests answered"
    );
    server.assert_running();
    // Still answering, on both transports (the ID may have been drawn).
    for answer in [
        udp_text(udp, b"HELLO 1"),
        tcp_exchange_lines(server.tcp("hello"), b"HELLO 2\n", 1),
    ] {
        assert!(
            answer.starts_with("OK ") || answer.starts_with("RESET "),
            "after the flood: {answer:?}"
        );
    }
}

#[test]
fn silent_tcp_connection_is_closed_after_the_idle_timeout() {
    let server = Server::hello(&["--tcp-idle-timeout", "300ms"]);
    let started = Instant::now();
    let mut silent = tcp_connect(server.tcp("hello"));
    silent.write_all(b"HELLO 1").unwrap(); // half a line, then nothing
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf).unwrap(), 0, "EOF from the server");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(290), "closed early: {took:?}");
    assert!(took < Duration::from_secs(3), "closed late: {took:?}");
}

#[test]
fn a_connection_that_never_sends_a_byte_is_closed_after_the_idle_timeout() {
    // Before the fix the deadline of an accepted session was read only
    // after its first event, so this connection stayed open for ever.
    let server = Server::hello(&timeouts::SHORT_IDLE);
    let closed = timeouts::silent(server.tcp("hello"));
    timeouts::assert_closed_between(&closed, Duration::from_millis(290), Duration::from_secs(3));
    assert!(closed.received.is_empty(), "{closed:?}");
}

#[test]
fn a_slowloris_line_is_closed_at_the_request_timeout() {
    let server = Server::hello(&timeouts::SHORT_IDLE);
    // A byte every 100 ms is progress (the 300 ms idle limit never fires),
    // but the line is not complete after the 1 s request limit.
    let line = b"HELLO 12345678901234567890123456789012345678901234567890";
    let closed = timeouts::slowloris(server.tcp("hello"), line, Duration::from_millis(100));
    timeouts::assert_closed_between(&closed, Duration::from_millis(900), Duration::from_secs(3));
    assert!(closed.sent < line.len(), "{closed:?}");
    assert!(closed.received.is_empty(), "{closed:?}");
}
