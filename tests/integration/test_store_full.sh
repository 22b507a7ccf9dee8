#!/usr/bin/env bash
# Issue 7: the state directory's disk fills up while issuing (a small
# tmpfs).  The run fails with an error that names the file and the cause,
# and the store is exactly as before: no truncated key, no temporary file,
# no index line for a file that is not there, no superseded certificate.
set -euo pipefail
: "${DBPKI:?}"
T=$(mktemp -d /tmp/dbpki-full.XXXXXX)
S=$T/state
mkdir -p "$S"
cleanup() { umount "$S" 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

mount -t tmpfs -o size=80k,mode=0700 tmpfs "$S" || fail "cannot mount a tmpfs (this test needs root)"

inventory() { # number of nodes
	printf '[cluster]\nname = full\nstate_dir = %s\n[ssh]\nknown_hosts = %s/kh\n' "$S" "$T"
	for i in $(seq 1 "$1"); do
		role=replica
		[ "$i" = 1 ] && role=primary
		printf '[node db%d]\nhost = db%d.example.com\naddress = 10.0.%d.%d\nrole = %s\n' \
			"$i" "$i" $((i / 200)) $((i % 200 + 1)) "$role"
	done
}
inventory 2 >"$T/small.ini"
inventory 40 >"$T/big.ini"
chmod 600 "$T"/*.ini

snapshot() { (cd "$S" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
"$DBPKI" ca init -c "$T/small.ini" >/dev/null 2>&1 || fail "ca init"
"$DBPKI" issue -c "$T/small.ini" >/dev/null 2>&1 || fail "first issue"
before=$(snapshot)
[ "$(echo "$before" | grep -c '/keys/')" -ge 3 ] || fail "first issue wrote too few keys: $before"

# 40 nodes do not fit in 80 KiB (tmpfs takes a 4 KiB page per file).
set +e
out=$("$DBPKI" issue -c "$T/big.ini" 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] || fail "issue on a full disk exited 0"
echo "$out" | grep -q 'No space left on device' || fail "the cause is not named: $out"
echo "$out" | grep -Eq "$S/(issued|keys|index)" || fail "no file named: $out"
echo "$out" | grep -q 'the store in .* is as it was' || fail "no word on the store: $out"
[ "$(snapshot)" = "$before" ] || { diff <(echo "$before") <(snapshot) | head; fail "the store changed"; }
pass "40 new nodes on a full disk: exit $rc, cause and file named, store unchanged"

# Renewing the existing leaves when not one byte is left.
head -c 200000 /dev/zero >"$S/filler" 2>/dev/null || true
before=$(snapshot | grep -v ' ./filler$')
set +e
out=$("$DBPKI" issue --force -c "$T/small.ini" 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] || fail "issue --force on a full disk exited 0"
[ "$(snapshot | grep -v ' ./filler$')" = "$before" ] || fail "issue --force on a full disk changed the store"
"$DBPKI" inspect "$S/ca/dbca.crt" >/dev/null || fail "the CA certificate no longer reads"
for k in "$S"/keys/*.key; do
	openssl pkey -in "$k" -noout 2>/dev/null || fail "$k is not a whole key"
done
pass "--force with no space left: nothing superseded, every key whole"

rm -f "$S/filler"
"$DBPKI" issue --force -c "$T/small.ini" >/dev/null 2>&1 || fail "issue after space came back"
[ "$(snapshot)" != "$before" ] || fail "issue after space came back changed nothing"
pass "with space back, issue --force works"
