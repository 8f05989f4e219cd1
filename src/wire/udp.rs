//! UDP datagrams ([RFC 768]) over IPv4: a zero-copy [`Packet`] view and a
//! [`Repr`] of the header, with the pseudo-header checksum.
//!
//! Owns the byte layout of the 8-byte header and the checksum rules: it
//! covers the IPv4 pseudo-header, the header and the data; a received 0
//! means "no checksum" and is accepted; a computed 0 is sent as `0xffff`.
//! It never decides which ports answer (that is `proto::tunstack`), and must
//! never do I/O, read a clock or log.
//!
//! ```text
//! | source port | destination port | length | checksum | data ...
//!   2 bytes       2 bytes            2 bytes  2 bytes    length - 8 bytes
//! ```
//!
//! # Invariants
//! * [`Packet::new_checked`] accepts a buffer only when the length field is
//!   at least 8 and at most the buffer's length; after it no getter panics.
//!   The datagram ends at its length field: [`Packet::payload`] excludes any
//!   bytes after it (they are not covered by the checksum either).
//! * [`Repr::parse`] re-checks the lengths, so it never panics.
//!
//! ```
//! use mioperf::wire::udp::{Packet, Repr, HEADER_LEN};
//! use std::net::Ipv4Addr;
//! let (src, dst) = (Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(192, 0, 2, 1));
//! let repr = Repr { src_port: 40000, dst_port: 7007 };
//! let mut buf = vec![0u8; HEADER_LEN + 5];
//! buf[HEADER_LEN..].copy_from_slice(b"hello"); // the payload first: emit checksums it
//! repr.emit(&mut Packet::new_unchecked(&mut buf[..]), src, dst, 5);
//! let packet = Packet::new_checked(&buf[..]).unwrap();
//! assert_eq!(Repr::parse(&packet, src, dst), Ok(repr));
//! assert_eq!(packet.payload(), b"hello");
//! ```
//!
//! [RFC 768]: https://www.rfc-editor.org/rfc/rfc768

use super::checksum;
pub use super::ipv4::Error;
use super::ipv4::Protocol;
use core::fmt;
use std::net::Ipv4Addr;

/// The header's length.
pub const HEADER_LEN: usize = 8;
/// Most data one datagram over IPv4 can carry: 65535 minus the 20-byte IP
/// header (no options) and this header.
pub const MAX_PAYLOAD_LEN: usize = 65_535 - super::ipv4::HEADER_LEN - HEADER_LEN;

/// Byte offsets of the fields.
mod field {
    use core::ops::Range;
    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const LENGTH: Range<usize> = 4..6;
    pub(super) const CHECKSUM: Range<usize> = 6..8;
}

/// A read (and, over a mutable buffer, write) view of a UDP datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it (for emitting).
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

    /// Checks that no getter can panic.
    ///
    /// # Errors
    /// [`Error::Truncated`] under 8 bytes or shorter than the length field;
    /// [`Error::Length`] if the length field is below 8.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::Length);
        }
        if field_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The length field: header and data, in bytes.
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// Whether the datagram carries no data (length 8).
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field as received (0: the sender computed none).
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The data: after the header, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Whether the checksum is right for a datagram from `src` to `dst`;
    /// true when the field is 0 (no checksum, RFC 768).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        checksum::fold(self.sum(src, dst)) == 0xffff
    }

    /// The pseudo-header sum plus the sum of the datagram (header as it
    /// stands, data up to the length field).
    fn sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let len = self.len();
        checksum::combine(
            checksum::pseudo_header(src, dst, Protocol::Udp.into(), len),
            checksum::sum(&self.buffer.as_ref()[..usize::from(len)]),
        )
    }
}

impl<'a> Packet<&'a [u8]> {
    /// [`Packet::payload`], borrowed for as long as the buffer.
    pub fn payload_ref(&self) -> &'a [u8] {
        &self.buffer[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, at: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        self.set_u16_at(field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        self.set_u16_at(field::DST_PORT, value);
    }

    /// Sets the length field (header and data).
    pub fn set_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value);
    }

    /// Sets the checksum field as is (see [`Packet::fill_checksum`]).
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// The data, to write: after the header, up to the length field (set it
    /// first).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }

    /// Computes and writes the checksum over the pseudo-header, the header
    /// and the data as they are now; a result of 0 is written as `0xffff`
    /// (0 on the wire means "none", RFC 768). Call it after the last change.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = !checksum::fold(self.sum(src, dst));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    /// One line; a view that fails [`Packet::check_len`] prints why.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "UDP ({e}, {} bytes)", self.buffer.as_ref().len());
        }
        write!(
            f,
            "UDP {} > {} len {}",
            self.src_port(),
            self.dst_port(),
            self.payload().len()
        )
    }
}

/// A validated UDP header: the ports. The data is read from the
/// [`Packet`] ([`Packet::payload`] or [`Packet::payload_ref`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The source port.
    pub src_port: u16,
    /// The destination port.
    pub dst_port: u16,
}

impl Repr {
    /// Validates a datagram that came from `src` to `dst`: lengths, then
    /// the checksum (a 0 field is accepted, RFC 768). Port 0 is not refused
    /// here: what to do with it is the caller's choice.
    ///
    /// # Errors
    /// Those of [`Packet::check_len`], then [`Error::Checksum`].
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<Self, Error> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// The header's length; the datagram is this plus the payload.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The datagram's length for `payload_len` bytes of data.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header for `payload_len` bytes of data and the checksum
    /// over the data ALREADY in the buffer (at `HEADER_LEN..`). So: write
    /// the data first (into the raw buffer, or through
    /// [`Packet::payload_mut`] after [`Packet::set_len`]), then call emit;
    /// or, if the data is written after emit, call
    /// [`Packet::fill_checksum`] again once it is in place.
    ///
    /// # Panics
    /// If the buffer is shorter than `HEADER_LEN + payload_len`, or
    /// `payload_len` is above 65527 (the length field's limit).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload_len: usize,
    ) {
        let len =
            u16::try_from(HEADER_LEN + payload_len).expect("a UDP datagram is at most 65535 bytes");
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.fill_checksum(src, dst);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UDP {} > {}", self.src_port, self.dst_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{captures, ipv4};
    use proptest::prelude::*;

    fn a1() -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 1)
    }

    fn a2() -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 2)
    }

    /// The UDP bytes of the captured datagram (192.0.2.2 > 192.0.2.1).
    fn captured() -> Vec<u8> {
        let ip = captures::bytes(captures::UDP_TO_CLOSED_PORT);
        ipv4::Packet::new_checked(&ip[..])
            .unwrap()
            .payload()
            .to_vec()
    }

    #[test]
    fn captured_datagram() {
        let bytes = captured();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (40000, 7007, 22));
        assert_eq!(p.payload(), b"hello tunstack");
        assert_ne!(p.checksum(), 0, "Linux fills UDP checksums");
        assert!(p.verify_checksum(a2(), a1()));
        assert_eq!(
            Repr::parse(&p, a2(), a1()),
            Ok(Repr {
                src_port: 40000,
                dst_port: 7007
            })
        );
        assert_eq!(p.to_string(), "UDP 40000 > 7007 len 14");
    }

    /// The pseudo-header is covered: the same bytes between other
    /// addresses fail.
    #[test]
    fn the_checksum_covers_the_addresses() {
        let bytes = captured();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!p.verify_checksum(a1(), Ipv4Addr::new(192, 0, 2, 3)));
        assert_eq!(
            Repr::parse(&p, Ipv4Addr::new(192, 0, 2, 3), a1()),
            Err(Error::Checksum)
        );
    }

    #[test]
    fn emit_matches_the_kernels_datagram() {
        let bytes = captured();
        let mut out = vec![0u8; bytes.len()];
        out[HEADER_LEN..].copy_from_slice(b"hello tunstack");
        let repr = Repr {
            src_port: 40000,
            dst_port: 7007,
        };
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), a2(), a1(), 14);
        assert_eq!(out, bytes);
    }

    /// Writing the payload after emit needs `fill_checksum` again, as the
    /// emit docs say.
    #[test]
    fn payload_written_after_emit() {
        let bytes = captured();
        let mut out = vec![0u8; bytes.len()];
        let mut p = Packet::new_unchecked(&mut out[..]);
        Repr {
            src_port: 40000,
            dst_port: 7007,
        }
        .emit(&mut p, a2(), a1(), 14);
        p.payload_mut().copy_from_slice(b"hello tunstack");
        assert!(!p.verify_checksum(a2(), a1()));
        p.fill_checksum(a2(), a1());
        assert_eq!(out, bytes);
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut bytes = captured();
        bytes[6..8].copy_from_slice(&[0, 0]);
        bytes[HEADER_LEN] = b'J'; // would fail any real checksum
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.verify_checksum(a2(), a1()));
        assert!(Repr::parse(&p, a2(), a1()).is_ok());
    }

    #[test]
    fn a_computed_zero_is_sent_as_ffff() {
        let mut bytes = [0u8; HEADER_LEN + 2];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_len(10);
        // Choose the last data word so the whole sum folds to 0xffff, whose
        // complement (the checksum) is 0.
        let rest = checksum::fold(p.sum(a1(), a2()));
        p.payload_mut().copy_from_slice(&(!rest).to_be_bytes());
        assert_eq!(checksum::fold(p.sum(a1(), a2())), 0xffff);
        p.fill_checksum(a1(), a2());
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(a1(), a2()));
    }

    #[test]
    fn padding_after_len_is_not_data() {
        let mut bytes = captured();
        bytes.extend_from_slice(b"pad");
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.payload(), b"hello tunstack");
        assert!(Repr::parse(&p, a2(), a1()).is_ok(), "padding is not summed");
    }

    #[test]
    fn errors() {
        let good = captured();
        let check = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            edit(&mut b);
            let err = Repr::parse(&Packet::new_unchecked(&b[..]), a2(), a1()).unwrap_err();
            assert_eq!(Packet::new_checked(&b[..]).err().unwrap_or(err), err);
            err
        };
        assert!(Repr::parse(&Packet::new_unchecked(&good[..]), a2(), a1()).is_ok());
        assert_eq!(check(&|b| b.truncate(7)), Error::Truncated);
        assert_eq!(check(&|b| b[5] = 7), Error::Length);
        assert_eq!(check(&|b| b[5] = 23), Error::Truncated);
        assert_eq!(check(&|b| b.truncate(21)), Error::Truncated);
        assert_eq!(check(&|b| b[5] = 21), Error::Checksum);
        assert_eq!(check(&|b| b[9] ^= 0x20), Error::Checksum);
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80), s: u32, d: u32, fit: bool) {
            let mut bytes = bytes;
            if fit && bytes.len() >= HEADER_LEN {
                // The right length half of the time, to reach the checksum.
                let len = u16::try_from(bytes.len()).unwrap();
                bytes[4..6].copy_from_slice(&len.to_be_bytes());
            }
            let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
            let unchecked = Packet::new_unchecked(&bytes[..]);
            let _ = unchecked.to_string();
            let parsed = Repr::parse(&unchecked, s, d);
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                prop_assert!(HEADER_LEN + p.payload().len() <= bytes.len());
                prop_assert_eq!(parsed.is_ok(), p.verify_checksum(s, d));
            }
        }

        #[test]
        fn emit_then_parse(
            src_port: u16,
            dst_port: u16,
            s: u32,
            d: u32,
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
            let repr = Repr { src_port, dst_port };
            let mut buf = vec![0u8; repr.buffer_len(payload.len())];
            buf[HEADER_LEN..].copy_from_slice(&payload);
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), s, d, payload.len());
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_ne!(p.checksum(), 0);
            prop_assert_eq!(Repr::parse(&p, s, d), Ok(repr));
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
