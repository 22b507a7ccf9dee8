/* pki_release: the set of files one node receives, built from the store,
 * and the pre-flight check run before it is shipped. */
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/sha.h>

static int
add_file(struct pki_release *rel, const char *name, const char *path,
    mode_t mode, const char *serial, struct dbpki_err *e)
{
	struct pki_file *f;
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (rel->n >= PKI_RELEASE_MAX)
		return err_set(e, DBPKI_E_INTERNAL, "release is full");
	if ((r = util_read_file(path, UTIL_MAX_INPUT,
		 UTIL_RF_NOSYMLINK |
		     (mode == 0600 ? UTIL_RF_PRIVATE : UTIL_RF_NOTWRITABLE),
		 &buf, &len, e)) != 0)
		return r;
	f = &rel->files[rel->n++];
	memset(f, 0, sizeof(*f));
	util_fmt(f->name, sizeof(f->name), "%s", name);
	f->data = (unsigned char *)buf;
	f->len = len;
	f->mode = mode;
	SHA256(f->data, len, md);
	util_hex(md, sizeof(md), f->sha256);
	util_fmt(f->serial, sizeof(f->serial), "%s", serial);
	return 0;
}

/* The active certificate of kind/node and its key, as name.crt/name.key. */
static int
add_pair(const struct dbpki_cluster *c, struct pki_index *idx,
    const struct cfg_node *n, const char *kind, const char *node,
    struct pki_release *rel, struct dbpki_err *e)
{
	struct pki_entry *ent = pki_index_active(idx, kind, node);
	char p[CFG_PATH], name[16];
	int r;

	if (ent == NULL)
		return err_set(e, DBPKI_E_CONFIG,
		    "node %s: no %s certificate "
		    "in the store yet; run: dbpki issue -c %s",
		    n->name, kind, c->path[0] ? c->path : "FILE");
	util_fmt(name, sizeof(name), "%s.crt", kind);
	if (pki_store_path(c, p, "issued/%s.crt", ent->serial) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = add_file(rel, name, p, 0644, ent->serial, e)) != 0)
		return r;
	util_fmt(name, sizeof(name), "%s.key", kind);
	if (pki_store_path(c, p, "keys/%s.key", ent->serial) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	return add_file(rel, name, p, 0600, "", e);
}

/* dbca's CRL, for database nodes once the store has one: PostgreSQL
 * reads it through ssl_crl_file (docs/revocation.md).  Shipped with every
 * release, so bootstrap, renew and rotate carry it too. */
static int
add_crl(const struct dbpki_cluster *c, const struct cfg_node *n,
    struct pki_release *rel, struct dbpki_err *e)
{
	char p[CFG_PATH];
	struct stat st;

	if (!cfg_is_database(n) || c->platform != PLATFORM_POSTGRES ||
	    pki_trust_imported(c))
		return 0;
	if (pki_store_path(c, p, "crl/dbca.crl") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if (lstat(p, &st) != 0)
		return errno == ENOENT ? 0 : err_sys(e, "%s", p);
	return add_file(rel, "crl.pem", p, 0644, "", e);
}

int
pki_release_build(const struct dbpki_cluster *c, const struct cfg_node *n,
    struct pki_release *rel, struct dbpki_err *e)
{
	struct pki_index idx = {0};
	char p[CFG_PATH], serial[PKI_SERIAL_HEX];
	int r;

	memset(rel, 0, sizeof(*rel));
	/* dbca.crt is the trust bundle: dbca, or the imported chain after
	 * `ca import` (docs/corporate-ca.md); serial: its root's.  During a
	 * CA rollover: old + new CA, then the new one (docs/ca-rollover.md). */
	if ((r = pki_trust_file(c, p, serial, e)) != 0 ||
	    (r = pki_rollover_trust_file(c, p, serial, e)) != 0)
		return r;
	if ((r = add_file(rel, "dbca.crt", p, 0644, serial, e)) != 0 ||
	    (r = pki_index_load(c, &idx, e)) != 0)
		goto out;
	if (cfg_is_database(n) &&
	    (r = add_pair(c, &idx, n, "server",
		 c->server_mode == SERVER_SHARED ? "*" : n->name, rel, e)) != 0)
		goto out;
	if ((r = add_pair(c, &idx, n, "client", "-", rel, e)) == 0)
		r = add_crl(c, n, rel, e);
out:
	pki_index_free(&idx);
	if (r != 0)
		pki_release_free(rel);
	return r;
}

void
pki_release_free(struct pki_release *rel)
{
	int i;

	for (i = 0; i < rel->n; i++) {
		if (rel->files[i].data == NULL)
			continue;
		if (rel->files[i].mode == 0600)
			util_freezero(
			    rel->files[i].data, rel->files[i].len + 1);
		else
			free(rel->files[i].data);
	}
	memset(rel, 0, sizeof(*rel));
}

const struct pki_file *
pki_release_file(const struct pki_release *rel, const char *name)
{
	int i;

	for (i = 0; i < rel->n; i++)
		if (strcmp(rel->files[i].name, name) == 0)
			return &rel->files[i];
	return NULL;
}

/* One leaf of the release: key matches, chains to dbca with purpose. */
static int
check_pair(const struct cfg_node *n, const struct pki_release *rel,
    const char *kind, STACK_OF(X509) * bundle, X509 **leaf, struct dbpki_err *e)
{
	const struct pki_file *cf, *kf;
	char cn[16], kn[16];
	EVP_PKEY *k = NULL;
	int r;

	*leaf = NULL;
	util_fmt(cn, sizeof(cn), "%s.crt", kind);
	util_fmt(kn, sizeof(kn), "%s.key", kind);
	if ((cf = pki_release_file(rel, cn)) == NULL ||
	    (kf = pki_release_file(rel, kn)) == NULL)
		return err_set(e, DBPKI_E_VERIFY,
		    "node %s: the release has no "
		    "%s/%s",
		    n->name, cn, kn);
	if ((r = pki_cert_from_pem(cf->data, cf->len, cn, leaf, e)) != 0 ||
	    (r = pki_key_from_pem(kf->data, kf->len, NULL, kn, &k, e)) != 0)
		goto out;
	if (!pki_cert_key_matches(*leaf, k)) {
		r = err_set(e, DBPKI_E_VERIFY,
		    "node %s: %s does not belong to "
		    "%s",
		    n->name, kn, cn);
		goto out;
	}
	r = pki_verify(*leaf, bundle,
	    strcmp(kind, "server") == 0 ? PKI_PURPOSE_SERVER
					: PKI_PURPOSE_CLIENT,
	    NULL, 0, e);
out:
	EVP_PKEY_free(k);
	if (r != 0) {
		X509_free(*leaf);
		*leaf = NULL;
		if (e->code != DBPKI_E_VERIFY)
			e->code = DBPKI_E_VERIFY;
		if (strncmp(e->msg, "node ", 5) != 0)
			err_wrap(e, "node %s: %s", n->name, cn);
	}
	return r != 0 ? DBPKI_E_VERIFY : 0;
}

/* An expired or foreign CRL would make PostgreSQL refuse every client
 * certificate, replication included: never ship one. */
static int
check_crl(const struct dbpki_cluster *c, const struct cfg_node *n,
    const struct pki_release *rel, STACK_OF(X509) * bundle, struct dbpki_err *e)
{
	const struct pki_file *f = pki_release_file(rel, "crl.pem");
	char why[256];
	X509_CRL *crl = NULL;
	int r;

	if (f == NULL)
		return 0;
	if ((r = pki_crl_from_pem(f->data, f->len, "crl.pem", &crl, e)) == 0)
		r = pki_crl_check(crl,
		    sk_X509_value(bundle, sk_X509_num(bundle) - 1), util_now(),
		    e);
	X509_CRL_free(crl);
	if (r == 0)
		return 0;
	util_fmt(why, sizeof(why), "%s", e->msg);
	return err_set(e, DBPKI_E_VERIFY,
	    "node %s: crl.pem (%s/crl/dbca.crl): "
	    "%s; rebuild and ship it: dbpki revoke -c %s --crl-only",
	    n->name, c->state_dir, why, c->path[0] ? c->path : "FILE");
}

int
pki_release_check(const struct dbpki_cluster *c, const struct cfg_node *n,
    const struct pki_release *rel, struct dbpki_err *e)
{
	const struct pki_file *caf = pki_release_file(rel, "dbca.crt");
	STACK_OF(X509) *bundle = NULL;
	X509 *leaf = NULL;
	int r;

	(void)c;
	if (caf == NULL)
		return err_set(e, DBPKI_E_VERIFY,
		    "node %s: the release has no "
		    "dbca.crt",
		    n->name);
	/* Every certificate of dbca.crt: an imported chain has several. */
	if ((r = pki_bundle_from_pem(
		 caf->data, caf->len, "dbca.crt", &bundle, e)) != 0)
		return err_wrap(e, "node %s", n->name);
	if (cfg_is_database(n)) {
		if ((r = check_pair(n, rel, "server", bundle, &leaf, e)) != 0)
			goto out;
		if (!pki_cert_covers(leaf, n->host) ||
		    !pki_cert_covers(leaf, n->address)) {
			r = err_set(e, DBPKI_E_VERIFY,
			    "node %s: server.crt "
			    "does not cover %s and %s in its SANs; run: dbpki "
			    "issue",
			    n->name, n->host, n->address);
			goto out;
		}
		X509_free(leaf);
		leaf = NULL;
	}
	if ((r = check_pair(n, rel, "client", bundle, &leaf, e)) == 0)
		r = check_crl(c, n, rel, bundle, e);
out:
	X509_free(leaf);
	sk_X509_pop_free(bundle, X509_free);
	return r;
}
