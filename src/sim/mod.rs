//! A deterministic network simulator for sans-IO datagram sessions.
//!
//! Owns a small virtual world: one client [`DatagramSession`], a server (a
//! [`DatagramAcceptor`] that admits sessions the way the reactor does, or
//! one server session), one impaired link per direction between them
//! ([`Impairment`], each with its own [`ImpairConfig`] and a seed derived
//! from the run's seed), and a virtual clock that jumps straight to the next
//! event: the earliest link release or deadline. Every call into a session
//! ends in [`drive::after_call`], the one driver the reactor uses too, so a
//! simulated run makes the same protocol calls in the same order as a real
//! one (see [`crate::proto`]); only where the datagrams go differs.
//!
//! It must never read a clock, sleep, or touch a socket or a file: time is
//! the virtual `now`, addresses are labels, and the same seed replays the
//! same run exactly, so a failing seed is a bug report. A run that does not
//! end within its step bound is an error ([`SimError::StepLimit`]), never a
//! hang, and nothing a session does makes the simulator panic.
//!
//! # Files
//! * `world.rs`: [`World`], its [`Config`] and [`Server`]: the turns, the
//!   sockets, admission, the driver's transmit step.
//! * `report.rs`: what a run tells: [`Report`], [`SimError`], the trace
//!   ([`Delivery`]).
//! * `tcp.rs`: a second, smaller world in which two TCP engines
//!   ([`crate::proto::tcp::conn::Tcb`]) talk over the same seeded links.
//! * `tests.rs`: the simulator's own tests; `faults.rs`: the fault suite
//!   of the file-transfer protocols.
//!
//! # Invariants
//! * `now` never decreases, and every session sees the same `now` for the
//!   event it is handling.
//! * Time advances in turns, as the reactor's: at each instant, first what
//!   the last turn left (the rest of a flush cut by the send budget,
//!   datagrams held for a session that wants input again), then every
//!   datagram due is received (in release order, the client-to-server link
//!   first on a tie), then every deadline due fires, in arming order as the
//!   reactor's stamps break ties. What a turn sends is received in a later
//!   turn, even over a link without latency.
//! * Backpressure as the reactor's: a session sends at most the reactor's
//!   send budget (1024 datagrams) per step, and the rest in the next step at
//!   the same instant. A session whose `wants_input` is false is not given
//!   what arrives on its own socket: the socket holds it, up to a socket
//!   buffer's worth (more is dropped and counted in
//!   [`Report::buffer_drops`]), until it wants input again. Sessions on
//!   the acceptor's socket are never paused, as the reactor reads that
//!   socket for every peer.
//! * The acceptor's deadline (state its sessions share, such as ID expiry)
//!   is re-read after every call into it or into a server session, and
//!   fires like a session's.
//! * One step is one event: a datagram released by a link or handed over
//!   from a socket's hold, the rest of a flush, or one timer firing.
//!
//! # What it does not model
//! Coarse deadlines fire exactly (the reactor may be up to a millisecond
//! late) and paced ones too (the reactor spins for them); there are no ICMP
//! errors ([`DatagramInput::Failed`]) and no receive budget; an admission
//! that asks for more endpoints (`bind`, the proxy's upstream socket) is
//! refused, as a world of two parties has no third to talk to. Datagrams
//! to an address with no open socket are counted as undeliverable and
//! vanish.
//!
//! [`DatagramSession`]: crate::proto::DatagramSession
//! [`DatagramAcceptor`]: crate::proto::DatagramAcceptor
//! [`DatagramInput::Failed`]: crate::proto::DatagramInput::Failed
//! [`Impairment`]: crate::proto::proxy::impair::Impairment
//! [`ImpairConfig`]: crate::proto::proxy::impair::ImpairConfig
//! [`drive::after_call`]: crate::proto::drive::after_call

#[cfg(test)]
mod faults;
mod report;
pub mod tcp;
#[cfg(test)]
mod tests;
mod world;

pub use report::{Delivery, Dir, PerSide, Report, Role, SimError};
pub use world::{Config, LossRule, Server, World};

#[cfg(test)]
pub(crate) mod testing {
    //! Link presets shared by the protocols' simulation tests.

    use crate::proto::proxy::impair::ImpairConfig;
    use crate::time::Duration;

    /// The rates of issue 5: 10 % loss, 5 % duplicates and 10 % reordered
    /// over a 10 ms path whose stragglers lag up to 200 ms, several round
    /// trips, so a held-back copy can arrive after the protocol has moved
    /// on by more than one block (the very late duplicate).
    pub(crate) fn lossy() -> ImpairConfig {
        ImpairConfig {
            latency: Duration::from_millis(10),
            drop: 0.10,
            duplicate: 0.05,
            reorder: 0.10,
            reorder_max: Duration::from_millis(200),
            ..ImpairConfig::default()
        }
    }
}
