/* pki_crl: revocation in the local store and dbca's CRL (see
 * docs/revocation.md).  The index says *which* certificates are revoked;
 * crl/revoked.tsv says when and why; crl/dbca.crl is derived from both
 * and can always be rebuilt. */
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define CRL_FILE     "crl/dbca.crl"
#define REVOKED_FILE "crl/revoked.tsv"
#define REVOKED_HEADER                                                         \
	"# dbpki revocations v1: when and why (the index says what)\n"         \
	"# serial\trevoked_at\treason\n"

/* ---- reasons ------------------------------------------------------------ */

static const struct {
	int code;
	const char *name;
} reasons[] = {
    {PKI_REASON_UNSPECIFIED, "unspecified"},
    {PKI_REASON_KEY_COMPROMISE, "keyCompromise"},
    {PKI_REASON_AFFILIATION_CHANGED, "affiliationChanged"},
    {PKI_REASON_SUPERSEDED, "superseded"},
    {PKI_REASON_CESSATION, "cessationOfOperation"},
    {PKI_REASON_PRIVILEGE_WITHDRAWN, "privilegeWithdrawn"},
};
#define N_REASONS (sizeof(reasons) / sizeof(reasons[0]))

int
pki_crl_reason_parse(const char *s)
{
	size_t i;

	for (i = 0; i < N_REASONS; i++)
		if (strcmp(s, reasons[i].name) == 0)
			return reasons[i].code;
	return -1;
}

const char *
pki_crl_reason_name(int reason)
{
	size_t i;

	for (i = 0; i < N_REASONS; i++)
		if (reasons[i].code == reason)
			return reasons[i].name;
	return "?";
}

const char *
pki_crl_reason_list(void)
{
	return "unspecified, keyCompromise, affiliationChanged, superseded, "
	       "cessationOfOperation, privilegeWithdrawn";
}

/* ---- time --------------------------------------------------------------- */

int
pki_iso8601_parse(const char *s, int64_t *out)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (strlen(s) != 20 ||
	    (end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL ||
	    *end != '\0')
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

static int64_t
asn1_epoch(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* ---- building and checking a CRL ---------------------------------------- */

static int
revoked_entry(
    const struct pki_revoked *r, X509_REVOKED **out, struct dbpki_err *e)
{
	X509_REVOKED *rv = NULL;
	ASN1_INTEGER *ai = NULL;
	ASN1_ENUMERATED *en = NULL;
	ASN1_TIME *t = NULL;
	BIGNUM *bn = NULL;
	int ok;

	*out = NULL;
	if (r->serial[0] == '\0' ||
	    strspn(r->serial, "0123456789abcdef") != strlen(r->serial))
		return err_set(
		    e, DBPKI_E_INTERNAL, "bad serial '%.48s'", r->serial);
	ok = (rv = X509_REVOKED_new()) != NULL &&
	     BN_hex2bn(&bn, r->serial) != 0 &&
	     (ai = BN_to_ASN1_INTEGER(bn, NULL)) != NULL &&
	     X509_REVOKED_set_serialNumber(rv, ai) &&
	     (t = ASN1_TIME_set(NULL, (time_t)r->when)) != NULL &&
	     X509_REVOKED_set_revocationDate(rv, t);
	/* RFC 5280 5.3.1: leave the extension out rather than say
	 * "unspecified". */
	if (ok && r->reason != PKI_REASON_UNSPECIFIED)
		ok = (en = ASN1_ENUMERATED_new()) != NULL &&
		     ASN1_ENUMERATED_set(en, r->reason) &&
		     X509_REVOKED_add1_ext_i2d(rv, NID_crl_reason, en, 0, 0);
	BN_free(bn);
	ASN1_INTEGER_free(ai);
	ASN1_ENUMERATED_free(en);
	ASN1_TIME_free(t);
	if (!ok) {
		X509_REVOKED_free(rv);
		return err_ssl(
		    e, "cannot build the CRL entry for %s", r->serial);
	}
	*out = rv;
	return 0;
}

static int
crl_set_times(X509_CRL *crl, int64_t this_update, int64_t next_update)
{
	ASN1_TIME *a = ASN1_TIME_set(NULL, (time_t)this_update);
	ASN1_TIME *b = ASN1_TIME_set(NULL, (time_t)next_update);
	int ok = a != NULL && b != NULL && X509_CRL_set1_lastUpdate(crl, a) &&
		 X509_CRL_set1_nextUpdate(crl, b);

	ASN1_TIME_free(a);
	ASN1_TIME_free(b);
	return ok;
}

/* CRL number and authority key identifier (RFC 5280 5.2.3, 5.2.1). */
static int
crl_add_exts(X509_CRL *crl, X509 *ca, uint64_t number, struct dbpki_err *e)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
	AUTHORITY_KEYID *akid = NULL;
	ASN1_INTEGER *num = NULL;
	int ok;

	if (ski == NULL)
		return err_set(e, DBPKI_E_PKI,
		    "the CA certificate has no "
		    "subject key identifier; cannot name it in a CRL");
	ok = (num = ASN1_INTEGER_new()) != NULL &&
	     ASN1_INTEGER_set_uint64(num, number) &&
	     X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) == 1 &&
	     (akid = AUTHORITY_KEYID_new()) != NULL &&
	     (akid->keyid = ASN1_OCTET_STRING_dup(ski)) != NULL &&
	     X509_CRL_add1_ext_i2d(
		 crl, NID_authority_key_identifier, akid, 0, 0) == 1;
	ASN1_INTEGER_free(num);
	AUTHORITY_KEYID_free(akid);
	return ok ? 0 : err_ssl(e, "cannot add the CRL extensions");
}

int
pki_crl_build(X509 *ca, EVP_PKEY *key, const struct pki_revoked *v, size_t n,
    uint64_t number, int64_t this_update, int64_t next_update, X509_CRL **out,
    struct dbpki_err *e)
{
	X509_REVOKED *rv;
	X509_CRL *crl;
	size_t i;
	int r = 0;

	*out = NULL;
	if (next_update <= this_update)
		return err_set(e, DBPKI_E_INTERNAL,
		    "CRL nextUpdate must follow thisUpdate");
	if ((crl = X509_CRL_new()) == NULL)
		return err_ssl(e, "out of memory");
	if (!X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) ||
	    !crl_set_times(crl, this_update, next_update)) {
		r = err_ssl(e, "cannot set up the CRL");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = revoked_entry(&v[i], &rv, e)) != 0)
			goto out;
		if (!X509_CRL_add0_revoked(crl, rv)) {
			X509_REVOKED_free(rv);
			r = err_ssl(e, "cannot add %s to the CRL", v[i].serial);
			goto out;
		}
	}
	if ((r = crl_add_exts(crl, ca, number, e)) != 0)
		goto out;
	if (!X509_CRL_sort(crl) ||
	    X509_CRL_sign(crl, key, pki_key_digest(key)) <= 0) {
		r = err_ssl(e, "cannot sign the CRL");
		goto out;
	}
	*out = crl;
	crl = NULL;
out:
	X509_CRL_free(crl);
	return r;
}

int
pki_crl_check(X509_CRL *crl, X509 *ca, int64_t now, struct dbpki_err *e)
{
	int64_t tu = asn1_epoch(X509_CRL_get0_lastUpdate(crl));
	int64_t nu = asn1_epoch(X509_CRL_get0_nextUpdate(crl));
	EVP_PKEY *pub = X509_get0_pubkey(ca);
	char when[32];

	if (X509_NAME_cmp(
		X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0)
		return err_set(e, DBPKI_E_VERIFY, "issued by another CA");
	if (pub == NULL || X509_CRL_verify(crl, pub) != 1) {
		ERR_clear_error();
		return err_set(e, DBPKI_E_VERIFY, "bad signature");
	}
	if (tu > now + PKI_BACKDATE)
		return err_set(e, DBPKI_E_VERIFY, "not yet valid");
	if (nu == 0)
		return err_set(e, DBPKI_E_VERIFY, "has no nextUpdate");
	if (nu <= now) {
		util_iso8601(nu, when);
		return err_set(e, DBPKI_E_VERIFY, "expired on %s", when);
	}
	return 0;
}

int
pki_crl_from_pem(const void *buf, size_t len, const char *what, X509_CRL **out,
    struct dbpki_err *e)
{
	BIO *b;

	*out = NULL;
	if (len > INT32_MAX || (b = BIO_new_mem_buf(buf, (int)len)) == NULL)
		return err_ssl(e, "%s: cannot read", what);
	*out = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
	BIO_free(b);
	if (*out == NULL)
		return err_ssl(e, "%s: not a PEM CRL", what);
	return 0;
}

int
pki_crl_to_pem(
    X509_CRL *crl, unsigned char **out, size_t *len, struct dbpki_err *e)
{
	BIO *b;
	char *p = NULL;
	long n;
	int r = 0;

	*out = NULL;
	*len = 0;
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509_CRL(b, crl)) {
		BIO_free(b);
		return err_ssl(e, "cannot encode the CRL");
	}
	n = BIO_get_mem_data(b, &p);
	if (n <= 0 || (*out = malloc((size_t)n + 1)) == NULL)
		r = err_set(e, DBPKI_E_NOMEM, "out of memory");
	else {
		memcpy(*out, p, (size_t)n);
		(*out)[n] = '\0';
		*len = (size_t)n;
	}
	BIO_free(b);
	return r;
}

uint64_t
pki_crl_number(const X509_CRL *crl)
{
	ASN1_INTEGER *ai =
	    X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	uint64_t v = 0;

	if (ai != NULL && !ASN1_INTEGER_get_uint64(&v, ai))
		v = 0;
	ASN1_INTEGER_free(ai);
	ERR_clear_error();
	return v;
}

int64_t
pki_crl_next_update_of(const X509_CRL *crl)
{
	return asn1_epoch(X509_CRL_get0_nextUpdate(crl));
}

/* ---- the store's files -------------------------------------------------- */

static int
store_file(const struct dbpki_cluster *c, char p[CFG_PATH], const char *rel,
    struct dbpki_err *e)
{
	if (pki_store_path(c, p, "%s", rel) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	return 0;
}

static int
exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

int
pki_crl_load(const struct dbpki_cluster *c, X509_CRL **out, struct dbpki_err *e)
{
	char p[CFG_PATH], *buf = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if ((r = store_file(c, p, CRL_FILE, e)) != 0 ||
	    (r = util_read_file(p, UTIL_MAX_INPUT,
		 UTIL_RF_NOSYMLINK | UTIL_RF_NOTWRITABLE, &buf, &len, e)) != 0)
		return r;
	r = pki_crl_from_pem(buf, len, p, out, e);
	free(buf);
	return r;
}

static int
revoked_parse_line(char *line, struct pki_revoked *rv)
{
	char *f[3], *p = line, *tab;
	int i;

	memset(rv, 0, sizeof(*rv));
	for (i = 0; i < 3; i++) {
		f[i] = p;
		if ((tab = strchr(p, '\t')) == NULL && i < 2)
			return -1;
		if (tab != NULL) {
			*tab = '\0';
			p = tab + 1;
		}
	}
	if (tab != NULL || f[0][0] == '\0' ||
	    strspn(f[0], "0123456789abcdef") != strlen(f[0]) ||
	    util_fmt(rv->serial, sizeof(rv->serial), "%s", f[0]) != 0 ||
	    pki_iso8601_parse(f[1], &rv->when) != 0 ||
	    (rv->reason = pki_crl_reason_parse(f[2])) < 0)
		return -1;
	return 0;
}

int
pki_revoked_load(const struct dbpki_cluster *c, struct pki_revoked **out,
    size_t *n, struct dbpki_err *e)
{
	struct pki_revoked *v = NULL, *nv;
	char p[CFG_PATH], *buf = NULL, *line, *nl;
	size_t cap = 0;
	int r, lineno = 0;

	*out = NULL;
	*n = 0;
	if ((r = store_file(c, p, REVOKED_FILE, e)) != 0)
		return r;
	if (!exists(p))
		return 0;
	if ((r = util_read_file(p, 16 * UTIL_MAX_INPUT,
		 UTIL_RF_NOSYMLINK | UTIL_RF_NOTWRITABLE, &buf, NULL, e)) != 0)
		return r;
	for (line = buf; line != NULL && *line != '\0'; line = nl) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl++ = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				r = err_set(e, DBPKI_E_NOMEM, "out of memory");
				break;
			}
			v = nv;
		}
		if (revoked_parse_line(line, &v[*n]) != 0) {
			r = err_set(e, DBPKI_E_CONFIG,
			    "%s:%d: malformed line; "
			    "expected SERIAL<tab>ISO-TIME<tab>REASON",
			    p, lineno);
			break;
		}
		(*n)++;
	}
	free(buf);
	if (r != 0) {
		free(v);
		*n = 0;
		return r;
	}
	*out = v;
	return 0;
}

static int
revoked_save(const struct dbpki_cluster *c, const struct pki_revoked *v,
    size_t n, struct dbpki_err *e)
{
	char p[CFG_PATH], when[32], *buf = NULL;
	size_t len = 0, i;
	FILE *f;
	int r;

	if ((r = store_file(c, p, "crl", e)) != 0 ||
	    (r = util_mkdirs(p, UTIL_STORE_DIR, e)) != 0 ||
	    (r = store_file(c, p, REVOKED_FILE, e)) != 0)
		return r;
	if ((f = open_memstream(&buf, &len)) == NULL)
		return err_sys(e, "cannot build %s", p);
	fputs(REVOKED_HEADER, f);
	for (i = 0; i < n; i++) {
		util_iso8601(v[i].when, when);
		fprintf(f, "%s\t%s\t%s\n", v[i].serial, when,
		    pki_crl_reason_name(v[i].reason));
	}
	if (fclose(f) != 0) {
		free(buf);
		return err_sys(e, "cannot build %s", p);
	}
	r = util_write_atomic(p, buf, len, 0644, e);
	free(buf);
	return r;
}

/* Record (or replace) when and why serial was revoked. */
static int
revoked_record(const struct dbpki_cluster *c, const char *serial, int reason,
    struct dbpki_err *e)
{
	struct pki_revoked *v = NULL, *nv;
	size_t n = 0, i;
	int r;

	if ((r = pki_revoked_load(c, &v, &n, e)) != 0)
		return r;
	for (i = 0; i < n && strcmp(v[i].serial, serial) != 0; i++)
		;
	if (i == n) {
		if ((nv = realloc(v, (n + 1) * sizeof(*v))) == NULL) {
			free(v);
			return err_set(e, DBPKI_E_NOMEM, "out of memory");
		}
		v = nv;
		n++;
	}
	memset(&v[i], 0, sizeof(v[i]));
	util_fmt(v[i].serial, sizeof(v[i].serial), "%s", serial);
	v[i].when = util_now();
	v[i].reason = reason;
	r = revoked_save(c, v, n, e);
	free(v);
	return r;
}

/* ---- pki_revoke ---------------------------------------------------------- */

/* Lower-case hex without colons and leading zeros ("3A:0F" -> "3a0f"). */
static int
serial_norm(const char *in, char out[PKI_SERIAL_HEX])
{
	size_t k = 0;

	if (strncmp(in, "0x", 2) == 0 || strncmp(in, "0X", 2) == 0)
		in += 2;
	for (; *in != '\0'; in++) {
		if (*in == ':')
			continue;
		if (!isxdigit((unsigned char)*in) || k + 1 >= PKI_SERIAL_HEX)
			return -1;
		if (k == 0 && *in == '0')
			continue;
		out[k++] = (char)tolower((unsigned char)*in);
	}
	if (k == 0)
		out[k++] = '0';
	out[k] = '\0';
	return 0;
}

static const char *
inv(const struct dbpki_cluster *c)
{
	return c->path[0] != '\0' ? c->path : "FILE";
}

static int
find_serial(const struct dbpki_cluster *c, struct pki_index *idx,
    const char *serial, struct pki_entry **out, struct dbpki_err *e)
{
	char want[PKI_SERIAL_HEX], have[PKI_SERIAL_HEX];
	size_t i;

	if (serial_norm(serial, want) != 0)
		return err_set(e, DBPKI_E_USAGE,
		    "'%.64s' is not a serial "
		    "number (hexadecimal, as `dbpki list -c %s` shows it)",
		    serial, inv(c));
	for (i = 0; i < idx->n; i++) {
		if (serial_norm(idx->v[i].serial, have) == 0 &&
		    strcmp(have, want) == 0) {
			*out = &idx->v[i];
			return 0;
		}
	}
	return err_set(e, DBPKI_E_USAGE,
	    "serial %s is not in the index of %s; "
	    "see: dbpki list -c %s",
	    want, c->state_dir, inv(c));
}

static int
matches(const struct pki_entry *ent, const struct pki_revoke_req *req)
{
	return ent->status == PKI_ACTIVE && strcmp(ent->kind, "ca") != 0 &&
	       (req->node == NULL || strcmp(ent->node, req->node) == 0) &&
	       (req->kind == NULL || strcmp(ent->kind, req->kind) == 0);
}

static int
find_selection(const struct dbpki_cluster *c, struct pki_index *idx,
    const struct pki_revoke_req *req, struct pki_entry **out,
    struct dbpki_err *e)
{
	char what[CFG_NAME + 48], list[512] = "";
	size_t i, len;
	int n = 0;

	util_fmt(what, sizeof(what), "%s%s%s%s%s", req->node ? "--node " : "",
	    req->node ? req->node : "", req->node && req->kind ? " " : "",
	    req->kind ? "--kind " : "", req->kind ? req->kind : "");
	for (i = 0; i < idx->n; i++) {
		if (!matches(&idx->v[i], req))
			continue;
		if (n++ == 0)
			*out = &idx->v[i];
		len = strlen(list);
		if (len < sizeof(list) - 1)
			snprintf(list + len, sizeof(list) - len, "%s%s (%s %s)",
			    len ? ", " : "", idx->v[i].serial, idx->v[i].kind,
			    idx->v[i].node);
	}
	if (n == 1)
		return 0;
	if (n == 0)
		return err_set(e, DBPKI_E_USAGE,
		    "no active certificate matches "
		    "%s; see: dbpki list -c %s --status active",
		    what, inv(c));
	return err_set(e, DBPKI_E_USAGE,
	    "%d active certificates match %s: "
	    "%s; give one serial, or narrow it with --kind",
	    n, what, list);
}

static void
drop_key(const struct dbpki_cluster *c, const char *serial)
{
	char p[CFG_PATH];

	/* A revoked key is of no use to anyone who should have it. */
	if (pki_store_path(c, p, "keys/%s.key", serial) == 0 &&
	    unlink(p) == -1 && errno != ENOENT)
		log_warn("cannot remove the revoked certificate's key %s: %s",
		    p, strerror(errno));
}

int
pki_revoke(const struct dbpki_cluster *c, const struct pki_revoke_req *req,
    struct pki_revoke_res *res, struct dbpki_err *e)
{
	struct pki_index idx = {0};
	struct pki_entry *ent = NULL;
	int r;

	memset(res, 0, sizeof(*res));
	if (pki_trust_imported(c))
		return err_set(e, DBPKI_E_USAGE,
		    "the store trusts an imported CA "
		    "(%s/ca/trusted.pem): its leaves are revoked by that CA, "
		    "not by dbca (docs/revocation.md)",
		    c->state_dir);
	if (req->serial == NULL && req->node == NULL && req->kind == NULL)
		return err_set(
		    e, DBPKI_E_USAGE, "revoke: give a SERIAL or --node/--kind");
	if ((r = pki_index_load(c, &idx, e)) != 0)
		return r;
	if (req->serial != NULL)
		r = find_serial(c, &idx, req->serial, &ent, e);
	else
		r = find_selection(c, &idx, req, &ent, e);
	if (r != 0)
		goto out;
	if (strcmp(ent->kind, "ca") == 0) {
		r = err_set(e, DBPKI_E_USAGE,
		    "%s is a CA certificate (%s); a CA "
		    "is not revoked by its own CRL: to replace dbca see "
		    "docs/rotate.md",
		    ent->serial, ent->subject);
		goto out;
	}
	res->already = ent->status == PKI_REVOKED;
	res->was_active = ent->status == PKI_ACTIVE;
	if (!res->already) {
		/* When and why first: an index line that says revoked always
		 * has its details, or gets "unspecified, now" at worst. */
		if ((r = revoked_record(c, ent->serial, req->reason, e)) != 0)
			goto out;
		ent->status = PKI_REVOKED;
		if ((r = pki_index_save(c, &idx, e)) != 0)
			goto out;
		drop_key(c, ent->serial);
	}
	res->ent = *ent;
out:
	pki_index_free(&idx);
	return r;
}

/* ---- the CRL file ------------------------------------------------------- */

/* Did ca sign issued/<serial>.crt?  A certificate file that cannot be read
 * counts as "yes": listing a serial too many harms no one. */
static int
signed_by(const struct dbpki_cluster *c, const char *serial, X509 *ca)
{
	struct dbpki_err e;
	char p[CFG_PATH];
	X509 *x = NULL;
	int yes = 1;

	err_clear(&e);
	if (pki_store_path(c, p, "issued/%s.crt", serial) != 0 ||
	    pki_cert_load_pem(p, &x, &e) != 0) {
		ERR_clear_error();
		return 1;
	}
	yes = X509_NAME_cmp(
		  X509_get_issuer_name(x), X509_get_subject_name(ca)) == 0 &&
	      X509_verify(x, X509_get0_pubkey(ca)) == 1;
	ERR_clear_error();
	X509_free(x);
	return yes;
}

/* The CRL's entries: every revoked leaf dbca signed, with its details. */
static int
collect(const struct dbpki_cluster *c, X509 *ca, struct pki_revoked **out,
    size_t *n, struct dbpki_err *e)
{
	struct pki_index idx = {0};
	struct pki_revoked *det = NULL, *v = NULL;
	size_t nd = 0, i, k;
	int r;

	*out = NULL;
	*n = 0;
	if ((r = pki_index_load(c, &idx, e)) != 0 ||
	    (r = pki_revoked_load(c, &det, &nd, e)) != 0)
		goto out;
	if ((v = calloc(idx.n + 1, sizeof(*v))) == NULL) {
		r = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < idx.n; i++) {
		const struct pki_entry *ent = &idx.v[i];

		if (ent->status != PKI_REVOKED ||
		    strcmp(ent->kind, "ca") == 0 ||
		    !signed_by(c, ent->serial, ca))
			continue;
		util_fmt(v[*n].serial, sizeof(v[*n].serial), "%s", ent->serial);
		v[*n].when = util_now();
		v[*n].reason = PKI_REASON_UNSPECIFIED;
		for (k = 0; k < nd; k++)
			if (strcmp(det[k].serial, ent->serial) == 0)
				v[*n] = det[k];
		(*n)++;
	}
	*out = v;
	v = NULL;
out:
	free(v);
	free(det);
	pki_index_free(&idx);
	return r;
}

/* The previous CRL's number + 1 when this CA signed it, else 1. */
static uint64_t
next_number(const struct dbpki_cluster *c, X509 *ca)
{
	struct dbpki_err e;
	X509_CRL *old = NULL;
	uint64_t n = 1;

	err_clear(&e);
	if (pki_crl_load(c, &old, &e) == 0 &&
	    X509_NAME_cmp(
		X509_CRL_get_issuer(old), X509_get_subject_name(ca)) == 0 &&
	    X509_CRL_verify(old, X509_get0_pubkey(ca)) == 1)
		n = pki_crl_number(old) + 1;
	ERR_clear_error();
	X509_CRL_free(old);
	return n;
}

static int
crl_write(const struct dbpki_cluster *c, X509_CRL *crl, struct dbpki_err *e)
{
	unsigned char *pem = NULL;
	char p[CFG_PATH];
	size_t len = 0;
	int r;

	if ((r = store_file(c, p, "crl", e)) != 0 ||
	    (r = util_mkdirs(p, UTIL_STORE_DIR, e)) != 0 ||
	    (r = store_file(c, p, CRL_FILE, e)) != 0 ||
	    (r = pki_crl_to_pem(crl, &pem, &len, e)) != 0)
		return r;
	r = util_write_atomic(p, pem, len, 0644, e);
	free(pem);
	return r;
}

int
pki_crl_update(const struct dbpki_cluster *c, struct dbpki_err *e)
{
	struct pki_revoked *v = NULL;
	struct pki_ca *ca = NULL;
	X509_CRL *crl = NULL;
	int64_t now = util_now();
	uint64_t number;
	char when[32];
	size_t n = 0;
	int r;

	if (pki_trust_imported(c))
		return err_set(e, DBPKI_E_USAGE,
		    "the store trusts an imported CA: dbca signs no CRL "
		    "(docs/revocation.md)");
	if ((r = pki_ca_load(c, &ca, e)) != 0 ||
	    (r = collect(c, ca->cert, &v, &n, e)) != 0)
		goto out;
	number = next_number(c, ca->cert);
	/* Backdated like certificates: a node whose clock is a little behind
	 * must not find the CRL "not yet valid" and refuse every client. */
	if ((r = pki_crl_build(ca->cert, ca->key, v, n, number,
		 now - PKI_BACKDATE, now + c->ca_crl_validity, &crl, e)) != 0 ||
	    (r = crl_write(c, crl, e)) != 0)
		goto out;
	util_iso8601(now + c->ca_crl_validity, when);
	log_info("CRL %s/%s: number %llu, %zu revoked certificate(s), next "
		 "update %s",
	    c->state_dir, CRL_FILE, (unsigned long long)number, n, when);
out:
	if (r != 0)
		err_wrap(e, "updating the CRL");
	X509_CRL_free(crl);
	free(v);
	pki_ca_free(ca);
	return r;
}

/* Why the stored CRL must be rebuilt, or NULL. */
static const char *
refresh_reason(const struct dbpki_cluster *c, X509_CRL *crl, X509 *ca)
{
	int64_t margin = c->renew_before, nu = pki_crl_next_update_of(crl);

	/* Half the CRL's life at most: with crl_validity <= renew_before
	 * every renew run would otherwise rebuild it. */
	if (margin > c->ca_crl_validity / 2)
		margin = c->ca_crl_validity / 2;
	if (X509_NAME_cmp(
		X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0 ||
	    X509_CRL_verify(crl, X509_get0_pubkey(ca)) != 1) {
		ERR_clear_error();
		return "dbca did not sign it (a new CA?)";
	}
	if (nu - util_now() <= margin)
		return "its nextUpdate is near";
	return NULL;
}

int
pki_crl_refresh(
    const struct dbpki_cluster *c, int *refreshed, struct dbpki_err *e)
{
	X509_CRL *crl = NULL;
	X509 *ca = NULL;
	const char *why;
	char p[CFG_PATH];
	int r;

	if (refreshed != NULL)
		*refreshed = 0;
	if (pki_trust_imported(c))
		return 0;
	if ((r = store_file(c, p, CRL_FILE, e)) != 0)
		return r;
	if (!exists(p))
		return 0;
	if ((r = pki_ca_load_cert(c, &ca, e)) != 0)
		return r;
	if (pki_crl_load(c, &crl, e) != 0) {
		/* Derived data: rebuild it rather than stop a renewal. */
		log_warn("%s; rebuilding it", e->msg);
		err_clear(e);
		why = "unreadable";
	} else
		why = refresh_reason(c, crl, ca);
	X509_CRL_free(crl);
	X509_free(ca);
	if (why == NULL)
		return 0;
	log_info("CRL %s: %s: rebuilding it", p, why);
	if ((r = pki_crl_update(c, e)) == 0 && refreshed != NULL)
		*refreshed = 1;
	return r;
}

int
pki_crl_next_update(
    const struct dbpki_cluster *c, int64_t *t, struct dbpki_err *e)
{
	X509_CRL *crl = NULL;
	char p[CFG_PATH];
	int r;

	*t = 0;
	if ((r = store_file(c, p, CRL_FILE, e)) != 0)
		return r;
	if (!exists(p))
		return 0;
	if ((r = pki_crl_load(c, &crl, e)) != 0)
		return r;
	*t = pki_crl_next_update_of(crl);
	X509_CRL_free(crl);
	return 0;
}
