#!/usr/bin/env bash
# Issue 11 (port of test_ca_rollover.sh's node-side checks to the netlab):
# dbpki ca rollover, run on the admin side, on nodes that are machines
# (primary, replica, client), under load:
#  - pgbench (verify-full by name, resolved through the admin side's
#    /etc/hosts, with the client node's cert_dir/current files, a new
#    connection per transaction) runs over all three stages: zero failed
#    transactions;
#  - stage 1: every node's dbca.crt holds old + new, the nodes still serve
#    their old leaves; stage 2: every node serves a leaf of the new CA;
#  - stage 3: every node trusts only the new CA; openssl s_client verifies
#    every served certificate with the new CA and not with the old; the
#    replica streams from its own address and receives rows; the client
#    node's own service entry works there.
# The store-side checks (stage order refusals, archive, index, renew
# afterwards) stay in test_ca_rollover.sh.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"
PGB_PID=
on_exit() {
	[ -z "$PGB_PID" ] || kill "$PGB_PID" 2>/dev/null || true
}

netlab_up node1:primary:pgdata node2:replica:pgdata node3:client
ST=$LAB/state
rc=0
out=$(dbpki bootstrap -c "$INI" 2>&1) || rc=$?
[ "$rc" = 0 ] || { echo "$out" | tail -n 30; fail "bootstrap exited $rc"; }
pass "bootstrap (run on the admin side)"

CUR=$(nfs node3)/home/dbpkiapp/certs/current # the client node's files, switched with each release
dbca() { echo "$(nfs "node$1")/home/$([ "$1" = 3 ] && echo dbpkiapp || echo dbpkilab)/certs/current/dbca.crt"; }
cp "$ST/ca/dbca.crt" "$LAB/old_ca.pem"
serial_of() { openssl x509 -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'; }
ncerts() { grep -c 'BEGIN CERTIFICATE' "$1"; }
PGENV=(env PGHOST=node1.lab.test PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
	PGSSLMODE=verify-full PGSSLROOTCERT="$CUR/dbca.crt" PGSSLCERT="$CUR/client.crt" PGSSLKEY="$CUR/client.key"
	PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10)
q() { adm "${PGENV[@]}" PGHOST="node$1.lab.test" psql -X -At -c "$2"; }
served_serial() { # node-number
	adm openssl s_client -starttls postgres -connect "node$1.lab.test:5432" </dev/null 2>/dev/null |
		serial_of || fail "cannot read node$1's certificate"
}
verifies() { # node-number cafile: the served certificate, for its name
	adm openssl s_client -starttls postgres -connect "node$1.lab.test:5432" -CAfile "$2" \
		-verify_return_error -verify_hostname "node$1.lab.test" </dev/null >/dev/null 2>&1
}
rollover() { # stage
	local r=0
	dbpki ca rollover -c "$INI" --stage "$1" >"$LAB/stage$1.out" 2>"$LAB/stage$1.err" || r=$?
	[ "$r" = 0 ] || { cat "$LAB/stage$1.err"; fail "stage $1 exited $r"; }
	grep -q "^CA rollover: stage $1 of 3 done" "$LAB/stage$1.out" || fail "stage $1: no result line"
}

old1=$(served_serial 1)
old2=$(served_serial 2)

# ---- load over the whole rollover ------------------------------------------
adm "${PGENV[@]}" pgbench -i -s 1 -q >"$LAB/pgbench-init.txt" 2>&1 || { cat "$LAB/pgbench-init.txt"; fail "pgbench -i"; }
pgbench_start "${PGENV[@]}" pgbench -C -c 2 -j 2 -T 40 -n

rollover 1
NEW_SERIAL=$(serial_of <"$ST/ca/next/dbca.crt")
for n in 1 2 3; do
	[ "$(ncerts "$(dbca $n)")" = 2 ] || fail "stage 1: node$n's dbca.crt holds $(ncerts "$(dbca $n)") certificates, not 2"
done
if [ "$(served_serial 1)" != "$old1" ] || [ "$(served_serial 2)" != "$old2" ]; then fail "stage 1 changed a served leaf"; fi
pass "stage 1: every machine trusts old + new, the database nodes still serve their old leaves"

rollover 2
for n in 1 2; do
	verifies $n "$ST/ca/next/dbca.crt" || fail "stage 2: node$n's certificate does not verify with the new CA alone"
done
if [ "$(served_serial 1)" = "$old1" ] || [ "$(served_serial 2)" = "$old2" ]; then fail "stage 2: a node still serves its old leaf"; fi
pass "stage 2: every database node serves a leaf of the new CA"

rollover 3
pgbench_done rollover

# ---- the result, seen from outside -----------------------------------------
[ "$(serial_of <"$ST/ca/dbca.crt")" = "$NEW_SERIAL" ] || fail "the store's dbca is not the new CA"
cp "$ST/ca/dbca.crt" "$LAB/new_ca.pem"
for n in 1 2; do
	verifies $n "$LAB/new_ca.pem" || fail "node$n's certificate does not verify with the new CA"
	! verifies $n "$LAB/old_ca.pem" || fail "node$n's certificate still verifies with the old CA"
done
for n in 1 2 3; do
	[ "$(ncerts "$(dbca $n)")" = 1 ] || fail "node$n's dbca.crt holds $(ncerts "$(dbca $n)") certificates"
	cmp -s "$(dbca $n)" "$LAB/new_ca.pem" || fail "node$n's dbca.crt is not the new CA"
done
pass "openssl s_client: every node's certificate verifies with the new CA, not with the old; every dbca.crt is the new CA alone"

src=$(q 1 "SELECT host(r.client_addr) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND r.application_name = 'node2'")
[ "$src" = "$(naddr node2)" ] || fail "node2 does not stream over SSL from its address: '$src'"
q 1 "CREATE TABLE after_rollover(id int); INSERT INTO after_rollover SELECT generate_series(1,50)" >/dev/null
for _ in $(seq 1 50); do
	[ "$(q 2 'SELECT count(*) FROM after_rollover' 2>/dev/null || true)" = 50 ] && break
	sleep 0.2
done
[ "$(q 2 'SELECT count(*) FROM after_rollover')" = 50 ] || fail "rows written after the rollover did not reach node2"
svc=$(on node3 "PGSERVICEFILE=certs/pg_service.conf psql -X -At -d service=lab -c 'SELECT host(inet_client_addr())'")
[ "$svc" = "$(naddr node3)" ] || fail "the client node's service entry does not work there after the rollover: '$svc'"
pass "node2 streams over SSL from its address and receives new rows; the client node's own service entry works"
