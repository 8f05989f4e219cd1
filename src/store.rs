//! The server's file store: files under one root folder, by name.
//!
//! Owns the name rules and the confinement of every file protocol (tcpfile
//! now, stopwait/tftp/window later): [`check_name`] refuses names that are
//! absolute, climb with `..`, carry control bytes or are too long, and every
//! lookup then happens relative to a descriptor of the root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (or, on kernels without
//! it, a component-by-component `openat(O_NOFOLLOW)` walk), so no symbolic
//! link, not even one planted after the check, leads outside the root. It
//! serves regular files only: a FIFO or device would block or confuse the
//! single-threaded reactor.
//!
//! Uploads go to a temporary file beside their target and are renamed into
//! place on [`Sink::commit`]; a dropped or failed upload removes its
//! temporary file. It must never let a partial upload appear under its
//! final name, never create directories, and never hold a whole file in
//! memory. The system calls themselves live in `reactor::sys::fs`; this
//! module holds no `unsafe`.

use crate::proto::data::{FileError, Files, Sink, Source};
use crate::reactor::sys::fs::{self as sysfs, FileKind};
use bytes::BytesMut;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Longest name a client may use, in bytes (the spec's limit, which is
/// also Linux's limit for one path component).
pub const MAX_NAME: usize = 255;

/// Marks the store's temporary files. Names containing it are refused so a
/// client can neither read another client's upload in flight nor rename
/// over it.
const PART_MARKER: &str = ".mioperf-part-";

/// Longest slice of the target's name kept in a temporary name, so that
/// `.{leaf}.mioperf-part-{pid}-{counter}` stays within `NAME_MAX` (255).
const TEMP_LEAF_MAX: usize = 200;

/// Largest read one [`StoreFile::read_into`] does: bounds the time one
/// session holds the reactor.
const MAX_READ: usize = 1 << 20;

/// The store's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Whether an upload may replace an existing file (off: create-only).
    pub allow_overwrite: bool,
    /// Largest file an upload may write, in bytes.
    pub max_file_size: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            allow_overwrite: false,
            max_file_size: 64 << 30,
        }
    }
}

/// Files under one root directory, opened and created by name.
#[derive(Debug)]
pub struct Store {
    /// `O_PATH` descriptor of the root: every lookup is relative to it, so
    /// renaming or replacing the root's path later changes nothing.
    root: OwnedFd,
    config: StoreConfig,
    /// Cleared the first time `openat2` answers `ENOSYS`; from then on
    /// lookups walk component by component.
    use_openat2: AtomicBool,
}

/// Checks `name` against the spec's rules: a non-empty relative path of at
/// most 255 bytes, without control bytes (below 0x20, and 0x7f), leading
/// `/`, backslash, empty components (`a//b`, a trailing `/`), or `.` and
/// `..` components.
///
/// Pure: it says nothing about whether the file exists or where symbolic
/// links lead; [`Store`] enforces that when it opens the name.
///
/// # Errors
/// [`FileError::Forbidden`] for any name that breaks a rule.
pub fn check_name(name: &str) -> Result<(), FileError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME {
        return Err(FileError::Forbidden);
    }
    // NUL is below 0x20, so this refuses it too.
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'\\') {
        return Err(FileError::Forbidden);
    }
    // A leading `/` shows up as an empty first component, a trailing one as
    // an empty last component.
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(FileError::Forbidden);
    }
    Ok(())
}

/// [`check_name`], plus the store's own reservation of temporary names.
fn check_store_name(name: &str) -> Result<(), FileError> {
    check_name(name)?;
    if name.contains(PART_MARKER) {
        return Err(FileError::Forbidden);
    }
    Ok(())
}

/// `name` as a C string; [`check_name`] has already refused NUL bytes.
fn c_name(name: &str) -> Result<CString, FileError> {
    CString::new(name).map_err(|_| FileError::Forbidden)
}

/// What a failed lookup means to a client.
fn lookup_error(err: &io::Error) -> FileError {
    match err.raw_os_error() {
        // A symbolic link (RESOLVE_NO_SYMLINKS, O_NOFOLLOW) or a path that
        // would leave the root (RESOLVE_BENEATH).
        Some(libc::ELOOP | libc::EXDEV | libc::ENAMETOOLONG) => FileError::Forbidden,
        // Missing, or a component that is a file where a directory is needed.
        Some(libc::ENOENT | libc::ENOTDIR) => FileError::NotFound,
        _ => FileError::Io(err.kind()),
    }
}

impl Store {
    /// Opens the store at `root`, creating the directory (and its parents)
    /// if missing.
    ///
    /// # Errors
    /// The directory cannot be created or opened, or `root` contains a NUL.
    pub fn open(root: &Path, config: StoreConfig) -> io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let path = CString::new(root.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "NUL byte in the root path"))?;
        Ok(Self {
            root: sysfs::open_dir_path(&path)?,
            config,
            use_openat2: AtomicBool::new(true),
        })
    }

    /// The policy this store was opened with.
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    /// Opens `name` for reading, as [`Files::open`] does, but returns the
    /// concrete reader (whose descriptor a `sendfile` path can use).
    ///
    /// # Errors
    /// [`FileError::Forbidden`] for a bad name, a symbolic link on the way,
    /// or anything but a regular file; [`FileError::NotFound`]; or I/O.
    pub fn open_file(&self, name: &str) -> Result<StoreFile, FileError> {
        check_store_name(name)?;
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
        // writer, and with it the whole reactor; the fstat below refuses it
        // anyway. It changes nothing for regular files. O_NOCTTY: a terminal
        // device must not become our controlling terminal before it is
        // refused.
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
        let fd = self.open_beneath(self.root.as_fd(), name, flags)?;
        let (len, kind) =
            sysfs::fstat_size_and_kind(fd.as_fd()).map_err(|e| FileError::Io(e.kind()))?;
        if kind != FileKind::Regular {
            return Err(FileError::Forbidden);
        }
        Ok(StoreFile {
            file: File::from(fd),
            len,
        })
    }

    /// Starts an upload to `name`, as [`Files::create`] does, but returns
    /// the concrete sink.
    ///
    /// # Errors
    /// [`FileError::Forbidden`] for a bad name, a symbolic link on the way,
    /// or an existing entry that is not a regular file;
    /// [`FileError::TooLarge`] when `size` is over the maximum;
    /// [`FileError::NotFound`] when the directory does not exist;
    /// [`FileError::Exists`] in create-only mode; or I/O.
    pub fn create_upload(&self, name: &str, size: Option<u64>) -> Result<Upload, FileError> {
        check_store_name(name)?;
        if size.is_some_and(|n| n > self.config.max_file_size) {
            return Err(FileError::TooLarge);
        }
        let (parent, leaf) = match name.rsplit_once('/') {
            Some((parent, leaf)) => (Some(parent), leaf),
            None => (None, name),
        };
        let dir = match parent {
            Some(parent) => {
                self.open_beneath(self.root.as_fd(), parent, libc::O_PATH | libc::O_DIRECTORY)?
            }
            // The upload owns its directory descriptor; a duplicate of the
            // root keeps it valid whatever happens to the store.
            None => self.root.try_clone().map_err(|e| FileError::Io(e.kind()))?,
        };
        let leaf_c = c_name(leaf)?;
        match sysfs::fstatat_kind(dir.as_fd(), &leaf_c) {
            Ok(FileKind::Regular) if self.config.allow_overwrite => {}
            Ok(FileKind::Regular) => return Err(FileError::Exists),
            // Replacing a link, directory or device is never what a PUT means.
            Ok(_) => return Err(FileError::Forbidden),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(FileError::Io(e.kind())),
        }
        let (tmp, fd) = create_temp(dir.as_fd(), leaf)?;
        Ok(Upload {
            dir,
            tmp,
            leaf: leaf_c,
            file: File::from(fd),
            written: 0,
            max: self.config.max_file_size,
            declared: size,
            overwrite: self.config.allow_overwrite,
            failed: None,
            tmp_exists: true,
        })
    }

    /// Opens `path` (already checked) beneath `dir` with `flags` plus
    /// `O_CLOEXEC`, never following a symbolic link.
    fn open_beneath(
        &self,
        dir: BorrowedFd<'_>,
        path: &str,
        flags: i32,
    ) -> Result<OwnedFd, FileError> {
        let flags = flags | libc::O_CLOEXEC;
        if self.use_openat2.load(Ordering::Relaxed) {
            let c_path = c_name(path)?;
            // No O_NOFOLLOW here: RESOLVE_NO_SYMLINKS already refuses a
            // trailing link with ELOOP, whereas O_PATH|O_NOFOLLOW would
            // open the link itself.
            let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
            match sysfs::openat2_beneath(dir, &c_path, flags, resolve) {
                Ok(fd) => return Ok(fd),
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    self.use_openat2.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(lookup_error(&e)),
            }
        }
        walk_beneath(dir, path, flags)
    }
}

/// The fallback for kernels without `openat2`: opens `path` one component
/// at a time, each directory with `O_PATH | O_DIRECTORY | O_NOFOLLOW` and
/// the last with `flags | O_NOFOLLOW`. [`check_name`] has refused `..` and
/// absolute paths, and no link is followed, so the walk cannot leave `dir`.
fn walk_beneath(dir: BorrowedFd<'_>, path: &str, flags: i32) -> Result<OwnedFd, FileError> {
    let dir_flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mut components = path.split('/').peekable();
    let mut current: Option<OwnedFd> = None;
    while let Some(component) = components.next() {
        let at = current.as_ref().map_or(dir, AsFd::as_fd);
        let c_component = c_name(component)?;
        let last = components.peek().is_none();
        let want = if last {
            flags | libc::O_NOFOLLOW
        } else {
            dir_flags
        };
        match sysfs::openat(at, &c_component, want, 0) {
            Ok(fd) if last => return Ok(fd),
            Ok(fd) => current = Some(fd),
            Err(e) => {
                // With O_DIRECTORY a link answers ENOTDIR, not ELOOP: ask
                // what the entry is, so a link is Forbidden either way.
                if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP))
                    && sysfs::fstatat_kind(at, &c_component).ok() == Some(FileKind::Symlink)
                {
                    return Err(FileError::Forbidden);
                }
                return Err(lookup_error(&e));
            }
        }
    }
    // Only reachable for an empty path, which check_name refuses.
    Err(FileError::Forbidden)
}

/// Creates a fresh temporary file for `leaf` in `dir`:
/// `.{leaf}.mioperf-part-{pid}-{counter}`, exclusively, mode 0644 (less the
/// umask). Retries with the next counter if a stale file of a crashed
/// process with the same pid holds the name.
fn create_temp(dir: BorrowedFd<'_>, leaf: &str) -> Result<(CString, OwnedFd), FileError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut keep = leaf.len().min(TEMP_LEAF_MAX);
    while !leaf.is_char_boundary(keep) {
        keep -= 1;
    }
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mut last = FileError::Io(ErrorKind::AlreadyExists);
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = format!(".{}{PART_MARKER}{}-{n}", &leaf[..keep], std::process::id());
        let tmp = c_name(&tmp)?;
        match sysfs::openat(dir, &tmp, flags, 0o644) {
            Ok(fd) => return Ok((tmp, fd)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last = FileError::Io(e.kind()),
            Err(e) => return Err(FileError::Io(e.kind())),
        }
    }
    Err(last)
}

/// A regular file in the store, read front to back.
#[derive(Debug)]
pub struct StoreFile {
    file: File,
    len: u64,
}

impl StoreFile {
    /// The open descriptor, for a zero-copy (`sendfile`) path. It stays
    /// owned by this reader.
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Source for StoreFile {
    fn size(&self) -> Option<u64> {
        Some(self.len)
    }

    fn read_into(&mut self, dst: &mut BytesMut, max: usize) -> Result<usize, ErrorKind> {
        crate::files::read_into(&mut self.file, dst, max.min(MAX_READ))
    }

    fn file_fd(&self) -> Option<i32> {
        Some(self.raw_fd())
    }
}

/// An upload in progress: a temporary file beside its target, renamed
/// into place by [`Sink::commit`] and removed if dropped before.
#[derive(Debug)]
pub struct Upload {
    /// The target's directory; both names below are relative to it.
    dir: OwnedFd,
    tmp: CString,
    leaf: CString,
    file: File,
    written: u64,
    max: u64,
    /// The size announced at creation: exactly this many bytes must arrive.
    declared: Option<u64>,
    overwrite: bool,
    /// The first write error: once a write failed, the upload can only be
    /// thrown away, never committed with a hole in it.
    failed: Option<ErrorKind>,
    /// Whether the temporary name still needs removing on drop.
    tmp_exists: bool,
}

impl Upload {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn fail(&mut self, kind: ErrorKind) -> Result<(), ErrorKind> {
        self.failed = Some(kind);
        Err(kind)
    }

    fn finish(&mut self) -> Result<u64, ErrorKind> {
        if let Some(kind) = self.failed {
            return Err(kind);
        }
        if let Some(declared) = self.declared
            && self.written != declared
        {
            // Fewer bytes than announced: a broken upload, not a file.
            return Err(ErrorKind::UnexpectedEof);
        }
        let dir = self.dir.as_fd();
        if self.overwrite {
            sysfs::renameat(dir, &self.tmp, &self.leaf).map_err(|e| e.kind())?;
            self.tmp_exists = false;
            return Ok(self.written);
        }
        match sysfs::renameat2_noreplace(dir, &self.tmp, &self.leaf) {
            Ok(()) => self.tmp_exists = false,
            // The file system cannot rename without replacing: a hard link
            // refuses an existing target just the same; the temporary name
            // is then removed on drop.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                sysfs::linkat(dir, &self.tmp, &self.leaf).map_err(|e| e.kind())?;
            }
            Err(e) => return Err(e.kind()),
        }
        Ok(self.written)
    }
}

impl Sink for Upload {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        if let Some(kind) = self.failed {
            return Err(kind);
        }
        let Some(total) = self.written.checked_add(bytes.len() as u64) else {
            return self.fail(ErrorKind::FileTooLarge);
        };
        // Checked before writing, so not one byte past the limit lands.
        if total > self.max {
            return self.fail(ErrorKind::FileTooLarge);
        }
        if self.declared.is_some_and(|declared| total > declared) {
            return self.fail(ErrorKind::InvalidData);
        }
        // std's write_all loops over short writes and EINTR.
        if let Err(e) = self.file.write_all(bytes) {
            return self.fail(e.kind());
        }
        self.written = total;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<u64, ErrorKind> {
        // On failure, drop removes the temporary file.
        self.finish()
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.tmp_exists
            && let Err(e) = sysfs::unlinkat(self.dir.as_fd(), &self.tmp)
            && e.kind() != ErrorKind::NotFound
        {
            log::warn!("store: could not remove temporary file {:?}: {e}", self.tmp);
        }
    }
}

impl Files for Store {
    fn open(&self, name: &str) -> Result<Box<dyn Source>, FileError> {
        Ok(Box::new(self.open_file(name)?))
    }

    fn create(&self, name: &str, size: Option<u64>) -> Result<Box<dyn Sink>, FileError> {
        Ok(Box::new(self.create_upload(name, size)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// A fresh `base` with `root/` (the store) and `outside/` (where links
    /// try to lead), removed on drop.
    struct Scratch {
        base: PathBuf,
        root: PathBuf,
        outside: PathBuf,
    }

    impl Scratch {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let base = std::env::temp_dir().join(format!(
                "mioperf-store-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&base);
            let root = base.join("root");
            let outside = base.join("outside");
            std::fs::create_dir_all(&outside).unwrap();
            std::fs::write(outside.join("secret"), b"secret").unwrap();
            Self {
                base,
                root,
                outside,
            }
        }

        /// Both ways of resolving: `openat2`, and the component walk.
        fn stores(&self, config: StoreConfig) -> [Store; 2] {
            let a = Store::open(&self.root, config).unwrap();
            let b = Store::open(&self.root, config).unwrap();
            b.use_openat2.store(false, Ordering::Relaxed);
            [a, b]
        }

        fn store(&self, config: StoreConfig) -> Store {
            Store::open(&self.root, config).unwrap()
        }

        /// The entries of `dir` under the root, sorted.
        fn list(&self, dir: &str) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }

    fn read_all(source: &mut dyn Source) -> Vec<u8> {
        let mut buf = BytesMut::new();
        while source.read_into(&mut buf, 7).unwrap() > 0 {}
        buf.to_vec()
    }

    fn overwrite() -> StoreConfig {
        StoreConfig {
            allow_overwrite: true,
            ..StoreConfig::default()
        }
    }

    #[test]
    fn names_that_break_the_rules_are_forbidden() {
        let long = "a".repeat(256);
        for bad in [
            "",
            "..",
            ".",
            "a/../b",
            "a/..",
            "../a",
            "/etc/passwd",
            "./a",
            "a/./b",
            "a//b",
            "a/",
            "/",
            "a\0b",
            "a\x01b",
            "\x1f",
            "a\x7fb",
            "a\nb",
            "a\\b",
            "..\\a",
            long.as_str(),
        ] {
            assert_eq!(check_name(bad), Err(FileError::Forbidden), "{bad:?}");
        }
    }

    #[test]
    fn ordinary_names_pass() {
        let longest = "a".repeat(255);
        for good in [
            "a",
            "file.txt",
            "dir/file",
            "a/b/c",
            ".hidden",
            "..a",
            "a..",
            "x y:z",
            "ünïcode",
            longest.as_str(),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn the_store_refuses_bad_names_and_its_own_temporary_names() {
        let s = Scratch::new();
        let store = s.store(overwrite());
        for bad in ["..", "/etc/passwd", "a//b", "a\0", "x.mioperf-part-1-2"] {
            assert_eq!(
                store.open_file(bad).err(),
                Some(FileError::Forbidden),
                "{bad:?}"
            );
            assert_eq!(
                store.create_upload(bad, None).err(),
                Some(FileError::Forbidden),
                "{bad:?}"
            );
        }
        assert!(s.list("").is_empty());
    }

    #[test]
    fn root_is_created_and_uploads_read_back() {
        let s = Scratch::new();
        assert!(!s.root.exists());
        let store = s.store(StoreConfig::default());
        assert!(s.root.is_dir());
        let mut sink = store.create("hello.txt", Some(11)).unwrap();
        sink.write_all(b"hello ").unwrap();
        sink.write_all(b"world").unwrap();
        assert_eq!(sink.commit(), Ok(11));
        assert_eq!(
            std::fs::read(s.root.join("hello.txt")).unwrap(),
            b"hello world"
        );
        let mut source = store.open("hello.txt").unwrap();
        assert_eq!(source.size(), Some(11));
        assert_eq!(read_all(source.as_mut()), b"hello world");
        assert_eq!(s.list(""), ["hello.txt"]);
    }

    #[test]
    fn subdirectories_work_when_they_exist_and_are_never_created() {
        let s = Scratch::new();
        std::fs::create_dir_all(s.root.join("d/e")).unwrap();
        for store in s.stores(StoreConfig::default()) {
            let name = if store.use_openat2.load(Ordering::Relaxed) {
                "d/e/one"
            } else {
                "d/e/two"
            };
            let mut sink = store.create(name, None).unwrap();
            sink.write_all(b"x").unwrap();
            assert_eq!(sink.commit(), Ok(1));
            assert_eq!(read_all(store.open(name).unwrap().as_mut()), b"x");
            assert_eq!(
                store.create("missing/f", None).err(),
                Some(FileError::NotFound)
            );
            assert_eq!(store.open("missing/f").err(), Some(FileError::NotFound));
            // A file where a directory should be.
            assert_eq!(store.open("d/e/one/x").err(), Some(FileError::NotFound));
        }
        assert_eq!(s.list("d/e"), ["one", "two"]);
        assert!(!s.root.join("missing").exists());
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let s = Scratch::new();
        for store in s.stores(StoreConfig::default()) {
            assert_eq!(store.open("nope").err(), Some(FileError::NotFound));
        }
    }

    #[test]
    fn symlinks_out_of_the_root_are_forbidden() {
        let s = Scratch::new();
        std::fs::create_dir_all(&s.root).unwrap();
        std::os::unix::fs::symlink(s.outside.join("secret"), s.root.join("leak")).unwrap();
        std::os::unix::fs::symlink(&s.outside, s.root.join("out")).unwrap();
        std::os::unix::fs::symlink("../outside/secret", s.root.join("rel")).unwrap();
        for store in s.stores(overwrite()) {
            for name in ["leak", "rel", "out/secret"] {
                assert_eq!(store.open(name).err(), Some(FileError::Forbidden), "{name}");
            }
            // Create through a link: the link as the target, and as a
            // directory in the middle of the path.
            for name in ["leak", "rel", "out/secret", "out/new"] {
                assert_eq!(
                    store.create(name, None).err(),
                    Some(FileError::Forbidden),
                    "{name}"
                );
            }
        }
        assert_eq!(std::fs::read(s.outside.join("secret")).unwrap(), b"secret");
        let outside = std::fs::read_dir(&s.outside).unwrap().count();
        assert_eq!(outside, 1, "nothing was created outside");
        assert_eq!(s.list(""), ["leak", "out", "rel"]);
    }

    #[test]
    fn symlinks_inside_the_root_are_refused_too() {
        let s = Scratch::new();
        std::fs::create_dir_all(s.root.join("d")).unwrap();
        std::fs::write(s.root.join("d/f"), b"f").unwrap();
        std::os::unix::fs::symlink("d/f", s.root.join("lf")).unwrap();
        std::os::unix::fs::symlink("d", s.root.join("ld")).unwrap();
        for store in s.stores(StoreConfig::default()) {
            assert_eq!(store.open("lf").err(), Some(FileError::Forbidden));
            assert_eq!(store.open("ld/f").err(), Some(FileError::Forbidden));
            assert_eq!(store.open("d/f").map(|f| f.size()).ok(), Some(Some(1)));
        }
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let s = Scratch::new();
        std::fs::create_dir_all(&s.root).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(s.root.join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        let root = s.root.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        // If the open blocked, this thread would hang; the test fails on
        // the timeout instead of hanging with it.
        std::thread::spawn(move || {
            let store = Store::open(&root, overwrite()).unwrap();
            let walk = Store::open(&root, overwrite()).unwrap();
            walk.use_openat2.store(false, Ordering::Relaxed);
            let results = [
                store.open("pipe").err(),
                walk.open("pipe").err(),
                store.create("pipe", None).err(),
            ];
            tx.send(results).unwrap();
        });
        let results = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("open blocked");
        assert_eq!(results, [Some(FileError::Forbidden); 3]);
    }

    #[test]
    fn a_directory_is_refused() {
        let s = Scratch::new();
        std::fs::create_dir_all(s.root.join("d")).unwrap();
        for store in s.stores(overwrite()) {
            assert_eq!(store.open("d").err(), Some(FileError::Forbidden));
            assert_eq!(store.create("d", None).err(), Some(FileError::Forbidden));
        }
        assert!(s.root.join("d").is_dir());
    }

    #[test]
    fn create_only_refuses_an_existing_file() {
        let s = Scratch::new();
        let store = s.store(StoreConfig::default());
        std::fs::write(s.root.join("f"), b"old").unwrap();
        assert_eq!(store.create("f", None).err(), Some(FileError::Exists));
        assert_eq!(std::fs::read(s.root.join("f")).unwrap(), b"old");
        assert_eq!(s.list(""), ["f"]);
    }

    #[test]
    fn overwrite_replaces_when_allowed() {
        let s = Scratch::new();
        let store = s.store(overwrite());
        std::fs::write(s.root.join("f"), b"old contents").unwrap();
        let mut sink = store.create("f", None).unwrap();
        sink.write_all(b"new").unwrap();
        // Until the commit, readers still see the old file.
        assert_eq!(std::fs::read(s.root.join("f")).unwrap(), b"old contents");
        assert_eq!(sink.commit(), Ok(3));
        assert_eq!(std::fs::read(s.root.join("f")).unwrap(), b"new");
        assert_eq!(s.list(""), ["f"]);
    }

    #[test]
    fn the_declared_size_is_checked_up_front() {
        let s = Scratch::new();
        let config = StoreConfig {
            max_file_size: 10,
            ..StoreConfig::default()
        };
        let store = s.store(config);
        assert_eq!(store.create("f", Some(11)).err(), Some(FileError::TooLarge));
        assert_eq!(
            store.create("f", Some(u64::MAX)).err(),
            Some(FileError::TooLarge)
        );
        assert!(s.list("").is_empty());
        let mut sink = store.create("f", Some(10)).unwrap();
        sink.write_all(&[1; 10]).unwrap();
        assert_eq!(sink.commit(), Ok(10));
    }

    #[test]
    fn the_running_count_stops_at_the_maximum() {
        let s = Scratch::new();
        let config = StoreConfig {
            max_file_size: 10,
            ..StoreConfig::default()
        };
        let store = s.store(config);
        let mut sink = store.create("f", None).unwrap();
        sink.write_all(&[1; 6]).unwrap();
        sink.write_all(&[2; 4]).unwrap();
        assert_eq!(sink.write_all(&[3]), Err(ErrorKind::FileTooLarge));
        // Poisoned: no more writes, no commit, nothing left behind.
        assert_eq!(sink.write_all(&[]), Err(ErrorKind::FileTooLarge));
        assert_eq!(sink.commit(), Err(ErrorKind::FileTooLarge));
        assert!(s.list("").is_empty());
    }

    #[test]
    fn an_upload_must_match_its_declared_size() {
        let s = Scratch::new();
        let store = s.store(StoreConfig::default());
        let mut short = store.create("short", Some(5)).unwrap();
        short.write_all(b"abc").unwrap();
        assert_eq!(short.commit(), Err(ErrorKind::UnexpectedEof));
        let mut long = store.create("long", Some(2)).unwrap();
        assert_eq!(long.write_all(b"abc"), Err(ErrorKind::InvalidData));
        assert_eq!(long.commit(), Err(ErrorKind::InvalidData));
        assert!(s.list("").is_empty());
    }

    #[test]
    fn nothing_appears_before_commit_and_a_dropped_upload_leaves_nothing() {
        let s = Scratch::new();
        std::fs::create_dir_all(s.root.join("d")).unwrap();
        let store = s.store(StoreConfig::default());
        let mut sink = store.create("d/f", None).unwrap();
        sink.write_all(&[7; 1000]).unwrap();
        assert!(!s.root.join("d/f").exists());
        // The temporary file sits beside the target, hidden and marked.
        let listed = s.list("d");
        assert_eq!(listed.len(), 1);
        assert!(listed[0].starts_with(".f.mioperf-part-"), "{listed:?}");
        assert_eq!(store.open("d/f").err(), Some(FileError::NotFound));
        drop(sink);
        assert!(s.list("d").is_empty());
        // Commit makes it appear whole, with no temporary left.
        let mut sink = store.create("d/f", None).unwrap();
        sink.write_all(&[7; 1000]).unwrap();
        assert!(!s.root.join("d/f").exists());
        assert_eq!(sink.commit(), Ok(1000));
        assert_eq!(s.list("d"), ["f"]);
        assert_eq!(std::fs::read(s.root.join("d/f")).unwrap(), [7; 1000]);
    }

    #[test]
    fn a_file_created_meanwhile_wins_in_create_only_mode() {
        let s = Scratch::new();
        let store = s.store(StoreConfig::default());
        let mut sink = store.create("f", None).unwrap();
        sink.write_all(b"mine").unwrap();
        std::fs::write(s.root.join("f"), b"theirs").unwrap();
        assert_eq!(sink.commit(), Err(ErrorKind::AlreadyExists));
        assert_eq!(std::fs::read(s.root.join("f")).unwrap(), b"theirs");
        assert_eq!(s.list(""), ["f"]);
    }

    #[test]
    fn a_zero_byte_upload_commits_an_empty_file() {
        let s = Scratch::new();
        let store = s.store(StoreConfig::default());
        assert_eq!(store.create("empty", Some(0)).unwrap().commit(), Ok(0));
        assert_eq!(store.create("empty2", None).unwrap().commit(), Ok(0));
        assert_eq!(s.list(""), ["empty", "empty2"]);
        let mut source = store.open("empty").unwrap();
        assert_eq!(source.size(), Some(0));
        let mut buf = BytesMut::new();
        assert_eq!(source.read_into(&mut buf, 100), Ok(0));
        assert!(buf.is_empty());
    }

    #[test]
    fn the_longest_name_gets_a_temporary_name_that_fits() {
        let s = Scratch::new();
        let store = s.store(StoreConfig::default());
        let name = "é".repeat(127); // 254 bytes, two per char
        let mut sink = store.create(&name, None).unwrap();
        sink.write_all(b"x").unwrap();
        assert_eq!(sink.commit(), Ok(1));
        assert_eq!(s.list(""), [name]);
    }

    #[test]
    fn a_four_gib_sparse_file_is_served_in_bounded_reads() {
        let s = Scratch::new();
        let store = s.store(StoreConfig::default());
        let mut file = File::create(s.root.join("big")).unwrap();
        file.write_all(b"head").unwrap();
        file.set_len(4 << 30).unwrap();
        drop(file);
        let mut source = store.open_file("big").unwrap();
        assert!(source.raw_fd() >= 0);
        assert_eq!(source.size(), Some(4 << 30));
        let mut buf = BytesMut::from(&b"kept"[..]);
        let n = source.read_into(&mut buf, usize::MAX).unwrap();
        assert_eq!(n, MAX_READ, "one read, capped at 1 MiB");
        assert_eq!(buf.len(), 4 + MAX_READ);
        assert_eq!(&buf[..8], b"kepthead");
        assert!(buf[8..].iter().all(|&b| b == 0));
        let n = source.read_into(&mut buf, 10).unwrap();
        assert_eq!(n, 10);
    }
}
