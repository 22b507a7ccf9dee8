#!/usr/bin/env bash
# Issue 5: a renew that one node refuses is rolled back everywhere.
#
# node2 gets its own bindir: every PostgreSQL binary is a symlink to the
# real one except psql, a wrapper that, when asked to reload, first gives
# the key of the release being switched to mode 0640.  PostgreSQL refuses
# such a key ("has group or world access"), keeps its old TLS context and
# still answers pg_reload_conf() with true: only the served serial tells.
#
# Shown: the run fails naming node2; every node serves its previous
# certificate again (openssl s_client) and points `current` at its previous
# release; pgbench (verify-full, a new connection per transaction) saw no
# failure during the whole run; replication is unbroken (rows written after
# the run reach both replicas); check reports the drift; and once node2 is
# fixed, a plain renew finds the renewal still due and completes it.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.51
lab_dir
PGB_PID=
on_exit() {
	[ -z "$PGB_PID" ] || kill "$PGB_PID" 2>/dev/null || true
}
PGBIN=/usr/lib/postgresql/15/bin

lab_up $NET primary,replica,replica,client
"$DBPKI" bootstrap -c "$INI" >"$LAB/bootstrap.txt" 2>&1 || { tail -n 30 "$LAB/bootstrap.txt"; fail "bootstrap failed"; }
pass "bootstrap"

APP=$LAB/app
mkdir -m 700 "$APP"
cp "$LAB/nodes/node4/certs/current/"{dbca.crt,client.crt,client.key} "$APP/"
conn() { # node-number
	echo "host=node$1.lab.test hostaddr=$NET.1$1 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$APP/dbca.crt sslcert=$APP/client.crt sslkey=$APP/client.key gssencmode=disable connect_timeout=10"
}
q() { psql -X -At -d "$(conn "$1")" -c "$2"; }
served() { # node-number
	local res
	res=$(openssl s_client -starttls postgres -connect "$NET.1$1:5432" -showcerts \
		-CAfile "$APP/dbca.crt" -verify_return_error -verify_hostname "node$1.lab.test" \
		</dev/null 2>/dev/null) || fail "openssl s_client refused node$1"
	echo "$res" | openssl x509 -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'
}
store_serial() { # kind node
	awk -F'\t' -v k="$1" -v n="$2" '$2=="active" && $3==k && $4==n {print $1}' "$LAB/state/index.tsv"
}

# The wrapper bindir for node2 (readable by the lab user).
W=$LAB/wrapbin
mkdir -m 755 "$W"
for f in "$PGBIN"/*; do
	[ "$(basename "$f")" = psql ] || ln -s "$f" "$W/"
done
N2=$LAB/nodes/node2/certs
readlink "$N2/current" >"$W/good-release"
cat >"$W/psql" <<EOF
#!/bin/sh
# test wrapper: PostgreSQL must refuse the key of any release but the good one
case "\$*" in
*pg_reload_conf*)
	[ "\$(readlink '$N2/current')" = "\$(cat '$W/good-release')" ] ||
		chmod 0640 '$N2/current/server.key' ;;
esac
exec '$PGBIN/psql' "\$@"
EOF
chmod 755 "$W/psql"
chmod 644 "$W/good-release"
cp -p "$INI" "$LAB/cluster.ini.orig"
sed -i "/^\[node node2\]\$/a bindir = $W" "$INI"
grep -q "^bindir = $W\$" "$INI" || fail "could not give node2 its bindir"

declare -A old rel
for n in 1 2 3; do
	old[$n]=$(served $n)
	[ "${old[$n]}" = "$(store_serial server node$n)" ] || fail "node$n does not serve the store's certificate before"
done
for n in 1 2 3 4; do rel[$n]=$(readlink "$LAB/nodes/node$n/certs/current"); done

export PGHOST=node1.lab.test PGHOSTADDR=$NET.11 PGPORT=5432 PGUSER=postgres PGDATABASE=postgres \
	PGSSLMODE=verify-full PGSSLROOTCERT=$APP/dbca.crt PGSSLCERT=$APP/client.crt PGSSLKEY=$APP/client.key \
	PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10
pgbench -i -s 1 -q >"$LAB/pgbench-init.txt" 2>&1 || { cat "$LAB/pgbench-init.txt"; fail "pgbench -i"; }
pgbench -C -c 4 -j 2 -T 30 -n >"$LAB/pgbench.txt" 2>&1 &
PGB_PID=$!
sleep 2
kill -0 "$PGB_PID" 2>/dev/null || { cat "$LAB/pgbench.txt"; fail "pgbench did not start"; }
set +e
"$DBPKI" renew -c "$INI" --force >"$LAB/renew.out" 2>"$LAB/renew.err"
rc=$?
set -e
kill -0 "$PGB_PID" 2>/dev/null || fail "pgbench ended before the renew did; the load did not cover it"
set +e
wait "$PGB_PID"
pgb_rc=$?
set -e
PGB_PID=
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSSLMODE PGSSLROOTCERT PGSSLCERT PGSSLKEY PGGSSENCMODE PGCONNECT_TIMEOUT
tail -n 25 "$LAB/renew.err"

[ "$rc" != 0 ] || fail "renew succeeded although node2 refused its key"
grep -q 'node node2' "$LAB/renew.err" || fail "the error does not name node2"
grep -q 'every database node serves the certificate it served before' "$LAB/renew.err" ||
	fail "the error does not say what the nodes serve afterwards"
grep -q 'rolling back' "$LAB/renew.err" || fail "no rollback"
grep -q 'has group or world access' "$N2/postgresql.log" ||
	fail "node2's PostgreSQL did not refuse the key: the failure came from elsewhere"
grep -q 'SSL configuration was not reloaded' "$N2/postgresql.log" || fail "node2 did reload"
pass "renew exits $rc naming node2, which refused its new key (its log says so)"

for n in 1 2 3; do
	[ "$(served $n)" = "${old[$n]}" ] || fail "node$n does not serve its previous certificate"
done
for n in 1 2 3 4; do
	[ "$(readlink "$LAB/nodes/node$n/certs/current")" = "${rel[$n]}" ] || fail "node$n: current is not its previous release"
done
# The client node's service entry went back with it (docs/renew.md).
C4=$LAB/nodes/node4/certs
for k in sslrootcert=dbca.crt sslcert=client.crt sslkey=client.key; do
	grep -qx "${k%%=*}=$C4/${rel[4]}/${k#*=}" "$C4/pg_service.conf" ||
		fail "node4's pg_service.conf does not name ${rel[4]}/${k#*=}: $(grep ssl "$C4/pg_service.conf")"
done
pass "openssl s_client: every node serves its previous certificate; every current (and the client's service entry) is the previous release"

cat "$LAB/pgbench.txt"
[ "$pgb_rc" = 0 ] || fail "pgbench exited $pgb_rc"
! grep -Eiq 'error|abort|fatal|could not|failed:' "$LAB/pgbench.txt" || fail "pgbench reported errors"
grep -q '^number of failed transactions: 0 (' "$LAB/pgbench.txt" || fail "pgbench reports failed transactions"
done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$LAB/pgbench.txt")
[ -n "$done_tx" ] && [ "$done_tx" -gt 0 ] || fail "pgbench processed no transaction"
pass "the cluster kept serving: pgbench -C over the whole run, $done_tx transactions, 0 failed"

q 1 "CREATE TABLE after_rollback(id int); INSERT INTO after_rollback SELECT generate_series(1,100)" >/dev/null
for n in 2 3; do
	for _ in $(seq 1 50); do
		[ "$(q $n 'SELECT count(*) FROM after_rollback' 2>/dev/null || true)" = 100 ] && break
		sleep 0.2
	done
	[ "$(q $n 'SELECT count(*) FROM after_rollback')" = 100 ] || fail "rows written after the run did not reach node$n"
done
pass "replication unbroken: rows written after the run are on both replicas"

set +e
"$DBPKI" check -c "$INI" >"$LAB/check.out"
crc=$?
set -e
cat "$LAB/check.out"
[ "$crc" = 1 ] && grep -q "^DBPKI WARNING - .*another certificate than the store's" "$LAB/check.out" ||
	fail "check does not warn that the nodes serve other certificates than the store's (exit $crc)"
pass "check: WARNING, the nodes do not serve the store's certificates"

# Fixed: node2 back on the real binaries.  Nothing expires, yet the
# renewal is still due (drift) and ships the store's certificates as they
# are, without reissuing them.
cp -p "$LAB/cluster.ini.orig" "$INI"
issued=$(ls "$LAB/state/issued" | wc -l)
"$DBPKI" renew -c "$INI" >"$LAB/retry.out" 2>"$LAB/retry.err" || { cat "$LAB/retry.err"; fail "the retry failed"; }
grep -q 'due: node2 serves serial' "$LAB/retry.err" || { cat "$LAB/retry.err"; fail "the retry did not say why it was due"; }
[ "$(ls "$LAB/state/issued" | wc -l)" = "$issued" ] || fail "the retry reissued certificates"
for n in 1 2 3; do
	[ "$(served $n)" = "$(store_serial server node$n)" ] || fail "node$n does not serve the store's certificate after the retry"
	[ "$(served $n)" != "${old[$n]}" ] || fail "node$n still serves its old certificate"
done
out=$("$DBPKI" renew -c "$INI" 2>&1) || fail "renew after the retry exited $?"
echo "$out" | grep -q '^nothing to renew' || fail "still due after the retry: $out"
pass "after the fix a plain renew is still due, ships the store's certificates unchanged, then nothing is due"
