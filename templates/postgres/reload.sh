# reload: PostgreSQL re-reads its certificate files without a restart.
pg_running || die "PostgreSQL is not running in $PGDATA"
[ "$(local_psql -c 'SELECT pg_reload_conf()')" = t ] || die "pg_reload_conf() failed"
say "reloaded"
echo "$SENTINEL"
