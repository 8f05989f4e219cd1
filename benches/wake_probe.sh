#!/usr/bin/env bash
# benches/wake_probe.sh — what closes the wake-up gap of a timerfd (issue 17,
# item 4): benches/wake_probe.c in each mode, ROUNDS rounds interleaved so
# that machine noise hits all modes alike; per mode the median over rounds of
# each round's p50 / p99 / max lateness and CPU, with the min–max of the p99s.
#
#   benches/wake_probe.sh               # ROUNDS=5, N=500 (about 40 s)
#
# Env: ROUNDS (5), N (500 wake-ups per mode per round), MODES, WORK.
# SCHED_FIFO modes need root or CAP_SYS_NICE; without it they are SKIPPED.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${ROUNDS:-5}
N=${N:-500}
MODES=${MODES:-"slack50 slack1 fifo spin20 spin50 spin100 fifospin20"}
WORK=${WORK:-/tmp/mioperf-wake}
mkdir -p "$WORK"
gcc -O2 -Wall -o "$WORK/wake_probe" "$HERE/wake_probe.c" || exit 1
echo "machine: $(nproc) cpus, kernel $(uname -r), $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg); rounds=$ROUNDS n=$N"
: > "$WORK/wake.txt"
for r in $(seq "$ROUNDS"); do
  for m in $MODES; do
    timeout 60 "$WORK/wake_probe" "$m" "$N" "$r" >> "$WORK/wake.txt" 2>/dev/null || echo "WAKE $m SKIPPED" >> "$WORK/wake.txt"
  done
done
python3 - "$WORK/wake.txt" $MODES <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"WAKE (\S+) n=\d+ p50=([0-9.]+) p99=([0-9.]+) max=([0-9.]+) cpu=([0-9.]+)%", line)
    if m:
        rows.setdefault(m.group(1), []).append([float(x) for x in m.groups()[1:]])
for mode in sys.argv[2:]:
    v = rows.get(mode)
    if not v:
        print(f"FIGURE wake | {mode} | SKIPPED (not permitted or failed)")
        continue
    med = lambda i: statistics.median(x[i] for x in v)
    p99s = [x[1] for x in v]
    print(f"FIGURE wake | {mode:11} | rounds={len(v)} p50={med(0):.1f} us p99={med(1):.1f} us ({min(p99s):.0f}-{max(p99s):.0f}) max={med(2):.0f} us cpu={med(3):.1f} %")
PY
