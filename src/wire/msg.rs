//! msg frames: a 4-byte big-endian length, then that many bytes.
//!
//! Owns the frame header and the two answers the server sends as frames:
//! `OK <L>` (receipt) and `ERR too large <max>`. It never buffers a
//! payload: the header says how long the body is, and callers count body
//! bytes as they pass.
//!
//! ```
//! use mioperf::wire::msg::{Answer, FrameHeader};
//! let mut out = bytes::BytesMut::new();
//! Answer::Ok(5).emit_frame(&mut out);
//! assert_eq!(&out[..], b"\0\0\0\x04OK 5");
//! assert_eq!(FrameHeader::parse(&out).unwrap().len, 4);
//! ```

use super::Error;
use bytes::BytesMut;
use core::fmt::Write as _;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;
/// The spec's default `msg_max`: 64 MiB.
pub const DEFAULT_MAX: u32 = 64 * 1024 * 1024;

/// The length prefix of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload bytes that follow.
    pub len: u32,
}

impl FrameHeader {
    /// Reads the header at the front of `buf`.
    ///
    /// # Errors
    /// [`Error::Truncated`] below 4 bytes.
    pub fn parse(buf: &[u8]) -> Result<Self, Error> {
        let bytes: [u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::Truncated)?;
        Ok(Self {
            len: u32::from_be_bytes(bytes),
        })
    }

    /// Appends the 4 header bytes.
    pub fn emit(&self, dst: &mut BytesMut) {
        dst.extend_from_slice(&self.len.to_be_bytes());
    }
}

/// A frame whose payload is `payload`.
///
/// # Errors
/// [`Error::TooLong`] when the payload does not fit in a u32 length.
pub fn emit_frame(payload: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
    let len = u32::try_from(payload.len()).map_err(|_| Error::TooLong {
        max: u32::MAX as usize,
    })?;
    FrameHeader { len }.emit(dst);
    dst.extend_from_slice(payload);
    Ok(())
}

/// What the server answers, as the payload of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `OK <L>`: a frame of L payload bytes arrived whole.
    Ok(u64),
    /// `ERR too large <max>`: the announced length is above `msg_max`.
    TooLarge(u64),
}

impl Answer {
    /// Appends the answer as one frame.
    pub fn emit_frame(&self, dst: &mut BytesMut) {
        let mut text = String::with_capacity(24);
        // Writing into a String cannot fail.
        let _ = match self {
            Self::Ok(len) => write!(text, "OK {len}"),
            Self::TooLarge(max) => write!(text, "ERR too large {max}"),
        };
        // Under 4 GiB by construction.
        let _ = emit_frame(text.as_bytes(), dst);
    }

    /// Parses an answer payload (the bytes after the length prefix).
    ///
    /// # Errors
    /// [`Error::UnknownVerb`] or [`Error::BadNumber`].
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let number = |digits: &[u8]| -> Result<u64, Error> {
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(Error::BadNumber);
            }
            core::str::from_utf8(digits)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Error::BadNumber)
        };
        if let Some(rest) = payload.strip_prefix(b"OK ") {
            Ok(Self::Ok(number(rest)?))
        } else if let Some(rest) = payload.strip_prefix(b"ERR too large ") {
            Ok(Self::TooLarge(number(rest)?))
        } else {
            Err(Error::UnknownVerb)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_fixtures() {
        // A 5-byte frame, and the receipt `OK 5` as a frame.
        let mut out = BytesMut::new();
        emit_frame(b"hello", &mut out).unwrap();
        assert_eq!(&out[..], b"\x00\x00\x00\x05hello");
        out.clear();
        Answer::Ok(5).emit_frame(&mut out);
        assert_eq!(&out[..], b"\x00\x00\x00\x04OK 5");
        out.clear();
        Answer::TooLarge(67_108_864).emit_frame(&mut out);
        assert_eq!(&out[4..], b"ERR too large 67108864");
        assert_eq!(FrameHeader::parse(&out).unwrap().len, 22);
    }

    #[test]
    fn header_needs_four_bytes() {
        assert_eq!(FrameHeader::parse(b"\x00\x00\x01"), Err(Error::Truncated));
        assert_eq!(
            FrameHeader::parse(b"\xff\xff\xff\xff").unwrap().len,
            u32::MAX
        );
    }

    #[test]
    fn answers_parse() {
        assert_eq!(Answer::parse(b"OK 0"), Ok(Answer::Ok(0)));
        assert_eq!(Answer::parse(b"ERR too large 10"), Ok(Answer::TooLarge(10)));
        assert_eq!(Answer::parse(b"OK"), Err(Error::UnknownVerb));
        assert_eq!(Answer::parse(b"OK -1"), Err(Error::BadNumber));
        assert_eq!(Answer::parse(b"OK 1 "), Err(Error::BadNumber));
        assert_eq!(Answer::parse(b"NO 1"), Err(Error::UnknownVerb));
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = FrameHeader::parse(&bytes);
            let _ = Answer::parse(&bytes);
        }

        #[test]
        fn answers_round_trip(n in any::<u64>(), ok in any::<bool>()) {
            let a = if ok { Answer::Ok(n) } else { Answer::TooLarge(n) };
            let mut out = BytesMut::new();
            a.emit_frame(&mut out);
            let h = FrameHeader::parse(&out).unwrap();
            prop_assert_eq!(h.len as usize, out.len() - HEADER_LEN);
            prop_assert_eq!(Answer::parse(&out[HEADER_LEN..]), Ok(a));
        }
    }
}
