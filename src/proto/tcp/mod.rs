//! tcp: the sans-IO TCP engine (the contract's "tcp engine, carried two
//! ways"): segments and addresses in, segments out, no IP below it.

pub mod assembler;
pub mod isn;
