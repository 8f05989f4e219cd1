//! `mioperf lab HOST PORT` without a request, driven from a pipe as a
//! script would drive it: one request per line against a real `serve`,
//! over TCP and UDP; echo lines sharing one TCP connection; `-b` deriving
//! a stream's interval, and its one-line refusals.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::{Server, bin, run_with_timeout, send_signal, wait_child};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

/// Longest any prompt run here may take.
const LIMIT: Duration = Duration::from_secs(30);

fn lab_server() -> Server {
    Server::spawn(&["--only", "lab", "--listen", "lab=127.0.0.1:0"])
}

/// Starts `mioperf lab 127.0.0.1 PORT ARGS…` with its standard input and
/// output on pipes (a script's view) and standard error piped or not.
fn spawn_lab(port: u16, args: &[&str], stderr: Stdio) -> Child {
    Command::new(bin())
        .args(["lab", "127.0.0.1", &port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// The lines `child` prints, as they arrive, on a channel.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs `mioperf lab 127.0.0.1 PORT ARGS…` with `input` on its standard
/// input (a pipe, closed after `input`), bounded by [`LIMIT`].
fn prompt(addr: SocketAddr, args: &[&str], input: &str) -> Output {
    let mut child = spawn_lab(addr.port(), args, Stdio::piped());
    let mut stdin = child.stdin.take().expect("stdin piped");
    let input = input.to_owned();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let drain = |mut from: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut all = Vec::new();
            let _ = from.read_to_end(&mut all);
            all
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let Some(status) = wait_child(&mut child, LIMIT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("mioperf lab still running after {LIMIT:?}");
    };
    let _ = writer.join();
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One JSON object per line of standard output.
fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn tcp_each_line_is_a_request_until_quit() {
    let server = lab_server();
    let out = prompt(
        server.tcp("lab"),
        &[],
        "10\nhello\nstream\n1\n5\n100\n  hi there \nquit\nnever sent\n",
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("file 10 of 10 bytes") && lines[0].ends_with("pattern ok"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("echo 5 bytes") && lines[1].ends_with("matched"),
        "{stdout}"
    );
    assert_eq!(lines[2], "stream 5 × 100 B every 1.000 ms", "{stdout}");
    assert!(lines[3].starts_with("received 5/5, lost 0"), "{stdout}");
    // Echo text goes as typed, spaces and all: 11 bytes.
    let last = lines.iter().rfind(|l| l.starts_with("echo ")).unwrap();
    assert!(last.starts_with("echo 11 bytes"), "{stdout}");
    assert!(!stdout.contains("never"), "nothing after quit: {stdout}");
    assert!(!stdout.contains("lab> "), "no prompt on a pipe: {stdout}");
    // Standard error is a pipe here: no live line of the stream on it.
    assert_eq!(text(&out.stderr), "", "nothing but answers");
}

#[test]
fn udp_one_json_line_per_request_and_end_of_input_ends() {
    let server = lab_server();
    let out = prompt(
        server.udp("lab"),
        &["--udp", "--json"],
        "10\nhello\nstream\n0.5\n5\n100\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 3, "{docs:?}");
    assert_eq!(docs[0]["request"], "10");
    assert_eq!(docs[0]["transport"], "udp");
    assert_eq!(docs[0]["bytes"], 10);
    assert_eq!(docs[0]["file"]["expected_bytes"], 10);
    assert_eq!(docs[1]["request"], "hello");
    assert_eq!(docs[1]["echo"]["matched"], true);
    assert_eq!(docs[2]["request"], "stream-0.5-5-100");
    assert_eq!(docs[2]["stream"]["interval_ns"], 500_000);
    assert_eq!(docs[2]["stream"]["stats"]["unique"], 5);
    for d in &docs {
        assert_eq!(d["outcome"], "ok", "{d}");
    }
}

#[test]
fn stream_answers_default_when_empty() {
    let server = lab_server();
    let out = prompt(
        server.tcp("lab"),
        &["--json", "--count", "4", "--size", "64"],
        "stream\n0\n\n\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0]["request"], "stream-0-4-64",
        "the flags are the defaults"
    );
}

#[test]
fn a_bad_line_is_one_error_and_the_prompt_goes_on() {
    let server = lab_server();
    let huge = "9".repeat(40);
    let out = prompt(
        server.tcp("lab"),
        &["--json"],
        &format!("{huge}\nstream\n1\nmany\n\nstill here\n"),
    );
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mioperf: "))
        .collect();
    assert_eq!(errors.len(), 3, "{stderr}");
    assert!(errors[0].contains("too large for a file size"), "{stderr}");
    assert!(errors[1].contains("count 'many'"), "{stderr}");
    assert_eq!(errors[2], "mioperf: 2 of 3 requests failed");
    let docs = json_lines(&out);
    assert_eq!(docs.len(), 1, "the echo after the errors still ran");
    assert_eq!(docs[0]["request"], "still here");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_refusal_is_shown_and_exits_1_at_the_end() {
    let server = lab_server();
    let out = prompt(server.tcp("lab"), &[], "999999999\nok\n");
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("ERROR file too large: limit 123456789\necho 2 bytes"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// A stand-in lab server that echoes lines and counts its connections.
fn counting_echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    thread::spawn(move || {
        // Ends when the test process does; each connection is bounded by
        // its read timeout.
        for conn in listener.incoming().take(8) {
            let Ok(conn) = conn else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            conn.set_read_timeout(Some(LIMIT)).unwrap();
            let mut writer = conn.try_clone().unwrap();
            thread::spawn(move || {
                for line in BufReader::new(conn).lines().take(100) {
                    let Ok(line) = line else { break };
                    if writer.write_all(format!("{line}\n").as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[test]
fn tcp_echo_lines_share_one_connection() {
    let (addr, accepted) = counting_echo_server();
    let out = prompt(addr, &[], "one\ntwo\nthree\n");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(stdout.matches(", matched").count(), 3, "{stdout}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for all");
}

#[test]
fn a_new_connection_after_the_server_closed_one() {
    // serve closes after a file: the echo after it needs a new connection.
    let server = lab_server();
    let out = prompt(server.tcp("lab"), &["--json"], "5\nafter\n5\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let outcomes: Vec<Value> = json_lines(&out)
        .iter()
        .map(|d| d["outcome"].clone())
        .collect();
    assert_eq!(outcomes, ["ok", "ok", "ok"]);
}

#[test]
fn bitrate_derives_the_interval_from_the_size() {
    let server = lab_server();
    let port = server.tcp("lab").port().to_string();
    // 1000 B × 8 / 8 Mbit/s = 1 ms.
    let out = run_with_timeout(
        &[
            "lab",
            "127.0.0.1",
            &port,
            "stream",
            "--count",
            "5",
            "--size",
            "1000",
            "-b",
            "8M",
            "--json",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["request"], "stream-1-5-1000");
    assert_eq!(doc["stream"]["interval_ns"], 1_000_000);

    // --interval is a duration like every other: 250us, not a bare count of ms.
    let out = run_with_timeout(
        &[
            "lab",
            "127.0.0.1",
            &port,
            "stream",
            "--count",
            "3",
            "--size",
            "100",
            "--interval",
            "250us",
            "--json",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["request"], "stream-0.25-3-100");
    assert_eq!(doc["stream"]["interval_ns"], 250_000);

    // At the prompt, -b replaces the interval question: count, then size.
    let out = prompt(
        server.udp("lab"),
        &["--udp", "--json", "-b", "1M"],
        "stream\n3\n125\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let docs = json_lines(&out);
    assert_eq!(
        docs[0]["stream"]["interval_ns"], 1_000_000,
        "125 B at 1 Mbit/s"
    );
}

#[test]
fn bitrate_refusals_are_one_line_with_exit_2() {
    let port = "9"; // never reached: refused before anything is opened
    let cases: [&[&str]; 3] = [
        &["stream-1-5-100", "-b", "1M"],
        &["stream", "--size", "16", "-b", "200G"],
        &["hello", "-b", "1M"],
    ];
    let wants = ["both set the pace", "less than 1 ns", "shape the request"];
    for (case, want) in cases.iter().zip(wants) {
        let mut args = vec!["lab", "127.0.0.1", port];
        args.extend_from_slice(case);
        let out = run_with_timeout(&args, LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{case:?}: {stderr}");
        assert!(stderr.contains(want), "{case:?}: {stderr}");
    }
    // An interval and a rate, for a single request or the prompt.
    for request in [&["stream"][..], &[]] {
        let mut args = vec!["lab", "127.0.0.1", port, "--interval", "1", "-b", "1M"];
        args.extend_from_slice(request);
        let out = run_with_timeout(&args, LIMIT);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            text(&out.stderr),
            "mioperf: --interval and -b both set a stream's pace: give one\n"
        );
    }
}

#[test]
fn the_answers_arrive_while_the_pipe_is_still_open() {
    // A script reads each answer before it writes the next line.
    let server = lab_server();
    let mut child = spawn_lab(server.tcp("lab").port(), &[], Stdio::null());
    let mut stdin = child.stdin.take().unwrap();
    let rx = lines_of(&mut child);
    for word in ["first", "second"] {
        stdin.write_all(format!("{word}\n").as_bytes()).unwrap();
        let answer = rx.recv_timeout(LIMIT).expect("an answer per line");
        assert!(
            answer.starts_with(&format!("echo {} bytes", word.len())),
            "{answer}"
        );
    }
    drop(stdin);
    let status = wait_child(&mut child, LIMIT).expect("ends at end of input");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_connection_the_server_closed_while_idle_is_replaced() {
    // The server drops an idle connection after 300 ms; the prompt finds
    // out only when the next line comes, and sends it on a new one.
    let server = Server::spawn(&[
        "-v",
        "--only",
        "lab",
        "--listen",
        "lab=127.0.0.1:0",
        "--tcp-idle-timeout",
        "300ms",
    ]);
    let mut child = spawn_lab(server.tcp("lab").port(), &[], Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let rx = lines_of(&mut child);
    stdin.write_all(b"before\n").unwrap();
    let answer = rx.recv_timeout(LIMIT).unwrap();
    assert!(answer.ends_with(", matched"), "{answer}");
    // Not a sleep: the server says when it has dropped the idle connection.
    let (closed, log) = server.stderr_lines_with("idle timeout: closing", 1, LIMIT);
    assert_eq!(
        closed, 1,
        "the server never closed the idle connection: {log}"
    );
    stdin.write_all(b"after\n").unwrap();
    let answer = rx.recv_timeout(LIMIT).unwrap();
    assert!(
        answer.starts_with("echo 5 bytes") && answer.ends_with(", matched"),
        "{answer}"
    );
    drop(stdin);
    let status = wait_child(&mut child, LIMIT).expect("ends at end of input");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_signal_while_waiting_for_a_line_ends_it_at_once() {
    // The pipe stays open: a blocked read alone would never return.
    let server = lab_server();
    for (signal, code) in [(2, 130), (15, 143)] {
        let mut child = spawn_lab(server.tcp("lab").port(), &[], Stdio::null());
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // One answer first: by then the handlers are installed.
        stdin.write_all(b"ready?\n").unwrap();
        let mut answer = String::new();
        stdout.read_line(&mut answer).unwrap();
        assert!(answer.ends_with(", matched\n"), "{answer}");
        send_signal(child.id(), signal);
        let status = wait_child(&mut child, LIMIT).expect("ends on the signal");
        assert_eq!(status.code(), Some(code), "signal {signal}");
        drop(stdin);
    }
}

#[test]
fn time_at_the_prompt_counts_into_no_request() {
    // After a file the connection is closed; the echo typed 300 ms later
    // opens a new one. Neither its round trip nor its 200 ms timeout may
    // count the time spent at the prompt. The state machine's half of
    // this is `a_request_starts_at_the_turn_that_takes_it` (virtual
    // time); this is the other half, the app's clock between stdin and
    // the reactor, which only a real pause at a real prompt shows.
    let server = lab_server();
    let mut child = spawn_lab(
        server.tcp("lab").port(),
        &["--timeout", "200ms", "--json"],
        Stdio::piped(),
    );
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut answer = String::new();
    stdin.write_all(b"5\n").unwrap();
    stdout.read_line(&mut answer).unwrap();
    assert!(answer.contains(r#""outcome":"ok""#), "{answer}");
    thread::sleep(Duration::from_millis(300));
    stdin.write_all(b"late\n").unwrap();
    answer.clear();
    stdout.read_line(&mut answer).unwrap();
    let doc: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(doc["outcome"], "ok", "{doc}");
    let rtt_ns = doc["echo"]["rtt_ns"].as_f64().unwrap();
    assert!(
        rtt_ns < 200_000_000.0,
        "the 300 ms at the prompt are not in it: {rtt_ns} ns"
    );
    drop(stdin);
    let status = wait_child(&mut child, LIMIT).expect("ends at end of input");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_refused_connection_is_said_per_request() {
    // Nothing listens on the port of a listener just closed.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = prompt(addr, &[], "a\nb\n");
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.matches(": connection refused").count(),
        2,
        "each request says why: {stderr}"
    );
    assert!(
        stderr.ends_with("mioperf: 2 of 2 requests failed\n"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(2));
    let port = addr.port().to_string();
    let out = run_with_timeout(&["lab", "127.0.0.1", &port, "x"], LIMIT);
    assert_eq!(
        text(&out.stderr),
        format!("mioperf: {addr}: connection refused\n")
    );
}

/// Runs `mioperf ARGS…` on a pseudo-terminal (util-linux `script`, in
/// Debian's essential `bsdutils`), returning what the terminal showed.
fn on_terminal(args: &[&str]) -> String {
    let command = std::iter::once(bin())
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let out = common::run_command(
        Command::new("script").args(["-qec", &command, "/dev/null"]),
        LIMIT,
    );
    assert!(out.status.success(), "{command}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_stream_shows_packets_loss_and_rate_live_on_a_terminal() {
    let server = lab_server();
    let port = server.udp("lab").port().to_string();
    // 100 segments 3 ms apart: 300 ms, past the first redraw at 100 ms.
    let base = ["lab", "127.0.0.1", &port, "--udp", "stream-3-100-100"];
    let shown = on_terminal(&base);
    assert!(
        shown.contains(" packets, lost ") && shown.contains(" Mbit/s"),
        "{shown:?}"
    );
    assert!(
        shown.contains("received 100/100"),
        "then the summary: {shown:?}"
    );
    for quiet in ["-q", "--json"] {
        let mut args = base.to_vec();
        args.push(quiet);
        let shown = on_terminal(&args);
        assert!(!shown.contains(" packets, lost "), "{quiet}: {shown:?}");
    }
}

/// Types each of `lines` into `mioperf ARGS…` on a pseudo-terminal once
/// the prompt shows (raw mode discards what was typed ahead); its exit
/// code and what the terminal showed.
fn typed_on_terminal(args: &[&str], lines: &[&[u8]]) -> (Option<i32>, String) {
    let command = std::iter::once(bin())
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = Vec::new();
    for (typed, line) in lines.iter().enumerate() {
        // Wait for one more prompt than lines typed so far.
        while text(&shown).matches("lab> ").count() <= typed {
            let Ok(chunk) = rx.recv_timeout(LIMIT) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no prompt: {:?}", text(&shown))
            };
            shown.extend(chunk);
        }
        stdin.write_all(line).unwrap();
    }
    let status = wait_child(&mut child, LIMIT);
    drop(stdin);
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{command} still running: {:?}", text(&shown));
    };
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(1)) {
        shown.extend(chunk);
    }
    (status.code(), text(&shown))
}

#[test]
fn on_a_terminal_a_prompt_with_line_editing_and_ctrl_c_ends_it() {
    let server = lab_server();
    let port = server.tcp("lab").port().to_string();
    let args = ["lab", "127.0.0.1", &port];
    // "hellp", backspace, "o": edited before it is sent.
    let (code, shown) = typed_on_terminal(&args, &[b"hellp\x7fo\r", b"quit\r"]);
    assert_eq!(code, Some(0), "{shown:?}");
    assert!(shown.contains("echo 5 bytes"), "{shown:?}");
    assert!(shown.contains("matched"), "{shown:?}");
    let (code, shown) = typed_on_terminal(&args, &[b"half a line\x03"]);
    assert_eq!(code, Some(130), "{shown:?}");
    assert!(!shown.contains("echo "), "nothing was sent: {shown:?}");
}
