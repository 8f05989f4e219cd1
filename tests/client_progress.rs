//! The progress bar on a real terminal: with standard error on a pty
//! (util-linux `script`) the bar draws there, and standard output — here
//! the downloaded file itself (`-o -`) — carries the file's bytes and
//! nothing else. Without a terminal no bar is drawn at all (covered by
//! `client_quiet.rs`, whose runs expect empty output).

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::{Dir, Server, bin, run_command};
use std::process::Command;
use std::time::Duration;

/// Bound of one client run.
const CLIENT_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn the_bar_goes_to_the_terminal_and_never_into_standard_output() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIP: util-linux `script` is not installed");
        return;
    }
    let root = Dir::new("client-progress-root");
    let out = Dir::new("client-progress-out");
    let data: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.path("f.bin"), &data).unwrap();
    let server = Server::spawn(&[
        "--only",
        "tftp,tcpfile",
        "--listen",
        "tftp=127.0.0.1:0",
        "--listen",
        "tcpfile=127.0.0.1:0",
        "--root",
        root.s(),
    ]);
    let tftp = server.udp("tftp").to_string();
    let tcpfile = server.tcp("tcpfile").to_string();
    for (n, client) in [
        format!("tftp get {tftp} f.bin -o -"),
        format!("get {tcpfile} f.bin -o -"),
    ]
    .iter()
    .enumerate()
    {
        let file = out.path(&n.to_string());
        // Standard error (and input) on script's pty; standard output to a file.
        let line = format!("{} {client} > {}", bin(), file.display());
        let run = run_command(
            Command::new("script").args(["-qec", &line, "/dev/null"]),
            CLIENT_LIMIT,
        );
        let terminal = String::from_utf8_lossy(&run.stdout);
        assert!(run.status.success(), "{client}: {terminal}");
        assert!(
            std::fs::read(&file).unwrap() == data,
            "{client}: standard output is the file, byte for byte"
        );
        // indicatif redraws its line with "erase line"; the summary never does.
        assert!(
            terminal.contains("\u{1b}[2K"),
            "{client}: no bar on the terminal: {terminal:?}"
        );
        assert!(terminal.contains("400000 bytes"), "{client}: {terminal:?}");
    }
}
