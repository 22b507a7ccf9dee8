#!/usr/bin/env bash
# Fan-out over SSH (issue 3): upload five files (the release dbpki ships to
# a database node: dbca.crt, server.crt/.key, client.crt/.key; RSA-4096, so
# certificates ~1.9 KB and keys ~3.2 KB) into a directory on every node and
# run one command there, on 8 and on 32 lab nodes, with
#
#   dbpki      the real binary: `dbpki bootstrap` with DBPKI_PLAYBOOKS and
#              DBPKI_TEMPLATES pointing at a one-step playbook (action
#              fanout, upload = yes, roles = all, mode = parallel) and a
#              template that runs the command; certificates issued before
#              the clock starts.  [cluster] parallel = node count, and the
#              default (16).
#   ansible    ansible-playbook: copy (5 files, loop) + command; forks 5
#              (default) and forks = N; pipelining off (default) and on;
#              gather_facts off; ControlPersist as shipped (torn down
#              after every run so no run reuses another's connections).
#   pscp+pssh  parallel-scp then parallel-ssh, -p N.
#   ssh loop   for each node in the background: scp the 5 files, then ssh
#              the command; wait.
#
# The command, everywhere: cd into the upload directory and write the
# sha256sum of the five files to a file beside it.  After every run the
# script checks on every node that the five files are there with the right
# content and mode and that the command ran (its output matches); then it
# removes them.  A tool that fails, or leaves a node incomplete, stops the
# benchmark with a non-zero exit.
#
# Variants run round-robin (run 1 of every variant, then run 2, ...), so a
# change in the machine's load hits every tool alike.
#
#   NODES="8 32"  RUNS=3  ANSIBLE_RUNS_32=2  NET=127.0.66  KEY=rsa:4096
#   TOOLS="dbpki ansible pscp loop"  DBPKI=path/to/dbpki
set -eu
. "$(dirname "$0")/lib.sh"
bench_init

NODES=${NODES:-8 32}
RUNS=${RUNS:-3}
ANSIBLE_RUNS_32=${ANSIBLE_RUNS_32:-2}
NET=${NET:-127.0.66}
KEY=${KEY:-rsa:4096}
TOOLS=${TOOLS:-dbpki ansible pscp loop}
NAMES="dbca.crt server.crt server.key client.crt client.key"

need=()
command -v ansible-playbook >/dev/null || need+=(ansible-core)
command -v parallel-scp >/dev/null || need+=(pssh)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
	echo "bench: installing ${need[*]}" >&2
	DBPKI_EXTRA_PKGS="${need[*]}" "$root/tests/lab/deps.sh"
fi
command -v ansible-playbook >/dev/null && command -v parallel-scp >/dev/null &&
	command -v parallel-ssh >/dev/null && command -v scp >/dev/null ||
	bench_die "ansible-playbook, parallel-scp, parallel-ssh or scp missing"

max=0
for n in $NODES; do
	[ "$n" -ge 1 ] && [ "$n" -le 32 ] || bench_die "NODES: 1 to 32 each (one /24 of loopback)"
	[ "$n" -gt "$max" ] && max=$n
done

# ---- the lab: 1 primary + replicas (database nodes get all five files)
LAB=$work/lab
mkdir -m 0755 "$LAB"
roles=primary
for _ in $(seq 2 "$max"); do roles=$roles,replica; done
bench_lab_up "$LAB" "$NET" "$roles" fan
USER_=$("$root/tests/lab/lab.sh" user)
addr() { echo "$NET.$((10 + $1))"; }
ndir() { echo "$LAB/nodes/node$1"; }

sed -i "s/^key = ec:P-256\$/key = $KEY/" "$LAB/cluster.ini"
"$DBPKI" ca init -c "$LAB/cluster.ini" >/dev/null 2>&1 || bench_die "dbpki ca init failed"
echo "bench: issuing $((max + 1)) $KEY certificates (not timed)" >&2
"$DBPKI" issue -c "$LAB/cluster.ini" >/dev/null 2>&1 || bench_die "dbpki issue failed"

# An inventory of the first n nodes; parallel = n, or no line (default 16).
# `dbpki issue` with it must find nothing to do.
inventory() { # n parallel|default
	local f=$work/inv-$1-$2.ini
	awk -v stop="[node node$(($1 + 1))]" -v par="$2" '
		$0 == stop { exit }
		/^parallel = / { if (par != "default") print "parallel = " par; next }
		{ print }' "$LAB/cluster.ini" >"$f"
	chmod 600 "$f"
	"$DBPKI" issue -c "$f" >"$f.issue" 2>&1 || bench_die "dbpki issue -c $f failed"
	grep -q '^0 certificate(s) issued' "$f.issue" || bench_die "$f: issue was not a no-op"
}
for n in $NODES; do
	inventory "$n" "$n"
	inventory "$n" default
done

# ---- what every node must end up with
state=$LAB/state
active() { # kind node -> serial
	awk -F'\t' -v k="$1" -v n="$2" '$2 == "active" && $3 == k && $4 == n { print $1 }' "$state/index.tsv"
}
cserial=$(active client -)
[ -n "$cserial" ] || bench_die "no active client certificate in the store"
for k in $(seq 1 "$max"); do
	e=$work/expect/node$k
	s=$(active server "node$k")
	[ -n "$s" ] || bench_die "no active server certificate for node$k"
	mkdir -p "$e"
	install -m 0644 "$state/ca/dbca.crt" "$e/dbca.crt"
	install -m 0644 "$state/issued/$s.crt" "$e/server.crt"
	install -m 0600 "$state/keys/$s.key" "$e/server.key"
	install -m 0644 "$state/issued/$cserial.crt" "$e/client.crt"
	install -m 0600 "$state/keys/$cserial.key" "$e/client.key"
	(cd "$e" && sha256sum $NAMES) >"$e.sums"
	# the other tools' target directory, and a way to find it from the
	# node's side (pscp sends every host the same remote path)
	install -d -m 0700 -o "$USER_" -g "$USER_" "$(ndir "$k")/fanout"
	mkdir -p "$LAB/by-addr"
	ln -sfn "../nodes/node$k" "$LAB/by-addr/$(addr "$k")"
done
# The other tools ship node1's files to every node: the same sizes.
FILES=$work/expect/node1
sizes=$(cd "$FILES" && stat -c '%n %s B mode %a' $NAMES | paste -sd, | sed 's/,/, /g')

clean_nodes() {
	rm -rf "$LAB"/nodes/*/certs/releases "$LAB"/nodes/*/certs/fanout.out "$LAB"/nodes/*/fanout.out
	find "$LAB"/nodes/*/fanout -mindepth 1 -delete
}

# Five files, content and mode, and the command's output, on nodes 1..n:
# one manifest line per file, "nodeK NAME MODE SHA256", plus "nodeK out
# SHA256" for the command's output, compared with what was sent.  (Few
# processes: on a loaded 2-core machine each fork costs tens of ms.)
manifest() { # kind(dbpki|other) n -> expected manifest on stdout
	local k e
	for k in $(seq 1 "$2"); do
		e=$FILES
		[ "$1" = dbpki ] && e=$work/expect/node$k
		(cd "$e" && stat -c '%n %a' $NAMES) | while read -r f m; do
			echo "node$k $f $m $(grep " $f\$" "$e.sums" | cut -d' ' -f1)"
		done
		echo "node$k out $(sha256sum <"$e.sums" | cut -d' ' -f1)"
	done | sort
}
for n in $NODES; do
	manifest dbpki "$n" >"$work/manifest-dbpki-$n"
	manifest other "$n" >"$work/manifest-other-$n"
done

verify_nodes() { # tool n
	local tool=$1 n=$2 kind=other dirs=() outs=() k
	[ "$tool" = dbpki ] && kind=dbpki
	for k in $(seq 1 "$n"); do
		if [ "$kind" = dbpki ]; then
			set -- "$(ndir "$k")"/certs/releases/*
			[ $# -eq 1 ] && [ -d "$1" ] ||
				bench_die "dbpki: node$k: expected one release directory, found: $*"
			dirs+=("$1")
			outs+=("$(ndir "$k")/certs/fanout.out")
		else
			dirs+=("$(ndir "$k")/fanout")
			outs+=("$(ndir "$k")/fanout.out")
		fi
	done
	{
		find "${dirs[@]}" -mindepth 1 -maxdepth 1 -printf 'M %p %m\n' 2>&1 || true
		find "${dirs[@]}" -mindepth 1 -maxdepth 1 -type f -exec sha256sum {} + 2>&1 || true
		sha256sum "${outs[@]}" 2>&1 | sed 's/^/O /' || true
	} | awk -v lab="$LAB/nodes/" '
		function where(p) {   # path -> "nodeK NAME"
			if (index(p, lab) == 1) p = substr(p, length(lab) + 1)
			split(p, a, "/")
			return a[1] " " a[length(a)]
		}
		$1 == "M" { mode[where($2)] = $3; next }
		$1 == "O" { split(where($3), a, " "); print a[1], "out", $2; next }
		NF == 2 { sum[where($2)] = $1; next }
		{ print "?", $0 }
		END { for (f in mode) print f, mode[f], (f in sum) ? sum[f] : "-" }' |
		sort >"$work/manifest-got"
	if ! cmp -s "$work/manifest-got" "$work/manifest-$kind-$n"; then
		diff "$work/manifest-$kind-$n" "$work/manifest-got" | head -n 20 >&2
		bench_die "$tool: the nodes do not hold exactly the five files (content, mode) and the command's output (< expected, > found)"
	fi
}

# ---- dbpki: a one-step bootstrap playbook and a template for the command
mkdir -p "$work/pb" "$work/tpl/postgres"
cat >"$work/pb/bootstrap.ini" <<'EOF'
[playbook]
name = bootstrap
description = benchmark: ship the release and run one command on every node

[step fanout]
action = fanout
roles = all
mode = parallel
upload = yes
on_failure = stop
EOF
cp "$root/templates/postgres/common.sh" "$work/tpl/postgres/common.sh"
cat >"$work/tpl/postgres/fanout.sh" <<EOF
# fanout (benchmark): the one command, in the release directory just uploaded.
cd "\$RELEASE_DIR"
sha256sum $NAMES >"\$CERT_DIR/fanout.out"
echo "\$SENTINEL"
EOF
chmod 0644 "$work/pb/bootstrap.ini" "$work/tpl/postgres/"*

# Phases of a dbpki run, from its --json event stream stamped as it
# arrives: start -> "N certificate(s) issued" (process start, inventory, CA,
# the issue check) -> "playbook ... on N node(s)" (pre-flight check of every
# release, journal) -> "step fanout" (connect to every node) -> last node
# event (the step: upload + command) -> "bootstrap done" (closing the
# sessions, journal) -> exit.
dbpki_phases() { # log total-ms -> "issue preflight connect step close"
	awk -v total="$2" '
		/certificate\(s\) issued/ { a = $1 }
		/playbook bootstrap on/ { b = $1 }
		/"msg":"step fanout"/ { c = $1 }
		/"event":"node"/ { d = $1 }
		/bootstrap done/ { e = $1 }
		END { print a, b - a, c - b, d - c, e - d + (total - e) }' "$1"
}

run_dbpki() { # n parallel|default
	BENCH_STAMP=1 bench_measure "dbpki" env DBPKI_PLAYBOOKS="$work/pb" \
		DBPKI_TEMPLATES="$work/tpl" "$DBPKI" bootstrap --json -c "$work/inv-$1-$2.ini" || return 1
	grep -qE '(^|")0 certificate\(s\) issued' "$BENCH_LOG" ||
		bench_die "dbpki issued certificates inside the timed run"
	[ "$(grep -c '"event":"node".*"result":"ok"' "$BENCH_LOG")" = "$1" ] ||
		bench_die "dbpki did not report $1 nodes ok"
	DBPKI_PHASES=$(dbpki_phases "$BENCH_LOG" "$BENCH_MS")
}

# ---- plain OpenSSH
SSHO=(-F /dev/null -i "$LAB/ssh/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes
	-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$LAB/ssh/known_hosts"
	-o GlobalKnownHostsFile=/dev/null)
remote_cmd() { # dir-on-node
	echo "cd $1 && sha256sum $NAMES >../fanout.out"
}
cat >"$work/loop.sh" <<EOF
#!/usr/bin/env bash
# for each node in the background: scp the five files, then ssh the command
set -u
pids=()
for k in \$(seq 1 "\$1"); do
	a=$NET.\$((10 + k)) d=$LAB/nodes/node\$k
	(scp -q $(printf '%q ' "${SSHO[@]}") -P 2222 $(cd "$FILES" && printf "$FILES/%s " $NAMES) "$USER_@\$a:\$d/fanout/" &&
		ssh $(printf '%q ' "${SSHO[@]}") -p 2222 "$USER_@\$a" "cd \$d/fanout && sha256sum $NAMES >../fanout.out") &
	pids+=(\$!)
done
rc=0
for p in "\${pids[@]}"; do wait "\$p" || rc=1; done
exit \$rc
EOF

# ---- pscp + pssh.  Every host gets the same remote path, but the lab's
# nodes share one file system: the path goes through the node's shell (scp
# -O, the classic protocol, runs `scp -t PATH` there) and picks the node's
# own directory by the address it was reached on ($SSH_CONNECTION).
PSSH_O=(-O IdentityFile="$LAB/ssh/id_ed25519" -O IdentitiesOnly=yes -O BatchMode=yes
	-O StrictHostKeyChecking=yes -O UserKnownHostsFile="$LAB/ssh/known_hosts"
	-O GlobalKnownHostsFile=/dev/null -X -F -X /dev/null)
NODE_DIR_SH="$LAB/by-addr/\$(set -- \$SSH_CONNECTION; echo \$3)"
cat >"$work/pscp.sh" <<EOF
#!/usr/bin/env bash
set -eu
hosts=$work/hosts-\$1
parallel-scp -h "\$hosts" -l $USER_ -p "\$1" $(printf '%q ' "${PSSH_O[@]}") -X -O \\
	$(cd "$FILES" && printf "$FILES/%s " $NAMES) '$NODE_DIR_SH/fanout/'
parallel-ssh -h "\$hosts" -l $USER_ -p "\$1" $(printf '%q ' "${PSSH_O[@]}") \\
	'$(remote_cmd "$NODE_DIR_SH/fanout")'
EOF

# ---- Ansible
mkdir -p "$work/ansible"
cat >"$work/ansible/fanout.yml" <<EOF
- hosts: lab
  gather_facts: false
  tasks:
    - name: upload the five files
      copy:
        src: "$FILES/{{ item.name }}"
        dest: "{{ node_dir }}/fanout/{{ item.name }}"
        mode: "{{ item.mode }}"
      loop:
$(cd "$FILES" && for f in $NAMES; do printf '        - { name: %s, mode: "0%s" }\n' "$f" "$(stat -c %a "$f")"; done)
    - name: run the command
      command: sh -c "cd {{ node_dir }}/fanout && sha256sum $NAMES >../fanout.out"
EOF
for n in $NODES; do
	{
		echo "[lab]"
		for k in $(seq 1 "$n"); do
			echo "node$k ansible_host=$(addr "$k") node_dir=$(ndir "$k")"
		done
		cat <<EOF
[lab:vars]
ansible_port=2222
ansible_user=$USER_
ansible_ssh_private_key_file=$LAB/ssh/id_ed25519
ansible_ssh_common_args='-F /dev/null -o IdentitiesOnly=yes -o UserKnownHostsFile=$LAB/ssh/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes'
ansible_python_interpreter=/usr/bin/python3
EOF
	} >"$work/ansible/hosts-$n"
	for k in $(seq 1 "$n"); do echo "$(addr "$k"):2222"; done >"$work/hosts-$n"
done

ANSIBLE_RUN=0
run_ansible() { # n forks pipelining
	local cp rc=0 s
	ANSIBLE_RUN=$((ANSIBLE_RUN + 1))
	cp=$work/ansible/cp-$ANSIBLE_RUN
	mkdir -p "$cp"
	bench_measure "ansible" env ANSIBLE_HOME="$work/ansible/home" \
		ANSIBLE_LOCAL_TEMP="$work/ansible/tmp" ANSIBLE_SSH_CONTROL_PATH_DIR="$cp" \
		ANSIBLE_HOST_KEY_CHECKING=True ANSIBLE_NOCOLOR=1 ANSIBLE_FORKS="$2" \
		ANSIBLE_PIPELINING="$3" ANSIBLE_RETRY_FILES_ENABLED=False \
		ansible-playbook -i "$work/ansible/hosts-$1" "$work/ansible/fanout.yml" || rc=1
	# ControlPersist masters outlive the run by 60 s: stop them now.
	for s in "$cp"/*; do
		[ -S "$s" ] && ssh -F /dev/null -o ControlPath="$s" -O exit x >/dev/null 2>&1 || true
	done
	return "$rc"
}

# ---- the runs
BENCH_LABCPU=$LAB
declare -A MS RSS SUM CPU NCPU PH NRUNS
variants() { # n -> "key label runs command..." lines
	local n=$1 ar=$RUNS
	[ "$n" -ge 32 ] && ar=$ANSIBLE_RUNS_32
	case " $TOOLS " in *" dbpki "*)
		echo "dbpki-par$n|dbpki (parallel=$n)|$RUNS|run_dbpki $n $n"
		[ "$n" -gt 16 ] && echo "dbpki-def|dbpki (parallel=16, default)|$RUNS|run_dbpki $n default"
		;; esac
	case " $TOOLS " in *" pscp "*)
		echo "pscp|pscp+pssh -p $n|$RUNS|bench_measure pscp bash $work/pscp.sh $n" ;; esac
	case " $TOOLS " in *" loop "*)
		echo "loop|ssh loop (scp+ssh)|$RUNS|bench_measure loop bash $work/loop.sh $n" ;; esac
	case " $TOOLS " in *" ansible "*)
		echo "ans-f5-p0|ansible forks=5|$ar|run_ansible $n 5 False"
		echo "ans-f5-p1|ansible forks=5 pipelining|$ar|run_ansible $n 5 True"
		echo "ans-fN-p0|ansible forks=$n|$ar|run_ansible $n $n False"
		echo "ans-fN-p1|ansible forks=$n pipelining|$ar|run_ansible $n $n True"
		;; esac
}

echo "fan-out: 5 files ($sizes) + 1 command per node"
echo "$(bench_env); $(ssh -V 2>&1); $(ansible --version 2>/dev/null | sed -n 1p); pssh $(parallel-ssh --version 2>&1)"
declare -A LOAD
for n in $NODES; do
	LOAD[$n-start]=$(cut -d' ' -f1-3 /proc/loadavg)
	mapfile -t vs < <(variants "$n")
	for r in $(seq 1 "$RUNS"); do
		for v in "${vs[@]}"; do
			IFS='|' read -r key label runs cmd <<<"$v"
			[ "$r" -le "$runs" ] || continue
			clean_nodes
			DBPKI_PHASES=
			$cmd || bench_die "$label on $n nodes failed (run $r)"
			bench_node_cpu
			verify_nodes "${key%%-*}" "$n"
			MS[$n,$key]+="$BENCH_MS "
			RSS[$n,$key]+="$BENCH_RSS_KB "
			SUM[$n,$key]+="$BENCH_SUM_KB "
			CPU[$n,$key]+="$BENCH_CPU_MS "
			NCPU[$n,$key]+="$BENCH_NODE_CPU_MS "
			[ -z "$DBPKI_PHASES" ] || PH[$n,$key]+="$DBPKI_PHASES;"
			NRUNS[$n,$key]=$r
			awk -v n="$n" -v r="$r" -v l="$label" -v m="$BENCH_MS" \
				'BEGIN { printf "  %2d nodes  run %d  %-30s %7.2f s\n", n, r, l, m / 1000 }' >&2
		done
	done
	clean_nodes
	LOAD[$n-end]=$(cut -d' ' -f1-3 /proc/loadavg)
done

echo
printf '%-32s %5s %4s %8s %8s %8s %9s %9s %9s %9s\n' tool nodes runs median min max "RSS max" "RSS sum" "CPU tool" "CPU node"
median() { bench_stats "$@" | cut -d' ' -f1; }
for n in $NODES; do
	mapfile -t vs < <(variants "$n")
	for v in "${vs[@]}"; do
		IFS='|' read -r key label runs cmd <<<"$v"
		read -r med lo hi <<<"$(bench_stats ${MS[$n,$key]})"
		read -r _ _ rhi <<<"$(bench_stats ${RSS[$n,$key]})"
		read -r _ _ shi <<<"$(bench_stats ${SUM[$n,$key]})"
		awk -v l="$label" -v n="$n" -v r="${NRUNS[$n,$key]}" -v a="$med" -v b="$lo" \
			-v c="$hi" -v m="$rhi" -v s="$shi" -v u="$(median ${CPU[$n,$key]})" \
			-v w="$(median ${NCPU[$n,$key]})" 'BEGIN {
			printf "%-32s %5d %4d %7.2fs %7.2fs %7.2fs %6.1f MB %6.1f MB %8.2fs %8.2fs\n",
			    l, n, r, a / 1000, b / 1000, c / 1000, m / 1024, s / 1024, u / 1000, w / 1000 }'
		if [ -n "${PH[$n,$key]:-}" ]; then
			IFS=';' read -r -a runs_ph <<<"${PH[$n,$key]}"
			out="  phases (median ms):"
			i=0
			for name in "start+issue check" "pre-flight+journal" "connect all" "step" "close"; do
				i=$((i + 1))
				vals=()
				for p in "${runs_ph[@]}"; do vals+=("$(echo "$p" | cut -d' ' -f$i)"); done
				out="$out $name $(median "${vals[@]}"),"
			done
			echo "${out%,}"
		fi
	done
	echo "  load average during the $n-node runs: ${LOAD[$n-start]} at the start, ${LOAD[$n-end]} at the end"
done
echo
echo "RSS max: the largest single process (GNU time, ru_maxrss); RSS sum: peak of the"
echo "summed RSS of all the run's processes on the admin side, sampled every 50 ms."
echo "CPU tool: user+system time of the tool and the children it waited for (median);"
echo "CPU node: user+system time of the lab's sshd servers and all they ran (median)."
for n in $NODES; do
	awk -v n="$n" -v d="$(bench_stats ${MS[$n,dbpki-par$n]:-0})" \
		-v p="$(bench_stats ${MS[$n,pscp]:-0})" \
		-v a1="$(bench_stats ${MS[$n,ans-f5-p0]:-0})" -v a2="$(bench_stats ${MS[$n,ans-f5-p1]:-0})" \
		-v a3="$(bench_stats ${MS[$n,ans-fN-p0]:-0})" -v a4="$(bench_stats ${MS[$n,ans-fN-p1]:-0})" \
		'BEGIN {
		split(d, D, " "); split(p, P, " ")
		split(a1, A1, " "); split(a2, A2, " "); split(a3, A3, " "); split(a4, A4, " ")
		best = A1[1]; if (A2[1] < best) best = A2[1]; if (A3[1] < best) best = A3[1]; if (A4[1] < best) best = A4[1]
		if (D[1] > 0 && best > 0 && P[1] > 0)
			printf "%d nodes (medians): dbpki is %.1fx faster than Ansible at its best settings, %.1fx faster than pscp+pssh\n",
			    n, best / D[1], P[1] / D[1] }'
done
