#!/usr/bin/env bash
# Issue 5, part B: `dbpki rotate` on a cluster dbpki did NOT build.
#
# Built here by hand, with the openssl CLI and PostgreSQL's own tools only,
# the way the vendor guide says: one dbca, ONE shared dbserver certificate
# for every database node, one dbclient certificate, all of them EXPIRED
# (openssl ca -startdate/-enddate in the past).  A primary (settings in its
# own postgresql.conf, ssl_cert_file by ALTER SYSTEM, its own pg_hba.conf)
# and two replicas (pg_basebackup -R) that streamed while "the certificates
# were still good" (simulated: sslmode=require and a temporary trust line);
# node3 was stopped long enough ago that the primary recycled the WAL it
# needs.  Then the certificates "expire": the replicas use verify-full as
# the guide says, and verify-full connections and replication fail.
#
# Then `dbpki rotate` with a fresh state_dir, and checks that do not use
# dbpki: every row is kept (count + checksum), rows written after the
# rotate reach both replicas, which stream over verify-full with the new
# dbclient certificate (pg_stat_replication JOIN pg_stat_ssl), the served
# certificate is new and chains to the new dbca (openssl s_client, SANs),
# the primary kept its database system, node2 caught up in place, node3
# was re-cloned with its old data directory moved aside, keys are 0600,
# the user's pg_hba.conf is untouched and every file dbpki changed has a
# timestamped copy beside it.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.55
PGB=/usr/lib/postgresql/15/bin
lab_dir

lab_up $NET primary,replica,replica,client
sed -i 's/^mode = per-node$/mode = shared/' "$INI"
grep -q '^mode = shared$' "$INI" || fail "could not switch the inventory to mode = shared"
U=$("$DBPKI_ROOT/tests/lab/lab.sh" user)
as() { runuser -u "$U" -- "$@"; }
nd() { echo "$LAB/nodes/node$1"; }

# ---- the hand-made PKI, all expired ----------------------------------------
H=$LAB/hand-pki
mkdir -m 700 "$H" "$H/newcerts"
: >"$H/index.txt"
echo 1000 >"$H/serial"
START=$(date -u -d '400 days ago' +%Y%m%d%H%M%SZ)
END=$(date -u -d '2 hours ago' +%Y%m%d%H%M%SZ)
cat >"$H/ca.cnf" <<EOF
[ca]
default_ca = hand
[hand]
database = $H/index.txt
new_certs_dir = $H/newcerts
serial = $H/serial
default_md = sha256
policy = pol
unique_subject = no
[pol]
commonName = supplied
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:node1.lab.test,IP:$NET.11,DNS:node2.lab.test,IP:$NET.12,DNS:node3.lab.test,IP:$NET.13
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOF
hand_cert() { # name subject extensions [ca-signing-options...]
	local name=$1 subj=$2 ext=$3
	shift 3
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$H/$name.key" -out "$H/$name.csr" -subj "$subj" \
		-config "$H/ca.cnf" 2>/dev/null
	openssl ca -batch -notext -config "$H/ca.cnf" "$@" -in "$H/$name.csr" \
		-out "$H/$name.crt" -extensions "$ext" -startdate "$START" \
		-enddate "$END" >/dev/null 2>&1 || fail "openssl ca could not make $name"
}
hand_cert ca "/CN=hand-made dbca" v3_ca -selfsign -keyfile "$H/ca.key"
hand_cert server "/CN=node1.lab.test" v3_server -cert "$H/ca.crt" -keyfile "$H/ca.key"
hand_cert client "/CN=postgres" v3_client -cert "$H/ca.crt" -keyfile "$H/ca.key"
OLD_SERIAL=$(openssl x509 -in "$H/server.crt" -noout -serial | cut -d= -f2 | tr A-F a-f)
for c in ca server client; do
	out=$(openssl verify -CAfile "$H/ca.crt" "$H/$c.crt" 2>&1) && fail "$c.crt is not expired"
	echo "$out" | grep -q 'certificate has expired' || fail "$c.crt: $out"
done
pass "hand-made dbca, shared dbserver (SANs for 3 nodes), dbclient: all expired"

for n in 1 2 3 4; do
	install -d -m 700 -o "$U" "$(nd $n)/hand"
	install -m 644 -o "$U" "$H/ca.crt" "$H/server.crt" "$H/client.crt" "$(nd $n)/hand/"
	install -m 600 -o "$U" "$H/server.key" "$H/client.key" "$(nd $n)/hand/"
done

# ---- the hand-built cluster --------------------------------------------------
node_conf() { # n: what the admin appended to the node's postgresql.conf
	cat <<EOF
# --- set up by hand, following the vendor guide ---
listen_addresses = '$NET.1$1'
port = 5432
unix_socket_directories = '$(nd $1)/sock'
ssl = on
ssl_key_file = '$(nd $1)/hand/server.key'
ssl_ca_file = '$(nd $1)/hand/ca.crt'
wal_level = replica
fsync = off
shared_buffers = 16MB
EOF
}
hba() { # trust|strict: the user's own pg_hba.conf
	echo "# pg_hba.conf, written by hand"
	if [ "$1" = trust ]; then
		echo "local all all peer map=hand"
		echo "hostssl replication postgres 127.0.0.1/32 trust"
	else
		echo "local all all peer"
	fi
	echo "hostssl all postgres 127.0.0.1/32 cert"
	echo "hostssl replication postgres 127.0.0.1/32 cert"
}
pgctl() { # n args...
	local n=$1
	shift
	as "$PGB/pg_ctl" -D "$(nd $n)/pgdata" -l "$(nd $n)/hand/postgres.log" -w -t 60 "$@" >/dev/null
}
lpsql() { # n sql: over the node's own socket, as the hand-built map allows
	as "$PGB/psql" -X -At -h "$(nd $1)/sock" -U postgres -d postgres -v ON_ERROR_STOP=1 -c "$2"
}
until_eq() { # want cmd...: retry for up to 30 s
	local want=$1 i got
	shift
	for i in $(seq 1 60); do
		got=$("$@" 2>/dev/null || true)
		[ "$got" = "$want" ] && return 0
		sleep 0.5
	done
	echo "want '$want', got '$got'" >&2
	return 1
}

as "$PGB/initdb" -D "$(nd 1)/pgdata" -U postgres --auth=reject -E UTF8 --locale=C --no-sync >/dev/null
node_conf 1 | as tee -a "$(nd 1)/pgdata/postgresql.conf" >/dev/null
echo "ssl_cert_file = '$(nd 1)/hand/server.crt'" | as tee -a "$(nd 1)/pgdata/postgresql.conf" >/dev/null
hba trust | as tee "$(nd 1)/pgdata/pg_hba.conf" >/dev/null
echo "hand $U postgres" | as tee "$(nd 1)/pgdata/pg_ident.conf" >/dev/null
pgctl 1 start
# The guide sets the certificate with ALTER SYSTEM (postgresql.auto.conf).
lpsql 1 "ALTER SYSTEM SET ssl_cert_file = '$(nd 1)/hand/server.crt'" >/dev/null
lpsql 1 "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g" >/dev/null

for n in 2 3; do
	as "$PGB/pg_basebackup" -D "$(nd $n)/pgdata" -X stream -c fast --no-sync -R \
		-d "host=node1.lab.test hostaddr=$NET.11 port=5432 user=postgres sslmode=require sslcert=/dev/null/none gssencmode=disable application_name=node$n" \
		>/dev/null 2>&1 || fail "pg_basebackup into node$n"
	node_conf $n | as tee -a "$(nd $n)/pgdata/postgresql.conf" >/dev/null
	pgctl $n start
done
for n in 2 3; do
	until_eq 1000 lpsql $n 'SELECT count(*) FROM t' || fail "rows did not reach node$n"
done
[ "$(lpsql 1 "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 2 ] ||
	fail "the hand-built replicas do not stream"
pass "hand-built: primary + 2 streaming replicas, 1000 rows everywhere"

# node3 goes down; meanwhile the primary writes and recycles the WAL node3
# would need (no slot, wal_keep_size = 0, as built).
pgctl 3 stop -m fast
# node2 streams: it must have everything before each checkpoint recycles.
for i in 1 2 3; do
	lpsql 1 "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1000 * $i + 1, 1000 * $i + 1000) g; SELECT pg_switch_wal()" >/dev/null
	until_eq $((1000 * i + 1000)) lpsql 2 'SELECT count(*) FROM t' || fail "rows did not reach node2"
	lpsql 1 CHECKPOINT >/dev/null
done

# The certificates are expired: replicas connect with verify-full as the
# guide says, and fail.
for n in 2 3; do
	auto=$(nd $n)/pgdata/postgresql.auto.conf
	sed -i "s|sslmode=require|sslmode=verify-full sslrootcert=$(nd $n)/hand/ca.crt|; s|sslcert=/dev/null/none|sslcert=$(nd $n)/hand/client.crt sslkey=$(nd $n)/hand/client.key|" "$auto"
	grep -q "sslmode=verify-full" "$auto" || fail "could not switch node$n to verify-full"
done
pgctl 2 restart -m fast
until_eq 0 lpsql 1 'SELECT count(*) FROM pg_stat_replication' || fail "replication still works"
for i in $(seq 1 30); do
	grep -q 'certificate verify failed' "$(nd 2)/hand/postgres.log" && break
	sleep 0.5
done
grep -q 'certificate verify failed' "$(nd 2)/hand/postgres.log" ||
	{ tail -n 5 "$(nd 2)/hand/postgres.log"; fail "node2 does not fail on the expired certificate"; }
lpsql 1 "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(4001, 4500) g" >/dev/null
[ "$(lpsql 2 'SELECT count(*) FROM t')" = 4000 ] || fail "node2 still receives rows"
old_conn="host=node1.lab.test hostaddr=$NET.11 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$H/ca.crt sslcert=$H/client.crt sslkey=$H/client.key gssencmode=disable connect_timeout=5"
if err=$(psql -X -At -d "$old_conn" -c 'SELECT 1' 2>&1); then fail "verify-full with the expired certificates works"; fi
echo "$err" | grep -q 'certificate verify failed' || fail "unexpected error: $err"
res=$(openssl s_client -starttls postgres -connect "$NET.11:5432" -CAfile "$H/ca.crt" \
	-verify_return_error -verify_hostname node1.lab.test </dev/null 2>&1) && fail "openssl accepts the expired certificate"
echo "$res" | grep -q 'certificate has expired' || fail "openssl s_client: $(echo "$res" | tail -n 3)"
pass "expired: verify-full refused ('certificate verify failed'), replication broken, node2 4000 rows, primary 4500"

SUM="SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM t"
before=$(lpsql 1 "$SUM")
sysid() { as "$PGB/pg_controldata" "$(nd $1)/pgdata" | sed -n 's/^Database system identifier: *//p'; }
sys1=$(sysid 1)
sys2=$(sysid 2)
# The user's final pg_hba.conf: no map for the SSH user, so dbpki's probe
# cannot use SQL and has to read pg_controldata.
for n in 1 2 3; do
	[ -f "$(nd $n)/pgdata/pg_hba.conf" ] && hba strict | as tee "$(nd $n)/pgdata/pg_hba.conf" >/dev/null
done
pgctl 1 reload
pgctl 2 reload
sleep 0.5
if lpsql 1 'SELECT 1' >/dev/null 2>&1; then fail "the SSH user still gets in over the socket"; fi
hba_sum=$(md5sum <"$(nd 1)/pgdata/pg_hba.conf")
# The admin kept a file of the same name in what becomes dbpki's cert_dir.
echo "# my own notes, not dbpki's" | as tee "$(nd 1)/certs/pg_hba.conf" >/dev/null
conf_before=$(md5sum <"$(nd 1)/pgdata/postgresql.conf")

# ---- the 3 a.m. run ----------------------------------------------------------
[ -z "$(ls -A "$LAB/state")" ] || fail "state_dir is not fresh"
t0=$SECONDS
set +e
"$DBPKI" rotate -c "$INI" >"$LAB/rotate.out" 2>&1
rc=$?
set -e
cat "$LAB/rotate.out"
[ "$rc" = 0 ] || fail "rotate exited $rc"
pass "dbpki rotate exited 0 in $((SECONDS - t0)) s"

grep -q '^found: primary: node1 (in production, timeline 1); replicas: node2 (in archive recovery, not streaming), node3 (not running (shut down in recovery, standby.signal): would start as a standby)$' "$LAB/rotate.out" ||
	fail "rotate did not print what it found, as expected"
grep -q 'creating a NEW dbca' "$LAB/rotate.out" || fail "rotate did not say it creates a new dbca"
grep -Eq '^downtime: node1 \(primary\) was unavailable for [0-9]+ ms' "$LAB/rotate.out" ||
	fail "rotate did not report the primary's downtime"
grep -q 'node3: cannot catch up (requested WAL segment [0-9A-F]* has already been removed): cloning again' "$LAB"/state/journal/*.jsonl ||
	fail "node3 was not re-cloned for its WAL gap"
pass "rotate printed the primary it found, the new dbca and the primary's downtime"

# ---- checks without dbpki ------------------------------------------------------
C=$(nd 4)/certs/current
[ -f "$C/client.key" ] || fail "client node has no client.key"
conn() { echo "host=node$1.lab.test hostaddr=$NET.1$1 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$C/dbca.crt sslcert=$C/client.crt sslkey=$C/client.key gssencmode=disable connect_timeout=5"; }
q() { psql -X -At -d "$(conn "$1")" -c "$2"; }
[ "$(q 1 'SELECT pg_is_in_recovery()')" = f ] || fail "node1 is not the primary"
[ "$(q 1 "$SUM")" = "$before" ] || fail "rows changed on the primary: $(q 1 "$SUM") vs $before"
[ "$(sysid 1)" = "$sys1" ] || fail "the primary's database system changed"
for n in 2 3; do
	[ "$(q $n 'SELECT pg_is_in_recovery()')" = t ] || fail "node$n is not a replica"
	until_eq "$before" q $n "$SUM" || fail "node$n does not have every row"
done
pass "every row kept (4500, same checksum) on the primary and both replicas; same database system"

q 1 "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(4501, 4600) g" >/dev/null
after=$(q 1 "$SUM")
for n in 2 3; do
	until_eq "$after" q $n "$SUM" || fail "rows written after rotate did not reach node$n"
done
streaming=$(q 1 "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND s.client_dn = '/CN=postgres' AND r.application_name IN ('node2','node3')")
[ "$streaming" = 2 ] || fail "expected 2 replicas streaming over SSL with the dbclient certificate, saw $streaming"
for n in 2 3; do
	grep -q "sslmode=verify-full sslrootcert=$(nd $n)/certs/current/dbca.crt" "$(nd $n)/certs/postgresql.dbpki.conf" ||
		fail "node$n does not replicate with verify-full and the new dbca"
done
pass "rows written after rotate reach both replicas; both stream over verify-full TLS as CN=postgres"

NEWCA=$C/dbca.crt
cmp -s "$NEWCA" "$H/ca.crt" && fail "the dbca was not replaced"
serials=
for n in 1 2 3; do
	res=$(openssl s_client -starttls postgres -connect "$NET.1$n:5432" -CAfile "$NEWCA" \
		-verify_return_error -verify_hostname "node$n.lab.test" </dev/null 2>&1) ||
		{ echo "$res" | tail -5; fail "openssl s_client refused node$n"; }
	echo "$res" | grep -q 'Verify return code: 0 (ok)' || fail "node$n: no verify ok"
	openssl s_client -starttls postgres -connect "$NET.1$n:5432" </dev/null 2>/dev/null |
		openssl x509 >"$LAB/served$n.pem"
	openssl verify -CAfile "$NEWCA" "$LAB/served$n.pem" >/dev/null || fail "node$n's certificate does not chain to the new dbca"
	s=$(openssl x509 -in "$LAB/served$n.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
	[ "$s" != "$OLD_SERIAL" ] || fail "node$n still serves the hand-made certificate"
	openssl x509 -in "$LAB/served$n.pem" -noout -ext subjectAltName >"$LAB/san.txt"
	for m in 1 2 3; do
		grep -q "DNS:node$m.lab.test" "$LAB/san.txt" && grep -q "IP Address:$NET.1$m" "$LAB/san.txt" ||
			fail "node$n's shared certificate lacks node$m's names"
	done
	serials="$serials $s"
done
[ "$(echo $serials | tr ' ' '\n' | sort -u | wc -l)" = 1 ] || fail "the database nodes do not share one certificate:$serials"
pass "every node serves the new shared certificate (serial differs from the hand-made one, chains to the new dbca, SANs for all 3 nodes)"

[ "$(sysid 2)" = "$sys2" ] || fail "node2's data directory was replaced"
ls -d "$(nd 2)"/pgdata.dbpki-old-* >/dev/null 2>&1 && fail "node2 was re-cloned, it should have caught up"
old3=$(ls -d "$(nd 3)"/pgdata.dbpki-old-* 2>/dev/null | head -n 1)
[ -n "$old3" ] && [ -s "$old3/PG_VERSION" ] || fail "node3's old data directory is not kept aside"
pass "node2 caught up in place; node3 was re-cloned, its old data directory kept as $(basename "$old3")"

bad=$(find "$LAB/nodes" "$LAB/state" -name '*.key' ! -perm 0600 | wc -l)
[ "$bad" = 0 ] || { find "$LAB/nodes" "$LAB/state" -name '*.key' -exec stat -c '%a %n' {} +; fail "keys not 0600"; }
[ -z "$(find "$LAB/nodes" -name 'dbca.key')" ] || fail "the CA key left the admin host"
pass "every key is 0600; the CA key stayed on the admin host"

[ "$(md5sum <"$(nd 1)/pgdata/pg_hba.conf")" = "$hba_sum" ] || fail "the user's pg_hba.conf was changed"
[ "$(q 1 'SHOW hba_file')" = "$(nd 1)/certs/pg_hba.conf" ] || fail "dbpki's pg_hba.conf is not in effect"
bak=$(ls "$(nd 1)"/pgdata/postgresql.conf.dbpki-old-* | head -n 1)
[ "$(md5sum <"$bak")" = "$conf_before" ] || fail "no faithful copy of the user's postgresql.conf"
grep -q 'set up by hand' "$(nd 1)/pgdata/postgresql.conf" || fail "the user's lines left postgresql.conf"
grep -q "^ssl_cert_file = '$(nd 1)/hand/server.crt'" "$(nd 1)/pgdata/postgresql.conf" || fail "the user's ssl_cert_file line was edited"
grep -q "^ssl_cert_file" "$(nd 1)"/pgdata/postgresql.auto.conf.dbpki-old-* || fail "the ALTER SYSTEM setting was not kept aside"
grep -q "^ssl_cert_file" "$(nd 1)/pgdata/postgresql.auto.conf" && fail "the ALTER SYSTEM ssl_cert_file still overrides dbpki"
grep -qx "# my own notes, not dbpki's" "$(nd 1)"/certs/pg_hba.conf.dbpki-old-* || fail "a file dbpki replaced in cert_dir was not kept"
pass "the user's pg_hba.conf untouched; postgresql.conf, postgresql.auto.conf (and a cert_dir/pg_hba.conf not dbpki's) kept beside as *.dbpki-old-<time>; dbpki's settings in effect"
