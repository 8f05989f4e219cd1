//! The tcpfile server: one request line, then a file out (GET) or in (PUT).
//!
//! Owns the connection's state machine. GET answers `OK <size>` and then
//! exactly the file's bytes, pulled from its [`Source`] only as the socket
//! takes them. PUT writes what follows the request line to a [`Sink`] —
//! exactly `<size>` bytes, or until the client shuts its write side down —
//! and commits it (making it visible under its name) only when all bytes
//! are in; then it answers `OK <bytes>`. Every other end (EOF before the
//! size, an error, a shutdown) drops the sink, which throws the upload away.
//!
//! Time limits follow [`crate::proto::idle`]: the request line must be
//! complete within `request` of accept; after it, a GET or PUT lives as
//! long as it makes progress (bytes in, bytes taken by the socket).

use crate::proto::data::{FileError, Files, Sink, Source};
use crate::proto::idle::{IdleTimer, TcpTimeouts};
use crate::proto::{
    CloseReason, Context, Driven, FileChunk, StreamAcceptor, StreamInput, StreamSession, Wake,
};
use crate::time::Instant;
use crate::wire::line;
use crate::wire::tcpfile::{MAX_REQUEST, Refusal, Request as FileRequest, Response};
use bytes::BytesMut;
use log::{debug, info};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;

/// Upload bytes gathered before one write to the sink: fewer, larger writes.
const WRITE_CHUNK: usize = 256 * 1024;

enum Job {
    /// Waiting for the request line.
    Request,
    /// Sending `remaining` more bytes of a file of `size` bytes.
    Get {
        source: Box<dyn Source>,
        size: u64,
        remaining: u64,
    },
    /// Receiving into `sink`.
    Put {
        sink: Box<dyn Sink>,
        name: String,
        size: Option<u64>,
        received: u64,
        pending: BytesMut,
    },
    /// Answered; closing.
    Done,
}

/// One tcpfile connection.
pub struct TcpFileStream {
    files: Rc<dyn Files>,
    partial: Vec<u8>,
    out: BytesMut,
    job: Job,
    close: Option<CloseReason>,
    /// Let the reactor `sendfile` a GET instead of reading it through us.
    zero_copy: bool,
    /// Idle and request-line clocks.
    timer: IdleTimer,
}

impl core::fmt::Debug for TcpFileStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpFileStream").finish_non_exhaustive()
    }
}

impl TcpFileStream {
    /// A fresh connection over `files`, accepted at `now`, under the
    /// limits of `timeouts`.
    pub fn new(files: Rc<dyn Files>, now: Instant, timeouts: TcpTimeouts) -> Self {
        Self {
            files,
            partial: Vec::new(),
            out: BytesMut::new(),
            job: Job::Request,
            close: None,
            zero_copy: true,
            timer: IdleTimer::new(now, timeouts),
        }
    }

    /// Whether GET may use the reactor's zero-copy path (on by default;
    /// off reads the file through `poll_transmit`, for comparison).
    #[must_use]
    pub fn with_zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }

    /// Answers and ends the conversation.
    fn finish(&mut self, response: Option<Response<'_>>, reason: CloseReason) {
        if let Some(r) = response {
            r.emit(&mut self.out);
        }
        self.job = Job::Done;
        if self.close.is_none() {
            self.close = Some(reason);
        }
    }

    fn refuse(&mut self, reason: Refusal, name: &str) {
        self.finish(
            Some(Response::Error { reason, name }),
            CloseReason::Protocol(reason.as_str()),
        );
    }

    fn start(&mut self, cx: &Context, line: &[u8]) {
        let Ok(request) = FileRequest::parse(line) else {
            let shown = String::from_utf8_lossy(line).into_owned();
            return self.refuse(Refusal::BadRequest, &shown);
        };
        match request {
            FileRequest::Get { name } => match self.files.open(name) {
                Ok(source) => {
                    let size = source.size().unwrap_or(0);
                    info!("{} GET {name}: {size} bytes", cx.tag);
                    Response::Ok(size).emit(&mut self.out);
                    self.job = if size == 0 {
                        self.close = Some(CloseReason::Completed);
                        Job::Done
                    } else {
                        Job::Get {
                            source,
                            size,
                            remaining: size,
                        }
                    };
                }
                Err(e) => {
                    debug!("{} GET {name}: {e}", cx.tag);
                    self.refuse(refusal(e), name);
                }
            },
            FileRequest::Put { name, size } => match self.files.create(name, size) {
                Ok(sink) => {
                    info!(
                        "{} PUT {name}: {}",
                        cx.tag,
                        size.map_or("until EOF".into(), |s| format!("{s} bytes"))
                    );
                    self.job = Job::Put {
                        sink,
                        name: name.to_owned(),
                        size,
                        received: 0,
                        pending: BytesMut::new(),
                    };
                    if size == Some(0) {
                        self.upload(&[], false);
                    }
                }
                Err(e) => {
                    debug!("{} PUT {name}: {e}", cx.tag);
                    self.refuse(refusal(e), name);
                }
            },
        }
    }

    /// Upload bytes (`eof`: the client shut its write side down).
    fn upload(&mut self, bytes: &[u8], eof: bool) {
        let Job::Put {
            sink,
            name,
            size,
            received,
            pending,
        } = &mut self.job
        else {
            return;
        };
        // Bytes beyond the announced size are not part of the file.
        let take = match size {
            Some(s) => bytes
                .len()
                .min(usize::try_from(*s - *received).unwrap_or(usize::MAX)),
            None => bytes.len(),
        };
        pending.extend_from_slice(&bytes[..take]);
        *received += take as u64;
        let complete = size.map_or(eof, |s| *received == s);
        if pending.len() >= WRITE_CHUNK || complete {
            if let Err(kind) = sink.write_all(pending) {
                let name = name.clone();
                let reason = if kind == ErrorKind::FileTooLarge {
                    Refusal::TooLarge
                } else {
                    Refusal::Failed
                };
                return self.refuse(reason, &name);
            }
            pending.clear();
        }
        if complete {
            let Job::Put { sink, name, .. } = core::mem::replace(&mut self.job, Job::Done) else {
                return;
            };
            match sink.commit() {
                Ok(n) => self.finish(Some(Response::Ok(n)), CloseReason::Completed),
                Err(ErrorKind::AlreadyExists) => self.refuse(Refusal::Exists, &name),
                Err(_) => self.refuse(Refusal::Failed, &name),
            }
        } else if eof {
            // EOF before the announced size: the upload is thrown away.
            let name = name.clone();
            self.refuse(Refusal::Short, &name);
        }
    }
}

fn refusal(e: FileError) -> Refusal {
    match e {
        FileError::Forbidden => Refusal::Forbidden,
        FileError::NotFound => Refusal::NotFound,
        FileError::Exists => Refusal::Exists,
        FileError::TooLarge => Refusal::TooLarge,
        FileError::Io(_) => Refusal::Failed,
    }
}

impl Driven for TcpFileStream {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if matches!(self.job, Job::Done) {
            return;
        }
        if let Some(expired) = self.timer.on_timeout(cx.now) {
            debug!("{} {}: closing", cx.tag, expired.as_str());
            // A PUT in progress is dropped with its sink: nothing is stored.
            self.finish(None, CloseReason::TimedOut { tries: 1 });
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.job, Job::Done) {
            None
        } else {
            self.timer.poll_timeout()
        }
    }

    /// The idle and request limits may fire a little late, never early.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl StreamSession for TcpFileStream {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        // Bytes after a GET's request are discarded: they are no progress.
        if let StreamInput::Bytes(bytes) = input
            && !bytes.is_empty()
            && matches!(self.job, Job::Request | Job::Put { .. })
        {
            self.timer.touch(cx.now);
        }
        match input {
            StreamInput::Bytes(bytes) => match self.job {
                Job::Request => {
                    let joined;
                    let buf = if self.partial.is_empty() {
                        bytes
                    } else {
                        self.partial.extend_from_slice(bytes);
                        joined = core::mem::take(&mut self.partial);
                        &joined[..]
                    };
                    match line::split(buf, MAX_REQUEST) {
                        Ok(Some(l)) => {
                            self.timer.end_request();
                            self.start(cx, &buf[..l.len]);
                            let rest = &buf[l.consumed..];
                            if matches!(self.job, Job::Put { .. }) && !rest.is_empty() {
                                self.upload(rest, false);
                            }
                        }
                        Ok(None) => self.partial = buf.to_vec(),
                        Err(_) => self.refuse(Refusal::BadRequest, "(request line too long)"),
                    }
                }
                Job::Put { .. } => self.upload(bytes, false),
                // After the request only a PUT's bytes matter.
                Job::Get { .. } | Job::Done => {}
            },
            StreamInput::End => match self.job {
                Job::Put { .. } => self.upload(&[], true),
                Job::Request => self.finish(None, CloseReason::PeerClosed),
                // A GET client may half-close after its request.
                Job::Get { .. } | Job::Done => {}
            },
            StreamInput::Failed(_) => self.finish(None, CloseReason::Aborted),
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
        let Job::Get {
            source, remaining, ..
        } = &mut self.job
        else {
            return None;
        };
        if self.zero_copy && source.file_fd().is_some() {
            // The reactor sends the file itself (poll_file).
            return None;
        }
        let max = usize::try_from(*remaining).unwrap_or(usize::MAX).min(limit);
        match source.read_into(buf, max) {
            Ok(0) | Err(_) => {
                // The file shrank or failed under us: the client sees a short
                // transfer (it knows the size), never wrong bytes.
                self.finish(None, CloseReason::Aborted);
                None
            }
            Ok(n) => {
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.finish(None, CloseReason::Completed);
                }
                self.timer.touch(cx.now);
                Some(n)
            }
        }
    }

    fn poll_file(&mut self) -> Option<FileChunk> {
        let Job::Get {
            source,
            size,
            remaining,
        } = &self.job
        else {
            return None;
        };
        let fd = source
            .file_fd()
            .filter(|_| self.zero_copy && self.out.is_empty())?;
        Some(FileChunk {
            fd,
            offset: size - remaining,
            len: *remaining,
        })
    }

    fn advance_file(&mut self, cx: &mut Context, n: u64) {
        if n > 0 {
            self.timer.touch(cx.now);
        }
        if let Job::Get { remaining, .. } = &mut self.job {
            *remaining = remaining.saturating_sub(n);
            if *remaining == 0 {
                self.finish(None, CloseReason::Completed);
            }
        }
    }
}

/// The acceptor on tcpfile's TCP listener.
pub struct TcpFileAcceptor {
    files: Rc<dyn Files>,
    zero_copy: bool,
    timeouts: TcpTimeouts,
}

impl core::fmt::Debug for TcpFileAcceptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpFileAcceptor").finish_non_exhaustive()
    }
}

impl TcpFileAcceptor {
    /// Connections over `files`.
    pub fn new(files: Rc<dyn Files>) -> Self {
        Self {
            files,
            zero_copy: true,
            timeouts: TcpTimeouts::default(),
        }
    }

    /// Whether GET may use zero-copy `sendfile` (see [`TcpFileStream::with_zero_copy`]).
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
impl Driven for TcpFileAcceptor {}

impl StreamAcceptor for TcpFileAcceptor {
    fn accept(&mut self, cx: &mut Context, _peer: SocketAddr) -> Option<Box<dyn StreamSession>> {
        Some(Box::new(
            TcpFileStream::new(self.files.clone(), cx.now, self.timeouts)
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
        "127.0.0.1:5000".parse().unwrap()
    }

    fn session(files: &MemoryFiles) -> TcpFileStream {
        TcpFileStream::new(Rc::new(files.clone()), at(0), TcpTimeouts::default())
    }

    fn run(files: &MemoryFiles, chunks: &[&[u8]], eof: bool) -> (Vec<u8>, Option<CloseReason>) {
        let mut s = session(files);
        for c in chunks {
            feed(&mut s, at(0), peer(), StreamInput::Bytes(c));
        }
        if eof {
            feed(&mut s, at(0), peer(), StreamInput::End);
        }
        let out = drain_tx(&mut s, at(0));
        (out, s.poll_close())
    }

    #[test]
    fn get_sends_ok_size_then_exactly_the_file() {
        let files = MemoryFiles::default();
        let body: Vec<u8> = (0..=u8::MAX).cycle().take(200_000).collect();
        files.insert("big.bin", body.clone());
        let (out, req) = run(&files, &[b"big.bin : GET\n"], false);
        assert!(out.starts_with(b"OK 200000\n"));
        assert_eq!(&out[10..], &body[..]);
        assert_eq!(req, Some(CloseReason::Completed));
        let (out, _) = run(&files, &[b"empty:GET\n"], false);
        assert_eq!(out, b"ERROR not found: empty\n");
        files.insert("empty", Vec::new());
        let (out, req) = run(&files, &[b"emp", b"ty:GET\n"], false);
        assert_eq!(out, b"OK 0\n");
        assert_eq!(req, Some(CloseReason::Completed));
    }

    #[test]
    fn refusals_are_exact_lines() {
        let files = MemoryFiles::default();
        files.insert("there", b"x".to_vec());
        assert_eq!(
            run(&files, &[b"missing:GET\n"], false).0,
            b"ERROR not found: missing\n"
        );
        assert_eq!(
            run(&files, &[b"../etc/passwd:GET\n"], false).0,
            b"ERROR forbidden: ../etc/passwd\n"
        );
        assert_eq!(
            run(&files, &[b"there:PUT:1\nx"], false).0,
            b"ERROR exists: there\n"
        );
        assert_eq!(
            run(&files, &[b"nonsense\n"], false).0,
            b"ERROR bad request: nonsense\n"
        );
        let (out, req) = run(&files, &[&[b'a'; 2000]], false);
        assert!(out.starts_with(b"ERROR bad request"));
        assert!(req.is_some());
    }

    #[test]
    fn put_with_size_commits_exactly_size_bytes_in_any_pieces() {
        let files = MemoryFiles::default();
        let (out, req) = run(
            &files,
            &[b"up.txt:PU", b"T:11\nhello", b" world and more"],
            false,
        );
        assert_eq!(out, b"OK 11\n");
        assert_eq!(req, Some(CloseReason::Completed));
        assert_eq!(files.get("up.txt").unwrap(), b"hello world");
    }

    #[test]
    fn put_without_size_ends_at_eof_and_zero_bytes_work() {
        let files = MemoryFiles::default();
        let (out, _) = run(&files, &[b"a:PUT\n", &vec![7u8; 300_000]], true);
        assert_eq!(out, b"OK 300000\n");
        assert_eq!(files.get("a").unwrap().len(), 300_000);
        let (out, _) = run(&files, &[b"zero:PUT:0\n"], false);
        assert_eq!(out, b"OK 0\n");
        assert_eq!(files.get("zero").unwrap(), b"");
    }

    #[test]
    fn short_upload_leaves_nothing() {
        let files = MemoryFiles::default();
        let (out, _) = run(&files, &[b"half:PUT:100\n", &[1u8; 50]], true);
        assert_eq!(out, b"ERROR short: half\n");
        assert_eq!(files.get("half"), None);
        // A connection that just drops (reset) leaves nothing either.
        let mut s = session(&files);
        feed(
            &mut s,
            at(0),
            peer(),
            StreamInput::Bytes(b"gone:PUT:100\nabc"),
        );
        feed(
            &mut s,
            at(0),
            peer(),
            StreamInput::Failed(ErrorKind::ConnectionReset),
        );
        drop(s);
        assert_eq!(files.get("gone"), None);
    }

    #[test]
    fn size_limit_up_front_and_while_receiving() {
        let mut files = MemoryFiles::default();
        files.max_file_size = Some(10);
        assert_eq!(
            run(&files, &[b"big:PUT:11\n"], false).0,
            b"ERROR too large: big\n"
        );
        let (out, _) = run(&files, &[b"big:PUT\n", &[0u8; 11]], true);
        assert_eq!(out, b"ERROR too large: big\n");
        assert_eq!(files.get("big"), None);
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn ns_before(t: Instant) -> Instant {
        Instant::from_nanos(t.as_nanos() - 1)
    }

    fn limited(files: &MemoryFiles, idle_ms: u64, request_ms: u64) -> TcpFileStream {
        let timeouts = TcpTimeouts {
            idle: Duration::from_millis(idle_ms),
            request: Duration::from_millis(request_ms),
        };
        TcpFileStream::new(Rc::new(files.clone()), ms(0), timeouts)
    }

    #[test]
    fn a_connection_that_never_sends_closes_at_exactly_the_first_limit() {
        let files = MemoryFiles::default();
        let mut s = limited(&files, 300, 10_000);
        assert_eq!(s.poll_timeout(), Some(ms(300)), "armed from accept");
        assert_eq!(timed_out_by(&mut s, ns_before(ms(300))), None);
        assert_eq!(timed_out_by(&mut s, ms(60_000)), Some(ms(300)));
        let mut s = limited(&files, 300_000, 10_000);
        assert_eq!(timed_out_by(&mut s, ms(600_000)), Some(ms(10_000)));
    }

    #[test]
    fn a_request_line_trickled_at_one_byte_a_second_closes_at_the_request_limit() {
        let files = MemoryFiles::default();
        let mut s = limited(&files, 300_000, 10_000);
        let line = b"a-rather-long-file-name.txt:PUT:5\n";
        let mut closed = None;
        for (i, b) in line.iter().enumerate() {
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
    fn a_put_that_makes_progress_lives_and_a_stalled_one_stores_nothing() {
        let files = MemoryFiles::default();
        let mut s = limited(&files, 1_000, 2_000);
        feed(&mut s, ms(0), peer(), StreamInput::Bytes(b"up:PUT:1000\n"));
        // 10 bytes every 900 ms for 18 s: past both limits, still alive.
        for i in 1..=20u64 {
            assert_eq!(timed_out_by(&mut s, ms(900 * i)), None, "{i}");
            feed(&mut s, ms(900 * i), peer(), StreamInput::Bytes(&[1; 10]));
        }
        assert_eq!(timed_out_by(&mut s, ms(60_000)), Some(ms(19_000)));
        assert_eq!(drain_tx(&mut s, ms(19_000)), b"", "no answer");
        drop(s);
        assert_eq!(files.get("up"), None, "nothing stored");
    }

    #[test]
    fn a_get_whose_reader_stops_closes_one_idle_limit_after_its_last_read() {
        let files = MemoryFiles::default();
        files.insert("f", vec![5; 100_000]);
        let mut s = limited(&files, 1_000, 10_000);
        feed(&mut s, ms(0), peer(), StreamInput::Bytes(b"f:GET\n"));
        let take = |s: &mut TcpFileStream, now| {
            s.poll_transmit(&mut cx(now, None), 10_000, &mut BytesMut::new())
        };
        // The socket takes 10 kB every 700 ms: alive well past the limit.
        for i in 0..5u64 {
            assert!(take(&mut s, ms(700 * i)).is_some());
        }
        // Then the reader stops (the reactor's buffer is full: no more calls).
        assert_eq!(timed_out_by(&mut s, ms(60_000)), Some(ms(3_800)));
    }

    /// A store whose uploads all fail at the final rename with `kind`.
    struct FailingCommit(ErrorKind);

    struct FailingSink(ErrorKind);

    impl Sink for FailingSink {
        fn write_all(&mut self, _: &[u8]) -> Result<(), ErrorKind> {
            Ok(())
        }
        fn commit(self: Box<Self>) -> Result<u64, ErrorKind> {
            Err(self.0)
        }
    }

    impl Files for FailingCommit {
        fn open(&self, _: &str) -> Result<Box<dyn Source>, FileError> {
            Err(FileError::NotFound)
        }
        fn create(&self, _: &str, _: Option<u64>) -> Result<Box<dyn Sink>, FileError> {
            Ok(Box::new(FailingSink(self.0)))
        }
    }

    #[test]
    fn a_failed_commit_is_answered_with_an_error_never_ok() {
        for (kind, line) in [
            (ErrorKind::AlreadyExists, &b"ERROR exists: f\n"[..]),
            (ErrorKind::StorageFull, b"ERROR failed: f\n"),
            (ErrorKind::PermissionDenied, b"ERROR failed: f\n"),
        ] {
            let mut s =
                TcpFileStream::new(Rc::new(FailingCommit(kind)), at(0), TcpTimeouts::default());
            feed(&mut s, at(0), peer(), StreamInput::Bytes(b"f:PUT:3\nabc"));
            assert_eq!(drain_tx(&mut s, at(0)), line, "{kind:?}");
            assert_eq!(
                s.poll_close(),
                Some(CloseReason::Protocol(if kind == ErrorKind::AlreadyExists {
                    "exists"
                } else {
                    "failed"
                }))
            );
        }
    }

    #[test]
    fn two_uploads_of_one_new_name_the_second_to_finish_is_refused() {
        let files = MemoryFiles::default();
        let (mut a, mut b) = (session(&files), session(&files));
        // Both requests are in before either body is complete.
        feed(&mut a, at(0), peer(), StreamInput::Bytes(b"n:PUT:4\naa"));
        feed(&mut b, at(0), peer(), StreamInput::Bytes(b"n:PUT:4\nbb"));
        assert_eq!(drain_tx(&mut a, at(0)), b"");
        assert_eq!(drain_tx(&mut b, at(0)), b"");
        feed(&mut b, at(1), peer(), StreamInput::Bytes(b"bb"));
        feed(&mut a, at(2), peer(), StreamInput::Bytes(b"aa"));
        assert_eq!(drain_tx(&mut b, at(2)), b"OK 4\n");
        assert_eq!(drain_tx(&mut a, at(2)), b"ERROR exists: n\n");
        assert_eq!(files.get("n").unwrap(), b"bbbb");
    }
}
