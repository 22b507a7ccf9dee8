# join (replica): clone from the primary over verify-full with the dbclient
# certificate, or keep a data directory that already belongs to it.
pg_stop
CONN=$(primary_conninfo)
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
if [ "$keep" = 0 ]; then
	pg_basebackup -D "$PGDATA" -X stream -c fast -d "$CONN" >"$CERT_DIR/basebackup.log" 2>&1 ||
		die "pg_basebackup from $PRIMARY_HOST failed: $(tail -n 3 "$CERT_DIR/basebackup.log")"
	chmod 700 "$PGDATA"
	say "cloned from $PRIMARY_HOST"
fi
# A connection string left by an earlier tool in postgresql.auto.conf would
# override dbpki's; keep a copy and drop it.
auto="$PGDATA/postgresql.auto.conf"
if [ -f "$auto" ] && grep -q '^primary_conninfo' "$auto"; then
	cp -p "$auto" "$auto.dbpki-old-$(date -u +%Y%m%dT%H%M%SZ)"
	grep -v '^primary_conninfo' "$auto" | atomic_write "$auto" 600
fi
touch "$PGDATA/standby.signal"
write_pg_conf
pg_start
[ "$(local_psql -c 'SELECT pg_is_in_recovery()')" = t ] || die "not in recovery after start"
say "streaming from $PRIMARY_HOST"
echo "$SENTINEL"
