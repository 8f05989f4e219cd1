//! tcpfile against the real binary: GET and PUT of 0-byte, small and 50 MB
//! random files with their content checked, the refusals, 20 concurrent
//! GETs, a PUT cut off half way and SIGTERM during a PUT (no partial file
//! either way), a symlink out of the root, and the `get`/`put` clients.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;
mod timeouts;

use common::{Server, run_with_timeout, tcp_connect, temp_path};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A fresh root folder, removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(tag: &str) -> Self {
        let p = temp_path(&format!("tcpfile-root-{tag}"));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Every entry in the root (to see that no partial file is left).
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn serve(root: &Root, extra: &[&str]) -> Server {
    let root = root.0.to_str().unwrap().to_owned();
    let mut args = vec![
        "--only",
        "tcpfile",
        "--listen",
        "tcpfile=127.0.0.1:0",
        "--root",
        root.as_str(),
    ];
    args.extend_from_slice(extra);
    Server::spawn(&args)
}

/// Pseudo-random bytes (xorshift), so content checks mean something.
#[expect(
    clippy::cast_possible_truncation,
    reason = "a test pattern: the low byte is the point"
)]
fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn read_all(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut v = Vec::new();
    s.read_to_end(&mut v).unwrap();
    v
}

fn get(server: &Server, name: &str) -> Vec<u8> {
    let mut s = tcp_connect(server.tcp("tcpfile"));
    s.write_all(format!("{name}:GET\n").as_bytes()).unwrap();
    read_all(&mut s)
}

fn put(server: &Server, request: &str, body: &[u8]) -> String {
    let mut s = tcp_connect(server.tcp("tcpfile"));
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    String::from_utf8(read_all(&mut s)).unwrap()
}

fn ok_then(bytes: &[u8], body: &[u8]) {
    let header = format!("OK {}\n", body.len());
    assert!(
        bytes.starts_with(header.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
    );
    assert!(&bytes[header.len()..] == body, "content differs");
}

#[test]
fn get_files_of_every_size() {
    let root = Root::new("get");
    for (name, len) in [("zero", 0), ("small.txt", 100), ("big.bin", 50 << 20)] {
        std::fs::write(root.path(name), random(len, len as u64)).unwrap();
    }
    let server = serve(&root, &[]);
    for (name, len) in [("zero", 0), ("small.txt", 100), ("big.bin", 50 << 20)] {
        ok_then(&get(&server, name), &random(len, len as u64));
    }
    // Spaces around ':' as the seed drew it.
    let mut s = tcp_connect(server.tcp("tcpfile"));
    s.write_all(b"small.txt : GET\n").unwrap();
    ok_then(&read_all(&mut s), &random(100, 100));
}

#[test]
fn put_files_of_every_size_with_and_without_a_size() {
    let root = Root::new("put");
    let server = serve(&root, &[]);
    for (name, len) in [("zero", 0usize), ("small", 100), ("big", 50 << 20)] {
        let body = random(len, 7 + len as u64);
        assert_eq!(
            put(&server, &format!("{name}:PUT:{len}\n"), &body),
            format!("OK {len}\n")
        );
        assert!(
            std::fs::read(root.path(name)).unwrap() == body,
            "{name} content"
        );
        // Without a size: until the client's EOF.
        let unsized_name = format!("{name}-eof");
        assert_eq!(
            put(&server, &format!("{unsized_name}:PUT\n"), &body),
            format!("OK {len}\n")
        );
        assert!(std::fs::read(root.path(&unsized_name)).unwrap() == body);
    }
    assert!(
        root.entries().iter().all(|e| !e.contains("mioperf-part")),
        "{:?}",
        root.entries()
    );
}

#[test]
fn refusals_are_exact_lines() {
    let root = Root::new("refuse");
    std::fs::write(root.path("there"), b"x").unwrap();
    let server = serve(&root, &[]);
    assert_eq!(get(&server, "missing"), b"ERROR not found: missing\n");
    assert_eq!(put(&server, "there:PUT:1\n", b"y"), "ERROR exists: there\n");
    assert_eq!(
        std::fs::read(root.path("there")).unwrap(),
        b"x",
        "untouched"
    );
    for bad in ["../escape", "/etc/passwd", "a/../../b", "dir//x"] {
        assert_eq!(
            get(&server, bad),
            format!("ERROR forbidden: {bad}\n").as_bytes(),
            "{bad}"
        );
    }
    let long = "n".repeat(300);
    assert_eq!(
        get(&server, &long),
        format!("ERROR forbidden: {long}\n").as_bytes()
    );
}

#[test]
fn overwrite_when_allowed() {
    let root = Root::new("overwrite");
    std::fs::write(root.path("there"), b"old").unwrap();
    let server = serve(&root, &["--allow-overwrite"]);
    assert_eq!(put(&server, "there:PUT:3\n", b"new"), "OK 3\n");
    assert_eq!(std::fs::read(root.path("there")).unwrap(), b"new");
}

#[test]
fn a_symlink_cannot_lead_out_of_the_root() {
    let root = Root::new("symlink");
    let outside = Root::new("outside");
    std::fs::write(outside.path("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink(outside.path("secret"), root.path("link")).unwrap();
    std::os::unix::fs::symlink(&outside.0, root.path("dirlink")).unwrap();
    let server = serve(&root, &[]);
    assert_eq!(get(&server, "link"), b"ERROR forbidden: link\n");
    assert_eq!(
        get(&server, "dirlink/secret"),
        b"ERROR forbidden: dirlink/secret\n"
    );
    assert_eq!(
        put(&server, "dirlink/new:PUT:1\n", b"z"),
        "ERROR forbidden: dirlink/new\n"
    );
    assert!(!outside.path("new").exists());
}

#[test]
fn twenty_concurrent_gets() {
    let root = Root::new("concurrent");
    let body = random(4 << 20, 42);
    std::fs::write(root.path("f"), &body).unwrap();
    let server = serve(&root, &[]);
    let addr = server.tcp("tcpfile");
    let mut streams: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = tcp_connect(addr);
            s.write_all(b"f:GET\n").unwrap();
            s
        })
        .collect();
    let handles: Vec<_> = streams
        .drain(..)
        .map(|mut s| std::thread::spawn(move || read_all(&mut s)))
        .collect();
    for h in handles {
        ok_then(&h.join().unwrap(), &body);
    }
}

#[test]
fn a_put_cut_off_half_way_leaves_nothing() {
    let root = Root::new("cut");
    let server = serve(&root, &[]);
    let mut s = tcp_connect(server.tcp("tcpfile"));
    s.write_all(b"half:PUT:1000000\n").unwrap();
    s.write_all(&random(500_000, 3)).unwrap();
    drop(s); // the client vanishes
    // And one that half-closes early gets told.
    assert_eq!(
        put(&server, "short:PUT:100\n", &[1u8; 10]),
        "ERROR short: short\n"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(root.entries(), Vec::<String>::new());
    // The server still serves.
    assert_eq!(put(&server, "after:PUT:1\n", b"a"), "OK 1\n");
}

#[test]
fn sigterm_during_a_put_exits_0_and_leaves_no_partial_file() {
    let root = Root::new("sigterm");
    let mut server = serve(&root, &[]);
    let mut s = tcp_connect(server.tcp("tcpfile"));
    s.write_all(b"partial:PUT:10000000\n").unwrap();
    s.write_all(&random(1 << 20, 5)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal(libc_sigterm());
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("server exits");
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        root.entries(),
        Vec::<String>::new(),
        "nothing under a final or temporary name"
    );
}

fn libc_sigterm() -> i32 {
    15
}

fn client(args: &[&str]) -> std::process::Output {
    run_with_timeout(args, Duration::from_secs(30))
}

#[test]
fn the_get_and_put_clients() {
    let root = Root::new("clients");
    let local = Root::new("local");
    let server = serve(&root, &[]);
    let hostport = server.tcp("tcpfile").to_string();
    let body = random(3 << 20, 11);
    let src = local.path("up.bin");
    std::fs::write(&src, &body).unwrap();

    let out = client(&[
        "put",
        &hostport,
        src.to_str().unwrap(),
        "--as",
        "stored.bin",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["bytes"].as_u64(), Some(3 << 20));
    assert!(std::fs::read(root.path("stored.bin")).unwrap() == body);

    let dest = local.path("down.bin");
    let out = client(&["get", &hostport, "stored.bin", "-o", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(std::fs::read(&dest).unwrap() == body);

    // Refused: exit 1, and no local file appears for a missing one.
    let missing = local.path("missing.bin");
    let out = client(&["get", &hostport, "nope", "-o", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!Path::new(&missing).exists());
    let out = client(&[
        "put",
        &hostport,
        src.to_str().unwrap(),
        "--as",
        "stored.bin",
    ]);
    assert_eq!(out.status.code(), Some(1), "exists");

    // -o - writes to standard output.
    let out = client(&["get", &hostport, "stored.bin", "-o", "-"]);
    assert!(out.stdout == body);
    assert!(local.entries().iter().all(|e| !e.contains("mioperf-part")));
}

/// A file past 4 GiB (sparse, so it costs no disk) is streamed whole: the
/// size survives the 32-bit boundary and every byte arrives.
#[test]
fn a_4_gib_sparse_file_streams_whole() {
    let root = Root::new("sparse");
    let len: u64 = (4 << 30) + 1;
    let f = std::fs::File::create(root.path("sparse.img")).unwrap();
    f.set_len(len).unwrap();
    drop(f);
    let server = serve(&root, &[]);
    let mut s = tcp_connect(server.tcp("tcpfile"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"sparse.img:GET\n").unwrap();
    let header = format!("OK {len}\n");
    let mut buf = vec![0u8; 1 << 20];
    let zeros = vec![0u8; 1 << 20];
    let mut got: u64 = 0;
    let mut head = Vec::new();
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        if head.len() < header.len() {
            let take = (header.len() - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
        }
        assert!(
            chunk == &zeros[..chunk.len()],
            "a sparse file reads as zeros"
        );
        got += chunk.len() as u64;
    }
    assert_eq!(head, header.as_bytes());
    assert_eq!(got, len);
}

#[test]
fn a_connection_that_never_sends_a_byte_is_closed_after_the_idle_timeout() {
    let root = Root::new("silent");
    let mut args = vec![];
    args.extend_from_slice(&timeouts::SHORT_IDLE);
    let server = serve(&root, &args);
    let closed = timeouts::silent(server.tcp("tcpfile"));
    timeouts::assert_closed_between(&closed, Duration::from_millis(290), Duration::from_secs(3));
    assert!(closed.received.is_empty(), "{closed:?}");
}

#[test]
fn a_slowloris_request_line_is_closed_at_the_request_timeout() {
    let root = Root::new("slowloris");
    let server = serve(&root, &timeouts::SHORT_IDLE);
    let line = b"a-very-long-name-sent-one-byte-every-100ms.txt:PUT:1";
    let closed = timeouts::slowloris(server.tcp("tcpfile"), line, Duration::from_millis(100));
    timeouts::assert_closed_between(&closed, Duration::from_millis(900), Duration::from_secs(3));
    assert!(closed.sent < line.len(), "{closed:?}");
    assert!(closed.received.is_empty(), "{closed:?}");
}

#[test]
fn a_stalled_put_is_closed_after_the_idle_timeout_and_leaves_nothing() {
    let root = Root::new("stalled");
    let server = serve(&root, &timeouts::SHORT_IDLE);
    let started = std::time::Instant::now();
    let mut s = tcp_connect(server.tcp("tcpfile"));
    s.write_all(b"stalled:PUT:1000\n").unwrap();
    s.write_all(&[7; 100]).unwrap();
    let rest = read_all(&mut s);
    let took = started.elapsed();
    assert!(rest.is_empty(), "no answer: {rest:?}");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(root.entries(), Vec::<String>::new(), "no partial file");
}

/// A TCP relay from one client to `upstream` that forwards the client's
/// first `hold_after` bytes at once and the rest only once released, so a
/// test can line two real clients up at a chosen point of their uploads.
struct Gate {
    addr: std::net::SocketAddr,
    forwarded: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    release: std::sync::mpsc::Sender<()>,
}

impl Gate {
    fn new(upstream: std::net::SocketAddr, hold_after: usize) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let forwarded = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let count = forwarded.clone();
        std::thread::spawn(move || {
            // Bounded: the client is started right after the gate.
            listener.set_nonblocking(true).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut client = loop {
                match listener.accept() {
                    Ok((c, _)) => break c,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("gate: no client: {e}"),
                }
            };
            client.set_nonblocking(false).unwrap();
            let mut server = tcp_connect(upstream);
            server
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let (mut from_server, mut to_client) =
                (server.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(Shutdown::Write);
            });
            let mut buf = vec![0u8; 16 * 1024];
            let mut held = false;
            loop {
                if !held && count.load(Ordering::SeqCst) >= hold_after {
                    held = true;
                    let _ = released.recv_timeout(Duration::from_secs(30));
                }
                let want = if held {
                    buf.len()
                } else {
                    buf.len().min(hold_after - count.load(Ordering::SeqCst))
                };
                match client.read(&mut buf[..want]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        count.fetch_add(n, Ordering::SeqCst);
                    }
                }
            }
            let _ = server.shutdown(Shutdown::Write);
        });
        Self {
            addr,
            forwarded,
            release,
        }
    }

    /// Waits (bounded) until the gate holds the rest back.
    fn wait_holding(&self, hold_after: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.forwarded.load(std::sync::atomic::Ordering::SeqCst) < hold_after {
            assert!(std::time::Instant::now() < deadline, "gate never filled");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn spawn_put(gate: &Gate, file: &Path, name: &str) -> std::process::Child {
    std::process::Command::new(common::bin())
        .args([
            "put",
            &gate.addr.to_string(),
            file.to_str().unwrap(),
            "--as",
            name,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mioperf put")
}

fn finish(mut child: std::process::Child) -> (Option<i32>, String) {
    let status = common::wait_child(&mut child, Duration::from_secs(30));
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("mioperf put still running after 30 s");
    };
    let mut text = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut text);
    let _ = child.stderr.take().unwrap().read_to_string(&mut text);
    (status.code(), text)
}

/// Issue 11, defect 1: the final OK leaves only after the commit. Two real
/// clients upload one new name; both requests and part of both bodies are
/// at the server before either completes. Exactly one is told OK (exit 0),
/// the other `ERROR exists` (exit 1), and the stored file is exactly the
/// winner's.
#[test]
fn two_concurrent_puts_of_one_new_name_one_ok_one_refused() {
    let root = Root::new("race");
    let local = Root::new("race-local");
    let server = serve(&root, &[]);
    let (a, b) = (random(1 << 20, 101), random(1 << 20, 202));
    std::fs::write(local.path("a"), &a).unwrap();
    std::fs::write(local.path("b"), &b).unwrap();
    let hold = 64 * 1024;
    let (gate_a, gate_b) = (
        Gate::new(server.tcp("tcpfile"), hold),
        Gate::new(server.tcp("tcpfile"), hold),
    );
    let put_a = spawn_put(&gate_a, &local.path("a"), "race.bin");
    let put_b = spawn_put(&gate_b, &local.path("b"), "race.bin");
    gate_a.wait_holding(hold);
    gate_b.wait_holding(hold);
    // Both uploads are under way at the server, neither complete.
    std::thread::sleep(Duration::from_millis(100));
    assert!(!root.path("race.bin").exists());
    gate_a.release.send(()).unwrap();
    let (code_a, out_a) = finish(put_a);
    assert_eq!(code_a, Some(0), "the first to complete: {out_a}");
    gate_b.release.send(()).unwrap();
    let (code_b, out_b) = finish(put_b);
    assert_eq!(code_b, Some(1), "the second is refused: {out_b}");
    assert!(out_b.contains("exists"), "{out_b}");
    assert!(
        std::fs::read(root.path("race.bin")).unwrap() == a,
        "the winner's bytes"
    );
    assert_eq!(
        root.entries(),
        vec!["race.bin".to_owned()],
        "no temporary left"
    );
}
