//! [`Tracked`]: one protocol client session, unchanged, measured.
//!
//! Owns the measuring around a wrapped client: counting its bytes (and
//! datagrams) as they move, settling its outcome into the run when it
//! closes, and holding the slot of a failed transfer for
//! [`RETRY_BACKOFF`]. It never alters the wrapped session's bytes or
//! deadlines (it only stops calling it once the run is over), never records
//! at or after the run's end, and gives its slot back exactly once.

use super::run::Run;
use crate::proto::{
    CloseReason, Context, DatagramInput, DatagramSession, Driven, FileChunk, StreamInput,
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
            Some(settle) if !self.run.over(now) => {
                settle(&self.run, now, now.saturating_since(self.started))
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
        // Reached when the transmit step stopped early (backpressure):
        // the end is asked for here instead.
        let reason = self.inner.poll_close()?;
        self.end(reason);
        self.close.take()
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
