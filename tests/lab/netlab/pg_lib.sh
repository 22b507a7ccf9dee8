# shellcheck shell=bash
# tests/lab/netlab/pg_lib.sh: a PostgreSQL cluster built BY HAND (with
# openssl and PostgreSQL's own tools, not with dbpki) on pgdata-layout
# netlab nodes; the netlab's counterpart of tests/integration/pg_lib.sh,
# for the tests of `dbpki rotate`, which takes over a cluster it did not
# build.  Sourced after tests/lab/netlab/testlib.sh:
#
#   netlab_up node1:primary:pgdata node2:replica:pgdata node3:client
#   npg_hand_ca DIR START END SAN        # DIR/ca.crt, openssl ca dates
#   npg_hand_cert DIR server "/CN=..." v3_server   # DIR/server.{key,crt}
#   npg_install node1 hand 600 DIR/server.key ...  # into the node's home
#   npg node1 CMD...             # CMD as node1's login user inside node1
#   npg_ctl node1 start          # pg_ctl -D pgdata -l hand/postgres.log
#   npg_psql node1 SQL           # over node1's own socket (a peer map)
#   npg_until WANT CMD...        # retry CMD until it prints WANT (30 s)
#   npg_sysid node1 [DIR]        # the database system identifier
#
# A cluster as tests/integration/pg_lib.sh builds it (valid certificates,
# the settings dbpki writes, pg_hba by each machine's address), for tests
# that start from a working cluster:
#   npg_make_certs DIR node1     # DIR/dbca, node1's dbserver, into HOME/certs
#   npg_start_primary node1      # initdb, npg_conf, start
#   npg_start_replica node2 node1  # pg_basebackup over verify-full, start
#
# Everything runs inside the node (its own address, /etc/hosts, users), as
# its login user (dbpkilab on pgdata nodes, whose uid exists only in the
# node's passwd): runuser in `netlab.sh exec`, no SSH, so that building
# the cluster does not use the path dbpki is tested on.  Files are put in
# place from the host side (nfs NODE) and given to the login user by uid.
NPG_BIN=/usr/lib/postgresql/15/bin

npg_home() { sed -n 's/^LOGIN_HOME=//p' "$LAB/nodes/$1/ctl/node.conf"; }
npg_login() { sed -n 's/^LOGIN=//p' "$LAB/nodes/$1/ctl/node.conf"; }

npg() { # NODE CMD...: as the node's login user, inside the node
	local n=$1
	shift
	as "$n" runuser -u "$(npg_login "$n")" -- "$@"
}

# The address of the admin side (dbpki, psql, openssl run there).
npg_admin_addr() { awk '$2 == "admin.lab.test" && $1 !~ /:/ { print $1; exit }' "$LAB/hosts"; }

npg_install() { # NODE SUBDIR MODE [FILE...]: HOME/SUBDIR (0700) and copies there, the login user's
	local n=$1 sub=$2 mode=$3 d uid
	shift 3
	d=$(nfs "$n")$(npg_home "$n")
	uid=$(stat -c %u "$d")
	install -d -m 700 -o "$uid" -g "$uid" "$d/$sub"
	[ $# -eq 0 ] || install -m "$mode" -o "$uid" -g "$uid" "$@" "$d/$sub/"
}

npg_ctl() { # NODE ARGS...: pg_ctl on the node's pgdata, log in HOME/hand
	local n=$1 h
	shift
	h=$(npg_home "$n")
	npg "$n" "$NPG_BIN/pg_ctl" -D "$h/pgdata" -l "$h/hand/postgres.log" -w -t 60 "$@" >/dev/null
}

npg_psql() { # NODE SQL: over the node's own socket as its login user
	npg "$1" "$NPG_BIN/psql" -X -At -h "$(npg_home "$1")/sock" -U postgres -d postgres \
		-v ON_ERROR_STOP=1 -c "$2"
}

npg_until() { # WANT CMD...: retry for up to 30 s
	local want=$1 got=
	shift
	for _ in $(seq 1 60); do
		got=$("$@" 2>/dev/null || true)
		[ "$got" = "$want" ] && return 0
		sleep 0.5
	done
	echo "want '$want', got '$got'" >&2
	return 1
}

npg_sysid() { # NODE [DATADIR (node path)]
	npg "$1" "$NPG_BIN/pg_controldata" "${2:-$(npg_home "$1")/pgdata}" |
		sed -n 's/^Database system identifier: *//p'
}

# npg_hand_ca DIR START END SAN [CA-SUBJECT]: an openssl ca in DIR whose
# certificates run from START to END (YYYYmmddHHMMSSZ; both in the past for
# an expired PKI) and DIR/ca.crt, its self-signed CA; SAN is the v3_server
# extension's subjectAltName.  Made with `openssl ca` because `openssl
# req/x509` cannot back-date a certificate.
npg_hand_ca() {
	local h=$1 subj=${5:-/CN=hand-made dbca}
	NPG_START=$2 NPG_END=$3
	mkdir -m 700 "$h" "$h/newcerts"
	: >"$h/index.txt"
	echo 1000 >"$h/serial"
	cat >"$h/ca.cnf" <<EOF
[ca]
default_ca = hand
[hand]
database = $h/index.txt
new_certs_dir = $h/newcerts
serial = $h/serial
default_md = sha256
policy = pol
unique_subject = no
[pol]
commonName = supplied
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $4
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOF
	npg_hand_cert "$h" ca "$subj" v3_ca -selfsign -keyfile "$h/ca.key"
}

npg_hand_cert() { # DIR NAME SUBJECT EXTENSIONS [openssl-ca-options]: DIR/NAME.key, .crt
	local h=$1 name=$2 subj=$3 ext=$4
	shift 4
	[ $# -gt 0 ] || set -- -cert "$h/ca.crt" -keyfile "$h/ca.key"
	(umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$h/$name.key" -out "$h/$name.csr" -subj "$subj" -config "$h/ca.cnf" 2>/dev/null) &&
		openssl ca -batch -notext -config "$h/ca.cnf" "$@" -in "$h/$name.csr" \
			-out "$h/$name.crt" -extensions "$ext" -startdate "$NPG_START" \
			-enddate "$NPG_END" >/dev/null 2>&1 || fail "openssl ca could not make $name in $h"
}

npg_serial() { # PEM-FILE: its serial, lower-case hex
	openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr A-F a-f
}

# ---- a working cluster, as tests/integration/pg_lib.sh builds one ---------

# npg_make_certs PKI NODE: PKI/dbca (once, with the dbclient certificate
# CN=postgres) and NODE's dbserver certificate (SAN: its name and address),
# valid 30 days; installed with dbca.crt and the dbclient pair in NODE's
# HOME/certs, where pg_lib.sh puts them (and dbpki's cert_dir).
npg_make_certs() {
	local pki=$1 n=$2 a
	a=$(naddr "$n")
	if [ ! -f "$pki/dbca.crt" ]; then
		mkdir -m 700 "$pki"
		openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$pki/dbca.key" -out "$pki/dbca.crt" -subj "/CN=dbpki lab dbca" -days 3650 \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null ||
			fail "cannot create the lab CA in $pki"
		npg_sign "$pki" client /CN=postgres "extendedKeyUsage=clientAuth"
	fi
	npg_sign "$pki" "$n" "/CN=$n.lab.test" "extendedKeyUsage=serverAuth" "subjectAltName=DNS:$n.lab.test,IP:$a"
	cp "$pki/$n.crt" "$pki/server.crt"
	cp -p "$pki/$n.key" "$pki/server.key"
	npg_install "$n" certs 644 "$pki/dbca.crt" "$pki/server.crt" "$pki/client.crt"
	npg_install "$n" certs 600 "$pki/server.key" "$pki/client.key"
	npg_install "$n" hand 644 # the directory of npg_ctl's server log
}

npg_sign() { # PKI NAME SUBJECT EXTENSION...: PKI/NAME.key, .crt from PKI/dbca, 30 days
	local pki=$1 name=$2 subj=$3
	shift 3
	printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" "$@" >"$pki/$name.ext"
	(umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$pki/$name.key" -out "$pki/$name.csr" -subj "$subj" 2>/dev/null) &&
		openssl x509 -req -in "$pki/$name.csr" -CA "$pki/dbca.crt" -CAkey "$pki/dbca.key" \
			-CAcreateserial -days 30 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null ||
		fail "cannot issue $name ($subj) in $pki"
}

# npg_conf NODE: pgdata/dbpki.conf (included from postgresql.conf), pg_ident
# and pg_hba as pg_lib.sh writes them, but pg_hba names the admin side and
# each node by its own address (pg_lib.sh can only name 127.0.0.1).
npg_conf() {
	local n=$1 h d a
	h=$(npg_home "$n")
	d=$(nfs "$n")$h/pgdata
	{
		echo "# written by dbpki; included from postgresql.conf"
		echo "listen_addresses = '$(naddr "$n")'"
		echo "port = 5432"
		echo "unix_socket_directories = '$h/sock'"
		echo "ssl = on"
		echo "ssl_cert_file = '$h/certs/server.crt'"
		echo "ssl_key_file = '$h/certs/server.key'"
		echo "ssl_ca_file = '$h/certs/dbca.crt'"
		echo "ssl_min_protocol_version = 'TLSv1.2'"
		echo "wal_level = replica"
		echo "max_wal_senders = 10"
		echo "hot_standby = on"
		echo "fsync = off"
		echo "shared_buffers = 16MB"
	} >"$d/dbpki.conf"
	grep -qx "include = 'dbpki.conf'" "$d/postgresql.conf" ||
		echo "include = 'dbpki.conf'" >>"$d/postgresql.conf"
	echo "dbpki $(npg_login "$n") postgres" >"$d/pg_ident.conf"
	{
		echo "# written by dbpki"
		echo "local   all         postgres  peer map=dbpki"
		echo "local   replication postgres  peer map=dbpki"
		for a in $(npg_admin_addr) $(sed -n 's/^ADDR4=//p' "$LAB"/nodes/*/ctl/node.conf); do
			echo "hostssl all         postgres  $a/32  cert clientcert=verify-full"
			echo "hostssl replication postgres  $a/32  cert clientcert=verify-full"
		done
	} >"$d/pg_hba.conf"
	chown --reference="$d" "$d/dbpki.conf" "$d/pg_ident.conf" "$d/pg_hba.conf"
}

npg_start_primary() { # NODE: initdb, npg_conf, start
	npg "$1" "$NPG_BIN/initdb" -D "$(npg_home "$1")/pgdata" -U postgres --auth=reject -E UTF8 \
		--locale=C --no-sync >/dev/null || fail "$1: initdb failed"
	npg_conf "$1"
	npg_ctl "$1" start || fail "$1: PostgreSQL did not start; see $(nfs "$1")$(npg_home "$1")/hand/postgres.log"
}

# npg_start_replica NODE PRIMARY: clone PRIMARY (by name, through the
# node's /etc/hosts) with pg_basebackup over verify-full with the dbclient
# certificate, configure, start as a streaming standby.
npg_start_replica() {
	local n=$1 p=$2 h ci
	h=$(npg_home "$n")
	ci="host=$p.lab.test port=5432 user=postgres application_name=$n sslmode=verify-full sslrootcert=$h/certs/dbca.crt sslcert=$h/certs/client.crt sslkey=$h/certs/client.key gssencmode=disable connect_timeout=10"
	npg "$n" "$NPG_BIN/pg_basebackup" -D "$h/pgdata" -d "$ci" -X stream -c fast -w --no-sync \
		>"$LAB/basebackup-$n.log" 2>&1 || { cat "$LAB/basebackup-$n.log" >&2; fail "pg_basebackup into $n failed"; }
	npg_conf "$n"
	echo "primary_conninfo = '$ci'" >>"$(nfs "$n")$h/pgdata/dbpki.conf"
	npg "$n" touch "$h/pgdata/standby.signal"
	npg_ctl "$n" start || fail "$n: PostgreSQL did not start; see $(nfs "$n")$h/hand/postgres.log"
}
