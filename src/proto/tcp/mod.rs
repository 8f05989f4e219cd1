//! The sans-IO TCP engine (RFC 9293): segments and addresses in, segments
//! and deadlines out. Knows nothing of IPv4 or sockets.
//!
//! This file is a placeholder for the engine's own `mod.rs`, which is
//! written on another branch; it declares the two foundation modules.

pub mod cc;
pub mod rtt;
