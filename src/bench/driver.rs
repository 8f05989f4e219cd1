//! Starts the bench's sessions on the reactor and keeps `-P` of them alive.
//!
//! Owns the mapping from a [`Plan`] to sessions — which client session a
//! mode uses, which socket it gets, how its outcome is recorded — and the
//! refill step the run loop calls between reactor turns: a session that
//! ended (a transfer done, a connection closed) is replaced while the run
//! lasts. Sessions cannot start sessions, so this is the one place new
//! sockets are asked for. Protocol logic stays in the client sessions and
//! in `exchange`.

use super::exchange::{EchoExchange, HelloExchange, MsgExchange};
use super::load::{Count, Repeat, Run, Settle, Tracked};
use super::plan::{MAX_STREAM_COUNT, Plan, Transport};
use crate::cli::bench::{BenchMode, BenchProto};
use crate::proto::data::{Sink, Source};
use crate::proto::{DatagramSession, StreamSession, hello, lab, stopwait, tcpfile, tftp};
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
}

impl Launcher {
    /// A launcher of `plan`'s sessions against `server`, recording into `run`.
    pub fn new(plan: Plan, server: SocketAddr, run: Rc<Run>) -> Self {
        Self { plan, server, run }
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
        let run = self.run.clone();
        match inner {
            Client::Stream(inner) => {
                Client::Stream(Box::new(Tracked::new(inner, run, slot, now, count, settle)))
            }
            Client::Datagram(inner) => {
                Client::Datagram(Box::new(Tracked::new(inner, run, slot, now, count, settle)))
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
        let session = match (plan.proto, plan.mode) {
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
        };
        self.add(reactor, session)?;
        Ok(Started::Yes)
    }

    fn put_name(&self, slot: usize) -> String {
        format!("put-{slot}-{}", self.plan.name)
    }

    fn hello_connect(&self, slot: usize, now: Instant) -> std::io::Result<Client> {
        let outcome = hello::OutcomeSlot::default();
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
        let settle: Settle = Box::new(move |run, now, took| match outcome.borrow_mut().take() {
            Some(hello::Outcome::Answered {
                verb: hello::client::Verb::Ok | hello::client::Verb::Reset,
                ..
            }) => {
                let mut rec = run.recorder.borrow_mut();
                rec.add_request(now, took);
                rec.add_packets(now, 1);
                drop(rec);
                run.succeeded(now);
                true
            }
            other => settle_failure(
                run,
                now,
                other
                    .as_ref()
                    .map(|o| matches!(o, hello::Outcome::TimedOut { .. })),
                &format!("hello: {}", describe(other.as_ref())),
            ),
        });
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
        let outcome = lab::OutcomeSlot::default();
        let progress = Rc::new(Cell::new(0));
        let request = self.plan.length.to_string();
        let inner = lab::Client::new(
            request.as_bytes(),
            self.lab_transport(),
            MAX_STREAM_COUNT,
            self.plan.timeout,
            outcome.clone(),
        )
        .with_progress(progress.clone());
        let settle: Settle = Box::new(move |run, now, took| match outcome.borrow_mut().take() {
            Some(lab::Outcome::Done(lab::Report::File {
                expected,
                received,
                first_bad: None,
                complete: true,
                ..
            })) if received == expected => transfer_done(run, now, received, took),
            other => settle_failure(
                run,
                now,
                other
                    .as_ref()
                    .map(|o| matches!(o, lab::Outcome::TimedOut(_))),
                &format!("lab file: {other:?}"),
            ),
        });
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
        let outcome = lab::OutcomeSlot::default();
        let inner = lab::Client::new(
            request.as_bytes(),
            self.lab_transport(),
            MAX_STREAM_COUNT,
            self.plan.timeout,
            outcome.clone(),
        );
        let settle: Settle = Box::new(move |run, now, took| match outcome.borrow_mut().take() {
            Some(lab::Outcome::Done(lab::Report::Stream {
                expected,
                size,
                interval_ns,
                samples,
                ..
            })) => {
                let st = crate::stats::stream_stats(&samples, expected, interval_ns, size);
                let mut rec = run.recorder.borrow_mut();
                rec.add_stream_counts(now, st.lost, st.reordered, st.duplicated);
                for late in schedule_errors(&samples) {
                    rec.add_schedule_error(now, late);
                }
                rec.add_transfer(now, st.unique * u64::from(size), took);
                drop(rec);
                run.succeeded(now);
                true
            }
            other => settle_failure(
                run,
                now,
                other
                    .as_ref()
                    .map(|o| matches!(o, lab::Outcome::TimedOut(_))),
                &format!("lab stream: {other:?}"),
            ),
        });
        let inner = self.on_transport(inner);
        Some(self.tracked(inner, slot, now, Count::Input, settle))
    }

    fn tcpfile(&self, mode: BenchMode, slot: usize, now: Instant) -> Client {
        let outcome = tcpfile::OutcomeSlot::default();
        let progress = tcpfile::Progress::default();
        let inner: Box<dyn StreamSession> = if mode == BenchMode::Put {
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
        };
        let settle: Settle = Box::new(move |run, now, took| match outcome.borrow_mut().take() {
            Some(tcpfile::Outcome::Done { bytes, .. }) => transfer_done(run, now, bytes, took),
            other => settle_failure(
                run,
                now,
                other.as_ref().map(|o| *o == tcpfile::Outcome::TimedOut),
                &format!("tcpfile: {other:?}"),
            ),
        });
        self.tracked(
            Client::Stream(inner),
            slot,
            now,
            Count::Progress(progress),
            settle,
        )
    }

    fn stopwait(&self, mode: BenchMode, slot: usize, now: Instant) -> Client {
        let outcome = stopwait::OutcomeSlot::default();
        let progress = Rc::new(Cell::new(0));
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
        let settle: Settle = Box::new(move |run, now, took| match outcome.borrow_mut().take() {
            Some(stopwait::Outcome::Done { bytes, .. }) => transfer_done(run, now, bytes, took),
            other => settle_failure(
                run,
                now,
                other
                    .as_ref()
                    .map(|o| matches!(o, stopwait::Outcome::TimedOut { .. })),
                &format!("stopwait: {other:?}"),
            ),
        });
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
        let outcome = tftp::OutcomeSlot::default();
        let progress = Rc::new(Cell::new(0));
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
        let settle: Settle = Box::new(move |run, now, took| match outcome.borrow_mut().take() {
            Some(tftp::Outcome::Done { bytes, .. }) => transfer_done(run, now, bytes, took),
            other => settle_failure(
                run,
                now,
                other
                    .as_ref()
                    .map(|o| matches!(o, tftp::Outcome::TimedOut(_))),
                &format!("tftp: {other:?}"),
            ),
        });
        let run = self.run.clone();
        let count = Count::Progress(progress);
        let inner: Box<dyn DatagramSession> = Box::new(client);
        let session = Box::new(Tracked::new(inner, run, slot, now, count, settle));
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
}

fn describe<T: core::fmt::Debug>(outcome: Option<&T>) -> String {
    outcome.map_or_else(
        || "the session ended without an outcome".into(),
        |o| format!("{o:?}"),
    )
}

fn transfer_done(run: &Run, now: Instant, bytes: u64, took: Duration) -> bool {
    run.recorder.borrow_mut().add_transfer(now, bytes, took);
    run.succeeded(now);
    true
}

/// Records a failed transfer: `timed_out` is `Some(true)` for a timeout,
/// `Some(false)` for another failure, `None` for no outcome at all.
fn settle_failure(run: &Run, now: Instant, timed_out: Option<bool>, what: &str) -> bool {
    log::debug!("{what}");
    if timed_out == Some(true) {
        run.recorder.borrow_mut().add_timeout(now);
    } else {
        run.recorder.borrow_mut().add_error(now);
    }
    run.failed(now, what);
    false
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
