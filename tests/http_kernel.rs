//! The HTTP sessions on kernel TCP, against real clients: `curl` and
//! `wget` fetch the index and files from an [`HttpAcceptor`] over a real
//! store on loopback (zero-copy `sendfile` on, and off as the userspace TCP
//! runs it), and the project's own [`Get`] client fetches from it. The
//! reactor runs in the test's thread; each outside client runs in a thread
//! of its own, bounded by `--max-time`. Skipped, saying why, where `curl`
//! or `wget` is missing.

#![allow(
    clippy::disallowed_methods,
    reason = "the test bounds its own wall-clock time around a real reactor"
)]

use mioperf::proto::data::MemorySink;
use mioperf::proto::http::HttpAcceptor;
use mioperf::proto::http::client::{Get, GetReport};
use mioperf::proto::outcome::{ClientError, OutcomeSlot};
use mioperf::proto::{Context, Driven, Wake};
use mioperf::reactor::{Reactor, ReactorConfig};
use mioperf::store::{Store, StoreConfig};
use mioperf::time::{Duration, Instant};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::mpsc;

/// Longest any one exchange may take on loopback before the test fails.
const LIMIT: Duration = Duration::from_secs(20);

/// Wakes the reactor every few milliseconds, so the test loop notices an
/// outside client's end even when no socket event follows it.
struct Ticker(Instant);

impl Driven for Ticker {
    fn handle_timeout(&mut self, cx: &mut Context) {
        self.0 = cx.now + Duration::from_millis(20);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.0)
    }
    fn wake(&self) -> Wake {
        Wake::Coarse
    }
}

struct Fixture {
    dir: PathBuf,
    reactor: Reactor,
    /// Zero-copy on.
    port: u16,
    /// Zero-copy off.
    plain_port: u16,
    big: Vec<u8>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture(tag: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("mioperf-http-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| u8::try_from(i * 7 % 251).unwrap())
        .collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(root.join("small.txt"), b"hello").unwrap();
    std::fs::write(root.join("a <b> & c"), b"odd").unwrap();
    let store: Rc<Store> = Rc::new(Store::open(&root, StoreConfig::default()).unwrap());
    let mut reactor = Reactor::new(ReactorConfig::default()).unwrap();
    reactor.add_detached(Box::new(Ticker(Instant::ZERO)));
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let port = reactor
        .listen_tcp(any, Box::new(HttpAcceptor::new(store.clone())))
        .unwrap()
        .port();
    let plain_port = reactor
        .listen_tcp(
            any,
            Box::new(HttpAcceptor::new(store).with_zero_copy(false)),
        )
        .unwrap()
        .port();
    Fixture {
        dir,
        reactor,
        port,
        plain_port,
        big,
    }
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: {tool} not found");
    }
    ok
}

impl Fixture {
    /// Runs `cmd` in a thread while the reactor turns; its stdout.
    fn outside(&mut self, program: &str, args: &[String]) -> Vec<u8> {
        let (tx, rx) = mpsc::channel();
        let mut cmd = Command::new(program);
        cmd.args(args);
        let worker = std::thread::spawn(move || {
            let out = cmd.output().expect("runs");
            let _ = tx.send(out);
        });
        let start = std::time::Instant::now();
        let out = loop {
            if let Ok(out) = rx.try_recv() {
                break out;
            }
            assert!(start.elapsed() < LIMIT, "{program} {args:?} took too long");
            self.reactor.turn().unwrap();
        };
        worker.join().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn curl(&mut self, args: &[&str]) -> Vec<u8> {
        let mut all: Vec<String> = ["-s", "--max-time", "15"]
            .iter()
            .map(ToString::to_string)
            .collect();
        all.extend(args.iter().map(ToString::to_string));
        self.outside("curl", &all)
    }

    /// Our client for `path` on `port`: the outcome and what was committed.
    fn get(&mut self, port: u16, path: &str) -> (Result<GetReport, ClientError>, Option<Vec<u8>>) {
        let (sink, committed) = MemorySink::new();
        let slot = OutcomeSlot::new();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let get = Get::new(&addr.to_string(), path, Box::new(sink), slot.clone());
        self.reactor.connect_tcp(addr, Box::new(get)).unwrap();
        let start = std::time::Instant::now();
        while !slot.is_set() {
            assert!(start.elapsed() < LIMIT, "GET {path} took too long");
            self.reactor.turn().unwrap();
        }
        let got = committed.borrow().clone();
        (slot.take().unwrap(), got)
    }
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn curl_gets_the_index_and_files_both_ways() {
    if !have("curl") {
        return;
    }
    let mut f = fixture("curl");
    let index = String::from_utf8(f.curl(&[&url(f.port, "/")])).unwrap();
    assert!(
        index.contains("<a href=\"/big.bin\">big.bin</a>"),
        "{index}"
    );
    assert!(
        index.contains("<a href=\"/a%20%3Cb%3E%20%26%20c\">a &lt;b&gt; &amp; c</a>"),
        "{index}"
    );
    for port in [f.port, f.plain_port] {
        let out = f.dir.join(format!("out-{port}"));
        f.curl(&["-o", out.to_str().unwrap(), &url(port, "/big.bin")]);
        assert!(read(&out) == f.big, "big.bin through port {port}");
    }
    // The odd name, through the link the index gives.
    assert_eq!(f.curl(&[&url(f.port, "/a%20%3Cb%3E%20%26%20c")]), b"odd");
    // HTTP/1.0, with the head shown.
    let shown = f.curl(&["-0", "-i", &url(f.port, "/small.txt")]);
    assert_eq!(
        String::from_utf8(shown).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\
         Connection: close\r\n\r\nhello"
    );
    let head = String::from_utf8(f.curl(&["-I", &url(f.port, "/big.bin")])).unwrap();
    assert!(head.contains("Content-Length: 3000000\r\n"), "{head}");
    for (path, code) in [("/missing", "404"), ("/..%2F..%2Fetc%2Fpasswd", "403")] {
        let got = f.curl(&["-o", "/dev/null", "-w", "%{http_code}", &url(f.port, path)]);
        assert_eq!(String::from_utf8(got).unwrap(), code, "{path}");
    }
    let got = f.curl(&[
        "-X",
        "DELETE",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url(f.port, "/big.bin"),
    ]);
    assert_eq!(got, b"405");
}

#[test]
fn wget_saves_the_index_and_a_file() {
    if !have("wget") {
        return;
    }
    let mut f = fixture("wget");
    let index = f.dir.join("index.html");
    let index_url = url(f.plain_port, "/");
    f.outside(
        "wget",
        &[
            "-q".into(),
            "-T".into(),
            "15".into(),
            "-O".into(),
            index.to_str().unwrap().into(),
            index_url,
        ],
    );
    assert!(
        String::from_utf8(read(&index))
            .unwrap()
            .contains("small.txt")
    );
    let out = f.dir.join("big");
    let big_url = url(f.port, "/big.bin");
    f.outside(
        "wget",
        &[
            "-q".into(),
            "-T".into(),
            "15".into(),
            "-O".into(),
            out.to_str().unwrap().into(),
            big_url,
        ],
    );
    assert!(read(&out) == f.big);
}

#[test]
fn our_client_gets_files_and_hears_refusals() {
    let mut f = fixture("client");
    for port in [f.port, f.plain_port] {
        let (outcome, got) = f.get(port, "/big.bin");
        let report = outcome.unwrap();
        assert_eq!((report.status, report.bytes), (200, 3_000_000));
        assert!(got.unwrap() == f.big, "port {port}");
    }
    let (outcome, got) = f.get(f.port, "/a <b> & c");
    assert_eq!(outcome.unwrap().bytes, 3);
    assert_eq!(got.unwrap(), b"odd");
    let (outcome, got) = f.get(f.port, "/missing");
    assert_eq!(outcome, Err(ClientError::refused("404 Not Found")));
    assert_eq!(got, None);
    let (outcome, got) = f.get(f.port, "/");
    assert_eq!(outcome.unwrap().status, 200);
    assert!(String::from_utf8(got.unwrap()).unwrap().contains("big.bin"));
}
