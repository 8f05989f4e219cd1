//! HTTP/1.x over any TCP: a server of an index page and the files of a
//! [`Files`](crate::proto::data::Files) store, and a `GET` client.
//!
//! Owns the sessions only: the grammar is `wire::http`'s, the files the
//! store's. Both are ordinary [`StreamSession`](crate::proto::StreamSession)s
//! and never know what carries them (kernel TCP or the userspace engine of
//! the TUN stack). One request per connection, always `Connection: close`:
//! no keep-alive, no pipelining, no request bodies.

pub mod client;
mod server;

pub use server::{HttpAcceptor, HttpStream, MAX_INDEX_ENTRIES};
