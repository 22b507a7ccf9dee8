#!/usr/bin/env bash
# Issue 8: application certificates and revocation on a lab cluster
# (primary, replica, client node), checked with psql and the openssl CLI:
#  1. issue-client app1: psql through the directory's pg_service.conf logs in
#     as app1 (verify-full); app1's certificate cannot log in as postgres;
#  2. revoke app1's serial: the next connection with it is refused and the
#     error says "revoked"; no PostgreSQL restarted; the replica keeps
#     streaming and receives rows written afterwards; the dbclient
#     certificate still connects; the CRL verifies against dbca and lists
#     the serial with its reason; list --status revoked shows it;
#  3. refusals: unknown serial, the CA (exit 2); the same serial again
#     (exit 0, a note, the CRL shipped again with a higher number);
#  4. revoke the dbclient certificate itself: a replacement is issued and
#     shipped; the old one is refused, the new one works, and the replica,
#     forced to reconnect, streams again with the new one.
# Also: a node's server certificate is refused as a client certificate.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.70
lab_dir
unset PGSERVICEFILE PGSERVICE PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSSLMODE PGSSLCRL

lab_up $NET primary,replica,client
STATE=$LAB/state
"$DBPKI" bootstrap -c "$INI" >"$LAB/bootstrap.txt" 2>&1 || { tail -n 30 "$LAB/bootstrap.txt"; fail "bootstrap failed"; }
pass "bootstrap"

# The dbclient certificate as an admin holds it: a copy taken now.
ADM=$LAB/admin
mkdir -m 700 "$ADM"
cp "$LAB/nodes/node3/certs/current/"{dbca.crt,client.crt,client.key} "$ADM/"
chmod 600 "$ADM/client.key"
conn() { # node-number cert-dir [user]
	echo "host=node$1.lab.test hostaddr=$NET.1$1 port=5432 user=${3:-postgres} dbname=postgres sslmode=verify-full sslrootcert=$2/dbca.crt sslcert=$2/client.crt sslkey=$2/client.key gssencmode=disable connect_timeout=10"
}
q() { psql -X -At -d "$(conn "$1" "$ADM")" -c "$2"; }
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'; }
streaming() { q 1 "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND r.application_name = 'node2'"; }
wait_streaming() {
	for _ in $(seq 1 150); do
		[ "$(streaming 2>/dev/null || true)" = 1 ] && return 0
		sleep 0.2
	done
	fail "node2 is not streaming from node1"
}
wait_rows() { # node-number count
	for _ in $(seq 1 100); do
		[ "$(q "$1" 'SELECT count(*) FROM t' 2>/dev/null || true)" = "$2" ] && return 0
		sleep 0.2
	done
	fail "node$1 does not have $2 rows"
}
started() { q "$1" 'SELECT pg_postmaster_start_time()'; }

# ---- 1. an application certificate ------------------------------------
q 1 "CREATE ROLE app1 LOGIN; CREATE TABLE t(id int primary key); GRANT SELECT ON t TO app1" >/dev/null
APP=$LAB/app1-bundle
"$DBPKI" issue-client -c "$INI" app1 --out "$APP" >"$LAB/issue.txt" 2>&1 || { cat "$LAB/issue.txt"; fail "issue-client failed"; }
[ "$(stat -c %a "$APP")" = 700 ] || fail "$APP is not 0700"
[ "$(stat -c %a "$APP/client.key")" = 600 ] || fail "app1's key is not 0600"
grep -qx 'sslmode=verify-full' "$APP/pg_service.conf" || fail "the service entry is not verify-full"
APP_SERIAL=$(serial_of "$APP/client.crt")
openssl x509 -in "$APP/client.crt" -noout -subject | grep -q 'CN *= *app1' || fail "app1's certificate has another CN"
awk -F'\t' -v s="$APP_SERIAL" '$1==s && $2=="active" && $3=="app" && $4=="app1"' "$STATE/index.tsv" | grep -q . ||
	fail "app1's certificate is not in the index as an active app certificate"
app_q() { PGSERVICEFILE="$APP/pg_service.conf" psql -X -At -d "service=app1 connect_timeout=10" -c "$1"; }
[ "$(app_q 'SELECT current_user || count(*) FROM t')" = app10 ] || fail "app1 cannot log in through its service entry"
[ "$(app_q 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')" = t ] || fail "app1's connection is not TLS"
if psql -X -At -d "$(conn 1 "$APP" postgres)" -c 'SELECT 1' >/dev/null 2>&1; then
	fail "app1's certificate logged in as postgres"
fi
# `hostssl all all ... cert` admits client certificates only: a node's
# server certificate (extendedKeyUsage serverAuth) is no way in, even for
# a role named like its CN.
SRV=$LAB/srv
mkdir -m 700 "$SRV"
cp "$LAB/nodes/node1/certs/current/dbca.crt" "$SRV/"
cp "$LAB/nodes/node1/certs/current/server.crt" "$SRV/client.crt"
cp "$LAB/nodes/node1/certs/current/server.key" "$SRV/client.key"
chmod 600 "$SRV/client.key"
q 1 'CREATE ROLE "node1.lab.test" LOGIN' >/dev/null
set +e
err=$(psql -X -At -d "$(conn 1 "$SRV" node1.lab.test)" -c 'SELECT 1' 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] && echo "$err" | grep -q 'unsupported certificate' || fail "a server certificate was not refused as a client certificate: $err"
set +e
"$DBPKI" issue-client -c "$INI" app1 --out "$APP" >"$LAB/again.txt" 2>&1; rc=$?
"$DBPKI" issue-client -c "$INI" postgres --out "$LAB/pg-bundle" >>"$LAB/again.txt" 2>&1; rc2=$?
"$DBPKI" issue-client -c "$INI" 'app-1' --out "$LAB/bad-bundle" >>"$LAB/again.txt" 2>&1; rc3=$?
set -e
[ "$rc$rc2$rc3" = 222 ] || { cat "$LAB/again.txt"; fail "expected exit 2 for an existing DIR, the dbclient CN and a bad name; got $rc $rc2 $rc3"; }
[ ! -e "$LAB/pg-bundle" ] && [ ! -e "$LAB/bad-bundle" ] || fail "a refused issue-client left a directory behind"
pass "issue-client app1: 0700 directory, verify-full service entry logs in as app1 (not as postgres, and no server certificate gets in); refusals exit 2"

# ---- 2. revoke it --------------------------------------------------------
t1=$(started 1)
t2=$(started 2)
"$DBPKI" revoke -c "$INI" "$APP_SERIAL" --reason keyCompromise >"$LAB/revoke.txt" 2>&1 ||
	{ tail -n 30 "$LAB/revoke.txt"; fail "revoke failed"; }
set +e
err=$(app_q 'SELECT 1' 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] || fail "app1's revoked certificate still logs in"
echo "$err" | grep -qi revoked || fail "the refusal does not say revoked: $err"
pass "app1's revoked certificate is refused: $(echo "$err" | tr '\n' ' ' | cut -c1-120)"

[ "$(started 1)" = "$t1" ] && [ "$(started 2)" = "$t2" ] || fail "a PostgreSQL restarted"
[ "$(q 1 'SHOW ssl_crl_file')" = "$LAB/nodes/node1/certs/current/crl.pem" ] || fail "node1's ssl_crl_file is not the release's CRL"
wait_streaming
q 1 "INSERT INTO t SELECT generate_series(1, 100)" >/dev/null
wait_rows 2 100
[ "$(q 1 'SELECT current_user')" = postgres ] || fail "the dbclient certificate no longer connects"
pass "no restart; node2 streams and receives rows written after the revocation; the dbclient certificate still connects"

CRL=$STATE/crl/dbca.crl
text=$(openssl crl -in "$CRL" -CAfile "$STATE/ca/dbca.crt" -noout -text 2>&1) || { echo "$text"; fail "openssl crl failed"; }
echo "$text" | grep -q 'verify OK' || fail "the CRL does not verify against dbca"
echo "$text" | grep -qi "Serial Number: $APP_SERIAL" || fail "the CRL does not list $APP_SERIAL"
echo "$text" | grep -q 'Key Compromise' || fail "the CRL does not state the reason"
echo "$text" | grep -A1 'CRL Number' | tail -n 1 | grep -q '^ *1$' || fail "the first CRL is not number 1"
cmp -s "$CRL" "$LAB/nodes/node2/certs/current/crl.pem" || fail "node2 does not hold the store's CRL"
[ ! -e "$LAB/nodes/node3/certs/current/crl.pem" ] || fail "the client node got a CRL it does not use"
[ ! -e "$STATE/keys/$APP_SERIAL.key" ] || fail "the revoked key is still in the store"
pass "the CRL verifies against dbca, lists $APP_SERIAL (keyCompromise), number 1; both database nodes hold it"

"$DBPKI" list -c "$INI" --status revoked >"$LAB/list.txt" 2>/dev/null || fail "list failed"
grep -q "^$APP_SERIAL *revoked *app *app1 .*keyCompromise" "$LAB/list.txt" || { cat "$LAB/list.txt"; fail "list --status revoked does not show app1"; }
[ "$(grep -c '^[0-9a-f]\{40\} ' "$LAB/list.txt")" = 1 ] || { cat "$LAB/list.txt"; fail "list --status revoked shows more than app1"; }
pass "list --status revoked shows app1's certificate and the reason"

# check watches the CRL's own expiry ([ca] crl_validity, 90d by default).
out=$("$DBPKI" check -c "$INI") || { echo "$out"; fail "check after revoke: exit $?"; }
echo "$out" | grep -Eq 'crl_days=(89|90);' || fail "check has no crl_days perfdata: $out"
pass "check reports the CRL's expiry: $(echo "$out" | grep -Eo 'crl_days=[0-9]+')"

# ---- 3. refusals and repeats ---------------------------------------------
CA_SERIAL=$(serial_of "$STATE/ca/dbca.crt")
set +e
"$DBPKI" revoke -c "$INI" 00112233445566778899 >"$LAB/unknown.txt" 2>&1; rc=$?
"$DBPKI" revoke -c "$INI" "$CA_SERIAL" >"$LAB/ca.txt" 2>&1; rc2=$?
set -e
[ "$rc" = 2 ] && grep -q 'not in the index' "$LAB/unknown.txt" || { cat "$LAB/unknown.txt"; fail "an unknown serial: expected exit 2, got $rc"; }
[ "$rc2" = 2 ] && grep -q 'is a CA certificate' "$LAB/ca.txt" || { cat "$LAB/ca.txt"; fail "the CA: expected exit 2, got $rc2"; }
"$DBPKI" revoke -c "$INI" "$APP_SERIAL" >"$LAB/repeat.txt" 2>&1 || { tail -n 20 "$LAB/repeat.txt"; fail "revoking again failed"; }
grep -q 'was revoked already' "$LAB/repeat.txt" || fail "no note that it was revoked already"
openssl crl -in "$CRL" -noout -text | grep -A1 'CRL Number' | tail -n 1 | grep -q '^ *2$' || fail "the CRL number did not increase"
[ "$(awk -F'\t' '$2=="revoked"' "$STATE/index.tsv" | wc -l)" = 1 ] || fail "the index changed"
pass "unknown serial and the CA refused (exit 2); the same serial again: exit 0, a note, CRL number 2"

# ---- 4. the dbclient certificate itself ------------------------------------
OLD_CLIENT=$(serial_of "$ADM/client.crt")
"$DBPKI" revoke -c "$INI" --kind client --reason superseded >"$LAB/client.txt" 2>&1 ||
	{ tail -n 30 "$LAB/client.txt"; fail "revoking the dbclient certificate failed"; }
grep -q 'issuing its replacement' "$LAB/client.txt" || fail "no word about the replacement"
NEW=$LAB/nodes/node3/certs/current
NEW_CLIENT=$(serial_of "$NEW/client.crt")
[ "$NEW_CLIENT" != "$OLD_CLIENT" ] || fail "the client node still holds the revoked dbclient certificate"
cmp -s "$NEW/client.crt" "$LAB/nodes/node2/certs/current/client.crt" || fail "node2 does not hold the new dbclient certificate"
if q 1 'SELECT 1' >/dev/null 2>&1; then fail "the revoked dbclient certificate still connects"; fi
[ "$(psql -X -At -d "$(conn 1 "$NEW")" -c 'SELECT current_user')" = postgres ] || fail "the new dbclient certificate does not connect"
cp "$NEW/"{dbca.crt,client.crt,client.key} "$ADM/"
# The walreceiver's connection predates the revocation: make it reconnect,
# so that streaming proves the replica presents the new certificate.
q 1 "SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = 'node2'" >/dev/null
wait_streaming
q 1 "INSERT INTO t SELECT generate_series(101, 150)" >/dev/null
wait_rows 2 150
[ "$(started 1)" = "$t1" ] || fail "the primary restarted"
pass "revoking the dbclient certificate ships its replacement: old one refused, new one works, node2 reconnects and streams"
