//! Turns a parsed command into sockets and sessions on one reactor, runs it,
//! and reports.
//!
//! Owns the wiring: which acceptor listens where, which client session is
//! started, what is printed on standard output, and the exit code. It holds
//! no protocol logic (that is `proto`) and no event loop (that is
//! `reactor`).

use crate::cli::{HelloArgs, ServeArgs};
use crate::config::{Protocol, ServeConfig};
use crate::proto::budget::UdpBudget;
use crate::proto::hello::{self, Outcome, OutcomeSlot, Registry, Transport};
use crate::proto::{Acceptor, Shared, lab};
use crate::reactor::{Exit, Reactor, ReactorConfig};
use crate::wire::hello::Request as HelloRequest;
use log::info;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};

/// What a command ended with, mapped to the process exit code by `main`.
#[derive(Debug)]
pub enum Failure {
    /// The server refused (RESET, not found, exists): exit 1.
    Refused(String),
    /// Usage, network or timeout error: exit 2.
    Error(String),
}

impl Failure {
    /// The process exit code the contract assigns.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Refused(_) => 1,
            Self::Error(_) => 2,
        }
    }
}

fn error(context: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Error(format!("{context}: {e}"))
}

/// `mioperf serve`: binds every listener, prints `listening …` and `ready`,
/// and runs until SIGINT/SIGTERM or idle exit.
///
/// # Errors
/// Bad configuration or a listener that cannot be bound.
pub fn serve(args: &ServeArgs) -> Result<(), Failure> {
    let config = args.to_config().map_err(Failure::Error)?;
    serve_config(&config)
}

/// [`serve`] with a ready-made configuration.
///
/// # Errors
/// An unimplemented protocol was asked for, or a listener cannot be bound.
pub fn serve_config(config: &ServeConfig) -> Result<(), Failure> {
    let protocols = config.protocols();
    if let Some(missing) = protocols.iter().find(|p| !p.is_implemented()) {
        return Err(Failure::Error(format!(
            "protocol '{missing}' is not implemented in this build yet"
        )));
    }
    if protocols.is_empty() {
        return Err(Failure::Error("no protocol to serve".into()));
    }
    let shared = Shared {
        hello: Registry::new(config.id_ttl, config.max_ids),
        udp_budget: UdpBudget::new(config.udp_budget),
    };
    let reactor_config = ReactorConfig {
        timer: config.timer,
        idle_exit: config.idle_exit,
        spin: config.spin,
        ..ReactorConfig::default()
    };
    let mut reactor = Reactor::new(reactor_config, shared).map_err(|e| error("reactor", e))?;
    reactor.watch_signals().map_err(|e| error("signals", e))?;

    let mut lines = Vec::new();
    for protocol in protocols {
        let addr = config.addr(protocol);
        // Both transports on the same address, each with its own acceptor.
        let (tcp, udp): (Box<dyn Acceptor>, Box<dyn Acceptor>) = match protocol {
            Protocol::Hello => (
                Box::new(hello::HelloAcceptor),
                Box::new(hello::HelloAcceptor),
            ),
            Protocol::Lab => (
                Box::new(lab::LabAcceptor::new(config.lab)),
                Box::new(lab::LabAcceptor::new(config.lab)),
            ),
            _ => unreachable!("checked by is_implemented above"),
        };
        let tcp = reactor
            .listen_tcp(addr, tcp)
            .map_err(|e| error(&format!("cannot listen on {protocol} tcp {addr}"), e))?;
        let udp = reactor
            .bind_udp(addr, udp)
            .map_err(|e| error(&format!("cannot bind {protocol} udp {addr}"), e))?;
        lines.push(format!("listening {protocol} tcp {tcp}"));
        lines.push(format!("listening {protocol} udp {udp}"));
    }
    // Scripts wait for these lines: print them all at once, then flush.
    let mut out = io::stdout().lock();
    for line in &lines {
        info!("{line}");
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);

    match reactor.run().map_err(|e| error("poll", e))? {
        Exit::Signal(_) | Exit::Idle | Exit::SessionsDone => Ok(()),
    }
}

/// Resolves `host:port` to its first address.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, Failure> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| error(&format!("cannot resolve {host}"), e))?
        .next()
        .ok_or_else(|| Failure::Error(format!("{host}: no address")))
}

/// A client reactor: no signals, exits when its sessions are done.
fn client_reactor() -> Result<Reactor, Failure> {
    let config = ReactorConfig {
        exit_when_no_sessions: true,
        ..ReactorConfig::default()
    };
    // Clients never register IDs; the registry is just the shared type.
    let shared = Shared::new(Registry::new(crate::time::Duration::ZERO, 0));
    Reactor::new(config, shared).map_err(|e| error("reactor", e))
}

/// `mioperf hello HOST PORT ID`: prints the answer; exit 0 on OK, 1 on
/// RESET, 2 on ERROR, failure or timeout.
///
/// # Errors
/// Per the contract's exit codes.
pub fn hello_client(args: &HelloArgs) -> Result<(), Failure> {
    let server = resolve(&args.host, args.port)?;
    let mut reactor = client_reactor()?;
    let slot = OutcomeSlot::default();
    let request = HelloRequest { id: args.id };
    let transport = if args.tcp {
        Transport::Tcp
    } else {
        Transport::Udp { server }
    };
    let session = Box::new(hello::Client::new(
        request,
        transport,
        args.timeout,
        args.tries,
        slot.clone(),
    ));
    match transport {
        Transport::Tcp => reactor.connect_tcp(server, session),
        Transport::Udp { .. } => {
            let local: SocketAddr = if server.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            }
            .parse()
            .unwrap_or(server);
            let socket = mio::net::UdpSocket::bind(local).and_then(|s| {
                // Connected, so an ICMP "port unreachable" fails fast
                // instead of waiting for the timeout.
                s.connect(server)?;
                Ok(s)
            });
            socket.and_then(|s| reactor.add_udp_session(s, Some(server), session))
        }
    }
    .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    reactor.run().map_err(|e| error("poll", e))?;

    let outcome = slot.borrow_mut().take();
    let transport_name = if args.tcp { "tcp" } else { "udp" };
    report_hello(args, server, transport_name, outcome)
}

fn report_hello(
    args: &HelloArgs,
    server: SocketAddr,
    transport: &str,
    outcome: Option<Outcome>,
) -> Result<(), Failure> {
    use hello::client::Verb;
    let (result, json) = match outcome {
        Some(Outcome::Answered {
            line,
            verb,
            rtt,
            tries,
        }) => {
            let name = match verb {
                Verb::Ok => "ok",
                Verb::Reset => "reset",
                Verb::Error => "error",
            };
            let result = match verb {
                Verb::Ok => Ok(()),
                Verb::Reset => Err(Failure::Refused(line.clone())),
                Verb::Error => Err(Failure::Error(line.clone())),
            };
            let json = serde_json::json!({
                "protocol": "hello", "transport": transport, "server": server.to_string(),
                "id": args.id.as_str(), "outcome": name, "answer": line,
                "rtt_us": rtt.as_secs_f64() * 1e6, "tries": tries,
            });
            if !args.json {
                println!("{line}");
            }
            (result, json)
        }
        Some(Outcome::TimedOut { tries }) => (
            Err(Failure::Error(format!(
                "no answer from {server} after {tries} request(s) of {}",
                crate::cli::duration::format(args.timeout)
            ))),
            serde_json::json!({
                "protocol": "hello", "transport": transport, "server": server.to_string(),
                "id": args.id.as_str(), "outcome": "timeout", "tries": tries,
            }),
        ),
        Some(Outcome::Failed(why)) => (
            Err(Failure::Error(format!("{server}: {why}"))),
            serde_json::json!({
                "protocol": "hello", "transport": transport, "server": server.to_string(),
                "id": args.id.as_str(), "outcome": "failed", "error": why,
            }),
        ),
        None => (
            Err(Failure::Error(
                "the session ended without an outcome".into(),
            )),
            serde_json::json!({"protocol": "hello", "outcome": "failed"}),
        ),
    };
    if args.json {
        println!("{json}");
    }
    result
}
