//! The stack driven byte by byte in virtual time: what the kernel would
//! write into the device, and what the stack writes back.

use super::fragment;
use super::reassembly::{Assembly, FragKey, REASSEMBLY_TIMEOUT, Reassembler};
use super::*;
use crate::proto::proxy::impair::ImpairConfig;
use crate::proto::testing::{at, cx, drain_datagrams};
use crate::proto::{DatagramInput, DatagramSession, Driven};
use crate::time::{Duration, Instant};
use crate::wire::icmp;
use crate::wire::ipv4::{self, Protocol};

const US: [u8; 4] = [192, 0, 2, 1];
const KERNEL: [u8; 4] = [192, 0, 2, 2];

/// The Internet checksum, written out again here so the tests do not
/// trust the codec they exercise.
fn csum(data: &[u8]) -> [u8; 2] {
    let mut sum = 0u32;
    for pair in data.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        sum += hi | pair.get(1).map_or(0, |&b| u32::from(b));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !u16::try_from(sum).unwrap();
    c.to_be_bytes()
}

/// An IPv4 datagram, byte by byte: DF clear, offset 0 unless `frag`
/// (MF, offset in bytes) says otherwise.
fn ip(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ident: u16,
    frag: (bool, usize),
    payload: &[u8],
) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap().to_be_bytes();
    let flags = u16::from(frag.0) << 13 | u16::try_from(frag.1 / 8).unwrap();
    let mut h = vec![0x45, 0, total[0], total[1]];
    h.extend(ident.to_be_bytes());
    h.extend(flags.to_be_bytes());
    h.extend([64, proto, 0, 0]);
    h.extend(src);
    h.extend(dst);
    let c = csum(&h);
    h[10..12].copy_from_slice(&c);
    h.extend_from_slice(payload);
    h
}

/// An ICMP echo (type 8 request, 0 reply).
fn echo(kind: u8, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0];
    m.extend(ident.to_be_bytes());
    m.extend(seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = csum(&m);
    m[2..4].copy_from_slice(&c);
    m
}

/// A UDP datagram from `src` to `dst` with its pseudo-header checksum.
fn udp_bytes(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + data.len()).unwrap();
    let mut u = Vec::new();
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend(len.to_be_bytes());
    u.extend([0, 0]);
    u.extend_from_slice(data);
    let mut pseudo = Vec::new();
    pseudo.extend(src);
    pseudo.extend(dst);
    pseudo.extend([0, 17]);
    pseudo.extend(len.to_be_bytes());
    pseudo.extend_from_slice(&u);
    let mut c = csum(&pseudo);
    if c == [0, 0] {
        c = [0xff, 0xff];
    }
    u[6..8].copy_from_slice(&c);
    u
}

/// `payload` cut into fragments of one datagram for `mtu`.
fn fragments(proto: u8, ident: u16, payload: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    fragment::pieces(payload.len(), 20, mtu)
        .map(|p| {
            let bytes = &payload[p.offset..p.offset + p.len];
            ip(KERNEL, US, proto, ident, (p.more, p.offset), bytes)
        })
        .collect()
}

fn stack(config: &StackConfig) -> Stack {
    Stack::new(*config).unwrap()
}

fn feed(s: &mut Stack, now: Instant, packet: &[u8]) {
    s.handle_input(
        &mut cx(now, None),
        DatagramInput::Packet {
            endpoint: EndpointId::HOME,
            payload: packet,
        },
    );
}

/// Every datagram written at `now`, by endpoint.
fn out(s: &mut Stack, now: Instant) -> Vec<(EndpointId, Vec<u8>)> {
    drain_datagrams(s, now)
        .into_iter()
        .map(|(t, d)| {
            assert_eq!(t.to, None, "a device has no addresses outside the packet");
            (t.endpoint, d)
        })
        .collect()
}

/// Only the datagrams for the device.
fn device(s: &mut Stack, now: Instant) -> Vec<Vec<u8>> {
    out(s, now)
        .into_iter()
        .filter(|(e, _)| *e == EndpointId::HOME)
        .map(|(_, d)| d)
        .collect()
}

/// Reassembles what the stack sent as one datagram: (its first header,
/// its whole payload), checking every fragment's header checksum, MTU
/// and identification.
fn whole(packets: &[Vec<u8>], mtu: usize) -> (Vec<u8>, Vec<u8>) {
    let mut r = Reassembler::new();
    let mut done = None;
    let first_ident = u16::from_be_bytes([packets[0][4], packets[0][5]]);
    for p in packets {
        assert!(p.len() <= mtu, "{} > MTU {mtu}", p.len());
        assert_eq!(csum(&p[..20]), [0, 0], "header checksum");
        let packet = ipv4::Packet::new_checked(&p[..]).unwrap();
        assert_eq!(
            packet.ident(),
            first_ident,
            "one identification per datagram"
        );
        let key = FragKey {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: u8::from(packet.protocol()),
            ident: packet.ident(),
        };
        let a = r.handle_fragment(
            at(0),
            key,
            usize::from(packet.frag_offset()),
            packet.more_frags(),
            packet.payload(),
        );
        if let Assembly::Complete(payload) = a {
            done = Some((p[..20].to_vec(), payload));
        }
    }
    done.expect("the fragments make a whole datagram")
}

#[test]
fn a_ping_is_answered_byte_for_byte() {
    let mut s = stack(&StackConfig::default());
    let data: Vec<u8> = (0x10..0x48).collect();
    let request = ip(
        KERNEL,
        US,
        1,
        0x4d2e,
        (false, 0),
        &echo(8, 0x002a, 1, &data),
    );
    feed(&mut s, at(1), &request);
    let sent = out(&mut s, at(1));
    // The stack's first datagram carries identification 1.
    let expected = ip(US, KERNEL, 1, 1, (false, 0), &echo(0, 0x002a, 1, &data));
    assert_eq!(sent, [(EndpointId::HOME, expected)]);
    let c = s.counters();
    assert_eq!((c.datagrams_in, c.datagrams_out, c.echo_replies), (1, 1, 1));
    // The owner's handle sees the same, while the stack is boxed away.
    let handle = s.shared_counters();
    assert_eq!(handle.get(), c);
    let mut boxed: Box<dyn DatagramSession> = Box::new(s);
    boxed.handle_input(
        &mut cx(at(2), None),
        DatagramInput::Packet {
            endpoint: EndpointId::HOME,
            payload: &request,
        },
    );
    assert_eq!(handle.get().echo_replies, 2);
    assert_eq!(boxed.poll_timeout(), None);
}

#[test]
fn a_large_ping_is_reassembled_and_its_reply_fragmented() {
    for mtu in [1_500, 576, 68] {
        let mut s = stack(&StackConfig {
            mtu,
            ..StackConfig::default()
        });
        let data: Vec<u8> = (0..4_000u32)
            .map(|i| u8::try_from(i % 199).unwrap())
            .collect();
        let request = echo(8, 7, 3, &data);
        let mut frags = fragments(1, 99, &request, 1_500);
        frags.reverse();
        for f in &frags {
            feed(&mut s, at(5), f);
        }
        let sent = device(&mut s, at(5));
        let pieces = (4_008usize).div_ceil((mtu - 20) & !7);
        assert_eq!(sent.len(), pieces, "MTU {mtu}");
        let (header, payload) = whole(&sent, mtu);
        assert_eq!(&header[12..20], [US, KERNEL].concat());
        assert_eq!(payload, echo(0, 7, 3, &data));
        let c = s.counters();
        assert_eq!((c.fragments_in, c.reassembled), (3, 1));
        assert_eq!(c.fragments_sent, pieces as u64);
    }
}

#[test]
fn udp_on_7007_echoes_any_legal_size() {
    let mut s = stack(&StackConfig::default());
    for (ident, len) in [
        (1u16, 0usize),
        (2, 1),
        (3, 1_472),
        (4, 1_473),
        (5, 8_000),
        (6, 65_507),
    ] {
        let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let datagram = udp_bytes(KERNEL, US, 40_000, ECHO_PORT, &data);
        for f in fragments(17, ident, &datagram, 1_500) {
            feed(&mut s, at(9), &f);
        }
        let sent = device(&mut s, at(9));
        let (header, payload) = whole(&sent, 1_500);
        assert_eq!(header[9], 17);
        assert_eq!(
            payload,
            udp_bytes(US, KERNEL, ECHO_PORT, 40_000, &data),
            "{len}"
        );
    }
    assert_eq!(s.counters().udp_echoed, 6);
    // 65 507 + 8 + 20 bytes at MTU 1500: 45 fragments.
    assert!(s.counters().fragments_sent >= 45);
}

#[test]
fn udp_to_a_closed_port_gets_a_port_unreachable_quoting_it() {
    let mut s = stack(&StackConfig::default());
    let data = b"hello, is anyone there?";
    let probe = ip(
        KERNEL,
        US,
        17,
        77,
        (false, 0),
        &udp_bytes(KERNEL, US, 5_555, 9, data),
    );
    feed(&mut s, at(2), &probe);
    let sent = device(&mut s, at(2));
    let mut error = vec![3, 3, 0, 0, 0, 0, 0, 0];
    error.extend_from_slice(&probe[..28]);
    let c = csum(&error);
    error[2..4].copy_from_slice(&c);
    assert_eq!(sent, [ip(US, KERNEL, 1, 1, (false, 0), &error)]);
    // A reassembled datagram is quoted under a rebuilt header.
    let big = udp_bytes(KERNEL, US, 5_555, 9, &[7; 3_000]);
    for f in fragments(17, 78, &big, 1_500) {
        feed(&mut s, at(3), &f);
    }
    let sent = device(&mut s, at(3));
    let reply = icmp::Packet::new_checked(&sent[0][20..]).unwrap();
    let icmp::Repr::DstUnreachable { code, original } = icmp::Repr::parse(&reply).unwrap() else {
        panic!("not an unreachable");
    };
    assert_eq!(code, icmp::PORT_UNREACHABLE);
    let quoted = ipv4::Packet::new_unchecked(original);
    assert_eq!((quoted.ident(), quoted.protocol()), (78, Protocol::Udp));
    assert_eq!(&original[20..], &big[..8]);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let mut s = stack(&StackConfig::default());
    let probe = ip(
        KERNEL,
        US,
        17,
        1,
        (false, 0),
        &udp_bytes(KERNEL, US, 1, 2, b"x"),
    );
    for _ in 0..80 {
        feed(&mut s, at(100), &probe);
    }
    assert_eq!(device(&mut s, at(100)).len(), ICMP_ERROR_BURST as usize);
    assert_eq!(
        s.counters().icmp_rate_limited,
        80 - u64::from(ICMP_ERROR_BURST)
    );
    feed(&mut s, at(101), &probe);
    assert_eq!(device(&mut s, at(101)).len(), 1);
}

#[test]
fn bad_datagrams_are_dropped_and_counted() {
    let mut s = stack(&StackConfig::default());
    let ping = ip(KERNEL, US, 1, 5, (false, 0), &echo(8, 1, 1, b"abcd"));
    let mut bad_sum = ping.clone();
    bad_sum[8] = 63; // TTL changed, checksum not.
    let mut version = ping.clone();
    version[0] = 0x65;
    let mut ihl = ping.clone();
    ihl[0] = 0x44;
    let short = ping[..ping.len() - 1].to_vec();
    let mut ttl0 = ip(KERNEL, US, 1, 5, (false, 0), &echo(8, 1, 1, b"abcd"));
    ttl0[8] = 0;
    ttl0[10..12].copy_from_slice(&[0, 0]);
    let c = csum(&ttl0[..20]);
    ttl0[10..12].copy_from_slice(&c);
    let other = ip(
        KERNEL,
        [192, 0, 2, 3],
        1,
        5,
        (false, 0),
        &echo(8, 1, 1, b"abcd"),
    );
    let mut icmp_sum = ping.clone();
    *icmp_sum.last_mut().unwrap() ^= 1;
    let mut udp_sum = ip(
        KERNEL,
        US,
        17,
        6,
        (false, 0),
        &udp_bytes(KERNEL, US, 1, ECHO_PORT, b"x"),
    );
    *udp_sum.last_mut().unwrap() ^= 1;
    // A SYN to 7000 whose checksum (zero) is wrong.
    let mut syn = [0; 20];
    syn[2..4].copy_from_slice(&7000u16.to_be_bytes());
    syn[12] = 0x50;
    syn[13] = 0x02;
    let tcp = ip(KERNEL, US, 6, 7, (false, 0), &syn);
    let multicast = ip(
        [224, 0, 0, 1],
        US,
        1,
        8,
        (false, 0),
        &echo(8, 1, 1, b"abcd"),
    );
    for p in [
        &bad_sum,
        &version,
        &ihl,
        &short,
        &ttl0,
        &other,
        &icmp_sum,
        &udp_sum,
        &tcp,
        &vec![],
        &multicast,
    ] {
        feed(&mut s, at(1), p);
    }
    assert_eq!(device(&mut s, at(1)), Vec::<Vec<u8>>::new());
    let c = s.counters();
    assert_eq!(c.datagrams_in, 11);
    assert_eq!(c.bad_checksum, 3, "{c}");
    assert_eq!(c.bad_header, 6, "{c}");
    assert_eq!(c.not_ours, 1, "{c}");
    assert_eq!(c.tcp_bad_checksum, 1, "{c}");
    assert_eq!(c.datagrams_out, 0);
    // The same ping, intact, is answered.
    feed(&mut s, at(1), &ping);
    assert_eq!(device(&mut s, at(1)).len(), 1);
}

#[test]
fn a_datagram_missing_a_fragment_times_out_at_thirty_seconds_with_one_icmp_error() {
    let mut s = stack(&StackConfig::default());
    let datagram = udp_bytes(KERNEL, US, 3_000, ECHO_PORT, &[5; 4_000]);
    let frags = fragments(17, 4_242, &datagram, 1_500);
    let start = at(1_000);
    feed(&mut s, start, &frags[0]);
    feed(&mut s, at(2_000), &frags[2]);
    assert_eq!(device(&mut s, at(2_000)).len(), 0);
    let deadline = start + REASSEMBLY_TIMEOUT;
    assert_eq!(s.poll_timeout(), Some(deadline));
    s.handle_timeout(&mut cx(Instant::from_nanos(deadline.as_nanos() - 1), None));
    assert_eq!(device(&mut s, deadline).len(), 0);
    s.handle_timeout(&mut cx(deadline, None));
    let sent = device(&mut s, deadline);
    assert_eq!(sent.len(), 1);
    let reply = icmp::Packet::new_checked(&sent[0][20..]).unwrap();
    let icmp::Repr::TimeExceeded { code, original } = icmp::Repr::parse(&reply).unwrap() else {
        panic!("not a time exceeded");
    };
    assert_eq!(code, icmp::REASSEMBLY_TIME_EXCEEDED);
    let quoted = ipv4::Packet::new_unchecked(original);
    assert_eq!((quoted.ident(), quoted.more_frags()), (4_242, true));
    assert_eq!(&original[20..], &datagram[..8]);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(&mut cx(deadline + REASSEMBLY_TIMEOUT, None));
    assert_eq!(device(&mut s, at(100_000)).len(), 0);
    assert_eq!(s.counters().reassembly_timeouts, 1);
    // Without its first fragment, a datagram times out silently.
    feed(&mut s, at(200_000), &frags[1]);
    s.handle_timeout(&mut cx(at(230_000), None));
    assert_eq!(device(&mut s, at(230_000)).len(), 0);
    assert_eq!(s.counters().reassembly_timeouts, 2);
    // A large ping that lost its tail hears why; an ICMP error that lost
    // its tail (here a port unreachable) does not.
    let ping = fragments(1, 1, &echo(8, 1, 1, &[0; 3_000]), 1_500);
    let error = fragments(
        1,
        2,
        &[&[3u8, 3, 0, 0, 0, 0, 0, 0][..], &[0; 3_000]].concat(),
        1_500,
    );
    feed(&mut s, at(300_000), &ping[0]);
    feed(&mut s, at(300_000), &error[0]);
    s.handle_timeout(&mut cx(at(330_000), None));
    let sent = device(&mut s, at(330_000));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0][20], sent[0][21]),
        (11, icmp::REASSEMBLY_TIME_EXCEEDED)
    );
    assert_eq!(
        u16::from_be_bytes([sent[0][32], sent[0][33]]),
        1,
        "quotes the ping's ident"
    );
}

#[test]
fn overlapping_fragments_discard_the_datagram() {
    let mut s = stack(&StackConfig::default());
    let datagram = udp_bytes(KERNEL, US, 3_000, ECHO_PORT, &[5; 2_000]);
    let frags = fragments(17, 9, &datagram, 1_500);
    // A Teardrop-style second fragment starting inside the first.
    let evil = ip(KERNEL, US, 17, 9, (false, 1_472), &[0; 600]);
    feed(&mut s, at(0), &frags[0]);
    feed(&mut s, at(0), &evil);
    feed(&mut s, at(0), &frags[1]);
    assert_eq!(device(&mut s, at(0)).len(), 0);
    assert_eq!(s.counters().overlaps, 1);
    assert_eq!(s.counters().udp_echoed, 0);
}

fn pings(s: &mut Stack, n: u16, step: Duration) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    let mut now = Instant::ZERO;
    for seq in 0..n {
        feed(
            s,
            now,
            &ip(KERNEL, US, 1, seq, (false, 0), &echo(8, 1, seq, b"ping")),
        );
        sent.extend(device(s, now));
        now += step;
    }
    while let Some(t) = s.poll_timeout() {
        s.handle_timeout(&mut cx(t, None));
        sent.extend(device(s, t));
    }
    sent
}

#[test]
fn impairment_drops_and_duplicates_with_a_seed() {
    let lossy = ImpairConfig {
        drop: 0.3,
        seed: 17,
        ..ImpairConfig::default()
    };
    let mut s = stack(&StackConfig {
        impair_in: Some(lossy),
        ..StackConfig::default()
    });
    let replies = pings(&mut s, 1_000, Duration::from_millis(1));
    let c = s.counters();
    assert!((250..=350).contains(&c.impair_dropped_in), "{c}");
    assert_eq!(replies.len() as u64, 1_000 - c.impair_dropped_in);
    assert_eq!(c.datagrams_in, 1_000 - c.impair_dropped_in);

    let copies = ImpairConfig {
        duplicate: 0.2,
        latency: Duration::from_millis(10),
        seed: 5,
        ..ImpairConfig::default()
    };
    let config = StackConfig {
        impair_out: Some(copies),
        ..StackConfig::default()
    };
    let mut s = stack(&config);
    let replies = pings(&mut s, 1_000, Duration::from_millis(1));
    let duplicated = replies.len() - 1_000;
    assert!((150..=250).contains(&duplicated), "{duplicated}");
    assert_eq!(s.counters().datagrams_out, replies.len() as u64);
    // The same seed replays the same run.
    let again = pings(&mut stack(&config), 1_000, Duration::from_millis(1));
    assert_eq!(again, replies);
    // Held copies are deadlines: the latency delays every reply.
    let mut s = stack(&config);
    feed(
        &mut s,
        at(0),
        &ip(KERNEL, US, 1, 1, (false, 0), &echo(8, 1, 1, b"x")),
    );
    assert_eq!(device(&mut s, at(0)).len(), 0);
    assert_eq!(s.poll_timeout(), Some(at(10)));
    s.handle_timeout(&mut cx(at(10), None));
    assert!(!device(&mut s, at(10)).is_empty());
}

#[test]
fn capture_copies_every_datagram_in_and_out() {
    let mut s = stack(&StackConfig {
        capture: true,
        mtu: 576,
        ..StackConfig::default()
    });
    let bad = vec![0x45; 10];
    feed(&mut s, at(0), &bad);
    let request = echo(8, 1, 1, &[1; 1_000]);
    let frags = fragments(1, 3, &request, 1_500);
    for f in &frags {
        feed(&mut s, at(0), f);
    }
    let sent = out(&mut s, at(0));
    let on = |e: EndpointId| -> Vec<Vec<u8>> {
        sent.iter()
            .filter(|(x, _)| *x == e)
            .map(|(_, d)| d.clone())
            .collect()
    };
    assert_eq!(on(CAPTURE_IN), [vec![bad], frags].concat());
    assert_eq!(on(CAPTURE_OUT), on(EndpointId::HOME));
    assert_eq!(on(EndpointId::HOME).len(), 2);
}

#[test]
fn bad_configurations_are_refused() {
    let ok = StackConfig::default();
    assert!(Stack::new(ok).is_ok());
    let small = StackConfig { mtu: 67, ..ok };
    assert_eq!(
        Stack::new(small).unwrap_err(),
        ConfigError::Mtu(fragment::MtuError::TooSmall(67))
    );
    let bad = ImpairConfig {
        drop: 2.0,
        ..ImpairConfig::default()
    };
    let e = Stack::new(StackConfig {
        impair_out: Some(bad),
        ..ok
    })
    .unwrap_err();
    assert!(matches!(e, ConfigError::Impair { inbound: false, .. }));
    assert!(e.to_string().contains("outbound"));
    assert!(Stack::new(StackConfig { mtu: 68, ..ok }).is_ok());
}

#[test]
fn counters_read_as_one_line() {
    let s = stack(&StackConfig::default());
    let line = s.counters().to_string();
    assert!(line.starts_with("in 0 out 0 bad-checksum 0"), "{line}");
    assert!(!line.contains('\n'));
}

#[test]
fn no_input_panics_the_stack() {
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    runner
        .run(
            &proptest::collection::vec(any::<u8>(), 0..200),
            |mut bytes| {
                let mut s = stack(&StackConfig::default());
                feed(&mut s, at(0), &bytes);
                // Also as a plausible header, so the deeper layers see it.
                if bytes.len() >= 20 {
                    bytes[0] = 0x45;
                    let total = u16::try_from(bytes.len()).unwrap().to_be_bytes();
                    bytes[2..4].copy_from_slice(&total);
                    bytes[16..20].copy_from_slice(&US);
                    bytes[10..12].copy_from_slice(&[0, 0]);
                    let c = csum(&bytes[..20]);
                    bytes[10..12].copy_from_slice(&c);
                    feed(&mut s, at(0), &bytes);
                }
                let _ = out(&mut s, at(0));
                s.handle_timeout(&mut cx(at(60_000), None));
                Ok(())
            },
        )
        .unwrap();
}

/// `packet` with its identification and header checksum zeroed: the two
/// fields in which two correct stacks may differ.
fn masked(packet: &[u8]) -> Vec<u8> {
    let mut p = packet.to_vec();
    p[4..6].copy_from_slice(&[0, 0]);
    p[10..12].copy_from_slice(&[0, 0]);
    p
}

#[test]
fn real_captures_get_the_linux_kernels_answers() {
    use crate::wire::captures::{self as cap, bytes};
    let mut s = stack(&StackConfig::default());
    feed(&mut s, at(0), &bytes(cap::PING_REQUEST));
    let sent = device(&mut s, at(0));
    assert_eq!(sent.len(), 1);
    assert_eq!(csum(&sent[0][..20]), [0, 0]);
    assert_eq!(masked(&sent[0]), masked(&bytes(cap::PING_REPLY)));

    // `ping -s 4000`: its fragments in a scrambled order; our reply is
    // fragmented exactly as the kernel's was.
    for f in [
        cap::FRAG_REQUEST_3,
        cap::FRAG_REQUEST_1,
        cap::FRAG_REQUEST_2,
    ] {
        feed(&mut s, at(1), &bytes(f));
    }
    let sent = device(&mut s, at(1));
    let kernel = [cap::FRAG_REPLY_1, cap::FRAG_REPLY_2, cap::FRAG_REPLY_3];
    assert_eq!(sent.len(), kernel.len());
    for (ours, theirs) in sent.iter().zip(kernel) {
        assert_eq!(csum(&ours[..20]), [0, 0]);
        assert_eq!(masked(ours), masked(&bytes(theirs)));
    }

    // The Python datagram to 7007 comes back to its port.
    feed(&mut s, at(2), &bytes(cap::UDP_TO_CLOSED_PORT));
    let sent = device(&mut s, at(2));
    assert_eq!(
        sent,
        [ip(
            US,
            KERNEL,
            17,
            3,
            (false, 0),
            &udp_bytes(US, KERNEL, ECHO_PORT, 40_000, b"hello tunstack")
        )]
    );
}

#[test]
fn what_waits_is_bounded() {
    // An inbound impairment that holds everything for a second.
    let slow = ImpairConfig {
        latency: Duration::from_secs(1),
        ..ImpairConfig::default()
    };
    let mut s = stack(&StackConfig {
        impair_in: Some(slow),
        ..StackConfig::default()
    });
    let ping = ip(KERNEL, US, 1, 1, (false, 0), &echo(8, 1, 1, b"x"));
    for _ in 0..MAX_HELD + 10 {
        feed(&mut s, at(0), &ping);
    }
    assert_eq!(s.counters().queue_dropped, 10);
    // And an outbound one: the replies wait.
    let mut s = stack(&StackConfig {
        impair_out: Some(slow),
        ..StackConfig::default()
    });
    for _ in 0..MAX_HELD + 10 {
        feed(&mut s, at(0), &ping);
    }
    assert_eq!(s.counters().queue_dropped, 10);
    assert_eq!(s.counters().echo_replies, MAX_HELD as u64 + 10);
    // Replies nobody collects stop at MAX_QUEUED, and reading pauses.
    let mut s = stack(&StackConfig::default());
    for _ in 0..MAX_QUEUED {
        assert!(s.wants_input());
        feed(&mut s, at(0), &ping);
    }
    assert!(!s.wants_input());
    feed(&mut s, at(0), &ping);
    assert_eq!(s.counters().queue_dropped, 1);
    assert_eq!(device(&mut s, at(0)).len(), MAX_QUEUED);
    assert!(s.wants_input());
}

// ---- TCP ----------------------------------------------------------------

/// TCP flag bits, as on the wire.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// The options of a Linux SYN: MSS 1460, SACK permitted, timestamps
/// (value `0x0001_e240`, echo 0), NOP, window scale 7.
const LINUX_SYN_OPTIONS: [u8; 20] = [
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0xe2, 0x40, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x03, 0x03, 0x07,
];

/// SYN options without timestamps (so the later segments of a script
/// need none): MSS 1460, SACK permitted, window scale 7.
const SYN_OPTIONS: [u8; 12] = [2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7];

/// A TCP segment from the kernel's side, byte by byte, with its checksum
/// over the pseudo-header.
fn tcp_bytes(
    (sport, dport): (u16, u16),
    (seq, ack): (u32, u32),
    flags: u8,
    options: &[u8],
    data: &[u8],
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let mut t = Vec::new();
    t.extend(sport.to_be_bytes());
    t.extend(dport.to_be_bytes());
    t.extend(seq.to_be_bytes());
    t.extend(ack.to_be_bytes());
    t.push(u8::try_from((20 + options.len()) / 4).unwrap() << 4);
    t.push(flags);
    t.extend(64_240u16.to_be_bytes());
    t.extend([0, 0, 0, 0]);
    t.extend_from_slice(options);
    t.extend_from_slice(data);
    let c = csum(&[pseudo(KERNEL, US, t.len()), t.clone()].concat());
    t[16..18].copy_from_slice(&c);
    t
}

fn pseudo(src: [u8; 4], dst: [u8; 4], len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(src);
    p.extend(dst);
    p.extend([0, 6]);
    p.extend(u16::try_from(len).unwrap().to_be_bytes());
    p
}

/// What the stack sent, as the test reads it: every header byte it
/// checks itself.
#[derive(Debug)]
struct Seg {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    options: Vec<u8>,
    data: Vec<u8>,
}

/// Checks a datagram from the stack (IPv4 header: checksum, DF, TTL 64,
/// protocol 6, addresses; TCP checksum over the pseudo-header) and reads
/// its segment.
fn seg(datagram: &[u8]) -> Seg {
    assert_eq!(datagram[0], 0x45);
    assert_eq!(csum(&datagram[..20]), [0, 0], "IPv4 header checksum");
    assert_eq!(
        usize::from(u16::from_be_bytes([datagram[2], datagram[3]])),
        datagram.len()
    );
    assert_eq!(datagram[6] & 0x40, 0x40, "DF set");
    assert_eq!((datagram[8], datagram[9]), (64, 6), "TTL 64, TCP");
    assert_eq!(&datagram[12..20], [US, KERNEL].concat());
    let t = &datagram[20..];
    assert_eq!(
        csum(&[pseudo(US, KERNEL, t.len()), t.to_vec()].concat()),
        [0, 0],
        "TCP checksum"
    );
    let off = usize::from(t[12] >> 4) * 4;
    let u32_at = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    Seg {
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        seq: u32_at(4),
        ack: u32_at(8),
        flags: t[13],
        options: t[20..off].to_vec(),
        data: t[off..].to_vec(),
    }
}

/// The reactor's part of a test: the armed part deadlines, fired in
/// order as virtual time advances.
struct Rig {
    s: Stack,
    armed: std::collections::BTreeMap<crate::proto::PartId, Instant>,
}

impl Rig {
    fn new(s: Stack) -> Self {
        let mut rig = Self {
            s,
            armed: std::collections::BTreeMap::new(),
        };
        rig.parts();
        rig
    }

    fn parts(&mut self) {
        while let Some((part, at)) = self.s.poll_part_timeout() {
            match at {
                Some(at) => self.armed.insert(part, at),
                None => self.armed.remove(&part),
            };
        }
    }

    /// Feeds one datagram at `now` and returns what the stack answers.
    fn feed(&mut self, now: Instant, datagram: &[u8]) -> Vec<Seg> {
        feed(&mut self.s, now, datagram);
        self.drain(now)
    }

    fn drain(&mut self, now: Instant) -> Vec<Seg> {
        let sent = device(&mut self.s, now);
        self.parts();
        sent.iter().map(|d| seg(d)).collect()
    }

    /// Fires every part deadline up to `to`, earliest first, and returns
    /// what the stack sent.
    fn advance(&mut self, to: Instant) -> Vec<Seg> {
        let mut out = Vec::new();
        for _ in 0..1_000 {
            let Some((&part, &at)) = self.armed.iter().min_by_key(|(_, at)| **at) else {
                break;
            };
            if at > to {
                break;
            }
            self.armed.remove(&part);
            self.s.handle_part_timeout(&mut cx(at, None), part);
            out.extend(self.drain(at));
        }
        out
    }
}

/// A stack serving TCP echo on 7007 and 7000 (HTTP's port: any listener
/// does for the handshake), ISNs keyed by a fixed key.
fn tcp_stack() -> Stack {
    stack(&StackConfig::default())
        .with_tcp(
            vec![
                (7_000, Box::new(echo::EchoAcceptor::default())),
                (ECHO_PORT, Box::new(echo::EchoAcceptor::default())),
            ],
            crate::proto::tcp::conn::Config::default(),
        )
        .with_isn_key([7; 16])
}

/// The kernel's SYN from `port` to `to` with ISN `isn` ([`SYN_OPTIONS`]).
fn kernel_syn(port: u16, to: u16, isn: u32) -> Vec<u8> {
    ip(
        KERNEL,
        US,
        6,
        1,
        (false, 0),
        &tcp_bytes((port, to), (isn, 0), SYN, &SYN_OPTIONS, &[]),
    )
}

fn kernel_seg(ports: (u16, u16), seq_ack: (u32, u32), flags: u8, data: &[u8]) -> Vec<u8> {
    ip(
        KERNEL,
        US,
        6,
        1,
        (false, 0),
        &tcp_bytes(ports, seq_ack, flags, &[], data),
    )
}

#[test]
fn a_kernel_syn_to_7000_gets_a_syn_ack_with_correct_checksums() {
    let mut rig = Rig::new(tcp_stack());
    // As Linux 6 sends it (timestamps included).
    let syn = ip(
        KERNEL,
        US,
        6,
        0x9d3a,
        (false, 0),
        &tcp_bytes(
            (40_000, 7_000),
            (0x1234_5678, 0),
            SYN,
            &LINUX_SYN_OPTIONS,
            &[],
        ),
    );
    let sent = rig.feed(at(1), &syn);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let s = &sent[0];
    assert_eq!((s.sport, s.dport), (7_000, 40_000));
    assert_eq!(s.flags, SYN | ACK);
    assert_eq!(s.ack, 0x1234_5679);
    // MSS from the MTU: 1500 - 40.
    assert_eq!(&s.options[..4], [2, 4, 0x05, 0xb4], "{:?}", s.options);
    assert!(s.data.is_empty());
    let c = rig.s.counters();
    assert_eq!((c.tcp_segments_in, c.tcp_accepted), (1, 1), "{c}");
    assert_eq!(rig.s.tcp_connections(), (1, 1));
    assert!(
        !rig.armed.is_empty(),
        "the SYN-ACK's retransmission is armed"
    );
}

#[test]
fn a_syn_to_a_closed_port_gets_a_reset() {
    let mut rig = Rig::new(tcp_stack());
    let sent = rig.feed(at(1), &kernel_syn(40_000, 9, 1_000));
    assert_eq!(sent.len(), 1, "{sent:?}");
    let s = &sent[0];
    assert_eq!((s.sport, s.dport), (9, 40_000));
    assert_eq!(s.flags, RST | ACK);
    assert_eq!((s.seq, s.ack), (0, 1_001));
    assert_eq!(rig.s.counters().tcp_resets, 1);
    assert_eq!(rig.s.tcp_connections(), (0, 0));
    // A RST is never answered.
    assert!(
        rig.feed(at(2), &kernel_seg((40_000, 9), (1_001, 0), RST, &[]))
            .is_empty()
    );
}

#[test]
fn a_segment_with_a_bad_checksum_is_counted_and_ignored() {
    let mut rig = Rig::new(tcp_stack());
    let mut bad = kernel_syn(40_000, 7_000, 5);
    *bad.last_mut().unwrap() ^= 0x10;
    assert!(rig.feed(at(1), &bad).is_empty());
    let c = rig.s.counters();
    assert_eq!((c.tcp_bad_checksum, c.tcp_segments_in), (1, 0), "{c}");
    assert_eq!(rig.s.tcp_connections(), (0, 0));
    // The same SYN intact opens a connection.
    assert_eq!(rig.feed(at(1), &kernel_syn(40_000, 7_000, 5)).len(), 1);
}

#[test]
fn a_handshake_an_echo_and_a_half_close_on_7007() {
    let mut rig = Rig::new(tcp_stack());
    let ports = (40_001, ECHO_PORT);
    let x = 0x8000_0000_u32;
    let synack = rig.feed(at(0), &kernel_syn(ports.0, ports.1, x));
    let y = synack[0].seq;
    assert!(
        rig.feed(at(1), &kernel_seg(ports, (x + 1, y + 1), ACK, &[]))
            .is_empty(),
        "nothing to say to a bare ACK"
    );
    assert_eq!(rig.s.tcp_connections(), (1, 0), "established");
    let sent = rig.feed(
        at(2),
        &kernel_seg(ports, (x + 1, y + 1), PSH | ACK, b"hello"),
    );
    let data: Vec<u8> = sent.iter().flat_map(|s| s.data.clone()).collect();
    assert_eq!(data, b"hello", "{sent:?}");
    assert_eq!(sent[0].seq, y + 1);
    assert_eq!(sent.last().unwrap().ack, x + 6);
    // Our echo acknowledged; then the kernel shuts its side down.
    assert!(
        rig.feed(at(3), &kernel_seg(ports, (x + 6, y + 6), ACK, &[]))
            .is_empty()
    );
    let mut sent = rig.feed(at(4), &kernel_seg(ports, (x + 6, y + 6), FIN | ACK, &[]));
    sent.extend(rig.advance(at(200)));
    let fin = sent
        .iter()
        .find(|s| s.flags & FIN != 0)
        .expect("our FIN after the echo");
    assert_eq!((fin.seq, fin.ack), (y + 6, x + 7), "{sent:?}");
    // Its ACK ends the connection (LAST-ACK → CLOSED), and the stack
    // forgets it and its part.
    let after = rig.feed(at(210), &kernel_seg(ports, (x + 7, y + 7), ACK, &[]));
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(rig.s.tcp_connections(), (0, 0));
    assert!(rig.armed.is_empty(), "{:?}", rig.armed);
    let c = rig.s.counters();
    assert_eq!((c.tcp_accepted, c.tcp_closed), (1, 1), "{c}");
}

#[test]
fn the_half_open_bound_drops_the_oldest() {
    let mut rig = Rig::new(tcp_stack());
    let first = 10_000u16;
    let mut synacks = Vec::new();
    for i in 0..=u16::try_from(MAX_HALF_OPEN).unwrap() {
        let sent = rig.feed(at(1), &kernel_syn(first + i, 7_000, 1));
        assert_eq!(sent.len(), 1);
        synacks.push(sent[0].seq);
    }
    let c = rig.s.counters();
    assert_eq!(c.tcp_half_open_dropped, 1, "{c}");
    assert_eq!(
        rig.s.tcp_connections(),
        (MAX_HALF_OPEN, MAX_HALF_OPEN),
        "the bound holds"
    );
    // The oldest is gone: its ACK meets no connection and gets a RST.
    let rst = rig.feed(
        at(2),
        &kernel_seg((first, 7_000), (2, synacks[0] + 1), ACK, &[]),
    );
    assert_eq!(rst.len(), 1);
    assert_eq!(rst[0].flags & RST, RST);
    // The second oldest is still there: its ACK completes the handshake.
    let ok = rig.feed(
        at(2),
        &kernel_seg((first + 1, 7_000), (2, synacks[1] + 1), ACK, &[]),
    );
    assert!(ok.is_empty(), "{ok:?}");
    assert_eq!(rig.s.tcp_connections(), (MAX_HALF_OPEN, MAX_HALF_OPEN - 1));
}

#[test]
fn connect_opens_from_an_ephemeral_port_and_the_session_runs() {
    let mut rig = Rig::new(tcp_stack());
    let server = std::net::SocketAddrV4::new(KERNEL.into(), 8_080);
    rig.s
        .connect(
            at(0),
            server,
            Box::new(echo::EchoSession::new(
                at(0),
                crate::proto::idle::TcpTimeouts::default(),
            )),
        )
        .unwrap();
    rig.parts();
    let syn = rig.drain(at(0));
    assert_eq!(syn.len(), 1, "{syn:?}");
    let (port, x) = (syn[0].sport, syn[0].seq);
    assert!(EPHEMERAL_PORTS.contains(&port));
    assert_eq!((syn[0].dport, syn[0].flags), (8_080, SYN));
    let y = 0x4000_0000_u32;
    let sent = rig.feed(
        at(1),
        &ip(
            KERNEL,
            US,
            6,
            1,
            (false, 0),
            &tcp_bytes((8_080, port), (y, x + 1), SYN | ACK, &SYN_OPTIONS, &[]),
        ),
    );
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].flags, sent[0].ack), (ACK, y + 1));
    let sent = rig.feed(
        at(2),
        &kernel_seg((8_080, port), (y + 1, x + 1), PSH | ACK, b"hi"),
    );
    let data: Vec<u8> = sent.iter().flat_map(|s| s.data.clone()).collect();
    assert_eq!(data, b"hi", "the client session echoes");
}

/// Closes as soon as it is accepted, as an HTTP server does after its
/// answer: the stack closes first and so ends in TIME-WAIT.
struct Hangup;

impl Driven for Hangup {
    fn poll_close(&mut self) -> Option<crate::proto::CloseReason> {
        Some(crate::proto::CloseReason::Completed)
    }
}

impl crate::proto::StreamSession for Hangup {
    fn handle_input(&mut self, _: &mut crate::proto::Context, _: crate::proto::StreamInput<'_>) {}
    fn poll_transmit(
        &mut self,
        _: &mut crate::proto::Context,
        _: usize,
        _: &mut bytes::BytesMut,
    ) -> Option<usize> {
        None
    }
}

struct HangupAcceptor;

impl Driven for HangupAcceptor {}

impl crate::proto::StreamAcceptor for HangupAcceptor {
    fn accept(
        &mut self,
        _: &mut crate::proto::Context,
        _: std::net::SocketAddr,
    ) -> Option<Box<dyn crate::proto::StreamSession>> {
        Some(Box::new(Hangup))
    }
}

#[test]
fn at_the_connection_bound_the_oldest_time_wait_makes_room_and_nothing_else_does() {
    let mut s = stack(&StackConfig::default())
        .with_tcp(
            vec![
                (80, Box::new(HangupAcceptor)),
                (ECHO_PORT, Box::new(echo::EchoAcceptor::default())),
            ],
            crate::proto::tcp::conn::Config::default(),
        )
        .with_isn_key([7; 16]);
    s.set_max_connections(2);
    let mut rig = Rig::new(s);
    // Two connections to the hanging-up server, each closed by us first
    // and in TIME-WAIT after the peer's FIN.
    for port in [1_000, 1_001] {
        let x = 10;
        let y = rig.feed(at(0), &kernel_syn(port, 80, x))[0].seq;
        let fin = rig.feed(at(1), &kernel_seg((port, 80), (x + 1, y + 1), ACK, &[]));
        assert!(fin.iter().any(|s| s.flags & FIN != 0), "{fin:?}");
        rig.feed(
            at(2),
            &kernel_seg((port, 80), (x + 1, y + 2), FIN | ACK, &[]),
        );
    }
    assert_eq!(rig.s.tcp_connections(), (2, 0));
    // A third takes the oldest TIME-WAIT's place.
    let synack = rig.feed(at(3), &kernel_syn(2_000, ECHO_PORT, 50));
    assert_eq!(synack.len(), 1);
    assert_eq!(synack[0].flags, SYN | ACK);
    assert_eq!(rig.s.counters().tcp_time_wait_reclaimed, 1);
    assert_eq!(rig.s.tcp_connections(), (2, 1));
    // The oldest is gone: its port meets no connection (RST).
    let gone = rig.feed(at(4), &kernel_seg((1_000, 80), (12, 0), ACK, &[]));
    assert_eq!(gone[0].flags & RST, RST, "{gone:?}");
    // A fourth takes the second; a fifth finds no TIME-WAIT and is refused.
    assert_eq!(
        rig.feed(at(5), &kernel_syn(2_001, ECHO_PORT, 50))[0].flags,
        SYN | ACK
    );
    let refused = rig.feed(at(5), &kernel_syn(2_002, ECHO_PORT, 50));
    assert_eq!(refused[0].flags, RST | ACK);
    let c = rig.s.counters();
    assert_eq!(c.tcp_time_wait_reclaimed, 2, "{c}");
}

#[test]
fn a_syn_for_a_connection_over_but_not_yet_collected_opens_a_new_one() {
    let mut rig = Rig::new(tcp_stack());
    let ports = (40_002, ECHO_PORT);
    let y = rig.feed(at(0), &kernel_syn(ports.0, ports.1, 100))[0].seq;
    rig.feed(at(1), &kernel_seg(ports, (101, y + 1), ACK, &[]));
    // The peer resets it, and at once opens again from the same port,
    // before the stack wrote anything (so before it collected the first).
    feed(&mut rig.s, at(2), &kernel_seg(ports, (101, 0), RST, &[]));
    feed(&mut rig.s, at(2), &kernel_syn(ports.0, ports.1, 5_000));
    let sent = rig.drain(at(2));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].flags, sent[0].ack), (SYN | ACK, 5_001));
    assert_eq!(rig.s.tcp_connections(), (1, 1));
    let c = rig.s.counters();
    assert_eq!((c.tcp_accepted, c.tcp_closed), (2, 1), "{c}");
}

/// The echo on 7007 answering one 10 000-byte segment from the kernel (a
/// super-segment a TUN with offloads hands over), on a stack with
/// `config`: the datagrams it sends to the device.
fn echo_of_a_super_segment(config: &StackConfig) -> Vec<Vec<u8>> {
    let s = stack(config)
        .with_tcp(
            vec![(ECHO_PORT, Box::new(echo::EchoAcceptor::default()))],
            crate::proto::tcp::conn::Config::default(),
        )
        .with_isn_key([7; 16]);
    let mut rig = Rig::new(s);
    let ports = (40_002, ECHO_PORT);
    let x = 0x1000_u32;
    let y = rig.feed(at(0), &kernel_syn(ports.0, ports.1, x))[0].seq;
    rig.feed(at(1), &kernel_seg(ports, (x + 1, y + 1), ACK, &[]));
    let data: Vec<u8> = (0..10_000u32)
        .map(|i| u8::try_from(i % 253).unwrap())
        .collect();
    feed(
        &mut rig.s,
        at(2),
        &kernel_seg(ports, (x + 1, y + 1), PSH | ACK, &data),
    );
    assert_eq!(rig.s.counters().tcp_segments_in, 3, "the big one taken");
    let sent = device(&mut rig.s, at(2));
    let echoed: Vec<u8> = sent.iter().flat_map(|d| d[40..].to_vec()).collect();
    assert_eq!(echoed, data, "every byte echoed, in order");
    sent
}

#[test]
fn without_impairment_the_stack_sends_a_burst_with_a_partial_checksum() {
    let sent = echo_of_a_super_segment(&StackConfig::default());
    // One datagram (the congestion window holds 10 000 bytes), longer
    // than the MTU, DF: the device cuts it.
    assert_eq!(
        sent.len(),
        1,
        "{:?}",
        sent.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let d = &sent[0];
    assert_eq!(d.len(), 20 + 20 + 10_000);
    assert_eq!(d[6] & 0x40, 0x40, "DF set");
    assert_eq!(csum(&d[..20]), [0, 0], "IPv4 header checksum");
    // The TCP checksum field holds the pseudo-header's folded sum: the
    // complement of the checksum of the pseudo-header alone.
    let partial = csum(&pseudo(US, KERNEL, d.len() - 20));
    assert_eq!([!d[36], !d[37]], partial);
}

#[test]
fn with_an_impairment_the_stack_sends_only_mtu_sized_segments() {
    let config = StackConfig {
        impair_out: Some(ImpairConfig {
            seed: 1,
            ..ImpairConfig::default()
        }),
        ..StackConfig::default()
    };
    let sent = echo_of_a_super_segment(&config);
    assert!(sent.len() >= 7, "{}", sent.len());
    for d in &sent {
        assert!(d.len() <= 1_500, "{}", d.len());
        seg(d);
    }
}
