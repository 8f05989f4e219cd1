//! splitmix64: the crate's one seedable generator, and its finaliser for
//! deriving unrelated seeds from one run seed.
//!
//! Owns every "random" decision that a run must be able to repeat from its
//! `--seed`: the proxy's and the simulator's impairments, the bench's
//! payloads and offsets. splitmix64 (Steele, Lea and Flood, 2014; Vigna's
//! reference `splitmix64.c`) because it accepts any seed, zero included,
//! its state is one `u64`, and neighbouring seeds give unrelated streams.
//! Not for anything an attacker may try to predict.
//!
//! There is one way to derive a seed or a random-access value from a
//! seed, [`mix`]: every sub-stream (a proxy mapping and its direction, a
//! simulated link, a bench session, a pattern block) is an output of the
//! run's generator, so no caller combines seeds with ad-hoc XORs or
//! multiplications of its own (two such recipes collide: `seed ^ slot`
//! gives seed 1 slot 0 and seed 0 slot 1 the same stream).
//!
//! Reproducibility is part of the contract (the same seed repeats a proxy
//! run, a simulation, a bench's bytes), so the outputs are pinned by the
//! tests below against the reference sequence and must never change.

/// The Weyl increment: 2^64 divided by the golden ratio, rounded to odd.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// splitmix64's output function (Stafford's "Mix13" variant of the
/// `MurmurHash3` finaliser): a bijection on `u64` in which every input bit
/// flips about half of the output bits.
#[must_use]
const fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of sub-stream `stream` of a run seeded with `seed`: output
/// number `stream` (counting from 0) of [`SplitMix64::new(seed)`], reached
/// without drawing the ones before it.
///
/// [`SplitMix64::new(seed)`]: SplitMix64::new
#[must_use]
pub const fn mix(seed: u64, stream: u64) -> u64 {
    finalise(seed.wrapping_add(stream.wrapping_add(1).wrapping_mul(GAMMA)))
}

/// A splitmix64 generator. `Clone`, so a copy replays the same stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed` (any value, zero included).
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        finalise(self.0)
    }

    /// Uniform in `[0, 1)`: the top 53 bits, which an `f64` holds exactly.
    #[allow(clippy::cast_precision_loss, reason = "53 bits and 2^53: both exact")]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fills `out` with the next bytes of the stream, eight per output
    /// (little-endian; the last output's unused bytes are dropped).
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    /// `true` with probability `p`. A probability of zero (or less) draws
    /// nothing, so a caller that turns one decision off leaves the stream,
    /// and so every other decision, unchanged.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first outputs of Vigna's `splitmix64.c` for seed 0 (also
    /// recomputed independently, outside Rust, when this was written).
    const SEED_0: [u64; 5] = [
        0xe220_a839_7b1d_cdaf,
        0x6e78_9e6a_a1b9_65f4,
        0x06c4_5d18_8009_454f,
        0xf88b_b8a8_724c_81ec,
        0x1b39_896a_51a8_749b,
    ];

    /// The same for seed 1234567, as published with the algorithm's
    /// common test vectors.
    const SEED_1234567: [u64; 5] = [
        6_457_827_717_110_365_317,
        3_203_168_211_198_807_973,
        9_817_491_932_198_370_423,
        4_593_380_528_125_082_431,
        16_408_922_859_458_223_821,
    ];

    fn first<const N: usize>(seed: u64) -> [u64; N] {
        let mut rng = SplitMix64::new(seed);
        core::array::from_fn(|_| rng.next_u64())
    }

    #[test]
    fn the_generator_matches_the_reference_sequence() {
        assert_eq!(first::<5>(0), SEED_0);
        assert_eq!(first::<5>(1_234_567), SEED_1234567);
    }

    #[test]
    fn mix_is_the_generator_output_of_that_number() {
        for seed in [0, 1, 42, 1_234_567, u64::MAX] {
            let outputs = first::<8>(seed);
            for (stream, &want) in (0u64..).zip(&outputs) {
                assert_eq!(mix(seed, stream), want, "seed {seed} stream {stream}");
            }
        }
        assert_eq!(mix(0, 0), SEED_0[0]);
        assert_eq!(mix(0, 2), SEED_0[2]);
    }

    #[test]
    fn mix_spreads_neighbouring_seeds_and_streams() {
        let seeds: std::collections::BTreeSet<u64> = (0..100)
            .flat_map(|s| (0..4).map(move |k| mix(s, k)))
            .collect();
        assert_eq!(seeds.len(), 400);
    }

    #[test]
    fn finalise_is_the_output_step() {
        assert_eq!(finalise(GAMMA), SEED_0[0]);
        assert_eq!(finalise(GAMMA.wrapping_mul(2)), SEED_0[1]);
        assert_eq!(finalise(0), 0, "a bijection fixing zero");
    }

    #[test]
    fn fill_bytes_is_the_outputs_in_little_endian() {
        let mut bytes = [0u8; 13];
        SplitMix64::new(0).fill_bytes(&mut bytes);
        assert_eq!(bytes[..8], SEED_0[0].to_le_bytes());
        assert_eq!(bytes[8..], SEED_0[1].to_le_bytes()[..5]);
    }

    #[test]
    #[allow(clippy::cast_precision_loss, reason = "53 bits and 2^53: both exact")]
    fn units_and_chances() {
        let mut a = SplitMix64::new(7);
        let mut b = a.clone();
        for _ in 0..1_000 {
            let u = a.next_f64();
            assert!((0.0..1.0).contains(&u));
            let want = (b.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            assert_eq!(u.to_bits(), want.to_bits());
        }
        let before = a.clone();
        assert!(!a.chance(0.0));
        assert!(!a.chance(-1.0));
        assert_eq!(a, before, "a zero probability draws nothing");
        assert!(a.chance(1.0));
        assert_ne!(a, before);
        let hits = (0..10_000).filter(|_| a.chance(0.25)).count();
        assert!((2_300..2_700).contains(&hits), "{hits}");
    }
}
