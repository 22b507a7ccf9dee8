#!/usr/bin/env bash
# Installs the Debian packages that dbpki's build, tests and lab need, only
# those that are missing.  Used by `make deps` (and so by `make check` and
# `make demo`).  Needs root or sudo when something is missing.
#   DBPKI_EXTRA_PKGS="a b"   more packages (make check and make deb add the
#                            packaging tools: dpkg-dev, debhelper, lintian ...)
#   tests/lab/deps.sh --list prints the list and installs nothing
# util-linux is not listed: it is Essential on every Debian system.
set -eu
pkgs=(make gcc pkg-config libssl-dev libpq-dev libssh2-1-dev libinih-dev
	libp11-dev libp11-kit-dev softhsm2 opensc
	libcmocka-dev openssl postgresql-15 postgresql-client-15 openssh-server
	openssh-client valgrind iproute2 procps clang sudo
	libclang-rt-14-dev)
if [ -n "${DBPKI_EXTRA_PKGS:-}" ]; then
	read -r -a extra <<<"$DBPKI_EXTRA_PKGS"
	pkgs+=("${extra[@]}")
fi
if [ "${1:-}" = --list ]; then
	printf '%s\n' "${pkgs[@]}"
	exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || {
		echo "deps: missing packages and not root; run as root: apt-get install ${missing[*]}" >&2
		exit 1
	}
	sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive

# Installing postgresql-15 or openssh-server would start their servers (and
# leave them running on the user's machine); the lab starts its own.  A
# policy-rc.d that says 101 ("action forbidden") keeps invoke-rc.d and
# deb-systemd-invoke from starting anything while we install.  It is ours
# only if there was none; removed on every exit, failure included.
policy=/usr/sbin/policy-rc.d
ours_policy=0
cleanup() {
	if [ "$ours_policy" = 1 ]; then
		"${sudo[@]}" rm -f "$policy"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# tests/lab/deps.sh: no daemon starts while it installs packages\nexit 101\n' |
		"${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 0755 "$policy"
	ours_policy=1
fi

"${sudo[@]}" apt-get update -qq
# Debian's postgresql-common would create and start a cluster of its own on
# port 5432; the lab runs its own servers, so skip that one.
cc=/etc/postgresql-common/createcluster.conf
wrote_cc=0
if [ ! -e $cc ]; then
	"${sudo[@]}" mkdir -p /etc/postgresql-common
	echo "create_main_cluster = false" | "${sudo[@]}" tee $cc >/dev/null
	wrote_cc=1
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}"
# postgresql-common kept that one line (confold), but every other default
# of its template matters to clusters made later, the lab's stock `main`
# among them: add_include_dir = 'conf.d' above all, without which
# postgresql.conf reads no conf.d.  So: the package's template, plus the
# one line.
tpl=/usr/share/postgresql-common/createcluster.conf
if [ $wrote_cc = 1 ] && [ -f $tpl ]; then
	{
		cat $tpl
		echo
		echo "# tests/lab/deps.sh (dbpki): no main cluster at install"
		echo "create_main_cluster = false"
	} | "${sudo[@]}" tee $cc >/dev/null
fi
