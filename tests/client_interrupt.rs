//! An interrupted download: SIGINT or SIGTERM to `mioperf tftp get`
//! mid-transfer removes its `.NAME.mioperf-part-PID` and exits 130 or 143,
//! as curl does.
//!
//! The server is the test itself on a loopback UDP socket: it answers the
//! read request with one full DATA block, takes the ACK, then stalls, so the
//! client is certainly mid-download when the signal arrives.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against real processes"
)]

mod common;

use common::{Dir, bin, send_signal, udp_socket, wait_child};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The leftovers of a download in `dir`.
fn parts(dir: &Dir) -> Vec<String> {
    std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".mioperf-part-"))
        .collect()
}

fn interrupted_with(signal: i32, code: i32) {
    let local = Dir::new(&format!("interrupt-{signal}"));
    let server = udp_socket();
    let out = local.path("big.bin");
    let mut child = Command::new(bin())
        .args(["tftp", "get", &server.local_addr().unwrap().to_string()])
        .args(["big.bin", "-o", out.to_str().unwrap(), "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 1500];
    let (_, client) = server.recv_from(&mut buf).expect("the read request");
    assert_eq!(&buf[..2], b"\x00\x01", "RRQ");
    // DATA 1, full: more is coming, and the server then goes quiet.
    let transfer = udp_socket();
    let mut data = vec![0, 3, 0, 1];
    data.extend_from_slice(&[7u8; 512]);
    transfer.send_to(&data, client).unwrap();
    let (_, _) = transfer.recv_from(&mut buf).expect("ACK 1");
    assert_eq!(&buf[..4], b"\x00\x04\x00\x01", "ACK 1");
    assert_eq!(parts(&local).len(), 1, "the download is under way");
    send_signal(child.id(), signal);
    let status = wait_child(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(status.and_then(|s| s.code()), Some(code), "exit {status:?}");
    assert_eq!(parts(&local), Vec::<String>::new(), "part file left behind");
    assert!(!out.exists(), "an interrupted download is not the file");
}

#[test]
fn sigint_removes_the_part_file_and_exits_130() {
    interrupted_with(2, 130);
}

#[test]
fn sigterm_removes_the_part_file_and_exits_143() {
    interrupted_with(15, 143);
}
