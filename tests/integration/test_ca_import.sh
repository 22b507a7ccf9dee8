#!/usr/bin/env bash
# Issue 6: the root-certificate exchange.  `dbpki ca import` gets one file
# per rule, made with the openssl CLI, each breaking exactly that rule: every
# one must be refused with exit 2, the rule named, and the store unchanged
# (listing and checksums compared).  A valid root and a valid 3-level chain
# are accepted; importing again backs the previous trust up.  Without dbca
# (issue 12): import makes the store and no CA key; export exits 4.
# `ca export`: its refusals, and success writes exactly the dbca
# certificate.
set -euo pipefail
: "${DBPKI:?DBPKI must point to the dbpki binary}"
dir=$(mktemp -d /tmp/dbpki-it-import-XXXXXX)
trap 'rm -rf "$dir"' EXIT
chmod 700 "$dir"
state=$dir/state
inv=$dir/cluster.ini
G=$dir/gen # what the openssl CLI makes
mkdir -m 700 "$G" "$G/ca"
: >"$G/ca/index.txt"
echo 01 >"$G/ca/serial"

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

cat >"$inv" <<EOF
[cluster]
name = it-import
state_dir = $state

[node db1]
host = db1.import.test
address = 127.0.64.11
role = primary
EOF
chmod 600 "$inv"

cnf=$G/openssl.cnf
cat >"$cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_notca]
basicConstraints = critical,CA:FALSE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_nosign]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,cRLSign
subjectKeyIdentifier = hash
[ca]
default_ca = testca
[testca]
database = $G/ca/index.txt
new_certs_dir = $G/ca
serial = $G/ca/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
[policy_any]
commonName = supplied
EOF

newkey() { # file ec:CURVE|rsa:BITS
	case $2 in
	ec:*) openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:${2#ec:}" -out "$1" ;;
	rsa:*) openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${2#rsa:}" -out "$1" ;;
	esac 2>/dev/null
}
selfsigned() { # name key-spec extensions [digest] [cn]
	newkey "$G/$1.key" "$2"
	openssl req -x509 -config "$cnf" -extensions "$3" -key "$G/$1.key" \
		-subj "/CN=${5:-$1}" -days 30 "-${4:-sha256}" -out "$G/$1.pem"
}
signed() { # name key-spec extensions parent [digest]
	newkey "$G/$1.key" "$2"
	openssl req -new -config "$cnf" -key "$G/$1.key" -subj "/CN=$1" -out "$G/$1.csr"
	openssl x509 -req -in "$G/$1.csr" -CA "$G/$4.pem" -CAkey "$G/$4.key" \
		-set_serial "0x$(openssl rand -hex 12)" -days 30 "-${5:-sha256}" \
		-extfile "$cnf" -extensions "$3" -out "$G/$1.pem" 2>/dev/null
}
dated() { # name start end   (self-signed CA, made with `openssl ca`)
	newkey "$G/$1.key" ec:P-256
	openssl req -new -config "$cnf" -key "$G/$1.key" -subj "/CN=$1" -out "$G/$1.csr"
	openssl ca -batch -config "$cnf" -selfsign -keyfile "$G/$1.key" -in "$G/$1.csr" \
		-startdate "$2" -enddate "$3" -extensions v3_ca -notext -out "$G/$1.pem" 2>/dev/null
}
listing() { # everything about the store that a change would show (the
	# lock file is touched by every writer, refused or not)
	find "$state" ! -path "$state/lock" -printf '%P %y %m %s %T@\n' | sort
	find "$state" -type f ! -path "$state/lock" -exec sha256sum {} + | sort
}
import() { "$DBPKI" ca import -c "$inv" --cert "$@"; }

# ---- no dbca yet: export exits 4 with the hint ----------------------------
selfsigned good ec:P-384 v3_ca sha384 "Corp Root CA"
set +e
out=$("$DBPKI" ca export -c "$inv" --out "$dir/x.pem" 2>&1); rc=$?
set -e
[ $rc -eq 4 ] || fail "export without dbca: exit $rc, want 4: $out"
grep -qF "dbpki ca init -c $inv" <<<"$out" || fail "no 'ca init' hint: $out"
[ ! -e "$dir/x.pem" ] || fail "export without dbca wrote a file"
pass "without dbca: export exits 4 with the 'dbpki ca init' hint"
# (import without dbca makes an import-only store: test_cert_rules)

"$DBPKI" ca init -c "$inv" 2>/dev/null
dbca_sum=$(sha256sum <"$state/ca/dbca.crt")

# ---- one file per rule ---------------------------------------------------
refused() { # rule path label
	local out rc
	set +e
	out=$(import "$2" 2>&1)
	rc=$?
	set -e
	[ $rc -eq 2 ] || fail "$3: exit $rc, want 2: $out"
	grep -qF "(rule: $1)" <<<"$out" || fail "$3: the reason does not name rule '$1': $out"
	[ "$(listing)" = "$before" ] || fail "$3: the store changed"
	echo "ok: refused $3: ${out:0:240}"
}
before=$(listing)

openssl x509 -in "$G/good.pem" -outform der -out "$G/good.der"
refused PEM "$G/good.der" "a DER (non-PEM) file"

newkey "$G/v1.key" ec:P-256
openssl req -new -config "$cnf" -key "$G/v1.key" -subj /CN=v1root -out "$G/v1.csr"
openssl x509 -req -in "$G/v1.csr" -signkey "$G/v1.key" -days 30 -sha256 -out "$G/v1.pem" 2>/dev/null
openssl x509 -in "$G/v1.pem" -noout -text | grep -q 'Version: 1 ' || fail "openssl made no v1 certificate"
refused "X.509 v3" "$G/v1.pem" "an X.509 v1 certificate"

# the intermediate is signed by an impostor root with the root's name
selfsigned realroot ec:P-256 v3_ca sha256 "Corp Root"
selfsigned evilroot ec:P-256 v3_ca sha256 "Corp Root"
signed badmid ec:P-256 v3_ca evilroot
cat "$G/badmid.pem" "$G/realroot.pem" >"$G/badsig-chain.pem"
refused signature "$G/badsig-chain.pem" "a chain whose intermediate's signature does not verify"

dated expired 20200101000000Z 20210101000000Z
refused validity "$G/expired.pem" "an expired root"
dated future "$(date -u -d '+10 days' +%Y%m%d%H%M%SZ)" "$(date -u -d '+40 days' +%Y%m%d%H%M%SZ)"
out=$(import "$G/future.pem" 2>&1 || true)
grep -q 'not yet valid' <<<"$out" || fail "not-yet-valid reason: $out"
refused validity "$G/future.pem" "a root not yet valid"

selfsigned notca ec:P-256 v3_notca
refused "basicConstraints CA:TRUE" "$G/notca.pem" "a CA:FALSE root"
selfsigned nosign ec:P-256 v3_nosign
refused "keyUsage keyCertSign" "$G/nosign.pem" "a root without keyCertSign"
selfsigned rsa2048 rsa:2048 v3_ca
refused "key strength" "$G/rsa2048.pem" "an RSA 2048 root"
if selfsigned p224 ec:P-224 v3_ca 2>/dev/null; then
	refused "key strength" "$G/p224.pem" "an EC P-224 root"
else
	echo "skip: this openssl cannot make an EC P-224 key"
fi
selfsigned sha1 rsa:3072 v3_ca sha1
openssl x509 -in "$G/sha1.pem" -noout -text | grep -q sha1WithRSAEncryption || fail "no SHA-1 signature made"
refused "signature digest" "$G/sha1.pem" "a root signed with SHA-1"

selfsigned L0 ec:P-256 v3_ca
chain=$G/L0.pem
for i in $(seq 1 10); do
	signed "L$i" ec:P-256 v3_ca "L$((i - 1))"
	chain="$G/L$i.pem $chain"
done
# shellcheck disable=SC2086
cat $chain >"$G/chain11.pem"
[ "$(grep -c 'BEGIN CERTIFICATE' "$G/chain11.pem")" = 11 ] || fail "the 11-level chain"
refused "chain length" "$G/chain11.pem" "a chain of 11 levels"

ln -s "$G/good.pem" "$G/link.pem"
refused "no symbolic link" "$G/link.pem" "a symlink to a valid root"
mkdir -m 700 "$G/realdir"
cp "$G/good.pem" "$G/realdir/root.pem"
ln -s "$G/realdir" "$G/linkdir"
refused "no symbolic link" "$G/linkdir/root.pem" "a path through a symlinked directory"

out=$(cd "$G" && { "$DBPKI" ca import -c "$inv" --cert good.pem 2>&1 || echo "rc=$?"; })
grep -q 'rc=2' <<<"$out" && grep -qF '(rule: absolute path)' <<<"$out" || fail "relative path: $out"
[ "$(listing)" = "$before" ] || fail "relative path: the store changed"
pass "refused a relative path: ${out:0:160}"

cp "$G/good.pem" "$G/gw.pem"
chmod 664 "$G/gw.pem"
refused "not writable by group or others" "$G/gw.pem" "a group-writable file"

# a valid root, padded to the limit with text before the block (allowed:
# `openssl x509 -text` writes it; after the block it is refused)
pad() { # file size
	head -c $(($2 - $(stat -c %s "$G/good.pem") - 1)) /dev/zero | tr '\0' 'x' >"$1"
	echo >>"$1"
	cat "$G/good.pem" >>"$1"
	[ "$(stat -c %s "$1")" = "$2" ] || fail "padding $1"
}
pad "$G/big.pem" $((1024 * 1024 + 1))
refused size "$G/big.pem" "a file of 1 MiB + 1 byte"

deep=$G/deep
for i in $(seq 1 100); do deep=$deep/d; done
mkdir -p "$deep"
cp "$G/good.pem" "$deep/root.pem"
refused "path depth" "$deep/root.pem" "a path of 100+ levels"

# longer than PATH_MAX: built one directory at a time, relative to the last
long=$G/long
mkdir "$long"
comp=$(printf 'l%.0s' $(seq 1 200))
(
	cd "$long"
	for i in $(seq 1 21); do mkdir "$comp" && cd "$comp"; done
	cp "$G/good.pem" root.pem
)
longpath=$long
for i in $(seq 1 21); do longpath=$longpath/$comp; done
longpath=$longpath/root.pem
[ ${#longpath} -gt 4096 ] || fail "the long path is only ${#longpath} characters"
refused "path length" "$longpath" "a path of ${#longpath} characters"

# ---- valid: a root, then a 3-level chain; re-import backs up ---------------
pad "$G/exact.pem" $((1024 * 1024))
import "$G/exact.pem" 2>"$G/import1.log" || { cat "$G/import1.log"; fail "a valid root (1 MiB file) refused"; }
diff <(openssl x509 -in "$G/good.pem") "$state/ca/trusted.pem" >/dev/null ||
	fail "trusted.pem is not the imported root"
[ "$(stat -c %a "$state/ca/trusted.pem")" = 644 ] || fail "mode of trusted.pem"
[ ! -e "$state/ca/backup" ] || fail "a first import made a backup of nothing"
grep -q 'trusted the certificate (CN=Corp Root CA)' "$G/import1.log" || fail "import report: $(cat "$G/import1.log")"
pass "a valid root (P-384, in a file of exactly 1 MiB) is accepted"

import "$G/good.pem" 2>"$G/import2.log"
grep -q 'nothing changed' "$G/import2.log" || fail "same root again: $(cat "$G/import2.log")"
[ ! -e "$state/ca/backup" ] || fail "the same root again made a backup"

selfsigned corproot rsa:3072 v3_ca sha256 "Corp Root 2"
signed corppolicy ec:P-384 v3_ca corproot sha384
signed corpissuing ec:P-256 v3_ca corppolicy sha256
cat "$G/corpissuing.pem" "$G/corppolicy.pem" "$G/corproot.pem" >"$G/chain3.pem"
import "$G/chain3.pem" 2>"$G/import3.log" || { cat "$G/import3.log"; fail "a valid 3-level chain refused"; }
[ "$(grep -c 'BEGIN CERTIFICATE' "$state/ca/trusted.pem")" = 3 ] || fail "trusted.pem should hold 3 certificates"
openssl verify -CAfile "$G/corproot.pem" -untrusted "$G/corppolicy.pem" "$G/corpissuing.pem" >/dev/null ||
	fail "openssl does not verify the chain"
b1=$(find "$state/ca/backup" -name trusted.pem)
[ "$(wc -l <<<"$b1")" = 1 ] || fail "one backup expected: $b1"
diff <(openssl x509 -in "$G/good.pem") "$b1" >/dev/null || fail "the backup is not the previous root"
grep -qF "backed up the previous trust to $(dirname "$b1")" "$G/import3.log" || fail "no backup message"
pass "a valid 3-level chain is accepted; the previous root was backed up to $(dirname "$b1")"

cp "$state/ca/trusted.pem" "$G/trusted-chain.pem"
import "$G/good.pem" 2>/dev/null
[ "$(find "$state/ca/backup" -name trusted.pem | wc -l)" = 2 ] || fail "two backups expected"
b2=$(find "$state/ca/backup" -name trusted.pem ! -path "$b1")
cmp -s "$b2" "$G/trusted-chain.pem" || fail "the second backup is not the chain"
diff <(openssl x509 -in "$G/good.pem") "$b1" >/dev/null || fail "the first backup changed"
[ "$(sha256sum <"$state/ca/dbca.crt")" = "$dbca_sum" ] || fail "dbca.crt changed"
pass "re-import keeps every earlier trust in ca/backup/; dbca.crt untouched"

# ---- export ---------------------------------------------------------------
exp_refused() { # rule path label
	local out rc
	set +e
	out=$("$DBPKI" ca export -c "$inv" --out "$2" 2>&1)
	rc=$?
	set -e
	[ $rc -eq 2 ] || fail "export $3: exit $rc, want 2: $out"
	grep -qF "(rule: $1)" <<<"$out" || fail "export $3: reason '$1' missing: $out"
	echo "ok: export refused $3: ${out:0:200}"
}
mkdir -m 700 "$dir/out"
out=$(cd "$dir/out" && { "$DBPKI" ca export -c "$inv" --out dbca.pem 2>&1 || echo "rc=$?"; })
grep -q 'rc=2' <<<"$out" && grep -qF '(rule: absolute path)' <<<"$out" || fail "export relative: $out"
[ ! -e "$dir/out/dbca.pem" ] || fail "export to a relative path wrote a file"
echo keep >"$dir/out/existing.pem"
exp_refused "must not exist" "$dir/out/existing.pem" "an existing file"
[ "$(cat "$dir/out/existing.pem")" = keep ] || fail "export touched an existing file"
ln -s "$dir/out" "$dir/outlink"
exp_refused "no symbolic link" "$dir/outlink/dbca.pem" "a symlinked directory"
mkdir "$dir/gwdir"
chmod 775 "$dir/gwdir"
exp_refused "directory not writable by group or others" "$dir/gwdir/dbca.pem" "a group-writable directory"
[ -z "$(ls -A "$dir/gwdir")" ] || fail "export wrote into a group-writable directory"
"$DBPKI" ca export -c "$inv" --out "$dir/out/dbca.pem" 2>/dev/null
cmp "$dir/out/dbca.pem" <(openssl x509 -in "$state/ca/dbca.crt") || fail "export is not the dbca certificate"
[ "$(stat -c %a "$dir/out/dbca.pem")" = 644 ] || fail "mode of the exported file"
[ "$(ls -A "$dir/out" | wc -l)" = 2 ] || fail "export left a temporary file: $(ls -A "$dir/out")"
pass "export writes exactly the dbca certificate, 0644 (after ca import too)"

for a in import export; do
	set +e
	"$DBPKI" ca "$a" -c "$inv" >/dev/null 2>&1
	rc=$?
	set -e
	[ $rc -eq 2 ] || fail "ca $a without --cert/--out: exit $rc"
done
"$DBPKI" ca --help | grep -q 'ca import' || fail "ca --help"
echo "test_ca_import: ok"
