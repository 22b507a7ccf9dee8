#!/usr/bin/env bash
# Issue 5: dbpki check, a Nagios/Icinga plugin, on a lab cluster (primary,
# replica, client): exactly one status line with perfdata and the plugin
# exit codes — OK 0 on a fresh cluster, WARNING 1 when --warn exceeds the
# days left or a node serves another certificate than the store's,
# CRITICAL 2 when a served certificate is within --crit or a node is down,
# UNKNOWN 3 for an unusable inventory or bad arguments; --json parses;
# --prometheus writes a 0644 textfile atomically with HELP/TYPE lines and a
# metric per node and kind; no check logs a failed login on a node.
# Issue 12: check as an unprivileged member of the monitoring group (no
# root, no sudo) reads certificates, index and journal but no key;
# --prometheus refuses non-.prom names and symlinks; an untrusted
# inventory path is a WARNING naming its chmod.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.52
lab_dir
LABUSER=$("$DBPKI_ROOT/tests/lab/lab.sh" user)
PGBIN=/usr/lib/postgresql/15/bin

lab_up $NET primary,replica,client
"$DBPKI" bootstrap -c "$INI" >"$LAB/bootstrap.txt" 2>&1 || { tail -n 30 "$LAB/bootstrap.txt"; fail "bootstrap failed"; }
pass "bootstrap"

# check: run it, keep stdout, stderr and the exit code.
RC=0
check() {
	set +e
	"$DBPKI" check -c "$INI" "$@" >"$LAB/out" 2>"$LAB/err"
	RC=$?
	set -e
	cat "$LAB/out"
}
one_line() { [ "$(wc -l <"$LAB/out")" = 1 ] || fail "expected exactly one line on stdout, got: $(cat "$LAB/out")"; }
fatals() { cat "$LAB"/nodes/node[12]/certs/postgresql.log | grep -c 'FATAL' || true; }
f0=$(fatals)

check
[ "$RC" = 0 ] || fail "fresh cluster: exit $RC"
one_line
grep -Eq '^DBPKI OK - 3 nodes, [0-9]+ certificates, earliest expiry node[12] server in 39[0-9]d \| ' "$LAB/out" || fail "status line"
for p in node1_server_days node2_server_days store_node1_server_days store_node2_server_days store_client_days ca_days; do
	grep -Eq " $p=[0-9]+;30;7( |\$)" "$LAB/out" || fail "no perfdata $p"
done
! grep -q 'node3_server_days' "$LAB/out" || fail "perfdata for the client node, which serves nothing"
pass "fresh cluster: OK, exit 0, one line, perfdata for every served and stored certificate and the CA"

check --warn 400d
[ "$RC" = 1 ] || fail "--warn 400d: exit $RC"
one_line
grep -Eq '^DBPKI WARNING - .*node1 server expires in 39[0-9]d' "$LAB/out" || fail "WARNING line"
grep -Eq ' node1_server_days=39[0-9];400;7' "$LAB/out" || fail "perfdata thresholds"
check --warn 500 --crit 400
[ "$RC" = 2 ] || fail "--crit 400 (days): exit $RC"
one_line
grep -q '^DBPKI CRITICAL - .*node2 server expires in' "$LAB/out" || fail "CRITICAL line"
pass "--warn beyond the days left: WARNING 1; --crit beyond them: CRITICAL 2"

check --json
[ "$RC" = 0 ] || fail "--json: exit $RC"
if command -v python3 >/dev/null; then
	python3 -m json.tool "$LAB/out" >/dev/null || fail "--json output does not parse"
	python3 - "$LAB/out" <<'EOF' || fail "--json content"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "OK" and d["exit_code"] == 0, d
seen = {(c["node"], c["kind"], c["source"]) for c in d["certificates"]}
for want in [("node1", "server", "served"), ("node2", "server", "served"),
             ("node1", "server", "store"), ("", "client", "store"), ("", "ca", "store")]:
    assert want in seen, (want, seen)
assert all(c["days_left"] > 300 for c in d["certificates"])
EOF
elif command -v jq >/dev/null; then
	jq -e '.status == "OK" and (.certificates | length) >= 5' "$LAB/out" >/dev/null || fail "--json (jq)"
else
	grep -q '^{"cluster":"lab","status":"OK"' "$LAB/out" || fail "--json (grep)"
fi
pass "--json parses and lists every certificate"

PROM=$LAB/textfile/dbpki-lab.prom
mkdir -m 755 "$LAB/textfile"
check --prometheus "$PROM"
[ "$RC" = 0 ] || fail "--prometheus: exit $RC"
[ "$(stat -c %a "$PROM")" = 644 ] || fail "textfile mode $(stat -c %a "$PROM")"
for m in dbpki_certificate_expiry_seconds dbpki_certificate_not_after_timestamp_seconds dbpki_check_success dbpki_check_status; do
	grep -q "^# HELP $m " "$PROM" || fail "no HELP for $m"
	grep -q "^# TYPE $m gauge\$" "$PROM" || fail "no TYPE for $m"
done
for l in 'node="node1",kind="server",source="served"' 'node="node2",kind="server",source="served"' \
	'node="node1",kind="server",source="store"' 'node="",kind="client",source="store"' 'node="",kind="ca",source="store"'; do
	grep -Eq "^dbpki_certificate_expiry_seconds\{cluster=\"lab\",$l\} [0-9]+\$" "$PROM" || fail "no metric for $l"
done
grep -q '^dbpki_check_success{cluster="lab"} 1$' "$PROM" || fail "dbpki_check_success is not 1"
ino1=$(stat -c %i "$PROM")
check --prometheus "$PROM"
ino2=$(stat -c %i "$PROM")
[ "$ino1" != "$ino2" ] || fail "the textfile was rewritten in place, not replaced"
[ "$(ls -A "$LAB/textfile")" = dbpki-lab.prom ] || fail "temporary files left: $(ls -A "$LAB/textfile")"
pass "--prometheus: 0644, HELP/TYPE, a metric per node/kind/source, replaced by rename, nothing left behind"

# ---- Issue 12: check needs no root and no sudo.  A group (dbpki-monitor
# in the package; a throw-away one here) reads the certificates, the
# index and the journal, never a key or the SSH identity.
MON=dbpkimon$$
groupadd --system "$MON"
useradd --system -M -N -g "$MON" -d /nonexistent -s /usr/sbin/nologin "$MON"
on_exit() { userdel "$MON" 2>/dev/null || true; groupdel "$MON" 2>/dev/null || true; }
as_mon() { runuser -u "$MON" -- "$@"; }
# What docs/monitoring.md tells the admin to run, for this lab's store
# (made 0700 by lab.sh, as f841af3 made every store):
STATE=$LAB/state
chgrp "$MON" "$INI" && chmod 0640 "$INI"
chgrp -R "$MON" "$STATE"
find "$STATE" -type d -exec chmod g+rx,g+s {} +
chmod 0700 "$STATE/keys"
find "$STATE/journal" -type f -exec chmod g+r {} +
mkdir -m 755 "$LAB/mon" && chown "$MON" "$LAB/mon"
set +e
as_mon "$DBPKI" check -c "$INI" --prometheus "$LAB/mon/dbpki.prom" >"$LAB/out" 2>"$LAB/err"
RC=$?
set -e
[ "$RC" = 0 ] || fail "check as $MON (group member, no root): exit $RC: $(cat "$LAB/out" "$LAB/err")"
one_line
grep -q '^DBPKI OK - 3 nodes' "$LAB/out" || fail "check as $MON: $(cat "$LAB/out")"
grep -q '^dbpki_check_success{cluster="lab"} 1$' "$LAB/mon/dbpki.prom" || fail "check as $MON: textfile"
n=0
while IFS= read -r -d '' k; do
	n=$((n + 1))
	! as_mon test -r "$k" || fail "$MON can read the key $k ($(stat -c '%U:%G %a' "$k"))"
done < <(find "$STATE" -name '*.key' -print0)
[ "$n" -gt 2 ] || fail "found only $n keys in the store"
! as_mon test -r "$LAB/ssh/id_ed25519" || fail "$MON can read the SSH identity"
for f in "$STATE/index.tsv" "$STATE/ca/dbca.crt" "$STATE"/issued/*.crt "$STATE"/journal/*; do
	as_mon test -r "$f" || fail "$MON cannot read $f ($(stat -c '%U:%G %a' "$f"))"
done
pass "check as an unprivileged member of the monitoring group: OK, textfile written; it reads certificates, index and journal, and no key (of $n) nor the SSH identity"

# The SSH identity where the monitoring user may not even look (/root/.ssh
# is 0700): not a WARNING, there is nothing for check to judge there.
mkdir -m 700 "$LAB/rootonly"
cp "$LAB/ssh/id_ed25519" "$LAB/rootonly/id"
sed "s|^identity = .*|identity = $LAB/rootonly/id|" "$INI" >"$LAB/mon2.ini"
chgrp "$MON" "$LAB/mon2.ini" && chmod 0640 "$LAB/mon2.ini"
set +e
as_mon "$DBPKI" check -c "$LAB/mon2.ini" >"$LAB/out" 2>&1
RC=$?
set -e
[ "$RC" = 0 ] || fail "identity the monitoring user cannot see: exit $RC: $(cat "$LAB/out")"
pass "an identity the monitoring user may not look at is not a WARNING"

# A store dbpki creates now, in a state_dir made as the package makes it
# (2750, the monitoring group): readable by the group with no chmod at all
# (f841af3 made every directory 0700), keys still not.
install -d -m 2750 -g "$MON" "$LAB/state2"
sed "s|^state_dir = .*|state_dir = $LAB/state2|" "$INI" >"$LAB/new.ini"
chmod 600 "$LAB/new.ini"
"$DBPKI" ca init -c "$LAB/new.ini" >/dev/null 2>&1 || fail "ca init in state2"
"$DBPKI" issue -c "$LAB/new.ini" >/dev/null 2>&1 || fail "issue in state2"
for f in "$LAB/state2/ca/dbca.crt" "$LAB/state2/index.tsv" "$LAB"/state2/issued/*.crt; do
	as_mon test -r "$f" || fail "$MON cannot read $f in a new store ($(stat -c '%U:%G %a' "$(dirname "$f")") $(stat -c '%U:%G %a' "$f"))"
done
n=0
while IFS= read -r -d '' k; do
	n=$((n + 1))
	! as_mon test -r "$k" || fail "$MON can read the key $k in a new store"
done < <(find "$LAB/state2" -name '*.key' -print0)
[ "$n" -gt 2 ] || fail "found only $n keys in the new store"
case $(stat -c %A "$LAB/state2/keys") in drwx--[-S]---) ;; *) fail "keys/ is $(stat -c %A "$LAB/state2/keys")" ;; esac
pass "a new store in a 2750 state_dir: certificates and index readable by the group, keys/ 0700, no key readable"

# --prometheus (once reachable as root through a sudo wildcard): only a
# NAME.prom file in an existing directory, never through a symlink.
printf 'precious\n' >"$LAB/victim.txt"
ln -s "$LAB/victim.txt" "$LAB/mon/evil.prom"
ln -s "$LAB/textfile" "$LAB/tflink"
for bad in "$LAB/victim.txt:must name a NAME.prom file" \
	"$LAB/mon/evil.prom:is a symbolic link or not a regular file" \
	"$LAB/tflink/x.prom:must exist and not be a symbolic link" \
	"$LAB/nodir/x.prom:must exist"; do
	check --prometheus "${bad%%:*}"
	[ "$RC" = 3 ] || fail "--prometheus ${bad%%:*}: exit $RC, expected UNKNOWN 3"
	grep -q "${bad#*:}" "$LAB/out" || fail "--prometheus ${bad%%:*}: $(cat "$LAB/out")"
done
[ "$(cat "$LAB/victim.txt")" = precious ] || fail "the victim file was overwritten"
[ -L "$LAB/mon/evil.prom" ] || fail "the symlink was replaced"
[ ! -e "$LAB/textfile/x.prom" ] || fail "written through a symlinked directory"
[ ! -e "$LAB/nodir" ] || fail "a missing directory was created"
pass "--prometheus refuses a non-.prom file, a symlink, a symlinked or missing directory; nothing touched"

# A path the other commands now refuse (an inventory in a group-writable
# directory, as f841af3 accepted): check says WARNING with the fix and
# still watches every certificate; plan refuses it (exit 2).
mkdir -m 755 "$LAB/gw"
cp "$INI" "$LAB/gw/cluster.ini"
chmod 775 "$LAB/gw"
set +e
"$DBPKI" check -c "$LAB/gw/cluster.ini" >"$LAB/out" 2>"$LAB/err"
RC=$?
set -e
[ "$RC" = 1 ] || fail "untrusted inventory path: check exit $RC, expected WARNING 1: $(cat "$LAB/out")"
one_line
grep -q "^DBPKI WARNING - inventory $LAB/gw/cluster.ini: $LAB/gw is writable by group or others (mode 0775), so another user could change what dbpki trusts; run: chmod go-w $LAB/gw (3 nodes" "$LAB/out" ||
	fail "WARNING line: $(cat "$LAB/out")"
grep -Eq ' node1_server_days=[0-9]+;30;7' "$LAB/out" || fail "the certificates were not checked: $(cat "$LAB/out")"
set +e
"$DBPKI" plan -c "$LAB/gw/cluster.ini" bootstrap >"$LAB/out" 2>&1
RC=$?
set -e
[ "$RC" = 2 ] && grep -q "run: chmod go-w $LAB/gw" "$LAB/out" || fail "plan on the untrusted inventory: exit $RC: $(cat "$LAB/out")"
chmod 755 "$LAB/gw"
check
[ "$RC" = 0 ] || fail "after chmod go-w: exit $RC"
pass "an untrusted path is a check WARNING naming the chmod (certificates still judged), plan exit 2; OK once fixed"

# The store reissued but nothing shipped yet: the nodes serve other
# certificates than the store's current ones.
"$DBPKI" issue -c "$INI" --force >/dev/null 2>&1 || fail "dbpki issue --force"
check
[ "$RC" = 1 ] || fail "drift: exit $RC"
one_line
grep -q "^DBPKI WARNING - node1, node2 serve another certificate than the store's current one" "$LAB/out" || fail "drift line"
# What issue wrote after the group was set up keeps the group (setgid).
set +e
as_mon "$DBPKI" check -c "$INI" >"$LAB/out" 2>&1
RC=$?
set -e
[ "$RC" = 1 ] && grep -q "^DBPKI WARNING - node1, node2 serve another" "$LAB/out" || fail "drift as $MON: exit $RC: $(cat "$LAB/out")"
pass "nodes serving other certificates than the store's: WARNING"

# node2 serves an expired certificate from a foreign CA.  check must still
# read it (CRITICAL, not "cannot read"), and renew must read it, find it
# due and replace it.
F=$LAB/foreign
mkdir -m 700 "$F"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$F/ca.key" \
	-out "$F/ca.crt" -subj "/CN=foreign CA" -days 30 \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$F/srv.key" \
	-out "$F/srv.csr" -subj /CN=node2.lab.test 2>/dev/null
printf 'subjectAltName=DNS:node2.lab.test,IP:%s.12\nextendedKeyUsage=serverAuth\n' $NET >"$F/ext"
openssl x509 -req -in "$F/srv.csr" -CA "$F/ca.crt" -CAkey "$F/ca.key" -CAcreateserial -days -1 \
	-extfile "$F/ext" -out "$F/srv.crt" 2>/dev/null
foreign=$(openssl x509 -in "$F/srv.crt" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f')
R2=$LAB/nodes/node2/certs/current
install -m 600 -o "$LABUSER" "$F/srv.key" "$R2/server.key"
install -m 644 -o "$LABUSER" "$F/srv.crt" "$R2/server.crt"
runuser -u "$LABUSER" -- psql -X -At -h "$LAB/nodes/node2/sock" -p 5432 -U postgres -d postgres \
	-c 'SELECT pg_reload_conf()' >/dev/null
for _ in $(seq 1 40); do
	s=$(openssl s_client -starttls postgres -connect "$NET.12:5432" </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null | sed 's/^serial=//' | tr 'A-F' 'a-f')
	[ "$s" = "$foreign" ] && break
	sleep 0.25
done
[ "$s" = "$foreign" ] || fail "node2 does not serve the foreign certificate"
check --json
[ "$RC" = 2 ] || fail "expired foreign certificate: exit $RC"
grep -q "\"node\":\"node2\",\"kind\":\"server\",\"source\":\"served\",\"read\":true,\"serial\":\"$foreign\"" "$LAB/out" ||
	fail "check did not read node2's expired foreign certificate"
grep -q '"trusted":false' "$LAB/out" || fail "the foreign certificate counts as trusted"
check
[ "$RC" = 2 ] && grep -q '^DBPKI CRITICAL - node2 server EXPIRED on' "$LAB/out" || fail "no CRITICAL for the expired certificate"
"$DBPKI" renew -c "$INI" >"$LAB/renew.out" 2>"$LAB/renew.err" || { cat "$LAB/renew.err"; fail "renew over an expired foreign certificate"; }
grep -q "due: node2's server certificate EXPIRED on" "$LAB/renew.err" || { cat "$LAB/renew.err"; fail "renew did not see the expired certificate"; }
check
[ "$RC" = 0 ] || fail "after renew: exit $RC"
pass "an expired certificate from a foreign CA is read: check CRITICAL, renew replaces it, check OK"

# (Stopping a replica below logs FATALs of its own.)
[ "$(fatals)" = "$f0" ] || fail "check logged a FATAL (a login) on a node"
pass "no check logged in anywhere (no new FATAL in the server logs)"

# A database node down: CRITICAL, named; the textfile says the check did
# not read everything.
runuser -u "$LABUSER" -- "$PGBIN/pg_ctl" -D "$LAB/nodes/node2/pgdata" -m fast -w stop >/dev/null
check --prometheus "$PROM"
[ "$RC" = 2 ] || fail "node2 down: exit $RC"
one_line
grep -q '^DBPKI CRITICAL - node2: cannot read its certificate' "$LAB/out" || fail "node2 down is not named"
grep -q ' node2_server_days=U;30;7' "$LAB/out" || fail "perfdata for node2 is not U"
grep -q '^dbpki_check_success{cluster="lab"} 0$' "$PROM" || fail "dbpki_check_success is not 0 with node2 down"
grep -q '^dbpki_check_status{cluster="lab"} 2$' "$PROM" || fail "dbpki_check_status is not 2"
! grep -q 'node="node2",kind="server",source="served"' "$PROM" || fail "a served metric for node2, which is down"
pass "node2 down: CRITICAL 2 naming it, perfdata U, dbpki_check_success 0"

# UNKNOWN: no inventory, a broken one, an unsafe one, bad arguments.
for bad in "$LAB/nosuch.ini" "$LAB/broken.ini" "$LAB/writable.ini"; do
	printf '[cluster]\nname = lab\nbogus = 1\n' >"$LAB/broken.ini"
	chmod 600 "$LAB/broken.ini"
	cp "$INI" "$LAB/writable.ini"
	chmod 666 "$LAB/writable.ini"
	set +e
	"$DBPKI" check -c "$bad" --prometheus "$PROM" >"$LAB/out" 2>/dev/null
	RC=$?
	set -e
	[ "$RC" = 3 ] || fail "$bad: expected UNKNOWN 3, got $RC"
	one_line
	grep -q '^DBPKI UNKNOWN - cannot use the inventory' "$LAB/out" || fail "$bad: $(cat "$LAB/out")"
done
grep -q '^dbpki_check_success 0$' "$PROM" || fail "textfile does not say the check failed"
set +e
"$DBPKI" check -c "$INI" --warn soon >"$LAB/out" 2>/dev/null
RC=$?
set -e
[ "$RC" = 3 ] && grep -q '^DBPKI UNKNOWN - usage: --warn' "$LAB/out" || fail "bad --warn: exit $RC, $(cat "$LAB/out")"
set +e
"$DBPKI" check -c "$INI" --warn 7d --crit 30d >"$LAB/out" 2>/dev/null
RC=$?
set -e
[ "$RC" = 3 ] || fail "--crit above --warn: exit $RC"
pass "unreadable, broken or unsafe inventory, bad arguments: UNKNOWN 3"
