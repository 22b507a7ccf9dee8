#!/usr/bin/env bash
# Issue 13: `make && make install PREFIX=/usr DESTDIR=...` gives a tree that
# works and is complete.
#   - the installed binary runs `plan` from / with no environment at all and
#     finds its playbooks beside itself (BINDIR/../share/dbpki), and fails
#     with the documented message once they are gone;
#   - --version is the version templates/packaging/version.sh computes;
#   - dbpki(1) and dbpki-inventory(5) are installed, mandoc -Tlint finds no
#     warning, `man -l` renders them; every command of `dbpki --help`, every
#     option in src/cli_*.c and in each command's --help is in dbpki(1), in
#     that command's entry; every key src/config.c accepts is in
#     dbpki-inventory(5), in its section, and in docs/inventory.md;
#   - bash and zsh completion are installed and know every command and
#     every option of every command;
#   - the units are in UNITDIR and name /usr/bin/dbpki, none /usr/local;
#   - the example inventory and every runbook a message names (docs/X.md)
#     are installed where dbpki --help says.
# Builds its own copy of dbpki (plain make, as a user would) in a
# temporary BUILD; touches nothing outside it.  No network.
set -euo pipefail
: "${DBPKI_ROOT:?}"
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
pass() { echo "ok: $*"; }
R=$DBPKI_ROOT
T=$(mktemp -d /tmp/dbpki-install.XXXXXX)
trap 'rm -rf "$T"' EXIT
D=$T/root
B=$T/build

# 1. As the README says: make, then make install with another PREFIX.
make -C "$R" -j2 BUILD="$B" all >"$T/make.log" 2>&1 || {
	tail -20 "$T/make.log"
	fail "make all failed (log above)"
}
make -C "$R" BUILD="$B" install PREFIX=/usr DESTDIR="$D" >"$T/install.log" 2>&1 || {
	tail -20 "$T/install.log"
	fail "make install PREFIX=/usr DESTDIR=$D failed (log above)"
}
grep -q -- "-DDBPKI_DATADIR='\"/usr/share/dbpki\"'" "$T/install.log" ||
	fail "make install PREFIX=/usr did not rebuild template.o with DATADIR=/usr/share/dbpki"
BIN=$D/usr/bin/dbpki
[ -x "$BIN" ] || fail "$BIN not installed"
pass "make && make install PREFIX=/usr DESTDIR=..."

# CPPFLAGS and LDFLAGS reach every compile and the link, and a package build
# can drop -Werror; a change of them rebuilds every object (make -n prints
# what it would run).
make -n -C "$R" BUILD="$B" all CPPFLAGS=-DDBPKI_TEST_CPPFLAGS LDFLAGS=-Wl,-z,now WERROR= \
	>"$T/flags.out" 2>&1 || { cat "$T/flags.out"; fail "make -n with CPPFLAGS/LDFLAGS failed"; }
n_src=$(ls "$R"/src/*.c | wc -l)
n_cc=$(grep -c -- "-DDBPKI_TEST_CPPFLAGS .* -c -o $B/" "$T/flags.out" || true)
[ "$n_cc" = "$n_src" ] || fail "CPPFLAGS reached $n_cc of $n_src compiles"
grep -q -- "-Wl,-z,now -o $B/dbpki " "$T/flags.out" || fail "LDFLAGS did not reach the link"
! grep -q -- -Werror "$T/flags.out" || fail "WERROR= did not drop -Werror"
pass "CPPFLAGS/LDFLAGS honoured and rebuild everything, WERROR= drops -Werror"

# 2. plan from /, no environment variables, data found beside the binary.
sed '/^identity/d' "$D/usr/share/doc/dbpki/examples/cluster.ini.example" >"$T/cluster.ini"
chmod 0600 "$T/cluster.ini"
(cd / && env -i "$BIN" plan -c "$T/cluster.ini" bootstrap) >"$T/plan.out" 2>&1 ||
	{ cat "$T/plan.out"; fail "installed dbpki plan failed"; }
grep -q "^plan: playbook bootstrap ($D/usr/share/dbpki/playbooks/bootstrap.ini)$" "$T/plan.out" ||
	{ head -3 "$T/plan.out"; fail "plan did not read the installed playbook"; }
grep -q "templates/postgres/common.sh" "$T/plan.out" || fail "plan rendered no node script"
pass "installed dbpki plans from / with no environment"
# Without the data beside it, the binary must say what it tried (unless a
# real /usr/share/dbpki exists on this machine, where it would be used).
if [ ! -e /usr/share/dbpki ]; then
	mv "$D/usr/share/dbpki" "$T/moved"
	if (cd / && env -i "$BIN" plan -c "$T/cluster.ini" bootstrap) >"$T/plan2.out" 2>&1; then
		fail "plan worked without any playbooks"
	fi
	grep -q "cannot find dbpki's \(playbooks\|templates\): .*share/dbpki" "$T/plan2.out" ||
		{ cat "$T/plan2.out"; fail "no clear message without the data"; }
	mv "$T/moved" "$D/usr/share/dbpki"
	pass "without share/dbpki: $(head -1 "$T/plan2.out" | cut -c1-80)..."
fi

want=$("$R/templates/packaging/version.sh")
got=$(env -i "$BIN" --version)
[ "$got" = "dbpki $want" ] || fail "--version says '$got', version.sh '$want'"
case $want in [0-9]*) ;; *) fail "version '$want' does not start with a digit (Debian)" ;; esac
pass "--version: $got"

# 3. Man pages: lint, render.
M1=$D/usr/share/man/man1/dbpki.1
M5=$D/usr/share/man/man5/dbpki-inventory.5
for m in "$M1" "$M5"; do
	[ -f "$m" ] || fail "$m not installed"
	mandoc -Tlint -W warning "$m" >"$T/lint" 2>&1 || {
		cat "$T/lint"
		fail "mandoc -Tlint: $m"
	}
	MANWIDTH=80 man -l "$m" 2>"$T/man.err" | col -b >"$T/$(basename "$m").txt"
	[ ! -s "$T/man.err" ] || { cat "$T/man.err"; fail "man -l $m complained"; }
	grep -q '^NAME' "$T/$(basename "$m").txt" || fail "man -l $m rendered no NAME section"
done
grep -q 'dbpki — certificates for database clusters' "$T/dbpki.1.txt" || fail "man -l dbpki.1: no NAME line"
pass "man pages lint clean and render"

# 4. Every command and option of the CLI is in dbpki(1).
cmds=$(env -i "$BIN" --help | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
[ "$(echo "$cmds" | wc -w)" -ge 16 ] || fail "dbpki --help lists only: $cmds"
# The lines of one command's entries in the mdoc source (.It Nm Cm CMD ...
# up to the next entry of another command).
entry() {
	awk -v c="$1" '/^\.It Nm Cm /{ on = ($4 == c) } /^\.El/{ on = 0 } on' "$R/docs/dbpki.1"
}
common=$(sed -n '/^\.Ss Options common/,/^\.El/p' "$R/docs/dbpki.1")
for c in $cmds; do
	e=$(entry "$c")
	[ -n "$e" ] || fail "dbpki(1) has no entry for command $c (.It Nm Cm $c)"
	# every --option of the usage lines `dbpki $c --help` prints (the
	# "usage:" line and the deeper-indented lines after it, not the prose)
	for o in $("$BIN" "$c" --help 2>&1 | awk '/^usage:/{ on = 1; print; next }
		on && /^     /{ print; next } { on = 0 }' | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		echo "$e" | grep -q -- "Fl -${o#--}\b" ||
			echo "$common" | grep -q -- "Fl -${o#--}\b" ||
			fail "dbpki(1): command $c lacks option $o (its --help shows it)"
		grep -q -- "$o\b" "$R/templates/completion/dbpki.bash" ||
			fail "bash completion lacks $o of $c"
		awk -v c="$c)" '$1 == c { on = 1; next } /^\t;;/{ on = 0 } on' \
			"$R/templates/completion/_dbpki" | grep -q -- "$o\b" ||
			[[ $o = --help || $o = --config ]] ||
			fail "zsh completion: command $c lacks $o"
	done
	grep -q "^	$c) opts=" "$R/templates/completion/dbpki.bash" ||
		fail "bash completion has no case for command $c"
	grep -q "^	'$c:" "$R/templates/completion/_dbpki" ||
		fail "zsh completion does not list command $c"
	grep -q "^$c)" "$R/templates/completion/_dbpki" ||
		fail "zsh completion has no case for command $c"
done
pass "dbpki(1) and both completions have every command: $(echo $cmds)"
# Every long option of every getopt table, and every short one.
longs=$(grep -ho '{"[a-z][a-z-]*", *\(no\|required\|optional\)_argument' "$R"/src/cli_*.c |
	sed 's/{"\([^"]*\)".*/\1/' | sort -u)
[ "$(echo "$longs" | wc -w)" -ge 20 ] || fail "found only these options in src/cli_*.c: $longs"
for o in $longs; do
	grep -q -- "Fl -$o\b" "$R/docs/dbpki.1" || fail "dbpki(1) lacks --$o (src/cli_*.c accepts it)"
	grep -q -- "--$o\b" "$T/dbpki.1.txt" || fail "rendered dbpki(1) lacks --$o"
	grep -q -- "--$o\b" "$R/templates/completion/dbpki.bash" || fail "bash completion lacks --$o"
	grep -q -- "--$o\b" "$R/templates/completion/_dbpki" || fail "zsh completion lacks --$o"
done
shorts=$(grep -ho 'getopt_long(argc, argv, "[^"]*"' "$R"/src/cli_*.c |
	sed 's/.*"\([^"]*\)"/\1/' | tr -d ':\n' | fold -w1 | sort -u)
for o in $shorts; do
	grep -q "Fl $o\b" "$R/docs/dbpki.1" || fail "dbpki(1) lacks -$o (a getopt string accepts it)"
done
pass "dbpki(1) has every option: $(echo $longs) and -$(echo $shorts | tr -d ' ')"

# 5. Every key config.c accepts: in dbpki-inventory(5), in its section, and
# in docs/inventory.md.
keys=$(grep -ho '^ *\(CL\|SSH\|PG\|NODE\)("[a-z_]*"\|^ *SEC("[a-z]*", *"[a-z_]*"' "$R/src/config.c" |
	sed 's/^ *CL("/cluster /; s/^ *SSH("/ssh /; s/^ *PG("/postgres /; s/^ *NODE("/node /;
	     s/^ *SEC("\([a-z]*\)", *"/\1 /; s/"$//' | tr ' ' ':')
grep -q 'strcmp(key, "ssh_port")' "$R/src/config.c" && keys="$keys node:ssh_port"
[ "$(echo "$keys" | wc -w)" -ge 30 ] || fail "found only these keys in config.c: $keys"
for sk in $keys; do
	s=${sk%%:*} k=${sk#*:}
	hdr="The [$s] section"
	[ "$s" = node ] && hdr="The [node NAME] section"
	sed -n "/^\.Ss $(printf '%s' "$hdr" | sed 's/[][]/\\&/g')\$/,/^\.Ss /p" "$R/docs/dbpki-inventory.5" |
		grep -q "^\.It Ic $k No" || fail "dbpki-inventory(5): section [$s] lacks key $k"
	grep -q "\`$k\`" "$R/docs/inventory.md" || fail "docs/inventory.md does not mention \`$k\` ([$s])"
done
pass "every inventory key ($(echo "$keys" | wc -w)) in dbpki-inventory(5) and docs/inventory.md"

# 6. Completion installed; bash loads it and completes a command.
BC=$D/usr/share/bash-completion/completions/dbpki
ZC=$D/usr/share/zsh/site-functions/_dbpki
[ -f "$BC" ] && [ -f "$ZC" ] || fail "completion not installed ($BC, $ZC)"
out=$(bash -c '. "$1"; COMP_WORDS=(dbpki iss); COMP_CWORD=1; _dbpki; echo "${COMPREPLY[*]}"' _ "$BC")
[ "$out" = "issue issue-client" ] || fail "bash completion of 'dbpki iss' gave '$out'"
out=$(bash -c '. "$1"; COMP_WORDS=(dbpki renew --f); COMP_CWORD=2; _dbpki; echo "${COMPREPLY[*]}"' _ "$BC")
[ "$out" = "--force" ] || fail "bash completion of 'dbpki renew --f' gave '$out'"
command -v zsh >/dev/null || fail "zsh is missing; make check-build installs it"
zsh -n "$ZC" || fail "zsh -n $ZC"
pass "completion installed and working"

# 7. Units: in UNITDIR (/lib/systemd/system for PREFIX=/usr), real paths.
U=$D/lib/systemd/system
for u in "$R"/templates/systemd/*; do
	[ -f "$U/${u##*/}" ] || fail "unit ${u##*/} not installed in /lib/systemd/system"
done
if grep -rl /usr/local "$D" >"$T/local" 2>/dev/null; then
	# The runbooks may mention /usr/local as make install's default; units,
	# the binary's data and completion must not.
	grep -v "^$D/usr/share/doc/" "$T/local" | grep -v "^$D/usr/share/man/" >"$T/bad" || true
	[ ! -s "$T/bad" ] || fail "these installed files name /usr/local: $(cat "$T/bad")"
fi
grep -q '^ExecStart=/usr/bin/dbpki renew -c /etc/dbpki/%i.ini$' "$U/dbpki-renew@.service" ||
	fail "dbpki-renew@.service does not run /usr/bin/dbpki"
pass "units in /lib/systemd/system, naming /usr/bin/dbpki"

# 8. Example and runbooks where --help and the messages say.
[ -f "$D/usr/share/doc/dbpki/examples/cluster.ini.example" ] || fail "example inventory missing"
env -i "$BIN" --help | grep -q "/usr/share/doc/dbpki/docs/" ||
	fail "dbpki --help does not say where the runbooks are"
for d in $(grep -ho 'docs/[a-z0-9-]*\.md' "$R"/src/*.c | sort -u); do
	[ -f "$D/usr/share/doc/dbpki/$d" ] || fail "a message names $d; not installed as /usr/share/doc/dbpki/$d"
done
pass "example inventory and runbooks installed"

# 9. Nothing installed is writable by group or others (dbpki refuses such
# templates), and uninstall leaves no file behind.
bad=$(find "$D" -perm /022 ! -type l)
[ -z "$bad" ] || fail "group/other-writable: $bad"
make -C "$R" BUILD="$B" uninstall PREFIX=/usr DESTDIR="$D" >"$T/uninstall.log" 2>&1 ||
	fail "make uninstall failed"
left=$(find "$D" -type f)
[ -z "$left" ] || fail "make uninstall left: $left"
pass "uninstall removes every file"
