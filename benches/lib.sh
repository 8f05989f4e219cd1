# benches/lib.sh — sourced by the compare scripts: which program a reference
# really is, and the verdict a ratio against it may give. One copy, so that
# every script refuses a wrong reference in the same way (issue 17, item 5:
# an `in.tftpd` that was atftpd's once "measured tftpd-hpa" at 595 blocks/s
# and printed PASS).
#
# Owns: identifying references (`ref_is`, `find_ref`), the anchor figures of
# the references (`anchor`, from ../shared/bench/RESULTS.md), formatting
# figures that may be missing (`num_or`, `ratio`), and verdict lines (`judge`,
# `skip`). Never starts a process other than the reference it asks for its
# version (bounded by `timeout`), never installs anything.
#
# Verdict lines, the only ones compare.sh turns into goals:
#   GOAL <label> | <what> <ratio> >= <goal>: PASS | FALLS SHORT
#   GOAL <label> | SKIPPED (<why>)          — reference missing or not what it claims
#   GOAL <label> | SUSPECT (<why>): no verdict — a figure missing, NaN, 0, or a
#                  reference outside [anchor / 10, anchor * 10]
# shellcheck shell=bash

# The sane range of a reference figure around its anchor: a reference that
# far from what the same tool did on this machine is measuring something
# else (a wrong binary, a failed transfer, a broken setup), so its ratio says
# nothing about us.
LIB_SANE_FACTOR=10

# anchor KEY: the reference's figure in ../shared/bench/RESULTS.md (medians,
# unpinned unless the key says pinned), in the unit the key names.
anchor() {
  case $1 in
    tftpd_hpa_512_blocks) echo 14740 ;;          # §4 curl -> tftpd-hpa, 512
    tftpd_hpa_1468_blocks) echo 20271 ;;         # §4 curl --tftp-blksize 1468
    tftpd_hpa_512_pinned_blocks) echo 39067 ;;   # §4 both pinned to CPU 0
    tftpd_hpa_1468_pinned_blocks) echo 37497 ;;  # §4 the same, 1468
    atftpd_w16_1468_blocks) echo 90040 ;;        # §4 atftp -> atftpd blksize 1468 windowsize 16
    rr_udp_1_req) echo 10225 ;;                  # §5 rr udp-client 1 client, unpinned
    rr_udp_16_req) echo 161000 ;;                # §5 rr UDP 16 clients, unpinned
    rr_tcp_conn_16_conn) echo 13673 ;;           # §6 rr tcp-server, connect+HELLO+close, 16
    iperf3_tcp_gbit) echo 16.9 ;;                # §1 iperf3 one stream
    nc_tcp_gbit) echo 7.3 ;;                     # §1 nc -> nc >/dev/null
    nc_file_gbit) echo 2.4 ;;                    # §1 socat 8 KiB into a file (no nc row)
    iperf3_udp64_pps) echo 233000 ;;             # §2 -b 0 -l 64
    iperf3_udp1400_pps) echo 227000 ;;           # §2 -b 0 -l 1400
    pace_timerfd_p99_us) echo 95 ;;              # §3 timerfd at 100 us, p99
    *) echo "lib.sh: no anchor $1" >&2; return 1 ;;
  esac
}

# is_num X: X is a finite number > 0 (not "", "nan", "inf", "0", "failed").
is_num() {
  [[ ${1:-} =~ ^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] && awk -v x="$1" 'BEGIN { exit !(x + 0 > 0) }'
}

# num_or X WORD: X when it is a number, else WORD — so that no figure line
# prints "nan".
num_or() { if is_num "${1:-}"; then echo "$1"; else echo "$2"; fi; }

# ratio A B: A/B with two decimals, or "-" when either is not a number.
ratio() {
  if is_num "${1:-}" && is_num "${2:-}"; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'
  else echo "-"; fi
}

# ref_is KIND PATH: PATH is the program KIND, by what it says of itself.
# On failure WHY holds a one-line reason.
ref_is() {
  local kind=$1 path=${2:-} out=""
  WHY=""
  if [ -z "$path" ] || [ ! -x "$path" ]; then WHY="$kind not installed (${path:-no path})"; return 1; fi
  case $kind in
    tftpd-hpa) out=$(timeout 5 "$path" -V 2>&1 < /dev/null | head -1); [[ $out == "tftp-hpa "* ]] ;;
    atftpd) out=$(timeout 5 "$path" --version 2>&1 < /dev/null | head -1); [[ $out == "atftp-"*"(server)"* ]] ;;
    atftp) out=$(timeout 5 "$path" --version 2>&1 < /dev/null | head -1); [[ $out == "atftp-"*"(client)"* ]] ;;
    iperf3) out=$(timeout 5 "$path" --version 2>&1 < /dev/null | head -1); [[ $out == "iperf 3."* ]] ;;
    nc-openbsd) out=$(timeout 5 "$path" -h 2>&1 < /dev/null | head -1); [[ $out == "OpenBSD netcat"* ]] ;;
    curl-tftp)
      out=$(timeout 5 "$path" --version 2>&1 < /dev/null)
      [[ $out == "curl "* && $(grep '^Protocols:' <<< "$out") == *" tftp"* ]] || { out=$(head -1 <<< "$out" | cut -d' ' -f1-2)' without tftp'; false; } ;;
    *) WHY="lib.sh: unknown reference kind $kind"; return 1 ;;
  esac && return 0
  WHY="$path is not $kind: it says '${out:-nothing}'"
  return 1
}

# find_ref VAR KIND CANDIDATE...: VAR = the first candidate (an absolute path
# or a command name looked up in PATH) that is KIND; else VAR is empty and
# VAR_WHY says why (the reason of the first candidate that exists).
find_ref() {
  local var=$1 kind=$2 c p why=""
  shift 2
  for c in "$@"; do
    p=$c; [[ $c == */* ]] || p=$(command -v "$c" 2>/dev/null) || p=""
    [ -n "$p" ] || continue
    if ref_is "$kind" "$p"; then printf -v "$var" '%s' "$p"; printf -v "${var}_WHY" '%s' ""; return 0; fi
    [ -n "$why" ] || why=$WHY
  done
  printf -v "$var" '%s' ""
  printf -v "${var}_WHY" '%s' "${why:-$kind not found (looked for: $*)}"
  return 1
}

# skip LABEL WHY: the verdict line of a goal that was not measured.
skip() { echo "GOAL $1 | SKIPPED ($2)"; }

# judge LABEL MINE REF ANCHOR_KEY GOAL [WHAT]: the verdict of MINE/REF >= GOAL.
# No verdict (SUSPECT) when MINE or REF is not a positive number or REF lies
# outside [anchor / LIB_SANE_FACTOR, anchor * LIB_SANE_FACTOR].
judge() {
  local label=$1 mine=${2:-} ref=${3:-} key=$4 goal=$5 what=${6:-ratio} a
  if ! is_num "$mine"; then echo "GOAL $label | SUSPECT (our figure is '${mine:-empty}'): no verdict"; return; fi
  if ! is_num "$ref"; then echo "GOAL $label | SUSPECT (reference figure is '${ref:-empty}'): no verdict"; return; fi
  a=$(anchor "$key") || { echo "GOAL $label | SUSPECT (no anchor $key): no verdict"; return; }
  if awk -v r="$ref" -v a="$a" -v f="$LIB_SANE_FACTOR" 'BEGIN { exit !(r < a / f || r > a * f) }'; then
    echo "GOAL $label | SUSPECT (reference $ref is outside ${LIB_SANE_FACTOR}x of its anchor $a, RESULTS.md): $what $(ratio "$mine" "$ref"), no verdict"
    return
  fi
  local r; r=$(ratio "$mine" "$ref")
  if awk -v r="$r" -v g="$goal" 'BEGIN { exit !(r + 0 >= g + 0) }'; then
    echo "GOAL $label | $what $r >= $goal: PASS"
  else
    echo "GOAL $label | $what $r >= $goal: FALLS SHORT"
  fi
}
