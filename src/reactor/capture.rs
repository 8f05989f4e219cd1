//! A packet capture file: what a device session read and wrote, for
//! Wireshark.
//!
//! Owns the pcapng encoding (a Section Header Block, one Interface
//! Description Block of `LINKTYPE_RAW` — bare IPv4 packets, no link header —
//! with nanosecond timestamps, then one Enhanced Packet Block per packet
//! whose `epb_flags` option marks it inbound or outbound) and the file it
//! goes to. pcapng rather than classic pcap because only pcapng can mark a
//! packet's direction. A capture is write-only: it is the device session's
//! endpoints 1 (inbound) and 2 (outbound), and what the session transmits
//! through them is recorded. It never reads a clock: the reactor passes the
//! time of each packet (its `now` as realtime).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// `LINKTYPE_RAW`: each packet is a bare IPv4 or IPv6 packet.
const LINKTYPE_RAW: u16 = 101;
/// Largest packet length the interface block announces: a whole IPv4
/// datagram.
const SNAPLEN: u32 = 65_535;
/// pcapng block types.
const BLOCK_SHB: u32 = 0x0A0D_0D0A;
const BLOCK_IDB: u32 = 0x0000_0001;
const BLOCK_EPB: u32 = 0x0000_0006;
/// The byte-order magic: readers learn the file's endianness from it.
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Option codes.
const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_EPB_FLAGS: u16 = 2;
/// `if_tsresol` = 9: timestamps count nanoseconds (10^-9 s).
const TSRESOL_NANOS: u8 = 9;

/// Which way a recorded packet went, as `epb_flags` bits 0–1 say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Read from the device (towards the stack).
    Inbound,
    /// Written to the device (from the stack).
    Outbound,
}

impl Direction {
    fn flags(self) -> u32 {
        match self {
            Self::Inbound => 1,
            Self::Outbound => 2,
        }
    }
}

/// The file's first bytes: a Section Header Block and the one Interface
/// Description Block every packet refers to (interface 0).
fn header() -> Vec<u8> {
    let mut out = Vec::with_capacity(60);
    // SHB: type, length, magic, version 1.0, section length unknown (-1).
    let shb_len = 28u32;
    put32(&mut out, BLOCK_SHB);
    put32(&mut out, shb_len);
    put32(&mut out, BYTE_ORDER_MAGIC);
    put16(&mut out, 1);
    put16(&mut out, 0);
    out.extend_from_slice(&(-1i64).to_le_bytes());
    put32(&mut out, shb_len);
    // IDB: link type, reserved, snap length, if_tsresol, end of options.
    let idb_len = 32u32;
    put32(&mut out, BLOCK_IDB);
    put32(&mut out, idb_len);
    put16(&mut out, LINKTYPE_RAW);
    put16(&mut out, 0);
    put32(&mut out, SNAPLEN);
    put16(&mut out, OPT_IF_TSRESOL);
    put16(&mut out, 1);
    out.extend_from_slice(&[TSRESOL_NANOS, 0, 0, 0]);
    put16(&mut out, OPT_ENDOFOPT);
    put16(&mut out, 0);
    put32(&mut out, idb_len);
    out
}

/// One Enhanced Packet Block: `packet` seen at `unix_ns` (nanoseconds since
/// 1970), going `direction`, appended to `out`. A packet longer than the
/// snap length is cut to it (its original length is kept).
fn packet_block(out: &mut Vec<u8>, unix_ns: u64, direction: Direction, packet: &[u8]) {
    let data = &packet[..packet.len().min(SNAPLEN as usize)];
    let padded = data.len().next_multiple_of(4);
    // 28 bytes of header, the padded data, epb_flags (8), end (4), length (4).
    let block_len = u32::try_from(28 + padded + 16).unwrap_or(u32::MAX);
    let captured = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let original = u32::try_from(packet.len()).unwrap_or(u32::MAX);
    put32(out, BLOCK_EPB);
    put32(out, block_len);
    put32(out, 0); // interface 0
    // The timestamp's high and low halves (the split is the format's).
    put32(out, u32::try_from(unix_ns >> 32).unwrap_or(u32::MAX));
    put32(
        out,
        u32::try_from(unix_ns & 0xFFFF_FFFF).unwrap_or(u32::MAX),
    );
    put32(out, captured);
    put32(out, original);
    out.extend_from_slice(data);
    out.resize(out.len() + (padded - data.len()), 0);
    put16(out, OPT_EPB_FLAGS);
    put16(out, 4);
    put32(out, direction.flags());
    put16(out, OPT_ENDOFOPT);
    put16(out, 0);
    put32(out, block_len);
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// An open capture file: its header is written, each packet is one
/// `write(2)` (so what was captured is on disk even if the process is
/// killed), and a failed write is counted, not fatal.
#[derive(Debug)]
pub struct Capture {
    file: File,
    /// Realtime minus monotonic at creation: what turns the reactor's
    /// monotonic time into the wall-clock time a capture shows.
    realtime_offset_ns: i128,
    /// Packets written.
    pub(crate) packets: core::cell::Cell<u64>,
    /// Packets lost to a failed write.
    pub(crate) failed: core::cell::Cell<u64>,
}

impl Capture {
    /// Creates (or truncates) `path` and writes the pcapng header.
    ///
    /// # Errors
    /// The file cannot be created or written.
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut file = File::create(path)?;
        file.write_all(&header())?;
        let offset = i128::from(super::sys::realtime_ns()) - i128::from(super::sys::monotonic_ns());
        Ok(Self {
            file,
            realtime_offset_ns: offset,
            packets: core::cell::Cell::new(0),
            failed: core::cell::Cell::new(0),
        })
    }

    /// Nanoseconds since 1970 at absolute monotonic time `monotonic_ns`.
    pub(crate) fn unix_ns(&self, monotonic_ns: u64) -> u64 {
        u64::try_from(i128::from(monotonic_ns) + self.realtime_offset_ns).unwrap_or(0)
    }

    /// Records one packet. Never fails: a write error is counted (and
    /// logged at debug), the packet is lost to the capture only.
    pub(crate) fn record(&self, unix_ns: u64, direction: Direction, packet: &[u8]) {
        let mut block = Vec::with_capacity(packet.len() + 48);
        packet_block(&mut block, unix_ns, direction, packet);
        match (&self.file).write_all(&block) {
            Ok(()) => self.packets.set(self.packets.get() + 1),
            Err(e) => {
                self.failed.set(self.failed.get() + 1);
                log::debug!("capture write failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// The header, byte for byte, as the pcapng spec (draft-ietf-opsawg-
    /// pcapng) lays it out.
    #[test]
    fn the_header_is_a_section_and_one_raw_ip_interface() {
        let h = header();
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            // SHB
            0x0A, 0x0D, 0x0D, 0x0A,  28, 0, 0, 0,
            0x4D, 0x3C, 0x2B, 0x1A,  1, 0, 0, 0,
            0xFF, 0xFF, 0xFF, 0xFF,  0xFF, 0xFF, 0xFF, 0xFF,
            28, 0, 0, 0,
            // IDB
            1, 0, 0, 0,  32, 0, 0, 0,
            101, 0, 0, 0,  0xFF, 0xFF, 0, 0,
            9, 0, 1, 0,  9, 0, 0, 0,
            0, 0, 0, 0,
            32, 0, 0, 0,
        ];
        assert_eq!(h, want);
    }

    #[test]
    fn a_packet_block_carries_time_length_data_and_direction() {
        let mut b = Vec::new();
        let packet = [0x45, 0, 0, 5, 0xAA]; // 5 bytes: padded to 8
        let ts = 0x0000_0001_2345_6789u64;
        packet_block(&mut b, ts, Direction::Outbound, &packet);
        assert_eq!(b.len(), 28 + 8 + 16);
        assert_eq!(u32_at(&b, 0), 6, "EPB");
        assert_eq!(u32_at(&b, 4), 52);
        assert_eq!(u32_at(&b, 8), 0, "interface 0");
        assert_eq!(u32_at(&b, 12), 1, "timestamp high");
        assert_eq!(u32_at(&b, 16), 0x2345_6789, "timestamp low");
        assert_eq!(u32_at(&b, 20), 5, "captured");
        assert_eq!(u32_at(&b, 24), 5, "original");
        assert_eq!(&b[28..33], &packet);
        assert_eq!(&b[33..36], &[0, 0, 0], "padding");
        assert_eq!(u16_at(&b, 36), 2, "epb_flags");
        assert_eq!(u16_at(&b, 38), 4);
        assert_eq!(u32_at(&b, 40), 2, "outbound");
        assert_eq!(u32_at(&b, 44), 0, "end of options");
        assert_eq!(u32_at(&b, 48), 52, "trailing length");

        let mut b = Vec::new();
        packet_block(&mut b, 0, Direction::Inbound, &[1, 2, 3, 4]);
        assert_eq!(b.len(), 48, "no padding for a multiple of 4");
        assert_eq!(u32_at(&b, 36), 1, "inbound");
    }

    #[test]
    fn an_oversized_packet_is_cut_to_the_snap_length() {
        let mut b = Vec::new();
        let packet = vec![7u8; 70_000];
        packet_block(&mut b, 0, Direction::Inbound, &packet);
        assert_eq!(u32_at(&b, 20), SNAPLEN);
        assert_eq!(u32_at(&b, 24), 70_000);
        assert_eq!(b.len() % 4, 0);
        assert_eq!(u32_at(&b, 4) as usize, b.len());
    }

    #[test]
    fn a_capture_file_is_the_header_then_one_block_per_packet() {
        let dir = std::env::temp_dir().join(format!("mioperf-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pcapng");
        let capture = Capture::create(&path).unwrap();
        capture.record(5, Direction::Inbound, &[0x45; 20]);
        capture.record(6, Direction::Outbound, &[0x45; 21]);
        assert_eq!(capture.packets.get(), 2);
        let bytes = std::fs::read(&path).unwrap();
        let mut want = header();
        packet_block(&mut want, 5, Direction::Inbound, &[0x45; 20]);
        packet_block(&mut want, 6, Direction::Outbound, &[0x45; 21]);
        assert_eq!(bytes, want);
        // A wall-clock time, after 2020 and before 2100.
        let unix = capture.unix_ns(super::super::sys::monotonic_ns());
        assert!((1_577_836_800_000_000_000..4_102_444_800_000_000_000).contains(&unix));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
