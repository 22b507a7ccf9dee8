#!/usr/bin/env bash
# Issue 12, "Node output and node files": a compromised node's bytes never
# reach the admin's terminal raw.  The node is hostile through its scripts
# (DBPKI_TEMPLATES), which is what a compromised node can do: print any
# bytes.  Escape sequences, C1 and bidi controls, and invalid UTF-8 must
# come back escaped (DESIGN "Text from outside"), in:
#  1. status: the client node's libpq line (engine_san.c);
#  2. rotate: the probe's malformed line, quoted as "near ..."
#     (engine_primary.c).
#  3. status: a NOTICE the PostgreSQL server sends (libpq's default
#     notice processor printed it raw): the node's superuser puts a
#     pg_is_in_recovery() that raises one ahead of pg_catalog in the
#     search_path of dbpki's role.
# The SSH exit-signal name (engine_node.c) cannot be forged through
# OpenSSH's sshd; test_engine.c's test_signal_name feeds it hostile bytes
# at the function that formats it.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.81
lab_dir
lab_up $NET primary,client

# ESC ] title BEL, ESC [ 2J (clear screen), C1 CSI (U+009B), RLO
# (U+202E), an invalid byte: each must show as an escape.
HOSTILE='\033]0;owned\007\033[2J\302\233\342\200\256\377'
mkdir -p "$LAB/tpl/postgres"
cp "$DBPKI_ROOT"/templates/postgres/*.sh "$LAB/tpl/postgres/"
cat >"$LAB/tpl/postgres/libpq-version.sh" <<EOF
printf 'DBPKI-LIBPQ psql (PostgreSQL) 14.2 $HOSTILE\n'
echo {{sentinel}}
EOF
cat >>"$LAB/tpl/postgres/probe.sh.new" <<EOF
printf 'DBPKI-PROBE data=yes state=$HOSTILE\n'
echo "\$SENTINEL"
EOF
mv "$LAB/tpl/postgres/probe.sh.new" "$LAB/tpl/postgres/probe.sh"
# A real cluster first (the shipped templates), for part 3.
"$DBPKI" bootstrap -c "$INI" >"$LAB/bootstrap.out" 2>&1 || { cat "$LAB/bootstrap.out"; fail "bootstrap failed"; }
export DBPKI_TEMPLATES=$LAB/tpl

# raw ESC, C0 other than tab/newline, DEL, C1 (UTF-8 C2 80-9F), bidi
# (E2 80 AA-AE, E2 81 A6-A9), and the invalid byte FF.
raw_controls() {
	LC_ALL=C grep -q $'[\x01-\x08\x0b\x0c\x0e-\x1f\x7f\xff]' "$1" ||
		LC_ALL=C grep -q $'\xc2[\x80-\x9f]' "$1" ||
		LC_ALL=C grep -q $'\xe2\x80[\xaa-\xae]' "$1" ||
		LC_ALL=C grep -q $'\xe2\x81[\xa6-\xa9]' "$1"
}
escaped() {
	grep -qF '\x1b]0;owned\x07\x1b[2J\u009b\u202e\xff' "$1"
}

# ---- 3 (set up): a server that talks back ------------------------------------
C=$LAB/nodes/node2/certs/current
psql -X -q -v ON_ERROR_STOP=1 -d "host=node1.lab.test hostaddr=$NET.11 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$C/dbca.crt sslcert=$C/client.crt sslkey=$C/client.key gssencmode=disable" >/dev/null <<EOF || fail "could not install the noisy function on node1"
CREATE SCHEMA noisy;
CREATE FUNCTION noisy.pg_is_in_recovery() RETURNS boolean LANGUAGE plpgsql AS \$\$
BEGIN
	RAISE NOTICE '%', convert_from('\\x1b5d303b6f776e6564071b5b324ac29be280ae'::bytea, 'UTF8') || 'end';
	RETURN pg_catalog.pg_is_in_recovery();
END \$\$;
ALTER ROLE postgres SET search_path = noisy, pg_catalog;
EOF

# ---- 1. status: the libpq line --------------------------------------------
rc=0
LC_ALL=C.UTF-8 "$DBPKI" status -c "$INI" >"$LAB/status.out" 2>&1 || rc=$?
grep -q 'libpq 14' "$LAB/status.out" || { cat "$LAB/status.out"; fail "status printed no libpq warning for the client node (exit $rc)"; }
if raw_controls "$LAB/status.out"; then
	cat -v "$LAB/status.out" | grep libpq
	fail "status: raw control bytes from node2's libpq line reached the terminal"
fi
escaped "$LAB/status.out" || { grep libpq "$LAB/status.out"; fail "status: the node's bytes are not shown escaped"; }
pass "status: a hostile libpq line is shown escaped"
grep -qF 'PostgreSQL server said: NOTICE:  \x1b]0;owned\x07\x1b[2J\u009b\u202eend' "$LAB/status.out" ||
	{ grep -a NOTICE "$LAB/status.out" | cat -v; fail "status: the server's NOTICE is not shown escaped"; }
pass "status: a hostile server NOTICE is shown escaped"

# ---- 2. rotate: the probe's "near ..." -------------------------------------
rc=0
LC_ALL=C.UTF-8 "$DBPKI" rotate -c "$INI" >"$LAB/rotate.out" 2>&1 || rc=$?
[ "$rc" != 0 ] || { cat "$LAB/rotate.out"; fail "rotate went on after a malformed probe"; }
grep -q 'malformed DBPKI-PROBE line (near' "$LAB/rotate.out" || { cat "$LAB/rotate.out"; fail "rotate did not quote the malformed probe line"; }
if raw_controls "$LAB/rotate.out"; then
	cat -v "$LAB/rotate.out" | grep near
	fail "rotate: raw control bytes from the probe reached the terminal"
fi
grep -qF 'near "state=\x1b]0;owned\x07\x1b[2J\u009b\u202e\xff' "$LAB/rotate.out" ||
	{ grep near "$LAB/rotate.out"; fail "rotate: the probe's bytes are not shown escaped"; }
pass "rotate: a hostile probe line is quoted escaped"
