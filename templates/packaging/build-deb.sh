#!/usr/bin/env bash
# make deb: builds dbpki_VERSION_ARCH.deb with dpkg-buildpackage from a copy
# of the tree in OUT/ (default build/deb), templates/packaging/debian/ as its
# debian/, then runs lintian on it: any error (E:) fails.
#   templates/packaging/build-deb.sh [OUT]
# The copy keeps the repository's top level as it is (no debian/ there) and
# carries the version in a VERSION file, since it has no .git.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-build/deb}
case $out in /*) ;; *) out=$root/$out ;; esac
for t in dpkg-buildpackage dh lintian fakeroot; do
	command -v "$t" >/dev/null || {
		echo "deb: $t missing; run: make deb (it installs dpkg-dev, debhelper, lintian, fakeroot)" >&2
		exit 1
	}
done

version=$("$root/templates/packaging/version.sh")
src=$out/dbpki-$version
rm -rf "$out"
mkdir -p "$src"
# The tree as it is, without builds, the repository or earlier packages.
tar -C "$root" --exclude=./.git --exclude='./build*' --exclude=./dbpki \
	--exclude=./tmp --exclude=./tests/lab/run -cf - . | tar -C "$src" -xf -
echo "$version" >"$src/VERSION"
cp -R "$root/templates/packaging/debian" "$src/debian"
# The changelog's first entry carries this build's version and date.
{
	echo "dbpki ($version) unstable; urgency=medium"
	echo
	echo "  * Built from $(cd "$root" && git describe --always --dirty 2>/dev/null || echo "a copy without git") by make deb."
	echo
	echo " -- dbpki maintainers <dbpki@example.org>  $(date -R)"
	echo
	cat "$root/templates/packaging/debian/changelog"
} >"$src/debian/changelog"

echo "deb: dpkg-buildpackage in $src (log: $out/build.log)"
if ! (cd "$src" && dpkg-buildpackage -b -us -uc >"$out/build.log" 2>&1); then
	tail -n 40 "$out/build.log" >&2
	echo "deb: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
	exit 1
fi
deb=$(ls "$out"/dbpki_"$version"_*.deb)
echo "deb: lintian $deb"
# lintian exits 1 on an error tag, 2 when it could not check at all.
rc=0
lintian --no-tag-display-limit --fail-on error "$deb" >"$out/lintian.log" 2>&1 || rc=$?
cat "$out/lintian.log"
if [ "$rc" -ne 0 ] || grep -q '^E: ' "$out/lintian.log"; then
	echo "deb: lintian reports errors (above); fix templates/packaging/debian/" >&2
	exit 1
fi
echo "deb: $deb"
