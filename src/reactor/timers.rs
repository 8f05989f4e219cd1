//! The deadline heap: one min-heap for every timer in the process.
//!
//! Owns every pending deadline: those of sessions, acceptors and timer-only
//! jobs (one per slab entry), and idle exit. It never calls anyone: the reactor pops what is due and asks the
//! owner whether the popped stamp is still the one it armed.
//!
//! Invariants:
//! * Stamps come from one counter and are never reused, so a heap entry can
//!   only ever match the arming that created it — not a later arming of the
//!   same owner, and not a new owner that reused a slab key.
//! * Re-arming never searches the heap: the old entry stays, *stale*, and is
//!   discarded when it pops (lazy cancellation). A stale entry can only cause
//!   an early, harmless wake-up.
//! * Ties pop in arming order (the row index breaks them), so runs are
//!   deterministic.
//! * [`Timers::compact`] bounds the memory stale entries take under churn.
//! * A deadline never pops before its instant: [`Timers::pop_due`] compares
//!   the exact `Instant`, never a rounded one.
//!
//! **Layout.** The heap is a `D`-ary min-heap ([`ARITY`] = 8) of 8-byte
//! keys: the deadline in ticks of [`TICK_NS`] (1.024 µs) since a base, in
//! the high 40 bits, and the index of the arming's *row* in the low
//! [`INDEX_BITS`]. The row (32 bytes, in a side table) holds the exact
//! instant, the stamp, the owner and the wake class. Rows are appended in
//! arming order, so a smaller index is an earlier arming, and comparing two
//! keys as plain `u64`s orders them by (tick, arming order). Eight children
//! are 64 bytes, one cache line: at 1 M entries a pop touches 7 lines
//! instead of the 20 of a binary heap of 40-byte entries, and picks the
//! least child by a tournament of independent compares, not a chain. A
//! pop marks its row dead (the newest row is dropped instead); when dead
//! rows outnumber live ones by [`ROW_SLACK`] the table is renumbered in
//! place (live rows keep their order, so no key moves), and indexes stay
//! dense. A rebuild that moves the base drops dead rows too. The one random memory access left per pop, the new
//! top's row, is prefetched as soon as the pop knows which key that is.
//!
//! **What the tick costs.** Two deadlines in the same 1.024 µs tick pop in
//! arming order, not instant order, so the earlier one can wait for the
//! later one: at most 1.024 µs late, never early, since the top pops only
//! when its exact instant is due. The reactor's timerfd wakes 40–100 µs
//! late (`docs/performance.md` §2), so no test can see it. The tick counts
//! from a base (a multiple of the tick) that moves only when a deadline
//! falls outside its 13-day range, by an O(n) rebuild: see
//! [`Timers::arm_with`] and `settle`.
//!
//! Each deadline says how punctual its wake-up must be ([`Wake`]): a pacing
//! deadline makes the reactor spin for the last microseconds, an ordinary
//! one arms the timerfd at exactly its instant, and a coarse one (expiry
//! bookkeeping that nothing waits on) may be rounded up to the next
//! millisecond, so that a stream of them re-arms the timerfd at most once
//! per millisecond.

use crate::proto::PartId;
use crate::time::Instant;
use core::fmt;

/// Identifies one arming. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(u64);

pub use crate::proto::Wake;

/// Who a deadline belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The session, acceptor or job in this slab entry.
    Entry(usize),
    /// One part of the session in this slab entry (a TUN stack's TCP
    /// connection): see `Driven::poll_part_timeout`.
    Part(usize, PartId),
    /// The reactor's idle-exit check.
    IdleExit,
}

/// Children per heap node. 8 keys of 8 bytes are one 64-byte cache line,
/// so a level costs one miss, and 1 M entries are 7 levels deep.
/// `benches/timers.rs` measures 2, 4 and 8 (`docs/performance.md` §1).
pub const ARITY: usize = 8;

/// Low bits of a key that hold the row index: 2^24 rows, so up to
/// [`MAX_ROWS`] deadlines armed at once, stale ones included.
pub const INDEX_BITS: u32 = 24;

const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// The most rows (armed deadlines, stale ones included) the table holds.
/// The all-ones index is never used, so no key equals `u64::MAX`, the
/// padding after the last key. 16 M deadlines are 512 MiB of rows, far
/// beyond any reactor here (1 M in the benchmark).
pub const MAX_ROWS: usize = (1 << INDEX_BITS) - 1;

/// log2 of the tick: a tick is 2^10 ns = 1.024 µs, the resolution at which
/// deadlines are ordered (within a tick, arming order decides).
pub const TICK_SHIFT: u32 = 10;

/// One tick in nanoseconds.
pub const TICK_NS: u64 = 1 << TICK_SHIFT;

/// The largest tick a key holds: 2^40 − 1 ticks after the base, 2^50 ns or
/// 13 days. A later deadline is stored as this tick (*saturated*); it can
/// never be the earliest while an unsaturated one waits, and `settle`
/// moves the base before a saturated key reaches the top.
const MAX_TICK: u64 = (1 << (64 - INDEX_BITS)) - 1;

/// How far below the earliest deadline a moved base goes, 2^48 ns (3.3
/// days): a deadline armed a little earlier than every pending one then
/// still fits without another rebuild.
const BASE_HEADROOM_NS: u64 = 1 << 48;

/// Dead rows tolerated beyond the live ones before the table is renumbered.
/// Renumbering is O(n), so it waits for at least n + this many armings:
/// amortised O(1) per arming, and a small heap is not rebuilt every few
/// pops. 8192 rows are 256 KiB; a slack of 1024 renumbered a 1 k heap
/// every 2 k armings. Unit tests use 64, so that short random runs cross
/// many renumberings.
const ROW_SLACK: usize = if cfg!(test) { 64 } else { 8192 };

/// A row's `stamp_wake` once its key has left the heap. Stamps stay below
/// 2^62 (146 years at 10^9 armings a second), so it is never a live value.
const DEAD: u64 = u64::MAX;

/// One arming: what its heap key stands for. 32 bytes, two to a half line.
#[derive(Clone, Copy, Debug)]
struct Row {
    /// The exact deadline, in nanoseconds since the epoch.
    at: u64,
    /// The stamp shifted left by 2, the [`Wake`] class in the low 2 bits;
    /// [`DEAD`] once popped or dropped.
    stamp_wake: u64,
    owner: Owner,
}

const _: () = assert!(size_of::<Row>() == 32, "a row is 32 bytes");

impl Row {
    fn stamp(&self) -> Stamp {
        Stamp(self.stamp_wake >> 2)
    }

    fn wake(&self) -> Wake {
        match self.stamp_wake & 3 {
            0 => Wake::Exact,
            1 => Wake::Paced,
            _ => Wake::Coarse,
        }
    }

    fn is_dead(&self) -> bool {
        self.stamp_wake == DEAD
    }
}

fn wake_code(wake: Wake) -> u64 {
    match wake {
        Wake::Exact => 0,
        Wake::Paced => 1,
        Wake::Coarse => 2,
    }
}

/// How many keys of the top's tick [`Timers::next_wake`] looks at before
/// answering with the tick's start: same-tick armings are rare (a tick is
/// 1.024 µs), so this bounds a pathological case, not a common one.
const SAME_TICK_SCAN: usize = 32;

/// The stricter of two wake classes: paced (spin to the instant), then
/// exact (the timerfd at the instant), then coarse (rounded up).
fn more_punctual(a: Wake, b: Wake) -> Wake {
    match (a, b) {
        (Wake::Paced, _) | (_, Wake::Paced) => Wake::Paced,
        (Wake::Exact, _) | (_, Wake::Exact) => Wake::Exact,
        _ => Wake::Coarse,
    }
}

/// The row index in the low bits of a key.
fn index_of(key: u64) -> usize {
    (key & INDEX_MASK) as usize
}

/// The min-heap of deadlines, `D` children per node (see the module docs).
pub struct Timers<const D: usize = ARITY> {
    /// Up to 7 unused slots (`off`), the heap, then at least `D` keys of
    /// `u64::MAX` padding (more after pops: only a rebuild shrinks it), so that every node that has a child has `D`
    /// readable child slots.
    keys: Vec<u64>,
    /// Where the root is in `keys`: chosen so that each node's `D`
    /// children start on a 64-byte boundary, and one level of a sift
    /// reads one cache line, not two.
    off: usize,
    /// Keys in the heap (live and stale armings alike).
    len: usize,
    /// One row per arming since the last rebuild, in arming order.
    rows: Vec<Row>,
    /// The instant of tick 0, in ns: a multiple of [`TICK_NS`], at or
    /// below every deadline in the heap.
    base: u64,
    next_stamp: u64,
    /// Scratch for `renumber`: each old row index's new one. Kept, so a
    /// renumbering does not allocate.
    remap: Vec<u32>,
    /// Renumberings so far: the property test checks it really renumbered.
    #[cfg(test)]
    renumbered: usize,
}

impl<const D: usize> fmt::Debug for Timers<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers")
            .field("len", &self.len)
            .field("next", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

impl Default for Timers {
    fn default() -> Self {
        Self::with_arity()
    }
}

impl Timers {
    /// An empty heap.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<const D: usize> Timers<D> {
    /// An empty heap of `D` children per node (the benchmark compares them;
    /// the reactor uses [`ARITY`]).
    pub fn with_arity() -> Self {
        const { assert!(D >= 2 && D <= 8, "2 to 8 children per node") };
        let mut keys = Vec::with_capacity(64);
        let off = aligned_off(&keys);
        keys.resize(off + D, u64::MAX);
        Self {
            keys,
            off,
            len: 0,
            rows: Vec::new(),
            base: 0,
            next_stamp: 0,
            remap: Vec::new(),
            #[cfg(test)]
            renumbered: 0,
        }
    }

    /// Adds a deadline for `owner` at `at`, and returns its fresh stamp.
    pub fn arm(&mut self, owner: Owner, at: Instant) -> Stamp {
        self.arm_with(owner, at, Wake::Exact)
    }

    /// [`arm`](Self::arm), saying how punctual the wake-up must be.
    ///
    /// # Panics
    ///
    /// If [`MAX_ROWS`] deadlines are armed at once (live and stale).
    pub fn arm_with(&mut self, owner: Owner, at: Instant, wake: Wake) -> Stamp {
        if self.rows.len() >= MAX_ROWS || self.rows.len() >= 2 * self.len + ROW_SLACK {
            self.renumber();
        }
        let at = at.as_nanos();
        if at < self.base {
            self.lower_base(at);
        }
        let stamp = Stamp(self.next_stamp);
        self.next_stamp += 1;
        let index = self.rows.len();
        self.rows.push(Row {
            at,
            stamp_wake: (stamp.0 << 2) | wake_code(wake),
            owner,
        });
        let key = self.key(at, index);
        self.push(key);
        self.settle();
        stamp
    }

    /// The earliest deadline, possibly stale.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.top().map(|row| Instant::from_nanos(row.at))
    }

    /// The earliest deadline and how punctual it must be.
    ///
    /// Within one tick, keys order by arming, not by instant, so the top
    /// may be a coarse deadline armed first while a precise one armed
    /// after it, for an earlier instant of the same tick, waits below it.
    /// Every key of the top's tick lies in a subtree under the top (no
    /// parent key is larger than its child's), so the walk looks only
    /// there, and answers with the earliest instant and the most punctual
    /// wake it finds: rounding a coarse top up to the millisecond must not
    /// make a paced send late. The subtree is almost always the top alone;
    /// past [`SAME_TICK_SCAN`] nodes the answer is the tick's start,
    /// paced: early by under a tick, never late.
    pub fn next_wake(&self) -> Option<(Instant, Wake)> {
        let top = self.peek_key()?;
        let tick = top >> INDEX_BITS;
        let row = &self.rows[index_of(top)];
        let (mut at, mut wake) = (row.at, row.wake());
        let heap = &self.keys[self.off..self.off + self.len];
        let mut todo = [0usize; SAME_TICK_SCAN];
        let (mut pending, mut seen) = (1, 1);
        while pending > 0 {
            pending -= 1;
            let first = D * todo[pending] + 1;
            for (child, &key) in heap.iter().enumerate().skip(first).take(D) {
                if key >> INDEX_BITS != tick {
                    continue;
                }
                if seen == SAME_TICK_SCAN {
                    let start = self.base + (tick << TICK_SHIFT);
                    return Some((Instant::from_nanos(start.min(at)), Wake::Paced));
                }
                seen += 1;
                let row = &self.rows[index_of(key)];
                at = at.min(row.at);
                wake = more_punctual(wake, row.wake());
                todo[pending] = child;
                pending += 1;
            }
        }
        Some((Instant::from_nanos(at), wake))
    }

    /// Removes and returns the earliest deadline if it is due at `now`
    /// (`at <= now`, exactly). The caller checks whether the stamp is still
    /// live.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Owner, Stamp, Instant)> {
        let index = index_of(self.peek_key()?);
        let row = self.rows[index];
        if row.at > now.as_nanos() {
            return None;
        }
        self.pop();
        if index + 1 == self.rows.len() {
            self.rows.pop();
        } else {
            self.rows[index].stamp_wake = DEAD;
        }
        self.settle();
        Some((row.owner, row.stamp(), Instant::from_nanos(row.at)))
    }

    /// Entries in the heap, stale ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the heap is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops every entry for which `is_live` says false. O(n): call it only
    /// when stale entries clearly outnumber live ones.
    pub fn compact(&mut self, mut is_live: impl FnMut(Owner, Stamp) -> bool) {
        self.rebuild(self.base, |row| is_live(row.owner, row.stamp()));
        self.settle();
    }

    fn top(&self) -> Option<&Row> {
        self.peek_key().map(|key| &self.rows[index_of(key)])
    }

    fn peek_key(&self) -> Option<u64> {
        (self.len > 0).then(|| self.keys[self.off])
    }

    /// The key of the row at `index` armed for `at` (at or after the base).
    fn key(&self, at: u64, index: usize) -> u64 {
        let tick = ((at - self.base) >> TICK_SHIFT).min(MAX_TICK);
        (tick << INDEX_BITS) | index as u64
    }

    /// Keeps the top exact: a saturated key at the top means every
    /// deadline lies 13 days or more past the base, and their order among
    /// themselves is arming order, not time. Moving the base to the
    /// earliest of them (O(n)) restores time order; it happens at most once
    /// per 13 days of deadlines, or when only such far deadlines remain.
    #[inline]
    fn settle(&mut self) {
        if self
            .peek_key()
            .is_some_and(|key| key >> INDEX_BITS == MAX_TICK)
        {
            self.raise_base();
        }
    }

    /// The top key is saturated: move the base up to the earliest deadline.
    #[cold]
    #[inline(never)]
    fn raise_base(&mut self) {
        let earliest = self
            .rows
            .iter()
            .filter(|row| !row.is_dead())
            .map(|row| row.at)
            .min()
            .unwrap_or(self.base);
        self.rebuild(align(earliest.saturating_sub(BASE_HEADROOM_NS)), |_| true);
    }

    /// Drops dead rows, keeping arming order (see [`ROW_SLACK`]).
    ///
    /// Live rows keep their relative order, so the new indexes order every
    /// tick's keys as the old ones did: each key keeps its place in the
    /// heap and only its index bits change. No sift, one pass over the
    /// rows and one over the keys. Every key in the heap has a live row
    /// (a row dies only when its key pops).
    #[cold]
    #[inline(never)]
    fn renumber(&mut self) {
        let mut remap = core::mem::take(&mut self.remap);
        remap.clear();
        let mut kept = 0;
        for i in 0..self.rows.len() {
            remap.push(u32::try_from(kept).expect("row indexes stay below MAX_ROWS"));
            let row = self.rows[i];
            if !row.is_dead() {
                self.rows[kept] = row;
                kept += 1;
            }
        }
        self.rows.truncate(kept);
        for key in &mut self.keys[self.off..self.off + self.len] {
            *key = (*key & !INDEX_MASK) | u64::from(remap[index_of(*key)]);
        }
        self.remap = remap;
        #[cfg(test)]
        {
            self.renumbered += 1;
        }
        assert!(
            self.rows.len() < MAX_ROWS,
            "more than {MAX_ROWS} deadlines armed at once"
        );
    }

    /// A deadline at `at` is earlier than the base (which only ever rose
    /// to the earliest deadline, `settle`): lower the base rather than
    /// bend the order.
    #[cold]
    #[inline(never)]
    fn lower_base(&mut self, at: u64) {
        self.rebuild(align(at.saturating_sub(BASE_HEADROOM_NS)), |_| true);
    }

    /// Rebuilds the table and the heap from the rows `keep` accepts, in
    /// arming order, ticks counted from `base`: drops dead rows (so indexes
    /// stay dense), and moves the base. O(n).
    fn rebuild(&mut self, base: u64, mut keep: impl FnMut(&Row) -> bool) {
        let mut kept = 0;
        for i in 0..self.rows.len() {
            let row = self.rows[i];
            if !row.is_dead() && keep(&row) {
                self.rows[kept] = row;
                kept += 1;
            }
        }
        self.rows.truncate(kept);
        self.base = base;
        self.keys.clear();
        // Room for the offset first, so that filling the buffer does not
        // move it and undo the alignment.
        self.keys.reserve(7 + kept + D);
        self.off = aligned_off(&self.keys);
        self.keys.resize(self.off, u64::MAX);
        self.keys
            .extend(self.rows.iter().enumerate().map(|(i, row)| {
                ((row.at - base) >> TICK_SHIFT).min(MAX_TICK) << INDEX_BITS | i as u64
            }));
        self.len = kept;
        self.keys.resize(self.off + kept + D, u64::MAX);
        // Floyd: sift down every inner node, last first.
        if kept > 1 {
            for i in (0..=(kept - 2) / D).rev() {
                let key = self.keys[self.off + i];
                self.sift_down(i, key);
            }
        }
    }

    #[inline]
    fn push(&mut self, key: u64) {
        // A pop leaves `u64::MAX` behind rather than shrinking `keys`, so
        // it grows only when the new key would eat into the padding.
        if self.off + self.len + D >= self.keys.len() {
            if self.keys.len() == self.keys.capacity() {
                self.grow();
            }
            self.keys.push(u64::MAX);
        }
        let heap = &mut self.keys[self.off..];
        let mut i = self.len;
        self.len += 1;
        while i > 0 {
            let parent = (i - 1) / D;
            let above = heap[parent];
            if above <= key {
                break;
            }
            heap[i] = above;
            i = parent;
        }
        heap[i] = key;
    }

    /// Doubles the key buffer, realigned (a `Vec` growing by itself would
    /// land anywhere).
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let mut keys = Vec::with_capacity(2 * self.keys.capacity());
        let off = aligned_off(&keys);
        keys.resize(off, u64::MAX);
        keys.extend_from_slice(&self.keys[self.off..]);
        self.keys = keys;
        self.off = off;
    }

    /// Removes the top key (the heap is not empty).
    #[inline]
    fn pop(&mut self) {
        self.len -= 1;
        let heap = &mut self.keys[self.off..];
        let last = heap[self.len];
        heap[self.len] = u64::MAX;
        if self.len == 0 {
            return;
        }
        // The first level of the sift, by hand: it names the new top, and
        // the next pop starts by reading that key's row, in a large table
        // a miss to memory, one per pop. Loading it now overlaps the miss
        // with the rest of the sift and whatever the caller does until its
        // next pop.
        let (least, min) = least_child::<D>(heap, 1);
        let top = min.min(last);
        heap[0] = top;
        if let Some(row) = self.rows.get(index_of(top)) {
            super::sys::prefetch(row);
        }
        if min < last {
            self.sift_down(1 + least, last);
        }
    }

    /// Places `key` in the hole at `i`, moving smaller children up.
    #[inline]
    fn sift_down(&mut self, mut i: usize, key: u64) {
        let len = self.len;
        let heap = &mut self.keys[self.off..];
        loop {
            let first = D * i + 1;
            if first >= len {
                break;
            }
            let (least, min) = least_child::<D>(heap, first);
            if min >= key {
                break;
            }
            heap[i] = min;
            i = first + least;
        }
        heap[i] = key;
    }
}

/// The least of the `D` keys at `keys[first..]`, and its position among
/// them. Padding makes all `D` slots readable; a missing child is
/// `u64::MAX` and never the least.
///
/// Pairwise, as a tournament: a linear scan is a chain of `D - 1`
/// dependent compare-and-selects per heap level, the tournament
/// `log2(D)` levels of independent ones, and that chain is on the
/// critical path of every sift (keys are unique, so there are no ties).
#[inline]
fn least_child<const D: usize>(keys: &[u64], first: usize) -> (usize, u64) {
    let Ok(children) = <&[u64; D]>::try_from(&keys[first..first + D]) else {
        unreachable!("D keys of padding follow the heap");
    };
    let mut key = *children;
    let mut at: [usize; D] = core::array::from_fn(|j| j);
    let mut width = D;
    while width > 1 {
        let half = width.div_ceil(2);
        for j in 0..width / 2 {
            if key[j + half] < key[j] {
                key[j] = key[j + half];
                at[j] = at[j + half];
            }
        }
        width = half;
    }
    (at[0], key[0])
}

/// Where to put the root in `keys` so that the children of every node,
/// which start at root + 1 + D × i, begin on a 64-byte boundary: 0 to 7.
fn aligned_off(keys: &[u64]) -> usize {
    let first_child = keys.as_ptr().addr() + size_of::<u64>();
    (64 - first_child % 64) % 64 / size_of::<u64>()
}

/// `ns` rounded down to a whole tick: bases are multiples of the tick, so
/// a deadline's tick, and the order of two deadlines, does not depend on
/// where the base is.
fn align(ns: u64) -> u64 {
    ns & !(TICK_NS - 1)
}

/// The owner's half of a timer: what it has armed right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerSlot {
    armed: Option<(Instant, Stamp)>,
    wake: Wake,
}

impl TimerSlot {
    /// Makes the armed deadline `want`. Pushes onto the heap only when `want`
    /// differs from what is armed; the old entry goes stale.
    pub fn sync(&mut self, timers: &mut Timers, owner: Owner, want: Option<Instant>) {
        self.sync_with(timers, owner, want, Wake::Exact);
    }

    /// [`sync`](Self::sync), saying how punctual the wake-up must be.
    pub fn sync_with(
        &mut self,
        timers: &mut Timers,
        owner: Owner,
        want: Option<Instant>,
        wake: Wake,
    ) {
        if self.armed.map(|(at, _)| at) == want && (want.is_none() || self.wake == wake) {
            return;
        }
        self.wake = wake;
        self.armed = want.map(|at| (at, timers.arm_with(owner, at, wake)));
    }

    /// True (and disarms) when `stamp` is the live arming; false for a stale pop.
    pub fn take_if_current(&mut self, stamp: Stamp) -> bool {
        if self.is_current(stamp) {
            self.armed = None;
            true
        } else {
            false
        }
    }

    /// Whether `stamp` is the live arming.
    pub fn is_current(&self, stamp: Stamp) -> bool {
        matches!(self.armed, Some((_, s)) if s == stamp)
    }

    /// The armed deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.armed.map(|(at, _)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slab::Slab;

    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let mut t = Timers::new();
        t.arm(Owner::Entry(1), ms(30));
        t.arm(Owner::Entry(2), ms(10));
        t.arm(Owner::Entry(3), ms(20));
        assert_eq!(t.next_deadline(), Some(ms(10)));
        assert!(t.pop_due(ms(9)).is_none());
        assert_eq!(t.pop_due(ms(10)).unwrap().0, Owner::Entry(2));
        assert!(t.pop_due(ms(19)).is_none());
        assert_eq!(t.pop_due(ms(100)).unwrap().0, Owner::Entry(3));
        assert_eq!(t.pop_due(ms(100)).unwrap().0, Owner::Entry(1));
        assert!(t.is_empty());
    }

    #[test]
    fn ties_pop_in_arming_order() {
        let mut t = Timers::new();
        for k in 0..100 {
            t.arm(Owner::Entry(k), ms(5));
        }
        for k in 0..100 {
            assert_eq!(t.pop_due(ms(5)).unwrap().0, Owner::Entry(k));
        }
    }

    #[test]
    fn a_precise_deadline_behind_a_coarse_one_of_its_tick_is_not_rounded() {
        // One tick (1.024 µs) at 5 ms: the coarse deadline is armed first,
        // so it is the top, though the paced one is 800 ns earlier.
        let t0 = 5_000 * TICK_NS;
        let mut t = Timers::new();
        t.arm_with(Owner::Entry(0), Instant::from_nanos(t0 + 900), Wake::Coarse);
        t.arm_with(Owner::Entry(1), Instant::from_nanos(t0 + 100), Wake::Paced);
        assert_eq!(
            t.next_wake(),
            Some((Instant::from_nanos(t0 + 100), Wake::Paced))
        );
        // A deadline of another tick does not count.
        let mut t = Timers::new();
        t.arm_with(Owner::Entry(0), Instant::from_nanos(t0 + 100), Wake::Coarse);
        t.arm_with(
            Owner::Entry(1),
            Instant::from_nanos(t0 + 5_000),
            Wake::Paced,
        );
        assert_eq!(
            t.next_wake(),
            Some((Instant::from_nanos(t0 + 100), Wake::Coarse))
        );
        // Many armings in one tick: bounded, and never later than any.
        let mut t = Timers::new();
        for k in 0..200 {
            t.arm_with(
                Owner::Entry(k),
                Instant::from_nanos(t0 + 1_000 - k as u64),
                Wake::Coarse,
            );
        }
        let (at, wake) = t.next_wake().unwrap();
        assert!(at.as_nanos() <= t0 + 1_000 - 199, "{at:?}");
        assert_eq!(wake, Wake::Paced);
    }

    #[test]
    fn rearm_makes_old_entry_stale() {
        let mut t = Timers::new();
        let mut slot = TimerSlot::default();
        slot.sync(&mut t, Owner::Entry(0), Some(ms(10)));
        slot.sync(&mut t, Owner::Entry(0), Some(ms(10))); // unchanged: no push
        assert_eq!(t.len(), 1);
        slot.sync(&mut t, Owner::Entry(0), Some(ms(20)));
        assert_eq!(t.len(), 2);
        let (_, stale, _) = t.pop_due(ms(10)).unwrap();
        assert!(!slot.take_if_current(stale));
        let (_, live, _) = t.pop_due(ms(20)).unwrap();
        assert!(slot.take_if_current(live));
        assert_eq!(slot.deadline(), None);
    }

    #[test]
    fn precision_is_reported_and_rearms() {
        let mut t = Timers::new();
        let mut slot = TimerSlot::default();
        slot.sync_with(&mut t, Owner::Entry(0), Some(ms(10)), Wake::Paced);
        assert_eq!(t.next_wake(), Some((ms(10), Wake::Paced)));
        slot.sync_with(&mut t, Owner::Entry(0), Some(ms(10)), Wake::Paced);
        assert_eq!(t.len(), 1);
        slot.sync(&mut t, Owner::Entry(0), Some(ms(10)));
        assert_eq!(t.len(), 2, "same instant, different precision: re-armed");
    }

    #[test]
    fn disarm_leaves_only_stale_entries() {
        let mut t = Timers::new();
        let mut slot = TimerSlot::default();
        slot.sync(&mut t, Owner::Entry(0), Some(ms(10)));
        slot.sync(&mut t, Owner::Entry(0), None);
        let (_, stamp, _) = t.pop_due(ms(10)).unwrap();
        assert!(!slot.take_if_current(stamp));
    }

    /// A session's deadline is popped after its slab key was freed and
    /// reused by a new session: the new session must not see it.
    #[test]
    fn stale_entries_ignored_after_slab_key_reuse() {
        let mut t = Timers::new();
        let mut slab: Slab<TimerSlot> = Slab::new();
        let old = slab.insert(TimerSlot::default());
        slab[old].sync(&mut t, Owner::Entry(old), Some(ms(10)));
        slab.remove(old);
        let new = slab.insert(TimerSlot::default());
        assert_eq!(old, new, "slab reuses the key");
        slab[new].sync(&mut t, Owner::Entry(new), Some(ms(50)));

        let (owner, stamp, _) = t.pop_due(ms(10)).unwrap();
        assert_eq!(owner, Owner::Entry(new));
        assert!(!slab[new].take_if_current(stamp), "stale pop must not fire");
        let (_, stamp, _) = t.pop_due(ms(50)).unwrap();
        assert!(slab[new].take_if_current(stamp));
    }

    #[test]
    fn compact_drops_stale_entries_and_keeps_order() {
        let mut t = Timers::new();
        let mut slot = TimerSlot::default();
        for i in 0..1000 {
            slot.sync(&mut t, Owner::Entry(0), Some(ms(1000 - i)));
        }
        let mut other = TimerSlot::default();
        other.sync(&mut t, Owner::Entry(1), Some(ms(5000)));
        assert_eq!(t.len(), 1001);
        t.compact(|owner, stamp| match owner {
            Owner::Entry(0) => slot.is_current(stamp),
            Owner::Entry(1) => other.is_current(stamp),
            _ => false,
        });
        assert_eq!(t.len(), 2);
        let (_, s, at) = t.pop_due(Instant::MAX).unwrap();
        assert_eq!(at, ms(1));
        assert!(slot.take_if_current(s));
        let (_, s, _) = t.pop_due(Instant::MAX).unwrap();
        assert!(other.take_if_current(s));
    }

    /// Two deadlines in one 1.024 µs tick pop in arming order: the earlier
    /// instant waits for the later one (late by less than a tick), and
    /// neither pops before its own instant.
    #[test]
    fn one_tick_pops_in_arming_order_never_early() {
        let mut t = Timers::new();
        t.arm(Owner::Entry(1), Instant::from_nanos(2_000));
        t.arm(Owner::Entry(2), Instant::from_nanos(1_100));
        assert_eq!(2_000 >> TICK_SHIFT, 1_100 >> TICK_SHIFT, "one tick");
        assert_eq!(t.next_deadline(), Some(Instant::from_nanos(2_000)));
        assert!(t.pop_due(Instant::from_nanos(1_999)).is_none());
        assert_eq!(
            t.pop_due(Instant::from_nanos(2_000)),
            Some((Owner::Entry(1), Stamp(0), Instant::from_nanos(2_000)))
        );
        assert_eq!(t.next_deadline(), Some(Instant::from_nanos(1_100)));
        assert_eq!(
            t.pop_due(Instant::from_nanos(2_000)).map(|p| p.0),
            Some(Owner::Entry(2))
        );
        // A tick apart, time order wins over arming order.
        t.arm(Owner::Entry(3), Instant::from_nanos(3 * TICK_NS));
        t.arm(Owner::Entry(4), Instant::from_nanos(3 * TICK_NS - 1));
        assert_eq!(t.pop_due(Instant::MAX).map(|p| p.0), Some(Owner::Entry(4)));
    }

    /// Every node's children start on a cache line, after growing and
    /// after a rebuild alike.
    #[test]
    fn children_stay_on_cache_lines() {
        let mut t = Timers::new();
        let aligned = |t: &Timers| (t.keys.as_ptr().addr() + 8 * (t.off + 1)) % 64 == 0;
        assert!(aligned(&t));
        for k in 0..5000 {
            t.arm(Owner::Entry(k), ms(k as u64 % 7));
            assert!(aligned(&t), "after arming {k}");
        }
        t.compact(|_, s| s.0 % 2 == 0);
        assert!(aligned(&t));
        assert_eq!(t.len(), 2500);
    }

    /// Deadlines weeks apart (beyond a key's 13-day range), and one armed
    /// below a base that has moved up, still pop in time order.
    #[test]
    fn far_deadlines_move_the_base_and_keep_order() {
        const DAY: u64 = 86_400;
        let mut t = Timers::new();
        t.arm(Owner::Entry(1), Instant::from_secs(40 * DAY));
        t.arm(Owner::Entry(2), Instant::from_secs(20 * DAY));
        t.arm(Owner::Entry(3), Instant::MAX);
        assert_eq!(t.next_deadline(), Some(Instant::from_secs(20 * DAY)));
        t.arm(Owner::Entry(4), Instant::from_secs(1));
        let order: Vec<_> = core::iter::from_fn(|| t.pop_due(Instant::MAX).map(|p| p.0)).collect();
        assert_eq!(
            order,
            [
                Owner::Entry(4),
                Owner::Entry(2),
                Owner::Entry(1),
                Owner::Entry(3)
            ]
        );
    }
}

/// The heap against a reference model: std's `BinaryHeap` ordered by
/// (tick, arming order), the order this heap promises, over random arms,
/// pops and compactions, at every arity the benchmark measures.
#[cfg(test)]
mod model {
    use super::*;
    use core::cmp::Reverse;
    use proptest::prelude::*;
    use std::collections::{BinaryHeap, HashMap};

    #[derive(Clone, Debug)]
    enum Op {
        Arm(usize, u64, u8),
        PopDue(u64),
        /// Compact, keeping the stamps whose value modulo 3 differs from this.
        Compact(u64),
    }

    /// Deadlines that hit every case: many in one tick (ties and sub-tick
    /// order), milliseconds apart, weeks apart (a moving base), and never.
    fn instant() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => 0..5 * TICK_NS,
            3 => (0..50u64).prop_map(|ms| ms * 1_000_000),
            2 => 0..60 * 86_400 * 1_000_000_000u64,
            1 => Just(u64::MAX),
        ]
    }

    /// Arms and pops, and compactions `compact` times in 12.
    fn op(compact: u32) -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..8usize, instant(), 0..3u8).prop_map(|(k, at, w)| Op::Arm(k, at, w)),
            5 => instant().prop_map(Op::PopDue),
            compact => (0..3u64).prop_map(Op::Compact),
        ]
    }

    /// Deadlines within 50 ms of tick 0: the base never moves, so no
    /// base rebuild drops dead rows before `renumber` does.
    fn near() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => 0..5 * TICK_NS,
            3 => (0..50u64).prop_map(|ms| ms * 1_000_000),
        ]
    }

    fn arm_near() -> impl Strategy<Value = Op> {
        (0..8usize, near(), 0..3u8).prop_map(|(k, at, w)| Op::Arm(k, at, w))
    }

    /// 200 armings, then arms and pops one for one, most pops at the end
    /// of time: the heap stays about 200 deep while popped rows pile up
    /// behind live keys of every age, so the table is renumbered again and
    /// again (the test counts it).
    fn churn() -> impl Strategy<Value = Vec<Op>> {
        let pop = prop_oneof![1 => near(), 7 => Just(u64::MAX)].prop_map(Op::PopDue);
        (
            prop::collection::vec(arm_near(), 200),
            prop::collection::vec(prop_oneof![arm_near(), pop], 3000..3500),
        )
            .prop_map(|(mut ops, more)| {
                ops.extend(more);
                ops
            })
    }

    struct Model {
        heap: BinaryHeap<Reverse<(u64, u64)>>,
        rows: HashMap<u64, (Owner, u64, Wake)>,
    }

    impl Model {
        fn top(&self) -> Option<(u64, Wake)> {
            let Reverse((_, seq)) = self.heap.peek()?;
            let (_, at, wake) = self.rows[seq];
            Some((at, wake))
        }
    }

    fn run<const D: usize>(ops: &[Op]) -> Result<usize, TestCaseError> {
        let mut t = Timers::<D>::with_arity();
        let mut m = Model {
            heap: BinaryHeap::new(),
            rows: HashMap::new(),
        };
        let mut seq = 0;
        for op in ops {
            match *op {
                Op::Arm(k, at, w) => {
                    let wake = [Wake::Exact, Wake::Paced, Wake::Coarse][usize::from(w)];
                    let stamp = t.arm_with(Owner::Entry(k), Instant::from_nanos(at), wake);
                    prop_assert_eq!(stamp, Stamp(seq));
                    m.heap.push(Reverse((at >> TICK_SHIFT, seq)));
                    m.rows.insert(seq, (Owner::Entry(k), at, wake));
                    seq += 1;
                }
                Op::PopDue(now) => {
                    let want = match m.top() {
                        Some((at, _)) if at <= now => {
                            let Some(Reverse((_, s))) = m.heap.pop() else {
                                unreachable!()
                            };
                            let (owner, at, _) = m.rows.remove(&s).unwrap();
                            Some((owner, Stamp(s), Instant::from_nanos(at)))
                        }
                        _ => None,
                    };
                    prop_assert_eq!(t.pop_due(Instant::from_nanos(now)), want);
                }
                Op::Compact(drop) => {
                    t.compact(|_, s| s.0 % 3 != drop);
                    m.heap.retain(|Reverse((_, s))| s % 3 != drop);
                    m.rows.retain(|s, _| s % 3 != drop);
                }
            }
            prop_assert_eq!(t.len(), m.heap.len());
            // The wake-up: the earliest instant and the most punctual class
            // among the top's tick (see `next_wake`).
            match m.heap.peek() {
                None => prop_assert_eq!(t.next_wake(), None),
                Some(Reverse((tick, _))) => {
                    let same: Vec<(u64, Wake)> = m
                        .heap
                        .iter()
                        .filter(|Reverse((k, _))| k == tick)
                        .map(|Reverse((_, s))| (m.rows[s].1, m.rows[s].2))
                        .collect();
                    let earliest = same.iter().map(|&(at, _)| at).min().unwrap_or(u64::MAX);
                    let (at, wake) = t.next_wake().unwrap();
                    if same.len() > SAME_TICK_SCAN {
                        prop_assert!(at.as_nanos() <= earliest && wake == Wake::Paced);
                    } else {
                        let strictest = same
                            .iter()
                            .fold(Wake::Coarse, |w, &(_, x)| more_punctual(w, x));
                        prop_assert_eq!((at, wake), (Instant::from_nanos(earliest), strictest));
                    }
                }
            }
        }
        Ok(t.renumbered)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_the_model(ops in prop::collection::vec(op(1), 0..400)) {
            run::<2>(&ops)?;
            run::<4>(&ops)?;
            run::<8>(&ops)?;
        }

        /// Long and without compactions, so that dead rows pass
        /// `ROW_SLACK` and the table is renumbered.
        #[test]
        fn matches_the_model_through_renumbering(
            ops in churn(),
        ) {
            let renumbered = run::<8>(&ops)?;
            prop_assert!(renumbered >= 1, "renumbered only {renumbered} times");
        }
    }
}
