//! tunstack: the sans-IO bottom half of a userspace TCP/IP stack behind a
//! TUN device (the contract's "tcp engine, carried two ways", tunstack).
//!
//! Owns what the stack does with the IP datagrams the kernel writes into
//! the device and what it writes back: header validation, [`reassembly`],
//! [`fragment`]ation, ICMP echo, UDP echo on [`ECHO_PORT`], ICMP errors
//! (port unreachable, reassembly time exceeded) under a rate limit, the
//! device's impairment in both directions, the capture copies and the
//! [`Counters`]. The [`Stack`] is one [`DatagramSession`](crate::proto::DatagramSession)
//! on the device endpoint: a [`DatagramInput::Packet`](crate::proto::DatagramInput)
//! is one datagram read from the device, a transmit with `to: None` one
//! datagram to write to it.
//!
//! It must never touch the device, a socket, a file or the clock (the
//! reactor does, and the pcap file is the reactor's too), and never panic
//! on what the device hands it: every datagram is checked by the `wire`
//! codecs first, and everything it holds is bounded by a named constant.
//!
//! TCP: segments whose checksum holds go to their connection (the
//! engine with an ordinary stream session above it), a SYN to a listening
//! port ([`Stack::with_tcp`]) opens one, anything else gets a RST; the
//! stack also opens connections itself ([`Stack::connect`]). Each
//! connection's deadline is a *part* of the stack session, an entry of its
//! own on the reactor's heap; segments are pulled from the engine only when
//! the device can take them ([`MAX_QUEUED`]). [`echo`] serves TCP on
//! [`ECHO_PORT`].

pub mod echo;
pub mod fragment;
mod ratelimit;
pub mod reassembly;
mod stack;
mod tcp;

pub use ratelimit::{ICMP_ERROR_BURST, ICMP_ERRORS_PER_SEC};
pub use stack::{Counters, MAX_HELD, MAX_QUEUED, SharedCounters, Stack};
pub use tcp::{ConnectError, EPHEMERAL_PORTS, MAX_CONNECTIONS, MAX_HALF_OPEN};

use crate::proto::EndpointId;
use crate::proto::proxy::impair::{self, ImpairConfig};
use core::fmt;
use std::net::Ipv4Addr;

/// The UDP port whose datagrams are echoed back, and the TCP port of
/// [`echo`].
pub const ECHO_PORT: u16 = 7007;

/// What [`Stack::with_tcp`] serves: each port and the acceptor that
/// makes the session above each of its connections.
pub type TcpListeners = Vec<(u16, Box<dyn crate::proto::StreamAcceptor>)>;

/// The TTL of every datagram the stack originates: RFC 1700's default, and
/// Linux's `ip_default_ttl`.
pub const DEFAULT_TTL: u8 = 64;

/// The endpoint through which a copy of every datagram read from the
/// device (after inbound impairment) leaves when capturing; the reactor
/// writes it to the pcap file as inbound.
pub const CAPTURE_IN: EndpointId = EndpointId(1);

/// The endpoint through which a copy of every datagram written to the
/// device (after outbound impairment) leaves when capturing; the reactor
/// writes it to the pcap file as outbound.
pub const CAPTURE_OUT: EndpointId = EndpointId(2);

/// How the stack behaves. The [`Default`] is the contract's: `192.0.2.1`,
/// MTU 1500, no impairment, no capture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StackConfig {
    /// The stack's own address: datagrams to any other are dropped.
    pub addr: Ipv4Addr,
    /// The device's MTU: larger outgoing datagrams are fragmented.
    pub mtu: usize,
    /// Impairment between the device and the IP layer (what the kernel
    /// sends us).
    pub impair_in: Option<ImpairConfig>,
    /// Impairment between the IP layer and the device (what we answer).
    pub impair_out: Option<ImpairConfig>,
    /// Copy every datagram in and out through [`CAPTURE_IN`] and
    /// [`CAPTURE_OUT`].
    pub capture: bool,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            addr: Ipv4Addr::new(192, 0, 2, 1),
            mtu: 1_500,
            impair_in: None,
            impair_out: None,
            capture: false,
        }
    }
}

/// Why a [`StackConfig`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The MTU is outside what IPv4 allows.
    Mtu(fragment::MtuError),
    /// An impairment is wrong; `inbound` says which direction.
    Impair {
        /// `true` for `impair_in`.
        inbound: bool,
        /// What is wrong with it.
        error: impair::ConfigError,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mtu(e) => e.fmt(f),
            Self::Impair { inbound, error } => {
                let way = if *inbound { "inbound" } else { "outbound" };
                write!(f, "{way} impairment: {error}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl StackConfig {
    /// Checks the MTU and both impairments.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fragment::check_mtu(self.mtu).map_err(ConfigError::Mtu)?;
        for (inbound, config) in [(true, &self.impair_in), (false, &self.impair_out)] {
            if let Some(c) = config {
                c.validate()
                    .map_err(|error| ConfigError::Impair { inbound, error })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
