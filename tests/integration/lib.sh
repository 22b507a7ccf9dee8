# tests/integration/lib.sh: what the lab-based integration tests share.
#
#   . "${DBPKI_ROOT:?}/tests/integration/lib.sh"
#   NET=127.0.40
#   lab_dir                       # $LAB: a fresh directory, gone on exit
#   lab_up "$NET" primary,replica,client      # the lab; $INI its inventory
#
# On exit the lab's processes are stopped (each by its PID, lab.sh down) and
# $LAB is removed, after the test's own on_exit function if it defines one
# (for the background processes it started).  lab_dir cms_lab.sh uses the
# CMS console lab instead.
set -euo pipefail
: "${DBPKI:?} ${DBPKI_ROOT:?}"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
pass() { echo "ok: $*"; }

LAB=
INI=
LAB_SCRIPT=lab.sh

lab_cleanup() {
	if declare -F on_exit >/dev/null; then on_exit || true; fi
	[ -n "$LAB" ] || return 0
	"$DBPKI_ROOT/tests/lab/$LAB_SCRIPT" down --dir "$LAB" >/dev/null 2>&1 || true
	rm -rf "$LAB"
}

lab_dir() { # [lab.sh|cms_lab.sh]
	LAB_SCRIPT=${1:-lab.sh}
	LAB=$(mktemp -d /tmp/dbpki-lab.XXXXXX)
	chmod 755 "$LAB" # the lab user reads its nodes' files below it
	trap lab_cleanup EXIT
}

lab_up() { # net roles
	"$DBPKI_ROOT/tests/lab/$LAB_SCRIPT" up --dir "$LAB" --net "$1" --roles "$2"
	INI=$LAB/cluster.ini
}
