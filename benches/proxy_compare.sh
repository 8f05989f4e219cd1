#!/usr/bin/env bash
# proxy_compare.sh - the figures of issue 6, each against a reference run in
# the same script (loopback only; every run bounded by `timeout`):
#
# 1. Overhead at no impairment: the C request/response anchor
#    (/work/shared/bench/rr.c: `rr udp-client` -> `rr udp-server`) direct and
#    through `mioperf proxy`, alternating, RUNS each: requests/s and RTT
#    p50/p99 with 1 and 16 sockets in flight. Added latency = through - direct.
# 2. Latency accuracy: the same rr client through `--latency LAT_MS`; the error
#    is RTT - direct RTT - 2*LAT (both directions), at p50 and p99.
# 3. Rate accuracy: a Python sender offers ~1.25x RATE of 1000-byte datagrams
#    for RATE_SECS through `--rate RATE`; a Python receiver measures delivered
#    bytes / (last - first arrival). Goal: within 1 %.
# 4. Transfers against drop rate: stopwait GET (SW_BYTES) and TFTP GET
#    (TFTP_BYTES, blksize 512 window 1, and window 8) through the proxy at
#    0/5/20/40 % drop each way, with 50 ms retransmission timers on both
#    ends: seconds and retransmissions (client's --json), SEEDS seeds each.
#
# Env: RUNS (3), SECS (3), LAT_MS (10), RATE (10000000), RATE_SECS (3),
#      SW_BYTES (10000), TFTP_BYTES (51200), SEEDS ("1 2 3"), MIOPERF, RR_SRC,
#      WORK (/tmp/mioperf-proxy-bench), PORT_BASE (27800), SKIP ("" or a list
#      of "overhead latency rate transfers").
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-3}
SECS=${SECS:-3}
LAT_MS=${LAT_MS:-10}
RATE=${RATE:-10000000}
RATE_SECS=${RATE_SECS:-3}
SW_BYTES=${SW_BYTES:-10000}
TFTP_BYTES=${TFTP_BYTES:-51200}
SEEDS=${SEEDS:-"1 2 3"}
RR_SRC=${RR_SRC:-/work/shared/bench/rr.c}
WORK=${WORK:-/tmp/mioperf-proxy-bench}
PORT_BASE=${PORT_BASE:-27800}
SKIP=${SKIP:-}
LO=127.0.0.1
mkdir -p "$WORK"

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
skip() { case " $SKIP " in *" $1 "*) return 0 ;; esac; return 1; }

if [ -z "${MIOPERF:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet) || { echo "cargo build failed"; exit 1; }
  MIOPERF=${CARGO_TARGET_DIR:-$ROOT/target}/release/mioperf
fi
RR=$WORK/rr
gcc -O2 -Wall -o "$RR" "$RR_SRC" || { echo "cannot build $RR_SRC"; exit 1; }

# proxy PORT UPSTREAM_PORT ARGS... : starts a proxy, waits for `ready`.
proxy() {
  local port=$1 up=$2; shift 2
  "$MIOPERF" -q proxy --listen $LO:$port --upstream $LO:$up "$@" >"$WORK/proxy-$port.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q '^ready' "$WORK/proxy-$port.out" 2>/dev/null && return 0; sleep 0.05; done
  echo "proxy on $port not ready"; cat "$WORK/proxy-$port.out"; exit 1
}
stop_last() { kill -INT "${PIDS[-1]}" 2>/dev/null; wait "${PIDS[-1]}" 2>/dev/null; unset 'PIDS[-1]'; }

RRS=$PORT_BASE
"$RR" udp-server $RRS & PIDS+=($!)
sleep 0.2

# rr_runs TAG PORT N: RUNS lines "rate p50 p99" of rr udp-client against PORT.
rr_line() { timeout $((SECS + 10)) "$RR" udp-client "$1" "$2" "$SECS" | grep '^RESULT'; }
summarize() { # TAG FILE_DIRECT FILE_VIA [EXTRA_US]
  python3 - "$@" <<'EOF'
import re, statistics, sys
tag, direct, via = sys.argv[1:4]
extra = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
def load(p):
    rows = []
    for line in open(p):
        d = dict(re.findall(r'(\w+)=([\d.]+)', line))
        rows.append((float(d['rate']), float(d['lat_p50']), float(d['lat_p99'])))
    return rows
D, V = load(direct), load(via)
med = statistics.median
for name, rows in (("direct", D), ("proxy", V)):
    print(f"  {tag} {name:6}: {med([r[0] for r in rows]):>9.0f} req/s  p50 {med([r[1] for r in rows]):7.1f} us  p99 {med([r[2] for r in rows]):7.1f} us  ({len(rows)} runs)")
ratio = med([r[0] for r in V]) / med([r[0] for r in D])
add50 = med([r[1] for r in V]) - med([r[1] for r in D]) - extra
add99 = med([r[2] for r in V]) - med([r[2] for r in D]) - extra
label = "added latency" if extra == 0 else f"error vs set latency ({extra:.0f} us RTT)"
print(f"FIGURE proxy | {tag} | rate ratio proxy/direct = {ratio:.2f} | {label}: p50 {add50:+.1f} us, p99 {add99:+.1f} us")
EOF
}

if ! skip overhead; then
  echo "== 1. overhead at no impairment (rr udp-client, ${SECS}s x $RUNS, alternating)"
  proxy $((PORT_BASE + 1)) $RRS --seed 1
  for n in 1 16; do
    : >"$WORK/d$n"; : >"$WORK/v$n"
    for _ in $(seq "$RUNS"); do
      rr_line $RRS $n >>"$WORK/d$n"
      rr_line $((PORT_BASE + 1)) $n >>"$WORK/v$n"
    done
    summarize "$n in flight" "$WORK/d$n" "$WORK/v$n"
  done
  stop_last
fi

if ! skip latency; then
  # The reference is the same proxy with no latency set, so the error is
  # that of the latency mechanism alone, not of the proxy's extra hops.
  echo "== 2. latency accuracy (--latency ${LAT_MS}ms each way, against the proxy with none)"
  proxy $((PORT_BASE + 1)) $RRS --seed 1
  proxy $((PORT_BASE + 2)) $RRS --latency ${LAT_MS}ms --seed 1 --json
  : >"$WORK/dl"; : >"$WORK/vl"
  for _ in $(seq "$RUNS"); do
    rr_line $((PORT_BASE + 1)) 1 >>"$WORK/dl"
    rr_line $((PORT_BASE + 2)) 1 >>"$WORK/vl"
  done
  summarize "latency ${LAT_MS}ms" "$WORK/dl" "$WORK/vl" $((2 * LAT_MS * 1000))
  stop_last
  # The proxy's own record: when each held copy left against when it was due.
  python3 - "$WORK/proxy-$((PORT_BASE + 2)).out" <<'EOF'
import json, sys
doc = json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][-1])
l = doc["release_lateness_ns"]
us = lambda ns: "n/a" if ns is None else f"{ns / 1000:.0f} us"
print(f"FIGURE proxy | release lateness (proxy's own clock) | p50 <= {us(l['p50'])}, p99 <= {us(l['p99'])}, max {us(l['max'])} over {l['count']} copies (goal p99 within 50 us)")
EOF
  stop_last
fi

if ! skip rate; then
  echo "== 3. rate accuracy (--rate $RATE B/s, offered ~1.25x for ${RATE_SECS}s)"
  SINK=$((PORT_BASE + 3))
  proxy $((PORT_BASE + 4)) $SINK --rate "$RATE" --queue 262144 --seed 1
  python3 - "$SINK" $((PORT_BASE + 4)) "$RATE" "$RATE_SECS" <<'EOF'
import socket, sys, threading, time
sink, via, rate, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
rx.bind(("127.0.0.1", sink)); rx.settimeout(1.0)
arrivals = []
def receive():
    while True:
        try:
            n = len(rx.recv(2048))
        except socket.timeout:
            return
        arrivals.append((time.perf_counter(), n))
t = threading.Thread(target=receive); t.start()
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"x" * 1000
per_ms = 1.25 * rate / 1000 / len(payload)
start = time.perf_counter(); count = 0
while (elapsed := time.perf_counter() - start) < secs:
    # Catch up to the schedule, so oversleeping never lowers the offer.
    while count < elapsed * 1000 * per_ms:
        tx.sendto(payload, ("127.0.0.1", via)); count += 1
    time.sleep(0.0005)
t.join(timeout=secs + 5)
# Drop the first 10 %: the queue is still filling.
a = arrivals[len(arrivals) // 10:]
measured = sum(n for _, n in a[1:]) / (a[-1][0] - a[0][0])
print(f"  offered {count * len(payload) / secs:,.0f} B/s, delivered {measured:,.0f} B/s over {len(a)} datagrams")
print(f"FIGURE proxy | rate | set {rate:,} B/s, delivered {measured:,.0f} B/s, error {100 * (measured - rate) / rate:+.2f} % (goal within 1 %)")
EOF
  stop_last
fi

if ! skip transfers; then
  echo "== 4. transfers against drop rate (50 ms timers, seeds: $SEEDS)"
  SRV=$WORK/srv; rm -rf "$SRV"; mkdir -p "$SRV"
  head -c "$SW_BYTES" /dev/urandom >"$SRV/sw.bin"
  head -c "$TFTP_BYTES" /dev/urandom >"$SRV/tftp.bin"
  printf 'tftp_timeout = "50ms"\ntftp_tries = 100\n' >"$WORK/serve.toml"
  SWP=$((PORT_BASE + 5)); TFP=$((PORT_BASE + 6))
  "$MIOPERF" -q serve --only stopwait,tftp --listen stopwait=$LO:$SWP --listen tftp=$LO:$TFP \
    --root "$SRV" --stopwait-timeout 50ms --stopwait-tries 100 --config "$WORK/serve.toml" \
    >"$WORK/serve.out" 2>&1 &
  PIDS+=($!)
  sleep 0.3
  echo "| transfer | drop | seconds (mean of seeds) | retransmissions (mean) | failures |"
  echo "|---|---|---|---|---|"
  for drop in 0 0.05 0.2 0.4; do
    for kind in stopwait tftp-w1 tftp-w8; do
      case $kind in
        stopwait) up=$SWP; cmd=(stopwait get); name=sw.bin; extra=() ;;
        tftp-w1) up=$TFP; cmd=(tftp get); name=tftp.bin; extra=() ;;
        tftp-w8) up=$TFP; cmd=(tftp get); name=tftp.bin; extra=(--windowsize 8) ;;
      esac
      : >"$WORK/t.json"
      for seed in $SEEDS; do
        proxy $((PORT_BASE + 7)) $up --drop $drop --seed "$seed"
        timeout 300 "$MIOPERF" -q "${cmd[@]}" $LO:$((PORT_BASE + 7)) $name -o "$WORK/out.bin" -f \
          --timeout 50ms --tries 100 --json "${extra[@]}" >>"$WORK/t.json" 2>/dev/null || echo '{"outcome":"failed"}' >>"$WORK/t.json"
        stop_last
      done
      python3 - "$kind" "$drop" "$WORK/t.json" <<'EOF'
import json, sys
kind, drop, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
docs = [json.loads(l) for l in open(path) if l.strip()]
ok = [d for d in docs if d.get("outcome") == "ok"]
mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
print(f"| {kind} | {drop * 100:.0f} % | {mean([d['seconds'] for d in ok]):.2f} | {mean([(d.get('stopwait') or d['tftp'])['retransmits'] for d in ok]):.1f} | {len(docs) - len(ok)} of {len(docs)} |")
EOF
    done
  done
fi
