//! `mioperf bench PROTO`: many client sessions of one protocol on one
//! reactor, measured by a [`report::Recorder`] and reported as a terminal
//! table, JSON and SVG.
//!
//! Owns the load generator: the run loop (reactor turns, with the
//! [`driver`] refilling ended sessions between them), the in-process server
//! it starts when no `--server` is given ([`local`]), and the choice of
//! output. It never formats figures itself: `report` does, so every number
//! comes from one place. It never reads the clock except through the
//! reactor, and holds no protocol logic (the client sessions and
//! [`exchange`] do).
//!
//! # One run
//! 1. [`plan::Plan`] checks the flags; the open-file limit is checked
//!    against `-P`.
//! 2. The server: `--server`, or [`local::start`].
//! 3. A client reactor, a [`load::Run`] holding the recorder, the
//!    [`load::Controller`] (intervals, the `-t` end), then turns of the
//!    reactor until no session is left and none may start; after each
//!    turn [`driver::Launcher::refill`] keeps `-P` sessions alive.
//!    SIGINT or SIGTERM end the run early: nothing more starts or is
//!    recorded, and the report covers the run up to the signal.
//! 4. The trailing partial interval is closed, the summary taken, and the
//!    document printed (table, `--json`, or the `--json-stream` end line)
//!    and drawn (`--svg`).
//!
//! What is printed, is printed as it happens ([`output`]): the table's
//! head (or the `--json-stream` start event) before the first turn, each
//! interval's row (or event) as the interval closes, the rest at the end;
//! on standard output or, with `--logfile`, appended to that file. Each
//! interval and the summary carry the CPU use of the generator's thread
//! and of the in-process server's, sampled with `getrusage` ([`cpu`]).

pub mod cpu;
pub mod direction;
pub mod driver;
pub mod exchange;
pub mod load;
pub mod local;
pub mod output;
pub mod plan;
pub mod report;

use crate::app::Failure;
use crate::cli::bench::{BenchArgs, BenchMode, BenchProto};
use crate::reactor::{Reactor, ReactorConfig};
use crate::time::Duration;
use core::cell::RefCell;
use load::{Controller, OnInterval, Run};
use plan::{Plan, Transport};
use report::{Document, Environment, IntervalReport, Recorder};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How long sessions get to notice a SIGINT and close before the report is
/// printed anyway (a session waiting on a long timer is not called sooner).
const INTERRUPT_GRACE: Duration = Duration::from_millis(500);

/// Descriptors kept free beyond the sessions' own (stdio, the poll and
/// timer fds, the in-process server's listeners, files being served).
const FD_HEADROOM: u64 = 64;

/// Runs `mioperf bench`.
///
/// # Errors
/// Exit 2 ([`Failure::Error`]) on bad flags, an unreachable server, a run
/// stopped by repeated failures, or a run in which nothing succeeded.
pub fn run(args: &BenchArgs) -> Result<(), Failure> {
    let plan = Plan::from_args(args).map_err(Failure::Error)?;
    check_fd_limit(&plan)?;
    // The in-process server logs every transfer at info level, thousands
    // of lines a second: keep the default output to the report (-v still
    // shows everything).
    if log::max_level() == log::LevelFilter::Info {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let local = match plan.server {
        None => Some(local::start(&plan)?),
        Some(_) => None,
    };
    let server = match (&plan.server, &local) {
        (Some(text), _) => resolve(text)?,
        (None, Some(l)) => l.addr,
        (None, None) => return Err(Failure::Error("no server".into())),
    };
    let outcome = drive(&plan, server, args.logfile.as_deref(), local.is_some());
    drop(local);
    outcome
}

fn resolve(text: &str) -> Result<SocketAddr, Failure> {
    text.to_socket_addrs()
        .map_err(|e| Failure::Error(format!("--server '{text}' is not HOST:PORT: {e}")))?
        .next()
        .ok_or_else(|| Failure::Error(format!("--server {text}: no address")))
}

/// The soft open-file limit, from `/proc/self/limits` (`None` if unreadable
/// or unlimited).
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Refuses a `-P` the open-file limit cannot hold, with the numbers.
fn check_fd_limit(plan: &Plan) -> Result<(), Failure> {
    // One socket per client session; the in-process server holds the
    // other end of a TCP connection, and a file or a TFTP transfer socket.
    let per_session: u64 = match (plan.server.is_none(), plan.transport) {
        (false, _) => 1,
        (true, Transport::Tcp) => 3,
        (true, Transport::Udp) => 2,
    };
    let need = u64::from(plan.sessions()) * per_session + FD_HEADROOM;
    match open_file_limit() {
        Some(limit) if need > limit => Err(Failure::Error(format!(
            "-P {} needs about {need} open files, above this process's limit of {limit}: \
             raise it (ulimit -n) or lower -P",
            plan.parallel
        ))),
        _ => Ok(()),
    }
}

/// The generator's reactor: it ends when its last session does.
fn client_config(plan: &Plan) -> ReactorConfig {
    ReactorConfig {
        exit_when_no_sessions: true,
        busy_poll: plan.busy_poll,
        ..ReactorConfig::default()
    }
}

/// Whether the protocol's clients count their retransmissions (stopwait
/// and tftp in their reports, window in its engine's counters). tcpfile
/// runs over kernel TCP, whose `TCP_INFO` would need the socket: the
/// reactor owns it and closes it at the session's end, so its count is
/// unknown (`null`), not zero.
fn counts_retransmits(proto: BenchProto) -> bool {
    matches!(
        proto,
        BenchProto::Stopwait | BenchProto::Tftp | BenchProto::Window
    )
}

/// The run's bounds, for the `--json-stream` start event.
fn limits() -> serde_json::Value {
    serde_json::json!({
        "max_parallel": plan::MAX_PARALLEL,
        "max_count": plan::MAX_COUNT,
        "max_time_ns": u64::try_from(plan::MAX_TIME.as_nanos()).unwrap_or(u64::MAX),
        "min_interval_ns": u64::try_from(plan::MIN_INTERVAL.as_nanos()).unwrap_or(u64::MAX),
        "open_files": open_file_limit(),
        "histogram_max_ns": report::MAX_TRACKABLE_NS,
        "histogram_max_buckets": report::MAX_BUCKETS,
    })
}

/// Turns the reactor, refilling sessions between turns, until no session
/// is left and none may start, or a SIGINT/SIGTERM's grace has passed.
fn turn_until_done(
    reactor: &mut Reactor,
    run: &Run,
    launcher: &driver::Launcher,
) -> Result<(), Failure> {
    // SIGINT/SIGTERM end the run early with its report, as iperf3 does. A
    // signal interrupts the reactor's epoll_wait (EINTR), so the loop sees
    // the flag at once.
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, interrupted.clone())
            .map_err(|e| Failure::Error(format!("signals: {e}")))?;
    }
    loop {
        let now = reactor.now();
        if interrupted.load(Ordering::Relaxed) {
            run.interrupt(now);
            if run
                .interrupted_at()
                .is_some_and(|at| now.saturating_since(at) >= INTERRUPT_GRACE)
            {
                break;
            }
        }
        launcher.refill(reactor);
        if run.active() == 0 {
            if !run.may_start(now) {
                break;
            }
            // Nothing runs, so no turn would wake: a start failed; try
            // again at once (bounded by Run::start_failed).
            continue;
        }
        reactor
            .turn()
            .map_err(|e| Failure::Error(format!("poll: {e}")))?;
    }
    Ok(())
}

/// Runs the load against `server` and reports (to `logfile` if given);
/// `in_process`: the server runs on a thread of this process.
fn drive(
    plan: &Plan,
    server: SocketAddr,
    logfile: Option<&std::path::Path>,
    in_process: bool,
) -> Result<(), Failure> {
    let retransmits = counts_retransmits(plan.proto);
    let output = Rc::new(RefCell::new(output::Output::open(
        plan.output,
        logfile,
        retransmits,
    )?));
    let mut reactor =
        Reactor::new(client_config(plan)).map_err(|e| Failure::Error(format!("reactor: {e}")))?;
    let inputs = plan.inputs(&server.to_string());
    let environment = Environment::detect(Some(plan.seed), None);
    output.borrow_mut().start(&inputs, &environment, &limits());
    let start = reactor.now();
    let end_at = plan.stop.time.map(|t| start + t);
    let budget = match plan.mode {
        // -n of a stream counts segments; each session runs one stream.
        BenchMode::Stream => plan.stop.count.map(|_| u64::from(plan.parallel)),
        _ => plan.stop.count,
    };
    let mut recorder = Recorder::new(start, plan.interval);
    if retransmits {
        recorder = recorder.with_retransmits();
    }
    let run = Rc::new(Run::new(
        recorder,
        start,
        end_at,
        budget,
        plan.sessions() as usize,
    ));
    let meter = Rc::new(RefCell::new(cpu::CpuMeter::start(start, in_process)));
    let on_interval: OnInterval = {
        let (output, meter) = (output.clone(), meter.clone());
        Rc::new(RefCell::new(
            move |report: &mut IntervalReport, now: crate::time::Instant| {
                report.cpu = meter.borrow_mut().lap(now);
                output.borrow_mut().interval(report);
            },
        ))
    };
    reactor.add_detached(Box::new(Controller::new(run.clone(), on_interval.clone())));
    let launcher = driver::Launcher::new(plan.clone(), server, run.clone());
    turn_until_done(&mut reactor, &run, &launcher)?;
    let now = reactor.now();
    let end = match (run.interrupted_at(), end_at) {
        (Some(at), _) => at,
        (None, Some(end)) if now >= end && run.fatal().is_none() => end,
        _ => run.last_event(),
    };
    Controller::close_due(&run, end, now, &on_interval);
    let mut summary = {
        let mut rec = run.recorder.borrow_mut();
        if plan.interval.is_some() && rec.interval_has_data() {
            let mut last = rec.close_interval(end);
            (on_interval.borrow_mut())(&mut last, now);
            run.intervals.borrow_mut().push(last);
        }
        rec.finish(end)
    };
    summary.cpu = meter.borrow().total(now);
    let doc = Document::new(inputs, environment, run.intervals.borrow().clone(), summary);
    let directions = plan.bidir.then(|| launcher.directions());
    let doc = direction::attach(doc, directions.as_deref());
    output.borrow_mut().end(&doc, directions.as_deref());
    if let Some(path) = &plan.svg {
        report::write_svg(&doc, path)
            .map_err(|e| Failure::Error(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(why) = run.fatal() {
        return Err(Failure::Error(format!("bench stopped: {why}")));
    }
    if run.successes() == 0 {
        let what = match plan.mode {
            BenchMode::Rr | BenchMode::Echo | BenchMode::Connect => "request",
            BenchMode::Stream => "stream",
            BenchMode::File | BenchMode::Get | BenchMode::Put => "transfer",
        };
        let why = run
            .failure_summary()
            .unwrap_or_else(|| "none was answered".into());
        return Err(Failure::Error(format!(
            "no {what} succeeded against {server}: {why}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::plan_of;

    #[test]
    fn the_generator_busy_polls_as_told_and_ends_with_its_sessions() {
        let busy = client_config(&plan_of(&["stopwait", "--busy-poll", "2ms"]).unwrap());
        assert_eq!(busy.busy_poll, Duration::from_millis(2));
        assert!(busy.exit_when_no_sessions);
        let plain = client_config(&plan_of(&["stopwait"]).unwrap());
        assert_eq!(plain.busy_poll, Duration::ZERO);
    }
}
