//! Pure codecs: bytes in, values out.
//!
//! Owns the byte-exact wire formats of every protocol in
//! `shared/spec/protocols.md`. It must never do I/O, read a clock, log, or
//! know about sessions or the reactor. Every decoder returns an error instead
//! of panicking, whatever the input: property tests in each module feed them
//! arbitrary bytes.

#[cfg(test)]
pub(crate) mod captures;
pub mod checksum;
pub mod hello;
pub mod http;
pub mod icmp;
pub mod ipv4;
pub mod lab;
pub mod line;
pub mod msg;
pub mod stopwait;
pub mod tcp;
pub mod tcpfile;
pub mod tftp;
pub mod udp;

use core::fmt;

/// Why bytes could not be decoded. Small and `Copy`: the caller decides
/// whether it closes, answers `ERROR …` or drops the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A line or datagram is longer than the protocol allows.
    TooLong {
        /// The limit, in bytes.
        max: usize,
    },
    /// The verb (first word) is not one the protocol knows.
    UnknownVerb,
    /// A numeric field is missing, not decimal, or out of range.
    BadNumber,
    /// The bytes end before the message does.
    Truncated,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { max } => write!(f, "longer than {max} bytes"),
            Self::UnknownVerb => f.write_str("unknown verb"),
            Self::BadNumber => f.write_str("bad number"),
            Self::Truncated => f.write_str("truncated"),
        }
    }
}

impl std::error::Error for Error {}
