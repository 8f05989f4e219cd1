//! The idle and request limits (`--tcp-idle-timeout`,
//! `--tcp-request-timeout`) seen from a client: a connection that never
//! sends a byte, and a slowloris one that trickles its request.
//!
//! Shared by the four TCP protocols' real-binary tests. Every wait is
//! bounded; these tests measure real time because the server under test is
//! a real process (its timers are tested in virtual time beside the code).

#![allow(
    dead_code,
    reason = "each test crate uses a different subset of the helpers"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "real-binary tests measure real time against a real process"
)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Flags for a server whose idle limit is short and whose request limit is
/// longer, so that which one closed a connection shows in the timing.
pub(crate) const SHORT_IDLE: [&str; 4] =
    ["--tcp-idle-timeout", "300ms", "--tcp-request-timeout", "1s"];

/// Longest any of these tests waits for the server to close.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// How a connection ended, from the client's side.
#[derive(Debug)]
pub(crate) struct Closed {
    /// From connect to the close.
    pub(crate) after: Duration,
    /// What the server sent before closing.
    pub(crate) received: Vec<u8>,
    /// Bytes the client had sent by then.
    pub(crate) sent: usize,
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// Reads until `until`; `true` once the server has closed (EOF, or a reset
/// when our own write crossed its close).
fn read_until(s: &mut TcpStream, until: Instant, got: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true, // reset
        }
    }
}

/// Connects, sends nothing, and waits (bounded) for the server to close.
#[track_caller]
pub(crate) fn silent(addr: SocketAddr) -> Closed {
    let started = Instant::now();
    let mut s = connect(addr);
    let mut received = Vec::new();
    let closed = read_until(&mut s, started + CLOSE_WITHIN, &mut received);
    assert!(
        closed,
        "a silent connection still open after {CLOSE_WITHIN:?}"
    );
    Closed {
        after: started.elapsed(),
        received,
        sent: 0,
    }
}

/// Connects and sends `bytes` one at a time, one every `every`, reading in
/// between, until the server closes; then (bytes used up) waits for the
/// close. Bounded by [`CLOSE_WITHIN`].
#[track_caller]
pub(crate) fn slowloris(addr: SocketAddr, bytes: &[u8], every: Duration) -> Closed {
    let started = Instant::now();
    let mut s = connect(addr);
    let mut received = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        if s.write_all(&[*b]).is_err() || read_until(&mut s, Instant::now() + every, &mut received)
        {
            return Closed {
                after: started.elapsed(),
                received,
                sent: i + 1,
            };
        }
        assert!(started.elapsed() < CLOSE_WITHIN, "still open");
    }
    let closed = read_until(&mut s, started + CLOSE_WITHIN, &mut received);
    assert!(
        closed,
        "a slowloris connection still open after {CLOSE_WITHIN:?}"
    );
    Closed {
        after: started.elapsed(),
        received,
        sent: bytes.len(),
    }
}

/// Asserts that `closed` happened in `[min, max)`.
#[track_caller]
pub(crate) fn assert_closed_between(closed: &Closed, min: Duration, max: Duration) {
    assert!(
        closed.after >= min && closed.after < max,
        "closed after {:?}, expected {min:?}..{max:?} ({closed:?})",
        closed.after
    );
}
