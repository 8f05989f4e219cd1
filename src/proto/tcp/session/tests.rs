//! A connection driven by a scripted peer (segments as [`Repr`]s) in
//! virtual time, with a recording session above the real engine.

use super::*;
use crate::proto::tcp::conn::{Config, MAX_SEGMENT_OVERHEAD};
use crate::proto::testing::at;
use crate::proto::{Driven, StreamInput};
use crate::wire::tcp::{Control, Packet, Repr, SeqNumber};
use core::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

/// What the session saw, owned (inputs borrow).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Bytes(Vec<u8>),
    End,
    Failed(ErrorKind),
}

/// Answers every input with `reply`, closes with `close_on_end` after
/// the peer's end, reads only while `want` says so.
struct Script {
    seen: Rc<RefCell<Vec<Seen>>>,
    want: Rc<Cell<bool>>,
    reply: &'static [u8],
    out: Vec<u8>,
    close: Rc<Cell<Option<CloseReason>>>,
    close_on_end: Option<CloseReason>,
}

impl Driven for Script {
    fn poll_close(&mut self) -> Option<CloseReason> {
        self.close.take().or_else(|| {
            let ended = self.seen.borrow().contains(&Seen::End);
            ended.then(|| self.close_on_end.clone()).flatten()
        })
    }
    fn wants_input(&self) -> bool {
        self.want.get()
    }
}

impl StreamSession for Script {
    fn handle_input(&mut self, _: &mut Context, input: StreamInput<'_>) {
        let seen = match input {
            StreamInput::Bytes(b) => {
                self.out.extend_from_slice(self.reply);
                Seen::Bytes(b.to_vec())
            }
            StreamInput::End => Seen::End,
            StreamInput::Failed(k) => Seen::Failed(k),
        };
        self.seen.borrow_mut().push(seen);
    }
    fn poll_transmit(
        &mut self,
        _: &mut Context,
        limit: usize,
        buf: &mut BytesMut,
    ) -> Option<usize> {
        let n = limit.min(self.out.len());
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&self.out[..n]);
        self.out.drain(..n);
        Some(n)
    }
}

struct Peer {
    conn: Connection,
    seen: Rc<RefCell<Vec<Seen>>>,
    want: Rc<Cell<bool>>,
    close: Rc<Cell<Option<CloseReason>>>,
    /// Our next sequence number, and the connection's.
    seq: u32,
    ack: u32,
}

const LOCAL: &str = "192.0.2.1:7000";
const REMOTE: &str = "192.0.2.2:40000";
const ISS: u32 = 1_000;
const PEER_ISS: u32 = 50_000;

fn cx(ms: u64) -> Context {
    Context::new(at(ms), 3, Some(REMOTE.parse().unwrap()))
}

fn repr(control: Control, seq: u32, ack: Option<u32>, payload: &[u8]) -> Repr<'_> {
    Repr {
        src_port: 40_000,
        dst_port: 7_000,
        control,
        seq_number: SeqNumber(seq),
        ack_number: ack.map(SeqNumber),
        window_len: 64_240,
        window_scale: None,
        max_seg_size: (control == Control::Syn).then_some(1_460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload,
    }
}

/// What the connection sends at `ms`: (control, seq, ack, payload).
fn sent(conn: &mut Connection, ms: u64) -> Vec<(Control, u32, Option<u32>, Vec<u8>)> {
    let mut out = vec![0; MAX_SEGMENT_OVERHEAD + 1_460];
    let mut segs = Vec::new();
    for _ in 0..100 {
        let Some(n) = conn.poll_segment(&mut cx(ms), &mut out) else {
            break;
        };
        let p = Packet::new_checked(&out[..n]).unwrap();
        let r = Repr::parse(&p).unwrap();
        segs.push((
            r.control,
            r.seq_number.0,
            r.ack_number.map(|a| a.0),
            r.payload.to_vec(),
        ));
    }
    segs
}

/// An established connection with a [`Script`] answering `reply`.
fn established(reply: &'static [u8], close_on_end: Option<CloseReason>) -> Peer {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let want = Rc::new(Cell::new(true));
    let close = Rc::new(Cell::new(None));
    let app = Script {
        seen: seen.clone(),
        want: want.clone(),
        reply,
        out: Vec::new(),
        close: close.clone(),
        close_on_end,
    };
    let (local, remote): (SocketAddr, SocketAddr) =
        (LOCAL.parse().unwrap(), REMOTE.parse().unwrap());
    let syn = repr(Control::Syn, PEER_ISS, None, &[]);
    let tcb = Tcb::accept(&Config::default(), local, remote, &syn, ISS, at(0));
    let mut conn = Connection::new(tcb, Box::new(app));
    let synack = sent(&mut conn, 0);
    assert_eq!(synack.len(), 1);
    assert_eq!(synack[0].0, Control::Syn);
    assert_eq!(synack[0].2, Some(PEER_ISS + 1));
    conn.handle_segment(
        &mut cx(1),
        &repr(Control::None, PEER_ISS + 1, Some(ISS + 1), &[]),
    );
    assert_eq!(conn.tcb().state(), State::Established);
    Peer {
        conn,
        seen,
        want,
        close,
        seq: PEER_ISS + 1,
        ack: ISS + 1,
    }
}

#[test]
fn bytes_go_up_answers_go_down_and_the_end_comes_once_before_our_fin() {
    let mut p = established(b"pong", Some(CloseReason::Completed));
    p.conn
        .handle_segment(&mut cx(2), &repr(Control::Psh, p.seq, Some(p.ack), b"ping"));
    assert_eq!(*p.seen.borrow(), [Seen::Bytes(b"ping".to_vec())]);
    let out = sent(&mut p.conn, 2);
    let data: Vec<u8> = out.iter().flat_map(|s| s.3.clone()).collect();
    assert_eq!(data, b"pong", "{out:?}");
    assert_eq!(out[0].1, p.ack);
    p.conn.handle_segment(
        &mut cx(3),
        &repr(Control::Fin, p.seq + 4, Some(p.ack + 4), &[]),
    );
    p.conn.handle_timeout(&mut cx(500));
    assert_eq!(
        *p.seen.borrow(),
        [Seen::Bytes(b"ping".to_vec()), Seen::End],
        "End once, however often the connection is called"
    );
    let out = sent(&mut p.conn, 500);
    let fin = out.iter().find(|s| s.0 == Control::Fin).expect("our FIN");
    assert_eq!((fin.1, fin.2), (p.ack + 4, Some(p.seq + 5)), "{out:?}");
    assert_eq!(p.conn.tcb().state(), State::LastAck);
    p.conn.handle_segment(
        &mut cx(501),
        &repr(Control::None, p.seq + 5, Some(p.ack + 5), &[]),
    );
    assert!(p.conn.is_closed());
}

#[test]
fn a_session_that_wants_no_input_leaves_the_bytes_in_the_engine() {
    let mut p = established(b"", None);
    p.want.set(false);
    p.conn
        .handle_segment(&mut cx(2), &repr(Control::Psh, p.seq, Some(p.ack), b"abc"));
    assert!(p.seen.borrow().is_empty());
    assert_eq!(p.conn.tcb().received(), b"abc");
    p.want.set(true);
    // Any call into the connection moves them (a spurious timeout here).
    p.conn.handle_timeout(&mut cx(3));
    assert_eq!(*p.seen.borrow(), [Seen::Bytes(b"abc".to_vec())]);
    assert!(p.conn.tcb().received().is_empty());
}

#[test]
fn a_reset_is_one_failure_for_the_session() {
    let mut p = established(b"", None);
    p.conn
        .handle_segment(&mut cx(2), &repr(Control::Rst, p.seq, None, &[]));
    p.conn.handle_timeout(&mut cx(3));
    assert_eq!(*p.seen.borrow(), [Seen::Failed(ErrorKind::ConnectionReset)]);
    assert!(p.conn.is_closed());
    assert_eq!(p.conn.poll_timeout(), None);
}

#[test]
fn an_aborted_session_resets_the_connection() {
    let mut p = established(b"", None);
    p.close.set(Some(CloseReason::Aborted));
    p.conn.handle_timeout(&mut cx(2));
    let out = sent(&mut p.conn, 2);
    assert!(out.iter().any(|s| s.0 == Control::Rst), "{out:?}");
    assert!(p.conn.is_closed());
}

#[test]
fn a_finished_session_gets_its_last_words_out_before_the_fin() {
    let mut p = established(b"bye", None);
    p.conn
        .handle_segment(&mut cx(2), &repr(Control::Psh, p.seq, Some(p.ack), b"x"));
    p.close.set(Some(CloseReason::Completed));
    p.conn.handle_timeout(&mut cx(3));
    let out = sent(&mut p.conn, 3);
    let data: Vec<u8> = out.iter().flat_map(|s| s.3.clone()).collect();
    assert_eq!(data, b"bye", "{out:?}");
    let fin = out.iter().find(|s| s.0 == Control::Fin).expect("a FIN");
    // Alone or on the last data segment: either way, after the last byte.
    let fin_seq = fin.1 + u32::try_from(fin.3.len()).unwrap();
    assert_eq!(fin_seq, p.ack + 3, "{out:?}");
}
