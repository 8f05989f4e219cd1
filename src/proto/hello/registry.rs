//! The connection-ID table.
//!
//! Owns which IDs are registered, until when, and under which generation.
//! It never arms a timer itself. Every registration lives the same `ttl`,
//! so expiries come due in registration order: they wait in a FIFO, and the
//! hello acceptors report the FIFO's head as their deadline
//! ([`Registry::next_expiry`]); when it pops, [`Registry::expire_due`] ends
//! every registration that is due. One heap deadline per acceptor for the
//! whole registry, not one push and pop per request. The acceptors re-read
//! that deadline only after their own calls (an accept, a UDP request), not
//! after every call into a TCP session: `register` ends what came due
//! itself, so a deadline armed late only delays bookkeeping, never frees an
//! ID late (see the invariants) nor lets the queue grow past the live IDs.
//!
//! Invariants:
//! * Every registration gets a generation from a counter that never repeats,
//!   so the heap entry of an earlier registration of the same ID can never
//!   expire a later one.
//! * An ID counts as registered only while `now < expires_at`: a request
//!   that arrives at or after the expiry instant registers afresh even if
//!   the reactor has not popped the deadline yet (it was late). Either way
//!   the old registration ends exactly once.
//! * At most `max_ids` IDs are live, and the queue holds at most the live
//!   IDs' expiries plus those that came due since the last `register` or
//!   `expire_due`.

use crate::time::{Duration, Instant};
use crate::wire::hello::{HelloId, ID_SPACE};
use core::cell::RefCell;
use core::fmt;
use std::collections::VecDeque;
use std::rc::Rc;

/// The registry as hello's TCP acceptor, its UDP acceptor and its TCP
/// sessions all hold it: an ID taken over one transport is taken for the
/// other. Single-threaded: the reactor calls one of them at a time, so a
/// borrow never outlives the call that takes it.
pub type SharedRegistry = Rc<RefCell<Registry>>;

#[derive(Clone, Copy, Debug)]
struct Registration {
    generation: u64,
    expires_at: Instant,
}

/// A deadline for the reactor's heap: expire `id` at `at` if `generation` is
/// still the live registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// The ID's numeric value.
    pub id: u16,
    /// The registration this deadline belongs to.
    pub generation: u64,
    /// When it expires.
    pub at: Instant,
}

/// Why a registration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The ID is registered and has not expired.
    Taken,
    /// `max_ids` IDs are registered already.
    Full,
}

/// The connection-ID registry: a flat table over the whole 4-digit ID space,
/// so lookups never hash attacker-chosen values and memory is fixed.
pub struct Registry {
    slots: Box<[Option<Registration>]>,
    live: usize,
    max_ids: usize,
    ttl: Duration,
    next_generation: u64,
    /// Expiries in registration order, which is deadline order.
    queue: VecDeque<Expiry>,
    expired: u64,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("live", &self.live)
            .field("max_ids", &self.max_ids)
            .field("ttl", &self.ttl)
            .field("expired", &self.expired)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry whose IDs live `ttl` and which holds at most
    /// `max_ids` of them.
    pub fn new(ttl: Duration, max_ids: usize) -> Self {
        Self {
            slots: vec![None; ID_SPACE].into_boxed_slice(),
            live: 0,
            max_ids,
            ttl,
            next_generation: 0,
            queue: VecDeque::new(),
            expired: 0,
        }
    }

    /// A new registry (see [`new`](Self::new)) behind a [`SharedRegistry`].
    pub fn shared(ttl: Duration, max_ids: usize) -> SharedRegistry {
        Rc::new(RefCell::new(Self::new(ttl, max_ids)))
    }

    /// Registers `id` at `now` until `now + ttl`, and queues its expiry.
    /// `now` must not decrease between calls (the reactor's clock never does),
    /// which keeps the queue in deadline order.
    ///
    /// # Errors
    /// [`Refused::Taken`] while the ID is registered, [`Refused::Full`] when
    /// `max_ids` other IDs are.
    pub fn register(&mut self, id: HelloId, now: Instant) -> Result<Expiry, Refused> {
        // Registrations made on a TCP connection arm no deadline of their
        // own (the acceptors re-arm only after their own calls), so what
        // came due is ended here: the queue then never holds more than the
        // live IDs' expiries plus those due since the last call.
        self.expire_due(now);
        let index = usize::from(id.value());
        if let Some(reg) = self.slots[index] {
            if now < reg.expires_at {
                return Err(Refused::Taken);
            }
            // Expired, and the reactor has not popped its deadline yet.
            self.end(index);
        }
        if self.live >= self.max_ids {
            return Err(Refused::Full);
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let expires_at = now + self.ttl;
        self.slots[index] = Some(Registration {
            generation,
            expires_at,
        });
        self.live += 1;
        let expiry = Expiry {
            id: id.value(),
            generation,
            at: expires_at,
        };
        self.queue.push_back(expiry);
        Ok(expiry)
    }

    /// Expires `id` if `generation` is still its live registration. Returns
    /// whether it did; `false` means the deadline was stale (the ID expired
    /// already, or was registered again since).
    pub fn expire(&mut self, id: u16, generation: u64) -> bool {
        if !self.is_live(id, generation) {
            return false;
        }
        self.end(usize::from(id));
        true
    }

    /// Whether `generation` is the live registration of `id` (used by the
    /// reactor to drop stale heap entries when it compacts).
    pub fn is_live(&self, id: u16, generation: u64) -> bool {
        matches!(
            self.slots.get(usize::from(id)),
            Some(Some(reg)) if reg.generation == generation
        )
    }

    /// Whether `id` is registered at `now`.
    pub fn is_registered(&self, id: u16, now: Instant) -> bool {
        matches!(
            self.slots.get(usize::from(id)),
            Some(Some(reg)) if now < reg.expires_at
        )
    }

    /// When the oldest queued registration expires (it may have ended
    /// already; then popping it is a no-op).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.queue.front().map(|e| e.at)
    }

    /// Ends every registration due at `now`, each exactly once: a queued
    /// expiry whose generation is no longer the live one (the ID was
    /// registered again, or ended already) is dropped without effect.
    /// Returns how many ended.
    pub fn expire_due(&mut self, now: Instant) -> usize {
        let mut ended = 0;
        while let Some(e) = self.queue.front().copied().filter(|e| e.at <= now) {
            self.queue.pop_front();
            if self.expire(e.id, e.generation) {
                ended += 1;
            }
        }
        ended
    }

    /// How many IDs are registered (including any expired but not yet popped).
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no ID is registered.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// How many registrations have ended by expiry so far.
    pub fn expired_count(&self) -> u64 {
        self.expired
    }

    fn end(&mut self, index: usize) {
        self.slots[index] = None;
        self.live -= 1;
        self.expired += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(v: u16) -> HelloId {
        HelloId::from_value(v).unwrap()
    }

    const TTL: Duration = Duration::from_secs(30);

    #[test]
    fn register_then_taken_until_exactly_ttl() {
        let mut r = Registry::new(TTL, 100);
        let t0 = Instant::from_millis(1_000);
        let e = r.register(id(7), t0).unwrap();
        assert_eq!(e.at, t0 + TTL);
        assert_eq!(r.next_expiry(), Some(e.at));
        // Not a nanosecond before the TTL.
        let just_before = Instant::from_nanos(e.at.as_nanos() - 1);
        assert_eq!(r.register(id(7), just_before), Err(Refused::Taken));
        assert!(r.is_registered(7, just_before));
        assert!(!r.is_registered(7, e.at));
        // At the TTL, the deadline pops and the ID is free.
        assert_eq!(r.expire_due(just_before), 0);
        assert_eq!(r.expire_due(e.at), 1);
        assert!(r.is_empty());
        assert_eq!(r.next_expiry(), None);
        assert!(r.register(id(7), e.at).is_ok());
    }

    /// IDs registered on one long TCP connection, with no timer popping in
    /// between (the acceptors arm none for a session's registrations): each
    /// registration ends what came due, so the queue follows the live IDs.
    #[test]
    fn registering_ends_what_came_due_without_a_timer() {
        let mut r = Registry::new(TTL, 100);
        for i in 0..1_000u16 {
            let now = Instant::from_millis(u64::from(i) * 40_000);
            r.register(id(i % 50 + 1), now).unwrap();
            assert_eq!(r.len(), 1, "the previous one ended at {now:?}");
        }
        assert_eq!(r.expired_count(), 999);
        assert_eq!(
            r.next_expiry(),
            Some(Instant::from_millis(999 * 40_000) + TTL)
        );
    }

    #[test]
    fn the_queue_expires_in_order_and_skips_ended_registrations() {
        let mut r = Registry::new(TTL, 100);
        let a = r.register(id(1), Instant::from_millis(0)).unwrap();
        let b = r.register(id(2), Instant::from_millis(10)).unwrap();
        // ID 1 comes back at its expiry, before any timer popped: the
        // registration ends its first registration (once) through the queue,
        // and nothing queued may end the second.
        let a2 = r.register(id(1), a.at).unwrap();
        assert_eq!(r.expired_count(), 1);
        assert_eq!(r.next_expiry(), Some(b.at));
        assert_eq!(r.expire_due(b.at), 1, "only ID 2's registration ends here");
        assert!(r.is_registered(1, b.at));
        assert_eq!(r.next_expiry(), Some(a2.at));
        assert_eq!(r.expire_due(a2.at), 1);
        assert!(r.is_empty());
        assert_eq!(r.expired_count(), 3);
    }

    #[test]
    fn expiry_happens_exactly_once() {
        let mut r = Registry::new(TTL, 100);
        let e = r.register(id(1), Instant::ZERO).unwrap();
        assert!(r.expire(1, e.generation));
        assert!(!r.expire(1, e.generation));
        assert_eq!(r.expired_count(), 1);
    }

    #[test]
    fn reregistered_id_is_not_expired_by_predecessor_deadline() {
        let mut r = Registry::new(TTL, 100);
        let first = r.register(id(42), Instant::ZERO).unwrap();
        // The reactor was late: the request at +30 s arrives before the pop.
        let second = r.register(id(42), first.at).unwrap();
        assert_ne!(first.generation, second.generation);
        // The predecessor's deadline pops now and must not touch the new one.
        assert!(!r.expire(42, first.generation));
        assert!(r.is_registered(42, first.at + Duration::from_secs(1)));
        assert!(r.expire(42, second.generation));
        assert_eq!(r.expired_count(), 2);
    }

    #[test]
    fn leading_zeros_name_the_same_id() {
        let mut r = Registry::new(TTL, 100);
        r.register(HelloId::parse(b"0042").unwrap(), Instant::ZERO)
            .unwrap();
        assert_eq!(
            r.register(HelloId::parse(b"42").unwrap(), Instant::ZERO),
            Err(Refused::Taken)
        );
    }

    #[test]
    fn bounded_by_max_ids() {
        let mut r = Registry::new(TTL, 2);
        r.register(id(1), Instant::ZERO).unwrap();
        let e2 = r.register(id(2), Instant::ZERO).unwrap();
        assert_eq!(r.register(id(3), Instant::ZERO), Err(Refused::Full));
        // A taken ID is reported as taken even when full.
        assert_eq!(r.register(id(1), Instant::ZERO), Err(Refused::Taken));
        assert!(r.expire(2, e2.generation));
        assert!(r.register(id(3), Instant::ZERO).is_ok());
    }

    #[test]
    fn full_registry_frees_expired_ids_on_demand() {
        let mut r = Registry::new(TTL, 1);
        let e = r.register(id(1), Instant::ZERO).unwrap();
        // Deadline not popped yet, but the same ID may come back at its TTL.
        assert!(r.register(id(1), e.at).is_ok());
    }
}
