# crl-undo: put the node back on the release it had before this run and
# rewrite dbpki's settings for that release, so ssl_crl_file never names a
# file the release lacks; then reload.  Rollback runs it before
# certs-undo, which then finds nothing left to undo.  Only a node that
# switched to this run's release goes back.
cur=$(readlink "$CERT_DIR/current" 2>/dev/null || true)
if [ "$cur" = "releases/$RELEASE_ID" ] && [ -L "$CERT_DIR/previous" ]; then
	cur=$(readlink "$CERT_DIR/previous")
	switch_current "$cur"
	what="current -> $cur (rolled back)"
else
	what="current is $cur (not this run's release)"
fi
write_pg_conf
if pg_running; then
	[ "$(local_psql -c 'SELECT pg_reload_conf()')" = t ] || die "pg_reload_conf() failed"
	what="$what; settings rewritten, reloaded"
else
	what="$what; settings rewritten"
fi
say "$what"
echo "$SENTINEL"
