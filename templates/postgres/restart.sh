# restart (primary, rotate): new certificates and dbpki's settings on an
# existing primary; its data is kept, initdb never runs here.  Everything
# that could keep the server down or leave dbpki's settings without effect
# is checked while the old server still serves; the one restart comes last.
[ -s "$PGDATA/PG_VERSION" ] ||
	die "$PGDATA holds no PostgreSQL cluster; rotate keeps data and never runs initdb (use dbpki bootstrap for a new cluster)"
[ ! -f "$PGDATA/standby.signal" ] ||
	die "$PGDATA is a standby, but the inventory says $NODE is the primary; refusing"

# postgresql.auto.conf (ALTER SYSTEM) must not override dbpki's settings.
neutralise_auto_conf
write_pg_conf

# What the restarted server will use, read from the files by postgres
# itself (works while the server runs).  A file that does not parse, or a
# line that overrides dbpki's, stops here, before any downtime.
# (debian: the cluster's own hba and ident files; configure_primary's
# check_overrides names any overriding line with its file:line.)
set -- "ssl=on" "ssl_cert_file=$CERT_DIR/current/server.crt" \
	"ssl_key_file=$CERT_DIR/current/server.key" \
	"ssl_ca_file=$CERT_DIR/current/dbca.crt"
[ "$LAYOUT" = debian ] ||
	set -- "$@" "hba_file=$CERT_DIR/pg_hba.conf" "ident_file=$CERT_DIR/pg_ident.conf"
for kv in "$@"; do
	k=${kv%%=*} want=${kv#*=}
	got=$(postgres -D "$PG_CONF_DIR" -C "$k" 2>&1) ||
		die "the configuration in $PG_CONF_DIR does not load (postgres -C $k: $(printf '%s' "$got" | tail -n 2 | tr '\n' ' ')); PostgreSQL was NOT restarted and still serves with its old settings"
	[ "$got" = "$want" ] ||
		die "$k would be '$got', not dbpki's '$want': a line read after dbpki's $CONF_FILE sets it; remove that line and rerun (PostgreSQL was NOT restarted)"
done
for f in server.crt server.key dbca.crt; do
	[ -s "$CERT_DIR/current/$f" ] || die "$CERT_DIR/current/$f is missing; PostgreSQL was NOT restarted"
done

configure_primary
echo "$SENTINEL"
