//! The hello server: a stateless UDP answerer and a per-connection TCP session.
//!
//! Owns the decision "request line → answer", the TCP connection's
//! lifecycle (several requests per connection; close after `RESET` or
//! `ERROR`) and the registry's expiry deadline, which both acceptors
//! report. Registration and expiry belong to the [`Registry`] that the
//! acceptors and the sessions share ([`SharedRegistry`]); sockets belong to
//! the reactor.

use super::registry::{Refused, Registry, SharedRegistry};
use crate::proto::idle::{IdleTimer, TcpTimeouts};
use crate::proto::{
    Admission, CloseReason, Context, DatagramAcceptor, Driven, StreamAcceptor, StreamInput,
    StreamSession, Wake,
};
use crate::time::{Duration, Instant};
use crate::wire::hello::{MAX_REQUEST, Refusal, Request as HelloRequest, Response};
use crate::wire::line;
use bytes::{Buf, BytesMut};
use log::{debug, trace};
use std::net::SocketAddr;

/// Answers one request line from `peer` at `now`. The second value is
/// `true` when the answer ends the conversation (RESET or ERROR), which over
/// TCP means the server closes.
fn answer(
    registry: &mut Registry,
    request: &[u8],
    peer: SocketAddr,
    now: Instant,
) -> (Response<'static>, bool) {
    let id = match HelloRequest::parse(request) {
        Ok(req) => req.id,
        Err(e) => {
            let reason = Refusal::from(e).as_str();
            return (Response::Error { reason }, true);
        }
    };
    match registry.register(id, now) {
        Ok(_) => (Response::Ok { id, peer }, false),
        Err(Refused::Taken) => (Response::Reset { id }, true),
        Err(Refused::Full) => (
            Response::Error {
                reason: Refusal::Busy.as_str(),
            },
            true,
        ),
    }
}

/// hello's two acceptors over one new registry whose IDs live `ttl` and
/// which holds at most `max_ids` of them: the TCP one (its connections
/// close after the idle and request limits of `timeouts`), the UDP one, and
/// the registry itself, for whoever wants to look at it. Give the first to
/// the TCP listener and the second to the UDP socket.
pub fn acceptors(
    ttl: Duration,
    max_ids: usize,
    timeouts: TcpTimeouts,
) -> (HelloStreamAcceptor, HelloDatagramAcceptor, SharedRegistry) {
    let registry = Registry::shared(ttl, max_ids);
    (
        HelloStreamAcceptor::new(registry.clone(), timeouts),
        HelloDatagramAcceptor::new(registry.clone()),
        registry,
    )
}

/// The registry's one deadline, as each acceptor reports it: its oldest
/// pending expiry. Both acceptors report the same one; whichever pops
/// first ends what is due and the other's pop finds nothing to do.
fn next_expiry(registry: &SharedRegistry) -> Option<Instant> {
    registry.borrow().next_expiry()
}

/// Ends the registrations due at `cx.now`.
fn expire_due(registry: &SharedRegistry, cx: &Context) {
    let ended = registry.borrow_mut().expire_due(cx.now);
    trace!("{ended} hello id(s) expired");
}

/// The acceptor on hello's TCP listener.
#[derive(Debug)]
pub struct HelloStreamAcceptor {
    registry: SharedRegistry,
    timeouts: TcpTimeouts,
}

impl HelloStreamAcceptor {
    /// Connections registering in `registry`, closed after the idle and
    /// request limits of `timeouts` (see [`crate::proto::idle`]).
    pub fn new(registry: SharedRegistry, timeouts: TcpTimeouts) -> Self {
        Self { registry, timeouts }
    }
}

/// The registry's expiry is this acceptor's deadline.
impl Driven for HelloStreamAcceptor {
    fn handle_timeout(&mut self, cx: &mut Context) {
        expire_due(&self.registry, cx);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        next_expiry(&self.registry)
    }

    /// Coarse: the registry treats an ID as free from its expiry instant on
    /// whatever the heap says, so the pop only does bookkeeping and may be
    /// late.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }
}

impl StreamAcceptor for HelloStreamAcceptor {
    fn accept(&mut self, cx: &mut Context, peer: SocketAddr) -> Option<Box<dyn StreamSession>> {
        Some(Box::new(HelloStream::new(
            self.registry.clone(),
            peer,
            cx.now,
            self.timeouts,
        )))
    }
}

/// The acceptor on hello's UDP socket. UDP is one request per datagram and
/// one answer per request, so no session is kept: the answer goes straight
/// back.
#[derive(Debug)]
pub struct HelloDatagramAcceptor {
    registry: SharedRegistry,
}

impl HelloDatagramAcceptor {
    /// Answers registering in `registry`.
    pub fn new(registry: SharedRegistry) -> Self {
        Self { registry }
    }
}

/// The registry's expiry is this acceptor's deadline too, so expiry does
/// not hinge on the TCP listener existing.
impl Driven for HelloDatagramAcceptor {
    fn handle_timeout(&mut self, cx: &mut Context) {
        expire_due(&self.registry, cx);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        next_expiry(&self.registry)
    }

    /// Coarse, for the same reason as [`HelloStreamAcceptor`]'s.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }
}

impl DatagramAcceptor for HelloDatagramAcceptor {
    fn accept(
        &mut self,
        cx: &mut Context,
        from: SocketAddr,
        payload: &[u8],
        reply: &mut BytesMut,
    ) -> Admission {
        let request = line::trim_datagram(payload);
        let request = if payload.len() > MAX_REQUEST {
            payload
        } else {
            request
        };
        let (response, _) = answer(&mut self.registry.borrow_mut(), request, from, cx.now);
        trace!("{} udp {response}", cx.tag);
        response.emit(reply);
        Admission::Reply
    }
}

/// One hello TCP connection: any number of request lines, each answered by a
/// line; `RESET` or `ERROR` closes it.
#[derive(Debug)]
pub struct HelloStream {
    registry: SharedRegistry,
    peer: SocketAddr,
    /// Bytes of a request line that has not ended yet (< `MAX_REQUEST`).
    partial: Vec<u8>,
    /// Answers not yet handed to the reactor.
    out: BytesMut,
    close: Option<CloseReason>,
    closing: bool,
    /// The idle and request clocks: a request is a line, begun by its
    /// first byte (the first one at accept).
    timer: IdleTimer,
}

impl HelloStream {
    /// A fresh connection from `peer`, accepted at `now`, registering in
    /// `registry`.
    pub fn new(
        registry: SharedRegistry,
        peer: SocketAddr,
        now: Instant,
        timeouts: TcpTimeouts,
    ) -> Self {
        Self {
            registry,
            peer,
            partial: Vec::new(),
            out: BytesMut::new(),
            close: None,
            closing: false,
            timer: IdleTimer::new(now, timeouts),
        }
    }

    fn finish(&mut self, reason: CloseReason) {
        if !self.closing {
            self.closing = true;
            self.close = Some(reason);
        }
    }

    /// Answers every complete line at the front of `buf`; returns how many
    /// bytes were consumed. Stops at the first answer that closes.
    fn handle_lines(&mut self, cx: &Context, buf: &[u8]) -> usize {
        let mut pos = 0;
        while !self.closing {
            let (request, consumed) = match line::split(&buf[pos..], MAX_REQUEST) {
                Ok(Some(l)) => (&buf[pos..pos + l.len], l.consumed),
                Ok(None) => break,
                // Too long: answered and closed below, whatever follows.
                Err(_) => (&buf[pos..pos + MAX_REQUEST], buf.len() - pos),
            };
            let (response, ends) =
                answer(&mut self.registry.borrow_mut(), request, self.peer, cx.now);
            debug!("{} {response}", cx.tag);
            response.emit(&mut self.out);
            self.out.extend_from_slice(b"\n");
            self.timer.end_request();
            pos += consumed;
            if ends {
                self.finish(CloseReason::Protocol("hello request refused"));
            }
        }
        pos
    }

    /// Answers the complete lines in `bytes`, joined with any partial line
    /// kept from before; keeps the rest.
    fn handle_bytes(&mut self, cx: &Context, mut bytes: &[u8]) {
        loop {
            if self.partial.is_empty() {
                // The common case: whole lines in one read, parsed in place.
                let used = self.handle_lines(cx, bytes);
                if !self.closing {
                    // No newline in what is left, and it is shorter than
                    // MAX_REQUEST, or `split` would have said so.
                    self.partial.extend_from_slice(&bytes[used..]);
                }
                return;
            }
            // Join just enough to complete the partial line: never hold
            // more than one over-long line's worth.
            let room = MAX_REQUEST - self.partial.len();
            let (head, tail) = bytes.split_at(bytes.len().min(room));
            let mut joined = core::mem::take(&mut self.partial);
            joined.extend_from_slice(head);
            let used = self.handle_lines(cx, &joined);
            if self.closing {
                return;
            }
            joined.drain(..used);
            self.partial = joined;
            if tail.is_empty() {
                return;
            }
            // A full window yields a line or an error, so `used > 0` here
            // and every pass makes progress.
            bytes = tail;
        }
    }
}

impl Driven for HelloStream {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if self.closing {
            return;
        }
        if let Some(expired) = self.timer.on_timeout(cx.now) {
            debug!("{} {}: closing", cx.tag, expired.as_str());
            self.finish(CloseReason::TimedOut { tries: 1 });
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.closing {
            None
        } else {
            self.timer.poll_timeout()
        }
    }

    /// The idle and request limits may fire a little late, never early.
    fn wake(&self) -> Wake {
        Wake::Coarse
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl StreamSession for HelloStream {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        if self.closing {
            return;
        }
        match input {
            StreamInput::Bytes(bytes) => {
                self.timer.touch(cx.now);
                self.handle_bytes(cx, bytes);
                if !self.closing && !self.partial.is_empty() {
                    self.timer.begin_request(cx.now);
                }
            }
            StreamInput::End => self.finish(CloseReason::PeerClosed),
            StreamInput::Failed(_) => self.finish(CloseReason::Aborted),
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        if self.out.is_empty() || limit == 0 {
            return None;
        }
        Some(self.hand_over(cx.now, limit, buf))
    }
}

impl HelloStream {
    /// Moves up to `limit` bytes of answers into `buf`. Out of line: most
    /// polls find nothing to send, and inlined this would make each of them
    /// save and restore the registers it needs.
    #[inline(never)]
    fn hand_over(&mut self, now: Instant, limit: usize, buf: &mut BytesMut) -> usize {
        let len = self.out.len().min(limit);
        if len == self.out.len() && buf.is_empty() {
            // All of it fits and nothing is ahead of it: hand the buffer
            // over instead of copying it into a new allocation.
            core::mem::swap(buf, &mut self.out);
        } else {
            // `advance`, not `split_to`: splitting would turn the buffer
            // into a shared one, an allocation per answer.
            buf.extend_from_slice(&self.out[..len]);
            self.out.advance(len);
        }
        self.timer.touch(now);
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::idle::testing::timed_out_by;
    use crate::proto::testing::{at, cx, drain_tx, feed};

    const PEER: &str = "127.0.0.1:40000";

    fn peer() -> SocketAddr {
        PEER.parse().unwrap()
    }

    /// A registry of `max_ids` IDs that live `ttl`.
    fn shared(ttl: Duration, max_ids: usize) -> SharedRegistry {
        Registry::shared(ttl, max_ids)
    }

    /// A connection from `peer()` accepted at `now`, over `sh`.
    fn stream(sh: &SharedRegistry, now: Instant, timeouts: TcpTimeouts) -> HelloStream {
        HelloStream::new(sh.clone(), peer(), now, timeouts)
    }

    fn udp(sh: &SharedRegistry, now: Instant, payload: &[u8]) -> Vec<u8> {
        let mut reply = BytesMut::new();
        assert!(matches!(
            HelloDatagramAcceptor::new(sh.clone()).accept(
                &mut cx(now, None),
                peer(),
                payload,
                &mut reply
            ),
            Admission::Reply
        ));
        reply.to_vec()
    }

    #[test]
    fn udp_ok_then_reset_then_expiry_at_exactly_ttl() {
        let sh = shared(Duration::from_secs(30), 100);
        assert_eq!(udp(&sh, at(0), b"HELLO 0042\n"), b"OK 0042 127.0.0.1 40000");
        assert_eq!(sh.borrow().next_expiry(), Some(at(30_000)));
        assert_eq!(udp(&sh, at(29_999), b"HELLO 42"), b"RESET 42");
        assert_eq!(sh.borrow_mut().expire_due(at(30_000)), 1);
        assert_eq!(
            udp(&sh, at(30_000), b"HELLO 42\r\n"),
            b"OK 42 127.0.0.1 40000"
        );
    }

    #[test]
    fn both_acceptors_carry_the_registry_expiry_as_a_coarse_deadline() {
        let (mut tcp, mut udp_acceptor, sh) =
            acceptors(Duration::from_secs(30), 100, TcpTimeouts::default());
        assert_eq!(tcp.poll_timeout(), None);
        assert_eq!(udp(&sh, at(0), b"HELLO 7"), b"OK 7 127.0.0.1 40000");
        // A registration over TCP moves the same deadline.
        let mut s = tcp.accept(&mut cx(at(5), None), peer()).unwrap();
        feed(&mut *s, at(5), peer(), StreamInput::Bytes(b"HELLO 8\n"));
        for a in [&tcp as &dyn Driven, &udp_acceptor] {
            assert_eq!(a.poll_timeout(), Some(at(30_000)));
            assert_eq!(a.wake(), Wake::Coarse);
        }
        // A spurious pop is a no-op; the due one ends ID 7 only.
        udp_acceptor.handle_timeout(&mut cx(at(29_999), None));
        assert!(sh.borrow().is_registered(7, at(29_999)));
        tcp.handle_timeout(&mut cx(at(30_000), None));
        assert_eq!(sh.borrow().expired_count(), 1);
        assert_eq!(udp_acceptor.poll_timeout(), Some(at(30_005)));
        udp_acceptor.handle_timeout(&mut cx(at(30_005), None));
        assert_eq!((tcp.poll_timeout(), sh.borrow().len()), (None, 0));
    }

    #[test]
    fn udp_errors() {
        let sh = shared(Duration::from_secs(30), 1);
        assert_eq!(udp(&sh, at(0), b"GET 1"), b"ERROR unknown verb");
        assert_eq!(udp(&sh, at(0), b"HELLO x"), b"ERROR bad id");
        assert_eq!(udp(&sh, at(0), b""), b"ERROR unknown verb");
        assert_eq!(udp(&sh, at(0), &[b'A'; 300]), b"ERROR line too long");
        assert_eq!(udp(&sh, at(0), b"HELLO 1"), b"OK 1 127.0.0.1 40000");
        assert_eq!(udp(&sh, at(0), b"HELLO 2"), b"ERROR busy");
    }

    #[test]
    fn tcp_several_requests_on_one_connection() {
        let sh = shared(Duration::from_secs(30), 100);
        let mut s = stream(&sh, at(0), TcpTimeouts::default());
        feed(
            &mut s,
            at(0),
            peer(),
            StreamInput::Bytes(b"HELLO 1\nHELLO 2\r\n"),
        );
        assert_eq!(
            drain_tx(&mut s, at(0)),
            b"OK 1 127.0.0.1 40000\nOK 2 127.0.0.1 40000\n"
        );
        assert_eq!(s.poll_close(), None);
    }

    #[test]
    fn tcp_line_split_across_reads() {
        let sh = shared(Duration::from_secs(30), 100);
        let mut s = stream(&sh, at(0), TcpTimeouts::default());
        for chunk in [&b"HEL"[..], b"LO 12", b"34", b"\nHELLO", b" 5\n"] {
            feed(&mut s, at(0), peer(), StreamInput::Bytes(chunk));
        }
        assert_eq!(
            drain_tx(&mut s, at(0)),
            b"OK 1234 127.0.0.1 40000\nOK 5 127.0.0.1 40000\n"
        );
    }

    #[test]
    fn tcp_reset_answers_and_closes_ignoring_the_rest() {
        let sh = shared(Duration::from_secs(30), 100);
        let mut s = stream(&sh, at(0), TcpTimeouts::default());
        feed(
            &mut s,
            at(0),
            peer(),
            StreamInput::Bytes(b"HELLO 9\nHELLO 9\nHELLO 8\n"),
        );
        assert_eq!(drain_tx(&mut s, at(0)), b"OK 9 127.0.0.1 40000\nRESET 9\n");
        assert_eq!(
            s.poll_close(),
            Some(CloseReason::Protocol("hello request refused"))
        );
        assert!(!sh.borrow().is_registered(8, at(0)));
    }

    #[test]
    fn tcp_256_bytes_without_newline_is_an_error_however_split() {
        for split_at in [1usize, 100, 255, 256] {
            let sh = shared(Duration::from_secs(30), 100);
            let mut s = stream(&sh, at(0), TcpTimeouts::default());
            let junk = [b'x'; 256];
            feed(&mut s, at(0), peer(), StreamInput::Bytes(&junk[..split_at]));
            feed(&mut s, at(0), peer(), StreamInput::Bytes(&junk[split_at..]));
            assert_eq!(
                drain_tx(&mut s, at(0)),
                b"ERROR line too long\n",
                "split {split_at}"
            );
            assert!(s.poll_close().is_some());
        }
    }

    #[test]
    fn tcp_partial_line_memory_is_bounded() {
        let sh = shared(Duration::from_secs(30), 100);
        let mut s = stream(&sh, at(0), TcpTimeouts::default());
        feed(&mut s, at(0), peer(), StreamInput::Bytes(b"HELLO"));
        let digits = vec![b'1'; 100_000];
        feed(&mut s, at(0), peer(), StreamInput::Bytes(&digits));
        assert!(s.partial.len() <= MAX_REQUEST);
        assert_eq!(drain_tx(&mut s, at(0)), b"ERROR line too long\n");
    }

    #[test]
    fn tcp_binary_garbage_gets_an_error() {
        let sh = shared(Duration::from_secs(30), 100);
        let mut s = stream(&sh, at(0), TcpTimeouts::default());
        feed(&mut s, at(0), peer(), StreamInput::Bytes(b"\x00\xff\xfe\n"));
        assert_eq!(drain_tx(&mut s, at(0)), b"ERROR unknown verb\n");
    }

    #[test]
    fn tcp_eof_closes_quietly() {
        let sh = shared(Duration::from_secs(30), 100);
        let mut s = stream(&sh, at(0), TcpTimeouts::default());
        feed(&mut s, at(0), peer(), StreamInput::Bytes(b"HELLO 1"));
        feed(&mut s, at(0), peer(), StreamInput::End);
        assert_eq!(drain_tx(&mut s, at(0)), b"");
        assert_eq!(s.poll_close(), Some(CloseReason::PeerClosed));
    }

    fn limits(idle_ms: u64, request_ms: u64) -> TcpTimeouts {
        TcpTimeouts {
            idle: Duration::from_millis(idle_ms),
            request: Duration::from_millis(request_ms),
        }
    }

    /// Runs `handle_timeout` at `now` and returns the end it asks for.
    fn tick(s: &mut HelloStream, now: Instant) -> Option<CloseReason> {
        s.handle_timeout(&mut cx(now, None));
        s.poll_close()
    }

    fn ns_before(t: Instant) -> Instant {
        Instant::from_nanos(t.as_nanos() - 1)
    }

    const TIMED_OUT: CloseReason = CloseReason::TimedOut { tries: 1 };

    #[test]
    fn a_connection_that_never_sends_closes_at_exactly_the_first_limit() {
        let sh = shared(Duration::from_secs(30), 100);
        // Armed from accept: the reactor reads this before any input.
        let mut s = stream(&sh, at(0), limits(300, 10_000));
        assert_eq!(s.poll_timeout(), Some(at(300)));
        assert!(tick(&mut s, ns_before(at(300))).is_none());
        assert_eq!(tick(&mut s, at(300)), Some(TIMED_OUT));
        assert_eq!(s.poll_timeout(), None);
        // With the default limits, the request limit (10 s) comes first.
        let mut s = stream(&sh, at(0), TcpTimeouts::default());
        assert_eq!(s.poll_timeout(), Some(at(10_000)));
        assert_eq!(tick(&mut s, at(10_000)), Some(TIMED_OUT));
    }

    #[test]
    fn requests_and_taken_answers_postpone_the_idle_limit() {
        let sh = shared(Duration::from_secs(30), 100);
        let mut s = stream(&sh, at(0), limits(10_000, 60_000));
        assert_eq!(s.poll_timeout(), Some(at(10_000)));
        feed(&mut s, at(4_000), peer(), StreamInput::Bytes(b"HELLO 1\n"));
        // The reported deadline does not move per request (no heap push)...
        assert_eq!(s.poll_timeout(), Some(at(10_000)));
        // ...and the answer taken at 6 s is progress too.
        assert_eq!(drain_tx(&mut s, at(6_000)), b"OK 1 127.0.0.1 40000\n");
        assert!(tick(&mut s, at(10_000)).is_none());
        assert_eq!(s.poll_timeout(), Some(at(16_000)));
        assert!(tick(&mut s, ns_before(at(16_000))).is_none());
        assert_eq!(tick(&mut s, at(16_000)), Some(TIMED_OUT));
    }

    #[test]
    fn a_line_trickled_at_one_byte_a_second_closes_at_the_request_limit() {
        let sh = shared(Duration::from_secs(30), 100);
        let mut s = stream(&sh, at(0), TcpTimeouts::default());
        // A whole request first: the next line's clock starts at its first byte.
        feed(&mut s, at(500), peer(), StreamInput::Bytes(b"HELLO 1\n"));
        let line = b"HELLO 2222222\n";
        let mut closed_at = None;
        for (i, b) in line.iter().enumerate() {
            let now = at(2_000 + 1_000 * i as u64);
            closed_at = timed_out_by(&mut s, ns_before(now));
            if closed_at.is_some() {
                break;
            }
            feed(&mut s, now, peer(), StreamInput::Bytes(&[*b]));
        }
        // First byte at 2 s, so closed at 12 s; the idle limit (5 min)
        // never came near.
        assert_eq!(closed_at, Some(at(12_000)));
    }

    #[test]
    fn a_steady_client_is_never_cut_off_by_the_request_limit() {
        let sh = shared(Duration::from_secs(30), 10_000);
        let mut s = stream(&sh, at(0), limits(60_000, 10_000));
        // Each request arrives split in two, 3 s apart, for a minute and more.
        for i in 0..30u64 {
            let t = 3_000 * i;
            let id = format!("{}", i % 10_000);
            feed(&mut s, at(t), peer(), StreamInput::Bytes(b"HELLO "));
            feed(
                &mut s,
                at(t + 1_500),
                peer(),
                StreamInput::Bytes(format!("{id}\n").as_bytes()),
            );
            while let Some(due) = s.poll_timeout().filter(|&d| d <= at(t + 1_500)) {
                assert!(tick(&mut s, due).is_none(), "closed at {due}");
            }
        }
    }

    #[test]
    fn transmit_respects_limit() {
        let sh = shared(Duration::from_secs(30), 100);
        let mut s = stream(&sh, at(0), TcpTimeouts::default());
        feed(&mut s, at(0), peer(), StreamInput::Bytes(b"HELLO 1\n"));
        let mut buf = BytesMut::new();
        assert_eq!(s.poll_transmit(&mut cx(at(0), None), 3, &mut buf), Some(3));
        assert_eq!(&buf[..], b"OK ");
    }
}
