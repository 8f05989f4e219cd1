//! mioperf: TCP and UDP protocols served and driven from one
//! single-threaded `mio` poll loop, with no async runtime.
//!
//! # The layers
//! Each layer may import only the ones below it:
//!
//! ```text
//! cli/, app/           parse commands, build acceptors and sessions, print reports
//! reactor/              the ONLY code that touches mio, sockets, fds and the clock
//! proto/                sans-IO sessions: bytes/datagrams + `now` in; bytes, deadlines, an end out
//! wire/                 pure codecs: bytes <-> values; no I/O, no time, no logging
//! ```
//!
//! * [`wire`] turns bytes into values and back, and never panics on input.
//! * [`proto`] holds one state machine per conversation. It is handed
//!   input and the current [`time::Instant`], and reports what to send,
//!   when it next needs to be woken, and when it is done.
//!   Every timeout is therefore testable in virtual time.
//! * [`reactor`] owns one `mio::Poll`, every socket and device in one slab
//!   (the slab key is the mio token), one deadline heap, and the clock. It reads the clock
//!   once per turn and drives every session with that `now`.
//! * [`app`] and [`cli`] wire it together for `mioperf serve` and the clients.
//! * [`sim`] drives sessions the way the reactor does (the same
//!   `proto::drive::after_call`), over seeded impaired
//!   links in virtual time, for deterministic tests of whole exchanges.
//!
//! A test at the bottom of this file keeps `wire`, `proto`, `sim` and the
//! fuzzing harnesses free of
//! sockets, files, the reactor and the clock.

pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod logging;
pub mod progress;
pub mod proto;
pub mod reactor;
pub mod rng;
pub mod sim;
pub mod stats;
pub mod store;
pub mod time;
pub mod units;
pub mod wire;

#[cfg(test)]
mod architecture {
    //! The layer rule, checked by reading the source.

    use std::path::Path;

    const FORBIDDEN: &[&str] = &[
        "reactor::",
        "mio::",
        "std::net::UdpSocket",
        "std::net::TcpStream",
        "std::net::TcpListener",
        "UdpSocket",
        "TcpStream",
        "std::fs",
        "File::",
        "Instant::now",
        "SystemTime",
        "thread::sleep",
        "libc::",
    ];

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn wire_proto_and_sim_never_touch_io_or_the_clock() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&root.join("wire"), &mut files);
        rust_files(&root.join("proto"), &mut files);
        rust_files(&root.join("sim"), &mut files);
        rust_files(&root.join("fuzzing"), &mut files);
        assert!(files.len() >= 5, "found the sources");
        let mut offences = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for word in FORBIDDEN {
                    if code.contains(word) {
                        offences.push(format!("{}:{}: {word}", file.display(), n + 1));
                    }
                }
            }
        }
        assert!(
            offences.is_empty(),
            "layer rule broken:\n{}",
            offences.join("\n")
        );
    }

    #[test]
    fn the_guard_itself_can_fail() {
        let sample = "use mio::net::UdpSocket; let t = std::time::Instant::now();";
        assert!(FORBIDDEN.iter().filter(|w| sample.contains(*w)).count() >= 3);
    }
}
