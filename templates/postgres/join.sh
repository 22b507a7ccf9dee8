# join (replica): clone from the primary over verify-full with the dbclient
# certificate, or keep a data directory that already belongs to it.
need_ctl
CONN=$(primary_conninfo)
# debian: a running standby of this primary whose new settings a reload
# applies keeps running (a second bootstrap changes nothing); anything
# else goes the long way below.
if [ "$LAYOUT" = debian ] && pg_running && [ -f "$PGDATA/standby.signal" ]; then
	mine=$(pg_controldata "$PGDATA" | sed -n 's/^Database system identifier: *//p')
	theirs=$(psql -X -At -d "$CONN replication=database" -c IDENTIFY_SYSTEM 2>/dev/null | cut -d'|' -f1) || theirs=
	if [ -n "$mine" ] && [ "$mine" = "$theirs" ]; then
		neutralise_auto_conf
		write_pg_conf
		check_start_conf
		if reload_enough; then
			n=0
			while [ "$(local_psql -c 'SELECT status FROM pg_stat_wal_receiver' 2>/dev/null || true)" != streaming ] && [ "$n" -lt 60 ]; do
				n=$((n + 1))
				sleep 0.5
			done
			if [ "$n" -lt 60 ]; then
				verify_sources
				say "streaming from $PRIMARY_HOST (kept running: its settings took effect by a reload)"
				echo "$SENTINEL"
				exit 0
			fi
		fi
	fi
fi
pg_stop
keep=0
if [ -s "$PGDATA/PG_VERSION" ]; then
	mine=$(pg_controldata "$PGDATA" | sed -n 's/^Database system identifier: *//p')
	theirs=$(psql -X -At -d "$CONN replication=database" -c IDENTIFY_SYSTEM | cut -d'|' -f1) ||
		die "cannot reach the primary $PRIMARY_HOST ($PRIMARY_ADDRESS:$PRIMARY_PORT) over verify-full"
	if [ -n "$mine" ] && [ "$mine" = "$theirs" ] && [ -f "$PGDATA/standby.signal" ]; then
		keep=1
		say "keeping $PGDATA: it is a standby of this primary (system $mine); it will catch up"
	else
		move_aside
	fi
elif ! dir_empty "$PGDATA"; then
	move_aside
fi
# After a failed join the old data directory is where move_aside put it;
# one command puts it back (docs/postgres-tls.md, "Restore after a failed
# join").  The debian cluster stays listed by pg_lsclusters throughout:
# its configuration in /etc is never moved.
restore_hint() {
	[ -n "${aside:-}" ] || return 0
	if [ "$LAYOUT" = debian ]; then
		printf '; the old data directory is %s, and cluster %s/%s is still listed: to put it back, run on %s as %s (root on a systemd host):  pg_ctlcluster %s %s stop; { [ ! -e %s ] || mv -T %s %s.dbpki-failed-$(date -u +%%Y%%m%%dT%%H%%M%%SZ); } && mv -T %s %s && pg_ctlcluster %s %s start' \
			"$aside" "$PGV" "$PGC" "$NODE" "$(id -un)" "$PGV" "$PGC" "$PGDATA" "$PGDATA" "$PGDATA" "$aside" "$PGDATA" "$PGV" "$PGC"
	else
		printf '; the old data directory is %s (to restore it: mv -T %s %s once %s is out of the way)' \
			"$aside" "$aside" "$PGDATA" "$PGDATA"
	fi
}
clone() {
	pg_basebackup -D "$PGDATA" -X stream -c fast -d "$CONN" >"$CERT_DIR/basebackup.log" 2>&1 ||
		die "pg_basebackup from $PRIMARY_HOST failed: $(tail -n 3 "$CERT_DIR/basebackup.log")$(restore_hint)"
	chmod 700 "$PGDATA"
	say "cloned from $PRIMARY_HOST"
}

# Start as a standby of the primary and wait until it streams.  Returns 1
# (with $why set) when the primary no longer has what this data directory
# needs to catch up: WAL recycled while the certificates were broken, or a
# timeline this standby cannot follow.
start_standby() {
	# postgresql.auto.conf (ALTER SYSTEM; pg_basebackup copies the
	# primary's) would override dbpki's settings: see common.sh.
	neutralise_auto_conf
	touch "$PGDATA/standby.signal"
	write_pg_conf
	check_start_conf
	log_from=$(($(wc -c 2>/dev/null <"$PG_LOG" || echo 0) + 1))
	pg_start
	[ "$(local_psql -c 'SELECT pg_is_in_recovery()')" = t ] || die "not in recovery after start"
	why=
	n=0
	while [ "$(local_psql -c 'SELECT status FROM pg_stat_wal_receiver' 2>/dev/null || true)" != streaming ]; do
		why=$(tail -c +"$log_from" "$PG_LOG" 2>/dev/null |
			grep -Eo 'requested WAL segment [0-9A-F]+ has already been removed|requested timeline [0-9]+ is not a child of this server.s history|new timeline [0-9]+ forked off current database system timeline [0-9]+ before current recovery point|requested starting point [0-9A-F/]+ is ahead of the WAL flush position' |
			tail -n 1 || true)
		[ -z "$why" ] || return 1
		n=$((n + 1))
		[ "$n" -lt 120 ] ||
			die "not streaming from $PRIMARY_HOST after 60 s; see $PG_LOG. If this data directory cannot catch up, move $PGDATA aside and run again: join then clones$(restore_hint)"
		sleep 0.5
	done
	return 0
}

if [ "$keep" = 0 ]; then
	clone
fi
if ! start_standby; then
	[ "$keep" = 1 ] || die "a fresh clone cannot stream: $why; see $PG_LOG$(restore_hint)"
	say "cannot catch up ($why): cloning again"
	pg_stop
	move_aside
	clone
	start_standby || die "a fresh clone cannot stream: $why; see $PG_LOG$(restore_hint)"
fi
verify_sources
say "streaming from $PRIMARY_HOST"
echo "$SENTINEL"
