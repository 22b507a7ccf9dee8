# Shared helpers for tests/bench/*.sh (sourced, not run).
#
#   bench_init          $root, $DBPKI, $work (removed on exit), bench_die
#   bench_now_ms        monotonic-enough wall clock in ms
#   bench_env           one line: date, nproc, load average, kernel
#   bench_lab_up DIR NET ROLES NAME   lab.sh up; remembered for teardown
#   bench_measure TAG CMD...   run CMD under /usr/bin/time -v with a memory
#                       sampler; sets BENCH_MS, BENCH_RSS_KB (largest
#                       single process, from getrusage) and BENCH_SUM_KB
#                       (peak of the summed RSS of every process of the
#                       run, sampled); returns CMD's exit status
#   bench_stats V...    "median min max" of integers
#   BENCH_LABCPU=DIR    also measure the CPU time the lab's sshd servers
#                       (and everything they start: sftp, shells, commands)
#                       spend for the run: call bench_node_cpu once the
#                       tool's connections are all closed (Ansible's
#                       ControlPersist masters outlive it); it sets
#                       BENCH_NODE_CPU_MS.  The tool's own CPU time is
#                       BENCH_CPU_MS (user + system of the tool and the
#                       children it waited for)
#   BENCH_STAMP=1       prefix each line of the tool's output with the ms
#                       since the clock started (bash's EPOCHREALTIME, no
#                       process per line), for phase timings
#
# Memory: GNU time reports ru_maxrss of the waited-for children, which for a
# tree of processes is the largest single process, not the sum.  So every
# run also gets a sampler that, every 50 ms, adds up VmRSS of each process
# whose environment carries this run's marker (DBPKI_BENCH_MARK=...); the
# tool's children inherit it, detached ones too (Ansible's ControlPersist
# masters), while the sshd processes on the node side do not.  A summed RSS
# counts shared pages (libraries) once per process, and a process that lives
# less than 50 ms may be missed: read it as an order of magnitude.

bench_die() {
	echo "bench: $*" >&2
	exit 1
}

bench_now_ms() { date +%s%3N; }

bench_env() {
	printf '%s, %s cores, load average %s, kernel %s\n' \
		"$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" \
		"$(cut -d' ' -f1-3 /proc/loadavg)" "$(uname -r)"
}

# Every lab started here is torn down on exit, whatever happens.
BENCH_LABS=()
bench_cleanup() {
	local d
	[ -z "${BENCH_SAMPLER:-}" ] || kill "$BENCH_SAMPLER" 2>/dev/null || true
	for d in "${BENCH_LABS[@]}"; do
		"$root/tests/lab/lab.sh" down --dir "$d" >/dev/null 2>&1 || true
	done
	[ -n "${work:-}" ] && rm -rf "$work"
}

bench_init() {
	root=$(cd "$(dirname "$0")/../.." && pwd)
	DBPKI=${DBPKI:-$root/build/dbpki}
	[ -x "$DBPKI" ] || bench_die "build dbpki first (make), or set DBPKI"
	DBPKI=$(cd "$(dirname "$DBPKI")" && pwd)/$(basename "$DBPKI")
	[ "$(id -u)" -eq 0 ] || bench_die "run as root (the lab starts sshd servers)"
	local need=()
	[ -x /usr/bin/time ] || need+=(time)
	command -v python3 >/dev/null || need+=(python3)
	if [ ${#need[@]} -gt 0 ]; then
		echo "bench: installing ${need[*]}" >&2
		DBPKI_EXTRA_PKGS="${need[*]}" "$root/tests/lab/deps.sh"
	fi
	command -v python3 >/dev/null || bench_die "python3 missing (memory sampler)"
	[ -x /usr/bin/time ] || bench_die "/usr/bin/time missing (package time)"
	work=$(mktemp -d /tmp/dbpki-bench-XXXXXX)
	chmod 755 "$work"
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	cat >"$work/sampler.py" <<'EOF'
import os, sys, time
mark = ("DBPKI_BENCH_MARK=" + sys.argv[1]).encode()
stop = sys.argv[2]
peak = 0
me = os.getpid()
parent = os.getppid()
ready = False
while os.getppid() == parent:
    total = 0
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == me:
            continue
        try:
            with open("/proc/%s/environ" % p, "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
            with open("/proc/%s/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    peak = max(peak, total)
    if not ready:
        open(stop + ".ready", "w").close()
        ready = True
    if os.path.exists(stop):
        break
    time.sleep(0.05)
print(peak)
EOF
}

bench_lab_up() { # dir net roles name
	BENCH_LABS+=("$1")
	"$root/tests/lab/lab.sh" up --dir "$1" --net "$2" --roles "$3" --name "$4" >/dev/null ||
		bench_die "lab.sh up failed for $1"
}

bench_lab_down() { # dir
	"$root/tests/lab/lab.sh" down --dir "$1" >/dev/null 2>&1 || true
}

# CPU ticks (1/100 s) of the lab's sshd listeners and their reaped
# descendants.  Each connection's processes are waited for up the chain
# (session -> monitor -> listener), so their time lands in the listener's
# cutime/cstime once the connection is gone: wait for that (bounded).
bench_lab_ticks() { # dir
	local pids p st t=0 busy=1
	pids=$(awk '{ print $2 }' "$1/pids")
	for _ in $(seq 1 500); do
		awk '/^PPid:/ { print $2 }' /proc/[0-9]*/status 2>/dev/null |
			grep -qxF -f <(printf '%s\n' $pids) || { busy=0; break; }
		sleep 0.02
	done
	[ "$busy" = 0 ] || bench_die "the lab's sshd still has connections 10 s after the run"
	for p in $pids; do
		st=$(sed 's/.*) //' "/proc/$p/stat") || bench_die "lab sshd $p is gone"
		set -- $st
		t=$((t + ${12} + ${13} + ${14} + ${15}))
	done
	echo "$t"
}

bench_stamp() { # t0-ms: copy stdin, each line prefixed with ms since t0
	local line now
	while IFS= read -r line; do
		now=${EPOCHREALTIME/./}
		printf '%d %s\n' $((now / 1000 - $1)) "$line"
	done
}

BENCH_SEQ=0
bench_measure() { # tag cmd...
	local tag=$1 mark out rc t0 t1 spid
	shift
	BENCH_SEQ=$((BENCH_SEQ + 1))
	mark=$$-$BENCH_SEQ
	out=$work/measure.$BENCH_SEQ
	rm -f "$out.stop" "$out.stop.ready"
	python3 "$work/sampler.py" "$mark" "$out.stop" >"$out.sum" &
	spid=$!
	BENCH_SAMPLER=$spid
	# Let the sampler start up (and scan once) before the clock starts.
	while [ ! -e "$out.stop.ready" ]; do
		kill -0 "$spid" 2>/dev/null || bench_die "the memory sampler died"
		sleep 0.01
	done
	BENCH_TICKS0=0
	if [ -n "${BENCH_LABCPU:-}" ]; then
		BENCH_TICKS0=$(bench_lab_ticks "$BENCH_LABCPU") || bench_die "cannot read the lab's CPU time"
	fi
	t0=$(bench_now_ms)
	set +e
	if [ "${BENCH_STAMP:-0}" = 1 ]; then
		DBPKI_BENCH_MARK=$mark /usr/bin/time -v -o "$out.time" "$@" 2>&1 |
			bench_stamp "$t0" >"$out.log"
		rc=${PIPESTATUS[0]}
	else
		DBPKI_BENCH_MARK=$mark /usr/bin/time -v -o "$out.time" "$@" >"$out.log" 2>&1
		rc=$?
	fi
	set -e
	t1=$(bench_now_ms)
	: >"$out.stop"
	wait "$spid" || true
	BENCH_SAMPLER=
	BENCH_MS=$((t1 - t0))
	BENCH_CPU_MS=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%d", s * 1000 }' "$out.time")
	BENCH_RSS_KB=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$out.time")
	BENCH_SUM_KB=$(cat "$out.sum")
	BENCH_LOG=$out.log
	if [ "$rc" -ne 0 ]; then
		echo "bench: $tag exited $rc; last lines of its output:" >&2
		tail -n 20 "$out.log" >&2
	fi
	return "$rc"
}

bench_node_cpu() {
	local t1
	t1=$(bench_lab_ticks "$BENCH_LABCPU") || bench_die "cannot read the lab's CPU time"
	BENCH_NODE_CPU_MS=$(((t1 - BENCH_TICKS0) * 10))
}

bench_stats() { # values... -> "median min max"
	printf '%s\n' "$@" | sort -n | awk '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { print "- - -"; exit }
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			print m, v[1], v[NR]
		}'
}
