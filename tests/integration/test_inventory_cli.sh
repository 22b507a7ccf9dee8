#!/usr/bin/env bash
# Bad inventories through the real binary: exit 2, a message naming
# file:line and key, and nothing written (the state_dir never appears).
set -euo pipefail
: "${DBPKI:?}"
T=$(mktemp -d /tmp/dbpki-inv.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

write() { # file, then the inventory on stdin
	cat >"$1"
	chmod 600 "$1"
}
base() {
	cat <<INI
[cluster]
name = c1
state_dir = $T/state
[ssh]
known_hosts = $T/known_hosts
[node db1]
host = db1.example.com
address = 10.0.0.11
role = primary
INI
}

nh=0
expect_refused() { # name, inventory file, expected message part
	local out rc
	for cmd in issue bootstrap plan; do
		set +e
		if [ "$cmd" = plan ]; then
			out=$("$DBPKI" plan -c "$2" bootstrap 2>&1)
		else
			out=$("$DBPKI" "$cmd" -c "$2" 2>&1)
		fi
		rc=$?
		set -e
		[ "$rc" = 2 ] || fail "$1 ($cmd): exit $rc, expected 2: $out"
		case $out in *"$3"*) ;; *) fail "$1 ($cmd): message lacks '$3': $out" ;; esac
		[ ! -e "$T/state" ] || fail "$1 ($cmd): the state_dir was created"
	done
	echo "ok: $1 -> $(printf '%s' "$out" | head -n 1)"
}

base | sed 's/^host = db1.example.com/host = db1; rm -rf \//' | write "$T/meta.ini"
expect_refused "shell metacharacters" "$T/meta.ini" "meta.ini:7: [node db1] host"

base | sed 's/^\[node db1\]/[node ..\/x]/' | write "$T/dots.ini"
expect_refused "'..' in a node name" "$T/dots.ini" "dots.ini:6: [node ../x]"

base | sed 's/^address = 10.0.0.11/address = db1.example.com/' | write "$T/addr.ini"
expect_refused "non-IP address" "$T/addr.ini" "addr.ini:8: [node db1] address"

{ base; printf '[node db1]\nhost = x\naddress = 10.0.0.12\nrole = replica\n'; } | write "$T/dup.ini"
expect_refused "duplicate node" "$T/dup.ini" "dup.ini:10: [node db1] is defined twice"

{ base; printf '[node db2]\nhost = db2\naddress = 10.0.0.12\nrole = primary\n'; } | write "$T/two.ini"
expect_refused "two primaries" "$T/two.ini" "2 nodes have role = primary"

base | sed 's/^role = primary/role = replica/' | write "$T/zero.ini"
expect_refused "no primary" "$T/zero.ini" "0 nodes have role = primary"

{ base; printf '[bogus]\n'; } | write "$T/sect.ini"
expect_refused "unknown section" "$T/sect.ini" "sect.ini:10: unknown section [bogus]"

base | sed 's/^\[ssh\]/[ssh]\nhost_key_policy = yes/' | write "$T/policy.ini"
expect_refused "host_key_policy" "$T/policy.ini" "policy.ini:5: [ssh] host_key_policy: 'yes' is not one of: strict, accept-new"

base | sed 's/^name = c1/name = c1\nrenew_before = 9999d/' | write "$T/dur.ini"
expect_refused "duration out of range" "$T/dur.ini" "dur.ini:3: [cluster] renew_before"

base | write "$T/gw.ini"
chmod 664 "$T/gw.ini"
expect_refused "group-writable inventory" "$T/gw.ini" "writable by group or others"

base | write "$T/real.ini"
ln -s "$T/real.ini" "$T/link.ini"
expect_refused "symlinked inventory" "$T/link.ini" "symbolic link"

{ base; head -c 1100000 /dev/zero | tr '\0' '#'; } | write "$T/big.ini"
expect_refused "oversized inventory" "$T/big.ini" "too large"

# A table of hostile values: section, key, value, expected message part.
# The line goes right under its section's header (added when the base
# inventory has none).
while IFS='|' read -r sect key value want; do
	[ -n "$sect" ] || continue
	f=$T/hostile-$((++nh)).ini
	base >"$f.tmp"
	grep -qxF "[$sect]" "$f.tmp" || printf '[%s]\n' "$sect" >>"$f.tmp"
	awk -v h="[$sect]" -v l="$key = $value" '{ print } $0 == h { print l }' "$f.tmp" | write "$f"
	rm -f "$f.tmp"
	expect_refused "hostile $key = $value" "$f" "$want"
done <<'TABLE'
node db1|cert_dir|/srv/$(reboot)|cert_dir
node db1|pgdata|/var/lib/pg`id`|pgdata
node db1|bindir|/usr/lib/postgresql/15/bin;id|bindir
node db1|socket_dir|/run/x y|socket_dir
node db1|cert_dir|/srv/../etc|cert_dir
node db1|cert_dir|relative/dir|cert_dir
node db1|allowed_networks|0.0.0.0/0; reboot|allowed_networks
node db1|port|5432;id|port
node db1|port|70000|port
node db1|nonsense|1|unknown key
ssh|user|postgres;id|user
ssh|user|-oProxyCommand=x|user
ssh|known_hosts|~/known_hosts|known_hosts
ssh|connect_timeout|0s|connect_timeout
ssh|command_timeout|99999d|command_timeout
ca|common_name|dbca`id`|common_name
ca|validity|-5d|validity
ca|key|rsa:1024|key
ca|key|dsa:2048|key
ca|passphrase_env|A=B|passphrase_env
server|extra_san|DNS:x.example.com,DNS:$(id)|extra_san
server|extra_san|URI:http://evil|extra_san
server|mode|bogus|mode
client|common_name|postgres'--|common_name
cluster|parallel|0|parallel
cluster|parallel|100000|parallel
cluster|platform|oracle|platform
cluster|renew_before|1s|renew_before
cluster|state_dir|/tmp/$(id)|state_dir
TABLE

# ---- Issue 12: every parser (INI) and every input that decides who gets
# keys or what runs on the nodes.  Each refused with exit 2, naming the
# file:line or the path and the exact command that fixes it, nothing
# written.

# A key before the first section was ignored (plan exited 0).
{ printf 'name = evil\n'; base; } | write "$T/nosect.ini"
expect_refused "key before the first section" "$T/nosect.ini" "nosect.ini:1: 'name' is outside any section"
{ printf '; comment\n\nparallel = 1\n'; base; } | write "$T/nosect2.ini"
expect_refused "key after a comment, before any section" "$T/nosect2.ini" "nosect2.ini:3: 'parallel' is outside any section"

# An indented header: inih continues the key above, the reader starts a
# section; the keys below belonged to neither as the admin meant.
{ base; printf '  [node db2]\nhost = db2\naddress = 10.0.0.12\nrole = primary\n'; } | write "$T/indent.ini"
expect_refused "indented section header" "$T/indent.ini" "indent.ini:10: [node db2] line starts with blanks"

# A UTF-8 BOM anywhere but at the start (concatenated files) is refused.
{ base; printf '\xef\xbb\xbf[node db2]\nhost = db2\naddress = 10.0.0.12\nrole = primary\n'; } | write "$T/midbom.ini"
expect_refused "BOM before a later section" "$T/midbom.ini" "midbom.ini:10: a UTF-8 byte order mark"

# A NUL byte: the text after it was never read (a second primary passed).
{ base; printf '\0[node db2]\nhost = db2\naddress = 10.0.0.12\nrole = primary\n'; } | write "$T/nul.ini"
expect_refused "NUL byte" "$T/nul.ini" "nul.ini:10: a NUL byte"
{ printf '[clu\0ster]\n'; base; } | write "$T/nul2.ini"
expect_refused "NUL byte in a header" "$T/nul2.ini" "nul2.ini:1: a NUL byte"

# Trust paths: each input in a directory others can write (not sticky), or
# owned by another user.  A fresh directory per case under $T (0700, in
# sticky /tmp: trusted), loosened on purpose.
trust_case() { # name, sed expression (may use $D), file to create (or ""), path to loosen, how (chmod MODE | chown USER), expected part
	local name=$1 expr=$2 mk=$3 loosen=$4 how=$5 want=$6
	D=$T/trust-$((++nh))
	mkdir -m 755 "$D" "$D/sub" "$D/f" # the inventory in sub/, other files in f/
	[ -z "$mk" ] || { : >"$D/f/$mk"; chmod 600 "$D/f/$mk"; }
	base | sed "${expr//\$D/$D}" | write "$D/sub/c.ini"
	$how "$D/$loosen"
	expect_refused "$name" "$D/sub/c.ini" "$want"
}
run_as_root() { [ "$(id -u)" = 0 ]; }
trust_case "inventory in a group-writable directory" "" "" sub "chmod 775" \
	"inventory $T/trust-$((nh + 1))/sub/c.ini: $T/trust-$((nh + 1))/sub is writable by group or others (mode 0775), so another user could change what dbpki trusts; run: chmod go-w $T/trust-$((nh + 1))/sub"
trust_case "inventory under a world-writable directory" "" "" . "chmod 777" \
	"run: chmod go-w $T/trust-$((nh + 1))"
trust_case "state_dir in a group-writable directory" "s|^state_dir = .*|state_dir = \$D/open/state|" "" open "mkdir -m 770" \
	"[cluster] state_dir"
trust_case "passphrase_file in a group-writable directory" "s|^\\[ca\\]\$|[ca]|; s|^\\[ssh\\]|[ca]\\npassphrase_file = \$D/f/pass\\n[ssh]|" pass f "chmod 770" \
	"[ca] passphrase_file"
trust_case "group-writable passphrase_file" "s|^\\[ssh\\]|[ca]\\npassphrase_file = \$D/f/pass\\n[ssh]|" pass f/pass "chmod 620" \
	"run: chmod go-w $T/trust-$((nh + 1))/f/pass"
trust_case "identity in a group-writable directory" "s|^\\[ssh\\]|[ssh]\\nidentity = \$D/f/id|" id f "chmod 775" \
	"[ssh] identity"
trust_case "per-node identity override, group-writable" "s|^role = primary|role = primary\\nidentity = \$D/f/id|" id f/id "chmod 660" \
	"[node db1] identity"
trust_case "identity_passphrase_file, world-writable" "s|^\\[ssh\\]|[ssh]\\nidentity_passphrase_file = \$D/f/ip|" ip f/ip "chmod 606" \
	"[ssh] identity_passphrase_file"
trust_case "known_hosts in a group-writable directory" "s|^known_hosts = .*|known_hosts = \$D/f/kh|" kh f "chmod 775" \
	"[ssh] known_hosts"
if run_as_root; then
	trust_case "inventory owned by another user" "" "" sub/c.ini "chown nobody" \
		"is owned by uid $(id -u nobody), not by root, so that user could change what dbpki trusts; run: chown root $T/trust-$((nh + 1))/sub/c.ini"
	trust_case "identity owned by another user" "s|^\\[ssh\\]|[ssh]\\nidentity = \$D/f/id|" id f/id "chown nobody" \
		"run: chown root $T/trust-$((nh + 1))/f/id"
	trust_case "directory above the inventory owned by another user" "" "" sub "chown nobody" \
		"run: chown root $T/trust-$((nh + 1))/sub"
fi
# A symlink on the way to a world-writable directory: the real path counts.
D=$T/trust-link
mkdir -m 755 "$D" "$D/real"
chmod 777 "$D/real"
ln -s "$D/real" "$D/via"
base | write "$D/real/c.ini"
expect_refused "inventory through a symlinked directory" "$D/via/c.ini" "run: chmod go-w $D/real"

# Templates and playbooks run on every node: the overrides and the files.
D=$T/data
mkdir -m 755 "$D"
cp -r "${DBPKI_ROOT:?}/templates" "$D/templates"
cp -r "$DBPKI_ROOT/playbooks" "$D/playbooks"
chmod -R go-w "$D"
base | write "$T/data.ini"
plan_refused() { # name, expected part, env...
	local name=$1 want=$2 out rc
	shift 2
	set +e
	out=$(env "$@" "$DBPKI" plan -c "$T/data.ini" bootstrap 2>&1)
	rc=$?
	set -e
	[ "$rc" = 2 ] || fail "$name: plan exit $rc, expected 2: $out"
	case $out in *"$want"*) ;; *) fail "$name: message lacks '$want': $out" ;; esac
	[ ! -e "$T/state" ] || fail "$name: the state_dir was created"
	echo "ok: $name -> $(printf '%s' "$out" | head -n 1)"
}
set +e
out=$(DBPKI_TEMPLATES=$D/templates DBPKI_PLAYBOOKS=$D/playbooks "$DBPKI" plan -c "$T/data.ini" bootstrap 2>&1)
rc=$?
set -e
[ "$rc" = 0 ] || fail "plan with trusted DBPKI_TEMPLATES/DBPKI_PLAYBOOKS copies: exit $rc: $out"
chmod 775 "$D/templates"
plan_refused "DBPKI_TEMPLATES group-writable" "DBPKI_TEMPLATES $D/templates: $D/templates is writable by group or others (mode 0775), so another user could change what dbpki trusts; run: chmod go-w $D/templates" \
	DBPKI_TEMPLATES="$D/templates" DBPKI_PLAYBOOKS="$D/playbooks"
chmod 755 "$D/templates"
chmod 777 "$D/templates/postgres"
plan_refused "a platform's template directory world-writable" "run: chmod go-w $D/templates/postgres" \
	DBPKI_TEMPLATES="$D/templates" DBPKI_PLAYBOOKS="$D/playbooks"
chmod 755 "$D/templates/postgres"
chmod 664 "$D/templates/postgres/certs.sh"
plan_refused "a group-writable template" "run: chmod go-w $D/templates/postgres/certs.sh" \
	DBPKI_TEMPLATES="$D/templates" DBPKI_PLAYBOOKS="$D/playbooks"
chmod 644 "$D/templates/postgres/certs.sh"
chmod 777 "$D/playbooks"
plan_refused "DBPKI_PLAYBOOKS world-writable" "DBPKI_PLAYBOOKS $D/playbooks: $D/playbooks is writable by group or others (mode 0777)" \
	DBPKI_TEMPLATES="$D/templates" DBPKI_PLAYBOOKS="$D/playbooks"
chmod 755 "$D/playbooks"
if run_as_root; then
	chown nobody "$D/playbooks/bootstrap.ini"
	plan_refused "a playbook owned by another user" "run: chown root $D/playbooks/bootstrap.ini" \
		DBPKI_TEMPLATES="$D/templates" DBPKI_PLAYBOOKS="$D/playbooks"
	chown root "$D/playbooks/bootstrap.ini"
fi

# A BOM at the very start is skipped (inih skips it too): the first
# section's keys all count.
{ printf '\xef\xbb\xbf'; base; } | write "$T/bom.ini"
set +e
out=$("$DBPKI" plan -c "$T/bom.ini" bootstrap 2>&1)
rc=$?
set -e
[ "$rc" = 0 ] || fail "BOM at the start: plan exit $rc: $out"
[ ! -e "$T/state" ] || fail "BOM: plan created the state_dir"
echo "ok: a BOM at the start is skipped, [cluster] still counts"

echo "all bad inventories refused with exit 2, nothing written"
