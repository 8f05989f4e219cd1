//! `mioperf stopwait get|put HOST:PORT NAME|FILE`: one stop-and-wait
//! transfer.
//!
//! Exit 0 when every byte moved, 1 when the server refused, 2 on a
//! failure or when the retries ran out. The summary goes to standard
//! error: standard output may be the file (`-o -`).

use super::{
    Bar, client_reactor_busy, local_sink, resolve_host_port, run_client, udp_transfer_view,
    upload_name,
};
use crate::app::output::{Report, format_bitrate, format_bytes, rate};
use crate::app::trace::{Decode, traced_datagram};
use crate::app::{Failure, error};
use crate::cli::{StopwaitArgs, StopwaitVerb};
use crate::proto::data::Source;
use crate::proto::outcome::{OutcomeSlot, Progress};
use crate::proto::stopwait::{self, Done};
use serde_json::{Value, json};
use std::path::Path;

/// `mioperf stopwait`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn stopwait_client(args: &StopwaitArgs) -> Result<(), Failure> {
    let server = resolve_host_port(&args.server)?;
    let config = stopwait::StopwaitConfig {
        timeout: args.timeout,
        tries: args.tries,
        ..stopwait::StopwaitConfig::DEFAULT
    };
    let slot = OutcomeSlot::new();
    let progress = Progress::new();
    let (verb, name, session, total): (
        &str,
        String,
        Box<dyn crate::proto::DatagramSession>,
        Option<u64>,
    ) = match args.verb {
        StopwaitVerb::Get => {
            super::output_and_json(args.output.as_deref(), args.json)?;
            let name = args.target.clone();
            let sink = local_sink(&name, args.output.as_deref(), args.force)?;
            let c = stopwait::GetClient::new(&name, server, Box::new(sink), config, slot.clone())
                .with_progress(progress.clone());
            ("get", name, Box::new(c), None)
        }
        StopwaitVerb::Put => {
            let path = Path::new(&args.target);
            let source =
                crate::files::FileSource::open(path).map_err(|e| error(&args.target, e))?;
            let size = source.size();
            let name = upload_name(args.name.as_ref(), path)?;
            let c = stopwait::PutClient::new(&name, server, Box::new(source), config, slot.clone())
                .with_progress(progress.clone());
            ("put", name, Box::new(c), size)
        }
    };
    let mut reactor = client_reactor_busy(args.busy_poll)?;
    let socket = crate::reactor::udp_client_socket(server)
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    reactor
        .add_udp_session(
            socket,
            Some(server),
            traced_datagram("stopwait", server, Decode::Stopwait, session),
        )
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    let bar = Bar { total, progress };
    run_client(reactor, (!args.json).then_some(bar), &slot)?;

    let view = udp_transfer_view("stopwait", verb, &name, server, args.json);
    view.show(slot.take(), None)
}

impl Report for Done {
    fn text(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "{} in {secs:.3} s = {}, {:.0} blocks/s, {} retransmissions",
            format_bytes(self.bytes),
            format_bitrate(rate(self.bytes.saturating_mul(8), secs)),
            rate(blocks(self.bytes), secs),
            self.retransmissions
        )
    }

    fn json(&self, doc: &mut Value) {
        let secs = self.elapsed.as_secs_f64();
        doc["outcome"] = json!("ok");
        doc["bytes"] = json!(self.bytes);
        doc["seconds"] = json!(secs);
        doc["bits_per_second"] = json!(rate(self.bytes.saturating_mul(8), secs));
        doc["stopwait"] = json!({
            "blocks": blocks(self.bytes),
            "blocks_per_second": rate(blocks(self.bytes), secs),
            "retransmits": self.retransmissions,
        });
    }
}

/// Data blocks of a transfer of `bytes` (100 bytes each; an empty file
/// still takes one).
fn blocks(bytes: u64) -> u64 {
    bytes.div_ceil(100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn a_transfer_in_blocks() {
        let done = Done {
            bytes: 1000,
            elapsed: Duration::from_millis(100),
            retransmissions: 2,
        };
        assert_eq!(
            done.text(),
            "1000 B in 0.100 s = 80 kbit/s, 100 blocks/s, 2 retransmissions"
        );
        let mut doc = json!({});
        done.json(&mut doc);
        assert_eq!(doc["bits_per_second"], 80_000.0);
        assert_eq!(doc["stopwait"]["blocks_per_second"], 100.0);
        assert_eq!(doc["stopwait"]["retransmits"], 2);
        assert_eq!(blocks(0), 1);
    }
}
