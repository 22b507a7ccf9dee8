#!/usr/bin/env bash
# Issue 8: application certificates that `renew` keeps renewed
# (127.0.77.x, one primary: renew reads what the nodes serve first).
#  1. issue-client app1 --renew-with-cluster and app2 (without), both with
#     a 2-day validity; list shows the flag on app1 only (text and --json);
#  2. renew (the cluster itself not due): app1 is reissued (new serial and
#     key, 397d) and its directory rewritten in place (0700, key 0600,
#     matching pair, pg_service.conf names the new serial), psql through it
#     logs in as app1; app2 is only named in the one result line; no node
#     was touched;
#  3. renew again: nothing for app1 (no longer due);
#  4. app1's directory gone + renew --force: reissued, not recreated, and
#     the output says where the new certificate is.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.77
lab_dir
unset PGSERVICEFILE PGSERVICE PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSSLMODE

lab_up $NET primary
STATE=$LAB/state
"$DBPKI" bootstrap -c "$INI" >"$LAB/bootstrap.txt" 2>&1 || { tail -n 30 "$LAB/bootstrap.txt"; fail "bootstrap failed"; }
ADM=$LAB/admin
mkdir -m 700 "$ADM"
cp "$LAB/nodes/node1/certs/current/"{dbca.crt,client.crt,client.key} "$ADM/"
chmod 600 "$ADM/client.key"
psql -X -At -d "host=node1.lab.test hostaddr=$NET.11 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$ADM/dbca.crt sslcert=$ADM/client.crt sslkey=$ADM/client.key gssencmode=disable connect_timeout=10" \
	-c 'CREATE ROLE app1 LOGIN; CREATE ROLE app2 LOGIN' >/dev/null || fail "cannot create the roles"
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'; }
days_of() { echo $((($(date -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400)); }
app_q() { PGSERVICEFILE="$LAB/app1/pg_service.conf" psql -X -At -d "service=app1 connect_timeout=10" -c "$1"; }

# ---- 1. two short-lived application certificates ---------------------------
SHORT=$LAB/short.ini
awk '/^\[client\]/{s=1} /^\[/{if(!/^\[client\]/)s=0} s && /^validity = /{$0="validity = 2d"} {print}' "$INI" >"$SHORT"
chmod 600 "$SHORT"
grep -A4 '^\[client\]' "$SHORT" | grep -qx 'validity = 2d' || fail "could not shorten [client] validity"
"$DBPKI" issue-client -c "$SHORT" app1 --out "$LAB/app1" --renew-with-cluster >"$LAB/issue.txt" 2>&1 || { cat "$LAB/issue.txt"; fail "issue-client app1"; }
"$DBPKI" issue-client -c "$SHORT" app2 --out "$LAB/app2" >>"$LAB/issue.txt" 2>&1 || { cat "$LAB/issue.txt"; fail "issue-client app2"; }
OLD1=$(serial_of "$LAB/app1/client.crt")
OLD2=$(serial_of "$LAB/app2/client.crt")
[ "$(days_of "$LAB/app1/client.crt")" -le 2 ] || fail "app1's certificate is not short-lived"
[ "$(app_q 'SELECT current_user')" = app1 ] || fail "app1 cannot log in before renew"
"$DBPKI" list -c "$INI" --kind app >"$LAB/list.txt" 2>/dev/null || fail "list failed"
grep -q "^$OLD1 .*app1 .*\[renew-with-cluster\]\$" "$LAB/list.txt" || { cat "$LAB/list.txt"; fail "list does not flag app1"; }
! grep -q "^$OLD2 .*renew-with-cluster" "$LAB/list.txt" || fail "list flags app2"
"$DBPKI" list -c "$INI" --kind app --json >"$LAB/list.json" 2>/dev/null || fail "list --json failed"
grep -q "\"serial\":\"$OLD1\".*\"renew_with_cluster\":true" "$LAB/list.json" || { cat "$LAB/list.json"; fail "list --json: app1 not renew_with_cluster"; }
grep -q "\"serial\":\"$OLD2\".*\"renew_with_cluster\":false" "$LAB/list.json" || fail "list --json: app2 should be false"
grep -q "^app1	$LAB/app1	postgres\$" "$STATE/app-renew.tsv" || { cat "$STATE/app-renew.tsv"; fail "app-renew.tsv does not record app1"; }
pass "issue-client --renew-with-cluster recorded app1 (list shows it); app2 without"

# ---- 2. renew reissues app1 and rewrites its directory ----------------------
node_rel=$(readlink "$LAB/nodes/node1/certs/current")
"$DBPKI" renew -c "$INI" >"$LAB/renew.txt" 2>"$LAB/renew.err" || { cat "$LAB/renew.txt" "$LAB/renew.err"; fail "renew failed"; }
NEW1=$(serial_of "$LAB/app1/client.crt")
[ "$NEW1" != "$OLD1" ] || fail "app1's directory still holds the old certificate"
grep -qx "renewed application certificate app1: serial $NEW1 until .*; rewrote $LAB/app1 (dbca.crt, client.crt, client.key 0600, pg_service.conf)" "$LAB/renew.txt" ||
	{ cat "$LAB/renew.txt"; fail "renew does not say it renewed app1"; }
grep -q "^nothing to renew: the earliest expiry is .*; application certificates within renew_before that renew does not reissue (issue-client --renew-with-cluster): app2 [0-9-]* ([0-9] days)\$" "$LAB/renew.txt" ||
	{ cat "$LAB/renew.txt"; fail "the result line does not name app2"; }
[ "$(wc -l <"$LAB/renew.txt")" = 2 ] || { cat "$LAB/renew.txt"; fail "renew printed more than the app1 line and the result line"; }
[ "$(readlink "$LAB/nodes/node1/certs/current")" = "$node_rel" ] || fail "renew touched the node"
[ "$(days_of "$LAB/app1/client.crt")" -ge 390 ] || fail "the new certificate does not have the inventory's validity"
[ "$(stat -c %a "$LAB/app1")" = 700 ] && [ "$(stat -c %a "$LAB/app1/client.key")" = 600 ] || fail "modes changed: $(stat -c '%n %a' "$LAB/app1" "$LAB/app1"/*)"
[ "$(stat -c %a "$LAB/app1/client.crt")" = 644 ] || fail "client.crt is not 0644"
[ "$(openssl pkey -in "$LAB/app1/client.key" -pubout)" = "$(openssl x509 -in "$LAB/app1/client.crt" -noout -pubkey)" ] || fail "key and certificate do not match"
openssl x509 -in "$LAB/app1/client.crt" -noout -subject | grep -q 'CN *= *app1' || fail "the new certificate has another CN"
grep -q "serial $NEW1" "$LAB/app1/pg_service.conf" || fail "pg_service.conf does not name the new serial"
[ "$(app_q 'SELECT current_user')" = app1 ] || fail "app1 cannot log in with the renewed certificate"
[ "$(serial_of "$LAB/app2/client.crt")" = "$OLD2" ] || fail "app2 was changed"
awk -F'\t' -v o="$OLD1" -v n="$NEW1" '($1==o && $2=="superseded") || ($1==n && $2=="active" && $3=="app" && $4=="app1")' "$STATE/index.tsv" | wc -l | grep -qx 2 ||
	fail "the index does not show app1's old certificate superseded and the new one active"
ls "$LAB/app1" | grep -q tmp && fail "temporary files left in $LAB/app1"
pass "renew reissued app1 (new key, 397d), rewrote its directory in place (0700/0600), psql logs in with it; app2 named only"

# ---- 3. nothing due for app1 any more ----------------------------------------
"$DBPKI" renew -c "$INI" >"$LAB/renew2.txt" 2>&1 || { cat "$LAB/renew2.txt"; fail "second renew failed"; }
! grep -q 'renewed application certificate' "$LAB/renew2.txt" || fail "the second renew reissued app1 again"
[ "$(serial_of "$LAB/app1/client.crt")" = "$NEW1" ] || fail "app1 changed on the second renew"
pass "a second renew leaves app1 alone"

# ---- 4. the directory is gone: reissued in the store only --------------------
rm -rf "$LAB/app1"
"$DBPKI" renew -c "$INI" --force >"$LAB/renew3.txt" 2>"$LAB/renew3.err" || { cat "$LAB/renew3.txt" "$LAB/renew3.err"; fail "renew --force failed"; }
grep -q "^renewed application certificate app1: serial [0-9a-f]* until .*; $LAB/app1 no longer exists: hand over $STATE/issued/[0-9a-f]*.crt and keys/[0-9a-f]*.key yourself\$" "$LAB/renew3.txt" ||
	{ cat "$LAB/renew3.txt"; fail "renew --force does not say where app1's new certificate is"; }
[ ! -e "$LAB/app1" ] || fail "renew recreated app1's directory"
pass "renew --force with app1's directory gone: reissued in the store, not recreated, and says so"
