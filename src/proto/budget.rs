//! Send budgets for UDP peers whose address is not validated.
//!
//! Owns the rule that bounds reflection: a UDP request can carry a spoofed
//! source address, so whatever a server sends in answer to a datagram —
//! a 123 MB generated file, a 10 000-segment stream — may land on a victim
//! who never asked. Every byte sent to an unvalidated peer is taken from
//! two token buckets: one for the peer's IP address (port ignored, so
//! rotating source ports does not help) and one for the whole process.
//! When a bucket is empty the session waits, on the deadline heap, until
//! it refills: the transfer slows down rather than failing, and a flood of
//! spoofed requests costs the victim at most `peer_rate` bytes/s.
//!
//! A peer on the loopback network is *validated* by construction (when
//! `trust_loopback` is on, the default): the kernel drops packets that
//! arrive from outside with a loopback source address, so a loopback
//! source cannot be spoofed from elsewhere.
//!
//! Memory is fixed: per-IP buckets live in a table of `PEER_BUCKETS` slots
//! indexed by a keyed hash; two addresses that collide share a bucket,
//! which is only ever stricter.
//!
//! The budget is process-wide, so every protocol that answers unvalidated
//! UDP peers (lab's files and streams, stopwait's transfers) must draw from
//! one [`SharedBudget`]: the server builds one and hands a clone to each
//! such acceptor, which lends it to its sessions.

use crate::time::{Duration, Instant};
use core::cell::RefCell;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::rc::Rc;

/// Slots in the per-IP table.
pub const PEER_BUCKETS: usize = 4096;

/// The budget settings (config keys `udp_peer_rate`, `udp_peer_burst`,
/// `udp_global_rate`, `udp_global_burst`, `udp_trust_loopback`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Bytes per second one unvalidated IP address may be sent.
    pub peer_rate: u64,
    /// Bytes one unvalidated IP address may be sent at once.
    pub peer_burst: u64,
    /// Bytes per second all unvalidated peers together may be sent.
    pub global_rate: u64,
    /// Bytes all unvalidated peers together may be sent at once.
    pub global_burst: u64,
    /// Treat loopback peers as validated (exempt).
    pub trust_loopback: bool,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            peer_rate: 1_000_000,
            peer_burst: 256 * 1024,
            global_rate: 16_000_000,
            global_burst: 4 * 1024 * 1024,
            trust_loopback: true,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u64) -> Self {
        Self {
            tokens: burst,
            at: Instant::ZERO,
        }
    }

    fn refill(&mut self, now: Instant, rate: u64, burst: u64) {
        let elapsed = now.saturating_since(self.at);
        let gained = u64::try_from(elapsed.as_nanos() * u128::from(rate) / 1_000_000_000)
            .unwrap_or(u64::MAX);
        if gained > 0 {
            self.tokens = self.tokens.saturating_add(gained).min(burst);
            self.at = now;
        } else if self.tokens >= burst {
            self.at = now;
        }
    }

    /// When `bytes` tokens will be there, if they are not now.
    fn ready_at(&self, bytes: u64, rate: u64) -> Instant {
        let missing = bytes.saturating_sub(self.tokens);
        let nanos = u128::from(missing) * 1_000_000_000 / u128::from(rate.max(1));
        self.at
            + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            + Duration::from_nanos(1)
    }
}

/// The process-wide UDP send budget.
#[derive(Debug)]
pub struct UdpBudget {
    config: BudgetConfig,
    peers: Box<[Bucket]>,
    global: Bucket,
    hasher: RandomState,
    /// Times a send had to wait for tokens.
    pub throttled: u64,
}

impl UdpBudget {
    /// Full buckets.
    pub fn new(config: BudgetConfig) -> Self {
        Self {
            peers: vec![Bucket::full(config.peer_burst); PEER_BUCKETS].into_boxed_slice(),
            global: Bucket::full(config.global_burst),
            hasher: RandomState::new(),
            throttled: 0,
            config,
        }
    }

    /// Whether `ip` is exempt from the budget.
    pub fn is_validated(&self, ip: IpAddr) -> bool {
        self.config.trust_loopback && ip.is_loopback()
    }

    /// Takes `bytes` from the budgets of `ip` at `now`. `Err(at)`: not
    /// enough now; try again at `at`. A datagram larger than a burst is
    /// allowed once its bucket is full, so nothing can starve forever.
    ///
    /// # Errors
    /// The instant at which enough tokens will be there.
    pub fn take(&mut self, ip: IpAddr, bytes: u64, now: Instant) -> Result<(), Instant> {
        if self.is_validated(ip) {
            return Ok(());
        }
        let c = self.config;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "any bits of the hash pick a slot as well as all of them"
        )]
        let slot = (self.hasher.hash_one(ip) as usize) % PEER_BUCKETS;
        let peer = &mut self.peers[slot];
        peer.refill(now, c.peer_rate, c.peer_burst);
        self.global.refill(now, c.global_rate, c.global_burst);
        let need_peer = bytes.min(c.peer_burst);
        let need_global = bytes.min(c.global_burst);
        if peer.tokens < need_peer || self.global.tokens < need_global {
            self.throttled += 1;
            let at = peer
                .ready_at(need_peer, c.peer_rate)
                .max(self.global.ready_at(need_global, c.global_rate));
            return Err(at.max(now));
        }
        peer.tokens -= need_peer;
        self.global.tokens -= need_global;
        Ok(())
    }
}

impl Default for UdpBudget {
    fn default() -> Self {
        Self::new(BudgetConfig::default())
    }
}

/// The one budget that the acceptors and sessions of every UDP protocol
/// hold. Single-threaded: the reactor calls one session at a time, so a
/// borrow never outlives the call that takes it.
pub type SharedBudget = Rc<RefCell<UdpBudget>>;

/// A [`SharedBudget`] with full buckets.
pub fn shared(config: BudgetConfig) -> SharedBudget {
    Rc::new(RefCell::new(UdpBudget::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> IpAddr {
        "192.0.2.7".parse().unwrap()
    }

    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    fn config() -> BudgetConfig {
        BudgetConfig {
            peer_rate: 1_000,
            peer_burst: 2_000,
            global_rate: 10_000,
            global_burst: 20_000,
            trust_loopback: true,
        }
    }

    #[test]
    fn loopback_is_exempt_and_remote_is_not() {
        let mut b = UdpBudget::new(config());
        for _ in 0..1000 {
            assert!(b.take("127.0.0.1".parse().unwrap(), 60_000, ms(0)).is_ok());
            assert!(b.take("::1".parse().unwrap(), 60_000, ms(0)).is_ok());
        }
        assert!(b.take(remote(), 2_000, ms(0)).is_ok());
        assert!(b.take(remote(), 1, ms(0)).is_err());
    }

    #[test]
    fn refills_at_the_configured_rate_and_says_when() {
        let mut b = UdpBudget::new(config());
        b.take(remote(), 2_000, ms(0)).unwrap();
        // 500 bytes at 1000 B/s: ready 500 ms later.
        let at = b.take(remote(), 500, ms(0)).unwrap_err();
        assert!(at > ms(499) && at <= ms(501), "{at}");
        assert!(b.take(remote(), 500, ms(499)).is_err());
        assert!(b.take(remote(), 500, ms(501)).is_ok());
    }

    #[test]
    fn volume_over_time_is_bounded_by_rate_plus_burst() {
        let mut b = UdpBudget::new(config());
        let mut sent = 0u64;
        let mut now = ms(0);
        while now < ms(10_000) {
            match b.take(remote(), 100, now) {
                Ok(()) => sent += 100,
                Err(at) => now = at,
            }
        }
        // 10 s × 1000 B/s + 2000 B burst.
        assert!((11_000..=12_000).contains(&sent), "{sent}");
    }

    #[test]
    fn global_bucket_bounds_many_peers() {
        let mut b = UdpBudget::new(config());
        let mut sent = 0u64;
        for i in 0..=255u8 {
            let ip = IpAddr::from([198, 51, 100, i]);
            while b.take(ip, 100, ms(0)).is_ok() {
                sent += 100;
            }
        }
        assert!(sent <= 20_000, "{sent}");
    }

    #[test]
    fn oversized_datagram_passes_once_bucket_is_full() {
        let mut b = UdpBudget::new(config());
        assert!(b.take(remote(), 60_000, ms(0)).is_ok());
        let at = b.take(remote(), 60_000, ms(0)).unwrap_err();
        assert!(b.take(remote(), 60_000, at).is_ok());
    }

    #[test]
    fn trust_can_be_withdrawn() {
        let mut b = UdpBudget::new(BudgetConfig {
            trust_loopback: false,
            ..config()
        });
        assert!(b.take("127.0.0.1".parse().unwrap(), 2_000, ms(0)).is_ok());
        assert!(b.take("127.0.0.1".parse().unwrap(), 2_000, ms(0)).is_err());
    }
}
