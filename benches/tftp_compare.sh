#!/usr/bin/env bash
# benches/tftp_compare.sh — TFTP and stop-and-wait figures beside their
# references, one run, loopback only, every transfer bounded by `timeout`.
#
#   benches/tftp_compare.sh          # RUNS=2, about 3 minutes
#
# Figures:
#   * TFTP RRQ of a 100 MiB file with curl: mioperf vs tftpd-hpa, blksize 512
#     and 1468, unpinned and with server and client pinned to CPU 0.
#   * windowsize 16 at blksize 1468 with atftp: mioperf vs atftpd.
#   * stopwait GET of a 9 MB file with mioperf's client: blocks/s vs the
#     request/response floor of shared/bench/rr.c with one client.
# Each unpinned mioperf figure is taken twice in the same run: as `serve`
# starts by default, and with `--busy-poll $BUSY` (the documented setting
# for benchmarking lock-step transfers, docs/performance.md §7), with the
# CPU the server burns for it. Both get a verdict, the default's marked
# "(default)". Pinned rows share one CPU between server
# and client, where spinning only takes time from the peer: no busy-poll.
# Each reference is called by its package's path and must say what it is
# (benches/lib.sh): a missing or wrong one prints SKIPPED, a reference figure
# far from its RESULTS.md anchor SUSPECT; neither gives a verdict.
# Env: RUNS (2), WORK, SHARED, SERVE_ARGS / CLIENT_ARGS (extra flags for
#      mioperf's server / stopwait client), BUSY (1ms; 0s measures none).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
# A worktree sits one level deeper than a clone.
[ -d "$SHARED" ] || SHARED=$ROOT/../../shared/bench
WORK=${WORK:-/tmp/mioperf-tftp-bench}
RUNS=${RUNS:-2}
# Extra flags for mioperf's server and stopwait client (e.g. "--spin 100us"),
# so that a wake-up setting can be measured against the same references.
SERVE_ARGS=${SERVE_ARGS:-}
CLIENT_ARGS=${CLIENT_ARGS:-}
BUSY=${BUSY:-1ms}
mkdir -p "$WORK/root" "$WORK/out"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
# Each reference by its package's own path, and checked to be what it says:
# atftpd's package installs an /usr/sbin/in.tftpd too (issue 17, item 5).
ATFTPD_X=/opt/atftpd-extract/usr/sbin/atftpd
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  [ -x /usr/bin/curl ] || need+=(curl)
  [ -x /usr/bin/atftp ] || need+=(atftp)
  [ -x /usr/sbin/in.tftpd ] || need+=(tftpd-hpa)
  if [ ${#need[@]} -gt 0 ] || { [ ! -x /usr/sbin/atftpd ] && [ ! -x "$ATFTPD_X" ]; }; then
    [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    timeout 300 apt-get update -q >/dev/null
    [ ${#need[@]} -gt 0 ] && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
    # atftpd conflicts with tftpd-hpa as a package: unpack its binary only.
    if [ ! -x /usr/sbin/atftpd ] && [ ! -x "$ATFTPD_X" ]; then
      (cd /tmp && timeout 120 apt-get download -q atftpd >/dev/null && mkdir -p /opt/atftpd-extract && dpkg-deb -x atftpd_*.deb /opt/atftpd-extract)
    fi
  fi
fi
find_ref CURL curl-tftp /usr/bin/curl curl
find_ref HPA tftpd-hpa "${TFTPD_HPA:-/usr/sbin/in.tftpd}"
find_ref ATFTPD atftpd /usr/sbin/atftpd "$ATFTPD_X"
find_ref ATFTP atftp /usr/bin/atftp atftp
gcc -O2 -Wall -o "$WORK/rr" "$SHARED/rr.c" || exit 1
(cd "$ROOT" && cargo build --release -q) || exit 1
BIN=$ROOT/target/release/mioperf
F=$WORK/root/f100M
[ -s "$F" ] || head -c 100M /dev/urandom > "$F"
head -c 9000000 /dev/urandom > "$WORK/root/f9M"
cat "$F" "$WORK/root/f9M" > /dev/null
SZ=$(stat -c %s "$F")

# med X...: median of the numbers among X, "failed" when there are none.
med() { python3 -c 'import math,statistics,sys
v=[]
for x in sys.argv[1:]:
    try: f=float(x)
    except ValueError: continue
    if math.isfinite(f) and f > 0: v.append(f)
print(f"{statistics.median(v):.0f}" if v else "failed")' "$@"; }
# spread X...: "min-max" of the numbers among X.
spread() { python3 -c 'import math,sys
v=[]
for x in sys.argv[1:]:
    try: f=float(x)
    except ValueError: continue
    if math.isfinite(f) and f > 0: v.append(f)
print(f"{min(v):.0f}-{max(v):.0f}" if v else "-")' "$@"; }
now() { date +%s.%N; }
wait_udp() { for _ in $(seq 50); do ss -lunH "sport = :$1" | grep -q . && return 0; sleep 0.1; done; echo "udp port $1 not bound"; }

# timed BLKSIZE CMD...: runs CMD (which writes $WORK/out/got), prints blocks/s or "failed".
timed() {
  local bs=$1; shift
  rm -f "$WORK/out/got"
  local t0 t1; t0=$(now); timeout 120 "$@" >/dev/null 2>&1; t1=$(now)
  local got; got=$(stat -c %s "$WORK/out/got" 2>/dev/null || echo 0)
  if [ "$got" = "$SZ" ]; then python3 -c "import math; print(math.ceil($SZ/$bs + 1)/($t1-$t0))"; else echo failed; fi
}

echo "machine: $(nproc) cpus, kernel $(uname -r), $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg); runs=$RUNS"
echo "references: curl=${CURL:-none ($CURL_WHY)}; tftpd-hpa=${HPA:-none ($HPA_WHY)}; atftpd=${ATFTPD:-none ($ATFTPD_WHY)}; atftp=${ATFTP:-none ($ATFTP_WHY)}"

# ticks PID: CPU time (user + system) of PID so far, in clock ticks.
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# cpu_pct TICKS BLOCKSIZE RATE...: TICKS of CPU as a share of one CPU over
# the transfers whose rates are given (each moved $SZ bytes).
cpu_pct() { python3 -c 'import sys
t, bs, sz = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
secs = 0.0
for x in sys.argv[4:]:
    try: secs += (sz / bs + 1) / float(x)
    except (ValueError, ZeroDivisionError): pass
print(f"{t / 100 / secs * 100:.0f}%" if secs > 0 else "-")' "$@"; }

for pin in "" "taskset -c 0"; do
  label=${pin:+pinned CPU 0}; label=${label:-unpinned}; akey=${pin:+_pinned}
  if [ -z "$CURL" ] || [ -z "$HPA" ]; then
    for bs in 512 1468; do skip "TFTP RRQ vs tftpd-hpa, curl, blksize $bs, $label" "${CURL_WHY:-$HPA_WHY}"; done
    continue
  fi
  $pin "$BIN" serve -q --only tftp --listen tftp=127.0.0.1:16990 --root "$WORK/root" $SERVE_ARGS > "$WORK/serve.out" 2>&1 & MS=$!; PIDS+=("$MS")
  $pin "$HPA" -L -u root -s "$WORK/root" -a 127.0.0.1:16991 -B 65464 & HS=$!; PIDS+=("$HS")
  BS_=""
  if [ -z "$pin" ] && [ "$BUSY" != 0s ]; then
    "$BIN" serve -q --only tftp --listen tftp=127.0.0.1:16995 --root "$WORK/root" --busy-poll "$BUSY" $SERVE_ARGS > "$WORK/serve-busy.out" 2>&1 & BS_=$!; PIDS+=("$BS_")
    wait_udp 16995
  fi
  wait_udp 16990; wait_udp 16991
  for bs in 512 1468; do
    opt=(); [ "$bs" != 512 ] && opt=(--tftp-blksize "$bs")
    m=(); h=(); b=(); bt=0
    for r in $(seq "$RUNS"); do
      m+=("$(timed "$bs" $pin "$CURL" -s "${opt[@]}" -o "$WORK/out/got" tftp://127.0.0.1:16990/f100M)")
      h+=("$(timed "$bs" $pin "$CURL" -s "${opt[@]}" -o "$WORK/out/got" tftp://127.0.0.1:16991/f100M)")
      if [ -n "$BS_" ]; then
        t0=$(ticks "$BS_")
        b+=("$(timed "$bs" "$CURL" -s "${opt[@]}" -o "$WORK/out/got" tftp://127.0.0.1:16995/f100M)")
        bt=$((bt + $(ticks "$BS_") - t0))
      fi
    done
    M=$(med "${m[@]}"); H=$(med "${h[@]}")
    echo "FIGURE | TFTP RRQ 100 MiB, curl, blksize $bs, $label | mioperf=$M blocks/s ($(spread "${m[@]}")) | tftpd-hpa=$H blocks/s ($(spread "${h[@]}")) | ratio=$(ratio "$M" "$H")"
    if [ -n "$BS_" ]; then
      B=$(med "${b[@]}")
      echo "FIGURE | TFTP RRQ 100 MiB, curl, blksize $bs, $label, serve --busy-poll $BUSY | mioperf=$B blocks/s ($(spread "${b[@]}")), server CPU $(cpu_pct "$bt" "$bs" "$SZ" "${b[@]}") of one | tftpd-hpa=$H blocks/s | ratio=$(ratio "$B" "$H")"
      judge "TFTP RRQ vs tftpd-hpa, curl, blksize $bs, $label (default)" "$M" "$H" "tftpd_hpa_${bs}${akey}_blocks" 1.1
      judge "TFTP RRQ vs tftpd-hpa, curl, blksize $bs, $label (serve --busy-poll $BUSY)" "$B" "$H" "tftpd_hpa_${bs}${akey}_blocks" 1.1
    else
      judge "TFTP RRQ vs tftpd-hpa, curl, blksize $bs, $label" "$M" "$H" "tftpd_hpa_${bs}${akey}_blocks" 1.1
    fi
  done
  kill "$MS" "$HS" $BS_ 2>/dev/null; wait "$MS" "$HS" $BS_ 2>/dev/null
done

"$BIN" serve -q --only tftp,stopwait --listen tftp=127.0.0.1:16990 --listen stopwait=127.0.0.1:16992 --root "$WORK/root" $SERVE_ARGS > "$WORK/serve.out" 2>&1 & MS=$!; PIDS+=("$MS")
BS_=""
if [ "$BUSY" != 0s ]; then
  "$BIN" serve -q --only tftp,stopwait --listen tftp=127.0.0.1:16995 --listen stopwait=127.0.0.1:16996 --root "$WORK/root" --busy-poll "$BUSY" $SERVE_ARGS > "$WORK/serve-busy.out" 2>&1 & BS_=$!; PIDS+=("$BS_")
  wait_udp 16995
fi
wait_udp 16990
if [ -n "$ATFTPD" ] && [ -n "$ATFTP" ]; then
  "$ATFTPD" --daemon --no-fork --port 16993 --bind-address 127.0.0.1 --user root --group root --logfile /dev/null "$WORK/root" & AS=$!; PIDS+=("$AS")
  wait_udp 16993
  m=(); a=(); b=(); bt=0
  for r in $(seq "$RUNS"); do
    m+=("$(timed 1468 "$ATFTP" --option 'blksize 1468' --option 'windowsize 16' -g -r f100M -l "$WORK/out/got" 127.0.0.1 16990)")
    a+=("$(timed 1468 "$ATFTP" --option 'blksize 1468' --option 'windowsize 16' -g -r f100M -l "$WORK/out/got" 127.0.0.1 16993)")
    if [ -n "$BS_" ]; then
      t0=$(ticks "$BS_")
      b+=("$(timed 1468 "$ATFTP" --option 'blksize 1468' --option 'windowsize 16' -g -r f100M -l "$WORK/out/got" 127.0.0.1 16995)")
      bt=$((bt + $(ticks "$BS_") - t0))
    fi
  done
  kill "$AS" 2>/dev/null; wait "$AS" 2>/dev/null
  M=$(med "${m[@]}"); A=$(med "${a[@]}")
  mib() { python3 -c "import sys; x=sys.argv[1]; print(f'{float(x)*1468/1048576:.1f}' if x.replace('.','',1).isdigit() else '-')" "$1"; }
  echo "FIGURE | TFTP windowsize 16, blksize 1468, atftp | mioperf=$M blocks/s ($(mib "$M") MiB/s; $(spread "${m[@]}")) | atftpd=$A blocks/s ($(mib "$A") MiB/s; $(spread "${a[@]}")) | ratio=$(ratio "$M" "$A")"
  if [ -n "$BS_" ]; then
    B=$(med "${b[@]}")
    echo "FIGURE | TFTP windowsize 16, blksize 1468, atftp, serve --busy-poll $BUSY | mioperf=$B blocks/s ($(mib "$B") MiB/s; $(spread "${b[@]}")), server CPU $(cpu_pct "$bt" 1468 "$SZ" "${b[@]}") of one | atftpd=$A blocks/s | ratio=$(ratio "$B" "$A")"
    judge "TFTP windowsize 16 vs atftpd (default)" "$M" "$A" atftpd_w16_1468_blocks 1.5
    judge "TFTP windowsize 16 vs atftpd (serve --busy-poll $BUSY)" "$B" "$A" atftpd_w16_1468_blocks 1.5
  else
    judge "TFTP windowsize 16 vs atftpd" "$M" "$A" atftpd_w16_1468_blocks 1.5
  fi
else
  skip "TFTP windowsize 16 vs atftpd" "${ATFTPD_WHY:-$ATFTP_WHY}"
fi

s=(); f=(); sb=()
# sw_get PORT FLAGS...: blocks/s of one stopwait GET of f9M, checked.
sw_get() {
  local port=$1; shift
  timeout 120 "$BIN" stopwait get "127.0.0.1:$port" f9M -o "$WORK/out/sw" --force --json "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stopwait"]["blocks_per_second"])' 2>/dev/null || echo failed
  cmp -s "$WORK/root/f9M" "$WORK/out/sw" || echo "WARNING: stopwait copy differs" >&2
}
for r in $(seq "$RUNS"); do
  s+=("$(sw_get 16992 $CLIENT_ARGS)")
  [ -n "$BS_" ] && sb+=("$(sw_get 16996 --busy-poll "$BUSY" $CLIENT_ARGS)")
done
kill "$MS" $BS_ 2>/dev/null; wait "$MS" $BS_ 2>/dev/null
"$WORK/rr" udp-server 16994 & RS=$!; PIDS+=("$RS"); wait_udp 16994
for r in $(seq "$RUNS"); do
  f+=("$(timeout 15 "$WORK/rr" udp-client 16994 1 3 | sed -n 's/.* rate=\([0-9.]*\).*/\1/p')")
done
kill "$RS"; wait "$RS" 2>/dev/null
S=$(med "${s[@]}"); FL=$(med "${f[@]}")
echo "FIGURE | stopwait GET 9 MB, mioperf client | $S blocks/s ($(spread "${s[@]}")) | rr udp 1-client floor=$FL req/s ($(spread "${f[@]}")) | ratio=$(ratio "$S" "$FL")"
if [ -n "$BS_" ]; then
  SB=$(med "${sb[@]}")
  echo "FIGURE | stopwait GET 9 MB, server and client --busy-poll $BUSY | $SB blocks/s ($(spread "${sb[@]}")) | rr floor=$FL req/s | ratio=$(ratio "$SB" "$FL")"
  judge "stopwait GET vs the rr one-client floor (default)" "$S" "$FL" rr_udp_1_req 0.9
  judge "stopwait GET vs the rr one-client floor (--busy-poll $BUSY both ends)" "$SB" "$FL" rr_udp_1_req 0.9
else
  judge "stopwait GET vs the rr one-client floor" "$S" "$FL" rr_udp_1_req 0.9
fi
