/* pki_sign: certificates that leave the tool through --out.
 *
 *   sign        sign a CSR with dbca under a profile's rules, record the
 *               certificate in the store, then write --out;
 *   csr --out   a key and a CSR for an external CA;
 *   --out       files created exclusively (never replacing one unless
 *               --force says so, and then atomically).
 */
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"
#include "pki_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

/* ---- files that leave the tool ----------------------------------------- */

int
pki_out_check(const char *path, int force, struct dbpki_err *e)
{
	char sp[PKI_SHOW_PATH + 8], dir[CFG_PATH + 8], *slash;
	struct stat st;

	pki_show_path(path, sp);
	if (path[0] == '\0' || path[strlen(path) - 1] == '/')
		return err_set(e, DBPKI_E_USAGE,
		    "--out %s: give a file name, not a directory", sp);
	/* Its directory must take the file now: `sign` records the
	 * certificate before writing it, and should not record one that
	 * then has nowhere to go. */
	if (util_fmt(dir, sizeof(dir), "%s", path) != 0)
		return err_set(e, DBPKI_E_USAGE, "--out %s: too long", sp);
	if ((slash = strrchr(dir, '/')) == NULL)
		util_fmt(dir, sizeof(dir), ".");
	else
		slash[slash == dir ? 1 : 0] = '\0';
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode) ||
	    access(dir, W_OK | X_OK) == -1)
		return err_set(e, DBPKI_E_USAGE,
		    "--out %s: its directory does not exist or is not "
		    "writable; nothing done",
		    sp);
	if (lstat(path, &st) == -1)
		return 0;
	if (!force)
		return err_set(e, DBPKI_E_USAGE,
		    "%s already exists; dbpki does not overwrite it: choose "
		    "another name, or add --force to replace it",
		    sp);
	if (!S_ISREG(st.st_mode))
		return err_set(e, DBPKI_E_USAGE,
		    "%s exists and is not a regular file; --force replaces "
		    "only a regular file",
		    sp);
	return 0;
}

/* Exclusively (link(2) fails on an existing name, a dangling symlink
 * included), or with force replaced in one rename(2): a reader never sees
 * a half-written file either way. */
static int
out_write(const char *path, const void *data, size_t len, mode_t mode,
    int force, struct dbpki_err *e)
{
	return force ? util_write_atomic(path, data, len, mode, e)
		     : util_write_new(path, data, len, mode, e);
}

/* ---- csr --out ----------------------------------------------------------- */

int
pki_csr_write_out(const char *prefix, EVP_PKEY *k, X509_REQ *req, int force,
    struct dbpki_err *e)
{
	char kpath[CFG_PATH + 8], cpath[CFG_PATH + 8], *data = NULL;
	unsigned char *kpem = NULL;
	size_t klen = 0;
	BIO *b = NULL;
	long len;
	int r;

	if (util_fmt(kpath, sizeof(kpath), "%s.key", prefix) != 0 ||
	    util_fmt(cpath, sizeof(cpath), "%s.csr", prefix) != 0)
		return err_set(e, DBPKI_E_USAGE, "--out: too long");
	/* Both names are checked before either is written: a refusal
	 * leaves nothing behind. */
	if ((r = pki_out_check(kpath, force, e)) != 0 ||
	    (r = pki_out_check(cpath, force, e)) != 0 ||
	    (r = pki_key_to_pem(k, NULL, &kpem, &klen, e)) != 0)
		return r;
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509_REQ(b, req) ||
	    (len = BIO_get_mem_data(b, &data)) <= 0)
		r = err_ssl(e, "cannot encode the CSR");
	else if ((r = out_write(kpath, kpem, klen, 0600, force, e)) == 0 &&
		 (r = out_write(cpath, data, (size_t)len, 0644, force, e)) != 0)
		unlink(kpath); /* a key without its CSR is of no use */
	if (r == 0)
		log_info("wrote %s and %s (mode 0600)", cpath, kpath);
	BIO_free(b);
	util_freezero(kpem, klen + 1);
	return r;
}

/* ---- sign ---------------------------------------------------------------- */

/* Is name a role the cluster treats as privileged?  Then no client
 * certificate is signed for it: with `hostssl ... cert` its holder logs
 * in as that role.  *why says which. */
int
pki_role_privileged(
    const struct dbpki_cluster *c, const char *name, char *why, size_t whysz)
{
	const char *w = NULL, *node = NULL;
	int i;

	if (strcasecmp(name, "postgres") == 0)
		w = "the PostgreSQL superuser";
	else if (strcasecmp(name, c->client_common_name) == 0)
		w = "the cluster's own client identity ([client] common_name: "
		    "superuser and replication)";
	/* initdb names the bootstrap superuser after the OS user that runs
	 * it: the nodes' SSH user. */
	else if (strcasecmp(name, c->ssh.user) == 0)
		w = "the nodes' SSH user ([ssh] user), the name of their "
		    "bootstrap superuser";
	else if (strncasecmp(name, "pg_", 3) == 0)
		w = "a name PostgreSQL reserves for its predefined roles";
	for (i = 0; w == NULL && i < c->n_nodes; i++)
		if (strcasecmp(name, c->nodes[i].ssh.user) == 0) {
			w = "node";
			node = c->nodes[i].name;
		}
	if (w == NULL)
		return 0;
	if (node != NULL)
		util_fmt(why, whysz,
		    "the SSH user of node %s, the name of its "
		    "bootstrap superuser",
		    node);
	else
		util_fmt(why, whysz, "%s", w);
	return 1;
}

/* The profile's rules on what the CSR asks for. */
static int
sign_rules(const struct dbpki_cluster *c, const struct pki_spec *s,
    struct dbpki_err *e)
{
	char why[160];

	/* TLS clients match the host against the SANs only (RFC 6125;
	 * libpq with verify-full too): a server certificate without one
	 * fails at the first connection. */
	if (s->profile == PKI_PROFILE_SERVER && s->n_san == 0)
		return err_set(e, DBPKI_E_CONFIG,
		    "refused: the CSR (CN=%s) has no subjectAltName, and a "
		    "server certificate without one matches no host name; "
		    "make the CSR with --san NAME (every name and address "
		    "clients use)",
		    s->cn);
	if (s->profile == PKI_PROFILE_CLIENT &&
	    pki_role_privileged(c, s->cn, why, sizeof(why)))
		return err_set(e, DBPKI_E_CONFIG,
		    "refused: the CSR asks for a client certificate for '%s', "
		    "%s; whoever holds it would log in as that role. Sign a "
		    "CSR for an application role (or use dbpki issue-client "
		    "NAME)",
		    s->cn, why);
	return 0;
}

int
pki_csr_from_pem(const char *buf, size_t len, const char *what, X509_REQ **out,
    struct dbpki_err *e)
{
	char *name = NULL, *hdr = NULL;
	unsigned char *der = NULL;
	const unsigned char *q;
	int blocks = 0, r;
	long dlen = 0;
	BIO *b = NULL;

	*out = NULL;
	if ((r = pki_pem_text(buf, len, what, &blocks, e)) != 0)
		return r;
	if (blocks != 1)
		return pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
		    "%d PEM blocks; a CSR file holds exactly one", blocks);
	if (len > INT32_MAX || (b = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    PEM_read_bio(b, &name, &hdr, &der, &dlen) != 1 ||
	    (strcmp(name, "CERTIFICATE REQUEST") != 0 &&
		strcmp(name, "NEW CERTIFICATE REQUEST") != 0)) {
		r = pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
		    "not a PEM certificate request (CERTIFICATE REQUEST "
		    "block)");
		goto out;
	}
	/* Bytes after the DER request would be signed by nobody's intent. */
	q = der;
	if ((*out = d2i_X509_REQ(NULL, &q, dlen)) == NULL || q != der + dlen) {
		X509_REQ_free(*out);
		*out = NULL;
		r = pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
		    "the block is not exactly one DER certificate request");
	}
out:
	ERR_clear_error();
	BIO_free(b);
	OPENSSL_free(name);
	OPENSSL_free(hdr);
	OPENSSL_free(der);
	return r;
}

int
pki_csr_load(const char *path, X509_REQ **out, struct dbpki_err *e)
{
	char sp[PKI_SHOW_PATH + 8], *buf = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	pki_show_path(path, sp);
	if ((r = util_read_file(path, UTIL_MAX_INPUT, 0, &buf, &len, e)) != 0)
		return r;
	r = pki_csr_from_pem(buf, len, sp, out, e);
	free(buf);
	return r;
}

int
pki_sign_csr(const struct dbpki_cluster *c, const struct pki_sign_req *rq,
    struct dbpki_err *e)
{
	char(*names)[CFG_HOST] = NULL;
	char serial[PKI_SERIAL_HEX], sp[PKI_SHOW_PATH + 8];
	struct pki_spec *s = NULL;
	struct pki_ca *ca = NULL;
	unsigned char *pem = NULL;
	X509_REQ *req = NULL;
	X509 *x = NULL;
	size_t len = 0;
	int r;

	pki_show_path(rq->out, sp);
	names = calloc(PKI_MAX_SAN, sizeof(*names));
	s = calloc(1, sizeof(*s));
	if (names == NULL || s == NULL) {
		r = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	/* Everything that can refuse runs before the store changes. */
	if ((r = pki_out_check(rq->out, rq->force, e)) != 0 ||
	    (r = pki_csr_load(rq->csr, &req, e)) != 0 ||
	    (r = pki_csr_read_spec(req, s, names, PKI_MAX_SAN, e)) != 0)
		goto out;
	s->profile = rq->server ? PKI_PROFILE_SERVER : PKI_PROFILE_CLIENT;
	s->validity = rq->days > 0 ? rq->days * 86400
		      : rq->server ? c->server_validity
				   : c->client_validity;
	if ((r = sign_rules(c, s, e)) != 0 ||
	    (r = pki_ca_load(c, &ca, e)) != 0 ||
	    (r = pki_cert_build(s, X509_REQ_get0_pubkey(req), ca->cert, ca->key,
		 &x, e)) != 0 ||
	    (r = pki_cert_to_pem(x, &pem, &len, e)) != 0)
		goto out;
	/* Recorded first: a certificate that exists must be in the index,
	 * or it could never be revoked.  --out comes after, and a failure
	 * there leaves no file. */
	if ((r = pki_store_record_signed(c, x, e)) != 0) {
		err_wrap(e, "nothing signed: %s was not written", sp);
		goto out;
	}
	pki_cert_serial_hex(x, serial);
	if ((r = out_write(rq->out, pem, len, 0644, rq->force, e)) != 0) {
		err_wrap(e,
		    "the certificate is recorded in the store as serial %s "
		    "(%s/issued/%s.crt) but %s was not written; copy it from "
		    "there, or revoke it: dbpki revoke -c %s %s",
		    serial, c->state_dir, serial, sp,
		    c->path[0] ? c->path : "INVENTORY", serial);
		goto out;
	}
	pki_inspect_print(stdout, x, 0);
	log_info("wrote %s", sp);
out:
	free(pem);
	X509_free(x);
	X509_REQ_free(req);
	pki_ca_free(ca);
	free(s);
	free(names);
	return r;
}
