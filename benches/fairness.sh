#!/usr/bin/env bash
# benches/fairness.sh — does one bulk load starve everyone else? (issue 11,
# defect 7). A bench, not a test: figures, no pass/fail.
#
#   benches/fairness.sh                        # this tree's release build
#   BASE_BIN=/path/to/old/mioperf benches/fairness.sh   # and a baseline beside it
#   RUNS=3 READERS=100 BULK_SECS=5 HELLO_SECS=3 benches/fairness.sh
#
# For each server binary (BASE_BIN if given, then this tree's), RUNS times:
#   1. `serve --only hello,lab` on loopback ports chosen by the kernel;
#   2. READERS bulk TCP readers downloading lab's largest generated file
#      (123 456 789 bytes) again and again for BULK_SECS
#      (`mioperf bench lab --mode file --tcp -P READERS`);
#   3. after 1 s, `mioperf bench hello -P 1` over UDP for HELLO_SECS, the
#      latency-sensitive client: one request outstanding, p50/p99 latency;
#   4. the bulk throughput over the whole BULK_SECS (reported by the bulk
#      bench) and hello's answer rate.
# The load generator is always this tree's binary, so only the server
# differs between the two columns; the two alternate run by run, so both
# see the same (shared, noisy) machine. Prints one FIGURE line per run and
# the medians with their spread. Every load is bounded in time; loopback only.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${WORK:-/tmp/mioperf-fairness}
RUNS=${RUNS:-3}
READERS=${READERS:-100}
BULK_SECS=${BULK_SECS:-5}
HELLO_SECS=${HELLO_SECS:-3}
BASE_BIN=${BASE_BIN:-}
mkdir -p "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

(cd "$ROOT" && cargo build --release -q --bin mioperf) || exit 1
BIN=$ROOT/target/release/mioperf

# json_get FILE EXPR: a value from a bench --json document (python expr on `d`).
json_get() { python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
try:
    print(eval(sys.argv[2]))
except Exception:
    print("nan")' "$1" "$2"; }
med() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:] if x not in ("", "nan")]; print(f"{statistics.median(v):.4g}" if v else "nan")' "$@"; }
spread() { python3 -c 'import sys; v=[float(x) for x in sys.argv[1:] if x not in ("", "nan")]; print(f"{min(v):.4g}..{max(v):.4g}" if v else "nan")' "$@"; }

start_server() { # BIN
  "$1" serve --only hello,lab --listen hello=127.0.0.1:0 --listen lab=127.0.0.1:0 \
    > "$WORK/serve.out" 2> "$WORK/serve.err" &
  SERVER=$!; PIDS+=("$SERVER")
  for _ in $(seq 50); do grep -q '^ready' "$WORK/serve.out" && break; sleep 0.1; done
  HELLO_UDP=$(awk '/hello udp/{print $4}' "$WORK/serve.out")
  LAB_TCP=$(awk '/lab tcp/{print $4}' "$WORK/serve.out")
}
stop_server() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }

echo "machine: $(nproc) cpus, kernel $(uname -r), $(date -u +%FT%TZ)"
echo "runs=$RUNS readers=$READERS bulk=${BULK_SECS}s hello=${HELLO_SECS}s"

# one_run LABEL SERVER_BIN RUN: one measurement, one FIGURE line.
one_run() {
  local label=$1 server=$2 run=$3
  start_server "$server"
  timeout $((BULK_SECS + 30)) "$BIN" bench lab --mode file --tcp -l 123456789 \
    -P "$READERS" -t "${BULK_SECS}s" --interval 0s --server "$LAB_TCP" --json \
    > "$WORK/bulk.json" 2> "$WORK/bulk.err" &
  local bulk=$!; PIDS+=("$bulk")
  sleep 1
  timeout $((HELLO_SECS + 30)) "$BIN" bench hello -P 1 -t "${HELLO_SECS}s" --interval 0s \
    --server "$HELLO_UDP" --json > "$WORK/hello.json" 2> "$WORK/hello.err"
  wait "$bulk"
  stop_server
  local p50 p99 gbit rate bulk_err
  p50=$(json_get "$WORK/hello.json" 'round(d["summary"]["latency_ns"]["p50"] / 1e6, 3)')
  p99=$(json_get "$WORK/hello.json" 'round(d["summary"]["latency_ns"]["p99"] / 1e6, 3)')
  rate=$(json_get "$WORK/hello.json" 'round(d["summary"]["requests_per_second"])')
  gbit=$(json_get "$WORK/bulk.json" 'round(d["summary"]["bits_per_second"] / 1e9, 3)')
  bulk_err=$(json_get "$WORK/bulk.json" 'd["summary"]["errors"] + d["summary"]["timeouts"]')
  echo "FIGURE | $label run $run | hello_p50_ms=$p50 hello_p99_ms=$p99 hello_req_s=$rate bulk_gbit_s=$gbit bulk_errors=$bulk_err load=$(cut -d' ' -f1 /proc/loadavg)"
  eval "P50_$label+=(\"$p50\"); P99_$label+=(\"$p99\"); BULK_$label+=(\"$gbit\"); RATE_$label+=(\"$rate\")"
}

summary() { # LABEL
  local label=$1
  eval 'local p50s=("${P50_'"$label"'[@]}") p99s=("${P99_'"$label"'[@]}") bulks=("${BULK_'"$label"'[@]}") rates=("${RATE_'"$label"'[@]}")'
  echo "MEDIAN | $label | hello_p50_ms=$(med "${p50s[@]}") ($(spread "${p50s[@]}")) hello_p99_ms=$(med "${p99s[@]}") ($(spread "${p99s[@]}")) hello_req_s=$(med "${rates[@]}") bulk_gbit_s=$(med "${bulks[@]}") ($(spread "${bulks[@]}"))"
}

# Before and after alternate run by run, so both see the same machine.
P50_before=(); P99_before=(); BULK_before=(); RATE_before=()
P50_after=(); P99_after=(); BULK_after=(); RATE_after=()
for run in $(seq "$RUNS"); do
  [ -n "$BASE_BIN" ] && one_run before "$BASE_BIN" "$run"
  one_run after "$BIN" "$run"
done
[ -n "$BASE_BIN" ] && summary before
summary after
