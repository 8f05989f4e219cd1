//! `\n` framing for the text protocols (hello, lab, tcpfile).
//!
//! Owns one rule shared by every line protocol: a line is the bytes up to
//! `\n`, a trailing `\r` is stripped, and a line *including its terminator*
//! must fit in `max` bytes. It never copies: it reports where the line ends
//! and how many bytes it consumed, so callers parse straight out of their
//! receive buffer.
//!
//! Why "including its terminator": the hello contract says both "more than
//! 256 bytes before the newline" and "256 bytes with no newline at all" are
//! errors. Counting the terminator is the one reading that gives the same
//! answer however the bytes are split across reads.

use super::Error;

/// One complete line found at the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    /// Length of the line's content (no `\r`, no `\n`).
    pub len: usize,
    /// Bytes to consume from the buffer, terminator included.
    pub consumed: usize,
}

/// Finds the first complete line in `buf`.
///
/// `Ok(None)`: no `\n` yet and fewer than `max` bytes, so read more.
///
/// # Errors
/// [`Error::TooLong`] when the line, terminator included, cannot fit in `max`
/// bytes; the bytes can never become a valid line.
pub fn split(buf: &[u8], max: usize) -> Result<Option<Line>, Error> {
    let window = &buf[..buf.len().min(max)];
    match memchr(b'\n', window) {
        Some(nl) => Ok(Some(Line {
            len: content_len(&buf[..nl]),
            consumed: nl + 1,
        })),
        None if buf.len() >= max => Err(Error::TooLong { max }),
        None => Ok(None),
    }
}

/// The request inside one datagram: a single trailing `\n` or `\r\n` is
/// ignored, as the hello and lab contracts say for UDP.
pub fn trim_datagram(payload: &[u8]) -> &[u8] {
    let without_nl = payload.strip_suffix(b"\n").unwrap_or(payload);
    without_nl.strip_suffix(b"\r").unwrap_or(without_nl)
}

fn content_len(line: &[u8]) -> usize {
    line.strip_suffix(b"\r").unwrap_or(line).len()
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_line_and_strips_cr() {
        assert_eq!(
            split(b"HELLO 1\r\nrest", 256),
            Ok(Some(Line {
                len: 7,
                consumed: 9
            }))
        );
        assert_eq!(
            split(b"\n", 256),
            Ok(Some(Line {
                len: 0,
                consumed: 1
            }))
        );
    }

    #[test]
    fn incomplete_line_asks_for_more() {
        assert_eq!(split(b"HELLO", 256), Ok(None));
        assert_eq!(split(b"", 256), Ok(None));
    }

    #[test]
    fn limit_counts_the_terminator() {
        let mut ok = vec![b'a'; 255];
        ok.push(b'\n');
        assert_eq!(
            split(&ok, 256),
            Ok(Some(Line {
                len: 255,
                consumed: 256
            }))
        );
        // 256 bytes with no newline: an error now, whatever follows.
        let full = vec![b'a'; 256];
        assert_eq!(split(&full, 256), Err(Error::TooLong { max: 256 }));
        let mut over = vec![b'a'; 256];
        over.push(b'\n');
        assert_eq!(split(&over, 256), Err(Error::TooLong { max: 256 }));
    }

    #[test]
    fn trims_one_datagram_terminator() {
        assert_eq!(trim_datagram(b"HELLO 1\r\n"), b"HELLO 1");
        assert_eq!(trim_datagram(b"HELLO 1\n"), b"HELLO 1");
        assert_eq!(trim_datagram(b"HELLO 1\n\n"), b"HELLO 1\n");
        assert_eq!(trim_datagram(b""), b"");
    }

    proptest! {
        #[test]
        fn split_never_panics_and_stays_in_bounds(buf in proptest::collection::vec(any::<u8>(), 0..600), max in 1usize..400) {
            if let Ok(Some(line)) = split(&buf, max) {
                prop_assert!(line.consumed <= buf.len().min(max));
                prop_assert!(line.len < line.consumed);
                prop_assert_eq!(buf[line.consumed - 1], b'\n');
            }
        }

        #[test]
        fn split_is_independent_of_read_boundaries(buf in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a')], 0..40), cut in 0usize..40) {
            // Whatever prefix has arrived, the answer is either "need more"
            // or exactly the answer for the whole buffer.
            let cut = cut.min(buf.len());
            let whole = split(&buf, 16);
            match split(&buf[..cut], 16) {
                Ok(None) => {}
                partial => prop_assert_eq!(partial, whole),
            }
        }
    }
}
