//! The bench's sessions: what runs on the reactor during a bench.
//!
//! Owns the run's shared state ([`Run`]: the recorder, the end, the count
//! budget, which sessions are alive) and three session kinds that feed it
//! with the reactor's `cx.now`:
//! * [`Repeat`]: one request outstanding on one socket or connection, the
//!   next sent when the answer arrives; the protocol's part is an
//!   [`Exchange`] (request bytes, answer framing, answer check), built on
//!   the `wire` codecs;
//! * [`Tracked`]: wraps one existing protocol client session (a transfer,
//!   a connection) unchanged, counts its bytes as they move, and records its
//!   outcome when it closes;
//! * [`Controller`]: a detached session that closes report intervals and
//!   owns the `-t` end.
//!
//! They never open sockets (the driver asks the reactor) and never read
//! the clock. The reactor is single-threaded, so shared state is `Rc` and
//! `Cell`. Nothing is recorded at or after the end of a `-t` run: the last
//! interval closes exactly at the end.

use super::plan::Transport;
use super::report::{IntervalReport, Recorder};
use crate::proto::{CloseReason, Context, FileChunk, Input, Request, Session, Side, Transmit};
use crate::time::{Duration, Instant};
use bytes::BytesMut;
use core::cell::{Cell, RefCell};
use std::rc::Rc;

/// Failures in a row, with no success between them, after which the run
/// stops: a server that refuses everything would otherwise be hammered in
/// a tight reconnect loop for the whole `-t`.
pub const MAX_FAILURES_IN_A_ROW: u32 = 64;

/// What every bench session of one run shares.
#[derive(Debug)]
pub struct Run {
    /// Where figures go.
    pub recorder: RefCell<Recorder>,
    /// Closed intervals, oldest first (for the JSON document and the SVG).
    pub intervals: RefCell<Vec<IntervalReport>>,
    end_at: Option<Instant>,
    /// Requests or transfers that may still start; `None`: unlimited.
    budget: Cell<Option<u64>>,
    stopped: Cell<bool>,
    active: Cell<usize>,
    free_slots: RefCell<Vec<usize>>,
    /// Per-slot sequence numbers that outlive one session of the slot.
    slot_seq: RefCell<Vec<u64>>,
    successes: Cell<u64>,
    failures_in_a_row: Cell<u32>,
    last_event: Cell<Instant>,
    fatal: RefCell<Option<String>>,
    interrupted_at: Cell<Option<Instant>>,
}

impl Run {
    /// A run of `slots` sessions at once that started at `start`.
    pub fn new(
        recorder: Recorder,
        start: Instant,
        end_at: Option<Instant>,
        budget: Option<u64>,
        slots: usize,
    ) -> Self {
        Self {
            recorder: RefCell::new(recorder),
            intervals: RefCell::new(Vec::new()),
            end_at,
            budget: Cell::new(budget),
            stopped: Cell::new(false),
            active: Cell::new(0),
            free_slots: RefCell::new((0..slots).rev().collect()),
            slot_seq: RefCell::new(vec![0; slots]),
            successes: Cell::new(0),
            failures_in_a_row: Cell::new(0),
            last_event: Cell::new(start),
            fatal: RefCell::new(None),
            interrupted_at: Cell::new(None),
        }
    }

    /// The `-t` end, if any.
    pub fn end_at(&self) -> Option<Instant> {
        self.end_at
    }

    /// Whether nothing may be recorded or started any more at `now`.
    pub fn over(&self, now: Instant) -> bool {
        self.stopped.get() || self.end_at.is_some_and(|end| now >= end)
    }

    /// Takes one request or transfer from the `-n` budget; `false` when
    /// the run is over or the budget is spent.
    pub fn take(&self, now: Instant) -> bool {
        if self.over(now) {
            return false;
        }
        match self.budget.get() {
            None => true,
            Some(0) => false,
            Some(n) => {
                self.budget.set(Some(n - 1));
                true
            }
        }
    }

    /// Whether a new session could still get work at `now`.
    pub fn may_start(&self, now: Instant) -> bool {
        !self.over(now) && self.budget.get() != Some(0)
    }

    /// A free slot for a new session, marked busy.
    pub fn claim_slot(&self) -> Option<usize> {
        let slot = self.free_slots.borrow_mut().pop()?;
        self.active.set(self.active.get() + 1);
        Some(slot)
    }

    /// The session in `slot` ended (exactly once per claim).
    pub fn release_slot(&self, slot: usize) {
        self.active.set(self.active.get().saturating_sub(1));
        self.free_slots.borrow_mut().push(slot);
    }

    /// Sessions alive.
    pub fn active(&self) -> usize {
        self.active.get()
    }

    /// The next sequence number of `slot` (starting at 0).
    pub fn next_seq(&self, slot: usize) -> u64 {
        let mut seqs = self.slot_seq.borrow_mut();
        let Some(seq) = seqs.get_mut(slot) else {
            return 0;
        };
        let current = *seq;
        *seq += 1;
        current
    }

    /// A request or transfer succeeded at `now`.
    pub fn succeeded(&self, now: Instant) {
        self.successes.set(self.successes.get() + 1);
        self.failures_in_a_row.set(0);
        self.note(now);
    }

    /// A request or transfer failed at `now`; too many in a row stop the run.
    pub fn failed(&self, now: Instant, why: &str) {
        let n = self.failures_in_a_row.get() + 1;
        self.failures_in_a_row.set(n);
        self.note(now);
        if n >= MAX_FAILURES_IN_A_ROW && self.successes.get() == 0 {
            self.stop_with(format!(
                "{n} failures in a row and no success; the last: {why}"
            ));
        }
    }

    /// Ends the run early but normally (SIGINT): nothing more is started
    /// or recorded, and the report covers the run up to `now`.
    pub fn interrupt(&self, now: Instant) {
        if !self.stopped.get() {
            self.stopped.set(true);
            self.interrupted_at.set(Some(now));
        }
    }

    /// When the run was interrupted, if it was.
    pub fn interrupted_at(&self) -> Option<Instant> {
        self.interrupted_at.get()
    }

    /// A session could not even start (no socket: the open-file limit, no
    /// route): a local fault, so enough of them in a row stop the run even
    /// after successes, where a lost answer would not.
    pub fn start_failed(&self, now: Instant, why: &str) {
        self.failed(now, why);
        if self.failures_in_a_row.get() >= MAX_FAILURES_IN_A_ROW {
            self.stop_with(format!(
                "{MAX_FAILURES_IN_A_ROW} sessions in a row could not start; the last: {why}"
            ));
        }
    }

    /// No further request or transfer may start (what is left of the run
    /// is too short for one).
    pub fn exhaust(&self) {
        self.budget.set(Some(0));
    }

    /// Stops the run for good with `why` (exit 2).
    pub fn stop_with(&self, why: String) {
        self.stopped.set(true);
        self.fatal.borrow_mut().get_or_insert(why);
    }

    fn note(&self, now: Instant) {
        if now > self.last_event.get() {
            self.last_event.set(now);
        }
    }

    /// Requests or transfers that succeeded.
    pub fn successes(&self) -> u64 {
        self.successes.get()
    }

    /// When the last request or transfer ended.
    pub fn last_event(&self) -> Instant {
        self.last_event.get()
    }

    /// Why the run was stopped early, if it was.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.borrow().clone()
    }
}

/// The bytes of a TCP answer stream can never frame an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFraming;

/// What an answer meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A right answer; the next request may go.
    Answered,
    /// A right answer after which the server closes the connection (hello
    /// RESET over TCP): counted, then this session ends.
    AnsweredThenClosed,
    /// Not an answer to what was asked: counted as an error.
    Wrong,
    /// A well-formed answer to an earlier request (a UDP answer that
    /// arrived after its timeout): ignored, the current request still waits.
    Stale,
}

/// The protocol's part of a [`Repeat`] session.
pub trait Exchange {
    /// Appends the next request, framed for `transport`.
    fn request(&mut self, transport: Transport, buf: &mut BytesMut);
    /// TCP: the length of the first whole answer at the front of `bytes`
    /// (framing included) and the answer's own range, `Ok(None)` when more
    /// bytes are needed, `Err` when no answer can ever be made of them.
    ///
    /// # Errors
    /// The bytes break the protocol's framing.
    fn split(&self, bytes: &[u8]) -> Result<Option<(usize, core::ops::Range<usize>)>, BadFraming>;
    /// Checks one answer (without its framing) against the request.
    fn check(&mut self, answer: &[u8]) -> Verdict;
}

#[derive(Clone, Copy, Debug)]
enum Turn {
    /// The next request is due.
    Ready,
    /// Sent at `sent_at`; a timeout at `deadline`.
    Waiting { sent_at: Instant, deadline: Instant },
    /// Closed (and the slot released).
    Done,
}

/// Longest TCP backlog of answer bytes a [`Repeat`] keeps before deciding
/// the server is not speaking the protocol.
const MAX_INBOX: usize = 1 << 20;

/// Request/response on one socket or connection. See the module docs.
#[derive(Debug)]
pub struct Repeat<E> {
    exchange: E,
    transport: Transport,
    run: Rc<Run>,
    slot: usize,
    timeout: Duration,
    turn: Turn,
    inbox: Vec<u8>,
    close: Option<CloseReason>,
}

impl<E: Exchange> Repeat<E> {
    /// A session in `slot` (claimed by the caller) that waits `timeout` for
    /// each answer.
    pub fn new(
        exchange: E,
        transport: Transport,
        run: Rc<Run>,
        slot: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            exchange,
            transport,
            run,
            slot,
            timeout,
            turn: Turn::Ready,
            inbox: Vec::new(),
            close: None,
        }
    }

    fn end(&mut self, reason: CloseReason) {
        if matches!(self.turn, Turn::Done) {
            return;
        }
        self.turn = Turn::Done;
        self.close = Some(reason);
        self.run.release_slot(self.slot);
    }

    fn fail(&mut self, now: Instant, why: &str) {
        if !self.run.over(now) {
            self.run.recorder.borrow_mut().add_error(now);
            self.run.failed(now, why);
        }
        self.end(CloseReason::Aborted);
    }

    fn answer(&mut self, now: Instant, answer_len: usize, verdict: Verdict) {
        let Turn::Waiting { sent_at, .. } = self.turn else {
            return; // late answer to a request that already timed out
        };
        if self.run.over(now) {
            return self.end(CloseReason::Aborted);
        }
        match verdict {
            Verdict::Answered | Verdict::AnsweredThenClosed => {
                let mut rec = self.run.recorder.borrow_mut();
                rec.add_request(now, now.saturating_since(sent_at));
                rec.add_packets(now, 1);
                rec.add_bytes(now, answer_len as u64);
                drop(rec);
                self.run.succeeded(now);
                self.turn = Turn::Ready;
                if verdict == Verdict::AnsweredThenClosed {
                    self.end(CloseReason::Completed);
                }
            }
            Verdict::Wrong => self.fail(now, "a wrong answer"),
            Verdict::Stale => {}
        }
    }
}

impl<E: Exchange> Session for Repeat<E> {
    fn side(&self) -> Side {
        Side::Client
    }

    fn handle_input(&mut self, cx: &mut Context<'_>, input: Input<'_>) {
        let now = cx.now;
        match input {
            Input::Datagram { payload, .. } => {
                if matches!(self.turn, Turn::Waiting { .. }) {
                    let verdict = self.exchange.check(payload);
                    self.answer(now, payload.len(), verdict);
                }
            }
            Input::Stream(bytes) => {
                self.inbox.extend_from_slice(bytes);
                loop {
                    match self.exchange.split(&self.inbox) {
                        Ok(Some((used, range))) => {
                            let verdict = match self.inbox.get(range) {
                                Some(answer) => self.exchange.check(answer),
                                None => Verdict::Wrong,
                            };
                            self.inbox.drain(..used.min(self.inbox.len()));
                            self.answer(now, used, verdict);
                            if matches!(self.turn, Turn::Done) {
                                return;
                            }
                        }
                        Ok(None) if self.inbox.len() <= MAX_INBOX => break,
                        Ok(None) | Err(BadFraming) => return self.fail(now, "a malformed answer"),
                    }
                }
            }
            Input::StreamEnd => {
                if matches!(self.turn, Turn::Waiting { .. }) {
                    self.fail(now, "the server closed the connection");
                } else {
                    self.end(CloseReason::PeerClosed);
                }
            }
            Input::Failed(kind) => self.fail(now, &std::io::Error::from(kind).to_string()),
        }
    }

    fn handle_timeout(&mut self, cx: &mut Context<'_>) {
        let now = cx.now;
        if self.run.over(now) {
            return self.end(CloseReason::Aborted);
        }
        if let Turn::Waiting { deadline, .. } = self.turn
            && now >= deadline
        {
            self.run.recorder.borrow_mut().add_timeout(now);
            self.run.failed(now, "no answer within the timeout");
            match self.transport {
                // A lost datagram: the next request goes out, the late
                // answer (if any) is ignored as stale.
                Transport::Udp => self.turn = Turn::Ready,
                // A stalled connection is not worth waiting on.
                Transport::Tcp => self.end(CloseReason::TimedOut { tries: 1 }),
            }
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context<'_>,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        if !matches!(self.turn, Turn::Ready) {
            return None;
        }
        if !self.run.take(cx.now) {
            self.end(CloseReason::Completed);
            return None;
        }
        let before = buf.len();
        self.exchange.request(self.transport, buf);
        self.turn = Turn::Waiting {
            sent_at: cx.now,
            deadline: cx.now + self.timeout,
        };
        Some(Transmit {
            to: None,
            len: buf.len() - before,
        })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let end = self.run.end_at();
        match self.turn {
            Turn::Done => None,
            Turn::Ready => end,
            Turn::Waiting { deadline, .. } => Some(end.map_or(deadline, |e| e.min(deadline))),
        }
    }

    fn poll_request(&mut self) -> Option<Request> {
        self.close.take().map(Request::Close)
    }

    fn is_coarse(&self) -> bool {
        true
    }
}

/// How a [`Tracked`] session's bytes are counted as they move.
#[derive(Debug)]
pub enum Count {
    /// The client's own progress counter (payload bytes moved).
    Progress(crate::proto::outcome::Progress),
    /// What arrives: a datagram is one packet and its bytes, stream input
    /// is bytes (lab streams, whose client keeps samples, not a counter).
    Input,
}

/// Records a wrapped client's outcome when it closes, at `now`, `took`
/// after it started; returns whether it succeeded.
pub type Settle = Box<dyn FnOnce(&Run, Instant, Duration) -> bool>;

/// How long a slot whose transfer failed waits before its replacement
/// starts: a server that refuses at once ("too many transfers", "not
/// found") would otherwise see a tight retry loop.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(10);

/// One protocol client session, unchanged, measured. See the module docs.
pub struct Tracked {
    inner: Box<dyn Session>,
    run: Rc<Run>,
    slot: usize,
    started: Instant,
    count: Count,
    counted: u64,
    now: Instant,
    settle: Option<Settle>,
    close: Option<CloseReason>,
    done: bool,
    /// A failed transfer holds its slot until then (see [`RETRY_BACKOFF`]).
    backoff: Option<(Instant, CloseReason)>,
}

impl core::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tracked")
            .field("slot", &self.slot)
            .field("counted", &self.counted)
            .finish_non_exhaustive()
    }
}

impl Tracked {
    /// Wraps `inner`, started at `started` in `slot` (claimed by the caller).
    pub fn new(
        inner: Box<dyn Session>,
        run: Rc<Run>,
        slot: usize,
        started: Instant,
        count: Count,
        settle: Settle,
    ) -> Self {
        Self {
            inner,
            run,
            slot,
            started,
            count,
            counted: 0,
            now: started,
            settle: Some(settle),
            close: None,
            done: false,
            backoff: None,
        }
    }

    fn sync_progress(&mut self, now: Instant) {
        self.now = now;
        if let Count::Progress(progress) = &self.count {
            let moved = progress.get();
            if moved > self.counted && !self.run.over(now) {
                self.run
                    .recorder
                    .borrow_mut()
                    .add_bytes(now, moved - self.counted);
            }
            self.counted = self.counted.max(moved);
        }
    }

    fn abandon(&mut self) {
        if let Some((_, reason)) = self.backoff.take() {
            self.close = Some(reason);
            self.run.release_slot(self.slot);
        } else if !self.done {
            self.done = true;
            self.settle = None;
            self.close = Some(CloseReason::Aborted);
            self.run.release_slot(self.slot);
        }
    }
}

impl Session for Tracked {
    fn side(&self) -> Side {
        Side::Client
    }

    fn handle_input(&mut self, cx: &mut Context<'_>, input: Input<'_>) {
        if self.done {
            return;
        }
        if self.run.over(cx.now) {
            return self.abandon();
        }
        if matches!(self.count, Count::Input) {
            let mut rec = self.run.recorder.borrow_mut();
            match input {
                Input::Datagram { payload, .. } => {
                    rec.add_packets(cx.now, 1);
                    rec.add_bytes(cx.now, payload.len() as u64);
                }
                Input::Stream(bytes) => rec.add_bytes(cx.now, bytes.len() as u64),
                Input::StreamEnd | Input::Failed(_) => {}
            }
        }
        self.inner.handle_input(cx, input);
        self.sync_progress(cx.now);
        if let Input::Failed(_) = input {
            // A failed TCP socket is freed right after this call, without
            // asking for requests: settle now, and give the slot back now.
            let _ = self.inner.poll_request();
            self.done = true;
            if let Some(settle) = self.settle.take()
                && !self.run.over(cx.now)
            {
                settle(&self.run, cx.now, cx.now.saturating_since(self.started));
            }
            self.close = Some(CloseReason::Aborted);
            self.run.release_slot(self.slot);
        }
    }

    fn handle_timeout(&mut self, cx: &mut Context<'_>) {
        if self
            .backoff
            .as_ref()
            .is_some_and(|(until, _)| cx.now >= *until)
            || self.run.over(cx.now)
        {
            return self.abandon();
        }
        if self.done {
            return;
        }
        self.inner.handle_timeout(cx);
        self.sync_progress(cx.now);
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context<'_>,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        if self.done {
            return None;
        }
        let t = self.inner.poll_transmit(cx, limit, buf);
        self.sync_progress(cx.now);
        t
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if let Some((until, _)) = &self.backoff {
            let until = *until;
            return Some(until);
        }
        if self.done {
            return None;
        }
        match (self.inner.poll_timeout(), self.run.end_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_request(&mut self) -> Option<Request> {
        if let Some(reason) = self.close.take() {
            return Some(Request::Close(reason));
        }
        if self.done {
            return None;
        }
        let request = self.inner.poll_request()?;
        let Request::Close(reason) = request;
        self.done = true;
        let now = self.now;
        let succeeded = match self.settle.take() {
            Some(settle) if !self.run.over(now) => {
                settle(&self.run, now, now.saturating_since(self.started))
            }
            _ => true,
        };
        if !succeeded {
            // Keep the slot (and the socket) a moment; see RETRY_BACKOFF.
            self.backoff = Some((now + RETRY_BACKOFF, reason));
            return None;
        }
        self.run.release_slot(self.slot);
        Some(Request::Close(reason))
    }

    fn wants_input(&self) -> bool {
        self.done || self.inner.wants_input()
    }

    fn poll_file(&mut self) -> Option<FileChunk> {
        if self.done {
            None
        } else {
            self.inner.poll_file()
        }
    }

    fn advance_file(&mut self, cx: &mut Context<'_>, n: u64) {
        if !self.done {
            self.inner.advance_file(cx, n);
            self.sync_progress(cx.now);
        }
    }

    fn is_paced(&self) -> bool {
        !self.done && self.inner.is_paced()
    }

    fn is_coarse(&self) -> bool {
        self.done || self.inner.is_coarse()
    }
}

/// Where interval reports go as they close (shared by the controller and
/// the driver, which closes the last one of a count-bounded run).
pub type OnInterval = Rc<RefCell<dyn FnMut(&IntervalReport)>>;

/// The detached session that closes intervals and owns the `-t` end.
pub struct Controller {
    run: Rc<Run>,
    on_interval: OnInterval,
    close: Option<CloseReason>,
    done: bool,
}

impl core::fmt::Debug for Controller {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Controller")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller that hands each closed interval to `on_interval`.
    pub fn new(run: Rc<Run>, on_interval: OnInterval) -> Self {
        Self {
            run,
            on_interval,
            close: None,
            done: false,
        }
    }

    /// Closes every interval due by `now`, at `now`: a close a little late
    /// makes that interval a little longer (its rates use the real length;
    /// the grid does not drift). Called by the driver at the end of a run
    /// as well.
    pub fn close_due(run: &Run, now: Instant, on_interval: &OnInterval) {
        loop {
            let due = run.recorder.borrow().next_interval();
            match due {
                Some(at) if at <= now => {
                    let report = run.recorder.borrow_mut().close_interval(now);
                    (on_interval.borrow_mut())(&report);
                    run.intervals.borrow_mut().push(report);
                }
                _ => break,
            }
        }
    }
}

impl Session for Controller {
    fn side(&self) -> Side {
        Side::Client
    }

    fn handle_input(&mut self, _cx: &mut Context<'_>, _input: Input<'_>) {}

    fn handle_timeout(&mut self, cx: &mut Context<'_>) {
        if self.done {
            return;
        }
        // Intervals past the end are not closed: the run has no data there.
        let limit = self.run.end_at().map_or(cx.now, |end| end.min(cx.now));
        Self::close_due(&self.run, limit, &self.on_interval);
        if self.run.over(cx.now) || (self.run.active() == 0 && !self.run.may_start(cx.now)) {
            self.done = true;
            self.close = Some(CloseReason::Completed);
        }
    }

    fn poll_transmit(
        &mut self,
        _cx: &mut Context<'_>,
        _limit: usize,
        _buf: &mut BytesMut,
    ) -> Option<Transmit> {
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        let next = self.run.recorder.borrow().next_interval();
        match (next, self.run.end_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_request(&mut self) -> Option<Request> {
        self.close.take().map(Request::Close)
    }
}

#[cfg(test)]
mod tests {
    //! The sessions scripted in virtual time: no socket, no clock.

    use super::*;
    use crate::bench::exchange::EchoExchange;
    use crate::proto::testing::{at, drain_requests, drain_tx, feed, shared};
    use std::net::SocketAddr;

    fn peer() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    fn run(end_ms: Option<u64>, budget: Option<u64>) -> Rc<Run> {
        Rc::new(Run::new(
            Recorder::new(at(0), None),
            at(0),
            end_ms.map(at),
            budget,
            2,
        ))
    }

    fn echo(run: &Rc<Run>, transport: Transport) -> Repeat<EchoExchange> {
        let slot = run.claim_slot().unwrap();
        Repeat::new(
            EchoExchange::new(8, 1),
            transport,
            run.clone(),
            slot,
            Duration::from_millis(100),
        )
    }

    fn answer(s: &mut dyn Session, sh: &mut crate::proto::Shared, ms: u64, bytes: &[u8]) {
        let input = Input::Datagram {
            from: peer(),
            payload: bytes,
            kernel_ns: None,
        };
        feed(s, sh, at(ms), peer(), input);
    }

    fn timeout(s: &mut dyn Session, sh: &mut crate::proto::Shared, ms: u64) {
        let mut cx = Context {
            now: at(ms),
            tag: crate::proto::Tag { key: 0, peer: None },
            shared: sh,
        };
        s.handle_timeout(&mut cx);
    }

    #[test]
    fn repeat_counts_answers_and_stops_at_the_budget() {
        let mut sh = shared(Duration::ZERO, 0);
        let r = run(None, Some(2));
        let mut s = echo(&r, Transport::Udp);
        let request = drain_tx(&mut s, &mut sh, at(1));
        assert_eq!(request.len(), 8);
        answer(&mut s, &mut sh, 2, b"wrong!!!");
        assert_eq!(
            drain_requests(&mut s),
            vec![Request::Close(CloseReason::Aborted)]
        );
        assert_eq!(r.active(), 0, "a wrong answer frees the slot");

        let r = run(None, Some(2));
        let mut s = echo(&r, Transport::Udp);
        for ms in [1, 3] {
            let request = drain_tx(&mut s, &mut sh, at(ms));
            answer(&mut s, &mut sh, ms + 1, &request);
        }
        // The budget is spent: the next poll closes instead of sending.
        assert!(drain_tx(&mut s, &mut sh, at(5)).is_empty());
        assert_eq!(
            drain_requests(&mut s),
            vec![Request::Close(CloseReason::Completed)]
        );
        let summary = r.recorder.borrow_mut().finish(at(5));
        assert_eq!(summary.figures.requests, 2);
        assert_eq!(summary.figures.bytes, 16);
        assert_eq!(r.successes(), 2);
        assert_eq!(r.active(), 0);
    }

    #[test]
    fn repeat_timeouts_resend_over_udp_and_close_over_tcp() {
        let mut sh = shared(Duration::ZERO, 0);
        let r = run(None, None);
        let mut s = echo(&r, Transport::Udp);
        let first = drain_tx(&mut s, &mut sh, at(0));
        assert_eq!(s.poll_timeout(), Some(at(100)));
        timeout(&mut s, &mut sh, 100);
        assert_eq!(drain_tx(&mut s, &mut sh, at(100)), first, "a new request");
        // The late answer to the first counts for the second: same bytes.
        answer(&mut s, &mut sh, 101, &first);
        let summary = r.recorder.borrow_mut().finish(at(101));
        assert_eq!((summary.figures.timeouts, summary.figures.requests), (1, 1));

        let r = run(None, None);
        let mut s = echo(&r, Transport::Tcp);
        let _ = drain_tx(&mut s, &mut sh, at(0));
        timeout(&mut s, &mut sh, 100);
        assert_eq!(
            drain_requests(&mut s),
            vec![Request::Close(CloseReason::TimedOut { tries: 1 })]
        );
        assert_eq!(r.active(), 0);
    }

    #[test]
    fn nothing_is_recorded_at_the_end() {
        let mut sh = shared(Duration::ZERO, 0);
        let r = run(Some(50), None);
        let mut s = echo(&r, Transport::Udp);
        let request = drain_tx(&mut s, &mut sh, at(0));
        assert_eq!(
            s.poll_timeout(),
            Some(at(50)),
            "the end comes before the timeout"
        );
        answer(&mut s, &mut sh, 50, &request);
        assert_eq!(
            drain_requests(&mut s),
            vec![Request::Close(CloseReason::Aborted)]
        );
        let summary = r.recorder.borrow_mut().finish(at(50));
        assert_eq!(summary.figures.requests, 0);
        assert!(!r.may_start(at(50)));
    }

    /// A session that closes at once: a transfer refused by the server.
    #[derive(Debug, Default)]
    struct Refused {
        asked: bool,
    }

    impl Session for Refused {
        fn side(&self) -> Side {
            Side::Client
        }
        fn handle_input(&mut self, _cx: &mut Context<'_>, _input: Input<'_>) {}
        fn handle_timeout(&mut self, _cx: &mut Context<'_>) {}
        fn poll_transmit(
            &mut self,
            _: &mut Context<'_>,
            _: usize,
            _: &mut BytesMut,
        ) -> Option<Transmit> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn poll_request(&mut self) -> Option<Request> {
            (!core::mem::replace(&mut self.asked, true))
                .then_some(Request::Close(CloseReason::Completed))
        }
    }

    #[test]
    fn a_failed_transfer_holds_its_slot_for_the_backoff() {
        let mut sh = shared(Duration::ZERO, 0);
        let r = run(None, None);
        let slot = r.claim_slot().unwrap();
        let settle: Settle = Box::new(|run, now, _| {
            run.recorder.borrow_mut().add_error(now);
            false
        });
        let mut s = Tracked::new(
            Box::new(Refused::default()),
            r.clone(),
            slot,
            at(0),
            Count::Input,
            settle,
        );
        timeout(&mut s, &mut sh, 1);
        assert!(drain_requests(&mut s).is_empty(), "held, not closed");
        assert_eq!(r.active(), 1);
        assert_eq!(s.poll_timeout(), Some(at(1) + RETRY_BACKOFF));
        timeout(&mut s, &mut sh, 11);
        assert_eq!(
            drain_requests(&mut s),
            vec![Request::Close(CloseReason::Completed)]
        );
        assert_eq!(r.active(), 0);
        assert_eq!(r.recorder.borrow_mut().finish(at(11)).figures.errors, 1);
    }

    #[test]
    fn too_many_failures_stop_the_run() {
        let r = run(None, None);
        for _ in 0..MAX_FAILURES_IN_A_ROW {
            assert!(r.fatal().is_none());
            r.failed(at(1), "refused");
        }
        assert!(r.fatal().is_some_and(|w| w.contains("refused")));
        assert!(!r.may_start(at(1)));

        // After a success, lost answers alone do not stop a run; sockets
        // that cannot even open do.
        let r = run(None, None);
        r.succeeded(at(1));
        for _ in 0..2 * MAX_FAILURES_IN_A_ROW {
            r.failed(at(2), "timeout");
        }
        assert!(r.fatal().is_none());
        for _ in 0..MAX_FAILURES_IN_A_ROW {
            r.start_failed(at(3), "too many open files");
        }
        assert!(r.fatal().is_some_and(|w| w.contains("could not start")));
        let r = run(None, None);
        r.exhaust();
        assert!(!r.may_start(at(0)) && !r.take(at(0)));
    }
}
