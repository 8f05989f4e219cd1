//! TFTP (RFC 1350, with RFC 2347/2348/2349 options and RFC 7440 windows),
//! both roles, so that curl, tftp-hpa and atftp work against mioperf and
//! mioperf's client works against their servers.
//!
//! Owns option negotiation, the transfer ID rule (after the first reply,
//! only the peer's address and port are the transfer; anyone else gets
//! ERROR 5 and the transfer goes on), block numbering with rollover past
//! 65535 to 0, netascii translation, and the session limits. Blocks,
//! windows and retransmission are the shared ARQ core's (`proto::arq`);
//! files are the store's.

mod client;
mod engine;
mod netascii;
mod server;

pub use client::{Outcome, OutcomeSlot, TftpClient, Verb};
pub use server::{TftpAcceptor, TftpConfig, TftpServer};

/// The block index (1, 2, …) nearest to `near` whose low 16 bits are
/// `wire`: how a rolled-over block number is read back. Serial-number
/// arithmetic: a window never spans 32 768 blocks.
pub(crate) fn index_near(wire: u16, near: u64) -> u64 {
    let delta = wire.wrapping_sub(near as u16);
    if delta < 0x8000 {
        near + u64::from(delta)
    } else {
        near.saturating_sub(u64::from(near as u16).wrapping_sub(u64::from(wire)) & 0xffff)
    }
}

#[cfg(test)]
mod tests {
    use super::index_near;

    #[test]
    fn block_numbers_roll_over_to_zero_and_back() {
        assert_eq!(index_near(1, 1), 1);
        assert_eq!(index_near(65_535, 65_535), 65_535);
        assert_eq!(index_near(0, 65_535), 65_536, "after 65535 comes 0");
        assert_eq!(index_near(0, 65_536), 65_536);
        assert_eq!(
            index_near(65_535, 65_536),
            65_535,
            "one behind, across the wrap"
        );
        assert_eq!(index_near(5, 65_540), 65_541);
        assert_eq!(index_near(3, 131_072 + 1), 131_075);
        assert_eq!(index_near(0, 1), 0, "block 0 before block 1");
    }
}
