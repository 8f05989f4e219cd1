//! Sizes and rates as people write them: the one parser behind every size
//! and rate flag of every command and every size key of the config file.
//!
//! Owns the language: `1400`, `10K` = `10k` = `10KB` (SI, powers of 1000,
//! as iperf3 and link rates are quoted), `64Ki` = `64KiB` (IEC, powers of
//! 1024, as `ls -h` and curl print sizes), fractions (`1.5G`), spaces
//! (`64 GiB`, as help texts print defaults); and for rates, units of bits
//! or bytes per second (`100Mbit/s`, `1Gbps`, `10MB/s`). Numbers come from
//! the `parse-size` crate (exact to the last of 64 bits, scientific
//! notation, no allocation); this module adds the rate suffixes it does
//! not know and the messages users see.
//!
//! Pure: a string in, a number or a one-line message out. It never
//! decides what a value means for a protocol (ranges beyond the type's,
//! zero): the flag's owner does.

use core::fmt;
use parse_size::{ByteSuffix, Config, Error};

/// Sizes: K/M/G/T are powers of 1000, Ki/Mi/Gi/Ti of 1024, a trailing `B`
/// optional, case ignored.
const SIZE: Config = Config::new().with_decimal();

/// The number part of a rate, once its `bit`/`B` and `/s` are taken off:
/// another `B` would be a typo (`10MBB/s`).
const RATE_NUMBER: Config = Config::new()
    .with_decimal()
    .with_byte_suffix(ByteSuffix::Deny);

/// What to show after a bad size.
const SIZE_EXAMPLES: &str = "e.g. 1400, 64K, 1.5M, 64KiB, 1G";

/// What to show after a bad rate in bits per second.
const BIT_RATE_EXAMPLES: &str = "e.g. 10M, 1.5Gbit, 100Mbit/s, 1Gbps, 10MB/s";

/// What to show after a bad rate in bytes per second.
const BYTE_RATE_EXAMPLES: &str = "e.g. 1250000, 10M, 1MiB/s, 80Mbit/s";

/// A byte count: `1400`, `10K`, `10KB`, `64Ki`, `64KiB`, `1.5G`, `64 GiB`.
///
/// # Errors
/// A one-line message naming the text and showing what is accepted.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower.ends_with("bit") || lower.ends_with("bits") || lower.ends_with("/s") {
        return Err(format!(
            "'{trimmed}': a size is in bytes, not a rate ({SIZE_EXAMPLES})"
        ));
    }
    SIZE.parse_size(trimmed).map_err(|e| match e {
        Error::PosOverflow => format!("'{trimmed}' is too large"),
        _ => format!("'{trimmed}' is not a size ({SIZE_EXAMPLES})"),
    })
}

/// [`parse_size`], for a setting held in a narrower type: `u32`, `u16`, `usize`.
///
/// # Errors
/// As [`parse_size`], or the value does not fit `T`.
pub fn parse_size_as<T>(text: &str) -> Result<T, String>
where
    T: TryFrom<u64> + Bounded,
{
    narrow(text.trim(), parse_size(text)?)
}

/// [`parse_size`] within `min..=max`, for sizes a protocol bounds (a TFTP
/// block, an MTU).
///
/// # Errors
/// As [`parse_size`], or the value is outside the range (the message says it).
pub fn parse_size_within<T>(text: &str, min: u64, max: u64) -> Result<T, String>
where
    T: TryFrom<u64>,
{
    let value = parse_size(text)?;
    if (min..=max).contains(&value) {
        T::try_from(value).map_err(|_| format!("'{}' is too large", text.trim()))
    } else {
        Err(format!("'{}' is outside {min}..={max} bytes", text.trim()))
    }
}

/// `value` as a `T`, or a message saying the largest a `T` holds.
fn narrow<T: TryFrom<u64> + Bounded>(text: &str, value: u64) -> Result<T, String> {
    T::try_from(value).map_err(|_| format!("'{text}' is too large (at most {})", T::MAX_U64))
}

/// The integer types a size may be narrowed to, and their largest value.
pub trait Bounded {
    /// The type's largest value.
    const MAX_U64: u64;
}

impl Bounded for u16 {
    const MAX_U64: u64 = Self::MAX as u64;
}

impl Bounded for u32 {
    const MAX_U64: u64 = Self::MAX as u64;
}

impl Bounded for u64 {
    const MAX_U64: Self = Self::MAX;
}

impl Bounded for usize {
    const MAX_U64: u64 = Self::MAX as u64;
}

/// Whether a rate counts bits or bytes per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateUnit {
    /// Bits per second (iperf3's `-b`, link speeds).
    Bits,
    /// Bytes per second (a shaper's budget, curl's `--limit-rate`).
    Bytes,
}

impl fmt::Display for RateUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bits => "bit/s",
            Self::Bytes => "bytes/s",
        })
    }
}

/// A rate in bits per second. A bare number counts bits (`10M`, as
/// iperf3's `-b`); `bit`, `bits`, `b` (`1.5Gbit`, `100Mbit/s`, `1Gbps`)
/// say so, `B` (`10MB/s`, `1MiB/s`) counts bytes, eight bits each.
///
/// # Errors
/// A one-line message naming the text and showing what is accepted.
pub fn parse_bit_rate(text: &str) -> Result<u64, String> {
    parse_rate(text, RateUnit::Bits)
}

/// A rate in bytes per second. A bare number counts bytes (`10M`,
/// `1Mi`, as curl's `--limit-rate`); `B` (`10MB/s`) says so, and
/// `bit`, `bits`, `b` (`80Mbit/s`, `1Gbps`) count bits, rounded to the
/// nearest byte.
///
/// # Errors
/// A one-line message naming the text and showing what is accepted.
pub fn parse_byte_rate(text: &str) -> Result<u64, String> {
    parse_rate(text, RateUnit::Bytes)
}

/// A rate in `want` units; a number without `b`/`B` counts `want`.
///
/// # Errors
/// A one-line message naming the text and showing what is accepted.
pub fn parse_rate(text: &str, want: RateUnit) -> Result<u64, String> {
    let trimmed = text.trim();
    let examples = match want {
        RateUnit::Bits => BIT_RATE_EXAMPLES,
        RateUnit::Bytes => BYTE_RATE_EXAMPLES,
    };
    let not_a_rate = || format!("'{trimmed}' is not a rate in {want} ({examples})");
    let body = trimmed
        .strip_suffix("/s")
        .or_else(|| trimmed.strip_suffix("ps"))
        .unwrap_or(trimmed)
        .trim_end();
    let (number, given) = if let Some(n) = body
        .strip_suffix("bits")
        .or_else(|| body.strip_suffix("bit"))
        .or_else(|| body.strip_suffix('b'))
    {
        (n, RateUnit::Bits)
    } else if let Some(n) = body.strip_suffix('B') {
        (n, RateUnit::Bytes)
    } else {
        (body, want)
    };
    let value = RATE_NUMBER.parse_size(number).map_err(|e| match e {
        Error::PosOverflow => format!("'{trimmed}' is too large"),
        _ => not_a_rate(),
    })?;
    match (given, want) {
        (RateUnit::Bits, RateUnit::Bytes) => {
            let bytes = value / 8 + u64::from(value % 8 >= 4);
            if bytes == 0 && value > 0 {
                Err(format!("'{trimmed}' is less than one byte per second"))
            } else {
                Ok(bytes)
            }
        }
        (RateUnit::Bytes, RateUnit::Bits) => value
            .checked_mul(8)
            .ok_or_else(|| format!("'{trimmed}' is too large")),
        _ => Ok(value),
    }
}

/// A byte count in a config file: a TOML integer, or a string in the
/// language of [`parse_size`] (`max_file_size = "64GiB"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigSize(pub u64);

/// A rate in bytes per second in a config file: a TOML integer, or a
/// string in the language of [`parse_byte_rate`] (`"1MB/s"`, `"8Mbit/s"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigByteRate(pub u64);

impl ConfigSize {
    /// The value as a `T`, or a message naming `key`.
    ///
    /// # Errors
    /// The value does not fit `T`.
    pub fn get<T: TryFrom<u64> + Bounded>(self, key: &str) -> Result<T, String> {
        narrow(&self.0.to_string(), self.0).map_err(|e| format!("{key}: {e}"))
    }
}

/// Reads an integer or a string through `parse`.
struct Visitor {
    parse: fn(&str) -> Result<u64, String>,
    expecting: &'static str,
}

impl serde::de::Visitor<'_> for Visitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
        (self.parse)(v).map_err(E::custom)
    }
}

impl<'de> serde::Deserialize<'de> for ConfigSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Visitor {
            parse: parse_size,
            expecting: "a byte count: an integer or a string such as \"64KiB\" or \"1G\"",
        })
        .map(Self)
    }
}

impl<'de> serde::Deserialize<'de> for ConfigByteRate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Visitor {
            parse: parse_byte_rate,
            expecting: "bytes per second: an integer or a string such as \"1MB/s\" or \"8Mbit/s\"",
        })
        .map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_as_people_write_them() {
        for (text, want) in [
            ("1400", 1400),
            ("0", 0),
            ("10K", 10_000),
            ("10k", 10_000),
            ("10KB", 10_000),
            ("10kB", 10_000),
            ("64Ki", 65_536),
            ("64KiB", 65_536),
            ("64kib", 65_536),
            ("1.5G", 1_500_000_000),
            ("1G", 1_000_000_000),
            ("1Gi", 1 << 30),
            ("64 GiB", 64 << 30),
            ("100M", 100_000_000),
            ("1.5M", 1_500_000),
            (" 7 ", 7),
            ("1e3", 1000),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn bad_sizes_are_one_line_messages() {
        for (text, says) in [
            ("", "not a size"),
            ("M", "not a size"),
            ("10Q", "not a size"),
            ("-1", "not a size"),
            ("ten", "not a size"),
            ("99999999999999999999", "too large"),
            ("20000000000G", "too large"),
            ("10Mbit", "not a rate"),
            ("10M/s", "not a rate"),
        ] {
            let e = parse_size(text).unwrap_err();
            assert!(e.contains(says) && !e.contains('\n'), "{text:?}: {e}");
        }
    }

    #[test]
    fn narrow_sizes_say_their_bound() {
        assert_eq!(parse_size_as::<u32>("64Mi"), Ok(64 << 20));
        assert_eq!(parse_size_as::<usize>("256Ki"), Ok(256 << 10));
        let e = parse_size_as::<u16>("64Ki").unwrap_err();
        assert!(e.contains("at most 65535"), "{e}");
        assert_eq!(parse_size_within::<u16>("1Ki", 8, 65_464), Ok(1024));
        let e = parse_size_within::<u16>("7", 8, 65_464).unwrap_err();
        assert!(e.contains("8..=65464"), "{e}");
    }

    #[test]
    fn bit_rates_as_iperf3_users_write_them() {
        for (text, want) in [
            ("10M", 10_000_000),
            ("1400", 1400),
            ("1.5Gbit", 1_500_000_000),
            ("100Mbit/s", 100_000_000),
            ("1Gbps", 1_000_000_000),
            ("10Mb/s", 10_000_000),
            ("2 Mbits", 2_000_000),
            ("1Mi", 1 << 20),
            ("10MB/s", 80_000_000),
            ("1MiB/s", 8 << 20),
            ("10MBps", 80_000_000),
            ("0", 0),
        ] {
            assert_eq!(parse_bit_rate(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn byte_rates_count_bytes_unless_told_bits() {
        for (text, want) in [
            ("1250000", 1_250_000),
            ("10k", 10_000),
            ("10M", 10_000_000),
            ("2G", 2_000_000_000),
            ("1Mi", 1 << 20),
            ("1MiB/s", 1 << 20),
            ("10MB/s", 10_000_000),
            ("80Mbit/s", 10_000_000),
            ("1Gbps", 125_000_000),
            ("12bit/s", 2),
        ] {
            assert_eq!(parse_byte_rate(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn bad_rates_are_one_line_messages() {
        for (text, says) in [
            ("", "not a rate in bit/s"),
            ("fast", "not a rate"),
            ("10MBB/s", "not a rate"),
            ("10Mbytes/s", "not a rate"),
            ("-1M", "not a rate"),
            ("99999999999999999G", "too large"),
        ] {
            let e = parse_bit_rate(text).unwrap_err();
            assert!(e.contains(says) && !e.contains('\n'), "{text:?}: {e}");
        }
        let e = parse_byte_rate("3bit/s").unwrap_err();
        assert!(e.contains("less than one byte"), "{e}");
    }

    #[test]
    fn config_values_take_integers_or_the_language() {
        #[derive(serde::Deserialize)]
        struct File {
            a: ConfigSize,
            b: ConfigSize,
            r: ConfigByteRate,
        }
        let f: File = toml::from_str("a = 1400\nb = \"64 GiB\"\nr = \"8Mbit/s\"").unwrap();
        assert_eq!((f.a.0, f.b.0, f.r.0), (1400, 64 << 30, 1_000_000));
        let e = toml::from_str::<File>("a = -1\nb = 1\nr = 1")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("negative"), "{e}");
        let e = toml::from_str::<File>("a = \"1X\"\nb = 1\nr = 1")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a size"), "{e}");
        assert!(
            ConfigSize(70_000)
                .get::<u16>("segment")
                .unwrap_err()
                .starts_with("segment: ")
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_size(&s);
            let _ = parse_bit_rate(&s);
            let _ = parse_byte_rate(&s);
        }

        #[test]
        fn whole_numbers_with_each_prefix(n in 0u64..1_000_000, p in 0usize..6) {
            let (suffix, scale) = [("", 1), ("K", 1000), ("M", 1_000_000), ("Ki", 1024), ("MiB", 1 << 20), ("kB", 1000)][p];
            prop_assert_eq!(parse_size(&format!("{n}{suffix}")), Ok(n * scale));
            prop_assert_eq!(parse_bit_rate(&format!("{n}{suffix}")), Ok(n * scale * if suffix.ends_with('B') { 8 } else { 1 }));
        }
    }
}
