//! The in-process server a bench starts when no `--server` is given.
//!
//! Owns its thread, its temporary root folder and the files generated in
//! it. The server is `app::start_server` with the one protocol being
//! benched on 127.0.0.1 port 0, run on a reactor of its own on its own
//! thread, so the bench's reactor measures a real socket path and the
//! command works with no set-up. It never outlives the process: the thread
//! is left running when the bench returns (the process exits next), and the
//! root is removed when the [`LocalServer`] is dropped.

use super::plan::{Plan, Transport};
use crate::app::{self, Failure};
use crate::cli::bench::{BenchMode, BenchProto};
use crate::config::{Protocol, ServeConfig};
use crate::time::Duration;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// hello ID lifetime of the in-process server: short, so each slot's IDs
/// come back as `OK` (as `benches/hello_vs_rr.sh` runs `serve`).
pub const LOCAL_ID_TTL: Duration = Duration::from_millis(10);
/// How long the server thread may take to bind its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Temporary roots tried before giving up (a stale one from a killed run
/// with the same pid is skipped, not reused).
const ROOT_ATTEMPTS: u32 = 100;
/// TFTP server sessions the in-process server allows: a finished upload's
/// server side dallies `timeout × tries` to repeat a lost final ACK (a new
/// request may evict it, but only at the cap), so a generous bound keeps
/// a fast PUT run from churning through evictions. Dallying sessions hold
/// a socket each: bounded, not unlimited.
const LOCAL_TFTP_SESSIONS: usize = 4096;
/// Tries to remove the temporary root at the end (see `LocalServer`'s drop).
const ROOT_REMOVE_ATTEMPTS: u32 = 1000;
/// Bytes written per `write` while generating a file.
const GENERATE_CHUNK: usize = 1 << 20;

/// A running in-process server.
#[derive(Debug)]
pub struct LocalServer {
    /// Where the benched protocol listens.
    pub addr: SocketAddr,
    root: PathBuf,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        // The server thread cannot be stopped from here and may still
        // commit an upload whose last bytes it had already received, racing
        // the removal ("directory not empty"): try again, a bounded number
        // of times. Files it holds open may be unlinked (Linux).
        for _ in 0..ROOT_REMOVE_ATTEMPTS {
            match std::fs::remove_dir_all(&self.root) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => std::thread::yield_now(),
                _ => return,
            }
        }
        log::warn!("could not remove {}", self.root.display());
    }
}

fn protocol(proto: BenchProto) -> Protocol {
    match proto {
        BenchProto::Hello => Protocol::Hello,
        BenchProto::Lab => Protocol::Lab,
        BenchProto::Msg => Protocol::Msg,
        BenchProto::Tcpfile => Protocol::Tcpfile,
        BenchProto::Stopwait => Protocol::Stopwait,
        BenchProto::Tftp => Protocol::Tftp,
        BenchProto::Window => Protocol::Window,
    }
}

fn temp_root() -> Result<PathBuf, Failure> {
    let base = std::env::temp_dir();
    let pid = std::process::id();
    for n in 0..ROOT_ATTEMPTS {
        let dir = base.join(format!("mioperf-bench-{pid}-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Failure::Error(format!(
                    "cannot create a temporary root in {}: {e}",
                    base.display()
                )));
            }
        }
    }
    Err(Failure::Error(format!(
        "no free temporary root name in {}",
        base.display()
    )))
}

/// Writes `len` bytes of the lab pattern to `path`.
fn generate(path: &Path, len: u64) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut offset = 0u64;
    while offset < len {
        let n = usize::try_from(len - offset).map_or(GENERATE_CHUNK, |r| r.min(GENERATE_CHUNK));
        let mut chunk = vec![0u8; n];
        crate::wire::lab::fill_pattern(offset, &mut chunk);
        file.write_all(&chunk)?;
        offset += n as u64;
    }
    file.flush()
}

/// The in-process server's settings for `plan`, serving `root`.
fn serve_config(plan: &Plan, root: PathBuf) -> ServeConfig {
    let proto = protocol(plan.proto);
    let mut config = ServeConfig {
        only: Some(vec![proto]),
        root,
        allow_overwrite: true,
        id_ttl: LOCAL_ID_TTL,
        busy_poll: plan.busy_poll,
        ..ServeConfig::default()
    };
    config
        .listen
        .insert(proto, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    // Every bench session comes from 127.0.0.1 (see LOCAL_TFTP_SESSIONS).
    config.tftp.max_sessions = LOCAL_TFTP_SESSIONS;
    config.tftp.max_sessions_per_peer = LOCAL_TFTP_SESSIONS;
    config
}

/// Starts the server `plan` needs, with the file a GET fetches.
///
/// # Errors
/// The root cannot be made, the file cannot be written, or a listener
/// cannot be bound.
pub fn start(plan: &Plan) -> Result<LocalServer, Failure> {
    let root = temp_root()?;
    let mut server = LocalServer {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        root,
    };
    if plan.proto.is_file() && plan.mode == BenchMode::Get {
        let path = server.root.join(&plan.name);
        generate(&path, plan.length)
            .map_err(|e| Failure::Error(format!("cannot write {}: {e}", path.display())))?;
    }
    let config = serve_config(plan, server.root.clone());
    let want = match plan.transport {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    };
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || match app::start_server(&config) {
            Ok(app::Server {
                mut reactor,
                listeners,
            }) => {
                let addr = listeners
                    .iter()
                    .find(|b| b.transport == want)
                    .map(|b| b.addr);
                let _ = tx.send(addr.ok_or_else(|| format!("no {want} listener")));
                if let Err(e) = reactor.run() {
                    log::warn!("in-process server stopped: {e}");
                }
            }
            Err(Failure::Error(e) | Failure::Refused(e)) => {
                let _ = tx.send(Err(e));
            }
            Err(Failure::Signal(n)) => {
                let _ = tx.send(Err(format!("signal {n}")));
            }
        })
        .map_err(|e| Failure::Error(format!("cannot start the server thread: {e}")))?;
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(addr)) => {
            server.addr = addr;
            Ok(server)
        }
        Ok(Err(e)) => Err(Failure::Error(format!("in-process server: {e}"))),
        Err(_) => Err(Failure::Error("the in-process server did not start".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::plan::plan_of;

    #[test]
    fn the_server_busy_polls_as_the_bench_was_told() {
        let root = PathBuf::from("/nowhere");
        let busy = plan_of(&["tftp", "--busy-poll", "1ms"]).unwrap();
        assert_eq!(
            serve_config(&busy, root.clone()).busy_poll,
            Duration::from_millis(1)
        );
        let plain = plan_of(&["tftp"]).unwrap();
        assert_eq!(serve_config(&plain, root).busy_poll, Duration::ZERO);
    }
}
