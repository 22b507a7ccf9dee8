# initialize (primary): initdb only into an empty data directory (pgdata
# layout; a debian cluster is the distribution's and is adopted as it is),
# dbpki's TLS settings and pg_hba, then (re)start and wait until it accepts.
if [ -s "$PGDATA/PG_VERSION" ]; then
	[ ! -f "$PGDATA/standby.signal" ] ||
		die "$PGDATA is a standby, but the inventory says $NODE is the primary; refusing"
	say "data directory $PGDATA exists: keeping it (no initdb)"
	if [ "$LAYOUT" = debian ] && pg_running; then
		# Adopted either way (data kept, one restart); the words say which.
		n=$(local_psql -w -c "SELECT (SELECT count(*) FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1'))
			+ (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
			   WHERE c.relkind IN ('r', 'p') AND s.nspname NOT IN ('pg_catalog', 'information_schema') AND s.nspname NOT LIKE 'pg_toast%')
			+ (SELECT count(*) FROM pg_roles WHERE rolname NOT LIKE 'pg\_%' AND oid <> 10)" </dev/null 2>/dev/null) || n=unknown
		case $n in
		0) say "cluster $PGV/$PGC is fresh (no user database, table or role): adopted" ;;
		unknown) say "cluster $PGV/$PGC: cannot tell whether it holds user data (no local access yet): adopted, data kept" ;;
		*) say "cluster $PGV/$PGC holds user data ($n user databases, tables and roles): adopted, data kept, restarted once" ;;
		esac
	fi
elif [ "$LAYOUT" = debian ]; then
	die "cluster $PGV/$PGC has no data in $PGDATA (pg_lsclusters still lists it); if a dbpki run moved it aside, see docs/postgres-tls.md, \"Restore after a failed join\"; otherwise recreate it with pg_createcluster"
else
	dir_empty "$PGDATA" ||
		die "$PGDATA is not empty but holds no PostgreSQL cluster; refusing to touch it"
	mkdir -p "$PGDATA"
	chmod 700 "$PGDATA"
	initdb -D "$PGDATA" -U "$DB_USER" -E UTF8 --locale=C.UTF-8 --data-checksums \
		--auth-local=peer --auth-host=reject >"$CERT_DIR/initdb.log" 2>&1 ||
		die "initdb failed; see $CERT_DIR/initdb.log"
	say "initdb done in $PGDATA"
fi
configure_primary
echo "$SENTINEL"
