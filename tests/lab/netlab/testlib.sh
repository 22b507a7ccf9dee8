# shellcheck shell=bash
# tests/lab/netlab/testlib.sh: what integration tests on the netlab share
# (the lab of tests/lab/netlab.sh, issue 11).  Sourced, after
# tests/integration/lib.sh (for fail/pass and $DBPKI, $DBPKI_ROOT):
#
#   . "${DBPKI_ROOT:?}/tests/integration/lib.sh"
#   . "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"
#   netlab_up node1:primary:pgdata node2:replica:pgdata node3:client
#       # $LAB (the lab directory), $INI (its cluster.ini), gone on exit
#   dbpki bootstrap -c "$INI"    # dbpki, run on the admin side
#   adm psql ...                 # any command on the admin side
#   on node1 CMD                 # CMD over SSH as node1's login user
#   as node1 CMD...              # CMD as root inside node1 (netlab exec)
#   nfs node1                    # host path of node1's files (its "/")
#
# A cluster built by hand, not by dbpki (for rotate): tests/lab/netlab/pg_lib.sh.
#
# The admin side resolves NODE.lab.test through the lab's /etc/hosts; the
# nodes' files are visible to the test (as root) under nfs NODE.  On exit
# (after the test's own on_exit, if it defines one) the lab goes down:
# every node powered off by its PID, namespaces and files removed.
NETLAB=$DBPKI_ROOT/tests/lab/netlab.sh

netlab_cleanup() {
	if declare -F on_exit >/dev/null; then on_exit || true; fi
	[ -n "${LAB:-}" ] || return 0
	[ -f "$LAB/lab.conf" ] && "$NETLAB" down --dir "$LAB" >/dev/null 2>&1
	rm -rf "$LAB"
}

netlab_up() { # NODE-SPEC...: the lab, and its inventory in $INI
	local a=()
	[ "$(id -u)" -eq 0 ] || fail "the netlab needs root (network namespaces); it never skips"
	LAB=$(mktemp -d /var/tmp/dbpki-netlab.XXXXXX)
	chmod 755 "$LAB"
	export NETLAB_DIR=$LAB
	trap netlab_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM # so that netlab_cleanup runs then too
	for s in "$@"; do a+=(--node "$s"); done
	"$NETLAB" up "${a[@]}" || fail "netlab.sh up failed (see $LAB/nodes/*/console.log)"
	# shellcheck disable=SC2034 # INI is the test's
	INI=$("$NETLAB" inventory) || fail "netlab.sh inventory failed"
}

adm() { "$NETLAB" exec admin -- "$@"; }
dbpki() { adm "$DBPKI" "$@"; }
on() {
	local n=$1
	shift
	"$NETLAB" ssh "$n" -- "$@"
}
as() {
	local n=$1
	shift
	"$NETLAB" exec "$n" -- "$@"
}
nfs() { echo "$LAB/nodes/$1/fs"; }
naddr() { sed -n "s/^ADDR${2:-4}=//p" "$LAB/nodes/$1/ctl/node.conf"; }

# Load through an operation: pgbench_start runs pgbench on the admin side in
# the background (output $LAB/pgbench.txt, PID $PGB_PID, which the test's
# on_exit kills); pgbench_done WHAT, after WHAT ran, asserts that the load
# outlived it and that pgbench exited 0 with transactions and none failed.
PGB_PID=
pgbench_start() { # PGENV-and-pgbench-args...
	adm "$@" >"$LAB/pgbench.txt" 2>&1 &
	PGB_PID=$!
	sleep 1
	kill -0 "$PGB_PID" 2>/dev/null || { cat "$LAB/pgbench.txt"; fail "pgbench did not start"; }
}
pgbench_done() { # WHAT
	local rc=0 done_tx
	kill -0 "$PGB_PID" 2>/dev/null || fail "pgbench ended before the $1 did; the load did not cover it"
	wait "$PGB_PID" || rc=$?
	PGB_PID=
	cat "$LAB/pgbench.txt"
	[ "$rc" = 0 ] || fail "pgbench exited $rc"
	! grep -Eiq 'error|abort|fatal|could not|failed:' "$LAB/pgbench.txt" || fail "pgbench reported errors"
	grep -q '^number of failed transactions: 0 (' "$LAB/pgbench.txt" || fail "pgbench reports failed transactions"
	done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$LAB/pgbench.txt")
	[ "${done_tx:-0}" -gt 0 ] || fail "pgbench processed no transaction"
	pass "pgbench -C (from the admin side, by name) over the whole $1: $done_tx transactions, 0 failed"
}
