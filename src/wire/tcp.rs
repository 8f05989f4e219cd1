//! TCP segments ([RFC 9293]): a zero-copy [`Packet`] view, the options
//! ([`TcpOption`]), a [`Repr`] of a segment, and [`SeqNumber`], the
//! sequence-number arithmetic modulo 2^32.
//!
//! Owns the byte layout of the header and its options, and the
//! pseudo-header checksum over IPv4. It never decides what a segment means
//! to a connection (that is the engine's), never checks the checksum in
//! [`Repr::parse`] (the carrier does, with [`Packet::verify_checksum`]: the
//! engine itself knows no IP addresses, so it can be carried over UDP too),
//! and must never do I/O, read a clock or log.
//!
//! ```text
//! | src port | dst port | sequence number | acknowledgment number |
//!   2          2          4                 4
//! | data offset (4 bits), reserved (4), flags (8) | window | checksum | urgent pointer |
//!   2                                               2        2          2
//! | options (data offset * 4 - 20 bytes) | data ...
//! ```
//!
//! # Invariants
//! * [`Packet::new_checked`] accepts a buffer only when it holds the
//!   20-byte header, the data offset is at least 5 words and the header
//!   fits in the buffer; after it no getter panics. A segment has no length
//!   field: it ends where the buffer ends (the IP layer trims it).
//! * [`Repr::parse`] re-checks the lengths and every option's length, so it
//!   never panics.
//!
//! # Flags: why a [`Control`] enum
//! [`Repr`] carries SYN/FIN/RST/PSH as one [`Control`] (as smoltcp does) and
//! ACK as `ack_number: Option<_>`: the engine matches exhaustively on what a
//! segment asks for, and the combinations RFC 9293 gives no meaning to
//! (SYN+FIN, SYN+RST, FIN+RST) are refused once, here, with
//! [`Error::Unsupported`], rather than in every state. PSH is kept only
//! without SYN/FIN/RST (it carries no information the engine acts on). ECE,
//! CWR and URG are readable on the [`Packet`] but not in the [`Repr`]: this
//! stack implements neither ECN nor urgent data, and sends them clear.
//!
//! # Errors, in the shared [`Error`] of the IP layer
//! [`Error::Truncated`]: under 20 bytes, a header longer than the buffer, or
//! an option running past the header. [`Error::HeaderLen`]: a data offset
//! below 5. [`Error::Length`]: an option whose length byte is below 2 or
//! wrong for its kind (MSS not 4, window scale not 3, …).
//! [`Error::Unsupported`]: a flag combination with no meaning (above).
//!
//! ```
//! use mioperf::wire::tcp::{Control, Packet, Repr, SeqNumber};
//! let repr = Repr {
//!     src_port: 40000,
//!     dst_port: 7000,
//!     control: Control::Syn,
//!     seq_number: SeqNumber(1),
//!     ack_number: None,
//!     window_len: 64240,
//!     window_scale: Some(7),
//!     max_seg_size: Some(1460),
//!     sack_permitted: true,
//!     sack_ranges: [None; 3],
//!     timestamp: None,
//!     payload: &[],
//! };
//! let mut buf = vec![0u8; repr.buffer_len()];
//! repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
//! let packet = Packet::new_checked(&buf[..]).unwrap();
//! assert_eq!(Repr::parse(&packet), Ok(repr));
//! ```
//!
//! [RFC 9293]: https://www.rfc-editor.org/rfc/rfc9293

use super::checksum;
pub use super::ipv4::Error;
use super::ipv4::Protocol;
use core::{cmp, fmt, ops};
use std::net::Ipv4Addr;

/// The header's length without options.
pub const HEADER_LEN: usize = 20;
/// The longest header: a 4-bit data offset counts at most 15 words.
pub const MAX_HEADER_LEN: usize = 60;
/// Room for options: what a 60-byte header leaves after the fixed part.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;
/// Most SACK blocks one option can carry ([RFC 2018]): 2 + 4 × 8 = 34
/// bytes, the largest that fits in [`MAX_OPTIONS_LEN`].
///
/// [RFC 2018]: https://www.rfc-editor.org/rfc/rfc2018
pub const MAX_SACK_BLOCKS: usize = 4;
/// SACK blocks a [`Repr`] keeps: with timestamps (10 bytes, padded to 12),
/// only 3 fit in the 40 bytes of options (RFC 2018 section 3), and every
/// segment this stack sends carries timestamps when they were agreed.
pub const REPR_SACK_BLOCKS: usize = 3;
/// The largest window shift ([RFC 7323] section 2.3): a larger one received
/// is taken as 14.
///
/// [RFC 7323]: https://www.rfc-editor.org/rfc/rfc7323#section-2.3
pub const MAX_WINDOW_SCALE: u8 = 14;

/// Byte offsets of the fields.
mod field {
    use core::ops::Range;
    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const SEQ_NUM: Range<usize> = 4..8;
    pub(super) const ACK_NUM: Range<usize> = 8..12;
    pub(super) const DATA_OFFSET: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WIN_SIZE: Range<usize> = 14..16;
    pub(super) const CHECKSUM: Range<usize> = 16..18;
    pub(super) const URGENT: Range<usize> = 18..20;

    pub(super) const FLG_FIN: u8 = 0x01;
    pub(super) const FLG_SYN: u8 = 0x02;
    pub(super) const FLG_RST: u8 = 0x04;
    pub(super) const FLG_PSH: u8 = 0x08;
    pub(super) const FLG_ACK: u8 = 0x10;
    pub(super) const FLG_URG: u8 = 0x20;
    pub(super) const FLG_ECE: u8 = 0x40;
    pub(super) const FLG_CWR: u8 = 0x80;

    pub(super) const OPT_EOL: u8 = 0;
    pub(super) const OPT_NOP: u8 = 1;
    pub(super) const OPT_MSS: u8 = 2;
    pub(super) const OPT_WS: u8 = 3;
    pub(super) const OPT_SACKPERM: u8 = 4;
    pub(super) const OPT_SACKRNG: u8 = 5;
    pub(super) const OPT_TSTAMP: u8 = 8;
}

/// A sequence number: arithmetic and comparison modulo 2^32 ([RFC 9293]
/// section 3.4), so `SeqNumber(u32::MAX) < SeqNumber(0)`.
///
/// The order is only meaningful between numbers less than 2^31 apart (a
/// window is far smaller): `a < b` is `(a - b) as i32 < 0`. It is not a
/// total order, so there is no `Ord`.
///
/// [RFC 9293]: https://www.rfc-editor.org/rfc/rfc9293#section-3.4
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// The later of the two (modulo 2^32).
    #[must_use]
    pub fn max(self, rhs: Self) -> Self {
        if self > rhs { self } else { rhs }
    }

    /// The earlier of the two (modulo 2^32).
    #[must_use]
    pub fn min(self, rhs: Self) -> Self {
        if self < rhs { self } else { rhs }
    }

    /// The signed distance from `rhs` to `self`.
    const fn diff(self, rhs: Self) -> i32 {
        self.0.wrapping_sub(rhs.0).cast_signed()
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &Self) -> Option<cmp::Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `rhs` as a distance in sequence space.
///
/// # Panics
/// Above `i32::MAX`: a step that large would make the order meaningless, so
/// it is a bug in the caller.
fn distance(rhs: usize) -> u32 {
    match u32::try_from(rhs) {
        Ok(d) if d <= i32::MAX.cast_unsigned() => d,
        _ => panic!("sequence number step {rhs} is not below 2^31"),
    }
}

impl ops::Add<usize> for SeqNumber {
    type Output = Self;

    /// # Panics
    /// If `rhs` is not below 2^31 (see [`SeqNumber`]).
    fn add(self, rhs: usize) -> Self {
        Self(self.0.wrapping_add(distance(rhs)))
    }
}

impl ops::AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl ops::Sub<usize> for SeqNumber {
    type Output = Self;

    /// # Panics
    /// If `rhs` is not below 2^31 (see [`SeqNumber`]).
    fn sub(self, rhs: usize) -> Self {
        Self(self.0.wrapping_sub(distance(rhs)))
    }
}

impl ops::Sub for SeqNumber {
    type Output = usize;

    /// How far `self` is after `rhs`. `self` must not be before `rhs`: a
    /// debug build panics; a release build answers 0, the safe side for a
    /// length.
    fn sub(self, rhs: Self) -> usize {
        let d = self.diff(rhs);
        debug_assert!(d >= 0, "sequence number {self} is before {rhs}");
        usize::try_from(d).unwrap_or(0)
    }
}

/// What a segment asks for besides an acknowledgment (see the module docs
/// for why this is one enum).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Control {
    /// No SYN, FIN, RST or PSH.
    #[default]
    None,
    /// PSH alone.
    Psh,
    /// SYN (with or without ACK).
    Syn,
    /// FIN.
    Fin,
    /// RST.
    Rst,
}

impl Control {
    /// How much sequence space the flag takes: 1 for SYN and FIN.
    pub const fn len(self) -> usize {
        match self {
            Self::Syn | Self::Fin => 1,
            Self::None | Self::Psh | Self::Rst => 0,
        }
    }

    /// Whether it takes no sequence space.
    pub const fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// A read (and, over a mutable buffer, write) view of a TCP segment.
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
    /// [`Error::Truncated`] under 20 bytes or shorter than the data offset;
    /// [`Error::HeaderLen`] if the data offset is below 5 words.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::HeaderLen);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn u32_at(&self, at: ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[at];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn flag(&self, bit: u8) -> bool {
        self.buffer.as_ref()[field::FLAGS] & bit != 0
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The sequence number field.
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(self.u32_at(field::SEQ_NUM))
    }

    /// The acknowledgment number field (meaningful only with ACK).
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(self.u32_at(field::ACK_NUM))
    }

    /// The header's length in bytes: the data offset times 4.
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// FIN.
    pub fn fin(&self) -> bool {
        self.flag(field::FLG_FIN)
    }

    /// SYN.
    pub fn syn(&self) -> bool {
        self.flag(field::FLG_SYN)
    }

    /// RST.
    pub fn rst(&self) -> bool {
        self.flag(field::FLG_RST)
    }

    /// PSH.
    pub fn psh(&self) -> bool {
        self.flag(field::FLG_PSH)
    }

    /// ACK.
    pub fn ack(&self) -> bool {
        self.flag(field::FLG_ACK)
    }

    /// URG.
    pub fn urg(&self) -> bool {
        self.flag(field::FLG_URG)
    }

    /// ECE (ECN echo, RFC 3168).
    pub fn ece(&self) -> bool {
        self.flag(field::FLG_ECE)
    }

    /// CWR (congestion window reduced, RFC 3168).
    pub fn cwr(&self) -> bool {
        self.flag(field::FLG_CWR)
    }

    /// The window field, unscaled.
    pub fn window_len(&self) -> u16 {
        self.u16_at(field::WIN_SIZE)
    }

    /// The checksum field as received.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The urgent pointer field (meaningful only with URG).
    pub fn urgent_at(&self) -> u16 {
        self.u16_at(field::URGENT)
    }

    /// The options bytes: after the fixed header, up to the data offset.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The data: after the header, to the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// How much sequence space the segment takes: data, plus 1 for each of
    /// SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload().len() + usize::from(self.syn()) + usize::from(self.fin())
    }

    /// Whether the checksum is right for a segment from `src` to `dst`. A
    /// buffer over 65535 bytes (no IPv4 datagram carries one) is never
    /// right.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.sum(src, dst)
            .is_some_and(|s| checksum::fold(s) == 0xffff)
    }

    /// The pseudo-header sum plus the sum of the whole buffer; `None` if
    /// the buffer is too long for the pseudo-header's length field.
    fn sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Option<u32> {
        let bytes = self.buffer.as_ref();
        let len = u16::try_from(bytes.len()).ok()?;
        Some(checksum::combine(
            checksum::pseudo_header(src, dst, Protocol::Tcp.into(), len),
            checksum::sum(bytes),
        ))
    }
}

impl<'a> Packet<&'a [u8]> {
    /// [`Packet::options`], borrowed for as long as the buffer.
    pub fn options_ref(&self) -> &'a [u8] {
        &self.buffer[HEADER_LEN..usize::from(self.header_len())]
    }

    /// [`Packet::payload`], borrowed for as long as the buffer.
    pub fn payload_ref(&self) -> &'a [u8] {
        &self.buffer[usize::from(self.header_len())..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, at: ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    fn set_u32_at(&mut self, at: ops::Range<usize>, value: u32) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    fn set_flag(&mut self, bit: u8, on: bool) {
        let b = &mut self.buffer.as_mut()[field::FLAGS];
        if on {
            *b |= bit;
        } else {
            *b &= !bit;
        }
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        self.set_u16_at(field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        self.set_u16_at(field::DST_PORT, value);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: SeqNumber) {
        self.set_u32_at(field::SEQ_NUM, value.0);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, value: SeqNumber) {
        self.set_u32_at(field::ACK_NUM, value.0);
    }

    /// Sets the header length in bytes (rounded down to words; the reserved
    /// bits are cleared).
    ///
    /// # Panics
    /// Above [`MAX_HEADER_LEN`].
    pub fn set_header_len(&mut self, value: u8) {
        assert!(
            usize::from(value) <= MAX_HEADER_LEN,
            "TCP header over 60 bytes"
        );
        self.buffer.as_mut()[field::DATA_OFFSET] = (value / 4) << 4;
    }

    /// Clears all eight flags.
    pub fn clear_flags(&mut self) {
        self.buffer.as_mut()[field::FLAGS] = 0;
    }

    /// Sets FIN.
    pub fn set_fin(&mut self, on: bool) {
        self.set_flag(field::FLG_FIN, on);
    }

    /// Sets SYN.
    pub fn set_syn(&mut self, on: bool) {
        self.set_flag(field::FLG_SYN, on);
    }

    /// Sets RST.
    pub fn set_rst(&mut self, on: bool) {
        self.set_flag(field::FLG_RST, on);
    }

    /// Sets PSH.
    pub fn set_psh(&mut self, on: bool) {
        self.set_flag(field::FLG_PSH, on);
    }

    /// Sets ACK.
    pub fn set_ack(&mut self, on: bool) {
        self.set_flag(field::FLG_ACK, on);
    }

    /// Sets URG.
    pub fn set_urg(&mut self, on: bool) {
        self.set_flag(field::FLG_URG, on);
    }

    /// Sets ECE.
    pub fn set_ece(&mut self, on: bool) {
        self.set_flag(field::FLG_ECE, on);
    }

    /// Sets CWR.
    pub fn set_cwr(&mut self, on: bool) {
        self.set_flag(field::FLG_CWR, on);
    }

    /// Sets the window field.
    pub fn set_window_len(&mut self, value: u16) {
        self.set_u16_at(field::WIN_SIZE, value);
    }

    /// Sets the checksum field as is (see [`Packet::fill_checksum`]).
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, value: u16) {
        self.set_u16_at(field::URGENT, value);
    }

    /// The options, to write (set the header length first).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The data, to write (set the header length first).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and writes the checksum over the pseudo-header and the
    /// whole buffer as it is now. Call it after the last change.
    ///
    /// # Panics
    /// If the buffer is over 65535 bytes (no IPv4 datagram carries it).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let sum = self
            .sum(src, dst)
            .expect("a TCP segment over IPv4 is at most 65535 bytes");
        self.set_checksum(!checksum::fold(sum));
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    /// One line; a view that fails [`Packet::check_len`] prints why.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "TCP ({e}, {} bytes)", self.buffer.as_ref().len());
        }
        write!(f, "TCP {} > {} [", self.src_port(), self.dst_port())?;
        for (on, c) in [
            (self.syn(), 'S'),
            (self.fin(), 'F'),
            (self.rst(), 'R'),
            (self.psh(), 'P'),
            (self.ack(), '.'),
        ] {
            if on {
                write!(f, "{c}")?;
            }
        }
        write!(
            f,
            "] seq {} ack {} win {} len {}",
            self.seq_number(),
            self.ack_number(),
            self.window_len(),
            self.payload().len()
        )
    }
}

/// One option ([RFC 9293] section 3.1, [RFC 7323], [RFC 2018]).
///
/// [RFC 9293]: https://www.rfc-editor.org/rfc/rfc9293#section-3.1
/// [RFC 7323]: https://www.rfc-editor.org/rfc/rfc7323
/// [RFC 2018]: https://www.rfc-editor.org/rfc/rfc2018
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Kind 0: no options after this one.
    EndOfList,
    /// Kind 1: padding.
    NoOperation,
    /// Kind 2: the largest segment the sender wants to receive.
    MaxSegmentSize(u16),
    /// Kind 3: the sender's window shift, as sent (not clamped).
    WindowScale(u8),
    /// Kind 4: the sender can receive SACK.
    SackPermitted,
    /// Kind 5: up to [`MAX_SACK_BLOCKS`] `(left, right)` edges, in order.
    SackRange([Option<(u32, u32)>; MAX_SACK_BLOCKS]),
    /// Kind 8: `(TSval, TSecr)`.
    Timestamp(u32, u32),
    /// Any other kind: skipped by its length.
    Unknown {
        /// The kind byte.
        kind: u8,
        /// The bytes after the length byte.
        data: &'a [u8],
    },
}

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl<'a> TcpOption<'a> {
    /// Parses the first option of `buffer`; returns the rest with it.
    /// After [`TcpOption::EndOfList`] the rest is empty (the bytes after it
    /// are padding).
    ///
    /// # Errors
    /// [`Error::Truncated`] when `buffer` is empty or the option runs past
    /// it; [`Error::Length`] when its length byte is below 2 or wrong for
    /// its kind.
    pub fn parse(buffer: &'a [u8]) -> Result<(&'a [u8], Self), Error> {
        let (&kind, rest) = buffer.split_first().ok_or(Error::Truncated)?;
        match kind {
            field::OPT_EOL => return Ok((&[], Self::EndOfList)),
            field::OPT_NOP => return Ok((rest, Self::NoOperation)),
            _ => {}
        }
        let len = usize::from(*rest.first().ok_or(Error::Truncated)?);
        if len < 2 {
            return Err(Error::Length);
        }
        if len > buffer.len() {
            return Err(Error::Truncated);
        }
        let data = &buffer[2..len];
        let option = match (kind, len) {
            (field::OPT_MSS, 4) => Self::MaxSegmentSize(be_u16(data)),
            (field::OPT_WS, 3) => Self::WindowScale(data[0]),
            (field::OPT_SACKPERM, 2) => Self::SackPermitted,
            (field::OPT_SACKRNG, 10 | 18 | 26 | 34) => {
                let mut blocks = [None; MAX_SACK_BLOCKS];
                for (slot, b) in blocks.iter_mut().zip(data.chunks_exact(8)) {
                    *slot = Some((be_u32(&b[..4]), be_u32(&b[4..])));
                }
                Self::SackRange(blocks)
            }
            (field::OPT_TSTAMP, 10) => Self::Timestamp(be_u32(&data[..4]), be_u32(&data[4..])),
            (
                field::OPT_MSS
                | field::OPT_WS
                | field::OPT_SACKPERM
                | field::OPT_SACKRNG
                | field::OPT_TSTAMP,
                _,
            ) => return Err(Error::Length),
            _ => Self::Unknown { kind, data },
        };
        Ok((&buffer[len..], option))
    }

    /// The option's length on the wire.
    pub fn buffer_len(&self) -> usize {
        match self {
            Self::EndOfList | Self::NoOperation => 1,
            Self::MaxSegmentSize(_) => 4,
            Self::WindowScale(_) => 3,
            Self::SackPermitted => 2,
            Self::SackRange(blocks) => 2 + 8 * blocks.iter().flatten().count(),
            Self::Timestamp(..) => 10,
            Self::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// Writes the option at the start of `buffer`; returns the rest.
    ///
    /// # Panics
    /// If `buffer` is shorter than [`TcpOption::buffer_len`], or an unknown
    /// option's data is over 253 bytes.
    pub fn emit<'b>(&self, buffer: &'b mut [u8]) -> &'b mut [u8] {
        let len = self.buffer_len();
        let (out, rest) = buffer.split_at_mut(len);
        let kind = match self {
            Self::EndOfList => field::OPT_EOL,
            Self::NoOperation => field::OPT_NOP,
            Self::MaxSegmentSize(_) => field::OPT_MSS,
            Self::WindowScale(_) => field::OPT_WS,
            Self::SackPermitted => field::OPT_SACKPERM,
            Self::SackRange(_) => field::OPT_SACKRNG,
            Self::Timestamp(..) => field::OPT_TSTAMP,
            Self::Unknown { kind, .. } => *kind,
        };
        out[0] = kind;
        if len > 1 {
            out[1] = u8::try_from(len).expect("a TCP option is at most 255 bytes");
        }
        match self {
            Self::EndOfList | Self::NoOperation | Self::SackPermitted => {}
            Self::MaxSegmentSize(mss) => out[2..].copy_from_slice(&mss.to_be_bytes()),
            Self::WindowScale(shift) => out[2] = *shift,
            Self::SackRange(blocks) => {
                for (chunk, (l, r)) in out[2..].chunks_exact_mut(8).zip(blocks.iter().flatten()) {
                    chunk[..4].copy_from_slice(&l.to_be_bytes());
                    chunk[4..].copy_from_slice(&r.to_be_bytes());
                }
            }
            Self::Timestamp(val, ecr) => {
                out[2..6].copy_from_slice(&val.to_be_bytes());
                out[6..].copy_from_slice(&ecr.to_be_bytes());
            }
            Self::Unknown { data, .. } => out[2..].copy_from_slice(data),
        }
        rest
    }
}

/// A validated segment: the header fields the engine uses, the options it
/// understands, and the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr<'a> {
    /// The source port.
    pub src_port: u16,
    /// The destination port.
    pub dst_port: u16,
    /// SYN, FIN, RST, PSH or none (see [`Control`]).
    pub control: Control,
    /// The sequence number.
    pub seq_number: SeqNumber,
    /// The acknowledgment number: `Some` exactly when ACK is set.
    pub ack_number: Option<SeqNumber>,
    /// The window field, unscaled.
    pub window_len: u16,
    /// The window scale option's shift, clamped to [`MAX_WINDOW_SCALE`].
    pub window_scale: Option<u8>,
    /// The MSS option.
    pub max_seg_size: Option<u16>,
    /// The SACK-permitted option.
    pub sack_permitted: bool,
    /// The first [`REPR_SACK_BLOCKS`] SACK blocks `(left, right)`, in the
    /// order received, `Some` first. On emit, blocks that do not fit in the
    /// 40 bytes of options with the others are left out, last first.
    pub sack_ranges: [Option<(u32, u32)>; REPR_SACK_BLOCKS],
    /// The timestamps option, `(TSval, TSecr)`.
    pub timestamp: Option<(u32, u32)>,
    /// The data.
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Validates a segment: lengths, options, flags. Does NOT check the
    /// checksum (the carrier does, knowing the addresses). Unknown options
    /// are skipped; a repeated option keeps the last one.
    ///
    /// # Errors
    /// Those of [`Packet::check_len`] and [`TcpOption::parse`], and
    /// [`Error::Unsupported`] for SYN, FIN and RST together in any pair.
    pub fn parse(packet: &Packet<&'a [u8]>) -> Result<Self, Error> {
        packet.check_len()?;
        let control = match (packet.syn(), packet.fin(), packet.rst()) {
            (false, false, false) if packet.psh() => Control::Psh,
            (false, false, false) => Control::None,
            (true, false, false) => Control::Syn,
            (false, true, false) => Control::Fin,
            (false, false, true) => Control::Rst,
            _ => return Err(Error::Unsupported),
        };
        let mut repr = Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            control,
            seq_number: packet.seq_number(),
            ack_number: packet.ack().then(|| packet.ack_number()),
            window_len: packet.window_len(),
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; REPR_SACK_BLOCKS],
            timestamp: None,
            payload: packet.payload_ref(),
        };
        let mut options = packet.options_ref();
        while !options.is_empty() {
            let (rest, option) = TcpOption::parse(options)?;
            match option {
                TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
                TcpOption::MaxSegmentSize(mss) => repr.max_seg_size = Some(mss),
                TcpOption::WindowScale(shift) => {
                    repr.window_scale = Some(shift.min(MAX_WINDOW_SCALE));
                }
                TcpOption::SackPermitted => repr.sack_permitted = true,
                TcpOption::SackRange(blocks) => {
                    repr.sack_ranges
                        .copy_from_slice(&blocks[..REPR_SACK_BLOCKS]);
                }
                TcpOption::Timestamp(val, ecr) => repr.timestamp = Some((val, ecr)),
            }
            options = rest;
        }
        Ok(repr)
    }

    /// Bytes of options other than SACK blocks, unpadded.
    fn fixed_options_len(&self) -> usize {
        let mut len = 0;
        if self.max_seg_size.is_some() {
            len += 4;
        }
        if self.window_scale.is_some() {
            len += 3;
        }
        if self.sack_permitted {
            len += 2;
        }
        if self.timestamp.is_some() {
            len += 10;
        }
        len
    }

    /// How many SACK blocks emit writes: those given, as many as fit.
    fn sack_blocks(&self) -> usize {
        let given = self.sack_ranges.iter().flatten().count();
        let room = MAX_OPTIONS_LEN.saturating_sub(self.fixed_options_len() + 2) / 8;
        given.min(room)
    }

    /// Bytes of options, unpadded.
    fn options_len(&self) -> usize {
        let sack = self.sack_blocks();
        self.fixed_options_len() + if sack > 0 { 2 + 8 * sack } else { 0 }
    }

    /// The header's length: 20 plus the options padded to 4 bytes.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len().next_multiple_of(4)
    }

    /// The segment's length: header and data.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// How much sequence space the segment takes (data, SYN, FIN).
    pub fn segment_len(&self) -> usize {
        self.payload.len() + self.control.len()
    }

    /// Writes the segment (header, options padded with zeros, which read
    /// as end-of-list, and the data) into the first
    /// [`Repr::buffer_len`] bytes of the packet's buffer. The checksum is
    /// left 0: the carrier fills it ([`Packet::fill_checksum`]).
    ///
    /// # Panics
    /// If the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let header_len = self.header_len();
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number.unwrap_or_default());
        packet.set_header_len(u8::try_from(header_len).expect("header_len is at most 60"));
        packet.clear_flags();
        match self.control {
            Control::None => {}
            Control::Psh => packet.set_psh(true),
            Control::Syn => packet.set_syn(true),
            Control::Fin => packet.set_fin(true),
            Control::Rst => packet.set_rst(true),
        }
        packet.set_ack(self.ack_number.is_some());
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(0);
        let mut out = packet.options_mut();
        out.fill(0);
        if let Some(mss) = self.max_seg_size {
            out = TcpOption::MaxSegmentSize(mss).emit(out);
        }
        if let Some(shift) = self.window_scale {
            out = TcpOption::WindowScale(shift).emit(out);
        }
        if self.sack_permitted {
            out = TcpOption::SackPermitted.emit(out);
        }
        if let Some((val, ecr)) = self.timestamp {
            out = TcpOption::Timestamp(val, ecr).emit(out);
        }
        let n = self.sack_blocks();
        if n > 0 {
            let mut blocks = [None; MAX_SACK_BLOCKS];
            for (slot, b) in blocks
                .iter_mut()
                .zip(self.sack_ranges.iter().flatten().take(n))
            {
                *slot = Some(*b);
            }
            TcpOption::SackRange(blocks).emit(out);
        }
        packet.payload_mut()[..self.payload.len()].copy_from_slice(self.payload);
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TCP {} > {} {:?} seq {}",
            self.src_port, self.dst_port, self.control, self.seq_number
        )?;
        if let Some(ack) = self.ack_number {
            write!(f, " ack {ack}")?;
        }
        write!(f, " win {} len {}", self.window_len, self.payload.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a1() -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 1)
    }

    fn a2() -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 2)
    }

    // Real segments, the TCP part of IPv4 datagrams (the 20-byte IP header
    // cut off). Captured for issue 14 as root (Linux 6.18, tcpdump 4.99.3,
    // Python 3): two throwaway network namespaces joined by a veth pair,
    // 192.0.2.1 (`nc -l -p 7000`) and 192.0.2.2, transmit checksum offload
    // off on both ends (`ethtool -K va tx off`, so the checksums are
    // complete), `tcpdump -i va -n -U -w cap.pcap tcp` on the 192.0.2.1
    // side, then from 192.0.2.2 a Python socket bound to port 40000
    // `connect(("192.0.2.1", 7000))` and `close()`. Bytes as `tcpdump -x`
    // printed them.

    /// 192.0.2.2:40000 > 192.0.2.1:7000 [S] seq 819773107 win 64240,
    /// options [mss 1460, sackOK, TS val 3881169813 ecr 0, nop, wscale 10].
    const SYN: [u8; 40] = [
        0x9c, 0x40, 0x1b, 0x58, 0x30, 0xdc, 0xbe, 0xb3, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x46, 0xf4, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xe7, 0x55,
        0xf3, 0x95, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
    ];

    /// 192.0.2.1:7000 > 192.0.2.2:40000 [S.] seq 1446194654 ack 819773108
    /// win 65160, options [mss 1460, sackOK, TS val 3373511607 ecr
    /// 3881169813, nop, wscale 10].
    const SYN_ACK: [u8; 40] = [
        0x1b, 0x58, 0x9c, 0x40, 0x56, 0x33, 0x2d, 0xde, 0x30, 0xdc, 0xbe, 0xb4, 0xa0, 0x12, 0xfe,
        0x88, 0x42, 0x6e, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xc9, 0x13,
        0xb3, 0xb7, 0xe7, 0x55, 0xf3, 0x95, 0x01, 0x03, 0x03, 0x0a,
    ];

    /// The third segment: 192.0.2.2:40000 > 192.0.2.1:7000 [.] ack, win 63
    /// (scaled by 2^10), options [nop, nop, TS val 3881169813 ecr
    /// 3373511607].
    const ACK: [u8; 32] = [
        0x9c, 0x40, 0x1b, 0x58, 0x30, 0xdc, 0xbe, 0xb4, 0x56, 0x33, 0x2d, 0xdf, 0x80, 0x10, 0x00,
        0x3f, 0x6f, 0x87, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0xe7, 0x55, 0xf3, 0x95, 0xc9, 0x13,
        0xb3, 0xb7,
    ];

    fn syn_repr() -> Repr<'static> {
        Repr {
            src_port: 40000,
            dst_port: 7000,
            control: Control::Syn,
            seq_number: SeqNumber(819_773_107),
            ack_number: None,
            window_len: 64240,
            window_scale: Some(10),
            max_seg_size: Some(1460),
            sack_permitted: true,
            sack_ranges: [None; 3],
            timestamp: Some((3_881_169_813, 0)),
            payload: &[],
        }
    }

    fn syn_ack_repr() -> Repr<'static> {
        Repr {
            src_port: 7000,
            dst_port: 40000,
            seq_number: SeqNumber(1_446_194_654),
            ack_number: Some(SeqNumber(819_773_108)),
            window_len: 65160,
            timestamp: Some((3_373_511_607, 3_881_169_813)),
            ..syn_repr()
        }
    }

    #[test]
    fn captured_syn() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40000, 7000));
        assert_eq!(p.seq_number(), SeqNumber(819_773_107));
        assert_eq!(p.header_len(), 40);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh());
        assert!(!p.urg() && !p.ece() && !p.cwr());
        assert_eq!((p.window_len(), p.urgent_at()), (64240, 0));
        assert_eq!(p.options().len(), 20);
        assert!(p.payload().is_empty());
        assert_eq!(p.segment_len(), 1);
        assert!(p.verify_checksum(a2(), a1()));
        // The pseudo-header sum is commutative: the reverse direction
        // verifies too (the addresses are checked as a set, not as an order).
        assert!(p.verify_checksum(a1(), a2()));
        assert_eq!(Repr::parse(&p), Ok(syn_repr()));
        assert_eq!(
            p.to_string(),
            "TCP 40000 > 7000 [S] seq 819773107 ack 0 win 64240 len 0"
        );
    }

    #[test]
    fn captured_syn_ack() {
        let p = Packet::new_checked(&SYN_ACK[..]).unwrap();
        assert!(p.syn() && p.ack());
        assert!(p.verify_checksum(a1(), a2()));
        assert_eq!(Repr::parse(&p), Ok(syn_ack_repr()));
    }

    #[test]
    fn captured_ack() {
        let p = Packet::new_checked(&ACK[..]).unwrap();
        assert!(p.verify_checksum(a2(), a1()));
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.control, Control::None);
        assert_eq!(r.ack_number, Some(SeqNumber(1_446_194_655)));
        assert_eq!(r.window_len, 63);
        assert_eq!(r.timestamp, Some((3_881_169_813, 3_373_511_607)));
        assert_eq!(
            (r.max_seg_size, r.window_scale, r.sack_permitted),
            (None, None, false)
        );
    }

    /// The checksum covers the pseudo-header and every byte.
    #[test]
    fn checksum_covers_addresses_and_bytes() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert!(!p.verify_checksum(Ipv4Addr::new(192, 0, 2, 3), a1()));
        let mut b = SYN;
        b[30] ^= 1;
        assert!(
            !Packet::new_checked(&b[..])
                .unwrap()
                .verify_checksum(a2(), a1())
        );
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum(a2(), a1());
        assert_eq!(
            p.checksum() ^ u16::from_be_bytes([SYN[16], SYN[17]]),
            0x0100
        );
        assert!(p.verify_checksum(a2(), a1()));
    }

    /// Our emit differs from Linux only in the option order and padding;
    /// with the checksum filled it verifies, and parses back the same.
    #[test]
    fn emit_the_captured_reprs() {
        for (repr, src, dst, wire) in [
            (syn_repr(), a2(), a1(), &SYN),
            (syn_ack_repr(), a1(), a2(), &SYN_ACK),
        ] {
            let mut buf = vec![0xaau8; repr.buffer_len()];
            assert_eq!(buf.len(), 40);
            let mut p = Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut p);
            assert_eq!(p.checksum(), 0, "emit leaves the checksum to the carrier");
            p.fill_checksum(src, dst);
            assert!(p.verify_checksum(src, dst));
            // The fixed header is the kernel's, but for the checksum.
            assert_eq!(buf[..16], wire[..16]);
            assert_eq!(
                Repr::parse(&Packet::new_checked(&buf[..]).unwrap()),
                Ok(repr)
            );
        }
    }

    #[test]
    fn data_psh_fin_rst() {
        let base = Repr {
            control: Control::Psh,
            ack_number: Some(SeqNumber(7)),
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            timestamp: None,
            payload: b"hello",
            ..syn_repr()
        };
        for control in [Control::None, Control::Psh, Control::Fin, Control::Rst] {
            let repr = Repr { control, ..base };
            assert_eq!(repr.header_len(), HEADER_LEN);
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(p.payload(), b"hello");
            assert_eq!(p.segment_len(), 5 + control.len());
            assert_eq!(Repr::parse(&p), Ok(repr));
        }
    }

    #[test]
    fn meaningless_flag_pairs_are_refused() {
        for bits in [
            field::FLG_SYN | field::FLG_FIN,
            field::FLG_SYN | field::FLG_RST,
            field::FLG_FIN | field::FLG_RST,
        ] {
            let mut b = ACK;
            b[13] = bits | field::FLG_ACK;
            let p = Packet::new_checked(&b[..]).unwrap();
            assert_eq!(Repr::parse(&p), Err(Error::Unsupported));
        }
    }

    /// A segment with only these option bytes (padded to a word with EOL).
    fn with_options(options: &[u8]) -> Vec<u8> {
        let mut b = ACK[..HEADER_LEN].to_vec();
        b.extend_from_slice(options);
        b.resize(options.len().next_multiple_of(4) + HEADER_LEN, 0);
        b[12] = u8::try_from(b.len() / 4).unwrap() << 4;
        b
    }

    fn parse_options(options: &[u8]) -> Result<Repr<'static>, Error> {
        let b: &'static [u8] = with_options(options).leak();
        Repr::parse(&Packet::new_checked(b)?)
    }

    #[test]
    fn each_option() {
        let r = parse_options(&[2, 4, 0x05, 0xb4]).unwrap();
        assert_eq!(r.max_seg_size, Some(1460));
        let r = parse_options(&[1, 3, 3, 7]).unwrap();
        assert_eq!(r.window_scale, Some(7));
        let r = parse_options(&[3, 3, 15]).unwrap();
        assert_eq!(r.window_scale, Some(MAX_WINDOW_SCALE), "clamped, RFC 7323");
        assert!(parse_options(&[4, 2]).unwrap().sack_permitted);
        let r = parse_options(&[8, 10, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(r.timestamp, Some((1, u32::MAX)));
        let r = parse_options(&[5, 10, 0, 0, 0, 1, 0, 0, 0, 2]).unwrap();
        assert_eq!(r.sack_ranges, [Some((1, 2)), None, None]);
        // Four blocks: the Repr keeps the first three.
        let mut four = vec![5, 34];
        for i in 1..=8u32 {
            four.extend_from_slice(&i.to_be_bytes());
        }
        let r = parse_options(&four).unwrap();
        assert_eq!(r.sack_ranges, [Some((1, 2)), Some((3, 4)), Some((5, 6))]);
        let (rest, o) = TcpOption::parse(&four).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            o,
            TcpOption::SackRange([Some((1, 2)), Some((3, 4)), Some((5, 6)), Some((7, 8))])
        );
        // Unknown kinds are skipped by length; options after them still count.
        let r = parse_options(&[30, 4, 9, 9, 2, 4, 0, 100]).unwrap();
        assert_eq!(r.max_seg_size, Some(100));
        // Nothing after EOL is read.
        let r = parse_options(&[0, 2, 4, 0, 100]).unwrap();
        assert_eq!(r.max_seg_size, None);
    }

    #[test]
    fn option_emit_round_trips() {
        let unknown = [7u8, 7, 7];
        for o in [
            TcpOption::EndOfList,
            TcpOption::NoOperation,
            TcpOption::MaxSegmentSize(536),
            TcpOption::WindowScale(3),
            TcpOption::SackPermitted,
            TcpOption::SackRange([Some((1, 2)), Some((3, 4)), None, None]),
            TcpOption::Timestamp(5, 6),
            TcpOption::Unknown {
                kind: 99,
                data: &unknown,
            },
        ] {
            let mut buf = [0u8; 40];
            let rest = o.emit(&mut buf).len();
            assert_eq!(rest, 40 - o.buffer_len());
            let (_, back) = TcpOption::parse(&buf).unwrap();
            assert_eq!(back, o);
        }
    }

    #[test]
    fn malformed_options() {
        // A lone MSS kind is padded to [2, 0, 0, 0]: a length of 0.
        assert_eq!(parse_options(&[2]), Err(Error::Length));
        assert_eq!(parse_options(&[2, 0]), Err(Error::Length));
        assert_eq!(parse_options(&[30, 1]), Err(Error::Length));
        assert_eq!(parse_options(&[2, 3, 0]), Err(Error::Length));
        assert_eq!(parse_options(&[2, 5, 0, 0, 0]), Err(Error::Length));
        assert_eq!(parse_options(&[3, 4, 0, 0]), Err(Error::Length));
        assert_eq!(parse_options(&[4, 3, 0]), Err(Error::Length));
        assert_eq!(parse_options(&[5, 2]), Err(Error::Length));
        assert_eq!(
            parse_options(&[5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(Error::Length)
        );
        assert_eq!(parse_options(&[8, 8, 0, 0, 0, 0, 0, 0]), Err(Error::Length));
        assert_eq!(parse_options(&[1, 1, 30, 9]), Err(Error::Truncated));
        assert_eq!(parse_options(&[1, 1, 1, 8]), Err(Error::Truncated));
        assert_eq!(TcpOption::parse(&[]), Err(Error::Truncated));
        assert_eq!(TcpOption::parse(&[2]), Err(Error::Truncated));
    }

    #[test]
    fn header_length_errors() {
        assert_eq!(
            Packet::new_checked(&SYN[..19]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&SYN[..39]).err(),
            Some(Error::Truncated)
        );
        let mut b = SYN;
        b[12] = 0x40;
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(Error::HeaderLen));
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..])),
            Err(Error::HeaderLen)
        );
        b[12] = 0x50;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 20, "the options are now data");
        assert_eq!(p.to_string().len(), p.to_string().trim().len());
        assert!(
            Packet::new_unchecked(&b[..10])
                .to_string()
                .contains("truncated")
        );
    }

    /// With SYN options and timestamps, only two SACK blocks fit.
    #[test]
    fn sack_blocks_that_do_not_fit_are_left_out() {
        let repr = Repr {
            sack_ranges: [Some((1, 2)), Some((3, 4)), Some((5, 6))],
            ..syn_repr()
        };
        assert_eq!(repr.header_len(), MAX_HEADER_LEN);
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        let back = Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(back.sack_ranges, [Some((1, 2)), Some((3, 4)), None]);
        let ts_only = Repr {
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            ..repr
        };
        assert_eq!(ts_only.header_len(), 20 + 36);
        let mut buf = vec![0u8; ts_only.buffer_len()];
        ts_only.emit(&mut Packet::new_unchecked(&mut buf[..]));
        let back = Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(back, ts_only);
    }

    #[test]
    fn seq_numbers_wrap() {
        let top = SeqNumber(u32::MAX - 1);
        let past = top + 5;
        assert_eq!(past, SeqNumber(3));
        assert!(top < past);
        assert!(past >= top);
        assert!(SeqNumber(u32::MAX) < SeqNumber(0));
        assert_eq!(past - top, 5);
        assert_eq!(past - 5, top);
        assert_eq!(top.max(past), past);
        assert_eq!(top.min(past), top);
        let mut s = top;
        s += 2;
        assert_eq!(s, SeqNumber(0));
        // Half the space away flips the order: the edge of the definition.
        let half = SeqNumber(0) + usize::try_from(i32::MAX).unwrap();
        assert!(SeqNumber(0) < half);
        assert!(SeqNumber(0) > SeqNumber(half.0 + 2));
        assert_eq!(
            SeqNumber(5).partial_cmp(&SeqNumber(5)),
            Some(cmp::Ordering::Equal)
        );
    }

    #[test]
    #[should_panic(expected = "not below 2^31")]
    fn a_step_of_2_pow_31_panics() {
        let _ = SeqNumber(0) + (1usize << 31);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "is before")]
    fn subtracting_a_later_number_panics_in_debug() {
        let _ = SeqNumber(1) - SeqNumber(2);
    }

    /// Any `Repr` this codec can emit, without data (the test adds it).
    fn arb_repr() -> impl Strategy<Value = Repr<'static>> {
        (
            (
                any::<u16>(),
                any::<u16>(),
                0..5u8,
                any::<u32>(),
                proptest::option::of(any::<u32>()),
            ),
            (
                any::<u16>(),
                proptest::option::of(0..=MAX_WINDOW_SCALE),
                proptest::option::of(any::<u16>()),
                any::<bool>(),
            ),
            (
                proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=3),
                proptest::option::of((any::<u32>(), any::<u32>())),
            ),
        )
            .prop_map(
                |((sp, dp, c, seq, ack), (win, ws, mss, sp_ok), (sack, ts))| {
                    let mut sack_ranges = [None; 3];
                    for (slot, b) in sack_ranges.iter_mut().zip(sack) {
                        *slot = Some(b);
                    }
                    Repr {
                        src_port: sp,
                        dst_port: dp,
                        control: [
                            Control::None,
                            Control::Psh,
                            Control::Syn,
                            Control::Fin,
                            Control::Rst,
                        ][usize::from(c)],
                        seq_number: SeqNumber(seq),
                        ack_number: ack.map(SeqNumber),
                        window_len: win,
                        window_scale: ws,
                        max_seg_size: mss,
                        sack_permitted: sp_ok,
                        sack_ranges,
                        timestamp: ts,
                        payload: &[],
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100), offset in 0..16u8) {
            let mut bytes = bytes;
            if bytes.len() > 12 {
                // A plausible data offset most of the time, to reach the options.
                bytes[12] = offset << 4;
            }
            let unchecked = Packet::new_unchecked(&bytes[..]);
            let _ = unchecked.to_string();
            let parsed = Repr::parse(&unchecked);
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                prop_assert_eq!(p.options().len() + p.payload().len() + HEADER_LEN, bytes.len());
                let _ = p.verify_checksum(a1(), a2());
                if let Ok(r) = parsed {
                    prop_assert_eq!(r.payload, p.payload());
                }
            } else {
                prop_assert!(parsed.is_err());
            }
            let mut rest = &bytes[..];
            for _ in 0..100 {
                match TcpOption::parse(rest) {
                    Ok((r, _)) if !r.is_empty() => rest = r,
                    _ => break,
                }
            }
        }

        #[test]
        fn emit_then_parse(
            fields in arb_repr(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            s: u32,
            d: u32,
        ) {
            let repr = Repr { payload: &payload, ..fields };
            let mut buf = vec![0u8; repr.buffer_len()];
            let mut p = Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut p);
            let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
            p.fill_checksum(s, d);
            prop_assert!(p.verify_checksum(s, d));
            let p = Packet::new_checked(&buf[..]).unwrap();
            let back = Repr::parse(&p).unwrap();
            let mut expected = repr;
            for slot in &mut expected.sack_ranges[repr.sack_blocks()..] {
                *slot = None;
            }
            prop_assert_eq!(back, expected);
            prop_assert_eq!(p.header_len() % 4, 0);
        }
    }
}
