//! The pure half of the UDP impairment proxy (`mioperf proxy`).
//!
//! Owns the decisions the proxy makes about each datagram it relays: when
//! it may leave, whether it is lost, copied, delayed or held back. The
//! sockets, the per-client upstream mapping and the clock belong to the
//! reactor side; nothing here may touch a socket or read the time, so the
//! same model drives both the real proxy and deterministic simulations.

pub mod impair;
