#!/usr/bin/env python3
"""Slowloris against `mioperf serve`: N connections per TCP protocol, each
sending one request byte a second (msg: 3 header bytes, then nothing); prints
when the server closed them and the server's open descriptors over time.
Bounded: at most 20 s, loopback only.  usage: slowloris.py BINARY N [FLAGS...]"""
import os, select, socket, subprocess, sys, tempfile, time
binary, n, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
root = tempfile.mkdtemp()
args = [binary, "serve", "-q", "--root", root, "--only", "hello,lab,msg,tcpfile"]
for p in ("hello", "lab", "msg", "tcpfile"):
    args += ["--listen", f"{p}=127.0.0.1:0"]
srv = subprocess.Popen(args + extra, stdout=subprocess.PIPE, text=True)
addrs = {}
for line in srv.stdout:
    w = line.split()
    if w[0] == "ready":
        break
    if w[2] == "tcp":
        h, port = w[3].rsplit(":", 1)
        addrs[w[1]] = (h, int(port))
silent = os.environ.get("SILENT") == "1"
payload = {"hello": b"HELLO 1234567890123456789", "lab": b"abcdefghijklmnopqrstuvwxyz",
           "msg": b"\x00\x00\x01", "tcpfile": b"slow-name-of-a-file.txt:GET"}
if silent:
    payload = {p: b"" for p in payload}
fds = lambda: len(os.listdir(f"/proc/{srv.pid}/fd"))
base = fds()
conns = []
t0 = time.monotonic()
for p, a in addrs.items():
    for _ in range(n):
        s = socket.create_connection(a, timeout=3)
        s.setblocking(False)
        conns.append([p, s, 0, None])
print(f"server fds: {base} before, {fds()} with {len(conns)} slowloris connections")
next_byte, samples = t0, []
while time.monotonic() - t0 < 20 and any(c[3] is None for c in conns):
    now = time.monotonic()
    if now >= next_byte:
        for c in conns:
            if c[3] is None and c[2] < len(payload[c[0]]):
                try:
                    c[1].send(payload[c[0]][c[2]:c[2] + 1]); c[2] += 1
                except OSError:
                    c[3] = now - t0
        samples.append((round(now - t0), fds()))
        next_byte += 1.0
    live = [c for c in conns if c[3] is None]
    r, _, _ = select.select([c[1] for c in live], [], [], 0.05)
    for c in live:
        if c[1] in r:
            try:
                if c[1].recv(4096) == b"":
                    c[3] = time.monotonic() - t0
            except OSError:
                c[3] = time.monotonic() - t0
for p in addrs:
    t = sorted(c[3] for c in conns if c[0] == p and c[3] is not None)
    still = sum(1 for c in conns if c[0] == p and c[3] is None)
    rng = f"closed {len(t)} at {t[0]:.2f}..{t[-1]:.2f} s" if t else "closed 0"
    print(f"{p:8} {rng}, still open after 20 s: {still}")
print("server fds by second:", " ".join(f"{s}s:{f}" for s, f in samples))
print(f"server fds at the end ({time.monotonic() - t0:.1f} s): {fds()}")
srv.terminate(); srv.wait(5)
