//! A network namespace of a test's own: created with `ip netns add` under
//! a unique name, deleted when the guard drops (also when the test fails
//! or panics), so whatever a test configures and sends stays inside it.
//!
//! Creating one needs root (`CAP_SYS_ADMIN`). Without it [`Netns::new`] says
//! why and returns `None` (the test skips), except under `CI`, where the
//! tests must run and it fails instead.

use super::{RUN_TIMEOUT, run_command};
use std::io::Write;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Namespaces made by this test process so far: the second half of each
/// name (the first is the pid), so parallel tests never share one.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
pub(crate) struct Netns {
    name: String,
}

impl Netns {
    /// A fresh namespace `mioperf-t-<pid>-<n>`, or `None` (after a note on
    /// standard error) when this process may not create one and `CI` is
    /// not set.
    pub(crate) fn new(test: &str) -> Option<Self> {
        let name = format!(
            "mioperf-t-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let made = Command::new("ip").args(["netns", "add", &name]).output();
        match made {
            Ok(out) if out.status.success() => Some(Self { name }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    Err(e) => format!("cannot run `ip` ({e}): install iproute2"),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{test}: cannot create a network namespace ({why}); CI is set, so the \
                     namespace tests (tunstack, wireshark) must run (as root, with iproute2)"
                );
                let _ = writeln!(
                    std::io::stderr(),
                    "{test}: skipped: needs root to create a network namespace ({why})"
                );
                None
            }
        }
    }

    /// The namespace's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME`: the launcher that runs a program inside it.
    pub(crate) fn launcher(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }

    /// Runs `program args...` inside the namespace, bounded by `limit`.
    pub(crate) fn run(&self, program: &str, args: &[&str], limit: Duration) -> Output {
        run_command(
            Command::new("ip")
                .args(["netns", "exec", &self.name, program])
                .args(args),
            limit,
        )
    }

    /// [`run`](Self::run) bounded by the usual `RUN_TIMEOUT`.
    pub(crate) fn run_default(&self, program: &str, args: &[&str]) -> Output {
        self.run(program, args, RUN_TIMEOUT)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
