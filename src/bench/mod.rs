//! `mioperf bench PROTO`: many client sessions of one protocol on one
//! reactor, measured by a [`report::Recorder`] and reported as a terminal
//! table, JSON and SVG.
//!
//! Owns the load generator's drivers (which sessions to start, when to stop
//! them) and the in-process server it starts when no `--server` is given.
//! It never formats figures itself: `report` does, so every number comes
//! from one place.

pub mod report;

use crate::app::Failure;
use crate::cli::bench::BenchArgs;

/// Runs `mioperf bench`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn run(args: &BenchArgs) -> Result<(), Failure> {
    let _ = args;
    Err(Failure::Error(
        "bench is not implemented in this build yet".into(),
    ))
}
