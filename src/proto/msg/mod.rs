//! msg: length-prefixed messages with a receipt, both roles.
//!
//! Owns the server session (counts each frame's bytes as they pass, never
//! buffering a payload, and answers `OK <L>` per frame) and the client
//! (sends one frame from a [`Source`](crate::proto::data::Source) and waits
//! for its receipt). Limits are plain data; sockets belong to the reactor.

mod client;
mod server;

pub use client::{Client, Receipt, RepeatClient};
pub use server::{MsgAcceptor, MsgStream};
