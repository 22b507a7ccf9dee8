#!/usr/bin/env bash
# Issue 3: the lock and the live progress, through the real binary.
# A run (a one-step playbook whose node script takes a few seconds) holds
# state_dir/lock; a second run started meanwhile exits 5, names the
# holder's PID and start time, and changes nothing: no journal, no store
# write, no node touched.  The first run, on a pseudo-terminal, draws one
# live line per node that is redrawn in place with a growing elapsed time;
# the same run through a pipe prints plain lines only.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.41
lab_dir
holder=
on_exit() {
	[ -n "$holder" ] && kill "$holder" 2>/dev/null && wait "$holder" 2>/dev/null
}

lab_up $NET primary,replica,client
STATE=$(sed -n 's/^state_dir *= *//p' "$INI")

# A playbook of one slow step, read through the documented overrides.
mkdir -p "$LAB/pb" "$LAB/tpl/postgres"
cat >"$LAB/pb/bootstrap.ini" <<'EOF'
[playbook]
name = bootstrap
description = test: one slow step on every node

[step slow]
action = slow
roles = all
mode = parallel
upload = yes
EOF
cp "$DBPKI_ROOT/templates/postgres/common.sh" "$LAB/tpl/postgres/"
cat >"$LAB/tpl/postgres/slow.sh" <<'EOF'
echo "{{run_id}}" >>"$CERT_DIR/slow-runs"
sleep 5
say "slept"
echo "$SENTINEL"
EOF
export DBPKI_PLAYBOOKS=$LAB/pb DBPKI_TEMPLATES=$LAB/tpl
grep -q 'CERT_DIR=' "$LAB/tpl/postgres/common.sh" || fail "common.sh no longer sets CERT_DIR; adapt slow.sh"

# The first run on a pseudo-terminal (script(1)), in the background.
script -q -e -c "$DBPKI bootstrap -c $INI" "$LAB/typescript" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 1 100); do
	[ -s "$STATE/lock" ] && break
	sleep 0.1
done
[ -s "$STATE/lock" ] || fail "the first run never took $STATE/lock"
# Wait until the slow step is running on every node, so that a second run
# would have something to break and the holder has finished its uploads
# (they would otherwise show up as changes between the two snapshots).
for _ in $(seq 1 100); do
	[ -s "$LAB/nodes/node1/certs/slow-runs" ] && [ -s "$LAB/nodes/node2/certs/slow-runs" ] &&
		[ -s "$LAB/nodes/node3/certs/slow-runs" ] && break
	sleep 0.1
done
for n in 1 2 3; do
	[ -s "$LAB/nodes/node$n/certs/slow-runs" ] || fail "the slow step never started on node$n"
done

snap() { find "$STATE" "$LAB/nodes" -path '*/pgdata' -prune -o -type f -printf '%p %s %T@\n' 2>/dev/null | grep -v ' /lock ' | sort; }
before=$(snap)
set +e
out=$("$DBPKI" bootstrap -c "$INI" 2>&1)
rc=$?
set -e
[ "$rc" = 5 ] || { echo "$out"; fail "second run exited $rc, not 5"; }
echo "$out" | grep -Eq 'pid [0-9]+' || fail "no holder PID in: $out"
echo "$out" | grep -Eq 'started [0-9]{4}-[0-9]{2}-[0-9]{2}T' || fail "no start time in: $out"
pid=$(echo "$out" | sed -n 's/.*pid \([0-9]*\).*/\1/p' | head -1)
[ -d "/proc/$pid" ] && grep -q dbpki "/proc/$pid/cmdline" || fail "PID $pid named in the message is not the running dbpki"
after=$(snap)
# The holder itself keeps writing its journal, verify files and markers;
# everything else must be exactly as before (the journal count is checked
# once the holder is done).
strip() { grep -v -e slow-runs -e /journal/ -e /verify/; }
diff <(echo "$before" | strip) <(echo "$after" | strip) >"$LAB/diff" ||
	{ head "$LAB/diff"; fail "the second run changed files"; }
pass "second run exits 5 naming PID $pid and its start time"

# The holder has private keys in memory: no core dump, not dumpable.
grep -Eq '^Max core file size +0 +0 ' "/proc/$pid/limits" || fail "dbpki may dump core: $(grep core "/proc/$pid/limits")"
pass "a running dbpki has core dumps off"

wait "$holder" || fail "the first run failed: $(tail -5 "$LAB/typescript")"
holder=
[ "$(ls "$STATE/journal" | wc -l)" = 1 ] || fail "expected exactly one journal: $(ls "$STATE/journal")"
for n in 1 2 3; do
	[ "$(wc -l <"$LAB/nodes/node$n/certs/slow-runs")" = 1 ] || fail "node$n ran the step more than once"
done
pass "only the first run left a journal and ran on the nodes"

# Live progress: cursor-up redraws, a running line with elapsed time, and
# one final line per node.
T=$LAB/typescript
grep -q $'\e\\[[0-9]*A' "$T" || fail "no cursor-up redraw on a terminal"
grep -aq 'running' "$T" || fail "no running line on a terminal"
# The step sleeps 5 s: redraws must have shown an elapsed time past 1 s.
longest=$(grep -aoE 'running +[0-9]+\.[0-9]s' "$T" | grep -oE '[0-9]+\.[0-9]' | sort -n | tail -1)
awk -v t="${longest:-0}" 'BEGIN { exit !(t >= 1.0) }' || fail "the running lines were not redrawn (longest shown ${longest:-none})"
for n in node1 node2 node3; do
	grep -aEq "$n +slow +ok +[0-9]+\.[0-9]+s" "$T" || fail "no final line for $n"
done
pass "live lines on a terminal, redrawn in place, one final line per node"

# Not a terminal: no escape sequences at all.
out=$("$DBPKI" bootstrap -c "$INI" 2>&1) || { echo "$out"; fail "plain run failed"; }
if printf '%s' "$out" | grep -q $'\e'; then fail "escape sequences in plain output"; fi
[ "$(echo "$out" | grep -Ec 'node[123] +slow +ok')" = 3 ] || { echo "$out"; fail "plain output lacks one line per node"; }
pass "plain lines when not a terminal"
