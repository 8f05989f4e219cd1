#!/usr/bin/env bash
# benches/compare.sh — `mioperf bench` side by side with the reference tools,
# in one run on one machine, and every goal of docs/performance.md as a ratio
# with PASS / FALLS SHORT. Loopback only; every run bounded by `timeout`;
# only the PIDs this script started are stopped.
#
#   benches/compare.sh                       # everything (about 20 minutes)
#   SECTIONS="bench" benches/compare.sh      # the load generator only (~2 min)
#
# Sections:
#   bench    `mioperf bench` against the references, same run:
#            * hello UDP request rate, 16 in flight, against one `mioperf serve`:
#              `mioperf bench hello -P 16` vs the C epoll client `rr udp-client 16`
#            * the overhead question: `bench hello -P 1000` with the server on
#              CPU 0 and the bench on CPU 1 (the bench's CPU share, the
#              server's), then `rr udp-client 1000` on CPU 1 against the same
#              server: the rate the server reaches when the client is not
#              the limit
#            * TCP throughput: `bench lab --mode file --tcp` (123456789-byte
#              files) and `bench tcpfile` (1 GiB GETs) vs `iperf3` one stream
#            * paced stream: `bench lab --mode stream` 10000 x 64 B at 100 us
#              vs `pace.c` (timerfd sender, kernel-timestamp receiver)
#            * TFTP: `bench tftp` 100 MiB GETs vs curl -> tftpd-hpa
#   hello    benches/hello_vs_rr.sh   (the server against the C rr server)
#   lab      benches/lab_compare.sh   (pacing, bursts, files vs pace.c, iperf3)
#   tcpfile  benches/tcpfile_compare.sh (GET/PUT vs iperf3 and nc)
#   tftp     benches/tftp_compare.sh  (vs tftpd-hpa, atftpd, the rr floor)
#   core     benches/run.sh SECTIONS="timers deadline scale" (deadline heap,
#            wake-up lateness, idle connections: performance.md §1, §2, §4)
#
# Env: SECTIONS, SECS (5, per bench figure), RUNS (1, passed to the scripts),
#      WORK (/tmp/mioperf-compare), SHARED (../shared/bench).
# Tools missing on a fresh Debian are installed with apt-get when run as root
# (iperf3 tftpd-hpa atftp sockperf curl); a package that does not exist is
# skipped, and so are the rows that need it.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
# A worktree sits one level deeper than a clone.
[ -d "$SHARED" ] || SHARED=$ROOT/../../shared/bench
WORK=${WORK:-/tmp/mioperf-compare}
SECS=${SECS:-5}
RUNS=${RUNS:-1}
SECTIONS=${SECTIONS:-"bench hello lab tcpfile tftp core"}
mkdir -p "$WORK"
LOG=$WORK/compare.log
exec > >(tee "$LOG") 2>&1
on() { [[ " $SECTIONS " == *" $1 "* ]]; }
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -------------------------------------------------------------------
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
have() { command -v "$1" >/dev/null; }
need=()
# By each package's own path: atftpd's package has an /usr/sbin/in.tftpd too.
for pair in /usr/bin/iperf3:iperf3 /usr/sbin/in.tftpd:tftpd-hpa /usr/bin/atftp:atftp /usr/bin/sockperf:sockperf /usr/bin/curl:curl; do
  [ -x "${pair%%:*}" ] || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && have apt-get; then
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  timeout 300 apt-get update -q >/dev/null 2>&1
  for pkg in "${need[@]}"; do
    # One at a time: a package missing from this release only skips its rows.
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends "$pkg" >/dev/null 2>&1 \
      || echo "note: package $pkg not installable here; its rows are skipped"
  done
fi
gcc -O2 -Wall -o "$WORK/rr" "$SHARED/rr.c" || { echo "cannot build rr.c"; exit 1; }
gcc -O2 -Wall -o "$WORK/pace" "$SHARED/pace.c" || { echo "cannot build pace.c"; exit 1; }
(cd "$ROOT" && timeout 900 cargo build --release --quiet) || { echo "cargo build failed"; exit 1; }
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/mioperf
echo "machine: $(nproc) cpus, kernel $(uname -r), $(date -u +%FT%TZ), commit $(cd "$ROOT" && git rev-parse --short HEAD), load $(cut -d' ' -f1-3 /proc/loadavg)"
find_ref IPERF3 iperf3 /usr/bin/iperf3 iperf3
find_ref HPA tftpd-hpa "${TFTPD_HPA:-/usr/sbin/in.tftpd}"
find_ref CURL curl-tftp /usr/bin/curl curl
echo "references: iperf3=${IPERF3:-none ($IPERF3_WHY)}; tftpd-hpa=${HPA:-none ($HPA_WHY)}; curl=${CURL:-none ($CURL_WHY)}"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
TCK=$(getconf CLK_TCK)
# verdict VALUE OP GOAL: for absolute goals (the paced stream); ratios go
# through lib.sh's judge, which checks the reference first.
verdict() {
  [[ $1 =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] || { echo "SUSPECT (figure '$1'): no verdict"; return; }
  python3 -c 'import sys; v,op,g=float(sys.argv[1]),sys.argv[2],float(sys.argv[3]); print("PASS" if (v>=g if op==">=" else v<=g) else "FALLS SHORT")' "$1" "$2" "$3"; }
# gbit BITS_PER_S: Gbit/s, or "failed".
gbit() { if is_num "${1:-}"; then awk -v b="$1" 'BEGIN { printf "%.3f\n", b / 1e9 }'; else echo failed; fi; }
# jq-less JSON field: jfield FILE 'summary.bits_per_second'
jfield() { python3 -c '
import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k] if v is not None else None
print("nan" if v is None else v)' "$1" "$2"; }
start_serve() { # PROTO EXTRA... -> SERVE pid, SERVE_OUT file
  SERVE_OUT=$WORK/serve-$1.out
  "$BIN" serve -q --only "$1" --listen "$1=127.0.0.1:0" "${@:2}" > "$SERVE_OUT" 2>&1 &
  SERVE=$!; PIDS+=("$SERVE")
  for _ in $(seq 100); do grep -q '^ready' "$SERVE_OUT" && return 0; sleep 0.1; done
  echo "serve $1 did not start"; cat "$SERVE_OUT"; return 1
}
port_of() { awk -v p="$1" -v t="$2" '$1=="listening" && $2==p && $3==t {split($4,a,":"); print a[2]}' "$SERVE_OUT"; }
goal() { echo "GOAL $*"; }

if on bench; then
  echo "=== bench: the load generator beside the references ($(date -u +%H:%M:%S))"
  # 1. hello UDP, 16 in flight, same server, bench vs the C client.
  if start_serve hello --id-ttl 10ms; then
    P=$(port_of hello udp)
    timeout $((SECS + 20)) "$BIN" bench hello -P 16 -t "${SECS}s" --interval 0s --server "127.0.0.1:$P" --json > "$WORK/b-hello.json"
    B=$(jfield "$WORK/b-hello.json" summary.requests_per_second)
    R=$(timeout $((SECS + 20)) "$WORK/rr" udp-client "$P" 16 "$SECS" ids | sed -n 's/.* rate=\([0-9.]*\)\/s.*/\1/p')
    echo "FIGURE bench | hello UDP, 16 in flight, same mioperf serve | bench=${B} req/s | rr udp-client=${R:-failed} req/s | ratio=$(ratio "$B" "${R:-}")"
    judge "bench | hello UDP load generator vs the C epoll client" "$B" "${R:-}" rr_udp_16_req 0.9
    kill "$SERVE"; wait "$SERVE" 2>/dev/null
  fi
  # 2. The overhead question: 1000 sessions on one reactor.
  if [ "$(nproc)" -ge 2 ]; then
    SERVE_OUT=$WORK/serve-pinned.out
    taskset -c 0 "$BIN" serve -q --only hello --listen hello=127.0.0.1:0 --id-ttl 10ms > "$SERVE_OUT" 2>&1 &
    SERVE=$!; PIDS+=("$SERVE")
    for _ in $(seq 100); do grep -q '^ready' "$SERVE_OUT" && break; sleep 0.1; done
    P=$(port_of hello udp)
    s0=$(cpu_ticks "$SERVE")
    /usr/bin/time -f "%U %S %e" -o "$WORK/b1000.time" taskset -c 1 timeout $((SECS + 20)) "$BIN" bench hello -P 1000 -t "${SECS}s" --timeout 50ms --interval 0s --server "127.0.0.1:$P" --json > "$WORK/b1000.json"
    s1=$(cpu_ticks "$SERVE")
    read -r bu bs be < "$WORK/b1000.time"
    R1=$(jfield "$WORK/b1000.json" summary.requests_per_second)
    BCPU=$(python3 -c "print(f'{($bu+$bs)/$be*100:.0f}')")
    SCPU=$(python3 -c "print(f'{($s1-$s0)/$TCK/$SECS*100:.0f}')")
    echo "FIGURE bench | hello UDP -P 1000, server on CPU 0, bench on CPU 1 | rate=${R1} req/s | bench CPU=${BCPU} % | server CPU=${SCPU} % | timeouts=$(jfield "$WORK/b1000.json" summary.timeouts)"
    s0=$(cpu_ticks "$SERVE")
    /usr/bin/time -f "%U %S %e" -o "$WORK/rr1000.time" taskset -c 1 timeout $((SECS + 20)) "$WORK/rr" udp-client "$P" 1000 "$SECS" ids > "$WORK/rr1000.out"
    s1=$(cpu_ticks "$SERVE")
    read -r ru rs re < "$WORK/rr1000.time"
    R2=$(sed -n 's/.* rate=\([0-9.]*\)\/s.*/\1/p' "$WORK/rr1000.out")
    RCPU=$(python3 -c "print(f'{($ru+$rs)/$re*100:.0f}')")
    SCPU2=$(python3 -c "print(f'{($s1-$s0)/$TCK/$SECS*100:.0f}')")
    echo "FIGURE bench | hello UDP, rr udp-client 1000 on CPU 1, same server | rate=${R2:-failed} req/s | client CPU=${RCPU} % | server CPU=${SCPU2} %"
    echo "FIGURE bench | -P 1000 vs rr 1000: ratio=$(ratio "$R1" "${R2:-}") (bench CPU ${BCPU} %, server CPU ${SCPU} % under the bench, ${SCPU2} % under rr)"
    judge "bench | one reactor with 1000 sessions drives the server as hard as the C client" "$R1" "${R2:-}" rr_udp_16_req 0.9
    kill "$SERVE"; wait "$SERVE" 2>/dev/null
  fi
  # 3. TCP throughput against iperf3, one stream.
  if [ -n "$IPERF3" ]; then
    IP=5299
    "$IPERF3" -s -1 -p $IP > /dev/null 2>&1 & PIDS+=($!); sleep 0.3
    I=$(timeout $((SECS + 20)) "$IPERF3" -c 127.0.0.1 -p $IP -t "$SECS" -J 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])' 2>/dev/null || echo nan)
    timeout 120 "$BIN" bench lab --mode file --tcp -l 123456789 -n 10 --interval 0s --json > "$WORK/b-labfile.json"
    L=$(jfield "$WORK/b-labfile.json" summary.bits_per_second)
    echo "FIGURE bench | TCP, lab file 123456789 B x 10, one session | bench=$(gbit "$L") Gbit/s | iperf3=$(gbit "$I") Gbit/s | ratio=$(ratio "$L" "$I")"
    judge "bench | lab file over TCP vs iperf3 (performance.md §5)" "$(gbit "$L")" "$(gbit "$I")" iperf3_tcp_gbit 0.8
    timeout 300 "$BIN" bench tcpfile -l 1Gi -n 3 --interval 0s --json > "$WORK/b-get.json"
    G=$(jfield "$WORK/b-get.json" summary.bits_per_second)
    echo "FIGURE bench | TCP, tcpfile GET 1 GiB x 3 (in-process server, sendfile) | bench=$(gbit "$G") Gbit/s | iperf3=$(gbit "$I") Gbit/s | ratio=$(ratio "$G" "$I")"
    judge "bench | tcpfile GET vs iperf3 (performance.md §6)" "$(gbit "$G")" "$(gbit "$I")" iperf3_tcp_gbit 0.9
  else
    skip "bench | lab file over TCP vs iperf3 (performance.md §5)" "$IPERF3_WHY"
    skip "bench | tcpfile GET vs iperf3 (performance.md §6)" "$IPERF3_WHY"
  fi
  # 4. Paced stream, 10000 x 64 B at 100 us (64 B * 8 / 100 us = 5.12 Mbit/s).
  timeout 60 "$BIN" bench lab --mode stream -l 64 -b 5120000 -n 10000 --interval 0s --json > "$WORK/b-stream.json"
  read -r S50 S99 SR < <(python3 -c '
import json,sys; s=json.load(open(sys.argv[1]))["summary"]; e=s["schedule_error"]["abs_ns"]
print(round(e["p50"]/1e3, 2), round(e["p99"]/1e3, 1), round(abs(s["bits_per_second"]/5.12e6-1)*100, 4))' "$WORK/b-stream.json")
  timeout 60 "$WORK/pace" recv 7401 10000 100 30 > "$WORK/pr.out" & rp=$!
  sleep 0.2; timeout 60 "$WORK/pace" send timerfd 7401 10000 100 > /dev/null; wait $rp
  read -r T50 T99 < <(sed -n 's/.*err_p50=\([0-9.]*\) err_p99=\([0-9.]*\).*/\1 \2/p' "$WORK/pr.out")
  echo "FIGURE bench | paced UDP stream 10000 x 64 B at 100 us | bench inter-arrival |err| p50=${S50} us p99=${S99} us, rate error ${SR} % | pace.c timerfd |err| p50=${T50:-failed} p99=${T99:-failed} us"
  goal "bench | paced stream p99 (performance.md §5): ${S99} us <= 50: $(verdict "$S99" "<=" 50)"
  goal "bench | paced stream p50: ${S50} us <= 5: $(verdict "$S50" "<=" 5)"
  goal "bench | paced stream rate error: ${SR} % <= 0.1: $(verdict "$SR" "<=" 0.1)"
  # 5. TFTP, 100 MiB GETs at blksize 1468: bench vs curl -> tftpd-hpa.
  if [ -n "$HPA" ] && [ -n "$CURL" ]; then
    mkdir -p "$WORK/tftproot"; head -c $((100 << 20)) /dev/urandom > "$WORK/tftproot/f100M"
    TP=6979
    "$HPA" -L -s "$WORK/tftproot" -a 127.0.0.1:$TP -u root -B 65464 > /dev/null 2>&1 & PIDS+=($!); HP=$!; sleep 0.3
    t0=$(date +%s.%N)
    timeout 120 "$CURL" -s --tftp-blksize 1468 -o "$WORK/tftp.got" "tftp://127.0.0.1:$TP/f100M"
    t1=$(date +%s.%N)
    # Only a complete transfer is a figure.
    H=failed; [ "$(stat -c %s "$WORK/tftp.got" 2>/dev/null)" = $((100 << 20)) ] && H=$(python3 -c "print((100<<20)/1468/($t1-$t0))")
    rm -f "$WORK/tftp.got"
    kill "$HP" 2>/dev/null
    timeout 300 "$BIN" bench tftp -l 100Mi -n 2 --blksize 1468 --interval 0s --json > "$WORK/b-tftp.json"
    T=$(python3 -c '
import json,sys; s=json.load(open(sys.argv[1]))["summary"]; print(s["transfer_bytes"]/1468/max(s["seconds"],1e-9))' "$WORK/b-tftp.json")
    echo "FIGURE bench | TFTP 100 MiB GET, blksize 1468 | bench (in-process server)=$(num_or "$T" failed) blocks/s | curl -> tftpd-hpa=$(num_or "$H" failed) blocks/s | ratio=$(ratio "$T" "$H")"
    judge "bench | TFTP vs tftpd-hpa (performance.md §7)" "$T" "$H" tftpd_hpa_1468_blocks 1.1
    # The setting docs/bench.md gives for lock-step benchmarks: both
    # reactors poll instead of sleeping, a CPU each (reported beside it).
    timeout 300 "$BIN" bench tftp -l 100Mi -n 2 --blksize 1468 --interval 0s --busy-poll 1ms --json > "$WORK/b-tftp-busy.json"
    read -r TB GC SC < <(python3 -c '
import json,sys; s=json.load(open(sys.argv[1]))["summary"]; c=s["cpu"]
print(s["transfer_bytes"]/1468/max(s["seconds"],1e-9), round(c["generator"]["total_percent"]), round(c["server"]["total_percent"]))' "$WORK/b-tftp-busy.json" || echo "failed - -")
    echo "FIGURE bench | TFTP 100 MiB GET, blksize 1468, --busy-poll 1ms | bench=$(num_or "$TB" failed) blocks/s, generator CPU ${GC} %, server CPU ${SC} % | curl -> tftpd-hpa=$(num_or "$H" failed) blocks/s | ratio=$(ratio "$TB" "$H")"
    judge "bench | TFTP vs tftpd-hpa, bench --busy-poll 1ms (performance.md §7)" "$TB" "$H" tftpd_hpa_1468_blocks 1.1
  else
    skip "bench | TFTP vs tftpd-hpa (performance.md §7)" "${HPA_WHY:-$CURL_WHY}"
  fi
fi

# The servers against their references: the existing scripts, bounded.
run_script() { # NAME TIMEOUT ENV... -- SCRIPT
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date -u +%H:%M:%S))"
  timeout "$limit" env MIOPERF="$BIN" "$@" || echo "FIGURE $name | FAILED or timed out (exit $?)"
}
on hello && run_script hello 900 RUNS="$((RUNS < 3 ? 3 : RUNS))" BURST=0 "$HERE/hello_vs_rr.sh"
on lab && run_script lab 900 RUNS="$RUNS" "$HERE/lab_compare.sh"
on tcpfile && run_script tcpfile 900 RUNS="$RUNS" SECTIONS="get put msg" "$HERE/tcpfile_compare.sh"
on tftp && run_script tftp 900 RUNS="$RUNS" "$HERE/tftp_compare.sh"
on core && run_script core 1500 SECTIONS="timers deadline scale" "$HERE/run.sh"

echo "=== summary ($(date -u +%H:%M:%S)); log in $LOG"
grep -aE '^(FIGURE|GOAL)' "$LOG" | grep -v '^FIGURE.*server=' || true
# Ratio verdicts come only from lib.sh's judge (GOAL lines), which refuses a
# wrong or implausible reference; the paced-stream FIGURE of lab_compare.sh
# has absolute goals and gets its verdicts here.
echo "=== goals"
python3 - "$LOG" <<'PY'
import re, sys
seen = set()
for line in open(sys.argv[1], errors="replace"):
    line = line.rstrip("\n")
    if line.startswith("GOAL "):
        if line not in seen:
            seen.add(line)
            print(line)
        continue
    if not line.startswith("FIGURE"):
        continue
    name = line.split("|")[1].strip() if "|" in line else line
    m = re.search(r"pace 100us .*?mioperf p50=([0-9.]+)us p99=([0-9.]+)us .*?rate_err=([0-9.e-]+)%", line)
    if m:
        p50, p99, err = (float(x) for x in m.groups())
        for label, ok in ((f"p99 {p99:.1f} us <= 50", p99 <= 50), (f"p50 {p50:.2f} us <= 5", p50 <= 5),
                          (f"rate error {err:.4f} % <= 0.1", err <= 0.1)):
            out = f"GOAL {name} | {label}: {'PASS' if ok else 'FALLS SHORT'}"
            if out not in seen:
                seen.add(out)
                print(out)
PY
