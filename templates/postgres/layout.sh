# layout (dbpki status, database nodes): how this node's PostgreSQL is
# installed, as common.sh's detect_layout found it.  Read-only.  One line
# "DBPKI-LAYOUT <layout> <version/cluster or -> <start.conf or ->".
sc=
if [ "$LAYOUT" = debian ]; then
	sc=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$PG_CONF_DIR/start.conf" 2>/dev/null | tr -d '[:space:]' | tr -c 'a-z\n' '_' | head -c 16)
fi
vc=${PGV:+$PGV/$PGC}
echo "DBPKI-LAYOUT $LAYOUT ${vc:--} ${sc:--}"
echo "$SENTINEL"
