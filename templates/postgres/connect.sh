# connect (client node): a pg_service.conf entry in cert_dir (never in the
# login user's home: several nodes may share one user) that names the
# current release's files, then a check connection through it.
SERVICE_FILE="$CERT_DIR/pg_service.conf"
write_service
got=$(PGSERVICEFILE="$SERVICE_FILE" psql -X -At -d "service=$CLUSTER" -c 'SELECT pg_is_in_recovery()') ||
	die "the check connection through $SERVICE_FILE failed"
[ "$got" = f ] || die "service $CLUSTER does not reach the primary"
say "service $CLUSTER in $SERVICE_FILE: verify-full connection to $PRIMARY_HOST works"
echo "$SENTINEL"
