#!/usr/bin/env bash
# How long the primary cannot be reached during `dbpki rotate`, during
# `dbpki renew --force`, and during a plain `pg_ctl restart -m fast`, side
# by side on one lab cluster (primary, replica, client on loopback).
#
# A probe loop (tests/tools/pgloop: one process, libpq) opens one NEW
# verify-full TLS connection to the primary after another, with the
# dbclient certificate, from 1 s before each operation until 1 s after it.
# "Longest gap" is the longest time between two consecutive successful
# connections: the unavailability an application opening connections
# would see, plus up to one probe period (the median period is shown).
# The dbca is valid, so rotate keeps it and issues new leaves only; the
# probe's dbca and client files stay good throughout.
#
# Not part of `make check` (run by `make bench`).  Figures:
# docs/benchmarks.md, "Rotation".
#   RUNS=3  DBPKI=path/to/dbpki  NET=127.0.57
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
DBPKI=${DBPKI:-$root/build/dbpki}
PGLOOP=${PGLOOP:-$(dirname "$DBPKI")/tools/pgloop}
RUNS=${RUNS:-3}
NET=${NET:-127.0.57}
PGB=/usr/lib/postgresql/15/bin
[ -x "$DBPKI" ] || { echo "bench: build dbpki first (make)" >&2; exit 1; }
if [ ! -x "$PGLOOP" ]; then # `make bench` builds dbpki only
	b=$(basename "$(dirname "$DBPKI")")
	make -C "$root" BUILD="$b" "$b/tools/pgloop" >/dev/null ||
		{ echo "bench: cannot build $PGLOOP" >&2; exit 1; }
fi

LAB=$(mktemp -d /tmp/dbpki-bench-rot.XXXXXX)
chmod 755 "$LAB"
prober=
cleanup() {
	[ -z "$prober" ] || kill "$prober" 2>/dev/null || true
	"$root/tests/lab/lab.sh" down --dir "$LAB" >/dev/null 2>&1 || true
	rm -rf "$LAB"
}
trap cleanup EXIT

"$root/tests/lab/lab.sh" up --dir "$LAB" --net "$NET" --roles primary,replica,client >/dev/null
INI=$LAB/cluster.ini
U=$("$root/tests/lab/lab.sh" user)
"$DBPKI" bootstrap -c "$INI" >"$LAB/bootstrap.out" 2>&1 ||
	{ tail -n 20 "$LAB/bootstrap.out"; echo "bench: bootstrap failed" >&2; exit 1; }

# The prober's own copies of dbca and the client certificate (as an
# application would hold them); they stay valid across rotate and renew.
P=$LAB/probe
install -d -m 700 "$P"
install -m 600 "$LAB/nodes/node3/certs/current/dbca.crt" "$LAB/nodes/node3/certs/current/client.crt" \
	"$LAB/nodes/node3/certs/current/client.key" "$P/"
loop_args=(--host node1.lab.test --hostaddr "$NET.11" --port 5432 --ca "$P/dbca.crt"
	--cert "$P/client.crt" --key "$P/client.key")
touch "$LAB/stop"
"$PGLOOP" --stop "$LAB/stop" "${loop_args[@]}" >/dev/null || { echo "bench: pgloop does not work" >&2; exit 1; }

# measure NAME CMD...: run CMD with the prober around it; one table row.
rows=()
measure() {
	local name=$1 run=$2 t0 t1 rc said
	shift 2
	rm -f "$LAB/stop"
	"$PGLOOP" --stop "$LAB/stop" "${loop_args[@]}" >"$LAB/loop.out" &
	prober=$!
	sleep 1
	t0=${EPOCHREALTIME/./}
	set +e
	"$@" >"$LAB/op.out" 2>&1
	rc=$?
	set -e
	t1=${EPOCHREALTIME/./}
	sleep 1
	touch "$LAB/stop"
	wait "$prober" || true
	prober=
	said=$(sed -n 's/^downtime: .* was unavailable for \([0-9]*\) ms.*/\1/p' "$LAB/op.out" | head -n 1)
	# max_gap_ms=N median_ms=N ok=N failed=N
	eval "$(tr ' ' '\n' <"$LAB/loop.out" | grep -E '^[a-z_]+=[0-9]+$')"
	gap=$max_gap_ms
	[ "$rc" = 0 ] || { gap="FAILED(exit $rc)"; tail -n 15 "$LAB/op.out" >&2; }
	rows+=("$(printf '%-22s %3s %12s %10s %8s %12s %8.1f' "$name" "$run" "$gap" "$median_ms" "$failed" \
		"${said:--}" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e6 }')")")
	echo "bench: $name run $run: longest gap $gap ms (probe period $median_ms ms, $ok ok, $failed failed)" >&2
}

pg_restart() {
	runuser -u "$U" -- "$PGB/pg_ctl" -D "$LAB/nodes/node1/pgdata" \
		-l "$LAB/nodes/node1/certs/postgresql.log" -m fast -w -t 120 restart
}

echo "bench: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r), $("$PGB/postgres" --version)" >&2
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq 1 "$RUNS"); do
	measure "pg_ctl restart -m fast" "$run" pg_restart
	measure "dbpki rotate" "$run" "$DBPKI" rotate -c "$INI"
	measure "dbpki renew --force" "$run" "$DBPKI" renew -c "$INI" --force
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

printf '\n%-22s %3s %12s %10s %8s %12s %8s\n' "operation" "run" "longest gap" "period" "failed" "dbpki says" "wall"
printf '%-22s %3s %12s %10s %8s %12s %8s\n' "" "" "(ms)" "(ms, med)" "probes" "(ms)" "(s)"
printf '%s\n' "${rows[@]}"
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $load0 at start, $load1 at end; $("$PGB/postgres" --version); $(openssl version | cut -d' ' -f1-2)"
