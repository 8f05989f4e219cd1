//! Server targets: each builds its server from the first bytes (limits,
//! timers, files), then plays the rest as a script against it in a
//! [`World`].
//!
//! Datagrams and stream chunks are mostly made from templates of the
//! protocol's own requests (with fuzzed fields), sometimes raw bytes: a
//! short run then reaches deep states (a transfer's tenth block, a window's
//! retransmission) instead of stopping at the parser.

use super::Reader;
use super::world::{Checks, Server, World, nothing, peer};
use crate::proto::budget::{self, BudgetConfig, SharedBudget};
use crate::proto::data::MemoryFiles;
use crate::proto::hello::{HelloDatagramAcceptor, HelloStreamAcceptor, Registry, SharedRegistry};
use crate::proto::http::HttpAcceptor;
use crate::proto::idle::TcpTimeouts;
use crate::proto::lab::{LabConfig, LabDatagramAcceptor, LabStreamAcceptor};
use crate::proto::msg::MsgAcceptor;
use crate::proto::stopwait::{StopwaitAcceptor, StopwaitConfig};
use crate::proto::tcpfile::TcpFileAcceptor;
use crate::proto::tftp::{TftpAcceptor, TftpConfig};
use crate::time::{Duration, Instant};
use crate::wire;
use std::rc::Rc;

/// Script steps at most; inputs are short anyway.
const MAX_STEPS: usize = 1024;

/// One step of a script.
#[derive(Clone, Copy)]
enum Op {
    /// Let time pass.
    Jump,
    /// Jump to the next deadline, and a little beyond.
    ToDeadline,
    /// A new TCP connection.
    Connect,
    /// Bytes on a connection.
    Chunk,
    /// A peer shuts its write half down.
    End,
    /// A peer reads some of what it was sent.
    Read,
    /// A datagram to the server's socket.
    Datagram,
    /// A datagram to a transfer's own socket.
    ToSession,
    /// A socket fails.
    Fail,
}

const TCP_OPS: &[Op] = &[
    Op::Jump,
    Op::ToDeadline,
    Op::Connect,
    Op::Chunk,
    Op::Chunk,
    Op::Chunk,
    Op::End,
    Op::Read,
    Op::Read,
    Op::Fail,
];
const UDP_OPS: &[Op] = &[
    Op::Jump,
    Op::Jump,
    Op::ToDeadline,
    Op::Datagram,
    Op::Datagram,
    Op::Datagram,
    Op::ToSession,
    Op::ToSession,
    Op::ToSession,
    Op::Fail,
];
const BOTH_OPS: &[Op] = &[
    Op::Jump,
    Op::ToDeadline,
    Op::Connect,
    Op::Chunk,
    Op::Chunk,
    Op::End,
    Op::Read,
    Op::Datagram,
    Op::Datagram,
    Op::Fail,
];

/// How a target makes its inputs.
struct Script {
    ops: &'static [Op],
    chunk: fn(&mut Reader<'_>) -> Vec<u8>,
    datagram: fn(&mut Reader<'_>) -> Vec<u8>,
}

fn none(_: &mut Reader<'_>) -> Vec<u8> {
    Vec::new()
}

/// A time jump: µs, ms, s or minutes, up to 16383 of them.
fn jump(r: &mut Reader<'_>) -> Duration {
    let v = r.u16();
    let n = u64::from(v & 0x3fff);
    match v >> 14 {
        0 => Duration::from_micros(n),
        1 => Duration::from_millis(n),
        2 => Duration::from_secs(n),
        _ => Duration::from_secs(n * 60),
    }
}

fn play(r: &mut Reader<'_>, world: &mut World, script: &Script) {
    for _ in 0..MAX_STEPS {
        if r.is_empty() || world.exhausted() {
            break;
        }
        match script.ops[r.below(script.ops.len())] {
            Op::Jump => world.advance(jump(r)),
            Op::ToDeadline => {
                let extra = Duration::from_micros(u64::from(r.u8()) * 100);
                world.advance_to_next_deadline(extra);
            }
            Op::Connect => world.connect(peer(r.below(4))),
            Op::Chunk => {
                let n = r.below(8);
                let bytes = (script.chunk)(r);
                world.stream(n, &bytes);
            }
            Op::End => world.stream_end(r.below(8)),
            Op::Read => {
                let n = r.below(8);
                let max = match r.u8() {
                    0 => usize::MAX,
                    b => usize::from(b) << (r.u8() % 12),
                };
                world.peer_reads(n, max);
            }
            Op::ToSession if world.has_own_sockets() => {
                let n = r.below(8);
                let from = peer(r.below(8) / 7); // mostly the first peer
                let payload = (script.datagram)(r);
                world.datagram_to_session(n, from, &payload);
            }
            // Without sockets of their own, sessions hear only the listener.
            Op::Datagram | Op::ToSession => {
                let from = peer(r.below(4));
                let payload = (script.datagram)(r);
                world.datagram_to_listener(from, &payload);
            }
            Op::Fail => world.fail(r.below(8)),
        }
    }
}

/// The start of time: zero, or somewhere in the first hours.
fn start(r: &mut Reader<'_>) -> Instant {
    Instant::from_millis(u64::from(r.u16()) * 1000)
}

/// The output buffer's high-water mark: tiny ones make sessions emit in
/// pieces.
fn high_water(r: &mut Reader<'_>) -> usize {
    [1, 7, 100, 4096, 65_536, 256 * 1024][r.below(6)]
}

/// The state a server's protocols share across sessions: hello's ID
/// registry and the process-wide UDP budget. Every target reads it, used or
/// not, so the bytes after it mean the same to every target and the saved
/// corpora and regressions keep their meaning.
struct Shared {
    registry: SharedRegistry,
    budget: SharedBudget,
}

fn shared(r: &mut Reader<'_>) -> Shared {
    let ttl = Duration::from_millis(u64::from(r.u16()) * 10 + 1);
    let max_ids = r.below(16) + 1;
    let registry = Registry::shared(ttl, max_ids);
    let budget = budget::shared(BudgetConfig {
        peer_rate: u64::from(r.u16()) * 100 + 1,
        peer_burst: u64::from(r.u16()) * 16 + 1,
        global_rate: u64::from(r.u16()) * 1000 + 1,
        global_burst: u64::from(r.u16()) * 64 + 1,
        trust_loopback: r.bool(),
    });
    Shared { registry, budget }
}

/// A store with three files (binary, text with every line ending, zeros)
/// of fuzzed sizes.
fn files(r: &mut Reader<'_>) -> MemoryFiles {
    let mut files = MemoryFiles::default();
    files.allow_overwrite = r.bool();
    if r.bool() {
        files.max_file_size = Some(u64::from(r.u16()));
    }
    let text = b"line\r\nbare\rlf\n\n\r\r\n\0x";
    for (i, name) in ["f0", "f1", "f2"].into_iter().enumerate() {
        let len = usize::from(r.u16()) % 24_000;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "a test pattern: the low byte is the point"
        )]
        let bytes = (0..len)
            .map(|j| match i {
                0 => (j * 31 + 7) as u8,
                1 => text[j % text.len()],
                _ => 0,
            })
            .collect();
        files.insert(name, bytes);
    }
    files
}

/// A file name: one of the store's, a new one, a forbidden one, or raw.
fn name(r: &mut Reader<'_>) -> Vec<u8> {
    const NAMES: &[&str] = &[
        "f0", "f1", "f2", "new", "new2", "d/x", "../up", "/abs", "a/../f0", "",
    ];
    match r.below(NAMES.len() + 1) {
        i if i < NAMES.len() => NAMES[i].as_bytes().to_vec(),
        _ => r.short_bytes().to_vec(),
    }
}

fn decimal(n: u64) -> Vec<u8> {
    n.to_string().into_bytes()
}

fn filler(r: &mut Reader<'_>, len: usize) -> Vec<u8> {
    let b = r.u8();
    filled(b, len)
}

fn filled(b: u8, len: usize) -> Vec<u8> {
    (0..=u8::MAX)
        .cycle()
        .take(len)
        .map(|i| b.wrapping_add(i))
        .collect()
}

// ---- hello ---------------------------------------------------------------

fn hello_request(r: &mut Reader<'_>) -> Vec<u8> {
    match r.below(6) {
        0..=2 => {
            let id = u16::from(r.u8() % 24);
            match r.below(3) {
                0 => format!("HELLO {id}"),
                1 => format!("HELLO {id:04}"),
                _ => format!("HELLO {:0w$}", id, w = r.below(6)),
            }
            .into_bytes()
        }
        3 => vec![b'H'; usize::from(r.u16() % 600)],
        _ => r.short_bytes().to_vec(),
    }
}

fn hello_line(r: &mut Reader<'_>) -> Vec<u8> {
    let mut line = hello_request(r);
    match r.below(4) {
        0 => {}
        1 => line.extend_from_slice(b"\r\n"),
        _ => line.push(b'\n'),
    }
    line
}

fn hello_answer(bytes: &[u8]) {
    let answer = wire::line::trim_datagram(bytes);
    assert!(
        wire::hello::Response::parse(answer).is_ok(),
        "hello answer does not parse: {:?}",
        String::from_utf8_lossy(bytes)
    );
}

fn hello_answers(transcript: &[u8]) {
    let mut lines = transcript.split(|&b| b == b'\n');
    lines.next_back(); // unterminated, or empty
    for l in lines {
        hello_answer(l);
    }
}

/// The hello server: its TCP sessions and UDP answers over one registry.
pub fn server_hello(data: &[u8]) {
    let mut r = Reader::new(data);
    let start = start(&mut r);
    let hw = high_water(&mut r);
    let shared = shared(&mut r);
    let timeouts = TcpTimeouts {
        idle: Duration::from_millis(u64::from(r.u16()) * 10),
        request: Duration::from_millis(u64::from(r.u16()) * 10),
    };
    let server = Server {
        stream: Some(Box::new(HelloStreamAcceptor::new(
            shared.registry.clone(),
            timeouts,
        ))),
        datagram: Some(Box::new(HelloDatagramAcceptor::new(shared.registry))),
    };
    let checks = Checks {
        datagram: hello_answer,
        stream: hello_answers,
        udp_sessions_end: false,
    };
    let mut world = World::new(server, start, hw, checks);
    let script = Script {
        ops: BOTH_OPS,
        chunk: hello_line,
        datagram: hello_line,
    };
    play(&mut r, &mut world, &script);
    world.finish();
}

// ---- lab -----------------------------------------------------------------

fn lab_request(r: &mut Reader<'_>) -> Vec<u8> {
    match r.below(6) {
        0 | 1 => decimal(u64::from(r.u32() % 300_000)),
        2 | 3 => {
            const INTERVALS: &[&str] =
                &["0", "0.1", "1", "2.5", ".5", "1000", "3600000", "0.0000005"];
            let interval = INTERVALS[r.below(INTERVALS.len())];
            let count = r.u8();
            let size = match r.below(3) {
                0 => u32::from(r.u8()),
                1 => u32::from(r.u16()),
                _ => r.u32(),
            };
            format!("stream-{interval}-{count}-{size}").into_bytes()
        }
        _ => r.short_bytes().to_vec(),
    }
}

fn lab_line(r: &mut Reader<'_>) -> Vec<u8> {
    let mut line = lab_request(r);
    if r.bool() {
        line.push(b'\n');
    }
    line
}

/// The lab server: TCP lines and UDP datagrams, files and paced streams,
/// under small limits and a UDP send budget.
pub fn server_lab(data: &[u8]) {
    let mut r = Reader::new(data);
    let start = start(&mut r);
    let hw = high_water(&mut r);
    let shared = shared(&mut r);
    let config = LabConfig {
        stream_max_count: u64::from(r.u8() % 64) + 1,
        file_max: u64::from(r.u32() % 262_144),
        segment: usize::from(r.u16() % 1400) + 1,
        line_max: usize::from(r.u16() % 1024) + 2,
        tcp_segment_max: u32::from(r.u16()) + 16,
    };
    let checks = Checks {
        datagram: nothing,
        stream: nothing,
        udp_sessions_end: false,
    };
    let server = Server {
        stream: Some(Box::new(LabStreamAcceptor::new(config))),
        datagram: Some(Box::new(LabDatagramAcceptor::new(config, shared.budget))),
    };
    let mut world = World::new(server, start, hw, checks);
    let script = Script {
        ops: BOTH_OPS,
        chunk: lab_line,
        datagram: lab_request,
    };
    play(&mut r, &mut world, &script);
    world.finish();
}

// ---- msg -----------------------------------------------------------------

fn msg_chunk(r: &mut Reader<'_>) -> Vec<u8> {
    match r.below(4) {
        0 | 1 => {
            let len = match r.below(3) {
                0 => u32::from(r.u8()),
                1 => u32::from(r.u16()),
                _ => r.u32(),
            };
            let mut frame = len.to_be_bytes().to_vec();
            let body = r.u8();
            frame.extend(filler(r, usize::from(body)));
            frame
        }
        2 => filled(r.u8(), usize::from(r.u16() % 8192)),
        _ => r.short_bytes().to_vec(),
    }
}

fn msg_answers(transcript: &[u8]) {
    let mut rest = transcript;
    while let Ok(h) = wire::msg::FrameHeader::parse(rest) {
        let Some(payload) = rest.get(wire::msg::HEADER_LEN..wire::msg::HEADER_LEN + h.len as usize)
        else {
            return;
        };
        assert!(
            wire::msg::Answer::parse(payload).is_ok(),
            "msg answer does not parse: {:?}",
            String::from_utf8_lossy(payload)
        );
        rest = &rest[wire::msg::HEADER_LEN + payload.len()..];
    }
}

/// The msg server: frames split and joined at random.
pub fn server_msg(data: &[u8]) {
    let mut r = Reader::new(data);
    let start = start(&mut r);
    let hw = high_water(&mut r);
    let _ = shared(&mut r);
    let max = match r.below(3) {
        0 => u32::from(r.u8()),
        1 => u32::from(r.u16()),
        _ => wire::msg::DEFAULT_MAX,
    };
    let checks = Checks {
        datagram: nothing,
        stream: msg_answers,
        udp_sessions_end: false,
    };
    let mut world = World::new(Server::stream(MsgAcceptor::new(max)), start, hw, checks);
    let script = Script {
        ops: TCP_OPS,
        chunk: msg_chunk,
        datagram: none,
    };
    play(&mut r, &mut world, &script);
    world.finish();
}

// ---- tcpfile -------------------------------------------------------------

fn tcpfile_chunk(r: &mut Reader<'_>) -> Vec<u8> {
    let mut line = match r.below(6) {
        0 | 1 => {
            let mut l = name(r);
            l.extend_from_slice(if r.bool() { b":GET" } else { b" : GET " });
            l
        }
        2 => {
            let mut l = name(r);
            l.extend_from_slice(b":PUT");
            l
        }
        3 => {
            let mut l = name(r);
            l.extend_from_slice(b":PUT:");
            l.extend(decimal(u64::from(r.u16())));
            l
        }
        4 => return filled(r.u8(), usize::from(r.u16() % 4096)),
        _ => return r.short_bytes().to_vec(),
    };
    line.push(b'\n');
    line
}

fn tcpfile_answer(transcript: &[u8]) {
    if let Some(nl) = transcript.iter().position(|&b| b == b'\n') {
        assert!(
            wire::tcpfile::Response::parse(&transcript[..nl]).is_ok(),
            "tcpfile answer does not parse: {:?}",
            String::from_utf8_lossy(&transcript[..nl])
        );
    }
}

/// The tcpfile server over the in-memory store.
pub fn server_tcpfile(data: &[u8]) {
    let mut r = Reader::new(data);
    let start = start(&mut r);
    let hw = high_water(&mut r);
    let _ = shared(&mut r);
    let files = files(&mut r);
    let acceptor = TcpFileAcceptor::new(Rc::new(files)).with_zero_copy(r.bool());
    let checks = Checks {
        datagram: nothing,
        stream: tcpfile_answer,
        udp_sessions_end: false,
    };
    let mut world = World::new(Server::stream(acceptor), start, hw, checks);
    let script = Script {
        ops: TCP_OPS,
        chunk: tcpfile_chunk,
        datagram: none,
    };
    play(&mut r, &mut world, &script);
    world.finish();
}

// ---- http ----------------------------------------------------------------

fn http_chunk(r: &mut Reader<'_>) -> Vec<u8> {
    const METHODS: &[&[u8]] = &[b"GET", b"HEAD", b"POST", b"get", b"G"];
    let mut req = match r.below(7) {
        0..=2 => {
            let mut l = METHODS[r.below(METHODS.len())].to_vec();
            l.extend_from_slice(b" /");
            let name = name(r);
            let mut encoded = String::new();
            wire::http::percent_encode(&String::from_utf8_lossy(&name), &mut encoded);
            l.extend_from_slice(if r.bool() { encoded.as_bytes() } else { &name });
            l.extend_from_slice(if r.bool() {
                b" HTTP/1.1\r\nHost: h\r\n"
            } else {
                b" HTTP/1.0\n"
            });
            l
        }
        3 => b"X-A: b\r\n".to_vec(),
        4 => return filled(r.u8(), usize::from(r.u16() % 9000)),
        5 => return b"\r\n".to_vec(),
        _ => return r.short_bytes().to_vec(),
    };
    if r.bool() {
        req.extend_from_slice(b"\r\n");
    }
    req
}

/// Whatever a connection sent starts with one well-formed response head
/// that closes the connection, and a body no longer than it announced.
fn http_answer(transcript: &[u8]) {
    let mut head = wire::http::HeadBuffer::response();
    let Ok(Some(n)) = head.push(transcript) else {
        assert!(
            // A reader may have taken only the first bytes.
            transcript.starts_with(b"HTTP/1.1 ") || b"HTTP/1.1 ".starts_with(transcript),
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&transcript[..transcript.len().min(64)])
        );
        return;
    };
    let response = wire::http::Response::parse(head.head()).expect("the server's head parses");
    assert!(
        head.head()
            .windows(19)
            .any(|w| w == b"Connection: close\r\n"),
        "every answer closes"
    );
    if let Some(len) = response.content_length {
        assert!(
            (transcript.len() - n) as u64 <= len,
            "a body beyond its length"
        );
    }
}

/// The HTTP server over the in-memory store.
pub fn server_http(data: &[u8]) {
    let mut r = Reader::new(data);
    let start = start(&mut r);
    let hw = high_water(&mut r);
    let _ = shared(&mut r);
    let files = files(&mut r);
    let timeouts = TcpTimeouts {
        idle: Duration::from_millis(u64::from(r.u16()) + 1),
        request: Duration::from_millis(u64::from(r.u16()) + 1),
    };
    let acceptor = HttpAcceptor::new(Rc::new(files))
        .with_zero_copy(r.bool())
        .with_timeouts(timeouts);
    let checks = Checks {
        datagram: nothing,
        stream: http_answer,
        udp_sessions_end: false,
    };
    let mut world = World::new(Server::stream(acceptor), start, hw, checks);
    let script = Script {
        ops: TCP_OPS,
        chunk: http_chunk,
        datagram: none,
    };
    play(&mut r, &mut world, &script);
    world.finish();
}

// ---- stopwait ------------------------------------------------------------

fn stopwait_datagram(r: &mut Reader<'_>) -> Vec<u8> {
    if r.below(8) == 0 {
        return r.short_bytes().to_vec();
    }
    let kind = b"GPADFEX"[r.below(7)];
    let bit = b"01F2"[r.below(4)];
    let block = match r.below(4) {
        0 => u32::from(r.u16()) % 100_000,
        _ => u32::from(r.u8() % 16),
    };
    let mut d = vec![kind, bit];
    d.extend_from_slice(format!("{block:05}").as_bytes());
    match kind {
        b'G' | b'P' => d.extend(name(r)),
        b'D' => {
            let len = usize::from(r.u8() % 112);
            d.extend(filler(r, len));
        }
        _ => d.extend_from_slice(r.short_bytes()),
    }
    d
}

fn stopwait_answer(bytes: &[u8]) {
    match wire::stopwait::Packet::parse(bytes) {
        Ok(p) => assert!(
            !matches!(
                p.kind,
                wire::stopwait::Kind::Get | wire::stopwait::Kind::Put
            ),
            "the server sent a request"
        ),
        Err(e) => panic!(
            "stopwait datagram does not parse ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// The stopwait server: GET and PUT sessions on the shared socket.
pub fn server_stopwait(data: &[u8]) {
    let mut r = Reader::new(data);
    let start = start(&mut r);
    let shared = shared(&mut r);
    let files = files(&mut r);
    let config = StopwaitConfig {
        timeout: Duration::from_millis(u64::from(r.u16() % 10_000) + 1),
        tries: u32::from(r.u8() % 7),
        max_sessions: r.below(8) + 1,
        max_sessions_per_peer: r.below(4) + 1,
        unvalidated_lifetime: Duration::from_millis(u64::from(r.u16() % 10_000) + 1),
    };
    let checks = Checks {
        datagram: stopwait_answer,
        stream: nothing,
        udp_sessions_end: true,
    };
    let acceptor = StopwaitAcceptor::new(Rc::new(files), config).with_budget(shared.budget);
    let mut world = World::new(Server::datagram(acceptor), start, 1, checks);
    let script = Script {
        ops: UDP_OPS,
        chunk: none,
        datagram: stopwait_datagram,
    };
    play(&mut r, &mut world, &script);
    world.finish();
}

// ---- tftp ----------------------------------------------------------------

fn tftp_options(r: &mut Reader<'_>, d: &mut Vec<u8>) {
    let mask = r.u8();
    let mut option = |name: &[u8], value: Vec<u8>| {
        d.extend_from_slice(name);
        d.push(0);
        d.extend(value);
        d.push(0);
    };
    if mask & 1 != 0 {
        let v = match r.below(3) {
            0 => u64::from(r.u16() % 1500),
            _ => u64::from(r.u16()),
        };
        option(b"blksize", decimal(v));
    }
    if mask & 2 != 0 {
        option(b"timeout", decimal(u64::from(r.u8())));
    }
    if mask & 4 != 0 {
        option(b"tsize", decimal(u64::from(r.u32())));
    }
    if mask & 8 != 0 {
        option(b"windowsize", decimal(u64::from(r.u8() % 70)));
    }
    if mask & 16 != 0 {
        option(b"utimeout", decimal(u64::from(r.u16())));
    }
    if mask & 32 != 0 {
        let name = r.short_bytes().to_vec();
        option(&name, r.short_bytes().to_vec());
    }
}

fn tftp_block(r: &mut Reader<'_>) -> u16 {
    match r.u8() {
        255 => r.u16(),
        b => u16::from(b),
    }
}

fn tftp_datagram(r: &mut Reader<'_>) -> Vec<u8> {
    const MODES: &[&[u8]] = &[b"octet", b"netascii", b"NetAscii", b"mail", b""];
    let op = r.below(9);
    let mut d = Vec::new();
    match op {
        0 | 1 => {
            let opcode = if op == 0 { 1 } else { 2 }; // RRQ, WRQ
            d.extend_from_slice(&[0, opcode]);
            d.extend(name(r));
            d.push(0);
            d.extend_from_slice(MODES[r.below(MODES.len())]);
            d.push(0);
            tftp_options(r, &mut d);
        }
        2 | 3 => {
            d.extend_from_slice(&[0, 3]);
            d.extend_from_slice(&tftp_block(r).to_be_bytes());
            let len = match r.below(4) {
                0 => 512,
                1 => usize::from(r.u16() % 1600),
                _ => usize::from(r.u8()),
            };
            d.extend(filler(r, len));
        }
        4 | 5 => {
            d.extend_from_slice(&[0, 4]);
            d.extend_from_slice(&tftp_block(r).to_be_bytes());
        }
        6 => {
            d.extend_from_slice(&[0, 5, 0, r.u8() % 10]);
            d.extend_from_slice(r.short_bytes());
            d.push(0);
        }
        7 => {
            d.extend_from_slice(&[0, 6]);
            tftp_options(r, &mut d);
        }
        _ => d.extend_from_slice(r.short_bytes()),
    }
    d
}

fn tftp_answer(bytes: &[u8]) {
    match wire::tftp::Packet::parse(bytes) {
        Ok(p) => assert!(
            !matches!(
                p,
                wire::tftp::Packet::Rrq { .. } | wire::tftp::Packet::Wrq { .. }
            ),
            "the server sent a request"
        ),
        Err(e) => panic!("tftp datagram does not parse ({e}): {bytes:?}"),
    }
}

/// The TFTP server: transfers on their own sockets, options, windows,
/// strangers, and the acceptor's bounds.
pub fn server_tftp(data: &[u8]) {
    let mut r = Reader::new(data);
    let start = start(&mut r);
    let _ = shared(&mut r);
    let files = files(&mut r);
    let config = TftpConfig {
        max_blksize: r.u16().clamp(8, 65_464),
        max_windowsize: u16::from(r.u8() % 64) + 1,
        timeout: Duration::from_millis(u64::from(r.u16() % 5000) + 1),
        tries: u32::from(r.u8() % 7),
        read_only: r.below(4) == 0,
        max_sessions: r.below(8) + 1,
        max_sessions_per_peer: r.below(4) + 1,
        unvalidated_lifetime: Duration::from_millis(u64::from(r.u16() % 10_000) + 1),
    };
    let checks = Checks {
        datagram: tftp_answer,
        stream: nothing,
        udp_sessions_end: true,
    };
    let acceptor = TftpAcceptor::new(Rc::new(files), config);
    let mut world = World::new(Server::datagram(acceptor), start, 1, checks);
    let script = Script {
        ops: UDP_OPS,
        chunk: none,
        datagram: tftp_datagram,
    };
    play(&mut r, &mut world, &script);
    world.finish();
}
