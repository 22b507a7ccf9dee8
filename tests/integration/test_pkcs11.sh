#!/usr/bin/env bash
# Issue 18 (part 2): the CA key on a PKCS#11 token (SoftHSM2, its token
# directory in the lab, outside state_dir), on the loopback lab
# (127.0.101.x: primary, replica, client).  Most dbpki runs go through
# OpenSC's pkcs11-spy (the inventory's module-path is the spy, PKCS11SPY the
# SoftHSM module), which logs each call: C_Login is counted per run.  The
# spy itself leaks a few bytes (its log FILE...), so those runs have
# LeakSanitizer off; the runs marked "direct" load SoftHSM itself, with
# leak checking on (the ASan build of make check).
#  1. bootstrap: ca init made the key on the token -- pkcs11-tool lists it
#     sensitive, never extractable, local (generated there) -- and the store
#     keeps only its URI (ca/dbca.p11);
#  2. renew --force, all three stages of ca rollover twice (the new key at
#     --new-key URI; then on the same token, the label with the time), then issue-client + revoke with
#     a CRL that verifies against the new dbca: each run at most one
#     C_Login;
#  3. no CA private key anywhere under the lab: every PEM private key file
#     is compared with the CA certificates' public keys;
#  4. a wrong PIN: renew fails saying the login was refused, after exactly
#     one C_Login, and the store is unchanged.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.101
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so
SPY=/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so
for f in "$SOFTHSM" "$SPY"; do
	[ -f "$f" ] || fail "$f missing: install softhsm2 and opensc (make deps)"
done
command -v pkcs11-tool >/dev/null || fail "pkcs11-tool missing: install opensc (make deps)"
lab_dir

lab_up $NET primary,replica,client
ST=$LAB/state
HSM=$LAB/softhsm
mkdir -m 700 "$HSM" "$HSM/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$HSM" >"$HSM/softhsm2.conf"
export SOFTHSM2_CONF=$HSM/softhsm2.conf
export PKCS11SPY=$SOFTHSM
PIN=$(head -c 9 /dev/urandom | od -An -tu1 | tr -d ' \n' | cut -c1-8)
softhsm2-util --init-token --free --label dbpki --so-pin 87654321 --pin "$PIN" >/dev/null ||
	fail "softhsm2-util could not make the token"
printf '%s\n' "$PIN" >"$LAB/pin"
chmod 600 "$LAB/pin"
sed -i '/^\[ca\]$/,/^\[/{/^key *=/d}' "$INI"
sed -i "s|^\\[ca\\]\$|[ca]\\nkey = pkcs11:token=dbpki;object=dbca?module-path=$SPY\\npin_file = $LAB/pin|" "$INI"
grep -q '^key = pkcs11:' "$INI" || fail "could not set [ca] key in $INI"
module() { # path: the inventory's module-path
	sed -i "s|^\\(key = pkcs11:.*?module-path=\\).*|\\1$1|" "$INI"
	grep -q "^key = pkcs11:.*?module-path=$1\$" "$INI" || fail "could not set module-path $1"
}

# run NAME ARGS...: dbpki with its own spy log; $LAB/NAME.out, .rc, .logins
run() {
	local name=$1 rc=0
	shift
	PKCS11SPY_OUTPUT=$LAB/$name.spy ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		"$DBPKI" "$@" >"$LAB/$name.out" 2>&1 || rc=$?
	echo "$rc" >"$LAB/$name.rc"
	if [ -f "$LAB/$name.spy" ]; then
		grep -c '^[0-9]*: C_Login$' "$LAB/$name.spy" >"$LAB/$name.logins" || true
	else
		echo 0 >"$LAB/$name.logins"
	fi
}
ok_run() { # name args...
	local name=$1
	run "$@"
	[ "$(cat "$LAB/$name.rc")" = 0 ] || { tail -n 30 "$LAB/$name.out"; fail "$name exited $(cat "$LAB/$name.rc")"; }
	[ "$(cat "$LAB/$name.logins")" -le 1 ] || fail "$name: $(cat "$LAB/$name.logins") C_Login calls (at most one per run)"
}

# ---- 1. bootstrap -----------------------------------------------------------------
ok_run bootstrap bootstrap -c "$INI"
[ "$(cat "$LAB/bootstrap.logins")" = 1 ] || fail "bootstrap: $(cat "$LAB/bootstrap.logins") C_Login calls (expected 1)"
[ ! -e "$ST/ca/dbca.key" ] || fail "a CA key file exists: $ST/ca/dbca.key"
grep -q "^pkcs11:token=dbpki;object=dbca?module-path=" "$ST/ca/dbca.p11" || fail "ca/dbca.p11 does not hold the URI"
objs=$(pkcs11-tool --module "$SOFTHSM" --token-label dbpki --login --pin "$PIN" --list-objects 2>/dev/null)
prv=$(echo "$objs" | awk '/^Private Key Object/ { p = 1 } p && /label:/ && $2 == "dbca" { l = 1 } p && l && /Access:/ { print; exit }')
for want in sensitive "always sensitive" "never extractable" local; do
	echo "$prv" | grep -q "$want" || { echo "$objs"; fail "the token's dbca key is not '$want' ($prv)"; }
done
pass "bootstrap: one C_Login; the key on the token ($prv), only its URI in the store"

# ---- 2. everything that signs ---------------------------------------------------------
srv_serial() { awk -F'\t' '$2=="active" && $3=="server" && $4=="node1" {print $1}' "$ST/index.tsv"; }
s0=$(srv_serial)
module "$SOFTHSM"
"$DBPKI" renew --force -c "$INI" >"$LAB/renew.out" 2>&1 || { tail -n 30 "$LAB/renew.out"; fail "renew --force (direct)"; }
module "$SPY"
[ "$(srv_serial)" != "$s0" ] || fail "renew --force issued no new server certificate for node1"
openssl verify -CAfile "$ST/ca/dbca.crt" "$ST/issued/$(srv_serial).crt" >/dev/null || fail "the renewed certificate does not verify"
ok_run renew1 renew --force -c "$INI"
pass "renew --force with the token key (SoftHSM directly, then through the spy)"

# A first rollover to the key named by --new-key, a second one to a key
# labelled from [ca] key's label and the time.
ok_run nk1 ca rollover -c "$INI" --stage 1 --new-key "pkcs11:token=dbpki;object=dbca-next?module-path=$SPY"
ok_run nk2 ca rollover -c "$INI" --stage 2
ok_run nk3 ca rollover -c "$INI" --stage 3
grep -q '^pkcs11:token=dbpki;object=dbca-next?' "$ST/ca/dbca.p11" ||
	fail "after a rollover with --new-key the store names $(cat "$ST/ca/dbca.p11")"
pass "ca rollover --new-key: the new CA's key is dbca-next on the token"
old_uri=$(cat "$ST/ca/dbca.p11")
for stage in 1 2 3; do
	ok_run "stage$stage" ca rollover -c "$INI" --stage "$stage"
done
new_uri=$(cat "$ST/ca/dbca.p11")
[ "$new_uri" != "$old_uri" ] || fail "after stage 3 the store still names the old key"
echo "$new_uri" | grep -q '^pkcs11:token=dbpki;object=dbca-[0-9]\{8\}T[0-9]\{6\}Z?module-path=' ||
	fail "the new key's URI is not the label with the time: $new_uri"
ls "$ST"/ca/archive/*/dbca.p11 >/dev/null 2>&1 || fail "stage 3 did not archive the old key's URI"
n=$(pkcs11-tool --module "$SOFTHSM" --token-label dbpki --login --pin "$PIN" --list-objects --type privkey 2>/dev/null |
	grep -c '^Private Key Object')
[ "$n" = 3 ] || fail "the token holds $n private keys after two rollovers (expected 3)"
module "$SOFTHSM"
"$DBPKI" renew --force -c "$INI" >"$LAB/renew2.out" 2>&1 || { tail -n 30 "$LAB/renew2.out"; fail "renew after the rollover (direct)"; }
module "$SPY"
openssl verify -CAfile "$ST/ca/dbca.crt" "$ST/issued/$(srv_serial).crt" >/dev/null ||
	fail "after the rollover a renewed certificate does not verify against the new CA"
pass "ca rollover stages 1-3 on the token (new key $(echo "$new_uri" | sed 's/.*object=//; s/?.*//')); renew after it"

# After the rollover: ca rollover refuses a store with a CRL (docs/ca-rollover.md).
ok_run app issue-client -c "$INI" app1 --out "$LAB/app1"
app=$(awk -F'\t' '$2=="active" && $3=="app" && $4=="app1" {print $1}' "$ST/index.tsv")
[ -n "$app" ] || fail "issue-client recorded no app1 certificate"
ok_run revoke revoke -c "$INI" "$app" --reason keyCompromise
openssl crl -in "$ST/crl/dbca.crl" -CAfile "$ST/ca/dbca.crt" -noout 2>&1 | grep -q 'verify OK' ||
	fail "the CRL does not verify against dbca"
openssl crl -in "$ST/crl/dbca.crl" -noout -text | grep -qi "serial number: $app" ||
	fail "the CRL does not list $app"
pass "issue-client and revoke: the CRL is signed on the token and lists $app"

# ---- 3. no CA private key in any file ------------------------------------------------
: >"$LAB/ca-pubs"
for crt in "$ST/ca/dbca.crt" "$ST"/ca/archive/*/dbca.crt; do
	openssl x509 -in "$crt" -pubkey -noout >>"$LAB/ca-pubs"
done
[ "$(grep -c 'BEGIN PUBLIC KEY' "$LAB/ca-pubs")" = 3 ] || fail "expected three CA public keys (two archived, the current)"
nkeys=0
while IFS= read -r -d '' f; do
	grep -Eq -- '-----BEGIN (EC |RSA )?PRIVATE KEY-----' "$f" 2>/dev/null || continue
	nkeys=$((nkeys + 1))
	pub=$(openssl pkey -in "$f" -pubout 2>/dev/null) || fail "$f: a private key openssl cannot read"
	if grep -qF "$(echo "$pub" | sed -n 2p)" "$LAB/ca-pubs"; then
		fail "$f holds a CA private key"
	fi
done < <(find "$LAB" -path "$HSM" -prune -o -type f -size -64k -print0)
[ "$nkeys" -ge 3 ] || fail "found only $nkeys private key files under the lab: the search is broken"
pass "none of the $nkeys private key files under the lab is a CA key"

# ---- 4. a wrong PIN ---------------------------------------------------------------------
snap() { find "$ST" -path "$ST/lock" -prune -o -printf '%p %s %T@\n' | sort; }
before=$(snap)
printf '%s\n' "0${PIN}" >"$LAB/pin"
run wrongpin renew --force -c "$INI"
[ "$(cat "$LAB/wrongpin.rc")" != 0 ] || fail "renew with a wrong PIN succeeded"
grep -q "token 'dbpki': login refused (PIN incorrect); nothing was changed" "$LAB/wrongpin.out" ||
	{ cat "$LAB/wrongpin.out"; fail "a wrong PIN: no clear message"; }
[ "$(cat "$LAB/wrongpin.logins")" = 1 ] || fail "a wrong PIN: $(cat "$LAB/wrongpin.logins") C_Login calls (expected exactly 1)"
[ "$(snap)" = "$before" ] || { diff <(echo "$before") <(snap) || true; fail "a wrong PIN changed the store"; }
pass "a wrong PIN: refused after one C_Login, clear message, store unchanged"
