#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/<target>/ (seed-*).

Each seed is a script in the byte language the harness decodes
(src/fuzzing/servers.rs: setup bytes, then one op byte per step and its
fields): whole transfers, so a short fuzz run starts from deep states. It
mirrors the decoder by hand; if the two drift apart the seeds only get less
useful, never wrong. Run from the repository root: python3 fuzz/make_seeds.py
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def u16(v): return struct.pack(">H", v)
def u8(v): return bytes([v])

# Reader.below(n) takes one byte modulo n, so the index itself works.
START = u16(0)
# ttl, max_ids, peer_rate, peer_burst, global_rate, global_burst, trust_loopback
SHARED = u16(100) + u8(3) + u16(100) + u16(1000) + u16(1000) + u16(1000) + u8(1)

def files(sizes=(250, 40, 512), overwrite=0):
    return u8(overwrite) + u8(0) + b"".join(u16(s) for s in sizes)

def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

# Op indices.
UDP = dict(jump=0, deadline=2, dgram=3, session=6, fail=9)
TCP = dict(jump=0, deadline=1, connect=2, chunk=3, end=6, read=7, fail=9)
BOTH = dict(jump=0, deadline=1, connect=2, chunk=3, end=5, read=6, dgram=7, fail=9)

def jump_ms(ms): return u16((1 << 14) | ms)
def jump_s(s): return u16((2 << 14) | s)

# ---- tftp ----------------------------------------------------------------
TFTP_CONFIG = u16(1468) + u8(7) + u16(1000) + u8(3) + u8(1) + u8(3) + u8(1)

def tftp_rrq(name_index, mode=0, mask=0, fields=b""):
    return u8(0) + u8(name_index) + u8(mode) + u8(mask) + fields

def tftp_wrq(name_index, mode=0, mask=0, fields=b""):
    return u8(1) + u8(name_index) + u8(mode) + u8(mask) + fields

def tftp_ack(block): return u8(4) + (u8(block) if block < 255 else u8(255) + u16(block))

def tftp_data(block, length):
    b = u8(block) if block < 255 else u8(255) + u16(block)
    if length == 512:
        return u8(2) + b + u8(0) + u8(0x41)
    return u8(2) + b + u8(2) + u8(length) + u8(0x41)

def to_listener(peer, payload): return u8(UDP["dgram"]) + u8(peer) + payload
def to_session(n, payload): return u8(UDP["session"]) + u8(n) + u8(0) + payload

def tftp(name, body, sizes=(1300, 40, 512)):
    write("server_tftp", name, START + SHARED + files(sizes) + TFTP_CONFIG + body)

tftp("rrq", to_listener(0, tftp_rrq(0)) + b"".join(to_session(0, tftp_ack(i)) for i in range(1, 5)))
tftp("rrq-netascii", to_listener(0, tftp_rrq(1, mode=1)) + to_session(0, tftp_ack(1)) + to_session(0, tftp_ack(1)))
tftp("rrq-options",
     to_listener(0, tftp_rrq(0, mask=1 | 2 | 4 | 8, fields=u8(1) + u16(100) + u8(2) + b"\0\0\0\0" + u8(4)))
     + to_session(0, tftp_ack(0)) + b"".join(to_session(0, tftp_ack(i)) for i in range(1, 16)))
tftp("rrq-timeouts", to_listener(0, tftp_rrq(2)) + u8(UDP["deadline"]) + u8(0) + u8(UDP["deadline"]) + u8(0)
     + u8(UDP["deadline"]) + u8(0) + to_session(0, tftp_ack(1)) + u8(UDP["jump"]) + jump_s(30))
tftp("wrq", to_listener(0, tftp_wrq(3)) + to_session(0, tftp_data(1, 512)) + to_session(0, tftp_data(2, 100))
     + to_session(0, tftp_data(2, 100)) + u8(UDP["jump"]) + jump_s(10))
tftp("wrq-netascii-exists", to_listener(1, tftp_wrq(0, mode=1)) + to_listener(1, tftp_wrq(4, mode=1))
     + to_session(1, tftp_data(1, 7)))
tftp("two-peers", to_listener(0, tftp_rrq(0)) + to_listener(2, tftp_rrq(1)) + to_session(0, tftp_ack(1))
     + to_session(1, tftp_ack(1)) + u8(UDP["session"]) + u8(0) + u8(7) + tftp_ack(1))

# ---- stopwait ------------------------------------------------------------
SW_CONFIG = u16(1000) + u8(3)

def sw(kind, bit, block, tail):
    # below(8) != 0 → templated; kind index; bit index; block: below(4) != 0 → u8 % 16
    return u8(1) + u8("GPADFEX".index(kind)) + u8("01F2".index(bit)) + u8(1) + u8(block) + tail

def sw_dgram(peer, payload): return u8(UDP["dgram"]) + u8(peer) + payload

def stopwait(name, body):
    write("server_stopwait", name, START + SHARED + files((250, 40, 100)) + SW_CONFIG + body)

stopwait("get", sw_dgram(0, sw("G", "0", 0, u8(0))) + sw_dgram(0, sw("A", "1", 1, u8(3) + b"ack"))
         + sw_dgram(0, sw("A", "0", 2, u8(3) + b"ack")) + sw_dgram(0, sw("A", "1", 3, u8(3) + b"ack"))
         + sw_dgram(0, sw("A", "F", 0, u8(3) + b"ack")))
stopwait("get-exact", sw_dgram(0, sw("G", "0", 0, u8(2))) + sw_dgram(0, sw("A", "1", 1, u8(3) + b"ack"))
         + u8(UDP["deadline"]) + u8(0) + sw_dgram(0, sw("A", "1", 1, u8(3) + b"ack")))
stopwait("put", sw_dgram(1, sw("P", "0", 0, u8(3))) + sw_dgram(1, sw("D", "1", 1, u8(100) + u8(0x41)))
         + sw_dgram(1, sw("D", "0", 2, u8(5) + u8(0x41))) + sw_dgram(1, sw("F", "F", 2, u8(9) + b"I'm Done")))
stopwait("silence", sw_dgram(0, sw("G", "0", 0, u8(0))) + u8(UDP["jump"]) + jump_s(30))

# ---- tcpfile -------------------------------------------------------------
def tcp(op, *fields): return u8(TCP[op]) + b"".join(fields)

def tf_get(name_index): return tcp("chunk", u8(0), u8(0), u8(name_index), u8(1))
def tf_put(name_index, size): return tcp("chunk", u8(0), u8(3), u8(name_index), u16(size))
def tf_bytes(n): return tcp("chunk", u8(0), u8(4), u8(0x41), u16(n))
READ_ALL = tcp("read", u8(0), u8(0))

def tcpfile(name, body):
    write("server_tcpfile", name, START + u8(3) + SHARED + files() + u8(0) + body)

tcpfile("get", tcp("connect", u8(0)) + tf_get(0) + READ_ALL + tcp("end", u8(0)))
tcpfile("put", tcp("connect", u8(0)) + tf_put(3, 300) + tf_bytes(200) + tf_bytes(100) + READ_ALL)
tcpfile("put-eof", tcp("connect", u8(1)) + tcp("chunk", u8(0), u8(2), u8(4)) + tf_bytes(50) + tcp("end", u8(0)) + READ_ALL)
tcpfile("two", tcp("connect", u8(0)) + tcp("connect", u8(1)) + tf_put(3, 10) + tcp("chunk", u8(1)) + u8(3) + u8(3) + u16(10)
        + tf_bytes(10) + tcp("chunk", u8(1), u8(4), u8(0x42), u16(10)) + READ_ALL + tcp("read", u8(1), u8(0)))

# ---- http ----------------------------------------------------------------
def http(name, body):
    write("server_http", name, START + u8(3) + SHARED + files() + u16(60000) + u16(10000) + u8(0) + body)

# method index, name index (9: ""), percent-encoded?, HTTP/1.1?, blank line?
def http_req(method, name_index, encoded=0, v11=1): return tcp("chunk", u8(0), u8(0), u8(method), u8(name_index), u8(encoded), u8(v11), u8(1))
def http_raw(data): return tcp("chunk", u8(0), u8(6), u8(len(data))) + data

http("get", tcp("connect", u8(0)) + http_req(0, 0) + READ_ALL + tcp("end", u8(0)))
http("head-index", tcp("connect", u8(0)) + http_req(1, 9, 0, 0) + READ_ALL)
http("missing", tcp("connect", u8(0)) + http_req(0, 3, 1, 0) + READ_ALL)
http("forbidden", tcp("connect", u8(0)) + http_req(0, 6, 1) + READ_ALL)
http("post", tcp("connect", u8(0)) + http_req(2, 1) + READ_ALL)
http("split", tcp("connect", u8(0)) + http_raw(b"GET /f") + http_raw(b"1 HTTP/1.0\r") + http_raw(b"\n\r\n") + READ_ALL)
http("long", tcp("connect", u8(0)) + tcp("chunk", u8(0), u8(4), u8(0x41), u16(5000)) + READ_ALL)

# ---- msg -----------------------------------------------------------------
def msg_frame(n, body): return tcp("chunk", u8(0), u8(0), u8(0), u8(n), u8(body), u8(0x41))

def msg(name, body):
    write("server_msg", name, START + u8(3) + SHARED + u8(1) + u16(1000) + body)

msg("frames", tcp("connect", u8(0)) + msg_frame(5, 5) + msg_frame(10, 3) + tcp("chunk", u8(0), u8(3), u8(7)) + b"AAAAAAA"
    + READ_ALL + tcp("end", u8(0)))
msg("too-large", tcp("connect", u8(0)) + tcp("chunk", u8(0), u8(1), u8(1), u16(5000), u8(0), u8(0)) + READ_ALL)

# ---- hello ---------------------------------------------------------------
def both(op, *fields): return u8(BOTH[op]) + b"".join(fields)

def hello_line(id_, form=0, ending=2): return u8(0) + u8(id_) + u8(form) + u8(ending)

def hello(name, body):
    write("server_hello", name, START + u8(3) + SHARED + u16(1000) + body)

hello("tcp", both("connect", u8(0)) + both("chunk", u8(0)) + hello_line(1) + both("chunk", u8(0)) + hello_line(2, 1)
      + both("read", u8(0), u8(0)) + both("chunk", u8(0)) + hello_line(1) + both("read", u8(0), u8(0)))
hello("udp", both("dgram", u8(0)) + hello_line(5, 0, 0) + both("dgram", u8(1)) + hello_line(5, 1, 1)
      + both("jump") + jump_s(5) + both("dgram", u8(2)) + hello_line(5, 0, 0))
hello("idle", both("connect", u8(0)) + both("jump") + jump_s(20) + both("deadline", u8(0)))

# ---- lab -----------------------------------------------------------------
LAB_CONFIG = u8(10) + b"\0\0\x10\0" + u16(600) + u16(200) + u16(1000)

def lab(name, body):
    write("server_lab", name, START + u8(3) + SHARED + LAB_CONFIG + body)

def lab_file(n): return u8(0) + b"\0\0" + u16(n)
def lab_stream(interval, count, size): return u8(2) + u8(interval) + u8(count) + u8(0) + u8(size)

lab("tcp-file", both("connect", u8(0)) + both("chunk", u8(0)) + lab_file(3000) + u8(1) + both("read", u8(0), u8(0))
    + both("read", u8(0), u8(0)) + both("end", u8(0)))
lab("tcp-stream", both("connect", u8(0)) + both("chunk", u8(0)) + lab_stream(1, 5, 64) + u8(1)
    + both("deadline", u8(0)) + both("read", u8(0), u8(0)) + both("deadline", u8(0)) + both("deadline", u8(0)))
lab("udp-file", both("dgram", u8(2)) + lab_file(3000) + both("deadline", u8(0)) + both("dgram", u8(2)) + u8(5) + u8(3) + b"abc")
lab("udp-stream", both("dgram", u8(0)) + lab_stream(2, 4, 100) + both("deadline", u8(0)) + both("deadline", u8(0)))
lab("tcp-echo", both("connect", u8(0)) + both("chunk", u8(0)) + u8(5) + u8(4) + b"abc\n" + u8(0)
    + both("read", u8(0), u8(0)))
