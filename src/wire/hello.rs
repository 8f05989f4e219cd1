//! The hello connection-ID protocol: `HELLO <id>` → `OK` / `RESET` / `ERROR`.
//!
//! Owns the byte format of requests and answers (spec section "hello"). It
//! never decides anything: whether an ID is taken is the registry's business
//! (`proto::hello`). Lines arrive here already framed (no `\n`); answers are
//! emitted without a terminator, because UDP sends none and TCP adds `\n`.
//!
//! ```
//! use mioperf::wire::hello::{HelloId, Request, Response};
//! let req = Request::parse(b"HELLO 0042").unwrap();
//! assert_eq!(req.id.value(), 42);
//! let mut out = bytes::BytesMut::new();
//! Response::Reset { id: req.id }.emit(&mut out);
//! assert_eq!(&out[..], b"RESET 0042");
//! ```

use super::Error;
use bytes::BytesMut;
use core::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

/// Longest request, terminator included (see `wire::line` for why).
pub const MAX_REQUEST: usize = 256;
/// IDs are 1 to 4 decimal digits, so there are exactly this many.
pub const ID_SPACE: usize = 10_000;
const MAX_ID_DIGITS: usize = 4;

/// A connection ID as the client wrote it (`0042`) and as the number it
/// stands for (42). Equality is numeric: `0042` and `42` are the same ID.
#[derive(Clone, Copy, Debug)]
pub struct HelloId {
    value: u16,
    text: [u8; MAX_ID_DIGITS],
    len: u8,
}

impl HelloId {
    /// Parses 1 to 4 ASCII decimal digits, nothing else.
    ///
    /// # Errors
    /// [`Error::BadNumber`] for an empty field, a sign, a space, a fifth
    /// digit or any other byte.
    pub fn parse(digits: &[u8]) -> Result<Self, Error> {
        if digits.is_empty() || digits.len() > MAX_ID_DIGITS {
            return Err(Error::BadNumber);
        }
        let len = u8::try_from(digits.len()).map_err(|_| Error::BadNumber)?;
        let mut value: u16 = 0;
        let mut text = [0u8; MAX_ID_DIGITS];
        for (slot, &b) in text.iter_mut().zip(digits) {
            if !b.is_ascii_digit() {
                return Err(Error::BadNumber);
            }
            // Four digits cannot overflow u16 (9999 < 65535).
            value = value * 10 + u16::from(b - b'0');
            *slot = b;
        }
        Ok(Self { value, text, len })
    }

    /// The ID from its numeric value, written without leading zeros.
    ///
    /// # Errors
    /// [`Error::BadNumber`] above 9999.
    pub fn from_value(value: u16) -> Result<Self, Error> {
        let mut buf = [0u8; MAX_ID_DIGITS];
        let mut n = value;
        let mut i = MAX_ID_DIGITS;
        loop {
            if i == 0 {
                return Err(Error::BadNumber);
            }
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Self::parse(&buf[i..])
    }

    /// The number the ID stands for, `0..=9999`.
    pub const fn value(&self) -> u16 {
        self.value
    }

    /// The digits exactly as the client wrote them.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        core::str::from_utf8(&self.text[..usize::from(self.len)]).unwrap_or("?")
    }
}

impl PartialEq for HelloId {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for HelloId {}

impl fmt::Display for HelloId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `HELLO <id>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The ID the client asks to register.
    pub id: HelloId,
}

impl Request {
    /// Parses one request line (no terminator).
    ///
    /// # Errors
    /// [`Error::TooLong`] above [`MAX_REQUEST`], [`Error::UnknownVerb`] when
    /// the line does not start with `HELLO `, [`Error::BadNumber`] when the
    /// rest is not 1 to 4 digits.
    pub fn parse(line: &[u8]) -> Result<Self, Error> {
        if line.len() >= MAX_REQUEST {
            return Err(Error::TooLong { max: MAX_REQUEST });
        }
        let digits = match line.strip_prefix(b"HELLO") {
            Some(rest) => match rest.strip_prefix(b" ") {
                Some(digits) => digits,
                None if rest.is_empty() => return Err(Error::BadNumber),
                None => return Err(Error::UnknownVerb),
            },
            None => return Err(Error::UnknownVerb),
        };
        Ok(Self {
            id: HelloId::parse(digits)?,
        })
    }

    /// Appends `HELLO <id>` (no terminator).
    pub fn emit(&self, dst: &mut BytesMut) {
        dst.extend_from_slice(b"HELLO ");
        dst.extend_from_slice(self.id.as_str().as_bytes());
    }
}

/// Why the server refuses a request with `ERROR <reason>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The line is not a `HELLO` request.
    UnknownVerb,
    /// The ID is not 1 to 4 decimal digits.
    BadId,
    /// The request is longer than [`MAX_REQUEST`].
    TooLong,
    /// The registry holds `max_ids` IDs already.
    Busy,
}

impl Refusal {
    /// The reason text that follows `ERROR `.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownVerb => "unknown verb",
            Self::BadId => "bad id",
            Self::TooLong => "line too long",
            Self::Busy => "busy",
        }
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        match e {
            Error::TooLong { .. } => Self::TooLong,
            Error::BadNumber => Self::BadId,
            Error::UnknownVerb | Error::Truncated => Self::UnknownVerb,
        }
    }
}

/// The server's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// `OK <id> <client_ip> <client_port>`: the ID is now registered to the
    /// address the server saw.
    Ok {
        /// The registered ID, as the client wrote it.
        id: HelloId,
        /// Where the request came from.
        peer: SocketAddr,
    },
    /// `RESET <id>`: the ID is taken.
    Reset {
        /// The ID, as the client wrote it.
        id: HelloId,
    },
    /// `ERROR <reason>`.
    Error {
        /// Free text; the server sends a [`Refusal::as_str`].
        reason: &'a str,
    },
}

impl<'a> Response<'a> {
    /// Parses one answer line (no terminator), as a client sees it.
    ///
    /// # Errors
    /// [`Error::TooLong`] above [`MAX_REQUEST`], [`Error::UnknownVerb`] for
    /// another first word, [`Error::BadNumber`] or [`Error::Truncated`] for
    /// malformed fields.
    pub fn parse(line: &'a [u8]) -> Result<Self, Error> {
        if line.len() >= MAX_REQUEST {
            return Err(Error::TooLong { max: MAX_REQUEST });
        }
        // Bytes, not `str`: a load generator checks every answer, and
        // `str` validation and splitting were a third of its user time.
        // A space byte never occurs inside a UTF-8 sequence, so splitting
        // the bytes splits the text the same way.
        if !line.is_ascii() && core::str::from_utf8(line).is_err() {
            return Err(Error::UnknownVerb);
        }
        let space = line
            .iter()
            .position(|&b| b == b' ')
            .ok_or(Error::Truncated)?;
        let (verb, rest) = (&line[..space], &line[space + 1..]);
        match verb {
            b"OK" => {
                let mut fields = rest.split(|&b| b == b' ');
                let (Some(id), Some(ip), Some(port), None) =
                    (fields.next(), fields.next(), fields.next(), fields.next())
                else {
                    return Err(Error::Truncated);
                };
                let id = HelloId::parse(id)?;
                let ip: IpAddr = core::str::from_utf8(ip)
                    .ok()
                    .and_then(|ip| ip.parse().ok())
                    .ok_or(Error::BadNumber)?;
                Ok(Self::Ok {
                    id,
                    peer: SocketAddr::new(ip, port_number(port)?),
                })
            }
            b"RESET" => Ok(Self::Reset {
                id: HelloId::parse(rest)?,
            }),
            b"ERROR" => Ok(Self::Error {
                reason: core::str::from_utf8(rest).map_err(|_| Error::UnknownVerb)?,
            }),
            _ => Err(Error::UnknownVerb),
        }
    }

    /// Appends the answer (no terminator).
    pub fn emit(&self, dst: &mut BytesMut) {
        // The answers are appended byte by byte rather than through
        // `core::fmt`: on the UDP hot path formatting was a fifth of the
        // server's user time.
        match self {
            Self::Ok { id, peer } => {
                dst.extend_from_slice(b"OK ");
                dst.extend_from_slice(id.as_str().as_bytes());
                dst.extend_from_slice(b" ");
                match peer.ip() {
                    IpAddr::V4(v4) => {
                        for (i, octet) in v4.octets().into_iter().enumerate() {
                            if i > 0 {
                                dst.extend_from_slice(b".");
                            }
                            push_decimal(dst, u64::from(octet));
                        }
                    }
                    // Rare, and its text form has rules (zero runs): let std do it.
                    IpAddr::V6(v6) => {
                        let _ = write!(dst, "{v6}");
                    }
                }
                dst.extend_from_slice(b" ");
                push_decimal(dst, u64::from(peer.port()));
            }
            Self::Reset { id } => {
                dst.extend_from_slice(b"RESET ");
                dst.extend_from_slice(id.as_str().as_bytes());
            }
            Self::Error { reason } => {
                dst.extend_from_slice(b"ERROR ");
                dst.extend_from_slice(reason.as_bytes());
            }
        }
    }
}

/// Appends `n` in decimal.
fn push_decimal(dst: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[i..]);
}

impl fmt::Display for Response<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = BytesMut::new();
        self.emit(&mut buf);
        f.write_str(&String::from_utf8_lossy(&buf))
    }
}

/// A port as a plain unsigned decimal (no sign, no spaces, not empty;
/// leading zeros allowed, as `u16::from_str` allows them).
fn port_number(digits: &[u8]) -> Result<u16, Error> {
    if digits.is_empty() {
        return Err(Error::BadNumber);
    }
    digits.iter().try_fold(0u16, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(Error::BadNumber);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u16::from(b - b'0')))
            .ok_or(Error::BadNumber)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The answer parser as it was written over `str` (before the byte
    /// parser replaced it for speed): the reference the byte parser must
    /// agree with on every input.
    fn parse_as_text(line: &[u8]) -> Result<Response<'_>, Error> {
        fn decimal<T: core::str::FromStr>(s: &str) -> Result<T, Error> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::BadNumber);
            }
            s.parse().map_err(|_| Error::BadNumber)
        }
        if line.len() >= MAX_REQUEST {
            return Err(Error::TooLong { max: MAX_REQUEST });
        }
        let text = core::str::from_utf8(line).map_err(|_| Error::UnknownVerb)?;
        let (verb, rest) = text.split_once(' ').ok_or(Error::Truncated)?;
        match verb {
            "OK" => {
                let mut fields = rest.split(' ');
                let (Some(id), Some(ip), Some(port), None) =
                    (fields.next(), fields.next(), fields.next(), fields.next())
                else {
                    return Err(Error::Truncated);
                };
                let id = HelloId::parse(id.as_bytes())?;
                let ip: IpAddr = ip.parse().map_err(|_| Error::BadNumber)?;
                let port: u16 = decimal(port)?;
                Ok(Response::Ok {
                    id,
                    peer: SocketAddr::new(ip, port),
                })
            }
            "RESET" => Ok(Response::Reset {
                id: HelloId::parse(rest.as_bytes())?,
            }),
            "ERROR" => Ok(Response::Error { reason: rest }),
            _ => Err(Error::UnknownVerb),
        }
    }

    fn emitted(r: &Response<'_>) -> Vec<u8> {
        let mut b = BytesMut::new();
        r.emit(&mut b);
        b.to_vec()
    }

    // Fixtures transcribed from shared/spec/protocols.md, section "hello".
    #[test]
    fn spec_example_ok() {
        let id = HelloId::parse(b"9876").unwrap();
        let peer: SocketAddr = "192.168.0.10:12345".parse().unwrap();
        assert_eq!(
            emitted(&Response::Ok { id, peer }),
            b"OK 9876 192.168.0.10 12345"
        );
        assert_eq!(
            Response::parse(b"OK 9876 192.168.0.10 12345"),
            Ok(Response::Ok { id, peer })
        );
    }

    #[test]
    fn ids_compare_as_numbers_and_echo_as_written() {
        let a = HelloId::parse(b"0042").unwrap();
        let b = HelloId::parse(b"42").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.value(), 42);
        assert_eq!(a.as_str(), "0042");
        assert_eq!(emitted(&Response::Reset { id: a }), b"RESET 0042");
    }

    #[test]
    fn request_forms() {
        assert_eq!(Request::parse(b"HELLO 7").unwrap().id.value(), 7);
        assert_eq!(Request::parse(b"HELLO 9999").unwrap().id.value(), 9999);
        assert_eq!(Request::parse(b"HELLO 0000").unwrap().id.value(), 0);
        let mut out = BytesMut::new();
        Request::parse(b"HELLO 0042").unwrap().emit(&mut out);
        assert_eq!(&out[..], b"HELLO 0042");
    }

    #[test]
    fn request_rejects() {
        assert_eq!(Request::parse(b"HELLO"), Err(Error::BadNumber));
        assert_eq!(Request::parse(b"HELLO "), Err(Error::BadNumber));
        assert_eq!(Request::parse(b"HELLO 12345"), Err(Error::BadNumber));
        assert_eq!(Request::parse(b"HELLO -1"), Err(Error::BadNumber));
        assert_eq!(Request::parse(b"HELLO +1"), Err(Error::BadNumber));
        assert_eq!(Request::parse(b"HELLO 1 "), Err(Error::BadNumber));
        assert_eq!(Request::parse(b"HELLO  1"), Err(Error::BadNumber));
        assert_eq!(Request::parse(b"HELLOX 1"), Err(Error::UnknownVerb));
        assert_eq!(Request::parse(b"hello 1"), Err(Error::UnknownVerb));
        assert_eq!(Request::parse(b""), Err(Error::UnknownVerb));
        assert_eq!(Request::parse(b"\x00\xff"), Err(Error::UnknownVerb));
        assert_eq!(
            Request::parse(&[b'A'; MAX_REQUEST]),
            Err(Error::TooLong { max: MAX_REQUEST })
        );
    }

    #[test]
    fn refusal_texts() {
        assert_eq!(Refusal::from(Error::BadNumber).as_str(), "bad id");
        assert_eq!(Refusal::from(Error::UnknownVerb).as_str(), "unknown verb");
        assert_eq!(
            Refusal::from(Error::TooLong { max: 1 }).as_str(),
            "line too long"
        );
        let r = Response::Error {
            reason: Refusal::Busy.as_str(),
        };
        assert_eq!(emitted(&r), b"ERROR busy");
        assert_eq!(Response::parse(b"ERROR busy"), Ok(r));
    }

    #[test]
    fn response_rejects() {
        assert_eq!(Response::parse(b"OK 1 1.2.3.4"), Err(Error::Truncated));
        assert_eq!(Response::parse(b"OK 1 1.2.3.4 5 6"), Err(Error::Truncated));
        assert_eq!(Response::parse(b"OK 1 nowhere 5"), Err(Error::BadNumber));
        assert_eq!(Response::parse(b"OK 1 1.2.3.4 +5"), Err(Error::BadNumber));
        assert_eq!(
            Response::parse(b"OK 1 1.2.3.4 70000"),
            Err(Error::BadNumber)
        );
        assert_eq!(Response::parse(b"NOPE 1"), Err(Error::UnknownVerb));
        assert_eq!(Response::parse(b"RESET"), Err(Error::Truncated));
        assert_eq!(Response::parse(b"OK 1 1.2.3.4 "), Err(Error::BadNumber));
        assert_eq!(
            Response::parse(b"OK 1 1.2.3.\xe9 5"),
            Err(Error::UnknownVerb)
        );
        assert_eq!(
            Response::parse(b"OK 1 1.2.3.4 00080"),
            Ok(Response::Ok {
                id: HelloId::from_value(1).unwrap(),
                peer: "1.2.3.4:80".parse().unwrap()
            }),
            "leading zeros, as u16::from_str takes them"
        );
    }

    #[test]
    fn ipv6_peer_round_trips() {
        let id = HelloId::from_value(5).unwrap();
        let peer: SocketAddr = "[::1]:4000".parse().unwrap();
        let bytes = emitted(&Response::Ok { id, peer });
        assert_eq!(bytes, b"OK 5 ::1 4000");
        assert_eq!(Response::parse(&bytes), Ok(Response::Ok { id, peer }));
    }

    #[test]
    fn from_value_bounds() {
        assert_eq!(HelloId::from_value(0).unwrap().as_str(), "0");
        assert_eq!(HelloId::from_value(9999).unwrap().as_str(), "9999");
        assert!(HelloId::from_value(10_000).is_err());
    }

    proptest! {
        #[test]
        fn no_input_panics_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::parse(&bytes);
            let _ = Response::parse(&bytes);
            let _ = HelloId::parse(&bytes);
        }

        /// Answer-shaped text (verbs, digits, dots, colons, spaces, a
        /// non-ASCII letter) and arbitrary bytes parse exactly as the
        /// `str` parser parsed them.
        #[test]
        fn the_byte_parser_agrees_with_the_text_parser(
            shaped in "(OK|RESET|ERROR|NOPE|ok)?( |  )?[0-9a-f.:é ]{0,40}( [0-9+]{0,7})?",
            ok_like in "OK [0-9]{0,5} [0-9]{1,3}(\\.[0-9]{1,3}){0,4} [0-9]{0,7}",
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            prop_assert_eq!(Response::parse(shaped.as_bytes()), parse_as_text(shaped.as_bytes()));
            prop_assert_eq!(Response::parse(ok_like.as_bytes()), parse_as_text(ok_like.as_bytes()));
            prop_assert_eq!(Response::parse(&bytes), parse_as_text(&bytes));
        }

        #[test]
        fn request_round_trips(digits in "[0-9]{1,4}") {
            let line = format!("HELLO {digits}");
            let req = Request::parse(line.as_bytes()).unwrap();
            let mut out = BytesMut::new();
            req.emit(&mut out);
            prop_assert_eq!(&out[..], line.as_bytes());
            prop_assert_eq!(u32::from(req.id.value()), digits.parse::<u32>().unwrap());
        }

        #[test]
        fn ok_text_matches_std_formatting(v in 0u16..10_000, ip in any::<[u8; 4]>(), port in any::<u16>()) {
            let id = HelloId::from_value(v).unwrap();
            let peer = SocketAddr::from((ip, port));
            let mut out = BytesMut::new();
            Response::Ok { id, peer }.emit(&mut out);
            let expected = format!("OK {id} {} {}", peer.ip(), peer.port());
            prop_assert_eq!(&out[..], expected.as_bytes());
        }

        #[test]
        fn ok_round_trips(v in 0u16..10_000, ip in any::<[u8; 4]>(), port in any::<u16>()) {
            let id = HelloId::from_value(v).unwrap();
            let peer = SocketAddr::from((ip, port));
            let mut out = BytesMut::new();
            Response::Ok { id, peer }.emit(&mut out);
            prop_assert_eq!(Response::parse(&out), Ok(Response::Ok { id, peer }));
        }
    }
}
