//! `mioperf serve`: every listener the configuration asks for, on one
//! reactor.
//!
//! Owns the server's wiring: which acceptor listens on which transport and
//! address, the TUN device tunstack's stack answers on (its net, MTU,
//! impairment seed and capture file), the descriptor budget that caps each protocol's sessions
//! (`budget.rs`), the one file store the file protocols share, and the
//! `listening …` / `ready` lines scripts wait for. It never implements a
//! protocol (that is `proto`) and never runs the event loop itself beyond
//! `Reactor::run` (that is `reactor`).

use super::budget;
use super::{Failure, error};
use crate::cli::ServeArgs;
use crate::config::{Protocol, ServeConfig, TUN_REORDER_MAX, TUN_REORDER_MIN, TunConfig};
use crate::proto::budget::{SharedBudget, shared as udp_budget_of};
use crate::proto::data::Files;
use crate::proto::hello;
use crate::proto::idle::TcpTimeouts;
use crate::proto::proxy::impair::ImpairConfig;
use crate::proto::tcp::conn;
use crate::proto::tunstack::echo::EchoAcceptor;
use crate::proto::tunstack::{ECHO_PORT, SharedCounters, Stack, StackConfig, TcpListeners};
use crate::proto::{DatagramAcceptor, StreamAcceptor, lab, msg, stopwait, tcpfile, tftp, window};
use crate::reactor::{Capture, TunDevice, TunSetup};
use crate::reactor::{Exit, Reactor, ReactorConfig};
use crate::store::{Store, StoreConfig};
use log::{info, warn};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::rc::Rc;

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
    start(config).map(|(server, _)| server)
}

/// [`start_server`], with what `serve` reports when the reactor stops.
fn start(config: &ServeConfig) -> Result<(Server, Vec<Report>), Failure> {
    let protocols = config.protocols();
    if protocols.is_empty() {
        return Err(Failure::Error("no protocol to serve".into()));
    }
    if !protocols.contains(&Protocol::Tunstack) && config.tun != TunConfig::default() {
        warn!("the --tun settings are ignored: tunstack is not served (add --only tunstack)");
    }
    // What the process may send to peers whose address is not validated:
    // one budget for every UDP service, so together they reflect no more.
    let udp_budget = udp_budget_of(config.udp_budget);
    let reactor_config = ReactorConfig {
        timer: config.timer,
        idle_exit: config.idle_exit,
        spin: config.spin,
        busy_poll: config.busy_poll,
        ..ReactorConfig::default()
    };
    let mut reactor = Reactor::new(reactor_config).map_err(|e| error("reactor", e))?;
    let budget = descriptor_budget(config, &protocols);
    let cap = |p: Protocol| budget.sessions(p).unwrap_or(usize::MAX);

    // The file protocols share one store (the root is created only if one
    // of them is served), and hello's two transports, kernel and
    // userspace TCP alike, one ID registry.
    let mut shared = Shared {
        store: None,
        hello: hello::Registry::shared(config.id_ttl, config.max_ids),
    };
    let mut listeners = Vec::new();
    // One idle/request rule for every TCP protocol.
    let timeouts = TcpTimeouts {
        idle: config.tcp_idle_timeout,
        request: config.tcp_request_timeout,
    };
    let mut reports = Vec::new();
    for protocol in protocols {
        if protocol == Protocol::Tunstack {
            let (bound, counters) = start_tunstack(&mut reactor, config, timeouts, &mut shared)?;
            listeners.push(bound);
            reports.push(Report::Tunstack(counters));
            continue;
        }
        let addr = config.addr(protocol);
        let (tcp, udp) = acceptors(
            protocol,
            config,
            timeouts,
            &udp_budget,
            &cap,
            &mut shared,
            &listeners,
        )?;
        let (tcp, udp) = super::trace::for_server(protocol, tcp, udp);
        if let Some(tcp) = tcp {
            let tcp = reactor
                .listen_tcp_capped(addr, tcp, cap(protocol))
                .map_err(|e| error(&format!("cannot listen on {protocol} tcp {addr}"), e))?;
            listeners.push(Bound {
                protocol,
                transport: "tcp",
                addr: tcp,
                device: None,
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
                device: None,
            });
        }
    }
    Ok((Server { reactor, listeners }, reports))
}

/// What a protocol reports when the server stops.
enum Report {
    /// tunstack's counters, read through the handle its stack publishes.
    Tunstack(SharedCounters),
}

impl Report {
    fn log(&self) {
        match self {
            Self::Tunstack(counters) => info!("tunstack: {}", counters.get()),
        }
    }
}

/// Opens the TUN device `tun` names, configures it, and puts the stack on
/// it as a device session (with the capture as its endpoints 1 and 2 when
/// `--pcap` is given). Returns its `listening` entry and its counters.
fn start_tunstack(
    reactor: &mut Reactor,
    config: &ServeConfig,
    timeouts: TcpTimeouts,
    shared: &mut Shared,
) -> Result<(Bound, SharedCounters), Failure> {
    let tun = &config.tun;
    let setup = TunSetup {
        name: tun.name.clone(),
        kernel_addr: tun.net.kernel_addr(),
        prefix_len: tun.net.prefix_len(),
        mtu: tun.mtu,
    };
    // The error is the whole line (which privilege, which call).
    let device = TunDevice::open(&setup).map_err(|e| Failure::Error(e.to_string()))?;
    // After the device: without the privilege, that is the one error.
    let listeners = tunstack_listeners(config, timeouts, shared)?;
    let capture = tun
        .pcap
        .as_deref()
        .map(|path| {
            Capture::create(path)
                .map_err(|e| error(&format!("cannot create capture {}", path.display()), e))
        })
        .transpose()?;
    let (impair_in, impair_out) = tun_impairment(tun);
    let stack = Stack::new(StackConfig {
        addr: tun.net.stack_addr(),
        mtu: usize::from(tun.mtu),
        impair_in,
        impair_out,
        capture: capture.is_some(),
    })
    .map_err(|e| Failure::Error(format!("tunstack: {e}")))?
    .with_tcp(
        listeners,
        conn::Config {
            cc: config.tcp_cc,
            ..conn::Config::default()
        },
    );
    let counters = stack.shared_counters();
    let name = device.name().to_owned();
    reactor
        .add_device_session(device, capture, Box::new(stack))
        .map_err(|e| error(&format!("cannot register TUN device {name}"), e))?;
    info!(
        "tunstack: device {name}, kernel side {}/{}, MTU {}",
        setup.kernel_addr, setup.prefix_len, setup.mtu
    );
    let bound = Bound {
        protocol: Protocol::Tunstack,
        transport: "tun",
        addr: SocketAddr::new(tun.net.stack_addr().into(), 0),
        device: Some(name),
    };
    Ok((bound, counters))
}

/// What tunstack serves over its userspace TCP at its address: the stream
/// protocols on their usual ports, built as their kernel listeners are
/// (the same root, limits, timeouts and hello registry), TCP echo and
/// HTTP. tcpfile without zero-copy: the engine keeps its own copy of
/// every byte in flight, so there is no socket to `sendfile` into.
fn tunstack_listeners(
    config: &ServeConfig,
    timeouts: TcpTimeouts,
    shared: &mut Shared,
) -> Result<TcpListeners, Failure> {
    let files = shared_store(&mut shared.store, config)?;
    let port = Protocol::default_port;
    let listeners: TcpListeners = vec![
        (
            port(Protocol::Hello),
            Box::new(hello::HelloStreamAcceptor::new(
                shared.hello.clone(),
                timeouts,
            )),
        ),
        (
            port(Protocol::Lab),
            Box::new(lab::LabStreamAcceptor::new(config.lab).with_timeouts(timeouts)),
        ),
        (
            port(Protocol::Msg),
            Box::new(msg::MsgAcceptor::new(config.msg_max).with_timeouts(timeouts)),
        ),
        (
            port(Protocol::Tcpfile),
            Box::new(
                tcpfile::TcpFileAcceptor::new(files.clone())
                    .with_zero_copy(false)
                    .with_timeouts(timeouts),
            ),
        ),
        (ECHO_PORT, Box::new(EchoAcceptor::new(timeouts))),
        (
            crate::proto::http::PORT,
            Box::new(
                crate::proto::http::HttpAcceptor::new(files)
                    .with_zero_copy(false)
                    .with_timeouts(timeouts),
            ),
        ),
    ];
    Ok(listeners)
}

/// The impairment of each direction of the device: the proxy's model
/// (drop, duplicate, reorder), seeded from `--tun-seed` or a random seed
/// that is logged so the run can be repeated; `None` when nothing is
/// impaired.
fn tun_impairment(tun: &TunConfig) -> (Option<ImpairConfig>, Option<ImpairConfig>) {
    if !tun.impaired() {
        return (None, None);
    }
    // No clock outside the reactor: a randomly keyed hash is a fine source
    // for a seed that only has to differ between runs (as the proxy's).
    let seed = tun
        .seed
        .unwrap_or_else(|| RandomState::new().hash_one(std::process::id()));
    info!(
        "tunstack: impairment drop {} dup {} reorder {} seed {seed}",
        tun.drop.get(),
        tun.dup.get(),
        tun.reorder.get()
    );
    let way = |seed| ImpairConfig {
        drop: tun.drop.get(),
        duplicate: tun.dup.get(),
        reorder: tun.reorder.get(),
        reorder_min: TUN_REORDER_MIN,
        reorder_max: TUN_REORDER_MAX,
        seed,
        ..ImpairConfig::default()
    };
    // The two directions draw from different sub-streams of the one seed.
    (
        Some(way(crate::rng::mix(seed, 0))),
        Some(way(crate::rng::mix(seed, 1))),
    )
}

/// A server reactor with every listener bound, not yet running.
pub struct Server {
    /// The reactor holding the listeners.
    pub reactor: Reactor,
    /// What is bound where, in the order the listeners were opened.
    pub listeners: Vec<Bound>,
}

/// One bound listener of a [`Server`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The protocol it serves.
    pub protocol: Protocol,
    /// `"tcp"`, `"udp"` or `"tun"` (a device).
    pub transport: &'static str,
    /// The address it is bound to (with the port the kernel picked for 0);
    /// on a device, the address it answers as (port 0).
    pub addr: SocketAddr,
    /// The device's name, for a protocol on a device.
    pub device: Option<String>,
}

/// [`serve`] with a ready-made configuration: binds, prints the
/// `listening …` lines and `ready`, then runs until a signal or idle exit.
///
/// # Errors
/// An unimplemented protocol was asked for, or a listener cannot be bound.
pub fn serve_config(config: &ServeConfig) -> Result<(), Failure> {
    let (
        Server {
            mut reactor,
            listeners,
        },
        reports,
    ) = start(config)?;
    reactor.watch_signals().map_err(|e| error("signals", e))?;
    // Scripts wait for these lines: print them all at once, then flush.
    let mut out = io::stdout().lock();
    for Bound {
        protocol,
        transport,
        addr,
        device,
    } in &listeners
    {
        let line = match device {
            // `listening tunstack tun mio0 192.0.2.1`
            Some(name) => format!("listening {protocol} {transport} {name} {}", addr.ip()),
            None => format!("listening {protocol} {transport} {addr}"),
        };
        info!("{line}");
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);

    let exit = reactor.run().map_err(|e| error("poll", e));
    for report in &reports {
        report.log();
    }
    match exit? {
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

/// What several listeners share: the file store, opened on first use,
/// and hello's ID registry (its TCP and UDP listeners, on the kernel and
/// on tunstack).
struct Shared {
    store: Option<Rc<dyn Files>>,
    hello: hello::SharedRegistry,
}

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
    // Said now rather than as `error 0` to the first upload: a read-only
    // root may be meant (a download-only server), so only --strict refuses.
    if let Err(e) = store.probe_writable() {
        let why = format!("{} is not writable: {e}", config.root.display());
        if config.strict {
            return Err(Failure::Error(format!("--strict: {why}")));
        }
        log::warn!("{why}; uploads will fail");
    }
    Ok(store)
}

/// The acceptors of `protocol`'s TCP and UDP listeners, where it has that
/// transport. `cap` is each protocol's session cap; `bound` what is
/// already listening (the proxy's default upstream is this process's
/// stopwait).
fn acceptors(
    protocol: Protocol,
    config: &ServeConfig,
    timeouts: TcpTimeouts,
    udp_budget: &SharedBudget,
    cap: &dyn Fn(Protocol) -> usize,
    shared: &mut Shared,
    bound: &[Bound],
) -> Result<Acceptors, Failure> {
    let store = &mut shared.store;
    let pair: Acceptors = match protocol {
        Protocol::Hello => (
            Some(Box::new(hello::HelloStreamAcceptor::new(
                shared.hello.clone(),
                timeouts,
            ))),
            Some(Box::new(hello::HelloDatagramAcceptor::new(
                shared.hello.clone(),
            ))),
        ),
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
            let files = shared_store(store, config)?;
            let acceptor = tcpfile::TcpFileAcceptor::new(files)
                .with_zero_copy(config.sendfile)
                .with_timeouts(timeouts);
            (Some(Box::new(acceptor)), None)
        }
        Protocol::Tftp => {
            let files = shared_store(store, config)?;
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
            let files = shared_store(store, config)?;
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
                    stopwait::StopwaitAcceptor::new(files, timers).with_budget(udp_budget.clone()),
                )),
            )
        }
        Protocol::Proxy => {
            // The seed's arrangement: the proxy in front of stopwait,
            // wherever this process bound it.
            let stopwait = bound
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
        Protocol::Window => {
            let files = shared_store(store, config)?;
            let app = tcpfile::TcpFileAcceptor::new(files)
                .with_zero_copy(false)
                .with_timeouts(timeouts);
            let mut window_config = window::WindowConfig {
                max_connections: cap(Protocol::Window),
                ..window::WindowConfig::default()
            };
            window_config.tcp.cc = config.tcp_cc;
            let acceptor = window::WindowAcceptor::new(
                config.addr(Protocol::Window),
                Box::new(app),
                window_config,
                crate::proto::tcp::isn::random_key(),
            );
            (None, Some(Box::new(acceptor)))
        }
        Protocol::Tunstack => unreachable!("tunstack is served on its device, not on sockets"),
    };
    Ok(pair)
}
