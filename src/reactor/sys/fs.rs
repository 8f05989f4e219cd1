//! Safe wrappers over the `*at` file system calls the file store needs.
//!
//! Owns the `unsafe` half of path confinement: `openat2` with resolve
//! flags, plain `openat`, `fstat`/`fstatat`, `readlinkat`, directory
//! listing, `renameat`/`renameat2`, `linkat` and `unlinkat`, each relative
//! to a directory descriptor, and the `kill(pid, 0)` probe the start-up
//! sweep asks before removing another process's temporary file. Every
//! wrapper checks the return value and turns failure into `io::Error`. It
//! must never decide policy (which names are allowed, what an error means
//! to a client, which files to remove): that is `crate::store`'s job.
#![allow(
    unsafe_code,
    reason = "the file system half of the one module that calls libc directly"
)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// What a directory entry or an open descriptor is, as far as the store cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link (only seen when not following links).
    Symlink,
    /// A FIFO, socket or device: nothing a store serves.
    Other,
}

impl FileKind {
    fn from_mode(mode: libc::mode_t) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Self::Regular,
            libc::S_IFDIR => Self::Directory,
            libc::S_IFLNK => Self::Symlink,
            _ => Self::Other,
        }
    }
}

/// Turns a returned descriptor (or -1) into an owned one, retrying the call
/// on `EINTR` (network and FUSE file systems can interrupt an open).
fn fd_result(mut call: impl FnMut() -> libc::c_long) -> io::Result<OwnedFd> {
    loop {
        let rc = call();
        if rc >= 0 {
            let fd =
                RawFd::try_from(rc).map_err(|_| io::Error::other("descriptor out of range"))?;
            // SAFETY: the kernel just returned `fd` as a fresh descriptor
            // that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Turns a 0 / -1 return into `io::Result`, retrying on `EINTR`.
fn unit_result(mut call: impl FnMut() -> libc::c_long) -> io::Result<()> {
    loop {
        if call() >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Opens the directory at `path` (absolute, or relative to the current
/// directory) as an `O_PATH` descriptor: usable only as the anchor of
/// later `*at` calls, never for reading.
pub(crate) fn open_dir_path(path: &CStr) -> io::Result<OwnedFd> {
    fd_result(|| {
        // SAFETY: `path` is a valid NUL-terminated string for the call.
        libc::c_long::from(unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })
    })
}

/// `openat2(dir, path, flags, resolve)`: opens `path` relative to `dir`
/// with the given `O_*` flags (mode 0, so no `O_CREAT`) and `RESOLVE_*`
/// flags.
///
/// # Errors
/// As `openat2(2)`: `ENOSYS` where the kernel (or a seccomp filter) lacks
/// it, `EXDEV` when the path would leave `dir` under `RESOLVE_BENEATH`,
/// `ELOOP` for a symbolic link under `RESOLVE_NO_SYMLINKS`.
pub(crate) fn openat2_beneath(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // `open_how` is non-exhaustive in libc: start from all-zero (the
    // kernel requires unknown trailing fields to be zero anyway).
    // SAFETY: open_how is plain old data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { core::mem::zeroed() };
    // The flags are a bit set; reinterpreting the sign bit is intended.
    how.flags = u64::from(flags.cast_unsigned());
    how.mode = 0;
    how.resolve = resolve;
    fd_result(|| {
        // SAFETY: `path` is NUL-terminated and `how` is a valid open_how of
        // the size passed; both outlive the call.
        unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &raw const how,
                size_of::<libc::open_how>(),
            )
        }
    })
}

/// `openat(dir, path, flags, mode)`.
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    fd_result(|| {
        // SAFETY: `path` is NUL-terminated; the variadic mode is passed as
        // the unsigned int the C ABI promotes it to.
        libc::c_long::from(unsafe {
            libc::openat(
                dir.as_raw_fd(),
                path.as_ptr(),
                flags,
                libc::c_uint::from(mode),
            )
        })
    })
}

/// The size in bytes and the kind of what `fd` refers to (`fstat`).
pub(crate) fn fstat_size_and_kind(fd: BorrowedFd<'_>) -> io::Result<(u64, FileKind)> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer.
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), &raw mut st) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    Ok((size, FileKind::from_mode(st.st_mode)))
}

/// The kind of the entry `name` in `dir`, without following a final
/// symbolic link (`fstatat(..., AT_SYMLINK_NOFOLLOW)`).
///
/// # Errors
/// `NotFound` when there is no such entry.
pub(crate) fn fstatat_kind(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<FileKind> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` is a valid, writable buffer.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &raw mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(FileKind::from_mode(st.st_mode))
}

/// Longest link target [`readlinkat`] accepts, in bytes: Linux's
/// `PATH_MAX` (4096, including the NUL), the most a link can hold.
const LINK_TARGET_MAX: usize = 4096;

/// The target of the symbolic link `name` in `dir` (`readlinkat`), as the
/// raw bytes stored in the link.
///
/// # Errors
/// As `readlinkat(2)`: `EINVAL` when `name` is not a link, `ENOENT`;
/// `ENAMETOOLONG` for a target that does not fit in `PATH_MAX`.
pub(crate) fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; LINK_TARGET_MAX];
    // SAFETY: `name` is NUL-terminated and `buf` is writable for its length.
    let rc = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let len = usize::try_from(rc).map_err(|_| io::Error::last_os_error())?;
    // A target that fills the buffer may have been cut short.
    if len >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(len);
    Ok(buf)
}

/// One directory entry: its name, and its kind when the listing says.
pub(crate) type DirEntry = (CString, Option<FileKind>);

/// The entries of the directory `dir` (an `O_PATH` descriptor is fine: the
/// directory is reopened for reading), without `.` and `..`, each with its
/// kind when the file system reports it in the listing (`d_type`), `None`
/// when the caller must ask `fstatat`. At most `max` entries are returned;
/// the flag says whether more were left unread.
///
/// # Errors
/// The directory cannot be opened or read.
pub(crate) fn list_dir(dir: BorrowedFd<'_>, max: usize) -> io::Result<(Vec<DirEntry>, bool)> {
    let fd = openat(
        dir,
        c".",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )?;
    let raw = fd.as_raw_fd();
    // SAFETY: `raw` is an open directory descriptor; on success the stream
    // owns it, so `fd` is forgotten below, and `closedir` closes it.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    core::mem::forget(fd);
    let mut entries = Vec::new();
    let mut more = false;
    let result = loop {
        // readdir reports an error only through errno, so clear it first.
        // SAFETY: errno is this thread's.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a valid DIR* until the closedir below.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let err = io::Error::last_os_error();
            break if err.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(err)
            };
        }
        // SAFETY: readdir returned a valid entry whose d_name is a
        // NUL-terminated string, valid until the next readdir call.
        let (name, d_type) = unsafe {
            (
                CStr::from_ptr((*entry).d_name.as_ptr()).to_owned(),
                (*entry).d_type,
            )
        };
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        if entries.len() == max {
            more = true;
            break Ok(());
        }
        let kind = match d_type {
            libc::DT_REG => Some(FileKind::Regular),
            libc::DT_DIR => Some(FileKind::Directory),
            libc::DT_LNK => Some(FileKind::Symlink),
            libc::DT_UNKNOWN => None,
            _ => Some(FileKind::Other),
        };
        entries.push((name, kind));
    };
    // SAFETY: `stream` is valid and closed exactly once.
    unsafe { libc::closedir(stream) };
    result.map(|()| (entries, more))
}

/// Whether a process with this id exists (`kill(pid, 0)`): `EPERM` means
/// it exists but belongs to someone else. Ids that cannot be a process
/// (0, or beyond `i32`) answer false.
pub(crate) fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the target exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Renames `from` to `to` (both relative to `dir`), failing with
/// `AlreadyExists` instead of replacing an existing `to`
/// (`renameat2(RENAME_NOREPLACE)`).
///
/// # Errors
/// `EEXIST` if `to` exists; `EINVAL` or `ENOSYS` where the file system or
/// kernel does not support `RENAME_NOREPLACE` (callers may fall back to
/// [`linkat`] + [`unlinkat`]).
pub(crate) fn renameat2_noreplace(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // Through `syscall` rather than the glibc wrapper so musl builds too.
    unit_result(|| {
        // SAFETY: both names are NUL-terminated and outlive the call.
        unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                dir.as_raw_fd(),
                from.as_ptr(),
                dir.as_raw_fd(),
                to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        }
    })
}

/// Renames `from` to `to` (both relative to `dir`), atomically replacing
/// any existing `to` (`renameat`).
pub(crate) fn renameat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    unit_result(|| {
        // SAFETY: both names are NUL-terminated and outlive the call.
        libc::c_long::from(unsafe {
            libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr())
        })
    })
}

/// Makes `to` a second name for `from` (both relative to `dir`, no link
/// following); fails with `AlreadyExists` if `to` exists (`linkat`).
pub(crate) fn linkat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    unit_result(|| {
        // SAFETY: both names are NUL-terminated and outlive the call.
        libc::c_long::from(unsafe {
            libc::linkat(
                dir.as_raw_fd(),
                from.as_ptr(),
                dir.as_raw_fd(),
                to.as_ptr(),
                0,
            )
        })
    })
}

/// Removes the file entry `name` in `dir` (`unlinkat`, never a directory).
pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    unit_result(|| {
        // SAFETY: `name` is NUL-terminated and outlives the call.
        libc::c_long::from(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "mioperf-sysfs-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        fn dir(&self) -> OwnedFd {
            let c = CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
            open_dir_path(&c).unwrap()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn openat2_confines_or_is_missing() {
        let s = Scratch::new();
        std::fs::write(s.0.join("f"), b"hi").unwrap();
        std::os::unix::fs::symlink("f", s.0.join("l")).unwrap();
        let dir = s.dir();
        let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
        match openat2_beneath(dir.as_fd(), c"f", libc::O_RDONLY | libc::O_CLOEXEC, resolve) {
            Ok(fd) => {
                assert_eq!(
                    fstat_size_and_kind(fd.as_fd()).unwrap(),
                    (2, FileKind::Regular)
                );
                let err = openat2_beneath(dir.as_fd(), c"l", libc::O_RDONLY, resolve).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
                let err = openat2_beneath(dir.as_fd(), c"/etc/passwd", libc::O_RDONLY, resolve)
                    .unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EXDEV));
            }
            // An old kernel: the store falls back to walking components.
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn fstatat_sees_links_without_following() {
        let s = Scratch::new();
        std::fs::create_dir(s.0.join("d")).unwrap();
        std::os::unix::fs::symlink("d", s.0.join("l")).unwrap();
        let dir = s.dir();
        assert_eq!(
            fstatat_kind(dir.as_fd(), c"d").unwrap(),
            FileKind::Directory
        );
        assert_eq!(fstatat_kind(dir.as_fd(), c"l").unwrap(), FileKind::Symlink);
        assert_eq!(
            fstatat_kind(dir.as_fd(), c"none").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn rename_noreplace_refuses_an_existing_target_and_unlink_removes() {
        let s = Scratch::new();
        std::fs::write(s.0.join("a"), b"a").unwrap();
        std::fs::write(s.0.join("b"), b"b").unwrap();
        let dir = s.dir();
        match renameat2_noreplace(dir.as_fd(), c"a", c"b") {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            // No RENAME_NOREPLACE here; linkat is the fallback and refuses too.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                assert_eq!(
                    linkat(dir.as_fd(), c"a", c"b").unwrap_err().kind(),
                    io::ErrorKind::AlreadyExists
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(s.0.join("b")).unwrap(), b"b");
        renameat(dir.as_fd(), c"a", c"b").unwrap();
        assert_eq!(std::fs::read(s.0.join("b")).unwrap(), b"a");
        unlinkat(dir.as_fd(), c"b").unwrap();
        assert!(!s.0.join("b").exists());
        assert_eq!(
            unlinkat(dir.as_fd(), c"b").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn readlinkat_and_list_dir_see_links_without_following() {
        let s = Scratch::new();
        std::fs::create_dir(s.0.join("d")).unwrap();
        std::fs::write(s.0.join("f"), b"f").unwrap();
        std::os::unix::fs::symlink("../x/y", s.0.join("l")).unwrap();
        let dir = s.dir();
        assert_eq!(readlinkat(dir.as_fd(), c"l").unwrap(), b"../x/y");
        assert_eq!(
            readlinkat(dir.as_fd(), c"f").unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
        let (mut all, more) = list_dir(dir.as_fd(), 10).unwrap();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(!more);
        let names: Vec<_> = all.iter().map(|(n, _)| n.to_str().unwrap()).collect();
        assert_eq!(names, ["d", "f", "l"]);
        for (name, kind) in &all {
            let real = fstatat_kind(dir.as_fd(), name).unwrap();
            assert!(kind.is_none() || *kind == Some(real), "{name:?}");
        }
        let (two, more) = list_dir(dir.as_fd(), 2).unwrap();
        assert_eq!((two.len(), more), (2, true));
    }

    #[test]
    fn process_exists_tells_the_living_from_the_impossible() {
        assert!(process_exists(std::process::id()));
        assert!(!process_exists(0));
        // Above the largest pid_max Linux allows (2^22).
        assert!(!process_exists(99_999_999));
        assert!(!process_exists(u32::MAX));
    }

    #[test]
    fn openat_creates_exclusively() {
        let s = Scratch::new();
        let dir = s.dir();
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
        let fd = openat(dir.as_fd(), c"n", flags, 0o644).unwrap();
        assert_eq!(
            fstat_size_and_kind(fd.as_fd()).unwrap(),
            (0, FileKind::Regular)
        );
        assert_eq!(
            openat(dir.as_fd(), c"n", flags, 0o644).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
    }
}
