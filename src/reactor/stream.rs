//! TCP pumps: accept, read into sessions, write their output.
//!
//! Owns the readiness discipline for streams: drain until `WouldBlock` or
//! the turn's budget (then the key goes on the still-ready list), read
//! backpressure, and the connect handshake of outbound streams. Session
//! output is pulled only while the entry's buffer is under the high-water
//! mark, so a slow reader stalls only its own session; output is written
//! only within the session's share of the turn's write budget, so a bulk
//! writer cannot make a turn long for everyone else. Also the listener's
//! side of the descriptor limits: its connection cap, and the backoff that
//! retries `accept` after a shortage instead of wedging.

use super::entry::{Entry, Io, Phase, Role};
use super::{Reactor, Ready, Sent, sys};
use crate::proto::{Context, StreamInput, StreamSession};
use crate::time::Duration;
use bytes::{Buf, BytesMut};
use log::{debug, trace, warn};
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;

/// First pause before `accept` is retried after the process or the system
/// ran out of descriptors or memory. Short, because the usual cause (a
/// burst of connections closing a moment later) clears quickly.
pub(super) const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause between retries: a shortage that lasts costs one failed
/// `accept` per second, and a queued client waits at most this long after
/// descriptors are free again.
pub(super) const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The pause before the next `accept` retry, given the previous one (`None`:
/// the first failure after a success): doubling from
/// [`ACCEPT_BACKOFF_MIN`] to [`ACCEPT_BACKOFF_MAX`].
pub(super) fn next_accept_backoff(previous: Option<Duration>) -> Duration {
    previous.map_or(ACCEPT_BACKOFF_MIN, |d| {
        d.saturating_mul(2)
            .clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX)
    })
}

/// What a failed `accept` means for the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AcceptFailure {
    /// That one connection is gone (reset or aborted before we took it):
    /// take the next.
    Skip,
    /// Out of descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`,
    /// `ENOMEM`), or an error we do not know: the connection stays queued
    /// and the listener retries after a pause. Returning and waiting for
    /// readiness would wedge it: the edge was spent on this failure.
    Retry,
}

/// Sorts an `accept` error (other than `WouldBlock` and `Interrupted`).
pub(super) fn classify_accept_error(e: &std::io::Error) -> AcceptFailure {
    match e.kind() {
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset => AcceptFailure::Skip,
        _ if e.raw_os_error() == Some(libc::EPROTO) => AcceptFailure::Skip,
        _ => AcceptFailure::Retry,
    }
}

impl Reactor {
    /// Accepts up to the budget of connections from the listener at `key`,
    /// while it holds fewer than its cap. After a descriptor or memory
    /// shortage it retries on its own deadline (see [`AcceptFailure`]);
    /// readiness events meanwhile are left to that retry. Then re-reads
    /// the acceptor's deadline: accepting may have changed it.
    pub(super) fn accept(&mut self, key: usize) {
        self.accept_batch(key);
        self.sync_acceptor(key);
    }

    fn accept_batch(&mut self, key: usize) {
        for _ in 0..self.config.accept_budget {
            let entry = &mut self.entries[key];
            let (Io::Listener(listener), Role::StreamAcceptor(listen)) =
                (&entry.io, &mut entry.role)
            else {
                return;
            };
            let state = &mut listen.accept;
            if state.retry_at.is_some() {
                return; // a retry is scheduled; it will drain the queue
            }
            if state.open >= state.max_open {
                // Left in the kernel's backlog until one of ours closes
                // (`reap_closed` wakes the listener then).
                if !state.at_cap {
                    debug!("[#{key}] at its cap of {} connections", state.max_open);
                }
                state.at_cap = true;
                return;
            }
            let (mut stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => match classify_accept_error(&e) {
                    AcceptFailure::Skip => {
                        debug!("[#{key}] accept: {e}");
                        continue;
                    }
                    AcceptFailure::Retry => {
                        let wait = next_accept_backoff(state.backoff);
                        if state.backoff.is_none() {
                            warn!(
                                "[#{key}] accept: {e}; retrying, backing off up to {ACCEPT_BACKOFF_MAX:?}"
                            );
                        } else {
                            debug!("[#{key}] accept: {e}; retry in {wait:?}");
                        }
                        state.backoff = Some(wait);
                        state.retry_at = Some(self.now + wait);
                        return;
                    }
                },
            };
            if state.backoff.take().is_some() {
                log::info!("[#{key}] accepting again");
            }
            self.stats.accepted += 1;
            self.activity = true;
            // The key the new entry will get: known before the acceptor runs,
            // so its log lines and context name the right session.
            let new_key = self.entries.vacant_key();
            let Role::StreamAcceptor(listen) = &mut self.entries[key].role else {
                return;
            };
            let mut cx = Context::new(self.now, new_key, Some(peer));
            let Some(session) = listen.acceptor.accept(&mut cx, peer) else {
                continue;
            };
            // Answers are small and prompt; Nagle would hold pipelined ones back.
            let _ = stream.set_nodelay(true);
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, Token(new_key), Interest::READABLE)
            {
                warn!("[#{new_key} {peer}] register: {e}");
                continue;
            }
            trace!("[#{new_key} {peer}] accepted");
            listen.accept.open += 1;
            let moves_acceptor = listen.acceptor.sessions_move_deadline();
            // Built in the slot's own expression: an `Entry` built first and
            // inserted after is one more 184-byte copy per connection.
            let slot = self.entries.vacant_entry();
            debug_assert_eq!(slot.key(), new_key);
            slot.insert(Entry {
                acceptor: u32::try_from(key).ok(),
                moves_acceptor,
                ..Entry::new(
                    Io::Stream(stream),
                    Role::Stream(session),
                    Some(peer),
                    Interest::READABLE,
                )
            });
            // No read here: EPOLL_CTL_ADD reports data that is already
            // queued, so the first request arrives as an ordinary event.
            self.sessions += 1;
            // Creating a session is a call into it like any other: run the
            // same flush, so its deadline (idle, request) is on the heap
            // from accept on, not only after its first event — a peer that
            // never sends a byte would otherwise never be timed out.
            self.flush(new_key);
        }
        self.still_ready.push(key);
    }

    pub(super) fn stream_ready(&mut self, r: Ready) {
        let entry = &mut self.entries[r.at.key];
        if entry.phase == Phase::Connecting {
            let Io::Stream(stream) = &entry.io else {
                return;
            };
            match stream.take_error() {
                Ok(Some(e)) | Err(e) => return self.fail(r.at.key, e.kind()),
                Ok(None) => {}
            }
            match stream.peer_addr() {
                Ok(_) => entry.phase = Phase::Open,
                Err(e) if e.kind() == ErrorKind::NotConnected => return, // not yet
                Err(e) => return self.fail(r.at.key, e.kind()),
            }
        }
        if r.writable && !self.write_out(r.at.key) {
            return;
        }
        if r.readable {
            self.read_stream(r.at.key);
        }
        self.flush(r.at.key);
    }

    /// Reads until `WouldBlock`, EOF, the budget, or the session pauses.
    /// A closing entry's input is read and discarded until the peer's EOF.
    fn read_stream(&mut self, key: usize) {
        let entry = &mut self.entries[key];
        let Io::Stream(stream) = &mut entry.io else {
            return;
        };
        let Role::Stream(session) = &mut entry.role else {
            return;
        };
        if entry.read_closed {
            return;
        }
        let closing = matches!(entry.phase, Phase::Closing { .. });
        let mut budget = self.config.read_budget;
        loop {
            if !closing && !session.wants_input() {
                entry.read_paused = true;
                return;
            }
            entry.read_paused = false;
            match stream.read(&mut self.read_buf) {
                Ok(0) => {
                    entry.read_closed = true;
                    if closing {
                        // The peer saw our FIN and closed too: done.
                        entry.phase = Phase::Dead;
                        self.reap.push(key);
                    } else {
                        let mut cx = Context::new(self.now, key, entry.peer);
                        session.handle_input(&mut cx, StreamInput::End);
                    }
                    return;
                }
                Ok(n) => {
                    self.activity = true;
                    if !closing {
                        let mut cx = Context::new(self.now, key, entry.peer);
                        session.handle_input(&mut cx, StreamInput::Bytes(&self.read_buf[..n]));
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.still_ready.push(key);
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.fail(key, e.kind()),
            }
        }
    }

    /// Writes buffered output until it is gone or the socket is full.
    /// Returns false if the entry failed.
    pub(super) fn write_out(&mut self, key: usize) -> bool {
        let entry = &mut self.entries[key];
        let Io::Stream(stream) = &mut entry.io else {
            return true;
        };
        // Within this go's share of the turn's budget (none while it waits
        // its turn); the flush that follows defers the entry if output is
        // left.
        let mut allowance = if entry.write_queued {
            0
        } else {
            self.write_share.min(self.write_left)
        };
        self.go_written = 0;
        while !entry.out.is_empty() && allowance > 0 {
            match write_some(stream, &mut entry.out, allowance) {
                Ok(0) => break, // WouldBlock
                Ok(n) => {
                    allowance -= n;
                    self.go_written += n;
                    self.write_left -= n.min(self.write_left);
                }
                Err(kind) => {
                    self.go_written = 0;
                    self.fail(key, kind);
                    return false;
                }
            }
        }
        if entry.out.is_empty() && entry.out.capacity() > 64 * 1024 {
            // Give back a large buffer: an idle connection should cost little.
            entry.out = BytesMut::new();
        }
        true
    }
}

/// Alternates between asking `session` for bytes (while `out` is under the
/// `high_water` mark) and writing them, until the session has nothing
/// more, the socket is full, or `allowance` bytes are written (its share of
/// the turn's write budget). Returns how far it got and the bytes written.
pub(super) fn transmit_stream(
    stream: &mut TcpStream,
    writable: bool,
    out: &mut BytesMut,
    session: &mut dyn StreamSession,
    cx: &mut Context,
    high_water: usize,
    allowance: usize,
) -> Result<(Sent, usize), ErrorKind> {
    let mut written = 0;
    loop {
        while out.len() < high_water {
            let limit = high_water - out.len();
            if session.poll_transmit(cx, limit, out).is_none() {
                break;
            }
        }
        if !writable {
            return Ok((Sent::All, written));
        }
        let budget = allowance - written;
        if out.is_empty() {
            // Buffered bytes always go first; then a file region, if any.
            let Some(chunk) = session.poll_file() else {
                return Ok((Sent::All, written));
            };
            if budget == 0 {
                return Ok((Sent::BudgetSpent, written));
            }
            let count = usize::try_from(chunk.len).unwrap_or(usize::MAX).min(budget);
            match sys::sendfile(stream.as_raw_fd(), chunk.fd, chunk.offset, count) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof),
                Ok(n) => {
                    session.advance_file(cx, n as u64);
                    written += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    return Ok((Sent::SocketFull, written));
                }
                Err(e) => return Err(e.kind()),
            }
            continue;
        }
        if budget == 0 {
            return Ok((Sent::BudgetSpent, written));
        }
        let n = write_some(stream, out, budget)?;
        written += n;
        if n == 0 || (!out.is_empty() && written < allowance) {
            // The socket took less than offered: it is full.
            return Ok((Sent::SocketFull, written));
        }
    }
}

/// One `write` of as much of the first `max` bytes of `out` as the socket
/// takes; returns how many (`WouldBlock` takes nothing and is not an error).
fn write_some(stream: &mut TcpStream, out: &mut BytesMut, max: usize) -> Result<usize, ErrorKind> {
    let len = out.len().min(max);
    loop {
        match stream.write(&out[..len]) {
            Ok(0) if len > 0 => return Err(ErrorKind::WriteZero),
            Ok(n) => {
                out.advance(n);
                return Ok(n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_from_five_ms_to_one_second() {
        let mut wait = None;
        let mut schedule = Vec::new();
        for _ in 0..10 {
            let next = next_accept_backoff(wait);
            schedule.push(next.as_millis());
            wait = Some(next);
        }
        assert_eq!(
            schedule,
            [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000],
            "doubling, capped"
        );
        // A success resets it (the caller stores `None`).
        assert_eq!(next_accept_backoff(None), ACCEPT_BACKOFF_MIN);
    }

    #[test]
    fn shortages_retry_and_vanished_peers_are_skipped() {
        let os = std::io::Error::from_raw_os_error;
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(classify_accept_error(&os(errno)), AcceptFailure::Retry);
        }
        for errno in [libc::ECONNABORTED, libc::EPROTO] {
            assert_eq!(classify_accept_error(&os(errno)), AcceptFailure::Skip);
        }
        // Unknown errors back off rather than wedge or spin.
        assert_eq!(
            classify_accept_error(&os(libc::EPERM)),
            AcceptFailure::Retry
        );
    }
}
