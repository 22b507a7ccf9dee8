#!/usr/bin/env bash
# Issue 8: a revocation whose shipping fails is rolled back on every node
# and finished later with --crl-only (primary + replica lab):
#  1. the replica's PostgreSQL is down, so its `crl` step fails: revoke
#     exits 1 naming the step and node and saying to run --crl-only; every
#     node is back on the release it had, the primary's ssl_crl_file is
#     empty again (never naming a file its release lacks), it was reloaded,
#     not restarted, and still accepts connections; the store keeps the
#     revocation;
#  2. with the replica up again, `revoke --crl-only` ships the CRL: the
#     revoked certificate is refused on both nodes, the replica streams.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.71
lab_dir
unset PGSERVICEFILE PGSERVICE PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSSLMODE PGSSLCRL
LABUSER=$("$DBPKI_ROOT/tests/lab/lab.sh" user)
PGBIN=/usr/lib/postgresql/15/bin

lab_up $NET primary,replica
"$DBPKI" bootstrap -c "$INI" >"$LAB/bootstrap.txt" 2>&1 || { tail -n 30 "$LAB/bootstrap.txt"; fail "bootstrap failed"; }
C1=$LAB/nodes/node1/certs
C2=$LAB/nodes/node2/certs
ADM=$LAB/admin
mkdir -m 700 "$ADM"
cp "$C1/current/"{dbca.crt,client.crt,client.key} "$ADM/"
conn() { # node-number cert-dir user
	echo "host=node$1.lab.test hostaddr=$NET.1$1 port=5432 user=$3 dbname=postgres sslmode=verify-full sslrootcert=$2/dbca.crt sslcert=$2/client.crt sslkey=$2/client.key gssencmode=disable connect_timeout=10"
}
q() { psql -X -At -d "$(conn "$1" "$ADM" postgres)" -c "$2"; }
q 1 "CREATE ROLE app1 LOGIN" >/dev/null
"$DBPKI" issue-client -c "$INI" app1 --out "$LAB/app1" >/dev/null 2>&1 || fail "issue-client failed"
app() { psql -X -At -d "$(conn "$1" "$LAB/app1" app1)" -c 'SELECT current_user'; }
for _ in $(seq 1 100); do [ "$(app 2 2>/dev/null || true)" = app1 ] && break; sleep 0.2; done
[ "$(app 1)" = app1 ] && [ "$(app 2)" = app1 ] || fail "app1 cannot log in to both nodes"
pass "bootstrap; app1 logs in to both nodes"

# ---- 1. the replica is down: the crl step fails there, all rolls back ----
rel1=$(readlink "$C1/current")
rel2=$(readlink "$C2/current")
t1=$(q 1 'SELECT pg_postmaster_start_time()')
runuser -u "$LABUSER" -- "$PGBIN/pg_ctl" -D "$LAB/nodes/node2/pgdata" -m fast -w stop >/dev/null
serial=$(openssl x509 -in "$LAB/app1/client.crt" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f')
set +e
"$DBPKI" revoke -c "$INI" "$serial" >"$LAB/revoke.txt" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$LAB/revoke.txt"; fail "expected exit 1, got $rc"; }
grep -q 'step crl failed on 1 node(s); first: node node2' "$LAB/revoke.txt" || { cat "$LAB/revoke.txt"; fail "the error does not name step crl and node2"; }
grep -q "revoke -c $INI --crl-only" "$LAB/revoke.txt" || fail "the error does not say to run --crl-only"
grep -q 'rolling back' "$LAB/revoke.txt" || fail "no rollback reported"
[ "$(readlink "$C1/current")" = "$rel1" ] || fail "node1 is not back on $rel1"
[ "$(readlink "$C2/current")" = "$rel2" ] || fail "node2 is not back on $rel2"
[ ! -e "$C1/current/crl.pem" ] || fail "node1's release has a CRL"
grep -qx "ssl_crl_file = ''" "$C1/postgresql.dbpki.conf" || fail "node1's settings still name a CRL"
grep -qx "ssl_crl_file = ''" "$C2/postgresql.dbpki.conf" || fail "node2's settings still name a CRL"
[ "$(q 1 'SHOW ssl_crl_file')" = "" ] || fail "node1 still checks a CRL"
[ "$(q 1 'SELECT pg_postmaster_start_time()')" = "$t1" ] || fail "node1 restarted"
[ "$(app 1)" = app1 ] || fail "node1 refuses app1 after the rollback"
"$DBPKI" list -c "$INI" --status revoked 2>/dev/null | grep -q "^$serial " || fail "the store lost the revocation"
pass "crl failed on node2: exit 1 naming step and node, --crl-only hint; both nodes back on their release, no CRL named, no restart; the store keeps the revocation"

# ---- 2. replica up again: --crl-only finishes the job ----------------------
runuser -u "$LABUSER" -- "$PGBIN/pg_ctl" -D "$LAB/nodes/node2/pgdata" -l "$C2/postgresql.log" -w -t 60 start >/dev/null
"$DBPKI" revoke -c "$INI" --crl-only >"$LAB/crl-only.txt" 2>&1 || { tail -n 30 "$LAB/crl-only.txt"; fail "revoke --crl-only failed"; }
for n in 1 2; do
	set +e
	err=$(app $n 2>&1)
	rc=$?
	set -e
	[ "$rc" != 0 ] && echo "$err" | grep -qi revoked || fail "node$n does not refuse app1 as revoked: $err"
done
cmp -s "$C1/current/crl.pem" "$LAB/state/crl/dbca.crl" || fail "node1 does not hold the store's CRL"
[ "$(q 1 "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name = 'node2'")" = 1 ] ||
	fail "node2 does not stream"
[ "$(q 1 'SELECT pg_postmaster_start_time()')" = "$t1" ] || fail "node1 restarted"
pass "--crl-only: both nodes refuse app1 as revoked, node2 streams, node1 never restarted"
