//! The HTTP server session: one request, one answer, then close.
//!
//! Owns the connection's state machine. It gathers the request head within
//! `wire::http`'s bounds (414 past [`MAX_REQUEST_LINE`], 431 past
//! [`MAX_REQUEST_BYTES`]), answers `GET /` and `HEAD /` with an HTML index
//! of the root, `GET /NAME` and `HEAD /NAME` with the file by the store's
//! name rules (403 forbidden, 404 missing), any other method with 405 and
//! `Allow`, and everything malformed with 400. A file's bytes are pulled
//! from its [`Source`] only as the transport takes them (or handed to the
//! reactor's `sendfile` through [`StreamSession::poll_file`] when zero-copy
//! is on), so no file is ever held whole in memory; the index page is, and
//! [`MAX_INDEX_ENTRIES`] bounds it. Bytes after the head (a body, a second
//! request) are ignored: every answer says `Connection: close`, and the
//! session ends once the answer is handed over. It must never answer twice
//! or send a byte that is not the file's after a `200`.
//!
//! Time limits follow [`crate::proto::idle`]: the head must be complete
//! within `request` of accept; after it, the answer lives as long as the
//! client takes its bytes.
//!
//! [`MAX_REQUEST_LINE`]: crate::wire::http::MAX_REQUEST_LINE
//! [`MAX_REQUEST_BYTES`]: crate::wire::http::MAX_REQUEST_BYTES

use crate::proto::data::{FileError, Files, Source};
use crate::proto::idle::{IdleTimer, TcpTimeouts};
use crate::proto::{
    CloseReason, Context, Driven, FileChunk, StreamAcceptor, StreamInput, StreamSession, Wake,
};
use crate::time::Instant;
use crate::wire::http::{
    HeadBuffer, Method, Request, ResponseHead, Status, percent_encode, request_path,
};
use bytes::BytesMut;
use core::fmt::Write as _;
use log::{debug, info};
use std::net::SocketAddr;
use std::rc::Rc;

/// Most files the index page lists: the page is built whole in memory (a
/// listed name costs at most ~2.3 kB of HTML, percent-encoded and escaped),
/// so this bounds it to a couple of megabytes, and the directory read
/// behind it to as many entries. A root with more says so on the page.
pub const MAX_INDEX_ENTRIES: usize = 1000;

/// The type of a file's bytes: the server does not guess types.
const OCTET_STREAM: &str = "application/octet-stream";

/// The type of the index page.
const HTML: &str = "text/html; charset=utf-8";

/// The type of the short text body of an error answer.
const TEXT: &str = "text/plain; charset=utf-8";

enum Job {
    /// Waiting for the request head.
    Request,
    /// Sending a file's body after its head: `sent` bytes so far,
    /// `remaining` more (`None`: the source's size is unknown, so the body
    /// ends at its end and the connection's).
    Body {
        source: Box<dyn Source>,
        sent: u64,
        remaining: Option<u64>,
    },
    /// Answered (what is left in `out` still goes out); closing.
    Done,
}

/// One HTTP connection.
pub struct HttpStream {
    files: Rc<dyn Files>,
    head: HeadBuffer,
    /// The answer's head, and for the index and errors its body.
    out: BytesMut,
    job: Job,
    close: Option<CloseReason>,
    /// Let the reactor `sendfile` a file instead of reading it through us.
    zero_copy: bool,
    /// Idle and request clocks.
    timer: IdleTimer,
}

impl core::fmt::Debug for HttpStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HttpStream").finish_non_exhaustive()
    }
}

impl HttpStream {
    /// A fresh connection over `files`, accepted at `now`, under the
    /// limits of `timeouts`.
    pub fn new(files: Rc<dyn Files>, now: Instant, timeouts: TcpTimeouts) -> Self {
        Self {
            files,
            head: HeadBuffer::request(),
            out: BytesMut::new(),
            job: Job::Request,
            close: None,
            zero_copy: true,
            timer: IdleTimer::new(now, timeouts),
        }
    }

    /// Whether a file body may go through the reactor's zero-copy
    /// `sendfile` (on by default). Off reads it through `poll_transmit`:
    /// needed wherever no reactor socket carries the session (the
    /// userspace TCP of the TUN stack never asks for `poll_file`).
    #[must_use]
    pub fn with_zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }

    /// Whether the session has nothing left to do but close.
    fn finished(&self) -> bool {
        matches!(self.job, Job::Done) && self.out.is_empty()
    }

    /// Ends now, dropping whatever was not handed over yet: the reason
    /// replaces that of an answer still going out (a reader that stopped
    /// halfway through the index timed out; it did not complete).
    fn abort(&mut self, reason: CloseReason) {
        self.out.clear();
        self.job = Job::Done;
        self.close = Some(reason);
    }

    /// Queues a complete answer; the session closes once it is out.
    fn answer(&mut self, head: ResponseHead<'_>, body: Option<&[u8]>, reason: CloseReason) {
        head.emit(&mut self.out);
        if let Some(body) = body {
            self.out.extend_from_slice(body);
        }
        self.job = Job::Done;
        self.close.get_or_insert(reason);
    }

    /// An error answer: its status line as a short text body (none for
    /// `HEAD`, whose `Content-Length` still says what `GET` would get).
    fn refuse(&mut self, status: Status, with_body: bool, why: &'static str) {
        let body = format!("{} {}\n", status.code(), status.reason());
        self.answer(
            ResponseHead {
                status,
                content_length: Some(body.len() as u64),
                content_type: TEXT,
            },
            with_body.then_some(body.as_bytes()),
            CloseReason::Protocol(why),
        );
    }

    /// The head is complete: answers it.
    fn respond(&mut self, cx: &Context) {
        let parsed = Request::parse(self.head.head());
        let request = match parsed {
            Ok(r) => r,
            Err(e) => {
                debug!("{} bad request: {e}", cx.tag);
                return self.refuse(e.status(), true, e.as_str());
            }
        };
        let with_body = match request.method {
            Method::Get => true,
            Method::Head => false,
            Method::Other(m) => {
                debug!("{} {m}: not allowed", cx.tag);
                return self.refuse(Status::MethodNotAllowed, true, "method not allowed");
            }
        };
        let method = if with_body { "GET" } else { "HEAD" };
        let path = match request_path(request.target) {
            Ok(p) => p,
            Err(e) => {
                debug!("{} {method} {}: {e}", cx.tag, request.target);
                return self.refuse(e.status(), with_body, e.as_str());
            }
        };
        if path == "/" {
            return self.index(cx, with_body);
        }
        let name = &path[1..];
        match self.files.open(name) {
            Ok(source) => {
                let size = source.size();
                info!(
                    "{} {method} /{name}: 200, {}",
                    cx.tag,
                    size.map_or("size unknown".into(), |n| format!("{n} bytes"))
                );
                ResponseHead {
                    status: Status::Ok,
                    content_length: size,
                    content_type: OCTET_STREAM,
                }
                .emit(&mut self.out);
                if !with_body || size == Some(0) {
                    self.job = Job::Done;
                    self.close.get_or_insert(CloseReason::Completed);
                } else {
                    self.job = Job::Body {
                        source,
                        sent: 0,
                        remaining: size,
                    };
                }
            }
            Err(e) => {
                debug!("{} {method} /{name}: {e}", cx.tag);
                let (status, why) = match e {
                    FileError::Forbidden => (Status::Forbidden, "forbidden"),
                    FileError::NotFound => (Status::NotFound, "not found"),
                    FileError::Exists | FileError::TooLarge | FileError::Io(_) => {
                        (Status::InternalError, "failed")
                    }
                };
                self.refuse(status, with_body, why);
            }
        }
    }

    fn index(&mut self, cx: &Context, with_body: bool) {
        match self.files.list(MAX_INDEX_ENTRIES) {
            Ok((names, more)) => {
                let page = index_page(&names, more);
                info!("{} index: 200, {} names", cx.tag, names.len());
                self.answer(
                    ResponseHead {
                        status: Status::Ok,
                        content_length: Some(page.len() as u64),
                        content_type: HTML,
                    },
                    with_body.then_some(page.as_bytes()),
                    CloseReason::Completed,
                );
            }
            Err(e) => {
                debug!("{} index: {e}", cx.tag);
                self.refuse(Status::InternalError, with_body, "failed");
            }
        }
    }

    /// The body has all gone out (or the source failed under us).
    fn body_done(&mut self, reason: CloseReason) {
        self.job = Job::Done;
        self.close.get_or_insert(reason);
    }
}

/// The index page listing `names` (already sorted), with a note when
/// `more` were left out.
fn index_page(names: &[String], more: bool) -> String {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Index of /</title></head>\n\
         <body>\n<h1>Index of /</h1>\n<ul>\n",
    );
    for name in names {
        page.push_str("<li><a href=\"/");
        // Percent-encoded leaves only unreserved bytes and `%`: nothing to
        // escape inside the attribute.
        percent_encode(name, &mut page);
        page.push_str("\">");
        html_escape(name, &mut page);
        page.push_str("</a></li>\n");
    }
    page.push_str("</ul>\n");
    if more {
        // Writing to a String cannot fail.
        let _ = writeln!(
            page,
            "<p>Only the first {MAX_INDEX_ENTRIES} entries are listed.</p>"
        );
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// Appends `text` with the five characters that mean something in HTML
/// text or attributes escaped.
fn html_escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

impl Driven for HttpStream {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if self.finished() {
            return;
        }
        if let Some(expired) = self.timer.on_timeout(cx.now) {
            debug!("{} {}: closing", cx.tag, expired.as_str());
            self.abort(CloseReason::TimedOut { tries: 1 });
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.finished() {
            None
        } else {
            self.timer.poll_timeout()
        }
    }

    /// The idle and request limits may fire a little late, never early.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    /// Only once the answer is all handed over: the index page may be
    /// larger than one transmit.
    fn poll_close(&mut self) -> Option<CloseReason> {
        if self.out.is_empty() {
            self.close.take()
        } else {
            None
        }
    }
}

impl StreamSession for HttpStream {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        match input {
            // After the head, bytes are a body or a second request: ignored,
            // and no progress.
            StreamInput::Bytes(bytes) if matches!(self.job, Job::Request) => {
                if bytes.is_empty() {
                    return;
                }
                self.timer.touch(cx.now);
                match self.head.push(bytes) {
                    Ok(None) => {}
                    Ok(Some(_)) => {
                        self.timer.end_request();
                        self.respond(cx);
                    }
                    Err(e) => {
                        self.timer.end_request();
                        debug!("{} {e}", cx.tag);
                        self.refuse(e.status(), true, e.as_str());
                    }
                }
            }
            StreamInput::Bytes(_) => {}
            StreamInput::End => {
                // A client may half-close after its request; before it,
                // there is nobody to answer.
                if matches!(self.job, Job::Request) {
                    self.abort(CloseReason::PeerClosed);
                }
            }
            StreamInput::Failed(_) => self.abort(CloseReason::Aborted),
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        if limit == 0 {
            return None;
        }
        if !self.out.is_empty() {
            let len = self.out.len().min(limit);
            buf.extend_from_slice(&self.out.split_to(len));
            self.timer.touch(cx.now);
            return Some(len);
        }
        let Job::Body {
            source,
            sent,
            remaining,
        } = &mut self.job
        else {
            return None;
        };
        if self.zero_copy && remaining.is_some() && source.file_fd().is_some() {
            // The reactor sends the file itself (poll_file).
            return None;
        }
        let max = remaining.map_or(limit, |r| {
            usize::try_from(r).unwrap_or(usize::MAX).min(limit)
        });
        match source.read_into(buf, max) {
            // The end of a source of unknown size is the end of the body.
            Ok(0) if remaining.is_none() => {
                self.body_done(CloseReason::Completed);
                None
            }
            Ok(0) | Err(_) => {
                // The file shrank or failed under us: the client sees a
                // short body (it knows the length), never wrong bytes.
                self.body_done(CloseReason::Aborted);
                None
            }
            Ok(n) => {
                *sent += n as u64;
                if let Some(r) = remaining {
                    *r -= n as u64;
                    if *r == 0 {
                        self.body_done(CloseReason::Completed);
                    }
                }
                self.timer.touch(cx.now);
                Some(n)
            }
        }
    }

    fn poll_file(&mut self) -> Option<FileChunk> {
        let Job::Body {
            source,
            sent,
            remaining: Some(remaining),
        } = &self.job
        else {
            return None;
        };
        let fd = source
            .file_fd()
            .filter(|_| self.zero_copy && self.out.is_empty())?;
        Some(FileChunk {
            fd,
            offset: *sent,
            len: *remaining,
        })
    }

    fn advance_file(&mut self, cx: &mut Context, n: u64) {
        if n > 0 {
            self.timer.touch(cx.now);
        }
        if let Job::Body {
            sent,
            remaining: Some(remaining),
            ..
        } = &mut self.job
        {
            let n = n.min(*remaining);
            *sent += n;
            *remaining -= n;
            if *remaining == 0 {
                self.body_done(CloseReason::Completed);
            }
        }
    }
}

/// The acceptor on an HTTP listener (kernel TCP, or the TUN stack's port
/// 7000).
pub struct HttpAcceptor {
    files: Rc<dyn Files>,
    zero_copy: bool,
    timeouts: TcpTimeouts,
}

impl core::fmt::Debug for HttpAcceptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HttpAcceptor").finish_non_exhaustive()
    }
}

impl HttpAcceptor {
    /// Connections serving `files`.
    pub fn new(files: Rc<dyn Files>) -> Self {
        Self {
            files,
            zero_copy: true,
            timeouts: TcpTimeouts::default(),
        }
    }

    /// Whether file bodies may use zero-copy `sendfile` (see
    /// [`HttpStream::with_zero_copy`]; off under the userspace TCP).
    #[must_use]
    pub fn with_zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }

    /// The idle and request limits of its connections (default
    /// [`TcpTimeouts::default`]).
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: TcpTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }
}

/// No timers of its own.
impl Driven for HttpAcceptor {}

impl StreamAcceptor for HttpAcceptor {
    fn accept(&mut self, cx: &mut Context, _peer: SocketAddr) -> Option<Box<dyn StreamSession>> {
        Some(Box::new(
            HttpStream::new(self.files.clone(), cx.now, self.timeouts)
                .with_zero_copy(self.zero_copy),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::MemoryFiles;
    use crate::proto::idle::testing::timed_out_by;
    use crate::proto::testing::{at, cx, drain_tx, feed};
    use crate::time::Duration;

    fn peer() -> SocketAddr {
        "192.0.2.2:40000".parse().unwrap()
    }

    fn session(files: &MemoryFiles) -> HttpStream {
        HttpStream::new(Rc::new(files.clone()), at(0), TcpTimeouts::default())
    }

    /// Feeds `request` in one piece; the answer and how the session ends.
    fn run(files: &MemoryFiles, request: &[u8]) -> (Vec<u8>, Option<CloseReason>) {
        let mut s = session(files);
        feed(&mut s, at(0), peer(), StreamInput::Bytes(request));
        let out = drain_tx(&mut s, at(0));
        (out, s.poll_close())
    }

    /// The status line of an answer.
    fn status(answer: &[u8]) -> String {
        let end = answer
            .iter()
            .position(|&b| b == b'\r')
            .unwrap_or(answer.len());
        String::from_utf8_lossy(&answer[..end]).into_owned()
    }

    /// Head and body of an answer.
    fn split(answer: &[u8]) -> (String, Vec<u8>) {
        let at = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete head")
            + 4;
        (
            String::from_utf8(answer[..at].to_vec()).unwrap(),
            answer[at..].to_vec(),
        )
    }

    fn files() -> MemoryFiles {
        let files = MemoryFiles::default();
        files.insert("hello.txt", b"hello world".to_vec());
        files.insert("a <b> & \"c\".bin", b"x".to_vec());
        files.insert("sub/inner", b"y".to_vec());
        files
    }

    #[test]
    fn the_index_lists_the_root_escaped_and_encoded() {
        let (out, end) = run(&files(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, body) = split(&out);
        assert_eq!(
            head,
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
        );
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains(
            "<li><a href=\"/a%20%3Cb%3E%20%26%20%22c%22.bin\">a &lt;b&gt; &amp; &quot;c&quot;.bin</a></li>\n"
        ), "{body}");
        assert!(body.contains("<li><a href=\"/hello.txt\">hello.txt</a></li>\n"));
        assert!(!body.contains("inner"), "only the root: {body}");
        assert!(!body.contains("Only the first"));
        assert_eq!(end, Some(CloseReason::Completed));
        // The query part of a target does not matter.
        let (again, _) = run(&files(), b"GET /?C=M HTTP/1.0\r\n\r\n");
        assert_eq!(again, out);
    }

    #[test]
    fn a_long_root_lists_its_first_entries_and_says_so() {
        let files = MemoryFiles::default();
        for i in 0..=MAX_INDEX_ENTRIES {
            files.insert(&format!("f{i:05}"), Vec::new());
        }
        let (out, _) = run(&files, b"GET / HTTP/1.0\r\n\r\n");
        let body = String::from_utf8(split(&out).1).unwrap();
        assert_eq!(body.matches("<li>").count(), MAX_INDEX_ENTRIES);
        assert!(body.contains("Only the first 1000 entries are listed."));
    }

    #[test]
    fn get_sends_exactly_the_file() {
        let files = MemoryFiles::default();
        let big: Vec<u8> = (0..=u8::MAX).cycle().take(300_000).collect();
        files.insert("big.bin", big.clone());
        files.insert("a b", b"spaced".to_vec());
        files.insert("empty", Vec::new());
        let (out, end) = run(&files, b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, body) = split(&out);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: 300000\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(body, big);
        assert_eq!(end, Some(CloseReason::Completed));
        let (out, _) = run(&files, b"GET /a%20b HTTP/1.0\r\n\r\n");
        assert_eq!(split(&out).1, b"spaced");
        let (out, end) = run(&files, b"GET /empty HTTP/1.0\r\n\r\n");
        assert!(split(&out).0.contains("Content-Length: 0\r\n"));
        assert_eq!(split(&out).1, b"");
        assert_eq!(end, Some(CloseReason::Completed));
        // Absolute form, as a proxy-minded client sends it.
        let (out, _) = run(
            &files,
            b"GET http://192.0.2.1:7000/empty HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert_eq!(status(&out), "HTTP/1.1 200 OK");
    }

    #[test]
    fn head_has_the_headers_of_get_and_no_body() {
        for (target, len) in [("/hello.txt", 11usize), ("/", 0), ("/missing", 14)] {
            let files = files();
            let get = run(&files, format!("GET {target} HTTP/1.0\r\n\r\n").as_bytes()).0;
            let head = run(&files, format!("HEAD {target} HTTP/1.0\r\n\r\n").as_bytes()).0;
            let (get_head, body) = split(&get);
            assert_eq!(String::from_utf8(head).unwrap(), get_head, "{target}");
            if len > 0 {
                assert_eq!(body.len(), len, "{target}");
            }
        }
    }

    #[test]
    fn refusals_have_their_status() {
        let files = files();
        for (request, line) in [
            (
                &b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"[..],
                "HTTP/1.1 404 Not Found",
            ),
            (
                b"GET /../etc/passwd HTTP/1.0\r\n\r\n",
                "HTTP/1.1 403 Forbidden",
            ),
            (b"GET /%2E%2E/x HTTP/1.0\r\n\r\n", "HTTP/1.1 403 Forbidden"),
            (
                b"GET //etc/passwd HTTP/1.0\r\n\r\n",
                "HTTP/1.1 403 Forbidden",
            ),
            (b"GET /a%zz HTTP/1.0\r\n\r\n", "HTTP/1.1 400 Bad Request"),
            (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"),
            (b"nonsense\r\n\r\n", "HTTP/1.1 400 Bad Request"),
            (b"GET * HTTP/1.0\r\n\r\n", "HTTP/1.1 400 Bad Request"),
            (
                b"GET / HTTP/2.0\r\n\r\n",
                "HTTP/1.1 505 HTTP Version Not Supported",
            ),
            (
                b"PUT /x HTTP/1.0\r\n\r\n",
                "HTTP/1.1 405 Method Not Allowed",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\n\r\n",
                "HTTP/1.1 405 Method Not Allowed",
            ),
        ] {
            let (out, end) = run(&files, request);
            assert_eq!(status(&out), line, "{:?}", String::from_utf8_lossy(request));
            assert!(matches!(end, Some(CloseReason::Protocol(_))), "{end:?}");
            let (head, body) = split(&out);
            assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
            assert!(head.ends_with("Connection: close\r\n\r\n"));
            assert_eq!(
                head.contains("Allow: GET, HEAD\r\n"),
                line.contains("405"),
                "{head}"
            );
        }
    }

    #[test]
    fn too_long_lines_and_heads_get_414_and_431_at_once() {
        let files = files();
        let mut s = session(&files);
        let long = vec![b'a'; crate::wire::http::MAX_REQUEST_LINE];
        feed(&mut s, at(0), peer(), StreamInput::Bytes(b"GET /"));
        feed(&mut s, at(0), peer(), StreamInput::Bytes(&long));
        let out = drain_tx(&mut s, at(0));
        assert_eq!(status(&out), "HTTP/1.1 414 URI Too Long");
        let mut s = session(&files);
        feed(
            &mut s,
            at(0),
            peer(),
            StreamInput::Bytes(b"GET / HTTP/1.0\r\n"),
        );
        for _ in 0..2_000 {
            feed(&mut s, at(0), peer(), StreamInput::Bytes(b"X-Y: z\r\n"));
        }
        let out = drain_tx(&mut s, at(0));
        assert_eq!(status(&out), "HTTP/1.1 431 Request Header Fields Too Large");
        assert_eq!(
            s.poll_close(),
            Some(CloseReason::Protocol("head too large"))
        );
    }

    #[test]
    fn a_request_split_at_every_byte_gets_the_same_answer() {
        let files = files();
        for request in [
            &b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n"[..],
            b"HEAD / HTTP/1.0\n\n",
            b"GET /missing HTTP/1.0\r\nA: b\r\n\r\n",
        ] {
            let (whole, end) = run(&files, request);
            for cut in 1..request.len() {
                let mut s = session(&files);
                feed(&mut s, at(0), peer(), StreamInput::Bytes(&request[..cut]));
                assert_eq!(drain_tx(&mut s, at(0)), b"", "nothing before the end");
                feed(&mut s, at(0), peer(), StreamInput::Bytes(&request[cut..]));
                assert_eq!(drain_tx(&mut s, at(0)), whole, "cut at {cut}");
                assert_eq!(s.poll_close(), end);
            }
            // And one byte at a time.
            let mut s = session(&files);
            for b in request {
                feed(&mut s, at(0), peer(), StreamInput::Bytes(&[*b]));
            }
            assert_eq!(drain_tx(&mut s, at(0)), whole);
        }
    }

    #[test]
    fn bytes_after_the_head_are_ignored_and_only_the_first_request_is_answered() {
        let files = files();
        let (out, _) = run(
            &files,
            b"GET /hello.txt HTTP/1.0\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n",
        );
        assert_eq!(split(&out).1, b"hello world");
        assert_eq!(out.windows(8).filter(|w| w == b"HTTP/1.1").count(), 1);
    }

    #[test]
    fn http_10_and_11_requests_both_get_answers() {
        let files = files();
        for request in [
            &b"GET /hello.txt HTTP/1.0\r\n\r\n"[..],
            b"GET /hello.txt HTTP/1.1\r\nHost: 192.0.2.1:7000\r\n\r\n",
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
        ] {
            let (out, end) = run(&files, request);
            assert_eq!(status(&out), "HTTP/1.1 200 OK");
            assert!(split(&out).0.contains("Connection: close\r\n"));
            assert_eq!(split(&out).1, b"hello world");
            assert_eq!(end, Some(CloseReason::Completed));
        }
    }

    #[test]
    fn the_index_closes_only_once_all_of_it_is_out() {
        let files = MemoryFiles::default();
        for i in 0..200 {
            files.insert(&format!("file-{i}"), Vec::new());
        }
        let mut s = session(&files);
        feed(
            &mut s,
            at(0),
            peer(),
            StreamInput::Bytes(b"GET / HTTP/1.0\r\n\r\n"),
        );
        let mut buf = BytesMut::new();
        assert_eq!(
            s.poll_transmit(&mut cx(at(0), None), 100, &mut buf),
            Some(100)
        );
        assert_eq!(s.poll_close(), None, "99 % of the page still to go");
        drain_tx(&mut s, at(0));
        assert_eq!(s.poll_close(), Some(CloseReason::Completed));
    }

    /// A source with a descriptor, as the store's files have.
    struct FdSource(crate::proto::data::MemorySource);

    impl Source for FdSource {
        fn size(&self) -> Option<u64> {
            self.0.size()
        }
        fn read_into(
            &mut self,
            dst: &mut BytesMut,
            max: usize,
        ) -> Result<usize, std::io::ErrorKind> {
            self.0.read_into(dst, max)
        }
        fn file_fd(&self) -> Option<i32> {
            Some(7)
        }
    }

    struct FdFiles;

    impl Files for FdFiles {
        fn open(&self, _: &str) -> Result<Box<dyn Source>, FileError> {
            Ok(Box::new(FdSource(crate::proto::data::MemorySource::new(
                vec![3; 5000],
            ))))
        }
        fn create(
            &self,
            _: &str,
            _: Option<u64>,
        ) -> Result<Box<dyn crate::proto::data::Sink>, FileError> {
            Err(FileError::Forbidden)
        }
    }

    #[test]
    fn zero_copy_offers_the_file_after_the_head_and_can_be_switched_off() {
        let mut s = HttpStream::new(Rc::new(FdFiles), at(0), TcpTimeouts::default());
        feed(
            &mut s,
            at(0),
            peer(),
            StreamInput::Bytes(b"GET /f HTTP/1.0\r\n\r\n"),
        );
        assert_eq!(s.poll_file(), None, "the head goes first");
        let head = drain_tx(&mut s, at(0));
        assert!(
            split(&head).1.is_empty(),
            "no body bytes through poll_transmit"
        );
        assert_eq!(
            s.poll_file(),
            Some(FileChunk {
                fd: 7,
                offset: 0,
                len: 5000
            })
        );
        s.advance_file(&mut cx(at(1), None), 2000);
        assert_eq!(
            s.poll_file(),
            Some(FileChunk {
                fd: 7,
                offset: 2000,
                len: 3000
            })
        );
        s.advance_file(&mut cx(at(2), None), 3000);
        assert_eq!(s.poll_close(), Some(CloseReason::Completed));
        // Off: the same bytes through poll_transmit, never poll_file.
        let mut s =
            HttpStream::new(Rc::new(FdFiles), at(0), TcpTimeouts::default()).with_zero_copy(false);
        feed(
            &mut s,
            at(0),
            peer(),
            StreamInput::Bytes(b"GET /f HTTP/1.0\r\n\r\n"),
        );
        assert_eq!(s.poll_file(), None);
        assert_eq!(split(&drain_tx(&mut s, at(0))).1, vec![3; 5000]);
        assert_eq!(s.poll_close(), Some(CloseReason::Completed));
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn ns_before(t: Instant) -> Instant {
        Instant::from_nanos(t.as_nanos() - 1)
    }

    fn limited(files: &MemoryFiles, idle_ms: u64, request_ms: u64) -> HttpStream {
        let timeouts = TcpTimeouts {
            idle: Duration::from_millis(idle_ms),
            request: Duration::from_millis(request_ms),
        };
        HttpStream::new(Rc::new(files.clone()), ms(0), timeouts)
    }

    #[test]
    fn a_silent_connection_closes_at_exactly_the_first_limit() {
        let files = files();
        let mut s = limited(&files, 300, 10_000);
        assert_eq!(s.poll_timeout(), Some(ms(300)), "armed from accept");
        assert_eq!(timed_out_by(&mut s, ns_before(ms(300))), None);
        assert_eq!(timed_out_by(&mut s, ms(60_000)), Some(ms(300)));
        let mut s = limited(&files, 300_000, 10_000);
        assert_eq!(timed_out_by(&mut s, ms(600_000)), Some(ms(10_000)));
    }

    #[test]
    fn a_trickled_head_closes_at_the_request_limit_unanswered() {
        let files = files();
        let mut s = limited(&files, 300_000, 10_000);
        let request = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut closed = None;
        for (i, b) in request.iter().enumerate() {
            let now = ms(1_000 * (i as u64 + 1));
            closed = timed_out_by(&mut s, ns_before(now));
            if closed.is_some() {
                break;
            }
            feed(&mut s, now, peer(), StreamInput::Bytes(&[*b]));
        }
        assert_eq!(closed, Some(ms(10_000)), "from accept, not later");
        assert_eq!(drain_tx(&mut s, ms(10_000)), b"");
    }

    #[test]
    fn a_reader_that_stops_is_dropped_one_idle_limit_after_its_last_read() {
        let files = MemoryFiles::default();
        files.insert("f", vec![5; 100_000]);
        let mut s = limited(&files, 1_000, 10_000);
        feed(
            &mut s,
            ms(0),
            peer(),
            StreamInput::Bytes(b"GET /f HTTP/1.0\r\n\r\n"),
        );
        let take = |s: &mut HttpStream, now| {
            s.poll_transmit(&mut cx(now, None), 10_000, &mut BytesMut::new())
        };
        for i in 0..5u64 {
            assert!(take(&mut s, ms(700 * i)).is_some());
        }
        assert_eq!(timed_out_by(&mut s, ms(60_000)), Some(ms(3_800)));
        assert_eq!(s.poll_file(), None);
    }

    #[test]
    fn an_index_whose_reader_stops_is_dropped_one_idle_limit_later() {
        let files = MemoryFiles::default();
        for i in 0..200 {
            files.insert(&format!("file-{i}"), Vec::new());
        }
        let mut s = limited(&files, 1_000, 10_000);
        feed(
            &mut s,
            ms(0),
            peer(),
            StreamInput::Bytes(b"GET / HTTP/1.0\r\n\r\n"),
        );
        let mut buf = BytesMut::new();
        assert!(
            s.poll_transmit(&mut cx(ms(500), None), 100, &mut buf)
                .is_some()
        );
        assert_eq!(timed_out_by(&mut s, ms(60_000)), Some(ms(1_500)));
    }

    #[test]
    fn a_peer_that_leaves_before_its_head_gets_nothing() {
        let files = files();
        let mut s = session(&files);
        feed(&mut s, at(0), peer(), StreamInput::Bytes(b"GET / HT"));
        feed(&mut s, at(0), peer(), StreamInput::End);
        assert_eq!(drain_tx(&mut s, at(0)), b"");
        assert_eq!(s.poll_close(), Some(CloseReason::PeerClosed));
        // After the head, a half-close changes nothing.
        let mut s = session(&files);
        feed(
            &mut s,
            at(0),
            peer(),
            StreamInput::Bytes(b"GET /hello.txt HTTP/1.0\r\n\r\n"),
        );
        feed(&mut s, at(0), peer(), StreamInput::End);
        assert_eq!(split(&drain_tx(&mut s, at(0))).1, b"hello world");
        assert_eq!(s.poll_close(), Some(CloseReason::Completed));
    }
}
