//! The hello connection-ID registry protocol, both roles.
//!
//! Owns the registry (a pure table with exactly-once expiry bookkeeping),
//! the server's acceptor and TCP session, and the client session. The
//! registry is shared by TCP and UDP: an ID taken over one is taken for the
//! other. Expiry rides the reactor's deadline heap; this module only says
//! *when* (`Registry::next_expiry`) and ends what is due
//! (`Registry::expire_due`), each registration exactly once.

pub mod client;
mod registry;
mod server;

pub use client::{Answer, Client, Transport};
pub use registry::{Expiry, Refused, Registry};
pub use server::{HelloAcceptor, HelloStream};
