#!/usr/bin/env bash
# Issue 15, "An f841af3-made pgdata cluster still renews": a cluster (primary,
# replica, client node on the netlab) bootstrapped by the f841af3 release --
# built from this repository's history by tests/lab/baseline.sh (git
# worktree), never a hand-made copy -- with the inventory that release
# understood (no layout key: the current binary must find the pgdata layout
# by itself).  Then the CURRENT binary, on that cluster and store:
#   - status: exit 0, the replica streaming over SSL;
#   - renew --force: every node serves the store's new serial (openssl
#     s_client by name), no PostgreSQL restarted, the replica streams from
#     its own address and receives new rows, the client node's service
#     entry works there;
#   - rotate: every row kept (count + checksum), every node serves a new
#     serial that verifies by name, the replica streams again;
#   - status again: exit 0.
# Checks use psql and openssl from the admin side, not dbpki's own code.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"

OLD=$("$DBPKI_ROOT/tests/lab/baseline.sh" f841af3) || fail "tests/lab/baseline.sh could not build f841af3 (see its message above)"
[ -x "$OLD" ] || fail "baseline.sh printed '$OLD', not an executable"
# The old binary must use its own templates and playbooks (those of its
# checkout), not the ones a caller may point the current binary at.
old_dbpki() { adm env -u DBPKI_TEMPLATES -u DBPKI_PLAYBOOKS "$OLD" "$@"; }

netlab_up node1:primary:pgdata node2:replica:pgdata node3:client
# The inventory a user of f841af3 had: without the keys added since (the
# lab's [ca] plaintext_key), which f841af3 refuses as unknown.
sed -i '/^plaintext_key[[:space:]]*=/d' "$INI"
! grep -Eq '^(layout|plaintext_key)' "$INI" || fail "the inventory holds keys f841af3 did not know"

rc=0
old_dbpki bootstrap -c "$INI" >"$LAB/old-bootstrap.txt" 2>&1 || rc=$?
[ "$rc" = 0 ] || { tail -n 30 "$LAB/old-bootstrap.txt"; fail "f841af3's bootstrap exited $rc"; }
pass "f841af3 ($OLD) bootstrapped the cluster"

C=$(nfs node3)/home/dbpkiapp/certs/current
conn() { # node-number CA-file
	echo "host=node$1.lab.test port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=${2:-$C/dbca.crt} sslcert=$C/client.crt sslkey=$C/client.key gssencmode=disable connect_timeout=10"
}
q() { adm psql -X -At -d "$(conn "$1")" -c "$2"; }
served() { # node-number CA-file: serial, verified against CA-file by name
	local res
	res=$(adm openssl s_client -starttls postgres -connect "node$1.lab.test:5432" -CAfile "$2" \
		-verify_return_error -verify_hostname "node$1.lab.test" </dev/null 2>/dev/null) ||
		fail "openssl s_client: node$1's certificate does not verify by name against $2"
	echo "$res" | openssl x509 -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'
}
store_serial() { # kind node
	awk -F'\t' -v k="$1" -v n="$2" '$2=="active" && $3==k && $4==n {print $1}' "$LAB/state/index.tsv"
}
streams() { # from node2's own address, over SSL, as the dbclient
	local src _
	for _ in $(seq 1 100); do
		src=$(q 1 "SELECT host(r.client_addr) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND s.client_dn = '/CN=postgres' AND r.application_name = 'node2'" 2>/dev/null || true)
		[ "$src" = "$(naddr node2)" ] && return 0
		sleep 0.2
	done
	fail "$1: node2 does not stream over SSL as CN=postgres from its address (saw '$src')"
}
rows_on_replica() { # table count
	local _
	for _ in $(seq 1 100); do
		[ "$(q 2 "SELECT count(*) FROM $1" 2>/dev/null || true)" = "$2" ] && return 0
		sleep 0.2
	done
	fail "$1: $2 rows did not reach node2"
}
sum() { q "$1" "SELECT count(*) || ':' || md5(string_agg(id || '=' || v, ',' ORDER BY id)) FROM t"; }

q 1 "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1,500) g" >/dev/null
rows_on_replica t 500
streams "after f841af3's bootstrap"
before=$(sum 1)

# ---- status with the current binary -----------------------------------------
rc=0
dbpki status -c "$INI" >"$LAB/status1.txt" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$LAB/status1.txt"; fail "current status on an f841af3 cluster exited $rc"; }
grep -q 'node2 .*streaming/ssl' "$LAB/status1.txt" || { cat "$LAB/status1.txt"; fail "status does not show node2 streaming"; }
pass "current status on the f841af3 cluster: exit 0, node2 streaming over SSL"

# ---- renew --force with the current binary -------------------------------------
declare -A old start
for n in 1 2; do
	old[$n]=$(served $n "$C/dbca.crt")
	[ "${old[$n]}" = "$(store_serial server node$n)" ] || fail "node$n does not serve the store's certificate before renew"
	start[$n]=$(q $n 'SELECT pg_postmaster_start_time()')
done
rc=0
dbpki renew -c "$INI" --force >"$LAB/renew.out" 2>"$LAB/renew.err" || rc=$?
[ "$rc" = 0 ] || { cat "$LAB/renew.out" "$LAB/renew.err"; fail "current renew --force on an f841af3 cluster exited $rc"; }
for n in 1 2; do
	s=$(served $n "$C/dbca.crt")
	[ "$s" = "$(store_serial server node$n)" ] || fail "node$n serves $s after renew, the store's current is $(store_serial server node$n)"
	[ "$s" != "${old[$n]}" ] || fail "node$n still serves its old serial after renew"
	[ "$(q $n 'SELECT pg_postmaster_start_time()')" = "${start[$n]}" ] || fail "node$n's PostgreSQL restarted during renew"
done
streams "after renew"
q 1 "CREATE TABLE after_renew(id int); INSERT INTO after_renew SELECT generate_series(1,100)" >/dev/null
rows_on_replica after_renew 100
svc=$(on node3 "PGSERVICEFILE=certs/pg_service.conf psql -X -At -d service=lab -c 'SELECT host(inet_client_addr())'") ||
	fail "the client node's service entry does not work there after renew"
[ "$svc" = "$(naddr node3)" ] || fail "the client node connected from '$svc', not its own address"
pass "current renew --force: new serials served, no restart, node2 streams and receives rows, the client node's entry works"

# ---- rotate with the current binary --------------------------------------------
for n in 1 2; do old[$n]=$(served $n "$C/dbca.crt"); done
rc=0
dbpki rotate -c "$INI" >"$LAB/rotate.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { tail -n 30 "$LAB/rotate.out"; fail "current rotate on an f841af3 cluster exited $rc"; }
for n in 1 2; do
	s=$(served $n "$C/dbca.crt")
	[ "$s" = "$(store_serial server node$n)" ] || fail "node$n serves $s after rotate, the store's current is $(store_serial server node$n)"
	[ "$s" != "${old[$n]}" ] || fail "node$n still serves its old serial after rotate"
done
streams "after rotate"
[ "$(sum 1)" = "$before" ] || fail "rows changed on node1 after rotate: $(sum 1), before $before"
rows_on_replica t 500
[ "$(sum 2)" = "$before" ] || fail "rows changed on node2 after rotate: $(sum 2), before $before"
pass "current rotate: every row kept on both nodes, new serials served and verified by name, node2 streams"

rc=0
dbpki status -c "$INI" >"$LAB/status2.txt" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$LAB/status2.txt"; fail "status after rotate exited $rc"; }
pass "current status after renew and rotate: exit 0"
