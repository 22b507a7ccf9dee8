#!/usr/bin/env bash
# Issue 15, the debian layout's edges on the netlab (the chained scenario
# is test_debian_netns): a primary on an emulated systemd host and a
# replica, both the `main` cluster apt makes.
#   - plan and status name each node's layout;
#   - the admin's own pg_hba rule stays, below dbpki's block;
#   - a replica whose start.conf says manual keeps it (start_conf = keep);
#   - a join that fails after moving the replica's data aside leaves the
#     cluster listed, and the one command its error prints puts the old
#     data directory back: the cluster is online again with its own
#     system identifier.
# pg_basebackup fails through the node's bindir (inventory override): a
# directory of links to PostgreSQL's tools whose pg_basebackup exits 1.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"

netlab_up p1:primary:debian:systemd:sudo r1:replica:debian app1:client
CONF=/etc/postgresql/15/main
PGDATA=/var/lib/postgresql/15/main

plan=$(dbpki plan -c "$INI" bootstrap 2>&1) || fail "plan failed: $plan"
for n in p1 r1; do
	grep -q "^  $n: layout debian (postgresql-common, the cluster whose data directory is $PGDATA)" <<<"$plan" ||
		fail "plan does not name $n's layout: $(echo "$plan" | grep -i layout)"
done
pass "plan names each database node's layout"

echo "host all app 10.0.0.0/8 scram-sha-256" >>"$(nfs p1)$CONF/pg_hba.conf"
printf '%s\n' "# started by something else" manual >"$(nfs r1)$CONF/start.conf"

out=$(dbpki bootstrap -c "$INI" 2>&1) || fail "bootstrap failed: $out"
hba="$(nfs p1)$CONF/pg_hba.conf"
ln=$(grep -n '^host all app 10.0.0.0/8 scram-sha-256$' "$hba" | cut -d: -f1)
grep -q "^dbpki: warning: p1: an admin rule below dbpki's block could admit connections dbpki's rules refuse (kept as it is): $CONF/pg_hba.conf:$ln: host all app 10.0.0.0/8 scram-sha-256$" <<<"$out" ||
	fail "bootstrap did not warn about the admin's rule at $CONF/pg_hba.conf:$ln: $out"
grep -q "^dbpki: warning: r1: $CONF/start.conf says 'manual'" <<<"$out" || fail "bootstrap did not warn about r1's start.conf: $out"
head -n 1 "$hba" | grep -q '^# BEGIN dbpki' || fail "p1's hba file does not start with dbpki's block"
grep -qx "host all app 10.0.0.0/8 scram-sha-256" <<<"$(sed -n '/^# END dbpki$/,$p' "$hba")" ||
	fail "the admin's rule is not below dbpki's block"
[ "$(sed -e 's/#.*//' -e '/^$/d' "$(nfs r1)$CONF/start.conf")" = manual ] || fail "r1's start.conf manual was changed"
st=$(dbpki status -c "$INI" 2>&1) || fail "status failed: $st"
grep -q "^    layout debian: cluster 15/main, start.conf manual: NOT started at boot by postgresql-common" <<<"$st" || fail "status does not say r1 is not started at boot: $st"
pass "bootstrap kept the admin's hba rule below its block and r1's start.conf manual; status names the layout"

# A failed join on r1, after its data directory was moved aside.
as r1 su postgres -c "psql -XAt -c 'SELECT 1'" >/dev/null || fail "r1 does not answer before the failed join"
sysid() { as r1 su postgres -c "/usr/lib/postgresql/15/bin/pg_controldata $1" | sed -n 's/^Database system identifier: *//p'; }
as r1 sh -c "pg_dropcluster --stop 15 main && pg_createcluster 15 main --start >/dev/null" ||
	fail "cannot remake r1's cluster"
old=$(sysid $PGDATA)
[ -n "$old" ] || fail "no system identifier on r1"
fake=/var/lib/postgresql/fakebin
as r1 sh -c "mkdir -p $fake && ln -sf /usr/lib/postgresql/15/bin/* $fake/ && rm $fake/pg_basebackup &&
	printf '#!/bin/sh\necho test: pg_basebackup refused >&2\nexit 1\n' >$fake/pg_basebackup && chmod 755 $fake/pg_basebackup"
sed -i "/^\[node r1\]/a bindir = $fake" "$INI"
rc=0
out=$(dbpki bootstrap -c "$INI" 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "bootstrap with a failing pg_basebackup on r1 exited 0"
grep -q "r1: error: pg_basebackup from p1.lab.test failed: test: pg_basebackup refused; the old data directory is $PGDATA.dbpki-old-" <<<"$out" ||
	fail "join's error does not name the old data directory: $out"
grep -q "^15 *main .* $PGDATA " <<<"$(as r1 pg_lsclusters -h)" || fail "r1's cluster is no longer listed after the failed join"
cmd=$(echo "$out" | grep -o 'pg_ctlcluster 15 main stop;.*pg_ctlcluster 15 main start$' | head -n 1)
[ -n "$cmd" ] || fail "join's error prints no restore command: $out"
as r1 su postgres -c "$cmd" >/dev/null 2>&1 || fail "the restore command failed: $cmd"
grep -q "^15 *main *5432 online postgres $PGDATA " <<<"$(as r1 pg_lsclusters -h)" ||
	fail "r1's cluster is not online after the restore: $(as r1 pg_lsclusters -h)"
[ "$(sysid $PGDATA)" = "$old" ] || fail "the restored data directory is not the one moved aside"
pass "a failed join left r1's cluster listed; the printed command restored its own data directory, online"
