#!/usr/bin/env bash
# cms_console.sh: a Cisco Meeting Server MMP console emulator for the lab.
#
# sshd runs it as the login command of a CMS lab node (ForceCommand in that
# node's sshd_config; tests/lab/cms_lab.sh sets it up):
#
#   cms_console.sh NODEDIR
#
# NODEDIR/console.conf (written by cms_lab.sh) names the node, its address,
# the file area and the transcript.  What it does:
#
# * SFTP: ForceCommand also replaces the sftp subsystem, so when sshd asks
#   for the subsystem (SSH_ORIGINAL_COMMAND is the sftp-server path) the
#   emulator hands the session to /usr/lib/openssh/sftp-server.  Any other
#   exec request is refused: the console takes commands interactively only.
# * The console: a prompt "NAME> ", the documented commands with their
#   exact syntax, anything else answered with "Unknown command".  Accepted:
#     database cluster status | remove | initialize
#     database cluster certs <server_key> <server_crt> <client_key> <client_crt> <ca_crt>
#     database cluster certs <client_key> <client_crt> <ca_crt>
#     database cluster localnode <a-e>
#     database cluster join <primary> | connect <primary>
#     backup snapshot <name>
#   `remove` asks for confirmation and goes on only on a capital Y.
# * A real PostgreSQL 15 behind it, under NODEDIR: `initialize` runs initdb
#   (only into an empty data directory), serves the uploaded certificates
#   (ssl on, hostssl + cert in pg_hba) and starts it; `join` clones the
#   primary with pg_basebackup over verify-full with the dbclient
#   certificate and starts a streaming standby; `connect` proves a
#   verify-full connection; `remove` stops clustering and keeps the data (a
#   replica's copy is renamed aside, never deleted; the primary keeps its
#   database in place); `backup snapshot` writes a marker file
#   NODEDIR/console/backups/NAME.bak with the time, the role and the WAL
#   position (a marker, not a copy of the data).
# * A transcript: one line per command to TRANSCRIPT (shared by the lab's
#   nodes, appended under flock): time, node, result, command, note —
#   tab-separated.  Results: ok, failed, aborted, unknown.
# * Failure injection for tests: if NODEDIR/console/fail exists and the
#   command starts with its first line, the command fails with the console's
#   failure message and does nothing.
set -uo pipefail

NODEDIR=${1:?usage: cms_console.sh NODEDIR}
# shellcheck source=/dev/null
. "$NODEDIR/console.conf" # NAME ADDRESS FILES TRANSCRIPT PGBIN PORT ALLOW
SFTP_SERVER=/usr/lib/openssh/sftp-server
STATE=$NODEDIR/console
PGDATA=$NODEDIR/pgdata
SOCK=$NODEDIR/sock
SSL=$STATE/ssl
LOG=$STATE/console.log
mkdir -p -m 0700 "$STATE" "$SSL"
umask 077

# ---- the SSH side: sftp or nothing -----------------------------------------

if [ -n "${SSH_ORIGINAL_COMMAND:-}" ]; then
	if [ "$SSH_ORIGINAL_COMMAND" = "$SFTP_SERVER" ]; then
		exec "$SFTP_SERVER"
	fi
	printf '%s\t%s\t%s\t%s\t%s\n' "$(date +%s.%N)" "$NAME" refused \
	    "(exec request)" "" >>"$TRANSCRIPT"
	echo "Failure: this console accepts commands interactively only"
	exit 1
fi

# ---- state -------------------------------------------------------------------

st_get() { cat "$STATE/$1" 2>/dev/null || true; }
st_set() { printf '%s\n' "$2" >"$STATE/$1"; }

# role: none | primary | replica | client
role() { local r; r=$(st_get role); echo "${r:-none}"; }

record() { # result command note
	(
		flock 9
		printf '%s\t%s\t%s\t%s\t%s\n' "$(date +%s.%N)" "$NAME" "$1" "$2" "${3:-}" >>"$TRANSCRIPT"
	) 9>>"$TRANSCRIPT.lock"
	st_set last_command "'$2' ($( [ "$1" = ok ] && echo Success || echo Failure))"
}

failure() { # message -> console failure text
	echo "Failure: $*"
	return 1
}

# ---- PostgreSQL --------------------------------------------------------------

PSQL_LOCAL=("$PGBIN/psql" -X -A -t -q -h "$SOCK" -p "$PORT" -U postgres -d postgres)

pg_up() { "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

pg_stop() {
	pg_up || return 0
	"$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >>"$LOG" 2>&1
}

pg_start() {
	# setsid: the database must outlive this console session.
	setsid "$PGBIN/pg_ctl" -D "$PGDATA" -l "$STATE/postgres.log" -w -t 60 \
	    start >>"$LOG" 2>&1 </dev/null ||
	    { failure "the database did not start: $(tail -n 1 "$STATE/postgres.log")"; return 1; }
}

# The dbclient connection to the primary, as libpq keywords.
primary_conninfo() { # address
	printf 'host=%s port=%s user=postgres dbname=postgres sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s gssencmode=disable connect_timeout=5 application_name=%s' \
	    "$1" "$PORT" "$SSL/ca.crt" "$SSL/client.crt" "$SSL/client.key" "$NAME"
}

ask_primary() { # address -> "f" when it answers as a primary
	"$PGBIN/psql" -X -A -t -q -d "$(primary_conninfo "$1")" \
	    -c 'SELECT pg_is_in_recovery()' 2>>"$LOG"
}

write_pg_conf() { # role
	local net
	{
		echo "# cms console emulator: database of $NAME"
		echo "listen_addresses = '$ADDRESS'"
		echo "port = $PORT"
		echo "unix_socket_directories = '$SOCK'"
		echo "ssl = on"
		echo "ssl_cert_file = '$SSL/server.crt'"
		echo "ssl_key_file = '$SSL/server.key'"
		echo "ssl_ca_file = '$SSL/ca.crt'"
		echo "hba_file = '$STATE/pg_hba.conf'"
		echo "ident_file = '$STATE/pg_ident.conf'"
		echo "wal_keep_size = '128MB'"
		echo "fsync = off"
		echo "shared_buffers = 16MB"
		if [ "$1" = replica ]; then
			echo "primary_conninfo = '$(primary_conninfo "$(st_get primary)")'"
		fi
	} >"$STATE/cms.conf"
	{
		echo "local all all peer map=cms"
		echo "local replication all peer map=cms"
		for net in $ALLOW; do
			echo "hostssl all postgres $net cert clientcert=verify-full"
			echo "hostssl replication postgres $net cert clientcert=verify-full"
		done
	} >"$STATE/pg_hba.conf"
	echo "cms $(id -un) postgres" >"$STATE/pg_ident.conf"
	grep -qxF "include = '$STATE/cms.conf'" "$PGDATA/postgresql.conf" ||
	    echo "include = '$STATE/cms.conf'" >>"$PGDATA/postgresql.conf"
}

# Never delete a database: rename it aside.
move_aside() {
	local aside
	aside="$PGDATA.removed-$(date -u +%Y%m%dT%H%M%S.%NZ)"
	mv "$PGDATA" "$aside" && mkdir -m 0700 "$PGDATA"
	echo "Previous database kept as $(basename "$aside")"
}

# ---- commands ----------------------------------------------------------------

file_ok() { # console file name
	[[ $1 =~ ^[A-Za-z0-9_.-]+$ ]] && [[ $1 != .* ]] && [ -f "$FILES/$1" ] && [ ! -L "$FILES/$1" ]
}

same_key() { # key cert
	[ "$(openssl pkey -in "$1" -pubout 2>/dev/null)" = \
	    "$(openssl x509 -in "$2" -noout -pubkey 2>/dev/null)" ]
}

cmd_certs() {
	local names=("$@") f
	[ "$(role)" = none ] ||
	    { failure "the node is in a database cluster; run 'database cluster remove' first"; return 1; }
	for f in "${names[@]}"; do
		file_ok "$f" || { failure "file $f not found"; return 1; }
	done
	local ca=$FILES/${names[-1]} ck=$FILES/${names[-3]} cc=$FILES/${names[-2]}
	same_key "$ck" "$cc" || { failure "$(basename "$ck") does not match $(basename "$cc")"; return 1; }
	openssl verify -CAfile "$ca" -purpose sslclient "$cc" >/dev/null 2>&1 ||
	    { failure "$(basename "$cc") is not signed by $(basename "$ca")"; return 1; }
	[ "$(openssl x509 -in "$cc" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p')" = postgres ] ||
	    { failure "the client certificate's CN must be postgres"; return 1; }
	if [ ${#names[@]} = 5 ]; then
		local sk=$FILES/${names[0]} sc=$FILES/${names[1]}
		same_key "$sk" "$sc" || { failure "${names[0]} does not match ${names[1]}"; return 1; }
		openssl verify -CAfile "$ca" -purpose sslserver "$sc" >/dev/null 2>&1 ||
		    { failure "${names[1]} is not signed by ${names[4]}"; return 1; }
		install -m 0600 "$sk" "$SSL/server.key"
		install -m 0600 "$sc" "$SSL/server.crt"
	else
		rm -f "$SSL/server.key" "$SSL/server.crt"
	fi
	install -m 0600 "$ck" "$SSL/client.key"
	install -m 0600 "$cc" "$SSL/client.crt"
	install -m 0600 "$ca" "$SSL/ca.crt"
	st_set certs "${names[*]}"
}

cmd_localnode() {
	[ "$(role)" = none ] ||
	    { failure "the node is in a database cluster; run 'database cluster remove' first"; return 1; }
	st_set interface "$1"
}

need_database_certs() {
	local n
	n=$(st_get certs | wc -w)
	[ "$n" = 5 ] || { failure "no database certificates: run 'database cluster certs' with 5 files first"; return 1; }
	[ -n "$(st_get interface)" ] || { failure "no interface: run 'database cluster localnode' first"; return 1; }
	[ "$(role)" = none ] || { failure "the node is already in a database cluster ($(role))"; return 1; }
}

cmd_initialize() {
	need_database_certs || return 1
	if [ -s "$PGDATA/PG_VERSION" ] && [ -f "$PGDATA/standby.signal" ]; then
		pg_stop
		move_aside
	fi
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		mkdir -p -m 0700 "$PGDATA"
		"$PGBIN/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
		    --auth-local=peer --auth-host=reject --no-sync >>"$LOG" 2>&1 ||
		    { failure "initdb failed"; return 1; }
	fi
	pg_stop
	write_pg_conf primary
	pg_start || return 1
	st_set role primary
	st_set primary "$ADDRESS"
	echo "Initialization completed"
}

cmd_join() {
	local p=$1
	need_database_certs || return 1
	pg_stop
	if [ -d "$PGDATA" ] && [ -n "$(ls -A "$PGDATA")" ]; then
		move_aside
	fi
	mkdir -p -m 0700 "$PGDATA"
	"$PGBIN/pg_basebackup" -D "$PGDATA" -d "$(primary_conninfo "$p")" \
	    -X stream -c fast -w --no-sync >"$STATE/basebackup.log" 2>&1 ||
	    { failure "cannot join $p: $(tail -n 1 "$STATE/basebackup.log")"; return 1; }
	chmod 700 "$PGDATA"
	touch "$PGDATA/standby.signal"
	st_set primary "$p"
	write_pg_conf replica
	pg_start || return 1
	st_set role replica
	echo "Joined the database cluster of $p"
}

cmd_connect() {
	local p=$1 n
	n=$(st_get certs | wc -w)
	[ "$n" = 3 ] || [ "$n" = 5 ] || { failure "no client certificates: run 'database cluster certs' first"; return 1; }
	[ "$(role)" = none ] || { failure "the node is already in a database cluster ($(role))"; return 1; }
	[ "$(ask_primary "$p")" = f ] ||
	    { failure "cannot connect to $p: $(tail -n 1 "$LOG")"; return 1; }
	st_set primary "$p"
	st_set role client
	echo "Connected to the database cluster of $p"
}

cmd_remove() {
	local answer
	printf 'Are you sure you want to remove this node from the database cluster? (Y/n) '
	IFS= read -r answer || return 1
	answer=${answer%$'\r'}
	if [ "$answer" != Y ]; then
		echo "Aborted"
		NOTE="answer=$answer"
		return 2
	fi
	NOTE="answer=Y"
	case $(role) in
	none) echo "Node is not in a database cluster" ;;
	replica)
		pg_stop
		move_aside
		echo "Node removed from the database cluster"
		;;
	*)
		pg_stop
		echo "Node removed from the database cluster"
		;;
	esac
	st_set role none
	rm -f "$STATE/primary"
}

# "Connected Primary" when that address answers as a primary right now.
peer_state() {
	[ "$(ask_primary "$1")" = f ] && echo "Connected Primary" || echo "Unreachable"
}

my_state() {
	case $(role) in
	primary)
		pg_up && [ "$("${PSQL_LOCAL[@]}" -c 'SELECT pg_is_in_recovery()' 2>>"$LOG")" = f ] &&
		    echo "Connected Primary" || echo "Database down"
		;;
	replica)
		[ "$("${PSQL_LOCAL[@]}" -c 'SELECT status FROM pg_stat_wal_receiver' 2>>"$LOG")" = streaming ] &&
		    echo "Connected Replica" || echo "Replica (not streaming)"
		;;
	client) [ "$(peer_state "$(st_get primary)")" = "Connected Primary" ] &&
		echo "Connected" || echo "Disconnected" ;;
	esac
}

cmd_status() {
	local r c
	r=$(role)
	read -r -a c <<<"$(st_get certs)"
	printf '%-24s: %s\n' "Status" "$([ "$r" = none ] && echo Disabled || echo Enabled)"
	echo "Nodes:"
	if [ "$r" = replica ] || [ "$r" = client ]; then
		printf '    %-22s: %s\n' "$(st_get primary)" "$(peer_state "$(st_get primary)")"
	fi
	[ "$r" = none ] || printf '    %-22s: %s\n' "$ADDRESS (me)" "$(my_state)"
	printf '%-24s: %s\n' "Interface" "$(st_get interface)"
	echo "Certificates"
	if [ ${#c[@]} = 5 ]; then
		printf '    %-20s: %s\n' "Server Key" "${c[0]}" "Server Certificate" "${c[1]}"
	fi
	if [ ${#c[@]} -ge 3 ]; then
		printf '    %-20s: %s\n' "Client Key" "${c[-3]}" "Client Certificate" "${c[-2]}" \
		    "CA Certificate" "${c[-1]}"
	fi
	printf '%-24s: %s\n' "Last command" "$(st_get last_command)"
}

cmd_snapshot() {
	local name=$1 f lsn=""
	f=$STATE/backups/$name.bak
	mkdir -p -m 0700 "$STATE/backups"
	[ ! -e "$f" ] || { failure "backup $name.bak exists"; return 1; }
	pg_up && lsn=$("${PSQL_LOCAL[@]}" -c 'SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END' 2>>"$LOG")
	printf 'time=%s\nnode=%s\nrole=%s\nwal=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	    "$NAME" "$(role)" "${lsn:-none}" >"$f"
	echo "Snapshot $name.bak created"
}

valid_addr() { [[ $1 =~ ^[A-Za-z0-9.:-]+$ ]]; }

# Run one command line; 0 ok, 1 failed, 2 aborted, 3 unknown.
dispatch() {
	local -a w
	read -r -a w <<<"$1"
	local n=${#w[@]} head="${w[0]:-} ${w[1]:-} ${w[2]:-}"
	if [ -f "$STATE/fail" ] && [[ $1 == "$(head -n 1 "$STATE/fail")"* ]]; then
		failure "$1: operation failed (injected by the test)"
		return 1
	fi
	case "$head" in
	"database cluster status") [ "$n" = 3 ] && { cmd_status; return; } ;;
	"database cluster remove") [ "$n" = 3 ] && { cmd_remove; return; } ;;
	"database cluster initialize") [ "$n" = 3 ] && { cmd_initialize; return; } ;;
	"database cluster certs")
		if [ "$n" = 8 ] || [ "$n" = 6 ]; then
			cmd_certs "${w[@]:3}"
			return
		fi
		failure "usage: database cluster certs <server_key> <server_crt> <client_key> <client_crt> <ca_crt> | <client_key> <client_crt> <ca_crt>"
		return 1
		;;
	"database cluster localnode")
		if [ "$n" = 4 ] && [[ ${w[3]} =~ ^[a-e]$ ]]; then
			cmd_localnode "${w[3]}"
			return
		fi
		failure "usage: database cluster localnode <a|b|c|d|e>"
		return 1
		;;
	"database cluster join" | "database cluster connect")
		if [ "$n" = 4 ] && valid_addr "${w[3]}"; then
			"cmd_${w[2]}" "${w[3]}"
			return
		fi
		failure "usage: database cluster ${w[2]} <primary address>"
		return 1
		;;
	esac
	if [ "${w[0]:-} ${w[1]:-}" = "backup snapshot" ]; then
		if [ "$n" = 3 ] && [[ ${w[2]} =~ ^[A-Za-z0-9_-]{1,64}$ ]]; then
			cmd_snapshot "${w[2]}"
			return
		fi
		failure "usage: backup snapshot <name>"
		return 1
	fi
	echo "Unknown command: $1"
	return 3
}

# ---- the session ---------------------------------------------------------------

echo "Cisco Meeting Server MMP console (dbpki lab emulator) on $NAME"
while :; do
	printf '%s> ' "$NAME"
	IFS= read -r line || exit 0
	line=${line%$'\r'}
	line=$(printf '%s' "$line" | tr -s ' \t' '  ' | sed 's/^ //; s/ $//')
	[ -n "$line" ] || continue
	NOTE=""
	dispatch "$line"
	case $? in
	0) record ok "$line" "$NOTE" ;;
	2) record aborted "$line" "$NOTE" ;;
	3) record unknown "$line" "$NOTE" ;;
	*) record failed "$line" "$NOTE" ;;
	esac
done
