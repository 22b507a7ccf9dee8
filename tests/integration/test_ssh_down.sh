#!/usr/bin/env bash
# Unreachable nodes on the lab (127.0.23.x): a node whose sshd is down is
# named and fails at once; a node that accepts TCP but never speaks fails
# within connect_timeout; the other node keeps working.
. "${DBPKI_ROOT:?}/tests/lab/ssh_testlib.sh"

lab_start 127.0.23 primary,replica

# node2's sshd stopped: refused at once, named.
p2=$(node_pid node2)
[ -n "$p2" ] || fail "no pid for node2"
kill -TERM "$p2"
for _ in $(seq 1 100); do
	(exec 3<>/dev/tcp/127.0.23.12/2222) 2>/dev/null || break
	sleep 0.02
done
t0=$SECONDS
run_tool 11 -c "$INI" node2 connect
has "$ERR" "node node2 (127.0.23.12:2222)" || fail "error does not name node2"
has "$ERR" "Connection refused" || fail "error lacks the cause"
[ $((SECONDS - t0)) -le 2 ] || fail "refused connection took $((SECONDS - t0))s"
run_tool 0 -c "$INI" node1 connect
ok "sshd down: named, immediate; the other node still works"

# node1's sshd frozen: TCP is accepted by the kernel, no SSH banner ever
# comes.  connect_timeout = 2s must bound the whole handshake.
p1=$(node_pid node1)
kill -STOP "$p1"
trap 'kill -CONT "$p1" 2>/dev/null; lab_stop' EXIT
I=$(inv short "s|^connect_timeout = .*|connect_timeout = 2s|")
t0=$(date +%s%N)
run_tool 12 -c "$I" node1 connect
ms=$((($(date +%s%N) - t0) / 1000000))
kill -CONT "$p1"
has "$ERR" "node node1" || fail "timeout error does not name node1"
has "$ERR" "connect_timeout" || fail "timeout error does not name the setting"
[ "$ms" -ge 1900 ] && [ "$ms" -lt 4000 ] || fail "connect_timeout 2s took ${ms} ms"
run_tool 0 -c "$INI" node1 connect
ok "silent node: timed out after ${ms} ms (connect_timeout 2s), fine again after"

echo "PASS test_ssh_down ($((SECONDS - T_STARTED))s)"
