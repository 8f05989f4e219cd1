//! Local files for the clients: sources to send and destinations to write.
//!
//! Owns the client side's file access (`mioperf msg FILE`, `put FILE`,
//! `get -o OUT`): plain files and standard input/output behind the
//! `proto::data` traits. It is not the server's store: no root, no name
//! rules — the user names their own files.

use crate::proto::data::Source;
use bytes::BytesMut;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

/// A file read front to back.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    /// Opens `path` for reading.
    ///
    /// # Errors
    /// It cannot be opened, or is not a regular file.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok(Self {
            file,
            len: meta.len(),
        })
    }
}

impl Source for FileSource {
    fn size(&self) -> Option<u64> {
        Some(self.len)
    }

    fn read_into(&mut self, dst: &mut BytesMut, max: usize) -> Result<usize, ErrorKind> {
        read_into(&mut self.file, dst, max)
    }
}

/// Appends up to `max` bytes from `r` to `dst` (one read, up to 1 MiB).
fn read_into(r: &mut impl Read, dst: &mut BytesMut, max: usize) -> Result<usize, ErrorKind> {
    let want = max.min(1 << 20);
    let start = dst.len();
    dst.resize(start + want, 0);
    loop {
        match r.read(&mut dst[start..]) {
            Ok(n) => {
                dst.truncate(start + n);
                return Ok(n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                dst.truncate(start);
                return Err(e.kind());
            }
        }
    }
}

/// Reads all of standard input, refusing more than `max` bytes.
///
/// # Errors
/// Reading failed, or the input is longer than `max`.
pub fn read_stdin(max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "standard input is longer than {max} bytes"
        )));
    }
    Ok(bytes)
}
