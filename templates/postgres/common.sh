# dbpki node-side library for the postgres platform (templates/postgres/common.sh).
# dbpki prepends it to every action script and sends the result to `sh -s`
# over SSH; every slot below arrives as one single-quoted shell word.
set -eu
umask 077

NODE={{node}}
ROLE={{role}}
CLUSTER={{cluster}}
HOST={{host}}
ADDRESS={{address}}
PORT={{port}}
PGDATA={{pgdata}}
BINDIR={{bindir}}
CERT_DIR={{cert_dir}}
SOCKET_DIR={{socket_dir}}
LAYOUT={{layout}}
PG_CLUSTER={{pg_cluster}}
LISTEN_LOCALHOST={{listen_localhost}}
START_CONF={{start_conf}}
ALLOWED_NETWORKS={{allowed_networks}}
RELEASE_ID={{release_id}}
RELEASE_DIR={{release_dir}}
DB_USER={{db_user}}
PRIMARY_HOST={{primary_host}}
PRIMARY_ADDRESS={{primary_address}}
PRIMARY_PORT={{primary_port}}
REPLICAS={{replicas}}
SENTINEL={{sentinel}}

PATH="$BINDIR:/usr/sbin:/usr/bin:/sbin:/bin"
export PATH
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGSERVICEFILE PGSSLMODE
MARK='# managed by dbpki'
PG_LOG="$CERT_DIR/postgresql.log"

say() { printf '%s: %s\n' "$NODE" "$*"; }
die() { printf '%s: error: %s\n' "$NODE" "$*" >&2; exit 1; }

pg_running() { pg_ctl -D "$PGDATA" status >/dev/null 2>&1; }

# ---- Layouts: everything that differs between the ways PostgreSQL is
# installed lives here (docs/postgres-tls.md, "Layouts").  A new layout
# (RHEL/PGDG: config inside PGDATA, a postgresql-15 unit) sets the same
# variables and adds a case to pg_ctl_layout.
#   pgdata: a bare data directory; dbpki's files in cert_dir, pg_ctl starts
#           it, and nothing on the node starts it at boot.
#   debian: a postgresql-common cluster (pg_lsclusters); config in
#           /etc/postgresql/V/C, dbpki's settings in its conf.d, dbpki's
#           rules in a marked block at the top of its hba file; started by
#           pg_ctlcluster, on a systemd host by postgresql@V-C.
# Sets PG_CONF_DIR (postgres -D for -C), CONF_FILE (dbpki's settings),
# HBA_FILE, IDENT_FILE, PG_LOG, PGV, PGC.
PG_CONF_DIR=$PGDATA
CONF_FILE="$CERT_DIR/postgresql.dbpki.conf"
HBA_FILE="$CERT_DIR/pg_hba.conf"
IDENT_FILE="$CERT_DIR/pg_ident.conf"
PGV= PGC=
BEGIN_MARK="# BEGIN dbpki: managed by dbpki, rewritten whole; the admin's own rules follow '# END dbpki'"
END_MARK='# END dbpki'
detect_layout() {
	[ "$ROLE" != client ] || return 0
	line=
	if command -v pg_lsclusters >/dev/null 2>&1; then
		line=$(pg_lsclusters -h 2>/dev/null | awk -v d="$PGDATA" -v vc="$PG_CLUSTER" \
			'(vc != "" ? $1 "/" $2 == vc : $6 == d) { print; exit }') || line=
	fi
	case $LAYOUT in
	auto)
		if [ -n "$line" ]; then LAYOUT=debian; else LAYOUT=pgdata; fi
		;;
	debian)
		[ -n "$line" ] || die "layout = debian, but pg_lsclusters lists no cluster ${PG_CLUSTER:-with data directory $PGDATA} (create it with pg_createcluster, or set layout = pgdata)"
		;;
	esac
	[ "$LAYOUT" = debian ] || return 0
	set -- $line
	PGV=$1 PGC=$2
	[ "$6" = "$PGDATA" ] ||
		die "cluster $PGV/$PGC keeps its data in $6, but the inventory's pgdata is $PGDATA; set pgdata = $6"
	PG_CONF_DIR=/etc/postgresql/$PGV/$PGC
	CONF_FILE=$PG_CONF_DIR/conf.d/dbpki.conf
	PG_LOG=${7:-/var/log/postgresql/postgresql-$PGV-$PGC.log}
	HBA_FILE=$(conf_value hba_file) || HBA_FILE=$PG_CONF_DIR/pg_hba.conf
	IDENT_FILE=$(conf_value ident_file) || IDENT_FILE=$PG_CONF_DIR/pg_ident.conf
}

# The value postgres would use for $1 if it started now (read from the
# files; works while the server runs).
conf_value() { postgres -D "$PG_CONF_DIR" -C "$1" 2>/dev/null; }

systemd_host() { [ -d /run/systemd/system ]; }

# Before anything changes on a node that will need start/stop/restart: on a
# debian systemd host the sudo rule must be there (sudo -n -l asks without
# running anything, and never prompts).
need_ctl() {
	[ "$LAYOUT" = debian ] && systemd_host || return 0
	for a in start stop restart; do
		sudo -n -l /usr/bin/systemctl "$a" "postgresql@$PGV-$PGC" >/dev/null 2>&1 ||
			die "$(id -un) may not run 'sudo -n systemctl $a postgresql@$PGV-$PGC' here (a systemd host: pg_ctlcluster hands it to systemd); add the sudo rule of docs/postgres-tls.md (\"The sudo rule on a systemd host\") and rerun; nothing was changed"
	done
}

# pg_ctl_layout start|stop|restart: the layout's own way.  On a systemd host
# postgresql@V-C must stay in step with the server, and systemd refuses the
# login user: `sudo -n systemctl` with the rule in docs/postgres-tls.md.
pg_ctl_layout() {
	case $LAYOUT in
	debian)
		if systemd_host; then
			out=$(sudo -n systemctl "$1" "postgresql@$PGV-$PGC" 2>&1) ||
				die "sudo -n systemctl $1 postgresql@$PGV-$PGC failed: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')(the login user needs the sudo rule of docs/postgres-tls.md; last lines of $PG_LOG: $(tail -n 3 "$PG_LOG" 2>/dev/null | tr '\n' ' '))"
		else
			case $1 in
			start) set -- start ;;
			*) set -- "$1" -m fast ;;
			esac
			out=$(pg_ctlcluster "$PGV" "$PGC" "$@" 2>&1) ||
				die "pg_ctlcluster $PGV $PGC $1 failed: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')(last lines of $PG_LOG: $(tail -n 3 "$PG_LOG" 2>/dev/null | tr '\n' ' '))"
		fi
		;;
	*)
		case $1 in
		start) pg_ctl -D "$PGDATA" -l "$PG_LOG" -w -t 120 start >/dev/null ;;
		stop) pg_ctl -D "$PGDATA" -m fast -w -t 120 stop >/dev/null ;;
		restart) pg_ctl -D "$PGDATA" -l "$PG_LOG" -m fast -w -t 120 restart >/dev/null ;;
		esac || die "PostgreSQL did not $1; last lines of $PG_LOG: $(tail -n 5 "$PG_LOG" 2>/dev/null)"
		;;
	esac
}

# start.conf (debian): auto, unless something else (Pacemaker, Patroni)
# starts the cluster and it says manual; dbpki then leaves it and says so,
# and writes auto only when the inventory says start_conf = auto.
check_start_conf() {
	[ "$LAYOUT" = debian ] || return 0
	sc=$PG_CONF_DIR/start.conf
	v=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$sc" 2>/dev/null | tr -d '[:space:]')
	case $v in
	auto) ;;
	*)
		if [ "$START_CONF" = auto ]; then
			cp -p "$sc" "$sc.dbpki-old-$(stamp)"
			echo auto | atomic_write "$sc" 644
			say "$sc said '$v': set to auto (start_conf = auto); the previous file is beside it"
		else
			say "warning: $sc says '${v:-nothing}': the cluster does not start at boot unless something else (Pacemaker, Patroni) starts it; left as it is (start_conf = auto in the inventory makes dbpki set it)"
		fi
		;;
	esac
}

# The cluster's PostgreSQL over the node's own unix socket (peer auth).
local_psql() {
	psql -X -q -At -h "$SOCKET_DIR" -p "$PORT" -U "$DB_USER" -d postgres "$@"
}

wait_ready() {
	n=0
	until pg_isready -q -h "$SOCKET_DIR" -p "$PORT"; do
		n=$((n + 1))
		[ "$n" -lt 240 ] || die "PostgreSQL did not accept connections within 120 s; see $PG_LOG"
		sleep 0.5
	done
}

# A name made from the clock, as dbpki makes them (util_stamp): UTC, then
# the nanoseconds; fixed width, so sorting names sorts by time, and two
# names made in one second differ.
stamp() { date -u +%Y%m%dT%H%M%SZ-%N; }

# Write stdin to $1 with mode $2: a reader sees the old file or the new one,
# and so does the next boot after a crash.  mktemp: a fresh, unpredictable
# name created exclusively in $1's directory (a planted symlink is never
# followed); sync FILE fsyncs the file, then the directory its new name
# is in; mv -T renames over $1 itself (a symlink there is replaced, not
# followed; a directory there is an error, not a destination).
atomic_write() {
	aw_dir=$(dirname -- "$1")
	# Text only (settings, rules, service entries).  The same bytes and
	# mode already there: nothing is written, not even a temporary file
	# (a converged node is left as it is, directory times included).
	aw_data=$(cat && echo .) || die "cannot read what to write to $1"
	aw_data=${aw_data%.}
	if [ -f "$1" ] && [ ! -L "$1" ] && [ "$(stat -c %a -- "$1")" = "$2" ] &&
		printf '%s' "$aw_data" | cmp -s -- - "$1"; then
		return 0
	fi
	aw_tmp=$(mktemp "$aw_dir/.dbpki-tmp.XXXXXXXXXX") || die "cannot create a temporary file in $aw_dir"
	if ! { printf '%s' "$aw_data" >"$aw_tmp" && chmod "$2" "$aw_tmp" && sync -- "$aw_tmp"; }; then
		rm -f -- "$aw_tmp"
		die "cannot write $aw_tmp (for $1)"
	fi
	mv -f -T -- "$aw_tmp" "$1" || { rm -f -- "$aw_tmp"; die "cannot rename $aw_tmp to $1"; }
	sync -- "$aw_dir" || die "cannot fsync $aw_dir"
}

# The libpq connection string this node uses to reach the primary.
primary_conninfo() {
	printf 'host=%s hostaddr=%s port=%s user=%s sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s gssencmode=disable application_name=%s' \
		"$PRIMARY_HOST" "$PRIMARY_ADDRESS" "$PRIMARY_PORT" "$DB_USER" \
		"$CERT_DIR/current/dbca.crt" "$CERT_DIR/current/client.crt" \
		"$CERT_DIR/current/client.key" "$NODE"
}

# The client node's service entry (connect, and after every switch): its
# paths name the release `current` points to, not current/ itself.  libpq
# opens sslcert and then sslkey; through current/, a switch between the two
# opens would pair an old certificate with a new key and that connection
# would fail.  A connection reads the service file once, so its paths all
# name one release, which dbpki never changes (certs keeps the newest five).
write_service() {
	rel="$CERT_DIR/$(readlink "$CERT_DIR/current")"
	printf '%s\n' "$MARK: service $CLUSTER for node $NODE" \
		"[$CLUSTER]" \
		"host=$PRIMARY_HOST" \
		"hostaddr=$PRIMARY_ADDRESS" \
		"port=$PRIMARY_PORT" \
		"dbname=postgres" \
		"user=$DB_USER" \
		"sslmode=verify-full" \
		"sslrootcert=$rel/dbca.crt" \
		"sslcert=$rel/client.crt" \
		"sslkey=$rel/client.key" \
		"gssencmode=disable" | atomic_write "$CERT_DIR/pg_service.conf" 644
}

# Point cert_dir/current at $1 (releases/<id>) by renaming a new symlink
# over it, then the service entry, if the node has one, at the same release.
switch_current() {
	ln -sfn "$1" "$CERT_DIR/.current.new"
	mv -T "$CERT_DIR/.current.new" "$CERT_DIR/current"
	sync -- "$CERT_DIR" || die "cannot fsync $CERT_DIR"
	[ ! -f "$CERT_DIR/pg_service.conf" ] || write_service
}

# The last value the owner of postgresql.conf gave setting $1 (a number),
# if any: dbpki raises limits, it never lowers one that a person set.
user_setting() {
	[ -f "$PG_CONF_DIR/postgresql.conf" ] || return 0
	grep -vF "$MARK" "$PG_CONF_DIR/postgresql.conf" |
		sed -n "s/^[[:space:]]*$1[[:space:]]*=\{0,1\}[[:space:]]*'\{0,1\}\([0-9][0-9]*\).*/\1/p" | tail -n 1
}

# at_least NAME MIN: MIN, or the owner's own value of NAME when higher.
at_least() {
	u=$(user_setting "$1")
	if [ -n "$u" ] && [ "$u" -gt "$2" ]; then echo "$u"; else echo "$2"; fi
}

# join clones every replica at once, and each pg_basebackup -X stream holds
# two WAL senders and a temporary replication slot on the primary until its
# replica starts and streams on one sender.  PostgreSQL's default of 10 of
# each is too few from 6 replicas on (docs/architecture.md).  A standby
# needs max_wal_senders at least the primary's: every node gets the same.
replication_limits() {
	n=$(printf '%s\n' "$REPLICAS" | awk -F, 'NF { print NF; next } { print 0 }')
	senders=$((2 * n + 4))
	[ "$senders" -ge 10 ] || senders=10
	slots=$((n + 4))
	[ "$slots" -ge 10 ] || slots=10
	echo "max_wal_senders = $(at_least max_wal_senders "$senders")"
	echo "max_replication_slots = $(at_least max_replication_slots "$slots")"
}

# dbpki's rules, first in the hba file: TLS with a dbca client certificate
# from the allowed networks.  Locally the login user only, by peer.
hba_rules() {
	if [ "$LAYOUT" = debian ]; then
		# the cluster's other local users keep the admin's own rules
		echo "local all $DB_USER peer map=dbpki"
	else
		echo "local all all peer map=dbpki"
	fi
	for net in $(printf '%s' "$ALLOWED_NETWORKS" | tr ',' ' '); do
		echo "hostssl all $DB_USER $net cert clientcert=verify-full"
		echo "hostssl replication $DB_USER $net cert clientcert=verify-full"
		# application roles (dbpki issue-client): their certificate's
		# CN is the role; replication stays the dbclient's alone
		echo "hostssl all all $net cert clientcert=verify-full"
	done
}

# write_block FILE: stdin (dbpki's lines) goes first in FILE between
# BEGIN_MARK and END_MARK; every other line of FILE stays, in its order,
# below.  The first change keeps the admin's file beside it.
write_block() {
	wb_body=$(cat)
	[ -f "$1" ] || die "$1 is missing"
	wb_rest=$(awk -v b="$BEGIN_MARK" -v e="$END_MARK" \
		'$0 == b { skip = 1; next } skip && $0 == e { skip = 0; next } !skip' "$1")
	wb_new=$(printf '%s\n%s\n%s\n' "$BEGIN_MARK" "$wb_body" "$END_MARK"; printf '%s\n' "$wb_rest")
	[ "$wb_new" != "$(cat "$1")" ] || return 0
	grep -qxF "$BEGIN_MARK" "$1" || cp -p "$1" "$1.dbpki-old-$(stamp)"
	printf '%s\n' "$wb_new" | atomic_write "$1" "$(stat -c %a "$1")"
}

# debian: the admin's rules below dbpki's block that could admit what
# dbpki's would refuse (TCP without a dbca certificate from outside the
# loopback), one warning each with file:line; they are kept, not changed.
admin_rules_report() {
	awk -v e="$END_MARK" -v f="$1" '
		$0 == e { below = 1; next }
		!below || /^[[:space:]]*(#|$)/ { next }
		$1 ~ /^host/ {
			if ($4 ~ /^(127\.0\.0\.1\/32|::1\/128|localhost|samehost)$/) next
			# host DB USER ADDRESS [MASK] METHOD [OPTIONS]
			m = ($5 ~ /^[0-9.]+$/ || $5 ~ /:/) ? $6 : $5
			if (m == "reject" || m == "cert") next
			printf "%s:%d: %s\n", f, NR, $0
		}' "$1" | while IFS= read -r r; do
		say "warning: an admin rule below dbpki's block could admit connections dbpki's rules refuse (kept as it is): $r"
	done
}

# dbpki's settings.  pgdata: a file in cert_dir included from
# postgresql.conf (one marked line), pg_hba and pg_ident of its own.
# debian: conf.d/dbpki.conf, and dbpki's block at the top of the cluster's
# own hba and ident files.  The user's own lines are never edited.
# Certificates are named through cert_dir/current, which stays in place
# across reboots (a release directory may be removed by certs' cleanup).
write_pg_conf() {
	me=$(id -un)
	listen=$ADDRESS
	case $LISTEN_LOCALHOST in
	yes) listen="localhost,$ADDRESS" ;;
	auto) [ "$LAYOUT" != debian ] || listen="localhost,$ADDRESS" ;;
	esac
	if [ "$LAYOUT" = pgdata ]; then
		# cert_dir may already hold files of the same names that a
		# person wrote (a hand-built cluster): keep a copy of any not
		# marked as ours.
		for f in postgresql.dbpki.conf pg_hba.conf pg_ident.conf; do
			if [ -f "$CERT_DIR/$f" ] && ! head -n 1 "$CERT_DIR/$f" | grep -qF "$MARK"; then
				cp -p "$CERT_DIR/$f" "$CERT_DIR/$f.dbpki-old-$(stamp)"
			fi
		done
	else
		mkdir -p "$PG_CONF_DIR/conf.d"
	fi
	{
		echo "$MARK: settings for node $NODE of cluster $CLUSTER; rewritten by dbpki"
		echo "listen_addresses = '$listen'"
		echo "port = $PORT"
		# debian: the cluster's own socket directories (pg_ctlcluster
		# and local clients rely on them); socket_dir names one
		[ "$LAYOUT" = debian ] || echo "unix_socket_directories = '$SOCKET_DIR'"
		echo "ssl = on"
		echo "ssl_min_protocol_version = 'TLSv1.2'"
		# Replicas that clone at the same time, or catch up after a
		# rotate, need the WAL that a checkpoint would otherwise recycle.
		echo "wal_keep_size = '256MB'"
		replication_limits
		echo "ssl_cert_file = '$CERT_DIR/current/server.crt'"
		echo "ssl_key_file = '$CERT_DIR/current/server.key'"
		echo "ssl_ca_file = '$CERT_DIR/current/dbca.crt'"
		# dbca's CRL, once the release carries one (docs/revocation.md);
		# otherwise none, whatever postgresql.conf said.
		if [ -s "$CERT_DIR/current/crl.pem" ]; then
			echo "ssl_crl_file = '$CERT_DIR/current/crl.pem'"
		else
			echo "ssl_crl_file = ''"
		fi
		if [ "$LAYOUT" = pgdata ]; then
			echo "hba_file = '$CERT_DIR/pg_hba.conf'"
			echo "ident_file = '$CERT_DIR/pg_ident.conf'"
		fi
		if [ "$ROLE" = replica ]; then
			echo "primary_conninfo = '$(primary_conninfo)'"
		fi
	} | atomic_write "$CONF_FILE" 600
	if [ "$LAYOUT" = debian ]; then
		hba_rules | write_block "$HBA_FILE"
		admin_rules_report "$HBA_FILE"
		printf '%s\n' "dbpki $me $DB_USER" "dbpki $me $me" | write_block "$IDENT_FILE"
		return 0
	fi
	{
		echo "$MARK: only TLS with a client certificate from dbca gets in"
		hba_rules
	} | atomic_write "$CERT_DIR/pg_hba.conf" 600
	{
		echo "$MARK"
		echo "dbpki $me $DB_USER"
		echo "dbpki $me $me"
	} | atomic_write "$CERT_DIR/pg_ident.conf" 600
	conf="$PGDATA/postgresql.conf"
	[ -f "$conf" ] || die "$conf is missing"
	new=$(
		grep -v -F "$MARK" "$conf" || true
		echo "include '$CERT_DIR/postgresql.dbpki.conf'   $MARK"
	)
	# The file is the user's: the first time dbpki changes it (say, on a
	# cluster built by hand), the previous version stays beside it.
	if [ "$new" != "$(cat "$conf")" ]; then
		cp -p "$conf" "$conf.dbpki-old-$(stamp)"
		printf '%s\n' "$new" | atomic_write "$conf" "$(stat -c %a "$conf")"
	fi
}

# The names dbpki's settings file sets.
conf_keys() { sed -n 's/^\([a-z_]*\) = .*/\1/p' "$CONF_FILE"; }
# Those PostgreSQL must take from it (DBPKI_KEYS; the replication limits
# may come from the owner's ALTER SYSTEM, see replication_limits).
sql_list() { conf_keys | grep -Ex "$DBPKI_KEYS" | sed "s/.*/'&'/" | paste -sd, -; }

# debian, while the server runs and before any restart: a line read after
# dbpki's conf.d file (postgresql.conf below include_dir, a later conf.d
# file) that sets one of its settings is refused with its file:line;
# postgresql.auto.conf's are removed by neutralise_auto_conf.
check_overrides() {
	[ "$LAYOUT" = debian ] && pg_running || return 0
	neutralise_auto_conf
	# pg_file_settings parses the files as they are now: no reload needed
	read=$(local_psql -w -c "SELECT count(*) FROM pg_file_settings WHERE sourcefile = '$CONF_FILE'" </dev/null 2>/dev/null) || return 0
	[ "$read" != 0 ] ||
		die "PostgreSQL does not read $CONF_FILE: $PG_CONF_DIR/postgresql.conf has no include_dir = 'conf.d' (Debian's default has it); add it and rerun (PostgreSQL was NOT restarted)"
	bad=$(local_psql -w -c "SELECT f.sourcefile || ':' || f.sourceline || ' sets ' || f.name
		FROM pg_file_settings f WHERE f.name IN ($(sql_list)) AND f.seqno >
		(SELECT max(g.seqno) FROM pg_file_settings g WHERE g.name = f.name AND g.sourcefile = '$CONF_FILE')
		AND f.sourcefile <> '$PGDATA/postgresql.auto.conf'" </dev/null 2>/dev/null) || return 0
	[ -z "$bad" ] ||
		die "a line read after dbpki's $CONF_FILE overrides it: $(printf '%s' "$bad" | tr '\n' ';'); remove that line and rerun (PostgreSQL was NOT restarted)"
}

# debian: apply what write_pg_conf wrote by a reload, and say whether that
# was enough (0) or a setting PostgreSQL reads only at start changed (1,
# $pending names them).  A second bootstrap, and every certificate-only
# change, ends here without a restart.
reload_enough() {
	pending=
	[ "$LAYOUT" = debian ] && pg_running || return 1
	t0=$(local_psql -w -c 'SELECT pg_conf_load_time()' </dev/null 2>/dev/null) || return 1
	[ "$(local_psql -w -c 'SELECT pg_reload_conf()' </dev/null 2>/dev/null)" = t ] || return 1
	n=0
	while [ "$(local_psql -w -c 'SELECT pg_conf_load_time()' </dev/null 2>/dev/null)" = "$t0" ]; do
		n=$((n + 1))
		[ "$n" -lt 100 ] || return 1
		sleep 0.2
	done
	pending=$(local_psql -w -c "SELECT string_agg(name, ',') FROM pg_settings WHERE pending_restart" </dev/null) || return 1
	[ -z "$pending" ]
}

# debian, once the server runs: every dbpki setting in effect comes from
# dbpki's file (pg_settings.sourcefile), or the run stops naming file:line.
verify_sources() {
	[ "$LAYOUT" = debian ] || return 0
	bad=$(local_psql -c "SELECT name || ' comes from ' || coalesce(sourcefile || ':' || sourceline, source)
		FROM pg_settings WHERE name IN ($(sql_list)) AND coalesce(sourcefile, '') <> '$CONF_FILE'") ||
		die "cannot read pg_settings over $SOCKET_DIR"
	[ -z "$bad" ] ||
		die "dbpki's settings in $CONF_FILE are not in effect: $(printf '%s' "$bad" | tr '\n' ';'); remove the overriding line and rerun"
}

# ALTER SYSTEM writes postgresql.auto.conf, which PostgreSQL reads after
# postgresql.conf and so after dbpki's include: a hand-built cluster's
# ssl_cert_file or primary_conninfo there would win over dbpki's.  Those
# lines leave that file; the previous version stays beside it.
DBPKI_KEYS='listen_addresses|port|unix_socket_directories|ssl|ssl_[a-z_]+|hba_file|ident_file|primary_conninfo'
neutralise_auto_conf() {
	auto="$PGDATA/postgresql.auto.conf"
	[ -f "$auto" ] && grep -Eq "^[[:space:]]*($DBPKI_KEYS)[[:space:]]*=" "$auto" || return 0
	bak="$auto.dbpki-old-$(stamp)"
	cp -p "$auto" "$bak"
	{ grep -Ev "^[[:space:]]*($DBPKI_KEYS)[[:space:]]*=" "$auto" || true; } | atomic_write "$auto" 600
	say "$auto set $(grep -Eo "^[[:space:]]*($DBPKI_KEYS)[[:space:]]*=" "$bak" | tr -d ' =' | tr '\n' ' ')(ALTER SYSTEM), which would override dbpki's settings: removed there; the previous file is $bak"
}

pg_start() {
	pg_ctl_layout start
	wait_ready
}

pg_stop() {
	! pg_running || pg_ctl_layout stop
}

# Move a data directory aside, never delete it.  -T: onto that new name
# only, never into a directory of the same name.
move_aside() {
	aside="$PGDATA.dbpki-old-$(stamp)"
	[ ! -e "$aside" ] || die "$aside already exists; not moving $PGDATA onto it"
	mv -T -- "$PGDATA" "$aside"
	sync -- "$(dirname -- "$PGDATA")" || die "cannot fsync the directory of $PGDATA"
	say "moved the old data directory aside to $aside (not deleted)"
}

dir_empty() { [ ! -d "$1" ] || [ -z "$(ls -A "$1")" ]; }

# Apply dbpki's settings to the primary and (re)start it; the restart is the
# primary's only downtime, and it is measured.
configure_primary() {
	need_ctl
	write_pg_conf
	check_start_conf
	check_overrides
	if reload_enough; then
		say "settings in effect after a reload: not restarted"
	elif pg_running; then
		[ -z "$pending" ] || say "$pending changed: a restart is needed"
		# A checkpoint now, while the server still serves, leaves little
		# for the shutdown checkpoint: a shorter restart.  Best effort
		# (the user's pg_hba.conf may not let us in); -w: a password
		# prompt would read this script's stdin.
		local_psql -w -c CHECKPOINT </dev/null >/dev/null 2>&1 || true
		t0=$(date +%s%N)
		pg_ctl_layout restart
		wait_ready
		t1=$(date +%s%N)
		# The engine reports this figure in its summary and JSON.
		echo "DBPKI-DOWNTIME-MS $(((t1 - t0) / 1000000))"
		say "restarted with the new settings (unavailable for $(((t1 - t0) / 1000000)) ms)"
	else
		pg_start
		say "started"
	fi
	[ "$(local_psql -c 'SELECT pg_is_in_recovery()')" = f ] ||
		die "PostgreSQL is in recovery, not a primary"
	verify_sources
}

detect_layout
