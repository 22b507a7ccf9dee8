#!/usr/bin/env bash
# The debian layout of the node library (templates/postgres/common.sh,
# issue 15) without a server: finding the cluster (pg_lsclusters), the
# conf.d file, dbpki's block at the top of the cluster's hba file with the
# admin's rules kept below, listen_addresses keeping localhost, start.conf,
# and how start/stop/restart are run (pg_ctlcluster, or sudo -n systemctl
# on a systemd host).  pg_lsclusters, pg_ctlcluster and sudo are stand-ins
# in the rendered script's bindir that log their arguments; /etc/postgresql
# and /run are scratch directories bind-mounted in a private mount
# namespace (needs root, like the netlab).  The real thing runs in
# test_debian_netns (deb-test) and test_debian_smoke_netns.
set -euo pipefail
root=${DBPKI_ROOT:?DBPKI_ROOT}
build=${DBPKI_BUILD:?DBPKI_BUILD}
render=$build/tools/tplrender
[ -x "$render" ] || { echo "missing $render (make $render)"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (a private mount namespace for /etc/postgresql and /run)"; exit 1; }
work=$(mktemp -d /tmp/dbpki-debscripts.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

bin=$work/bin etc=$work/etc run=$work/run data=/var/lib/postgresql/15/main
mkdir -p "$bin" "$etc/15/main/conf.d" "$run" "$work/certs"
# Stand-ins: each logs "NAME ARGS" to $work/calls.
for t in pg_ctlcluster sudo; do
	printf '#!/bin/sh\necho "%s $*" >>%s/calls\n[ ! -f %s/%s.fail ] || { echo "%s: a password is required" >&2; exit 1; }\n' \
		"$t" "$work" "$work" "$t" "$t" >"$bin/$t"
done
# pg_ctl status: "not running" unless $work/running exists.
printf '#!/bin/sh\n[ "$1 $2 $3" = "-D %s status" ] && [ -f %s/running ]\n' "$data" "$work" >"$bin/pg_ctl"
# pg_lsclusters -h: the lines in $work/clusters.
printf '#!/bin/sh\ncat %s/clusters 2>/dev/null || true\n' "$work" >"$bin/pg_lsclusters"
printf '#!/bin/sh\nexit 1\n' >"$bin/postgres" # postgres -C: not available (root)
chmod 755 "$bin"/*

# render LAYOUT CLUSTER LISTEN START_CONF BODY -> $work/t.sh
render() {
	{
		cat "$root/templates/postgres/common.sh"
		printf '%s\n' "$5"
	} >"$work/tpl.sh"
	"$render" "$work/tpl.sh" node n1 role primary cluster c host n1.example.com \
		address 192.0.2.11 port 5432 pgdata "$data" bindir "$bin" \
		cert_dir "$work/certs" socket_dir /var/run/postgresql layout "$1" pg_cluster "$2" \
		listen_localhost "$3" start_conf "$4" allowed_networks 192.0.2.0/24,10.1.0.0/16 \
		release_id r1 release_dir "$work/certs/releases/r1" db_user postgres \
		primary_host n1.example.com primary_address 192.0.2.11 primary_port 5432 \
		replicas n2 sentinel END run_id x >"$work/t.sh" || fail "rendering common.sh failed"
}
# node [systemd]: run t.sh with the scratch /etc/postgresql and /run
node() {
	local sd=${1:-}
	unshare -m sh -c "mount --bind '$etc' /etc/postgresql && mount --bind '$run' /run &&
		{ [ -z '$sd' ] || mkdir -p /run/systemd/system; } && sh '$work/t.sh'" >"$work/out" 2>"$work/err"
}
reset_node() {
	rm -rf "$etc/15/main" "${run:?}"/* "$work/calls" "$work"/*.fail
	mkdir -p "$etc/15/main/conf.d"
	printf '%s\n' "# the admin's hba" "local all postgres peer" "host all all 127.0.0.1/32 scram-sha-256" \
		"host all app 10.0.0.0/8 scram-sha-256" >"$etc/15/main/pg_hba.conf"
	printf '%s\n' "# the admin's ident" "ops alice app" >"$etc/15/main/pg_ident.conf"
	echo auto >"$etc/15/main/start.conf"
	echo "15  main    5432 online postgres $data /var/log/postgresql/postgresql-15-main.log" >"$work/clusters"
}

# 1. Finding the layout.
reset_node
render auto "" auto keep 'echo "L=$LAYOUT V=$PGV C=$PGC F=$CONF_FILE H=$HBA_FILE LOG=$PG_LOG"'
node || fail "auto layout: $(cat "$work/err")"
[ "$(cat "$work/out")" = "L=debian V=15 C=main F=/etc/postgresql/15/main/conf.d/dbpki.conf H=/etc/postgresql/15/main/pg_hba.conf LOG=/var/log/postgresql/postgresql-15-main.log" ] ||
	fail "auto with a cluster in pgdata: $(cat "$work/out")"
: >"$work/clusters"
node || fail "auto, no cluster: $(cat "$work/err")"
case $(cat "$work/out") in "L=pgdata V= C= F=$work/certs/postgresql.dbpki.conf"*) ;; *) fail "auto without a cluster is not pgdata: $(cat "$work/out")" ;; esac
render debian "" auto keep 'echo "L=$LAYOUT"'
! node || fail "layout = debian without a cluster did not fail"
grep -q "layout = debian, but pg_lsclusters lists no cluster with data directory $data (create it with pg_createcluster" "$work/err" ||
	fail "layout = debian without a cluster: $(cat "$work/err")"
echo "15  main    5432 online postgres /srv/pg/main /var/log/postgresql/postgresql-15-main.log" >"$work/clusters"
render debian 15/main auto keep 'echo "L=$LAYOUT"'
! node || fail "cluster 15/main in another data directory did not fail"
grep -q "cluster 15/main keeps its data in /srv/pg/main, but the inventory's pgdata is $data; set pgdata = /srv/pg/main" "$work/err" ||
	fail "data directory mismatch: $(cat "$work/err")"
echo "ok: layout auto/debian found by data directory or cluster name; refusals name the fix"

# 2. Settings and the hba block.
reset_node
render auto "" auto keep 'write_pg_conf'
node || fail "write_pg_conf: $(cat "$work/err")"
conf=$etc/15/main/conf.d/dbpki.conf
grep -qx "listen_addresses = 'localhost,192.0.2.11'" "$conf" || fail "listen_addresses lacks localhost: $(grep listen "$conf")"
grep -qx "ssl_cert_file = '$work/certs/current/server.crt'" "$conf" || fail "ssl_cert_file does not name current/"
! grep -Eq '^(unix_socket_directories|hba_file|ident_file) ' "$conf" || fail "debian conf.d sets the cluster's own socket/hba/ident: $(cat "$conf")"
[ "$(sed -n 1p "$etc/15/main/pg_hba.conf")" = "# BEGIN dbpki: managed by dbpki, rewritten whole; the admin's own rules follow '# END dbpki'" ] ||
	fail "hba does not start with dbpki's block: $(head -n 2 "$etc/15/main/pg_hba.conf")"
sed -n '/^# END dbpki$/,$p' "$etc/15/main/pg_hba.conf" | tail -n +2 >"$work/rest"
printf '%s\n' "# the admin's hba" "local all postgres peer" "host all all 127.0.0.1/32 scram-sha-256" \
	"host all app 10.0.0.0/8 scram-sha-256" | cmp -s - "$work/rest" || fail "the admin's rules were not kept below the block: $(cat "$work/rest")"
grep -qx "hostssl all postgres 10.1.0.0/16 cert clientcert=verify-full" "$etc/15/main/pg_hba.conf" || fail "no rule for 10.1.0.0/16"
grep -qx "local all postgres peer map=dbpki" "$etc/15/main/pg_hba.conf" || fail "no local rule for the db user"
grep -qx "ops alice app" "$etc/15/main/pg_ident.conf" || fail "the admin's ident map was lost"
[ "$(find "$etc/15/main" -name 'pg_hba.conf.dbpki-old-*' | wc -l)" = 1 ] || fail "no single backup of the admin's hba file"
cp -p "$etc/15/main/pg_hba.conf" "$work/hba1"
node || fail "write_pg_conf again: $(cat "$work/err")"
cmp -s "$work/hba1" "$etc/15/main/pg_hba.conf" || fail "a second run changed the hba file"
[ "$(find "$etc/15/main" -name 'pg_hba.conf.dbpki-old-*' | wc -l)" = 1 ] || fail "a second run made another backup"
# Fewer networks: the block is replaced, never duplicated.
sed -i 's|192.0.2.0/24,10.1.0.0/16|192.0.2.0/24|' "$work/t.sh"
node || fail "write_pg_conf, one network: $(cat "$work/err")"
[ "$(grep -c '^# BEGIN dbpki' "$etc/15/main/pg_hba.conf")" = 1 ] || fail "two dbpki blocks"
! grep -q 10.1.0.0/16 "$etc/15/main/pg_hba.conf" || fail "a removed network's rule stayed"
[ "$(find "$etc/15/main" -name 'pg_hba.conf.dbpki-old-*' | wc -l)" = 1 ] ||
	fail "rewriting dbpki's own block made another backup (only the admin's file is kept)"
echo "ok: conf.d/dbpki.conf with localhost; dbpki's block first, the admin's rules kept below, once"

render debian "" no keep 'write_pg_conf'
node || fail "listen_localhost = no: $(cat "$work/err")"
grep -qx "listen_addresses = '192.0.2.11'" "$conf" || fail "listen_localhost = no kept localhost"
echo "ok: listen_localhost = no"

# 3. start.conf.
reset_node
printf '%s\n' "# something else starts it" manual >"$etc/15/main/start.conf"
render auto "" auto keep 'check_start_conf'
node || fail "check_start_conf: $(cat "$work/err")"
grep -qx manual "$etc/15/main/start.conf" || fail "start_conf = keep changed start.conf"
grep -q "says 'manual': the cluster does not start at boot" "$work/out" || fail "manual not reported: $(cat "$work/out")"
render auto "" auto auto 'check_start_conf'
node || fail "check_start_conf auto: $(cat "$work/err")"
[ "$(cat "$etc/15/main/start.conf")" = auto ] || fail "start_conf = auto did not set auto"
ls "$etc/15/main/"start.conf.dbpki-old-* >/dev/null || fail "no backup of start.conf"
echo "ok: start.conf manual reported and kept; set to auto only with start_conf = auto"

# 4. Start, stop, restart.
reset_node
render auto "" auto keep 'pg_ctl_layout restart; pg_ctl_layout stop; pg_ctl_layout start'
node || fail "pg_ctlcluster: $(cat "$work/err")"
printf '%s\n' "pg_ctlcluster 15 main restart -m fast" "pg_ctlcluster 15 main stop -m fast" "pg_ctlcluster 15 main start" |
	cmp -s - "$work/calls" || fail "not through pg_ctlcluster: $(cat "$work/calls")"
rm -f "$work/calls"
node systemd || fail "sudo systemctl: $(cat "$work/err")"
printf '%s\n' "sudo -n systemctl restart postgresql@15-main" "sudo -n systemctl stop postgresql@15-main" \
	"sudo -n systemctl start postgresql@15-main" | cmp -s - "$work/calls" || fail "not through sudo -n systemctl: $(cat "$work/calls")"
touch "$work/sudo.fail"
! node systemd || fail "a refused sudo did not fail"
grep -q "sudo -n systemctl restart postgresql@15-main failed: sudo: a password is required.*sudo rule of docs/postgres-tls.md" "$work/err" ||
	fail "a refused sudo: $(cat "$work/err")"
echo "ok: pg_ctlcluster, or sudo -n systemctl on a systemd host; a refused sudo names the rule"

# 5. need_ctl: on a systemd host, the sudo rule is asked for (sudo -n -l)
# before anything changes; elsewhere nothing is asked.
reset_node
render auto "" auto keep 'need_ctl; echo checked'
node || fail "need_ctl without systemd: $(cat "$work/err")"
[ ! -f "$work/calls" ] || fail "need_ctl asked sudo on a host without systemd: $(cat "$work/calls")"
node systemd || fail "need_ctl: $(cat "$work/err")"
printf '%s\n' "sudo -n -l /usr/bin/systemctl start postgresql@15-main" "sudo -n -l /usr/bin/systemctl stop postgresql@15-main" \
	"sudo -n -l /usr/bin/systemctl restart postgresql@15-main" | cmp -s - "$work/calls" || fail "need_ctl asked: $(cat "$work/calls")"
touch "$work/sudo.fail"
! node systemd || fail "need_ctl passed without the sudo rule"
grep -q "may not run 'sudo -n systemctl start postgresql@15-main' here.*add the sudo rule of docs/postgres-tls.md.*nothing was changed" "$work/err" ||
	fail "need_ctl without the rule: $(cat "$work/err")"
! grep -q checked "$work/out" || fail "need_ctl did not stop the script"
echo "ok: on a systemd host the sudo rule is checked (sudo -n -l) before anything changes"

# 6. certs.sh on a converged node: a release holding exactly what current
# holds is removed again and nothing switches; a different one switches.
C=$work/certs
rm -rf "$C" && mkdir -p "$C/releases/r0"
for f in dbca.crt client.crt server.crt; do echo "$f 0" >"$C/releases/r0/$f"; done
for f in client.key server.key; do (umask 077 && echo "$f 0" >"$C/releases/r0/$f"); done
ln -s releases/r0 "$C/current"
cp -a "$C/releases/r0" "$C/releases/r1"
{
	cat "$root/templates/postgres/common.sh" "$root/templates/postgres/certs.sh"
} >"$work/tpl.sh"
render_certs() { # RELEASE_ID
	"$render" "$work/tpl.sh" node n1 role primary cluster c host n1.example.com \
		address 192.0.2.11 port 5432 pgdata "$data" bindir "$bin" \
		cert_dir "$C" socket_dir /var/run/postgresql layout pgdata pg_cluster "" \
		listen_localhost auto start_conf keep allowed_networks 192.0.2.0/24 \
		release_id "$1" release_dir "$C/releases/$1" db_user postgres \
		primary_host n1.example.com primary_address 192.0.2.11 primary_port 5432 \
		replicas n2 sentinel END run_id x >"$work/t.sh" || fail "rendering certs.sh failed"
}
render_certs r1
sh "$work/t.sh" >"$work/out" 2>"$work/err" || fail "certs.sh (same files): $(cat "$work/err")"
[ "$(readlink "$C/current")" = releases/r0 ] || fail "certs.sh switched to a release holding the same files"
[ ! -e "$C/releases/r1" ] || fail "the release holding the same files was left"
[ ! -e "$C/previous" ] || fail "previous was set although nothing switched"
grep -q "already holds these files: kept" "$work/out" || fail "certs.sh (same files) said: $(cat "$work/out")"
cp -a "$C/releases/r0" "$C/releases/r2"
echo "server.crt 2" >"$C/releases/r2/server.crt"
render_certs r2
sh "$work/t.sh" >"$work/out" 2>"$work/err" || fail "certs.sh (new files): $(cat "$work/err")"
[ "$(readlink "$C/current")" = releases/r2 ] && [ "$(readlink "$C/previous")" = releases/r0 ] ||
	fail "certs.sh did not switch to a release with new files"
echo "ok: certs.sh leaves a converged node alone (same files: the upload removed, nothing switched)"

# 7. The admin's rules that could admit what dbpki's refuse are reported
# with file:line (kept as they are); loopback, reject and cert ones are not.
reset_node
printf '%s\n' "host all all 0.0.0.0 0.0.0.0 reject" "hostssl all all 0.0.0.0/0 cert" \
	"host all all 192.168.0.0 255.255.0.0 md5" "hostnossl all all ::/0 trust" >>"$etc/15/main/pg_hba.conf"
render auto "" auto keep 'write_pg_conf'
node || fail "write_pg_conf with admin rules: $(cat "$work/err")"
grep "warning: an admin rule" "$work/out" | sed 's/.*(kept as it is): //' >"$work/rules"
h=/etc/postgresql/15/main/pg_hba.conf
off=$(grep -n '^# END dbpki$' "$etc/15/main/pg_hba.conf" | cut -d: -f1)
printf '%s\n' "$h:$((off + 4)): host all app 10.0.0.0/8 scram-sha-256" \
	"$h:$((off + 7)): host all all 192.168.0.0 255.255.0.0 md5" "$h:$((off + 8)): hostnossl all all ::/0 trust" |
	cmp -s - "$work/rules" || fail "admin rules reported: $(cat "$work/rules")"
echo "ok: the admin's rules that could admit what dbpki's refuse are listed with file:line"
