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
