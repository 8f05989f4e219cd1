//! The hello client: one `HELLO <id>` and its answer, over TCP or UDP.
//!
//! Owns the request/answer exchange and its timeout. Over UDP a lost
//! datagram is sent again after `timeout`, up to `tries` times in all —
//! note that a retry whose predecessor *was* registered (only the answer
//! was lost) is answered `RESET`, which is why the default is one try. The
//! outcome goes into an [`OutcomeSlot`] the caller holds, because the
//! session itself is owned (and dropped) by the reactor.
//!
//! One [`Client`] serves both transports: it is a [`StreamSession`] on a
//! TCP connection and a [`DatagramSession`] on a UDP socket, with one
//! [`Driven`] (the answer's deadline) for both.

use crate::proto::outcome::{ClientError, Outcome, OutcomeSlot};
use crate::proto::{
    CloseReason, Context, DatagramInput, DatagramSession, Driven, StreamInput, StreamSession,
    Transmit,
};
use crate::time::{Duration, Instant};
use crate::wire::hello::{MAX_REQUEST, Request as HelloRequest, Response};
use crate::wire::line;
use bytes::BytesMut;
use std::net::SocketAddr;

/// How the client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A connected TCP stream; the answer is a line.
    Tcp,
    /// A UDP socket; the answer is one datagram from `server`.
    Udp {
        /// Where requests go and answers must come from.
        server: SocketAddr,
    },
}

/// The server's answer: `line` (already checked to be a well-formed `OK`,
/// `RESET` or `ERROR`) after `rtt`. Every verb is an answer; what a
/// `RESET` or an `ERROR` means for the exit code is the caller's call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The answer, without terminator.
    pub line: String,
    /// Its verb.
    pub verb: Verb,
    /// From the last send to the answer.
    pub rtt: Duration,
    /// Requests sent (UDP retries count).
    pub tries: u32,
}

/// The first word of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Registered.
    Ok,
    /// Taken.
    Reset,
    /// Refused.
    Error,
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// The request is due to be sent (first time, or again after a timeout).
    Send { tries: u32 },
    /// Sent; waiting for the answer until `deadline`.
    Waiting {
        sent_at: Instant,
        deadline: Instant,
        tries: u32,
    },
    /// Outcome recorded.
    Done,
}

/// One hello exchange.
#[derive(Debug)]
pub struct Client {
    request: HelloRequest,
    transport: Transport,
    timeout: Duration,
    max_tries: u32,
    state: State,
    partial: Vec<u8>,
    outcome: OutcomeSlot<Answer>,
    close: Option<CloseReason>,
}

impl Client {
    /// A client that will send `HELLO <id>` (`request`) and wait `timeout`
    /// for each of at most `tries` attempts (UDP; TCP always tries once).
    pub fn new(
        request: HelloRequest,
        transport: Transport,
        timeout: Duration,
        tries: u32,
        outcome: OutcomeSlot<Answer>,
    ) -> Self {
        let max_tries = match transport {
            Transport::Tcp => 1,
            Transport::Udp { .. } => tries.max(1),
        };
        Self {
            request,
            transport,
            timeout,
            max_tries,
            state: State::Send { tries: 0 },
            partial: Vec::new(),
            outcome,
            close: None,
        }
    }

    fn finish(&mut self, outcome: Outcome<Answer>, reason: CloseReason) {
        if matches!(self.state, State::Done) {
            return;
        }
        self.state = State::Done;
        self.outcome.set(outcome);
        self.close = Some(reason);
    }

    fn handle_answer(&mut self, now: Instant, line: &[u8]) {
        let State::Waiting { sent_at, tries, .. } = self.state else {
            return;
        };
        let verb = match Response::parse(line) {
            Ok(Response::Ok { id, .. } | Response::Reset { id }) if id != self.request.id => {
                // An answer about another ID is not an answer to us (a stale
                // datagram, or a confused server).
                let shown = String::from_utf8_lossy(line).into_owned();
                return self.finish(
                    Err(ClientError::Protocol(format!(
                        "answer for another ID: {shown:?}"
                    ))),
                    CloseReason::Protocol("answer for another ID"),
                );
            }
            Ok(Response::Ok { .. }) => Verb::Ok,
            Ok(Response::Reset { .. }) => Verb::Reset,
            Ok(Response::Error { .. }) => Verb::Error,
            Err(e) => {
                let shown = String::from_utf8_lossy(line).into_owned();
                return self.finish(
                    Err(ClientError::Protocol(format!(
                        "malformed answer ({e}): {shown:?}"
                    ))),
                    CloseReason::Protocol("malformed answer"),
                );
            }
        };
        self.finish(
            Ok(Answer {
                line: String::from_utf8_lossy(line).into_owned(),
                verb,
                rtt: now - sent_at,
                tries,
            }),
            CloseReason::Completed,
        );
    }
}

impl Client {
    /// The request, when it is due: appended to `buf`, with where it goes.
    fn transmit(&mut self, now: Instant, limit: usize, buf: &mut BytesMut) -> Option<Transmit> {
        let State::Send { tries } = self.state else {
            return None;
        };
        let before = buf.len();
        self.request.emit(buf);
        let to = match self.transport {
            Transport::Tcp => {
                buf.extend_from_slice(b"\n");
                None
            }
            Transport::Udp { server } => Some(server),
        };
        let len = buf.len() - before;
        if len > limit {
            // Cannot happen with the reactor's limits (a request is < 20 bytes);
            // refuse rather than send a cut request.
            buf.truncate(before);
            return None;
        }
        self.state = State::Waiting {
            sent_at: now,
            deadline: now + self.timeout,
            tries: tries + 1,
        };
        Some(Transmit::new(to, len))
    }

    fn failed(&mut self, kind: std::io::ErrorKind) {
        self.finish(Err(ClientError::Io(kind)), CloseReason::Aborted);
    }
}

impl Driven for Client {
    fn handle_timeout(&mut self, cx: &mut Context) {
        let State::Waiting {
            deadline, tries, ..
        } = self.state
        else {
            return;
        };
        if cx.now < deadline {
            return;
        }
        if tries < self.max_tries {
            self.state = State::Send { tries };
        } else {
            self.finish(
                Err(ClientError::TimedOut { tries }),
                CloseReason::TimedOut { tries },
            );
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { deadline, .. } => Some(deadline),
            State::Send { .. } | State::Done => None,
        }
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl StreamSession for Client {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        match input {
            StreamInput::Bytes(bytes) => {
                self.partial.extend_from_slice(bytes);
                match line::split(&self.partial, MAX_REQUEST) {
                    Ok(Some(l)) => {
                        let line = self.partial[..l.len].to_vec();
                        self.handle_answer(cx.now, &line);
                    }
                    Ok(None) => {}
                    Err(e) => self.finish(
                        Err(ClientError::Protocol(format!("answer {e}"))),
                        CloseReason::Protocol("answer too long"),
                    ),
                }
            }
            StreamInput::End => self.finish(
                Err(ClientError::Protocol(
                    "connection closed before an answer".into(),
                )),
                CloseReason::PeerClosed,
            ),
            StreamInput::Failed(kind) => self.failed(kind),
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        self.transmit(cx.now, limit, buf).map(|t| t.len)
    }
}

impl DatagramSession for Client {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        match input {
            DatagramInput::Datagram { from, payload, .. } => {
                // Anything not from the server is noise, not an answer.
                if matches!(self.transport, Transport::Udp { server } if server == from) {
                    self.handle_answer(cx.now, line::trim_datagram(payload));
                }
            }
            DatagramInput::Failed { kind, .. } => self.failed(kind),
            // A UDP client has no device endpoint.
            DatagramInput::Packet { .. } => {}
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        self.transmit(cx.now, limit, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testing::{at, cx, drain_joined, drain_tx, feed, feed_datagram};
    use crate::wire::hello::HelloId;

    fn server() -> SocketAddr {
        "127.0.0.1:20009".parse().unwrap()
    }

    fn client(transport: Transport, tries: u32) -> (Client, OutcomeSlot<Answer>) {
        let slot = OutcomeSlot::new();
        let req = HelloRequest {
            id: HelloId::parse(b"0042").unwrap(),
        };
        (
            Client::new(req, transport, Duration::from_secs(2), tries, slot.clone()),
            slot,
        )
    }

    fn timeout(c: &mut Client, now: Instant) {
        c.handle_timeout(&mut cx(now, None));
    }

    #[test]
    fn tcp_exchange() {
        let (mut c, slot) = client(Transport::Tcp, 1);
        assert_eq!(drain_tx(&mut c, at(0)), b"HELLO 0042\n");
        assert_eq!(c.poll_timeout(), Some(at(2_000)));
        feed(
            &mut c,
            at(3),
            server(),
            StreamInput::Bytes(b"OK 0042 127.0."),
        );
        assert!(!slot.is_set());
        feed(&mut c, at(5), server(), StreamInput::Bytes(b"0.1 5000\n"));
        assert_eq!(
            slot.get(),
            Some(Ok(Answer {
                line: "OK 0042 127.0.0.1 5000".into(),
                verb: Verb::Ok,
                rtt: Duration::from_millis(5),
                tries: 1
            }))
        );
        assert_eq!(c.poll_close(), Some(CloseReason::Completed));
    }

    #[test]
    fn udp_retries_exactly_at_timeout_then_gives_up() {
        let (mut c, slot) = client(Transport::Udp { server: server() }, 2);
        assert_eq!(drain_joined(&mut c, at(0)), b"HELLO 0042");
        timeout(&mut c, at(1_999));
        assert_eq!(
            drain_joined(&mut c, at(1_999)),
            b"",
            "nothing before the timeout"
        );
        timeout(&mut c, at(2_000));
        assert_eq!(drain_joined(&mut c, at(2_000)), b"HELLO 0042");
        timeout(&mut c, at(4_000));
        assert_eq!(slot.get(), Some(Err(ClientError::TimedOut { tries: 2 })));
        assert_eq!(c.poll_close(), Some(CloseReason::TimedOut { tries: 2 }));
    }

    #[test]
    fn udp_ignores_strangers_and_reports_reset() {
        let (mut c, slot) = client(Transport::Udp { server: server() }, 1);
        drain_joined(&mut c, at(0));
        let stranger: SocketAddr = "127.0.0.1:9".parse().unwrap();
        feed_datagram(&mut c, at(1), stranger, b"OK 42 1.2.3.4 5");
        assert!(!slot.is_set());
        feed_datagram(&mut c, at(1), server(), b"RESET 0042");
        assert!(matches!(
            slot.get(),
            Some(Ok(Answer {
                verb: Verb::Reset,
                ..
            }))
        ));
    }

    #[test]
    fn an_answer_for_another_id_is_a_failure() {
        let (mut c, slot) = client(Transport::Tcp, 1);
        drain_tx(&mut c, at(0));
        feed(&mut c, at(1), server(), StreamInput::Bytes(b"RESET 6\n"));
        assert!(
            matches!(slot.get(), Some(Err(ClientError::Protocol(why))) if why.contains("another ID"))
        );
        // The same ID written differently is the same ID.
        let (mut c, slot) = client(Transport::Tcp, 1);
        drain_tx(&mut c, at(0));
        feed(&mut c, at(1), server(), StreamInput::Bytes(b"RESET 42\n"));
        assert!(matches!(
            slot.get(),
            Some(Ok(Answer {
                verb: Verb::Reset,
                ..
            }))
        ));
    }

    #[test]
    fn malformed_answer_and_early_close_fail() {
        let (mut c, slot) = client(Transport::Tcp, 1);
        drain_tx(&mut c, at(0));
        feed(&mut c, at(1), server(), StreamInput::Bytes(b"WHAT\n"));
        assert!(matches!(slot.get(), Some(Err(ClientError::Protocol(_)))));

        let (mut c, slot) = client(Transport::Tcp, 1);
        drain_tx(&mut c, at(0));
        feed(&mut c, at(1), server(), StreamInput::End);
        assert!(matches!(slot.get(), Some(Err(ClientError::Protocol(_)))));
    }
}
