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
    // The ones' complement sum does not depend on byte order (RFC 1071
    // §2(B)): add the data as the host's 32-bit words, fold, and swap the
    // 16-bit result into network order once. A plain loop of native-order
    // words into a 64-bit accumulator is one the compiler vectorises; the
    // big-endian form it replaces (a byte swap per word) was not, and its
    // two passes over each 64 KiB super-segment a TUN with offloads hands
    // over were 23 % of the receiving stack's time.
    let mut acc: u64 = 0;
    // Blocks of at most 2^28 words keep each block's total below 2^60.
    for block in data.chunks(SUM_BLOCK) {
        let mut words = block.chunks_exact(4);
        let mut part: u64 = 0;
        for w in &mut words {
            part += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        }
        acc = fold64(acc + fold64(part));
        // Only the last block can leave a remainder (SUM_BLOCK is a
        // multiple of 4), and it starts at an even offset.
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut tail = [0u8; 4];
            tail[..rest.len()].copy_from_slice(rest);
            acc = fold64(acc + u64::from(u32::from_ne_bytes(tail)));
        }
    }
    let native = fold(u32::try_from(fold64(acc)).unwrap_or(u32::MAX));
    u32::from(u16::from_be(native))
}

/// Bytes summed before the 64-bit accumulator is folded: 2^28 words of
/// less than 2^32 each stay below 2^60 (a multiple of 4, so only the last
/// block has a remainder).
const SUM_BLOCK: usize = 1 << 30;

/// Folds a 64-bit sum below 2^32 with end-around carries (2^32 is 1
/// modulo 2^16 - 1, so the result stays congruent).
fn fold64(mut acc: u64) -> u64 {
    while acc > u64::from(u32::MAX) {
        acc = (acc & u64::from(u32::MAX)) + (acc >> 32);
    }
    acc
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
