#!/usr/bin/env python3
"""Amplification of `mioperf serve` TFTP to a silent peer: bytes sent to a
client that sends one request and never answers, divided by the request's
bytes. Usage: benches/tftp_amplification.py target/debug/mioperf  (about 8 s)."""
import os, socket, subprocess, sys, tempfile, time

binary = sys.argv[1]
root = tempfile.mkdtemp()
with open(os.path.join(root, "f"), "wb") as f:
    f.write(os.urandom(100_000))
srv = subprocess.Popen([binary, "serve", "--only", "tftp", "--listen", "tftp=127.0.0.1:0",
                        "--root", root], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
addr = None
for line in srv.stdout:
    w = line.split()
    if w[:3] == ["listening", "tftp", "udp"]:
        host, port = w[3].rsplit(":", 1); addr = (host, int(port))
    if line.strip() == "ready":
        break
cases = [
    ("RRQ, no options", b"\x00\x01f\x00octet\x00"),
    ("RRQ blksize 1468", b"\x00\x01f\x00octet\x00blksize\x001468\x00"),
    ("RRQ windowsize 16", b"\x00\x01f\x00octet\x00windowsize\x0016\x00"),
    ("WRQ, no options", b"\x00\x02up\x00octet\x00"),
]
socks = []
for name, req in cases:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.setblocking(False)
    s.sendto(req, addr); socks.append((name, req, s, []))
end = time.time() + 8
while time.time() < end:
    for _, _, s, got in socks:
        try:
            while True:
                got.append(len(s.recvfrom(70000)[0]))
        except BlockingIOError:
            pass
    time.sleep(0.01)
srv.terminate(); srv.wait()
print("| request | bytes in | datagrams out | bytes out | factor |")
print("|---|---:|---:|---:|---:|")
for name, req, _, got in socks:
    print(f"| {name} | {len(req)} | {len(got)} | {sum(got)} | {sum(got)/len(req):.1f}x |")
