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

echo "all bad inventories refused with exit 2, nothing written"
