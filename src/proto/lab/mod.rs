//! The lab protocol: echo, generated files and precisely paced streams,
//! over TCP and UDP, both roles.
//!
//! Owns the server's acceptors and sessions (a TCP connection that reads
//! request lines; a per-peer UDP session for files and streams; stateless
//! UDP echo), the absolute pacing schedule, and the client that measures
//! what arrives, alone (`Client`) or one request after another on one
//! connection (`Conversation`, the prompt's). Limits are plain data in
//! [`LabConfig`]; sockets, the clock and the timerfd belong to the reactor.

mod client;
mod conversation;
mod schedule;
mod server;

pub use client::{Client, LiveCounts, Report, StreamLive, StreamSample, Transport};
pub use conversation::{Conversation, Inbox, NEXT_TURN};
pub use schedule::Schedule;
pub use server::{LabDatagramAcceptor, LabDatagrams, LabStream, LabStreamAcceptor};

use crate::wire::lab::MAX_UDP_PAYLOAD;

/// Limits of the lab server (config keys `stream_max_count`, `file_max`,
/// `segment`, `line_max`, `tcp_segment_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabConfig {
    /// Streams are capped at this many segments.
    pub stream_max_count: u64,
    /// Largest generated file.
    pub file_max: u64,
    /// Largest UDP datagram of a generated file.
    pub segment: usize,
    /// Longest request or echo line over TCP, terminator included.
    pub line_max: usize,
    /// Largest stream segment over TCP (UDP is bounded by the protocol).
    pub tcp_segment_max: u32,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            stream_max_count: 10_000,
            file_max: 123_456_789,
            segment: 1400,
            line_max: 64 * 1024,
            tcp_segment_max: 16 * 1024 * 1024,
        }
    }
}

impl LabConfig {
    /// Largest stream segment over UDP: the IPv4 maximum.
    #[expect(clippy::cast_possible_truncation, reason = "65 507 fits a u32")]
    pub const UDP_SEGMENT_MAX: u32 = MAX_UDP_PAYLOAD as u32;
}
