#!/usr/bin/env bash
# Issue 11 (port of test_revoke.sh's node-side checks to the netlab):
# application certificates and revocation on nodes that are machines, dbpki
# run on the admin side, the application on its own client node:
#  1. issue-client app1 on the admin side, the bundle copied to the client
#     node (node3): psql there, through the bundle's pg_service.conf, logs
#     in as app1 (verify-full, name resolved by node3's own /etc/hosts) from
#     node3's address; app1's certificate cannot log in as postgres;
#  2. revoke app1's serial: node3's next connection is refused and the
#     error says "revoked"; no PostgreSQL restarted; the replica keeps
#     streaming and receives rows written afterwards; the CRL both database
#     nodes hold is the store's and lists the serial;
#  3. revoke the dbclient certificate itself: the replacement reaches every
#     node; the old one is refused, the new one works, and the replica,
#     forced to reconnect, streams again from its own address.
# The admin-side refusals (unknown serial, the CA, revoking twice, list,
# check) stay in test_revoke.sh: nothing node-specific is in them.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"

netlab_up node1:primary:pgdata node2:replica:pgdata node3:client
STATE=$LAB/state
rc=0
out=$(dbpki bootstrap -c "$INI" 2>&1) || rc=$?
[ "$rc" = 0 ] || { echo "$out" | tail -n 30; fail "bootstrap exited $rc"; }
pass "bootstrap (run on the admin side)"

# The dbclient certificate as the admin holds it: a copy taken now.
ADM=$LAB/admin-certs
mkdir -m 700 "$ADM"
cp "$(nfs node3)/home/dbpkiapp/certs/current/"{dbca.crt,client.crt,client.key} "$ADM/"
chmod 600 "$ADM/client.key"
conn() { # node-number cert-dir [user]
	echo "host=node$1.lab.test port=5432 user=${3:-postgres} dbname=postgres sslmode=verify-full sslrootcert=$2/dbca.crt sslcert=$2/client.crt sslkey=$2/client.key gssencmode=disable connect_timeout=10"
}
q() { adm psql -X -At -d "$(conn "$1" "$ADM")" -c "$2"; }
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'; }
streaming_from() { q 1 "SELECT host(r.client_addr) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND r.application_name = 'node2'"; }
wait_streaming() {
	for _ in $(seq 1 150); do
		[ "$(streaming_from 2>/dev/null || true)" = "$(naddr node2)" ] && return 0
		sleep 0.2
	done
	fail "node2 is not streaming from node1 (from its address $(naddr node2)): '$(streaming_from 2>&1)'"
}
wait_rows() { # node-number count
	for _ in $(seq 1 100); do
		[ "$(q "$1" 'SELECT count(*) FROM t' 2>/dev/null || true)" = "$2" ] && return 0
		sleep 0.2
	done
	fail "node$1 does not have $2 rows"
}
started() { q "$1" 'SELECT pg_postmaster_start_time()'; }

# ---- 1. an application certificate, used on the client node -------------
q 1 "CREATE ROLE app1 LOGIN; CREATE TABLE t(id int primary key); GRANT SELECT ON t TO app1" >/dev/null
APP=$LAB/app1-bundle
dbpki issue-client -c "$INI" app1 --out "$APP" >"$LAB/issue.txt" 2>&1 || { cat "$LAB/issue.txt"; fail "issue-client failed"; }
APP_SERIAL=$(serial_of "$APP/client.crt")
# The bundle's service file names the admin-side paths: on node3 it lives
# in ~/app1 (/home/dbpkiapp/app1), and its entry names that instead.
cp -a "$APP" "$LAB/app1-node3"
sed -i "s|=$APP/|=/home/dbpkiapp/app1/|" "$LAB/app1-node3/pg_service.conf"
grep -q '=/home/dbpkiapp/app1/client.key$' "$LAB/app1-node3/pg_service.conf" ||
	fail "app1's pg_service.conf does not name $APP/client.key: $(cat "$APP/pg_service.conf")"
tar -C "$LAB/app1-node3" -cf - . | on node3 'umask 077 && mkdir -p ~/app1 && tar -C ~/app1 -xf -'
app_q() { # SQL: psql on node3 through app1's service entry
	on node3 "PGSERVICEFILE=\$HOME/app1/pg_service.conf psql -X -At -d 'service=app1 connect_timeout=10' -c \"$1\""
}
[ "$(app_q 'SELECT current_user || count(*) FROM t')" = app10 ] || fail "app1 cannot log in from node3 through its service entry"
[ "$(app_q 'SELECT ssl::text || host(inet_client_addr()) FROM pg_stat_ssl WHERE pid = pg_backend_pid()')" = "true$(naddr node3)" ] ||
	fail "app1's connection from node3 is not TLS from node3's address"
if adm psql -X -At -d "$(conn 1 "$APP" postgres)" -c 'SELECT 1' >/dev/null 2>&1; then
	fail "app1's certificate logged in as postgres"
fi
pass "issue-client app1: on the client node its verify-full service entry logs in as app1 from node3's address; not as postgres"

# ---- 2. revoke it ----------------------------------------------------------
t1=$(started 1)
t2=$(started 2)
dbpki revoke -c "$INI" "$APP_SERIAL" --reason keyCompromise >"$LAB/revoke.txt" 2>&1 ||
	{ tail -n 30 "$LAB/revoke.txt"; fail "revoke failed"; }
rc=0
err=$(app_q 'SELECT 1' 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "app1's revoked certificate still logs in from node3"
echo "$err" | grep -qi revoked || fail "the refusal does not say revoked: $err"
pass "app1's revoked certificate is refused on node3: $(echo "$err" | tr '\n' ' ' | cut -c1-120)"

if [ "$(started 1)" != "$t1" ] || [ "$(started 2)" != "$t2" ]; then fail "a PostgreSQL restarted"; fi
wait_streaming
q 1 "INSERT INTO t SELECT generate_series(1, 100)" >/dev/null
wait_rows 2 100
CRL=$STATE/crl/dbca.crl
openssl crl -in "$CRL" -noout -text | grep -qi "Serial Number: $APP_SERIAL" || fail "the CRL does not list $APP_SERIAL"
for n in 1 2; do
	cmp -s "$CRL" "$(nfs node$n)/home/dbpkilab/certs/current/crl.pem" || fail "node$n does not hold the store's CRL"
done
pass "no restart; node2 streams from its address and receives rows written after the revocation; both database nodes hold the CRL"

# ---- 3. the dbclient certificate itself -------------------------------------
OLD_CLIENT=$(serial_of "$ADM/client.crt")
dbpki revoke -c "$INI" --kind client --reason superseded >"$LAB/client.txt" 2>&1 ||
	{ tail -n 30 "$LAB/client.txt"; fail "revoking the dbclient certificate failed"; }
NEW=$(nfs node3)/home/dbpkiapp/certs/current
NEW_CLIENT=$(serial_of "$NEW/client.crt")
[ "$NEW_CLIENT" != "$OLD_CLIENT" ] || fail "the client node still holds the revoked dbclient certificate"
cmp -s "$NEW/client.crt" "$(nfs node2)/home/dbpkilab/certs/current/client.crt" || fail "node2 does not hold the new dbclient certificate"
if q 1 'SELECT 1' >/dev/null 2>&1; then fail "the revoked dbclient certificate still connects"; fi
[ "$(adm psql -X -At -d "$(conn 1 "$NEW")" -c 'SELECT current_user')" = postgres ] || fail "the new dbclient certificate does not connect"
cp "$NEW/"{dbca.crt,client.crt,client.key} "$ADM/"
# The walreceiver's connection predates the revocation: make it reconnect,
# so that streaming proves the replica presents the new certificate.
q 1 "SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = 'node2'" >/dev/null
wait_streaming
q 1 "INSERT INTO t SELECT generate_series(101, 150)" >/dev/null
wait_rows 2 150
[ "$(started 1)" = "$t1" ] || fail "the primary restarted"
svc=$(on node3 "PGSERVICEFILE=certs/pg_service.conf psql -X -At -d service=lab -c 'SELECT current_user'")
[ "$svc" = postgres ] || fail "the client node's own service entry does not work with the new certificate"
pass "revoking the dbclient certificate ships its replacement: old one refused, new one works on node3, node2 reconnects and streams"
