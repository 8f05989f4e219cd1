//! Flags of `mioperf bench` (clap types only).

use clap::Args;

/// Flags of `mioperf bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Protocol to drive.
    pub proto: String,
}
