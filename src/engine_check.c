/* engine_check: a monitoring plugin (Nagios/Icinga conventions) over the
 * survey of every certificate: the store's CA and leaves and what each
 * database node serves.  One status line with perfdata, or one JSON
 * object, and optionally a node_exporter textfile.
 *
 * Choices (docs/monitoring.md): a database node whose certificate cannot
 * be read is CRITICAL, not UNKNOWN — the plugin worked, the service is
 * what failed, and UNKNOWN is often not alerted on.  A served certificate
 * that does not verify against the CA is CRITICAL; one that verifies but
 * is not the store's current certificate (a renew that did not finish) is
 * a WARNING; so is a leaf the inventory needs but the store lacks.
 */
#include "dbpki/engine_int.h"
#include "dbpki/log.h"
#include "dbpki/util.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK_PROBLEMS_SHOWN 3
#define CHECK_MSG            512

static const char *const status_names[] = {
    "OK", "WARNING", "CRITICAL", "UNKNOWN"};

struct verdict {
	enum check_status st;
	int drift; /* the only problem: not the store's current certificate */
	char msg[CHECK_MSG];
};

struct check_run {
	const struct dbpki_cluster *c;
	const struct check_opts *o;
	struct survey *s;
	struct verdict v[sizeof(((struct survey *)0)->v) /
			 sizeof(((struct survey *)0)->v[0])];
	enum check_status st;
	char extra[CHECK_MSG]; /* a failure outside the survey */
};

/* "node2 server", "node2 server (store)", "client", "ca". */
static void
short_name(const struct survey_cert *sc, char *out, size_t outsz)
{
	if (strcmp(sc->kind, "ca") == 0)
		snprintf(
		    out, outsz, "%s%sca", sc->label, sc->label[0] ? " " : "");
	else if (strcmp(sc->kind, "client") == 0)
		snprintf(out, outsz, "client");
	else if (strcmp(sc->kind, "crl") == 0)
		snprintf(out, outsz, "crl");
	else
		snprintf(out, outsz, "%s server%s", sc->label,
		    sc->src == SURVEY_STORE ? " (store)" : "");
}

/* Whole days, towards zero: an hour-old expiry reads 0d, not -1d; the
 * status already says EXPIRED. */
static long long
days_floor(int64_t secs)
{
	return (long long)(secs / 86400);
}

/* '|' would end the status text and start the perfdata. */
static void
no_pipes(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '|')
			*s = '/';
}

static void
judge_expiry(
    const struct check_run *r, const struct survey_cert *sc, struct verdict *v)
{
	int64_t left = sc->not_after - r->s->now;
	char name[96], day[32];

	short_name(sc, name, sizeof(name));
	util_iso8601(sc->not_after, day);
	if (left <= 0)
		v->st = CHECK_CRITICAL;
	else if (left < r->o->crit)
		v->st = CHECK_CRITICAL;
	else if (left < r->o->warn)
		v->st = CHECK_WARNING;
	else
		return;
	if (left <= 0)
		snprintf(v->msg, sizeof(v->msg), "%s EXPIRED on %s", name, day);
	else
		snprintf(v->msg, sizeof(v->msg), "%s expires in %lldd (%s)",
		    name, days_floor(left), day);
}

static void
judge_cert(
    const struct check_run *r, const struct survey_cert *sc, struct verdict *v)
{
	char name[96];

	memset(v, 0, sizeof(*v));
	short_name(sc, name, sizeof(name));
	if (!sc->ok) {
		v->st =
		    sc->src == SURVEY_SERVED ? CHECK_CRITICAL : CHECK_WARNING;
		if (sc->src == SURVEY_SERVED)
			snprintf(v->msg, sizeof(v->msg),
			    "%s: cannot read its certificate: %.440s",
			    sc->label, sc->error);
		else
			snprintf(v->msg, sizeof(v->msg), "%.500s", sc->error);
		return;
	}
	judge_expiry(r, sc, v);
	if (v->st == CHECK_OK && sc->src == SURVEY_SERVED &&
	    sc->untrusted[0] != '\0') {
		v->st = CHECK_CRITICAL;
		snprintf(v->msg, sizeof(v->msg), "%s does not verify: %.160s",
		    name, sc->untrusted);
	}
	if (v->st == CHECK_OK && sc->src == SURVEY_SERVED && sc->drift) {
		v->st = CHECK_WARNING;
		v->drift = 1;
		snprintf(v->msg, sizeof(v->msg),
		    "%s serves another certificate than the store's current "
		    "one (run: dbpki renew)",
		    sc->label);
	}
}

static const struct survey_cert *
check_earliest(const struct survey *s)
{
	const struct survey_cert *best = NULL;
	int i;

	/* served wins a tie: it is what clients see */
	for (i = 0; i < s->n; i++)
		if (s->v[i].ok &&
		    (best == NULL || s->v[i].not_after < best->not_after ||
			(s->v[i].not_after == best->not_after &&
			    s->v[i].src == SURVEY_SERVED)))
			best = &s->v[i];
	return best;
}

/* ---- the status line ---------------------------------------------------- */

static void
perf_label(const struct survey_cert *sc, char *out, size_t outsz)
{
	if (sc->src == SURVEY_SERVED)
		snprintf(out, outsz, "%s_server_days", sc->label);
	else if (strcmp(sc->kind, "ca") == 0)
		snprintf(out, outsz, "%s%sca_days", sc->label,
		    sc->label[0] ? "_" : "");
	else if (strcmp(sc->kind, "client") == 0)
		snprintf(out, outsz, "store_client_days");
	else if (strcmp(sc->kind, "crl") == 0)
		snprintf(out, outsz, "crl_days");
	else
		snprintf(out, outsz, "store_%s_server_days", sc->label);
}

static void
print_perfdata(FILE *out, const struct check_run *r)
{
	char label[CFG_NAME + 32];
	int pass, i;

	/* Served first: that is what clients see. */
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < r->s->n; i++) {
			const struct survey_cert *sc = &r->s->v[i];

			if ((sc->src == SURVEY_SERVED) != (pass == 0))
				continue;
			perf_label(sc, label, sizeof(label));
			fprintf(out, " %s=", label);
			if (sc->ok)
				fprintf(out, "%lld",
				    days_floor(sc->not_after - r->s->now));
			else
				fputc('U', out);
			fprintf(out, ";%g;%g", (double)r->o->warn / 86400,
			    (double)r->o->crit / 86400);
		}
}

/* Nodes that serve another certificate than the store's, as one clause
 * (after a failed renew that is every database node). */
static void
drift_text(const struct check_run *r, char *out, size_t outsz)
{
	size_t len = 0;
	int i, n = 0;

	out[0] = '\0';
	for (i = 0; i < r->s->n; i++) {
		if (!r->v[i].drift)
			continue;
		snprintf(out + len, outsz - len, "%s%s", n++ ? ", " : "",
		    r->s->v[i].label);
		len = strlen(out);
	}
	if (n > 0)
		snprintf(out + len, outsz - len,
		    " serve%s another certificate than the store's current "
		    "one (a renew did not finish; run: dbpki renew)",
		    n == 1 ? "s" : "");
}

/* The problems, worst first, at most CHECK_PROBLEMS_SHOWN of them. */
static void
problems_text(const struct check_run *r, char *out, size_t outsz)
{
	char drift[CHECK_MSG * 2];
	size_t len = 0;
	int st, i, k, shown = 0, more = 0;

	out[0] = '\0';
	if (r->extra[0] != '\0') {
		snprintf(out, outsz, "%s", r->extra);
		len = strlen(out);
		shown++;
	}
	drift_text(r, drift, sizeof(drift));
	/* Worst first; within a status, what clients see (served) first. */
	for (k = 0; k < 4; k++)
		for (i = 0; i < r->s->n; i++) {
			st = k < 2 ? CHECK_CRITICAL : CHECK_WARNING;
			if ((int)r->v[i].st != st || r->v[i].drift ||
			    (r->s->v[i].src == SURVEY_SERVED) != (k % 2 == 0))
				continue;
			if (shown >= CHECK_PROBLEMS_SHOWN) {
				more++;
				continue;
			}
			snprintf(out + len, outsz - len, "%s%s",
			    len ? "; " : "", r->v[i].msg);
			len = strlen(out);
			shown++;
		}
	if (drift[0] != '\0' && shown < CHECK_PROBLEMS_SHOWN) {
		snprintf(
		    out + len, outsz - len, "%s%s", len ? "; " : "", drift);
		len = strlen(out);
	} else if (drift[0] != '\0')
		more++;
	if (more > 0)
		snprintf(out + len, outsz - len, "; and %d more", more);
}

static void
print_line(FILE *out, const struct check_run *r)
{
	const struct survey_cert *first = check_earliest(r->s);
	char text[1200], name[96] = "none";
	long long days = 0;

	if (first != NULL) {
		short_name(first, name, sizeof(name));
		days = days_floor(first->not_after - r->s->now);
	}
	if (r->st == CHECK_OK)
		snprintf(text, sizeof(text),
		    "%d nodes, %d certificates, earliest expiry %s in %lldd",
		    r->c->n_nodes, r->s->n, name, days);
	else {
		problems_text(r, text, sizeof(text) - 200);
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
		    " (%d nodes, %d certificates, earliest expiry %s in %lldd)",
		    r->c->n_nodes, r->s->n, name, days);
	}
	no_pipes(text);
	fprintf(out, "DBPKI %s - %s |", status_names[r->st], text);
	print_perfdata(out, r);
	fputc('\n', out);
}

/* ---- JSON --------------------------------------------------------------- */

static void
json_cert(FILE *out, const struct check_run *r, int i)
{
	const struct survey_cert *sc = &r->s->v[i];
	char day[32];

	fprintf(out, "%s{\"node\":", i ? "," : "");
	log_json_string(out, sc->label);
	fprintf(out, ",\"kind\":\"%s\",\"source\":\"%s\",\"read\":%s", sc->kind,
	    sc->src == SURVEY_SERVED ? "served" : "store",
	    sc->ok ? "true" : "false");
	if (sc->ok) {
		util_iso8601(sc->not_after, day);
		fprintf(out,
		    ",\"serial\":\"%s\",\"not_after\":%lld,"
		    "\"not_after_iso\":\"%s\",\"seconds_left\":%lld,"
		    "\"days_left\":%lld",
		    sc->serial, (long long)sc->not_after, day,
		    (long long)(sc->not_after - r->s->now),
		    days_floor(sc->not_after - r->s->now));
	}
	if (sc->src == SURVEY_SERVED && sc->ok)
		fprintf(out, ",\"trusted\":%s,\"store_current\":%s",
		    sc->untrusted[0] ? "false" : "true",
		    sc->drift ? "false" : "true");
	fprintf(
	    out, ",\"status\":\"%s\",\"message\":", status_names[r->v[i].st]);
	log_json_string(out, r->v[i].msg);
	fputc('}', out);
}

static void
print_json(FILE *out, const struct check_run *r)
{
	char text[1200];
	int i;

	problems_text(r, text, sizeof(text));
	fprintf(out, "{\"cluster\":");
	log_json_string(out, r->c->name);
	fprintf(out,
	    ",\"status\":\"%s\",\"exit_code\":%d,\"checked_at\":%lld,"
	    "\"warn_seconds\":%lld,\"crit_seconds\":%lld,\"nodes\":%d,"
	    "\"problems\":",
	    status_names[r->st], (int)r->st, (long long)r->s->now,
	    (long long)r->o->warn, (long long)r->o->crit, r->c->n_nodes);
	log_json_string(out, text);
	fprintf(out, ",\"certificates\":[");
	for (i = 0; i < r->s->n; i++)
		json_cert(out, r, i);
	fprintf(out, "]}\n");
}

/* ---- Prometheus textfile ------------------------------------------------ */

/* A label value: backslash, double quote and newline escaped. */
static void
prom_value(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void
prom_head(FILE *f, const char *name, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void
prom_cert_metric(
    FILE *f, const struct check_run *r, const char *name, int timestamp)
{
	int i;

	for (i = 0; i < r->s->n; i++) {
		const struct survey_cert *sc = &r->s->v[i];

		if (!sc->ok)
			continue;
		fprintf(f, "%s{cluster=", name);
		prom_value(f, r->c->name);
		fprintf(f, ",node=");
		prom_value(f, sc->label);
		fprintf(f, ",kind=\"%s\",source=\"%s\"} %lld\n", sc->kind,
		    sc->src == SURVEY_SERVED ? "served" : "store",
		    (long long)(timestamp ? sc->not_after
					  : sc->not_after - r->s->now));
	}
}

static void
prom_run_metrics(FILE *f, const char *cluster, int success,
    enum check_status st, int64_t now)
{
	static const char *const names[][2] = {
	    {"dbpki_check_success",
		"1 if the check read the store and every database node's "
		"certificate, else 0."},
	    {"dbpki_check_status",
		"Result of the check as a Nagios status: 0 OK, 1 WARNING, 2 "
		"CRITICAL, 3 UNKNOWN."},
	    {"dbpki_check_timestamp_seconds",
		"When the check ran, in seconds since the epoch."},
	};
	long long vals[] = {success, (long long)st, (long long)now};
	size_t i;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		prom_head(f, names[i][0], names[i][1]);
		fprintf(f, "%s", names[i][0]);
		if (cluster != NULL) {
			fprintf(f, "{cluster=");
			prom_value(f, cluster);
			fputc('}', f);
		}
		fprintf(f, " %lld\n", vals[i]);
	}
}

static void
prom_text(FILE *f, const struct check_run *r, int success)
{
	prom_head(f, "dbpki_certificate_expiry_seconds",
	    "Seconds from the check until the certificate's notAfter "
	    "(negative once expired).");
	prom_cert_metric(f, r, "dbpki_certificate_expiry_seconds", 0);
	prom_head(f, "dbpki_certificate_not_after_timestamp_seconds",
	    "The certificate's notAfter, in seconds since the epoch.");
	prom_cert_metric(
	    f, r, "dbpki_certificate_not_after_timestamp_seconds", 1);
	prom_run_metrics(f, r->c->name, success, r->st, r->s->now);
}

/* The directory part of path ("." or "/" when it has none). */
static int
prom_split(const char *path, char *dir, size_t dirsz, const char **base)
{
	const char *slash = strrchr(path, '/');

	*base = slash != NULL ? slash + 1 : path;
	if (slash == NULL)
		return util_fmt(dir, dirsz, ".");
	if (slash == path)
		return util_fmt(dir, dirsz, "/");
	return util_fmt(dir, dirsz, "%.*s", (int)(slash - path), path);
}

/* --prometheus names a file on the command line of whoever runs check (a
 * monitoring user, once under a sudo wildcard: any file as root).  So it
 * writes only a *.prom file, the only kind node_exporter's textfile
 * collector reads, into an existing directory, never through a symlink:
 * the directory is opened with O_NOFOLLOW and util_write_at() writes in
 * it (its ".name.prom.<random>.tmp" temporary is a name the collector
 * ignores; the rename replaces a symlink rather than following it); a
 * symlink or non-file already there is refused. */
static int
prom_write_file(
    const char *path, const char *buf, size_t len, struct dbpki_err *e)
{
	char dir[PATH_MAX];
	const char *base;
	struct stat st;
	size_t n;
	int dfd, r;

	if (prom_split(path, dir, sizeof(dir), &base) != 0)
		return err_set(
		    e, DBPKI_E_CONFIG, "--prometheus: path too long");
	n = strlen(base);
	if (n <= 5 || strcmp(base + n - 5, ".prom") != 0 || base[0] == '.' ||
	    n > NAME_MAX - 30)
		return err_set(e, DBPKI_E_CONFIG,
		    "--prometheus %.300s: must name a NAME.prom file (the "
		    "textfile collector reads only *.prom)",
		    path);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd == -1)
		return err_sys(e,
		    "--prometheus %.300s: directory %.300s must exist and not "
		    "be a symbolic link",
		    path, dir);
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    !S_ISREG(st.st_mode)) {
		close(dfd);
		return err_set(e, DBPKI_E_CONFIG,
		    "--prometheus %.300s: exists and is a symbolic link or "
		    "not a regular file; remove it",
		    path);
	}
	/* 0644: the node_exporter user must read it. */
	r = util_write_at(dfd, base, buf, len, 0644, 0, path, e);
	close(dfd);
	return r;
}

/* Render with fn into memory, then write it with prom_write_file(). */
static int
prom_write(const char *path, void (*fn)(FILE *, const void *), const void *arg,
    struct dbpki_err *e)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return err_sys(e, "cannot render %s", path);
	fn(f, arg);
	if (fclose(f) != 0) {
		free(buf);
		return err_sys(e, "cannot render %s", path);
	}
	r = prom_write_file(path, buf, len, e);
	free(buf);
	return r;
}

struct prom_arg {
	const struct check_run *r;
	int success;
};

static void
prom_fn(FILE *f, const void *arg)
{
	const struct prom_arg *a = arg;

	prom_text(f, a->r, a->success);
}

/* ---- the check ---------------------------------------------------------- */

static enum check_status
finish(struct check_run *r, FILE *out)
{
	struct prom_arg pa;
	struct dbpki_err e;
	char kw[CHECK_MSG];
	size_t len;
	int i;

	if (r->o->warning != NULL) {
		r->st = CHECK_WARNING;
		snprintf(r->extra, sizeof(r->extra), "%.500s", r->o->warning);
	}
	/* A CA key in clear or under a weak KDF: an upgrade's WARNING with
	 * the command that fixes it (dbpki ca passwd), never a failure. */
	if (pki_ca_key_warning(r->c, kw, sizeof(kw))) {
		r->st = CHECK_WARNING;
		len = strlen(r->extra);
		snprintf(r->extra + len, sizeof(r->extra) - len, "%s%s",
		    len ? "; " : "", kw);
	}
	for (i = 0; i < r->s->n; i++) {
		judge_cert(r, &r->s->v[i], &r->v[i]);
		if (r->v[i].st > r->st)
			r->st = r->v[i].st;
	}
	pa.r = r;
	pa.success = r->s->n_nodes_read == r->s->n_nodes;
	for (i = 0; i < r->s->n; i++)
		if (r->s->v[i].src == SURVEY_STORE && !r->s->v[i].ok)
			pa.success = 0;
	err_clear(&e);
	if (r->o->prometheus != NULL &&
	    prom_write(r->o->prometheus, prom_fn, &pa, &e) != 0) {
		r->st = CHECK_UNKNOWN;
		len = strlen(r->extra);
		snprintf(r->extra + len, sizeof(r->extra) - len, "%s%.300s",
		    len ? "; " : "", e.msg);
	}
	if (r->o->json)
		print_json(out, r);
	else
		print_line(out, r);
	fflush(out);
	return r->st;
}

enum check_status
engine_check(
    const struct dbpki_cluster *c, const struct check_opts *o, FILE *out)
{
	struct check_run *r = calloc(1, sizeof(*r));
	struct dbpki_err e;
	enum check_status st;
	char why[DBPKI_ERR_MSG + 64];

	if (r == NULL || (r->s = calloc(1, sizeof(*r->s))) == NULL) {
		free(r);
		return engine_check_unknown(o, c->name, "out of memory", out);
	}
	r->c = c;
	r->o = o;
	err_clear(&e);
	if (engine_survey(c, NULL, 0, r->s, &e) != 0) {
		snprintf(why, sizeof(why), "cannot read the store: %.*s%s%.*s",
		    DBPKI_ERR_MSG / 2, e.msg, o->warning ? "; and " : "",
		    DBPKI_ERR_MSG / 2, o->warning ? o->warning : "");
		st = engine_check_unknown(o, c->name, why, out);
	} else
		st = finish(r, out);
	free(r->s);
	free(r);
	return st;
}

struct unknown_arg {
	const char *cluster;
};

static void
unknown_fn(FILE *f, const void *arg)
{
	const struct unknown_arg *a = arg;

	prom_run_metrics(f, a->cluster, 0, CHECK_UNKNOWN, util_now());
}

enum check_status
engine_check_unknown(
    const struct check_opts *o, const char *cluster, const char *why, FILE *out)
{
	struct unknown_arg ua = {cluster};
	struct dbpki_err e;
	char text[2 * DBPKI_ERR_MSG + 128];

	snprintf(text, sizeof(text), "%.*s", DBPKI_ERR_MSG + 64, why);
	err_clear(&e);
	if (o->prometheus != NULL &&
	    prom_write(o->prometheus, unknown_fn, &ua, &e) != 0)
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
		    "; and %s", e.msg);
	no_pipes(text);
	if (o->json) {
		fprintf(out, "{\"cluster\":");
		log_json_string(out, cluster != NULL ? cluster : "");
		fprintf(out, ",\"status\":\"UNKNOWN\",\"exit_code\":3,"
			     "\"problems\":");
		log_json_string(out, text);
		fprintf(out, ",\"certificates\":[]}\n");
	} else
		fprintf(out, "DBPKI UNKNOWN - %s\n", text);
	fflush(out);
	return CHECK_UNKNOWN;
}
