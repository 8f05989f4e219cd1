//! The client commands: one file per protocol, and what they share.
//!
//! Owns, per command, the session it starts, the socket it gets and the
//! [`View`](super::output::View) its outcome is shown through; here, the
//! plumbing every client shares: resolving the server, a reactor that
//! ends with its sessions, the progress bar, and where a download goes.
//! A client never prints its outcome itself: `output.rs` does.

mod hello;
mod lab;
mod msg;
mod stopwait;
mod tcpfile;
mod tftp;
mod tunstack;
mod window;

pub use hello::hello_client;
pub use lab::lab_client;
pub use msg::msg_client;
pub use stopwait::stopwait_client;
pub use tcpfile::{get_client, put_client};
pub use tftp::tftp_client;
pub use tunstack::tunstack_client;
pub use window::window_client;

use super::output::{Stream, Timeout, View};
use super::{Failure, error};
use crate::files::FileSink;
use crate::proto::outcome::{OutcomeSlot, Progress};
use crate::reactor::{Reactor, ReactorConfig};
use crate::time::Duration;
use serde_json::json;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Resolves `host:port` to its first address.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, Failure> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| error(&format!("cannot resolve {host}"), e))?
        .next()
        .ok_or_else(|| Failure::Error(format!("{host}: no address")))
}

/// Resolves `HOST:PORT` (IPv6 as `[::1]:PORT`).
fn resolve_host_port(text: &str) -> Result<SocketAddr, Failure> {
    text.to_socket_addrs()
        .map_err(|e| error(&format!("'{text}' is not HOST:PORT"), e))?
        .next()
        .ok_or_else(|| Failure::Error(format!("{text}: no address")))
}

/// The unspecified address of `server`'s family, port 0: where a client's
/// own UDP socket binds.
fn any_local(server: SocketAddr) -> SocketAddr {
    if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .unwrap_or(server)
}

/// A client reactor: no signals, exits when its sessions are done.
fn client_reactor() -> Result<Reactor, Failure> {
    client_reactor_busy(Duration::ZERO)
}

/// A client reactor that busy-polls for `busy_poll` after each event
/// (`ReactorConfig::busy_poll`).
fn client_reactor_busy(busy_poll: Duration) -> Result<Reactor, Failure> {
    let config = ReactorConfig {
        exit_when_no_sessions: true,
        busy_poll,
        ..ReactorConfig::default()
    };
    Reactor::new(config).map_err(|e| error("reactor", e))
}

/// A progress bar for a transfer of `total` bytes (if known).
struct Bar {
    total: Option<u64>,
    progress: Progress,
}

/// Runs a client's reactor until its session has ended, with a progress
/// bar on standard error when there is a `bar` and standard error is a
/// terminal.
///
/// SIGINT and SIGTERM stop the reactor rather than the process, so that the
/// sessions — and a download's [`FileSink`], whose drop removes its
/// `.NAME.mioperf-part-PID` — are dropped here before the process exits
/// with [`Failure::Signal`] (130 or 143, as curl).
fn run_client<T: 'static>(
    mut reactor: Reactor,
    bar: Option<Bar>,
    slot: &OutcomeSlot<T>,
) -> Result<(), Failure> {
    // -q: no bar either (as curl's -s).
    if let Some(Bar { total, progress }) = bar.filter(|_| !super::output::quiet()) {
        let done = slot.clone();
        if let Some(t) =
            crate::progress::Ticker::on_terminal(total, progress, Box::new(move || done.is_set()))
        {
            reactor.add_detached(Box::new(t));
        }
    }
    reactor.watch_signals().map_err(|e| error("signals", e))?;
    match reactor.run().map_err(|e| error("poll", e))? {
        crate::reactor::Exit::Signal(number) => {
            drop(reactor);
            Err(Failure::Signal(number))
        }
        _ => Ok(()),
    }
}

/// One rule for every client that can write a download to standard
/// output: `-o -` and `--json` cannot share it, since the JSON would be
/// mixed into the file's bytes. Checked before anything is opened.
fn output_and_json(output: Option<&Path>, json: bool) -> Result<(), Failure> {
    if json && output.is_some_and(|o| o.as_os_str() == "-") {
        return Err(Failure::Error(
            "-o - and --json both want standard output".into(),
        ));
    }
    Ok(())
}

/// Where a download goes: `-o OUT`, `-o -`, or the name's last component.
fn local_sink(name: &str, output: Option<&Path>, force: bool) -> Result<FileSink, Failure> {
    match output {
        Some(o) if o.as_os_str() == "-" => Ok(FileSink::stdout()),
        Some(o) => FileSink::create(o, force).map_err(|e| error(&o.display().to_string(), e)),
        None => {
            let out = Path::new(name)
                .file_name()
                .ok_or_else(|| Failure::Error(format!("'{name}' has no file name: use -o")))?;
            let out = PathBuf::from(out);
            FileSink::create(&out, force).map_err(|e| error(&out.display().to_string(), e))
        }
    }
}

/// The name an upload is stored under: `--as NAME`, or the file's own.
fn upload_name(name: Option<&String>, file: &Path) -> Result<String, Failure> {
    match name {
        Some(n) => Ok(n.clone()),
        None => file
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| Failure::Error(format!("{}: name it with --as", file.display()))),
    }
}

/// How the UDP file transfers (stopwait, TFTP) show an outcome: the
/// summary on standard error (standard output may be the file), the
/// server's refusal as `server: …`, and failures, which are the local
/// file's or the socket's, said plainly.
fn udp_transfer_view(
    protocol: &str,
    verb: &str,
    name: &str,
    server: SocketAddr,
    json: bool,
) -> View {
    View {
        header: json!({
            "protocol": protocol, "verb": verb, "server": server.to_string(), "name": name,
        }),
        json,
        text: Stream::Stderr,
        server: None,
        refusal_prefix: "server: ",
        title: Some(format!("{verb} {name}")),
        timeout: Timeout::said(move |tries| format!("{server}: no answer after {tries} tries")),
    }
}

/// The engine's counters as the `--json` object's `"tcp"` member, in the
/// units of every document (durations in whole ns: docs/json.md).
#[must_use]
fn engine_json(c: &crate::proto::tcp::conn::Counters) -> serde_json::Value {
    serde_json::json!({
        "segments_in": c.segments_in,
        "segments_out": c.segments_out,
        "retransmits": c.retransmits,
        "fast_retransmits": c.fast_retransmits,
        "rto_expiries": c.rto_expiries,
        "duplicate_segments": c.duplicate_segments,
        "out_of_order": c.out_of_order,
        "srtt_ns": c.srtt_us.saturating_mul(1000),
        "rttvar_ns": c.rttvar_us.saturating_mul(1000),
        "cwnd": c.cwnd,
        "ssthresh": c.ssthresh,
    })
}
