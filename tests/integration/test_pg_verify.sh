#!/usr/bin/env bash
# The pg module against a real primary + streaming replica built with the
# openssl CLI and PostgreSQL's own tools (not with dbpki): role probe,
# served serial, replication over SSL, and the ways a verify-full connection
# must be refused.  Network 127.0.30.0/24.
set -u
ROOT=${DBPKI_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${DBPKI_BUILD:-$ROOT/build}
PGPROBE=${PGPROBE:-$BUILD/tools/pgprobe}
. "$ROOT/tests/integration/pg_lib.sh"

[ -x "$PGPROBE" ] || { echo "FAIL: $PGPROBE not built (make $PGPROBE)"; exit 1; }
pg_lab_user >/dev/null || { echo "FAIL: no lab user"; exit 1; }
LAB=$(pg_lab_dir) || { echo "FAIL: cannot make a lab dir"; exit 1; }
N1=$LAB/nodes/node1
N2=$LAB/nodes/node2
PKI=$LAB/pki
fails=0

cleanup() {
	pg_stop "$N2"
	pg_stop "$N1"
	if [ "${KEEP:-0}" = 1 ] || [ $fails -ne 0 ]; then
		echo "lab kept in $LAB (logs: nodes/*/postgres.log)"
		# a failed run's lab is kept for the logs, but never left running
	else
		rm -rf "$LAB"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# probe ARGS...: pgprobe as the admin would run it against node1/node2.
probe() {
	"$PGPROBE" "$@" --ca "$PKI/dbca.crt" --cert "$PKI/client.crt" \
	    --key "$PKI/client.key" --connect-timeout 5
}
n1() { echo --host node1.lab.test --hostaddr 127.0.30.11 --port 5432; }
n2() { echo --host node2.lab.test --hostaddr 127.0.30.12 --port 5432; }

# expect_refused WHAT PATTERN CMD...: CMD must fail and say PATTERN.
expect_refused() {
	local what=$1 pat=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		bad "$what: accepted, expected refusal ($out)"
	elif grep -q -- "$pat" <<<"$out"; then
		ok "$what: refused: $(head -c 300 <<<"$out")"
	else
		bad "$what: refused, but without '$pat': $out"
	fi
}

# key=value from pgprobe output
kv() { sed -n "s/^$1=//p" <<<"$2"; }

t0=$SECONDS
pg_make_certs "$LAB" node1 node1.lab.test 127.0.30.11 &&
    pg_start_primary "$N1" 127.0.30.11 5432 ||
    { bad "primary did not start"; exit 1; }
pg_make_certs "$LAB" node2 node2.lab.test 127.0.30.12 &&
    pg_start_replica "$N2" 127.0.30.12 5432 node2 node1.lab.test \
    127.0.30.11 5432 || { bad "replica did not start"; exit 1; }
echo "lab up in $((SECONDS - t0))s"

# --- happy path ------------------------------------------------------
if out=$(probe probe $(n1) 2>&1); then
	[ "$(kv in_recovery "$out")" = 0 ] && ok "primary: in_recovery=0" ||
	    bad "primary: $out"
	want=$(pg_cert_serial "$N1/certs/server.crt")
	[ -n "$want" ] && [ "$(kv serial "$out")" = "$want" ] &&
	    ok "primary serves serial $want (openssl x509 -serial)" ||
	    bad "primary serial: got '$(kv serial "$out")' want '$want'"
	seen=$(pg_served_serial 127.0.30.11 5432 node1.lab.test "$PKI/dbca.crt")
	[ "$seen" = "$want" ] && ok "openssl s_client -starttls postgres agrees" ||
	    bad "s_client serial '$seen' != '$want'"
	fp=$(openssl x509 -in "$N1/certs/server.crt" -noout -fingerprint \
	    -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
	[ "$(kv sha256 "$out")" = "$fp" ] && ok "sha256 fingerprint matches" ||
	    bad "sha256 '$(kv sha256 "$out")' != '$fp'"
	na=$(date -d "$(openssl x509 -in "$N1/certs/server.crt" -noout \
	    -enddate | sed 's/notAfter=//')" +%s)
	[ "$(kv not_after "$out")" = "$na" ] && ok "not_after $na" ||
	    bad "not_after '$(kv not_after "$out")' != '$na'"
	[ "$(kv verify_ok "$out")" = 1 ] && [ -n "$(kv protocol "$out")" ] &&
	    [ "$(kv server_version "$out")" -ge 150000 ] &&
	    ok "verify_ok=1 $(kv protocol "$out") $(kv cipher "$out")" ||
	    bad "primary TLS details: $out"
else
	bad "probe primary: $out"
fi

if out=$(probe probe $(n2) 2>&1); then
	[ "$(kv in_recovery "$out")" = 1 ] && ok "replica: in_recovery=1" ||
	    bad "replica: $out"
	[ "$(kv serial "$out")" = "$(pg_cert_serial "$N2/certs/server.crt")" ] &&
	    ok "replica serves its own certificate" || bad "replica serial: $out"
else
	bad "probe replica: $out"
fi

if out=$(probe wait $(n1) --timeout 20 node2 2>&1); then
	ok "pg_wait_streaming: node2 streaming"
else
	bad "wait for node2: $out"
fi
out=$(probe repl $(n1) 2>&1)
if grep -q '^name=node2 addr=127.0.0.1 state=streaming ssl=1 dn=/CN=postgres lag=[0-9]' <<<"$out" &&
    grep -qx 'rows=1' <<<"$out"; then
	ok "pg_replication: $(head -n 1 <<<"$out")"
else
	bad "pg_replication: $out"
fi
# independent of dbpki: the primary's own view, over its unix socket
v=$(pg_local_psql "$N1" "SELECT r.state, s.ssl, s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = 'node2'")
[ "$v" = "streaming|t|/CN=postgres" ] && ok "psql on the socket: $v" ||
    bad "psql on the socket: '$v'"
pg_local_psql "$N1" "CREATE TABLE t AS SELECT 42 AS x" >/dev/null
for _ in $(seq 50); do
	v=$(pg_local_psql "$N2" "SELECT x FROM t" 2>/dev/null)
	[ "$v" = 42 ] && break
	sleep 0.1
done
[ "$v" = 42 ] && ok "a row written on the primary is on the replica" ||
    bad "row not replicated ('$v')"

# pg_service.conf, as a client node holds it (in its cert_dir), run as the
# lab user with the node's copies of the files
C=$N2/certs
cat >"$C/pg_service.conf" <<EOF
[labdb]
host=node1.lab.test
hostaddr=127.0.30.11
port=5432
dbname=postgres
user=postgres
sslmode=verify-full
sslrootcert=$C/dbca.crt
sslcert=$C/client.crt
sslkey=$C/client.key
gssencmode=disable
EOF
chown "$PG_USER:" "$C/pg_service.conf"
v=$(pg_as env PGSERVICEFILE="$C/pg_service.conf" "$PG_BINDIR/psql" \
    "service=labdb" -XAtc "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" 2>&1)
[ "$v" = t ] && ok "pg_service.conf entry connects with verify-full" ||
    bad "pg_service.conf: $v"

# keys on the nodes are 0600 and the lab user's
for k in "$N1"/certs/*.key "$N2"/certs/*.key; do
	m=$(stat -c '%a %U' "$k")
	[ "$m" = "600 $PG_USER" ] || bad "$k is $m"
done
ok "node keys are 0600 $PG_USER"

# --- refusals --------------------------------------------------------
# another CA that did not issue the server certificate
mkdir -p "$LAB/other" && openssl req -x509 -new -newkey ec \
    -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$LAB/other/ca.key" \
    -out "$LAB/other/ca.crt" -subj "/CN=other ca" -days 30 2>/dev/null
expect_refused "wrong CA" "certificate verify failed" \
    "$PGPROBE" probe $(n1) --ca "$LAB/other/ca.crt" --cert "$PKI/client.crt" \
    --key "$PKI/client.key"
expect_refused "host name not in SAN" 'does not match host name "node9.lab.test"' \
    probe probe --host node9.lab.test --hostaddr 127.0.30.11 --port 5432
expect_refused "no client certificate" "valid client certificate" \
    "$PGPROBE" probe $(n1) --ca "$PKI/dbca.crt"
# libpq falls back to ~/.postgresql/postgresql.crt when sslcert is unset;
# the pg module must not (DESIGN.md: nothing per node in the home dir).
H=$LAB/home
mkdir -p "$H/.postgresql" && chmod 700 "$H/.postgresql"
install -m 0644 "$PKI/client.crt" "$H/.postgresql/postgresql.crt"
install -m 0600 "$PKI/client.key" "$H/.postgresql/postgresql.key"
if v=$(HOME=$H "$PG_BINDIR/psql" "host=node1.lab.test hostaddr=127.0.30.11 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$PKI/dbca.crt gssencmode=disable" -XAtc "SELECT 1" 2>&1) &&
    [ "$v" = 1 ]; then
	ok "(plain libpq does use \$HOME/.postgresql/postgresql.crt)"
	expect_refused "no client certificate, one in \$HOME/.postgresql" \
	    "valid client certificate" \
	    env HOME="$H" "$PGPROBE" probe $(n1) --ca "$PKI/dbca.crt"
else
	bad "libpq did not use \$HOME/.postgresql/postgresql.crt: $v"
fi
expect_refused "missing client certificate file" "sslcert $LAB/nope.crt: No such file" \
    "$PGPROBE" probe $(n1) --ca "$PKI/dbca.crt" --cert "$LAB/nope.crt" \
    --key "$PKI/client.key"
expect_refused "nobody listening" "Connection refused" \
    probe probe --host node1.lab.test --hostaddr 127.0.30.19 --port 5432
t1=$SECONDS
expect_refused "wait for a replica that does not exist" "ghost (absent)" \
    probe wait $(n1) --timeout 2 node2 ghost
[ $((SECONDS - t1)) -ge 2 ] && [ $((SECONDS - t1)) -le 8 ] &&
    ok "  ...after waiting its timeout" || bad "wait took $((SECONDS - t1))s"
out=$(probe wait $(n1) --timeout 1 ghost 2>&1)
grep -q 'walsenders seen: node2\[127.0.0.1 streaming ssl=on\]' <<<"$out" &&
    ok "  ...and says what it saw" || bad "wait report: $out"
expect_refused "plain TCP without TLS (psql sslmode=disable)" \
    'no pg_hba.conf entry for host "127.0.0.1", user "postgres", database "postgres", no encryption' \
    env PGSSLCERT=/dev/null/x "$PG_BINDIR/psql" "host=127.0.30.11 port=5432 user=postgres dbname=postgres sslmode=disable gssencmode=disable" -XAtc "SELECT 1"
expect_refused "TLS without a client certificate (psql sslmode=require)" \
    "connection requires a valid client certificate" \
    "$PG_BINDIR/psql" "host=127.0.30.11 port=5432 user=postgres dbname=postgres sslmode=require sslcert=/dev/null/x gssencmode=disable" -XAtc "SELECT 1"
# the hint names the next step
out=$("$PGPROBE" probe $(n1) --ca "$LAB/other/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key" 2>&1)
grep -q "node1.lab.test:5432 (127.0.30.11): cannot connect with sslmode=verify-full: .*(hint: " <<<"$out" &&
    [ "$(wc -l <<<"$out")" = 1 ] && ok "error is one line naming host:port with a hint" ||
    bad "error format: $out"

# --- renewal by reload (what renew relies on) -----------------------
# served_serial_becomes NODE WANT: poll pgprobe until NODE serves WANT.
served_serial_becomes() {
	local want=$1 got=
	shift
	for _ in $(seq 30); do
		got=$(probe probe "$@" 2>/dev/null | sed -n 's/^serial=//p')
		[ "$got" = "$want" ] && return 0
		sleep 0.1
	done
	echo "$got"
	return 1
}
old=$(pg_cert_serial "$N1/certs/server.crt")
pg_make_certs "$LAB" node1 node1.lab.test 127.0.30.11
new=$(pg_cert_serial "$N1/certs/server.crt")
pg_local_psql "$N1" "SELECT pg_reload_conf()" >/dev/null
if [ "$new" != "$old" ] && got=$(served_serial_becomes "$new" $(n1)); then
	ok "new certificate served after pg_reload_conf() (no restart)"
else
	bad "after reload: serving '${got:-}', want '$new' (old '$old')"
fi
probe wait $(n1) --timeout 10 node2 >/dev/null 2>&1 &&
    ok "  ...and node2 still streams" || bad "node2 stopped streaming after reload"
# a key that does not match its certificate: the reload is refused and the
# server keeps serving the previous certificate (so renew must check the
# served serial, not the reload's return value)
cp -p "$N1/certs/server.key" "$LAB/good.key"
PG_CERT_DAYS=30 pg_sign "$PKI" stray "/CN=stray" "$PKI/node1.ext"
install -m 0600 -o "$PG_USER" "$PKI/stray.key" "$N1/certs/server.key"
v=$(pg_local_psql "$N1" "SELECT pg_reload_conf()")
sleep 0.5
got=$(probe probe $(n1) 2>&1 | sed -n 's/^serial=//p')
[ "$v" = t ] && [ "$got" = "$new" ] &&
    ok "mismatched key: reload returns '$v', still serving $got" ||
    bad "mismatched key: reload '$v', serving '$got' (want '$new')"
grep -q 'private key file .* does not match\|does not match certificate\|SSL configuration was not reloaded' "$N1/postgres.log" &&
    ok "  ...and the server log says: $(grep -m1 'not reloaded\|does not match' "$N1/postgres.log" | cut -c1-160)" ||
    bad "no reload error in the log: $(tail -n 5 "$N1/postgres.log")"
cp -p "$LAB/good.key" "$N1/certs/server.key"
pg_local_psql "$N1" "SELECT pg_reload_conf()" >/dev/null

echo "total $((SECONDS - t0))s"
[ $fails -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all pg verification checks passed"
