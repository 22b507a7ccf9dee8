#!/usr/bin/env bash
# Issue 11 (port of test_rotate_refuse.sh to the netlab): `dbpki rotate`
# refuses, before changing anything on any machine, when it cannot tell
# which node's data to keep; --primary tells it.
#
# A small lab (primary, replica, client; machines with their own addresses)
# with a cluster built by hand inside the nodes (tests/lab/netlab/pg_lib.sh,
# not dbpki; pg_hba names each machine's address), dbpki run on the admin
# side.
#  1. the inventory names the replica as primary: exit 2, the message names
#     the real primary and suggests --primary; nothing changed anywhere
#     (every node's files, running servers, the local store);
#  2. --primary naming an unknown node, a client node, or a node in
#     recovery: exit 2, nothing changed;
#  3. the replica is promoted (split brain): two nodes in production, exit 2
#     naming both;
#  4. --primary node1 with that same wrong inventory and a store whose dbca
#     has expired: rotate goes on; node1 keeps every row, node2 (timeline 2)
#     is re-cloned from node1 with its data directory moved aside (its
#     split-brain row still in it), streams again from its own address; the
#     expired dbca is archived in the store (never deleted) and replaced.
#  5. the primary's postgresql.conf would not load after a restart: exit 2
#     before anything is stopped;
#  6. node2's sshd is down (stopped by its PID inside the machine), then
#     node2's machine is off (no reply at all): exit 1 naming node2,
#     nothing changed.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/pg_lib.sh"

netlab_up node1:primary:pgdata node2:replica:pgdata node3:client
HOME_DB=/home/dbpkilab # the database nodes' login home, inside each node
nh() { echo "$(nfs "node$1")$HOME_DB"; } # ... and from the test (host side)
npg_make_certs "$LAB/pki" node1
npg_make_certs "$LAB/pki" node2
npg_start_primary node1
npg_psql node1 "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g" >/dev/null
npg_start_replica node2 node1
npg_until 500 npg_psql node2 'SELECT count(*) FROM t' || fail "node2 did not get the rows"
pass "hand-built cluster: node1 primary, node2 streaming replica, 500 rows"

# The inventory gets the roles the wrong way round.
WRONG=$LAB/wrong.ini
sed -e '/^\[node node1\]/,/^role/ s/^role = primary/role = replica/' \
	-e '/^\[node node2\]/,/^role/ s/^role = replica/role = primary/' "$INI" >"$WRONG"
chmod 600 "$WRONG"
grep -A4 '^\[node node2\]' "$WRONG" | grep -q 'role = primary' || fail "could not write the wrong inventory"

# What "nothing changed" means: the files of every machine's login home,
# which servers run (the postmaster.pid files), and the local store.
snapshot() {
	{
		for n in node1 node2 node3; do
			find "$(nfs $n)/home" -path '*/pgdata/*' -prune -o -print | sort
			for f in "$(nfs $n)"/home/*/pgdata/*.conf "$(nfs $n)"/home/*/pgdata/postmaster.pid "$(nfs $n)"/home/*/pgdata/standby.signal; do
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
	rc=0
	dbpki rotate "$@" >"$LAB/out.txt" 2>&1 || rc=$?
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
npg node2 "$NPG_BIN/pg_ctl" -D "$HOME_DB/pgdata" -w -t 60 promote >/dev/null || fail "node2: pg_ctl promote failed"
npg_until f npg_psql node2 'SELECT pg_is_in_recovery()' || fail "node2 was not promoted"
npg_psql node2 "INSERT INTO t VALUES (100001, 'written on node2 only')" >/dev/null
SNAP=$(snapshot)
rotate 2 -c "$INI"
cat "$LAB/out.txt"
grep -q '2 nodes claim to be primary: node1 (in production, timeline 1), node2 (in production, timeline 2); nothing was changed' "$LAB/out.txt" ||
	fail "two primaries: not both named"
grep -q -- '--primary NAME' "$LAB/out.txt" || fail "two primaries: no hint to --primary"
unchanged "a refused rotate (two primaries)"
pass "two nodes in production: exit 2 naming node1 (timeline 1) and node2 (timeline 2); nothing changed"

# The store holds an expired dbca (made by hand: openssl ca, dates past).
npg_hand_ca "$LAB/old" "$(date -u -d '800 days ago' +%Y%m%d%H%M%SZ)" "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" \
	"DNS:unused.lab.test" "/CN=lab dbca"
mkdir -m 700 "$LAB/state/ca"
install -m 600 "$LAB/old/ca.key" "$LAB/state/ca/dbca.key"
install -m 644 "$LAB/old/ca.crt" "$LAB/state/ca/dbca.crt"
old_ca=$(md5sum <"$LAB/state/ca/dbca.crt")
old_key=$(md5sum <"$LAB/state/ca/dbca.key")
sum="SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM t"
before=$(npg_psql node1 "$sum")

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

C=$(nfs node3)/home/dbpkiapp/certs/current
q() { adm psql -X -At -d "host=node$1.lab.test port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$C/dbca.crt sslcert=$C/client.crt sslkey=$C/client.key gssencmode=disable connect_timeout=5" -c "$2"; }
[ "$(q 1 'SELECT pg_is_in_recovery()')" = f ] || fail "node1 is not the primary"
[ "$(q 1 "$sum")" = "$before" ] || fail "node1 lost rows"
[ "$(q 2 'SELECT pg_is_in_recovery()')" = t ] || fail "node2 is not a replica of node1"
npg_until "$before" q 2 "$sum" || fail "node2 does not hold node1's rows"
[ "$(q 2 'SELECT count(*) FROM t WHERE id = 100001')" = 0 ] || fail "node2 still has its split-brain row"
from=$(q 1 "SELECT host(r.client_addr) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND r.application_name = 'node2'")
[ "$from" = "$(naddr node2)" ] || fail "node2 does not stream over SSL from its own address $(naddr node2): '$from'"
old2=$(ls -d "$(nh 2)"/pgdata.dbpki-old-* | head -n 1)
[ -s "$old2/PG_VERSION" ] || fail "node2's old data directory is not kept aside"
tl=$(npg node2 "$NPG_BIN/pg_controldata" "$HOME_DB/$(basename "$old2")" | sed -n "s/^Latest checkpoint's TimeLineID: *//p")
[ "$tl" = 2 ] || fail "node2's old data directory is not its promoted one (timeline '$tl', expected 2)"
pass "node1 kept every row; node2 re-cloned from it, streams from its own address, its split-brain data (timeline 2) kept aside as $(basename "$old2")"

# A postgresql.conf that would not load after a restart (a typo the running
# server has not read yet): refused before anything is stopped.
echo "max_connections = plenty" >>"$(nh 1)/pgdata/postgresql.conf"
SNAP=$(snapshot)
rotate 2 -c "$INI"
grep -q 'the primary node1 could not start again: its configuration does not load (postgres -D .* -C port: .*invalid value for parameter "max_connections": "plenty".*); nothing was changed' "$LAB/out.txt" ||
	{ cat "$LAB/out.txt"; fail "a configuration that does not load is not reported"; }
unchanged "a refused rotate (configuration does not load)"
[ "$(q 1 'SELECT count(*) FROM t')" = 500 ] && [ "$(q 2 'SELECT pg_is_in_recovery()')" = t ] ||
	fail "the cluster does not serve any more"
pass "the primary's postgresql.conf would not load: exit 2 naming the line's error; nothing changed, all serving"
sed -i '/^max_connections = plenty$/d' "$(nh 1)/pgdata/postgresql.conf"

# A database node that cannot be asked: its sshd stopped, by the PID in its
# own /run; refuse, naming it, change nothing.
as node2 sh -c 'kill "$(cat /run/sshd.pid)"' || fail "could not stop node2's sshd"
SNAP=$(snapshot)
rotate 1 -c "$INI"
grep -q 'rotate: 1 database node(s) could not be asked whether they are the primary, so nothing was changed on any node: .*node2' "$LAB/out.txt" ||
	{ cat "$LAB/out.txt"; fail "an unreachable node is not named"; }
unchanged "a refused rotate (node2 unreachable)"
pass "node2's sshd down: exit 1 naming node2; nothing changed"

# The machine itself off (its link down: no reply at all, so dbpki waits
# out its connect timeout rather than being refused): the same refusal.
"$NETLAB" poweroff node2
SNAP=$(snapshot)
rotate 1 -c "$INI"
grep -q 'rotate: 1 database node(s) could not be asked whether they are the primary, so nothing was changed on any node: .*node2' "$LAB/out.txt" ||
	{ cat "$LAB/out.txt"; fail "a machine that is off is not named"; }
unchanged "a refused rotate (node2's machine off)"
[ "$(q 1 "$sum")" = "$before" ] || fail "node1 does not serve every row"
pass "node2's machine off: exit 1 naming node2; nothing changed, node1 serving"
