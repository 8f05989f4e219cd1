//! A TUN device: `/dev/net/tun` opened non-blocking, attached to (or
//! creating) a named layer-3 interface without the packet-information
//! header, the kernel's side of it given an IPv4 address, a netmask, an
//! MTU and a transmit queue length, and the link brought up.
//!
//! Owns the `unsafe` half of the device: the `TUNSETIFF` ioctl on the
//! device descriptor and the `SIOCSIF*` ioctls on a throw-away `AF_INET`
//! datagram socket (the classic interface-configuration path; netlink
//! would need a crate or a few hundred lines for the same five settings).
//! Reads and writes are plain `read(2)`/`write(2)` (vectored) of whole IP
//! packets through a [`File`], so they need no `unsafe`.
//!
//! Offloads (`IFF_VNET_HDR`, the default; `MIOPERF_TUN_OFFLOAD=0` or a
//! kernel without it: none): every packet carries a `virtio_net_hdr`
//! ([`vnet`]). Read: the kernel may hand over a TCP super-segment of up
//! to 64 KiB with a partial checksum, which is completed here (generic,
//! by the header's offsets). Written: a TCP/IPv4 datagram longer than the
//! MTU is a super-segment the stack built for segmentation offload; it
//! goes with a `GSO_TCPV4` header (one write for ~45 segments), or, with
//! no offload, cut here into MTU-sized packets. That much of a packet's
//! headers it reads; it must never interpret a packet beyond that, nor
//! decide what a failure means to the user beyond sorting it into
//! [`TunError`].

use std::ffi::CStr;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The clone device every TUN interface is made through.
pub(crate) const CLONE_DEVICE: &str = "/dev/net/tun";

/// What to set up: the interface's name, the kernel side's address and
/// prefix length, and the MTU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunSetup {
    /// Interface name (at most 15 bytes; `%d` lets the kernel number it).
    pub name: String,
    /// The kernel side's address on the device.
    pub kernel_addr: Ipv4Addr,
    /// Prefix length of the device's net (`/24`).
    pub prefix_len: u8,
    /// The device's MTU in bytes.
    pub mtu: u16,
}

/// Why a TUN device could not be set up, sorted into what a user can act on.
#[derive(Debug)]
pub enum TunError {
    /// `/dev/net/tun` does not exist: the tun module is not loaded (or the
    /// container has no such device).
    Missing,
    /// The process lacks `CAP_NET_ADMIN` (`EPERM` or `EACCES` from any of
    /// the calls).
    NoPrivilege,
    /// A name the kernel cannot take (empty, too long, a NUL byte in it).
    BadName(String),
    /// Any other failure: which call, on which interface, and why.
    Call {
        /// The call that failed (`TUNSETIFF`, `SIOCSIFADDR 192.0.2.2`, …).
        call: String,
        /// The interface name.
        name: String,
        /// What the kernel said.
        error: io::Error,
    },
}

impl fmt::Display for TunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => write!(
                f,
                "no TUN device: {CLONE_DEVICE} is missing (load the tun module)"
            ),
            Self::NoPrivilege => {
                f.write_str("creating a TUN device needs CAP_NET_ADMIN (run as root)")
            }
            Self::BadName(name) => write!(
                f,
                "TUN device name '{}': 1 to {} bytes, no NUL",
                name.escape_debug(),
                libc::IFNAMSIZ - 1
            ),
            Self::Call { call, name, error } => {
                write!(f, "TUN device {name}: {call} failed: {error}")
            }
        }
    }
}

impl std::error::Error for TunError {}

impl TunError {
    /// Sorts the failure of `call` on `name`: a missing clone device and a
    /// missing privilege get their own answers, anything else names the call.
    fn sort(call: impl Into<String>, name: &str, error: io::Error) -> Self {
        match error.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Self::NoPrivilege,
            _ => Self::Call {
                call: call.into(),
                name: name.to_owned(),
                error,
            },
        }
    }
}

/// An open TUN device: reads and writes whole IP packets, never blocks.
#[derive(Debug)]
pub struct TunDevice {
    file: File,
    name: String,
    /// Opened with `IFF_VNET_HDR`: every read and write carries a
    /// [`vnet::Header`] before the packet, and the kernel may hand us
    /// TCP super-segments (up to 64 KiB, `TUN_F_TSO4`) with a partial
    /// checksum (`TUN_F_CSUM`) instead of MTU-sized packets.
    vnet: bool,
    /// The device's MTU: a TCP packet longer is a super-segment to be cut
    /// into packets of this size (by the kernel, or here without offload).
    mtu: usize,
}

/// Environment switch: `MIOPERF_TUN_OFFLOAD=0` opens the device without
/// `IFF_VNET_HDR` (one MTU-sized packet per read, as before), to measure
/// what the offload buys or to work around a kernel that mishandles it.
pub(crate) const OFFLOAD_ENV: &str = "MIOPERF_TUN_OFFLOAD";

impl TunDevice {
    /// Opens `/dev/net/tun`, creates or attaches the interface, configures
    /// the kernel side and brings the link up.
    ///
    /// # Errors
    /// [`TunError`]: the clone device is missing, the process lacks
    /// `CAP_NET_ADMIN`, the name is unusable, or a call failed.
    pub fn open(setup: &TunSetup) -> Result<Self, TunError> {
        Self::open_at(Path::new(CLONE_DEVICE), setup)
    }

    /// [`open`](Self::open) through another clone device path (tests).
    fn open_at(clone: &Path, setup: &TunSetup) -> Result<Self, TunError> {
        let name = &setup.name;
        let ifname = if_name(name).ok_or_else(|| TunError::BadName(name.clone()))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(clone)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENXIO | libc::ENODEV) => TunError::Missing,
                _ => TunError::sort(format!("open {}", clone.display()), name, e),
            })?;
        // TUNSETIFF: IFF_TUN (IP packets, no Ethernet header), IFF_NO_PI (no
        // 4-byte flags/protocol prefix: a read is exactly one IP packet).
        // IFF_VNET_HDR unless switched off, falling back to without it
        // when the kernel refuses it (EINVAL).
        let want_vnet = std::env::var_os(OFFLOAD_ENV).is_none_or(|v| v != "0");
        let mut vnet = want_vnet;
        let mut req = ifreq(ifname);
        loop {
            req.ifr_ifru.ifru_flags = if vnet {
                narrow::TUN_FLAGS | narrow::VNET_HDR
            } else {
                narrow::TUN_FLAGS
            };
            // SAFETY: `req` is a valid, initialised ifreq the kernel reads
            // and writes (it fills in the final name); the descriptor is open.
            let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &raw mut req) };
            if rc >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if vnet && e.raw_os_error() == Some(libc::EINVAL) {
                vnet = false;
                req = ifreq(ifname);
                continue;
            }
            return Err(TunError::sort("TUNSETIFF", name, e));
        }
        if vnet {
            // What we can take from the kernel: packets with a partial
            // checksum (we complete it on reading) and TCPv4 super-segments
            // (the stack takes any segment the window allows). The kernel
            // refusing it is no failure: the headers then say "no offload".
            let offload = libc::c_ulong::from(libc::TUN_F_CSUM | libc::TUN_F_TSO4);
            // SAFETY: TUNSETOFFLOAD takes its flags by value.
            let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETOFFLOAD, offload) };
            if rc < 0 {
                log::debug!(
                    "TUN device {name}: TUNSETOFFLOAD: {}",
                    io::Error::last_os_error()
                );
            }
        }
        // SAFETY: the kernel wrote a NUL-terminated name of at most IFNAMSIZ.
        let actual = unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        configure(ifname_of(&req), &actual, setup)?;
        Ok(Self {
            file,
            name: actual,
            vnet,
            mtu: usize::from(setup.mtu),
        })
    }

    /// The interface's name, as the kernel gave it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one packet into `buf`.
    ///
    /// # Errors
    /// `WouldBlock` when none is queued; any other error of `read(2)`.
    pub(crate) fn read_packet(&self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.vnet {
            return (&self.file).read(buf);
        }
        let mut hdr = [0; vnet::HEADER_LEN];
        let n =
            (&self.file).read_vectored(&mut [IoSliceMut::new(&mut hdr), IoSliceMut::new(buf)])?;
        let Some(len) = n.checked_sub(vnet::HEADER_LEN) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a read shorter than the virtio-net header",
            ));
        };
        let header = vnet::Header::decode(&hdr);
        if header.flags & vnet::F_NEEDS_CSUM != 0 && !header.complete_checksum(&mut buf[..len]) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a partial checksum outside the packet",
            ));
        }
        Ok(len)
    }

    /// Writes one whole packet.
    ///
    /// # Errors
    /// `WouldBlock` when the device cannot take it now; any other error of
    /// `write(2)` (`EINVAL` for a malformed packet, `EIO` when the link is
    /// down).
    pub(crate) fn write_packet(&self, packet: &[u8]) -> io::Result<usize> {
        if packet.len() > self.mtu
            && let Some(tso) = vnet::Tso::of(packet, self.mtu)
        {
            if !self.vnet {
                return tso.cut(packet, |piece| (&self.file).write(piece));
            }
            let hdr = tso.header.encode();
            // The checksum field: the pseudo-header's sum, the kernel adds
            // the rest for each piece it cuts.
            let n = (&self.file).write_vectored(&[
                IoSlice::new(&hdr),
                IoSlice::new(&packet[..tso.field]),
                IoSlice::new(&tso.partial.to_be_bytes()),
                IoSlice::new(&packet[tso.field + 2..]),
            ])?;
            return Ok(n.saturating_sub(vnet::HEADER_LEN));
        }
        if !self.vnet {
            return (&self.file).write(packet);
        }
        let hdr = vnet::Header::default().encode();
        let n = (&self.file).write_vectored(&[IoSlice::new(&hdr), IoSlice::new(packet)])?;
        Ok(n.saturating_sub(vnet::HEADER_LEN))
    }
}

impl AsRawFd for TunDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// The device's transmit queue (packets the kernel holds for us to read),
/// instead of the TUN default of 500: a kernel sender's window (a few
/// MiB) arrives in bursts faster than one reactor turn reads them, and a
/// packet dropped at a full queue costs the kernel's TCP a retransmission
/// and a halved window (measured 2026-12-03, a 1 GiB PUT pinned to one CPU:
/// ~3 000-9 000 drops a run at 500, none at 4096). 4096 full-size packets
/// are 6 MiB at most, held in the kernel.
pub(crate) const TX_QUEUE_LEN: libc::c_int = 4096;

/// C constants in the narrower types the kernel's structures take.
#[expect(
    clippy::cast_possible_truncation,
    reason = "small flag constants that fit a c_short"
)]
mod narrow {
    /// `ifr_flags` for `TUNSETIFF`.
    pub(super) const TUN_FLAGS: libc::c_short = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    /// `IFF_VNET_HDR` as `ifr_flags` holds it.
    pub(super) const VNET_HDR: libc::c_short = libc::IFF_VNET_HDR as libc::c_short;
    /// `IFF_UP | IFF_RUNNING` as `ifr_flags` holds them.
    pub(super) const UP: libc::c_short = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
}

/// The `struct virtio_net_hdr` (legacy layout, 10 bytes, the host's byte
/// order: a TUN device that was not told `TUNSETVNETLE`/`BE`) that leads
/// every packet on a device opened with `IFF_VNET_HDR`.
pub(crate) mod vnet {
    use crate::wire::checksum;

    /// Bytes of the header (`TUNSETVNETHDRSZ` left at its default).
    pub(crate) const HEADER_LEN: usize = 10;
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start +
    /// csum_offset` holds only the pseudo-header's sum; the bytes from
    /// `csum_start` to the end must still be added.
    pub(crate) const F_NEEDS_CSUM: u8 = 1;
    /// `VIRTIO_NET_HDR_GSO_NONE`: one ordinary packet.
    #[cfg(test)]
    pub(crate) const GSO_NONE: u8 = 0;
    /// `VIRTIO_NET_HDR_GSO_TCPV4`: a TCP/IPv4 super-segment to be cut into
    /// segments of `gso_size` payload bytes.
    pub(crate) const GSO_TCPV4: u8 = 1;

    /// The header's fields.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(crate) struct Header {
        /// `F_NEEDS_CSUM` or 0 (`DATA_VALID`, 2, needs nothing from us).
        pub(crate) flags: u8,
        /// `GSO_NONE`, `GSO_TCPV4`, … (high bit: ECN).
        pub(crate) gso_type: u8,
        /// Bytes of the headers (IP and TCP) of a super-segment.
        pub(crate) hdr_len: u16,
        /// Payload bytes per segment of a super-segment.
        pub(crate) gso_size: u16,
        /// Where the checksummed bytes start.
        pub(crate) csum_start: u16,
        /// Where the checksum field is, from `csum_start`.
        pub(crate) csum_offset: u16,
    }

    /// A TCP/IPv4 super-segment (a datagram longer than the MTU, DF, not
    /// a fragment) and how to cut it at the MTU: each piece keeps the IP
    /// and TCP headers and carries `gso_size` payload bytes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct Tso {
        /// `GSO_TCPV4`, `F_NEEDS_CSUM` at the TCP checksum.
        pub(crate) header: Header,
        /// Where the TCP checksum field is in the packet.
        pub(crate) field: usize,
        /// The folded pseudo-header sum the field must hold for the kernel
        /// (it adds the bytes of each piece).
        pub(crate) partial: u16,
    }

    impl Tso {
        /// `packet` as a super-segment cut at `mtu`, or `None` when it is
        /// not TCP in an unfragmented IPv4 datagram, or its headers leave
        /// no room for payload in an MTU.
        pub(crate) fn of(packet: &[u8], mtu: usize) -> Option<Self> {
            let first = *packet.first()?;
            let ihl = usize::from(first & 0x0f) * 4;
            if first >> 4 != 4 || ihl < 20 || packet.len() < ihl + 20 || packet[9] != 6 {
                return None;
            }
            // More fragments or an offset: a fragment, not for cutting.
            if packet[6] & 0x20 != 0 || (packet[6] & 0x1f) | packet[7] != 0 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
            let doff = usize::from(packet[ihl + 12] >> 4) * 4;
            let hdr_len = ihl + doff;
            if total != packet.len() || doff < 20 || hdr_len >= mtu || total <= hdr_len {
                return None;
            }
            let src = std::net::Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
            let dst = std::net::Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
            let tcp_len = u16::try_from(total - ihl).ok()?;
            let partial = checksum::fold(checksum::pseudo_header(src, dst, 6, tcp_len));
            Some(Self {
                header: Header {
                    flags: F_NEEDS_CSUM,
                    gso_type: GSO_TCPV4,
                    hdr_len: u16::try_from(hdr_len).ok()?,
                    gso_size: u16::try_from(mtu - hdr_len).ok()?,
                    csum_start: u16::try_from(ihl).ok()?,
                    csum_offset: 16,
                },
                field: ihl + 16,
                partial,
            })
        }

        /// Cuts `packet` into MTU-sized packets and hands each to `write`
        /// (a device without offloads): the IP header's total length,
        /// identification (+1 a piece) and checksum, the TCP sequence
        /// number and checksum redone for each; FIN and PSH only on the
        /// last piece, as the kernel's own GSO does. Returns `packet`'s
        /// length once every piece is written.
        ///
        /// # Errors
        /// The first error of `write` (the pieces before it are sent).
        pub(crate) fn cut(
            &self,
            packet: &[u8],
            mut write: impl FnMut(&[u8]) -> std::io::Result<usize>,
        ) -> std::io::Result<usize> {
            let ihl = usize::from(self.header.csum_start);
            let hdr_len = usize::from(self.header.hdr_len);
            let size = usize::from(self.header.gso_size);
            let (headers, payload) = packet.split_at(hdr_len);
            let ident = u16::from_be_bytes([packet[4], packet[5]]);
            let seq = u32::from_be_bytes([
                packet[ihl + 4],
                packet[ihl + 5],
                packet[ihl + 6],
                packet[ihl + 7],
            ]);
            let mut piece = vec![0u8; hdr_len + size];
            let mut sent = 0;
            let chunks = payload.chunks(size);
            let last = chunks.len() - 1;
            for (i, data) in chunks.enumerate() {
                let len = hdr_len + data.len();
                let p = &mut piece[..len];
                p[..hdr_len].copy_from_slice(headers);
                p[hdr_len..].copy_from_slice(data);
                let total = u16::try_from(len).unwrap_or(u16::MAX);
                p[2..4].copy_from_slice(&total.to_be_bytes());
                let id = ident.wrapping_add(u16::try_from(i).unwrap_or(u16::MAX));
                p[4..6].copy_from_slice(&id.to_be_bytes());
                p[10..12].fill(0);
                let ip = checksum::internet(&p[..ihl]);
                p[10..12].copy_from_slice(&ip.to_be_bytes());
                let offset = u32::try_from(sent).unwrap_or(u32::MAX);
                p[ihl + 4..ihl + 8].copy_from_slice(&seq.wrapping_add(offset).to_be_bytes());
                if i != last {
                    // FIN (0x01) and PSH (0x08) belong to the last piece.
                    p[ihl + 13] &= !0x09;
                }
                p[ihl + 16..ihl + 18].fill(0);
                let src = std::net::Ipv4Addr::new(p[12], p[13], p[14], p[15]);
                let dst = std::net::Ipv4Addr::new(p[16], p[17], p[18], p[19]);
                let tcp_len = u16::try_from(len - ihl).unwrap_or(u16::MAX);
                let sum = checksum::combine(
                    checksum::pseudo_header(src, dst, 6, tcp_len),
                    checksum::sum(&p[ihl..]),
                );
                p[ihl + 16..ihl + 18].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
                write(p)?;
                sent += data.len();
            }
            Ok(packet.len())
        }
    }

    impl Header {
        /// The header in its wire form.
        pub(crate) fn decode(b: &[u8; HEADER_LEN]) -> Self {
            let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
            Self {
                flags: b[0],
                gso_type: b[1],
                hdr_len: u16_at(2),
                gso_size: u16_at(4),
                csum_start: u16_at(6),
                csum_offset: u16_at(8),
            }
        }

        /// The wire form of the header.
        pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
            let mut b = [0; HEADER_LEN];
            b[0] = self.flags;
            b[1] = self.gso_type;
            b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
            b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
            b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
            b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
            b
        }

        /// Completes the partial checksum of `packet` (`F_NEEDS_CSUM`): the
        /// field holds the pseudo-header's folded sum, so the sum of the
        /// bytes from `csum_start` on, field included, complemented, is the
        /// checksum. Generic (the offsets say where), so the stack above
        /// sees an ordinary, verifiable packet. `false`: the offsets point
        /// outside the packet.
        pub(crate) fn complete_checksum(&self, packet: &mut [u8]) -> bool {
            let start = usize::from(self.csum_start);
            let field = start + usize::from(self.csum_offset);
            if field + 2 > packet.len() {
                return false;
            }
            let sum = checksum::internet(&packet[start..]);
            packet[field..field + 2].copy_from_slice(&sum.to_be_bytes());
            true
        }
    }
}

/// `name` as the kernel's fixed-size interface name, if it fits.
fn if_name(name: &str) -> Option<[libc::c_char; libc::IFNAMSIZ]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return None;
    }
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (slot, &b) in out.iter_mut().zip(bytes) {
        *slot = libc::c_char::from_ne_bytes([b]);
    }
    Some(out)
}

fn ifname_of(req: &libc::ifreq) -> [libc::c_char; libc::IFNAMSIZ] {
    req.ifr_name
}

/// An `ifreq` for `name` with an all-zero union.
fn ifreq(name: [libc::c_char; libc::IFNAMSIZ]) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { core::mem::zeroed() };
    req.ifr_name = name;
    req
}

/// `addr` as the `sockaddr` (an `AF_INET` `sockaddr_in`) an `ifreq` holds.
fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: super::narrow::AF_INET,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr and sockaddr_in have the same size (16 bytes) on
    // Linux; sockaddr_in is the AF_INET form of sockaddr.
    unsafe { core::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// The netmask of a `/prefix_len` net.
fn netmask(prefix_len: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

/// Gives the interface its address, netmask and MTU and brings it up,
/// through an `AF_INET` datagram socket (the `SIOCSIF*` ioctls act on the
/// interface named in the request, whatever socket carries them).
fn configure(
    ifname: [libc::c_char; libc::IFNAMSIZ],
    name: &str,
    setup: &TunSetup,
) -> Result<(), TunError> {
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(TunError::sort(
            "socket(AF_INET)",
            name,
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let ioctl = |call: &str, request: libc::Ioctl, req: &mut libc::ifreq| {
        // SAFETY: `req` is a valid ifreq naming the interface; each of these
        // requests reads (or, SIOCGIFFLAGS, writes) its union field only.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, core::ptr::from_mut(req)) };
        if rc < 0 {
            Err(TunError::sort(call, name, io::Error::last_os_error()))
        } else {
            Ok(())
        }
    };
    let mut req = ifreq(ifname);
    req.ifr_ifru.ifru_addr = sockaddr(setup.kernel_addr);
    ioctl(
        &format!("SIOCSIFADDR {}", setup.kernel_addr),
        libc::SIOCSIFADDR,
        &mut req,
    )?;
    let mask = netmask(setup.prefix_len);
    let mut req = ifreq(ifname);
    req.ifr_ifru.ifru_netmask = sockaddr(mask);
    ioctl(
        &format!("SIOCSIFNETMASK {mask}"),
        libc::SIOCSIFNETMASK,
        &mut req,
    )?;
    let mut req = ifreq(ifname);
    req.ifr_ifru.ifru_mtu = libc::c_int::from(setup.mtu);
    ioctl(
        &format!("SIOCSIFMTU {}", setup.mtu),
        libc::SIOCSIFMTU,
        &mut req,
    )?;
    let mut req = ifreq(ifname);
    req.ifr_ifru.ifru_metric = TX_QUEUE_LEN;
    ioctl(
        &format!("SIOCSIFTXQLEN {TX_QUEUE_LEN}"),
        libc::SIOCSIFTXQLEN,
        &mut req,
    )?;
    let mut req = ifreq(ifname);
    ioctl("SIOCGIFFLAGS", libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS just wrote the flags field of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | narrow::UP;
    ioctl("SIOCSIFFLAGS up", libc::SIOCSIFFLAGS, &mut req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(name: &str) -> TunSetup {
        TunSetup {
            name: name.to_owned(),
            kernel_addr: Ipv4Addr::new(192, 0, 2, 2),
            prefix_len: 24,
            mtu: 1500,
        }
    }

    #[test]
    fn the_virtio_net_header_round_trips_in_the_hosts_byte_order() {
        let h = vnet::Header {
            flags: vnet::F_NEEDS_CSUM,
            gso_type: vnet::GSO_TCPV4,
            hdr_len: 52,
            gso_size: 1448,
            csum_start: 20,
            csum_offset: 16,
        };
        let b = h.encode();
        assert_eq!(b.len(), vnet::HEADER_LEN);
        assert_eq!(&b[..2], &[1, 1]);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 1448);
        assert_eq!(u16::from_ne_bytes([b[8], b[9]]), 16);
        assert_eq!(vnet::Header::decode(&b), h);
        assert_eq!(vnet::Header::default().encode(), [0; vnet::HEADER_LEN]);
        assert_eq!(vnet::Header::default().gso_type, vnet::GSO_NONE);
    }

    #[test]
    fn a_partial_checksum_is_completed_into_a_verifiable_tcp_segment() {
        use crate::wire::checksum;
        // An IPv4 header (20 bytes, its contents do not matter here) and a
        // TCP segment of odd length whose checksum field (offset 16) holds
        // the pseudo-header's folded sum, as the kernel leaves it.
        let (src, dst) = (Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(192, 0, 2, 1));
        let mut packet = vec![0x45u8; 20];
        let segment: Vec<u8> = (0..1001u32)
            .map(|i| u8::try_from((i * 7 + 3) % 256).unwrap())
            .collect();
        packet.extend_from_slice(&segment);
        let tcp_len = u16::try_from(segment.len()).unwrap();
        let pseudo = checksum::fold(checksum::pseudo_header(src, dst, 6, tcp_len));
        packet[36..38].copy_from_slice(&pseudo.to_be_bytes());
        let h = vnet::Header {
            flags: vnet::F_NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 16,
            ..vnet::Header::default()
        };
        assert!(h.complete_checksum(&mut packet));
        // Verifies as a receiver checks it: pseudo-header plus segment.
        let total = checksum::combine(
            checksum::pseudo_header(src, dst, 6, tcp_len),
            checksum::sum(&packet[20..]),
        );
        assert_eq!(checksum::fold(total), 0xffff);
        assert_ne!(&packet[36..38], &pseudo.to_be_bytes());
        // Offsets past the end are refused, the packet left alone.
        let before = packet.clone();
        let bad = vnet::Header {
            csum_offset: 1000,
            ..h
        };
        assert!(!bad.complete_checksum(&mut packet));
        assert_eq!(packet, before);
    }

    /// An IPv4/TCP super-segment: 20-byte IP header (DF), a TCP header
    /// with 12 bytes of options, FIN|PSH|ACK, and `len` payload bytes.
    fn super_segment(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; 52 + len];
        p[0] = 0x45;
        let total = u16::try_from(p.len()).unwrap();
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[4..6].copy_from_slice(&0xfffe_u16.to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[192, 0, 2, 1]);
        p[16..20].copy_from_slice(&[192, 0, 2, 2]);
        p[20..22].copy_from_slice(&7000u16.to_be_bytes());
        p[22..24].copy_from_slice(&40000u16.to_be_bytes());
        p[24..28].copy_from_slice(&0xffff_fff0_u32.to_be_bytes());
        p[32] = 8 << 4;
        p[33] = 0x19;
        for (i, b) in p[52..].iter_mut().enumerate() {
            *b = u8::try_from(i % 251).unwrap();
        }
        p
    }

    fn tcp_sum_ok(p: &[u8]) -> bool {
        use crate::wire::checksum;
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        let len = u16::try_from(p.len() - 20).unwrap();
        let sum = checksum::combine(
            checksum::pseudo_header(src, dst, 6, len),
            checksum::sum(&p[20..]),
        );
        checksum::fold(sum) == 0xffff
    }

    #[test]
    fn a_tcp_super_segment_gets_a_tso_header_cut_at_the_mtu() {
        use crate::wire::checksum;
        let p = super_segment(3_000);
        let tso = vnet::Tso::of(&p, 1_500).unwrap();
        assert_eq!(
            tso.header,
            vnet::Header {
                flags: vnet::F_NEEDS_CSUM,
                gso_type: vnet::GSO_TCPV4,
                hdr_len: 52,
                gso_size: 1_448,
                csum_start: 20,
                csum_offset: 16,
            }
        );
        assert_eq!(tso.field, 36);
        let pseudo = checksum::pseudo_header(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            6,
            3_032,
        );
        assert_eq!(tso.partial, checksum::fold(pseudo));
        // Not a super-segment: UDP, a fragment, a length that lies.
        let mut udp = p.clone();
        udp[9] = 17;
        assert_eq!(vnet::Tso::of(&udp, 1_500), None);
        let mut frag = p.clone();
        frag[6] = 0x20;
        assert_eq!(vnet::Tso::of(&frag, 1_500), None);
        assert_eq!(vnet::Tso::of(&p[..2_000], 1_500), None);
        assert_eq!(vnet::Tso::of(&p, 52), None, "no room for payload");
    }

    #[test]
    fn without_offload_a_super_segment_is_cut_into_valid_packets() {
        let p = super_segment(3_000);
        let tso = vnet::Tso::of(&p, 1_500).unwrap();
        let mut pieces = Vec::new();
        let n = tso
            .cut(&p, |piece| {
                pieces.push(piece.to_vec());
                Ok(piece.len())
            })
            .unwrap();
        assert_eq!(n, p.len());
        let lens: Vec<usize> = pieces.iter().map(Vec::len).collect();
        assert_eq!(lens, [1_500, 1_500, 52 + 104]);
        let mut payload = Vec::new();
        for (i, q) in pieces.iter().enumerate() {
            assert_eq!(usize::from(u16::from_be_bytes([q[2], q[3]])), q.len());
            assert_eq!(crate::wire::checksum::internet(&q[..20]), 0, "IP checksum");
            assert!(tcp_sum_ok(q), "TCP checksum of piece {i}");
            let id = u16::from_be_bytes([q[4], q[5]]);
            assert_eq!(id, 0xfffe_u16.wrapping_add(u16::try_from(i).unwrap()));
            let seq = u32::from_be_bytes([q[24], q[25], q[26], q[27]]);
            assert_eq!(
                seq,
                0xffff_fff0_u32.wrapping_add(u32::try_from(i * 1_448).unwrap())
            );
            let flags = if i == 2 { 0x19 } else { 0x10 };
            assert_eq!(q[33], flags, "FIN and PSH only on the last piece");
            assert_eq!(&q[38..52], &p[38..52], "urgent pointer and options kept");
            payload.extend_from_slice(&q[52..]);
        }
        assert_eq!(payload, &p[52..]);
    }

    #[test]
    fn netmasks_of_every_prefix() {
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(netmask(8), Ipv4Addr::new(255, 0, 0, 0));
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(30), Ipv4Addr::new(255, 255, 255, 252));
        assert_eq!(netmask(32), Ipv4Addr::BROADCAST);
    }

    #[test]
    fn interface_names_must_fit_the_kernels_buffer() {
        assert!(if_name("mio0").is_some());
        assert!(if_name(&"x".repeat(15)).is_some());
        assert!(
            if_name(&"x".repeat(16)).is_none(),
            "IFNAMSIZ counts the NUL"
        );
        assert!(if_name("").is_none());
        assert!(if_name("a\0b").is_none());
        let e = TunDevice::open(&setup("much-too-long-name")).unwrap_err();
        assert!(matches!(e, TunError::BadName(_)), "{e}");
    }

    #[test]
    fn a_missing_clone_device_says_to_load_the_module() {
        let e = TunDevice::open_at(Path::new("/nonexistent/net/tun"), &setup("mio0")).unwrap_err();
        assert!(matches!(e, TunError::Missing), "{e:?}");
        assert_eq!(
            e.to_string(),
            "no TUN device: /dev/net/tun is missing (load the tun module)"
        );
    }

    #[test]
    fn errors_are_sorted_into_one_clear_line() {
        for errno in [libc::EPERM, libc::EACCES] {
            let e = TunError::sort("TUNSETIFF", "mio0", io::Error::from_raw_os_error(errno));
            assert_eq!(
                e.to_string(),
                "creating a TUN device needs CAP_NET_ADMIN (run as root)"
            );
        }
        let e = TunError::sort(
            "SIOCSIFMTU 70000",
            "mio0",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        let line = e.to_string();
        assert!(
            line.starts_with("TUN device mio0: SIOCSIFMTU 70000 failed: Invalid argument"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn the_sockaddr_holds_the_address_in_network_order() {
        let sa = sockaddr(Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(sa.sa_family, super::super::narrow::AF_INET);
        // sin_port (2 bytes) then sin_addr.
        let data: Vec<u8> = sa.sa_data.iter().map(|&c| c.to_ne_bytes()[0]).collect();
        assert_eq!(&data[..6], &[0, 0, 192, 0, 2, 2]);
    }
}
