#!/usr/bin/env bash
# Issue 4: 1 primary + 6 replicas bootstrap with the inventory's default
# concurrency.  join clones every replica at once, and each pg_basebackup
# -X stream holds two WAL senders and a slot on the primary: with
# PostgreSQL's default max_wal_senders of 10 the sixth clone is refused
# ("number of requested standby connections exceeds max_wal_senders").
# dbpki sizes the limits from the inventory; checked here with psql alone:
# all six replicas stream over TLS as CN=postgres, and every node runs the
# same max_wal_senders (a hot standby needs at least the primary's).
. "${DBPKI_ROOT:?}/tests/integration/lib.sh"
NET=127.0.80
lab_dir
lab_up $NET primary,replica,replica,replica,replica,replica,replica,client
par=$(sed -n 's/^parallel *= *//p' "$INI")
[ -z "$par" ] || [ "$par" -ge 6 ] || fail "the lab's inventory caps parallel at $par: the replicas would not clone at once"

out=$("$DBPKI" bootstrap -c "$INI" 2>&1) || { echo "$out" | tail -n 30; fail "bootstrap of 1 primary + 6 replicas exited non-zero"; }
pass "bootstrap of 1 primary + 6 replicas exited 0"

C=$LAB/nodes/node8/certs/current
q() { # node-number sql
	psql -X -At -d "host=node$1.lab.test hostaddr=$NET.1$1 port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$C/dbca.crt sslcert=$C/client.crt sslkey=$C/client.key gssencmode=disable connect_timeout=5" -c "$2"
}
want="'node2','node3','node4','node5','node6','node7'"
for _ in $(seq 1 50); do
	n=$(q 1 "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.state = 'streaming' AND s.ssl AND s.client_dn = '/CN=postgres' AND r.application_name IN ($want)")
	[ "$n" = 6 ] && break
	sleep 0.2
done
[ "$n" = 6 ] || fail "$n of 6 replicas stream over SSL as CN=postgres: $(q 1 'SELECT application_name, state FROM pg_stat_replication')"
pass "all six replicas stream from the primary over TLS with the dbclient certificate"

senders=$(q 1 'SHOW max_wal_senders')
[ "$senders" -ge 12 ] || fail "the primary allows $senders WAL senders: too few for six clones at once"
for k in 2 3 4 5 6 7; do
	[ "$(q $k 'SELECT pg_is_in_recovery()')" = t ] || fail "node$k is not in recovery"
	[ "$(q $k 'SHOW max_wal_senders')" = "$senders" ] || fail "node$k's max_wal_senders differs from the primary's $senders"
done
pass "max_wal_senders $senders on the primary and on every replica"
