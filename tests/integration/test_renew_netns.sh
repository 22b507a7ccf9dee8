#!/usr/bin/env bash
# Issue 11 (port of test_renew.sh's node-side checks to the netlab): dbpki
# renew, run on the admin side, on nodes that are machines (primary, 2
# replicas, client):
#  1. nothing due: exit 0, one line, and nothing changes on any machine
#     (each node's cert_dir with sha256 and mtimes, its PostgreSQL
#     configuration) nor in the store; no journal; the served certificates
#     are read without a login (no FATAL in any node's server log);
#  2. --force while pgbench (verify-full by name, resolved through the admin
#     side's /etc/hosts, a new connection per transaction) runs over the
#     whole renew: zero failed transactions; afterwards every node serves the
#     store's new serial (openssl s_client), no PostgreSQL restarted, each
#     replica streams from its own address and receives new rows, and the
#     client node's own service entry names the new release and works there.
# The admin-side cases (--skip-node, renew_before beyond the validity) stay
# in test_renew.sh.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"
PGB_PID=
on_exit() {
	# pgbench runs in the admin namespace; netlab.sh down stops what is left
	# there by its PID; this stops the netlab.sh exec that waits for it.
	[ -z "$PGB_PID" ] || kill "$PGB_PID" 2>/dev/null || true
}

netlab_up node1:primary:pgdata node2:replica:pgdata node3:replica:pgdata node4:client
rc=0
out=$(dbpki bootstrap -c "$INI" 2>&1) || rc=$?
[ "$rc" = 0 ] || { echo "$out" | tail -n 30; fail "bootstrap exited $rc"; }
pass "bootstrap (run on the admin side)"

# What an application holds: a copy of the client node's files.
APP=$LAB/app
mkdir -m 700 "$APP"
cp "$(nfs node4)/home/dbpkiapp/certs/current/"{dbca.crt,client.crt,client.key} "$APP/"
chmod 600 "$APP/client.key"
conn() { echo "host=node$1.lab.test port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$APP/dbca.crt sslcert=$APP/client.crt sslkey=$APP/client.key gssencmode=disable connect_timeout=10"; }
q() { adm psql -X -At -d "$(conn "$1")" -c "$2"; }
served() { # node-number: serial (lower-case hex), verified against dbca by name
	local res
	res=$(adm openssl s_client -starttls postgres -connect "node$1.lab.test:5432" -CAfile "$APP/dbca.crt" \
		-verify_return_error -verify_hostname "node$1.lab.test" </dev/null 2>/dev/null) || fail "openssl s_client refused node$1"
	echo "$res" | openssl x509 -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'
}
store_serial() { # kind node
	awk -F'\t' -v k="$1" -v n="$2" '$2=="active" && $3==k && $4==n {print $1}' "$LAB/state/index.tsv"
}
home() { echo "$(nfs "$1")/home/$([ "$1" = node4 ] && echo dbpkiapp || echo dbpkilab)"; }
fatals() { cat "$(home node1)/certs/postgresql.log" "$(home node2)/certs/postgresql.log" "$(home node3)/certs/postgresql.log" | grep -c FATAL || true; }
snapshot() { # everything renew could change, on every machine and in the store
	local n h f
	for n in node1 node2 node3 node4; do
		h=$(home $n)
		find "$h/certs" -path "$h/certs/postgresql.log" -prune -o -printf "$n %P %y %m %s %T@ %l\n" | sort
		find "$h/certs" -type f ! -name postgresql.log -exec sha256sum {} + | sort
		for f in postgresql.conf postgresql.auto.conf pg_hba.conf standby.signal; do
			[ ! -e "$h/pgdata/$f" ] || { stat -c "$n %n %s %Y %a" "$h/pgdata/$f"; sha256sum "$h/pgdata/$f"; }
		done
	done
	find "$LAB/state" ! -name lock -printf '%p %y %m %s %T@\n' | sort
	find "$LAB/state" -type f ! -name lock -exec sha256sum {} + | sort
}

# ---- 1. nothing due ---------------------------------------------------------
snapshot >"$LAB/before.txt"
for want in '^node4 current ' '^node1 .*/pgdata/postgresql.conf ' '^node3 .*/pgdata/standby.signal ' '/state/index.tsv '; do
	grep -q "$want" "$LAB/before.txt" || fail "the snapshot lacks $want: it would not see a change there"
done
f0=$(fatals)
njournal=$(find "$LAB/state/journal" -type f | wc -l)
sleep 1 # an mtime written by mistake would differ
rc=0
out=$(dbpki renew -c "$INI" 2>"$LAB/renew0.err") || rc=$?
[ "$rc" = 0 ] || { cat "$LAB/renew0.err"; fail "renew with nothing due exited $rc"; }
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "expected one line, got: $out"
echo "$out" | grep -Eq "^nothing to renew: the earliest expiry is node[1-3]'s server certificate on " || fail "unexpected line: $out"
snapshot >"$LAB/after.txt"
diff "$LAB/before.txt" "$LAB/after.txt" || fail "renew with nothing due changed something (diff above)"
[ "$(find "$LAB/state/journal" -type f | wc -l)" = "$njournal" ] || fail "renew with nothing due wrote a journal"
[ "$(fatals)" = "$f0" ] || fail "reading the served certificates logged a FATAL on a node"
pass "nothing due: exit 0, one line, no change on any machine nor in the store, no journal, no login"

# ---- 2. --force under load ----------------------------------------------------
declare -A old start
for n in 1 2 3; do
	old[$n]=$(served $n)
	start[$n]=$(q $n 'SELECT pg_postmaster_start_time()')
done
[ "${old[1]}" = "$(store_serial server node1)" ] || fail "node1 does not serve the store's certificate before renew"
oldrel=$(readlink "$(home node4)/certs/current")

PGENV=(env PGHOST=node1.lab.test PGPORT=5432 PGUSER=postgres PGDATABASE=postgres PGSSLMODE=verify-full
	PGSSLROOTCERT="$APP/dbca.crt" PGSSLCERT="$APP/client.crt" PGSSLKEY="$APP/client.key"
	PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10)
adm "${PGENV[@]}" pgbench -i -s 1 -q >"$LAB/pgbench-init.txt" 2>&1 || { cat "$LAB/pgbench-init.txt"; fail "pgbench -i"; }
# A new TLS connection per transaction (-C), 4 clients, for 15 s; the
# renew starts 2 s in and must be over before pgbench is.
pgbench_start "${PGENV[@]}" pgbench -C -c 4 -j 2 -T 15 -n
rc=0
dbpki renew -c "$INI" --force >"$LAB/force.out" 2>"$LAB/force.err" || rc=$?
[ "$rc" = 0 ] || { cat "$LAB/force.err"; fail "renew --force exited $rc"; }
pgbench_done renew

grep -q '^renewed: every database node serves its new certificate' "$LAB/force.out" || { cat "$LAB/force.out"; fail "no result line"; }
for n in 1 2 3; do
	s=$(served $n)
	[ "$s" = "$(store_serial server node$n)" ] || fail "node$n serves $s, the store's current is $(store_serial server node$n)"
	[ "$s" != "${old[$n]}" ] || fail "node$n still serves its old serial"
	[ "$(q $n 'SELECT pg_postmaster_start_time()')" = "${start[$n]}" ] || fail "node$n's PostgreSQL restarted"
done
pass "openssl s_client: every node serves the store's new serial; no PostgreSQL restarted"

for n in 2 3; do
	src=$(q 1 "SELECT host(r.client_addr) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND r.application_name = 'node$n'")
	[ "$src" = "$(naddr node$n)" ] || fail "node$n does not stream over SSL from its address: '$src'"
done
q 1 "CREATE TABLE after_renew(id int); INSERT INTO after_renew SELECT generate_series(1,100)" >/dev/null
for n in 2 3; do
	for _ in $(seq 1 50); do
		[ "$(q $n 'SELECT count(*) FROM after_renew' 2>/dev/null || true)" = 100 ] && break
		sleep 0.2
	done
	[ "$(q $n 'SELECT count(*) FROM after_renew')" = 100 ] || fail "rows written after renew did not reach node$n"
done
pass "both replicas stream over SSL from their own addresses and receive new rows"

C=$(home node4)/certs
[ "$(readlink "$C/previous")" = "$oldrel" ] || fail "client node: previous is not the bootstrap release"
cur=$(readlink "$C/current")
grep -qx "sslcert=/home/dbpkiapp/certs/$cur/client.crt" "$C/pg_service.conf" ||
	fail "the client node's pg_service.conf does not name $cur: $(grep ssl "$C/pg_service.conf")"
svc=$(on node4 "PGSERVICEFILE=certs/pg_service.conf psql -X -At -d service=lab -c 'SELECT host(inet_client_addr())'")
[ "$svc" = "$(naddr node4)" ] || fail "the client node's service entry does not work there: '$svc'"
pass "client node: new release current, previous kept; its own service entry names the new release and works from its address"
