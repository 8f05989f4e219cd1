#!/bin/bash
# benches/tcpfile_sources.sh (issue 17 item 6): why tcpfile_compare and bench tcpfile disagree. 1 GiB GET, five ways, interleaved.
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/.." && pwd)
B=${MIOPERF:-$ROOT/target/release/mioperf}
SHARED=${SHARED:-$ROOT/../shared/bench}; [ -d "$SHARED" ] || SHARED=$ROOT/../../shared/bench
W=${WORK:-/tmp/mioperf-issue17}; mkdir -p "$W"
R=$W/tcpfile-root
mkdir -p $R; [ -s $R/1g.bin ] || head -c 1G /dev/urandom > $R/1g.bin; ln -f $R/1g.bin $R/bench-1073741824.bin; cat $R/1g.bin > /dev/null
PIDS=(); trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null; done' EXIT
$B serve -q --root $R --only tcpfile --listen tcpfile=127.0.0.1:17400 > $W/e-serve.out 2>&1 & PIDS+=($!)
/usr/bin/iperf3 -s -B 127.0.0.1 -p 17401 > /dev/null 2>&1 & PIDS+=($!)
sleep 0.5
for r in $(seq ${RUNS:-3}); do
  t0=$(date +%s.%N); J=$(timeout 60 $B get 127.0.0.1:17400 1g.bin -o /dev/null --json 2>/dev/null); t1=$(date +%s.%N)
  wall=$(python3 -c "print(round(8*2**30/($t1-$t0)/1e9,2))")
  own=$(echo "$J" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["bits_per_second"]/1e9,2))')
  ext=$(timeout 60 $B bench tcpfile -l 1Gi -n 1 --interval 0s --server 127.0.0.1:17400 --json 2>/dev/null | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["summary"]["bits_per_second"]/1e9,2))' 2>/dev/null)
  inp=$(timeout 120 $B bench tcpfile -l 1Gi -n 1 --interval 0s --json 2>/dev/null | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["summary"]["bits_per_second"]/1e9,2))' 2>/dev/null)
  ipn=$(timeout 60 /usr/bin/iperf3 -c 127.0.0.1 -p 17401 -n 1G -J | python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]; print(round(e["sum_received"]["bits_per_second"]/1e9,2))')
  t0=$(date +%s.%N); timeout 60 /usr/bin/iperf3 -c 127.0.0.1 -p 17401 -n 1G -J > /dev/null; t1=$(date +%s.%N)
  ipw=$(python3 -c "print(round(8*2**30/($t1-$t0)/1e9,2))")
  echo "run $r Gbit/s: get wall-clock=$wall get own=$own | bench->serve=$ext bench in-process=$inp | iperf3 own=$ipn iperf3 wall-clock=$ipw"
done
