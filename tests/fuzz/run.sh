#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD/fuzz for SECONDS each, two at a time,
# starting from the seed corpus in tests/fuzz/corpus/<target>/ (copied, so
# the tree is never written).  Prints PASS/FAIL per target and a closing
# "fuzz: N passed, N failed" line; a crash leaves its input in
# BUILD/fuzz-out/<target>/ and the log next to it.
#   tests/fuzz/run.sh BUILD SECONDS
set -u
build=${1:?build dir}
secs=${2:?seconds}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/$build/fuzz-out
mkdir -p "$out"
passed=0
failed=0

run_target() {
	local t=$1 dir=$out/$1
	rm -rf "$dir"
	mkdir -p "$dir/corpus"
	cp "$root/tests/fuzz/corpus/$t"/* "$dir/corpus/" 2>/dev/null || true
	(cd "$dir" && "$root/$build/fuzz/$t" -max_total_time="$secs" \
		-timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 corpus >"$dir/log" 2>&1)
	echo $? >"$dir/rc"
}

targets=()
for bin in "$root/$build"/fuzz/fuzz_*; do
	[ -x "$bin" ] && targets+=("$(basename "$bin")")
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets in $build/fuzz"; exit 1; }
# Two at a time: the machines this runs on have two cores.
for ((i = 0; i < ${#targets[@]}; i += 2)); do
	run_target "${targets[i]}" &
	[ $((i + 1)) -lt ${#targets[@]} ] && run_target "${targets[i + 1]}" &
	wait
done
for t in "${targets[@]}"; do
	dir=$out/$t
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
	if [ "$(cat "$dir/rc")" = 0 ]; then
		passed=$((passed + 1))
		printf 'PASS  %-40s %ss, %s runs, corpus %s\n' "$t" "$secs" "${runs:-?}" \
			"$(ls "$dir/corpus" | wc -l)"
	else
		failed=$((failed + 1))
		printf 'FAIL  %-40s (log: %s)\n' "$t" "$dir/log"
		grep -E 'ERROR|SUMMARY|Test unit written' "$dir/log" | head -5 | sed 's/^/      | /'
	fi
done
echo
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
