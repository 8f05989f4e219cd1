//! ICMP for IPv4 ([RFC 792]): a zero-copy [`Packet`] view and a [`Repr`]
//! of the four messages the stack reads or writes: echo request and reply,
//! destination unreachable, time exceeded.
//!
//! Owns the byte layout of those messages, their checksum (over the whole
//! ICMP message, no pseudo-header) and the codes the stack sends. It never
//! decides when to answer: echo replies, port unreachable and reassembly
//! time exceeded are the IP layer's (`proto::tunstack`). It must never do
//! I/O, read a clock or log.
//!
//! ```text
//! | type | code | checksum |  rest of header (4 bytes)     | data ...
//!   echo:                   | identifier | sequence number | echoed data
//!   errors:                 | unused (0)                   | offending IP header + 8 bytes
//! ```
//!
//! # Invariants
//! * [`Packet::new_checked`] accepts any buffer of at least [`HEADER_LEN`]
//!   bytes, after which no getter panics. The message runs to the end of the
//!   buffer: give it exactly the IP payload (`ipv4::Packet::payload`).
//! * [`Repr::parse`] re-checks the length and checks the checksum, so it
//!   never panics; an ICMP type it does not model is
//!   [`Error::Unsupported`], not a panic and not a silent default.
//!
//! ```
//! use mioperf::wire::icmp::{Packet, Repr};
//! let request = Repr::EchoRequest { ident: 7, seq_no: 1, data: b"abc" };
//! let mut buf = vec![0u8; request.buffer_len()];
//! request.emit(&mut Packet::new_unchecked(&mut buf[..]));
//! let packet = Packet::new_checked(&buf[..]).unwrap();
//! assert_eq!(Repr::parse(&packet), Ok(request));
//! assert_eq!(request.to_string(), "ICMP echo request id 7 seq 1 len 3");
//! ```
//!
//! [RFC 792]: https://www.rfc-editor.org/rfc/rfc792

use super::checksum;
pub use super::ipv4::Error;
use core::fmt;

/// Type, code, checksum and the 4 bytes that depend on the type.
pub const HEADER_LEN: usize = 8;
/// Bytes of the offending datagram's payload quoted after its header in an
/// error message (RFC 792: "the first 64 bits of the original datagram's
/// data"), enough for the UDP ports or the TCP ports and sequence number.
pub const QUOTED_PAYLOAD_LEN: usize = 8;

/// Destination unreachable code 0: net unreachable.
pub const NET_UNREACHABLE: u8 = 0;
/// Destination unreachable code 1: host unreachable.
pub const HOST_UNREACHABLE: u8 = 1;
/// Destination unreachable code 2: the transport protocol is not served.
pub const PROTOCOL_UNREACHABLE: u8 = 2;
/// Destination unreachable code 3: no one listens on the UDP port.
pub const PORT_UNREACHABLE: u8 = 3;
/// Destination unreachable code 4: fragmentation needed and DF set.
pub const FRAG_NEEDED: u8 = 4;
/// Time exceeded code 0: TTL exceeded in transit.
pub const TTL_EXCEEDED: u8 = 0;
/// Time exceeded code 1: fragment reassembly time exceeded.
pub const REASSEMBLY_TIME_EXCEEDED: u8 = 1;

/// Byte offsets of the fields.
mod field {
    use core::ops::Range;
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    pub(super) const UNUSED: Range<usize> = 4..8;
    pub(super) const ECHO_IDENT: Range<usize> = 4..6;
    pub(super) const ECHO_SEQNO: Range<usize> = 6..8;
}

/// The type field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// 0: echo reply.
    EchoReply,
    /// 3: destination unreachable.
    DstUnreachable,
    /// 8: echo request.
    EchoRequest,
    /// 11: time exceeded.
    TimeExceeded,
    /// Any other type, kept so it can be logged. Never 0, 3, 8 or 11.
    Unknown(u8),
}

impl From<u8> for Message {
    fn from(value: u8) -> Self {
        match value {
            0 => Self::EchoReply,
            3 => Self::DstUnreachable,
            8 => Self::EchoRequest,
            11 => Self::TimeExceeded,
            other => Self::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(value: Message) -> Self {
        match value {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::EchoRequest => 8,
            Message::TimeExceeded => 11,
            Message::Unknown(other) => other,
        }
    }
}

/// The part of an offending datagram an error message quotes: its header
/// (options included) and the first [`QUOTED_PAYLOAD_LEN`] bytes after it,
/// or less when the datagram is shorter. Never panics: a datagram whose IHL
/// is nonsense is quoted up to its first 28 bytes.
pub fn quote(datagram: &[u8]) -> &[u8] {
    let header_len = datagram
        .first()
        .map_or(0, |b| usize::from(b & 0x0f) * 4)
        .max(super::ipv4::HEADER_LEN);
    &datagram[..datagram.len().min(header_len + QUOTED_PAYLOAD_LEN)]
}

/// A read (and, over a mutable buffer, write) view of an ICMP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it (for emitting into a buffer of
    /// [`Repr::buffer_len`] bytes).
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
    /// [`Error::Truncated`] under [`HEADER_LEN`] bytes.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The type.
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The code (its meaning depends on the type).
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field as received.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The identifier of an echo request or reply.
    pub fn echo_ident(&self) -> u16 {
        self.u16_at(field::ECHO_IDENT)
    }

    /// The sequence number of an echo request or reply.
    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(field::ECHO_SEQNO)
    }

    /// Everything after the 8-byte header: the echoed data, or the quoted
    /// datagram of an error message.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the checksum over the whole message is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::internet(self.buffer.as_ref()) == 0
    }
}

impl<'a> Packet<&'a [u8]> {
    /// [`Packet::data`], borrowed for as long as the buffer.
    pub fn data_ref(&self) -> &'a [u8] {
        &self.buffer[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, at: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the type.
    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Sets the code.
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field as is (see [`Packet::fill_checksum`]).
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_SEQNO, value);
    }

    /// The bytes after the header, to write.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Computes and writes the checksum over the whole buffer: call it after
    /// the last change, data included.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::internet(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// A validated ICMP message of a type the stack handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Type 8, code 0: a ping.
    EchoRequest {
        /// Identifier (the pinging process's choice).
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data to echo back unchanged.
        data: &'a [u8],
    },
    /// Type 0, code 0: the answer to a ping.
    EchoReply {
        /// The request's identifier.
        ident: u16,
        /// The request's sequence number.
        seq_no: u16,
        /// The request's data.
        data: &'a [u8],
    },
    /// Type 3.
    DstUnreachable {
        /// Why ([`PORT_UNREACHABLE`], [`PROTOCOL_UNREACHABLE`], …).
        code: u8,
        /// The offending datagram's IP header and first 8 payload bytes
        /// (see [`quote`]); not validated when parsed.
        original: &'a [u8],
    },
    /// Type 11.
    TimeExceeded {
        /// [`TTL_EXCEEDED`] or [`REASSEMBLY_TIME_EXCEEDED`].
        code: u8,
        /// As in [`Repr::DstUnreachable`]; for a reassembly timeout, the
        /// first fragment's header and first 8 bytes (RFC 792).
        original: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Validates a message: length, checksum and type. An echo's code is
    /// not checked (RFC 1122 3.2.2 has a receiver ignore what it does not
    /// need), nor the unused word of an error message.
    ///
    /// # Errors
    /// [`Error::Truncated`] under 8 bytes, [`Error::Checksum`], then
    /// [`Error::Unsupported`] for any type but 0, 3, 8 and 11.
    pub fn parse(packet: &Packet<&'a [u8]>) -> Result<Self, Error> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let data = packet.data_ref();
        match packet.msg_type() {
            Message::EchoRequest => Ok(Self::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Message::EchoReply => Ok(Self::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Message::DstUnreachable => Ok(Self::DstUnreachable {
                code: packet.code(),
                original: data,
            }),
            Message::TimeExceeded => Ok(Self::TimeExceeded {
                code: packet.code(),
                original: data,
            }),
            Message::Unknown(_) => Err(Error::Unsupported),
        }
    }

    /// The message's length: header and data (or quoted datagram).
    pub const fn buffer_len(&self) -> usize {
        match self {
            Self::EchoRequest { data, .. } | Self::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Self::DstUnreachable { original, .. } | Self::TimeExceeded { original, .. } => {
                HEADER_LEN + original.len()
            }
        }
    }

    /// Writes the whole message, data copied in, and fills the checksum
    /// (over the whole buffer: give it exactly [`Repr::buffer_len`] bytes).
    ///
    /// # Panics
    /// If the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let (message, code, rest, data) = match *self {
            Self::EchoRequest {
                ident,
                seq_no,
                data,
            } => (Message::EchoRequest, 0, (ident, seq_no), data),
            Self::EchoReply {
                ident,
                seq_no,
                data,
            } => (Message::EchoReply, 0, (ident, seq_no), data),
            Self::DstUnreachable { code, original } => {
                (Message::DstUnreachable, code, (0, 0), original)
            }
            Self::TimeExceeded { code, original } => {
                (Message::TimeExceeded, code, (0, 0), original)
            }
        };
        packet.set_msg_type(message);
        packet.set_code(code);
        packet.set_u16_at(field::ECHO_IDENT, rest.0);
        packet.set_u16_at(field::ECHO_SEQNO, rest.1);
        debug_assert_eq!(
            field::UNUSED,
            field::ECHO_IDENT.start..field::ECHO_SEQNO.end
        );
        packet.data_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EchoRequest {
                ident,
                seq_no,
                data,
            } => write!(
                f,
                "ICMP echo request id {ident} seq {seq_no} len {}",
                data.len()
            ),
            Self::EchoReply {
                ident,
                seq_no,
                data,
            } => write!(
                f,
                "ICMP echo reply id {ident} seq {seq_no} len {}",
                data.len()
            ),
            Self::DstUnreachable { code, original } => write!(
                f,
                "ICMP unreachable code {code} quoting {} bytes",
                original.len()
            ),
            Self::TimeExceeded { code, original } => write!(
                f,
                "ICMP time exceeded code {code} quoting {} bytes",
                original.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{captures, ipv4};
    use proptest::prelude::*;

    /// The ICMP bytes of a captured, unfragmented datagram.
    fn icmp_of(hex: &str) -> Vec<u8> {
        let ip = captures::bytes(hex);
        ipv4::Packet::new_checked(&ip[..])
            .unwrap()
            .payload()
            .to_vec()
    }

    #[test]
    fn captured_echo_request() {
        let bytes = icmp_of(captures::PING_REQUEST);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.code(), p.checksum()),
            (Message::EchoRequest, 0, 0xab28)
        );
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (8312, 1));
        assert!(p.verify_checksum());
        let Ok(Repr::EchoRequest {
            ident,
            seq_no,
            data,
        }) = Repr::parse(&p)
        else {
            panic!("not an echo request");
        };
        // iputils puts a timestamp in the first 16 bytes, then 0x10, 0x11, …
        assert_eq!((ident, seq_no, data.len()), (8312, 1, 56));
        assert_eq!(&data[16..20], &[0x10, 0x11, 0x12, 0x13]);
    }

    /// Answering the captured request reproduces the kernel's reply.
    #[test]
    fn echo_reply_matches_the_kernels() {
        let request = icmp_of(captures::PING_REQUEST);
        let reply = icmp_of(captures::PING_REPLY);
        let Ok(Repr::EchoRequest {
            ident,
            seq_no,
            data,
        }) = Repr::parse(&Packet::new_checked(&request[..]).unwrap())
        else {
            panic!("not an echo request");
        };
        let answer = Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let mut out = vec![0u8; answer.buffer_len()];
        answer.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, reply);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&reply[..]).unwrap()),
            Ok(answer)
        );
    }

    /// The three captured fragments' payloads, laid end to end at their
    /// offsets, are one valid 4008-byte echo request.
    #[test]
    fn captured_fragments_reassemble_into_an_echo_request() {
        let mut whole = vec![0u8; 4008];
        for hex in [
            captures::FRAG_REQUEST_3,
            captures::FRAG_REQUEST_1,
            captures::FRAG_REQUEST_2,
        ] {
            let ip = captures::bytes(hex);
            let p = ipv4::Packet::new_checked(&ip[..]).unwrap();
            let at = usize::from(p.frag_offset());
            whole[at..at + p.payload().len()].copy_from_slice(p.payload());
        }
        let p = Packet::new_checked(&whole[..]).unwrap();
        assert!(p.verify_checksum());
        let Ok(Repr::EchoRequest {
            ident,
            seq_no,
            data,
        }) = Repr::parse(&p)
        else {
            panic!("not an echo request");
        };
        assert_eq!((ident, seq_no, data.len()), (8314, 1, 4000));
        // A fragment alone is not a whole message: its checksum fails.
        let first = captures::bytes(captures::FRAG_REQUEST_1);
        let first = ipv4::Packet::new_checked(&first[..]).unwrap();
        assert_eq!(
            Repr::parse(&Packet::new_checked(first.payload()).unwrap()),
            Err(Error::Checksum)
        );
    }

    #[test]
    fn captured_port_unreachable() {
        let bytes = icmp_of(captures::PORT_UNREACHABLE);
        let offending = captures::bytes(captures::UDP_TO_CLOSED_PORT);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let repr = Repr::parse(&p).unwrap();
        // Linux quotes the whole (short) datagram, not only header + 8.
        assert_eq!(
            repr,
            Repr::DstUnreachable {
                code: PORT_UNREACHABLE,
                original: &offending[..],
            }
        );
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes);
        assert_eq!(repr.to_string(), "ICMP unreachable code 3 quoting 42 bytes");
    }

    #[test]
    fn quote_takes_the_header_and_eight_bytes() {
        let datagram = captures::bytes(captures::UDP_TO_CLOSED_PORT);
        assert_eq!(quote(&datagram), &datagram[..28]);
        assert_eq!(quote(&datagram[..25]), &datagram[..25]);
        assert_eq!(quote(&[]), &[] as &[u8]);
        // An IHL of 15 quotes 60 + 8 bytes; an IHL below 5 counts as 5.
        let mut long = vec![0x4fu8; 100];
        assert_eq!(quote(&long).len(), 68);
        long[0] = 0x41;
        assert_eq!(quote(&long).len(), 28);
    }

    #[test]
    fn errors() {
        let good = icmp_of(captures::PING_REQUEST);
        assert_eq!(
            Packet::new_checked(&good[..7]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&good[..7])),
            Err(Error::Truncated)
        );
        let mut bad = good.clone();
        bad[20] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad[..]).unwrap()),
            Err(Error::Checksum)
        );
        // A timestamp request (type 13) with a right checksum.
        let mut ts = good.clone();
        let mut p = Packet::new_unchecked(&mut ts[..]);
        p.set_msg_type(Message::from(13));
        p.fill_checksum();
        let p = Packet::new_checked(&ts[..]).unwrap();
        assert_eq!(p.msg_type(), Message::Unknown(13));
        assert_eq!(Repr::parse(&p), Err(Error::Unsupported));
    }

    #[test]
    fn message_numbers_round_trip() {
        for n in 0..=u8::MAX {
            assert_eq!(u8::from(Message::from(n)), n);
        }
    }

    fn any_repr(data: &[u8]) -> impl Strategy<Value = Repr<'_>> {
        (
            0u8..4,
            any::<u16>(),
            any::<u16>(),
            any::<u8>(),
            0..=data.len(),
        )
            .prop_map(move |(kind, ident, seq_no, code, len)| {
                let data = &data[..len];
                match kind {
                    0 => Repr::EchoRequest {
                        ident,
                        seq_no,
                        data,
                    },
                    1 => Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    },
                    2 => Repr::DstUnreachable {
                        code,
                        original: data,
                    },
                    _ => Repr::TimeExceeded {
                        code,
                        original: data,
                    },
                }
            })
    }

    /// Data for the round trips: any bytes do, these are not all equal.
    static DATA: [u8; 300] = {
        let mut d = [0u8; 300];
        let mut i = 0;
        let mut v: u8 = 0;
        while i < d.len() {
            d[i] = v;
            v = v.wrapping_mul(5).wrapping_add(7);
            i += 1;
        }
        d
    };

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100), fix: bool) {
            let mut bytes = bytes;
            if fix && bytes.len() >= HEADER_LEN {
                // A right checksum half of the time, to reach the type match.
                Packet::new_unchecked(&mut bytes[..]).fill_checksum();
            }
            let parsed = Repr::parse(&Packet::new_unchecked(&bytes[..]));
            if let Ok(repr) = parsed {
                let _ = repr.to_string();
                prop_assert_eq!(repr.buffer_len(), bytes.len());
                let mut out = vec![0u8; repr.buffer_len()];
                repr.emit(&mut Packet::new_unchecked(&mut out[..]));
                // Error messages' unused word is not kept: compare what is.
                prop_assert_eq!(Repr::parse(&Packet::new_checked(&out[..]).unwrap()), Ok(repr));
            }
            let _ = quote(&bytes);
        }

        #[test]
        fn emit_then_parse(repr in any_repr(&DATA)) {
            let mut buf = vec![0xa5; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
        }
    }
}
