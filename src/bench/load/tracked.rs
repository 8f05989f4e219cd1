//! [`Tracked`]: one protocol client session, unchanged, measured.
//!
//! Owns the measuring around a wrapped client: counting its bytes (and
//! datagrams) as they move, settling its outcome into the run when it
//! closes, and holding the slot of a failed transfer for
//! [`RETRY_BACKOFF`]. It never alters the wrapped session's bytes or
//! deadlines (it only stops calling it once the run is over), never records
//! past the run's end (a session given the [`END_GRACE`] records what
//! settles in it at the end), and gives its slot back exactly once.

use super::run::{END_GRACE, Run};
use crate::proto::{
    CloseReason, Context, DatagramInput, DatagramSession, Driven, FileChunk, PartId, StreamInput,
    StreamSession, Transmit, Wake,
};
use crate::time::{Duration, Instant};
use bytes::BytesMut;
use std::rc::Rc;

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
    /// Whether the session may settle in the run's [`END_GRACE`].
    grace: bool,
    /// Also counts the bytes recorded here (a `--bidir` direction's).
    also: Option<Rc<core::cell::Cell<u64>>>,
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
            grace: false,
            also: None,
        }
    }

    /// The same session, allowed to deliver its outcome in the run's
    /// [`END_GRACE`] when it is still in flight at the `-t` end: for a
    /// session whose outcome carries its measurement (a stream), planned
    /// to end before the run does. Request/response sessions are not
    /// given it: an answer after the end would add a request to a rate
    /// computed over the planned span.
    #[must_use]
    pub fn with_end_grace(mut self) -> Self {
        self.grace = true;
        self
    }

    /// Whether the session may still record and settle at `now`.
    fn live(&self, now: Instant) -> bool {
        !self.run.over(now) || (self.grace && self.run.in_end_grace(now))
    }

    /// Also adds every byte it records to `tally` (one direction of a
    /// `--bidir` run), by the same rule, so the directions sum to the total.
    #[must_use]
    pub fn counting_into(mut self, tally: Rc<core::cell::Cell<u64>>) -> Self {
        self.also = Some(tally);
        self
    }

    fn sync_progress(&mut self, now: Instant) {
        self.now = now;
        if let Count::Progress(progress) = &self.count {
            let moved = progress.get();
            if moved > self.counted && self.live(now) {
                self.run
                    .recorder
                    .borrow_mut()
                    .add_bytes(self.run.record_at(now), moved - self.counted);
                if let Some(also) = &self.also {
                    also.set(also.get().saturating_add(moved - self.counted));
                }
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
        if !self.live(cx.now) {
            return self.abandon();
        }
        if matches!(self.count, Count::Input)
            && let Some((packets, bytes)) = moved
        {
            let at = self.run.record_at(cx.now);
            let mut rec = self.run.recorder.borrow_mut();
            if packets > 0 {
                rec.add_packets(at, packets);
            }
            rec.add_bytes(at, bytes);
        }
        feed(&mut self.inner, cx);
        self.sync_progress(cx.now);
        if failed {
            // A failed TCP socket is freed right after this call, without
            // asking for its end: settle now, and give the slot back now.
            let _ = self.inner.poll_close();
            self.done = true;
            if let Some(settle) = self.settle.take()
                && self.live(cx.now)
            {
                let took = cx.now.saturating_since(self.started);
                settle(&self.run, self.run.record_at(cx.now), took);
            }
            self.close = Some(CloseReason::Aborted);
            self.run.release_slot(self.slot);
        }
    }

    /// `poll_transmit` on either transport, through `pull`. Once the
    /// inner session has nothing more to send, its end is asked for here:
    /// the driver reads the deadline before the end (`proto::drive`), so
    /// a failure's backoff must exist before `poll_timeout` is asked, or a
    /// session with no timer left would hold its slot forever.
    fn transmit<T>(&mut self, now: Instant, pull: impl FnOnce(&mut S) -> Option<T>) -> Option<T> {
        if self.done {
            return None;
        }
        let t = pull(&mut self.inner);
        self.sync_progress(now);
        if t.is_none()
            && let Some(reason) = self.inner.poll_close()
        {
            self.end(reason);
        }
        t
    }

    /// The inner session ended for `reason`: settle it, then close at
    /// once, or hold the slot for [`RETRY_BACKOFF`] after a failure.
    fn end(&mut self, reason: CloseReason) {
        self.done = true;
        let now = self.now;
        let succeeded = match self.settle.take() {
            Some(settle) if self.live(now) => {
                let took = now.saturating_since(self.started);
                settle(&self.run, self.run.record_at(now), took)
            }
            _ => true,
        };
        if succeeded {
            self.run.release_slot(self.slot);
            self.close = Some(reason);
        } else {
            // Keep the slot (and the socket) a moment; see RETRY_BACKOFF.
            self.backoff = Some((now + RETRY_BACKOFF, reason));
        }
    }
}

impl<S: Driven + ?Sized> Driven for Tracked<S> {
    fn handle_timeout(&mut self, cx: &mut Context) {
        let held = self.backoff.as_ref();
        // Once the run is over no replacement starts: a held slot goes at
        // once, a live one at the end (or the end of its grace).
        if held.is_some_and(|(until, _)| cx.now >= *until)
            || (self.run.over(cx.now) && (held.is_some() || !self.live(cx.now)))
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
        let end = self.run.end_at().map(|end| {
            if self.grace {
                end.saturating_add(END_GRACE)
            } else {
                end
            }
        });
        match (self.inner.poll_timeout(), end) {
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
        // Reached when the transmit step stopped early (backpressure):
        // the end is asked for here instead.
        let reason = self.inner.poll_close()?;
        self.end(reason);
        self.close.take()
    }

    fn wants_input(&self) -> bool {
        self.done || self.inner.wants_input()
    }

    // A session with parts of its own (the TUN stack's connections) keeps
    // their timers; none is wrapped today, but a default here would stop
    // them silently.
    fn poll_part_timeout(&mut self) -> Option<(PartId, Option<Instant>)> {
        self.inner.poll_part_timeout()
    }

    fn handle_part_timeout(&mut self, cx: &mut Context, part: PartId) {
        if !self.done {
            self.inner.handle_part_timeout(cx, part);
            self.sync_progress(cx.now);
        }
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
            DatagramInput::Failed { .. } | DatagramInput::Packet { .. } => None,
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

    fn wants_receive_timestamps(&self) -> bool {
        self.inner.wants_receive_timestamps()
    }
}

#[cfg(test)]
mod tests {
    //! The wrapper scripted in virtual time: no socket, no clock.

    use super::*;
    use crate::bench::load::testing::{closes, run, timeout};
    use crate::proto::testing::at;

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

    /// A stream whose report comes with its last datagram (`END`).
    #[derive(Debug, Default)]
    struct Stream {
        ended: bool,
    }

    impl Driven for Stream {
        fn poll_close(&mut self) -> Option<CloseReason> {
            core::mem::take(&mut self.ended).then_some(CloseReason::Completed)
        }
    }

    impl DatagramSession for Stream {
        fn handle_input(&mut self, _cx: &mut Context, input: DatagramInput<'_>) {
            if let DatagramInput::Datagram { payload, .. } = input {
                self.ended |= payload == b"END";
            }
        }
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            _: &mut BytesMut,
        ) -> Option<Transmit> {
            None
        }
    }

    /// A stream started at 0 in a run that ends at 100 ms, given the end
    /// grace or not; its settle records a transfer.
    fn stream(grace: bool) -> (Rc<Run>, Tracked<dyn DatagramSession>) {
        stream_in(run(Some(100), None), grace)
    }

    fn stream_in(r: Rc<Run>, grace: bool) -> (Rc<Run>, Tracked<dyn DatagramSession>) {
        let slot = r.claim_slot().unwrap();
        let settle: Settle = Box::new(|run, now, took| {
            run.recorder.borrow_mut().add_transfer(now, 1000, took);
            run.succeeded(now);
            true
        });
        let s = Tracked::<dyn DatagramSession>::new(
            Box::new(Stream::default()),
            r.clone(),
            slot,
            at(0),
            Count::Input,
            settle,
        );
        (r, if grace { s.with_end_grace() } else { s })
    }

    /// Its last segment and end arrive at `ms`; then the session is closed
    /// or released, as the driver would see it.
    fn end_at(s: &mut Tracked<dyn DatagramSession>, ms: u64) -> Vec<CloseReason> {
        let peer = "192.0.2.1:9".parse().unwrap();
        crate::proto::testing::feed_datagram(s, at(ms), peer, b"seg");
        crate::proto::testing::feed_datagram(s, at(ms), peer, b"END");
        closes(s)
    }

    /// The bug this guards: on a loaded machine a stream planned to end
    /// before the run ends a few ms after it, and was dropped, leaving a
    /// run with packets measured and "no stream succeeded".
    #[test]
    fn a_stream_late_by_less_than_the_grace_still_counts_at_the_end() {
        let (r, mut s) = stream(true);
        assert_eq!(
            s.poll_timeout(),
            Some(at(100) + END_GRACE),
            "no wake at the end"
        );
        timeout(&mut s, 100);
        assert_eq!(r.active(), 1, "in flight at the end: held for the grace");
        assert!(!r.may_start(at(101)), "nothing new starts in the grace");
        assert_eq!(end_at(&mut s, 103), vec![CloseReason::Completed]);
        assert_eq!((r.active(), r.successes()), (0, 1));
        // Recorded at the end, in the last interval (its last datagrams
        // too, 2 × 3 bytes): the span, and every rate, stays the planned
        // 100 ms.
        let mut rec = r.recorder.borrow_mut();
        let last = rec.close_interval(at(100)).figures;
        assert_eq!(
            (last.transfers, last.bytes, last.end_ns),
            (1, 6, 100_000_000)
        );
        let total = rec.finish(at(100)).figures;
        assert_eq!(
            (total.transfers, total.bytes, total.end_ns),
            (1, 6, 100_000_000)
        );
    }

    /// The controller leaves the interval due at the end to the driver
    /// (`bench::drive`), which closes it after the grace: what settled
    /// late is in it, not in an extra interval after the end.
    #[test]
    fn the_interval_due_at_the_end_closes_after_the_grace() {
        use crate::bench::load::{Controller, OnInterval};
        use crate::bench::report::Recorder;
        let interval = Some(Duration::from_millis(50));
        let r = Rc::new(Run::new(
            Recorder::new(at(0), interval),
            at(0),
            Some(at(100)),
            None,
            1,
        ));
        let (r, mut s) = stream_in(r, true);
        let on: OnInterval = Rc::new(core::cell::RefCell::new(
            |_: &mut crate::bench::report::IntervalReport, _: Instant| {},
        ));
        let mut c = Controller::new(r.clone(), on.clone());
        timeout(&mut c, 50);
        timeout(&mut c, 100);
        assert_eq!(closes(&mut c), vec![CloseReason::Completed]);
        assert_eq!(end_at(&mut s, 103), vec![CloseReason::Completed]);
        Controller::close_due(&r, at(100), at(103), &on);
        let spans: Vec<_> = r
            .intervals
            .borrow()
            .iter()
            .map(|i| (i.figures.end_ns, i.figures.transfers))
            .collect();
        assert_eq!(spans, vec![(50_000_000, 0), (100_000_000, 1)]);
        assert!(!r.recorder.borrow().interval_has_data(), "no trailing one");
    }

    #[test]
    fn a_stream_later_than_the_grace_is_dropped() {
        let (r, mut s) = stream(true);
        let after = 100 + u64::try_from(END_GRACE.as_millis()).unwrap();
        timeout(&mut s, after);
        assert_eq!(closes(&mut s), vec![CloseReason::Aborted]);
        assert!(end_at(&mut s, after + 1).is_empty());
        assert_eq!((r.active(), r.successes()), (0, 0));
        assert_eq!(r.recorder.borrow_mut().finish(at(100)).figures.transfers, 0);
    }

    /// Sessions without the grace (requests, transfers) and an
    /// interrupted run end at once, as before.
    #[test]
    fn without_the_grace_or_after_a_sigint_nothing_settles_after_the_end() {
        let (r, mut s) = stream(false);
        assert_eq!(s.poll_timeout(), Some(at(100)));
        assert_eq!(end_at(&mut s, 101), vec![CloseReason::Aborted]);
        assert_eq!((r.active(), r.successes()), (0, 0));
        let (r, mut s) = stream(true);
        r.interrupt(at(100));
        assert_eq!(end_at(&mut s, 101), vec![CloseReason::Aborted]);
        assert_eq!((r.active(), r.successes()), (0, 0));
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

    /// In the driver's own order (deadline before end), a failed session
    /// with no timer of its own still wakes for its backoff: without it, a
    /// `-n` run (no end time) waited forever for the slot.
    #[test]
    fn the_backoff_is_armed_in_the_drivers_order() {
        let r = run(None, None);
        let slot = r.claim_slot().unwrap();
        let mut s = Tracked::<dyn DatagramSession>::new(
            Box::new(Refused::default()),
            r.clone(),
            slot,
            at(0),
            Count::Input,
            Box::new(|_, _, _| false),
        );
        let mut c = crate::proto::testing::cx(at(1), None);
        s.handle_timeout(&mut c);
        let mut buf = BytesMut::new();
        let ((), after) = crate::proto::drive::after_call(&mut s, &mut c, |s, c| {
            while s.poll_transmit(c, 1500, &mut buf).is_some() {}
        });
        assert_eq!(after.deadline, Some(at(1) + RETRY_BACKOFF));
        assert_eq!(after.close, None, "held for the backoff");
        timeout(&mut s, 11);
        assert_eq!(closes(&mut s), vec![CloseReason::Completed]);
        assert_eq!(r.active(), 0);
    }

    /// A success closes in the same pass, its slot given back at once.
    #[test]
    fn a_success_closes_in_the_drivers_order() {
        let r = run(None, None);
        let slot = r.claim_slot().unwrap();
        let mut s = Tracked::<dyn DatagramSession>::new(
            Box::new(Refused::default()),
            r.clone(),
            slot,
            at(0),
            Count::Input,
            Box::new(|_, _, _| true),
        );
        let mut c = crate::proto::testing::cx(at(1), None);
        let ((), after) = crate::proto::drive::after_call(&mut s, &mut c, |s, c| {
            while s.poll_transmit(c, 1500, &mut BytesMut::new()).is_some() {}
        });
        assert_eq!(after.close, Some(CloseReason::Completed));
        assert_eq!(r.active(), 0);
    }

    /// The wrapper asks for kernel receive stamps exactly when the session
    /// it wraps reads them (the lab stream's inter-arrival figures).
    #[test]
    fn receive_timestamps_are_the_wrapped_sessions_wish() {
        let client = |transport| {
            crate::proto::lab::Client::new(
                b"x",
                transport,
                10_000,
                Duration::from_secs(5),
                crate::proto::outcome::OutcomeSlot::new(),
            )
        };
        let wraps = |inner: Box<dyn DatagramSession>| {
            let r = run(None, None);
            let slot = r.claim_slot().unwrap();
            Tracked::<dyn DatagramSession>::new(
                inner,
                r,
                slot,
                at(0),
                Count::Input,
                Box::new(|_, _, _| true),
            )
            .wants_receive_timestamps()
        };
        let refused: Box<Refused> = Box::default();
        assert!(!wraps(refused));
        let server = "127.0.0.1:9".parse().unwrap();
        assert!(wraps(Box::new(client(crate::proto::lab::Transport::Udp {
            server
        }))));
    }
}
