//! Script tests of the engine in virtual time, in the manner of smoltcp's
//! `send!`/`recv!`: segments built by hand go in, and the exact segments
//! the [`Tcb`] emits are checked. At the end, two engines wired back to
//! back move a mebibyte each way through a lossy in-memory link.

use super::*;
use crate::wire::tcp::Packet;
use proptest::prelude::*;

const LOCAL_PORT: u16 = 7000;
const REMOTE_PORT: u16 = 40000;
/// Our ISS and the peer's.
const ISS: u32 = 1000;
const IRS: u32 = 5000;
/// The carrier's buffer for one segment.
const BUF: usize = 2048;

fn local() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], LOCAL_PORT))
}

fn remote() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 2], REMOTE_PORT))
}

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// No options, no delayed ACK: the plainest segments to script.
fn plain() -> Config {
    Config {
        mss: 1000,
        recv_buffer: 64_000,
        send_buffer: 64_000,
        window_scale: false,
        sack: false,
        timestamps: false,
        delayed_ack: Duration::ZERO,
        ..Config::default()
    }
}

/// A segment from the peer (or the one we expect from us, with the ports
/// swapped by [`ours`]).
fn seg(seq: u32, ack: Option<u32>) -> Repr<'static> {
    Repr {
        src_port: REMOTE_PORT,
        dst_port: LOCAL_PORT,
        control: Control::None,
        seq_number: SeqNumber(seq),
        ack_number: ack.map(SeqNumber),
        window_len: 64_000,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; REPR_SACK_BLOCKS],
        timestamp: None,
        payload: &[],
    }
}

/// What we send: ports from us to the peer.
fn ours(seq: u32, ack: Option<u32>) -> Repr<'static> {
    Repr {
        src_port: LOCAL_PORT,
        dst_port: REMOTE_PORT,
        ..seg(seq, ack)
    }
}

/// A segment the engine emitted, with its data copied out.
#[derive(Debug)]
struct Out {
    repr: Repr<'static>,
    data: Vec<u8>,
}

#[track_caller]
fn poll(t: &mut Tcb, now: Instant) -> Option<Out> {
    let mut buf = [0u8; BUF];
    let n = t.poll_segment(now, &mut buf)?;
    let packet = Packet::new_checked(&buf[..n]).expect("a well-formed segment");
    let repr = Repr::parse(&packet).expect("a parsable segment");
    let data = repr.payload.to_vec();
    Some(Out {
        repr: Repr {
            payload: &[],
            ..repr
        },
        data,
    })
}

/// Expects exactly `want` (its payload compared separately with `data`).
#[track_caller]
fn expect(t: &mut Tcb, now: Instant, want: Repr<'static>, data: &[u8]) {
    let got = poll(t, now).unwrap_or_else(|| panic!("expected {want}, got nothing"));
    assert_eq!(
        got.repr,
        Repr {
            payload: &[],
            ..want
        }
    );
    assert_eq!(got.data, data, "payload");
}

#[track_caller]
fn silence(t: &mut Tcb, now: Instant) {
    if let Some(o) = poll(t, now) {
        panic!("expected nothing, got {} {:?}", o.repr, o.repr);
    }
}

/// A connection accepted from the peer's SYN and acknowledged: ESTABLISHED
/// at 0 ms, SND.NXT = ISS + 1, RCV.NXT = IRS + 1.
fn established(config: &Config) -> Tcb {
    let syn = Repr {
        control: Control::Syn,
        max_seg_size: Some(1000),
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(config, local(), remote(), &syn, ISS, ms(0));
    assert!(poll(&mut t, ms(0)).is_some(), "SYN-ACK");
    t.handle_segment(ms(0), &seg(IRS + 1, Some(ISS + 1)));
    assert_eq!(t.state(), State::Established);
    t
}

fn with_data(mut r: Repr<'static>, data: &'static [u8]) -> Repr<'static> {
    r.payload = data;
    r
}

// ---- handshakes ----

#[test]
fn active_open_sends_syn_with_options_and_completes() {
    let config = Config {
        timestamps: false,
        ..Config::default()
    };
    let mut t = Tcb::connect(&config, local(), remote(), ISS, ms(0));
    assert_eq!(t.state(), State::SynSent);
    expect(
        &mut t,
        ms(0),
        Repr {
            control: Control::Syn,
            window_len: 65_535,
            max_seg_size: Some(1460),
            window_scale: Some(5),
            sack_permitted: true,
            ..ours(ISS, None)
        },
        &[],
    );
    silence(&mut t, ms(0));
    assert_eq!(t.poll_timeout(), Some(ms(1000)), "initial RTO");
    t.handle_segment(
        ms(10),
        &Repr {
            control: Control::Syn,
            max_seg_size: Some(1200),
            window_scale: Some(7),
            sack_permitted: true,
            window_len: 1000,
            ..seg(IRS, Some(ISS + 1))
        },
    );
    assert_eq!(t.state(), State::Established);
    assert_eq!(t.mss(), 1200);
    assert_eq!(t.peer_window(), 1000, "a SYN's window is not scaled");
    // 2^20 >> 5 = 32768.
    expect(
        &mut t,
        ms(10),
        Repr {
            window_len: 32_768,
            ..ours(ISS + 1, Some(IRS + 1))
        },
        &[],
    );
    assert_eq!(t.poll_timeout(), None);
    assert_eq!(t.counters().srtt_us, 10_000, "SYN's round trip sampled");
    // Later windows are scaled by the peer's shift.
    t.handle_segment(
        ms(20),
        &Repr {
            window_len: 100,
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    assert_eq!(t.peer_window(), 100 << 7);
}

#[test]
fn absent_options_mean_no_scaling_and_mss_536() {
    let mut t = Tcb::connect(&Config::default(), local(), remote(), ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    t.handle_segment(
        ms(1),
        &Repr {
            control: Control::Syn,
            window_len: 8000,
            ..seg(IRS, Some(ISS + 1))
        },
    );
    assert_eq!(t.state(), State::Established);
    assert_eq!(t.mss(), 536);
    // No scaling: our window is the buffer capped at 65535, no timestamps.
    expect(
        &mut t,
        ms(1),
        Repr {
            window_len: 65_535,
            ..ours(ISS + 1, Some(IRS + 1))
        },
        &[],
    );
    t.handle_segment(
        ms(2),
        &Repr {
            window_len: 9000,
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    assert_eq!(t.peer_window(), 9000, "no shift applied");
    // Segments are at most 536 bytes.
    assert_eq!(t.send(&[7; 2000]), 2000);
    assert_eq!(poll(&mut t, ms(2)).unwrap().data.len(), 536);
}

#[test]
fn passive_open_answers_with_negotiated_options() {
    let syn = Repr {
        control: Control::Syn,
        max_seg_size: Some(1460),
        window_scale: Some(2),
        sack_permitted: true,
        timestamp: Some((77, 0)),
        ..seg(IRS, None)
    };
    let config = Config {
        recv_buffer: 200_000,
        ..Config::default()
    };
    let mut t = Tcb::accept(&config, local(), remote(), &syn, ISS, ms(500));
    assert_eq!(t.state(), State::SynReceived);
    expect(
        &mut t,
        ms(500),
        Repr {
            control: Control::Syn,
            window_len: 65_535,
            max_seg_size: Some(1460),
            window_scale: Some(2),
            sack_permitted: true,
            timestamp: Some((500, 77)),
            ..ours(ISS, Some(IRS + 1))
        },
        &[],
    );
    t.handle_segment(
        ms(600),
        &Repr {
            timestamp: Some((78, 500)),
            window_len: 10,
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    assert_eq!(t.state(), State::Established);
    assert_eq!(t.peer_window(), 40);
    assert_eq!(t.mss(), 1460);
}

#[test]
fn passive_open_without_options_echoes_none() {
    let syn = Repr {
        control: Control::Syn,
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(&Config::default(), local(), remote(), &syn, ISS, ms(0));
    expect(
        &mut t,
        ms(0),
        Repr {
            control: Control::Syn,
            window_len: 65_535,
            max_seg_size: Some(1460),
            ..ours(ISS, Some(IRS + 1))
        },
        &[],
    );
    assert_eq!(t.mss(), 536);
}

#[test]
fn simultaneous_open() {
    let mut t = Tcb::connect(&plain(), local(), remote(), ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    t.handle_segment(
        ms(5),
        &Repr {
            control: Control::Syn,
            ..seg(IRS, None)
        },
    );
    assert_eq!(t.state(), State::SynReceived);
    expect(
        &mut t,
        ms(5),
        Repr {
            control: Control::Syn,
            window_len: 64_000,
            max_seg_size: Some(1000),
            ..ours(ISS, Some(IRS + 1))
        },
        &[],
    );
    t.handle_segment(
        ms(6),
        &Repr {
            control: Control::Syn,
            ..seg(IRS, Some(ISS + 1))
        },
    );
    // The peer's SYN-ACK is a SYN in SYN-RECEIVED with the same ISN: the
    // SYN-ACK goes again only for a bare SYN; this one carries an ACK,
    // which RFC 5961 answers with a challenge ACK.
    t.handle_segment(ms(6), &seg(IRS + 1, Some(ISS + 1)));
    assert_eq!(t.state(), State::Established);
}

#[test]
fn syn_ack_with_bad_ack_gets_rst_and_rst_refuses() {
    let mut t = Tcb::connect(&plain(), local(), remote(), ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    t.handle_segment(
        ms(1),
        &Repr {
            control: Control::Syn,
            ..seg(IRS, Some(ISS + 7))
        },
    );
    expect(
        &mut t,
        ms(1),
        Repr {
            control: Control::Rst,
            window_len: 0,
            ..ours(ISS + 7, None)
        },
        &[],
    );
    assert_eq!(t.state(), State::SynSent);
    // A RST without an acceptable ACK is ignored; with one, refused.
    t.handle_segment(
        ms(2),
        &Repr {
            control: Control::Rst,
            ..seg(0, None)
        },
    );
    assert_eq!(t.state(), State::SynSent);
    t.handle_segment(
        ms(2),
        &Repr {
            control: Control::Rst,
            ..seg(0, Some(ISS + 1))
        },
    );
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.error(), Some(Error::Refused));
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn syn_retries_back_off_then_time_out() {
    let config = Config {
        syn_retries: 2,
        ..plain()
    };
    let mut t = Tcb::connect(&config, local(), remote(), ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    // 1 s, then 2 s, then 4 s: the first SYN and two retries.
    for at in [1000, 3000] {
        assert_eq!(t.poll_timeout(), Some(ms(at)));
        t.handle_timeout(ms(at - 1));
        silence(&mut t, ms(at - 1));
        t.handle_timeout(ms(at));
        let o = poll(&mut t, ms(at)).expect("SYN again");
        assert_eq!(o.repr.control, Control::Syn);
        assert_eq!(o.repr.seq_number, SeqNumber(ISS));
    }
    assert_eq!(t.poll_timeout(), Some(ms(7000)));
    t.handle_timeout(ms(7000));
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.error(), Some(Error::TimedOut));
    assert_eq!(t.counters().retransmits, 2);
}

#[test]
fn syn_received_retransmits_syn_ack_for_a_duplicate_syn() {
    let syn = Repr {
        control: Control::Syn,
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(&plain(), local(), remote(), &syn, ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    silence(&mut t, ms(0));
    t.handle_segment(ms(10), &syn);
    let o = poll(&mut t, ms(10)).expect("SYN-ACK again");
    assert_eq!(o.repr.control, Control::Syn);
    assert_eq!(o.repr.ack_number, Some(SeqNumber(IRS + 1)));
    // An ACK of something never sent gets a RST.
    t.handle_segment(ms(11), &seg(IRS + 1, Some(ISS + 50)));
    expect(
        &mut t,
        ms(11),
        Repr {
            control: Control::Rst,
            window_len: 0,
            ..ours(ISS + 50, None)
        },
        &[],
    );
    assert_eq!(t.state(), State::SynReceived);
}

// ---- data ----

#[test]
fn data_both_ways_with_acks() {
    let mut t = established(&plain());
    t.handle_segment(ms(10), &with_data(seg(IRS + 1, Some(ISS + 1)), b"hello"));
    assert_eq!(t.received(), b"hello");
    expect(
        &mut t,
        ms(10),
        Repr {
            window_len: 64_000 - 5,
            ..ours(ISS + 1, Some(IRS + 6))
        },
        &[],
    );
    t.consume(5);
    assert_eq!(t.received(), b"");
    assert_eq!(t.send(b"world"), 5);
    expect(
        &mut t,
        ms(11),
        Repr {
            control: Control::Psh,
            ..ours(ISS + 1, Some(IRS + 6))
        },
        b"world",
    );
    silence(&mut t, ms(11));
    // The SYN-ACK's round trip (0 ms) put the RTO at its 200 ms floor.
    assert_eq!(t.poll_timeout(), Some(ms(211)));
    t.handle_segment(ms(20), &seg(IRS + 6, Some(ISS + 6)));
    assert_eq!(t.poll_timeout(), None, "everything acknowledged");
    let c = t.counters();
    assert_eq!((c.bytes_in, c.bytes_out), (5, 5));
    // SRTT = 7/8 · 0 + 1/8 · 9 ms.
    assert_eq!(c.srtt_us, 1_125);
}

#[test]
fn sender_respects_peer_window_and_cwnd() {
    let mut t = established(&plain());
    t.handle_segment(
        ms(1),
        &Repr {
            window_len: 2500,
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    assert_eq!(t.send(&[1; 10_000]), 10_000);
    assert_eq!(poll(&mut t, ms(1)).unwrap().data.len(), 1000);
    assert_eq!(poll(&mut t, ms(1)).unwrap().data.len(), 1000);
    // 500 left of the window: less than a segment and less than half the
    // largest window offered, so it waits (sender SWS avoidance).
    silence(&mut t, ms(1));
    t.handle_segment(
        ms(2),
        &Repr {
            window_len: 10_000,
            ..seg(IRS + 1, Some(ISS + 2001))
        },
    );
    // cwnd is 10 segments: 8 more fit the 10 000-byte window.
    let mut n = 0;
    while let Some(o) = poll(&mut t, ms(2)) {
        n += o.data.len();
    }
    assert_eq!(n, 8000);
    // Everything acknowledged, a 300-byte window: with no ACK to wait
    // for, the small segment goes.
    assert_eq!(t.send(&[2; 1000]), 1000);
    t.handle_segment(
        ms(3),
        &Repr {
            window_len: 300,
            ..seg(IRS + 1, Some(ISS + 10_001))
        },
    );
    assert_eq!(poll(&mut t, ms(3)).unwrap().data.len(), 300);
    silence(&mut t, ms(3));
}

#[test]
fn out_of_order_segments_are_reassembled_with_sack() {
    let config = Config {
        sack: true,
        ..plain()
    };
    let syn = Repr {
        control: Control::Syn,
        sack_permitted: true,
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(&config, local(), remote(), &syn, ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    t.handle_segment(ms(0), &seg(IRS + 1, Some(ISS + 1)));
    t.handle_segment(ms(1), &with_data(seg(IRS + 4, Some(ISS + 1)), b"def"));
    expect(
        &mut t,
        ms(1),
        Repr {
            window_len: 64_000,
            sack_ranges: [Some((IRS + 4, IRS + 7)), None, None],
            ..ours(ISS + 1, Some(IRS + 1))
        },
        &[],
    );
    t.handle_segment(ms(2), &with_data(seg(IRS + 9, Some(ISS + 1)), b"ij"));
    expect(
        &mut t,
        ms(2),
        Repr {
            sack_ranges: [Some((IRS + 9, IRS + 11)), Some((IRS + 4, IRS + 7)), None],
            ..ours(ISS + 1, Some(IRS + 1))
        },
        &[],
    );
    assert_eq!(t.received(), b"");
    t.handle_segment(ms(3), &with_data(seg(IRS + 1, Some(ISS + 1)), b"abc"));
    assert_eq!(t.received(), b"abcdef");
    expect(
        &mut t,
        ms(3),
        Repr {
            sack_ranges: [Some((IRS + 9, IRS + 11)), None, None],
            window_len: 64_000 - 6,
            ..ours(ISS + 1, Some(IRS + 7))
        },
        &[],
    );
    t.handle_segment(ms(4), &with_data(seg(IRS + 5, Some(ISS + 1)), b"efgh"));
    assert_eq!(t.received(), b"abcdefghij");
    assert_eq!(t.counters().out_of_order, 2);
    // A duplicate is counted and acknowledged.
    poll(&mut t, ms(4)).unwrap();
    t.handle_segment(ms(5), &with_data(seg(IRS + 1, Some(ISS + 1)), b"abc"));
    assert_eq!(t.counters().duplicate_segments, 1);
    expect(
        &mut t,
        ms(5),
        Repr {
            window_len: 64_000 - 10,
            ..ours(ISS + 1, Some(IRS + 11))
        },
        &[],
    );
}

#[test]
fn delayed_ack_waits_then_fires_or_acks_every_second_segment() {
    let config = Config {
        delayed_ack: DELAYED_ACK,
        ..plain()
    };
    let mut t = established(&config);
    t.handle_segment(ms(100), &with_data(seg(IRS + 1, Some(ISS + 1)), &[1; 1000]));
    silence(&mut t, ms(100));
    assert_eq!(t.poll_timeout(), Some(ms(140)));
    t.handle_timeout(ms(139));
    silence(&mut t, ms(139));
    t.handle_timeout(ms(140));
    expect(
        &mut t,
        ms(140),
        Repr {
            window_len: 63_000,
            ..ours(ISS + 1, Some(IRS + 1001))
        },
        &[],
    );
    assert_eq!(t.poll_timeout(), None);
    // Two full segments: ACK at once.
    t.handle_segment(
        ms(200),
        &with_data(seg(IRS + 1001, Some(ISS + 1)), &[1; 1000]),
    );
    silence(&mut t, ms(200));
    t.handle_segment(
        ms(201),
        &with_data(seg(IRS + 2001, Some(ISS + 1)), &[1; 1000]),
    );
    let o = poll(&mut t, ms(201)).expect("ACK every second segment");
    assert_eq!(o.repr.ack_number, Some(SeqNumber(IRS + 3001)));
    assert_eq!(t.poll_timeout(), None, "the delayed ACK went with it");
    // Full-sized is what the peer sends (its MSS less its options), not
    // our MSS: two 900-byte segments are acknowledged at once too.
    let mut t = established(&config);
    t.handle_segment(ms(250), &with_data(seg(IRS + 1, Some(ISS + 1)), &[1; 900]));
    silence(&mut t, ms(250));
    t.handle_segment(
        ms(251),
        &with_data(seg(IRS + 901, Some(ISS + 1)), &[1; 900]),
    );
    let o = poll(&mut t, ms(251)).expect("ACK every second segment");
    assert_eq!(o.repr.ack_number, Some(SeqNumber(IRS + 1801)));
    // Out of order: at once.
    t.handle_segment(
        ms(300),
        &with_data(seg(IRS + 5001, Some(ISS + 1)), &[1; 10]),
    );
    assert!(poll(&mut t, ms(300)).is_some());
}

// ---- close ----

#[test]
fn active_close_through_fin_wait_and_time_wait() {
    let mut t = established(&plain());
    t.close();
    assert_eq!(t.state(), State::FinWait1);
    assert_eq!(t.send(b"x"), 0);
    expect(
        &mut t,
        ms(10),
        Repr {
            control: Control::Fin,
            ..ours(ISS + 1, Some(IRS + 1))
        },
        &[],
    );
    t.handle_segment(ms(20), &seg(IRS + 1, Some(ISS + 2)));
    assert_eq!(t.state(), State::FinWait2);
    assert_eq!(t.poll_timeout(), None);
    // The peer may still send, then closes.
    t.handle_segment(ms(30), &with_data(seg(IRS + 1, Some(ISS + 2)), b"late"));
    expect(
        &mut t,
        ms(30),
        Repr {
            window_len: 64_000 - 4,
            ..ours(ISS + 2, Some(IRS + 5))
        },
        &[],
    );
    t.handle_segment(
        ms(40),
        &Repr {
            control: Control::Fin,
            ..seg(IRS + 5, Some(ISS + 2))
        },
    );
    assert_eq!(t.state(), State::TimeWait);
    assert_eq!(t.received(), b"late");
    assert!(!t.fin_received(), "bytes before the FIN not consumed yet");
    t.consume(4);
    assert!(t.fin_received());
    expect(
        &mut t,
        ms(40),
        Repr {
            window_len: 64_000,
            ..ours(ISS + 2, Some(IRS + 6))
        },
        &[],
    );
    let end = ms(40) + MSL * 2;
    assert_eq!(t.poll_timeout(), Some(end));
    // A retransmitted FIN is acknowledged and restarts the wait.
    t.handle_segment(
        ms(1000),
        &Repr {
            control: Control::Fin,
            ..seg(IRS + 5, Some(ISS + 2))
        },
    );
    expect(
        &mut t,
        ms(1000),
        Repr {
            window_len: 64_000,
            ..ours(ISS + 2, Some(IRS + 6))
        },
        &[],
    );
    let end = ms(1000) + MSL * 2;
    assert_eq!(t.poll_timeout(), Some(end));
    t.handle_timeout(Instant::from_nanos(end.as_nanos() - 1));
    assert_eq!(t.state(), State::TimeWait);
    t.handle_timeout(end);
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.error(), None);
}

#[test]
fn fin_ack_together_goes_straight_to_time_wait() {
    let mut t = established(&plain());
    t.close();
    poll(&mut t, ms(1)).unwrap();
    t.handle_segment(
        ms(2),
        &Repr {
            control: Control::Fin,
            ..seg(IRS + 1, Some(ISS + 2))
        },
    );
    assert_eq!(t.state(), State::TimeWait);
}

#[test]
fn passive_close_through_close_wait_and_last_ack() {
    let mut t = established(&plain());
    t.handle_segment(
        ms(5),
        &Repr {
            control: Control::Fin,
            ..with_data(seg(IRS + 1, Some(ISS + 1)), b"bye")
        },
    );
    assert_eq!(t.state(), State::CloseWait);
    expect(
        &mut t,
        ms(5),
        Repr {
            window_len: 64_000 - 3,
            ..ours(ISS + 1, Some(IRS + 5))
        },
        &[],
    );
    assert_eq!(t.received(), b"bye");
    t.consume(3);
    assert!(t.fin_received());
    // We may still send.
    assert_eq!(t.send(b"ok"), 2);
    t.close();
    assert_eq!(t.state(), State::LastAck);
    expect(
        &mut t,
        ms(6),
        Repr {
            control: Control::Fin,
            window_len: 64_000,
            ..ours(ISS + 1, Some(IRS + 5))
        },
        b"ok",
    );
    t.handle_segment(ms(7), &seg(IRS + 5, Some(ISS + 3)));
    assert_eq!(
        t.state(),
        State::LastAck,
        "the data, not the FIN, acknowledged"
    );
    t.handle_segment(ms(8), &seg(IRS + 5, Some(ISS + 4)));
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.error(), None);
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn simultaneous_close_through_closing() {
    let mut t = established(&plain());
    t.close();
    poll(&mut t, ms(1)).unwrap();
    // The peer's FIN crosses ours: it does not acknowledge our FIN.
    t.handle_segment(
        ms(2),
        &Repr {
            control: Control::Fin,
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    assert_eq!(t.state(), State::Closing);
    expect(&mut t, ms(2), ours(ISS + 2, Some(IRS + 2)), &[]);
    t.handle_segment(ms(3), &seg(IRS + 2, Some(ISS + 2)));
    assert_eq!(t.state(), State::TimeWait);
    assert_eq!(t.poll_timeout(), Some(ms(3) + MSL * 2));
}

#[test]
fn close_in_syn_sent_and_abort() {
    // Closing before the handshake completes: the FIN follows it.
    let mut t = Tcb::connect(&plain(), local(), remote(), ISS, ms(0));
    assert_eq!(t.send(b"GET"), 3);
    t.close();
    assert_eq!(t.send(b"more"), 0);
    assert_eq!(t.state(), State::SynSent);
    poll(&mut t, ms(0)).unwrap();
    t.handle_segment(
        ms(1),
        &Repr {
            control: Control::Syn,
            max_seg_size: Some(1000),
            ..seg(IRS, Some(ISS + 1))
        },
    );
    assert_eq!(t.state(), State::FinWait1);
    expect(
        &mut t,
        ms(1),
        Repr {
            control: Control::Fin,
            ..ours(ISS + 1, Some(IRS + 1))
        },
        b"GET",
    );
    let mut t = established(&plain());
    t.abort();
    assert_eq!(t.state(), State::Closed);
    expect(
        &mut t,
        ms(1),
        Repr {
            control: Control::Rst,
            window_len: 0,
            ..ours(ISS + 1, None)
        },
        &[],
    );
    silence(&mut t, ms(1));
}

// ---- RST and SYN, RFC 5961 ----

#[test]
fn rst_exact_closes_in_window_challenges_outside_ignored() {
    let mut t = established(&plain());
    let rst = |seq| Repr {
        control: Control::Rst,
        ..seg(seq, None)
    };
    t.handle_segment(ms(1), &rst(IRS + 100_000));
    silence(&mut t, ms(1));
    assert_eq!(t.state(), State::Established);
    t.handle_segment(ms(2), &rst(IRS + 10));
    assert_eq!(t.state(), State::Established);
    expect(&mut t, ms(2), ours(ISS + 1, Some(IRS + 1)), &[]);
    assert_eq!(t.counters().challenge_acks, 1);
    t.handle_segment(ms(3), &rst(IRS + 1));
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.error(), Some(Error::Reset));
    silence(&mut t, ms(3));
}

#[test]
fn syn_in_established_gets_a_challenge_ack() {
    let mut t = established(&plain());
    t.handle_segment(
        ms(1),
        &Repr {
            control: Control::Syn,
            ..seg(IRS + 1, None)
        },
    );
    assert_eq!(t.state(), State::Established);
    expect(&mut t, ms(1), ours(ISS + 1, Some(IRS + 1)), &[]);
    assert_eq!(t.counters().challenge_acks, 1);
}

#[test]
fn challenge_acks_are_rate_limited() {
    let mut t = established(&plain());
    let syn = Repr {
        control: Control::Syn,
        ..seg(IRS + 1, None)
    };
    for i in 0..25 {
        t.handle_segment(ms(1000 + i), &syn);
        let answered = poll(&mut t, ms(1000 + i)).is_some();
        assert_eq!(answered, i < 10, "SYN {i}");
    }
    assert_eq!(t.counters().challenge_acks, 10);
    // A new period, a new allowance.
    t.handle_segment(ms(2000), &syn);
    assert!(poll(&mut t, ms(2000)).is_some());
}

#[test]
fn ack_of_unsent_data_is_answered_and_dropped() {
    let mut t = established(&plain());
    t.handle_segment(ms(1), &with_data(seg(IRS + 1, Some(ISS + 500)), b"zz"));
    expect(&mut t, ms(1), ours(ISS + 1, Some(IRS + 1)), &[]);
    assert_eq!(t.received(), b"", "the data was dropped with it");
}

#[test]
fn reset_for_closed_ports() {
    let mut buf = [0u8; BUF];
    let syn = Repr {
        control: Control::Syn,
        ..seg(IRS, None)
    };
    let n = reset_for(&syn, &mut buf).unwrap();
    let r = Repr::parse(&Packet::new_checked(&buf[..n]).unwrap()).unwrap();
    assert_eq!(
        r,
        Repr {
            control: Control::Rst,
            window_len: 0,
            ..ours(0, Some(IRS + 1))
        }
    );
    let n = reset_for(&with_data(seg(IRS, Some(77)), b"abc"), &mut buf).unwrap();
    let r = Repr::parse(&Packet::new_checked(&buf[..n]).unwrap()).unwrap();
    assert_eq!(
        r,
        Repr {
            control: Control::Rst,
            window_len: 0,
            ..ours(77, None)
        }
    );
    let rst = Repr {
        control: Control::Rst,
        ..seg(IRS, None)
    };
    assert_eq!(reset_for(&rst, &mut buf), None);
}

// ---- engine ↔ engine ----

/// One direction's data: bytes no two offsets of which repeat soon.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56;
            (x as u8) ^ salt
        })
        .collect()
}

/// What a back-to-back run ended with.
struct Run {
    /// Bytes each side received, in order.
    got: [Vec<u8>; 2],
    tcbs: [Tcb; 2],
    end: Instant,
}

/// Two engines wired back to back through a link of one-way delay
/// `delay` that drops every `drop_every`-th segment (0: none). Each side
/// sends its `data` as fast as the engine takes it, closes, and reads
/// everything. Bounded in steps and in virtual time.
fn back_to_back(config: &Config, data: [&[u8]; 2], drop_every: usize, delay: Duration) -> Run {
    /// Enough steps for a mebibyte each way in 1000-byte segments, many times over.
    const MAX_STEPS: usize = 2_000_000;
    let deadline = Instant::from_secs(3600);
    let mut now = Instant::ZERO;
    let mut client = Tcb::connect(config, remote(), local(), ISS, now);
    let mut buf = vec![0u8; MAX_SEGMENT_OVERHEAD + usize::from(config.mss)];
    let len = client.poll_segment(now, &mut buf).expect("SYN");
    let syn_bytes = buf[..len].to_vec();
    let syn = Repr::parse(&Packet::new_checked(&syn_bytes[..]).unwrap()).unwrap();
    let server = Tcb::accept(config, local(), remote(), &syn, IRS, now + delay);
    let mut tcbs = [client, server];
    let mut got = [Vec::new(), Vec::new()];
    let mut sent = [0usize; 2];
    let mut closed = [false; 2];
    // (deliver at, to whom, bytes)
    let mut link: Vec<(Instant, usize, Vec<u8>)> = Vec::new();
    let mut count = 0usize;
    let mut step = 0;
    // B starts when the SYN arrives.
    now += delay;
    while step < MAX_STEPS && now < deadline {
        step += 1;
        // Deliver what is due, in order of arrival.
        link.sort_by_key(|(at, _, _)| *at);
        while let Some(pos) = link.iter().position(|(at, _, _)| *at <= now) {
            let (_, to, bytes) = link.remove(pos);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            let repr = Repr::parse(&packet).unwrap();
            tcbs[to].handle_segment(now, &repr);
        }
        for side in 0..2 {
            let t = &mut tcbs[side];
            t.handle_timeout(now);
            // The application: write, read, close when all is written.
            while sent[side] < data[side].len() {
                let n = t.send(&data[side][sent[side]..]);
                if n == 0 {
                    break;
                }
                sent[side] += n;
            }
            if sent[side] == data[side].len() && !closed[side] {
                t.close();
                closed[side] = true;
            }
            loop {
                let r = t.received();
                if r.is_empty() {
                    break;
                }
                got[side].extend_from_slice(r);
                let n = r.len();
                t.consume(n);
            }
            while let Some(n) = t.poll_segment(now, &mut buf) {
                count += 1;
                if drop_every > 0 && count.is_multiple_of(drop_every) || random_loss() {
                    continue;
                }
                // Reordering and duplication, for `back_to_back_disorder`:
                // every 7th segment (when asked) arrives 3 delays late, and
                // every 13th twice.
                let late = REORDER.with(std::cell::Cell::get) && count.is_multiple_of(7);
                let at = now + if late { delay * 4 } else { delay };
                if REORDER.with(std::cell::Cell::get) && count.is_multiple_of(13) {
                    link.push((at + delay, 1 - side, buf[..n].to_vec()));
                }
                link.push((at, 1 - side, buf[..n].to_vec()));
            }
        }
        if tcbs.iter().all(|t| t.state() == State::Closed) && link.is_empty() {
            break;
        }
        let next = link
            .iter()
            .map(|(at, _, _)| *at)
            .chain(tcbs.iter().filter_map(Tcb::poll_timeout))
            .min();
        match next {
            Some(at) => now = now.max(at),
            None => break,
        }
    }
    Run {
        got,
        tcbs,
        end: now,
    }
}

thread_local! {
    /// Whether [`back_to_back`] also reorders and duplicates segments.
    static REORDER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// A xorshift state and a loss percentage for [`random_loss`]
    /// (percentage 0: no random loss).
    static LOSS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((1, 0)) };
}

/// Whether the next segment is lost, at the percentage set in [`LOSS`].
fn random_loss() -> bool {
    LOSS.with(|cell| {
        let (mut x, percent) = cell.get();
        if percent == 0 {
            return false;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cell.set((x, percent));
        x % 100 < percent
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Whatever the loss pattern (up to 1 in 10), both directions arrive
    /// byte-exact and both ends close. (At 30 % a run may rightly end in
    /// the user timeout: the RTO backs off to a minute while every try
    /// and its ACK must both get through.)
    #[test]
    fn back_to_back_random_loss_is_always_repaired(
        seed in 1u64..u64::MAX,
        percent in 1u64..10,
        up_len in 0usize..200_000,
        down_len in 0usize..50_000,
        sack in any::<bool>(),
        timestamps in any::<bool>(),
        cubic in any::<bool>(),
    ) {
        LOSS.with(|cell| cell.set((seed, percent)));
        let config = Config {
            sack,
            timestamps,
            cc: if cubic { Algorithm::Cubic } else { Algorithm::NewReno },
            ..Config::default()
        };
        let up = pattern(up_len, 0x5a);
        let down = pattern(down_len, 0xa5);
        let run = back_to_back(&config, [&up, &down], 0, Duration::from_millis(3));
        prop_assert!(run.got[1] == up, "A → B {} of {}", run.got[1].len(), up.len());
        prop_assert!(run.got[0] == down, "B → A {} of {}", run.got[0].len(), down.len());
        for t in &run.tcbs {
            prop_assert_eq!(t.state(), State::Closed);
        }
    }
}

#[test]
fn back_to_back_disorder_reordered_and_duplicated_segments() {
    REORDER.with(|r| r.set(true));
    let up = pattern(1 << 20, 0x33);
    let down = pattern(300_000, 0x44);
    for config in [
        Config::default(),
        Config {
            sack: false,
            timestamps: false,
            ..Config::default()
        },
    ] {
        let run = back_to_back(&config, [&up, &down], 29, Duration::from_millis(2));
        assert!(
            run.got[1] == up,
            "A → B ({} of {})",
            run.got[1].len(),
            up.len()
        );
        assert!(
            run.got[0] == down,
            "B → A ({} of {})",
            run.got[0].len(),
            down.len()
        );
        for t in &run.tcbs {
            assert_eq!(t.state(), State::Closed);
            assert!(t.counters().duplicate_segments > 0);
        }
    }
}

#[test]
fn back_to_back_moves_a_mebibyte_each_way() {
    let up = pattern(1 << 20, 0x11);
    let down = pattern(1 << 20, 0x77);
    let run = back_to_back(
        &Config::default(),
        [&up, &down],
        0,
        Duration::from_millis(1),
    );
    assert!(
        run.got[1] == up,
        "A → B byte-exact ({} of {})",
        run.got[1].len(),
        up.len()
    );
    assert!(
        run.got[0] == down,
        "B → A byte-exact ({} of {})",
        run.got[0].len(),
        down.len()
    );
    for t in &run.tcbs {
        assert_eq!(t.state(), State::Closed);
        assert_eq!(t.error(), None);
        assert_eq!(t.counters().retransmits, 0);
    }
    // TIME-WAIT's 60 s, and about 60 ms (30 round trips: slow start, a
    // delayed ACK at the end, the closes) for the transfer itself.
    assert!(run.end < Instant::from_millis(60_100), "took {}", run.end);
}

#[test]
fn back_to_back_survives_a_drop_every_nth_segment() {
    let up = pattern(1 << 20, 0x22);
    let down = pattern(1 << 20, 0x55);
    for (config, every) in [
        (Config::default(), 37),
        (
            Config {
                sack: false,
                timestamps: false,
                window_scale: false,
                ..Config::default()
            },
            23,
        ),
        (
            Config {
                cc: Algorithm::Cubic,
                mss: 1000,
                recv_buffer: 100_000,
                send_buffer: 30_000,
                ..Config::default()
            },
            11,
        ),
    ] {
        let run = back_to_back(&config, [&up, &down], every, Duration::from_millis(5));
        assert!(
            run.got[1] == up,
            "A → B ({} of {}) every {every}",
            run.got[1].len(),
            up.len()
        );
        assert!(
            run.got[0] == down,
            "B → A ({} of {}) every {every}",
            run.got[0].len(),
            down.len()
        );
        for t in &run.tcbs {
            assert_eq!(t.state(), State::Closed);
            assert!(t.counters().retransmits > 0);
        }
        // One way only, so that duplicate ACKs carry no data even
        // without SACK: losses are repaired by fast retransmit.
        let run = back_to_back(&config, [&up, &[]], every, Duration::from_millis(5));
        assert!(run.got[1] == up, "A → B alone every {every}");
        let c = run.tcbs[0].counters();
        assert!(c.fast_retransmits > 0, "{c:?}");
        if every > 20 {
            // At 1 loss in 11 the window rarely holds four segments, and
            // timeouts take over; at lighter loss they are the exception.
            assert!(c.rto_expiries < c.fast_retransmits, "{c:?}");
        }
    }
}

// ---- retransmission and congestion control ----

/// `n` full segments of data queued and sent at `at`; returns them.
#[track_caller]
fn send_segments(t: &mut Tcb, at: Instant, n: usize) -> Vec<Out> {
    assert_eq!(t.send(&vec![0xab; n * 1000]), n * 1000);
    let out: Vec<Out> = (0..n).map(|_| poll(t, at).expect("a segment")).collect();
    silence(t, at);
    out
}

#[test]
fn rto_fires_at_the_computed_instant_and_backs_off() {
    let mut t = established(&plain());
    // The handshake's 0 ms sample put the RTO at its 200 ms floor.
    send_segments(&mut t, ms(10), 3);
    assert_eq!(t.poll_timeout(), Some(ms(210)));
    t.handle_timeout(ms(209));
    silence(&mut t, ms(209));
    let mut at = 210;
    for backoff in [400, 800, 1600] {
        t.handle_timeout(ms(at));
        // Go-back-N with the loss window: one segment, the first.
        let o = poll(&mut t, ms(at)).expect("retransmission");
        assert_eq!(o.repr.seq_number, SeqNumber(ISS + 1));
        assert_eq!(o.data.len(), 1000);
        silence(&mut t, ms(at));
        at += backoff;
        assert_eq!(t.poll_timeout(), Some(ms(at)));
    }
    let c = t.counters();
    assert_eq!((c.rto_expiries, c.retransmits), (3, 3));
    assert_eq!(c.cwnd, 1000);
    assert_eq!(c.ssthresh, 2000, "half the 3000 in flight, at least 2 MSS");
    // An ACK of new data restores the computed RTO (Karn: no sample from
    // the retransmitted segment, and the backoff ends).
    t.handle_segment(ms(at + 5), &seg(IRS + 1, Some(ISS + 1001)));
    assert_eq!(t.counters().srtt_us, 0);
    assert_eq!(t.poll_timeout(), Some(ms(at + 5 + 200)));
    // Slow start from one segment: two go now.
    assert_eq!(
        poll(&mut t, ms(at + 5)).unwrap().repr.seq_number,
        SeqNumber(ISS + 1001)
    );
    assert_eq!(
        poll(&mut t, ms(at + 5)).unwrap().repr.seq_number,
        SeqNumber(ISS + 2001)
    );
    silence(&mut t, ms(at + 5));
}

#[test]
fn initial_rto_is_one_second_without_a_sample() {
    let syn = Repr {
        control: Control::Syn,
        max_seg_size: Some(1000),
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(&plain(), local(), remote(), &syn, ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    assert_eq!(t.poll_timeout(), Some(ms(1000)));
    t.handle_timeout(ms(1000));
    let o = poll(&mut t, ms(1000)).expect("SYN-ACK again");
    assert_eq!(o.repr.control, Control::Syn);
    assert_eq!(t.poll_timeout(), Some(ms(3000)));
    // The ACK of the retransmitted SYN-ACK gives no sample (Karn).
    t.handle_segment(ms(1100), &seg(IRS + 1, Some(ISS + 1)));
    assert_eq!(t.state(), State::Established);
    assert_eq!(t.counters().srtt_us, 0);
    send_segments(&mut t, ms(1100), 1);
    assert_eq!(t.poll_timeout(), Some(ms(2100)), "1 s, the backoff over");
}

#[test]
fn fast_retransmit_on_exactly_the_third_duplicate_ack_then_newreno() {
    let mut t = established(&plain());
    send_segments(&mut t, ms(10), 6);
    t.handle_segment(ms(20), &seg(IRS + 1, Some(ISS + 1001)));
    let dup = seg(IRS + 1, Some(ISS + 1001));
    t.handle_segment(ms(21), &dup);
    silence(&mut t, ms(21));
    t.handle_segment(ms(22), &dup);
    silence(&mut t, ms(22));
    t.handle_segment(ms(23), &dup);
    let o = poll(&mut t, ms(23)).expect("fast retransmit");
    assert_eq!(o.repr.seq_number, SeqNumber(ISS + 1001));
    assert_eq!(o.data.len(), 1000);
    silence(&mut t, ms(23));
    let c = t.counters();
    assert_eq!(c.fast_retransmits, 1);
    // FlightSize 5000: ssthresh 2500, cwnd 2500 + 3 · 1000.
    assert_eq!((c.ssthresh, c.cwnd), (2500, 5500));
    // A fourth duplicate inflates the window by one segment.
    t.handle_segment(ms(24), &dup);
    assert_eq!(t.counters().cwnd, 6500);
    // A partial ACK (below `recover` = ISS + 6001): the next hole goes.
    t.handle_segment(ms(30), &seg(IRS + 1, Some(ISS + 3001)));
    let o = poll(&mut t, ms(30)).expect("the next hole");
    assert_eq!(o.repr.seq_number, SeqNumber(ISS + 3001));
    assert_eq!(t.counters().fast_retransmits, 1, "still one recovery");
    assert_eq!(t.counters().retransmits, 2);
    // The full ACK ends recovery: min(ssthresh, max(flight, MSS) + MSS).
    t.handle_segment(ms(40), &seg(IRS + 1, Some(ISS + 6001)));
    assert_eq!(t.counters().cwnd, 2000);
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn duplicates_of_an_old_window_do_not_fast_retransmit_again() {
    let mut t = established(&plain());
    send_segments(&mut t, ms(10), 5);
    let dup = seg(IRS + 1, Some(ISS + 1));
    for i in 0..3 {
        t.handle_segment(ms(11 + i), &dup);
    }
    poll(&mut t, ms(13)).expect("fast retransmit");
    // The RTO fires anyway; recover = SND.MAX, so three more duplicates
    // of the same ACK are leftovers, not a new loss (RFC 6582 §4).
    let rto = t.poll_timeout().unwrap();
    t.handle_timeout(rto);
    poll(&mut t, rto).expect("timeout retransmission");
    for i in 0..3 {
        t.handle_segment(rto + Duration::from_millis(i), &dup);
    }
    assert_eq!(t.counters().fast_retransmits, 1);
}

#[test]
fn sacked_data_is_not_retransmitted() {
    let config = Config {
        sack: true,
        ..plain()
    };
    let syn = Repr {
        control: Control::Syn,
        sack_permitted: true,
        max_seg_size: Some(1000),
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(&config, local(), remote(), &syn, ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    t.handle_segment(ms(0), &seg(IRS + 1, Some(ISS + 1)));
    send_segments(&mut t, ms(10), 4);
    // The peer has segments 3 and 4, not 1 and 2.
    t.handle_segment(
        ms(20),
        &Repr {
            sack_ranges: [Some((ISS + 2001, ISS + 4001)), None, None],
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    t.handle_timeout(ms(210));
    assert_eq!(
        poll(&mut t, ms(210)).unwrap().repr.seq_number,
        SeqNumber(ISS + 1)
    );
    silence(&mut t, ms(210));
    t.handle_segment(ms(220), &seg(IRS + 1, Some(ISS + 1001)));
    let o = poll(&mut t, ms(220)).expect("segment 2");
    assert_eq!(o.repr.seq_number, SeqNumber(ISS + 1001));
    silence(&mut t, ms(220));
    t.handle_segment(ms(230), &seg(IRS + 1, Some(ISS + 4001)));
    assert_eq!(t.counters().bytes_out, 4000);
    assert_eq!(t.counters().retransmits, 2);
}

/// After an RTO the window is slow start's from SND.UNA, and data the
/// peer acknowledged selectively is neither resent nor counted in flight
/// (RFC 6675 §5.1): two segments of window repair two holes around one
/// the peer holds.
#[test]
fn after_an_rto_sacked_data_is_not_counted_in_flight() {
    let config = Config {
        sack: true,
        ..plain()
    };
    let syn = Repr {
        control: Control::Syn,
        sack_permitted: true,
        max_seg_size: Some(1000),
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(&config, local(), remote(), &syn, ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    t.handle_segment(ms(0), &seg(IRS + 1, Some(ISS + 1)));
    send_segments(&mut t, ms(10), 5);
    // The peer has segments 2 and 4; 1, 3 and 5 are lost.
    t.handle_segment(
        ms(20),
        &Repr {
            sack_ranges: [
                Some((ISS + 3001, ISS + 4001)),
                Some((ISS + 1001, ISS + 2001)),
                None,
            ],
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    t.handle_timeout(ms(210));
    assert_eq!(
        poll(&mut t, ms(210)).unwrap().repr.seq_number,
        SeqNumber(ISS + 1)
    );
    silence(&mut t, ms(210));
    t.handle_segment(
        ms(220),
        &Repr {
            sack_ranges: [Some((ISS + 3001, ISS + 4001)), None, None],
            ..seg(IRS + 1, Some(ISS + 2001))
        },
    );
    let sent: Vec<u32> = std::iter::from_fn(|| poll(&mut t, ms(220)))
        .map(|o| o.repr.seq_number.0 - ISS)
        .collect();
    assert_eq!(sent, [2001, 4001]);
}

#[test]
fn timestamps_give_samples_even_for_retransmissions() {
    let config = Config {
        timestamps: true,
        ..plain()
    };
    let syn = Repr {
        control: Control::Syn,
        max_seg_size: Some(1000),
        timestamp: Some((9, 0)),
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(&config, local(), remote(), &syn, ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    t.handle_timeout(ms(1000));
    let o = poll(&mut t, ms(1000)).unwrap();
    assert_eq!(o.repr.timestamp, Some((1000, 9)));
    // The echo names the retransmission: RTT 30 ms, not 1030.
    t.handle_segment(
        ms(1030),
        &Repr {
            timestamp: Some((10, 1000)),
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    assert_eq!(t.counters().srtt_us, 30_000);
    // Payload shrinks by the 12 bytes of the option.
    assert_eq!(t.send(&[1; 3000]), 3000);
    let o = poll(&mut t, ms(1030)).unwrap();
    assert_eq!(o.data.len(), 988);
    assert_eq!(o.repr.timestamp, Some((1030, 10)));
}

/// A connection with timestamps agreed, the peer's clock at 9 in its SYN
/// and at 10 in the ACK that completes the handshake.
fn established_with_timestamps() -> Tcb {
    let config = Config {
        timestamps: true,
        ..plain()
    };
    let syn = Repr {
        control: Control::Syn,
        max_seg_size: Some(1000),
        timestamp: Some((9, 0)),
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(&config, local(), remote(), &syn, ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    t.handle_segment(
        ms(0),
        &Repr {
            timestamp: Some((10, 0)),
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    assert_eq!(t.state(), State::Established);
    t
}

/// The `TSecr` of the ACK `t` sends now.
#[track_caller]
fn echoed(t: &mut Tcb, now: Instant) -> u32 {
    let o = poll(t, now).expect("an ACK");
    o.repr.timestamp.expect("a timestamp").1
}

/// RFC 7323 §4.3: the ACK of an out-of-order segment echoes the segment
/// before the hole; the ACK of the retransmission that fills it echoes the
/// retransmission, and so does the ACK of a retransmission of data already
/// held (our first ACK of it lost) — never the 32 s old segment that first
/// filled the hole, which the sender would take as its RTT.
#[test]
fn the_ack_of_a_retransmission_echoes_the_retransmission() {
    let mut t = established_with_timestamps();
    let data = |seq: u32, ts: u32, bytes: &'static [u8]| Repr {
        timestamp: Some((ts, 0)),
        ..with_data(seg(seq, Some(ISS + 1)), bytes)
    };
    t.handle_segment(ms(1), &data(IRS + 1, 100, b"abc"));
    assert_eq!(echoed(&mut t, ms(1)), 100);
    // "def" is lost; "ghi" arrives out of order.
    t.handle_segment(ms(2), &data(IRS + 7, 120, b"ghi"));
    assert_eq!(echoed(&mut t, ms(2)), 100);
    // The retransmission fills the hole.
    t.handle_segment(ms(500), &data(IRS + 4, 500, b"def"));
    assert_eq!(t.received(), b"abcdefghi");
    assert_eq!(echoed(&mut t, ms(500)), 500);
    // That ACK was lost; the sender retransmits "def" 32 s later.
    t.handle_segment(ms(32_500), &data(IRS + 4, 32_500, b"def"));
    assert_eq!(t.counters().duplicate_segments, 1);
    assert_eq!(echoed(&mut t, ms(32_500)), 32_500);
    // An old duplicate from the network (older TSval) changes nothing.
    t.handle_segment(ms(32_501), &data(IRS + 1, 100, b"abc"));
    assert_eq!(echoed(&mut t, ms(32_501)), 32_500);
    // Out of order again: the echo stays with the in-order segment.
    t.handle_segment(ms(32_502), &data(IRS + 13, 32_502, b"mno"));
    assert_eq!(echoed(&mut t, ms(32_502)), 32_500);
}

/// An echo older than the RTO ceiling names a transmission retransmitted
/// since: it is no RTT sample (it would pin the RTO at the ceiling).
#[test]
fn an_echo_older_than_the_rto_ceiling_is_no_sample() {
    let mut t = established_with_timestamps();
    assert_eq!(t.send(&[1; 500]), 500);
    poll(&mut t, ms(10)).expect("data");
    t.handle_segment(
        ms(40),
        &Repr {
            timestamp: Some((11, 10)),
            ..seg(IRS + 1, Some(ISS + 501))
        },
    );
    // The handshake's 0 ms sample, then 30 ms: 3.75 ms.
    assert_eq!(t.counters().srtt_us, 3_750);
    assert_eq!(t.send(&[1; 500]), 500);
    poll(&mut t, ms(100_000)).expect("data");
    // Retransmitted (Karn: no timed segment), then acknowledged with an
    // echo of 30 s.
    let rto = t.poll_timeout().expect("the RTO");
    t.handle_timeout(rto);
    poll(&mut t, rto).expect("retransmission");
    t.handle_segment(
        rto + Duration::from_millis(30),
        &Repr {
            timestamp: Some((12, 30_000)),
            ..seg(IRS + 1, Some(ISS + 1001))
        },
    );
    assert_eq!(t.counters().srtt_us, 3_750, "70 s is not an RTT");
}

/// With timestamps a full segment carries the MSS less 12 bytes, and the
/// congestion window counts such segments: the one-segment window after an
/// RTO retransmits one full segment, not a full one and a 12-byte runt.
#[test]
fn a_retransmission_after_an_rto_is_one_full_segment_with_timestamps() {
    let mut t = established_with_timestamps();
    assert_eq!(t.send(&[1; 3000]), 3000);
    let sizes: Vec<usize> = std::iter::from_fn(|| poll(&mut t, ms(10)))
        .map(|o| o.data.len())
        .collect();
    assert_eq!(sizes, [988, 988, 988, 36]);
    let rto = t.poll_timeout().expect("the RTO");
    t.handle_timeout(rto);
    let o = poll(&mut t, rto).expect("retransmission");
    assert_eq!((o.repr.seq_number, o.data.len()), (SeqNumber(ISS + 1), 988));
    silence(&mut t, rto);
}

#[test]
fn zero_window_probes_back_off_until_the_window_opens() {
    let mut t = established(&plain());
    t.handle_segment(
        ms(1),
        &Repr {
            window_len: 0,
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    assert_eq!(t.send(b"abc"), 3);
    silence(&mut t, ms(2));
    // The persist timer: the RTO (200 ms), doubling per probe.
    assert_eq!(t.poll_timeout(), Some(ms(202)));
    t.handle_timeout(ms(202));
    expect(&mut t, ms(202), ours(ISS + 1, Some(IRS + 1)), b"a");
    assert_eq!(t.poll_timeout(), Some(ms(602)));
    // The peer's answer: still closed.
    t.handle_segment(
        ms(203),
        &Repr {
            window_len: 0,
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    assert_eq!(t.poll_timeout(), Some(ms(602)));
    t.handle_timeout(ms(602));
    expect(&mut t, ms(602), ours(ISS + 1, Some(IRS + 1)), b"a");
    assert_eq!(t.poll_timeout(), Some(ms(1402)));
    assert_eq!(t.counters().window_probes, 2);
    // It opens: the data goes, the persist timer stops.
    t.handle_segment(
        ms(700),
        &Repr {
            window_len: 1000,
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    expect(
        &mut t,
        ms(700),
        Repr {
            control: Control::Psh,
            ..ours(ISS + 1, Some(IRS + 1))
        },
        b"abc",
    );
    assert_eq!(
        t.poll_timeout(),
        Some(ms(900)),
        "the RTO, not the persist timer"
    );
}

#[test]
fn our_zero_window_and_the_update_after_consume() {
    let config = Config {
        recv_buffer: 3000,
        ..plain()
    };
    let mut t = established(&config);
    for i in 0..3 {
        t.handle_segment(
            ms(1),
            &with_data(seg(IRS + 1 + i * 1000, Some(ISS + 1)), &[5; 1000]),
        );
    }
    let o = poll(&mut t, ms(1)).unwrap();
    assert_eq!(
        (o.repr.ack_number, o.repr.window_len),
        (Some(SeqNumber(IRS + 3001)), 0)
    );
    // A probe beyond the zero window is answered, its byte dropped.
    t.handle_segment(ms(2), &with_data(seg(IRS + 3001, Some(ISS + 1)), &[6]));
    let o = poll(&mut t, ms(2)).unwrap();
    assert_eq!(
        (o.repr.ack_number, o.repr.window_len),
        (Some(SeqNumber(IRS + 3001)), 0)
    );
    // Consuming under half the buffer: no update yet; past it: one.
    t.consume(1000);
    silence(&mut t, ms(3));
    t.consume(1000);
    let o = poll(&mut t, ms(3)).expect("window update");
    assert_eq!(o.repr.window_len, 2000);
}

#[test]
fn keepalive_probes_then_gives_up() {
    let config = Config {
        keepalive: Some(Duration::from_secs(10)),
        keepalive_interval: Duration::from_secs(1),
        keepalive_probes: 2,
        ..plain()
    };
    let mut t = established(&config);
    assert_eq!(t.poll_timeout(), Some(ms(10_000)));
    t.handle_timeout(ms(10_000));
    expect(&mut t, ms(10_000), ours(ISS, Some(IRS + 1)), &[]);
    // An answer restarts the idle time.
    t.handle_segment(ms(10_010), &seg(IRS + 1, Some(ISS + 1)));
    assert_eq!(t.poll_timeout(), Some(ms(20_010)));
    t.handle_timeout(ms(20_010));
    expect(&mut t, ms(20_010), ours(ISS, Some(IRS + 1)), &[]);
    t.handle_timeout(ms(21_010));
    expect(&mut t, ms(21_010), ours(ISS, Some(IRS + 1)), &[]);
    assert_eq!(t.poll_timeout(), Some(ms(22_010)));
    t.handle_timeout(ms(22_010));
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.error(), Some(Error::TimedOut));
}

#[test]
fn user_timeout_aborts_unacknowledged_data() {
    let config = Config {
        user_timeout: Duration::from_secs(1),
        ..plain()
    };
    let mut t = established(&config);
    send_segments(&mut t, ms(0), 1);
    // RTOs at 200 and 600 ms; the user timeout at exactly 1 s.
    for at in [200, 600] {
        assert_eq!(t.poll_timeout(), Some(ms(at)));
        t.handle_timeout(ms(at));
        poll(&mut t, ms(at)).unwrap();
    }
    assert_eq!(t.poll_timeout(), Some(ms(1000)));
    t.handle_timeout(ms(1000));
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.error(), Some(Error::TimedOut));
    silence(&mut t, ms(1000));
}

#[test]
fn an_idle_connection_costs_under_4_kib() {
    let t = established(&Config::default());
    let held = size_of::<Tcb>() + t.send.capacity() + t.recv.capacity();
    assert!(held < 4096, "{held} bytes");
    let mut t = t;
    t.send(b"x");
    assert!(t.send.capacity() <= 4096, "the first allocation is small");
}

#[test]
fn counters_count_segments_both_ways() {
    let mut t = established(&plain());
    t.handle_segment(ms(1), &with_data(seg(IRS + 1, Some(ISS + 1)), b"abc"));
    poll(&mut t, ms(1)).unwrap();
    let c = t.counters();
    // In: SYN, ACK, data. Out: SYN-ACK, ACK.
    assert_eq!((c.segments_in, c.segments_out), (3, 2));
}

// ---- never panics ----

/// (control, seq, ack, window, payload length, one SACK block, ms later)
type Fuzzed = (u8, u32, Option<u32>, u16, usize, Option<(u32, u32)>, u64);

fn any_segment() -> impl Strategy<Value = Fuzzed> {
    (
        0u8..5,
        prop_oneof![IRS - 10..IRS + 70_000, any::<u32>()],
        prop_oneof![
            Just(None),
            (ISS - 10..ISS + 70_000).prop_map(Some),
            any::<u32>().prop_map(Some)
        ],
        any::<u16>(),
        0usize..1500,
        prop_oneof![
            Just(None),
            (ISS..ISS + 70_000, 0u32..5000).prop_map(|(l, n)| Some((l, l.wrapping_add(n))))
        ],
        0u64..3000,
    )
}

proptest! {
    #[test]
    fn random_segments_never_panic(
        opening in 0u8..3,
        segments in proptest::collection::vec(any_segment(), 1..40),
        writes in proptest::collection::vec(0usize..5000, 0..5),
    ) {
        let data = vec![1u8; 1500];
        let config = Config { recv_buffer: 20_000, ..Config::default() };
        let mut t = match opening {
            0 => Tcb::connect(&config, local(), remote(), ISS, ms(0)),
            1 => established(&config),
            _ => {
                let syn = Repr { control: Control::Syn, window_scale: Some(14), sack_permitted: true, timestamp: Some((1, 0)), ..seg(IRS, None) };
                Tcb::accept(&config, local(), remote(), &syn, ISS, ms(0))
            }
        };
        let mut now = ms(0);
        let mut buf = [0u8; BUF];
        for (i, (flags, seq, ack, window, len, sack, dt)) in segments.into_iter().enumerate() {
            now += Duration::from_millis(dt);
            let control = [Control::None, Control::Psh, Control::Syn, Control::Fin, Control::Rst][usize::from(flags)];
            let repr = Repr {
                control,
                seq_number: SeqNumber(seq),
                ack_number: ack.map(SeqNumber),
                window_len: window,
                sack_ranges: [sack, None, None],
                timestamp: (i % 2 == 0).then_some((u32::try_from(i).unwrap_or(0), 5)),
                payload: &data[..len],
                ..seg(0, None)
            };
            t.handle_segment(now, &repr);
            if let Some(&w) = writes.get(i) {
                t.send(&vec![2; w]);
            }
            if i == 20 { t.close(); }
            // Spurious calls are no-ops; due ones fire.
            t.handle_timeout(now);
            let mut n = 0;
            while t.poll_segment(now, &mut buf).is_some() {
                n += 1;
                prop_assert!(n < 1000, "poll_segment must run dry");
            }
            let r = t.received().len();
            t.consume(r / 2);
            let _ = t.counters();
        }
    }
}

#[test]
fn two_engines_open_simultaneously_and_close_simultaneously() {
    let config = Config::default();
    let mut a = Tcb::connect(&config, local(), remote(), ISS, ms(0));
    let mut b = Tcb::connect(&config, remote(), local(), IRS, ms(0));
    let mut buf_a = [0u8; BUF];
    let mut buf_b = [0u8; BUF];
    let mut now = ms(0);
    for _ in 0..10 {
        // Both send whatever they have at once, so the SYNs (and later
        // the FINs) cross.
        let from_a = a.poll_segment(now, &mut buf_a);
        let from_b = b.poll_segment(now, &mut buf_b);
        now += Duration::from_millis(1);
        if let Some(n) = from_a {
            b.handle_segment(
                now,
                &Repr::parse(&Packet::new_checked(&buf_a[..n]).unwrap()).unwrap(),
            );
        }
        if let Some(n) = from_b {
            a.handle_segment(
                now,
                &Repr::parse(&Packet::new_checked(&buf_b[..n]).unwrap()).unwrap(),
            );
        }
        if a.state() == State::Established && b.state() == State::Established {
            break;
        }
    }
    assert_eq!(
        (a.state(), b.state()),
        (State::Established, State::Established)
    );
    assert_eq!(a.mss(), 1460);
    a.close();
    b.close();
    for _ in 0..10 {
        let from_a = a.poll_segment(now, &mut buf_a);
        let from_b = b.poll_segment(now, &mut buf_b);
        now += Duration::from_millis(1);
        if let Some(n) = from_a {
            b.handle_segment(
                now,
                &Repr::parse(&Packet::new_checked(&buf_a[..n]).unwrap()).unwrap(),
            );
        }
        if let Some(n) = from_b {
            a.handle_segment(
                now,
                &Repr::parse(&Packet::new_checked(&buf_b[..n]).unwrap()).unwrap(),
            );
        }
        if from_a.is_none() && from_b.is_none() {
            break;
        }
    }
    // Both went through CLOSING to TIME-WAIT.
    assert_eq!((a.state(), b.state()), (State::TimeWait, State::TimeWait));
}

#[test]
fn sack_recovery_repairs_a_second_hole_without_waiting_for_a_partial_ack() {
    let config = Config {
        sack: true,
        ..plain()
    };
    let syn = Repr {
        control: Control::Syn,
        sack_permitted: true,
        max_seg_size: Some(1000),
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(&config, local(), remote(), &syn, ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    t.handle_segment(ms(0), &seg(IRS + 1, Some(ISS + 1)));
    send_segments(&mut t, ms(10), 8);
    // Segments 1 and 3 are lost; 2, 4, 5, 6 arrive.
    let sacks = [
        [Some((ISS + 1001, ISS + 2001)), None, None],
        [
            Some((ISS + 3001, ISS + 4001)),
            Some((ISS + 1001, ISS + 2001)),
            None,
        ],
        [
            Some((ISS + 3001, ISS + 5001)),
            Some((ISS + 1001, ISS + 2001)),
            None,
        ],
        [
            Some((ISS + 3001, ISS + 6001)),
            Some((ISS + 1001, ISS + 2001)),
            None,
        ],
    ];
    let mut sent = Vec::new();
    for (i, sack_ranges) in sacks.into_iter().enumerate() {
        let at = ms(20 + i as u64);
        t.handle_segment(
            at,
            &Repr {
                sack_ranges,
                ..seg(IRS + 1, Some(ISS + 1))
            },
        );
        while let Some(o) = poll(&mut t, at) {
            sent.push((i, o.repr.seq_number.0 - ISS));
        }
    }
    // The third duplicate repairs segment 1, the fourth segment 3.
    assert_eq!(sent, [(2, 1), (3, 2001)]);
    assert_eq!(t.counters().fast_retransmits, 1);
    assert_eq!(t.counters().retransmits, 2);
}

/// RFC 3042 limited transmit: the first two duplicate ACKs each send one
/// new segment beyond the window (so a small window still gets its third
/// duplicate); the third retransmits.
#[test]
fn limited_transmit_sends_new_data_on_the_first_two_duplicates() {
    let mut t = established(&plain());
    assert_eq!(t.send(&[7; 12_000]), 12_000);
    for _ in 0..10 {
        poll(&mut t, ms(10)).expect("the initial window");
    }
    silence(&mut t, ms(10));
    let mut sent = Vec::new();
    for i in 0..3 {
        let at = ms(20 + i);
        t.handle_segment(at, &seg(IRS + 1, Some(ISS + 1)));
        while let Some(o) = poll(&mut t, at) {
            sent.push((i, o.repr.seq_number.0 - ISS));
        }
    }
    assert_eq!(sent, [(0, 10_001), (1, 11_001), (2, 1)]);
    assert_eq!(t.counters().fast_retransmits, 1);
}

/// A retransmission lost again is seen without a timeout: data sent after
/// it arrives (selectively acknowledged three segments deep) while its
/// hole stays, so the
/// hole goes again in a new round (RFC 8985's idea, by sequence number).
#[test]
fn a_lost_fast_retransmission_is_repaired_without_an_rto() {
    let config = Config {
        sack: true,
        ..plain()
    };
    let syn = Repr {
        control: Control::Syn,
        sack_permitted: true,
        max_seg_size: Some(1000),
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(&config, local(), remote(), &syn, ISS, ms(0));
    poll(&mut t, ms(0)).unwrap();
    t.handle_segment(ms(0), &seg(IRS + 1, Some(ISS + 1)));
    assert_eq!(t.send(&vec![7; 40_000]), 40_000);
    let mut high = ISS + 1;
    while let Some(o) = poll(&mut t, ms(10)) {
        high = o.repr.seq_number.0 + 1000;
    }
    // Segment 1 is lost, and so is every retransmission of it but the
    // second; all else arrives and is SACKed one segment per ACK.
    let mut sacked_to = ISS + 1001;
    let mut rexmits_of_1 = 0;
    for i in 0..40 {
        if sacked_to >= high {
            break;
        }
        sacked_to += 1000;
        let at = ms(20 + i);
        t.handle_segment(
            at,
            &Repr {
                sack_ranges: [Some((ISS + 1001, sacked_to)), None, None],
                ..seg(IRS + 1, Some(ISS + 1))
            },
        );
        while let Some(o) = poll(&mut t, at) {
            let seq = o.repr.seq_number.0;
            if seq == ISS + 1 {
                rexmits_of_1 += 1;
            } else {
                high = high.max(seq + 1000);
            }
        }
        if rexmits_of_1 == 2 {
            break;
        }
    }
    assert_eq!(rexmits_of_1, 2, "the lost retransmission went again");
    assert_eq!(t.counters().rto_expiries, 0);
    assert_eq!(t.counters().fast_retransmits, 1);
}

#[test]
fn an_ack_older_than_any_window_gets_a_challenge_ack() {
    let mut t = established(&plain());
    // MAX.SND.WND is 64 000: an ACK further back is forged or ancient.
    t.handle_segment(
        ms(1),
        &with_data(seg(IRS + 1, Some(ISS.wrapping_sub(70_000))), b"zz"),
    );
    expect(&mut t, ms(1), ours(ISS + 1, Some(IRS + 1)), &[]);
    assert_eq!(t.counters().challenge_acks, 1);
    assert_eq!(t.received(), b"", "its data is dropped");
    // Within the window behind SND.UNA: an old duplicate, accepted.
    t.handle_segment(ms(2), &with_data(seg(IRS + 1, Some(ISS - 100)), b"ok"));
    assert_eq!(t.received(), b"ok");
}

#[test]
fn an_old_segment_does_not_move_the_window() {
    let mut t = established(&plain());
    t.handle_segment(ms(1), &with_data(seg(IRS + 1, Some(ISS + 1)), b"abc"));
    // A reordered earlier ACK with a stale window is behind RCV.NXT:
    // dropped (and answered), its window ignored.
    t.handle_segment(
        ms(2),
        &Repr {
            window_len: 10,
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    assert_eq!(t.peer_window(), 64_000);
    t.handle_segment(
        ms(3),
        &Repr {
            window_len: 10,
            ..seg(IRS + 4, Some(ISS + 1))
        },
    );
    assert_eq!(t.peer_window(), 10);
}

#[test]
fn a_fin_beyond_a_hole_waits_for_the_hole() {
    let mut t = established(&plain());
    t.handle_segment(
        ms(1),
        &Repr {
            control: Control::Fin,
            ..with_data(seg(IRS + 4, Some(ISS + 1)), b"def")
        },
    );
    assert_eq!(t.state(), State::Established);
    expect(&mut t, ms(1), ours(ISS + 1, Some(IRS + 1)), &[]);
    t.handle_segment(ms(2), &with_data(seg(IRS + 1, Some(ISS + 1)), b"abc"));
    assert_eq!(t.state(), State::CloseWait);
    assert_eq!(t.received(), b"abcdef");
    expect(
        &mut t,
        ms(2),
        Repr {
            window_len: 64_000 - 6,
            ..ours(ISS + 1, Some(IRS + 8))
        },
        &[],
    );
    t.consume(6);
    assert!(t.fin_received());
}

#[test]
fn time_wait_gives_the_buffers_back() {
    static DATA: [u8; 1000] = [4; 1000];
    let mut t = established(&plain());
    assert_eq!(t.send(&vec![3; 20_000]), 20_000);
    while poll(&mut t, ms(1)).is_some() {}
    t.handle_segment(ms(2), &seg(IRS + 1, Some(ISS + 10_001)));
    while poll(&mut t, ms(2)).is_some() {}
    assert!(t.send.capacity() >= 20_000);
    t.handle_segment(ms(3), &seg(IRS + 1, Some(ISS + 20_001)));
    for i in 0..20 {
        t.handle_segment(
            ms(4),
            &with_data(seg(IRS + 1 + i * 1000, Some(ISS + 20_001)), &DATA),
        );
    }
    assert!(t.recv.capacity() >= 20_000);
    t.close();
    while poll(&mut t, ms(5)).is_some() {}
    t.handle_segment(ms(6), &seg(IRS + 20_001, Some(ISS + 20_002)));
    assert_eq!(t.state(), State::FinWait2);
    assert_eq!(t.send.capacity(), 0, "nothing more to send");
    t.handle_segment(
        ms(7),
        &Repr {
            control: Control::Fin,
            ..seg(IRS + 20_001, Some(ISS + 20_002))
        },
    );
    assert_eq!(t.state(), State::TimeWait);
    assert!(t.recv.capacity() > 0, "20 000 bytes still to be read");
    let mut read = 0;
    while !t.received().is_empty() {
        let n = t.received().len();
        read += n;
        t.consume(n);
    }
    assert_eq!(read, 20_000);
    assert!(t.fin_received());
    assert_eq!(t.recv.capacity(), 0);
}

#[test]
fn a_burst_carries_whole_segments_up_to_max_burst_when_the_peer_mss_is_ours() {
    let config = Config {
        max_burst: 3_500,
        ..plain()
    };
    let mut t = established(&config);
    t.handle_segment(
        ms(1),
        &Repr {
            window_len: 60_000,
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    let data = vec![7u8; 10_000];
    assert_eq!(t.send(&data), 10_000);
    let mut sizes = Vec::new();
    for _ in 0..20 {
        let mut buf = vec![0u8; 8_192];
        let Some(n) = t.poll_segment(ms(2), &mut buf) else {
            break;
        };
        let packet = Packet::new_checked(&buf[..n]).unwrap();
        sizes.push(Repr::parse(&packet).unwrap().payload.len());
    }
    // The congestion window (initial: 10 × 1000) allows all 10 000 bytes:
    // bursts of 3 whole MSS (3 000 of the 3 500), then the rest.
    assert_eq!(sizes, [3_000, 3_000, 3_000, 1_000]);

    // A peer MSS below ours: one MSS a segment, whatever max_burst says.
    let syn = Repr {
        control: Control::Syn,
        max_seg_size: Some(500),
        ..seg(IRS, None)
    };
    let mut t = Tcb::accept(&config, local(), remote(), &syn, ISS, ms(0));
    assert!(poll(&mut t, ms(0)).is_some(), "SYN-ACK");
    t.handle_segment(ms(0), &seg(IRS + 1, Some(ISS + 1)));
    assert_eq!(t.send(&data), 10_000);
    let first = poll(&mut t, ms(1)).unwrap();
    assert_eq!(first.data.len(), 500);
}

#[test]
fn a_burst_short_of_the_window_stops_at_a_segment_boundary() {
    let config = Config {
        max_burst: 64_000,
        ..plain()
    };
    let mut t = established(&config);
    t.handle_segment(
        ms(1),
        &Repr {
            window_len: 2_500,
            ..seg(IRS + 1, Some(ISS + 1))
        },
    );
    assert_eq!(t.send(&[1u8; 5_000]), 5_000);
    let mut buf = vec![0u8; 70_000];
    let n = t.poll_segment(ms(2), &mut buf).unwrap();
    let packet = Packet::new_checked(&buf[..n]).unwrap();
    assert_eq!(
        Repr::parse(&packet).unwrap().payload.len(),
        2_000,
        "no 500-byte runt"
    );
}
