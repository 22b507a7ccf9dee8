/* engine_verify: prove the result the way a client sees it — libpq with
 * verify-full and the dbclient certificate, never dbpki's own word. */
#include "dbpki/engine_int.h"
#include "dbpki/log.h"
#include "dbpki/pg.h"
#include "dbpki/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define VERIFY_STREAM_TIMEOUT 60
#define VERIFY_SERIAL_TRIES   40 /* x 250 ms */

/* libpq reads certificates from files: give it the release's client files
 * in state_dir/verify (0700 dir, 0600 key), written atomically. */
int
engine_verify_files(const struct dbpki_cluster *c,
    const struct pki_release *rel, struct verify_files *vf, struct dbpki_err *e)
{
	static const char *const names[] = {
	    "dbca.crt", "client.crt", "client.key"};
	char dir[CFG_PATH];
	char *paths[] = {vf->ca, vf->cert, vf->key};
	const struct pki_file *f;
	int i, rc;

	if (util_fmt(dir, sizeof(dir), "%s/verify", c->state_dir) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((rc = util_mkdirs(dir, 0700, e)) != 0)
		return rc;
	for (i = 0; i < 3; i++) {
		if ((f = pki_release_file(rel, names[i])) == NULL)
			return err_set(
			    e, DBPKI_E_INTERNAL, "release has no %s", names[i]);
		if (util_fmt(paths[i], CFG_PATH, "%s/%s", dir, names[i]) != 0)
			return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		if ((rc = util_write_atomic(
			 paths[i], f->data, f->len, 0600, e)) != 0)
			return rc;
	}
	return 0;
}

void
engine_pg_target(const struct dbpki_cluster *c, const struct cfg_node *n,
    const struct verify_files *vf, struct pg_target *t)
{
	memset(t, 0, sizeof(*t));
	t->host = n->host;
	t->hostaddr = n->address;
	t->port = n->pg.port;
	t->dbname = "postgres";
	t->user = c->client_common_name;
	t->sslrootcert = vf->ca;
	t->sslcert = vf->cert;
	t->sslkey = vf->key;
	t->connect_timeout_s = (int)n->ssh.connect_timeout;
	t->application_name = "dbpki-verify";
}

/* Compare serials written with or without leading zero octets. */
static int
same_serial(const char *a, const char *b)
{
	while (*a == '0' && a[1] != '\0')
		a++;
	while (*b == '0' && b[1] != '\0')
		b++;
	return strcasecmp(a, b) == 0;
}

static int
verify_node(struct engine_run *r, const struct engine_node *en,
    const struct verify_files *vf, struct dbpki_err *e)
{
	const struct pki_file *srv = pki_release_file(&en->rel, "server.crt");
	int want_recovery = en->n->role == ROLE_REPLICA;
	struct pg_target t;
	struct pg_probe p;
	int rc, tries;

	engine_pg_target(r->c, en->n, vf, &t);
	/* pg_reload_conf() only signals the postmaster: give a reload a few
	 * seconds to take effect before calling the served serial wrong. */
	for (tries = 0;; tries++) {
		if ((rc = pg_probe_node(&t, &p, e)) != 0)
			return err_wrap(e, "node %s", en->n->name);
		if (srv == NULL || same_serial(p.serial_hex, srv->serial) ||
		    tries >= VERIFY_SERIAL_TRIES)
			break;
		usleep(250 * 1000);
	}
	if (p.in_recovery != want_recovery)
		return err_set(e, DBPKI_E_VERIFY,
		    "node %s answers "
		    "pg_is_in_recovery() = %s, but the inventory says it is a "
		    "%s",
		    en->n->name, p.in_recovery ? "true" : "false",
		    cfg_role_name(en->n->role));
	if (srv != NULL && !same_serial(p.serial_hex, srv->serial))
		return err_set(e, DBPKI_E_VERIFY,
		    "node %s serves certificate serial %s, not the one "
		    "dbpki installed (%s): PostgreSQL did not load the new "
		    "files (a reload keeps the old ones when it refuses the "
		    "key, e.g. one readable by group; see the node's "
		    "PostgreSQL log), or ssl_cert_file points elsewhere",
		    en->n->name, p.serial_hex, srv->serial);
	log_info("  %-12s verify     ok      %s %s, serial %.16s..., %s",
	    en->n->name, cfg_role_name(en->n->role), p.protocol, p.serial_hex,
	    want_recovery ? "in recovery" : "read-write");
	engine_journal_event(&r->journal, "verify", "node", en->n->name,
	    "serial", p.serial_hex, "result", "ok", NULL);
	return 0;
}

static int
wait_replicas(struct engine_run *r, const struct engine_node *primary,
    const struct verify_files *vf, struct dbpki_err *e)
{
	const char *names[CFG_MAX_NODES];
	struct pg_target t;
	int i, n = 0, rc;

	for (i = 0; i < r->n; i++)
		if (r->nodes[i].n->role == ROLE_REPLICA && !r->nodes[i].skipped)
			names[n++] = r->nodes[i].n->name;
	if (n == 0)
		return 0;
	engine_pg_target(r->c, primary->n, vf, &t);
	if ((rc = pg_wait_streaming(&t, names, n, VERIFY_STREAM_TIMEOUT, e)) !=
	    0)
		return err_wrap(e, "replication from %s", primary->n->name);
	log_info("  %-12s replication ok      %d replica(s) streaming over SSL",
	    primary->n->name, n);
	return 0;
}

int
engine_verify(
    struct engine_run *r, const struct pb_step *s, struct dbpki_err *e)
{
	const struct engine_node *primary = NULL;
	struct verify_files vf;
	int i, rc;

	for (i = 0; i < r->n; i++)
		if (r->nodes[i].n->role == ROLE_PRIMARY)
			primary = &r->nodes[i];
	if ((rc = engine_verify_files(r->c, &primary->rel, &vf, e)) != 0)
		return rc;
	if ((rc = verify_node(r, primary, &vf, e)) != 0)
		goto fail;
	if (s->verify != PB_VERIFY_CLUSTER)
		return 0;
	for (i = 0; i < r->n; i++) {
		const struct engine_node *en = &r->nodes[i];

		if (en->n->role != ROLE_REPLICA || en->skipped)
			continue;
		if ((rc = verify_node(r, en, &vf, e)) != 0)
			goto fail;
	}
	if ((rc = wait_replicas(r, primary, &vf, e)) != 0)
		goto fail;
	return 0;
fail:
	e->code = DBPKI_E_VERIFY;
	engine_journal_event(
	    &r->journal, "verify", "result", "failed", "error", e->msg, NULL);
	return DBPKI_E_VERIFY;
}
