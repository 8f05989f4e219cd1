//! The tcpfile clients: `get` writes a file's bytes to a sink, `put` sends
//! a source's bytes.
//!
//! Owns the client side of both flows. `get` checks that exactly the
//! announced size arrives before committing its sink (so a broken transfer
//! never leaves a partial file under the final name on the client either);
//! `put` announces its size, streams the source, and waits for `OK <n>`.

use crate::proto::data::{Sink, Source};
use crate::proto::outcome::{ClientError, Outcome, OutcomeSlot, Progress};
use crate::proto::{CloseReason, Context, Driven, StreamInput, StreamSession};
use crate::time::{Duration, Instant};
use crate::wire::line;
use crate::wire::tcpfile::{MAX_REQUEST, Request as FileRequest, Response};
use bytes::BytesMut;

/// A finished transfer: all bytes moved, `bytes` in `elapsed` (from the
/// request). A refusal is the server's `ERROR …` line, without `\n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// File size.
    pub bytes: u64,
    /// From sending the request to the end.
    pub elapsed: Duration,
}

struct Common {
    request: Vec<u8>,
    request_sent: bool,
    started: Instant,
    last_activity: Instant,
    timeout: Duration,
    line: Vec<u8>,
    done: bool,
    outcome: OutcomeSlot<Done>,
    progress: Progress,
    close: Option<CloseReason>,
}

impl Common {
    fn new(
        request: FileRequest<'_>,
        timeout: Duration,
        outcome: OutcomeSlot<Done>,
        progress: Progress,
    ) -> Self {
        let mut buf = BytesMut::new();
        request.emit(&mut buf);
        Self {
            request: buf.to_vec(),
            request_sent: false,
            started: Instant::ZERO,
            last_activity: Instant::ZERO,
            timeout,
            line: Vec::new(),
            done: false,
            outcome,
            progress,
            close: None,
        }
    }

    fn finish(&mut self, outcome: Outcome<Done>, reason: CloseReason) {
        if !self.done {
            self.done = true;
            self.outcome.set(outcome);
            self.close = Some(reason);
        }
    }

    /// Collects the answer line; `Some((answer, rest))` once it is complete.
    fn answer_line<'a>(&mut self, bytes: &'a [u8]) -> Option<(Result<u64, String>, &'a [u8])> {
        let before = self.line.len();
        self.line.extend_from_slice(bytes);
        let l = match line::split(&self.line, MAX_REQUEST) {
            Ok(Some(l)) => l,
            Ok(None) => return None,
            Err(_) => return Some((Err("answer line too long".into()), &[])),
        };
        let rest = &bytes[(l.consumed - before).min(bytes.len())..];
        let text = &self.line[..l.len];
        let answer = match Response::parse(text) {
            Ok(Response::Ok(n)) => Ok(n),
            Ok(Response::Error { .. }) => Err(String::from_utf8_lossy(text).into_owned()),
            Err(_) => Err(format!(
                "unexpected answer: {:?}",
                String::from_utf8_lossy(text)
            )),
        };
        Some((answer, rest))
    }

    fn transmit_request(
        &mut self,
        now: Instant,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        if self.request_sent || self.request.len() > limit {
            return None;
        }
        buf.extend_from_slice(&self.request);
        self.request_sent = true;
        self.started = now;
        self.last_activity = now;
        Some(self.request.len())
    }

    fn timeout(&self) -> Option<Instant> {
        (!self.done && self.request_sent).then(|| self.last_activity + self.timeout)
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.timeout().is_some_and(|at| at <= now) {
            self.finish(
                Err(ClientError::TimedOut { tries: 1 }),
                CloseReason::TimedOut { tries: 1 },
            );
        }
    }

    fn failed(&mut self, kind: std::io::ErrorKind) {
        self.finish(Err(ClientError::Io(kind)), CloseReason::Aborted);
    }
}

/// `NAME:GET`, the bytes into a sink.
pub struct GetClient {
    common: Common,
    sink: Option<Box<dyn Sink>>,
    size: Option<u64>,
    received: u64,
}

impl core::fmt::Debug for GetClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GetClient")
            .field("size", &self.size)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl GetClient {
    /// Fetches `name` into `sink`, which is committed only if every byte arrives.
    pub fn new(
        name: &str,
        sink: Box<dyn Sink>,
        timeout: Duration,
        outcome: OutcomeSlot<Done>,
        progress: Progress,
    ) -> Self {
        Self {
            common: Common::new(FileRequest::Get { name }, timeout, outcome, progress),
            sink: Some(sink),
            size: None,
            received: 0,
        }
    }

    fn body(&mut self, now: Instant, bytes: &[u8]) {
        let (Some(size), Some(sink)) = (self.size, self.sink.as_mut()) else {
            return;
        };
        let take = bytes
            .len()
            .min(usize::try_from(size - self.received).unwrap_or(usize::MAX));
        if let Err(kind) = sink.write_all(&bytes[..take]) {
            self.sink = None;
            return self.common.finish(
                Err(ClientError::Local(format!(
                    "writing the output: {}",
                    std::io::Error::from(kind)
                ))),
                CloseReason::Aborted,
            );
        }
        self.received += take as u64;
        self.common.progress.set(self.received);
        if self.received == size {
            self.complete(now);
        }
    }

    fn complete(&mut self, now: Instant) {
        let Some(sink) = self.sink.take() else { return };
        let elapsed = now - self.common.started;
        match sink.commit() {
            Ok(bytes) => self
                .common
                .finish(Ok(Done { bytes, elapsed }), CloseReason::Completed),
            Err(kind) => self.common.finish(
                Err(ClientError::Local(format!(
                    "saving the output: {}",
                    std::io::Error::from(kind)
                ))),
                CloseReason::Aborted,
            ),
        }
    }
}

impl Driven for GetClient {
    fn handle_timeout(&mut self, cx: &mut Context) {
        self.common.on_timeout(cx.now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.common.timeout()
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.common.close.take()
    }
}

impl StreamSession for GetClient {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        if self.common.done {
            return;
        }
        self.common.last_activity = cx.now;
        match input {
            StreamInput::Bytes(bytes) if self.size.is_none() => {
                match self.common.answer_line(bytes) {
                    None => {}
                    Some((Ok(size), rest)) => {
                        self.size = Some(size);
                        self.common.progress.set_total(size);
                        if size == 0 {
                            self.complete(cx.now);
                        } else {
                            self.body(cx.now, rest);
                        }
                    }
                    Some((Err(line), _)) if line.starts_with("ERROR ") => {
                        self.common
                            .finish(Err(ClientError::refused(line)), CloseReason::Completed);
                    }
                    Some((Err(why), _)) => self.common.finish(
                        Err(ClientError::Protocol(why)),
                        CloseReason::Protocol("bad answer"),
                    ),
                }
            }
            StreamInput::Bytes(bytes) => self.body(cx.now, bytes),
            StreamInput::End => {
                let why = match self.size {
                    Some(size) => format!(
                        "the connection closed after {} of {size} bytes",
                        self.received
                    ),
                    None => "the connection closed before an answer".into(),
                };
                self.common
                    .finish(Err(ClientError::Protocol(why)), CloseReason::PeerClosed);
            }
            StreamInput::Failed(kind) => self.common.failed(kind),
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        self.common.transmit_request(cx.now, limit, buf)
    }
}

/// `NAME:PUT:SIZE`, then the source's bytes.
pub struct PutClient {
    common: Common,
    source: Box<dyn Source>,
    size: u64,
    sent: u64,
}

impl core::fmt::Debug for PutClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PutClient")
            .field("size", &self.size)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl PutClient {
    /// Stores `size` bytes from `source` as `name`.
    pub fn new(
        name: &str,
        source: Box<dyn Source>,
        size: u64,
        timeout: Duration,
        outcome: OutcomeSlot<Done>,
        progress: Progress,
    ) -> Self {
        Self {
            common: Common::new(
                FileRequest::Put {
                    name,
                    size: Some(size),
                },
                timeout,
                outcome,
                progress,
            ),
            source,
            size,
            sent: 0,
        }
    }
}

impl Driven for PutClient {
    fn handle_timeout(&mut self, cx: &mut Context) {
        self.common.on_timeout(cx.now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.common.timeout()
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.common.close.take()
    }
}

impl StreamSession for PutClient {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        if self.common.done {
            return;
        }
        self.common.last_activity = cx.now;
        match input {
            StreamInput::Bytes(bytes) => match self.common.answer_line(bytes) {
                None => {}
                Some((Ok(n), _)) if n == self.size && self.sent == self.size => {
                    let elapsed = cx.now - self.common.started;
                    self.common
                        .finish(Ok(Done { bytes: n, elapsed }), CloseReason::Completed);
                }
                Some((Ok(n), _)) => self.common.finish(
                    Err(ClientError::Protocol(format!(
                        "the server stored {n} bytes, {} sent",
                        self.sent
                    ))),
                    CloseReason::Protocol("wrong count"),
                ),
                Some((Err(line), _)) if line.starts_with("ERROR ") => {
                    self.common
                        .finish(Err(ClientError::refused(line)), CloseReason::Completed);
                }
                Some((Err(why), _)) => self.common.finish(
                    Err(ClientError::Protocol(why)),
                    CloseReason::Protocol("bad answer"),
                ),
            },
            StreamInput::End => self.common.finish(
                Err(ClientError::Protocol(
                    "the connection closed before an answer".into(),
                )),
                CloseReason::PeerClosed,
            ),
            StreamInput::Failed(kind) => self.common.failed(kind),
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        if self.common.done || limit == 0 {
            return None;
        }
        if !self.common.request_sent {
            return self.common.transmit_request(cx.now, limit, buf);
        }
        let remaining = self.size - self.sent;
        if remaining == 0 {
            return None;
        }
        let max = usize::try_from(remaining).unwrap_or(usize::MAX).min(limit);
        match self.source.read_into(buf, max) {
            Ok(0) => {
                self.common.finish(
                    Err(ClientError::Local(format!(
                        "the input ended after {} of {} bytes",
                        self.sent, self.size
                    ))),
                    CloseReason::Aborted,
                );
                None
            }
            Ok(n) => {
                self.sent += n as u64;
                self.common.progress.set(self.sent);
                self.common.last_activity = cx.now;
                Some(n)
            }
            Err(kind) => {
                self.common.finish(
                    Err(ClientError::Local(format!(
                        "reading the input: {}",
                        std::io::Error::from(kind)
                    ))),
                    CloseReason::Aborted,
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::{MemorySink, MemorySource};
    use crate::proto::testing::{at, drain_tx, feed};

    fn peer() -> std::net::SocketAddr {
        "127.0.0.1:50002".parse().unwrap()
    }

    #[test]
    fn get_commits_only_when_every_byte_arrived() {
        let (sink, committed) = MemorySink::new();
        let slot = OutcomeSlot::new();
        let progress = Progress::default();
        let mut c = GetClient::new(
            "f",
            Box::new(sink),
            Duration::from_secs(5),
            slot.clone(),
            progress.clone(),
        );
        assert_eq!(drain_tx(&mut c, at(0)), b"f:GET\n");
        assert_eq!(progress.total(), None);
        feed(&mut c, at(1), peer(), StreamInput::Bytes(b"OK 5\nhe"));
        assert!(committed.borrow().is_none());
        assert_eq!(
            (progress.get(), progress.total()),
            (2, Some(5)),
            "the bar's total"
        );
        feed(&mut c, at(2), peer(), StreamInput::Bytes(b"llo"));
        assert_eq!(committed.borrow().clone(), Some(b"hello".to_vec()));
        assert_eq!(
            slot.get(),
            Some(Ok(Done {
                bytes: 5,
                elapsed: Duration::from_millis(2)
            }))
        );
    }

    #[test]
    fn get_short_transfer_is_not_committed() {
        let (sink, committed) = MemorySink::new();
        let slot = OutcomeSlot::new();
        let mut c = GetClient::new(
            "f",
            Box::new(sink),
            Duration::from_secs(5),
            slot.clone(),
            Progress::default(),
        );
        drain_tx(&mut c, at(0));
        feed(&mut c, at(1), peer(), StreamInput::Bytes(b"OK 5\nhe"));
        feed(&mut c, at(1), peer(), StreamInput::End);
        assert!(committed.borrow().is_none());
        assert!(matches!(slot.get(), Some(Err(ClientError::Protocol(_)))));
    }

    #[test]
    fn get_refused() {
        let (sink, _) = MemorySink::new();
        let slot = OutcomeSlot::new();
        let mut c = GetClient::new(
            "f",
            Box::new(sink),
            Duration::from_secs(5),
            slot.clone(),
            Progress::default(),
        );
        drain_tx(&mut c, at(0));
        feed(
            &mut c,
            at(1),
            peer(),
            StreamInput::Bytes(b"ERROR not found: f\n"),
        );
        assert_eq!(
            slot.get(),
            Some(Err(ClientError::refused("ERROR not found: f")))
        );
    }

    #[test]
    fn put_sends_size_then_bytes_and_checks_the_count() {
        let slot = OutcomeSlot::new();
        let src = MemorySource::new(b"hello".to_vec());
        let mut c = PutClient::new(
            "f",
            Box::new(src),
            5,
            Duration::from_secs(5),
            slot.clone(),
            Progress::default(),
        );
        assert_eq!(drain_tx(&mut c, at(0)), b"f:PUT:5\nhello");
        feed(&mut c, at(3), peer(), StreamInput::Bytes(b"OK 5\n"));
        assert_eq!(
            slot.get(),
            Some(Ok(Done {
                bytes: 5,
                elapsed: Duration::from_millis(3)
            }))
        );
    }
}
