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
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
WORK=${WORK:-/tmp/mioperf-tftp-bench}
RUNS=${RUNS:-2}
mkdir -p "$WORK/root" "$WORK/out"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

need=()
command -v curl >/dev/null || need+=(curl)
command -v atftp >/dev/null || need+=(atftp)
command -v in.tftpd >/dev/null || need+=(tftpd-hpa)
ATFTPD=/opt/atftpd-extract/usr/sbin/atftpd
if [ ${#need[@]} -gt 0 ] || [ ! -x "$ATFTPD" ]; then
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  apt-get update -q >/dev/null
  [ ${#need[@]} -gt 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  # atftpd conflicts with tftpd-hpa as a package: unpack its binary only.
  if [ ! -x "$ATFTPD" ]; then
    (cd /tmp && apt-get download -q atftpd >/dev/null && mkdir -p /opt/atftpd-extract && dpkg-deb -x atftpd_*.deb /opt/atftpd-extract)
  fi
fi
gcc -O2 -Wall -o "$WORK/rr" "$SHARED/rr.c" || exit 1
(cd "$ROOT" && cargo build --release -q) || exit 1
BIN=$ROOT/target/release/mioperf
F=$WORK/root/f100M
[ -s "$F" ] || head -c 100M /dev/urandom > "$F"
head -c 9000000 /dev/urandom > "$WORK/root/f9M"
cat "$F" "$WORK/root/f9M" > /dev/null
SZ=$(stat -c %s "$F")

med() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:] if x not in ("", "nan")]; print(f"{statistics.median(v):.5g}" if v else "nan")' "$@"; }
ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{a/b:.2f}" if b else "nan")' "$1" "$2"; }
now() { date +%s.%N; }
wait_udp() { for _ in $(seq 50); do ss -lunH "sport = :$1" | grep -q . && return 0; sleep 0.1; done; echo "udp port $1 not bound"; }

# timed LABEL BLKSIZE CMD...: runs CMD (which writes $WORK/out/got), prints blocks/s or nan.
timed() {
  local bs=$1; shift
  rm -f "$WORK/out/got"
  local t0 t1; t0=$(now); timeout 120 "$@" >/dev/null 2>&1; t1=$(now)
  local got; got=$(stat -c %s "$WORK/out/got" 2>/dev/null || echo 0)
  if [ "$got" = "$SZ" ]; then python3 -c "import math; print(math.ceil($SZ/$bs + 1)/($t1-$t0))"; else echo nan; fi
}

echo "machine: $(nproc) cpus, kernel $(uname -r), $(date -u +%FT%TZ); runs=$RUNS; $(curl --version | head -1 | cut -d' ' -f1-2); $(in.tftpd -V 2>&1 | head -1)"

start() { # pin cmd...  (pin: "" or "taskset -c 0")
  $1 "${@:2}" & LASTPID=$!; PIDS+=("$LASTPID")
}

for pin in "" "taskset -c 0"; do
  label=${pin:+pinned CPU 0}; label=${label:-unpinned}
  $pin "$BIN" serve -q --only tftp --listen tftp=127.0.0.1:16990 --root "$WORK/root" > "$WORK/serve.out" 2>&1 & MS=$!; PIDS+=("$MS")
  $pin in.tftpd -L -u root -s "$WORK/root" -a 127.0.0.1:16991 -B 65464 & HS=$!; PIDS+=("$HS")
  wait_udp 16990; wait_udp 16991
  for bs in 512 1468; do
    opt=(); [ "$bs" != 512 ] && opt=(--tftp-blksize "$bs")
    m=(); h=()
    for r in $(seq "$RUNS"); do
      m+=("$(timed "$bs" $pin curl -s "${opt[@]}" -o "$WORK/out/got" tftp://127.0.0.1:16990/f100M)")
      h+=("$(timed "$bs" $pin curl -s "${opt[@]}" -o "$WORK/out/got" tftp://127.0.0.1:16991/f100M)")
    done
    M=$(med "${m[@]}"); H=$(med "${h[@]}")
    echo "FIGURE | TFTP RRQ 100 MiB, curl, blksize $bs, $label | mioperf=$M blocks/s | tftpd-hpa=$H blocks/s | ratio=$(ratio "$M" "$H") | goal >= 1.1"
  done
  kill "$MS" "$HS" 2>/dev/null; wait "$MS" "$HS" 2>/dev/null
done

"$BIN" serve -q --only tftp,stopwait --listen tftp=127.0.0.1:16990 --listen stopwait=127.0.0.1:16992 --root "$WORK/root" > "$WORK/serve.out" 2>&1 & MS=$!; PIDS+=("$MS")
"$ATFTPD" --daemon --no-fork --port 16993 --bind-address 127.0.0.1 --user root --group root --logfile /dev/null "$WORK/root" & AS=$!; PIDS+=("$AS")
wait_udp 16990; wait_udp 16993
m=(); a=()
for r in $(seq "$RUNS"); do
  m+=("$(timed 1468 atftp --option 'blksize 1468' --option 'windowsize 16' -g -r f100M -l "$WORK/out/got" 127.0.0.1 16990)")
  a+=("$(timed 1468 atftp --option 'blksize 1468' --option 'windowsize 16' -g -r f100M -l "$WORK/out/got" 127.0.0.1 16993)")
done
M=$(med "${m[@]}"); A=$(med "${a[@]}")
mib() { python3 -c "print(f'{float(\"$1\")*1468/1048576:.1f}' if '$1' != 'nan' else 'nan')"; }
echo "FIGURE | TFTP windowsize 16, blksize 1468, atftp | mioperf=$M blocks/s ($(mib "$M") MiB/s) | atftpd=$A blocks/s ($(mib "$A") MiB/s) | ratio=$(ratio "$M" "$A") | goal >= 1.5"

s=(); f=()
for r in $(seq "$RUNS"); do
  s+=("$("$BIN" stopwait get 127.0.0.1:16992 f9M -o "$WORK/out/sw" --force --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stopwait"]["blocks_per_second"])')")
  cmp -s "$WORK/root/f9M" "$WORK/out/sw" || echo "WARNING: stopwait copy differs"
done
kill "$MS" "$AS" 2>/dev/null; wait "$MS" "$AS" 2>/dev/null
"$WORK/rr" udp-server 16994 & RS=$!; PIDS+=("$RS"); wait_udp 16994
for r in $(seq "$RUNS"); do
  f+=("$(timeout 15 "$WORK/rr" udp-client 16994 1 3 | sed -n 's/.* rate=\([0-9.]*\).*/\1/p')")
done
kill "$RS"; wait "$RS" 2>/dev/null
S=$(med "${s[@]}"); FL=$(med "${f[@]}")
echo "FIGURE | stopwait GET 9 MB, mioperf client | $S blocks/s | rr udp 1-client floor=$FL req/s | ratio=$(ratio "$S" "$FL") | goal >= 0.9"
