//! The simulator's own tests: scripted sessions whose every datagram and
//! deadline is known, so each rule of the world is checked exactly.

use super::*;
use crate::proto::proxy::impair::{ConfigError, ImpairConfig};
use crate::proto::{
    Admission, CloseReason, Context, DatagramAcceptor, DatagramInput, DatagramSession, Driven,
    Transmit,
};
use crate::time::{Duration, Instant};
use bytes::BytesMut;
use core::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

const MS: Duration = Duration::from_millis(1);

type Heard = Rc<RefCell<Vec<(Instant, SocketAddr, Vec<u8>)>>>;

/// Sends `count` numbered datagrams at once, records every answer,
/// and closes `Completed` once it has `count` answers, or `TimedOut`
/// at `give_up_at`.
struct Pinger {
    count: u32,
    sent: u32,
    heard: Heard,
    give_up_at: Instant,
    close: Option<CloseReason>,
}

impl Pinger {
    fn boxed(count: u32, give_up_at: Instant) -> (Box<dyn DatagramSession>, Heard) {
        let heard = Heard::default();
        let p = Self {
            count,
            sent: 0,
            heard: heard.clone(),
            give_up_at,
            close: None,
        };
        (Box::new(p), heard)
    }
}

impl Driven for Pinger {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if cx.now >= self.give_up_at {
            self.close.get_or_insert(CloseReason::TimedOut { tries: 1 });
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.close.is_none().then_some(self.give_up_at)
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl DatagramSession for Pinger {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        if let DatagramInput::Datagram { from, payload, .. } = input {
            let mut heard = self.heard.borrow_mut();
            heard.push((cx.now, from, payload.to_vec()));
            if heard.len() >= self.count as usize {
                self.close.get_or_insert(CloseReason::Completed);
            }
        }
    }

    fn poll_transmit(
        &mut self,
        _cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        if self.sent >= self.count {
            return None;
        }
        buf.extend_from_slice(&self.sent.to_be_bytes());
        self.sent += 1;
        Some(Transmit::new(None, 4))
    }
}

/// Answers every datagram with the same bytes, to whoever sent it.
#[derive(Default)]
struct Echo {
    out: Vec<(SocketAddr, Vec<u8>)>,
    close_after: Option<usize>,
    answered: usize,
    close: Option<CloseReason>,
}

impl Driven for Echo {
    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl DatagramSession for Echo {
    fn handle_input(&mut self, _cx: &mut Context, input: DatagramInput<'_>) {
        if let DatagramInput::Datagram { from, payload, .. } = input {
            self.out.push((from, payload.to_vec()));
        }
    }

    fn poll_transmit(
        &mut self,
        _cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        if self.out.is_empty() {
            return None;
        }
        let (to, d) = self.out.remove(0);
        buf.extend_from_slice(&d);
        self.answered += 1;
        if self.close_after == Some(self.answered) {
            self.close = Some(CloseReason::Completed);
        }
        // Half the answers name their destination, half rely on the
        // socket's peer: both routes must reach the client.
        let to = self.answered.is_multiple_of(2).then_some(to);
        Some(Transmit::new(to, d.len()))
    }
}

/// Admits every datagram the same way.
struct Admit(fn() -> Option<Box<dyn DatagramSession>>, bool, u32);

impl Driven for Admit {}

impl DatagramAcceptor for Admit {
    fn accept(
        &mut self,
        _cx: &mut Context,
        _from: SocketAddr,
        payload: &[u8],
        reply: &mut BytesMut,
    ) -> Admission {
        self.2 += 1;
        match (self.0)() {
            Some(s) if self.1 => Admission::own_socket(s),
            Some(s) => Admission::shared(s),
            None => {
                reply.extend_from_slice(payload);
                Admission::Reply
            }
        }
    }
}

#[expect(
    clippy::unnecessary_wraps,
    reason = "an `Admit` factory; `None` replies statelessly"
)]
fn echo() -> Option<Box<dyn DatagramSession>> {
    Some(Box::new(Echo::default()))
}

#[expect(
    clippy::unnecessary_wraps,
    reason = "an `Admit` factory; `None` replies statelessly"
)]
fn echo_once() -> Option<Box<dyn DatagramSession>> {
    Some(Box::new(Echo {
        close_after: Some(1),
        ..Echo::default()
    }))
}

fn latency(ms: u64) -> ImpairConfig {
    ImpairConfig {
        latency: Duration::from_millis(ms),
        ..ImpairConfig::default()
    }
}

#[test]
fn a_perfect_link_delivers_in_order_after_exactly_its_latency() {
    let (client, heard) = Pinger::boxed(50, Instant::from_secs(10));
    let config = Config {
        up: latency(7),
        down: latency(3),
        trace: true,
        ..Config::default()
    };
    let server = Server::Session(Box::new(Echo::default()));
    let mut world = World::new(config.clone(), client, server).unwrap();
    let report = world.run().unwrap();
    assert_eq!(report.outcome, CloseReason::Completed);
    assert_eq!(report.elapsed, 10 * MS);
    let heard = heard.borrow();
    let numbers: Vec<u32> = heard
        .iter()
        .map(|(_, _, d)| u32::from_be_bytes(d[..4].try_into().unwrap()))
        .collect();
    assert_eq!(numbers, (0..50).collect::<Vec<_>>(), "in order");
    assert!(
        heard
            .iter()
            .all(|&(at, from, _)| { at == Instant::ZERO + 10 * MS && from == config.server })
    );
    // Every upward datagram came out exactly 7 ms after it went in.
    assert!(
        world
            .trace()
            .iter()
            .filter(|d| d.dir == Dir::Up)
            .all(|d| d.at == Instant::ZERO + 7 * MS && d.delivered)
    );
    assert_eq!(
        report.sent,
        PerSide {
            client: 50,
            server: 50
        }
    );
    assert_eq!((report.up.offered, report.up.forwarded), (50, 50));
    assert_eq!((report.down.offered, report.down.dropped), (50, 0));
    // 50 releases each way; the client closed on the last one.
    assert_eq!(report.steps, 100);
    assert_eq!(report.undeliverable, 0);
    assert_eq!(report.server_sessions_open, 1, "the echo never closes");
}

#[test]
fn a_zero_timer_re_armed_forever_trips_the_step_bound() {
    /// Always due, never done.
    struct Spinner;
    impl Driven for Spinner {
        fn poll_timeout(&self) -> Option<Instant> {
            Some(Instant::ZERO)
        }
    }
    impl DatagramSession for Spinner {
        fn handle_input(&mut self, _cx: &mut Context, _input: DatagramInput<'_>) {}
        fn poll_transmit(
            &mut self,
            _cx: &mut Context,
            _limit: usize,
            _buf: &mut BytesMut,
        ) -> Option<Transmit> {
            None
        }
    }
    let config = Config {
        max_steps: 1_000,
        ..Config::default()
    };
    let server = Server::Session(Box::new(Echo::default()));
    let mut world = World::new(config, Box::new(Spinner), server).unwrap();
    let err = world.run().unwrap_err();
    assert_eq!(
        err,
        SimError::StepLimit {
            steps: 1_000,
            now: Instant::ZERO
        }
    );
    assert!(err.to_string().contains("livelock"), "{err}");
}

#[test]
fn a_client_with_nothing_left_to_wait_for_is_stalled_not_hung() {
    /// Sends once and waits without a deadline.
    struct Silent(bool);
    impl Driven for Silent {}
    impl DatagramSession for Silent {
        fn handle_input(&mut self, _cx: &mut Context, _input: DatagramInput<'_>) {}
        fn poll_transmit(
            &mut self,
            _cx: &mut Context,
            _limit: usize,
            buf: &mut BytesMut,
        ) -> Option<Transmit> {
            core::mem::replace(&mut self.0, false).then(|| {
                buf.extend_from_slice(b"x");
                Transmit::new(None, 1)
            })
        }
    }

    // It sends one datagram, loses it, and has no timer to retry.
    let (client, _) = Pinger::boxed(1, Instant::MAX);
    let config = Config::symmetric(
        3,
        ImpairConfig {
            drop: 1.0,
            ..ImpairConfig::default()
        },
    );
    let server = Server::Session(Box::new(Echo::default()));
    let mut world = World::new(config, client, server).unwrap();
    // Its deadline is the end of time: one step reaches it and it gives
    // up, so the run ends rather than stalls.
    let report = world.run().unwrap();
    assert_eq!(report.outcome, CloseReason::TimedOut { tries: 1 });
    assert_eq!(report.up.dropped, 1);

    let config = Config {
        up: latency(5),
        ..Config::default()
    };
    let server = Server::Session(Box::new(Echo::default()));
    let mut world = World::new(config, Box::new(Silent(true)), server).unwrap();
    let err = world.run().unwrap_err();
    assert_eq!(
        err,
        SimError::Stalled {
            now: Instant::ZERO + 5 * MS
        }
    );
}

/// A lossy run of 300 pings, with its trace.
fn lossy_run(seed: u64) -> (Vec<Delivery>, Report) {
    let (client, _) = Pinger::boxed(300, Instant::from_secs(5));
    let link = ImpairConfig {
        latency: 10 * MS,
        rate_bytes_per_sec: Some(100_000),
        drop: 0.1,
        duplicate: 0.1,
        reorder: 0.2,
        reorder_max: 50 * MS,
        ..ImpairConfig::default()
    };
    let config = Config {
        trace: true,
        ..Config::symmetric(seed, link)
    };
    let server = Server::Acceptor(Box::new(Admit(echo, false, 0)));
    let mut world = World::new(config, client, server).unwrap();
    let report = world.run().unwrap();
    (world.trace().to_vec(), report)
}

#[test]
fn the_same_seed_replays_the_same_run_and_another_seed_does_not() {
    let (a, ra) = lossy_run(11);
    let (b, rb) = lossy_run(11);
    assert!(a.len() > 300, "{}", a.len());
    assert_eq!(a, b);
    assert_eq!(ra, rb);
    let (c, rc) = lossy_run(12);
    assert_ne!(a, c);
    assert_ne!(ra.up, rc.up);
    // Each direction draws its own decisions from the one seed.
    assert_ne!(
        (ra.up.dropped, ra.up.duplicated, ra.up.reordered),
        (ra.down.dropped, ra.down.duplicated, ra.down.reordered)
    );
    assert!(ra.up.dropped > 0 && ra.up.duplicated > 0 && ra.up.reordered > 0);
    // Time only moves forward.
    assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
}

#[test]
fn admission_follows_the_reactor() {
    let run = |acceptor: Admit| {
        let (client, heard) = Pinger::boxed(3, Instant::from_secs(1));
        let server = Server::Acceptor(Box::new(acceptor));
        let mut world = World::new(Config::default(), client, server).unwrap();
        let report = world.run().unwrap();
        let heard = heard.borrow().clone();
        (report, heard)
    };
    let server = Config::default().server;

    // Shared: one session for the peer, answers from the server's address.
    let (report, heard) = run(Admit(echo, false, 0));
    assert_eq!(report.admitted, 1);
    assert_eq!(heard.len(), 3);
    assert!(heard.iter().all(|(_, from, _)| *from == server));

    // Stateless replies: no session at all.
    let (report, heard) = run(Admit(|| None, false, 0));
    assert_eq!((report.admitted, heard.len()), (0, 3));
    assert_eq!(report.server_sessions_open, 0);

    // Own socket: answers come from a new port on the server's host.
    // Every ping went to the server's address, so each one is first
    // contact there and gets a session (and port) of its own.
    let (report, heard) = run(Admit(echo, true, 0));
    assert_eq!(report.admitted, 3);
    let froms: Vec<SocketAddr> = heard.iter().map(|(_, f, _)| *f).collect();
    assert!(froms.iter().all(|f| f.ip() == server.ip() && *f != server));
    assert_eq!(
        froms
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3
    );

    // A shared session that closes gives its peer back to the acceptor.
    let (report, heard) = run(Admit(echo_once, false, 0));
    assert_eq!((report.admitted, heard.len()), (3, 3));
    assert_eq!(report.server_sessions_open, 0);
}

#[test]
fn datagrams_to_closed_or_unknown_sockets_vanish_and_are_counted() {
    // The client gives up at 5 ms; the echoes arrive at 20 ms.
    let (client, heard) = Pinger::boxed(4, Instant::from_millis(5));
    let config = Config::symmetric(0, latency(10));
    let server = Server::Session(Box::new(Echo::default()));
    let mut world = World::new(config, client, server).unwrap();
    let report = world.run().unwrap();
    assert_eq!(report.outcome, CloseReason::TimedOut { tries: 1 });
    assert_eq!(report.elapsed, 5 * MS);
    assert!(heard.borrow().is_empty());
    assert_eq!(report.undeliverable, 4);
    assert_eq!(report.ended_at, Instant::ZERO + 20 * MS, "settled");

    // Without settling the run stops at the client's close.
    let (client, _) = Pinger::boxed(4, Instant::from_millis(5));
    let config = Config {
        settle: false,
        ..Config::symmetric(0, latency(10))
    };
    let server = Server::Session(Box::new(Echo::default()));
    let report = World::new(config, client, server).unwrap().run().unwrap();
    assert_eq!(report.ended_at, Instant::ZERO + 5 * MS);
}

#[test]
fn a_scripted_loss_is_applied_before_the_link() {
    let (client, heard) = Pinger::boxed(10, Instant::from_secs(1));
    let server = Server::Session(Box::new(Echo::default()));
    let world = World::new(Config::default(), client, server).unwrap();
    let mut world = world.with_loss(|dir, n, _| dir == Dir::Up && n % 2 == 0);
    let report = world.run().unwrap();
    assert_eq!(report.outcome, CloseReason::TimedOut { tries: 1 });
    assert_eq!(
        report.scripted_drops,
        PerSide {
            client: 5,
            server: 0
        }
    );
    assert_eq!(report.up.offered, 5);
    let numbers: Vec<u32> = heard
        .borrow()
        .iter()
        .map(|(_, _, d)| u32::from_be_bytes(d[..4].try_into().unwrap()))
        .collect();
    assert_eq!(numbers, [0, 2, 4, 6, 8], "the 2nd, 4th, … were lost");
}

#[test]
fn bad_link_configurations_are_errors() {
    let (client, _) = Pinger::boxed(1, Instant::from_secs(1));
    let config = Config {
        down: ImpairConfig {
            drop: 2.0,
            ..ImpairConfig::default()
        },
        ..Config::default()
    };
    let server = Server::Session(Box::new(Echo::default()));
    let err = World::new(config, client, server).unwrap_err();
    assert_eq!(
        err,
        SimError::Config {
            dir: Dir::Down,
            error: ConfigError::Probability { field: "drop" }
        }
    );
    assert!(err.to_string().starts_with("Down link"), "{err}");
}

#[test]
fn link_seeds_are_distinct_per_direction_and_run() {
    let seeds: std::collections::BTreeSet<u64> = (0..100)
        .flat_map(|s| [crate::rng::mix(s, 1), crate::rng::mix(s, 2)])
        .collect();
    assert_eq!(seeds.len(), 200);
}

#[test]
fn a_burst_beyond_the_send_budget_goes_out_in_later_steps_at_the_same_instant() {
    let (client, heard) = Pinger::boxed(2_500, Instant::from_secs(1));
    let config = Config {
        up: latency(1),
        down: latency(1),
        trace: true,
        ..Config::default()
    };
    let server = Server::Session(Box::new(Echo::default()));
    let mut world = World::new(config, client, server).unwrap();
    let report = world.run().unwrap();
    assert_eq!(report.outcome, CloseReason::Completed);
    assert_eq!(report.sent.client, 2_500);
    // 1024 + 1024 + 452: two more steps of the client's flush, at zero.
    assert_eq!(report.steps, 2 * 2_500 + 2);
    assert!(
        world
            .trace()
            .iter()
            .filter(|d| d.dir == Dir::Up)
            .all(|d| d.at == Instant::ZERO + MS)
    );
    assert_eq!(heard.borrow().len(), 2_500);
    assert_eq!(report.elapsed, 2 * MS);
}

/// Sends `count` datagrams of `size` bytes at once, does not want input
/// until `wake_at`, and closes `Completed` at `give_up_at`.
struct Sleepy {
    count: u32,
    size: usize,
    wake_at: Instant,
    give_up_at: Instant,
    awake: bool,
    heard: Heard,
    close: Option<CloseReason>,
}

impl Driven for Sleepy {
    fn handle_timeout(&mut self, cx: &mut Context) {
        self.awake |= cx.now >= self.wake_at;
        if cx.now >= self.give_up_at {
            self.close.get_or_insert(CloseReason::Completed);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.awake, &self.close) {
            (_, Some(_)) => None,
            (false, None) => Some(self.wake_at),
            (true, None) => Some(self.give_up_at),
        }
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }

    fn wants_input(&self) -> bool {
        self.awake
    }
}

impl DatagramSession for Sleepy {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        assert!(self.awake, "input while it did not want any");
        if let DatagramInput::Datagram { from, payload, .. } = input {
            self.heard
                .borrow_mut()
                .push((cx.now, from, payload.to_vec()));
        }
    }

    fn poll_transmit(
        &mut self,
        _cx: &mut Context,
        _limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        if self.count == 0 {
            return None;
        }
        self.count -= 1;
        buf.resize(self.size, 7);
        Some(Transmit::new(None, self.size))
    }
}

#[test]
fn a_session_that_wants_no_input_gets_it_later_and_a_full_socket_drops() {
    let heard = Heard::default();
    let client = Box::new(Sleepy {
        count: 300,
        size: 1_000,
        wake_at: Instant::from_millis(50),
        give_up_at: Instant::from_millis(100),
        awake: false,
        heard: heard.clone(),
        close: None,
    });
    let config = Config {
        trace: true,
        ..Config::symmetric(0, latency(10))
    };
    let server = Server::Session(Box::new(Echo::default()));
    let mut world = World::new(config, client, server).unwrap();
    let report = world.run().unwrap();
    assert_eq!(report.outcome, CloseReason::Completed);
    // The answers arrived at 20 ms into a socket buffer of 212 992 bytes:
    // 212 of 1000 bytes fit, the rest was dropped, and what was held was
    // handed over once the client wanted input again, in order.
    assert_eq!(
        report.buffer_drops,
        PerSide {
            client: 88,
            server: 0
        }
    );
    assert_eq!(report.undeliverable, 0);
    let heard = heard.borrow();
    assert_eq!(heard.len(), 212);
    assert!(
        heard
            .iter()
            .all(|(at, _, _)| *at == Instant::from_millis(50))
    );
    let down: Vec<&Delivery> = world
        .trace()
        .iter()
        .filter(|d| d.dir == Dir::Down)
        .collect();
    assert_eq!(down.len(), 300);
    assert_eq!(down.iter().filter(|d| !d.delivered).count(), 88);
    assert!(down[..212].iter().all(|d| d.delivered));
}
