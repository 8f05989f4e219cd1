//! stopwait against the real binary: the spec's flows byte for byte over
//! UDP, GET and PUT of 0, 1, 100, 101 and 250 000 bytes with the clients,
//! refusals, the seed's bug over the wire, and the hardening of issue 11:
//! concurrent uploads of one name, bad names, bounded sessions, and a
//! flood of spoofed requests that must not lock a real client out.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::{Dir, Server, bin, run_with_timeout, udp_socket};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

fn serve(root: &Dir) -> Server {
    serve_with(root, &[])
}

fn serve_with(root: &Dir, extra: &[&str]) -> Server {
    let root = root.0.to_str().unwrap().to_owned();
    let mut args = vec![
        "--only",
        "stopwait",
        "--listen",
        "stopwait=127.0.0.1:0",
        "--root",
        &root,
    ];
    args.extend_from_slice(extra);
    Server::spawn(&args)
}

fn exchange(u: &UdpSocket, to: SocketAddr, packet: &[u8]) -> Vec<u8> {
    u.send_to(packet, to).unwrap();
    let mut buf = [0u8; 200];
    let (n, from) = u.recv_from(&mut buf).expect("an answer");
    assert_eq!(from, to);
    buf[..n].to_vec()
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "a test pattern: the low byte is the point"
)]
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn the_spec_flows_byte_for_byte() {
    let root = Dir::new("stopwait-flows");
    std::fs::write(root.path("notes.txt"), data(150)).unwrap();
    let server = serve(&root);
    let to = server.udp("stopwait");
    assert!(
        server.listeners().keys().all(|(_, t)| t == "udp"),
        "stopwait is UDP only"
    );
    let u = udp_socket();
    let d1 = exchange(&u, to, b"G000000notes.txt");
    assert_eq!(&d1[..7], b"D100001");
    assert_eq!(&d1[7..], &data(150)[..100]);
    let d2 = exchange(&u, to, b"A100001ack");
    assert_eq!(&d2[..7], b"D000002");
    assert_eq!(&d2[7..], &data(150)[100..]);
    // A repeated ACK, or the GET again, gets the last answer again (the
    // ACK showed the address is real; before it, a repeated 16-byte GET
    // would not earn another 107-byte block).
    assert_eq!(exchange(&u, to, b"A100001ack"), d2);
    assert_eq!(exchange(&u, to, b"G000000notes.txt"), d2);
    assert_eq!(exchange(&u, to, b"A000002ack"), b"FF00000I'm Done");
    assert_eq!(
        exchange(&u, to, b"A000002ack"),
        b"FF00000I'm Done",
        "a lost FIN"
    );

    let v = udp_socket();
    assert_eq!(exchange(&v, to, b"P000000up.txt"), b"A000000ack");
    assert_eq!(exchange(&v, to, b"D100001hello"), b"A100001ack");
    assert_eq!(exchange(&v, to, b"FF00001I'm Done"), b"AF00001ack");
    assert_eq!(
        exchange(&v, to, b"FF00001I'm Done"),
        b"AF00001ack",
        "a repeated FIN"
    );
    assert_eq!(std::fs::read(root.path("up.txt")).unwrap(), b"hello");

    let w = udp_socket();
    assert_eq!(
        exchange(&w, to, b"G000000missing"),
        b"E000000file not found"
    );
    assert_eq!(exchange(&w, to, b"P000000notes.txt"), b"E000000file exists");
    assert_eq!(exchange(&w, to, b"G000000../x"), b"E000000forbidden");
}

#[test]
fn the_seeds_late_duplicate_is_not_written_over_the_wire() {
    let root = Dir::new("stopwait-seedbug");
    let server = serve(&root);
    let to = server.udp("stopwait");
    let u = udp_socket();
    exchange(&u, to, b"P000000f");
    exchange(&u, to, b"D100001aaa");
    exchange(&u, to, b"D000002bbb");
    // The very late copy of block 1 carries the bit block 3 expects.
    u.send_to(b"D100001aaa", to).unwrap();
    assert_eq!(exchange(&u, to, b"D100003ccc"), b"A100003ack");
    assert_eq!(exchange(&u, to, b"FF00003I'm Done"), b"AF00003ack");
    assert_eq!(std::fs::read(root.path("f")).unwrap(), b"aaabbbccc");
}

#[test]
fn the_clients_move_every_size_both_ways() {
    let root = Dir::new("stopwait-clients");
    let local = Dir::new("stopwait-clients-local");
    let server = serve(&root);
    let hostport = server.udp("stopwait").to_string();
    for len in [0usize, 1, 100, 101, 250_000] {
        let name = format!("f{len}");
        std::fs::write(root.path(&name), data(len)).unwrap();
        let out_path = local.path(&name);
        let out = run_with_timeout(
            &[
                "stopwait",
                "get",
                &hostport,
                &name,
                "-o",
                out_path.to_str().unwrap(),
            ],
            Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(0), "get {len}: {out:?}");
        assert_eq!(std::fs::read(&out_path).unwrap(), data(len), "get {len}");
        let back = format!("back{len}");
        let out = run_with_timeout(
            &[
                "stopwait",
                "put",
                &hostport,
                out_path.to_str().unwrap(),
                "--as",
                &back,
                "--json",
            ],
            Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(0), "put {len}: {out:?}");
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(j["bytes"].as_u64(), Some(len as u64));
        assert_eq!(
            std::fs::read(root.path(&back)).unwrap(),
            data(len),
            "put {len}"
        );
    }
    let out = run_with_timeout(
        &["stopwait", "get", &hostport, "nope", "-o", "-"],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_silent_server_makes_the_client_give_up_with_exit_2() {
    let silent = udp_socket();
    let hostport = silent.local_addr().unwrap().to_string();
    let started = std::time::Instant::now();
    let out = run_with_timeout(
        &[
            "stopwait",
            "get",
            &hostport,
            "f",
            "-o",
            "-",
            "--timeout",
            "100ms",
            "--tries",
            "3",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Three tries: the GET went out three times.
    silent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    let mut seen = 0;
    while silent.recv(&mut buf).is_ok() {
        assert_eq!(&buf[..7], b"G000000");
        seen += 1;
    }
    assert_eq!(seen, 3);
}

#[test]
fn two_concurrent_puts_of_one_new_name_store_exactly_one() {
    let root = Dir::new("stopwait-race");
    let local = Dir::new("stopwait-race-local");
    let server = serve(&root);
    let hostport = server.udp("stopwait").to_string();
    let a: Vec<u8> = data(60_000);
    let b: Vec<u8> = data(60_000).iter().map(|x| x ^ 0x55).collect();
    std::fs::write(local.path("a"), &a).unwrap();
    std::fs::write(local.path("b"), &b).unwrap();
    let start = |file: &str| {
        std::process::Command::new(bin())
            .args(["stopwait", "put", &hostport])
            .arg(local.path(file))
            .args(["--as", "same", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pa, pb) = (start("a"), start("b"));
    let (oa, ob) = (wait(pa), wait(pb));
    let mut codes = [oa.status.code(), ob.status.code()];
    codes.sort_unstable();
    assert_eq!(codes, [Some(0), Some(1)], "{oa:?}\n{ob:?}");
    let refused = if oa.status.code() == Some(1) {
        &oa
    } else {
        &ob
    };
    let j: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(j["outcome"], "refused");
    assert_eq!(j["answer"], "file exists");
    let stored = std::fs::read(root.path("same")).unwrap();
    let winner = if oa.status.code() == Some(0) { &a } else { &b };
    assert!(
        stored == *winner,
        "the stored file is the one that was acknowledged"
    );
    // Nothing else is left in the root (no temporary file).
    assert_eq!(std::fs::read_dir(&root.0).unwrap().count(), 1);
}

/// Waits (bounded) for a client process.
fn wait(child: std::process::Child) -> std::process::Output {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the client ended in time")
        .unwrap()
}

#[test]
fn names_over_100_bytes_or_not_utf8_are_refused_with_a_reason() {
    let root = Dir::new("stopwait-names");
    let server = serve(&root);
    let to = server.udp("stopwait");
    let u = udp_socket();
    let long = [&b"G000000"[..], &[b'n'; 101]].concat();
    assert_eq!(exchange(&u, to, &long), b"E000000name too long");
    let long_put = [&b"P000000"[..], &[b'n'; 150]].concat();
    assert_eq!(exchange(&u, to, &long_put), b"E000000name too long");
    assert_eq!(
        exchange(&u, to, b"P000000a\xff"),
        b"E000000name is not UTF-8"
    );
    assert_eq!(
        exchange(&u, to, b"G000000a\xfe"),
        b"E000000name is not UTF-8"
    );
    assert_eq!(std::fs::read_dir(&root.0).unwrap().count(), 0);
}

/// Open descriptors of `pid` on files in `dir`.
fn files_open_under(pid: u32, dir: &Dir) -> usize {
    let root = std::fs::canonicalize(&dir.0).unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        // The store keeps the root itself open: count only what is in it.
        .filter(|target| target.starts_with(&root) && *target != root)
        .count()
}

/// [`files_open_under`] once it is at most `bound`, or after a second.
/// An evicted session's file closes when the reactor reaps it at the end
/// of the turn, which may be just after the answer that the test saw.
fn files_open_settled(pid: u32, dir: &Dir, bound: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let open = files_open_under(pid, dir);
        if open <= bound || std::time::Instant::now() > deadline {
            return open;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn half_open_gets_beyond_the_bound_keep_the_server_serving_and_bounded() {
    const BOUND: usize = 20;
    let root = Dir::new("stopwait-bound");
    let local = Dir::new("stopwait-bound-local");
    std::fs::write(root.path("big"), data(100_000)).unwrap();
    let server = serve_with(
        &root,
        &[
            "--stopwait-max-sessions",
            "20",
            "--stopwait-max-sessions-per-peer",
            "1000",
        ],
    );
    let to = server.udp("stopwait");
    // Ten times the bound of GETs that never acknowledge block 1: each
    // one held the file open and a read-ahead buffer until its soft close.
    let strangers: Vec<UdpSocket> = (0..BOUND * 10).map(|_| udp_socket()).collect();
    for s in &strangers {
        assert_eq!(&exchange(s, to, b"G000000big")[..7], b"D100001");
    }
    let open = files_open_settled(server.pid(), &root, BOUND);
    assert!(open <= BOUND, "{open} files open");
    // Still serving: a real client gets the whole file (its request evicts
    // the oldest stranger).
    let out_path = local.path("big");
    let out = run_with_timeout(
        &[
            "stopwait",
            "get",
            &to.to_string(),
            "big",
            "-o",
            out_path.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read(&out_path).unwrap(), data(100_000));

    // Places held by validated peers are not taken: at the bound a new
    // request is refused politely.
    let peers: Vec<UdpSocket> = (0..BOUND).map(|_| udp_socket()).collect();
    for p in &peers {
        exchange(p, to, b"G000000big");
        assert_eq!(&exchange(p, to, b"A100001ack")[..7], b"D000002");
    }
    let late = udp_socket();
    assert_eq!(exchange(&late, to, b"G000000big"), b"E000000busy");
    let open = files_open_settled(server.pid(), &root, BOUND);
    assert!(open <= BOUND, "{open} files open");
}

#[test]
fn a_flood_of_spoofed_gets_never_locks_out_a_real_client() {
    let root = Dir::new("stopwait-flood");
    let local = Dir::new("stopwait-flood-local");
    std::fs::write(root.path("f"), data(5_000)).unwrap();
    // The default bounds: 64 per address, and every source here is
    // 127.0.0.1.
    let server = serve(&root);
    let to = server.udp("stopwait");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // Many source ports that send a GET and never answer, round
            // and round: about 5 000 requests a second, bounded in count.
            let ports: Vec<UdpSocket> = (0..256).map(|_| udp_socket()).collect();
            let mut sent = 0u64;
            'flood: for _ in 0..200 {
                for chunk in ports.chunks(5) {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break 'flood;
                    }
                    for p in chunk {
                        let _ = p.send_to(b"G000000f", to);
                        sent += 1;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..3 {
        let out_path = local.path(&format!("f{i}"));
        let out = run_with_timeout(
            &[
                "stopwait",
                "get",
                &to.to_string(),
                "f",
                "-o",
                out_path.to_str().unwrap(),
                "--timeout",
                "500ms",
            ],
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(0), "get {i}: {out:?}");
        assert_eq!(std::fs::read(&out_path).unwrap(), data(5_000));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flood.join().unwrap();
    assert!(sent > 1_000, "the flood ran: {sent} requests");
    let open = files_open_settled(server.pid(), &root, 64);
    assert!(open <= 64, "{open} files open");
}
