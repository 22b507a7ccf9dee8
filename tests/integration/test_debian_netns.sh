#!/usr/bin/env bash
# Issue 15, "Done when": PostgreSQL as Debian installs it, on the netlab.
# One primary (p1), two replicas (r1, r2) and one client node (app1); every
# database node holds the running `main` cluster exactly as apt makes it
# (pg_createcluster 15 main, started); p1 and r2 emulate systemd hosts (the
# netlab's systemctl stand-in, and a sudo rule allowing postgres exactly
# `systemctl start|stop|restart|reload postgresql@15-main`).  One chained
# scenario, each step followed by the same independent checks (psql,
# openssl, pg_lsclusters; never dbpki's own code):
#   - verify-full to every database node by name and by address (psql and
#     openssl s_client from the admin side), serving the store's current
#     certificate;
#   - every replica streams over TLS from its own address, presenting a
#     client certificate, and the first pg_hba rule that matches its
#     replication connection on the primary says `cert`;
#   - pg_lsclusters shows each cluster online in its original data
#     directory (/var/lib/postgresql/15/main) with the cluster's own log;
#   - every setting in dbpki's conf.d file comes from that file
#     (pg_settings.sourcefile), none is pending a restart;
#   - localhost still connects (pg_isready -h localhost);
# and after certificate-only changes (renew, ca rollover) the systemctl log
# shows no restart (and no PostgreSQL start time moved).
#   1. bootstrap; checks;
#   2. reboot all; checks; count + checksum of a table, taken on the
#      primary before, equal on every node after;
#   3. renew --force under pgbench -C: 0 failed; reboot all; checks;
#   4. the served certificates made expired (each re-signed by the store's
#      CA with the same key, subject and SANs, valid only in the past, with
#      openssl ca); rotate; every row kept; reboot all; checks;
#   5. the three ca rollover stages (no restart); reboot all; checks;
#   6. bootstrap again changes nothing on any node nor in the store: (a)
#      the bytes of every file in effect, no restart; (b) no file rewritten,
#      no new release.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
. "$DBPKI_ROOT/tests/lab/netlab/testlib.sh"
PGB_PID=
on_exit() {
	# pgbench runs in the admin namespace (netlab.sh down stops it there by
	# its PID); this stops the netlab.sh exec that waits for it.
	[ -z "$PGB_PID" ] || kill "$PGB_PID" 2>/dev/null || true
}

DB="p1 r1 r2"
REPLICAS="r1 r2"
SYSTEMD_NODES="p1 r2"
PGDATA=/var/lib/postgresql/15/main
CONF=/etc/postgresql/15/main
DBPKI_CONF=$CONF/conf.d/dbpki.conf
T0=$SECONDS
netlab_up p1:primary:debian:systemd:sudo r1:replica:debian r2:replica:debian:systemd:sudo app1:client
grep -q '^layout = debian' "$INI" || fail "netlab.sh inventory did not list the nodes as debian-layout"

step() { echo "---- $* ($((SECONDS - T0)) s)"; }

# ---------------------------------------------------------------- the checks
APPC=$(nfs app1)/home/dbpkiapp/certs/current # what the application holds
conn() { # NODE-or-ADDRESS
	echo "host=$1 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$APPC/dbca.crt sslcert=$APPC/client.crt sslkey=$APPC/client.key gssencmode=disable connect_timeout=10"
}
q() { # NODE SQL: verify-full by name from the admin side
	adm psql -X -At -d "$(conn "$1.lab.test")" -c "$2"
}
local_sql() { # NODE SQL: as postgres over the node's own unix socket
	echo "$2" | on "$1" psql -X -At -v ON_ERROR_STOP=1
}
store_serial() { # kind node
	awk -F'\t' -v k="$1" -v n="$2" '$2=="active" && $3==k && $4==n {print $1}' "$LAB/state/index.tsv"
}
served() { # NODE HOST-FLAG VALUE: serial served, verified against the app's dbca
	local res
	res=$(adm openssl s_client -starttls postgres -connect "$(naddr "$1"):5432" -CAfile "$APPC/dbca.crt" \
		-verify_return_error "$2" "$3" </dev/null 2>&1) ||
		{ echo "$res" | grep -E 'verify|error' | head -3 >&2; return 1; }
	echo "$res" | openssl x509 -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'
}
checksum() { # NODE: count and checksum of table t
	q "$1" "SELECT count(*) || ':' || md5(string_agg(id || '=' || v, ',' ORDER BY id)) FROM t"
}

check_tls() { # LABEL: verify-full by name and by address, the store's certificate
	local n s
	for n in $DB; do
		[ "$(q "$n" 'SELECT 1')" = 1 ] || fail "$1: psql verify-full to $n by name failed"
		[ "$(adm psql -X -At -d "$(conn "$(naddr "$n")")" -c 'SELECT 1')" = 1 ] ||
			fail "$1: psql verify-full to $n by its address $(naddr "$n") failed"
		s=$(served "$n" -verify_hostname "$n.lab.test") || fail "$1: openssl s_client: $n's certificate does not verify by name"
		[ "$(served "$n" -verify_ip "$(naddr "$n")")" = "$s" ] || fail "$1: openssl s_client: $n's certificate does not verify by address"
		[ "$s" = "$(store_serial server "$n")" ] ||
			fail "$1: $n serves serial $s, the store's current server certificate for it is $(store_serial server "$n")"
	done
}

check_streaming() { # LABEL: each replica over TLS, client certificate, pg_hba cert
	local n row auth _
	for n in $REPLICAS; do
		row=""
		for _ in $(seq 1 150); do # a rebooted replica reconnects within seconds
			row=$(q p1 "SELECT r.usename || ' ' || s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND s.client_dn IS NOT NULL AND host(r.client_addr) = '$(naddr "$n")'" 2>/dev/null || true)
			[ -n "$row" ] && break
			sleep 0.2
		done
		[ -n "$row" ] || fail "$1: $n does not stream over TLS with a client certificate from its address $(naddr "$n")"
		# The first rule of the primary's hba file that matches this
		# connection (replication, its user, its address) decides the
		# method: it must be cert.
		auth=$(q p1 "SELECT auth_method FROM pg_hba_file_rules WHERE error IS NULL AND type IN ('host','hostssl') AND database && ARRAY['replication','all'] AND user_name && ARRAY['${row%% *}','all'] AND ((address ~ '^[0-9.]+\$' AND (address::inet & netmask::inet) = ('$(naddr "$n")'::inet & netmask::inet)) OR address = 'all') ORDER BY line_number LIMIT 1")
		[ "$auth" = cert ] || fail "$1: the first pg_hba rule on p1 for $n's replication connection says '$auth', not cert"
	done
}

node_state() { # NODE: pg_lsclusters, pg_settings, localhost, in one SSH session
	on "$1" bash -s <<'EOF'
pg_lsclusters -h
echo "@@settings"
psql -X -At -F '|' -c "SELECT name, coalesce(sourcefile, source), pending_restart, setting FROM pg_settings"
echo "@@localhost"
pg_isready -q -h localhost -p 5432 && echo "localhost ok"
pg_isready -q -h 127.0.0.1 -p 5432 && echo "127.0.0.1 ok"
exit 0
EOF
}

check_clusters() { # LABEL: pg_lsclusters, dbpki's conf.d file, localhost
	local n st line want names name src pend f
	for n in $DB; do
		st=$(node_state "$n") || fail "$1: cannot read $n's state over SSH"
		line=$(echo "$st" | sed '/^@@settings$/,$d')
		[ "$(echo "$line" | wc -l)" = 1 ] || fail "$1: $n lists more than one cluster: $line"
		want=online
		[ "$n" = p1 ] || want=online,recovery
		read -r -a f <<<"$line"
		[ "${f[0]} ${f[1]} ${f[2]} ${f[3]} ${f[5]} ${f[6]}" = "15 main 5432 $want $PGDATA /var/log/postgresql/postgresql-15-main.log" ] ||
			fail "$1: $n: pg_lsclusters says '$line'; expected 15 main $want in $PGDATA with the cluster's own log"
		[ -f "$(nfs "$n")$DBPKI_CONF" ] || fail "$1: $n has no $DBPKI_CONF"
		names=$(sed -n 's/^[[:space:]]*\([a-z_]*\)[[:space:]]*=.*/\1/p' "$(nfs "$n")$DBPKI_CONF")
		for name in ssl ssl_cert_file ssl_key_file ssl_ca_file listen_addresses; do
			echo "$names" | grep -qx "$name" || fail "$1: $n: $DBPKI_CONF does not set $name"
		done
		for name in $names; do
			src=$(echo "$st" | awk -F'|' -v k="$name" '$1 == k {print $2}')
			[ "$src" = "$DBPKI_CONF" ] || fail "$1: $n: $name comes from '$src', not from $DBPKI_CONF (pg_settings.sourcefile)"
		done
		pend=$(echo "$st" | awk -F'|' '$3 == "t" {print $1}' | tr '\n' ' ')
		[ -z "$pend" ] || fail "$1: $n: settings pending a restart: $pend"
		echo "$st" | grep -qx 'ssl|.*|f|on' || fail "$1: $n: ssl is not on"
		echo "$st" | grep -qx 'localhost ok' || fail "$1: $n: localhost does not connect (pg_isready -h localhost)"
		echo "$st" | grep -qx '127.0.0.1 ok' || fail "$1: $n: 127.0.0.1 does not connect (pg_isready)"
	done
}

checks() { # LABEL
	local t=$SECONDS
	check_tls "$1"
	check_streaming "$1"
	check_clusters "$1"
	echo "($1: checks took $((SECONDS - t)) s)"
	pass "$1: verify-full by name and address (psql, openssl), replicas stream over TLS with cert auth, pg_lsclusters online in $PGDATA, dbpki.conf's settings in effect from it, localhost connects"
}

# systemctl log and start times around a certificate-only change
declare -A SLOG START
mark() {
	local n
	for n in $SYSTEMD_NODES; do SLOG[$n]=$(wc -l <"$LAB/nodes/$n/ctl/systemctl.log"); done
	for n in $DB; do START[$n]=$(q "$n" 'SELECT pg_postmaster_start_time()'); done
}
no_restart_since_mark() { # LABEL
	local n new
	for n in $SYSTEMD_NODES; do
		new=$(tail -n +"$((SLOG[$n] + 1))" "$LAB/nodes/$n/ctl/systemctl.log")
		! echo "$new" | grep -Eq '^systemctl uid=[0-9]+ (start|stop|restart) ' ||
			{ echo "$new"; fail "$1: $n's systemctl log shows a start/stop/restart on a certificate-only change"; }
	done
	for n in $DB; do
		[ "$(q "$n" 'SELECT pg_postmaster_start_time()')" = "${START[$n]}" ] || fail "$1: $n's PostgreSQL restarted"
	done
	pass "$1: no start/stop/restart in the systemctl log of $SYSTEMD_NODES, no PostgreSQL start time moved"
}

reboot_all() { # LABEL
	local before n got _
	local t=$SECONDS
	before=$(checksum p1)
	"$NETLAB" reboot all >"$LAB/reboot.txt" 2>&1 || { cat "$LAB/reboot.txt"; fail "$1: netlab.sh reboot all failed"; }
	echo "($1: reboot all took $((SECONDS - t)) s)"
	checks "$1, after reboot all"
	for n in $DB; do
		got=""
		for _ in $(seq 1 100); do
			got=$(checksum "$n" 2>/dev/null || true)
			[ "$got" = "$before" ] && break
			sleep 0.2
		done
		[ "$got" = "$before" ] || fail "$1: after reboot all, table t on $n is '$got'; on p1 before it was '$before'"
	done
	pass "$1: after reboot all, table t (count:checksum $before) is equal on every node"
}

run_dbpki() { # LABEL ARGS...: exit 0 or the output and fail
	local label=$1 rc=0 t=$SECONDS
	shift
	dbpki "$@" -c "$INI" >"$LAB/out.txt" 2>&1 || rc=$?
	[ "$rc" = 0 ] || { tail -n 40 "$LAB/out.txt"; fail "$label: dbpki $* exited $rc"; }
	echo "($label: dbpki $* took $((SECONDS - t)) s)"
}

# ---------------------------------------------------------------- 1. bootstrap
step "1. bootstrap"
for n in $DB; do
	on "$n" pg_lsclusters -h | grep -q "^15 *main *5432 *online .*$PGDATA" || fail "$n: no stock 15/main online before bootstrap"
done
run_dbpki "1. bootstrap" bootstrap
q p1 "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1,1000) g" >/dev/null
checks "1. bootstrap"
# dbpki started and stopped the clusters of the systemd hosts through
# systemctl: nothing else may start them there (pg_ctlcluster as postgres
# is refused by a real systemd host).
for n in $SYSTEMD_NODES; do
	grep -Eq '^systemctl uid=0 (restart|start) postgresql@15-main$' "$LAB/nodes/$n/ctl/systemctl.log" ||
		fail "1. bootstrap: $n's systemctl log has no start/restart of postgresql@15-main by root (sudo)"
done
pass "1. bootstrap: the systemd hosts' clusters were (re)started through sudo systemctl"

# ---------------------------------------------------------------- 2. reboot all
step "2. reboot all"
reboot_all "2. reboot all"

# ---------------------------------------------------------------- 3. renew --force under load
step "3. renew --force under pgbench -C"
PGENV=(env PGHOST=p1.lab.test PGPORT=5432 PGUSER=postgres PGDATABASE=postgres PGSSLMODE=verify-full
	PGSSLROOTCERT="$APPC/dbca.crt" PGSSLCERT="$APPC/client.crt" PGSSLKEY="$APPC/client.key"
	PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10)
adm "${PGENV[@]}" pgbench -i -s 1 -q >"$LAB/pgbench-init.txt" 2>&1 || { cat "$LAB/pgbench-init.txt"; fail "pgbench -i"; }
mark
# A new TLS connection per transaction (-C); renew starts 1 s in and must
# be over before pgbench is.
pgbench_start "${PGENV[@]}" pgbench -C -c 2 -j 2 -T 12 -n
run_dbpki "3. renew" renew --force
pgbench_done "3. renew --force"
no_restart_since_mark "3. renew --force"
checks "3. renew --force"
reboot_all "3. renew --force"

# ---------------------------------------------------------------- 4. expired, rotate
step "4. certificates expired, then rotate"
# Time cannot be moved forward on the nodes, so each certificate a node
# holds is made expired: re-signed by the store's dbca with its own key,
# subject and extensions, valid only in the past (openssl ca -startdate/
# -enddate), written over the file in place (owner and mode kept), then the
# servers reload.  Nothing of dbpki runs here.
EXP=$LAB/expire
mkdir -m 0700 "$EXP"
cat >"$EXP/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
database = $EXP/index.txt
new_certs_dir = $EXP
serial = $EXP/serial
default_md = sha256
policy = p
copy_extensions = copyall
unique_subject = no
[p]
commonName = supplied
EOF
: >"$EXP/index.txt"
openssl rand -hex 16 >"$EXP/serial"
expire() { # CERT-FILE KEY-FILE (host paths)
	openssl x509 -x509toreq -in "$1" -signkey "$2" -copy_extensions copyall -out "$EXP/req.pem" 2>"$EXP/err" ||
		{ cat "$EXP/err"; fail "4. openssl x509 -x509toreq $1"; }
	openssl ca -batch -config "$EXP/ca.cnf" -cert "$LAB/state/ca/dbca.crt" -keyfile "$LAB/state/ca/dbca.key" \
		-in "$EXP/req.pem" -out "$EXP/new.pem" -notext -preserveDN \
		-startdate 20240101000000Z -enddate 20240301000000Z 2>"$EXP/err" ||
		{ cat "$EXP/err"; fail "4. openssl ca could not re-sign $1"; }
	cat "$EXP/new.pem" >"$1"
}
node_current() { # NODE: host path of the release its cert_dir/current names
	local link t
	link=$(nfs "$1")/var/lib/postgresql/dbpki/current
	[ "$1" != app1 ] || link=$APPC
	t=$(readlink "$link") || return 1
	case $t in /*) echo "$(nfs "$1")$t" ;; *) echo "$(dirname "$link")/$t" ;; esac
}
nexp=0
for n in $DB app1; do
	cur=$(node_current "$n") || fail "4. $n: no cert_dir/current symlink"
	[ -d "$cur" ] || fail "4. $n has no current certificate directory ($cur)"
	for crt in "$cur"/*.crt; do
		case ${crt##*/} in dbca*) continue ;; esac
		key=${crt%.crt}.key
		[ -f "$key" ] || fail "4. $n: $crt has no key beside it"
		expire "$crt" "$key"
		nexp=$((nexp + 1))
	done
done
[ "$nexp" -ge 4 ] || fail "4. only $nexp certificates found to expire"
for n in $DB; do local_sql "$n" 'SELECT pg_reload_conf()' >/dev/null; done
for n in $DB; do
	out=$(adm openssl s_client -starttls postgres -connect "$(naddr "$n"):5432" -CAfile "$APPC/dbca.crt" \
		-verify_return_error -verify_hostname "$n.lab.test" </dev/null 2>&1) &&
		fail "4. $n's certificate still verifies after it was made expired"
	echo "$out" | grep -q 'certificate has expired' || { echo "$out" | tail -5; fail "4. $n refused, but not as expired"; }
done
pass "4. $nexp certificates made expired on the nodes: every node's served certificate fails verification as expired"
sum_before=$(local_sql p1 "SELECT count(*) || ':' || md5(string_agg(id || '=' || v, ',' ORDER BY id)) FROM t")
run_dbpki "4. rotate" rotate
for n in $DB; do
	[ "$(checksum "$n")" = "$sum_before" ] || fail "4. rotate: table t on $n is '$(checksum "$n")', before it was '$sum_before'"
done
pass "4. rotate: every row of t kept on every node ($sum_before)"
checks "4. rotate"
reboot_all "4. rotate"

# ---------------------------------------------------------------- 5. ca rollover
step "5. ca rollover"
mark
for s in 1 2 3; do
	run_dbpki "5. ca rollover stage $s" ca rollover --stage "$s"
	grep -q "^CA rollover: stage $s of 3 done" "$LAB/out.txt" || { cat "$LAB/out.txt"; fail "5. stage $s: no result line"; }
done
no_restart_since_mark "5. ca rollover"
checks "5. ca rollover"
reboot_all "5. ca rollover"

# ---------------------------------------------------------------- 6. bootstrap again
step "6. bootstrap again"
# 6a: what is in effect: the bytes of every file, no restart, no systemctl call.
content() {
	local n f cur
	for n in $DB; do
		f=$(nfs "$n")
		(cd "$f/etc/postgresql" && find . -type f -exec sha256sum {} + | sort | sed "s|^|$n etc |")
		(cd "$f/etc/postgresql" && find . -printf "$n etc %p %y %m %U\n" | sort)
		cur=$(node_current "$n") || fail "6. $n: no cert_dir/current symlink"
		(cd "$cur" && find . -type f -exec sha256sum {} + | sort | sed "s|^|$n current |")
		for p in postgresql.auto.conf standby.signal; do
			[ ! -e "$f$PGDATA/$p" ] || sha256sum "$f$PGDATA/$p" | sed "s|$f||; s|^|$n |"
		done
		find "$f${PGDATA%/*}" -maxdepth 1 -name "main*" | sort | sed "s|^$f|$n |"
		echo "$n start $(q "$n" 'SELECT pg_postmaster_start_time()')"
		echo "$n sysid $(local_sql "$n" 'SELECT system_identifier FROM pg_control_system()')"
	done
	for n in $SYSTEMD_NODES; do echo "$n systemctl $(wc -l <"$LAB/nodes/$n/ctl/systemctl.log")"; done
	# (the journal records every run; verify/ holds the client files status
	# and bootstrap refresh for their own connections: neither is the PKI)
	(cd "$LAB/state" && find . \( -path ./journal -o -path ./verify \) -prune -o -type f ! -name lock -exec sha256sum {} + | sort)
}
# 6b: and nothing rewritten on the nodes: every file and symlink with its
# mtime, every release name as it was.  (Directory mtimes are left out: a
# release is uploaded, found equal to current and removed again, which
# touches releases/ but nothing PostgreSQL or a client reads.  In the store,
# index.tsv is rewritten with the same bytes today: the store is compared
# by content in 6a and here by its set of files.)
untouched() {
	local n f
	for n in $DB; do
		f=$(nfs "$n")
		find "$f/etc/postgresql" "$f/var/lib/postgresql/dbpki" ! -type d -printf "$n %P %y %m %U %s %T@ %l\n" | sort
		find "$f/etc/postgresql" "$f/var/lib/postgresql/dbpki" -type d -printf "$n %P %y %m %U\n" | sort
	done
	find "$LAB/state" \( -path "$LAB/state/journal" -o -path "$LAB/state/verify" \) -prune -o ! -name lock -printf '%P %y %m\n' | sort
}
content >"$LAB/content-before.txt"
untouched >"$LAB/untouched-before.txt"
grep -q "^p1 etc ./15/main/conf.d/dbpki.conf " "$LAB/content-before.txt" || fail "6. the snapshot does not see dbpki.conf"
grep -q "^p1 current .*server.crt" "$LAB/content-before.txt" || fail "6. the snapshot does not see p1's served certificate"
sleep 1 # an mtime rewritten by mistake would differ
run_dbpki "6. bootstrap again" bootstrap
content >"$LAB/content-after.txt"
untouched >"$LAB/untouched-after.txt"
diff "$LAB/content-before.txt" "$LAB/content-after.txt" ||
	fail "6a. the second bootstrap changed what is in effect (diff above)"
pass "6a. bootstrap again: the bytes of every file under /etc/postgresql, of every release current names and of the store unchanged; no restart, no systemctl call, same database systems and data directories"
diff "$LAB/untouched-before.txt" "$LAB/untouched-after.txt" ||
	fail "6b. the second bootstrap rewrote files or made a new release (diff above: mtimes, release names)"
pass "6b. bootstrap again: nothing rewritten on any node nor in the store, no new release"
step "done"
