//! The server's file store: files under one root folder, by name.
//!
//! Owns the name rules and the confinement of every file protocol
//! (tcpfile, stopwait, tftp): [`check_name`] refuses names that are
//! absolute, climb with `..`, carry control bytes or are too long, and every
//! lookup then happens relative to a descriptor of the root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` (or, on kernels
//! without it, a component-by-component `openat(O_NOFOLLOW)` walk that
//! resolves symbolic links itself, see [`walk_beneath`]). Symbolic links
//! that stay inside the root are followed; a link that would leave it
//! (absolute, or climbing above the root with `..`), even one planted after
//! the check, is refused, and so is a loop. It serves regular files only: a
//! FIFO or device would block or confuse the single-threaded reactor.
//!
//! Uploads go to a temporary file beside their target and are renamed into
//! place on [`Sink::commit`] (after `fsync` of the file, and followed by
//! `fsync` of its directory, when [`StoreConfig::durable`]); a dropped or
//! failed upload removes its temporary file, and [`Store::remove_leftovers`]
//! removes those a killed process left. An upload never writes through or
//! replaces a symbolic link as its last component. It must never let a
//! partial upload appear under its final name, never create directories,
//! never remove a file that is not one of its own temporary files, and
//! never hold a whole file in memory. The system calls themselves live in
//! `reactor::sys::fs`; this module holds no `unsafe`.

use crate::proto::data::{FileError, Files, Sink, Source};
use crate::reactor::sys::fs::{self as sysfs, FileKind};
use bytes::BytesMut;
use std::ffi::{CStr, CString};
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

/// Most symbolic links one lookup follows in the fallback walk: Linux's
/// own limit (`MAXSYMLINKS`), so the walk refuses exactly the chains and
/// loops `openat2` refuses.
const MAX_LINK_HOPS: usize = 40;

/// Most `openat` calls one fallback walk makes: bounds the work a root
/// full of long link targets (each `..` in one re-walks from the root)
/// can cost one request. A 255-byte name needs at most 128.
const MAX_WALK_OPENS: usize = 1024;

/// Times a lookup retries `openat2` when it answers `EAGAIN`, which it
/// does under `RESOLVE_BENEATH` when a rename elsewhere raced the
/// resolution of a `..` in a link target; a retry nearly always succeeds.
const OPENAT2_RETRIES: usize = 4;

/// Deepest directory level below the root the start-up sweep
/// ([`Store::remove_leftovers`]) looks into: temporary files sit beside
/// uploads, and a 255-byte name cannot nest deeper than 128 levels, but a
/// sweep bound far below that keeps a pathological tree from delaying
/// start-up. Leftovers deeper down stay (and the log says the bound hit).
pub const SWEEP_MAX_DEPTH: usize = 32;

/// Most directory entries the start-up sweep looks at, over the whole
/// tree: bounds its time and memory in a root with millions of files.
/// The rest stay unswept (and the log says the bound hit).
pub const SWEEP_MAX_ENTRIES: usize = 100_000;

/// Removed (and, apart, kept) files the sweep names one by one in the
/// log; beyond this it only counts, so a root full of leftovers cannot
/// flood the log.
const SWEEP_LOG_MAX: usize = 64;

/// The store's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Whether an upload may replace an existing file (off: create-only).
    pub allow_overwrite: bool,
    /// Largest file an upload may write, in bytes.
    pub max_file_size: u64,
    /// `fsync` the file before its rename and its directory after, so an
    /// upload acknowledged survives a power loss. Off by default: it costs
    /// a disk flush per upload, which benchmarks do not want to measure.
    pub durable: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            allow_overwrite: false,
            max_file_size: 64 << 30,
            durable: false,
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
        // Too many links, or a loop (ELOOP); a path or link that would
        // leave the root (EXDEV, from RESOLVE_BENEATH); a link target too
        // long to resolve.
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

    /// Whether an upload could land: creates and removes a temporary file
    /// in the root, as an upload does (its name is one
    /// [`remove_leftovers`](Self::remove_leftovers) knows, should the
    /// process die in between).
    ///
    /// # Errors
    /// The file cannot be created (read-only file system, permissions,
    /// a full disk's inodes) or removed.
    pub fn probe_writable(&self) -> io::Result<()> {
        let (tmp, fd) = try_create_temp(self.root.as_fd(), "probe")?;
        drop(fd);
        sysfs::unlinkat(self.root.as_fd(), &tmp)
    }

    /// The policy this store was opened with.
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    /// Removes the temporary files a killed or crashed process left in the
    /// root and its subdirectories, and logs (at info) what it removed.
    ///
    /// Only regular files named exactly as [`create_temp`] names them
    /// (`.{leaf}.mioperf-part-{pid}-{counter}`, see [`temp_name_pid`]) are
    /// removed, and only when `pid` is this process or no process at all:
    /// a file whose `pid` is another live process may be an upload in
    /// flight on a second server sharing the root, so it stays (a reused
    /// pid keeps a true leftover until a later start). Symbolic links are
    /// never followed, directories are entered with `O_NOFOLLOW` relative
    /// to their parent's descriptor, and the walk is bounded by
    /// [`SWEEP_MAX_DEPTH`] and [`SWEEP_MAX_ENTRIES`].
    ///
    /// Call it before this process starts any upload under this root: a
    /// temporary file with our own pid is then certainly a dead one's.
    pub fn remove_leftovers(&self) -> Sweep {
        let mut sweep = Sweep::default();
        let mut budget = SWEEP_MAX_ENTRIES;
        sweep_dir(self.root.as_fd(), "", 0, &mut budget, &mut sweep);
        if sweep.removed > 0 || sweep.kept_live > 0 {
            log::info!(
                "store: removed {} leftover temporary file(s){}; kept {} of live processes",
                sweep.removed,
                if sweep.removed > SWEEP_LOG_MAX {
                    format!(" ({} not listed)", sweep.removed - SWEEP_LOG_MAX)
                } else {
                    String::new()
                },
                sweep.kept_live,
            );
        }
        if sweep.failed > SWEEP_LOG_MAX {
            log::warn!(
                "store: the leftover sweep failed on {} entries (the first {SWEEP_LOG_MAX} listed)",
                sweep.failed
            );
        }
        if sweep.bounded {
            log::warn!(
                "store: the leftover sweep stopped at its bound ({SWEEP_MAX_ENTRIES} entries, \
                 {SWEEP_MAX_DEPTH} levels); temporary files beyond it stay"
            );
        }
        sweep
    }

    /// Opens `name` for reading, as [`Files::open`] does, but returns the
    /// concrete reader (whose descriptor a `sendfile` path can use).
    ///
    /// # Errors
    /// [`FileError::Forbidden`] for a bad name, a path or symbolic link
    /// that would leave the root, a link loop, or anything but a regular
    /// file; [`FileError::NotFound`]; or I/O.
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
    /// [`FileError::Forbidden`] for a bad name, a path or symbolic link
    /// that would leave the root, or an existing entry that is not a
    /// regular file (a symbolic link included);
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
            // Replacing a link, directory or device is never what a PUT
            // means, and writing through a link would change the file
            // under another name too: the links are the root owner's.
            // (Should one be planted after this check, the rename replaces
            // the link itself and never writes through it.)
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
            durable: self.config.durable,
            failed: None,
            tmp_exists: true,
        })
    }

    /// Opens `path` (already checked) beneath `dir` with `flags` plus
    /// `O_CLOEXEC`, following symbolic links only while they stay beneath
    /// `dir`.
    fn open_beneath(
        &self,
        dir: BorrowedFd<'_>,
        path: &str,
        flags: i32,
    ) -> Result<OwnedFd, FileError> {
        let flags = flags | libc::O_CLOEXEC;
        if self.use_openat2.load(Ordering::Relaxed) {
            let c_path = c_name(path)?;
            // RESOLVE_BENEATH refuses, atomically, every step above `dir`
            // (`..` past it, an absolute link); links inside are followed.
            // It disables magic links (/proc/self/fd/N) today, but the man
            // page says that may change, so ask for it explicitly.
            let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
            let mut tries = 0;
            loop {
                match sysfs::openat2_beneath(dir, &c_path, flags, resolve) {
                    Ok(fd) => return Ok(fd),
                    Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                        self.use_openat2.store(false, Ordering::Relaxed);
                        break;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < OPENAT2_RETRIES => {
                        tries += 1;
                    }
                    Err(e) => return Err(lookup_error(&e)),
                }
            }
        }
        walk_beneath(dir, path, flags)
    }
}

/// The fallback for kernels without `openat2`: resolves `path` beneath
/// `root` one component at a time, as `RESOLVE_BENEATH` would.
///
/// Every component is opened with `O_NOFOLLOW` relative to the directory
/// descriptor reached so far (directories `O_PATH | O_DIRECTORY`, the last
/// with `flags`), so the kernel never follows a link for us. When a
/// component is a link, its target is read (`readlinkat`) and its
/// components are resolved in its place, by the same rules: an absolute
/// target is refused (as `RESOLVE_BENEATH` refuses it), and `..` climbs
/// back through the directories this walk itself descended, re-walked
/// from `root` by name: a `..` above `root` is refused, and no path string
/// ever leaves `root`. [`MAX_LINK_HOPS`] links and [`MAX_WALK_OPENS`]
/// opens bound one lookup; a loop hits the first.
///
/// Compared with `openat2`, a directory renamed out of the root while this
/// walk is inside it can still be walked below (the kernel's check is
/// atomic, this one is not); it never reaches anything that was not
/// beneath the root when the walk passed it.
fn walk_beneath(root: BorrowedFd<'_>, path: &str, flags: i32) -> Result<OwnedFd, FileError> {
    let mut walk = Walk {
        root,
        names: Vec::new(),
        current: None,
        opens: 0,
    };
    // Components still to resolve, the next one last, so a link's target
    // goes on top. check_name has refused empty, `.` and `..` components
    // in `path` itself.
    let mut todo: Vec<Vec<u8>> = path
        .split('/')
        .rev()
        .map(|c| c.as_bytes().to_vec())
        .collect();
    let mut hops = 0;
    while let Some(component) = todo.pop() {
        if component == b".." {
            walk.up()?;
            continue;
        }
        let c_component = CString::new(component).map_err(|_| FileError::Forbidden)?;
        let last = todo.is_empty();
        let want = if last {
            flags | libc::O_NOFOLLOW
        } else {
            WALK_DIR_FLAGS
        };
        let err = match walk.open(&c_component, want) {
            Ok(fd) if last => return Ok(fd),
            Ok(fd) => {
                walk.names.push(c_component);
                walk.current = Some(fd);
                continue;
            }
            Err(e) => e,
        };
        // With O_NOFOLLOW a link answers ELOOP, or ENOTDIR with
        // O_DIRECTORY: ask what the entry is.
        if !matches!(err.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP))
            || sysfs::fstatat_kind(walk.at(), &c_component).ok() != Some(FileKind::Symlink)
        {
            return Err(lookup_error(&err));
        }
        hops += 1;
        if hops > MAX_LINK_HOPS {
            return Err(FileError::Forbidden);
        }
        let target = sysfs::readlinkat(walk.at(), &c_component).map_err(|e| lookup_error(&e))?;
        if target.first() == Some(&b'/') {
            return Err(FileError::Forbidden);
        }
        if target.is_empty() {
            return Err(FileError::NotFound);
        }
        // Empty and `.` components change nothing; a trailing `/` would
        // demand a directory, which the last open checks anyway.
        todo.extend(
            target
                .split(|&b| b == b'/')
                .filter(|c| !c.is_empty() && *c != b".")
                .rev()
                .map(<[u8]>::to_vec),
        );
    }
    // A link target ended with `..`: what is wanted is the directory
    // reached, opened as asked.
    walk.open(c".", flags).map_err(|e| lookup_error(&e))
}

/// How [`walk_beneath`] opens every directory on the way: never following
/// a link (the walk resolves those itself), only as an anchor for `*at`.
const WALK_DIR_FLAGS: i32 = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// Where [`walk_beneath`] stands.
struct Walk<'a> {
    root: BorrowedFd<'a>,
    /// The real directories descended from `root` to `current`, by name.
    names: Vec<CString>,
    /// The directory reached; `None` is `root`.
    current: Option<OwnedFd>,
    /// `openat` calls so far, against [`MAX_WALK_OPENS`].
    opens: usize,
}

impl Walk<'_> {
    fn at(&self) -> BorrowedFd<'_> {
        self.current.as_ref().map_or(self.root, AsFd::as_fd)
    }

    fn open(&mut self, name: &CStr, flags: i32) -> io::Result<OwnedFd> {
        self.opens += 1;
        if self.opens > MAX_WALK_OPENS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        sysfs::openat(self.at(), name, flags, 0)
    }

    /// `..`: back to the parent this walk came from, re-walked from the
    /// root by name (holding a descriptor per level instead would let a
    /// deep tree cost one per level); above the root is refused.
    fn up(&mut self) -> Result<(), FileError> {
        if self.names.pop().is_none() {
            return Err(FileError::Forbidden);
        }
        let names = std::mem::take(&mut self.names);
        self.current = None;
        for name in &names {
            let fd = self
                .open(name, WALK_DIR_FLAGS)
                .map_err(|e| lookup_error(&e))?;
            self.current = Some(fd);
        }
        self.names = names;
        Ok(())
    }
}

/// What [`Store::remove_leftovers`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Temporary files removed.
    pub removed: usize,
    /// Temporary files kept because their pid is another live process.
    pub kept_live: usize,
    /// Entries that could not be listed, examined or removed (logged).
    pub failed: usize,
    /// Whether [`SWEEP_MAX_DEPTH`] or [`SWEEP_MAX_ENTRIES`] cut the walk short.
    pub bounded: bool,
}

impl Sweep {
    /// Counts a failure, and logs the first [`SWEEP_LOG_MAX`] of them.
    fn fail(&mut self, what: std::fmt::Arguments<'_>) {
        self.failed += 1;
        if self.failed <= SWEEP_LOG_MAX {
            log::warn!("store: {what}");
        }
    }
}

/// The sweep of one directory, `rel` its path below the root (for the
/// log), `depth` levels down.
fn sweep_dir(dir: BorrowedFd<'_>, rel: &str, depth: usize, budget: &mut usize, sweep: &mut Sweep) {
    let (entries, more) = match sysfs::list_dir(dir, *budget) {
        Ok(listing) => listing,
        Err(e) => {
            sweep.fail(format_args!("cannot list /{rel} to remove leftovers: {e}"));
            return;
        }
    };
    *budget -= entries.len();
    sweep.bounded |= more;
    for (name, kind) in entries {
        let path = format!("{rel}{}", name.to_string_lossy());
        let kind = match kind {
            Some(kind) => kind,
            None => match sysfs::fstatat_kind(dir, &name) {
                Ok(kind) => kind,
                // Gone meanwhile: nothing to do.
                Err(_) => continue,
            },
        };
        match kind {
            FileKind::Directory if depth < SWEEP_MAX_DEPTH => {
                // O_NOFOLLOW: an entry swapped for a link since the listing
                // fails here instead of leading the sweep elsewhere.
                match sysfs::openat(dir, &name, WALK_DIR_FLAGS, 0) {
                    Ok(sub) => {
                        sweep_dir(sub.as_fd(), &format!("{path}/"), depth + 1, budget, sweep);
                    }
                    Err(e) => {
                        sweep.fail(format_args!(
                            "cannot enter /{path} to remove leftovers: {e}"
                        ));
                    }
                }
            }
            FileKind::Directory => sweep.bounded = true,
            FileKind::Regular => {
                let Some(pid) = temp_name_pid(name.to_bytes()) else {
                    continue;
                };
                if pid != std::process::id() && sysfs::process_exists(pid) {
                    sweep.kept_live += 1;
                    if sweep.kept_live <= SWEEP_LOG_MAX {
                        log::info!("store: kept /{path}: process {pid} is alive");
                    }
                    continue;
                }
                match sysfs::unlinkat(dir, &name) {
                    Ok(()) => {
                        sweep.removed += 1;
                        if sweep.removed <= SWEEP_LOG_MAX {
                            log::info!("store: removed leftover temporary file /{path}");
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => {
                        sweep.fail(format_args!("cannot remove leftover /{path}: {e}"));
                    }
                }
            }
            // Links, FIFOs, devices: never ours, never followed.
            FileKind::Symlink | FileKind::Other => {}
        }
    }
}

/// The pid in `name` if it is exactly a name [`create_temp`] makes,
/// `.{leaf}.mioperf-part-{pid}-{counter}`: a leaf [`check_name`] accepts
/// that is at most [`TEMP_LEAF_MAX`] bytes and holds no [`PART_MARKER`],
/// then a pid and a counter in plain decimal (no sign, no leading zero).
/// `None` for any other name, so the sweep leaves it alone.
fn temp_name_pid(name: &[u8]) -> Option<u32> {
    fn decimal(s: &str) -> Option<u64> {
        let plain = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        if plain { s.parse().ok() } else { None }
    }
    let rest = std::str::from_utf8(name).ok()?.strip_prefix('.')?;
    let at = rest.find(PART_MARKER)?;
    let leaf = &rest[..at];
    if leaf.len() > TEMP_LEAF_MAX || check_name(leaf).is_err() || leaf.contains('/') {
        return None;
    }
    let (pid, counter) = rest[at + PART_MARKER.len()..].split_once('-')?;
    decimal(counter)?;
    u32::try_from(decimal(pid)?).ok().filter(|&pid| pid > 0)
}

/// Creates a fresh temporary file for `leaf` in `dir`:
/// `.{leaf}.mioperf-part-{pid}-{counter}`, exclusively, mode 0644 (less the
/// umask). Retries with the next counter if a stale file of a crashed
/// process with the same pid holds the name.
fn create_temp(dir: BorrowedFd<'_>, leaf: &str) -> Result<(CString, OwnedFd), FileError> {
    try_create_temp(dir, leaf).map_err(|e| {
        // The client hears only a code (TFTP `error 0`): the cause is
        // said here, for whoever runs the server.
        log::warn!("store: cannot create a temporary file for {leaf}: {e}");
        FileError::Io(e.kind())
    })
}

/// [`create_temp`] with the cause kept, and nothing logged.
fn try_create_temp(dir: BorrowedFd<'_>, leaf: &str) -> io::Result<(CString, OwnedFd)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut keep = leaf.len().min(TEMP_LEAF_MAX);
    while !leaf.is_char_boundary(keep) {
        keep -= 1;
    }
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mut last = io::Error::from(ErrorKind::AlreadyExists);
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = format!(".{}{PART_MARKER}{}-{n}", &leaf[..keep], std::process::id());
        let tmp = CString::new(tmp)
            .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "NUL byte in the name"))?;
        match sysfs::openat(dir, &tmp, flags, 0o644) {
            Ok(fd) => return Ok((tmp, fd)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
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
    /// [`StoreConfig::durable`].
    durable: bool,
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
        if self.durable {
            // Before the rename: the name must never point at data that is
            // not on disk yet. A write-back failure (EIO, or ENOSPC/EDQUOT
            // on file systems that allocate late) shows up here, too.
            self.file.sync_all().map_err(|e| e.kind())?;
        }
        let dir = self.dir.as_fd();
        if self.overwrite {
            sysfs::renameat(dir, &self.tmp, &self.leaf).map_err(|e| e.kind())?;
            self.tmp_exists = false;
        } else {
            match sysfs::renameat2_noreplace(dir, &self.tmp, &self.leaf) {
                Ok(()) => self.tmp_exists = false,
                // The file system cannot rename without replacing: a hard
                // link refuses an existing target just the same; the
                // temporary name is then removed on drop.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                    sysfs::linkat(dir, &self.tmp, &self.leaf).map_err(|e| e.kind())?;
                }
                Err(e) => return Err(e.kind()),
            }
        }
        if self.durable {
            // The rename lives in the directory: without this a power loss
            // can take the new name away again. If it fails the file is
            // complete under its name but not known durable, and the
            // client hears the error (a retry then finds the name taken).
            sync_dir(dir).map_err(|e| e.kind())?;
        }
        Ok(self.written)
    }
}

/// `fsync` of the directory `dir` (an `O_PATH` descriptor cannot be synced,
/// so the directory is reopened for reading).
fn sync_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    let fd = sysfs::openat(
        dir,
        c".",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )?;
    File::from(fd).sync_all()
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
            log::warn!(
                "store: writing {} failed after {} bytes: {e}",
                self.leaf.to_string_lossy(),
                self.written
            );
            return self.fail(e.kind());
        }
        self.written = total;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<u64, ErrorKind> {
        // On failure, drop removes the temporary file.
        let already_said = self.failed.is_some();
        self.finish().inspect_err(|kind| {
            if !already_said {
                log::warn!("store: {} not stored: {kind}", self.leaf.to_string_lossy());
            }
        })
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

    /// Regular files only, by names [`open`](Files::open) accepts: no
    /// temporary files, no folders, and no symbolic links (whether a link
    /// stays inside the root is only known by opening it, which a listing
    /// does not do). At most `max` directory entries are read, whatever
    /// their kind, so a root full of folders lists fewer files and says so.
    fn list(&self, max: usize) -> Result<(Vec<String>, bool), FileError> {
        let (entries, more) =
            sysfs::list_dir(self.root.as_fd(), max).map_err(|e| FileError::Io(e.kind()))?;
        let mut names: Vec<String> = entries
            .into_iter()
            .filter(|(name, kind)| {
                let kind = kind.or_else(|| sysfs::fstatat_kind(self.root.as_fd(), name).ok());
                kind == Some(FileKind::Regular)
            })
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| check_store_name(name).is_ok())
            .collect();
        names.sort_unstable();
        Ok((names, more))
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
    fn symlinks_inside_the_root_are_followed() {
        use std::os::unix::fs::symlink;
        let s = Scratch::new();
        std::fs::create_dir_all(s.root.join("d/e")).unwrap();
        std::fs::write(s.root.join("d/f"), b"f").unwrap();
        std::fs::write(s.root.join("d/e/g"), b"g").unwrap();
        std::fs::write(s.root.join("top"), b"top").unwrap();
        symlink("d/f", s.root.join("lf")).unwrap();
        symlink("d", s.root.join("ld")).unwrap();
        // `..` inside a target is fine while it stays in the root.
        symlink("../top", s.root.join("d/up")).unwrap();
        symlink("../../lf", s.root.join("d/e/back")).unwrap();
        symlink("e/..", s.root.join("d/dd")).unwrap();
        symlink(".", s.root.join("here")).unwrap();
        symlink("c2", s.root.join("c1")).unwrap();
        symlink("ld/./f/", s.root.join("c2")).unwrap();
        for store in s.stores(overwrite()) {
            let walk = !store.use_openat2.load(Ordering::Relaxed);
            for (name, want) in [
                ("lf", &b"f"[..]),
                ("ld/f", b"f"),
                ("ld/e/g", b"g"),
                ("d/up", b"top"),
                ("d/e/back", b"f"),
                ("d/dd/e/g", b"g"),
                ("here/here/top", b"top"),
                ("c1", b"f"),
            ] {
                let got = store.open(name).map(|mut f| read_all(f.as_mut()));
                // openat2 refuses `f/` on a file (ENOTDIR); the walk ignores
                // a target's trailing slash. Both stay inside the root.
                if name == "c1" && !walk {
                    assert!(got.is_err(), "{name}");
                    continue;
                }
                assert_eq!(got.ok().as_deref(), Some(want), "{name} walk={walk}");
            }
            // A link to a directory is still a directory.
            assert_eq!(store.open("ld").err(), Some(FileError::Forbidden));
            assert_eq!(store.open("d/dd").err(), Some(FileError::Forbidden));
            // Uploads go through a directory link into its target...
            let name = if walk { "ld/new-walk" } else { "ld/new" };
            let mut sink = store.create(name, None).unwrap();
            sink.write_all(b"n").unwrap();
            assert_eq!(sink.commit(), Ok(1));
            // ...but never write through, or replace, a link as the last
            // component: the link is the root owner's arrangement.
            for leaf in ["lf", "ld", "d/up", "here"] {
                assert_eq!(
                    store.create(leaf, None).err(),
                    Some(FileError::Forbidden),
                    "{leaf}"
                );
            }
        }
        assert_eq!(s.list("d"), ["dd", "e", "f", "new", "new-walk", "up"]);
        assert_eq!(std::fs::read(s.root.join("d/f")).unwrap(), b"f");
        assert!(s.root.join("lf").is_symlink());
    }

    #[test]
    fn links_that_leave_the_root_or_loop_are_refused() {
        use std::os::unix::fs::symlink;
        let s = Scratch::new();
        std::fs::create_dir_all(s.root.join("d")).unwrap();
        std::fs::write(s.root.join("f"), b"f").unwrap();
        symlink("../../outside/secret", s.root.join("d/esc")).unwrap();
        symlink("../../root/f", s.root.join("d/around")).unwrap();
        symlink("..", s.root.join("parent")).unwrap();
        // Absolute targets are refused even when they point inside: the
        // root may move, and RESOLVE_BENEATH refuses them all.
        symlink(s.root.join("f"), s.root.join("abs")).unwrap();
        symlink("loop2", s.root.join("loop1")).unwrap();
        symlink("loop1", s.root.join("loop2")).unwrap();
        symlink("me", s.root.join("me")).unwrap();
        symlink("me/x", s.root.join("through")).unwrap();
        symlink("nothing", s.root.join("dangling")).unwrap();
        // Chains of 40 links resolve (Linux's MAXSYMLINKS), 41 do not.
        for i in 0..41 {
            let next = if i == 40 {
                "f".to_owned()
            } else {
                format!("c{}", i + 1)
            };
            symlink(next, s.root.join(format!("c{i}"))).unwrap();
        }
        for store in s.stores(overwrite()) {
            let walk = !store.use_openat2.load(Ordering::Relaxed);
            for name in [
                "d/esc",
                "d/around",
                "parent/outside/secret",
                "parent/root/f",
                "abs",
                "loop1",
                "me",
                "through",
                "c0",
            ] {
                assert_eq!(
                    store.open(name).err(),
                    Some(FileError::Forbidden),
                    "{name} walk={walk}"
                );
            }
            for name in ["d/esc", "loop1/x", "parent/outside/new", "d/around"] {
                assert_eq!(
                    store.create(name, None).err(),
                    Some(FileError::Forbidden),
                    "{name} walk={walk}"
                );
            }
            assert_eq!(store.open("c1").map(|f| f.size()).ok(), Some(Some(1)));
            assert_eq!(store.open("dangling").err(), Some(FileError::NotFound));
        }
        assert_eq!(std::fs::read_dir(&s.outside).unwrap().count(), 1);
    }

    /// A hard link is the same inode under a second name: the store cannot
    /// tell it from a file, so whoever owns the root decides (the policy in
    /// the module docs). An upload replaces the name, never the inode.
    #[test]
    fn a_hard_link_to_an_outside_file_is_served_and_never_written_through() {
        let s = Scratch::new();
        std::fs::create_dir_all(&s.root).unwrap();
        std::fs::hard_link(s.outside.join("secret"), s.root.join("hard")).unwrap();
        let store = s.store(overwrite());
        assert_eq!(read_all(store.open("hard").unwrap().as_mut()), b"secret");
        let mut sink = store.create("hard", None).unwrap();
        sink.write_all(b"replaced").unwrap();
        assert_eq!(sink.commit(), Ok(8));
        assert_eq!(std::fs::read(s.root.join("hard")).unwrap(), b"replaced");
        assert_eq!(std::fs::read(s.outside.join("secret")).unwrap(), b"secret");
    }

    #[test]
    fn only_the_stores_own_temporary_names_parse() {
        let long = format!(".{}.mioperf-part-7-0", "a".repeat(TEMP_LEAF_MAX));
        let too_long = format!(".{}.mioperf-part-7-0", "a".repeat(TEMP_LEAF_MAX + 1));
        for (name, want) in [
            (".f.mioperf-part-123-0", Some(123)),
            (".f.txt.mioperf-part-1-18446744073709551615", Some(1)),
            (".ü.mioperf-part-4194304-9", Some(4_194_304)),
            ("..a.mioperf-part-5-5", Some(5)),
            (long.as_str(), Some(7)),
            (too_long.as_str(), None),
            // The clients' download temporaries have no counter.
            (".f.mioperf-part-123", None),
            ("f.mioperf-part-123-0", None),
            (".mioperf-part-123-0", None),
            ("..mioperf-part-123-0", None),
            ("...mioperf-part-123-0", None),
            (".f.mioperf-part--0", None),
            (".f.mioperf-part-123-", None),
            (".f.mioperf-part-0123-0", None),
            (".f.mioperf-part-123-01", None),
            (".f.mioperf-part-+1-0", None),
            (".f.mioperf-part-0-0", None),
            (".f.mioperf-part-4294967296-0", None),
            (".f.mioperf-part-1-2-3", None),
            (".f.mioperf-part-1-2x", None),
            (".f.mioperf-part-1-2.mioperf-part-3-4", None),
            (".f\n.mioperf-part-1-2", None),
            (".f.mioperf-part-1-2 ", None),
        ] {
            assert_eq!(temp_name_pid(name.as_bytes()), want, "{name:?}");
        }
        assert_eq!(temp_name_pid(b".\xff.mioperf-part-1-2"), None);
    }

    #[test]
    fn the_sweep_removes_dead_and_own_leftovers_and_nothing_else() {
        use std::os::unix::fs::symlink;
        let s = Scratch::new();
        let me = std::process::id();
        // Beyond any pid_max Linux allows: certainly dead.
        let dead = 99_999_999;
        std::fs::create_dir_all(s.root.join("a/b")).unwrap();
        let gone = [
            format!(".f.mioperf-part-{dead}-0"),
            format!("a/.g.mioperf-part-{dead}-17"),
            format!("a/b/.h h.mioperf-part-{me}-3"),
        ];
        let kept = [
            // pid 1 is alive, and not us: maybe another server's upload.
            ".live.mioperf-part-1-0".to_owned(),
            format!(".f.mioperf-part-{dead}"),
            format!("f.mioperf-part-{dead}-0"),
            format!(".f.mioperf-part-{dead}-0x"),
            format!("a/.mioperf-part-{dead}-0"),
            "a/b/plain".to_owned(),
        ];
        for name in gone.iter().chain(&kept) {
            std::fs::write(s.root.join(name), b"x").unwrap();
        }
        // Not regular files: left alone even with a matching name.
        std::fs::create_dir(s.root.join(format!("a/.d.mioperf-part-{dead}-0"))).unwrap();
        let outside_match = s.outside.join(format!(".o.mioperf-part-{dead}-0"));
        std::fs::write(&outside_match, b"o").unwrap();
        symlink(
            &outside_match,
            s.root.join(format!(".l.mioperf-part-{dead}-0")),
        )
        .unwrap();
        // Never followed: a link to a directory outside holding a match.
        symlink(&s.outside, s.root.join("a/out")).unwrap();
        let store = s.store(StoreConfig::default());
        let sweep = store.remove_leftovers();
        assert_eq!(
            sweep,
            Sweep {
                removed: 3,
                kept_live: 1,
                failed: 0,
                bounded: false
            }
        );
        for name in &gone {
            assert!(!s.root.join(name).exists(), "{name}");
        }
        for name in &kept {
            assert!(s.root.join(name).exists(), "{name}");
        }
        assert!(outside_match.exists());
        assert!(s.root.join(format!("a/.d.mioperf-part-{dead}-0")).is_dir());
        assert!(
            s.root
                .join(format!(".l.mioperf-part-{dead}-0"))
                .is_symlink()
        );
        // A second sweep finds nothing more.
        assert_eq!(store.remove_leftovers().removed, 0);
    }

    #[test]
    fn the_sweep_stops_at_its_depth_bound() {
        let s = Scratch::new();
        let mut dir = s.root.clone();
        for _ in 0..=SWEEP_MAX_DEPTH {
            dir.push("d");
        }
        std::fs::create_dir_all(&dir).unwrap();
        let deep = dir.join(".f.mioperf-part-99999999-0");
        let shallow = dir.parent().unwrap().join(".f.mioperf-part-99999999-0");
        std::fs::write(&deep, b"x").unwrap();
        std::fs::write(&shallow, b"x").unwrap();
        let sweep = s.store(StoreConfig::default()).remove_leftovers();
        assert_eq!((sweep.removed, sweep.bounded), (1, true));
        assert!(deep.exists() && !shallow.exists());
    }

    #[test]
    fn a_durable_upload_commits_the_same_bytes_in_both_modes() {
        let s = Scratch::new();
        std::fs::create_dir_all(s.root.join("d")).unwrap();
        for allow_overwrite in [false, true] {
            let store = s.store(StoreConfig {
                allow_overwrite,
                durable: true,
                ..StoreConfig::default()
            });
            let mut sink = store.create("d/f", Some(3)).unwrap();
            sink.write_all(b"abc").unwrap();
            assert_eq!(sink.commit(), Ok(3));
            assert_eq!(std::fs::read(s.root.join("d/f")).unwrap(), b"abc");
            let again = store.create("d/f", None).map(|mut sink| {
                sink.write_all(b"x").unwrap();
                sink.commit()
            });
            if allow_overwrite {
                assert_eq!(again.ok(), Some(Ok(1)));
                std::fs::remove_file(s.root.join("d/f")).unwrap();
            } else {
                assert_eq!(again.err(), Some(FileError::Exists));
                std::fs::remove_file(s.root.join("d/f")).unwrap();
            }
        }
        assert!(s.list("d").is_empty());
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

    #[test]
    fn the_listing_names_regular_files_in_the_root_only() {
        let scratch = Scratch::new();
        let store = scratch.store(StoreConfig::default());
        for name in ["b.txt", "a <&>.bin", ".hidden"] {
            std::fs::write(scratch.root.join(name), b"x").unwrap();
        }
        std::fs::create_dir(scratch.root.join("dir")).unwrap();
        std::fs::write(scratch.root.join("dir/inner"), b"x").unwrap();
        std::fs::write(scratch.root.join(".a.mioperf-part-1-0"), b"x").unwrap();
        std::os::unix::fs::symlink(scratch.outside.join("secret"), scratch.root.join("link"))
            .unwrap();
        let (names, more) = store.list(100).unwrap();
        assert_eq!(names, [".hidden", "a <&>.bin", "b.txt"]);
        assert!(!more);
        // Six entries, read at most three: fewer names, and it says so.
        let (names, more) = store.list(3).unwrap();
        assert!(names.len() <= 3 && more, "{names:?}");
    }
}
