//! Thin, safe wrappers over the few Linux system calls mio does not offer
//! (and one CPU hint, `prefetch`, for the deadline heap).
//!
//! Owns every `unsafe` block in the crate (the crate root denies
//! `unsafe_code`; this module alone allows it). Each wrapper is small, checks
//! the return value, and turns failure into `io::Error`. It must never hold
//! protocol state or policy: callers decide when to call.
#![allow(unsafe_code, reason = "the one module that calls libc directly")]

pub(crate) mod fs;
pub(crate) mod rusage;
pub(crate) mod tun;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// C constants in the narrower types the kernel's structures take: libc
/// declares the families as `c_int`, and `size_of` answers in `usize`.
#[expect(
    clippy::cast_possible_truncation,
    reason = "small constants (a family number, a C type's size) that fit each type"
)]
mod narrow {
    pub(super) const AF_INET: libc::sa_family_t = libc::AF_INET as libc::sa_family_t;
    pub(super) const AF_INET6: libc::sa_family_t = libc::AF_INET6 as libc::sa_family_t;
    pub(super) const U16_LEN: libc::c_uint = size_of::<u16>() as libc::c_uint;
    pub(super) const INT_LEN: libc::socklen_t = size_of::<libc::c_int>() as libc::socklen_t;
    pub(super) const STORAGE_LEN: libc::socklen_t =
        size_of::<libc::sockaddr_storage>() as libc::socklen_t;
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock as `std::time::Instant`
/// on Linux, and the one a `timerfd` is armed against.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    debug_assert_eq!(rc, 0);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000) + nanos
}

/// `CLOCK_REALTIME` in nanoseconds since 1970: read once, when a capture
/// file is opened, to turn the reactor's monotonic time into wall-clock
/// time.
pub(crate) fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME always exists.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &raw mut ts) };
    debug_assert_eq!(rc, 0);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000) + nanos
}

/// A one-shot `timerfd` on `CLOCK_MONOTONIC`, non-blocking, armed with
/// absolute times. Readable (in epoll) once its deadline has passed.
#[derive(Debug)]
pub(crate) struct TimerFd {
    fd: OwnedFd,
}

impl TimerFd {
    /// Creates a disarmed timer.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Arms the timer to fire at `monotonic_ns` (absolute), replacing any
    /// earlier setting. A time in the past fires at once.
    pub(crate) fn set_abs(&self, monotonic_ns: u64) -> io::Result<()> {
        // 0 would disarm; the earliest meaningful instant is 1 ns.
        let ns = monotonic_ns.max(1);
        self.settime(
            libc::TFD_TIMER_ABSTIME,
            libc::timespec {
                tv_sec: libc::time_t::try_from(ns / 1_000_000_000).unwrap_or(libc::time_t::MAX),
                // Always below 10^9, so it fits.
                tv_nsec: libc::c_long::try_from(ns % 1_000_000_000).unwrap_or(0),
            },
        )
    }

    /// Disarms the timer.
    pub(crate) fn disarm(&self) -> io::Result<()> {
        self.settime(
            0,
            libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        )
    }

    fn settime(&self, flags: libc::c_int, value: libc::timespec) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: `spec` is a valid itimerspec; a null old-value pointer is allowed.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                flags,
                &raw const spec,
                core::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes the expiry count so edge-triggered epoll reports the next one.
    pub(crate) fn drain(&self) {
        let mut count = 0u64;
        // SAFETY: reads at most 8 bytes into a u64; EAGAIN (nothing to read) is fine.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut count).cast(), 8) };
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Lowers this thread's timer slack (default 50 µs) to `ns`, so timerfd and
/// epoll wake-ups are not deferred to batch them with others. Pacing needs
/// it; it costs a few more wake-ups.
pub(crate) fn set_timer_slack_ns(ns: u64) -> io::Result<()> {
    let ns = libc::c_ulong::try_from(ns).unwrap_or(libc::c_ulong::MAX);
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The process's soft `RLIMIT_NOFILE`: how many descriptors it may hold.
/// `RLIM_INFINITY` reads as `u64::MAX`.
pub(crate) fn nofile_soft_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we lend it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// Moves the calling thread into a network namespace of its own (tests
/// that create a TUN device: whatever they configure and send stays in a
/// namespace nothing else shares, and vanishes with the thread).
///
/// # Errors
/// `EPERM` without `CAP_SYS_ADMIN`; any other error of `unshare(2)`.
#[cfg(test)]
pub(crate) fn unshare_net_namespace() -> io::Result<()> {
    // SAFETY: plain syscall; it changes only this thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A socket address in the C layout `sendmsg` wants.
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    fn new(addr: SocketAddr) -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: narrow::AF_INET,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { core::ptr::write((&raw mut storage).cast::<libc::sockaddr_in>(), sin) };
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: narrow::AF_INET6,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { core::ptr::write((&raw mut storage).cast::<libc::sockaddr_in6>(), sin6) };
                size_of::<libc::sockaddr_in6>()
            }
        };
        Self {
            storage,
            len: libc::socklen_t::try_from(len).unwrap_or(0),
        }
    }
}

/// Sends `payload` to `to` as datagrams of `segment` bytes each (the last
/// may be shorter) in one `sendmsg` with UDP generic segmentation offload
/// (`UDP_SEGMENT`): one system call for up to 64 datagrams.
///
/// # Errors
/// `WouldBlock` when the socket buffer is full; `EIO`, `EINVAL` or
/// `ENOPROTOOPT` where the kernel or route cannot segment (callers fall
/// back to one `send_to` per datagram).
pub(crate) fn send_gso(
    fd: RawFd,
    payload: &[u8],
    segment: u16,
    to: SocketAddr,
) -> io::Result<usize> {
    let mut addr = RawAddr::new(to);
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr().cast_mut().cast(),
        iov_len: payload.len(),
    };
    // Room for one cmsg carrying a u16, aligned as cmsghdr requires.
    let mut control = [0u64; 4];
    // SAFETY: all-zero is a valid msghdr; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_name = (&raw mut addr.storage).cast();
    msg.msg_namelen = addr.len;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(narrow::U16_LEN) } as usize;
    // SAFETY: msg_control points at `control`, which is large enough for one
    // cmsg of a u16 (checked by CMSG_SPACE above), so FIRSTHDR is non-null.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(narrow::U16_LEN) as usize;
        core::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
    }
    // SAFETY: msg is fully initialised and its buffers live across the call.
    let n = unsafe { libc::sendmsg(fd, &raw const msg, 0) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `sendfile(out, in, &offset, count)`: copies up to `count` bytes of the
/// file `in_fd` from `offset` to the socket `out_fd` inside the kernel.
/// Returns how many were sent (0 at the file's end).
///
/// # Errors
/// `WouldBlock` when the socket is full; any other error of the call.
pub(crate) fn sendfile(
    out_fd: RawFd,
    in_fd: RawFd,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    let mut off =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        // SAFETY: plain syscall on descriptors the caller holds; `off` is a valid off_t.
        let n = unsafe { libc::sendfile(out_fd, in_fd, &raw mut off, count) };
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `listen(fd, backlog)` again on a listening socket: Linux updates the
/// queue length in place (capped by `net.core.somaxconn`).
pub(crate) fn set_listen_backlog(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor the caller holds.
    if unsafe { libc::listen(fd, backlog) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks for a socket receive buffer of `bytes` (the kernel caps it at
/// `net.core.rmem_max`).
pub(crate) fn set_recv_buffer(fd: RawFd, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    set_int_option(fd, libc::SO_RCVBUF, value)
}

/// Asks the kernel to timestamp every datagram this socket receives
/// (`SO_TIMESTAMPNS`), read back by [`recv_timestamped`].
pub(crate) fn enable_rx_timestamps(fd: RawFd) -> io::Result<()> {
    set_int_option(fd, libc::SO_TIMESTAMPNS, 1)
}

/// Sets an `int`-valued `SOL_SOCKET` option.
fn set_int_option(fd: RawFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid int option value and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast(),
            narrow::INT_LEN,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends each `(destination, bytes)` as one datagram, as many as possible in
/// one `sendmmsg`. Returns how many went out (fewer when the socket
/// filled up; the rest were not sent).
///
/// # Errors
/// `WouldBlock` when not even the first fitted; any other error of the call.
pub(crate) fn send_many(fd: RawFd, datagrams: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
    const MAX: usize = 64;
    let count = datagrams.len().min(MAX);
    let mut addrs: Vec<RawAddr> = datagrams[..count]
        .iter()
        .map(|(to, _)| RawAddr::new(*to))
        .collect();
    let mut iovs: Vec<libc::iovec> = datagrams[..count]
        .iter()
        .map(|(_, bytes)| libc::iovec {
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        })
        .collect();
    // SAFETY: all-zero is a valid mmsghdr.
    let mut hdrs: Vec<libc::mmsghdr> = (0..count).map(|_| unsafe { core::mem::zeroed() }).collect();
    for (i, hdr) in hdrs.iter_mut().enumerate() {
        hdr.msg_hdr.msg_name = (&raw mut addrs[i].storage).cast();
        hdr.msg_hdr.msg_namelen = addrs[i].len;
        hdr.msg_hdr.msg_iov = &raw mut iovs[i];
        hdr.msg_hdr.msg_iovlen = 1;
    }
    let vlen = libc::c_uint::try_from(count).unwrap_or(0);
    loop {
        // SAFETY: every header points into vectors that live across the call.
        let n = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), vlen, libc::MSG_DONTWAIT) };
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Buffers for receiving many datagrams per system call (`recvmmsg`), each
/// with its source and kernel receive timestamp.
///
/// The headers point into the boxed buffers once, at construction (the
/// boxes never move, wherever the batch goes); each `recv` resets only the
/// fields the kernel wrote in the headers the previous call used, so a
/// call that returns one datagram costs one header's upkeep, not the
/// whole batch's.
pub(crate) struct RecvBatch {
    data: Box<[u8]>,
    slot: usize,
    names: Box<[libc::sockaddr_storage]>,
    controls: Box<[[u64; 8]]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    filled: usize,
    /// Headers the last call may have written (its datagrams, and the one
    /// after, which the kernel tried): `recv` resets these.
    dirty: usize,
}

impl RecvBatch {
    /// Room for `count` datagrams of up to `slot` bytes each.
    pub(crate) fn new(count: usize, slot: usize) -> Self {
        // SAFETY: these C structs are plain old data; all-zero is valid.
        let zero_name: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
        let zero_hdr: libc::mmsghdr = unsafe { core::mem::zeroed() };
        let mut batch = Self {
            data: vec![0u8; count * slot].into_boxed_slice(),
            slot,
            names: vec![zero_name; count].into_boxed_slice(),
            controls: vec![[0u64; 8]; count].into_boxed_slice(),
            iovs: vec![
                libc::iovec {
                    iov_base: core::ptr::null_mut(),
                    iov_len: 0
                };
                count
            ]
            .into_boxed_slice(),
            hdrs: vec![zero_hdr; count].into_boxed_slice(),
            filled: 0,
            dirty: count,
        };
        let data = batch.data.as_mut_ptr();
        for i in 0..count {
            // SAFETY: i * slot + slot <= data.len() by construction.
            batch.iovs[i].iov_base = unsafe { data.add(i * slot) }.cast();
            batch.iovs[i].iov_len = slot;
            let hdr = &mut batch.hdrs[i].msg_hdr;
            hdr.msg_name = (&raw mut batch.names[i]).cast();
            hdr.msg_iov = &raw mut batch.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = batch.controls[i].as_mut_ptr().cast();
        }
        batch
    }

    /// Receives as many datagrams as are queued, up to the batch size.
    ///
    /// # Errors
    /// As `recvmmsg`: `WouldBlock` when nothing is queued.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.filled = 0;
        let count = self.hdrs.len();
        for m in &mut self.hdrs[..self.dirty.min(count)] {
            m.msg_hdr.msg_namelen = narrow::STORAGE_LEN;
            m.msg_hdr.msg_controllen = size_of::<[u64; 8]>();
            m.msg_hdr.msg_flags = 0;
            m.msg_len = 0;
        }
        let vlen = libc::c_uint::try_from(count).unwrap_or(libc::c_uint::MAX);
        // SAFETY: every header points into buffers owned by self, which
        // outlive the call; MSG_DONTWAIT keeps it non-blocking.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                vlen,
                libc::MSG_DONTWAIT,
                core::ptr::null_mut(),
            )
        };
        let Ok(n) = usize::try_from(n) else {
            self.dirty = 1;
            return Err(io::Error::last_os_error());
        };
        self.filled = n;
        self.dirty = n + 1;
        Ok(n)
    }

    /// Datagram `i` of the last `recv`: its bytes, source and timestamp.
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr, Option<u64>)> {
        if i >= self.filled {
            return None;
        }
        let len = (self.hdrs[i].msg_len as usize).min(self.slot);
        let bytes = &self.data[i * self.slot..i * self.slot + len];
        let from = socket_addr(&self.names[i])?;
        Some((bytes, from, timestamp(&self.hdrs[i].msg_hdr)))
    }
}

/// The `SCM_TIMESTAMPNS` of a received message, in ns.
fn timestamp(msg: &libc::msghdr) -> Option<u64> {
    let mut stamp = None;
    // SAFETY: the kernel filled msg_control; CMSG_* walk it within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = core::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
                let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
                stamp = Some(secs * 1_000_000_000 + nanos);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    stamp
}

fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(core::ptr::from_ref(storage).cast::<libc::sockaddr_in>()) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(core::ptr::from_ref(storage).cast::<libc::sockaddr_in6>()) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Asks the CPU to start loading the cache line that holds `value`, so a
/// later read of it does not wait for memory. A hint only: it reads
/// nothing the program can see, faults on nothing, and does nothing on
/// targets without the instruction. The deadline heap uses it for the row
/// its next pop will read (`timers.rs`).
#[inline]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only needs SSE, which every x86_64 CPU has
    // (it is in the target's baseline), and a prefetch of any address,
    // here a valid reference, has no effect but on the cache.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            core::ptr::from_ref(value).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
        assert!(a > 0);
    }

    #[test]
    fn gso_send_arrives_as_separate_datagrams() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut payload = vec![b'a'; 100];
        payload.extend_from_slice(&[b'b'; 100]);
        payload.extend_from_slice(&[b'c'; 30]);
        match send_gso(tx.as_raw_fd(), &payload, 100, rx.local_addr().unwrap()) {
            Ok(n) => assert_eq!(n, 230),
            // A kernel without UDP GSO: the reactor falls back; nothing to check.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT)
                ) =>
            {
                return;
            }
            Err(e) => panic!("{e}"),
        }
        let mut buf = [0u8; 512];
        for (len, byte) in [(100, b'a'), (100, b'b'), (30, b'c')] {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(n, len);
            assert!(buf[..n].iter().all(|&b| b == byte));
        }
    }

    #[test]
    fn batch_receive_gets_every_datagram_with_source_and_stamp() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        enable_rx_timestamps(rx.as_raw_fd()).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = RecvBatch::new(4, 2048);
        assert_eq!(
            batch.recv(rx.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        for i in 0..6u8 {
            tx.send_to(&vec![i; usize::from(i) + 1], rx.local_addr().unwrap())
                .unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..100 {
            match batch.recv(rx.as_raw_fd()) {
                Ok(n) => {
                    assert!(n <= 4);
                    for i in 0..n {
                        let (bytes, from, stamp) = batch.get(i).unwrap();
                        assert_eq!(from, tx.local_addr().unwrap());
                        assert!(stamp.is_some());
                        got.push(bytes.to_vec());
                    }
                    assert!(batch.get(n).is_none());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got.len() == 6 => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        let want: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; usize::from(i) + 1]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_descriptor_limit_is_readable_and_covers_stdio() {
        assert!(nofile_soft_limit().unwrap() >= 3);
    }

    #[test]
    fn timer_slack_can_be_lowered() {
        set_timer_slack_ns(1).unwrap();
    }

    #[test]
    fn timerfd_arms_and_disarms() {
        let t = TimerFd::new().unwrap();
        t.set_abs(monotonic_ns() + 1_000_000_000).unwrap();
        t.disarm().unwrap();
        t.set_abs(1).unwrap(); // in the past: fires at once
        // Poll the fd directly: readable now.
        let mut pfd = libc::pollfd {
            fd: t.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, 1 s timeout.
        let n = unsafe { libc::poll(&raw mut pfd, 1, 1000) };
        assert_eq!(n, 1);
        t.drain();
    }
}
