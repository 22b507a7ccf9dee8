#!/usr/bin/env bash
# Issue 18 (part 1): the CA key at rest.
#  1. a 15-byte passphrase is refused by ca init (exit 2, no key written);
#     with 16 bytes the key is PBES2 and `openssl asn1parse` shows PBKDF2
#     with >= 600000 iterations and hmacWithSHA256;
#  2. a store made by f841af3 (tests/lab/baseline.sh) with a 5-byte
#     passphrase (its key: PBKDF2, 2048 iterations) on the loopback lab
#     (127.0.100.x): the new dbpki renews with it, check says WARNING with
#     the fix, the key file untouched; ca passwd refuses the short
#     passphrase, a wrong --old-passphrase-file, and the held lock (exit 5),
#     each changing nothing; with a new passphrase and the old one from a
#     file it re-encrypts (>= 600000 iterations) and check is OK again;
#     renew goes on with the new key;
#  3. a key in clear: check WARNING "stored in clear", status warns;
#     [ca] plaintext_key = accepted: check OK.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.100
lab_dir
holder=
on_exit() {
	[ -z "$holder" ] || { kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null || true; }
}

# The PBKDF2 iteration count of an encrypted PEM key, from asn1parse.
iterations() { # key
	local out hex
	out=$(openssl asn1parse -in "$1") || fail "asn1parse cannot read $1"
	echo "$out" | grep -q ':PBKDF2$' || { echo "$out" >&2; fail "$1: no PBKDF2 in its header"; }
	hex=$(echo "$out" | awk '/:PBKDF2$/ { p = 1 } p && /prim: INTEGER/ { sub(/.*:/, ""); print; exit }')
	[ -n "$hex" ] || fail "$1: no iteration count"
	echo $((16#$hex))
}

# ---- 1. a new key -----------------------------------------------------------
N=$LAB/new
mkdir -m 700 "$N"
cat >"$N/inv.ini" <<EOF
[cluster]
name = it-cakey
state_dir = $N/state

[ca]
passphrase_file = $N/pass

[node db1]
host = db1.cakey.test
address = $NET.11
role = primary
EOF
chmod 600 "$N/inv.ini"
printf '%s\n' 'fifteen bytes!!' >"$N/pass"
chmod 600 "$N/pass"
rc=0
out=$("$DBPKI" ca init -c "$N/inv.ini" 2>&1) || rc=$?
[ "$rc" = 2 ] || { echo "$out"; fail "ca init with a 15-byte passphrase exited $rc (expected 2)"; }
echo "$out" | grep -q 'has 15 bytes, a new CA key needs at least 16' || { echo "$out"; fail "15 bytes: no clear message"; }
[ ! -e "$N/state/ca/dbca.key" ] || fail "a 15-byte passphrase left a key behind"
pass "a 15-byte passphrase is refused, nothing written"

printf '%s\n' 'sixteen bytes!!!' >"$N/pass"
"$DBPKI" ca init -c "$N/inv.ini" >"$N/out" 2>&1 || { cat "$N/out"; fail "ca init with 16 bytes"; }
grep -q 'warning' "$N/out" && { cat "$N/out"; fail "ca init warned about an encrypted key"; }
it=$(iterations "$N/state/ca/dbca.key")
[ "$it" -ge 600000 ] || fail "new key: $it PBKDF2 iterations (expected >= 600000)"
openssl asn1parse -in "$N/state/ca/dbca.key" | grep -q ':hmacWithSHA256$' || fail "new key: PRF is not HMAC-SHA256"
openssl pkey -in "$N/state/ca/dbca.key" -passin "file:$N/pass" -noout || fail "openssl cannot open the new key"
pass "a new key: PBKDF2, $it iterations, hmacWithSHA256; openssl opens it"

# ---- 2. a store of f841af3 ----------------------------------------------------
BASE=$("$DBPKI_ROOT/tests/lab/baseline.sh" f841af3) || fail "tests/lab/baseline.sh could not build f841af3"
lab_up $NET primary,client
STATE=$LAB/state
# The lab keeps its CA key in clear on purpose (plaintext_key = accepted):
# this test wants the warnings.
sed -i '/^plaintext_key = /d' "$INI"
sed -i "s|^\\[ca\\]\$|[ca]\\npassphrase_file = $LAB/pass|" "$INI"
grep -q "^passphrase_file = $LAB/pass" "$INI" || fail "could not set passphrase_file in $INI"
printf '%s\n' 'short' >"$LAB/pass"
chmod 600 "$LAB/pass"
"$BASE" bootstrap -c "$INI" >"$LAB/boot.txt" 2>&1 || { tail -n 30 "$LAB/boot.txt"; fail "f841af3 bootstrap"; }
KEY=$STATE/ca/dbca.key
it=$(iterations "$KEY")
[ "$it" = 2048 ] || fail "f841af3's key has $it iterations (expected 2048: is this the old release?)"
pass "f841af3 bootstrapped with a 5-byte passphrase (2048 iterations)"

sum() { sha256sum "$KEY" | cut -d' ' -f1; }
k0=$(sum)
rc=0
out=$("$DBPKI" check -c "$INI" 2>&1) || rc=$?
[ "$rc" = 1 ] || { echo "$out"; fail "check on the old key exited $rc (expected 1, WARNING)"; }
echo "$out" | grep -q 'DBPKI WARNING - .*weak KDF (PBKDF2, 2048 iterations); run: dbpki ca passwd -c' ||
	{ echo "$out"; fail "check does not name the weak KDF and its fix"; }
pass "check: WARNING, weak KDF, names dbpki ca passwd"

old_serial=$(awk -F'\t' '$2=="active" && $3=="server" {print $1}' "$STATE/index.tsv")
"$DBPKI" renew --force -c "$INI" >"$LAB/renew1.txt" 2>&1 || { tail -n 30 "$LAB/renew1.txt"; fail "renew with the old key"; }
new_serial=$(awk -F'\t' '$2=="active" && $3=="server" {print $1}' "$STATE/index.tsv")
[ -n "$new_serial" ] && [ "$new_serial" != "$old_serial" ] || fail "renew issued no new server certificate"
[ "$(sum)" = "$k0" ] || fail "renew changed the CA key file"
pass "the new dbpki renews with the old key and leaves it alone"

# ca passwd: each refusal changes nothing.
rc=0
out=$("$DBPKI" ca passwd -c "$INI" 2>&1) || rc=$?
[ "$rc" = 2 ] || { echo "$out"; fail "ca passwd with a 5-byte passphrase exited $rc (expected 2)"; }
echo "$out" | grep -q 'has 5 bytes.*--old-passphrase-file' || { echo "$out"; fail "ca passwd: no way forward named"; }
[ "$(sum)" = "$k0" ] || fail "a refused ca passwd changed the key"
cp -p "$LAB/pass" "$LAB/old.pass"
printf '%s\n' 'not-the-old-one' >"$LAB/wrong.pass"
chmod 600 "$LAB/wrong.pass"
head -c 24 /dev/urandom | base64 >"$LAB/pass"
rc=0
out=$("$DBPKI" ca passwd -c "$INI" --old-passphrase-file "$LAB/wrong.pass" 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "ca passwd with a wrong old passphrase succeeded"
echo "$out" | grep -q 'wrong passphrase' || { echo "$out"; fail "wrong old passphrase: no clear message"; }
[ "$(sum)" = "$k0" ] || fail "a wrong old passphrase changed the key"
(
	exec 9>>"$STATE/lock"
	flock -w 30 9 || exit 1
	exec sleep 600
) &
holder=$!
for _ in $(seq 1 50); do
	flock -n "$STATE/lock" true 2>/dev/null || break
	sleep 0.1
done
rc=0
out=$("$DBPKI" ca passwd -c "$INI" --old-passphrase-file "$LAB/old.pass" 2>&1) || rc=$?
[ "$rc" = 5 ] || { echo "$out"; fail "ca passwd under a held lock exited $rc (expected 5)"; }
[ "$(sum)" = "$k0" ] || fail "ca passwd under a held lock changed the key"
kill "$holder"
wait "$holder" 2>/dev/null || true
holder=
pass "ca passwd refuses a short new passphrase, a wrong old one, a held lock; nothing changed"

"$DBPKI" ca passwd -c "$INI" --old-passphrase-file "$LAB/old.pass" >"$LAB/passwd.txt" 2>&1 ||
	{ cat "$LAB/passwd.txt"; fail "ca passwd"; }
grep -q "re-encrypted $KEY" "$LAB/passwd.txt" || { cat "$LAB/passwd.txt"; fail "ca passwd did not say what it did"; }
it=$(iterations "$KEY")
[ "$it" -ge 600000 ] || fail "after ca passwd: $it iterations"
[ "$(stat -c %a "$KEY")" = 600 ] || fail "after ca passwd the key is mode $(stat -c %a "$KEY")"
openssl pkey -in "$KEY" -passin "file:$LAB/pass" -noout || fail "the new passphrase does not open the key"
openssl pkey -in "$KEY" -passin "file:$LAB/old.pass" -noout 2>/dev/null && fail "the old passphrase still opens the key"
rc=0
out=$("$DBPKI" check -c "$INI" 2>&1) || rc=$?
[ "$rc" = 0 ] || { echo "$out"; fail "check after ca passwd exited $rc (expected 0)"; }
"$DBPKI" renew --force -c "$INI" >"$LAB/renew2.txt" 2>&1 || { tail -n 30 "$LAB/renew2.txt"; fail "renew after ca passwd"; }
pass "ca passwd: $it iterations, new passphrase only, check OK, renew goes on"

# ---- 3. a key in clear --------------------------------------------------------
openssl pkey -in "$KEY" -passin "file:$LAB/pass" -out "$LAB/clear.key"
cat "$LAB/clear.key" >"$KEY"
sed -i "/^passphrase_file = /d" "$INI"
rc=0
out=$("$DBPKI" check -c "$INI" 2>&1) || rc=$?
[ "$rc" = 1 ] || { echo "$out"; fail "check on a key in clear exited $rc (expected 1)"; }
echo "$out" | grep -q 'stored in clear.*plaintext_key = accepted' || { echo "$out"; fail "check: no 'stored in clear'"; }
"$DBPKI" status -c "$INI" >/dev/null 2>"$LAB/status.err" || true
grep -q 'warning: the CA key .* is stored in clear' "$LAB/status.err" || { cat "$LAB/status.err"; fail "status does not warn"; }
sed -i 's|^\[ca\]$|[ca]\nplaintext_key = accepted|' "$INI"
grep -q '^plaintext_key = accepted' "$INI" || fail "could not set plaintext_key"
rc=0
out=$("$DBPKI" check -c "$INI" 2>&1) || rc=$?
[ "$rc" = 0 ] || { echo "$out"; fail "check with plaintext_key = accepted exited $rc"; }
pass "a key in clear: check WARNING and status warn; plaintext_key = accepted: OK"
