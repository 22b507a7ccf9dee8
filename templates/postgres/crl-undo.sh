# crl-undo: put the node back on the release it had before this run and
# rewrite dbpki's settings for that release, so ssl_crl_file never names a
# file the release lacks; then reload.  Rollback runs it before
# certs-undo, which then finds nothing left to undo.  Only a node that
# switched to this run's release goes back.
if [ "$(readlink "$CERT_DIR/current" 2>/dev/null || true)" = "releases/$RELEASE_ID" ] &&
	[ -L "$CERT_DIR/previous" ]; then
	prev=$(readlink "$CERT_DIR/previous")
	ln -sfn "$prev" "$CERT_DIR/.current.new"
	mv -T "$CERT_DIR/.current.new" "$CERT_DIR/current"
	say "current -> $prev (rolled back)"
fi
write_pg_conf
if pg_running; then
	[ "$(local_psql -c 'SELECT pg_reload_conf()')" = t ] || die "pg_reload_conf() failed"
fi
echo "$SENTINEL"
