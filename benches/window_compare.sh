#!/usr/bin/env bash
# benches/window_compare.sh — issue 15's clean-loopback figure: a 1 GiB
# `window get` (the userspace TCP engine carried in UDP) beside the same GET
# over the kernel's TCP (`mioperf get`, tcpfile) and iperf3 (one stream), in
# ONE run, loopback only, every child bounded in time. The three alternate
# inside each repetition so drift hits all alike; the ratio is per run.
#
#   benches/window_compare.sh            # RUNS=3, about 2 minutes
#   RUNS=5 CC=cubic benches/window_compare.sh
#
# Env: RUNS (3), CC (newreno|cubic: the server's and client's engine),
#      PIN (1: server and clients on CPU 0 via taskset, as the other
#      compare scripts; 0: the scheduler's choice), WORK (/dev/shm/...).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${WORK:-/dev/shm/mioperf-window-bench}
RUNS=${RUNS:-3}
CC=${CC:-newreno}
PIN=${PIN:-1}
mkdir -p "$WORK/root"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; rm -rf "$WORK"; }
trap cleanup EXIT
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
[ -x /usr/bin/iperf3 ] || { timeout 300 apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends iperf3 >/dev/null; }
# iperf3 is a side figure here (the goal is window/kernel): identified, and
# left out of the line when it is not what it claims.
find_ref IPERF3 iperf3 /usr/bin/iperf3 iperf3
(cd "$ROOT" && cargo build --release -q) || exit 1
BIN=$ROOT/target/release/mioperf
TS=(); [ "$PIN" = 1 ] && TS=(taskset -c 0)
head -c 1G /dev/urandom > "$WORK/root/1g.bin"
# nums X...: the positive finite numbers among X (a skipped or failed figure is a word).
nums() { for x in "$@"; do is_num "$x" && echo "$x"; done; }
med() { nums "$@" | python3 -c 'import statistics,sys; v=[float(x) for x in sys.stdin.read().split()]; print(f"{statistics.median(v):.3f}" if v else "-")'; }
span() { nums "$@" | python3 -c 'import sys; v=[float(x) for x in sys.stdin.read().split()]; print(f"{min(v):.2f}-{max(v):.2f}" if v else "-")'; }
rate_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["bits_per_second"]/1e9)'; }

"${TS[@]}" "$BIN" serve -q --root "$WORK/root" --tcp-cc "$CC" --only window,tcpfile \
  --listen window=127.0.0.1:0 --listen tcpfile=127.0.0.1:0 > "$WORK/serve.out" 2>"$WORK/serve.err" &
PIDS+=("$!")
for _ in $(seq 50); do grep -q '^ready' "$WORK/serve.out" && break; sleep 0.1; done
W=$(awk '/^listening window udp/{print $4}' "$WORK/serve.out")
T=$(awk '/^listening tcpfile tcp/{print $4}' "$WORK/serve.out")
if [ -n "$IPERF3" ]; then "${TS[@]}" "$IPERF3" -s -B 127.0.0.1 -p 5299 > "$WORK/iperf3.log" 2>&1 & PIDS+=("$!"); sleep 0.5; fi

echo "machine: $(nproc) cpus, kernel $(uname -r), $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg); runs=$RUNS cc=$CC pin=$PIN"
w=(); k=(); i=(); rw=(); ri=()
for r in $(seq "$RUNS"); do
  k+=("$(timeout 120 "${TS[@]}" "$BIN" get "$T" 1g.bin -o /dev/null --json 2>/dev/null | rate_of)")
  out=$(timeout 120 "${TS[@]}" "$BIN" window get "$W" 1g.bin -o /dev/null --json --cc "$CC" 2>/dev/null)
  w+=("$(echo "$out" | rate_of)")
  iv=skipped
  [ -n "$IPERF3" ] && iv=$(timeout 60 "${TS[@]}" "$IPERF3" -c 127.0.0.1 -p 5299 -n 1G -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)')
  i+=("$iv")
  rw+=("$(ratio "${w[-1]}" "${k[-1]}")"); ri+=("$(ratio "${w[-1]}" "$iv")")
  echo "run $r: window ${w[-1]} Gbit/s, tcpfile/kernel ${k[-1]}, iperf3 $iv; window out-of-order/dup seen by the client: $(echo "$out" | python3 -c 'import json,sys; t=json.load(sys.stdin)["tcp"]; print(t["out_of_order"], t["duplicate_segments"])')"
done
echo "FIGURE | 1 GiB window get, loopback | window=$(med "${w[@]}") Gbit/s | kernel tcpfile=$(med "${k[@]}") | iperf3=$(med "${i[@]}") | window/kernel=$(med "${rw[@]}") ($(span "${rw[@]}")) (goal >= 0.5) | window/iperf3=$(med "${ri[@]}") ($(span "${ri[@]}"))"
