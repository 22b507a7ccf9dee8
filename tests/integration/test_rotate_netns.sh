#!/usr/bin/env bash
# Issue 11 (port of test_rotate.sh to the netlab): `dbpki rotate` on a
# cluster dbpki did NOT build, on nodes that are machines.
#
# Built here by hand inside each node (tests/lab/netlab/pg_lib.sh: openssl
# and PostgreSQL's own tools only, as the node's login user), the way the
# vendor guide says: one dbca, ONE shared dbserver certificate for every
# database node (SANs: each node's name and address), one dbclient
# certificate, all of them EXPIRED (openssl ca -startdate/-enddate in the
# past).  A primary (settings in its own postgresql.conf, ssl_cert_file by
# ALTER SYSTEM, its own pg_hba.conf naming each machine's address) and two
# replicas (pg_basebackup -R from node1.lab.test, resolved by the node's
# own /etc/hosts) that streamed while "the certificates were still good"
# (simulated: sslmode=require and a temporary trust line for each replica's
# address); node3 was stopped long enough ago that the primary recycled the
# WAL it needs.  Then the certificates "expire": the replicas use
# verify-full as the guide says, and verify-full connections and
# replication fail.
#
# Then `dbpki rotate` from the admin side with a fresh state_dir, and
# checks that do not use dbpki: every row is kept (count + checksum), rows
# written after the rotate reach both replicas, which stream over
# verify-full with the new dbclient certificate, each from its OWN address
# (pg_stat_replication JOIN pg_stat_ssl), the served certificate is new and
# chains to the new dbca by name (openssl s_client, SANs with each
# machine's address), the primary kept its database system, node2 caught
# up in place, node3 was re-cloned with its old data directory moved aside
# and not deleted (its relation files byte for byte), keys are 0600, the
# user's pg_hba.conf is untouched and every file dbpki changed has a
# timestamped copy beside it.  Last, a power loss of every machine
# (netlab.sh reboot all): the pgdata-layout clusters dbpki started with
# pg_ctl do NOT come back by themselves (no init of the node knows them:
# the gap issue 15 closes); started by hand as the DBA would, they serve
# the rotated certificates, stream from their own addresses, and keep
# every row.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/pg_lib.sh"
PGB=$NPG_BIN

netlab_up node1:primary:pgdata node2:replica:pgdata node3:replica:pgdata node4:client
sed -i 's/^mode = per-node$/mode = shared/' "$INI"
grep -q '^mode = shared$' "$INI" || fail "could not switch the inventory to mode = shared"
for n in 1 2 3 4; do eval "A$n=$(naddr node$n)"; done
ADM=$(npg_admin_addr)
[ -n "$A1" ] && [ -n "$A4" ] && [ -n "$ADM" ] || fail "no addresses for the nodes in $LAB"
HOME_DB=/home/dbpkilab # the pgdata nodes' login home, as seen inside each node
nh() { echo "$(nfs node$1)$HOME_DB"; } # ... and from the test (host side)

# ---- the hand-made PKI, all expired ----------------------------------------
H=$LAB/hand-pki
npg_hand_ca "$H" "$(date -u -d '400 days ago' +%Y%m%d%H%M%SZ)" "$(date -u -d '2 hours ago' +%Y%m%d%H%M%SZ)" \
	"DNS:node1.lab.test,IP:$A1,DNS:node2.lab.test,IP:$A2,DNS:node3.lab.test,IP:$A3"
npg_hand_cert "$H" server "/CN=node1.lab.test" v3_server
npg_hand_cert "$H" client "/CN=postgres" v3_client
OLD_SERIAL=$(npg_serial "$H/server.crt")
for c in ca server client; do
	out=$(openssl verify -CAfile "$H/ca.crt" "$H/$c.crt" 2>&1) && fail "$c.crt is not expired"
	echo "$out" | grep -q 'certificate has expired' || fail "$c.crt: $out"
done
pass "hand-made dbca, shared dbserver (SANs for 3 nodes, each its own address), dbclient: all expired"

for n in 1 2 3 4; do
	npg_install node$n hand 644 "$H/ca.crt" "$H/server.crt" "$H/client.crt"
	npg_install node$n hand 600 "$H/server.key" "$H/client.key"
done

# ---- the hand-built cluster --------------------------------------------------
node_conf() { # n: what the admin appended to the node's postgresql.conf
	cat <<EOF
# --- set up by hand, following the vendor guide ---
listen_addresses = '$(naddr node$1)'
port = 5432
unix_socket_directories = '$HOME_DB/sock'
ssl = on
ssl_key_file = '$HOME_DB/hand/server.key'
ssl_ca_file = '$HOME_DB/hand/ca.crt'
wal_level = replica
fsync = off
shared_buffers = 16MB
EOF
}
hba() { # trust|strict: the user's own pg_hba.conf, naming each machine by address
	echo "# pg_hba.conf, written by hand"
	if [ "$1" = trust ]; then
		echo "local all all peer map=hand"
		echo "hostssl replication postgres $A2/32 trust"
		echo "hostssl replication postgres $A3/32 trust"
	else
		echo "local all all peer"
	fi
	for a in "$ADM" "$A4" "$A2" "$A3"; do
		echo "hostssl all postgres $a/32 cert"
	done
	echo "hostssl replication postgres $A2/32 cert"
	echo "hostssl replication postgres $A3/32 cert"
}
# The node's files are written from the host side: root keeps their owner.
conf() { echo "$(nh "$1")/pgdata/$2"; }
lpsql() { npg_psql node"$1" "$2"; }

npg node1 "$PGB/initdb" -D "$HOME_DB/pgdata" -U postgres --auth=reject -E UTF8 --locale=C --no-sync >/dev/null
node_conf 1 >>"$(conf 1 postgresql.conf)"
echo "ssl_cert_file = '$HOME_DB/hand/server.crt'" >>"$(conf 1 postgresql.conf)"
hba trust >"$(conf 1 pg_hba.conf)"
echo "hand dbpkilab postgres" >"$(conf 1 pg_ident.conf)"
npg_ctl node1 start || fail "node1: the hand-built primary did not start; see $(nh 1)/hand/postgres.log"
# The guide sets the certificate with ALTER SYSTEM (postgresql.auto.conf).
lpsql 1 "ALTER SYSTEM SET ssl_cert_file = '$HOME_DB/hand/server.crt'" >/dev/null
lpsql 1 "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g" >/dev/null

for n in 2 3; do
	npg node$n "$PGB/pg_basebackup" -D "$HOME_DB/pgdata" -X stream -c fast --no-sync -R \
		-d "host=node1.lab.test port=5432 user=postgres sslmode=require sslcert=/dev/null/none gssencmode=disable application_name=node$n" \
		>/dev/null 2>&1 || fail "pg_basebackup into node$n"
	node_conf $n >>"$(conf $n postgresql.conf)"
	npg_ctl node$n start || fail "node$n: the hand-built replica did not start; see $(nh $n)/hand/postgres.log"
done
for n in 2 3; do
	npg_until 1000 lpsql $n 'SELECT count(*) FROM t' || fail "rows did not reach node$n"
done
[ "$(lpsql 1 "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 2 ] ||
	fail "the hand-built replicas do not stream"
pass "hand-built: primary + 2 streaming replicas, 1000 rows everywhere"

# node3 goes down; meanwhile the primary writes and recycles the WAL node3
# would need (no slot, wal_keep_size = 0, as built).
npg_ctl node3 stop -m fast
# node2 streams: it must have everything before each checkpoint recycles.
for i in 1 2 3; do
	lpsql 1 "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1000 * $i + 1, 1000 * $i + 1000) g; SELECT pg_switch_wal()" >/dev/null
	npg_until $((1000 * i + 1000)) lpsql 2 'SELECT count(*) FROM t' || fail "rows did not reach node2"
	lpsql 1 CHECKPOINT >/dev/null
done

# The certificates are expired: replicas connect with verify-full as the
# guide says, and fail.
for n in 2 3; do
	auto=$(conf $n postgresql.auto.conf)
	sed -i "s|sslmode=require|sslmode=verify-full sslrootcert=$HOME_DB/hand/ca.crt|; s|sslcert=/dev/null/none|sslcert=$HOME_DB/hand/client.crt sslkey=$HOME_DB/hand/client.key|" "$auto"
	grep -q "sslmode=verify-full" "$auto" || fail "could not switch node$n to verify-full"
done
npg_ctl node2 restart -m fast
npg_until 0 lpsql 1 'SELECT count(*) FROM pg_stat_replication' || fail "replication still works"
for _ in $(seq 1 30); do
	grep -q 'certificate verify failed' "$(nh 2)/hand/postgres.log" && break
	sleep 0.5
done
grep -q 'certificate verify failed' "$(nh 2)/hand/postgres.log" ||
	{ tail -n 5 "$(nh 2)/hand/postgres.log"; fail "node2 does not fail on the expired certificate"; }
lpsql 1 "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(4001, 4500) g" >/dev/null
[ "$(lpsql 2 'SELECT count(*) FROM t')" = 4000 ] || fail "node2 still receives rows"
old_conn="host=node1.lab.test port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$H/ca.crt sslcert=$H/client.crt sslkey=$H/client.key gssencmode=disable connect_timeout=5"
if err=$(adm psql -X -At -d "$old_conn" -c 'SELECT 1' 2>&1); then fail "verify-full with the expired certificates works"; fi
echo "$err" | grep -q 'certificate verify failed' || fail "unexpected error: $err"
res=$(adm openssl s_client -starttls postgres -connect "node1.lab.test:5432" -CAfile "$H/ca.crt" \
	-verify_return_error -verify_hostname node1.lab.test </dev/null 2>&1) && fail "openssl accepts the expired certificate"
echo "$res" | grep -q 'certificate has expired' || fail "openssl s_client: $(echo "$res" | tail -n 3)"
pass "expired: verify-full refused ('certificate verify failed'), replication broken, node2 4000 rows, primary 4500"

SUM="SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM t"
before=$(lpsql 1 "$SUM")
sysid() { npg_sysid "node$1" "${2:-}"; }
sys1=$(sysid 1)
sys2=$(sysid 2)
[ -n "$sys1" ] && [ "$(sysid 3)" = "$sys1" ] || fail "node3 is not a clone of node1 ($sys1)"
# node3's relation files, while it is stopped: what "kept aside" must hold
# (dbpki starts it as a standby before it finds the WAL gap, and a start
# rewrites pg_internal.init, the relation cache, not data).
relsum() { (cd "$1/base" && find . -type f ! -name pg_internal.init -exec md5sum {} + | sort | md5sum); }
rel3=$(relsum "$(nh 3)/pgdata")
# The user's final pg_hba.conf: no map for the SSH user, so dbpki's probe
# cannot use SQL and has to read pg_controldata.
for n in 1 2 3; do
	hba strict >"$(conf $n pg_hba.conf)"
done
npg_ctl node1 reload
npg_ctl node2 reload
for _ in $(seq 1 60); do # a reload is asynchronous: wait until it took
	lpsql 1 'SELECT 1' >/dev/null 2>&1 || break
	sleep 0.5
done
if lpsql 1 'SELECT 1' >/dev/null 2>&1; then fail "the SSH user still gets in over the socket"; fi
hba_sum=$(md5sum <"$(conf 1 pg_hba.conf)")
# The admin kept a file of the same name in what becomes dbpki's cert_dir.
echo "# my own notes, not dbpki's" >"$(nh 1)/certs/pg_hba.conf"
chown --reference="$(nh 1)/certs" "$(nh 1)/certs/pg_hba.conf"
conf_before=$(md5sum <"$(conf 1 postgresql.conf)")

# ---- the 3 a.m. run ----------------------------------------------------------
[ -z "$(ls -A "$LAB/state")" ] || fail "state_dir is not fresh"
t0=$SECONDS
rc=0
dbpki rotate -c "$INI" >"$LAB/rotate.out" 2>&1 || rc=$?
cat "$LAB/rotate.out"
[ "$rc" = 0 ] || fail "rotate exited $rc"
pass "dbpki rotate (run on the admin side) exited 0 in $((SECONDS - t0)) s"

grep -q '^found: primary: node1 (in production, timeline 1); replicas: node2 (in archive recovery, not streaming), node3 (not running (shut down in recovery, standby.signal): would start as a standby)$' "$LAB/rotate.out" ||
	fail "rotate did not print what it found, as expected"
grep -q 'creating a NEW dbca' "$LAB/rotate.out" || fail "rotate did not say it creates a new dbca"
grep -Eq '^downtime: node1 \(primary\) was unavailable for [0-9]+ ms' "$LAB/rotate.out" ||
	fail "rotate did not report the primary's downtime"
grep -q 'node3: cannot catch up (requested WAL segment [0-9A-F]* has already been removed): cloning again' "$LAB"/state/journal/*.jsonl ||
	fail "node3 was not re-cloned for its WAL gap"
pass "rotate printed the primary it found, the new dbca and the primary's downtime"

# ---- checks without dbpki ------------------------------------------------------
C=$(nfs node4)/home/dbpkiapp/certs/current
[ -f "$C/client.key" ] || fail "client node has no client.key"
conn() { echo "host=node$1.lab.test port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$C/dbca.crt sslcert=$C/client.crt sslkey=$C/client.key gssencmode=disable connect_timeout=5"; }
q() { adm psql -X -At -d "$(conn "$1")" -c "$2"; }
[ "$(q 1 'SELECT pg_is_in_recovery()')" = f ] || fail "node1 is not the primary"
[ "$(q 1 "$SUM")" = "$before" ] || fail "rows changed on the primary: $(q 1 "$SUM") vs $before"
[ "$(sysid 1)" = "$sys1" ] || fail "the primary's database system changed"
for n in 2 3; do
	[ "$(q $n 'SELECT pg_is_in_recovery()')" = t ] || fail "node$n is not a replica"
	npg_until "$before" q $n "$SUM" || fail "node$n does not have every row"
done
pass "every row kept (4500, same checksum) on the primary and both replicas; same database system"

new_rows() { # first last when: written on the primary, on both replicas in the end
	q 1 "INSERT INTO t SELECT g, md5(g::text) FROM generate_series($1, $2) g" >/dev/null
	after=$(q 1 "$SUM")
	for n in 2 3; do
		npg_until "$after" q $n "$SUM" || fail "rows written $3 did not reach node$n"
	done
}
STREAM="SELECT r.application_name || ' ' || host(r.client_addr) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND s.client_dn = '/CN=postgres' ORDER BY 1"
want_stream=$(printf 'node2 %s\nnode3 %s' "$A2" "$A3")
streams() { # when: each replica over SSL as CN=postgres, from its own address
	npg_until "$want_stream" q 1 "$STREAM" ||
		fail "$1: expected node2 and node3 streaming over SSL as CN=postgres from $A2 and $A3, saw: $(q 1 "$STREAM" | tr '\n' ';')"
}
new_rows 4501 4600 "after rotate"
streams "after rotate"
for n in 2 3; do
	grep -q "sslmode=verify-full sslrootcert=$HOME_DB/certs/current/dbca.crt" "$(nh $n)/certs/postgresql.dbpki.conf" ||
		fail "node$n does not replicate with verify-full and the new dbca"
done
pass "rows written after rotate reach both replicas; both stream over verify-full TLS as CN=postgres, each from its own address"

NEWCA=$C/dbca.crt
cmp -s "$NEWCA" "$H/ca.crt" && fail "the dbca was not replaced"
served() { # n: node n's certificate, verified by name against the new dbca -> $LAB/servedN.pem
	local res
	res=$(adm openssl s_client -starttls postgres -connect "node$1.lab.test:5432" -CAfile "$NEWCA" \
		-verify_return_error -verify_hostname "node$1.lab.test" </dev/null 2>&1) ||
		{ echo "$res" | tail -5; fail "openssl s_client refused node$1"; }
	echo "$res" | grep -q 'Verify return code: 0 (ok)' || fail "node$1: no verify ok"
	echo "$res" | openssl x509 >"$LAB/served$1.pem"
}
serials=
for n in 1 2 3; do
	served $n
	openssl verify -CAfile "$NEWCA" "$LAB/served$n.pem" >/dev/null || fail "node$n's certificate does not chain to the new dbca"
	s=$(npg_serial "$LAB/served$n.pem")
	[ "$s" != "$OLD_SERIAL" ] || fail "node$n still serves the hand-made certificate"
	openssl x509 -in "$LAB/served$n.pem" -noout -ext subjectAltName >"$LAB/san.txt"
	for m in 1 2 3; do
		grep -q "DNS:node$m.lab.test" "$LAB/san.txt" && grep -q "IP Address:$(naddr node$m)" "$LAB/san.txt" ||
			fail "node$n's shared certificate lacks node$m's names"
	done
	serials="$serials $s"
done
[ "$(echo $serials | tr ' ' '\n' | sort -u | wc -l)" = 1 ] || fail "the database nodes do not share one certificate:$serials"
NEW_SERIAL=$s
pass "every node serves the new shared certificate by name (serial differs from the hand-made one, chains to the new dbca, SANs for all 3 nodes and addresses)"

[ "$(sysid 2)" = "$sys2" ] || fail "node2's data directory was replaced"
ls -d "$(nh 2)"/pgdata.dbpki-old-* >/dev/null 2>&1 && fail "node2 was re-cloned, it should have caught up"
old3=$(ls -d "$(nh 3)"/pgdata.dbpki-old-* 2>/dev/null | head -n 1)
[ -n "$old3" ] && [ -s "$old3/PG_VERSION" ] || fail "node3's old data directory is not kept aside"
[ "$(sysid 3 "$HOME_DB/$(basename "$old3")")" = "$sys1" ] || fail "node3's old data directory lost its pg_control"
[ "$(relsum "$old3")" = "$rel3" ] || fail "node3's old data directory does not hold its relation files as they were"
[ "$(sysid 3)" = "$sys1" ] || fail "node3's new data directory is not a clone of node1"
pass "node2 caught up in place; node3 was re-cloned, its old data directory kept as $(basename "$old3"), every relation file as it was"

bad=$(find "$LAB"/nodes/*/fs/home "$LAB/state" -name '*.key' ! -perm 0600 | wc -l)
[ "$bad" = 0 ] || { find "$LAB"/nodes/*/fs/home "$LAB/state" -name '*.key' -exec stat -c '%a %n' {} +; fail "keys not 0600"; }
[ -z "$(find "$LAB/nodes" -name 'dbca.key')" ] || fail "the CA key left the admin host"
pass "every key is 0600; the CA key stayed on the admin host"

[ "$(md5sum <"$(conf 1 pg_hba.conf)")" = "$hba_sum" ] || fail "the user's pg_hba.conf was changed"
[ "$(q 1 'SHOW hba_file')" = "$HOME_DB/certs/pg_hba.conf" ] || fail "dbpki's pg_hba.conf is not in effect"
bak=$(ls "$(nh 1)"/pgdata/postgresql.conf.dbpki-old-* | head -n 1)
[ "$(md5sum <"$bak")" = "$conf_before" ] || fail "no faithful copy of the user's postgresql.conf"
grep -q 'set up by hand' "$(conf 1 postgresql.conf)" || fail "the user's lines left postgresql.conf"
grep -q "^ssl_cert_file = '$HOME_DB/hand/server.crt'" "$(conf 1 postgresql.conf)" || fail "the user's ssl_cert_file line was edited"
grep -q "^ssl_cert_file" "$(nh 1)"/pgdata/postgresql.auto.conf.dbpki-old-* || fail "the ALTER SYSTEM setting was not kept aside"
grep -q "^ssl_cert_file" "$(conf 1 postgresql.auto.conf)" && fail "the ALTER SYSTEM ssl_cert_file still overrides dbpki"
grep -qx "# my own notes, not dbpki's" "$(nh 1)"/certs/pg_hba.conf.dbpki-old-* || fail "a file dbpki replaced in cert_dir was not kept"
pass "the user's pg_hba.conf untouched; postgresql.conf, postgresql.auto.conf (and a cert_dir/pg_hba.conf not dbpki's) kept beside as *.dbpki-old-<time>; dbpki's settings in effect"

# ---- power loss of every machine -----------------------------------------------
"$NETLAB" reboot all
# Known gap (issue 15): in the pgdata layout dbpki starts the server with
# pg_ctl alone and nothing on the node starts it at boot, so after a power
# loss every database node is up (sshd) but its PostgreSQL is not.  When
# issue 15 makes them come back, this check fails and is to be inverted.
for n in 1 2 3; do
	st=0
	adm "$PGB/pg_isready" -q -h "node$n.lab.test" -p 5432 -t 5 || st=$?
	[ "$st" = 2 ] || fail "node$n: pg_isready exited $st after the power loss (2, no server, expected: the pgdata layout has no boot start, issue 15)"
done
# Started by hand, as the DBA would: the login user's pg_ctl, dbpki's log.
for n in 1 2 3; do
	on node$n "$PGB/pg_ctl -D pgdata -l certs/postgresql.log -w -t 60 start" >/dev/null ||
		fail "node$n: pg_ctl start after the power loss failed; see $(nh $n)/certs/postgresql.log"
done
for n in 1 2 3; do
	served $n
	[ "$(npg_serial "$LAB/served$n.pem")" = "$NEW_SERIAL" ] || fail "node$n serves another certificate after the power loss"
done
streams "after reboot all"
new_rows 4601 4700 "after the power loss"
pass "reboot all: no PostgreSQL came back by itself (pgdata layout, issue 15); started by hand, every node serves the rotated certificate, both replicas stream from their own addresses, every row kept"
