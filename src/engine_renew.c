/* engine_renew: scheduled renewal, safe to run every hour.
 *
 * Under the lock: survey every certificate (store and served), decide
 * whether anything is due, and only then touch the store and the nodes
 * through playbooks/renew.ini.  The served certificates are the truth:
 * pg_reload_conf() returns true even when PostgreSQL refuses the new key,
 * so both the decision and the final report read what each node serves.
 *
 * The store after a failed renew: the new leaves stay the store's current
 * ones (the keys they replaced are gone from the store; each node keeps
 * its own copy in its previous release).  The nodes serve their previous
 * certificates again, which no longer match the store, and "a node serves
 * another certificate than the store's" is itself a reason to renew: the
 * next run ships the store's certificates again without reissuing them.
 */
#include "dbpki/engine_int.h"
#include "dbpki/log.h"
#include "dbpki/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUE_REASONS 8

struct due {
	int expiry; /* expires within renew_before, or does not verify */
	int drift;  /* a node serves another certificate than the store's */
	int unreadable;
	const struct survey_cert *bad; /* first unreadable node */
	char reasons[DUE_REASONS][480];
	int n;
	/* application certificates due that renew does not reissue */
	char apps[400];
};

static void due_add(struct due *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
due_add(struct due *d, const char *fmt, ...)
{
	va_list ap;

	if (d->n >= DUE_REASONS)
		return;
	va_start(ap, fmt);
	vsnprintf(d->reasons[d->n++], sizeof(d->reasons[0]), fmt, ap);
	va_end(ap);
}

static void
day_of(int64_t t, char out[32])
{
	char *p;

	util_iso8601(t, out);
	if ((p = strchr(out, 'T')) != NULL)
		*p = '\0';
}

/* Whole days, towards zero (an expired one is said to be EXPIRED). */
static long long
days_left(const struct survey *s, int64_t t)
{
	return (long long)((t - s->now) / 86400);
}

/* The CA cannot be renewed by renew: say so loudly, every run. */
static void
warn_ca(const struct dbpki_cluster *c, const struct survey *s,
    const struct survey_cert *sc)
{
	char what[160], day[32];

	if (sc->not_after - s->now > c->renew_before)
		return;
	engine_survey_describe(sc, what, sizeof(what));
	day_of(sc->not_after, day);
	log_warn("%s expires on %s (%lld days), within renew_before: renew "
		 "cannot extend it, and no leaf can outlive it. Plan a new CA "
		 "and a rotate before then (docs/renew.md)",
	    what, day, days_left(s, sc->not_after));
}

static void
judge_one(const struct dbpki_cluster *c, const struct survey *s,
    const struct survey_cert *sc, struct due *d)
{
	char what[160], day[32], rb[32];

	engine_survey_describe(sc, what, sizeof(what));
	engine_duration(c->renew_before, rb, sizeof(rb));
	if (!sc->ok && sc->src == SURVEY_SERVED) {
		if (d->unreadable++ == 0)
			d->bad = sc;
		return;
	}
	if (!sc->ok) {
		d->expiry = 1;
		due_add(d, "%s: %s", what, sc->error);
		return;
	}
	if (sc->renewable && sc->not_after <= s->now) {
		d->expiry = 1;
		day_of(sc->not_after, day);
		due_add(d, "%s EXPIRED on %s", what, day);
	} else if (sc->renewable && sc->not_after - s->now <= c->renew_before) {
		d->expiry = 1;
		day_of(sc->not_after, day);
		due_add(d,
		    "%s expires on %s (%lld days), within renew_before (%s)",
		    what, day, days_left(s, sc->not_after), rb);
	} else if (sc->src == SURVEY_SERVED && sc->untrusted[0] != '\0') {
		d->expiry = 1;
		due_add(d, "%s does not verify: %s", what, sc->untrusted);
	}
	if (sc->src == SURVEY_SERVED && sc->drift) {
		d->drift = 1;
		due_add(d,
		    "%s serves serial %.16s..., but the store's current one "
		    "is %.16s... (an earlier renew did not finish, or the "
		    "store was reissued since)",
		    sc->label, sc->serial, sc->want[0] ? sc->want : "none");
	}
}

static void
judge_all(const struct dbpki_cluster *c, const struct survey *s, struct due *d)
{
	int i;

	memset(d, 0, sizeof(*d));
	for (i = 0; i < s->n; i++) {
		if (strcmp(s->v[i].kind, "ca") == 0)
			warn_ca(c, s, &s->v[i]);
		else
			judge_one(c, s, &s->v[i], d);
	}
}

/* The leaf (store or served) that expires first; served wins a tie, as it
 * is what clients see. */
static const struct survey_cert *
earliest(const struct survey *s)
{
	const struct survey_cert *best = NULL;
	int i;

	for (i = 0; i < s->n; i++) {
		const struct survey_cert *sc = &s->v[i];

		/* the CA and the CRL are not renewed by renewing leaves */
		if (!sc->ok || strcmp(sc->kind, "ca") == 0 ||
		    strcmp(sc->kind, "crl") == 0)
			continue;
		if (best == NULL || sc->not_after < best->not_after ||
		    (sc->not_after == best->not_after &&
			sc->src == SURVEY_SERVED))
			best = sc;
	}
	return best;
}

static void
earliest_text(const struct survey *s, char *out, size_t outsz)
{
	const struct survey_cert *sc = earliest(s);
	char what[160], day[32];

	if (sc == NULL) {
		snprintf(out, outsz, "no certificate could be read");
		return;
	}
	engine_survey_describe(sc, what, sizeof(what));
	day_of(sc->not_after, day);
	snprintf(out, outsz, "%s on %s (%lld days)", what, day,
	    days_left(s, sc->not_after));
}

static void
print_result(FILE *out, const struct dbpki_cluster *c, int json,
    const char *result, const char *text, const struct survey *s)
{
	const struct survey_cert *sc = s != NULL ? earliest(s) : NULL;
	char what[160];

	if (!json) {
		fprintf(out, "%s\n", text);
		fflush(out);
		return;
	}
	fprintf(out, "{\"event\":\"renew\",\"cluster\":");
	log_json_string(out, c->name);
	fprintf(out, ",\"result\":\"%s\",\"renew_before\":%lld", result,
	    (long long)c->renew_before);
	if (sc != NULL) {
		engine_survey_describe(sc, what, sizeof(what));
		fprintf(out, ",\"earliest\":{\"certificate\":");
		log_json_string(out, what);
		fprintf(out,
		    ",\"node\":\"%s\",\"kind\":\"%s\",\"source\":\"%s\","
		    "\"serial\":\"%s\",\"not_after\":%lld,\"days_left\":%lld}",
		    sc->label, sc->kind,
		    sc->src == SURVEY_SERVED ? "served" : "store", sc->serial,
		    (long long)sc->not_after, days_left(s, sc->not_after));
	}
	fprintf(out, ",\"msg\":");
	log_json_string(out, text);
	fprintf(out, "}\n");
	fflush(out);
}

/* A renew_before as long as a leaf's validity renews on every run. */
static void
warn_config(const struct dbpki_cluster *c)
{
	int64_t v = c->server_validity < c->client_validity
			? c->server_validity
			: c->client_validity;
	char rb[32], vs[32];

	if (c->renew_before < v)
		return;
	engine_duration(c->renew_before, rb, sizeof(rb));
	engine_duration(v, vs, sizeof(vs));
	log_warn("renew_before (%s) is not shorter than the certificates' "
		 "validity (%s): every renew will find them due; shorten "
		 "renew_before in %s",
	    rb, vs, c->path);
}

static int
nothing_due(FILE *out, const struct dbpki_cluster *c,
    const struct engine_opts *o, const struct survey *s, const char *apps)
{
	char first[320], rb[32], text[1024];

	earliest_text(s, first, sizeof(first));
	engine_duration(c->renew_before, rb, sizeof(rb));
	snprintf(text, sizeof(text),
	    "nothing to renew: the earliest expiry is %s; renew_before is "
	    "%s%s",
	    first, rb, apps);
	print_result(out, c, o->json, "nothing-due", text, s);
	return 0;
}

static int
unreadable(const struct due *d, struct dbpki_err *e)
{
	return err_set(e, DBPKI_E_REMOTE,
	    "cannot read the certificate node %s serves%s: %s; renew "
	    "changed nothing. Bring the node back, or leave it out "
	    "deliberately with --skip-node %s",
	    d->bad->label, d->unreadable > 1 ? " (and others)" : "",
	    d->bad->error, d->bad->label);
}

/* ---- after the run ------------------------------------------------------ */

static const struct survey_cert *
served_of(const struct survey *s, const char *node)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (s->v[i].src == SURVEY_SERVED &&
		    strcmp(s->v[i].label, node) == 0)
			return &s->v[i];
	return NULL;
}

/* What each node serves now compared with before the run, one clause per
 * node that is not back on its previous certificate.  0 when all are. */
static int
compare_after(const struct survey *before, const struct survey *after,
    char *out, size_t outsz)
{
	size_t len = 0;
	int i, odd = 0;

	out[0] = '\0';
	for (i = 0; i < after->n; i++) {
		const struct survey_cert *a = &after->v[i], *b;

		if (a->src != SURVEY_SERVED)
			continue;
		b = served_of(before, a->label);
		if (a->ok && b != NULL && strcmp(a->serial, b->serial) == 0)
			continue;
		odd++;
		if (!a->ok)
			snprintf(out + len, outsz - len,
			    "%snode %s cannot be read now: %.200s",
			    len ? "; " : "", a->label, a->error);
		else
			snprintf(out + len, outsz - len,
			    "%snode %s serves %s certificate (serial "
			    "%.16s...)",
			    len ? "; " : "", a->label,
			    strcmp(a->serial, a->want) == 0 ? "its NEW"
							    : "another",
			    a->serial);
		len = strlen(out);
	}
	return odd;
}

static void
explain_failure(const struct dbpki_cluster *c, const struct engine_opts *o,
    const struct survey *before, struct survey *after, struct dbpki_err *e)
{
	struct dbpki_err se;
	char why[DBPKI_ERR_MSG], now[1024];
	int code = e->code;
	size_t n;

	/* The engine's message may end a sentence already. */
	memcpy(why, e->msg, sizeof(why));
	n = strlen(why);
	while (n > 0 && why[n - 1] == '.')
		why[--n] = '\0';
	if (n == 0 || why[n - 1] != '?')
		util_fmt(why + n, sizeof(why) - n, ".");
	err_clear(&se);
	if (engine_survey(c, o->skip, o->n_skip, after, &se) != 0) {
		err_set(e, code,
		    "renew failed: %s And reading the nodes "
		    "afterwards failed too: %s",
		    why, se.msg);
		return;
	}
	if (compare_after(before, after, now, sizeof(now)) == 0)
		err_set(e, code,
		    "renew failed: %s Afterwards, read through libpq: every "
		    "database node serves the certificate it served before "
		    "the run. When a node kept its old certificate after the "
		    "reload, PostgreSQL refused the new files: its log says "
		    "why ('SSL configuration was not reloaded'). The store "
		    "keeps the new certificates, so renew stays due and "
		    "retries them once that is fixed",
		    why);
	else
		err_set(e, code,
		    "renew failed: %s Afterwards, read through libpq: %s; "
		    "check those nodes (dbpki status -c %s) before anything "
		    "else",
		    why, now, c->path);
}

static void
report_success(FILE *out, const struct dbpki_cluster *c,
    const struct engine_opts *o, struct survey *after, const char *apps)
{
	struct dbpki_err se;
	char first[320], text[1024];
	int ok;

	err_clear(&se);
	if (!(ok = engine_survey(c, o->skip, o->n_skip, after, &se) == 0))
		snprintf(first, sizeof(first), "unknown (%.200s)", se.msg);
	else
		earliest_text(after, first, sizeof(first));
	snprintf(text, sizeof(text),
	    "renewed: every database node serves its new certificate and "
	    "every replica streams; the earliest expiry is now %s%s",
	    first, apps);
	print_result(out, c, o->json, "renewed", text, ok ? after : NULL);
}

/* ---- application certificates (docs/revocation.md) ---------------------- */

/* One app certificate reissued: say so, where the new files went. */
static void
app_report(FILE *out, const struct dbpki_cluster *c,
    const struct engine_opts *o, const struct pki_app_rec *rec,
    const struct pki_entry *ent, int rewrote)
{
	char text[4 * CFG_PATH];

	if (rewrote)
		snprintf(text, sizeof(text),
		    "renewed application certificate %s: serial %s until "
		    "%s; rewrote %s (dbca.crt, client.crt, client.key 0600, "
		    "pg_service.conf)",
		    rec->role, ent->serial, ent->not_after, rec->dir);
	else
		snprintf(text, sizeof(text),
		    "renewed application certificate %s: serial %s until "
		    "%s; %s no longer exists: hand over %s/issued/%s.crt and "
		    "keys/%s.key yourself",
		    rec->role, ent->serial, ent->not_after, rec->dir,
		    c->state_dir, ent->serial, ent->serial);
	if (!o->json) {
		fprintf(out, "%s\n", text);
		return;
	}
	fprintf(out,
	    "{\"event\":\"renew-app\",\"role\":\"%s\",\"serial\":"
	    "\"%s\",\"not_after\":\"%s\",\"rewritten\":%s,\"dir\":",
	    rec->role, ent->serial, ent->not_after, rewrote ? "true" : "false");
	log_json_string(out, rec->dir);
	fprintf(out, ",\"msg\":");
	log_json_string(out, text);
	fprintf(out, "}\n");
}

static const struct pki_app_rec *
app_rec_of(const struct pki_app_rec *v, size_t n, const char *role)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].role, role) == 0)
			return &v[i];
	return NULL;
}

/* An app certificate renew leaves alone but that is due: into d->apps. */
static void
app_note(struct due *d, const struct pki_entry *ent, int64_t na, int64_t now)
{
	size_t len = strlen(d->apps);
	char day[32];

	day_of(na, day);
	snprintf(d->apps + len, sizeof(d->apps) - len, "%s%s %s (%lld days)",
	    len ? ", "
		: "; application certificates within renew_before "
		  "that renew does not reissue (issue-client "
		  "--renew-with-cluster): ",
	    ent->node, day, (long long)((na - now) / 86400));
}

/* App certificates are signed by dbca and trusted by every node already:
 * reissuing one needs no node, so it happens whether or not the cluster
 * itself is due.  Those recorded with --renew-with-cluster are reissued
 * when due (or forced); the others are only named in the result line. */
static int
renew_apps(FILE *out, const struct dbpki_cluster *c,
    const struct engine_opts *o, int64_t now, struct due *d,
    struct dbpki_err *e)
{
	struct pki_index idx = {0};
	struct pki_app_rec *recs = NULL;
	const struct pki_app_rec *rec;
	struct pki_entry ent;
	char prev[PKI_SERIAL_HEX];
	size_t nr = 0, i;
	int64_t na;
	int rc, rewrote;

	if ((rc = pki_index_load(c, &idx, e)) != 0 ||
	    (rc = pki_app_recs_load(c, &recs, &nr, e)) != 0)
		goto out;
	for (i = 0; i < idx.n && rc == 0; i++) {
		const struct pki_entry *x = &idx.v[i];

		if (x->status != PKI_ACTIVE || strcmp(x->kind, "app") != 0 ||
		    pki_iso8601_parse(x->not_after, &na) != 0)
			continue;
		rec = app_rec_of(recs, nr, x->node);
		if (!o->force && na - now > c->renew_before)
			continue;
		if (rec == NULL) {
			if (na - now <= c->renew_before)
				app_note(d, x, na, now);
			continue;
		}
		/* the index is rewritten by the reissue: x is our copy's */
		if ((rc = pki_app_reissue(c, rec, &ent, prev, &rewrote, e)) ==
		    0)
			app_report(out, c, o, rec, &ent, rewrote);
	}
out:
	free(recs);
	pki_index_free(&idx);
	return rc;
}

/* ---- the run ------------------------------------------------------------ */

static int
renew_due(FILE *out, const struct dbpki_cluster *c, const struct engine_opts *o,
    const struct due *d, struct survey *before, struct dbpki_err *e)
{
	struct engine_opts ro = *o;
	struct survey *after;
	int i, all, rc;

	if (o->force)
		log_info("%s: renewing because of --force", c->name);
	for (i = 0; i < d->n; i++)
		log_info("%s: due: %s", c->name, d->reasons[i]);
	/* Everything together when something expires (one renewal per
	 * period, expiries stay aligned); when nodes merely serve something
	 * else than the store, ship the store's certificates as they are. */
	all = o->force || d->expiry;
	ro.lock_held = 1;
	/* CMS cannot renew without re-forming the cluster: the playbook
	 * refuses at once, so reissuing every hour would only fill the
	 * store (docs/cms.md). */
	if (c->platform == PLATFORM_CMS)
		return engine_run(c, "renew", &ro, e);
	if ((rc = pki_issue_all(c, all, e)) != 0)
		return rc;
	rc = engine_run(c, "renew", &ro, e);
	if ((after = calloc(1, sizeof(*after))) == NULL)
		return rc != 0 ? rc
			       : err_set(e, DBPKI_E_NOMEM, "out of memory");
	if (rc == 0)
		report_success(out, c, o, after, d->apps);
	else
		explain_failure(c, o, before, after, e);
	free(after);
	return rc;
}

/* A renew killed half-way may have switched some nodes (or all of them,
 * before their reload) while every served certificate still looks fine:
 * finish it by shipping the store's certificates again, as for drift. */
static int
unfinished_renew(
    const struct dbpki_cluster *c, struct due *d, struct dbpki_err *e)
{
	char id[CFG_NAME], pb[CFG_NAME];
	int r = engine_journal_unfinished(c->state_dir, id, pb, e);

	if (r <= 0 || strcmp(pb, "renew") != 0)
		return r < 0 ? r : 0;
	log_warn("the previous renew (%s) did not finish: shipping the "
		 "store's certificates to every node again to complete it",
	    id);
	d->drift = 1;
	return 0;
}

/* A CRL near its nextUpdate is rebuilt here and shipped like drift: the
 * releases carry it (no leaf is reissued for it). */
static int
crl_due(const struct dbpki_cluster *c, struct due *d, struct dbpki_err *e)
{
	int refreshed = 0, r;

	if ((r = pki_crl_refresh(c, &refreshed, e)) != 0)
		return r;
	if (refreshed) {
		log_info("the CRL was due: rebuilt it; shipping it to every "
			 "database node");
		d->drift = 1;
	}
	return 0;
}

static int
renew_locked(FILE *out, const struct dbpki_cluster *c,
    const struct engine_opts *o, struct dbpki_err *e)
{
	struct survey *s = calloc(1, sizeof(*s));
	struct due d;
	int rc;

	if (s == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	if ((rc = engine_survey(c, o->skip, o->n_skip, s, e)) != 0)
		goto out;
	judge_all(c, s, &d);
	if (d.unreadable > 0) {
		rc = unreadable(&d, e);
		goto out;
	}
	if ((rc = unfinished_renew(c, &d, e)) < 0 ||
	    (rc = crl_due(c, &d, e)) != 0 ||
	    (rc = renew_apps(out, c, o, s->now, &d, e)) != 0)
		goto out;
	if (!o->force && !d.expiry && !d.drift) {
		rc = nothing_due(out, c, o, s, d.apps);
		goto out;
	}
	rc = renew_due(out, c, o, &d, s, e);
out:
	free(s);
	return rc;
}

int
engine_renew(const struct dbpki_cluster *c, const struct engine_opts *o,
    FILE *out, struct dbpki_err *e)
{
	struct engine_lock lock;
	int i, rc;

	for (i = 0; i < o->n_skip; i++)
		if (cfg_node_by_name(c, o->skip[i]) == NULL)
			return err_set(e, DBPKI_E_USAGE,
			    "--skip-node %.64s: no such node in %s", o->skip[i],
			    c->path);
	if (o->n_skip > 0 && cfg_primary(c) != NULL) {
		for (i = 0; i < o->n_skip; i++)
			if (strcmp(o->skip[i], cfg_primary(c)->name) == 0)
				return err_set(e, DBPKI_E_USAGE,
				    "the primary cannot be skipped");
	}
	warn_config(c);
	if ((rc = engine_store_lock(c, "renew", &lock, e)) != 0)
		return rc;
	rc = renew_locked(out, c, o, e);
	engine_lock_release(&lock);
	return rc;
}
