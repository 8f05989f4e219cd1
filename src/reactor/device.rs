//! Device endpoints: a TUN device as a datagram session's home endpoint,
//! and a capture file as its write-only endpoints 1 and 2.
//!
//! Owns the device's receive pump (readiness → whole packets read until
//! `WouldBlock` or the turn's datagram budget → [`DatagramInput::Packet`])
//! and its sending half: the [`DatagramSocket`] impls through which the
//! batching code of `datagram.rs` writes a session's transmits — one
//! `write(2)` per packet to the device (a device has no UDP GSO: a train
//! of equal-sized packets is written one by one, and the reactor-wide UDP
//! GSO switch is left alone; a TCP super-segment is one packet to it, cut
//! by the kernel, see `sys/tun.rs`), one capture block per packet to the
//! capture. A
//! packet that meets `WouldBlock` waits in the entry's `pending` queue like
//! a UDP datagram, bounded the same way. It never interprets a packet.

use super::Reactor;
use super::capture::{Capture, Direction};
use super::datagram::{DatagramSocket, Endpoints};
use super::entry::{Entry, EventKey, Io, Role, UdpState};
use super::sys::tun::TunDevice;
use crate::proto::{Context, DatagramInput, DatagramSession, EndpointId};
use log::debug;
use mio::Interest;
use mio::unix::SourceFd;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// The capture's endpoints on a device session: what the session read
/// from the device (after its own impairment), and what it wrote.
pub const CAPTURE_INBOUND: EndpointId = EndpointId(1);
/// See [`CAPTURE_INBOUND`].
pub const CAPTURE_OUTBOUND: EndpointId = EndpointId(2);

impl Reactor {
    /// Adds `device` as the home endpoint of `session`, and `capture`, if
    /// any, as its endpoints [`CAPTURE_INBOUND`] and [`CAPTURE_OUTBOUND`].
    /// The session has no peer: what it reads arrives as
    /// [`DatagramInput::Packet`], and a transmit with no destination through
    /// `HOME` is written to the device. Returns its key.
    ///
    /// # Errors
    /// Registering the device failed.
    pub fn add_device_session(
        &mut self,
        device: TunDevice,
        capture: Option<Capture>,
        session: Box<dyn DatagramSession>,
    ) -> io::Result<usize> {
        let entry = self.entries.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut SourceFd(&device.as_raw_fd()),
            EventKey::home(key).token(),
            Interest::READABLE,
        )?;
        let mut e = Entry::new(
            Io::Tun(Box::new(device)),
            Role::Datagram(session),
            None,
            Interest::READABLE,
        );
        e.udp = Some(Box::new(UdpState {
            capture,
            ..UdpState::default()
        }));
        entry.insert(e);
        self.sessions += 1;
        self.flush(key);
        Ok(key)
    }

    /// Reads whole packets from the device at `key` into its session until
    /// `WouldBlock`, the turn's datagram budget (then it is still ready), or
    /// the session wants no more input (then reading pauses).
    pub(super) fn receive_packets(&mut self, key: usize) {
        let entry = &mut self.entries[key];
        let Io::Tun(device) = &entry.io else {
            return;
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
            let n = match device.read_packet(&mut self.read_buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EIO while the link is down, say: nothing to deliver,
                    // and the next readiness edge tries again.
                    debug!("[#{key}] read from {}: {e}", device.name());
                    return;
                }
            };
            received += 1;
            self.stats.datagrams_in += 1;
            self.activity = true;
            let mut cx = Context::new(self.now, key, None);
            session.handle_input(
                &mut cx,
                DatagramInput::Packet {
                    endpoint: EndpointId::HOME,
                    payload: &self.read_buf[..n],
                },
            );
        }
        self.still_ready.push(key);
    }
}

impl DatagramSocket for TunDevice {
    fn send_one(&self, bytes: &[u8], _: SocketAddr) -> io::Result<usize> {
        self.write_packet(bytes)
    }

    fn send_gso(&self, _: &[u8], _: u16, _: SocketAddr) -> io::Result<usize> {
        Err(ErrorKind::Unsupported.into())
    }

    fn gso(&self) -> bool {
        false
    }

    fn addressed(&self) -> bool {
        false
    }
}

/// One direction of a capture, stamped with the time of the current step.
struct CaptureSide<'a> {
    capture: &'a Capture,
    direction: Direction,
    unix_ns: u64,
}

impl DatagramSocket for CaptureSide<'_> {
    fn send_one(&self, bytes: &[u8], _: SocketAddr) -> io::Result<usize> {
        self.capture.record(self.unix_ns, self.direction, bytes);
        Ok(bytes.len())
    }

    fn send_gso(&self, _: &[u8], _: u16, _: SocketAddr) -> io::Result<usize> {
        Err(ErrorKind::Unsupported.into())
    }

    fn gso(&self) -> bool {
        false
    }

    fn addressed(&self) -> bool {
        false
    }
}

/// A device session's endpoints for one transmit step: the device at
/// `HOME`, the capture's two directions at 1 and 2.
pub(super) struct DeviceOut<'a> {
    device: &'a dyn DatagramSocket,
    inbound: Option<CaptureSide<'a>>,
    outbound: Option<CaptureSide<'a>>,
}

impl<'a> DeviceOut<'a> {
    /// `device` and `capture`, whose packets of this step are stamped
    /// `monotonic_ns` (the reactor's `now`, absolute).
    pub(super) fn new(
        device: &'a dyn DatagramSocket,
        capture: Option<&'a Capture>,
        monotonic_ns: u64,
    ) -> Self {
        let side = |direction| {
            capture.map(|capture| CaptureSide {
                capture,
                direction,
                unix_ns: capture.unix_ns(monotonic_ns),
            })
        };
        Self {
            device,
            inbound: side(Direction::Inbound),
            outbound: side(Direction::Outbound),
        }
    }
}

impl Endpoints for DeviceOut<'_> {
    fn socket(&self, endpoint: EndpointId) -> Option<&dyn DatagramSocket> {
        match endpoint {
            EndpointId::HOME => Some(self.device),
            CAPTURE_INBOUND => self.inbound.as_ref().map(|s| s as &dyn DatagramSocket),
            CAPTURE_OUTBOUND => self.outbound.as_ref().map(|s| s as &dyn DatagramSocket),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The device's sending half against a fake device (no privilege
    //! needed), then a real TUN device in a network namespace of the test's
    //! own (root only; skipped without, except under `CI`).

    use super::*;
    use crate::proto::{Driven, Transmit};
    use crate::reactor::datagram::{UdpOut, transmit_udp};
    use crate::reactor::entry::Pending;
    use crate::reactor::{ReactorConfig, Sent, TunSetup};
    use crate::time::{Duration, Instant};
    use bytes::BytesMut;
    use core::cell::{Cell, RefCell};
    use std::collections::VecDeque;

    /// A device with room for `room` packets that records each write.
    struct FakeDevice {
        room: Cell<usize>,
        writes: RefCell<Vec<Vec<u8>>>,
        gso_calls: Cell<usize>,
    }

    impl FakeDevice {
        fn new(room: usize) -> Self {
            Self {
                room: Cell::new(room),
                writes: RefCell::new(Vec::new()),
                gso_calls: Cell::new(0),
            }
        }
    }

    impl DatagramSocket for FakeDevice {
        fn send_one(&self, bytes: &[u8], _: SocketAddr) -> io::Result<usize> {
            if self.room.get() == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            self.room.set(self.room.get() - 1);
            self.writes.borrow_mut().push(bytes.to_vec());
            Ok(bytes.len())
        }
        fn send_gso(&self, _: &[u8], _: u16, _: SocketAddr) -> io::Result<usize> {
            self.gso_calls.set(self.gso_calls.get() + 1);
            Err(io::Error::from_raw_os_error(libc::EIO))
        }
        fn gso(&self) -> bool {
            false
        }
        fn addressed(&self) -> bool {
            false
        }
    }

    /// Emits `(endpoint, len)` packets with no destination; each packet's
    /// bytes are its index.
    struct Packets {
        queue: VecDeque<(u8, usize)>,
        next: u8,
    }

    impl Packets {
        fn new(list: &[(u8, usize)]) -> Self {
            Self {
                queue: list.iter().copied().collect(),
                next: 0,
            }
        }
    }

    impl Driven for Packets {}

    impl DatagramSession for Packets {
        fn handle_input(&mut self, _: &mut Context, _: DatagramInput<'_>) {}
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            buf: &mut BytesMut,
        ) -> Option<Transmit> {
            let (endpoint, len) = self.queue.pop_front()?;
            buf.resize(buf.len() + len, self.next);
            self.next = self.next.wrapping_add(1);
            Some(Transmit::new(None, len).via(EndpointId(endpoint)))
        }
    }

    /// One transmit step of `session` through `out` (no peer).
    fn step(
        out: &DeviceOut<'_>,
        gso: &mut bool,
        pending: &mut VecDeque<Pending>,
        session: &mut dyn DatagramSession,
    ) -> (Sent, u64) {
        let mut udp = UdpOut {
            sockets: out,
            gso,
            sent: 0,
            dropped: 0,
        };
        let mut cx = Context::new(Instant::ZERO, 0, None);
        let mut scratch = BytesMut::new();
        let sent = transmit_udp(
            &mut udp,
            None,
            pending,
            session,
            &mut cx,
            &mut scratch,
            1024,
        );
        (sent, udp.sent)
    }

    #[test]
    fn a_train_through_the_device_is_written_packet_by_packet_and_leaves_gso_on() {
        let device = FakeDevice::new(100);
        let out = DeviceOut::new(&device, None, 0);
        let (mut gso, mut pending) = (true, VecDeque::new());
        let mut session = Packets::new(&[(0, 1500); 10]);
        let (sent, count) = step(&out, &mut gso, &mut pending, &mut session);
        assert_eq!((sent, count), (Sent::All, 10));
        assert!(gso, "the reactor-wide UDP GSO switch is untouched");
        assert_eq!(device.gso_calls.get(), 0, "a device is never asked for GSO");
        let writes = device.writes.borrow();
        assert_eq!(writes.len(), 10, "one write per packet");
        for (i, w) in writes.iter().enumerate() {
            assert_eq!(w, &vec![u8::try_from(i).unwrap(); 1500]);
        }
    }

    #[test]
    fn a_full_device_keeps_the_rest_in_order_and_the_session_the_rest_of_its_output() {
        let list = [(0, 100); 6];
        for room in 0..6 {
            let device = FakeDevice::new(room);
            let out = DeviceOut::new(&device, None, 0);
            let (mut gso, mut pending) = (true, VecDeque::new());
            let mut session = Packets::new(&list);
            let (sent, _) = step(&out, &mut gso, &mut pending, &mut session);
            assert_eq!(sent, Sent::SocketFull, "room {room}");
            // Still full: nothing new is pulled while anything waits.
            let left = session.queue.len();
            assert_eq!(
                step(&out, &mut gso, &mut pending, &mut session).0,
                Sent::SocketFull
            );
            assert_eq!(session.queue.len(), left, "room {room}");
            let held: usize = pending.iter().map(|p| p.bytes.len()).sum();
            assert!(held <= crate::reactor::datagram::PENDING_MAX_BYTES);
            device.room.set(100);
            for _ in 0..10 {
                if step(&out, &mut gso, &mut pending, &mut session).0 == Sent::All {
                    break;
                }
            }
            let writes = device.writes.borrow();
            let want: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 100]).collect();
            assert_eq!(
                *writes, want,
                "room {room}: in order, none lost or repeated"
            );
        }
    }

    /// A file name in the temporary directory no other test uses.
    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("mioperf-device-{}-{name}", std::process::id()))
    }

    #[test]
    fn endpoints_one_and_two_record_packets_in_the_capture_by_direction() {
        let path = temp_path("dir.pcapng");
        let capture = Capture::create(&path).unwrap();
        let device = FakeDevice::new(100);
        let out = DeviceOut::new(&device, Some(&capture), 1_000);
        let (mut gso, mut pending) = (true, VecDeque::new());
        let mut session = Packets::new(&[(1, 20), (0, 20), (2, 20), (3, 20)]);
        step(&out, &mut gso, &mut pending, &mut session);
        assert_eq!(*device.writes.borrow(), vec![vec![1u8; 20]], "HOME only");
        assert_eq!(capture.packets.get(), 2, "endpoint 3 does not exist");
        let bytes = std::fs::read(&path).unwrap();
        // Header (60 bytes), then two 64-byte blocks: flags at 28 + 20 + 4.
        assert_eq!(bytes.len(), 60 + 2 * 64);
        let flags = |block: usize| {
            let at = 60 + block * 64 + 52;
            u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
        };
        assert_eq!((flags(0), flags(1)), (1, 2), "inbound, then outbound");
        assert_eq!(bytes[60 + 28], 0, "the first recorded packet is packet 0");
        // Without a capture, endpoints 1 and 2 do not exist: dropped.
        let out = DeviceOut::new(&device, None, 0);
        let mut session = Packets::new(&[(1, 20), (2, 20)]);
        assert_eq!(step(&out, &mut gso, &mut pending, &mut session).1, 0);
        std::fs::remove_file(&path).unwrap();
    }

    // ---- A real TUN device, in a network namespace of this test's own.

    /// Notes why a test that needs a namespace and a device skips; under
    /// `CI` it fails instead.
    fn privileged(test: &str, what: &str, e: &dyn std::fmt::Display) {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: {what}: {e}; CI is set, so this must run as root"
        );
        eprintln!("{test}: skipped: {what}: {e} (needs root)");
    }

    /// Wakes the reactor every 10 ms, so a loop of turns is bounded in time.
    struct Tick(Option<Instant>);

    impl Driven for Tick {
        fn poll_timeout(&self) -> Option<Instant> {
            self.0
        }
        fn handle_timeout(&mut self, cx: &mut Context) {
            self.0 = Some(cx.now + Duration::from_millis(10));
        }
    }

    /// Answers every IPv4/UDP packet by swapping its addresses and ports
    /// (which leaves both checksums valid: the sums are the same), and
    /// records what it read (endpoint 1) and wrote (endpoint 2).
    struct Mirror {
        out: VecDeque<(EndpointId, Vec<u8>)>,
        /// IPv4/UDP packets answered.
        seen: std::rc::Rc<Cell<usize>>,
        /// Every packet read (IPv6 router solicitations too).
        read: std::rc::Rc<Cell<usize>>,
    }

    impl Driven for Mirror {}

    impl DatagramSession for Mirror {
        fn handle_input(&mut self, _: &mut Context, input: DatagramInput<'_>) {
            let DatagramInput::Packet { endpoint, payload } = input else {
                return;
            };
            assert_eq!(endpoint, EndpointId::HOME);
            self.read.set(self.read.get() + 1);
            let ihl = usize::from(payload.first().copied().unwrap_or(0) & 0x0F) * 4;
            if payload.len() < ihl + 8 || payload[0] >> 4 != 4 || payload[9] != 17 {
                return; // not IPv4/UDP (IPv6 router solicitations, say)
            }
            self.seen.set(self.seen.get() + 1);
            let mut reply = payload.to_vec();
            reply[12..16].copy_from_slice(&payload[16..20]);
            reply[16..20].copy_from_slice(&payload[12..16]);
            reply[ihl..ihl + 2].copy_from_slice(&payload[ihl + 2..ihl + 4]);
            reply[ihl + 2..ihl + 4].copy_from_slice(&payload[ihl..ihl + 2]);
            self.out.push_back((CAPTURE_INBOUND, payload.to_vec()));
            self.out.push_back((EndpointId::HOME, reply.clone()));
            self.out.push_back((CAPTURE_OUTBOUND, reply));
        }
        fn poll_transmit(
            &mut self,
            _: &mut Context,
            _: usize,
            buf: &mut BytesMut,
        ) -> Option<Transmit> {
            let (endpoint, bytes) = self.out.pop_front()?;
            buf.extend_from_slice(&bytes);
            Some(Transmit::new(None, bytes.len()).via(endpoint))
        }
    }

    /// The whole path: the kernel routes a UDP datagram for 192.0.2.1 into
    /// the device, the reactor hands it to the session as a packet, the
    /// session's answer is written back, and the kernel delivers it to the
    /// socket that sent the question; the capture holds both.
    /// In a new network namespace (this thread's), a device `name` with
    /// the kernel side 192.0.2.2/24; `None` after a note when the test
    /// may not (not root, and no `CI`).
    fn namespaced_device(test: &str, name: &str) -> Option<TunDevice> {
        if let Err(e) = super::super::sys::unshare_net_namespace() {
            privileged(test, "unshare(CLONE_NEWNET)", &e);
            return None;
        }
        let setup = TunSetup {
            name: name.into(),
            kernel_addr: std::net::Ipv4Addr::new(192, 0, 2, 2),
            prefix_len: 24,
            mtu: 1500,
        };
        match TunDevice::open(&setup) {
            Ok(d) => Some(d),
            Err(e) => {
                privileged(test, "TUN device", &e);
                None
            }
        }
    }

    /// The read pump takes at most the turn's datagram budget from the
    /// device, and the rest on later turns (the device stays "still
    /// ready": its readiness edge is spent).
    #[test]
    fn the_device_is_read_within_the_turns_budget() {
        const TEST: &str = "the_device_is_read_within_the_turns_budget";
        std::thread::spawn(|| {
            let Some(device) = namespaced_device(TEST, "miot1") else {
                return;
            };
            let config = ReactorConfig {
                datagram_budget: 4,
                ..ReactorConfig::default()
            };
            let mut reactor = Reactor::new(config).unwrap();
            reactor.add_detached(Box::new(Tick(Some(Instant::ZERO))));
            let (seen, read) = (
                std::rc::Rc::default(),
                std::rc::Rc::<Cell<usize>>::default(),
            );
            let session = Mirror {
                out: VecDeque::new(),
                seen: std::rc::Rc::clone(&seen),
                read: std::rc::Rc::clone(&read),
            };
            reactor
                .add_device_session(device, None, Box::new(session))
                .unwrap();
            let socket = std::net::UdpSocket::bind("192.0.2.2:0").unwrap();
            for i in 0..10u8 {
                socket.send_to(&[i], "192.0.2.1:7007").unwrap();
            }
            let mut per_turn = Vec::new();
            // Bounded: at most 100 turns of at most 10 ms each.
            for _ in 0..100 {
                let before = read.get();
                reactor.turn().unwrap();
                per_turn.push(read.get() - before);
                if seen.get() == 10 {
                    break;
                }
            }
            assert_eq!(seen.get(), 10, "every datagram read: {per_turn:?}");
            assert!(per_turn.iter().all(|&n| n <= 4), "{per_turn:?}");
            assert_eq!(per_turn[0], 4, "the first turn used its whole budget");
        })
        .join()
        .expect("the namespace thread");
    }

    #[test]
    fn a_packet_round_trips_through_a_real_tun_device() {
        const TEST: &str = "a_packet_round_trips_through_a_real_tun_device";
        // A thread of our own: the namespace is the thread's, and goes with it.
        std::thread::spawn(|| {
            let Some(device) = namespaced_device(TEST, "miot0") else {
                return;
            };
            assert_eq!(device.name(), "miot0");
            let path = temp_path("real.pcapng");
            let capture = Capture::create(&path).unwrap();
            let mut reactor = Reactor::new(ReactorConfig::default()).unwrap();
            reactor.add_detached(Box::new(Tick(Some(Instant::ZERO))));
            let seen = std::rc::Rc::new(Cell::new(0));
            let session = Mirror {
                out: VecDeque::new(),
                seen: seen.clone(),
                read: std::rc::Rc::default(),
            };
            reactor
                .add_device_session(device, Some(capture), Box::new(session))
                .unwrap();
            let socket = std::net::UdpSocket::bind("192.0.2.2:0").unwrap();
            socket.set_nonblocking(true).unwrap();
            socket
                .send_to(b"through the device", "192.0.2.1:7007")
                .unwrap();
            let mut buf = [0u8; 64];
            let mut answer = None;
            // Bounded: at most 300 turns of at most 10 ms each.
            for _ in 0..300 {
                reactor.turn().unwrap();
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    answer = Some((buf[..n].to_vec(), from));
                    break;
                }
            }
            let (bytes, from) = answer.expect("the answer within 300 turns");
            assert_eq!(bytes, b"through the device");
            assert_eq!(from, "192.0.2.1:7007".parse().unwrap());
            assert_eq!(seen.get(), 1);
            assert_eq!(reactor.stats().queue_dropped, 0);
            drop(reactor);
            let pcap = std::fs::read(&path).unwrap();
            // Header, then two blocks of a 46-byte packet (20 + 8 + 18) padded to 48.
            assert_eq!(pcap.len(), 60 + 2 * (28 + 48 + 16));
            std::fs::remove_file(&path).unwrap();
        })
        .join()
        .expect("the namespace thread");
    }
}
