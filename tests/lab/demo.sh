#!/usr/bin/env bash
# make demo: four stock Debian machines on the netlab (tests/lab/netlab.sh,
# issue 11) -- db1 primary, db2 and db3 replicas, each with the `main`
# cluster exactly as `apt-get install postgresql-15` leaves it (db1 and db3
# emulate systemd hosts, with the sudo rule an admin adds for dbpki), and
# app1, an application node -- bootstrapped by dbpki from the lab's admin
# side, then its status, then how to reach the lab by hand.  Needs root
# (network namespaces).  `make demo-down` stops it.
#   DBPKI_DEMO_DIR   the lab directory (default /var/tmp/dbpki-demo; not under
#                    /tmp or /run, the machines get their own)
#   DBPKI_BUILD      where dbpki and tools/labinit are (default build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${DBPKI_DEMO_DIR:-/var/tmp/dbpki-demo}
export DBPKI_BUILD=${DBPKI_BUILD:-$root/build}
dbpki=$DBPKI_BUILD/dbpki
netlab=$root/tests/lab/netlab.sh

[ "$(id -u)" -eq 0 ] || {
	echo "demo: the demo lab's machines are network, mount and PID namespaces: run make demo as root" >&2
	exit 1
}
[ -x "$dbpki" ] || {
	echo "demo: $dbpki missing; run: make" >&2
	exit 1
}
if [ -f "$dir/lab.conf" ]; then
	echo "demo: a demo lab is already running in $dir; stopping it first"
	"$netlab" down --dir "$dir"
fi
rm -rf "$dir"
mkdir -p "$dir"
chmod 755 "$dir"
# A failure before the end takes the lab down again: nothing is left running.
trap 'echo "demo: failed; taking the lab down" >&2; "$netlab" down --dir "$dir" >/dev/null 2>&1 || true' EXIT
"$netlab" up --dir "$dir" --node db1:primary:debian:systemd:sudo --node db2:replica:debian \
	--node db3:replica:debian:systemd:sudo --node app1:client
"$netlab" inventory --dir "$dir" --name demo >/dev/null
ini=$dir/cluster.ini
adm() { "$netlab" exec --dir "$dir" admin -- "$@"; }
echo
echo "demo: inventory $ini"
echo "demo: \$ dbpki bootstrap -c $ini      (on the admin side, admin.lab.test)"
adm "$dbpki" bootstrap -c "$ini"
echo
echo "demo: \$ dbpki status -c $ini"
adm "$dbpki" status -c "$ini"
trap - EXIT
cat <<TXT

The lab is running: db1 (primary), db2, db3 (replicas) and app1 (application)
are machines at 192.0.2.11-14 (names db1.lab.test ...), reached from the admin
side at 192.0.2.10, where dbpki runs.  Try, as root:
  $netlab exec --dir $dir admin -- $dbpki plan -c $ini renew
  $netlab exec --dir $dir admin -- $dbpki renew -c $ini --force
  $netlab ssh --dir $dir app1 'PGSERVICEFILE=certs/pg_service.conf psql service=demo'
      (on the application node: verify-full with its dbclient certificate)
  $netlab ssh --dir $dir db1 pg_lsclusters      (as postgres on db1)
  $netlab exec --dir $dir db1 -- cat /etc/postgresql/15/main/conf.d/dbpki.conf
  $netlab reboot --dir $dir all                 (power loss, then boot)
Tear it down (every process by its PID, namespaces, the machines' files):
  make demo-down
TXT
