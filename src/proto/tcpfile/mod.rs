//! tcpfile: file GET and PUT over TCP, both roles.
//!
//! Owns the server's connection (one request line, then a file out or in)
//! and the two clients. Files are reached only through the
//! [`Files`](crate::proto::data::Files) seam — the store enforces names,
//! confinement and atomic commit — so these state machines run on memory in
//! tests.

mod client;
mod server;

pub use client::{Done, GetClient, PutClient};
pub use server::{TcpFileAcceptor, TcpFileStream};
