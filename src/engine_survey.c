/* engine_survey: every certificate that matters for expiry, in one table —
 * the store's CA chain and the leaves the inventory needs, and what each
 * database node actually serves.  renew decides from it whether anything
 * is due; check judges it against warn/crit.  Reads only. */
#include "dbpki/engine_int.h"
#include "dbpki/pg.h"
#include "dbpki/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>

/* An imported corporate chain, when there is one (docs/corporate-ca.md);
 * served certificates are then verified against it instead of dbca. */
#define SURVEY_TRUSTED "ca/trusted.pem"

struct peek_job {
	const struct dbpki_cluster *c;
	const struct cfg_node *nodes[CFG_MAX_NODES];
	X509 *cert[CFG_MAX_NODES];
	struct dbpki_err err[CFG_MAX_NODES];
};

static struct survey_cert *
survey_add(struct survey *s, enum survey_src src, const char *kind,
    const char *label, const struct cfg_node *n)
{
	struct survey_cert *sc;

	if (s->n >= (int)(sizeof(s->v) / sizeof(s->v[0])))
		return NULL;
	sc = &s->v[s->n++];
	memset(sc, 0, sizeof(*sc));
	sc->src = src;
	sc->kind = kind;
	sc->n = n;
	util_fmt(sc->label, sizeof(sc->label), "%s", label);
	return sc;
}

static void
survey_fill(struct survey_cert *sc, X509 *x)
{
	sc->ok = 1;
	pki_cert_serial_hex(x, sc->serial);
	sc->not_after = pki_cert_not_after(x);
}

/* Each certificate of a PEM bundle in the store as kind "ca". */
static int
survey_bundle(const struct dbpki_cluster *c, struct survey *s, const char *rel,
    const char *prefix, STACK_OF(X509) * *keep, struct dbpki_err *e)
{
	STACK_OF(X509) *sk = NULL;
	struct survey_cert *sc;
	char p[CFG_PATH], label[CFG_NAME];
	int i, r;

	if (pki_store_path(c, p, "%s", rel) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = pki_bundle_load(p, &sk, e)) != 0)
		return r;
	for (i = 0; i < sk_X509_num(sk); i++) {
		if (i == 0 && prefix[0] == '\0')
			label[0] = '\0';
		else
			util_fmt(label, sizeof(label), "%s%s%d", prefix,
			    prefix[0] ? "-" : "dbca-", i + 1);
		if ((sc = survey_add(s, SURVEY_STORE, "ca", label, NULL)) !=
		    NULL)
			survey_fill(sc, sk_X509_value(sk, i));
	}
	if (keep != NULL) {
		sk_X509_pop_free(*keep, X509_free);
		*keep = sk;
	} else
		sk_X509_pop_free(sk, X509_free);
	return 0;
}

/* The CA chain; *trust is what served certificates must verify against. */
static int
survey_ca(const struct dbpki_cluster *c, struct survey *s,
    STACK_OF(X509) * *trust, int64_t *ca_na, struct dbpki_err *e)
{
	char p[CFG_PATH], rel[64];
	struct stat st;
	X509 *ca = NULL;
	int i, r, rolling;

	/* Also the friendly "no CA; run: dbpki ca init" error, but for an
	 * import-only store (docs/corporate-ca.md): no dbca, the imported
	 * chain is the whole trust, and a leaf cannot outlive its CAs. */
	if ((r = pki_ca_load_cert(c, &ca, e)) == DBPKI_E_NOCA &&
	    pki_trust_imported(c)) {
		err_clear(e);
		if ((r = survey_bundle(
			 c, s, SURVEY_TRUSTED, "imported", trust, e)) != 0)
			return r;
		*ca_na = INT64_MAX;
		for (i = 0; i < sk_X509_num(*trust); i++)
			if (pki_cert_not_after(sk_X509_value(*trust, i)) <
			    *ca_na)
				*ca_na = pki_cert_not_after(
				    sk_X509_value(*trust, i));
		return 0;
	}
	if (r != 0)
		return r;
	*ca_na = pki_cert_not_after(ca);
	X509_free(ca);
	/* During a CA rollover the nodes trust its bundle, and a served
	 * certificate from the new CA is as good as one from the old. */
	if ((r = pki_rollover_trust_rel(c, rel, &rolling, e)) != 0 ||
	    (r = survey_bundle(c, s, rel, "", trust, e)) != 0)
		return r;
	if (pki_store_path(c, p, SURVEY_TRUSTED) != 0 || lstat(p, &st) != 0)
		return 0;
	return survey_bundle(c, s, SURVEY_TRUSTED, "imported", trust, e);
}

/* The store's current leaf of kind/node, read from issued/<serial>.crt. */
static void
survey_leaf(const struct dbpki_cluster *c, struct survey *s,
    struct pki_index *idx, const char *kind, const char *node,
    const struct cfg_node *n, int64_t ca_na)
{
	struct pki_entry *ent = pki_index_active(idx, kind, node);
	struct survey_cert *sc;
	struct dbpki_err e;
	char p[CFG_PATH];
	X509 *x = NULL;

	sc = survey_add(s, SURVEY_STORE, kind,
	    n != NULL ? n->name : (strcmp(node, "*") == 0 ? "shared" : ""), n);
	if (sc == NULL)
		return;
	err_clear(&e);
	if (ent == NULL) {
		util_fmt(sc->error, sizeof(sc->error),
		    "no %s certificate%s%s in the store; run: dbpki issue -c "
		    "%.200s",
		    kind, n != NULL ? " for node " : "",
		    n != NULL ? n->name : "", c->path);
		return;
	}
	if (pki_store_path(c, p, "issued/%s.crt", ent->serial) != 0 ||
	    pki_cert_load_pem(p, &x, &e) != 0) {
		util_fmt(sc->error, sizeof(sc->error), "%.390s",
		    e.code ? e.msg : "state_dir too long");
		return;
	}
	survey_fill(sc, x);
	sc->renewable = sc->not_after < ca_na;
	X509_free(x);
}

/* The CRL expires too, and an expired one makes PostgreSQL refuse every
 * client certificate, replication included: watch its nextUpdate.  Never
 * "renewable": renew refreshes it on its own (pki_crl_refresh). */
static void
survey_crl(const struct dbpki_cluster *c, struct survey *s)
{
	struct survey_cert *sc;
	struct dbpki_err e;
	int64_t t = 0;

	err_clear(&e);
	if (pki_crl_next_update(c, &t, &e) != 0) {
		if ((sc = survey_add(s, SURVEY_STORE, "crl", "", NULL)) != NULL)
			util_fmt(sc->error, sizeof(sc->error), "%.390s", e.msg);
		return;
	}
	if (t == 0 ||
	    (sc = survey_add(s, SURVEY_STORE, "crl", "", NULL)) == NULL)
		return;
	sc->ok = 1;
	sc->not_after = t;
}

static int
survey_store(const struct dbpki_cluster *c, struct survey *s, int64_t ca_na,
    struct dbpki_err *e)
{
	struct pki_index idx = {0};
	int i, r;

	if ((r = pki_index_load(c, &idx, e)) != 0)
		return r;
	if (c->server_mode == SERVER_SHARED)
		survey_leaf(c, s, &idx, "server", "*", NULL, ca_na);
	else
		for (i = 0; i < c->n_nodes; i++)
			if (cfg_is_database(&c->nodes[i]))
				survey_leaf(c, s, &idx, "server",
				    c->nodes[i].name, &c->nodes[i], ca_na);
	survey_leaf(c, s, &idx, "client", "-", NULL, ca_na);
	survey_crl(c, s);
	pki_index_free(&idx);
	return 0;
}

static void
peek_one(int i, void *arg)
{
	struct peek_job *j = arg;
	const struct cfg_node *n = j->nodes[i];
	struct pg_target t;

	memset(&t, 0, sizeof(t));
	t.host = n->host;
	t.hostaddr = n->address;
	t.port = n->pg.port;
	t.connect_timeout_s = (int)n->ssh.connect_timeout;
	err_clear(&j->err[i]);
	pg_peek_cert(&t, &j->cert[i], &j->err[i]);
	/* OpenSSL keeps a per-thread error queue; leave nothing behind. */
	ERR_clear_error();
}

static int
is_skipped(const char *name, const char *const *skip, int n_skip)
{
	int i;

	for (i = 0; i < n_skip; i++)
		if (strcmp(skip[i], name) == 0)
			return 1;
	return 0;
}

/* The store's current serial for what node n serves, or "". */
static const char *
store_serial_for(const struct survey *s, const struct cfg_node *n, int shared)
{
	int i;

	for (i = 0; i < s->n; i++) {
		const struct survey_cert *sc = &s->v[i];

		if (sc->src != SURVEY_STORE ||
		    strcmp(sc->kind, "server") != 0 || !sc->ok)
			continue;
		if (shared || sc->n == n)
			return sc->serial;
	}
	return "";
}

/* Judge one served certificate: does it verify for the node's name
 * against the trust anchor, and is it the store's current one? */
static void
served_judge(const struct dbpki_cluster *c, struct survey_cert *sc, X509 *x,
    STACK_OF(X509) * trust, const struct survey *s)
{
	struct dbpki_err e;

	survey_fill(sc, x);
	err_clear(&e);
	if (pki_verify(x, trust, PKI_PURPOSE_SERVER, sc->n->host, 0, &e) != 0)
		util_fmt(sc->untrusted, sizeof(sc->untrusted), "%.150s", e.msg);
	util_fmt(sc->want, sizeof(sc->want), "%s",
	    store_serial_for(s, sc->n, c->server_mode == SERVER_SHARED));
	sc->drift = strcmp(sc->want, sc->serial) != 0;
	ERR_clear_error();
}

static int
survey_served(const struct dbpki_cluster *c, const char *const *skip,
    int n_skip, STACK_OF(X509) * trust, struct survey *s, struct dbpki_err *e)
{
	struct peek_job *j = calloc(1, sizeof(*j));
	struct survey_cert *sc;
	int i, k = 0, r;

	if (j == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	j->c = c;
	for (i = 0; i < c->n_nodes; i++)
		if (cfg_is_database(&c->nodes[i]) &&
		    !is_skipped(c->nodes[i].name, skip, n_skip))
			j->nodes[k++] = &c->nodes[i];
	if ((r = engine_pool_run(k, c->parallel, peek_one, j, e)) != 0)
		goto out;
	s->n_nodes = k;
	for (i = 0; i < k; i++) {
		sc = survey_add(
		    s, SURVEY_SERVED, "server", j->nodes[i]->name, j->nodes[i]);
		if (sc == NULL)
			continue;
		if (j->cert[i] == NULL) {
			util_fmt(sc->error, sizeof(sc->error), "%.390s",
			    j->err[i].msg);
			continue;
		}
		served_judge(c, sc, j->cert[i], trust, s);
		s->n_nodes_read++;
	}
out:
	for (i = 0; i < k; i++)
		X509_free(j->cert[i]);
	free(j);
	return r;
}

int
engine_survey(const struct dbpki_cluster *c, const char *const *skip,
    int n_skip, struct survey *s, struct dbpki_err *e)
{
	STACK_OF(X509) *trust = NULL;
	int64_t ca_na = 0;
	int i, r;

	memset(s, 0, sizeof(*s));
	s->now = util_now();
	if ((r = survey_ca(c, s, &trust, &ca_na, e)) == 0 &&
	    (r = survey_store(c, s, ca_na, e)) == 0)
		r = survey_served(c, skip, n_skip, trust, s, e);
	sk_X509_pop_free(trust, X509_free);
	/* A leaf served by a node is renewable like the store's, unless the
	 * CA caps it (it cannot get longer by being reissued). */
	for (i = 0; i < s->n; i++)
		if (s->v[i].src == SURVEY_SERVED && s->v[i].ok)
			s->v[i].renewable = s->v[i].not_after < ca_na;
	return r;
}

void
engine_survey_describe(const struct survey_cert *sc, char *out, size_t outsz)
{
	if (strcmp(sc->kind, "ca") == 0)
		snprintf(out, outsz, "the %sCA certificate%s%s",
		    strncmp(sc->label, "imported", 8) == 0 ? "imported " : "",
		    sc->label[0] ? " " : "", sc->label);
	else if (strcmp(sc->kind, "client") == 0)
		snprintf(out, outsz, "the client certificate");
	else if (sc->src == SURVEY_SERVED)
		snprintf(out, outsz, "%s's server certificate", sc->label);
	else if (sc->n == NULL)
		snprintf(out, outsz,
		    "the shared server certificate in the "
		    "store");
	else
		snprintf(out, outsz, "%s's server certificate in the store",
		    sc->label);
}

void
engine_duration(int64_t secs, char *out, size_t outsz)
{
	static const struct {
		int64_t unit;
		char c;
	} units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
	size_t i;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (secs % units[i].unit == 0 || units[i].unit == 1) {
			snprintf(out, outsz, "%lld%c",
			    (long long)(secs / units[i].unit), units[i].c);
			return;
		}
}
