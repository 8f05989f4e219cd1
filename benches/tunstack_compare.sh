#!/usr/bin/env bash
# benches/tunstack_compare.sh - the figures of issue 13 (tunstack, part 1),
# each beside the kernel doing the same job, in ONE script run.
#
#   sudo benches/tunstack_compare.sh             # RUNS=3, about 4 minutes
#   sudo RUNS=5 SECS=3 benches/tunstack_compare.sh
#   sudo PROFILE=1 benches/tunstack_compare.sh   # + 20 s: a callgrind profile of the
#                                                #   server on the UDP echo path
#
# What: three network namespaces this script creates (names carry its pid,
# all deleted on exit, also on Ctrl-C); nothing leaves them, and only
# 192.0.2.0/24 is used:
#   T        `mioperf serve --only tunstack` (device mio0, 192.0.2.1 is the
#            stack, 192.0.2.2 the kernel's side) and the clients.
#   A <-> B  a veth pair, A = 192.0.2.2/24 (the clients), B = 192.0.2.1/24
#            where the KERNEL answers: ICMP echo by itself, UDP by a plain
#            blocking recvfrom/sendto loop, once in Python (port 7007, the
#            reference the issue names) and once in C (port 7008, built here
#            with cc if there is one: the least user-space cost, so the
#            strict reference).
# Figures, tunstack and kernel alternating inside each repetition so drift
# hits both alike, RUNS repetitions, pinned (client and server on CPU 0,
# `taskset`, as docs/performance.md explains) and unpinned:
#   icmp   `ping -c PINGS -i 0.002 -s 56`: RTT p50/p99 from ping's own lines.
#   udp    UDP echo rate of 64 B and 1 400 B datagrams: one request in
#          flight, and a window of WIN in flight (a datagram lost in the window
#          is re-primed after 200 ms and counted), for SECS seconds each.
#          The same Python client for all; goal >= 0.8x the kernel. The
#          client's own cost is in every figure, so ratios are compressed
#          towards 1 (docs/performance.md §11 says by how much).
#   reasm  60 000-byte datagrams echoed one at a time: 41 fragments each way
#          at MTU 1500, so each one is a reassembly on each side.
# Why: the ratio is the figure; absolute numbers on this shared VM move 2x
# from one minute to the next (docs/performance.md, "The machine").
#
# Env: RUNS (3), SECS (2), PINGS (200), WIN (16), MIOPERF (release build),
#      WORK (/tmp/mioperf-tunstack-bench), PROFILE (0), PROFILE_SECS (4).
# Needs root (CAP_NET_ADMIN for namespaces and the TUN device), iproute2,
# iputils-ping, python3; valgrind for PROFILE=1.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-3}
SECS=${SECS:-2}
PINGS=${PINGS:-200}
WIN=${WIN:-16}
PROFILE=${PROFILE:-0}
PROFILE_SECS=${PROFILE_SECS:-4}
WORK=${WORK:-/tmp/mioperf-tunstack-bench}
NT=mtsb-t-$$
NA=mtsb-a-$$
NB=mtsb-b-$$
mkdir -p "$WORK"

if [ "$(id -u)" != 0 ]; then echo "tunstack_compare.sh: needs root (network namespaces, a TUN device)"; exit 2; fi
for t in ip ping python3 taskset timeout; do
  command -v "$t" >/dev/null || { echo "tunstack_compare.sh: $t is missing"; exit 2; }
done

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  for n in "$NT" "$NA" "$NB"; do ip netns del "$n" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${MIOPERF:-}" ]; then
  (cd "$ROOT" && cargo build --release -q) || exit 1
  MIOPERF=$ROOT/target/release/mioperf
fi

# ---- helpers ---------------------------------------------------------------
# The client: SIZE-byte datagrams to HOST:PORT, WIN in flight, for SECS s;
# prints "RATE LOST BADLEN" (round trips/s).
cat > "$WORK/udpc.py" <<'EOF'
import socket, sys, time
host, port, size, win, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
s.connect((host, port))
s.settimeout(0.2)
msg = bytes(range(256)) * (size // 256) + bytes(size % 256)
for _ in range(20):  # warm-up, not counted (also checks the content once)
    s.send(msg)
    try:
        assert s.recv(65535) == msg
    except socket.timeout:
        pass
n = lost = bad = 0
t0 = time.monotonic(); end = t0 + secs
for _ in range(win):
    s.send(msg)
out = win
while True:
    try:
        d = s.recv(65535)
    except socket.timeout:
        lost += out
        for _ in range(win):
            s.send(msg)
        out = win
        if time.monotonic() > end:
            break
        continue
    n += 1
    if len(d) != size:
        bad += 1
    if time.monotonic() > end:
        break
    s.send(msg)
el = time.monotonic() - t0
print(f"{n / el:.1f} {lost} {bad}")
EOF
# The kernel reference's user-space half: the plainest UDP echo there is.
cat > "$WORK/udpecho.py" <<'EOF'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("0.0.0.0", 7007))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(d, a)
EOF

# The same loop in C: the kernel's socket path with the least user space.
CECHO=""
if command -v cc >/dev/null; then
  cat > "$WORK/udpecho.c" <<'EOF'
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0), b = 4 << 20;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(argc > 1 ? atoi(argv[1]) : 7008)};
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &b, sizeof b);
    if (bind(s, (struct sockaddr *)&a, sizeof a)) return 1;
    static char buf[65536];
    for (;;) {
        struct sockaddr_in f; socklen_t l = sizeof f;
        ssize_t r = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&f, &l);
        if (r >= 0) sendto(s, buf, (size_t)r, 0, (struct sockaddr *)&f, l);
    }
}
EOF
  cc -O2 -o "$WORK/udpecho" "$WORK/udpecho.c" && CECHO=$WORK/udpecho
fi

stat_py='
import statistics, sys
v = sorted(float(x) for x in sys.argv[2:] if x not in ("", "nan"))
if not v: print("nan"); sys.exit()
if sys.argv[1] == "med": print(f"{statistics.median(v):.4g}")
elif sys.argv[1] == "range": print(f"{v[0]:.4g}-{v[-1]:.4g}")
'
med() { python3 -c "$stat_py" med "$@"; }
range() { python3 -c "$stat_py" range "$@"; }
ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{a/b:.2f}" if b else "nan")' "$1" "$2"; }
# ping's "time=X ms" lines -> "p50 p99" in microseconds.
ping_pct() {
  python3 -c '
import re, sys
v = sorted(float(m) * 1000 for m in re.findall(r"time=([0-9.]+) ms", sys.stdin.read()))
if not v: print("nan nan"); sys.exit()
print(f"{v[len(v)//2]:.0f} {v[min(len(v)-1, int(len(v)*0.99))]:.0f} {len(v)}")'
}

# ---- namespaces ------------------------------------------------------------
ip netns add "$NT" && ip netns add "$NA" && ip netns add "$NB" || exit 1
for n in "$NT" "$NA" "$NB"; do ip -n "$n" link set lo up; done
ip link add vba$$ netns "$NA" type veth peer name vbb$$ netns "$NB" || exit 1
ip -n "$NA" addr add 192.0.2.2/24 dev vba$$
ip -n "$NB" addr add 192.0.2.1/24 dev vbb$$
ip -n "$NA" link set vba$$ up
ip -n "$NB" link set vbb$$ up

ip netns exec "$NT" "$MIOPERF" serve --only tunstack > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER=$!; PIDS+=("$SERVER")
for _ in $(seq 50); do grep -q '^ready' "$WORK/serve.out" && break; sleep 0.1; done
grep -q '^ready' "$WORK/serve.out" || { echo "server did not start:"; cat "$WORK/serve.out" "$WORK/serve.err"; exit 1; }
ip netns exec "$NB" python3 "$WORK/udpecho.py" & ECHO=$!; PIDS+=("$ECHO")
CPID=""
if [ -n "$CECHO" ]; then ip netns exec "$NB" "$CECHO" 7008 & CPID=$!; PIDS+=("$CPID"); fi
sleep 0.3
ip netns exec "$NT" ping -n -c 3 -i 0.05 -W 1 192.0.2.1 > /dev/null || { echo "no ping through tunstack"; exit 1; }
ip netns exec "$NA" ping -n -c 3 -i 0.05 -W 1 192.0.2.1 > /dev/null || { echo "no ping over veth"; exit 1; }

echo "machine: $(nproc) cpus, kernel $(uname -r), $(date -u +%FT%TZ); commit $(cd "$ROOT" && git rev-parse --short HEAD); runs=$RUNS secs=$SECS pings=$PINGS win=$WIN"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server: $(grep '^listening' "$WORK/serve.out")"

# run NS PIN CMD...: inside namespace NS, pinned to CPU 0 when PIN=1
run() { local ns=$1 pin=$2; shift 2; if [ "$pin" = 1 ]; then ip netns exec "$ns" taskset -c 0 "$@"; else ip netns exec "$ns" "$@"; fi; }
place() { # PIN: move both servers
  local cpus=0; [ "$1" = 1 ] || cpus=0-$(($(nproc)-1))
  for p in "$SERVER" "$ECHO" $CPID; do taskset -apc "$cpus" "$p" >/dev/null; done
}
udp() { run "$1" "$2" timeout $((SECS + 10)) python3 "$WORK/udpc.py" 192.0.2.1 "${5:-7007}" "$3" "$4" "$SECS"; }

declare -A V   # V[key] = space-separated samples
add() { V[$1]="${V[$1]:-} $2"; }
LOSTS=""

for PIN in 1 0; do
  place "$PIN"
  for r in $(seq "$RUNS"); do
    # icmp
    read -r p50 p99 n < <(run "$NT" "$PIN" timeout 30 ping -n -c "$PINGS" -i 0.002 -W 1 192.0.2.1 | ping_pct)
    add "icmp50 t $PIN" "$p50"; add "icmp99 t $PIN" "$p99"; [ "$n" = "$PINGS" ] || LOSTS+=" icmp-tunstack:$n/$PINGS"
    read -r p50 p99 n < <(run "$NA" "$PIN" timeout 30 ping -n -c "$PINGS" -i 0.002 -W 1 192.0.2.1 | ping_pct)
    add "icmp50 k $PIN" "$p50"; add "icmp99 k $PIN" "$p99"; [ "$n" = "$PINGS" ] || LOSTS+=" icmp-kernel:$n/$PINGS"
    # udp echo and reassembly
    for case in "64 1" "1400 1" "64 $WIN" "1400 $WIN" "60000 1"; do
      set -- $case
      read -r rt lt bt < <(udp "$NT" "$PIN" "$1" "$2")
      read -r rk lk bk < <(udp "$NA" "$PIN" "$1" "$2")
      add "udp t $PIN $1 $2" "$rt"; add "udp k $PIN $1 $2" "$rk"
      add "udpratio $PIN $1 $2" "$(ratio "$rt" "$rk")"
      if [ -n "$CECHO" ]; then
        read -r rc lc bc < <(udp "$NA" "$PIN" "$1" "$2" 7008)
        add "udp c $PIN $1 $2" "$rc"; add "udpcratio $PIN $1 $2" "$(ratio "$rt" "$rc")"
        [ "${lc:-0}${bc:-0}" = 00 ] || LOSTS+=" kernel-C:$1B/w$2:lost=$lc,badlen=$bc"
      fi
      [ "${lt:-0}${bt:-0}" = 00 ] || LOSTS+=" tunstack:$1B/w$2:lost=$lt,badlen=$bt"
      [ "${lk:-0}${bk:-0}" = 00 ] || LOSTS+=" kernel:$1B/w$2:lost=$lk,badlen=$bk"
    done
  done
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
for PIN in 1 0; do
  P=$([ "$PIN" = 1 ] && echo pinned || echo unpinned)
  for q in 50 99; do
    t=${V["icmp$q t $PIN"]}; k=${V["icmp$q k $PIN"]}
    echo "FIGURE | $P | ICMP echo RTT p$q | tunstack $(med $t) us ($(range $t)) | kernel over veth $(med $k) us ($(range $k)) | ratio $(ratio "$(med $t)" "$(med $k)")"
  done
  for case in "64 1" "1400 1" "64 $WIN" "1400 $WIN" "60000 1"; do
    set -- $case
    t=${V["udp t $PIN $1 $2"]}; k=${V["udp k $PIN $1 $2"]}; q=${V["udpratio $PIN $1 $2"]}
    goal=$([ "$1" = 60000 ] && echo "(report)" || echo "(goal >= 0.8)")
    echo "FIGURE | $P | UDP echo $1 B, $2 in flight | tunstack $(med $t)/s ($(range $t)) | kernel+Python echo over veth $(med $k)/s ($(range $k)) | ratio $(med $q) (pairs $(range $q)) $goal"
    if [ -n "$CECHO" ]; then
      c=${V["udp c $PIN $1 $2"]}; q=${V["udpcratio $PIN $1 $2"]}
      echo "FIGURE | $P | UDP echo $1 B, $2 in flight | tunstack $(med $t)/s | kernel+C echo over veth $(med $c)/s ($(range $c)) | ratio $(med $q) (pairs $(range $q)) $goal"
    fi
  done
done
[ -z "$LOSTS" ] || echo "NOTE losses/short samples:$LOSTS"
kill -INT "$SERVER"; wait "$SERVER" 2>/dev/null
echo "server log (its counters on exit):"; sed 's/^/  /' "$WORK/serve.err" | tail -2

if [ "$PROFILE" = 1 ]; then
  command -v valgrind >/dev/null || { echo "PROFILE=1 needs valgrind"; exit 1; }
  rm -f "$WORK"/callgrind.out.*
  ip netns exec "$NT" valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out.tunstack" \
    "$MIOPERF" serve --only tunstack > "$WORK/serve-cg.out" 2> "$WORK/serve-cg.err" &
  SERVER=$!; PIDS+=("$SERVER")
  for _ in $(seq 300); do grep -q '^ready' "$WORK/serve-cg.out" && break; sleep 0.1; done
  read -r rt _ < <(SECS=$PROFILE_SECS udp "$NT" 0 64 1)
  echo "PROFILE | UDP echo 64 B, 1 in flight, under callgrind: $rt/s for ${PROFILE_SECS}s"
  kill -INT "$SERVER"; wait "$SERVER" 2>/dev/null
  callgrind_annotate --inclusive=no "$WORK/callgrind.out.tunstack" 2>/dev/null | sed -n '1,60p' > "$WORK/callgrind.self.txt"
  callgrind_annotate --inclusive=yes "$WORK/callgrind.out.tunstack" 2>/dev/null | sed -n '1,60p' > "$WORK/callgrind.incl.txt"
  echo "PROFILE | $WORK/callgrind.self.txt, $WORK/callgrind.incl.txt"
fi
