#!/usr/bin/env bash
# Issue 15, the failure paths of a debian-layout replica on an emulated
# systemd host (r1; p1 is the primary), both holding the main cluster apt
# makes, r1's with data of its own (a table written there before dbpki).
#  1. No sudo rule for postgres on r1 (a systemd host: pg_ctlcluster as
#     postgres may not start/stop the unit there): bootstrap fails naming r1
#     and the sudo rule, and r1's own cluster is as it was: online, its own
#     system and table, no dbpki.conf, its data directory in place.
#  2. The admin adds the rule (/etc/sudoers.d, as docs/postgres-tls.md
#     says).  r1's system is not p1's, so join moves it aside and clones;
#     the clone fails (r1's cert_dir/basebackup.log is a directory, so
#     pg_basebackup's output cannot be written).  Then: bootstrap exits 1
#     naming r1 and join and prints the restore command; pg_lsclusters on r1
#     still lists 15/main in /var/lib/postgresql/15/main; the old data
#     directory is beside it with r1's system identifier; the printed
#     command, run on r1 as root (a systemd host), puts it back through
#     systemctl: online again with r1's own system and table; p1 stays up.
# (test_debian_smoke_netns restores a replica without systemd as postgres.)
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"

PGDATA=/var/lib/postgresql/15/main
netlab_up p1:primary:debian r1:replica:debian:systemd
grep -q '^layout = debian' "$INI" || fail "netlab.sh inventory did not list the nodes as debian-layout"
sysid() { as "$1" runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_controldata "$2" | sed -n 's/^Database system identifier: *//p'; }

echo "CREATE TABLE mine(id int); INSERT INTO mine SELECT generate_series(1, 42)" | on r1 psql -X -q -v ON_ERROR_STOP=1 ||
	fail "could not write r1's own table"
r1_sys=$(sysid r1 "$PGDATA")
[ -n "$r1_sys" ] || fail "r1: no system identifier from pg_controldata"
[ "$r1_sys" != "$(sysid p1 "$PGDATA")" ] || fail "r1's stock cluster should be a system of its own ($r1_sys)"
r1_own() { # LABEL: r1's own cluster online in place, its system and table
	on r1 pg_lsclusters -h | grep -q "^15 *main *5432 *online .*$PGDATA" || fail "$1: r1's 15/main is not online in $PGDATA"
	[ "$(sysid r1 "$PGDATA")" = "$r1_sys" ] || fail "$1: $PGDATA on r1 is not r1's own system"
	[ "$(echo 'SELECT count(*) FROM mine' | on r1 psql -X -At)" = 42 ] || fail "$1: r1's own table is not there"
}

# ---- 1. no sudo rule on the systemd host
rc=0
dbpki bootstrap -c "$INI" >"$LAB/nosudo.txt" 2>&1 || rc=$?
[ "$rc" != 0 ] || { cat "$LAB/nosudo.txt"; fail "bootstrap succeeded on a systemd host without the sudo rule"; }
grep -q 'node r1' "$LAB/nosudo.txt" || { cat "$LAB/nosudo.txt"; fail "the failure does not name r1"; }
grep -qi 'sudo' "$LAB/nosudo.txt" || { cat "$LAB/nosudo.txt"; fail "the failure does not name the sudo rule"; }
r1_own "no sudo rule"
[ ! -e "$(nfs r1)/etc/postgresql/15/main/conf.d/dbpki.conf" ] || fail "no sudo rule: dbpki.conf was written on r1 anyway"
[ -z "$(find "$(nfs r1)${PGDATA%/*}" -maxdepth 1 -name 'main.dbpki-old-*')" ] || fail "no sudo rule: r1's data was moved aside anyway"
pass "no sudo rule on r1 (systemd host): bootstrap exits $rc naming r1 and sudo; r1's own cluster untouched"

# ---- 2. the rule added, then a clone that fails
as r1 sh -c 'umask 0227 && printf "%s\n" "postgres ALL=(root) NOPASSWD: /usr/bin/systemctl start postgresql@15-main, /usr/bin/systemctl stop postgresql@15-main, /usr/bin/systemctl restart postgresql@15-main" >/etc/sudoers.d/dbpki && visudo -cq -f /etc/sudoers.d/dbpki' ||
	fail "could not add the sudo rule on r1"
# The cause: pg_basebackup's log cannot be written on r1.
on r1 'mkdir -p ~/dbpki/basebackup.log/blocker' || fail "could not prepare r1's cert_dir"

rc=0
dbpki bootstrap -c "$INI" >"$LAB/fail.txt" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$LAB/fail.txt"; fail "expected exit 1 for a failed join, got $rc"; }
grep -q 'step join failed on 1 node(s); first: node r1' "$LAB/fail.txt" || { cat "$LAB/fail.txt"; fail "the error does not name r1 and join"; }
cmd=$(sed -n 's/.*(root on a systemd host): *//p' "$LAB/fail.txt" | head -n 1)
[ -n "$cmd" ] || { cat "$LAB/fail.txt"; fail "the failed join printed no restore command"; }
echo "restore command printed: $cmd"
pass "the failed join names r1 and join, and prints the restore command"

line=$(on r1 pg_lsclusters -h)
read -r -a f <<<"$line"
[ "${f[0]} ${f[1]} ${f[5]}" = "15 main $PGDATA" ] || fail "r1: pg_lsclusters no longer lists 15/main in $PGDATA: '$line'"
aside=$(find "$(nfs r1)${PGDATA%/*}" -maxdepth 1 -name 'main.dbpki-old-*' | sed "s|^$(nfs r1)||")
[ "$(echo "$aside" | grep -c .)" = 1 ] || fail "r1: expected one old data directory beside $PGDATA, found: $aside"
[ "$(sysid r1 "$aside")" = "$r1_sys" ] || fail "r1: $aside does not hold r1's own system $r1_sys"
[[ $cmd = *"$aside"* ]] || fail "the restore command does not name $aside: $cmd"
pass "r1: 15/main still listed by pg_lsclusters ($line); its old data directory $aside kept, with r1's system"

nlog=$(wc -l <"$LAB/nodes/r1/ctl/systemctl.log")
out=$(as r1 sh -c "$cmd" 2>&1) || { echo "$out"; fail "the printed restore command failed on r1 (as root)"; }
r1_own "after the restore command"
tail -n +"$((nlog + 1))" "$LAB/nodes/r1/ctl/systemctl.log" | grep -q '^systemctl uid=0 start postgresql@15-main$' ||
	fail "the restore on r1 did not start the cluster through systemctl"
pass "the printed command, run on r1 as root, puts the old cluster back through systemctl: online, r1's own system and table"

C=$(nfs p1)/var/lib/postgresql/dbpki/current
[ "$(adm psql -X -At -d "host=p1.lab.test port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$C/dbca.crt sslcert=$C/client.crt sslkey=$C/client.key gssencmode=disable connect_timeout=5" -c 'SELECT pg_is_in_recovery()')" = f ] ||
	fail "p1 is not up as the primary after r1's failed join"
pass "p1 stays up as the primary (verify-full by name)"
