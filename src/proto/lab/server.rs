//! The lab server: request lines over TCP, one request per datagram over UDP.
//!
//! Owns what the server answers and when:
//! * **TCP** ([`LabStream`]): echo lines (kept open), or one file or stream
//!   after which the connection closes (end of transmission is EOF).
//!   Output is produced only as the reactor asks for it, so a 123 MB file
//!   never sits in memory and never blocks other sessions.
//! * **UDP**: echo is answered statelessly by [`LabAcceptor`]; a file or a
//!   stream gets a per-peer [`LabDatagrams`] session on the same socket,
//!   which sends as the schedule and the peer's send budget
//!   (`proto::budget`) allow.
//!
//! Error lines: `ERROR file too large: limit <file_max>` (the spec's exact
//! text) and `ERROR <reason>` for malformed requests; over TCP the
//! connection stays open after an error, so the client may try again.

use super::LabConfig;
use super::schedule::Schedule;
use crate::proto::{
    Acceptor, Admission, CloseReason, Context, Input, Request, Session, Side, Transmit,
};
use crate::time::Instant;
use crate::wire::lab::{
    Request as LabRequest, SEGMENT_HEADER_LEN, SegmentHeader, StreamSpec, pattern_run,
};
use crate::wire::line;
use bytes::BytesMut;
use core::fmt::Write as _;
use log::debug;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// A stream segment being produced: header + zero filler, emitted in
/// pieces as the transmit limit allows.
#[derive(Clone, Copy, Debug)]
struct Segment {
    header: [u8; SEGMENT_HEADER_LEN],
    size: usize,
    emitted: usize,
}

impl Segment {
    fn new(seq: u64, sched_ns: u64, size: u32) -> Self {
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        SegmentHeader { seq, sched_ns }.emit(&mut header);
        Self {
            header,
            size: size as usize,
            emitted: 0,
        }
    }

    /// Appends up to `limit` more bytes of the segment; returns how many.
    fn emit(&mut self, limit: usize, buf: &mut BytesMut) -> usize {
        let n = limit.min(self.size - self.emitted);
        let end = self.emitted + n;
        if self.emitted < SEGMENT_HEADER_LEN {
            buf.extend_from_slice(&self.header[self.emitted..end.min(SEGMENT_HEADER_LEN)]);
        }
        let filler = end.saturating_sub(self.emitted.max(SEGMENT_HEADER_LEN));
        buf.resize(buf.len() + filler, 0);
        self.emitted = end;
        n
    }

    fn is_done(&self) -> bool {
        self.emitted == self.size
    }
}

/// What a TCP connection is doing.
#[derive(Debug)]
enum Job {
    /// Reading request lines; echo answers go to `out`.
    Lines,
    /// Sending `len` bytes of the pattern; `offset` are out already.
    File { offset: u64, len: u64 },
    /// Sending a paced stream; `current` is a segment partly emitted.
    Stream {
        schedule: Schedule,
        size: u32,
        current: Option<Segment>,
    },
    /// The file or stream is out; closing.
    Done,
}

/// The line that refuses a file above `file_max`, exactly as the spec has it.
fn file_too_large(limit: u64) -> String {
    format!("ERROR file too large: limit {limit}")
}

/// One lab TCP connection.
#[derive(Debug)]
pub struct LabStream {
    config: LabConfig,
    partial: Vec<u8>,
    out: BytesMut,
    job: Job,
    now: Instant,
    close: Option<CloseReason>,
}

impl LabStream {
    /// A fresh connection.
    pub fn new(config: LabConfig) -> Self {
        Self {
            config,
            partial: Vec::new(),
            out: BytesMut::new(),
            job: Job::Lines,
            now: Instant::ZERO,
            close: None,
        }
    }

    fn finish(&mut self, reason: CloseReason) {
        if self.close.is_none() && !matches!(self.job, Job::Done) {
            self.close = Some(reason);
        }
        self.job = Job::Done;
    }

    /// Handles the request lines at the front of `buf`; returns bytes used.
    fn handle_lines(&mut self, cx: &Context<'_>, buf: &[u8]) -> usize {
        let mut pos = 0;
        while matches!(self.job, Job::Lines) {
            let l = match line::split(&buf[pos..], self.config.line_max) {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(_) => {
                    let _ = writeln!(
                        self.out,
                        "ERROR line too long: limit {}",
                        self.config.line_max
                    );
                    self.finish(CloseReason::Protocol("line too long"));
                    return buf.len();
                }
            };
            let raw = &buf[pos..pos + l.consumed];
            let request = &buf[pos..pos + l.len];
            pos += l.consumed;
            match LabRequest::parse(request) {
                // Echo is byte for byte: the line with its terminator.
                Ok(LabRequest::Echo(_)) => self.out.extend_from_slice(raw),
                Ok(LabRequest::File(n)) if n > self.config.file_max => {
                    let _ = writeln!(self.out, "{}", file_too_large(self.config.file_max));
                }
                Ok(LabRequest::File(n)) => {
                    debug!("{} file of {n} bytes", cx.tag);
                    let _ = writeln!(self.out, "READY {n}");
                    self.job = Job::File { offset: 0, len: n };
                }
                Ok(LabRequest::Stream(spec)) if spec.size > self.config.tcp_segment_max => {
                    let _ = writeln!(
                        self.out,
                        "ERROR bad stream request: size must be 16..={} over TCP",
                        self.config.tcp_segment_max
                    );
                }
                Ok(LabRequest::Stream(spec)) => {
                    let count = spec.count.min(self.config.stream_max_count);
                    debug!(
                        "{} stream of {count} × {} B every {} ns",
                        cx.tag, spec.size, spec.interval_ns
                    );
                    self.job = Job::Stream {
                        schedule: Schedule::new(cx.now, spec.interval_ns, count),
                        size: spec.size,
                        current: None,
                    };
                }
                Err(bad) => {
                    let _ = writeln!(self.out, "ERROR {bad}");
                }
            }
        }
        pos
    }
}

impl Session for LabStream {
    fn side(&self) -> Side {
        Side::Server
    }

    fn handle_input(&mut self, cx: &mut Context<'_>, input: Input<'_>) {
        self.now = cx.now;
        match input {
            // After a file or stream request the rest of the input is
            // ignored (read and dropped, so closing never resets).
            Input::Stream(_) if !matches!(self.job, Job::Lines) => {}
            Input::Stream(bytes) if self.partial.is_empty() => {
                let used = self.handle_lines(cx, bytes);
                if matches!(self.job, Job::Lines) {
                    self.partial.extend_from_slice(&bytes[used..]);
                }
            }
            Input::Stream(bytes) => {
                // `partial` < line_max, and `split` errs as soon as line_max
                // bytes hold no newline, so this join is bounded.
                let mut joined = core::mem::take(&mut self.partial);
                let room = self.config.line_max.saturating_sub(joined.len());
                let (head, tail) = bytes.split_at(bytes.len().min(room));
                joined.extend_from_slice(head);
                let used = self.handle_lines(cx, &joined);
                if matches!(self.job, Job::Lines) {
                    joined.drain(..used);
                    self.partial = joined;
                    if !tail.is_empty() {
                        self.handle_input(cx, Input::Stream(tail));
                    }
                }
            }
            Input::StreamEnd => {
                // A client that half-closes after its request still gets
                // the file or stream; an idle one is done.
                if matches!(self.job, Job::Lines) {
                    self.finish(CloseReason::PeerClosed);
                }
            }
            Input::Failed(_) => self.finish(CloseReason::Aborted),
            Input::Datagram { .. } => {}
        }
    }

    fn handle_timeout(&mut self, cx: &mut Context<'_>) {
        self.now = cx.now;
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context<'_>,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        self.now = cx.now;
        if limit == 0 {
            return None;
        }
        if !self.out.is_empty() {
            let len = self.out.len().min(limit);
            buf.extend_from_slice(&self.out.split_to(len));
            return Some(Transmit { to: None, len });
        }
        let len = match &mut self.job {
            Job::Lines | Job::Done => return None,
            Job::File { offset, len } => {
                let run = pattern_run(
                    *offset,
                    limit.min(usize::try_from(*len - *offset).unwrap_or(usize::MAX)),
                );
                buf.extend_from_slice(run);
                *offset += run.len() as u64;
                if *offset == *len {
                    self.finish(CloseReason::Completed);
                }
                run.len()
            }
            Job::Stream {
                schedule,
                size,
                current,
            } => {
                if current.is_none() {
                    let (seq, sched_ns) = schedule.pop_due(cx.now)?;
                    *current = Some(Segment::new(seq, sched_ns, *size));
                }
                let segment = current.as_mut()?;
                let n = segment.emit(limit, buf);
                if segment.is_done() {
                    *current = None;
                    if schedule.is_done() {
                        self.finish(CloseReason::Completed);
                    }
                }
                n
            }
        };
        Some(Transmit { to: None, len })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.job {
            // A segment that is due already waits for room, not for time.
            Job::Stream {
                schedule,
                current: None,
                ..
            } => schedule.next_due().filter(|&at| at > self.now),
            _ => None,
        }
    }

    fn poll_request(&mut self) -> Option<Request> {
        self.close.take().map(Request::Close)
    }

    /// Stop reading while echo answers pile up unread.
    fn wants_input(&self) -> bool {
        self.out.len() < self.config.line_max.max(64 * 1024)
    }

    fn is_paced(&self) -> bool {
        matches!(&self.job, Job::Stream { schedule, .. } if schedule.is_paced())
    }
}

/// The next datagram of a [`LabDatagrams`] job.
enum Next {
    /// `READY n` or `DONE n`.
    Line(String),
    /// A run of the pattern.
    Data,
    /// A stream segment.
    Segment,
}

/// What a per-peer UDP session sends.
#[derive(Debug)]
enum UdpJob {
    /// `READY n`, then the pattern in `segment`-byte datagrams, then `DONE n`.
    File {
        ready_sent: bool,
        offset: u64,
        len: u64,
    },
    /// One datagram per due segment.
    Stream {
        schedule: Schedule,
        size: u32,
    },
    Done,
}

/// A file or stream to one UDP peer, on the server's shared socket.
#[derive(Debug)]
pub struct LabDatagrams {
    config: LabConfig,
    peer: SocketAddr,
    job: UdpJob,
    /// Answers to datagrams that arrived while the job runs.
    replies: VecDeque<Vec<u8>>,
    /// The send budget ran dry; try again then.
    blocked_until: Option<Instant>,
    now: Instant,
    close: Option<CloseReason>,
}

impl LabDatagrams {
    fn new(config: LabConfig, peer: SocketAddr, job: UdpJob, now: Instant) -> Self {
        Self {
            config,
            peer,
            job,
            replies: VecDeque::new(),
            blocked_until: None,
            now,
            close: None,
        }
    }

    /// A generated file of `len` bytes for `peer`.
    pub fn file(config: LabConfig, peer: SocketAddr, len: u64, now: Instant) -> Self {
        Self::new(
            config,
            peer,
            UdpJob::File {
                ready_sent: false,
                offset: 0,
                len,
            },
            now,
        )
    }

    /// A stream for `peer`, starting at `now`.
    pub fn stream(config: LabConfig, peer: SocketAddr, spec: StreamSpec, now: Instant) -> Self {
        let count = spec.count.min(config.stream_max_count);
        let job = UdpJob::Stream {
            schedule: Schedule::new(now, spec.interval_ns, count),
            size: spec.size,
        };
        Self::new(config, peer, job, now)
    }

    /// Takes `len` bytes from the peer's budget, or notes when to retry.
    fn budget(&mut self, cx: &mut Context<'_>, len: usize) -> bool {
        match cx
            .shared
            .udp_budget
            .take(self.peer.ip(), len as u64, cx.now)
        {
            Ok(()) => {
                self.blocked_until = None;
                true
            }
            Err(at) => {
                self.blocked_until = Some(at);
                false
            }
        }
    }
}

impl Session for LabDatagrams {
    fn side(&self) -> Side {
        Side::Server
    }

    fn handle_input(&mut self, cx: &mut Context<'_>, input: Input<'_>) {
        self.now = cx.now;
        let Input::Datagram { payload, .. } = input else {
            return;
        };
        if payload.is_empty() || self.replies.len() >= 64 {
            return;
        }
        // The datagram that created this session arrives here first: the
        // job already answers it.
        let reply = match LabRequest::parse(payload) {
            Ok(LabRequest::Echo(bytes)) => bytes.to_vec(),
            Ok(LabRequest::File(_) | LabRequest::Stream(_)) if !self.has_started() => return,
            Ok(LabRequest::File(_) | LabRequest::Stream(_)) => {
                b"ERROR busy: a transfer to this address is running".to_vec()
            }
            Err(bad) => format!("ERROR {bad}").into_bytes(),
        };
        self.replies.push_back(reply);
    }

    fn handle_timeout(&mut self, cx: &mut Context<'_>) {
        self.now = cx.now;
        if self.blocked_until.is_some_and(|at| at <= cx.now) {
            self.blocked_until = None;
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context<'_>,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        self.now = cx.now;
        let to = Some(self.peer);
        if let Some(reply) = self.replies.pop_front() {
            buf.extend_from_slice(&reply);
            return Some(Transmit {
                to,
                len: reply.len(),
            });
        }
        if self.blocked_until.is_some_and(|at| at > cx.now) {
            return None;
        }
        // Decide what goes next, then check the budget, then commit.
        let (len, next) = match &self.job {
            UdpJob::Done => return None,
            UdpJob::File {
                ready_sent: false,
                len,
                ..
            } => {
                let line = format!("READY {len}");
                (line.len(), Next::Line(line))
            }
            UdpJob::File { offset, len, .. } if offset == len => {
                let line = format!("DONE {len}");
                (line.len(), Next::Line(line))
            }
            UdpJob::File { offset, len, .. } => {
                let remaining = usize::try_from(len - offset).unwrap_or(usize::MAX);
                let n = remaining.min(self.config.segment).min(limit);
                (n, Next::Data)
            }
            UdpJob::Stream { schedule, size } => {
                if schedule.next_due().is_none_or(|at| at > cx.now) || *size as usize > limit {
                    return None;
                }
                (*size as usize, Next::Segment)
            }
        };
        if !self.budget(cx, len) {
            return None;
        }
        match (&mut self.job, next) {
            (UdpJob::File { ready_sent, .. }, Next::Line(line)) if !*ready_sent => {
                *ready_sent = true;
                buf.extend_from_slice(line.as_bytes());
            }
            (UdpJob::File { .. }, Next::Line(line)) => {
                buf.extend_from_slice(line.as_bytes());
                self.job = UdpJob::Done;
                self.close = Some(CloseReason::Completed);
            }
            (UdpJob::File { offset, .. }, Next::Data) => {
                buf.extend_from_slice(pattern_run(*offset, len));
                *offset += len as u64;
            }
            (UdpJob::Stream { schedule, size }, Next::Segment) => {
                let (seq, sched_ns) = schedule.pop_due(cx.now)?;
                Segment::new(seq, sched_ns, *size).emit(usize::MAX, buf);
                if schedule.is_done() {
                    self.job = UdpJob::Done;
                    self.close = Some(CloseReason::Completed);
                }
            }
            _ => return None,
        }
        Some(Transmit { to, len })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let next = match &self.job {
            UdpJob::Stream { schedule, .. } => schedule.next_due().filter(|&at| at > self.now),
            _ => None,
        };
        match (self.blocked_until, next) {
            (Some(b), Some(n)) => Some(b.max(n)),
            (Some(b), None) => Some(b),
            (None, n) => n,
        }
    }

    fn poll_request(&mut self) -> Option<Request> {
        // Close only once the queued replies are out.
        if self.replies.is_empty() {
            self.close.take().map(Request::Close)
        } else {
            None
        }
    }

    fn is_paced(&self) -> bool {
        matches!(&self.job, UdpJob::Stream { schedule, .. } if schedule.is_paced())
            && self.blocked_until.is_none()
    }
}

impl LabDatagrams {
    /// Whether anything of the job has been sent (the first datagram of a
    /// session is the request that created it).
    fn has_started(&self) -> bool {
        match &self.job {
            UdpJob::File { ready_sent, .. } => *ready_sent,
            UdpJob::Stream { schedule, .. } => schedule.sent() > 0,
            UdpJob::Done => true,
        }
    }
}

/// The acceptor on lab's TCP listener and UDP socket.
#[derive(Debug, Default)]
pub struct LabAcceptor {
    config: LabConfig,
}

impl LabAcceptor {
    /// An acceptor with these limits.
    pub fn new(config: LabConfig) -> Self {
        Self { config }
    }
}

impl Acceptor for LabAcceptor {
    fn accept_stream(
        &mut self,
        _cx: &mut Context<'_>,
        _peer: SocketAddr,
    ) -> Option<Box<dyn Session>> {
        Some(Box::new(LabStream::new(self.config)))
    }

    fn accept_datagram(
        &mut self,
        cx: &mut Context<'_>,
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
                Admission::Shared(Box::new(LabDatagrams::file(self.config, from, n, cx.now)))
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
                Admission::Shared(Box::new(LabDatagrams::stream(
                    self.config,
                    from,
                    spec,
                    cx.now,
                )))
            }
            Err(bad) => refuse(reply, &format!("ERROR {bad}")),
        }
    }
}
