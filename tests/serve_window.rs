//! window against the real binary: tcpfile over the userspace TCP engine
//! carried in UDP. GET and PUT of 0 B, 1 B, 1 MiB and 64 MiB with the
//! `window` client, a PUT of an existing name refused, a 16 MiB GET
//! through `mioperf proxy` at 5 % drop, 2 % duplication and 5 %
//! reordering, `--json` with the engine's counters, and hostile input on
//! the server's port that must neither disturb a transfer in progress nor
//! lock a real client out.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::{Dir, Server, run_with_timeout, temp_path, udp_socket};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

fn serve(root: &Dir) -> Server {
    let root = root.0.to_str().unwrap().to_owned();
    Server::spawn(&[
        "--only",
        "window",
        "--listen",
        "window=127.0.0.1:0",
        "--root",
        &root,
    ])
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "a test pattern: the low byte is the point"
)]
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 509) as u8).collect()
}

fn window(args: &[&str], limit: Duration) -> std::process::Output {
    let mut all = vec!["window"];
    all.extend_from_slice(args);
    run_with_timeout(&all, limit)
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gets_and_puts_of_every_size_are_exact() {
    let root = Dir::new("window-sizes");
    let server = serve(&root);
    let to = server.udp("window").to_string();
    for len in [0, 1, 1 << 20, 64 << 20] {
        let name = format!("f{len}");
        let bytes = data(len);
        std::fs::write(root.path(&name), &bytes).unwrap();
        let out_path = temp_path(&format!("window-get-{len}"));
        let out = window(
            &["get", &to, &name, "-o", out_path.to_str().unwrap(), "-f"],
            Duration::from_secs(120),
        );
        ok(&out);
        assert!(std::fs::read(&out_path).unwrap() == bytes, "GET {len}");

        let put_name = format!("up{len}");
        let out = window(
            &["put", &to, out_path.to_str().unwrap(), "--as", &put_name],
            Duration::from_secs(120),
        );
        ok(&out);
        assert!(
            std::fs::read(root.path(&put_name)).unwrap() == bytes,
            "PUT {len}"
        );
        let _ = std::fs::remove_file(&out_path);
    }
}

#[test]
fn a_put_of_an_existing_name_is_refused_with_exit_1() {
    let root = Dir::new("window-exists");
    std::fs::write(root.path("taken"), b"first").unwrap();
    let server = serve(&root);
    let local = temp_path("window-exists-local");
    std::fs::write(&local, b"second").unwrap();
    let to = server.udp("window").to_string();
    let out = window(
        &["put", &to, local.to_str().unwrap(), "--as", "taken"],
        Duration::from_secs(30),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(root.path("taken")).unwrap(), b"first");
    let out = window(&["get", &to, "missing", "-o", "-"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "a missing file is a refusal");
}

#[test]
fn json_carries_the_engines_counters() {
    let root = Dir::new("window-json");
    std::fs::write(root.path("j"), data(200_000)).unwrap();
    let server = serve(&root);
    let out_path = temp_path("window-json-out");
    let out = window(
        &[
            "get",
            &server.udp("window").to_string(),
            "j",
            "-o",
            out_path.to_str().unwrap(),
            "-f",
            "--json",
            "--cc",
            "cubic",
        ],
        Duration::from_secs(30),
    );
    ok(&out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["outcome"], "ok");
    assert_eq!(doc["bytes"], 200_000);
    for key in [
        "segments_in",
        "segments_out",
        "retransmits",
        "fast_retransmits",
        "rto_expiries",
        "srtt_ns",
        "cwnd",
    ] {
        assert!(doc["tcp"][key].is_u64(), "{key} in {doc}");
    }
    assert!(doc["tcp"]["segments_in"].as_u64().unwrap() > 100);
}

#[test]
fn a_16_mib_get_through_a_bad_network_is_exact() {
    let root = Dir::new("window-proxy");
    let bytes = data(16 << 20);
    std::fs::write(root.path("big"), &bytes).unwrap();
    let server = serve(&root);
    let upstream = server.udp("window").to_string();
    let proxy = Server::proxy(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--drop",
        "0.05",
        "--dup",
        "0.02",
        "--reorder",
        "0.05",
        "--seed",
        "7",
    ]);
    let via = proxy.udp("proxy").to_string();
    let out_path = temp_path("window-proxy-out");
    let out = window(
        &[
            "get",
            &via,
            "big",
            "-o",
            out_path.to_str().unwrap(),
            "-f",
            "--json",
        ],
        Duration::from_secs(240),
    );
    ok(&out);
    assert!(std::fs::read(&out_path).unwrap() == bytes, "16 MiB exact");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The client only acknowledges a GET; the server retransmitted. What
    // the client saw of the loss: duplicates and out-of-order arrivals.
    let tcp = &doc["tcp"];
    assert!(
        tcp["out_of_order"].as_u64().unwrap() + tcp["duplicate_segments"].as_u64().unwrap() > 0,
        "loss and reordering must show: {doc}"
    );
    let _ = std::fs::remove_file(&out_path);
}

/// A segment as a hostile sender would forge it: `flags` (SYN 0x02, RST
/// 0x04, ACK 0x10), any sequence numbers, any ports.
fn forged(flags: u8, seq: u32, ack: u32, ports: (u16, u16)) -> Vec<u8> {
    let mut s = vec![0u8; 20];
    s[0..2].copy_from_slice(&ports.0.to_be_bytes());
    s[2..4].copy_from_slice(&ports.1.to_be_bytes());
    s[4..8].copy_from_slice(&seq.to_be_bytes());
    s[8..12].copy_from_slice(&ack.to_be_bytes());
    s[12] = 5 << 4;
    s[13] = flags;
    s[14..16].copy_from_slice(&65_535u16.to_be_bytes());
    s
}

#[test]
fn hostile_datagrams_neither_disturb_a_transfer_nor_crash_the_server() {
    let root = Dir::new("window-hostile");
    let bytes = data(8 << 20);
    std::fs::write(root.path("big"), &bytes).unwrap();
    let server = serve(&root);
    let to: SocketAddr = server.udp("window");
    let out_path = temp_path("window-hostile-out");
    let out_str = out_path.to_str().unwrap().to_owned();
    let target = to.to_string();
    let transfer = thread::spawn(move || {
        window(
            &["get", &target, "big", "-o", &out_str, "-f"],
            Duration::from_secs(120),
        )
    });
    // From other addresses: garbage, forged segments with wrong ports and
    // sequence numbers, RST and SYN floods. Bounded in count and time.
    let attacker = udp_socket();
    let started = Instant::now();
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..20_000u32 {
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let datagram = match i % 5 {
            0 => x.to_be_bytes().repeat(usize::try_from(x % 16).unwrap()),
            1 => forged(0x04, x, 0, (1, 2)),
            2 => forged(0x14, x, x.wrapping_add(7), (9, 9)),
            3 => forged(0x10, x, x, (0, 0)),
            _ => forged(0x02, x, 0, (40_000, 50_003)),
        };
        let _ = attacker.send_to(&datagram, to);
    }
    let out = transfer.join().unwrap();
    ok(&out);
    assert!(
        std::fs::read(&out_path).unwrap() == bytes,
        "8 MiB exact under attack"
    );
    // And a real client is still served after the SYN flood.
    let again = window(
        &[
            "get",
            &to.to_string(),
            "big",
            "-o",
            out_path.to_str().unwrap(),
            "-f",
        ],
        Duration::from_secs(60),
    );
    ok(&again);
    let _ = std::fs::remove_file(&out_path);
}

#[test]
fn a_spoofed_syn_flood_leaves_real_clients_served() {
    let root = Dir::new("window-synflood");
    let bytes = data(1 << 20);
    std::fs::write(root.path("f"), &bytes).unwrap();
    let server = serve(&root);
    let to: SocketAddr = server.udp("window");
    // 600 "peers" that send a SYN and never answer the SYN-ACK: more than
    // the half-open bound (256), so the oldest are dropped for newer ones.
    let flood: Vec<_> = (0..600u32)
        .map(|i| {
            let s = udp_socket();
            let _ = s.send_to(&forged(0x02, i * 7919, 0, (1, 1)), to);
            s
        })
        .collect();
    let out_path = temp_path("window-synflood-out");
    let out = window(
        &[
            "get",
            &to.to_string(),
            "f",
            "-o",
            out_path.to_str().unwrap(),
            "-f",
        ],
        Duration::from_secs(60),
    );
    ok(&out);
    assert!(std::fs::read(&out_path).unwrap() == bytes);
    // The flood was answered (SYN-ACKs), so it did reach the engine.
    let mut answered = 0;
    for s in flood.iter().rev().take(50) {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 100];
        if s.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
    }
    assert!(answered > 0, "the newest half-open peers got SYN-ACKs");
    let _ = std::fs::remove_file(&out_path);
}
