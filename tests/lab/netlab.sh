#!/usr/bin/env bash
# netlab.sh: a lab whose nodes are machines (issue 11).  Needs root.
#
#   netlab.sh up --dir DIR --node NAME:ROLE[:LAYOUT][:systemd][:sudo] ...
#       ROLE db|client, or for "netlab.sh inventory" primary|replica (db
#       nodes), client (listed as a client node) or outsider (a client node
#       the inventory does not list); LAYOUT debian (default: postgresql-
#       common, a stock "main" cluster made by pg_createcluster 15 main and
#       started) or pgdata (no cluster; the login user's home holds pgdata/,
#       certs/, sock/ for dbpki's pg_ctl layout); "systemd" emulates a
#       systemd host; "sudo" (with systemd, debian db nodes) lets postgres
#       run exactly "sudo -n systemctl start|stop|restart|reload
#       postgresql@15-main" (/etc/sudoers.d/netlab-postgres), as an admin
#       would allow for dbpki, and nothing else as root.
#       DIR must exist, be empty and lie outside /tmp and /run (the nodes
#       get their own empty /tmp and /run); e.g. mktemp -d /var/tmp/netlab.XXXXXX
#   netlab.sh down --dir DIR        power every node off, remove the
#                                   namespaces and the nodes' files (fs/;
#                                   logs stay until DIR is removed)
#   netlab.sh reboot --dir DIR NODE|all    power loss, then boot
#   netlab.sh poweroff|poweron --dir DIR NODE|all   power loss and nothing
#                                   more; boot (a node stays off until then)
#   netlab.sh exec --dir DIR NODE|admin -- CMD...   run CMD (as root) there
#   netlab.sh ssh --dir DIR NODE [CMD...]   ssh from admin as the node's login user
#   netlab.sh ls --dir DIR          one line per node: NAME ROLE LAYOUT SYSTEMD ADDR4 ADDR6 LOGIN
#   netlab.sh inventory --dir DIR [--name NAME]
#       write DIR/cluster.ini (0600) for dbpki, as tests/lab/lab.sh does: the
#       primary/replica nodes and client nodes; a debian-layout node gets
#       layout = debian and the main cluster's data directory
#       (/var/lib/postgresql/15/main, certificates in ~postgres/dbpki); state_dir
#       DIR/state; allowed_networks = the admin side and every listed node
# (--dir may be replaced by NETLAB_DIR in the environment.)
#
# Each node is a named network namespace (it survives the node's reboot)
# with one veth into a bridge that lives in the lab's own bridge namespace,
# 192.0.2.(10+i)/24 and 2001:db8::(10+i)/64, no default route; plus mount,
# UTS, IPC and PID namespaces (unshare) whose PID 1 is tests/tools/labinit.
# Its own /etc/postgresql, /var/lib/postgresql, /var/log/postgresql,
# /etc/ssh and /home are bind mounts of DIR/nodes/NAME/fs/...; its own
# /etc/hosts, /etc/passwd, /etc/group and /etc/shadow come from an overlay
# on /etc (upper layer DIR/nodes/NAME/fs/etc-overlay/upper), because a bind
# mount on a single file is silently detached when the host replaces that
# file by rename (useradd, editors), and the node would see the host's; client nodes also get a
# /usr/lib/postgresql/15/bin holding only the client tools.  sshd listens
# on port 22 of the node's addresses.  The admin side (admin.lab.test,
# 192.0.2.10) is a network namespace on the same bridge; "exec admin" runs a
# command there in a private mount namespace with the lab's /etc/hosts.
#
# Login users: postgres on debian db nodes, dbpkilab on pgdata db nodes,
# dbpkiapp on client nodes; the admin key DIR/ssh/id_ed25519 is in their
# authorized_keys and DIR/ssh/known_hosts lists every node by name and address.
# The nodes' passwd/shadow are copies of the host's (the host's are never
# changed): the extra users exist only there, and postgres's password
# field is "*" rather than "!" because sshd runs with UsePAM no, which
# refuses key logins to "!"-locked accounts.
#
# Layout of DIR:
#   lab.conf                  ID and NODES
#   hosts                     the /etc/hosts every node and the admin get a copy of
#   ssh/                      admin key, known_hosts
#   admin/hosts               the admin side's /etc/hosts
#   nodes/NAME/fs/...         the node's own files (bind-mounted in the node)
#   nodes/NAME/ctl/           node.conf, boot.sh, labinit, booted, sshd.log,
#                             systemctl.log (calls to the systemctl stand-in);
#                             the only part of DIR visible inside the node
#   nodes/NAME/console.log    what the node's init and boot printed
#   nodes/NAME/{unshare,init}.pid    host PIDs of the node's unshare and PID 1
# shellcheck disable=SC2153 # NAME ROLE LOGIN ... come from node.conf (node_conf)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
PGV=15
PGBIN=/usr/lib/postgresql/$PGV/bin
NET4=192.0.2
NET6=2001:db8:
DOMAIN=lab.test
# The user is the one who types the command: a clear message, then exit 1.
die() {
	echo "netlab: $*" >&2
	exit 1
}

usage() {
	sed -n '2,33p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

# A zombie counts as gone: the host's PID 1 may be slow to reap it.
alive() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "${st%% *}" != Z ]
}

wait_gone() { # pid: bounded (10 s)
	local i
	for i in $(seq 1 500); do
		alive "$1" || return 0
		sleep 0.02
	done
	return 1
}

lab_load() {
	[ -n "$DIR" ] || die "no lab: give --dir DIR or set NETLAB_DIR"
	[ -f "$DIR/lab.conf" ] || die "$DIR/lab.conf: no lab there (run netlab.sh up first)"
	# shellcheck source=/dev/null
	. "$DIR/lab.conf"
}

ns_of() { echo "netlab-$ID-$1"; }

node_conf() { # NODE: load its node.conf into the current shell
	local f=$DIR/nodes/$1/ctl/node.conf
	[ -f "$f" ] || die "no node '$1' in $DIR (nodes: $NODES)"
	# shellcheck source=/dev/null disable=SC2034 # NAME ROLE ... are used by the callers
	. "$f"
}

init_pid() { # NODE: host PID of the node's PID 1, if it is running and ours
	# (labinit, or setup.sh before it became labinit)
	local nd=$DIR/nodes/$1 pid cmd
	pid=$(cat "$nd/init.pid" 2>/dev/null || true)
	[[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	case $cmd in *"$nd/ctl/labinit "* | *"$nd/ctl/setup.sh "*) echo "$pid" ;; *) return 1 ;; esac
}

# ---------------------------------------------------------------- creation

add_user() { # FSDIR NAME UID HOME: a user in the node's passwd/group/shadow only
	local fs=$1 name=$2 uid=$3 home=$4 f
	local up=$fs/etc-overlay/upper
	for f in passwd group shadow; do
		awk -F: -v n="$name" '$1 != n' "$up/$f" >"$up/$f.new"
		cat "$up/$f.new" >"$up/$f"
		rm -f "$up/$f.new"
	done
	echo "$name:x:$uid:$uid:netlab $name:$home:/bin/bash" >>"$up/passwd"
	echo "$name:x:$uid:" >>"$up/group"
	echo "$name:*:20000:0:99999:7:::" >>"$up/shadow"
}

free_uid() { # the first uid >= 2000 that neither the host's passwd nor group uses
	local u=2000
	while getent passwd "$u" >/dev/null || getent group "$u" >/dev/null; do
		u=$((u + 1))
	done
	echo "$u"
}

write_sshd_config() { # FILE ADDR4 ADDR6 LOGIN
	cat >"$1" <<EOF
# Generated by tests/lab/netlab.sh for one lab node.
Port 22
ListenAddress $2
ListenAddress $3
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
AllowUsers $4
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitRootLogin no
PermitEmptyPasswords no
UsePAM no
StrictModes yes
UseDNS no
PrintMotd no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
MaxStartups 64:30:256
MaxSessions 32
LoginGraceTime 30
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
}

make_node_fs() { # NAME ROLE LAYOUT SYSTEMD INDEX LOGIN UID INV
	local name=$1 role=$2 layout=$3 systemd=$4 i=$5 login=$6 uid=$7 inv=$8 sudo=$9
	local nd=$DIR/nodes/$name fs ctl a4 a6 home binds
	fs=$nd/fs
	ctl=$nd/ctl
	a4=$NET4.$((10 + i))
	a6=$NET6:$((10 + i))
	mkdir -p "$fs/etc" "$fs/etc-overlay/upper" "$fs/etc-overlay/work" "$ctl"
	install -d -o postgres -g postgres -m 0755 "$fs/etc/postgresql" "$fs/var/lib/postgresql"
	install -d -o root -g postgres -m 1775 "$fs/var/log/postgresql"
	install -d -m 0755 "$fs/etc/ssh" "$fs/home"
	cp -a /etc/ssh/ssh_config /etc/ssh/moduli "$fs/etc/ssh/" 2>/dev/null || true
	[ -d /etc/ssh/ssh_config.d ] && cp -a /etc/ssh/ssh_config.d "$fs/etc/ssh/"
	ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$fs/etc/ssh/ssh_host_ed25519_key" </dev/null
	write_sshd_config "$fs/etc/ssh/sshd_config" "$a4" "$a6" "$login"
	cp -p "$DIR/hosts" /etc/passwd /etc/group /etc/shadow "$fs/etc-overlay/upper/"
	sed -i 's/^postgres:!\{1,2\}[^:]*:/postgres:*:/' "$fs/etc-overlay/upper/shadow"
	binds="etc/postgresql var/lib/postgresql var/log/postgresql etc/ssh home"

	if [ "$login" = postgres ]; then
		home=/var/lib/postgresql
		uid=$(id -u postgres)
	else
		home=/home/$login
		add_user "$fs" "$login" "$uid" "$home"
	fi
	install -d -o "$uid" -g "$uid" -m 0755 "$fs$home"
	install -d -o "$uid" -g "$uid" -m 0700 "$fs$home/.ssh"
	install -o "$uid" -g "$uid" -m 0600 "$DIR/ssh/id_ed25519.pub" "$fs$home/.ssh/authorized_keys"
	if [ "$role" = db ] && [ "$layout" = pgdata ]; then
		install -d -o "$uid" -g "$uid" -m 0700 "$fs$home/pgdata"
		install -d -o "$uid" -g "$uid" -m 0755 "$fs$home/sock"
	fi
	[ "$login" = postgres ] || install -d -o "$uid" -g "$uid" -m 0700 "$fs$home/certs"
	if [ "$role" = client ]; then
		# No server: a bin directory with the client tools only (what
		# postgresql-client-15 installs there), so pg_wrapper's psql works.
		install -d -m 0755 "$fs$PGBIN"
		local t
		for t in clusterdb createdb createuser dropdb dropuser pg_amcheck \
			pg_basebackup pg_config pg_dump pg_dumpall pg_isready \
			pg_receivewal pg_recvlogical pg_restore pg_verifybackup psql \
			reindexdb vacuumdb; do
			[ -e "$PGBIN/$t" ] && cp -p "$PGBIN/$t" "$fs$PGBIN/"
		done
		binds="$binds ${PGBIN#/}"
	fi

	printf '%s\n' "$(cut -d' ' -f1,2 "$fs/etc/ssh/ssh_host_ed25519_key.pub")" >"$nd/hostkey"
	printf '%s.%s,%s,%s,%s %s\n' "$name" "$DOMAIN" "$name" "$a4" "$a6" \
		"$(cat "$nd/hostkey")" >>"$DIR/ssh/known_hosts"

	cp "$root/tests/lab/netlab/boot.sh" "$root/tests/lab/netlab/setup.sh" "$ctl/"
	cp "$LABINIT" "$ctl/labinit"
	if [ "$systemd" = 1 ]; then
		cp "$root/tests/lab/netlab/systemctl" "$ctl/systemctl"
		printf '#!/bin/sh\n# netlab: the systemctl stand-in of node %s, with its call log\nNETLAB_SYSTEMCTL_LOG=%s/systemctl.log exec %s/systemctl "$@"\n' \
			"$name" "$ctl" "$ctl" >"$ctl/systemctl-wrapper"
		chmod 0755 "$ctl/systemctl-wrapper" "$ctl/systemctl"
		: >"$ctl/systemctl.log"
		chmod 0666 "$ctl/systemctl.log" # non-root callers (is-active) log too
	fi
	if [ "$sudo" = 1 ]; then
		# What an admin adds so that a non-root postgres may drive its
		# cluster's unit on a systemd host: these four commands, no more.
		local a u=postgresql@$PGV-main
		install -d -m 0750 "$fs/etc-overlay/upper/sudoers.d"
		{
			echo "# netlab.sh: postgres may start/stop/restart/reload its cluster's unit, nothing else"
			for a in start stop restart reload; do
				echo "postgres ALL=(root) NOPASSWD: /usr/bin/systemctl $a $u"
			done
		} >"$fs/etc-overlay/upper/sudoers.d/netlab-postgres"
		chmod 0440 "$fs/etc-overlay/upper/sudoers.d/netlab-postgres"
		visudo -cq -f "$fs/etc-overlay/upper/sudoers.d/netlab-postgres" ||
			die "$name: the sudo rule does not parse (visudo -c)"
	fi
	cat >"$ctl/node.conf" <<EOF
NAME=$name
ROLE=$role
INV=$inv
LAYOUT=$layout
SYSTEMD=$systemd
SUDO=$sudo
ADDR4=$a4
ADDR6=$a6
LOGIN=$login
LOGIN_HOME=$home
BINDS="$binds"
EOF
}

net_node() { # NAME INDEX ADDR4 ADDR6: the node's namespace, veth, addresses
	local ns br
	ns=$(ns_of "$1")
	br=$(ns_of br)
	ip netns add "$ns" || die "ip netns add $ns failed: network namespaces are required"
	ip -n "$br" link add "v$2" type veth peer name eth0 netns "$ns"
	ip -n "$br" link set "v$2" master br0 up
	ip -n "$ns" link set lo up
	# A powered-off node's link is down (power_off); its addresses stay.
	nsenter --net="/run/netns/$ns" sysctl -q -w net.ipv6.conf.eth0.keep_addr_on_down=1
	ip -n "$ns" addr add "$3/24" dev eth0
	ip -n "$ns" addr add "$4/64" dev eth0 nodad
	ip -n "$ns" link set eth0 up
}

# ---------------------------------------------------------------- power

power_on() { # NODE: start its namespaces and init (wait_booted waits for the boot)
	local n=$1 nd=$DIR/nodes/$1 ns upid ipid="" i
	ns=$(ns_of "$n")
	rm -f "$nd/ctl/booted"
	ip -n "$ns" link set eth0 up
	setsid nsenter --net="/run/netns/$ns" -- \
		unshare --mount --uts --ipc --pid --fork --mount-proc --propagation private -- \
		/bin/bash "$nd/ctl/setup.sh" "$DIR" "$n" </dev/null >>"$nd/console.log" 2>&1 &
	upid=$!
	echo "$upid" >"$nd/unshare.pid"
	# Up to 30 s: generous for a loaded machine; a node whose setup fails
	# ends the wait at once (alive below).
	for i in $(seq 1 3000); do
		ipid=$(cat "/proc/$upid/task/$upid/children" 2>/dev/null || true)
		ipid=${ipid%% *}
		[ -n "$ipid" ] && break
		alive "$upid" || break
		sleep 0.01
	done
	if ! [[ $ipid =~ ^[0-9]+$ ]]; then
		# The console log goes with a lab torn down after a failure (a test's
		# tmpfs root): show its end here.
		tail -n 15 "$nd/console.log" 2>/dev/null | sed "s/^/netlab: $n console: /" >&2 || true
		die "$n: its PID 1 did not start; see $nd/console.log"
	fi
	echo "$ipid" >"$nd/init.pid"
}

wait_booted() { # NODE
	local n=$1 nd=$DIR/nodes/$1 upid i
	upid=$(cat "$nd/unshare.pid")
	for i in $(seq 1 3000); do # up to 60 s: a cluster's start on a loaded machine
		[ -f "$nd/ctl/booted" ] && break
		alive "$upid" || die "$n: the node died while booting; see $nd/console.log"
		sleep 0.02
	done
	[ -f "$nd/ctl/booted" ] || die "$n: boot did not finish within 60 s; see $nd/console.log"
	[ "$(cat "$nd/ctl/booted")" = ok ] ||
		die "$n: boot failed:$(cat "$nd/ctl/booted"); see $nd/console.log and $nd/ctl/sshd.log"
}

power_off() { # NODE: SIGKILL its PID 1: every process of the node dies at once
	local n=$1 nd=$DIR/nodes/$1 ipid upid
	# and its network link goes down: others see no host (no reply), not a
	# host that refuses connections
	ip -n "$(ns_of "$n")" link set eth0 down 2>/dev/null || true
	if ipid=$(init_pid "$n"); then
		kill -KILL "$ipid" 2>/dev/null || true
		wait_gone "$ipid" || echo "netlab: $n: PID 1 ($ipid) survived SIGKILL" >&2
	fi
	upid=$(cat "$nd/unshare.pid" 2>/dev/null || true)
	if [[ $upid =~ ^[0-9]+$ ]] && alive "$upid" &&
		tr '\0' ' ' <"/proc/$upid/cmdline" 2>/dev/null | grep -qF -- "$nd/ctl/setup.sh"; then
		wait_gone "$upid" || { kill -KILL "$upid" 2>/dev/null || true; }
	fi
	rm -f "$nd/init.pid" "$nd/unshare.pid"
}

# ---------------------------------------------------------------- commands

cmd_up() {
	local -a specs=()
	while [ $# -gt 0 ]; do
		case $1 in
		--node) specs+=("${2:?--node NAME:ROLE[:LAYOUT][:systemd][:sudo]}"); shift 2 ;;
		*) usage ;;
		esac
	done
	[ "$(id -u)" -eq 0 ] || die "needs root (ip netns, unshare, mount); run it as root"
	if [ -z "$DIR" ] || [ ${#specs[@]} -eq 0 ]; then usage; fi
	[[ $DIR = /* ]] || die "--dir must be an absolute path"
	[ -d "$DIR" ] || die "$DIR: no such directory"
	DIR=$(cd "$DIR" && pwd -P)
	case $DIR/ in /tmp/* | /run/*) die "$DIR: a lab directory may not lie under /tmp or /run (nodes get their own); use mktemp -d /var/tmp/netlab.XXXXXX" ;; esac
	[ -z "$(ls -A "$DIR")" ] || die "$DIR is not empty (a lab already up there? run: netlab.sh down --dir $DIR)"
	# Each node's /etc is an overlay whose upper layer lives in DIR, and the
	# kernel refuses (or, seen once, only sometimes accepts) an overlayfs
	# upper layer on overlayfs: say so before any node is half made.
	[ "$(stat -f -c %T "$DIR")" != overlayfs ] ||
		die "$DIR is on overlayfs, which cannot hold the nodes' /etc overlays; choose a directory on another filesystem (a tmpfs will do)"
	local t
	for t in ip nsenter unshare setsid ssh-keygen /usr/sbin/sshd pg_createcluster pg_ctlcluster; do
		command -v "$t" >/dev/null || die "$t missing; run: make deps"
	done
	[ -x "$PGBIN/postgres" ] || die "$PGBIN/postgres missing: PostgreSQL $PGV is needed; run: make deps"
	LABINIT=${NETLAB_INIT:-}
	if [ -z "$LABINIT" ]; then
		for t in "${DBPKI_BUILD:-}/tools/labinit" "$root/build/tools/labinit"; do
			[ -x "$t" ] && { LABINIT=$t; break; }
		done
	fi
	if [ -z "$LABINIT" ]; then # stand-alone use: the init is one small C file
		mkdir -p "$DIR/bin"
		cc -O2 -Wall -Wextra -Werror -o "$DIR/bin/labinit" "$root/tests/tools/labinit.c" ||
			die "cannot build tests/tools/labinit.c; run: make (or set NETLAB_INIT)"
		LABINIT=$DIR/bin/labinit
	fi

	local -a names=() roles=() layouts=() sysd=() sudos=() invs=()
	local s name role layout systemd sudo extra opt inv
	for s in "${specs[@]}"; do
		IFS=: read -r name role extra <<<"$s"
		systemd=0 sudo=0 layout=""
		for opt in ${extra//:/ }; do
			case $opt in
			debian | pgdata) [ -z "$layout" ] || die "--node $s: two layouts"; layout=$opt ;;
			systemd) systemd=1 ;;
			sudo) sudo=1 ;;
			*) die "--node $s: unknown option '$opt'" ;;
			esac
		done
		layout=${layout:-debian}
		[[ $name =~ ^[a-z][a-z0-9-]{0,14}$ ]] || die "--node $s: name: a-z, 0-9, - (at most 15)"
		case $name in admin | br) die "--node $s: '$name' is reserved" ;; esac
		case $role in
		db) inv="" ;;
		primary | replica) inv=$role role=db ;;
		client) inv=client ;;
		outsider) inv="" role=client ;;
		*) die "--node $s: role must be db, primary, replica, client or outsider" ;;
		esac
		case $layout in debian | pgdata) ;; *) die "--node $s: layout must be debian or pgdata" ;; esac
		[[ " ${names[*]} " != *" $name "* ]] || die "--node $s: $name given twice"
		if [ "$sudo" = 1 ]; then
			[ "$systemd:$role:$layout" = 1:db:debian ] || die "--node $s: sudo is for debian db nodes with systemd"
			command -v visudo >/dev/null || die "sudo missing (--node $s: sudo); run: make deps"
		fi
		names+=("$name") roles+=("$role") layouts+=("$layout") sysd+=("$systemd") sudos+=("$sudo") invs+=("$inv")
	done
	[ ${#names[@]} -le 100 ] || die "at most 100 nodes"

	ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
	NODES="${names[*]}"
	umask 022
	# The first "ip netns add" on a host makes /run/netns a mount point in
	# the root mount namespace; the lab that caused it undoes it (down).
	NETNS_MOUNT=0
	mountpoint -q /run/netns 2>/dev/null || NETNS_MOUNT=1
	printf 'ID=%s\nNODES="%s"\nNETNS_MOUNT=%s\n' "$ID" "$NODES" "$NETNS_MOUNT" >"$DIR/lab.conf"
	# From here on a failure takes down what was made.
	trap 'echo "netlab: up failed; taking the lab down" >&2; cmd_down >/dev/null 2>&1 || true' EXIT

	{
		printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
		printf '%s.10\tadmin.%s admin\n%s:10\tadmin.%s admin\n' "$NET4" "$DOMAIN" "$NET6" "$DOMAIN"
		local i
		for i in "${!names[@]}"; do
			printf '%s.%d\t%s.%s %s\n' "$NET4" $((11 + i)) "${names[i]}" "$DOMAIN" "${names[i]}"
			printf '%s:%d\t%s.%s %s\n' "$NET6" $((11 + i)) "${names[i]}" "$DOMAIN" "${names[i]}"
		done
	} >"$DIR/hosts"
	mkdir -m 0755 "$DIR/ssh" "$DIR/admin" "$DIR/nodes"
	cp "$DIR/hosts" "$DIR/admin/hosts"
	(umask 077 && ssh-keygen -q -t ed25519 -N '' -C netlab-admin -f "$DIR/ssh/id_ed25519" </dev/null)
	: >"$DIR/ssh/known_hosts"

	# The bridge's own namespace, then the admin side.
	local br
	br=$(ns_of br)
	ip netns add "$br" || die "ip netns add $br failed: network namespaces are required"
	ip -n "$br" link add br0 type bridge
	ip -n "$br" link set br0 up
	ip -n "$br" link set lo up
	net_node admin 0 "$NET4.10" "$NET6:10"

	local uid login
	uid=$(free_uid)
	for i in "${!names[@]}"; do
		case ${roles[i]}:${layouts[i]} in
		db:debian) login=postgres ;;
		db:pgdata) login=dbpkilab ;;
		client:*) login=dbpkiapp ;;
		esac
		make_node_fs "${names[i]}" "${roles[i]}" "${layouts[i]}" "${sysd[i]}" $((i + 1)) "$login" "$uid" "${invs[i]}" "${sudos[i]}"
		net_node "${names[i]}" $((i + 1)) "$NET4.$((11 + i))" "$NET6:$((11 + i))"
	done
	for i in "${!names[@]}"; do power_on "${names[i]}"; done
	for i in "${!names[@]}"; do wait_booted "${names[i]}"; done
	# "apt-get install postgresql-15": a main cluster on each debian db
	# node, started, on localhost and the node's addresses.
	local -a jobs=()
	for i in "${!names[@]}"; do
		[ "${roles[i]}:${layouts[i]}" = db:debian ] || continue
		node_exec "${names[i]}" pg_createcluster "$PGV" main \
			-o "listen_addresses=localhost,$NET4.$((11 + i)),$NET6:$((11 + i))" --start \
			>"$DIR/nodes/${names[i]}/createcluster.log" 2>&1 &
		jobs+=("$!:${names[i]}")
	done
	local j
	for j in "${jobs[@]}"; do
		wait "${j%%:*}" || {
			tail -n 15 "$DIR/nodes/${j#*:}/createcluster.log" | sed "s/^/netlab: ${j#*:} pg_createcluster: /" >&2
			die "${j#*:}: pg_createcluster failed; see $DIR/nodes/${j#*:}/createcluster.log"
		}
	done
	trap - EXIT
	echo "netlab: ${#names[@]} node(s) up in $DIR (admin $NET4.10): $NODES"
}

cmd_down() {
	lab_load
	local n ns pid
	for n in $NODES; do
		[ -d "$DIR/nodes/$n" ] && power_off "$n"
	done
	# Anything still in a lab namespace (e.g. a command a test left running
	# in "exec admin") is ours by construction: stopped by its PID.
	for n in $NODES admin br; do
		ns=$(ns_of "$n")
		[ -e "/run/netns/$ns" ] || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			echo "netlab: stopping pid $pid left in $ns" >&2
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone "$pid" || true
		done
		ip netns del "$ns" || echo "netlab: could not delete namespace $ns" >&2
	done
	# The nodes' files (clusters, keys, homes) go; their logs stay for
	# whoever reads why a run failed, until the caller removes DIR.
	local fs
	for fs in "${DIR:?}"/nodes/*/fs; do rm -rf "$fs"; done
	rm -rf "${DIR:?}/bin"
	# /run/netns as it was, unless another lab's namespaces are there now.
	if [ "${NETNS_MOUNT:-0}" = 1 ] && mountpoint -q /run/netns && [ -z "$(ip netns list)" ]; then
		umount /run/netns 2>/dev/null || echo "netlab: could not unmount /run/netns" >&2
	fi
}

node_exec() { # NODE CMD...: run CMD as root inside the node
	local n=$1 ipid
	shift
	ipid=$(init_pid "$n") || die "$n is not running (see $DIR/nodes/$n/console.log)"
	# -r: the node's root is its PID 1's.  Entering a mount namespace
	# otherwise sets the root to that namespace's root mount, which escapes
	# a chroot the lab runs in (test_fresh_root's), and the node then saw
	# the machine's /etc/postgresql instead of its own.
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		nsenter -t "$ipid" -m -u -i -n -p -r --wdns=/ -- "$@"
}

admin_exec() { # CMD...: run CMD in the admin namespace with the lab's /etc/hosts
	# shellcheck disable=SC2016 # expanded by the inner sh
	nsenter --net="/run/netns/$(ns_of admin)" -- \
		unshare --mount --propagation private -- \
		/bin/sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$DIR/admin/hosts" "$@"
}

cmd_exec() {
	lab_load
	local n=${1:?exec NODE|admin -- CMD}
	shift
	[ "${1:-}" = -- ] && shift
	[ $# -ge 1 ] || usage
	if [ "$n" = admin ]; then admin_exec "$@"; else node_conf "$n" && node_exec "$n" "$@"; fi
}

cmd_ssh() {
	lab_load
	local n=${1:?ssh NODE [CMD...]}
	shift
	[ "${1:-}" = -- ] && shift
	node_conf "$n"
	admin_exec ssh -o LogLevel=ERROR -i "$DIR/ssh/id_ed25519" -o IdentitiesOnly=yes \
		-o UserKnownHostsFile="$DIR/ssh/known_hosts" -o GlobalKnownHostsFile=/dev/null \
		-o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10 \
		-l "$LOGIN" "$n.$DOMAIN" "$@"
}

cmd_power() { # off|on|reboot NODE|all
	lab_load
	local how=$1 what=${2:?$1 NODE|all} n
	local -a list
	if [ "$what" = all ]; then read -r -a list <<<"$NODES"; else node_conf "$what" && list=("$what"); fi
	if [ "$how" != on ]; then
		for n in "${list[@]}"; do power_off "$n"; done
	fi
	if [ "$how" != off ]; then
		for n in "${list[@]}"; do
			! init_pid "$n" >/dev/null || die "$n is already on"
			power_on "$n"
		done
		for n in "${list[@]}"; do wait_booted "$n"; done
	fi
}

cmd_inventory() {
	local name=lab n inv_nodes="" nets="$NET4.10/32" prim=0 debian=0
	while [ $# -gt 0 ]; do
		case $1 in
		--name) name=${2:?--name NAME}; shift 2 ;;
		*) usage ;;
		esac
	done
	lab_load
	[[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "--name: letters, digits, _ . - only"
	for n in $NODES; do
		node_conf "$n"
		[ -n "$INV" ] || continue
		[ "$ROLE:$LAYOUT" != db:debian ] || debian=$((debian + 1))
		[ "$INV" != primary ] || prim=$((prim + 1))
		inv_nodes="$inv_nodes $n"
		nets="$nets, $ADDR4/32"
	done
	[ "$prim" = 1 ] || die "the inventory needs exactly one primary node (have $prim)"
	[ -d "$DIR/state" ] || mkdir -m 0700 "$DIR/state"
	(
		umask 077
		{
			cat <<EOF
# Generated by tests/lab/netlab.sh: the lab in $DIR.
[cluster]
name = $name
platform = postgres
state_dir = $DIR/state
renew_before = 30d
parallel = 16

[ca]
common_name = $name dbca
key = ec:P-256
validity = 3650d
plaintext_key = accepted

[server]
key = ec:P-256
validity = 397d
mode = per-node

[client]
common_name = postgres
key = ec:P-256
validity = 397d

[ssh]
user = dbpkilab
port = 22
identity = $DIR/ssh/id_ed25519
known_hosts = $DIR/ssh/known_hosts
host_key_policy = strict
connect_timeout = 5s
command_timeout = 120s

[postgres]
port = 5432
bindir = $PGBIN
; every source address pg_hba admits: the admin side and each listed node
allowed_networks = $nets
EOF
			for n in $inv_nodes; do
				node_conf "$n"
				cat <<EOF

[node $n]
host = $n.$DOMAIN
address = $ADDR4
role = $INV
user = $LOGIN
EOF
				if [ "$ROLE:$LAYOUT" = db:debian ]; then
					# The cluster apt made (pg_createcluster $PGV main): dbpki
					# finds it by its data directory; its certificates go in
					# a directory of the login user's home, which stays in
					# place across reboots.
					cat <<EOF
layout = debian
pgdata = /var/lib/postgresql/$PGV/main
cert_dir = $LOGIN_HOME/dbpki
socket_dir = /var/run/postgresql
EOF
				else
					# "layout = pgdata" only where the inventory mixes
					# layouts: an all-pgdata inventory stays as before.
					if [ "$ROLE" = db ] && [ "$debian" != 0 ]; then echo "layout = pgdata"; fi
					cat <<EOF
pgdata = $LOGIN_HOME/pgdata
cert_dir = $LOGIN_HOME/certs
socket_dir = $LOGIN_HOME/sock
EOF
				fi
			done
		} >"$DIR/cluster.ini.tmp"
		mv -f "$DIR/cluster.ini.tmp" "$DIR/cluster.ini"
	)
	echo "$DIR/cluster.ini"
}

cmd_ls() {
	lab_load
	local n
	for n in $NODES; do
		(node_conf "$n" && echo "$NAME $ROLE $LAYOUT $SYSTEMD $ADDR4 $ADDR6 $LOGIN")
	done
}

DIR=${NETLAB_DIR:-}
sub=${1:-}
[ $# -gt 0 ] && shift
if [ "${1:-}" = --dir ]; then
	DIR=${2:?--dir DIR}
	shift 2
fi
case $sub in
up) cmd_up "$@" ;;
down) cmd_down ;;
reboot) cmd_power reboot "$@" ;;
poweroff) cmd_power off "$@" ;;
poweron) cmd_power on "$@" ;;
exec) cmd_exec "$@" ;;
ssh) cmd_ssh "$@" ;;
ls) cmd_ls ;;
inventory) cmd_inventory "$@" ;;
*) usage ;;
esac
