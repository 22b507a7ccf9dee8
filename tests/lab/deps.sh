#!/usr/bin/env bash
# Installs the Debian packages that dbpki's build, tests and lab need, only
# those that are missing.  Used by `make deps` (and so by `make check` and
# `make demo`).  Needs root or sudo when something is missing.
set -eu
pkgs=(make gcc pkg-config libssl-dev libpq-dev libssh2-1-dev libinih-dev
	libcmocka-dev openssl postgresql-15 postgresql-client-15 openssh-server
	openssh-client valgrind iproute2 util-linux procps clang
	libclang-rt-14-dev)
[ -n "${DBPKI_EXTRA_PKGS:-}" ] && pkgs+=($DBPKI_EXTRA_PKGS)

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
"${sudo[@]}" apt-get update -qq
# Debian's postgresql-common would create and start a cluster of its own on
# port 5432; the lab runs its own servers, so skip that one.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
	"${sudo[@]}" mkdir -p /etc/postgresql-common
	echo "create_main_cluster = false" | "${sudo[@]}" tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}"
