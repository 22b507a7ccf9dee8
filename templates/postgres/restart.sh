# restart (primary, rotate): new certificates and dbpki's settings on an
# existing primary; its data is kept, initdb never runs here.
[ -s "$PGDATA/PG_VERSION" ] ||
	die "$PGDATA holds no PostgreSQL cluster; rotate keeps data and never runs initdb (use dbpki bootstrap for a new cluster)"
[ ! -f "$PGDATA/standby.signal" ] ||
	die "$PGDATA is a standby, but the inventory says $NODE is the primary; refusing"
configure_primary
echo "$SENTINEL"
