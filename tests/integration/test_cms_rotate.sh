#!/usr/bin/env bash
# Issue 6A: rotate and renew on the Cisco Meeting Server platform, through
# the MMP console emulator on a CMS lab (a primary, a joined core, a
# connected core) bootstrapped first.
#
# * rotate follows Cisco's TAC order for expired database certificates:
#   `backup snapshot` on each database core before anything else, the
#   joined and connected cores leave the cluster before the primary, the
#   former primary is initialized again on its own data (never told to
#   join), then join and connect; every row of the primary is kept and the
#   new release is served;
# * renew refuses on CMS before anything is typed at any console, and
#   says to use rotate.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.61
P=$NET.11
lab_dir cms_lab.sh

lab_up $NET primary,replica,client
T=$LAB/transcript.tsv

steps_after() { tail -n +"$(($1 + 1))" "$T" | cut -f2- | grep -v $'\tdatabase cluster status\t' || true; }
lines() { wc -l <"$T"; }
release_of() { sed -nE 's/.*dbca-([0-9]{8}T[0-9]{6}Z-[0-9]{9})\.crt.*/\1/p' | head -n 1; }

out=$("$DBPKI" bootstrap -c "$INI" 2>&1) || { echo "$out"; fail "bootstrap failed"; }
id=$(steps_after 0 | release_of)
F=$LAB/nodes/node3/files
conn() { # node-number
	echo "host=node$1.lab.test hostaddr=$NET.1$1 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$F/dbca-$id.crt sslcert=$F/dbclient-$id.crt sslkey=$F/dbclient-$id.key gssencmode=disable connect_timeout=5"
}
q() { psql -X -At -d "$(conn "$1")" -c "$2"; }
q 1 "CREATE TABLE t(id int primary key); INSERT INTO t SELECT generate_series(1,500)" >/dev/null
old_serial=$(openssl x509 -in "$LAB/nodes/node1/files/dbserver-$id.crt" -noout -serial)
pass "bootstrapped; 500 rows on the primary"

# ---- rotate (Cisco TAC order) and renew -------------------------------------------------

n0=$(lines)
out=$("$DBPKI" rotate -c "$INI" 2>&1) || { echo "$out"; fail "rotate failed"; }
rot=$(steps_after "$n0")
echo "$rot" | sed 's/^/    /'
[ -z "$(echo "$rot" | cut -f2 | grep -vx ok)" ] || fail "a console command failed during rotate"
snaps=$(echo "$rot" | grep -n 'backup snapshot dbpki-' | cut -d: -f1 | tr '\n' ' ')
[ "$(echo "$rot" | grep -c 'backup snapshot dbpki-')" = 2 ] || fail "expected a snapshot on both database cores"
! echo "$rot" | grep -q $'^node3\tok\tbackup' || fail "the connected core got a snapshot"
first_remove=$(echo "$rot" | grep -n 'database cluster remove' | head -n 1 | cut -d: -f1)
for s in $snaps; do [ "$s" -lt "$first_remove" ] || fail "a snapshot came after a remove"; done
p_remove=$(echo "$rot" | grep -n $'^node1\tok\tdatabase cluster remove' | cut -d: -f1)
for n in 2 3; do
	r=$(echo "$rot" | grep -n $'^node'$n$'\tok\tdatabase cluster remove' | cut -d: -f1)
	[ -n "$r" ] && [ "$r" -lt "$p_remove" ] || fail "node$n was not removed before the primary"
done
echo "$rot" | grep -q $'^node1\tok\tdatabase cluster initialize' || fail "the former primary was not initialized again"
! echo "$rot" | grep -q $'^node1\tok\tdatabase cluster join' || fail "the primary was told to join"
for n in 1 2; do
	ls "$LAB/nodes/node$n/console/backups/"dbpki-*.bak >/dev/null || fail "node$n has no snapshot marker"
done
nid=$(echo "$rot" | release_of)
[ -n "$nid" ] && [ "$nid" != "$id" ] || fail "rotate did not ship a new release"
id=$nid
[ "$(q 1 'SELECT count(*) FROM t')" = 500 ] || fail "rotate lost the primary's rows"
[ "$(q 2 'SELECT count(*) FROM t')" = 500 ] || fail "the joined core does not have the rows after rotate"
served=$(openssl s_client -starttls postgres -connect "$P:5432" -verify_return_error \
	-CAfile "$F/dbca-$id.crt" -verify_hostname node1.lab.test </dev/null 2>/dev/null |
	openssl x509 -noout -serial) || fail "openssl s_client does not verify node1 after rotate"
[ "$served" = "$(openssl x509 -in "$LAB/nodes/node1/files/dbserver-$id.crt" -noout -serial)" ] &&
	[ "$served" != "$old_serial" ] || fail "node1 does not serve the rotated dbserver certificate"
streaming=$(q 1 "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name = 'node2'")
[ "$streaming" = 1 ] || fail "node2 does not stream after rotate"
pass "rotate: snapshots on database cores first, replica and client out before the primary, primary keeps every row"

n0=$(lines)
set +e
"$DBPKI" renew --force -c "$INI" >"$LAB/renew.txt" 2>&1
rc=$?
set -e
[ "$rc" != 0 ] || { cat "$LAB/renew.txt"; fail "renew on CMS did not refuse"; }
grep -q 'dbpki rotate' "$LAB/renew.txt" || { cat "$LAB/renew.txt"; fail "the refusal does not point to rotate"; }
[ "$(lines)" = "$n0" ] || fail "renew typed something at a console"
pass "renew refuses on CMS before anything is typed, pointing to rotate"
