# ssh_testlib.sh: shared pieces of tests/integration/test_ssh_*.sh.
# Source it from bash after setting nothing; it reads DBPKI_ROOT and
# DBPKI_BUILD (tests/run.sh exports both).
#
#   lab_start 127.0.2N primary,replica   # sets LABDIR, INI; down on exit
#   inv NAME 's/a/b/' ...                # LABDIR/NAME.ini (0600), edited
#   run_tool RC sshtool-args...          # runs sshtool, checks its exit code;
#                                        # output in $OUT, stderr in $ERR

set -u
ROOT=${DBPKI_ROOT:?DBPKI_ROOT not set}
BUILD=${DBPKI_BUILD:?DBPKI_BUILD not set}
SSHTOOL=$BUILD/tools/sshtool
LABSH=$ROOT/tests/lab/lab.sh
LABDIR=
INI=
OUT=
ERR=
T_STARTED=$SECONDS

fail() {
	echo "FAIL: $*"
	[ -n "$ERR" ] && echo "  last stderr: $ERR"
	exit 1
}

ok() {
	echo "ok   $*"
}

lab_stop() {
	local rc=$?
	if [ -n "$LABDIR" ]; then
		"$LABSH" down --dir "$LABDIR" >/dev/null 2>&1 ||
		    echo "warning: lab down failed in $LABDIR"
		rm -rf "$LABDIR"
	fi
	exit $rc
}

lab_start() {
	[ -x "$SSHTOOL" ] || fail "$SSHTOOL not built (make build/tools/sshtool)"
	LABDIR=$(mktemp -d /tmp/dbpki-lab.XXXXXX) || fail "mktemp"
	chmod 755 "$LABDIR"
	trap lab_stop EXIT
	trap 'exit 130' INT TERM
	"$LABSH" up --dir "$LABDIR" --net "$1" --roles "$2" >/dev/null ||
	    fail "lab up on $1"
	INI=$LABDIR/cluster.ini
	LABUSER=$("$LABSH" user)
}

# A variant of the lab's inventory with sed expressions applied.
inv() {
	local name=$1 f
	shift
	f=$LABDIR/$name.ini
	cp "$INI" "$f"
	chmod 600 "$f"
	for e in "$@"; do
		sed -i -e "$e" "$f"
	done
	echo "$f"
}

# run_tool WANT_RC [sshtool args...] (stdin passes through)
run_tool() {
	local want=$1 rc
	shift
	OUT=$("$SSHTOOL" "$@" 2>"$LABDIR/.err")
	rc=$?
	ERR=$(cat "$LABDIR/.err")
	[ "$rc" -eq "$want" ] ||
	    fail "sshtool $* exited $rc, expected $want"
}

has() {
	grep -qF -- "$2" <<<"$1"
}

node_pid() {
	awk -v n="sshd-$1" '$1 == n { print $2 }' "$LABDIR/pids"
}
