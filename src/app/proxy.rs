//! `mioperf proxy`: the impairment proxy on its own reactor.

use super::Failure;
use crate::cli::proxy::ProxyArgs;

/// Runs `mioperf proxy` until SIGINT or SIGTERM, then prints its counters.
///
/// # Errors
/// Bad settings, or the listening socket cannot be bound.
pub fn run(args: &ProxyArgs) -> Result<(), Failure> {
    let _ = args;
    Err(Failure::Error(
        "proxy is not implemented in this build yet".into(),
    ))
}
