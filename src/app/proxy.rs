//! `mioperf proxy`: the impairment proxy on a reactor of its own.
//!
//! Owns the command's wiring and its report: binds the listening socket,
//! prints the seed (always, so any run can be repeated), runs until a
//! signal or idle exit, then prints the counters of both directions. The
//! relaying itself is `proto::proxy`; the sockets are the reactor's.

use super::{Failure, error};
use crate::cli::proxy::ProxyArgs;
use crate::proto::proxy::impair::Counters;
use crate::proto::proxy::{ProxyAcceptor, Totals};
use crate::reactor::{Reactor, ReactorConfig};
use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::net::SocketAddr;

/// Runs `mioperf proxy` until SIGINT, SIGTERM or `--idle-exit`, then
/// prints its counters.
///
/// # Errors
/// Bad settings, or the listening socket cannot be bound.
pub fn run(args: &ProxyArgs) -> Result<(), Failure> {
    // No clock outside the reactor: a randomly keyed hash is a fine source
    // for a seed that only has to differ between runs.
    let seed = args
        .seed
        .unwrap_or_else(|| RandomState::new().hash_one(std::process::id()));
    let config = args.to_config(seed).map_err(Failure::Error)?;
    let acceptor =
        ProxyAcceptor::new(config).map_err(|(way, e)| Failure::Error(format!("{way}: {e}")))?;
    let reactor_config = ReactorConfig {
        idle_exit: args.idle_exit,
        max_shared_sessions: args.max_clients,
        spin: args.spin,
        ..ReactorConfig::default()
    };
    let totals = acceptor.totals();
    let mut reactor = Reactor::new(reactor_config).map_err(|e| error("reactor", e))?;
    reactor.watch_signals().map_err(|e| error("signals", e))?;
    let local = reactor
        .bind_udp(args.listen, Box::new(acceptor))
        .map_err(|e| error(&format!("cannot bind proxy udp {}", args.listen), e))?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening proxy udp {local}");
        let _ = writeln!(out, "upstream {} seed {seed}", args.upstream);
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    log::info!("proxy {local} -> {} seed {seed}", args.upstream);
    reactor.run().map_err(|e| error("poll", e))?;
    let totals = *totals.borrow();
    let refused = reactor.stats().sessions_refused;
    if args.json {
        let mut json = report_json(local, args.upstream, seed, &totals);
        json["mappings_refused"] = refused.into();
        println!("{json}");
    } else {
        print!("{}", report_table(local, args.upstream, seed, &totals));
        if refused > 0 {
            println!("{refused} datagram(s) from new clients dropped: --max-clients reached");
        }
    }
    Ok(())
}

/// The final counters as one JSON object.
pub fn report_json(
    listen: SocketAddr,
    upstream: SocketAddr,
    seed: u64,
    totals: &Totals,
) -> serde_json::Value {
    let way = |c: &Counters, overflow: u64| {
        let mut v = serde_json::to_value(c).unwrap_or_default();
        v["overflow"] = overflow.into();
        v
    };
    serde_json::json!({
        "listen": listen.to_string(),
        "upstream": upstream.to_string(),
        "seed": seed,
        "mappings_opened": totals.mappings_opened,
        "mappings_idled": totals.mappings_idled,
        "strays": totals.strays,
        "to_server": way(&totals.links[0], totals.overflow[0]),
        "to_client": way(&totals.links[1], totals.overflow[1]),
        "release_lateness_ns": {
            "count": totals.lateness.count,
            "p50": totals.lateness.quantile_ns(500),
            "p99": totals.lateness.quantile_ns(990),
            "max": totals.lateness.max_ns,
        },
    })
}

/// The final counters as a table, one row per direction.
pub fn report_table(
    listen: SocketAddr,
    upstream: SocketAddr,
    seed: u64,
    totals: &Totals,
) -> String {
    use core::fmt::Write as _;
    let mut s = format!(
        "proxy {listen} -> {upstream}  seed {seed}  mappings {} ({} idled out)  strays {}\n",
        totals.mappings_opened, totals.mappings_idled, totals.strays
    );
    let _ = writeln!(
        s,
        "{:<10} {:>10} {:>10} {:>14} {:>8} {:>10} {:>9} {:>8} {:>8} {:>9}",
        "direction",
        "offered",
        "forwarded",
        "bytes",
        "dropped",
        "queued-out",
        "overflow",
        "dup",
        "delayed",
        "reordered"
    );
    for (name, c, overflow) in [
        ("to-server", &totals.links[0], totals.overflow[0]),
        ("to-client", &totals.links[1], totals.overflow[1]),
    ] {
        let _ = writeln!(
            s,
            "{name:<10} {:>10} {:>10} {:>14} {:>8} {:>10} {:>9} {:>8} {:>8} {:>9}",
            c.offered,
            c.forwarded,
            c.bytes_forwarded,
            c.dropped,
            c.queue_dropped,
            overflow,
            c.duplicated,
            c.delayed,
            c.reordered
        );
    }
    if let (Some(p50), Some(p99)) = (
        totals.lateness.quantile_ns(500),
        totals.lateness.quantile_ns(990),
    ) {
        let _ = writeln!(
            s,
            "held copies left late by p50 <= {} us, p99 <= {} us, max {} us ({} copies)",
            p50.div_ceil(1000),
            p99.div_ceil(1000),
            totals.lateness.max_ns.div_ceil(1000),
            totals.lateness.count
        );
    }
    s
}
