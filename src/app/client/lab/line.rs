//! What a line typed at the lab prompt asks for, and how a stream request
//! is put together from its three answers or from a target bit rate.
//!
//! Owns the prompt's grammar (an integer, `stream`, `quit`, anything else)
//! and the arithmetic of `-b/--bitrate`. Pure functions of text and
//! numbers: it never reads a terminal or opens a socket, so every rule is
//! unit-tested below. The requests it builds are checked against the wire
//! grammar (`wire::lab`), whose errors it shows as they are.

use crate::wire::lab::{MAX_INTERVAL_MS, Request, SEGMENT_HEADER_LEN};

/// What one line at the prompt asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// Nothing (an empty line is skipped, as a shell does).
    Empty,
    /// `quit`: end the prompt.
    Quit,
    /// `stream`: ask interval, count and size, then run a stream.
    Stream,
    /// A request to send as it is: a file (`N`), a stream written out
    /// (`stream-I-C-S`), or text to echo.
    Request(String),
}

/// Reads one line (without its `\n`).
///
/// Words and numbers are recognised with the surrounding white space
/// trimmed; text to echo is sent as typed (less a `\r` before the end).
///
/// # Errors
/// A one-line reason, for a number that no server would take (0, or too
/// large for any file) and a malformed `stream-…` request: said here
/// rather than sent, so the user can type it again.
pub(super) fn parse(line: &str) -> Result<Line, String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let word = line.trim();
    if word.is_empty() {
        return Ok(Line::Empty);
    }
    if word == "quit" {
        return Ok(Line::Quit);
    }
    if word == "stream" {
        return Ok(Line::Stream);
    }
    if word.bytes().all(|b| b.is_ascii_digit()) {
        return match word.parse::<u64>() {
            Ok(0) => Err("a file of 0 bytes: ask for at least 1".into()),
            Ok(_) => Ok(Line::Request(word.to_owned())),
            Err(_) => Err(format!(
                "{}: too large for a file size (at most {} bytes)",
                shorten(word),
                u64::MAX
            )),
        };
    }
    if word.starts_with("stream-") {
        checked(word)?;
        return Ok(Line::Request(word.to_owned()));
    }
    Ok(Line::Request(line.to_owned()))
}

/// Digits shown of a number too long to repeat whole.
const SHOWN_DIGITS: usize = 24;

/// A long word cut to [`SHOWN_DIGITS`] characters, so an error stays on
/// one readable line.
fn shorten(word: &str) -> String {
    match word.char_indices().nth(SHOWN_DIGITS) {
        Some((at, _)) => format!("{}…", &word[..at]),
        None => word.to_owned(),
    }
}

/// `text` if the wire grammar takes it as a stream request.
fn checked(text: &str) -> Result<(), String> {
    match Request::parse(text.as_bytes()) {
        Ok(Request::Stream(_)) => Ok(()),
        Ok(_) => Err(format!("{text}: not a stream request")),
        Err(bad) => Err(bad.to_string()),
    }
}

/// A stream's shape before it is written as a request: the interval as
/// the user wrote it (milliseconds, a decimal), or a bit rate to derive it
/// from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Pace {
    /// `interval_ms` as written (`1`, `0.25`).
    Interval(String),
    /// A target rate in bits/s (`-b`).
    Bitrate(u64),
}

/// Nanoseconds in a second, for the rate arithmetic.
const NS_PER_S: u128 = 1_000_000_000;

/// The interval that sends `size`-byte segments at `bits_per_s`:
/// `size × 8 / rate`, rounded to the nanosecond.
///
/// # Errors
/// One line when the rate is 0, or when the interval falls outside what a
/// stream can say: below 1 ns (the stream header counts whole
/// nanoseconds, and an interval of 0 means "as fast as possible", not a
/// rate) or above the hour a request may ask.
pub(super) fn interval_for_rate(size: u32, bits_per_s: u64) -> Result<u64, String> {
    if bits_per_s == 0 {
        return Err("-b 0: a stream needs a rate above 0 bit/s".into());
    }
    let bits_ns = u128::from(size) * 8 * NS_PER_S;
    let rate = u128::from(bits_per_s);
    let fastest = bits_ns; // bit/s at a 1 ns interval
    if bits_ns < rate {
        return Err(format!(
            "-b {bits_per_s} bit/s with {size}-byte segments needs less than 1 ns between \
             segments: the stream header counts whole nanoseconds, so at most {fastest} bit/s \
             at this size (use larger segments)"
        ));
    }
    let ns = (bits_ns + rate / 2) / rate;
    let max_ns = u128::from(MAX_INTERVAL_MS) * 1_000_000;
    if ns > max_ns {
        return Err(format!(
            "-b {bits_per_s} bit/s with {size}-byte segments is one segment every {} s: \
             a stream's interval is at most an hour (raise -b or the size)",
            ns / NS_PER_S
        ));
    }
    u64::try_from(ns).map_err(|_| "the interval does not fit".to_owned())
}

/// `ns` as the request's `interval_ms`: a decimal that the wire parser
/// reads back as exactly `ns`.
pub(super) fn interval_ms_text(ns: u64) -> String {
    let whole = ns / 1_000_000;
    let frac = ns % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The request `stream-I-C-S` for `count` segments of `size` bytes paced
/// by `pace`.
///
/// # Errors
/// One line when a field is out of range (the wire grammar's words) or
/// the rate cannot be met (see [`interval_for_rate`]).
pub(super) fn stream_request(pace: &Pace, count: u64, size: u64) -> Result<String, String> {
    let size32 = u32::try_from(size)
        .ok()
        .filter(|&s| s as usize >= SEGMENT_HEADER_LEN)
        .ok_or_else(|| {
            format!("size {size}: a segment is at least {SEGMENT_HEADER_LEN} bytes (its header)")
        })?;
    let interval = match pace {
        Pace::Interval(text) => text.trim().to_owned(),
        Pace::Bitrate(rate) => interval_ms_text(interval_for_rate(size32, *rate)?),
    };
    let request = format!("stream-{interval}-{count}-{size}");
    checked(&request)?;
    Ok(request)
}

/// A number answered at the prompt (`count`, `size`); the default when
/// the answer is empty.
///
/// # Errors
/// One line when the answer is not a plain decimal.
pub(super) fn answer_number(what: &str, answer: &str, default: u64) -> Result<u64, String> {
    let answer = answer.trim();
    if answer.is_empty() {
        return Ok(default);
    }
    answer
        .parse::<u64>()
        .map_err(|_| format!("{what} '{}': expected a decimal number", shorten(answer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_kinds_of_line() {
        assert_eq!(parse("10"), Ok(Line::Request("10".into())));
        assert_eq!(parse("stream"), Ok(Line::Stream));
        assert_eq!(parse("quit"), Ok(Line::Quit));
        assert_eq!(parse("hello lab"), Ok(Line::Request("hello lab".into())));
        assert_eq!(parse(""), Ok(Line::Empty));
    }

    #[test]
    fn words_are_trimmed_and_echo_text_is_not() {
        assert_eq!(parse("  42 \r"), Ok(Line::Request("42".into())));
        assert_eq!(parse(" stream\t"), Ok(Line::Stream));
        assert_eq!(parse(" quit "), Ok(Line::Quit));
        assert_eq!(parse("   "), Ok(Line::Empty));
        assert_eq!(parse(" hi \r"), Ok(Line::Request(" hi ".into())));
        // Not a word of the prompt: echoed.
        assert_eq!(parse("quit now"), Ok(Line::Request("quit now".into())));
        assert_eq!(parse("-5"), Ok(Line::Request("-5".into())));
        assert_eq!(parse("streams"), Ok(Line::Request("streams".into())));
    }

    #[test]
    fn numbers_no_server_takes_are_refused_in_one_line() {
        let huge = "1".repeat(100);
        let err = parse(&huge).unwrap_err();
        assert!(err.contains("too large") && !err.contains('\n'), "{err}");
        assert!(err.len() < 120, "the number is shortened: {err}");
        assert!(parse("18446744073709551616").is_err(), "u64::MAX + 1");
        assert_eq!(
            parse("18446744073709551615"),
            Ok(Line::Request("18446744073709551615".into())),
            "the server's own limit answers this one"
        );
        assert!(parse("0").unwrap_err().contains("at least 1"));
    }

    #[test]
    fn a_written_out_stream_is_checked_before_it_is_sent() {
        assert_eq!(
            parse("stream-0.5-10-100"),
            Ok(Line::Request("stream-0.5-10-100".into()))
        );
        let err = parse("stream-1-10-8").unwrap_err();
        assert!(err.contains("size must be"), "{err}");
        assert!(parse("stream-x").is_err());
    }

    #[test]
    fn bitrate_gives_size_times_8_over_rate() {
        // 1400 B at 11.2 Mbit/s: 1 ms.
        assert_eq!(interval_for_rate(1400, 11_200_000), Ok(1_000_000));
        // 100 B at 1 Gbit/s: 800 ns.
        assert_eq!(interval_for_rate(100, 1_000_000_000), Ok(800));
        // Rounded to the nearest ns: 1000 B at 3 Gbit/s is 2666.67 ns.
        assert_eq!(interval_for_rate(1000, 3_000_000_000), Ok(2667));
        // Exactly 1 ns is the fastest a header can say.
        assert_eq!(interval_for_rate(16, 128_000_000_000), Ok(1));
    }

    #[test]
    fn a_rate_the_header_cannot_express_is_one_line() {
        let err = interval_for_rate(16, 128_000_000_001).unwrap_err();
        assert!(
            err.contains("1 ns") && err.contains("128000000000 bit/s"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        assert!(interval_for_rate(1400, 0).is_err());
        // 1 bit/s with 1 MB segments: 8 000 000 s, far beyond an hour.
        assert!(
            interval_for_rate(1_000_000, 1)
                .unwrap_err()
                .contains("an hour")
        );
    }

    #[test]
    fn the_interval_is_written_so_the_wire_reads_it_back_exactly() {
        for ns in [1, 800, 2667, 1_000_000, 1_234_567, 3_600_000_000_000] {
            let text = interval_ms_text(ns);
            let req = format!("stream-{text}-1-16");
            let Ok(Request::Stream(spec)) = Request::parse(req.as_bytes()) else {
                panic!("{req}")
            };
            assert_eq!(spec.interval_ns, ns, "{text}");
        }
        assert_eq!(interval_ms_text(1_500_000), "1.5");
        assert_eq!(interval_ms_text(800), "0.0008");
    }

    #[test]
    fn stream_requests_from_answers_or_a_rate() {
        let by_interval = stream_request(&Pace::Interval("0.5".into()), 10, 100);
        assert_eq!(by_interval, Ok("stream-0.5-10-100".into()));
        let by_rate = stream_request(&Pace::Bitrate(8_000_000), 5, 1000);
        assert_eq!(by_rate, Ok("stream-1-5-1000".into()));
        assert!(stream_request(&Pace::Interval("abc".into()), 10, 100).is_err());
        assert!(stream_request(&Pace::Interval("1".into()), 0, 100).is_err());
        assert!(stream_request(&Pace::Interval("1".into()), 1, 15).is_err());
        assert!(stream_request(&Pace::Interval("1".into()), 1, u64::from(u32::MAX) + 1).is_err());
    }

    #[test]
    fn answers_default_when_empty() {
        assert_eq!(answer_number("count", "", 7), Ok(7));
        assert_eq!(answer_number("count", " 12 ", 7), Ok(12));
        assert!(answer_number("count", "twelve", 7).is_err());
    }
}
