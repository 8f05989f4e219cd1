#!/usr/bin/env bash
# benches/tcpfile_compare.sh — tcpfile and msg figures beside their references,
# one run, one machine, loopback only, every load bounded in time.
#
#   benches/tcpfile_compare.sh            # RUNS=3, about 3 minutes
#   RUNS=5 SECTIONS="get" benches/tcpfile_compare.sh
#
# Sections:
#   get   1 GiB GET from the page cache to a discarding client (-o /dev/null)
#         and to a file, vs iperf3 (one stream) and vs nc sending the same file.
#   put   1 GiB PUT vs nc.
#   msg   frames/s of 64 B frames and MB/s of 1 MiB frames on one connection.
#   rss   server RSS while ten 1 GiB GETs, then ten 1 GiB PUTs, run at once.
# References by their packages' paths, identified by benches/lib.sh; a missing
# or wrong one prints SKIPPED, an implausible reference figure SUSPECT.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${WORK:-/tmp/mioperf-tcpfile-bench}
RUNS=${RUNS:-3}
SECTIONS=${SECTIONS:-"get put msg rss"}
on() { [[ " $SECTIONS " == *" $1 "* ]]; }
mkdir -p "$WORK/root" "$WORK/local"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
need=()
[ -x /usr/bin/iperf3 ] || need+=(iperf3)
[ -x /bin/nc.openbsd ] || need+=(netcat-openbsd)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  timeout 300 apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
# By their packages' paths, checked to be what they say (benches/lib.sh):
# `nc` alone may be the traditional netcat, whose flags differ.
find_ref IPERF3 iperf3 /usr/bin/iperf3 iperf3
find_ref NC nc-openbsd /bin/nc.openbsd /usr/bin/nc.openbsd nc
(cd "$ROOT" && cargo build --release -q) || exit 1
BIN=$ROOT/target/release/mioperf
F=$WORK/root/1g.bin
[ -s "$F" ] || head -c 1G /dev/urandom > "$F"
cat "$F" > /dev/null   # page cache
cp "$F" "$WORK/local/up.bin"; cat "$WORK/local/up.bin" > /dev/null
SZ=$(stat -c %s "$F")

med() { python3 -c 'import math,statistics,sys
v=[]
for x in sys.argv[1:]:
    try: f=float(x)
    except ValueError: continue
    if math.isfinite(f) and f > 0: v.append(f)
print(f"{statistics.median(v):.4g} ({min(v):.3g}-{max(v):.3g})" if v else "failed")' "$@"; }
# med1: the median alone, for ratios and verdicts.
med1() { med "$@" | cut -d' ' -f1; }
gbps() { python3 -c "print(f'{$SZ*8/($2-$1)/1e9:.3f}')"; }
now() { date +%s.%N; }
wait_tcp() { for _ in $(seq 50); do ss -ltnH "sport = :$1" | grep -q . && return 0; sleep 0.1; done; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

start_server() { # args...
  "$BIN" serve -q --root "$WORK/root" --allow-overwrite "$@" > "$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVER=$!; PIDS+=("$SERVER")
  for _ in $(seq 50); do grep -q '^ready' "$WORK/serve.out" && break; sleep 0.1; done
  TCPFILE=$(awk '/^listening tcpfile tcp/{print $4}' "$WORK/serve.out")
  MSG=$(awk '/^listening msg tcp/{split($4,a,":");print a[2]}' "$WORK/serve.out")
}
stop_server() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }

echo "machine: $(nproc) cpus, kernel $(uname -r), $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg); runs=$RUNS; file $SZ bytes"
echo "references: iperf3=${IPERF3:-none ($IPERF3_WHY)}; nc=${NC:-none ($NC_WHY)}"

if on get; then
  start_server --only tcpfile --listen tcpfile=127.0.0.1:0
  [ -n "$IPERF3" ] && { "$IPERF3" -s -B 127.0.0.1 -p 5298 > "$WORK/iperf3.log" 2>&1 & IPS=$!; PIDS+=("$IPS"); sleep 0.5; }
  m=(); mf=(); i=(); n=(); nf=()
  for r in $(seq "$RUNS"); do
    t0=$(now); timeout 120 "$BIN" get "$TCPFILE" 1g.bin -o /dev/null 2>/dev/null; t1=$(now); m+=("$(gbps "$t0" "$t1")")
    rm -f "$WORK/local/down.bin"
    t0=$(now); timeout 120 "$BIN" get "$TCPFILE" 1g.bin -o "$WORK/local/down.bin" 2>/dev/null; t1=$(now); mf+=("$(gbps "$t0" "$t1")")
    cmp -s "$F" "$WORK/local/down.bin" || echo "WARNING: downloaded file differs"
    [ -n "$IPERF3" ] && i+=("$(timeout 30 "$IPERF3" -c 127.0.0.1 -p 5298 -n 1G -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)' 2>/dev/null)")
    if [ -n "$NC" ]; then
      timeout 60 "$NC" -l 127.0.0.1 7399 > /dev/null & rp=$!; wait_tcp 7399
      t0=$(now); timeout 60 "$NC" -N 127.0.0.1 7399 < "$F"; wait $rp; t1=$(now); n+=("$(gbps "$t0" "$t1")")
      timeout 60 "$NC" -l 127.0.0.1 7399 > "$WORK/local/nc.bin" & rp=$!; wait_tcp 7399
      t0=$(now); timeout 60 "$NC" -N 127.0.0.1 7399 < "$F"; wait $rp; t1=$(now); nf+=("$(gbps "$t0" "$t1")")
    fi
    rm -f "$WORK/local/nc.bin" "$WORK/local/down.bin"
    sleep 1
  done
  M=$(med1 "${m[@]}"); I=$(med1 "${i[@]}"); N=$(med1 "${n[@]}")
  echo "FIGURE | 1 GiB GET to a discarding client | mioperf=$(med "${m[@]}") Gbit/s | iperf3=$(med "${i[@]}") | nc=$(med "${n[@]}") | vs iperf3=$(ratio "$M" "$I") | vs nc=$(ratio "$M" "$N")"
  if [ -n "$IPERF3" ]; then judge "tcpfile 1 GiB GET vs iperf3" "$M" "$I" iperf3_tcp_gbit 0.9 "vs iperf3"; else skip "tcpfile 1 GiB GET vs iperf3" "$IPERF3_WHY"; fi
  if [ -n "$NC" ]; then judge "tcpfile 1 GiB GET vs nc" "$M" "$N" nc_tcp_gbit 2.0 "vs nc"; else skip "tcpfile 1 GiB GET vs nc" "$NC_WHY"; fi
  echo "FIGURE | 1 GiB GET to a file | mioperf=$(med "${mf[@]}") Gbit/s | nc > file=$(med "${nf[@]}") | vs nc=$(ratio "$(med1 "${mf[@]}")" "$(med1 "${nf[@]}")")"
  [ -n "$IPERF3" ] && { kill "$IPS"; wait "$IPS" 2>/dev/null; }
  stop_server
fi

if on put; then
  start_server --only tcpfile --listen tcpfile=127.0.0.1:0
  m=(); n=()
  for r in $(seq "$RUNS"); do
    t0=$(now); timeout 120 "$BIN" put "$TCPFILE" "$WORK/local/up.bin" --as up.bin 2>/dev/null; t1=$(now); m+=("$(gbps "$t0" "$t1")")
    cmp -s "$F" "$WORK/root/up.bin" || echo "WARNING: uploaded file differs"
    if [ -n "$NC" ]; then
      timeout 60 "$NC" -l 127.0.0.1 7399 > "$WORK/root/nc-up.bin" & rp=$!; wait_tcp 7399
      t0=$(now); timeout 60 "$NC" -N 127.0.0.1 7399 < "$WORK/local/up.bin"; wait $rp; t1=$(now); n+=("$(gbps "$t0" "$t1")")
    fi
    rm -f "$WORK/root/nc-up.bin"
    sleep 1
  done
  M=$(med1 "${m[@]}"); N=$(med1 "${n[@]}")
  echo "FIGURE | 1 GiB PUT into the root | mioperf=$(med "${m[@]}") Gbit/s | nc > file=$(med "${n[@]}") | vs nc=$(ratio "$M" "$N")"
  if [ -n "$NC" ]; then judge "tcpfile 1 GiB PUT vs nc > file" "$M" "$N" nc_file_gbit 2.0 "vs nc"; else skip "tcpfile 1 GiB PUT vs nc > file" "$NC_WHY"; fi
  stop_server
fi

if on msg; then
  start_server --only msg --listen msg=127.0.0.1:0
  head -c 64 /dev/zero > "$WORK/local/64.bin"; head -c 1M /dev/zero > "$WORK/local/1m.bin"
  f=(); b=()
  for r in $(seq "$RUNS"); do
    f+=("$("$BIN" msg 127.0.0.1 "$MSG" "$WORK/local/64.bin" --count 2000000 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["msg"]["frames_per_second"])')")
    b+=("$("$BIN" msg 127.0.0.1 "$MSG" "$WORK/local/1m.bin" --count 4000 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bits_per_second"]/8e6)')")
  done
  echo "FIGURE | msg 64 B frames, one connection, pipelined | $(med "${f[@]}") frames/s"
  echo "FIGURE | msg 1 MiB frames, one connection, pipelined | $(med "${b[@]}") MB/s"
  stop_server
fi

if on rss; then
  start_server --only tcpfile --listen tcpfile=127.0.0.1:0
  idle=$(rss_kib "$SERVER")
  any_alive() { for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
  pids=(); gmax=$idle
  for k in $(seq 10); do "$BIN" get "$TCPFILE" 1g.bin -o /dev/null 2>>"$WORK/rss.err" & pids+=($!); done
  while any_alive "${pids[@]}"; do r=$(rss_kib "$SERVER"); [ "$r" -gt "$gmax" ] && gmax=$r; sleep 0.02; done
  wait "${pids[@]}"
  pids=(); pmax=$idle
  for k in $(seq 10); do "$BIN" put "$TCPFILE" "$WORK/local/up.bin" --as "up$k.bin" 2>>"$WORK/rss.err" & pids+=($!); done
  while any_alive "${pids[@]}"; do r=$(rss_kib "$SERVER"); [ "$r" -gt "$pmax" ] && pmax=$r; sleep 0.02; done
  wait "${pids[@]}"
  echo "FIGURE | server RSS, ten concurrent 1 GiB transfers | idle=${idle} KiB | GETs peak=${gmax} KiB | PUTs peak=${pmax} KiB | growth GET=$((gmax-idle)) KiB PUT=$((pmax-idle)) KiB (flat = independent of file size)"
  rm -f "$WORK"/root/up*.bin
  stop_server
fi
