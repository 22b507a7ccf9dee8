#!/usr/bin/env bash
# Issue 11 (port of test_bootstrap.sh to the netlab): bootstrap a cluster
# (primary, 2 replicas, client) on nodes that are machines -- each its own
# network namespace, address, /etc/hosts, sshd on port 22, files and PID 1
# -- with dbpki run on the admin side, and check the result WITHOUT dbpki's
# own code: psql verify-full to every node by name (resolved through the
# admin side's /etc/hosts), rows written on the primary appear on both
# replicas, each replica streams over SSL from its OWN address, openssl
# s_client verifies each node's certificate and SANs, keys are 0600,
# connections without a client certificate or without TLS are refused, and
# (what the loopback lab cannot show, every connection there comes from
# 127.0.0.1) pg_hba admits the client node by its address and refuses a
# node outside the inventory holding the same certificate and key.  Then:
# bootstrap again converges without touching data; a join failure is
# reported with node, step and output while the primary stays up.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"

netlab_up node1:primary:pgdata node2:replica:pgdata node3:replica:pgdata node4:client node5:outsider

rc=0
out=$(dbpki bootstrap -c "$INI" 2>&1) || rc=$?
[ "$rc" = 0 ] || { echo "$out"; fail "bootstrap exited $rc"; }
echo "$out" | tail -n 12
pass "bootstrap (run on the admin side) exited 0"

# The admin's view, with files only from the client node (as an app would).
C=$(nfs node4)/home/dbpkiapp/certs/current
[ -f "$C/client.key" ] || fail "client node has no client.key"
conn() { # node-number
	echo "host=node$1.lab.test port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$C/dbca.crt sslcert=$C/client.crt sslkey=$C/client.key gssencmode=disable connect_timeout=5"
}
q() { adm psql -X -At -d "$(conn "$1")" -c "$2"; }

[ "$(q 1 'SELECT pg_is_in_recovery()')" = f ] || fail "node1 is not a primary"
[ "$(q 2 'SELECT pg_is_in_recovery()')" = t ] || fail "node2 is not a replica"
[ "$(q 3 'SELECT pg_is_in_recovery()')" = t ] || fail "node3 is not a replica"
pass "psql verify-full to every database node by name; roles right"

q 1 "CREATE TABLE t(id int primary key, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1,1000) g" >/dev/null
for n in 2 3; do
	for _ in $(seq 1 50); do
		[ "$(q $n 'SELECT count(*) FROM t' 2>/dev/null || true)" = 1000 ] && break
		sleep 0.2
	done
	[ "$(q $n 'SELECT count(*) FROM t')" = 1000 ] || fail "rows did not reach node$n"
done
pass "1000 rows written on the primary are on both replicas"

streaming=$(q 1 "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND s.client_dn = '/CN=postgres' AND r.application_name IN ('node2','node3')")
[ "$streaming" = 2 ] || fail "expected 2 replicas streaming over SSL with the dbclient cert, saw $streaming"
for n in 2 3; do
	src=$(q 1 "SELECT host(client_addr) FROM pg_stat_replication WHERE application_name = 'node$n'")
	[ "$src" = "$(naddr node$n)" ] || fail "node$n streams from '$src', not from its own address $(naddr node$n)"
done
pass "both replicas stream over SSL, authenticated by CN=postgres, each from its own address"

for n in 1 2 3; do
	res=$(adm openssl s_client -starttls postgres -connect "node$n.lab.test:5432" -CAfile "$C/dbca.crt" \
		-verify_return_error -verify_hostname "node$n.lab.test" </dev/null 2>&1) ||
		{ echo "$res" | tail -5; fail "openssl s_client refused node$n"; }
	echo "$res" | grep -q 'Verify return code: 0 (ok)' || fail "node$n: no verify ok"
	adm openssl s_client -starttls postgres -connect "$(naddr node$n):5432" </dev/null 2>/dev/null |
		openssl x509 -noout -ext subjectAltName >"$LAB/san.txt"
	grep -q "DNS:node$n.lab.test" "$LAB/san.txt" || fail "node$n SAN lacks its host"
	grep -q "IP Address:$(naddr node$n)" "$LAB/san.txt" || fail "node$n SAN lacks its address"
done
pass "openssl s_client verifies every node against dbca, SANs hold host and address"

keys=$(find "$LAB"/nodes/*/fs/home "$LAB/state" -name '*.key')
bad=$(find "$LAB"/nodes/*/fs/home "$LAB/state" -name '*.key' ! -perm 0600 | wc -l)
[ "$bad" = 0 ] || { find "$LAB"/nodes/*/fs/home "$LAB/state" -name '*.key' -exec stat -c '%a %n' {} +; fail "keys not 0600"; }
[ "$(find "$LAB"/nodes/*/fs/home -name "*.key" | wc -l)" -ge 7 ] || fail "expected keys on the nodes: $keys"
! grep -rl 'PRIVATE KEY' "$LAB"/nodes/*/fs/home/*/certs/releases/*/dbca.crt 2>/dev/null || fail "CA key material on a node"
[ -z "$(find "$LAB/nodes" -name 'dbca.key')" ] || fail "the CA key left the admin host"
pass "every key is 0600; the CA key stayed on the admin host"

nocert="host=node1.lab.test port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$C/dbca.crt sslcert=/dev/null/none sslkey=/dev/null/none gssencmode=disable connect_timeout=5"
if adm psql -X -At -d "$nocert" -c 'SELECT 1' >/dev/null 2>&1; then fail "a connection without a client certificate got in"; fi
if adm psql -X -At -d "host=$(naddr node1) port=5432 user=postgres dbname=postgres sslmode=disable gssencmode=disable connect_timeout=5" -c 'SELECT 1' >/dev/null 2>&1; then
	fail "a connection without TLS got in"
fi
pass "no client certificate: refused; no TLS: refused"

# pg_hba by source address: node5 is not in the inventory; give it the
# client node's certificate and key, and it is still refused, by address.
tar -C "$C/" -chf - dbca.crt client.crt client.key | on node5 'umask 077 && mkdir -p ~/stolen && tar -C ~/stolen -xf -'
cc='host=node1.lab.test dbname=postgres user=postgres sslmode=verify-full gssencmode=disable connect_timeout=5'
if out=$(on node5 psql -X -At -d "'$cc sslrootcert=stolen/dbca.crt sslcert=stolen/client.crt sslkey=stolen/client.key'" -c "'SELECT 1'" 2>&1); then
	fail "node5 (outside the inventory) got in with the client certificate"
fi
[[ $out = *"no pg_hba.conf entry for host \"$(naddr node5)\""* ]] ||
	fail "node5 was refused, but not by pg_hba for its address: $out"
tar -C "$C/" -chf - dbca.crt client.crt client.key | on node4 'umask 077 && mkdir -p ~/same && tar -C ~/same -xf -'
out=$(on node4 psql -X -At -d "'$cc sslrootcert=same/dbca.crt sslcert=same/client.crt sslkey=same/client.key'" -c "'SELECT host(inet_client_addr())'") ||
	fail "node4 (the client node) was refused with the same files"
[ "$out" = "$(naddr node4)" ] || fail "node4 connected from '$out', not from its own address"
pass "pg_hba: the client node is admitted from its address; node5, same certificate and key, is refused"

svc=$(on node4 "PGSERVICEFILE=certs/pg_service.conf psql -X -At -d service=lab -c 'SELECT pg_is_in_recovery()'")
[ "$svc" = f ] || fail "the client node's service entry does not reach the primary"
pass "the client node's pg_service.conf entry works on the client node (verify-full)"

dbpki status -c "$INI" >"$LAB/status.txt" 2>&1 || { cat "$LAB/status.txt"; fail "status reports a problem"; }
grep -q 'node2 .*streaming/ssl' "$LAB/status.txt" || { cat "$LAB/status.txt"; fail "status does not show node2 streaming"; }
pass "dbpki status: all well"

# Again: converge, keep every row and the same database system.
sysid() { as node1 runuser -u dbpkilab -- /usr/lib/postgresql/15/bin/pg_controldata /home/dbpkilab/pgdata | sed -n 's/^Database system identifier: *//p'; }
sysid=$(sysid)
[ -n "$sysid" ] || fail "no database system identifier from node1"
dbpki bootstrap -c "$INI" >"$LAB/again.txt" 2>&1 || { cat "$LAB/again.txt"; fail "second bootstrap failed"; }
journal=$(find "$LAB/state/journal" -name '*.jsonl' | sort | tail -n 1)
grep -q 'keeping it (no initdb)' "$journal" || fail "second bootstrap did not keep the primary's data ($journal)"
grep -q 'keeping .*it will catch up' "$journal" || fail "second bootstrap re-cloned a replica"
[ "$(q 1 'SELECT count(*) FROM t')" = 1000 ] || fail "rows lost on the primary"
[ "$sysid" = "$(sysid)" ] || fail "the primary's database system changed"
[ "$(q 2 'SELECT count(*) FROM t')" = 1000 ] || fail "rows lost on node2"
pass "bootstrap again converges: same database system, every row kept"

# A join that fails on one replica: reported with node, step and output;
# the primary stays up.
as node3 runuser -u dbpkilab -- sh -c 'rm -f ~/certs/basebackup.log && mkdir -p ~/certs/basebackup.log/blocker'
# without standby.signal node3 no longer counts as a standby of node1, so
# join moves its data aside and clones again, and the clone fails.
rm -f "$(nfs node3)/home/dbpkilab/pgdata/standby.signal"
set +e
dbpki bootstrap -c "$INI" >"$LAB/fail.txt" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$LAB/fail.txt"; fail "expected exit 1 for a failed join, got $rc"; }
grep -q 'step join failed on 1 node(s); first: node node3' "$LAB/fail.txt" || { cat "$LAB/fail.txt"; fail "the error does not name node3 and join"; }
grep -q 'last output of node3' "$LAB/fail.txt" || fail "node3's output is not shown"
ls -d "$(nfs node3)/home/dbpkilab/pgdata.dbpki-old-"* >/dev/null || fail "node3's old data directory was not moved aside"
[ "$(q 1 'SELECT pg_is_in_recovery()')" = f ] || fail "the primary is down after a failed join"
[ "$(q 1 'SELECT count(*) FROM t')" = 1000 ] || fail "rows lost after a failed join"
pass "a failed join names node3 and its output; old data moved aside; the primary stays up"
