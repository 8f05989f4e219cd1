#!/usr/bin/env bash
# benches/tcp_compare.sh - the figures of issue 14 (a userspace TCP over TUN),
# each beside the kernel's TCP doing the same job, in ONE script run.
#
#   sudo benches/tcp_compare.sh                   # RUNS=3, about 6 minutes
#   sudo RUNS=5 PLACES=pinned benches/tcp_compare.sh
#   sudo SKIP_OURS=1 MIOPERF=target/debug/mioperf benches/tcp_compare.sh
#                                                 # dry run: kernel and smoltcp only
#
# What: three network namespaces this script creates (names carry its pid,
# all deleted on exit, also on Ctrl-C), and a private tmpfs for the files;
# nothing leaves them, and only 192.0.2.0/24 is used:
#   T        `mioperf serve --only tunstack` (device mio0, MTU 1500;
#            192.0.2.1 is OUR stack, 192.0.2.2 the kernel's side) and the
#            clients, which use the kernel's TCP.
#   A <-> B  a veth pair (MTU 1500), A = 192.0.2.2/24 (the same clients),
#            B = 192.0.2.1/24 where the KERNEL's TCP answers: the same
#            `mioperf serve --only tcpfile,hello` on kernel sockets (so only
#            the TCP differs), and for HTTP a small single-threaded Python
#            server that answers with sendfile (khttp.py below; our HTTP
#            exists only on the stack). Measured with the default offloads
#            (TSO/GSO/GRO) and with them off (`ethtool -K`).
#   smoltcp  ../shared/bench/smoltcp/run.sh (its own namespace): smoltcp's
#            `benchmark` example over TUN, reader (smoltcp sends) and writer
#            (smoltcp receives), 1e9 bytes a run.
# Figures (ours, kernel-offloads, kernel-no-offloads alternating inside each
# repetition, so drift hits all alike; RUNS repetitions per placement):
#   send-http   curl of a 256 MiB file from the tmpfs root: the stack SENDS.
#   send-get    `mioperf get` (tcpfile) of the same file to /dev/null.
#   recv-put    `mioperf put` (tcpfile) of a 1 GiB tmpfs file into the tmpfs
#               root, deleted after each run: the stack RECEIVES (the sink is
#               the store's write into tmpfs, the same on both sides).
#   conn-http   CONNS sequential `GET /` (HTTP/1.0), a new connection each:
#               SYN -> answer -> FIN, the server closes (Python client).
#   conn-hello  CONNS sequential `HELLO id` on new connections, client
#               closes: same server code on both sides.
#   idle        IDLE concurrent idle connections to the TCP echo (7007) over
#               TUN: mioperf's RSS before and after -> bytes per connection
#               (a fresh server each run; goal <= 4 KiB plus buffers).
# Placements (PLACES): `pinned` = server and client both on CPU 0 (as
# benches/tunstack_compare.sh: on this VM waking another vCPU costs ~40 us),
# `unpinned` = the scheduler's choice; smoltcp's run.sh is run under
# `taskset -c 0` for pinned (children inherit it).
# Why ratios: absolute numbers on this shared VM move 2x from one minute to
# the next (docs/performance.md, "The machine").
#
# Env: RUNS (3), PLACES ("pinned unpinned"), CONNS (2000), IDLE (10000),
#      SEND_MIB (256), RECV_MIB (1024), MIOPERF (release build of this
#      tree), WORK (/tmp/mioperf-tcp-bench), SMOLTCP (../shared/bench/
#      smoltcp/run.sh; empty: skipped), SKIP_OURS (0; 1: no tunstack
#      figures, for a dry run of the rest), QLEN (unset: the device's
#      txqueuelen as the server leaves it, 4096 since it sets it at setup;
#      e.g. 500, the TUN default, to see what the kernel's drops at a full
#      TUN queue cost: on 2026-12-03 a 256 MiB PUT went from 1.8-2.0 to
#      2.2-2.8 Gbit/s with 0 drops instead of ~3 000).
# Needs root (namespaces, a TUN device, a tmpfs mount), iproute2, curl,
# python3, taskset, timeout, ethtool (the no-offload figures; skipped
# without it); cargo for the release build and smoltcp.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-3}
PLACES=${PLACES:-pinned unpinned}
CONNS=${CONNS:-2000}
IDLE=${IDLE:-10000}
SEND_MIB=${SEND_MIB:-256}
RECV_MIB=${RECV_MIB:-1024}
SKIP_OURS=${SKIP_OURS:-0}
QLEN=${QLEN:-}
WORK=${WORK:-/tmp/mioperf-tcp-bench}
# shared/ sits beside the clone (../shared), or beside a worktree's parent.
if [ -z "${SMOLTCP+set}" ]; then
  SMOLTCP=""
  for s in "$ROOT/../shared/bench/smoltcp/run.sh" "$ROOT/../../shared/bench/smoltcp/run.sh"; do
    [ -f "$s" ] && { SMOLTCP=$(cd "$(dirname "$s")" && pwd)/run.sh; break; }
  done
fi
NT=mtcb-t-$$
NA=mtcb-a-$$
NB=mtcb-b-$$
VA=vtca$$
VB=vtcb$$
mkdir -p "$WORK"
FS=$WORK/tmpfs

if [ "$(id -u)" != 0 ]; then echo "tcp_compare.sh: needs root (network namespaces, a TUN device, tmpfs)"; exit 2; fi
for t in ip curl python3 taskset timeout; do
  command -v "$t" >/dev/null || { echo "tcp_compare.sh: $t is missing"; exit 2; }
done
ETHTOOL=$(command -v ethtool || true)
[ -n "$ETHTOOL" ] || echo "NOTE ethtool is missing: no kernel figures without offloads"

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  for n in "$NT" "$NA" "$NB"; do ip netns del "$n" 2>/dev/null; done
  mountpoint -q "$FS" && umount "$FS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${MIOPERF:-}" ]; then
  (cd "$ROOT" && cargo build --release -q) || exit 1
  MIOPERF=$ROOT/target/release/mioperf
fi
MIOPERF=$(cd "$(dirname "$MIOPERF")" && pwd)/$(basename "$MIOPERF")

# ---- helpers ---------------------------------------------------------------
# The kernel's HTTP reference: one connection at a time (as our single-
# threaded server), request read to its blank line, the file by sendfile,
# `Connection: close`, the server closes first.
cat > "$WORK/khttp.py" <<'EOF'
import os, socket, sys
addr, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((addr, port))
ls.listen(1024)
print("ready", flush=True)
while True:
    c, _ = ls.accept()
    try:
        req = b""
        while b"\r\n\r\n" not in req and len(req) < 8192:
            d = c.recv(4096)
            if not d:
                break
            req += d
        parts = req.split(b" ", 2)
        path = parts[1].decode() if len(parts) > 2 else "/"
        if path == "/":
            names = sorted(os.listdir(root))
            body = ("<html><body><ul>\n" + "".join(f'<li><a href="/{n}">{n}</a></li>\n' for n in names)
                    + "</ul></body></html>\n").encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % len(body) + body)
        else:
            with open(os.path.join(root, os.path.basename(path)), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
                c.sendfile(f)
    except OSError:
        pass
    finally:
        c.close()
EOF
# N sequential connections: http (GET /, read to EOF: the server closes) or
# hello (HELLO id, read the answer line, close). Prints "RATE ERRORS
# SLOW MAX_MS": SLOW = connections that took over 200 ms (a lost SYN or a
# handshake stall costs the kernel's 1 s initial RTO; a few dominate).
cat > "$WORK/connrate.py" <<'EOF'
import socket, sys, time
host, port, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
errors = slow = 0
worst = 0.0
t0 = time.monotonic()
for i in range(n):
    t1 = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, port))
        if mode == "http":
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
            if not got.startswith(b"HTTP/1.") or b" 200 " not in got[:16]:
                errors += 1
        else:
            s.sendall(b"HELLO %d\n" % (i % 10000))
            got = b""
            while not got.endswith(b"\n"):
                d = s.recv(256)
                if not d:
                    break
                got += d
            if not (got.startswith(b"OK ") or got.startswith(b"RESET ")):
                errors += 1
    except OSError:
        errors += 1
    finally:
        s.close()
    took = time.monotonic() - t1
    worst = max(worst, took)
    slow += took > 0.2
el = time.monotonic() - t0
print(f"{n / el:.1f} {errors} {slow} {worst * 1000:.0f}")
EOF
# N concurrent idle connections: prints "open K" when done (K established),
# then holds them until killed.
cat > "$WORK/idle.py" <<'EOF'
import resource, socket, struct, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 256, n + 256))
socks, fails = [], 0
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Killed, the process's sockets then end with a RST instead of 10 000
    # orphans in FIN-WAIT holding ephemeral ports for a minute.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.settimeout(5)
    try:
        s.connect((host, port))
        socks.append(s)
    except OSError:
        fails += 1
        s.close()
        if fails > 20:
            break
# Every one still open (an echo round trip on a sample proves it).
for s in socks[:: max(1, len(socks) // 20)]:
    s.sendall(b"x")
    assert s.recv(1) == b"x"
print(f"open {len(socks)} {fails}", flush=True)
time.sleep(600)
EOF

stat_py='
import statistics, sys
v = sorted(float(x) for x in sys.argv[2:] if x not in ("", "nan"))
if not v: print("nan"); sys.exit()
if sys.argv[1] == "med": print(f"{statistics.median(v):.4g}")
elif sys.argv[1] == "range": print(f"{v[0]:.4g}-{v[-1]:.4g}")
'
med() { python3 -c "$stat_py" med "$@"; }
range() { python3 -c "$stat_py" range "$@"; }
ratio() { python3 -c 'import sys
try: a, b = float(sys.argv[1]), float(sys.argv[2]); print(f"{a/b:.2f}" if b else "nan")
except ValueError: print("nan")' "$1" "$2"; }
# bytes/s -> Gbit/s
gbit() { python3 -c 'import sys
try: print(f"{float(sys.argv[1]) * 8 / 1e9:.3f}")
except ValueError: print("nan")' "${1:-nan}"; }
# `--json` of mioperf get/put on stdin -> Gbit/s
json_gbit() { python3 -c 'import json, sys
try:
    d = json.load(sys.stdin)
    print("%.3f" % (d["bits_per_second"] / 1e9) if d.get("outcome") == "ok" else "nan")
except Exception:
    print("nan")'; }

# wait_line FILE PATTERN: up to 10 s for PATTERN in FILE
wait_line() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# ---- files (tmpfs) ---------------------------------------------------------
mkdir -p "$FS"
mount -t tmpfs -o size=$((SEND_MIB + 2 * RECV_MIB + 256))m mioperf-bench "$FS" || exit 1
mkdir -p "$FS/root" "$FS/src"
head -c $((SEND_MIB << 20)) /dev/urandom > "$FS/root/big"
head -c $((RECV_MIB << 20)) /dev/zero > "$FS/src/up"

# ---- namespaces ------------------------------------------------------------
ip netns add "$NT" && ip netns add "$NA" && ip netns add "$NB" || exit 1
for n in "$NT" "$NA" "$NB"; do ip -n "$n" link set lo up; done
# The clients' namespaces: CONNS connections a figure and IDLE at once, run
# after run, must not run out of ephemeral ports (TIME-WAIT holds them 60 s).
for n in "$NT" "$NA"; do
  ip netns exec "$n" sh -c 'echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range; echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse'
done
ip link add "$VA" netns "$NA" type veth peer name "$VB" netns "$NB" || exit 1
ip -n "$NA" addr add 192.0.2.2/24 dev "$VA"
ip -n "$NB" addr add 192.0.2.1/24 dev "$VB"
ip -n "$NA" link set "$VA" mtu 1500 up
ip -n "$NB" link set "$VB" mtu 1500 up
offloads() { # on|off, both ends of the veth
  [ -n "$ETHTOOL" ] || return 1
  ip netns exec "$NA" "$ETHTOOL" -K "$VA" tso "$1" gso "$1" gro "$1" 2>/dev/null
  ip netns exec "$NB" "$ETHTOOL" -K "$VB" tso "$1" gso "$1" gro "$1" 2>/dev/null
}

# Kernel side (B): the same mioperf on kernel sockets, and the Python HTTP.
ip netns exec "$NB" "$MIOPERF" serve --only tcpfile,hello --bind 192.0.2.1 --root "$FS/root" \
  --id-ttl 100ms > "$WORK/kserve.out" 2> "$WORK/kserve.err" &
KSERVER=$!; PIDS+=("$KSERVER")
ip netns exec "$NB" python3 "$WORK/khttp.py" 192.0.2.1 7000 "$FS/root" > "$WORK/khttp.out" 2>&1 &
KHTTP=$!; PIDS+=("$KHTTP")
wait_line "$WORK/kserve.out" '^ready' || { echo "kernel-side mioperf did not start:"; cat "$WORK/kserve.out" "$WORK/kserve.err"; exit 1; }
wait_line "$WORK/khttp.out" '^ready' || { echo "khttp.py did not start:"; cat "$WORK/khttp.out"; exit 1; }

# Our side (T).
SERVER=""
start_ours() { # a fresh `serve --only tunstack`; sets SERVER
  ip netns exec "$NT" "$MIOPERF" serve --only tunstack --root "$FS/root" --id-ttl 100ms \
    > "$WORK/serve.out" 2> "$WORK/serve.err" &
  SERVER=$!; PIDS+=("$SERVER")
  wait_line "$WORK/serve.out" '^ready' || { echo "server did not start:"; cat "$WORK/serve.out" "$WORK/serve.err"; exit 1; }
  [ -z "$QLEN" ] || ip -n "$NT" link set mio0 txqueuelen "$QLEN"
}
stop_ours() { [ -n "$SERVER" ] && kill -INT "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null; SERVER=""; }
if [ "$SKIP_OURS" != 1 ]; then
  start_ours
  ip netns exec "$NT" curl -sS --max-time 10 -o /dev/null http://192.0.2.1:7000/ || { echo "no HTTP through tunstack"; cat "$WORK/serve.err"; exit 1; }
fi
ip netns exec "$NA" curl -sS --max-time 10 -o /dev/null http://192.0.2.1:7000/ || { echo "no HTTP over veth"; exit 1; }
for port in 20009 50002; do
  ip netns exec "$NA" python3 -c 'import socket, sys; socket.create_connection(("192.0.2.1", int(sys.argv[1])), 5).close()' "$port" \
    || { echo "kernel-side mioperf does not answer on $port over veth:"; cat "$WORK/kserve.err"; exit 1; }
done

# smoltcp's build (release, once; cached in its WORK) before any figure.
if [ -n "$SMOLTCP" ]; then
  env -u WORK bash "$SMOLTCP" tun 0 > "$WORK/smoltcp-build.log" 2>&1 || { echo "smoltcp build failed:"; tail -5 "$WORK/smoltcp-build.log"; SMOLTCP=""; }
fi

echo "machine: $(nproc) cpus, kernel $(uname -r), $(date -u +%FT%TZ); commit $(cd "$ROOT" && git rev-parse --short HEAD); runs=$RUNS places=\"$PLACES\" conns=$CONNS idle=$IDLE send=${SEND_MIB}MiB recv=${RECV_MIB}MiB qlen=${QLEN:-default}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# run NS PIN CMD...: inside namespace NS, on CPU 0 when PIN=1
run() { local ns=$1 pin=$2; shift 2; if [ "$pin" = 1 ]; then ip netns exec "$ns" taskset -c 0 "$@"; else ip netns exec "$ns" "$@"; fi; }
# run_bg NS PIN CMD... &: as run, but the background job IS the command
# (exec: `$!` is its pid, so killing it ends the command, not a subshell).
run_bg() { local ns=$1 pin=$2; shift 2; if [ "$pin" = 1 ]; then exec ip netns exec "$ns" taskset -c 0 "$@"; else exec ip netns exec "$ns" "$@"; fi; }
place() { # PIN: move every server
  local cpus=0; [ "$1" = 1 ] || cpus=0-$(($(nproc)-1))
  for p in $SERVER "$KSERVER" "$KHTTP"; do [ -n "$p" ] && taskset -apc "$cpus" "$p" >/dev/null; done
}

declare -A V   # V[key] = space-separated samples
add() { V[$1]="${V[$1]:-} $2"; }
NOTES=""

# Packets the kernel dropped at the TUN device's queue (qlen, 4096 as the
# server sets it) because the stack did not read them in time: each one costs the
# kernel's sender a retransmission.
tun_drops() { ip -n "$NT" -s link show mio0 2>/dev/null | awk '/TX:/ {getline; print $4; exit}'; }

# One side's figures into V[FIG SIDE PIN]. SIDE: ours (NT) or kon/koff (NA).
measure() {
  local side=$1 pin=$2 ns=$NA r=$3
  [ "$side" = ours ] && ns=$NT
  local g drops0
  drops0=$(tun_drops)
  g=$(run "$ns" "$pin" timeout 120 curl -s --max-time 110 -o /dev/null -w '%{speed_download}' http://192.0.2.1:7000/big)
  add "send-http $side $pin" "$(gbit "$g")"
  g=$(run "$ns" "$pin" timeout 120 "$MIOPERF" get 192.0.2.1:50002 big -o /dev/null --json | json_gbit)
  add "send-get $side $pin" "$g"
  local name=up-$side-$r-$pin
  g=$(run "$ns" "$pin" timeout 300 "$MIOPERF" put 192.0.2.1:50002 "$FS/src/up" --as "$name" --json | json_gbit)
  add "recv-put $side $pin" "$g"
  [ "$(stat -c %s "$FS/root/$name" 2>/dev/null)" = $((RECV_MIB << 20)) ] || NOTES+=" recv-put:$side:r$r:size"
  rm -f "$FS/root/$name"
  local rate err slow worst
  read -r rate err slow worst < <(run "$ns" "$pin" timeout 300 python3 "$WORK/connrate.py" 192.0.2.1 7000 "$CONNS" http)
  add "conn-http $side $pin" "$rate"; [ "${err:-1}" = 0 ] || NOTES+=" conn-http:$side:r$r:errors=${err:-?}"
  add "slow-http $side $pin" "${slow:-nan}"; add "worst-http $side $pin" "${worst:-nan}"
  read -r rate err slow worst < <(run "$ns" "$pin" timeout 300 python3 "$WORK/connrate.py" 192.0.2.1 20009 "$CONNS" hello)
  add "conn-hello $side $pin" "$rate"; [ "${err:-1}" = 0 ] || NOTES+=" conn-hello:$side:r$r:errors=${err:-?}"
  add "slow-hello $side $pin" "${slow:-nan}"; add "worst-hello $side $pin" "${worst:-nan}"
  if [ "$side" = ours ] && [ -n "$drops0" ]; then add "tundrops $pin" "$(( $(tun_drops) - drops0 ))"; fi
}

# Idle connections over TUN against a fresh server: RSS delta / connections.
idle() {
  local pin=$1 r=$2
  stop_ours; start_ours; place "$pin"
  local before after
  before=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status")
  run_bg "$NT" "$pin" python3 "$WORK/idle.py" 192.0.2.1 7007 "$IDLE" > "$WORK/idle.out" 2>&1 &
  local ip=$!
  for _ in $(seq 1200); do grep -q '^open' "$WORK/idle.out" && break; kill -0 "$ip" 2>/dev/null || break; sleep 0.1; done
  local open fails
  read -r _ open fails < <(grep '^open' "$WORK/idle.out")
  after=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status")
  kill "$ip" 2>/dev/null; wait "$ip" 2>/dev/null
  if [ -n "${open:-}" ] && [ "$open" -gt 0 ]; then
    add "idle-open $pin" "$open"
    add "idle-bytes $pin" "$(python3 -c "print(f'{($after - $before) * 1024 / $open:.0f}')")"
    [ "$open" = "$IDLE" ] || NOTES+=" idle:r$r:open=$open/$IDLE"
  else
    NOTES+=" idle:r$r:failed($(tail -1 "$WORK/idle.out"))"
  fi
}

for P in $PLACES; do
  PIN=$([ "$P" = pinned ] && echo 1 || echo 0)
  place "$PIN"
  for r in $(seq "$RUNS"); do
    if [ "$SKIP_OURS" != 1 ]; then measure ours "$PIN" "$r"; fi
    measure kon "$PIN" "$r"
    if offloads off; then measure koff "$PIN" "$r"; offloads on; fi
    if [ "$SKIP_OURS" != 1 ]; then idle "$PIN" "$r"; fi
  done
  # smoltcp: its own namespace; the same placement (children inherit it).
  if [ -n "$SMOLTCP" ]; then
    if [ "$PIN" = 1 ]; then out=$(taskset -c 0 env -u WORK bash "$SMOLTCP" tun "$RUNS" 2>&1); else out=$(env -u WORK bash "$SMOLTCP" tun "$RUNS" 2>&1); fi
    for m in reader writer; do
      for g in $(echo "$out" | grep "^tun $m run" | grep -o 'throughput: [0-9.]*' | awk '{print $2}'); do add "smol-$m $PIN" "$g"; done
    done
    [ -n "${V["smol-reader $PIN"]:-}" ] || NOTES+=" smoltcp:$P:no-output($(echo "$out" | tail -1))"
  else
    NOTES+=" smoltcp:skipped(${SMOLTCP:-unset})"
  fi
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- table -----------------------------------------------------------------
m() { med ${V["$1"]:-}; }
rg() { range ${V["$1"]:-}; }
cell() { local k=$1; [ -n "${V[$k]:-}" ] && echo "$(m "$k") ($(rg "$k"))" || echo "-"; }
for P in $PLACES; do
  PIN=$([ "$P" = pinned ] && echo 1 || echo 0)
  echo
  echo "## $P (median of $RUNS, min-max)"
  echo "| figure | ours over TUN | kernel veth, offloads | kernel veth, no offloads | smoltcp TUN | ours/kernel | ours/kernel no-offl. | ours/smoltcp |"
  echo "|---|---|---|---|---|---|---|---|"
  for f in send-http send-get recv-put conn-http conn-hello; do
    unit="Gbit/s"; [[ $f == conn-* ]] && unit="conn/s"
    smol="-"; rs="-"
    case $f in
      send-http|send-get) smol=$(cell "smol-reader $PIN"); rs=$(ratio "$(m "$f ours $PIN")" "$(m "smol-reader $PIN")");;
      recv-put) smol=$(cell "smol-writer $PIN"); rs=$(ratio "$(m "$f ours $PIN")" "$(m "smol-writer $PIN")");;
    esac
    [ -n "${V["$f ours $PIN"]:-}" ] || rs="-"
    echo "| $f ($unit) | $(cell "$f ours $PIN") | $(cell "$f kon $PIN") | $(cell "$f koff $PIN") | $smol | $(ratio "$(m "$f ours $PIN")" "$(m "$f kon $PIN")") | $(ratio "$(m "$f ours $PIN")" "$(m "$f koff $PIN")") | $rs |"
  done
  for f in http hello; do
    echo "| conn-$f: connections over 200 ms / slowest (ms), per run | $(cell "slow-$f ours $PIN") / $(cell "worst-$f ours $PIN") | $(cell "slow-$f kon $PIN") / $(cell "worst-$f kon $PIN") | $(cell "slow-$f koff $PIN") / $(cell "worst-$f koff $PIN") | | | | |"
  done
  if [ -n "${V["tundrops $PIN"]:-}" ]; then
    echo "| TUN queue drops (kernel side, qlen ${QLEN:-4096}) during ours' figures, per run | $(cell "tundrops $PIN") | | | | | | |"
  fi
  if [ -n "${V["idle-bytes $PIN"]:-}" ]; then
    echo "| idle: bytes of RSS per connection ($IDLE wanted; open $(rg "idle-open $PIN")) | $(cell "idle-bytes $PIN") | | | | | | (goal <= 4096 + buffers) |"
  fi
done
echo
echo "goals: ours/smoltcp >= 1.0 both ways, ours/kernel >= 0.5 (issue 14); the Python clients' own cost is in the conn/s figures, compressing their ratios towards 1."
[ -z "$NOTES" ] || echo "NOTE failures/short samples:$NOTES"
if [ -n "$SERVER" ]; then
  stop_ours
  echo "server log (its counters on exit):"; sed 's/^/  /' "$WORK/serve.err" | tail -3
fi
