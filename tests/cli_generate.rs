//! `mioperf completions SHELL` and `mioperf man`: what they print is
//! generated from the clap definitions, so these tests check it is there,
//! names the real subcommands, and (where `man` is installed) renders.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn mioperf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mioperf"))
        .args(args)
        .output()
        .expect("run mioperf")
}

fn stdout_ok(args: &[&str]) -> String {
    let out = mioperf(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "mioperf {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn bash_completion_names_the_function_and_the_subcommands() {
    let script = stdout_ok(&["completions", "bash"]);
    assert!(script.contains("_mioperf"), "no _mioperf function");
    for sub in ["serve", "window", "tunstack", "bench", "completions", "man"] {
        assert!(script.contains(sub), "bash completion lacks {sub}");
    }
    // A subcommand's own flags are completed too, not only the names.
    assert!(script.contains("--tun-mtu"), "serve's flags missing");
}

#[test]
fn zsh_and_fish_completions_are_not_empty() {
    for shell in ["zsh", "fish"] {
        let script = stdout_ok(&["completions", shell]);
        assert!(
            script.contains("tunstack"),
            "{shell} completion lacks tunstack"
        );
    }
}

#[test]
fn man_page_is_roff_titled_mioperf_and_lists_serve() {
    let page = stdout_ok(&["man"]);
    // clap_mangen opens with the `Aq` string definition (`.ie`/`.el`), then
    // the title: the first real macro must be `.TH mioperf 1`.
    let first = page
        .lines()
        .find(|line| !line.starts_with(".ie") && !line.starts_with(".el"))
        .expect("empty page");
    assert!(first.starts_with(".TH mioperf 1"), "first macro: {first:?}");
    assert!(page.contains("serve"), "page does not mention serve");
    assert!(page.contains(".SH"), "page has no sections");
}

#[test]
fn man_renders_the_page_when_installed() {
    let page = stdout_ok(&["man"]);
    let child = Command::new("man")
        .args(["--warnings", "-l", "-"])
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "80")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!("skipped: `man` is not installed");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("feed man");
    let out = child.wait_with_output().expect("man");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man failed: {stderr}");
    assert!(stderr.trim().is_empty(), "man warned: {stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NAME"), "rendered page: {text}");
    assert!(text.contains("serve"), "rendered page lacks serve");
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let out = mioperf(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'tcsh'"), "{stderr}");
    assert!(stderr.contains("possible values"), "{stderr}");
}
