//! The Wireshark dissectors (`contrib/wireshark/mioperf.lua`) against real
//! captures of real exchanges.
//!
//! Each test creates a network namespace of its own, brings its loopback
//! up, starts `mioperf serve --only PROTO` there on the protocol's default
//! port (so the dissector is found by its port registration, as a user's
//! capture would find it), starts `tshark -i lo -w FILE -f "port N"` and
//! waits until it captures, runs the real mioperf client (or, for
//! malformed traffic, raw Python sockets), sends a sentinel datagram and
//! waits until it is in the file, stops tshark, and reads the capture back
//! with `tshark -r
//! FILE -X lua_script:mioperf.lua -T fields -e ...`, asserting each field
//! decodes to the value the exchange put on the wire. Every wait is
//! bounded.
//!
//! Capturing and namespaces need root: without it the tests say so and
//! skip, except under `CI`, where they fail (the rule of
//! `tests/tunstack.rs`). The decode step drops root (`setpriv` to
//! nobody): some Wireshark builds refuse `-X lua_script` to root (their
//! `init.lua` sets `run_user_scripts_when_superuser = false`); as nobody
//! it runs everywhere. `.ci/run` installs tshark, iproute2, python3 and
//! util-linux.

#![allow(
    clippy::disallowed_methods,
    reason = "tests wait for real processes and real packets"
)]

mod common;

use common::netns::Netns;
use common::tunserve::have;
use common::{Dir, RUN_TIMEOUT, Server, bin, run_command, send_signal, wait_child};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The dissectors under test.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/wireshark/mioperf.lua");
/// How long tshark may take to start capturing (it loads every dissector
/// first: seconds on a busy machine).
const CAPTURE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// The last datagram of every capture: once its bytes are in the file,
/// so is every packet before it (dumpcap writes them in order), and the
/// capture can stop without guessing how long dumpcap lags behind.
const SENTINEL: &str = "mioperf-wireshark-test-capture-end";
/// Where the sentinel goes: UDP discard, where nothing in the namespace
/// listens (the kernel answers ICMP port unreachable, outside the filter).
const SENTINEL_PORT: &str = "9";
/// Bound of the wait for the sentinel to reach the file.
const CAPTURE_SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound of tshark's exit after SIGINT, and of one decoding run.
const TSHARK_TIMEOUT: Duration = Duration::from_secs(30);
/// nobody's uid and gid, for the decode step when the test runs as root.
const NOBODY: &str = "65534";

/// A namespace with its loopback up, and `mioperf serve` in it. Field
/// order matters: the server is dropped (killed) before the namespace is
/// deleted.
struct Lab {
    server: Server,
    ns: Netns,
    /// The capture, the script copy and the server's root: readable by
    /// nobody.
    dir: Dir,
}

impl Lab {
    /// `None` when the test is skipped (not root or a tool missing, and no
    /// `CI`).
    fn start(test: &str, tools: &[&str], serve: &[&str]) -> Option<Self> {
        let mut all = vec!["ip", "tshark", "setpriv"];
        all.extend_from_slice(tools);
        if !have(test, &all) {
            return None;
        }
        let ns = Netns::new(test)?;
        let up = ns.run_default("ip", &["link", "set", "lo", "up"]);
        assert!(up.status.success(), "ip link set lo up: {up:?}");
        let dir = Dir::new(&format!("wireshark-{test}"));
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path("root");
        fs::create_dir(&root).unwrap();
        let mut args = vec!["--root", root.to_str().unwrap()];
        args.extend_from_slice(serve);
        let server = Server::spawn_via(&ns.launcher(), "serve", &args);
        Some(Self { server, ns, dir })
    }

    /// A file of `len` bytes in the server's root.
    fn serve_file(&self, name: &str, len: usize) {
        let bytes: Vec<u8> = (0..len).map(|i| b"0123456789abcdef"[i % 16]).collect();
        fs::write(self.dir.path("root").join(name), bytes).unwrap();
    }

    /// A local file of `len` bytes for a client to send.
    fn local_file(&self, name: &str, len: usize) -> String {
        let path = self.dir.path(name);
        fs::write(&path, vec![b'x'; len]).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Starts `tshark -i lo -w FILE -f FILTER` in the namespace and waits
    /// until it is capturing: not merely "Capturing on 'Loopback: lo'",
    /// which tshark prints as soon as it has started dumpcap (waiting for
    /// that alone loses the first packets when the machine is busy), but
    /// the file: dumpcap creates it, headers written, only once it has
    /// opened the interface and set the filter.
    fn capture(&self, name: &str, filter: &str) -> Capture {
        let file = self.dir.path(&format!("{name}.pcapng"));
        let log = self.dir.path(&format!("{name}.tshark.log"));
        let err = fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", self.ns.name(), "tshark", "-i", "lo", "-w"])
            .arg(&file)
            .args(["-f", &format!("({filter}) or udp port {SENTINEL_PORT}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn tshark");
        let mut capture = Capture {
            child: Some(child),
            ns: self.ns.name().to_owned(),
            file,
            log,
            dir: self.dir.0.clone(),
        };
        let deadline = Instant::now() + CAPTURE_START_TIMEOUT;
        loop {
            let said = fs::read_to_string(&capture.log).unwrap_or_default();
            if said.contains("Capturing on") && file_len(&capture.file) > 0 {
                break;
            }
            if let Some(child) = capture.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("tshark exited ({status}) before capturing:\n{said}");
            }
            assert!(
                Instant::now() < deadline,
                "tshark not capturing after {CAPTURE_START_TIMEOUT:?}:\n{said}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        capture
    }

    /// Runs `mioperf ARGS...` in the namespace; fails the test (with the
    /// server's log) unless it exits with `code`. Returns standard output.
    #[track_caller]
    fn client(&self, code: i32, args: &[&str]) -> String {
        let out = self.ns.run(bin(), args, RUN_TIMEOUT);
        self.check(&format!("mioperf {args:?}"), code, &out)
    }

    /// Runs a Python script in the namespace, which must exit 0.
    #[track_caller]
    fn python(&self, script: &str) -> String {
        let out = self.ns.run("python3", &["-c", script], RUN_TIMEOUT);
        self.check("python3", 0, &out)
    }

    #[track_caller]
    fn check(&self, what: &str, code: i32, out: &Output) -> String {
        assert_eq!(
            out.status.code(),
            Some(code),
            "{what}: {}\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server.stderr()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A running `tshark -w`, stopped (SIGINT, bounded) by [`Capture::finish`]
/// or, if the test fails first, on drop.
struct Capture {
    child: Option<Child>,
    /// The namespace it captures in.
    ns: String,
    file: PathBuf,
    log: PathBuf,
    dir: PathBuf,
}

impl Capture {
    /// Sends the sentinel datagram, waits until it is in the file, stops
    /// tshark, and returns the capture, readable by nobody.
    fn finish(mut self) -> Decoded {
        // A lab echo to a port nobody serves: one datagram out, refused.
        let _ = run_command(
            Command::new("ip")
                .args(["netns", "exec", &self.ns, bin(), "lab", "127.0.0.1"])
                .args([SENTINEL_PORT, "--udp", "--timeout", "1s", SENTINEL]),
            RUN_TIMEOUT,
        );
        let deadline = Instant::now() + CAPTURE_SETTLE_TIMEOUT;
        while !fs::read(&self.file)
            .unwrap_or_default()
            .windows(SENTINEL.len())
            .any(|w| w == SENTINEL.as_bytes())
        {
            assert!(
                Instant::now() < deadline,
                "the sentinel datagram not in {} after {CAPTURE_SETTLE_TIMEOUT:?}",
                self.file.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        assert!(file_len(&self.file) > 0, "no capture written: {log}");
        fs::set_permissions(&self.file, fs::Permissions::from_mode(0o644)).unwrap();
        let script = self.dir.join("mioperf.lua");
        fs::copy(SCRIPT, &script).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
        Decoded {
            file: self.file.clone(),
            script,
            home: self.dir.clone(),
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), libc::SIGINT);
            if wait_child(&mut child, TSHARK_TIMEOUT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tshark did not stop within {TSHARK_TIMEOUT:?} of SIGINT");
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// A finished capture and the script to read it with.
struct Decoded {
    file: PathBuf,
    script: PathBuf,
    home: PathBuf,
}

impl Decoded {
    /// `tshark -r FILE -X lua_script:... EXTRA -Y FILTER -T fields -e
    /// FIELDS...`: one row per displayed packet, one column per field
    /// (several occurrences in one packet joined by `,`). Fails the test
    /// on a Lua error, while loading or while dissecting.
    #[track_caller]
    fn fields(&self, extra: &[&str], filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "tshark",
            ]);
            c
        } else {
            Command::new("tshark")
        };
        cmd.env("HOME", &self.home)
            .arg("-r")
            .arg(&self.file)
            .arg("-X")
            .arg(format!("lua_script:{}", self.script.display()))
            .args(extra)
            .args(["-Y", filter, "-T", "fields", "-E", "occurrence=a"])
            .args(["-E", "aggregator=,", "-E", "separator=/t"]);
        // Every row also carries the expert messages, to catch Lua errors
        // raised while dissecting (Wireshark turns them into expert info).
        for f in fields.iter().chain(&["_ws.expert.message"]) {
            cmd.args(["-e", f]);
        }
        let out = run_command(&mut cmd, TSHARK_TIMEOUT);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && !stderr.contains("Lua: Error"),
            "tshark -r {} failed ({}):\n{stderr}",
            self.file.display(),
            out.status
        );
        stdout
            .lines()
            .map(|line| {
                let mut cols: Vec<String> = line.split('\t').map(str::to_owned).collect();
                cols.resize(fields.len() + 1, String::new());
                let expert = cols.pop().unwrap_or_default();
                assert!(
                    !expert.contains("Lua Error"),
                    "a dissector raised a Lua error: {expert}\nrow: {line}"
                );
                cols
            })
            .collect()
    }

    /// No packet of the capture carries a Lua error (the dissectors turn
    /// malformed input into their own expert info instead).
    #[track_caller]
    fn assert_clean(&self, extra: &[&str]) {
        let bad = self.fields(
            extra,
            "_ws.expert.message contains \"Lua Error\"",
            &["frame.number"],
        );
        assert!(bad.is_empty(), "Lua errors in frames {bad:?}");
    }

    /// [`fields`](Self::fields) with no extra arguments.
    #[track_caller]
    fn rows(&self, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
        self.fields(&[], filter, fields)
    }
}

/// Whether this process runs as root (the decode step then drops to
/// nobody).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Column `i` of every row.
fn col(rows: &[Vec<String>], i: usize) -> Vec<&str> {
    rows.iter().map(|r| r[i].as_str()).collect()
}

/// The numbers of a column whose cells may hold several values (`a,b`),
/// in order.
fn numbers(rows: &[Vec<String>], i: usize) -> Vec<u64> {
    rows.iter()
        .flat_map(|r| r[i].split(',').filter(|s| !s.is_empty()))
        .map(|s| s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}")))
        .collect()
}

#[test]
fn hello_udp_and_tcp_decode_ids_and_answers() {
    let Some(lab) = Lab::start("hello", &[], &["--only", "hello"]) else {
        return;
    };
    let cap = lab.capture("hello", "port 20009");
    let ok_udp = lab.client(0, &["hello", "127.0.0.1", "20009", "0042", "--udp"]);
    lab.client(1, &["hello", "127.0.0.1", "20009", "42", "--udp"]);
    let ok_tcp = lab.client(0, &["hello", "127.0.0.1", "20009", "77", "--tcp"]);
    let d = cap.finish();
    d.assert_clean(&[]);

    let fields = [
        "mioperf_hello.kind",
        "mioperf_hello.id",
        "mioperf_hello.id_value",
        "mioperf_hello.client_ip",
        "mioperf_hello.client_port",
        "udp.srcport",
        "tcp.srcport",
    ];
    let udp = d.rows("udp && mioperf_hello", &fields);
    assert_eq!(
        col(&udp, 0),
        ["request", "ok", "request", "reset"],
        "{udp:?}"
    );
    // The ID as each side wrote it, and its value.
    assert_eq!(col(&udp, 1), ["0042", "0042", "42", "42"], "{udp:?}");
    assert_eq!(col(&udp, 2), ["42", "42", "42", "42"], "{udp:?}");
    // The answer's address and port: what the client printed, and the
    // request's own source port.
    let (_, ip, port) = common::parse_ok(ok_udp.lines().next().unwrap_or_default());
    assert_eq!(udp[1][3], ip);
    assert_eq!(udp[1][4], port.to_string());
    assert_eq!(udp[0][5], port.to_string());

    let tcp = d.rows("tcp && mioperf_hello", &fields);
    assert_eq!(col(&tcp, 0), ["request", "ok"], "{tcp:?}");
    assert_eq!(col(&tcp, 1), ["77", "77"], "{tcp:?}");
    let (_, _, port) = common::parse_ok(ok_tcp.lines().next().unwrap_or_default());
    assert_eq!(tcp[1][4], port.to_string());
    assert_eq!(tcp[0][6], port.to_string());
}

#[test]
fn lab_udp_decodes_stream_headers_file_and_echo() {
    let Some(lab) = Lab::start("lab-udp", &[], &["--only", "lab"]) else {
        return;
    };
    let cap = lab.capture("lab-udp", "udp port 8120");
    // Interval 0: the server sends a GSO train, which a loopback capture
    // records as one datagram; 2 ms: one datagram per segment.
    lab.client(0, &["lab", "127.0.0.1", "8120", "--udp", "stream-0-5-100"]);
    lab.client(0, &["lab", "127.0.0.1", "8120", "--udp", "stream-2-3-64"]);
    lab.client(0, &["lab", "127.0.0.1", "8120", "--udp", "3000"]);
    lab.client(0, &["lab", "127.0.0.1", "8120", "--udp", "hi there"]);
    let d = cap.finish();
    d.assert_clean(&[]);

    let fields = [
        "mioperf_lab.kind",
        "mioperf_lab.seq",
        "mioperf_lab.sched_ns",
        "mioperf_lab.filler_len",
        "mioperf_lab.stream.interval_ms",
        "mioperf_lab.stream.count",
        "mioperf_lab.stream.size",
        "mioperf_lab.file.size",
        "mioperf_lab.file.data_len",
        "mioperf_lab.echo",
    ];
    let requests = d.rows("mioperf_lab && udp.dstport == 8120", &fields);
    assert_eq!(
        col(&requests, 0),
        ["stream_request", "stream_request", "file_request", "echo"],
        "{requests:?}"
    );
    assert_eq!(col(&requests, 4)[..2], ["0", "2"]);
    assert_eq!(col(&requests, 5)[..2], ["5", "3"]);
    assert_eq!(col(&requests, 6)[..2], ["100", "64"]);
    assert_eq!(requests[2][7], "3000");
    assert_eq!(requests[3][9], "hi there");

    let segments = d.rows("mioperf_lab.kind == \"segment\"", &fields);
    // Both streams' sequence numbers from 0, the scheduled times i × the
    // interval, and the filler after the 16-byte header.
    assert_eq!(
        numbers(&segments, 1),
        [0, 1, 2, 3, 4, 0, 1, 2],
        "{segments:?}"
    );
    assert_eq!(
        numbers(&segments, 2),
        [0, 0, 0, 0, 0, 0, 2_000_000, 4_000_000],
        "{segments:?}"
    );
    assert_eq!(numbers(&segments, 3), [84, 84, 84, 84, 84, 48, 48, 48]);

    let file = d.rows(
        "mioperf_lab.kind == \"ready\" || mioperf_lab.kind == \"done\" || mioperf_lab.kind == \"file_data\"",
        &fields,
    );
    let kinds: Vec<&str> = file.iter().flat_map(|r| r[0].split(',')).collect();
    assert_eq!(kinds.first(), Some(&"ready"), "{file:?}");
    assert_eq!(kinds.last(), Some(&"done"), "{file:?}");
    assert_eq!(
        numbers(&file, 7),
        [3000, 3000],
        "READY and DONE sizes: {file:?}"
    );
    assert_eq!(numbers(&file, 8).iter().sum::<u64>(), 3000, "{file:?}");

    let echo = d.rows("mioperf_lab.kind == \"echo_reply\"", &fields);
    assert_eq!(col(&echo, 9), ["hi there"]);
}

#[test]
fn lab_tcp_reassembles_stream_segments_and_file() {
    let Some(lab) = Lab::start("lab-tcp", &[], &["--only", "lab"]) else {
        return;
    };
    let cap = lab.capture("lab-tcp", "tcp port 8120");
    // Segments of 10 000 bytes straddle the TCP segments (up to 65 483
    // bytes on loopback): each is decoded from reassembled data.
    lab.client(
        0,
        &["lab", "127.0.0.1", "8120", "--tcp", "stream-0-40-10000"],
    );
    // Larger than one loopback segment (65483 bytes): the data spans
    // several, after the READY line.
    lab.client(0, &["lab", "127.0.0.1", "8120", "--tcp", "200000"]);
    lab.client(0, &["lab", "127.0.0.1", "8120", "--tcp", "echo me"]);
    let d = cap.finish();
    d.assert_clean(&[]);

    let fields = [
        "mioperf_lab.kind",
        "mioperf_lab.seq",
        "mioperf_lab.sched_ns",
        "mioperf_lab.filler_len",
        "mioperf_lab.stream.size",
        "mioperf_lab.file.size",
        "mioperf_lab.file.data_len",
        "mioperf_lab.echo",
    ];
    let requests = d.rows("mioperf_lab && tcp.dstport == 8120", &fields);
    assert_eq!(
        col(&requests, 0),
        ["stream_request", "file_request", "echo"],
        "{requests:?}"
    );
    assert_eq!(requests[0][4], "10000");
    assert_eq!(requests[1][5], "200000");

    let segments = d.rows("mioperf_lab.kind == \"segment\"", &fields);
    assert_eq!(
        numbers(&segments, 1),
        (0..40).collect::<Vec<u64>>(),
        "{segments:?}"
    );
    assert_eq!(numbers(&segments, 3), [10_000 - 16; 40]);

    let file = d.rows(
        "mioperf_lab.file.data_len || mioperf_lab.kind == \"ready\"",
        &fields,
    );
    assert!(file[0][0].starts_with("ready"), "{file:?}");
    assert_eq!(file[0][5], "200000");
    assert_eq!(numbers(&file, 6).iter().sum::<u64>(), 200_000, "{file:?}");

    let echo = d.rows("mioperf_lab.kind == \"echo_reply\"", &fields);
    assert_eq!(col(&echo, 7), ["echo me"]);
}

#[test]
fn msg_reassembles_frames_and_receipts() {
    let Some(lab) = Lab::start("msg", &[], &["--only", "msg"]) else {
        return;
    };
    let small = lab.local_file("small", 9);
    let big = lab.local_file("big", 300_000);
    let cap = lab.capture("msg", "tcp port 7001");
    lab.client(0, &["msg", "127.0.0.1", "7001", &small]);
    lab.client(0, &["msg", "127.0.0.1", "7001", &big]);
    let d = cap.finish();
    d.assert_clean(&[]);

    let fields = [
        "mioperf_msg.len",
        "mioperf_msg.receipt",
        "mioperf_msg.receipt_len",
    ];
    let frames = d.rows("mioperf_msg && tcp.dstport == 7001", &fields);
    // One frame each, reassembled whole from its TCP segments.
    assert_eq!(col(&frames, 0), ["9", "300000"], "{frames:?}");
    let receipts = d.rows("mioperf_msg.receipt", &fields);
    assert_eq!(col(&receipts, 1), ["OK 9", "OK 300000"], "{receipts:?}");
    assert_eq!(col(&receipts, 2), ["9", "300000"]);
    assert_eq!(col(&receipts, 0), ["4", "9"], "the receipts' own lengths");
}

#[test]
fn tcpfile_decodes_requests_answers_and_data() {
    let Some(lab) = Lab::start("tcpfile", &[], &["--only", "tcpfile"]) else {
        return;
    };
    lab.serve_file("served.bin", 100_000);
    let up = lab.local_file("up", 5000);
    let out = lab.dir.path("got.bin");
    let cap = lab.capture("tcpfile", "tcp port 50002");
    lab.client(
        0,
        &[
            "get",
            "127.0.0.1:50002",
            "served.bin",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    lab.client(0, &["put", "127.0.0.1:50002", &up, "--as", "up.bin"]);
    lab.client(
        1,
        &[
            "get",
            "127.0.0.1:50002",
            "missing.bin",
            "-o",
            out.to_str().unwrap(),
            "-f",
        ],
    );
    let d = cap.finish();
    d.assert_clean(&[]);

    let fields = [
        "mioperf_tcpfile.name",
        "mioperf_tcpfile.method",
        "mioperf_tcpfile.size",
        "mioperf_tcpfile.status",
        "mioperf_tcpfile.answer_size",
        "mioperf_tcpfile.error",
        "mioperf_tcpfile.data_len",
        "tcp.stream",
    ];
    let requests = d.rows("mioperf_tcpfile.method", &fields);
    assert_eq!(
        col(&requests, 0),
        ["served.bin", "up.bin", "missing.bin"],
        "{requests:?}"
    );
    assert_eq!(col(&requests, 1), ["GET", "PUT", "GET"]);
    assert_eq!(requests[1][2], "5000", "PUT carries its size");
    let answers = d.rows("mioperf_tcpfile.status", &fields);
    assert_eq!(col(&answers, 3), ["OK", "OK", "ERROR"], "{answers:?}");
    assert_eq!(col(&answers, 4)[..2], ["100000", "5000"]);
    assert_eq!(answers[2][5], "not found: missing.bin");
    // The data after each line, per connection.
    let data = d.rows("mioperf_tcpfile.data_len", &fields);
    for (stream, want) in [(&requests[0][7], 100_000u64), (&requests[1][7], 5000)] {
        let mine: Vec<Vec<String>> = data.iter().filter(|r| &r[7] == stream).cloned().collect();
        assert_eq!(
            numbers(&mine, 6).iter().sum::<u64>(),
            want,
            "stream {stream}: {data:?}"
        );
    }
}

#[test]
fn stopwait_decodes_types_alternating_bits_and_blocks() {
    let Some(lab) = Lab::start("stopwait", &[], &["--only", "stopwait"]) else {
        return;
    };
    lab.serve_file("sw.bin", 250);
    let up = lab.local_file("up", 9);
    let out = lab.dir.path("got.bin");
    let cap = lab.capture("stopwait", "udp port 50001");
    lab.client(
        0,
        &[
            "stopwait",
            "get",
            "127.0.0.1:50001",
            "sw.bin",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    lab.client(
        0,
        &["stopwait", "put", "127.0.0.1:50001", &up, "--as", "up.txt"],
    );
    let d = cap.finish();
    d.assert_clean(&[]);

    let rows = d.rows(
        "mioperf_stopwait",
        &[
            "mioperf_stopwait.type",
            "mioperf_stopwait.bit",
            "mioperf_stopwait.block",
            "mioperf_stopwait.name",
            "mioperf_stopwait.data_len",
            "mioperf_stopwait.text",
        ],
    );
    let got: Vec<String> = rows
        .iter()
        .map(|r| format!("{}|{}|{}|{}{}{}", r[0], r[1], r[2], r[3], r[4], r[5]))
        .collect();
    assert_eq!(
        got,
        [
            // GET of 250 bytes: blocks of 100, 100, 50, the bit alternating.
            "G|0|0|sw.bin",
            "D|1|1|100",
            "A|1|1|ack",
            "D|0|2|100",
            "A|0|2|ack",
            "D|1|3|50",
            "A|1|3|ack",
            "F|F|0|I'm Done",
            // PUT of 9 bytes.
            "P|0|0|up.txt",
            "A|0|0|ack",
            "D|1|1|9",
            "A|1|1|ack",
            "F|F|1|I'm Done",
            "A|F|1|ack",
        ],
    );
}

#[test]
fn window_hands_segments_to_tcp_and_tcpfile_above_it() {
    let Some(lab) = Lab::start("window", &[], &["--only", "window"]) else {
        return;
    };
    lab.serve_file("w.bin", 20_000);
    let up = lab.local_file("up", 700);
    let out = lab.dir.path("got.bin");
    let cap = lab.capture("window", "udp port 50003");
    lab.client(
        0,
        &[
            "window",
            "get",
            "127.0.0.1:50003",
            "w.bin",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    lab.client(
        0,
        &["window", "put", "127.0.0.1:50003", &up, "--as", "wup.bin"],
    );
    let d = cap.finish();
    d.assert_clean(&[]);

    let fields = [
        "tcp.srcport",
        "tcp.dstport",
        "tcp.flags.syn",
        "tcp.flags.ack",
        "mioperf_window.data_len",
        "mioperf_tcpfile.name",
        "mioperf_tcpfile.method",
        "mioperf_tcpfile.status",
        "mioperf_tcpfile.answer_size",
        "mioperf_tcpfile.data_len",
        "tcp.len",
        "tcp.stream",
    ];
    // The handshakes: Wireshark's TCP read the segments, with the UDP
    // ports in place of the carrier's ignored ones.
    let syns = d.rows("tcp.flags.syn == 1", &fields);
    assert_eq!(syns.len(), 4, "two SYNs and two SYN-ACKs: {syns:?}");
    assert_eq!(col(&syns, 1)[0], "50003");
    assert_eq!(col(&syns, 0)[1], "50003");
    assert_eq!(col(&syns, 3)[..2], ["0", "1"]);

    let requests = d.rows("mioperf_tcpfile.method", &fields);
    assert_eq!(col(&requests, 5), ["w.bin", "wup.bin"], "{requests:?}");
    assert_eq!(col(&requests, 6), ["GET", "PUT"]);
    let answers = d.rows("mioperf_tcpfile.status", &fields);
    assert_eq!(col(&answers, 7), ["OK", "OK"], "{answers:?}");
    assert_eq!(col(&answers, 8), ["20000", "700"]);
    // Every byte of the GET, over segments of at most one datagram.
    let data = d.rows("mioperf_tcpfile.data_len && tcp.srcport == 50003", &fields);
    assert_eq!(numbers(&data, 9).iter().sum::<u64>(), 20_000, "{data:?}");
    assert!(numbers(&data, 10).iter().all(|&n| n <= 1452), "{data:?}");
}

/// What the malformed test sends (Python, in the namespace): for each
/// datagram, how many answers to wait for; each TCP connection is read
/// until the server closes it.
const MALFORMED_TRAFFIC: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for port, data, answers in [
    (41001, b"X0000001abc", 0),   # bad type: the server ignores it
    (41001, b"D1", 0),            # shorter than the header
    (41001, b"D1ab3de", 0),       # block not digits
    (41009, b"HELLO 12345", 1),   # 5-digit id: ERROR bad id
    (41009, b"BONJOUR 1", 1),     # unknown verb
    (41120, b"stream-0-2-32", 2), # two segments: decoded with no port to go by
    (41120, b"stream-1-2-" + b"9" * 30, 1),  # a size past every limit: ERROR
]:
    s.sendto(data, ("127.0.0.1", port))
    for _ in range(answers):
        s.recvfrom(65536)
for port, data in [
    (41009, b"A" * 300),          # a hello line past 256 bytes: ERROR, closed
    (41701, b"\xff\xff\xff\xff"), # a msg frame past msg_max: ERR, closed
    (41002, b"x" * 1100),         # a tcpfile request past 1024 bytes
    (41002, b"a.txt:DELETE\n"),   # an unknown tcpfile method
]:
    c = socket.create_connection(("127.0.0.1", port), timeout=3)
    c.sendall(data)
    try:
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()
"#;

/// The malformed test's servers, all on ports mioperf does not use by
/// default: "Decode As" for each.
const MALFORMED_DECODE_AS: [&str; 16] = [
    "-d",
    "udp.port==41009,mioperf_hello",
    "-d",
    "tcp.port==41009,mioperf_hello",
    "-d",
    "udp.port==41120,mioperf_lab",
    "-d",
    "tcp.port==41701,mioperf_msg",
    "-d",
    "tcp.port==41002,mioperf_tcpfile",
    "-d",
    "udp.port==41001,mioperf_stopwait",
    "-d",
    "udp.port==41003,mioperf_window",
    "-d",
    "tcp.port==41003,mioperf_tcpfile",
];

/// Malformed datagrams and streams become expert info, never Lua errors;
/// and "Decode As" finds the dissectors on ports mioperf does not use by
/// default.
#[test]
fn malformed_packets_are_expert_info_and_decode_as_works() {
    let Some(lab) = Lab::start(
        "malformed",
        &["python3"],
        &[
            "--only",
            "hello,lab,msg,tcpfile,stopwait,window",
            "--listen",
            "hello=127.0.0.1:41009",
            "--listen",
            "lab=127.0.0.1:41120",
            "--listen",
            "msg=127.0.0.1:41701",
            "--listen",
            "tcpfile=127.0.0.1:41002",
            "--listen",
            "stopwait=127.0.0.1:41001",
            "--listen",
            "window=127.0.0.1:41003",
        ],
    ) else {
        return;
    };
    let cap = lab.capture("malformed", "portrange 41000-41999");
    lab.python(MALFORMED_TRAFFIC);
    // window on another port: the carrier and the tcpfile inside it are
    // both found by Decode As.
    let out = lab.dir.path("none.bin");
    lab.client(
        1,
        &[
            "window",
            "get",
            "127.0.0.1:41003",
            "none.bin",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let d = cap.finish();
    d.assert_clean(&[]);
    let decode_as = MALFORMED_DECODE_AS;
    d.assert_clean(&decode_as);
    let count = |filter: &str| d.fields(&decode_as, filter, &["frame.number"]).len();
    assert_eq!(count("mioperf_stopwait.bad_type"), 1);
    assert_eq!(count("mioperf_stopwait.short"), 1);
    assert_eq!(count("mioperf_stopwait.bad_block"), 1);
    assert_eq!(
        count("mioperf_hello.malformed"),
        2,
        "bad id and unknown verb"
    );
    assert_eq!(count("mioperf_hello.too_long"), 1);
    assert_eq!(
        count("mioperf_hello.error_answer"),
        3,
        "the server's ERRORs"
    );
    assert_eq!(count("mioperf_lab.error_answer"), 1);
    assert_eq!(count("mioperf_msg.too_large"), 1);
    assert_eq!(count("mioperf_msg.error_answer"), 1, "ERR too large");
    assert_eq!(count("mioperf_tcpfile.too_long"), 1);
    assert_eq!(count("mioperf_tcpfile.malformed"), 1, "DELETE");
    let refused = d.fields(
        &decode_as,
        "mioperf_tcpfile.error && mioperf_window",
        &["mioperf_tcpfile.error", "tcp.srcport"],
    );
    assert_eq!(
        refused,
        [["not found: none.bin", "41003"]],
        "window's tcpfile answer"
    );
    let segments = d.fields(&decode_as, "mioperf_lab.seq", &["mioperf_lab.seq"]);
    assert_eq!(numbers(&segments, 0), [0, 1], "{segments:?}");
    // Without Decode As none of these ports means anything to the script
    // (the hello heuristic finds only well-formed requests).
    let undecoded = d.rows(
        "mioperf_stopwait || mioperf_lab || mioperf_msg || mioperf_tcpfile || mioperf_window",
        &["frame.number"],
    );
    assert!(undecoded.is_empty(), "{undecoded:?}");
}
