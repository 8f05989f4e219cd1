#!/usr/bin/env bash
# benches/lib_test.sh — checks benches/lib.sh with fake references (scripts
# that print what a real tool prints), no network, no root. Run by
# tests/bench_lib.rs; prints "ok N checks" and exits 0, or names the first
# failed check and exits 1.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=benches/lib.sh
. "$HERE/lib.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
N=0
fail() { echo "FAILED: $*"; exit 1; }
expect() { # DESCRIPTION ACTUAL PATTERN (bash glob)
  N=$((N + 1))
  # shellcheck disable=SC2053
  [[ $2 == $3 ]] || fail "$1: got '$2', want '$3'"
}
fake() { # NAME OUTPUT...: an executable at $T/<dir>/NAME printing OUTPUT lines
  mkdir -p "$(dirname "$T/$1")"
  { echo '#!/bin/sh'; shift_out=("${@:2}"); for l in "${shift_out[@]}"; do printf 'echo %q\n' "$l"; done; } > "$T/$1"
  chmod +x "$T/$1"
}

# atftpd's package ships /usr/sbin/in.tftpd -> atftpd (a Debian alternative).
fake atftp-pkg/in.tftpd "atftp-0.8.0 (server)"
fake hpa-pkg/in.tftpd "tftp-hpa 5.2, with remap, with tcpwrappers"
fake atftp-pkg/atftpd "atftp-0.8.0 (server)"
fake bin/iperf3 "iperf 3.12 (cJSON 1.7.15)" "Linux vm 6.18 x86_64"
fake bin/iperf2 "iperf version 2.1.8 (pthreads)"
fake bin/nc "OpenBSD netcat (Debian patchlevel 1.219-1)"
fake trad/nc "[v1.10-47]"
fake bin/curl "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1" "Protocols: dict file ftp http https tftp"
fake notftp/curl "curl 8.0 (x86_64-pc-linux-gnu)" "Protocols: http https"

ref_is tftpd-hpa "$T/atftp-pkg/in.tftpd"; expect "atftpd's in.tftpd is not tftpd-hpa" "$?" 1
expect "the reason quotes what it said" "$WHY" "*is not tftpd-hpa*atftp-0.8.0 (server)*"
ref_is tftpd-hpa "$T/hpa-pkg/in.tftpd"; expect "tftpd-hpa's in.tftpd is" "$?" 0
ref_is atftpd "$T/atftp-pkg/atftpd"; expect "atftpd is atftpd" "$?" 0
ref_is atftpd "$T/hpa-pkg/in.tftpd"; expect "tftpd-hpa is not atftpd" "$?" 1
ref_is iperf3 "$T/bin/iperf3"; expect "iperf3" "$?" 0
ref_is iperf3 "$T/bin/iperf2"; expect "iperf2 is not iperf3" "$?" 1
ref_is nc-openbsd "$T/bin/nc"; expect "OpenBSD nc" "$?" 0
ref_is nc-openbsd "$T/trad/nc"; expect "traditional nc is not OpenBSD's" "$?" 1
ref_is curl-tftp "$T/bin/curl"; expect "curl with tftp" "$?" 0
ref_is curl-tftp "$T/notftp/curl"; expect "curl without tftp" "$?" 1
ref_is iperf3 "$T/nowhere/iperf3"; expect "a missing program" "$?" 1
expect "a missing program's reason" "$WHY" "iperf3 not installed*"

find_ref H tftpd-hpa "$T/atftp-pkg/in.tftpd"; expect "find_ref refuses atftpd's in.tftpd" "$?" 1
expect "find_ref leaves the variable empty" "$H" ""
expect "find_ref gives the reason" "$H_WHY" "*is not tftpd-hpa*"
expect "the reason becomes SKIPPED" "$(skip "TFTP vs tftpd-hpa" "$H_WHY")" "GOAL TFTP vs tftpd-hpa | SKIPPED (*is not tftpd-hpa*)"
find_ref H tftpd-hpa "$T/atftp-pkg/in.tftpd" "$T/hpa-pkg/in.tftpd"; expect "find_ref takes the next candidate" "$H" "$T/hpa-pkg/in.tftpd"
expect "find_ref clears the reason" "$H_WHY" ""
PATH="$T/bin:$PATH" find_ref I iperf3 iperf3; expect "find_ref looks names up in PATH" "$I" "$T/bin/iperf3"

expect "PASS" "$(judge X 20000 15000 tftpd_hpa_512_blocks 1.1)" "GOAL X | ratio 1.33 >= 1.1: PASS"
expect "FALLS SHORT" "$(judge X 15000 15000 tftpd_hpa_512_blocks 1.1)" "GOAL X | ratio 1.00 >= 1.1: FALLS SHORT"
# The run of issue 17: atftpd measured as "tftpd-hpa" at 595 blocks/s.
expect "a tenth of the anchor is SUSPECT" "$(judge X 7354 595 tftpd_hpa_1468_blocks 1.1)" "GOAL X | SUSPECT (reference 595 is outside*no verdict"
expect "ten times the anchor is SUSPECT" "$(judge X 7354 300000 tftpd_hpa_1468_blocks 1.1)" "GOAL X | SUSPECT*no verdict"
expect "a NaN reference is SUSPECT" "$(judge X 7354 nan tftpd_hpa_1468_blocks 1.1)" "GOAL X | SUSPECT (reference figure is 'nan'): no verdict"
expect "a zero reference is SUSPECT" "$(judge X 7354 0 tftpd_hpa_1468_blocks 1.1)" "GOAL X | SUSPECT (reference figure is '0'): no verdict"
expect "an empty reference is SUSPECT" "$(judge X 7354 "" tftpd_hpa_1468_blocks 1.1)" "GOAL X | SUSPECT*no verdict"
expect "our NaN is SUSPECT" "$(judge X nan 15000 tftpd_hpa_1468_blocks 1.1)" "GOAL X | SUSPECT (our figure is 'nan'): no verdict"
expect "an unknown anchor gives no verdict" "$(judge X 1 1 no_such_anchor 1.1 2>/dev/null)" "GOAL X | SUSPECT (no anchor*"
expect "ratio of nan is -" "$(ratio 1 nan)" "-"
expect "ratio" "$(ratio 3 2)" "1.50"
expect "num_or keeps numbers" "$(num_or 1.5e3 failed)" "1.5e3"
expect "num_or replaces nan" "$(num_or nan failed)" "failed"
for k in tftpd_hpa_512_blocks tftpd_hpa_1468_blocks atftpd_w16_1468_blocks rr_udp_1_req rr_udp_16_req iperf3_tcp_gbit nc_tcp_gbit; do
  expect "anchor $k is a number" "$(is_num "$(anchor $k)" && echo yes)" yes
done
# No verdict line may ever be PASS for a SUSPECT or SKIPPED input.
for bad in nan 0 "" 1 inf -5; do
  out=$(judge X 1e9 "$bad" rr_udp_1_req 0.9)
  expect "no PASS for reference '$bad'" "$out" "*SUSPECT*"
done
echo "ok $N checks"
