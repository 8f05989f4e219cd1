//! IPv4 fragment reassembly (RFC 791 §3.2, RFC 815, RFC 5722's overlap rule).
//!
//! Owns the datagrams whose fragments have started to arrive and not yet
//! completed: it takes fragments as (key, offset in bytes, more-fragments,
//! payload) in any order and hands back a whole payload once every byte of
//! it is there. It must never parse or emit a header (the stack does, with
//! `wire::ipv4`), read a clock (time is an argument) or grow without bound.
//!
//! The rules, each tested below:
//! - an *exact* duplicate (same offset, length and bytes) is ignored;
//! - any other overlap discards the whole datagram, and the key is
//!   remembered (a *tombstone*) until the datagram's timeout, so its later
//!   fragments cannot build a different datagram (RFC 5722 §4, the fix for
//!   the Teardrop family of attacks);
//! - a datagram whose payload would pass [`MAX_PAYLOAD`] is discarded the
//!   same way (the "ping of death");
//! - at most [`MAX_DATAGRAMS`] keys and [`MAX_BYTES`] bytes (payload plus
//!   [`FRAGMENT_COST`] per fragment) are held; making room evicts the
//!   oldest datagram first;
//! - every datagram has [`REASSEMBLY_TIMEOUT`] from its first fragment,
//!   reported by [`Reassembler::poll_timeout`] and fired by
//!   [`Reassembler::handle_timeout`] exactly once.

use crate::time::{Duration, Instant};
use core::fmt;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;

/// How long a datagram may wait for its missing fragments, counted from the
/// first fragment that arrived. RFC 791 suggests a 15 s lower bound and
/// RFC 1122 §3.3.2 60 s to 120 s; 30 s is Linux's `ipfrag_time` and what
/// the contract names.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Most datagrams (and tombstones) under reassembly at once. A peer that
/// opens more is evicting its own oldest ones; 256 is far more than a real
/// conversation keeps in flight (a `ping -s 4000` flood holds one or two),
/// and keeps the per-fragment bookkeeping small.
pub const MAX_DATAGRAMS: usize = 256;

/// Most bytes held under reassembly at once, payload and [`FRAGMENT_COST`]
/// per fragment: 4 MiB, Linux's `ipfrag_high_thresh`. It holds 64
/// maximum-size datagrams, and bounds what a flood of never-completed
/// fragments can make us keep.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;

/// What one fragment is charged against [`MAX_BYTES`] besides its payload:
/// about its bookkeeping (a tree node and a vector header). Without it, a
/// flood of 8-byte fragments would hold ten times its payload count in
/// memory unseen, as Linux charges an skb's `truesize` for the same reason.
pub const FRAGMENT_COST: usize = 64;

/// Largest payload a reassembled datagram may have: the 16-bit total
/// length (65 535) minus the smallest header (20 bytes). Fragments whose
/// offset plus length pass it describe an illegal datagram.
pub const MAX_PAYLOAD: usize = 65_535 - 20;

/// What names a datagram among its fragments (RFC 791 §3.2: source,
/// destination, protocol and identification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragKey {
    /// The source address.
    pub src: Ipv4Addr,
    /// The destination address.
    pub dst: Ipv4Addr,
    /// The IP protocol number.
    pub protocol: u8,
    /// The identification field.
    pub ident: u16,
}

impl fmt::Display for FragKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} > {} proto {} id {}",
            self.src, self.dst, self.protocol, self.ident
        )
    }
}

/// What one fragment did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assembly {
    /// The datagram is complete: its whole payload, in order.
    Complete(Vec<u8>),
    /// Kept; the datagram still has holes.
    Pending,
    /// An exact copy of a fragment already held; ignored.
    Duplicate,
    /// Refused, and why. The datagram it belonged to (if any) is gone or
    /// was already discarded.
    Dropped(DropReason),
}

/// Why a fragment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// It overlaps another fragment without being its exact copy; the
    /// whole datagram was discarded.
    Overlap,
    /// Its last byte would pass [`MAX_PAYLOAD`]; the whole datagram was
    /// discarded.
    TooLong,
    /// A second, different end of the datagram (two last fragments that
    /// disagree, or a fragment past the end); the whole datagram was
    /// discarded.
    Inconsistent,
    /// Its datagram was discarded earlier and is remembered until its
    /// timeout.
    Discarded,
    /// Malformed on its own: a non-last fragment whose length is zero or
    /// not a multiple of 8 (RFC 791). The datagram is kept.
    BadFragment,
}

/// A datagram that timed out incomplete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    /// Which datagram.
    pub key: FragKey,
    /// The first bytes (at most 8) of its payload, if the fragment at
    /// offset 0 had arrived: RFC 792 says to send "time exceeded
    /// (fragment reassembly)" only then, quoting them.
    pub first: Option<Vec<u8>>,
}

/// What the reassembler did, for the stack's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Fragments offered.
    pub fragments: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Exact duplicates ignored.
    pub duplicates: u64,
    /// Datagrams discarded for an overlap.
    pub overlaps: u64,
    /// Datagrams discarded as too long or inconsistent.
    pub invalid: u64,
    /// Fragments refused alone (bad length) or for a discarded datagram.
    pub refused: u64,
    /// Datagrams evicted to make room.
    pub evicted: u64,
    /// Datagrams that timed out incomplete.
    pub timeouts: u64,
}

/// One datagram under reassembly.
#[derive(Debug)]
struct Partial {
    /// Fragments by offset; never overlapping.
    pieces: BTreeMap<usize, Vec<u8>>,
    /// Sum of the pieces' lengths.
    held: usize,
    /// What the pieces are charged against [`MAX_BYTES`].
    charged: usize,
    /// The payload length, once the last fragment (MF clear) is in.
    total: Option<usize>,
}

#[derive(Debug)]
enum Slot {
    Assembling(Partial),
    /// Discarded; later fragments are refused until `expires_at`.
    Tombstone,
}

#[derive(Debug)]
struct Entry {
    slot: Slot,
    /// Its place in `order`: (deadline, arrival number).
    order: (Instant, u64),
}

/// The reassembly table. See the module docs for its rules.
#[derive(Debug, Default)]
pub struct Reassembler {
    entries: HashMap<FragKey, Entry>,
    /// Every entry by (deadline, arrival number): the oldest first, for
    /// timeouts and eviction alike (deadlines are first arrival + a
    /// constant, so deadline order is age order; the number breaks ties so
    /// runs are deterministic).
    order: BTreeMap<(Instant, u64), FragKey>,
    next_arrival: u64,
    bytes: usize,
    expired: VecDeque<Expired>,
    counters: Counters,
}

impl Reassembler {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// What has happened so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Datagrams (and tombstones) held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes charged against [`MAX_BYTES`] (payload and
    /// [`FRAGMENT_COST`] per fragment).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Offers one fragment at `now`: `offset` in bytes, `more` the MF flag.
    /// Datagrams whose deadline has passed are expired first, so a late
    /// fragment starts a new datagram rather than completing a dead one.
    pub fn handle_fragment(
        &mut self,
        now: Instant,
        key: FragKey,
        offset: usize,
        more: bool,
        payload: &[u8],
    ) -> Assembly {
        self.handle_timeout(now);
        self.counters.fragments += 1;
        let end = offset.saturating_add(payload.len());
        if more && (payload.is_empty() || !payload.len().is_multiple_of(8)) {
            self.counters.refused += 1;
            return Assembly::Dropped(DropReason::BadFragment);
        }
        if let Some(entry) = self.entries.get(&key)
            && matches!(entry.slot, Slot::Tombstone)
        {
            self.counters.refused += 1;
            return Assembly::Dropped(DropReason::Discarded);
        }
        if end > MAX_PAYLOAD {
            self.discard(now, key);
            self.counters.invalid += 1;
            return Assembly::Dropped(DropReason::TooLong);
        }

        if !self.entries.contains_key(&key) {
            self.make_room_for_entry();
            let order = (now.saturating_add(REASSEMBLY_TIMEOUT), self.next_arrival);
            self.next_arrival += 1;
            self.order.insert(order, key);
            let partial = Partial {
                pieces: BTreeMap::new(),
                held: 0,
                charged: 0,
                total: None,
            };
            self.entries.insert(
                key,
                Entry {
                    slot: Slot::Assembling(partial),
                    order,
                },
            );
        }

        // Judge the fragment against what is held.
        let verdict = {
            let Some(Entry {
                slot: Slot::Assembling(p),
                ..
            }) = self.entries.get(&key)
            else {
                unreachable!("a live entry was just found or made");
            };
            judge(p, offset, end, more, payload)
        };
        match verdict {
            Judged::Fits => {}
            Judged::Duplicate => {
                self.counters.duplicates += 1;
                return Assembly::Duplicate;
            }
            Judged::Overlap => {
                self.discard(now, key);
                self.counters.overlaps += 1;
                return Assembly::Dropped(DropReason::Overlap);
            }
            Judged::Inconsistent => {
                self.discard(now, key);
                self.counters.invalid += 1;
                return Assembly::Dropped(DropReason::Inconsistent);
            }
        }

        let cost = payload.len() + FRAGMENT_COST;
        self.make_room_for_bytes(key, cost);
        let Some(Entry {
            slot: Slot::Assembling(p),
            ..
        }) = self.entries.get_mut(&key)
        else {
            unreachable!("make_room_for_bytes never evicts `key`");
        };
        p.pieces.insert(offset, payload.to_vec());
        p.held += payload.len();
        p.charged += cost;
        if !more {
            p.total = Some(end);
        }
        self.bytes += cost;
        // Without overlaps, holding `total` bytes all below `total` means
        // holding every byte.
        if p.total != Some(p.held) {
            return Assembly::Pending;
        }
        let mut whole = Vec::with_capacity(p.held);
        for piece in p.pieces.values() {
            whole.extend_from_slice(piece);
        }
        self.remove(key);
        self.counters.reassembled += 1;
        Assembly::Complete(whole)
    }

    /// The earliest deadline of any datagram or tombstone held, or `None`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.order.keys().next().map(|&(at, _)| at)
    }

    /// Expires every datagram whose deadline is at or before `now`. An
    /// incomplete datagram is counted and queued for
    /// [`poll_expired`](Self::poll_expired); a tombstone is forgotten. A
    /// call with nothing due does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((&(at, _), &key)) = self.order.first_key_value() {
            if at > now {
                break;
            }
            if let Some(Slot::Assembling(p)) = self.remove(key) {
                self.counters.timeouts += 1;
                let first = p
                    .pieces
                    .get(&0)
                    .map(|piece| piece[..piece.len().min(8)].to_vec());
                self.expired.push_back(Expired { key, first });
            }
        }
    }

    /// The next datagram that timed out incomplete, oldest first.
    pub fn poll_expired(&mut self) -> Option<Expired> {
        self.expired.pop_front()
    }

    /// Frees `key`'s bytes and forgets it.
    fn remove(&mut self, key: FragKey) -> Option<Slot> {
        let entry = self.entries.remove(&key)?;
        self.order.remove(&entry.order);
        if let Slot::Assembling(p) = &entry.slot {
            self.bytes -= p.charged;
        }
        Some(entry.slot)
    }

    /// Replaces `key`'s datagram (if any) by a tombstone that lasts until
    /// the datagram's own deadline (or [`REASSEMBLY_TIMEOUT`] from `now`
    /// when there was none yet).
    fn discard(&mut self, now: Instant, key: FragKey) {
        let order = if let Some(entry) = self.entries.get(&key) {
            entry.order
        } else {
            self.make_room_for_entry();
            let order = (now.saturating_add(REASSEMBLY_TIMEOUT), self.next_arrival);
            self.next_arrival += 1;
            order
        };
        self.remove(key);
        self.order.insert(order, key);
        self.entries.insert(
            key,
            Entry {
                slot: Slot::Tombstone,
                order,
            },
        );
    }

    /// Evicts the oldest entries until one more fits under
    /// [`MAX_DATAGRAMS`].
    fn make_room_for_entry(&mut self) {
        while self.entries.len() >= MAX_DATAGRAMS {
            let Some((_, &oldest)) = self.order.first_key_value() else {
                break;
            };
            self.evict(oldest);
        }
    }

    /// Evicts the oldest datagrams other than `keep` until `len` more bytes
    /// fit under [`MAX_BYTES`]. Always succeeds: one datagram is never
    /// charged more than [`MAX_PAYLOAD`] plus 8 190 fragments' cost (8-byte
    /// pieces), well under the bound.
    fn make_room_for_bytes(&mut self, keep: FragKey, len: usize) {
        while self.bytes + len > MAX_BYTES {
            let victim = self.order.values().copied().find(|&k| {
                k != keep
                    && self
                        .entries
                        .get(&k)
                        .is_some_and(|e| matches!(&e.slot, Slot::Assembling(p) if p.charged > 0))
            });
            let Some(victim) = victim else { break };
            self.evict(victim);
        }
    }

    fn evict(&mut self, key: FragKey) {
        if let Some(Slot::Assembling(_)) = self.remove(key) {
            self.counters.evicted += 1;
        }
    }
}

enum Judged {
    Fits,
    Duplicate,
    Overlap,
    Inconsistent,
}

/// How the fragment `[offset, end)` relates to what `p` holds.
fn judge(p: &Partial, offset: usize, end: usize, more: bool, payload: &[u8]) -> Judged {
    if let Some((&at, piece)) = p.pieces.range(..=offset).next_back() {
        if at == offset && piece.as_slice() == payload {
            return Judged::Duplicate;
        }
        if at + piece.len() > offset {
            return Judged::Overlap;
        }
    }
    if let Some((&at, _)) = p.pieces.range(offset..).next()
        && at < end
    {
        return Judged::Overlap;
    }
    match p.total {
        // A second end must be the same end; nothing may lie past it.
        Some(total) if (!more && end != total) || end > total => Judged::Inconsistent,
        // A new end must not cut off what is held.
        None if !more
            && p.pieces
                .last_key_value()
                .is_some_and(|(&at, pc)| at + pc.len() > end) =>
        {
            Judged::Inconsistent
        }
        _ => Judged::Fits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testing::at;

    fn key(ident: u16) -> FragKey {
        FragKey {
            src: Ipv4Addr::new(192, 0, 2, 2),
            dst: Ipv4Addr::new(192, 0, 2, 1),
            protocol: 17,
            ident,
        }
    }

    /// A payload whose every byte says where it is.
    fn payload(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| u8::try_from(i * 7 % 251).unwrap())
            .collect()
    }

    /// `data` cut at `cuts` (byte offsets) into (offset, more, bytes).
    fn cut(data: &[u8], cuts: &[usize]) -> Vec<(usize, bool, Vec<u8>)> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(data.len());
        bounds
            .windows(2)
            .map(|w| (w[0], w[1] != data.len(), data[w[0]..w[1]].to_vec()))
            .collect()
    }

    const PERMUTATIONS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];

    #[test]
    fn every_permutation_of_three_fragments_reassembles() {
        let data = payload(2_000);
        let frags = cut(&data, &[800, 1_600]);
        for perm in PERMUTATIONS {
            let mut r = Reassembler::new();
            let mut outcomes = Vec::new();
            for &i in &perm {
                let (off, more, bytes) = &frags[i];
                outcomes.push(r.handle_fragment(at(0), key(1), *off, *more, bytes));
            }
            assert_eq!(outcomes[0], Assembly::Pending, "{perm:?}");
            assert_eq!(outcomes[1], Assembly::Pending, "{perm:?}");
            assert_eq!(outcomes[2], Assembly::Complete(data.clone()), "{perm:?}");
            assert!(r.is_empty() && r.bytes() == 0, "{perm:?}");
            assert_eq!(r.poll_timeout(), None);
            assert_eq!(r.counters().reassembled, 1);
        }
    }

    #[test]
    fn exact_duplicates_are_tolerated_anywhere() {
        let data = payload(2_000);
        let frags = cut(&data, &[800, 1_600]);
        for perm in PERMUTATIONS {
            for dup in 0..2 {
                let mut r = Reassembler::new();
                let mut last = Assembly::Pending;
                for (n, &i) in perm.iter().enumerate() {
                    let (off, more, bytes) = &frags[i];
                    last = r.handle_fragment(at(0), key(1), *off, *more, bytes);
                    if n == dup {
                        let again = r.handle_fragment(at(1), key(1), *off, *more, bytes);
                        assert_eq!(again, Assembly::Duplicate);
                    }
                }
                assert_eq!(last, Assembly::Complete(data.clone()), "{perm:?} {dup}");
                assert_eq!(r.counters().duplicates, 1);
            }
        }
        // Fragments of different datagrams never mix, even with equal offsets.
        let mut r = Reassembler::new();
        let (a, b) = (payload(16), vec![9u8; 16]);
        r.handle_fragment(at(0), key(1), 0, true, &a[..8]);
        r.handle_fragment(at(0), key(2), 0, true, &b[..8]);
        assert_eq!(
            r.handle_fragment(at(0), key(2), 8, false, &b[8..]),
            Assembly::Complete(b)
        );
        assert_eq!(
            r.handle_fragment(at(0), key(1), 8, false, &a[8..]),
            Assembly::Complete(a)
        );
    }

    #[test]
    fn any_overlap_discards_the_whole_datagram_until_its_timeout() {
        let data = payload(24);
        // (offset, more, len) of a second fragment against [0, 16) held.
        let overlapping = [
            (8, true, 16),  // straddles the end
            (0, true, 8),   // inside, same start
            (8, false, 8),  // inside, same end
            (0, true, 16),  // same range, different bytes
            (0, false, 24), // covers it
        ];
        for (off, more, len) in overlapping {
            let mut r = Reassembler::new();
            assert_eq!(
                r.handle_fragment(at(0), key(1), 0, true, &data[..16]),
                Assembly::Pending
            );
            let mut other = data[off..off + len].to_vec();
            other[0] ^= 0xff;
            assert_eq!(
                r.handle_fragment(at(1_000), key(1), off, more, &other),
                Assembly::Dropped(DropReason::Overlap),
                "{off} {len}"
            );
            assert_eq!(r.bytes(), 0);
            assert_eq!(r.counters().overlaps, 1);
            // The rest of the original datagram completes nothing now.
            assert_eq!(
                r.handle_fragment(at(2_000), key(1), 16, false, &data[16..]),
                Assembly::Dropped(DropReason::Discarded)
            );
            // The tombstone keeps the first fragment's deadline, and goes
            // silently: a discarded datagram is not a timeout.
            assert_eq!(r.poll_timeout(), Some(at(30_000)));
            r.handle_timeout(at(30_000));
            assert!(r.is_empty());
            assert_eq!(r.poll_expired(), None);
            assert_eq!(r.counters().timeouts, 0);
            // After it, the key is free again.
            r.handle_fragment(at(30_001), key(1), 0, true, &data[..16]);
            assert_eq!(
                r.handle_fragment(at(30_001), key(1), 16, false, &data[16..]),
                Assembly::Complete(data.clone())
            );
        }
    }

    #[test]
    fn lengths_past_the_largest_datagram_and_second_ends_are_refused() {
        let mut r = Reassembler::new();
        // Ping of death: a last fragment at the highest offset.
        assert_eq!(
            r.handle_fragment(at(0), key(1), 65_528, false, &[0; 8]),
            Assembly::Dropped(DropReason::TooLong)
        );
        assert_eq!(r.bytes(), 0);
        // The largest legal datagram reassembles.
        let data = payload(MAX_PAYLOAD);
        let split = 65_000;
        r.handle_fragment(at(0), key(2), 0, true, &data[..split]);
        assert_eq!(
            r.handle_fragment(at(0), key(2), split, false, &data[split..]),
            Assembly::Complete(data)
        );
        // Two different ends.
        r.handle_fragment(at(0), key(3), 16, false, &[1; 8]);
        assert_eq!(
            r.handle_fragment(at(0), key(3), 32, false, &[1; 8]),
            Assembly::Dropped(DropReason::Inconsistent)
        );
        // A fragment past a known end.
        r.handle_fragment(at(0), key(4), 16, false, &[1; 8]);
        assert_eq!(
            r.handle_fragment(at(0), key(4), 24, true, &[1; 8]),
            Assembly::Dropped(DropReason::Inconsistent)
        );
        // A middle fragment that is not a multiple of 8 is refused alone.
        r.handle_fragment(at(0), key(5), 0, true, &[1; 8]);
        assert_eq!(
            r.handle_fragment(at(0), key(5), 8, true, &[1; 7]),
            Assembly::Dropped(DropReason::BadFragment)
        );
        assert_eq!(
            r.handle_fragment(at(0), key(5), 8, false, &[1; 7]),
            Assembly::Complete(vec![1; 15])
        );
        let c = r.counters();
        assert_eq!((c.invalid, c.refused, c.reassembled), (3, 1, 2));
    }

    #[test]
    fn a_missing_middle_fragment_times_out_at_exactly_thirty_seconds_once() {
        let data = payload(2_400);
        let frags = cut(&data, &[800, 1_600]);
        let mut r = Reassembler::new();
        let start = at(5_000);
        r.handle_fragment(start, key(7), frags[0].0, frags[0].1, &frags[0].2);
        // A later fragment does not move the deadline.
        r.handle_fragment(at(20_000), key(7), frags[2].0, frags[2].1, &frags[2].2);
        let deadline = start + REASSEMBLY_TIMEOUT;
        assert_eq!(r.poll_timeout(), Some(deadline));
        let just_before = Instant::from_nanos(deadline.as_nanos() - 1);
        r.handle_timeout(just_before);
        assert_eq!(r.poll_expired(), None);
        assert_eq!(r.len(), 1);
        assert_eq!(r.counters().timeouts, 0);
        r.handle_timeout(deadline);
        assert_eq!(
            r.poll_expired(),
            Some(Expired {
                key: key(7),
                first: Some(data[..8].to_vec())
            })
        );
        assert_eq!(r.poll_expired(), None);
        assert!(r.is_empty() && r.bytes() == 0);
        assert_eq!(r.poll_timeout(), None);
        // Fired once: later calls find nothing.
        r.handle_timeout(deadline);
        r.handle_timeout(at(1_000_000));
        assert_eq!(r.poll_expired(), None);
        assert_eq!(r.counters().timeouts, 1);
        // The missing middle arriving late starts a new datagram.
        assert_eq!(
            r.handle_fragment(at(40_000), key(7), frags[1].0, frags[1].1, &frags[1].2),
            Assembly::Pending
        );
        // Without the first fragment there is nothing to quote.
        r.handle_timeout(at(70_000));
        assert_eq!(
            r.poll_expired(),
            Some(Expired {
                key: key(7),
                first: None
            })
        );
    }

    #[test]
    fn ten_thousand_incomplete_datagrams_stay_within_the_bounds() {
        let mut r = Reassembler::new();
        let piece = vec![0u8; 8_192];
        let mut max_len = 0;
        let mut max_bytes = 0;
        for i in 0..10_000u16 {
            let now = Instant::from_millis(u64::from(i));
            // Each has its first piece and never its last.
            assert_eq!(
                r.handle_fragment(now, key(i), 0, true, &piece),
                Assembly::Pending
            );
            max_len = max_len.max(r.len());
            max_bytes = max_bytes.max(r.bytes());
            assert!(r.len() <= MAX_DATAGRAMS && r.bytes() <= MAX_BYTES);
        }
        let limit = MAX_DATAGRAMS.min(MAX_BYTES / (piece.len() + FRAGMENT_COST));
        assert_eq!(max_len, limit);
        assert_eq!(r.counters().evicted, 10_000 - limit as u64);
        // The survivors are the newest: the oldest went first.
        let oldest_kept = 10_000 - u16::try_from(limit).unwrap();
        assert_eq!(
            r.poll_timeout(),
            Some(Instant::from_millis(u64::from(oldest_kept)) + REASSEMBLY_TIMEOUT)
        );
        // A survivor still completes; an evicted one does not.
        assert_eq!(
            r.handle_fragment(at(10_000), key(9_999), 8_192, false, &[1]),
            Assembly::Complete([&piece[..], &[1]].concat())
        );
        assert_eq!(
            r.handle_fragment(at(10_000), key(0), 8_192, false, &[1]),
            Assembly::Pending
        );
        // Large pieces hit the byte bound before the count bound.
        let mut r = Reassembler::new();
        let big = vec![0u8; 60_000];
        for i in 0..10_000u16 {
            r.handle_fragment(at(0), key(i), 0, true, &big);
            assert!(r.len() <= MAX_DATAGRAMS && r.bytes() <= MAX_BYTES);
        }
        assert_eq!(r.len(), MAX_BYTES / (big.len() + FRAGMENT_COST));
        // So do floods of the smallest fragments, each datagram full of
        // holes: their bookkeeping is charged too.
        let mut r = Reassembler::new();
        for i in 0..300u16 {
            for k in 0..1_000 {
                r.handle_fragment(at(0), key(i), 16 * k, true, &[0; 8]);
            }
            assert!(r.len() <= MAX_DATAGRAMS && r.bytes() <= MAX_BYTES);
        }
        assert_eq!(r.len(), MAX_BYTES / (1_000 * (8 + FRAGMENT_COST)));
        assert!(r.counters().evicted > 200);
    }
}
