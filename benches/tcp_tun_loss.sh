#!/usr/bin/env bash
# benches/tcp_tun_loss.sh — issue 14's "goodput under loss over TUN": curl
# of a file from `serve --only tunstack` with --tun-drop P (each way), for
# P in 0, 1 and 5 %, several seeds, in a namespace this script creates and
# deletes (also on Ctrl-C); only 192.0.2.0/24 inside it. Prints goodput and
# the stack's TCP counters per run. Needs root, iproute2, curl.
#
#   sudo benches/tcp_tun_loss.sh                   # SIZE_MIB=64 SEEDS="1 2 3"
#   sudo CC=cubic DROPS="0.01" benches/tcp_tun_loss.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SIZE_MIB=${SIZE_MIB:-64}
SEEDS=${SEEDS:-"1 2 3"}
DROPS=${DROPS:-"0 0.01 0.05"}
CC=${CC:-newreno}
NS=mioperf-tunloss-$$
WORK=$(mktemp -d /dev/shm/mioperf-tunloss.XXXX)
cleanup() { ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null; sleep 0.2; ip netns del "$NS" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
(cd "$ROOT" && cargo build --release -q) || exit 1
BIN=$ROOT/target/release/mioperf
ip netns add "$NS" && ip -n "$NS" link set lo up
head -c "$((SIZE_MIB << 20))" /dev/urandom > "$WORK/f.bin"
echo "load $(cut -d' ' -f1-3 /proc/loadavg); ${SIZE_MIB} MiB curl over TUN (MTU 1500), cc $CC"
echo "| drop each way | seed | Gbit/s | stack: tcp-in / tcp-out | exact |"
echo "|---|---|---|---|---|"
for p in $DROPS; do
  for seed in $SEEDS; do
    ip netns exec "$NS" timeout 300 "$BIN" serve --only tunstack --root "$WORK" --tcp-cc "$CC" \
      --tun-drop "$p" --tun-seed "$seed" > "$WORK/out" 2> "$WORK/err" &
    pid=$!
    for _ in $(seq 100); do grep -q '^ready' "$WORK/out" && break; sleep 0.05; done
    r=$(ip netns exec "$NS" timeout 240 curl -sS -o "$WORK/got" -w '%{speed_download}' http://192.0.2.1:7000/f.bin)
    kill -INT "$pid"; wait "$pid" 2>/dev/null
    ok=$(cmp -s "$WORK/got" "$WORK/f.bin" && echo yes || echo NO)
    c=$(grep -o 'tcp-in [0-9]* tcp-out [0-9]*' "$WORK/err" | tail -1)
    echo "| $p | $seed | $(python3 -c "print(f'{$r*8/1e9:.3f}')") | $c | $ok |"
    rm -f "$WORK/got"
  done
done
