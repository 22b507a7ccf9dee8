#!/usr/bin/env bash
# Issue 11 (port of test_revoke_rollback.sh to the netlab): a revocation
# whose shipping fails is rolled back on every machine and finished later
# with --crl-only (primary + replica, dbpki on the admin side):
#  1. the replica's machine lost power and came back without its
#     PostgreSQL (pgdata layout: no init of the node starts it), so its
#     `crl` step fails: revoke exits 1 naming the step and node and saying
#     to run --crl-only; both nodes are back on the release they had, no
#     setting names a CRL, the primary was not restarted and still admits
#     app1; the store keeps the revocation;
#  2. with the replica's PostgreSQL started again by hand, `revoke
#     --crl-only` ships the CRL: the revoked certificate is refused on both
#     nodes, the replica streams from its own address.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"

netlab_up node1:primary:pgdata node2:replica:pgdata
rc=0
out=$(dbpki bootstrap -c "$INI" 2>&1) || rc=$?
[ "$rc" = 0 ] || { echo "$out" | tail -n 30; fail "bootstrap exited $rc"; }
C1=$(nfs node1)/home/dbpkilab/certs
C2=$(nfs node2)/home/dbpkilab/certs
ADM=$LAB/admin-certs
mkdir -m 700 "$ADM"
cp "$C1/current/"{dbca.crt,client.crt,client.key} "$ADM/"
conn() { # node-number cert-dir user
	echo "host=node$1.lab.test port=5432 user=$3 dbname=postgres sslmode=verify-full sslrootcert=$2/dbca.crt sslcert=$2/client.crt sslkey=$2/client.key gssencmode=disable connect_timeout=10"
}
q() { adm psql -X -At -d "$(conn "$1" "$ADM" postgres)" -c "$2"; }
q 1 "CREATE ROLE app1 LOGIN" >/dev/null
dbpki issue-client -c "$INI" app1 --out "$LAB/app1" >/dev/null 2>&1 || fail "issue-client failed"
app() { adm psql -X -At -d "$(conn "$1" "$LAB/app1" app1)" -c 'SELECT current_user'; }
for _ in $(seq 1 100); do [ "$(app 2 2>/dev/null || true)" = app1 ] && break; sleep 0.2; done
if [ "$(app 1)" != app1 ] || [ "$(app 2)" != app1 ]; then fail "app1 cannot log in to both nodes"; fi
pass "bootstrap; app1 logs in to both nodes"

# ---- 1. the replica came back from a power loss without PostgreSQL ---------
rel1=$(readlink "$C1/current")
rel2=$(readlink "$C2/current")
t1=$(q 1 'SELECT pg_postmaster_start_time()')
"$NETLAB" reboot node2
serial=$(openssl x509 -in "$LAB/app1/client.crt" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f')
rc=0
dbpki revoke -c "$INI" "$serial" >"$LAB/revoke.txt" 2>&1 || rc=$?
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
dbpki list -c "$INI" --status revoked 2>/dev/null | grep -q "^$serial " || fail "the store lost the revocation"
pass "crl failed on node2 (rebooted, PostgreSQL not back): exit 1 naming step and node, --crl-only hint; both nodes back on their release, no CRL named, no restart; the store keeps the revocation"

# ---- 2. replica's PostgreSQL started again: --crl-only finishes the job -----
on node2 '/usr/lib/postgresql/15/bin/pg_ctl -D pgdata -l certs/postgresql.log -w -t 60 start' >/dev/null ||
	fail "node2: pg_ctl start failed; see $C2/postgresql.log"
dbpki revoke -c "$INI" --crl-only >"$LAB/crl-only.txt" 2>&1 || { tail -n 30 "$LAB/crl-only.txt"; fail "revoke --crl-only failed"; }
for n in 1 2; do
	rc=0
	err=$(app $n 2>&1) || rc=$?
	if [ "$rc" = 0 ] || ! echo "$err" | grep -qi revoked; then fail "node$n does not refuse app1 as revoked: $err"; fi
done
cmp -s "$C1/current/crl.pem" "$LAB/state/crl/dbca.crl" || fail "node1 does not hold the store's CRL"
for _ in $(seq 1 150); do
	[ "$(q 1 "SELECT host(client_addr) FROM pg_stat_replication WHERE state = 'streaming' AND application_name = 'node2'" 2>/dev/null || true)" = "$(naddr node2)" ] && break
	sleep 0.2
done
[ "$(q 1 "SELECT host(client_addr) FROM pg_stat_replication WHERE state = 'streaming' AND application_name = 'node2'")" = "$(naddr node2)" ] ||
	fail "node2 does not stream from its address"
[ "$(q 1 'SELECT pg_postmaster_start_time()')" = "$t1" ] || fail "node1 restarted"
pass "--crl-only: both nodes refuse app1 as revoked, node2 streams from its address, node1 never restarted"
