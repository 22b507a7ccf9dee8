#!/usr/bin/env bash
# Host keys and authentication against real sshd on the lab (127.0.20.x):
# strict refuses unknown and changed keys (and nothing reaches the node),
# accept-new records an unknown key but never a changed one, hashed
# entries and @revoked work, a wrong key or a sloppy file is refused.
. "${DBPKI_ROOT:?}/tests/lab/ssh_testlib.sh"

lab_start 127.0.20 primary,replica
N1=$LABDIR/nodes/node1/certs
KH=$LABDIR/ssh/known_hosts
LINE1=$(grep -F '[127.0.20.11]:2222 ' "$KH")
FP1=$(ssh-keygen -lf "$LABDIR/sshd/node1/ssh_host_ed25519_key.pub" | awk '{print $2}')
echo payload >"$LABDIR/payload"

# The lab's own inventory works.
run_tool 0 -c "$INI" node1 connect
ok "strict with the right key connects"

# strict, unknown key: refused, named, with the line to add; nothing sent.
: >"$LABDIR/kh_empty"
I=$(inv empty "s|^known_hosts = .*|known_hosts = $LABDIR/kh_empty|")
run_tool 10 -c "$I" node1 upload "$LABDIR/payload" "$N1/x.pem" 0600
has "$ERR" "node node1" || fail "error does not name the node"
has "$ERR" "ssh-ed25519 $FP1" || fail "error lacks type and fingerprint $FP1"
has "$ERR" "$LINE1" || fail "error lacks the known_hosts line"
[ -z "$(ls -A "$N1")" ] || fail "something reached node1: $(ls -A "$N1")"
run_tool 10 -c "$I" node1 exec < <(echo "touch $N1/ran")
[ ! -e "$N1/ran" ] || fail "a script ran on a node with an unknown key"
ok "strict refuses an unknown key; nothing uploaded or run"

# strict, changed key: node1's entry holds another key.
ssh-keygen -q -t ed25519 -N '' -f "$LABDIR/other" </dev/null
sed "s|^\[127.0.20.11\]:2222 .*|[127.0.20.11]:2222 $(cut -d' ' -f1,2 "$LABDIR/other.pub")|" \
    "$KH" >"$LABDIR/kh_changed"
I=$(inv changed "s|^known_hosts = .*|known_hosts = $LABDIR/kh_changed|")
run_tool 10 -c "$I" node1 upload "$LABDIR/payload" "$N1/x.pem" 0600
has "$ERR" "HOST KEY CHANGED" || fail "no changed-key banner"
has "$ERR" "kh_changed line 1" || fail "banner does not name file and line"
has "$ERR" "$FP1" || fail "banner lacks the new fingerprint"
[ -z "$(ls -A "$N1")" ] || fail "something reached node1: $(ls -A "$N1")"
# The other node's entry is untouched and still works.
run_tool 0 -c "$I" node2 connect
ok "strict refuses a changed key; nothing uploaded"

# Hashed entries (ssh-keygen -H) match, for a non-default port.
cp "$KH" "$LABDIR/kh_hashed"
ssh-keygen -q -H -f "$LABDIR/kh_hashed" >/dev/null 2>&1
rm -f "$LABDIR/kh_hashed.old"
grep -q '^|1|' "$LABDIR/kh_hashed" || fail "ssh-keygen -H did not hash"
grep -q '127.0.20' "$LABDIR/kh_hashed" && fail "hashed file still has names"
I=$(inv hashed "s|^known_hosts = .*|known_hosts = $LABDIR/kh_hashed|")
run_tool 0 -c "$I" node1 connect
ok "hashed known_hosts entries match"

# An entry for the bare address does not count for port 2222 (ssh(1)).
sed 's|^\[\(127.0.20.11\)\]:2222 |\1 |' "$KH" >"$LABDIR/kh_bare"
I=$(inv bare "s|^known_hosts = .*|known_hosts = $LABDIR/kh_bare|")
run_tool 10 -c "$I" node1 connect
has "$ERR" "unknown host key" || fail "bare-host entry was accepted"
ok "a bare-host entry does not match [host]:port"

# @revoked wins over a matching entry.
{ cat "$KH"; echo "@revoked * $(cut -d' ' -f1,2 "$LABDIR/sshd/node1/ssh_host_ed25519_key.pub")"; } \
    >"$LABDIR/kh_revoked"
I=$(inv revoked "s|^known_hosts = .*|known_hosts = $LABDIR/kh_revoked|")
run_tool 10 -c "$I" node1 connect
has "$ERR" "@revoked" || fail "revoked key not reported as such"
ok "@revoked key refused"

# accept-new records an unknown key (mode kept), then uses it.
: >"$LABDIR/kh_new"
chmod 0640 "$LABDIR/kh_new"
I=$(inv acceptnew "s|^known_hosts = .*|known_hosts = $LABDIR/kh_new|" \
    "s|^host_key_policy = .*|host_key_policy = accept-new|")
run_tool 0 -c "$I" node1 upload "$LABDIR/payload" "$N1/x.pem" 0600
has "$ERR" "recorded new host key ssh-ed25519 $FP1" || fail "no notice of the recorded key"
[ "$(cat "$LABDIR/kh_new")" = "$LINE1" ] || fail "recorded: '$(cat "$LABDIR/kh_new")', expected '$LINE1'"
[ "$(stat -c %a "$LABDIR/kh_new")" = 640 ] || fail "known_hosts mode changed"
cmp -s "$LABDIR/payload" "$N1/x.pem" || fail "upload after accept-new"
run_tool 0 -c "$I" node1 connect
[ "$(wc -l <"$LABDIR/kh_new")" -eq 1 ] || fail "key recorded twice"
ok "accept-new records an unknown key once, keeps the mode"

# accept-new never replaces a changed key.
cp "$LABDIR/kh_changed" "$LABDIR/kh_new2"
before=$(sha256sum <"$LABDIR/kh_new2")
I=$(inv acceptnew2 "s|^known_hosts = .*|known_hosts = $LABDIR/kh_new2|" \
    "s|^host_key_policy = .*|host_key_policy = accept-new|")
rm -f "$N1/x.pem"
run_tool 10 -c "$I" node1 upload "$LABDIR/payload" "$N1/x.pem" 0600
has "$ERR" "HOST KEY CHANGED" || fail "accept-new: no changed-key banner"
[ "$(sha256sum <"$LABDIR/kh_new2")" = "$before" ] || fail "accept-new rewrote known_hosts on a changed key"
[ ! -e "$N1/x.pem" ] || fail "upload happened despite a changed key"
ok "accept-new refuses a changed key and leaves known_hosts alone"

# Authentication with a key the node does not know.
I=$(inv wrongkey "s|^identity = .*|identity = $LABDIR/other|")
run_tool 11 -c "$I" node1 connect
has "$ERR" "refused the key" || fail "wrong key: unclear error"
has "$ERR" "node node1" || fail "wrong key: node not named"
ok "a wrong identity is refused"

# Sloppy local files are refused before any network traffic.
cp "$LABDIR/ssh/id_ed25519" "$LABDIR/id_open"
chmod 0644 "$LABDIR/id_open"
I=$(inv openkey "s|^identity = .*|identity = $LABDIR/id_open|")
run_tool 2 -c "$I" node1 connect
has "$ERR" "chmod 600" || fail "readable identity: no fix given"
I=$(inv nokh "s|^known_hosts = .*|known_hosts = $LABDIR/missing|")
run_tool 2 -c "$I" node1 connect
has "$ERR" "does not exist" || fail "missing known_hosts: unclear error"
cp "$KH" "$LABDIR/kh_gw"
chmod 0664 "$LABDIR/kh_gw"
I=$(inv gw "s|^known_hosts = .*|known_hosts = $LABDIR/kh_gw|")
run_tool 2 -c "$I" node1 connect
ok "open identity, missing or group-writable known_hosts refused"

# The SSH agent, when the inventory names no identity.
eval "$(ssh-agent -s)" >/dev/null
agent_pid=$SSH_AGENT_PID
trap 'kill "$agent_pid" 2>/dev/null; lab_stop' EXIT
ssh-add -q "$LABDIR/ssh/id_ed25519" 2>/dev/null || fail "ssh-add"
I=$(inv agent "/^identity = /d")
run_tool 0 -c "$I" node1 connect
ssh-add -q -D 2>/dev/null
ssh-add -q "$LABDIR/other" 2>/dev/null
run_tool 11 -c "$I" node1 connect
kill "$agent_pid"
unset SSH_AUTH_SOCK
run_tool 2 -c "$I" node1 connect
has "$ERR" "SSH_AUTH_SOCK" || fail "no agent: unclear error"
ok "agent authentication (and refusal with the wrong agent key)"

echo "PASS test_ssh_hostkey ($((SECONDS - T_STARTED))s)"
