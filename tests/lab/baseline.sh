#!/usr/bin/env bash
# baseline.sh: an earlier release of dbpki, built from this repository's own
# history, for the upgrade tests ("a store or cluster made by f841af3 keeps
# working").  Never a hand-made copy: the commit is checked out with
# `git worktree` and built by its own Makefile.
#
#   tests/lab/baseline.sh [COMMIT]    prints the path of COMMIT's dbpki
#
# The worktree lives in $DBPKI_BUILD/baseline-COMMIT (tests/run.sh sets
# DBPKI_BUILD), and is built once per build directory: several tests share
# it, serialised by a lock.  The old binary finds its own templates and
# playbooks in that checkout, as it did in its own source tree.
set -euo pipefail
commit=${1:-f841af3}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${DBPKI_BUILD:-$root/build}
dir=$build/baseline-$commit

git -C "$root" cat-file -e "$commit^{commit}" 2>/dev/null || {
	echo "baseline: commit $commit is not in $root's history (a shallow clone?); run: git fetch --unshallow" >&2
	exit 1
}
mkdir -p "$build"
exec 9>"$build/baseline-$commit.lock"
flock 9
if [ ! -x "$dir/build/dbpki" ]; then
	# A half-made worktree from a killed run: start again.
	if [ -e "$dir" ]; then
		git -C "$root" worktree remove --force "$dir" >/dev/null 2>&1 || rm -rf "$dir"
	fi
	git -C "$root" worktree prune
	git -C "$root" worktree add --detach "$dir" "$commit" >/dev/null 2>&1 || {
		echo "baseline: git worktree add $dir $commit failed" >&2
		exit 1
	}
	# -O0: the old binary is only run, never measured, and this halves the
	# build's share of make check.
	if ! make -C "$dir" -j2 OPT="-O0 -g" all >"$dir.log" 2>&1; then
		tail -20 "$dir.log" >&2
		echo "baseline: building $commit failed (log: $dir.log)" >&2
		exit 1
	fi
fi
echo "$dir/build/dbpki"
