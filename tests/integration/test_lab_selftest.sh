#!/usr/bin/env bash
# test_lab_selftest: the netlab self-test (tests/lab/selftest.sh, issue 11)
# as part of the integration suite: a TLS cluster configured by hand, without
# dbpki, on network-namespace nodes; checked before and after "reboot all";
# the host left as it was found.  Needs root; it fails, never skips, when
# network namespaces cannot be made.
set -euo pipefail
: "${DBPKI_ROOT:?}"
# netlab.sh takes labinit from $DBPKI_BUILD/tools (make check builds it).
exec "$DBPKI_ROOT/tests/lab/selftest.sh"
