#!/usr/bin/env bash
# Issue 8: dbpki list on a store without any node: issue, force-issue again
# (superseded entries), an application certificate, then every filter
# alone and combined, --json parsed by a real JSON parser, --expiring in
# days and as a duration, bad arguments (exit 2).  Also the store side of
# revoke when no node can be reached: the revocation and the CRL are kept,
# the exit code says it failed and the message says what to run.
set -euo pipefail
: "${DBPKI:?}"
T=$(mktemp -d /tmp/dbpki-list.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
unset PGSERVICEFILE

: >"$T/known_hosts"
# Nothing listens on port 1 of 127.0.71.x: every SSH connection is refused.
cat >"$T/cluster.ini" <<EOF
[cluster]
name = listlab
state_dir = $T/state
[client]
validity = 10d
[ssh]
port = 1
known_hosts = $T/known_hosts
connect_timeout = 3s
[node db1]
host = db1.list.test
address = 127.0.71.11
role = primary
[node db2]
host = db2.list.test
address = 127.0.71.12
role = replica
[node web]
host = web.list.test
address = 127.0.71.13
role = client
EOF
chmod 600 "$T/cluster.ini"
INI=$T/cluster.ini
rows() { grep -c '^[0-9a-f]\{40\} ' || true; } # data lines of the table

out=$("$DBPKI" list -c "$INI" 2>/dev/null) || fail "list of an empty store failed"
[ "$(echo "$out" | rows)" = 0 ] || fail "an empty store lists certificates"
[ "$("$DBPKI" list -c "$INI" --json 2>/dev/null | tr -d '\n ')" = '[]' ] || fail "an empty store is not []"
pass "an empty store: no rows, JSON []"

"$DBPKI" ca init -c "$INI" >/dev/null 2>&1 || fail "ca init"
"$DBPKI" issue -c "$INI" >/dev/null 2>&1 || fail "issue"
"$DBPKI" issue -c "$INI" --force >/dev/null 2>&1 || fail "issue --force"
"$DBPKI" issue-client -c "$INI" app1 --out "$T/app1" >/dev/null 2>&1 || fail "issue-client"
# ca + (2 servers + client) x 2 + app1
n() { "$DBPKI" list -c "$INI" "$@" 2>/dev/null | rows; }
[ "$(n)" = 8 ] || { "$DBPKI" list -c "$INI"; fail "expected 8 certificates"; }
[ "$(n --status active)" = 5 ] || fail "--status active"
[ "$(n --status superseded)" = 3 ] || fail "--status superseded"
[ "$(n --status revoked)" = 0 ] || fail "--status revoked"
[ "$(n --node db1)" = 2 ] || fail "--node db1"
[ "$(n --node db1 --status active)" = 1 ] || fail "--node db1 --status active"
[ "$(n --kind client --status superseded)" = 1 ] || fail "--kind client --status superseded"
[ "$(n --kind app --node app1)" = 1 ] || fail "--kind app --node app1"
[ "$(n --node nosuch)" = 0 ] || fail "--node nosuch"
active_db1=$(awk -F'\t' '$2=="active" && $3=="server" && $4=="db1" {print $1}' "$T/state/index.tsv")
"$DBPKI" list -c "$INI" --node db1 --status active 2>/dev/null | grep -q "^$active_db1 *active *server *db1 " ||
	fail "the active db1 line is not the index's"
pass "filters: status, node, kind, alone and combined"

# Client certificates (dbclient and app1's) are valid 10 days, the others
# far longer.
[ "$(n --expiring 30)" = 3 ] || fail "--expiring 30 (days)"
[ "$(n --expiring 30d --status active)" = 2 ] || fail "--expiring 30d --status active"
[ "$(n --expiring 239h)" = 0 ] || fail "--expiring 239h: a 10-day certificate issued just now"
[ "$(n --expiring 241h)" = 3 ] || fail "--expiring 241h"
[ "$(n --expiring 11 --kind client)" = 2 ] || fail "--expiring 11 --kind client"
[ "$(n --expiring 5)" = 0 ] || fail "--expiring 5"
"$DBPKI" list -c "$INI" --kind client --status active 2>/dev/null | grep '^[0-9a-f]\{40\} ' | awk '{print $6}' | grep -Eqx '9|10' ||
	fail "days left of a 10-day certificate is not 10 (or 9, a second later)"
pass "--expiring takes days (30, 11, 5) and durations (30d, 239h, 241h)"

"$DBPKI" list -c "$INI" --json >"$T/all.json" 2>/dev/null || fail "list --json"
if command -v python3 >/dev/null; then
	python3 - "$T/all.json" "$active_db1" <<'EOF' || fail "the JSON does not hold what the index holds"
import json, sys
v = json.load(open(sys.argv[1]))
assert isinstance(v, list) and len(v) == 8, len(v)
keys = {"serial", "status", "kind", "node", "subject", "key", "not_before", "not_after", "days_left"}
for o in v:
    assert keys <= set(o), o
    assert isinstance(o["days_left"], int)
db1 = [o for o in v if o["serial"] == sys.argv[2]]
assert db1 and db1[0]["status"] == "active" and db1[0]["node"] == "db1" and db1[0]["subject"] == "CN=db1.list.test"
assert sorted(o["kind"] for o in v) == ["app", "ca", "client", "client", "server", "server", "server", "server"]
EOF
elif command -v jq >/dev/null; then
	[ "$(jq length "$T/all.json")" = 8 ] || fail "jq: not 8 objects"
else
	# No parser: the documented shape, one object per line.
	[ "$(head -n 1 "$T/all.json")" = '[' ] && [ "$(tail -n 1 "$T/all.json")" = ']' ] || fail "not one array"
	[ "$(grep '^{"serial":"[0-9a-f]\{40\}",.*"days_left":-\{0,1\}[0-9]' "$T/all.json" | grep -c '},\{0,1\}$')" = 8 ] || fail "not 8 objects"
fi
[ "$(grep -c '^{' "$T/all.json")" = 8 ] || fail "not one object per line"
"$DBPKI" list -c "$INI" --json --status superseded --node db2 2>/dev/null | grep -c '"status":"superseded"' | grep -qx 1 ||
	fail "--json ignores the filters"
pass "--json: one array, one object per line, parsed; filters apply"

bad() { # expect exit 2 for these list arguments
	set +e
	"$DBPKI" list "$@" >/dev/null 2>&1
	local rc=$?
	set -e
	[ "$rc" = 2 ] || fail "list $*: expected exit 2, got $rc"
}
bad -c "$INI" --expiring abc
bad -c "$INI" --expiring 0
bad -c "$INI" --expiring -3
bad -c "$INI" --expiring 1w
bad -c "$INI" --status expired
bad -c "$INI" --kind leaf
bad -c "$INI" extra
bad -c "$INI" --bogus
bad --status active
bad -c "$T/nosuch.ini"
pass "bad arguments exit 2"

# revoke when no node answers: the store keeps the revocation and the CRL.
app=$(awk -F'\t' '$3=="app" {print $1}' "$T/state/index.tsv")
set +e
"$DBPKI" revoke -c "$INI" --node app1 --reason cessationOfOperation >"$T/revoke.txt" 2>&1
rc=$?
set -e
[ "$rc" != 0 ] || fail "revoke reported success without reaching any node"
grep -q 'revoke -c .* --crl-only' "$T/revoke.txt" || { cat "$T/revoke.txt"; fail "the failure does not say to run --crl-only"; }
"$DBPKI" list -c "$INI" --status revoked 2>/dev/null | grep -q "^$app *revoked *app *app1 .*cessationOfOperation" ||
	fail "the revocation is not in the store"
openssl crl -in "$T/state/crl/dbca.crl" -CAfile "$T/state/ca/dbca.crt" -noout -text 2>&1 | grep -qi "Serial Number: $app" ||
	fail "the CRL does not list $app"
"$DBPKI" list -c "$INI" --json --status revoked 2>/dev/null | grep -q '"reason":"cessationOfOperation"' || fail "the JSON has no reason"
pass "revoke without reachable nodes: exit $rc, the store and the CRL hold the revocation, the message says --crl-only"
