#!/bin/bash
# setup.sh: the first moments of a netlab node's power-on (tests/lab/netlab.sh).
#
#   setup.sh LAB NODE
#
# Runs as PID 1 of the node's fresh mount, UTS, IPC and PID namespaces (made
# by unshare inside the node's named network namespace), before the node's
# init: it gives the node its own files by bind mounts, empty tmpfs mounts
# on /run, /tmp and /dev/shm, its host name, and hides the lab directory
# (which holds the other nodes' files and the admin key), then becomes
# labinit, which runs boot.sh.  Mounts made here die with the namespace, so
# a "reboot" (SIGKILL to PID 1) brings /run and /tmp back empty.
set -euo pipefail

lab=${1:?LAB} node=${2:?NODE}
nd=$lab/nodes/$node
ctl=$nd/ctl
# shellcheck source=/dev/null
. "$ctl/node.conf" # ROLE LAYOUT SYSTEMD ADDR4 ADDR6 LOGIN BINDS

fail() {
	echo "netlab $node: setup: $*" >&2
	exit 1
}

# /etc: the host's, under the node's own hosts, passwd, group, shadow
# (an overlay: file bind mounts would be detached when the host renames
# over those files).  Then per-node copies of host directories, e.g.
# etc/postgresql -> /etc/postgresql.
mount -t overlay overlay \
	-o "lowerdir=/etc,upperdir=$nd/fs/etc-overlay/upper,workdir=$nd/fs/etc-overlay/work" /etc ||
	fail "overlay mount on /etc failed (needs overlayfs)"
for p in $BINDS; do
	[ -e "/$p" ] || fail "/$p does not exist on this host: cannot bind $nd/fs/$p over it"
	mount --bind "$nd/fs/$p" "/$p" || fail "bind $nd/fs/$p on /$p"
done
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
# The control directory survives hiding the lab: staged under /run,
# moved back to its own path once the lab directory is covered.
mkdir /run/.netlab-ctl
mount --bind "$ctl" /run/.netlab-ctl
mount -t tmpfs -o mode=0755 tmpfs "$lab"
mkdir -p "$ctl"
mount --move /run/.netlab-ctl "$ctl"
rmdir /run/.netlab-ctl
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
if [ "$SYSTEMD" = 1 ]; then
	mount --bind "$ctl/systemctl-wrapper" /usr/bin/systemctl
fi
hostname "$node"
rm -rf /run/mount # util-linux mount's bookkeeping: /run starts empty
exec "$ctl/labinit" "$ctl/boot.sh" "$ctl"
