//! Wire targets: one decoder each, on arbitrary bytes.
//!
//! The codecs promise (see `wire`) never to panic and that whatever they
//! accept they can write back; these targets check both, and the limits
//! each decoder documents.

use super::Reader;
use crate::wire::{
    self, hello, http, icmp, ipv4, lab, line, msg, stopwait, tcp, tcpfile, tftp, udp,
};
use bytes::BytesMut;
use std::net::Ipv4Addr;

/// `wire::hello`: requests and answers, and the ID's own two parsers.
pub fn wire_hello(data: &[u8]) {
    let mut r = Reader::new(data);
    let value = r.u16();
    match hello::HelloId::from_value(value) {
        Ok(id) => assert_eq!((id.value(), value <= 9999), (value, true)),
        Err(_) => assert!(value > 9999, "from_value refused {value}"),
    }
    let bytes = r.rest();
    if let Ok(req) = hello::Request::parse(bytes) {
        assert!(bytes.len() < hello::MAX_REQUEST);
        let mut out = BytesMut::new();
        req.emit(&mut out);
        assert_eq!(hello::Request::parse(&out), Ok(req), "request round trip");
    }
    if let Ok(id) = hello::HelloId::parse(bytes) {
        assert_eq!(id.as_str().as_bytes(), bytes, "an ID keeps its digits");
    }
    if let Ok(resp) = hello::Response::parse(bytes) {
        let mut out = BytesMut::new();
        resp.emit(&mut out);
        assert_eq!(
            hello::Response::parse(&out),
            Ok(resp),
            "response round trip"
        );
        let _ = resp.to_string();
    }
}

/// `wire::lab`: the request grammar, the segment header and the pattern.
pub fn wire_lab(data: &[u8]) {
    let mut r = Reader::new(data);
    let offset = u64::from(r.u32());
    let run = usize::from(r.u16()) * 2;
    let bytes = r.rest();
    match lab::Request::parse(bytes) {
        Ok(lab::Request::Stream(spec)) => {
            assert!(spec.interval_ns <= lab::MAX_INTERVAL_MS * 1_000_000);
            assert!(spec.count >= 1);
            assert!(spec.size as usize >= lab::SEGMENT_HEADER_LEN);
            assert!(bytes.starts_with(b"stream-"));
        }
        Ok(lab::Request::File(n)) => {
            assert!(n >= 1);
            assert!(bytes.iter().all(u8::is_ascii_digit));
        }
        Ok(lab::Request::Echo(echo)) => assert_eq!(echo, bytes),
        Err(bad) => {
            let _ = bad.to_string();
        }
    }
    if let Ok(header) = lab::SegmentHeader::parse(bytes) {
        let mut out = [0u8; lab::SEGMENT_HEADER_LEN];
        header.emit(&mut out);
        assert_eq!(&out[..], &bytes[..lab::SEGMENT_HEADER_LEN]);
    } else {
        assert!(bytes.len() < lab::SEGMENT_HEADER_LEN);
    }
    let expected = bytes
        .iter()
        .enumerate()
        .position(|(i, &b)| b != lab::PATTERN[((offset + i as u64) % 26) as usize]);
    assert_eq!(lab::check_pattern(offset, bytes), expected, "check_pattern");
    let pattern = lab::pattern_run(offset, run);
    assert_eq!(pattern.len(), run.min(lab::PATTERN_RUN));
    assert_eq!(lab::check_pattern(offset, pattern), None);
    let mut filled = vec![0u8; run];
    lab::fill_pattern(offset, &mut filled);
    assert_eq!(lab::check_pattern(offset, &filled), None);
}

/// `wire::line`: framing, and its promise that the answer does not depend
/// on how the bytes were split across reads.
pub fn wire_line(data: &[u8]) {
    let mut r = Reader::new(data);
    let max = usize::from(r.u16() % 1024) + 1;
    let cut = usize::from(r.u16());
    let buf = r.rest();
    let has_nl = |b: &[u8]| b.contains(&b'\n');
    let whole = line::split(buf, max);
    match whole {
        Ok(Some(l)) => {
            assert!(l.consumed <= buf.len().min(max));
            assert_eq!(buf[l.consumed - 1], b'\n');
            assert!(!has_nl(&buf[..l.consumed - 1]));
            assert!(l.len == l.consumed - 1 || (l.len == l.consumed - 2 && buf[l.len] == b'\r'));
        }
        Ok(None) => assert!(buf.len() < max && !has_nl(buf)),
        Err(e) => {
            assert_eq!(e, wire::Error::TooLong { max });
            assert!(buf.len() >= max && !has_nl(&buf[..max]));
        }
    }
    // A prefix that already decides (a line, or too long) decides the same.
    let prefix = &buf[..cut.min(buf.len())];
    match line::split(prefix, max) {
        Ok(None) => {}
        early => assert_eq!(early, whole, "the answer changed with more bytes"),
    }
    let trimmed = line::trim_datagram(buf);
    assert!(buf.starts_with(trimmed) && buf.len() - trimmed.len() <= 2);
}

/// `wire::msg`: the frame header and the server's two answers.
pub fn wire_msg(data: &[u8]) {
    match msg::FrameHeader::parse(data) {
        Ok(h) => {
            let mut out = BytesMut::new();
            h.emit(&mut out);
            assert_eq!(&out[..], &data[..msg::HEADER_LEN]);
        }
        Err(e) => {
            assert_eq!(e, wire::Error::Truncated);
            assert!(data.len() < msg::HEADER_LEN);
        }
    }
    if let Ok(answer) = msg::Answer::parse(data) {
        let mut out = BytesMut::new();
        answer.emit_frame(&mut out);
        let h = msg::FrameHeader::parse(&out).expect("an emitted frame has a header");
        assert_eq!(h.len as usize, out.len() - msg::HEADER_LEN);
        assert_eq!(msg::Answer::parse(&out[msg::HEADER_LEN..]), Ok(answer));
    }
    let mut out = BytesMut::new();
    msg::emit_frame(data, &mut out).expect("a short payload fits a frame");
    assert_eq!(&out[msg::HEADER_LEN..], data);
}

/// `wire::stopwait`: a datagram that parses is written back byte for byte.
pub fn wire_stopwait(data: &[u8]) {
    match stopwait::Packet::parse(data) {
        Ok(p) => {
            assert!(p.block <= stopwait::MAX_BLOCK);
            assert!(p.message.len() <= stopwait::MAX_MESSAGE);
            let mut out = BytesMut::new();
            p.emit(&mut out);
            assert_eq!(out.len(), p.buffer_len());
            assert_eq!(&out[..], data, "emit(parse(x)) == x");
            let _ = p.to_string();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `wire::tcpfile`: request and answer lines round-trip.
pub fn wire_tcpfile(data: &[u8]) {
    if let Ok(req) = tcpfile::Request::parse(data) {
        let name = match req {
            tcpfile::Request::Get { name } | tcpfile::Request::Put { name, .. } => name,
        };
        assert!(!name.is_empty() && !name.starts_with(' ') && !name.ends_with(' '));
        let mut out = BytesMut::new();
        req.emit(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(
            tcpfile::Request::parse(&out[..out.len() - 1]),
            Ok(req),
            "request round trip"
        );
    }
    if let Ok(resp) = tcpfile::Response::parse(data) {
        let mut out = BytesMut::new();
        resp.emit(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert!(
            !out[..out.len() - 1].contains(&b'\n'),
            "an answer is one line"
        );
        let shown_as_is = match resp {
            tcpfile::Response::Error { name, .. } => !name.chars().any(char::is_control),
            tcpfile::Response::Ok(_) => true,
        };
        if shown_as_is {
            assert_eq!(
                tcpfile::Response::parse(&out[..out.len() - 1]),
                Ok(resp),
                "response round trip"
            );
        }
        let _ = resp.to_string();
    }
}

/// `wire::tftp`: every datagram type round-trips, options stay in range.
pub fn wire_tftp(data: &[u8]) {
    let _ = tftp::Opcode::peek(data);
    let Ok(p) = tftp::Packet::parse(data) else {
        return;
    };
    let options = match p {
        tftp::Packet::Rrq { options, .. }
        | tftp::Packet::Wrq { options, .. }
        | tftp::Packet::Oack { options } => Some(options),
        _ => None,
    };
    if let Some(o) = options {
        assert!(
            o.blksize
                .is_none_or(|b| (tftp::MIN_BLKSIZE..=tftp::MAX_BLKSIZE).contains(&b))
        );
        assert!(o.timeout.is_none_or(|t| t >= 1));
        assert!(o.windowsize.is_none_or(|w| w >= 1));
        assert!(o.values().count() <= tftp::MAX_OPTIONS);
    }
    let mut out = BytesMut::new();
    p.emit(&mut out);
    assert_eq!(out.len(), p.buffer_len(), "buffer_len matches emit");
    let again = tftp::Packet::parse(&out).expect("an emitted packet parses");
    assert_eq!(forget_ignored(again), forget_ignored(p), "tftp round trip");
    let _ = p.to_string();
}

/// The packet without what the parser skipped (emit never writes it).
fn forget_ignored(p: tftp::Packet<'_>) -> tftp::Packet<'_> {
    let clear = |o: tftp::Options| tftp::Options {
        ignored: tftp::Ignored::default(),
        ..o
    };
    match p {
        tftp::Packet::Rrq {
            filename,
            mode,
            options,
        } => tftp::Packet::Rrq {
            filename,
            mode,
            options: clear(options),
        },
        tftp::Packet::Wrq {
            filename,
            mode,
            options,
        } => tftp::Packet::Wrq {
            filename,
            mode,
            options: clear(options),
        },
        tftp::Packet::Oack { options } => tftp::Packet::Oack {
            options: clear(options),
        },
        other => other,
    }
}

/// `wire::ipv4`: what `new_checked` accepts keeps every getter in the
/// buffer; `parse` succeeds exactly when the checksum verifies; a header
/// without options is rebuilt byte for byte by `Repr::emit` and the
/// fragmenter's setters. An unfragmented ICMP or UDP payload goes on to
/// [`wire_icmp`] / the UDP checks, as the IP layer would pass it.
pub fn wire_ipv4(data: &[u8]) {
    let unchecked = ipv4::Packet::new_unchecked(data);
    let parsed = ipv4::Repr::parse(&unchecked);
    let _ = unchecked.to_string();
    let p = match ipv4::Packet::new_checked(data) {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(parsed, Err(e), "parse refuses what new_checked refuses");
            let _ = e.to_string();
            return;
        }
    };
    let header_len = p.header_len();
    let total_len = usize::from(p.total_len());
    assert!((ipv4::HEADER_LEN..=ipv4::MAX_HEADER_LEN).contains(&header_len));
    assert!(header_len <= total_len && total_len <= data.len());
    assert_eq!(p.payload().len(), total_len - header_len);
    assert_eq!(p.options().len(), header_len - ipv4::HEADER_LEN);
    assert_eq!(usize::from(p.frag_offset()) % ipv4::FRAGMENT_UNIT, 0);
    let Ok(repr) = parsed else {
        assert_eq!(parsed, Err(ipv4::Error::Checksum));
        assert!(!p.verify_checksum());
        return;
    };
    assert!(p.verify_checksum());
    assert_eq!(repr.buffer_len(), total_len - p.options().len());
    let _ = repr.to_string();
    let reserved_flag = data[6] & 0x80 != 0;
    if p.options().is_empty() && !reserved_flag {
        let mut out = vec![0u8; repr.buffer_len()];
        let mut q = ipv4::Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut q, p.ident());
        q.set_dscp_ecn(p.dscp_ecn());
        q.set_flags_and_offset(p.dont_frag(), p.more_frags(), p.frag_offset());
        q.fill_checksum();
        q.payload_mut().copy_from_slice(p.payload());
        assert!(q.verify_checksum());
        // The checksum may differ by its two zeros (0x0000 / 0xffff).
        out[10..12].copy_from_slice(&data[10..12]);
        assert_eq!(&out[..], &data[..total_len], "ipv4 emit(parse(x)) == x");
    }
    if p.is_fragment() {
        return;
    }
    match repr.protocol {
        ipv4::Protocol::Icmp => wire_icmp(p.payload()),
        ipv4::Protocol::Udp => check_udp(repr.src_addr, repr.dst_addr, p.payload()),
        _ => {}
    }
}

/// `wire::icmp`: a message that parses is rebuilt by `emit`, byte for byte
/// but for the unused word of an error message; `quote` stays in bounds.
pub fn wire_icmp(data: &[u8]) {
    let quoted = icmp::quote(data);
    assert!(data.starts_with(quoted));
    assert!(quoted.len() <= icmp::QUOTED_PAYLOAD_LEN + ipv4::MAX_HEADER_LEN);
    let parsed = icmp::Repr::parse(&icmp::Packet::new_unchecked(data));
    let p = match icmp::Packet::new_checked(data) {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(parsed, Err(e));
            return;
        }
    };
    let Ok(repr) = parsed else {
        return;
    };
    assert!(p.verify_checksum());
    assert_eq!(repr.buffer_len(), data.len());
    let _ = repr.to_string();
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut icmp::Packet::new_unchecked(&mut out[..]));
    let again = icmp::Repr::parse(&icmp::Packet::new_checked(&out[..]).expect("emitted"));
    assert_eq!(again, Ok(repr), "icmp round trip");
    let echo = matches!(
        repr,
        icmp::Repr::EchoRequest { .. } | icmp::Repr::EchoReply { .. }
    );
    if echo && data[1] == 0 {
        out[2..4].copy_from_slice(&data[2..4]);
        assert_eq!(&out[..], data, "icmp emit(parse(x)) == x");
    }
}

/// `wire::udp`: the fuzzer's first 8 bytes are the addresses, the rest
/// the datagram.
pub fn wire_udp(data: &[u8]) {
    let mut r = Reader::new(data);
    let src = Ipv4Addr::from(r.u32());
    let dst = Ipv4Addr::from(r.u32());
    check_udp(src, dst, r.rest());
}

/// A UDP datagram between `src` and `dst` that parses is rebuilt by `emit`
/// byte for byte, but for the checksum when it was 0 (none) or 0xffff.
fn check_udp(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) {
    let unchecked = udp::Packet::new_unchecked(data);
    let _ = unchecked.to_string();
    let parsed = udp::Repr::parse(&unchecked, src, dst);
    let p = match udp::Packet::new_checked(data) {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(parsed, Err(e));
            return;
        }
    };
    let len = usize::from(p.len());
    assert!(udp::HEADER_LEN <= len && len <= data.len());
    assert_eq!(p.payload().len(), len - udp::HEADER_LEN);
    let Ok(repr) = parsed else {
        assert!(!p.verify_checksum(src, dst));
        return;
    };
    let _ = repr.to_string();
    let payload = p.payload();
    let mut out = vec![0u8; repr.buffer_len(payload.len())];
    out[udp::HEADER_LEN..].copy_from_slice(payload);
    repr.emit(
        &mut udp::Packet::new_unchecked(&mut out[..]),
        src,
        dst,
        payload.len(),
    );
    let q = udp::Packet::new_checked(&out[..]).expect("emitted");
    assert_ne!(q.checksum(), 0, "emit always fills a checksum");
    assert_eq!(udp::Repr::parse(&q, src, dst), Ok(repr), "udp round trip");
    if !matches!(p.checksum(), 0 | 0xffff) {
        assert_eq!(&out[..], &data[..len], "udp emit(parse(x)) == x");
    }
}

/// `wire::tcp`: a segment that parses is emitted again and parses back
/// the same (but for SACK blocks that do not fit beside the other options,
/// which emit leaves out, last first); its checksum, filled, verifies.
pub fn wire_tcp(data: &[u8]) {
    let mut r = Reader::new(data);
    let src = Ipv4Addr::from(r.u32());
    let dst = Ipv4Addr::from(r.u32());
    let bytes = r.rest();
    let unchecked = tcp::Packet::new_unchecked(bytes);
    let _ = unchecked.to_string();
    let parsed = tcp::Repr::parse(&unchecked);
    let p = match tcp::Packet::new_checked(bytes) {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(parsed, Err(e));
            return;
        }
    };
    let header_len = usize::from(p.header_len());
    assert!(tcp::HEADER_LEN <= header_len && header_len <= bytes.len());
    assert_eq!(p.payload().len(), bytes.len() - header_len);
    let Ok(repr) = parsed else { return };
    let _ = repr.to_string();
    assert_eq!(repr.payload, p.payload());
    let mut out = vec![0u8; repr.buffer_len()];
    let fits_ipv4 = u16::try_from(out.len()).is_ok();
    let mut q = tcp::Packet::new_unchecked(&mut out[..]);
    repr.emit(&mut q);
    if fits_ipv4 {
        q.fill_checksum(src, dst);
        assert!(q.verify_checksum(src, dst), "a filled checksum verifies");
    }
    let q = tcp::Packet::new_checked(&out[..]).expect("emitted");
    let back = tcp::Repr::parse(&q).expect("emitted segments parse");
    let kept = back.sack_ranges.iter().flatten().count();
    assert!(
        back.sack_ranges[..kept] == repr.sack_ranges[..kept],
        "sack prefix"
    );
    assert_eq!(
        tcp::Repr {
            sack_ranges: repr.sack_ranges,
            ..back
        },
        repr,
        "tcp round trip"
    );
}

/// `wire::http`: heads split anywhere frame alike, the parsers never
/// panic, chunked decoding consumes and ends within its input, and decoded
/// paths re-encode to themselves.
pub fn wire_http(data: &[u8]) {
    let mut r = Reader::new(data);
    let cut = usize::from(r.u16());
    let bytes = r.rest();
    let whole = http::HeadBuffer::request().push(bytes);
    let cut = cut.min(bytes.len());
    let mut split = http::HeadBuffer::request();
    let joined = match split.push(&bytes[..cut]) {
        Ok(None) => split.push(&bytes[cut..]).map(|n| n.map(|n| n + cut)),
        other => other,
    };
    assert_eq!(whole, joined, "framing depends on the split");
    if let Ok(Some(n)) = whole {
        assert!(n <= http::MAX_REQUEST_BYTES);
        if let Ok(req) = http::Request::parse(&bytes[..n])
            && let Ok(path) = http::request_path(req.target)
        {
            let mut encoded = String::new();
            http::percent_encode(&path, &mut encoded);
            let back = http::request_path(&format!("/{encoded}"));
            assert_eq!(
                back.as_deref().ok(),
                Some(&*format!("/{path}")),
                "path round trip"
            );
        }
    }
    let _ = http::Response::parse(bytes);
    let mut decoder = http::ChunkedDecoder::new();
    let mut input = bytes;
    for _ in 0..=bytes.len() {
        let before = input.len();
        match decoder.next(&mut input) {
            Ok(http::Chunk::Data(d)) => assert!(!d.is_empty() && input.len() < before),
            Ok(http::Chunk::Need) => {
                assert!(input.is_empty());
                break;
            }
            Ok(http::Chunk::End) => {
                assert!(decoder.is_done());
                break;
            }
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // The IP targets on arbitrary bytes, between fuzzing campaigns; the
        // corpus replay (`tests/fuzz_regressions.rs`) covers the real
        // captures, which reach the round-trip checks.
        #[test]
        fn ip_targets_hold_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            wire_ipv4(&bytes);
            wire_icmp(&bytes);
            wire_udp(&bytes);
            wire_tcp(&bytes);
        }
    }

    /// Arbitrary bytes rarely reach `wire_tcp`'s round trip: a segment with
    /// every option, 40 bytes of them, does.
    #[test]
    fn wire_tcp_round_trips_a_full_segment() {
        let mut data = vec![192, 0, 2, 2, 192, 0, 2, 1];
        data.extend_from_slice(&[0x9c, 0x40, 0x1b, 0x58, 0, 0, 0, 1, 0, 0, 0, 2]);
        data.extend_from_slice(&[0xf0, 0x12, 0xff, 0xff, 0, 0, 0, 0]);
        data.extend_from_slice(&[2, 4, 5, 0xb4, 3, 3, 7, 4, 2, 8, 10]);
        data.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 8, 5, 18]);
        data.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 1, 1, 1]);
        assert_eq!(data.len(), 8 + 60);
        data.extend_from_slice(b"data");
        let p = tcp::Packet::new_checked(&data[8..]).unwrap();
        let r = tcp::Repr::parse(&p).unwrap();
        assert_eq!(r.sack_ranges, [Some((1, 2)), Some((3, 4)), None]);
        assert_eq!(r.payload, b"data");
        wire_tcp(&data);
    }
}
