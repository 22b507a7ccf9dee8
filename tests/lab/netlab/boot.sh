#!/bin/bash
# boot.sh: the boot sequence of a netlab node, run by its init (labinit).
#
#   boot.sh CTL
#
# What a Debian host's boot does for the services the lab cares about, and
# nothing else (it knows nothing of dbpki):
#   1. the runtime directories systemd-tmpfiles would make in the empty /run
#      (/run/sshd, /run/postgresql from postgresql-common's tmpfiles.d);
#   2. on an emulated systemd host, /run/systemd/system (what pg_ctlcluster
#      looks at to decide that systemd runs the clusters);
#   3. sshd;
#   4. "pg_ctlcluster V C start" for every cluster whose start.conf is auto
#      (on an emulated systemd host pg_ctlcluster itself hands this to the
#      systemctl stand-in, as it hands it to systemd on a real one).
# It writes CTL/booted ("ok" or the failures) when done.
set -uo pipefail
ctl=${1:?CTL}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LANG=C.UTF-8
# shellcheck source=/dev/null
. "$ctl/node.conf"
failed=""

install -d -m 0755 /run/sshd
install -d -o postgres -g postgres -m 2775 /run/postgresql
[ "$SYSTEMD" = 1 ] && mkdir -p /run/systemd/system

/usr/sbin/sshd -E "$ctl/sshd.log" || failed="$failed sshd"

for conf in /etc/postgresql/*/*/start.conf; do
	[ -f "$conf" ] || continue
	d=${conf%/start.conf}
	c=${d##*/}
	v=${d%/*}
	v=${v##*/}
	if [ "$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$conf" | tr -d '[:space:]')" = auto ]; then
		echo "boot: pg_ctlcluster $v $c start"
		pg_ctlcluster "$v" "$c" start || failed="$failed postgresql@$v-$c"
	fi
done
echo "${failed:-ok}" >"$ctl/booted.tmp"
mv "$ctl/booted.tmp" "$ctl/booted"
