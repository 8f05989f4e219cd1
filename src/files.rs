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

/// Appends up to `max` bytes from `r` to `dst` (one read, up to 1 MiB),
/// retrying `EINTR`; on error `dst` is left as it was. The store's files
/// read through this too.
pub(crate) fn read_into(
    r: &mut impl Read,
    dst: &mut BytesMut,
    max: usize,
) -> Result<usize, ErrorKind> {
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

/// Bytes gathered before one `write` to a local file.
const SINK_BUFFER: usize = 256 * 1024;

/// Where `get` writes: a regular file that appears under its name only when
/// complete (a temporary file beside it, renamed on commit); a device, FIFO
/// or socket (`/dev/null`) written in place — renaming over one would
/// replace the device itself; or stdout.
#[derive(Debug)]
pub struct FileSink {
    /// Buffered: stop-and-wait and TFTP deliver blocks of 100–1468 bytes,
    /// and a `write` per block would cost a system call each.
    file: Option<std::io::BufWriter<File>>,
    temp: Option<std::path::PathBuf>,
    dest: Option<std::path::PathBuf>,
    written: u64,
}

impl FileSink {
    /// A sink for `dest`; refuses to replace an existing file unless `force`.
    ///
    /// # Errors
    /// `dest` exists (without `force`), or the temporary file cannot be made.
    pub fn create(dest: &Path, force: bool) -> std::io::Result<Self> {
        match std::fs::metadata(dest) {
            Ok(meta) if meta.is_dir() => {
                return Err(std::io::Error::other(format!(
                    "{} is a directory",
                    dest.display()
                )));
            }
            // Not a regular file: write into it, never rename over it.
            Ok(meta) if !meta.is_file() => {
                let file = std::fs::OpenOptions::new().write(true).open(dest)?;
                return Ok(Self {
                    file: Some(std::io::BufWriter::with_capacity(SINK_BUFFER, file)),
                    temp: None,
                    dest: None,
                    written: 0,
                });
            }
            Ok(_) if !force => {
                return Err(std::io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{} exists (use --force to replace it)", dest.display()),
                ));
            }
            _ => {}
        }
        let name = dest
            .file_name()
            .ok_or_else(|| std::io::Error::other("no file name"))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".mioperf-part-{}", std::process::id()));
        let temp = dest.with_file_name(temp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        Ok(Self {
            file: Some(std::io::BufWriter::with_capacity(SINK_BUFFER, file)),
            temp: Some(temp),
            dest: Some(dest.to_path_buf()),
            written: 0,
        })
    }

    /// A sink that writes to standard output as bytes arrive.
    pub fn stdout() -> Self {
        Self {
            file: None,
            temp: None,
            dest: None,
            written: 0,
        }
    }
}

impl crate::proto::data::Sink for FileSink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        use std::io::Write;
        let result = match &mut self.file {
            Some(f) => f.write_all(bytes),
            None => std::io::stdout().lock().write_all(bytes),
        };
        result.map_err(|e| e.kind())?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<u64, ErrorKind> {
        use std::io::Write;
        match (self.file.take(), self.temp.take(), self.dest.take()) {
            (Some(mut file), Some(temp), Some(dest)) => {
                if let Err(e) = file.flush() {
                    let _ = std::fs::remove_file(&temp);
                    return Err(e.kind());
                }
                drop(file);
                if let Err(e) = std::fs::rename(&temp, &dest) {
                    let _ = std::fs::remove_file(&temp);
                    return Err(e.kind());
                }
            }
            (Some(mut file), _, _) => file.flush().map_err(|e| e.kind())?,
            (None, _, _) => std::io::stdout().lock().flush().map_err(|e| e.kind())?,
        }
        Ok(self.written)
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Not committed: the partial download goes away.
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::data::Sink;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mioperf-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn sink_appears_only_on_commit_and_vanishes_otherwise() {
        let d = dir("sink");
        let dest = d.join("out.bin");
        let mut s = Box::new(FileSink::create(&dest, false).unwrap());
        s.write_all(b"abc").unwrap();
        assert!(!dest.exists());
        assert_eq!(s.commit(), Ok(3));
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        assert!(
            FileSink::create(&dest, false).is_err(),
            "no silent overwrite"
        );
        let mut s = FileSink::create(&dest, true).unwrap();
        s.write_all(b"partial").unwrap();
        drop(s);
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "no temp file left"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A device node must be written in place, never replaced by a rename
    /// (this once replaced /dev/null). Uses a node made in a temp folder,
    /// so a regression cannot touch the real one.
    #[test]
    fn a_device_destination_is_written_in_place() {
        use std::os::unix::fs::FileTypeExt;
        let d = dir("device");
        let node = d.join("null");
        let made = std::process::Command::new("mknod")
            .arg(&node)
            .args(["c", "1", "3"])
            .status()
            .is_ok_and(|s| s.success());
        if !made {
            eprintln!("skipped: mknod needs root");
            std::fs::remove_dir_all(&d).unwrap();
            return;
        }
        let mut s = Box::new(FileSink::create(&node, false).unwrap());
        s.write_all(b"discarded").unwrap();
        assert_eq!(s.commit(), Ok(9));
        assert!(
            std::fs::metadata(&node)
                .unwrap()
                .file_type()
                .is_char_device()
        );
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "no temp file");
        assert!(
            FileSink::create(&d, true).is_err(),
            "a directory is refused"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn source_reads_a_file_in_pieces() {
        let d = dir("source");
        let p = d.join("in.bin");
        std::fs::write(&p, vec![9u8; 3_000_000]).unwrap();
        let mut s = FileSource::open(&p).unwrap();
        assert_eq!(s.size(), Some(3_000_000));
        let mut buf = BytesMut::new();
        let mut total = 0;
        loop {
            let n = s.read_into(&mut buf, 2_000_000).unwrap();
            if n == 0 {
                break;
            }
            assert!(n <= 1 << 20);
            total += n;
        }
        assert_eq!(total, 3_000_000);
        assert!(FileSource::open(&d).is_err(), "a directory is not a source");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
