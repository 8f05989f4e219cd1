//! TCP pumps: accept, read into sessions, write their output.
//!
//! Owns the readiness discipline for streams: drain until `WouldBlock` or
//! the turn's budget (then the key goes on the still-ready list), read
//! backpressure, and the connect handshake of outbound streams. Session
//! output is pulled only while the entry's buffer is under the high-water
//! mark, so a slow reader stalls only its own session.

use super::entry::{Entry, Io, Phase, Role};
use super::{Reactor, ReactorConfig, Ready, Sent, sys};
use crate::proto::{Context, Input, Session};
use bytes::{Buf, BytesMut};
use log::{trace, warn};
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;

impl Reactor {
    /// Accepts up to the budget of connections from the listener at `key`.
    pub(super) fn accept(&mut self, key: usize) {
        for _ in 0..self.config.accept_budget {
            let Io::Listener(listener) = &self.entries[key].io else {
                return;
            };
            let (mut stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: keep serving the connections we have.
                    warn!("[#{key}] accept: {e}");
                    return;
                }
            };
            self.stats.accepted += 1;
            self.activity = true;
            // The key the new entry will get: known before the acceptor runs,
            // so its log lines and context name the right session.
            let new_key = self.entries.vacant_key();
            let Role::Acceptor(demux) = &mut self.entries[key].role else {
                return;
            };
            let mut cx = Self::context(&mut self.shared, self.now, new_key, Some(peer));
            let Some(session) = demux.acceptor.accept_stream(&mut cx, peer) else {
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
            let inserted = self.entries.insert(Entry::new(
                Io::Stream(stream),
                Role::Session(session),
                Some(peer),
                Interest::READABLE,
            ));
            debug_assert_eq!(inserted, new_key);
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
        let entry = &mut self.entries[r.key];
        if entry.phase == Phase::Connecting {
            let Io::Stream(stream) = &entry.io else {
                return;
            };
            match stream.take_error() {
                Ok(Some(e)) | Err(e) => return self.fail(r.key, e.kind()),
                Ok(None) => {}
            }
            match stream.peer_addr() {
                Ok(_) => entry.phase = Phase::Open,
                Err(e) if e.kind() == ErrorKind::NotConnected => return, // not yet
                Err(e) => return self.fail(r.key, e.kind()),
            }
        }
        if r.writable && !self.write_out(r.key) {
            return;
        }
        if r.readable {
            self.read_stream(r.key);
        }
        self.flush(r.key);
    }

    /// Reads until `WouldBlock`, EOF, the budget, or the session pauses.
    /// A closing entry's input is read and discarded until the peer's EOF.
    fn read_stream(&mut self, key: usize) {
        let entry = &mut self.entries[key];
        let Io::Stream(stream) = &mut entry.io else {
            return;
        };
        let Role::Session(session) = &mut entry.role else {
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
                        let mut cx = Self::context(&mut self.shared, self.now, key, entry.peer);
                        session.handle_input(&mut cx, Input::StreamEnd);
                    }
                    return;
                }
                Ok(n) => {
                    self.activity = true;
                    if !closing {
                        let mut cx = Self::context(&mut self.shared, self.now, key, entry.peer);
                        session.handle_input(&mut cx, Input::Stream(&self.read_buf[..n]));
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
    fn write_out(&mut self, key: usize) -> bool {
        let entry = &mut self.entries[key];
        let Io::Stream(stream) = &mut entry.io else {
            return true;
        };
        while !entry.out.is_empty() {
            let before = entry.out.len();
            if let Err(kind) = write_some(stream, &mut entry.out) {
                self.fail(key, kind);
                return false;
            }
            if entry.out.len() == before {
                break; // WouldBlock
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
/// high-water mark) and writing them, until the session has nothing more,
/// the socket is full, or the turn's write budget is spent.
pub(super) fn transmit_stream(
    stream: &mut TcpStream,
    writable: bool,
    out: &mut BytesMut,
    session: &mut dyn Session,
    cx: &mut Context<'_>,
    config: &ReactorConfig,
) -> Result<Sent, ErrorKind> {
    let mut budget = config.write_budget;
    loop {
        while out.len() < config.high_water {
            let limit = config.high_water - out.len();
            if session.poll_transmit(cx, limit, out).is_none() {
                break;
            }
        }
        if !writable {
            return Ok(Sent::All);
        }
        if out.is_empty() {
            // Buffered bytes always go first; then a file region, if any.
            let Some(chunk) = session.poll_file() else {
                return Ok(Sent::All);
            };
            let count = usize::try_from(chunk.len).unwrap_or(usize::MAX).min(budget);
            match sys::sendfile(stream.as_raw_fd(), chunk.fd, chunk.offset, count) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof),
                Ok(n) => {
                    session.advance_file(cx, n as u64);
                    budget = budget.saturating_sub(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Sent::SocketFull),
                Err(e) => return Err(e.kind()),
            }
            if budget == 0 {
                return Ok(Sent::BudgetSpent);
            }
            continue;
        }
        let before = out.len();
        write_some(stream, out)?;
        budget = budget.saturating_sub(before - out.len());
        if !out.is_empty() {
            return Ok(Sent::SocketFull);
        }
        if budget == 0 {
            return Ok(Sent::BudgetSpent);
        }
    }
}

/// One `write` of as much of `out` as the socket takes (`WouldBlock` takes
/// nothing and is not an error).
fn write_some(stream: &mut TcpStream, out: &mut BytesMut) -> Result<(), ErrorKind> {
    loop {
        match stream.write(out) {
            Ok(0) => return Err(ErrorKind::WriteZero),
            Ok(n) => {
                out.advance(n);
                return Ok(());
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.kind()),
        }
    }
}
