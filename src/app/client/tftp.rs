//! `mioperf tftp get|put HOST:PORT NAME|FILE`: one TFTP transfer, with
//! the options asked for.
//!
//! Exit 0 when every block is through, 1 when the server sent an ERROR, 2
//! on a failure or when the retries ran out. The summary goes to standard
//! error: standard output may be the file (`-o -`).

use super::{
    Bar, any_local, client_reactor, local_sink, resolve_host_port, run_client, udp_transfer_view,
    upload_name,
};
use crate::app::output::{Report, format_bitrate, format_bytes, rate};
use crate::app::trace::{Decode, traced_datagram};
use crate::app::{Failure, error};
use crate::cli::{StopwaitVerb, TftpArgs, TftpMode};
use crate::proto::data::Source;
use crate::proto::outcome::{OutcomeSlot, Progress};
use crate::proto::tftp::{self, Done};
use crate::wire::tftp::{Mode, Options};
use serde_json::{Value, json};
use std::path::Path;

/// `mioperf tftp`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn tftp_client(args: &TftpArgs) -> Result<(), Failure> {
    let server = resolve_host_port(&args.server)?;
    let mode = match args.mode {
        TftpMode::Octet => Mode::Octet,
        TftpMode::Netascii => Mode::Netascii,
    };
    let mut options = Options {
        blksize: args.blksize,
        windowsize: args.windowsize,
        ..Options::default()
    };
    let slot = OutcomeSlot::new();
    let progress = Progress::new();
    let (verb, name, session, total) = match args.verb {
        StopwaitVerb::Get => {
            super::output_and_json(args.output.as_deref(), args.json)?;
            let name = args.target.clone();
            let sink = local_sink(&name, args.output.as_deref(), args.force)?;
            if mode == Mode::Octet {
                options.tsize = Some(0);
            }
            let c = tftp::TftpClient::get(
                server,
                &name,
                mode,
                options,
                Box::new(sink),
                args.timeout,
                args.tries,
                slot.clone(),
            )
            .with_progress(progress.clone());
            ("get", name, c, None)
        }
        StopwaitVerb::Put => {
            let path = Path::new(&args.target);
            let source =
                crate::files::FileSource::open(path).map_err(|e| error(&args.target, e))?;
            let size = source.size();
            if mode == Mode::Octet {
                options.tsize = size;
            }
            let name = upload_name(args.name.as_ref(), path)?;
            let c = tftp::TftpClient::put(
                server,
                &name,
                mode,
                options,
                Box::new(source),
                args.timeout,
                args.tries,
                slot.clone(),
            )
            .with_progress(progress.clone());
            ("put", name, c, size)
        }
    };
    let mut reactor = client_reactor()?;
    // Not connected: the server answers from a new port (its transfer ID).
    let socket = mio::net::UdpSocket::bind(any_local(server))
        .map_err(|e| error("cannot open a UDP socket", e))?;
    reactor
        .add_udp_session(
            socket,
            Some(server),
            traced_datagram("tftp", server, Decode::Tftp, Box::new(session)),
        )
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    let bar = Bar { total, progress };
    run_client(reactor, (!args.json).then_some(bar), &slot)?;

    let view = udp_transfer_view("tftp", verb, &name, server, args.json);
    view.show(slot.take(), None)
}

impl Report for Done {
    fn text(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "{} in {secs:.3} s = {}, {:.0} blocks/s (blksize {}, window {}, {} retransmissions)",
            format_bytes(self.bytes),
            format_bitrate(rate(self.bytes.saturating_mul(8), secs)),
            rate(blocks(self), secs),
            self.blksize,
            self.windowsize,
            self.retransmissions
        )
    }

    fn json(&self, doc: &mut Value) {
        let secs = self.elapsed.as_secs_f64();
        doc["outcome"] = json!("ok");
        doc["bytes"] = json!(self.bytes);
        doc["seconds"] = json!(secs);
        doc["bits_per_second"] = json!(rate(self.bytes.saturating_mul(8), secs));
        doc["tftp"] = json!({
            "blocks": blocks(self),
            "blocks_per_second": rate(blocks(self), secs),
            "blksize": self.blksize,
            "windowsize": self.windowsize,
            "retransmits": self.retransmissions,
        });
    }
}

/// Data blocks of a transfer (the last one short, possibly empty).
fn blocks(done: &Done) -> u64 {
    done.bytes / u64::from(done.blksize.max(1)) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn a_transfer_with_its_options() {
        let done = Done {
            bytes: 1024,
            elapsed: Duration::from_millis(1),
            retransmissions: 0,
            blksize: 512,
            windowsize: 4,
        };
        assert_eq!(
            done.text(),
            "1 KiB in 0.001 s = 8.19 Mbit/s, 3000 blocks/s (blksize 512, window 4, 0 retransmissions)"
        );
        let mut doc = json!({});
        done.json(&mut doc);
        assert_eq!(
            (
                doc["tftp"]["blksize"].clone(),
                doc["tftp"]["windowsize"].clone()
            ),
            (json!(512), json!(4))
        );
    }
}
