#!/usr/bin/env bash
# Time to issue the certificates of a 100-node inventory (per-node mode:
# 100 server certificates + 1 client certificate), EC P-256 and RSA-3072,
# with `dbpki issue`, with the openssl CLI scripted the usual way (genpkey +
# req + x509 per certificate) and with cfssl (`cfssl gencert`), side by side
# in the same run.  Prints a table; see docs/benchmarks.md.
#   N=100 (nodes)   DBPKI=path/to/dbpki   SKIP_RSA=1 (EC only)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
DBPKI=${DBPKI:-$root/build/dbpki}
N=${N:-100}
[ -x "$DBPKI" ] || { echo "bench: build dbpki first (make)" >&2; exit 1; }

if ! command -v cfssl >/dev/null; then
	echo "bench: installing golang-cfssl" >&2
	DBPKI_EXTRA_PKGS=golang-cfssl "$root/tests/lab/deps.sh"
fi
command -v openssl >/dev/null || { echo "bench: openssl missing" >&2; exit 1; }

work=$(mktemp -d /tmp/dbpki-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT

now_ms() { date +%s%3N; }

inventory() { # alg file state
	{
		printf '[cluster]\nname = bench\nplatform = postgres\nstate_dir = %s\n' "$3"
		printf 'renew_before = 30d\n[ca]\nkey = ec:P-256\nvalidity = 3650d\n'
		printf '[server]\nkey = %s\nvalidity = 397d\nmode = per-node\n' "$1"
		printf '[client]\nkey = %s\nvalidity = 397d\n' "$1"
		for i in $(seq 1 "$N"); do
			role=replica
			[ "$i" -eq 1 ] && role=primary
			printf '[node db%d]\nhost = db%d.example.com\naddress = 10.0.%d.%d\nrole = %s\n' \
				"$i" "$i" $((i / 250)) $((i % 250 + 1)) "$role"
		done
	} >"$2"
	chmod 600 "$2"
}

bench_dbpki() { # alg -> ms
	local d=$work/dbpki-${1//:/-}
	mkdir -p "$d"
	inventory "$1" "$d/inv.ini" "$d/state"
	"$DBPKI" ca init -c "$d/inv.ini" 2>/dev/null
	local t0; t0=$(now_ms)
	"$DBPKI" issue -c "$d/inv.ini" 2>/dev/null
	echo $(($(now_ms) - t0))
}

bench_openssl() { # alg -> ms
	local d=$work/openssl-${1//:/-} kopt
	mkdir -p "$d"
	case $1 in
	ec:P-256) kopt=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256) ;;
	rsa:3072) kopt=(-algorithm RSA -pkeyopt rsa_keygen_bits:3072) ;;
	esac
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$d/ca.key" -out "$d/ca.crt" -days 3650 -subj "/CN=bench dbca" 2>/dev/null
	local t0; t0=$(now_ms)
	for i in $(seq 0 "$N"); do
		local cn=db$i.example.com ip=10.0.$((i / 250)).$((i % 250 + 1))
		printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,IP:%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' \
			"$cn" "$ip" >"$d/$i.ext"
		openssl genpkey "${kopt[@]}" -out "$d/$i.key" 2>/dev/null
		openssl req -new -key "$d/$i.key" -subj "/CN=$cn" -out "$d/$i.csr"
		openssl x509 -req -in "$d/$i.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
			-CAcreateserial -days 397 -extfile "$d/$i.ext" -out "$d/$i.crt" 2>/dev/null
	done
	echo $(($(now_ms) - t0))
}

bench_cfssl() { # alg -> ms
	local d=$work/cfssl-${1//:/-} algo size
	mkdir -p "$d"
	case $1 in
	ec:P-256) algo=ecdsa size=256 ;;
	rsa:3072) algo=rsa size=3072 ;;
	esac
	cat >"$d/ca.json" <<-EOF
	{"CN": "bench dbca", "key": {"algo": "ecdsa", "size": 256}}
	EOF
	cat >"$d/config.json" <<-EOF
	{"signing": {"profiles": {"server": {"expiry": "9528h",
	  "usages": ["digital signature", "server auth"]}}}}
	EOF
	(cd "$d" && cfssl gencert -initca ca.json 2>/dev/null | cfssljson -bare ca)
	local t0; t0=$(now_ms)
	for i in $(seq 0 "$N"); do
		local cn=db$i.example.com ip=10.0.$((i / 250)).$((i % 250 + 1))
		printf '{"CN": "%s", "hosts": ["%s", "%s"], "key": {"algo": "%s", "size": %d}}\n' \
			"$cn" "$cn" "$ip" "$algo" "$size" >"$d/$i.json"
		(cd "$d" && cfssl gencert -ca ca.pem -ca-key ca-key.pem -config config.json \
			-profile server "$i.json" 2>/dev/null | cfssljson -bare "$i")
	done
	echo $(($(now_ms) - t0))
}

certs=$((N + 1))
row() { # tool alg ms
	awk -v t="$1" -v a="$2" -v ms="$3" -v n="$certs" \
		'BEGIN { printf "%-8s %-9s %6d certs %9.2f s %9.1f certs/s\n", t, a, n, ms / 1000, n / (ms / 1000) }'
}

algs=(ec:P-256)
[ "${SKIP_RSA:-0}" = 1 ] || algs+=(rsa:3072)
echo "issuing $certs certificates ($N per-node servers + 1 client) on $(nproc) cores"
echo "openssl $(openssl version | cut -d' ' -f2), $(cfssl version | head -1)"
printf '%-8s %-9s %12s %11s %15s\n' tool key count time rate
for a in "${algs[@]}"; do
	d=$(bench_dbpki "$a")
	o=$(bench_openssl "$a")
	c=$(bench_cfssl "$a")
	row dbpki "$a" "$d"
	row openssl "$a" "$o"
	row cfssl "$a" "$c"
	awk -v d="$d" -v o="$o" -v c="$c" -v a="$a" \
		'BEGIN { printf "  %s: dbpki is %.1fx cfssl, %.1fx the openssl CLI\n", a, c / d, o / d }'
done
