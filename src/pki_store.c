/* pki_store: the local store under state_dir (see docs/store.md): layout,
 * the certificate index, the CA's files and its passphrase. */
#include "dbpki/pki.h"
#include "dbpki/log.h"
#include "dbpki/util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_HEADER                                                           \
	"# dbpki certificate index v1\n"                                       \
	"# serial\tstatus\tkind\tnode\tnot_before\tnot_after\tkey\tsubject\n"
#define INDEX_FIELDS 8

static const char *const store_dirs[] = {"ca", "issued", "keys"};

int
pki_store_path(
    const struct dbpki_cluster *c, char out[CFG_PATH], const char *fmt, ...)
{
	char rel[CFG_PATH];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(rel))
		return -1;
	return util_fmt(out, CFG_PATH, "%s/%s", c->state_dir, rel);
}

int
pki_store_prepare(const struct dbpki_cluster *c, struct dbpki_err *e)
{
	char p[CFG_PATH];
	size_t i;
	int r;

	if ((r = util_mkdirs(c->state_dir, UTIL_STORE_DIR, e)) != 0)
		return err_wrap(e, "state_dir");
	for (i = 0; i < sizeof(store_dirs) / sizeof(store_dirs[0]); i++) {
		if (pki_store_path(c, p, "%s", store_dirs[i]) != 0)
			return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		if ((r = util_mkdirs(p,
			 strcmp(store_dirs[i], "keys") == 0 ? 0700
							    : UTIL_STORE_DIR,
			 e)) != 0)
			return r;
	}
	return 0;
}

const char *
pki_status_name(enum pki_status s)
{
	switch (s) {
	case PKI_ACTIVE: return "active";
	case PKI_SUPERSEDED: return "superseded";
	case PKI_REVOKED: return "revoked";
	}
	return "?";
}

static int
status_parse(const char *s, enum pki_status *out)
{
	if (strcmp(s, "active") == 0)
		*out = PKI_ACTIVE;
	else if (strcmp(s, "superseded") == 0)
		*out = PKI_SUPERSEDED;
	else if (strcmp(s, "revoked") == 0)
		*out = PKI_REVOKED;
	else
		return -1;
	return 0;
}

void
pki_index_free(struct pki_index *idx)
{
	free(idx->v);
	idx->v = NULL;
	idx->n = idx->cap = 0;
}

int
pki_index_add(
    struct pki_index *idx, const struct pki_entry *ent, struct dbpki_err *e)
{
	struct pki_entry *nv;
	size_t cap;

	if (idx->n == idx->cap) {
		cap = idx->cap ? idx->cap * 2 : 64;
		if ((nv = realloc(idx->v, cap * sizeof(*nv))) == NULL)
			return err_set(e, DBPKI_E_NOMEM, "out of memory");
		idx->v = nv;
		idx->cap = cap;
	}
	idx->v[idx->n++] = *ent;
	return 0;
}

struct pki_entry *
pki_index_active(struct pki_index *idx, const char *kind, const char *node)
{
	size_t i;

	/* The newest active entry wins, should an interrupted run ever have
	 * left two. */
	for (i = idx->n; i > 0; i--)
		if (idx->v[i - 1].status == PKI_ACTIVE &&
		    strcmp(idx->v[i - 1].kind, kind) == 0 &&
		    strcmp(idx->v[i - 1].node, node) == 0)
			return &idx->v[i - 1];
	return NULL;
}

static int
valid_serial(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return n > 0 && n < PKI_SERIAL_HEX && s[n] == '\0';
}

static int
copy_field(char *dst, size_t dstsz, const char *src)
{
	return util_fmt(dst, dstsz, "%s", src);
}

/* Parse one index line (modified in place). */
static int
index_parse_line(char *line, struct pki_entry *ent)
{
	char *f[INDEX_FIELDS], *p = line, *tab;
	int i;

	memset(ent, 0, sizeof(*ent));
	for (i = 0; i < INDEX_FIELDS; i++) {
		f[i] = p;
		tab = strchr(p, '\t');
		if (i == INDEX_FIELDS - 1)
			break;
		if (tab == NULL)
			return -1;
		*tab = '\0';
		p = tab + 1;
	}
	if (strchr(f[INDEX_FIELDS - 1], '\t') != NULL || !valid_serial(f[0]) ||
	    status_parse(f[1], &ent->status) != 0)
		return -1;
	if (copy_field(ent->serial, sizeof(ent->serial), f[0]) != 0 ||
	    copy_field(ent->kind, sizeof(ent->kind), f[2]) != 0 ||
	    copy_field(ent->node, sizeof(ent->node), f[3]) != 0 ||
	    copy_field(ent->not_before, sizeof(ent->not_before), f[4]) != 0 ||
	    copy_field(ent->not_after, sizeof(ent->not_after), f[5]) != 0 ||
	    copy_field(ent->key, sizeof(ent->key), f[6]) != 0 ||
	    copy_field(ent->subject, sizeof(ent->subject), f[7]) != 0)
		return -1;
	return 0;
}

int
pki_index_load(
    const struct dbpki_cluster *c, struct pki_index *idx, struct dbpki_err *e)
{
	struct pki_entry ent;
	char path[CFG_PATH], *buf = NULL, *line, *nl;
	int r = 0, lineno = 0;

	memset(idx, 0, sizeof(*idx));
	if (pki_store_path(c, path, "index.tsv") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	r = util_read_file(path, 64 * UTIL_MAX_INPUT,
	    UTIL_RF_NOSYMLINK | UTIL_RF_NOTWRITABLE, &buf, NULL, e);
	if (r != 0 && errno == ENOENT && r == DBPKI_E_SYS)
		return 0;
	if (r != 0)
		return r;
	for (line = buf; line != NULL && *line != '\0'; line = nl) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl++ = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		if (index_parse_line(line, &ent) != 0) {
			r = err_set(e, DBPKI_E_CONFIG,
			    "%s:%d: malformed index "
			    "line; fix or remove it (every certificate is "
			    "also in %s/issued/)",
			    path, lineno, c->state_dir);
			break;
		}
		if ((r = pki_index_add(idx, &ent, e)) != 0)
			break;
	}
	free(buf);
	if (r != 0)
		pki_index_free(idx);
	return r;
}

int
pki_index_save(const struct dbpki_cluster *c, const struct pki_index *idx,
    struct dbpki_err *e)
{
	const struct pki_entry *v;
	char path[CFG_PATH], *buf = NULL;
	size_t len = 0, i;
	FILE *f;
	int r;

	if (pki_store_path(c, path, "index.tsv") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((f = open_memstream(&buf, &len)) == NULL)
		return err_sys(e, "cannot build the index");
	fputs(INDEX_HEADER, f);
	for (i = 0; i < idx->n; i++) {
		v = &idx->v[i];
		fprintf(f, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v->serial,
		    pki_status_name(v->status), v->kind, v->node, v->not_before,
		    v->not_after, v->key, v->subject);
	}
	if (fclose(f) != 0) {
		free(buf);
		return err_sys(e, "cannot build the index");
	}
	r = util_write_atomic(path, buf, len, 0644, e);
	free(buf);
	return r;
}

void
pki_entry_fill(
    struct pki_entry *ent, X509 *x, const char *kind, const char *node)
{
	enum cfg_key_alg alg;
	char cn[CFG_HOST], *p;
	EVP_PKEY *pub = X509_get0_pubkey(x);

	memset(ent, 0, sizeof(*ent));
	pki_cert_serial_hex(x, ent->serial);
	ent->status = PKI_ACTIVE;
	util_fmt(ent->kind, sizeof(ent->kind), "%s", kind);
	util_fmt(ent->node, sizeof(ent->node), "%s", node);
	util_iso8601(pki_cert_not_before(x), ent->not_before);
	util_iso8601(pki_cert_not_after(x), ent->not_after);
	if (pub != NULL && pki_key_alg(pub, &alg) == 0)
		util_fmt(ent->key, sizeof(ent->key), "%s", cfg_key_name(alg));
	else
		util_fmt(ent->key, sizeof(ent->key), "other");
	if (pki_cert_cn(x, cn, sizeof(cn)) != 0)
		cn[0] = '\0';
	/* Keep the index one record per line whatever a CSR's CN held. */
	for (p = cn; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	util_fmt(ent->subject, sizeof(ent->subject), "CN=%s", cn);
}

/* A passphrase file: private, not a symlink, one line, no NUL. */
static int
pass_file(const char *path, const char *what, char **out, struct dbpki_err *e)
{
	size_t len = 0;
	int r;

	if ((r = util_read_file(path, 4096, UTIL_RF_PRIVATE | UTIL_RF_NOSYMLINK,
		 out, &len, e)) != 0)
		return err_wrap(e, "%s", what);
	if (len > 0 && (*out)[len - 1] == '\n')
		(*out)[--len] = '\0';
	if (len > 0 && (*out)[len - 1] == '\r')
		(*out)[--len] = '\0';
	if (len == 0 || strlen(*out) != len) {
		util_freezero(*out, len + 1);
		*out = NULL;
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: the passphrase "
		    "is empty or contains a NUL byte",
		    path);
	}
	return 0;
}

int
pki_passphrase(const struct dbpki_cluster *c, char **out, struct dbpki_err *e)
{
	const char *env;

	*out = NULL;
	if (c->ca_passphrase_file[0] != '\0')
		return pass_file(
		    c->ca_passphrase_file, "[ca] passphrase_file", out, e);
	if (c->ca_passphrase_env[0] == '\0')
		return 0;
	env = getenv(c->ca_passphrase_env);
	if (env == NULL || *env == '\0')
		return err_set(e, DBPKI_E_CONFIG,
		    "[ca] passphrase_env: the "
		    "environment variable %s is not set or empty; export it "
		    "(never pass a passphrase on the command line)",
		    c->ca_passphrase_env);
	if ((*out = strdup(env)) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	return 0;
}

void
pki_ca_free(struct pki_ca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca);
}

/* The signing CA's files: ca/, or ca/next/ from stage 2 of a CA rollover
 * until its stage 3 (docs/ca-rollover.md), so issue and renew sign with
 * the CA the rollover has reached. */
static int
ca_paths(const struct dbpki_cluster *c, char crt[CFG_PATH], char key[CFG_PATH],
    struct dbpki_err *e)
{
	char dir[16];
	int r;

	if ((r = pki_rollover_ca_dir(c, dir, e)) != 0)
		return r;
	if (pki_store_path(c, crt, "%s/dbca.crt", dir) != 0 ||
	    pki_store_path(c, key, "%s/dbca.key", dir) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	return 0;
}

/* ---- the one CA key interface (pki.h) ------------------------------------ */

int
pki_cakey_generate(const struct dbpki_cluster *c, const char *uri,
    struct pki_cakey_new *nk, struct dbpki_err *e)
{
	char *pass = NULL;
	size_t n;
	int r;

	memset(nk, 0, sizeof(*nk));
	if (uri != NULL) {
		if ((r = pki_p11_generate(
			 c, uri, c->ca_token_key_type.alg, &nk->k, e)) != 0)
			return r;
		n = strlen(uri);
		if ((nk->blob = malloc(n + 2)) == NULL) {
			pki_cakey_new_free(nk);
			return err_set(e, DBPKI_E_NOMEM, "out of memory");
		}
		memcpy(nk->blob, uri, n);
		memcpy(nk->blob + n, "\n", 2);
		nk->len = n + 1;
		nk->name = PKI_CA_P11_REF;
		nk->mode = 0644;
		return 0;
	}
	nk->name = "dbca.key";
	nk->mode = 0600;
	if ((r = pki_passphrase(c, &pass, e)) != 0 ||
	    (r = pki_key_generate(c->ca_key.alg, &nk->k, e)) != 0 ||
	    (r = pki_key_to_pem(nk->k, pass, &nk->blob, &nk->len, e)) != 0)
		pki_cakey_new_free(nk);
	if (pass != NULL)
		util_freezero(pass, strlen(pass) + 1);
	return r;
}

void
pki_cakey_new_free(struct pki_cakey_new *nk)
{
	EVP_PKEY_free(nk->k);
	if (nk->blob != NULL)
		util_freezero(nk->blob, nk->len + 1);
	nk->k = NULL;
	nk->blob = NULL;
	nk->len = 0;
}

int
pki_cakey_load(const struct dbpki_cluster *c, const char *dir, EVP_PKEY **out,
    struct dbpki_err *e)
{
	char p[CFG_PATH], *uri = NULL, *pass = NULL;
	size_t len = 0;
	struct stat st;
	int r;

	*out = NULL;
	if (pki_store_path(c, p, "%s/%s", dir, PKI_CA_P11_REF) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if (lstat(p, &st) == 0) {
		if ((r = util_read_file(p, CFG_PATH,
			 UTIL_RF_NOSYMLINK | UTIL_RF_NOTWRITABLE, &uri, &len,
			 e)) != 0)
			return r;
		while (len > 0 && uri[len - 1] == '\n')
			uri[--len] = '\0';
		r = pki_p11_load(c, uri, out, e);
		free(uri);
		return r;
	}
	if (pki_store_path(c, p, "%s/dbca.key", dir) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = pki_passphrase(c, &pass, e)) == 0)
		r = pki_key_load_pem(p, pass, out, e);
	if (pass != NULL)
		util_freezero(pass, strlen(pass) + 1);
	return r;
}

static int
write_pem(const char *path, const unsigned char *buf, size_t len, mode_t mode,
    struct dbpki_err *e)
{
	return util_write_atomic(path, buf, len, mode, e);
}

/* Write issued/<serial>.crt and append an index entry. */
static int
record_cert(const struct dbpki_cluster *c, X509 *x, const unsigned char *pem,
    size_t len, const char *kind, const char *node, struct dbpki_err *e)
{
	struct pki_index idx;
	struct pki_entry ent;
	char path[CFG_PATH];
	int r;

	pki_entry_fill(&ent, x, kind, node);
	if (pki_store_path(c, path, "issued/%s.crt", ent.serial) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = write_pem(path, pem, len, 0644, e)) != 0)
		return r;
	if ((r = pki_index_load(c, &idx, e)) != 0)
		return r;
	if ((r = pki_index_add(&idx, &ent, e)) == 0)
		r = pki_index_save(c, &idx, e);
	pki_index_free(&idx);
	return r;
}

static int
ca_refuse_existing(
    const char *crt, const char *key, const char *ref, struct dbpki_err *e)
{
	struct stat st;

	if (lstat(crt, &st) == 0)
		return err_set(e, DBPKI_E_EXISTS,
		    "a CA already exists: %s; "
		    "refusing to overwrite it (every certificate of the "
		    "cluster depends on it). Use it as is, or move the "
		    "state_dir away to start over",
		    crt);
	if (lstat(key, &st) == 0 || (ref[0] != '\0' && lstat(ref, &st) == 0))
		return err_set(e, DBPKI_E_EXISTS,
		    "a CA key already exists: "
		    "%s (without its certificate); refusing to overwrite it. "
		    "Move it away if it is a leftover",
		    lstat(key, &st) == 0 ? key : ref);
	return 0;
}

/* The token key ca init makes: [ca] key's label on a fresh store; once
 * a CA was archived (rotate replaced an expired one), the label with the
 * time appended, as a rollover does: the archived CA's key keeps its
 * label on the token. */
static int
ca_init_uri(
    const struct dbpki_cluster *c, char uri[CFG_PATH], struct dbpki_err *e)
{
	char p[CFG_PATH], stamp[UTIL_STAMP_LEN];
	struct stat st;

	uri[0] = '\0';
	if (c->ca_key.uri[0] == '\0')
		return 0;
	if (pki_store_path(c, p, "ca/archive") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if (lstat(p, &st) != 0)
		return util_fmt(uri, CFG_PATH, "%s", c->ca_key.uri) == 0
			   ? 0
			   : err_set(e, DBPKI_E_CONFIG, "[ca] key too long");
	util_stamp(stamp);
	stamp[16] = '\0'; /* YYYYMMDDTHHMMSSZ */
	if (pki_p11_derive(c->ca_key.uri, stamp, uri, CFG_PATH) != 0)
		return err_set(
		    e, DBPKI_E_CONFIG, "[ca] key: the URI names no object=");
	return 0;
}

int
pki_ca_init(const struct dbpki_cluster *c, struct dbpki_err *e)
{
	struct pki_cakey_new nk = {0};
	struct pki_spec *s = NULL;
	char crt[CFG_PATH], key[CFG_PATH], ref[CFG_PATH], dir[16];
	char uri[CFG_PATH];
	unsigned char *cpem = NULL;
	size_t clen = 0;
	X509 *x = NULL;
	int r;

	if ((r = ca_paths(c, crt, key, e)) != 0 ||
	    (r = pki_rollover_ca_dir(c, dir, e)) != 0)
		return r;
	if (pki_store_path(c, ref, "%s/%s", dir, PKI_CA_P11_REF) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = pki_store_prepare(c, e)) != 0 ||
	    (r = ca_refuse_existing(crt, key, ref, e)) != 0 ||
	    (r = pki_ca_pass_ready(c, e)) != 0)
		goto out;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		r = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	s->profile = PKI_PROFILE_CA;
	s->validity = c->ca_validity;
	util_fmt(s->cn, sizeof(s->cn), "%s", c->ca_common_name);
	if ((r = ca_init_uri(c, uri, e)) != 0 ||
	    (r = pki_cakey_generate(
		 c, c->ca_key.uri[0] != '\0' ? uri : NULL, &nk, e)) != 0 ||
	    (r = pki_cert_build(s, nk.k, NULL, nk.k, &x, e)) != 0 ||
	    (r = pki_cert_to_pem(x, &cpem, &clen, e)) != 0)
		goto out;
	if (strcmp(nk.name, PKI_CA_P11_REF) == 0)
		util_fmt(key, sizeof(key), "%s", ref);
	/* Key first: a certificate without its key would be a CA that looks
	 * present but cannot sign.  Both are created exclusively, never
	 * replaced: of two `ca init` that got past ca_refuse_existing at
	 * once, one fails here, and a CA's key is never overwritten. */
	if ((r = util_write_new(key, nk.blob, nk.len, nk.mode, e)) != 0)
		goto out;
	if ((r = util_write_new(crt, cpem, clen, 0644, e)) != 0) {
		(void)unlink(key); /* ours, written just above */
		goto out;
	}
	if ((r = record_cert(c, x, cpem, clen, "ca", "-", e)) != 0)
		goto out;
out:
	pki_cakey_new_free(&nk);
	free(cpem);
	free(s);
	X509_free(x);
	return r;
}

int
pki_ca_load_cert(const struct dbpki_cluster *c, X509 **out, struct dbpki_err *e)
{
	char crt[CFG_PATH], key[CFG_PATH];
	struct stat st;
	int r;

	*out = NULL;
	if ((r = ca_paths(c, crt, key, e)) != 0)
		return r;
	if (lstat(crt, &st) == -1 && errno == ENOENT && pki_trust_imported(c))
		return err_set(e, DBPKI_E_NOCA,
		    "no dbca in %s/ca: the store trusts only the imported CA "
		    "(ca/trusted.pem), and this needs dbca; create it with: "
		    "dbpki ca init -c %s (nodes keep trusting the imported CA)",
		    c->state_dir, c->path[0] != '\0' ? c->path : "FILE");
	if (lstat(crt, &st) == -1 && errno == ENOENT)
		return err_set(e, DBPKI_E_NOCA,
		    "no CA in %s/ca; run: dbpki "
		    "ca init -c %s",
		    c->state_dir, c->path[0] != '\0' ? c->path : "FILE");
	return pki_cert_load_pem(crt, out, e);
}

int
pki_ca_load(
    const struct dbpki_cluster *c, struct pki_ca **out, struct dbpki_err *e)
{
	struct pki_ca *ca = NULL;
	char crt[CFG_PATH], key[CFG_PATH], dir[16];
	int r;

	*out = NULL;
	if ((r = ca_paths(c, crt, key, e)) != 0)
		return r;
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	if ((r = pki_ca_load_cert(c, &ca->cert, e)) != 0 ||
	    (r = pki_rollover_ca_dir(c, dir, e)) != 0 ||
	    (r = pki_cakey_load(c, dir, &ca->key, e)) != 0)
		goto out;
	if (!pki_cert_key_matches(ca->cert, ca->key)) {
		r = err_set(e, DBPKI_E_PKI,
		    "%s does not belong to %s; the CA "
		    "files are inconsistent",
		    key, crt);
		goto out;
	}
	*out = ca;
	ca = NULL;
out:
	pki_ca_free(ca);
	return r;
}

/* ---- the CA key at rest (docs/ca-key.md) --------------------------------- */

int
pki_ca_pass_ready(const struct dbpki_cluster *c, struct dbpki_err *e)
{
	char *pass = NULL;
	int r;

	if ((r = pki_passphrase(c, &pass, e)) != 0 || pass == NULL)
		return r;
	r = pki_pass_check(pass, "[ca] passphrase_file or passphrase_env", e);
	util_freezero(pass, strlen(pass) + 1);
	return r;
}

/* The CA keys of the store: ca/dbca.key, and ca/next/dbca.key during a
 * rollover.  1 if the i-th exists (its path in p), 0 if not, -1 past the
 * end. */
static int
ca_key_path(const struct dbpki_cluster *c, int i, char p[CFG_PATH])
{
	static const char *const keys[] = {
	    "ca/dbca.key", PKI_ROLLOVER_NEXT "/dbca.key"};
	struct stat st;

	if (i >= (int)(sizeof(keys) / sizeof(keys[0])))
		return -1;
	if (pki_store_path(c, p, "%s", keys[i]) != 0)
		return 0;
	return lstat(p, &st) == 0;
}

/* Re-encrypt one key file with pass (decrypted with old); atomic.  The
 * new bytes are decrypted and compared before they replace the file. */
static int
passwd_one(
    const char *path, const char *old, const char *pass, struct dbpki_err *e)
{
	unsigned char *kpem = NULL;
	char *buf = NULL;
	size_t len = 0, klen = 0;
	EVP_PKEY *k = NULL, *k2 = NULL;
	int r;

	if ((r = util_read_file(path, UTIL_MAX_INPUT,
		 UTIL_RF_PRIVATE | UTIL_RF_NOSYMLINK, &buf, &len, e)) != 0)
		return r;
	if ((r = pki_key_from_pem(buf, len, old, path, &k, e)) != 0 ||
	    (r = pki_key_to_pem(k, pass, &kpem, &klen, e)) != 0 ||
	    (r = pki_key_from_pem(kpem, klen, pass, path, &k2, e)) != 0)
		goto out;
	if (EVP_PKEY_eq(k, k2) != 1) {
		r = err_set(e, DBPKI_E_INTERNAL,
		    "%s: the re-encrypted key does not decrypt to the same "
		    "key; "
		    "nothing was changed",
		    path);
		goto out;
	}
	r = util_write_atomic(path, kpem, klen, 0600, e);
out:
	util_freezero(buf, len + 1);
	if (kpem != NULL)
		util_freezero(kpem, klen + 1);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
	return r;
}

int
pki_ca_passwd(const struct dbpki_cluster *c, const char *old_file, int *n_done,
    struct dbpki_err *e)
{
	char p[CFG_PATH], *pass = NULL, *old = NULL;
	int i, x, r;

	*n_done = 0;
	if ((r = pki_passphrase(c, &pass, e)) != 0)
		return r;
	if (pass == NULL)
		return err_set(e, DBPKI_E_CONFIG,
		    "ca passwd: no passphrase is configured; set [ca] "
		    "passphrase_file (or passphrase_env) to the new passphrase "
		    "(at least %d bytes) first",
		    PKI_PASS_MIN);
	if (strlen(pass) < PKI_PASS_MIN) {
		r = err_set(e, DBPKI_E_CONFIG,
		    "ca passwd: the configured passphrase has %zu bytes, at "
		    "least %d are needed; keep it in a 0600 file, write a "
		    "longer one to [ca] passphrase_file (e.g. `openssl rand "
		    "-base64 24`) and run: dbpki ca passwd -c %s "
		    "--old-passphrase-file OLDFILE",
		    strlen(pass), PKI_PASS_MIN,
		    c->path[0] != '\0' ? c->path : "INI");
		goto out;
	}
	if (old_file != NULL &&
	    (r = pass_file(old_file, "--old-passphrase-file", &old, e)) != 0)
		goto out;
	/* Each key is checked and replaced atomically on its own: should
	 * the second fail, the first is done and a rerun with the same
	 * --old-passphrase-file finishes (a key already on the new
	 * passphrase is refused with "wrong passphrase"; rerun without). */
	for (i = 0; (x = ca_key_path(c, i, p)) >= 0; i++) {
		if (x == 0)
			continue;
		if ((r = passwd_one(p, old != NULL ? old : pass, pass, e)) !=
		    0) {
			if (r == DBPKI_E_PKI && old == NULL)
				err_wrap(e,
				    "ca passwd (a new passphrase? give the old "
				    "one with --old-passphrase-file)");
			goto out;
		}
		log_info("re-encrypted %s (PBKDF2-HMAC-SHA256, %d iterations, "
			 "AES-256-CBC)",
		    p, PKI_KDF_ITER);
		++*n_done;
	}
	if (*n_done == 0)
		r = err_set(e, DBPKI_E_NOCA,
		    "no CA key in %s/ca; nothing to re-encrypt", c->state_dir);
out:
	if (pass != NULL)
		util_freezero(pass, strlen(pass) + 1);
	if (old != NULL)
		util_freezero(old, strlen(old) + 1);
	return r;
}

/* The configured passphrase's length, without keeping it: -1 when it
 * cannot be read (not configured, unreadable for this user). */
static long
pass_length(const struct dbpki_cluster *c)
{
	struct dbpki_err e;
	char *pass = NULL;
	long n;

	err_clear(&e);
	if (pki_passphrase(c, &pass, &e) != 0 || pass == NULL)
		return -1;
	n = (long)strlen(pass);
	util_freezero(pass, (size_t)n + 1);
	return n;
}

int
pki_ca_key_warning(const struct dbpki_cluster *c, char *out, size_t outsz)
{
	struct pki_key_prot kp;
	char p[CFG_PATH], *buf = NULL;
	const char *inv = c->path[0] != '\0' ? c->path : "INI";
	size_t len = 0;
	struct dbpki_err e;
	int i, x, seen = 0, exists = 0;
	long plen;

	out[0] = '\0';
	for (i = 0; (x = ca_key_path(c, i, p)) >= 0; i++) {
		if (x == 0)
			continue;
		exists = 1;
		err_clear(&e);
		/* The monitoring user may not read the key (0600): the
		 * inventory then tells whether it is encrypted. */
		if (util_read_file(p, UTIL_MAX_INPUT, UTIL_RF_NOSYMLINK, &buf,
			&len, &e) != 0)
			continue;
		x = pki_key_protection(buf, len, &kp);
		util_freezero(buf, len + 1);
		buf = NULL;
		if (x != 0)
			continue;
		seen = 1;
		if (!kp.encrypted && c->ca_plaintext_key == 0) {
			util_fmt(out, outsz,
			    "the CA key %s is stored in clear; set [ca] "
			    "passphrase_file and run: dbpki ca passwd -c %s "
			    "(or accept it: [ca] plaintext_key = accepted)",
			    p, inv);
			return 1;
		}
		if (kp.encrypted && !kp.strong) {
			if (kp.iter > 0)
				util_fmt(out, outsz,
				    "the CA key %s is encrypted with a weak "
				    "KDF (PBKDF2, %ld iterations); run: dbpki "
				    "ca passwd -c %s",
				    p, kp.iter, inv);
			else
				util_fmt(out, outsz,
				    "the CA key %s is encrypted with a weak "
				    "KDF (%s); run: dbpki ca passwd -c %s",
				    p, kp.kdf, inv);
			return 1;
		}
	}
	if (!seen && c->ca_plaintext_key == 0 &&
	    c->ca_passphrase_file[0] == '\0' &&
	    c->ca_passphrase_env[0] == '\0' && exists) {
		util_fmt(out, outsz,
		    "the CA key is stored in clear (no [ca] passphrase_file "
		    "or passphrase_env); set one and run: dbpki ca passwd -c "
		    "%s (or accept it: [ca] plaintext_key = accepted)",
		    inv);
		return 1;
	}
	if ((plen = pass_length(c)) >= 0 && plen < PKI_PASS_MIN) {
		util_fmt(out, outsz,
		    "the CA passphrase has %ld bytes (a new key needs %d); "
		    "write a longer one to [ca] %s and run: dbpki ca passwd "
		    "-c %s --old-passphrase-file OLD",
		    plen, PKI_PASS_MIN,
		    c->ca_passphrase_file[0] ? "passphrase_file"
					     : "passphrase_env",
		    inv);
		return 1;
	}
	return 0;
}

/* ---- what an interrupted writer left behind ------------------------------ */

/* util_write_atomic's temporary name: ".<base>.<16 hex>.tmp". */
static int
is_temp_name(const char *n)
{
	size_t len = strlen(n), i;

	if (len < 1 + 1 + 1 + 16 + 4 || n[0] != '.' ||
	    strcmp(n + len - 4, ".tmp") != 0 || n[len - 4 - 17] != '.')
		return 0;
	for (i = len - 4 - 16; i < len - 4; i++)
		if (strchr("0123456789abcdef", n[i]) == NULL)
			return 0;
	return 1;
}

/* keys/<serial>.key whose serial is not an active index entry. */
static int
is_orphan_key(const struct pki_index *idx, const char *n)
{
	char serial[PKI_SERIAL_HEX];
	size_t len = strlen(n), i;

	if (idx == NULL || len <= 4 || len - 4 >= sizeof(serial) ||
	    strcmp(n + len - 4, ".key") != 0)
		return 0;
	memcpy(serial, n, len - 4);
	serial[len - 4] = '\0';
	if (!valid_serial(serial))
		return 0;
	for (i = 0; i < idx->n; i++)
		if (idx->v[i].status == PKI_ACTIVE &&
		    strcmp(idx->v[i].serial, serial) == 0)
			return 0;
	return 1;
}

static void
sweep_dir(
    const struct dbpki_cluster *c, const char *rel, const struct pki_index *idx)
{
	char dir[CFG_PATH], p[CFG_PATH];
	struct dbpki_err ignored;
	struct dirent *de;
	struct stat st;
	int n = 0;
	DIR *d;

	if (pki_store_path(c, dir, "%s", rel) != 0 ||
	    (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!is_temp_name(de->d_name) &&
		    !(strcmp(rel, "keys") == 0 &&
			is_orphan_key(idx, de->d_name)))
			continue;
		if (util_fmt(p, sizeof(p), "%s/%s", dir, de->d_name) != 0 ||
		    lstat(p, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (unlink(p) == 0) {
			n++;
			log_info("removed %s/%s: left by an interrupted run "
				 "(no index line needs it)",
			    rel, de->d_name);
		} else
			log_warn("cannot remove %s, left by an interrupted "
				 "run: %s; remove it by hand",
			    p, strerror(errno));
	}
	closedir(d);
	if (n > 0)
		(void)util_fsync_dir(dir, &ignored);
}

int
pki_store_sweep(const struct dbpki_cluster *c, struct dbpki_err *e)
{
	static const char *const dirs[] = {".", "ca", "ca/next", "ca/rollover",
	    "issued", "keys", "csr", "crl"};
	struct pki_index idx = {0};
	char p[CFG_PATH];
	struct stat st;
	size_t i;
	int r, have_index;

	/* Without an index there is nothing to judge a key by: keep them
	 * all (a store whose index.tsv was lost is restored, not swept). */
	have_index =
	    pki_store_path(c, p, "index.tsv") == 0 && lstat(p, &st) == 0;
	if (have_index && (r = pki_index_load(c, &idx, e)) != 0)
		return r;
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		sweep_dir(c, dirs[i], have_index ? &idx : NULL);
	pki_index_free(&idx);
	return 0;
}

int
pki_store_record_signed(
    const struct dbpki_cluster *c, X509 *x, struct dbpki_err *e)
{
	unsigned char *pem = NULL;
	size_t len = 0;
	int r;

	if ((r = pki_store_prepare(c, e)) != 0 ||
	    (r = pki_cert_to_pem(x, &pem, &len, e)) != 0)
		return r;
	r = record_cert(c, x, pem, len, "signed", "-", e);
	free(pem);
	return r;
}
