//! netascii: the wire form of text in TFTP (RFC 1350, after RFC 764).
//!
//! Owns the translation between local text (lines end in LF) and netascii
//! (lines end in CR LF; a lone CR is CR NUL), as a [`Source`] adapter for
//! sending and a [`Sink`] adapter for receiving. Octet mode uses neither.

use crate::proto::data::{Sink, Source};
use bytes::BytesMut;
use std::io::ErrorKind;

/// Sends local text as netascii.
pub(crate) struct ToNetascii {
    inner: Box<dyn Source>,
    /// Translated bytes not yet handed out.
    pending: BytesMut,
    raw: BytesMut,
}

impl ToNetascii {
    pub(crate) fn new(inner: Box<dyn Source>) -> Self {
        Self {
            inner,
            pending: BytesMut::new(),
            raw: BytesMut::new(),
        }
    }
}

impl Source for ToNetascii {
    /// Unknown: translation changes the length.
    fn size(&self) -> Option<u64> {
        None
    }

    fn read_into(&mut self, dst: &mut BytesMut, max: usize) -> Result<usize, ErrorKind> {
        if self.pending.is_empty() {
            self.raw.clear();
            if self.inner.read_into(&mut self.raw, max.max(1))? == 0 {
                return Ok(0);
            }
            for &b in &self.raw {
                match b {
                    b'\n' => self.pending.extend_from_slice(b"\r\n"),
                    b'\r' => self.pending.extend_from_slice(b"\r\0"),
                    _ => self.pending.extend_from_slice(&[b]),
                }
            }
        }
        let n = max.min(self.pending.len());
        dst.extend_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

/// Receives netascii as local text.
pub(crate) struct FromNetascii {
    inner: Box<dyn Sink>,
    /// A CR at the end of the last chunk, waiting for its partner.
    cr: bool,
    out: Vec<u8>,
}

impl FromNetascii {
    pub(crate) fn new(inner: Box<dyn Sink>) -> Self {
        Self {
            inner,
            cr: false,
            out: Vec::new(),
        }
    }
}

impl Sink for FromNetascii {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        self.out.clear();
        for &b in bytes {
            if self.cr {
                self.cr = false;
                match b {
                    b'\n' => self.out.push(b'\n'),
                    b'\0' => self.out.push(b'\r'),
                    // Not netascii, but do not lose the bytes.
                    other => self.out.extend_from_slice(&[b'\r', other]),
                }
            } else if b == b'\r' {
                self.cr = true;
            } else {
                self.out.push(b);
            }
        }
        self.inner.write_all(&self.out)
    }

    fn commit(mut self: Box<Self>) -> Result<u64, ErrorKind> {
        if self.cr {
            self.inner.write_all(b"\r")?;
        }
        self.inner.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::{MemorySink, MemorySource};

    #[test]
    fn round_trip_through_netascii() {
        let text = b"line one\nline two\r\nbare\rcr\n".to_vec();
        let mut src = ToNetascii::new(Box::new(MemorySource::new(text.clone())));
        let mut wire = BytesMut::new();
        while src.read_into(&mut wire, 5).unwrap() > 0 {}
        assert_eq!(&wire[..], b"line one\r\nline two\r\0\r\nbare\r\0cr\r\n");
        let (sink, committed) = MemorySink::new();
        let mut back = Box::new(FromNetascii::new(Box::new(sink)));
        // Split inside a CR LF pair on purpose.
        for chunk in wire.chunks(9) {
            back.write_all(chunk).unwrap();
        }
        back.commit().unwrap();
        assert_eq!(committed.borrow().clone().unwrap(), text);
    }
}
