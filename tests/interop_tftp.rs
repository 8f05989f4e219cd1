//! TFTP interop: curl, tftp-hpa's `tftp` and atftp against `mioperf serve`,
//! mioperf's client against tftpd-hpa, block-number rollover (40 MB at
//! blksize 512), mioperf's client and server at every boundary size, and
//! ERROR 5 to a stranger over real sockets.
//!
//! The tools come from `.ci/run` (apt-get). Without one, the test fails when
//! `CI` is set and is skipped with a message otherwise.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against real processes"
)]

mod common;

use common::{Dir, Server, run_command, run_with_timeout, udp_socket};
use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Whether `tool` is installed; in CI a missing tool is a failure.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed, but CI must install it (.ci/run)"
        );
        eprintln!("skipped: {tool} not installed");
    }
    found
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

fn run(cmd: &mut Command) -> std::process::Output {
    run_command(cmd, Duration::from_secs(60))
}

fn same(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

#[test]
fn curl_gets_and_puts() {
    if !have("curl") {
        return;
    }
    let root = Dir::new("tftp-curl");
    let local = Dir::new("tftp-curl-local");
    std::fs::write(root.path("f.bin"), random(300_000, 1)).unwrap();
    std::fs::write(root.path("exact.bin"), random(1024, 2)).unwrap();
    let server = serve(&root);
    let port = server.udp("tftp").port();
    for (name, extra) in [
        ("f.bin", vec![]),
        ("f.bin", vec!["--tftp-blksize", "1468"]),
        ("exact.bin", vec![]),
    ] {
        let out = local.path("got");
        let _ = std::fs::remove_file(&out);
        let o = run(Command::new("curl")
            .args(["-s", "-S", "-o", out.to_str().unwrap()])
            .args(&extra)
            .arg(format!("tftp://127.0.0.1:{port}/{name}")));
        assert!(o.status.success(), "curl {extra:?}: {o:?}");
        assert!(same(&out, &root.path(name)), "{name} {extra:?}");
    }
    let o = run(Command::new("curl")
        .args(["-s", "-S", "-T", root.path("f.bin").to_str().unwrap()])
        .arg(format!("tftp://127.0.0.1:{port}/up.bin")));
    assert!(o.status.success(), "{o:?}");
    assert!(same(&root.path("up.bin"), &root.path("f.bin")));
    // A missing file is curl's error, not a hang.
    let o = run(Command::new("curl")
        .args(["-s", "-o", "/dev/null"])
        .arg(format!("tftp://127.0.0.1:{port}/nope")));
    assert!(!o.status.success());
}

#[test]
fn tftp_hpa_client_gets_and_puts() {
    if !have("tftp") {
        return;
    }
    let root = Dir::new("tftp-hpa");
    let local = Dir::new("tftp-hpa-local");
    std::fs::write(root.path("f.bin"), random(200_000, 3)).unwrap();
    let server = serve(&root);
    let port = server.udp("tftp").port().to_string();
    let got = local.path("got.bin");
    let o = run(Command::new("tftp").args([
        "-m",
        "binary",
        "127.0.0.1",
        &port,
        "-c",
        "get",
        "f.bin",
        got.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{o:?}");
    assert!(same(&got, &root.path("f.bin")));
    let o = run(Command::new("tftp").args([
        "-m",
        "binary",
        "127.0.0.1",
        &port,
        "-c",
        "put",
        got.to_str().unwrap(),
        "back.bin",
    ]));
    assert!(o.status.success(), "{o:?}");
    assert!(same(&root.path("back.bin"), &root.path("f.bin")));
}

#[test]
fn atftp_with_windowsize_and_blksize() {
    if !have("atftp") {
        return;
    }
    let root = Dir::new("tftp-atftp");
    let local = Dir::new("tftp-atftp-local");
    std::fs::write(root.path("f.bin"), random(500_000, 4)).unwrap();
    let server = serve(&root);
    let port = server.udp("tftp").port().to_string();
    let got = local.path("got.bin");
    let o = run(Command::new("atftp").args([
        "--option",
        "windowsize 8",
        "--option",
        "blksize 1468",
        "-g",
        "-r",
        "f.bin",
        "-l",
        got.to_str().unwrap(),
        "127.0.0.1",
        &port,
    ]));
    assert!(o.status.success(), "{o:?}");
    assert!(same(&got, &root.path("f.bin")));
    let o = run(Command::new("atftp").args([
        "--option",
        "windowsize 4",
        "-p",
        "-l",
        got.to_str().unwrap(),
        "-r",
        "back.bin",
        "127.0.0.1",
        &port,
    ]));
    assert!(o.status.success(), "{o:?}");
    assert!(same(&root.path("back.bin"), &root.path("f.bin")));
}

/// mioperf's client against mioperf's server over real sockets: every
/// boundary size both ways (an empty file is one empty DATA block; 512 bytes
/// needs a trailing empty block), with and without options, then the write
/// policy: a second PUT of the same name is refused with ERROR 6 (exit 1)
/// and the file keeps its first contents.
#[test]
fn mioperf_client_moves_every_boundary_size_both_ways() {
    let root = Dir::new("tftp-sizes");
    let local = Dir::new("tftp-sizes-local");
    let server = serve(&root);
    let hostport = server.udp("tftp").to_string();
    for (len, options) in [
        (0usize, &[][..]),
        (1, &[]),
        (100, &[]),
        (101, &[]),
        (511, &[]),
        (512, &[]),
        (513, &[]),
        (250_000, &[]),
        (250_000, &["--blksize", "1468", "--windowsize", "8"]),
    ] {
        let body = random(len, len as u64 + 7);
        let name = format!("f{len}-{}", options.len());
        std::fs::write(root.path(&name), &body).unwrap();
        let got = local.path(&name);
        let mut args = vec!["tftp", "get", &hostport, &name, "-o", got.to_str().unwrap()];
        args.extend_from_slice(options);
        let o = run_with_timeout(&args, Duration::from_secs(60));
        assert_eq!(o.status.code(), Some(0), "get {len} {options:?}: {o:?}");
        assert!(
            std::fs::read(&got).unwrap() == body,
            "get {len} {options:?}"
        );
        let back = format!("back-{name}");
        let mut args = vec![
            "tftp",
            "put",
            &hostport,
            got.to_str().unwrap(),
            "--as",
            &back,
            "--json",
        ];
        args.extend_from_slice(options);
        let o = run_with_timeout(&args, Duration::from_secs(60));
        assert_eq!(o.status.code(), Some(0), "put {len} {options:?}: {o:?}");
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["bytes"].as_u64(), Some(len as u64), "{j}");
        assert!(
            std::fs::read(root.path(&back)).unwrap() == body,
            "put {len} {options:?}"
        );
    }
    let other = local.path("other");
    std::fs::write(&other, b"must not land").unwrap();
    let o = run_with_timeout(
        &[
            "tftp",
            "put",
            &hostport,
            other.to_str().unwrap(),
            "--as",
            "f100-0",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(o.status.code(), Some(1), "existing file: {o:?}");
    assert!(std::fs::read(root.path("f100-0")).unwrap() == random(100, 107));
    let o = run_with_timeout(
        &["tftp", "get", &hostport, "nope", "-o", "-"],
        Duration::from_secs(20),
    );
    assert_eq!(o.status.code(), Some(1), "missing file: {o:?}");
}

/// 40 MB at blksize 512 is 78 125 blocks: block numbers roll over past
/// 65535 to 0, as curl and tftp-hpa expect.
#[test]
fn block_numbers_roll_over_on_a_40_mb_file() {
    let root = Dir::new("tftp-rollover");
    let local = Dir::new("tftp-rollover-local");
    let body = random(40_000_000, 5);
    std::fs::write(root.path("big.bin"), &body).unwrap();
    let server = serve(&root);
    let hostport = server.udp("tftp").to_string();
    let got = local.path("mine.bin");
    // mioperf's own client, at blksize 512 with a window to keep it quick.
    let o = run_with_timeout(
        &[
            "tftp",
            "get",
            &hostport,
            "big.bin",
            "-o",
            got.to_str().unwrap(),
            "--windowsize",
            "16",
            "--json",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        std::fs::read(&got).unwrap() == body,
        "mioperf client, rollover"
    );
    if have("curl") {
        let got = local.path("curl.bin");
        let port = server.udp("tftp").port();
        let o = run_command(
            Command::new("curl")
                .args(["-s", "-S", "-o", got.to_str().unwrap()])
                .arg(format!("tftp://127.0.0.1:{port}/big.bin")),
            Duration::from_secs(120),
        );
        assert!(o.status.success(), "{o:?}");
        assert!(std::fs::read(&got).unwrap() == body, "curl, rollover");
    }
    // And up, through the rollover, with mioperf's client.
    let o = run_with_timeout(
        &[
            "tftp",
            "put",
            &hostport,
            got.to_str().unwrap(),
            "--as",
            "up.bin",
            "--windowsize",
            "16",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        std::fs::read(root.path("up.bin")).unwrap() == body,
        "upload, rollover"
    );
}

/// tftpd-hpa's own path (package tftpd-hpa, `dpkg -L tftpd-hpa`). Called by
/// path, not by `in.tftpd` on `PATH`: that name is a Debian alternative
/// which atftpd's package may own instead.
const TFTPD_HPA: &str = "/usr/sbin/in.tftpd";

/// Whether [`TFTPD_HPA`] is tftpd-hpa, judged by what it says it is
/// (`-V` prints `tftp-hpa VERSION, …`); in CI anything else is a failure.
fn have_tftpd_hpa() -> bool {
    let identity = Command::new(TFTPD_HPA).arg("-V").output().map_or_else(
        |e| format!("cannot run: {e}"),
        |o| {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text
        },
    );
    let is_hpa = identity.contains("tftp-hpa");
    if !is_hpa {
        let why = format!(
            "{TFTPD_HPA} is not tftpd-hpa (-V says {:?})",
            identity.trim()
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "{why}, but CI must install tftpd-hpa (.ci/run)"
        );
        eprintln!("skipped: {why}");
    }
    is_hpa
}

#[test]
fn mioperf_client_against_tftpd_hpa() {
    if !have_tftpd_hpa() {
        return;
    }
    let root = Dir::new("tftp-vs-hpa");
    let local = Dir::new("tftp-vs-hpa-local");
    std::fs::write(root.path("f.bin"), random(250_000, 6)).unwrap();
    // A free loopback port for tftpd-hpa.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(TFTPD_HPA)
        .args([
            "-L",
            "-c",
            "-u",
            "root",
            "-s",
            root.s(),
            "-a",
            &format!("127.0.0.1:{port}"),
        ])
        .spawn()
        .expect("start tftpd-hpa");
    std::thread::sleep(Duration::from_millis(300));
    let hostport = format!("127.0.0.1:{port}");
    let got = local.path("got.bin");
    let get = run_with_timeout(
        &[
            "tftp",
            "get",
            &hostport,
            "f.bin",
            "-o",
            got.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    let got2 = local.path("got2.bin");
    let get2 = run_with_timeout(
        &[
            "tftp",
            "get",
            &hostport,
            "f.bin",
            "-o",
            got2.to_str().unwrap(),
            "--blksize",
            "1468",
            "--windowsize",
            "8",
        ],
        Duration::from_secs(60),
    );
    let missing = run_with_timeout(
        &["tftp", "get", &hostport, "nope", "-o", "-"],
        Duration::from_secs(60),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(get.status.code(), Some(0), "{get:?}");
    assert!(same(&got, &root.path("f.bin")));
    assert_eq!(
        get2.status.code(),
        Some(0),
        "options tftpd-hpa may not grant: {get2:?}"
    );
    assert!(same(&got2, &root.path("f.bin")));
    assert_eq!(missing.status.code(), Some(1), "not found is a refusal");
}

#[test]
fn a_stranger_gets_error_5_and_the_transfer_goes_on() {
    let root = Dir::new("tftp-stranger");
    std::fs::write(root.path("f.bin"), random(2_000, 7)).unwrap();
    let server = serve(&root);
    let client = udp_socket();
    client
        .send_to(b"\x00\x01f.bin\x00octet\x00", server.udp("tftp"))
        .unwrap();
    let mut buf = [0u8; 600];
    let (n, tid) = client.recv_from(&mut buf).unwrap();
    assert_ne!(tid, server.udp("tftp"), "a new port for the transfer");
    assert_eq!(&buf[..4], b"\x00\x03\x00\x01", "DATA 1");
    assert_eq!(n, 4 + 512);
    let stranger = udp_socket();
    stranger.send_to(b"\x00\x04\x00\x01", tid).unwrap();
    let (n, from) = stranger.recv_from(&mut buf).unwrap();
    assert_eq!(from, tid);
    assert_eq!(&buf[..4], b"\x00\x05\x00\x05", "ERROR 5");
    assert!(n > 4);
    client.send_to(b"\x00\x04\x00\x01", tid).unwrap();
    let (_, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!(
        (from, &buf[..4]),
        (tid, &b"\x00\x03\x00\x02"[..]),
        "DATA 2: undisturbed"
    );
}
