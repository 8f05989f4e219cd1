//! Deadline accuracy of the reactor: how late after its deadline a timer
//! job's `handle_timeout` runs (`cargo bench --bench deadline`).
//!
//! A detached job (no socket, only `Driven`) arms a deadline a random
//! 0.2–3 ms ahead, and each time `handle_timeout` runs it records
//! `cx.now - deadline`. The reactor reads `cx.now` right after the poll
//! returns, so this is the real wake-up lateness, plus the turn's own work.
//! After `count` timeouts the job closes; the reactor exits when no session
//! is left.
//!
//! Runs, interleaved round by round so that machine noise hits all alike:
//! * `timerfd raw (reference)`: the same random intervals waited for with a
//!   bare `timerfd` (absolute time) in a `mio::Poll`, and nothing else: the
//!   floor for the mechanism the reactor uses, on this machine, right now;
//! * `sleep (reference)`: the same intervals slept with `std::thread::sleep`
//!   (`clock_nanosleep`, default 50 µs timer slack);
//! * `TimerMode::Timerfd` and `TimerMode::Poll`, with 1 session and with
//!   100 concurrent sessions;
//! * `timerfd+spin`: timerfd mode with the job's deadlines marked
//!   precise (`Wake::Paced`), so the reactor wakes
//!   `ReactorConfig::spin` (100 µs) early and spins the rest.
//!
//! Prints one table: for each run the median over rounds of its p50, p99
//! and max lateness (min–max over rounds in brackets), and the ratio of the
//! p99 to the raw timerfd's p99, and the CPU the process used (% of one
//! CPU, wall-clock). Goal: timerfd p99 ≤ 100 µs.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does one
//! tiny round in well under a second.
#![allow(clippy::disallowed_methods, reason = "benchmarks measure wall time")]

use mioperf::proto::{CloseReason, Context, Driven, Wake};
use mioperf::reactor::{Reactor, ReactorConfig, TimerMode};
use mioperf::rng::SplitMix64;
use mioperf::time::{Duration, Instant};
use std::cell::RefCell;
use std::rc::Rc;

/// Shortest and longest interval between deadlines, in µs.
const MIN_US: u64 = 200;
const MAX_US: u64 = 3_000;

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

    fn interval(&mut self) -> Duration {
        Duration::from_micros(MIN_US + self.next() % (MAX_US - MIN_US + 1))
    }
}

/// A socketless timer job that only sets deadlines and measures how late
/// they are delivered.
struct Ticker {
    rng: Rng,
    paced: bool,
    left: u32,
    deadline: Option<Instant>,
    close: Option<CloseReason>,
    late_ns: Rc<RefCell<Vec<u64>>>,
}

impl Driven for Ticker {
    fn handle_timeout(&mut self, cx: &mut Context) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if cx.now < deadline {
            return; // spurious call: nothing due
        }
        let late = (cx.now - deadline).as_nanos();
        self.late_ns
            .borrow_mut()
            .push(u64::try_from(late).unwrap_or(u64::MAX));
        self.left -= 1;
        if self.left == 0 {
            self.deadline = None;
            self.close = Some(CloseReason::Completed);
        } else {
            self.deadline = Some(cx.now + self.rng.interval());
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn wake(&self) -> Wake {
        if self.paced { Wake::Paced } else { Wake::Exact }
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

/// One measured run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    RawTimerfd,
    Sleep,
    Reactor(TimerMode),
    /// Timerfd mode, deadlines marked precise (`Wake::Paced`): the
    /// reactor wakes `ReactorConfig::spin` early and spins the rest.
    Paced,
}

#[derive(Clone, Copy, Debug)]
struct Run {
    kind: Kind,
    sessions: u32,
    count: u32,
}

impl Run {
    fn label(&self) -> String {
        match self.kind {
            Kind::RawTimerfd => "timerfd raw (reference)".to_string(),
            Kind::Sleep => "sleep (reference)".to_string(),
            Kind::Reactor(TimerMode::Timerfd) => format!("timerfd, {} session(s)", self.sessions),
            Kind::Reactor(TimerMode::Poll) => format!("poll, {} session(s)", self.sessions),
            Kind::Paced => format!("timerfd+spin, {} paced", self.sessions),
        }
    }
}

thread_local! {
    /// Turns (wake-ups) of the last reactor run.
    static TURNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Lateness samples in ns, sorted.
fn measure(run: Run, seed: u64) -> Vec<u64> {
    let mut late = match run.kind {
        Kind::RawTimerfd => timerfd_reference(run.count, seed),
        Kind::Sleep => sleep_reference(run.count, seed),
        Kind::Reactor(mode) => reactor_lateness(mode, false, run.sessions, run.count, seed),
        Kind::Paced => reactor_lateness(TimerMode::Timerfd, true, run.sessions, run.count, seed),
    };
    late.sort_unstable();
    late
}

fn reactor_lateness(
    mode: TimerMode,
    paced: bool,
    sessions: u32,
    count: u32,
    seed: u64,
) -> Vec<u64> {
    let config = ReactorConfig {
        exit_when_no_sessions: true,
        timer: mode,
        ..ReactorConfig::default()
    };
    let mut reactor = Reactor::new(config).expect("reactor");
    let late_ns = Rc::new(RefCell::new(Vec::with_capacity(
        (sessions * count) as usize,
    )));
    for s in 0..sessions {
        let mut rng = Rng::new(mioperf::rng::mix(seed, u64::from(s)));
        let first = reactor.now() + rng.interval();
        reactor.add_detached(Box::new(Ticker {
            rng,
            paced,
            left: count,
            deadline: Some(first),
            close: None,
            late_ns: Rc::clone(&late_ns),
        }));
    }
    reactor.run().expect("reactor run");
    TURNS.set(reactor.stats().turns);
    let late = late_ns.borrow().clone();
    assert_eq!(late.len(), (sessions * count) as usize, "every timeout ran");
    late
}

fn sleep_reference(count: u32, seed: u64) -> Vec<u64> {
    let mut rng = Rng::new(seed);
    let mut late = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let deadline = std::time::Instant::now() + rng.interval();
        std::thread::sleep(deadline.saturating_duration_since(std::time::Instant::now()));
        let woke = std::time::Instant::now();
        late.push(u64::try_from((woke - deadline).as_nanos()).unwrap_or(u64::MAX));
    }
    late
}

/// The reactor's mechanism with nothing around it: one absolute-time
/// timerfd (the reactor's own, `mioperf::reactor::raw`) in a `mio::Poll`,
/// re-armed after each expiry.
fn timerfd_reference(count: u32, seed: u64) -> Vec<u64> {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use mioperf::reactor::raw::{Timer, monotonic_ns};
    use std::os::fd::AsRawFd;

    let timer = Timer::new().expect("timerfd");
    let fd = timer.as_raw_fd();
    let mut poll = Poll::new().expect("poll");
    poll.registry()
        .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
        .expect("register");
    let mut events = Events::with_capacity(8);
    let mut rng = Rng::new(seed);
    let mut late = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let deadline = monotonic_ns() + u64::try_from(rng.interval().as_nanos()).unwrap_or(0);
        timer.set_abs(deadline).expect("timerfd_settime");
        loop {
            match poll.poll(&mut events, None) {
                Ok(()) if !events.is_empty() => break,
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("poll: {e}"),
            }
        }
        let woke = monotonic_ns();
        late.push(woke.saturating_sub(deadline));
        timer.drain();
    }
    late
}

/// CPU time this process has used, in ns (`/proc/self/schedstat`).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `q`-quantile of sorted samples (same rule as `rr.c`).
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "a fraction in [0, 1] of a sample count far below 2^52: the index floors, as `rr.c`'s"
)]
fn quantile(sorted: &[u64], q: f64) -> u64 {
    let i = ((sorted.len() as f64) * q) as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// `median (min–max)` of per-round values, in µs.
fn cell(values: &[f64]) -> String {
    let mut v = values.to_vec();
    let med = median(&mut v);
    format!("{med:7.1} ({:.0}–{:.0})", v[0], v[v.len() - 1])
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, single, many, per_many) = if bench {
        (9u32, 500, 100, 250)
    } else {
        (1, 20, 10, 5)
    };
    let runs = [
        Run {
            kind: Kind::RawTimerfd,
            sessions: 1,
            count: single,
        },
        Run {
            kind: Kind::Sleep,
            sessions: 1,
            count: single,
        },
        Run {
            kind: Kind::Reactor(TimerMode::Timerfd),
            sessions: 1,
            count: single,
        },
        Run {
            kind: Kind::Reactor(TimerMode::Poll),
            sessions: 1,
            count: single,
        },
        Run {
            kind: Kind::Paced,
            sessions: 1,
            count: single,
        },
        Run {
            kind: Kind::Reactor(TimerMode::Timerfd),
            sessions: many,
            count: per_many,
        },
        Run {
            kind: Kind::Reactor(TimerMode::Poll),
            sessions: many,
            count: per_many,
        },
    ];
    let stats = measure_rounds(&runs, rounds);
    if !bench {
        println!("smoke run without --bench: the figures above are not measurements");
        return;
    }
    summarise(&runs, &stats, rounds);
}

/// Each run once per round, each round's figures printed as it ends:
/// `stats[run]` = per round (p50, p99, max in µs, CPU busy in %).
fn measure_rounds(runs: &[Run], rounds: u32) -> Vec<Vec<[f64; 4]>> {
    let mut stats: Vec<Vec<[f64; 4]>> = vec![Vec::new(); runs.len()];
    for round in 0..rounds {
        for (i, run) in runs.iter().enumerate() {
            let started = std::time::Instant::now();
            let cpu0 = cpu_ns();
            TURNS.set(0);
            let late = measure(*run, 0x5eed + u64::from(round));
            #[expect(clippy::cast_precision_loss, reason = "seconds for a table")]
            let cpu = (cpu_ns() - cpu0) as f64 / 1e9;
            let wall = started.elapsed().as_secs_f64();
            #[expect(clippy::cast_precision_loss, reason = "microseconds for a table")]
            let us = |ns: u64| ns as f64 / 1e3;
            let row = [
                us(quantile(&late, 0.50)),
                us(quantile(&late, 0.99)),
                us(late[late.len() - 1]),
                100.0 * cpu / wall,
            ];
            println!(
                "RUN deadline | {} | round={} samples={} p50={:.1} p99={:.1} max={:.1} us secs={wall:.2} cpu={:.0}% reactor_turns={}",
                run.label(),
                round + 1,
                late.len(),
                row[0],
                row[1],
                row[2],
                row[3],
                TURNS.get(),
            );
            stats[i].push(row);
        }
    }
    stats
}

/// The medians over rounds: the table, the FIGURE lines and the goal.
fn summarise(runs: &[Run], stats: &[Vec<[f64; 4]>], rounds: u32) {
    let col = |i: usize, k: usize| stats[i].iter().map(|r| r[k]).collect::<Vec<f64>>();
    let raw_p99 = median(&mut col(0, 1));
    println!();
    println!(
        "Deadline lateness, µs: median over {rounds} rounds (min–max); intervals {MIN_US}–{MAX_US} µs"
    );
    println!(
        "{:<25} {:>8} {:>20} {:>20} {:>22} {:>8} {:>6}",
        "run", "samples", "p50", "p99", "max", "p99/raw", "cpu"
    );
    for (i, run) in runs.iter().enumerate() {
        let p99 = median(&mut col(i, 1));
        println!(
            "{:<25} {:>8} {:>20} {:>20} {:>22} {:>7.2}x {:>5.0}%",
            run.label(),
            run.sessions * run.count,
            cell(&col(i, 0)),
            cell(&col(i, 1)),
            cell(&col(i, 2)),
            p99 / raw_p99,
            median(&mut col(i, 3))
        );
    }
    println!();
    for (i, run) in runs.iter().enumerate() {
        let p99 = median(&mut col(i, 1));
        println!(
            "FIGURE deadline | {} | p50={:.1} p99={:.1} max={:.1} us p99_vs_raw_timerfd={:.2} cpu={:.0}%",
            run.label(),
            median(&mut col(i, 0)),
            p99,
            median(&mut col(i, 2)),
            p99 / raw_p99,
            median(&mut col(i, 3))
        );
    }
    for (i, run) in runs.iter().enumerate() {
        if matches!(run.kind, Kind::Reactor(TimerMode::Timerfd) | Kind::Paced) {
            let p99 = median(&mut col(i, 1));
            println!(
                "GOAL deadline | {} | p99 {p99:.1} us <= 100 us: {}",
                run.label(),
                if p99 <= 100.0 { "PASS" } else { "FALLS SHORT" }
            );
        }
    }
}
