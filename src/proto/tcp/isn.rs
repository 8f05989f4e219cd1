//! Initial sequence numbers no outsider can guess (RFC 6528).
//!
//! Owns the choice of a connection's ISN: `ISN = M + F(local, remote, key)`,
//! where `M` is a clock ticking every [`CLOCK_TICK`] (4 µs, RFC 9293 §3.4.1)
//! and `F` is SipHash-2-4 of the 4-tuple under a 128-bit secret. The clock
//! keeps successive incarnations of one 4-tuple moving forward through the
//! sequence space (so old duplicates fall outside the new window); the keyed
//! hash gives every 4-tuple its own unguessable offset, so an off-path
//! attacker who sees our ISNs on one connection learns nothing about another.
//!
//! It must never read the clock or draw the secret itself (sans-IO): `now`
//! arrives as an argument and the key at construction — the reactor or the
//! application draws it from the OS, tests pass fixed keys. The key never
//! leaves the generator, not even through `Debug`.
//!
//! [`siphash24`] is public so other keyed hashes of the engine (SYN cookies)
//! can use the same primitive.

use crate::time::Instant;
use core::fmt;
use std::net::{IpAddr, SocketAddr};

/// The period of the ISN clock `M`: RFC 9293 §3.4.1 (and RFC 6528 §3) ask
/// for a counter bumped about every 4 µs, so it wraps in about 4.77 hours,
/// longer than any segment lives (2 × MSL).
pub const CLOCK_TICK: core::time::Duration = core::time::Duration::from_micros(4);

/// Nanoseconds per [`CLOCK_TICK`].
const TICK_NANOS: u64 = 4_000;

/// The ISN generator of an engine: a secret key, nothing else.
#[derive(Clone)]
pub struct IsnGenerator {
    key: [u8; 16],
}

impl fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is the whole secret: never print it.
        f.debug_struct("IsnGenerator").finish_non_exhaustive()
    }
}

impl IsnGenerator {
    /// A generator keyed by `key`, which must be secret and random (drawn
    /// from the OS once per process).
    pub fn new(key: [u8; 16]) -> Self {
        Self { key }
    }

    /// The ISN for a connection between `local` and `remote` opened at
    /// `now`: the 4 µs clock plus the keyed hash of the 4-tuple, mod 2^32.
    pub fn isn(&self, local: SocketAddr, remote: SocketAddr, now: Instant) -> u32 {
        clock(now).wrapping_add(fold(siphash24(&self.key, tuple(local, remote).bytes())))
    }
}

/// `M`: the number of [`CLOCK_TICK`]s since the epoch, mod 2^32.
#[expect(
    clippy::cast_possible_truncation,
    reason = "the ISN clock wraps mod 2^32 by definition"
)]
fn clock(now: Instant) -> u32 {
    (now.as_nanos() / TICK_NANOS) as u32
}

/// The 64-bit hash folded to 32 bits, both halves contributing.
#[expect(
    clippy::cast_possible_truncation,
    reason = "keeping the low half is the point of the fold"
)]
fn fold(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

/// The longest encoded 4-tuple: two (family, IPv6 address, port).
const TUPLE_MAX: usize = 2 * (1 + 16 + 2);

/// The hashed message: for each side a family tag (4 or 6, so an IPv4
/// tuple never encodes like an IPv6 one), the address bytes and the port,
/// big-endian. Local first: the two directions of a pair differ.
struct Tuple {
    buf: [u8; TUPLE_MAX],
    len: usize,
}

impl Tuple {
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn tuple(local: SocketAddr, remote: SocketAddr) -> Tuple {
    let mut t = Tuple {
        buf: [0; TUPLE_MAX],
        len: 0,
    };
    for addr in [local, remote] {
        match addr.ip() {
            IpAddr::V4(ip) => {
                t.push(&[4]);
                t.push(&ip.octets());
            }
            IpAddr::V6(ip) => {
                t.push(&[6]);
                t.push(&ip.octets());
            }
        }
        t.push(&addr.port().to_be_bytes());
    }
    t
}

/// SipHash-2-4 (Aumasson and Bernstein, 2012) of `msg` under `key`, as the
/// reference implementation's 64-bit output read little-endian. A keyed
/// A fresh secret key for [`IsnGenerator::new`]: std's `RandomState` keys
/// come from the operating system's random source once per thread and
/// differ per instance, so two of them give 128 bits no outsider can
/// predict (RFC 6528 asks for a secret, not a cryptographic generator).
#[must_use]
pub fn random_key() -> [u8; 16] {
    use std::hash::{BuildHasher, RandomState};
    let mut key = [0; 16];
    for (half, tag) in key.chunks_mut(8).zip([0x6528_u64, 0x9293]) {
        half.copy_from_slice(&RandomState::new().hash_one(tag).to_le_bytes());
    }
    key
}

/// PRF, fast on short inputs, which is what RFC 6528's `F` asks for.
pub fn siphash24(key: &[u8; 16], msg: &[u8]) -> u64 {
    let k0 = u64_le(&key[..8]);
    let k1 = u64_le(&key[8..]);
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut blocks = msg.chunks_exact(8);
    for block in &mut blocks {
        let m = u64_le(block);
        v[3] ^= m;
        sip_rounds(&mut v, 2);
        v[0] ^= m;
    }
    // The last block: the remaining bytes, and the length mod 256 in the
    // top byte.
    let mut last = [0u8; 8];
    let rest = blocks.remainder();
    last[..rest.len()].copy_from_slice(rest);
    last[7] = msg.len().to_le_bytes()[0];
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    sip_rounds(&mut v, 2);
    v[0] ^= m;
    v[2] ^= 0xff;
    sip_rounds(&mut v, 4);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// `bytes` (at most 8) as a little-endian `u64`.
fn u64_le(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(b)
}

/// `n` rounds of `SipRound`.
fn sip_rounds(v: &mut [u64; 4], n: usize) {
    for _ in 0..n {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference vectors: `vectors_sip64` of veorq/SipHash `vectors.h`
    /// (commit f26d35e), SipHash-2-4 with key `00 01 .. 0f` of the messages
    /// `[]`, `[00]`, `[00 01]`, … `[00 .. 3e]`, each 8-byte output read
    /// little-endian.
    const VECTORS: [u64; 64] = [
        0x726f_db47_dd0e_0e31,
        0x74f8_39c5_93dc_67fd,
        0x0d6c_8009_d9a9_4f5a,
        0x8567_6696_d7fb_7e2d,
        0xcf27_94e0_2771_87b7,
        0x1876_5564_cd99_a68d,
        0xcbc9_466e_58fe_e3ce,
        0xab02_00f5_8b01_d137,
        0x93f5_f579_9a93_2462,
        0x9e00_82df_0ba9_e4b0,
        0x7a5d_bbc5_94dd_b9f3,
        0xf4b3_2f46_226b_ada7,
        0x751e_8fbc_860e_e5fb,
        0x14ea_5627_c084_3d90,
        0xf723_ca90_8e7a_f2ee,
        0xa129_ca61_49be_45e5,
        0x3f2a_cc7f_57c2_9bdb,
        0x699a_e9f5_2cbe_4794,
        0x4bc1_b3f0_968d_d39c,
        0xbb6d_c91d_a779_61bd,
        0xbed6_5cf2_1aa2_ee98,
        0xd0f2_cbb0_2e3b_67c7,
        0x9353_6795_e3a3_3e88,
        0xa80c_038c_cd5c_cec8,
        0xb8ad_50c6_f649_af94,
        0xbce1_92de_8a85_b8ea,
        0x17d8_35b8_5bbb_15f3,
        0x2f2e_6163_076b_cfad,
        0xde4d_aaac_a71d_c9a5,
        0xa6a2_5066_8795_6571,
        0xad87_a353_5c49_ef28,
        0x32d8_92fa_d841_c342,
        0x7127_512f_72f2_7cce,
        0xa7f3_2346_f959_78e3,
        0x12e0_b01a_bb05_1238,
        0x15e0_34d4_0fa1_97ae,
        0x314d_ffbe_0815_a3b4,
        0x0279_90f0_2962_3981,
        0xcadc_d4e5_9ef4_0c4d,
        0x9abf_d876_6a33_735c,
        0x0e3e_a96b_5304_a7d0,
        0xad0c_42d6_fc58_5992,
        0x1873_06c8_9bc2_15a9,
        0xd4a6_0abc_f379_2b95,
        0xf935_451d_e4f2_1df2,
        0xa953_8f04_1975_5787,
        0xdb9a_cddf_f56c_a510,
        0xd06c_98cd_5c09_75eb,
        0xe612_a3cb_9ecb_a951,
        0xc766_e62c_fcad_af96,
        0xee64_435a_9752_fe72,
        0xa192_d576_b245_165a,
        0x0a87_87bf_8ecb_74b2,
        0x81b3_e73d_20b4_9b6f,
        0x7fa8_220b_a3b2_ecea,
        0x2457_31c1_3ca4_2499,
        0xb78d_bfaf_3a8d_83bd,
        0xea1a_d565_322a_1a0b,
        0x60e6_1c23_a379_5013,
        0x6606_d7e4_4628_2b93,
        0x6ca4_ecb1_5c5f_91e1,
        0x9f62_6da1_5c96_25f3,
        0xe51b_3860_8ef2_5f57,
        0x958a_324c_eb06_4572,
    ];

    fn reference_key() -> [u8; 16] {
        core::array::from_fn(|i| u8::try_from(i).unwrap())
    }

    #[test]
    fn siphash_matches_the_reference_vectors() {
        let key = reference_key();
        let msg: Vec<u8> = (0..64).collect();
        for (len, want) in VECTORS.iter().enumerate() {
            assert_eq!(
                siphash24(&key, &msg[..len]),
                *want,
                "message of {len} bytes"
            );
        }
    }

    #[test]
    fn siphash_first_vector_by_bytes() {
        // Pins the byte order too: the paper's output for the empty message.
        let h = siphash24(&reference_key(), &[]);
        assert_eq!(
            h.to_le_bytes(),
            [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72]
        );
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const KEY: [u8; 16] = *b"fixed test key!!";

    #[test]
    fn same_tuple_same_time_same_isn() {
        let g = IsnGenerator::new(KEY);
        let (l, r) = (addr("192.0.2.1:7000"), addr("192.0.2.2:40000"));
        let now = Instant::from_millis(1234);
        assert_eq!(g.isn(l, r, now), g.isn(l, r, now));
        assert_eq!(
            g.isn(l, r, now),
            IsnGenerator::new(KEY).isn(l, r, now),
            "depends on the key and inputs only"
        );
    }

    #[test]
    fn different_tuples_and_keys_differ() {
        let g = IsnGenerator::new(KEY);
        let now = Instant::from_secs(5);
        let base = (addr("192.0.2.1:7000"), addr("192.0.2.2:40000"));
        let others = [
            (addr("192.0.2.1:7000"), addr("192.0.2.2:40001")),
            (addr("192.0.2.1:7001"), addr("192.0.2.2:40000")),
            (addr("192.0.2.1:7000"), addr("192.0.2.3:40000")),
            (addr("192.0.2.9:7000"), addr("192.0.2.2:40000")),
            // The two directions of one pair.
            (base.1, base.0),
            // The same addresses as IPv4-mapped IPv6.
            (
                addr("[::ffff:192.0.2.1]:7000"),
                addr("[::ffff:192.0.2.2]:40000"),
            ),
            (addr("[2001:db8::1]:7000"), addr("[2001:db8::2]:40000")),
        ];
        let isn = g.isn(base.0, base.1, now);
        for (l, r) in others {
            assert_ne!(g.isn(l, r, now), isn, "{l} {r}");
        }
        let mut other_key = KEY;
        other_key[0] ^= 1;
        assert_ne!(IsnGenerator::new(other_key).isn(base.0, base.1, now), isn);
    }

    #[test]
    fn clock_advances_one_per_tick_and_wraps() {
        let g = IsnGenerator::new(KEY);
        let (l, r) = (addr("[2001:db8::1]:443"), addr("[2001:db8::2]:50000"));
        let at = |ns: u64| g.isn(l, r, Instant::from_nanos(ns));
        let t0 = 1_000_000_007;
        let start = t0 - t0 % TICK_NANOS;
        // Constant within a tick, +1 at each tick boundary.
        assert_eq!(at(start), at(start + TICK_NANOS - 1));
        assert_eq!(at(start + TICK_NANOS), at(start).wrapping_add(1));
        assert_eq!(at(start + 250 * TICK_NANOS), at(start).wrapping_add(250));
        // One second is 250 000 ticks.
        assert_eq!(at(start + 1_000_000_000), at(start).wrapping_add(250_000));
        // After 2^32 ticks (about 4.77 h) it is back where it was.
        let period = (1u64 << 32) * TICK_NANOS;
        assert_eq!(at(start + period), at(start));
        assert_eq!(at(start + period - TICK_NANOS), at(start).wrapping_sub(1));
        // And the sum itself wraps through 0 rather than saturating: find
        // the tick where M + F passes u32::MAX and step over it.
        let f = at(0);
        let ticks_to_wrap = u64::from(u32::MAX - f) + 1;
        assert_eq!(at(ticks_to_wrap * TICK_NANOS - 1), u32::MAX);
        assert_eq!(at(ticks_to_wrap * TICK_NANOS), 0);
    }

    #[test]
    fn debug_hides_the_key() {
        let s = format!("{:?}", IsnGenerator::new(KEY));
        assert!(!s.contains("102"), "{s}"); // 'f' = 102
        assert!(s.contains("IsnGenerator"));
    }
}
