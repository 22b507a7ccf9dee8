#!/usr/bin/env bash
# Issue 11: dbpki status and check on nodes that are machines, through
# power losses (netlab.sh reboot: SIGKILL to every process of the node at
# once, /run and /tmp empty again, the node's own boot sequence, no dbpki):
#  1. after bootstrap: status all well, every node serving the store's
#     certificate;
#  2. power loss of the replica: its pgdata-layout PostgreSQL does not come
#     back by itself (no init of the node knows it); status exits non-zero
#     and names node2 DOWN and not streaming, check is CRITICAL naming node2;
#  3. the DBA starts it again with pg_ctl, as its login user over SSH:
#     status all well, node2 streams over TLS from its own address, serves
#     the same certificate (openssl s_client), and has every row;
#  3b. node2's machine off (its link down: no reply at all): status and
#     check name node2; on again and started: all well;
#  4. power loss of the primary, started again by hand: the replica
#     reconnects by itself, new rows reach it; then `reboot all`, both
#     started again: status all well.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"

netlab_up node1:primary:pgdata node2:replica:pgdata node3:client
rc=0
out=$(dbpki bootstrap -c "$INI" 2>&1) || rc=$?
[ "$rc" = 0 ] || { echo "$out" | tail -n 30; fail "bootstrap exited $rc"; }
pass "bootstrap (run on the admin side)"

C=$(nfs node3)/home/dbpkiapp/certs/current
conn() { echo "host=node$1.lab.test port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$C/dbca.crt sslcert=$C/client.crt sslkey=$C/client.key gssencmode=disable connect_timeout=10"; }
q() { adm psql -X -At -d "$(conn "$1")" -c "$2"; }
status() { # -> $LAB/status.txt, $ST
	ST=0
	dbpki status -c "$INI" >"$LAB/status.txt" 2>&1 || ST=$?
}
served() { # node-number: the serial it serves, verified against dbca by name
	local res
	res=$(adm openssl s_client -starttls postgres -connect "node$1.lab.test:5432" -CAfile "$C/dbca.crt" \
		-verify_return_error -verify_hostname "node$1.lab.test" </dev/null 2>/dev/null) || fail "openssl s_client refused node$1"
	echo "$res" | openssl x509 -noout -serial
}
streams_from() { q 1 "SELECT host(r.client_addr) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND r.application_name = 'node2'" 2>/dev/null || true; }
wait_streaming() {
	for _ in $(seq 1 150); do
		[ "$(streams_from)" = "$(naddr node2)" ] && return 0
		sleep 0.2
	done
	fail "node2 does not stream over SSL from its address $(naddr node2): '$(streams_from)'"
}
wait_rows() { # node-number count
	for _ in $(seq 1 100); do
		[ "$(q "$1" 'SELECT count(*) FROM t' 2>/dev/null || true)" = "$2" ] && return 0
		sleep 0.2
	done
	fail "node$1 does not have $2 rows"
}
start_pg() { # node: what the DBA types on the node, as its login user
	on "$1" '/usr/lib/postgresql/15/bin/pg_ctl -D pgdata -l certs/postgresql.log -w -t 60 start' >/dev/null ||
		fail "$1: pg_ctl start failed after the reboot; see $(nfs "$1")/home/dbpkilab/certs/postgresql.log"
}
all_well() { # what
	status
	[ "$ST" = 0 ] || { cat "$LAB/status.txt"; fail "$1: status exited $ST"; }
	grep -Eq '^node1 +primary +ok +primary ' "$LAB/status.txt" || { cat "$LAB/status.txt"; fail "$1: status does not show node1 as primary"; }
	grep -Eq '^node2 +replica +ok +replica .*streaming/ssl' "$LAB/status.txt" || { cat "$LAB/status.txt"; fail "$1: status does not show node2 streaming"; }
}

# ---- 1. after bootstrap ------------------------------------------------------
all_well "after bootstrap"
s1=$(served 1)
s2=$(served 2)
q 1 "CREATE TABLE t(id int primary key); INSERT INTO t SELECT generate_series(1, 100)" >/dev/null
wait_rows 2 100
pass "after bootstrap: status all well; 100 rows on the replica"

# ---- 2. power loss of the replica ----------------------------------------------
"$NETLAB" reboot node2
status
[ "$ST" != 0 ] || { cat "$LAB/status.txt"; fail "status exited 0 with node2's PostgreSQL gone"; }
grep -Eq '^node2 +replica +ok +DOWN .*NOT STREAMING' "$LAB/status.txt" || { cat "$LAB/status.txt"; fail "status does not name node2 down"; }
ck=0
dbpki check -c "$INI" >"$LAB/check.txt" 2>&1 || ck=$?
if [ "$ck" != 2 ] || ! grep -q '^DBPKI CRITICAL - node2' "$LAB/check.txt"; then
	cat "$LAB/check.txt"
	fail "check: expected CRITICAL (2) naming node2, got $ck"
fi
pass "power loss of node2: its PostgreSQL stays down; status (exit $ST) and check (CRITICAL) name node2"

# ---- 3. started again by hand ----------------------------------------------------
start_pg node2
wait_streaming
all_well "node2 started again"
[ "$(served 2)" = "$s2" ] || fail "node2 serves another certificate after the reboot"
[ "$(q 2 'SELECT count(*) FROM t')" = 100 ] || fail "node2 lost rows in the power loss"
pass "node2 started again with pg_ctl: streams over SSL from its address, same certificate, every row; status all well"

# ---- 3b. the replica's machine is off (no reply at all), then on again --------------
"$NETLAB" poweroff node2
status
cat "$LAB/status.txt"
[ "$ST" != 0 ] || fail "status exited 0 with node2's machine off"
st_off=$ST
grep -Eq '^node2 +replica +[^o ]' "$LAB/status.txt" || fail "status does not show node2's SSH as failed"
ck=0
dbpki check -c "$INI" >"$LAB/check.txt" 2>&1 || ck=$?
if [ "$ck" != 2 ] || ! grep -q '^DBPKI CRITICAL - node2' "$LAB/check.txt"; then
	cat "$LAB/check.txt"
	fail "check with node2 off: expected CRITICAL (2) naming node2, got $ck"
fi
"$NETLAB" poweron node2
start_pg node2
wait_streaming
all_well "node2 on again"
pass "node2's machine off: status (exit $st_off) and check (CRITICAL) name node2; on again and started: all well"

# ---- 4. power loss of the primary, then of every node ------------------------------
"$NETLAB" reboot node1
start_pg node1
wait_streaming
q 1 "INSERT INTO t SELECT generate_series(101, 150)" >/dev/null
wait_rows 2 150
[ "$(served 1)" = "$s1" ] || fail "node1 serves another certificate after the reboot"
all_well "node1 started again"
"$NETLAB" reboot all
start_pg node1
start_pg node2
wait_streaming
wait_rows 2 150
all_well "after reboot all"
pass "power loss of node1, then of every node: started again by hand, the replica streams again by itself, rows kept; status all well"
