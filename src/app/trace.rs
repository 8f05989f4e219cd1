//! `-v`'s per-packet protocol trace of a client or a server: one debug line
//! per datagram or stream read/write at the reactor/session boundary, with
//! the protocol, the direction (`<` in, `>` out, from this process's side),
//! the peer and a one-line decode (`tftp < 127.0.0.1:69 DATA #7 512 bytes`).
//!
//! Owns [`traced_datagram`] and [`traced_stream`], which wrap a client
//! session unchanged when debug logging is on (and return it as it is
//! otherwise, so a run without `-v` pays nothing), [`traced_acceptors`],
//! which does the same for a server's acceptors and every session they
//! admit, and the decoders, which only call the `wire` codecs' own
//! `Display`. It never alters a byte, a deadline, an admission or an
//! outcome of what it wraps.

use crate::proto::{
    Admission, CloseReason, Context, DatagramAcceptor, DatagramInput, DatagramSession, Driven,
    FileChunk, PartId, StreamAcceptor, StreamInput, StreamSession, Transmit, Wake,
};
use crate::time::Instant;
use bytes::BytesMut;
use core::fmt::Write as _;
use std::net::SocketAddr;

/// The log target of trace lines, so they can be told from the rest.
pub(crate) const TARGET: &str = "mioperf::trace";

/// Bytes of a text or stream chunk shown in a line: enough for a request
/// line or an answer, short enough to keep one line per packet.
const SHOWN: usize = 48;

/// How a protocol's bytes read in one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decode {
    /// TFTP datagrams (`RRQ`, `DATA #n`, `ACK #n`, `OACK …`, `ERROR …`).
    Tftp,
    /// stopwait datagrams (type, bit, block, message).
    Stopwait,
    /// A TCP segment carried in a UDP datagram (window).
    Tcp,
    /// A text line or stream chunk: its length and its printable head.
    Text,
}

impl Decode {
    /// `bytes` in one line.
    pub(crate) fn line(self, bytes: &[u8]) -> String {
        match self {
            Self::Tftp => match crate::wire::tftp::Packet::parse(bytes) {
                Ok(p) => p.to_string(),
                Err(e) => format!("malformed ({e}), {} B", bytes.len()),
            },
            Self::Stopwait => match crate::wire::stopwait::Packet::parse(bytes) {
                Ok(p) => p.to_string(),
                Err(e) => format!("malformed ({e}), {} B", bytes.len()),
            },
            Self::Tcp => {
                use crate::wire::tcp::{Packet, Repr};
                match Packet::new_checked(bytes)
                    .and_then(|p| Repr::parse(&p).map(|r| r.to_string()))
                {
                    Ok(line) => line,
                    Err(e) => format!("malformed ({e}), {} B", bytes.len()),
                }
            }
            Self::Text => text(bytes),
        }
    }
}

/// `12 B "HELLO 42\n"`: the length and the escaped head of the bytes.
fn text(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(SHOWN)];
    let mut out = format!("{} B \"", bytes.len());
    for c in head.escape_ascii() {
        out.push(char::from(c));
    }
    out.push('"');
    if bytes.len() > SHOWN {
        let _ = write!(out, "…");
    }
    out
}

/// Whether `-v` asked for the trace.
fn enabled() -> bool {
    log::log_enabled!(target: TARGET, log::Level::Debug)
}

/// A session that logs what crosses its boundary.
struct Traced<S: ?Sized> {
    protocol: &'static str,
    peer: SocketAddr,
    decode: Decode,
    inner: Box<S>,
}

impl<S: ?Sized> Traced<S> {
    fn log(&self, arrow: char, from: SocketAddr, bytes: &[u8]) {
        log::debug!(
            target: TARGET,
            "{} {arrow} {from} {}",
            self.protocol,
            self.decode.line(bytes)
        );
    }

    /// A socket error the session is told of (an ICMP error, a reset).
    fn log_failure(&self, kind: std::io::ErrorKind) {
        log::debug!(
            target: TARGET,
            "{} ! {} {}",
            self.protocol,
            self.peer,
            std::io::Error::from(kind)
        );
    }
}

/// `session`, tracing each datagram in and out when `-v` is on.
pub(crate) fn traced_datagram(
    protocol: &'static str,
    peer: SocketAddr,
    decode: Decode,
    session: Box<dyn DatagramSession>,
) -> Box<dyn DatagramSession> {
    if !enabled() {
        return session;
    }
    Box::new(Traced {
        protocol,
        peer,
        decode,
        inner: session,
    })
}

/// `session`, tracing each chunk read and written when `-v` is on.
pub(crate) fn traced_stream(
    protocol: &'static str,
    peer: SocketAddr,
    session: Box<dyn StreamSession>,
) -> Box<dyn StreamSession> {
    if !enabled() {
        return session;
    }
    Box::new(Traced {
        protocol,
        peer,
        decode: Decode::Text,
        inner: session,
    })
}

/// A server's acceptors, each admitted session traced, when `-v` is on.
/// `decode` reads the protocol's datagrams; stream bytes read as text.
fn traced_acceptors(
    protocol: &'static str,
    decode: Decode,
    tcp: Option<Box<dyn StreamAcceptor>>,
    udp: Option<Box<dyn DatagramAcceptor>>,
) -> Acceptors {
    if !enabled() {
        return (tcp, udp);
    }
    let tcp = tcp.map(|inner| -> Box<dyn StreamAcceptor> {
        Box::new(TracedAcceptor {
            protocol,
            decode: Decode::Text,
            inner,
        })
    });
    let udp = udp.map(|inner| -> Box<dyn DatagramAcceptor> {
        Box::new(TracedAcceptor {
            protocol,
            decode,
            inner,
        })
    });
    (tcp, udp)
}

/// A server protocol's TCP and UDP acceptors, where it has them.
type Acceptors = (
    Option<Box<dyn StreamAcceptor>>,
    Option<Box<dyn DatagramAcceptor>>,
);

/// `protocol`'s acceptors, traced with its decoder when `-v` is on (the
/// proxy forwards others' bytes and is not traced).
pub(crate) fn for_server(
    protocol: crate::config::Protocol,
    tcp: Option<Box<dyn StreamAcceptor>>,
    udp: Option<Box<dyn DatagramAcceptor>>,
) -> Acceptors {
    use crate::config::Protocol as P;
    let decode = match protocol {
        P::Proxy | P::Tunstack => return (tcp, udp),
        P::Tftp => Decode::Tftp,
        P::Stopwait => Decode::Stopwait,
        P::Window => Decode::Tcp,
        P::Hello | P::Lab | P::Msg | P::Tcpfile => Decode::Text,
    };
    traced_acceptors(protocol.name(), decode, tcp, udp)
}

/// `Driven` for a tracing wrapper: every method goes to `inner` as it is,
/// defaults included (a wrapper that kept a default would, say, stop a
/// wrapped session's part timers). One body for both wrappers.
macro_rules! forward_driven {
    ($wrapper:ident) => {
        impl<T: Driven + ?Sized> Driven for $wrapper<T> {
            fn handle_timeout(&mut self, cx: &mut Context) {
                self.inner.handle_timeout(cx);
            }
            fn poll_timeout(&self) -> Option<Instant> {
                self.inner.poll_timeout()
            }
            fn wake(&self) -> Wake {
                self.inner.wake()
            }
            fn poll_close(&mut self) -> Option<CloseReason> {
                self.inner.poll_close()
            }
            fn wants_input(&self) -> bool {
                self.inner.wants_input()
            }
            fn poll_part_timeout(&mut self) -> Option<(PartId, Option<Instant>)> {
                self.inner.poll_part_timeout()
            }
            fn handle_part_timeout(&mut self, cx: &mut Context, part: PartId) {
                self.inner.handle_part_timeout(cx, part);
            }
        }
    };
}

/// An acceptor whose sessions are [`Traced`], and whose stateless
/// answers are logged too.
struct TracedAcceptor<A: ?Sized> {
    protocol: &'static str,
    decode: Decode,
    inner: Box<A>,
}

forward_driven!(TracedAcceptor);

impl<A: StreamAcceptor + ?Sized> StreamAcceptor for TracedAcceptor<A> {
    fn accept(&mut self, cx: &mut Context, peer: SocketAddr) -> Option<Box<dyn StreamSession>> {
        let session = self.inner.accept(cx, peer)?;
        log::debug!(target: TARGET, "{} < {peer} connected", self.protocol);
        Some(Box::new(Traced {
            protocol: self.protocol,
            peer,
            decode: self.decode,
            inner: session,
        }))
    }

    fn sessions_move_deadline(&self) -> bool {
        self.inner.sessions_move_deadline()
    }
}

impl<A: DatagramAcceptor + ?Sized> DatagramAcceptor for TracedAcceptor<A> {
    fn accept(
        &mut self,
        cx: &mut Context,
        from: SocketAddr,
        payload: &[u8],
        reply: &mut BytesMut,
    ) -> Admission {
        let start = reply.len();
        match self.inner.accept(cx, from, payload, reply) {
            Admission::Start(mut admit) => {
                // The session is fed this datagram next, and logs it then.
                admit.session = Box::new(Traced {
                    protocol: self.protocol,
                    peer: from,
                    decode: self.decode,
                    inner: admit.session,
                });
                Admission::Start(admit)
            }
            other => {
                let line = |bytes: &[u8]| self.decode.line(bytes);
                log::debug!(target: TARGET, "{} < {from} {}", self.protocol, line(payload));
                if let Admission::Reply = other {
                    let sent = reply.get(start..).unwrap_or_default();
                    log::debug!(target: TARGET, "{} > {from} {}", self.protocol, line(sent));
                }
                other
            }
        }
    }

    fn max_sessions(&self) -> Option<usize> {
        self.inner.max_sessions()
    }

    fn poll_evict(&mut self) -> Option<usize> {
        self.inner.poll_evict()
    }

    fn sessions_move_deadline(&self) -> bool {
        self.inner.sessions_move_deadline()
    }
}

forward_driven!(Traced);

impl<S: DatagramSession + ?Sized> DatagramSession for Traced<S> {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        match input {
            DatagramInput::Datagram { from, payload, .. } => self.log('<', from, payload),
            DatagramInput::Packet { payload, .. } => self.log('<', self.peer, payload),
            DatagramInput::Failed { kind, .. } => self.log_failure(kind),
        }
        self.inner.handle_input(cx, input);
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        let start = buf.len();
        let t = self.inner.poll_transmit(cx, limit, buf)?;
        let sent = buf.get(start..start + t.len).unwrap_or_default();
        self.log('>', t.to.unwrap_or(self.peer), sent);
        Some(t)
    }

    fn wants_receive_timestamps(&self) -> bool {
        self.inner.wants_receive_timestamps()
    }
}

impl<S: StreamSession + ?Sized> StreamSession for Traced<S> {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        match input {
            StreamInput::Bytes(bytes) => self.log('<', self.peer, bytes),
            StreamInput::End => {
                log::debug!(target: TARGET, "{} < {} FIN", self.protocol, self.peer);
            }
            StreamInput::Failed(kind) => self.log_failure(kind),
        }
        self.inner.handle_input(cx, input);
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        let start = buf.len();
        let n = self.inner.poll_transmit(cx, limit, buf)?;
        let sent = buf.get(start..start + n).unwrap_or_default();
        self.log('>', self.peer, sent);
        Some(n)
    }

    fn poll_file(&mut self) -> Option<FileChunk> {
        self.inner.poll_file()
    }

    fn advance_file(&mut self, cx: &mut Context, n: u64) {
        log::debug!(
            target: TARGET,
            "{} > {} {n} B from the file",
            self.protocol,
            self.peer
        );
        self.inner.advance_file(cx, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_reads_in_one_line() {
        let mut data = vec![0, 3, 0, 7];
        data.extend_from_slice(&[b'x'; 512]);
        assert_eq!(Decode::Tftp.line(&data), "DATA #7 512 bytes");
        assert_eq!(Decode::Tftp.line(&[0, 4, 0, 7]), "ACK #7");
        assert!(Decode::Tftp.line(&[0, 9]).starts_with("malformed"));
        assert_eq!(Decode::Text.line(b"HELLO 42\n"), "9 B \"HELLO 42\\n\"");
        let long = [b'a'; 100];
        assert!(Decode::Text.line(&long).ends_with("\"…"));
        assert!(Decode::Tcp.line(&[0; 3]).starts_with("malformed"));
        assert!(
            !Decode::Stopwait
                .line(b"D000001hello")
                .starts_with("malformed")
        );
    }
}
