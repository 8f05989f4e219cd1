//! Where sending sessions get their bytes and receiving sessions put them.
//!
//! Owns two small seams: [`Source`] (a file to send, stdin, a buffer) and
//! [`Sink`] (an upload being written). Sessions see only these traits; the
//! implementations that touch the file system live outside `proto` (the
//! store, the clients' file helpers), and tests use the in-memory ones
//! here. Reading or writing a block happens on the reactor thread, which is
//! fine for local disks and page-cache hits and is measured in `benches/`.

use bytes::BytesMut;
use std::io::ErrorKind;

/// Bytes to send, read on demand.
pub trait Source {
    /// Total length, when known in advance (a file's size).
    fn size(&self) -> Option<u64>;
    /// Appends up to `max` bytes to `dst`; `Ok(0)` is the end.
    ///
    /// # Errors
    /// The kind of the I/O error that stopped reading.
    fn read_into(&mut self, dst: &mut BytesMut, max: usize) -> Result<usize, ErrorKind>;
    /// The descriptor of the open file behind this source, if it is one the
    /// kernel can send from directly (`sendfile`); reading position is then
    /// the caller's business.
    fn file_fd(&self) -> Option<i32> {
        None
    }
}

/// Bytes being received, committed only when complete.
pub trait Sink {
    /// Writes all of `bytes`.
    ///
    /// # Errors
    /// The kind of the I/O error (disk full, …): the transfer fails.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ErrorKind>;
    /// Makes the bytes visible under their final name. Dropping a sink
    /// without committing throws everything away.
    ///
    /// # Errors
    /// The kind of the error that stopped the commit (for example
    /// `AlreadyExists` in create-only mode).
    fn commit(self: Box<Self>) -> Result<u64, ErrorKind>;
}

/// A [`Source`] over bytes in memory.
#[derive(Debug, Default)]
pub struct MemorySource {
    bytes: Vec<u8>,
    pos: usize,
}

impl MemorySource {
    /// A source that yields `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes, pos: 0 }
    }
}

impl Source for MemorySource {
    fn size(&self) -> Option<u64> {
        Some(self.bytes.len() as u64)
    }

    fn read_into(&mut self, dst: &mut BytesMut, max: usize) -> Result<usize, ErrorKind> {
        let n = max.min(self.bytes.len() - self.pos);
        dst.extend_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A [`Sink`] into memory; what it committed shows in the shared vector.
#[derive(Debug, Default)]
pub struct MemorySink {
    bytes: Vec<u8>,
    committed: std::rc::Rc<core::cell::RefCell<Option<Vec<u8>>>>,
}

impl MemorySink {
    /// A sink, and where its bytes appear once committed.
    pub fn new() -> (Self, std::rc::Rc<core::cell::RefCell<Option<Vec<u8>>>>) {
        let sink = Self::default();
        let committed = sink.committed.clone();
        (sink, committed)
    }
}

impl Sink for MemorySink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<u64, ErrorKind> {
        let len = self.bytes.len() as u64;
        *self.committed.borrow_mut() = Some(self.bytes);
        Ok(len)
    }
}

/// Why a file could not be opened or created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileError {
    /// The name breaks the rules (absolute, `..`, control bytes, too long)
    /// or leads outside the root (through a symbolic link, say).
    Forbidden,
    /// No such file (GET).
    NotFound,
    /// The file exists and overwriting is off (PUT).
    Exists,
    /// Larger than the store's maximum file size.
    TooLarge,
    /// Anything else, by kind.
    Io(ErrorKind),
}

impl core::fmt::Display for FileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Forbidden => f.write_str("forbidden"),
            Self::NotFound => f.write_str("not found"),
            Self::Exists => f.write_str("exists"),
            Self::TooLarge => f.write_str("too large"),
            Self::Io(kind) => write!(f, "{}", std::io::Error::from(*kind)),
        }
    }
}

/// The server's files, as a session sees them: open by name to read,
/// create by name to write. Implementations enforce the name rules, keep
/// every file under the root, and make uploads visible only on commit.
pub trait Files {
    /// Opens `name` for reading.
    ///
    /// # Errors
    /// [`FileError::Forbidden`], [`FileError::NotFound`], or I/O.
    fn open(&self, name: &str) -> Result<Box<dyn Source>, FileError>;
    /// Starts an upload to `name`; `size`, when known, is checked against
    /// the maximum up front. Nothing appears under `name` until
    /// [`Sink::commit`].
    ///
    /// # Errors
    /// [`FileError::Forbidden`], [`FileError::Exists`],
    /// [`FileError::TooLarge`], or I/O.
    fn create(&self, name: &str, size: Option<u64>) -> Result<Box<dyn Sink>, FileError>;

    /// The names of the files directly in the root (not in folders below
    /// it) that [`open`](Self::open) serves, sorted: at most `max` of
    /// them, and whether more were left out. For an index page. The
    /// default lists nothing (a store that cannot list).
    ///
    /// # Errors
    /// I/O, when the root cannot be read.
    fn list(&self, _max: usize) -> Result<(Vec<String>, bool), FileError> {
        Ok((Vec::new(), false))
    }
}

/// [`Files`] in memory, for tests and simulations: a map from name to
/// bytes, with the same outcomes a real store gives (no name rules beyond
/// refusing `..` and absolute names).
#[derive(Debug, Default, Clone)]
pub struct MemoryFiles {
    files: std::rc::Rc<core::cell::RefCell<std::collections::BTreeMap<String, Vec<u8>>>>,
    /// Allow replacing an existing file.
    pub allow_overwrite: bool,
    /// Largest file accepted.
    pub max_file_size: Option<u64>,
}

impl MemoryFiles {
    /// Adds (or replaces) a file.
    pub fn insert(&self, name: &str, bytes: Vec<u8>) {
        self.files.borrow_mut().insert(name.to_owned(), bytes);
    }

    /// A file's bytes.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        self.files.borrow().get(name).cloned()
    }
}

struct MemoryUpload {
    files: MemoryFiles,
    name: String,
    bytes: Vec<u8>,
}

impl Sink for MemoryUpload {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        if self
            .files
            .max_file_size
            .is_some_and(|max| (self.bytes.len() + bytes.len()) as u64 > max)
        {
            return Err(ErrorKind::FileTooLarge);
        }
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<u64, ErrorKind> {
        let mut files = self.files.files.borrow_mut();
        if !self.files.allow_overwrite && files.contains_key(&self.name) {
            return Err(ErrorKind::AlreadyExists);
        }
        let len = self.bytes.len() as u64;
        files.insert(self.name, self.bytes);
        Ok(len)
    }
}

impl Files for MemoryFiles {
    fn open(&self, name: &str) -> Result<Box<dyn Source>, FileError> {
        if name.starts_with('/') || name.split('/').any(|c| c == "..") {
            return Err(FileError::Forbidden);
        }
        let bytes = self.get(name).ok_or(FileError::NotFound)?;
        Ok(Box::new(MemorySource::new(bytes)))
    }

    fn create(&self, name: &str, size: Option<u64>) -> Result<Box<dyn Sink>, FileError> {
        if name.starts_with('/') || name.split('/').any(|c| c == "..") {
            return Err(FileError::Forbidden);
        }
        if !self.allow_overwrite && self.get(name).is_some() {
            return Err(FileError::Exists);
        }
        if size.zip(self.max_file_size).is_some_and(|(s, max)| s > max) {
            return Err(FileError::TooLarge);
        }
        Ok(Box::new(MemoryUpload {
            files: self.clone(),
            name: name.to_owned(),
            bytes: Vec::new(),
        }))
    }

    fn list(&self, max: usize) -> Result<(Vec<String>, bool), FileError> {
        let files = self.files.borrow();
        let mut top = files.keys().filter(|n| !n.contains('/'));
        let names: Vec<String> = top.by_ref().take(max).cloned().collect();
        Ok((names, top.next().is_some()))
    }
}
