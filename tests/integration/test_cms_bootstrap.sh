#!/usr/bin/env bash
# Issue 6A: the Cisco Meeting Server platform, through the MMP console
# emulator (tests/lab/cms_console.sh) on a CMS lab of three cores: a
# primary, a joined core, a connected core.
#
# * plan shows the console commands each core will receive, and touches
#   nothing;
# * bootstrap drives the guide's sequence, which the emulator's transcript
#   must show: which cores, in which order across cores, with which exact
#   arguments (certs with 5 files on database cores and 3 on the connected
#   core, `remove` confirmed with a capital Y, initialize only on the
#   primary, join/connect naming the primary);
# * independently of dbpki: psql verify-full with the dbclient certificate
#   the connected core received reaches the primary, which serves the
#   uploaded dbserver certificate; the joined core streams
#   (pg_stat_replication over SSL as CN=postgres) and receives rows;
# * the console refuses undocumented syntax and exec requests;
# * a console failure message fails the run, naming the core, the step and
#   the console's words, and nothing is typed after it.
# rotate and renew on CMS: test_cms_rotate.sh.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.60
P=$NET.11
lab_dir cms_lab.sh

lab_up $NET primary,replica,client
T=$LAB/transcript.tsv
LABUSER=$("$DBPKI_ROOT/tests/lab/lab.sh" user)

# Transcript lines (node, result, command, note) after line $1, status
# queries left out: they are the checks between the guide's steps.
steps_after() { tail -n +"$(($1 + 1))" "$T" | cut -f2- | grep -v $'\tdatabase cluster status\t' || true; }
lines() { wc -l <"$T"; }

# ---- plan --------------------------------------------------------------------

"$DBPKI" ca init -c "$INI" >/dev/null 2>&1
"$DBPKI" plan -c "$INI" bootstrap >"$LAB/plan.txt" 2>&1 || { cat "$LAB/plan.txt"; fail "plan failed"; }
for want in "node1> database cluster remove" "answers Y when asked '(Y/n)'" \
	"node1> database cluster initialize" "node2> database cluster join $P" \
	"node3> database cluster connect $P" "node2> database cluster localnode a" \
	"reply must show '$P (me) : Connected Primary'"; do
	grep -qF -- "$want" "$LAB/plan.txt" || { cat "$LAB/plan.txt"; fail "plan lacks: $want"; }
done
grep -Eq '^ +node3> database cluster certs dbclient-[0-9TZ-]+\.key dbclient-[0-9TZ-]+\.crt dbca-[0-9TZ-]+\.crt$' "$LAB/plan.txt" ||
	fail "plan: node3's certs line is not the 3-file form"
grep -Eq '^ +node2> database cluster certs dbserver-[0-9TZ-]+\.key dbserver-[0-9TZ-]+\.crt dbclient-[0-9TZ-]+\.key dbclient-[0-9TZ-]+\.crt dbca-[0-9TZ-]+\.crt$' "$LAB/plan.txt" ||
	fail "plan: node2's certs line is not the 5-file form"
! grep -q 'node1> database cluster join\|node3> database cluster initialize' "$LAB/plan.txt" ||
	fail "plan sends initialize/join to the wrong core"
[ "$(lines)" = 0 ] || fail "plan typed something at a console"
[ -z "$(find "$LAB"/nodes/*/files -type f)" ] || fail "plan uploaded files"
pass "plan shows each core's console commands (5/3-file certs, initialize, join, connect) and touches nothing"

# ---- bootstrap -----------------------------------------------------------------

out=$("$DBPKI" bootstrap -c "$INI" 2>&1) || { echo "$out"; fail "bootstrap failed"; }
echo "$out" | tail -n 6
pass "bootstrap exited 0"

[ -z "$(cut -f3 "$T" | grep -vx ok)" ] || { cat "$T"; fail "a console command did not succeed"; }
seq=$(steps_after 0)
echo "$seq" | sed 's/^/    /'
for n in 1 2 3; do
	mine=$(echo "$seq" | awk -F'\t' -v n=node$n '$1 == n { print $3 }' | sed -E 's/-[0-9]{8}T[0-9]{6}Z-[0-9]{9}\./-ID./g')
	case $n in
	1) want="database cluster remove
database cluster certs dbserver-ID.key dbserver-ID.crt dbclient-ID.key dbclient-ID.crt dbca-ID.crt
database cluster localnode a
database cluster initialize" ;;
	2) want="database cluster remove
database cluster certs dbserver-ID.key dbserver-ID.crt dbclient-ID.key dbclient-ID.crt dbca-ID.crt
database cluster localnode a
database cluster join $P" ;;
	3) want="database cluster remove
database cluster certs dbclient-ID.key dbclient-ID.crt dbca-ID.crt
database cluster localnode a
database cluster connect $P" ;;
	esac
	[ "$mine" = "$want" ] || { printf 'got:\n%s\nwant:\n%s\n' "$mine" "$want"; fail "node$n's console sequence is not the guide's"; }
done
[ "$(echo "$seq" | awk -F'\t' '$3 == "database cluster remove" && $4 == "answer=Y"' | wc -l)" = 3 ] ||
	fail "remove was not confirmed with a capital Y on every core"
# Order across cores: every remove before any certs, every certs before
# initialize, initialize before join, join before connect.
pos() { echo "$seq" | grep -n -- "$1" | cut -d: -f1 | sort -n | sed -n "${2}p"; }
last_remove=$(pos 'database cluster remove' '$'); first_certs=$(pos 'database cluster certs' 1)
last_local=$(pos 'database cluster localnode' '$'); init=$(pos 'database cluster initialize' 1)
join=$(pos 'database cluster join' 1); conn=$(pos 'database cluster connect' 1)
[ "$last_remove" -lt "$first_certs" ] && [ "$last_local" -lt "$init" ] &&
	[ "$init" -lt "$join" ] && [ "$join" -lt "$conn" ] ||
	fail "order across cores: remove<certs: $last_remove<$first_certs, localnode<initialize: $last_local<$init, initialize<join<connect: $init<$join<$conn"
# The files named are the ones uploaded, keys private.
id=$(echo "$seq" | sed -nE 's/.*dbca-([0-9]{8}T[0-9]{6}Z-[0-9]{9})\.crt.*/\1/p' | head -n 1)
for n in 1 2; do
	for f in dbserver-$id.key dbserver-$id.crt dbclient-$id.key dbclient-$id.crt dbca-$id.crt; do
		[ -f "$LAB/nodes/node$n/files/$f" ] || fail "node$n: $f was not uploaded"
	done
done
[ ! -e "$LAB/nodes/node3/files/dbserver-$id.key" ] || fail "the connected core received a server key"
[ "$(find "$LAB/nodes" -name '*.key' ! -perm 0600 | wc -l)" = 0 ] || fail "a key is not 0600"
pass "transcript: the guide's sequence per core, in order across cores, exact arguments; keys 0600"

# ---- the result, seen by psql, not by dbpki ----------------------------------------

F=$LAB/nodes/node3/files
conn() { # node-number
	echo "host=node$1.lab.test hostaddr=$NET.1$1 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$F/dbca-$id.crt sslcert=$F/dbclient-$id.crt sslkey=$F/dbclient-$id.key gssencmode=disable connect_timeout=5"
}
q() { psql -X -At -d "$(conn "$1")" -c "$2"; }
[ "$(q 1 'SELECT pg_is_in_recovery()')" = f ] || fail "node1 is not a read-write primary over verify-full"
[ "$(q 2 'SELECT pg_is_in_recovery()')" = t ] || fail "node2 is not a replica"
served=$(openssl s_client -starttls postgres -connect "$P:5432" -verify_return_error \
	-CAfile "$F/dbca-$id.crt" -verify_hostname node1.lab.test </dev/null 2>/dev/null |
	openssl x509 -noout -serial) || fail "openssl s_client does not verify node1"
[ "$served" = "$(openssl x509 -in "$LAB/nodes/node1/files/dbserver-$id.crt" -noout -serial)" ] ||
	fail "node1 does not serve the uploaded dbserver certificate"
streaming=$(q 1 "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND s.client_dn = '/CN=postgres' AND r.application_name = 'node2'")
[ "$streaming" = 1 ] || fail "node2 is not streaming from node1 over SSL as CN=postgres"
q 1 "CREATE TABLE t(id int primary key); INSERT INTO t SELECT generate_series(1,500)" >/dev/null
for _ in $(seq 1 50); do
	[ "$(q 2 'SELECT count(*) FROM t' 2>/dev/null || true)" = 500 ] && break
	sleep 0.2
done
[ "$(q 2 'SELECT count(*) FROM t')" = 500 ] || fail "rows did not reach node2"
nocert="host=node1.lab.test hostaddr=$P port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$F/dbca-$id.crt gssencmode=disable connect_timeout=5"
if psql -X -At -d "$nocert" -c 'SELECT 1' >/dev/null 2>&1; then fail "node1 let in a connection without a client certificate"; fi
pass "psql verify-full with the dbclient cert: node1 primary serving the uploaded cert, node2 streams over SSL (CN=postgres), rows replicate, no cert refused"

# ---- the console itself ----------------------------------------------------------

console() { # node-number [command], stdin typed at the console
	local n=$1
	shift
	timeout 30 ssh -tt -i "$LAB/ssh/id_ed25519" -o UserKnownHostsFile="$LAB/ssh/known_hosts" \
		-o StrictHostKeyChecking=yes -o BatchMode=yes -p 2222 "$LABUSER@$NET.1$n" "$@"
}
n0=$(lines)
out=$(printf 'database cluster frobnicate\ndatabase cluster join\n\004' | console 3 2>&1 || true)
echo "$out" | grep -q 'Unknown command: database cluster frobnicate' || { echo "$out"; fail "unknown syntax was not refused"; }
echo "$out" | grep -q 'Failure: usage: database cluster join' || { echo "$out"; fail "join without its argument was accepted"; }
[ "$(steps_after "$n0" | cut -f2 | tr '\n' ' ')" = "unknown failed " ] || { cat "$T"; fail "transcript does not record the refusals"; }
if out=$(console 1 'database cluster status' </dev/null 2>&1); then fail "an exec request reached the console"; fi
echo "$out" | grep -q 'interactively only' || { echo "$out"; fail "exec refusal message missing"; }
pass "the console refuses undocumented syntax and exec requests, and records them"

# ---- a console failure message fails the run -------------------------------------------

echo "database cluster join" >"$LAB/nodes/node2/console/fail"
chown "$LABUSER" "$LAB/nodes/node2/console/fail"
n0=$(lines)
set +e
"$DBPKI" bootstrap -c "$INI" >"$LAB/fail.txt" 2>&1
rc=$?
set -e
rm -f "$LAB/nodes/node2/console/fail"
[ "$rc" = 1 ] || { cat "$LAB/fail.txt"; fail "expected exit 1 when the console fails join, got $rc"; }
grep -q "step join failed on 1 node(s); first: node node2: console command 'database cluster join $P' failed: the console answered 'Failure: database cluster join $P: operation failed (injected by the test)'" "$LAB/fail.txt" ||
	{ cat "$LAB/fail.txt"; fail "the error does not name node2, the join step and the console's message"; }
grep -q 'last output of node2' "$LAB/fail.txt" || fail "node2's console output is not shown"
after=$(steps_after "$n0")
echo "$after" | grep -q $'^node2\tfailed\tdatabase cluster join' || fail "the transcript does not show the failed join"
! echo "$after" | grep -q 'database cluster connect' || fail "connect was typed after join failed"
[ "$(q 1 'SELECT count(*) FROM t')" = 500 ] || fail "the primary lost rows or is down after the failed join"
pass "a console failure fails the run naming node2, step join and the console's words; nothing typed after it; primary up"
