#!/usr/bin/env bash
# benches/seam_ab.sh — before/after check for a refactor that must not slow
# anything (issue 12, the seam redesign): two release binaries of mioperf,
# measured on the figures of docs/performance.md that the reactor/protocol
# seam can move, interleaved in ONE script run.
#
#   benches/seam_ab.sh BEFORE_BIN AFTER_BIN [ROUNDS]      # ROUNDS default 5
#   benches/seam_ab.sh /work/perf/before/mioperf target/release/mioperf
#   benches/seam_ab.sh BIN BIN 3         # A/A: the same binary twice = noise floor
#
# Why interleaved: absolute numbers on this shared 2-vCPU VM move by 2x from
# one minute to the next (docs/performance.md, "The machine"), so measuring
# all of BEFORE and then all of AFTER would compare two different machines.
# Every figure is instead measured before, after, before, after, ... within
# each round (the order flips every round: A B, then B A), so a burst of
# other work lands on both sides alike, and each round gives one paired
# ratio after/before as well as the two medians. Run it A/A first to see
# what ratio this machine produces with no change at all.
#
# Figures (short versions of the existing scripts' commands; a measurement
# takes ~0.2–3 s, each bounded by `timeout`; a side is its binary as server AND as
# client wherever mioperf is the client, so client-side code counts too):
#   hello UDP / TCP request rate, pinned     (benches/hello_vs_rr.sh: rr client,
#                                             server and client on CPU 0)
#   hello UDP server CPU per request, pinned (same run, /proc/PID/stat)
#   lab paced stream 10 000 x 64 B at 100 us: schedule error p50/p99
#                                            (benches/lab_compare.sh, `pace`)
#   lab interval-0 UDP stream, 64 B: pkt/s received (lab_compare `burst`,
#                                             1 M segments instead of 2 M)
#   lab 123 456 789-byte file over TCP       (lab_compare `file`, median of 3)
#   tcpfile GET of a 256 MiB file to /dev/null (tcpfile_compare `get`, 3 GETs)
#   stopwait GET, mioperf client             (tftp_compare; 3 MB, not 9 MB)
#   TFTP RRQ blksize 1468 with curl          (tftp_compare; 64 MiB, not 100)
#   TFTP windowsize 16 with atftp            (tftp_compare; 256 MiB)
#   TFTP windowsize 16, mioperf's own client (tftp get --windowsize 16, 256 MiB)
#     (these four with server and client on CPU 0: lock-step transfers are
#     wake-up bound and swing 2x with CPU placement when unpinned)
#   proxy relay rate, rr udp-client 16 in flight through `mioperf proxy`
#                                            (benches/proxy_compare.sh §1; rr
#                                             client, proxy, rr server on CPU 0)
#   RSS per idle TCP connection, 5 000 open, and after one HELLO on each
#                                            (benches/scale.py's functions)
#   `mioperf bench hello -P 1000`, server CPU 0, bench CPU 1 (docs/bench.md)
#   cost (first COST_ROUNDS rounds only; counts, not times, so they hold
#   under load): user-space instructions per operation under cachegrind —
#   hello server per UDP request and per TCP connection, stopwait and TFTP
#   server and client per block, the proxy per relayed request — and the
#   hello server's system calls per UDP request (perf syscall tracepoint;
#   this one does move with timing: how many datagrams one recvmmsg finds).
# Not here: benches/timers.rs and benches/deadline.rs (cargo benches of the
# deadline heap and wake-up lateness; `cargo bench` them per binary's tree).
#
# Output: a markdown table `figure | before | after | after/before` (median
# and min–max over rounds; the ratio of medians with the range of per-round
# ratios), a verdict against the 3 % criterion, and the spread of each side
# (max−min over median) as the noise note. Raw samples: $WORK/samples.tsv;
# the report: $WORK/report.md.
#
# A round takes about 75 s (both sides), 150 s with the cost section, so
# ROUNDS=5 is about 9 minutes.
# Env: WORK (/tmp/mioperf-seam-ab), BUDGET (seconds, 600: no new round starts
# after that, so the run stays under ~12 min), COST_ROUNDS (2), SECS (3, per
# rate measurement), ONLY (a subset of "hello lab tcpfile transfers proxy
# memory bench cost"), RR_SRC, PORT_BASE (28700).
# Needs: gcc (rr.c), python3, curl, atftp, taskset, valgrind, perf.
# Loopback only; every process runs under `timeout`; only the PIDs this
# script started are stopped (on exit, by a trap).
set -u
if [ $# -lt 2 ]; then
  sed -n '2,9p' "$0"; echo "(more in the header of $0)"; exit 2
fi
A_BIN=$(readlink -f "$1"); B_BIN=$(readlink -f "$2"); ROUNDS=${3:-5}
for b in "$A_BIN" "$B_BIN"; do [ -x "$b" ] || { echo "not executable: $b"; exit 2; }; done
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-/tmp/mioperf-seam-ab}
BUDGET=${BUDGET:-600}
COST_ROUNDS=${COST_ROUNDS:-2}
SECS=${SECS:-3}
RR_SRC=${RR_SRC:-/work/shared/bench/rr.c}
PORT_BASE=${PORT_BASE:-28700}
ALL="hello lab tcpfile transfers proxy memory bench cost"
ONLY=${ONLY:-$ALL}
LO=127.0.0.1
mkdir -p "$WORK/root" "$WORK/out"
SAMPLES=$WORK/samples.tsv
: > "$SAMPLES"

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in gcc python3 curl atftp taskset valgrind perf; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool"; exit 2; }
done
# The TFTP clients must be what the rows name (benches/lib.sh).
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
ref_is curl-tftp "$(command -v curl)" || { echo "seam_ab.sh: $WHY"; exit 2; }
ref_is atftp "$(command -v atftp)" || { echo "seam_ab.sh: $WHY"; exit 2; }
RR=$WORK/rr
gcc -O2 -Wall -o "$RR" "$RR_SRC" || { echo "cannot build $RR_SRC"; exit 2; }
# Files, made once and kept in the page cache.
[ "$(stat -c %s "$WORK/root/f256M" 2>/dev/null)" = 268435456 ] || head -c 256M /dev/urandom > "$WORK/root/f256M"
[ "$(stat -c %s "$WORK/root/f64M" 2>/dev/null)" = 67108864 ] || head -c 64M /dev/urandom > "$WORK/root/f64M"
[ "$(stat -c %s "$WORK/root/f3M" 2>/dev/null)" = 3000000 ] || head -c 3000000 /dev/urandom > "$WORK/root/f3M"
[ "$(stat -c %s "$WORK/root/f1M" 2>/dev/null)" = 1000000 ] || head -c 1000000 /dev/urandom > "$WORK/root/f1M"
[ "$(stat -c %s "$WORK/root/f16M" 2>/dev/null)" = 16777216 ] || head -c 16M /dev/urandom > "$WORK/root/f16M"
cat "$WORK"/root/f* > /dev/null

# --- helpers -----------------------------------------------------------------
# emit SIDE NAME VALUE: one sample (ROUND is global).
emit() { printf '%s\t%s\t%s\t%s\n' "$1" "$ROUND" "$2" "$3" >> "$SAMPLES"; }
now() { date +%s.%N; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
TCK=$(getconf CLK_TCK)
port_free() { ! ss -tanH "sport = :$1" | grep -q . && ! ss -uanH "sport = :$1" | grep -q .; }
free_port() { local p=$PORT_BASE; while ! port_free $p; do p=$((p + 1)); done; echo $p; }
wait_udp() { for _ in $(seq 50); do ss -lunH "sport = :$1" | grep -q . && return 0; sleep 0.1; done; return 1; }
# The child of a `timeout` wrapper (the process whose CPU we read).
child_of() { for _ in $(seq 20); do local c; c=$(cat "/proc/$1/task/$1/children" 2>/dev/null); [ -n "$c" ] && { echo "${c%% *}"; return; }; sleep 0.05; done; echo "$1"; }
# field FILE EXPR: a value from a JSON document (python expression on `d`), or nan.
field() { python3 -c '
import json, sys
try:
    text = open(sys.argv[1]).read().strip()
    try:
        d = json.loads(text)
    except ValueError:  # several documents, one a line: the last
        d = json.loads(text.splitlines()[-1])
    print(eval(sys.argv[2]))
except Exception:
    print("nan")' "$1" "$2"; }
rr_rate() { sed -n 's/.* rate=\([0-9.]*\)\/s.* errors=0.*/\1/p'; }

# serve PIN BIN ARGS...: starts `BIN serve -q ARGS` (PIN: "" or a cpu list),
# waits for `ready`; sets SRV (the timeout wrapper), SRV_PID (mioperf itself).
serve() {
  local pin=$1 bin=$2; shift 2
  local pre=(); [ -n "$pin" ] && pre=(taskset -c "$pin")
  "${pre[@]}" timeout 120 "$bin" serve -q "$@" > "$WORK/serve.out" 2> "$WORK/serve.err" &
  SRV=$!; PIDS+=("$SRV")
  for _ in $(seq 100); do grep -q '^ready' "$WORK/serve.out" && break; sleep 0.05; done
  SRV_PID=$(child_of "$SRV")
  grep -q '^ready' "$WORK/serve.out" || { echo "server did not start: $(cat "$WORK/serve.err")" >&2; stop "$SRV"; return 1; }
}
# addr PROTO TRANSPORT: the address a `serve` listener printed.
addr() { awk -v p="$1" -v t="$2" '$1 == "listening" && $2 == p && $3 == t {print $4}' "$WORK/serve.out"; }
# forget PID: drops a reaped PID from PIDS, so the exit trap never signals
# a number the kernel may since have given to someone else's process.
forget() { local keep=() p; for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done; PIDS=("${keep[@]}"); }
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; forget "$1"; }

# --- measurements: each NAME is a function m_NAME SIDE BIN --------------------
m_hello() { # benches/hello_vs_rr.sh, pinned section
  local side=$1 bin=$2
  serve 0 "$bin" --only hello --listen hello=$LO:0 --id-ttl 10ms || return
  local u t line t0 t1 ops rate
  u=$(addr hello udp); t=$(addr hello tcp)
  t0=$(ticks "$SRV_PID")
  line=$(taskset -c 0 timeout $((SECS + 10)) "$RR" udp-client "${u##*:}" 16 "$SECS" ids | grep '^RESULT')
  t1=$(ticks "$SRV_PID")
  rate=$(rr_rate <<< "$line"); ops=$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' <<< "$line")
  emit "$side" hello_udp_pinned "${rate:-nan}"
  [ -n "$ops" ] && [ "$ops" -gt 0 ] && emit "$side" hello_udp_cpu_per_op "$(python3 -c "print(($t1-$t0)/$TCK*1e6/$ops)")"
  sleep 0.3
  line=$(taskset -c 0 timeout $((SECS + 10)) "$RR" tcp-conn "${t##*:}" 16 "$SECS" ids | grep '^RESULT')
  emit "$side" hello_tcp_pinned "$(rr_rate <<< "$line")"
  stop "$SRV"
}

m_lab() { # benches/lab_compare.sh: pace (100 us), burst (64 B), file
  local side=$1 bin=$2
  serve "" "$bin" --only lab --listen lab=$LO:0 --stream-max-count 3000000 || return
  local u t
  u=$(addr lab udp); t=$(addr lab tcp)
  timeout 20 "$bin" lab $LO "${u##*:}" --udp stream-0.1-10000-64 --json > "$WORK/pace.json"
  emit "$side" lab_pace_p50_us "$(field "$WORK/pace.json" 'd["stream"]["stats"]["schedule_error_ns"]["p50"]/1e3')"
  emit "$side" lab_pace_p99_us "$(field "$WORK/pace.json" 'd["stream"]["stats"]["schedule_error_ns"]["p99"]/1e3')"
  timeout 20 "$bin" lab $LO "${u##*:}" --udp stream-0-1000000-64 --max-count 1000000 --json > "$WORK/burst.json"
  emit "$side" lab_burst_64B_pps "$(field "$WORK/burst.json" 'd["stream"]["stats"]["segments_per_second"] or float("nan")')"
  local g=()
  for _ in 1 2 3; do
    timeout 20 "$bin" lab $LO "${t##*:}" 123456789 --json > "$WORK/file.json"
    g+=("$(field "$WORK/file.json" 'd["bits_per_second"]/1e9 if d["file"]["pattern_ok"] and d["bytes"] == 123456789 else float("nan")')")
  done
  emit "$side" lab_file_tcp_gbps "$(python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "${g[@]}")"
  stop "$SRV"
}

m_tcpfile() { # benches/tcpfile_compare.sh `get`, 256 MiB instead of 1 GiB, 3 GETs
  local side=$1 bin=$2
  serve "" "$bin" --only tcpfile --listen tcpfile=$LO:0 --root "$WORK/root" || return
  local a t0 t1 ok=1
  a=$(addr tcpfile tcp)
  t0=$(now)
  for _ in 1 2 3; do timeout 20 "$bin" get "$a" f256M -o /dev/null > /dev/null 2>&1 || ok=0; done
  t1=$(now)
  [ $ok = 1 ] && emit "$side" tcpfile_get_256M_gbps "$(python3 -c "print(3*268435456*8/($t1-$t0)/1e9)")" \
    || emit "$side" tcpfile_get_256M_gbps nan
  stop "$SRV"
}

# tftp_timed BLKSIZE NAME OUT CMD...: blocks/s of one complete transfer of
# root/NAME into OUT, or nan.
tftp_timed() {
  local bs=$1 name=$2 out=$3; shift 3
  local sz; sz=$(stat -c %s "$WORK/root/$name")
  rm -f "$out"
  local t0 t1; t0=$(now); timeout 30 "$@" > /dev/null 2>&1; t1=$(now)
  if cmp -s "$out" "$WORK/root/$name"; then python3 -c "import math; print(math.ceil($sz/$bs + 1)/($t1-$t0))"; else echo nan; fi
}

m_transfers() { # benches/tftp_compare.sh, all pinned to CPU 0 (lock-step transfers are
  # wake-up bound: unpinned they swing 2x with CPU placement, see performance.md §7)
  local side=$1 bin=$2
  serve 0 "$bin" --only stopwait,tftp --listen stopwait=$LO:0 --listen tftp=$LO:0 --root "$WORK/root" || return
  local s f
  s=$(addr stopwait udp); f=$(addr tftp udp)
  rm -f "$WORK/out/sw"
  taskset -c 0 timeout 30 "$bin" stopwait get "$s" f3M -o "$WORK/out/sw" --force --json > "$WORK/sw.json" 2>/dev/null
  if cmp -s "$WORK/out/sw" "$WORK/root/f3M"; then
    emit "$side" stopwait_get_blocks_s "$(field "$WORK/sw.json" 'd["stopwait"]["blocks_per_second"]')"
  else emit "$side" stopwait_get_blocks_s nan; fi
  emit "$side" tftp_curl_1468_pinned_blocks_s "$(tftp_timed 1468 f64M "$WORK/out/c" taskset -c 0 curl -s --tftp-blksize 1468 -o "$WORK/out/c" "tftp://$f/f64M")"
  emit "$side" tftp_atftp_w16_blocks_s "$(tftp_timed 1468 f256M "$WORK/out/a" taskset -c 0 atftp --option 'blksize 1468' --option 'windowsize 16' -g -r f256M -l "$WORK/out/a" $LO "${f##*:}")"
  emit "$side" tftp_client_w16_blocks_s "$(tftp_timed 1468 f256M "$WORK/out/m" taskset -c 0 "$bin" -q tftp get "$f" f256M -o "$WORK/out/m" -f --blksize 1468 --windowsize 16)"
  rm -f "$WORK"/out/*
  stop "$SRV"
}

m_proxy() { # benches/proxy_compare.sh §1: rr udp-client 16 in flight through the proxy;
  # client, proxy and server all on CPU 0 (unpinned, placement swings it ~2x)
  local side=$1 bin=$2
  local up; up=$(free_port)
  taskset -c 0 timeout 60 "$RR" udp-server "$up" & local rs=$!; PIDS+=("$rs")
  wait_udp "$up" || { emit "$side" proxy_relay_16_req_s nan; stop "$rs"; return; }
  taskset -c 0 timeout 60 "$bin" -q proxy --listen $LO:0 --upstream $LO:"$up" --seed 1 > "$WORK/proxy.out" 2>&1 & local px=$!; PIDS+=("$px")
  for _ in $(seq 100); do grep -q '^ready' "$WORK/proxy.out" && break; sleep 0.05; done
  local pa; pa=$(awk '$1 == "listening" && $2 == "proxy" {print $4}' "$WORK/proxy.out")
  local line; line=$(taskset -c 0 timeout $((SECS + 10)) "$RR" udp-client "${pa##*:}" 16 "$SECS" | grep '^RESULT')
  emit "$side" proxy_relay_16_req_s "$(rr_rate <<< "$line")"
  kill -INT "$px" 2>/dev/null; wait "$px" 2>/dev/null; forget "$px"
  stop "$rs"
}

m_memory() { # benches/scale.py's sequence with 5 000 connections, RSS only
  local side=$1 bin=$2
  timeout 90 python3 - "$HERE" "$bin" 5000 > "$WORK/mem.out" 2> "$WORK/mem.err" <<'EOF'
import resource, signal, sys, time
# A `timeout` kill must still run the `finally` that stops the server.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
sys.path.insert(0, sys.argv[1])
import scale
binary, n = sys.argv[2], int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < n + 200:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 200), hard))
proc, tcp, udp = scale.start_server(binary)
try:
    pid = proc.pid
    scale.latency(tcp, udp, 50, scale.Ids(5000))  # warm-up, as scale.py does
    time.sleep(0.1)
    rss0 = scale.rss_kib(pid)
    socks, _ = scale.open_idle(tcp, pid, n, 100)
    time.sleep(0.2)
    rss1 = scale.rss_kib(pid)
    counts = scale.hello_each(socks, 100)
    time.sleep(0.2)
    rss2 = scale.rss_kib(pid)
    print(f"idle {(rss1 - rss0) * 1024 / n:.1f}")
    print(f"hello {(rss2 - rss0) * 1024 / max(counts['OK'], 1):.1f}")
    for s in socks:
        s.setsockopt(scale.socket.SOL_SOCKET, scale.socket.SO_LINGER, scale.RST)
        s.close()
finally:
    scale.stop([proc])
EOF
  emit "$side" rss_per_idle_conn_B "$(awk '/^idle/{print $2}' "$WORK/mem.out")"
  emit "$side" rss_per_conn_after_hello_B "$(awk '/^hello/{print $2}' "$WORK/mem.out")"
}

m_bench() { # docs/bench.md: bench hello -P 1000, server on CPU 0, bench on CPU 1
  local side=$1 bin=$2
  serve 0 "$bin" --only hello --listen hello=$LO:0 --id-ttl 10ms || return
  local u; u=$(addr hello udp)
  taskset -c 1 timeout $((SECS + 15)) "$bin" bench hello -P 1000 -t "${SECS}s" --timeout 50ms --interval 0s \
    --server "$u" --json > "$WORK/bench.json" 2> "$WORK/bench.err"
  emit "$side" bench_hello_P1000_req_s "$(field "$WORK/bench.json" 'd["summary"]["requests_per_second"]')"
  stop "$SRV"
}

# --- load-independent cost: user-space instructions per operation -------------
# Under load every rate above moves by tens of percent (run it A/A to see);
# instructions retired do not. cachegrind (`--cache-sim=no`: an instruction
# count, no cache model) counts the user-space instructions of one process;
# the other end of the exchange runs natively. A server's count has its
# idle start+stop (same flags, no traffic) subtracted; a client's includes
# its start-up (under 3 % of these runs). Batching still depends on timing
# (how many datagrams a recvmmsg finds), so expect ~1 % of spread, not 0.
CG=(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null)
# cg_serve BIN ARGS...: `BIN serve -q ARGS` under cachegrind; sets SRV.
cg_serve() {
  local bin=$1; shift
  timeout 120 "${CG[@]}" "$bin" serve -q "$@" > "$WORK/serve.out" 2> "$WORK/cg.err" &
  SRV=$!; PIDS+=("$SRV")
  for _ in $(seq 200); do grep -q '^ready' "$WORK/serve.out" && return 0; sleep 0.05; done
  echo "cachegrind server did not start: $(tail -3 "$WORK/cg.err")" >&2; stop "$SRV"; return 1
}
# cg_count: the instruction count cachegrind printed into $WORK/cg.err.
cg_count() { sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$WORK/cg.err" | tr -d , | tail -1; }
# cg_stop: stops the cachegrind server (in this shell: `wait` needs its
# parent), sets IR to its instruction count.
cg_stop() { stop "$SRV"; IR=$(cg_count); }
# cg_idle BIN ARGS...: sets BASE to the instructions of an idle server's start and stop.
cg_idle() { BASE=nan; cg_serve "$@" || return; sleep 0.3; cg_stop; BASE=$IR; }
# per A B N: (A - B) / N, or nan.
per() { python3 -c 'import sys
try: print((float(sys.argv[1]) - float(sys.argv[2] or 0)) / float(sys.argv[3]))
except Exception: print("nan")' "${1:-nan}" "${2:-0}" "${3:-nan}"; }

m_cost() {
  local side=$1 bin=$2 n
  local hello=(--only hello --listen hello=$LO:0 --id-ttl 10ms)
  cg_idle "$bin" "${hello[@]}"
  # hello UDP, 16 in flight (the bench client, native)
  n=50000
  if cg_serve "$bin" "${hello[@]}"; then
    timeout 60 "$bin" bench hello -n $n -P 16 --server "$(addr hello udp)" --interval 0s --json > "$WORK/cb.json" 2>/dev/null
    cg_stop
    emit "$side" ir_hello_udp_server "$(per "$IR" "$BASE" "$(field "$WORK/cb.json" 'd["summary"]["requests"]')")"
  fi
  # hello TCP connect+HELLO+close
  n=5000
  if cg_serve "$bin" "${hello[@]}"; then
    timeout 60 "$bin" bench hello --tcp --mode connect -n $n -P 16 --server "$(addr hello tcp)" --interval 0s --json > "$WORK/cb.json" 2>/dev/null
    cg_stop
    emit "$side" ir_hello_tcp_server "$(per "$IR" "$BASE" "$(field "$WORK/cb.json" 'd["summary"]["requests"]')")"
  fi
  # syscalls per hello UDP request, native server (perf's syscall tracepoint)
  if serve "" "$bin" "${hello[@]}"; then
    timeout 30 perf stat -x, -e raw_syscalls:sys_enter -p "$SRV_PID" -o "$WORK/perf.txt" & local pp=$!
    sleep 0.3
    timeout 30 "$bin" bench hello -n 50000 -P 16 --server "$(addr hello udp)" --interval 0s --json > "$WORK/cb.json" 2>/dev/null
    kill -INT "$pp" 2>/dev/null; wait "$pp" 2>/dev/null
    emit "$side" syscalls_hello_udp_server "$(per "$(awk -F, '/sys_enter/{print $1}' "$WORK/perf.txt")" 0 "$(field "$WORK/cb.json" 'd["summary"]["requests"]')")"
    stop "$SRV"
  fi
  # stopwait and TFTP (windowsize 16) GETs: server per block, then client per block
  local files=(--only stopwait,tftp --listen stopwait=$LO:0 --listen tftp=$LO:0 --root "$WORK/root")
  local swb=$(( 1000000 / 100 + 1 )) tfb=$(( 16777216 / 1468 + 1 ))
  cg_idle "$bin" "${files[@]}"
  if cg_serve "$bin" "${files[@]}"; then
    timeout 60 "$bin" -q stopwait get "$(addr stopwait udp)" f1M -o "$WORK/out/sw" -f > /dev/null 2>&1
    cg_stop
    cmp -s "$WORK/out/sw" "$WORK/root/f1M" && emit "$side" ir_stopwait_server "$(per "$IR" "$BASE" $swb)"
  fi
  if cg_serve "$bin" "${files[@]}"; then
    timeout 60 "$bin" -q tftp get "$(addr tftp udp)" f16M -o "$WORK/out/tf" -f --blksize 1468 --windowsize 16 > /dev/null 2>&1
    cg_stop
    cmp -s "$WORK/out/tf" "$WORK/root/f16M" && emit "$side" ir_tftp_server "$(per "$IR" "$BASE" $tfb)"
  fi
  rm -f "$WORK"/out/*
  if serve "" "$bin" "${files[@]}"; then
    timeout 60 "${CG[@]}" "$bin" -q stopwait get "$(addr stopwait udp)" f1M -o "$WORK/out/sw" -f > /dev/null 2> "$WORK/cg.err"
    IR=$(cg_count)
    cmp -s "$WORK/out/sw" "$WORK/root/f1M" && emit "$side" ir_stopwait_client "$(per "$IR" 0 $swb)"
    timeout 60 "${CG[@]}" "$bin" -q tftp get "$(addr tftp udp)" f16M -o "$WORK/out/tf" -f --blksize 1468 --windowsize 16 > /dev/null 2> "$WORK/cg.err"
    IR=$(cg_count)
    cmp -s "$WORK/out/tf" "$WORK/root/f16M" && emit "$side" ir_tftp_client "$(per "$IR" 0 $tfb)"
    stop "$SRV"
  fi
  rm -f "$WORK"/out/*
  # the proxy relaying rr udp-client 16 in flight for 2 s
  local up; up=$(free_port)
  timeout 60 "$RR" udp-server "$up" & local rs=$!; PIDS+=("$rs")
  if wait_udp "$up"; then
    timeout 60 "${CG[@]}" "$bin" -q proxy --listen $LO:0 --upstream $LO:"$up" --seed 1 > "$WORK/proxy.out" 2> "$WORK/cg.err" & local px=$!; PIDS+=("$px")
    for _ in $(seq 200); do grep -q '^ready' "$WORK/proxy.out" && break; sleep 0.05; done
    local pa; pa=$(awk '$1 == "listening" && $2 == "proxy" {print $4}' "$WORK/proxy.out")
    local line; line=$(timeout 20 "$RR" udp-client "${pa##*:}" 16 2 | grep '^RESULT')
    kill -INT "$px" 2>/dev/null; wait "$px" 2>/dev/null; forget "$px"
    IR=$(cg_count)
    emit "$side" ir_proxy_per_request "$(per "$IR" 0 "$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' <<< "$line")")"
  fi
  stop "$rs"
}

# --- the run -------------------------------------------------------------------
echo "seam_ab: before=$A_BIN after=$B_BIN rounds=$ROUNDS secs=$SECS"
echo "machine: $(nproc) cpus, $(uname -r), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
START=$SECONDS
ROUND=0
for ROUND in $(seq "$ROUNDS"); do
  if [ $((SECONDS - START)) -gt "$BUDGET" ]; then
    echo "budget of ${BUDGET}s spent: stopping after $((ROUND - 1)) rounds"; break
  fi
  echo "round $ROUND ($((SECONDS - START)) s, load $(cut -d' ' -f1 /proc/loadavg))"
  printf 'load\t%s\tloadavg\t%s\n' "$ROUND" "$(cut -d' ' -f1 /proc/loadavg)" >> "$SAMPLES"
  for m in $ONLY; do
    [ "$m" = cost ] && [ "$ROUND" -gt "$COST_ROUNDS" ] && continue
    if [ $((ROUND % 2)) = 1 ]; then order="before after"; else order="after before"; fi
    for side in $order; do
      bin=$A_BIN; [ $side = after ] && bin=$B_BIN
      "m_$m" "$side" "$bin"
      sleep 0.3
    done
  done
done
echo "elapsed $((SECONDS - START)) s; TIME_WAIT now $(ss -tanH state time-wait | wc -l)"

python3 - "$SAMPLES" "$A_BIN" "$B_BIN" <<'EOF' | tee "$WORK/report.md"
import collections, statistics, sys
path, a_bin, b_bin = sys.argv[1:4]
# name -> (label, higher is better)
FIG = {
    "hello_udp_pinned": ("hello UDP req/s, rr 16 in flight, pinned CPU 0", True),
    "hello_udp_cpu_per_op": ("hello UDP server CPU µs/request, pinned", False),
    "hello_tcp_pinned": ("hello TCP connect+HELLO+close /s, rr 16 slots, pinned", True),
    "lab_pace_p50_us": ("lab stream 10 000×64 B @100 µs: schedule error p50 µs", False),
    "lab_pace_p99_us": ("lab stream 10 000×64 B @100 µs: schedule error p99 µs", False),
    "lab_burst_64B_pps": ("lab interval-0 UDP stream 64 B: received pkt/s", True),
    "lab_file_tcp_gbps": ("lab 123 456 789 B file over TCP, Gbit/s (median of 3)", True),
    "tcpfile_get_256M_gbps": ("tcpfile GET 256 MiB → /dev/null, Gbit/s (3 GETs)", True),
    "stopwait_get_blocks_s": ("stopwait GET 3 MB, mioperf client, pinned CPU 0, blocks/s", True),
    "tftp_atftp_w16_blocks_s": ("TFTP 256 MiB, atftp blksize 1468 windowsize 16, pinned CPU 0, blocks/s", True),
    "tftp_client_w16_blocks_s": ("TFTP 256 MiB, mioperf client blksize 1468 windowsize 16, pinned CPU 0, blocks/s", True),
    "tftp_curl_1468_pinned_blocks_s": ("TFTP 64 MiB, curl blksize 1468, pinned CPU 0, blocks/s", True),
    "proxy_relay_16_req_s": ("proxy relay, rr udp 16 in flight, all on CPU 0, req/s", True),
    "rss_per_idle_conn_B": ("RSS per idle TCP connection (5 000 open), bytes", False),
    "rss_per_conn_after_hello_B": ("RSS per connection after one HELLO each, bytes", False),
    "bench_hello_P1000_req_s": ("`mioperf bench hello -P 1000`, server CPU 0, bench CPU 1, req/s", True),
    "ir_hello_udp_server": ("cost: hello server instructions per UDP request", False),
    "ir_hello_tcp_server": ("cost: hello server instructions per TCP connect+HELLO+close", False),
    "syscalls_hello_udp_server": ("cost: hello server system calls per UDP request (native; timing-dependent, recvmmsg batch sizes)", False),
    "ir_stopwait_server": ("cost: stopwait server instructions per block (1 MB GET)", False),
    "ir_tftp_server": ("cost: TFTP server instructions per block (16 MiB, blksize 1468, w16)", False),
    "ir_stopwait_client": ("cost: stopwait client instructions per block (1 MB GET)", False),
    "ir_tftp_client": ("cost: TFTP client instructions per block (16 MiB, blksize 1468, w16)", False),
    "ir_proxy_per_request": ("cost: proxy instructions per relayed request (rr 16 in flight)", False),
}
data = collections.defaultdict(lambda: collections.defaultdict(dict))
loads = []
for line in open(path):
    side, rnd, name, value = line.rstrip("\n").split("\t")
    try:
        v = float(value)
    except ValueError:
        continue
    if side == "load":
        loads.append(v)
    elif v == v:  # not nan
        data[name][side][int(rnd)] = v
def num(x):
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
print(f"before = `{a_bin}`, after = `{b_bin}`\n")
print("| figure | before (median, min–max) | after (median, min–max) | after/before (per-round pairs) | verdict (3 %) |")
print("|---|---|---|---|---|")
spreads = {"before": [], "after": []}
pair_dev = []
for name, (label, up) in FIG.items():
    d = data.get(name)
    if not d:
        continue  # not measured in this run (ONLY)
    if not d["before"] or not d["after"]:
        print(f"| {label} | — | — | — | no samples on one side |")
        continue
    cells = []
    for side in ("before", "after"):
        v = list(d[side].values())
        m = statistics.median(v)
        sp = (max(v) - min(v)) / m if m else 0.0
        spreads[side].append((sp, label))
        cells.append(f"{num(m)} ({num(min(v))}–{num(max(v))}), n={len(v)}")
    mb, ma = statistics.median(d["before"].values()), statistics.median(d["after"].values())
    ratio = ma / mb if mb else float("nan")
    pairs = [d["after"][r] / d["before"][r] for r in d["before"] if r in d["after"] and d["before"][r]]
    pr = f" ({min(pairs):.2f}–{max(pairs):.2f})" if pairs else ""
    if pairs:
        pair_dev.append((max(abs(p - 1) for p in pairs), label))
    worse = (ratio < 0.97) if up else (ratio > 1.03)
    better = (ratio > 1.03) if up else (ratio < 0.97)
    verdict = "WORSE by >3 %" if worse else ("better by >3 %" if better else "within 3 %")
    print(f"| {label} {'↑' if up else '↓'} | {cells[0]} | {cells[1]} | **{ratio:.3f}**{pr} | {verdict} |")
print("\n↑ higher is better, ↓ lower is better. Ratio = median(after) / median(before); "
      "the range is of the per-round ratios (both sides measured back to back in each round). "
      "`cost:` rows are counts (cachegrind instructions, perf syscall tracepoint), not times: "
      "the instruction counts barely move with the machine's load, so they are the rows a 3 % "
      "criterion can be judged on when the timed rows' A/A spread is wider than 3 % "
      "(the syscall count does move: batching depends on timing).\n")
print("Noise (spread = (max − min) / median over rounds, per side):\n")
for side in ("before", "after"):
    s = sorted(spreads[side], reverse=True)
    if s:
        print(f"- {side}: max spread {s[0][0] * 100:.1f} % ({s[0][1]}); median spread "
              f"{statistics.median(x for x, _ in s) * 100:.1f} %")
if loads:
    print(f"- load average (1 min) at the start of each round: {', '.join(f'{x:.1f}' for x in loads)} on {2} vCPUs")
if pair_dev:
    w = max(pair_dev)
    print(f"- largest single-round deviation of after/before from 1: {w[0] * 100:.1f} % ({w[1]})")
EOF
