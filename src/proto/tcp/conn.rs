//! One TCP connection's state machine (RFC 9293): the transmission control
//! block, [`Tcb`].
//!
//! Owns everything one connection knows: its state, both sequence spaces,
//! the send buffer (bytes written by the application, kept until
//! acknowledged) and the receive buffer (in-order bytes not yet taken, and
//! out-of-order ones kept for reassembly), the peer's window, RTT
//! estimation ([`super::rtt`]), congestion control ([`super::cc`]), and
//! every timer: retransmission, delayed ACK, zero-window probe (persist),
//! keepalive, TIME-WAIT and the user timeout. Its one deadline is the
//! earliest of them ([`Tcb::poll_timeout`]).
//!
//! It must never know what carries its segments: it reads a parsed
//! [`Repr`] and writes a segment (header and data, checksum left zero) into
//! a buffer the carrier gives it; the carrier (the tunstack IPv4 layer, or
//! a UDP datagram for `window`) checks and fills checksums, and routes by
//! addresses. It never reads a clock (time is the `now` of each call),
//! never allocates per segment, and never panics on what a peer sends.
//!
//! STUB (issue 14, in progress): the API is fixed; the bodies are being
//! written.

use super::cc::Algorithm;
use super::rtt::RttConfig;
use crate::time::{Duration, Instant};
use crate::wire::tcp::Repr;
use std::net::SocketAddr;

/// The maximum segment lifetime (RFC 9293 section 3.4.1): TIME-WAIT lasts
/// twice this. RFC 793 suggested two minutes; Linux holds TIME-WAIT for
/// 60 s, i.e. an MSL of 30 s, which is what we use.
pub const MSL: Duration = Duration::from_secs(30);

/// How long an ACK may be delayed (RFC 9293 section 3.8.6.3: under
/// 0.5 s; Linux's minimum is 40 ms).
pub const DELAYED_ACK: Duration = Duration::from_millis(40);

/// The longest a segment this engine emits can be: the largest header and
/// the largest MSS it will ever use. A carrier's buffer for
/// [`Tcb::poll_segment`] must hold at least `MAX_HEADER_LEN + mss` bytes.
pub const MAX_SEGMENT_OVERHEAD: usize = crate::wire::tcp::MAX_HEADER_LEN;

/// How a connection behaves. Every bound is here, named.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The MSS we advertise and the largest segment we send: the carrier's
    /// MTU minus the IP and TCP headers (1460 at MTU 1500).
    pub mss: u16,
    /// Bytes the receive buffer holds (the most we advertise as window).
    pub recv_buffer: usize,
    /// Bytes the send buffer holds (written, not yet acknowledged).
    pub send_buffer: usize,
    /// Offer and accept window scaling (RFC 7323).
    pub window_scale: bool,
    /// Offer and accept SACK (RFC 2018).
    pub sack: bool,
    /// Offer and accept timestamps (RFC 7323).
    pub timestamps: bool,
    /// RTO floor, ceiling and initial value (RFC 6298).
    pub rtt: RttConfig,
    /// The congestion controller.
    pub cc: Algorithm,
    /// Delayed ACK timeout; zero acknowledges every segment at once.
    pub delayed_ack: Duration,
    /// How long TIME-WAIT lasts (2 × [`MSL`]).
    pub time_wait: Duration,
    /// Idle time before the first keepalive probe; `None`: no keepalive.
    pub keepalive: Option<Duration>,
    /// Between keepalive probes.
    pub keepalive_interval: Duration,
    /// Unanswered keepalive probes before the connection is dropped.
    pub keepalive_probes: u32,
    /// How long sent data may stay unacknowledged (retransmitting) before
    /// the connection is aborted (RFC 9293's user timeout).
    pub user_timeout: Duration,
    /// SYN (or SYN-ACK) transmissions before an opening connection fails.
    pub syn_retries: u32,
}

impl Default for Config {
    /// MTU 1500's MSS, 1 MiB buffers (allocated as they fill, not up
    /// front), every option on, `NewReno`, RFC 6298 timers with a 200 ms
    /// floor, 40 ms delayed ACK, keepalive off, a 5-minute user timeout,
    /// 6 SYN retries (Linux's `tcp_syn_retries`).
    fn default() -> Self {
        Self {
            mss: 1460,
            recv_buffer: 1 << 20,
            send_buffer: 1 << 20,
            window_scale: true,
            sack: true,
            timestamps: true,
            rtt: RttConfig::default(),
            cc: Algorithm::default(),
            delayed_ack: DELAYED_ACK,
            time_wait: MSL * 2,
            keepalive: None,
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            user_timeout: Duration::from_secs(300),
            syn_retries: 6,
        }
    }
}

/// The states of RFC 9293 section 3.3.2. LISTEN is the carrier's (a table
/// of listening ports); a [`Tcb`] is born in SYN-SENT or SYN-RECEIVED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Gone: reset, timed out, or TIME-WAIT over. The carrier forgets it.
    Closed,
    /// Our SYN is out (active open).
    SynSent,
    /// A SYN came in and our SYN-ACK is out (passive open).
    SynReceived,
    /// Data flows both ways.
    Established,
    /// We closed; our FIN is out, unacknowledged.
    FinWait1,
    /// Our FIN is acknowledged; the peer may still send.
    FinWait2,
    /// The peer closed; we may still send.
    CloseWait,
    /// Both closed at once; our FIN not yet acknowledged.
    Closing,
    /// The peer closed first, then we did; our FIN not yet acknowledged.
    LastAck,
    /// Both FINs acknowledged; waiting out 2 × MSL.
    TimeWait,
}

/// Why a connection ended other than by an orderly close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// An active open was answered by RST.
    Refused,
    /// The peer reset the connection.
    Reset,
    /// Retransmissions, SYN retries or keepalive probes ran out (the user
    /// timeout).
    TimedOut,
}

/// What one connection did: logged at close with `-v` and carried by the
/// clients' `--json`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    /// Segments received and accepted for processing.
    pub segments_in: u64,
    /// Segments sent (retransmissions included).
    pub segments_out: u64,
    /// Payload bytes delivered in order to the application.
    pub bytes_in: u64,
    /// Payload bytes acknowledged by the peer.
    pub bytes_out: u64,
    /// Segments retransmitted, for any reason.
    pub retransmits: u64,
    /// Fast retransmits (third duplicate ACK).
    pub fast_retransmits: u64,
    /// Retransmission timer expiries.
    pub rto_expiries: u64,
    /// Duplicate segments received (data already acknowledged).
    pub duplicate_segments: u64,
    /// Out-of-order segments kept for reassembly.
    pub out_of_order: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Smoothed RTT, microseconds (0 before the first sample).
    pub srtt_us: u64,
    /// RTT variation, microseconds.
    pub rttvar_us: u64,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Slow-start threshold, bytes (`u64::MAX` before the first loss).
    pub ssthresh: u64,
}

/// One connection.
#[derive(Debug)]
pub struct Tcb {
    _private: (),
}

impl Tcb {
    /// Active open: a connection in SYN-SENT from `local` to `remote`
    /// whose SYN, with sequence number `iss`, is ready to send.
    pub fn connect(
        config: &Config,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
        now: Instant,
    ) -> Self {
        let _ = (config, local, remote, iss, now);
        unimplemented!("stub")
    }

    /// Passive open: a connection in SYN-RECEIVED answering `syn` (a SYN
    /// without ACK that the carrier found for a listening port) from
    /// `remote` to `local`, whose SYN-ACK, with sequence number `iss`, is
    /// ready to send. Options are taken from `syn`.
    pub fn accept(
        config: &Config,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &Repr<'_>,
        iss: u32,
        now: Instant,
    ) -> Self {
        let _ = (config, local, remote, syn, iss, now);
        unimplemented!("stub")
    }

    /// Processes one segment of this connection (the carrier has checked
    /// its checksum and matched its addresses and ports). Never fails: an
    /// unacceptable segment is dropped, answered with an ACK, a challenge
    /// ACK or a RST as RFC 9293 and RFC 5961 say.
    pub fn handle_segment(&mut self, now: Instant, segment: &Repr<'_>) {
        let _ = (now, segment);
        unimplemented!("stub")
    }

    /// Fires every timer due at `now`; a call with nothing due is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        unimplemented!("stub")
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout)
    /// must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        unimplemented!("stub")
    }

    /// Writes the next segment to send (header with checksum zero, then
    /// data) at the start of `out` and returns its length; `None` when
    /// nothing may be sent now (window, congestion, nothing queued).
    /// `out` holds at least [`MAX_SEGMENT_OVERHEAD`] + the MSS in use.
    pub fn poll_segment(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let _ = (now, out);
        unimplemented!("stub")
    }

    /// Queues up to `data.len()` bytes for sending and returns how many
    /// were taken (limited by [`send_room`](Self::send_room)). Zero once
    /// the application closed or the connection cannot send any more.
    pub fn send(&mut self, data: &[u8]) -> usize {
        let _ = data;
        unimplemented!("stub")
    }

    /// Bytes [`send`](Self::send) would take now.
    pub fn send_room(&self) -> usize {
        unimplemented!("stub")
    }

    /// The in-order bytes received and not yet consumed (the first
    /// contiguous run of them; after [`consume`](Self::consume) of all of
    /// it, the next run, if the buffer wraps).
    pub fn received(&self) -> &[u8] {
        unimplemented!("stub")
    }

    /// The application took the first `n` bytes of
    /// [`received`](Self::received): the window opens by as much.
    pub fn consume(&mut self, n: usize) {
        let _ = n;
        unimplemented!("stub")
    }

    /// The peer's FIN arrived and every byte before it was consumed.
    pub fn fin_received(&self) -> bool {
        unimplemented!("stub")
    }

    /// The application has nothing more to send: a FIN follows the
    /// queued bytes.
    pub fn close(&mut self) {
        unimplemented!("stub")
    }

    /// Drops the connection now, with a RST to the peer if it was
    /// synchronized (the RST is the next [`poll_segment`](Self::poll_segment)).
    pub fn abort(&mut self) {
        unimplemented!("stub")
    }

    /// The RFC 9293 state.
    pub fn state(&self) -> State {
        unimplemented!("stub")
    }

    /// Why the connection failed, if it did.
    pub fn error(&self) -> Option<Error> {
        unimplemented!("stub")
    }

    /// The connection's counters (srtt, cwnd and ssthresh as of now).
    pub fn counters(&self) -> Counters {
        unimplemented!("stub")
    }

    /// Our address.
    pub fn local(&self) -> SocketAddr {
        unimplemented!("stub")
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        unimplemented!("stub")
    }
}

/// The RST answering `segment`, which matched no connection (RFC 9293
/// section 3.10.7.1: a closed port), written to `out`; `None` when the
/// segment is itself a RST (never answered).
pub fn reset_for(segment: &Repr<'_>, out: &mut [u8]) -> Option<usize> {
    let _ = (segment, out);
    unimplemented!("stub")
}
