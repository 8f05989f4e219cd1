//! The lab server: request lines over TCP, one request per datagram over UDP.
//!
//! Owns what the server answers and when:
//! * **TCP** ([`LabStream`]): echo lines (kept open), or one file or stream
//!   after which the connection closes (end of transmission is EOF).
//!   Output is produced only as the reactor asks for it, so a 123 MB file
//!   never sits in memory and never blocks other sessions.
//! * **UDP**: echo is answered statelessly by [`LabDatagramAcceptor`]; a
//!   file or a stream gets a per-peer [`LabDatagrams`] session on the same
//!   socket, which sends as the schedule and the peer's send budget
//!   (`proto::budget`, a [`SharedBudget`] the acceptor lends it) allow.
//!
//! Error lines: `ERROR file too large: limit <file_max>` (the spec's exact
//! text) and `ERROR <reason>` for malformed requests; over TCP the
//! connection stays open after an error, so the client may try again.
//!
//! A TCP connection lives under [`crate::proto::idle`]'s limits: each
//! request line must be complete within `request` of its first byte (the
//! first line's from accept), and the connection closes after `idle`
//! without progress. While a stream waits for its own schedule the peer
//! has nothing to take, so that wait is not idleness.

use super::LabConfig;
use super::schedule::Schedule;
use crate::proto::budget::SharedBudget;
use crate::proto::idle::{IdleTimer, TcpTimeouts};
use crate::proto::{
    Admission, CloseReason, Context, DatagramAcceptor, DatagramInput, DatagramSession, Driven,
    StreamAcceptor, StreamInput, StreamSession, Transmit, Wake,
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
    /// Idle and request-line clocks.
    timer: IdleTimer,
}

impl LabStream {
    /// A fresh connection, accepted at `now`, under the limits of `timeouts`.
    pub fn new(config: LabConfig, now: Instant, timeouts: TcpTimeouts) -> Self {
        Self {
            config,
            partial: Vec::new(),
            out: BytesMut::new(),
            job: Job::Lines,
            now,
            close: None,
            timer: IdleTimer::new(now, timeouts),
        }
    }

    /// When a stream that has handed out every segment due by `now` has
    /// the next one ready: until then the peer has nothing to take.
    fn waits_for_schedule(&self, now: Instant) -> Option<Instant> {
        match &self.job {
            Job::Stream {
                schedule,
                current: None,
                ..
            } if self.out.is_empty() => schedule.next_due().filter(|&at| at > now),
            _ => None,
        }
    }

    /// The pacing deadline of a stream, when it has one ahead.
    fn schedule_deadline(&self) -> Option<Instant> {
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

    fn finish(&mut self, reason: CloseReason) {
        if self.close.is_none() && !matches!(self.job, Job::Done) {
            self.close = Some(reason);
        }
        self.job = Job::Done;
    }

    /// Handles the request lines at the front of `buf`; returns bytes used.
    fn handle_lines(&mut self, cx: &Context, buf: &[u8]) -> usize {
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
            self.timer.end_request();
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

impl Driven for LabStream {
    fn handle_timeout(&mut self, cx: &mut Context) {
        self.now = cx.now;
        if matches!(self.job, Job::Done) {
            return;
        }
        if let Some(next) = self.waits_for_schedule(cx.now) {
            // The peer cannot fall behind before there is something to take.
            self.timer.touch(next);
        }
        if let Some(expired) = self.timer.on_timeout(cx.now) {
            debug!("{} {}: closing", cx.tag, expired.as_str());
            self.finish(CloseReason::TimedOut { tries: 1 });
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.job, Job::Done) {
            return None;
        }
        match (self.schedule_deadline(), self.timer.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The idle and request limits may fire a little late, never early;
    /// a stream's own schedule, when it is the earlier deadline, is worth
    /// a spin.
    fn wake(&self) -> Wake {
        let Job::Stream { schedule, .. } = &self.job else {
            return Wake::Coarse;
        };
        let idle_first = self
            .timer
            .poll_timeout()
            .zip(self.schedule_deadline())
            .is_some_and(|(t, at)| t < at);
        if idle_first {
            Wake::Coarse
        } else if schedule.is_paced() {
            Wake::Paced
        } else {
            Wake::Exact
        }
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }

    /// Stop reading while echo answers pile up unread.
    fn wants_input(&self) -> bool {
        self.out.len() < self.config.line_max.max(64 * 1024)
    }
}

impl StreamSession for LabStream {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        self.now = cx.now;
        // Bytes after a file or stream request are dropped: no progress.
        if let StreamInput::Bytes(bytes) = input
            && !bytes.is_empty()
            && matches!(self.job, Job::Lines)
        {
            self.timer.touch(cx.now);
            self.read_lines(cx, bytes);
            if matches!(self.job, Job::Lines) && !self.partial.is_empty() {
                self.timer.begin_request(cx.now);
            }
            return;
        }
        match input {
            // After a file or stream request the rest of the input is
            // ignored (read and dropped, so closing never resets).
            StreamInput::Bytes(_) => {}
            StreamInput::End => {
                // A client that half-closes after its request still gets
                // the file or stream; an idle one is done.
                if matches!(self.job, Job::Lines) {
                    self.finish(CloseReason::PeerClosed);
                }
            }
            StreamInput::Failed(_) => self.finish(CloseReason::Aborted),
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        let sent = self.transmit(cx, limit, buf);
        if sent.is_some() {
            self.timer.touch(cx.now);
        }
        sent
    }
}

impl LabStream {
    /// Handles request-line bytes, joined with any partial line kept.
    fn read_lines(&mut self, cx: &Context, bytes: &[u8]) {
        if self.partial.is_empty() {
            let used = self.handle_lines(cx, bytes);
            if matches!(self.job, Job::Lines) {
                self.partial.extend_from_slice(&bytes[used..]);
            }
            return;
        }
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
                self.read_lines(cx, tail);
            }
        }
    }

    /// The output of `poll_transmit`, before progress is noted.
    fn transmit(&mut self, cx: &Context, limit: usize, buf: &mut BytesMut) -> Option<usize> {
        self.now = cx.now;
        if limit == 0 {
            return None;
        }
        if !self.out.is_empty() {
            let len = self.out.len().min(limit);
            buf.extend_from_slice(&self.out.split_to(len));
            return Some(len);
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
        Some(len)
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
    /// The process-wide send budget for unvalidated peers.
    budget: SharedBudget,
    job: UdpJob,
    /// Answers to datagrams that arrived while the job runs.
    replies: VecDeque<Vec<u8>>,
    /// The send budget ran dry; try again then.
    blocked_until: Option<Instant>,
    now: Instant,
    close: Option<CloseReason>,
}

impl LabDatagrams {
    fn new(
        config: LabConfig,
        budget: SharedBudget,
        peer: SocketAddr,
        job: UdpJob,
        now: Instant,
    ) -> Self {
        Self {
            config,
            peer,
            budget,
            job,
            replies: VecDeque::new(),
            blocked_until: None,
            now,
            close: None,
        }
    }

    /// A generated file of `len` bytes for `peer`, sent within `budget`.
    pub fn file(
        config: LabConfig,
        budget: SharedBudget,
        peer: SocketAddr,
        len: u64,
        now: Instant,
    ) -> Self {
        Self::new(
            config,
            budget,
            peer,
            UdpJob::File {
                ready_sent: false,
                offset: 0,
                len,
            },
            now,
        )
    }

    /// A stream for `peer`, starting at `now`, sent within `budget`.
    pub fn stream(
        config: LabConfig,
        budget: SharedBudget,
        peer: SocketAddr,
        spec: StreamSpec,
        now: Instant,
    ) -> Self {
        let count = spec.count.min(config.stream_max_count);
        let job = UdpJob::Stream {
            schedule: Schedule::new(now, spec.interval_ns, count),
            size: spec.size,
        };
        Self::new(config, budget, peer, job, now)
    }

    /// Takes `len` bytes from the peer's budget, or notes when to retry.
    fn budget(&mut self, cx: &Context, len: usize) -> bool {
        let taken = self
            .budget
            .borrow_mut()
            .take(self.peer.ip(), len as u64, cx.now);
        match taken {
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

impl Driven for LabDatagrams {
    fn handle_timeout(&mut self, cx: &mut Context) {
        self.now = cx.now;
        if self.blocked_until.is_some_and(|at| at <= cx.now) {
            self.blocked_until = None;
        }
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

    /// A paced stream's schedule is worth a spin; waiting for budget
    /// tokens is not.
    fn wake(&self) -> Wake {
        if matches!(&self.job, UdpJob::Stream { schedule, .. } if schedule.is_paced())
            && self.blocked_until.is_none()
        {
            Wake::Paced
        } else {
            Wake::Exact
        }
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        // Close only once the queued replies are out.
        if self.replies.is_empty() {
            self.close.take()
        } else {
            None
        }
    }
}

impl DatagramSession for LabDatagrams {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        self.now = cx.now;
        let DatagramInput::Datagram { payload, .. } = input else {
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

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        self.now = cx.now;
        let to = Some(self.peer);
        if let Some(reply) = self.replies.pop_front() {
            buf.extend_from_slice(&reply);
            return Some(Transmit::new(to, reply.len()));
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
        Some(Transmit::new(to, len))
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

/// The acceptor on lab's TCP listener.
#[derive(Debug, Default)]
pub struct LabStreamAcceptor {
    config: LabConfig,
    timeouts: TcpTimeouts,
}

impl LabStreamAcceptor {
    /// An acceptor with these limits.
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
    use crate::proto::budget::{self, BudgetConfig};
    use crate::proto::idle::testing::timed_out_by;
    use crate::proto::testing::{cx, drain_datagrams, drain_tx, feed, feed_datagram};
    use crate::time::Duration;
    use crate::wire::lab::check_pattern;

    fn us(v: u64) -> Instant {
        Instant::from_micros(v)
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    /// The default budget (loopback peers are exempt from it).
    fn sh() -> SharedBudget {
        budget::shared(BudgetConfig::default())
    }

    /// Segment headers `(seq, sched_ns)` found in a TCP byte stream.
    fn headers(bytes: &[u8], size: usize) -> Vec<(u64, u64)> {
        bytes
            .chunks(size)
            .map(|seg| {
                let h = SegmentHeader::parse(seg).unwrap();
                (h.seq, h.sched_ns)
            })
            .collect()
    }

    #[test]
    fn tcp_stream_follows_the_absolute_grid_and_catches_up() {
        let mut stream = LabStream::new(LabConfig::default(), us(0), TcpTimeouts::default());
        feed(
            &mut stream,
            us(1_000),
            peer(),
            StreamInput::Bytes(b"stream-0.1-5-20\n"),
        );
        assert_eq!(stream.wake(), Wake::Paced);
        assert_eq!(headers(&drain_tx(&mut stream, us(1_000)), 20), vec![(0, 0)]);
        assert_eq!(stream.poll_timeout(), Some(us(1_100)));
        // Not a nanosecond early.
        let early = Instant::from_nanos(us(1_100).as_nanos() - 1);
        assert_eq!(drain_tx(&mut stream, early), b"");
        assert_eq!(
            headers(&drain_tx(&mut stream, us(1_100)), 20),
            vec![(1, 100_000)]
        );
        // Woken 250 µs late: every due segment, each with its own stamp.
        assert_eq!(
            headers(&drain_tx(&mut stream, us(1_450)), 20),
            vec![(2, 200_000), (3, 300_000), (4, 400_000)]
        );
        assert_eq!(stream.poll_close(), Some(CloseReason::Completed));
    }

    #[test]
    fn tcp_stream_count_is_capped() {
        let config = LabConfig {
            stream_max_count: 3,
            ..LabConfig::default()
        };
        let mut stream = LabStream::new(config, us(0), TcpTimeouts::default());
        feed(
            &mut stream,
            us(0),
            peer(),
            StreamInput::Bytes(b"stream-0-20000-16\n"),
        );
        assert_eq!(headers(&drain_tx(&mut stream, us(0)), 16).len(), 3);
    }

    #[test]
    fn tcp_file_is_ready_line_then_exactly_n_pattern_bytes_in_any_pieces() {
        let mut stream = LabStream::new(LabConfig::default(), us(0), TcpTimeouts::default());
        feed(&mut stream, us(0), peer(), StreamInput::Bytes(b"100000\n"));
        let mut cx = cx(us(0), None);
        let mut out = BytesMut::new();
        while let Some(len) = stream.poll_transmit(&mut cx, 7_777, &mut out) {
            assert!(len <= 7_777);
        }
        assert!(out.starts_with(b"READY 100000\n"));
        let data = &out[13..];
        assert_eq!(data.len(), 100_000);
        assert_eq!(check_pattern(0, data), None);
        assert_eq!(stream.poll_close(), Some(CloseReason::Completed));
    }

    #[test]
    fn tcp_echo_is_byte_for_byte_and_keeps_the_connection() {
        let mut stream = LabStream::new(LabConfig::default(), us(0), TcpTimeouts::default());
        feed(
            &mut stream,
            us(0),
            peer(),
            StreamInput::Bytes(b"hi there\r\n+5\n"),
        );
        feed(&mut stream, us(0), peer(), StreamInput::Bytes(b" 7"));
        feed(&mut stream, us(0), peer(), StreamInput::Bytes(b"\n"));
        assert_eq!(drain_tx(&mut stream, us(0)), b"hi there\r\n+5\n 7\n");
        assert_eq!(stream.poll_close(), None);
    }

    #[test]
    fn tcp_error_lines_are_exact_and_keep_the_connection() {
        let mut stream = LabStream::new(LabConfig::default(), us(0), TcpTimeouts::default());
        feed(
            &mut stream,
            us(0),
            peer(),
            StreamInput::Bytes(b"123456790\nstream-1-1-15\nstream-x\n0\n"),
        );
        let out = drain_tx(&mut stream, us(0));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ERROR file too large: limit 123456789\n\
             ERROR bad stream request: size must be a decimal of at least 16\n\
             ERROR bad stream request: expected stream-<interval_ms>-<count>-<size>\n\
             ERROR bad file request: size must be at least 1\n"
        );
        assert_eq!(stream.poll_close(), None);
        // The limit is exactly file_max: 123456789 itself is fine.
        feed(
            &mut stream,
            us(0),
            peer(),
            StreamInput::Bytes(b"123456789\n"),
        );
        assert!(drain_tx(&mut stream, us(0)).starts_with(b"READY 123456789\n"));
    }

    #[test]
    fn tcp_overlong_line_is_refused_and_closes_with_bounded_memory() {
        let config = LabConfig {
            line_max: 100,
            ..LabConfig::default()
        };
        let mut stream = LabStream::new(config, us(0), TcpTimeouts::default());
        for _ in 0..10 {
            feed(&mut stream, us(0), peer(), StreamInput::Bytes(&[b'x'; 60]));
            assert!(stream.partial.len() <= 100);
        }
        assert_eq!(
            drain_tx(&mut stream, us(0)),
            b"ERROR line too long: limit 100\n"
        );
        assert_eq!(
            stream.poll_close(),
            Some(CloseReason::Protocol("line too long"))
        );
    }

    #[test]
    fn input_after_a_file_request_is_ignored() {
        let mut stream = LabStream::new(LabConfig::default(), us(0), TcpTimeouts::default());
        feed(
            &mut stream,
            us(0),
            peer(),
            StreamInput::Bytes(b"3\nhello\n"),
        );
        feed(&mut stream, us(0), peer(), StreamInput::Bytes(b"more\n"));
        assert_eq!(drain_tx(&mut stream, us(0)), b"READY 3\nABC");
    }

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

    /// Every datagram a session sends at `now`.
    fn datagrams(session: &mut dyn DatagramSession, now: Instant) -> Vec<Vec<u8>> {
        drain_datagrams(session, now)
            .into_iter()
            .map(|(_, d)| d)
            .collect()
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

    #[test]
    fn udp_file_is_ready_segments_done() {
        let config = LabConfig {
            segment: 1000,
            ..LabConfig::default()
        };
        let mut f = LabDatagrams::file(config, sh(), peer(), 2_500, us(0));
        // The request that created the session is delivered to it first.
        feed_datagram(&mut f, us(0), peer(), b"2500");
        let d = datagrams(&mut f, us(0));
        let lens: Vec<_> = d.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![10, 1000, 1000, 500, 9]);
        assert_eq!(d[0], b"READY 2500");
        assert_eq!(d[4], b"DONE 2500");
        assert_eq!(check_pattern(1000, &d[2]), None);
        assert_eq!(f.poll_close(), Some(CloseReason::Completed));
    }

    #[test]
    fn udp_stream_is_paced_and_answers_busy_meanwhile() {
        let spec = StreamSpec {
            interval_ns: 1_000_000,
            count: 3,
            size: 64,
        };
        let mut st = LabDatagrams::stream(LabConfig::default(), sh(), peer(), spec, us(0));
        assert_eq!(datagrams(&mut st, us(0)).len(), 1);
        assert_eq!(st.poll_timeout(), Some(us(1_000)));
        assert_eq!(st.wake(), Wake::Paced);
        feed_datagram(&mut st, us(10), peer(), b"stream-1-1-16");
        feed_datagram(&mut st, us(10), peer(), b"echo");
        let d = datagrams(&mut st, us(10));
        assert_eq!(
            d,
            vec![
                b"ERROR busy: a transfer to this address is running".to_vec(),
                b"echo".to_vec()
            ]
        );
        assert_eq!(datagrams(&mut st, us(999)).len(), 0);
        let d = datagrams(&mut st, us(2_000));
        assert_eq!(
            d.iter()
                .map(|x| SegmentHeader::parse(x).unwrap().seq)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(st.poll_close(), Some(CloseReason::Completed));
    }

    #[test]
    fn udp_stream_to_an_unvalidated_peer_is_held_to_its_budget() {
        let s = budget::shared(BudgetConfig {
            peer_rate: 64_000,
            peer_burst: 640,
            global_rate: 1_000_000,
            global_burst: 1_000_000,
            trust_loopback: true,
        });
        let remote: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        let spec = StreamSpec {
            interval_ns: 0,
            count: 1_000,
            size: 64,
        };
        let mut st = LabDatagrams::stream(LabConfig::default(), s, remote, spec, us(0));
        // The burst: 10 segments, then it waits for tokens (64 B per ms).
        assert_eq!(datagrams(&mut st, us(0)).len(), 10);
        let retry = st.poll_timeout().unwrap();
        assert!(retry > us(900) && retry <= us(1_001), "{retry}");
        assert_ne!(
            st.wake(),
            Wake::Paced,
            "waiting for tokens is not worth a spin"
        );
        st.handle_timeout(&mut cx(retry, None));
        assert_eq!(datagrams(&mut st, retry).len(), 1);
        // Over half a virtual second: the burst plus 64 B/ms, not the 1000
        // segments asked for.
        let mut sent = 11;
        let mut now = retry;
        while let Some(at) = st
            .poll_timeout()
            .filter(|&at| at <= Instant::from_millis(500))
        {
            now = at;
            st.handle_timeout(&mut cx(now, None));
            sent += datagrams(&mut st, now).len();
        }
        assert!(now > Instant::from_millis(499));
        assert!((505..=512).contains(&sent), "{sent}");
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn ns_before(t: Instant) -> Instant {
        Instant::from_nanos(t.as_nanos() - 1)
    }

    fn limited(idle_ms: u64, request_ms: u64) -> LabStream {
        let timeouts = TcpTimeouts {
            idle: Duration::from_millis(idle_ms),
            request: Duration::from_millis(request_ms),
        };
        LabStream::new(LabConfig::default(), ms(0), timeouts)
    }

    #[test]
    fn tcp_a_connection_that_never_sends_closes_at_exactly_the_first_limit() {
        let mut stream = limited(300, 10_000);
        assert_eq!(stream.poll_timeout(), Some(ms(300)), "armed from accept");
        assert_eq!(stream.wake(), Wake::Coarse);
        assert_eq!(timed_out_by(&mut stream, ns_before(ms(300))), None);
        assert_eq!(timed_out_by(&mut stream, ms(60_000)), Some(ms(300)));
        let mut stream = limited(300_000, 10_000);
        assert_eq!(timed_out_by(&mut stream, ms(600_000)), Some(ms(10_000)));
    }

    #[test]
    fn tcp_an_echo_line_trickled_at_one_byte_a_second_closes_at_the_request_limit() {
        let mut stream = limited(60_000, 10_000);
        // A first line, answered and taken: the next line's clock starts
        // with its first byte (3 s).
        feed(&mut stream, ms(0), peer(), StreamInput::Bytes(b"hi\n"));
        assert_eq!(drain_tx(&mut stream, ms(0)), b"hi\n");
        let mut closed = None;
        for i in 0..20u64 {
            let now = ms(3_000 + 1_000 * i);
            closed = timed_out_by(&mut stream, ns_before(now));
            if closed.is_some() {
                break;
            }
            feed(&mut stream, now, peer(), StreamInput::Bytes(b"x"));
        }
        assert_eq!(closed, Some(ms(13_000)));
    }

    #[test]
    fn tcp_a_stream_slower_than_the_idle_limit_is_not_idle_until_it_is_not_taken() {
        let mut stream = limited(300, 10_000);
        // One 20-byte segment a second, with a 300 ms idle limit.
        feed(
            &mut stream,
            ms(0),
            peer(),
            StreamInput::Bytes(b"stream-1000-5-20\n"),
        );
        for i in 0..3u64 {
            assert_eq!(drain_tx(&mut stream, ms(1_000 * i)).len(), 20);
            // The server waits for its schedule; the peer is not idle.
            let next = ms(1_000 * (i + 1));
            assert_eq!(timed_out_by(&mut stream, ns_before(next)), None);
        }
        // Segment 3 falls due at 3 s and nothing takes it (a full socket):
        // closed one idle limit after it was due.
        assert_eq!(timed_out_by(&mut stream, ms(60_000)), Some(ms(3_300)));
    }

    #[test]
    fn tcp_a_file_reader_that_stops_closes_one_idle_limit_after_its_last_take() {
        let mut stream = limited(1_000, 10_000);
        feed(&mut stream, ms(0), peer(), StreamInput::Bytes(b"1000000\n"));
        for i in 0..5u64 {
            assert!(
                stream
                    .poll_transmit(&mut cx(ms(700 * i), None), 10_000, &mut BytesMut::new())
                    .is_some()
            );
        }
        // Bytes the client sends meanwhile are dropped, and are no progress.
        feed(
            &mut stream,
            ms(3_000),
            peer(),
            StreamInput::Bytes(b"junk\n"),
        );
        assert_eq!(timed_out_by(&mut stream, ms(60_000)), Some(ms(3_800)));
    }
}
