//! One userspace TCP connection as a carrier sees it: the engine's [`Tcb`]
//! with one of the project's ordinary stream sessions above it,
//! [`Connection`].
//!
//! Owns the pump between the two: the session's output into the engine's
//! send buffer (never more than [`Tcb::send_room`]), the engine's in-order
//! bytes into the session while it wants input, the peer's FIN as
//! [`StreamInput::End`] and a failure as [`StreamInput::Failed`], each once,
//! and the session's end as the engine's orderly close (or abort). It plays
//! the reactor's part for a session on a kernel socket, so the sessions
//! above cannot tell the two TCPs apart; it logs the engine's counters at
//! close (`-v`).
//!
//! It must never know what carries the segments (the tunstack IPv4 layer
//! or a UDP datagram): segments come in parsed and go out as the engine
//! writes them, checksum left to the carrier. Zero-copy file output
//! ([`StreamSession::poll_file`]) cannot be carried (the engine keeps its
//! own copy of every unacknowledged byte): sessions above it must be built
//! with zero-copy off.

use super::conn::{Error, State, Tcb};
use crate::proto::{CloseReason, Context, StreamInput, StreamSession};
use crate::time::Instant;
use bytes::BytesMut;
use log::debug;
use std::io::ErrorKind;

/// Most session → engine or engine → session steps one pump makes. Each
/// step moves a whole buffer's worth (the engine's room, or one contiguous
/// run of received bytes), so two would do; the bound only guarantees
/// that a session that keeps answering `Some(0)` cannot spin the stack.
const MAX_PUMP_STEPS: usize = 8;

/// The session's end, as the engine learns it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// The session runs.
    Running,
    /// It is done (why), and its last output may not all be queued yet.
    Closing(CloseReason),
    /// The engine was told: `close` (a FIN after the queued bytes) or
    /// `abort`.
    Told,
}

/// A [`Tcb`] with a stream session above it. See the module docs.
pub struct Connection {
    tcb: Tcb,
    app: Box<dyn StreamSession>,
    /// Output the session wrote that the engine has not taken yet (it
    /// took less than the room it announced): sent before asking again.
    pending: BytesMut,
    /// Where the session's end stands.
    end: End,
    /// [`StreamInput::End`] has been delivered.
    end_delivered: bool,
    /// [`StreamInput::Failed`] has been delivered: the session is over.
    failed: bool,
    /// The counters were logged (at the first sight of CLOSED).
    logged: bool,
    /// Where a client's report reads the engine's counters.
    report: Option<CounterCell>,
}

/// The engine's counters as of the last call into a [`Connection`], for a
/// client's `--json`: the reactor owns (and drops) the connection, so the
/// client keeps this handle instead.
pub type CounterCell = std::rc::Rc<core::cell::Cell<Option<super::conn::Counters>>>;

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("tcb", &self.tcb)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// `app` above `tcb`, which was just opened (SYN-SENT or SYN-RECEIVED).
    pub fn new(tcb: Tcb, app: Box<dyn StreamSession>) -> Self {
        Self {
            tcb,
            app,
            pending: BytesMut::new(),
            end: End::Running,
            end_delivered: false,
            failed: false,
            logged: false,
            report: None,
        }
    }

    /// Keeps `cell` up to date with the engine's counters after every call.
    #[must_use]
    pub fn with_counters(mut self, cell: CounterCell) -> Self {
        cell.set(Some(self.tcb.counters()));
        self.report = Some(cell);
        self
    }

    /// One segment of this connection (checksum checked, addresses and
    /// ports matched by the carrier).
    pub fn handle_segment(&mut self, cx: &mut Context, segment: &crate::wire::tcp::Repr<'_>) {
        self.tcb.handle_segment(cx.now, segment);
        self.pump(cx);
    }

    /// Fires the engine's and the session's due timers (a call with
    /// nothing due is a no-op, as for both of them).
    pub fn handle_timeout(&mut self, cx: &mut Context) {
        if self.tcb.poll_timeout().is_some_and(|t| t <= cx.now) {
            self.tcb.handle_timeout(cx.now);
        }
        if self.app_live() && self.app.poll_timeout().is_some_and(|t| t <= cx.now) {
            self.app.handle_timeout(cx);
        }
        self.pump(cx);
    }

    /// The next segment to send (header with checksum zero, then data) at
    /// the start of `out`, and its length; `None` when nothing may go now.
    /// `out` holds at least the engine's `MAX_SEGMENT_OVERHEAD` + MSS.
    pub fn poll_segment(&mut self, cx: &mut Context, out: &mut [u8]) -> Option<usize> {
        // Acknowledgements freed send room since the last call, and a
        // session that sent may read again: let it, before the engine cuts
        // segments.
        self.pump(cx);
        self.tcb.poll_segment(cx.now, out)
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next: the
    /// earlier of the engine's and the (live) session's deadlines.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let app = if self.app_live() {
            self.app.poll_timeout()
        } else {
            None
        };
        match (self.tcb.poll_timeout(), app) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The engine is CLOSED: the carrier may forget the connection once
    /// [`poll_segment`](Self::poll_segment) has nothing more (a RST may
    /// still be queued).
    pub fn is_closed(&self) -> bool {
        self.tcb.state() == State::Closed
    }

    /// The engine, for its state and counters.
    pub fn tcb(&self) -> &Tcb {
        &self.tcb
    }

    /// The session still takes calls: it has not ended and was not told
    /// the connection failed.
    fn app_live(&self) -> bool {
        self.end == End::Running && !self.failed
    }

    /// Moves everything that can move between the engine and the session,
    /// in the order a kernel socket would show it: input, the end of
    /// input or a failure, output, then the session's close.
    fn pump(&mut self, cx: &mut Context) {
        self.pump_input(cx);
        self.pump_output(cx);
        self.log_close(cx);
    }

    fn pump_input(&mut self, cx: &mut Context) {
        for _ in 0..MAX_PUMP_STEPS {
            let data = self.tcb.received();
            if data.is_empty() {
                break;
            }
            let n = data.len();
            if self.app_live() {
                if !self.app.wants_input() {
                    // Backpressure: the bytes stay in the engine's buffer
                    // and its window closes until the session reads again
                    // (the next call into the connection retries).
                    break;
                }
                self.app.handle_input(cx, StreamInput::Bytes(data));
            }
            // A session that ended reads no more: what still arrives is
            // discarded, as the reactor does after a kernel socket's
            // session closed, so the peer is not stalled by our window.
            self.tcb.consume(n);
        }
        if self.app_live()
            && !self.end_delivered
            && self.tcb.fin_received()
            && self.tcb.received().is_empty()
        {
            self.end_delivered = true;
            self.app.handle_input(cx, StreamInput::End);
        }
        if !self.failed
            && let Some(e) = self.tcb.error()
        {
            self.failed = true;
            if self.end == End::Running {
                self.app.handle_input(cx, StreamInput::Failed(kind(e)));
            }
        }
    }

    fn pump_output(&mut self, cx: &mut Context) {
        if self.end == End::Told || self.failed {
            return;
        }
        // Whether the session said it has nothing more to send now.
        let mut idle = false;
        for _ in 0..MAX_PUMP_STEPS {
            if !self.pending.is_empty() {
                let n = self.tcb.send(&self.pending);
                let _ = self.pending.split_to(n);
                if !self.pending.is_empty() {
                    // The engine is full; more after the next ACK.
                    break;
                }
            }
            let room = self.tcb.send_room();
            if room == 0 {
                break;
            }
            match self.app.poll_transmit(cx, room, &mut self.pending) {
                Some(_) if !self.pending.is_empty() => {}
                _ => {
                    idle = true;
                    break;
                }
            }
        }
        if self.end == End::Running
            && let Some(reason) = self.app.poll_close()
        {
            self.end = End::Closing(reason);
        }
        match &self.end {
            End::Closing(CloseReason::Aborted) => self.tcb.abort(),
            // The session's last words go before the FIN: close once it
            // has nothing more and the engine took all of it.
            End::Closing(_) if idle && self.pending.is_empty() => self.tcb.close(),
            _ => return,
        }
        self.end = End::Told;
    }

    /// Logs the engine's counters the first time the connection is seen
    /// CLOSED (`-v`), with the session's tag.
    fn log_close(&mut self, cx: &Context) {
        if let Some(cell) = &self.report {
            cell.set(Some(self.tcb.counters()));
        }
        if self.logged || !self.is_closed() {
            return;
        }
        self.logged = true;
        let c = self.tcb.counters();
        let how = match self.tcb.error() {
            Some(e) => format!("{e:?}"),
            None => "closed".to_owned(),
        };
        debug!(
            "{} tcp {how}: segments in {} out {} bytes in {} out {} retransmits {} \
             (fast {} rto {}) duplicates {} out-of-order {} challenge-acks {} \
             window-probes {} srtt {}us rttvar {}us cwnd {} ssthresh {}",
            cx.tag,
            c.segments_in,
            c.segments_out,
            c.bytes_in,
            c.bytes_out,
            c.retransmits,
            c.fast_retransmits,
            c.rto_expiries,
            c.duplicate_segments,
            c.out_of_order,
            c.challenge_acks,
            c.window_probes,
            c.srtt_us,
            c.rttvar_us,
            c.cwnd,
            c.ssthresh,
        );
    }
}

/// What a session on a kernel socket would have read for `e`.
fn kind(e: Error) -> ErrorKind {
    match e {
        Error::Refused => ErrorKind::ConnectionRefused,
        Error::Reset => ErrorKind::ConnectionReset,
        Error::TimedOut => ErrorKind::TimedOut,
    }
}

#[cfg(test)]
mod tests;
