#!/usr/bin/env bash
# benches/lab_compare.sh — the lab protocol's figures beside their references,
# in one run on one machine (loopback only; every load bounded in time).
#
#   benches/lab_compare.sh              # everything, RUNS=3 (about 4 minutes)
#   RUNS=5 SECTIONS="pace" benches/lab_compare.sh
#
# Sections:
#   pace   UDP stream of 10 000 × 64 B at 100 µs and 1 ms: schedule error
#          (p50/p99/max of |Δarrival − Δscheduled|, kernel RX timestamps)
#          and achieved rate, mioperf vs shared/bench/pace.c (timerfd, busy);
#          CPU seconds used by each sender.
#   burst  interval-0 UDP stream of 64 B and 1400 B datagrams: packets/s
#          received, mioperf vs `iperf3 -u -b 0 -l LEN`.
#   file   123456789-byte generated file over TCP vs `iperf3` TCP, Gbit/s.
# Prints one line per figure: FIGURE | name | key=value ... ; ratio and goal.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
# A worktree sits one level deeper than a clone.
[ -d "$SHARED" ] || SHARED=$ROOT/../../shared/bench
WORK=${WORK:-/tmp/mioperf-lab-bench}
RUNS=${RUNS:-3}
SECTIONS=${SECTIONS:-"pace burst file"}
mkdir -p "$WORK"
on() { [[ " $SECTIONS " == *" $1 "* ]]; }
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
if [ ! -x /usr/bin/iperf3 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  timeout 300 apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends iperf3 >/dev/null
fi
find_ref IPERF3 iperf3 /usr/bin/iperf3 iperf3
gcc -O2 -Wall -o "$WORK/pace" "$SHARED/pace.c" || exit 1
(cd "$ROOT" && cargo build --release -q) || exit 1
BIN=$ROOT/target/release/mioperf

# cpu_of PID: user+system seconds the process has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"; }
# runcpu CMD...: runs CMD, prints its stdout, then "cpu=SECONDS" of its children.
runcpu() { python3 -c '
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True, timeout=120)
sys.stdout.write(p.stdout)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"cpu={r.ru_utime + r.ru_stime:.3f}")' "$@"; }
med() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:] if x not in ("", "nan")]; print(f"{statistics.median(v):.6g}" if v else "nan")' "$@"; }

start_server() { # extra args...
  "$BIN" serve --only lab --listen lab=127.0.0.1:0 "$@" > "$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVER=$!; PIDS+=("$SERVER")
  for _ in $(seq 50); do grep -q '^ready' "$WORK/serve.out" && break; sleep 0.1; done
  LAB_TCP=$(awk '/lab tcp/{split($4,a,":");print a[2]}' "$WORK/serve.out")
  LAB_UDP=$(awk '/lab udp/{split($4,a,":");print a[2]}' "$WORK/serve.out")
}
stop_server() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }

echo "machine: $(nproc) cpus, kernel $(uname -r), $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg); runs=$RUNS; iperf3=${IPERF3:-none ($IPERF3_WHY)}"

if on pace; then
  start_server
  for iv_us in 100 1000; do
    iv_ms=$(python3 -c "print($iv_us/1000)")
    m50=(); m99=(); mmax=(); mrate=(); mcpu=(); t50=(); t99=(); tcpu=(); b50=(); b99=(); bcpu=()
    for r in $(seq "$RUNS"); do
      c0=$(cpu_of "$SERVER")
      timeout 60 "$BIN" lab 127.0.0.1 "$LAB_UDP" --udp "stream-$iv_ms-10000-64" --json > "$WORK/m.json"
      c1=$(cpu_of "$SERVER")
      read -r p50 p99 pmax rerr < <(python3 -c '
import json,sys; j=json.load(open(sys.argv[1])); s=j["stream"]["stats"]; e=s["schedule_error_ns"]
print(e["p50"]/1e3, e["p99"]/1e3, e["max"]/1e3, abs(s["rate_error"] or 0)*100)' "$WORK/m.json")
      m50+=("$p50"); m99+=("$p99"); mmax+=("$pmax"); mrate+=("$rerr")
      mcpu+=("$(python3 -c "print($c1-$c0)")")
      for mode in timerfd busy; do
        timeout 60 "$WORK/pace" recv 7400 10000 "$iv_us" 30 > "$WORK/pr.out" & rp=$!
        sleep 0.2
        out=$(runcpu timeout 60 "$WORK/pace" send "$mode" 7400 10000 "$iv_us")
        wait $rp
        read -r e50 e99 < <(sed -n 's/.*err_p50=\([0-9.]*\) err_p99=\([0-9.]*\).*/\1 \2/p' "$WORK/pr.out")
        cpu=$(echo "$out" | sed -n 's/^cpu=//p')
        if [ "$mode" = timerfd ]; then t50+=("$e50"); t99+=("$e99"); tcpu+=("$cpu"); else b50+=("$e50"); b99+=("$e99"); bcpu+=("$cpu"); fi
      done
    done
    secs=$(python3 -c "print(10000*$iv_us/1e6)")
    echo "FIGURE | pace ${iv_us}us 10000x64B | mioperf p50=$(med "${m50[@]}")us p99=$(med "${m99[@]}")us max=$(med "${mmax[@]}")us rate_err=$(med "${mrate[@]}")% server_cpu=$(med "${mcpu[@]}")s/${secs}s | pace.c timerfd p50=$(med "${t50[@]}")us p99=$(med "${t99[@]}")us cpu=$(med "${tcpu[@]}")s | pace.c busy p50=$(med "${b50[@]}")us p99=$(med "${b99[@]}")us cpu=$(med "${bcpu[@]}")s | goal (100us): p99<=50us p50<=5us rate within 0.1%"
  done
  stop_server
fi

if on burst && [ -z "$IPERF3" ]; then
  for len in 64 1400; do skip "interval-0 UDP ${len}B vs iperf3" "$IPERF3_WHY"; done
elif on burst; then
  start_server --stream-max-count 3000000
  "$IPERF3" -s -B 127.0.0.1 -p 5299 > "$WORK/iperf3-s.log" 2>&1 & IPS=$!; PIDS+=("$IPS"); sleep 0.5
  for len in 64 1400; do
    mine=(); ref=(); loss=()
    for r in $(seq "$RUNS"); do
      timeout 60 "$BIN" lab 127.0.0.1 "$LAB_UDP" --udp "stream-0-2000000-$len" --max-count 2000000 --json > "$WORK/b.json"
      read -r pps lost < <(python3 -c '
import json,sys; s=json.load(open(sys.argv[1]))["stream"]["stats"]; print(s["segments_per_second"] or 0, s["lost"]/max(1,s["expected"])*100)' "$WORK/b.json")
      mine+=("$pps"); loss+=("$lost")
      timeout 30 "$IPERF3" -c 127.0.0.1 -p 5299 -u -b 0 -l "$len" -t 5 -J > "$WORK/i.json"
      ref+=("$(python3 -c '
import json,sys; e=json.load(open(sys.argv[1]))["end"]; r=e["sum_received"]
print((r["packets"]-r["lost_packets"])/r["seconds"])' "$WORK/i.json")")
      sleep 1
    done
    m=$(med "${mine[@]}"); i=$(med "${ref[@]}")
    echo "FIGURE | interval-0 UDP ${len}B | mioperf received=$m pkt/s (loss $(med "${loss[@]}")%) | iperf3 -u -b 0 -l $len received=$i pkt/s | ratio=$(ratio "$m" "$i")"
    judge "interval-0 UDP ${len}B vs iperf3" "$m" "$i" "iperf3_udp${len}_pps" 2.0
  done
  kill "$IPS"; wait "$IPS" 2>/dev/null
  stop_server
fi

if on file && [ -z "$IPERF3" ]; then
  skip "123456789-byte file over TCP vs iperf3" "$IPERF3_WHY"
elif on file; then
  start_server
  "$IPERF3" -s -B 127.0.0.1 -p 5299 > "$WORK/iperf3-s.log" 2>&1 & IPS=$!; PIDS+=("$IPS"); sleep 0.5
  mine=(); secs=(); ref=()
  for r in $(seq "$RUNS"); do
    timeout 60 "$BIN" lab 127.0.0.1 "$LAB_TCP" 123456789 --json > "$WORK/f.json"
    read -r g s < <(python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); f=d["file"]; assert f["pattern_ok"] and d["bytes"]==123456789
print(d["bits_per_second"]/1e9, d["seconds"])' "$WORK/f.json")
    mine+=("$g"); secs+=("$s")
    timeout 30 "$IPERF3" -c 127.0.0.1 -p 5299 -t 5 -J > "$WORK/i.json"
    ref+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e9)' "$WORK/i.json")")
    sleep 1
  done
  m=$(med "${mine[@]}"); i=$(med "${ref[@]}")
  echo "FIGURE | 123456789-byte file over TCP | mioperf=$m Gbit/s ($(med "${secs[@]}") s, pattern checked) | iperf3 TCP=$i Gbit/s | ratio=$(ratio "$m" "$i")"
  judge "123456789-byte file over TCP vs iperf3" "$m" "$i" iperf3_tcp_gbit 0.8
  kill "$IPS"; wait "$IPS" 2>/dev/null
  stop_server
fi
