//! Engine ↔ engine in the deterministic simulator (issue 14): two
//! [`mioperf::proto::tcp::conn::Tcb`]s over seeded impaired links
//! ([`mioperf::sim::tcp`]), every transfer byte-exact, nothing stuck; and
//! goodput under random loss against the Mathis et al. bound.
//!
//! The sweep: 0 / 1 / 5 / 20 % loss, each with 2 % duplication and 5 %
//! reordering (held back up to 30 ms, so up to 1.5 RTTs) both ways, over a
//! 20 ms RTT through a 100 Mbit/s bottleneck with a 64 KiB tail-drop queue
//! (so slow start overflows it and congestion control has something to
//! find). Sizes 0, 1, 1 MSS + 1, 100 KB and 1 MiB; each seed picks the
//! congestion controller (even `NewReno`, odd CUBIC), the direction (client
//! to server, server to client, or both at once), whether the link also
//! duplicates and reorders (three blocks of six seeds in four) and, every
//! fifth seed, initial sequence numbers just below 2^32 so the sequence
//! space wraps mid-transfer. Seeds per size: 100, except 1 MiB (20, and 8
//! at 20 % loss) and 100 KB at 20 % loss (50), to keep the file under a
//! minute in a debug build on two cores.
//!
//! A failing case prints its loss, size and seed: `tcp::run` of the same
//! [`Config`] replays it exactly, and the `replay` test below prints every
//! segment of it.
//!
//! The figure for docs/performance.md:
//! `cargo test --test sim_tcp mathis_table -- --ignored --nocapture`.

use mioperf::proto::proxy::impair::ImpairConfig;
use mioperf::proto::tcp::cc::Algorithm;
use mioperf::proto::tcp::conn;
use mioperf::sim::Role;
use mioperf::sim::tcp::{self, Config, Outcome, Report, mathis_bound};
use mioperf::time::{Duration, Instant};

/// The engine's default MSS, which the Mathis bound is computed with.
const MSS: u16 = 1460;

/// One-way propagation delay: a 20 ms RTT.
const ONE_WAY: Duration = Duration::from_millis(10);

/// One maximum segment and one byte: the smallest transfer of two segments.
const MSS_PLUS_ONE: u64 = MSS as u64 + 1;

/// Virtual time a sweep run may take: at 20 % loss both ways a 1 MiB
/// transfer spends most of its time in backed-off retransmission timeouts,
/// so the simulator's default hour is too short; steps, not virtual time,
/// cost wall time, and a livelock still ends at the step bound.
const SWEEP_TIME_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// The sweep's link: `loss` random loss, plus duplication and reordering,
/// over a bottleneck that binds.
fn impaired(loss: f64) -> ImpairConfig {
    ImpairConfig {
        // 100 Mbit/s: a 250 KB bandwidth-delay product, which 1 MiB
        // buffers overrun, so the queue overflows.
        rate_bytes_per_sec: Some(12_500_000),
        queue_bytes: Some(64 * 1024),
        latency: ONE_WAY,
        drop: loss,
        duplicate: 0.02,
        reorder: 0.05,
        reorder_max: Duration::from_millis(30),
        ..ImpairConfig::default()
    }
}

/// Which way the bytes go.
#[derive(Clone, Copy, Debug)]
enum Direction {
    Upload,
    Download,
    Both,
}

/// The case seed `seed` of the sweep picks.
fn case(loss: f64, size: u64, seed: u64) -> Config {
    let cc = if seed.is_multiple_of(2) {
        Algorithm::NewReno
    } else {
        Algorithm::Cubic
    };
    let tcp = conn::Config {
        cc,
        ..conn::Config::default()
    };
    let mut link = impaired(loss);
    if (seed / 6) % 4 == 3 {
        // Every fourth block of six seeds: loss alone, in order.
        link.duplicate = 0.0;
        link.reorder = 0.0;
    }
    let mut config = Config::new(seed, link, &tcp);
    config.time_limit = SWEEP_TIME_LIMIT;
    let direction = match (seed / 2) % 3 {
        0 => Direction::Upload,
        1 => Direction::Download,
        _ => Direction::Both,
    };
    (config.upload, config.download) = match direction {
        Direction::Upload => (size, 0),
        Direction::Download => (0, size),
        Direction::Both => (size, size),
    };
    if seed % 5 == 4 {
        // Half the transfer below 2^32, half above.
        let half = u32::try_from(size / 2).expect("sizes are small");
        config.iss = Some((half.wrapping_neg(), half.wrapping_neg() ^ 0x55));
    }
    config
}

/// Runs `seeds` seeds of every size at `loss`; fails listing every case
/// that was not byte-exact, did not end cleanly, or whose engines counted
/// other payload bytes than went through; and fails if the impairments
/// never happened (a sweep over a perfect link proves nothing).
fn sweep(loss: f64, plan: &[(u64, u64)]) {
    let mut failures = Vec::new();
    let mut runs = 0;
    let (mut dropped, mut duplicated, mut reordered, mut retransmits) = (0, 0, 0, 0);
    for &(size, seeds) in plan {
        for seed in 0..seeds {
            let config = case(loss, size, seed);
            let report = tcp::run(&config).expect("the links are valid");
            runs += 1;
            let counted = [
                (report.client.bytes_out, report.upload.len),
                (report.server.bytes_in, report.upload.len),
                (report.server.bytes_out, report.download.len),
                (report.client.bytes_in, report.download.len),
            ];
            if !report.ok() {
                failures.push(format!("loss {loss} size {size}: {report}"));
            } else if counted.iter().any(|(c, len)| c != len) {
                failures.push(format!(
                    "loss {loss} size {size}: counters {counted:?} (bytes_out, bytes_in vs len): {report}"
                ));
            }
            for link in [report.up, report.down] {
                dropped += link.dropped + link.queue_dropped;
                duplicated += link.duplicated;
                reordered += link.reordered;
            }
            retransmits += report.client.retransmits + report.server.retransmits;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed at {loss} loss:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(duplicated > 0 && reordered > 0, "{duplicated} {reordered}");
    if loss > 0.0 {
        assert!(dropped > 0 && retransmits > 0, "{dropped} {retransmits}");
    }
    println!(
        "{loss}: {runs} runs; links dropped {dropped}, duplicated {duplicated}, \
         reordered {reordered}; {retransmits} retransmissions"
    );
}

const SIZES_SMALL: [u64; 3] = [0, 1, MSS_PLUS_ONE];

#[test]
fn no_loss_with_duplicates_and_reordering_is_exact() {
    let plan: Vec<_> = SIZES_SMALL
        .iter()
        .map(|&s| (s, 100))
        .chain([(100_000, 100), (1 << 20, 20)])
        .collect();
    sweep(0.0, &plan);
}

#[test]
fn one_percent_loss_is_exact() {
    let plan: Vec<_> = SIZES_SMALL
        .iter()
        .map(|&s| (s, 100))
        .chain([(100_000, 100), (1 << 20, 20)])
        .collect();
    sweep(0.01, &plan);
}

#[test]
fn five_percent_loss_is_exact() {
    let plan: Vec<_> = SIZES_SMALL
        .iter()
        .map(|&s| (s, 100))
        .chain([(100_000, 100), (1 << 20, 20)])
        .collect();
    sweep(0.05, &plan);
}

#[test]
fn twenty_percent_loss_is_exact() {
    let plan: Vec<_> = SIZES_SMALL
        .iter()
        .map(|&s| (s, 100))
        .chain([(100_000, 50), (1 << 20, 8)])
        .collect();
    sweep(0.20, &plan);
}

/// A clean path, no bottleneck: 1 MiB each way at once with no
/// retransmission at all, and the window scaled past 64 KiB (a 64 KiB
/// window over 20 ms caps goodput at 3.2 MB/s).
#[test]
fn a_clean_path_needs_no_retransmission() {
    let link = ImpairConfig {
        latency: ONE_WAY,
        ..ImpairConfig::default()
    };
    for cc in [Algorithm::NewReno, Algorithm::Cubic] {
        let tcp = conn::Config {
            cc,
            ..conn::Config::default()
        };
        let mut config = Config::new(1, link, &tcp);
        config.upload = 4 << 20;
        config.download = 4 << 20;
        let report = tcp::run(&config).unwrap();
        assert!(report.ok(), "{report}");
        for c in [report.client, report.server] {
            assert_eq!(c.retransmits, 0, "{cc:?}: {report}");
            assert_eq!(c.rto_expiries, 0, "{cc:?}: {report}");
        }
        for t in [report.upload, report.download] {
            let goodput = t.goodput().unwrap();
            assert!(goodput > 4e6, "{cc:?}: {goodput} B/s: {report}");
        }
    }
}

/// Bytes the slow reader's transfer carries, and the reader's rate.
const SLOW_LEN: u64 = 200_000;
const SLOW_RATE: u64 = 50_000;

/// A slow reader behind a small receive buffer: the advertised window
/// shrinks to about a segment and reopens over and over (window updates;
/// it has not reached zero in these runs, so probes are counted and
/// printed, not required), and the transfer still arrives whole, at the
/// reader's pace.
#[test]
fn a_slow_reader_closes_the_window_and_everything_still_arrives() {
    let mut probes = 0;
    for (loss, seed) in [(0.0, 1), (0.05, 2), (0.05, 3), (0.2, 4), (0.2, 5)] {
        let tcp = conn::Config {
            recv_buffer: 8 * 1024,
            cc: if seed % 2 == 0 {
                Algorithm::NewReno
            } else {
                Algorithm::Cubic
            },
            ..conn::Config::default()
        };
        let mut config = Config::new(seed, impaired(loss), &tcp);
        config.time_limit = SWEEP_TIME_LIMIT;
        config.download = SLOW_LEN;
        config.read_rate = Some(SLOW_RATE);
        let report = tcp::run(&config).unwrap();
        assert!(report.ok(), "loss {loss}: {report}");
        // Nothing beats the reader: all of it at its rate, less what its
        // first burst and the buffer hold.
        let done = report.download.done.unwrap();
        #[expect(clippy::cast_precision_loss, reason = "small numbers")]
        let least = (SLOW_LEN - 4096 - 8192) as f64 / SLOW_RATE as f64;
        assert!(
            done.saturating_since(Instant::ZERO).as_secs_f64() >= least,
            "loss {loss}: {report}"
        );
        probes += report.server.window_probes;
    }
    println!("zero-window probes: {probes}");
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let config = case(0.05, 100_000, 7);
    let a = tcp::run(&config).unwrap();
    let b = tcp::run(&config).unwrap();
    assert!(a.ok(), "{a}");
    assert_eq!(a, b);
    let other = tcp::run(&case(0.05, 100_000, 9)).unwrap();
    assert_ne!(a.up, other.up, "another seed, other decisions");
}

/// The simulator's failure paths: a dead link is the engine's timeout, and
/// a run cut short is a time limit, never a hang and never `ok`.
#[test]
fn a_dead_link_ends_in_a_timeout_not_a_hang() {
    let dead = ImpairConfig {
        drop: 1.0,
        ..ImpairConfig::default()
    };
    let mut config = Config::new(3, dead, &conn::Config::default());
    config.upload = 10;
    let report = tcp::run(&config).unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Failed {
            role: Role::Client,
            error: conn::Error::TimedOut
        },
        "{report}"
    );
    assert!(!report.ok());
    assert_eq!(report.server_state, None, "no SYN got through");

    config.time_limit = Duration::from_secs(5);
    let report = tcp::run(&config).unwrap();
    assert_eq!(report.outcome, Outcome::TimeLimit, "{report}");
    assert!(!report.ok());
}

/// The Mathis figure's link: random loss `p` on the data direction only
/// (the bound is about data segments), a 20 ms RTT, and no rate limit so
/// only congestion control sets the pace.
fn mathis_case(p: f64, seed: u64, (cc, sack): (Algorithm, bool), size: u64) -> Config {
    let tcp = conn::Config {
        cc,
        sack,
        ..conn::Config::default()
    };
    let data = ImpairConfig {
        latency: ONE_WAY,
        drop: p,
        ..ImpairConfig::default()
    };
    let mut config = Config::new(seed, data, &tcp);
    config.up = ImpairConfig {
        latency: ONE_WAY,
        ..ImpairConfig::default()
    };
    config.download = size;
    config
}

/// Goodput of `seeds` runs together: all bytes over all time, so one lucky
/// seed does not carry the others.
/// The bound is computed with the 1460-byte MSS; with timestamps a segment
/// carries 1448, so every ratio is 0.8 % conservative.
fn mathis_ratio(p: f64, variant: (Algorithm, bool), seeds: u64, size: u64) -> (f64, Vec<Report>) {
    let reports: Vec<Report> = (0..seeds)
        .map(|seed| tcp::run(&mathis_case(p, seed, variant, size)).unwrap())
        .collect();
    let mut bytes = 0.0;
    let mut secs = 0.0;
    for r in &reports {
        assert!(r.ok(), "{r}");
        let t = r.download;
        #[expect(clippy::cast_precision_loss, reason = "sizes under 2^53")]
        let len = t.len as f64;
        bytes += len;
        secs += len / t.goodput().unwrap();
    }
    let bound = mathis_bound(MSS, 2 * ONE_WAY, p);
    (bytes / secs / bound, reports)
}

/// A broken congestion control (one that never leaves slow start's
/// ssthresh, halves too much, or waits for timeouts) falls well below the
/// bound; a working one with SACK (RFC 6675 recovery, limited transmit,
/// lost retransmissions found by SACK) sits above it — the goal
/// is 1.0× at 0.1, 1 and 5 %.
#[test]
fn goodput_with_sack_at_1_and_5_percent_loss_is_at_least_the_mathis_bound() {
    for p in [0.01, 0.05] {
        for cc in [Algorithm::NewReno, Algorithm::Cubic] {
            let (ratio, reports) = mathis_ratio(p, (cc, true), 3, 4 << 20);
            println!("{p} {cc:?}: {ratio:.3} x Mathis");
            assert!(
                ratio >= 1.0,
                "{p} {cc:?}: {ratio:.2} x Mathis:\n{}",
                reports
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

/// The figure: goodput at 0.1 / 1 / 5 % loss against the bound, as a table
/// and as JSON lines. Loss on the data direction only, the ACK path clean,
/// a 20 ms RTT, no rate limit; both controllers with SACK, and `NewReno`
/// without it.
#[test]
#[ignore = "a report for docs/performance.md; run with --ignored --nocapture"]
fn mathis_table() {
    const SEEDS: u64 = 5;
    println!(
        "| loss | cc | SACK | Mathis bound (Mbit/s) | goodput (Mbit/s) | ratio | retransmits/run | fast retransmits/run | RTOs/run |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut json = Vec::new();
    for p in [0.001, 0.01, 0.05] {
        let bound = mathis_bound(MSS, 2 * ONE_WAY, p);
        // About 10 s of transfer at the bound (500 RTTs): 15 to 50 loss
        // events per run.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a few tens of MB"
        )]
        let size = (bound * 10.0) as u64;
        for (cc, sack) in [
            (Algorithm::NewReno, true),
            (Algorithm::Cubic, true),
            (Algorithm::NewReno, false),
        ] {
            let (ratio, reports) = mathis_ratio(p, (cc, sack), SEEDS, size);
            #[expect(clippy::cast_precision_loss, reason = "small counts")]
            let per_run =
                |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>() as f64 / SEEDS as f64;
            let rtx = per_run(|r| r.server.retransmits);
            let fast = per_run(|r| r.server.fast_retransmits);
            let rto = per_run(|r| r.server.rto_expiries);
            let mbit = |b: f64| b * 8.0 / 1e6;
            println!(
                "| {:.1} % | {cc:?} | {} | {:.2} | {:.2} | {ratio:.2} | {rtx:.0} | {fast:.0} | {rto:.1} |",
                p * 100.0,
                if sack { "on" } else { "off" },
                mbit(bound),
                mbit(bound * ratio),
            );
            json.push(serde_json::json!({
                "loss": p,
                "cc": format!("{cc:?}"),
                "sack": sack,
                "rtt_ms": 20,
                "mss": MSS,
                "bytes_per_run": size,
                "seeds": SEEDS,
                "bound_bytes_per_sec": bound,
                "goodput_bytes_per_sec": bound * ratio,
                "ratio": ratio,
                "retransmits_per_run": rtx,
                "fast_retransmits_per_run": fast,
                "rto_per_run": rto,
            }));
        }
    }
    for j in json {
        println!("{j}");
    }
}

/// Replays one case of the sweep with every segment printed:
/// `LOSS=0.2 SIZE=100000 SEED=43 cargo test --test sim_tcp replay -- --ignored --nocapture`.
#[test]
#[ignore = "a debugging aid: set LOSS, SIZE and SEED"]
fn replay() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("set {name}"));
    let loss: f64 = var("LOSS").parse().expect("LOSS: a probability");
    let size: u64 = var("SIZE").parse().expect("SIZE: bytes");
    let seed: u64 = var("SEED").parse().expect("SEED: a number");
    let mut config = case(loss, size, seed);
    config.trace = true;
    let report = tcp::run(&config).unwrap();
    for line in &report.trace {
        println!("{line}");
    }
    println!("{report}");
    println!("client {:?}\nserver {:?}", report.client, report.server);
}
