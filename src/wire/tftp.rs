//! TFTP datagrams: [RFC 1350] with the option extension ([RFC 2347]) and the
//! `blksize` ([RFC 2348]), `timeout` and `tsize` ([RFC 2349]) and
//! `windowsize` ([RFC 7440]) options.
//!
//! Owns the byte format of every TFTP datagram (spec section "tftp"): the six
//! opcodes, the error codes, the transfer modes and the four negotiated
//! options, and the arithmetic of the 16-bit block number ([`Block`]: how
//! a transfer's block index rolls over past 65535 to 0, and back). It never
//! decides anything: which options to accept and what to put in the OACK,
//! TIDs, retransmission and file names' safety (`store::check_name`) belong
//! to the session and the store.
//! It must never do I/O, read a clock or log, and no input makes it panic:
//! property tests feed it arbitrary bytes. Every length and count is checked
//! before use (curl CVE-2019-5482, tianocore/edk2#9797,
//! scottlamb/hikvision-tftpd#15).
//!
//! ```text
//! RRQ / WRQ  | 0001 / 0002 | filename | 00 | mode | 00 | name | 00 | value | 00 | …
//! DATA       | 0003 | block | 0..=65464 bytes of data
//! ACK        | 0004 | block |
//! ERROR      | 0005 | code  | message | 00
//! OACK       | 0006 | name | 00 | value | 00 | …
//!              2 bytes 2 bytes           (numbers are big-endian u16)
//! ```
//!
//! ```
//! use mioperf::wire::tftp::{Mode, Packet};
//! let bytes = b"\x00\x01notes.txt\x00octet\x00blksize\x001468\x00";
//! let p = Packet::parse(bytes).unwrap();
//! let Packet::Rrq { filename, mode, options } = p else { panic!("not an RRQ") };
//! assert_eq!((filename, mode, options.blksize), ("notes.txt", Mode::Octet, Some(1468)));
//! assert_eq!(p.to_string(), r#"RRQ "notes.txt" octet blksize=1468"#);
//! let mut out = bytes::BytesMut::new();
//! p.emit(&mut out);
//! assert_eq!(&out[..], &bytes[..]);
//! ```
//!
//! # Policies
//! * **Unknown opcodes** (0, 7 and above): [`Packet::parse`] returns
//!   [`Error::UnknownVerb`], so a [`Packet`] is always one of the six real
//!   packets. [`Opcode::peek`] reads the opcode alone, with
//!   [`Opcode::Unknown`] carrying the value, for a caller that logs it and
//!   answers ERROR 4.
//! * **Unknown options** are skipped and counted in [`Ignored::unknown`]:
//!   RFC 2347 has a server ignore options it does not know. Their names are
//!   not kept, so [`Options`] stays `Copy` and borrows nothing.
//! * **Invalid values of a known option** (not a plain decimal, or outside
//!   the RFC's range: `blksize` 8..=65464, `timeout` 1..=255, `tsize` a
//!   `u64`, `windowsize` 1..=65535) leave the field `None`, as if the option
//!   had not been requested, and are flagged in [`Ignored::invalid`]. They
//!   are never an error: RFC 2348 lets a server ignore a `blksize` it cannot
//!   honour, and a transfer with default values is better than a refusal.
//! * **Repeated options**: the first occurrence of a name wins (whether or
//!   not its value was valid); later ones are counted in
//!   [`Ignored::repeated`]. One name has one value, and an OACK built from
//!   [`Options`] can never name an option twice.
//! * **Option count**: more than [`MAX_OPTIONS`] name/value pairs (known,
//!   unknown and repeated together) is an error, whatever their length.
//! * **Trailing NUL padding** after a request's mode or last option, or
//!   after an OACK's last option, is tolerated: it carries nothing.
//! * **ERROR messages**: a missing trailing NUL is tolerated (some peers omit
//!   it) and the message runs to the end of the datagram; anything after the
//!   first NUL is ignored; a message that is not UTF-8 is cut at its first
//!   invalid byte. The code is what matters: an ERROR must always stop the
//!   transfer, so it is not refused for its text.
//! * **Modes** are matched case-insensitively (`OCTET`, `NetASCII`); `mail`
//!   (obsolete since RFC 1350) and any other word are refused. Option names
//!   are matched case-insensitively too.
//! * **Emitting** writes what it is given: strings up to their first NUL (a
//!   NUL cannot be written inside a field), DATA up to [`MAX_BLKSIZE`] bytes,
//!   the options that are `Some` in the fixed order `blksize`, `timeout`,
//!   `tsize`, `windowsize`, and nothing for [`Options::ignored`]. It does not
//!   check ranges: callers never produce out-of-range values.
//!
//! # Errors
//! [`Error`] is shared by every codec, so each TFTP failure maps onto one of
//! its four kinds:
//!
//! * [`Error::Truncated`]: under 2 bytes; a DATA, ACK or ERROR under 4
//!   bytes; a filename, mode, option name or option value without its NUL;
//!   an option name without a value; an empty filename (a required field is
//!   missing).
//! * [`Error::UnknownVerb`]: an opcode other than 1..=6; a mode other than
//!   `octet` / `netascii`; a filename that is not UTF-8 (as `wire::hello`
//!   treats a line that is not UTF-8).
//! * [`Error::BadNumber`]: more than [`MAX_OPTIONS`] options (the count is
//!   out of range; no variant fits better, and the shared enum stays as is).
//! * [`Error::TooLong`]: an RRQ, WRQ or OACK over [`MAX_REQUEST`] bytes; a
//!   DATA or ERROR over [`MAX_PACKET`]; an ACK over [`HEADER_LEN`].
//!
//! [RFC 1350]: https://www.rfc-editor.org/rfc/rfc1350
//! [RFC 2347]: https://www.rfc-editor.org/rfc/rfc2347
//! [RFC 2348]: https://www.rfc-editor.org/rfc/rfc2348
//! [RFC 2349]: https://www.rfc-editor.org/rfc/rfc2349
//! [RFC 7440]: https://www.rfc-editor.org/rfc/rfc7440

use super::Error;
use bytes::BytesMut;
use core::fmt;

/// Smallest `blksize` ([RFC 2348](https://www.rfc-editor.org/rfc/rfc2348)).
pub const MIN_BLKSIZE: u16 = 8;
/// Largest `blksize` (RFC 2348): 65535 minus IPv4 and UDP headers and the
/// 4-byte TFTP header. Also the most data one DATA may carry.
pub const MAX_BLKSIZE: u16 = 65_464;
/// The block size without a `blksize` option
/// ([RFC 1350](https://www.rfc-editor.org/rfc/rfc1350) section 2).
pub const DEFAULT_BLKSIZE: u16 = 512;
/// Bytes before the data of a DATA, and the whole of an ACK: opcode and
/// block (or opcode and error code for an ERROR).
pub const HEADER_LEN: usize = 4;
/// Longest datagram parsed: a DATA of [`MAX_BLKSIZE`] bytes.
pub const MAX_PACKET: usize = HEADER_LEN + MAX_BLKSIZE as usize;
/// Longest RRQ, WRQ or OACK parsed. [RFC 2347](https://www.rfc-editor.org/rfc/rfc2347)
/// limits a request to 512 bytes; twice that leaves room for long names and
/// still bounds the work per datagram.
pub const MAX_REQUEST: usize = 1024;
/// Most option name/value pairs in one request or OACK, counting unknown and
/// repeated ones (tianocore/edk2#9797 overflowed an option counter).
pub const MAX_OPTIONS: usize = 16;

/// The first two bytes of every datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// 1: read request.
    Rrq,
    /// 2: write request.
    Wrq,
    /// 3: a block of data.
    Data,
    /// 4: acknowledgement.
    Ack,
    /// 5: error; ends the transfer.
    Error,
    /// 6: option acknowledgement (RFC 2347).
    Oack,
    /// Any other value (never 1..=6), kept so that it can be logged.
    Unknown(u16),
}

impl Opcode {
    /// The opcode of a datagram, known or not, without parsing the rest.
    ///
    /// # Errors
    /// [`Error::Truncated`] under 2 bytes.
    pub fn peek(bytes: &[u8]) -> Result<Self, Error> {
        match bytes {
            [hi, lo, ..] => Ok(Self::from(u16::from_be_bytes([*hi, *lo]))),
            _ => Err(Error::Truncated),
        }
    }

    /// The name tcpdump and the RFCs use (`RRQ`, …), `?` when unknown.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rrq => "RRQ",
            Self::Wrq => "WRQ",
            Self::Data => "DATA",
            Self::Ack => "ACK",
            Self::Error => "ERROR",
            Self::Oack => "OACK",
            Self::Unknown(_) => "?",
        }
    }
}

impl From<u16> for Opcode {
    fn from(v: u16) -> Self {
        match v {
            1 => Self::Rrq,
            2 => Self::Wrq,
            3 => Self::Data,
            4 => Self::Ack,
            5 => Self::Error,
            6 => Self::Oack,
            _ => Self::Unknown(v),
        }
    }
}

impl From<Opcode> for u16 {
    fn from(op: Opcode) -> Self {
        match op {
            Opcode::Rrq => 1,
            Opcode::Wrq => 2,
            Opcode::Data => 3,
            Opcode::Ack => 4,
            Opcode::Error => 5,
            Opcode::Oack => 6,
            Opcode::Unknown(v) => v,
        }
    }
}

/// The code of an ERROR packet (RFC 1350 appendix, RFC 2347 for 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: not defined, see the message.
    NotDefined,
    /// 1: file not found.
    FileNotFound,
    /// 2: access violation.
    AccessViolation,
    /// 3: disk full or allocation exceeded.
    DiskFull,
    /// 4: illegal TFTP operation.
    IllegalOperation,
    /// 5: unknown transfer ID (a datagram from the wrong port).
    UnknownTransferId,
    /// 6: file already exists.
    FileExists,
    /// 7: no such user.
    NoSuchUser,
    /// 8: option negotiation refused (RFC 2347).
    OptionRefused,
    /// Any other code. Built with `From<u16>` it is never 0..=8; an
    /// `Unknown(1)` built by hand is written as 1 and parses back as
    /// [`FileNotFound`](Self::FileNotFound).
    Unknown(u16),
}

impl ErrorCode {
    /// The default message text for this code.
    pub const fn message(self) -> &'static str {
        match self {
            Self::NotDefined => "Not defined",
            Self::FileNotFound => "File not found",
            Self::AccessViolation => "Access violation",
            Self::DiskFull => "Disk full or allocation exceeded",
            Self::IllegalOperation => "Illegal TFTP operation",
            Self::UnknownTransferId => "Unknown transfer ID",
            Self::FileExists => "File already exists",
            Self::NoSuchUser => "No such user",
            Self::OptionRefused => "Option negotiation refused",
            Self::Unknown(_) => "Unknown error",
        }
    }
}

impl From<u16> for ErrorCode {
    fn from(v: u16) -> Self {
        match v {
            0 => Self::NotDefined,
            1 => Self::FileNotFound,
            2 => Self::AccessViolation,
            3 => Self::DiskFull,
            4 => Self::IllegalOperation,
            5 => Self::UnknownTransferId,
            6 => Self::FileExists,
            7 => Self::NoSuchUser,
            8 => Self::OptionRefused,
            _ => Self::Unknown(v),
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTransferId => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionRefused => 8,
            ErrorCode::Unknown(v) => v,
        }
    }
}

/// The transfer mode of a request. `mail` is obsolete and not supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `netascii`: text with CR LF line ends (the conversion is the
    /// session's business, not the codec's).
    Netascii,
    /// `octet`: raw bytes.
    Octet,
}

impl Mode {
    /// Parses a mode word, in any case, without its NUL.
    ///
    /// # Errors
    /// [`Error::UnknownVerb`] for anything but `octet` and `netascii`,
    /// including the obsolete `mail`.
    pub fn parse(word: &[u8]) -> Result<Self, Error> {
        if word.eq_ignore_ascii_case(b"octet") {
            Ok(Self::Octet)
        } else if word.eq_ignore_ascii_case(b"netascii") {
            Ok(Self::Netascii)
        } else {
            Err(Error::UnknownVerb)
        }
    }

    /// The word written on the wire (lower case).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Netascii => "netascii",
            Self::Octet => "octet",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of the four options this codec knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionName {
    /// `blksize` (RFC 2348).
    Blksize,
    /// `timeout` (RFC 2349).
    Timeout,
    /// `tsize` (RFC 2349).
    Tsize,
    /// `windowsize` (RFC 7440).
    Windowsize,
}

impl OptionName {
    /// All four, in the order they are written.
    pub const ALL: [Self; 4] = [Self::Blksize, Self::Timeout, Self::Tsize, Self::Windowsize];

    /// Recognises a name in any case; `None` for an unknown option.
    pub fn from_bytes(name: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|n| name.eq_ignore_ascii_case(n.as_str().as_bytes()))
    }

    /// The name written on the wire (lower case).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Blksize => "blksize",
            Self::Timeout => "timeout",
            Self::Tsize => "tsize",
            Self::Windowsize => "windowsize",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Self::Blksize => 1,
            Self::Timeout => 2,
            Self::Tsize => 4,
            Self::Windowsize => 8,
        }
    }
}

impl fmt::Display for OptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`OptionName`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionSet(u8);

impl OptionSet {
    /// No option.
    pub const EMPTY: Self = Self(0);

    /// Whether `name` is in the set.
    pub const fn contains(self, name: OptionName) -> bool {
        self.0 & name.bit() != 0
    }

    /// The set with `name` added.
    #[must_use]
    pub const fn with(self, name: OptionName) -> Self {
        Self(self.0 | name.bit())
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names in the set, in wire order.
    pub fn iter(self) -> impl Iterator<Item = OptionName> {
        OptionName::ALL
            .into_iter()
            .filter(move |&n| self.contains(n))
    }
}

/// What parsing left out of [`Options`], for the caller to log. Always
/// empty on packets built for emitting: [`Packet::emit`] ignores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ignored {
    /// Options with a name this codec does not know (RFC 2347: ignored).
    pub unknown: u8,
    /// Later occurrences of a name already seen (the first one wins).
    pub repeated: u8,
    /// Known options whose value was not a decimal in the RFC's range; their
    /// field is `None`, as if they had not been requested.
    pub invalid: OptionSet,
}

impl Ignored {
    /// Whether nothing was ignored.
    pub const fn is_empty(&self) -> bool {
        self.unknown == 0 && self.repeated == 0 && self.invalid.is_empty()
    }
}

impl fmt::Display for Ignored {
    /// `2 unknown, 1 repeated, invalid blksize,windowsize` (empty parts left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if self.unknown > 0 {
            write!(f, "{} unknown", self.unknown)?;
            sep = ", ";
        }
        if self.repeated > 0 {
            write!(f, "{sep}{} repeated", self.repeated)?;
            sep = ", ";
        }
        if !self.invalid.is_empty() {
            write!(f, "{sep}invalid")?;
            let mut comma = " ";
            for name in self.invalid.iter() {
                write!(f, "{comma}{name}")?;
                comma = ",";
            }
        }
        Ok(())
    }
}

/// The negotiated options of a request or an OACK, each `None` when absent
/// (or ignored, see [`ignored`](Self::ignored)). After [`parse`](Self::parse)
/// every `Some` value is within its RFC's range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Data bytes per block, 8..=65464 (RFC 2348).
    pub blksize: Option<u16>,
    /// Retransmission timeout in seconds, 1..=255 (RFC 2349).
    pub timeout: Option<u8>,
    /// Transfer size in bytes (RFC 2349): 0 in an RRQ asks the server for it.
    pub tsize: Option<u64>,
    /// Blocks per window, 1..=65535 (RFC 7440).
    pub windowsize: Option<u16>,
    /// What the parser skipped; never written.
    pub ignored: Ignored,
}

impl Options {
    /// Parses the name/value pairs after a request's mode or an OACK's
    /// opcode. See the module's policies for unknown, invalid and repeated
    /// options and for NUL padding.
    ///
    /// # Errors
    /// [`Error::Truncated`] for a name or value without its NUL or a name
    /// without a value, [`Error::BadNumber`] for more than [`MAX_OPTIONS`]
    /// pairs.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut options = Self::default();
        let mut seen = OptionSet::EMPTY;
        let mut count = 0usize;
        let mut rest = bytes;
        while !rest.iter().all(|&b| b == 0) {
            count += 1;
            if count > MAX_OPTIONS {
                return Err(Error::BadNumber);
            }
            let (name, after_name) = split_nul(rest)?;
            let (value, after_value) = split_nul(after_name)?;
            rest = after_value;
            let Some(name) = OptionName::from_bytes(name) else {
                options.ignored.unknown = options.ignored.unknown.saturating_add(1);
                continue;
            };
            if seen.contains(name) {
                options.ignored.repeated = options.ignored.repeated.saturating_add(1);
                continue;
            }
            seen = seen.with(name);
            if !options.set(name, decimal(value)) {
                options.ignored.invalid = options.ignored.invalid.with(name);
            }
        }
        Ok(options)
    }

    /// Sets `name` from a parsed decimal if it is in range; false if not.
    fn set(&mut self, name: OptionName, value: Option<u64>) -> bool {
        let Some(v) = value else { return false };
        match name {
            OptionName::Blksize => {
                self.blksize = u16::try_from(v)
                    .ok()
                    .filter(|n| (MIN_BLKSIZE..=MAX_BLKSIZE).contains(n));
                self.blksize.is_some()
            }
            OptionName::Timeout => {
                self.timeout = u8::try_from(v).ok().filter(|&n| n >= 1);
                self.timeout.is_some()
            }
            OptionName::Tsize => {
                self.tsize = Some(v);
                true
            }
            OptionName::Windowsize => {
                self.windowsize = u16::try_from(v).ok().filter(|&n| n >= 1);
                self.windowsize.is_some()
            }
        }
    }

    /// The options that are `Some`, in wire order, as numbers.
    pub fn values(&self) -> impl Iterator<Item = (OptionName, u64)> + use<> {
        [
            (OptionName::Blksize, self.blksize.map(u64::from)),
            (OptionName::Timeout, self.timeout.map(u64::from)),
            (OptionName::Tsize, self.tsize),
            (OptionName::Windowsize, self.windowsize.map(u64::from)),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
    }

    /// Whether no option is set ([`ignored`](Self::ignored) aside): a server
    /// answers such a request without an OACK.
    pub fn is_empty(&self) -> bool {
        self.values().next().is_none()
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        self.values()
            .map(|(name, v)| name.as_str().len() + 1 + Decimal::new(v).as_bytes().len() + 1)
            .sum()
    }

    /// Appends the options that are `Some` as `name NUL value NUL`, in the
    /// order `blksize`, `timeout`, `tsize`, `windowsize`, and nothing else:
    /// the body of an OACK, so that a server acknowledges exactly the options
    /// it was given (never a `tsize` the client did not ask for,
    /// pypxe/PyPXE#125).
    pub fn emit(&self, dst: &mut BytesMut) {
        for (name, v) in self.values() {
            put_field(dst, name.as_str().as_bytes());
            put_field(dst, Decimal::new(v).as_bytes());
        }
    }

    /// `blksize=1468 tsize=0`, then `(ignored …)` if anything was.
    fn fmt_after(&self, f: &mut fmt::Formatter<'_>, mut sep: &'static str) -> fmt::Result {
        for (name, v) in self.values() {
            write!(f, "{sep}{name}={v}")?;
            sep = " ";
        }
        if !self.ignored.is_empty() {
            write!(f, "{sep}(ignored {})", self.ignored)?;
        }
        Ok(())
    }
}

impl fmt::Display for Options {
    /// `blksize=1468 tsize=0 (ignored 1 unknown)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_after(f, "")
    }
}

/// A TFTP block number, as it travels in a DATA or an ACK: the low 16 bits
/// of the block's index in its transfer (1, 2, …).
///
/// RFC 1350 gives the number 16 bits and says nothing of files longer than
/// 65 535 blocks. Peers that send them (tftp-hpa, curl, atftp) roll over
/// from 65 535 to 0, and mioperf does too: block index 65 536 travels as 0,
/// 65 537 as 1. Block 0 is otherwise the ACK of an OACK or of a WRQ. The
/// number is arithmetic modulo 2^16, so it has no `Ord`: which of two
/// numbers comes first is a question about a transfer, answered by
/// [`Block::index_near`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Block(pub u16);

impl Block {
    /// The block number of block index `index`: its low 16 bits, so the
    /// number rolls over past 65 535 to 0 (index 65 536 is block 0).
    #[must_use]
    pub const fn from_index(index: u64) -> Self {
        let [lo, hi, ..] = index.to_le_bytes();
        Self(u16::from_le_bytes([lo, hi]))
    }

    /// The number after this one, wrapping from 65 535 to 0.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }

    /// The block index (1, 2, …) nearest to `near` whose number is this
    /// one: how a rolled-over number is read back. Serial-number arithmetic
    /// (RFC 1982): up to 32 767 blocks after `near`, otherwise up to 32 768
    /// before it (never below 0), which is enough because a window never
    /// spans 32 768 blocks.
    #[must_use]
    pub fn index_near(self, near: u64) -> u64 {
        let ahead = self.0.wrapping_sub(Self::from_index(near).0);
        if ahead < 0x8000 {
            near.saturating_add(u64::from(ahead))
        } else {
            near.saturating_sub(u64::from(ahead.wrapping_neg()))
        }
    }
}

impl From<u16> for Block {
    fn from(n: u16) -> Self {
        Self(n)
    }
}

impl From<Block> for u16 {
    fn from(b: Block) -> Self {
        b.0
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// One TFTP datagram, borrowing its strings and data from the bytes it was
/// parsed from (a `Repr` in smoltcp's terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request.
    Rrq {
        /// The file asked for: non-empty UTF-8 without NUL. Not checked for
        /// safety here.
        filename: &'a str,
        /// The transfer mode.
        mode: Mode,
        /// The options requested.
        options: Options,
    },
    /// Write request.
    Wrq {
        /// The file to write: non-empty UTF-8 without NUL. Not checked for
        /// safety here.
        filename: &'a str,
        /// The transfer mode.
        mode: Mode,
        /// The options requested.
        options: Options,
    },
    /// A block of data; fewer than `blksize` bytes ends the transfer.
    Data {
        /// The block number; wraps from 65535 to 0 on large files.
        block: Block,
        /// 0..=[`MAX_BLKSIZE`] bytes.
        data: &'a [u8],
    },
    /// Acknowledges a DATA (or, with block 0, an OACK to an RRQ or a WRQ).
    Ack {
        /// The block acknowledged.
        block: Block,
    },
    /// An error; it ends the transfer and is never acknowledged.
    Error {
        /// The code.
        code: ErrorCode,
        /// Free text, possibly empty, without NUL.
        message: &'a str,
    },
    /// Option acknowledgement: the options the server accepted.
    Oack {
        /// The accepted options.
        options: Options,
    },
}

impl<'a> Packet<'a> {
    /// Parses one datagram.
    ///
    /// # Errors
    /// See the module's error table: [`Error::Truncated`] for a missing
    /// field or NUL, [`Error::UnknownVerb`] for an unknown opcode or mode or
    /// a non-UTF-8 filename, [`Error::BadNumber`] for too many options,
    /// [`Error::TooLong`] above the size limit of the packet's type.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let opcode = Opcode::peek(bytes)?;
        let body = bytes.get(2..).ok_or(Error::Truncated)?;
        match opcode {
            Opcode::Rrq | Opcode::Wrq => {
                if bytes.len() > MAX_REQUEST {
                    return Err(Error::TooLong { max: MAX_REQUEST });
                }
                let (filename, rest) = split_nul(body)?;
                if filename.is_empty() {
                    return Err(Error::Truncated);
                }
                let filename = core::str::from_utf8(filename).map_err(|_| Error::UnknownVerb)?;
                let (mode, rest) = split_nul(rest)?;
                let mode = Mode::parse(mode)?;
                let options = Options::parse(rest)?;
                Ok(if opcode == Opcode::Rrq {
                    Self::Rrq {
                        filename,
                        mode,
                        options,
                    }
                } else {
                    Self::Wrq {
                        filename,
                        mode,
                        options,
                    }
                })
            }
            Opcode::Data => {
                let (block, data) = split_u16(body)?;
                if data.len() > usize::from(MAX_BLKSIZE) {
                    return Err(Error::TooLong { max: MAX_PACKET });
                }
                Ok(Self::Data {
                    block: Block(block),
                    data,
                })
            }
            Opcode::Ack => {
                let (block, rest) = split_u16(body)?;
                if !rest.is_empty() {
                    return Err(Error::TooLong { max: HEADER_LEN });
                }
                Ok(Self::Ack {
                    block: Block(block),
                })
            }
            Opcode::Error => {
                if bytes.len() > MAX_PACKET {
                    return Err(Error::TooLong { max: MAX_PACKET });
                }
                let (code, rest) = split_u16(body)?;
                // Tolerated: no NUL (the text runs to the end), bytes after
                // the NUL, and non-UTF-8 text (cut at the first bad byte).
                let text = split_nul(rest).map_or(rest, |(text, _)| text);
                let message = match core::str::from_utf8(text) {
                    Ok(s) => s,
                    Err(e) => text
                        .get(..e.valid_up_to())
                        .and_then(|t| core::str::from_utf8(t).ok())
                        .unwrap_or(""),
                };
                Ok(Self::Error {
                    code: ErrorCode::from(code),
                    message,
                })
            }
            Opcode::Oack => {
                if bytes.len() > MAX_REQUEST {
                    return Err(Error::TooLong { max: MAX_REQUEST });
                }
                Ok(Self::Oack {
                    options: Options::parse(body)?,
                })
            }
            Opcode::Unknown(_) => Err(Error::UnknownVerb),
        }
    }

    /// An ERROR with the code's default message.
    pub const fn error(code: ErrorCode) -> Packet<'static> {
        Packet::Error {
            code,
            message: code.message(),
        }
    }

    /// The packet's opcode (never [`Opcode::Unknown`]).
    pub const fn opcode(&self) -> Opcode {
        match self {
            Self::Rrq { .. } => Opcode::Rrq,
            Self::Wrq { .. } => Opcode::Wrq,
            Self::Data { .. } => Opcode::Data,
            Self::Ack { .. } => Opcode::Ack,
            Self::Error { .. } => Opcode::Error,
            Self::Oack { .. } => Opcode::Oack,
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        2 + match self {
            Self::Rrq {
                filename,
                mode,
                options,
            }
            | Self::Wrq {
                filename,
                mode,
                options,
            } => {
                field(filename.as_bytes()).len()
                    + 1
                    + mode.as_str().len()
                    + 1
                    + options.buffer_len()
            }
            Self::Data { data, .. } => 2 + data.len().min(usize::from(MAX_BLKSIZE)),
            Self::Ack { .. } => 2,
            Self::Error { message, .. } => 2 + field(message.as_bytes()).len() + 1,
            Self::Oack { options } => options.buffer_len(),
        }
    }

    /// Appends the datagram, writing what it is given: strings up to their
    /// first NUL, DATA up to [`MAX_BLKSIZE`] bytes, option values unchecked.
    pub fn emit(&self, dst: &mut BytesMut) {
        dst.reserve(self.buffer_len());
        dst.extend_from_slice(&u16::from(self.opcode()).to_be_bytes());
        match *self {
            Self::Rrq {
                filename,
                mode,
                options,
            }
            | Self::Wrq {
                filename,
                mode,
                options,
            } => {
                put_field(dst, filename.as_bytes());
                put_field(dst, mode.as_str().as_bytes());
                options.emit(dst);
            }
            Self::Data { block, data } => {
                dst.extend_from_slice(&block.0.to_be_bytes());
                let n = data.len().min(usize::from(MAX_BLKSIZE));
                dst.extend_from_slice(data.get(..n).unwrap_or(data));
            }
            Self::Ack { block } => dst.extend_from_slice(&block.0.to_be_bytes()),
            Self::Error { code, message } => {
                dst.extend_from_slice(&u16::from(code).to_be_bytes());
                put_field(dst, message.as_bytes());
            }
            Self::Oack { options } => options.emit(dst),
        }
    }
}

impl fmt::Display for Packet<'_> {
    /// One line, like tcpdump: `RRQ "f.bin" octet blksize=1468 tsize=0`,
    /// `DATA #5 512 bytes`, `ACK #5`, `ERROR 1 "File not found"`,
    /// `OACK blksize=1468`. Strings are quoted and escaped (`{:?}`), since
    /// they come from the peer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.opcode().name();
        match self {
            Self::Rrq {
                filename,
                mode,
                options,
            }
            | Self::Wrq {
                filename,
                mode,
                options,
            } => {
                write!(f, "{name} {filename:?} {mode}")?;
                options.fmt_after(f, " ")
            }
            Self::Data { block, data } => write!(f, "{name} #{block} {} bytes", data.len()),
            Self::Ack { block } => write!(f, "{name} #{block}"),
            Self::Error { code, message } => write!(f, "{name} {} {message:?}", u16::from(*code)),
            Self::Oack { options } => {
                f.write_str(name)?;
                options.fmt_after(f, " ")
            }
        }
    }
}

/// Splits at the first NUL: the field before it, and what follows it.
fn split_nul(bytes: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let i = bytes.iter().position(|&b| b == 0).ok_or(Error::Truncated)?;
    let (field, rest) = bytes.split_at_checked(i).ok_or(Error::Truncated)?;
    Ok((field, rest.get(1..).unwrap_or_default()))
}

/// Why a datagram shaped like a request cannot be served: an RRQ or WRQ
/// opcode, within [`MAX_REQUEST`] bytes, whose name and mode fields are
/// both there (each ends in a NUL), but whose name is empty or not UTF-8,
/// or whose mode is unknown. Such a request deserves an ERROR 4 rather
/// than silence, so its sender does not wait out its timeout; anything
/// less shaped (garbage) is better left unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFault {
    /// The name field is empty.
    EmptyName,
    /// The name is not UTF-8.
    NameNotUtf8,
    /// The mode is neither `octet` nor `netascii`.
    UnknownMode,
}

impl RequestFault {
    /// The fault of a request-shaped datagram that [`Packet::parse`]
    /// refuses for its name or mode; `None` for anything else (a valid
    /// request, another packet, garbage, bad options).
    pub fn of(bytes: &[u8]) -> Option<Self> {
        if !matches!(Opcode::peek(bytes), Ok(Opcode::Rrq | Opcode::Wrq))
            || bytes.len() > MAX_REQUEST
        {
            return None;
        }
        let (name, rest) = split_nul(bytes.get(2..)?).ok()?;
        let (mode, _) = split_nul(rest).ok()?;
        if name.is_empty() {
            Some(Self::EmptyName)
        } else if core::str::from_utf8(name).is_err() {
            Some(Self::NameNotUtf8)
        } else if Mode::parse(mode).is_err() {
            Some(Self::UnknownMode)
        } else {
            None
        }
    }

    /// The ERROR message that names the fault.
    pub const fn message(self) -> &'static str {
        match self {
            Self::EmptyName => "Empty file name",
            Self::NameNotUtf8 => "File name not UTF-8",
            Self::UnknownMode => "Unknown mode",
        }
    }
}

/// A big-endian u16 and what follows it.
fn split_u16(bytes: &[u8]) -> Result<(u16, &[u8]), Error> {
    match bytes {
        [hi, lo, rest @ ..] => Ok((u16::from_be_bytes([*hi, *lo]), rest)),
        _ => Err(Error::Truncated),
    }
}

/// A plain unsigned decimal (digits only, at least one, leading zeros
/// allowed); `None` if it is not one or does not fit a `u64`.
fn decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// What of `s` can be written as one field: up to its first NUL.
fn field(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(i) => s.get(..i).unwrap_or_default(),
        None => s,
    }
}

/// Appends a field and its NUL.
fn put_field(dst: &mut BytesMut, s: &[u8]) {
    dst.extend_from_slice(field(s));
    dst.extend_from_slice(&[0]);
}

/// A `u64` in decimal ASCII, without allocating.
struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    fn new(mut v: u64) -> Self {
        // u64::MAX has 20 digits, so `start` never goes below 0.
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_faults_are_named_and_garbage_is_not() {
        let f = RequestFault::of;
        assert_eq!(f(b"\x00\x01\x00octet\x00"), Some(RequestFault::EmptyName));
        assert_eq!(
            f(b"\x00\x02\xff\xfe\x00octet\x00"),
            Some(RequestFault::NameNotUtf8)
        );
        assert_eq!(f(b"\x00\x01f\x00mail\x00"), Some(RequestFault::UnknownMode));
        assert_eq!(f(b"\x00\x01f\x00\x00"), Some(RequestFault::UnknownMode));
        // Valid requests, other packets and garbage have no fault to name.
        assert_eq!(f(b"\x00\x01f\x00octet\x00"), None);
        assert_eq!(f(b"\x00\x04\x00\x01"), None);
        assert_eq!(f(b"\x00\x01f\x00octet"), None, "no NUL after the mode");
        assert_eq!(f(b"\x00\x01\x00"), None, "no mode field");
        assert_eq!(f(b"GET / HTTP/1.0\r\n"), None);
        assert_eq!(f(b""), None);
        let mut long = b"\x00\x01".to_vec();
        long.extend(std::iter::repeat_n(0xff, MAX_REQUEST));
        long.extend(b"\x00octet\x00");
        assert_eq!(f(&long), None, "over MAX_REQUEST");
    }
    use proptest::prelude::*;

    fn emitted(p: &Packet<'_>) -> Vec<u8> {
        let mut b = BytesMut::new();
        p.emit(&mut b);
        assert_eq!(b.len(), p.buffer_len(), "buffer_len of {p}");
        b.to_vec()
    }

    /// Parses `bytes`, checks the result, and checks it emits `bytes` again.
    fn both_ways(bytes: &[u8], expected: Packet<'_>) {
        let p = Packet::parse(bytes).unwrap();
        assert_eq!(p, expected);
        assert_eq!(emitted(&expected), bytes);
    }

    fn opts(
        blksize: Option<u16>,
        timeout: Option<u8>,
        tsize: Option<u64>,
        windowsize: Option<u16>,
    ) -> Options {
        Options {
            blksize,
            timeout,
            tsize,
            windowsize,
            ignored: Ignored::default(),
        }
    }

    fn rrq_options(tail: &[u8]) -> Result<Options, Error> {
        let mut b = b"\x00\x01f\x00octet\x00".to_vec();
        b.extend_from_slice(tail);
        match Packet::parse(&b)? {
            Packet::Rrq { options, .. } => Ok(options),
            other => panic!("not an RRQ: {other}"),
        }
    }

    // Fixtures: datagrams as the RFCs and curl / tftp-hpa / atftp write them.
    static RRQ_BYTES: [u8; 18] = *b"\x00\x01notes.txt\x00octet\x00";
    static RRQ_OPTIONS_BYTES: [u8; 50] =
        *b"\x00\x01big.bin\x00octet\x00blksize\x001468\x00tsize\x000\x00windowsize\x008\x00";
    static WRQ_TSIZE_BYTES: [u8; 26] = *b"\x00\x02up.bin\x00octet\x00tsize\x004096\x00";
    static DATA_512_BYTES: [u8; 516] = data_fixture();
    static DATA_65535_BYTES: [u8; 8] = *b"\x00\x03\xff\xfflast";
    static DATA_0_BYTES: [u8; 4] = [0x00, 0x03, 0x00, 0x00];
    static ACK_0_BYTES: [u8; 4] = [0x00, 0x04, 0x00, 0x00];
    static ACK_65535_BYTES: [u8; 4] = [0x00, 0x04, 0xff, 0xff];
    static ERROR_1_BYTES: [u8; 19] = *b"\x00\x05\x00\x01File not found\x00";
    static ERROR_6_BYTES: [u8; 24] = *b"\x00\x05\x00\x06File already exists\x00";
    static OACK_BYTES: [u8; 31] = *b"\x00\x06blksize\x001468\x00tsize\x00104857600\x00";

    /// DATA block 1 with 512 bytes `0, 1, …, 255, 0, 1, …`.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the payload wraps at 256 by design"
    )]
    const fn data_fixture() -> [u8; 516] {
        let mut b = [0u8; 516];
        b[1] = 3;
        b[3] = 1;
        let mut i = 4;
        while i < b.len() {
            b[i] = (i - 4) as u8;
            i += 1;
        }
        b
    }

    #[test]
    fn rrq() {
        let p = Packet::Rrq {
            filename: "notes.txt",
            mode: Mode::Octet,
            options: Options::default(),
        };
        both_ways(&RRQ_BYTES, p);
        assert_eq!(p.to_string(), r#"RRQ "notes.txt" octet"#);
    }

    #[test]
    fn rrq_with_options() {
        let options = opts(Some(1468), None, Some(0), Some(8));
        let p = Packet::Rrq {
            filename: "big.bin",
            mode: Mode::Octet,
            options,
        };
        both_ways(&RRQ_OPTIONS_BYTES, p);
        assert_eq!(
            p.to_string(),
            r#"RRQ "big.bin" octet blksize=1468 tsize=0 windowsize=8"#
        );
    }

    #[test]
    fn curl_order_and_case_are_accepted() {
        // curl writes tsize, blksize, timeout in that order; others shout.
        let b = b"\x00\x01f.bin\x00OCTET\x00TSIZE\x000\x00BlkSize\x001468\x00Timeout\x006\x00";
        let p = Packet::parse(b).unwrap();
        let expected = opts(Some(1468), Some(6), Some(0), None);
        assert_eq!(
            p,
            Packet::Rrq {
                filename: "f.bin",
                mode: Mode::Octet,
                options: expected
            }
        );
        assert_eq!(
            p.to_string(),
            r#"RRQ "f.bin" octet blksize=1468 timeout=6 tsize=0"#
        );
        // Emitted in the fixed order, lower case.
        assert_eq!(
            emitted(&p),
            b"\x00\x01f.bin\x00octet\x00blksize\x001468\x00timeout\x006\x00tsize\x000\x00"
        );
        assert_eq!(Mode::parse(b"NetASCII"), Ok(Mode::Netascii));
    }

    #[test]
    fn wrq_with_tsize() {
        let p = Packet::Wrq {
            filename: "up.bin",
            mode: Mode::Octet,
            options: opts(None, None, Some(4096), None),
        };
        both_ways(&WRQ_TSIZE_BYTES, p);
        assert_eq!(p.to_string(), r#"WRQ "up.bin" octet tsize=4096"#);
        let mut net = b"\x00\x02up.txt\x00netascii\x00".to_vec();
        let p = Packet::Wrq {
            filename: "up.txt",
            mode: Mode::Netascii,
            options: Options::default(),
        };
        both_ways(&net, p);
        net[1] = 1;
        assert_eq!(Packet::parse(&net).unwrap().opcode(), Opcode::Rrq);
    }

    #[test]
    fn data() {
        let p = Packet::Data {
            block: Block(1),
            data: &DATA_512_BYTES[4..],
        };
        both_ways(&DATA_512_BYTES, p);
        assert_eq!(p.to_string(), "DATA #1 512 bytes");
        both_ways(
            &DATA_65535_BYTES,
            Packet::Data {
                block: Block(65535),
                data: b"last",
            },
        );
        let p = Packet::Data {
            block: Block(0),
            data: b"",
        };
        both_ways(&DATA_0_BYTES, p);
        assert_eq!(p.to_string(), "DATA #0 0 bytes");
    }

    #[test]
    fn data_size_limit() {
        let mut b = vec![0x00, 0x03, 0x00, 0x07];
        b.resize(MAX_PACKET, 0xaa);
        let p = Packet::parse(&b).unwrap();
        assert_eq!(
            p,
            Packet::Data {
                block: Block(7),
                data: &b[4..]
            }
        );
        assert_eq!(emitted(&p), b);
        b.push(0xaa);
        assert_eq!(Packet::parse(&b), Err(Error::TooLong { max: 65_468 }));
        // Emitting never writes more than a maximal DATA.
        let p = Packet::Data {
            block: Block(7),
            data: &b[4..],
        };
        assert_eq!(emitted(&p).len(), MAX_PACKET);
    }

    #[test]
    fn ack() {
        both_ways(&ACK_0_BYTES, Packet::Ack { block: Block(0) });
        both_ways(
            &ACK_65535_BYTES,
            Packet::Ack {
                block: Block(65535),
            },
        );
        assert_eq!(Packet::Ack { block: Block(5) }.to_string(), "ACK #5");
    }

    #[test]
    fn block_numbers_roll_over_past_65535_to_0() {
        assert_eq!(Block::from_index(1), Block(1));
        assert_eq!(Block::from_index(65_535), Block(65_535));
        assert_eq!(
            Block::from_index(65_536),
            Block(0),
            "index 65536 travels as 0"
        );
        assert_eq!(Block::from_index(65_537), Block(1));
        assert_eq!(Block::from_index(131_075), Block(3));
        assert_eq!(Block::from_index(u64::MAX), Block(65_535));
        assert_eq!(Block(65_535).next(), Block(0));
        assert_eq!(Block(0).next(), Block(1));
        let mut b = Block::from_index(65_530);
        for index in 65_530..65_560 {
            assert_eq!(b, Block::from_index(index), "next() follows the index");
            b = b.next();
        }
        assert_eq!(Block::from(7u16), Block(7));
        assert_eq!(u16::from(Block(7)), 7);
        assert_eq!(Block(65_535).to_string(), "65535");
    }

    #[test]
    fn a_block_number_reads_back_as_the_nearest_index() {
        // Ahead of `near` by up to 32 767, behind it by up to 32 768.
        for near in [1u64, 2, 40_000, 65_535, 65_536, 65_537, 200_000, 1 << 40] {
            for index in near.saturating_sub(32_768)..=near + 32_767 {
                assert_eq!(
                    Block::from_index(index).index_near(near),
                    index,
                    "index {index} near {near}"
                );
            }
        }
        // Never below 0: block 65535 before index 1 is read as 0.
        assert_eq!(Block(65_535).index_near(1), 0);
        assert_eq!(Block(65_534).index_near(u64::MAX), u64::MAX - 1);
        assert_eq!(Block(0).index_near(u64::MAX), u64::MAX, "saturates");
    }

    #[test]
    fn error() {
        let p = Packet::Error {
            code: ErrorCode::FileNotFound,
            message: "File not found",
        };
        both_ways(&ERROR_1_BYTES, p);
        assert_eq!(Packet::error(ErrorCode::FileNotFound), p);
        assert_eq!(p.to_string(), r#"ERROR 1 "File not found""#);
        let p = Packet::error(ErrorCode::FileExists);
        both_ways(&ERROR_6_BYTES, p);
        assert_eq!(p.to_string(), r#"ERROR 6 "File already exists""#);
    }

    #[test]
    fn error_tolerances() {
        let empty = Packet::Error {
            code: ErrorCode::NotDefined,
            message: "",
        };
        both_ways(b"\x00\x05\x00\x00\x00", empty);
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x00"),
            Ok(empty),
            "no message, no NUL"
        );
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x01File not found"),
            Ok(Packet::error(ErrorCode::FileNotFound)),
            "a missing NUL is tolerated"
        );
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x01File not found\x00junk\x00"),
            Ok(Packet::error(ErrorCode::FileNotFound)),
            "bytes after the NUL are ignored"
        );
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x02Zugriff verweigert \xe4\x00"),
            Ok(Packet::Error {
                code: ErrorCode::AccessViolation,
                message: "Zugriff verweigert "
            }),
            "Latin-1 text is cut at its first non-UTF-8 byte"
        );
        let unknown = Packet::parse(b"\x00\x05\x01\x00odd\x00").unwrap();
        assert_eq!(
            unknown,
            Packet::Error {
                code: ErrorCode::Unknown(256),
                message: "odd"
            }
        );
        assert_eq!(unknown.to_string(), r#"ERROR 256 "odd""#);
        let control = Packet::Error {
            code: ErrorCode::NotDefined,
            message: "a\"b\n\x1b[2J",
        };
        assert_eq!(
            control.to_string(),
            r#"ERROR 0 "a\"b\n\u{1b}[2J""#,
            "peer text is escaped"
        );
        let mut long = b"\x00\x05\x00\x00".to_vec();
        long.resize(MAX_PACKET + 1, b'x');
        assert_eq!(
            Packet::parse(&long),
            Err(Error::TooLong { max: MAX_PACKET })
        );
    }

    #[test]
    fn error_codes() {
        for v in 0..=8u16 {
            let code = ErrorCode::from(v);
            assert_ne!(code, ErrorCode::Unknown(v));
            assert_eq!(u16::from(code), v);
        }
        assert_eq!(ErrorCode::from(8), ErrorCode::OptionRefused);
        assert_eq!(ErrorCode::from(8).message(), "Option negotiation refused");
        assert_eq!(ErrorCode::from(5).message(), "Unknown transfer ID");
        assert_eq!(ErrorCode::from(9), ErrorCode::Unknown(9));
        assert_eq!(u16::from(ErrorCode::Unknown(9)), 9);
    }

    #[test]
    fn oack() {
        let p = Packet::Oack {
            options: opts(Some(1468), None, Some(104_857_600), None),
        };
        both_ways(&OACK_BYTES, p);
        assert_eq!(p.to_string(), "OACK blksize=1468 tsize=104857600");
        let p = Packet::Oack {
            options: opts(Some(1468), None, None, None),
        };
        assert_eq!(p.to_string(), "OACK blksize=1468");
        let empty = Packet::Oack {
            options: Options::default(),
        };
        both_ways(b"\x00\x06", empty);
        assert_eq!(empty.to_string(), "OACK");
        let all = opts(Some(512), Some(255), Some(u64::MAX), Some(65535));
        let mut b = BytesMut::new();
        all.emit(&mut b);
        assert_eq!(
            &b[..],
            b"blksize\x00512\x00timeout\x00255\x00tsize\x0018446744073709551615\x00windowsize\x0065535\x00"
        );
        assert_eq!(b.len(), all.buffer_len());
    }

    #[test]
    fn opcodes() {
        assert_eq!(Opcode::peek(&RRQ_BYTES), Ok(Opcode::Rrq));
        assert_eq!(Opcode::peek(&OACK_BYTES), Ok(Opcode::Oack));
        assert_eq!(Opcode::peek(b"\x00\x09whatever"), Ok(Opcode::Unknown(9)));
        assert_eq!(Opcode::peek(b"\x00"), Err(Error::Truncated));
        for v in 0..=7u16 {
            assert_eq!(u16::from(Opcode::from(v)), v);
        }
        assert_eq!(Opcode::Unknown(0).name(), "?");
    }

    #[test]
    fn rejects_framing() {
        assert_eq!(Packet::parse(b""), Err(Error::Truncated));
        assert_eq!(Packet::parse(b"\x00"), Err(Error::Truncated), "1 byte");
        assert_eq!(
            Packet::parse(b"\x00\x09\x00\x01"),
            Err(Error::UnknownVerb),
            "opcode 9"
        );
        assert_eq!(
            Packet::parse(b"\x00\x00\x00\x01"),
            Err(Error::UnknownVerb),
            "opcode 0"
        );
        assert_eq!(
            Packet::parse(b"\x00\x04"),
            Err(Error::Truncated),
            "ACK without block"
        );
        assert_eq!(
            Packet::parse(b"\x00\x04\x00"),
            Err(Error::Truncated),
            "2-byte ACK"
        );
        assert_eq!(
            Packet::parse(b"\x00\x04\x00\x01\x00"),
            Err(Error::TooLong { max: 4 })
        );
        assert_eq!(
            Packet::parse(b"\x00\x03\x00"),
            Err(Error::Truncated),
            "DATA without block"
        );
        assert_eq!(
            Packet::parse(b"\x00\x05\x00"),
            Err(Error::Truncated),
            "ERROR without code"
        );
    }

    #[test]
    fn rejects_requests() {
        assert_eq!(
            Packet::parse(b"\x00\x01notes.txt"),
            Err(Error::Truncated),
            "filename without NUL"
        );
        assert_eq!(
            Packet::parse(b"\x00\x01notes.txt\x00octet"),
            Err(Error::Truncated),
            "mode without NUL"
        );
        assert_eq!(
            Packet::parse(b"\x00\x01notes.txt\x00"),
            Err(Error::Truncated),
            "no mode"
        );
        assert_eq!(
            Packet::parse(b"\x00\x01\x00octet\x00"),
            Err(Error::Truncated),
            "empty filename"
        );
        assert_eq!(
            Packet::parse(b"\x00\x02\x00octet\x00"),
            Err(Error::Truncated),
            "empty filename"
        );
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00mail\x00"),
            Err(Error::UnknownVerb),
            "mail"
        );
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00MAIL\x00"),
            Err(Error::UnknownVerb),
            "mail"
        );
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00binary\x00"),
            Err(Error::UnknownVerb)
        );
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00\x00"),
            Err(Error::UnknownVerb),
            "empty mode"
        );
        assert_eq!(
            Packet::parse(b"\x00\x01caf\xe9.txt\x00octet\x00"),
            Err(Error::UnknownVerb),
            "Latin-1 filename"
        );
        assert_eq!(
            Packet::parse(b"\x00\x01\xff\xfe\x00octet\x00"),
            Err(Error::UnknownVerb)
        );
        let utf8 = "café.txt";
        let mut b = b"\x00\x01".to_vec();
        b.extend_from_slice(utf8.as_bytes());
        b.extend_from_slice(b"\x00octet\x00");
        assert_eq!(
            Packet::parse(&b).unwrap().to_string(),
            r#"RRQ "café.txt" octet"#
        );
    }

    #[test]
    fn request_size_limit() {
        // An RRQ of exactly MAX_REQUEST bytes: 2 + name + NUL + "octet" + NUL.
        let mut b = b"\x00\x01".to_vec();
        b.resize(MAX_REQUEST - 7, b'n');
        b.extend_from_slice(b"\x00octet\x00");
        assert_eq!(b.len(), MAX_REQUEST);
        assert!(Packet::parse(&b).is_ok());
        b.push(0);
        assert_eq!(Packet::parse(&b), Err(Error::TooLong { max: MAX_REQUEST }));
        let mut oack = b"\x00\x06".to_vec();
        oack.resize(MAX_REQUEST + 1, 0);
        assert_eq!(
            Packet::parse(&oack),
            Err(Error::TooLong { max: MAX_REQUEST })
        );
    }

    #[test]
    fn option_syntax() {
        assert_eq!(
            rrq_options(b"blksize"),
            Err(Error::Truncated),
            "name without NUL"
        );
        assert_eq!(
            rrq_options(b"blksize\x00"),
            Err(Error::Truncated),
            "name without value"
        );
        assert_eq!(
            rrq_options(b"blksize\x001468"),
            Err(Error::Truncated),
            "value without NUL"
        );
        assert_eq!(
            Packet::parse(b"\x00\x06tsize\x00"),
            Err(Error::Truncated),
            "OACK name without value"
        );
        // NUL padding after the last field carries nothing.
        assert_eq!(rrq_options(b"\x00\x00\x00"), Ok(Options::default()));
        assert_eq!(
            rrq_options(b"blksize\x001468\x00\x00"),
            Ok(opts(Some(1468), None, None, None))
        );
        // Leading zeros are still a decimal.
        assert_eq!(
            rrq_options(b"blksize\x0001468\x00"),
            Ok(opts(Some(1468), None, None, None))
        );
    }

    #[test]
    fn unknown_options_are_counted_and_ignored() {
        let o = rrq_options(
            b"utimeout\x00500000\x00blksize\x001468\x00rollover\x000\x00\xff\x00\xfe\x00",
        )
        .unwrap();
        assert_eq!((o.blksize, o.ignored.unknown), (Some(1468), 3));
        assert_eq!(o.to_string(), "blksize=1468 (ignored 3 unknown)");
        let mut b = BytesMut::new();
        o.emit(&mut b);
        assert_eq!(
            &b[..],
            b"blksize\x001468\x00",
            "ignored options are never written"
        );
    }

    #[test]
    fn repeated_options_first_wins() {
        let o = rrq_options(b"blksize\x001468\x00BLKSIZE\x00512\x00blksize\x008\x00").unwrap();
        assert_eq!(o.blksize, Some(1468));
        assert_eq!(
            o.ignored,
            Ignored {
                unknown: 0,
                repeated: 2,
                invalid: OptionSet::EMPTY
            }
        );
        // The first occurrence decides even when its value is invalid.
        let o = rrq_options(b"blksize\x007\x00blksize\x001468\x00").unwrap();
        assert_eq!(o.blksize, None);
        assert_eq!(o.ignored.repeated, 1);
        assert!(o.ignored.invalid.contains(OptionName::Blksize));
    }

    #[test]
    fn invalid_values_are_treated_as_not_requested() {
        let invalid = |tail: &[u8], name: OptionName| {
            let o = rrq_options(tail).unwrap();
            assert!(o.is_empty(), "{o}");
            assert_eq!(o.ignored.invalid, OptionSet::EMPTY.with(name), "{o}");
        };
        invalid(b"blksize\x007\x00", OptionName::Blksize);
        invalid(b"blksize\x0065465\x00", OptionName::Blksize);
        invalid(
            b"blksize\x0099999999999999999999999\x00",
            OptionName::Blksize,
        );
        invalid(b"windowsize\x000\x00", OptionName::Windowsize);
        invalid(b"windowsize\x0065536\x00", OptionName::Windowsize);
        invalid(b"timeout\x000\x00", OptionName::Timeout);
        invalid(b"timeout\x00256\x00", OptionName::Timeout);
        invalid(b"tsize\x00abc\x00", OptionName::Tsize);
        invalid(b"tsize\x00-1\x00", OptionName::Tsize);
        invalid(b"tsize\x00 1\x00", OptionName::Tsize);
        invalid(b"tsize\x00\x00", OptionName::Tsize);
        invalid(b"tsize\x0018446744073709551616\x00", OptionName::Tsize);
        // The bounds themselves are valid.
        assert_eq!(
            rrq_options(b"blksize\x008\x00timeout\x001\x00tsize\x0018446744073709551615\x00windowsize\x001\x00"),
            Ok(opts(Some(8), Some(1), Some(u64::MAX), Some(1)))
        );
        assert_eq!(
            rrq_options(b"blksize\x0065464\x00timeout\x00255\x00windowsize\x0065535\x00"),
            Ok(opts(Some(65464), Some(255), None, Some(65535)))
        );
        // An invalid option does not hide the valid ones, and is shown.
        let o =
            rrq_options(b"blksize\x007\x00tsize\x000\x00windowsize\x000\x00x\x00y\x00").unwrap();
        assert_eq!((o.blksize, o.tsize, o.windowsize), (None, Some(0), None));
        assert_eq!(
            o.to_string(),
            "tsize=0 (ignored 1 unknown, invalid blksize,windowsize)"
        );
        let p = Packet::Rrq {
            filename: "f",
            mode: Mode::Octet,
            options: o,
        };
        assert_eq!(
            p.to_string(),
            r#"RRQ "f" octet tsize=0 (ignored 1 unknown, invalid blksize,windowsize)"#
        );
    }

    #[test]
    fn option_count_is_capped() {
        let mut tail = Vec::new();
        for _ in 0..MAX_OPTIONS {
            tail.extend_from_slice(b"x\x001\x00");
        }
        assert_eq!(rrq_options(&tail).unwrap().ignored.unknown, 16);
        tail.extend_from_slice(b"blksize\x001468\x00");
        assert_eq!(rrq_options(&tail), Err(Error::BadNumber));
        let mut oack = b"\x00\x06".to_vec();
        oack.extend_from_slice(&tail);
        assert_eq!(Packet::parse(&oack), Err(Error::BadNumber));
    }

    #[test]
    fn option_set() {
        let s = OptionSet::EMPTY
            .with(OptionName::Windowsize)
            .with(OptionName::Blksize);
        assert!(s.contains(OptionName::Blksize) && !s.contains(OptionName::Tsize));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [OptionName::Blksize, OptionName::Windowsize]
        );
        assert_eq!(
            OptionName::from_bytes(b"WindowSize"),
            Some(OptionName::Windowsize)
        );
        assert_eq!(OptionName::from_bytes(b"windowsize2"), None);
    }

    #[test]
    fn emit_cuts_strings_at_nul() {
        let p = Packet::Error {
            code: ErrorCode::NotDefined,
            message: "a\0b",
        };
        assert_eq!(emitted(&p), b"\x00\x05\x00\x00a\x00");
        let p = Packet::Rrq {
            filename: "f\0g",
            mode: Mode::Octet,
            options: Options::default(),
        };
        assert_eq!(emitted(&p), b"\x00\x01f\x00octet\x00");
    }

    /// What an accepted packet must parse back to once emitted: the same,
    /// minus what the parser skipped (which is never written).
    fn without_ignored(p: Packet<'_>) -> Packet<'_> {
        let clean = |o: Options| Options {
            ignored: Ignored::default(),
            ..o
        };
        match p {
            Packet::Rrq {
                filename,
                mode,
                options,
            } => Packet::Rrq {
                filename,
                mode,
                options: clean(options),
            },
            Packet::Wrq {
                filename,
                mode,
                options,
            } => Packet::Wrq {
                filename,
                mode,
                options: clean(options),
            },
            Packet::Oack { options } => Packet::Oack {
                options: clean(options),
            },
            other => other,
        }
    }

    fn options_strategy() -> impl Strategy<Value = Options> {
        (
            proptest::option::of(MIN_BLKSIZE..=MAX_BLKSIZE),
            proptest::option::of(1u8..=255),
            proptest::option::of(any::<u64>()),
            proptest::option::of(1u16..=65535),
        )
            .prop_map(|(b, t, s, w)| opts(b, t, s, w))
    }

    /// NUL-separated words that look like requests, to reach the option
    /// parser more often than random bytes do.
    fn tokens() -> impl Strategy<Value = Vec<u8>> {
        let word = prop_oneof![
            Just(b"octet".to_vec()),
            Just(b"blksize".to_vec()),
            Just(b"tsize".to_vec()),
            Just(b"timeout".to_vec()),
            Just(b"windowsize".to_vec()),
            Just(b"1468".to_vec()),
            Just(b"0".to_vec()),
            Just(Vec::new()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ];
        (
            0u8..=7,
            proptest::collection::vec(word, 0..24),
            any::<bool>(),
        )
            .prop_map(|(op, words, nul)| {
                let mut b = vec![0, op];
                for w in words {
                    b.extend_from_slice(&w);
                    b.push(0);
                }
                if !nul {
                    b.pop();
                }
                b
            })
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            if let Ok(p) = Packet::parse(&bytes) {
                let _ = p.to_string();
                let again = emitted(&p);
                prop_assert_eq!(Packet::parse(&again), Ok(without_ignored(p)));
            }
            let _ = Opcode::peek(&bytes);
            let _ = Options::parse(&bytes);
        }

        #[test]
        fn no_input_after_an_opcode_panics(op in 0u16..=7, rest in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let mut bytes = op.to_be_bytes().to_vec();
            bytes.extend_from_slice(&rest);
            if let Ok(p) = Packet::parse(&bytes) {
                prop_assert_eq!(p.opcode(), Opcode::from(op));
                let _ = p.to_string();
                let again = emitted(&p);
                prop_assert_eq!(Packet::parse(&again), Ok(without_ignored(p)));
            }
        }

        #[test]
        fn no_request_shaped_input_panics(bytes in tokens()) {
            if let Ok(p) = Packet::parse(&bytes) {
                let _ = p.to_string();
                let again = emitted(&p);
                prop_assert_eq!(Packet::parse(&again), Ok(without_ignored(p)));
            }
        }

        #[test]
    fn round_trip(
            kind in 0usize..6,
            filename in "[^\\x00]{1,64}",
            netascii in any::<bool>(),
            options in options_strategy(),
            block in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..=1500),
            code in any::<u16>(),
            message in "[^\\x00]{0,100}",
        ) {
            let mode = if netascii { Mode::Netascii } else { Mode::Octet };
            let p = match kind {
                0 => Packet::Rrq { filename: &filename, mode, options },
                1 => Packet::Wrq { filename: &filename, mode, options },
                2 => Packet::Data { block: Block(block), data: &data },
                3 => Packet::Ack { block: Block(block) },
                4 => Packet::Error { code: ErrorCode::from(code), message: &message },
                _ => Packet::Oack { options },
            };
            let bytes = emitted(&p);
            prop_assert_eq!(Packet::parse(&bytes), Ok(p));
            prop_assert_eq!(Opcode::peek(&bytes), Ok(p.opcode()));
        }
    }
}
