//! `mioperf hello HOST PORT ID`: one registration, over UDP or TCP.
//!
//! Prints the answer; exit 0 on `OK`, 1 on `RESET`, 2 on `ERROR`, a
//! failure or a timeout.

use super::{any_local, client_reactor, resolve};
use crate::app::output::{Report, Stream, Timeout, View};
use crate::app::trace::{Decode, traced_datagram, traced_stream};
use crate::app::{Failure, error};
use crate::cli::{HelloArgs, duration};
use crate::proto::hello::{self, Answer, Transport, client::Verb};
use crate::proto::outcome::OutcomeSlot;
use crate::wire::hello::Request as HelloRequest;
use serde_json::{Value, json};

/// `mioperf hello`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn hello_client(args: &HelloArgs) -> Result<(), Failure> {
    let server = resolve(&args.host, args.port)?;
    let mut reactor = client_reactor()?;
    let slot = OutcomeSlot::new();
    let request = HelloRequest { id: args.id };
    let transport = if args.tcp {
        Transport::Tcp
    } else {
        Transport::Udp { server }
    };
    let session = Box::new(hello::Client::new(
        request,
        transport,
        args.timeout,
        args.tries,
        slot.clone(),
    ));
    match transport {
        Transport::Tcp => reactor.connect_tcp(server, traced_stream("hello", server, session)),
        Transport::Udp { .. } => {
            let socket = mio::net::UdpSocket::bind(any_local(server)).and_then(|s| {
                // Connected, so an ICMP "port unreachable" fails fast
                // instead of waiting for the timeout.
                s.connect(server)?;
                Ok(s)
            });
            let session = traced_datagram("hello", server, Decode::Text, session);
            socket.and_then(|s| reactor.add_udp_session(s, Some(server), session))
        }
    }
    .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    reactor.run().map_err(|e| error("poll", e))?;

    let timeout = args.timeout;
    let view = View {
        header: json!({
            "protocol": "hello", "transport": if args.tcp { "tcp" } else { "udp" },
            "server": server.to_string(), "id": args.id.as_str(),
        }),
        json: args.json,
        text: Stream::Stdout,
        server: Some(server),
        refusal_prefix: "",
        title: None,
        timeout: Timeout {
            tries_in_json: true,
            ..Timeout::said(move |tries| {
                format!(
                    "no answer from {server} after {tries} request(s) of {}",
                    duration::format(timeout)
                )
            })
        },
    };
    view.show(slot.take(), None)
}

impl Report for Answer {
    fn text(&self) -> String {
        self.line.clone()
    }

    fn json(&self, doc: &mut Value) {
        let outcome = match self.verb {
            Verb::Ok => "ok",
            Verb::Reset => "reset",
            Verb::Error => "error",
        };
        doc["outcome"] = json!(outcome);
        doc["answer"] = json!(self.line);
        doc["hello"] = json!({"rtt_ns": self.rtt.as_nanos()});
        doc["tries"] = json!(self.tries);
    }

    /// `RESET`: the ID is taken (exit 1); `ERROR`: refused for another
    /// reason, which the contract counts as an error (exit 2).
    fn verdict(&self) -> Result<(), Failure> {
        match self.verb {
            Verb::Ok => Ok(()),
            Verb::Reset => Err(Failure::Refused(self.line.clone())),
            Verb::Error => Err(Failure::Error(self.line.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn every_verb_is_shown_and_judged() {
        let answer = |line: &str, verb| Answer {
            line: line.into(),
            verb,
            rtt: Duration::from_micros(250),
            tries: 1,
        };
        let ok = answer("OK 7 127.0.0.1 5000", Verb::Ok);
        let mut doc = json!({});
        ok.json(&mut doc);
        assert_eq!(
            doc,
            json!({"outcome": "ok", "answer": "OK 7 127.0.0.1 5000", "hello": {"rtt_ns": 250_000}, "tries": 1})
        );
        assert_eq!(ok.text(), "OK 7 127.0.0.1 5000");
        assert!(ok.verdict().is_ok());
        let reset = answer("RESET 7", Verb::Reset).verdict();
        assert!(matches!(reset, Err(Failure::Refused(l)) if l == "RESET 7"));
        let busy = answer("ERROR busy", Verb::Error).verdict();
        assert!(matches!(busy, Err(Failure::Error(l)) if l == "ERROR busy"));
    }
}
