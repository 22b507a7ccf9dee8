#!/usr/bin/env bash
# The issued store, checked with the openssl CLI only (independently of
# dbpki): chains, extensions, SANs, keys, file modes; plus the exit codes of
# issue without a CA, a second issue (same serials) and a second ca init.
set -eu
DBPKI=${DBPKI:?DBPKI must point to the dbpki binary}
dir=$(mktemp -d /tmp/dbpki-it-pki-XXXXXX)
trap 'rm -rf "$dir"' EXIT
state=$dir/state
inv=$dir/cluster.ini

fail() { echo "FAIL: $*" >&2; exit 1; }

cat >"$inv" <<EOF
[cluster]
name = it-pki
platform = postgres
state_dir = $state
renew_before = 30d

[ca]
common_name = it-pki dbca
key = ec:P-384
validity = 3650d

[server]
key = rsa:3072
validity = 397d
mode = per-node
extra_san = db.example.com, 10.0.0.100

[client]
common_name = postgres
key = ec:P-256
validity = 397d

[node db1]
host = db1.example.com
address = 10.0.0.11
role = primary

[node db2]
host = db2.example.com
address = 10.0.0.12
role = replica

[node db3]
host = db3.example.com
address = 10.0.0.13
role = replica

[node app1]
host = app1.example.com
address = 10.0.0.21
role = client
EOF
chmod 600 "$inv"

# issue without a CA: exit 4 and the way out
set +e
out=$("$DBPKI" issue -c "$inv" 2>&1); rc=$?
set -e
[ $rc -eq 4 ] || fail "issue without CA: exit $rc, want 4"
grep -q "dbpki ca init -c $inv" <<<"$out" || fail "no hint in: $out"

"$DBPKI" ca init -c "$inv"
set +e
out=$("$DBPKI" ca init -c "$inv" 2>&1); rc=$?
set -e
[ $rc -eq 1 ] || fail "second ca init: exit $rc, want 1"
grep -q "$state/ca/dbca.crt" <<<"$out" || fail "refusal does not say where: $out"

"$DBPKI" issue -c "$inv"
idx=$state/index.tsv
ca=$state/ca/dbca.crt

# The CA itself.
openssl x509 -in "$ca" -noout -text >"$dir/ca.txt"
grep -A1 'Basic Constraints: critical' "$dir/ca.txt" | grep -q 'CA:TRUE, pathlen:0' ||
	fail "CA basicConstraints"
grep -A1 'Key Usage: critical' "$dir/ca.txt" | grep -q 'Certificate Sign, CRL Sign' ||
	fail "CA keyUsage"
grep -q 'Subject Key Identifier' "$dir/ca.txt" || fail "CA SKI"
grep -q 'Authority Key Identifier' "$dir/ca.txt" || fail "CA AKI"
grep -q 'ecdsa-with-SHA384' "$dir/ca.txt" || fail "P-384 CA signs with SHA-384"
openssl verify -CAfile "$ca" "$ca" >/dev/null || fail "CA does not verify itself"

active() { # kind node -> serial
	awk -F'\t' -v k="$1" -v n="$2" '$2=="active" && $3==k && $4==n {s=$1} END {print s}' "$idx"
}

check_leaf() { # serial purpose
	local crt=$state/issued/$1.crt key=$state/keys/$1.key
	[ -f "$crt" ] || fail "missing $crt"
	openssl verify -CAfile "$ca" -purpose "$2" "$crt" >/dev/null || fail "verify $crt"
	openssl pkey -in "$key" -noout || fail "openssl pkey cannot read $key"
	[ "$(openssl x509 -in "$crt" -noout -pubkey | openssl sha256)" = \
		"$(openssl pkey -in "$key" -pubout | openssl sha256)" ] || fail "$key does not match $crt"
	[ "$(stat -c %a "$crt")" = 644 ] || fail "mode of $crt"
	[ "$(stat -c %a "$key")" = 600 ] || fail "mode of $key"
	openssl x509 -in "$crt" -noout -text >"$dir/leaf.txt"
	grep -A1 'Basic Constraints: critical' "$dir/leaf.txt" | grep -q 'CA:FALSE' ||
		fail "$crt basicConstraints"
	grep -q 'Authority Key Identifier' "$dir/leaf.txt" || fail "$crt AKI"
}

for n in 1 2 3; do
	s=$(active server db$n)
	[ -n "$s" ] || fail "no active server certificate for db$n"
	check_leaf "$s" sslserver
	t=$dir/leaf.txt
	grep -q "Subject: CN = db$n.example.com" "$t" || fail "db$n CN"
	grep -A1 'Subject Alternative Name' "$t" | grep -q \
		"DNS:db$n.example.com, IP Address:10.0.0.1$n, DNS:db.example.com, IP Address:10.0.0.100" ||
		fail "db$n SANs: $(grep -A1 'Subject Alternative Name' "$t")"
	grep -A1 'Key Usage: critical' "$t" | grep -q 'Digital Signature, Key Encipherment' ||
		fail "db$n RSA keyUsage"
	grep -A1 'Extended Key Usage' "$t" | grep -q 'TLS Web Server Authentication' ||
		fail "db$n EKU"
	grep -q 'Public-Key: (3072 bit)' "$t" || fail "db$n key size"
	openssl x509 -in "$state/issued/$s.crt" -noout -checkhost "db$n.example.com" |
		grep -q 'does match' || fail "db$n -checkhost"
	openssl x509 -in "$state/issued/$s.crt" -noout -checkip "10.0.0.1$n" |
		grep -q 'does match' || fail "db$n -checkip"
	serial=$(openssl x509 -in "$state/issued/$s.crt" -noout -serial | cut -d= -f2)
	[ "${serial,,}" = "$s" ] || fail "serial $serial is not the file name $s"
	[ ${#serial} -eq 40 ] || fail "serial $serial is not 20 bytes"
done
[ -z "$(active server app1)" ] || fail "a client node got a server certificate"

c=$(active client -)
[ -n "$c" ] || fail "no client certificate"
check_leaf "$c" sslclient
grep -q 'Subject: CN = postgres' "$dir/leaf.txt" || fail "client CN"
grep -A1 'Extended Key Usage' "$dir/leaf.txt" | grep -q 'TLS Web Client Authentication' ||
	fail "client EKU"
if openssl verify -CAfile "$ca" -purpose sslserver "$state/issued/$c.crt" >/dev/null 2>&1; then
	fail "the client certificate verifies as a server"
fi

# the store's group (dbpki-monitor) reads certificates, never keys
# (DESIGN.md, "Who runs dbpki")
for d in "$state" "$state/ca" "$state/issued"; do
	[ "$(stat -c %a "$d")" = 750 ] || fail "mode of $d"
done
[ "$(stat -c %a "$state/keys")" = 700 ] || fail "mode of $state/keys"
[ "$(stat -c %a "$state/ca/dbca.key")" = 600 ] || fail "mode of dbca.key"
openssl pkey -in "$state/ca/dbca.key" -noout || fail "openssl pkey cannot read dbca.key"

# A second issue keeps every serial.
before=$(grep -v '^#' "$idx")
"$DBPKI" issue -c "$inv" 2>"$dir/issue2.log"
[ "$before" = "$(grep -v '^#' "$idx")" ] || fail "second issue changed the index"
[ "$(grep -c '^kept' "$dir/issue2.log")" -eq 4 ] || fail "second issue did not keep 4"

# inspect / match / verify from the CLI
"$DBPKI" inspect --json "$state/issued/$(active server db1).crt" | grep -q '"days_left":39[67]' ||
	fail "inspect --json days_left"
"$DBPKI" match "$state/keys/$c.key" "$state/issued/$c.crt" 2>/dev/null || fail "match"
set +e
"$DBPKI" match "$state/keys/$c.key" "$state/issued/$(active server db1).crt" 2>/dev/null
[ $? -eq 1 ] || fail "match of a foreign key must exit 1"
"$DBPKI" verify "$state/issued/$(active server db1).crt" "$ca" --host db2.example.com 2>"$dir/v.log"
[ $? -eq 3 ] || fail "verify --host wrong name must exit 3"
set -e
grep -q 'name not in SAN' "$dir/v.log" || fail "verify reason"
"$DBPKI" verify "$state/issued/$(active server db1).crt" "$ca" --host 10.0.0.11 2>/dev/null ||
	fail "verify --host address"

# csr + sign round trip, checked by openssl
"$DBPKI" csr --cn ext.example.com --san ext.example.com,192.0.2.9 --key-type ec:P-256 \
	--out "$dir/ext" 2>/dev/null
[ "$(stat -c %a "$dir/ext.key")" = 600 ] || fail "csr key mode"
openssl req -in "$dir/ext.csr" -noout -verify 2>&1 | grep -q -i 'verify OK' || fail "csr does not verify"
"$DBPKI" sign -c "$inv" "$dir/ext.csr" --profile server --out "$dir/ext.crt" --days 30 >/dev/null 2>&1
openssl verify -CAfile "$ca" -purpose sslserver "$dir/ext.crt" >/dev/null || fail "signed cert"
openssl x509 -in "$dir/ext.crt" -noout -checkip 192.0.2.9 | grep -q 'does match' || fail "signed SAN"
grep -q "	signed	-	" "$idx" || fail "signed certificate not in the index"

for cmd in "ca" "issue" "csr" "sign" "inspect" "match" "verify"; do
	"$DBPKI" $cmd --help | grep -q usage || fail "$cmd --help"
done
echo "test_pki_openssl: ok"
