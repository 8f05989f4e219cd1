//! The receive side's out-of-order bookkeeping: which byte ranges of the
//! receive window have arrived.
//!
//! Owns offsets only, never bytes (the receive buffer holds those): offset
//! 0 is the first byte the application has not consumed yet, the bytes
//! `0..contiguous()` have all arrived (the engine's `RCV.NXT` is the window
//! start plus that), and beyond them up to [`MAX_RANGES`] disjoint,
//! non-touching ranges have arrived out of order, each remembering when a
//! segment last landed in it so that SACK blocks (RFC 2018) can be reported
//! most recent first.
//!
//! It must never store a segment halfway: one that would need more than
//! [`MAX_RANGES`] ranges is refused whole ([`TooManyRanges`]) and the state
//! is unchanged, so the engine drops it and the peer retransmits. It knows
//! nothing of sequence numbers, windows or the clock: the engine trims
//! segments to the window and turns offsets into sequence numbers.

use core::fmt;

/// Most out-of-order ranges (and so holes: each range has one before it)
/// held at once. 32 because a sender recovers what SACK tells it, and SACK
/// carries at most [`MAX_SACK_BLOCKS`] blocks per ACK: more ranges than a
/// few ACKs' worth of blocks only help on a path that loses every other
/// segment of a window, where the sender is collapsing its window anyway.
/// It bounds the work per segment (a scan of at most 32 entries) and the
/// memory per connection (32 × 24 bytes, allocated only once a segment
/// arrives out of order) against a peer sending one-byte segments with
/// gaps between them.
pub const MAX_RANGES: usize = 32;

/// Most SACK blocks one TCP header can carry: the option space is 40
/// bytes, and a SACK option takes 2 plus 8 per block (RFC 2018 §3; 3 when
/// timestamps take 10 of them).
pub const MAX_SACK_BLOCKS: usize = 4;

/// A segment was refused: storing it would need more than [`MAX_RANGES`]
/// out-of-order ranges. Nothing was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyRanges;

impl fmt::Display for TooManyRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {MAX_RANGES} out-of-order ranges")
    }
}

impl std::error::Error for TooManyRanges {}

/// A half-open range of window offsets, `start..end`, that has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// The first offset in it.
    pub start: usize,
    /// One past the last offset in it.
    pub end: usize,
}

/// An out-of-order range and when a segment last landed in it.
#[derive(Clone, Copy, Debug)]
struct Range {
    block: Block,
    /// The value of [`Assembler::clock`] at the last `add` that touched it.
    last: u64,
}

/// Which parts of the receive window have arrived. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Assembler {
    /// Bytes `0..front` have arrived.
    front: usize,
    /// The out-of-order ranges, sorted by offset, disjoint, not touching
    /// each other nor `front` (those are merged), at most [`MAX_RANGES`].
    ranges: Vec<Range>,
    /// Counts accepted `add`s: the recency stamp for SACK order.
    clock: u64,
}

impl Assembler {
    /// Nothing arrived yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many bytes from offset 0 have all arrived.
    pub fn contiguous(&self) -> usize {
        self.front
    }

    /// Whether no out-of-order data is held (the contiguous front does not
    /// count): then there is no hole and nothing to SACK.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The out-of-order ranges, in offset order.
    pub fn ranges(&self) -> impl Iterator<Item = Block> + '_ {
        self.ranges.iter().map(|r| r.block)
    }

    /// Records that `offset..offset + len` arrived and returns how many
    /// bytes it made newly contiguous from the front (0 for a segment
    /// beyond a hole or a duplicate). Overlaps and duplicates merge; a
    /// segment touching a range makes that range the most recent one.
    ///
    /// # Errors
    /// [`TooManyRanges`] if it would need a range beyond [`MAX_RANGES`];
    /// then nothing changed.
    pub fn add(&mut self, offset: usize, len: usize) -> Result<usize, TooManyRanges> {
        let end = offset.saturating_add(len);
        if len == 0 || end <= self.front {
            // Nothing, or only bytes already contiguous.
            return Ok(0);
        }
        let start = offset.max(self.front);
        // The ranges touching or overlapping start..end: `first..past`.
        let first = self.ranges.partition_point(|r| r.block.end < start);
        let past = first + self.ranges[first..].partition_point(|r| r.block.start <= end);
        let merged = Block {
            start: self
                .ranges
                .get(first)
                .map_or(start, |r| r.block.start.min(start)),
            end: if past > first {
                self.ranges[past - 1].block.end.max(end)
            } else {
                end
            },
        };
        if start == self.front {
            // Fills the hole at the front: everything merged becomes contiguous.
            let grown = merged.end - self.front;
            self.front = merged.end;
            self.ranges.drain(first..past);
            self.clock += 1;
            return Ok(grown);
        }
        if first == past && self.ranges.len() == MAX_RANGES {
            return Err(TooManyRanges);
        }
        self.clock += 1;
        let range = Range {
            block: merged,
            last: self.clock,
        };
        if first == past {
            self.ranges.insert(first, range);
        } else {
            self.ranges[first] = range;
            self.ranges.drain(first + 1..past);
        }
        Ok(0)
    }

    /// The application consumed `n` bytes from the front: offsets shift
    /// down by `n`. `n` beyond [`contiguous`](Self::contiguous) is an engine
    /// bug; it is clamped.
    pub fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.front, "consumed {n} of {} bytes", self.front);
        let n = n.min(self.front);
        self.front -= n;
        for r in &mut self.ranges {
            r.block.start -= n;
            r.block.end -= n;
        }
    }

    /// Up to `n` (at most [`MAX_SACK_BLOCKS`]) out-of-order ranges, the
    /// most recently added-to first (RFC 2018 §4: the first block holds
    /// the segment that triggered the ACK, and the rest repeat the most
    /// recently reported ones).
    pub fn sack_blocks(&self, n: usize) -> SackBlocks {
        let mut out = SackBlocks {
            blocks: [Block { start: 0, end: 0 }; MAX_SACK_BLOCKS],
            len: 0,
        };
        let mut below = u64::MAX;
        for slot in 0..n.min(MAX_SACK_BLOCKS) {
            // The most recent range older than the ones already taken
            // (stamps are unique): n scans of at most MAX_RANGES.
            let Some(next) = self
                .ranges
                .iter()
                .filter(|r| r.last < below)
                .max_by_key(|r| r.last)
            else {
                break;
            };
            out.blocks[slot] = next.block;
            out.len = slot + 1;
            below = next.last;
        }
        out
    }
}

/// At most [`MAX_SACK_BLOCKS`] blocks, most recent first; a slice through
/// `Deref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SackBlocks {
    blocks: [Block; MAX_SACK_BLOCKS],
    len: usize,
}

impl core::ops::Deref for SackBlocks {
    type Target = [Block];

    fn deref(&self) -> &[Block] {
        &self.blocks[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(start: usize, end: usize) -> Block {
        Block { start, end }
    }

    fn ranges(a: &Assembler) -> Vec<(usize, usize)> {
        a.ranges().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn in_order_segments_are_contiguous() {
        let mut a = Assembler::new();
        assert_eq!(a.add(0, 100), Ok(100));
        assert_eq!(a.add(100, 50), Ok(50));
        assert_eq!(a.contiguous(), 150);
        assert!(a.is_empty());
        assert_eq!(a.add(0, 0), Ok(0));
        assert_eq!(a.add(500, 0), Ok(0), "empty segments store nothing");
        assert!(a.is_empty());
    }

    #[test]
    fn a_hole_filled_releases_everything_behind_it() {
        let mut a = Assembler::new();
        assert_eq!(a.add(10, 10), Ok(0));
        assert_eq!(a.add(30, 10), Ok(0));
        assert_eq!(ranges(&a), [(10, 20), (30, 40)]);
        assert!(!a.is_empty());
        assert_eq!(a.add(0, 10), Ok(20), "0..10 joins 10..20");
        assert_eq!(ranges(&a), [(30, 40)]);
        assert_eq!(a.add(20, 10), Ok(20));
        assert_eq!(a.contiguous(), 40);
        assert!(a.is_empty());
    }

    #[test]
    fn overlaps_merge() {
        let mut a = Assembler::new();
        a.add(10, 10).unwrap();
        a.add(30, 10).unwrap();
        a.add(50, 10).unwrap();
        // Touching (adjacent) ranges merge too.
        a.add(20, 5).unwrap();
        assert_eq!(ranges(&a), [(10, 25), (30, 40), (50, 60)]);
        // One segment bridging two ranges and overlapping a third.
        assert_eq!(a.add(15, 40), Ok(0));
        assert_eq!(ranges(&a), [(10, 60)]);
        // Covering a range on both sides.
        assert_eq!(a.add(5, 70), Ok(0));
        assert_eq!(ranges(&a), [(5, 75)]);
        // Straddling the front: only the new part counts.
        a.add(0, 5).unwrap();
        assert_eq!(a.contiguous(), 75);
        assert_eq!(a.add(70, 10), Ok(5));
        assert_eq!(a.contiguous(), 80);
    }

    #[test]
    fn duplicates_change_nothing() {
        let mut a = Assembler::new();
        a.add(0, 10).unwrap();
        a.add(20, 10).unwrap();
        assert_eq!(a.add(0, 10), Ok(0), "old data");
        assert_eq!(a.add(3, 4), Ok(0));
        assert_eq!(a.add(22, 5), Ok(0), "inside a range");
        assert_eq!(a.add(20, 10), Ok(0), "the same range again");
        assert_eq!(a.contiguous(), 10);
        assert_eq!(ranges(&a), [(20, 30)]);
    }

    #[test]
    fn the_bound_refuses_a_whole_segment_and_changes_nothing() {
        let mut a = Assembler::new();
        for i in 0..MAX_RANGES {
            a.add(10 + 10 * i, 5).unwrap();
        }
        let full = ranges(&a);
        assert_eq!(full.len(), MAX_RANGES);
        let sack = a.sack_blocks(MAX_SACK_BLOCKS);
        // A new range, beyond all, between two, or in the first hole.
        for (offset, len) in [(10_000, 5), (16, 2), (2, 3)] {
            assert_eq!(a.add(offset, len), Err(TooManyRanges), "{offset}+{len}");
            assert_eq!(ranges(&a), full);
            assert_eq!(a.contiguous(), 0);
            assert_eq!(a.sack_blocks(MAX_SACK_BLOCKS), sack, "recency untouched");
        }
        // What needs no new range still goes in: extending or merging one,
        // or filling the front.
        assert_eq!(a.add(15, 2), Ok(0));
        assert_eq!(a.add(14, 8), Ok(0), "merges 10..17 and 20..25");
        assert_eq!(a.ranges().count(), MAX_RANGES - 1);
        assert_eq!(a.add(10_000, 5), Ok(0), "room again");
        assert_eq!(a.add(0, 10), Ok(25));
        assert_eq!(a.ranges().count(), MAX_RANGES - 1);
    }

    #[test]
    fn sack_blocks_most_recent_first() {
        let mut a = Assembler::new();
        a.add(10, 5).unwrap(); // A
        a.add(30, 5).unwrap(); // B
        a.add(50, 5).unwrap(); // C
        a.add(70, 5).unwrap(); // D
        a.add(90, 5).unwrap(); // E
        assert_eq!(
            &*a.sack_blocks(4),
            [b(90, 95), b(70, 75), b(50, 55), b(30, 35)]
        );
        // A segment landing in A (even a duplicate) makes A the newest.
        a.add(11, 2).unwrap();
        assert_eq!(&*a.sack_blocks(3), [b(10, 15), b(90, 95), b(70, 75)]);
        // Extending C makes the merged block the newest.
        a.add(55, 3).unwrap();
        assert_eq!(&*a.sack_blocks(2), [b(50, 58), b(10, 15)]);
        // Never more than asked, nor than MAX_SACK_BLOCKS, nor than held.
        assert_eq!(a.sack_blocks(0).len(), 0);
        assert_eq!(a.sack_blocks(100).len(), MAX_SACK_BLOCKS);
        // Data at the front takes nothing out of the order but the front.
        a.add(0, 10).unwrap();
        assert_eq!(
            &*a.sack_blocks(4),
            [b(50, 58), b(90, 95), b(70, 75), b(30, 35)]
        );
        assert_eq!(Assembler::new().sack_blocks(4).len(), 0);
    }

    #[test]
    fn advance_shifts_offsets() {
        let mut a = Assembler::new();
        a.add(0, 100).unwrap();
        a.add(150, 10).unwrap();
        a.advance(60);
        assert_eq!(a.contiguous(), 40);
        assert_eq!(ranges(&a), [(90, 100)]);
        assert_eq!(a.add(40, 50), Ok(60));
        a.advance(100);
        assert_eq!(a.contiguous(), 0);
        assert!(a.is_empty());
        assert_eq!(a.add(0, 1), Ok(1));
    }

    /// The naive model: one flag and one stamp per byte offset.
    #[derive(Clone)]
    struct Model {
        have: Vec<bool>,
        /// Index of the last accepted add covering each byte.
        stamp: Vec<u64>,
    }

    impl Model {
        fn contiguous(&self) -> usize {
            self.have.iter().take_while(|h| **h).count()
        }

        /// Maximal runs after the contiguous front, with their newest stamp.
        fn runs(&self) -> Vec<(usize, usize, u64)> {
            let mut out: Vec<(usize, usize, u64)> = Vec::new();
            for i in self.contiguous()..self.have.len() {
                if !self.have[i] {
                    continue;
                }
                match out.last_mut() {
                    Some(run) if run.1 == i => {
                        run.1 = i + 1;
                        run.2 = run.2.max(self.stamp[i]);
                    }
                    _ => out.push((i, i + 1, self.stamp[i])),
                }
            }
            out
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Add(usize, usize),
        Advance(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0usize..1000, 0usize..12).prop_map(|(o, l)| Op::Add(o, l)),
            1 => (0usize..200).prop_map(Op::Advance),
        ]
    }

    /// Space for every offset the ops can reach.
    const SPACE: usize = 1024;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn matches_a_bitmap_model(ops in proptest::collection::vec(op(), 1..300)) {
            let mut a = Assembler::new();
            let mut m = Model { have: vec![false; SPACE], stamp: vec![0; SPACE] };
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Add(offset, len) => {
                        let before = m.clone();
                        let old = m.contiguous();
                        for j in offset..offset + len {
                            if !m.have[j] || j >= old {
                                m.have[j] = true;
                                m.stamp[j] = i as u64 + 1;
                            }
                        }
                        let got = a.add(offset, len);
                        if m.runs().len() > MAX_RANGES {
                            prop_assert_eq!(got, Err(TooManyRanges));
                            m = before;
                        } else {
                            prop_assert_eq!(got, Ok(m.contiguous() - old));
                        }
                    }
                    Op::Advance(n) => {
                        let n = n.min(m.contiguous());
                        a.advance(n);
                        m.have.drain(..n);
                        m.stamp.drain(..n);
                        m.have.resize(SPACE, false);
                        m.stamp.resize(SPACE, 0);
                    }
                }
                prop_assert_eq!(a.contiguous(), m.contiguous());
                let runs = m.runs();
                let want: Vec<(usize, usize)> = runs.iter().map(|r| (r.0, r.1)).collect();
                prop_assert_eq!(ranges(&a), want);
                prop_assert_eq!(a.is_empty(), runs.is_empty());
                let mut by_recency = runs;
                by_recency.sort_by_key(|r| core::cmp::Reverse(r.2));
                let want: Vec<Block> = by_recency
                    .iter()
                    .take(MAX_SACK_BLOCKS)
                    .map(|r| b(r.0, r.1))
                    .collect();
                prop_assert_eq!(&*a.sack_blocks(MAX_SACK_BLOCKS), &want[..]);
            }
        }
    }
}
