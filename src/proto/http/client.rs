//! The HTTP `GET` client: one request, the body into a sink.
//!
//! Owns the client side of one exchange. It sends `GET PATH HTTP/1.1` with
//! `Host`, `Connection: close` and `User-Agent`, reads the response head
//! within [`MAX_RESPONSE_HEAD`](crate::wire::http::MAX_RESPONSE_HEAD)
//! (skipping interim `1xx` answers), and streams the body to its [`Sink`]
//! as it arrives: `Content-Length` bytes, a chunked body (decoded), or
//! everything until the server closes. The sink is committed only when
//! the body is complete, so a broken transfer never leaves a partial file
//! under the final name; a status other than `2xx` is the server saying no
//! ([`ClientError::Refused`], exit 1), a short or malformed answer a
//! [`ClientError::Protocol`].

use crate::proto::data::Sink;
use crate::proto::outcome::{ClientError, Outcome, OutcomeSlot, Progress};
use crate::proto::{CloseReason, Context, Driven, StreamInput, StreamSession};
use crate::time::{Duration, Instant};
use crate::wire::http::{Chunk, ChunkedDecoder, HeadBuffer, Response};
use bytes::BytesMut;
use core::fmt::Write as _;

/// How long the client waits for progress (a byte of the answer) before it
/// gives up: as the tcpfile clients' default, long enough for a slow server
/// to open a large file, short enough that a dead one is noticed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A finished download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetReport {
    /// The `2xx` status.
    pub status: u16,
    /// Body bytes written to the sink.
    pub bytes: u64,
    /// From sending the request to the end of the body.
    pub elapsed: Duration,
}

/// How the body's end is known.
#[derive(Debug)]
enum Body {
    /// This many more bytes.
    Length(u64),
    /// The chunked coding says.
    Chunked(ChunkedDecoder),
    /// The server closes the connection.
    UntilClose,
}

/// `GET PATH` from `HOST`, the body into a sink.
pub struct Get {
    request: Vec<u8>,
    request_sent: bool,
    started: Instant,
    last_activity: Instant,
    timeout: Duration,
    head: HeadBuffer,
    status: u16,
    /// `Some` once the head is in.
    body: Option<Body>,
    sink: Option<Box<dyn Sink>>,
    received: u64,
    done: bool,
    outcome: OutcomeSlot<GetReport>,
    progress: Progress,
    close: Option<CloseReason>,
}

impl core::fmt::Debug for Get {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Get")
            .field("status", &self.status)
            .field("body", &self.body)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

/// Appends `path` as a request target: bytes that may not appear in one
/// (controls, space, non-ASCII, and ``"#<>\^`{|}``: `#` too, since a
/// fragment is never sent, so it can only be part of a name)
/// percent-encoded, `%` and `?` kept (the caller's own escapes and query),
/// and a `/` in front if missing.
fn target(path: &str, out: &mut String) {
    if !path.starts_with('/') {
        out.push('/');
    }
    for &b in path.as_bytes() {
        if b.is_ascii_graphic() && !b"\"#<>\\^`{|}".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

impl Get {
    /// Fetches `path` from `host` (the `Host` field: a name or address,
    /// with `:port` where it is not 80) into `sink`, which is committed
    /// only if the whole body arrives; the outcome goes into `outcome`.
    /// A `host` with spaces or control bytes fails at once
    /// ([`ClientError::Local`]).
    pub fn new(
        host: &str,
        path: &str,
        sink: Box<dyn Sink>,
        outcome: OutcomeSlot<GetReport>,
    ) -> Self {
        let mut request = String::from("GET ");
        target(path, &mut request);
        let _ = write!(
            request,
            " HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: mioperf/{}\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        let mut get = Self {
            request: request.into_bytes(),
            request_sent: false,
            started: Instant::ZERO,
            last_activity: Instant::ZERO,
            timeout: DEFAULT_TIMEOUT,
            head: HeadBuffer::response(),
            status: 0,
            body: None,
            sink: Some(sink),
            received: 0,
            done: false,
            outcome,
            progress: Progress::new(),
            close: None,
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) {
            get.finish(
                Err(ClientError::Local(format!("not a host name: {host:?}"))),
                CloseReason::Aborted,
            );
        }
        get
    }

    /// Gives up after this long without a byte of the answer (default
    /// [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Reports body bytes received to `progress` as they arrive.
    #[must_use]
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    fn finish(&mut self, outcome: Outcome<GetReport>, reason: CloseReason) {
        if !self.done {
            self.done = true;
            // A sink not committed throws the partial body away.
            self.sink = None;
            self.outcome.set(outcome);
            self.close = Some(reason);
        }
    }

    fn protocol(&mut self, why: String) {
        self.finish(
            Err(ClientError::Protocol(why)),
            CloseReason::Protocol("bad answer"),
        );
    }

    /// Answer bytes, head first.
    fn input(&mut self, now: Instant, mut bytes: &[u8]) {
        while !self.done && self.body.is_none() && !bytes.is_empty() {
            match self.head.push(bytes) {
                Ok(None) => return,
                Ok(Some(n)) => {
                    bytes = &bytes[n..];
                    self.on_head(now);
                }
                Err(e) => return self.protocol(format!("bad response head: {e}")),
            }
        }
        if !self.done && self.body.is_some() {
            self.on_body(now, bytes);
        }
    }

    fn on_head(&mut self, now: Instant) {
        let head = match Response::parse(self.head.head()) {
            Ok(head) => head,
            Err(e) => return self.protocol(format!("bad response head: {e}")),
        };
        self.status = head.status;
        match head.status {
            // Interim answers (100 Continue, 103 Early Hints): the real
            // one follows.
            100 | 102..=199 => {
                self.head = HeadBuffer::response();
                return;
            }
            200..=299 => {}
            _ => {
                let answer = format!("{} {}", head.status, head.reason)
                    .trim_end()
                    .to_owned();
                return self.finish(Err(ClientError::refused(answer)), CloseReason::Completed);
            }
        }
        let body = if head.is_bodiless() {
            Body::Length(0)
        } else if head.chunked {
            Body::Chunked(ChunkedDecoder::new())
        } else {
            head.content_length.map_or(Body::UntilClose, Body::Length)
        };
        let empty = matches!(body, Body::Length(0));
        self.body = Some(body);
        if empty {
            self.complete(now);
        }
    }

    fn on_body(&mut self, now: Instant, bytes: &[u8]) {
        match &mut self.body {
            Some(Body::Length(left)) => {
                let take = bytes
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= take as u64;
                let ended = *left == 0;
                // Bytes beyond the length are not the body's.
                self.write(&bytes[..take]);
                if ended {
                    self.complete(now);
                }
            }
            Some(Body::UntilClose) => self.write(bytes),
            Some(Body::Chunked(_)) => self.on_chunks(now, bytes),
            None => {}
        }
    }

    fn on_chunks(&mut self, now: Instant, mut bytes: &[u8]) {
        // Bounded: every step consumes input or ends the loop.
        while !self.done {
            let Some(Body::Chunked(decoder)) = &mut self.body else {
                return;
            };
            match decoder.next(&mut bytes) {
                Ok(Chunk::Data(data)) => self.write(data),
                Ok(Chunk::Need) => return,
                Ok(Chunk::End) => return self.complete(now),
                Err(e) => return self.protocol(format!("bad chunked body: {e}")),
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        if let Err(kind) = sink.write_all(bytes) {
            return self.finish(
                Err(ClientError::Local(format!(
                    "writing the output: {}",
                    std::io::Error::from(kind)
                ))),
                CloseReason::Aborted,
            );
        }
        self.received += bytes.len() as u64;
        self.progress.set(self.received);
    }

    fn complete(&mut self, now: Instant) {
        let Some(sink) = self.sink.take() else { return };
        let elapsed = now - self.started;
        match sink.commit() {
            Ok(bytes) => self.finish(
                Ok(GetReport {
                    status: self.status,
                    bytes,
                    elapsed,
                }),
                CloseReason::Completed,
            ),
            Err(kind) => self.finish(
                Err(ClientError::Local(format!(
                    "saving the output: {}",
                    std::io::Error::from(kind)
                ))),
                CloseReason::Aborted,
            ),
        }
    }

    fn end_of_stream(&mut self, now: Instant) {
        let why = match &self.body {
            None => "the connection closed before an answer".to_owned(),
            Some(Body::UntilClose) => return self.complete(now),
            Some(Body::Length(left)) => format!(
                "the connection closed after {} of {} bytes",
                self.received,
                self.received + left
            ),
            Some(Body::Chunked(_)) => format!(
                "the connection closed inside a chunked body, after {} bytes",
                self.received
            ),
        };
        self.finish(Err(ClientError::Protocol(why)), CloseReason::PeerClosed);
    }

    fn deadline(&self) -> Option<Instant> {
        (!self.done && self.request_sent).then(|| self.last_activity + self.timeout)
    }
}

impl Driven for Get {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if self.deadline().is_some_and(|at| at <= cx.now) {
            self.finish(
                Err(ClientError::TimedOut { tries: 1 }),
                CloseReason::TimedOut { tries: 1 },
            );
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline()
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl StreamSession for Get {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        if self.done {
            return;
        }
        self.last_activity = cx.now;
        match input {
            StreamInput::Bytes(bytes) => self.input(cx.now, bytes),
            StreamInput::End => self.end_of_stream(cx.now),
            StreamInput::Failed(kind) => {
                self.finish(Err(ClientError::Io(kind)), CloseReason::Aborted);
            }
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        if self.done || self.request_sent || self.request.len() > limit {
            return None;
        }
        buf.extend_from_slice(&self.request);
        self.request_sent = true;
        self.started = cx.now;
        self.last_activity = cx.now;
        Some(self.request.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::MemorySink;
    use crate::proto::testing::{at, drain_tx, feed};
    use core::cell::RefCell;
    use std::net::SocketAddr;
    use std::rc::Rc;

    fn peer() -> SocketAddr {
        "192.0.2.1:7000".parse().unwrap()
    }

    type Committed = Rc<RefCell<Option<Vec<u8>>>>;

    fn client(path: &str) -> (Get, OutcomeSlot<GetReport>, Committed) {
        let (sink, committed) = MemorySink::new();
        let slot = OutcomeSlot::new();
        let get = Get::new("192.0.2.1:7000", path, Box::new(sink), slot.clone());
        (get, slot, committed)
    }

    /// Runs a client against an answer fed in `pieces`, then (if `eof`)
    /// the server's close.
    fn run(pieces: &[&[u8]], eof: bool) -> (Option<Outcome<GetReport>>, Option<Vec<u8>>) {
        let (mut get, slot, committed) = client("/f");
        drain_tx(&mut get, at(0));
        for (i, p) in pieces.iter().enumerate() {
            feed(&mut get, at(i as u64 + 1), peer(), StreamInput::Bytes(p));
        }
        if eof {
            feed(&mut get, at(100), peer(), StreamInput::End);
        }
        let got = committed.borrow().clone();
        (slot.take(), got)
    }

    #[test]
    fn the_request_is_exact() {
        let (mut get, _, _) = client("/a b/ü#1?x=%41");
        let sent = drain_tx(&mut get, at(0));
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            format!(
                "GET /a%20b/%C3%BC%231?x=%41 HTTP/1.1\r\nHost: 192.0.2.1:7000\r\n\
                 Connection: close\r\nUser-Agent: mioperf/{}\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(drain_tx(&mut get, at(0)), b"", "once");
        let (mut bad, slot, _) = {
            let (sink, c) = MemorySink::new();
            let slot = OutcomeSlot::new();
            (
                Get::new("a\r\nX: y", "/", Box::new(sink), slot.clone()),
                slot,
                c,
            )
        };
        assert_eq!(drain_tx(&mut bad, at(0)), b"", "nothing sent");
        assert!(matches!(slot.take(), Some(Err(ClientError::Local(_)))));
        assert_eq!(bad.poll_close(), Some(CloseReason::Aborted));
    }

    #[test]
    fn a_content_length_body_is_committed_when_complete() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhelloEXTRA";
        let (outcome, got) = run(&[answer], false);
        assert_eq!(
            outcome,
            Some(Ok(GetReport {
                status: 200,
                bytes: 5,
                elapsed: Duration::from_millis(1)
            }))
        );
        assert_eq!(got.as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn an_eof_delimited_body_is_committed_at_the_close() {
        let (outcome, got) = run(&[b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nab", b"cd"], false);
        assert_eq!(outcome, None, "not before the close");
        assert_eq!(got, None);
        let (outcome, got) = run(&[b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nab", b"cd"], true);
        assert_eq!(outcome.unwrap().unwrap().bytes, 4);
        assert_eq!(got.as_deref(), Some(&b"abcd"[..]));
    }

    #[test]
    fn a_chunked_body_is_decoded() {
        let answer =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\nT: v\r\n\r\n";
        let (outcome, got) = run(&[answer], false);
        assert_eq!(outcome.unwrap().unwrap().bytes, 10);
        assert_eq!(got.as_deref(), Some(&b"Wikipedia "[..]));
        // Closed before the last chunk: an error, nothing committed.
        let (outcome, got) = run(&[&answer[..answer.len() - 12]], true);
        assert!(
            matches!(outcome, Some(Err(ClientError::Protocol(_)))),
            "{outcome:?}"
        );
        assert_eq!(got, None);
        let (outcome, got) = run(
            &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
            false,
        );
        assert!(matches!(outcome, Some(Err(ClientError::Protocol(_)))));
        assert_eq!(got, None);
    }

    #[test]
    fn answers_split_at_every_byte_give_the_same_outcome() {
        for (answer, eof, body) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef"[..], false, &b"abcdef"[..]),
            (b"HTTP/1.0 200 OK\n\nxyz", true, b"xyz"),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n",
                false,
                b"abcd",
            ),
        ] {
            for cut in 0..=answer.len() {
                let (outcome, got) = run(&[&answer[..cut], &answer[cut..]], eof);
                let report = outcome.unwrap().unwrap();
                assert_eq!((report.status, report.bytes), (200, body.len() as u64), "cut {cut}");
                assert_eq!(got.as_deref(), Some(body), "cut {cut}");
            }
            let pieces: Vec<&[u8]> = answer.chunks(1).collect();
            let (_, got) = run(&pieces, eof);
            assert_eq!(got.as_deref(), Some(body), "byte by byte");
        }
    }

    #[test]
    fn a_404_is_a_refusal_with_the_status() {
        let (outcome, got) = run(
            &[b"HTTP/1.1 404 Not Found\r\nContent-Length: 14\r\n\r\n404 Not Found\n"],
            false,
        );
        assert_eq!(outcome, Some(Err(ClientError::refused("404 Not Found"))));
        assert_eq!(got, None);
        let (outcome, _) = run(&[b"HTTP/1.1 500 \r\n\r\n"], false);
        assert_eq!(outcome, Some(Err(ClientError::refused("500"))));
    }

    #[test]
    fn a_short_body_is_an_error_and_nothing_is_committed() {
        let (outcome, got) = run(&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], true);
        assert_eq!(
            outcome,
            Some(Err(ClientError::Protocol(
                "the connection closed after 3 of 10 bytes".into()
            )))
        );
        assert_eq!(got, None);
        let (outcome, _) = run(&[b"HTTP/1.1 200 OK\r\n"], true);
        assert_eq!(
            outcome,
            Some(Err(ClientError::Protocol(
                "the connection closed before an answer".into()
            )))
        );
    }

    #[test]
    fn empty_and_bodiless_answers_complete_at_once() {
        let (outcome, got) = run(&[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], false);
        assert_eq!(outcome.unwrap().unwrap().bytes, 0);
        assert_eq!(got.as_deref(), Some(&b""[..]));
        let (outcome, _) = run(&[b"HTTP/1.1 204 No Content\r\n\r\n"], false);
        assert_eq!(outcome.unwrap().unwrap().status, 204);
    }

    #[test]
    fn a_malformed_or_huge_head_is_a_protocol_error() {
        let (outcome, _) = run(&[b"SSH-2.0-OpenSSH\r\n\r\n"], false);
        assert!(matches!(outcome, Some(Err(ClientError::Protocol(_)))));
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        while huge.len() <= crate::wire::http::MAX_RESPONSE_HEAD {
            huge.extend_from_slice(b"X: y\r\n");
        }
        let (outcome, _) = run(&[&huge], false);
        assert!(matches!(outcome, Some(Err(ClientError::Protocol(_)))));
    }

    #[test]
    fn progress_counts_body_bytes_and_the_timeout_runs_from_the_last_byte() {
        let (sink, committed) = MemorySink::new();
        let slot = OutcomeSlot::new();
        let progress = Progress::new();
        let mut get = Get::new("h", "/f", Box::new(sink), slot.clone())
            .with_timeout(Duration::from_millis(500))
            .with_progress(progress.clone());
        assert_eq!(get.poll_timeout(), None, "not before the request");
        drain_tx(&mut get, at(0));
        assert_eq!(get.poll_timeout(), Some(at(500)));
        feed(
            &mut get,
            at(300),
            peer(),
            StreamInput::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabcd"),
        );
        assert_eq!(progress.get(), 4);
        assert_eq!(get.poll_timeout(), Some(at(800)));
        get.handle_timeout(&mut crate::proto::testing::cx(
            Instant::from_nanos(at(800).as_nanos() - 1),
            None,
        ));
        assert_eq!(slot.take(), None, "not a nanosecond early");
        get.handle_timeout(&mut crate::proto::testing::cx(at(800), None));
        assert_eq!(slot.take(), Some(Err(ClientError::TimedOut { tries: 1 })));
        assert_eq!(get.poll_close(), Some(CloseReason::TimedOut { tries: 1 }));
        assert_eq!(*committed.borrow(), None);
    }
}
