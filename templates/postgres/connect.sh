# connect (client node): a pg_service.conf entry in cert_dir (never in the
# login user's home: several nodes may share one user), then a check
# connection through it.
SERVICE_FILE="$CERT_DIR/pg_service.conf"
printf '%s\n' "$MARK: service $CLUSTER for node $NODE" \
	"[$CLUSTER]" \
	"host=$PRIMARY_HOST" \
	"hostaddr=$PRIMARY_ADDRESS" \
	"port=$PRIMARY_PORT" \
	"dbname=postgres" \
	"user=$DB_USER" \
	"sslmode=verify-full" \
	"sslrootcert=$CERT_DIR/current/dbca.crt" \
	"sslcert=$CERT_DIR/current/client.crt" \
	"sslkey=$CERT_DIR/current/client.key" \
	"gssencmode=disable" | atomic_write "$SERVICE_FILE" 644
got=$(PGSERVICEFILE="$SERVICE_FILE" psql -X -At -d "service=$CLUSTER" -c 'SELECT pg_is_in_recovery()') ||
	die "the check connection through $SERVICE_FILE failed"
[ "$got" = f ] || die "service $CLUSTER does not reach the primary"
say "service $CLUSTER in $SERVICE_FILE: verify-full connection to $PRIMARY_HOST works"
echo "$SENTINEL"
