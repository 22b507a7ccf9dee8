#!/usr/bin/env bash
# Bootstrap (issue 4): wall time of `dbpki bootstrap` on a fresh lab, 1
# primary + 2 replicas and 1 primary + 6 replicas, and how much of it is
# PostgreSQL's own work.
#
#   dbpki     a fresh lab per run (lab.sh up), then `dbpki bootstrap --json`
#             timed from process start to exit: CA creation and issuance
#             (EC P-256, the lab's inventory), every step of
#             playbooks/bootstrap.ini, the libpq verification.  The --json
#             events are stamped as they arrive, which splits the run into
#             phases; the journal gives each node's time per step.  After
#             each run the script checks, without dbpki, that every replica
#             streams from the primary over TLS.
#   by hand   a fresh lab per run, the certificates put in place by dbpki
#             (not timed), then the PostgreSQL commands the node scripts
#             run, typed directly on the nodes as the lab user (no SSH, no
#             engine): initdb with the same options, the same settings,
#             pg_ctl start -w; per replica pg_basebackup -X stream -c fast
#             over verify-full with the dbclient certificate, the settings,
#             standby.signal, pg_ctl start -w; a psql check after each
#             start.  The replicas once one after the other, then (moved
#             aside and redone) all at once as dbpki's join step does, until
#             the primary shows them all streaming.
#   scripts   a fresh lab per run, the certificates put in place by dbpki
#             (not timed), then dbpki's own node scripts for initialize
#             (primary) and join (the replicas, all at once), as `dbpki
#             plan` renders them, fed to `sh -s` on the nodes as the lab
#             user: the node side of dbpki without SSH and without the
#             engine.
#
# PostgreSQL keeps its defaults (fsync on; initdb and pg_basebackup sync
# their files), as on a real node.
#
# PARALLEL=N sets the inventory's [cluster] parallel (default: the lab's
# inventory, 16, dbpki's default) and runs at most N replicas at once in
# the other two variants as well.  Every pg_basebackup -X stream holds two
# WAL senders and a temporary slot on the primary; dbpki's settings size
# max_wal_senders (2 per replica + 4, at least 10) and
# max_replication_slots (1 per replica + 4, at least 10) for all replicas
# cloning at once, and the by-hand variant writes the same.
#
#   TOPOS="3 7" (nodes: 1 primary + replicas)  RUNS=3  PARALLEL=
#   NET=127.0.67  NET_HAND=127.0.68  DBPKI=path/to/dbpki
set -eu
. "$(dirname "$0")/lib.sh"
bench_init
# the playbooks and templates of this checkout (or the installed ones)
unset DBPKI_PLAYBOOKS DBPKI_TEMPLATES

TOPOS=${TOPOS:-3 7}
RUNS=${RUNS:-3}
PARALLEL=${PARALLEL:-}
[ -z "$PARALLEL" ] || [ "$PARALLEL" -ge 1 ] || bench_die "PARALLEL: a number >= 1"
NET=${NET:-127.0.67}
NET_HAND=${NET_HAND:-127.0.68}
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/initdb" ] && command -v psql >/dev/null ||
	"$root/tests/lab/deps.sh"
USER_=$("$root/tests/lab/lab.sh" user)
as_lab() { runuser -u "$USER_" -- "$@"; }

roles_for() { # n -> primary,replica,...
	local r=primary
	for _ in $(seq 2 "$1"); do r=$r,replica; done
	echo "$r"
}

fresh_lab() { # net n name -> $LABDIR
	LABDIR=$(mktemp -d "$work/lab-XXXXXX")
	chmod 755 "$LABDIR"
	bench_lab_up "$LABDIR" "$1" "$(roles_for "$2")" "$3"
	[ -z "$PARALLEL" ] || sed -i "s/^parallel = .*/parallel = $PARALLEL/" "$LABDIR/cluster.ini"
}

# Run "fn lab net k" for k = 2..n, at most PARALLEL at a time (default all).
replicas_at_once() { # fn lab net n
	local fn=$1 lab=$2 net=$3 n=$4 k running=0 max=${PARALLEL:-$4}
	for k in $(seq 2 "$n"); do
		if [ "$running" -ge "$max" ]; then
			wait -n || bench_die "$fn: a replica failed"
			running=$((running - 1))
		fi
		"$fn" "$lab" "$net" "$k" &
		running=$((running + 1))
	done
	while [ "$running" -gt 0 ]; do
		wait -n || bench_die "$fn: a replica failed"
		running=$((running - 1))
	done
}

drop_lab() { # dir
	bench_lab_down "$1"
	rm -rf "$1"
}

# libpq from the admin side with the client files dbpki's verification
# wrote (root's, 0600): how many replicas stream over TLS with the dbclient
# certificate.
streaming_over_ssl() { # lab net
	local v=$1/state/verify
	psql -X -At -d "host=node1.lab.test hostaddr=$2.11 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$v/dbca.crt sslcert=$v/client.crt sslkey=$v/client.key gssencmode=disable connect_timeout=10" \
		-c "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl"
}

# ---- dbpki
# Phases from the stamped --json stream: start -> "N certificate(s)
# issued" (process start, inventory, CA created, leaves issued) ->
# "playbook ... on N node(s)" (pre-flight, journal) -> "step remove"
# (connect to every node) -> each step's start -> "bootstrap done" -> exit.
PHASES="ca+issue pre-flight connect-all remove certs initialize primary-up join connect(clients) verify close"
dbpki_phases() { # log total-ms
	awk -v total="$2" '
		function at(re) { return match($0, re) }
		at("certificate\\(s\\) issued") { t[1] = $1 }
		at("playbook bootstrap on") { t[2] = $1 }
		at("\"msg\":\"step remove\"") { t[3] = $1 }
		at("\"msg\":\"step certs\"") { t[4] = $1 }
		at("\"msg\":\"step initialize\"") { t[5] = $1 }
		at("\"msg\":\"step primary-up") { t[6] = $1 }
		at("\"msg\":\"step join\"") { t[7] = $1 }
		at("\"msg\":\"step connect\"") { t[8] = $1 }
		at("\"msg\":\"step verify") { t[9] = $1 }
		at("bootstrap done") { t[10] = $1 }
		END {
			t[0] = 0; t[11] = total
			for (i = 1; i <= 11; i++) printf "%d%s", t[i] - t[i - 1], i < 11 ? " " : "\n"
		}' "$1"
}

# The slowest node's time for an action, from the journal (node events).
journal_ms() { # lab action
	cat "$1"/state/journal/*.jsonl | awk -v a="\"action\":\"$2\"" '
		index($0, "\"event\":\"node\"") && index($0, a) {
			if (match($0, /"ms":"[0-9]+"/)) {
				v = substr($0, RSTART + 6, RLENGTH - 7) + 0
				if (v > m) m = v
			}
		}
		END { print m + 0 }'
}

declare -A D_MS D_PH D_J
run_dbpki() { # n run
	local lab n=$1 got
	fresh_lab "$NET" "$n" boot
	lab=$LABDIR
	if ! BENCH_STAMP=1 bench_measure dbpki "$DBPKI" bootstrap --json -c "$lab/cluster.ini"; then
		grep -ho 'FATAL: [^"\\]*' "$lab"/state/journal/*.jsonl 2>/dev/null | sort -u | sed 's/^/bench: on a node: /' >&2
		if grep -q 'exceeds max_wal_senders' "$lab"/state/journal/*.jsonl 2>/dev/null; then
			echo "bench: too many replicas cloned at once for max_wal_senders (see the header of $0); PARALLEL=4 measures the rest" >&2
		fi
		bench_die "dbpki bootstrap on $n nodes failed (run $2)"
	fi
	grep -q '"msg":"boot: bootstrap done"' "$BENCH_LOG" || bench_die "dbpki did not say done"
	got=$(streaming_over_ssl "$lab" "$NET") || bench_die "cannot query the primary after dbpki bootstrap"
	[ "$got" = $((n - 1)) ] || bench_die "after dbpki bootstrap $got of $((n - 1)) replicas stream over TLS"
	D_MS[$n]+="$BENCH_MS "
	D_PH[$n]+="$(dbpki_phases "$BENCH_LOG" "$BENCH_MS");"
	D_J[$n]+="$(journal_ms "$lab" initialize) $(journal_ms "$lab" join) $(journal_ms "$lab" certs) $(journal_ms "$lab" remove);"
	awk -v n="$n" -v r="$2" -v m="$BENCH_MS" \
		'BEGIN { printf "  %d nodes  run %d  dbpki bootstrap  %7.2f s\n", n, r, m / 1000 }' >&2
	drop_lab "$lab"
}

# ---- by hand
mkdir -p "$work/pb-certs"
cat >"$work/pb-certs/bootstrap.ini" <<'EOF'
[playbook]
name = bootstrap
description = benchmark set-up: put each node's certificates in place, nothing else

[step certs]
action = certs
roles = all
mode = parallel
upload = yes
on_failure = stop
EOF
chmod 0644 "$work/pb-certs/bootstrap.ini"

# The settings the node scripts write (templates/postgres/common.sh
# write_pg_conf), for node k of the lab in $1.
hand_conf() { # lab net k role
	local nd=$1/nodes/node$3 c r senders slots
	c=$nd/certs
	r=$(($(ls -d "$1"/nodes/node* | wc -l) - 1)) # every other node is a replica
	senders=$((2 * r + 4 > 10 ? 2 * r + 4 : 10))
	slots=$((r + 4 > 10 ? r + 4 : 10))
	as_lab sh -c "umask 077
cat >'$c/postgresql.bench.conf' <<EOF
listen_addresses = '$2.$((10 + $3))'
port = 5432
unix_socket_directories = '$nd/sock'
ssl = on
ssl_min_protocol_version = 'TLSv1.2'
wal_keep_size = '256MB'
max_wal_senders = $senders
max_replication_slots = $slots
ssl_cert_file = '$c/current/server.crt'
ssl_key_file = '$c/current/server.key'
ssl_ca_file = '$c/current/dbca.crt'
hba_file = '$c/pg_hba.conf'
ident_file = '$c/pg_ident.conf'
$([ "$4" = replica ] && echo "primary_conninfo = '$(hand_conninfo "$1" "$2" "$3")'")
EOF
printf '%s\n' 'local all all peer map=dbpki' \
	'hostssl all postgres 127.0.0.1/32 cert clientcert=verify-full' \
	'hostssl replication postgres 127.0.0.1/32 cert clientcert=verify-full' >'$c/pg_hba.conf'
printf '%s\n' 'dbpki $USER_ postgres' 'dbpki $USER_ $USER_' >'$c/pg_ident.conf'
echo \"include '$c/postgresql.bench.conf'\" >>'$nd/pgdata/postgresql.conf'"
}

hand_conninfo() { # lab net k
	local c=$1/nodes/node$3/certs/current
	echo "host=node1.lab.test hostaddr=$2.11 port=5432 user=postgres sslmode=verify-full sslrootcert=$c/dbca.crt sslcert=$c/client.crt sslkey=$c/client.key gssencmode=disable application_name=node$3"
}

hand_start() { # lab k want-recovery(t|f)
	local nd=$1/nodes/node$2
	as_lab "$PGBIN/pg_ctl" -D "$nd/pgdata" -l "$nd/postgresql.log" -w -t 120 start >/dev/null ||
		bench_die "by hand: node$2 did not start; see $nd/postgresql.log"
	as_lab "$PGBIN/pg_isready" -q -h "$nd/sock" -p 5432 || bench_die "by hand: node$2 not ready"
	[ "$(as_lab "$PGBIN/psql" -X -q -At -h "$nd/sock" -p 5432 -U postgres -d postgres -c 'SELECT pg_is_in_recovery()')" = "$3" ] ||
		bench_die "by hand: node$2: pg_is_in_recovery() is not $3"
}

hand_replica() { # lab net k: clone, configure, start
	local nd=$1/nodes/node$3
	as_lab "$PGBIN/pg_basebackup" -D "$nd/pgdata" -X stream -c fast -d "$(hand_conninfo "$1" "$2" "$3")" \
		>"$nd/basebackup.log" 2>&1 || bench_die "by hand: pg_basebackup into node$3 failed"
	as_lab chmod 700 "$nd/pgdata"
	as_lab touch "$nd/pgdata/standby.signal"
	hand_conf "$1" "$2" "$3" replica
	hand_start "$1" "$3" t
}

wait_streaming() { # lab n
	local got
	for _ in $(seq 1 600); do
		got=$(as_lab "$PGBIN/psql" -X -q -At -h "$1/nodes/node1/sock" -p 5432 -U postgres -d postgres \
			-c "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl")
		[ "$got" = $(($2 - 1)) ] && return 0
		sleep 0.1
	done
	bench_die "by hand: only $got of $(($2 - 1)) replicas streaming after 60 s"
}

# ---- dbpki's node scripts, without SSH
# The script `dbpki plan` shows for one step and node.
plan_script() { # lab step node
	"$DBPKI" plan -c "$1/cluster.ini" bootstrap 2>/dev/null | awk -v step="$2" -v node="$3" '
		/^step [0-9]+: / { s = $3; n = "" }
		/^    node / { n = $2 }
		s == step && n == node && /^        \|/ { sub(/^        \| ?/, ""); print }'
}

prepare_script() { # lab step k (not timed)
	local f=$1/script-$2-$3.sh
	plan_script "$1" "$2" "node$3" >"$f"
	tail -n 1 "$f" | grep -q 'SENTINEL' || bench_die "scripts: no $2 script for node$3 in dbpki plan"
}

join_script() { # lab net k
	run_script "$1" join "$3"
}

run_script() { # lab step k: run it as the lab user, check the sentinel
	local f=$1/script-$2-$3.sh
	as_lab sh -s <"$f" >"$f.out" 2>&1 || { tail -n 5 "$f.out" >&2; bench_die "scripts: $2 on node$3 failed"; }
	[ "$(tail -n 1 "$f.out")" = DBPKI-STEP-OK ] || bench_die "scripts: $2 on node$3 did not confirm success"
}

declare -A S_INIT S_JOIN
run_scripts() { # n run
	local lab n=$1 k t0 t1
	fresh_lab "$NET_HAND" "$n" hand
	lab=$LABDIR
	DBPKI_PLAYBOOKS=$work/pb-certs "$DBPKI" bootstrap -c "$lab/cluster.ini" >"$work/scripts-certs.log" 2>&1 ||
		bench_die "scripts: placing the certificates with dbpki failed; see $work/scripts-certs.log"
	prepare_script "$lab" initialize 1
	for k in $(seq 2 "$n"); do prepare_script "$lab" join "$k"; done
	t0=$(bench_now_ms)
	run_script "$lab" initialize 1
	t1=$(bench_now_ms)
	S_INIT[$n]+="$((t1 - t0)) "
	t0=$t1
	replicas_at_once join_script "$lab" "$NET_HAND" "$n"
	wait_streaming "$lab" "$n"
	t1=$(bench_now_ms)
	S_JOIN[$n]+="$((t1 - t0)) "
	awk -v n="$n" -v r="$2" -v a="${S_INIT[$n]##* }" -v j="$((t1 - t0))" 'BEGIN {
		printf "  %d nodes  run %d  scripts: join (all at once) %.2f s\n", n, r, j / 1000 }' >&2
	drop_lab "$lab"
}

declare -A H_INITDB H_START H_SER H_PAR H_BB
run_hand() { # n run
	local lab n=$1 k t0 t1 bb=0 ser
	fresh_lab "$NET_HAND" "$n" hand
	lab=$LABDIR
	DBPKI_PLAYBOOKS=$work/pb-certs "$DBPKI" bootstrap -c "$lab/cluster.ini" >"$work/hand-certs.log" 2>&1 ||
		bench_die "by hand: placing the certificates with dbpki failed; see $work/hand-certs.log"
	local nd=$lab/nodes/node1
	t0=$(bench_now_ms)
	as_lab "$PGBIN/initdb" -D "$nd/pgdata" -U postgres -E UTF8 --locale=C.UTF-8 --data-checksums \
		--auth-local=peer --auth-host=reject >"$nd/initdb.log" 2>&1 || bench_die "by hand: initdb failed"
	t1=$(bench_now_ms)
	H_INITDB[$n]+="$((t1 - t0)) "
	t0=$t1
	hand_conf "$lab" "$NET_HAND" 1 primary
	hand_start "$lab" 1 f
	t1=$(bench_now_ms)
	H_START[$n]+="$((t1 - t0)) "
	# one replica after the other
	t0=$(bench_now_ms)
	for k in $(seq 2 "$n"); do
		local b0
		b0=$(bench_now_ms)
		hand_replica "$lab" "$NET_HAND" "$k"
		bb=$((bb + $(bench_now_ms) - b0))
	done
	wait_streaming "$lab" "$n"
	t1=$(bench_now_ms)
	ser=$((t1 - t0))
	H_SER[$n]+="$ser "
	H_BB[$n]+="$((bb / (n - 1))) "
	# again, all at once
	for k in $(seq 2 "$n"); do
		as_lab "$PGBIN/pg_ctl" -D "$lab/nodes/node$k/pgdata" -m fast -w -t 60 stop >/dev/null
		rm -rf "$lab/nodes/node$k/pgdata"
		as_lab mkdir -m 0700 "$lab/nodes/node$k/pgdata"
	done
	t0=$(bench_now_ms)
	replicas_at_once hand_replica "$lab" "$NET_HAND" "$n"
	wait_streaming "$lab" "$n"
	t1=$(bench_now_ms)
	H_PAR[$n]+="$((t1 - t0)) "
	awk -v n="$n" -v r="$2" -v s="$ser" -v p="$((t1 - t0))" 'BEGIN {
		printf "  %d nodes  run %d  by hand: replicas serial %.2f s, parallel %.2f s\n", n, r, s / 1000, p / 1000 }' >&2
	drop_lab "$lab"
}

echo "bootstrap: 1 primary + replicas, fresh lab per run and variant, $RUNS runs each; [cluster] parallel = ${PARALLEL:-16 (default)}"
echo "$(bench_env); $("$PGBIN/postgres" --version); dbpki $DBPKI"
declare -A LOAD
for n in $TOPOS; do
	[ "$n" -ge 2 ] && [ "$n" -le 32 ] || bench_die "TOPOS: 2 to 32 nodes"
	LOAD[$n-start]=$(cut -d' ' -f1-3 /proc/loadavg)
	for r in $(seq 1 "$RUNS"); do
		run_dbpki "$n" "$r"
		run_hand "$n" "$r"
		run_scripts "$n" "$r"
	done
	LOAD[$n-end]=$(cut -d' ' -f1-3 /proc/loadavg)
done

median() { bench_stats "$@" | cut -d' ' -f1; }
s() { awk -v m="$1" 'BEGIN { printf "%.2f", m / 1000 }'; }
col() { # "a b c;a b c;" index -> median of that column
	local v=() p
	IFS=';' read -r -a rows <<<"$1"
	for p in "${rows[@]}"; do v+=("$(echo "$p" | cut -d' ' -f"$2")"); done
	median "${v[@]}"
}

echo
printf '%-52s %8s %8s %8s\n' "" median min max
for n in $TOPOS; do
	echo "1 primary + $((n - 1)) replicas ($RUNS runs; load average ${LOAD[$n-start]} at the start, ${LOAD[$n-end]} at the end)"
	read -r a b c <<<"$(bench_stats ${D_MS[$n]})"
	printf '  %-50s %7ss %7ss %7ss\n' "dbpki bootstrap (total)" "$(s "$a")" "$(s "$b")" "$(s "$c")"
	i=0
	for p in $PHASES; do
		i=$((i + 1))
		printf '    %-48s %7ss\n' "$p" "$(s "$(col "${D_PH[$n]}" "$i")")"
	done
	printf '    %-48s %7ss\n' "journal: initialize on the primary" "$(s "$(col "${D_J[$n]}" 1)")"
	printf '    %-48s %7ss\n' "journal: join, slowest replica" "$(s "$(col "${D_J[$n]}" 2)")"
	for x in "initdb:H_INITDB" "start primary (settings, start, check):H_START" \
		"one replica (basebackup, start, check):H_BB" "replicas one after the other:H_SER" \
		"replicas at once (PARALLEL):H_PAR"; do
		declare -n arr=${x##*:}
		read -r a b c <<<"$(bench_stats ${arr[$n]})"
		printf '  %-50s %7ss %7ss %7ss\n' "by hand: ${x%:*}" "$(s "$a")" "$(s "$b")" "$(s "$c")"
		unset -n arr
	done
	for x in "initialize (primary):S_INIT" "join (replicas at once, until streaming):S_JOIN"; do
		declare -n arr=${x##*:}
		read -r a b c <<<"$(bench_stats ${arr[$n]})"
		printf '  %-50s %7ss %7ss %7ss\n' "scripts: ${x%:*}" "$(s "$a")" "$(s "$b")" "$(s "$c")"
		unset -n arr
	done
	pg=$(($(median ${H_INITDB[$n]}) + $(median ${H_START[$n]}) + $(median ${H_PAR[$n]})))
	tot=$(median ${D_MS[$n]})
	# every phase but the two whose node scripts run initdb/start and
	# pg_basebackup/start: what dbpki adds around PostgreSQL's work
	own=()
	IFS=';' read -r -a rows <<<"${D_PH[$n]}"
	for p in "${rows[@]}"; do
		own+=("$(echo "$p" | awk '{ print $1 + $2 + $3 + $4 + $5 + $7 + $9 + $10 + $11 }')")
	done
	awk -v pg="$pg" -v t="$tot" -v own="$(median "${own[@]}")" 'BEGIN {
		printf "  PostgreSQL by hand (initdb + start + replicas at once): %.2f s, %.0f%% of dbpki'"'"'s median total\n", pg / 1000, 100 * pg / t
		printf "  dbpki total minus that: %.2f s\n", (t - pg) / 1000
		printf "  dbpki phases outside initialize and join (CA, issue, pre-flight, connect, remove,\n"
		printf "  certs, primary-up, connect, verify, close): %.2f s, %.0f%% of the total\n", own / 1000, 100 * own / t }'
done
