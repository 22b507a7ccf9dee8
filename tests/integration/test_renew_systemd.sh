#!/usr/bin/env bash
# Issue 5: the systemd units for scheduled renewal and metrics
# (templates/systemd/).  systemd-analyze verify, when it is installed,
# parses them as instances (dbpki-renew@lab.*) with ExecStart pointing at
# this build, and must report nothing at all; the settings docs/renew.md
# promises are checked in the files themselves either way.
set -euo pipefail
: "${DBPKI:?} ${DBPKI_ROOT:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
SRC=$DBPKI_ROOT/templates/systemd
T=$(mktemp -d /tmp/dbpki-systemd.XXXXXX)
trap 'rm -rf "$T"' EXIT

for u in dbpki-renew@.service dbpki-renew@.timer dbpki-check@.service dbpki-check@.timer; do
	[ -f "$SRC/$u" ] || fail "$u is missing"
done
R=$SRC/dbpki-renew@.service
grep -q '^ExecStart=/usr/local/bin/dbpki renew -c /etc/dbpki/%i.ini$' "$R" || fail "renew ExecStart"
grep -q '^Type=oneshot$' "$R" || fail "renew: Type=oneshot"
grep -q '^ProtectSystem=strict$' "$R" || fail "renew: ProtectSystem=strict"
grep -q '^ReadWritePaths=/var/lib/dbpki$' "$R" || fail "renew: state_dir must stay writable"
grep -q '^ProtectHome=read-only$' "$R" || fail "renew: the SSH identity must stay readable"
grep -q '^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6$' "$R" || fail "renew: SSH and libpq need AF_INET/AF_INET6"
grep -q '^NoNewPrivileges=yes$' "$R" || fail "renew: NoNewPrivileges"
grep -q '^CapabilityBoundingSet=$' "$R" || fail "renew: capabilities"
R=$SRC/dbpki-renew@.timer
grep -q '^OnCalendar=daily$' "$R" || fail "timer: daily"
grep -q '^RandomizedDelaySec=' "$R" || fail "timer: RandomizedDelaySec"
grep -q '^Persistent=true$' "$R" || fail "timer: Persistent=true"
grep -q '^WantedBy=timers.target$' "$R" || fail "timer: WantedBy"
grep -q '^SuccessExitStatus=1 2$' "$SRC/dbpki-check@.service" || fail "check: WARNING/CRITICAL are results"
grep -q -- '--prometheus /var/lib/prometheus/node-exporter/dbpki-%i.prom$' "$SRC/dbpki-check@.service" || fail "check: textfile path"
pass "units hold the schedule and the hardening docs/renew.md describes"

if ! command -v systemd-analyze >/dev/null; then
	echo "note: systemd-analyze is not installed; skipping systemd-analyze verify"
	exit 0
fi
for u in "$SRC"/*; do
	b=$(basename "$u")
	sed "s#/usr/local/bin/dbpki#$DBPKI#" "$u" >"$T/${b/@./@lab.}"
done
(cd "$T" && systemd-analyze verify --man=no dbpki-renew@lab.service dbpki-renew@lab.timer \
	dbpki-check@lab.service dbpki-check@lab.timer) >"$T/verify.txt" 2>&1 || { cat "$T/verify.txt"; fail "systemd-analyze verify failed"; }
[ ! -s "$T/verify.txt" ] || { cat "$T/verify.txt"; fail "systemd-analyze verify complained"; }
pass "systemd-analyze verify: the four units parse without a single complaint"
