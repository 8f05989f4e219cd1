//! The classic stop-and-wait datagram: type, alternating bit, 5-digit block,
//! message.
//!
//! Owns the byte format of the seed's protocol (spec section "stopwait"),
//! byte-compatible with its original peers:
//!
//! ```text
//! offset 0   1 byte   type: 'G' GET, 'P' PUT, 'A' ACK, 'D' DTA, 'F' FIN, 'E' ERR
//! offset 1   1 byte   '0' / '1', or 'F' on FIN and its ACK
//! offset 2   5 bytes  block number, zero-padded ASCII ("00001")
//! offset 7   0..=100  file name (G, P), data (D), "ack" (A), text (E, F)
//! ```
//!
//! ```
//! use mioperf::wire::stopwait::{Bit, Kind, Packet};
//! let p = Packet::parse(b"G000000notes.txt").unwrap();
//! assert_eq!((p.kind, p.bit, p.block, p.message), (Kind::Get, Bit::Zero, 0, &b"notes.txt"[..]));
//! ```

use super::Error;
use bytes::BytesMut;
use core::fmt;

/// Bytes before the message.
pub const HEADER_LEN: usize = 7;
/// Longest message (and so the data in one block).
pub const MAX_MESSAGE: usize = 100;
/// Highest block number: five digits.
pub const MAX_BLOCK: u32 = 99_999;

/// The packet type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `G`: read a file.
    Get,
    /// `P`: write a file.
    Put,
    /// `A`: acknowledgement.
    Ack,
    /// `D`: a block of data.
    Data,
    /// `F`: the end of a transfer.
    Fin,
    /// `E`: an error; the message says which.
    Error,
}

impl Kind {
    const fn byte(self) -> u8 {
        match self {
            Self::Get => b'G',
            Self::Put => b'P',
            Self::Ack => b'A',
            Self::Data => b'D',
            Self::Fin => b'F',
            Self::Error => b'E',
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'G' => Self::Get,
            b'P' => Self::Put,
            b'A' => Self::Ack,
            b'D' => Self::Data,
            b'F' => Self::Fin,
            b'E' => Self::Error,
            _ => return None,
        })
    }
}

/// The second byte: the alternating bit, or `F` around the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bit {
    /// `'0'`.
    Zero,
    /// `'1'`.
    One,
    /// `'F'`: on a FIN and its ACK.
    Fin,
}

impl Bit {
    /// The bit of block `n`: blocks alternate 1, 0, 1, … from block 1.
    pub const fn of_block(n: u32) -> Self {
        if n % 2 == 1 { Self::One } else { Self::Zero }
    }

    const fn byte(self) -> u8 {
        match self {
            Self::Zero => b'0',
            Self::One => b'1',
            Self::Fin => b'F',
        }
    }
}

/// One datagram, borrowing its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Its type.
    pub kind: Kind,
    /// Its bit.
    pub bit: Bit,
    /// Its block number, 0..=99999.
    pub block: u32,
    /// What follows the header.
    pub message: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Parses one datagram.
    ///
    /// # Errors
    /// [`Error::Truncated`] below 7 bytes, [`Error::UnknownVerb`] for an
    /// unknown type or bit byte, [`Error::BadNumber`] for a block that is not
    /// 5 digits, [`Error::TooLong`] for a message over 100 bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let (kind, bit, block) = Self::parse_header(bytes)?;
        let message = &bytes[HEADER_LEN..];
        if message.len() > MAX_MESSAGE {
            return Err(Error::TooLong {
                max: HEADER_LEN + MAX_MESSAGE,
            });
        }
        Ok(Self {
            kind,
            bit,
            block,
            message,
        })
    }

    /// Parses only the 7-byte header, whatever follows it: a server uses it
    /// to tell a request whose name is too long (which deserves an answer)
    /// from noise (which does not).
    ///
    /// ```
    /// use mioperf::wire::stopwait::{Bit, Kind, Packet};
    /// let long = [&b"G000000"[..], &[b'x'; 200]].concat();
    /// assert!(Packet::parse(&long).is_err());
    /// assert_eq!(Packet::parse_header(&long), Ok((Kind::Get, Bit::Zero, 0)));
    /// ```
    ///
    /// # Errors
    /// As [`parse`](Self::parse), except that a long message is no error.
    pub fn parse_header(bytes: &[u8]) -> Result<(Kind, Bit, u32), Error> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let kind = Kind::from_byte(bytes[0]).ok_or(Error::UnknownVerb)?;
        let bit = match bytes[1] {
            b'0' => Bit::Zero,
            b'1' => Bit::One,
            b'F' => Bit::Fin,
            _ => return Err(Error::UnknownVerb),
        };
        let digits = &bytes[2..HEADER_LEN];
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(Error::BadNumber);
        }
        let block = digits
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
        Ok((kind, bit, block))
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.message.len()
    }

    /// Appends the datagram. A block above 99 999 is written modulo 100 000
    /// and a message is cut at 100 bytes: callers never produce either.
    pub fn emit(&self, dst: &mut BytesMut) {
        dst.extend_from_slice(&[self.kind.byte(), self.bit.byte()]);
        let mut digits = [b'0'; 5];
        let mut n = self.block % (MAX_BLOCK + 1);
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        dst.extend_from_slice(&digits);
        dst.extend_from_slice(&self.message[..self.message.len().min(MAX_MESSAGE)]);
    }
}

impl fmt::Display for Packet<'_> {
    /// `D|1|00001|100 bytes`, as the spec draws flows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = BytesMut::new();
        self.emit(&mut b);
        let head = String::from_utf8_lossy(&b[..2]);
        let (t, bit) = head.split_at(1);
        match self.kind {
            Kind::Data => write!(
                f,
                "{t}|{bit}|{:05}|{} bytes",
                self.block,
                self.message.len()
            ),
            _ => write!(
                f,
                "{t}|{bit}|{:05}|{}",
                self.block,
                String::from_utf8_lossy(self.message)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn emitted(p: &Packet<'_>) -> Vec<u8> {
        let mut b = BytesMut::new();
        p.emit(&mut b);
        assert_eq!(b.len(), p.buffer_len());
        b.to_vec()
    }

    // Fixtures from the spec's flows (`|` only marks field boundaries there).
    #[test]
    fn spec_get_flow() {
        let get = Packet {
            kind: Kind::Get,
            bit: Bit::Zero,
            block: 0,
            message: b"notes.txt",
        };
        assert_eq!(emitted(&get), b"G000000notes.txt");
        let data = Packet {
            kind: Kind::Data,
            bit: Bit::One,
            block: 1,
            message: b"first",
        };
        assert_eq!(emitted(&data), b"D100001first");
        let ack = Packet {
            kind: Kind::Ack,
            bit: Bit::One,
            block: 1,
            message: b"ack",
        };
        assert_eq!(emitted(&ack), b"A100001ack");
        let fin = Packet {
            kind: Kind::Fin,
            bit: Bit::Fin,
            block: 0,
            message: b"I'm Done",
        };
        assert_eq!(emitted(&fin), b"FF00000I'm Done");
        for bytes in [
            &b"G000000notes.txt"[..],
            b"D100001first",
            b"A100001ack",
            b"FF00000I'm Done",
        ] {
            assert_eq!(emitted(&Packet::parse(bytes).unwrap()), bytes);
        }
    }

    #[test]
    fn spec_put_flow() {
        assert_eq!(
            Packet::parse(b"P000000up.bin").unwrap(),
            Packet {
                kind: Kind::Put,
                bit: Bit::Zero,
                block: 0,
                message: b"up.bin"
            }
        );
        assert_eq!(
            Packet::parse(b"AF00042ack").unwrap(),
            Packet {
                kind: Kind::Ack,
                bit: Bit::Fin,
                block: 42,
                message: b"ack"
            }
        );
        assert_eq!(
            Packet::parse(b"E000000file not found").unwrap().kind,
            Kind::Error
        );
    }

    #[test]
    fn bits_alternate_from_block_one() {
        assert_eq!(Bit::of_block(1), Bit::One);
        assert_eq!(Bit::of_block(2), Bit::Zero);
        assert_eq!(Bit::of_block(99_999), Bit::One);
    }

    #[test]
    fn rejects() {
        assert_eq!(Packet::parse(b"D10000"), Err(Error::Truncated));
        assert_eq!(Packet::parse(b"X100001"), Err(Error::UnknownVerb));
        assert_eq!(Packet::parse(b"D200001"), Err(Error::UnknownVerb));
        assert_eq!(Packet::parse(b"D1000a1"), Err(Error::BadNumber));
        assert_eq!(Packet::parse(b"D1-0001"), Err(Error::BadNumber));
        let mut long = b"D100001".to_vec();
        long.extend_from_slice(&[b'x'; 101]);
        assert_eq!(Packet::parse(&long), Err(Error::TooLong { max: 107 }));
        assert_eq!(
            Packet::parse_header(&long),
            Ok((Kind::Data, Bit::One, 1)),
            "the header alone still parses"
        );
        assert_eq!(Packet::parse_header(b"X100001"), Err(Error::UnknownVerb));
        long.pop();
        assert_eq!(Packet::parse(&long).unwrap().message.len(), 100);
        assert_eq!(
            Packet::parse(b"D100000").unwrap().message,
            b"",
            "an empty DTA is valid"
        );
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Packet::parse(&bytes);
        }

        #[test]
        fn round_trip(kind in 0usize..6, bit in 0usize..3, block in 0u32..=99_999, message in proptest::collection::vec(any::<u8>(), 0..=100)) {
            let kinds = [Kind::Get, Kind::Put, Kind::Ack, Kind::Data, Kind::Fin, Kind::Error];
            let bits = [Bit::Zero, Bit::One, Bit::Fin];
            let p = Packet { kind: kinds[kind], bit: bits[bit], block, message: &message };
            let bytes = emitted(&p);
            prop_assert_eq!(Packet::parse(&bytes), Ok(p));
        }
    }
}
