#!/usr/bin/env bash
# Issue 12, "Node output and node files": the node-side file functions of
# templates/postgres/common.sh, rendered as the engine renders them and run
# by sh (dash) locally; no node, no network.
#  1. atomic_write never follows a symlink planted at its temporary name
#     (f841af3 wrote "$1.dbpki-tmp.$$": predictable, followed).
#  2. atomic_write fsyncs the new file and the directory (strace -y).
#  3. certs.sh fsyncs the release directory and releases/ (the SFTP upload
#     renamed files into it without), and cert_dir after switching current.
#  4. move_aside twice in one second: two sibling directories whose names
#     sort by time (f841af3 moved the second one *into* the first).
#  5. certs.sh keeps the newest five releases by name: with ids of the old
#     form (seconds only) and the new one (nanoseconds), two of them in one
#     second, under a locale whose collation skips punctuation.
# TPL_ROOT (default DBPKI_ROOT) is the tree whose templates are tested.
set -euo pipefail
root=${DBPKI_ROOT:?DBPKI_ROOT}
build=${DBPKI_BUILD:?DBPKI_BUILD}
tpl_root=${TPL_ROOT:-$root}
render=$build/tools/tplrender
[ -x "$render" ] || { echo "missing $render (make $render)"; exit 1; }
command -v strace >/dev/null || { echo "this test needs strace (apt-get install strace)"; exit 1; }
work=$(mktemp -d /tmp/dbpki-nodefiles.XXXXXX)
waiter=
cleanup() {
	[ -z "$waiter" ] || { kill "$waiter" 2>/dev/null; wait "$waiter" 2>/dev/null || true; }
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

C=$work/certs
mkdir -p "$C/releases/r1" "$work/pgdata"
# Render common.sh + BODY (a file) into $work/script.sh.
script() {
	cat "$tpl_root/templates/postgres/common.sh" "$1" >"$work/tpl.sh"
	"$render" "$work/tpl.sh" node db1 role primary cluster c1 host db1.test \
		address 127.0.80.11 port 5432 pgdata "$work/pgdata" bindir /usr/bin \
		cert_dir "$C" socket_dir "$work" layout pgdata pg_cluster "" listen_localhost auto start_conf keep allowed_networks 127.0.0.0/8 \
		release_id r1 release_dir "$C/releases/r1" db_user postgres \
		primary_host db1.test primary_address 127.0.80.11 primary_port 5432 \
		replicas '' sentinel DBPKI-STEP-OK >"$work/script.sh" ||
		fail "rendering common.sh failed"
}

# ---- 1. no symlink followed ---------------------------------------------------
# The script shell's PID is known before it runs: a subshell waits on a
# FIFO, then execs sh, keeping its PID.  Every name the old code could use
# is planted as a symlink to a victim file.
echo 'printf "new\n" | atomic_write "$CERT_DIR/pg_ident.conf" 600; echo "$SENTINEL"' >"$work/body1.sh"
script "$work/body1.sh"
echo original >"$work/victim"
mkfifo "$work/go"
(
	read -r _ <"$work/go"
	exec sh "$work/script.sh" >"$work/out1" 2>&1
) &
waiter=$!
ln -s "$work/victim" "$C/pg_ident.conf.dbpki-tmp.$waiter"
echo go >"$work/go"
rc=0
wait "$waiter" || rc=$?
waiter=
[ "$(cat "$work/victim")" = original ] || fail "atomic_write wrote through a planted symlink into $work/victim: $(cat "$work/victim")"
[ "$rc" = 0 ] || { cat "$work/out1"; fail "atomic_write failed (exit $rc)"; }
[ "$(cat "$C/pg_ident.conf")" = new ] && [ ! -L "$C/pg_ident.conf" ] || fail "pg_ident.conf not written"
[ "$(stat -c %a "$C/pg_ident.conf")" = 600 ] || fail "pg_ident.conf mode $(stat -c %a "$C/pg_ident.conf")"
[ -z "$(find "$C" -maxdepth 1 -name '.dbpki-tmp*')" ] || fail "a temporary file was left behind"
pass "atomic_write leaves a symlink at the old temporary name alone"

# ---- 2. fsync of file and directory ------------------------------------------
# The same bytes again are not rewritten (a converged node stays as it is):
# no temporary file, no fsync.  A changed file is written and fsynced.
strace -f -qq -y -e trace=fsync,fdatasync,openat -o "$work/trace2" sh "$work/script.sh" >/dev/null 2>&1 ||
	fail "atomic_write (same bytes) under strace failed"
! grep -q 'dbpki-tmp' "$work/trace2" || { cat "$work/trace2"; fail "atomic_write rewrote a file holding the same bytes"; }
echo old >"$C/pg_ident.conf"
strace -f -qq -y -e trace=fsync,fdatasync -o "$work/trace2" sh "$work/script.sh" >/dev/null 2>&1 ||
	fail "atomic_write under strace failed"
grep -Eq "fsync\([0-9]+<$C/\.dbpki-tmp\.[A-Za-z0-9]+>\) = 0" "$work/trace2" ||
	{ cat "$work/trace2"; fail "atomic_write did not fsync the new file"; }
grep -Eq "fsync\([0-9]+<$C>\) = 0" "$work/trace2" ||
	{ cat "$work/trace2"; fail "atomic_write did not fsync $C"; }
pass "atomic_write fsyncs the file and its directory"

# ---- 3. certs.sh fsyncs the release directory --------------------------------
for f in dbca.crt client.crt server.crt; do echo "$f" >"$C/releases/r1/$f"; done
for f in client.key server.key; do (umask 077 && echo "$f" >"$C/releases/r1/$f"); done
script "$tpl_root/templates/postgres/certs.sh"
strace -f -qq -y -e trace=fsync,fdatasync -o "$work/trace3" sh "$work/script.sh" >"$work/out3" 2>&1 ||
	{ cat "$work/out3"; fail "certs.sh failed"; }
[ "$(readlink "$C/current")" = releases/r1 ] || fail "certs.sh did not switch current"
for d in "$C/releases/r1" "$C/releases" "$C"; do
	grep -Eq "fsync\([0-9]+<$d>\) = 0" "$work/trace3" || { cat "$work/trace3"; fail "certs.sh did not fsync $d"; }
done
pass "certs.sh fsyncs releases/<id>, releases/ and cert_dir (after the switch)"

# ---- 4. move_aside twice in one second ---------------------------------------
cat >"$work/body4.sh" <<'EOF'
mkdir -p "$PGDATA" && echo 1 >"$PGDATA/which" && move_aside
mkdir -p "$PGDATA" && echo 2 >"$PGDATA/which" && move_aside
echo "$SENTINEL"
EOF
script "$work/body4.sh"
rm -rf "$work/pgdata"
sh "$work/script.sh" >"$work/out4" 2>&1 || { cat "$work/out4"; fail "move_aside failed"; }
mapfile -t asides < <(cd "$work" && ls -d pgdata.dbpki-old-* | LC_ALL=C sort)
[ "${#asides[@]}" = 2 ] || fail "two move_aside calls left ${#asides[@]} sibling(s): ${asides[*]} ($(find "$work" -name which))"
[ "$(cat "$work/${asides[0]}/which")" = 1 ] && [ "$(cat "$work/${asides[1]}/which")" = 2 ] ||
	fail "the names do not sort in the order the directories were moved: ${asides[*]}"
pass "move_aside twice: ${asides[*]}"

# ---- 5. the newest five releases, old and new ids mixed ----------------------
rm -rf "$C"
ids=(20261101T000000Z 20261102T000000Z 20261103T000000Z 20261104T120000Z
	20261104T120000Z-000000001 20261104T120000Z-500000000 20261105T000000Z-000000000)
for id in "${ids[@]}"; do
	mkdir -p "$C/releases/$id"
	# each release its own files (one with the same files as current
	# would be removed again: certs.sh leaves a converged node alone)
	for f in dbca.crt client.crt server.crt; do echo "$f $id" >"$C/releases/$id/$f"; done
	for f in client.key server.key; do (umask 077 && echo "$f $id" >"$C/releases/$id/$f"); done
done
newest=${ids[6]}
ln -s "releases/${ids[0]}" "$C/current" # the oldest is current: it becomes previous
script "$tpl_root/templates/postgres/certs.sh"
sed -i "s|^RELEASE_ID=.*|RELEASE_ID='$newest'|; s|^RELEASE_DIR=.*|RELEASE_DIR='$C/releases/$newest'|" "$work/script.sh"
coll=$(locale -a 2>/dev/null | grep -im1 '^en_US.utf-\?8$' || echo C.UTF-8)
LC_ALL=$coll sh "$work/script.sh" >"$work/out5" 2>&1 || { cat "$work/out5"; fail "certs.sh failed"; }
got=$(cd "$C/releases" && ls | LC_ALL=C sort | tr '\n' ' ')
want="${ids[0]} ${ids[2]} ${ids[3]} ${ids[4]} ${ids[5]} ${ids[6]} "
[ "$got" = "$want" ] || fail "certs.sh kept: $got; want the newest five and previous: $want"
pass "certs.sh keeps the newest five (old and new ids, LC_ALL=$coll) and previous"
