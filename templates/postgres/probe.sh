# probe (rotate, before any change): what this database node really is.
# Read-only.  Trusts no certificate (they are what is broken): it reads the
# data directory with pg_controldata and, when PostgreSQL runs and admits
# this login user over its own unix socket, asks the server itself.  Prints
# one line "DBPKI-PROBE key=value ..." of single words (spaces as _).
data=no running=no sql=no recovery=- timeline=- state=none sysid=- signal=no receiver=- conf=-
word() { printf '%s' "$1" | tr -c 'A-Za-z0-9_\n-' '_' | head -c 47; }
# Never a password prompt: psql would read it from this script's stdin.
ask() { local_psql -w -c "$1" </dev/null 2>/dev/null; }
if [ -s "$PGDATA/PG_VERSION" ]; then
	data=yes
	ctl=$(LC_ALL=C LANGUAGE= pg_controldata "$PGDATA" 2>&1) ||
		die "pg_controldata $PGDATA failed: $(printf '%s' "$ctl" | tail -n 2)"
	field() { printf '%s\n' "$ctl" | sed -n "s/^$1: *//p" | head -n 1; }
	state=$(word "$(field 'Database cluster state')")
	sysid=$(word "$(field 'Database system identifier')")
	timeline=$(word "$(field "Latest checkpoint's TimeLineID")")
	# Would the files load if the server restarted now?  (rotate restarts
	# the primary: a typo there must stop it before anything changes.)
	if cerr=$(postgres -D "$PG_CONF_DIR" -C port 2>&1 >/dev/null); then
		conf=ok
	else
		conf=bad
		echo "DBPKI-PROBE-CONF $(printf '%s' "$cerr" | tail -n 3 | tr '\n' ' ')"
	fi
	[ ! -f "$PGDATA/recovery.signal" ] || signal=recovery
	[ ! -f "$PGDATA/standby.signal" ] || signal=standby
	if pg_running; then
		running=yes
		# The server's own answer; a pg_hba.conf of the user's own may
		# not let us in, and pg_controldata then has to do.
		if r=$(ask 'SELECT pg_is_in_recovery()') &&
			{ [ "$r" = t ] || [ "$r" = f ]; }; then
			sql=yes recovery=$r
			if [ "$r" = f ]; then
				# After a promotion the checkpoint lags behind.
				tl=$(ask "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int") &&
					timeline=$(word "$tl")
			else
				rs=$(ask "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')") &&
					receiver=$(word "$rs")
			fi
		elif pid=$(head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null) &&
			procs=$(ps -o args= --ppid "$pid" 2>/dev/null); then
			# No SQL: a streaming walreceiver says so in its title.
			case $procs in
			*'walreceiver streaming'*) receiver=streaming ;;
			*) receiver=none ;;
			esac
		fi
	fi
elif pg_running; then
	running=yes
fi
say "layout=$LAYOUT${PGV:+ cluster $PGV/$PGC} data=$data running=$running state=$state"
echo "DBPKI-PROBE data=$data running=$running sql=$sql recovery=$recovery timeline=${timeline:--} state=${state:-unknown} sysid=${sysid:--} signal=$signal receiver=${receiver:--} conf=$conf layout=$LAYOUT"
echo "$SENTINEL"
