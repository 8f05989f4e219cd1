//! One client's path through the impairment proxy, and the acceptor that
//! gives each new client one.
//!
//! Owns the per-client mapping: the client's address, the server address
//! it is talking to (which may move, as a TFTP server's does when it
//! answers from a new transfer ID), one [`Impairment`] per direction, and
//! the idle timer that ends a mapping nobody uses. A flow is an ordinary
//! two-endpoint session: its home endpoint ([`EndpointId::HOME`]) is the
//! proxy's listening socket, shared with every other client, towards its
//! client; [`UPSTREAM_END`] is an ephemeral socket of its own towards the
//! server, which the admission asks for (`Admit::bind`). The endpoint a
//! datagram arrived on says which way it travels.
//!
//! It must never touch either socket or read the clock: datagrams arrive as
//! `DatagramInput::Datagram`, leave as transmits, and every release is a
//! deadline. What all flows did adds up in the acceptor's [`SharedTotals`].

use super::impair::{ConfigError, Counters, ImpairConfig, Impairment, Verdict};
use super::{SharedTotals, Totals};
use crate::proto::{
    Admission, Admit, CloseReason, Context, DatagramAcceptor, DatagramInput, DatagramSession,
    Driven, EndpointId, Transmit, Wake,
};
use crate::time::{Duration, Instant, duration_nanos};
use bytes::{Bytes, BytesMut};
use log::debug;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// A flow's own socket, towards the server.
pub const UPSTREAM_END: EndpointId = EndpointId(1);

/// Everything the proxy needs to know.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxyConfig {
    /// Where the server is. Replies are accepted from this IP address on
    /// any port (a TFTP server answers from a new one).
    pub upstream: SocketAddr,
    /// What happens to datagrams from clients to the server.
    pub to_server: ImpairConfig,
    /// What happens to datagrams from the server to clients.
    pub to_client: ImpairConfig,
    /// A mapping with no datagram either way for this long is forgotten.
    pub idle: Duration,
    /// Most client mappings at once; datagrams from further clients are
    /// dropped until one idles out.
    pub max_clients: usize,
    /// Most bytes held (queued or in flight) by all mappings together;
    /// beyond it a datagram is dropped and counted as `overflow`.
    pub max_held_bytes: usize,
}

impl ProxyConfig {
    /// A proxy to `upstream` that impairs nothing, with the default bounds.
    pub fn transparent(upstream: SocketAddr) -> Self {
        Self {
            upstream,
            to_server: ImpairConfig::default(),
            to_client: ImpairConfig::default(),
            idle: Duration::from_secs(60),
            max_clients: 1024,
            max_held_bytes: 64 << 20,
        }
    }

    /// Checks both directions' settings.
    ///
    /// # Errors
    /// The first direction whose settings are wrong, and how.
    pub fn validate(&self) -> Result<(), (&'static str, ConfigError)> {
        self.to_server.validate().map_err(|e| ("to-server", e))?;
        self.to_client.validate().map_err(|e| ("to-client", e))?;
        Ok(())
    }
}

/// Which way a datagram travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    ToServer = 0,
    ToClient = 1,
}

/// Admits each new client address as a [`Flow`].
#[derive(Debug)]
pub struct ProxyAcceptor {
    config: ProxyConfig,
    /// Mappings opened so far: each gets seeds of its own, derived from
    /// the configured ones and this number, so a run is repeatable as long
    /// as the clients arrive in the same order.
    opened: u64,
    /// What every flow did; flows come and go, the report outlives them.
    totals: SharedTotals,
}

impl ProxyAcceptor {
    /// An acceptor for `config`, whose flows add up what they do in
    /// [`totals`](Self::totals).
    ///
    /// # Errors
    /// A probability or range in `config` is out of bounds.
    pub fn new(config: ProxyConfig) -> Result<Self, (&'static str, ConfigError)> {
        config.validate()?;
        Ok(Self {
            config,
            opened: 0,
            totals: SharedTotals::default(),
        })
    }

    /// The handle on what all flows did, and the bytes they hold now: keep
    /// a clone to read it after the acceptor went into the reactor.
    pub fn totals(&self) -> SharedTotals {
        self.totals.clone()
    }
}

/// No timers: each flow keeps its own.
impl Driven for ProxyAcceptor {}

impl DatagramAcceptor for ProxyAcceptor {
    fn accept(
        &mut self,
        cx: &mut Context,
        from: SocketAddr,
        _payload: &[u8],
        _reply: &mut BytesMut,
    ) -> Admission {
        // The server talking to the proxy's own port would make the proxy
        // relay to itself.
        if from == self.config.upstream {
            debug!("{} datagram from the upstream itself ignored", cx.tag);
            return Admission::Ignore;
        }
        let n = self.opened;
        self.opened += 1;
        let Ok(flow) = Flow::new(&self.config, from, n, self.totals.clone()) else {
            // Validated in `new`; a flow cannot fail to build.
            return Admission::Ignore;
        };
        let bind = if self.config.upstream.is_ipv4() {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
        };
        Admission::Start(Admit {
            session: Box::new(flow),
            own_socket: false,
            bind: vec![bind],
        })
    }

    fn max_sessions(&self) -> Option<usize> {
        Some(self.config.max_clients)
    }
}

/// The seed of one direction of one mapping: sub-stream `way` of
/// sub-stream `mapping` of the run's seed ([`crate::rng::mix`]), so
/// neighbouring mappings and the two directions draw unrelated decisions.
fn derive_seed(seed: u64, mapping: u64, way: Way) -> u64 {
    crate::rng::mix(crate::rng::mix(seed, mapping), way as u64)
}

/// One client's mapping. See the module docs.
#[derive(Debug)]
pub struct Flow {
    client: SocketAddr,
    /// The server address client datagrams go to: the upstream until the
    /// server first answers, then wherever that answer came from.
    server: SocketAddr,
    /// Whether the server has answered and so fixed `server`.
    locked: bool,
    upstream: SocketAddr,
    links: [Impairment<Bytes>; 2],
    /// What all flows of the acceptor did.
    totals: SharedTotals,
    /// Counter readings already added to the totals.
    reported: [Counters; 2],
    last_seen: Instant,
    /// The turn the last datagram arrived in: a copy due no later was never
    /// held, and its "lateness" would only measure the turn's own work.
    arrived_at: Instant,
    /// Whether the first datagram arrived (the reactor may still refuse a
    /// session the acceptor made, so mappings are counted here).
    started: bool,
    idle: Duration,
    max_held_bytes: usize,
    close: Option<CloseReason>,
}

impl Flow {
    fn new(
        config: &ProxyConfig,
        client: SocketAddr,
        mapping: u64,
        totals: SharedTotals,
    ) -> Result<Self, ConfigError> {
        let link = |c: ImpairConfig, way| {
            Impairment::new(ImpairConfig {
                seed: derive_seed(c.seed, mapping, way),
                ..c
            })
        };
        Ok(Self {
            client,
            server: config.upstream,
            locked: false,
            upstream: config.upstream,
            links: [
                link(config.to_server, Way::ToServer)?,
                link(config.to_client, Way::ToClient)?,
            ],
            totals,
            reported: [Counters::default(); 2],
            last_seen: Instant::ZERO,
            arrived_at: Instant::ZERO,
            started: false,
            idle: config.idle,
            max_held_bytes: config.max_held_bytes,
            close: None,
        })
    }

    /// Offers a datagram to one direction's link, within the byte bound.
    fn offer(&mut self, cx: &Context, way: Way, payload: &[u8]) {
        let mut totals = self.totals.borrow_mut();
        let len = payload.len();
        // Worst case: it is duplicated.
        if totals.held_bytes.saturating_add(2 * len) > self.max_held_bytes {
            totals.overflow[way as usize] += 1;
            return;
        }
        let verdict = self.links[way as usize].push(cx.now, Bytes::copy_from_slice(payload), len);
        if let Verdict::Accepted { copies } = verdict {
            totals.held_bytes += usize::from(copies) * len;
        }
    }

    /// Adds what the links did since the last call to the totals.
    fn report(&mut self) {
        let totals: &mut Totals = &mut self.totals.borrow_mut();
        for way in [Way::ToServer, Way::ToClient] {
            let i = way as usize;
            let now = self.links[i].counters();
            totals.links[i].add_progress(&now, &self.reported[i]);
            self.reported[i] = now;
        }
    }

    fn idle_deadline(&self) -> Instant {
        self.last_seen.saturating_add(self.idle)
    }

    fn next_release(&self) -> Option<Instant> {
        let [a, b] = [&self.links[0], &self.links[1]].map(Impairment::next_release);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Driven for Flow {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if self.close.is_none() && self.next_release().is_none() && cx.now >= self.idle_deadline() {
            self.totals.borrow_mut().mappings_idled += 1;
            self.close = Some(CloseReason::Completed);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.close.is_some() {
            return None;
        }
        Some(match self.next_release() {
            Some(release) => release.min(self.idle_deadline()),
            None => self.idle_deadline(),
        })
    }

    fn wake(&self) -> Wake {
        // A release is a promise about latency, kept to the microsecond;
        // the idle timer is not.
        if self.next_release().is_some() {
            Wake::Paced
        } else {
            Wake::Exact
        }
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl DatagramSession for Flow {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        let DatagramInput::Datagram {
            endpoint,
            from,
            payload,
            ..
        } = input
        else {
            return;
        };
        if !self.started {
            self.started = true;
            self.totals.borrow_mut().mappings_opened += 1;
        }
        self.arrived_at = cx.now;
        if endpoint == EndpointId::HOME && from == self.client {
            self.last_seen = cx.now;
            self.offer(cx, Way::ToServer, payload);
        } else if endpoint == UPSTREAM_END
            && from.ip() == self.upstream.ip()
            && (!self.locked || from == self.server || from == self.upstream)
        {
            // The first answer fixes where the client's datagrams go: a
            // TFTP server answers from a new port (its transfer ID). Later
            // answers from a third port are another transfer the server
            // started for a duplicated request; the client sees only the
            // proxy's one address, so it could not tell the two apart and
            // would be fed both. Those are dropped as strays, and that
            // second transfer times out on the server as it would have
            // had the client refused it (RFC 1350's ERROR 5).
            self.last_seen = cx.now;
            if !self.locked {
                self.locked = true;
                self.server = from;
            }
            self.offer(cx, Way::ToClient, payload);
        } else {
            self.totals.borrow_mut().strays += 1;
            debug!("{} stray datagram from {from} dropped", cx.tag);
        }
        self.report();
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        loop {
            // The earlier-due direction first, so neither starves the other.
            let due = |l: &Impairment<Bytes>| l.next_release().filter(|&t| t <= cx.now);
            let way = match (due(&self.links[0]), due(&self.links[1])) {
                (Some(a), Some(b)) if b < a => Way::ToClient,
                (Some(_), _) => Way::ToServer,
                (None, Some(_)) => Way::ToClient,
                (None, None) => return None,
            };
            let (due, datagram) = self.links[way as usize].poll_release_due(cx.now)?;
            let len = datagram.len();
            {
                let mut totals = self.totals.borrow_mut();
                if due > self.arrived_at {
                    totals
                        .lateness
                        .record(duration_nanos(cx.now.saturating_since(due)));
                }
                totals.held_bytes = totals.held_bytes.saturating_sub(len);
            }
            self.report();
            // Anything that arrived over UDP fits; never send a truncated
            // datagram if that ever changes.
            if len > limit {
                continue;
            }
            buf.extend_from_slice(&datagram);
            return Some(match way {
                Way::ToServer => Transmit::new(Some(self.server), len).via(UPSTREAM_END),
                Way::ToClient => Transmit::new(Some(self.client), len),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testing::{at, cx};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const CLIENT: &str = "127.0.0.1:40000";
    const UPSTREAM: &str = "127.0.0.1:50001";

    /// The first datagram from `from` at a fresh acceptor, and its totals.
    fn admit(config: &ProxyConfig, from: SocketAddr) -> (Admission, SharedTotals) {
        let mut acceptor = ProxyAcceptor::new(*config).unwrap();
        let admission = acceptor.accept(&mut cx(at(0), None), from, b"x", &mut BytesMut::new());
        (admission, acceptor.totals())
    }

    fn flow(config: &ProxyConfig) -> (Box<dyn DatagramSession>, SharedTotals) {
        match admit(config, addr(CLIENT)) {
            (
                Admission::Start(Admit {
                    session,
                    own_socket: false,
                    bind,
                }),
                totals,
            ) => {
                assert_eq!(bind, [addr("0.0.0.0:0")]);
                (session, totals)
            }
            (other, _) => panic!("{other:?}"),
        }
    }

    /// A datagram from `from`: the client's arrive on the proxy's shared
    /// socket, everyone else's on the flow's own.
    fn send(s: &mut dyn DatagramSession, now: Instant, from: &str, payload: &[u8]) {
        let endpoint = if from == CLIENT {
            EndpointId::HOME
        } else {
            UPSTREAM_END
        };
        arrive(s, now, endpoint, from, payload);
    }

    fn arrive(
        s: &mut dyn DatagramSession,
        now: Instant,
        endpoint: EndpointId,
        from: &str,
        payload: &[u8],
    ) {
        s.handle_input(
            &mut cx(now, None),
            DatagramInput::Datagram {
                endpoint,
                from: addr(from),
                payload,
                kernel_ns: None,
            },
        );
    }

    /// Every datagram due at `now`: (destination, bytes). Checks that each
    /// leaves by the endpoint of its direction.
    fn out(s: &mut dyn DatagramSession, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut v = Vec::new();
        loop {
            let mut buf = BytesMut::new();
            let Some(t) = s.poll_transmit(&mut cx(now, None), 65_507, &mut buf) else {
                return v;
            };
            assert_eq!(t.len, buf.len());
            let to = t.to.unwrap();
            let towards_client = to == addr(CLIENT);
            let home = t.endpoint == EndpointId::HOME;
            assert!(
                towards_client == home,
                "{to} by {:?}: the client by the shared socket, the server by the own one",
                t.endpoint
            );
            if !home {
                assert_eq!(t.endpoint, UPSTREAM_END);
            }
            v.push((to, buf.to_vec()));
        }
    }

    #[test]
    fn the_upstream_itself_is_never_admitted_and_mappings_are_bounded() {
        let config = ProxyConfig {
            max_clients: 7,
            ..ProxyConfig::transparent(addr(UPSTREAM))
        };
        assert!(matches!(
            admit(&config, addr(UPSTREAM)).0,
            Admission::Ignore
        ));
        assert_eq!(ProxyAcceptor::new(config).unwrap().max_sessions(), Some(7));
        let v6 = ProxyConfig::transparent(addr("[::1]:69"));
        match admit(&v6, addr("[::1]:4000")).0 {
            Admission::Start(Admit { bind, .. }) => assert_eq!(bind, [addr("[::]:0")]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn datagrams_cross_both_ways_and_follow_the_first_answering_port() {
        let (mut f, totals) = flow(&ProxyConfig::transparent(addr(UPSTREAM)));
        send(&mut *f, at(1), CLIENT, b"RRQ");
        assert_eq!(out(&mut *f, at(1)), [(addr(UPSTREAM), b"RRQ".to_vec())]);
        // The server answers from a new port (a TFTP transfer ID) ...
        send(&mut *f, at(2), "127.0.0.1:33333", b"DATA1");
        assert_eq!(out(&mut *f, at(2)), [(addr(CLIENT), b"DATA1".to_vec())]);
        // ... and the client's next datagram goes there.
        send(&mut *f, at(3), CLIENT, b"ACK1");
        assert_eq!(
            out(&mut *f, at(3)),
            [(addr("127.0.0.1:33333"), b"ACK1".to_vec())]
        );
        // A second transfer ID (a duplicated request's) and another host
        // are strays; the well-known port still gets through.
        send(&mut *f, at(4), "127.0.0.1:44444", b"DATA1");
        send(&mut *f, at(4), "10.0.0.9:50001", b"evil");
        assert!(out(&mut *f, at(4)).is_empty());
        assert_eq!(totals.borrow().strays, 2);
        send(&mut *f, at(5), UPSTREAM, b"ERROR");
        assert_eq!(out(&mut *f, at(5)), [(addr(CLIENT), b"ERROR".to_vec())]);
        assert_eq!(totals.borrow().links[0].forwarded, 2);
        assert_eq!(totals.borrow().links[1].forwarded, 2);
        assert_eq!(totals.borrow().mappings_opened, 1);
    }

    #[test]
    fn the_endpoint_not_the_address_says_which_way_a_datagram_goes() {
        let (mut f, totals) = flow(&ProxyConfig::transparent(addr(UPSTREAM)));
        send(&mut *f, at(1), CLIENT, b"RRQ");
        let _ = out(&mut *f, at(1));
        send(&mut *f, at(2), UPSTREAM, b"DATA1");
        // The client's address on the flow's own socket is not the client.
        arrive(&mut *f, at(3), UPSTREAM_END, CLIENT, b"spoof");
        assert_eq!(out(&mut *f, at(3)), [(addr(CLIENT), b"DATA1".to_vec())]);
        assert_eq!(totals.borrow().strays, 1);
    }

    #[test]
    fn latency_holds_each_datagram_and_is_a_paced_deadline() {
        let mut config = ProxyConfig::transparent(addr(UPSTREAM));
        config.to_server.latency = Duration::from_millis(20);
        let (mut f, totals) = flow(&config);
        send(&mut *f, at(10), CLIENT, b"a");
        assert!(out(&mut *f, at(10)).is_empty());
        assert_eq!(f.poll_timeout(), Some(at(30)));
        assert_eq!(f.wake(), Wake::Paced);
        assert_eq!(totals.borrow().held_bytes, 1);
        f.handle_timeout(&mut cx(at(30), None));
        assert_eq!(out(&mut *f, at(30)).len(), 1);
        assert_eq!(totals.borrow().held_bytes, 0);
        // Released on time, then one released 2 ms late: the proxy's own
        // record of how well it kept the latency.
        send(&mut *f, at(40), CLIENT, b"b");
        assert_eq!(out(&mut *f, at(62)).len(), 1);
        assert_eq!(totals.borrow().lateness.count, 2);
        // Bucket bounds: "at most 5 µs late"; beyond 1 ms, the max.
        assert_eq!(totals.borrow().lateness.quantile_ns(500), Some(5_000));
        assert_eq!(totals.borrow().lateness.quantile_ns(990), Some(2_000_000));
        assert_eq!(totals.borrow().lateness.max_ns, 2_000_000);
        assert_eq!(f.wake(), Wake::Exact, "only the idle timer is left");
    }

    #[test]
    fn a_silent_mapping_idles_out_but_never_with_datagrams_held() {
        let mut config = ProxyConfig::transparent(addr(UPSTREAM));
        config.idle = Duration::from_secs(1);
        config.to_client.latency = Duration::from_secs(5);
        let (mut f, totals) = flow(&config);
        send(&mut *f, at(0), CLIENT, b"q");
        let _ = out(&mut *f, at(0));
        send(&mut *f, at(100), UPSTREAM, b"slow answer");
        // Idle time passes with the answer still on the long link.
        f.handle_timeout(&mut cx(at(1_100), None));
        assert_eq!(f.poll_close(), None);
        f.handle_timeout(&mut cx(at(5_100), None));
        assert_eq!(out(&mut *f, at(5_100)).len(), 1);
        assert_eq!(f.poll_close(), None, "still within idle of the release");
        assert_eq!(f.poll_timeout(), Some(at(1_100)));
        f.handle_timeout(&mut cx(at(5_100), None));
        assert_eq!(f.poll_close(), Some(CloseReason::Completed));
        assert_eq!(totals.borrow().mappings_idled, 1);
    }

    #[test]
    fn bytes_held_by_all_mappings_are_bounded() {
        let mut config = ProxyConfig::transparent(addr(UPSTREAM));
        config.to_server.latency = Duration::from_secs(1);
        config.max_held_bytes = 3_000;
        let (mut f, totals) = flow(&config);
        for i in 0..5 {
            send(&mut *f, at(i), CLIENT, &[0u8; 1000]);
        }
        // Room is checked for a possible duplicate: one 1000-byte datagram
        // needs 2000 free.
        assert_eq!(totals.borrow().held_bytes, 2_000);
        assert_eq!(totals.borrow().overflow, [3, 0]);
        f.handle_timeout(&mut cx(at(2_000), None));
        assert_eq!(out(&mut *f, at(2_000)).len(), 2);
        assert_eq!(totals.borrow().held_bytes, 0);
    }
}
