/* pki_cert: the signing profiles (dbca, dbserver, dbclient), SANs, CSRs and
 * small certificate accessors. */
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define CN_MAX 64 /* ub-common-name (RFC 5280) */

static int
set_serial(X509 *x, struct dbpki_err *e)
{
	unsigned char buf[PKI_SERIAL_BYTES];
	BIGNUM *bn = NULL;
	int r = 0;

	if (RAND_bytes(buf, sizeof(buf)) != 1)
		return err_ssl(e, "cannot get random bytes for a serial");
	/* Positive (DER INTEGER sign bit clear) and exactly 20 bytes long,
	 * which is the most RFC 5280 allows. */
	buf[0] &= 0x7f;
	if (buf[0] == 0)
		buf[0] = 0x01;
	if ((bn = BN_bin2bn(buf, sizeof(buf), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		r = err_ssl(e, "cannot set the serial number");
	BN_free(bn);
	return r;
}

static int
set_cn(X509_NAME *name, const char *cn, struct dbpki_err *e)
{
	if (strlen(cn) == 0 || strlen(cn) > CN_MAX)
		return err_set(e, DBPKI_E_CONFIG,
		    "common name '%.80s' must be "
		    "1 to %d characters",
		    cn, CN_MAX);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
		(const unsigned char *)cn, -1, -1, 0))
		return err_ssl(e, "cannot set common name '%.80s'", cn);
	return 0;
}

static int
set_validity(X509 *x, int64_t validity, X509 *issuer, struct dbpki_err *e)
{
	int64_t now = util_now(), nb = now - PKI_BACKDATE, na = now + validity;

	/* A leaf must never outlive its CA: clients would reject it the day
	 * the CA expires anyway, and the renewal logic would not see it. */
	if (issuer != NULL && na > pki_cert_not_after(issuer))
		na = pki_cert_not_after(issuer);
	if (issuer != NULL && nb < pki_cert_not_before(issuer))
		nb = pki_cert_not_before(issuer);
	if (na <= now)
		return err_set(e, DBPKI_E_PKI,
		    "the CA has expired; nothing it "
		    "signs would be valid (create a new CA)");
	if (ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) == NULL)
		return err_ssl(e, "cannot set the validity");
	return 0;
}

static int
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *val, struct dbpki_err *e)
{
	X509_EXTENSION *ext;
	int ok;

	if ((ext = X509V3_EXT_conf_nid(NULL, ctx, nid, val)) == NULL)
		return err_ssl(
		    e, "cannot build extension %s = %s", OBJ_nid2sn(nid), val);
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!ok)
		return err_ssl(e, "cannot add extension %s", OBJ_nid2sn(nid));
	return 0;
}

static GENERAL_NAME *
gn_make(const char *s)
{
	GENERAL_NAME *gn = NULL;
	ASN1_OCTET_STRING *ip;
	ASN1_IA5STRING *dns;

	if (util_valid_ip(s)) {
		if ((ip = a2i_IPADDRESS(s)) == NULL ||
		    (gn = GENERAL_NAME_new()) == NULL) {
			ASN1_OCTET_STRING_free(ip);
			return NULL;
		}
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
		return gn;
	}
	if ((dns = ASN1_IA5STRING_new()) == NULL ||
	    !ASN1_STRING_set(dns, s, -1) || (gn = GENERAL_NAME_new()) == NULL) {
		ASN1_IA5STRING_free(dns);
		return NULL;
	}
	GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
	return gn;
}

/* Is GENERAL_NAME gn the same name as s (IP by value, DNS ignoring case)? */
static int
gn_equal(const GENERAL_NAME *gn, const char *s)
{
	unsigned char bin[16];
	const ASN1_STRING *v;
	int len, isip = util_valid_ip(s);

	if (gn->type == GEN_IPADD && isip) {
		v = gn->d.iPAddress;
		if (inet_pton(AF_INET, s, bin) == 1)
			len = 4;
		else if (inet_pton(AF_INET6, s, bin) == 1)
			len = 16;
		else
			return 0;
		return ASN1_STRING_length(v) == len &&
		       memcmp(ASN1_STRING_get0_data(v), bin, (size_t)len) == 0;
	}
	if (gn->type == GEN_DNS && !isip) {
		v = gn->d.dNSName;
		return (size_t)ASN1_STRING_length(v) == strlen(s) &&
		       strncasecmp((const char *)ASN1_STRING_get0_data(v), s,
			   strlen(s)) == 0;
	}
	return 0;
}

int
pki_san_build(
    const struct pki_spec *s, GENERAL_NAMES **out, struct dbpki_err *e)
{
	GENERAL_NAMES *gens;
	GENERAL_NAME *gn;
	int i, j, dup;

	*out = NULL;
	if ((gens = GENERAL_NAMES_new()) == NULL)
		return err_ssl(e, "out of memory");
	for (i = 0; i < s->n_san; i++) {
		if (!util_valid_ip(s->san[i]) &&
		    !util_valid_hostname(s->san[i])) {
			GENERAL_NAMES_free(gens);
			return err_set(e, DBPKI_E_CONFIG,
			    "'%.80s' is neither "
			    "a host name nor an IP address",
			    s->san[i]);
		}
		for (dup = 0, j = 0; j < sk_GENERAL_NAME_num(gens); j++)
			dup |=
			    gn_equal(sk_GENERAL_NAME_value(gens, j), s->san[i]);
		if (dup)
			continue;
		if ((gn = gn_make(s->san[i])) == NULL ||
		    !sk_GENERAL_NAME_push(gens, gn)) {
			GENERAL_NAME_free(gn);
			GENERAL_NAMES_free(gens);
			return err_ssl(e, "cannot build SAN %s", s->san[i]);
		}
	}
	*out = gens;
	return 0;
}

static int
add_profile_exts(X509 *x, X509 *issuer, const struct pki_spec *s, EVP_PKEY *pub,
    struct dbpki_err *e)
{
	GENERAL_NAMES *gens = NULL;
	X509V3_CTX ctx;
	int r, rsa = EVP_PKEY_is_a(pub, "RSA");

	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	if (s->profile == PKI_PROFILE_CA) {
		if ((r = add_ext(x, &ctx, NID_basic_constraints,
			 "critical,CA:TRUE,pathlen:0", e)) != 0 ||
		    (r = add_ext(x, &ctx, NID_key_usage,
			 "critical,keyCertSign,cRLSign", e)) != 0)
			return r;
	} else {
		if ((r = add_ext(x, &ctx, NID_basic_constraints,
			 "critical,CA:FALSE", e)) != 0 ||
		    (r = add_ext(x, &ctx, NID_key_usage,
			 s->profile == PKI_PROFILE_SERVER && rsa
			     ? "critical,digitalSignature,keyEncipherment"
			     : "critical,digitalSignature",
			 e)) != 0 ||
		    (r = add_ext(x, &ctx, NID_ext_key_usage,
			 s->profile == PKI_PROFILE_SERVER ? "serverAuth"
							  : "clientAuth",
			 e)) != 0)
			return r;
	}
	if ((r = add_ext(x, &ctx, NID_subject_key_identifier, "hash", e)) !=
		0 ||
	    (r = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always",
		 e)) != 0)
		return r;
	if (s->n_san == 0)
		return 0;
	if ((r = pki_san_build(s, &gens, e)) != 0)
		return r;
	if (X509_add1_ext_i2d(
		x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
		r = err_ssl(e, "cannot add the SAN extension");
	GENERAL_NAMES_free(gens);
	return r;
}

int
pki_cert_build(const struct pki_spec *s, EVP_PKEY *pub, X509 *issuer,
    EVP_PKEY *issuer_key, X509 **out, struct dbpki_err *e)
{
	X509 *x;
	int r;

	*out = NULL;
	if ((s->profile == PKI_PROFILE_CA) != (issuer == NULL))
		return err_set(e, DBPKI_E_INTERNAL,
		    "pki_cert_build: CA profile iff no issuer");
	if ((x = X509_new()) == NULL)
		return err_ssl(e, "out of memory");
	if (!X509_set_version(x, X509_VERSION_3) || !X509_set_pubkey(x, pub)) {
		r = err_ssl(e, "cannot set up the certificate");
		goto out;
	}
	if ((r = set_serial(x, e)) != 0 ||
	    (r = set_cn(X509_get_subject_name(x), s->cn, e)) != 0 ||
	    (r = set_validity(x, s->validity, issuer, e)) != 0)
		goto out;
	if (!X509_set_issuer_name(x, issuer != NULL
					 ? X509_get_subject_name(issuer)
					 : X509_get_subject_name(x))) {
		r = err_ssl(e, "cannot set the issuer");
		goto out;
	}
	if ((r = add_profile_exts(x, issuer, s, pub, e)) != 0)
		goto out;
	if (X509_sign(x, issuer_key, pki_key_digest(issuer_key)) <= 0) {
		r = err_ssl(e, "cannot sign the certificate for '%s'", s->cn);
		goto out;
	}
	*out = x;
	x = NULL;
out:
	X509_free(x);
	return r;
}

int
pki_cert_to_pem(X509 *x, unsigned char **out, size_t *len, struct dbpki_err *e)
{
	BIO *b;
	char *p = NULL;
	long n;
	int r = 0;

	*out = NULL;
	*len = 0;
	if ((b = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_X509(b, x)) {
		BIO_free(b);
		return err_ssl(e, "cannot encode certificate");
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

int
pki_cert_from_pem(const void *buf, size_t len, const char *what, X509 **out,
    struct dbpki_err *e)
{
	BIO *b;

	*out = NULL;
	if (len > INT32_MAX || (b = BIO_new_mem_buf(buf, (int)len)) == NULL)
		return err_ssl(e, "%s: cannot read", what);
	*out = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (*out == NULL)
		return err_ssl(e, "%s: not a PEM certificate", what);
	return 0;
}

int
pki_cert_load_pem(const char *path, X509 **out, struct dbpki_err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if ((r = util_read_file(path, UTIL_MAX_INPUT, 0, &buf, &len, e)) != 0)
		return r;
	r = pki_cert_from_pem(buf, len, path, out, e);
	free(buf);
	return r;
}

void
pki_cert_serial_hex(const X509 *x, char out[PKI_SERIAL_HEX])
{
	const ASN1_INTEGER *ai = X509_get0_serialNumber(x);
	int n = ASN1_STRING_length(ai);

	if (n <= 0 || n > PKI_SERIAL_BYTES) {
		/* Longer serials (not ours) are shown truncated, never
		 * overflowed: 40 digits still identify them. */
		if (n <= 0) {
			memcpy(out, "0", 2);
			return;
		}
		n = PKI_SERIAL_BYTES;
	}
	util_hex(ASN1_STRING_get0_data(ai), (size_t)n, out);
}

void
pki_cert_sha256_hex(const X509 *x, char out[PKI_SHA256_HEX])
{
	unsigned char md[32];
	unsigned int n = sizeof(md);

	if (!X509_digest(x, EVP_sha256(), md, &n) || n != sizeof(md)) {
		out[0] = '\0';
		return;
	}
	util_hex(md, sizeof(md), out);
}

int
pki_cert_covers(X509 *x, const char *name_or_ip)
{
	unsigned int flags = X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
			     X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
	int r;

	if (name_or_ip == NULL || *name_or_ip == '\0')
		return 0;
	if (util_valid_ip(name_or_ip))
		r = X509_check_ip_asc(x, name_or_ip, 0);
	else
		r = X509_check_host(x, name_or_ip, 0, flags, NULL);
	ERR_clear_error();
	return r == 1;
}

int
pki_cert_key_matches(X509 *x, EVP_PKEY *key)
{
	EVP_PKEY *pub = X509_get0_pubkey(x);
	int r = pub != NULL && key != NULL && EVP_PKEY_eq(pub, key) == 1;

	ERR_clear_error();
	return r;
}

static int
name_cn(const X509_NAME *name, char *out, size_t outsz)
{
	unsigned char *utf8 = NULL;
	int i, n;

	out[0] = '\0';
	i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (i < 0)
		return 0;
	n = ASN1_STRING_to_UTF8(
	    &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n < 0)
		return -1;
	/* A NUL would cut "postgres\0x" to "postgres" for every C string
	 * compare: such a CN is no name at all. */
	if (memchr(utf8, '\0', (size_t)n) != NULL) {
		OPENSSL_free(utf8);
		return -1;
	}
	i = util_fmt(out, outsz, "%.*s", n, (const char *)utf8);
	OPENSSL_free(utf8);
	return i;
}

int
pki_cert_cn(const X509 *x, char *out, size_t outsz)
{
	return name_cn(X509_get_subject_name(x), out, outsz);
}

static int64_t
asn1_time_epoch(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

int64_t
pki_cert_not_before(const X509 *x)
{
	return asn1_time_epoch(X509_get0_notBefore(x));
}

int64_t
pki_cert_not_after(const X509 *x)
{
	return asn1_time_epoch(X509_get0_notAfter(x));
}

int
pki_cert_san_equal(X509 *x, const struct pki_spec *s)
{
	GENERAL_NAMES *gens;
	const GENERAL_NAME *gn;
	int i, j, found, ok = 1;

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (gens == NULL)
		return s->n_san == 0;
	for (i = 0; ok && i < sk_GENERAL_NAME_num(gens); i++) {
		gn = sk_GENERAL_NAME_value(gens, i);
		for (found = 0, j = 0; !found && j < s->n_san; j++)
			found = gn_equal(gn, s->san[j]);
		ok = found;
	}
	for (j = 0; ok && j < s->n_san; j++) {
		for (found = 0, i = 0; !found && i < sk_GENERAL_NAME_num(gens);
		     i++)
			found =
			    gn_equal(sk_GENERAL_NAME_value(gens, i), s->san[j]);
		ok = found;
	}
	GENERAL_NAMES_free(gens);
	return ok;
}

int
pki_cert_san_extra(X509 *x, const struct pki_spec *s, char *first, size_t sz)
{
	char ip[INET6_ADDRSTRLEN], safe[4 * 80 + 8];
	const GENERAL_NAME *gn;
	const ASN1_STRING *v;
	GENERAL_NAMES *gens;
	int i, j, found, n = 0;

	first[0] = '\0';
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		gn = sk_GENERAL_NAME_value(gens, i);
		for (found = 0, j = 0; !found && j < s->n_san; j++)
			found = gn_equal(gn, s->san[j]);
		if (found || n++ > 0)
			continue;
		if (gn->type == GEN_DNS) {
			v = gn->d.dNSName;
			/* Untrusted bytes: escaped, and a NUL shown too. */
			log_sanitize(safe, sizeof(safe),
			    (const char *)ASN1_STRING_get0_data(v),
			    (size_t)ASN1_STRING_length(v), 0);
			util_fmt(first, sz, "DNS:%s%s", safe,
			    memchr(ASN1_STRING_get0_data(v), '\0',
				(size_t)ASN1_STRING_length(v))
				? "\\x00..."
				: "");
		} else if (gn->type == GEN_IPADD &&
			   (ASN1_STRING_length(gn->d.iPAddress) == 4 ||
			       ASN1_STRING_length(gn->d.iPAddress) == 16) &&
			   inet_ntop(ASN1_STRING_length(gn->d.iPAddress) == 4
					 ? AF_INET
					 : AF_INET6,
			       ASN1_STRING_get0_data(gn->d.iPAddress), ip,
			       sizeof(ip)) != NULL)
			util_fmt(first, sz, "IP:%s", ip);
		else
			util_fmt(first, sz, "a SAN of type %d", gn->type);
	}
	GENERAL_NAMES_free(gens);
	return n;
}

int
pki_csr_build(const struct pki_spec *s, EVP_PKEY *key, X509_REQ **out,
    struct dbpki_err *e)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	GENERAL_NAMES *gens = NULL;
	X509_REQ *req;
	int r = 0;

	*out = NULL;
	if ((req = X509_REQ_new()) == NULL)
		return err_ssl(e, "out of memory");
	if (!X509_REQ_set_version(req, 0) || !X509_REQ_set_pubkey(req, key)) {
		r = err_ssl(e, "cannot set up the CSR");
		goto out;
	}
	if ((r = set_cn(X509_REQ_get_subject_name(req), s->cn, e)) != 0)
		goto out;
	if (s->n_san > 0) {
		if ((r = pki_san_build(s, &gens, e)) != 0)
			goto out;
		if ((exts = sk_X509_EXTENSION_new_null()) == NULL ||
		    (ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens)) ==
			NULL ||
		    !sk_X509_EXTENSION_push(exts, ext) ||
		    !X509_REQ_add_extensions(req, exts)) {
			if (exts == NULL || sk_X509_EXTENSION_num(exts) == 0)
				X509_EXTENSION_free(ext);
			r = err_ssl(e, "cannot add SANs to the CSR");
			goto out;
		}
	}
	if (X509_REQ_sign(req, key, pki_key_digest(key)) <= 0) {
		r = err_ssl(e, "cannot sign the CSR");
		goto out;
	}
	*out = req;
	req = NULL;
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(gens);
	X509_REQ_free(req);
	return r;
}

/* One SAN of a CSR as text into dst; -1 if of a kind we do not sign. */
static int
gn_text(const GENERAL_NAME *gn, char *dst, size_t dstsz)
{
	const ASN1_STRING *v;
	int n;

	if (gn->type == GEN_DNS) {
		v = gn->d.dNSName;
		n = ASN1_STRING_length(v);
		if (n <= 0 || (size_t)n >= dstsz ||
		    memchr(ASN1_STRING_get0_data(v), '\0', (size_t)n) != NULL)
			return -1;
		memcpy(dst, ASN1_STRING_get0_data(v), (size_t)n);
		dst[n] = '\0';
		return util_valid_hostname(dst) ? 0 : -1;
	}
	if (gn->type == GEN_IPADD) {
		v = gn->d.iPAddress;
		n = ASN1_STRING_length(v);
		if (n != 4 && n != 16)
			return -1;
		return inet_ntop(n == 4 ? AF_INET : AF_INET6,
			   ASN1_STRING_get0_data(v), dst, (socklen_t)dstsz)
			   ? 0
			   : -1;
	}
	return -1;
}

static int
valid_cn(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > CN_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    strchr(" _.@-", s[i]) == NULL)
			return 0;
	return 1;
}

static int
csr_sans(X509_REQ *req, struct pki_spec *s, char names[][CFG_HOST],
    int max_names, struct dbpki_err *e)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	GENERAL_NAMES *gens = NULL;
	int i, r = 0;

	if (exts != NULL)
		gens = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		if (s->n_san >= max_names || s->n_san >= PKI_MAX_SAN) {
			r = err_set(e, DBPKI_E_CONFIG,
			    "CSR asks for too many "
			    "SANs (at most %d)",
			    max_names);
			break;
		}
		if (gn_text(sk_GENERAL_NAME_value(gens, i), names[s->n_san],
			CFG_HOST) != 0) {
			r = err_set(e, DBPKI_E_CONFIG,
			    "CSR SAN #%d is not a "
			    "valid DNS name or IP address; refusing to sign",
			    i + 1);
			break;
		}
		s->san[s->n_san] = names[s->n_san];
		s->n_san++;
	}
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return r;
}

int
pki_csr_read_spec(X509_REQ *req, struct pki_spec *s, char names[][CFG_HOST],
    int max_names, struct dbpki_err *e)
{
	EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
	enum cfg_key_alg alg;
	char desc[64];

	s->n_san = 0;
	s->cn[0] = '\0';
	if (pub == NULL || X509_REQ_verify(req, pub) != 1) {
		ERR_clear_error();
		return err_set(e, DBPKI_E_PKI,
		    "the CSR's signature does not "
		    "verify; it is damaged or was not made with its key");
	}
	if (pki_key_alg(pub, &alg) != 0) {
		pki_key_describe(pub, desc, sizeof(desc), NULL, NULL);
		return err_set(e, DBPKI_E_CONFIG,
		    "the CSR's key is %s; only "
		    "EC P-256/P-384 and RSA 3072/4096 are signed",
		    desc);
	}
	if (name_cn(X509_REQ_get_subject_name(req), s->cn, sizeof(s->cn)) !=
		0 ||
	    !valid_cn(s->cn))
		return err_set(e, DBPKI_E_CONFIG,
		    "the CSR's common name is "
		    "missing or has characters outside [A-Za-z0-9 _.@-]");
	return csr_sans(req, s, names, max_names, e);
}
