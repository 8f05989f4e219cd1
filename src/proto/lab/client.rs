//! The lab client: sends one request and records what comes back.
//!
//! Owns the client's half of every lab exchange over TCP and UDP: the echo
//! round trip, a file's byte count and pattern check, and a stream's raw
//! samples `(seq, scheduled ns, arrival ns)` — arrival from the kernel's
//! receive timestamp where the socket has one, else the reactor's `now`.
//! Statistics are computed from the samples afterwards (`stats`), so this
//! session stays a recorder. It never reads the clock itself.
//!
//! One [`Client`] serves both transports: it is a [`StreamSession`] on a
//! TCP connection and a [`DatagramSession`] on a UDP socket, with one
//! [`Driven`] (the silence timeout) for both.

use crate::proto::outcome::{ClientError, Outcome, OutcomeSlot, Progress};
use crate::proto::{
    CloseReason, Context, DatagramInput, DatagramSession, Driven, StreamInput, StreamSession,
    Transmit,
};
use crate::time::{Duration, Instant};
use crate::wire::lab::{
    Request as LabRequest, SEGMENT_HEADER_LEN, SegmentHeader, StreamSpec, check_pattern,
};
use crate::wire::line;
use bytes::BytesMut;
use core::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

/// How the client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP connection: one request line, answers until EOF.
    Tcp,
    /// A UDP socket: one request datagram; answers must come from `server`.
    Udp {
        /// The server's address.
        server: SocketAddr,
    },
}

/// One received stream segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSample {
    /// Its sequence number.
    pub seq: u64,
    /// When the server scheduled it, ns after the stream's start.
    pub sched_ns: u64,
    /// When it arrived, in ns (kernel `CLOCK_REALTIME` or the reactor's
    /// clock: only differences are meaningful).
    pub rx_ns: u64,
}

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The echo.
    Echo {
        /// Bytes sent (and expected back).
        bytes: usize,
        /// Whether the answer equals the request.
        matched: bool,
        /// From sending to the whole answer.
        rtt: Duration,
    },
    /// A generated file.
    File {
        /// N of the request.
        expected: u64,
        /// Data bytes received.
        received: u64,
        /// Offset of the first byte that broke the pattern.
        first_bad: Option<u64>,
        /// From sending the request to the last byte.
        elapsed: Duration,
        /// UDP: data datagrams received.
        datagrams: u64,
        /// UDP: the `DONE` arrived; TCP: EOF after exactly N bytes.
        complete: bool,
    },
    /// A paced stream.
    Stream {
        /// Segments expected: the request's count, capped as the server does.
        expected: u64,
        /// Segment size.
        size: u32,
        /// Interval asked for, in ns.
        interval_ns: u64,
        /// Every segment received, in arrival order (duplicates included).
        samples: Vec<StreamSample>,
        /// Whether every arrival time came from the kernel.
        kernel_timestamps: bool,
        /// Whether the stream ended normally (TCP EOF, or every segment).
        complete: bool,
    },
}

/// A stream's counters so far, for a live display while it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveCounts {
    /// Segments received, duplicates included.
    pub received: u64,
    /// One past the highest sequence number seen: what should have
    /// arrived by now, so `expected_so_far - received` is the loss so far
    /// (less any duplicates).
    pub expected_so_far: u64,
    /// Segment bytes received.
    pub bytes: u64,
    /// Arrival of the first and the latest segment, in ns of the same
    /// clock as [`StreamSample::rx_ns`].
    pub first_rx_ns: u64,
    /// See `first_rx_ns`.
    pub last_rx_ns: u64,
}

/// A stream's [`LiveCounts`], set by the client session and read between
/// reactor turns by whoever draws them.
#[derive(Clone, Debug, Default)]
pub struct StreamLive(Rc<Cell<LiveCounts>>);

impl StreamLive {
    /// All zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far.
    pub fn get(&self) -> LiveCounts {
        self.0.get()
    }

    fn count(&self, seq: u64, size: u32, rx_ns: u64) {
        let mut c = self.0.get();
        if c.received == 0 {
            c.first_rx_ns = rx_ns;
        }
        c.received += 1;
        c.expected_so_far = c.expected_so_far.max(seq.saturating_add(1));
        c.bytes = c.bytes.saturating_add(u64::from(size));
        c.last_rx_ns = rx_ns;
        self.0.set(c);
    }
}

/// Samples kept beyond the expected count (room for duplicates); the
/// expected count itself is bounded by the caller's `max_count`.
const EXTRA_SAMPLES: u64 = 4096;

#[derive(Debug)]
enum Kind {
    Echo,
    File(u64),
    Stream(StreamSpec),
}

#[derive(Debug, Default)]
struct FileProgress {
    ready: bool,
    received: u64,
    first_bad: Option<u64>,
    datagrams: u64,
}

#[derive(Debug, Default)]
struct StreamProgress {
    samples: Vec<StreamSample>,
    kernel: bool,
    /// TCP: bytes of the current segment seen, and its header so far.
    in_segment: usize,
    header: [u8; SEGMENT_HEADER_LEN],
}

/// One lab request and its answer.
#[derive(Debug)]
pub struct Client {
    transport: Transport,
    request: Vec<u8>,
    kind: Kind,
    expected_count: u64,
    timeout: Duration,
    sent_at: Option<Instant>,
    /// When the session first had the chance to send: the timeout runs
    /// from here even if the request never went.
    waiting_since: Option<Instant>,
    /// Why the request can never be sent, once that is known.
    unsendable: Option<String>,
    last_rx: Instant,
    done: bool,
    /// TCP bytes before the data: an answer line (`READY n`, `ERROR …`, echo).
    line: Vec<u8>,
    file: FileProgress,
    stream: StreamProgress,
    outcome: OutcomeSlot<Report>,
    progress: Option<Progress>,
    live: Option<StreamLive>,
    close: Option<CloseReason>,
}

impl Client {
    /// Also counts a file's bytes into `progress` as they arrive.
    #[must_use]
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Also counts a stream's segments into `live` as they arrive.
    #[must_use]
    pub fn with_live(mut self, live: StreamLive) -> Self {
        self.live = Some(live);
        self
    }

    /// A client for `request` (echo text, `N`, or `stream-I-C-S`). Streams
    /// are expected to be capped at `max_count` segments, as the server
    /// does; `timeout` is the longest silence tolerated.
    pub fn new(
        request: &[u8],
        transport: Transport,
        max_count: u64,
        timeout: Duration,
        outcome: OutcomeSlot<Report>,
    ) -> Self {
        let (kind, expected_count) = match LabRequest::parse(request) {
            Ok(LabRequest::File(n)) => (Kind::File(n), 0),
            Ok(LabRequest::Stream(spec)) => (Kind::Stream(spec), spec.count.min(max_count)),
            // Malformed requests are sent anyway: the server's ERROR is the answer.
            Ok(LabRequest::Echo(_)) | Err(_) => (Kind::Echo, 0),
        };
        Self {
            transport,
            request: request.to_vec(),
            kind,
            expected_count,
            timeout,
            sent_at: None,
            waiting_since: None,
            unsendable: None,
            last_rx: Instant::ZERO,
            done: false,
            line: Vec::new(),
            file: FileProgress::default(),
            stream: StreamProgress {
                kernel: true,
                ..StreamProgress::default()
            },
            outcome,
            progress: None,
            live: None,
            close: None,
        }
    }

    fn finish(&mut self, outcome: Outcome<Report>, reason: CloseReason) {
        if self.done {
            return;
        }
        self.done = true;
        self.outcome.set(outcome);
        self.close = Some(reason);
    }

    fn report(&mut self, now: Instant, complete: bool) -> Report {
        match self.kind {
            Kind::Echo => Report::Echo {
                bytes: self.request.len(),
                matched: false,
                rtt: Duration::ZERO,
            },
            Kind::File(expected) => Report::File {
                expected,
                received: self.file.received,
                first_bad: self.file.first_bad,
                elapsed: now - self.sent_at.unwrap_or(now),
                datagrams: self.file.datagrams,
                complete,
            },
            Kind::Stream(spec) => Report::Stream {
                expected: self.expected_count,
                size: spec.size,
                interval_ns: spec.interval_ns,
                samples: core::mem::take(&mut self.stream.samples),
                kernel_timestamps: self.stream.kernel,
                complete,
            },
        }
    }

    /// An answer to an echo that is the server's `ERROR …` line rather
    /// than the echo: a request that only looked like text (`0`,
    /// `stream-0-0-0`) and that the server refused. An echo of a request
    /// that itself starts with `ERROR ` is still an echo.
    fn is_refusal(&self, answer: &[u8]) -> bool {
        answer != self.request.as_slice() && answer.starts_with(b"ERROR ")
    }

    fn refused(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line).into_owned();
        self.finish(Err(ClientError::refused(text)), CloseReason::Completed);
    }

    fn sample(&mut self, header: &[u8], rx_ns: u64) {
        let cap = usize::try_from(self.expected_count.saturating_add(EXTRA_SAMPLES))
            .unwrap_or(usize::MAX);
        if let Ok(h) = SegmentHeader::parse(header)
            && self.stream.samples.len() < cap
        {
            if let (Some(live), Kind::Stream(spec)) = (&self.live, &self.kind) {
                live.count(h.seq, spec.size, rx_ns);
            }
            self.stream.samples.push(StreamSample {
                seq: h.seq,
                sched_ns: h.sched_ns,
                rx_ns,
            });
        }
    }

    /// Data bytes of a file over TCP, continuing at `received`.
    fn file_bytes(&mut self, bytes: &[u8]) {
        if self.file.first_bad.is_none()
            && let Some(i) = check_pattern(self.file.received, bytes)
        {
            self.file.first_bad = Some(self.file.received + i as u64);
        }
        self.file.received += bytes.len() as u64;
        if let Some(p) = &self.progress {
            p.set(self.file.received);
        }
    }

    fn tcp_bytes(&mut self, now: Instant, mut bytes: &[u8]) {
        // First the answer line, for echo and file (and an ERROR instead
        // of a stream, recognisable because a stream starts with seq 0).
        let wants_line = match self.kind {
            Kind::Echo => true,
            Kind::File(_) => !self.file.ready,
            Kind::Stream(_) => {
                self.stream.samples.is_empty()
                    && self.stream.in_segment == 0
                    && (!self.line.is_empty() || bytes.first() == Some(&b'E'))
            }
        };
        if wants_line {
            let before = self.line.len();
            self.line.extend_from_slice(bytes);
            let max = self.request.len() + 2 + 64;
            let Ok(Some(l)) = line::split(&self.line, max.max(256)) else {
                if self.line.len() >= max.max(256) {
                    let line = core::mem::take(&mut self.line);
                    self.finish(
                        Err(ClientError::Protocol(format!(
                            "unexpected answer: {:?}",
                            String::from_utf8_lossy(&line[..64.min(line.len())])
                        ))),
                        CloseReason::Protocol("unexpected answer"),
                    );
                }
                return;
            };
            let answer = self.line[..l.len].to_vec();
            let rest_at = l.consumed - before;
            bytes = &bytes[rest_at.min(bytes.len())..];
            self.line.clear();
            match self.kind {
                Kind::Echo => {
                    if self.is_refusal(&answer) {
                        return self.refused(&answer);
                    }
                    let rtt = now - self.sent_at.unwrap_or(now);
                    let matched = answer == self.request;
                    self.finish(
                        Ok(Report::Echo {
                            bytes: self.request.len(),
                            matched,
                            rtt,
                        }),
                        CloseReason::Completed,
                    );
                    return;
                }
                Kind::File(n) if answer == format!("READY {n}").as_bytes() => {
                    self.file.ready = true;
                }
                _ => return self.refused(&answer),
            }
        }
        match self.kind {
            Kind::Echo => {}
            Kind::File(_) => self.file_bytes(bytes),
            Kind::Stream(spec) => {
                let size = spec.size as usize;
                let at = now.as_nanos();
                while !bytes.is_empty() {
                    let pos = self.stream.in_segment;
                    let take = bytes.len().min(size - pos);
                    if pos < SEGMENT_HEADER_LEN {
                        let h = take.min(SEGMENT_HEADER_LEN - pos);
                        self.stream.header[pos..pos + h].copy_from_slice(&bytes[..h]);
                        if pos + h == SEGMENT_HEADER_LEN {
                            let header = self.stream.header;
                            self.sample(&header, at);
                        }
                    }
                    self.stream.in_segment = (pos + take) % size;
                    bytes = &bytes[take..];
                }
                self.stream.kernel = false;
            }
        }
    }

    fn udp_datagram(&mut self, now: Instant, payload: &[u8], kernel_ns: Option<u64>) {
        match self.kind {
            Kind::Echo => {
                if self.is_refusal(payload) {
                    return self.refused(payload);
                }
                let rtt = now - self.sent_at.unwrap_or(now);
                let matched = payload == self.request.as_slice();
                self.finish(
                    Ok(Report::Echo {
                        bytes: self.request.len(),
                        matched,
                        rtt,
                    }),
                    CloseReason::Completed,
                );
            }
            Kind::File(n) => {
                if payload.starts_with(b"ERROR ") && !self.file.ready {
                    return self.refused(payload);
                }
                if payload == format!("READY {n}").as_bytes() {
                    self.file.ready = true;
                } else if payload == format!("DONE {n}").as_bytes() {
                    let report = self.report(now, true);
                    self.finish(Ok(report), CloseReason::Completed);
                } else {
                    // A lost datagram leaves no gap in the count, so check
                    // each datagram against the phase of its own first byte.
                    let phase = payload
                        .first()
                        .map_or(0, |b| u64::from(b.wrapping_sub(b'A')) % 26);
                    if self.file.first_bad.is_none()
                        && let Some(i) = check_pattern(phase, payload)
                    {
                        self.file.first_bad = Some(self.file.received + i as u64);
                    }
                    self.file.datagrams += 1;
                    self.file.received += payload.len() as u64;
                }
            }
            Kind::Stream(_) => {
                if payload.starts_with(b"ERROR ") {
                    return self.refused(payload);
                }
                if payload.len() < SEGMENT_HEADER_LEN {
                    return;
                }
                let rx = kernel_ns.unwrap_or_else(|| now.as_nanos());
                self.stream.kernel &= kernel_ns.is_some();
                self.sample(&payload[..SEGMENT_HEADER_LEN], rx);
                let unique_enough = self.stream.samples.len() as u64 >= self.expected_count;
                if unique_enough && self.all_seen() {
                    let report = self.report(now, true);
                    self.finish(Ok(report), CloseReason::Completed);
                }
            }
        }
    }

    fn all_seen(&self) -> bool {
        let mut seen = vec![false; usize::try_from(self.expected_count).unwrap_or(0)];
        for s in &self.stream.samples {
            if let Some(slot) = usize::try_from(s.seq).ok().and_then(|i| seen.get_mut(i)) {
                *slot = true;
            }
        }
        seen.iter().all(|&b| b)
    }

    /// Silence that ends a UDP stream once it has started: a few intervals,
    /// at least a second, at most the timeout.
    fn stream_silence(&self) -> Duration {
        match self.kind {
            Kind::Stream(spec) => {
                let three = Duration::from_nanos(spec.interval_ns.saturating_mul(3));
                three
                    .max(Duration::from_secs(1))
                    .min(self.timeout.max(three))
            }
            _ => self.timeout,
        }
    }
}

impl Client {
    /// Input common to both transports: the peer is heard from.
    fn heard(&mut self, now: Instant) -> bool {
        if self.done {
            return false;
        }
        self.last_rx = now;
        true
    }

    fn stream_end(&mut self, now: Instant) {
        let complete = match self.kind {
            Kind::File(n) => self.file.ready && self.file.received == n,
            Kind::Stream(_) => self.stream.in_segment == 0,
            Kind::Echo => false,
        };
        if matches!(self.kind, Kind::Echo) {
            self.finish(
                Err(ClientError::Protocol(
                    "connection closed before the echo".into(),
                )),
                CloseReason::PeerClosed,
            );
        } else if !self.line.is_empty() {
            let line = core::mem::take(&mut self.line);
            self.refused(line.strip_suffix(b"\n").unwrap_or(&line));
        } else {
            let report = self.report(now, complete);
            self.finish(Ok(report), CloseReason::PeerClosed);
        }
    }

    fn failed(&mut self, kind: std::io::ErrorKind) {
        self.finish(Err(ClientError::Io(kind)), CloseReason::Aborted);
    }

    /// The request, once: appended to `buf`, with where it goes.
    fn transmit(&mut self, now: Instant, limit: usize, buf: &mut BytesMut) -> Option<Transmit> {
        if self.sent_at.is_some() || self.done {
            return None;
        }
        let to = match self.transport {
            Transport::Tcp => None,
            Transport::Udp { server } => Some(server),
        };
        // The wait starts with the first chance to send, sent or not: a
        // request the socket never takes must still end at the timeout.
        if self.waiting_since.is_none() {
            self.waiting_since = Some(now);
            self.last_rx = now;
        }
        let len = self.request.len() + usize::from(to.is_none());
        if len > limit {
            // A datagram socket offers the whole datagram every time: a
            // request larger than that can never go.
            // It fails at the timer due now rather than here: a session
            // that closes while the reactor is still adding it would wait
            // for an event that never comes.
            if to.is_some() {
                self.unsendable = Some(format!(
                    "the request is {len} bytes: one UDP datagram holds at most {limit}"
                ));
            }
            return None;
        }
        buf.extend_from_slice(&self.request);
        if to.is_none() {
            buf.extend_from_slice(b"\n");
        }
        self.sent_at = Some(now);
        self.last_rx = now;
        Some(Transmit::new(to, len))
    }
}

impl Driven for Client {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if self.done || self.poll_timeout().is_none_or(|at| at > cx.now) {
            return;
        }
        if let Some(why) = self.unsendable.take() {
            self.finish(Err(ClientError::Local(why)), CloseReason::Aborted);
            return;
        }
        let got_something = match self.kind {
            Kind::Echo => false,
            Kind::File(_) => self.file.ready,
            Kind::Stream(_) => !self.stream.samples.is_empty(),
        };
        let report = got_something.then(|| self.report(cx.now, false));
        match (self.transport, &self.kind, report) {
            // A UDP stream ends in silence: that is its normal end.
            (Transport::Udp { .. }, Kind::Stream(_), Some(report)) => {
                self.finish(Ok(report), CloseReason::Completed);
            }
            (_, _, report) => {
                // What had arrived stays with the failure, for the summary.
                if !self.done {
                    self.done = true;
                    let tries = 1;
                    self.outcome
                        .fail_after(report, ClientError::TimedOut { tries });
                    self.close = Some(CloseReason::TimedOut { tries });
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.done || self.waiting_since.is_none() {
            return None;
        }
        if self.unsendable.is_some() {
            return self.waiting_since;
        }
        let started = match self.kind {
            Kind::Stream(_) => !self.stream.samples.is_empty(),
            _ => false,
        };
        let silence = match self.transport {
            Transport::Udp { .. } if started => self.stream_silence(),
            _ => self.timeout,
        };
        Some(self.last_rx + silence)
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl StreamSession for Client {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        if !self.heard(cx.now) {
            return;
        }
        match input {
            StreamInput::Bytes(bytes) => self.tcp_bytes(cx.now, bytes),
            StreamInput::End => self.stream_end(cx.now),
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
        if !self.heard(cx.now) {
            return;
        }
        match input {
            DatagramInput::Datagram {
                from,
                payload,
                kernel_ns,
                ..
            } => {
                if matches!(self.transport, Transport::Udp { server } if server == from) {
                    self.udp_datagram(cx.now, payload, kernel_ns);
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

    /// A UDP stream's inter-arrival figures come from the kernel's stamps.
    fn wants_receive_timestamps(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::EndpointId;
    use crate::proto::testing::{at, cx, drain_joined, drain_tx, feed};

    fn server() -> SocketAddr {
        "127.0.0.1:8120".parse().unwrap()
    }

    fn client(request: &[u8], transport: Transport) -> (Client, OutcomeSlot<Report>) {
        let slot = OutcomeSlot::new();
        (
            Client::new(
                request,
                transport,
                10_000,
                Duration::from_secs(5),
                slot.clone(),
            ),
            slot,
        )
    }

    /// Feeds one datagram from the server, received at `now` (and by the
    /// kernel at `kernel_ns`).
    fn dgram(c: &mut Client, now: Instant, payload: &[u8], kernel_ns: Option<u64>) {
        DatagramSession::handle_input(
            c,
            &mut cx(now, Some(server())),
            DatagramInput::Datagram {
                endpoint: EndpointId::HOME,
                from: server(),
                payload,
                kernel_ns,
            },
        );
    }

    fn segment(seq: u64, sched_ns: u64, size: usize) -> Vec<u8> {
        let mut v = vec![0u8; size];
        SegmentHeader { seq, sched_ns }.emit(&mut v);
        v
    }

    #[test]
    fn tcp_echo_measures_rtt_and_compares() {
        let (mut c, slot) = client(b"hello", Transport::Tcp);
        assert_eq!(drain_tx(&mut c, at(0)), b"hello\n");
        feed(&mut c, at(2), server(), StreamInput::Bytes(b"hel"));
        feed(&mut c, at(3), server(), StreamInput::Bytes(b"lo\n"));
        assert_eq!(
            slot.get(),
            Some(Ok(Report::Echo {
                bytes: 5,
                matched: true,
                rtt: Duration::from_millis(3)
            }))
        );
    }

    #[test]
    fn tcp_file_counts_and_checks_the_pattern() {
        let (mut c, slot) = client(b"30", Transport::Tcp);
        drain_tx(&mut c, at(0));
        feed(
            &mut c,
            at(1),
            server(),
            StreamInput::Bytes(b"READY 30\nABCDEFGHIJ"),
        );
        feed(
            &mut c,
            at(1),
            server(),
            StreamInput::Bytes(b"KLMNOPQRSTUVWXYZABCX"),
        );
        feed(&mut c, at(4), server(), StreamInput::End);
        let Some(Ok(Report::File {
            received,
            first_bad,
            complete,
            elapsed,
            ..
        })) = slot.get()
        else {
            panic!("{slot:?}")
        };
        assert_eq!((received, first_bad, complete), (30, Some(29), true));
        assert_eq!(elapsed, Duration::from_millis(4));
    }

    #[test]
    fn tcp_error_line_is_a_refusal() {
        let (mut c, slot) = client(b"999999999", Transport::Tcp);
        drain_tx(&mut c, at(0));
        feed(
            &mut c,
            at(1),
            server(),
            StreamInput::Bytes(b"ERROR file too large: limit 123456789\n"),
        );
        assert_eq!(
            slot.get(),
            Some(Err(ClientError::refused(
                "ERROR file too large: limit 123456789"
            )))
        );
        assert_eq!(c.poll_close(), Some(CloseReason::Completed));
    }

    #[test]
    fn a_request_the_server_refuses_is_not_an_echo_mismatch() {
        for transport in [Transport::Tcp, Transport::Udp { server: server() }] {
            let (mut c, slot) = client(b"0", transport);
            drain_tx(&mut c, at(0));
            let line = "ERROR bad file request: size must be at least 1";
            match transport {
                Transport::Tcp => feed(
                    &mut c,
                    at(1),
                    server(),
                    StreamInput::Bytes(format!("{line}\n").as_bytes()),
                ),
                Transport::Udp { .. } => dgram(&mut c, at(1), line.as_bytes(), None),
            }
            assert_eq!(slot.get(), Some(Err(ClientError::refused(line))));
        }
        // Text that starts with ERROR is still echoed as sent.
        let (mut c, slot) = client(b"ERROR is a word", Transport::Tcp);
        drain_tx(&mut c, at(0));
        feed(
            &mut c,
            at(1),
            server(),
            StreamInput::Bytes(b"ERROR is a word\n"),
        );
        assert!(matches!(
            slot.get(),
            Some(Ok(Report::Echo { matched: true, .. }))
        ));
    }

    #[test]
    fn tcp_stream_segments_split_anywhere() {
        let (mut c, slot) = client(b"stream-1-3-20", Transport::Tcp);
        drain_tx(&mut c, at(0));
        let mut wire = Vec::new();
        for i in 0..3 {
            wire.extend(segment(i, i * 1_000_000, 20));
        }
        for (k, chunk) in wire.chunks(7).enumerate() {
            feed(&mut c, at(k as u64), server(), StreamInput::Bytes(chunk));
        }
        feed(&mut c, at(20), server(), StreamInput::End);
        let Some(Ok(Report::Stream {
            samples,
            complete,
            kernel_timestamps,
            ..
        })) = slot.get()
        else {
            panic!()
        };
        assert!(complete && !kernel_timestamps);
        let seqs: Vec<_> = samples.iter().map(|s| (s.seq, s.sched_ns)).collect();
        assert_eq!(seqs, vec![(0, 0), (1, 1_000_000), (2, 2_000_000)]);
        // Segment 1's header completes in the 5th chunk (bytes 28..35).
        assert_eq!(samples[1].rx_ns, at(5).as_nanos());
    }

    #[test]
    fn udp_stream_ends_when_every_segment_is_in() {
        let (mut c, slot) = client(b"stream-0.1-3-64", Transport::Udp { server: server() });
        assert_eq!(drain_joined(&mut c, at(0)), b"stream-0.1-3-64");
        dgram(&mut c, at(1), &segment(0, 0, 64), Some(1_000));
        dgram(&mut c, at(1), &segment(2, 200_000, 64), Some(201_000));
        assert!(!slot.is_set());
        dgram(&mut c, at(1), &segment(1, 100_000, 64), Some(202_000));
        let Some(Ok(Report::Stream {
            samples,
            complete,
            kernel_timestamps,
            expected,
            ..
        })) = slot.get()
        else {
            panic!()
        };
        assert!(complete && kernel_timestamps);
        assert_eq!((expected, samples.len()), (3, 3));
    }

    #[test]
    fn live_counts_follow_the_segments_as_they_come() {
        let slot = OutcomeSlot::new();
        let live = StreamLive::new();
        let mut c = Client::new(
            b"stream-1-10-64",
            Transport::Udp { server: server() },
            10_000,
            Duration::from_secs(5),
            slot,
        )
        .with_live(live.clone());
        drain_joined(&mut c, at(0));
        dgram(&mut c, at(1), &segment(0, 0, 64), Some(5_000));
        dgram(&mut c, at(3), &segment(3, 3_000_000, 64), Some(9_000));
        assert_eq!(
            live.get(),
            LiveCounts {
                received: 2,
                expected_so_far: 4,
                bytes: 128,
                first_rx_ns: 5_000,
                last_rx_ns: 9_000,
            },
            "two of the first four: two missing so far"
        );
    }

    #[test]
    fn udp_stream_with_loss_ends_after_silence() {
        let (mut c, slot) = client(b"stream-10-5-64", Transport::Udp { server: server() });
        drain_joined(&mut c, at(0));
        assert_eq!(
            c.poll_timeout(),
            Some(at(5_000)),
            "first answer: the full timeout"
        );
        dgram(&mut c, at(1), &segment(0, 0, 64), None);
        assert_eq!(
            c.poll_timeout(),
            Some(at(1_001)),
            "then a second of silence ends it"
        );
        c.handle_timeout(&mut cx(at(1_001), None));
        let Some(Ok(Report::Stream {
            samples, complete, ..
        })) = slot.get()
        else {
            panic!()
        };
        assert_eq!((samples.len(), complete), (1, false));
    }

    #[test]
    fn udp_file_with_ready_data_done() {
        let (mut c, slot) = client(b"28", Transport::Udp { server: server() });
        drain_joined(&mut c, at(0));
        dgram(&mut c, at(1), b"READY 28", None);
        dgram(&mut c, at(1), b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", None);
        dgram(&mut c, at(1), b"AB", None);
        dgram(&mut c, at(2), b"DONE 28", None);
        assert!(matches!(
            slot.get(),
            Some(Ok(Report::File {
                received: 28,
                first_bad: None,
                datagrams: 2,
                complete: true,
                ..
            }))
        ));
        // A datagram lost in between does not make the next one look wrong;
        // a corrupted one does.
        let (mut c, slot) = client(b"60", Transport::Udp { server: server() });
        drain_joined(&mut c, at(0));
        dgram(&mut c, at(1), b"READY 60", None);
        dgram(&mut c, at(1), b"ABCDEFGHIJ", None);
        dgram(&mut c, at(1), b"UVWXYZABCD", None);
        dgram(&mut c, at(1), b"EFGHIJKLMX", None);
        dgram(&mut c, at(2), b"DONE 60", None);
        assert!(matches!(
            slot.get(),
            Some(Ok(Report::File {
                received: 30,
                first_bad: Some(29),
                ..
            }))
        ));
    }

    #[test]
    fn silence_times_out() {
        let (mut c, slot) = client(b"ping", Transport::Udp { server: server() });
        drain_joined(&mut c, at(0));
        let mut cx = cx(at(4_999), None);
        c.handle_timeout(&mut cx);
        assert!(!slot.is_set());
        cx.now = at(5_000);
        c.handle_timeout(&mut cx);
        assert_eq!(slot.get(), Some(Err(ClientError::TimedOut { tries: 1 })));
        assert_eq!(slot.take_partial(), None, "nothing had arrived");
    }

    #[test]
    fn a_request_larger_than_a_datagram_fails_at_once() {
        let big = vec![b'a'; 65_508];
        let (mut c, slot) = client(&big, Transport::Udp { server: server() });
        let mut buf = BytesMut::new();
        let sent = DatagramSession::poll_transmit(&mut c, &mut cx(at(0), None), 65_507, &mut buf);
        assert!(sent.is_none() && buf.is_empty());
        assert_eq!(c.poll_timeout(), Some(at(0)), "due at once");
        c.handle_timeout(&mut cx(at(0), None));
        assert!(
            matches!(slot.get(), Some(Err(ClientError::Local(why))) if why.contains("65507")),
            "{:?}",
            slot.get()
        );
        assert!(c.poll_close().is_some(), "the session ends");
    }

    #[test]
    fn a_request_never_sent_still_times_out() {
        let (mut c, slot) = client(b"ping", Transport::Tcp);
        let mut buf = BytesMut::new();
        // No room in the connection's buffer, ever.
        assert!(StreamSession::poll_transmit(&mut c, &mut cx(at(0), None), 0, &mut buf).is_none());
        assert_eq!(c.poll_timeout(), Some(at(5_000)), "the wait is bounded");
        c.handle_timeout(&mut cx(at(5_000), None));
        assert_eq!(slot.get(), Some(Err(ClientError::TimedOut { tries: 1 })));
    }
}
