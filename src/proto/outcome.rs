//! How a client session ends, and how far it has got: one type for every
//! protocol.
//!
//! Owns [`ClientError`] (every way a client exchange can fail), the
//! [`Outcome`] a client session finishes with (its protocol's own success
//! report, or a `ClientError`), the [`OutcomeSlot`] it leaves that outcome
//! in, and the [`Progress`] counter a progress bar or the bench reads
//! while a transfer runs. Each protocol supplies only its success report
//! (what it measured); rendering for the terminal, `--json` and the exit
//! code is `app::output`'s, and the bench records outcomes through the
//! same types. A client session is owned (and dropped) by the reactor,
//! which is why its outcome goes into a handle the caller keeps.
//!
//! Sans-IO like the rest of `proto`: an I/O failure arrives as an
//! [`ErrorKind`] the reactor reported, never as an `io::Error`.

use core::cell::{Cell, RefCell};
use core::fmt;
use std::io::ErrorKind;
use std::rc::Rc;

/// Why a client exchange failed. Refusals and timeouts are ordinary
/// answers of the network, not bugs: each has its own variant so that the
/// exit code and the bench's counters can tell them apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The server declined the request with an error answer.
    Refused(Refusal),
    /// No answer (or no progress) within the timeout, after `tries`
    /// attempts.
    TimedOut {
        /// Requests or packets sent without an answer; 1 for the TCP
        /// clients, which wait once.
        tries: u32,
    },
    /// The socket failed: the connection was refused or reset, or an ICMP
    /// error came back.
    Io(ErrorKind),
    /// The server broke the protocol or the conversation broke off early
    /// (a malformed answer, a closed connection, a wrong count).
    Protocol(String),
    /// Our own side failed: the local file could not be read or written,
    /// or the request cannot be made at all. The text says what.
    Local(String),
}

/// A server's refusal: its answer, and the error code where the protocol
/// has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The answer as the server sent it (the whole line, or the message
    /// of an error packet).
    pub answer: String,
    /// TFTP's error code; `None` for the protocols without codes.
    pub code: Option<u16>,
}

impl ClientError {
    /// A refusal without an error code.
    pub fn refused(answer: impl Into<String>) -> Self {
        Self::Refused(Refusal {
            answer: answer.into(),
            code: None,
        })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "error {code}: {}", self.answer),
            None => f.write_str(&self.answer),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(r) => r.fmt(f),
            Self::TimedOut { tries } => write!(f, "no answer after {tries} tries"),
            // The standard library's wording ("connection refused"), which
            // the clients have always printed.
            Self::Io(kind) => std::io::Error::from(*kind).fmt(f),
            Self::Protocol(why) | Self::Local(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ClientError {}

/// What a client session finished with: its protocol's success report, or
/// why it failed.
pub type Outcome<T> = Result<T, ClientError>;

/// Where a client session leaves its [`Outcome`] for whoever started it
/// (the app, the bench, a test): a shared handle, cloned into the session.
///
/// A session records its outcome exactly once, when it ends; the first
/// outcome recorded stays. A session that fails after measuring something
/// (a lab file that stalls halfway) may also leave that partial report.
pub struct OutcomeSlot<T>(Rc<RefCell<Ended<T>>>);

struct Ended<T> {
    outcome: Option<Outcome<T>>,
    partial: Option<T>,
}

impl<T> OutcomeSlot<T> {
    /// An empty slot.
    pub fn new() -> Self {
        Self(Rc::new(RefCell::new(Ended {
            outcome: None,
            partial: None,
        })))
    }

    /// Records how the session ended. Later calls are ignored.
    pub fn set(&self, outcome: Outcome<T>) {
        let mut ended = self.0.borrow_mut();
        if ended.outcome.is_none() {
            ended.outcome = Some(outcome);
        }
    }

    /// Records a failure together with what had been measured before it.
    pub fn fail_after(&self, partial: Option<T>, error: ClientError) {
        let mut ended = self.0.borrow_mut();
        if ended.outcome.is_none() {
            ended.outcome = Some(Err(error));
            ended.partial = partial;
        }
    }

    /// Whether the session has ended (a progress bar stops then).
    pub fn is_set(&self) -> bool {
        self.0.borrow().outcome.is_some()
    }

    /// Takes the outcome out; `None` if the session never recorded one.
    pub fn take(&self) -> Option<Outcome<T>> {
        self.0.borrow_mut().outcome.take()
    }

    /// Takes what had been measured before a failure, if anything.
    pub fn take_partial(&self) -> Option<T> {
        self.0.borrow_mut().partial.take()
    }
}

impl<T: Clone> OutcomeSlot<T> {
    /// A copy of the outcome, left in place.
    pub fn get(&self) -> Option<Outcome<T>> {
        self.0.borrow().outcome.clone()
    }
}

impl<T> Clone for OutcomeSlot<T> {
    fn clone(&self) -> Self {
        Self(Rc::clone(&self.0))
    }
}

impl<T> Default for OutcomeSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OutcomeSlot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OutcomeSlot")
            .field(&self.0.borrow().outcome)
            .finish()
    }
}

/// Payload bytes a transfer has moved so far, and its size once the peer
/// said it (TFTP `tsize`, tcpfile `OK <size>`): set by the client session,
/// read by a progress bar or the bench between reactor turns.
#[derive(Clone, Debug, Default)]
pub struct Progress(Rc<Cell<u64>>, Rc<Cell<Option<u64>>>);

impl Progress {
    /// A counter at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The session has moved `bytes` in all.
    pub fn set(&self, bytes: u64) {
        self.0.set(bytes);
    }

    /// Bytes moved so far.
    pub fn get(&self) -> u64 {
        self.0.get()
    }

    /// The transfer will move `bytes` in all (a download learns it from
    /// the server).
    pub fn set_total(&self, bytes: u64) {
        self.1.set(Some(bytes));
    }

    /// The transfer's size, once known.
    pub fn total(&self) -> Option<u64> {
        self.1.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_outcome_stays() {
        let slot = OutcomeSlot::<u64>::new();
        let held = slot.clone();
        assert!(!slot.is_set());
        held.set(Ok(5));
        held.set(Err(ClientError::TimedOut { tries: 1 }));
        held.fail_after(Some(1), ClientError::Io(ErrorKind::ConnectionReset));
        assert!(slot.is_set());
        assert_eq!(slot.get(), Some(Ok(5)));
        assert_eq!(slot.take_partial(), None);
        assert_eq!(slot.take(), Some(Ok(5)));
        assert_eq!(slot.take(), None);
    }

    #[test]
    fn a_failure_keeps_what_was_measured() {
        let slot = OutcomeSlot::<u64>::new();
        slot.fail_after(Some(300), ClientError::TimedOut { tries: 1 });
        assert_eq!(slot.take(), Some(Err(ClientError::TimedOut { tries: 1 })));
        assert_eq!(slot.take_partial(), Some(300));
    }

    #[test]
    fn errors_read_as_the_clients_always_printed_them() {
        let tftp = ClientError::Refused(Refusal {
            answer: "File not found".into(),
            code: Some(1),
        });
        assert_eq!(tftp.to_string(), "error 1: File not found");
        assert_eq!(
            ClientError::refused("ERROR exists: f").to_string(),
            "ERROR exists: f"
        );
        assert_eq!(
            ClientError::Io(ErrorKind::ConnectionRefused).to_string(),
            "connection refused"
        );
        assert_eq!(
            ClientError::TimedOut { tries: 3 }.to_string(),
            "no answer after 3 tries"
        );
        assert_eq!(ClientError::Local("x".into()).to_string(), "x");
    }

    #[test]
    fn progress_is_shared() {
        let p = Progress::new();
        let q = p.clone();
        q.set(42);
        assert_eq!(p.get(), 42);
        assert_eq!(p.total(), None);
        q.set_total(100);
        assert_eq!(p.total(), Some(100));
    }
}
