//! tunstack: the sans-IO bottom half of a userspace TCP/IP stack behind a
//! TUN device.
//!
//! Owns what the stack does with IP datagrams read from the device and
//! what it writes back. It must never touch the device, a socket or the
//! clock: datagrams arrive as [`DatagramInput::Packet`](crate::proto::DatagramInput)
//! and leave as transmits with `to: None`.

pub mod fragment;
pub mod reassembly;
