//! `mioperf get HOST:PORT NAME [-o OUT]` and `mioperf put HOST:PORT FILE
//! [--as NAME]`: one tcpfile transfer each.
//!
//! Exit 0 when every byte moved, 1 when the server refused (not found,
//! exists), 2 on a failure or a timeout. The summary goes to standard
//! error: standard output may be the file (`-o -`).

use super::{Bar, client_reactor, local_sink, resolve_host_port, run_client, upload_name};
use crate::app::output::{Report, Stream, Timeout, View, format_bitrate, format_bytes, rate};
use crate::app::trace::traced_stream;
use crate::app::{Failure, error};
use crate::cli::{GetArgs, PutArgs};
use crate::proto::StreamSession;
use crate::proto::data::Source;
use crate::proto::outcome::{OutcomeSlot, Progress};
use crate::proto::tcpfile::{self, Done};
use serde_json::{Value, json};
use std::net::SocketAddr;

/// `mioperf get`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn get_client(args: &GetArgs) -> Result<(), Failure> {
    let server = resolve_host_port(&args.server)?;
    super::output_and_json(args.output.as_deref(), args.json)?;
    let sink = local_sink(&args.name, args.output.as_deref(), args.force)?;
    let slot = OutcomeSlot::new();
    let progress = Progress::new();
    let session = Box::new(tcpfile::GetClient::new(
        &args.name,
        Box::new(sink),
        args.timeout,
        slot.clone(),
        progress.clone(),
    ));
    // The size is known only from the answer: the bar counts bytes.
    let transfer = Transfer {
        verb: "get",
        name: &args.name,
        server,
        json: args.json,
    };
    transfer.run(
        session,
        &slot,
        Bar {
            total: None,
            progress,
        },
    )
}

/// `mioperf put`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn put_client(args: &PutArgs) -> Result<(), Failure> {
    let server = resolve_host_port(&args.server)?;
    let source = crate::files::FileSource::open(&args.file)
        .map_err(|e| error(&args.file.display().to_string(), e))?;
    let size = source.size().unwrap_or(0);
    let name = upload_name(args.name.as_ref(), &args.file)?;
    let slot = OutcomeSlot::new();
    let progress = Progress::new();
    let session = Box::new(tcpfile::PutClient::new(
        &name,
        Box::new(source),
        size,
        args.timeout,
        slot.clone(),
        progress.clone(),
    ));
    let transfer = Transfer {
        verb: "put",
        name: &name,
        server,
        json: args.json,
    };
    transfer.run(
        session,
        &slot,
        Bar {
            total: Some(size),
            progress,
        },
    )
}

/// One transfer to show.
struct Transfer<'a> {
    verb: &'static str,
    name: &'a str,
    server: SocketAddr,
    json: bool,
}

impl Transfer<'_> {
    /// Runs `session` to its end and shows its outcome.
    fn run(
        &self,
        session: Box<dyn StreamSession>,
        slot: &OutcomeSlot<Done>,
        bar: Bar,
    ) -> Result<(), Failure> {
        let server = self.server;
        let mut reactor = client_reactor()?;
        reactor
            .connect_tcp(server, traced_stream("tcpfile", server, session))
            .map_err(|e| error(&format!("cannot reach {server}"), e))?;
        run_client(reactor, (!self.json).then_some(bar), slot)?;
        let view = View {
            header: json!({
                "protocol": "tcpfile", "verb": self.verb, "server": server.to_string(),
                "name": self.name,
            }),
            json: self.json,
            text: Stream::Stderr,
            server: Some(server),
            refusal_prefix: "",
            title: Some(format!("{} {}", self.verb, self.name)),
            timeout: Timeout::said(move |_| format!("{server}: no progress, gave up")),
        };
        view.show(slot.take(), None)
    }
}

impl Report for Done {
    fn text(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "{} in {secs:.3} s = {}",
            format_bytes(self.bytes),
            format_bitrate(rate(self.bytes.saturating_mul(8), secs))
        )
    }

    fn json(&self, doc: &mut Value) {
        let secs = self.elapsed.as_secs_f64();
        doc["outcome"] = json!("ok");
        doc["bytes"] = json!(self.bytes);
        doc["seconds"] = json!(secs);
        doc["bits_per_second"] = json!(rate(self.bytes.saturating_mul(8), secs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn a_transfer_in_gigabits() {
        let done = Done {
            bytes: 1_000_000,
            elapsed: Duration::from_millis(4),
        };
        assert_eq!(done.text(), "977 KiB in 0.004 s = 2 Gbit/s");
        let mut doc = json!({});
        done.json(&mut doc);
        assert_eq!(
            doc,
            json!({"outcome": "ok", "bytes": 1_000_000, "seconds": 0.004, "bits_per_second": 2e9})
        );
    }
}
