/* engine_status: what each node is doing right now, seen from outside —
 * SSH reachability, and through libpq (verify-full) its role, the
 * certificate it serves and replication. */
#include "dbpki/engine_int.h"
#include "dbpki/log.h"
#include "dbpki/pg.h"
#include "dbpki/util.h"

#include <stdlib.h>
#include <string.h>

struct node_status {
	int ssh_ok;
	char ssh_err[256];
	int pg_ok;
	char pg_err[256];
	struct pg_probe probe;
	const struct pg_repl *repl; /* the primary's view of this replica */
	int problem;
	struct san_status san; /* dialled names, libpq (engine_san.c) */
	/* What templates/postgres/layout.sh found (empty: not asked). */
	char layout[16], pgcluster[CFG_NAME], start_conf[16];
};

struct status_job {
	const struct dbpki_cluster *c;
	struct verify_files vf;
	int have_files;
	struct node_status st[CFG_MAX_NODES];
};

/* One word of the node's DBPKI-LAYOUT line: letters, digits, '/', '.',
 * '_', '-' only, or refused. */
static int
layout_word(const char **p, char *dst, size_t dstsz)
{
	size_t len = strcspn(*p, " \n");

	if (len == 0 || len >= dstsz ||
	    strspn(*p, "abcdefghijklmnopqrstuvwxyz"
		       "0123456789/._-") < len)
		return -1;
	memcpy(dst, *p, len);
	dst[len] = '\0';
	*p += len;
	if (**p == ' ')
		(*p)++;
	return 0;
}

/* Ask a database node how its PostgreSQL is installed (layout.sh, after
 * common.sh's detect_layout: the one place that decides "auto"). */
static void
ask_layout(const struct dbpki_cluster *c, const struct cfg_node *n,
    struct ssh_conn *conn, struct node_status *s)
{
	struct engine_run *r = calloc(1, sizeof(*r));
	struct ssh_result res;
	struct dbpki_err e;
	char *script = NULL;
	const char *m;

	memset(&res, 0, sizeof(res));
	err_clear(&e);
	if (r == NULL)
		return;
	r->c = c;
	snprintf(r->release_id, sizeof(r->release_id), "status");
	snprintf(r->journal.id, sizeof(r->journal.id), "status");
	if (engine_render_script(r, n, "layout", &script, &e) == 0 &&
	    ssh_exec_script(conn, script, 0, &res, &e) == 0 &&
	    ssh_result_ok(&res, ENGINE_SENTINEL) &&
	    (m = strstr(res.out, "DBPKI-LAYOUT ")) != NULL) {
		m += strlen("DBPKI-LAYOUT ");
		if (layout_word(&m, s->layout, sizeof(s->layout)) != 0 ||
		    layout_word(&m, s->pgcluster, sizeof(s->pgcluster)) != 0 ||
		    layout_word(&m, s->start_conf, sizeof(s->start_conf)) != 0)
			s->layout[0] = '\0';
	}
	ssh_result_free(&res);
	free(script);
	free(r);
}

static void
probe_one(int i, void *arg)
{
	struct status_job *j = arg;
	const struct cfg_node *n = &j->c->nodes[i];
	struct node_status *s = &j->st[i];
	struct ssh_conn *conn = NULL;
	struct pg_target t;
	struct dbpki_err e;

	err_clear(&e);
	s->ssh_ok = ssh_connect(n, &conn, &e) == 0;
	if (!s->ssh_ok)
		snprintf(s->ssh_err, sizeof(s->ssh_err), "%.200s", e.msg);
	/* Before closing: a client node is asked for its libpq version. */
	engine_san_status(j->c, n, s->ssh_ok ? conn : NULL, &s->san);
	if (s->ssh_ok && cfg_is_database(n) &&
	    j->c->platform == PLATFORM_POSTGRES)
		ask_layout(j->c, n, conn, s);
	ssh_close(conn);
	if (!cfg_is_database(n) || !j->have_files)
		return;
	engine_pg_target(j->c, n, &j->vf, &t);
	err_clear(&e);
	s->pg_ok = pg_probe_node(&t, &s->probe, &e) == 0;
	if (!s->pg_ok)
		snprintf(s->pg_err, sizeof(s->pg_err), "%.200s", e.msg);
}

static void
judge(const struct dbpki_cluster *c, struct status_job *j,
    const struct pg_repl *rows, int nrows, int64_t renew_at)
{
	int i, k;

	for (i = 0; i < c->n_nodes; i++) {
		const struct cfg_node *n = &c->nodes[i];
		struct node_status *s = &j->st[i];

		s->problem = !s->ssh_ok;
		/* verify-full by that name or address fails for clients */
		if (s->san.gap.n_missing > 0)
			s->problem = 1;
		if (!cfg_is_database(n))
			continue;
		if (!s->pg_ok ||
		    s->probe.in_recovery != (n->role == ROLE_REPLICA) ||
		    s->probe.not_after < renew_at)
			s->problem = 1;
		if (n->role != ROLE_REPLICA)
			continue;
		for (k = 0; k < nrows; k++)
			if (strcmp(rows[k].application_name, n->name) == 0)
				s->repl = &rows[k];
		if (s->repl == NULL ||
		    strcmp(s->repl->state, "streaming") != 0 || !s->repl->ssl)
			s->problem = 1;
	}
}

/* Where a CA rollover stands (docs/ca-rollover.md): one line, or one
 * JSON member, when the store has rollover state. */
static void
print_rollover(FILE *out, const struct dbpki_cluster *c, int json)
{
	struct pki_rollover ro;
	struct dbpki_err e;
	char line[256];

	err_clear(&e);
	if (pki_rollover_load(c, &ro, &e) != 0) {
		if (!json)
			fprintf(out, "CA rollover: unknown (%.200s)\n", e.msg);
		return;
	}
	if (!ro.active)
		return;
	if (json) {
		fprintf(out,
		    ",\"ca_rollover\":{\"done\":%d,\"of\":%d,"
		    "\"new_serial\":\"%s\",\"old_serial\":\"%s\","
		    "\"started\":\"%s\"}",
		    ro.done, PKI_ROLLOVER_STAGES, ro.new_serial, ro.old_serial,
		    ro.started);
		return;
	}
	pki_rollover_describe(&ro, line, sizeof(line));
	fprintf(out, "%s\n", line);
}

static void
print_text(FILE *out, const struct dbpki_cluster *c, const struct status_job *j)
{
	char days[24], repl[96];
	int i;

	fprintf(out, "%-12s %-8s %-5s %-8s %-18s %-7s %-8s %s\n", "node",
	    "role", "ssh", "seen", "serial", "expires", "ssl", "replication");
	for (i = 0; i < c->n_nodes; i++) {
		const struct cfg_node *n = &c->nodes[i];
		const struct node_status *s = &j->st[i];
		const char *seen = "-";

		days[0] = '\0';
		snprintf(repl, sizeof(repl), "-");
		if (cfg_is_database(n) && s->pg_ok) {
			seen = s->probe.in_recovery ? "replica" : "primary";
			snprintf(days, sizeof(days), "%lldd",
			    (long long)((s->probe.not_after - util_now()) /
					86400));
		} else if (cfg_is_database(n))
			seen = "DOWN";
		if (s->repl != NULL)
			snprintf(repl, sizeof(repl), "%s%s lag %lldB",
			    s->repl->state, s->repl->ssl ? "/ssl" : "/NO-SSL",
			    (long long)s->repl->replay_lag_bytes);
		else if (n->role == ROLE_REPLICA)
			snprintf(repl, sizeof(repl), "NOT STREAMING");
		fprintf(out, "%-12s %-8s %-5s %-8s %-18.16s %-7s %-8s %s%s\n",
		    n->name, cfg_role_name(n->role), s->ssh_ok ? "ok" : "DOWN",
		    seen, s->pg_ok ? s->probe.serial_hex : "-",
		    days[0] ? days : "-", s->pg_ok ? s->probe.protocol : "-",
		    repl, s->problem ? "   <- problem" : "");
		if (!s->ssh_ok)
			fprintf(out, "    ssh: %s\n", s->ssh_err);
		if (cfg_is_database(n) && !s->pg_ok && s->pg_err[0] != '\0')
			fprintf(out, "    postgres: %s\n", s->pg_err);
		engine_san_status_text(out, c, n, &s->san);
		if (c->platform != PLATFORM_POSTGRES || !cfg_is_database(n))
			continue;
		if (strcmp(s->layout, "debian") == 0)
			fprintf(out,
			    "    layout debian: cluster %s, start.conf %s%s\n",
			    s->pgcluster, s->start_conf,
			    strcmp(s->start_conf, "auto") == 0
				? " (started at boot by postgresql-common)"
				: ": NOT started at boot by postgresql-common "
				  "(something else must start it)");
		else if (strcmp(s->layout, "pgdata") == 0)
			fprintf(out,
			    "    layout pgdata (%s): nothing on the node "
			    "starts "
			    "this cluster at boot unless the operator's own "
			    "service does\n",
			    n->pg.pgdata);
		else
			engine_layout_note(out, n, "    ");
	}
}

static void
json_kv(FILE *out, const char *k, const char *v, int comma)
{
	log_json_string(out, k);
	fputc(':', out);
	log_json_string(out, v);
	if (comma)
		fputc(',', out);
}

static void
print_json(FILE *out, const struct dbpki_cluster *c, const struct status_job *j)
{
	int i;

	fprintf(out, "{\"cluster\":");
	log_json_string(out, c->name);
	fprintf(out, ",\"nodes\":[");
	for (i = 0; i < c->n_nodes; i++) {
		const struct cfg_node *n = &c->nodes[i];
		const struct node_status *s = &j->st[i];

		fprintf(out, "%s{", i ? "," : "");
		json_kv(out, "node", n->name, 1);
		json_kv(out, "role", cfg_role_name(n->role), 1);
		if (s->layout[0] != '\0') { /* as the node found it */
			json_kv(out, "layout", s->layout, 1);
			json_kv(out, "pg_cluster", s->pgcluster, 1);
			json_kv(out, "start_conf", s->start_conf, 1);
		}
		fprintf(out, "\"ssh\":%s,\"problem\":%s",
		    s->ssh_ok ? "true" : "false",
		    s->problem ? "true" : "false");
		if (cfg_is_database(n) && s->pg_ok)
			fprintf(out,
			    ",\"role_seen\":\"%s\",\"serial\":\"%s\","
			    "\"not_after\":%lld,\"ssl\":\"%s\"",
			    s->probe.in_recovery ? "replica" : "primary",
			    s->probe.serial_hex, (long long)s->probe.not_after,
			    s->probe.protocol);
		if (s->repl != NULL) {
			fprintf(out, ",\"replication\":{\"state\":");
			log_json_string(out, s->repl->state);
			fprintf(out, ",\"ssl\":%s,\"lag_bytes\":%lld}",
			    s->repl->ssl ? "true" : "false",
			    (long long)s->repl->replay_lag_bytes);
		}
		engine_san_status_json(out, n, &s->san);
		fputc('}', out);
	}
	fprintf(out, "]");
	print_rollover(out, c, 1);
	fprintf(out, "}\n");
}

static int
load_client_files(
    const struct dbpki_cluster *c, struct status_job *j, struct dbpki_err *e)
{
	struct pki_release rel;
	int rc;

	memset(&rel, 0, sizeof(rel));
	if ((rc = pki_release_build(c, cfg_primary(c), &rel, e)) == 0)
		rc = engine_verify_files(c, &rel, &j->vf, e);
	pki_release_free(&rel);
	return rc;
}

int
engine_status(
    const struct dbpki_cluster *c, int json, FILE *out, struct dbpki_err *e)
{
	struct status_job *j = calloc(1, sizeof(*j));
	struct engine_lock lock = {.fd = -1};
	struct pg_repl *rows = NULL;
	struct dbpki_err pe;
	struct pg_target t;
	int i, nrows = 0, problems = 0, rc;

	if (j == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	j->c = c;
	/* state_dir/verify is the store's: written under the lock like every
	 * store write, held only that long, so that status never makes a
	 * scheduled renew fail (and exits 5 while one runs). */
	if ((rc = engine_store_lock(c, "status", &lock, e)) != 0)
		goto out;
	rc = load_client_files(c, j, e);
	engine_lock_release(&lock);
	if (rc != 0)
		goto out;
	j->have_files = 1;
	if ((rc = engine_pool_run(c->n_nodes, c->parallel, probe_one, j, e)) !=
	    0)
		goto out;
	engine_pg_target(c, cfg_primary(c), &j->vf, &t);
	err_clear(&pe);
	if (pg_replication(&t, &rows, &nrows, &pe) != 0)
		nrows = 0;
	judge(c, j, rows, nrows, util_now() + c->renew_before);
	if (json)
		print_json(out, c, j);
	else {
		print_text(out, c, j);
		print_rollover(out, c, 0);
	}
	for (i = 0; i < c->n_nodes; i++)
		problems += j->st[i].problem;
	if (problems > 0)
		rc = err_set(e, DBPKI_E_VERIFY,
		    "%d node(s) need attention (see "
		    "above)",
		    problems);
out:
	free(rows);
	free(j);
	return rc;
}
