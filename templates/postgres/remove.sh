# remove: leave any earlier cluster membership behind; nothing is deleted.
case $ROLE in
replica)
	if [ "$LAYOUT" = debian ] && pg_running; then
		# join keeps a running standby of this primary as it is (a
		# second bootstrap changes nothing) and stops anything else
		say "left running: join keeps it if it is a standby of $PRIMARY_HOST, otherwise stops it"
	elif pg_running; then
		pg_stop
		say "stopped PostgreSQL: its streaming configuration is no longer active (data kept)"
	else
		say "PostgreSQL is not running here: nothing to stop"
	fi
	;;
primary)
	# The primary keeps serving until initialize (rotate: restart)
	# restarts it with the new settings, so its downtime is one restart.
	if [ -f "$PGDATA/standby.signal" ]; then
		die "$PGDATA is a standby (standby.signal exists) but the inventory says $NODE is the primary; refusing (see: dbpki rotate, which finds the real primary)"
	fi
	say "primary: left running; initialize (rotate: restart) applies the new settings with at most one restart"
	;;
client)
	if [ -f "$CERT_DIR/pg_service.conf" ]; then
		say "client: the old service file stays until connect replaces it"
	fi
	;;
esac
echo "$SENTINEL"
