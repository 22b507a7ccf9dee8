# crl: PostgreSQL checks client certificates against the CRL of the release
# `certs` just switched to (cert_dir/current/crl.pem): dbpki's settings are
# rewritten (ssl_crl_file) and reloaded, no restart.  Established
# connections, replication included, are not touched.  docs/revocation.md.
pg_running || die "PostgreSQL is not running in $PGDATA"
crl="$CERT_DIR/current/crl.pem"
[ -s "$crl" ] || die "$crl is missing or empty: the release carries no CRL"
write_pg_conf
[ "$(local_psql -c 'SELECT pg_reload_conf()')" = t ] || die "pg_reload_conf() failed"
# pg_reload_conf() only signals the postmaster: wait until a new session
# sees the setting.  (A CRL PostgreSQL cannot read would leave the old TLS
# settings in force; dbpki checked this one before sending it.)
n=0
until [ "$(local_psql -c 'SHOW ssl_crl_file')" = "$crl" ]; do
	n=$((n + 1))
	[ "$n" -lt 100 ] || die "ssl_crl_file is not $crl 20 s after the reload; see $PG_LOG"
	sleep 0.2
done
say "ssl_crl_file = $crl; reloaded"
echo "$SENTINEL"
