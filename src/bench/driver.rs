//! Starts the bench's sessions on the reactor and keeps `-P` of them alive.
//!
//! Owns the mapping from a [`Plan`] to sessions — which client session a
//! mode uses, which socket it gets — and how a finished client's outcome
//! is recorded: every protocol through the one `settle`, each success
//! report adding its own figures (`Measured`). It also owns the
//! refill step the run loop calls between reactor turns: a session that
//! ended (a transfer done, a connection closed) is replaced while the run
//! lasts. Sessions cannot start sessions, so this is the one place new
//! sockets are asked for. Protocol logic stays in the client sessions and
//! in `exchange`.

use super::direction::Directions;
use super::exchange::{EchoExchange, HelloExchange, MsgExchange};
use super::load::{Count, Repeat, Run, Settle, Tracked};
use super::plan::{MAX_STREAM_COUNT, Plan, Transport};
use super::report::Recorder;
use crate::cli::bench::{BenchMode, BenchProto};
use crate::proto::data::{Sink, Source};
use crate::proto::outcome::{ClientError, OutcomeSlot, Progress};
use crate::proto::{
    DatagramSession, Driven, StreamSession, hello, lab, stopwait, tcpfile, tftp, window,
};
use crate::reactor::{Reactor, udp_client_socket};
use crate::time::{Duration, Instant};
use bytes::BytesMut;
use core::cell::Cell;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;

/// Retries of one stopwait or TFTP packet before the transfer times out.
const TRANSFER_TRIES: u32 = 5;

/// Bytes that are counted and dropped: a download's destination.
#[derive(Debug, Default)]
struct Discard {
    bytes: u64,
}

impl Sink for Discard {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<u64, ErrorKind> {
        Ok(self.bytes)
    }
}

/// `size` bytes of the lab pattern, generated on demand: an upload's source.
#[derive(Debug)]
struct Pattern {
    size: u64,
    pos: u64,
}

impl Source for Pattern {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }

    fn read_into(&mut self, dst: &mut BytesMut, max: usize) -> Result<usize, ErrorKind> {
        let left = self.size - self.pos;
        let n = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(max)
            .min(crate::wire::lab::PATTERN_RUN);
        dst.extend_from_slice(crate::wire::lab::pattern_run(self.pos, n));
        self.pos += n as u64;
        Ok(n)
    }
}

/// What a start attempt did.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// A session is running in the slot.
    Yes,
    /// Nothing is left to start (the run's time is too short for another
    /// stream); the slot was given back.
    NothingLeft,
}

/// A client session as the reactor takes it: on a TCP connection or on a
/// UDP socket.
enum Client {
    Stream(Box<dyn StreamSession>),
    Datagram(Box<dyn DatagramSession>),
}

/// Builds sessions for one plan against one server.
#[derive(Debug)]
pub struct Launcher {
    plan: Plan,
    server: SocketAddr,
    run: Rc<Run>,
    directions: Rc<Directions>,
}

impl Launcher {
    /// A launcher of `plan`'s sessions against `server`, recording into `run`.
    pub fn new(plan: Plan, server: SocketAddr, run: Rc<Run>) -> Self {
        Self {
            plan,
            server,
            run,
            directions: Rc::default(),
        }
    }

    /// What the file sessions moved in each direction (`--bidir`).
    pub fn directions(&self) -> Rc<Directions> {
        self.directions.clone()
    }

    /// A [`Tracked`] session that also counts into its slot's direction
    /// (file protocols).
    fn track<S: Driven + ?Sized>(
        &self,
        inner: Box<S>,
        slot: usize,
        now: Instant,
        count: Count,
        settle: Settle,
    ) -> Tracked<S> {
        if !self.plan.proto.is_file() {
            return Tracked::new(inner, self.run.clone(), slot, now, count, settle);
        }
        let tally = self.directions.of(self.plan.mode_of(slot));
        let settle = tally.counting(settle);
        Tracked::new(inner, self.run.clone(), slot, now, count, settle)
            .counting_into(tally.bytes.clone())
    }

    /// Whether each session does one request or transfer (and is replaced)
    /// rather than many on one socket.
    fn one_shot(&self) -> bool {
        !matches!(self.plan.mode, BenchMode::Rr | BenchMode::Echo)
    }

    /// Starts sessions until `-P` are alive or the run allows no more.
    /// A socket that cannot be opened counts as a failed request.
    pub fn refill(&self, reactor: &mut Reactor) {
        loop {
            let now = reactor.now();
            if !self.run.may_start(now) {
                return;
            }
            let Some(slot) = self.run.claim_slot() else {
                return;
            };
            if self.one_shot() && !self.run.take(now) {
                self.run.release_slot(slot);
                return;
            }
            match self.start(reactor, slot, now) {
                Ok(Started::Yes) => {}
                Ok(Started::NothingLeft) => {
                    self.run.release_slot(slot);
                    self.run.exhaust();
                    return;
                }
                Err(e) => {
                    // Not retried here: the run loop calls again, and the
                    // failures in a row stop the run if it persists.
                    log::debug!("cannot start a session: {e}");
                    self.run.release_slot(slot);
                    self.run.recorder.borrow_mut().add_error(now);
                    self.run.start_failed(now, &e.to_string());
                    return;
                }
            }
        }
    }

    fn add(&self, reactor: &mut Reactor, session: Client) -> std::io::Result<()> {
        match session {
            Client::Stream(session) => reactor.connect_tcp(self.server, session).map(drop),
            Client::Datagram(session) => {
                let socket = udp_client_socket(self.server)?;
                reactor
                    .add_udp_session(socket, Some(self.server), session)
                    .map(drop)
            }
        }
    }

    fn tracked(
        &self,
        inner: Client,
        slot: usize,
        now: Instant,
        count: Count,
        settle: Settle,
    ) -> Client {
        match inner {
            Client::Stream(inner) => {
                Client::Stream(Box::new(self.track(inner, slot, now, count, settle)))
            }
            Client::Datagram(inner) => {
                Client::Datagram(Box::new(self.track(inner, slot, now, count, settle)))
            }
        }
    }

    /// `session` on the plan's transport (a client that speaks both).
    fn on_transport<S: StreamSession + DatagramSession + 'static>(&self, session: S) -> Client {
        match self.plan.transport {
            Transport::Tcp => Client::Stream(Box::new(session)),
            Transport::Udp => Client::Datagram(Box::new(session)),
        }
    }

    fn start(&self, reactor: &mut Reactor, slot: usize, now: Instant) -> std::io::Result<Started> {
        let plan = &self.plan;
        let run = &self.run;
        let slots = plan.parallel as usize;
        let session = match (plan.proto, plan.mode_of(slot)) {
            (BenchProto::Hello, BenchMode::Rr) => {
                let e = HelloExchange::new(run.clone(), slot, slots, plan.seed, plan.transport);
                self.on_transport(Repeat::new(
                    e,
                    plan.transport,
                    run.clone(),
                    slot,
                    plan.timeout,
                ))
            }
            (BenchProto::Lab, BenchMode::Echo) => {
                let len = usize::try_from(plan.length).unwrap_or(usize::MAX);
                let e = EchoExchange::new(len, plan.seed.wrapping_add(slot as u64));
                self.on_transport(Repeat::new(
                    e,
                    plan.transport,
                    run.clone(),
                    slot,
                    plan.timeout,
                ))
            }
            (BenchProto::Msg, _) => {
                let e = MsgExchange::new(u32::try_from(plan.length).unwrap_or(u32::MAX));
                self.on_transport(Repeat::new(
                    e,
                    plan.transport,
                    run.clone(),
                    slot,
                    plan.timeout,
                ))
            }
            (BenchProto::Hello, _) => self.hello_connect(slot, now)?,
            (BenchProto::Lab, BenchMode::Stream) => match self.stream(slot, now) {
                Some(s) => s,
                None => return Ok(Started::NothingLeft),
            },
            (BenchProto::Lab, _) => self.lab_file(slot, now),
            (BenchProto::Tcpfile, mode) => self.tcpfile(mode, slot, now),
            (BenchProto::Stopwait, mode) => self.stopwait(mode, slot, now),
            (BenchProto::Tftp, mode) => return self.tftp(reactor, mode, slot, now),
            (BenchProto::Window, mode) => return self.window(reactor, mode, slot, now),
        };
        self.add(reactor, session)?;
        Ok(Started::Yes)
    }

    fn put_name(&self, slot: usize) -> String {
        format!("put-{slot}-{}", self.plan.name)
    }

    fn hello_connect(&self, slot: usize, now: Instant) -> std::io::Result<Client> {
        let outcome = OutcomeSlot::new();
        let mut ids = HelloExchange::new(
            self.run.clone(),
            slot,
            self.plan.parallel as usize,
            self.plan.seed,
            Transport::Tcp,
        );
        let id = ids
            .next_id()
            .ok_or_else(|| std::io::Error::other("no hello ID left"))?;
        let request = crate::wire::hello::Request { id };
        let inner = hello::Client::new(
            request,
            hello::Transport::Tcp,
            self.plan.timeout,
            1,
            outcome.clone(),
        );
        let settle = settle("hello", outcome);
        let inner = Client::Stream(Box::new(inner));
        Ok(self.tracked(inner, slot, now, Count::Input, settle))
    }

    fn lab_transport(&self) -> lab::Transport {
        match self.plan.transport {
            Transport::Tcp => lab::Transport::Tcp,
            Transport::Udp => lab::Transport::Udp {
                server: self.server,
            },
        }
    }

    fn lab_file(&self, slot: usize, now: Instant) -> Client {
        let outcome = OutcomeSlot::new();
        let progress = Progress::new();
        let request = self.plan.length.to_string();
        let inner = lab::Client::new(
            request.as_bytes(),
            self.lab_transport(),
            MAX_STREAM_COUNT,
            self.plan.timeout,
            outcome.clone(),
        )
        .with_progress(progress.clone());
        let settle = settle("lab file", outcome);
        // Over UDP the client counts no progress: count datagrams as they
        // arrive (the `READY`/`DONE` lines add a few bytes; the transfer's
        // own byte count is exact).
        let count = match self.plan.transport {
            Transport::Tcp => Count::Progress(progress),
            Transport::Udp => Count::Input,
        };
        self.tracked(self.on_transport(inner), slot, now, count, settle)
    }

    /// A stream that fits in what is left of the run (`-n`: N segments).
    fn stream(&self, slot: usize, now: Instant) -> Option<Client> {
        let interval_ns = self.plan.stream_interval_ns();
        let count = match (self.plan.stop.count, self.run.end_at()) {
            (Some(n), _) => n,
            (None, Some(end)) => {
                // One interval of margin, so the last segment lands before the end.
                let left = end.saturating_since(now).as_nanos();
                let fits = u64::try_from(left / u128::from(interval_ns)).unwrap_or(u64::MAX);
                fits.saturating_sub(1).min(MAX_STREAM_COUNT)
            }
            (None, None) => MAX_STREAM_COUNT,
        };
        if count == 0 {
            return None;
        }
        let ms = format!("{}.{:06}", interval_ns / 1_000_000, interval_ns % 1_000_000);
        let request = format!("stream-{ms}-{count}-{}", self.plan.length);
        let outcome = OutcomeSlot::new();
        let inner = lab::Client::new(
            request.as_bytes(),
            self.lab_transport(),
            MAX_STREAM_COUNT,
            self.plan.timeout,
            outcome.clone(),
        );
        let settle = settle("lab stream", outcome);
        // Its report comes with its end: one still in flight at the `-t`
        // end (late on a loaded machine) may settle in the END_GRACE.
        let run = self.run.clone();
        Some(match self.on_transport(inner) {
            Client::Stream(inner) => Client::Stream(Box::new(
                Tracked::new(inner, run, slot, now, Count::Input, settle).with_end_grace(),
            )),
            Client::Datagram(inner) => Client::Datagram(Box::new(
                Tracked::new(inner, run, slot, now, Count::Input, settle).with_end_grace(),
            )),
        })
    }

    /// A tcpfile client of `mode` reporting to `outcome` and `progress`:
    /// on a kernel TCP connection (`bench tcpfile`) or above the engine
    /// (`bench window`).
    fn tcpfile_app(
        &self,
        mode: BenchMode,
        slot: usize,
        outcome: &OutcomeSlot<tcpfile::Done>,
        progress: &Progress,
    ) -> Box<dyn StreamSession> {
        if mode == BenchMode::Put {
            let source = Box::new(Pattern {
                size: self.plan.length,
                pos: 0,
            });
            Box::new(tcpfile::PutClient::new(
                &self.put_name(slot),
                source,
                self.plan.length,
                self.plan.timeout,
                outcome.clone(),
                progress.clone(),
            ))
        } else {
            Box::new(tcpfile::GetClient::new(
                &self.plan.name,
                Box::new(Discard::default()),
                self.plan.timeout,
                outcome.clone(),
                progress.clone(),
            ))
        }
    }

    fn tcpfile(&self, mode: BenchMode, slot: usize, now: Instant) -> Client {
        let outcome = OutcomeSlot::new();
        let progress = Progress::new();
        let inner = self.tcpfile_app(mode, slot, &outcome, &progress);
        let settle = settle("tcpfile", outcome);
        self.tracked(
            Client::Stream(inner),
            slot,
            now,
            Count::Progress(progress),
            settle,
        )
    }

    fn stopwait(&self, mode: BenchMode, slot: usize, now: Instant) -> Client {
        let outcome = OutcomeSlot::new();
        let progress = Progress::new();
        let config = stopwait::StopwaitConfig {
            timeout: self.plan.timeout,
            tries: TRANSFER_TRIES,
            ..stopwait::StopwaitConfig::DEFAULT
        };
        let inner: Box<dyn DatagramSession> = if mode == BenchMode::Put {
            let source = Box::new(Pattern {
                size: self.plan.length,
                pos: 0,
            });
            Box::new(
                stopwait::PutClient::new(
                    &self.put_name(slot),
                    self.server,
                    source,
                    config,
                    outcome.clone(),
                )
                .with_progress(progress.clone()),
            )
        } else {
            Box::new(
                stopwait::GetClient::new(
                    &self.plan.name,
                    self.server,
                    Box::new(Discard::default()),
                    config,
                    outcome.clone(),
                )
                .with_progress(progress.clone()),
            )
        };
        let settle = settle("stopwait", outcome);
        let inner = Client::Datagram(inner);
        self.tracked(inner, slot, now, Count::Progress(progress), settle)
    }

    fn tftp(
        &self,
        reactor: &mut Reactor,
        mode: BenchMode,
        slot: usize,
        now: Instant,
    ) -> std::io::Result<Started> {
        use crate::wire::tftp::{Mode, Options};
        let outcome = OutcomeSlot::new();
        let progress = Progress::new();
        let mut options = Options {
            blksize: self.plan.blksize,
            windowsize: self.plan.windowsize,
            ..Options::default()
        };
        let client = if mode == BenchMode::Put {
            options.tsize = Some(self.plan.length);
            let source = Box::new(Pattern {
                size: self.plan.length,
                pos: 0,
            });
            tftp::TftpClient::put(
                self.server,
                &self.put_name(slot),
                Mode::Octet,
                options,
                source,
                self.plan.timeout,
                TRANSFER_TRIES,
                outcome.clone(),
            )
        } else {
            options.tsize = Some(0);
            tftp::TftpClient::get(
                self.server,
                &self.plan.name,
                Mode::Octet,
                options,
                Box::new(Discard::default()),
                self.plan.timeout,
                TRANSFER_TRIES,
                outcome.clone(),
            )
        }
        .with_progress(progress.clone());
        let settle = settle("tftp", outcome);
        let count = Count::Progress(progress);
        let inner: Box<dyn DatagramSession> = Box::new(client);
        let session = Box::new(self.track(inner, slot, now, count, settle));
        // Not connected: the server answers from a new port (its transfer ID).
        let local: SocketAddr = if self.server.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = mio::net::UdpSocket::bind(local)?;
        reactor.add_udp_session(socket, Some(self.server), session)?;
        Ok(Started::Yes)
    }

    /// tcpfile over the engine carried in UDP, on a connected socket of
    /// its own (the UDP 4-tuple names the connection); the engine's
    /// counters are recorded when the session ends, success or not.
    fn window(
        &self,
        reactor: &mut Reactor,
        mode: BenchMode,
        slot: usize,
        now: Instant,
    ) -> std::io::Result<Started> {
        let outcome = OutcomeSlot::new();
        let progress = Progress::new();
        let app = self.tcpfile_app(mode, slot, &outcome, &progress);
        let socket = udp_client_socket(self.server)?;
        let local = socket.local_addr()?;
        let mut config = window::WindowConfig::default();
        config.tcp.cc = self.plan.cc;
        let counters = Rc::new(Cell::new(None));
        let carried = window::Carried::connect(
            config.tcp,
            local,
            self.server,
            crate::proto::tcp::isn::random_key(),
            app,
        )
        .with_counters(counters.clone());
        let inner = settle("window", outcome);
        let settle: Settle = Box::new(move |run, now, took| {
            if let Some(c) = counters.get() {
                run.recorder.borrow_mut().add_tcp(now, &c);
            }
            inner(run, now, took)
        });
        let count = Count::Progress(progress);
        let inner: Box<dyn DatagramSession> = Box::new(carried);
        let session = self.track(inner, slot, now, count, settle);
        reactor.add_udp_session(socket, Some(self.server), Box::new(session))?;
        Ok(Started::Yes)
    }
}

/// How every protocol's finished client is recorded, the same way: a
/// success report adds its figures ([`Measured`]); a timeout counts as a
/// timeout; a refusal, any other failure, an answer that is itself a
/// failure, or no outcome at all counts as an error. `what` names the
/// protocol in the failure's log line. Returns whether it succeeded.
fn settle<T: Measured>(what: &'static str, outcome: OutcomeSlot<T>) -> Settle {
    Box::new(move |run, now, took| {
        let (timed_out, why) = match outcome.take() {
            Some(Ok(report)) => match report.record(&mut run.recorder.borrow_mut(), now, took) {
                Ok(()) => {
                    run.succeeded(now);
                    return true;
                }
                Err(why) => (false, why),
            },
            Some(Err(error)) => (
                matches!(error, ClientError::TimedOut { .. }),
                error.to_string(),
            ),
            None => (false, "the session ended without an outcome".into()),
        };
        let why = format!("{what}: {why}");
        log::debug!("{why}");
        if timed_out {
            run.recorder.borrow_mut().add_timeout(now);
        } else {
            run.recorder.borrow_mut().add_error(now);
        }
        run.failed(now, &why);
        false
    })
}

/// A client's success report, as the bench records it.
trait Measured: 'static {
    /// Adds what the exchange measured to `rec` (at `now`, `took` after
    /// it started); `Err` says why this answer is a failure after all.
    fn record(self, rec: &mut Recorder, now: Instant, took: Duration) -> Result<(), String>;
}

/// A registration answered: `OK` or `RESET` is a served request (the IDs
/// repeat across the run); `ERROR` is not.
impl Measured for hello::Answer {
    fn record(self, rec: &mut Recorder, now: Instant, took: Duration) -> Result<(), String> {
        if self.verb == hello::client::Verb::Error {
            return Err(self.line);
        }
        rec.add_request(now, took);
        rec.add_packets(now, 1);
        Ok(())
    }
}

/// A file counts only whole and intact; a stream adds its losses and
/// schedule errors, and the bytes of the segments that arrived.
impl Measured for lab::Report {
    fn record(self, rec: &mut Recorder, now: Instant, took: Duration) -> Result<(), String> {
        match self {
            Self::File {
                expected,
                received,
                first_bad: None,
                complete: true,
                ..
            } if received == expected => rec.add_transfer(now, received, took),
            Self::Stream {
                expected,
                size,
                interval_ns,
                samples,
                ..
            } => {
                let st = crate::stats::stream_stats(&samples, expected, interval_ns, size);
                rec.add_stream_counts(now, st.lost, st.reordered, st.duplicated);
                for late in schedule_errors(&samples) {
                    rec.add_schedule_error(now, late);
                }
                rec.add_transfer(now, st.unique * u64::from(size), took);
            }
            Self::File {
                expected,
                received,
                first_bad,
                ..
            } => {
                return Err(match first_bad {
                    Some(at) => format!("the file's pattern broke at byte {at}"),
                    None => format!("the file stopped at {received} of {expected} bytes"),
                });
            }
            Self::Echo { .. } => return Err("an echo answered a file request".into()),
        }
        Ok(())
    }
}

impl Measured for tcpfile::Done {
    fn record(self, rec: &mut Recorder, now: Instant, took: Duration) -> Result<(), String> {
        rec.add_transfer(now, self.bytes, took);
        Ok(())
    }
}

impl Measured for stopwait::Done {
    fn record(self, rec: &mut Recorder, now: Instant, took: Duration) -> Result<(), String> {
        rec.add_transfer(now, self.bytes, took);
        rec.add_retransmits(now, self.retransmissions);
        Ok(())
    }
}

impl Measured for tftp::Done {
    fn record(self, rec: &mut Recorder, now: Instant, took: Duration) -> Result<(), String> {
        rec.add_transfer(now, self.bytes, took);
        rec.add_retransmits(now, self.retransmissions);
        Ok(())
    }
}

/// Each in-order segment's inter-arrival error, in ns: how much later
/// (negative: earlier) it arrived after the previous in-order segment than
/// the schedule spaced them — |Δarrival − Δscheduled|, signed. This is the
/// measure of `stats::stream_stats`, `mioperf lab` and `pace.c`, so the
/// figures compare. Duplicates and late reordered segments are skipped.
pub fn schedule_errors(samples: &[lab::StreamSample]) -> Vec<i64> {
    let mut out = Vec::with_capacity(samples.len());
    let mut previous: Option<&lab::StreamSample> = None;
    for s in samples {
        match previous {
            Some(p) if s.seq <= p.seq => continue,
            Some(p) => {
                let rx = i128::from(s.rx_ns) - i128::from(p.rx_ns);
                let sched = i128::from(s.sched_ns) - i128::from(p.sched_ns);
                out.push(i64::try_from(rx - sched).unwrap_or(i64::MAX));
            }
            None => {}
        }
        previous = Some(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::outcome::Outcome;

    fn s(seq: u64, sched_ns: u64, rx_ns: u64) -> lab::StreamSample {
        lab::StreamSample {
            seq,
            sched_ns,
            rx_ns,
        }
    }

    #[test]
    fn schedule_errors_follow_the_grid() {
        let samples = [
            s(0, 0, 1000),
            s(1, 100, 1110),
            s(1, 100, 1200),
            s(3, 300, 1290),
            s(2, 200, 1300),
        ];
        // 1 came 10 ns late after 0; 3 came 20 ns early after 1.
        assert_eq!(schedule_errors(&samples), vec![10, -20]);
        assert!(schedule_errors(&[]).is_empty());
    }

    #[test]
    fn every_protocol_settles_the_same_way() {
        fn settled<T: Measured>(run: &Run, outcome: Option<Outcome<T>>) -> bool {
            let slot = OutcomeSlot::new();
            if let Some(o) = outcome {
                slot.set(o);
            }
            settle("test", slot)(run, Instant::from_millis(5), Duration::from_millis(5))
        }
        let run = Run::new(
            Recorder::new(Instant::ZERO, None),
            Instant::ZERO,
            None,
            None,
            1,
        );
        let now = Instant::from_millis(5);
        let took = Duration::from_millis(5);
        let done = tcpfile::Done {
            bytes: 100,
            elapsed: took,
        };
        assert!(settled(&run, Some(Ok(done))));
        let answer = |verb| hello::Answer {
            line: "RESET 7".into(),
            verb,
            rtt: took,
            tries: 1,
        };
        assert!(settled(&run, Some(Ok(answer(hello::client::Verb::Reset)))));
        assert!(!settled(&run, Some(Ok(answer(hello::client::Verb::Error)))));
        let short = lab::Report::File {
            expected: 10,
            received: 5,
            first_bad: None,
            elapsed: took,
            datagrams: 0,
            complete: false,
        };
        assert!(!settled(&run, Some(Ok(short))));
        let timed_out = Err(ClientError::TimedOut { tries: 5 });
        assert!(!settled::<stopwait::Done>(&run, Some(timed_out)));
        let refused = Err(ClientError::refused("ERROR not found: f"));
        assert!(!settled::<tftp::Done>(&run, Some(refused)));
        assert!(!settled::<tftp::Done>(&run, None));
        let figures = run.recorder.borrow_mut().finish(now).figures;
        assert_eq!(
            (
                figures.transfers,
                figures.requests,
                figures.timeouts,
                figures.errors
            ),
            (1, 1, 1, 4)
        );
        assert_eq!(run.successes(), 2);
    }

    #[test]
    fn pattern_source_and_discard() {
        let mut p = Pattern {
            size: 100_000,
            pos: 0,
        };
        let mut buf = BytesMut::new();
        let mut total = 0;
        while let Ok(n) = p.read_into(&mut buf, 30_000) {
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, 100_000);
        assert_eq!(crate::wire::lab::check_pattern(0, &buf), None);
        let mut d = Box::new(Discard::default());
        d.write_all(&buf).unwrap();
        assert_eq!(d.commit(), Ok(100_000));
    }
}
