# libpq-version (dbpki status, client nodes): which PostgreSQL client
# version this node's applications get.  Read-only.  psql from the node's
# bindir first (it is what connect.sh uses), pg_config as a fallback; the
# engine compares the version with the one where libpq learned to match an
# IP address against IP SANs (15).  Prints one line "DBPKI-LIBPQ <line>".
set -eu
BINDIR={{bindir}}
SENTINEL={{sentinel}}
PATH="$BINDIR:/usr/bin:/bin"
export PATH
v=$(psql --version 2>/dev/null | head -n 1) || v=
if [ -z "$v" ]; then
	v=$(pg_config --version 2>/dev/null | head -n 1) || v=
fi
printf 'DBPKI-LIBPQ %s\n' "${v:-unknown}" | tr -c '[:print:]\n' '_'
echo "$SENTINEL"
