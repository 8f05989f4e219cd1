//! [`LabStream`]: one lab TCP connection, from its first request line to
//! its close.
//!
//! Owns the connection's job (request lines with echo and error answers; or
//! one generated file; or one paced stream), the partial line kept between
//! reads, and the idle and request-line limits. Output is produced only as
//! the reactor asks for it, within its limit. It never holds a whole file
//! or stream in memory, never keeps more than `line_max` of a partial line,
//! and never counts waiting for its own schedule as the peer's idleness.

use super::file_too_large;
use super::segment::Segment;
use crate::proto::idle::{IdleTimer, TcpTimeouts};
use crate::proto::lab::{LabConfig, Schedule};
use crate::proto::{CloseReason, Context, Driven, StreamInput, StreamSession, Wake};
use crate::time::Instant;
use crate::wire::lab::{Request as LabRequest, pattern_run};
use crate::wire::line;
use bytes::BytesMut;
use core::fmt::Write as _;
use log::debug;

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
    #[must_use]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::idle::testing::timed_out_by;
    use crate::proto::lab::server::testing::{peer, us};
    use crate::proto::testing::{cx, drain_tx, feed};
    use crate::time::Duration;
    use crate::wire::lab::{SegmentHeader, check_pattern};

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
