#!/usr/bin/env bash
# Issue 5, part B: `dbpki rotate` refuses, before changing anything, when it
# cannot tell which node's data to keep; --primary tells it.
#
# A small lab (primary, replica, client) built with pg_lib.sh (not dbpki).
#  1. the inventory names the replica as primary: exit 2, the message names
#     the real primary and suggests --primary; nothing changed anywhere
#     (node files, running servers, the local store);
#  2. --primary naming an unknown node, a client node, or a node in
#     recovery: exit 2, nothing changed;
#  3. the replica is promoted (split brain): two nodes in production, exit 2
#     naming both;
#  4. --primary node1 with that same wrong inventory and a store whose dbca
#     has expired: rotate goes on; node1 keeps every row, node2 (timeline 2)
#     is re-cloned from node1 with its data directory moved aside, the
#     expired dbca is archived in the store (never deleted) and replaced.
#  5. the primary's postgresql.conf would not load after a restart: exit 2
#     before anything is stopped;
#  6. node2's sshd is down: exit 1 naming node2, nothing changed.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/integration/pg_lib.sh"
NET=127.0.56
lab_dir

lab_up $NET primary,replica,client
nd() { echo "$LAB/nodes/node$1"; }
pg_make_certs "$LAB" node1 node1.lab.test $NET.11
pg_make_certs "$LAB" node2 node2.lab.test $NET.12
pg_start_primary "$(nd 1)" $NET.11 5432
pg_local_psql "$(nd 1)" "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g" >/dev/null
pg_start_replica "$(nd 2)" $NET.12 5432 node2 node1.lab.test $NET.11 5432
for i in $(seq 1 60); do
	[ "$(pg_local_psql "$(nd 2)" 'SELECT count(*) FROM t' 2>/dev/null || true)" = 500 ] && break
	sleep 0.5
done
[ "$(pg_local_psql "$(nd 2)" 'SELECT count(*) FROM t')" = 500 ] || fail "node2 did not get the rows"
pass "pg_lib cluster: node1 primary, node2 streaming replica, 500 rows"

# The inventory gets the roles the wrong way round.
WRONG=$LAB/wrong.ini
sed -e '/^\[node node1\]/,/^role/ s/^role = primary/role = replica/' \
	-e '/^\[node node2\]/,/^role/ s/^role = replica/role = primary/' "$INI" >"$WRONG"
chmod 600 "$WRONG"
grep -A3 '^\[node node2\]' "$WRONG" | grep -q 'role = primary' || fail "could not write the wrong inventory"

# What "nothing changed" means: the files of every node, which servers run
# (the postmaster.pid files), and the local store.
snapshot() {
	{
		for n in 1 2 3; do
			find "$(nd $n)" -path '*/pgdata/*' -prune -o -print | sort
			for f in "$(nd $n)"/pgdata/*.conf "$(nd $n)"/pgdata/postmaster.pid "$(nd $n)"/pgdata/standby.signal; do
				[ -f "$f" ] && md5sum "$f"
			done
		done
		find "$LAB/state" ! -name lock | sort
	} 2>/dev/null
}
unchanged() { # what
	[ "$(snapshot)" = "$SNAP" ] || { diff <(echo "$SNAP") <(snapshot) | head -n 20; fail "$1 changed something"; }
}
rotate() { # expected-exit args...
	local want=$1
	shift
	set +e
	"$DBPKI" rotate "$@" >"$LAB/out.txt" 2>&1
	rc=$?
	set -e
	[ "$rc" = "$want" ] || { cat "$LAB/out.txt"; fail "rotate $* exited $rc, not $want"; }
}
SNAP=$(snapshot)

rotate 2 -c "$WRONG"
cat "$LAB/out.txt"
grep -q '^found: primary: node1 (in production, timeline 1); replica: node2 (in archive recovery, streaming)$' "$LAB/out.txt" ||
	fail "rotate did not print what it found"
grep -q 'the inventory says node2 is the primary, but it is not (in archive recovery, streaming); node1 is (in production, timeline 1). Nothing was changed' "$LAB/out.txt" ||
	fail "the refusal does not name the real primary"
grep -q -- '--primary node1' "$LAB/out.txt" || fail "the refusal does not suggest --primary node1"
unchanged "a refused rotate (wrong primary)"
[ ! -e "$LAB/state/ca" ] || fail "a refused rotate created a CA"
rotate 2 -c "$WRONG" --json
grep -q '^{"event":"probe","node":"node1","claim":"primary","running":true,"timeline":1,' "$LAB/out.txt" &&
	grep -q '^{"event":"probe","node":"node2","claim":"replica","running":true,' "$LAB/out.txt" ||
	{ cat "$LAB/out.txt"; fail "--json: no probe events"; }
unchanged "a refused rotate (wrong primary, --json)"
pass "inventory names the replica: exit 2 naming node1 and --primary node1 (text and --json); nothing changed"

rotate 2 -c "$INI" --primary node9
grep -q -- '--primary node9: no such node' "$LAB/out.txt" || fail "unknown --primary: $(cat "$LAB/out.txt")"
rotate 2 -c "$INI" --primary node3
grep -q -- '--primary node3: node3 is a client node, not a database node' "$LAB/out.txt" || fail "client --primary: $(cat "$LAB/out.txt")"
rotate 2 -c "$INI" --primary node2
grep -q -- '--primary node2: node2 is in archive recovery, streaming, not a primary' "$LAB/out.txt" ||
	fail "--primary on a replica: $(cat "$LAB/out.txt")"
rotate 2 -c "$INI" --primary
rotate 2 -c "$INI" --skip-node node9
unchanged "a refused --primary"
pass "--primary unknown, client, in recovery, missing: exit 2; nothing changed"

# Split brain: node2 is promoted while node1 still runs.
pg_as "$PG_BINDIR/pg_ctl" -D "$(nd 2)/pgdata" -w -t 60 promote >/dev/null
for i in $(seq 1 60); do
	[ "$(pg_local_psql "$(nd 2)" 'SELECT pg_is_in_recovery()')" = f ] && break
	sleep 0.5
done
pg_local_psql "$(nd 2)" "INSERT INTO t VALUES (100001, 'written on node2 only')" >/dev/null
SNAP=$(snapshot)
rotate 2 -c "$INI"
cat "$LAB/out.txt"
grep -q '2 nodes claim to be primary: node1 (in production, timeline 1), node2 (in production, timeline 2); nothing was changed' "$LAB/out.txt" ||
	fail "two primaries: not both named"
grep -q -- '--primary NAME' "$LAB/out.txt" || fail "two primaries: no hint to --primary"
unchanged "a refused rotate (two primaries)"
pass "two nodes in production: exit 2 naming node1 (timeline 1) and node2 (timeline 2); nothing changed"

# The store holds an expired dbca (made by hand: openssl ca, dates past).
mkdir -p -m 700 "$LAB/state/ca" "$LAB/old"
cat >"$LAB/old/ca.cnf" <<EOF
[ca]
default_ca = old
[old]
database = $LAB/old/index.txt
new_certs_dir = $LAB/old
serial = $LAB/old/serial
default_md = sha256
policy = pol
[pol]
commonName = supplied
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
EOF
: >"$LAB/old/index.txt"
echo 01 >"$LAB/old/serial"
(umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$LAB/state/ca/dbca.key" -out "$LAB/old/ca.csr" -subj "/CN=lab dbca" \
	-config "$LAB/old/ca.cnf" 2>/dev/null)
openssl ca -batch -notext -config "$LAB/old/ca.cnf" -selfsign -keyfile "$LAB/state/ca/dbca.key" \
	-in "$LAB/old/ca.csr" -out "$LAB/state/ca/dbca.crt" -extensions v3_ca \
	-startdate "$(date -u -d '800 days ago' +%Y%m%d%H%M%SZ)" \
	-enddate "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" >/dev/null 2>&1
old_ca=$(md5sum <"$LAB/state/ca/dbca.crt")
old_key=$(md5sum <"$LAB/state/ca/dbca.key")
sum="SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM t"
before=$(pg_local_psql "$(nd 1)" "$sum")

rotate 0 -c "$WRONG" --primary node1 --json
cat "$LAB/out.txt"
grep -Eq '^\{"event":"downtime","node":"node1","step":"restart","ms":[0-9]+\}$' "$LAB/out.txt" ||
	fail "--json: no downtime event"
grep -Eq '^\{"event":"node","step":"restart",.*"node":"node1","result":"ok",.*"downtime_ms":[0-9]+\}$' "$LAB/out.txt" ||
	fail "--json: the restart event has no downtime_ms"
grep -q -- '--primary node1: for this run node1 is the primary and node2' "$LAB/out.txt" || fail "the override is not announced"
grep -q 'node2 (in production, timeline 2) also claim(s) to be primary' "$LAB/out.txt" || fail "the other primary is not named"
grep -q "the store's dbca EXPIRED on" "$LAB/out.txt" || fail "the expired dbca is not announced"
pass "--primary node1 over the wrong inventory and two primaries: rotate exit 0"

arch=$(ls -d "$LAB"/state/ca/archive/* | head -n 1)
[ "$(md5sum <"$arch/dbca.crt")" = "$old_ca" ] && [ "$(md5sum <"$arch/dbca.key")" = "$old_key" ] ||
	fail "the expired dbca was not archived intact"
[ "$(md5sum <"$LAB/state/ca/dbca.crt")" != "$old_ca" ] || fail "the dbca was not replaced"
openssl x509 -in "$LAB/state/ca/dbca.crt" -noout -checkend 86400 >/dev/null || fail "the new dbca is not valid"
pass "the expired dbca is archived intact in $(basename "$arch"), a new one replaced it"

C=$(nd 3)/certs/current
q() { psql -X -At -d "host=node$1.lab.test hostaddr=$NET.1$1 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$C/dbca.crt sslcert=$C/client.crt sslkey=$C/client.key gssencmode=disable connect_timeout=5" -c "$2"; }
[ "$(q 1 'SELECT pg_is_in_recovery()')" = f ] || fail "node1 is not the primary"
[ "$(q 1 "$sum")" = "$before" ] || fail "node1 lost rows"
[ "$(q 2 'SELECT pg_is_in_recovery()')" = t ] || fail "node2 is not a replica of node1"
[ "$(q 2 "$sum")" = "$before" ] || fail "node2 does not hold node1's rows"
[ "$(q 2 'SELECT count(*) FROM t WHERE id = 100001')" = 0 ] || fail "node2 still has its split-brain row"
old2=$(ls -d "$(nd 2)"/pgdata.dbpki-old-* | head -n 1)
[ -s "$old2/PG_VERSION" ] || fail "node2's old data directory is not kept aside"
pass "node1 kept every row; node2 re-cloned from it, its split-brain data kept aside as $(basename "$old2")"

# A postgresql.conf that would not load after a restart (a typo the running
# server has not read yet): refused before anything is stopped.
echo "max_connections = plenty" | pg_as tee -a "$(nd 1)/pgdata/postgresql.conf" >/dev/null
SNAP=$(snapshot)
rotate 2 -c "$INI"
grep -q 'the primary node1 could not start again: its configuration does not load (postgres -D .* -C port: .*invalid value for parameter "max_connections": "plenty".*); nothing was changed' "$LAB/out.txt" ||
	{ cat "$LAB/out.txt"; fail "a configuration that does not load is not reported"; }
unchanged "a refused rotate (configuration does not load)"
[ "$(q 1 'SELECT count(*) FROM t')" = 500 ] && [ "$(q 2 'SELECT pg_is_in_recovery()')" = t ] ||
	fail "the cluster does not serve any more"
pass "the primary's postgresql.conf would not load: exit 2 naming the line's error; nothing changed, all serving"
pg_as sed -i '/^max_connections = plenty$/d' "$(nd 1)/pgdata/postgresql.conf"

# A database node that cannot be asked: refuse, naming it, change nothing.
pid=$(awk '$1 == "sshd-node2" { print $2 }' "$LAB/pids")
[[ $pid =~ ^[0-9]+$ ]] && kill "$pid"
SNAP=$(snapshot)
rotate 1 -c "$INI"
grep -q 'rotate: 1 database node(s) could not be asked whether they are the primary, so nothing was changed on any node: .*node2' "$LAB/out.txt" ||
	{ cat "$LAB/out.txt"; fail "an unreachable node is not named"; }
unchanged "a refused rotate (node2 unreachable)"
pass "node2 unreachable over SSH: exit 1 naming node2; nothing changed"
