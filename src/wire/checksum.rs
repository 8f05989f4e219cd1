//! The Internet checksum ([RFC 1071]): the 16-bit ones' complement of the
//! ones' complement sum of the data taken as big-endian 16-bit words.
//!
//! Owns the arithmetic shared by the IPv4 header, ICMP and the UDP
//! pseudo-header checksum; it knows no header layout. It never does I/O and
//! never panics, whatever the length of its input.
//!
//! The pieces compose: a checksum over several parts is
//! `!fold(combine(sum(a), sum(b)))`, as long as every part but the last has
//! an even length (an odd part would shift the bytes after it by one).
//! Verifying is summing everything, the checksum field included: a correct
//! packet folds to `0xffff`, so [`internet`] over it is 0.
//!
//! ```
//! use mioperf::wire::checksum;
//! // RFC 1071 section 3's example: the sum of these words folds to 0xddf2.
//! let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
//! assert_eq!(checksum::fold(checksum::sum(&data)), 0xddf2);
//! assert_eq!(checksum::internet(&data), !0xddf2);
//! ```
//!
//! [RFC 1071]: https://www.rfc-editor.org/rfc/rfc1071

use std::net::Ipv4Addr;

/// The sum of `data` as big-endian 16-bit words, an odd last byte padded
/// with a zero byte on its right. Not folded: pass it to [`fold`] (or to
/// [`combine`] with other parts first).
///
/// The result is congruent, modulo `0xffff`, to the true sum whatever the
/// length: a wider accumulator is folded back into 32 bits (2^32 is 1
/// modulo 2^16 - 1), so even a buffer far larger than an IP datagram cannot
/// overflow it.
pub fn sum(data: &[u8]) -> u32 {
    // Eight bytes per step, as two big-endian 32-bit words: a 32-bit word
    // is congruent to the sum of its two 16-bit halves modulo 0xffff
    // (2^16 is 1), so this is the same sum in a quarter of the steps. On a
    // 60 000-byte datagram the 16-bit loop was close to half the stack's
    // instructions (docs/performance.md §11).
    let mut acc: u64 = 0;
    let mut quads = data.chunks_exact(8);
    for q in &mut quads {
        let v = u64::from_be_bytes([q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]]);
        acc += (v >> 32) + (v & u64::from(u32::MAX));
    }
    let mut words = quads.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    // Each step adds less than 2^33, so `acc` cannot overflow for any slice
    // a machine can hold; folding 32 bits at a time brings it below 2^32.
    while acc > u64::from(u32::MAX) {
        acc = (acc & u64::from(u32::MAX)) + (acc >> 32);
    }
    u32::try_from(acc).unwrap_or(u32::MAX)
}

/// Adds two partial sums with an end-around carry, so the result keeps
/// representing the ones' complement sum of both parts (see the module
/// docs for the even-length condition on the first part).
pub fn combine(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + u32::from(carry)
}

/// Folds a 32-bit sum into 16 bits with end-around carries: the ones'
/// complement sum. Not complemented: [`internet`] is `!fold(sum(data))`, and
/// a packet whose checksum is right folds to `0xffff`.
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    u16::try_from(sum).unwrap_or(u16::MAX)
}

/// The Internet checksum of `data`: the value to write into a zeroed
/// checksum field, or 0 when `data` (checksum field included) is intact.
pub fn internet(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// The sum of the IPv4 pseudo-header that UDP and TCP checksums cover
/// ([RFC 768], [RFC 9293] section 3.1): source, destination, a zero byte,
/// the protocol and the transport length (header and data). Combine it with
/// the [`sum`] of the transport bytes.
///
/// [RFC 768]: https://www.rfc-editor.org/rfc/rfc768
/// [RFC 9293]: https://www.rfc-editor.org/rfc/rfc9293#section-3.1
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&src.octets());
    bytes[4..8].copy_from_slice(&dst.octets());
    bytes[9] = protocol;
    bytes[10..].copy_from_slice(&len.to_be_bytes());
    sum(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The sum written the slow, obvious way, in u64, to compare against.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for (i, b) in data.iter().enumerate() {
            acc += if i % 2 == 0 {
                u64::from(*b) << 8
            } else {
                u64::from(*b)
            };
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        u16::try_from(acc).unwrap()
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 2ddf0,
        // which folds to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        // `sum` promises the RFC's sum only modulo 0xffff (it adds 32-bit
        // words); folded, it is the RFC's exactly.
        assert_eq!(sum(&data) % 0xffff, 0x2_ddf0 % 0xffff);
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(internet(&data), 0x220d);
    }

    #[test]
    fn odd_byte_is_padded_on_the_right() {
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x01, 0x02, 0x03]), 0x0102 + 0x0300);
        assert_eq!(sum(&[]), 0);
        assert_eq!(internet(&[]), 0xffff);
    }

    #[test]
    fn fold_carries_twice() {
        // 0xffff + 0xffff = 0x1fffe -> 0xffff (a second carry is not needed
        // here); 0xffff_ffff -> 0x1fffe -> 0xffff needs two rounds.
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
    }

    #[test]
    fn combine_keeps_the_carry() {
        assert_eq!(combine(u32::MAX, 1), 1);
        assert_eq!(fold(combine(sum(&[0xff, 0xff]), sum(&[0, 1]))), 1);
    }

    #[test]
    fn a_large_buffer_does_not_overflow() {
        // 256 KiB of 0xff: 131072 words of 0xffff, more than a u32 holds.
        let data = vec![0xffu8; 256 * 1024];
        assert_eq!(fold(sum(&data)), 0xffff);
        assert_eq!(fold(sum(&data)), reference(&data));
    }

    #[test]
    fn pseudo_header_sums_its_twelve_bytes() {
        let src = Ipv4Addr::new(192, 0, 2, 2);
        let dst = Ipv4Addr::new(192, 0, 2, 1);
        let bytes = [192, 0, 2, 2, 192, 0, 2, 1, 0, 17, 0x01, 0x02];
        assert_eq!(pseudo_header(src, dst, 17, 0x0102), sum(&bytes));
    }

    proptest! {
        #[test]
        fn matches_the_reference(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(fold(sum(&data)), reference(&data));
        }

        #[test]
        fn parts_of_even_length_combine(
            a in proptest::collection::vec(any::<u8>(), 0..200),
            b in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut a = a;
            if a.len() % 2 == 1 {
                a.pop();
            }
            let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(fold(combine(sum(&a), sum(&b))), fold(sum(&whole)));
        }

        #[test]
        fn a_filled_checksum_verifies(mut data in proptest::collection::vec(any::<u8>(), 2..200)) {
            // Put the checksum of the rest into the first two bytes.
            data[0] = 0;
            data[1] = 0;
            let c = internet(&data);
            data[..2].copy_from_slice(&c.to_be_bytes());
            prop_assert_eq!(internet(&data), 0);
        }
    }
}
