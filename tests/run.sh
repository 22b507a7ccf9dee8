#!/usr/bin/env bash
# Runs one layer of the test suite and prints the closing line
# "N passed, N failed" that CI reads.
#   tests/run.sh unit BUILD          every cmocka binary in BUILD/tests/
#   tests/run.sh integration BUILD   every tests/integration/test_*.sh
#   tests/run.sh all BUILD           both, with one closing line
# VALGRIND=1 runs the unit binaries under valgrind (errors and leaks fail).
# ONLY=pattern runs only the tests whose name contains pattern.
set -u
layer=${1:?layer}
build=${2:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
passed=0
failed=0
failed_names=()

run_one() {
	local name=$1
	shift
	local log="$root/$build/test-logs/$name.log"
	mkdir -p "$(dirname "$log")"
	local t0=$SECONDS
	if "$@" >"$log" 2>&1; then
		passed=$((passed + 1))
		printf 'PASS  %-40s %3ds\n' "$name" $((SECONDS - t0))
	else
		failed=$((failed + 1))
		failed_names+=("$name")
		printf 'FAIL  %-40s %3ds   (log: %s)\n' "$name" $((SECONDS - t0)) "$log"
		tail -n 30 "$log" | sed 's/^/      | /'
	fi
}

run_unit() {
	for bin in "$root/$build"/tests/test_*; do
		[ -x "$bin" ] || continue
		name=$(basename "$bin")
		[ -n "${ONLY:-}" ] && [[ $name != *"$ONLY"* ]] && continue
		if [ "${VALGRIND:-0}" = 1 ]; then
			run_one "valgrind:$name" valgrind --quiet --error-exitcode=99 \
				--leak-check=full --errors-for-leak-kinds=definite,indirect \
				"$bin"
		else
			run_one "$name" "$bin"
		fi
	done
}

run_integration() {
	# A test that runs make (test_install, test_fresh_root) must see what a
	# user's shell has, not the variables of the make that called us: under
	# `make check-asan-all`, make exports its command line (SAN=1,
	# BUILD=build-asan, OPT) both in MAKEFLAGS and as plain variables.
	unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES BUILD SAN OPT EXTRA_CFLAGS
	export DBPKI_ROOT="$root"
	export DBPKI="$root/$build/dbpki"
	export DBPKI_BUILD="$root/$build"
	for t in "$root"/tests/integration/test_*.sh; do
		[ -f "$t" ] || continue
		name=$(basename "$t" .sh)
		[ -n "${ONLY:-}" ] && [[ $name != *"$ONLY"* ]] && continue
		run_one "$name" bash "$t"
	done
}

# After the integration tests: no test's output (dbpki's messages, node
# output, journals the tests print) may hold private key material.
scan_logs() {
	local hits
	hits=$(grep -l -E -e '-----BEGIN [A-Z ]*PRIVATE KEY-----' \
		"$root/$build"/test-logs/*.log 2>/dev/null || true)
	if [ -z "$hits" ]; then
		passed=$((passed + 1))
		printf 'PASS  %-40s\n' "no key material in any test log"
	else
		failed=$((failed + 1))
		failed_names+=("key-material-in-logs")
		printf 'FAIL  %-40s %s\n' "key material in test logs:" "$hits"
	fi
}

case $layer in
unit) run_unit ;;
integration)
	run_integration
	[ -n "${ONLY:-}" ] || scan_logs
	;;
all)
	run_unit
	run_integration
	[ -n "${ONLY:-}" ] || scan_logs
	;;
*)
	echo "usage: $0 unit|integration|all BUILD" >&2
	exit 2
	;;
esac

echo
echo "$layer: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { printf 'failed: %s\n' "${failed_names[*]}"; exit 1; }
