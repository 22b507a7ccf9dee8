#!/usr/bin/env bash
# Issue 8: dbpki ca rollover on a lab cluster (primary, replica, client),
# under load.
#  - pgbench (verify-full with the client node's cert_dir/current files, a
#    new connection per transaction) runs over all three stages: zero failed
#    transactions, no connection error, no aborted client;
#  - `status` between the stages says which stage is done;
#  - stage 1: every node's dbca.crt holds old + new, nodes still serve
#    their old leaves; `--stage 3` now refuses (exit 2) and changes nothing;
#  - stage 2: every node serves a leaf of the new CA; run twice, harmless;
#  - stage 3: the nodes trust only the new CA; openssl s_client verifies
#    every served certificate with the new CA and not with the old; the
#    replica streams; the old CA's files are archived in the store.
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.73
lab_dir
PGB_PID=
on_exit() {
	[ -z "$PGB_PID" ] || kill "$PGB_PID" 2>/dev/null || true
}
LABUSER=$("$DBPKI_ROOT/tests/lab/lab.sh" user)

lab_up $NET primary,replica,client
ST=$LAB/state
"$DBPKI" bootstrap -c "$INI" >"$LAB/bootstrap.txt" 2>&1 || { tail -n 30 "$LAB/bootstrap.txt"; fail "bootstrap failed"; }
pass "bootstrap"

CUR=$LAB/nodes/node3/certs/current # the client node's files, switched with each release
cp "$ST/ca/dbca.crt" "$LAB/old_ca.pem"
serial_of() { openssl x509 -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'; }
OLD_SERIAL=$(serial_of <"$LAB/old_ca.pem")
ncerts() { grep -c 'BEGIN CERTIFICATE' "$1"; }
as_lab() { runuser -u "$LABUSER" -- env "$@"; }
PGENV=(PGHOST=node1.lab.test PGHOSTADDR=$NET.11 PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
	PGSSLMODE=verify-full PGSSLROOTCERT=$CUR/dbca.crt PGSSLCERT=$CUR/client.crt PGSSLKEY=$CUR/client.key
	PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10)
q() { # node-number sql
	as_lab "${PGENV[@]}" PGHOST=node$1.lab.test PGHOSTADDR=$NET.1$1 psql -X -At -c "$2"
}
# The certificate a node serves, PEM, read with the openssl CLI.
served_pem() { # node-number
	openssl s_client -starttls postgres -connect "$NET.1$1:5432" </dev/null 2>/dev/null |
		openssl x509 || fail "cannot read node$1's certificate"
}
# Does node's served certificate verify with CA file for its name?
verifies() { # node-number cafile
	openssl s_client -starttls postgres -connect "$NET.1$1:5432" -CAfile "$2" \
		-verify_return_error -verify_hostname "node$1.lab.test" </dev/null >/dev/null 2>&1
}
rollover() { # stage; output in $LAB/stageN.{out,err}
	"$DBPKI" ca rollover -c "$INI" --stage "$1" >"$LAB/stage$1.out" 2>"$LAB/stage$1.err"
}
status_says() { # N
	"$DBPKI" status -c "$INI" >"$LAB/status.txt" 2>&1 || true
	grep -Eq "^CA rollover: stage $1 of 3 done \(new CA serial [0-9a-f]{40}, started 20[0-9-]{8}T[0-9:]{8}Z\)" "$LAB/status.txt" ||
		{ cat "$LAB/status.txt"; fail "status does not show stage $1 of 3 done"; }
}
# Everything a refused stage must not change: the store and the nodes' releases.
snapshot() {
	find "$ST" ! -name lock ! -path "$ST/verify*" -printf '%p %y %m %s %T@\n' | sort
	find "$ST" -type f ! -name lock ! -path "$ST/verify*" -exec sha256sum {} + | sort
	for n in 1 2 3; do readlink "$LAB/nodes/node$n/certs/current"; done
}

old1=$(served_pem 1 | serial_of)
old2=$(served_pem 2 | serial_of)

# A refusal before anything: stage 2 needs stage 1.
snapshot >"$LAB/s0.txt"
if rollover 2; then fail "--stage 2 before stage 1 succeeded"; else rc=$?; fi
[ "$rc" = 2 ] || { cat "$LAB/stage2.err"; fail "--stage 2 before stage 1: exit $rc, expected 2"; }
snapshot >"$LAB/s0b.txt"
diff "$LAB/s0.txt" "$LAB/s0b.txt" || fail "a refused --stage 2 changed something"
pass "--stage 2 before stage 1: exit 2, nothing changed"

# ---- load over the whole rollover ------------------------------------------
as_lab "${PGENV[@]}" pgbench -i -s 1 -q >"$LAB/pgbench-init.txt" 2>&1 || { cat "$LAB/pgbench-init.txt"; fail "pgbench -i"; }
as_lab "${PGENV[@]}" pgbench -C -c 2 -j 2 -T 40 -n >"$LAB/pgbench.txt" 2>&1 &
PGB_PID=$!
sleep 2
kill -0 "$PGB_PID" 2>/dev/null || { cat "$LAB/pgbench.txt"; fail "pgbench did not start"; }
t0=$SECONDS

# ---- stage 1 -----------------------------------------------------------------
rollover 1 || { cat "$LAB/stage1.err"; fail "stage 1 exited $?"; }
grep -q '^CA rollover: stage 1 of 3 done' "$LAB/stage1.out" || fail "stage 1: no result line"
[ -f "$ST/ca/next/dbca.crt" ] && [ -f "$ST/ca/next/dbca.key" ] || fail "stage 1: no new CA in ca/next"
[ "$(stat -c %a "$ST/ca/next/dbca.key")" = 600 ] || fail "the new CA key is not 0600"
NEW_SERIAL=$(serial_of <"$ST/ca/next/dbca.crt")
[ "$NEW_SERIAL" != "$OLD_SERIAL" ] || fail "the new CA has the old serial"
for n in 1 2 3; do
	f=$LAB/nodes/node$n/certs/current/dbca.crt
	[ "$(ncerts "$f")" = 2 ] || fail "stage 1: node$n's dbca.crt holds $(ncerts "$f") certificates, not 2"
done
[ "$(served_pem 1 | serial_of)" = "$old1" ] && [ "$(served_pem 2 | serial_of)" = "$old2" ] ||
	fail "stage 1 changed a served leaf"
status_says 1
pass "stage 1: every node trusts old + new, still serves its old leaf; status says stage 1"

snapshot >"$LAB/s1.txt"
if rollover 3; then fail "--stage 3 before stage 2 succeeded"; else rc=$?; fi
[ "$rc" = 2 ] || { cat "$LAB/stage3.err"; fail "--stage 3 before stage 2: exit $rc, expected 2"; }
grep -q 'stage 2 is not done.*--stage 2' "$LAB/stage3.err" || { cat "$LAB/stage3.err"; fail "the refusal does not say to run stage 2"; }
snapshot >"$LAB/s1b.txt"
diff "$LAB/s1.txt" "$LAB/s1b.txt" || fail "a refused --stage 3 changed something"
pass "--stage 3 before stage 2: exit 2 naming stage 2, nothing changed"

# ---- stage 2 (twice) -------------------------------------------------------
rollover 2 || { cat "$LAB/stage2.err"; fail "stage 2 exited $?"; }
grep -q '^CA rollover: stage 2 of 3 done' "$LAB/stage2.out" || fail "stage 2: no result line"
for n in 1 2; do
	verifies $n "$ST/ca/next/dbca.crt" || fail "stage 2: node$n's certificate does not verify with the new CA alone"
done
new1=$(served_pem 1 | serial_of)
new2=$(served_pem 2 | serial_of)
[ "$new1" != "$old1" ] && [ "$new2" != "$old2" ] || fail "stage 2: a node still serves its old leaf"
status_says 2
rollover 2 || { cat "$LAB/stage2.err"; fail "stage 2 again exited $?"; }
[ "$(served_pem 1 | serial_of)" = "$new1" ] && [ "$(served_pem 2 | serial_of)" = "$new2" ] ||
	fail "stage 2 again reissued the leaves"
status_says 2
pass "stage 2: every node serves a leaf of the new CA; running it again is harmless"

# ---- stage 3 -----------------------------------------------------------------
rollover 3 || { cat "$LAB/stage3.err"; fail "stage 3 exited $?"; }
grep -q '^CA rollover: stage 3 of 3 done' "$LAB/stage3.out" || fail "stage 3: no result line"
t1=$SECONDS
kill -0 "$PGB_PID" 2>/dev/null || fail "pgbench ended before the rollover did; the load did not cover it"
status_says 3

set +e
wait "$PGB_PID"
pgb_rc=$?
set -e
PGB_PID=
cat "$LAB/pgbench.txt"
[ "$pgb_rc" = 0 ] || fail "pgbench exited $pgb_rc"
! grep -Eiq 'error|abort|fatal|could not|failed:' "$LAB/pgbench.txt" || fail "pgbench reported errors"
grep -q '^number of failed transactions: 0 (' "$LAB/pgbench.txt" || fail "pgbench reports failed transactions"
done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$LAB/pgbench.txt")
[ -n "$done_tx" ] && [ "$done_tx" -gt 0 ] || fail "pgbench processed no transaction"
pass "pgbench -C over the whole rollover ($((t1 - t0)) s of it): $done_tx transactions, 0 failed, no connection error"

# ---- the result, seen from outside -----------------------------------------
[ "$(serial_of <"$ST/ca/dbca.crt")" = "$NEW_SERIAL" ] || fail "the store's dbca is not the new CA"
cp "$ST/ca/dbca.crt" "$LAB/new_ca.pem"
for n in 1 2; do
	verifies $n "$LAB/new_ca.pem" || fail "node$n's certificate does not verify with the new CA"
	! verifies $n "$LAB/old_ca.pem" || fail "node$n's certificate still verifies with the old CA"
done
for n in 1 2 3; do
	f=$LAB/nodes/node$n/certs/current/dbca.crt
	[ "$(ncerts "$f")" = 1 ] || fail "node$n's dbca.crt holds $(ncerts "$f") certificates"
	cmp -s "$f" "$LAB/new_ca.pem" || fail "node$n's dbca.crt is not the new CA"
done
pass "openssl s_client: every node's certificate verifies with the new CA, not with the old; every dbca.crt is the new CA alone"

streaming=$(q 1 "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND r.application_name = 'node2'")
[ "$streaming" = 1 ] || fail "node2 is not streaming over SSL ($streaming)"
q 1 "CREATE TABLE after_rollover(id int); INSERT INTO after_rollover SELECT generate_series(1,50)" >/dev/null
for _ in $(seq 1 50); do
	[ "$(q 2 'SELECT count(*) FROM after_rollover' 2>/dev/null || true)" = 50 ] && break
	sleep 0.2
done
[ "$(q 2 'SELECT count(*) FROM after_rollover')" = 50 ] || fail "rows written after the rollover did not reach node2"
pass "the replica streams over SSL and receives new rows"

arch=$(grep -l -- "$(sed -n 2p "$LAB/old_ca.pem")" "$ST"/ca/archive/*/dbca.crt | head -n 1)
[ -n "$arch" ] && cmp -s "$arch" "$LAB/old_ca.pem" || fail "the old CA certificate is not in ca/archive"
[ -f "$(dirname "$arch")/dbca.key" ] || fail "the old CA key is not archived beside it"
[ ! -e "$ST/ca/next" ] || fail "ca/next is still there"
awk -F'\t' -v s="$OLD_SERIAL" '$1==s && $2=="superseded" && $3=="ca"' "$ST/index.tsv" | grep -q . ||
	fail "the index does not call the old CA superseded"
awk -F'\t' -v s="$NEW_SERIAL" '$1==s && $2=="active" && $3=="ca"' "$ST/index.tsv" | grep -q . ||
	fail "the index does not call the new CA active"
pass "the old CA is archived (certificate and key), the index says so, the new CA is the store's"

# After the rollover, renew has nothing to do: everything is the new CA's.
out=$("$DBPKI" renew -c "$INI" 2>&1) || { echo "$out"; fail "renew after the rollover exited $?"; }
echo "$out" | grep -q '^nothing to renew' || fail "renew after the rollover: $out"
if rollover 3; then fail "--stage 3 after completion succeeded"; else rc=$?; fi
[ "$rc" = 2 ] || fail "--stage 3 after completion: exit $rc, expected 2"
pass "afterwards renew finds nothing due; another --stage 3 refuses (exit 2)"
