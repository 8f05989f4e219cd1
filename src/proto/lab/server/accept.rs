//! The lab server's acceptors: [`LabStreamAcceptor`] on the TCP listener
//! and [`LabDatagramAcceptor`] on the UDP socket.
//!
//! Owns admission: a TCP connection always gets a [`LabStream`]; a UDP
//! echo or a refusal is answered at once, statelessly, and a file or a
//! stream gets a [`LabDatagrams`] that draws on the shared send budget.
//! Neither keeps per-peer state or a timer of its own: whatever lasts
//! belongs to the sessions.

use super::datagrams::LabDatagrams;
use super::file_too_large;
use super::stream::LabStream;
use crate::proto::budget::SharedBudget;
use crate::proto::idle::TcpTimeouts;
use crate::proto::lab::LabConfig;
use crate::proto::{Admission, Context, DatagramAcceptor, Driven, StreamAcceptor, StreamSession};
use crate::wire::lab::Request as LabRequest;
use bytes::BytesMut;
use log::debug;
use std::net::SocketAddr;

/// The acceptor on lab's TCP listener.
#[derive(Debug, Default)]
pub struct LabStreamAcceptor {
    config: LabConfig,
    timeouts: TcpTimeouts,
}

impl LabStreamAcceptor {
    /// An acceptor with these limits.
    #[must_use]
    pub fn new(config: LabConfig) -> Self {
        Self {
            config,
            timeouts: TcpTimeouts::default(),
        }
    }

    /// The idle and request limits of its TCP connections (default
    /// [`TcpTimeouts::default`]).
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: TcpTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }
}

/// No timers of its own.
impl Driven for LabStreamAcceptor {}

impl StreamAcceptor for LabStreamAcceptor {
    fn accept(&mut self, cx: &mut Context, _peer: SocketAddr) -> Option<Box<dyn StreamSession>> {
        Some(Box::new(LabStream::new(self.config, cx.now, self.timeouts)))
    }
}

/// The acceptor on lab's UDP socket: echo and refusals are answered at
/// once; a file or a stream gets a session.
#[derive(Debug)]
pub struct LabDatagramAcceptor {
    config: LabConfig,
    budget: SharedBudget,
}

impl LabDatagramAcceptor {
    /// An acceptor with these limits, whose files and streams draw on
    /// `budget` (the one every UDP protocol of the process shares).
    pub fn new(config: LabConfig, budget: SharedBudget) -> Self {
        Self { config, budget }
    }
}

/// No timers of its own: a session waiting for budget tokens keeps its
/// own deadline.
impl Driven for LabDatagramAcceptor {}

impl DatagramAcceptor for LabDatagramAcceptor {
    fn accept(
        &mut self,
        cx: &mut Context,
        from: SocketAddr,
        payload: &[u8],
        reply: &mut BytesMut,
    ) -> Admission {
        if payload.is_empty() {
            // Nothing to echo, and no request: silence.
            return Admission::Ignore;
        }
        let refuse = |reply: &mut BytesMut, text: &str| {
            reply.extend_from_slice(text.as_bytes());
            Admission::Reply
        };
        match LabRequest::parse(payload) {
            Ok(LabRequest::Echo(bytes)) => {
                reply.extend_from_slice(bytes);
                Admission::Reply
            }
            Ok(LabRequest::File(n)) if n > self.config.file_max => {
                refuse(reply, &file_too_large(self.config.file_max))
            }
            Ok(LabRequest::File(n)) => {
                debug!("{} udp file of {n} bytes", cx.tag);
                Admission::shared(Box::new(LabDatagrams::file(
                    self.config,
                    self.budget.clone(),
                    from,
                    n,
                    cx.now,
                )))
            }
            Ok(LabRequest::Stream(spec)) if spec.size > LabConfig::UDP_SEGMENT_MAX => refuse(
                reply,
                &format!(
                    "ERROR bad stream request: size must be 16..={} over UDP",
                    LabConfig::UDP_SEGMENT_MAX
                ),
            ),
            Ok(LabRequest::Stream(spec)) => {
                debug!(
                    "{} udp stream of {} × {} B every {} ns",
                    cx.tag, spec.count, spec.size, spec.interval_ns
                );
                Admission::shared(Box::new(LabDatagrams::stream(
                    self.config,
                    self.budget.clone(),
                    from,
                    spec,
                    cx.now,
                )))
            }
            Err(bad) => refuse(reply, &format!("ERROR {bad}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Admit;
    use crate::proto::lab::server::testing::{peer, sh, us};
    use crate::proto::testing::cx;
    use crate::time::Instant;

    fn admit(
        acceptor: &mut LabDatagramAcceptor,
        now: Instant,
        from: SocketAddr,
        payload: &[u8],
    ) -> (Admission, Vec<u8>) {
        let mut reply = BytesMut::new();
        let admission = acceptor.accept(&mut cx(now, Some(from)), from, payload, &mut reply);
        (admission, reply.to_vec())
    }

    #[test]
    fn udp_acceptor_answers_echo_and_errors_statelessly() {
        let mut a = LabDatagramAcceptor::new(LabConfig::default(), sh());
        let (adm, reply) = admit(&mut a, us(0), peer(), b"ping\n");
        assert!(matches!(adm, Admission::Reply));
        assert_eq!(reply, b"ping\n", "the datagram unchanged");
        let (adm, reply) = admit(&mut a, us(0), peer(), b"123456790");
        assert!(matches!(adm, Admission::Reply));
        assert_eq!(reply, b"ERROR file too large: limit 123456789");
        let (_, reply) = admit(&mut a, us(0), peer(), b"stream-1-1-65508");
        assert_eq!(
            reply,
            b"ERROR bad stream request: size must be 16..=65507 over UDP"
        );
        assert!(matches!(
            admit(&mut a, us(0), peer(), b"").0,
            Admission::Ignore
        ));
        assert!(matches!(
            admit(&mut a, us(0), peer(), b"10").0,
            Admission::Start(Admit {
                own_socket: false,
                ..
            })
        ));
        assert!(matches!(
            admit(&mut a, us(0), peer(), b"stream-1-1-65507").0,
            Admission::Start(Admit {
                own_socket: false,
                ..
            })
        ));
    }
}
