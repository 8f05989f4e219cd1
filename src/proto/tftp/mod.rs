//! TFTP (RFC 1350, with RFC 2347/2348/2349 options and RFC 7440 windows),
//! both roles, so that curl, tftp-hpa and atftp work against mioperf and
//! mioperf's client works against their servers.
//!
//! Owns option negotiation, the transfer ID rule (after the first reply,
//! only the peer's address and port are the transfer; anyone else gets
//! ERROR 5 and the transfer goes on), block numbering with rollover past
//! 65535 to 0, netascii translation, and the session limits. Blocks,
//! windows and retransmission are the shared ARQ core's (`proto::arq`);
//! files are the store's.

mod client;
mod engine;
mod netascii;
mod server;

pub use client::{Done, TftpClient, Verb};
pub use server::{AMPLIFICATION, TftpAcceptor, TftpConfig, TftpServer};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::{MemoryFiles, MemorySink, MemorySource};
    use crate::proto::outcome::{ClientError, Outcome, OutcomeSlot, Progress, Refusal};
    use crate::proto::proxy::impair::{Counters, ImpairConfig};
    use crate::sim::{self, Dir, Report, Server, World};
    use crate::time::{Duration, Instant};
    use crate::wire::tftp::{Block, Mode, Options, Packet};
    use std::net::SocketAddr;
    use std::rc::Rc;

    fn listener() -> SocketAddr {
        sim::Config::default().server
    }

    /// What a simulated transfer did.
    struct Run {
        report: Report,
        /// Every datagram that reached the client, in order.
        to_client_log: Vec<Vec<u8>>,
    }

    /// Runs `client` against a TFTP acceptor over `files` in the simulator
    /// with `links`, after a `drop` rule that loses what it picks (`true`:
    /// towards the server), until the client closes and every transfer
    /// session on the server has ended.
    fn simulate(
        client: TftpClient,
        files: &MemoryFiles,
        config: TftpConfig,
        mut links: sim::Config,
        mut drop: impl FnMut(bool, &[u8]) -> bool + 'static,
    ) -> Run {
        let acceptor = TftpAcceptor::new(Rc::new(files.clone()), config);
        links.trace = true;
        let mut world = World::new(
            links,
            Box::new(client),
            Server::Acceptor(Box::new(acceptor)),
        )
        .unwrap()
        .with_loss(move |dir, _, d| drop(dir == Dir::Up, d));
        let report = world.run().unwrap_or_else(|e| panic!("{e}"));
        let to_client_log = world
            .trace()
            .iter()
            .filter(|d| d.dir == Dir::Down && d.delivered)
            .map(|d| d.payload.to_vec())
            .collect();
        Run {
            report,
            to_client_log,
        }
    }

    #[expect(
        clippy::cast_possible_truncation,
        reason = "a test pattern: the low byte is the point"
    )]
    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 + i / 700) as u8).collect()
    }

    fn get(
        files: &MemoryFiles,
        name: &str,
        options: Options,
        config: TftpConfig,
        drop: impl FnMut(bool, &[u8]) -> bool + 'static,
    ) -> (Option<Outcome<Done>>, Option<Vec<u8>>, Run) {
        let slot = OutcomeSlot::new();
        let (sink, committed) = MemorySink::new();
        let c = TftpClient::get(
            listener(),
            name,
            Mode::Octet,
            options,
            Box::new(sink),
            Duration::from_secs(1),
            5,
            slot.clone(),
        );
        let pair = simulate(c, files, config, sim::Config::default(), drop);
        let got = committed.borrow().clone();
        (slot.get(), got, pair)
    }

    fn put(
        files: &MemoryFiles,
        name: &str,
        data: Vec<u8>,
        options: Options,
        drop: impl FnMut(bool, &[u8]) -> bool + 'static,
    ) -> Option<Outcome<Done>> {
        let slot = OutcomeSlot::new();
        let c = TftpClient::put(
            listener(),
            name,
            Mode::Octet,
            options,
            Box::new(MemorySource::new(data)),
            Duration::from_secs(1),
            5,
            slot.clone(),
        );
        simulate(
            c,
            files,
            TftpConfig::default(),
            sim::Config::default(),
            drop,
        );
        slot.get()
    }

    fn refused(code: u16, answer: &str) -> Result<Done, ClientError> {
        Err(ClientError::Refused(Refusal {
            answer: answer.into(),
            code: Some(code),
        }))
    }

    /// Retry budget over the lossy link: 10 % loss each way fails a try
    /// of one block about one time in five, and five tries would end some
    /// seeds' longer transfers in a time-out; twenty make that vanishingly
    /// rare while a real livelock still ends in one.
    const SIM_TRIES: u32 = 20;
    const SIM_SEEDS: u64 = 20;

    /// A GET or PUT (`put`: the bytes to upload) of `len` bytes over links
    /// with `faults`, seeded per direction; `Ok` when it completed and the
    /// bytes arrived exactly, otherwise what went wrong.
    fn lossy(
        len: usize,
        put: bool,
        options: Options,
        faults: ImpairConfig,
        seed: u64,
    ) -> Result<Report, String> {
        let files = MemoryFiles::default();
        let slot = OutcomeSlot::new();
        let timeout = Duration::from_secs(1);
        let (client, committed) = if put {
            let source = Box::new(MemorySource::new(bytes(len)));
            let c = TftpClient::put(
                listener(),
                "up",
                Mode::Octet,
                options,
                source,
                timeout,
                SIM_TRIES,
                slot.clone(),
            );
            (c, None)
        } else {
            files.insert("f", bytes(len));
            let (sink, committed) = MemorySink::new();
            let c = TftpClient::get(
                listener(),
                "f",
                Mode::Octet,
                options,
                Box::new(sink),
                timeout,
                SIM_TRIES,
                slot.clone(),
            );
            (c, Some(committed))
        };
        let config = TftpConfig {
            tries: SIM_TRIES,
            ..TftpConfig::default()
        };
        let links = sim::Config::symmetric(seed, faults);
        let pair = simulate(client, &files, config, links, |_, _| false);
        let outcome = slot.get();
        if !matches!(outcome, Some(Ok(Done { bytes, .. })) if bytes == len as u64) {
            return Err(format!("{outcome:?}"));
        }
        let got = match committed {
            Some(c) => c.borrow().clone(),
            None => files.get("up"),
        };
        if got.as_deref() != Some(&bytes(len)[..]) {
            return Err(format!("bytes differ: {:?} of {len}", got.map(|g| g.len())));
        }
        Ok(pair.report)
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
    fn seeded_lossy_link_get_and_put_are_byte_exact() {
        let mut faults = Counters::default();
        for seed in 0..SIM_SEEDS {
            for window in [None, Some(4u16), Some(16)] {
                let options = Options {
                    windowsize: window,
                    ..Options::default()
                };
                for len in [0usize, 1, 511, 512, 513, 100_000] {
                    for put in [false, true] {
                        let verb = if put { "PUT" } else { "GET" };
                        match lossy(len, put, options, sim::testing::lossy(), seed) {
                            Ok(r) => faults = add(add(faults, r.up), r.down),
                            Err(e) => {
                                panic!("{verb} seed {seed} window {window:?} len {len}: {e}")
                            }
                        }
                    }
                }
            }
        }
        // Otherwise the links stopped doing what this test is about.
        assert!(
            faults.dropped > 0 && faults.duplicated > 0 && faults.reordered > 0,
            "{faults:?}"
        );
    }

    #[test]
    fn seeded_lossy_link_across_the_block_number_rollover() {
        // 8-byte blocks: 66 000 blocks, past 65 535. Milder faults: the
        // point is numbering across the wrap under loss, duplicates and
        // reordering, and go-back-N over the full rates would make this
        // run long.
        let faults = ImpairConfig {
            drop: 0.01,
            duplicate: 0.01,
            reorder: 0.01,
            ..sim::testing::lossy()
        };
        let options = Options {
            blksize: Some(8),
            windowsize: Some(16),
            ..Options::default()
        };
        let seed = 1;
        for put in [false, true] {
            match lossy(528_000, put, options, faults, seed) {
                Ok(r) => assert!(r.up.dropped + r.down.dropped > 0, "{r:?}"),
                Err(e) => panic!("put {put} seed {seed}: {e}"),
            }
        }
    }

    #[test]
    fn rrq_without_options_every_boundary_size() {
        for len in [0usize, 1, 511, 512, 513, 1024, 100_000] {
            let files = MemoryFiles::default();
            files.insert("f", bytes(len));
            let (outcome, got, pair) = get(
                &files,
                "f",
                Options::default(),
                TftpConfig::default(),
                |_, _| false,
            );
            assert!(
                matches!(outcome, Some(Ok(Done { bytes, blksize: 512, windowsize: 1, .. })) if bytes == len as u64),
                "{len}: {outcome:?}"
            );
            assert_eq!(got.unwrap(), bytes(len), "{len}");
            // A multiple of 512 ends with an empty block.
            let last = pair.to_client_log.last().unwrap();
            assert_eq!(
                last.len() - 4,
                len % 512,
                "{len}: the short (or empty) last block"
            );
        }
    }

    #[test]
    fn a_download_learns_its_size_from_the_oack() {
        let files = MemoryFiles::default();
        files.insert("f", bytes(5_000));
        for (tsize, total) in [(Some(0), Some(5_000)), (None, None)] {
            let progress = Progress::new();
            let (sink, _) = MemorySink::new();
            let options = Options {
                tsize,
                ..Options::default()
            };
            let c = TftpClient::get(
                listener(),
                "f",
                Mode::Octet,
                options,
                Box::new(sink),
                Duration::from_secs(1),
                5,
                OutcomeSlot::new(),
            )
            .with_progress(progress.clone());
            simulate(
                c,
                &files,
                TftpConfig::default(),
                sim::Config::default(),
                |_, _| false,
            );
            assert_eq!(
                (progress.get(), progress.total()),
                (5_000, total),
                "{tsize:?}"
            );
        }
    }

    #[test]
    fn options_are_granted_within_limits_and_no_data_before_ack_0() {
        let files = MemoryFiles::default();
        files.insert("f", bytes(50_000));
        let asked = Options {
            blksize: Some(65_464),
            windowsize: Some(1_000),
            tsize: Some(0),
            ..Options::default()
        };
        let (outcome, got, pair) = get(&files, "f", asked, TftpConfig::default(), |_, _| false);
        let oack = Packet::parse(&pair.to_client_log[0]).unwrap();
        let Packet::Oack { options } = oack else {
            panic!("{oack}")
        };
        assert_eq!(
            (options.blksize, options.windowsize, options.tsize),
            (Some(1468), Some(64), Some(50_000))
        );
        assert_eq!(
            options.timeout, None,
            "never an option the client did not ask for"
        );
        assert!(matches!(
            Packet::parse(&pair.to_client_log[1]),
            Ok(Packet::Data {
                block: Block(1),
                ..
            })
        ));
        assert!(matches!(
            outcome,
            Some(Ok(Done {
                blksize: 1468,
                windowsize: 64,
                ..
            }))
        ));
        assert_eq!(got.unwrap(), bytes(50_000));
    }

    #[test]
    fn a_lost_ack_0_makes_the_server_resend_its_oack_exactly_at_the_timeout() {
        let files = MemoryFiles::default();
        files.insert("f", bytes(100));
        let mut dropped = false;
        let asked = Options {
            blksize: Some(1024),
            ..Options::default()
        };
        let (outcome, got, pair) = get(
            &files,
            "f",
            asked,
            TftpConfig::default(),
            move |to_server, d| {
                let ack0 = to_server && d == b"\x00\x04\x00\x00";
                let first = ack0 && !dropped;
                dropped |= ack0;
                first
            },
        );
        assert!(matches!(outcome, Some(Ok(Done { .. }))), "{outcome:?}");
        assert_eq!(got.unwrap(), bytes(100));
        let oacks = pair
            .to_client_log
            .iter()
            .filter(|d| d.starts_with(b"\x00\x06"))
            .count();
        assert!(oacks >= 2, "the OACK went again");
    }

    #[test]
    fn windows_survive_loss_both_ways() {
        for window in [1u16, 4, 16] {
            let files = MemoryFiles::default();
            files.insert("f", bytes(200_000));
            let mut n = 0usize;
            let asked = Options {
                blksize: Some(1024),
                windowsize: Some(window),
                ..Options::default()
            };
            let (outcome, got, _) = get(&files, "f", asked, TftpConfig::default(), move |_, _| {
                n += 1;
                n.is_multiple_of(9)
            });
            assert!(
                matches!(outcome, Some(Ok(Done { .. }))),
                "window {window}: {outcome:?}"
            );
            assert_eq!(got.unwrap(), bytes(200_000), "window {window}");
            let mut m = 0usize;
            let outcome = put(
                &files,
                &format!("up{window}"),
                bytes(150_000),
                asked,
                move |_, _| {
                    m += 1;
                    m.is_multiple_of(7)
                },
            );
            assert!(
                matches!(outcome, Some(Ok(Done { retransmissions, .. })) if retransmissions > 0),
                "put window {window}: lost blocks went again: {outcome:?}"
            );
            assert_eq!(files.get(&format!("up{window}")).unwrap(), bytes(150_000));
        }
    }

    #[test]
    fn block_numbers_roll_over_in_a_long_transfer() {
        // 8-byte blocks: 75 000 blocks, past 65 535, in little memory.
        let files = MemoryFiles::default();
        files.insert("f", bytes(600_000));
        let asked = Options {
            blksize: Some(8),
            windowsize: Some(32),
            ..Options::default()
        };
        let (outcome, got, pair) = get(&files, "f", asked, TftpConfig::default(), |_, _| false);
        assert!(
            matches!(outcome, Some(Ok(Done { blksize: 8, .. }))),
            "{outcome:?}"
        );
        assert_eq!(got.unwrap(), bytes(600_000));
        let zero = pair
            .to_client_log
            .iter()
            .any(|d| d.starts_with(b"\x00\x03\x00\x00"));
        assert!(zero, "block 65536 travelled as block 0");
    }

    #[test]
    fn a_lost_final_ack_does_not_wedge_the_server() {
        let files = MemoryFiles::default();
        files.insert("f", bytes(1_000));
        let (outcome, got, pair) = get(
            &files,
            "f",
            Options::default(),
            TftpConfig::default(),
            |to_server, d| {
                // The client's ACK of the last block (2) never arrives.
                to_server && d == b"\x00\x04\x00\x02"
            },
        );
        assert!(matches!(outcome, Some(Ok(Done { .. }))));
        assert_eq!(got.unwrap(), bytes(1_000));
        assert_eq!(
            pair.report.server_sessions_open, 0,
            "the server gave up and closed"
        );
        assert!(
            pair.report.ended_at <= Instant::from_secs(6),
            "within its retry budget: {}",
            pair.report.ended_at
        );
    }

    #[test]
    fn refusals() {
        let files = MemoryFiles::default();
        files.insert("there", b"x".to_vec());
        let (outcome, _, _) = get(
            &files,
            "missing",
            Options::default(),
            TftpConfig::default(),
            |_, _| false,
        );
        assert_eq!(outcome, Some(refused(1, "File not found")));
        let outcome = put(
            &files,
            "there",
            b"y".to_vec(),
            Options::default(),
            |_, _| false,
        );
        assert_eq!(outcome, Some(refused(6, "File already exists")));
        let outcome = put(&files, "../x", b"y".to_vec(), Options::default(), |_, _| {
            false
        });
        assert_eq!(outcome, Some(refused(2, "Access violation")));
    }

    #[test]
    fn block_numbers_roll_over_to_zero_and_back() {
        assert_eq!(Block(1).index_near(1), 1);
        assert_eq!(Block(65_535).index_near(65_535), 65_535);
        assert_eq!(Block(0).index_near(65_535), 65_536, "after 65535 comes 0");
        assert_eq!(Block(0).index_near(65_536), 65_536);
        assert_eq!(
            Block(65_535).index_near(65_536),
            65_535,
            "one behind, across the wrap"
        );
        assert_eq!(Block(5).index_near(65_540), 65_541);
        assert_eq!(Block(3).index_near(131_072 + 1), 131_075);
        assert_eq!(Block(0).index_near(1), 0, "block 0 before block 1");
    }
}
