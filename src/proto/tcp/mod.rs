//! The sans-IO TCP engine (the contract's "tcp engine, carried two ways",
//! RFC 9293): segments and addresses in, segments and deadlines out. It
//! must never know what carries its segments (the tunstack IPv4 layer, or
//! UDP datagrams for `window`), nor touch a socket or the clock.
//!
//! So far (issue 14, in progress) it holds the foundation the connection
//! state machine will stand on, each module complete and tested on its own:
//! - [`rtt`]: RFC 6298 round-trip estimation and the retransmission timeout
//!   (Karn's rule, backoff, named floor and ceiling);
//! - [`cc`]: congestion control behind one trait, `NewReno` (RFC 5681/6582)
//!   and CUBIC (RFC 9438);
//! - [`isn`]: initial sequence numbers no outsider can guess (RFC 6528,
//!   SipHash-2-4 keyed by a secret the caller supplies);
//! - [`assembler`]: which out-of-order byte ranges have arrived, bounded,
//!   with SACK blocks (RFC 2018) most recent first;
//! - [`conn`]: one connection's RFC 9293 state machine, the `Tcb`, built
//!   on all of the above;
//! - [`session`]: a connection as a carrier holds it, the `Tcb` with an
//!   ordinary stream session above it.

pub mod assembler;
pub mod cc;
pub mod conn;
pub mod isn;
pub mod rtt;
pub mod session;
