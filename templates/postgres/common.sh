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
	aw_tmp=$(mktemp "$aw_dir/.dbpki-tmp.XXXXXXXXXX") || die "cannot create a temporary file in $aw_dir"
	if ! { cat >"$aw_tmp" && chmod "$2" "$aw_tmp" && sync -- "$aw_tmp"; }; then
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
	[ -f "$PGDATA/postgresql.conf" ] || return 0
	grep -vF "$MARK" "$PGDATA/postgresql.conf" |
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

# dbpki's own files: settings (included from postgresql.conf), pg_hba and
# pg_ident.  The user's own lines are never edited; one include line that
# carries $MARK is added at the end of postgresql.conf.
write_pg_conf() {
	me=$(id -un)
	# cert_dir may already hold files of the same names that a person
	# wrote (a hand-built cluster): keep a copy of any not marked as ours.
	for f in postgresql.dbpki.conf pg_hba.conf pg_ident.conf; do
		if [ -f "$CERT_DIR/$f" ] && ! head -n 1 "$CERT_DIR/$f" | grep -qF "$MARK"; then
			cp -p "$CERT_DIR/$f" "$CERT_DIR/$f.dbpki-old-$(stamp)"
		fi
	done
	{
		echo "$MARK: settings for node $NODE of cluster $CLUSTER; rewritten by dbpki"
		echo "listen_addresses = '$ADDRESS'"
		echo "port = $PORT"
		echo "unix_socket_directories = '$SOCKET_DIR'"
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
		echo "hba_file = '$CERT_DIR/pg_hba.conf'"
		echo "ident_file = '$CERT_DIR/pg_ident.conf'"
		if [ "$ROLE" = replica ]; then
			echo "primary_conninfo = '$(primary_conninfo)'"
		fi
	} | atomic_write "$CERT_DIR/postgresql.dbpki.conf" 600
	{
		echo "$MARK: only TLS with a client certificate from dbca gets in"
		echo "local all all peer map=dbpki"
		for net in $(printf '%s' "$ALLOWED_NETWORKS" | tr ',' ' '); do
			echo "hostssl all $DB_USER $net cert clientcert=verify-full"
			echo "hostssl replication $DB_USER $net cert clientcert=verify-full"
			# application roles (dbpki issue-client): their certificate's
			# CN is the role; replication stays the dbclient's alone
			echo "hostssl all all $net cert clientcert=verify-full"
		done
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
	pg_ctl -D "$PGDATA" -l "$PG_LOG" -w -t 120 start >/dev/null ||
		die "PostgreSQL did not start; last lines of $PG_LOG: $(tail -n 5 "$PG_LOG" 2>/dev/null)"
	wait_ready
}

pg_stop() {
	if pg_running; then
		pg_ctl -D "$PGDATA" -m fast -w -t 120 stop >/dev/null || die "PostgreSQL did not stop"
	fi
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
	write_pg_conf
	if pg_running; then
		# A checkpoint now, while the server still serves, leaves little
		# for the shutdown checkpoint: a shorter restart.  Best effort
		# (the user's pg_hba.conf may not let us in); -w: a password
		# prompt would read this script's stdin.
		local_psql -w -c CHECKPOINT </dev/null >/dev/null 2>&1 || true
		t0=$(date +%s%N)
		pg_ctl -D "$PGDATA" -l "$PG_LOG" -m fast -w -t 120 restart >/dev/null ||
			die "PostgreSQL did not restart; last lines of $PG_LOG: $(tail -n 5 "$PG_LOG")"
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
}
