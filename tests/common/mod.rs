//! Shared helpers for the real-binary tests: spawn `mioperf serve`, find its
//! listeners, speak to them with std sockets, and always clean up.
//!
//! Every wait here is bounded in time (and every loop in count), so a broken
//! server fails a test with a message instead of hanging the suite.

#![allow(
    dead_code,
    reason = "each test crate uses a different subset of the helpers"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests measure real time and pace real sockets against a real process"
)]

pub(crate) mod netns;
pub(crate) mod tunserve;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to print `ready`.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout of the UDP helpers.
pub(crate) const UDP_TIMEOUT: Duration = Duration::from_secs(2);
/// Per-read timeout of the TCP helpers.
pub(crate) const TCP_READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Overall bound of one TCP exchange.
pub(crate) const TCP_EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound for one run of the binary as a client or a failing server.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(10);

/// The binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mioperf")
}

/// Standard error of a child, collected by a background thread so a chatty
/// child never blocks on a full pipe, and shown when a test fails.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn drain(mut from: impl Read + Send + 'static) -> Self {
        let captured = Self::default();
        let sink = Arc::clone(&captured.0);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends at EOF, i.e. when the child exits.
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&text);
                }
            }
        });
        captured
    }

    /// Everything read so far.
    pub(crate) fn text(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// A running `mioperf serve`; dropping it kills and reaps the process.
pub(crate) struct Server {
    child: Child,
    listeners: HashMap<(String, String), SocketAddr>,
    /// `listening PROTO tun NAME ADDR` lines: protocol → (device, address).
    devices: HashMap<String, (String, IpAddr)>,
    stdout_lines: Vec<String>,
    stderr: Captured,
    started: Instant,
    /// Standard output after `ready` (e.g. a proxy's final counters).
    lines: Option<Receiver<String>>,
}

impl Server {
    /// `mioperf serve --only hello --listen hello=127.0.0.1:0 EXTRA...`.
    ///
    /// `--only hello` keeps the test on port 0 even once other protocols
    /// (with fixed default ports) are served by default.
    pub(crate) fn hello(extra: &[&str]) -> Self {
        let mut args = vec!["--only", "hello", "--listen", "hello=127.0.0.1:0"];
        args.extend_from_slice(extra);
        Self::spawn(&args)
    }

    /// `mioperf serve ARGS...`, waiting (bounded) for `ready`.
    pub(crate) fn spawn(args: &[&str]) -> Self {
        Self::spawn_command("serve", args)
    }

    /// `mioperf proxy ARGS...`, waiting (bounded) for `ready`; its
    /// listener is `udp("proxy")`.
    pub(crate) fn proxy(args: &[&str]) -> Self {
        Self::spawn_command("proxy", args)
    }

    /// `mioperf COMMAND ARGS...` for a command that prints `listening …`
    /// lines and `ready`, waiting (bounded) for `ready`.
    pub(crate) fn spawn_command(command: &str, args: &[&str]) -> Self {
        Self::spawn_via(&[], command, args)
    }

    /// `LAUNCHER... mioperf COMMAND ARGS...` (e.g. `ip netns exec NS`, which
    /// execs the binary, so the child is still mioperf itself), waiting
    /// (bounded) for `ready`.
    pub(crate) fn spawn_via(launcher: &[&str], command: &str, args: &[&str]) -> Self {
        let started = Instant::now();
        let mut cmd = match launcher.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let mut child = cmd
            .arg(command)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mioperf serve");
        let stderr = Captured::drain(child.stderr.take().expect("stderr piped"));
        let lines = stdout_lines(child.stdout.take().expect("stdout piped"));
        let mut server = Self {
            child,
            listeners: HashMap::new(),
            devices: HashMap::new(),
            stdout_lines: Vec::new(),
            stderr,
            started,
            lines: None,
        };
        server.wait_ready(&lines, args);
        server.lines = Some(lines);
        server
    }

    /// The lines printed after `ready` until the process exits (bounded by
    /// `limit`; what arrived by then).
    pub(crate) fn rest_of_stdout(&mut self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        let Some(lines) = &self.lines else {
            return out;
        };
        while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(line);
        }
        out
    }

    fn wait_ready(&mut self, lines: &Receiver<String>, args: &[&str]) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    self.fail_start(args, &format!("no `ready` within {READY_TIMEOUT:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(Duration::from_secs(2));
                    self.fail_start(args, &format!("stdout closed before `ready` ({status:?})"))
                }
            };
            self.stdout_lines.push(line.clone());
            if line == "ready" {
                break;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["listening", proto, transport @ ("tcp" | "udp"), addr] => {
                    let addr: SocketAddr = addr.parse().unwrap_or_else(|_| {
                        self.fail_start(args, &format!("bad address in {line:?}"))
                    });
                    assert!(
                        addr.ip().is_loopback(),
                        "listener not on loopback: {line:?}"
                    );
                    assert_ne!(addr.port(), 0, "port 0 reported: {line:?}");
                    self.listeners
                        .insert(((*proto).to_owned(), (*transport).to_owned()), addr);
                }
                // A protocol on a device (tunstack): its name and address.
                ["listening", proto, "tun", name, addr] => {
                    let addr: IpAddr = addr.parse().unwrap_or_else(|_| {
                        self.fail_start(args, &format!("bad address in {line:?}"))
                    });
                    self.devices
                        .insert((*proto).to_owned(), ((*name).to_owned(), addr));
                }
                // The proxy names its upstream and its seed.
                ["upstream", _, "seed", _] => {}
                _ => self.fail_start(args, &format!("unexpected stdout line {line:?}")),
            }
        }
    }

    fn fail_start(&mut self, args: &[&str], why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "mioperf serve {args:?}: {why}\nstdout so far: {:?}\nstderr:\n{}",
            self.stdout_lines,
            self.stderr.text()
        );
    }

    /// The address of `proto`'s listener on `transport` (`tcp` or `udp`).
    pub(crate) fn addr(&self, proto: &str, transport: &str) -> SocketAddr {
        *self
            .listeners
            .get(&(proto.to_owned(), transport.to_owned()))
            .unwrap_or_else(|| {
                panic!(
                    "no `listening {proto} {transport}` line in {:?}",
                    self.stdout_lines
                )
            })
    }

    /// The device `proto` answers on and its address there, from its
    /// `listening PROTO tun NAME ADDR` line.
    pub(crate) fn device(&self, proto: &str) -> (String, IpAddr) {
        self.devices
            .get(proto)
            .cloned()
            .unwrap_or_else(|| panic!("no `listening {proto} tun` line in {:?}", self.stdout_lines))
    }

    /// `proto`'s TCP listener.
    pub(crate) fn tcp(&self, proto: &str) -> SocketAddr {
        self.addr(proto, "tcp")
    }

    /// `proto`'s UDP socket.
    pub(crate) fn udp(&self, proto: &str) -> SocketAddr {
        self.addr(proto, "udp")
    }

    /// Every `listening` line parsed, keyed by (protocol, transport).
    pub(crate) fn listeners(&self) -> &HashMap<(String, String), SocketAddr> {
        &self.listeners
    }

    /// The lines printed on standard output up to and including `ready`.
    pub(crate) fn stdout_lines(&self) -> &[String] {
        &self.stdout_lines
    }

    /// Standard error so far (logging).
    pub(crate) fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Standard error once it contains every one of `needles`, or what
    /// arrived by `limit`: a background thread reads it, so a line the
    /// server wrote before `ready` may not have been read yet.
    pub(crate) fn stderr_with(&self, needles: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.stderr.text();
            if needles.iter().all(|n| text.contains(n)) || Instant::now() >= deadline {
                return text;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Standard error once `n` of its lines contain `needle`, or what
    /// arrived by `limit`, and how many did: a server logs one line per
    /// transfer it completed, possibly after its client has finished.
    pub(crate) fn stderr_lines_with(
        &self,
        needle: &str,
        n: usize,
        limit: Duration,
    ) -> (usize, String) {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.stderr.text();
            let count = text.lines().filter(|l| l.contains(needle)).count();
            if count >= n || Instant::now() >= deadline {
                return (count, text);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// When the process was spawned.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the server.
    pub(crate) fn signal(&self, signal: i32) {
        send_signal(self.pid(), signal);
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still
    /// running then.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        // Bounded: at most limit / 5 ms polls.
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() >= deadline => return None,
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("waiting for mioperf serve: {e}"),
            }
        }
    }

    /// Panics with the server's standard error if it is no longer running.
    #[track_caller]
    pub(crate) fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "mioperf serve exited unexpectedly ({status})\nstderr:\n{}",
                self.stderr.text()
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards the lines of `stdout` over a channel, from a thread that keeps
/// draining until EOF.
fn stdout_lines(stdout: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The receiver stops listening after `ready`; keep draining.
            let _ = tx.send(line);
        }
    });
    rx
}

/// Sends a signal to a process, with the `kill` command (no `unsafe`
/// outside `reactor/sys`, tests included).
pub(crate) fn send_signal(pid: u32, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

/// Runs `mioperf ARGS...` to completion (bounded by `RUN_TIMEOUT`; killed and
/// failed beyond it) and returns its status and output.
pub(crate) fn run(args: &[&str]) -> Output {
    run_with_timeout(args, RUN_TIMEOUT)
}

/// [`run`] with an explicit bound.
pub(crate) fn run_with_timeout(args: &[&str], limit: Duration) -> Output {
    run_command(Command::new(bin()).args(args), limit)
}

/// `mioperf bench ARGS --json` within `limit`: expects exit 0 and one JSON
/// document with no non-finite number in it, and returns the document.
#[track_caller]
pub(crate) fn bench_json(args: &[&str], limit: Duration) -> serde_json::Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = run_with_timeout(&all, limit);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench {args:?} failed ({:?})\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert!(
        !stdout.contains("NaN") && !stdout.contains("inf"),
        "non-finite number in {stdout}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Runs any command with stdin closed, bounded by `limit`.
pub(crate) fn run_command(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let stdout = read_all(child.stdout.take().expect("stdout piped"));
    let stderr = read_all(child.stderr.take().expect("stderr piped"));
    let Some(status) = wait_child(&mut child, limit) else {
        let _ = child.kill();
        let _ = child.wait();
        let out = stdout.join().unwrap_or_default();
        let err = stderr.join().unwrap_or_default();
        panic!(
            "{command:?} still running after {limit:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        )
    };
    // The pipes reach EOF as the child exits (none of our commands leaves a
    // grandchild holding them), so these joins return promptly.
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = from.read_to_end(&mut all);
        all
    })
}

/// Waits up to `limit` for `child` to exit.
pub(crate) fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for child: {e}"),
        }
    }
}

/// A connected TCP client with read and write timeouts set.
pub(crate) fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(TCP_READ_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TCP_READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// What a TCP read sequence ended with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TcpRead {
    /// Everything received, lossily decoded.
    pub(crate) text: String,
    /// The peer closed (read returned 0).
    pub(crate) eof: bool,
}

/// Reads from `stream` until EOF or `lines` newlines have arrived, bounded
/// by [`TCP_EXCHANGE_TIMEOUT`]. A read timeout or reset ends it too
/// (`eof: false` for a timeout; a reset counts as closed).
pub(crate) fn tcp_read_lines(stream: &mut TcpStream, lines: usize) -> TcpRead {
    let deadline = Instant::now() + TCP_EXCHANGE_TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut eof = false;
    #[expect(
        clippy::naive_bytecount,
        reason = "a few short lines per call; not worth the bytecount crate"
    )]
    let have = |got: &[u8]| got.iter().filter(|&&b| b == b'\n').count();
    while have(&got) < lines && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset) => {
                eof = true;
                break;
            }
            Err(_) => break, // WouldBlock / TimedOut: the read timeout
        }
    }
    TcpRead {
        text: String::from_utf8_lossy(&got).into_owned(),
        eof,
    }
}

/// Reads until the peer closes (bounded); returns what arrived and whether
/// the close was seen.
pub(crate) fn tcp_read_to_eof(stream: &mut TcpStream) -> TcpRead {
    tcp_read_lines(stream, usize::MAX)
}

/// Asserts that the server closes `stream` without sending anything more.
#[track_caller]
pub(crate) fn assert_closed(stream: &mut TcpStream) {
    let rest = tcp_read_to_eof(stream);
    assert_eq!(
        rest,
        TcpRead {
            text: String::new(),
            eof: true
        },
        "expected the server to close the connection"
    );
}

/// One connection: sends `bytes`, half-closes, and reads until EOF or
/// `lines` newlines (bounded in time). Returns the text received.
pub(crate) fn tcp_exchange_lines(addr: SocketAddr, bytes: &[u8], lines: usize) -> String {
    let mut stream = tcp_connect(addr);
    stream.write_all(bytes).expect("tcp write");
    tcp_read_lines(&mut stream, lines).text
}

/// One connection: sends `bytes`, shuts down the write side and reads until
/// the server closes (bounded in time). Returns the text received.
pub(crate) fn tcp_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = tcp_connect(addr);
    stream.write_all(bytes).expect("tcp write");
    let _ = stream.shutdown(Shutdown::Write);
    let read = tcp_read_to_eof(&mut stream);
    assert!(
        read.eof,
        "server did not close after our EOF; got {:?}",
        read.text
    );
    read.text
}

/// A UDP socket on 127.0.0.1 with a [`UDP_TIMEOUT`] read timeout.
pub(crate) fn udp_socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    socket.set_read_timeout(Some(UDP_TIMEOUT)).unwrap();
    socket
}

/// Sends one datagram from `socket` and returns the first answer from `to`.
#[track_caller]
pub(crate) fn udp_exchange_on(socket: &UdpSocket, to: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    socket.send_to(bytes, to).expect("udp send");
    let mut buf = vec![0u8; 65_536];
    // Bounded: a stray datagram from elsewhere is skipped a few times at most.
    for _ in 0..8 {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) if from == to => return buf[..n].to_vec(),
            Ok(_) => {}
            Err(e) => panic!(
                "no UDP answer from {to} to {:?} within {UDP_TIMEOUT:?}: {e}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }
    panic!("only stray datagrams arrived while waiting for {to}");
}

/// Sends one datagram from a fresh socket and returns the answer.
#[track_caller]
pub(crate) fn udp_exchange(to: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    udp_exchange_on(&udp_socket(), to, bytes)
}

/// [`udp_exchange_on`] as text.
#[track_caller]
pub(crate) fn udp_text_on(socket: &UdpSocket, to: SocketAddr, bytes: &[u8]) -> String {
    String::from_utf8(udp_exchange_on(socket, to, bytes)).expect("answer is UTF-8")
}

/// [`udp_exchange`] as text.
#[track_caller]
pub(crate) fn udp_text(to: SocketAddr, bytes: &[u8]) -> String {
    String::from_utf8(udp_exchange(to, bytes)).expect("answer is UTF-8")
}

/// A file path under the system temp dir, unique to this process and call.
pub(crate) fn temp_path(name: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("mioperf-test-{}-{n}-{name}", std::process::id()))
}

/// A file removed when dropped.
pub(crate) struct TempFile(pub(crate) PathBuf);

impl TempFile {
    /// Writes `contents` to a fresh unique path.
    pub(crate) fn new(name: &str, contents: &str) -> Self {
        let path = temp_path(name);
        std::fs::write(&path, contents).expect("write temp file");
        Self(path)
    }

    /// The path as a `&str` for command lines.
    pub(crate) fn as_str(&self) -> &str {
        self.0.to_str().expect("temp path is UTF-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Splits `OK <id> <ip> <port>` into its fields, failing clearly otherwise.
#[track_caller]
pub(crate) fn parse_ok(answer: &str) -> (String, String, u16) {
    let words: Vec<&str> = answer.split(' ').collect();
    match words.as_slice() {
        ["OK", id, ip, port] => (
            (*id).to_owned(),
            (*ip).to_owned(),
            port.parse()
                .unwrap_or_else(|_| panic!("bad port in {answer:?}")),
        ),
        _ => panic!("expected `OK <id> <ip> <port>`, got {answer:?}"),
    }
}

/// A fresh, empty directory under the test temp area (a server's root, a
/// client's output folder), removed with everything in it on drop.
pub(crate) struct Dir(pub(crate) PathBuf);

impl Dir {
    /// `temp_path(name)`, emptied and created.
    pub(crate) fn new(name: &str) -> Self {
        let p = temp_path(name);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    /// `name` inside the directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The directory as a command-line argument.
    pub(crate) fn s(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
