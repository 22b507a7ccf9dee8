#!/usr/bin/env bash
# Remote exec against real sshd on the lab (127.0.22.x): the script goes
# through stdin unchanged, exit status and signals come back, stderr is
# captured, output is bounded, the sentinel is required, a command timeout
# is reported as such and the remote command does not linger.
. "${DBPKI_ROOT:?}/tests/lab/ssh_testlib.sh"

lab_start 127.0.22 primary
N1=$LABDIR/nodes/node1/certs

# Exit status 3 comes back as 3 (and is a failure).
run_tool 1 -c "$INI" node1 exec < <(echo 'echo before; exit 3')
has "$ERR" "exit_status=3 " || fail "exit status not 3"
[ "$OUT" = before ] || fail "output '$OUT'"
ok "exit status 3 propagated"

# Success needs status 0 and the sentinel as the last line.
run_tool 0 -c "$INI" node1 exec -s DBPKI-OK < <(printf 'echo work\necho DBPKI-OK\n')
has "$ERR" "ok=1" || fail "sentinel not recognised"
run_tool 1 -c "$INI" node1 exec -s DBPKI-OK < <(printf 'echo DBPKI-OK\necho more\n')
has "$ERR" "exit_status=0 " || fail "expected status 0 without sentinel"
ok "sentinel required as the last line"

# The script travels on stdin byte for byte: quotes, $, backquotes.
cat >"$LABDIR/script" <<'EOS'
cat <<'EOF'
it's "$HOME" `id` $(id) ; rm -rf / \ done
EOF
echo "to stderr" >&2
EOS
run_tool 0 -c "$INI" node1 exec <"$LABDIR/script"
want=$(printf '%s\n%s' "it's \"\$HOME\" \`id\` \$(id) ; rm -rf / \\ done" "to stderr")
[ "$OUT" = "$want" ] || fail "script or output altered: '$OUT'"
ok "hostile text passes through stdin unchanged; stderr captured"

# A large script (bigger than the channel window) still goes through.
{ for i in $(seq 1 20000); do echo "# padding line $i ......................"; done; echo 'echo big-done'; } \
    >"$LABDIR/bigscript"
run_tool 0 -c "$INI" node1 exec <"$LABDIR/bigscript"
[ "$OUT" = big-done ] || fail "large script: '$OUT'"
ok "large script ($(wc -c <"$LABDIR/bigscript") bytes)"

# Megabytes of output: the tail is kept, the rest discarded, no hang.
t0=$SECONDS
run_tool 0 -c "$INI" node1 exec -s DBPKI-OK < <(echo 'head -c 8000000 /dev/zero | tr "\0" x; echo; echo DBPKI-OK')
has "$ERR" "truncated=1 out_len=65536 " || fail "output not bounded"
[ $((SECONDS - t0)) -lt 30 ] || fail "8 MB of output took $((SECONDS - t0))s"
ok "8 MB of output bounded to 64 KiB, sentinel still seen"

# A command killed by a signal is not a success, even with status 0.
run_tool 1 -c "$INI" node1 exec < <(echo 'kill -KILL $$')
has "$ERR" "signal=KILL" || fail "signal not reported"
ok "signal reported"

# Timeout: reported as such, within the limit, the command does not linger.
t0=$(date +%s%N)
run_tool 12 -c "$INI" node1 exec 1 < <(echo "sleep 4; touch $N1/late")
ms=$((($(date +%s%N) - t0) / 1000000))
has "$ERR" "timed_out=1" || fail "timeout not flagged"
has "$ERR" "node node1" || fail "timeout error does not name the node"
[ "$ms" -lt 3500 ] || fail "1 s timeout took ${ms} ms"
sleep 4
[ ! -e "$N1/late" ] || fail "the timed-out command kept running on the node"
ok "command timeout after ${ms} ms; the remote command was stopped"

# The inventory's command_timeout applies when no timeout is given.
I=$(inv shortcmd "s|^command_timeout = .*|command_timeout = 1s|")
run_tool 12 -c "$I" node1 exec < <(echo "sleep 3")
has "$ERR" "after 1s" || fail "command_timeout not used"
ok "command_timeout from the inventory"

echo "PASS test_ssh_exec ($((SECONDS - T_STARTED))s)"
