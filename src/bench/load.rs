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
//!   a connection; stream or datagram) unchanged, counts its bytes as they
//!   move, and records its outcome when it closes;
//! * [`Controller`]: a timer-only job ([`Driven`], added detached) that
//!   closes report intervals and owns the `-t` end.
//!
//! They never open sockets (the driver asks the reactor) and never read
//! the clock. The reactor is single-threaded, so shared state is `Rc` and
//! `Cell`. Nothing is recorded at or after the end of a `-t` run: the last
//! interval closes exactly at the end.

use super::plan::Transport;
use super::report::{IntervalReport, Recorder};
use crate::proto::{
    CloseReason, Context, DatagramInput, DatagramSession, Driven, FileChunk, StreamInput,
    StreamSession, Transmit, Wake,
};
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

impl<E: Exchange> Repeat<E> {
    fn on_datagram(&mut self, now: Instant, payload: &[u8]) {
        if matches!(self.turn, Turn::Waiting { .. }) {
            let verdict = self.exchange.check(payload);
            self.answer(now, payload.len(), verdict);
        }
    }

    fn on_bytes(&mut self, now: Instant, bytes: &[u8]) {
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

    fn on_end(&mut self, now: Instant) {
        if matches!(self.turn, Turn::Waiting { .. }) {
            self.fail(now, "the server closed the connection");
        } else {
            self.end(CloseReason::PeerClosed);
        }
    }

    fn on_failed(&mut self, now: Instant, kind: std::io::ErrorKind) {
        self.fail(now, &std::io::Error::from(kind).to_string());
    }

    /// Appends the next request, if one is due: its length.
    fn next_request(&mut self, now: Instant, buf: &mut BytesMut) -> Option<usize> {
        if !matches!(self.turn, Turn::Ready) {
            return None;
        }
        if !self.run.take(now) {
            self.end(CloseReason::Completed);
            return None;
        }
        let before = buf.len();
        self.exchange.request(self.transport, buf);
        self.turn = Turn::Waiting {
            sent_at: now,
            deadline: now + self.timeout,
        };
        Some(buf.len() - before)
    }
}

impl<E: Exchange> Driven for Repeat<E> {
    fn handle_timeout(&mut self, cx: &mut Context) {
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

    fn poll_timeout(&self) -> Option<Instant> {
        let end = self.run.end_at();
        match self.turn {
            Turn::Done => None,
            Turn::Ready => end,
            Turn::Waiting { deadline, .. } => Some(end.map_or(deadline, |e| e.min(deadline))),
        }
    }

    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl<E: Exchange> StreamSession for Repeat<E> {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        match input {
            StreamInput::Bytes(bytes) => self.on_bytes(cx.now, bytes),
            StreamInput::End => self.on_end(cx.now),
            StreamInput::Failed(kind) => self.on_failed(cx.now, kind),
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        self.next_request(cx.now, buf)
    }
}

impl<E: Exchange> DatagramSession for Repeat<E> {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        match input {
            DatagramInput::Datagram { payload, .. } => self.on_datagram(cx.now, payload),
            DatagramInput::Failed { kind, .. } => self.on_failed(cx.now, kind),
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        let len = self.next_request(cx.now, buf)?;
        Some(Transmit::new(None, len))
    }
}

/// How a [`Tracked`] session's bytes are counted as they move.
#[derive(Debug)]
pub enum Count {
    /// The client's own progress counter (payload bytes moved).
    Progress(Rc<Cell<u64>>),
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
///
/// Generic over the wrapped session's kind: `Tracked<dyn StreamSession>`
/// is a stream session and `Tracked<dyn DatagramSession>` a datagram one;
/// everything but the transport's own calls is written once, here.
pub struct Tracked<S: ?Sized> {
    inner: Box<S>,
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

impl<S: ?Sized> core::fmt::Debug for Tracked<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tracked")
            .field("slot", &self.slot)
            .field("counted", &self.counted)
            .finish_non_exhaustive()
    }
}

impl<S: Driven + ?Sized> Tracked<S> {
    /// Wraps `inner`, started at `started` in `slot` (claimed by the caller).
    pub fn new(
        inner: Box<S>,
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

    /// `handle_input` on either transport: `moved` is what the input
    /// carries (packets, bytes) for [`Count::Input`], `failed` whether the
    /// endpoint failed, and `feed` passes the input on.
    fn input(
        &mut self,
        cx: &mut Context,
        moved: Option<(u64, u64)>,
        failed: bool,
        feed: impl FnOnce(&mut S, &mut Context),
    ) {
        if self.done {
            return;
        }
        if self.run.over(cx.now) {
            return self.abandon();
        }
        if matches!(self.count, Count::Input)
            && let Some((packets, bytes)) = moved
        {
            let mut rec = self.run.recorder.borrow_mut();
            if packets > 0 {
                rec.add_packets(cx.now, packets);
            }
            rec.add_bytes(cx.now, bytes);
        }
        feed(&mut self.inner, cx);
        self.sync_progress(cx.now);
        if failed {
            // A failed TCP socket is freed right after this call, without
            // asking for its end: settle now, and give the slot back now.
            let _ = self.inner.poll_close();
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

    /// `poll_transmit` on either transport, through `pull`.
    fn transmit<T>(&mut self, now: Instant, pull: impl FnOnce(&mut S) -> Option<T>) -> Option<T> {
        if self.done {
            return None;
        }
        let t = pull(&mut self.inner);
        self.sync_progress(now);
        t
    }
}

impl<S: Driven + ?Sized> Driven for Tracked<S> {
    fn handle_timeout(&mut self, cx: &mut Context) {
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

    fn wake(&self) -> Wake {
        // Done, only the backoff is left: it need not be punctual.
        if self.done {
            Wake::Coarse
        } else {
            self.inner.wake()
        }
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        if let Some(reason) = self.close.take() {
            return Some(reason);
        }
        if self.done {
            return None;
        }
        let reason = self.inner.poll_close()?;
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
        Some(reason)
    }

    fn wants_input(&self) -> bool {
        self.done || self.inner.wants_input()
    }
}

impl StreamSession for Tracked<dyn StreamSession> {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        let moved = match input {
            StreamInput::Bytes(bytes) => Some((0, bytes.len() as u64)),
            StreamInput::End | StreamInput::Failed(_) => None,
        };
        let failed = matches!(input, StreamInput::Failed(_));
        self.input(cx, moved, failed, |inner, cx| inner.handle_input(cx, input));
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        self.transmit(cx.now, |inner| inner.poll_transmit(cx, limit, buf))
    }

    fn poll_file(&mut self) -> Option<FileChunk> {
        if self.done {
            None
        } else {
            self.inner.poll_file()
        }
    }

    fn advance_file(&mut self, cx: &mut Context, n: u64) {
        if !self.done {
            self.inner.advance_file(cx, n);
            self.sync_progress(cx.now);
        }
    }
}

impl DatagramSession for Tracked<dyn DatagramSession> {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        let moved = match input {
            DatagramInput::Datagram { payload, .. } => Some((1, payload.len() as u64)),
            DatagramInput::Failed { .. } => None,
        };
        let failed = matches!(input, DatagramInput::Failed { .. });
        self.input(cx, moved, failed, |inner, cx| inner.handle_input(cx, input));
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        let now = cx.now;
        self.transmit(now, |inner| inner.poll_transmit(cx, limit, buf))
    }
}

/// Where interval reports go as they close (shared by the controller and
/// the driver, which closes the last one of a count-bounded run).
pub type OnInterval = Rc<RefCell<dyn FnMut(&IntervalReport)>>;

/// The timer-only job (added detached) that closes intervals and owns
/// the `-t` end.
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

impl Driven for Controller {
    fn handle_timeout(&mut self, cx: &mut Context) {
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

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

#[cfg(test)]
mod tests {
    //! The sessions scripted in virtual time: no socket, no clock.

    use super::*;
    use crate::bench::exchange::EchoExchange;
    use crate::proto::testing::{at, cx, drain_joined, drain_tx, feed_datagram};
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

    fn answer(s: &mut dyn DatagramSession, ms: u64, bytes: &[u8]) {
        feed_datagram(s, at(ms), peer(), bytes);
    }

    fn timeout(s: &mut dyn Driven, ms: u64) {
        s.handle_timeout(&mut cx(at(ms), None));
    }

    /// Every end the session reports now (at most a few: each is taken).
    fn closes(s: &mut dyn Driven) -> Vec<CloseReason> {
        core::iter::from_fn(|| s.poll_close()).take(4).collect()
    }

    #[test]
    fn repeat_counts_answers_and_stops_at_the_budget() {
        let r = run(None, Some(2));
        let mut s = echo(&r, Transport::Udp);
        let request = drain_joined(&mut s, at(1));
        assert_eq!(request.len(), 8);
        answer(&mut s, 2, b"wrong!!!");
        assert_eq!(closes(&mut s), vec![CloseReason::Aborted]);
        assert_eq!(r.active(), 0, "a wrong answer frees the slot");

        let r = run(None, Some(2));
        let mut s = echo(&r, Transport::Udp);
        for ms in [1, 3] {
            let request = drain_joined(&mut s, at(ms));
            answer(&mut s, ms + 1, &request);
        }
        // The budget is spent: the next poll closes instead of sending.
        assert!(drain_joined(&mut s, at(5)).is_empty());
        assert_eq!(closes(&mut s), vec![CloseReason::Completed]);
        let summary = r.recorder.borrow_mut().finish(at(5));
        assert_eq!(summary.figures.requests, 2);
        assert_eq!(summary.figures.bytes, 16);
        assert_eq!(r.successes(), 2);
        assert_eq!(r.active(), 0);
    }

    #[test]
    fn repeat_timeouts_resend_over_udp_and_close_over_tcp() {
        let r = run(None, None);
        let mut s = echo(&r, Transport::Udp);
        let first = drain_joined(&mut s, at(0));
        assert_eq!(s.poll_timeout(), Some(at(100)));
        timeout(&mut s, 100);
        assert_eq!(drain_joined(&mut s, at(100)), first, "a new request");
        // The late answer to the first counts for the second: same bytes.
        answer(&mut s, 101, &first);
        let summary = r.recorder.borrow_mut().finish(at(101));
        assert_eq!((summary.figures.timeouts, summary.figures.requests), (1, 1));

        let r = run(None, None);
        let mut s = echo(&r, Transport::Tcp);
        let _ = drain_tx(&mut s, at(0));
        timeout(&mut s, 100);
        assert_eq!(closes(&mut s), vec![CloseReason::TimedOut { tries: 1 }]);
        assert_eq!(r.active(), 0);
    }

    #[test]
    fn nothing_is_recorded_at_the_end() {
        let r = run(Some(50), None);
        let mut s = echo(&r, Transport::Udp);
        let request = drain_joined(&mut s, at(0));
        assert_eq!(
            s.poll_timeout(),
            Some(at(50)),
            "the end comes before the timeout"
        );
        answer(&mut s, 50, &request);
        assert_eq!(closes(&mut s), vec![CloseReason::Aborted]);
        let summary = r.recorder.borrow_mut().finish(at(50));
        assert_eq!(summary.figures.requests, 0);
        assert!(!r.may_start(at(50)));
    }

    /// A session that closes at once: a transfer refused by the server.
    #[derive(Debug, Default)]
    struct Refused {
        asked: bool,
    }

    impl Driven for Refused {
        fn poll_close(&mut self) -> Option<CloseReason> {
            (!core::mem::replace(&mut self.asked, true)).then_some(CloseReason::Completed)
        }
    }

    impl DatagramSession for Refused {
        fn handle_input(&mut self, _cx: &mut Context, _input: DatagramInput<'_>) {}
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            _: &mut BytesMut,
        ) -> Option<Transmit> {
            None
        }
    }

    #[test]
    fn a_failed_transfer_holds_its_slot_for_the_backoff() {
        let r = run(None, None);
        let slot = r.claim_slot().unwrap();
        let settle: Settle = Box::new(|run, now, _| {
            run.recorder.borrow_mut().add_error(now);
            false
        });
        let mut s = Tracked::<dyn DatagramSession>::new(
            Box::new(Refused::default()),
            r.clone(),
            slot,
            at(0),
            Count::Input,
            settle,
        );
        timeout(&mut s, 1);
        assert!(closes(&mut s).is_empty(), "held, not closed");
        assert_eq!(r.active(), 1);
        assert_eq!(s.poll_timeout(), Some(at(1) + RETRY_BACKOFF));
        timeout(&mut s, 11);
        assert_eq!(closes(&mut s), vec![CloseReason::Completed]);
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
