#!/usr/bin/env bash
# Issue 13: the README's commands work the first time on a fresh Debian 12
# machine, and the Debian package builds and installs there.
#
# The "fresh machine" is this one's / under an overlay whose upper layer is
# a tmpfs, in a mount namespace and a PID namespace of its own: every
# process started inside dies with it, and nothing written inside reaches
# the real /.  There, and only there:
#   1. every package of tests/lab/deps.sh (and the packaging tools make
#      check adds) is purged, with apt's Debian sources only, Docker's
#      policy-rc.d and PostgreSQL's leftovers removed; the test asserts that
#      none of those packages is installed and that make, cc and pkg-config
#      are gone;
#   2. as a user would: apt-get install make, then `make demo` from a copy of
#      this tree; it must install the packages itself, build, bootstrap the
#      lab cluster and verify (demo.sh exits 0 only then); the package
#      installation must start no server (deps.sh's policy-rc.d) and leave
#      no policy-rc.d behind; make demo-down stops the lab;
#   3. `make check-build` (the deps-and-build stage of make check);
#   4. `make deb` (dpkg-buildpackage, lintian without error), then
#      apt-get install ./dbpki_*.deb: the users and groups, /var/lib/dbpki,
#      dbpki --version, plan from / with no environment, man dbpki.
# Needs root and the network to Debian's mirror (apt); the .debs apt
# fetches are kept in this machine's /var/cache/apt/archives for next time.
# The demo lab uses 127.0.10.x on this machine's loopback, like make demo.
set -euo pipefail
: "${DBPKI_ROOT:?}"
R=$DBPKI_ROOT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
pass() { echo "ok: $*"; }

if [ "${1:-}" != --inside ]; then
	[ "$(id -u)" -eq 0 ] || fail "needs root (mount and PID namespaces, apt in the overlay)"
	T=$(mktemp -d /tmp/dbpki-fresh.XXXXXX)
	trap 'rm -rf "$T"' EXIT
	# --kill-child: if this script is killed, the namespace's PID 1 gets
	# SIGKILL, and the kernel then kills every process inside.
	unshare --mount --pid --fork --kill-child --propagation private -- \
		bash "$0" --inside "$T"
	exit
fi

# ---- inside: PID 1 of a new PID namespace, in a private mount namespace.
T=$2
t0=$SECONDS
step() { echo "== $1 ($((SECONDS - t0)) s)"; }
mount -t tmpfs -o size=12g,mode=0755 dbpki-fresh "$T"
mkdir "$T/upper" "$T/work" "$T/root"
mount -t overlay dbpki-fresh -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
F=$T/root
mount -t proc proc "$F/proc"
mount --rbind /dev "$F/dev"
mount -t tmpfs -o mode=1777 shm "$F/dev/shm"
mount -t tmpfs -o mode=0755 run "$F/run"
mkdir -p "$F/run/lock"
mount -t tmpfs -o mode=1777 tmp "$F/tmp"
mount --bind /var/cache/apt/archives "$F/var/cache/apt/archives"
LOGS=$T/logs
mkdir -p "$LOGS"

# A login shell's environment, nothing of the test runner's.
in_root() {
	chroot "$F" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" </dev/null
}
# Runs a command in the root with its output in a log; on failure shows
# the end of the log.
logged() { # name command...
	local name=$1
	shift
	if ! in_root "$@" >"$LOGS/$name.log" 2>&1; then
		tail -n 40 "$LOGS/$name.log" | cut -c1-400
		fail "$name: '$*' failed in the fresh root (end of its log above)"
	fi
}

# 1. Make it fresh.
step "purge"
for f in "$F"/etc/apt/sources.list.d/*; do
	[ -f "$f" ] || continue
	grep -q 'deb\.debian\.org' "$f" || rm -f "$f"
done
rm -f "$F/usr/sbin/policy-rc.d"
# While purging: no maintainer script may start or stop a service.
printf '#!/bin/sh\nexit 101\n' >"$F/usr/sbin/policy-rc.d"
chmod 0755 "$F/usr/sbin/policy-rc.d"
extra=$(sed -n 's/^\(DEB\|TEST\)_TOOLS := //p' "$R/Makefile")
[ "$(echo "$extra" | wc -l)" = 2 ] || fail "no DEB_TOOLS and TEST_TOOLS lines in the Makefile"
extra=$(echo $extra)
mapfile -t pkgs < <(DBPKI_EXTRA_PKGS="$extra" bash "$R/tests/lab/deps.sh" --list)
[ "${#pkgs[@]}" -ge 18 ] || fail "deps.sh --list gave only: ${pkgs[*]}"
# With everything installed that depends on them (openssl takes
# ca-certificates and whatever needs those): apt's resolver gives up on a
# purge that would leave such a package broken.
in_root apt-cache rdepends --installed --recurse --no-recommends --no-suggests \
	--no-enhances --no-breaks --no-conflicts --no-replaces "${pkgs[@]}" |
	grep -v '^ \|^Reverse' | sort -u >"$LOGS/purge.list"
mapfile -t purge <"$LOGS/purge.list"
for p in "${purge[@]}"; do
	[ "$(in_root dpkg-query -W -f='${Essential}' "$p" 2>/dev/null)" != yes ] ||
		fail "purging deps.sh's packages would remove the Essential package $p"
done
# sudo's prerm refuses when root has no password unless told: this root is
# a throwaway overlay, and deps.sh installs sudo again.
logged purge env SUDO_FORCE_REMOVE=yes apt-get purge -y -q "${purge[@]}"
step "autoremove"
logged autoremove apt-get autoremove --purge -y -q
rm -rf "$F/etc/postgresql" "$F/etc/postgresql-common" "$F/var/lib/postgresql" \
	"$F/var/log/postgresql" "$F/usr/sbin/policy-rc.d"
for p in "${pkgs[@]}"; do
	st=$(in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" != "install ok installed" ] || fail "$p is still installed in the fresh root"
done
for c in make cc gcc pkg-config clang psql sshd; do
	! in_root sh -c "command -v $c" >/dev/null || fail "$c is still there after the purge"
done
pass "none of the ${#pkgs[@]} packages is installed: ${pkgs[*]}"

# 2. The README: make first, then make demo, from a copy of this tree.
step "make demo"
mkdir -p "$F/root/dbpki"
tar -C "$R" --exclude='./build*' --exclude=./dbpki --exclude=./tmp \
	--exclude=./tests/lab/run -cf - . | tar -C "$F/root/dbpki" -xf -
logged apt-make apt-get install -y -q make
# The demo's machines keep their /etc overlays in /var/tmp/dbpki-demo, and
# an overlay cannot have its upper layer on this root's own overlayfs: on a
# real machine /var/tmp is a disk, here a tmpfs gone with this namespace.
mount -t tmpfs -o mode=1777 tmpfs "$F/var/tmp"
logged make-demo sh -c 'cd /root/dbpki && make demo'
grep -q '^deps: installing ' "$LOGS/make-demo.log" ||
	fail "make demo did not install the packages itself (no 'deps: installing' line)"
grep -q 'demo: \$ dbpki status' "$LOGS/make-demo.log" ||
	fail "make demo stopped before its status (log: make-demo)"
[ ! -e "$F/usr/sbin/policy-rc.d" ] || fail "deps.sh left /usr/sbin/policy-rc.d behind"
[ ! -e "$F/run/sshd.pid" ] || fail "installing openssh-server started sshd (/run/sshd.pid)"
[ ! -d "$F/etc/postgresql/15/main" ] || fail "installing postgresql-15 created the main cluster"
pass "make demo, the first time: packages installed, built, bootstrapped and verified"
logged demo-down sh -c 'cd /root/dbpki && make demo-down'
if left=$(in_root pgrep -a -x 'postgres|sshd'); then
	fail "after make demo-down these still run: $left"
fi
pass "make demo-down stopped the lab"

# 3. The deps-and-build stage of make check.
step "make check-build"
logged check-build sh -c 'cd /root/dbpki && make check-build'
for b in build/dbpki build/tests/test_config build/tools/sshtool; do
	[ -x "$F/root/dbpki/$b" ] || fail "make check-build did not build $b"
done
pass "make check-build"

# 4. The package: build, lint, install.
step "make deb"
logged make-deb sh -c 'cd /root/dbpki && make deb'
grep -q '^deb: lintian ' "$LOGS/make-deb.log" || fail "make deb ran no lintian"
if grep '^E: ' "$LOGS/make-deb.log"; then fail "lintian errors (above)"; fi
deb=$(cd "$F/root/dbpki/build/deb" && ls dbpki_*.deb)
pass "make deb: $deb, lintian without error"
step "install the .deb"
logged install-deb apt-get install -y -q "/root/dbpki/build/deb/$deb"
in_root getent passwd dbpki >/dev/null || fail "the package created no user dbpki"
in_root getent group dbpki >/dev/null || fail "the package created no group dbpki"
in_root getent group dbpki-monitor >/dev/null || fail "the package created no group dbpki-monitor"
perm=$(in_root stat -c '%U:%G %a' /var/lib/dbpki)
[ "$perm" = "dbpki:dbpki-monitor 2750" ] || fail "/var/lib/dbpki is $perm"
want=$(cat "$F/root/dbpki/build/deb/"dbpki-*/VERSION)
got=$(in_root /usr/bin/dbpki --version)
[ "$got" = "dbpki $want" ] || fail "installed --version: '$got', package version $want"
sed '/^identity/d' "$F/usr/share/doc/dbpki/examples/cluster.ini.example" >"$F/tmp/c.ini"
chmod 0600 "$F/tmp/c.ini"
logged plan sh -c 'cd / && /usr/bin/dbpki plan -c /tmp/c.ini bootstrap'
grep -q '^plan: playbook bootstrap (/usr/share/dbpki/playbooks/bootstrap.ini)$' "$LOGS/plan.log" ||
	fail "the installed dbpki did not read /usr/share/dbpki: $(head -1 "$LOGS/plan.log")"
in_root sh -c 'MANWIDTH=80 man dbpki 2>&1' | grep -q 'certificates for database clusters' ||
	fail "man dbpki does not show dbpki(1)"
in_root sh -c 'man -w dbpki-inventory' | grep -q '/usr/share/man/man5/dbpki-inventory.5' ||
	fail "man -w dbpki-inventory finds no page"
grep -q '^ExecStart=/usr/bin/dbpki ' "$F/lib/systemd/system/dbpki-renew@.service" ||
	fail "the packaged renew unit does not run /usr/bin/dbpki"
pass "the .deb installs: users and groups, --version $want, plan, man pages, units"

# 5. deps.sh when apt fails: its policy-rc.d is gone all the same, and one
# that was there before (Docker's) is left as it was.
step "deps.sh failing"
if in_root env DBPKI_EXTRA_PKGS=dbpki-no-such-package bash /root/dbpki/tests/lab/deps.sh \
	>"$LOGS/deps-fail.log" 2>&1; then
	fail "deps.sh succeeded with a package that does not exist"
fi
grep -q 'deps: installing dbpki-no-such-package' "$LOGS/deps-fail.log" ||
	{ cat "$LOGS/deps-fail.log"; fail "deps.sh did not try to install the missing package"; }
[ ! -e "$F/usr/sbin/policy-rc.d" ] || fail "a failed deps.sh left /usr/sbin/policy-rc.d behind"
printf '#!/bin/sh\n# the admin'"'"'s own\nexit 101\n' >"$F/usr/sbin/policy-rc.d"
cp "$F/usr/sbin/policy-rc.d" "$T/policy.before"
in_root env DBPKI_EXTRA_PKGS=dbpki-no-such-package bash /root/dbpki/tests/lab/deps.sh \
	>"$LOGS/deps-fail2.log" 2>&1 && fail "deps.sh succeeded with a package that does not exist"
cmp -s "$T/policy.before" "$F/usr/sbin/policy-rc.d" ||
	fail "deps.sh removed or changed a policy-rc.d that was not its own"
pass "deps.sh removes its own policy-rc.d on failure and keeps one it did not write"
step "done"
