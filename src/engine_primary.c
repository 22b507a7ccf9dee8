/* engine_primary: which database node really is the primary, asked over
 * SSH before rotate changes anything.  The certificates are what is broken
 * at 3 a.m., so nothing here goes through TLS: probe.sh reads the data
 * directory (pg_controldata) and, when PostgreSQL runs and admits the
 * login user over its own unix socket, asks pg_is_in_recovery().
 *
 * Parsing, classification and the judgement are pure functions of the
 * probe output, so the unit tests can drive every case. */
#include "dbpki/engine_int.h"
#include "dbpki/engine_rotate.h"
#include "dbpki/log.h"
#include "dbpki/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing ------------------------------------------------------------ */

/* Probe values are single words: anything else means the output is not
 * what probe.sh prints, and is refused rather than guessed at. */
static int
valid_word(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 47)
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

static void
copy_word(char *dst, size_t dstsz, const char *v, int unscore)
{
	size_t i;

	snprintf(dst, dstsz, "%s", v);
	for (i = 0; unscore && dst[i] != '\0'; i++)
		if (dst[i] == '_')
			dst[i] = ' ';
}

static int
yes_no(const char *v, int *out)
{
	if (strcmp(v, "yes") == 0)
		*out = 1;
	else if (strcmp(v, "no") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static int
set_field(struct probe_node *p, const char *k, const char *v)
{
	long long t;

	if (strcmp(k, "data") == 0)
		return yes_no(v, &p->data);
	if (strcmp(k, "running") == 0)
		return yes_no(v, &p->running);
	if (strcmp(k, "sql") == 0)
		return yes_no(v, &p->sql);
	if (strcmp(k, "conf") == 0) {
		p->conf_bad = strcmp(v, "bad") == 0;
		return 0;
	}
	if (strcmp(k, "recovery") == 0) {
		p->in_recovery = strcmp(v, "t") == 0   ? 1
				 : strcmp(v, "f") == 0 ? 0
						       : -1;
		return 0;
	}
	if (strcmp(k, "timeline") == 0) {
		p->timeline =
		    util_parse_int(v, 1, 0x7fffffff, &t) == 0 ? (int)t : -1;
		return 0;
	}
	if (strcmp(k, "state") == 0)
		copy_word(p->state, sizeof(p->state), v, 1);
	else if (strcmp(k, "sysid") == 0)
		copy_word(p->sysid, sizeof(p->sysid), v, 0);
	else if (strcmp(k, "signal") == 0)
		copy_word(p->signal, sizeof(p->signal), v, 0);
	else if (strcmp(k, "receiver") == 0)
		copy_word(p->receiver, sizeof(p->receiver), v, 1);
	/* Unknown keys are ignored: a newer probe.sh may say more. */
	return 0;
}

/* The text after "MARK " on the first line of out that starts so, into
 * line (NUL-terminated, truncated to linesz). */
static int
find_line(const char *out, const char *mark, char *line, size_t linesz)
{
	const char *s = out, *nl;
	size_t mlen = strlen(mark), len;

	for (; s != NULL && *s != '\0'; s = nl ? nl + 1 : NULL) {
		nl = strchr(s, '\n');
		len = nl ? (size_t)(nl - s) : strlen(s);
		if (len <= mlen || strncmp(s, mark, mlen) != 0 ||
		    s[mlen] != ' ')
			continue;
		len -= mlen + 1;
		if (len >= linesz)
			len = linesz - 1;
		memcpy(line, s + mlen + 1, len);
		line[len] = '\0';
		return 0;
	}
	return -1;
}

int
probe_parse(const char *out, struct probe_node *p, struct dbpki_err *e)
{
	char line[1024], raw[sizeof(p->conf_error)], *w, *eq, *save = NULL;

	p->data = p->running = p->sql = p->conf_bad = 0;
	p->in_recovery = p->timeline = -1;
	snprintf(p->state, sizeof(p->state), "unknown");
	snprintf(p->sysid, sizeof(p->sysid), "-");
	snprintf(p->signal, sizeof(p->signal), "no");
	snprintf(p->receiver, sizeof(p->receiver), "-");
	if (out == NULL || find_line(out, PROBE_MARK, line, sizeof(line)) != 0)
		return err_set(e, DBPKI_E_REMOTE,
		    "node %s: the probe printed no %s line; is "
		    "templates/postgres/probe.sh the one shipped with this "
		    "dbpki?",
		    p->n->name, PROBE_MARK);
	p->conf_error[0] = '\0';
	if (find_line(out, PROBE_MARK "-CONF", raw, sizeof(raw)) == 0)
		log_sanitize(
		    p->conf_error, sizeof(p->conf_error), raw, strlen(raw), 0);
	for (w = strtok_r(line, " ", &save); w != NULL;
	     w = strtok_r(NULL, " ", &save)) {
		if ((eq = strchr(w, '=')) == NULL ||
		    !valid_word(eq + 1, strlen(eq + 1)))
			goto bad;
		*eq = '\0';
		if (set_field(p, w, eq + 1) != 0)
			goto bad;
	}
	return 0;
bad:
	log_sanitize(raw, sizeof(raw), w, 40, 0); /* the node's bytes */
	return err_set(e, DBPKI_E_REMOTE,
	    "node %s: the probe printed a malformed %s line (near \"%s\")",
	    p->n->name, PROBE_MARK, raw);
}

/* ---- what each node claims ---------------------------------------------- */

static void
describe_replica(struct probe_node *p)
{
	const char *how = "streaming unknown (no SQL access)";

	if (strcmp(p->receiver, "streaming") == 0)
		how = "streaming";
	else if (strcmp(p->receiver, "none") == 0)
		how = "not streaming";
	else if (strcmp(p->receiver, "-") != 0)
		how = p->receiver; /* "starting", "waiting", ... */
	snprintf(p->desc, sizeof(p->desc), "in archive recovery, %s", how);
}

static void
describe_timeline(struct probe_node *p, const char *what)
{
	if (p->timeline > 0)
		snprintf(p->desc, sizeof(p->desc), "%s, timeline %d", what,
		    p->timeline);
	else
		snprintf(p->desc, sizeof(p->desc), "%s", what);
}

/* A running node: its own answer wins, pg_controldata otherwise. */
static void
classify_running(struct probe_node *p)
{
	if ((p->sql && p->in_recovery == 0) ||
	    (!p->sql && strcmp(p->state, "in production") == 0)) {
		p->claim = CLAIM_PRIMARY;
		describe_timeline(p, "in production");
	} else if ((p->sql && p->in_recovery == 1) ||
		   (!p->sql && strcmp(p->state, "in archive recovery") == 0)) {
		p->claim = CLAIM_REPLICA;
		describe_replica(p);
	} else {
		p->claim = CLAIM_UNKNOWN;
		snprintf(p->desc, sizeof(p->desc), "running, cluster state %s",
		    p->state);
	}
}

/* A stopped node is what it would become if started: a standby when a
 * signal file is there, otherwise a primary (PostgreSQL finishes any
 * recovery and opens for writes). */
static void
classify_stopped(struct probe_node *p)
{
	char what[96];

	if (strcmp(p->signal, "no") != 0) {
		p->claim = CLAIM_REPLICA;
		snprintf(p->desc, sizeof(p->desc),
		    "not running (%s, %s.signal): would start as a standby",
		    p->state, p->signal);
		return;
	}
	p->claim = CLAIM_PRIMARY;
	snprintf(what, sizeof(what), "not running (%s)", p->state);
	describe_timeline(p, what);
	snprintf(p->desc + strlen(p->desc), sizeof(p->desc) - strlen(p->desc),
	    "; would start as a primary");
}

void
probe_classify(struct probe_node *p)
{
	if (p->error[0] != '\0') {
		p->claim = CLAIM_UNREACHABLE;
		snprintf(p->desc, sizeof(p->desc), "could not be asked");
	} else if (!p->data) {
		p->claim = CLAIM_NONE;
		snprintf(p->desc, sizeof(p->desc), "no data directory");
	} else if (p->running)
		classify_running(p);
	else
		classify_stopped(p);
}

/* ---- reporting ---------------------------------------------------------- */

static void appendf(char *out, size_t outsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
appendf(char *out, size_t outsz, const char *fmt, ...)
{
	size_t len = strlen(out);
	va_list ap;

	if (len + 1 >= outsz)
		return;
	va_start(ap, fmt);
	vsnprintf(out + len, outsz - len, fmt, ap);
	va_end(ap);
}

/* "label: a (desc), b (desc)" for the probes with this claim. */
static void
summary_group(const struct probe_node *v, int n, enum probe_claim claim,
    const char *one, const char *many, char *out, size_t outsz)
{
	int i, k = 0, count = 0;

	for (i = 0; i < n; i++)
		count += v[i].probed && v[i].claim == claim;
	if (count == 0)
		return;
	appendf(
	    out, outsz, "%s%s: ", out[0] ? "; " : "", count > 1 ? many : one);
	for (i = 0; i < n; i++) {
		if (!v[i].probed || v[i].claim != claim)
			continue;
		appendf(out, outsz, "%s%s (%s)", k++ ? ", " : "", v[i].n->name,
		    v[i].desc);
	}
}

void
probe_summary(const struct probe_node *v, int n, char *out, size_t outsz)
{
	int i, primaries = 0;

	out[0] = '\0';
	for (i = 0; i < n; i++)
		primaries += v[i].probed && v[i].claim == CLAIM_PRIMARY;
	if (primaries == 0)
		appendf(out, outsz, "primary: none");
	summary_group(v, n, CLAIM_PRIMARY, "primary", "primaries", out, outsz);
	summary_group(v, n, CLAIM_REPLICA, "replica", "replicas", out, outsz);
	summary_group(v, n, CLAIM_NONE, "empty", "empty", out, outsz);
	summary_group(v, n, CLAIM_UNKNOWN, "unclear", "unclear", out, outsz);
	summary_group(
	    v, n, CLAIM_UNREACHABLE, "not asked", "not asked", out, outsz);
}

/* ---- the judgement ------------------------------------------------------ */

static const struct probe_node *
find_probe(const struct probe_node *v, int n, const struct cfg_node *node)
{
	int i;

	for (i = 0; i < n; i++)
		if (v[i].n == node)
			return &v[i];
	return NULL;
}

static int
refuse_unreachable(const struct probe_node *v, int n, struct dbpki_err *e)
{
	char list[1024] = "";
	int i, bad = 0;

	for (i = 0; i < n; i++) {
		if (!v[i].probed || v[i].claim != CLAIM_UNREACHABLE)
			continue;
		bad++;
		appendf(list, sizeof(list), "%s%s", bad > 1 ? "; " : "",
		    v[i].error);
	}
	if (bad == 0)
		return 0;
	return err_set(e, DBPKI_E_SSH,
	    "rotate: %d database node(s) could not be asked whether they are "
	    "the primary, so nothing was changed on any node: %s. Fix what "
	    "is reported (SSH to the node, or what the probe met there), "
	    "or (deliberately, for a replica) rerun with --skip-node NAME",
	    bad, list);
}

/* Names and descriptions of the other nodes claiming primary. */
static int
other_primaries(const struct probe_node *v, int n, const struct probe_node *me,
    char *out, size_t outsz)
{
	int i, k = 0;

	out[0] = '\0';
	for (i = 0; i < n; i++) {
		if (!v[i].probed || v[i].claim != CLAIM_PRIMARY || &v[i] == me)
			continue;
		appendf(out, outsz, "%s%s (%s)", k++ ? ", " : "", v[i].n->name,
		    v[i].desc);
	}
	return k;
}

static int
judge_forced(const struct probe_node *v, int n, const struct probe_node *pp,
    const char *found, struct dbpki_err *e)
{
	const struct cfg_node *p = pp->n;
	char others[1024];

	if (pp->claim != CLAIM_PRIMARY)
		return err_set(e, DBPKI_E_CONFIG,
		    "--primary %s: %s is %s, not a primary; nothing was "
		    "changed. rotate keeps the primary's data and never "
		    "promotes a replica: name the node that is in production, "
		    "or promote %s yourself (pg_ctl promote) and rerun. Found: "
		    "%s",
		    p->name, p->name, pp->desc, p->name, found);
	if (other_primaries(v, n, pp, others, sizeof(others)) > 0)
		log_warn("%s also claim(s) to be primary; as asked (--primary "
			 "%s) each is treated as a replica of %s: join moves "
			 "its data directory aside (never deleted) and clones "
			 "it from %s",
		    others, p->name, p->name, p->name);
	return 0;
}

/* Is pp the one primary (forced: may pp be the primary)? */
static int
judge_identity(const struct cfg_node *p, const struct probe_node *v, int n,
    const struct probe_node *pp, int forced, struct dbpki_err *e)
{
	const struct probe_node *real = NULL;
	char found[2048], others[1024];
	int i, np = 0;

	probe_summary(v, n, found, sizeof(found));
	if (forced)
		return judge_forced(v, n, pp, found, e);
	for (i = 0; i < n; i++)
		if (v[i].probed && v[i].claim == CLAIM_PRIMARY && np++ == 0)
			real = &v[i];
	if (np == 0)
		return err_set(e, DBPKI_E_CONFIG,
		    "no database node is a primary, so nothing was changed "
		    "(found: %s). Start the primary, or promote the replica "
		    "whose data you want to keep (pg_ctl promote) and rerun "
		    "with --primary NAME",
		    found);
	if (np > 1) {
		other_primaries(v, n, NULL, others, sizeof(others));
		return err_set(e, DBPKI_E_CONFIG,
		    "%d nodes claim to be primary: %s; nothing was changed. "
		    "Decide whose data to keep and rerun with --primary NAME: "
		    "the other(s) are then re-cloned from it, their data "
		    "directories moved aside (never deleted)",
		    np, others);
	}
	if (real != pp)
		return err_set(e, DBPKI_E_CONFIG,
		    "the inventory says %s is the primary, but it is not (%s); "
		    "%s is (%s). Nothing was changed. Fix the inventory (role "
		    "= primary in [node %s]) or rerun with --primary %s",
		    p->name, pp->desc, real->n->name, real->desc, real->n->name,
		    real->n->name);
	return 0;
}

int
probe_judge(const struct dbpki_cluster *c, const struct probe_node *v, int n,
    int forced, struct dbpki_err *e)
{
	const struct cfg_node *p = cfg_primary(c);
	const struct probe_node *pp = find_probe(v, n, p);
	int rc;

	if ((rc = refuse_unreachable(v, n, e)) != 0)
		return rc;
	if (pp == NULL || !pp->probed)
		return err_set(e, DBPKI_E_INTERNAL,
		    "the primary %s was not probed", p->name);
	if ((rc = judge_identity(p, v, n, pp, forced, e)) != 0)
		return rc;
	/* rotate restarts the primary: files that would not load would keep
	 * it down.  Found now, nothing has been stopped yet. */
	if (pp->conf_bad)
		return err_set(e, DBPKI_E_CONFIG,
		    "the primary %s could not start again: its configuration "
		    "does not load (postgres -D %s -C port: %s); nothing was "
		    "changed and it keeps running. Fix the file named there, "
		    "then rerun",
		    p->name, p->pg.pgdata,
		    pp->conf_error[0] ? pp->conf_error : "no detail");
	return 0;
}

/* ---- the override ------------------------------------------------------- */

int
rotate_override_primary(
    struct dbpki_cluster *c, const char *name, struct dbpki_err *e)
{
	struct cfg_node *want = NULL, *old = NULL;
	int i;

	for (i = 0; i < c->n_nodes; i++) {
		if (strcmp(c->nodes[i].name, name) == 0)
			want = &c->nodes[i];
		if (c->nodes[i].role == ROLE_PRIMARY)
			old = &c->nodes[i];
	}
	if (want == NULL)
		return err_set(e, DBPKI_E_USAGE,
		    "--primary %.64s: no such node in %s", name, c->path);
	if (!cfg_is_database(want))
		return err_set(e, DBPKI_E_USAGE,
		    "--primary %s: %s is a %s node, not a database node; "
		    "name the database node whose data must be kept",
		    name, name, cfg_role_name(want->role));
	if (old == want)
		return 0;
	want->role = ROLE_PRIMARY;
	if (old != NULL)
		old->role = ROLE_REPLICA;
	log_warn("--primary %s: for this run %s is the primary and %s (the "
		 "inventory's primary) a replica; %s is not changed, so set "
		 "role = primary on %s there afterwards",
	    name, name, old != NULL ? old->name : "-", c->path, name);
	return 0;
}

/* ---- asking the nodes --------------------------------------------------- */

struct probe_job {
	struct engine_run *r;
	struct probe_node *v;
};

static void
probe_one(int i, void *arg)
{
	struct probe_job *j = arg;
	struct probe_node *p = &j->v[i];
	struct ssh_conn *conn = NULL;
	struct ssh_result sr = {0};
	struct dbpki_err e;
	char *script = NULL, tail[300];

	if (!p->probed)
		return;
	err_clear(&e);
	if (ssh_connect(p->n, &conn, &e) != 0 ||
	    engine_render_script(j->r, p->n, "probe", &script, &e) != 0 ||
	    ssh_exec_script(conn, script, 0, &sr, &e) != 0)
		goto fail;
	if (!ssh_result_ok(&sr, ENGINE_SENTINEL)) {
		log_sanitize_tail(
		    tail, sizeof(tail), sr.out ? sr.out : "", sr.out_len, 0, 0);
		err_set(&e, DBPKI_E_REMOTE,
		    "node %s: the probe failed (exit %d): %s", p->n->name,
		    sr.exit_status, tail);
		goto fail;
	}
	if (probe_parse(sr.out, p, &e) != 0)
		goto fail;
	probe_classify(p);
	goto out;
fail:
	snprintf(p->error, sizeof(p->error), "%.500s", e.msg);
	probe_classify(p);
out:
	ssh_result_free(&sr);
	free(script);
	ssh_close(conn);
}

static int
is_skipped(const struct engine_opts *o, const char *name)
{
	int i;

	for (i = 0; i < o->n_skip; i++)
		if (strcmp(o->skip[i], name) == 0)
			return 1;
	return 0;
}

int
probe_all(const struct dbpki_cluster *c, const struct engine_opts *o,
    struct probe_node *v, struct dbpki_err *e)
{
	struct probe_job j;
	int i, rc;

	/* Only what rendering needs: the cluster and the run's names. */
	if ((j.r = calloc(1, sizeof(*j.r))) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	j.r->c = c;
	j.r->o = o;
	snprintf(j.r->release_id, sizeof(j.r->release_id), "probe");
	snprintf(j.r->journal.id, sizeof(j.r->journal.id), "probe");
	j.v = v;
	for (i = 0; i < c->n_nodes; i++) {
		memset(&v[i], 0, sizeof(v[i]));
		v[i].n = &c->nodes[i];
		v[i].probed = cfg_is_database(&c->nodes[i]) &&
			      !is_skipped(o, c->nodes[i].name);
	}
	rc = engine_pool_run(c->n_nodes, c->parallel, probe_one, &j, e);
	free(j.r);
	return rc;
}
