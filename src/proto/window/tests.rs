//! The engine over the UDP carrier in the deterministic simulator: tcpfile
//! GET and PUT between a [`Carried`] client and a [`WindowAcceptor`], over
//! seeded impaired links, byte-exact and never stuck; and what the
//! acceptor answers to strangers.

use super::*;
use crate::proto::data::{MemoryFiles, MemorySink};
use crate::proto::outcome::{OutcomeSlot, Progress};
use crate::proto::proxy::impair::ImpairConfig;
use crate::proto::tcpfile::{self, TcpFileAcceptor};
use crate::sim::{self, Server, World};
use crate::time::Duration;

const KEY: [u8; 16] = *b"window-sim-key!!";

#[expect(
    clippy::cast_possible_truncation,
    reason = "a test pattern: the low byte is the point"
)]
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2_654_435_761) ^ seed) as u8)
        .collect()
}

fn acceptor(files: &MemoryFiles) -> WindowAcceptor {
    let app = TcpFileAcceptor::new(Rc::new(files.clone())).with_zero_copy(false);
    WindowAcceptor::new(
        sim::Config::default().server,
        Box::new(app),
        WindowConfig::default(),
        KEY,
    )
}

fn client(app: Box<dyn StreamSession>) -> Carried {
    let c = sim::Config::default();
    Carried::connect(WindowConfig::default().tcp, c.client, c.server, KEY, app)
}

fn link(drop: f64, dup: f64, reorder: f64) -> ImpairConfig {
    ImpairConfig {
        latency: Duration::from_millis(5),
        rate_bytes_per_sec: Some(12_500_000),
        queue_bytes: Some(256 * 1024),
        drop,
        duplicate: dup,
        reorder,
        reorder_max: Duration::from_millis(8),
        ..ImpairConfig::default()
    }
}

/// A GET of `len` bytes over links `l`: what the client committed.
fn get(len: usize, seed: u64, l: ImpairConfig) -> (Option<Vec<u8>>, sim::Report, Vec<u8>) {
    let files = MemoryFiles::default();
    let data = bytes(len, seed);
    files.insert("f", data.clone());
    let (sink, committed) = MemorySink::new();
    let slot = OutcomeSlot::new();
    let app = tcpfile::GetClient::new(
        "f",
        Box::new(sink),
        Duration::from_secs(30),
        slot,
        Progress::new(),
    );
    let mut world = World::new(
        sim::Config::symmetric(seed, l),
        Box::new(client(Box::new(app))),
        Server::Acceptor(Box::new(acceptor(&files))),
    )
    .unwrap();
    let report = world.run().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let got = committed.borrow().clone();
    (got, report, data)
}

#[test]
fn a_get_over_a_clean_link_is_exact() {
    for len in [0, 1, 1452, 1453, 100_000] {
        let (got, report, data) = get(len, 1, link(0.0, 0.0, 0.0));
        assert_eq!(got.as_deref(), Some(&data[..]), "{len} bytes: {report:?}");
    }
}

#[test]
fn gets_over_lossy_duplicating_reordering_links_are_exact() {
    for (drop, seeds) in [(0.01, 20), (0.05, 20), (0.2, 5)] {
        for seed in 0..seeds {
            let (got, report, data) = get(60_000, seed, link(drop, 0.02, 0.05));
            assert_eq!(
                got.as_deref(),
                Some(&data[..]),
                "drop {drop} seed {seed}: {report:?}"
            );
        }
    }
}

#[test]
fn a_put_over_a_lossy_link_is_committed_exact() {
    for seed in 0..10 {
        let files = MemoryFiles::default();
        let data = bytes(50_000, seed);
        let slot = OutcomeSlot::new();
        let app = tcpfile::PutClient::new(
            "up",
            Box::new(crate::proto::data::MemorySource::new(data.clone())),
            data.len() as u64,
            Duration::from_secs(30),
            slot.clone(),
            Progress::new(),
        );
        let mut world = World::new(
            sim::Config::symmetric(seed, link(0.05, 0.02, 0.05)),
            Box::new(client(Box::new(app))),
            Server::Acceptor(Box::new(acceptor(&files))),
        )
        .unwrap();
        let report = world.run().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(
            files.get("up").as_deref(),
            Some(&data[..]),
            "seed {seed}: {report:?}"
        );
        assert!(slot.take().is_some_and(|o| o.is_ok()), "seed {seed}");
    }
}

#[test]
fn a_stranger_gets_a_reset_and_garbage_gets_nothing() {
    let files = MemoryFiles::default();
    let mut a = acceptor(&files);
    let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut cx = crate::proto::testing::cx(Instant::ZERO, Some(from));
    let mut reply = BytesMut::new();
    // An ACK for no connection: a RST.
    let ack = Repr {
        src_port: 1,
        dst_port: 2,
        control: Control::None,
        seq_number: crate::wire::tcp::SeqNumber(100),
        ack_number: Some(crate::wire::tcp::SeqNumber(200)),
        window_len: 1000,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let mut seg = vec![0; ack.buffer_len()];
    ack.emit(&mut Packet::new_unchecked(&mut seg[..]));
    assert!(matches!(
        a.accept(&mut cx, from, &seg, &mut reply),
        Admission::Reply
    ));
    let rst = Repr::parse(&Packet::new_checked(&reply[..]).unwrap()).unwrap();
    assert_eq!(rst.control, Control::Rst);
    assert_eq!(rst.seq_number, crate::wire::tcp::SeqNumber(200));
    // A RST is never answered; neither is what is not a segment.
    reply.clear();
    let mut rst_bytes = reply.to_vec();
    rst_bytes.clear();
    let mut r = ack;
    r.control = Control::Rst;
    let mut seg = vec![0; r.buffer_len()];
    r.emit(&mut Packet::new_unchecked(&mut seg[..]));
    assert!(matches!(
        a.accept(&mut cx, from, &seg, &mut reply),
        Admission::Ignore
    ));
    assert!(matches!(
        a.accept(&mut cx, from, b"hello", &mut reply),
        Admission::Ignore
    ));
}

#[test]
fn room_is_made_from_the_oldest_half_open_or_time_wait_never_established() {
    let mut t = Table::default();
    // Three half-open (1, 2, 3) at a bound of 3: the oldest goes.
    for key in 1..=3 {
        t.half_open.insert(key);
        t.open += 1;
    }
    assert!(t.make_room(3, 100));
    assert_eq!(t.evicted, [1]);
    // Key 2 completed its handshake: never a victim.
    t.half_open.remove(2);
    t.ended(1);
    // At the connection cap, TIME-WAIT goes before half-open.
    t.time_wait.insert(7);
    t.open = 10;
    assert!(t.make_room(3, 10));
    assert_eq!(t.evicted, [1, 7]);
    assert!(t.make_room(3, 10));
    assert_eq!(t.evicted, [1, 7, 3]);
    // Only established connections left: no room.
    assert!(!t.make_room(3, 10));
    assert_eq!(t.evicted, [1, 7, 3]);
}
