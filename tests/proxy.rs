//! `mioperf proxy` as a real process between real sockets: what goes in
//! comes out (or is counted as lost), the counters agree with an observer
//! on the far side, a seed repeats a run, the bounds hold, and real
//! transfers survive a bad network through it.

#![allow(
    clippy::disallowed_methods,
    reason = "tests measure real time against a real process"
)]

mod common;

use common::{Server, TempFile, run_with_timeout, temp_path, udp_socket};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A UDP server the test controls: echoes every datagram back to its
/// sender and reports it, until `limit` has passed.
struct Echo {
    addr: SocketAddr,
    seen: mpsc::Receiver<(SocketAddr, Vec<u8>, Instant)>,
}

impl Echo {
    fn start(limit: Duration) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let (tx, seen) = mpsc::channel();
        thread::spawn(move || {
            let end = Instant::now() + limit;
            let mut buf = vec![0u8; 65_536];
            while Instant::now() < end {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                    if tx.send((from, buf[..n].to_vec(), Instant::now())).is_err() {
                        return;
                    }
                }
            }
        });
        Self { addr, seen }
    }

    /// Everything seen within `wait` of the last datagram.
    fn drain(&self, wait: Duration) -> Vec<(SocketAddr, Vec<u8>, Instant)> {
        let mut out = Vec::new();
        while let Ok(item) = self.seen.recv_timeout(wait) {
            out.push(item);
        }
        out
    }
}

/// `mioperf proxy` on a free loopback port in front of `upstream`.
fn proxy_to(upstream: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--listen", "127.0.0.1:0", "--upstream", upstream];
    args.extend_from_slice(extra);
    Server::proxy(&args)
}

/// Stops the proxy with SIGINT and parses its `--json` report.
fn stop_and_report(proxy: &mut Server) -> serde_json::Value {
    proxy.signal(2);
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("proxy exits");
    assert!(status.success(), "{status}\n{}", proxy.stderr());
    let lines = proxy.rest_of_stdout(Duration::from_secs(2));
    let last = lines.last().expect("a report line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

fn n(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut v = v;
    for key in path {
        v = &v[*key];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count in {v}"))
}

#[test]
fn empty_garbage_and_largest_datagrams_pass_through_unchanged_both_ways() {
    let echo = Echo::start(Duration::from_secs(10));
    let upstream = echo.addr.to_string();
    let mut proxy = proxy_to(&upstream, &["--seed", "1", "--json"]);
    let listen = proxy.udp("proxy");
    let client = udp_socket();
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a test pattern: the low byte is the point"
    )]
    let garbage: Vec<u8> = (0..1400u32).map(|i| (i * 7 + 0xa5) as u8).collect();
    let largest = vec![0xffu8; 65_507];
    let payloads: [&[u8]; 5] = [
        b"",
        b"\x00",
        &garbage,
        &largest,
        b"\xff\xfe\x00 not a protocol",
    ];
    let mut buf = vec![0u8; 65_536];
    for p in payloads {
        client.send_to(p, listen).unwrap();
        let (got, from) = client.recv_from(&mut buf).expect("echo through the proxy");
        assert_eq!(from, listen, "the answer must come from the proxy");
        assert_eq!(&buf[..got], p, "payload changed on the way");
    }
    let seen = echo.drain(Duration::from_millis(100));
    assert_eq!(seen.len(), payloads.len());
    for ((from, bytes, _), p) in seen.iter().zip(payloads) {
        assert_eq!(bytes.as_slice(), p);
        assert_ne!(
            from.port(),
            listen.port(),
            "upstream traffic leaves from the mapping's own port"
        );
    }
    proxy.assert_running();
    let report = stop_and_report(&mut proxy);
    assert_eq!(n(&report, &["seed"]), 1);
    assert_eq!(n(&report, &["mappings_opened"]), 1);
    for way in ["to_server", "to_client"] {
        assert_eq!(n(&report, &[way, "offered"]), 5, "{report}");
        assert_eq!(n(&report, &[way, "forwarded"]), 5, "{report}");
        let bytes: usize = payloads.iter().map(|p| p.len()).sum();
        assert_eq!(n(&report, &[way, "bytes_forwarded"]), bytes as u64);
    }
}

/// Sends `count` numbered datagrams through a proxy with every random
/// impairment on, and returns the report and what the far side saw.
fn impaired_run(seed: &str, count: u32) -> (serde_json::Value, Vec<Vec<u8>>, Vec<String>) {
    let echo = Echo::start(Duration::from_secs(10));
    let upstream = echo.addr.to_string();
    let mut proxy = proxy_to(
        &upstream,
        &[
            "--drop",
            "0.2",
            "--dup",
            "0.2",
            "--reorder",
            "0.2",
            "--reorder-min",
            "1ms",
            "--reorder-max",
            "5ms",
            "--delay-prob",
            "0.1",
            "--delay-min",
            "1ms",
            "--delay-max",
            "2ms",
            "--seed",
            seed,
            "--json",
        ],
    );
    let listen = proxy.udp("proxy");
    let client = udp_socket();
    for i in 0..count {
        client.send_to(&i.to_be_bytes(), listen).unwrap();
        // Spaced wider than the longest hold-back: the order in which the
        // proxy sees them, and so its decisions, are the same every run.
        thread::sleep(Duration::from_millis(1));
    }
    let seen: Vec<Vec<u8>> = echo
        .drain(Duration::from_millis(300))
        .into_iter()
        .map(|(_, b, _)| b)
        .collect();
    let report = stop_and_report(&mut proxy);
    (report, seen, proxy.stdout_lines().to_vec())
}

#[test]
fn counters_agree_with_the_far_side_and_a_seed_repeats_the_run() {
    let (report, seen, stdout) = impaired_run("42", 300);
    assert!(
        stdout.iter().any(|l| l.ends_with("seed 42")),
        "the seed is printed: {stdout:?}"
    );
    let offered = n(&report, &["to_server", "offered"]);
    let forwarded = n(&report, &["to_server", "forwarded"]);
    let dropped = n(&report, &["to_server", "dropped"]);
    let duplicated = n(&report, &["to_server", "duplicated"]);
    assert_eq!(offered, 300);
    assert_eq!(forwarded, offered - dropped + duplicated, "{report}");
    assert_eq!(
        seen.len() as u64,
        forwarded,
        "the server saw what the proxy says it sent"
    );
    for key in ["dropped", "duplicated", "reordered", "delayed"] {
        assert!(n(&report, &["to_server", key]) > 0, "no {key}: {report}");
    }
    // Reordering is visible to the far side as a sequence going backwards.
    let seqs: Vec<u32> = seen
        .iter()
        .map(|b| u32::from_be_bytes(b.as_slice().try_into().unwrap()))
        .collect();
    assert!(
        seqs.windows(2).any(|w| w[1] < w[0]),
        "nothing arrived out of order"
    );

    let (again, _, _) = impaired_run("42", 300);
    assert_eq!(
        report["to_server"], again["to_server"],
        "same seed, same decisions"
    );
    let (other, _, _) = impaired_run("43", 300);
    assert_ne!(
        report["to_server"], other["to_server"],
        "another seed, other decisions"
    );
}

#[test]
fn client_mappings_are_bounded_and_idle_out() {
    let echo = Echo::start(Duration::from_secs(10));
    let upstream = echo.addr.to_string();
    let mut proxy = proxy_to(
        &upstream,
        &["--max-clients", "2", "--idle", "300ms", "--json"],
    );
    let listen = proxy.udp("proxy");
    let clients: Vec<UdpSocket> = (0..3).map(|_| udp_socket()).collect();
    let mut buf = [0u8; 64];
    let answered = |c: &UdpSocket, buf: &mut [u8]| {
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        c.send_to(b"hi", listen).unwrap();
        c.recv_from(buf).is_ok()
    };
    assert!(answered(&clients[0], &mut buf));
    assert!(answered(&clients[1], &mut buf));
    assert!(
        !answered(&clients[2], &mut buf),
        "a third mapping beyond --max-clients 2"
    );
    // Bounded: the two mappings idle out after 300 ms of silence.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut third = false;
    while !third && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        third = answered(&clients[2], &mut buf);
    }
    assert!(third, "the third client never got a mapping");
    let report = stop_and_report(&mut proxy);
    assert!(n(&report, &["mappings_idled"]) >= 2, "{report}");
    assert_eq!(n(&report, &["mappings_opened"]), 3, "{report}");
    assert!(n(&report, &["mappings_refused"]) >= 1, "{report}");
}

#[test]
fn latency_and_rate_are_never_beaten() {
    let echo = Echo::start(Duration::from_secs(10));
    let upstream = echo.addr.to_string();
    let proxy = proxy_to(&upstream, &["--latency", "30ms"]);
    let client = udp_socket();
    let start = Instant::now();
    client.send_to(b"ping", proxy.udp("proxy")).unwrap();
    let mut buf = [0u8; 16];
    client.recv_from(&mut buf).expect("echo");
    let rtt = start.elapsed();
    assert!(
        rtt >= Duration::from_millis(60),
        "30 ms each way, yet {rtt:?}"
    );

    let echo = Echo::start(Duration::from_secs(10));
    let upstream = echo.addr.to_string();
    let proxy = proxy_to(&upstream, &["--rate", "100k", "--queue", "100000"]);
    let listen = proxy.udp("proxy");
    let start = Instant::now();
    for _ in 0..50 {
        client.send_to(&[7u8; 1000], listen).unwrap();
    }
    let seen = echo.drain(Duration::from_millis(300));
    assert_eq!(seen.len(), 50, "a queue of 100 kB holds 50 kB");
    let last = seen.last().unwrap().2 - start;
    // 50 kB at 100 kB/s: the last one cannot be through before 0.5 s.
    assert!(last >= Duration::from_millis(495), "rate beaten: {last:?}");
}

/// A server with fast retransmission for stopwait and TFTP, so losses
/// cost milliseconds rather than seconds.
fn fast_server(root: &str) -> Server {
    let config = TempFile::new(
        "proxy-serve.toml",
        "tftp_timeout = \"50ms\"\ntftp_tries = 60\n",
    );
    Server::spawn(&[
        "--only",
        "stopwait,tftp",
        "--listen",
        "stopwait=127.0.0.1:0",
        "--listen",
        "tftp=127.0.0.1:0",
        "--root",
        root,
        "--allow-overwrite",
        "--stopwait-timeout",
        "50ms",
        "--stopwait-tries",
        "60",
        "--config",
        config.as_str(),
    ])
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "a test pattern: the low byte is the point"
)]
fn pattern(size: u32) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + i / 512) as u8).collect()
}

#[test]
fn stopwait_and_tftp_transfers_survive_a_bad_network_through_the_proxy() {
    let root = temp_path("proxy-root");
    std::fs::create_dir_all(&root).unwrap();
    // Stopwait moves 100 bytes a round trip, TFTP 512: sizes that make
    // about 60 round trips of each, a few dozen of them lost.
    let sizes = [("stopwait", 6_000u32), ("tftp", 30_000)];
    let data = |proto: &str| pattern(sizes.iter().find(|(p, _)| *p == proto).unwrap().1);
    let mut locals = std::collections::HashMap::new();
    for (proto, _) in sizes {
        std::fs::write(root.join(format!("{proto}.bin")), data(proto)).unwrap();
        let local = temp_path(&format!("proxy-local-{proto}.bin"));
        std::fs::write(&local, data(proto)).unwrap();
        locals.insert(proto, local);
    }
    let server = fast_server(root.to_str().unwrap());

    let mut runs = Vec::new();
    for seed in ["1", "2"] {
        for (proto, upstream) in [
            ("stopwait", server.udp("stopwait")),
            ("tftp", server.udp("tftp")),
        ] {
            let upstream = upstream.to_string();
            let proxy = proxy_to(
                &upstream,
                &[
                    "--drop",
                    "0.2",
                    "--dup",
                    "0.05",
                    "--reorder",
                    "0.05",
                    "--seed",
                    seed,
                ],
            );
            let via = proxy.udp("proxy").to_string();
            let out = temp_path(&format!("proxy-{proto}-{seed}.bin"));
            let name = format!("{proto}.bin");
            let local = &locals[proto];
            let put_name = format!("put-{proto}-{seed}.bin");
            let mut commands: Vec<Vec<String>> = vec![
                vec![proto, "get", &via, &name, "-o", out.to_str().unwrap(), "-f"]
                    .into_iter()
                    .map(String::from)
                    .collect(),
                vec![
                    proto,
                    "put",
                    &via,
                    local.to_str().unwrap(),
                    "--as",
                    &put_name,
                ]
                .into_iter()
                .map(String::from)
                .collect(),
            ];
            if proto == "tftp" {
                commands.push(
                    [
                        "tftp",
                        "get",
                        &via,
                        &name,
                        "-o",
                        out.to_str().unwrap(),
                        "-f",
                        "--windowsize",
                        "8",
                    ]
                    .into_iter()
                    .map(String::from)
                    .collect(),
                );
            }
            for mut args in commands {
                args.extend(["--timeout", "50ms", "--tries", "60"].map(String::from));
                let start = Instant::now();
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let output = run_with_timeout(&argv, Duration::from_secs(60));
                assert!(
                    output.status.success(),
                    "{argv:?} through a 20 % lossy proxy: {}\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
                let written = if args[1] == "get" {
                    std::fs::read(&out).unwrap()
                } else {
                    std::fs::read(root.join(&put_name)).unwrap()
                };
                assert!(written == data(proto), "{argv:?}: bytes differ");
                runs.push((argv.join(" "), start.elapsed()));
                eprintln!("{:?} {argv:?}", start.elapsed());
            }
            drop(proxy);
        }
    }
    assert_eq!(runs.len(), 10);
}

#[test]
fn serve_puts_a_transparent_proxy_in_front_of_its_own_stopwait() {
    let root = temp_path("proxy-serve-root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("small.txt"), b"through the proxy\n").unwrap();
    let server = Server::spawn(&[
        "--only",
        "stopwait,proxy",
        "--listen",
        "stopwait=127.0.0.1:0",
        "--listen",
        "proxy=127.0.0.1:0",
        "--root",
        root.to_str().unwrap(),
    ]);
    let via = server.udp("proxy");
    assert_ne!(via, server.udp("stopwait"));
    let out = temp_path("proxy-serve.txt");
    let output = run_with_timeout(
        &[
            "stopwait",
            "get",
            &via.to_string(),
            "small.txt",
            "-o",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(std::fs::read(&out).unwrap(), b"through the proxy\n");
}
