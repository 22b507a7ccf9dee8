# certs-undo: switch cert_dir/current back to the previous release and, on a
# database node, reload so PostgreSQL serves the previous certificate again.
# Only a node that switched to this run's release goes back.
if [ "$(readlink "$CERT_DIR/current" 2>/dev/null || true)" != "releases/$RELEASE_ID" ]; then
	say "current does not point to this run's release: nothing to undo"
elif [ -L "$CERT_DIR/previous" ]; then
	prev=$(readlink "$CERT_DIR/previous")
	switch_current "$prev"
	say "current -> $prev (rolled back)"
else
	say "no previous release to go back to"
fi
if [ "$ROLE" != client ] && pg_running; then
	[ "$(local_psql -c 'SELECT pg_reload_conf()')" = t ] || die "pg_reload_conf() failed"
fi
echo "$SENTINEL"
