//! Durations as people write them: `250ms`, `5s`, `2m`, `1.5s`, `100us`,
//! `1h`, compounds such as `1m30s` or `1h 30m`, and a bare number, which
//! counts seconds (`10`, `0.5`), as iperf3's `-t` and `-i` do.
//!
//! The one duration parser of every flag and config key. Pure: a string
//! in, a `Duration` or a one-line message out. It never decides what a
//! value means for its flag (that zero means "off" or "no limit", or is
//! refused): the flag's owner does.
//!
//! Hand-written rather than `humantime`'s: that crate refuses fractions
//! (`1.5s`, `0.5`) and bare numbers, which iperf3 users type, and its
//! `m` would have to be relearned as months-or-minutes; what we accept
//! is small enough to keep whole here.

use crate::time::Duration;

/// The units, their lengths in nanoseconds, and what messages list.
const UNITS: [(&str, u128); 12] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("sec", 1_000_000_000),
    ("m", 60_000_000_000),
    ("min", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("hr", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// What to show after a bad duration.
const EXAMPLES: &str = "e.g. 10, 0.5, 250ms, 5s, 2m, 1h, 1m30s";

/// Parses a duration: a bare number of seconds (`10`, `0.5`), or one or
/// more `<number><unit>` parts (`250ms`, `1.5s`, `1m30s`, `1h 30m`) with
/// unit `ns`, `us`, `ms`, `s`, `m`, `h` or `d`. Fractional digits beyond
/// a nanosecond are dropped.
///
/// # Errors
/// A message naming the problem, for clap or the config loader to show.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let not_a_duration = || format!("'{text}' is not a duration ({EXAMPLES})");
    let too_long = || format!("'{text}' is too long");
    if text.is_empty() {
        return Err(not_a_duration());
    }
    let mut rest = text;
    let mut total: u128 = 0;
    let mut parts = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let nanos_per_unit = if unit.is_empty() {
            // A bare number is seconds, and only alone: `5 s` or `1m30`
            // is more likely a typo than a sum.
            if parts > 0 || !tail.is_empty() {
                return Err(not_a_duration());
            }
            1_000_000_000
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|&(_, nanos)| nanos)
                .ok_or_else(|| {
                    format!("'{text}': unknown unit '{unit}' (use ns, us, ms, s, m, h or d)")
                })?
        };
        let part = match scaled(number, nanos_per_unit) {
            Ok(nanos) => nanos,
            Err(Bad::NotANumber) => return Err(not_a_duration()),
            Err(Bad::TooLong) => return Err(too_long()),
        };
        total = total.checked_add(part).ok_or_else(too_long)?;
        parts += 1;
        rest = tail.trim_start();
    }
    let nanos = u64::try_from(total).map_err(|_| too_long())?;
    Ok(Duration::from_nanos(nanos))
}

/// Why a number part was refused.
enum Bad {
    /// Not digits with at most one `.`.
    NotANumber,
    /// More nanoseconds than a `u128` holds.
    TooLong,
}

/// `number` (digits with at most one `.`) times `unit` nanoseconds.
fn scaled(number: &str, unit: u128) -> Result<u128, Bad> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits_ok(whole) || !digits_ok(frac) {
        return Err(Bad::NotANumber);
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| Bad::TooLong)?
    };
    let mut nanos = whole.checked_mul(unit).ok_or(Bad::TooLong)?;
    let mut scale = unit;
    for digit in frac.bytes() {
        scale /= 10;
        nanos += u128::from(digit - b'0') * scale;
    }
    Ok(nanos)
}

/// A duration in a config file: a string in the language of [`parse`]
/// (`id_ttl = "30s"`), or a TOML number of seconds (`id_ttl = 30`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl<'de> serde::Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Reads a number of seconds or a string.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a duration: a string such as \"250ms\" or a number of seconds")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
                Duration::try_from_secs_f64(v)
                    .map_err(|_| E::custom(format!("{v} is not a number of seconds")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor).map(Self)
    }
}

/// Formats a duration the way [`parse`] reads it, with the largest exact unit.
pub fn format(d: Duration) -> String {
    let ns = d.as_nanos();
    for (unit, size) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if ns >= size && ns.is_multiple_of(size) {
            return format!("{}{unit}", ns / size);
        }
    }
    format!("{ns}ns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_forms() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("100\u{b5}s"), Ok(Duration::from_micros(100)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse("5sec"), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn bare_numbers_are_seconds_as_in_iperf3() {
        assert_eq!(parse("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse(" 30 "), Ok(Duration::from_secs(30)));
        assert_eq!(parse(".25"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn compounds_add_up() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m 0.5s"), Ok(Duration::from_millis(120_500)));
    }

    #[test]
    fn fractions() {
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0.1ms"), Ok(Duration::from_micros(100)));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.0000000009s"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "s",
            "ms",
            "-1s",
            "-1",
            "1.2.3s",
            "5 s",
            "1m30",
            "1e3ms",
            "abc",
            "NaN",
            "inf",
            "99999999999999999999h",
            "1..s",
            "5x",
            "1m,30s",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains('\n') && e.contains('\''), "{bad:?}: {e}");
        }
        assert!(parse("5x").unwrap_err().contains("unknown unit 'x'"));
        assert!(
            parse("99999999999999999999h")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::from_secs(30),
            Duration::from_millis(250),
            Duration::from_secs(120),
            Duration::from_nanos(3),
            Duration::from_micros(1500),
        ] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(Duration::from_secs(120)), "2m");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse(&s);
        }

        #[test]
        fn whole_millis_round_trip(ms in 0u64..10_000_000) {
            prop_assert_eq!(parse(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
        }

        #[test]
        fn any_duration_round_trips_through_format(ns in 0u64..u64::MAX) {
            let d = Duration::from_nanos(ns);
            prop_assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
