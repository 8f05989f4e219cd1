#!/bin/sh
# Cost of `serve --durable`: tcpfile PUTs of 4 KiB (x200) and 16 MiB (x20),
# one session, against a server without and with --durable, same run.
# Usage: benches/durable.sh [path/to/mioperf] [root-parent-dir]
set -eu
BIN=${1:-./target/debug/mioperf}
BASE=${2:-/tmp}
for round in 1 2 3; do
for mode in plain durable; do
  ROOT=$(mktemp -d "$BASE/mioperf-durable-XXXXXX")
  FLAG=""; [ "$mode" = durable ] && FLAG=--durable
  "$BIN" serve -q --only tcpfile --listen tcpfile=127.0.0.1:0 --root "$ROOT" \
    --allow-overwrite $FLAG > "$ROOT.out" 2>/dev/null &
  PID=$!
  i=0; until grep -q '^ready' "$ROOT.out" 2>/dev/null; do
    i=$((i+1)); [ $i -gt 100 ] && { kill $PID; exit 1; }; sleep 0.1; done
  ADDR=$(awk '/^listening tcpfile tcp/ {print $4}' "$ROOT.out")
  for spec in "4Ki 200" "16Mi 20"; do
    set -- $spec
    printf '%-8s %-5s x%-4s ' "$mode" "$1" "$2"
    timeout 120 "$BIN" bench tcpfile --mode put -l "$1" -n "$2" --server "$ADDR" \
      --interval 0s --json | python3 -c '
import json,sys
d=json.load(sys.stdin); s=d.get("summary") or d.get("total") or d
t=s["transfer_ns"]
print("%7.1f transfers/s %8.1f Mbit/s  p50 %7.2f ms  p99 %7.2f ms  errors %d" % (
  s["transfers_per_second"], s["bits_per_second"]/1e6, t["p50"]/1e6, t["p99"]/1e6, s["errors"]))'
  done
  kill $PID; wait $PID 2>/dev/null || true
  rm -rf "$ROOT" "$ROOT.out"
done
done
