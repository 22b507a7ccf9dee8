/* pki_issue: decide which leaf certificates the inventory needs, keep the
 * ones still good, reissue the rest with keys generated on all cores. */
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

/* One certificate the inventory needs. */
struct job {
	const char *kind;    /* "server" or "client" */
	char node[CFG_NAME]; /* node, "*" (shared server), "-" (client) */
	enum cfg_key_alg alg;
	struct pki_spec spec;
	const char *reason; /* why it is (re)issued; NULL: kept */
	long old;           /* index position of the entry it replaces */
	X509 *cert;         /* the new certificate */
	unsigned char *kpem, *cpem; /* its key and certificate, PEM */
	size_t klen, clen;
	struct dbpki_err err;
	int rc;
};

void
pki_spec_server(
    const struct dbpki_cluster *c, const struct cfg_node *n, struct pki_spec *s)
{
	const struct cfg_node *p = cfg_primary(c);
	int i;

	memset(s, 0, sizeof(*s));
	s->profile = PKI_PROFILE_SERVER;
	s->validity = c->server_validity;
	if (n != NULL) {
		util_fmt(s->cn, sizeof(s->cn), "%s", n->host);
		s->san[s->n_san++] = n->host;
		s->san[s->n_san++] = n->address;
	} else {
		/* Shared (CMS style): one certificate every database node
		 * presents, named after the primary. */
		util_fmt(s->cn, sizeof(s->cn), "%s",
		    p != NULL ? p->host : c->nodes[0].host);
		for (i = 0; i < c->n_nodes; i++) {
			if (!cfg_is_database(&c->nodes[i]))
				continue;
			s->san[s->n_san++] = c->nodes[i].host;
			s->san[s->n_san++] = c->nodes[i].address;
		}
	}
	for (i = 0; i < c->n_extra_san && s->n_san < PKI_MAX_SAN; i++)
		s->san[s->n_san++] = c->extra_san[i];
}

void
pki_spec_client(const struct dbpki_cluster *c, struct pki_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->profile = PKI_PROFILE_CLIENT;
	s->validity = c->client_validity;
	util_fmt(s->cn, sizeof(s->cn), "%s", c->client_common_name);
}

/* The jobs for everything the inventory needs; caller frees *out. */
static int
jobs_plan(const struct dbpki_cluster *c, struct job **out, int *n,
    struct dbpki_err *e)
{
	struct job *v;
	int i, k = 0;

	*out = NULL;
	*n = 0;
	if ((v = calloc((size_t)c->n_nodes + 2, sizeof(*v))) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	if (c->server_mode == SERVER_SHARED) {
		v[k].kind = "server";
		util_fmt(v[k].node, sizeof(v[k].node), "*");
		v[k].alg = c->server_key.alg;
		pki_spec_server(c, NULL, &v[k++].spec);
	} else {
		for (i = 0; i < c->n_nodes; i++) {
			if (!cfg_is_database(&c->nodes[i]))
				continue;
			v[k].kind = "server";
			util_fmt(v[k].node, sizeof(v[k].node), "%s",
			    c->nodes[i].name);
			v[k].alg = c->server_key.alg;
			pki_spec_server(c, &c->nodes[i], &v[k++].spec);
		}
	}
	v[k].kind = "client";
	util_fmt(v[k].node, sizeof(v[k].node), "-");
	v[k].alg = c->client_key.alg;
	pki_spec_client(c, &v[k++].spec);
	for (i = 0; i < k; i++)
		v[i].old = -1;
	*out = v;
	*n = k;
	return 0;
}

/* ---- running work on all cores ---------------------------------------- */

struct pool {
	void (*fn)(void *arg, int i);
	void *arg;
	int n;
	atomic_int next;
};

static void *
pool_worker(void *p)
{
	struct pool *pl = p;
	int i;

	while ((i = atomic_fetch_add(&pl->next, 1)) < pl->n)
		pl->fn(pl->arg, i);
	/* OpenSSL keeps a per-thread error queue; leave nothing behind. */
	ERR_clear_error();
	return NULL;
}

/* Run fn(arg, 0..n-1) on up to `threads` threads (0: one per online CPU).
 * If a thread cannot be created, the threads that exist (at least the
 * calling one) do all the work. */
static void
pool_run(void (*fn)(void *, int), void *arg, int n, int threads)
{
	struct pool pl = {fn, arg, n, 0};
	pthread_t tid[64];
	long cpus;
	int i, started = 0;

	if (threads <= 0) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		threads = cpus > 0 ? (int)cpus : 1;
	}
	if (threads > n)
		threads = n;
	if (threads > (int)(sizeof(tid) / sizeof(tid[0])))
		threads = (int)(sizeof(tid) / sizeof(tid[0]));
	for (i = 1; i < threads; i++)
		if (pthread_create(&tid[started], NULL, pool_worker, &pl) == 0)
			started++;
	pool_worker(&pl);
	for (i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
}

struct keygen_arg {
	const enum cfg_key_alg *algs;
	EVP_PKEY **keys;
	struct dbpki_err *errs;
	int *rcs;
};

static void
keygen_one(void *p, int i)
{
	struct keygen_arg *a = p;

	err_clear(&a->errs[i]);
	a->rcs[i] = pki_key_generate(a->algs[i], &a->keys[i], &a->errs[i]);
}

int
pki_keygen_parallel(const enum cfg_key_alg *algs, EVP_PKEY **keys, int n,
    int threads, struct dbpki_err *e)
{
	struct keygen_arg a;
	int i, r = 0;

	for (i = 0; i < n; i++)
		keys[i] = NULL;
	if (n <= 0)
		return 0;
	a.algs = algs;
	a.keys = keys;
	a.errs = calloc((size_t)n, sizeof(*a.errs));
	a.rcs = calloc((size_t)n, sizeof(*a.rcs));
	if (a.errs == NULL || a.rcs == NULL) {
		r = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	pool_run(keygen_one, &a, n, threads);
	for (i = 0; i < n && r == 0; i++)
		if (a.rcs[i] != 0) {
			*e = a.errs[i];
			r = a.rcs[i];
		}
out:
	if (r != 0)
		for (i = 0; i < n; i++) {
			EVP_PKEY_free(keys[i]);
			keys[i] = NULL;
		}
	free(a.errs);
	free(a.rcs);
	return r;
}

/* ---- keep or reissue -------------------------------------------------- */

static int
load_pair(const struct dbpki_cluster *c, const char *serial, X509 **x,
    EVP_PKEY **k, struct dbpki_err *e)
{
	char p[CFG_PATH];
	int r;

	if (pki_store_path(c, p, "issued/%s.crt", serial) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = pki_cert_load_pem(p, x, e)) != 0)
		return r;
	if (pki_store_path(c, p, "keys/%s.key", serial) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	return pki_key_load_pem(p, NULL, k, e);
}

/* NULL if the existing certificate can be kept, else why not. */
static const char *
judge(const struct dbpki_cluster *c, const struct pki_ca *ca, X509 *x,
    EVP_PKEY *k, const struct job *j)
{
	int64_t now = util_now(), na = pki_cert_not_after(x);
	enum cfg_key_alg alg;
	char cn[CFG_HOST];
	EVP_PKEY *capub = X509_get0_pubkey(ca->cert);

	if (!pki_cert_key_matches(x, k))
		return "its key file does not match it";
	if (capub == NULL || X509_verify(x, capub) != 1 ||
	    X509_NAME_cmp(X509_get_issuer_name(x),
		X509_get_subject_name(ca->cert)) != 0) {
		ERR_clear_error();
		return "not signed by the current CA";
	}
	if (now < pki_cert_not_before(x))
		return "not yet valid";
	if (now >= na)
		return "expired";
	/* A leaf capped at the CA's notAfter cannot get any longer by being
	 * reissued; the CA warning covers that case. */
	if (na - now <= c->renew_before && na < pki_cert_not_after(ca->cert))
		return "expires within renew_before";
	if (pki_key_alg(X509_get0_pubkey(x), &alg) != 0 || alg != j->alg)
		return "key type differs from the inventory";
	if (pki_cert_cn(x, cn, sizeof(cn)) != 0 || strcmp(cn, j->spec.cn) != 0)
		return "common name differs from the inventory";
	if (!pki_cert_san_equal(x, &j->spec))
		return "names (SANs) differ from the inventory";
	return NULL;
}

static void
decide(const struct dbpki_cluster *c, const struct pki_ca *ca,
    struct pki_index *idx, struct job *j, int force)
{
	struct pki_entry *old = pki_index_active(idx, j->kind, j->node);
	struct dbpki_err e;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;

	if (old == NULL) {
		j->reason = "new";
		return;
	}
	j->old = old - idx->v;
	err_clear(&e);
	if (load_pair(c, old->serial, &x, &k, &e) != 0) {
		log_warn(
		    "%s %s: the stored certificate %s cannot be used (%s); "
		    "reissuing",
		    j->kind, j->node, old->serial, e.msg);
		j->reason = "stored files unusable";
	} else
		j->reason = force ? "forced" : judge(c, ca, x, k, j);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* ---- issuing ---------------------------------------------------------- */

struct issue_arg {
	const struct dbpki_cluster *c;
	const struct pki_ca *ca;
	struct job *jobs;
	int *todo; /* indexes into jobs of those to issue */
};

/* Writing is bound by fsync latency, not by CPU: more writers than cores
 * let the file system commit several fsyncs in one journal transaction. */
#define IO_THREADS 16

static void
build_one(void *p, int i)
{
	struct issue_arg *a = p;
	struct job *j = &a->jobs[a->todo[i]];
	EVP_PKEY *k = NULL;

	err_clear(&j->err);
	if ((j->rc = pki_key_generate(j->alg, &k, &j->err)) == 0 &&
	    (j->rc = pki_cert_build(&j->spec, k, a->ca->cert, a->ca->key,
		 &j->cert, &j->err)) == 0 &&
	    (j->rc = pki_key_to_pem(k, NULL, &j->kpem, &j->klen, &j->err)) == 0)
		j->rc = pki_cert_to_pem(j->cert, &j->cpem, &j->clen, &j->err);
	EVP_PKEY_free(k);
}

/* Key first, certificate second: a certificate file in issued/ always has
 * its key beside it. */
static void
write_one(void *p, int i)
{
	struct issue_arg *a = p;
	struct job *j = &a->jobs[a->todo[i]];
	char serial[PKI_SERIAL_HEX], kp[CFG_PATH], cp[CFG_PATH];

	if (j->rc == 0) {
		pki_cert_serial_hex(j->cert, serial);
		if (pki_store_path(a->c, kp, "keys/%s.key", serial) != 0 ||
		    pki_store_path(a->c, cp, "issued/%s.crt", serial) != 0)
			j->rc = err_set(
			    &j->err, DBPKI_E_CONFIG, "state_dir too long");
		else if ((j->rc = util_write_atomic(
			      kp, j->kpem, j->klen, 0600, &j->err)) == 0 &&
			 (j->rc = util_write_atomic(
			      cp, j->cpem, j->clen, 0644, &j->err)) != 0)
			(void)unlink(kp); /* a key without its certificate */
	}
	if (j->kpem != NULL)
		util_freezero(j->kpem, j->klen + 1);
	free(j->cpem);
	j->kpem = j->cpem = NULL;
	if (j->rc != 0) {
		err_wrap(&j->err, "%s certificate for %s", j->kind, j->node);
		X509_free(j->cert);
		j->cert = NULL;
	}
}

static void
ca_expiry_warning(const struct dbpki_cluster *c, const struct pki_ca *ca)
{
	int64_t na = pki_cert_not_after(ca->cert), now = util_now();
	char when[32];

	if (na - now > c->renew_before)
		return;
	util_iso8601(na, when);
	log_warn(
	    "!!! THE CA ITSELF EXPIRES ON %s (in %lld days), within "
	    "renew_before: every certificate it signs ends that day too, and "
	    "renewing leaves will not help. Plan a new CA and a rotate "
	    "before then. !!!",
	    when, (long long)((na - now) / 86400));
}

/* Record the outcome in the index (new entries after the files exist)
 * and drop the private keys of superseded certificates. */
static int
commit(const struct dbpki_cluster *c, struct pki_index *idx, struct job *jobs,
    int n, struct dbpki_err *e)
{
	char(*dead)[PKI_SERIAL_HEX] = NULL;
	struct pki_entry ent;
	char p[CFG_PATH];
	int i, nd = 0, r = 0;

	if ((dead = calloc((size_t)n + 1, sizeof(*dead))) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	for (i = 0; i < n && r == 0; i++) {
		if (jobs[i].cert == NULL)
			continue;
		if (jobs[i].old >= 0) {
			idx->v[jobs[i].old].status = PKI_SUPERSEDED;
			memcpy(dead[nd++], idx->v[jobs[i].old].serial,
			    PKI_SERIAL_HEX);
		}
		pki_entry_fill(&ent, jobs[i].cert, jobs[i].kind, jobs[i].node);
		r = pki_index_add(idx, &ent, e);
	}
	if (r == 0)
		r = pki_index_save(c, idx, e);
	/* Only once the index no longer calls them active: an old key is of
	 * no further use on the admin host (nodes keep their own copy). */
	for (i = 0; r == 0 && i < nd; i++)
		if (pki_store_path(c, p, "keys/%s.key", dead[i]) == 0 &&
		    unlink(p) == -1 && errno != ENOENT)
			log_warn("cannot remove the superseded key %s: %s", p,
			    strerror(errno));
	free(dead);
	return r;
}

/* A run that could not write everything (a full disk, say) takes back
 * what it wrote, so that the store is exactly as it was before. */
static void
discard(const struct issue_arg *a, int nt)
{
	char serial[PKI_SERIAL_HEX], p[CFG_PATH];
	int i;

	for (i = 0; i < nt; i++) {
		struct job *j = &a->jobs[a->todo[i]];

		if (j->cert == NULL)
			continue;
		pki_cert_serial_hex(j->cert, serial);
		if (pki_store_path(a->c, p, "issued/%s.crt", serial) == 0)
			(void)unlink(p);
		if (pki_store_path(a->c, p, "keys/%s.key", serial) == 0)
			(void)unlink(p);
		X509_free(j->cert);
		j->cert = NULL;
	}
}

static int
first_error(const struct issue_arg *a, int nt, struct dbpki_err *e)
{
	int i;

	for (i = 0; i < nt; i++)
		if (a->jobs[a->todo[i]].rc != 0) {
			*e = a->jobs[a->todo[i]].err;
			return e->code;
		}
	return 0;
}

static void
report(const struct job *j)
{
	char serial[PKI_SERIAL_HEX] = "", when[32] = "";

	if (j->cert != NULL) {
		pki_cert_serial_hex(j->cert, serial);
		util_iso8601(pki_cert_not_after(j->cert), when);
		log_info("issued  %-6s %-20s serial %s until %s (%s)", j->kind,
		    j->node, serial, when, j->reason);
	} else if (j->reason == NULL)
		log_info("kept    %-6s %-20s still valid and matches the "
			 "inventory",
		    j->kind, j->node);
}

int
pki_issue_all(const struct dbpki_cluster *c, int force, struct dbpki_err *e)
{
	struct pki_index idx = {0};
	struct issue_arg a = {c, NULL, NULL, NULL};
	struct pki_ca *ca = NULL;
	int i, n = 0, nt = 0, r;

	/* Once a CA was imported, dbca signs no leaves: they come from that
	 * CA through csr + issue --signed (docs/corporate-ca.md). */
	if (pki_trust_imported(c))
		return pki_issue_corporate(c, force, e);
	if ((r = pki_ca_load(c, &ca, e)) != 0)
		return r;
	a.ca = ca;
	ca_expiry_warning(c, ca);
	if ((r = pki_store_prepare(c, e)) != 0 ||
	    (r = pki_index_load(c, &idx, e)) != 0 ||
	    (r = jobs_plan(c, &a.jobs, &n, e)) != 0)
		goto out;
	if ((a.todo = calloc((size_t)n, sizeof(*a.todo))) == NULL) {
		r = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		decide(c, ca, &idx, &a.jobs[i], force);
		if (a.jobs[i].reason != NULL)
			a.todo[nt++] = i;
	}
	pool_run(build_one, &a, nt, 0);
	pool_run(write_one, &a, nt, IO_THREADS);
	if ((r = first_error(&a, nt, e)) == 0 &&
	    (r = commit(c, &idx, a.jobs, n, e)) == 0) {
		for (i = 0; i < n; i++)
			report(&a.jobs[i]);
		log_info("%d certificate(s) issued, %d kept", nt, n - nt);
		/* Whatever ships these ships the CRL too: keep it fresh and
		 * signed by this CA (rotate may have made a new one). */
		r = pki_crl_refresh(c, NULL, e);
	} else {
		discard(&a, nt);
		err_wrap(e, "nothing was issued: the store in %s is as it was",
		    c->state_dir);
	}
out:
	for (i = 0; a.jobs != NULL && i < n; i++)
		X509_free(a.jobs[i].cert);
	free(a.jobs);
	free(a.todo);
	pki_index_free(&idx);
	pki_ca_free(ca);
	return r;
}

/* ---- CSRs for an external CA ------------------------------------------ */

static int
csr_write(const struct dbpki_cluster *c, const struct job *j, EVP_PKEY *k,
    struct dbpki_err *e)
{
	char base[CFG_NAME + 16], p[CFG_PATH];
	unsigned char *kpem = NULL;
	size_t klen = 0;
	X509_REQ *req = NULL;
	BIO *b = NULL;
	char *data;
	long len;
	int r;

	if (strcmp(j->kind, "client") == 0)
		util_fmt(base, sizeof(base), "client");
	else if (strcmp(j->node, "*") == 0)
		util_fmt(base, sizeof(base), "server-shared");
	else
		util_fmt(base, sizeof(base), "server-%s", j->node);
	if ((r = pki_csr_build(&j->spec, k, &req, e)) != 0 ||
	    (r = pki_key_to_pem(k, NULL, &kpem, &klen, e)) != 0)
		goto out;
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509_REQ(b, req) ||
	    (len = BIO_get_mem_data(b, &data)) <= 0) {
		r = err_ssl(e, "cannot encode the CSR");
		goto out;
	}
	if (pki_store_path(c, p, "csr/%s.key", base) != 0) {
		r = err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		goto out;
	}
	if ((r = util_write_atomic(p, kpem, klen, 0600, e)) != 0)
		goto out;
	if (pki_store_path(c, p, "csr/%s.csr", base) != 0) {
		r = err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		goto out;
	}
	if ((r = util_write_atomic(p, data, (size_t)len, 0644, e)) == 0)
		log_info("wrote %s (key beside it, mode 0600)", p);
out:
	if (kpem != NULL)
		util_freezero(kpem, klen + 1);
	BIO_free(b);
	X509_REQ_free(req);
	return r;
}

int
pki_csr_all(const struct dbpki_cluster *c, struct dbpki_err *e)
{
	enum cfg_key_alg *algs = NULL;
	EVP_PKEY **keys = NULL;
	struct job *jobs = NULL;
	char p[CFG_PATH];
	int i, n = 0, r;

	if ((r = pki_store_prepare(c, e)) != 0)
		return r;
	if (pki_store_path(c, p, "csr") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = util_mkdirs(p, 0700, e)) != 0 ||
	    (r = jobs_plan(c, &jobs, &n, e)) != 0)
		return r;
	algs = calloc((size_t)n, sizeof(*algs));
	keys = calloc((size_t)n, sizeof(*keys));
	if (algs == NULL || keys == NULL) {
		r = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		algs[i] = jobs[i].alg;
	if ((r = pki_keygen_parallel(algs, keys, n, 0, e)) != 0)
		goto out;
	for (i = 0; i < n && r == 0; i++)
		r = csr_write(c, &jobs[i], keys[i], e);
out:
	for (i = 0; keys != NULL && i < n; i++)
		EVP_PKEY_free(keys[i]);
	free(keys);
	free(algs);
	free(jobs);
	return r;
}
