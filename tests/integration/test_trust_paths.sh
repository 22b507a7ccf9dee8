#!/usr/bin/env bash
# Issue 12, "Inventory and files": an inventory or a file it names that
# cannot be trusted, or that does not parse as the admin sees it, stops
# every command before anything happens.  Judged by a listening lab sshd:
# its log (LogLevel VERBOSE) must show no connection, and the state_dir
# must stay empty.  Cases: a key before the first section (was ignored:
# bootstrap acted on the nodes), a NUL byte (the text after it was never
# read), an identity in a group-writable directory, an inventory owned by
# another user, DBPKI_TEMPLATES in a group-writable directory.  Then a
# UTF-8 BOM at the start: its first section counts (a [ca] key = ec:P-384
# came out P-256).
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.65
lab_dir
lab_up $NET primary >/dev/null
LOG=$LAB/sshd/node1/sshd.log
STATE=$LAB/state

# lab.sh's own readiness probe opens the port once; count from here.
sleep 0.2
conns() { grep -c 'Connection from' "$LOG" || true; }
c0=$(conns)

inv() { # name: a copy of the lab inventory (0600, ours) on stdout's file
	cp "$INI" "$LAB/$1"
	chmod 600 "$LAB/$1"
	echo "$LAB/$1"
}

refused() { # name, expected message part, command...
	local name=$1 want=$2 out rc
	shift 2
	set +e
	out=$("$@" 2>&1)
	rc=$?
	set -e
	[ "$rc" = 2 ] || fail "$name: $* exited $rc, expected 2: $(printf '%s' "$out" | tail -n 3)"
	case $out in *"$want"*) ;; *) fail "$name: message lacks '$want': $out" ;; esac
	[ -z "$(ls -A "$STATE")" ] || fail "$name: the state_dir is no longer empty: $(ls -A "$STATE")"
	[ "$(conns)" = "$c0" ] || fail "$name: the node's sshd logged a connection: $(grep 'Connection from' "$LOG" | tail -n 1)"
	pass "$name ($1 ${2:-}): exit 2, nothing written, no connection"
}

# plan first: on a build without the fix it exits 0 at once, before any
# bootstrap could act on the node.
f=$LAB/nosect.ini
{ printf 'parallel = 1\n'; cat "$INI"; } >"$f"
chmod 600 "$f"
refused "key before the first section" "nosect.ini:1: 'parallel' is outside any section" "$DBPKI" plan -c "$f" bootstrap
refused "key before the first section" "nosect.ini:1: 'parallel' is outside any section" "$DBPKI" bootstrap -c "$f"

f=$LAB/nul.ini
{ cat "$INI"; printf '\0[node evil]\nhost = evil.lab.test\naddress = %s.99\nrole = primary\n' $NET; } >"$f"
chmod 600 "$f"
refused "NUL byte" "nul.ini:$(($(wc -l <"$INI") + 1)): a NUL byte" "$DBPKI" plan -c "$f" bootstrap
refused "NUL byte" "a NUL byte" "$DBPKI" bootstrap -c "$f"

# The identity: in a directory the group may write, another user could
# swap the key dbpki logs in with.
mkdir -m 755 "$LAB/gw"
cp "$LAB/ssh/id_ed25519" "$LAB/gw/id"
chmod 600 "$LAB/gw/id"
chmod 775 "$LAB/gw"
f=$(inv gwid.ini)
sed -i "s|^identity = .*|identity = $LAB/gw/id|" "$f"
refused "identity in a group-writable directory" "[ssh] identity $LAB/gw/id: $LAB/gw is writable by group or others (mode 0775), so another user could change what dbpki trusts; run: chmod go-w $LAB/gw" \
	"$DBPKI" bootstrap -c "$f"
refused "identity in a group-writable directory" "run: chmod go-w $LAB/gw" "$DBPKI" rotate -c "$f"
refused "identity in a group-writable directory" "run: chmod go-w $LAB/gw" "$DBPKI" renew -c "$f"

# The inventory itself, owned by another user: that user can add a node
# and receive the keys.
f=$(inv other.ini)
chown nobody "$f"
refused "inventory owned by another user" "$f is owned by uid $(id -u nobody), not by root, so that user could change what dbpki trusts; run: chown root $f" \
	"$DBPKI" bootstrap -c "$f"
refused "inventory owned by another user" "run: chown root $f" "$DBPKI" issue -c "$f"

# Templates run as shell on every node.
mkdir -m 755 "$LAB/data"
cp -r "$DBPKI_ROOT/templates" "$LAB/data/templates"
chmod -R go-w "$LAB/data/templates"
chmod 775 "$LAB/data/templates"
refused "DBPKI_TEMPLATES group-writable" "DBPKI_TEMPLATES $LAB/data/templates: $LAB/data/templates is writable by group or others (mode 0775)" \
	env DBPKI_TEMPLATES="$LAB/data/templates" "$DBPKI" bootstrap -c "$INI"

# A BOM at the start (Windows editors) is skipped as inih skips it: the
# first section's keys count.  [ca] is first here, with ec:P-384.
f=$LAB/bom.ini
{
	printf '\xef\xbb\xbf[ca]\nkey = ec:P-384\n'
	sed -e '/^\[ca\]$/,/^$/d' -e "s|^state_dir = .*|state_dir = $LAB/state-bom|" "$INI"
} >"$f"
chmod 600 "$f"
out=$("$DBPKI" ca init -c "$f" 2>&1) || fail "ca init with a leading BOM: $out"
openssl x509 -in "$LAB/state-bom/ca/dbca.crt" -noout -text | grep -q 'NIST CURVE: P-384' ||
	fail "a leading BOM: the CA is not P-384 ($(openssl x509 -in "$LAB/state-bom/ca/dbca.crt" -noout -text | grep -m1 'NIST CURVE'))"
pass "a leading BOM is skipped: [ca] key = ec:P-384 gives a P-384 CA"
[ "$(conns)" = "$c0" ] || fail "ca init connected to a node"
