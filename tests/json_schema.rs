//! Every `--json` document and every `--json-stream` line that mioperf
//! prints is valid against `docs/schema/mioperf.schema.json`, the schema
//! `docs/json.md` describes: each client against a real `serve` (successes,
//! refusals, a timeout and a failure), and `bench` for every protocol and
//! mode on a short run.
//!
//! The schema refuses unknown keys and requires the documented ones, so a
//! key renamed in the code without the schema and the docs fails here
//! (`a_renamed_key_is_caught` shows it on a real document).

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use boon::{Compiler, SchemaIndex, Schemas};
use common::netns::Netns;
use common::tunserve::have;
use common::{Dir, Server, run_with_timeout};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Bound of one client or bench run.
const LIMIT: Duration = Duration::from_secs(30);

/// The protocols `serve` runs here: every one a client speaks without root.
const SERVED: &[&str] = &[
    "hello", "lab", "msg", "tcpfile", "stopwait", "tftp", "window",
];

/// The schema compiled once per test, with an entry point per kind of
/// document.
struct Schema {
    schemas: Schemas,
    client: SchemaIndex,
    bench: SchemaIndex,
    stream_line: SchemaIndex,
    proxy: SchemaIndex,
}

impl Schema {
    fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/schema/mioperf.schema.json"
        );
        let text = std::fs::read_to_string(path).expect("read the schema");
        let json: Value = serde_json::from_str(&text).expect("the schema is JSON");
        let url = "file:///mioperf.schema.json";
        let mut compiler = Compiler::new();
        compiler.add_resource(url, json).expect("add the schema");
        let mut schemas = Schemas::new();
        let mut entry = |def: &str| {
            compiler
                .compile(&format!("{url}#/$defs/{def}"), &mut schemas)
                .unwrap_or_else(|e| panic!("compile $defs/{def}: {e:#}"))
        };
        let (client, bench, stream_line, proxy) = (
            entry("client"),
            entry("bench_document"),
            entry("bench_stream_line"),
            entry("proxy_report"),
        );
        Self {
            schemas,
            client,
            bench,
            stream_line,
            proxy,
        }
    }

    /// Why `doc` is not valid against `index`, or `None`.
    fn errors(&self, doc: &Value, index: SchemaIndex) -> Option<String> {
        self.schemas
            .validate(doc, index)
            .err()
            .map(|e| format!("{e:#}"))
    }

    #[track_caller]
    fn check(&self, what: &str, doc: &Value, index: SchemaIndex) {
        if let Some(why) = self.errors(doc, index) {
            panic!("{what}: not valid against the schema:\n{why}\ndocument: {doc:#}");
        }
    }
}

/// Runs `mioperf ARGS` and parses its standard output as one JSON object;
/// checks the exit code against `code`.
#[track_caller]
fn json_of(args: &[&str], code: i32) -> Value {
    let out = run_with_timeout(args, LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
}

/// `serve` with every protocol of [`SERVED`] on a free loopback port and a
/// root holding `f.bin` (10 000 bytes).
fn serve(root: &Dir) -> Server {
    std::fs::write(root.path("f.bin"), vec![7u8; 10_000]).unwrap();
    let only = SERVED.join(",");
    let listens: Vec<String> = SERVED.iter().map(|p| format!("{p}=127.0.0.1:0")).collect();
    let mut args = vec!["--only", only.as_str(), "--root", root.s()];
    for l in &listens {
        args.extend_from_slice(&["--listen", l]);
    }
    Server::spawn(&args)
}

#[test]
fn every_clients_json_is_valid() {
    let schema = Schema::load();
    let root = Dir::new("json-schema-root");
    let local = Dir::new("json-schema-local");
    let upload = local.path("up.bin");
    std::fs::write(&upload, vec![3u8; 5_000]).unwrap();
    let upload = upload.to_str().unwrap();
    let server = serve(&root);
    let port = |proto: &str, transport: &str| server.addr(proto, transport).port().to_string();
    let addr = |proto: &str, transport: &str| server.addr(proto, transport).to_string();
    let out = |name: &str| local.path(name).to_str().unwrap().to_owned();

    // Something that never answers: a bound UDP socket nobody reads.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent = silent.local_addr().unwrap().to_string();

    let (hello_udp, hello_tcp) = (port("hello", "udp"), port("hello", "tcp"));
    let (lab_udp, lab_tcp) = (port("lab", "udp"), port("lab", "tcp"));
    let msg = port("msg", "tcp");
    let (tcpfile, stopwait) = (addr("tcpfile", "tcp"), addr("stopwait", "udp"));
    let (tftp, window) = (addr("tftp", "udp"), addr("window", "udp"));
    let runs: Vec<(Vec<String>, i32)> = [
        (vec!["hello", "127.0.0.1", &hello_udp, "7"], 0),
        (vec!["hello", "127.0.0.1", &hello_tcp, "7", "--tcp"], 1),
        (vec!["hello", "127.0.0.1", "9", "8", "--timeout", "1s"], 2),
        (vec!["lab", "127.0.0.1", &lab_tcp, "hello"], 0),
        (vec!["lab", "127.0.0.1", &lab_tcp, "100000"], 0),
        (vec!["lab", "127.0.0.1", &lab_udp, "--udp", "20000"], 0),
        (
            vec!["lab", "127.0.0.1", &lab_udp, "--udp", "stream-1-20-64"],
            0,
        ),
        (vec!["lab", "127.0.0.1", &lab_tcp, "stream-0-20-16"], 0),
        (vec!["lab", "127.0.0.1", &lab_tcp, "999999999"], 1),
        (vec!["msg", "127.0.0.1", &msg, upload], 0),
        (vec!["msg", "127.0.0.1", &msg, upload, "--count", "5"], 0),
        (vec!["get", &tcpfile, "f.bin", "-o", &out("t.bin")], 0),
        (vec!["get", &tcpfile, "missing.bin", "-o", &out("m.bin")], 1),
        (vec!["put", &tcpfile, upload, "--as", "up-tcpfile.bin"], 0),
        (
            vec!["stopwait", "get", &stopwait, "f.bin", "-o", &out("s.bin")],
            0,
        ),
        (
            vec![
                "stopwait",
                "get",
                &stopwait,
                "missing.bin",
                "-o",
                &out("m.bin"),
            ],
            1,
        ),
        (
            vec!["stopwait", "put", &stopwait, upload, "--as", "up-sw.bin"],
            0,
        ),
        (
            vec![
                "stopwait",
                "get",
                &silent,
                "f.bin",
                "-o",
                &out("x.bin"),
                "--timeout",
                "100ms",
                "--tries",
                "1",
            ],
            2,
        ),
        (vec!["tftp", "get", &tftp, "f.bin", "-o", &out("f.bin")], 0),
        (
            vec!["tftp", "get", &tftp, "missing.bin", "-o", &out("m.bin")],
            1,
        ),
        (vec!["tftp", "put", &tftp, upload, "--as", "up-tftp.bin"], 0),
        (
            vec!["window", "get", &window, "f.bin", "-o", &out("w.bin")],
            0,
        ),
        (
            vec!["window", "put", &window, upload, "--as", "up-window.bin"],
            0,
        ),
        (
            vec!["window", "get", &window, "missing.bin", "-o", &out("m.bin")],
            1,
        ),
    ]
    .into_iter()
    .map(|(args, code)| (args.into_iter().map(str::to_owned).collect(), code))
    .collect();
    for (args, code) in runs {
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        if matches!(args[0], "get" | "stopwait" | "tftp" | "window") {
            args.push("--force");
        }
        args.push("--json");
        let doc = json_of(&args, code);
        schema.check(&format!("{args:?}"), &doc, schema.client);
    }
}

/// The lab prompt, driven from a pipe: one document per line typed.
#[test]
fn the_lab_prompts_lines_are_valid() {
    let schema = Schema::load();
    let root = Dir::new("json-schema-prompt-root");
    let server = serve(&root);
    let lab_tcp = server.addr("lab", "tcp").port().to_string();
    let lab_tcp = lab_tcp.as_str();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mioperf"))
        .args(["lab", "127.0.0.1", lab_tcp, "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"100\nhello\nstream\n0.5\n5\n100\nquit\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    for line in lines.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        schema.check("lab prompt", &doc, schema.client);
    }
}

/// The proxy's `--json` report, after a transfer through it with every
/// impairment on (so every counter is exercised).
#[test]
fn the_proxys_json_is_valid() {
    let schema = Schema::load();
    let root = Dir::new("json-schema-proxy-root");
    std::fs::write(root.path("f.bin"), vec![1u8; 3_000]).unwrap();
    let server = Server::spawn(&[
        "--only",
        "stopwait",
        "--listen",
        "stopwait=127.0.0.1:0",
        "--root",
        root.s(),
        "--stopwait-timeout",
        "50ms",
    ]);
    let upstream = server.udp("stopwait").to_string();
    let mut proxy = Server::proxy(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--seed",
        "3",
        "--drop",
        "0.1",
        "--dup",
        "0.1",
        "--reorder",
        "0.1",
        "--latency",
        "1ms",
        "--json",
    ]);
    let via = proxy.udp("proxy").to_string();
    let got = root.path("got.bin");
    let args = [
        "stopwait",
        "get",
        &via,
        "f.bin",
        "-o",
        got.to_str().unwrap(),
        "--timeout",
        "50ms",
        "--tries",
        "50",
        "--json",
    ];
    let doc = json_of(&args, 0);
    schema.check("stopwait through the proxy", &doc, schema.client);
    proxy.signal(2);
    let status = proxy.wait_exit(LIMIT).expect("the proxy exits");
    assert!(status.success(), "{status}");
    let lines = proxy.rest_of_stdout(Duration::from_secs(2));
    let last = lines.last().expect("a report line");
    let report: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    schema.check("proxy --json", &report, schema.proxy);
}

/// A child process killed and reaped when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tunstack get` (the one client that needs a TUN device, so root and a
/// namespace) against a kernel HTTP server in that namespace: a fetch and
/// a refused connection. Skipped, with a note, where no namespace can be
/// made (never under CI).
#[test]
fn the_tunstack_clients_json_is_valid() {
    const TEST: &str = "the_tunstack_clients_json_is_valid";
    if !have(TEST, &["ip", "python3"]) {
        return;
    }
    let Some(ns) = Netns::new(TEST) else {
        return;
    };
    let schema = Schema::load();
    // The server binds the kernel's side of the TUN device, which exists
    // only once the client has made it.
    let sysctl = ns.run_default(
        "sh",
        &["-c", "echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind"],
    );
    assert!(sysctl.status.success(), "{sysctl:?}");
    let served = Dir::new("json-schema-http");
    std::fs::write(served.path("f.bin"), vec![5u8; 100_000]).unwrap();
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "python3",
            "-u",
            "-m",
            "http.server",
        ])
        .args(["--bind", "192.0.2.2", "8088", "--directory", served.s()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn python3");
    let stdout = child.stdout.take().expect("stdout piped");
    let _http = Killed(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(LIMIT).expect("the HTTP server started");
    assert!(line.starts_with("Serving HTTP"), "{line}");

    let got = served.path("got.bin");
    let got = got.to_str().unwrap();
    for (url, code) in [
        ("http://192.0.2.2:8088/f.bin", 0),
        ("http://192.0.2.2:8089/f.bin", 2),
    ] {
        let args = ["tunstack", "get", url, "-o", got, "--json"];
        let out = ns.run(common::bin(), &args, LIMIT);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        schema.check(url, &doc, schema.client);
        let _ = std::fs::remove_file(got);
    }
}

/// Runs `mioperf bench ARGS --json` and validates the document.
fn bench_document(schema: &Schema, args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let doc = json_of(&all, 0);
    schema.check(&format!("{all:?}"), &doc, schema.bench);
    doc
}

#[test]
fn every_bench_document_is_valid() {
    let schema = Schema::load();
    let runs: &[&[&str]] = &[
        &["hello", "-n", "20"],
        &["hello", "--tcp", "--mode", "connect", "-n", "5"],
        &["lab", "-n", "20"],
        &["lab", "--tcp", "--mode", "file", "-l", "100000", "-n", "3"],
        &[
            "lab", "--mode", "stream", "-b", "1M", "-l", "500", "-n", "100",
        ],
        &["msg", "-n", "20"],
        &["tcpfile", "-l", "100000", "-n", "3"],
        &["tcpfile", "--mode", "put", "-l", "100000", "-n", "3"],
        &["tcpfile", "--bidir", "-l", "100000", "-n", "4"],
        &["stopwait", "-l", "5000", "-n", "2"],
        &["tftp", "-l", "50000", "-n", "2"],
        &["tftp", "--mode", "put", "-l", "50000", "-n", "2"],
        &["window", "-l", "100000", "-n", "2"],
    ];
    for args in runs {
        bench_document(&schema, args);
    }
}

#[test]
fn every_bench_stream_line_is_valid() {
    let schema = Schema::load();
    let args = [
        "bench",
        "hello",
        "-t",
        "1s",
        "--interval",
        "200ms",
        "--json-stream",
    ];
    let out = run_with_timeout(&args, LIMIT);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = 0;
    for line in text.lines() {
        let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        schema.check(line, &doc, schema.stream_line);
        lines += 1;
    }
    assert!(lines >= 3, "intervals and an end: {text}");
}

/// The schema is strict: a real document with one key renamed (as the
/// bench's `bits_per_sec` once was), one dropped or one added is refused.
#[test]
fn a_renamed_key_is_caught() {
    let schema = Schema::load();
    let doc = bench_document(&schema, &["hello", "-n", "5"]);
    let renamed = |mut doc: Value, at: &[&str], from: &str, to: &str| {
        let mut object = &mut doc;
        for key in at {
            object = &mut object[*key];
        }
        let map = object.as_object_mut().unwrap();
        let value = map.remove(from).unwrap();
        if !to.is_empty() {
            map.insert(to.to_owned(), value);
        }
        doc
    };
    let broken = [
        renamed(doc.clone(), &["summary"], "bits_per_second", "bits_per_sec"),
        renamed(doc.clone(), &["summary"], "requests_per_second", ""),
        renamed(doc.clone(), &[], "tool", "tool_name"),
        renamed(doc.clone(), &["environment"], "seed", "rng_seed"),
    ];
    for b in &broken {
        assert!(schema.errors(b, schema.bench).is_some(), "accepted: {b:#}");
    }

    let server = Server::hello(&[]);
    let port = server.udp("hello").port().to_string();
    let doc = json_of(&["hello", "127.0.0.1", &port, "3", "--json"], 0);
    schema.check("hello", &doc, schema.client);
    let b = renamed(doc, &["hello"], "rtt_ns", "rtt_us");
    assert!(
        schema.errors(&b, schema.client).is_some(),
        "accepted: {b:#}"
    );
}
