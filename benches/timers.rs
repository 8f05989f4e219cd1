//! Deadline-heap throughput: arm, re-arm and pop at 1 k, 100 k and 1 M live
//! entries (`cargo bench --bench timers`).
//!
//! Every measured iteration keeps the heap at its stated size, so the cost
//! is the steady-state cost at that size:
//!
//! * `arm+pop`: pop the earliest deadline, then arm a new one a random
//!   0–1 s after it (the "hold" model of priority-queue benchmarks).
//!   Two heap operations per iteration.
//! * `rearm+pop`: pick a random owner and [`TimerSlot::sync`] it to a new
//!   random deadline (its old entry goes stale), then pop the earliest
//!   entry and ask its owner whether it is live, as the reactor does.
//!   Two heap operations per iteration.
//!
//! Throughput is reported as elements per second with two elements per
//! iteration, so criterion's `thrpt` is heap operations per second.
//!
//! References measured in the same run (group `timers-ref/arm+pop`):
//! * `std-u64`: `BinaryHeap<Reverse<u64>>`, the floor for a binary heap
//!   (8-byte entries, one comparison);
//! * `std-16B`: `BinaryHeap` of 16-byte entries `(at, tag)`, i.e. the same
//!   heap as `Timers` with the entry halved (owner and stamp packed into one
//!   `u64`, or kept in a side table);
//! * `quad-16B`: a 4-ary min-heap of the same 16-byte entries (half the
//!   depth; the four children share one cache line);
//! * `quad-8B`: the 4-ary heap with 8-byte entries (deadline and a small
//!   tag packed into one `u64`): what the entry size alone is worth;
//! * `calendar-16B`: a calendar queue (timing wheel with a sorted current
//!   bucket) of 16-byte entries: no heap at all.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) only the 1 k
//! size is run, once, so it stays fast in debug builds.

use core::cmp::Reverse;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use mioperf::reactor::timers::{Owner, TimerSlot, Timers};
use mioperf::rng::SplitMix64;
use mioperf::time::Instant;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::Duration;

/// Spread of new deadlines after the current time: 1 s in nanoseconds.
const SPAN_NS: u64 = 1_000_000_000;

/// Sizes to run: all three under `cargo bench`, the smallest otherwise.
fn sizes() -> Vec<usize> {
    if std::env::args().any(|a| a == "--bench") {
        vec![1_000, 100_000, 1_000_000]
    } else {
        vec![1_000]
    }
}

/// The crate's seedable generator (`mioperf::rng`), so a bench scatters
/// its deadlines with the same code that makes every other seeded choice.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `arm+pop` on the crate's `Timers`.
struct Hold {
    timers: Timers,
    rng: Rng,
    n: usize,
}

impl Hold {
    fn new(n: usize) -> Self {
        let mut rng = Rng::new(1);
        let mut timers = Timers::new();
        for k in 0..n {
            timers.arm(Owner::Entry(k), Instant::from_nanos(rng.below(SPAN_NS)));
        }
        Self { timers, rng, n }
    }

    fn step(&mut self) {
        let Some((owner, _stamp, at)) = self.timers.pop_due(Instant::MAX) else {
            unreachable!("the heap never empties");
        };
        let next = Instant::from_nanos(at.as_nanos() + self.rng.below(SPAN_NS));
        self.timers.arm(owner, next);
        debug_assert_eq!(self.timers.len(), self.n);
    }
}

/// `rearm+pop` on `Timers` plus one `TimerSlot` per owner.
struct Rearm {
    timers: Timers,
    slots: Vec<TimerSlot>,
    rng: Rng,
    now: u64,
    pops: u64,
    stale: u64,
}

impl Rearm {
    fn new(n: usize) -> Self {
        let mut rng = Rng::new(2);
        let mut timers = Timers::new();
        let mut slots = vec![TimerSlot::default(); n];
        for (k, slot) in slots.iter_mut().enumerate() {
            let at = Instant::from_nanos(rng.below(SPAN_NS));
            slot.sync(&mut timers, Owner::Entry(k), Some(at));
        }
        Self {
            timers,
            slots,
            rng,
            now: 0,
            pops: 0,
            stale: 0,
        }
    }

    fn step(&mut self) {
        let n = self.slots.len() as u64;
        let k = usize::try_from(self.rng.below(n)).expect("below the slot count");
        let at = Instant::from_nanos(self.now + 1 + self.rng.below(SPAN_NS));
        self.slots[k].sync(&mut self.timers, Owner::Entry(k), Some(at));
        let Some((owner, stamp, at)) = self.timers.pop_due(Instant::MAX) else {
            unreachable!("the heap never empties");
        };
        self.now = at.as_nanos();
        self.pops += 1;
        if let Owner::Entry(j) = owner
            && !self.slots[j].take_if_current(stamp)
        {
            self.stale += 1;
        }
    }
}

/// A 16-byte heap entry: deadline, then a tag (stamp and owner packed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Small {
    at: u64,
    tag: u64,
}

/// A `D`-ary min-heap: `D = 4` halves the depth of a binary heap, and the
/// four 16-byte children of a node are 64 contiguous bytes.
struct DHeap<T, const D: usize> {
    v: Vec<T>,
}

impl<T: Copy + Ord, const D: usize> DHeap<T, D> {
    fn new() -> Self {
        Self { v: Vec::new() }
    }

    fn push(&mut self, e: T) {
        let mut i = self.v.len();
        self.v.push(e);
        while i > 0 {
            let p = (i - 1) / D;
            if self.v[p] <= e {
                break;
            }
            self.v[i] = self.v[p];
            i = p;
        }
        self.v[i] = e;
    }

    fn pop(&mut self) -> Option<T> {
        let last = self.v.pop()?;
        let Some(&top) = self.v.first() else {
            return Some(last);
        };
        let n = self.v.len();
        let mut i = 0;
        loop {
            let first = D * i + 1;
            if first >= n {
                break;
            }
            let end = (first + D).min(n);
            let mut m = first;
            for j in first + 1..end {
                if self.v[j] < self.v[m] {
                    m = j;
                }
            }
            if self.v[m] >= last {
                break;
            }
            self.v[i] = self.v[m];
            i = m;
        }
        self.v[i] = last;
        Some(top)
    }
}

/// A calendar queue (a timing wheel whose current bucket is sorted on
/// entry): 1024 buckets of 2^20 ns (1.05 ms). Arming appends to a bucket;
/// popping sorts a bucket once, when it becomes current, then pops from its
/// end. O(1) arm and O(log k) amortized pop over contiguous memory.
/// Prototype only: deadlines must lie within the ring's 1.07 s horizon (a
/// real one needs an overflow heap for later ones).
struct Calendar {
    buckets: Vec<Vec<Small>>,
    cur: u64,
    sorted: bool,
    len: usize,
}

impl Calendar {
    const SHIFT: u32 = 20;
    const BUCKETS: u64 = 1024;

    fn new() -> Self {
        Self {
            buckets: (0..Self::BUCKETS).map(|_| Vec::new()).collect(),
            cur: 0,
            sorted: false,
            len: 0,
        }
    }

    fn slot(&mut self, bucket: u64) -> &mut Vec<Small> {
        &mut self.buckets[(bucket % Self::BUCKETS) as usize]
    }

    fn push(&mut self, e: Small) {
        let b = e.at >> Self::SHIFT;
        assert!(
            b >= self.cur && b < self.cur + Self::BUCKETS,
            "beyond the horizon"
        );
        let keep_sorted = b == self.cur && self.sorted;
        let slot = self.slot(b);
        if keep_sorted {
            // The current bucket is sorted descending: keep it so.
            let pos = slot.partition_point(|x| *x > e);
            slot.insert(pos, e);
        } else {
            slot.push(e);
        }
        self.len += 1;
    }

    fn pop(&mut self) -> Option<Small> {
        if self.len == 0 {
            return None;
        }
        loop {
            let sorted = self.sorted;
            let cur = self.cur;
            let slot = self.slot(cur);
            if !sorted {
                slot.sort_unstable_by(|a, b| b.cmp(a));
            }
            if let Some(e) = slot.pop() {
                self.sorted = true;
                self.len -= 1;
                return Some(e);
            }
            self.cur += 1;
            self.sorted = false;
        }
    }
}

/// An 8-byte entry for the prototype: deadline in the high 44 bits (ns,
/// about 4.9 hours of range), a 20-bit tag in the low bits. It shows what
/// the entry size alone is worth; a real one would index a side table.
fn packed(at: u64, tag: u64) -> u64 {
    (at << 20) | (tag & 0xF_FFFF)
}

fn bench_timers(c: &mut Criterion) {
    let quick = !std::env::args().any(|a| a == "--bench");
    let configure = |g: &mut BenchmarkGroup<'_, _>| {
        g.throughput(Throughput::Elements(2));
        if !quick {
            g.warm_up_time(Duration::from_millis(500));
            g.measurement_time(Duration::from_secs(2));
            g.sample_size(30);
        }
    };

    let mut g = c.benchmark_group("timers/arm+pop");
    configure(&mut g);
    for n in sizes() {
        let mut st = Hold::new(n);
        g.bench_function(BenchmarkId::from_parameter(n), |b| b.iter(|| st.step()));
        black_box(st.timers.len());
    }
    g.finish();

    let mut g = c.benchmark_group("timers/rearm+pop");
    configure(&mut g);
    for n in sizes() {
        let mut st = Rearm::new(n);
        g.bench_function(BenchmarkId::from_parameter(n), |b| b.iter(|| st.step()));
        if !quick && st.pops > 0 {
            #[expect(clippy::cast_precision_loss, reason = "a percentage for a table")]
            let stale = 100.0 * st.stale as f64 / st.pops.max(1) as f64;
            println!("rearm+pop n={n}: {stale:.1} % of pops were stale entries");
        }
    }
    g.finish();

    let mut g = c.benchmark_group("timers-ref/arm+pop");
    configure(&mut g);
    for n in sizes() {
        reference_heaps(&mut g, n);
    }
    g.finish();
}

/// The reference group at size `n`: std's heap of `u64` and of 16-byte
/// entries, and the quad-heap and calendar prototypes.
fn reference_heaps(g: &mut BenchmarkGroup<'_, WallTime>, n: usize) {
    let mut rng = Rng::new(1);
    let mut heap: BinaryHeap<Reverse<u64>> = (0..n).map(|_| Reverse(rng.below(SPAN_NS))).collect();
    g.bench_function(BenchmarkId::new("std-u64", n), |b| {
        b.iter(|| {
            let Some(Reverse(at)) = heap.pop() else {
                unreachable!()
            };
            heap.push(Reverse(at + rng.below(SPAN_NS)));
        });
    });

    let mut rng = Rng::new(1);
    let mut tag = 0u64;
    let mut heap: BinaryHeap<Reverse<Small>> = (0..n)
        .map(|_| {
            tag += 1;
            Reverse(Small {
                at: rng.below(SPAN_NS),
                tag,
            })
        })
        .collect();
    g.bench_function(BenchmarkId::new("std-16B", n), |b| {
        b.iter(|| {
            let Some(Reverse(e)) = heap.pop() else {
                unreachable!()
            };
            tag += 1;
            heap.push(Reverse(Small {
                at: e.at + rng.below(SPAN_NS),
                tag,
            }));
        });
    });

    let mut rng = Rng::new(1);
    let mut heap = DHeap::<Small, 4>::new();
    for t in 0..n as u64 {
        heap.push(Small {
            at: rng.below(SPAN_NS),
            tag: t,
        });
    }
    let mut tag = n as u64;
    g.bench_function(BenchmarkId::new("quad-16B", n), |b| {
        b.iter(|| {
            let Some(e) = heap.pop() else { unreachable!() };
            tag += 1;
            heap.push(Small {
                at: e.at + rng.below(SPAN_NS),
                tag,
            });
        });
    });

    let mut rng = Rng::new(1);
    let mut cal = Calendar::new();
    for t in 0..n as u64 {
        cal.push(Small {
            at: rng.below(SPAN_NS),
            tag: t,
        });
    }
    let mut tag = n as u64;
    g.bench_function(BenchmarkId::new("calendar-16B", n), |b| {
        b.iter(|| {
            let Some(e) = cal.pop() else { unreachable!() };
            tag += 1;
            cal.push(Small {
                at: e.at + rng.below(SPAN_NS),
                tag,
            });
        });
    });

    let mut rng = Rng::new(1);
    let mut heap = DHeap::<u64, 4>::new();
    for t in 0..n as u64 {
        heap.push(packed(rng.below(SPAN_NS), t));
    }
    let mut tag = n as u64;
    g.bench_function(BenchmarkId::new("quad-8B", n), |b| {
        b.iter(|| {
            let Some(e) = heap.pop() else { unreachable!() };
            tag += 1;
            heap.push(packed((e >> 20) + rng.below(SPAN_NS), tag));
        });
    });
}

/// The prototypes must pop in order for their figures to mean anything.
fn check_prototypes() {
    let mut rng = Rng::new(7);
    let mut h = DHeap::<Small, 4>::new();
    for t in 0..10_000 {
        h.push(Small {
            at: rng.below(1000),
            tag: t,
        });
    }
    let mut last = Small { at: 0, tag: 0 };
    for _ in 0..10_000 {
        let e = h.pop().expect("10 000 entries were pushed");
        assert!(e >= last, "quad heap out of order");
        last = e;
    }
    assert!(h.pop().is_none());

    let mut c = Calendar::new();
    let mut rng = Rng::new(9);
    let mut now = 0;
    for t in 0..10_000 {
        c.push(Small {
            at: rng.below(SPAN_NS),
            tag: t,
        });
    }
    for t in 10_000..50_000 {
        let e = c.pop().expect("never empty");
        assert!(e.at >= now, "calendar out of order");
        now = e.at;
        c.push(Small {
            at: now + rng.below(SPAN_NS),
            tag: t,
        });
    }
}

criterion::criterion_group!(benches, bench_timers);

fn main() {
    check_prototypes();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
