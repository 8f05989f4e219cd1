//! UDP pumps: receive into acceptors and sessions, send their datagrams.
//!
//! Owns three things:
//! * **Demultiplexing.** A server UDP socket belongs to an acceptor. A
//!   datagram from a peer that has a session on that socket goes to the
//!   session; otherwise the acceptor answers it statelessly, ignores it, or
//!   admits a new per-peer session (`Admission::Shared`), which gets its own
//!   slab entry (and so its own timer slot and key) but sends through the
//!   parent's socket.
//! * **Batched sending.** Consecutive datagrams a session produces for the
//!   same destination with the same size go out as one `sendmsg` with
//!   `UDP_SEGMENT` (GSO): up to 64 datagrams per system call. Where the
//!   kernel refuses GSO the reactor falls back to one `send_to` each, for
//!   good.
//! * **Room.** A datagram that meets `WouldBlock` waits in its entry's
//!   `pending` queue and `WRITABLE` is registered until it is out.

use super::entry::{Demux, Entry, Io, Pending, Phase, Relay, Role};
use super::{MAX_DATAGRAM, Reactor, Sent, UPSTREAM, sys};
use crate::proto::{Admission, Context, Input, Session};
use bytes::{Buf, BytesMut};
use log::{debug, warn};
use mio::Interest;
use mio::net::UdpSocket;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

/// Most datagrams in one GSO send (the kernel's `UDP_MAX_SEGMENTS`).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send: one IP packet's worth.
const GSO_MAX_BYTES: usize = 65_000;
/// Datagrams one `recvmmsg` may return.
const RECV_BATCH: usize = 32;

impl Reactor {
    /// Reads datagrams from the acceptor-owned socket at `key`, many per
    /// system call (`recvmmsg`), routes each to its peer's session or to the
    /// acceptor, and sends the batch's stateless replies with one
    /// `sendmmsg`.
    pub(super) fn answer_datagrams(&mut self, key: usize) {
        let mut batch = self
            .recv_batch
            .take()
            .unwrap_or_else(|| Box::new(sys::RecvBatch::new(RECV_BATCH, 64 * 1024)));
        let mut received = 0;
        loop {
            if received >= self.config.datagram_budget {
                self.still_ready.push(key);
                break;
            }
            let Io::Udp(socket) = &self.entries[key].io else {
                break;
            };
            let n = match batch.recv(socket.as_raw_fd()) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("[#{key}] recvmmsg: {e}");
                    break;
                }
            };
            received += n.max(1);
            for i in 0..n {
                let Some((payload, from, _)) = batch.get(i) else {
                    continue;
                };
                // The handlers read the datagram from `read_buf`.
                let len = payload.len().min(self.read_buf.len());
                self.read_buf[..len].copy_from_slice(&payload[..len]);
                self.answer_one(key, from, len);
            }
            self.send_replies(key);
            if n < RECV_BATCH {
                // A short batch means the queue was empty just now; a
                // datagram that lands after it raises a new edge, so one
                // more `recvmmsg` would only return EAGAIN (half of all
                // receive calls of a request/response load, measured).
                break;
            }
        }
        self.recv_batch = Some(batch);
    }

    /// One datagram (in `read_buf[..n]`) from `from` on the acceptor socket
    /// at `key`: to its peer's session, or to the acceptor.
    fn answer_one(&mut self, key: usize, from: SocketAddr, n: usize) {
        self.stats.datagrams_in += 1;
        self.activity = true;
        let child = match &self.entries[key].role {
            // Most sockets (hello) never hold a per-peer session: skip the hash.
            Role::Acceptor(demux) if demux.peers.is_empty() => None,
            Role::Acceptor(demux) => demux.peers.get(&from).copied(),
            _ => return,
        };
        if let Some(child) = child {
            // A session that ended this turn is reaped only at the end of
            // it; a new request from its peer starts afresh meanwhile.
            if self
                .entries
                .get(child)
                .is_some_and(|e| e.phase != Phase::Dead)
            {
                self.deliver(child, from, n);
                return;
            }
            let Role::Acceptor(demux) = &mut self.entries[key].role else {
                return;
            };
            demux.peers.remove(&from);
        }
        let entry = &mut self.entries[key];
        let Role::Acceptor(demux) = &mut entry.role else {
            return;
        };
        self.dgram_buf.clear();
        let mut cx = Self::context(&mut self.shared, self.now, key, Some(from));
        let admission =
            demux
                .acceptor
                .accept_datagram(&mut cx, from, &self.read_buf[..n], &mut self.dgram_buf);
        super::arm_shared(&mut self.timers, &mut self.hello_slot, &self.shared);
        // Evictions first: the admission below may need the places they free.
        self.evict_for(key);
        match admission {
            Admission::Reply => {
                let start = self.replies_buf.len();
                self.replies_buf.extend_from_slice(&self.dgram_buf);
                self.replies.push((from, start, self.dgram_buf.len()));
            }
            Admission::Ignore => {}
            Admission::OwnSocket(session) => {
                let local = self.entries[key].peer;
                if let Err(e) = self.open_transfer_socket(local, from, n, session) {
                    warn!("[#{key} {from}] no socket for a new transfer: {e}");
                }
            }
            Admission::Shared(session) => {
                if self.refuse_session(key, from) {
                    return;
                }
                let child = self.entries.insert(Entry::new(
                    Io::SharedUdp { parent: key },
                    Role::Session(session),
                    Some(from),
                    Interest::READABLE,
                ));
                if let Role::Acceptor(demux) = &mut self.entries[key].role {
                    demux.peers.insert(from, child);
                }
                self.sessions += 1;
                self.deliver(child, from, n);
            }
            Admission::Relay { session, bind } => {
                if self.refuse_session(key, from) {
                    return;
                }
                match self.open_relay(key, from, bind, session) {
                    Ok(child) => self.deliver(child, from, n),
                    Err(e) => warn!("[#{key} {from}] no socket for a relay: {e}"),
                }
            }
        }
    }

    /// Closes at once every session the acceptor at `key` asks to evict
    /// (`Acceptor::poll_evict`): no flush, no linger, detached from its
    /// peer so a new session for that address can start this turn. Keys
    /// that are not live sessions are ignored.
    fn evict_for(&mut self, key: usize) {
        loop {
            let Some(Entry {
                role: Role::Acceptor(demux),
                ..
            }) = self.entries.get_mut(key)
            else {
                return;
            };
            let Some(victim) = demux.acceptor.poll_evict() else {
                return;
            };
            let Some(entry) = self.entries.get_mut(victim) else {
                continue;
            };
            if victim == key || entry.phase == Phase::Dead || !entry.is_session() {
                continue;
            }
            debug!("[#{victim}{}] evicted", super::fmt_peer(entry.peer));
            entry.phase = Phase::Dead;
            let (peer, parent) = (entry.peer, parent_of(entry));
            self.stats.sessions_evicted += 1;
            self.reap.push(victim);
            if let Some(parent) = parent {
                self.detach_child(parent, victim, peer);
            }
        }
    }

    /// Whether the acceptor socket at `key` already holds as many per-peer
    /// sessions as it may (the reactor's bound or the acceptor's, the
    /// lower); counts and logs a refusal.
    fn refuse_session(&mut self, key: usize, from: SocketAddr) -> bool {
        let Role::Acceptor(demux) = &self.entries[key].role else {
            return true;
        };
        let limit = demux
            .acceptor
            .max_sessions()
            .map_or(self.config.max_shared_sessions, |m| {
                m.min(self.config.max_shared_sessions)
            })
            .min(demux.accept.max_open);
        if demux.peers.len() < limit {
            return false;
        }
        self.stats.sessions_refused += 1;
        debug!(
            "[#{key} {from}] session refused: {} on this socket",
            demux.peers.len()
        );
        true
    }

    /// A per-peer session for `from` on the acceptor socket at `parent`,
    /// with a socket of its own bound to `bind`. Returns its key.
    fn open_relay(
        &mut self,
        parent: usize,
        from: SocketAddr,
        bind: SocketAddr,
        session: Box<dyn Session>,
    ) -> std::io::Result<usize> {
        let socket = UdpSocket::bind(bind)?;
        // A relay sees a server's bursts: give them room.
        if let Err(e) = sys::set_recv_buffer(socket.as_raw_fd(), 4 << 20) {
            debug!("receive buffer unchanged: {e}");
        }
        let child = self.entries.insert(Entry::new(
            Io::Relay(Box::new(Relay { parent, socket })),
            Role::Session(session),
            Some(from),
            Interest::READABLE,
        ));
        let registered = match &mut self.entries[child].io {
            Io::Relay(relay) => self.poll.registry().register(
                &mut relay.socket,
                mio::Token(child | UPSTREAM),
                Interest::READABLE,
            ),
            _ => Ok(()),
        };
        if let Err(e) = registered {
            self.entries.remove(child);
            return Err(e);
        }
        if let Role::Acceptor(demux) = &mut self.entries[parent].role {
            demux.peers.insert(from, child);
        }
        self.sessions += 1;
        Ok(child)
    }

    /// The own socket of the relaying session at `key` is ready: send what
    /// waited, then read what arrived (from anyone) into the session.
    pub(super) fn relay_ready(&mut self, key: usize, readable: bool) {
        if readable {
            self.receive_into_session(key, true);
        }
        self.flush(key);
    }

    /// Sends the stateless replies queued by this batch, then forgets them.
    /// A reply that does not fit is dropped: the client retries.
    fn send_replies(&mut self, key: usize) {
        if self.replies.is_empty() {
            return;
        }
        if let Io::Udp(socket) = &self.entries[key].io {
            let list: Vec<(SocketAddr, &[u8])> = self
                .replies
                .iter()
                .map(|&(to, start, len)| (to, &self.replies_buf[start..start + len]))
                .collect();
            let mut sent = 0;
            while sent < list.len() {
                match sys::send_many(socket.as_raw_fd(), &list[sent..]) {
                    Ok(0) => break,
                    Ok(k) => sent += k,
                    Err(e) => {
                        debug!("[#{key}] replies dropped: {e}");
                        break;
                    }
                }
            }
            self.stats.datagrams_out += sent as u64;
            self.stats.replies_dropped += (list.len() - sent) as u64;
        }
        self.replies.clear();
        self.replies_buf.clear();
    }

    /// Binds a fresh UDP socket on `local`'s address (port 0: a new transfer
    /// ID), gives it to `session`, and delivers the first datagram
    /// (`read_buf[..n]`, from `from`).
    fn open_transfer_socket(
        &mut self,
        local: Option<SocketAddr>,
        from: SocketAddr,
        n: usize,
        session: Box<dyn Session>,
    ) -> std::io::Result<()> {
        let ip = local.map_or_else(
            || {
                if from.is_ipv4() {
                    Ipv4Addr::UNSPECIFIED.into()
                } else {
                    Ipv6Addr::UNSPECIFIED.into()
                }
            },
            |l| l.ip(),
        );
        let mut socket = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let entry = self.entries.vacant_entry();
        let key = entry.key();
        self.poll
            .registry()
            .register(&mut socket, mio::Token(key), Interest::READABLE)?;
        entry.insert(Entry::new(
            Io::Udp(socket),
            Role::Session(session),
            Some(from),
            Interest::READABLE,
        ));
        self.sessions += 1;
        let entry = &mut self.entries[key];
        if let Role::Session(session) = &mut entry.role {
            let mut cx = Self::context(&mut self.shared, self.now, key, Some(from));
            session.handle_input(
                &mut cx,
                Input::Datagram {
                    from,
                    payload: &self.read_buf[..n],
                    kernel_ns: None,
                },
            );
        }
        self.flush(key);
        Ok(())
    }

    /// Hands the datagram in `read_buf[..n]` to the session at `child`.
    fn deliver(&mut self, child: usize, from: SocketAddr, n: usize) {
        let entry = &mut self.entries[child];
        let Role::Session(session) = &mut entry.role else {
            return;
        };
        if entry.phase == Phase::Dead {
            return;
        }
        let mut cx = Self::context(&mut self.shared, self.now, child, entry.peer);
        session.handle_input(
            &mut cx,
            Input::Datagram {
                from,
                payload: &self.read_buf[..n],
                kernel_ns: None,
            },
        );
        self.flush(child);
    }

    /// Reads datagrams from a session-owned (client) socket, many per
    /// system call (`recvmmsg`), each with its kernel receive timestamp.
    pub(super) fn receive_datagrams(&mut self, key: usize) {
        self.receive_into_session(key, false);
    }

    /// Reads the session's own socket at `key` (a relay's second socket
    /// when `relay`) into the session, at most a turn's budget.
    fn receive_into_session(&mut self, key: usize, relay: bool) {
        let batch = self
            .recv_batch
            .get_or_insert_with(|| Box::new(sys::RecvBatch::new(RECV_BATCH, 64 * 1024)));
        let entry = &mut self.entries[key];
        let socket = match (&entry.io, relay) {
            (Io::Udp(socket), false) => socket,
            (Io::Relay(r), true) => &r.socket,
            _ => return,
        };
        let Role::Session(session) = &mut entry.role else {
            return;
        };
        let mut received = 0;
        while received < self.config.datagram_budget {
            if !session.wants_input() {
                entry.read_paused = true;
                return;
            }
            let n = match batch.recv(socket.as_raw_fd()) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if relay => {
                    // An ICMP error for an earlier send (the server is not
                    // there yet): the relay lives on, as the network would.
                    debug!("[#{key}] relay socket: {e}");
                    received += 1;
                    continue;
                }
                Err(e) => {
                    // ICMP errors on connected sockets (port unreachable).
                    let mut cx = Self::context(&mut self.shared, self.now, key, entry.peer);
                    session.handle_input(&mut cx, Input::Failed(e.kind()));
                    return;
                }
            };
            self.stats.datagrams_in += n as u64;
            self.activity = true;
            for i in 0..n {
                let Some((payload, from, kernel_ns)) = batch.get(i) else {
                    continue;
                };
                let mut cx = Self::context(&mut self.shared, self.now, key, entry.peer);
                session.handle_input(
                    &mut cx,
                    Input::Datagram {
                        from,
                        payload,
                        kernel_ns,
                    },
                );
            }
            received += n.max(1);
            if n < RECV_BATCH {
                // Drained just now (see `answer_datagrams`).
                return;
            }
        }
        self.still_ready
            .push(if relay { key | UPSTREAM } else { key });
    }

    /// The shared socket at `parent` has room again: let the blocked children
    /// send (each re-blocks itself if the socket fills again).
    pub(super) fn resume_blocked(&mut self, parent: usize) {
        let blocked = match &mut self.entries[parent].role {
            Role::Acceptor(demux) => core::mem::take(&mut demux.blocked),
            _ => return,
        };
        for child in blocked {
            self.flush(child);
        }
        self.update_interest(parent);
    }

    /// Forgets a reaped child in its parent's peer map and blocked list.
    pub(super) fn detach_child(&mut self, parent: usize, child: usize, peer: Option<SocketAddr>) {
        if let Some(Entry {
            role: Role::Acceptor(demux),
            ..
        }) = self.entries.get_mut(parent)
        {
            if let Some(peer) = peer
                && demux.peers.get(&peer) == Some(&child)
            {
                demux.peers.remove(&peer);
            }
            demux.blocked.retain(|&k| k != child);
        }
    }
}

/// The sending side of one UDP socket.
pub(super) struct UdpOut<'a> {
    pub(super) socket: &'a UdpSocket,
    /// A relaying session's own socket, for every destination but `peer`.
    pub(super) own: Option<(&'a UdpSocket, Option<SocketAddr>)>,
    /// Whether GSO is still believed to work (cleared on the first refusal).
    pub(super) gso: &'a mut bool,
    /// Datagrams sent so far.
    pub(super) sent: u64,
}

impl UdpOut<'_> {
    /// Sends `bytes` to `to` as datagrams of `segment` bytes (the last may be
    /// shorter). `Err(offset)`: the socket is full and `bytes[offset..]` is
    /// still to send.
    fn send(&mut self, to: SocketAddr, bytes: &[u8], segment: usize) -> Result<(), usize> {
        let socket = match self.own {
            Some((own, peer)) if peer != Some(to) => own,
            _ => self.socket,
        };
        let mut offset = 0;
        if segment == 0 {
            // An empty datagram is still a datagram.
            return match socket.send_to(&[], to) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => Err(0),
                _ => Ok(()),
            };
        }
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            if rest.len() > segment && *self.gso {
                let seg = u16::try_from(segment).unwrap_or(u16::MAX);
                match sys::send_gso(socket.as_raw_fd(), rest, seg, to) {
                    Ok(_) => {
                        self.sent += rest.len().div_ceil(segment) as u64;
                        return Ok(());
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Err(offset),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
                        ) =>
                    {
                        debug!("UDP GSO refused ({e}): sending one datagram per call from now on");
                        *self.gso = false;
                        continue;
                    }
                    Err(e) => {
                        debug!("send to {to}: {e}: {} bytes dropped", rest.len());
                        return Ok(());
                    }
                }
            }
            let one = &rest[..segment.min(rest.len())];
            match socket.send_to(one, to) {
                Ok(_) => self.sent += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Err(offset),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => debug!("send to {to}: {e}: datagram dropped"),
            }
            offset += one.len();
        }
        Ok(())
    }

    /// Sends the queue from the front; false if the socket filled up again.
    fn drain(&mut self, pending: &mut VecDeque<Pending>) -> bool {
        while let Some(p) = pending.front_mut() {
            match self.send(p.to, &p.bytes, p.segment) {
                Ok(()) => {
                    pending.pop_front();
                }
                Err(offset) => {
                    p.bytes.advance(offset);
                    return false;
                }
            }
        }
        true
    }
}

/// Sends what waited, then pulls datagrams from `session` (at most
/// `budget`) and sends them, joining runs of equal-sized datagrams to one
/// destination into GSO trains. `batch` is scratch space.
pub(super) fn transmit_udp(
    out: &mut UdpOut<'_>,
    peer: Option<SocketAddr>,
    pending: &mut VecDeque<Pending>,
    session: &mut dyn Session,
    cx: &mut Context<'_>,
    batch: &mut BytesMut,
    budget: usize,
) -> Sent {
    if !out.drain(pending) {
        return Sent::SocketFull;
    }
    batch.clear();
    // The train in `batch`: its destination and datagram size.
    let mut train: Option<(SocketAddr, usize)> = None;
    let mut full = false;
    let mut result = Sent::All;
    for produced in 0.. {
        if produced >= budget {
            result = Sent::BudgetSpent;
            break;
        }
        let before = batch.len();
        let Some(t) = session.poll_transmit(cx, MAX_DATAGRAM, batch) else {
            break;
        };
        let len = batch.len() - before;
        let Some(to) = t.to.or(peer) else {
            debug!("{} datagram with no destination dropped", cx.tag);
            batch.truncate(before);
            continue;
        };
        let joins = matches!(train, Some((tto, seg))
            if tto == to && len <= seg && len > 0
                && before / seg < GSO_MAX_SEGMENTS && before + len <= GSO_MAX_BYTES);
        if !joins && let Some((tto, seg)) = train {
            // The new datagram cannot ride this train: send the train first.
            if let Err(offset) = out.send(tto, &batch[..before], seg) {
                queue(pending, tto, &batch[offset..before], seg);
                queue(pending, to, &batch[before..], len);
                full = true;
                break;
            }
            batch.advance(before);
            train = None;
        }
        let (tto, seg) = *train.get_or_insert((to, len));
        if len < seg || len == 0 {
            // A short (or empty) datagram ends its train.
            if let Err(offset) = out.send(tto, batch, seg.max(len)) {
                queue(pending, tto, &batch[offset..], seg);
                full = true;
                break;
            }
            batch.clear();
            train = None;
        }
    }
    if !full
        && let Some((to, seg)) = train
        && let Err(offset) = out.send(to, batch, seg)
    {
        queue(pending, to, &batch[offset..], seg);
        full = true;
    }
    batch.clear();
    if full { Sent::SocketFull } else { result }
}

fn queue(pending: &mut VecDeque<Pending>, to: SocketAddr, bytes: &[u8], segment: usize) {
    if !bytes.is_empty() || segment == 0 {
        pending.push_back(Pending {
            to,
            bytes: BytesMut::from(bytes),
            segment,
        });
    }
}

/// Whether `entry` is a per-peer session on a shared socket, and its parent.
pub(super) fn parent_of(entry: &Entry) -> Option<usize> {
    match &entry.io {
        Io::SharedUdp { parent } => Some(*parent),
        Io::Relay(relay) => Some(relay.parent),
        _ => None,
    }
}

/// A `Demux` for a new UDP server socket.
pub(super) fn demux(acceptor: Box<dyn crate::proto::Acceptor>) -> Role {
    Role::Acceptor(Box::new(Demux::new(acceptor)))
}
