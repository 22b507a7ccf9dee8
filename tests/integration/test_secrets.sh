#!/usr/bin/env bash
# Issue 7, "nobody let in": a bootstrap with an encrypted CA key (the
# passphrase from the environment) on the lab (127.0.43.x), watched from
# outside.  No secret -- the CA passphrase, any private key's PEM body --
# appears in: any process's argv while the run goes on (local and on the
# nodes, which share this machine), dbpki's output, the journal, the node
# logs.  The CA key never leaves the admin host; every key is 0600.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.43
lab_dir
watcher=
on_exit() {
	[ -n "$watcher" ] && kill "$watcher" 2>/dev/null
}

lab_up $NET primary,replica,client
STATE=$LAB/state
sed -i 's/^\[ca\]$/[ca]\npassphrase_env = DBPKI_TEST_CA_PASS/' "$INI"
PASS="s3cret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export DBPKI_TEST_CA_PASS=$PASS

# Every process's argv, sampled all through the run.
(
	while :; do
		ps -eo args= 2>/dev/null
		sleep 0.05
	done
) >"$LAB/argv" 2>/dev/null &
watcher=$!
"$DBPKI" bootstrap -c "$INI" >"$LAB/out" 2>&1 || { cat "$LAB/out"; fail "bootstrap"; }
kill "$watcher"
watcher=
[ "$(wc -l <"$LAB/argv")" -gt 100 ] || fail "the argv watcher saw too little"
grep -q 'sh -s' "$LAB/argv" || fail "the watcher never saw a node script run (sh -s)"
pass "bootstrap with an encrypted CA key"

# The CA key is really encrypted with that passphrase.
grep -q 'ENCRYPTED PRIVATE KEY' "$STATE/ca/dbca.key" || fail "dbca.key is not encrypted"
openssl pkey -in "$STATE/ca/dbca.key" -passin env:DBPKI_TEST_CA_PASS -noout ||
	fail "dbca.key does not open with the passphrase"

# Secrets to look for: the passphrase, and a long piece of the body of
# every private key in the store and on the nodes.
: >"$LAB/needles"
echo "$PASS" >>"$LAB/needles"
while IFS= read -r -d '' k; do
	grep -v -- '-----' "$k" | tr -d '\n' | cut -c 20-60 >>"$LAB/needles"
done < <(find "$STATE" "$LAB/nodes" -name '*.key' -type f -print0)
# An empty line would match everything: every needle must be long.
[ "$(awk 'length($0) < 12' "$LAB/needles" | wc -l)" = 0 ] || fail "a short needle"
[ "$(wc -l <"$LAB/needles")" -ge 6 ] || fail "too few keys found to look for"

check_clean() { # what, file
	if grep -F -f "$LAB/needles" "$2" >/dev/null 2>&1; then
		fail "a secret appears in $1 ($2)"
	fi
}
check_clean "process arguments" "$LAB/argv"
check_clean "dbpki's output" "$LAB/out"
for j in "$STATE"/journal/*.jsonl; do check_clean "the journal" "$j"; done
for l in "$LAB"/nodes/*/certs/postgresql.log "$LAB"/sshd/*/sshd.log; do
	[ -f "$l" ] && check_clean "a node log" "$l"
done
out=$("$DBPKI" status -c "$INI" --json 2>&1) || fail "status"
printf '%s' "$out" >"$LAB/status"
check_clean "status --json" "$LAB/status"
pass "no passphrase or key material in argv, output, journal, node logs, status"

# The CA key never leaves the admin host; keys are 0600 everywhere.
ca_body=$(grep -v -- '-----' "$STATE/ca/dbca.key" | tr -d '\n' | cut -c 20-60)
if grep -rF "$ca_body" "$LAB/nodes" >/dev/null 2>&1; then fail "the CA key is on a node"; fi
[ -z "$(find "$LAB/nodes" -name 'dbca.key')" ] || fail "a dbca.key file is on a node"
bad=$(find "$STATE" "$LAB/nodes" -name '*.key' -type f ! -perm 0600)
[ -z "$bad" ] || fail "keys not 0600: $bad"
pass "the CA key stays on the admin host; every key is 0600"

# A wrong passphrase is refused without touching anything.
# (state_dir/lock is not the store: every writer takes it, then refuses.)
before=$(find "$STATE" -type f ! -path '*/journal/*' ! -path "$STATE/lock" -printf '%p %s %T@\n' | sort)
set +e
out=$(DBPKI_TEST_CA_PASS=not-it-7f3e9a "$DBPKI" issue --force -c "$INI" 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] || fail "issue with a wrong CA passphrase exited 0"
echo "$out" | grep -qi 'passphrase' || fail "the refusal does not mention the passphrase: $out"
case $out in *not-it-7f3e9a*) fail "the wrong passphrase is echoed back" ;; esac
[ "$(find "$STATE" -type f ! -path '*/journal/*' ! -path "$STATE/lock" -printf '%p %s %T@\n' | sort)" = "$before" ] ||
	fail "a wrong passphrase changed the store"
pass "a wrong CA passphrase is refused, not echoed, and changes nothing"
