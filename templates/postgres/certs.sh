# certs: check the release dbpki just uploaded, then switch cert_dir/current
# to it atomically (a symlink renamed over the old one).
[ -d "$RELEASE_DIR" ] || die "release directory $RELEASE_DIR is missing"
files="dbca.crt client.crt client.key"
[ "$ROLE" = client ] || files="$files server.crt server.key"
for f in $files; do
	[ -s "$RELEASE_DIR/$f" ] || die "$RELEASE_DIR/$f is missing or empty"
done
for k in client.key server.key; do
	[ -f "$RELEASE_DIR/$k" ] || continue
	mode=$(stat -c %a "$RELEASE_DIR/$k")
	[ "$mode" = 600 ] || die "$RELEASE_DIR/$k has mode $mode, not 600"
done
chmod 700 "$CERT_DIR" "$CERT_DIR/releases" "$RELEASE_DIR"
# dbpki uploaded each file fsynced and renamed it into place; the names
# are durable once their directories are: this script runs anyway, so no
# extra round trip per file.
sync -- "$RELEASE_DIR" "$CERT_DIR/releases" || die "cannot fsync $RELEASE_DIR"
new="releases/$RELEASE_ID"
# A converged node stays as it is: when current already holds exactly
# these files (the same certificates, keys and CRL, or no CRL in both), the
# release just uploaded is removed again and nothing is switched, so a
# second bootstrap leaves the node untouched (certs-undo then finds that
# current is not this run's and undoes nothing).
same_release() {
	[ -L "$CERT_DIR/current" ] && [ -d "$CERT_DIR/current/" ] || return 1
	[ "$(cd "$RELEASE_DIR" && ls -A | LC_ALL=C sort)" = "$(cd "$CERT_DIR/current/" && ls -A | LC_ALL=C sort)" ] || return 1
	for f in $(ls -A "$RELEASE_DIR"); do
		cmp -s -- "$RELEASE_DIR/$f" "$CERT_DIR/current/$f" || return 1
		[ "$(stat -c %a "$RELEASE_DIR/$f")" = "$(stat -L -c %a "$CERT_DIR/current/$f")" ] || return 1
	done
}
if [ "$(readlink "$CERT_DIR/current" 2>/dev/null || true)" != "$new" ] && same_release; then
	rm -rf -- "$RELEASE_DIR"
	sync -- "$CERT_DIR/releases" || die "cannot fsync $CERT_DIR/releases"
	say "current ($(readlink "$CERT_DIR/current")) already holds these files: kept"
	echo "$SENTINEL"
	exit 0
fi
if [ -L "$CERT_DIR/current" ]; then
	old=$(readlink "$CERT_DIR/current")
	if [ "$old" != "$new" ]; then
		ln -sfn "$old" "$CERT_DIR/.previous.new"
		mv -T "$CERT_DIR/.previous.new" "$CERT_DIR/previous"
	fi
fi
switch_current "$new"
say "current -> $new"
# Keep the newest five releases (and whatever current/previous point to).
# Release ids sort like time byte by byte (C collation: a locale's may
# skip the '-'), an id of the same second from before the nanoseconds
# first.
keep_prev=$(readlink "$CERT_DIR/previous" 2>/dev/null || true)
ls -1 "$CERT_DIR/releases" | LC_ALL=C sort -r | tail -n +6 | while read -r old; do
	[ "releases/$old" = "$new" ] || [ "releases/$old" = "$keep_prev" ] && continue
	rm -rf -- "$CERT_DIR/releases/$old"
done
echo "$SENTINEL"
