//! `mioperf completions SHELL` and `mioperf man`: shell completion scripts
//! and the manual page, generated from the same clap definitions that parse
//! the command line, so they never drift from the flags.
//!
//! Owns only the rendering and the write to standard output; it must never
//! describe a flag itself (that is `cli`), or a hand-written copy would go
//! stale the first time a flag changes.

use super::{Failure, error};
use crate::cli::Cli;
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;

/// The name the scripts complete and the page is titled with.
const BIN_NAME: &str = "mioperf";

/// Writes the completion script for `shell` to standard output.
///
/// # Errors
/// Standard output cannot be written (closed pipe, full disk): exit 2.
pub fn completions(shell: Shell) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN_NAME, &mut script);
    write_stdout(&script)
}

/// Writes the roff manual page of `mioperf` to standard output.
///
/// # Errors
/// Standard output cannot be written: exit 2.
pub fn man() -> Result<(), Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command().name(BIN_NAME))
        .render(&mut page)
        .map_err(|e| error("rendering the manual page", e))?;
    write_stdout(&page)
}

/// Renders into memory first, then writes once: `clap_complete` panics on a
/// write error, and a reader that goes away (`| head`) must be an ordinary
/// error, not a panic.
fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| error("writing to standard output", e))
}
