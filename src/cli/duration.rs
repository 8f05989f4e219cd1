//! Durations as people write them: `250ms`, `5s`, `2m`, `1.5s`, `100us`.
//!
//! Pure: a string in, a `Duration` or a message out. A bare number is
//! refused: `5` could mean seconds or milliseconds, and guessing wrong
//! silently is worse than asking.

use crate::time::Duration;

/// Parses `<number><unit>` with unit `ns`, `us`, `ms`, `s`, `m` or `h`.
/// The number may have a fractional part (`0.5s`).
///
/// # Errors
/// A message naming the problem, for clap or the config loader to show.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| {
            format!("'{text}' needs a unit: ns, us, ms, s, m or h (e.g. 250ms, 5s, 2m)")
        })?;
    let (number, unit) = text.split_at(split);
    let nanos_per_unit: u128 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{unit}' (use ns, us, ms, s, m or h)"
            ));
        }
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits_ok(whole) || !digits_ok(frac) {
        return Err(format!("'{text}' is not a duration (e.g. 250ms, 5s, 2m)"));
    }
    let too_long = || format!("'{text}' is too long");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_long())?
    };
    let mut nanos = whole.checked_mul(nanos_per_unit).ok_or_else(too_long)?;
    // Fractional digits beyond nanosecond precision are dropped.
    let mut scale = nanos_per_unit;
    for digit in frac.bytes() {
        scale /= 10;
        nanos += u128::from(digit - b'0') * scale;
    }
    let nanos = u64::try_from(nanos).map_err(|_| too_long())?;
    Ok(Duration::from_nanos(nanos))
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
            "5",
            "s",
            "ms",
            "-1s",
            "1.2.3s",
            "5 s",
            "5sec",
            "1e3ms",
            "abc",
            "99999999999999999999h",
            "1..s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
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
    }
}
