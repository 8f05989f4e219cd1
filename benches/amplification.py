#!/usr/bin/env python3
"""Amplification of every UDP service of `mioperf serve` to a silent peer.

For each request below, a fresh socket sends it once and then never answers;
everything the server sends to that socket within WINDOW seconds is counted.
The factor is bytes out / bytes in. The server runs with
`udp_trust_loopback = false`, so loopback is treated as the stranger a
spoofed source would be (lab's send budget applies to it).

Usage: benches/amplification.py target/release/mioperf [WINDOW_SECONDS=35]
The window must outlast every session's own end (stopwait and TFTP end an
unvalidated session after their `*_unvalidated_lifetime`; main's stopwait
retried for 25 s).
"""
import os, socket, subprocess, sys, tempfile, time

binary = sys.argv[1]
window = float(sys.argv[2]) if len(sys.argv) > 2 else 35.0
root = tempfile.mkdtemp()
with open(os.path.join(root, "f"), "wb") as f:
    f.write(os.urandom(100_000))
conf = os.path.join(root, "..", os.path.basename(root) + ".toml")
with open(conf, "w") as f:
    f.write("udp_trust_loopback = false\n")
protos = ["hello", "lab", "stopwait", "tftp"]
args = [binary, "serve", "--only", ",".join(protos), "--root", root, "--config", conf]
for p in protos:
    args += ["--listen", f"{p}=127.0.0.1:0"]
srv = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
addr = {}
for line in srv.stdout:
    w = line.split()
    if len(w) == 4 and w[0] == "listening" and w[2] == "udp":
        host, port = w[3].rsplit(":", 1)
        addr[w[1]] = (host, int(port))
    if line.strip() == "ready":
        break
cases = [
    ("hello", "hello: ID `42`", b"42"),
    ("lab", "lab: echo, 64 B", b"x" * 64),
    ("lab", "lab: file `1000000` (no acks by design)", b"1000000"),
    ("lab", "lab: stream-1-100-1400 (no acks by design)", b"stream-1-100-1400"),
    ("stopwait", "stopwait: GET `f`", b"G000000f"),
    ("stopwait", "stopwait: PUT `up`", b"P000000up"),
    ("tftp", "tftp: RRQ, no options", b"\x00\x01f\x00octet\x00"),
    ("tftp", "tftp: RRQ blksize 1468", b"\x00\x01f\x00octet\x00blksize\x001468\x00"),
    ("tftp", "tftp: RRQ windowsize 16", b"\x00\x01f\x00octet\x00windowsize\x0016\x00"),
    ("tftp", "tftp: WRQ, no options", b"\x00\x02up\x00octet\x00"),
]
socks = []
for proto, name, req in cases:
    if proto not in addr:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    s.sendto(req, addr[proto])
    socks.append((name, req, s, []))
end = time.time() + window
while time.time() < end:
    for _, _, s, got in socks:
        try:
            while True:
                got.append(len(s.recvfrom(70000)[0]))
        except BlockingIOError:
            pass
    time.sleep(0.005)
srv.terminate()
srv.wait()
print(f"window {window:.0f} s, udp_trust_loopback = false")
print("| request | bytes in | datagrams out | bytes out | factor |")
print("|---|---:|---:|---:|---:|")
for name, req, _, got in socks:
    print(f"| {name} | {len(req)} | {len(got)} | {sum(got)} | {sum(got)/len(req):.1f}x |")
