//! Turns a parsed command into sockets and sessions on one reactor, runs it,
//! and reports.
//!
//! Owns the wiring of every command and what it prints:
//! - `serve.rs`: `mioperf serve`, which acceptor listens where;
//! - `client/`: one file per client command, which session is started on
//!   which socket;
//! - `output.rs`: the one rendering of a client's outcome (text, `--json`)
//!   and the exit code it amounts to;
//! - `generate.rs`: `mioperf completions` and `mioperf man`, written from
//!   the clap definitions in `cli`;
//! - `proxy.rs`, `budget.rs`: `mioperf proxy`, and the descriptor budget
//!   `serve` splits between protocols.
//!
//! It must never hold protocol logic (that is `proto`, which also says how
//! a client ended: `proto::outcome`) nor an event loop (that is
//! `reactor`), and no command prints an outcome or picks an exit code
//! except through `output.rs`.

pub mod budget;
mod client;
pub mod generate;
pub mod output;
pub mod proxy;
mod serve;
mod trace;

pub use client::{
    get_client, hello_client, lab_client, msg_client, put_client, stopwait_client, tftp_client,
    tunstack_client, window_client,
};
pub use serve::{Bound, Server, serve, serve_config, start_server};

/// What a command ended with, mapped to the process exit code by `main`.
#[derive(Debug)]
pub enum Failure {
    /// The server refused (RESET, not found, exists): exit 1.
    Refused(String),
    /// Usage, network or timeout error: exit 2.
    Error(String),
    /// Stopped by a signal (SIGINT, SIGTERM): exit 128 + its number, as a
    /// shell reports a process the signal killed (curl's 130 and 143).
    Signal(i32),
}

impl Failure {
    /// The process exit code the contract assigns.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Refused(_) => 1,
            Self::Error(_) => 2,
            Self::Signal(number) => 128 + number,
        }
    }
}

pub(crate) fn error(context: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Error(format!("{context}: {e}"))
}
