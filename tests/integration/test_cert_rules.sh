#!/usr/bin/env bash
# Issue 12, "Certificates in and out": every certificate that comes in
# (ca import, issue --signed, sign's CSR) and every one that leaves (sign
# --out, csr --out, verify, inspect) under the rules, each made with the
# openssl CLI to break exactly one of them:
#   - ca import: a chain that breaks a pathLenConstraint (the root's, or an
#     intermediate's) or that OpenSSL refuses otherwise (an unknown critical
#     extension); text after / between PEM blocks, after an END line,
#     a NUL byte (refused, the text quoted); text before the first block
#     still accepted;
#   - ca import on a store without dbca: the store is made, no CA key; csr,
#     issue --signed, issue, list, check work on it; ca export and sign
#     say they need dbca (exit 4);
#   - csr --out and sign --out never overwrite (--force replaces
#     atomically); sign records first and leaves no --out when recording
#     fails (a full state_dir on a tmpfs), and names the recorded serial
#     when --out cannot be written (a full --out directory);
#   - sign --profile server without SAN, --profile client for a privileged
#     role (postgres, [client] common_name, [ssh] user, pg_*), refused;
#   - issue --signed with a wildcard or another node's name: refused unless
#     --allow-extra-san;
#   - verify --host with a clientAuth-only certificate: refused;
#   - inspect of a DNS SAN with an embedded NUL: escaped and marked.
# No node is contacted (addresses in 127.0.70.x; nothing listens there).
set -euo pipefail
: "${DBPKI:?DBPKI must point to the dbpki binary}"
T=$(mktemp -d /tmp/dbpki-it-certrules-XXXXXX)
FULL=$T/full
cleanup() {
	umount "$FULL/state" 2>/dev/null || true
	umount "$FULL/out" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
chmod 700 "$T"
G=$T/gen
mkdir -m 700 "$G"
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
# run CMD...: $out (stdout+stderr) and $rc, never exiting on failure
run() {
	set +e
	out=$("$@" 2>&1)
	rc=$?
	set -e
}
listing() { # everything about a store that a change would show (the lock
	# file is touched by every writer, refused or not)
	find "$1" ! -path "$1/lock" -printf '%P %y %m %s %T@\n' | sort
	find "$1" -type f ! -path "$1/lock" -exec sha256sum {} + | sort
}

inventory() { # file state_dir [extra lines...]
	local f=$1 s=$2
	shift 2
	{
		printf '[cluster]\nname = certrules\nstate_dir = %s\n' "$s"
		printf '%s\n' "$@"
		printf '[node db1]\nhost = db1.rules.test\naddress = 127.0.70.11\nrole = primary\n'
		printf '[node db2]\nhost = db2.rules.test\naddress = 127.0.70.12\nrole = replica\n'
	} >"$f"
	chmod 600 "$f"
}

# ---- openssl helpers --------------------------------------------------------
cat >"$G/ca.cnf" <<'EOF'
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
[v3_ca_p0]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_ca_crit]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
1.3.6.1.4.1.99999.1 = critical,ASN1:UTF8String:unknown to every TLS library
[v3_ca_p1]
basicConstraints = critical,CA:TRUE,pathlen:1
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
mkca() { # name parent|- extensions
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$G/$1.key" 2>/dev/null
	if [ "$2" = - ]; then
		openssl req -x509 -config "$G/ca.cnf" -extensions "$3" -key "$G/$1.key" \
			-subj "/CN=$1" -days 60 -sha256 -out "$G/$1.pem"
	else
		openssl req -new -config "$G/ca.cnf" -key "$G/$1.key" -subj "/CN=$1" -out "$G/$1.csr"
		openssl x509 -req -in "$G/$1.csr" -CA "$G/$2.pem" -CAkey "$G/$2.key" \
			-set_serial "0x$(openssl rand -hex 12)" -days 50 -sha256 \
			-extfile "$G/ca.cnf" -extensions "$3" -out "$G/$1.pem" 2>/dev/null
	fi
}
# leaf CSR CA OUT EKU SAN|"" : sign CSR as CA would, SANs given
leaf() {
	{
		echo "basicConstraints = critical,CA:FALSE"
		echo "keyUsage = critical,digitalSignature"
		echo "extendedKeyUsage = $4"
		[ -z "$5" ] || echo "subjectAltName = $5"
	} >"$G/leaf.ext"
	openssl x509 -req -in "$1" -CA "$G/$2.pem" -CAkey "$G/$2.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days 30 -sha256 -extfile "$G/leaf.ext" -out "$3" 2>/dev/null
}
csr_sans() { # the SANs of a CSR in extfile form ("" if none)
	openssl req -in "$1" -noout -text | grep -q 'Subject Alternative Name' || return 0
	openssl req -in "$1" -noout -text | grep -A1 'Subject Alternative Name' |
		tail -n 1 | tr -d ' ' | sed 's/IPAddress:/IP:/g'
}

mkca root0 - v3_ca_p0   # pathlen:0
mkca mid0 root0 v3_ca   # breaks root0's constraint
mkca root1 - v3_ca_p1   # pathlen:1
mkca mid1 root1 v3_ca_p0
mkca low1 mid1 v3_ca    # breaks mid1's pathlen:0 (and root1's: 2 CAs below it)
mkca corp - v3_ca       # a good corporate root, no constraint
mkca crit corp v3_ca_crit # an unknown critical extension
mkca issuing corp v3_ca_p0
chmod 644 "$G"/*.pem

# ==== ca import: the rules ===================================================
S1=$T/s1
inventory "$T/s1.ini" "$S1"
import() { "$DBPKI" ca import -c "$T/s1.ini" --cert "$1"; }
"$DBPKI" ca init -c "$T/s1.ini" 2>/dev/null
before=$(listing "$S1")
refused() { # rule file label [text the message must quote]
	run import "$2"
	[ "$rc" -eq 2 ] || fail "$3: exit $rc, want 2: $out"
	grep -qF "(rule: $1)" <<<"$out" || fail "$3: rule '$1' not named: $out"
	[ -z "${4:-}" ] || grep -qF -- "$4" <<<"$out" || fail "$3: '$4' not quoted: $out"
	[ "$(listing "$S1")" = "$before" ] || fail "$3: the store changed"
	echo "ok: refused $3: ${out:0:260}"
}

cat "$G/mid0.pem" "$G/root0.pem" >"$G/p0.pem"
refused "path length" "$G/p0.pem" "an intermediate below a pathlen:0 root" "pathLenConstraint 0"
openssl verify -CAfile "$G/root0.pem" "$G/mid0.pem" >/dev/null 2>&1 ||
	echo "note: openssl verify refuses mid0 by itself too"
cat "$G/low1.pem" "$G/mid1.pem" "$G/root1.pem" >"$G/p1.pem"
refused "path length" "$G/p1.pem" "a CA below a pathlen:0 intermediate" "CN=mid1"
# openssl itself refuses a leaf under such a chain: the deploy-time outage
mkca leafca low1 v3_ca
if openssl verify -CAfile "$G/root1.pem" -untrusted <(cat "$G/mid1.pem" "$G/low1.pem") \
	"$G/leafca.pem" >/dev/null 2>&1; then
	fail "openssl accepts the chain that breaks pathlen (the test's premise)"
fi

# what else a TLS peer refuses: an unknown critical extension
cat "$G/crit.pem" "$G/corp.pem" >"$G/crit-chain.pem"
refused chain "$G/crit-chain.pem" "a CA with an unknown critical extension" "unhandled critical extension"

# text where none belongs
{ cat "$G/corp.pem"; echo "garbage after the block"; } >"$G/t1.pem"
refused PEM "$G/t1.pem" "text after the last PEM block" "garbage after the block"
{ cat "$G/issuing.pem"; printf 'subject=CN=smuggled\n'; cat "$G/corp.pem"; } >"$G/t2.pem"
refused PEM "$G/t2.pem" "text between two PEM blocks" "subject=CN=smuggled"
sed '$ s/-----$/-----trailing/' "$G/corp.pem" >"$G/t3.pem"
refused PEM "$G/t3.pem" "text after the END line" "trailing"
{ cat "$G/corp.pem"; printf 'x\033[31mred\n'; } >"$G/t4.pem"
refused PEM "$G/t4.pem" "an escape sequence after the block (quoted escaped)" '\x1b[31mred'
grep -q $'\033' <<<"$out" && fail "the escape byte reached the terminal"
{ cat "$G/corp.pem"; printf '\0'; cat "$G/corp.pem"; } >"$G/t5.pem"
refused PEM "$G/t5.pem" "a NUL byte between two blocks" "NUL byte"
head -n 5 "$G/corp.pem" >"$G/t6.pem"
refused PEM "$G/t6.pem" "a block without END line" "no END line"
chmod 644 "$G"/t*.pem

# accepted: text before the first block (openssl x509 -text), blank lines
openssl x509 -in "$G/corp.pem" -text >"$G/text.pem"
printf '\n\n' >>"$G/text.pem"
chmod 644 "$G/text.pem"
import "$G/text.pem" 2>"$T/imp.log" || { cat "$T/imp.log"; fail "openssl x509 -text output refused"; }
cat "$G/issuing.pem" "$G/corp.pem" >"$G/good2.pem"
chmod 644 "$G/good2.pem"
import "$G/good2.pem" 2>"$T/imp.log" || { cat "$T/imp.log"; fail "a chain within pathlen refused"; }
pass "text before the first block and a pathlen:0 issuing CA signing leaves are accepted"

# ==== ca import on a store without dbca ======================================
S2=$T/s2
inventory "$T/s2.ini" "$S2"
run "$DBPKI" ca import -c "$T/s2.ini" --cert "$G/good2.pem"
[ "$rc" -eq 0 ] || fail "ca import without dbca: exit $rc: $out"
[ -s "$S2/ca/trusted.pem" ] || fail "no trusted.pem"
[ -z "$(find "$S2" -name '*.key')" ] || fail "import made a key: $(find "$S2" -name '*.key')"
[ ! -e "$S2/ca/dbca.crt" ] || fail "import made a dbca"
pass "ca import on an empty state_dir: the store is made, no CA key: ${out:0:200}"

"$DBPKI" csr -c "$T/s2.ini" 2>/dev/null || fail "csr -c on an import-only store"
mkdir -m 700 "$T/signed2"
for f in "$S2"/csr/*.csr; do
	b=$(basename "$f" .csr)
	eku=serverAuth
	[ "$b" = client ] && eku=clientAuth
	leaf "$f" issuing "$T/signed2/$b.pem" "$eku" "$(csr_sans "$f")"
done
run "$DBPKI" issue -c "$T/s2.ini" --signed "$T/signed2"
[ "$rc" -eq 0 ] || fail "issue --signed on an import-only store: exit $rc: $out"
run "$DBPKI" issue -c "$T/s2.ini"
[ "$rc" -eq 0 ] && grep -q '3 kept' <<<"$out" || fail "issue on an import-only store: exit $rc: $out"
run "$DBPKI" list -c "$T/s2.ini"
[ "$rc" -eq 0 ] && [ "$(grep -c ' active ' <<<"$out")" = 3 ] || fail "list: exit $rc: $out"
run "$DBPKI" check -c "$T/s2.ini"
grep -q 'imported-1' <<<"$out" && ! grep -q 'ca init' <<<"$out" || fail "check on an import-only store: $out"
run "$DBPKI" ca export -c "$T/s2.ini" --out "$T/dbca-export.pem"
[ "$rc" -eq 4 ] && grep -q 'trusts only the imported CA' <<<"$out" || fail "export: exit $rc: $out"
[ -z "$(find "$S2" -name '*.key' ! -path '*/keys/*')" ] || fail "a CA key appeared: $(find "$S2" -name '*.key')"
[ ! -e "$S2/ca/dbca.crt" ] || fail "a dbca appeared"
pass "import-only store: csr -c, issue --signed, issue, list, check work; export exits 4; still no CA key"

# ==== issue --signed: extra SANs =============================================
"$DBPKI" csr -c "$T/s2.ini" 2>/dev/null
before=$(listing "$S2")
signed_refused() { # label
	run "$DBPKI" issue -c "$T/s2.ini" --signed "$T/x"
	[ "$rc" -eq 3 ] || fail "$1: exit $rc, want 3: $out"
	grep -qF '(rule: extra SAN)' <<<"$out" || fail "$1: rule not named: $out"
	[ "$(listing "$S2")" = "$before" ] || fail "$1: the store changed"
	echo "ok: refused $1: ${out:0:260}"
}
rm -rf "$T/x"
mkdir -m 700 "$T/x"
f=$S2/csr/server-db1.csr
leaf "$f" issuing "$T/x/db1.pem" serverAuth "$(csr_sans "$f"),DNS:*.rules.test"
signed_refused "a wildcard beyond the inventory's SANs"
grep -qF 'DNS:*.rules.test' <<<"$out" || fail "the extra SAN is not named: $out"
leaf "$f" issuing "$T/x/db1.pem" serverAuth "$(csr_sans "$f"),DNS:db2.rules.test,IP:127.0.70.12"
signed_refused "the other node's name and address"
run "$DBPKI" issue -c "$T/s2.ini" --signed "$T/x" --allow-extra-san
[ "$rc" -eq 0 ] && grep -q 'allow-extra-san' <<<"$out" || fail "--allow-extra-san: exit $rc: $out"
pass "issue --signed keeps extra SANs only with --allow-extra-san"

# ==== sign and csr --out =====================================================
S3=$T/s3
inventory "$T/s3.ini" "$S3" '[client]' 'common_name = replicator' '[ssh]' 'user = dbadmin'
"$DBPKI" ca init -c "$T/s3.ini" 2>/dev/null
O=$T/out
mkdir -m 700 "$O"
csr() { "$DBPKI" csr --key-type ec:P-256 "$@"; }
csr --cn app.rules.test --san app.rules.test --out "$O/srv" 2>/dev/null
echo "precious key" >"$O/k.key"
chmod 600 "$O/k.key"
run csr --cn x.rules.test --san x.rules.test --out "$O/k"
[ "$rc" -ne 0 ] || fail "csr --out over an existing key: exit 0"
[ "$(cat "$O/k.key")" = "precious key" ] || fail "csr --out overwrote an existing key"
[ ! -e "$O/k.csr" ] || fail "csr --out wrote the CSR beside a refused key"
grep -q 'force' <<<"$out" || fail "the refusal does not mention --force: $out"
run csr --cn x.rules.test --san x.rules.test --out "$O/k" --force
[ "$rc" -eq 0 ] || fail "csr --force: exit $rc: $out"
openssl pkey -in "$O/k.key" -noout 2>/dev/null || fail "csr --force did not write a key"
[ "$(stat -c %a "$O/k.key")" = 600 ] || fail "mode of the replaced key"
[ -z "$(find "$O" -name '.*')" ] || fail "temporary files left: $(find "$O" -name '.*')"
pass "csr --out refuses an existing key; --force replaces it (0600, no temporary file)"

index_lines() { grep -vc '^#' "$S3/index.tsv" || true; }
sign() { "$DBPKI" sign -c "$T/s3.ini" "$@"; }
n0=$(index_lines)
echo "keep" >"$O/srv.crt"
run sign "$O/srv.csr" --profile server --out "$O/srv.crt"
[ "$rc" -ne 0 ] || fail "sign --out over an existing file: exit 0"
[ "$(cat "$O/srv.crt")" = keep ] || fail "sign --out overwrote a file"
[ "$(index_lines)" = "$n0" ] || fail "a refused sign recorded a certificate"
run sign "$O/srv.csr" --profile server --out "$O/srv.crt" --force
[ "$rc" -eq 0 ] || fail "sign --force: exit $rc: $out"
openssl x509 -in "$O/srv.crt" -noout 2>/dev/null || fail "sign --force wrote no certificate"
[ "$(index_lines)" = $((n0 + 1)) ] || fail "sign --force did not record the certificate"
run sign "$O/srv.csr" --profile server --out "$O/no-such-dir/srv.crt"
[ "$rc" -eq 2 ] && [ "$(index_lines)" = $((n0 + 1)) ] || fail "sign --out into a missing directory: exit $rc, recorded anyway? $out"
pass "sign --out refuses an existing file and a missing directory (nothing recorded); --force replaces it"

sign_refused() { # csr profile label text
	local b
	b=$(listing "$S3")
	run sign "$1" --profile "$2" --out "$O/refused.crt"
	[ "$rc" -eq 2 ] || fail "$3: exit $rc, want 2: $out"
	grep -qF -- "$4" <<<"$out" || fail "$3: reason '$4' missing: $out"
	[ ! -e "$O/refused.crt" ] || fail "$3: wrote --out"
	[ "$(listing "$S3")" = "$b" ] || fail "$3: the store changed"
	echo "ok: refused $3: ${out:0:240}"
}
csr --cn nosan.rules.test --out "$O/nosan" 2>/dev/null
sign_refused "$O/nosan.csr" server "a server CSR without SAN" "no subjectAltName"
for cn in postgres Postgres replicator dbadmin pg_monitor; do
	csr --cn "$cn" --out "$O/c-$cn" 2>/dev/null
	sign_refused "$O/c-$cn.csr" client "a client certificate for $cn" "'$cn'"
done
grep -q 'reserves' <<<"$out" || fail "pg_monitor: the reason is not said: $out"
csr --cn billing --out "$O/billing" 2>/dev/null
run sign "$O/billing.csr" --profile client --out "$O/billing.crt"
[ "$rc" -eq 0 ] || fail "a client certificate for an application role: exit $rc: $out"
pass "sign refuses a server CSR without SAN and client certificates for privileged roles"

# a CSR file with trailing text, or two requests
{ cat "$O/billing.csr"; echo "extra"; } >"$O/trail.csr"
sign_refused "$O/trail.csr" client "a CSR with text after it" "(rule: PEM)"
cat "$O/billing.csr" "$O/srv.csr" >"$O/two.csr"
sign_refused "$O/two.csr" client "a file of two CSRs" "exactly one"

# ==== verify --host ==========================================================
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$G/cl.key" \
	-subj /CN=h.rules.test -out "$G/cl.csr" 2>/dev/null
leaf "$G/cl.csr" corp "$G/cl.pem" clientAuth "DNS:h.rules.test"
run "$DBPKI" verify "$G/cl.pem" "$G/corp.pem" --host h.rules.test
[ "$rc" -eq 3 ] && grep -q 'wrong purpose' <<<"$out" || fail "verify --host, clientAuth only: exit $rc: $out"
run "$DBPKI" verify "$G/cl.pem" "$G/corp.pem" --host h.rules.test --purpose any
[ "$rc" -ne 0 ] || fail "verify --host --purpose any accepted a clientAuth-only certificate"
run "$DBPKI" verify "$G/cl.pem" "$G/corp.pem" --purpose client
[ "$rc" -eq 0 ] || fail "verify --purpose client: exit $rc: $out"
pass "verify --host implies serverAuth"

# ==== inspect: a DNS SAN with an embedded NUL ================================
# The extension as raw DER: SEQUENCE { [2] IA5String "good...\0.evil.test" }
name=$(printf 'good.rules.test' | xxd -p)00$(printf '.evil.test' | xxd -p)
len=$(((${#name} / 2)))
gn=$(printf '82%02x%s' "$len" "$name")
der=$(printf '30%02x%s' $((${#gn} / 2)) "$gn")
{
	echo "basicConstraints = critical,CA:FALSE"
	echo "extendedKeyUsage = serverAuth"
	echo "subjectAltName = DER:$der"
} >"$G/nul.ext"
openssl x509 -req -in "$G/cl.csr" -CA "$G/corp.pem" -CAkey "$G/corp.key" -set_serial 0x99 \
	-days 30 -sha256 -extfile "$G/nul.ext" -out "$G/nul.pem" 2>/dev/null
openssl x509 -in "$G/nul.pem" -noout -text | grep -q 'good.rules.test' || fail "no NUL SAN made"
run "$DBPKI" inspect "$G/nul.pem"
grep -qF 'DNS:good.rules.test\x00.evil.test (INVALID' <<<"$out" || fail "inspect: $out"
run "$DBPKI" inspect --json "$G/nul.pem"
grep -qF 'good.rules.test\\x00.evil.test' <<<"$out" || fail "inspect --json: $out"
pass "inspect shows a DNS SAN with a NUL escaped and marked"

# ==== sign on a full state_dir: recorded first, no --out left ================
mkdir -p "$FULL/state"
chmod 700 "$FULL"
mount -t tmpfs -o size=64k,mode=0700 tmpfs "$FULL/state" || fail "cannot mount a tmpfs (this test needs root)"
inventory "$T/full.ini" "$FULL/state"
"$DBPKI" ca init -c "$T/full.ini" 2>/dev/null
head -c 1000000 /dev/zero >"$FULL/state/filler" 2>/dev/null || true
run "$DBPKI" sign -c "$T/full.ini" "$O/srv.csr" --profile server --out "$O/full.crt"
[ "$rc" -ne 0 ] || fail "sign on a full state_dir: exit 0"
grep -q 'No space left' <<<"$out" || fail "the cause is not named: $out"
[ ! -e "$O/full.crt" ] || fail "sign left --out behind although the certificate was not recorded"
[ -z "$(find "$O" -name '.*')" ] || fail "temporary files left: $(find "$O" -name '.*')"
pass "sign on a full state_dir: exit $rc, no unrecorded certificate at --out"

# --out on a full disk: recorded first, so the error gives the serial to
# copy or revoke, and no partial or temporary file is left at --out
mkdir -p "$FULL/out"
mount -t tmpfs -o size=16k,mode=0700 tmpfs "$FULL/out" || fail "cannot mount a tmpfs"
head -c 1000000 /dev/zero >"$FULL/out/filler" 2>/dev/null || true
n0=$(index_lines)
run sign "$O/srv.csr" --profile server --out "$FULL/out/srv.crt"
[ "$rc" -ne 0 ] || fail "sign to a full --out: exit 0"
grep -q 'recorded in the store as serial' <<<"$out" || fail "the recorded serial is not named: $out"
[ "$(index_lines)" = $((n0 + 1)) ] || fail "sign to a full --out did not record the certificate"
[ "$(ls -A "$FULL/out")" = filler ] || fail "files left at --out: $(ls -A "$FULL/out")"
s=$(grep -o 'serial [0-9a-f]*' <<<"$out" | head -n 1 | cut -d' ' -f2)
[ -s "$S3/issued/$s.crt" ] || fail "the recorded certificate $s is not in issued/"
pass "sign to a full --out: recorded first (serial $s named), nothing left at --out"
echo "test_cert_rules: ok"
