//! Fuzzing entry points: one function per target, each taking the fuzzer's
//! bytes.
//!
//! Owns the harnesses that `fuzz/` (cargo-fuzz, libFuzzer, nightly) and the
//! stable regression test `tests/fuzz_regressions.rs` share, so an input
//! that ever crashed a target is replayed by every `cargo test` through the
//! very same code. Two kinds of target:
//!
//! * **wire** (`wire_*`): one decoder on arbitrary bytes. Beyond "never
//!   panics" each checks what its codec promises: what parses re-emits and
//!   re-parses to the same value, lengths stay in their limits.
//! * **server** (`server_*`): one server's acceptors and sessions driven
//!   in virtual time by a script decoded from the bytes (time jumps,
//!   datagrams and stream chunks from a few peers, EOFs, socket failures,
//!   a peer that reads slowly), over the in-memory file store
//!   ([`crate::proto::data::MemoryFiles`]), through the reactor's own
//!   order of calls ([`crate::proto::drive::after_call`]). The invariants
//!   it asserts are listed in `world`.
//!
//! Like `wire`, `proto` and `sim` it must never touch a socket, a file or
//! the clock (the architecture guard in `lib.rs` reads this directory too):
//! a fuzz input is a pure function of its bytes. Every run is bounded in
//! events and bytes, so no input makes a target slow rather than wrong.
//! It is not part of the public API (`#[doc(hidden)]`).

mod servers;
mod wire;
mod world;

pub use servers::{
    server_hello, server_http, server_lab, server_msg, server_stopwait, server_tcpfile, server_tftp,
};
pub use wire::{
    wire_hello, wire_http, wire_icmp, wire_ipv4, wire_lab, wire_line, wire_msg, wire_stopwait,
    wire_tcp, wire_tcpfile, wire_tftp, wire_udp,
};

/// A harness: the fuzzer's bytes in, a panic out when a check fails.
pub type Target = fn(&[u8]);

/// Every target by the name of its folder under `fuzz/corpus` and
/// `fuzz/regressions` (and of its `fuzz/fuzz_targets/*.rs` file).
pub const TARGETS: &[(&str, Target)] = &[
    ("wire_hello", wire_hello),
    ("wire_lab", wire_lab),
    ("wire_line", wire_line),
    ("wire_msg", wire_msg),
    ("wire_stopwait", wire_stopwait),
    ("wire_tcpfile", wire_tcpfile),
    ("wire_tftp", wire_tftp),
    ("wire_ipv4", wire_ipv4),
    ("wire_icmp", wire_icmp),
    ("wire_udp", wire_udp),
    ("wire_tcp", wire_tcp),
    ("wire_http", wire_http),
    ("server_hello", server_hello),
    ("server_lab", server_lab),
    ("server_msg", server_msg),
    ("server_stopwait", server_stopwait),
    ("server_tcpfile", server_tcpfile),
    ("server_tftp", server_tftp),
    ("server_http", server_http),
];

/// Reads values off the front of the fuzzer's bytes; past the end every
/// read yields zeros or nothing, so any input is a complete script.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A value in `0..n` (`n` ≥ 1).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n.max(1)
    }

    /// Up to `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A length-prefixed run of bytes (one byte of length, so at most 255).
    pub(crate) fn short_bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.bytes(n)
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }
}
