//! IPv4 datagrams ([RFC 791]): a zero-copy [`Packet`] view over a header
//! and its payload, and a validated [`Repr`] that parses and emits one.
//!
//! Owns the byte layout of the IPv4 header, its checksum and the meaning of
//! its fields (the fragment offset is exposed in bytes, not in the 8-byte
//! units of the wire), and the [`Error`] that `ipv4`, `icmp` and `udp`
//! share. It never decides anything: TTL, fragments, reassembly, routing and
//! which datagrams to count or drop belong to the IP layer in
//! `proto::tunstack`. It must never do I/O, read a clock or log.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |    DSCP/ECN   |          Total Length         |
//! |         Identification        |Flags|      Fragment Offset    |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! |                    Options (IHL > 5)                          |
//! ```
//!
//! # Invariants
//! * [`Packet::new_checked`] (or [`Packet::check_len`]) accepts a buffer
//!   only when every getter and [`Packet::payload`] can then be called
//!   without panicking: the buffer holds the whole header (options included)
//!   and `total_len` bytes. The buffer may be longer than `total_len` (a
//!   link pads short frames); [`Packet::payload`] ends at `total_len`.
//! * [`Repr::parse`] re-checks the lengths, so it never panics either, even
//!   on a view built with [`Packet::new_unchecked`]; it also checks the
//!   header checksum. A fragment parses like any datagram: its `payload_len`
//!   is the fragment's, and the caller reads the fragment fields from the
//!   [`Packet`].
//!
//! ```
//! use mioperf::wire::ipv4::{Packet, Protocol, Repr, HEADER_LEN};
//! use std::net::Ipv4Addr;
//! let repr = Repr {
//!     src_addr: Ipv4Addr::new(192, 0, 2, 1),
//!     dst_addr: Ipv4Addr::new(192, 0, 2, 2),
//!     protocol: Protocol::Udp,
//!     payload_len: 4,
//!     ttl: 64,
//! };
//! let mut buf = vec![0u8; repr.buffer_len()];
//! let mut packet = Packet::new_unchecked(&mut buf[..]);
//! repr.emit(&mut packet, 0x1234);
//! packet.payload_mut().copy_from_slice(b"ping");
//! let packet = Packet::new_checked(&buf[..]).unwrap();
//! assert!(packet.verify_checksum());
//! assert_eq!(Repr::parse(&packet), Ok(repr));
//! assert_eq!((packet.ident(), packet.header_len(), packet.payload()), (0x1234, HEADER_LEN, &b"ping"[..]));
//! ```
//!
//! [RFC 791]: https://www.rfc-editor.org/rfc/rfc791

use super::checksum;
use core::fmt;
use std::net::Ipv4Addr;

/// Length of a header without options (IHL 5).
pub const HEADER_LEN: usize = 20;
/// Longest header: IHL is 4 bits, counted in 32-bit words (15 × 4).
pub const MAX_HEADER_LEN: usize = 60;
/// Largest total length the 16-bit field can carry, header included.
pub const MAX_TOTAL_LEN: usize = 65_535;
/// Most payload a datagram without options can carry
/// ([`MAX_TOTAL_LEN`] - [`HEADER_LEN`]); [`Repr::emit`] refuses more.
pub const MAX_PAYLOAD_LEN: usize = MAX_TOTAL_LEN - HEADER_LEN;
/// Fragment offsets count 8-byte units on the wire (RFC 791 section 3.1):
/// every fragment but the last carries a multiple of this many bytes.
pub const FRAGMENT_UNIT: usize = 8;

/// Byte offsets of the header's fields.
mod field {
    use core::ops::Range;
    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
    pub(super) const IDENT: Range<usize> = 4..6;
    pub(super) const FLG_OFF: Range<usize> = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Range<usize> = 10..12;
    pub(super) const SRC_ADDR: Range<usize> = 12..16;
    pub(super) const DST_ADDR: Range<usize> = 16..20;
}

/// The "don't fragment" bit of the flags/offset word.
const FLAG_DF: u16 = 0x4000;
/// The "more fragments" bit of the flags/offset word.
const FLAG_MF: u16 = 0x2000;
/// The reserved (evil) bit, always sent as zero.
const FLAG_RESERVED: u16 = 0x8000;
/// The 13-bit fragment offset, in 8-byte units.
const OFFSET_MASK: u16 = 0x1fff;

/// Why bytes are not a valid IPv4, ICMP or UDP packet. Shared by the three
/// modules (`icmp::Error` and `udp::Error` are this type), so the IP layer
/// counts and drops through one enum. Small and `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before the header does, or before the length its
    /// header announces (IPv4 total length, UDP length).
    Truncated,
    /// The IP version is not 4.
    Version,
    /// The IHL is below 5 words.
    HeaderLen,
    /// The total length is smaller than the header.
    TotalLen,
    /// A UDP length field below the 8-byte header.
    Length,
    /// The header (IPv4) or packet (ICMP, UDP) checksum is wrong.
    Checksum,
    /// A well-formed message this stack does not interpret (an ICMP type
    /// other than echo, destination unreachable and time exceeded).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "truncated",
            Self::Version => "not IPv4",
            Self::HeaderLen => "header length below 20 bytes",
            Self::TotalLen => "total length shorter than the header",
            Self::Length => "UDP length below 8 bytes",
            Self::Checksum => "bad checksum",
            Self::Unsupported => "unsupported message",
        })
    }
}

impl std::error::Error for Error {}

/// The protocol field: what the payload is ([IANA protocol numbers]).
///
/// [IANA protocol numbers]: https://www.iana.org/assignments/protocol-numbers
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// 1: ICMP ([RFC 792](https://www.rfc-editor.org/rfc/rfc792)).
    Icmp,
    /// 6: TCP ([RFC 9293](https://www.rfc-editor.org/rfc/rfc9293)).
    Tcp,
    /// 17: UDP ([RFC 768](https://www.rfc-editor.org/rfc/rfc768)).
    Udp,
    /// Any other number, kept so it can be logged or answered with a
    /// protocol unreachable. Never 1, 6 or 17.
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(value: u8) -> Self {
        match value {
            1 => Self::Icmp,
            6 => Self::Tcp,
            17 => Self::Udp,
            other => Self::Unknown(other),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(value: Protocol) -> Self {
        match value {
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Icmp => f.write_str("ICMP"),
            Self::Tcp => f.write_str("TCP"),
            Self::Udp => f.write_str("UDP"),
            Self::Unknown(n) => write!(f, "proto {n}"),
        }
    }
}

/// A read (and, over a mutable buffer, write) view of an IPv4 datagram.
/// Copies nothing; every getter reads the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it: the getters may panic on a short
    /// buffer. For emitting into a buffer of [`Repr::buffer_len`] bytes; to
    /// read received bytes use [`Packet::new_checked`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    ///
    /// # Errors
    /// As [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that no getter can panic: the buffer holds a whole version-4
    /// header and `total_len` bytes.
    ///
    /// # Errors
    /// [`Error::Truncated`] under 20 bytes, or shorter than the header
    /// length or the total length; [`Error::Version`] if the version is not
    /// 4; [`Error::HeaderLen`] if the IHL is below 5; [`Error::TotalLen`] if
    /// the total length is below the header length. Checked in that order.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Version);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::HeaderLen);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::TotalLen);
        }
        if total_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The bytes the view covers, padding after `total_len` included.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, at: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn addr_at(&self, at: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[at];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The version field (4 for every packet [`Packet::check_len`] accepts).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4), options included: 20..=60.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP and ECN byte (once "type of service").
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// The total length field: header and payload, in bytes.
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The identification field, which ties a datagram's fragments together.
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// The "don't fragment" flag.
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_DF != 0
    }

    /// The "more fragments" flag: set on every fragment but the last.
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_MF != 0
    }

    /// The fragment offset in BYTES (the wire field × 8): where this
    /// fragment's payload starts in the original datagram's payload.
    /// At most 8191 × 8 = 65528.
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF) & OFFSET_MASK) * 8
    }

    /// Whether this is a fragment (MF set or a non-zero offset) rather than
    /// a whole datagram.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// The time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field as received.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        self.addr_at(field::SRC_ADDR)
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.addr_at(field::DST_ADDR)
    }

    /// Whether the header checksum (over the header, options included) is
    /// right.
    pub fn verify_checksum(&self) -> bool {
        checksum::internet(self.header()) == 0
    }

    /// The header, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The options: the header bytes after the first 20 (empty with IHL 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload: from the end of the header to `total_len`, so padding
    /// after the datagram is not part of it.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The payload, borrowed for as long as the buffer rather than the view
    /// (so a `Repr<'a>` of the layer above can keep it).
    pub fn payload_ref(&self) -> &'a [u8] {
        let header_len = self.header_len();
        let total_len = usize::from(self.total_len());
        &self.buffer[header_len..total_len]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, at: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version field (the IHL is kept).
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the IHL from a header length in bytes (the version is kept).
    /// The length must be a multiple of 4 in 20..=60 (`debug_assert`).
    pub fn set_header_len(&mut self, len: usize) {
        debug_assert!(
            len.is_multiple_of(4) && (HEADER_LEN..=MAX_HEADER_LEN).contains(&len),
            "header length {len}"
        );
        let ihl = u8::try_from(len / 4).unwrap_or(0x0f) & 0x0f;
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ihl;
    }

    /// Sets version and header length (bytes) at once.
    pub fn set_version_ihl(&mut self, version: u8, header_len: usize) {
        self.set_version(version);
        self.set_header_len(header_len);
    }

    /// Sets the DSCP and ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length (header and payload, bytes).
    pub fn set_total_len(&mut self, len: u16) {
        self.set_u16_at(field::LENGTH, len);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, ident: u16) {
        self.set_u16_at(field::IDENT, ident);
    }

    /// Sets the flags and the fragment offset, given in BYTES: it must be a
    /// multiple of 8 (`debug_assert`; in release the low 3 bits are
    /// dropped). The reserved bit is cleared.
    pub fn set_flags_and_offset(&mut self, dont_frag: bool, more_frags: bool, offset_bytes: u16) {
        debug_assert!(
            usize::from(offset_bytes).is_multiple_of(FRAGMENT_UNIT),
            "fragment offset {offset_bytes} is not a multiple of 8"
        );
        let mut word = (offset_bytes / 8) & OFFSET_MASK;
        if dont_frag {
            word |= FLAG_DF;
        }
        if more_frags {
            word |= FLAG_MF;
        }
        debug_assert!(word & FLAG_RESERVED == 0);
        self.set_u16_at(field::FLG_OFF, word);
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol.into();
    }

    /// Sets the checksum field as is (see [`Packet::fill_checksum`]).
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes and writes the header checksum. Call it after the last
    /// change to any header field (the payload is not covered).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::internet(self.header());
        self.set_checksum(c);
    }

    /// The options, to write (their length follows the IHL: set it first).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..header_len]
    }

    /// The payload, to write: from the header's end to `total_len`, so set
    /// both lengths first ([`Repr::emit`] does).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        let total_len = usize::from(self.total_len());
        &mut self.buffer.as_mut()[header_len..total_len]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    /// One line, tcpdump-like; a view that fails [`Packet::check_len`]
    /// prints why instead of panicking.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "IPv4 ({e}, {} bytes)", self.buffer.as_ref().len());
        }
        write!(
            f,
            "IPv4 {} > {} {} len {} id {} ttl {}",
            self.src_addr(),
            self.dst_addr(),
            self.protocol(),
            self.total_len(),
            self.ident(),
            self.ttl()
        )?;
        if self.dont_frag() {
            f.write_str(" DF")?;
        }
        if self.is_fragment() {
            write!(
                f,
                " frag {}{}",
                self.frag_offset(),
                if self.more_frags() { "+" } else { "" }
            )?;
        }
        Ok(())
    }
}

/// What a datagram's header says, once validated: the fields the IP layer
/// acts on. Identification, flags and offset are not here: they concern
/// fragments, which the IP layer reads from the [`Packet`] and writes with
/// its setters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The source address.
    pub src_addr: Ipv4Addr,
    /// The destination address.
    pub dst_addr: Ipv4Addr,
    /// What the payload is.
    pub protocol: Protocol,
    /// Payload bytes (`total_len` minus the header, options included).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Repr {
    /// Validates a datagram's header: lengths and checksum. TTL (even 0)
    /// and fragments are the caller's to judge; options are skipped.
    ///
    /// # Errors
    /// Those of [`Packet::check_len`], then [`Error::Checksum`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self, Error> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
        })
    }

    /// Bytes [`Repr::emit`] writes plus the payload: the datagram's length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header without options: version 4, DSCP/ECN 0, the
    /// total length from `payload_len`, `ident`, DF clear, offset 0 (a
    /// fragmenter changes those with [`Packet::set_flags_and_offset`] and
    /// then calls [`Packet::fill_checksum`] again), TTL, protocol,
    /// addresses, and the checksum. The payload is not touched: write it
    /// with [`Packet::payload_mut`] before or after (the IPv4 checksum does
    /// not cover it).
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`], or `payload_len` is
    /// above [`MAX_PAYLOAD_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, ident: u16) {
        let total_len = u16::try_from(self.buffer_len())
            .expect("payload_len is at most MAX_PAYLOAD_LEN (65515)");
        packet.set_version_ihl(4, HEADER_LEN);
        packet.set_dscp_ecn(0);
        packet.set_total_len(total_len);
        packet.set_ident(ident);
        packet.set_flags_and_offset(false, false, 0);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPv4 {} > {} {} payload {} ttl {}",
            self.src_addr, self.dst_addr, self.protocol, self.payload_len, self.ttl
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::captures;
    use proptest::prelude::*;

    /// A hand-built header (RFC 791 layout), checksum computed by hand:
    /// 192.0.2.1 > 192.0.2.2 UDP, total 24, id 0x1234, DF, ttl 64.
    static SIMPLE: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0xa4, 0x9d, 192, 0, 2, 1, 192,
        0, 2, 2, b'p', b'i', b'n', b'g',
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&SIMPLE[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), Protocol::Udp);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 0, 2, 2));
        assert!(p.verify_checksum(), "checksum {:04x}", p.checksum());
        assert_eq!(p.payload(), b"ping");
        assert_eq!(p.options(), b"");
    }

    #[test]
    fn protocol_numbers_round_trip() {
        for n in 0..=u8::MAX {
            assert_eq!(u8::from(Protocol::from(n)), n);
        }
        assert_eq!(Protocol::from(1), Protocol::Icmp);
        assert_eq!(Protocol::from(6), Protocol::Tcp);
        assert_eq!(Protocol::from(17), Protocol::Udp);
    }

    fn a1() -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 1)
    }

    fn a2() -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 2)
    }

    #[test]
    fn captured_ping_request() {
        let bytes = captures::bytes(captures::PING_REQUEST);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.version(), p.header_len(), p.total_len()), (4, 20, 84));
        assert_eq!(
            (p.ident(), p.dont_frag(), p.is_fragment()),
            (9402, true, false)
        );
        assert_eq!(
            (p.ttl(), p.protocol(), p.dscp_ecn()),
            (64, Protocol::Icmp, 0)
        );
        assert_eq!((p.src_addr(), p.dst_addr()), (a2(), a1()));
        assert_eq!(p.checksum(), 0x91eb);
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 64);
        assert_eq!(
            Repr::parse(&p),
            Ok(Repr {
                src_addr: a2(),
                dst_addr: a1(),
                protocol: Protocol::Icmp,
                payload_len: 64,
                ttl: 64,
            })
        );
        assert_eq!(
            p.to_string(),
            "IPv4 192.0.2.2 > 192.0.2.1 ICMP len 84 id 9402 ttl 64 DF"
        );
    }

    /// The kernel's reply header (DF clear, DSCP 0, no options) is exactly
    /// what `emit` writes for the same fields.
    #[test]
    fn emit_matches_the_kernels_reply_header() {
        let reply = captures::bytes(captures::PING_REPLY);
        let repr = Repr::parse(&Packet::new_checked(&reply[..]).unwrap()).unwrap();
        let mut out = vec![0xa5u8; repr.buffer_len()];
        let mut p = Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut p, 7457);
        p.payload_mut().copy_from_slice(&reply[HEADER_LEN..]);
        assert_eq!(out, reply);
    }

    #[test]
    fn captured_fragments() {
        let frags: Vec<Vec<u8>> = [
            captures::FRAG_REQUEST_1,
            captures::FRAG_REQUEST_2,
            captures::FRAG_REQUEST_3,
        ]
        .iter()
        .map(|h| captures::bytes(h))
        .collect();
        let mut expected_offset = 0;
        for (i, bytes) in frags.iter().enumerate() {
            let p = Packet::new_checked(&bytes[..]).unwrap();
            let repr = Repr::parse(&p).expect("a fragment parses");
            assert_eq!(p.ident(), 9403);
            assert!(p.is_fragment() && !p.dont_frag());
            assert_eq!(p.frag_offset(), expected_offset);
            assert_eq!(p.more_frags(), i < 2, "MF on all but the last");
            assert_eq!(repr.payload_len, p.payload().len());
            expected_offset += u16::try_from(repr.payload_len).unwrap();
        }
        // 8 bytes of ICMP header and the 4000 bytes `ping -s 4000` sends.
        assert_eq!(expected_offset, 4008);
        let p = Packet::new_checked(&frags[1][..]).unwrap();
        assert_eq!(
            p.to_string(),
            "IPv4 192.0.2.2 > 192.0.2.1 ICMP len 1500 id 9403 ttl 64 frag 1480+"
        );
    }

    /// A fragmenter's sequence (emit, then flags/offset, then the checksum
    /// again) reproduces the kernel's own fragments byte for byte.
    #[test]
    fn fragment_headers_match_the_kernels() {
        for hex in [
            captures::FRAG_REPLY_1,
            captures::FRAG_REPLY_2,
            captures::FRAG_REPLY_3,
        ] {
            let kernel = captures::bytes(hex);
            let theirs = Packet::new_checked(&kernel[..]).unwrap();
            let repr = Repr::parse(&theirs).unwrap();
            let mut out = vec![0u8; repr.buffer_len()];
            let mut p = Packet::new_unchecked(&mut out[..]);
            repr.emit(&mut p, theirs.ident());
            p.set_flags_and_offset(false, theirs.more_frags(), theirs.frag_offset());
            p.fill_checksum();
            p.payload_mut().copy_from_slice(theirs.payload());
            assert_eq!(out, kernel);
        }
    }

    #[test]
    fn padding_after_total_len_is_not_payload() {
        let mut bytes = captures::bytes(captures::PING_REQUEST);
        bytes.extend_from_slice(&[0xee; 6]);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.payload().len(), 64);
        assert_eq!(Repr::parse(&p).unwrap().payload_len, 64);
    }

    #[test]
    fn options_are_skipped_and_covered_by_the_checksum() {
        // IHL 6: four bytes of options (NOP NOP NOP EOL), then "ping".
        let mut bytes = [0u8; 28];
        bytes[..20].copy_from_slice(&SIMPLE[..20]);
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_header_len(24);
        p.set_total_len(28);
        p.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        p.payload_mut().copy_from_slice(b"ping");
        p.fill_checksum();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            (p.header_len(), p.options(), p.payload()),
            (24, &[1u8, 1, 1, 0][..], &b"ping"[..])
        );
        assert_eq!(Repr::parse(&p).unwrap().payload_len, 4);
        bytes[21] = 0; // an option byte: the header checksum covers it
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bytes[..])),
            Err(Error::Checksum)
        );
    }

    /// Each refusal, from the captured request with one field broken.
    #[test]
    fn errors() {
        let good = captures::bytes(captures::PING_REQUEST);
        let check = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            edit(&mut b);
            let err = Repr::parse(&Packet::new_unchecked(&b[..])).unwrap_err();
            assert_eq!(Packet::new_checked(&b[..]).err().unwrap_or(err), err);
            err
        };
        assert!(
            Repr::parse(&Packet::new_unchecked(&good[..])).is_ok(),
            "the edit is what fails"
        );
        assert_eq!(check(&|b| b.truncate(19)), Error::Truncated);
        assert_eq!(check(&|b| b[0] = 0x65), Error::Version);
        assert_eq!(check(&|b| b[0] = 0x44), Error::HeaderLen);
        assert_eq!(check(&|b| b.truncate(20 + 4)), Error::Truncated);
        assert_eq!(check(&|b| b[3] = 19), Error::TotalLen);
        assert_eq!(check(&|b| b[2] = 0x01), Error::Truncated);
        // The boundaries: the buffer ends one byte before total_len, or
        // exactly at the end of the header.
        assert_eq!(check(&|b| b.truncate(83)), Error::Truncated);
        let header_only = |b: &mut Vec<u8>| {
            b.truncate(20);
            b[2..4].copy_from_slice(&[0, 20]);
            b[10..12].copy_from_slice(&[0, 0]);
            let c = checksum::internet(b);
            b[10..12].copy_from_slice(&c.to_be_bytes());
        };
        let mut empty = good.clone();
        header_only(&mut empty);
        let p = Packet::new_checked(&empty[..]).unwrap();
        assert_eq!(
            (Repr::parse(&p).unwrap().payload_len, p.payload()),
            (0, &[][..])
        );
        assert_eq!(check(&|b| b[8] = 63), Error::Checksum);
        let mut long_header = good.clone();
        long_header[0] = 0x4f; // 60-byte header in a 20..84 buffer: fine...
        long_header.truncate(40); // ...until the buffer ends inside it
        assert_eq!(
            Packet::new_checked(&long_header[..]).err(),
            Some(Error::Truncated)
        );
        // A header that ends 4 bytes past the buffer is truncated, whatever
        // the total length says.
        long_header.resize(56, 0);
        long_header[2..4].copy_from_slice(&[0, 56]);
        assert_eq!(
            Packet::new_checked(&long_header[..]).err(),
            Some(Error::Truncated)
        );
    }

    /// Arbitrary bytes, but with a plausible first byte and total length
    /// half of the time, so the checks past the version are reached.
    fn datagram_like() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(any::<u8>(), 0..120),
            any::<bool>(),
            0u8..16,
        )
            .prop_map(|(mut b, patch, ihl)| {
                if patch && b.len() >= 4 {
                    b[0] = 0x40 | ihl;
                    let len = u16::try_from(b.len()).unwrap();
                    b[2..4].copy_from_slice(&len.to_be_bytes());
                }
                b
            })
    }

    fn any_repr() -> impl Strategy<Value = Repr> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            0..2000usize,
            any::<u8>(),
        )
            .prop_map(|(s, d, proto, payload_len, ttl)| Repr {
                src_addr: Ipv4Addr::from(s),
                dst_addr: Ipv4Addr::from(d),
                protocol: Protocol::from(proto),
                payload_len,
                ttl,
            })
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in datagram_like()) {
            let unchecked = Packet::new_unchecked(&bytes[..]);
            let parsed = Repr::parse(&unchecked);
            let _ = unchecked.to_string();
            match Packet::new_checked(&bytes[..]) {
                Ok(p) => {
                    let _ = (p.options(), p.payload(), p.frag_offset(), p.verify_checksum());
                    prop_assert!(p.header_len() + p.payload().len() <= bytes.len());
                    prop_assert_eq!(parsed.is_ok(), p.verify_checksum());
                }
                Err(e) => prop_assert_eq!(parsed, Err(e)),
            }
        }

        #[test]
        fn emit_then_parse(repr in any_repr(), ident: u16, fill: u8) {
            let mut buf = vec![fill; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), ident);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p), Ok(repr));
            prop_assert_eq!((p.ident(), p.is_fragment(), p.dont_frag()), (ident, false, false));
            prop_assert_eq!(p.payload().len(), repr.payload_len);
        }

        #[test]
        fn flags_and_offset_round_trip(df: bool, mf: bool, units in 0u16..8192) {
            let mut buf = SIMPLE;
            let mut p = Packet::new_unchecked(&mut buf[..]);
            p.set_flags_and_offset(df, mf, units * 8);
            prop_assert_eq!((p.dont_frag(), p.more_frags(), p.frag_offset()), (df, mf, units * 8));
        }
    }
}
