#!/usr/bin/env bash
# Runs fuzz targets for a bounded time each, two at a time, at the lowest
# CPU priority, and prints each run's final libFuzzer statistics.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: 600 s, every target)
#
# New corpus entries go to fuzz/corpus-work/<target>/ (ignored by git);
# the checked-in seeds in fuzz/corpus/<target>/ are read, never written.
# Logs: fuzz/logs/<target>.log; crashes: fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
fi
flags=(-O -a --sanitizer none)
cargo +nightly fuzz build "${flags[@]}"
mkdir -p logs
run() {
    local t=$1
    mkdir -p "corpus-work/$t" "corpus/$t"
    nice -n 19 cargo +nightly fuzz run "${flags[@]}" "$t" "corpus-work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=1 \
        >"logs/$t.log" 2>&1 || true
    printf '%s: ' "$t"
    grep -E '^#[0-9]+.*(DONE|pulse)|^stat::(number_of_executed_units|average_exec_per_sec)' "logs/$t.log" | tail -3 | tr '\n' ' '
    grep -m1 -E 'panicked|deadly signal|Test unit written' "logs/$t.log" || echo
}
i=0
for t in "${targets[@]}"; do
    run "$t" &
    i=$((i + 1))
    if [ $((i % 2)) -eq 0 ]; then wait; fi
done
wait
