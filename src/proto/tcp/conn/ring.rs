//! The two byte buffers of a connection: [`SendRing`] (bytes written by
//! the application, kept from SND.UNA until acknowledged) and
//! [`RecvRing`] (bytes received, in order and out of order, kept until the
//! application consumes them).
//!
//! Both grow lazily, doubling, up to the limit the connection was
//! configured with, so an idle connection holds no buffer memory at all.
//! They never know sequence numbers: the engine speaks offsets (0 is the
//! oldest byte held). They never allocate per segment once grown.

use std::collections::VecDeque;

/// The first allocation of a buffer that grows: small enough that a
/// connection moving a few bytes stays small, large enough that a bulk
/// transfer reaches its limit in a handful of doublings.
const FIRST_ALLOCATION: usize = 4096;

/// Bytes queued for sending, from the oldest unacknowledged one.
#[derive(Debug, Default)]
pub(super) struct SendRing {
    bytes: VecDeque<u8>,
}

impl SendRing {
    /// Bytes held.
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends as much of `data` as keeps the ring within `limit` bytes;
    /// returns how much it took. Grows by doubling, capped at `limit`.
    pub(super) fn push(&mut self, data: &[u8], limit: usize) -> usize {
        let n = data.len().min(limit.saturating_sub(self.bytes.len()));
        if n == 0 {
            return 0;
        }
        let need = self.bytes.len() + n;
        if need > self.bytes.capacity() {
            let target = (self.bytes.capacity() * 2)
                .max(FIRST_ALLOCATION)
                .min(limit)
                .max(need);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend(&data[..n]);
        n
    }

    /// Gives the memory back when nothing is held (no more will be sent).
    pub(super) fn release(&mut self) {
        if self.bytes.is_empty() {
            self.bytes = VecDeque::new();
        }
    }

    /// Forgets the oldest `n` bytes (acknowledged).
    pub(super) fn drop_front(&mut self, n: usize) {
        let n = n.min(self.bytes.len());
        self.bytes.drain(..n);
    }

    /// Copies the bytes at `offset..offset + out.len()` into `out`. The
    /// engine never asks beyond [`len`](Self::len); if it did, the tail of
    /// `out` is left as it was.
    pub(super) fn copy_out(&self, offset: usize, out: &mut [u8]) {
        let (a, b) = self.bytes.as_slices();
        let mut done = 0;
        if offset < a.len() {
            let n = (a.len() - offset).min(out.len());
            out[..n].copy_from_slice(&a[offset..offset + n]);
            done = n;
        }
        if done < out.len() {
            let start = offset + done - a.len();
            if start < b.len() {
                let n = (b.len() - start).min(out.len() - done);
                out[done..done + n].copy_from_slice(&b[start..start + n]);
            }
        }
    }

    /// Bytes of memory held (for the idle-cost test).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

/// Received bytes: offset 0 is the oldest byte the application has not
/// consumed. Out-of-order bytes are written at their offsets; which ranges
/// are valid is the assembler's business, not this ring's.
#[derive(Debug, Default)]
pub(super) struct RecvRing {
    /// The storage; its length is the ring's size (0 until the first byte).
    buf: Vec<u8>,
    /// Where offset 0 is in `buf`.
    head: usize,
}

impl RecvRing {
    /// Writes `data` at `offset`, growing (up to `limit` bytes of storage)
    /// so that it fits; the engine trims segments to the window, so
    /// `offset + data.len() <= limit`. Anything beyond is cut.
    pub(super) fn write(&mut self, offset: usize, data: &[u8], limit: usize) {
        let need = (offset + data.len()).min(limit);
        if need > self.buf.len() {
            self.grow(need, limit);
        }
        let size = self.buf.len();
        if size == 0 || offset >= size {
            return;
        }
        let data = &data[..data.len().min(size - offset)];
        let start = (self.head + offset) % size;
        let first = data.len().min(size - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Re-lays the ring out from offset 0 in a larger allocation.
    fn grow(&mut self, need: usize, limit: usize) {
        let size = (self.buf.len() * 2)
            .max(FIRST_ALLOCATION)
            .max(need.next_power_of_two())
            .min(limit.max(need));
        let mut bigger = vec![0; size];
        let old = self.buf.len();
        bigger[..old - self.head].copy_from_slice(&self.buf[self.head..]);
        bigger[old - self.head..old].copy_from_slice(&self.buf[..self.head]);
        self.buf = bigger;
        self.head = 0;
    }

    /// The first contiguous run of the `n` bytes at offset 0 (shorter than
    /// `n` when they wrap around the end of the storage).
    pub(super) fn front(&self, n: usize) -> &[u8] {
        let size = self.buf.len();
        if size == 0 {
            return &[];
        }
        let n = n.min(size - self.head);
        &self.buf[self.head..self.head + n]
    }

    /// Gives the memory back; the engine calls it only when no byte is
    /// held (none unconsumed, none out of order) and none can come.
    pub(super) fn release(&mut self) {
        self.buf = Vec::new();
        self.head = 0;
    }

    /// The application took `n` bytes: offsets shift down by `n`.
    pub(super) fn consume(&mut self, n: usize) {
        let size = self.buf.len();
        if size > 0 {
            self.head = (self.head + n) % size;
        }
    }

    /// Bytes of memory held (for the idle-cost test).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_ring_grows_lazily_and_copies_across_the_wrap() {
        let mut r = SendRing::default();
        assert_eq!(r.capacity(), 0);
        assert_eq!(r.push(&[1; 3000], 10_000), 3000);
        assert!(r.capacity() < 8192);
        r.drop_front(2500);
        assert_eq!(r.push(&[2; 9600], 10_000), 9500);
        assert_eq!(r.len(), 10_000);
        let mut out = [0; 600];
        r.copy_out(0, &mut out);
        assert_eq!(&out[..500], &[1; 500][..]);
        assert_eq!(&out[500..], &[2; 100][..]);
        assert_eq!(r.push(&[3], 10_000), 0, "full");
    }

    #[test]
    fn recv_ring_keeps_out_of_order_bytes_across_growth_and_wrap() {
        let mut r = RecvRing::default();
        r.write(5000, &[7; 100], 8192);
        r.write(0, &[1; 5000], 8192);
        assert_eq!(r.front(6000).len(), 6000);
        assert_eq!(r.front(6000)[4999..5001], [1, 7]);
        r.consume(6000);
        r.write(0, &[9; 4000], 8192);
        let a = r.front(4000).len();
        assert_eq!(a, 8192 - 6000);
        r.consume(a);
        assert_eq!(r.front(4000 - a), &vec![9; 4000 - a][..]);
    }
}
