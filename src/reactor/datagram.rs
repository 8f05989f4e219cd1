//! UDP pumps: receive into acceptors and sessions, send their datagrams.
//!
//! Owns three things:
//! * **Demultiplexing.** A server UDP socket belongs to an acceptor. A
//!   datagram from a peer that has a session on that socket goes to the
//!   session; otherwise the acceptor answers it statelessly, ignores it, or
//!   admits a new session ([`Admission::Start`]): on the shared socket (its
//!   own slab entry, so its own timer slot and key, sending through the
//!   acceptor's socket) or on a socket of its own, plus any further
//!   endpoints it asked for.
//! * **Batched sending.** Consecutive datagrams a session produces for the
//!   same endpoint and destination with the same size go out as one
//!   `sendmsg` with `UDP_SEGMENT` (GSO): up to 64 datagrams per system
//!   call. Where the kernel refuses GSO the reactor falls back to one
//!   `send_to` each, for good.
//! * **Room.** A datagram that meets `WouldBlock` waits in its entry's
//!   `pending` queue and `WRITABLE` is registered on that endpoint until it
//!   is out.

use super::entry::{Demux, Endpoint, Entry, EventKey, Io, Pending, Phase, Role, UdpState};
use super::{MAX_DATAGRAM, Reactor, Sent, sys};
use crate::proto::{
    Admission, Admit, Context, DatagramAcceptor, DatagramInput, DatagramSession, EndpointId,
};
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
/// Receive buffer of a session's extra endpoints: a relay towards a server
/// sees that server's bursts.
const ENDPOINT_RECV_BUFFER: usize = 4 << 20;

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
        self.sync_acceptor(key);
    }

    /// One datagram (in `read_buf[..n]`) from `from` on the acceptor socket
    /// at `key`: to its peer's session, or to the acceptor.
    fn answer_one(&mut self, key: usize, from: SocketAddr, n: usize) {
        self.stats.datagrams_in += 1;
        self.activity = true;
        let child = match &self.entries[key].role {
            // Most sockets (hello) never hold a per-peer session: skip the hash.
            Role::DatagramAcceptor(demux) if demux.peers.is_empty() => None,
            Role::DatagramAcceptor(demux) => demux.peers.get(&from).copied(),
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
                self.deliver(child, EndpointId::HOME, from, n);
                return;
            }
            if let Role::DatagramAcceptor(demux) = &mut self.entries[key].role {
                demux.peers.remove(&from);
            }
        }
        let Role::DatagramAcceptor(demux) = &mut self.entries[key].role else {
            return;
        };
        self.dgram_buf.clear();
        let mut cx = Context::new(self.now, key, Some(from));
        let admission =
            demux
                .acceptor
                .accept(&mut cx, from, &self.read_buf[..n], &mut self.dgram_buf);
        // Evictions first: the admission below may need the places they free.
        self.evict_for(key);
        match admission {
            Admission::Reply => {
                let start = self.replies_buf.len();
                self.replies_buf.extend_from_slice(&self.dgram_buf);
                self.replies.push((from, start, self.dgram_buf.len()));
            }
            Admission::Ignore => {}
            Admission::Start(admit) => {
                let shared = !admit.own_socket;
                if shared && self.refuse_session(key, from) {
                    return;
                }
                match self.admit(key, from, admit) {
                    Ok(child) => self.deliver(child, EndpointId::HOME, from, n),
                    Err(e) => warn!("[#{key} {from}] no socket for a new session: {e}"),
                }
            }
        }
    }

    /// Closes at once every session the acceptor at `key` asks to evict
    /// (`DatagramAcceptor::poll_evict`): no flush, no linger, detached from
    /// its peer so a new session for that address can start this turn.
    /// Keys that are not live sessions are ignored.
    fn evict_for(&mut self, key: usize) {
        loop {
            let Some(Entry {
                role: Role::DatagramAcceptor(demux),
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
            let (peer, acceptor) = (entry.peer, entry.acceptor_key());
            self.stats.sessions_evicted += 1;
            self.reap.push(victim);
            if let Some(acceptor) = acceptor {
                self.detach_child(acceptor, victim, peer);
            }
        }
    }

    /// Whether the acceptor socket at `key` already holds as many per-peer
    /// sessions as it may (the reactor's bound or the acceptor's, the
    /// lower); counts and logs a refusal.
    fn refuse_session(&mut self, key: usize, from: SocketAddr) -> bool {
        let Role::DatagramAcceptor(demux) = &self.entries[key].role else {
            return true;
        };
        let limit = demux
            .acceptor
            .max_sessions()
            .map_or(self.config.max_shared_sessions, |m| {
                m.min(self.config.max_shared_sessions)
            })
            .min(demux.max_open);
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

    /// Makes the entry of a session the acceptor at `acceptor` admitted for
    /// `from`: on the acceptor's socket or on a new one of its own (on the
    /// acceptor's address, port 0: TFTP's new transfer ID), with its extra
    /// endpoints bound and registered. Returns its key.
    fn admit(&mut self, acceptor: usize, from: SocketAddr, admit: Admit) -> std::io::Result<usize> {
        let Admit {
            session,
            own_socket,
            bind,
        } = admit;
        if bind.len() >= EndpointId::MAX {
            return Err(std::io::Error::other("too many endpoints"));
        }
        let home = if own_socket {
            let local = self.entries[acceptor].peer;
            Io::Udp(UdpSocket::bind(SocketAddr::new(
                transfer_ip(local, from),
                0,
            ))?)
        } else {
            Io::SharedUdp
        };
        let more = bind
            .into_iter()
            .map(|addr| {
                let socket = UdpSocket::bind(addr)?;
                if let Err(e) = sys::set_recv_buffer(socket.as_raw_fd(), ENDPOINT_RECV_BUFFER) {
                    debug!("receive buffer unchanged: {e}");
                }
                Ok(Endpoint {
                    socket,
                    interest: Interest::READABLE,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let moves_acceptor = match &self.entries[acceptor].role {
            Role::DatagramAcceptor(demux) => demux.acceptor.sessions_move_deadline(),
            _ => false,
        };
        let entry = self.entries.vacant_entry();
        let key = entry.key();
        let mut e = Entry::new(
            home,
            Role::Datagram(session),
            Some(from),
            Interest::READABLE,
        );
        e.acceptor = u32::try_from(acceptor).ok();
        e.moves_acceptor = moves_acceptor;
        e.udp = Some(Box::new(UdpState {
            more,
            ..UdpState::default()
        }));
        entry.insert(e);
        if let Err(e) = self.register_endpoints(key) {
            // Dropping the sockets closes them and removes them from epoll.
            self.entries.remove(key);
            return Err(e);
        }
        if !own_socket && let Role::DatagramAcceptor(demux) = &mut self.entries[acceptor].role {
            demux.peers.insert(from, key);
        }
        self.sessions += 1;
        Ok(key)
    }

    /// Registers the own sockets of the new entry at `key` (its home, if
    /// it is its own, and every extra endpoint) for reading.
    pub(super) fn register_endpoints(&mut self, key: usize) -> std::io::Result<()> {
        let entry = &mut self.entries[key];
        if let Io::Udp(socket) = &mut entry.io {
            self.poll.registry().register(
                socket,
                EventKey::home(key).token(),
                Interest::READABLE,
            )?;
        }
        for (i, ep) in entry
            .udp
            .iter_mut()
            .flat_map(|u| u.more.iter_mut())
            .enumerate()
        {
            let endpoint = EndpointId(u8::try_from(i + 1).unwrap_or(u8::MAX));
            self.poll.registry().register(
                &mut ep.socket,
                EventKey { key, endpoint }.token(),
                Interest::READABLE,
            )?;
        }
        Ok(())
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

    /// Hands the datagram in `read_buf[..n]`, from `from` on `endpoint`, to
    /// the session at `key`.
    fn deliver(&mut self, key: usize, endpoint: EndpointId, from: SocketAddr, n: usize) {
        let entry = &mut self.entries[key];
        let Role::Datagram(session) = &mut entry.role else {
            return;
        };
        if entry.phase == Phase::Dead {
            return;
        }
        let mut cx = Context::new(self.now, key, entry.peer);
        session.handle_input(
            &mut cx,
            DatagramInput::Datagram {
                endpoint,
                from,
                payload: &self.read_buf[..n],
                kernel_ns: None,
            },
        );
        self.flush(key);
    }

    /// Reads one of the session's own sockets (its home on a client, or an
    /// extra endpoint) into the session, many datagrams per system call
    /// (`recvmmsg`), each with its kernel receive timestamp, at most a
    /// turn's budget.
    pub(super) fn receive_datagrams(&mut self, at: EventKey) {
        let key = at.key;
        let batch = self
            .recv_batch
            .get_or_insert_with(|| Box::new(sys::RecvBatch::new(RECV_BATCH, 64 * 1024)));
        let entry = &mut self.entries[key];
        let socket = match (&entry.io, at.endpoint) {
            (Io::Udp(socket), EndpointId::HOME) => socket,
            (_, EndpointId::HOME) => return,
            // Field paths, not `Entry::endpoint`: the session is borrowed
            // from `entry.role` below.
            (_, e) => match entry
                .udp
                .as_ref()
                .and_then(|u| u.more.get(usize::from(e.0) - 1))
            {
                Some(ep) => &ep.socket,
                None => return,
            },
        };
        let Role::Datagram(session) = &mut entry.role else {
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
                Err(e) => {
                    // An ICMP error for an earlier send (port unreachable):
                    // the session decides what it means, and the socket
                    // lives on, as the network would.
                    let mut cx = Context::new(self.now, key, entry.peer);
                    session.handle_input(
                        &mut cx,
                        DatagramInput::Failed {
                            endpoint: at.endpoint,
                            kind: e.kind(),
                        },
                    );
                    received += 1;
                    continue;
                }
            };
            self.stats.datagrams_in += n as u64;
            self.activity = true;
            for i in 0..n {
                let Some((payload, from, kernel_ns)) = batch.get(i) else {
                    continue;
                };
                let mut cx = Context::new(self.now, key, entry.peer);
                session.handle_input(
                    &mut cx,
                    DatagramInput::Datagram {
                        endpoint: at.endpoint,
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
        self.still_ready.push(at.token().0);
    }

    /// The shared socket at `parent` has room again: let the blocked children
    /// send (each re-blocks itself if the socket fills again).
    pub(super) fn resume_blocked(&mut self, parent: usize) {
        let blocked = match &mut self.entries[parent].role {
            Role::DatagramAcceptor(demux) => core::mem::take(&mut demux.blocked),
            _ => return,
        };
        for child in blocked {
            self.flush(child);
        }
        self.update_interest(parent);
    }

    /// Forgets a reaped child in its acceptor's peer map and blocked list.
    pub(super) fn detach_child(&mut self, parent: usize, child: usize, peer: Option<SocketAddr>) {
        if let Some(Entry {
            role: Role::DatagramAcceptor(demux),
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

/// The address a new transfer socket binds: the acceptor's own (so the
/// peer sees answers from the address it wrote to), or the unspecified
/// address of `from`'s family when the acceptor's is unknown.
fn transfer_ip(local: Option<SocketAddr>, from: SocketAddr) -> std::net::IpAddr {
    local.map_or_else(
        || {
            if from.is_ipv4() {
                Ipv4Addr::UNSPECIFIED.into()
            } else {
                Ipv6Addr::UNSPECIFIED.into()
            }
        },
        |l| l.ip(),
    )
}

/// The sending half of a UDP socket, as the batching code needs it: a
/// trait so that unit tests can stand a fake socket in for the kernel's
/// (one that fills up after N datagrams, or refuses GSO).
pub(super) trait DatagramSocket {
    /// One datagram (`sendto`; a device: one `write`).
    fn send_one(&self, bytes: &[u8], to: SocketAddr) -> std::io::Result<usize>;
    /// Datagrams of `segment` bytes each (the last may be shorter) in one
    /// call (`sendmsg` with `UDP_SEGMENT`). Called only if [`gso`](Self::gso).
    fn send_gso(&self, bytes: &[u8], segment: u16, to: SocketAddr) -> std::io::Result<usize>;
    /// Whether this endpoint can take a train in one call. A device cannot:
    /// its trains are written one packet at a time, and that says nothing
    /// about the kernel's UDP GSO (the reactor-wide switch stays as it is).
    fn gso(&self) -> bool {
        true
    }
    /// Whether a datagram needs a destination here. A device's packets
    /// carry their addresses inside, so a transmit with none (and a
    /// session with no peer) is still sent.
    fn addressed(&self) -> bool {
        true
    }
}

impl DatagramSocket for UdpSocket {
    fn send_one(&self, bytes: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        self.send_to(bytes, to)
    }

    fn send_gso(&self, bytes: &[u8], segment: u16, to: SocketAddr) -> std::io::Result<usize> {
        sys::send_gso(self.as_raw_fd(), bytes, segment, to)
    }
}

/// A session's endpoints, by number.
pub(super) trait Endpoints {
    fn socket(&self, endpoint: EndpointId) -> Option<&dyn DatagramSocket>;
}

/// Where a datagram with no destination goes through an endpoint that
/// needs none (a device, a capture): the address is never used.
const NO_ADDRESS: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// Most bytes a session's `pending` queue may hold. A transmit step pulls
/// nothing new while anything waits, so the queue holds at most the train
/// that met the full socket and the datagram that broke it (two GSO trains'
/// worth); this bound is the backstop should that ever change, and a
/// datagram beyond it is dropped and counted (`Stats::queue_dropped`).
pub(super) const PENDING_MAX_BYTES: usize = 4 * GSO_MAX_BYTES;

/// A session's home socket as it sends: through `send` when the datagram
/// goes to the peer the socket is connected to (see
/// [`UdpState::connected`](super::entry::UdpState)), else `sendto`.
pub(super) struct Home<'a> {
    pub(super) socket: &'a UdpSocket,
    pub(super) connected: Option<SocketAddr>,
}

impl DatagramSocket for Home<'_> {
    fn send_one(&self, bytes: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        if self.connected == Some(to) {
            self.socket.send(bytes)
        } else {
            self.socket.send_to(bytes, to)
        }
    }

    fn send_gso(&self, bytes: &[u8], segment: u16, to: SocketAddr) -> std::io::Result<usize> {
        self.socket.send_gso(bytes, segment, to)
    }
}

/// The reactor's: a home socket (the acceptor's, for a shared session) and
/// the session's extra endpoints, 1, 2, … in order.
impl Endpoints for (Home<'_>, &[Endpoint]) {
    fn socket(&self, endpoint: EndpointId) -> Option<&dyn DatagramSocket> {
        match usize::from(endpoint.0).checked_sub(1) {
            None => Some(&self.0),
            Some(i) => self.1.get(i).map(|e| &e.socket as &dyn DatagramSocket),
        }
    }
}

/// The sending side of one session's endpoints.
pub(super) struct UdpOut<'a> {
    pub(super) sockets: &'a dyn Endpoints,
    /// Whether GSO is still believed to work (cleared on the first refusal).
    pub(super) gso: &'a mut bool,
    /// Datagrams sent so far.
    pub(super) sent: u64,
    /// Datagrams dropped because the `pending` queue was at its bound.
    pub(super) dropped: u64,
}

impl UdpOut<'_> {
    /// Sends `bytes` to `to` through `endpoint` as datagrams of `segment`
    /// bytes (the last may be shorter). `Err(offset)`: the socket is full
    /// and `bytes[offset..]` is still to send.
    fn send(
        &mut self,
        endpoint: EndpointId,
        to: SocketAddr,
        bytes: &[u8],
        segment: usize,
    ) -> Result<(), usize> {
        let Some(socket) = self.sockets.socket(endpoint) else {
            debug!("send through unknown endpoint {endpoint:?}: dropped");
            return Ok(());
        };
        let mut offset = 0;
        if segment == 0 {
            // An empty datagram is still a datagram.
            return match socket.send_one(&[], to) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => Err(0),
                _ => Ok(()),
            };
        }
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            if rest.len() > segment && *self.gso && socket.gso() {
                let seg = u16::try_from(segment).unwrap_or(u16::MAX);
                match socket.send_gso(rest, seg, to) {
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
            match socket.send_one(one, to) {
                Ok(_) => self.sent += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Err(offset),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => debug!("send to {to}: {e}: datagram dropped"),
            }
            offset += one.len();
        }
        Ok(())
    }

    /// Sends the queue from the front; false if a socket filled up again.
    fn drain(&mut self, pending: &mut VecDeque<Pending>) -> bool {
        while let Some(p) = pending.front_mut() {
            match self.send(p.endpoint, p.to, &p.bytes, p.segment) {
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

/// Where a train of datagrams goes: through which endpoint, to whom, and
/// the size of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Train {
    endpoint: EndpointId,
    to: SocketAddr,
    segment: usize,
}

/// Sends what waited, then pulls datagrams from `session` (at most
/// `budget`) and sends them, joining runs of equal-sized datagrams through
/// one endpoint to one destination into GSO trains. `batch` is scratch
/// space.
pub(super) fn transmit_udp(
    out: &mut UdpOut<'_>,
    peer: Option<SocketAddr>,
    pending: &mut VecDeque<Pending>,
    session: &mut dyn DatagramSession,
    cx: &mut Context,
    batch: &mut BytesMut,
    budget: usize,
) -> Sent {
    if !out.drain(pending) {
        return Sent::SocketFull;
    }
    batch.clear();
    let mut train: Option<Train> = None;
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
        let Some(to) = t.to.or(peer).or_else(|| {
            let socket = out.sockets.socket(t.endpoint)?;
            (!socket.addressed()).then_some(NO_ADDRESS)
        }) else {
            debug!("{} datagram with no destination dropped", cx.tag);
            batch.truncate(before);
            continue;
        };
        let next = Train {
            endpoint: t.endpoint,
            to,
            segment: len,
        };
        let joins = matches!(train, Some(tr)
            if tr.endpoint == next.endpoint && tr.to == to && len <= tr.segment && len > 0
                && before / tr.segment < GSO_MAX_SEGMENTS && before + len <= GSO_MAX_BYTES);
        if !joins && let Some(tr) = train {
            // The new datagram cannot ride this train: send the train first.
            if let Err(offset) = out.send(tr.endpoint, tr.to, &batch[..before], tr.segment) {
                queue(pending, tr, &batch[offset..before], &mut out.dropped);
                queue(pending, next, &batch[before..], &mut out.dropped);
                full = true;
                break;
            }
            batch.advance(before);
            train = None;
        }
        let tr = *train.get_or_insert(next);
        if len < tr.segment || len == 0 {
            // A short (or empty) datagram ends its train.
            let tr = Train {
                segment: tr.segment.max(len),
                ..tr
            };
            if let Err(offset) = out.send(tr.endpoint, tr.to, batch, tr.segment) {
                queue(pending, tr, &batch[offset..], &mut out.dropped);
                full = true;
                break;
            }
            batch.clear();
            train = None;
        }
    }
    if !full
        && let Some(tr) = train
        && let Err(offset) = out.send(tr.endpoint, tr.to, batch, tr.segment)
    {
        queue(pending, tr, &batch[offset..], &mut out.dropped);
        full = true;
    }
    batch.clear();
    if full { Sent::SocketFull } else { result }
}

/// Keeps what a full socket did not take, in order, within
/// [`PENDING_MAX_BYTES`]; beyond it the datagrams are dropped and counted
/// in `dropped`.
fn queue(pending: &mut VecDeque<Pending>, train: Train, bytes: &[u8], dropped: &mut u64) {
    let held: usize = pending.iter().map(|p| p.bytes.len()).sum();
    if held + bytes.len() > PENDING_MAX_BYTES {
        *dropped += bytes.len().div_ceil(train.segment.max(1)).max(1) as u64;
        return;
    }
    if !bytes.is_empty() || train.segment == 0 {
        pending.push_back(Pending {
            endpoint: train.endpoint,
            to: train.to,
            bytes: BytesMut::from(bytes),
            segment: train.segment,
        });
    }
}

/// A `Demux` for a new UDP server socket holding at most `max_open`
/// per-peer sessions.
pub(super) fn demux(acceptor: Box<dyn DatagramAcceptor>, max_open: usize) -> Role {
    Role::DatagramAcceptor(Box::new(Demux::new(acceptor, max_open)))
}

#[cfg(test)]
mod tests {
    //! The batching code against a fake socket: what leaves in which system
    //! call, what waits when the socket fills, and that nothing is lost or
    //! sent twice.

    use super::*;
    use crate::proto::{Driven, Transmit};
    use crate::time::Instant;
    use core::cell::{Cell, RefCell};

    /// One system call the fake saw: destination, bytes, segment size
    /// (`None`: a plain `sendto`).
    type Call = (SocketAddr, Vec<u8>, Option<usize>);

    /// A socket with room for `room` datagrams; GSO sends are all or
    /// nothing, as the kernel's are.
    struct Fake {
        room: Cell<usize>,
        gso: bool,
        gso_tries: Cell<usize>,
        calls: RefCell<Vec<Call>>,
    }

    impl Fake {
        fn new(room: usize) -> Self {
            Self {
                room: Cell::new(room),
                gso: true,
                gso_tries: Cell::new(0),
                calls: RefCell::new(Vec::new()),
            }
        }

        /// Every datagram sent, in order, with its destination.
        fn datagrams(&self) -> Vec<(SocketAddr, Vec<u8>)> {
            let mut out = Vec::new();
            for (to, bytes, seg) in self.calls.borrow().iter() {
                match seg {
                    None => out.push((*to, bytes.clone())),
                    Some(seg) => out.extend(bytes.chunks(*seg).map(|c| (*to, c.to_vec()))),
                }
            }
            out
        }
    }

    impl DatagramSocket for Fake {
        fn send_one(&self, bytes: &[u8], to: SocketAddr) -> std::io::Result<usize> {
            if self.room.get() == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            self.room.set(self.room.get() - 1);
            self.calls.borrow_mut().push((to, bytes.to_vec(), None));
            Ok(bytes.len())
        }

        fn send_gso(&self, bytes: &[u8], segment: u16, to: SocketAddr) -> std::io::Result<usize> {
            self.gso_tries.set(self.gso_tries.get() + 1);
            if !self.gso {
                return Err(std::io::Error::from_raw_os_error(libc::EIO));
            }
            let count = bytes.len().div_ceil(usize::from(segment));
            if self.room.get() < count {
                return Err(ErrorKind::WouldBlock.into());
            }
            self.room.set(self.room.get() - count);
            self.calls
                .borrow_mut()
                .push((to, bytes.to_vec(), Some(usize::from(segment))));
            Ok(bytes.len())
        }
    }

    impl<const N: usize> Endpoints for [Fake; N] {
        fn socket(&self, endpoint: EndpointId) -> Option<&dyn DatagramSocket> {
            self.get(usize::from(endpoint.0))
                .map(|f| f as &dyn DatagramSocket)
        }
    }

    /// Emits a scripted list of datagrams: (endpoint, destination, length);
    /// each datagram's bytes are its index, so order and loss show.
    struct Script {
        queue: VecDeque<(u8, Option<SocketAddr>, usize)>,
        next: u8,
    }

    impl Script {
        fn new(list: &[(u8, Option<SocketAddr>, usize)]) -> Self {
            Self {
                queue: list.iter().copied().collect(),
                next: 0,
            }
        }
    }

    impl Driven for Script {}

    impl DatagramSession for Script {
        fn handle_input(&mut self, _: &mut Context, _: DatagramInput<'_>) {}

        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            buf: &mut BytesMut,
        ) -> Option<Transmit> {
            let (endpoint, to, len) = self.queue.pop_front()?;
            buf.resize(buf.len() + len, self.next);
            self.next = self.next.wrapping_add(1);
            Some(Transmit::new(to, len).via(EndpointId(endpoint)))
        }
    }

    fn a() -> SocketAddr {
        "127.0.0.1:1000".parse().unwrap()
    }

    fn b() -> SocketAddr {
        "127.0.0.1:2000".parse().unwrap()
    }

    /// Runs one transmit step of `script` over `sockets`.
    fn step<const N: usize>(
        sockets: &[Fake; N],
        gso: &mut bool,
        pending: &mut VecDeque<Pending>,
        script: &mut Script,
        budget: usize,
    ) -> (Sent, u64) {
        let mut out = UdpOut {
            sockets,
            gso,
            sent: 0,
            dropped: 0,
        };
        let mut cx = Context::new(Instant::ZERO, 0, Some(a()));
        let mut scratch = BytesMut::new();
        let sent = transmit_udp(
            &mut out,
            Some(a()),
            pending,
            script,
            &mut cx,
            &mut scratch,
            budget,
        );
        (sent, out.sent)
    }

    /// The datagrams a script of `n` entries produces, in order.
    fn expected(list: &[(u8, Option<SocketAddr>, usize)]) -> Vec<(SocketAddr, Vec<u8>)> {
        list.iter()
            .enumerate()
            .map(|(i, &(_, to, len))| (to.unwrap_or(a()), vec![u8::try_from(i).unwrap(); len]))
            .collect()
    }

    #[test]
    fn equal_datagrams_to_one_destination_leave_in_one_gso_call() {
        let list = vec![(0, None, 100); 10];
        let sockets = [Fake::new(1000)];
        let (mut gso, mut pending) = (true, VecDeque::new());
        let (sent, count) = step(
            &sockets,
            &mut gso,
            &mut pending,
            &mut Script::new(&list),
            1024,
        );
        assert_eq!((sent, count), (Sent::All, 10));
        let calls = sockets[0].calls.borrow();
        assert_eq!(calls.len(), 1, "one system call");
        assert_eq!(calls[0].2, Some(100));
        drop(calls);
        assert_eq!(sockets[0].datagrams(), expected(&list));
    }

    #[test]
    fn a_short_datagram_ends_its_train_and_a_new_destination_starts_one() {
        let list = [
            (0, None, 100),
            (0, None, 100),
            (0, None, 40), // ends the train: it rides as its last segment
            (0, None, 100),
            (0, Some(b()), 100),
            (0, Some(b()), 100),
        ];
        let sockets = [Fake::new(1000)];
        let (mut gso, mut pending) = (true, VecDeque::new());
        step(
            &sockets,
            &mut gso,
            &mut pending,
            &mut Script::new(&list),
            1024,
        );
        let segments: Vec<(SocketAddr, usize, Option<usize>)> = sockets[0]
            .calls
            .borrow()
            .iter()
            .map(|(to, bytes, seg)| (*to, bytes.len(), *seg))
            .collect();
        assert_eq!(
            segments,
            [
                (a(), 240, Some(100)),
                (a(), 100, None),
                (b(), 200, Some(100))
            ]
        );
        assert_eq!(sockets[0].datagrams(), expected(&list));
    }

    #[test]
    fn a_train_holds_at_most_64_segments() {
        let list = vec![(0, None, 10); 100];
        let sockets = [Fake::new(1000)];
        let (mut gso, mut pending) = (true, VecDeque::new());
        step(
            &sockets,
            &mut gso,
            &mut pending,
            &mut Script::new(&list),
            1024,
        );
        let sizes: Vec<usize> = sockets[0]
            .calls
            .borrow()
            .iter()
            .map(|c| c.1.len())
            .collect();
        assert_eq!(sizes, [640, 360]);
        assert_eq!(sockets[0].datagrams(), expected(&list));
    }

    /// The socket fills in the middle of a step: what was not taken waits,
    /// in order, and the next step sends it — once — before anything new.
    #[test]
    fn a_full_socket_keeps_the_rest_in_order_and_loses_or_repeats_nothing() {
        let list = [
            (0, None, 100),
            (0, None, 100),
            (0, None, 100),
            (0, Some(b()), 50),
            (0, None, 70),
            (0, None, 70),
        ];
        for room in 0..6 {
            let sockets = [Fake::new(room)];
            let (mut gso, mut pending) = (true, VecDeque::new());
            let mut script = Script::new(&list);
            let (sent, _) = step(&sockets, &mut gso, &mut pending, &mut script, 1024);
            assert_eq!(sent, Sent::SocketFull, "room {room}");
            assert!(!pending.is_empty(), "room {room}");
            // Room again: the queue goes first, then the session's rest.
            sockets[0].room.set(1000);
            let mut steps = 0;
            while steps < 10 {
                steps += 1;
                if step(&sockets, &mut gso, &mut pending, &mut script, 1024).0 == Sent::All {
                    break;
                }
            }
            assert!(pending.is_empty(), "room {room}");
            assert_eq!(sockets[0].datagrams(), expected(&list), "room {room}");
        }
    }

    #[test]
    fn gso_refused_falls_back_to_one_datagram_per_call_for_good() {
        let list = vec![(0, None, 100); 5];
        let mut fake = Fake::new(1000);
        fake.gso = false;
        let sockets = [fake];
        let (mut gso, mut pending) = (true, VecDeque::new());
        step(
            &sockets,
            &mut gso,
            &mut pending,
            &mut Script::new(&list),
            1024,
        );
        assert!(!gso, "GSO is off after the first refusal");
        assert_eq!(sockets[0].gso_tries.get(), 1);
        assert_eq!(sockets[0].datagrams(), expected(&list));
        // The next step does not try again.
        step(
            &sockets,
            &mut gso,
            &mut pending,
            &mut Script::new(&list),
            1024,
        );
        assert_eq!(sockets[0].gso_tries.get(), 1);
    }

    #[test]
    fn each_datagram_leaves_by_its_endpoint_and_trains_never_mix_them() {
        let list = [
            (0, None, 100),
            (1, None, 100),
            (1, None, 100),
            (0, None, 100),
            (7, None, 100), // no such endpoint: dropped, not misrouted
        ];
        let sockets = [Fake::new(100), Fake::new(100)];
        let (mut gso, mut pending) = (true, VecDeque::new());
        step(
            &sockets,
            &mut gso,
            &mut pending,
            &mut Script::new(&list),
            1024,
        );
        let home: Vec<Vec<u8>> = sockets[0].datagrams().into_iter().map(|d| d.1).collect();
        let other: Vec<Vec<u8>> = sockets[1].datagrams().into_iter().map(|d| d.1).collect();
        assert_eq!(home, [vec![0; 100], vec![3; 100]]);
        assert_eq!(other, [vec![1; 100], vec![2; 100]]);
    }

    #[test]
    fn the_pending_queue_drops_and_counts_beyond_its_bound() {
        let (mut pending, mut dropped) = (VecDeque::new(), 0);
        let train = Train {
            endpoint: EndpointId::HOME,
            to: a(),
            segment: 1000,
        };
        queue(
            &mut pending,
            train,
            &vec![1; PENDING_MAX_BYTES],
            &mut dropped,
        );
        assert_eq!((pending.len(), dropped), (1, 0), "up to the bound: kept");
        queue(&mut pending, train, &[2; 2500], &mut dropped);
        assert_eq!(
            (pending.len(), dropped),
            (1, 3),
            "beyond: three datagrams dropped"
        );
    }

    /// A connected home socket sends to its peer without naming it, and to
    /// anyone else by address (Linux allows `sendto` on a connected UDP
    /// socket): both arrive where they were sent.
    #[test]
    fn a_connected_home_reaches_its_peer_and_any_other_address() {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&peer, &other] {
            s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
        }
        let (to_peer, to_other) = (peer.local_addr().unwrap(), other.local_addr().unwrap());
        let socket = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        socket.connect(to_peer).unwrap();
        let home = Home {
            socket: &socket,
            connected: Some(to_peer),
        };
        home.send_one(b"peer", to_peer).unwrap();
        home.send_one(b"other", to_other).unwrap();
        let mut buf = [0u8; 16];
        let n = peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"peer");
        let n = other
            .recv(&mut buf)
            .expect("the other address got its datagram");
        assert_eq!(&buf[..n], b"other");
    }

    #[test]
    fn a_step_pulls_at_most_its_budget_of_datagrams() {
        let list = vec![(0, None, 10); 20];
        let sockets = [Fake::new(1000)];
        let (mut gso, mut pending) = (true, VecDeque::new());
        let mut script = Script::new(&list);
        let (sent, count) = step(&sockets, &mut gso, &mut pending, &mut script, 8);
        assert_eq!((sent, count), (Sent::BudgetSpent, 8));
        assert_eq!(script.queue.len(), 12, "the rest is left in the session");
    }
}
