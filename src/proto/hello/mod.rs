//! The hello connection-ID registry protocol, both roles.
//!
//! Owns the registry (a pure table with exactly-once expiry bookkeeping),
//! the server's two acceptors and TCP session, and the client session. The
//! registry is shared by TCP and UDP through a [`SharedRegistry`] that both
//! acceptors and every TCP session hold: an ID taken over one is taken for
//! the other. Expiry is the acceptors' deadline on the reactor's heap
//! ([`Driven`](crate::proto::Driven)): the registry only says *when*
//! (`Registry::next_expiry`) and ends what is due (`Registry::expire_due`),
//! each registration exactly once. [`acceptors`] builds the pair.

pub mod client;
mod registry;
mod server;

pub use client::{Answer, Client, Transport};
pub use registry::{Expiry, Refused, Registry, SharedRegistry};
pub use server::{HelloDatagramAcceptor, HelloStream, HelloStreamAcceptor, acceptors};
