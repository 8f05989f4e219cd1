//! The lab protocol's bytes: request grammar, stream segment header, and the
//! generated A–Z pattern.
//!
//! Owns the spec's "lab" section at the byte level. Requests arrive framed
//! (a TCP line without its `\n`, or one UDP datagram) and parse into a
//! [`Request`]; limits such as `stream_max_count` and `file_max` are the
//! server's policy, not the codec's, so they are arguments here.
//!
//! ```
//! use mioperf::wire::lab::{Request, StreamSpec};
//! let req = Request::parse(b"stream-0.1-3-64").unwrap();
//! assert_eq!(req, Request::Stream(StreamSpec { interval_ns: 100_000, count: 3, size: 64 }));
//! ```

use core::fmt;

/// Bytes of the header at the start of every stream segment.
pub const SEGMENT_HEADER_LEN: usize = 16;
/// Largest UDP payload over IPv4, and so the largest UDP segment.
pub const MAX_UDP_PAYLOAD: usize = 65_507;
/// The generated file's alphabet; byte `i` of a file is `PATTERN[i % 26]`.
pub const PATTERN: &[u8; 26] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Longest interval a stream may ask for: one hour, in ms.
pub const MAX_INTERVAL_MS: u64 = 3_600_000;

/// A paced stream: `count` segments of `size` bytes, segment `i` due at
/// `start + i × interval_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    /// `round(interval_ms × 1 000 000)`: exact for any decimal the client wrote.
    pub interval_ns: u64,
    /// Segments asked for (before the server's cap).
    pub count: u64,
    /// Bytes per segment, header included (at least 16).
    pub size: u32,
}

/// One lab request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `stream-<interval_ms>-<count>-<size>`.
    Stream(StreamSpec),
    /// `<N>`: a generated file of N bytes (N ≥ 1; the upper limit is policy).
    File(u64),
    /// Anything else: echoed unchanged.
    Echo(&'a [u8]),
}

/// Why a request that looks like a stream or a file is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// `stream-` followed by something that is not `I-C-S`.
    StreamSyntax,
    /// The interval is not a plain non-negative decimal, or above an hour.
    StreamInterval,
    /// The count is not a decimal ≥ 1.
    StreamCount,
    /// The size is not a decimal ≥ 16.
    StreamSize,
    /// `0`, or a number too large for any file.
    FileSize,
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StreamSyntax => {
                "bad stream request: expected stream-<interval_ms>-<count>-<size>"
            }
            Self::StreamInterval => {
                "bad stream request: interval_ms must be a decimal from 0 to 3600000"
            }
            Self::StreamCount => "bad stream request: count must be a decimal of at least 1",
            Self::StreamSize => "bad stream request: size must be a decimal of at least 16",
            Self::FileSize => "bad file request: size must be at least 1",
        })
    }
}

impl<'a> Request<'a> {
    /// Parses one request (a line without terminator, or one datagram).
    ///
    /// A request made only of ASCII digits is a file; one that starts with
    /// `stream-` is a stream; everything else, including numbers with signs
    /// or spaces, is echo — as the spec says.
    ///
    /// # Errors
    /// [`BadRequest`] for a malformed stream or a file of size 0 or beyond
    /// `u64`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BadRequest> {
        if let Some(rest) = bytes.strip_prefix(b"stream-") {
            return parse_stream(rest).map(Self::Stream);
        }
        if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit) {
            return match parse_u64(bytes) {
                Some(0) | None => Err(BadRequest::FileSize),
                Some(n) => Ok(Self::File(n)),
            };
        }
        Ok(Self::Echo(bytes))
    }
}

fn parse_stream(rest: &[u8]) -> Result<StreamSpec, BadRequest> {
    let mut fields = rest.split(|&b| b == b'-');
    let (Some(interval), Some(count), Some(size), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(BadRequest::StreamSyntax);
    };
    let interval_ns = parse_interval_ns(interval).ok_or(BadRequest::StreamInterval)?;
    let count = parse_u64(count)
        .filter(|&c| c >= 1)
        .ok_or(BadRequest::StreamCount)?;
    let size = parse_u64(size)
        .and_then(|s| u32::try_from(s).ok())
        .filter(|&s| s as usize >= SEGMENT_HEADER_LEN)
        .ok_or(BadRequest::StreamSize)?;
    Ok(StreamSpec {
        interval_ns,
        count,
        size,
    })
}

/// A plain decimal: digits only, no sign, no spaces, fits in u64.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// `interval_ms` as written (`1`, `0.1`, `2.5`, `.5`) to nanoseconds,
/// rounded half up at the nanosecond — exact decimal arithmetic, so `0.1`
/// is exactly 100 000 ns.
fn parse_interval_ns(text: &[u8]) -> Option<u64> {
    let (whole, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &[][..]),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let whole_ms = if whole.is_empty() {
        0
    } else {
        parse_u64(whole)?
    };
    if whole_ms > MAX_INTERVAL_MS || (!frac.is_empty() && parse_u64(frac).is_none()) {
        return None;
    }
    let mut ns = whole_ms * 1_000_000;
    let mut scale = 100_000u64; // the first fractional digit is 0.1 ms
    for (i, &d) in frac.iter().enumerate() {
        let digit = u64::from(d - b'0');
        if i < 6 {
            ns += digit * scale;
            scale /= 10;
        } else {
            // The 7th fractional digit is 0.1 ns: round half up, ignore the rest.
            if digit >= 5 {
                ns += 1;
            }
            break;
        }
    }
    (ns <= MAX_INTERVAL_MS * 1_000_000).then_some(ns)
}

/// The 16 bytes at the start of every stream segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Sequence number, from 0.
    pub seq: u64,
    /// When the segment was scheduled, in ns since the stream started:
    /// exactly `seq × interval_ns`.
    pub sched_ns: u64,
}

impl SegmentHeader {
    /// Reads the header from the front of a segment.
    ///
    /// # Errors
    /// [`crate::wire::Error::Truncated`] below 16 bytes.
    pub fn parse(segment: &[u8]) -> Result<Self, crate::wire::Error> {
        let (Some(seq), Some(sched)) = (segment.get(0..8), segment.get(8..16)) else {
            return Err(crate::wire::Error::Truncated);
        };
        let be = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        Ok(Self {
            seq: be(seq),
            sched_ns: be(sched),
        })
    }

    /// Writes the header into the first 16 bytes of `dst`.
    ///
    /// # Panics
    /// If `dst` is shorter than 16 bytes (a caller bug: segments are ≥ 16).
    pub fn emit(&self, dst: &mut [u8]) {
        dst[0..8].copy_from_slice(&self.seq.to_be_bytes());
        dst[8..16].copy_from_slice(&self.sched_ns.to_be_bytes());
    }
}

/// Longest run [`pattern_run`] returns.
pub const PATTERN_RUN: usize = 64 * 1024;

/// The pattern, long enough that any run of up to [`PATTERN_RUN`] bytes
/// starting at any phase is one slice of it: generating and checking the
/// file become `memcpy` and `memcmp`.
static LONG_PATTERN: [u8; PATTERN_RUN + 26] = {
    let mut p = [0u8; PATTERN_RUN + 26];
    let mut i = 0;
    while i < p.len() {
        p[i] = PATTERN[i % 26];
        i += 1;
    }
    p
};

/// The pattern from byte `offset` of a file, `len` bytes long
/// (`len` ≤ [`PATTERN_RUN`], more is cut).
pub fn pattern_run(offset: u64, len: usize) -> &'static [u8] {
    let phase = (offset % 26) as usize;
    &LONG_PATTERN[phase..phase + len.min(PATTERN_RUN)]
}

/// Fills `dst` with the pattern as it continues from byte `offset` of a file.
pub fn fill_pattern(offset: u64, dst: &mut [u8]) {
    let mut offset = offset;
    for chunk in dst.chunks_mut(PATTERN_RUN) {
        chunk.copy_from_slice(pattern_run(offset, chunk.len()));
        offset += chunk.len() as u64;
    }
}

/// Checks that `bytes` are the pattern from byte `offset`; returns the index
/// of the first wrong byte, if any.
pub fn check_pattern(offset: u64, bytes: &[u8]) -> Option<usize> {
    let mut offset = offset;
    let mut base = 0;
    for chunk in bytes.chunks(PATTERN_RUN) {
        let expected = pattern_run(offset, chunk.len());
        if chunk != expected {
            let at = chunk
                .iter()
                .zip(expected)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Some(base + at);
        }
        offset += chunk.len() as u64;
        base += chunk.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_stream_forms() {
        assert_eq!(
            Request::parse(b"stream-10-100-1400"),
            Ok(Request::Stream(StreamSpec {
                interval_ns: 10_000_000,
                count: 100,
                size: 1400
            }))
        );
        assert_eq!(
            Request::parse(b"stream-0-5-16"),
            Ok(Request::Stream(StreamSpec {
                interval_ns: 0,
                count: 5,
                size: 16
            }))
        );
        // "fractional values such as 0.1 are allowed", and round() is exact.
        let ns = |t: &[u8]| match Request::parse(t) {
            Ok(Request::Stream(s)) => s.interval_ns,
            other => panic!("{other:?}"),
        };
        assert_eq!(ns(b"stream-0.1-1-16"), 100_000);
        assert_eq!(ns(b"stream-.5-1-16"), 500_000);
        assert_eq!(ns(b"stream-2.-1-16"), 2_000_000);
        assert_eq!(ns(b"stream-0.0000004-1-16"), 0);
        assert_eq!(ns(b"stream-0.0000005-1-16"), 1);
        assert_eq!(ns(b"stream-0.00000149-1-16"), 1);
        assert_eq!(ns(b"stream-3600000-1-16"), 3_600_000_000_000);
    }

    #[test]
    fn malformed_streams() {
        use BadRequest::*;
        for (req, why) in [
            (&b"stream-"[..], StreamSyntax),
            (b"stream-1-2", StreamSyntax),
            (b"stream-1-2-3-4", StreamSyntax),
            (b"stream--1-2-16", StreamSyntax),
            (b"stream-NaN-2-16", StreamInterval),
            (b"stream-inf-2-16", StreamInterval),
            (b"stream-1e3-2-16", StreamInterval),
            (b"stream-.-2-16", StreamInterval),
            (b"stream- 1-2-16", StreamInterval),
            (b"stream-1.2.3-2-16", StreamInterval),
            (b"stream-3600001-2-16", StreamInterval),
            (b"stream-99999999999999999999-2-16", StreamInterval),
            (b"stream-1-0-16", StreamCount),
            (b"stream-1-+2-16", StreamCount),
            (b"stream-1-99999999999999999999-16", StreamCount),
            (b"stream-1-2-15", StreamSize),
            (b"stream-1-2-", StreamSize),
            (b"stream-1-2-4294967296", StreamSize),
        ] {
            assert_eq!(
                Request::parse(req),
                Err(why),
                "{}",
                String::from_utf8_lossy(req)
            );
        }
    }

    #[test]
    fn files_and_echo() {
        assert_eq!(Request::parse(b"123456789"), Ok(Request::File(123_456_789)));
        assert_eq!(Request::parse(b"1"), Ok(Request::File(1)));
        assert_eq!(Request::parse(b"0"), Err(BadRequest::FileSize));
        assert_eq!(
            Request::parse(b"99999999999999999999"),
            Err(BadRequest::FileSize)
        );
        // Signs and spaces make it "anything else".
        for echo in [
            &b"+5"[..],
            b"-5",
            b" 5",
            b"5 ",
            b"hello",
            b"",
            b"STREAM-1-1-16",
        ] {
            assert_eq!(Request::parse(echo), Ok(Request::Echo(echo)));
        }
    }

    #[test]
    fn header_fixture() {
        // seq 1, scheduled at 1 × 100 µs = 100 000 ns = 0x186A0.
        const BYTES: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0x01, 0x86, 0xA0];
        let h = SegmentHeader {
            seq: 1,
            sched_ns: 100_000,
        };
        let mut buf = [0u8; 16];
        h.emit(&mut buf);
        assert_eq!(buf, BYTES);
        assert_eq!(SegmentHeader::parse(&BYTES), Ok(h));
        assert_eq!(
            SegmentHeader::parse(&BYTES[..15]),
            Err(crate::wire::Error::Truncated)
        );
    }

    #[test]
    fn long_checks_find_the_first_wrong_byte() {
        let mut buf = vec![0u8; 200_000];
        fill_pattern(7, &mut buf);
        assert_eq!(check_pattern(7, &buf), None);
        buf[150_001] = b'!';
        assert_eq!(check_pattern(7, &buf), Some(150_001));
        assert_eq!(pattern_run(25, 3), b"ZAB");
    }

    #[test]
    fn pattern_starts_at_a_and_continues_across_chunks() {
        let mut buf = [0u8; 30];
        fill_pattern(0, &mut buf);
        assert_eq!(&buf, b"ABCDEFGHIJKLMNOPQRSTUVWXYZABCD");
        let mut buf = [0u8; 5];
        fill_pattern(24, &mut buf);
        assert_eq!(&buf, b"YZABC");
        assert_eq!(check_pattern(24, b"YZABC"), None);
        assert_eq!(check_pattern(24, b"YZABD"), Some(4));
        assert_eq!(check_pattern(0, b"B"), Some(0));
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Request::parse(&bytes);
            let mut with_prefix = b"stream-".to_vec();
            with_prefix.extend_from_slice(&bytes);
            let _ = Request::parse(&with_prefix);
            let _ = SegmentHeader::parse(&bytes);
        }

        #[test]
        fn stream_round_trips(ms in 0u64..100_000, frac in 0u32..1_000_000, count in 1u64..u64::MAX, size in 16u32..) {
            let text = format!("stream-{ms}.{frac:06}-{count}-{size}");
            let spec = match Request::parse(text.as_bytes()) {
                Ok(Request::Stream(s)) => s,
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            prop_assert_eq!(spec.interval_ns, ms * 1_000_000 + u64::from(frac));
            prop_assert_eq!(spec.count, count);
            prop_assert_eq!(spec.size, size);
        }

        #[test]
        fn pattern_fill_and_check_agree(offset in 0u64..1_000_000, len in prop_oneof![0usize..200, 65_000usize..140_000]) {
            let mut buf = vec![0u8; len];
            fill_pattern(offset, &mut buf);
            prop_assert_eq!(check_pattern(offset, &buf), None);
            for (i, b) in buf.iter().enumerate() {
                prop_assert_eq!(*b, PATTERN[((offset + i as u64) % 26) as usize]);
            }
        }

        #[test]
        fn header_round_trips(seq in any::<u64>(), sched_ns in any::<u64>()) {
            let h = SegmentHeader { seq, sched_ns };
            let mut buf = [0u8; 16];
            h.emit(&mut buf);
            prop_assert_eq!(SegmentHeader::parse(&buf), Ok(h));
        }
    }
}
