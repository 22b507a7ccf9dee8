/* pki_list: every certificate the store ever issued, filtered, as a table
 * or as JSON (docs/revocation.md).  Reads only. */
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <stdlib.h>
#include <string.h>

struct row {
	const struct pki_entry *ent;
	int64_t not_after;
	const struct pki_revoked *rv; /* revoked: when and why, if known */
	int renew; /* app: issue-client --renew-with-cluster (app-renew.tsv) */
};

/* Whole days, rounded towards minus infinity: an hour past expiry is -1. */
static long long
days_left(int64_t not_after, int64_t now)
{
	int64_t d = not_after - now;

	return (long long)(d >= 0 ? d / 86400 : -((-d + 86399) / 86400));
}

static int
keep(const struct pki_entry *ent, int64_t na, const struct pki_list_filter *f,
    int64_t now)
{
	if (f->status >= 0 && (int)ent->status != f->status)
		return 0;
	if (f->node != NULL && strcmp(ent->node, f->node) != 0)
		return 0;
	if (f->kind != NULL && strcmp(ent->kind, f->kind) != 0)
		return 0;
	/* Already expired counts as expiring: combine with --status active
	 * to see what needs attention. */
	return f->expiring <= 0 || na < now + f->expiring;
}

static void
print_text(FILE *out, const struct row *v, size_t n, int64_t now)
{
	char days[24];
	size_t i;

	fprintf(out, "%-40s  %-10s  %-6s  %-16s  %-20s  %6s  %s\n", "SERIAL",
	    "STATUS", "KIND", "NODE", "NOT AFTER", "DAYS", "SUBJECT");
	for (i = 0; i < n; i++) {
		const struct pki_entry *ent = v[i].ent;

		snprintf(
		    days, sizeof(days), "%lld", days_left(v[i].not_after, now));
		/* %-16s pads, never cuts: a long node name shifts the line. */
		fprintf(out, "%-40s  %-10s  %-6s  %-16s  %-20s  %6s  %s",
		    ent->serial, pki_status_name(ent->status), ent->kind,
		    ent->node, ent->not_after, days, ent->subject);
		if (v[i].rv != NULL &&
		    v[i].rv->reason != PKI_REASON_UNSPECIFIED)
			fprintf(out, "  (%s)",
			    pki_crl_reason_name(v[i].rv->reason));
		if (v[i].renew)
			fprintf(out, "  [renew-with-cluster]");
		fputc('\n', out);
	}
}

static void
json_field(FILE *out, const char *key, const char *val, int first)
{
	fprintf(out, "%s\"%s\":", first ? "" : ",", key);
	log_json_string(out, val);
}

static void
print_json(FILE *out, const struct row *v, size_t n, int64_t now)
{
	char when[32];
	size_t i;

	fputs("[\n", out);
	for (i = 0; i < n; i++) {
		const struct pki_entry *ent = v[i].ent;

		fputc('{', out);
		json_field(out, "serial", ent->serial, 1);
		json_field(out, "status", pki_status_name(ent->status), 0);
		json_field(out, "kind", ent->kind, 0);
		json_field(out, "node", ent->node, 0);
		json_field(out, "subject", ent->subject, 0);
		json_field(out, "key", ent->key, 0);
		json_field(out, "not_before", ent->not_before, 0);
		json_field(out, "not_after", ent->not_after, 0);
		fprintf(
		    out, ",\"days_left\":%lld", days_left(v[i].not_after, now));
		if (strcmp(ent->kind, "app") == 0)
			fprintf(out, ",\"renew_with_cluster\":%s",
			    v[i].renew ? "true" : "false");
		if (v[i].rv != NULL) {
			util_iso8601(v[i].rv->when, when);
			json_field(out, "revoked_at", when, 0);
			json_field(out, "reason",
			    pki_crl_reason_name(v[i].rv->reason), 0);
		}
		fprintf(out, "}%s\n", i + 1 < n ? "," : "");
	}
	fputs("]\n", out);
}

/* Is the active app certificate of role recorded for renew? */
static int
renewed(const struct pki_entry *ent, const struct pki_app_rec *recs, size_t nr)
{
	size_t k;

	if (ent->status != PKI_ACTIVE || strcmp(ent->kind, "app") != 0)
		return 0;
	for (k = 0; k < nr; k++)
		if (strcmp(recs[k].role, ent->node) == 0)
			return 1;
	return 0;
}

static const struct pki_revoked *
details(const struct pki_revoked *det, size_t nd, const char *serial)
{
	size_t k;

	for (k = 0; k < nd; k++)
		if (strcmp(det[k].serial, serial) == 0)
			return &det[k];
	return NULL;
}

int
pki_list_print(const struct dbpki_cluster *c, const struct pki_list_filter *f,
    int json, FILE *out, size_t *n_out, struct dbpki_err *e)
{
	struct pki_index idx = {0};
	struct pki_revoked *det = NULL;
	struct pki_app_rec *recs = NULL;
	struct row *v = NULL;
	int64_t now = util_now(), na;
	size_t nd = 0, n = 0, nr = 0, i;
	int r;

	*n_out = 0;
	if ((r = pki_index_load(c, &idx, e)) != 0 ||
	    (r = pki_revoked_load(c, &det, &nd, e)) != 0 ||
	    (r = pki_app_recs_load(c, &recs, &nr, e)) != 0)
		goto out;
	if ((v = calloc(idx.n + 1, sizeof(*v))) == NULL) {
		r = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < idx.n; i++) {
		if (pki_iso8601_parse(idx.v[i].not_after, &na) != 0) {
			r = err_set(e, DBPKI_E_CONFIG,
			    "%s/index.tsv: serial %s: "
			    "not_after '%.32s' is not an ISO 8601 UTC time",
			    c->state_dir, idx.v[i].serial, idx.v[i].not_after);
			goto out;
		}
		if (!keep(&idx.v[i], na, f, now))
			continue;
		v[n].ent = &idx.v[i];
		v[n].not_after = na;
		v[n].renew = renewed(&idx.v[i], recs, nr);
		if (idx.v[i].status == PKI_REVOKED)
			v[n].rv = details(det, nd, idx.v[i].serial);
		n++;
	}
	if (json)
		print_json(out, v, n, now);
	else
		print_text(out, v, n, now);
	*n_out = n;
out:
	free(v);
	free(det);
	free(recs);
	pki_index_free(&idx);
	return r;
}
