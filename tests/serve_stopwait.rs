//! stopwait against the real binary: the spec's flows byte for byte over
//! UDP, GET and PUT of 0, 1, 100, 101 and 250 000 bytes with the clients,
//! refusals, and the seed's bug over the wire.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::{Server, run_with_timeout, temp_path, udp_socket};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let p = temp_path(&format!("stopwait-{tag}"));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn serve(root: &Dir) -> Server {
    let root = root.0.to_str().unwrap().to_owned();
    Server::spawn(&[
        "--only",
        "stopwait",
        "--listen",
        "stopwait=127.0.0.1:0",
        "--root",
        &root,
    ])
}

fn exchange(u: &UdpSocket, to: SocketAddr, packet: &[u8]) -> Vec<u8> {
    u.send_to(packet, to).unwrap();
    let mut buf = [0u8; 200];
    let (n, from) = u.recv_from(&mut buf).expect("an answer");
    assert_eq!(from, to);
    buf[..n].to_vec()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn the_spec_flows_byte_for_byte() {
    let root = Dir::new("flows");
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
    // Our ACK "lost": repeating the GET gets the same block again.
    assert_eq!(exchange(&u, to, b"G000000notes.txt"), d1);
    let d2 = exchange(&u, to, b"A100001ack");
    assert_eq!(&d2[..7], b"D000002");
    assert_eq!(&d2[7..], &data(150)[100..]);
    // A repeated ACK gets the last answer again.
    assert_eq!(exchange(&u, to, b"A100001ack"), d2);
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
    let root = Dir::new("seedbug");
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
    let root = Dir::new("clients");
    let local = Dir::new("clients-local");
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
