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
//! Loss recovery is RFC 6298 (RTO, Karn's rule, backoff) with go-back-N
//! after a timeout that skips what the peer holds and counts only the rest
//! in flight, RFC 5681/6582 fast retransmit and `NewReno` partial ACKs,
//! RFC 3042 limited transmit, and a small SACK scoreboard (RFC 2018). With
//! SACK, recovery is RFC 6675's: the pipe (un-SACKed, not-lost data plus
//! this round's retransmissions) against ssthresh, each lost hole
//! (`IsLost`: three segments acknowledged above it) retransmitted once
//! per round, new data when none is left; a hole whose retransmission is
//! still missing once data sent after it is acknowledged three segments
//! deep starts a new round (RFC 8985's lost-retransmission idea, by
//! sequence number, not time). A duplicate ACK is RFC 5681's (no data, same window) or RFC
//! 6675's (it SACKs something new), so losses are found while both sides
//! send. Timestamps (RFC 7323) give RTT samples for ACKs that advance
//! SND.UNA; an echo older than the RTO ceiling is none.
//!
//! # Choices and omissions
//! - `close` before the handshake completes queues the FIN behind it
//!   (RFC 9293 would delete the TCB in SYN-SENT); `abort` gives up.
//! - A FIN beyond a hole is remembered and takes effect when the hole
//!   fills; data beyond the receive buffer is cut and answered with an ACK.
//! - The persist timer probes with one byte at SND.UNA without advancing
//!   SND.NXT (SND.MAX covers it, so an ACK of it is acceptable).
//! - Not done: Nagle's algorithm (segments go as soon as written), PAWS
//!   (RFC 7323 §5), time-based RACK-TLP (RFC 8985: no per-segment send
//!   times, no tail-loss probe), PRR (RFC 6937), D-SACK, urgent data.

mod ring;
#[cfg(test)]
mod tests;

use super::assembler::Assembler;
use super::cc::{Ack, Algorithm, CongestionControl};
use super::rtt::{RttConfig, RttEstimator};
use crate::time::{Duration, Instant};
use crate::wire::tcp::{
    Control, HEADER_LEN, MAX_WINDOW_SCALE, Packet, REPR_SACK_BLOCKS, Repr, SeqNumber,
};
use ring::{RecvRing, SendRing};
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
    /// Payload bytes one data segment may carry when the carrier cuts it
    /// into MSS-sized segments below us (TCP segmentation offload: a TUN
    /// device with `IFF_VNET_HDR` takes a 64 KiB super-segment in one
    /// write); 0: one MSS, as on any ordinary link. Used only while the
    /// peer's MSS is not below ours, so the carrier can cut at its MTU.
    /// The carrier's buffer for [`Tcb::poll_segment`] bounds it too.
    pub max_burst: usize,
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
            max_burst: 0,
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

/// Out-of-order ranges of our data the peer reported through SACK (RFC
/// 2018), kept so a retransmission skips them. Eight because an ACK
/// carries at most four blocks and a few ACKs' worth is all a simple
/// scoreboard needs; when full, the highest range is forgotten (it is only
/// retransmitted needlessly, never lost).
const SCOREBOARD: usize = 8;

/// The receiver's silly-window rule (RFC 9293 section 3.8.6.2.2): a window
/// update is worth its own segment once the window grew by this fraction
/// of the buffer (or by two segments, whichever is less).
const WINDOW_UPDATE_DIVISOR: usize = 2;

/// RFC 5961 §7 asks that challenge ACKs be rate-limited, so that a flood
/// of forged RSTs or SYNs does not become a flood of ACKs: at most this
/// many per [`CHALLENGE_ACK_PERIOD`] per connection. Ten because a real
/// peer needs one to recover (its state is stale), an attacker gains
/// nothing from more, and Linux's global default (1000/s) is shared by
/// all connections.
pub const CHALLENGE_ACK_BURST: u32 = 10;

/// The period of [`CHALLENGE_ACK_BURST`].
pub const CHALLENGE_ACK_PERIOD: Duration = Duration::from_secs(1);

/// The most duplicate ACKs owed at once (see `Tcb::acks_owed`): three
/// is what triggers a fast retransmit; more would only burst.
const MAX_ACKS_OWED: u8 = 3;

/// The MSS assumed when the peer sends none (RFC 9293 section 3.7.1).
pub const DEFAULT_MSS: u16 = 536;

/// RFC 6675's `DupThresh`: a hole is lost once this many segments' worth
/// of data above it was selectively acknowledged (RFC 5681's three
/// duplicate ACKs).
const DUP_THRESH: usize = 3;

/// RFC 3042 limited transmit: new segments the first duplicate ACKs may
/// each release beyond the congestion window.
const LIMITED_TRANSMIT: u32 = 2;

/// The timestamp option padded as every segment carries it (RFC 7323
/// appendix A: two NOPs and the 10-byte option).
const TIMESTAMP_OPTION_LEN: usize = 12;

/// The least a timestamp clock may tick per second is 1 (RFC 7323 §5.4);
/// we tick every millisecond, as Linux does.
const TS_TICK_NANOS: u64 = 1_000_000;

/// Something to send that is not the next bytes of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// A zero-window probe: one byte beyond the closed window.
    Window,
    /// A keepalive: SND.UNA − 1, no data, to make the peer ACK.
    Keepalive,
}

/// A RST to send: our abort, or the answer to an unacceptable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reset {
    seq: SeqNumber,
    ack: Option<SeqNumber>,
}

/// One connection.
#[derive(Debug)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent RFC 9293 flags (FIN queued, FIN in, options agreed, ACK due); a state enum per flag would not read better"
)]
pub struct Tcb {
    config: Config,
    local: SocketAddr,
    remote: SocketAddr,
    state: State,
    error: Option<Error>,

    // ---- send sequence space (RFC 9293 §3.3.1) ----
    iss: SeqNumber,
    snd_una: SeqNumber,
    /// The next sequence number to send (rewound to SND.UNA by an RTO).
    snd_nxt: SeqNumber,
    /// The highest sequence number ever sent, plus one.
    snd_max: SeqNumber,
    /// The peer's window, scaled, from SND.WL2.
    snd_wnd: usize,
    /// The largest window the peer ever offered (sender SWS avoidance).
    max_snd_wnd: usize,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    /// The peer's window scale (0 without the option).
    snd_shift: u8,
    /// The sender MSS: min(ours, the peer's), header options not counted.
    smss: usize,
    /// The sequence number of `send[0]`.
    buf_seq: SeqNumber,
    send: SendRing,
    /// The application closed: a FIN follows the queued bytes.
    fin_queued: bool,

    // ---- receive sequence space ----
    irs: SeqNumber,
    rcv_nxt: SeqNumber,
    /// The sequence number of the first byte not consumed.
    rcv_base: SeqNumber,
    /// Our window scale (0 without the option).
    rcv_shift: u8,
    /// The right edge of the window we last advertised.
    rcv_adv: SeqNumber,
    recv: RecvRing,
    assembler: Assembler,
    /// The peer's FIN arrived in order (RCV.NXT counts it).
    fin_in: bool,
    /// A FIN that arrived beyond a hole: its sequence number.
    fin_later: Option<SeqNumber>,

    // ---- options ----
    /// Window scaling is in use (both SYNs carried the option).
    ws_ok: bool,
    sack_ok: bool,
    ts_ok: bool,
    /// `TS.Recent` (RFC 7323 §4.3): echoed in our `TSecr`.
    ts_recent: u32,
    /// RCV.NXT as of our last ACK (RFC 7323's Last.ACK.sent).
    last_ack_sent: SeqNumber,
    sacked: [(SeqNumber, SeqNumber); SCOREBOARD],
    sacked_len: usize,

    // ---- loss recovery ----
    rtt: RttEstimator,
    cc: Box<dyn CongestionControl>,
    /// Karn's rule: the one segment being timed, `(end, sent at)`; cleared
    /// by any retransmission.
    timed: Option<(SeqNumber, Instant)>,
    dup_acks: u32,
    /// RFC 6582's `recover`.
    recover: SeqNumber,
    /// Retransmit the first unacknowledged, un-SACKed segment now (fast
    /// retransmit, partial ACK).
    rexmit: bool,
    /// With SACK, in recovery: where the next hole to retransmit is looked
    /// for (holes below it were retransmitted in this recovery already).
    rexmit_from: SeqNumber,
    /// SND.MAX when the current round of SACK retransmissions began: data
    /// selectively acknowledged above it was sent after those
    /// retransmissions, so a hole
    /// retransmitted in this round and still missing when that data is
    /// acknowledged [`DUP_THRESH`] segments deep was lost again (RFC 8985's
    /// idea, by sequence rather than by time).
    rexmit_round_end: SeqNumber,
    /// Where the last segment [`send_from`](Self::send_from) wrote ends.
    sent_end: SeqNumber,
    /// SYN (or SYN-ACK) transmissions so far.
    syn_sent: u32,

    // ---- what to send besides data ----
    ack_now: bool,
    /// Duplicate ACKs owed for out-of-order segments that arrived in one
    /// batch (before the carrier polled): each is one ACK, so the sender
    /// counts them (RFC 5681 §4.2 "immediately").
    acks_owed: u8,
    /// In-order bytes received since our last ACK (delayed ACK).
    unacked_bytes: usize,
    /// The largest payload the peer sent so far: its full-sized segment,
    /// which is its MSS less the options it sends (Linux's `rcv_mss`).
    rcv_mss: usize,
    probe: Option<Probe>,
    reset: Option<Reset>,

    /// When the current challenge-ACK period began, and how many were
    /// sent in it.
    challenge_since: Instant,
    challenges: u32,

    // ---- timers ----
    rto_at: Option<Instant>,
    delack_at: Option<Instant>,
    persist_at: Option<Instant>,
    persist_backoffs: u32,
    keepalive_at: Option<Instant>,
    keepalive_sent: u32,
    time_wait_at: Option<Instant>,
    /// SND.UNA last moved (or data went out into an empty flight) + the
    /// user timeout.
    user_at: Option<Instant>,

    counters: Counters,
}

/// The smallest shift that fits `buffer` into 16 bits (RFC 7323 §2.3).
fn shift_for(buffer: usize) -> u8 {
    let mut shift = 0;
    while shift < MAX_WINDOW_SCALE && (buffer >> shift) > usize::from(u16::MAX) {
        shift += 1;
    }
    shift
}

/// The timestamp clock: milliseconds, wrapping.
fn ts_clock(now: Instant) -> u32 {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the timestamp clock wraps modulo 2^32 by definition (RFC 7323)"
    )]
    let ms = (now.as_nanos() / TS_TICK_NANOS) as u32;
    ms
}

impl Tcb {
    fn new(config: &Config, local: SocketAddr, remote: SocketAddr, iss: u32, state: State) -> Self {
        let iss = SeqNumber(iss);
        let smss = usize::from(DEFAULT_MSS.min(config.mss)).max(1);
        Self {
            config: config.clone(),
            local,
            remote,
            state,
            error: None,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_shift: 0,
            smss,
            buf_seq: iss + 1,
            send: SendRing::default(),
            fin_queued: false,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_base: SeqNumber(0),
            rcv_shift: 0,
            rcv_adv: SeqNumber(0),
            recv: RecvRing::default(),
            assembler: Assembler::new(),
            fin_in: false,
            fin_later: None,
            ws_ok: false,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            last_ack_sent: SeqNumber(0),
            sacked: [(iss, iss); SCOREBOARD],
            sacked_len: 0,
            rtt: RttEstimator::new(config.rtt),
            cc: config.cc.build(smss),
            timed: None,
            dup_acks: 0,
            recover: iss,
            rexmit: false,
            rexmit_from: iss,
            rexmit_round_end: iss,
            sent_end: iss,
            syn_sent: 0,
            ack_now: false,
            acks_owed: 0,
            unacked_bytes: 0,
            rcv_mss: 0,
            probe: None,
            reset: None,
            challenge_since: Instant::ZERO,
            challenges: 0,
            rto_at: None,
            delack_at: None,
            persist_at: None,
            persist_backoffs: 0,
            keepalive_at: None,
            keepalive_sent: 0,
            time_wait_at: None,
            user_at: None,
            counters: Counters::default(),
        }
    }

    /// Active open: a connection in SYN-SENT from `local` to `remote`
    /// whose SYN, with sequence number `iss`, is ready to send.
    pub fn connect(
        config: &Config,
        local: SocketAddr,
        remote: SocketAddr,
        iss: u32,
        now: Instant,
    ) -> Self {
        let _ = now;
        Self::new(config, local, remote, iss, State::SynSent)
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
        let mut tcb = Self::new(config, local, remote, iss, State::SynReceived);
        tcb.take_syn(syn, now);
        tcb.counters.segments_in += 1;
        tcb
    }

    /// Learns the peer's ISN and options from its SYN (or SYN-ACK).
    fn take_syn(&mut self, syn: &Repr<'_>, now: Instant) {
        self.irs = syn.seq_number;
        self.rcv_nxt = syn.seq_number + 1;
        self.rcv_base = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.rcv_adv = self.rcv_nxt;
        let peer_mss = syn.max_seg_size.unwrap_or(DEFAULT_MSS).max(1);
        self.smss = usize::from(peer_mss.min(self.config.mss)).max(1);
        match syn.window_scale {
            Some(shift) if self.config.window_scale => {
                self.ws_ok = true;
                self.snd_shift = shift.min(MAX_WINDOW_SCALE);
                self.rcv_shift = shift_for(self.config.recv_buffer);
            }
            _ => {
                self.ws_ok = false;
                self.snd_shift = 0;
                self.rcv_shift = 0;
            }
        }
        self.sack_ok = self.config.sack && syn.sack_permitted;
        self.ts_ok = self.config.timestamps && syn.timestamp.is_some();
        // RFC 5681's SMSS is what a segment carries, options excluded: with
        // timestamps on every segment, the window counts segments of that
        // size, so a window of n segments is n full segments, never n full
        // ones plus a runt of the option's 12 bytes each.
        self.cc.set_mss(self.full_payload());
        if let Some((val, _)) = syn.timestamp {
            self.ts_recent = val;
        }
        // The window of a SYN is never scaled (RFC 7323 §2.2).
        self.snd_wnd = usize::from(syn.window_len);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = syn.seq_number;
        self.snd_wl2 = syn.ack_number.unwrap_or(self.iss);
        self.arm_keepalive(now);
    }

    fn synchronized(&self) -> bool {
        !matches!(
            self.state,
            State::Closed | State::SynSent | State::SynReceived
        )
    }

    /// Where the data ends: the FIN's sequence number, if one is queued.
    fn buf_end(&self) -> SeqNumber {
        self.buf_seq + self.send.len()
    }

    /// Whether our FIN was acknowledged.
    fn fin_acked(&self) -> bool {
        self.fin_queued && self.snd_una == self.buf_end() + 1
    }

    /// The receive window: free buffer space.
    fn rcv_wnd(&self) -> usize {
        self.config
            .recv_buffer
            .saturating_sub(self.assembler.contiguous())
    }

    /// Gives back buffer memory the connection can no longer use: a
    /// connection in TIME-WAIT (60 s) or FIN-WAIT-2 must not hold a
    /// mebibyte it will never fill again.
    fn release_buffers(&mut self) {
        if matches!(
            self.state,
            State::FinWait2 | State::TimeWait | State::Closed
        ) {
            self.send.release();
        }
        let receiving = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2 | State::SynReceived
        );
        if !receiving && self.assembler.contiguous() == 0 && self.assembler.is_empty() {
            self.recv.release();
        }
    }

    fn enter_closed(&mut self, error: Option<Error>) {
        self.state = State::Closed;
        self.release_buffers();
        if error.is_some() && self.error.is_none() {
            self.error = error;
        }
        self.rto_at = None;
        self.delack_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.time_wait_at = None;
        self.user_at = None;
        self.ack_now = false;
        self.acks_owed = 0;
        self.rexmit = false;
        self.probe = None;
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.release_buffers();
        self.rto_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.user_at = None;
        self.rexmit = false;
        self.probe = None;
        self.time_wait_at = Some(now + self.config.time_wait);
    }

    fn arm_keepalive(&mut self, now: Instant) {
        self.keepalive_sent = 0;
        self.keepalive_at = self.config.keepalive.map(|idle| now + idle);
    }

    /// An ACK that makes a blind attacker's guess useless (RFC 5961),
    /// at most [`CHALLENGE_ACK_BURST`] per [`CHALLENGE_ACK_PERIOD`] (§7).
    fn challenge_ack(&mut self, now: Instant) {
        if now >= self.challenge_since + CHALLENGE_ACK_PERIOD {
            self.challenge_since = now;
            self.challenges = 0;
        }
        if self.challenges < CHALLENGE_ACK_BURST {
            self.challenges += 1;
            self.counters.challenge_acks += 1;
            self.ack_now = true;
        }
    }

    /// Processes one segment of this connection (the carrier has checked
    /// its checksum and matched its addresses and ports). Never fails: an
    /// unacceptable segment is dropped, answered with an ACK, a challenge
    /// ACK or a RST as RFC 9293 and RFC 5961 say.
    pub fn handle_segment(&mut self, now: Instant, segment: &Repr<'_>) {
        match self.state {
            State::Closed => {}
            State::SynSent => self.syn_sent_input(now, segment),
            _ => self.synchronized_input(now, segment),
        }
        self.update_persist(now);
    }

    /// RFC 9293 §3.10.7.3.
    fn syn_sent_input(&mut self, now: Instant, seg: &Repr<'_>) {
        if let Some(ack) = seg.ack_number
            && (ack <= self.iss || ack > self.snd_max)
        {
            if seg.control != Control::Rst {
                self.reset = Some(Reset {
                    seq: ack,
                    ack: None,
                });
            }
            return;
        }
        if seg.control == Control::Rst {
            if seg.ack_number.is_some() {
                self.enter_closed(Some(Error::Refused));
            }
            return;
        }
        if seg.control != Control::Syn {
            return;
        }
        self.counters.segments_in += 1;
        self.take_syn(seg, now);
        if let Some(ack) = seg.ack_number {
            self.snd_una = ack;
            self.snd_nxt = self.snd_nxt.max(ack);
            if let Some((end, at)) = self.timed.take()
                && ack >= end
            {
                self.rtt.on_sample(now - at);
            }
            self.rtt.on_ack_of_new_data();
            self.rto_at = None;
            self.state = State::Established;
            if self.fin_queued {
                self.state = State::FinWait1;
            }
            self.ack_now = true;
        } else {
            // Simultaneous open: our SYN goes again, now with an ACK.
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
            self.timed = None;
        }
    }

    /// RFC 9293 §3.10.7.4, with RFC 5961's checks.
    fn synchronized_input(&mut self, now: Instant, seg: &Repr<'_>) {
        let seg_len = seg.segment_len();
        let wnd = self.rcv_wnd();
        let seq = seg.seq_number;
        // A duplicate of the SYN we are answering: the SYN-ACK goes again.
        if self.state == State::SynReceived
            && seg.control == Control::Syn
            && seg.ack_number.is_none()
            && seq == self.irs
        {
            self.snd_nxt = self.iss;
            return;
        }
        // Step 1: sequence number acceptability.
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq >= self.rcv_nxt && seq < self.rcv_nxt + wnd,
            (_, 0) => false,
            (_, _) => {
                let last = seq + (seg_len - 1);
                (seq >= self.rcv_nxt && seq < self.rcv_nxt + wnd)
                    || (last >= self.rcv_nxt && last < self.rcv_nxt + wnd)
            }
        };
        // A zero window still takes ACKs and RSTs at RCV.NXT.
        let acceptable = acceptable || (wnd == 0 && seq == self.rcv_nxt);
        if !acceptable {
            if seg.control != Control::Rst {
                if seg_len > 0 && seq + seg_len <= self.rcv_nxt {
                    self.counters.duplicate_segments += 1;
                    // A retransmission of data we hold (our ACK of it was
                    // lost): the ACK it draws echoes its TSval, a fresh
                    // measurement, not that of the segment that once
                    // filled the hole, which may be many RTOs old.
                    self.take_ts_recent(seg);
                }
                if self.state == State::TimeWait && seg.control == Control::Fin {
                    // A retransmitted FIN: our ACK was lost (§3.10.7.4).
                    self.time_wait_at = Some(now + self.config.time_wait);
                }
                self.ack_now = true;
            }
            return;
        }
        self.counters.segments_in += 1;
        // Step 2: RST (RFC 5961 §3.2).
        if seg.control == Control::Rst {
            if seq == self.rcv_nxt {
                let error = match self.state {
                    State::Closing | State::LastAck | State::TimeWait => None,
                    _ => Some(Error::Reset),
                };
                self.enter_closed(error);
            } else {
                self.challenge_ack(now);
            }
            return;
        }
        // Step 4: SYN in a synchronized state (RFC 5961 §4.2).
        if seg.control == Control::Syn {
            self.challenge_ack(now);
            return;
        }
        // Step 5: the ACK field.
        let Some(ack) = seg.ack_number else {
            return;
        };
        if self.state == State::SynReceived {
            if ack > self.snd_una && ack <= self.snd_max {
                self.state = if self.fin_queued {
                    State::FinWait1
                } else {
                    State::Established
                };
                self.snd_wnd = usize::from(seg.window_len) << self.snd_shift;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.arm_keepalive(now);
            } else {
                self.reset = Some(Reset {
                    seq: ack,
                    ack: None,
                });
                return;
            }
        }
        if self.config.keepalive.is_some() {
            self.arm_keepalive(now);
        }
        self.take_ts_recent(seg);
        if !self.ack_input(now, seg, ack) {
            return;
        }
        // Steps 7 and 8: data and FIN.
        if matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            self.data_input(now, seg);
        } else if seg_len > 0 && self.state != State::TimeWait {
            // After the peer's FIN nothing more may come; a retransmission
            // of it wants an ACK.
            self.ack_now = true;
        } else if self.state == State::TimeWait && seg.control == Control::Fin {
            self.ack_now = true;
            self.time_wait_at = Some(now + self.config.time_wait);
        }
    }

    /// RFC 7323 §4.3 (2): `TS.Recent` takes `SEG.TSval` when it is not older
    /// (modulo 2^32) and the segment reaches back to the left edge of our
    /// last ACK (`SEG.SEQ <= Last.ACK.sent`): an out-of-order segment does
    /// not, so its ACK echoes the segment before the hole; the one that
    /// fills the hole does, so the ACK echoes the retransmission.
    fn take_ts_recent(&mut self, seg: &Repr<'_>) {
        if let Some((val, _)) = seg.timestamp
            && self.ts_ok
            && seg.seq_number <= self.last_ack_sent
            && val.wrapping_sub(self.ts_recent) < 1 << 31
        {
            self.ts_recent = val;
        }
    }

    /// Step 5 for an acknowledgment `ack`: RFC 5961 §5 acceptability, new
    /// data acknowledged, the window, duplicate ACKs. False when the
    /// segment is to be dropped.
    fn ack_input(&mut self, now: Instant, seg: &Repr<'_>, ack: SeqNumber) -> bool {
        if ack > self.snd_max {
            // Acknowledges something never sent.
            self.ack_now = true;
            return false;
        }
        let oldest = self.snd_una - self.max_snd_wnd.min(1 << 30);
        if ack < oldest {
            // RFC 5961 §5.2: older than any window we could have sent.
            self.challenge_ack(now);
            return false;
        }
        let window = usize::from(seg.window_len) << self.snd_shift;
        let new_sack = self.sack_ok && self.take_sack(seg);
        let flight = self.snd_max - self.snd_una;
        if new_sack {
            self.detect_lost_retransmission();
        }
        if ack > self.snd_una {
            self.new_ack(now, seg, ack);
        } else if ack == self.snd_una && flight > 0 && self.snd_nxt > self.snd_una {
            // RFC 5681 §2's duplicate ACK, or RFC 6675 §2's: one that
            // SACKs something new, which counts even when it carries data
            // (as it does when both sides send at once).
            let plain = seg.payload.is_empty() && seg.control.is_empty() && window == self.snd_wnd;
            if plain || new_sack {
                self.duplicate_ack(now);
            }
        }
        // The window (§3.10.7.4 step 5, SND.WL1/WL2 guard old segments).
        if self.snd_wl1 < seg.seq_number || (self.snd_wl1 == seg.seq_number && self.snd_wl2 <= ack)
        {
            self.snd_wnd = window;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            self.snd_wl1 = seg.seq_number;
            self.snd_wl2 = ack;
        }
        // Our FIN acknowledged.
        if self.fin_acked() {
            match self.state {
                State::FinWait1 => {
                    self.state = State::FinWait2;
                    self.release_buffers();
                }
                State::Closing => self.enter_time_wait(now),
                State::LastAck => {
                    self.enter_closed(None);
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    fn new_ack(&mut self, now: Instant, seg: &Repr<'_>, ack: SeqNumber) {
        // What SACK recovery had in flight before this ACK: a stretch ACK
        // that ends recovery may leave nothing outstanding, and RFC 6582's
        // deflation to FlightSize + SMSS would then restart from one
        // segment; the pipe is the flight recovery actually kept (Linux
        // likewise ends recovery at ssthresh).
        let pipe_before = self.sack_recovery().then(|| self.pipe());
        let data_end = self.buf_end();
        let acked_to = ack.min(data_end);
        let data = if acked_to > self.buf_seq {
            acked_to - self.buf_seq
        } else {
            0
        };
        self.send.drop_front(data);
        self.buf_seq += data;
        self.counters.bytes_out += data as u64;
        self.snd_una = ack;
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        self.prune_sacked();
        // RTT: the timed segment if it was never retransmitted (Karn),
        // else the echoed timestamp (RFC 7323 §4.1).
        let mut sampled = false;
        if let Some((end, at)) = self.timed
            && ack >= end
        {
            self.rtt.on_sample(now - at);
            self.timed = None;
            sampled = true;
        }
        if !sampled
            && self.ts_ok
            && let Some((_, ecr)) = seg.timestamp
            && ecr != 0
        {
            // An echo older than half the clock's range is not ours; one
            // older than the RTO ceiling names a transmission that has
            // since been retransmitted (the timer would have fired), so
            // it measures the peer's stale TS.Recent, not the path.
            let ms = ts_clock(now).wrapping_sub(ecr);
            let sample = Duration::from_millis(u64::from(ms));
            if ms < 1 << 31 && sample <= self.config.rtt.max_rto {
                self.rtt.on_sample(sample);
            }
        }
        self.rtt.on_ack_of_new_data();
        let flight = self.snd_max - self.snd_una;
        let in_recovery = self.cc.in_recovery();
        let covers_recover = ack >= self.recover;
        self.cc.on_ack(
            now,
            Ack {
                bytes_acked: data,
                flight: pipe_before.map_or(flight, |p| p.max(flight)),
                covers_recover,
            },
            &self.rtt,
        );
        if in_recovery && !covers_recover {
            // RFC 6582 §3.2 step 3: a partial ACK; the next hole goes now.
            // With SACK only if this round has not retransmitted it yet:
            // the pipe (RFC 6675) paces the others.
            self.rexmit = !self.sack_ok || self.rexmit_from <= self.snd_una;
        } else {
            self.dup_acks = 0;
        }
        if in_recovery && covers_recover {
            self.dup_acks = 0;
        }
        // RFC 6298 §5.2 and §5.3.
        if flight == 0 {
            self.rto_at = None;
            self.user_at = None;
        } else {
            self.rto_at = Some(now + self.rtt.rto());
            self.user_at = Some(now + self.config.user_timeout);
        }
        self.persist_backoffs = 0;
    }

    fn duplicate_ack(&mut self, now: Instant) {
        self.dup_acks += 1;
        // RFC 6582 §3.2 step 2: a new loss, not a leftover of the last —
        // unless SACK shows data sent after the last recovery point
        // arriving while the hole stays: a retransmission (of an RTO,
        // say) was lost again (RFC 6582 §4.2's ambiguity, resolved).
        let new_loss = self.snd_una > self.recover
            || (self.sack_ok
                && self.sacked_in(self.recover, self.snd_max)
                    > (DUP_THRESH - 1) * self.full_payload());
        if usize::try_from(self.dup_acks).unwrap_or(usize::MAX) >= DUP_THRESH
            && !self.cc.in_recovery()
            && new_loss
        {
            let flight = self.snd_max - self.snd_una;
            self.recover = self.snd_max;
            self.cc.on_fast_retransmit(now, flight);
            self.counters.fast_retransmits += 1;
            self.rexmit = true;
            self.rexmit_from = self.snd_una;
            self.rexmit_round_end = self.snd_max;
        } else if self.dup_acks > 3 || self.cc.in_recovery() {
            // With SACK the window in recovery is RFC 6675's, against the
            // pipe, and needs no inflation; the call still tells the
            // controller (NewReno without SACK inflates).
            self.cc.on_duplicate_ack(now);
        }
    }

    /// Where the next retransmission starts: SND.UNA, or with SACK in
    /// recovery the first hole not yet retransmitted.
    fn rexmit_start(&self) -> SeqNumber {
        if self.sack_ok && self.cc.in_recovery() {
            self.rexmit_from.max(self.snd_una)
        } else {
            self.snd_una
        }
    }

    /// Merges the peer's SACK blocks that lie in flight into the scoreboard;
    /// whether they acknowledged anything new selectively.
    fn take_sack(&mut self, seg: &Repr<'_>) -> bool {
        if seg.sack_ranges[0].is_none() {
            return false;
        }
        let before = self.sacked_bytes();
        for &(left, right) in seg.sack_ranges.iter().flatten() {
            let (left, right) = (SeqNumber(left), SeqNumber(right));
            if left >= right || left < self.snd_una || right > self.snd_max {
                continue;
            }
            self.add_sacked(left, right);
        }
        self.sacked_bytes() != before
    }

    fn sacked_bytes(&self) -> usize {
        self.sacked[..self.sacked_len]
            .iter()
            .map(|&(l, r)| r - l)
            .sum()
    }

    fn add_sacked(&mut self, mut left: SeqNumber, mut right: SeqNumber) {
        let mut i = 0;
        while i < self.sacked_len {
            let (l, r) = self.sacked[i];
            if l <= right && left <= r {
                left = left.min(l);
                right = right.max(r);
                self.sacked_len -= 1;
                self.sacked[i] = self.sacked[self.sacked_len];
            } else {
                i += 1;
            }
        }
        if self.sacked_len < SCOREBOARD {
            self.sacked[self.sacked_len] = (left, right);
            self.sacked_len += 1;
        } else {
            // Full: keep the lowest ranges, which retransmission meets first.
            let mut hi = 0;
            for (i, &(l, _)) in self.sacked.iter().enumerate() {
                if l > self.sacked[hi].0 {
                    hi = i;
                }
            }
            if left < self.sacked[hi].0 {
                self.sacked[hi] = (left, right);
            }
        }
    }

    fn prune_sacked(&mut self) {
        let mut i = 0;
        while i < self.sacked_len {
            if self.sacked[i].1 <= self.snd_una {
                self.sacked_len -= 1;
                self.sacked[i] = self.sacked[self.sacked_len];
            } else {
                if self.sacked[i].0 < self.snd_una {
                    self.sacked[i].0 = self.snd_una;
                }
                i += 1;
            }
        }
    }

    /// The first sequence number at or after `seq` the peer has not
    /// acknowledged selectively, and where the next such range starts
    /// after it (if any).
    fn skip_sacked(&self, mut seq: SeqNumber) -> (SeqNumber, Option<SeqNumber>) {
        let mut moved = true;
        while moved {
            moved = false;
            for &(l, r) in &self.sacked[..self.sacked_len] {
                if seq >= l && seq < r {
                    seq = r;
                    moved = true;
                }
            }
        }
        let next = self.sacked[..self.sacked_len]
            .iter()
            .map(|&(l, _)| l)
            .filter(|&l| l > seq)
            .reduce(SeqNumber::min);
        (seq, next)
    }

    /// Bytes of `[from, to)` the peer acknowledged selectively.
    fn sacked_in(&self, from: SeqNumber, to: SeqNumber) -> usize {
        self.sacked[..self.sacked_len]
            .iter()
            .map(|&(l, r)| {
                let (l, r) = (l.max(from), r.min(to));
                if r > l { r - l } else { 0 }
            })
            .sum()
    }

    /// Bytes of `[from, to)` the peer holds no SACK for.
    fn unsacked_in(&self, from: SeqNumber, to: SeqNumber) -> usize {
        if to <= from {
            return 0;
        }
        (to - from) - self.sacked_in(from, to)
    }

    /// RFC 6675 `IsLost`: an un-SACKed byte below the returned sequence
    /// number has more than `DupThresh − 1` segments selectively acknowledged above it.
    fn lost_end(&self) -> SeqNumber {
        let deep = (DUP_THRESH - 1) * self.full_payload();
        let mut ranges = self.sacked;
        let ranges = &mut ranges[..self.sacked_len];
        ranges.sort_unstable_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(core::cmp::Ordering::Equal));
        let mut above = 0;
        for &(l, r) in ranges.iter() {
            if above + (r - l) > deep {
                return r - (deep - above);
            }
            above += r - l;
        }
        self.snd_una
    }

    /// Whether RFC 6675 recovery is on: SACK agreed and in fast recovery.
    fn sack_recovery(&self) -> bool {
        self.sack_ok && self.cc.in_recovery()
    }

    /// RFC 6675 `SetPipe`: the bytes in flight. Each un-SACKed byte counts
    /// once unless it is lost, and once more if retransmitted in this
    /// round (`[SND.UNA, rexmit_from)`).
    fn pipe(&self) -> usize {
        let lost_end = self.lost_end();
        let rtx_end = self.rexmit_from.max(self.snd_una);
        let mut pipe = self.unsacked_in(self.snd_una, self.snd_max);
        if rtx_end < lost_end {
            pipe -= self.unsacked_in(rtx_end, lost_end);
        } else {
            pipe += self.unsacked_in(lost_end, rtx_end);
        }
        pipe
    }

    /// A retransmission of this round lost again: data sent after the
    /// round began is acknowledged `DupThresh` segments deep while a hole the
    /// round retransmitted is still missing. The round starts over from
    /// SND.UNA, so a lost retransmission costs a round trip, not an RTO.
    fn detect_lost_retransmission(&mut self) {
        if !self.sack_recovery() || self.rexmit_from <= self.snd_una {
            return;
        }
        let deep = (DUP_THRESH - 1) * self.full_payload();
        if self.sacked_in(self.rexmit_round_end, self.snd_max) > deep
            && self.unsacked_in(self.snd_una, self.rexmit_from) > 0
        {
            self.rexmit_from = self.snd_una;
            self.rexmit_round_end = self.snd_max;
        }
    }

    /// RFC 6675 §5 step (C): in SACK recovery, while the pipe leaves a
    /// segment's room in the window, the next lost hole not yet
    /// retransmitted in this round (`NextSeg` rule 1); new data (rule 2)
    /// is [`poll_data`](Self::poll_data)'s.
    fn poll_sack_rexmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if !self.sack_recovery() {
            return None;
        }
        let lost_end = self.lost_end();
        let (seq, next_sacked) = self.skip_sacked(self.rexmit_start());
        if seq >= lost_end || seq >= self.snd_max {
            return None;
        }
        let mss = self.full_payload();
        if self.pipe() + mss > self.recovery_window() {
            return None;
        }
        let limit = next_sacked.unwrap_or(self.snd_max).min(self.snd_max);
        let n = self.send_from(now, out, seq, limit - seq, true)?;
        self.rexmit_from = self.sent_end;
        Some(n)
    }

    /// The window in SACK recovery: RFC 6675 §5 sets cwnd to ssthresh on
    /// entering it and paces against the pipe, not an inflated window.
    fn recovery_window(&self) -> usize {
        self.cc.ssthresh().max(self.full_payload())
    }

    /// Steps 7 and 8: the segment's data and FIN.
    fn data_input(&mut self, now: Instant, seg: &Repr<'_>) {
        let mut seq = seg.seq_number;
        let mut payload = seg.payload;
        // Trim what was already received.
        if seq < self.rcv_nxt {
            let old = (self.rcv_nxt - seq).min(payload.len());
            payload = &payload[old..];
            seq = self.rcv_nxt;
        }
        let had_holes = !self.assembler.is_empty();
        self.rcv_mss = self
            .rcv_mss
            .max(seg.payload.len().min(usize::from(self.config.mss)));
        if !payload.is_empty() {
            // Offsets from the first unconsumed byte; trim to the buffer.
            let offset = seq - self.rcv_base;
            let room = self.config.recv_buffer.saturating_sub(offset);
            if payload.len() > room {
                // Beyond the window (a zero-window probe, say): the ACK
                // tells the sender where the window is.
                self.ack_now = true;
            }
            let payload = &payload[..payload.len().min(room)];
            if !payload.is_empty() {
                if let Ok(grown) = self.assembler.add(offset, payload.len()) {
                    self.recv.write(offset, payload, self.config.recv_buffer);
                    if grown > 0 {
                        self.rcv_nxt += grown;
                        self.unacked_bytes += grown;
                        if had_holes {
                            // Filling a hole: ACK at once (RFC 5681 §4.2).
                            self.ack_now = true;
                        }
                    } else {
                        self.counters.out_of_order += 1;
                        self.ack_now = true;
                        self.acks_owed = (self.acks_owed + 1).min(MAX_ACKS_OWED);
                    }
                } else {
                    self.ack_now = true;
                }
            }
        } else if !seg.payload.is_empty() {
            self.counters.duplicate_segments += 1;
            self.ack_now = true;
        }
        if seg.control == Control::Fin {
            let fin_seq = seg.seq_number + seg.payload.len();
            if fin_seq > self.rcv_nxt {
                self.fin_later = Some(fin_seq);
                self.ack_now = true;
            } else if fin_seq == self.rcv_nxt {
                self.fin_later = Some(fin_seq);
            }
        }
        if let Some(fin_seq) = self.fin_later
            && fin_seq == self.rcv_nxt
            && !self.fin_in
        {
            self.fin_in = true;
            self.fin_later = None;
            self.rcv_nxt += 1;
            self.ack_now = true;
            match self.state {
                State::Established => self.state = State::CloseWait,
                State::FinWait1 if self.fin_acked() => self.enter_time_wait(now),
                State::FinWait1 => self.state = State::Closing,
                State::FinWait2 => self.enter_time_wait(now),
                _ => {}
            }
        }
        if self.unacked_bytes > 0 && !self.ack_now {
            // RFC 5681 §4.2 / RFC 9293 §3.8.6.3: at least every second
            // full-sized segment, else within the delayed-ACK timeout.
            if self.config.delayed_ack.is_zero() || self.unacked_bytes >= 2 * self.rcv_mss {
                self.ack_now = true;
            } else if self.delack_at.is_none() {
                self.delack_at = Some(now + self.config.delayed_ack);
            }
        }
    }

    /// Fires every timer due at `now`; a call with nothing due is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.time_wait_at) {
            self.enter_closed(None);
            return;
        }
        if due(self.user_at) {
            self.enter_closed(Some(Error::TimedOut));
            return;
        }
        if due(self.rto_at) {
            self.on_rto(now);
            if self.state == State::Closed {
                return;
            }
        }
        if due(self.delack_at) {
            self.delack_at = None;
            self.ack_now = true;
        }
        if due(self.persist_at) {
            self.probe = Some(Probe::Window);
            self.counters.window_probes += 1;
            self.persist_backoffs = self.persist_backoffs.saturating_add(1);
            self.persist_at = Some(now + self.persist_interval());
        }
        if due(self.keepalive_at) {
            self.on_keepalive(now);
        }
    }

    /// The persist timer's interval: the RTO, doubled per unanswered probe,
    /// capped at the RTO ceiling.
    fn persist_interval(&self) -> Duration {
        let factor = 1u32
            .checked_shl(self.persist_backoffs.min(16))
            .unwrap_or(u32::MAX);
        self.rtt
            .rto()
            .saturating_mul(factor)
            .min(self.config.rtt.max_rto)
    }

    fn on_rto(&mut self, now: Instant) {
        self.rto_at = None;
        self.counters.rto_expiries += 1;
        if matches!(self.state, State::SynSent | State::SynReceived) {
            if self.syn_sent > self.config.syn_retries {
                self.enter_closed(Some(Error::TimedOut));
                return;
            }
            self.snd_nxt = self.iss;
            self.timed = None;
            self.rtt.backoff();
            return;
        }
        if self.snd_max == self.snd_una {
            return;
        }
        // RFC 5681 §3.1, RFC 6298 §5.5-5.6, RFC 6582 §4 (recover).
        let flight = self.snd_max - self.snd_una;
        self.cc.on_rto(now, flight);
        self.rtt.backoff();
        self.recover = self.snd_max;
        self.dup_acks = 0;
        self.snd_nxt = self.snd_una;
        self.timed = None;
        self.rexmit = false;
    }

    fn on_keepalive(&mut self, now: Instant) {
        let Some(idle) = self.config.keepalive else {
            self.keepalive_at = None;
            return;
        };
        if !matches!(
            self.state,
            State::Established | State::CloseWait | State::FinWait2
        ) || self.snd_max != self.snd_una
        {
            // Retransmission watches a connection with data in flight.
            self.keepalive_at = Some(now + idle);
            return;
        }
        if self.keepalive_sent >= self.config.keepalive_probes {
            self.enter_closed(Some(Error::TimedOut));
            return;
        }
        self.keepalive_sent += 1;
        self.probe = Some(Probe::Keepalive);
        self.keepalive_at = Some(now + self.config.keepalive_interval);
    }

    /// Arms the persist timer when the peer's window is closed and we hold
    /// data for it with nothing in flight; disarms it when it opens.
    fn update_persist(&mut self, now: Instant) {
        let waiting = matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::LastAck
                | State::Closing
        ) && self.snd_wnd == 0
            && self.snd_nxt == self.snd_una
            && self.rto_at.is_none()
            && self.buf_end() > self.snd_nxt;
        if !waiting {
            self.persist_at = None;
            if self.snd_wnd > 0 {
                self.persist_backoffs = 0;
            }
        } else if self.persist_at.is_none() {
            self.persist_at = Some(now + self.persist_interval());
        }
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout)
    /// must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.rto_at,
            self.delack_at,
            self.persist_at,
            self.keepalive_at,
            self.time_wait_at,
            self.user_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Writes the next segment to send (header with checksum zero, then
    /// data) at the start of `out` and returns its length; `None` when
    /// nothing may be sent now (window, congestion, nothing queued).
    /// `out` holds at least [`MAX_SEGMENT_OVERHEAD`] + the MSS in use.
    pub fn poll_segment(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if let Some(reset) = self.reset.take() {
            return self.emit_reset(reset, out);
        }
        let sent = match self.state {
            State::Closed | State::TimeWait => None,
            State::SynSent | State::SynReceived => self.poll_opening(now, out),
            _ => self.poll_synchronized(now, out),
        };
        if let Some(n) = sent {
            self.counters.segments_out += 1;
            return Some(n);
        }
        if self.ack_now || self.acks_owed > 0 {
            let seq = self.snd_nxt;
            let n = self.emit(now, out, seq, Control::None, 0, 0);
            if n.is_some() {
                self.counters.segments_out += 1;
            }
            return n;
        }
        self.update_persist(now);
        None
    }

    fn poll_opening(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if self.snd_nxt != self.iss {
            return None;
        }
        let n = self.emit(now, out, self.iss, Control::Syn, 0, 0)?;
        if self.syn_sent == 0 {
            self.timed = Some((self.iss + 1, now));
        } else {
            self.counters.retransmits += 1;
        }
        self.syn_sent += 1;
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
        Some(n)
    }

    fn poll_synchronized(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if self.rexmit {
            self.rexmit = false;
            let (seq, next_sacked) = self.skip_sacked(self.rexmit_start());
            if seq < self.snd_max {
                let limit = next_sacked.unwrap_or(self.snd_max).min(self.snd_max);
                if let Some(n) = self.send_from(now, out, seq, limit - seq, true) {
                    self.rexmit_from = self.sent_end;
                    return Some(n);
                }
            }
        }
        if let Some(n) = self.poll_sack_rexmit(now, out) {
            return Some(n);
        }
        if let Some(n) = self.poll_data(now, out) {
            return Some(n);
        }
        match self.probe.take() {
            Some(Probe::Window) if self.buf_end() > self.snd_una => {
                // One byte beyond the closed window; SND.NXT stays.
                let seq = self.snd_una.max(self.buf_seq);
                let n = self.emit(now, out, seq, Control::None, seq - self.buf_seq, 1)?;
                self.snd_max = self.snd_max.max(seq + 1);
                Some(n)
            }
            Some(Probe::Keepalive) => {
                let seq = self.snd_una - 1;
                self.emit(now, out, seq, Control::None, 0, 0)
            }
            _ => None,
        }
    }

    /// New data (or, after an RTO, old data again) from SND.NXT, as the
    /// windows allow, with the FIN when it is the last.
    fn poll_data(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if !matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        ) {
            return None;
        }
        let (seq, next_sacked) = if self.snd_nxt < self.snd_max {
            self.skip_sacked(self.snd_nxt)
        } else {
            (self.snd_nxt, None)
        };
        if seq > self.snd_nxt {
            self.snd_nxt = seq;
        }
        let end = self.buf_end();
        let fin_pending = self.fin_queued && seq <= end;
        if seq > end || (seq == end && !fin_pending) {
            return None;
        }
        let queued = end - seq;
        let retransmission = seq < self.snd_max;
        // What is in flight: SACKed data is not (RFC 6675), and after an
        // RTO neither is what lies beyond SND.NXT (presumed lost).
        let (flight, cwnd) = if self.sack_recovery() {
            if retransmission {
                // Beyond the holes NextSeg rule 1 repairs: not now.
                return None;
            }
            (self.pipe(), self.recovery_window())
        } else {
            let mut cwnd = self.cc.window();
            if !self.cc.in_recovery() && !retransmission {
                // RFC 3042: each of the first two duplicate ACKs may send
                // one new segment beyond the window.
                cwnd += self.dup_acks.min(LIMITED_TRANSMIT) as usize * self.full_payload();
            }
            (self.unsacked_in(self.snd_una, seq), cwnd)
        };
        // The peer's window bounds the sequence space, SACKed or not.
        let room = cwnd
            .saturating_sub(flight)
            .min(self.snd_wnd.saturating_sub(seq - self.snd_una));
        let mut len = queued.min(room);
        if let Some(next) = next_sacked {
            len = len.min(next - seq);
        }
        if len < queued && queued > 0 && !retransmission {
            // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): only full
            // segments, or half the largest window the peer offered —
            // while an ACK is still to come. With nothing in flight no ACK
            // will open the window further, so what fits goes (the
            // override the RFC gives a timer for).
            let cap = self.payload_cap();
            if len == 0 || (len < cap && len < self.max_snd_wnd / 2 && flight > 0) {
                return None;
            }
        }
        if len == 0 && !(fin_pending && queued == 0) {
            return None;
        }
        self.send_from(now, out, seq, len, retransmission)
    }

    /// The options of a data segment sent now, in bytes, padded: what
    /// [`emit`](Self::emit) will write (timestamps, SACK blocks).
    fn data_options_len(&self) -> usize {
        let mut options = 0;
        if self.ts_ok {
            options += 10;
        }
        if self.sack_ok && !self.assembler.is_empty() {
            let blocks = self.assembler.ranges().count().min(REPR_SACK_BLOCKS);
            options += 2 + 8 * blocks;
        }
        options.next_multiple_of(4)
    }

    /// The payload of a full-sized segment: the MSS less the options every
    /// segment carries (timestamps); SACK blocks come and go and are not
    /// counted, as Linux's `mss_cache` does not count them.
    fn full_payload(&self) -> usize {
        let ts = if self.ts_ok { TIMESTAMP_OPTION_LEN } else { 0 };
        self.smss.saturating_sub(ts).max(1)
    }

    /// The most payload a segment may carry: the MSS less the options
    /// (RFC 9293 §3.7.1: the MSS counts data only, and the IP packet must
    /// still fit the MTU it was derived from).
    fn payload_cap(&self) -> usize {
        self.smss.saturating_sub(self.data_options_len()).max(1)
    }

    /// The most payload one segment handed to the carrier may carry: a
    /// whole number of [`payload_cap`](Self::payload_cap)s up to
    /// `max_burst` (the carrier cuts it at that size: every piece but the
    /// last full), when the peer's MSS is our own; one otherwise.
    fn burst_cap(&self) -> usize {
        let cap = self.payload_cap();
        if self.config.max_burst <= cap || self.smss != usize::from(self.config.mss) {
            return cap;
        }
        self.config.max_burst / cap * cap
    }

    /// Sends up to `len` bytes from `seq` (which is at or after SND.UNA),
    /// with the FIN if they end the stream; advances SND.NXT when `seq` is
    /// SND.NXT.
    fn send_from(
        &mut self,
        now: Instant,
        out: &mut [u8],
        seq: SeqNumber,
        len: usize,
        retransmission: bool,
    ) -> Option<usize> {
        let end = self.buf_end();
        let start = seq.max(self.buf_seq);
        let len = len.min(self.burst_cap()).min(end - start.min(end)).min(
            out.len()
                .saturating_sub(HEADER_LEN + self.data_options_len()),
        );
        // A burst stops at a segment boundary unless it ends the data, so
        // the carrier's cutting leaves no runt in the middle of a window.
        let cap = self.payload_cap();
        let len = if len > cap && start + len < end {
            len - len % cap
        } else {
            len
        };
        let with_fin = self.fin_queued && start + len == end;
        let control = if with_fin {
            Control::Fin
        } else if len > 0 && start + len == end {
            Control::Psh
        } else {
            Control::None
        };
        if len == 0 && !with_fin {
            return None;
        }
        let n = self.emit(now, out, start, control, start - self.buf_seq, len)?;
        let seg_end = start + len + usize::from(with_fin);
        self.sent_end = seg_end;
        if retransmission {
            self.counters.retransmits += 1;
            if self.timed.is_some_and(|(e, _)| start < e) {
                self.timed = None;
            }
        } else if self.timed.is_none() && start >= self.snd_una {
            self.timed = Some((seg_end, now));
        }
        if start <= self.snd_nxt && seg_end > self.snd_nxt {
            self.snd_nxt = seg_end;
        }
        self.snd_max = self.snd_max.max(seg_end);
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
        if self.user_at.is_none() {
            self.user_at = Some(now + self.config.user_timeout);
        }
        Some(n)
    }

    /// Writes one segment: header (ACK, window, options) and `len` bytes
    /// of the send ring from `offset`.
    fn emit(
        &mut self,
        now: Instant,
        out: &mut [u8],
        seq: SeqNumber,
        control: Control,
        offset: usize,
        len: usize,
    ) -> Option<usize> {
        let syn = control == Control::Syn;
        // Only the opening SYN carries no ACK.
        let ack = !(syn && self.state == State::SynSent);
        let mut repr = Repr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            control,
            seq_number: seq,
            ack_number: ack.then_some(self.rcv_nxt),
            window_len: 0,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; REPR_SACK_BLOCKS],
            timestamp: None,
            payload: &[],
        };
        let wnd = self.rcv_wnd();
        if syn {
            repr.window_len = u16::try_from(wnd).unwrap_or(u16::MAX);
            repr.max_seg_size = Some(self.config.mss);
            let opening = self.state == State::SynSent;
            if (opening && self.config.window_scale) || self.ws_ok {
                let shift = shift_for(self.config.recv_buffer);
                repr.window_scale = Some(shift);
            }
            repr.sack_permitted = if opening {
                self.config.sack
            } else {
                self.sack_ok
            };
            let ts = if opening {
                self.config.timestamps
            } else {
                self.ts_ok
            };
            if ts {
                repr.timestamp = Some((ts_clock(now), if opening { 0 } else { self.ts_recent }));
            }
        } else {
            repr.window_len = u16::try_from(wnd >> self.rcv_shift).unwrap_or(u16::MAX);
            if self.ts_ok {
                repr.timestamp = Some((ts_clock(now), self.ts_recent));
            }
            if self.sack_ok && !self.assembler.is_empty() {
                let blocks = self.assembler.sack_blocks(REPR_SACK_BLOCKS);
                for (slot, b) in repr.sack_ranges.iter_mut().zip(blocks.iter()) {
                    let left = self.rcv_base + b.start;
                    let right = self.rcv_base + b.end;
                    *slot = Some((left.0, right.0));
                }
            }
        }
        let header = repr.header_len();
        if out.len() < header + len {
            return None;
        }
        repr.emit(&mut Packet::new_unchecked(&mut out[..header + len]));
        if len > 0 {
            self.send.copy_out(offset, &mut out[header..header + len]);
        }
        if ack {
            self.ack_now = false;
            self.acks_owed = self.acks_owed.saturating_sub(1);
            self.unacked_bytes = 0;
            self.delack_at = None;
            self.last_ack_sent = self.rcv_nxt;
            let adv = self.rcv_nxt
                + (usize::from(repr.window_len) << if syn { 0 } else { self.rcv_shift });
            self.rcv_adv = self.rcv_adv.max(adv);
            if self.rcv_adv < self.rcv_nxt {
                self.rcv_adv = adv;
            }
        }
        Some(header + len)
    }

    fn emit_reset(&mut self, reset: Reset, out: &mut [u8]) -> Option<usize> {
        let ports = (self.local.port(), self.remote.port());
        let n = write_rst(ports, reset.seq, reset.ack, out)?;
        self.counters.segments_out += 1;
        Some(n)
    }

    /// Queues up to `data.len()` bytes for sending and returns how many
    /// were taken (limited by [`send_room`](Self::send_room)). Zero once
    /// the application closed or the connection cannot send any more.
    pub fn send(&mut self, data: &[u8]) -> usize {
        if self.send_room() == 0 {
            return 0;
        }
        self.send.push(data, self.config.send_buffer)
    }

    /// Bytes [`send`](Self::send) would take now.
    pub fn send_room(&self) -> usize {
        let open = matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        );
        if !open || self.fin_queued {
            return 0;
        }
        self.config.send_buffer.saturating_sub(self.send.len())
    }

    /// The in-order bytes received and not yet consumed (the first
    /// contiguous run of them; after [`consume`](Self::consume) of all of
    /// it, the next run, if the buffer wraps).
    pub fn received(&self) -> &[u8] {
        self.recv.front(self.assembler.contiguous())
    }

    /// The application took the first `n` bytes of
    /// [`received`](Self::received): the window opens by as much.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.assembler.contiguous());
        if n == 0 {
            return;
        }
        self.recv.consume(n);
        self.assembler.advance(n);
        if self.assembler.contiguous() == 0 {
            self.release_buffers();
        }
        self.rcv_base += n;
        self.counters.bytes_in += n as u64;
        // A window update once the window grew enough (receiver SWS
        // avoidance, RFC 9293 §3.8.6.2.2).
        if self.synchronized() && !self.fin_in {
            let right = self.rcv_nxt + self.rcv_wnd();
            let grown = if right > self.rcv_adv {
                right - self.rcv_adv
            } else {
                0
            };
            let threshold = (self.config.recv_buffer / WINDOW_UPDATE_DIVISOR).min(2 * self.smss);
            if grown >= threshold.max(1) {
                self.ack_now = true;
            }
        }
    }

    /// The peer's FIN arrived and every byte before it was consumed.
    pub fn fin_received(&self) -> bool {
        self.fin_in && self.assembler.contiguous() == 0
    }

    /// The application has nothing more to send: a FIN follows the
    /// queued bytes.
    pub fn close(&mut self) {
        match self.state {
            // Not RFC 9293's "delete the TCB": bytes queued before the
            // handshake completes are the application's request, and a
            // carrier closes right after queuing them. The FIN waits for
            // ESTABLISHED; `abort` is how to give up.
            State::SynSent | State::SynReceived => self.fin_queued = true,
            State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
            }
            _ => {}
        }
    }

    /// Drops the connection now, with a RST to the peer if it was
    /// synchronized (the RST is the next [`poll_segment`](Self::poll_segment)).
    pub fn abort(&mut self) {
        if self.synchronized() && self.state != State::TimeWait || self.state == State::SynReceived
        {
            self.reset = Some(Reset {
                seq: self.snd_nxt,
                ack: None,
            });
        }
        self.enter_closed(None);
    }

    /// The RFC 9293 state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Why the connection failed, if it did.
    pub fn error(&self) -> Option<Error> {
        self.error
    }

    /// The connection's counters (srtt, cwnd and ssthresh as of now).
    pub fn counters(&self) -> Counters {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Counters {
            srtt_us: self.rtt.srtt().map_or(0, micros),
            rttvar_us: micros(self.rtt.rttvar()),
            cwnd: self.cc.window() as u64,
            ssthresh: u64::try_from(self.cc.ssthresh()).unwrap_or(u64::MAX),
            ..self.counters
        }
    }

    /// Our address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The sender MSS in use (ours and the peer's, the smaller).
    pub fn mss(&self) -> usize {
        self.smss
    }

    /// The peer's window as of its last acceptable segment, scaled.
    pub fn peer_window(&self) -> usize {
        self.snd_wnd
    }
}

/// The RST answering `segment`, which matched no connection (RFC 9293
/// section 3.10.7.1: a closed port), written to `out`; `None` when the
/// segment is itself a RST (never answered).
pub fn reset_for(segment: &Repr<'_>, out: &mut [u8]) -> Option<usize> {
    if segment.control == Control::Rst {
        return None;
    }
    let (seq, ack) = match segment.ack_number {
        Some(ack) => (ack, None),
        None => (
            SeqNumber(0),
            Some(segment.seq_number + segment.segment_len()),
        ),
    };
    write_rst((segment.dst_port, segment.src_port), seq, ack, out)
}

/// Writes a RST from port `ports.0` to `ports.1` (no options, window 0)
/// at the start of `out`; `None` if it does not fit.
fn write_rst(
    ports: (u16, u16),
    seq: SeqNumber,
    ack: Option<SeqNumber>,
    out: &mut [u8],
) -> Option<usize> {
    let repr = Repr {
        src_port: ports.0,
        dst_port: ports.1,
        control: Control::Rst,
        seq_number: seq,
        ack_number: ack,
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; REPR_SACK_BLOCKS],
        timestamp: None,
        payload: &[],
    };
    let n = repr.buffer_len();
    if out.len() < n {
        return None;
    }
    repr.emit(&mut Packet::new_unchecked(&mut out[..n]));
    Some(n)
}
