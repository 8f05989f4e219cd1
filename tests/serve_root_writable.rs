//! A server whose `--root` is not writable says so at start (a warning),
//! and `--strict` refuses to start (exit 2, one line), instead of starting
//! silently and answering the first upload with `error 0`.
//!
//! Root's `CAP_DAC_OVERRIDE` writes through any mode bits, so the root is a
//! read-only tmpfs in a mount namespace of the test's own (`unshare -m`).
//! Without the right to make one the test is skipped with the reason,
//! except under `CI`, where it fails.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against real processes"
)]

mod common;

use common::{Dir, Server, bin, run_command, run_with_timeout};
use std::process::{Command, Output};
use std::time::Duration;

/// The launcher that runs a command with `$1` a read-only tmpfs in a
/// mount namespace of its own.
const READ_ONLY_ROOT: &str = "mount -t tmpfs -o ro tmpfs \"$1\" && shift && exec \"$@\"";

/// Whether a read-only tmpfs can be mounted on `dir` in a mount namespace
/// of our own; if not, says why (and fails under `CI`).
fn can_mount(dir: &Dir) -> bool {
    let probe = run_command(
        Command::new("unshare").args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o ro tmpfs \"$1\"",
            "sh",
            dir.s(),
        ]),
        Duration::from_secs(10),
    );
    if !probe.status.success() {
        let why = format!(
            "cannot mount a read-only tmpfs (unshare -m needs CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
        return false;
    }
    true
}

/// `mioperf serve ARGS` with `dir` a read-only mount in a private mount
/// namespace; `None` (with the reason printed) when one cannot be made.
fn serve_read_only(dir: &Dir, args: &[&str]) -> Option<Output> {
    if !can_mount(dir) {
        return None;
    }
    Some(run_command(
        Command::new("unshare")
            .args([
                "-m",
                "sh",
                "-c",
                READ_ONLY_ROOT,
                "sh",
                dir.s(),
                bin(),
                "serve",
                "--only",
                "tftp",
                "--listen",
                "tftp=127.0.0.1:0",
                "--root",
                dir.s(),
                "--idle-exit",
                "300ms",
            ])
            .args(args),
        Duration::from_secs(20),
    ))
}

#[test]
fn a_read_only_root_is_a_warning_at_start() {
    let dir = Dir::new("ro-root-warn");
    let Some(o) = serve_read_only(&dir, &[]) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("ready"),
        "{o:?}"
    );
    assert!(
        stderr.contains("is not writable") && stderr.contains("Read-only file system"),
        "the warning and its cause: {stderr}"
    );
}

#[test]
fn strict_refuses_a_read_only_root_with_one_line() {
    let dir = Dir::new("ro-root-strict");
    let Some(o) = serve_read_only(&dir, &["--strict"]) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("ready"),
        "{o:?}"
    );
    // Log lines (`[INFO] …`) aside, the error is one line of its own.
    let said: Vec<&str> = stderr.lines().filter(|l| !l.starts_with('[')).collect();
    assert_eq!(said.len(), 1, "one line: {stderr}");
    assert!(
        said[0].starts_with("mioperf: ") && said[0].contains("is not writable"),
        "{stderr}"
    );
}

/// The upload that then fails is logged at `warn` with its cause, where
/// the client hears only TFTP's `error 0`.
#[test]
fn a_failed_upload_is_logged_with_its_cause() {
    let dir = Dir::new("ro-root-upload");
    if !can_mount(&dir) {
        return;
    }
    let server = Server::spawn_via(
        &["unshare", "-m", "sh", "-c", READ_ONLY_ROOT, "sh", dir.s()],
        "serve",
        &[
            "--only",
            "tftp",
            "--listen",
            "tftp=127.0.0.1:0",
            "--root",
            dir.s(),
        ],
    );
    let local = Dir::new("ro-root-upload-local");
    let file = local.path("up.bin");
    std::fs::write(&file, b"will not land").unwrap();
    let o = run_with_timeout(
        &[
            "tftp",
            "put",
            &server.udp("tftp").to_string(),
            file.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    let said = server.stderr_with(
        &["cannot create a temporary file for up.bin"],
        Duration::from_secs(5),
    );
    let line = said
        .lines()
        .find(|l| l.contains("cannot create a temporary file for up.bin"))
        .unwrap_or_else(|| panic!("no warning for the upload: {said}"));
    assert!(
        line.contains("WARN") && line.contains("Read-only file system"),
        "{line}"
    );
}
