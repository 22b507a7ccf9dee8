#!/bin/sh
# Prints dbpki's version, usable as a Debian version ([0-9][A-Za-z0-9.+~]*):
#   - in a git checkout: `git describe` of the last vX.Y.Z tag, X.Y.Z, then
#     +N.gHASH for N commits since; with no tag yet, the packaging
#     changelog's version +gitN.gHASH (N commits in all); +dirty for
#     uncommitted changes;
#   - in a copy without git (the package build): the VERSION file there;
#   - else the packaging changelog's version.
# Used by the Makefile (dbpki --version) and by build-deb.sh.
set -eu
cd "$(dirname "$0")/../.."
changelog_version() {
	sed -n '1s/^[a-z0-9.+-]* (\([^)-]*\).*/\1/p' templates/packaging/debian/changelog
}
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
	[ "$(git rev-parse --show-toplevel)" = "$(pwd -P)" ]; then
	dirty=
	git diff --quiet HEAD -- 2>/dev/null || dirty=+dirty
	if d=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
		# v1.2.0-5-gabc1234 -> 1.2.0+5.gabc1234
		echo "$d" | sed 's/^v//; s/-\([0-9]*\)-g\([0-9a-f]*\)$/+\1.g\2/' | tr -d '\n'
		echo "$dirty"
	else
		echo "$(changelog_version)+git$(git rev-list --count HEAD).g$(git describe --always)$dirty"
	fi
elif [ -f VERSION ]; then
	head -n 1 VERSION
else
	changelog_version
fi
