#!/usr/bin/env bash
# make demo: a lab of one primary, two replicas and one client node on
# loopback (127.0.10.11-14), bootstrapped by dbpki, then its status.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${DBPKI_DEMO_DIR:-/tmp/dbpki-demo}
dbpki="$root/build/dbpki"

if [ -f "$dir/pids" ]; then
	echo "demo: a demo lab is already running in $dir; stopping it first"
	"$root/tests/lab/lab.sh" down --dir "$dir"
fi
rm -rf "$dir"
mkdir -p "$dir"
chmod 755 "$dir"
"$root/tests/lab/lab.sh" up --dir "$dir" --net 127.0.10 \
	--roles primary,replica,replica,client --name demo
echo
echo "demo: inventory $dir/cluster.ini"
echo "demo: \$ dbpki bootstrap -c $dir/cluster.ini"
"$dbpki" bootstrap -c "$dir/cluster.ini"
echo
echo "demo: \$ dbpki status -c $dir/cluster.ini"
"$dbpki" status -c "$dir/cluster.ini"
cat <<TXT

The cluster is running.  Try:
  $dbpki plan -c $dir/cluster.ini renew
  PGSERVICEFILE=$dir/nodes/node4/certs/pg_service.conf psql service=demo
      (the client node's service entry: verify-full with its dbclient certificate)
  $dbpki renew -c $dir/cluster.ini --force
Tear it down (every process it started, by PID):
  make demo-down
TXT
