//! The stack session: the IP layer and what answers above it.
//!
//! Owns the path of one datagram: device → inbound impairment → capture
//! copy → validation → reassembly → dispatch by protocol → answer → IP
//! header and fragmentation → outbound impairment → capture copy → device.
//! It must never hold more than its bounds ([`MAX_QUEUED`], the
//! reassembler's), and never answer an ICMP error with another one.

use super::fragment::{self, Identifier};
use super::ratelimit::{ICMP_ERROR_BURST, ICMP_ERRORS_PER_SEC, RateLimit};
use super::reassembly::{Assembly, Expired, FragKey, Reassembler};
use super::tcp::{ConnectError, Input, Tcp};
use super::{CAPTURE_IN, CAPTURE_OUT, ConfigError, DEFAULT_TTL, ECHO_PORT, StackConfig};
use crate::proto::proxy::impair::{self, Impairment, Verdict};
use crate::proto::tcp::conn::{self, MAX_SEGMENT_OVERHEAD, reset_for};
use crate::proto::tcp::session::CounterCell;
use crate::proto::{
    Context, DatagramInput, DatagramSession, Driven, EndpointId, PartId, StreamAcceptor,
    StreamSession, Transmit,
};
use crate::time::Instant;
use crate::wire::ipv4::{self, Protocol};
use crate::wire::{checksum, icmp, tcp, udp};
use bytes::{Bytes, BytesMut};
use core::cell::Cell;
use core::fmt;
use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

/// Most datagrams (capture copies included) waiting for the reactor to
/// write them. One input makes at most 45 fragments (a 65 535-byte
/// datagram at MTU 1500), twice that with capture; 4 096 absorbs a burst
/// of those while the device is not writable, and past it the stack stops
/// reading ([`Driven::wants_input`]) and drops what it still makes.
pub const MAX_QUEUED: usize = 4_096;

/// Most datagrams an impairment may hold back at once, per direction.
/// Its own bounds are optional (no rate, no queue limit: only a delay), so
/// without this a flood under `--tun-reorder` would grow the held set with
/// the input rate; 4 096 is ten milliseconds of a 400 000-packet/s flood.
/// Past it, datagrams are dropped and counted as queue drops.
pub const MAX_HELD: usize = 4_096;

/// What the stack did, for the log on exit and `-v`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams read from the device (after inbound impairment).
    pub datagrams_in: u64,
    /// Datagrams written to the device (after outbound impairment, so
    /// duplicates count twice; fragments each count).
    pub datagrams_out: u64,
    /// Bad IPv4 header, ICMP or UDP checksums.
    pub bad_checksum: u64,
    /// Malformed headers: version, header or total length, TTL 0, a
    /// source that cannot be answered, a short ICMP or UDP header.
    pub bad_header: u64,
    /// Datagrams for another address.
    pub not_ours: u64,
    /// Fragments received.
    pub fragments_in: u64,
    /// Datagrams reassembled from fragments.
    pub reassembled: u64,
    /// Datagrams that timed out incomplete.
    pub reassembly_timeouts: u64,
    /// Datagrams discarded for overlapping fragments.
    pub overlaps: u64,
    /// Datagrams under reassembly evicted to stay within the bounds.
    pub evicted: u64,
    /// Fragments sent (the pieces of datagrams larger than the MTU).
    pub fragments_sent: u64,
    /// Echo requests answered.
    pub echo_replies: u64,
    /// UDP datagrams echoed.
    pub udp_echoed: u64,
    /// ICMP errors sent (port or protocol unreachable, time exceeded).
    pub icmp_errors: u64,
    /// ICMP errors not sent because of the rate limit.
    pub icmp_rate_limited: u64,
    /// TCP segments for our address with a correct checksum.
    pub tcp_segments_in: u64,
    /// TCP segments sent by connections (not counting RSTs for segments
    /// that matched none).
    pub tcp_segments_out: u64,
    /// TCP segments with a bad checksum (pseudo-header included).
    pub tcp_bad_checksum: u64,
    /// RSTs sent for segments that matched no connection (a closed port,
    /// a refused SYN).
    pub tcp_resets: u64,
    /// Half-open connections dropped for a new SYN ([`super::MAX_HALF_OPEN`]).
    pub tcp_half_open_dropped: u64,
    /// Connections in TIME-WAIT freed early for a new one
    /// ([`super::MAX_CONNECTIONS`]).
    pub tcp_time_wait_reclaimed: u64,
    /// Connections accepted (a SYN to a listening port).
    pub tcp_accepted: u64,
    /// Connections forgotten (closed, reset, timed out or dropped).
    pub tcp_closed: u64,
    /// Datagrams dropped by the inbound impairment.
    pub impair_dropped_in: u64,
    /// Datagrams dropped by the outbound impairment.
    pub impair_dropped_out: u64,
    /// Datagrams dropped because [`MAX_QUEUED`] were waiting, or an
    /// impairment held [`MAX_HELD`].
    pub queue_dropped: u64,
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "in {} out {} bad-checksum {} bad-header {} not-ours {} fragments-in {} \
             reassembled {} reassembly-timeouts {} overlaps {} evicted {} fragments-sent {} \
             echo {} udp-echo {} icmp-errors {} icmp-rate-limited {} tcp-in {} tcp-out {} \
             tcp-bad-checksum {} tcp-resets {} tcp-half-open-dropped {} tcp-time-wait-reclaimed {} tcp-accepted {} \
             tcp-closed {} impair-dropped {}/{} queue-dropped {}",
            self.datagrams_in,
            self.datagrams_out,
            self.bad_checksum,
            self.bad_header,
            self.not_ours,
            self.fragments_in,
            self.reassembled,
            self.reassembly_timeouts,
            self.overlaps,
            self.evicted,
            self.fragments_sent,
            self.echo_replies,
            self.udp_echoed,
            self.icmp_errors,
            self.icmp_rate_limited,
            self.tcp_segments_in,
            self.tcp_segments_out,
            self.tcp_bad_checksum,
            self.tcp_resets,
            self.tcp_half_open_dropped,
            self.tcp_time_wait_reclaimed,
            self.tcp_accepted,
            self.tcp_closed,
            self.impair_dropped_in,
            self.impair_dropped_out,
            self.queue_dropped,
        )
    }
}

/// A datagram the IP layer accepted, whole (reassembled if it came in
/// fragments), as the protocols above see it.
struct Datagram<'a> {
    repr: ipv4::Repr,
    /// Its header as received; `None` for a reassembled datagram, whose
    /// header is rebuilt when an error must quote it.
    header: Option<&'a [u8]>,
    ident: u16,
    payload: &'a [u8],
}

/// The userspace IP stack on one TUN device. See the module docs.
#[derive(Debug)]
pub struct Stack {
    config: StackConfig,
    reassembler: Reassembler,
    idents: Identifier,
    icmp_limit: RateLimit,
    inbound: Option<Impairment<Bytes>>,
    outbound: Option<Impairment<Bytes>>,
    /// Datagrams for the reactor, with the endpoint each leaves by.
    queue: VecDeque<(EndpointId, Bytes)>,
    counters: Counters,
    /// TCP: listeners and connections.
    tcp: Tcp,
    /// A copy of [`Stack::counters`] for whoever reports them once the
    /// stack is boxed away in the reactor; refreshed after every call.
    shared: SharedCounters,
    /// Where the engine writes a segment: zeroed once and reused, so a
    /// 64 KiB burst costs a copy, not an allocation and a zeroing too.
    scratch: Vec<u8>,
    /// The last segment pulled was a burst (longer than the MTU): the next
    /// is built straight in the reactor's buffer, worth zeroing 64 KiB of
    /// it only while bursts follow each other (ACKs and handshakes go
    /// through `scratch`: a turn that finds nothing to send must not pay
    /// for a 64 KiB memset, as connection rates would).
    bursting: bool,
}

/// What [`Stack::pull_into`] did.
enum Pulled {
    /// No connection had anything to send.
    Nothing,
    /// A datagram of this length is in the buffer.
    Datagram(usize),
    /// The segment went to the queue another way (as fragments).
    Queued,
}

/// The [`Counters`] of a [`Stack`], readable by its owner (the serve
/// command's report on exit) while the reactor holds the stack.
pub type SharedCounters = Rc<Cell<Counters>>;

impl Stack {
    /// A stack with `config`, or why it is wrong.
    ///
    /// # Errors
    ///
    /// What [`StackConfig::validate`] finds.
    pub fn new(config: StackConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let link = |c: Option<impair::ImpairConfig>, inbound| {
            c.map(Impairment::new)
                .transpose()
                .map_err(|error| ConfigError::Impair { inbound, error })
        };
        Ok(Self {
            inbound: link(config.impair_in, true)?,
            outbound: link(config.impair_out, false)?,
            config,
            reassembler: Reassembler::new(),
            tcp: Tcp::new(
                config.addr,
                tcp_config(conn::Config::default(), &config),
                isn_key(),
            ),
            idents: Identifier::new(1),
            icmp_limit: RateLimit::new(ICMP_ERRORS_PER_SEC, ICMP_ERROR_BURST),
            queue: VecDeque::new(),
            counters: Counters::default(),
            shared: SharedCounters::default(),
            scratch: Vec::new(),
            bursting: false,
        })
    }

    /// The stack serving TCP on `listeners` (port, acceptor of the
    /// sessions above each connection) with the engine configured by
    /// `tcp` (its MSS is set from the MTU: MTU - 40). A SYN to any other
    /// port is answered with RST, as it is without this.
    #[must_use]
    pub fn with_tcp(
        mut self,
        listeners: Vec<(u16, Box<dyn StreamAcceptor>)>,
        tcp: conn::Config,
    ) -> Self {
        self.tcp.set_listeners(listeners);
        self.tcp.set_config(tcp_config(tcp, &self.config));
        self
    }

    /// The stack with ISNs keyed by `key` instead of a random key (tests,
    /// and runs that must repeat).
    #[must_use]
    pub fn with_isn_key(mut self, key: [u8; 16]) -> Self {
        self.tcp.set_isn_key(key);
        self
    }

    /// Opens a TCP connection from the stack's address (an ephemeral port)
    /// to `remote`, with `app` above it; its SYN goes at the next
    /// `poll_transmit`. Returns where the connection's engine counters
    /// can be read (a client's `--json`).
    ///
    /// # Errors
    /// Too many connections, or no free port towards `remote`.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
        app: Box<dyn StreamSession>,
    ) -> Result<CounterCell, ConnectError> {
        let r = self.tcp.connect(now, remote, app);
        self.publish();
        r
    }

    /// Lowers [`super::MAX_CONNECTIONS`] for a test.
    #[cfg(test)]
    pub(super) fn set_max_connections(&mut self, n: usize) {
        self.tcp.set_max_connections(n);
    }

    /// TCP connections open now (any state), and of those half-open.
    pub fn tcp_connections(&self) -> (usize, usize) {
        (self.tcp.len(), self.tcp.half_open())
    }

    /// A handle on the counters that stays valid while the reactor holds
    /// the stack: up to date after every call into it.
    pub fn shared_counters(&self) -> SharedCounters {
        Rc::clone(&self.shared)
    }

    fn publish(&self) {
        self.shared.set(self.counters());
    }

    /// The configuration in force.
    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// What the stack has done so far (reassembly and impairment included).
    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        let r = self.reassembler.counters();
        c.reassembled = r.reassembled;
        c.reassembly_timeouts = r.timeouts;
        c.overlaps = r.overlaps;
        c.evicted = r.evicted;
        let drops = |l: &Option<Impairment<Bytes>>| {
            l.as_ref().map_or(0, |l| {
                let k = l.counters();
                k.dropped + k.queue_dropped
            })
        };
        c.impair_dropped_in = drops(&self.inbound);
        c.impair_dropped_out = drops(&self.outbound);
        let t = &self.tcp.counters;
        c.tcp_segments_in = t.segments_in;
        c.tcp_segments_out = t.segments_out;
        c.tcp_half_open_dropped = t.half_open_dropped;
        c.tcp_time_wait_reclaimed = t.time_wait_reclaimed;
        c.tcp_accepted = t.accepted;
        c.tcp_closed = t.closed;
        c
    }

    /// Sends `payload` (a transport header and its data) to `dst` as one
    /// IPv4 datagram from the stack's address, fragmented for the MTU. How
    /// the protocols above the IP layer (and the TCP engine to come) answer.
    /// A payload over [`ipv4::MAX_PAYLOAD_LEN`] is dropped.
    pub fn send_ip(&mut self, now: Instant, dst: Ipv4Addr, protocol: Protocol, payload: &[u8]) {
        self.send_ip_with(now, dst, protocol, payload.len(), |buf| {
            buf.copy_from_slice(payload);
        });
    }

    /// As [`send_ip`](Self::send_ip), with the `payload_len` bytes of the
    /// payload written by `fill` (into zeroed bytes): a datagram that fits
    /// the MTU is then built in place, in the buffer that goes to the
    /// device, with no copy of its payload.
    pub fn send_ip_with(
        &mut self,
        now: Instant,
        dst: Ipv4Addr,
        protocol: Protocol,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) {
        if payload_len > ipv4::MAX_PAYLOAD_LEN {
            return;
        }
        if ipv4::HEADER_LEN + payload_len > self.config.mtu {
            let mut payload = vec![0; payload_len];
            fill(&mut payload);
            self.send_fragments(now, dst, protocol, &payload);
            return;
        }
        let repr = self.repr(dst, protocol, payload_len);
        let mut buf = BytesMut::zeroed(repr.buffer_len());
        fill(&mut buf[ipv4::HEADER_LEN..]);
        repr.emit(
            &mut ipv4::Packet::new_unchecked(&mut buf[..]),
            self.idents.next_ident(),
        );
        self.device_out(now, buf.freeze());
    }

    /// The header of a datagram from the stack to `dst`.
    fn repr(&self, dst: Ipv4Addr, protocol: Protocol, payload_len: usize) -> ipv4::Repr {
        ipv4::Repr {
            src_addr: self.config.addr,
            dst_addr: dst,
            protocol,
            payload_len,
            ttl: DEFAULT_TTL,
        }
    }

    /// Sends a payload too large for the MTU as fragments sharing one
    /// identification.
    fn send_fragments(&mut self, now: Instant, dst: Ipv4Addr, protocol: Protocol, payload: &[u8]) {
        let ident = self.idents.next_ident();
        for piece in fragment::pieces(payload.len(), ipv4::HEADER_LEN, self.config.mtu) {
            // Offsets stay under MAX_PAYLOAD_LEN, checked by the caller.
            let Ok(offset) = u16::try_from(piece.offset) else {
                return;
            };
            let repr = self.repr(dst, protocol, piece.len);
            let mut buf = BytesMut::zeroed(repr.buffer_len());
            let mut packet = ipv4::Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut packet, ident);
            packet.set_flags_and_offset(false, piece.more, offset);
            packet.fill_checksum();
            packet
                .payload_mut()
                .copy_from_slice(&payload[piece.offset..piece.offset + piece.len]);
            self.counters.fragments_sent += 1;
            self.device_out(now, buf.freeze());
        }
    }

    /// One datagram from the IP layer towards the device: through the
    /// outbound impairment, if any, then queued.
    fn device_out(&mut self, now: Instant, datagram: Bytes) {
        match &mut self.outbound {
            Some(link) if link.in_flight() >= MAX_HELD => self.counters.queue_dropped += 1,
            Some(link) => {
                let len = datagram.len();
                link.push(now, datagram, len);
                self.release_outbound(now);
            }
            None => self.queue_out(datagram),
        }
    }

    fn release_outbound(&mut self, now: Instant) {
        while let Some(d) = self.outbound.as_mut().and_then(|l| l.poll_release(now)) {
            self.queue_out(d);
        }
    }

    fn queue_out(&mut self, datagram: Bytes) {
        self.counters.datagrams_out += 1;
        if self.config.capture {
            self.enqueue(CAPTURE_OUT, datagram.clone());
        }
        self.enqueue(EndpointId::HOME, datagram);
    }

    fn enqueue(&mut self, endpoint: EndpointId, datagram: Bytes) {
        if self.queue.len() >= MAX_QUEUED {
            self.counters.queue_dropped += 1;
        } else {
            self.queue.push_back((endpoint, datagram));
        }
    }

    fn release_inbound(&mut self, now: Instant) {
        while let Some(d) = self.inbound.as_mut().and_then(|l| l.poll_release(now)) {
            self.device_in(now, &d);
        }
    }

    /// One datagram from the device (after inbound impairment).
    fn device_in(&mut self, now: Instant, bytes: &[u8]) {
        if self.config.capture {
            self.enqueue(CAPTURE_IN, Bytes::copy_from_slice(bytes));
        }
        self.counters.datagrams_in += 1;
        let Ok(packet) = ipv4::Packet::new_checked(bytes) else {
            self.counters.bad_header += 1;
            return;
        };
        let repr = match ipv4::Repr::parse(&packet) {
            Ok(r) => r,
            Err(ipv4::Error::Checksum) => {
                self.counters.bad_checksum += 1;
                return;
            }
            Err(_) => {
                self.counters.bad_header += 1;
                return;
            }
        };
        // RFC 1122 §3.2.1.7: a host must not send TTL 0, so none may arrive.
        if repr.ttl == 0 {
            self.counters.bad_header += 1;
            return;
        }
        if repr.dst_addr != self.config.addr {
            self.counters.not_ours += 1;
            return;
        }
        // RFC 1122 §3.2.1.3: a datagram from a broadcast, multicast or
        // loopback source is silently discarded (it cannot be answered).
        let src = repr.src_addr;
        if src.is_broadcast() || src.is_multicast() || src.is_loopback() {
            self.counters.bad_header += 1;
            return;
        }
        let ident = packet.ident();
        if !packet.is_fragment() {
            let header = packet.header();
            self.dispatch(
                now,
                &Datagram {
                    repr,
                    header: Some(header),
                    ident,
                    payload: packet.payload_ref(),
                },
            );
            return;
        }
        self.counters.fragments_in += 1;
        let key = FragKey {
            src: repr.src_addr,
            dst: repr.dst_addr,
            protocol: u8::from(repr.protocol),
            ident,
        };
        let offset = usize::from(packet.frag_offset());
        let assembly = self.reassembler.handle_fragment(
            now,
            key,
            offset,
            packet.more_frags(),
            packet.payload_ref(),
        );
        self.answer_expired(now);
        if let Assembly::Complete(payload) = assembly {
            let repr = ipv4::Repr {
                payload_len: payload.len(),
                ..repr
            };
            self.dispatch(
                now,
                &Datagram {
                    repr,
                    header: None,
                    ident,
                    payload: &payload,
                },
            );
        }
    }

    /// Hands a whole datagram to the protocol it carries.
    fn dispatch(&mut self, now: Instant, d: &Datagram<'_>) {
        match d.repr.protocol {
            Protocol::Icmp => self.icmp_input(now, d),
            Protocol::Udp => self.udp_input(now, d),
            Protocol::Tcp => self.tcp_input(now, d),
            Protocol::Unknown(_) => {
                self.icmp_error(
                    now,
                    d,
                    icmp::Message::DstUnreachable,
                    icmp::PROTOCOL_UNREACHABLE,
                );
            }
        }
    }

    /// A TCP segment: checksum (over the pseudo-header), then its
    /// connection, a listener, or a RST.
    fn tcp_input(&mut self, now: Instant, d: &Datagram<'_>) {
        let (src, dst) = (d.repr.src_addr, d.repr.dst_addr);
        let Ok(packet) = tcp::Packet::new_checked(d.payload) else {
            self.counters.bad_header += 1;
            return;
        };
        if !packet.verify_checksum(src, dst) {
            self.counters.tcp_bad_checksum += 1;
            return;
        }
        let Ok(segment) = tcp::Repr::parse(&packet) else {
            self.counters.bad_header += 1;
            return;
        };
        if let Input::Reset = self.tcp.input(now, src, &segment) {
            let mut buf = [0; tcp::MAX_HEADER_LEN];
            if let Some(n) = reset_for(&segment, &mut buf) {
                self.counters.tcp_resets += 1;
                self.send_segment(now, src, &mut buf[..n]);
            }
        }
    }

    /// Sends one segment the engine wrote (checksum zero) to `dst`, its
    /// checksum filled: as a datagram built in place, DF set (the engine's
    /// MSS fits the MTU).
    fn send_segment(&mut self, now: Instant, dst: Ipv4Addr, segment: &mut [u8]) {
        tcp::Packet::new_unchecked(&mut *segment).fill_checksum(self.config.addr, dst);
        self.send_tcp_datagram(now, dst, segment.len(), |buf| buf.copy_from_slice(segment));
    }

    /// A TCP datagram to `dst` whose `len` payload bytes (a segment with
    /// its checksum filled) `fill` writes: DF set when it fits the MTU, as
    /// fragments otherwise (an engine configured past the MTU).
    fn send_tcp_datagram(
        &mut self,
        now: Instant,
        dst: Ipv4Addr,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) {
        if ipv4::HEADER_LEN + len > self.config.mtu {
            self.send_ip_with(now, dst, Protocol::Tcp, len, fill);
            return;
        }
        let repr = self.repr(dst, Protocol::Tcp, len);
        let mut buf = BytesMut::zeroed(repr.buffer_len());
        fill(&mut buf[ipv4::HEADER_LEN..]);
        let mut packet = ipv4::Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut packet, self.idents.next_ident());
        packet.set_flags_and_offset(true, false, 0);
        packet.fill_checksum();
        self.device_out(now, buf.freeze());
    }

    /// Pulls one segment from a connection with something to send into a
    /// datagram on its way to the device. `false`: none had anything, or
    /// the outbound impairment holds all it may.
    fn pull_segment(&mut self, now: Instant) -> bool {
        if self
            .outbound
            .as_ref()
            .is_some_and(|l| l.in_flight() >= MAX_HELD)
        {
            return false;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(self.segment_room(), 0);
        let pulled = self.pull_into(now, &mut scratch);
        self.bursting = matches!(pulled, Pulled::Datagram(len) if len > self.config.mtu);
        if let Pulled::Datagram(len) = pulled {
            self.device_out(now, Bytes::copy_from_slice(&scratch[..len]));
        }
        self.scratch = scratch;
        !matches!(pulled, Pulled::Nothing)
    }

    /// Bytes a datagram built by [`pull_into`](Self::pull_into) may need.
    fn segment_room(&self) -> usize {
        let burst = self.tcp.config().max_burst;
        ipv4::HEADER_LEN + MAX_SEGMENT_OVERHEAD + usize::from(self.tcp.config().mss).max(burst)
    }

    /// Builds the next segment of a connection with something to send as
    /// a datagram in `out` (at least [`segment_room`](Self::segment_room)
    /// bytes).
    fn pull_into(&mut self, now: Instant, out: &mut [u8]) -> Pulled {
        let burst = self.tcp.config().max_burst;
        let Some((dst, n)) = self.tcp.poll_segment(now, &mut out[ipv4::HEADER_LEN..]) else {
            return Pulled::Nothing;
        };
        let len = ipv4::HEADER_LEN + n;
        // A burst goes whole (DF) for the device to cut; anything else
        // past the MTU (an engine configured past it) as fragments.
        if len > self.config.mtu && burst == 0 {
            let mut segment = out[ipv4::HEADER_LEN..len].to_vec();
            self.send_segment(now, dst, &mut segment);
            return Pulled::Queued;
        }
        let src = self.config.addr;
        let mut segment = tcp::Packet::new_unchecked(&mut out[ipv4::HEADER_LEN..len]);
        if len > self.config.mtu {
            // A burst carries the pseudo-header's sum only, as a TCP with
            // segmentation offload hands it to a NIC (the kernel's
            // CHECKSUM_PARTIAL): the device or the kernel completes the
            // checksum of each piece it cuts, so the whole one is never
            // summed here.
            let pseudo = checksum::pseudo_header(
                src,
                dst,
                u8::from(Protocol::Tcp),
                u16::try_from(n).unwrap_or(u16::MAX),
            );
            segment.set_checksum(checksum::fold(pseudo));
        } else {
            segment.fill_checksum(src, dst);
        }
        let repr = self.repr(dst, Protocol::Tcp, n);
        let mut packet = ipv4::Packet::new_unchecked(&mut out[..len]);
        repr.emit(&mut packet, self.idents.next_ident());
        packet.set_flags_and_offset(true, false, 0);
        packet.fill_checksum();
        Pulled::Datagram(len)
    }

    fn icmp_input(&mut self, now: Instant, d: &Datagram<'_>) {
        let Ok(packet) = icmp::Packet::new_checked(d.payload) else {
            self.counters.bad_header += 1;
            return;
        };
        match icmp::Repr::parse(&packet) {
            Ok(icmp::Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }) => {
                let reply = icmp::Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                self.counters.echo_replies += 1;
                let to = d.repr.src_addr;
                self.send_ip_with(now, to, Protocol::Icmp, reply.buffer_len(), |buf| {
                    reply.emit(&mut icmp::Packet::new_unchecked(buf));
                });
            }
            Err(icmp::Error::Checksum) => self.counters.bad_checksum += 1,
            // Replies and errors need no answer, and unknown types are
            // ignored (RFC 1122 §3.2.2).
            Ok(_) | Err(_) => {}
        }
    }

    fn udp_input(&mut self, now: Instant, d: &Datagram<'_>) {
        let (src, dst) = (d.repr.src_addr, d.repr.dst_addr);
        let Ok(packet) = udp::Packet::new_checked(d.payload) else {
            self.counters.bad_header += 1;
            return;
        };
        let repr = match udp::Repr::parse(&packet, src, dst) {
            Ok(r) => r,
            Err(udp::Error::Checksum) => {
                self.counters.bad_checksum += 1;
                return;
            }
            Err(_) => {
                self.counters.bad_header += 1;
                return;
            }
        };
        if repr.dst_port != ECHO_PORT {
            self.icmp_error(
                now,
                d,
                icmp::Message::DstUnreachable,
                icmp::PORT_UNREACHABLE,
            );
            return;
        }
        let data = packet.payload();
        let echo = udp::Repr {
            src_port: repr.dst_port,
            dst_port: repr.src_port,
        };
        let mut buf = vec![0; echo.buffer_len(data.len())];
        buf[udp::HEADER_LEN..].copy_from_slice(data);
        echo.emit(
            &mut udp::Packet::new_unchecked(&mut buf[..]),
            dst,
            src,
            data.len(),
        );
        self.counters.udp_echoed += 1;
        self.send_ip(now, src, Protocol::Udp, &buf);
    }

    /// Answers `d` with an ICMP error, quoting its header and first 8
    /// payload bytes, unless its source cannot be answered (RFC 1122
    /// §3.2.2: not to a broadcast, multicast or unspecified source, nor
    /// about an ICMP error) or the rate limit says no.
    fn icmp_error(&mut self, now: Instant, d: &Datagram<'_>, message: icmp::Message, code: u8) {
        let src = d.repr.src_addr;
        if src.is_unspecified() || src.is_broadcast() || src.is_multicast() {
            return;
        }
        if d.repr.protocol == Protocol::Icmp {
            return;
        }
        let quoted = &d.payload[..d.payload.len().min(icmp::QUOTED_PAYLOAD_LEN)];
        let mut original = match d.header {
            Some(header) => header.to_vec(),
            None => rebuilt_header(&d.repr, d.ident, false),
        };
        original.extend_from_slice(quoted);
        self.send_icmp_error(now, src, message, code, &original);
    }

    fn send_icmp_error(
        &mut self,
        now: Instant,
        to: Ipv4Addr,
        message: icmp::Message,
        code: u8,
        original: &[u8],
    ) {
        if !self.icmp_limit.allow(now) {
            self.counters.icmp_rate_limited += 1;
            return;
        }
        let repr = match message {
            icmp::Message::TimeExceeded => icmp::Repr::TimeExceeded { code, original },
            _ => icmp::Repr::DstUnreachable { code, original },
        };
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut icmp::Packet::new_unchecked(&mut buf[..]));
        self.counters.icmp_errors += 1;
        self.send_ip(now, to, Protocol::Icmp, &buf);
    }

    /// RFC 792: "fragment reassembly time exceeded" for each datagram that
    /// timed out with its first fragment in (so there is something to
    /// quote, and the sender can match it).
    fn answer_expired(&mut self, now: Instant) {
        while let Some(Expired { key, first }) = self.reassembler.poll_expired() {
            let Some(first) = first else { continue };
            let protocol = Protocol::from(key.protocol);
            // Never about an ICMP error (RFC 1122 §3.2.2); an echo request
            // is no error, and `ping -s` deserves to hear why it failed.
            let icmp_error = protocol == Protocol::Icmp
                && first.first() != Some(&u8::from(icmp::Message::EchoRequest));
            if icmp_error
                || key.src.is_unspecified()
                || key.src.is_broadcast()
                || key.src.is_multicast()
            {
                continue;
            }
            let repr = ipv4::Repr {
                src_addr: key.src,
                dst_addr: key.dst,
                protocol,
                payload_len: first.len(),
                ttl: DEFAULT_TTL,
            };
            let mut original = rebuilt_header(&repr, key.ident, true);
            original.extend_from_slice(&first);
            self.send_icmp_error(
                now,
                key.src,
                icmp::Message::TimeExceeded,
                icmp::REASSEMBLY_TIME_EXCEEDED,
                &original,
            );
        }
    }
}

/// A 20-byte header for a datagram the stack no longer holds as received
/// (reassembled, or timed out), for an ICMP error to quote: what the
/// sender needs to match it (addresses, protocol, identification).
fn rebuilt_header(repr: &ipv4::Repr, ident: u16, more_frags: bool) -> Vec<u8> {
    let mut header = vec![0; ipv4::HEADER_LEN];
    let mut packet = ipv4::Packet::new_unchecked(&mut header[..]);
    let repr = ipv4::Repr {
        payload_len: repr.payload_len.min(ipv4::MAX_PAYLOAD_LEN),
        ..*repr
    };
    repr.emit(&mut packet, ident);
    if more_frags {
        packet.set_flags_and_offset(false, true, 0);
        packet.fill_checksum();
    }
    header
}

impl Driven for Stack {
    fn handle_timeout(&mut self, cx: &mut Context) {
        self.tcp.set_entry(cx.tag.key);
        self.tcp.handle_timeout(cx.now);
        self.release_inbound(cx.now);
        self.reassembler.handle_timeout(cx.now);
        self.answer_expired(cx.now);
        self.release_outbound(cx.now);
        self.publish();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let links = [&self.inbound, &self.outbound];
        links
            .into_iter()
            .filter_map(|l| l.as_ref().and_then(Impairment::next_release))
            .chain(self.reassembler.poll_timeout())
            .chain(self.tcp.poll_timeout())
            .min()
    }

    fn wants_input(&self) -> bool {
        self.queue.len() < MAX_QUEUED
    }

    fn poll_part_timeout(&mut self) -> Option<(PartId, Option<Instant>)> {
        self.tcp.poll_part()
    }

    fn handle_part_timeout(&mut self, cx: &mut Context, part: PartId) {
        self.tcp.set_entry(cx.tag.key);
        self.tcp.part_timeout(cx.now, part);
        self.publish();
    }
}

impl DatagramSession for Stack {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        let DatagramInput::Packet {
            endpoint: EndpointId::HOME,
            payload,
        } = input
        else {
            return;
        };
        self.tcp.set_entry(cx.tag.key);
        match &mut self.inbound {
            Some(link) if link.in_flight() >= MAX_HELD => self.counters.queue_dropped += 1,
            Some(link) => {
                if let Verdict::Accepted { .. } =
                    link.push(cx.now, Bytes::copy_from_slice(payload), payload.len())
                {
                    self.release_inbound(cx.now);
                }
            }
            None => self.device_in(cx.now, payload),
        }
        self.publish();
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        self.release_outbound(cx.now);
        self.tcp.set_entry(cx.tag.key);
        loop {
            // Bursting, nothing queued, no impairment or capture to pass:
            // the segment is built in the reactor's buffer, no copy between.
            if self.bursting
                && self.queue.is_empty()
                && self.outbound.is_none()
                && !self.config.capture
            {
                let base = buf.len();
                buf.resize(base + self.segment_room(), 0);
                let pulled = self.pull_into(cx.now, &mut buf[base..]);
                self.bursting = matches!(pulled, Pulled::Datagram(len) if len > self.config.mtu);
                match pulled {
                    Pulled::Nothing => {
                        buf.truncate(base);
                        self.publish();
                        return None;
                    }
                    Pulled::Queued => buf.truncate(base),
                    Pulled::Datagram(len) if len > limit => {
                        buf.truncate(base);
                        self.counters.queue_dropped += 1;
                        continue;
                    }
                    Pulled::Datagram(len) => {
                        buf.truncate(base + len);
                        self.counters.datagrams_out += 1;
                        return Some(Transmit::new(None, len).via(EndpointId::HOME));
                    }
                }
            }
            // Segments are pulled from the connections only when nothing
            // else waits, so the queue never holds more than one
            // segment's datagrams (and their copies).
            if self.queue.is_empty() && !self.pull_segment(cx.now) {
                self.publish();
                return None;
            }
            let Some((endpoint, datagram)) = self.queue.pop_front() else {
                continue;
            };
            if datagram.len() > limit {
                // The reactor's buffer is smaller than the MTU it set up;
                // nothing better to do than count it.
                self.counters.queue_dropped += 1;
                continue;
            }
            buf.extend_from_slice(&datagram);
            return Some(Transmit::new(None, datagram.len()).via(endpoint));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        log::debug!("tunstack counters: {}", self.counters());
    }
}

/// `tcp` with the MSS the MTU allows: MTU - 40 (the IPv4 and TCP headers
/// without options), as Linux computes it; and, unless an impairment is
/// configured (it must see every MTU-sized packet, as a lossy link
/// would), data segments of up to [`TSO_BURST`] bytes, which the device
/// cuts at its MTU (segmentation offload).
fn tcp_config(mut tcp: conn::Config, config: &StackConfig) -> conn::Config {
    let mss = config
        .mtu
        .saturating_sub(ipv4::HEADER_LEN + tcp::HEADER_LEN);
    tcp.mss = u16::try_from(mss).unwrap_or(u16::MAX);
    if config.impair_in.is_none() && config.impair_out.is_none() && tcp.max_burst == 0 {
        tcp.max_burst = TSO_BURST;
    }
    tcp
}

/// The most payload a data segment handed to the device carries (TCP
/// segmentation offload): what an IPv4 datagram holds (65 535 bytes) less
/// its header and the largest TCP header. One `write(2)` and one pass of
/// the kernel's receive path instead of ~45: the sending stack's time was
/// a third per-packet system calls and the context switches they cause.
pub(crate) const TSO_BURST: usize = 65_535 - ipv4::HEADER_LEN - tcp::MAX_HEADER_LEN;

/// A key for the ISN generator no outsider can guess, without reading
/// the OS here: std's randomly keyed hasher (its keys come from the OS
/// once per thread, then each `RandomState` differs) hashing a constant.
fn isn_key() -> [u8; 16] {
    let a = RandomState::new().hash_one(0x6528_u64);
    let b = RandomState::new().hash_one(0x9293_u64);
    let mut key = [0; 16];
    key[..8].copy_from_slice(&a.to_le_bytes());
    key[8..].copy_from_slice(&b.to_le_bytes());
    key
}
