//! A stream segment being produced: the one piece of output both
//! transports share.
//!
//! Owns the segment's bytes: the header (sequence number and scheduled
//! time), then zero filler up to the asked size, handed out in pieces of
//! any length. It never decides when a segment is due (the
//! [`Schedule`](crate::proto::lab::Schedule) does) nor how much may go (the
//! session's transmit limit or the send budget does).

use crate::wire::lab::{SEGMENT_HEADER_LEN, SegmentHeader};
use bytes::BytesMut;

/// A stream segment being produced: header + zero filler, emitted in
/// pieces as the transmit limit allows.
#[derive(Clone, Copy, Debug)]
pub(super) struct Segment {
    header: [u8; SEGMENT_HEADER_LEN],
    size: usize,
    emitted: usize,
}

impl Segment {
    pub(super) fn new(seq: u64, sched_ns: u64, size: u32) -> Self {
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        SegmentHeader { seq, sched_ns }.emit(&mut header);
        Self {
            header,
            size: size as usize,
            emitted: 0,
        }
    }

    /// Appends up to `limit` more bytes of the segment; returns how many.
    pub(super) fn emit(&mut self, limit: usize, buf: &mut BytesMut) -> usize {
        let n = limit.min(self.size - self.emitted);
        let end = self.emitted + n;
        if self.emitted < SEGMENT_HEADER_LEN {
            buf.extend_from_slice(&self.header[self.emitted..end.min(SEGMENT_HEADER_LEN)]);
        }
        let filler = end.saturating_sub(self.emitted.max(SEGMENT_HEADER_LEN));
        buf.resize(buf.len() + filler, 0);
        self.emitted = end;
        n
    }

    pub(super) fn is_done(&self) -> bool {
        self.emitted == self.size
    }
}
