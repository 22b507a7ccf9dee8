# initialize (primary): initdb only into an empty data directory, dbpki's
# TLS settings and pg_hba, then (re)start and wait until it accepts.
if [ -s "$PGDATA/PG_VERSION" ]; then
	[ ! -f "$PGDATA/standby.signal" ] ||
		die "$PGDATA is a standby, but the inventory says $NODE is the primary; refusing"
	say "data directory $PGDATA exists: keeping it (no initdb)"
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
