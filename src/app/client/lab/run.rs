//! Runs lab requests one at a time on one reactor, and shows each answer.
//!
//! Owns the reactor of `mioperf lab` (single request and prompt alike),
//! the connection requests share (a [`Conversation`]: over TCP while the
//! server keeps it open, over UDP one socket), the live line while a
//! request runs, and the rendering of each answer through the command's
//! [`View`]. The reactor turns only while a request is in flight; between
//! requests the caller reads the next line and nothing runs. It never
//! reads standard input (`prompt.rs` does).

use super::live::{Follow, Live};
use super::view;
use crate::app::client::resolve;
use crate::app::trace::{Decode, traced_datagram, traced_stream};
use crate::app::{Failure, error};
use crate::cli::LabArgs;
use crate::proto::lab::{self, Client, Conversation, Inbox, StreamLive};
use crate::proto::outcome::{OutcomeSlot, Progress};
use crate::reactor::{Exit, Reactor, ReactorConfig};
use crate::wire::lab::{MAX_UDP_PAYLOAD, Request};
use std::net::SocketAddr;

/// One server, one reactor, at most one open connection.
pub(super) struct Runner<'a> {
    args: &'a LabArgs,
    server: SocketAddr,
    reactor: Reactor,
    /// The open conversation's inbox, while its connection lasts.
    open: Option<Inbox>,
}

/// How a request's wait for its outcome ended.
enum Waited {
    /// The outcome is in (or the session ended without one).
    Done,
    /// The connection ended before the request was taken: it may go again
    /// on a new one.
    NotTaken,
}

impl<'a> Runner<'a> {
    /// Resolves the server and sets up a reactor that stops on SIGINT and
    /// SIGTERM.
    ///
    /// # Errors
    /// The host does not resolve, or the reactor cannot be made.
    pub(super) fn new(args: &'a LabArgs) -> Result<Self, Failure> {
        let server = resolve(&args.host, args.port)?;
        // Not `exit_when_no_sessions`: a connection the server closed
        // after a file must not end the prompt.
        let mut reactor =
            Reactor::new(ReactorConfig::default()).map_err(|e| error("reactor", e))?;
        reactor.watch_signals().map_err(|e| error("signals", e))?;
        Ok(Self {
            args,
            server,
            reactor,
            open: None,
        })
    }

    /// Sends `request`, waits for its whole answer and shows it.
    ///
    /// # Errors
    /// What the answer amounts to (see `output.rs`), or
    /// [`Failure::Signal`] when SIGINT or SIGTERM stopped the wait.
    pub(super) fn request(&mut self, request: &str) -> Result<(), Failure> {
        let args = self.args;
        if request.contains('\n') {
            return Err(Failure::Error("the request must be one line".into()));
        }
        // Said before anything is sent: the server could not take it anyway.
        if args.udp && request.len() > MAX_UDP_PAYLOAD {
            return Err(Failure::Error(format!(
                "the request is {} bytes: one UDP datagram holds at most {MAX_UDP_PAYLOAD} (use TCP for more)",
                request.len()
            )));
        }
        let transport = if args.udp {
            lab::Transport::Udp {
                server: self.server,
            }
        } else {
            lab::Transport::Tcp
        };
        let slot = OutcomeSlot::new();
        let progress = Progress::new();
        let stream_live = StreamLive::new();
        let client = Client::new(
            request.as_bytes(),
            transport,
            args.max_count,
            args.timeout,
            slot.clone(),
        )
        .with_progress(progress.clone())
        .with_live(stream_live.clone());
        let follow = match Request::parse(request.as_bytes()) {
            Ok(Request::File(n)) => Some(Follow::File(n, progress)),
            Ok(Request::Stream(spec)) => {
                Some(Follow::Stream(spec.count.min(args.max_count), stream_live))
            }
            _ => None,
        };
        let mut live = follow.and_then(|f| Live::new(f, args.json));

        let mut waited = self
            .hand_over(client)
            .and_then(|()| self.wait(&slot, live.as_mut()));
        // A connection the server closed while we waited at the prompt
        // (its idle limit) is found out only now: one new connection.
        if let Ok(Waited::NotTaken) = waited
            && let Some(client) = self.open.take().and_then(|inbox| inbox.take_back())
        {
            waited = self
                .hand_over(client)
                .and_then(|()| self.wait(&slot, live.as_mut()));
        }
        if let Some(live) = live {
            live.clear();
        }
        waited?;
        view(args, self.server, request).show(slot.take(), slot.take_partial().as_ref())
    }

    /// Gives `client` to the open conversation, or opens a new one with it.
    fn hand_over(&mut self, client: Client) -> Result<(), Failure> {
        if let Some(inbox) = self.open.as_ref().filter(|i| !i.is_closed()) {
            inbox.send(client);
            return Ok(());
        }
        let inbox = Inbox::new();
        inbox.send(client);
        let session = Box::new(Conversation::new(inbox.clone()));
        let server = self.server;
        if self.args.udp {
            let session = traced_datagram("lab", server, Decode::Text, session);
            crate::reactor::udp_client_socket(server)
                .and_then(|s| self.reactor.add_udp_session(s, Some(server), session))
        } else {
            let session = traced_stream("lab", server, session);
            self.reactor.connect_tcp(server, session)
        }
        .map_err(|e| error(&format!("cannot reach {server}"), e))?;
        self.open = Some(inbox);
        Ok(())
    }

    /// Turns the reactor until `slot` has the request's outcome.
    fn wait(
        &mut self,
        slot: &OutcomeSlot<lab::Report>,
        mut live: Option<&mut Live>,
    ) -> Result<Waited, Failure> {
        loop {
            if let Some(Exit::Signal(number)) = self.reactor.exit() {
                return Err(Failure::Signal(number));
            }
            if slot.is_set() {
                return Ok(Waited::Done);
            }
            if let Some(inbox) = self.open.as_ref().filter(|i| i.is_closed()) {
                // Its client, had it been taken, would have set the slot.
                return Ok(if inbox.is_waiting() {
                    Waited::NotTaken
                } else {
                    Waited::Done
                });
            }
            self.reactor.turn().map_err(|e| error("poll", e))?;
            if let Some(live) = live.as_deref_mut() {
                live.tick(self.reactor.now());
            }
        }
    }
}
