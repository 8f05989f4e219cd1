//! After any call into an entry's session: push its output out, arm its
//! deadline, carry out its end, update interest.
//!
//! Owns the reactor's half of the seam's order of calls: the order itself
//! is [`drive::after_call`](crate::proto::drive::after_call), shared with
//! the simulator; this module supplies the transmit step (a stream's share
//! of the turn's write budget, a datagram session's endpoints and GSO
//! trains) and acts on what the session said afterwards. It never reads
//! from a socket: input arrives through `stream.rs` and `datagram.rs`.

use super::datagram::{Endpoints, Home, UdpOut, transmit_udp};
use super::device::DeviceOut;
use super::entry::{Entry, EventKey, Io, Phase, Role, UdpState};
use super::stream::transmit_stream;
use super::timers::{Owner, Wake};
use super::{Reactor, Sent};
use crate::proto::drive::{After, after_call, drain_parts};
use crate::proto::{Context, Driven, EndpointId};
use log::{debug, warn};
use mio::Interest;
use mio::unix::SourceFd;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;

impl Reactor {
    /// After any call into the session at `key`: transmit, arm its deadline,
    /// carry out its end, update interest (the fixed order of `proto`).
    pub(super) fn flush(&mut self, key: usize) {
        if let Some(done) = self.transmit(key) {
            self.wait_for_room(key, &done);
            self.act_on(key, done);
        }
    }

    /// Step 1: the transport's transmit step, then what the session says
    /// (the order of `drive::after_call`). `None`: nothing to act on (a
    /// dead or socketless entry, or the stream failed and is being freed).
    fn transmit(&mut self, key: usize) -> Option<Transmitted> {
        let go_written = core::mem::take(&mut self.go_written);
        let (home_parent, acceptor) = match self.entries.get(key) {
            Some(e) if e.phase != Phase::Dead => (
                matches!(e.io, Io::SharedUdp)
                    .then(|| e.acceptor_key())
                    .flatten(),
                e.acceptor_key().filter(|_| e.moves_acceptor),
            ),
            _ => return None,
        };
        // A shared UDP session sends through its acceptor's socket.
        let (entry, parent_entry) = match home_parent {
            Some(p) => {
                let (e, pe) = self.entries.get2_mut(key, p)?;
                (e, Some(pe))
            }
            None => (&mut self.entries[key], None),
        };
        let mut cx = Context::new(self.now, key, entry.peer);
        let mut wrote = 0;
        let (sent, after) = match &mut entry.role {
            Role::Stream(session) => {
                let Io::Stream(stream) = &mut entry.io else {
                    return None;
                };
                let writable = entry.phase != Phase::Connecting;
                let allowance = if entry.write_queued {
                    0
                } else {
                    self.write_share
                        .saturating_sub(go_written)
                        .min(self.write_left)
                };
                let (high_water, out) = (self.config.high_water, &mut entry.out);
                let (sent, after) = after_call(&mut **session, &mut cx, |s, cx| {
                    transmit_stream(stream, writable, out, s, cx, high_water, allowance)
                });
                match sent {
                    Ok((sent, written)) => {
                        self.write_left -= written.min(self.write_left);
                        wrote = written;
                        (sent, after)
                    }
                    Err(kind) => {
                        self.fail(key, kind);
                        return None;
                    }
                }
            }
            Role::Datagram(session) => {
                let udp = entry.udp.get_or_insert_with(Box::default);
                let UdpState {
                    pending,
                    more,
                    capture,
                    connected,
                    ..
                } = &mut **udp;
                // The endpoints: a UDP socket (the session's own or its
                // acceptor's) and its extra sockets, or a device and its
                // capture.
                let (on_udp, on_device);
                let sockets: &dyn Endpoints = match (&entry.io, parent_entry.map(|p| &p.io)) {
                    (Io::Udp(socket), _) | (Io::SharedUdp, Some(Io::Udp(socket))) => {
                        let home = Home {
                            socket,
                            connected: *connected,
                        };
                        on_udp = (home, more.as_slice());
                        &on_udp
                    }
                    (Io::Tun(device), _) => {
                        let at = self.clock.to_monotonic_ns(self.now);
                        on_device = DeviceOut::new(&**device, capture.as_ref(), at);
                        &on_device
                    }
                    _ => return None,
                };
                let mut out = UdpOut {
                    sockets,
                    gso: &mut self.gso,
                    sent: 0,
                    dropped: 0,
                };
                let peer = entry.peer;
                let (budget, scratch) = (self.config.send_budget, &mut self.dgram_buf);
                let result = after_call(&mut **session, &mut cx, |s, cx| {
                    transmit_udp(&mut out, peer, pending, s, cx, scratch, budget)
                });
                self.stats.datagrams_out += out.sent;
                self.stats.queue_dropped += out.dropped;
                result
            }
            Role::Job(job) => after_call(&mut **job, &mut cx, |_, _| Sent::All),
            _ => return None,
        };
        Some(Transmitted {
            sent,
            wrote,
            after,
            home_parent,
            acceptor,
        })
    }

    /// Step 2: output the transport could not take now waits for its turn
    /// (the write budget) or for room (`WRITABLE`).
    fn wait_for_room(&mut self, key: usize, done: &Transmitted) {
        let entry = &mut self.entries[key];
        let stream = matches!(entry.io, Io::Stream(_));
        entry.write_blocked = done.sent == Sent::SocketFull && stream;
        match done.sent {
            Sent::All => {}
            // A stream waits for its next share: behind the other writers
            // if it wrote this turn, ahead of them if the budget ran out
            // before its go.
            Sent::BudgetSpent if stream => {
                if !entry.write_queued {
                    entry.write_queued = true;
                    if done.wrote == 0 {
                        self.starved.push(key);
                    } else {
                        self.deferred.push(key);
                    }
                }
            }
            Sent::BudgetSpent => self.still_ready.push(key),
            Sent::SocketFull => {
                // A shared socket's room is the acceptor's to watch.
                let home_full = entry
                    .pending_front()
                    .is_none_or(|p| p.endpoint == EndpointId::HOME);
                if home_full
                    && let Some(parent) = done.home_parent
                    && let Some(Entry {
                        role: Role::DatagramAcceptor(demux),
                        ..
                    }) = self.entries.get_mut(parent)
                    && !demux.blocked.contains(&key)
                {
                    demux.blocked.push(key);
                }
            }
        }
    }

    /// Steps 3–5: the end, the deadline (a closing entry waits for its
    /// linger time instead), the half-close, resumed reading, interest,
    /// and the acceptor's deadline if the session shares state with it.
    fn act_on(&mut self, key: usize, done: Transmitted) {
        let After {
            deadline,
            wake,
            close,
            wants_input,
        } = done.after;
        let entry = &mut self.entries[key];
        if let Some(reason) = close {
            debug!("[#{key}{}] closing: {reason}", super::fmt_peer(entry.peer));
            if entry.begin_close(&reason, self.now + self.config.linger) {
                self.reap.push(key);
                self.sync_acceptor_of(done.acceptor);
                return;
            }
        }
        if let (Some(udp), Some(session)) = (entry.udp.as_deref_mut(), entry.role.driven()) {
            let (timers, armed) = (&mut self.timers, &mut self.parts_armed);
            drain_parts(session, |part, at| match at {
                Some(at) => {
                    let stamp = timers.arm(Owner::Part(key, part), at);
                    if udp.parts.insert(part, stamp).is_none() {
                        *armed += 1;
                    }
                }
                None => {
                    if udp.parts.remove(&part).is_some() {
                        *armed -= 1;
                    }
                }
            });
        }
        match entry.phase {
            Phase::Closing { until } => {
                entry.slot.sync_with(
                    &mut self.timers,
                    Owner::Entry(key),
                    Some(until),
                    Wake::Coarse,
                );
            }
            // A deadline that only moved later (a request answered, the next
            // one's timeout further out) keeps the earlier heap entry: when
            // that fires, `fire_timers` reads the deadline again and arms it
            // then. A session that moves its deadline on every datagram thus
            // pushes about one heap entry per timeout period, not one per
            // datagram.
            _ if deadline
                .zip(entry.slot.deadline())
                .is_some_and(|(d, a)| d > a) => {}
            _ => entry
                .slot
                .sync_with(&mut self.timers, Owner::Entry(key), deadline, wake),
        }
        // Half-close a closing stream once its output is out.
        if entry.shut_write_if_flushed() {
            if entry.read_closed {
                entry.phase = Phase::Dead;
                self.reap.push(key);
                self.sync_acceptor_of(done.acceptor);
                return;
            }
            // Discard whatever the peer still sends until its EOF.
            self.still_ready.push(key);
        }
        if entry.read_paused && wants_input {
            entry.read_paused = false;
            self.still_ready.push(key);
            for i in 1..=entry.more().len() {
                let endpoint = EndpointId(u8::try_from(i).unwrap_or(u8::MAX));
                self.still_ready.push(EventKey { key, endpoint }.token().0);
            }
        }
        self.update_interest(done.home_parent.unwrap_or(key));
        if done.home_parent.is_some() && !self.entries[key].more().is_empty() {
            // Its own endpoints need WRITABLE while their datagrams wait.
            self.update_interest(key);
        }
        self.sync_acceptor_of(done.acceptor);
    }

    /// Reads the deadline of the acceptor at `key` (and its accept retry)
    /// and re-arms its slot if it changed.
    pub(super) fn sync_acceptor(&mut self, key: usize) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        let (acceptor, retry): (&dyn Driven, _) = match &entry.role {
            Role::StreamAcceptor(listen) => (&*listen.acceptor, listen.accept.retry_at),
            Role::DatagramAcceptor(demux) => (&*demux.acceptor, None),
            _ => return,
        };
        let own = acceptor.poll_timeout();
        let want = match (retry, own) {
            (Some(r), Some(o)) => Some(r.min(o)),
            (r, o) => r.or(o),
        };
        // The common case, after every call into a hello session: nothing
        // moved. Cheap, because it runs that often.
        if want == entry.slot.deadline() {
            return;
        }
        let wake = if want == retry {
            Wake::Coarse
        } else {
            acceptor.wake()
        };
        entry
            .slot
            .sync_with(&mut self.timers, Owner::Entry(key), want, wake);
    }

    fn sync_acceptor_of(&mut self, acceptor: Option<usize>) {
        if let Some(key) = acceptor {
            self.sync_acceptor(key);
        }
    }

    /// Registers `WRITABLE` on each of the entry's endpoints only while
    /// output waits for room there.
    pub(super) fn update_interest(&mut self, key: usize) {
        let entry = &mut self.entries[key];
        let want = interest(entry.wants_write(EndpointId::HOME));
        if want != entry.interest {
            let token = EventKey::home(key).token();
            let result = match &mut entry.io {
                Io::Stream(s) => Some(self.poll.registry().reregister(s, token, want)),
                Io::Udp(s) => Some(self.poll.registry().reregister(s, token, want)),
                Io::Tun(d) => Some(self.poll.registry().reregister(
                    &mut SourceFd(&d.as_raw_fd()),
                    token,
                    want,
                )),
                _ => None,
            };
            match result {
                Some(Ok(())) => entry.interest = want,
                Some(Err(e)) => warn!("[#{key}] reregister: {e}"),
                None => {}
            }
        }
        let Some(udp) = entry.udp.as_deref_mut() else {
            return;
        };
        let front = udp.pending.front().map(|p| p.endpoint);
        let waits_on_more = front.is_some_and(|e| e != EndpointId::HOME);
        if !waits_on_more && !udp.more_writable {
            return;
        }
        udp.more_writable = false;
        for (i, ep) in udp.more.iter_mut().enumerate() {
            let endpoint = EndpointId(u8::try_from(i + 1).unwrap_or(u8::MAX));
            let want = interest(front == Some(endpoint));
            udp.more_writable |= want != Interest::READABLE;
            if want == ep.interest {
                continue;
            }
            let token = EventKey { key, endpoint }.token();
            match self.poll.registry().reregister(&mut ep.socket, token, want) {
                Ok(()) => ep.interest = want,
                Err(e) => warn!("[#{key}] reregister endpoint {}: {e}", i + 1),
            }
        }
    }

    /// The socket failed: tell a stream session, then free the entry.
    pub(super) fn fail(&mut self, key: usize, kind: ErrorKind) {
        let entry = &mut self.entries[key];
        if entry.phase == Phase::Dead {
            return;
        }
        debug!(
            "[#{key}{}] socket failed: {kind}",
            super::fmt_peer(entry.peer)
        );
        if let Role::Stream(session) = &mut entry.role
            && !matches!(entry.phase, Phase::Closing { .. })
        {
            let mut cx = Context::new(self.now, key, entry.peer);
            session.handle_input(&mut cx, crate::proto::StreamInput::Failed(kind));
        }
        entry.phase = Phase::Dead;
        self.reap.push(key);
    }
}

fn interest(write: bool) -> Interest {
    if write {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    }
}

/// What a session's transmit step left to act on.
struct Transmitted {
    sent: Sent,
    /// Stream bytes written in this go.
    wrote: usize,
    after: After,
    /// The acceptor whose socket is a shared session's home.
    home_parent: Option<usize>,
    /// The acceptor whose deadline the session may move.
    acceptor: Option<usize>,
}
