//! TFTP reliability against the real binary: an upload is acknowledged
//! only once stored (two uploads of one new name: one stored, the other
//! refused with ERROR 6 and exit 1), a request the server cannot serve is
//! answered rather than left to time out, and a flood of requests from
//! silent peers never locks out a real client.
//!
//! Protocol timers (the unvalidated lifetime, withheld retransmissions) are
//! tested in virtual time in `proto::tftp::server`; nothing here waits for
//! one to fire.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against real processes"
)]

mod common;

use common::{Dir, Server, bin, temp_path, udp_socket, wait_child};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn serve(root: &Dir) -> Server {
    Server::spawn(&[
        "--only",
        "tftp",
        "--listen",
        "tftp=127.0.0.1:0",
        "--root",
        root.s(),
    ])
}

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

/// The next datagram on `socket` and where it came from.
#[track_caller]
fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = socket.recv_from(&mut buf).expect("an answer in time");
    (buf[..n].to_vec(), from)
}

#[test]
fn the_last_ack_of_an_upload_leaves_only_once_it_is_stored() {
    let root = Dir::new("serve-tftp-commit");
    let server = serve(&root);
    let port = server.udp("tftp");
    let (a, b) = (udp_socket(), udp_socket());
    // Both uploads of one new name are under way before either ends.
    a.send_to(b"\x00\x02same\x00octet\x00", port).unwrap();
    let (ack0, tid_a) = recv(&a);
    assert_eq!(ack0, b"\x00\x04\x00\x00");
    b.send_to(b"\x00\x02same\x00octet\x00", port).unwrap();
    let (ack0, tid_b) = recv(&b);
    assert_eq!(ack0, b"\x00\x04\x00\x00");
    // A's one (last) block, then B's.
    a.send_to(b"\x00\x03\x00\x01from A", tid_a).unwrap();
    assert_eq!(recv(&a).0, b"\x00\x04\x00\x01", "A stored");
    b.send_to(b"\x00\x03\x00\x01from B", tid_b).unwrap();
    let (answer, _) = recv(&b);
    assert_eq!(
        answer, b"\x00\x05\x00\x06File already exists\x00",
        "B is refused, never told its file is stored"
    );
    assert_eq!(std::fs::read(root.path("same")).unwrap(), b"from A");
}

#[test]
fn two_puts_of_one_new_name_at_once_one_stored_the_other_exits_1() {
    let root = Dir::new("serve-tftp-two-puts");
    let local = Dir::new("serve-tftp-two-puts-local");
    // Large enough (6000 blocks each) that both requests are in long
    // before either upload ends.
    let files = [random(3_000_000, 1), random(3_000_000, 2)];
    for (i, f) in files.iter().enumerate() {
        std::fs::write(local.path(&format!("{i}")), f).unwrap();
    }
    let server = serve(&root);
    let addr = server.udp("tftp").to_string();
    let mut children: Vec<_> = (0..2)
        .map(|i| {
            Command::new(bin())
                .args(["tftp", "put", &addr])
                .arg(local.path(&format!("{i}")))
                .args(["--as", "same"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut codes = Vec::new();
    for child in &mut children {
        let status = wait_child(child, Duration::from_secs(60)).expect("put ended");
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        codes.push((status.code(), err));
    }
    let ok: Vec<_> = codes.iter().filter(|(c, _)| *c == Some(0)).collect();
    let refused: Vec<_> = codes.iter().filter(|(c, _)| *c == Some(1)).collect();
    assert_eq!((ok.len(), refused.len()), (1, 1), "{codes:?}");
    assert!(refused[0].1.contains("error 6"), "{codes:?}");
    let stored = std::fs::read(root.path("same")).unwrap();
    assert!(
        stored == files[0] || stored == files[1],
        "the stored file is one upload, byte-exact"
    );
}

#[test]
fn a_request_with_a_bad_name_or_mode_is_answered_with_error_4() {
    let root = Dir::new("serve-tftp-bad-request");
    let server = serve(&root);
    let socket = udp_socket();
    for (request, text) in [
        (&b"\x00\x01\x00octet\x00"[..], &b"Empty file name"[..]),
        (b"\x00\x02\xff\x00octet\x00", b"File name not UTF-8"),
        (b"\x00\x01f\x00mail\x00", b"Unknown mode"),
    ] {
        socket.send_to(request, server.udp("tftp")).unwrap();
        let (answer, from) = recv(&socket);
        assert_eq!(
            from,
            server.udp("tftp"),
            "from the listening port: no session"
        );
        assert_eq!(&answer[..4], b"\x00\x05\x00\x04", "{request:?}");
        assert_eq!(&answer[4..answer.len() - 1], text);
    }
}

#[test]
fn a_flood_of_requests_from_silent_peers_never_locks_out_a_client() {
    let root = Dir::new("serve-tftp-flood");
    std::fs::write(root.path("f.bin"), random(100_000, 3)).unwrap();
    let server = serve(&root);
    let port = server.udp("tftp");
    // 300 requests from 300 loopback ports, none of which ever answers:
    // far past the per-peer bound (16) of 127.0.0.1.
    let silent: Vec<UdpSocket> = (0..300).map(|_| udp_socket()).collect();
    for s in &silent {
        s.send_to(b"\x00\x01f.bin\x00octet\x00", port).unwrap();
    }
    // The server has seen them all: each got its DATA 1, or (evicted in
    // the same turn, before its answer left) nothing.
    let mut answered = 0;
    for s in &silent {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 600];
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            assert_eq!(&buf[..4.min(n)], b"\x00\x03\x00\x01");
            answered += 1;
        }
    }
    eprintln!("{answered} of 300 silent peers got DATA 1");
    let out = temp_path("flood-got");
    let started = Instant::now();
    let o = common::run_with_timeout(
        &[
            "tftp",
            "get",
            &port.to_string(),
            "f.bin",
            "-o",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    let took = started.elapsed();
    assert!(o.status.success(), "{o:?}\n{}", server.stderr());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(root.path("f.bin")).unwrap()
    );
    let _ = std::fs::remove_file(&out);
    // At once: no refusal and retry, no waiting for the flood to expire.
    assert!(took < Duration::from_secs(1), "took {took:?}");
}
