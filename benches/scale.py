#!/usr/bin/env python3
"""scale.py - mioperf serve with 15 000 concurrent idle hello TCP connections.

Measures, against one `mioperf serve --only hello` process (loopback only):

* memory per connection: the server's VmRSS (/proc/PID/status) after a
  warm-up, then with N idle connections open (nothing sent), then after one
  HELLO on each; (delta / N) bytes. Goal: <= 2 KiB. (VmRSS is user memory
  only: the kernel's socket buffers are not in it.)
* latency of fresh requests while the N connections are open: TCP
  connect + HELLO + answer, and UDP HELLO -> answer, p50/p99 over SAMPLES
  requests each. Goal: < 5 ms.

References, same script, same client code:
* the same latencies with no idle connection, before opening them and
  again after closing them;
* the whole sequence repeated against the C epoll anchor server `rr`
  (rr tcp-server / rr udp-server from /work/shared/bench/rr.c, built with
  gcc if --rr is not given; skip with --rr none). Holding 15 000 sockets
  also slows the *client's* kernel (every connect() searches the ephemeral
  port space), so the ratio mioperf/C separates the server's share.

The idle connections are opened non-blocking in batches (BATCH at a time);
after each batch the script waits until the server has accepted them (its
open descriptors, /proc/PID/fd), so the listen backlog (128) never
overflows. Sockets are closed with SO_LINGER 0 (RST) so the script leaves
no TIME_WAIT behind. Every wait is bounded, plus a 300 s alarm; the servers
are the only processes started, and they are stopped by PID.

The servers run in the order mioperf, C, C, mioperf (ROUNDS times), and
the latency samples of each server and state are pooled over its runs.

Usage: benches/scale.py [--mioperf PATH] [--rr PATH|none] [--conns 15000]
                        [--samples 200] [--batch 100] [--rounds 1]
"""

import argparse
import os
import resource
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

LO = "127.0.0.1"
RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def quantile(sorted_values, q):
    i = int(len(sorted_values) * q)
    return sorted_values[min(i, len(sorted_values) - 1)]


def start_server(binary, deadline_s=20):
    proc = subprocess.Popen(
        [binary, "serve", "-q", "--only", "hello", "--listen", f"hello={LO}:0", "--id-ttl", "10ms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    tcp = udp = None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    end = time.monotonic() + deadline_s
    buf = b""
    while time.monotonic() < end:
        if not sel.select(timeout=max(0.0, end - time.monotonic())):
            continue
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            parts = line.decode().split()
            if parts[:3] == ["listening", "hello", "tcp"]:
                host, port = parts[3].rsplit(":", 1)
                tcp = (host, int(port))
            elif parts[:3] == ["listening", "hello", "udp"]:
                host, port = parts[3].rsplit(":", 1)
                udp = (host, int(port))
            elif parts == ["ready"] and tcp and udp:
                sel.close()
                return proc, tcp, udp
    proc.kill()
    err = proc.stderr.read().decode(errors="replace") if proc.wait() is not None else ""
    raise RuntimeError(f"server did not become ready: {err}")


class Ids:
    """Cycles through the 4-digit ID space (the server's TTL is 10 ms)."""

    def __init__(self, start):
        self.n = start

    def next(self):
        self.n = (self.n + 1) % 10000
        return self.n


def tcp_hello(addr, ident, timeout=5.0):
    """connect + HELLO + one answer line; returns (seconds, connect seconds, answer)."""
    t0 = time.perf_counter()
    s = socket.create_connection(addr, timeout=timeout)
    t_conn = time.perf_counter() - t0
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(f"HELLO {ident}\n".encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            buf += chunk
        dt = time.perf_counter() - t0
    finally:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
        s.close()
    return dt, t_conn, buf.decode(errors="replace").strip()


def udp_hello(sock, addr, ident):
    t0 = time.perf_counter()
    sock.sendto(f"HELLO {ident}".encode(), addr)
    data, _ = sock.recvfrom(512)
    return time.perf_counter() - t0, data.decode(errors="replace")


def latency(tcp, udp, n, ids, deadline_s=60):
    """n TCP and n UDP requests, alternating; returns dict of sorted ms lists
    (tcp: connect+HELLO+answer, connect: the connect() part of it, udp)."""
    out = {"tcp": [], "udp": [], "connect": []}
    answers = {"OK": 0, "RESET": 0, "other": 0}
    end = time.monotonic() + deadline_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as us:
        us.settimeout(2.0)
        for _ in range(n):
            if time.monotonic() > end:
                break
            for kind in ("tcp", "udp"):
                try:
                    if kind == "tcp":
                        dt, dc, ans = tcp_hello(tcp, ids.next())
                        out["connect"].append(dc * 1e3)
                    else:
                        dt, ans = udp_hello(us, udp, ids.next())
                except OSError:
                    answers["other"] += 1
                    continue
                out[kind].append(dt * 1e3)
                answers[ans.split(" ")[0] if ans.split(" ")[0] in answers else "other"] += 1
    for v in out.values():
        v.sort()
    return out, answers


def open_idle(addr, pid, n, batch, deadline_s=120):
    """Opens n connections in batches; waits after each until accepted."""
    socks = []
    base = fd_count(pid)
    end = time.monotonic() + deadline_s
    sel = selectors.DefaultSelector()
    slow = 0
    while len(socks) < n:
        if time.monotonic() > end:
            raise RuntimeError(f"opening connections timed out at {len(socks)}")
        pending = {}
        for _ in range(min(batch, n - len(socks))):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(addr)
            if err not in (0, 115):  # EINPROGRESS
                s.close()
                raise RuntimeError(f"connect: {os.strerror(err)}")
            pending[s.fileno()] = (s, time.monotonic())
            sel.register(s, selectors.EVENT_WRITE)
        while pending:
            if time.monotonic() > end:
                raise RuntimeError("connect timed out")
            for key, _ in sel.select(timeout=1.0):
                s, t0 = pending.pop(key.fd)
                sel.unregister(s)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise RuntimeError(f"connect failed: {os.strerror(err)}")
                if time.monotonic() - t0 > 0.5:
                    slow += 1
                socks.append(s)
        # Let the server accept them before the next batch (backlog 128).
        while fd_count(pid) < base + len(socks):
            if time.monotonic() > end:
                raise RuntimeError(f"server accepted only {fd_count(pid) - base} of {len(socks)}")
            time.sleep(0.002)
    sel.close()
    return socks, slow


def hello_each(socks, batch, deadline_s=120):
    """Sends one HELLO on every connection (in batches) and reads the answers."""
    counts = {"OK": 0, "RESET": 0, "ERROR": 0, "closed": 0}
    ids = Ids(0)
    end = time.monotonic() + deadline_s
    sel = selectors.DefaultSelector()
    for i in range(0, len(socks), batch):
        part = socks[i : i + batch]
        for s in part:
            s.send(f"HELLO {ids.next()}\n".encode())
            sel.register(s, selectors.EVENT_READ)
        waiting = set(s.fileno() for s in part)
        while waiting:
            if time.monotonic() > end:
                raise RuntimeError("answers timed out")
            for key, _ in sel.select(timeout=1.0):
                try:
                    data = key.fileobj.recv(256)
                except OSError:
                    data = b""
                verb = data.split(b" ")[0].strip().decode(errors="replace") if data else "closed"
                counts[verb if verb in counts else "ERROR"] += 1
                sel.unregister(key.fileobj)
                waiting.discard(key.fd)
    sel.close()
    return counts


def fmt_lat(r):
    return (f"tcp {fmt_ms(r['tcp'])} [connect() p50={quantile(r['connect'], 0.5):.3f} ms]; "
            f"udp {fmt_ms(r['udp'])}")


def fmt_ms(v):
    return f"p50={quantile(v, 0.5):.3f} p99={quantile(v, 0.99):.3f} max={v[-1]:.3f} ms (n={len(v)})"


def free_port():
    with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        t.bind((LO, 0))
        port = t.getsockname()[1]
        u.bind((LO, port))  # the same number must be free for UDP too
        return port


def start_rr(rr):
    """rr tcp-server + rr udp-server on fresh ports; returns (procs, tcp, udp, pid of tcp)."""
    tport, uport = free_port(), free_port()
    procs = [subprocess.Popen([rr, "tcp-server", str(tport)]), subprocess.Popen([rr, "udp-server", str(uport)])]
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection((LO, tport), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return procs, (LO, tport), (LO, uport)


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def sequence(name, pid, tcp, udp, args):
    """The measurement sequence against one server; returns a dict of results."""
    r = {"name": name}
    ids = Ids(5000)
    latency(tcp, udp, 50, ids)  # warm-up: lazy allocations, page faults
    time.sleep(0.1)
    r["rss0"] = rss_kib(pid)
    r["ref1"], ans = latency(tcp, udp, args.samples, ids)
    print(f"[{name}] reference (0 idle conns): {fmt_lat(r['ref1'])}; "
          f"answers {ans}", flush=True)

    t0 = time.monotonic()
    socks, slow = open_idle(tcp, pid, args.conns, args.batch)
    t_open = time.monotonic() - t0
    time.sleep(0.2)
    r["rss1"] = rss_kib(pid)
    print(f"[{name}] opened {len(socks)} idle connections in {t_open:.2f} s ({slow} took > 0.5 s); "
          f"server fds {fd_count(pid)}", flush=True)
    r["open1"], ans = latency(tcp, udp, args.samples, ids)
    print(f"[{name}] with {len(socks)} idle conns: {fmt_lat(r['open1'])}; "
          f"answers {ans}", flush=True)

    counts = hello_each(socks, args.batch)
    time.sleep(0.2)
    r["rss2"] = rss_kib(pid)
    r["alive"] = counts["OK"] if name == "mioperf" else len(socks) - counts["closed"]
    print(f"[{name}] one HELLO on each: {counts}", flush=True)
    r["open2"], ans = latency(tcp, udp, args.samples, ids)
    print(f"[{name}] with {r['alive']} conns after one HELLO each: "
          f"{fmt_lat(r['open2'])}; answers {ans}", flush=True)

    for sk in socks:
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
        sk.close()
    deadline = time.monotonic() + 30
    while fd_count(pid) > 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    r["rss3"] = rss_kib(pid)
    r["ref2"], ans = latency(tcp, udp, args.samples, ids)
    print(f"[{name}] reference again (all closed, server fds {fd_count(pid)}): "
          f"{fmt_lat(r['ref2'])}", flush=True)
    return r


def build_rr():
    src = "/work/shared/bench/rr.c"
    out = os.path.join(os.environ.get("WORK", "/tmp/mioperf-bench"), "rr")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    subprocess.run(["gcc", "-O2", "-o", out, src], check=True, timeout=60)
    return out


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mioperf", default=os.path.join(target, "release", "mioperf"))
    ap.add_argument("--rr", default=None, help="rr binary (built from rr.c if unset), or 'none'")
    ap.add_argument("--conns", type=int, default=15000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1, help="rounds of (mioperf, C, C, mioperf)")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 200
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(hard, want)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < args.conns + 100:
        sys.exit(f"RLIMIT_NOFILE {soft} is too low for {args.conns} connections")
    rr = None if args.rr == "none" else (args.rr or build_rr())

    # TIME_WAIT sockets left by earlier tests make every connect() search
    # longer for a free port; wait (at most 65 s, their lifetime) for them.
    def time_wait():
        with open("/proc/net/tcp") as f:
            return sum(1 for line in f if line.split()[3:4] == ["06"])

    tw, waited = time_wait(), time.monotonic()
    while tw > 2000 and time.monotonic() - waited < 65:
        time.sleep(1)
        tw = time_wait()
    print(f"nofile {soft}; TIME_WAIT sockets now: {tw} (waited {time.monotonic() - waited:.0f} s)")

    order = (["mioperf", "C", "C", "mioperf"] if rr else ["mioperf", "mioperf"]) * args.rounds
    runs = {"mioperf": [], "C": []}
    procs = []

    def on_alarm(*_):
        stop(procs)
        sys.exit("scale.py: overall time limit reached")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(120 * len(order))
    try:
        for name in order:
            # Both servers inherit the raised descriptor limit.
            if name == "mioperf":
                proc, tcp, udp = start_server(args.mioperf)
                procs = [proc]
                print(f"mioperf pid {proc.pid}: hello tcp {tcp[1]}, udp {udp[1]}")
            else:
                procs, tcp, udp = start_rr(rr)
                print(f"rr pid {procs[0].pid}: tcp {tcp[1]}, udp {udp[1]}")
            runs[name].append(sequence(name, procs[0].pid, tcp, udp, args))
            stop(procs)
    finally:
        signal.alarm(0)
        stop(procs)

    def pooled(name, key, kind):
        return sorted(x for r in runs[name] for x in r[key][kind])

    n = args.conns
    ms = runs["mioperf"]
    per_idle = [(r["rss1"] - r["rss0"]) * 1024 / n for r in ms]
    per_hello = [(r["rss2"] - r["rss0"]) * 1024 / max(r["alive"], 1) for r in ms]
    print()
    for r in ms:
        print(f"FIGURE scale | mioperf RSS | warm={r['rss0']} KiB, {n} idle={r['rss1']} KiB, "
              f"after one HELLO each ({r['alive']} OK)={r['rss2']} KiB, all closed={r['rss3']} KiB")
    for r in runs["C"]:
        print(f"FIGURE scale | C rr RSS (reference) | warm={r['rss0']} KiB, {n} idle={r['rss1']} KiB, "
              f"after one HELLO each={r['rss2']} KiB")
    worst_mem = max(per_idle + per_hello)
    print(f"FIGURE scale | mioperf memory per idle connection = {statistics.median(per_idle):.0f} B; "
          f"after one HELLO each = {statistics.median(per_hello):.0f} B (runs={len(ms)})")
    print(f"GOAL scale | memory per connection {worst_mem:.0f} B <= 2048 B: "
          f"{'PASS' if worst_mem <= 2048 else 'FALLS SHORT'}")
    worst = 0.0
    for kind in ("tcp", "udp"):
        for key, label in (("open1", f"{n} idle conns"), ("open2", "conns after one HELLO each")):
            v = pooled("mioperf", key, kind)
            p50, p99 = quantile(v, 0.5), quantile(v, 0.99)
            worst = max(worst, p99)
            ref = pooled("mioperf", "ref1", kind) + pooled("mioperf", "ref2", kind)
            ref.sort()
            r50, r99 = quantile(ref, 0.5), quantile(ref, 0.99)
            text = label
            if kind == "tcp":
                text += f" (connect() alone p50={quantile(pooled('mioperf', key, 'connect'), 0.5):.3f} ms)"
            line = (f"FIGURE scale | {kind} fresh HELLO with {text} | mioperf p50={p50:.3f} p99={p99:.3f} ms "
                    f"(n={len(v)}) | mioperf with 0 conns p50={r50:.3f} p99={r99:.3f} ms: "
                    f"{p50 / r50:.2f}x / {p99 / r99:.2f}x")
            if runs["C"]:
                cv = pooled("C", key, kind)
                c50, c99 = quantile(cv, 0.5), quantile(cv, 0.99)
                line += f" | C rr, same state: p50={c50:.3f} p99={c99:.3f} ms; mioperf/C {p50 / c50:.2f}x / {p99 / c99:.2f}x"
            print(line)
    print(f"GOAL scale | fresh-request latency p99 (worst of tcp/udp, client-observed) {worst:.3f} ms < 5 ms: "
          f"{'PASS' if worst < 5 else 'FALLS SHORT'}")


if __name__ == "__main__":
    main()
