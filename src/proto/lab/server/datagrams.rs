//! [`LabDatagrams`]: one generated file or stream to one UDP peer, on the
//! server's shared socket.
//!
//! Owns the transfer's job (`READY n`, the pattern, `DONE n`; or one
//! datagram per due segment), the answers to datagrams the peer sends
//! meanwhile (echo, `ERROR busy`), and waiting for the peer's send budget.
//! It never sends a datagram the budget has not granted, answers a second
//! file or stream request with `ERROR busy` instead of starting it, and
//! closes only once its queued answers are out.

use super::segment::Segment;
use crate::proto::budget::SharedBudget;
use crate::proto::lab::{LabConfig, Schedule};
use crate::proto::{CloseReason, Context, DatagramInput, DatagramSession, Driven, Transmit, Wake};
use crate::time::Instant;
use crate::wire::lab::{Request as LabRequest, StreamSpec, pattern_run};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// The next datagram of a [`LabDatagrams`] job.
enum Next {
    /// `READY n` or `DONE n`.
    Line(String),
    /// A run of the pattern.
    Data,
    /// A stream segment.
    Segment,
}

/// What a per-peer UDP session sends.
#[derive(Debug)]
enum UdpJob {
    /// `READY n`, then the pattern in `segment`-byte datagrams, then `DONE n`.
    File {
        ready_sent: bool,
        offset: u64,
        len: u64,
    },
    /// One datagram per due segment.
    Stream {
        schedule: Schedule,
        size: u32,
    },
    Done,
}

/// A file or stream to one UDP peer, on the server's shared socket.
#[derive(Debug)]
pub struct LabDatagrams {
    config: LabConfig,
    peer: SocketAddr,
    /// The process-wide send budget for unvalidated peers.
    budget: SharedBudget,
    job: UdpJob,
    /// Answers to datagrams that arrived while the job runs.
    replies: VecDeque<Vec<u8>>,
    /// The send budget ran dry; try again then.
    blocked_until: Option<Instant>,
    now: Instant,
    close: Option<CloseReason>,
}

impl LabDatagrams {
    fn new(
        config: LabConfig,
        budget: SharedBudget,
        peer: SocketAddr,
        job: UdpJob,
        now: Instant,
    ) -> Self {
        Self {
            config,
            peer,
            budget,
            job,
            replies: VecDeque::new(),
            blocked_until: None,
            now,
            close: None,
        }
    }

    /// A generated file of `len` bytes for `peer`, sent within `budget`.
    pub fn file(
        config: LabConfig,
        budget: SharedBudget,
        peer: SocketAddr,
        len: u64,
        now: Instant,
    ) -> Self {
        Self::new(
            config,
            budget,
            peer,
            UdpJob::File {
                ready_sent: false,
                offset: 0,
                len,
            },
            now,
        )
    }

    /// A stream for `peer`, starting at `now`, sent within `budget`.
    pub fn stream(
        config: LabConfig,
        budget: SharedBudget,
        peer: SocketAddr,
        spec: StreamSpec,
        now: Instant,
    ) -> Self {
        let count = spec.count.min(config.stream_max_count);
        let job = UdpJob::Stream {
            schedule: Schedule::new(now, spec.interval_ns, count),
            size: spec.size,
        };
        Self::new(config, budget, peer, job, now)
    }

    /// Takes `len` bytes from the peer's budget, or notes when to retry.
    fn budget(&mut self, cx: &Context, len: usize) -> bool {
        let taken = self
            .budget
            .borrow_mut()
            .take(self.peer.ip(), len as u64, cx.now);
        match taken {
            Ok(()) => {
                self.blocked_until = None;
                true
            }
            Err(at) => {
                self.blocked_until = Some(at);
                false
            }
        }
    }
}

impl Driven for LabDatagrams {
    fn handle_timeout(&mut self, cx: &mut Context) {
        self.now = cx.now;
        if self.blocked_until.is_some_and(|at| at <= cx.now) {
            self.blocked_until = None;
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let next = match &self.job {
            UdpJob::Stream { schedule, .. } => schedule.next_due().filter(|&at| at > self.now),
            _ => None,
        };
        match (self.blocked_until, next) {
            (Some(b), Some(n)) => Some(b.max(n)),
            (Some(b), None) => Some(b),
            (None, n) => n,
        }
    }

    /// A paced stream's schedule is worth a spin; waiting for budget
    /// tokens is not.
    fn wake(&self) -> Wake {
        if matches!(&self.job, UdpJob::Stream { schedule, .. } if schedule.is_paced())
            && self.blocked_until.is_none()
        {
            Wake::Paced
        } else {
            Wake::Exact
        }
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        // Close only once the queued replies are out.
        if self.replies.is_empty() {
            self.close.take()
        } else {
            None
        }
    }
}

impl DatagramSession for LabDatagrams {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        self.now = cx.now;
        let DatagramInput::Datagram { payload, .. } = input else {
            return;
        };
        if payload.is_empty() || self.replies.len() >= 64 {
            return;
        }
        // The datagram that created this session arrives here first: the
        // job already answers it.
        let reply = match LabRequest::parse(payload) {
            Ok(LabRequest::Echo(bytes)) => bytes.to_vec(),
            Ok(LabRequest::File(_) | LabRequest::Stream(_)) if !self.has_started() => return,
            Ok(LabRequest::File(_) | LabRequest::Stream(_)) => {
                b"ERROR busy: a transfer to this address is running".to_vec()
            }
            Err(bad) => format!("ERROR {bad}").into_bytes(),
        };
        self.replies.push_back(reply);
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        self.now = cx.now;
        let to = Some(self.peer);
        if let Some(reply) = self.replies.pop_front() {
            buf.extend_from_slice(&reply);
            return Some(Transmit::new(to, reply.len()));
        }
        if self.blocked_until.is_some_and(|at| at > cx.now) {
            return None;
        }
        // Decide what goes next, then check the budget, then commit.
        let (len, next) = match &self.job {
            UdpJob::Done => return None,
            UdpJob::File {
                ready_sent: false,
                len,
                ..
            } => {
                let line = format!("READY {len}");
                (line.len(), Next::Line(line))
            }
            UdpJob::File { offset, len, .. } if offset == len => {
                let line = format!("DONE {len}");
                (line.len(), Next::Line(line))
            }
            UdpJob::File { offset, len, .. } => {
                let remaining = usize::try_from(len - offset).unwrap_or(usize::MAX);
                let n = remaining.min(self.config.segment).min(limit);
                (n, Next::Data)
            }
            UdpJob::Stream { schedule, size } => {
                if schedule.next_due().is_none_or(|at| at > cx.now) || *size as usize > limit {
                    return None;
                }
                (*size as usize, Next::Segment)
            }
        };
        if !self.budget(cx, len) {
            return None;
        }
        match (&mut self.job, next) {
            (UdpJob::File { ready_sent, .. }, Next::Line(line)) if !*ready_sent => {
                *ready_sent = true;
                buf.extend_from_slice(line.as_bytes());
            }
            (UdpJob::File { .. }, Next::Line(line)) => {
                buf.extend_from_slice(line.as_bytes());
                self.job = UdpJob::Done;
                self.close = Some(CloseReason::Completed);
            }
            (UdpJob::File { offset, .. }, Next::Data) => {
                buf.extend_from_slice(pattern_run(*offset, len));
                *offset += len as u64;
            }
            (UdpJob::Stream { schedule, size }, Next::Segment) => {
                let (seq, sched_ns) = schedule.pop_due(cx.now)?;
                Segment::new(seq, sched_ns, *size).emit(usize::MAX, buf);
                if schedule.is_done() {
                    self.job = UdpJob::Done;
                    self.close = Some(CloseReason::Completed);
                }
            }
            _ => return None,
        }
        Some(Transmit::new(to, len))
    }
}

impl LabDatagrams {
    /// Whether anything of the job has been sent (the first datagram of a
    /// session is the request that created it).
    fn has_started(&self) -> bool {
        match &self.job {
            UdpJob::File { ready_sent, .. } => *ready_sent,
            UdpJob::Stream { schedule, .. } => schedule.sent() > 0,
            UdpJob::Done => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::budget::{self, BudgetConfig};
    use crate::proto::lab::server::testing::{peer, sh, us};
    use crate::proto::testing::{cx, drain_datagrams, feed_datagram};
    use crate::wire::lab::{SegmentHeader, check_pattern};

    /// Every datagram a session sends at `now`.
    fn datagrams(session: &mut dyn DatagramSession, now: Instant) -> Vec<Vec<u8>> {
        drain_datagrams(session, now)
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }

    #[test]
    fn udp_file_is_ready_segments_done() {
        let config = LabConfig {
            segment: 1000,
            ..LabConfig::default()
        };
        let mut f = LabDatagrams::file(config, sh(), peer(), 2_500, us(0));
        // The request that created the session is delivered to it first.
        feed_datagram(&mut f, us(0), peer(), b"2500");
        let d = datagrams(&mut f, us(0));
        let lens: Vec<_> = d.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![10, 1000, 1000, 500, 9]);
        assert_eq!(d[0], b"READY 2500");
        assert_eq!(d[4], b"DONE 2500");
        assert_eq!(check_pattern(1000, &d[2]), None);
        assert_eq!(f.poll_close(), Some(CloseReason::Completed));
    }

    #[test]
    fn udp_stream_is_paced_and_answers_busy_meanwhile() {
        let spec = StreamSpec {
            interval_ns: 1_000_000,
            count: 3,
            size: 64,
        };
        let mut st = LabDatagrams::stream(LabConfig::default(), sh(), peer(), spec, us(0));
        assert_eq!(datagrams(&mut st, us(0)).len(), 1);
        assert_eq!(st.poll_timeout(), Some(us(1_000)));
        assert_eq!(st.wake(), Wake::Paced);
        feed_datagram(&mut st, us(10), peer(), b"stream-1-1-16");
        feed_datagram(&mut st, us(10), peer(), b"echo");
        let d = datagrams(&mut st, us(10));
        assert_eq!(
            d,
            vec![
                b"ERROR busy: a transfer to this address is running".to_vec(),
                b"echo".to_vec()
            ]
        );
        assert_eq!(datagrams(&mut st, us(999)).len(), 0);
        let d = datagrams(&mut st, us(2_000));
        assert_eq!(
            d.iter()
                .map(|x| SegmentHeader::parse(x).unwrap().seq)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(st.poll_close(), Some(CloseReason::Completed));
    }

    #[test]
    fn udp_stream_to_an_unvalidated_peer_is_held_to_its_budget() {
        let s = budget::shared(BudgetConfig {
            peer_rate: 64_000,
            peer_burst: 640,
            global_rate: 1_000_000,
            global_burst: 1_000_000,
            trust_loopback: true,
        });
        let remote: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        let spec = StreamSpec {
            interval_ns: 0,
            count: 1_000,
            size: 64,
        };
        let mut st = LabDatagrams::stream(LabConfig::default(), s, remote, spec, us(0));
        // The burst: 10 segments, then it waits for tokens (64 B per ms).
        assert_eq!(datagrams(&mut st, us(0)).len(), 10);
        let retry = st.poll_timeout().unwrap();
        assert!(retry > us(900) && retry <= us(1_001), "{retry}");
        assert_ne!(
            st.wake(),
            Wake::Paced,
            "waiting for tokens is not worth a spin"
        );
        st.handle_timeout(&mut cx(retry, None));
        assert_eq!(datagrams(&mut st, retry).len(), 1);
        // Over half a virtual second: the burst plus 64 B/ms, not the 1000
        // segments asked for.
        let mut sent = 11;
        let mut now = retry;
        while let Some(at) = st
            .poll_timeout()
            .filter(|&at| at <= Instant::from_millis(500))
        {
            now = at;
            st.handle_timeout(&mut cx(now, None));
            sent += datagrams(&mut st, now).len();
        }
        assert!(now > Instant::from_millis(499));
        assert!((505..=512).contains(&sent), "{sent}");
    }
}
