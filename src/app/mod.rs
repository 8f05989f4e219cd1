//! Turns a parsed command into sockets and sessions on one reactor, runs it,
//! and reports.
//!
//! Owns the wiring: which acceptor listens where, which client session is
//! started, what is printed on standard output, and the exit code. It holds
//! no protocol logic (that is `proto`) and no event loop (that is
//! `reactor`).

pub mod budget;
pub mod proxy;

use crate::cli::{
    GetArgs, HelloArgs, LabArgs, MsgArgs, PutArgs, ServeArgs, StopwaitArgs, StopwaitVerb, TftpArgs,
    TftpMode, duration,
};
use crate::config::{Protocol, ServeConfig};
use crate::proto::budget::shared as udp_budget_of;
use crate::proto::data::Files;
use crate::proto::hello::{self, Outcome, OutcomeSlot, Transport};
use crate::proto::idle::TcpTimeouts;
use crate::proto::{DatagramAcceptor, StreamAcceptor, lab, msg, stopwait, tcpfile, tftp};
use crate::reactor::{Exit, Reactor, ReactorConfig};
use crate::store::{Store, StoreConfig};
use crate::wire::hello::Request as HelloRequest;
use log::{info, warn};
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;

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

pub(crate) fn error(context: &str, e: impl std::fmt::Display) -> Failure {
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

/// Binds every listener `config` asks for on a new reactor (signals not
/// watched: the caller decides). `mioperf serve` runs it; `mioperf bench`
/// runs one on a thread of its own.
///
/// # Errors
/// An unimplemented protocol was asked for, or a listener cannot be bound.
pub fn start_server(config: &ServeConfig) -> Result<Server, Failure> {
    let protocols = config.protocols();
    if let Some(missing) = protocols.iter().find(|p| !p.is_implemented()) {
        return Err(Failure::Error(format!(
            "protocol '{missing}' is not implemented in this build yet"
        )));
    }
    if protocols.is_empty() {
        return Err(Failure::Error("no protocol to serve".into()));
    }
    // What the process may send to peers whose address is not validated:
    // one budget for every UDP service, so together they reflect no more.
    let udp_budget = udp_budget_of(config.udp_budget);
    let reactor_config = ReactorConfig {
        timer: config.timer,
        idle_exit: config.idle_exit,
        spin: config.spin,
        ..ReactorConfig::default()
    };
    let mut reactor = Reactor::new(reactor_config).map_err(|e| error("reactor", e))?;
    let budget = descriptor_budget(config, &protocols);
    let cap = |p: Protocol| budget.sessions(p).unwrap_or(usize::MAX);

    // The file protocols share one store; the root is created only if one
    // of them is served.
    let mut store: Option<Rc<dyn Files>> = None;
    let mut listeners = Vec::new();
    // One idle/request rule for every TCP protocol.
    let timeouts = TcpTimeouts {
        idle: config.tcp_idle_timeout,
        request: config.tcp_request_timeout,
    };
    for protocol in protocols {
        let addr = config.addr(protocol);
        // Each transport with its own acceptor, on the same address.
        let (tcp, udp): Acceptors = match protocol {
            Protocol::Hello => {
                let (tcp, udp, _) = hello::acceptors(config.id_ttl, config.max_ids, timeouts);
                (Some(Box::new(tcp)), Some(Box::new(udp)))
            }
            Protocol::Lab => (
                Some(Box::new(
                    lab::LabStreamAcceptor::new(config.lab).with_timeouts(timeouts),
                )),
                Some(Box::new(lab::LabDatagramAcceptor::new(
                    config.lab,
                    udp_budget.clone(),
                ))),
            ),
            Protocol::Msg => (
                Some(Box::new(
                    msg::MsgAcceptor::new(config.msg_max).with_timeouts(timeouts),
                )),
                None,
            ),
            Protocol::Tcpfile => {
                let files = shared_store(&mut store, config)?;
                let acceptor = tcpfile::TcpFileAcceptor::new(files)
                    .with_zero_copy(config.sendfile)
                    .with_timeouts(timeouts);
                (Some(Box::new(acceptor)), None)
            }
            Protocol::Tftp => {
                let files = shared_store(&mut store, config)?;
                let mut tftp_config = config.tftp;
                tftp_config.max_sessions = cap(Protocol::Tftp);
                tftp_config.max_sessions_per_peer = tftp_config
                    .max_sessions_per_peer
                    .min(tftp_config.max_sessions);
                (
                    None,
                    Some(Box::new(tftp::TftpAcceptor::new(files, tftp_config))),
                )
            }
            Protocol::Stopwait => {
                let files = shared_store(&mut store, config)?;
                let timers = stopwait::StopwaitConfig {
                    timeout: config.stopwait_timeout,
                    tries: config.stopwait_tries,
                    max_sessions: cap(Protocol::Stopwait),
                    max_sessions_per_peer: config
                        .stopwait_max_sessions_per_peer
                        .min(cap(Protocol::Stopwait)),
                    unvalidated_lifetime: config.stopwait_unvalidated_lifetime,
                };
                (
                    None,
                    Some(Box::new(
                        stopwait::StopwaitAcceptor::new(files, timers)
                            .with_budget(udp_budget.clone()),
                    )),
                )
            }
            Protocol::Proxy => {
                // The seed's arrangement: the proxy in front of stopwait,
                // wherever this process bound it.
                let stopwait = listeners
                    .iter()
                    .find(|b: &&Bound| b.protocol == Protocol::Stopwait)
                    .map(|b| b.addr);
                let upstream = config
                    .proxy_upstream
                    .or(stopwait)
                    .unwrap_or_else(|| config.addr(Protocol::Stopwait));
                let acceptor = proxy_acceptor(upstream, cap(Protocol::Proxy))?;
                (None, Some(Box::new(acceptor)))
            }
            _ => unreachable!("checked by is_implemented above"),
        };
        if let Some(tcp) = tcp {
            let tcp = reactor
                .listen_tcp_capped(addr, tcp, cap(protocol))
                .map_err(|e| error(&format!("cannot listen on {protocol} tcp {addr}"), e))?;
            listeners.push(Bound {
                protocol,
                transport: "tcp",
                addr: tcp,
            });
        }
        if let Some(udp) = udp {
            // Only these protocols' per-peer sessions hold a descriptor
            // (stopwait: its file; proxy: its upstream socket). TFTP's own
            // acceptor bounds its transfers; hello and lab hold none.
            let udp_cap = match protocol {
                Protocol::Stopwait | Protocol::Proxy => cap(protocol),
                _ => usize::MAX,
            };
            let udp = reactor
                .bind_udp_capped(addr, udp, udp_cap)
                .map_err(|e| error(&format!("cannot bind {protocol} udp {addr}"), e))?;
            listeners.push(Bound {
                protocol,
                transport: "udp",
                addr: udp,
            });
        }
    }
    Ok(Server { reactor, listeners })
}

/// A server reactor with every listener bound, not yet running.
pub struct Server {
    /// The reactor holding the listeners.
    pub reactor: Reactor,
    /// What is bound where, in the order the listeners were opened.
    pub listeners: Vec<Bound>,
}

/// One bound listener of a [`Server`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The protocol it serves.
    pub protocol: Protocol,
    /// `"tcp"` or `"udp"`.
    pub transport: &'static str,
    /// The address it is bound to (with the port the kernel picked for 0).
    pub addr: SocketAddr,
}

/// [`serve`] with a ready-made configuration: binds, prints the
/// `listening …` lines and `ready`, then runs until a signal or idle exit.
///
/// # Errors
/// An unimplemented protocol was asked for, or a listener cannot be bound.
pub fn serve_config(config: &ServeConfig) -> Result<(), Failure> {
    let Server {
        mut reactor,
        listeners,
    } = start_server(config)?;
    reactor.watch_signals().map_err(|e| error("signals", e))?;
    // Scripts wait for these lines: print them all at once, then flush.
    let mut out = io::stdout().lock();
    for Bound {
        protocol,
        transport,
        addr,
    } in &listeners
    {
        let line = format!("listening {protocol} {transport} {addr}");
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

/// A transparent proxy to `upstream` (impairment is `mioperf proxy`'s),
/// relaying for at most `max_clients` at once.
fn proxy_acceptor(
    upstream: SocketAddr,
    max_clients: usize,
) -> Result<crate::proto::proxy::ProxyAcceptor, Failure> {
    let mut proxy = crate::proto::proxy::ProxyConfig::transparent(upstream);
    proxy.max_clients = max_clients;
    crate::proto::proxy::ProxyAcceptor::new(proxy)
        .map_err(|(way, e)| Failure::Error(format!("proxy {way}: {e}")))
}

/// Assumed when the descriptor limit cannot be read: Linux's usual soft
/// limit, so the caps err on the small side.
const FALLBACK_NOFILE: u64 = 1024;

/// Splits the process's descriptor limit between the `protocols` served
/// (`budget.rs`), logs each cap at info, and warns about every configured
/// bound lowered to fit.
fn descriptor_budget(config: &ServeConfig, protocols: &[Protocol]) -> budget::Budget {
    let limit = crate::reactor::descriptor_limit().unwrap_or_else(|e| {
        warn!("descriptor limit unknown ({e}); assuming {FALLBACK_NOFILE}");
        FALLBACK_NOFILE
    });
    let mut listeners = 0;
    let mut claims = Vec::new();
    for &protocol in protocols {
        let ceiling = match protocol {
            Protocol::Tftp => Some(config.tftp.max_sessions),
            Protocol::Proxy => Some(
                crate::proto::proxy::ProxyConfig::transparent(config.addr(protocol)).max_clients,
            ),
            Protocol::Stopwait => Some(config.stopwait_max_sessions),
            _ => config.max_connections,
        };
        let (sockets, claim) = budget::needs(protocol, ceiling);
        listeners += sockets;
        claims.extend(claim);
    }
    let budget = budget::split(limit, listeners, &claims);
    let caps: Vec<String> = budget
        .grants
        .iter()
        .map(|g| match g.fds_each {
            1 => format!("{} {}", g.protocol, g.sessions),
            n => format!("{} {} ({n} fds each)", g.protocol, g.sessions),
        })
        .collect();
    info!(
        "descriptor budget: limit {limit}, reserve {}, listeners {listeners}; sessions: {}",
        budget::RESERVE_FDS,
        caps.join(", ")
    );
    for g in &budget.grants {
        if let Some(asked) = g.clamped_from {
            warn!(
                "{}: {asked} sessions do not fit the descriptor limit {limit}; using {}",
                g.protocol, g.sessions
            );
        }
    }
    budget
}

/// A protocol's acceptors, one per transport it has.
type Acceptors = (
    Option<Box<dyn StreamAcceptor>>,
    Option<Box<dyn DatagramAcceptor>>,
);

/// The one store every file protocol shares, opened on first use.
fn shared_store(
    store: &mut Option<Rc<dyn Files>>,
    config: &ServeConfig,
) -> Result<Rc<dyn Files>, Failure> {
    if let Some(files) = store {
        return Ok(files.clone());
    }
    let files: Rc<dyn Files> = Rc::new(open_store(config)?);
    *store = Some(files.clone());
    Ok(files)
}

/// The file store at `config.root`, created if missing.
fn open_store(config: &ServeConfig) -> Result<Store, Failure> {
    let store_config = StoreConfig {
        allow_overwrite: config.allow_overwrite,
        max_file_size: config.max_file_size,
        durable: config.durable,
    };
    let store = Store::open(&config.root, store_config).map_err(|e| {
        error(
            &format!("cannot use {} as the file root", config.root.display()),
            e,
        )
    })?;
    // Before any upload of ours starts, so every temporary file with our
    // pid is a dead process's (a container restarts with the same pid).
    store.remove_leftovers();
    Ok(store)
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
    Reactor::new(config).map_err(|e| error("reactor", e))
}

/// Runs a client's reactor to the end, with a progress bar on stderr when
/// `show` and stderr is a terminal, and takes the session's outcome.
fn run_client<T: 'static>(
    mut reactor: Reactor,
    show: bool,
    total: Option<u64>,
    progress: Rc<std::cell::Cell<u64>>,
    slot: &Rc<std::cell::RefCell<Option<T>>>,
) -> Result<Option<T>, Failure> {
    if show {
        let done = slot.clone();
        if let Some(t) = crate::progress::Ticker::on_terminal(
            total,
            progress,
            Box::new(move || done.borrow().is_some()),
        ) {
            reactor.add_detached(Box::new(t));
        }
    }
    reactor.run().map_err(|e| error("poll", e))?;
    Ok(slot.borrow_mut().take())
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
                duration::format(args.timeout)
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

/// `mioperf lab HOST PORT REQUEST`: prints what arrived; exit 0 on success,
/// 1 when the server answered `ERROR`, 2 on a mismatch, an incomplete file,
/// a failure or a timeout. A stream's losses are measurements, not errors.
///
/// # Errors
/// Per the contract's exit codes.
pub fn lab_client(args: &LabArgs) -> Result<(), Failure> {
    if args.request.contains('\n') {
        return Err(Failure::Error("the request must be one line".into()));
    }
    let server = resolve(&args.host, args.port)?;
    let mut reactor = client_reactor()?;
    let slot = lab::OutcomeSlot::default();
    let transport = if args.udp {
        lab::Transport::Udp { server }
    } else {
        lab::Transport::Tcp
    };
    let progress = tcpfile::Progress::default();
    let session = Box::new(
        lab::Client::new(
            args.request.as_bytes(),
            transport,
            args.max_count,
            args.timeout,
            slot.clone(),
        )
        .with_progress(progress.clone()),
    );
    let file_size = match crate::wire::lab::Request::parse(args.request.as_bytes()) {
        Ok(crate::wire::lab::Request::File(n)) => Some(n),
        _ => None,
    };
    match transport {
        lab::Transport::Tcp => reactor.connect_tcp(server, session),
        lab::Transport::Udp { .. } => crate::reactor::udp_client_socket(server)
            .and_then(|s| reactor.add_udp_session(s, Some(server), session)),
    }
    .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    let show = file_size.is_some() && !args.json;
    let outcome = run_client(reactor, show, file_size, progress, &slot)?;
    report_lab(args, server, outcome)
}

fn report_lab(
    args: &LabArgs,
    server: SocketAddr,
    outcome: Option<lab::Outcome>,
) -> Result<(), Failure> {
    use serde_json::json;
    let transport = if args.udp { "udp" } else { "tcp" };
    let mut doc = json!({
        "protocol": "lab", "transport": transport, "server": server.to_string(),
        "request": args.request,
    });
    let (human, result) = match outcome {
        Some(lab::Outcome::Done(report)) => describe_lab(&report, &mut doc),
        Some(lab::Outcome::TimedOut(partial)) => {
            let mut text = format!(
                "no answer from {server} for {}",
                duration::format(args.timeout)
            );
            if let Some(report) = partial {
                let (partial_text, _) = describe_lab(&report, &mut doc);
                text = format!("{partial_text}\n{text}");
            }
            doc["outcome"] = json!("timeout");
            (text.clone(), Err(Failure::Error(text)))
        }
        Some(lab::Outcome::Failed(why)) => {
            doc["outcome"] = json!("failed");
            doc["error"] = json!(why);
            (
                String::new(),
                Err(Failure::Error(format!("{server}: {why}"))),
            )
        }
        None => (
            String::new(),
            Err(Failure::Error(
                "the session ended without an outcome".into(),
            )),
        ),
    };
    if args.json {
        println!("{doc}");
    } else if !human.is_empty() {
        println!("{human}");
    }
    result
}

/// A human summary and the JSON fields of one lab report.
fn describe_lab(
    report: &lab::Report,
    doc: &mut serde_json::Value,
) -> (String, Result<(), Failure>) {
    use serde_json::json;
    match report {
        lab::Report::Echo {
            bytes,
            matched,
            rtt,
        } => {
            let rtt_us = rtt.as_secs_f64() * 1e6;
            doc["outcome"] = json!(if *matched { "ok" } else { "mismatch" });
            doc["echo"] = json!({"bytes": bytes, "matched": matched, "rtt_us": rtt_us});
            let text = format!(
                "echo {bytes} bytes, rtt {rtt_us:.1} µs, {}",
                if *matched { "matched" } else { "MISMATCH" }
            );
            let result = if *matched {
                Ok(())
            } else {
                Err(Failure::Error("the echo did not match".into()))
            };
            (text, result)
        }
        lab::Report::File {
            expected,
            received,
            first_bad,
            elapsed,
            datagrams,
            complete,
        } => {
            let secs = elapsed.as_secs_f64();
            #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
            let bits_per_s = if secs > 0.0 {
                *received as f64 * 8.0 / secs
            } else {
                0.0
            };
            let ok = *complete && first_bad.is_none() && received == expected;
            doc["outcome"] = json!(if ok { "ok" } else { "incomplete" });
            doc["file"] = json!({
                "expected": expected, "received": received, "pattern_ok": first_bad.is_none(),
                "first_bad_offset": first_bad, "seconds": secs, "bits_per_second": bits_per_s,
                "datagrams": datagrams, "complete": complete,
            });
            let mut text = format!(
                "file {received} of {expected} bytes in {secs:.3} s = {:.3} Gbit/s, pattern {}",
                bits_per_s / 1e9,
                match first_bad {
                    None => "ok".to_string(),
                    Some(at) => format!("BROKEN at byte {at}"),
                }
            );
            if !ok {
                text.push_str(", INCOMPLETE");
            }
            let result = if ok {
                Ok(())
            } else {
                Err(Failure::Error("the file did not arrive intact".into()))
            };
            (text, result)
        }
        lab::Report::Stream {
            expected,
            size,
            interval_ns,
            samples,
            kernel_timestamps,
            complete,
        } => {
            let st = crate::stats::stream_stats(samples, *expected, *interval_ns, *size);
            doc["outcome"] = json!("ok");
            doc["stream"] = json!({
                "expected": expected, "size": size, "interval_ns": interval_ns,
                "kernel_timestamps": kernel_timestamps, "complete": complete, "stats": st,
            });
            let us = |ns: u64| {
                #[allow(clippy::cast_precision_loss, reason = "for display")]
                let v = ns as f64 / 1e3;
                v
            };
            let mut text = format!(
                "stream {expected} × {size} B every {:.3} ms\nreceived {}/{expected}, lost {}, reordered {}, duplicated {}",
                us(*interval_ns) / 1e3,
                st.unique,
                st.lost,
                st.reordered,
                st.duplicated
            );
            if let Some(rate) = st.rate_per_s {
                text.push_str(&format!("\nrate {rate:.1} segments/s"));
                if let (Some(want), Some(err)) = (st.requested_rate_per_s, st.rate_error) {
                    text.push_str(&format!(" (requested {want:.1}/s, {:+.3} %)", err * 100.0));
                }
                if let Some(bps) = st.bytes_per_s {
                    text.push_str(&format!(", {:.3} Mbit/s", bps * 8.0 / 1e6));
                }
            }
            if let Some(e) = st.schedule_error_ns {
                text.push_str(&format!(
                    "\nschedule error p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({})",
                    us(e.p50),
                    us(e.p99),
                    us(e.max),
                    if *kernel_timestamps {
                        "kernel receive timestamps"
                    } else {
                        "reactor clock"
                    }
                ));
            }
            if let Some(d) = st.max_drift_ns {
                text.push_str(&format!("\nmax drift from the schedule {:.1} µs", us(d)));
            }
            (text, Ok(()))
        }
        lab::Report::Refused(line) => {
            doc["outcome"] = json!("refused");
            doc["answer"] = json!(line);
            (line.clone(), Err(Failure::Refused(line.clone())))
        }
    }
}

/// `mioperf msg HOST PORT FILE|-`: sends the file as one frame and prints
/// the receipt; exit 0 on `OK` with the right length, 1 on `ERR too large`,
/// 2 on a failure or a timeout.
///
/// # Errors
/// Per the contract's exit codes.
pub fn msg_client(args: &MsgArgs) -> Result<(), Failure> {
    use crate::proto::data::{MemorySource, Source};
    let source: Box<dyn Source> = if args.file.as_os_str() == "-" {
        let bytes = crate::files::read_stdin(u64::from(u32::MAX)).map_err(|e| error("stdin", e))?;
        Box::new(MemorySource::new(bytes))
    } else {
        let f = crate::files::FileSource::open(&args.file)
            .map_err(|e| error(&args.file.display().to_string(), e))?;
        Box::new(f)
    };
    let len = source.size().unwrap_or(0);
    let len = u32::try_from(len).map_err(|_| {
        Failure::Error(format!(
            "{len} bytes do not fit one frame (at most 4 GiB - 1)"
        ))
    })?;
    let server = resolve(&args.host, args.port)?;
    let mut reactor = client_reactor()?;
    let slot = msg::OutcomeSlot::default();
    let session: Box<dyn crate::proto::StreamSession> = if args.count > 1 {
        let mut source = source;
        let mut payload = bytes::BytesMut::with_capacity(len as usize);
        while payload.len() < len as usize {
            let want = len as usize - payload.len();
            match source.read_into(&mut payload, want) {
                Ok(0) => break,
                Ok(_) => {}
                Err(kind) => return Err(error("reading the input", io::Error::from(kind))),
            }
        }
        Box::new(msg::RepeatClient::new(
            payload.to_vec(),
            args.count,
            args.timeout,
            slot.clone(),
        ))
    } else {
        Box::new(msg::Client::new(source, len, args.timeout, slot.clone()))
    };
    reactor
        .connect_tcp(server, session)
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    reactor.run().map_err(|e| error("poll", e))?;
    let outcome = slot.borrow_mut().take();
    let (json, result) = match outcome {
        Some(msg::Outcome::Receipt { len, elapsed }) => {
            let secs = elapsed.as_secs_f64();
            #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
            let rate = if secs > 0.0 { len as f64 / secs } else { 0.0 };
            if !args.json {
                println!(
                    "OK {len}: {len} bytes in {secs:.3} s = {:.1} MB/s",
                    rate / 1e6
                );
            }
            (
                serde_json::json!({"outcome": "ok", "bytes": len, "seconds": secs, "bytes_per_second": rate}),
                Ok(()),
            )
        }
        Some(msg::Outcome::Receipts {
            frames,
            bytes,
            elapsed,
        }) => {
            let secs = elapsed.as_secs_f64();
            #[allow(clippy::cast_precision_loss, reason = "rates for display")]
            let (fps, bps) = if secs > 0.0 {
                (frames as f64 / secs, bytes as f64 / secs)
            } else {
                (0.0, 0.0)
            };
            if !args.json {
                println!(
                    "{frames} frames of {len} B acknowledged in {secs:.3} s = {fps:.0} frames/s, {:.1} MB/s",
                    bps / 1e6
                );
            }
            let doc = serde_json::json!({"outcome": "ok", "frames": frames, "bytes": bytes, "seconds": secs,
                "frames_per_second": fps, "bytes_per_second": bps});
            (doc, Ok(()))
        }
        Some(msg::Outcome::TooLarge { max }) => {
            let line = format!("ERR too large {max}");
            if !args.json {
                println!("{line}");
            }
            (
                serde_json::json!({"outcome": "refused", "answer": line, "max": max}),
                Err(Failure::Refused(line)),
            )
        }
        Some(msg::Outcome::TimedOut) => (
            serde_json::json!({"outcome": "timeout"}),
            Err(Failure::Error(format!(
                "no progress for {}",
                duration::format(args.timeout)
            ))),
        ),
        Some(msg::Outcome::Failed(why)) => (
            serde_json::json!({"outcome": "failed", "error": why}),
            Err(Failure::Error(format!("{server}: {why}"))),
        ),
        None => (
            serde_json::json!({"outcome": "failed"}),
            Err(Failure::Error("no outcome".into())),
        ),
    };
    if args.json {
        let mut doc = json;
        doc["protocol"] = serde_json::json!("msg");
        doc["server"] = serde_json::json!(server.to_string());
        doc["sent"] = serde_json::json!(len);
        println!("{doc}");
    }
    result
}

/// Resolves `HOST:PORT` (IPv6 as `[::1]:PORT`).
fn resolve_host_port(text: &str) -> Result<SocketAddr, Failure> {
    text.to_socket_addrs()
        .map_err(|e| error(&format!("'{text}' is not HOST:PORT"), e))?
        .next()
        .ok_or_else(|| Failure::Error(format!("{text}: no address")))
}

/// Runs one tcpfile client session and reports its outcome.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site per verb; a struct would only rename them"
)]
fn run_transfer(
    verb: &str,
    name: &str,
    server: SocketAddr,
    session: Box<dyn crate::proto::StreamSession>,
    slot: &tcpfile::OutcomeSlot,
    progress: &tcpfile::Progress,
    total: Option<u64>,
    json: bool,
) -> Result<(), Failure> {
    let mut reactor = client_reactor()?;
    reactor
        .connect_tcp(server, session)
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    let outcome = run_client(reactor, !json, total, progress.clone(), slot)?;
    let mut doc = serde_json::json!({"protocol": "tcpfile", "verb": verb, "server": server.to_string(), "name": name});
    let result = match outcome {
        Some(tcpfile::Outcome::Done { bytes, elapsed }) => {
            let secs = elapsed.as_secs_f64();
            #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
            let bits = if secs > 0.0 {
                bytes as f64 * 8.0 / secs
            } else {
                0.0
            };
            doc["outcome"] = serde_json::json!("ok");
            doc["bytes"] = serde_json::json!(bytes);
            doc["seconds"] = serde_json::json!(secs);
            doc["bits_per_second"] = serde_json::json!(bits);
            if !json {
                eprintln!(
                    "{verb} {name}: {bytes} bytes in {secs:.3} s = {:.3} Gbit/s",
                    bits / 1e9
                );
            }
            Ok(())
        }
        Some(tcpfile::Outcome::Refused(line)) => {
            doc["outcome"] = serde_json::json!("refused");
            doc["answer"] = serde_json::json!(line);
            if !json {
                eprintln!("{line}");
            }
            Err(Failure::Refused(line))
        }
        Some(tcpfile::Outcome::TimedOut) => {
            doc["outcome"] = serde_json::json!("timeout");
            Err(Failure::Error(format!("{server}: no progress, gave up")))
        }
        Some(tcpfile::Outcome::Failed(why)) => {
            doc["outcome"] = serde_json::json!("failed");
            doc["error"] = serde_json::json!(why);
            Err(Failure::Error(format!("{server}: {why}")))
        }
        None => Err(Failure::Error("no outcome".into())),
    };
    if json {
        println!("{doc}");
    }
    result
}

/// `mioperf get HOST:PORT NAME [-o OUT]`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn get_client(args: &GetArgs) -> Result<(), Failure> {
    let server = resolve_host_port(&args.server)?;
    let to_stdout = args.output.as_ref().is_some_and(|o| o.as_os_str() == "-");
    if to_stdout && args.json {
        return Err(Failure::Error(
            "-o - and --json both want standard output".into(),
        ));
    }
    let sink = if to_stdout {
        crate::files::FileSink::stdout()
    } else {
        let out = match &args.output {
            Some(o) => o.clone(),
            None => {
                std::path::PathBuf::from(std::path::Path::new(&args.name).file_name().ok_or_else(
                    || Failure::Error(format!("'{}' has no file name: use -o", args.name)),
                )?)
            }
        };
        crate::files::FileSink::create(&out, args.force)
            .map_err(|e| error(&out.display().to_string(), e))?
    };
    let slot = tcpfile::OutcomeSlot::default();
    let progress = tcpfile::Progress::default();
    let session = Box::new(tcpfile::GetClient::new(
        &args.name,
        Box::new(sink),
        args.timeout,
        slot.clone(),
        progress.clone(),
    ));
    // The size is known only from the answer: the bar counts bytes.
    run_transfer(
        "get", &args.name, server, session, &slot, &progress, None, args.json,
    )
}

/// `mioperf put HOST:PORT FILE [--as NAME]`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn put_client(args: &PutArgs) -> Result<(), Failure> {
    use crate::proto::data::Source;
    let server = resolve_host_port(&args.server)?;
    let source = crate::files::FileSource::open(&args.file)
        .map_err(|e| error(&args.file.display().to_string(), e))?;
    let size = source.size().unwrap_or(0);
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Failure::Error(format!("{}: name it with --as", args.file.display())))?
            .to_owned(),
    };
    let slot = tcpfile::OutcomeSlot::default();
    let progress = tcpfile::Progress::default();
    let session = Box::new(tcpfile::PutClient::new(
        &name,
        Box::new(source),
        size,
        args.timeout,
        slot.clone(),
        progress.clone(),
    ));
    run_transfer(
        "put",
        &name,
        server,
        session,
        &slot,
        &progress,
        Some(size),
        args.json,
    )
}

/// `mioperf stopwait get|put HOST:PORT NAME|FILE`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn stopwait_client(args: &StopwaitArgs) -> Result<(), Failure> {
    use crate::proto::data::Source;
    let server = resolve_host_port(&args.server)?;
    let config = stopwait::StopwaitConfig {
        timeout: args.timeout,
        tries: args.tries,
        ..stopwait::StopwaitConfig::DEFAULT
    };
    let slot = stopwait::OutcomeSlot::default();
    let progress = tcpfile::Progress::default();
    let (verb, name, session, total): (
        &str,
        String,
        Box<dyn crate::proto::DatagramSession>,
        Option<u64>,
    ) = match args.verb {
        StopwaitVerb::Get => {
            let name = args.target.clone();
            let sink = local_sink(&name, args.output.as_deref(), args.force)?;
            let c = stopwait::GetClient::new(&name, server, Box::new(sink), config, slot.clone())
                .with_progress(progress.clone());
            ("get", name, Box::new(c), None)
        }
        StopwaitVerb::Put => {
            let path = std::path::Path::new(&args.target);
            let source =
                crate::files::FileSource::open(path).map_err(|e| error(&args.target, e))?;
            let size = source.size();
            let name = match &args.name {
                Some(n) => n.clone(),
                None => path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| Failure::Error(format!("{}: name it with --as", args.target)))?
                    .to_owned(),
            };
            let c = stopwait::PutClient::new(&name, server, Box::new(source), config, slot.clone())
                .with_progress(progress.clone());
            ("put", name, Box::new(c), size)
        }
    };
    let mut reactor = client_reactor()?;
    let socket = crate::reactor::udp_client_socket(server)
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    reactor
        .add_udp_session(socket, Some(server), session)
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    let outcome = run_client(reactor, !args.json, total, progress, &slot)?;
    let mut doc = serde_json::json!({"protocol": "stopwait", "verb": verb, "server": server.to_string(), "name": name});
    let result = match outcome {
        Some(stopwait::Outcome::Done {
            bytes,
            elapsed,
            retransmissions,
        }) => {
            let secs = elapsed.as_secs_f64();
            let blocks = bytes.div_ceil(100).max(1);
            #[allow(clippy::cast_precision_loss, reason = "rates for display")]
            let (bps, blocks_per_s) = if secs > 0.0 {
                (bytes as f64 / secs, blocks as f64 / secs)
            } else {
                (0.0, 0.0)
            };
            doc["outcome"] = serde_json::json!("ok");
            doc["bytes"] = serde_json::json!(bytes);
            doc["seconds"] = serde_json::json!(secs);
            doc["blocks_per_second"] = serde_json::json!(blocks_per_s);
            doc["retransmissions"] = serde_json::json!(retransmissions);
            if !args.json {
                eprintln!(
                    "{verb} {name}: {bytes} bytes in {secs:.3} s = {:.1} KB/s, {blocks_per_s:.0} blocks/s, {retransmissions} retransmissions",
                    bps / 1e3
                );
            }
            Ok(())
        }
        Some(stopwait::Outcome::Refused(text)) => {
            doc["outcome"] = serde_json::json!("refused");
            doc["answer"] = serde_json::json!(text);
            if !args.json {
                eprintln!("server: {text}");
            }
            Err(Failure::Refused(text))
        }
        Some(stopwait::Outcome::TimedOut { tries }) => {
            doc["outcome"] = serde_json::json!("timeout");
            Err(Failure::Error(format!(
                "{server}: no answer after {tries} tries"
            )))
        }
        Some(stopwait::Outcome::Failed(why)) => {
            doc["outcome"] = serde_json::json!("failed");
            doc["error"] = serde_json::json!(why);
            Err(Failure::Error(why))
        }
        None => Err(Failure::Error("no outcome".into())),
    };
    if args.json {
        println!("{doc}");
    }
    result
}

/// Where a download goes: `-o OUT`, `-o -`, or the name's last component.
fn local_sink(
    name: &str,
    output: Option<&std::path::Path>,
    force: bool,
) -> Result<crate::files::FileSink, Failure> {
    match output {
        Some(o) if o.as_os_str() == "-" => Ok(crate::files::FileSink::stdout()),
        Some(o) => {
            crate::files::FileSink::create(o, force).map_err(|e| error(&o.display().to_string(), e))
        }
        None => {
            let out = std::path::Path::new(name)
                .file_name()
                .ok_or_else(|| Failure::Error(format!("'{name}' has no file name: use -o")))?;
            let out = std::path::PathBuf::from(out);
            crate::files::FileSink::create(&out, force)
                .map_err(|e| error(&out.display().to_string(), e))
        }
    }
}

/// `mioperf tftp get|put HOST:PORT NAME|FILE`.
///
/// # Errors
/// Per the contract's exit codes.
pub fn tftp_client(args: &TftpArgs) -> Result<(), Failure> {
    use crate::proto::data::Source;
    use crate::wire::tftp::{Mode, Options};
    let server = resolve_host_port(&args.server)?;
    let mode = match args.mode {
        TftpMode::Octet => Mode::Octet,
        TftpMode::Netascii => Mode::Netascii,
    };
    let mut options = Options {
        blksize: args.blksize,
        windowsize: args.windowsize,
        ..Options::default()
    };
    let slot = tftp::OutcomeSlot::default();
    let progress = tcpfile::Progress::default();
    let (verb, name, session, total) = match args.verb {
        StopwaitVerb::Get => {
            let name = args.target.clone();
            let sink = local_sink(&name, args.output.as_deref(), args.force)?;
            if mode == Mode::Octet {
                options.tsize = Some(0);
            }
            let c = tftp::TftpClient::get(
                server,
                &name,
                mode,
                options,
                Box::new(sink),
                args.timeout,
                args.tries,
                slot.clone(),
            )
            .with_progress(progress.clone());
            ("get", name, c, None)
        }
        StopwaitVerb::Put => {
            let path = std::path::Path::new(&args.target);
            let source =
                crate::files::FileSource::open(path).map_err(|e| error(&args.target, e))?;
            let size = source.size();
            if mode == Mode::Octet {
                options.tsize = size;
            }
            let name = match &args.name {
                Some(n) => n.clone(),
                None => path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| Failure::Error(format!("{}: name it with --as", args.target)))?
                    .to_owned(),
            };
            let c = tftp::TftpClient::put(
                server,
                &name,
                mode,
                options,
                Box::new(source),
                args.timeout,
                args.tries,
                slot.clone(),
            )
            .with_progress(progress.clone());
            ("put", name, c, size)
        }
    };
    let mut reactor = client_reactor()?;
    // Not connected: the server answers from a new port (its transfer ID).
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .unwrap_or(server);
    let socket =
        mio::net::UdpSocket::bind(local).map_err(|e| error("cannot open a UDP socket", e))?;
    reactor
        .add_udp_session(socket, Some(server), Box::new(session))
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
    let outcome = run_client(reactor, !args.json, total, progress, &slot)?;
    let mut doc = serde_json::json!({"protocol": "tftp", "verb": verb, "server": server.to_string(), "name": name});
    let result = match outcome {
        Some(tftp::Outcome::Done {
            bytes,
            elapsed,
            retransmissions,
            blksize,
            windowsize,
        }) => {
            let secs = elapsed.as_secs_f64();
            let blocks = bytes / u64::from(blksize) + 1;
            #[allow(clippy::cast_precision_loss, reason = "rates for display")]
            let (bps, bkps) = if secs > 0.0 {
                (bytes as f64 / secs, blocks as f64 / secs)
            } else {
                (0.0, 0.0)
            };
            doc["outcome"] = serde_json::json!("ok");
            doc["bytes"] = serde_json::json!(bytes);
            doc["seconds"] = serde_json::json!(secs);
            doc["blocks_per_second"] = serde_json::json!(bkps);
            doc["blksize"] = serde_json::json!(blksize);
            doc["windowsize"] = serde_json::json!(windowsize);
            doc["retransmissions"] = serde_json::json!(retransmissions);
            if !args.json {
                eprintln!(
                    "{verb} {name}: {bytes} bytes in {secs:.3} s = {:.2} MiB/s, {bkps:.0} blocks/s (blksize {blksize}, window {windowsize}, {retransmissions} retransmissions)",
                    bps / 1_048_576.0
                );
            }
            Ok(())
        }
        Some(tftp::Outcome::Refused(code, text)) => {
            doc["outcome"] = serde_json::json!("refused");
            doc["error_code"] = serde_json::json!(code);
            doc["answer"] = serde_json::json!(text);
            if !args.json {
                eprintln!("server: error {code}: {text}");
            }
            Err(Failure::Refused(text))
        }
        Some(tftp::Outcome::TimedOut(tries)) => {
            doc["outcome"] = serde_json::json!("timeout");
            Err(Failure::Error(format!(
                "{server}: no answer after {tries} tries"
            )))
        }
        Some(tftp::Outcome::Failed(why)) => {
            doc["outcome"] = serde_json::json!("failed");
            doc["error"] = serde_json::json!(why);
            Err(Failure::Error(why))
        }
        None => Err(Failure::Error("no outcome".into())),
    };
    if args.json {
        println!("{doc}");
    }
    result
}
