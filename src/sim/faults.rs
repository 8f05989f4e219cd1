//! The fault suite: every file-transfer protocol, both directions, through
//! the simulator under loss, duplication and reordering, over many seeds.
//!
//! Owns the suite's one rule and the helpers that check it: a transfer
//! either completes byte-exact, or gives up with a clear `TimedOut` after
//! its retry budget, leaving nothing under the file's final name that is
//! not the whole file; every server session ends on its own; and no run
//! hits the step bound. It also owns the transfer-time table
//! ([`table`]), printed by an ignored test for `docs/performance.md`.
//!
//! It must never read a clock, sleep or touch a socket or a file: it runs
//! only in the simulator's virtual time, over `MemoryFiles`.

use super::{Config, Report, Server, World};
use crate::proto::data::{MemoryFiles, MemorySink, MemorySource};
use crate::proto::outcome::{ClientError, OutcomeSlot};
use crate::proto::proxy::impair::{Counters, ImpairConfig};
use crate::proto::{CloseReason, DatagramAcceptor, DatagramSession, stopwait, tftp};
use crate::time::Duration;
use crate::wire::tftp::{Mode, Options};
use proptest::prelude::*;
use std::fmt::Write as _;
use std::rc::Rc;

/// The retransmission timer of both roles in the suite: TFTP's default,
/// so both protocols are compared on equal footing.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Tries before giving up. At 40 % loss each way one try of a block gets
/// through and back about one time in three; twenty tries make a give-up
/// rare but possible, so both endings are exercised.
const TRIES: u32 = 20;

/// A budget so tight that 40 % loss ends many transfers mid-file: where a
/// half-written upload would show if it could.
const TIGHT_TRIES: u32 = 3;

/// The suite's file sizes: empty, one byte, a stopwait block, TFTP's block
/// boundaries, and tens of KB.
const SIZES: [usize; 7] = [0, 1, 100, 511, 512, 513, 30_000];

/// Seeds per cell of the matrix.
const SEEDS: u64 = 64;

/// The loss rates of the matrix, each with 5 % duplication and 5 %
/// reordering on top.
const DROPS: [f64; 4] = [0.0, 0.05, 0.20, 0.40];

/// What moves the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// Stop-and-wait, 100-byte blocks.
    Stopwait,
    /// TFTP with 512-byte blocks; window 1 asks for no options at all
    /// (plain RFC 1350), a larger one negotiates it through an OACK.
    Tftp { window: u16 },
}

impl Protocol {
    const ALL: [Self; 3] = [
        Self::Stopwait,
        Self::Tftp { window: 1 },
        Self::Tftp { window: 8 },
    ];

    fn name(self) -> String {
        match self {
            Self::Stopwait => "stopwait".into(),
            Self::Tftp { window } => format!("tftp w{window}"),
        }
    }
}

/// One transfer to simulate.
#[derive(Clone, Copy, Debug)]
struct Case {
    protocol: Protocol,
    put: bool,
    len: usize,
    link: ImpairConfig,
    seed: u64,
    tries: u32,
}

impl Case {
    fn new(protocol: Protocol, put: bool, len: usize, link: ImpairConfig, seed: u64) -> Self {
        Self {
            protocol,
            put,
            len,
            link,
            seed,
            tries: TRIES,
        }
    }
}

/// How a transfer ended, in terms common to both protocols.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ending {
    Done {
        elapsed: Duration,
        retransmissions: u64,
    },
    GaveUp {
        tries: u32,
    },
}

/// A transfer that kept the rule.
#[derive(Debug)]
struct Transfer {
    ending: Ending,
    report: Report,
    /// The whole file arrived where it was going (on a give-up: the
    /// server stored an upload whose last answers were all lost).
    stored: bool,
}

/// `len` bytes that differ from block to block and seed to seed, so a
/// block written twice or in the wrong place cannot go unnoticed.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0; len];
    crate::rng::SplitMix64::new(seed).fill_bytes(&mut data);
    data
}

/// Where each protocol's client leaves its outcome.
enum Slot {
    Stopwait(OutcomeSlot<stopwait::Done>),
    Tftp(OutcomeSlot<tftp::Done>),
}

/// Runs `case` and checks the rule; `Err` says what broke it.
fn transfer(case: &Case) -> Result<Transfer, String> {
    let files = MemoryFiles::default();
    let data = payload(case.len, case.seed);
    if !case.put {
        files.insert("f", data.clone());
    }
    let (sink, committed) = MemorySink::new();
    let source = MemorySource::new(data.clone());
    let links = Config {
        max_steps: 1_000_000,
        ..Config::symmetric(case.seed, case.link)
    };
    let (client, acceptor, slot) = parties(case, &files, &links, sink, source);
    let mut world =
        World::new(links, client, Server::Acceptor(acceptor)).map_err(|e| e.to_string())?;
    let report = world.run().map_err(|e| e.to_string())?;

    let ending = ending(case, slot)?;
    match ending {
        Ending::Done { elapsed, .. } => {
            if report.outcome != CloseReason::Completed || elapsed != report.elapsed {
                return Err(format!("done, but closed {:?}", report.outcome));
            }
        }
        Ending::GaveUp { tries } => {
            if tries != case.tries || report.outcome != (CloseReason::TimedOut { tries }) {
                return Err(format!(
                    "gave up after {tries} of {} tries, closed {:?}",
                    case.tries, report.outcome
                ));
            }
        }
    }
    let done = matches!(ending, Ending::Done { .. });
    let stored = if case.put {
        // The server may have stored the whole file and lost every answer
        // to the client's last tries; it may never store part of it.
        match files.get("up") {
            Some(got) if got != data => return Err(format!("stored {} wrong bytes", got.len())),
            None if done => return Err("done, but nothing stored".into()),
            got => got.is_some(),
        }
    } else {
        match committed.borrow().as_deref() {
            Some(got) if got != data.as_slice() => {
                return Err(format!("received {} wrong bytes", got.len()));
            }
            Some(_) if !done => return Err("gave up, but committed the file".into()),
            None if done => return Err("done, but nothing committed".into()),
            got => got.is_some(),
        }
    };
    if report.server_sessions_open != 0 {
        return Err(format!(
            "{} server sessions never ended",
            report.server_sessions_open
        ));
    }
    Ok(Transfer {
        ending,
        report,
        stored,
    })
}

/// The client of `case`, the acceptor it talks to, and where the client
/// leaves its outcome.
fn parties(
    case: &Case,
    files: &MemoryFiles,
    links: &Config,
    sink: MemorySink,
    source: MemorySource,
) -> (Box<dyn DatagramSession>, Box<dyn DatagramAcceptor>, Slot) {
    match case.protocol {
        Protocol::Stopwait => {
            let config = stopwait::StopwaitConfig {
                timeout: TIMEOUT,
                tries: case.tries,
                ..stopwait::StopwaitConfig::DEFAULT
            };
            let slot = OutcomeSlot::new();
            let client: Box<dyn DatagramSession> = if case.put {
                let source = Box::new(source);
                let c = stopwait::PutClient::new("up", links.server, source, config, slot.clone());
                Box::new(c)
            } else {
                let sink = Box::new(sink);
                Box::new(stopwait::GetClient::new(
                    "f",
                    links.server,
                    sink,
                    config,
                    slot.clone(),
                ))
            };
            let acceptor = stopwait::StopwaitAcceptor::new(Rc::new(files.clone()), config);
            (client, Box::new(acceptor), Slot::Stopwait(slot))
        }
        Protocol::Tftp { window } => {
            let options = if window == 1 {
                Options::default()
            } else {
                Options {
                    blksize: Some(512),
                    windowsize: Some(window),
                    ..Options::default()
                }
            };
            let slot = OutcomeSlot::new();
            let c = if case.put {
                tftp::TftpClient::put(
                    links.server,
                    "up",
                    Mode::Octet,
                    options,
                    Box::new(source),
                    TIMEOUT,
                    case.tries,
                    slot.clone(),
                )
            } else {
                tftp::TftpClient::get(
                    links.server,
                    "f",
                    Mode::Octet,
                    options,
                    Box::new(sink),
                    TIMEOUT,
                    case.tries,
                    slot.clone(),
                )
            };
            let config = tftp::TftpConfig {
                timeout: TIMEOUT,
                tries: case.tries,
                ..tftp::TftpConfig::default()
            };
            let acceptor = tftp::TftpAcceptor::new(Rc::new(files.clone()), config);
            (Box::new(c), Box::new(acceptor), Slot::Tftp(slot))
        }
    }
}

/// How the client of `case` ended, by its outcome.
fn ending(case: &Case, slot: Slot) -> Result<Ending, String> {
    Ok(match slot {
        Slot::Stopwait(slot) => match slot.take() {
            Some(Ok(stopwait::Done {
                bytes,
                elapsed,
                retransmissions,
            })) if bytes == case.len as u64 => Ending::Done {
                elapsed,
                retransmissions,
            },
            Some(Err(ClientError::TimedOut { tries })) => Ending::GaveUp { tries },
            other => return Err(format!("outcome {other:?}")),
        },
        Slot::Tftp(slot) => match slot.take() {
            Some(Ok(tftp::Done {
                bytes,
                elapsed,
                retransmissions,
                ..
            })) if bytes == case.len as u64 => Ending::Done {
                elapsed,
                retransmissions,
            },
            Some(Err(ClientError::TimedOut { tries })) => Ending::GaveUp { tries },
            other => return Err(format!("outcome {other:?}")),
        },
    })
}

#[track_caller]
fn check(case: &Case) -> Transfer {
    transfer(case).unwrap_or_else(|e| panic!("{case:?}: {e}"))
}

/// `p` loss, 5 % duplicates and 5 % reordering (up to 100 ms late) over a
/// 10 ms path.
fn faulty(p: f64) -> ImpairConfig {
    ImpairConfig {
        drop: p,
        duplicate: 0.05,
        reorder: 0.05,
        reorder_max: Duration::from_millis(100),
        ..super::testing::lossy()
    }
}

fn add(a: Counters, b: Counters) -> Counters {
    Counters {
        offered: a.offered + b.offered,
        forwarded: a.forwarded + b.forwarded,
        bytes_forwarded: a.bytes_forwarded + b.bytes_forwarded,
        dropped: a.dropped + b.dropped,
        queue_dropped: a.queue_dropped + b.queue_dropped,
        duplicated: a.duplicated + b.duplicated,
        delayed: a.delayed + b.delayed,
        reordered: a.reordered + b.reordered,
    }
}

/// Runs the matrix for one protocol: every size, both verbs, every loss
/// rate, [`SEEDS`] seeds each.
fn matrix(protocol: Protocol) {
    let name = protocol.name();
    for drop in DROPS {
        let mut faults = Counters::default();
        let mut early_give_ups = 0;
        let mut big_done = 0;
        let (mut sent, mut lossless) = (0, 0);
        for seed in 0..SEEDS {
            for len in SIZES {
                for put in [false, true] {
                    let case = Case::new(protocol, put, len, faulty(drop), seed);
                    let t = check(&case);
                    faults = add(add(faults, t.report.up), t.report.down);
                    match t.ending {
                        // A give-up after the upload was stored is the
                        // lost-final-ACK case no end can rule out.
                        Ending::GaveUp { .. } if !t.stored => early_give_ups += 1,
                        Ending::Done { .. } if len == 30_000 => big_done += 1,
                        _ => {}
                    }
                    if drop == 0.0 {
                        sent += t.report.sent.client + t.report.sent.server;
                        let perfect = Case {
                            link: ImpairConfig::default(),
                            ..case
                        };
                        let p = check(&perfect).report.sent;
                        lossless += p.client + p.server;
                    }
                }
            }
        }
        // The impairments happened, so the rule was tested under them.
        assert!(
            faults.duplicated > 0 && faults.reordered > 0,
            "{name} {drop}: {faults:?}"
        );
        assert_eq!(faults.dropped > 0, drop > 0.0, "{name} {drop}: {faults:?}");
        if drop <= 0.20 {
            // Twenty tries at 20 % loss fail a block about once in 10^9.
            assert_eq!(early_give_ups, 0, "{name} at {drop}");
        }
        // Byte-exactness was tested on large files at every rate.
        assert!(big_done > 0, "{name} at {drop}: no large file got through");
        if drop == 0.0 {
            // A duplicate may cost an answer and a reordered block a
            // window's rollback (a quarter more for TFTP window 8), never a
            // stream each: the Sorcerer's Apprentice cost 12 times the
            // datagrams.
            assert!(
                sent <= lossless * 2,
                "{name}: {sent} datagrams where a perfect link needs {lossless}"
            );
        }
    }
}

#[test]
fn stopwait_completes_byte_exact_or_gives_up_cleanly() {
    matrix(Protocol::Stopwait);
}

#[test]
fn tftp_window_1_completes_byte_exact_or_gives_up_cleanly() {
    matrix(Protocol::Tftp { window: 1 });
}

#[test]
fn tftp_window_8_completes_byte_exact_or_gives_up_cleanly() {
    matrix(Protocol::Tftp { window: 8 });
}

#[test]
fn a_tight_retry_budget_gives_up_cleanly_mid_file() {
    for protocol in Protocol::ALL {
        let mut mid_file = 0;
        for seed in 0..SEEDS {
            for put in [false, true] {
                let case = Case {
                    tries: TIGHT_TRIES,
                    ..Case::new(protocol, put, 30_000, faulty(0.40), seed)
                };
                let t = check(&case);
                // Data had moved both ways: the give-up came mid-file.
                if matches!(t.ending, Ending::GaveUp { .. }) && t.report.sent.server > 4 {
                    mid_file += 1;
                }
            }
        }
        assert!(mid_file > 0, "{}: no give-up mid-file", protocol.name());
    }
}

#[test]
fn a_dead_link_gives_up_after_exactly_the_budget() {
    for protocol in Protocol::ALL {
        for put in [false, true] {
            let case = Case::new(protocol, put, 1_000, faulty(1.0), 7);
            let t = check(&case);
            assert_eq!(t.ending, Ending::GaveUp { tries: TRIES });
            // One request, then a retry per timeout until the budget.
            assert_eq!(t.report.sent.client, u64::from(TRIES));
            assert_eq!(t.report.elapsed, TIMEOUT * TRIES);
            assert_eq!(t.report.up.dropped, u64::from(TRIES));
        }
    }
}

/// Round trips a lossless transfer of `len` bytes needs: the request's,
/// then one per block (stopwait, TFTP window 1) or per window after the
/// OACK's (TFTP window 8); stopwait's FIN answers the last ACK.
fn round_trips(protocol: Protocol, put: bool, len: usize) -> u32 {
    match protocol {
        Protocol::Stopwait => {
            let blocks = u32::try_from(len.div_ceil(100).max(1)).unwrap();
            // GET: G, then each ACK fetches the next block or the FIN.
            // PUT: P, each block, then the FIN.
            if put { blocks + 2 } else { blocks + 1 }
        }
        Protocol::Tftp { window } => {
            // A final block always ends short, empty if need be.
            let blocks = u32::try_from(len / 512 + 1).unwrap();
            let windows = blocks.div_ceil(u32::from(window));
            // The request's round trip brings the first window (RFC 1350
            // RRQ) or an ACK 0 / OACK.
            match (window, put) {
                (1, false) => windows,
                _ => windows + 1,
            }
        }
    }
}

#[test]
fn lossless_transfers_take_exactly_their_round_trips() {
    let rtt = Duration::from_millis(20);
    for protocol in Protocol::ALL {
        for put in [false, true] {
            for len in SIZES {
                let case = Case::new(protocol, put, len, super::testing::lossy(), 0);
                let case = Case {
                    link: ImpairConfig {
                        latency: rtt / 2,
                        ..ImpairConfig::default()
                    },
                    ..case
                };
                let t = check(&case);
                let want = rtt * round_trips(protocol, put, len);
                assert_eq!(
                    t.ending,
                    Ending::Done {
                        elapsed: want,
                        retransmissions: 0
                    },
                    "{} put {put} len {len}",
                    protocol.name()
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_mix_of_faults_keeps_the_rule(
        seed in any::<u64>(),
        drop in 0.0..0.5f64,
        duplicate in 0.0..0.3f64,
        reorder in 0.0..0.3f64,
        len in 0usize..4_000,
        protocol in 0usize..3,
        put in any::<bool>(),
    ) {
        let link = ImpairConfig {
            drop,
            duplicate,
            reorder,
            ..faulty(0.0)
        };
        let case = Case::new(Protocol::ALL[protocol], put, len, link, seed);
        if let Err(e) = transfer(&case) {
            return Err(TestCaseError::fail(format!("{case:?}: {e}")));
        }
    }
}

/// One row of the transfer-time table.
#[derive(Debug, Default)]
struct Row {
    runs: u32,
    done: u32,
    elapsed: Duration,
    retransmissions: u64,
    datagrams: u64,
}

/// A markdown table of mean virtual transfer time and retransmissions per
/// (protocol, verb, loss rate): `seeds` runs of a `len`-byte transfer each,
/// over a 10 ms path with only loss (no duplication or reordering), timers
/// of [`TIMEOUT`] and [`TRIES`] tries. Means are over completed runs.
fn table(seeds: u64, len: usize, drops: &[f64]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| protocol | verb | loss each way | completed | mean time | mean client retransmissions | mean datagrams (both sides) |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for protocol in Protocol::ALL {
        for put in [false, true] {
            for &drop in drops {
                let link = ImpairConfig {
                    drop,
                    ..ImpairConfig {
                        latency: Duration::from_millis(10),
                        ..ImpairConfig::default()
                    }
                };
                let mut row = Row::default();
                for seed in 0..seeds {
                    let t = check(&Case::new(protocol, put, len, link, seed));
                    row.runs += 1;
                    if let Ending::Done {
                        elapsed,
                        retransmissions,
                    } = t.ending
                    {
                        row.done += 1;
                        row.elapsed += elapsed;
                        row.retransmissions += retransmissions;
                        row.datagrams += t.report.sent.client + t.report.sent.server;
                    }
                }
                let n = row.done.max(1);
                #[expect(clippy::cast_precision_loss, reason = "averages for a table")]
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} % | {}/{} | {:.2} s | {:.1} | {:.0} |",
                    protocol.name(),
                    if put { "PUT" } else { "GET" },
                    drop * 100.0,
                    row.done,
                    row.runs,
                    (row.elapsed / n).as_secs_f64(),
                    row.retransmissions as f64 / f64::from(n),
                    row.datagrams as f64 / f64::from(n),
                );
            }
        }
    }
    out
}

#[test]
fn the_table_has_a_row_per_protocol_verb_and_rate() {
    let t = table(2, 2_000, &[0.0, 0.3]);
    let rows: Vec<&str> = t.lines().skip(2).collect();
    assert_eq!(rows.len(), 3 * 2 * 2, "{t}");
    // Lossless rows retransmit nothing; lossy ones must.
    for pair in rows.chunks(2) {
        assert!(pair[0].contains("| 0.0 |"), "{t}");
        assert!(!pair[1].contains("| 0.0 |"), "{t}");
    }
}

/// Prints the table for `docs/performance.md`.
#[test]
#[ignore = "a report, not a check: prints the transfer-time table"]
fn print_transfer_time_table() {
    let drops = [0.0, 0.01, 0.05, 0.10, 0.20, 0.40];
    println!("{}", table(20, 65_536, &drops));
}
