/* engine: a playbook over a cluster.  See engine.h for the shape of a run;
 * docs/architecture.md for why it is built this way. */
#include "dbpki/engine_int.h"
#include "dbpki/log.h"
#include "dbpki/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *
res_name(enum res_state s)
{
	switch (s) {
	case RES_OK: return "ok";
	case RES_FAILED: return "FAILED";
	case RES_SKIPPED: return "skipped";
	case RES_UNDONE: return "undone";
	default: return "-";
	}
}

static void
print_tail(const struct engine_node *en, const struct engine_result *res)
{
	if (res->state == RES_FAILED && res->tail[0] != '\0')
		log_info("    last output of %s:\n%s", en->n->name, res->tail);
}

void
engine_report_node(struct engine_run *r, const struct engine_node *en,
    const struct pb_step *s, const char *action,
    const struct engine_result *res)
{
	char ms[32], code[16];

	snprintf(ms, sizeof(ms), "%lld", (long long)res->ms);
	snprintf(code, sizeof(code), "%d", res->exit_status);
	pthread_mutex_lock(&r->mu);
	engine_journal_event(&r->journal, "node", "step", s->name, "action",
	    action, "node", en->n->name, "result", res_name(res->state), "ms",
	    ms, "exit", code, "error", res->error, "output", res->tail, NULL);
	if (r->o->json) {
		printf("{\"event\":\"node\",\"step\":");
		log_json_string(stdout, s->name);
		printf(",\"action\":");
		log_json_string(stdout, action);
		printf(",\"node\":");
		log_json_string(stdout, en->n->name);
		printf(",\"result\":\"%s\",\"ms\":%s,\"exit\":%s,\"error\":",
		    res_name(res->state), ms, code);
		log_json_string(stdout, res->error);
		if (res->has_downtime)
			printf(",\"downtime_ms\":%lld",
			    (long long)res->downtime_ms);
		printf("}\n");
		fflush(stdout);
	} else {
		char line[1024];

		snprintf(line, sizeof(line), "  %-12s %-10s %-7s %6.2fs  %s",
		    en->n->name, action, res_name(res->state),
		    (double)res->ms / 1000.0,
		    res->state == RES_FAILED ? res->error : res->note);
		/* On a terminal the tail waits until the live block ends. */
		if (log_progress_done(r->progress, en->n->name, line) != 0) {
			log_info("%s", line);
			print_tail(en, res);
		}
	}
	pthread_mutex_unlock(&r->mu);
}

/* ---- connecting -------------------------------------------------------- */

struct conn_job {
	struct engine_run *r;
	struct dbpki_err errs[CFG_MAX_NODES];
};

static void
connect_one(int i, void *arg)
{
	struct conn_job *j = arg;
	struct engine_node *en = &j->r->nodes[i];

	err_clear(&j->errs[i]);
	if (!en->skipped)
		ssh_connect(en->n, &en->conn, &j->errs[i]);
}

/* Every node must be reachable, with a host key that checks out, before
 * anything changes anywhere. */
static int
connect_all(struct engine_run *r, struct dbpki_err *e)
{
	struct conn_job *j = calloc(1, sizeof(*j));
	int i, bad = 0, rc;

	if (j == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	j->r = r;
	if ((rc = engine_pool_run(r->n, r->c->parallel, connect_one, j, e)) !=
	    0)
		goto out;
	for (i = 0; i < r->n; i++) {
		if (r->nodes[i].skipped || j->errs[i].code == 0)
			continue;
		log_error("%s", j->errs[i].msg);
		engine_journal_event(&r->journal, "connect", "node",
		    r->nodes[i].n->name, "error", j->errs[i].msg, NULL);
		if (bad++ == 0)
			*e = j->errs[i];
	}
	if (bad > 0) {
		err_wrap(e,
		    "%d node(s) cannot be reached safely, so nothing was "
		    "changed on any node; fix the node (or, deliberately, "
		    "rerun "
		    "with --skip-node NAME); first problem",
		    bad);
		rc = e->code;
	}
out:
	free(j);
	return rc;
}

/* ---- steps -------------------------------------------------------------- */

struct step_job {
	struct engine_run *r;
	const struct pb_step *s;
	const char *action;
	int step_idx;
	int idx[CFG_MAX_NODES];
	int n;
	int stop_serial;
};

static void
step_one(int i, void *arg)
{
	struct step_job *j = arg;
	struct engine_node *en = &j->r->nodes[j->idx[i]];
	struct engine_result *res = &en->res[j->step_idx];

	/* A one-at-a-time step stops at its first failure. */
	if (!j->s->parallel && j->stop_serial)
		return;
	engine_node_step(j->r, en, j->s, j->action, res);
	if (res->state == RES_FAILED)
		j->stop_serial = 1;
}

static int
node_failed_before(const struct engine_node *en, int step)
{
	int k;

	for (k = 0; k < step; k++)
		if (en->res[k].state == RES_FAILED)
			return 1;
	return 0;
}

/* Nodes the step applies to; their results start as "skipped" for those
 * that are skipped deliberately. */
static void
select_nodes(struct engine_run *r, int step, struct step_job *j)
{
	const struct pb_step *s = &r->pb->steps[step];
	int i;

	j->n = 0;
	for (i = 0; i < r->n; i++) {
		struct engine_node *en = &r->nodes[i];

		if (!pb_step_applies(s, en->n->role, r->c->platform))
			continue;
		if (en->skipped || node_failed_before(en, step)) {
			en->res[step].state = RES_SKIPPED;
			continue;
		}
		j->idx[j->n++] = i;
	}
}

static int
run_action_step(struct engine_run *r, int step, const char *action, int *failed,
    struct dbpki_err *e)
{
	struct step_job j = {0};
	const char *labels[CFG_MAX_NODES];
	int i, rc, live;

	j.r = r;
	j.s = &r->pb->steps[step];
	j.action = action;
	j.step_idx = step;
	select_nodes(r, step, &j);
	*failed = 0;
	if (j.n == 0)
		return 0;
	for (i = 0; i < j.n; i++)
		labels[i] = r->nodes[j.idx[i]].n->name;
	r->progress = log_progress_start(action, labels, j.n);
	rc = engine_pool_run(
	    j.n, j.s->parallel ? r->c->parallel : 1, step_one, &j, e);
	pthread_mutex_lock(&r->mu);
	log_progress_end(r->progress);
	live = r->progress != NULL;
	r->progress = NULL;
	pthread_mutex_unlock(&r->mu);
	for (i = 0; i < j.n; i++) {
		const struct engine_node *en = &r->nodes[j.idx[i]];

		*failed += en->res[step].state == RES_FAILED;
		if (live)
			print_tail(en, &en->res[step]);
	}
	return rc;
}

/* Undo every step done so far that has an undo action, newest first, on
 * the nodes where it succeeded. */
static void
rollback(struct engine_run *r, int upto)
{
	struct engine_result res;
	int k, i;

	log_warn("rolling back the steps done so far");
	engine_journal_event(&r->journal, "rollback-start", NULL);
	for (k = upto; k >= 0; k--) {
		const struct pb_step *s = &r->pb->steps[k];

		if (s->undo[0] == '\0')
			continue;
		for (i = 0; i < r->n; i++) {
			struct engine_node *en = &r->nodes[i];

			if (en->res[k].state != RES_OK &&
			    en->res[k].state != RES_FAILED)
				continue;
			engine_node_step(r, en, s, s->undo, &res);
			if (res.state == RES_OK)
				en->res[k].state = RES_UNDONE;
		}
	}
	engine_journal_event(&r->journal, "rollback-end", NULL);
}

/* The first node whose result for step failed; the caller knows one did. */
static const struct engine_node *
first_failure(const struct engine_run *r, int step)
{
	int i;

	for (i = 0; i < r->n; i++)
		if (r->nodes[i].res[step].state == RES_FAILED)
			break;
	return &r->nodes[i];
}

static int
run_steps(struct engine_run *r, struct dbpki_err *e)
{
	const struct engine_node *who;
	int k, failed, rc;

	for (k = 0; k < r->pb->n_steps; k++) {
		const struct pb_step *s = &r->pb->steps[k];

		log_info("step %s%s", s->name,
		    s->verify != PB_VERIFY_NONE ? " (verification)" : "");
		engine_journal_event(
		    &r->journal, "step-start", "step", s->name, NULL);
		if (s->verify != PB_VERIFY_NONE) {
			if ((rc = engine_verify(r, s, e)) == 0)
				continue;
			if (s->on_failure == PB_FAIL_ROLLBACK)
				rollback(r, k - 1);
			return rc;
		}
		if ((rc = run_action_step(r, k, s->action, &failed, e)) != 0)
			return rc;
		if (failed == 0)
			continue;
		who = first_failure(r, k);
		err_set(e, DBPKI_E_REMOTE,
		    "step %s failed on %d node(s); first: "
		    "node %s: %s",
		    s->name, failed, who->n->name, who->res[k].error);
		if (s->on_failure == PB_FAIL_ROLLBACK)
			rollback(r, k);
		return e->code;
	}
	return 0;
}

/* ---- summary ------------------------------------------------------------ */

/* How long a database was unavailable, as its node script measured it
 * (rotate's restart of the primary): the figure on-call cares about. */
static void
report_downtime(const struct engine_run *r)
{
	int i, k;

	for (i = 0; i < r->n; i++)
		for (k = 0; k < r->pb->n_steps; k++) {
			const struct engine_result *res = &r->nodes[i].res[k];

			if (!res->has_downtime)
				continue;
			if (r->o->json) {
				printf("{\"event\":\"downtime\",\"node\":");
				log_json_string(stdout, r->nodes[i].n->name);
				printf(",\"step\":");
				log_json_string(stdout, r->pb->steps[k].name);
				printf(",\"ms\":%lld}\n",
				    (long long)res->downtime_ms);
				fflush(stdout);
			} else
				fprintf(stderr,
				    "downtime: %s (%s) was unavailable for "
				    "%lld ms (PostgreSQL restart in step "
				    "%s)\n",
				    r->nodes[i].n->name,
				    cfg_role_name(r->nodes[i].n->role),
				    (long long)res->downtime_ms,
				    r->pb->steps[k].name);
		}
}

static void
summary(const struct engine_run *r)
{
	char cell[64];
	int i, k;

	if (r->o->json) {
		report_downtime(r);
		return;
	}
	fprintf(stderr, "\n%-12s %-8s", "node", "role");
	for (k = 0; k < r->pb->n_steps; k++)
		if (r->pb->steps[k].verify == PB_VERIFY_NONE)
			fprintf(stderr, " %-16s", r->pb->steps[k].name);
	fputc('\n', stderr);
	for (i = 0; i < r->n; i++) {
		const struct engine_node *en = &r->nodes[i];

		fprintf(stderr, "%-12s %-8s", en->n->name,
		    cfg_role_name(en->n->role));
		for (k = 0; k < r->pb->n_steps; k++) {
			const struct engine_result *res = &en->res[k];

			if (r->pb->steps[k].verify != PB_VERIFY_NONE)
				continue;
			if (res->state == RES_OK || res->state == RES_FAILED ||
			    res->state == RES_UNDONE)
				snprintf(cell, sizeof(cell), "%s %.1fs",
				    res_name(res->state),
				    (double)res->ms / 1000.0);
			else
				snprintf(cell, sizeof(cell), "%s",
				    en->skipped ? "skipped"
						: res_name(res->state));
			fprintf(stderr, " %-16s", cell);
		}
		fputc('\n', stderr);
	}
	for (i = 0; i < r->n; i++)
		if (r->nodes[i].skipped)
			fprintf(stderr,
			    "note: node %s was skipped on request "
			    "(--skip-node); it has not been changed\n",
			    r->nodes[i].n->name);
	report_downtime(r);
}

/* ---- the run ------------------------------------------------------------ */

static int
is_skipped(const struct engine_opts *o, const char *name)
{
	int i;

	for (i = 0; i < o->n_skip; i++)
		if (strcmp(o->skip[i], name) == 0)
			return 1;
	return 0;
}

/* Build and check every node's release before anything is sent. */
static int
prepare_releases(struct engine_run *r, struct dbpki_err *e)
{
	int i, rc;

	for (i = 0; i < r->n; i++) {
		struct engine_node *en = &r->nodes[i];

		if (en->skipped)
			continue;
		if ((rc = pki_release_build(r->c, en->n, &en->rel, e)) != 0 ||
		    (rc = pki_release_check(r->c, en->n, &en->rel, e)) != 0)
			return err_wrap(e,
			    "pre-flight check of node %s's release "
			    "(nothing was sent)",
			    en->n->name);
	}
	return 0;
}

/* Unique even for two runs in one second (a reused releases/<id> would
 * be overwritten in place and leave rollback nothing to go back to), and
 * sorting like time: certs.sh keeps the newest five by name. */
static void
make_release_id(struct engine_run *r)
{
	util_stamp(r->release_id);
}

static int
run_init(struct engine_run *r, const struct dbpki_cluster *c,
    const struct playbook *pb, const struct engine_opts *o, struct dbpki_err *e)
{
	int i;

	r->c = c;
	r->pb = pb;
	r->o = o;
	r->n = c->n_nodes;
	pthread_mutex_init(&r->mu, NULL);
	make_release_id(r);
	for (i = 0; i < o->n_skip; i++)
		if (cfg_node_by_name(c, o->skip[i]) == NULL)
			return err_set(e, DBPKI_E_USAGE,
			    "--skip-node %.64s: no such "
			    "node in %s",
			    o->skip[i], c->path);
	for (i = 0; i < r->n; i++) {
		r->nodes[i].n = &c->nodes[i];
		r->nodes[i].skipped = is_skipped(o, c->nodes[i].name);
	}
	if (o->n_skip > 0 && is_skipped(o, cfg_primary(c)->name))
		return err_set(
		    e, DBPKI_E_USAGE, "the primary cannot be skipped");
	return 0;
}

static void
run_free(struct engine_run *r)
{
	int i;

	for (i = 0; i < r->n; i++) {
		if (r->nodes[i].conn != NULL)
			ssh_close(r->nodes[i].conn);
		pki_release_free(&r->nodes[i].rel);
	}
	pthread_mutex_destroy(&r->mu);
}

static int
run_body(struct engine_run *r, struct dbpki_err *e)
{
	char id[CFG_NAME], pb[CFG_NAME];
	int rc;

	if ((rc = engine_journal_unfinished(r->c->state_dir, id, pb, e)) < 0)
		return rc;
	if (rc == 1)
		log_warn(
		    "the previous run (%s, playbook %s) did not finish; its "
		    "journal is %s/journal/%s.jsonl. This run redoes every "
		    "step "
		    "from the start; the steps are safe to repeat",
		    id, pb, r->c->state_dir, id);
	if ((rc = prepare_releases(r, e)) != 0)
		return rc;
	if ((rc = engine_journal_open(
		 r->c->state_dir, r->pb->name, &r->journal, e)) != 0)
		return rc;
	engine_journal_event(&r->journal, "release", "id", r->release_id, NULL);
	log_info("%s: playbook %s on %d node(s), release %s", r->c->name,
	    r->pb->name, r->n, r->release_id);
	if ((rc = connect_all(r, e)) != 0)
		return rc;
	return run_steps(r, e);
}

/* The CA must exist for anything to be issued; bootstrap creates it. */
static int
ensure_ca(const struct dbpki_cluster *c, int create, struct dbpki_err *e)
{
	struct pki_ca *ca = NULL;
	int rc = pki_ca_load(c, &ca, e);

	pki_ca_free(ca);
	/* An import-only store needs no dbca: its leaves come from the
	 * imported CA, and a CA key nobody uses is never made. */
	if (rc == DBPKI_E_NOCA && pki_trust_imported(c)) {
		err_clear(e);
		return 0;
	}
	if (rc == DBPKI_E_NOCA && create) {
		log_info("%s: no dbca yet: creating it", c->name);
		err_clear(e);
		return pki_ca_init(c, e);
	}
	return rc;
}

static int run_locked(const struct dbpki_cluster *c, const char *name,
    const struct engine_opts *o, int issue, int create_ca, struct dbpki_err *e);

int
engine_run(const struct dbpki_cluster *c, const char *name,
    const struct engine_opts *o, struct dbpki_err *e)
{
	return run_locked(c, name, o, 0, 0, e);
}

int
engine_issue_and_run(const struct dbpki_cluster *c, const char *name,
    int create_ca, const struct engine_opts *o, struct dbpki_err *e)
{
	return run_locked(c, name, o, 1, create_ca, e);
}

/* The lock is taken before the store is touched, so that a second run
 * started at the same time changes nothing, not even the local store. */
static int
run_locked(const struct dbpki_cluster *c, const char *name,
    const struct engine_opts *o, int issue, int create_ca, struct dbpki_err *e)
{
	struct engine_run *r;
	struct playbook *pb;
	struct engine_lock lock = {.fd = -1};
	int rc;

	r = calloc(1, sizeof(*r));
	pb = calloc(1, sizeof(*pb));
	if (r == NULL || pb == NULL) {
		free(r);
		free(pb);
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	}
	if ((rc = pb_load_named(name, pb, e)) != 0 ||
	    (rc = run_init(r, c, pb, o, e)) != 0)
		goto out;
	/* renew decides under the lock whether anything is due at all. */
	if (!o->lock_held && (rc = engine_store_lock(c, name, &lock, e)) != 0)
		goto out;
	if (issue && ((rc = ensure_ca(c, create_ca, e)) != 0 ||
			 (rc = pki_issue_all(c, 0, e)) != 0)) {
		engine_lock_release(&lock);
		goto out;
	}
	rc = run_body(r, e);
	summary(r);
	engine_journal_close(&r->journal, rc == 0 ? "ok" : err_name(rc));
	engine_lock_release(&lock);
out:
	run_free(r);
	free(r);
	free(pb);
	return rc;
}
