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

npg_install() { # NODE SUBDIR MODE FILE...: copies in HOME/SUBDIR, owned by the login user
	local n=$1 sub=$2 mode=$3 d uid
	shift 3
	d=$(nfs "$n")$(npg_home "$n")
	uid=$(stat -c %u "$d")
	install -d -m 700 -o "$uid" -g "$uid" "$d/$sub"
	install -m "$mode" -o "$uid" -g "$uid" "$@" "$d/$sub/"
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

# npg_hand_ca DIR START END SAN: an openssl ca in DIR whose certificates
# run from START to END (YYYYmmddHHMMSSZ; both in the past for an expired
# PKI) and DIR/ca.crt, its self-signed CA; SAN is the v3_server extension's
# subjectAltName.  Made with `openssl ca` because `openssl req/x509` cannot
# back-date a certificate.
npg_hand_ca() {
	local h=$1
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
	npg_hand_cert "$h" ca "/CN=hand-made dbca" v3_ca -selfsign -keyfile "$h/ca.key"
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
