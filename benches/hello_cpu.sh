#!/bin/bash
# benches/hello_cpu.sh (issue 17 item 2): CPU per request, bench side and server side, bench vs rr client, same server; 3 alternating runs.
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/.." && pwd)
B=${MIOPERF:-$ROOT/target/release/mioperf}
SHARED=${SHARED:-$ROOT/../shared/bench}; [ -d "$SHARED" ] || SHARED=$ROOT/../../shared/bench
W=${WORK:-/tmp/mioperf-issue17}; mkdir -p "$W"
gcc -O2 -o "$W/rr" "$SHARED/rr.c" || exit 1
$B serve -q --only hello --listen hello=127.0.0.1:17600 --id-ttl 10ms > /dev/null 2>&1 & S=$!; sleep 0.5
tick() { awk '{print $14+$15}' /proc/$S/stat; }
for r in 1 2 3; do
  s0=$(tick); /usr/bin/time -f "%U %S" -o $W/dt timeout 20 $B bench hello -P 16 -t 3s --interval 0s --server 127.0.0.1:17600 --json > $W/d.json 2>/dev/null; s1=$(tick)
  n=$(python3 -c 'import json; s=json.load(open("$W/d.json"))["summary"]; print(int(s["requests_per_second"]*3))'); read u sy < $W/dt
  echo "bench -P 16: $(python3 -c "print(f'rate={$n/3:.0f}/s client_cpu={($u+$sy)/$n*1e6:.2f} us/req (user {$u/$n*1e6:.2f}) server_cpu={($s1-$s0)/100/$n*1e6:.2f} us/req')")"
  s0=$(tick); /usr/bin/time -f "%U %S" -o $W/dt timeout 20 $W/rr udp-client 17600 16 3 ids > $W/rr.out; s1=$(tick)
  n=$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' $W/rr.out); read u sy < $W/dt
  echo "rr udp-client 16: $(python3 -c "print(f'rate={$n/3:.0f}/s client_cpu={($u+$sy)/$n*1e6:.2f} us/req (user {$u/$n*1e6:.2f}) server_cpu={($s1-$s0)/100/$n*1e6:.2f} us/req')")"
done
kill $S
