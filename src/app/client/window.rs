//! `mioperf window get|put HOST:PORT NAME|FILE`: one tcpfile transfer over
//! the userspace TCP engine carried in UDP.
//!
//! Exit 0 when every byte moved, 1 when the server refused (not found,
//! exists), 2 on a failure or a timeout. The summary goes to standard
//! error: standard output may be the file (`-o -`). `--json` adds the
//! engine's counters.

use super::{
    Bar, client_reactor, engine_json, local_sink, resolve_host_port, run_client, upload_name,
};
use crate::app::output::{Report, Stream, Timeout, View};
use crate::app::trace::{Decode, traced_datagram};
use crate::app::{Failure, error};
use crate::cli::{StopwaitVerb, WindowArgs};
use crate::proto::StreamSession;
use crate::proto::data::Source;
use crate::proto::outcome::{OutcomeSlot, Progress};
use crate::proto::tcp::conn::Counters;
use crate::proto::tcp::session::CounterCell;
use crate::proto::tcpfile;
use crate::proto::window::{Carried, WindowConfig};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// `mioperf window`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn window_client(args: &WindowArgs) -> Result<(), Failure> {
    let server = resolve_host_port(&args.server)?;
    super::output_and_json(args.output.as_deref(), args.json)?;
    let slot = OutcomeSlot::new();
    let progress = Progress::new();
    let (verb, name, app, total): (&str, String, Box<dyn StreamSession>, Option<u64>) =
        match args.verb {
            StopwaitVerb::Get => {
                let name = args.target.clone();
                let sink = local_sink(&name, args.output.as_deref(), args.force)?;
                let c = tcpfile::GetClient::new(
                    &name,
                    Box::new(sink),
                    args.timeout,
                    slot.clone(),
                    progress.clone(),
                );
                ("get", name, Box::new(c), None)
            }
            StopwaitVerb::Put => {
                let path = Path::new(&args.target);
                let source =
                    crate::files::FileSource::open(path).map_err(|e| error(&args.target, e))?;
                let size = source.size().unwrap_or(0);
                let name = upload_name(args.name.as_ref(), path)?;
                let c = tcpfile::PutClient::new(
                    &name,
                    Box::new(source),
                    size,
                    args.timeout,
                    slot.clone(),
                    progress.clone(),
                );
                ("put", name, Box::new(c), Some(size))
            }
        };
    let mut config = WindowConfig::default();
    config.tcp.cc = args.cc;
    let mut reactor = client_reactor()?;
    let socket = crate::reactor::udp_client_socket(server)
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    let local = socket
        .local_addr()
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    let counters = CounterCell::default();
    let session = Carried::connect(
        config.tcp,
        local,
        server,
        crate::proto::tcp::isn::random_key(),
        app,
    )
    .with_counters(counters.clone());
    reactor
        .add_udp_session(
            socket,
            Some(server),
            traced_datagram("window", server, Decode::Tcp, Box::new(session)),
        )
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    run_client(
        reactor,
        (!args.json).then_some(Bar { total, progress }),
        &slot,
    )?;

    let engine = counters.get();
    let view = View {
        header: json!({
            "protocol": "window", "verb": verb, "server": server.to_string(), "name": name,
        }),
        json: args.json,
        text: Stream::Stderr,
        server: Some(server),
        refusal_prefix: "",
        title: Some(format!("{verb} {name}")),
        timeout: Timeout::said(move |_| format!("{server}: no progress, gave up")),
    };
    let outcome = slot
        .take()
        .map(|o| o.map(|done| WithEngine { done, engine }));
    view.show(outcome, None)
}

/// A tcpfile outcome with the engine's counters (`--json`'s `"tcp"`).
struct WithEngine {
    done: tcpfile::Done,
    engine: Option<Counters>,
}

impl Report for WithEngine {
    fn text(&self) -> String {
        let mut text = self.done.text();
        if let Some(c) = &self.engine {
            use core::fmt::Write;
            let _ = write!(
                text,
                ", {} retransmits ({} fast, {} timeouts), srtt {:.3} ms",
                c.retransmits,
                c.fast_retransmits,
                c.rto_expiries,
                Duration::from_micros(c.srtt_us).as_secs_f64() * 1e3
            );
        }
        text
    }

    fn json(&self, doc: &mut Value) {
        self.done.json(doc);
        if let Some(c) = &self.engine {
            doc["tcp"] = engine_json(c);
        }
    }
}
