#!/usr/bin/env bash
# hello_vs_rr.sh - hello request rate of `mioperf serve` against the C epoll
# anchor server `rr` (/work/shared/bench/rr.c), driven by the SAME rr client.
#
#   UDP : rr udp-client PORT 16 3 ids   -> rr udp-server  | mioperf (hello udp)
#   TCP : rr tcp-conn   PORT 16 3 ids   -> rr tcp-server  | mioperf (hello tcp)
#         (each of 16 slots: connect + "HELLO <id>\n" + read the answer + close)
#
# rr's clients need an answer to every request: mioperf answers every HELLO
# with OK or RESET (both count). The C server answers "OK" to anything that
# starts with HELLO. `--id-ttl 10ms` lets rr's cycling IDs come back as OK.
#
# Runs alternate between the servers (C M M C C M ...), RUNS per server, each
# SECS long, and the script reports the median (min..max) rate of each, the
# ratio of medians mioperf/C, the median of the per-pair ratios, and the
# server's CPU time per request (from /proc/PID/stat). Then the same with
# server and client both pinned to CPU 0 (PINNED=0 skips it): on this 2-vCPU
# VM a cross-CPU wake-up costs ~40 us, so unpinned figures depend on where
# the scheduler puts the two processes (see RESULTS.md, "CPU placement
# dominates"). Last, a connect burst (BURST=0 skips it): 1000 rr tcp-conn
# slots at once, with the kernel's ListenOverflows count for each run.
#
# Env: RUNS (5), SECS (3), PINNED (1), UNPINNED (1), BURST (1), BURST_SLOTS
#      (1000), BURST_RUNS (3), MIOPERF (binary; built if unset),
#      MIOPERF_ARGS (extra `serve` flags, e.g. "--timer poll"), ID_TTL (10ms),
#      MODES ("udp-client tcp-conn"), RR_SRC, WORK (/tmp/mioperf-bench),
#      PORT_BASE (27600).
# Loopback only; every client run is bounded by `timeout`; only the PIDs this
# script started are stopped.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-5}
SECS=${SECS:-3}
PINNED=${PINNED:-1}
UNPINNED=${UNPINNED:-1}
MODES=${MODES:-"udp-client tcp-conn"}
MIOPERF_ARGS=${MIOPERF_ARGS:-}
ID_TTL=${ID_TTL:-10ms}
BURST=${BURST:-1}
BURST_SLOTS=${BURST_SLOTS:-1000}
BURST_RUNS=${BURST_RUNS:-3}
RR_SRC=${RR_SRC:-/work/shared/bench/rr.c}
WORK=${WORK:-/tmp/mioperf-bench}
PORT_BASE=${PORT_BASE:-27600}
LO=127.0.0.1
mkdir -p "$WORK"

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${MIOPERF:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet) || { echo "cargo build failed"; exit 1; }
  MIOPERF=${CARGO_TARGET_DIR:-$ROOT/target}/release/mioperf
fi
[ -x "$MIOPERF" ] || { echo "no mioperf binary at $MIOPERF"; exit 1; }
RR=$WORK/rr
gcc -O2 -Wall -o "$RR" "$RR_SRC" || { echo "cannot build $RR_SRC"; exit 1; }

port_free() { ! ss -tanH "sport = :$1" | grep -q . && ! ss -uanH "sport = :$1" | grep -q .; }
wait_port() { # proto port
  for _ in $(seq 50); do
    if [ "$1" = udp ]; then ss -lunH "sport = :$2" | grep -q . && return 0
    else ss -ltnH "sport = :$2" | grep -q . && return 0; fi
    sleep 0.1
  done
  echo "port $2/$1 not ready"; return 1
}
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
# judge_lines: passes lines through; a "JUDGE<TAB>label<TAB>mine<TAB>C<TAB>mode"
# line becomes lib.sh's verdict of mioperf/C >= 1.0.
judge_lines() {
  local kind label mine ref mode key
  while IFS= read -r line; do
    if [[ $line == JUDGE$'\t'* ]]; then
      IFS=$'\t' read -r kind label mine ref mode <<< "$line"
      key=rr_udp_16_req; [ "$mode" = tcp-conn ] && key=rr_tcp_conn_16_conn
      judge "$label" "$mine" "$ref" "$key" 1.0 "mioperf/C"
    else
      printf '%s\n' "$line"
    fi
  done
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
TCK=$(getconf CLK_TCK)

# start_servers PIN -> sets C_UDP C_TCP M (pids) and P_CU P_CT P_M (ports)
start_servers() {
  local pin=$1 p=$PORT_BASE
  local ports=()
  while [ ${#ports[@]} -lt 3 ]; do port_free $p && ports+=("$p"); p=$((p + 1)); done
  P_CU=${ports[0]}; P_CT=${ports[1]}; P_M=${ports[2]}
  taskset -c "$pin" "$RR" udp-server "$P_CU" & C_UDP=$!; PIDS+=("$C_UDP")
  taskset -c "$pin" "$RR" tcp-server "$P_CT" & C_TCP=$!; PIDS+=("$C_TCP")
  taskset -c "$pin" "$MIOPERF" serve -q --only hello --listen "hello=$LO:$P_M" --id-ttl "$ID_TTL" $MIOPERF_ARGS \
    > "$WORK/mioperf-serve.out" 2>&1 & M=$!; PIDS+=("$M")
  wait_port udp "$P_CU" && wait_port tcp "$P_CT" && wait_port tcp "$P_M" && wait_port udp "$P_M"
}
stop_servers() { for p in $C_UDP $C_TCP $M; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }

# one_run LABEL MODE PORT SERVERPID PIN -> appends "server=LABEL ... cpu_us_per_op=" to $OUT
one_run() {
  local label=$1 mode=$2 port=$3 spid=$4 pin=$5
  local t0; t0=$(cpu_ticks "$spid")
  local line
  line=$(taskset -c "$pin" timeout $((SECS + 10)) "$RR" "$mode" "$port" 16 "$SECS" ids | grep '^RESULT')
  local t1; t1=$(cpu_ticks "$spid")
  if [ -z "$line" ]; then echo "server=$label FAILED"; return; fi
  local ops; ops=$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' <<< "$line")
  local cpu; cpu=$(python3 -c "print(f'{($t1-$t0)/$TCK*1e6/max($ops,1):.2f}')")
  echo "server=$label $line server_cpu_us_per_op=$cpu"
}

# section PIN TAG
section() {
  local pin=$1 tag=$2
  if ! start_servers "$pin"; then
    echo "FIGURE hello | $tag | FAILED: a server did not start; mioperf said:"; cat "$WORK/mioperf-serve.out"
    stop_servers; return 1
  fi
  echo "servers: rr udp-server :$P_CU, rr tcp-server :$P_CT, mioperf hello :$P_M (tcp+udp); cpus $pin"
  for mode in $MODES; do
    local cport=$P_CU cpid=$C_UDP
    [ $mode = tcp-conn ] && { cport=$P_CT; cpid=$C_TCP; }
    OUT=$WORK/hello-$tag-$mode.txt; : > "$OUT"
    for r in $(seq "$RUNS"); do
      if [ $((r % 2)) = 1 ]; then
        one_run C "$mode" "$cport" "$cpid" "$pin" | tee -a "$OUT"; sleep 0.5
        one_run mioperf "$mode" "$P_M" "$M" "$pin" | tee -a "$OUT"; sleep 0.5
      else
        one_run mioperf "$mode" "$P_M" "$M" "$pin" | tee -a "$OUT"; sleep 0.5
        one_run C "$mode" "$cport" "$cpid" "$pin" | tee -a "$OUT"; sleep 0.5
      fi
    done
    python3 - "$OUT" "$tag" "$mode" <<'EOF' | judge_lines
import re, statistics, sys
path, tag, mode = sys.argv[1:4]
rows = {"C": [], "mioperf": []}
for line in open(path):
    m = re.match(r"server=(\S+) .*rate=([0-9.]+)/s lat_p50=([0-9.]+) lat_p99=([0-9.]+).* errors=(\d+).*server_cpu_us_per_op=([0-9.]+)", line)
    if m:
        rows[m.group(1)].append(tuple(float(x) for x in m.groups()[1:]))
def med(xs): return statistics.median(xs)
def fmt(xs, f="{:,.0f}"): return f"{f.format(med(xs))} ({f.format(min(xs))}..{f.format(max(xs))})"
name = {"udp-client": "UDP HELLO req/resp, 16 in flight", "tcp-conn": "TCP connect+HELLO+close, 16 slots"}[mode]
if not rows["C"] or not rows["mioperf"]:
    print(f"FIGURE hello | {tag} | {name} | FAILED: runs C={len(rows['C'])} mioperf={len(rows['mioperf'])}")
    sys.exit(0)
for s in ("C", "mioperf"):
    r = rows[s]
    print(f"FIGURE hello | {tag} | {name} | server={s:8} runs={len(r)} rate={fmt([x[0] for x in r])}/s "
          f"p50={fmt([x[1] for x in r], '{:.0f}')} us p99={fmt([x[2] for x in r], '{:.0f}')} us "
          f"errors={int(sum(x[3] for x in r))} server_cpu={fmt([x[4] for x in r], '{:.2f}')} us/op")
ratio = med([x[0] for x in rows["mioperf"]]) / med([x[0] for x in rows["C"]])
pairs = [m[0] / c[0] for m, c in zip(rows["mioperf"], rows["C"])]
print(f"FIGURE hello | {tag} | {name} | ratio mioperf/C = {ratio:.2f} (per-pair median {med(pairs):.2f}, {min(pairs):.2f}..{max(pairs):.2f})")
# The verdict is lib.sh's (it refuses an implausible C figure): one JUDGE line.
print(f"JUDGE\thello | {tag} | {name}\t{med([x[0] for x in rows['mioperf']])}\t{med([x[0] for x in rows['C']])}\t{mode}")
EOF
  done
  stop_servers
}

echo "=== hello vs rr: $RUNS runs x ${SECS}s per server; mioperf serve args: --id-ttl $ID_TTL $MIOPERF_ARGS"
if [ "$UNPINNED" = 1 ]; then
  echo "=== unpinned ($(date -u +%H:%M:%S)), TIME_WAIT now $(ss -tanH state time-wait | wc -l)"
  section 0-1 unpinned
fi
if [ "$PINNED" = 1 ]; then
  echo "=== server and client pinned to CPU 0 ($(date -u +%H:%M:%S))"
  section 0 pinned-cpu0
fi
# burst: 1000 slots connecting at once (rr tcp-conn PORT 1000 2 ids): the
# listen backlog decides whether SYNs are dropped (and retried after ~1 s).
# mio 1.x listens with a backlog of 128; rr tcp-server uses 4096.
overflows() { nstat -az TcpExtListenOverflows 2>/dev/null | awk '/ListenOverflows/ {print $2}'; }
if [ "$BURST" = 1 ]; then
  echo "=== burst: rr tcp-conn PORT $BURST_SLOTS 2 ids, unpinned ($(date -u +%H:%M:%S))"
  if start_servers 0-1; then
    OUT=$WORK/hello-burst.txt; : > "$OUT"
    for r in $(seq "$BURST_RUNS"); do
      for s in C mioperf; do
        port=$P_CT; [ $s = mioperf ] && port=$P_M
        o0=$(overflows)
        line=$(timeout 20 "$RR" tcp-conn "$port" "$BURST_SLOTS" 2 ids | grep '^RESULT')
        o1=$(overflows)
        echo "server=$s $line listen_overflows=$(( ${o1:-0} - ${o0:-0} ))" | tee -a "$OUT"
        sleep 1
      done
    done
    stop_servers
    python3 - "$OUT" "$BURST_SLOTS" <<'EOF'
import re, statistics, sys
rows = {"C": [], "mioperf": []}
for line in open(sys.argv[1]):
    m = re.match(r"server=(\S+) .*rate=([0-9.]+)/s lat_p50=([0-9.]+) lat_p99=([0-9.]+) lat_max=([0-9.]+).*listen_overflows=(-?\d+)", line)
    if m:
        rows[m.group(1)].append(tuple(float(x) for x in m.groups()[1:]))
med = statistics.median
for s in ("C", "mioperf"):
    r = rows[s]
    if not r:
        print(f"FIGURE hello | burst {sys.argv[2]} slots | server={s} FAILED")
        continue
    print(f"FIGURE hello | burst {sys.argv[2]} slots | server={s:8} runs={len(r)} rate={med([x[0] for x in r]):,.0f}/s "
          f"p99={med([x[2] for x in r]) / 1e3:.0f} ms max={med([x[3] for x in r]) / 1e3:.0f} ms "
          f"(max over runs {max(x[3] for x in r) / 1e3:.0f} ms) listen_overflows={med([x[4] for x in r]):.0f} per run")
EOF
  else
    echo "FIGURE hello | burst | FAILED: a server did not start"; stop_servers
  fi
fi
echo "=== done ($(date -u +%H:%M:%S)); TIME_WAIT now $(ss -tanH state time-wait | wc -l)"
