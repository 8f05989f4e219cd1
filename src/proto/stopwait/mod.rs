//! The classic stop-and-wait file transfer over UDP, both roles.
//!
//! Owns the seed's protocol (spec section "stopwait") on top of the shared
//! ARQ core (`proto::arq`): the server's per-client session (GET and PUT,
//! answering duplicates with its last answer, soft close after silence) and
//! the clients, which drive retransmission on timeout. Block `i` travels as
//! number `i` with bit `i mod 2`; a packet is accepted only when both name
//! the block expected — the seed's bug (a very late duplicate with the
//! right bit written twice) is fixed by construction.
//!
//! The server's sessions draw what they send unvalidated peers from the
//! reflection budget they share with their acceptor through a
//! [`SharedBudget`](crate::proto::budget::SharedBudget):
//! [`StopwaitAcceptor::new`] makes one of its own, and
//! [`StopwaitAcceptor::with_budget`] takes the process's, so that every UDP
//! service draws from the same buckets.

mod client;
#[cfg(test)]
mod measure;
mod server;

pub use client::{Done, GetClient, PutClient};
pub use server::{AMPLIFICATION, StopwaitAcceptor, StopwaitServer};

use crate::proto::arq::{ArqConfig, EndRule};
use crate::time::Duration;
use crate::wire::stopwait::{MAX_BLOCK, MAX_MESSAGE};

/// Largest file: 99 999 blocks of 100 bytes.
pub const MAX_FILE: u64 = MAX_BLOCK as u64 * MAX_MESSAGE as u64;

/// Settings of either role. The timers come from `--stopwait-timeout`,
/// `--stopwait-tries` on the server and `--timeout`, `--tries` on the
/// clients; the bounds (config keys `stopwait_max_sessions`,
/// `stopwait_max_sessions_per_peer`, `stopwait_unvalidated_lifetime`) only
/// matter to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopwaitConfig {
    /// Retransmission timer (clients) and the unit of the server's soft close.
    pub timeout: Duration,
    /// Tries before giving up (clients) or dropping a silent client (server).
    pub tries: u32,
    /// Sessions at once, in all. Each may hold an open file and a 64 KiB
    /// read-ahead buffer, so without a bound a flood of half-open GETs runs
    /// the process out of descriptors and memory (5 000 of them did).
    pub max_sessions: usize,
    /// Sessions at once from one IP address (any port), so one host cannot
    /// take every place; a flood at this bound evicts its own oldest
    /// unvalidated sessions first.
    pub max_sessions_per_peer: usize,
    /// Longest life of a session whose peer has never answered (a spoofable
    /// request followed by silence), so a stranger cannot hold places or a
    /// file with a few datagrams. A few seconds: a real client answers
    /// within one round trip, and one that lost the exchange starts it
    /// again with its request (see the client).
    pub unvalidated_lifetime: Duration,
}

impl StopwaitConfig {
    /// The defaults, usable in constants.
    pub const DEFAULT: Self = Self {
        timeout: Duration::from_secs(5),
        tries: 5,
        max_sessions: 1024,
        max_sessions_per_peer: 64,
        unvalidated_lifetime: Duration::from_secs(3),
    };
}

impl Default for StopwaitConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl StopwaitConfig {
    fn arq(self) -> ArqConfig {
        ArqConfig {
            block_size: MAX_MESSAGE,
            window: 1,
            timeout: self.timeout,
            max_tries: self.tries,
            end: EndRule::ExactBlocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::{MemoryFiles, MemorySink, MemorySource};
    use crate::proto::outcome::{ClientError, Outcome, OutcomeSlot};
    use crate::proto::proxy::impair::Counters;
    use crate::proto::testing::{cx, drain_datagrams, feed_datagram};
    use crate::proto::{DatagramSession, Driven};
    use crate::sim::{self, Dir, Report, Server, World};
    use crate::time::Instant;
    use crate::wire::stopwait::{Kind, Packet};
    use std::net::SocketAddr;
    use std::rc::Rc;

    fn client_addr() -> SocketAddr {
        sim::Config::default().client
    }

    fn server_addr() -> SocketAddr {
        sim::Config::default().server
    }

    /// Every datagram `s` sends at `now`.
    fn drain(s: &mut dyn DatagramSession, now: Instant) -> Vec<Vec<u8>> {
        drain_datagrams(s, now)
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }

    /// What a simulated exchange did.
    struct Run {
        report: Report,
        /// Datagrams produced: by the client, by the server.
        sent: [usize; 2],
        delivered_to_server: Vec<Vec<u8>>,
        delivered_to_client: Vec<Vec<u8>>,
    }

    /// Runs `client` against a stopwait acceptor over `files` (sessions
    /// with `server`'s timers) in the simulator with `links`, after a
    /// `drop` rule that loses the packets it picks (`true` = towards the
    /// server, n = its number in that direction), until the client closes
    /// and the server has settled.
    fn simulate(
        client: Box<dyn DatagramSession>,
        files: &MemoryFiles,
        server: StopwaitConfig,
        mut links: sim::Config,
        mut drop: impl FnMut(bool, usize) -> bool + 'static,
    ) -> Run {
        let acceptor = StopwaitAcceptor::new(Rc::new(files.clone()), server);
        links.trace = true;
        let mut world = World::new(links, client, Server::Acceptor(Box::new(acceptor)))
            .unwrap()
            .with_loss(move |dir, n, _| drop(dir == Dir::Up, usize::try_from(n).unwrap()));
        let report = world.run().unwrap_or_else(|e| panic!("{e}"));
        let delivered = |dir| -> Vec<Vec<u8>> {
            world
                .trace()
                .iter()
                .filter(|d| d.dir == dir && d.delivered)
                .map(|d| d.payload.to_vec())
                .collect()
        };
        Run {
            sent: [report.sent.client, report.sent.server].map(|n| usize::try_from(n).unwrap()),
            delivered_to_server: delivered(Dir::Up),
            delivered_to_client: delivered(Dir::Down),
            report,
        }
    }

    #[expect(
        clippy::cast_possible_truncation,
        reason = "a test pattern: the low byte is the point"
    )]
    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
    }

    fn get(
        files: &MemoryFiles,
        name: &str,
        drop: impl FnMut(bool, usize) -> bool + 'static,
    ) -> (Option<Outcome<Done>>, Option<Vec<u8>>, Run) {
        get_with(files, name, StopwaitConfig::default(), drop)
    }

    fn get_with(
        files: &MemoryFiles,
        name: &str,
        server: StopwaitConfig,
        drop: impl FnMut(bool, usize) -> bool + 'static,
    ) -> (Option<Outcome<Done>>, Option<Vec<u8>>, Run) {
        let slot = OutcomeSlot::new();
        let (sink, committed) = MemorySink::new();
        let c = GetClient::new(
            name,
            server_addr(),
            Box::new(sink),
            StopwaitConfig::default(),
            slot.clone(),
        );
        let pair = simulate(Box::new(c), files, server, sim::Config::default(), drop);
        let got = committed.borrow().clone();
        (slot.get(), got, pair)
    }

    fn put(
        files: &MemoryFiles,
        name: &str,
        data: Vec<u8>,
        drop: impl FnMut(bool, usize) -> bool + 'static,
    ) -> (Option<Outcome<Done>>, Run) {
        put_with(files, name, data, StopwaitConfig::default(), drop)
    }

    fn put_with(
        files: &MemoryFiles,
        name: &str,
        data: Vec<u8>,
        server: StopwaitConfig,
        drop: impl FnMut(bool, usize) -> bool + 'static,
    ) -> (Option<Outcome<Done>>, Run) {
        let slot = OutcomeSlot::new();
        let c = PutClient::new(
            name,
            server_addr(),
            Box::new(MemorySource::new(data)),
            StopwaitConfig::default(),
            slot.clone(),
        );
        let pair = simulate(Box::new(c), files, server, sim::Config::default(), drop);
        (slot.get(), pair)
    }

    /// Retry budgets for the lossy link: with 10 % loss each way a block
    /// fails a try about one time in five, and five tries would lose a
    /// 1 000-block transfer about one run in five; twenty make that
    /// vanishingly rare while a real livelock still ends in a time-out.
    const SIM_CONFIG: StopwaitConfig = StopwaitConfig {
        timeout: Duration::from_secs(1),
        tries: 20,
        ..StopwaitConfig::DEFAULT
    };
    const SIM_SEEDS: u64 = 20;
    const SIM_SIZES: [usize; 6] = [0, 1, 99, 100, 101, 100_000];

    /// A run over links with the issue-5 faults, seeded by `seed`.
    fn lossy(client: Box<dyn DatagramSession>, files: &MemoryFiles, seed: u64) -> Run {
        let links = sim::Config::symmetric(seed, sim::testing::lossy());
        simulate(client, files, SIM_CONFIG, links, |_, _| false)
    }

    /// Data blocks that arrived at least two blocks late with the bit of
    /// the block then expected: the seed's bug wrote those twice.
    fn late_duplicates_with_the_right_bit(delivered: &[Vec<u8>]) -> usize {
        let mut highest = 0u32;
        let mut late = 0;
        for d in delivered {
            let Ok(p) = Packet::parse(d) else { continue };
            if p.kind != Kind::Data {
                continue;
            }
            let expected = highest + 1;
            if p.block + 2 <= expected && p.block % 2 == expected % 2 {
                late += 1;
            }
            highest = highest.max(p.block);
        }
        late
    }

    #[test]
    fn seeded_lossy_link_get_and_put_are_byte_exact() {
        let mut late = 0;
        let mut faults = Counters::default();
        for seed in 0..SIM_SEEDS {
            for len in SIM_SIZES {
                let files = MemoryFiles::default();
                files.insert("f", bytes(len));
                let slot = OutcomeSlot::new();
                let (sink, committed) = MemorySink::new();
                let c =
                    GetClient::new("f", server_addr(), Box::new(sink), SIM_CONFIG, slot.clone());
                let pair = lossy(Box::new(c), &files, seed);
                let outcome = slot.get();
                assert!(
                    matches!(outcome, Some(Ok(Done { bytes, .. })) if bytes == len as u64),
                    "GET seed {seed} len {len}: {outcome:?}"
                );
                assert!(
                    committed.borrow().as_deref() == Some(&bytes(len)[..]),
                    "GET seed {seed} len {len}: bytes differ"
                );
                late += late_duplicates_with_the_right_bit(&pair.delivered_to_client);
                faults = add(faults, pair.report.down);

                let slot = OutcomeSlot::new();
                let c = PutClient::new(
                    "up",
                    server_addr(),
                    Box::new(MemorySource::new(bytes(len))),
                    SIM_CONFIG,
                    slot.clone(),
                );
                let pair = lossy(Box::new(c), &files, seed);
                let outcome = slot.get();
                assert!(
                    matches!(outcome, Some(Ok(Done { bytes, .. })) if bytes == len as u64),
                    "PUT seed {seed} len {len}: {outcome:?}"
                );
                assert!(
                    files.get("up").as_deref() == Some(&bytes(len)[..]),
                    "PUT seed {seed} len {len}: bytes differ"
                );
                late += late_duplicates_with_the_right_bit(&pair.delivered_to_server);
                faults = add(faults, pair.report.up);
            }
        }
        // Otherwise the rates or delays above stopped exercising what they
        // are here for.
        assert!(late > 0, "no very late duplicate with the right bit arose");
        assert!(
            faults.dropped > 0 && faults.duplicated > 0 && faults.reordered > 0,
            "{faults:?}"
        );
    }

    fn add(a: Counters, b: Counters) -> Counters {
        Counters {
            offered: a.offered + b.offered,
            dropped: a.dropped + b.dropped,
            duplicated: a.duplicated + b.duplicated,
            reordered: a.reordered + b.reordered,
            ..a
        }
    }

    #[test]
    fn get_of_every_spec_size_is_byte_exact() {
        for len in [0usize, 1, 100, 101, 250_000] {
            let files = MemoryFiles::default();
            files.insert("f", bytes(len));
            let (outcome, got, pair) = get(&files, "f", |_, _| false);
            assert!(
                matches!(outcome, Some(Ok(Done { bytes, retransmissions: 0, .. })) if bytes == len as u64),
                "{len}: {outcome:?}"
            );
            assert_eq!(got.unwrap(), bytes(len), "{len}");
            // G, one ACK per block: a multiple of 100 has no extra block,
            // and an empty file is one empty block.
            let blocks = len.div_ceil(100).max(1);
            assert_eq!(
                pair.sent,
                [1 + blocks, blocks + 1],
                "{len}: G + ACKs, DTAs + FIN"
            );
        }
    }

    #[test]
    fn put_of_every_spec_size_is_byte_exact() {
        for len in [0usize, 1, 100, 101, 250_000] {
            let files = MemoryFiles::default();
            let (outcome, pair) = put(&files, "up", bytes(len), |_, _| false);
            assert!(
                matches!(outcome, Some(Ok(Done { bytes, .. })) if bytes == len as u64),
                "{len}: {outcome:?}"
            );
            assert_eq!(files.get("up").unwrap(), bytes(len), "{len}");
            let blocks = len.div_ceil(100).max(1);
            assert_eq!(
                pair.sent,
                [1 + blocks + 1, 1 + blocks + 1],
                "{len}: P + DTAs + FIN, ACKs"
            );
        }
    }

    #[test]
    fn the_wire_matches_the_spec_flows() {
        let files = MemoryFiles::default();
        files.insert("notes.txt", b"hi".to_vec());
        let (_, _, pair) = get(&files, "notes.txt", |_, _| false);
        assert_eq!(
            pair.delivered_to_server,
            vec![b"G000000notes.txt".to_vec(), b"A100001ack".to_vec()]
        );
        let (_, pair) = put(&files, "up.bin", b"xyz".to_vec(), |_, _| false);
        assert_eq!(
            pair.delivered_to_server,
            vec![
                b"P000000up.bin".to_vec(),
                b"D100001xyz".to_vec(),
                b"FF00001I'm Done".to_vec()
            ]
        );
    }

    #[test]
    fn transfers_survive_loss_in_both_directions() {
        let server = StopwaitConfig::default();
        for (every, len) in [(3usize, 25_000usize), (4, 1_234), (2, 700)] {
            let files = MemoryFiles::default();
            files.insert("f", bytes(len));
            // Drop every n-th packet in each direction (never the same pattern twice in a row).
            let (outcome, got, _) = get_with(&files, "f", server, move |_, n| n % every == 0);
            assert!(
                matches!(outcome, Some(Ok(Done { retransmissions, .. })) if retransmissions > 0),
                "{outcome:?}"
            );
            assert_eq!(got.unwrap(), bytes(len));
            let (outcome, _) =
                put_with(&files, "g", bytes(len), server, move |_, n| n % every == 0);
            assert!(matches!(outcome, Some(Ok(Done { .. }))), "{outcome:?}");
            assert_eq!(files.get("g").unwrap(), bytes(len));
        }
    }

    #[test]
    fn a_lost_first_answer_restarts_the_handshake() {
        // With the default timers the client retries after 5 s, and the
        // server has forgotten an unvalidated session after 3 s: a lost
        // ACK 1 (GET) or block 1 (PUT) resent as such would reach no
        // session. The client resends its request instead, and answers the
        // fresh session's first answer again.
        let files = MemoryFiles::default();
        files.insert("f", bytes(250));
        // Up: 1 is the G, 2 the ACK of block 1.
        let (outcome, got, run) = get(&files, "f", |up, n| up && n == 2);
        assert!(
            matches!(
                outcome,
                Some(Ok(Done {
                    retransmissions: 2,
                    ..
                }))
            ),
            "{outcome:?}"
        );
        assert_eq!(got.unwrap(), bytes(250));
        assert_eq!(
            run.delivered_to_server[..3],
            [
                b"G000000f".to_vec(),
                b"G000000f".to_vec(),
                b"A100001ack".to_vec()
            ],
            "the ACK was lost: the GET again, then the ACK"
        );
        // Up: 1 is the P, 2 block 1.
        let (outcome, run) = put(&files, "up", bytes(250), |up, n| up && n == 2);
        assert!(
            matches!(
                outcome,
                Some(Ok(Done {
                    retransmissions: 2,
                    ..
                }))
            ),
            "{outcome:?}"
        );
        assert_eq!(files.get("up").unwrap(), bytes(250));
        assert_eq!(
            run.delivered_to_server[..3],
            [
                b"P000000up".to_vec(),
                b"P000000up".to_vec(),
                [&b"D100001"[..], &bytes(250)[..100]].concat()
            ]
        );
        // A lost block 1 of a GET is the plain case: the request is what
        // the client resends anyway.
        let (outcome, _, _) = get(&files, "f", |up, n| !up && n == 1);
        assert!(
            matches!(
                outcome,
                Some(Ok(Done {
                    retransmissions: 1,
                    ..
                }))
            ),
            "{outcome:?}"
        );
    }

    #[test]
    fn duplicated_blocks_do_not_multiply_the_traffic() {
        // Found by the fault suite (`sim::faults`): the GET client answered
        // a copy of the previous block with its ACK again, and the server
        // answers a repeated ACK with its block again, so every duplicate
        // kept bouncing to the end of the transfer (Sorcerer's Apprentice):
        // 12 times the datagrams at 5 % duplication over 300 blocks.
        let len = 1_000;
        let files = MemoryFiles::default();
        files.insert("f", bytes(len));
        let slot = OutcomeSlot::new();
        let (sink, committed) = MemorySink::new();
        let c = GetClient::new(
            "f",
            server_addr(),
            Box::new(sink),
            StopwaitConfig::default(),
            slot.clone(),
        );
        // Every datagram towards the client arrives twice.
        let links = sim::Config {
            down: crate::proto::proxy::impair::ImpairConfig {
                duplicate: 1.0,
                ..Default::default()
            },
            ..sim::Config::default()
        };
        let run = simulate(
            Box::new(c),
            &files,
            StopwaitConfig::default(),
            links,
            |_, _| false,
        );
        assert!(matches!(slot.get(), Some(Ok(Done { .. }))));
        assert_eq!(committed.borrow().clone(), Some(bytes(len)));
        assert_eq!(run.report.down.duplicated, 11, "10 blocks and the FIN");
        // G and one ACK per block; the server answers each once.
        assert_eq!(run.sent, [1 + 10, 10 + 1]);
    }

    #[test]
    fn a_silent_server_makes_the_client_retry_exactly_at_the_timeout_then_give_up() {
        let slot = OutcomeSlot::new();
        let (sink, _) = MemorySink::new();
        let mut c = GetClient::new(
            "f",
            server_addr(),
            Box::new(sink),
            StopwaitConfig::default(),
            slot.clone(),
        );
        assert_eq!(drain(&mut c, Instant::ZERO).len(), 1);
        assert_eq!(c.poll_timeout(), Some(Instant::from_secs(5)));
        c.handle_timeout(&mut cx(Instant::from_millis(4_999), None));
        assert!(drain(&mut c, Instant::from_millis(4_999)).is_empty());
        for t in 1..5u64 {
            let now = Instant::from_secs(5 * t);
            c.handle_timeout(&mut cx(now, None));
            assert_eq!(drain(&mut c, now), vec![b"G000000f".to_vec()], "retry {t}");
        }
        c.handle_timeout(&mut cx(Instant::from_secs(25), None));
        assert_eq!(slot.get(), Some(Err(ClientError::TimedOut { tries: 5 })));
    }

    #[test]
    fn the_seeds_bug_a_late_duplicate_with_the_right_bit_is_not_written() {
        let files = MemoryFiles::default();
        let mut s = StopwaitServer::new(
            Rc::new(files.clone()),
            StopwaitConfig::default(),
            Rc::default(),
            Instant::ZERO,
        );
        let feed = |s: &mut StopwaitServer, d: &[u8]| {
            feed_datagram(s, Instant::ZERO, client_addr(), d);
            drain(s, Instant::ZERO)
        };
        assert_eq!(feed(&mut s, b"P000000f"), vec![b"A000000ack".to_vec()]);
        assert_eq!(feed(&mut s, b"D100001aaa"), vec![b"A100001ack".to_vec()]);
        assert_eq!(feed(&mut s, b"D000002bbb"), vec![b"A000002ack".to_vec()]);
        // Block 3 is expected with bit 1. A very late copy of block 1 has
        // bit 1 too: the seed wrote it as block 3. Now it is ignored.
        assert!(feed(&mut s, b"D100001aaa").is_empty());
        assert_eq!(feed(&mut s, b"D100003ccc"), vec![b"A100003ack".to_vec()]);
        // A duplicate of the last block gets the last answer again.
        assert_eq!(feed(&mut s, b"D100003ccc"), vec![b"A100003ack".to_vec()]);
        assert_eq!(
            feed(&mut s, b"FF00003I'm Done"),
            vec![b"AF00003ack".to_vec()]
        );
        assert_eq!(
            feed(&mut s, b"FF00003I'm Done"),
            vec![b"AF00003ack".to_vec()],
            "a repeated FIN"
        );
        assert_eq!(files.get("f").unwrap(), b"aaabbbccc");
    }

    #[test]
    fn errors_and_soft_close() {
        let files = MemoryFiles::default();
        files.insert("there", b"x".to_vec());
        let (outcome, _, _) = get(&files, "missing", |_, _| false);
        assert_eq!(outcome, Some(Err(ClientError::refused("file not found"))));
        let (outcome, _) = put(&files, "there", b"y".to_vec(), |_, _| false);
        assert_eq!(outcome, Some(Err(ClientError::refused("file exists"))));
        assert_eq!(files.get("there").unwrap(), b"x");
        // A client that vanishes mid-PUT: dropped after 5 s × 5 of silence,
        // and nothing is stored.
        let mut s = StopwaitServer::new(
            Rc::new(files.clone()),
            StopwaitConfig::default(),
            Rc::default(),
            Instant::ZERO,
        );
        for d in [&b"P000000gone"[..], b"D100001abc"] {
            feed_datagram(&mut s, Instant::ZERO, client_addr(), d);
        }
        assert_eq!(s.poll_timeout(), Some(Instant::from_secs(25)));
        s.handle_timeout(&mut cx(Instant::from_secs(25), None));
        assert!(s.poll_close().is_some());
        drop(s);
        assert_eq!(files.get("gone"), None);
    }

    #[test]
    fn limits() {
        assert_eq!(MAX_FILE, 9_999_900);
        let files = MemoryFiles::default();
        files.insert("big", vec![0; 9_999_901]);
        let (outcome, _, _) = get(&files, "big", |_, _| false);
        assert_eq!(outcome, Some(Err(ClientError::refused("file too large"))));
    }
}
