//! IPv4 fragmentation of outgoing datagrams (RFC 791 §2.3, §3.2).
//!
//! Owns how a payload too large for the device's MTU is cut: every piece
//! but the last carries a multiple of 8 bytes (offsets travel in 8-byte
//! units) and the more-fragments flag, and all pieces of one datagram share
//! one identification drawn from a counter ([`Identifier`]). It plans
//! pieces as (offset, length, more) only; the stack emits their headers
//! with `wire::ipv4`. It must never refuse a payload the reassembler would
//! accept, nor accept an MTU under [`MIN_MTU`].

use core::fmt;

/// The smallest MTU a device may have: RFC 791 §3.2, "every internet module
/// must be able to forward a datagram of 68 octets without further
/// fragmentation" (a 60-byte header plus the minimum 8-byte fragment).
pub const MIN_MTU: usize = 68;

/// The largest MTU worth configuring: an IPv4 datagram cannot be longer.
pub const MAX_MTU: usize = 65_535;

/// Why an MTU was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtuError {
    /// Below [`MIN_MTU`].
    TooSmall(usize),
    /// Above [`MAX_MTU`].
    TooLarge(usize),
}

impl fmt::Display for MtuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall(mtu) => write!(f, "MTU {mtu} is below the IPv4 minimum of {MIN_MTU}"),
            Self::TooLarge(mtu) => write!(f, "MTU {mtu} is above the IPv4 maximum of {MAX_MTU}"),
        }
    }
}

impl std::error::Error for MtuError {}

/// Checks an MTU.
///
/// # Errors
///
/// [`MtuError`] when it is outside [`MIN_MTU`]`..=`[`MAX_MTU`].
pub fn check_mtu(mtu: usize) -> Result<(), MtuError> {
    if mtu < MIN_MTU {
        Err(MtuError::TooSmall(mtu))
    } else if mtu > MAX_MTU {
        Err(MtuError::TooLarge(mtu))
    } else {
        Ok(())
    }
}

/// One piece of a datagram's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Where it starts in the payload, in bytes (a multiple of 8).
    pub offset: usize,
    /// How many bytes.
    pub len: usize,
    /// The more-fragments flag: set on all but the last piece.
    pub more: bool,
}

/// The pieces of a `payload_len`-byte payload under a `header_len`-byte
/// header for an MTU of `mtu` (checked with [`check_mtu`]): one piece, with
/// `more` clear, when it fits. Pieces come in offset order.
pub fn pieces(payload_len: usize, header_len: usize, mtu: usize) -> Pieces {
    // Round down to the 8-byte unit of the offset field; MIN_MTU and the
    // 60-byte header maximum leave at least 8.
    let room = (mtu.saturating_sub(header_len) & !7).max(8);
    Pieces {
        next: 0,
        total: payload_len,
        // A payload that fits whole after the header goes unfragmented,
        // even when the rounded `room` is smaller than what fits.
        room: if header_len.saturating_add(payload_len) <= mtu {
            payload_len
        } else {
            room
        },
        done: false,
    }
}

/// Iterator over the [`Piece`]s of one payload; see [`pieces`].
#[derive(Clone, Debug)]
pub struct Pieces {
    next: usize,
    total: usize,
    room: usize,
    done: bool,
}

impl Iterator for Pieces {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.done {
            return None;
        }
        let offset = self.next;
        let left = self.total - offset;
        let len = if left <= self.room {
            self.done = true;
            left
        } else {
            self.room
        };
        self.next += len;
        Some(Piece {
            offset,
            len,
            more: !self.done,
        })
    }
}

/// The identification counter: one value per datagram sent, so the peer's
/// reassembler can tell their fragments apart. It wraps; 65 536 datagrams
/// in flight towards one peer within its reassembly timeout would be needed
/// for two to collide.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identifier {
    next: u16,
}

impl Identifier {
    /// A counter starting at `first` (a seed, so two runs need not collide).
    pub fn new(first: u16) -> Self {
        Self { next: first }
    }

    /// The identification of the next datagram.
    pub fn next_ident(&mut self) -> u16 {
        let ident = self.next;
        self.next = self.next.wrapping_add(1);
        ident
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testing::at;
    use crate::proto::tunstack::reassembly::{Assembly, FragKey, MAX_PAYLOAD, Reassembler};
    use std::net::Ipv4Addr;

    #[test]
    fn small_mtus_are_refused() {
        assert_eq!(check_mtu(67), Err(MtuError::TooSmall(67)));
        assert_eq!(check_mtu(0), Err(MtuError::TooSmall(0)));
        assert_eq!(check_mtu(65_536), Err(MtuError::TooLarge(65_536)));
        assert!(check_mtu(68).is_ok() && check_mtu(1_500).is_ok() && check_mtu(65_535).is_ok());
        assert!(!MtuError::TooSmall(1).to_string().is_empty());
    }

    #[test]
    fn pieces_are_multiples_of_eight_with_more_on_all_but_the_last() {
        let all: Vec<Piece> = pieces(4_008, 20, 1_500).collect();
        assert_eq!(
            all,
            [
                Piece {
                    offset: 0,
                    len: 1_480,
                    more: true
                },
                Piece {
                    offset: 1_480,
                    len: 1_480,
                    more: true
                },
                Piece {
                    offset: 2_960,
                    len: 1_048,
                    more: false
                },
            ]
        );
        // An MTU whose room is not a multiple of 8 rounds down.
        let all: Vec<Piece> = pieces(100, 20, 70).collect();
        assert!(all.iter().all(|p| p.offset % 8 == 0));
        assert!(all[..all.len() - 1].iter().all(|p| p.len == 48 && p.more));
        assert!(!all.last().unwrap().more);
        // What fits goes whole, also when the fit is not a multiple of 8.
        assert_eq!(
            pieces(1_477, 20, 1_497).collect::<Vec<_>>(),
            [Piece {
                offset: 0,
                len: 1_477,
                more: false
            }]
        );
        assert_eq!(
            pieces(0, 20, 68).collect::<Vec<_>>(),
            [Piece {
                offset: 0,
                len: 0,
                more: false
            }]
        );
    }

    #[test]
    fn identifications_count_and_wrap() {
        let mut id = Identifier::new(65_535);
        assert_eq!(id.next_ident(), 65_535);
        assert_eq!(id.next_ident(), 0);
        assert_eq!(id.next_ident(), 1);
    }

    /// Cuts, shuffles (reversed) and reassembles payloads of sizes around
    /// the MTU's boundaries.
    #[test]
    fn fragments_round_trip_through_the_reassembler() {
        let mut ids = Identifier::new(100);
        let mut r = Reassembler::new();
        for mtu in [68, 69, 75, 76, 576, 1_280, 1_500, 9_000] {
            let room = (mtu - 20) & !7;
            let mut sizes = vec![0, 1, 7, 8, 9, MAX_PAYLOAD];
            for k in 1..=3 {
                sizes.extend([k * room - 1, k * room, k * room + 1, mtu - 20, mtu - 19]);
            }
            for len in sizes {
                let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 253).unwrap()).collect();
                let all: Vec<Piece> = pieces(len, 20, mtu).collect();
                assert!(all.iter().all(|p| p.len + 20 <= mtu), "{mtu} {len}");
                assert_eq!(all.iter().map(|p| p.len).sum::<usize>(), len);
                let fits = len + 20 <= mtu;
                assert_eq!(all.len() == 1, fits, "{mtu} {len}");
                let key = FragKey {
                    src: Ipv4Addr::new(192, 0, 2, 1),
                    dst: Ipv4Addr::new(192, 0, 2, 2),
                    protocol: 1,
                    ident: ids.next_ident(),
                };
                let mut last = Assembly::Pending;
                for p in all.iter().rev() {
                    last = r.handle_fragment(
                        at(0),
                        key,
                        p.offset,
                        p.more,
                        &data[p.offset..p.offset + p.len],
                    );
                }
                assert_eq!(last, Assembly::Complete(data), "{mtu} {len}");
            }
        }
        assert!(r.is_empty());
    }
}
