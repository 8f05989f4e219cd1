#!/bin/bash
# benches/busy_poll_ab.sh (issue 17 item 3): env PIN ("taskset -c 0"), BS (1468), BP (1ms), RUNS (3).
# TFTP RRQ curl 1468, servers: mioperf default, mioperf --busy-poll, tftpd-hpa; interleaved
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/.." && pwd)
B=${MIOPERF:-$ROOT/target/release/mioperf}
SHARED=${SHARED:-$ROOT/../shared/bench}; [ -d "$SHARED" ] || SHARED=$ROOT/../../shared/bench
W=${WORK:-/tmp/mioperf-issue17}; mkdir -p "$W"
PIDS=()
mkdir -p "$W/root"; [ -s "$W/root/f30M" ] || head -c 30M /dev/urandom > "$W/root/f30M"
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null; done' EXIT
PIN=${PIN:-}
$PIN $B serve -q --only tftp --listen tftp=127.0.0.1:17990 --root "$W/root" >/dev/null 2>&1 & PIDS+=($!)
$PIN $B serve -q --only tftp --listen tftp=127.0.0.1:17991 --root "$W/root" --busy-poll ${BP:-1ms} >/dev/null 2>&1 & PIDS+=($!)
$PIN /usr/sbin/in.tftpd -L -u root -s "$W/root" -a 127.0.0.1:17992 -B 65464 & PIDS+=($!)
sleep 0.5
for r in $(seq ${RUNS:-3}); do
 for p in 17990 17991 17992; do
  c0=$(awk '{print $14+$15}' /proc/${PIDS[$((p-17990))]}/stat 2>/dev/null || echo 0)
  t0=$(date +%s.%N); timeout 60 $PIN curl -s --tftp-blksize ${BS:-1468} -o $W/got tftp://127.0.0.1:$p/f30M; t1=$(date +%s.%N)
  c1=$(awk '{print $14+$15}' /proc/${PIDS[$((p-17990))]}/stat 2>/dev/null || echo 0)
  sz=$(stat -c %s $W/got)
  python3 -c "print('port $p run $r blocks/s %.0f size_ok=%s server_cpu=%.0f%%' % ($sz/${BS:-1468}/($t1-$t0), $sz==30*1048576, ($c1-$c0)/100/($t1-$t0)*100))"
 done
done
