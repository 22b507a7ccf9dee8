#!/usr/bin/env bash
# Issue 12, "Store and concurrency": every command that writes the local
# store takes state_dir/lock, and what a killed writer left is cleaned up.
#  1. 3 concurrent `ca init`: exactly one creates the CA, the others are
#     refused (exit 5: locked, or 1: the CA exists), and the CA's key is
#     the key of its certificate.
#  2. 12 concurrent `sign`: every run that exits 0 has its index line (a
#     serial missing from the index could never be revoked); the others are
#     clean exit-5 refusals; every issued/ certificate is in the index.
#  3. With the lock held (flock(1) on state_dir/lock, as a running renew
#     would), every writer exits 5 and the store does not change: issue,
#     issue --force, issue --signed, sign, ca init, ca import, csr -c, and
#     status (it writes state_dir/verify/, the client key included).
#  4. `issue --force` SIGKILLed just before it writes its index (gdb:
#     a breakpoint on pki_index_save, then kill) leaves keys that no index
#     line names; killed at its first renameat(2), it leaves a .tmp file
#     holding a key.  The next `issue` removes them all and never keeps an
#     orphan.  Breakpoints, not races: deterministic.
#  5. Two runs in the same second get different release ids that sort by
#     time (`plan` prints the id a run would use; no node is contacted).
# Local store only: no lab, no network.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
for tool in gdb flock openssl; do
	command -v "$tool" >/dev/null || fail "this test needs $tool (apt-get install $tool)"
done
lab_dir
chmod 700 "$LAB"
STATE=$LAB/state
INI=$LAB/cluster.ini
cat >"$INI" <<EOF
[cluster]
name = it-store
state_dir = $STATE

[server]
key = ec:P-256

[client]
key = ec:P-256

[node db1]
host = db1.store.test
address = 127.0.80.11
role = primary

[node db2]
host = db2.store.test
address = 127.0.80.12
role = replica

[node app1]
host = app1.store.test
address = 127.0.80.21
role = client
EOF
chmod 600 "$INI"

# ---- 1. three concurrent ca init -------------------------------------------
pids=()
for i in 1 2 3; do
	"$DBPKI" ca init -c "$INI" >"$LAB/init$i.out" 2>&1 &
	pids+=($!)
done
ok=0
for i in 1 2 3; do
	rc=0
	wait "${pids[$((i - 1))]}" || rc=$?
	case $rc in
	0) ok=$((ok + 1)) ;;
	1 | 5) ;;
	*) cat "$LAB/init$i.out"; fail "ca init $i exited $rc (expected 0, 1 or 5)" ;;
	esac
done
[ "$ok" = 1 ] || { cat "$LAB"/init*.out; fail "$ok of 3 concurrent ca init runs created a CA (expected exactly 1)"; }
"$DBPKI" match "$STATE/ca/dbca.key" "$STATE/ca/dbca.crt" >/dev/null 2>&1 ||
	fail "after concurrent ca init, dbca.key is not the key of dbca.crt"
[ "$(grep -c $'\tca\t' "$STATE/index.tsv")" = 1 ] || fail "index.tsv does not hold exactly one CA line"
pass "3 concurrent ca init: exactly one CA, its key matches, one index line"

# ---- 2. twelve concurrent sign ---------------------------------------------
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$LAB/app.key" \
	-subj /CN=app.store.test -addext subjectAltName=DNS:app.store.test -out "$LAB/app.csr" 2>/dev/null
pids=()
for i in $(seq 1 12); do
	"$DBPKI" sign -c "$INI" "$LAB/app.csr" --profile server --out "$LAB/signed$i.crt" >"$LAB/sign$i.out" 2>&1 &
	pids+=($!)
done
ok=0
for i in $(seq 1 12); do
	rc=0
	wait "${pids[$((i - 1))]}" || rc=$?
	case $rc in
	0)
		ok=$((ok + 1))
		serial=$(openssl x509 -in "$LAB/signed$i.crt" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
		grep -q "^$serial"$'\tactive\tsigned\t' "$STATE/index.tsv" ||
			fail "sign $i exited 0 but serial $serial has no index line"
		;;
	5) grep -q 'another dbpki run holds' "$LAB/sign$i.out" || fail "sign $i: exit 5 without naming the holder" ;;
	*) cat "$LAB/sign$i.out"; fail "sign $i exited $rc (expected 0 or 5)" ;;
	esac
done
[ "$ok" -ge 1 ] || fail "no sign run succeeded"
lines=$(grep -c $'\tsigned\t' "$STATE/index.tsv")
[ "$lines" = "$ok" ] || fail "$ok sign runs succeeded but the index has $lines signed lines"
for f in "$STATE"/issued/*.crt; do
	s=$(basename "$f" .crt)
	grep -q "^$s"$'\t' "$STATE/index.tsv" || fail "issued/$s.crt has no index line"
done
pass "12 concurrent sign: $ok succeeded, each has its index line; $((12 - ok)) refused with exit 5"

# ---- 3. every writer refused while the lock is held -------------------------
"$DBPKI" issue -c "$INI" >/dev/null 2>&1 || fail "issue failed"
mkdir -m 700 "$LAB/signed"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$LAB/corp.key" \
	-subj /CN=corp-root -days 30 -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign,cRLSign -out "$LAB/corp.crt" 2>/dev/null
chmod 644 "$LAB/corp.crt"
snap() { find "$STATE" -path "$STATE/lock" -prune -o -printf '%p %s %T@\n' | sort; }
before=$(snap)
# The subshell becomes the sleep (exec) and holds the flock on fd 9, so
# killing that one PID releases the lock.
(
	exec 9>>"$STATE/lock"
	flock -w 30 9 || exit 1
	exec sleep 600
) &
holder=$!
on_exit() {
	[ -z "$holder" ] || { kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null || true; }
}
for _ in $(seq 1 50); do
	flock -n "$STATE/lock" true 2>/dev/null || break
	sleep 0.1
done
flock -n "$STATE/lock" true 2>/dev/null && fail "flock never took $STATE/lock"
n=0
while IFS= read -r cmd; do
	rc=0
	# shellcheck disable=SC2086 # cmd is a word list written below
	out=$("$DBPKI" $cmd 2>&1) || rc=$?
	[ "$rc" = 5 ] || { echo "$out"; fail "dbpki $cmd exited $rc while the lock was held (expected 5)"; }
	n=$((n + 1))
done <<EOF
issue -c $INI
issue -c $INI --force
issue -c $INI --signed $LAB/signed
sign -c $INI $LAB/app.csr --profile server --out $LAB/locked.crt
ca init -c $INI
ca import -c $INI --cert $LAB/corp.crt
csr -c $INI
status -c $INI
EOF
[ ! -e "$LAB/locked.crt" ] || fail "sign wrote --out while the lock was held"
[ "$(snap)" = "$before" ] || { diff <(echo "$before") <(snap) | head; fail "a refused writer changed the store"; }
on_exit
holder=
pass "$n store writers exit 5 while another process holds the lock, store unchanged"

# ---- 4. SIGKILL during issue: orphans removed by the next run ----------------
# Force a reissue of all three leaves and SIGKILL it (gdb's kill) where it
# is about to write the index: every new key and certificate is in place,
# no index line names them yet.  A breakpoint, not a race: deterministic.
gdb -q -batch -ex 'set pagination off' -ex 'break pki_index_save' -ex run -ex kill \
	--args "$DBPKI" issue -c "$INI" --force >"$LAB/killed.out" 2>&1 || true
grep -Eq 'Breakpoint 1[.0-9]*, (0x[0-9a-f]+ in )?pki_index_save' "$LAB/killed.out" ||
	{ cat "$LAB/killed.out"; fail "issue --force never reached pki_index_save under gdb"; }
[ "$(grep -c $'\tactive\tserver\t' "$STATE/index.tsv")" = 2 ] || fail "the killed issue changed the index"
orphan_keys() {
	for k in "$STATE"/keys/*.key; do
		s=$(basename "$k" .key)
		grep -q "^$s"$'\tactive\t' "$STATE/index.tsv" || echo "$k"
	done
}
orphans() {
	orphan_keys
	find "$STATE" -name '*.tmp'
}
keys1=$(orphan_keys | wc -l)
[ "$keys1" = 3 ] || fail "the issue killed before its index left $keys1 unrecorded keys, not 3"
# Once more, killed at its first renameat(2) (util_write_at): the new key is still in its
# temporary file.
gdb -q -batch -ex 'set pagination off' -ex 'set breakpoint pending on' -ex 'break renameat' -ex run -ex kill \
	--args "$DBPKI" issue -c "$INI" --force >"$LAB/killed2.out" 2>&1 || true
grep -Eq 'Breakpoint 1[.0-9]*, (0x[0-9a-f]+ in )?[_A-Za-z]*renameat\b' "$LAB/killed2.out" ||
	{ cat "$LAB/killed2.out"; fail "issue --force never reached renameat under gdb"; }
ls "$STATE"/keys/.*.tmp >/dev/null 2>&1 || fail "the issue killed at renameat left no temporary key file"
tmp2=$(find "$STATE" -name '*.tmp' | wc -l)
"$DBPKI" issue -c "$INI" >"$LAB/after.out" 2>&1 || { cat "$LAB/after.out"; fail "issue after the kill failed"; }
left=$(orphans)
[ -z "$left" ] || fail "after the next issue, orphans remain: $left"
grep -q 'removed keys/.*\.tmp: left by an interrupted run' "$LAB/after.out" ||
	{ cat "$LAB/after.out"; fail "the next issue did not say what it removed"; }
grep -q '^kept' "$LAB/after.out" || fail "the next issue kept nothing: it should keep the recorded leaves"
# What it keeps is what the index says is active, each key matching.
for k in "$STATE"/keys/*.key; do
	s=$(basename "$k" .key)
	"$DBPKI" match "$k" "$STATE/issued/$s.crt" >/dev/null 2>&1 || fail "keys/$s.key does not match issued/$s.crt"
done
pass "SIGKILLed issues left $keys1 unrecorded keys and $tmp2 .tmp file(s); the next runs removed them all"

# ---- 5. two runs in the same second ------------------------------------------
# Retried until both plans fall in one second (on f841af3 their ids are then
# equal); the ids must differ and sort in the order the runs were made.
same=0
for _ in $(seq 1 20); do
	a=$("$DBPKI" plan -c "$INI" bootstrap 2>&1 | sed -n 's/.*release id would be \([^ ;,]*\).*/\1/p' | head -1)
	b=$("$DBPKI" plan -c "$INI" bootstrap 2>&1 | sed -n 's/.*release id would be \([^ ;,]*\).*/\1/p' | head -1)
	[ -n "$a" ] && [ -n "$b" ] || fail "plan printed no release id"
	[ "${a:0:15}" = "${b:0:15}" ] || continue
	same=1
	break
done
[ "$same" = 1 ] || fail "20 pairs of plan runs never fell in one second"
[ "$a" != "$b" ] || fail "two runs in the same second got the same release id $a"
[ "$(printf '%s\n' "$b" "$a" | sort | head -1)" = "$a" ] || fail "release ids do not sort by time: $a then $b"
pass "two runs in one second: release ids $a < $b"
