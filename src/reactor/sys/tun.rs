//! A TUN device: `/dev/net/tun` opened non-blocking, attached to (or
//! creating) a named layer-3 interface without the packet-information
//! header, the kernel's side of it given an IPv4 address, a netmask, an
//! MTU and a transmit queue length, and the link brought up.
//!
//! Owns the `unsafe` half of the device: the `TUNSETIFF` ioctl on the
//! device descriptor and the `SIOCSIF*` ioctls on a throw-away `AF_INET`
//! datagram socket (the classic interface-configuration path; netlink
//! would need a crate or a few hundred lines for the same five settings).
//! Reads and writes are plain `read(2)`/`write(2)` of whole IP packets
//! through a [`File`], so they need no `unsafe`. It must never interpret a
//! packet or decide what a failure means to the user beyond sorting it
//! into [`TunError`].

use std::ffi::CStr;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
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
}

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
        let mut req = ifreq(ifname);
        req.ifr_ifru.ifru_flags = narrow::TUN_FLAGS;
        // SAFETY: `req` is a valid, initialised ifreq the kernel reads and
        // writes (it fills in the final name); the descriptor is open.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &raw mut req) };
        if rc < 0 {
            return Err(TunError::sort(
                "TUNSETIFF",
                name,
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: the kernel wrote a NUL-terminated name of at most IFNAMSIZ.
        let actual = unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        configure(ifname_of(&req), &actual, setup)?;
        Ok(Self { file, name: actual })
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
        (&self.file).read(buf)
    }

    /// Writes one whole packet.
    ///
    /// # Errors
    /// `WouldBlock` when the device cannot take it now; any other error of
    /// `write(2)` (`EINVAL` for a malformed packet, `EIO` when the link is
    /// down).
    pub(crate) fn write_packet(&self, packet: &[u8]) -> io::Result<usize> {
        (&self.file).write(packet)
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
    /// `IFF_UP | IFF_RUNNING` as `ifr_flags` holds them.
    pub(super) const UP: libc::c_short = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
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
