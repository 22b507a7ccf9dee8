#!/usr/bin/env bash
# selftest.sh: the netlab self-test (issue 11), done WITHOUT dbpki.  Needs root.
#
# On three stock Debian nodes of tests/lab/netlab.sh (p1: primary on an
# emulated systemd host, r1: replica, app1: client node) it configures a
# correct TLS cluster by hand, the way a DBA would: a CA and certificates
# made with the openssl CLI on the admin side, copied over SSH, settings in
# /etc/postgresql/15/main/conf.d, rules in /etc/postgresql/15/main/pg_hba.conf,
# pg_ctlcluster, a replica made with pg_basebackup.  Then it checks, with
# psql and openssl from the admin namespace:
#   - verify-full by name and by address (IPv4 and IPv6), and that a name the
#     certificate does not carry is refused;
#   - the replica streams over TLS (pg_stat_replication + pg_stat_ssl) and
#     a row written on the primary arrives on the replica;
#   - a pg_hba rule naming app1's address admits app1 and refuses r1
#     (same user, same certificate);
#   - on the emulated systemd host a restart as postgres without sudo is
#     refused (and on r1, no systemd, the same command works);
# then "reboot all" (nothing but the nodes' own boot sequence runs) and
# every check again, plus /run and /tmp empty of what was left there.
# Before and after: the host's pg_lsclusters and /etc/postgresql, and the
# root namespace's addresses, routes and mount points; the suite fails if they differ, or if a lab
# namespace or mount is left.
#
#   tests/lab/selftest.sh            (exit 0 = every check passed)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NETLAB=$here/netlab.sh
[ "$(id -u)" -eq 0 ] || {
	echo "FAIL: selftest.sh needs root (network namespaces); it never skips" >&2
	exit 1
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
pass() { echo "ok: $*"; }

# ------------------------------------------------------------ host snapshot

host_state() {
	echo "## pg_lsclusters"
	pg_lsclusters 2>&1 || true
	echo "## the host's own cluster configuration"
	find /etc/postgresql /etc/postgresql-common -printf '%p %m %u %s %T@\n' 2>&1 | sort
	echo "## ip addr"
	ip -o addr show | sed -E 's/ (valid|preferred)_lft [^ ]+//g'
	echo "## ip route"
	ip route show table all | sed -E 's/ expires [^ ]+//'
	ip -6 route show table all | sed -E 's/ expires [^ ]+//'
	echo "## mount points of the root mount namespace"
	# (other labs' namespace files are theirs; ours are checked by name below)
	awk '{print $5}' /proc/self/mountinfo | grep -v '^/run/netns/netlab-' | sort
}

SNAP=$(mktemp /var/tmp/netlab-selftest-snap.XXXXXX)
host_state >"$SNAP"
export NETLAB_DIR
NETLAB_DIR=$(mktemp -d /var/tmp/netlab-selftest.XXXXXX)
LAB=$NETLAB_DIR

cleanup() {
	local rc=$? id="" after
	trap - EXIT
	if [ -f "$LAB/lab.conf" ]; then
		id=$(sed -n 's/^ID=//p' "$LAB/lab.conf")
		"$NETLAB" down || { echo "FAIL: netlab.sh down failed" >&2; rc=1; }
	fi
	after=$(host_state)
	if [ "$after" != "$(cat "$SNAP")" ]; then
		echo "FAIL: the host changed during the self-test:" >&2
		diff <(cat "$SNAP") <(echo "$after") >&2 || true
		rc=1
	else
		echo "ok: host pg_lsclusters, /etc/postgresql, addresses, routes and mount points as before"
	fi
	if [ -n "$id" ] && ip netns list | grep -q "^netlab-$id-"; then
		echo "FAIL: namespaces of lab $id left: $(ip netns list | grep "^netlab-$id-" | tr '\n' ' ')" >&2
		rc=1
	fi
	if grep -qF "$LAB" /proc/self/mountinfo; then
		echo "FAIL: mounts under $LAB left in the root mount namespace" >&2
		rc=1
	fi
	[ $rc -eq 0 ] || echo "(lab directory kept for inspection: $LAB)" >&2
	[ $rc -ne 0 ] || rm -rf "$LAB"
	rm -f "$SNAP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM # so that cleanup runs then too

# ------------------------------------------------------------ the lab

t0=$SECONDS
"$NETLAB" up --node p1:db:debian:systemd --node r1:db:debian --node app1:client
echo "lab up in $((SECONDS - t0)) s"

# node.conf values: ADDR4/ADDR6 of each node
addr() { sed -n "s/^ADDR$2=//p" "$LAB/nodes/$1/ctl/node.conf"; }
P4=$(addr p1 4) P6=$(addr p1 6) R4=$(addr r1 4) R6=$(addr r1 6) A4=$(addr app1 4) A6=$(addr app1 6)
ADM4=192.0.2.10 ADM6=2001:db8::10

adm() { "$NETLAB" exec admin -- "$@"; }
on() { # NODE CMD: a shell command over SSH as the node's login user
	local n=$1
	shift
	"$NETLAB" ssh "$n" -- "$@"
}

# Stock state, as apt leaves it: a main cluster online, on a systemd host
# started through systemctl, no TLS.
for n in p1 r1; do
	on "$n" pg_lsclusters -h | grep -q '^15 *main *5432 *online ' ||
		fail "$n: no online 15/main cluster after pg_createcluster"
done
grep -q '^systemctl uid=0 start postgresql@15-main$' "$LAB/nodes/p1/ctl/systemctl.log" ||
	fail "p1: pg_createcluster --start did not go through systemctl on the emulated systemd host"
[ ! -s "$LAB/nodes/r1/ctl/systemctl.log" ] || fail "r1 is no systemd host, yet its systemctl was called"
pass "stock nodes: 15/main online on p1 (started via systemctl) and r1"

# ------------------------------------------------------------ the PKI (openssl CLI)

PKI=$LAB/pki
mkdir -m 0700 "$PKI"
ossl() { adm openssl "$@"; }
ossl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 30 -subj "/CN=netlab selftest CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
issue() { # NAME CN SAN|"" : NAME.key, NAME.crt signed by the CA
	local name=$1 cn=$2 san=$3 ext=$PKI/$1.ext
	ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$PKI/$name.key" -out "$PKI/$name.csr" -subj "/CN=$cn" 2>/dev/null
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature"
		if [ -n "$san" ]; then
			echo "extendedKeyUsage=serverAuth"
			echo "subjectAltName=$san"
		else
			echo "extendedKeyUsage=clientAuth"
		fi
	} >"$ext"
	ossl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
		-CAcreateserial -days 30 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
}
issue p1 p1.lab.test "DNS:p1.lab.test,DNS:p1,IP:$P4,IP:$P6"
issue r1 r1.lab.test "DNS:r1.lab.test,DNS:r1,IP:$R4,IP:$R6"
issue admin postgres ""
issue replicator replicator ""
issue app app ""
chmod 0600 "$PKI"/*.key
pass "CA and certificates made with the openssl CLI"

# ------------------------------------------------------------ configure by hand

ship() { # NODE DIR FILE...: copy files over SSH into DIR (mode 0700) on the node
	local n=$1 dir=$2
	shift 2
	tar -C "$PKI" -cf - "$@" | on "$n" "umask 077 && mkdir -p $dir && tar -C $dir -xf -"
}
CONF=/etc/postgresql/15/main
for n in p1 r1; do
	ship "$n" "$CONF/tls" "$n.crt" "$n.key" ca.crt
	on "$n" "cat > $CONF/conf.d/tls.conf" <<EOF
# TLS, configured by hand (tests/lab/selftest.sh)
ssl = on
ssl_cert_file = '$CONF/tls/$n.crt'
ssl_key_file = '$CONF/tls/$n.key'
ssl_ca_file = '$CONF/tls/ca.crt'
ssl_min_protocol_version = 'TLSv1.2'
EOF
	on "$n" "cat >> $CONF/pg_hba.conf" <<EOF
# netlab selftest: certificates only, each rule naming the node it admits
hostssl all         postgres   $ADM4/32   cert
hostssl all         postgres   $ADM6/128  cert
hostssl replication replicator $R4/32     cert
hostssl replication replicator $R6/128    cert
hostssl appdb       app        $A4/32     cert
hostssl appdb       app        $A6/128    cert
EOF
done
ship r1 /var/lib/postgresql/tls replicator.crt replicator.key ca.crt app.crt app.key
# shellcheck disable=SC2016 # expanded on app1
ship app1 '$HOME/.postgresql' app.crt app.key ca.crt
on app1 'cd ~/.postgresql && mv app.crt postgresql.crt && mv app.key postgresql.key && mv ca.crt root.crt'

# p1 runs under (emulated) systemd: restarted as root, i.e. through systemctl.
"$NETLAB" exec p1 -- pg_ctlcluster 15 main restart
grep -q '^systemctl uid=0 restart postgresql@15-main$' "$LAB/nodes/p1/ctl/systemctl.log" ||
	fail "p1: pg_ctlcluster restart as root did not go through systemctl"
on p1 psql -X -q -v ON_ERROR_STOP=1 <<'EOF'
CREATE ROLE replicator LOGIN REPLICATION;
CREATE ROLE app LOGIN;
CREATE DATABASE appdb OWNER app;
CREATE TABLE IF NOT EXISTS selftest (id int PRIMARY KEY, at text);
EOF

# r1 becomes a replica: a fresh copy of p1 over TLS (verify-full).
RCONN="host=p1.lab.test user=replicator sslmode=verify-full sslrootcert=/var/lib/postgresql/tls/ca.crt sslcert=/var/lib/postgresql/tls/replicator.crt sslkey=/var/lib/postgresql/tls/replicator.key application_name=r1"
on r1 "pg_ctlcluster 15 main stop && rm -rf /var/lib/postgresql/15/main/* && pg_basebackup -d '$RCONN' -D /var/lib/postgresql/15/main -R -X stream -c fast && pg_ctlcluster 15 main start"
pass "TLS configured by hand: conf.d, /etc hba, pg_ctlcluster, pg_basebackup"

# ------------------------------------------------------------ the checks

ADMCONN="user=postgres dbname=postgres sslmode=verify-full sslrootcert=$PKI/ca.crt sslcert=$PKI/admin.crt sslkey=$PKI/admin.key connect_timeout=10"
apsql() { # CONNINFO SQL: psql from the admin side
	adm env PGAPPNAME=selftest psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

wait_streaming() { # bounded (60 s): r1 shows up in p1's pg_stat_replication
	for _ in $(seq 1 300); do
		[ "$(apsql "host=p1.lab.test $ADMCONN" "SELECT state FROM pg_stat_replication WHERE application_name = 'r1'" 2>/dev/null)" = streaming ] && return 0
		sleep 0.2
	done
	return 1
}

check_verify_full() {
	local n h want out
	for n in p1 r1; do
		for h in "$n.lab.test" "$(addr "$n" 4)" "$(addr "$n" 6)"; do
			out=$(apsql "host=$h $ADMCONN" "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()") ||
				fail "$n: psql with sslmode=verify-full to host=$h failed"
			[[ $out = "t|TLSv1."[23] ]] || fail "$n: host=$h: pg_stat_ssl says '$out', not TLS"
		done
		# The other node's name on this node's address: must be refused.
		want=$([ "$n" = p1 ] && echo r1.lab.test || echo p1.lab.test)
		if out=$(apsql "host=$want hostaddr=$(addr "$n" 4) $ADMCONN" "SELECT 1" 2>&1); then
			fail "$n: verify-full accepted its certificate for the name $want"
		fi
		[[ $out = *"does not match host name"* ]] || fail "$n: wrong-name refusal said: $out"
		# openssl, by name and by address, against the CA only
		adm openssl s_client -starttls postgres -connect "$n.lab.test:5432" -CAfile "$PKI/ca.crt" \
			-verify_return_error -verify_hostname "$n.lab.test" </dev/null >"$LAB/s_client.out" 2>&1 ||
			fail "$n: openssl s_client -verify_hostname $n.lab.test failed: $(tail -3 "$LAB/s_client.out")"
		grep -q 'Verify return code: 0 (ok)' "$LAB/s_client.out" || fail "$n: openssl did not verify by name"
		adm openssl s_client -starttls postgres -connect "$(addr "$n" 4):5432" -CAfile "$PKI/ca.crt" \
			-verify_return_error -verify_ip "$(addr "$n" 4)" </dev/null >"$LAB/s_client.out" 2>&1 ||
			fail "$n: openssl s_client -verify_ip $(addr "$n" 4) failed: $(tail -3 "$LAB/s_client.out")"
		if adm openssl s_client -starttls postgres -connect "$n.lab.test:5432" -CAfile "$PKI/ca.crt" \
			-verify_return_error -verify_hostname "$want" </dev/null >"$LAB/s_client.out" 2>&1; then
			fail "$n: openssl accepted the certificate for $want"
		fi
	done
	pass "verify-full by name and by IPv4/IPv6 address on p1 and r1 (psql, openssl); wrong name refused"
}

check_replication() {
	local out v
	wait_streaming || fail "r1 is not streaming from p1 (pg_stat_replication); see $LAB/nodes/r1/fs/var/log/postgresql/"
	out=$(apsql "host=p1.lab.test $ADMCONN" "SELECT r.client_addr, s.ssl, s.version FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = 'r1' AND r.state = 'streaming'")
	[[ $out = "$R4|t|TLSv1."[23] || $out = "$R6|t|TLSv1."[23] ]] ||
		fail "p1: r1's walsender is not TLS from r1's address: '$out'"
	out=$(apsql "host=r1.lab.test $ADMCONN" "SELECT status, conninfo LIKE '%sslmode=verify-full%' FROM pg_stat_wal_receiver")
	[ "$out" = "streaming|t" ] || fail "r1: wal receiver: '$out'"
	v="row-$RANDOM-$SECONDS"
	apsql "host=p1.lab.test $ADMCONN" "INSERT INTO selftest VALUES ($ROUND, '$v')" >/dev/null
	for _ in $(seq 1 150); do
		[ "$(apsql "host=r1.lab.test $ADMCONN" "SELECT at FROM selftest WHERE id = $ROUND")" = "$v" ] && break
		sleep 0.2
	done
	[ "$(apsql "host=r1.lab.test $ADMCONN" "SELECT at FROM selftest WHERE id = $ROUND")" = "$v" ] ||
		fail "r1: the row written on p1 did not arrive within 30 s"
	pass "r1 streams from p1 over TLS (pg_stat_replication + pg_stat_ssl), verify-full; a row arrived"
}

check_hba() {
	local out
	out=$(on app1 psql -X -At -d "'host=p1.lab.test dbname=appdb user=app sslmode=verify-full'" \
		-c "'SELECT current_user, ssl, inet_client_addr() FROM pg_stat_ssl WHERE pid = pg_backend_pid()'") ||
		fail "app1: the pg_hba rule naming app1's address did not admit it"
	[[ $out = "app|t|$A4" || $out = "app|t|$A6" ]] || fail "app1: admitted as '$out'"
	if out=$(on r1 psql -X -At -d "'host=p1.lab.test dbname=appdb user=app sslmode=verify-full sslrootcert=/var/lib/postgresql/tls/ca.crt sslcert=/var/lib/postgresql/tls/app.crt sslkey=/var/lib/postgresql/tls/app.key'" -c "'SELECT 1'" 2>&1); then
		fail "r1: admitted to appdb as app although no pg_hba rule names its address"
	fi
	[[ $out = *"no pg_hba.conf entry for host \"$R4\""* || $out = *"no pg_hba.conf entry for host \"$R6\""* ]] ||
		fail "r1: refused, but not by pg_hba for its own address: $out"
	pass "pg_hba rule naming app1's address admits app1 and refuses r1 with the same certificate"
}

check_systemd_refusal() {
	local out before
	before=$(wc -l <"$LAB/nodes/p1/ctl/systemctl.log")
	if out=$(on p1 pg_ctlcluster 15 main restart 2>&1); then
		fail "p1 (emulated systemd): restart as postgres without sudo was not refused"
	fi
	[[ $out = *"cluster is running from systemd, can only restart it as root"* ]] ||
		fail "p1: restart as postgres refused, but not by pg_ctlcluster's systemd check: $out"
	tail -n +$((before + 1)) "$LAB/nodes/p1/ctl/systemctl.log" | grep -q '^systemctl uid=[1-9][0-9]* is-active -q postgresql@15-main$' ||
		fail "p1: pg_ctlcluster did not ask systemctl is-active as postgres"
	on p1 pg_lsclusters -h | grep -q '^15 *main *5432 *online ' || fail "p1: cluster not online after the refused restart"
	# The contrast: r1 has no systemd, the same command works there.
	on r1 pg_ctlcluster 15 main restart || fail "r1 (no systemd): restart as postgres failed"
	pass "p1 (emulated systemd): restart as postgres refused as on a real host; r1 (no systemd): allowed"
}

ROUND=1
check_verify_full
check_replication
check_hba
check_systemd_refusal

# ------------------------------------------------------------ reboot all

for n in p1 r1 app1; do
	"$NETLAB" exec "$n" -- sh -c 'echo left > /run/selftest-marker && echo left > /tmp/selftest-marker'
done
before=$(wc -l <"$LAB/nodes/p1/ctl/systemctl.log")
t1=$SECONDS
"$NETLAB" reboot all
echo "reboot all in $((SECONDS - t1)) s"
for n in p1 r1 app1; do
	# shellcheck disable=SC2016 # expanded in the node
	"$NETLAB" exec "$n" -- sh -c '[ ! -e /run/selftest-marker ] && [ -z "$(ls -A /tmp)" ]' ||
		fail "$n: /run or /tmp not empty after reboot"
	[ "$("$NETLAB" exec "$n" -- hostname)" = "$n" ] || fail "$n: host name lost in reboot"
done
tail -n +$((before + 1)) "$LAB/nodes/p1/ctl/systemctl.log" | grep -q '^systemctl uid=0 start postgresql@15-main$' ||
	fail "p1: the boot sequence did not start the cluster through systemctl"
pass "reboot all: /run and /tmp empty, host names kept, clusters started by the boot sequence"

ROUND=2
check_verify_full
check_replication
check_hba
check_systemd_refusal
echo "self-test done in $((SECONDS - t0)) s"
