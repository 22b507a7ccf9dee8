#!/usr/bin/env bash
# Issue 6: a corporate CA instead of dbca.  A "corporate" root + issuing CA
# made with the openssl CLI is imported; `dbpki csr -c` writes a key and CSR
# per certificate the inventory needs; openssl signs every CSR (SANs copied
# from the CSR through an extfile); `dbpki issue --signed DIR` stores them.
# The store's leaves are then checked with openssl only (verify against the
# corporate chain, SANs, keys).  Refusals: a certificate from another CA, one
# for a key that is not ours, SANs missing a node address, one missing; each
# names the file and stores nothing.  Finally a lab cluster (primary +
# replica on 127.0.64.x) is bootstrapped with the corporate certificates and
# psql verify-full is checked against the corporate root alone; its store is
# import-only (issue 12): no `ca init`, and no CA key is ever made, not by
# bootstrap, status or renew.
set -euo pipefail
: "${DBPKI:?DBPKI must point to the dbpki binary}" "${DBPKI_ROOT:?}"
dir=$(mktemp -d /tmp/dbpki-it-csr-XXXXXX)
LAB=
cleanup() {
	[ -z "$LAB" ] || "$DBPKI_ROOT/tests/lab/lab.sh" down --dir "$LAB" >/dev/null 2>&1 || true
	[ -z "$LAB" ] || rm -rf "$LAB"
	rm -rf "$dir"
}
trap cleanup EXIT
chmod 700 "$dir"
state=$dir/state
inv=$dir/cluster.ini
G=$dir/corp
mkdir -m 700 "$G"

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

cat >"$inv" <<EOF
[cluster]
name = it-csr
state_dir = $state

[server]
key = ec:P-256
extra_san = db.csr.test, 127.0.64.100

[client]
common_name = postgres
key = ec:P-384

[node db1]
host = db1.csr.test
address = 127.0.64.11
role = primary

[node db2]
host = db2.csr.test
address = 127.0.64.12
role = replica

[node app1]
host = app1.csr.test
address = 127.0.64.21
role = client
EOF
chmod 600 "$inv"

# ---- the corporate CA (and an unrelated one), openssl only -----------------
cnf=$G/openssl.cnf
cat >"$cnf" <<'EOF'
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
EOF
mkca() { # name parent|- key-args...
	local name=$1 parent=$2
	shift 2
	openssl genpkey "$@" -out "$G/$name.key" 2>/dev/null
	if [ "$parent" = - ]; then
		openssl req -x509 -config "$cnf" -extensions v3_ca -key "$G/$name.key" \
			-subj "/O=Example Corp/CN=$name" -days 365 -sha256 -out "$G/$name.pem"
	else
		openssl req -new -config "$cnf" -key "$G/$name.key" -subj "/O=Example Corp/CN=$name" -out "$G/$name.csr"
		openssl x509 -req -in "$G/$name.csr" -CA "$G/$parent.pem" -CAkey "$G/$parent.key" \
			-set_serial "0x$(openssl rand -hex 12)" -days 365 -sha256 \
			-extfile "$cnf" -extensions v3_ca -out "$G/$name.pem" 2>/dev/null
	fi
}
mkca corp-root - -algorithm RSA -pkeyopt rsa_keygen_bits:3072
mkca corp-issuing corp-root -algorithm EC -pkeyopt ec_paramgen_curve:P-384
mkca other-root - -algorithm EC -pkeyopt ec_paramgen_curve:P-256
cat "$G/corp-issuing.pem" "$G/corp-root.pem" >"$G/corporate.pem"

# Sign CSR as the corporate issuing CA would: subject from the CSR, SANs
# copied from it through an extfile (or given), EKU by profile.
#   corp_sign CSR OUT [CA-name] [SAN-override]
corp_sign() {
	local csr=$1 out=$2 ca=${3:-corp-issuing} sans=${4:-} eku=serverAuth ext=$G/ext.$$
	case $(basename "$csr") in client*) eku=clientAuth ;; esac
	if [ -z "$sans" ]; then
		sans=$(openssl req -in "$csr" -noout -text | grep -A1 'Subject Alternative Name' |
			tail -n 1 | tr -d ' ' | sed 's/IPAddress:/IP:/g') || true
		grep -q 'Subject Alternative Name' < <(openssl req -in "$csr" -noout -text) || sans=
	fi
	{
		echo "basicConstraints = critical,CA:FALSE"
		echo "keyUsage = critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage = $eku"
		echo "authorityKeyIdentifier = keyid"
		[ -z "$sans" ] || echo "subjectAltName = $sans"
	} >"$ext"
	openssl x509 -req -in "$csr" -CA "$G/$ca.pem" -CAkey "$G/$ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days 90 -sha384 -extfile "$ext" -out "$out" 2>/dev/null
	rm -f "$ext"
}
listing() { # the lock file is touched by every writer, refused or not
	find "$state" ! -path "$state/lock" -printf '%P %y %m %s %T@\n' | sort
	find "$state" -type f ! -path "$state/lock" -exec sha256sum {} + | sort
}
active() { # kind node -> serial
	awk -F'\t' -v k="$1" -v n="$2" '$2=="active" && $3==k && $4==n {s=$1} END {print s}' "$state/index.tsv"
}

"$DBPKI" ca init -c "$inv" 2>/dev/null
"$DBPKI" ca import -c "$inv" --cert "$G/corporate.pem" 2>"$dir/import.log" ||
	{ cat "$dir/import.log"; fail "the corporate chain was refused"; }
grep -q 'dbca no longer signs' "$dir/import.log" || fail "import does not say dbca stops signing"
pass "corporate chain (RSA 3072 root, P-384 issuing CA) imported"

# After the import dbca signs nothing: issue refuses and points the way.
before=$(listing)
set +e
out=$("$DBPKI" issue -c "$inv" 2>&1); rc=$?
set -e
[ $rc -eq 2 ] || fail "issue after import with no leaves: exit $rc, want 2: $out"
grep -q -- '--signed DIR' <<<"$out" && grep -q 'dbpki csr -c' <<<"$out" || fail "issue does not point to csr/--signed: $out"
[ "$(listing)" = "$before" ] || fail "the refused issue changed the store"
[ -z "$(grep -v '^#' "$state/index.tsv" | awk -F'\t' '$3!="ca"')" ] || fail "dbca issued a leaf after the import"
pass "issue refuses to sign with dbca after the import and points to csr + --signed"

# ---- dbpki csr -c: exactly what issue would make -------------------------
"$DBPKI" csr -c "$inv" 2>/dev/null
C=$state/csr
[ "$(stat -c %a "$C")" = 700 ] || fail "mode of csr/"
[ "$(ls "$C" | sort | tr '\n' ' ')" = "client.csr client.key server-db1.csr server-db1.key server-db2.csr server-db2.key " ] ||
	fail "csr/ holds: $(ls "$C")"
for b in server-db1 server-db2 client; do
	[ "$(stat -c %a "$C/$b.key")" = 600 ] || fail "mode of $b.key"
	openssl req -in "$C/$b.csr" -noout -verify 2>&1 | grep -qi 'verify ok' || fail "$b.csr signature"
	[ "$(openssl req -in "$C/$b.csr" -noout -pubkey | openssl sha256)" = \
		"$(openssl pkey -in "$C/$b.key" -pubout | openssl sha256)" ] || fail "$b.key is not the CSR's key"
done
for n in 1 2; do
	t=$(openssl req -in "$C/server-db$n.csr" -noout -text)
	grep -q "Subject: CN = db$n.csr.test" <<<"$t" || fail "server-db$n CN"
	grep -A1 'Subject Alternative Name' <<<"$t" | grep -q \
		"DNS:db$n.csr.test, IP Address:127.0.64.1$n, DNS:db.csr.test, IP Address:127.0.64.100" ||
		fail "server-db$n SANs: $(grep -A1 'Subject Alternative Name' <<<"$t")"
	grep -q 'NIST CURVE: P-256' <<<"$t" || fail "server-db$n key type"
done
t=$(openssl req -in "$C/client.csr" -noout -text)
grep -q 'Subject: CN = postgres' <<<"$t" || fail "client CN"
grep -q 'NIST CURVE: P-384' <<<"$t" || fail "client key type"
pass "csr -c: one key (0600) + CSR per certificate, CN/SANs/key types as issue would make them"

# ---- sign every CSR with the corporate CA (names carry no meaning) ---------
S=$dir/signed
mkdir -m 700 "$S"
corp_sign "$C/server-db1.csr" "$S/returned-A.pem"
corp_sign "$C/server-db2.csr" "$S/returned-B.crt"
corp_sign "$C/client.csr" "$S/returned-C.cer"
echo "not a certificate, ignored" >"$S/README.txt"
cp "$C/client.csr" "$S/" # CSRs beside them are ignored too

# ---- refusals: each stores nothing ---------------------------------------
before=$(listing)
bad_dir() { # name: a copy of the good set
	rm -rf "$dir/bad"
	cp -a "$S" "$dir/bad"
}
signed_refused() { # exit-code reason label
	local out rc
	set +e
	out=$("$DBPKI" issue -c "$inv" --signed "$dir/bad" 2>&1)
	rc=$?
	set -e
	[ $rc -eq "$1" ] || fail "$3: exit $rc, want $1: $out"
	grep -qF -- "$2" <<<"$out" || fail "$3: reason '$2' missing: $out"
	[ "$(listing)" = "$before" ] || fail "$3: the store changed"
	echo "ok: refused $3: ${out:0:300}"
}

bad_dir
corp_sign "$C/server-db1.csr" "$dir/bad/returned-A.pem" other-root
signed_refused 3 "returned-A.pem: refused: server db1: it does not chain to the trusted CA: unknown issuer" \
	"a certificate signed by another CA"

bad_dir
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/stranger.key" \
	-subj /CN=db1.csr.test -addext "subjectAltName=DNS:db1.csr.test,IP:127.0.64.11,DNS:db.csr.test,IP:127.0.64.100" \
	-out "$dir/stranger.csr" 2>/dev/null
corp_sign "$dir/stranger.csr" "$dir/bad/returned-A.pem"
signed_refused 2 "returned-A.pem: refused (rule: key)" "a certificate whose key does not match any CSR"

bad_dir
corp_sign "$C/server-db2.csr" "$dir/bad/returned-B.crt" corp-issuing "DNS:db2.csr.test,DNS:db.csr.test,IP:127.0.64.100"
signed_refused 3 "returned-B.crt: refused: server db2: its SANs do not cover 127.0.64.12" \
	"SANs missing the node's address"

bad_dir
rm "$dir/bad/returned-C.cer"
signed_refused 2 "no certificate for the client certificate" "a set without the client certificate"

bad_dir
cp "$dir/bad/returned-A.pem" "$dir/bad/again.pem"
corp_sign "$C/server-db1.csr" "$dir/bad/again.pem"
signed_refused 2 "both for server db1" "two certificates for one key"

# ---- the good set --------------------------------------------------------
"$DBPKI" issue -c "$inv" --signed "$S" 2>"$dir/signed.log" || { cat "$dir/signed.log"; fail "issue --signed refused the good set"; }
grep -q '3 certificate(s) stored' "$dir/signed.log" || fail "issue --signed: $(cat "$dir/signed.log")"
for n in 1 2; do
	s=$(active server "db$n")
	[ -n "$s" ] || fail "no active server certificate for db$n"
	crt=$state/issued/$s.crt key=$state/keys/$s.key
	openssl verify -CAfile "$G/corporate.pem" -purpose sslserver "$crt" >/dev/null || fail "openssl verify db$n"
	if openssl verify -CAfile "$state/ca/dbca.crt" "$crt" >/dev/null 2>&1; then fail "db$n verifies against dbca"; fi
	openssl x509 -in "$crt" -noout -checkhost "db$n.csr.test" | grep -q 'does match' || fail "db$n host SAN"
	openssl x509 -in "$crt" -noout -checkip "127.0.64.1$n" | grep -q 'does match' || fail "db$n address SAN"
	openssl x509 -in "$crt" -noout -checkip 127.0.64.100 | grep -q 'does match' || fail "db$n extra SAN"
	[ "$(stat -c %a "$key")" = 600 ] || fail "mode of $key"
	[ "$(openssl x509 -in "$crt" -noout -pubkey | openssl sha256)" = \
		"$(openssl pkey -in "$key" -pubout | openssl sha256)" ] || fail "$key does not match $crt"
done
s=$(active client -)
openssl verify -CAfile "$G/corporate.pem" -purpose sslclient "$state/issued/$s.crt" >/dev/null || fail "openssl verify client"
openssl x509 -in "$state/issued/$s.crt" -noout -subject | grep -q 'CN = postgres' || fail "client CN"
[ -z "$(ls "$C")" ] || fail "consumed CSR files are left: $(ls "$C")"
pass "the store's leaves verify with openssl against corporate.pem (not dbca); SANs and keys right"

"$DBPKI" issue -c "$inv" 2>"$dir/issue.log" || { cat "$dir/issue.log"; fail "issue after --signed"; }
[ "$(grep -c 'kept ' "$dir/issue.log")" = 3 ] || fail "issue did not keep the 3 corporate leaves: $(cat "$dir/issue.log")"
before=$(listing)
"$DBPKI" issue -c "$inv" --signed "$S" 2>"$dir/again.log"
grep -q 'nothing new' "$dir/again.log" || fail "the same set again: $(cat "$dir/again.log")"
[ "$(listing)" = "$before" ] || fail "the same set again changed the store"
pass "issue keeps the corporate leaves; the same set again changes nothing"

# ---- one leaf renewed through the corporate CA ----------------------------
old1=$(active server db1)
old2=$(active server db2)
"$DBPKI" csr -c "$inv" 2>/dev/null
R=$dir/renewed
mkdir -m 700 "$R"
corp_sign "$C/server-db1.csr" "$R/db1-new.pem"
"$DBPKI" issue -c "$inv" --signed "$R" 2>"$dir/renew.log" || { cat "$dir/renew.log"; fail "renewing db1"; }
new1=$(active server db1)
[ "$new1" != "$old1" ] || fail "db1 was not replaced"
[ "$(active server db2)" = "$old2" ] || fail "db2 changed"
awk -F'\t' -v s="$old1" '$1==s {print $2}' "$state/index.tsv" | grep -qx superseded || fail "old db1 not superseded"
[ ! -e "$state/keys/$old1.key" ] || fail "the superseded key is still in keys/"
[ -e "$state/issued/$old1.crt" ] || fail "the superseded certificate left issued/"
[ ! -e "$C/server-db1.key" ] && [ -e "$C/server-db2.key" ] || fail "only db1's CSR should be consumed"
pass "a single renewed leaf replaces only its own (old one superseded, its key removed)"

# ---- a lab cluster with the corporate certificates ------------------------
NET=127.0.64
LAB=$(mktemp -d /tmp/dbpki-lab-csr.XXXXXX)
chmod 755 "$LAB"
"$DBPKI_ROOT/tests/lab/lab.sh" up --dir "$LAB" --net $NET --roles primary,replica >"$LAB/up.log" 2>&1 ||
	{ cat "$LAB/up.log"; fail "lab up"; }
LI=$LAB/cluster.ini
LS=$LAB/state
"$DBPKI" ca import -c "$LI" --cert "$G/corporate.pem" 2>/dev/null ||
	fail "lab: ca import on a store without dbca"
"$DBPKI" csr -c "$LI" 2>/dev/null
LD=$LAB/signed
mkdir -m 700 "$LD"
for f in "$LS"/csr/*.csr; do corp_sign "$f" "$LD/$(basename "$f" .csr).crt"; done
"$DBPKI" issue -c "$LI" --signed "$LD" 2>"$LAB/signed.log" || { cat "$LAB/signed.log"; fail "lab: issue --signed"; }
out=$("$DBPKI" bootstrap -c "$LI" 2>&1) || { echo "$out" | tail -n 40; fail "lab: bootstrap with corporate certificates"; }
grep -q 'issued  ' <<<"$out" && fail "bootstrap issued a dbca leaf"
# (verify/dbca.crt is the trust bundle the check connections use)
nodbca() { [ -z "$(find "$LS" -name dbca.key)" ] && [ ! -e "$LS/ca/dbca.crt" ]; }
nodbca || fail "bootstrap made a dbca: $(find "$LS" -name 'dbca.*')"
out=$("$DBPKI" status -c "$LI" 2>&1) || { echo "$out"; fail "lab: status on an import-only store"; }
nodbca || fail "status made a dbca"
out=$("$DBPKI" renew -c "$LI" 2>&1) || { echo "$out" | tail -n 20; fail "lab: renew on an import-only store"; }
nodbca || fail "renew made a dbca"
C1=$LAB/nodes/node2/certs/current
cmp -s "$C1/dbca.crt" "$LS/ca/trusted.pem" || fail "the release does not carry the corporate chain"
# the admin's view: the corporate ROOT only; the node sends its chain
conn() {
	echo "host=node$1.lab.test hostaddr=$NET.1$1 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$G/corp-root.pem sslcert=$C1/client.crt sslkey=$C1/client.key gssencmode=disable connect_timeout=10"
}
[ "$(psql -X -At -d "$(conn 1)" -c 'SELECT pg_is_in_recovery()')" = f ] || fail "psql verify-full to the primary"
[ "$(psql -X -At -d "$(conn 2)" -c 'SELECT pg_is_in_recovery()')" = t ] || fail "psql verify-full to the replica"
streaming=$(psql -X -At -d "$(conn 1)" -c "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND s.client_dn = '/CN=postgres'")
[ "$streaming" = 1 ] || fail "the replica does not stream over SSL with the corporate client certificate ($streaming)"
otherconn="host=node1.lab.test hostaddr=$NET.11 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$LS/ca/dbca.crt sslcert=$C1/client.crt sslkey=$C1/client.key gssencmode=disable connect_timeout=10"
if psql -X -At -d "$otherconn" -c 'SELECT 1' >/dev/null 2>&1; then fail "dbca verified a corporate server certificate"; fi
pass "lab: bootstrap with corporate certificates; psql verify-full against the corporate root; replica streams over SSL"
echo "test_csr_signed: ok"
