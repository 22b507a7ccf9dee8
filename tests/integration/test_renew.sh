#!/usr/bin/env bash
# Issue 5: dbpki renew on a lab cluster (primary, 2 replicas, client).
#  1. nothing due: exit 0, one line naming the earliest expiry, and nothing
#     changes anywhere (cert_dir listings with sha256 and mtimes, the
#     PostgreSQL configuration files, the store, no journal, no release);
#     the served certificates are read without a login (no FATAL in the
#     server logs);
#  2. a database node that cannot be read: renew refuses, changes nothing;
#  3. --force while pgbench (verify-full, dbclient certificate, a new
#     connection per transaction) runs over the whole renew: zero failed
#     transactions, no connection error; afterwards every node serves the
#     store's new serial (openssl s_client, independently of dbpki), no
#     PostgreSQL restarted, replicas stream and receive new rows;
#  4. due without --force: renew_before longer than the validity.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.50
lab_dir
PGB_PID=
on_exit() {
	[ -z "$PGB_PID" ] || kill "$PGB_PID" 2>/dev/null || true
}
LABUSER=$("$DBPKI_ROOT/tests/lab/lab.sh" user)
PGBIN=/usr/lib/postgresql/15/bin

lab_up $NET primary,replica,replica,client
"$DBPKI" bootstrap -c "$INI" >"$LAB/bootstrap.txt" 2>&1 || { tail -n 30 "$LAB/bootstrap.txt"; fail "bootstrap failed"; }
pass "bootstrap"

# What an application holds: a copy of the client node's files.
APP=$LAB/app
mkdir -m 700 "$APP"
cp "$LAB/nodes/node4/certs/current/"{dbca.crt,client.crt,client.key} "$APP/"
chmod 600 "$APP/client.key"
conn() { # node-number
	echo "host=node$1.lab.test hostaddr=$NET.1$1 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$APP/dbca.crt sslcert=$APP/client.crt sslkey=$APP/client.key gssencmode=disable connect_timeout=10"
}
q() { psql -X -At -d "$(conn "$1")" -c "$2"; }

# Serial a node serves, read with the openssl CLI (lower-case hex), after
# checking the chain and the name against the CA on the client node.
served() { # node-number
	local res
	res=$(openssl s_client -starttls postgres -connect "$NET.1$1:5432" -showcerts \
		-CAfile "$APP/dbca.crt" -verify_return_error -verify_hostname "node$1.lab.test" \
		</dev/null 2>/dev/null) || fail "openssl s_client refused node$1"
	echo "$res" | grep -q 'Verify return code: 0 (ok)' || fail "node$1: openssl did not verify"
	echo "$res" | openssl x509 -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'
}
store_serial() { # kind node
	awk -F'\t' -v k="$1" -v n="$2" '$2=="active" && $3==k && $4==n {print $1}' "$LAB/state/index.tsv"
}
fatals() { cat "$LAB"/nodes/node[123]/certs/postgresql.log | grep -c 'FATAL' || true; }

# Everything renew could change: every node's cert_dir (but PostgreSQL's
# own log) and PostgreSQL configuration, and the store (but the lock).
snapshot() {
	local n d f
	for n in 1 2 3 4; do
		d=$LAB/nodes/node$n
		find "$d/certs" -path "$d/certs/postgresql.log" -prune -o -printf '%p %y %m %s %T@ %l\n' | sort
		find "$d/certs" -type f ! -name postgresql.log -exec sha256sum {} + | sort
		for f in postgresql.conf postgresql.auto.conf standby.signal; do
			[ ! -e "$d/pgdata/$f" ] || { stat -c '%n %s %Y %a' "$d/pgdata/$f"; sha256sum "$d/pgdata/$f"; }
		done
	done
	find "$LAB/state" ! -name lock -printf '%p %y %m %s %T@\n' | sort
	find "$LAB/state" -type f ! -name lock -exec sha256sum {} + | sort
}

# ---- 1. nothing due ---------------------------------------------------------
snapshot >"$LAB/before.txt"
f0=$(fatals)
njournal=$(ls "$LAB/state/journal" | wc -l)
sleep 1 # an mtime written by mistake would differ
out=$("$DBPKI" renew -c "$INI" 2>"$LAB/renew0.err") || { cat "$LAB/renew0.err"; fail "renew with nothing due exited $?"; }
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "expected one line, got: $out"
echo "$out" | grep -Eq "^nothing to renew: the earliest expiry is node[1-3]'s server certificate on 20[0-9]{2}-[01][0-9]-[0-3][0-9] \(39[0-9] days\); renew_before is 30d$" ||
	fail "unexpected line: $out"
echo "$out"
snapshot >"$LAB/after.txt"
diff "$LAB/before.txt" "$LAB/after.txt" || fail "renew with nothing due changed something (diff above)"
[ "$(ls "$LAB/state/journal" | wc -l)" = "$njournal" ] || fail "renew with nothing due wrote a journal"
[ "$(fatals)" = "$f0" ] || fail "reading the served certificates logged a FATAL on a node"
pass "nothing due: exit 0, one line, no change on any node nor in the store, no journal, no login"

# ---- 2. a node that cannot be read ----------------------------------------
if "$DBPKI" renew -c "$INI" --skip-node nosuch >/dev/null 2>&1; then fail "--skip-node nosuch accepted"; else rc=$?; fi
[ "$rc" = 2 ] || fail "--skip-node nosuch: expected exit 2, got $rc"
runuser -u "$LABUSER" -- "$PGBIN/pg_ctl" -D "$LAB/nodes/node3/pgdata" -m fast -w stop >/dev/null
set +e
"$DBPKI" renew -c "$INI" >"$LAB/down.out" 2>"$LAB/down.err"
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$LAB/down.err"; fail "renew with node3 down: expected exit 1, got $rc"; }
grep -q 'cannot read the certificate node node3 serves' "$LAB/down.err" || { cat "$LAB/down.err"; fail "the error does not name node3"; }
grep -q 'changed nothing' "$LAB/down.err" || fail "the error does not say nothing changed"
runuser -u "$LABUSER" -- "$PGBIN/pg_ctl" -D "$LAB/nodes/node3/pgdata" -l "$LAB/nodes/node3/certs/postgresql.log" -w start >/dev/null
snapshot >"$LAB/after2.txt"
diff "$LAB/before.txt" "$LAB/after2.txt" || fail "renew with a node down changed something"
pass "node3 down: renew exits 1 naming node3 and changes nothing"

# ---- 3. --force under load --------------------------------------------------
old1=$(served 1)
old2=$(served 2)
old3=$(served 3)
[ "$old1" = "$(store_serial server node1)" ] || fail "node1 does not serve the store's certificate before renew"
start1=$(q 1 'SELECT pg_postmaster_start_time()')
start2=$(q 2 'SELECT pg_postmaster_start_time()')
start3=$(q 3 'SELECT pg_postmaster_start_time()')
oldrel=$(readlink "$LAB/nodes/node4/certs/current")

export PGHOST=node1.lab.test PGHOSTADDR=$NET.11 PGPORT=5432 PGUSER=postgres PGDATABASE=postgres \
	PGSSLMODE=verify-full PGSSLROOTCERT=$APP/dbca.crt PGSSLCERT=$APP/client.crt PGSSLKEY=$APP/client.key \
	PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10
pgbench -i -s 1 -q >"$LAB/pgbench-init.txt" 2>&1 || { cat "$LAB/pgbench-init.txt"; fail "pgbench -i"; }
# A new TLS connection per transaction (-C), 4 clients, for 15 s; the
# renew starts 2 s in and must be over before pgbench is.
pgbench -C -c 4 -j 2 -T 15 -n >"$LAB/pgbench.txt" 2>&1 &
PGB_PID=$!
sleep 2
kill -0 "$PGB_PID" 2>/dev/null || { cat "$LAB/pgbench.txt"; fail "pgbench did not start"; }
t0=$SECONDS
"$DBPKI" renew -c "$INI" --force >"$LAB/force.out" 2>"$LAB/force.err" || { cat "$LAB/force.err"; fail "renew --force exited $?"; }
t1=$SECONDS
kill -0 "$PGB_PID" 2>/dev/null || fail "pgbench ended before the renew did; the load did not cover it"
set +e
wait "$PGB_PID"
pgb_rc=$?
set -e
PGB_PID=
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSSLMODE PGSSLROOTCERT PGSSLCERT PGSSLKEY PGGSSENCMODE PGCONNECT_TIMEOUT
cat "$LAB/pgbench.txt"
[ "$pgb_rc" = 0 ] || fail "pgbench exited $pgb_rc"
! grep -Eiq 'error|abort|fatal|could not|failed:' "$LAB/pgbench.txt" || fail "pgbench reported errors"
grep -q '^number of failed transactions: 0 (' "$LAB/pgbench.txt" || fail "pgbench reports failed transactions"
done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$LAB/pgbench.txt")
[ -n "$done_tx" ] && [ "$done_tx" -gt 0 ] || fail "pgbench processed no transaction"
pass "pgbench -C over the whole renew ($((t1 - t0)) s of it): $done_tx transactions, 0 failed, no connection error"

grep -q '^renewed: every database node serves its new certificate' "$LAB/force.out" || { cat "$LAB/force.out"; fail "no result line"; }
for n in 1 2 3; do
	s=$(served $n)
	want=$(store_serial server node$n)
	[ "$s" = "$want" ] || fail "node$n serves $s, the store's current is $want"
done
[ "$(served 1)" != "$old1" ] && [ "$(served 2)" != "$old2" ] && [ "$(served 3)" != "$old3" ] ||
	fail "a node still serves its old serial"
pass "openssl s_client: every node serves the store's new serial"

[ "$(q 1 'SELECT pg_postmaster_start_time()')" = "$start1" ] &&
	[ "$(q 2 'SELECT pg_postmaster_start_time()')" = "$start2" ] &&
	[ "$(q 3 'SELECT pg_postmaster_start_time()')" = "$start3" ] || fail "a PostgreSQL restarted"
streaming=$(q 1 "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND r.application_name IN ('node2','node3')")
[ "$streaming" = 2 ] || fail "expected 2 replicas streaming over SSL, saw $streaming"
q 1 "CREATE TABLE after_renew(id int); INSERT INTO after_renew SELECT generate_series(1,100)" >/dev/null
for n in 2 3; do
	for _ in $(seq 1 50); do
		[ "$(q $n 'SELECT count(*) FROM after_renew' 2>/dev/null || true)" = 100 ] && break
		sleep 0.2
	done
	[ "$(q $n 'SELECT count(*) FROM after_renew')" = 100 ] || fail "rows written after renew did not reach node$n"
done
pass "no PostgreSQL restarted; both replicas stream over SSL and receive new rows"

C=$LAB/nodes/node4/certs
[ "$(readlink "$C/previous")" = "$oldrel" ] || fail "client node: previous is not the bootstrap release"
[ "$(openssl x509 -in "$C/current/client.crt" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f')" = "$(store_serial client -)" ] ||
	fail "client node does not hold the store's new client certificate"
# Its service entry names the new release's files, not current/: libpq
# opens the certificate and the key one after the other.
cur=$(readlink "$C/current")
for k in sslrootcert=dbca.crt sslcert=client.crt sslkey=client.key; do
	grep -qx "${k%%=*}=$C/$cur/${k#*=}" "$C/pg_service.conf" ||
		fail "the client's pg_service.conf does not name $cur/${k#*=}: $(grep ssl "$C/pg_service.conf")"
done
svc=$(runuser -u "$LABUSER" -- env PGSERVICEFILE="$C/pg_service.conf" psql -X -At -d service=lab -c 'SELECT pg_is_in_recovery()')
[ "$svc" = f ] || fail "the client node's service entry no longer works"
bad=$(find "$LAB/nodes" -name '*.key' ! -perm 0600 | wc -l)
[ "$bad" = 0 ] || fail "a key on a node is not 0600"
pass "client node: new client certificate current, previous kept, its verify-full service names the new release and works; keys 0600"

# ---- 4. due without --force -------------------------------------------------
sed -i 's/^renew_before = 30d$/renew_before = 400d/' "$INI"
before=$(served 2)
"$DBPKI" renew -c "$INI" >"$LAB/due.out" 2>"$LAB/due.err" || { cat "$LAB/due.err"; fail "renew when due exited $?"; }
grep -q "due: node[1-3]'s server certificate expires on .* within renew_before (400d)" "$LAB/due.err" ||
	{ cat "$LAB/due.err"; fail "renew did not say why it was due"; }
grep -q 'renew_before (400d) is not shorter than' "$LAB/due.err" || fail "no warning about renew_before >= validity"
grep -q '^renewed:' "$LAB/due.out" || fail "renew when due did not renew"
[ "$(served 2)" != "$before" ] && [ "$(served 2)" = "$(store_serial server node2)" ] || fail "node2 was not renewed"
sed -i 's/^renew_before = 400d$/renew_before = 30d/' "$INI"
out=$("$DBPKI" renew -c "$INI" 2>&1) || fail "renew after restoring renew_before exited $?"
echo "$out" | grep -q '^nothing to renew' || fail "not back to nothing due: $out"
pass "due without --force (renew_before 400d > validity 397d): renewed and said why; then nothing due again"
