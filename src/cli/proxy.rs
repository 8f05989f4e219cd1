//! Flags of `mioperf proxy` (clap types only).

use clap::Args;
use std::net::SocketAddr;

/// Flags of `mioperf proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Where the server is.
    #[arg(long, value_name = "ADDR:PORT")]
    pub upstream: SocketAddr,
}
