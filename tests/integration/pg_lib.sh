# pg_lib.sh: start and stop disposable PostgreSQL 15 instances with TLS and
# certificate authentication, for integration tests.  Source it from bash:
#
#   . "$DBPKI_ROOT/tests/integration/pg_lib.sh"
#   LAB=$(pg_lab_dir)                          # mktemp -d, chmod 755
#   pg_make_certs "$LAB" node1 node1.lab.test 127.0.30.11
#   pg_start_primary "$LAB/nodes/node1" 127.0.30.11 5432
#   pg_make_certs "$LAB" node2 node2.lab.test 127.0.30.12
#   pg_start_replica "$LAB/nodes/node2" 127.0.30.12 5432 node2 \
#       node1.lab.test 127.0.30.11 5432
#   pg_stop "$LAB/nodes/node2"; pg_stop "$LAB/nodes/node1"
#
# Layout (the same as tests/lab/lab.sh uses):
#   LAB/pki/                 the admin side: dbca.key/dbca.crt, client.key/
#                            client.crt (CN=postgres); root-only, never on a node
#   LAB/nodes/NAME/certs/    dbca.crt server.crt server.key client.crt client.key
#   LAB/nodes/NAME/pgdata/   the data directory
#   LAB/nodes/NAME/sock/     the instance's unix socket (and nothing else's)
#   LAB/nodes/NAME/port      the port it was started on; postgres.log its log
# Everything under nodes/ is owned by the lab user; keys are 0600.
#
# The PostgreSQL settings written here are the ones docs/postgres-tls.md
# documents; keep the two in step.
#
# Knobs (environment): PG_BINDIR (default /usr/lib/postgresql/15/bin),
# PG_CERT_DAYS (default 30; negative gives an already expired certificate),
# PG_ALLOW (CIDRs for the hostssl lines, default 127.0.0.1/32: on Linux a
# TCP connection between two 127.x addresses leaves from 127.0.0.1, whatever
# address the client node "has"), PG_LAB_FAST (default 1: initdb/pg_basebackup
# --no-sync and fsync=off; for disposable test data only).

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PG_LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_USER=${PG_USER:-}

pg_die() {
	echo "pg_lib: $*" >&2
	return 1
}

# Print the OS user PostgreSQL runs as (root cannot run it).
pg_lab_user() {
	if [ -n "$PG_USER" ]; then
		echo "$PG_USER"
		return 0
	fi
	if [ -x "$PG_LIB_ROOT/tests/lab/lab.sh" ] &&
	    PG_USER=$("$PG_LIB_ROOT/tests/lab/lab.sh" user) && [ -n "$PG_USER" ]; then
		echo "$PG_USER"
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		PG_USER=$(id -un)
	else
		PG_USER=dbpkilab
		id "$PG_USER" >/dev/null 2>&1 ||
		    useradd --system --create-home --home-dir /var/lib/dbpkilab \
		    --shell /bin/sh dbpkilab || return 1
	fi
	echo "$PG_USER"
}

# Run a command as the lab user.
pg_as() {
	[ -n "$PG_USER" ] || pg_lab_user >/dev/null || return 1
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$PG_USER" -- "$@"
	else
		"$@"
	fi
}

# A fresh lab directory every component of which the lab user can traverse.
pg_lab_dir() {
	local d
	pg_lab_user >/dev/null || return 1
	d=$(mktemp -d /tmp/dbpki-pg.XXXXXX) || return 1
	chmod 755 "$d"
	echo "$d"
}

# The lab CA and the dbclient certificate, once per lab (admin side).
pg_make_ca() {
	local pki=$1/pki
	[ -f "$pki/dbca.crt" ] && return 0
	mkdir -p "$pki" && chmod 700 "$pki" || return 1
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	    -nodes -keyout "$pki/dbca.key" -out "$pki/dbca.crt" \
	    -subj "/CN=dbpki lab dbca" -days 3650 \
	    -addext "basicConstraints=critical,CA:TRUE" \
	    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null ||
	    { pg_die "cannot create the lab CA in $pki"; return 1; }
	printf '%s\n' "basicConstraints=critical,CA:FALSE" \
	    "keyUsage=critical,digitalSignature" \
	    "extendedKeyUsage=clientAuth" >"$pki/client.ext"
	pg_sign "$pki" client "/CN=${PG_CLIENT_CN:-postgres}" "$pki/client.ext"
}

# pg_sign PKI NAME SUBJECT EXTFILE: PKI/NAME.key and PKI/NAME.crt from dbca.
pg_sign() {
	local pki=$1 name=$2 subj=$3 ext=$4
	(umask 077 && openssl req -new -newkey ec \
	    -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$name.key" \
	    -out "$pki/$name.csr" -subj "$subj" 2>/dev/null) &&
	openssl x509 -req -in "$pki/$name.csr" -CA "$pki/dbca.crt" \
	    -CAkey "$pki/dbca.key" -CAcreateserial -days "${PG_CERT_DAYS:-30}" \
	    -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null ||
	    { pg_die "cannot issue $name ($subj)"; return 1; }
	rm -f "$pki/$name.csr"
}

# pg_make_certs LAB NAME HOST ADDR: a dbserver certificate for one node
# (SAN DNS:HOST, IP:ADDR) and the node's copy of dbca + dbclient, installed
# in LAB/nodes/NAME/certs owned by the lab user.
pg_make_certs() {
	local lab=$1 name=$2 host=$3 addr=$4
	local pki=$lab/pki node=$lab/nodes/$2 u
	u=$(pg_lab_user) || return 1
	pg_make_ca "$lab" || return 1
	printf '%s\n' "basicConstraints=critical,CA:FALSE" \
	    "keyUsage=critical,digitalSignature" \
	    "extendedKeyUsage=serverAuth" \
	    "subjectAltName=DNS:$host,IP:$addr" >"$pki/$name.ext"
	pg_sign "$pki" "$name" "/CN=$host" "$pki/$name.ext" || return 1
	mkdir -p "$node/certs" "$node/sock" || return 1
	install -m 0644 "$pki/dbca.crt" "$node/certs/dbca.crt" &&
	install -m 0644 "$pki/$name.crt" "$node/certs/server.crt" &&
	install -m 0600 "$pki/$name.key" "$node/certs/server.key" &&
	install -m 0644 "$pki/client.crt" "$node/certs/client.crt" &&
	install -m 0600 "$pki/client.key" "$node/certs/client.key" || return 1
	chmod 700 "$node" "$node/certs" "$node/sock"
	chmod 755 "$lab/nodes"
	chown -R "$u:" "$node"
}

# pg_conf NODEDIR ADDR PORT: write NODEDIR/pgdata/dbpki.conf (the file dbpki
# owns, included from postgresql.conf), pg_hba.conf and pg_ident.conf.
pg_conf() {
	local node=$1 addr=$2 port=$3 u cidr
	local pgdata=$node/pgdata certs=$node/certs
	u=$(pg_lab_user) || return 1
	{
		echo "# written by dbpki; included from postgresql.conf"
		echo "listen_addresses = '$addr'"
		echo "port = $port"
		echo "unix_socket_directories = '$node/sock'"
		echo "ssl = on"
		echo "ssl_cert_file = '$certs/server.crt'"
		echo "ssl_key_file = '$certs/server.key'"
		echo "ssl_ca_file = '$certs/dbca.crt'"
		echo "ssl_min_protocol_version = 'TLSv1.2'"
		echo "wal_level = replica"
		echo "max_wal_senders = 10"
		echo "hot_standby = on"
		if [ "${PG_LAB_FAST:-1}" = 1 ]; then
			echo "fsync = off"
			echo "shared_buffers = 16MB"
		fi
	} >"$pgdata/dbpki.conf"
	grep -qx "include = 'dbpki.conf'" "$pgdata/postgresql.conf" ||
	    echo "include = 'dbpki.conf'" >>"$pgdata/postgresql.conf"
	# Only the lab user may use the socket as postgres; TCP only with TLS
	# and the dbclient certificate.
	echo "dbpki $u postgres" >"$pgdata/pg_ident.conf"
	{
		echo "# written by dbpki"
		echo "local   all         postgres  peer map=dbpki"
		echo "local   replication postgres  peer map=dbpki"
		for cidr in ${PG_ALLOW:-127.0.0.1/32}; do
			echo "hostssl all         postgres  $cidr  cert clientcert=verify-full"
			echo "hostssl replication postgres  $cidr  cert clientcert=verify-full"
		done
	} >"$pgdata/pg_hba.conf"
	echo "$port" >"$node/port"
	chown "$u:" "$pgdata/dbpki.conf" "$pgdata/pg_hba.conf" \
	    "$pgdata/pg_ident.conf" "$pgdata/postgresql.conf" "$node/port"
}

pg_ctl_start() {
	local node=$1
	pg_as "$PG_BINDIR/pg_ctl" -D "$node/pgdata" -l "$node/postgres.log" \
	    -w -t 30 start >/dev/null || {
		tail -n 20 "$node/postgres.log" >&2
		pg_die "PostgreSQL in $node did not start (log above)"
		return 1
	}
}

# pg_start_primary NODEDIR ADDR PORT: initdb (only into an empty pgdata),
# configure TLS and pg_hba, start, wait until it accepts connections.
pg_start_primary() {
	local node=$1 addr=$2 port=$3 nosync=()
	pg_lab_user >/dev/null || return 1
	[ "${PG_LAB_FAST:-1}" = 1 ] && nosync=(--no-sync)
	pg_as mkdir -p -m 700 "$node/pgdata" || return 1
	if [ -z "$(ls -A "$node/pgdata")" ]; then
		pg_as "$PG_BINDIR/initdb" -D "$node/pgdata" -U postgres \
		    --auth=reject -E UTF8 --locale=C "${nosync[@]}" \
		    >"$node/initdb.log" 2>&1 ||
		    { cat "$node/initdb.log" >&2; pg_die "initdb failed in $node"; return 1; }
	fi
	pg_conf "$node" "$addr" "$port" && pg_ctl_start "$node"
}

# The replica's connection to its primary, as a conninfo string (values are
# paths and names this file created: no spaces or quotes in them).
pg_primary_conninfo() {
	local certs=$1/certs app=$2 phost=$3 paddr=$4 pport=$5
	printf '%s' "host=$phost hostaddr=$paddr port=$pport user=postgres" \
	    " application_name=$app sslmode=verify-full" \
	    " sslrootcert=$certs/dbca.crt sslcert=$certs/client.crt" \
	    " sslkey=$certs/client.key gssencmode=disable connect_timeout=10"
}

# pg_start_replica NODEDIR ADDR PORT APPNAME PRIMARY_HOST PRIMARY_ADDR
# PRIMARY_PORT: clone the primary with pg_basebackup over verify-full with
# the dbclient certificate, configure, start as a streaming standby.
pg_start_replica() {
	local node=$1 addr=$2 port=$3 app=$4 phost=$5 paddr=$6 pport=$7
	local ci nosync=()
	pg_lab_user >/dev/null || return 1
	[ "${PG_LAB_FAST:-1}" = 1 ] && nosync=(--no-sync)
	pg_as mkdir -p -m 700 "$node/pgdata" || return 1
	[ -z "$(ls -A "$node/pgdata")" ] ||
	    { pg_die "$node/pgdata is not empty; refusing to clone over it"; return 1; }
	ci=$(pg_primary_conninfo "$node" "$app" "$phost" "$paddr" "$pport")
	pg_as "$PG_BINDIR/pg_basebackup" -D "$node/pgdata" -d "$ci" -X stream \
	    -c fast -w "${nosync[@]}" >"$node/basebackup.log" 2>&1 ||
	    { cat "$node/basebackup.log" >&2; pg_die "pg_basebackup into $node failed"; return 1; }
	pg_conf "$node" "$addr" "$port" || return 1
	echo "primary_conninfo = '$ci'" >>"$node/pgdata/dbpki.conf"
	pg_as touch "$node/pgdata/standby.signal"
	pg_ctl_start "$node"
}

# pg_stop NODEDIR: stop the instance whose data directory this is (fast
# shutdown); if pg_ctl cannot, signal exactly the postmaster PID it
# recorded.  Never matches processes by name.
pg_stop() {
	local pgdata=$1/pgdata pid
	[ -f "$pgdata/postmaster.pid" ] || return 0
	pg_as "$PG_BINDIR/pg_ctl" -D "$pgdata" -m fast -w -t 20 stop \
	    >/dev/null 2>&1 && return 0
	pid=$(head -n 1 "$pgdata/postmaster.pid" 2>/dev/null)
	case $pid in
	'' | *[!0-9]*) return 1 ;;
	esac
	kill -KILL "$pid" 2>/dev/null
	return 0
}

# pg_local_psql NODEDIR SQL: run SQL over the node's own unix socket as the
# lab user (what node-side scripts do); prints unaligned tuples.
pg_local_psql() {
	pg_as "$PG_BINDIR/psql" -h "$1/sock" -p "$(cat "$1/port")" -U postgres \
	    -d postgres -XAtq -v ON_ERROR_STOP=1 -c "$2"
}

# pg_served_serial ADDR PORT HOST CAFILE: the serial (lower-case hex) of
# the certificate the server presents, read with openssl s_client only,
# verified against CAFILE and HOST.
pg_served_serial() {
	local s
	s=$(openssl s_client -starttls postgres -connect "$1:$2" \
	    -servername "$3" -verify_hostname "$3" -verify_return_error \
	    -CAfile "$4" </dev/null 2>/dev/null |
	    openssl x509 -noout -serial 2>/dev/null) || return 1
	s=${s#serial=}
	[ -n "$s" ] || return 1
	echo "$s" | tr 'A-F' 'a-f'
}

# pg_cert_serial FILE: the serial of a PEM certificate, same format.
pg_cert_serial() {
	local s
	s=$(openssl x509 -in "$1" -noout -serial) || return 1
	s=${s#serial=}
	echo "$s" | tr 'A-F' 'a-f'
}
