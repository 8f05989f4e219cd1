//! A lab connection that carries one request after another: the prompt's
//! session (`mioperf lab HOST PORT` without a request).
//!
//! Owns the hand-over between requests on one TCP connection or one UDP
//! socket: it drives one [`Client`] at a time, and when that client ends
//! normally (an echo, an `ERROR` line, a UDP file or stream) it keeps the
//! connection and waits for the next client its [`Inbox`] is given. It
//! never parses an answer itself (the clients do), and never decides what
//! is asked (the app does).
//!
//! Why a connection outlives its requests only sometimes: over TCP the
//! server closes after a file or a stream (end of transmission is EOF, as
//! the spec says), so the conversation ends with it and the next request
//! needs a new connection; echo lines and refused requests keep it open.
//! A client that fails (a timeout, a reset) ends the conversation too: an
//! answer could still be on its way and would be taken for the next one's.
//!
//! How a new request reaches a session nobody is calling: the reactor has
//! no waker, and it hears from a session only after an event or at its
//! deadline. So an idle conversation keeps a deadline [`NEXT_TURN`] after it
//! went idle, which is due at the reactor's next turn; the app hands a
//! request to the [`Inbox`] *before* it turns the reactor again, and that
//! deadline is where the conversation picks it up and sends it. Between
//! requests the app does not turn the reactor at all (it is reading the
//! next line), so the idle deadline never spins; if it fires with the inbox
//! empty the conversation goes quiet rather than re-arm.

use super::client::Client;
use crate::proto::{
    CloseReason, Context, DatagramInput, DatagramSession, Driven, StreamInput, StreamSession,
    Transmit, Wake,
};
use crate::time::{Duration, Instant};
use bytes::BytesMut;
use core::cell::RefCell;
use std::rc::Rc;

/// How long after going idle a conversation's deadline falls: the least
/// step of the clock, so it is due at the reactor's very next turn but not
/// in the turn it went idle in (which would fire it again at once).
pub const NEXT_TURN: Duration = Duration::from_nanos(1);

#[derive(Debug, Default)]
struct Mailbox {
    /// The next request, until the conversation takes it.
    next: Option<Client>,
    /// The conversation has ended (its connection is gone).
    closed: bool,
}

/// The app's handle on a [`Conversation`]: where the next request goes,
/// and whether the connection is still there to take it.
#[derive(Clone, Debug, Default)]
pub struct Inbox(Rc<RefCell<Mailbox>>);

impl Inbox {
    /// An empty inbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands over the next request; the conversation takes it at the
    /// reactor's next turn. A request already waiting is replaced.
    pub fn send(&self, client: Client) {
        self.0.borrow_mut().next = Some(client);
    }

    /// Whether the conversation has ended: its connection is gone, and a
    /// request needs a new one.
    pub fn is_closed(&self) -> bool {
        self.0.borrow().closed
    }

    /// The request handed over but never taken (the connection ended
    /// first), for the app to send on a new connection.
    pub fn take_back(&self) -> Option<Client> {
        self.0.borrow_mut().next.take()
    }

    /// Whether a request waits to be taken.
    pub fn is_waiting(&self) -> bool {
        self.0.borrow().next.is_some()
    }

    fn take(&self) -> Option<Client> {
        self.0.borrow_mut().next.take()
    }

    fn close(&self) {
        self.0.borrow_mut().closed = true;
    }
}

/// One connection (or UDP socket) carrying requests one at a time.
#[derive(Debug)]
pub struct Conversation {
    current: Option<Client>,
    inbox: Inbox,
    /// When the last request ended (the idle deadline's base); `None`
    /// while a request runs, or once the idle deadline fired unused.
    idle_since: Option<Instant>,
    /// Whether a request has been taken on this connection.
    carried: bool,
    close: Option<CloseReason>,
}

impl Conversation {
    /// A conversation whose first request is whatever `inbox` holds when
    /// the reactor next turns (the app sends it before opening the
    /// connection).
    ///
    /// Even the first request is taken at a turn, from a deadline due at
    /// once, never as the reactor adds the session: between turns the
    /// reactor's `now` is the last turn's, which at a prompt may be
    /// minutes old, and a request started with it would count those
    /// minutes into its round trip and its timeout.
    pub fn new(inbox: Inbox) -> Self {
        Self {
            idle_since: Some(Instant::ZERO),
            current: None,
            inbox,
            carried: false,
            close: None,
        }
    }

    /// After any call into the current client: if it ended, keep the
    /// connection for the next request or end with it.
    fn after(&mut self, now: Instant) {
        let Some(client) = &mut self.current else {
            return;
        };
        match client.poll_close() {
            None => {}
            Some(CloseReason::Completed) => {
                self.current = None;
                self.idle_since = Some(now);
            }
            Some(reason) => {
                self.current = None;
                self.end(reason);
            }
        }
    }

    fn end(&mut self, reason: CloseReason) {
        if self.close.is_none() && !self.inbox.is_closed() {
            self.inbox.close();
            self.close = Some(reason);
        }
    }

    /// The connection ended (`reason`) while no request ran. On a
    /// connection that carried requests before, a waiting request stays in
    /// the inbox for the app to send on a new one. A new connection that
    /// fails (refused) is the waiting request's own failure: it is taken,
    /// and `deliver` hands it what happened, so it ends with that outcome.
    fn ended_idle(&mut self, now: Instant, reason: CloseReason, deliver: impl FnOnce(&mut Client)) {
        if !self.carried
            && let Some(mut client) = self.inbox.take()
        {
            self.carried = true;
            self.idle_since = None;
            deliver(&mut client);
            self.current = Some(client);
            self.after(now);
        }
        self.end(reason);
    }

    fn take(&mut self) {
        self.current = self.inbox.take();
        self.carried |= self.current.is_some();
        self.idle_since = None;
    }
}

impl Driven for Conversation {
    fn handle_timeout(&mut self, cx: &mut Context) {
        if let Some(client) = &mut self.current {
            client.handle_timeout(cx);
            self.after(cx.now);
            return;
        }
        if self.idle_since.is_some_and(|at| at + NEXT_TURN <= cx.now) {
            // Taken here; sent by the transmit step that follows this call.
            self.take();
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.current {
            Some(client) => client.poll_timeout(),
            None if self.close.is_none() && !self.inbox.is_closed() => {
                self.idle_since.map(|at| at + NEXT_TURN)
            }
            None => None,
        }
    }

    fn wake(&self) -> Wake {
        self.current.as_ref().map_or(Wake::Exact, Driven::wake)
    }

    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take()
    }
}

impl StreamSession for Conversation {
    fn handle_input(&mut self, cx: &mut Context, input: StreamInput<'_>) {
        match &mut self.current {
            Some(client) => {
                StreamSession::handle_input(client, cx, input);
                self.after(cx.now);
            }
            None => match input {
                StreamInput::Bytes(_) => {}
                StreamInput::End => self.ended_idle(cx.now, CloseReason::PeerClosed, |c| {
                    StreamSession::handle_input(c, cx, StreamInput::End);
                }),
                StreamInput::Failed(kind) => self.ended_idle(cx.now, CloseReason::Aborted, |c| {
                    StreamSession::handle_input(c, cx, StreamInput::Failed(kind));
                }),
            },
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        let sent = StreamSession::poll_transmit(self.current.as_mut()?, cx, limit, buf);
        self.after(cx.now);
        sent
    }
}

impl DatagramSession for Conversation {
    fn handle_input(&mut self, cx: &mut Context, input: DatagramInput<'_>) {
        match &mut self.current {
            Some(client) => {
                DatagramSession::handle_input(client, cx, input);
                self.after(cx.now);
            }
            // A late datagram of an earlier request is dropped.
            None => {
                if let DatagramInput::Failed { .. } = input {
                    self.ended_idle(cx.now, CloseReason::Aborted, |c| {
                        DatagramSession::handle_input(c, cx, input);
                    });
                }
            }
        }
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<Transmit> {
        let sent = DatagramSession::poll_transmit(self.current.as_mut()?, cx, limit, buf);
        self.after(cx.now);
        sent
    }

    /// Asked once, when the socket is registered, before the first request
    /// is known: any line may ask for a stream, whose figures come from
    /// the kernel's stamps.
    fn wants_receive_timestamps(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::lab::{Report, Transport};
    use crate::proto::outcome::OutcomeSlot;
    use crate::proto::testing::{at, cx, drain_joined, drain_tx, feed};
    use std::net::SocketAddr;

    fn server() -> SocketAddr {
        "127.0.0.1:8120".parse().unwrap()
    }

    fn request(text: &[u8], transport: Transport) -> (Client, OutcomeSlot<Report>) {
        let slot = OutcomeSlot::new();
        let c = Client::new(
            text,
            transport,
            10_000,
            Duration::from_secs(5),
            slot.clone(),
        );
        (c, slot)
    }

    /// The reactor's first turn after the conversation was added: it takes
    /// its first request (a nanosecond in, where its deadline falls).
    fn take_first(c: &mut Conversation) {
        c.handle_timeout(&mut cx(Instant::ZERO + NEXT_TURN, None));
    }

    #[test]
    fn tcp_echoes_share_one_connection() {
        let inbox = Inbox::new();
        let (first, one) = request(b"hello", Transport::Tcp);
        inbox.send(first);
        let mut c = Conversation::new(inbox.clone());
        assert!(drain_tx(&mut c, at(0)).is_empty(), "not before a turn");
        assert_eq!(
            c.poll_timeout(),
            Some(Instant::ZERO + NEXT_TURN),
            "due at once"
        );
        take_first(&mut c);
        assert_eq!(drain_tx(&mut c, at(0)), b"hello\n");
        feed(&mut c, at(1), server(), StreamInput::Bytes(b"hello\n"));
        assert!(matches!(
            one.get(),
            Some(Ok(Report::Echo { matched: true, .. }))
        ));
        assert_eq!(c.poll_close(), None, "the connection stays");
        assert_eq!(c.poll_timeout(), Some(at(1) + NEXT_TURN), "due next turn");
        assert!(drain_tx(&mut c, at(1)).is_empty(), "nothing to send yet");

        let (second, two) = request(b"again", Transport::Tcp);
        inbox.send(second);
        c.handle_timeout(&mut cx(at(9), None));
        assert!(!inbox.is_waiting(), "taken");
        assert_eq!(drain_tx(&mut c, at(9)), b"again\n");
        assert_eq!(c.poll_timeout(), Some(at(5_009)), "the client's timeout");
        feed(&mut c, at(10), server(), StreamInput::Bytes(b"again\n"));
        assert!(matches!(
            two.get(),
            Some(Ok(Report::Echo { matched: true, .. }))
        ));
        assert!(!inbox.is_closed());
    }

    #[test]
    fn a_tcp_file_ends_the_connection_with_it() {
        let inbox = Inbox::new();
        let (file, slot) = request(b"3", Transport::Tcp);
        inbox.send(file);
        let mut c = Conversation::new(inbox.clone());
        take_first(&mut c);
        drain_tx(&mut c, at(0));
        feed(&mut c, at(1), server(), StreamInput::Bytes(b"READY 3\nABC"));
        feed(&mut c, at(1), server(), StreamInput::End);
        assert!(matches!(
            slot.get(),
            Some(Ok(Report::File { received: 3, .. }))
        ));
        assert_eq!(c.poll_close(), Some(CloseReason::PeerClosed));
        assert!(inbox.is_closed(), "the next request needs a new connection");
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn a_connection_closed_while_idle_gives_the_request_back() {
        let inbox = Inbox::new();
        let (first, _) = request(b"x", Transport::Tcp);
        inbox.send(first);
        let mut c = Conversation::new(inbox.clone());
        take_first(&mut c);
        drain_tx(&mut c, at(0));
        feed(&mut c, at(1), server(), StreamInput::Bytes(b"x\n"));
        let (second, slot) = request(b"y", Transport::Tcp);
        inbox.send(second);
        // Events come before timers in a turn: the EOF is seen first.
        feed(&mut c, at(300_000), server(), StreamInput::End);
        assert_eq!(c.poll_close(), Some(CloseReason::PeerClosed));
        assert!(inbox.is_closed() && !slot.is_set());
        assert!(inbox.take_back().is_some(), "unsent, so it may go again");
    }

    #[test]
    fn a_new_connection_that_fails_is_its_first_requests_failure() {
        let inbox = Inbox::new();
        let (first, slot) = request(b"x", Transport::Tcp);
        inbox.send(first);
        let mut c = Conversation::new(inbox.clone());
        // The refusal comes before the turn's timers.
        let refused = StreamInput::Failed(std::io::ErrorKind::ConnectionRefused);
        feed(&mut c, at(0), server(), refused);
        assert_eq!(
            slot.get(),
            Some(Err(crate::proto::outcome::ClientError::Io(
                std::io::ErrorKind::ConnectionRefused
            )))
        );
        assert!(inbox.is_closed() && !inbox.is_waiting());
        assert_eq!(c.poll_close(), Some(CloseReason::Aborted));
    }

    #[test]
    fn an_idle_deadline_that_finds_nothing_goes_quiet() {
        let inbox = Inbox::new();
        let (first, _) = request(b"ping", Transport::Udp { server: server() });
        inbox.send(first);
        let mut c = Conversation::new(inbox.clone());
        take_first(&mut c);
        assert_eq!(drain_joined(&mut c, at(0)), b"ping");
        crate::proto::testing::feed_datagram(&mut c, at(1), server(), b"ping");
        assert_eq!(c.poll_timeout(), Some(at(1) + NEXT_TURN));
        c.handle_timeout(&mut cx(at(2), None));
        assert_eq!(c.poll_timeout(), None, "no spinning on an empty inbox");
        assert_eq!(c.poll_close(), None);
    }

    #[test]
    fn a_request_starts_at_the_turn_that_takes_it() {
        // The app opened the connection long after the reactor's last turn.
        let inbox = Inbox::new();
        let (first, slot) = request(b"ping", Transport::Udp { server: server() });
        inbox.send(first);
        let mut c = Conversation::new(inbox.clone());
        c.handle_timeout(&mut cx(at(60_000), None));
        assert_eq!(drain_joined(&mut c, at(60_000)), b"ping");
        assert_eq!(c.poll_timeout(), Some(at(65_000)), "timeout from the turn");
        crate::proto::testing::feed_datagram(&mut c, at(60_003), server(), b"ping");
        assert!(matches!(
            slot.get(),
            Some(Ok(Report::Echo { rtt, .. })) if rtt == Duration::from_millis(3)
        ));
    }

    #[test]
    fn a_timed_out_request_ends_the_conversation() {
        let inbox = Inbox::new();
        let (first, slot) = request(b"ping", Transport::Udp { server: server() });
        inbox.send(first);
        let mut c = Conversation::new(inbox.clone());
        take_first(&mut c);
        drain_joined(&mut c, at(0));
        c.handle_timeout(&mut cx(at(5_000), None));
        assert!(slot.is_set());
        assert!(matches!(c.poll_close(), Some(CloseReason::TimedOut { .. })));
        assert!(
            inbox.is_closed(),
            "a late answer must not meet the next request"
        );
    }
}
