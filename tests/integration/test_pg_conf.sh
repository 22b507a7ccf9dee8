#!/usr/bin/env bash
# The replication limits dbpki writes (templates/postgres/common.sh,
# write_pg_conf): enough WAL senders and slots for join to clone every
# replica at once, PostgreSQL's default of 10 as the floor, and never lower
# than a value the owner of postgresql.conf set.  The node library runs in
# a real sh against a scratch data directory; no server is needed.
set -euo pipefail
root=${DBPKI_ROOT:?DBPKI_ROOT}
build=${DBPKI_BUILD:?DBPKI_BUILD}
render=$build/tools/tplrender
[ -x "$render" ] || { echo "missing $render"; exit 1; }
work=$(mktemp -d /tmp/dbpki-pgconf.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

{
	cat "$root/templates/postgres/common.sh"
	echo 'write_pg_conf'
	echo 'grep -E "^max_(wal_senders|replication_slots) = " "$CERT_DIR/postgresql.dbpki.conf"'
} >"$work/t.sh"

# limits REPLICAS [postgresql.conf lines...] -> "senders slots"
limits() {
	local replicas=$1 d
	shift
	d=$(mktemp -d "$work/node.XXXX")
	mkdir "$d/pgdata" "$d/certs"
	printf '%s\n' "# the owner's settings" "$@" >"$d/pgdata/postgresql.conf"
	"$render" "$work/t.sh" node node1 role primary cluster c host db1.example.com \
		address 127.0.0.1 port 5432 pgdata "$d/pgdata" bindir /usr/bin \
		cert_dir "$d/certs" socket_dir "$d" layout pgdata pg_cluster "" listen_localhost auto start_conf keep allowed_networks 127.0.0.1/32 \
		release_id r1 release_dir "$d/certs/releases/r1" db_user dbclient \
		primary_host db1.example.com primary_address 127.0.0.1 primary_port 5432 \
		replicas "$replicas" sentinel END run_id x >"$d/script.sh" ||
		fail "rendering common.sh failed"
	sh "$d/script.sh" >"$d/out" 2>"$d/err" || fail "write_pg_conf failed: $(cat "$d/err")"
	grep -q "include '$d/certs/postgresql.dbpki.conf'" "$d/pgdata/postgresql.conf" ||
		fail "postgresql.conf does not include dbpki's file"
	echo "$(sed -n 's/^max_wal_senders = //p' "$d/out") $(sed -n 's/^max_replication_slots = //p' "$d/out")"
}

expect() { # want replicas conf-lines...
	local want=$1 got
	shift
	got=$(limits "$@")
	[ "$got" = "$want" ] || fail "replicas '$1' ${*:2}: got senders/slots '$got', want '$want'"
}

# 2 per cloning replica plus 4 to spare; slots 1 per replica plus 4; floor 10.
expect "10 10" ""
expect "10 10" "r1,r2"
expect "16 10" "r1,r2,r3,r4,r5,r6"
expect "44 24" "$(seq -s, -f 'r%g' 1 20)"
echo "ok: senders and slots follow the replica count, 10 at least"

# The owner's higher values stand, in any of postgresql.conf's spellings;
# lower ones do not lower dbpki's; commented-out lines do not count.
expect "40 30" "r1,r2" "max_wal_senders = 40" "max_replication_slots = '30'"
expect "50 10" "r1,r2,r3,r4,r5,r6" "max_wal_senders=20" "max_wal_senders 50"
expect "16 10" "r1,r2,r3,r4,r5,r6" "max_wal_senders = 12"
expect "16 10" "r1,r2,r3,r4,r5,r6" "#max_wal_senders = 90"
echo "ok: a higher value set by the owner of postgresql.conf is kept, a lower one is raised"
