//! The amplification table of `docs/protocols/stopwait.md`: what a server
//! sends to a peer that never answers, per byte that peer sent. A report,
//! not a check (the checks are the server's tests): run it with
//! `cargo test --lib proto::stopwait::measure -- --ignored --nocapture`.
//! It uses only the acceptor and the session seam, so the same file runs
//! against other versions of the server on this seam (issue 12's) for a
//! before/after comparison.

use super::{StopwaitAcceptor, StopwaitConfig};
use crate::proto::data::MemoryFiles;
use crate::proto::{
    Admission, Context, DatagramAcceptor, DatagramInput, DatagramSession, EndpointId,
};
use crate::time::Instant;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::rc::Rc;

/// Bytes received and sent, and how long the session lived, when `request`
/// arrives `repeats` times (once a second from t = 0) from one silent
/// address.
fn silent_peer(request: &[u8], repeats: u64) -> (u64, u64, Option<Instant>) {
    let files = MemoryFiles::default();
    files.insert("f", vec![b'x'; 10_000]);
    let mut acceptor = StopwaitAcceptor::new(Rc::new(files), StopwaitConfig::default());
    let peer: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let (mut received, mut sent) = (0u64, 0u64);
    let mut session: Option<Box<dyn DatagramSession>> = None;
    let mut ended = None;
    let end = Instant::from_secs(120);
    let mut next_request = 0u64;
    let mut now = Instant::ZERO;
    while now < end {
        let request_at = (next_request < repeats).then(|| Instant::from_secs(next_request));
        let timer = session.as_ref().and_then(|s| s.poll_timeout());
        let Some(at) = [request_at, timer].into_iter().flatten().min() else {
            break;
        };
        now = at;
        let mut cx = Context::new(now, 1, Some(peer));
        if request_at == Some(now) {
            next_request += 1;
            received += request.len() as u64;
            if session.is_none() {
                let mut reply = BytesMut::new();
                match acceptor.accept(&mut cx, peer, request, &mut reply) {
                    Admission::Start(admit) => session = Some(admit.session),
                    Admission::Reply => sent += reply.len() as u64,
                    Admission::Ignore => {}
                }
            }
            if let Some(s) = session.as_mut() {
                let input = DatagramInput::Datagram {
                    endpoint: EndpointId::HOME,
                    from: peer,
                    payload: request,
                    kernel_ns: None,
                };
                s.handle_input(&mut cx, input);
            }
        } else if let Some(s) = session.as_mut() {
            s.handle_timeout(&mut cx);
        }
        if let Some(s) = session.as_mut() {
            let mut buf = BytesMut::new();
            while s.poll_transmit(&mut cx, 65_507, &mut buf).is_some() {}
            sent += buf.len() as u64;
            if s.poll_close().is_some() {
                session = None;
                ended = Some(now);
            }
        }
    }
    (received, sent, ended)
}

#[test]
#[ignore = "a report, not a check: prints the amplification table"]
fn print_amplification_table() {
    println!("| request | sent by the peer | bytes in | bytes out | factor | session ended at |");
    println!("|---|---|---:|---:|---:|---:|");
    for (label, request) in [("GET `f`", &b"G000000f"[..]), ("PUT `u`", b"P000000u")] {
        for repeats in [1, 3, 10] {
            let (inb, outb, ended) = silent_peer(request, repeats);
            #[allow(clippy::cast_precision_loss, reason = "a ratio for display")]
            let factor = outb as f64 / inb as f64;
            println!(
                "| {label} | {repeats} × ({} B), 1 s apart | {inb} | {outb} | {factor:.1}× | {} |",
                request.len(),
                ended.map_or("still open".into(), |t| t.to_string())
            );
        }
    }
}
