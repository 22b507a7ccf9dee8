/* pki_signed: leaves an external (corporate) CA signed from our CSRs
 * (docs/corporate-ca.md).
 *
 *   issue --signed  take back the certificates an external CA signed from
 *               our CSRs, check each, store them as the current leaves;
 *   issue       once a CA was imported: keep what still chains to it,
 *               never sign with dbca.
 */
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"
#include "pki_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* ---- leaves an external CA signed from our CSRs ------------------------- */

/* One certificate the inventory needs, named as `dbpki csr -c` names its
 * files, with what the store and the CSR directory hold for it. */
struct want {
	const char *kind;         /* "server" or "client" */
	char node[CFG_NAME];      /* node, "*" (shared server), "-" (client) */
	char base[CFG_NAME + 16]; /* csr/<base>.key, csr/<base>.csr */
	enum cfg_key_alg alg;
	struct pki_spec spec;
	long old;  /* index position of the active entry, -1 */
	X509 *act; /* the active certificate and its key */
	EVP_PKEY *act_key;
	char *act_pem;
	size_t act_len;
	EVP_PKEY *csr_key; /* csr/<base>.key, if there is one */
	char *csr_pem;
	size_t csr_len;
	X509 *cert;       /* the new certificate (issue --signed) */
	const char *kpem; /* its key's PEM: csr_pem or act_pem */
	size_t klen;
	char file[PATH_MAX]; /* where it came from */
};

struct signed_run {
	const struct dbpki_cluster *c;
	struct want *w;
	int n;
	struct pki_index idx;
	STACK_OF(X509) * bundle;
	int allow_extra_san; /* issue --signed --allow-extra-san */
};

static void
want_base(struct want *w)
{
	if (strcmp(w->kind, "client") == 0)
		util_fmt(w->base, sizeof(w->base), "client");
	else if (strcmp(w->node, "*") == 0)
		util_fmt(w->base, sizeof(w->base), "server-shared");
	else
		util_fmt(w->base, sizeof(w->base), "server-%s", w->node);
}

/* What the inventory needs: the same list, names and SANs as `issue` and
 * `csr -c` (pki_spec_server, pki_spec_client). */
static int
wants_plan(struct signed_run *sr, struct dbpki_err *e)
{
	const struct dbpki_cluster *c = sr->c;
	struct want *v;
	int i, k = 0;

	if ((v = calloc((size_t)c->n_nodes + 2, sizeof(*v))) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	for (i = 0; i < c->n_nodes && c->server_mode == SERVER_PER_NODE; i++) {
		if (!cfg_is_database(&c->nodes[i]))
			continue;
		v[k].kind = "server";
		util_fmt(v[k].node, sizeof(v[k].node), "%s", c->nodes[i].name);
		v[k].alg = c->server_key.alg;
		pki_spec_server(c, &c->nodes[i], &v[k++].spec);
	}
	if (c->server_mode == SERVER_SHARED) {
		v[k].kind = "server";
		util_fmt(v[k].node, sizeof(v[k].node), "*");
		v[k].alg = c->server_key.alg;
		pki_spec_server(c, NULL, &v[k++].spec);
	}
	v[k].kind = "client";
	util_fmt(v[k].node, sizeof(v[k].node), "-");
	v[k].alg = c->client_key.alg;
	pki_spec_client(c, &v[k++].spec);
	for (i = 0; i < k; i++) {
		v[i].old = -1;
		want_base(&v[i]);
	}
	sr->w = v;
	sr->n = k;
	return 0;
}

static void
wants_free(struct signed_run *sr)
{
	struct want *w;
	int i;

	for (i = 0; sr->w != NULL && i < sr->n; i++) {
		w = &sr->w[i];
		X509_free(w->act);
		X509_free(w->cert);
		EVP_PKEY_free(w->act_key);
		EVP_PKEY_free(w->csr_key);
		if (w->act_pem != NULL)
			util_freezero(w->act_pem, w->act_len + 1);
		if (w->csr_pem != NULL)
			util_freezero(w->csr_pem, w->csr_len + 1);
	}
	free(sr->w);
	sr->w = NULL;
	pki_index_free(&sr->idx);
	sk_X509_pop_free(sr->bundle, X509_free);
	sr->bundle = NULL;
}

/* A private key file and its bytes (kept to be stored verbatim). */
static int
key_read(const char *path, EVP_PKEY **k, char **pem, size_t *len,
    struct dbpki_err *e)
{
	int r;

	if ((r = util_read_file(path, UTIL_MAX_INPUT,
		 UTIL_RF_NOSYMLINK | UTIL_RF_PRIVATE, pem, len, e)) != 0)
		return r;
	if ((r = pki_key_from_pem(*pem, *len, NULL, path, k, e)) != 0) {
		util_freezero(*pem, *len + 1);
		*pem = NULL;
	}
	return r;
}

/* The active certificate and key of w, and the CSR key, when present.
 * A stored pair that cannot be read is left out (and judged missing). */
static int
want_load(struct signed_run *sr, struct want *w, struct dbpki_err *e)
{
	struct pki_entry *ent = pki_index_active(&sr->idx, w->kind, w->node);
	struct dbpki_err ign;
	char p[CFG_PATH];
	struct stat st;

	if (ent != NULL) {
		w->old = ent - sr->idx.v;
		err_clear(&ign);
		if (pki_store_path(sr->c, p, "issued/%s.crt", ent->serial) !=
			0 ||
		    pki_cert_load_pem(p, &w->act, &ign) != 0 ||
		    pki_store_path(sr->c, p, "keys/%s.key", ent->serial) != 0 ||
		    key_read(p, &w->act_key, &w->act_pem, &w->act_len, &ign) !=
			0) {
			X509_free(w->act);
			w->act = NULL;
		}
	}
	if (pki_store_path(sr->c, p, "csr/%s.key", w->base) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if (lstat(p, &st) == -1)
		return 0;
	return key_read(p, &w->csr_key, &w->csr_pem, &w->csr_len, e);
}

int
pki_signed_check(const struct pki_spec *s, enum cfg_key_alg alg, X509 *x,
    EVP_PKEY *key, STACK_OF(X509) * bundle, struct dbpki_err *e)
{
	int server = s->profile == PKI_PROFILE_SERVER, i, r;
	uint32_t flags = X509_get_extension_flags(x);
	enum cfg_key_alg have;
	char cn[CFG_HOST], safe[80];

	if (key != NULL && !pki_cert_key_matches(x, key))
		return err_set(e, DBPKI_E_VERIFY,
		    "it was made for another key than its CSR's");
	if ((r = pki_verify(x, bundle,
		 server ? PKI_PURPOSE_SERVER : PKI_PURPOSE_CLIENT, NULL, 0,
		 e)) != 0)
		return err_wrap(e, "it does not chain to the trusted CA");
	if (flags & EXFLAG_CA)
		return err_set(e, DBPKI_E_VERIFY,
		    "it is a CA certificate (basicConstraints CA:TRUE), not a "
		    "leaf");
	if (!(flags & EXFLAG_XKUSAGE) ||
	    !(X509_get_extended_key_usage(x) &
		(server ? XKU_SSL_SERVER : XKU_SSL_CLIENT)))
		return err_set(e, DBPKI_E_VERIFY,
		    "its extendedKeyUsage lacks %s; have it signed with a "
		    "profile that sets it",
		    server ? "serverAuth" : "clientAuth");
	if (pki_key_alg(X509_get0_pubkey(x), &have) != 0 || have != alg)
		return err_set(e, DBPKI_E_VERIFY,
		    "its key is not the inventory's %s", cfg_key_name(alg));
	if (pki_cert_cn(x, cn, sizeof(cn)) != 0 || strcmp(cn, s->cn) != 0) {
		log_sanitize(safe, sizeof(safe), cn, strlen(cn), 0);
		return err_set(e, DBPKI_E_VERIFY,
		    "its CN is '%s', the inventory needs '%s'", safe, s->cn);
	}
	for (i = 0; i < s->n_san; i++)
		if (!pki_cert_covers(x, s->san[i]))
			return err_set(e, DBPKI_E_VERIFY,
			    "its SANs do not cover %s (every name and address "
			    "clients use must be in them)",
			    s->san[i]);
	return 0;
}

static const char *
want_label(const struct want *w, char out[CFG_NAME + 16])
{
	if (strcmp(w->kind, "client") == 0)
		util_fmt(out, CFG_NAME + 16, "the client certificate");
	else if (strcmp(w->node, "*") == 0)
		util_fmt(out, CFG_NAME + 16, "the shared server certificate");
	else
		util_fmt(out, CFG_NAME + 16, "server %s", w->node);
	return out;
}

/* Which need x is for, by its public key: a CSR key, or the key of the
 * active certificate (the CA signed the same key again).  *dup is set
 * when x is exactly the active certificate. */
static struct want *
want_for(struct signed_run *sr, X509 *x, int *dup)
{
	EVP_PKEY *pub = X509_get0_pubkey(x);
	struct want *w;
	int i;

	*dup = 0;
	for (i = 0; pub != NULL && i < sr->n; i++) {
		w = &sr->w[i];
		if (w->csr_key != NULL && EVP_PKEY_eq(pub, w->csr_key) == 1) {
			w->kpem = w->csr_pem;
			w->klen = w->csr_len;
			return w;
		}
		if (w->act != NULL && EVP_PKEY_eq(pub, w->act_key) == 1) {
			*dup = X509_cmp(x, w->act) == 0;
			w->kpem = w->act_pem;
			w->klen = w->act_len;
			return w;
		}
	}
	ERR_clear_error();
	return NULL;
}

/* One certificate file of DIR: parse, match to a need, check. */
static int
take_file(struct signed_run *sr, const char *path, struct dbpki_err *e)
{
	char sp[PKI_SHOW_PATH + 8], lbl[CFG_NAME + 16], *buf = NULL;
	STACK_OF(X509) *chain = NULL;
	char extra[CFG_HOST + 16];
	struct want *w;
	size_t len = 0;
	X509 *x = NULL;
	int r, dup, n;

	pki_show_path(path, sp);
	if ((r = util_read_file(
		 path, UTIL_MAX_INPUT, UTIL_RF_NOSYMLINK, &buf, &len, e)) != 0)
		return r;
	/* The same PEM rules as `ca import`: blocks of certificates only, no
	 * text after them, no byte after a DER certificate.  The first is
	 * the leaf; a chain after it is ignored (the trust is ca import's). */
	if ((chain = sk_X509_new_null()) == NULL)
		r = err_ssl(e, "out of memory");
	else if ((r = pki_pem_certs(buf, len, sp, chain, e)) == 0) {
		x = sk_X509_value(chain, 0);
		X509_up_ref(x);
	}
	sk_X509_pop_free(chain, X509_free);
	free(buf);
	if (r != 0)
		return r;
	if ((w = want_for(sr, x, &dup)) == NULL) {
		X509_free(x);
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "key",
		    "its public key belongs to none of the keys in %s/csr/ "
		    "nor to a stored certificate: it was not signed from a "
		    "CSR of the last `dbpki csr -c INVENTORY`",
		    sr->c->state_dir);
	}
	want_label(w, lbl);
	if (dup) {
		log_info("%s: already stored as %s; skipped", sp, lbl);
		X509_free(x);
		return 0;
	}
	if (w->cert != NULL) {
		X509_free(x);
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "one certificate each",
		    "%s and this file are both for %s; keep one", w->file, lbl);
	}
	if ((r = pki_signed_check(&w->spec, w->alg, x, NULL, sr->bundle, e)) !=
	    0) {
		X509_free(x);
		return err_wrap(e, "%s: refused: %s", sp, lbl);
	}
	/* A name beyond the inventory's lets this node's key speak for that
	 * name too: a wildcard, or another node (a replica's key passing as
	 * the primary).  Only when the admin says it is wanted. */
	if ((n = pki_cert_san_extra(x, &w->spec, extra, sizeof(extra))) > 0 &&
	    !sr->allow_extra_san) {
		X509_free(x);
		return pki_refuse(e, DBPKI_E_VERIFY, sp, "extra SAN",
		    "%s: it has %d SAN(s) the inventory does not ask for "
		    "(first: %s); a wildcard or another node's name would let "
		    "this key pass for that name too. Have it signed with the "
		    "CSR's SANs only, or add --allow-extra-san if they are "
		    "wanted",
		    lbl, n, extra);
	}
	if (n > 0)
		log_warn("%s: %s has %d SAN(s) beyond the inventory's (first: "
			 "%s), kept as --allow-extra-san says",
		    sp, lbl, n, extra);
	w->cert = x;
	util_fmt(w->file, sizeof(w->file), "%s", sp);
	return 0;
}

static int
cert_name(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 4 &&
	       (strcmp(d->d_name + n - 4, ".crt") == 0 ||
		   strcmp(d->d_name + n - 4, ".pem") == 0 ||
		   strcmp(d->d_name + n - 4, ".cer") == 0);
}

/* Every *.crt, *.pem, *.cer of dir, in name order.  File names carry no
 * meaning: certificates are matched to their needs by public key. */
static int
take_dir(
    struct signed_run *sr, const char *dir, int *found, struct dbpki_err *e)
{
	struct dirent **list = NULL;
	char path[PATH_MAX], sp[PKI_SHOW_PATH + 8];
	int i, n, r = 0;

	*found = 0;
	pki_show_path(dir, sp);
	if ((n = scandir(dir, &list, cert_name, alphasort)) == -1)
		return err_sys(e, "--signed %s: cannot read the directory", sp);
	for (i = 0; i < n; i++) {
		if (r == 0 && util_fmt(path, sizeof(path), "%s/%s", dir,
				  list[i]->d_name) != 0)
			r = err_set(e, DBPKI_E_CONFIG, "%s: path too long", sp);
		else if (r == 0)
			r = take_file(sr, path, e);
		free(list[i]);
	}
	free(list);
	*found = n;
	if (r == 0 && n == 0)
		r = err_set(e, DBPKI_E_CONFIG,
		    "--signed %s: no *.crt, *.pem or *.cer file in it; put "
		    "the certificates the CA signed from %s/csr/*.csr there",
		    sp, sr->c->state_dir);
	return r;
}

/* Every need is met after the change: by a new certificate, or by the
 * active one, still good.  Otherwise nothing is stored. */
static int
check_complete(struct signed_run *sr, const char *dir, struct dbpki_err *e)
{
	char lbl[CFG_NAME + 16], sp[PKI_SHOW_PATH + 8];
	struct dbpki_err why;
	struct want *w;
	int i;

	pki_show_path(dir, sp);
	for (i = 0; i < sr->n; i++) {
		w = &sr->w[i];
		if (w->cert != NULL)
			continue;
		err_clear(&why);
		if (w->act == NULL)
			util_fmt(why.msg, sizeof(why.msg), "none is stored");
		else if (pki_signed_check(&w->spec, w->alg, w->act, w->act_key,
			     sr->bundle, &why) == 0)
			continue;
		return err_set(e, DBPKI_E_CONFIG,
		    "--signed %s: no certificate for %s in it, and the store "
		    "cannot keep its current one (%s); nothing stored. Sign "
		    "%s/csr/%s.csr%s and put the result in %s",
		    sp, want_label(w, lbl), why.msg, sr->c->state_dir, w->base,
		    w->csr_key == NULL ? " (run: dbpki csr -c INVENTORY first)"
				       : "",
		    sp);
	}
	return 0;
}

/* A serial another certificate already holds in issued/ would be
 * overwritten: refuse (two CAs may hand out the same serial). */
static int
check_serials(struct signed_run *sr, struct dbpki_err *e)
{
	char serial[PKI_SERIAL_HEX], p[CFG_PATH];
	struct stat st;
	int i;

	for (i = 0; i < sr->n; i++) {
		if (sr->w[i].cert == NULL)
			continue;
		pki_cert_serial_hex(sr->w[i].cert, serial);
		if (pki_store_path(sr->c, p, "issued/%s.crt", serial) != 0)
			return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		if (lstat(p, &st) == 0)
			return pki_refuse(e, DBPKI_E_CONFIG, sr->w[i].file,
			    "new serial",
			    "its serial %s is already in the store (%s); "
			    "nothing stored",
			    serial, p);
	}
	return 0;
}

/* Key first, then certificate: a certificate in issued/ always has its
 * key beside it (as `issue` does). */
static int
write_leaf(struct signed_run *sr, struct want *w, struct dbpki_err *e)
{
	char serial[PKI_SERIAL_HEX], p[CFG_PATH];
	unsigned char *pem = NULL;
	size_t len = 0;
	int r;

	pki_cert_serial_hex(w->cert, serial);
	if (pki_store_path(sr->c, p, "keys/%s.key", serial) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = util_write_atomic(p, w->kpem, w->klen, 0600, e)) != 0 ||
	    (r = pki_cert_to_pem(w->cert, &pem, &len, e)) != 0)
		return r;
	if (pki_store_path(sr->c, p, "issued/%s.crt", serial) != 0)
		r = err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	else
		r = util_write_atomic(p, pem, len, 0644, e);
	free(pem);
	return r;
}

static void
unlink_quiet(const struct dbpki_cluster *c, const char *fmt, const char *a,
    const char *b)
{
	char p[CFG_PATH];

	if (pki_store_path(c, p, fmt, a, b) == 0 && unlink(p) == -1 &&
	    errno != ENOENT)
		log_warn("cannot remove %s: %s", p, strerror(errno));
}

/* Files, then the index (old entries superseded), then the keys nobody
 * needs any more: the superseded leaf's and the consumed CSR's. */
static int
signed_commit(struct signed_run *sr, struct dbpki_err *e)
{
	char lbl[CFG_NAME + 16], serial[PKI_SERIAL_HEX], when[32];
	struct pki_entry ent;
	struct want *w;
	int i, r = 0;

	for (i = 0; r == 0 && i < sr->n; i++)
		if (sr->w[i].cert != NULL)
			r = write_leaf(sr, &sr->w[i], e);
	for (i = 0; r == 0 && i < sr->n; i++) {
		w = &sr->w[i];
		if (w->cert == NULL)
			continue;
		if (w->old >= 0)
			sr->idx.v[w->old].status = PKI_SUPERSEDED;
		pki_entry_fill(&ent, w->cert, w->kind, w->node);
		r = pki_index_add(&sr->idx, &ent, e);
	}
	if (r == 0)
		r = pki_index_save(sr->c, &sr->idx, e);
	for (i = 0; r == 0 && i < sr->n; i++) {
		w = &sr->w[i];
		if (w->cert == NULL)
			continue;
		if (w->old >= 0)
			unlink_quiet(sr->c, "keys/%s%s",
			    sr->idx.v[w->old].serial, ".key");
		if (w->kpem == w->csr_pem) {
			unlink_quiet(sr->c, "csr/%s%s", w->base, ".key");
			unlink_quiet(sr->c, "csr/%s%s", w->base, ".csr");
		}
		pki_cert_serial_hex(w->cert, serial);
		util_iso8601(pki_cert_not_after(w->cert), when);
		log_info("stored  %s from %s: serial %s until %s",
		    want_label(w, lbl), w->file, serial, when);
	}
	return r;
}

static int
signed_prepare(struct signed_run *sr, struct dbpki_err *e)
{
	int i, r;

	if ((r = pki_trust_load(sr->c, &sr->bundle, e)) != 0 ||
	    (r = pki_store_prepare(sr->c, e)) != 0 ||
	    (r = pki_index_load(sr->c, &sr->idx, e)) != 0 ||
	    (r = wants_plan(sr, e)) != 0)
		return r;
	for (i = 0; r == 0 && i < sr->n; i++)
		r = want_load(sr, &sr->w[i], e);
	return r;
}

int
pki_issue_signed(const struct dbpki_cluster *c, const char *dir,
    int allow_extra_san, struct dbpki_err *e)
{
	struct signed_run sr;
	int i, found = 0, fresh = 0, r;

	memset(&sr, 0, sizeof(sr));
	sr.c = c;
	sr.allow_extra_san = allow_extra_san;
	if ((r = signed_prepare(&sr, e)) != 0 ||
	    (r = take_dir(&sr, dir, &found, e)) != 0 ||
	    (r = check_complete(&sr, dir, e)) != 0 ||
	    (r = check_serials(&sr, e)) != 0)
		goto out;
	for (i = 0; i < sr.n; i++)
		fresh += sr.w[i].cert != NULL;
	if (fresh == 0)
		log_info("nothing new: every certificate in %s is already in "
			 "the store",
		    dir);
	else if ((r = signed_commit(&sr, e)) == 0)
		log_info(
		    "%d certificate(s) stored, %d kept", fresh, sr.n - fresh);
out:
	wants_free(&sr);
	return r;
}

/* ---- `issue` once a CA was imported ------------------------------------ */

static void
corporate_warn_expiry(const struct dbpki_cluster *c, const struct want *w)
{
	int64_t na = pki_cert_not_after(w->act);
	char lbl[CFG_NAME + 16], when[32];

	if (na - util_now() > c->renew_before)
		return;
	util_iso8601(na, when);
	log_warn("%s expires on %s, within renew_before; dbca does not renew "
		 "it: get %s/csr/%s.csr signed again (dbpki csr -c INVENTORY) "
		 "and run: dbpki issue -c INVENTORY --signed DIR",
	    want_label(w, lbl), when, c->state_dir, w->base);
}

/* A leaf stored before extra SANs were refused keeps working (an upgrade
 * never breaks a running cluster), but the admin hears about it. */
static void
corporate_warn_extra(const struct dbpki_cluster *c, const struct want *w)
{
	char lbl[CFG_NAME + 16], extra[CFG_HOST + 16];
	int n = pki_cert_san_extra(w->act, &w->spec, extra, sizeof(extra));

	if (n > 0)
		log_warn("%s has %d SAN(s) the inventory does not ask for "
			 "(first: %s); dbpki issue --signed now refuses such "
			 "a certificate without --allow-extra-san: get %s/csr/"
			 "%s.csr signed with its own SANs only",
		    want_label(w, lbl), n, extra, c->state_dir, w->base);
}

int
pki_issue_corporate(
    const struct dbpki_cluster *c, int force, struct dbpki_err *e)
{
	char lbl[CFG_NAME + 16], when[32];
	struct dbpki_err why, first;
	struct signed_run sr;
	int i, bad = 0, r;

	memset(&sr, 0, sizeof(sr));
	sr.c = c;
	err_clear(&first);
	if ((r = signed_prepare(&sr, e)) != 0)
		goto out;
	if (force)
		log_warn("--force: the leaves are signed by the imported CA; "
			 "dbca does not reissue them");
	for (i = 0; i < sr.n; i++) {
		struct want *w = &sr.w[i];

		err_clear(&why);
		if (w->act == NULL)
			err_set(&why, DBPKI_E_CONFIG, "none is stored");
		else if (pki_signed_check(&w->spec, w->alg, w->act, w->act_key,
			     sr.bundle, &why) == 0) {
			util_iso8601(pki_cert_not_after(w->act), when);
			log_info("kept    %s, signed by the imported CA, until "
				 "%s",
			    want_label(w, lbl), when);
			corporate_warn_extra(c, w);
			corporate_warn_expiry(c, w);
			continue;
		}
		log_warn("cannot keep %s: %s", want_label(w, lbl), why.msg);
		if (bad++ == 0) {
			first = why;
			err_wrap(&first, "%s", lbl);
		}
	}
	if (bad > 0)
		r = err_set(e, first.code,
		    "%d certificate(s) cannot be kept (first: %s), and dbca "
		    "signs no leaves since a CA was imported "
		    "(%s/" PKI_TRUST_FILE
		    "). Run: dbpki csr -c INVENTORY; have %s/csr/*.csr signed "
		    "by that CA; then: dbpki issue -c INVENTORY --signed DIR",
		    bad, first.msg, c->state_dir, c->state_dir);
	else
		log_info("0 certificate(s) issued, %d kept", sr.n);
out:
	wants_free(&sr);
	return r;
}
