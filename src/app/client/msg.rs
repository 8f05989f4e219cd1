//! `mioperf msg HOST PORT FILE|-`: the file as one frame (or `--count`
//! frames), and the receipt.
//!
//! Exit 0 on `OK` with the right length, 1 on `ERR too large`, 2 on a
//! failure or a timeout.

use super::{client_reactor, resolve};
use crate::app::output::{Report, Stream, Timeout, View, format_bitrate, rate};
use crate::app::trace::traced_stream;
use crate::app::{Failure, error};
use crate::cli::{MsgArgs, duration};
use crate::proto::data::{MemorySource, Source};
use crate::proto::msg::{self, Receipt};
use crate::proto::outcome::OutcomeSlot;
use serde_json::{Value, json};
use std::io;

/// `mioperf msg`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn msg_client(args: &MsgArgs) -> Result<(), Failure> {
    let source: Box<dyn Source> = if args.file.as_os_str() == "-" {
        let bytes = crate::files::read_stdin(u64::from(u32::MAX)).map_err(|e| error("stdin", e))?;
        Box::new(MemorySource::new(bytes))
    } else {
        let f = crate::files::FileSource::open(&args.file)
            .map_err(|e| error(&args.file.display().to_string(), e))?;
        Box::new(f)
    };
    let len = source.size().unwrap_or(0);
    let len = u32::try_from(len).map_err(|_| {
        Failure::Error(format!(
            "{len} bytes do not fit one frame (at most 4 GiB - 1)"
        ))
    })?;
    let server = resolve(&args.host, args.port)?;
    let mut reactor = client_reactor()?;
    let slot = OutcomeSlot::new();
    let session: Box<dyn crate::proto::StreamSession> = if args.count > 1 {
        let payload = read_all(source, len)?;
        Box::new(msg::RepeatClient::new(
            &payload,
            args.count,
            args.timeout,
            slot.clone(),
        ))
    } else {
        Box::new(msg::Client::new(source, len, args.timeout, slot.clone()))
    };
    reactor
        .connect_tcp(server, traced_stream("msg", server, session))
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    reactor.run().map_err(|e| error("poll", e))?;

    let timeout = args.timeout;
    let view = View {
        header: json!({
            "protocol": "msg", "server": server.to_string(), "msg": {"frame_bytes": len},
        }),
        json: args.json,
        text: Stream::Stdout,
        server: Some(server),
        refusal_prefix: "",
        title: None,
        timeout: Timeout::said(move |_| format!("no progress for {}", duration::format(timeout))),
    };
    view.show(slot.take(), None)
}

/// The first `len` bytes of `source`, for a frame sent many times.
fn read_all(mut source: Box<dyn Source>, len: u32) -> Result<Vec<u8>, Failure> {
    let mut payload = bytes::BytesMut::with_capacity(len as usize);
    while payload.len() < len as usize {
        let want = len as usize - payload.len();
        match source.read_into(&mut payload, want) {
            Ok(0) => break,
            Ok(_) => {}
            Err(kind) => return Err(error("reading the input", io::Error::from(kind))),
        }
    }
    Ok(payload.to_vec())
}

impl Report for Receipt {
    fn text(&self) -> String {
        match *self {
            Self::One { len, elapsed } => {
                let secs = elapsed.as_secs_f64();
                format!(
                    "OK {len}: {len} bytes in {secs:.3} s = {}",
                    format_bitrate(rate(len.saturating_mul(8), secs))
                )
            }
            Self::Many {
                frames,
                bytes,
                elapsed,
            } => {
                let secs = elapsed.as_secs_f64();
                // Every frame is the same payload.
                let len = bytes / frames.max(1);
                format!(
                    "{frames} frames of {len} B acknowledged in {secs:.3} s = {:.0} frames/s, {}",
                    rate(frames, secs),
                    format_bitrate(rate(bytes.saturating_mul(8), secs))
                )
            }
            Self::TooLarge { max } => format!("ERR too large {max}"),
        }
    }

    fn json(&self, doc: &mut Value) {
        match *self {
            Self::One { len, elapsed } => {
                let secs = elapsed.as_secs_f64();
                doc["outcome"] = json!("ok");
                doc["bytes"] = json!(len);
                doc["seconds"] = json!(secs);
                doc["bits_per_second"] = json!(rate(len.saturating_mul(8), secs));
            }
            Self::Many {
                frames,
                bytes,
                elapsed,
            } => {
                let secs = elapsed.as_secs_f64();
                doc["outcome"] = json!("ok");
                doc["bytes"] = json!(bytes);
                doc["seconds"] = json!(secs);
                doc["bits_per_second"] = json!(rate(bytes.saturating_mul(8), secs));
                doc["msg"]["frames"] = json!(frames);
                doc["msg"]["frames_per_second"] = json!(rate(frames, secs));
            }
            Self::TooLarge { max } => {
                doc["outcome"] = json!("refused");
                doc["answer"] = json!(self.text());
                doc["msg"]["max_bytes"] = json!(max);
            }
        }
    }

    /// `ERR too large` is the server's refusal (exit 1).
    fn verdict(&self) -> Result<(), Failure> {
        match self {
            Self::TooLarge { .. } => Err(Failure::Refused(self.text())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn receipts_and_a_refusal() {
        let one = Receipt::One {
            len: 6,
            elapsed: Duration::from_millis(1),
        };
        assert_eq!(one.text(), "OK 6: 6 bytes in 0.001 s = 48 kbit/s");
        assert!(one.verdict().is_ok());
        let many = Receipt::Many {
            frames: 5,
            bytes: 30,
            elapsed: Duration::from_millis(1),
        };
        assert_eq!(
            many.text(),
            "5 frames of 6 B acknowledged in 0.001 s = 5000 frames/s, 240 kbit/s"
        );
        let big = Receipt::TooLarge { max: 10 };
        let mut doc = json!({});
        big.json(&mut doc);
        assert_eq!(
            doc,
            json!({"outcome": "refused", "answer": "ERR too large 10", "msg": {"max_bytes": 10}})
        );
        assert!(matches!(big.verdict(), Err(Failure::Refused(l)) if l == "ERR too large 10"));
    }
}
