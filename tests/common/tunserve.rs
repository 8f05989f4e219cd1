//! `mioperf serve --only tunstack` in a namespace of a test's own, and the
//! kernel's tools run beside it: what the tunstack test crates share.
//!
//! A [`TunServe`] owns the namespace ([`Netns`]) and the server inside it;
//! the server is dropped (killed) before the namespace is deleted, also
//! when the test fails. [`have`] decides whether a test can run: without a
//! tool it skips, except under `CI`, where `.ci/run` must have installed
//! it and the test fails instead. Every run of a tool is bounded.

use super::Server;
use super::netns::Netns;
use std::process::{Command, Output};
use std::time::Duration;

/// Whether every one of `tools` is installed; `false` (after a note)
/// skips the test, except under `CI`, where a missing tool fails it.
pub(crate) fn have(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", "command -v \"$1\" >/dev/null", "sh", tool])
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {missing:?} not installed, and CI is set: .ci/run must install them"
    );
    eprintln!("{test}: skipped: {missing:?} not installed");
    false
}

/// A namespace and `mioperf serve --only tunstack EXTRA...` inside it,
/// ready. Field order matters: the server is dropped (killed) before the
/// namespace is deleted.
pub(crate) struct TunServe {
    pub(crate) server: Server,
    pub(crate) ns: Netns,
}

impl TunServe {
    /// Needs `tools` (`ip` is always needed); a namespace; then the server
    /// in it. `None` when the test is skipped (not root, or a tool missing,
    /// and no `CI`).
    pub(crate) fn start(test: &str, tools: &[&str], extra: &[&str]) -> Option<Self> {
        let mut all = vec!["ip"];
        all.extend_from_slice(tools);
        if !have(test, &all) {
            return None;
        }
        let ns = Netns::new(test)?;
        let mut args = vec!["--only", "tunstack"];
        args.extend_from_slice(extra);
        let server = Server::spawn_via(&ns.launcher(), "serve", &args);
        Some(Self { server, ns })
    }

    /// Runs `program args...` in the namespace, bounded by `limit`; fails
    /// the test (with the server's log) unless it exits 0. Returns its
    /// standard output.
    #[track_caller]
    pub(crate) fn tool(&mut self, program: &str, args: &[&str], limit: Duration) -> String {
        let out = self.ns.run(program, args, limit);
        self.check(program, args, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a Python script with `args` in the namespace, as [`tool`](Self::tool).
    #[track_caller]
    pub(crate) fn python(&mut self, script: &str, args: &[&str], limit: Duration) -> String {
        let mut all = vec!["-c", script];
        all.extend_from_slice(args);
        self.tool("python3", &all, limit)
    }

    /// Fails the test, with everything that explains why, unless `out` is
    /// a success.
    #[track_caller]
    pub(crate) fn check(&mut self, program: &str, args: &[&str], out: &Output) {
        if !out.status.success() {
            self.server.assert_running();
            panic!(
                "{program} {args:?} in {}: {}\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
                self.ns.name(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.server.stderr()
            );
        }
    }
}
