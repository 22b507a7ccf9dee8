#!/usr/bin/env bash
# Issue 8: names clients dial that certificates do not cover, and client
# nodes whose libpq cannot match an address at all (127.0.76.x):
#  1. a client node whose psql says "13.9" (a fake bindir): status warns
#     about its libpq and still exits 0 (dbpki's own connections dial by
#     name); --json carries libpq_major 13 and libpq_ip_san false;
#  2. plan with an [server] extra_san the store's certificates lack: one
#     warning per database node naming it, and nothing touched;
#  3. node2 serves a certificate (openssl CLI, signed by the store's dbca)
#     without its IP SAN: status exits 3 naming node2 and IP:127.0.76.12,
#     also in --json; renew --force (the remedy the warning names) makes
#     status exit 0 again.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.76
lab_dir
unset PGSERVICEFILE PGSERVICE PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSSLMODE

lab_up $NET primary,replica,client
STATE=$LAB/state
"$DBPKI" bootstrap -c "$INI" >"$LAB/bootstrap.txt" 2>&1 || { tail -n 30 "$LAB/bootstrap.txt"; fail "bootstrap failed"; }
"$DBPKI" status -c "$INI" >"$LAB/status0.txt" 2>&1 || { cat "$LAB/status0.txt"; fail "status after bootstrap: exit $?"; }
! grep -q '^warning:' "$LAB/status0.txt" || { cat "$LAB/status0.txt"; fail "status warns after a clean bootstrap"; }
pass "bootstrap; status exits 0 without warnings"

# ---- 1. an old libpq on the client node ----------------------------------
FAKE=$LAB/fakebin
mkdir -m 755 "$FAKE"
for tool in psql pg_config; do
	cat >"$FAKE/$tool" <<EOS
#!/bin/sh
# an old client: only the version line is fake
if [ "\${1:-}" = --version ]; then echo 'psql (PostgreSQL) 13.9'; exit 0; fi
exec /usr/lib/postgresql/15/bin/$tool "\$@"
EOS
	chmod 755 "$FAKE/$tool"
done
OLD=$LAB/old-libpq.ini
cp -p "$INI" "$OLD"
echo "bindir = $FAKE" >>"$OLD" # node3, the client, is the last section
tail -n 8 "$OLD" | grep -q '^\[node node3\]' || fail "node3 is not the last section of the inventory"
"$DBPKI" status -c "$OLD" >"$LAB/status1.txt" 2>&1 || { cat "$LAB/status1.txt"; fail "status with an old client libpq: exit $? (it must not fail for that)"; }
grep -q '^warning: node3 has libpq 13.9 (psql (PostgreSQL) 13.9): libpq before 15 does not match an address' "$LAB/status1.txt" ||
	{ cat "$LAB/status1.txt"; fail "no warning about node3's libpq 13.9"; }
[ "$(grep -c '^warning:' "$LAB/status1.txt")" = 1 ] || { cat "$LAB/status1.txt"; fail "more warnings than node3's libpq"; }
"$DBPKI" status -c "$OLD" --json >"$LAB/status1.json" 2>/dev/null || fail "status --json: exit $?"
grep -q '"node":"node3".*"libpq":"psql (PostgreSQL) 13.9","libpq_major":13,"libpq_ip_san":false' "$LAB/status1.json" ||
	{ cat "$LAB/status1.json"; fail "status --json lacks node3's libpq fields"; }
grep -q '"libpq_major":15,"libpq_ip_san":true' <("$DBPKI" status -c "$INI" --json 2>/dev/null) ||
	fail "status --json does not show node3's real libpq 15 with the real bindir"
pass "node3 with psql 13.9: status warns (exit 0), --json says libpq_ip_san false; with the real bindir: 15, true"

# ---- 2. plan with an extra_san the store lacks ---------------------------
PLAN=$LAB/extra-san.ini
sed 's/^mode = per-node$/mode = per-node\nextra_san = db.lab.test, 127.0.76.100/' "$INI" >"$PLAN"
chmod 600 "$PLAN"
grep -q '^extra_san = ' "$PLAN" || fail "could not add extra_san"
snapshot() {
	(cd "$LAB" && find state nodes/*/certs -printf '%p %s %T@ %l\n' | sort | sha256sum)
}
before=$(snapshot)
"$DBPKI" plan -c "$PLAN" renew >"$LAB/plan.txt" 2>&1 || { tail -n 20 "$LAB/plan.txt"; fail "plan failed"; }
for n in node1 node2; do
	grep -q "^warning: $n's server certificate in the store (what its release carries) is without DNS:db.lab.test (in \[server\] extra_san), IP:127.0.76.100 (in \[server\] extra_san): clients using sslmode=verify-full by name or address will be refused" "$LAB/plan.txt" ||
		{ grep warning "$LAB/plan.txt"; fail "plan does not warn that $n's certificate lacks the extra_san"; }
done
[ "$(grep -c '^warning:' "$LAB/plan.txt")" = 2 ] || { grep warning "$LAB/plan.txt"; fail "plan warns about more than the two database nodes"; }
grep -q '^note: plan connects nowhere, so it cannot know the libpq version' "$LAB/plan.txt" || fail "plan does not say it cannot know the clients' libpq"
! grep -q '^warning:' <("$DBPKI" plan -c "$INI" renew 2>&1) || fail "plan warns with the inventory the store matches"
[ "$(snapshot)" = "$before" ] || fail "plan changed the store or a node's certificates"
pass "plan names the extra_san each database node's stored certificate lacks, and touches nothing"

# ---- 3. node2 serves a certificate without its IP SAN --------------------
NODE2=$LAB/nodes/node2/certs/current
cur=$(readlink -f "$NODE2")
owner=$(stat -c %U "$cur/server.key")
W=$LAB/work
mkdir -m 700 "$W"
openssl ecparam -name prime256v1 -genkey -noout -out "$W/k.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$W/k.pem" -out "$W/server.key"
printf '%s\n' 'basicConstraints = critical, CA:FALSE' 'keyUsage = critical, digitalSignature' \
	'extendedKeyUsage = serverAuth' 'subjectAltName = DNS:node2.lab.test' >"$W/ext.cnf"
openssl req -new -key "$W/server.key" -subj /CN=node2.lab.test -out "$W/server.csr"
openssl x509 -req -in "$W/server.csr" -CA "$STATE/ca/dbca.crt" -CAkey "$STATE/ca/dbca.key" \
	-CAcreateserial -CAserial "$W/serial" -days 300 -extfile "$W/ext.cnf" -out "$W/server.crt" 2>/dev/null
openssl verify -CAfile "$STATE/ca/dbca.crt" "$W/server.crt" >/dev/null || fail "the hand-made certificate does not verify"
install -m 0600 -o "$owner" "$W/server.key" "$cur/server.key"
install -m 0644 -o "$owner" "$W/server.crt" "$cur/server.crt"
ADM=$LAB/admin
mkdir -m 700 "$ADM"
cp "$LAB/nodes/node3/certs/current/"{dbca.crt,client.crt,client.key} "$ADM/"
chmod 600 "$ADM/client.key"
psql -X -At -d "host=node2.lab.test hostaddr=$NET.12 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$ADM/dbca.crt sslcert=$ADM/client.crt sslkey=$ADM/client.key gssencmode=disable connect_timeout=10" \
	-c 'SELECT pg_reload_conf()' >/dev/null || fail "cannot reload node2"
want=$(openssl x509 -in "$W/server.crt" -noout -serial)
served() { openssl s_client -starttls postgres -connect "$NET.12:5432" </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null || true; }
for _ in $(seq 1 50); do
	[ "$(served)" = "$want" ] && break
	sleep 0.2
done
[ "$(served)" = "$want" ] || fail "node2 does not serve the certificate without its IP SAN"

set +e
"$DBPKI" status -c "$INI" >"$LAB/status2.txt" 2>&1; rc=$?
"$DBPKI" status -c "$INI" --json >"$LAB/status2.json" 2>/dev/null; rcj=$?
set -e
[ "$rc" = 3 ] && [ "$rcj" = 3 ] || { cat "$LAB/status2.txt"; fail "status: expected exit 3 for node2, got $rc (json $rcj)"; }
grep -q "^warning: node2 serves a certificate without IP:$NET.12 (dialled as its address): clients using sslmode=verify-full by address will be refused; run dbpki renew -c $INI --force" "$LAB/status2.txt" ||
	{ cat "$LAB/status2.txt"; fail "status does not name node2's missing IP SAN"; }
[ "$(grep -c '^warning:' "$LAB/status2.txt")" = 1 ] || { cat "$LAB/status2.txt"; fail "status warns about more than node2"; }
grep -q '^node2 .*<- problem' "$LAB/status2.txt" || fail "node2's row is not marked as a problem"
! grep -q '^node1 .*<- problem' "$LAB/status2.txt" || fail "node1 is marked as a problem"
grep -q "\"node\":\"node2\",\"role\":\"replica\",[^{}]*\"ssh\":true,\"problem\":true,.*\"san_missing\":\[{\"name\":\"IP:$NET.12\",\"why\":\"dialled as its address\"}\]" "$LAB/status2.json" ||
	{ cat "$LAB/status2.json"; fail "status --json lacks node2's san_missing"; }
grep -q '"node":"node1",[^}]*"san_missing":\[\]' "$LAB/status2.json" || fail "status --json: node1 should have an empty san_missing"
pass "node2 without its IP SAN: status exits 3, names IP:$NET.12 (text and --json)"

"$DBPKI" renew -c "$INI" --force >"$LAB/renew.txt" 2>&1 || { tail -n 30 "$LAB/renew.txt"; fail "renew --force failed"; }
"$DBPKI" status -c "$INI" >"$LAB/status3.txt" 2>&1 || { cat "$LAB/status3.txt"; fail "status after renew --force: exit $?"; }
! grep -q '^warning:' "$LAB/status3.txt" || { cat "$LAB/status3.txt"; fail "status still warns after renew --force"; }
pass "the remedy the warning names (renew --force) makes status exit 0 again"
