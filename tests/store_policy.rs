//! The file store's policies against the real binary and real file
//! systems: the start-up sweep of leftover temporary files, symbolic links
//! inside the root served over tcpfile and TFTP (and those leaving it
//! refused), and the error kinds a full disk and a read-only root give.

#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

mod common;

use common::{Server, run_with_timeout, tcp_connect, temp_path};
use mioperf::proto::data::{FileError, Files};
use mioperf::store::{Store, StoreConfig};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A fresh folder holding `root/` and `outside/`, removed on drop.
struct Scratch {
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Self {
        let base = temp_path(&format!("store-{tag}"));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        Self {
            base,
            root,
            outside,
        }
    }

    fn root_str(&self) -> &str {
        self.root.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// `serve --only tcpfile,tftp` on port 0 with this root.
fn serve(root: &str) -> Server {
    Server::spawn(&[
        "--only",
        "tcpfile,tftp",
        "--listen",
        "tcpfile=127.0.0.1:0",
        "--listen",
        "tftp=127.0.0.1:0",
        "--root",
        root,
    ])
}

fn tcpfile_get(server: &Server, name: &str) -> Vec<u8> {
    let mut s = tcp_connect(server.tcp("tcpfile"));
    s.write_all(format!("{name}:GET\n").as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut v = Vec::new();
    s.read_to_end(&mut v).unwrap();
    v
}

/// `mioperf tftp get` to standard output: the bytes, or the exit code and
/// standard error.
fn tftp_get(server: &Server, name: &str) -> Result<Vec<u8>, (Option<i32>, String)> {
    let addr = server.udp("tftp").to_string();
    let out = run_with_timeout(
        &["tftp", "get", &addr, name, "-o", "-"],
        Duration::from_secs(20),
    );
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

/// A pid no process can have: above the largest `pid_max` Linux allows.
const DEAD_PID: u32 = 99_999_999;

#[test]
fn start_up_removes_exactly_the_leftovers_of_dead_servers() {
    let s = Scratch::new("sweep");
    let root = &s.root;
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    let gone = [
        format!(".up.bin.mioperf-part-{DEAD_PID}-0"),
        format!("sub/.f.mioperf-part-{DEAD_PID}-7"),
        format!("sub/deeper/.g h.mioperf-part-{DEAD_PID}-123"),
    ];
    // This test's own pid is alive and not the server's: an upload in
    // flight on a second server sharing the root, as far as it can tell.
    let live = format!("sub/.live.mioperf-part-{}-0", std::process::id());
    let near_misses = [
        format!(".up.bin.mioperf-part-{DEAD_PID}"),
        format!("up.bin.mioperf-part-{DEAD_PID}-0"),
        format!(".mioperf-part-{DEAD_PID}-0"),
        format!(".up.mioperf-part-{DEAD_PID}-0x"),
        format!(".up.mioperf-part-0{DEAD_PID}-0"),
        format!("sub/.up.mioperf-part-{DEAD_PID}-1-2"),
        format!("sub/deeper/.up.mioperf-part-{DEAD_PID}-"),
        "sub/deeper/ordinary".to_owned(),
    ];
    for name in gone.iter().chain(&near_misses).chain([&live]) {
        std::fs::write(root.join(name), b"x").unwrap();
    }
    // A link to a folder outside holding a matching name: never followed.
    let outside_match = s.outside.join(format!(".o.mioperf-part-{DEAD_PID}-0"));
    std::fs::write(&outside_match, b"o").unwrap();
    symlink(&s.outside, root.join("sub/out")).unwrap();
    // A link and a directory with a matching name: not regular files.
    let link_named = root.join(format!(".l.mioperf-part-{DEAD_PID}-0"));
    symlink(&outside_match, &link_named).unwrap();
    let dir_named = root.join(format!("sub/.d.mioperf-part-{DEAD_PID}-0"));
    std::fs::create_dir(&dir_named).unwrap();

    let server = serve(s.root_str());
    // The sweep runs before `ready`.
    for name in &gone {
        assert!(!root.join(name).exists(), "{name} was left");
    }
    for name in near_misses.iter().chain([&live]) {
        assert!(root.join(name).exists(), "{name} was removed");
    }
    assert!(outside_match.exists());
    assert!(link_named.is_symlink());
    assert!(dir_named.is_dir());
    let live_line = format!("kept /{live}");
    let log = server.stderr_with(&["removed 3 leftover", &live_line], Duration::from_secs(5));
    for name in &gone {
        assert!(
            log.contains(&format!("removed leftover temporary file /{name}")),
            "{name} not logged: {log}"
        );
    }
    assert!(log.contains("removed 3 leftover"), "{log}");
    assert!(log.contains(&format!("kept /{live}")), "{log}");
}

#[test]
fn links_inside_the_root_serve_and_links_out_are_refused_on_tcpfile_and_tftp() {
    let s = Scratch::new("links");
    let root = &s.root;
    std::fs::create_dir_all(root.join("d/e")).unwrap();
    std::fs::write(root.join("d/f"), b"inside").unwrap();
    std::fs::write(root.join("d/e/g"), b"deeper").unwrap();
    std::fs::write(s.outside.join("secret"), b"secret").unwrap();
    symlink("d/f", root.join("lf")).unwrap();
    symlink("d", root.join("ld")).unwrap();
    symlink("../lf", root.join("d/back")).unwrap();
    symlink(s.outside.join("secret"), root.join("abs")).unwrap();
    symlink("../../outside/secret", root.join("d/climb")).unwrap();
    symlink("loop2", root.join("loop1")).unwrap();
    symlink("loop1", root.join("loop2")).unwrap();
    let server = serve(s.root_str());
    // Planted after start: refused all the same, at every lookup.
    symlink(&s.outside, root.join("planted")).unwrap();

    for (name, body) in [
        ("lf", &b"inside"[..]),
        ("ld/f", b"inside"),
        ("ld/e/g", b"deeper"),
        ("d/back", b"inside"),
    ] {
        let mut want = format!("OK {}\n", body.len()).into_bytes();
        want.extend_from_slice(body);
        assert_eq!(tcpfile_get(&server, name), want, "tcpfile {name}");
        assert_eq!(tftp_get(&server, name).as_deref(), Ok(body), "tftp {name}");
    }
    for name in ["abs", "d/climb", "loop1", "planted/secret"] {
        assert_eq!(
            tcpfile_get(&server, name),
            format!("ERROR forbidden: {name}\n").into_bytes(),
            "tcpfile {name}"
        );
        match tftp_get(&server, name) {
            Err((Some(1), _)) => {}
            other => panic!("tftp {name}: {other:?}"),
        }
    }
    // An upload through a directory link lands in its target; one whose
    // last component is a link is refused and the link stays as it was.
    let mut put = tcp_connect(server.tcp("tcpfile"));
    put.write_all(b"ld/new:PUT:3\nnew").unwrap();
    let mut answer = String::new();
    put.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "OK 3\n");
    assert_eq!(std::fs::read(root.join("d/new")).unwrap(), b"new");
    let mut put = tcp_connect(server.tcp("tcpfile"));
    put.write_all(b"lf:PUT:1\nz").unwrap();
    let mut answer = String::new();
    put.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("ERROR"), "{answer}");
    assert!(root.join("lf").is_symlink());
    assert_eq!(std::fs::read(root.join("d/f")).unwrap(), b"inside");
    assert_eq!(std::fs::read_dir(&s.outside).unwrap().count(), 1);
}

/// Whether the tests that mount file systems may run: they need root. A
/// skip says why; under `CI=true` a skip is a failure, so CI cannot pass
/// without having run them.
fn may_mount(test: &str) -> bool {
    // /proc/self belongs to the effective user.
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if euid == Some(0) {
        return true;
    }
    let reason = format!("{test}: skipped, mounting needs root (euid {euid:?})");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{reason}, and CI=true"
    );
    eprintln!("{reason}");
    false
}

/// A mount that is always undone, even when the test fails.
struct Mount(PathBuf);

impl Mount {
    fn new(args: &[&str], at: &Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount").args(args).arg(at).status().unwrap();
        assert!(status.success(), "mount {args:?} {}", at.display());
        Self(at.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a descriptor still open): detach it now, freed later.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn a_full_disk_and_a_read_only_root_give_faithful_error_kinds() {
    if !may_mount("a_full_disk_and_a_read_only_root_give_faithful_error_kinds") {
        return;
    }
    let s = Scratch::new("kinds");

    // Disk full: a 64 KiB tmpfs.
    let full = Mount::new(
        &["-t", "tmpfs", "-o", "size=64k", "tmpfs"],
        &s.base.join("full"),
    );
    for durable in [false, true] {
        let config = StoreConfig {
            durable,
            ..StoreConfig::default()
        };
        let store = Store::open(&full.0, config).unwrap();
        let mut sink = store.create("big", None).unwrap();
        let chunk = [7u8; 8192];
        let mut result = Ok(());
        for _ in 0..32 {
            result = sink.write_all(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(ErrorKind::StorageFull), "durable={durable}");
        assert_eq!(sink.commit(), Err(ErrorKind::StorageFull));
        // The failed upload's temporary file is gone and the space is back.
        assert_eq!(std::fs::read_dir(&full.0).unwrap().count(), 0);
        let mut sink = store.create("small", Some(4)).unwrap();
        sink.write_all(b"fits").unwrap();
        assert_eq!(sink.commit(), Ok(4));
        std::fs::remove_file(full.0.join("small")).unwrap();
    }
    drop(full);

    // Read-only: a bind mount of a folder holding a file, remounted ro.
    let source = s.base.join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("f"), b"old").unwrap();
    let leftover = source.join(format!(".f.mioperf-part-{DEAD_PID}-0"));
    std::fs::write(&leftover, b"x").unwrap();
    let source_str = source.to_str().unwrap();
    let ro = Mount::new(&["--bind", source_str], &s.base.join("ro"));
    let status = Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(&ro.0)
        .status()
        .unwrap();
    assert!(status.success(), "remount ro");
    for allow_overwrite in [false, true] {
        let config = StoreConfig {
            allow_overwrite,
            ..StoreConfig::default()
        };
        let store = Store::open(&ro.0, config).unwrap();
        assert!(store.open("f").is_ok(), "reads still work");
        assert_eq!(
            store.create("new", None).err(),
            Some(FileError::Io(ErrorKind::ReadOnlyFilesystem))
        );
        let existing = store.create("f", None).err();
        let want = if allow_overwrite {
            FileError::Io(ErrorKind::ReadOnlyFilesystem)
        } else {
            FileError::Exists
        };
        assert_eq!(existing, Some(want), "overwrite={allow_overwrite}");
        // The start-up sweep cannot remove the leftover here: it counts
        // (and logs) the failure and carries on.
        let sweep = store.remove_leftovers();
        assert_eq!((sweep.removed, sweep.failed), (0, 1));
    }
    assert_eq!(std::fs::read(source.join("f")).unwrap(), b"old");
    assert!(leftover.exists());
}
