#!/usr/bin/env bash
# SFTP mkdir and atomic upload against real sshd on the lab (127.0.21.x):
# exact modes and contents, replacement of an existing file, a reader
# polling the file during 50 uploads never sees a partial or empty file,
# no temporary file is left behind, failures clean up.
. "${DBPKI_ROOT:?}/tests/lab/ssh_testlib.sh"

lab_start 127.0.21 primary
N1=$LABDIR/nodes/node1/certs
W=$LABDIR/work
mkdir -p "$W"

# mkdir -p with a mode; an existing directory is fine.
run_tool 0 -c "$INI" node1 mkdir "$N1/rel/a/b" 0750
[ -d "$N1/rel/a/b" ] || fail "mkdir -p did not create $N1/rel/a/b"
[ "$(stat -c %a "$N1/rel/a/b")" = 750 ] || fail "mkdir mode $(stat -c %a "$N1/rel/a/b")"
[ "$(stat -c %U "$N1/rel/a/b")" = "$LABUSER" ] || fail "mkdir owner"
run_tool 0 -c "$INI" node1 mkdir "$N1/rel/a/b" 0700
echo x >"$N1/plainfile"
chown "$LABUSER" "$N1/plainfile" 2>/dev/null || true
run_tool 11 -c "$INI" node1 mkdir "$N1/plainfile/sub" 0700
has "$ERR" "not a directory" || fail "mkdir over a file: unclear error"
ok "mkdir -p, modes, existing directories, a file in the way"

# New file, then replacement with another mode; both exact.
head -c 3000 /dev/urandom >"$W/a"
head -c 70000 /dev/urandom >"$W/b"
run_tool 0 -c "$INI" node1 upload "$W/a" "$N1/server.crt" 0644
cmp -s "$W/a" "$N1/server.crt" || fail "content of a new file"
[ "$(stat -c %a "$N1/server.crt")" = 644 ] || fail "mode of a new file"
run_tool 0 -c "$INI" node1 upload "$W/b" "$N1/server.crt" 0600
cmp -s "$W/b" "$N1/server.crt" || fail "content after replacement"
[ "$(stat -c %a "$N1/server.crt")" = 600 ] || fail "mode after replacement"
: >"$W/empty"
run_tool 0 -c "$INI" node1 upload "$W/empty" "$N1/empty" 0640
[ -f "$N1/empty" ] && [ ! -s "$N1/empty" ] || fail "empty file upload"
ok "new file and replacement: exact content and mode"

# Atomicity: 50 versions of different sizes, one session, a reader polling.
T=$N1/live.pem
: >"$W/allowed"
args=()
for i in $(seq 1 50); do
	size=$(((i * 7919) % 200000 + 1))
	{ printf 'version %d\n' "$i"; head -c "$size" /dev/urandom | base64; printf 'end %d\n' "$i"; } >"$W/v$i"
	sha256sum <"$W/v$i" | cut -d' ' -f1 >>"$W/allowed"
	args+=("$W/v$i" "$T" 0600)
done
run_tool 0 -c "$INI" node1 upload "$W/v1" "$T" 0600
(
	n=0
	while [ ! -e "$W/stop" ]; do
		# cat, not cp: GNU cp refuses a source that was replaced
		# between its stat and its open, which is the very thing
		# being tested; cat opens the name exactly once.
		if ! cat "$T" >"$W/snap" 2>/dev/null; then
			echo MISSING
		elif [ ! -s "$W/snap" ]; then
			echo EMPTY
		else
			sha256sum <"$W/snap" | cut -d' ' -f1
		fi
		n=$((n + 1))
	done
) >"$W/seen" &
reader=$!
run_tool 0 -c "$INI" node1 upload "${args[@]}"
touch "$W/stop"
wait "$reader"
reads=$(wc -l <"$W/seen")
distinct=$(sort -u "$W/seen" | wc -l)
bad=$(grep -cvxFf "$W/allowed" "$W/seen" || true)
[ "$bad" -eq 0 ] || fail "reader saw $bad partial/empty/missing states: $(grep -vxFf "$W/allowed" "$W/seen" | sort | uniq -c | head -3)"
[ "$reads" -ge 20 ] || fail "reader only managed $reads reads"
cmp -s "$W/v50" "$T" || fail "final content is not version 50"
ok "50 uploads under a polling reader: $reads reads, $distinct versions seen, none partial"

# No temporary files left anywhere.
left=$(find "$N1" -name '.*dbpki*' | head -3)
[ -z "$left" ] || fail "temporary files left: $left"
ok "no temporary files left"

# Failures: a missing directory, a directory in the way, bad paths.
run_tool 11 -c "$INI" node1 upload "$W/a" "$N1/nodir/x.pem" 0600
has "$ERR" "does the directory exist" || fail "missing dir: unclear error"
mkdir "$N1/adir"
chown "$LABUSER" "$N1/adir" 2>/dev/null || true
run_tool 11 -c "$INI" node1 upload "$W/a" "$N1/adir" 0600
[ -d "$N1/adir" ] && [ -z "$(ls -A "$N1/adir")" ] || fail "directory target was changed"
left=$(find "$N1" -name '.*dbpki*' | head -3)
[ -z "$left" ] || fail "temporary file left after a failure: $left"
run_tool 2 -c "$INI" node1 upload "$W/a" "relative/x.pem" 0600
run_tool 2 -c "$INI" node1 upload "$W/a" "$N1/it's.pem" 0600
run_tool 2 -c "$INI" node1 upload "$W/a" "$N1/../x.pem" 0600
ok "failures are reported and leave no temporary file"

echo "PASS test_ssh_upload ($((SECONDS - T_STARTED))s)"
