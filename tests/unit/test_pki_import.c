/* Unit tests for the rules of `ca import` that need no file system (the
 * path string, the PEM content) and for the leaf checks of
 * `issue --signed`.  Each bad input breaks exactly one rule, built here
 * with OpenSSL directly, and the refusal must name that rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#define DAY 86400

/* How to build one test certificate; zero values are the good ones. */
struct mk {
	const char *cn;
	int v1;           /* X.509 v1 (no extensions at all) */
	int64_t nb, na;   /* offsets from now; default -1d, +30d */
	int not_ca;       /* basicConstraints CA:FALSE */
	const char *ku;   /* keyUsage; default keyCertSign,cRLSign */
	const char *bc;   /* basicConstraints; default by not_ca */
	const char *eku;  /* extendedKeyUsage (leaves) */
	const char *san;  /* subjectAltName (leaves) */
	const EVP_MD *md; /* default SHA-256 */
	X509 *issuer;     /* NULL: self-signed */
	EVP_PKEY *issuer_key;
};

/* Keys are slow to make (RSA): each kind is made once. */
static EVP_PKEY *k_ec256, *k_ec256b, *k_ec256c, *k_ec224, *k_rsa2048,
    *k_rsa3072;

static EVP_PKEY *
ec_key(const char *curve)
{
	EVP_PKEY *k = EVP_EC_gen(curve);

	assert_non_null(k);
	return k;
}

static EVP_PKEY *
rsa_key(unsigned bits)
{
	EVP_PKEY *k = EVP_RSA_gen(bits);

	assert_non_null(k);
	return k;
}

static void
ext(X509 *x, X509 *issuer, int nid, const char *val)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ex;

	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, val);
	assert_non_null(ex);
	assert_int_equal(X509_add_ext(x, ex, -1), 1);
	X509_EXTENSION_free(ex);
}

static X509 *
mk_cert(const struct mk *m, EVP_PKEY *key)
{
	X509 *x = X509_new();
	int64_t now = util_now();

	assert_non_null(x);
	assert_int_equal(
	    X509_set_version(x, m->v1 ? X509_VERSION_1 : X509_VERSION_3), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0xffffff));
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_UTF8, (const unsigned char *)m->cn, -1, -1, 0);
	X509_set_issuer_name(x, m->issuer != NULL
				    ? X509_get_subject_name(m->issuer)
				    : X509_get_subject_name(x));
	ASN1_TIME_set(X509_getm_notBefore(x),
	    (time_t)(now + (m->nb != 0 ? m->nb : -DAY)));
	ASN1_TIME_set(X509_getm_notAfter(x),
	    (time_t)(now + (m->na != 0 ? m->na : 30 * DAY)));
	X509_set_pubkey(x, key);
	if (!m->v1) {
		ext(x, m->issuer, NID_basic_constraints,
		    m->bc != NULL ? m->bc
		    : m->not_ca   ? "critical,CA:FALSE"
				  : "critical,CA:TRUE");
		ext(x, m->issuer, NID_key_usage,
		    m->ku != NULL ? m->ku : "critical,keyCertSign,cRLSign");
		ext(x, m->issuer, NID_subject_key_identifier, "hash");
		if (m->eku != NULL)
			ext(x, m->issuer, NID_ext_key_usage, m->eku);
		if (m->san != NULL)
			ext(x, m->issuer, NID_subject_alt_name, m->san);
	}
	assert_true(X509_sign(x, m->issuer_key != NULL ? m->issuer_key : key,
			m->md != NULL ? m->md : EVP_sha256()) > 0);
	return x;
}

/* PEM of certificates a, b, ... (NULL-terminated) into a heap string. */
static char *
pem_of(X509 *first, ...)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;
	va_list ap;
	X509 *x;

	va_start(ap, first);
	for (x = first; x != NULL; x = va_arg(ap, X509 *))
		assert_int_equal(PEM_write_bio_X509(b, x), 1);
	va_end(ap);
	n = BIO_get_mem_data(b, &p);
	out = strndup(p, (size_t)n);
	BIO_free(b);
	return out;
}

/* The content rules must refuse pem, naming `rule`. */
static void
refused(const char *pem, const char *rule)
{
	struct dbpki_err e;
	STACK_OF(X509) *sk = NULL;
	char want[128];

	err_clear(&e);
	assert_int_equal(pki_import_check_pem(
			     pem, strlen(pem), "t.pem", util_now(), &sk, &e),
	    DBPKI_E_CONFIG);
	assert_null(sk);
	snprintf(want, sizeof(want), "(rule: %s)", rule);
	if (strstr(e.msg, want) == NULL)
		fail_msg("expected %s in: %s", want, e.msg);
}

static int
accepted(const char *pem)
{
	struct dbpki_err e;
	STACK_OF(X509) *sk = NULL;
	int n;

	err_clear(&e);
	if (pki_import_check_pem(
		pem, strlen(pem), "t.pem", util_now(), &sk, &e) != 0)
		fail_msg("refused: %s", e.msg);
	n = sk_X509_num(sk);
	sk_X509_pop_free(sk, X509_free);
	return n;
}

static void
one_refused(const struct mk *m, EVP_PKEY *key, const char *rule)
{
	X509 *x = mk_cert(m, key);
	char *pem = pem_of(x, NULL);

	refused(pem, rule);
	free(pem);
	X509_free(x);
}

static int
setup(void **state)
{
	(void)state;
	log_init(0, 1, 0);
	k_ec256 = ec_key("P-256");
	k_ec256b = ec_key("P-256");
	k_ec256c = ec_key("P-256");
	k_ec224 = ec_key("P-224");
	k_rsa2048 = rsa_key(2048);
	k_rsa3072 = rsa_key(3072);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(k_ec256);
	EVP_PKEY_free(k_ec256b);
	EVP_PKEY_free(k_ec256c);
	EVP_PKEY_free(k_ec224);
	EVP_PKEY_free(k_rsa2048);
	EVP_PKEY_free(k_rsa3072);
	return 0;
}

/* ---- path strings ------------------------------------------------------ */

static void
path_refused(const char *path, const char *rule)
{
	struct dbpki_err e;
	char want[128];

	err_clear(&e);
	assert_int_equal(pki_import_check_path(path, &e), DBPKI_E_CONFIG);
	snprintf(want, sizeof(want), "(rule: %s)", rule);
	if (strstr(e.msg, want) == NULL)
		fail_msg("expected %s in: %s", want, e.msg);
}

static void
test_path_rules(void **state)
{
	char *p = malloc(PKI_IMPORT_MAX_PATH + 16);
	struct dbpki_err e;
	size_t i;

	(void)state;
	assert_non_null(p);
	err_clear(&e);
	assert_int_equal(pki_import_check_path("/etc/corp/root.pem", &e), 0);
	path_refused("corp/root.pem", "absolute path");
	path_refused("./root.pem", "absolute path");
	path_refused("", "absolute path");
	path_refused("/etc/../root.pem", "plain path");
	path_refused("/etc/./root.pem", "plain path");

	/* 98 levels pass, 99 do not */
	for (i = 0; i < 98; i++)
		memcpy(p + 2 * i, "/a", 2);
	p[2 * 98] = '\0';
	assert_int_equal(pki_import_check_path(p, &e), 0);
	memcpy(p + 2 * 98, "/a", 3);
	path_refused(p, "path depth");

	/* 4095 characters pass (in few levels), 4096 do not */
	for (i = 0; i < 4095; i++)
		p[i] = (i % 200 == 0) ? '/' : 'x';
	p[4095] = '\0';
	assert_int_equal(pki_import_check_path(p, &e), 0);
	p[4095] = 'x';
	p[4096] = '\0';
	path_refused(p, "path length");
	/* the message quotes the path cut short */
	assert_int_equal(pki_import_check_path(p, &e), DBPKI_E_CONFIG);
	assert_true(strlen(e.msg) < 600);
	free(p);
}

/* ---- content ----------------------------------------------------------- */

static void
test_valid_root_and_chain(void **state)
{
	struct mk root = {.cn = "Corp Root"}, mid = {.cn = "Corp Policy CA"},
		  iss = {.cn = "Corp Issuing CA"};
	X509 *r, *m, *i;
	char *pem;

	(void)state;
	r = mk_cert(&root, k_rsa3072);
	pem = pem_of(r, NULL);
	assert_int_equal(accepted(pem), 1);
	free(pem);

	mid.issuer = r;
	mid.issuer_key = k_rsa3072;
	mid.md = EVP_sha384();
	m = mk_cert(&mid, k_ec256);
	iss.issuer = m;
	iss.issuer_key = k_ec256;
	iss.md = EVP_sha512();
	i = mk_cert(&iss, k_ec256b);
	pem = pem_of(i, m, r, NULL);
	assert_int_equal(accepted(pem), 3);
	free(pem);

	/* the same chain root first: out of order */
	pem = pem_of(r, m, i, NULL);
	refused(pem, "chain order");
	free(pem);
	/* without its root */
	pem = pem_of(i, m, NULL);
	refused(pem, "self-signed root");
	free(pem);
	X509_free(r);
	X509_free(m);
	X509_free(i);
}

static void
test_each_rule(void **state)
{
	struct mk m = {.cn = "Bad Root"};

	(void)state;
	m.v1 = 1;
	one_refused(&m, k_ec256, "X.509 v3");
	m.v1 = 0;
	m.na = -DAY;
	m.nb = -2 * DAY;
	one_refused(&m, k_ec256, "validity");
	m.na = 30 * DAY;
	m.nb = DAY;
	one_refused(&m, k_ec256, "validity");
	m.nb = 0;
	m.na = 0;
	m.not_ca = 1;
	one_refused(&m, k_ec256, "basicConstraints CA:TRUE");
	m.not_ca = 0;
	m.ku = "critical,digitalSignature,cRLSign";
	one_refused(&m, k_ec256, "keyUsage keyCertSign");
	m.ku = NULL;
	one_refused(&m, k_rsa2048, "key strength");
	one_refused(&m, k_ec224, "key strength");
	m.md = EVP_sha1();
	one_refused(&m, k_rsa3072, "signature digest");
	m.md = EVP_sha224();
	one_refused(&m, k_ec256, "signature digest");
}

static void
test_bad_signature(void **state)
{
	struct mk root = {.cn = "Corp Root"}, evil = {.cn = "Corp Root"},
		  mid = {.cn = "Corp Issuing CA"};
	X509 *r, *ev, *m;
	char *pem;

	(void)state;
	r = mk_cert(&root, k_ec256);
	ev = mk_cert(&evil, k_ec256c); /* same name, another key */
	mid.issuer = ev;
	mid.issuer_key = k_ec256c;
	m = mk_cert(&mid, k_ec256b);
	pem = pem_of(m, r, NULL);
	refused(pem, "signature");
	free(pem);
	X509_free(r);
	X509_free(ev);
	X509_free(m);
}

static void
test_chain_length(void **state)
{
	X509 *c[PKI_IMPORT_MAX_CHAIN + 1];
	struct mk m = {.cn = NULL};
	char cn[32], *pem, *p;
	size_t total = 0;
	int i, n;

	(void)state;
	/* c[0] is the root; c[i] is signed by c[i-1]: the file lists them
	 * from the last one down to the root. */
	for (n = 0; n < PKI_IMPORT_MAX_CHAIN + 1; n++) {
		snprintf(cn, sizeof(cn), "Level %d", n);
		m.cn = cn;
		m.issuer = n > 0 ? c[n - 1] : NULL;
		m.issuer_key = n > 0 ? k_ec256 : NULL;
		c[n] = mk_cert(&m, k_ec256);
	}
	pem = calloc(PKI_IMPORT_MAX_CHAIN + 1, 4096);
	assert_non_null(pem);
	/* 10 levels: accepted */
	for (i = PKI_IMPORT_MAX_CHAIN - 1; i >= 0; i--) {
		p = pem_of(c[i], NULL);
		memcpy(pem + total, p, strlen(p) + 1);
		total += strlen(p);
		free(p);
	}
	assert_int_equal(accepted(pem), PKI_IMPORT_MAX_CHAIN);
	/* 11 levels: refused */
	p = pem_of(c[PKI_IMPORT_MAX_CHAIN], NULL);
	memmove(pem + strlen(p), pem, total + 1);
	memcpy(pem, p, strlen(p));
	free(p);
	refused(pem, "chain length");
	free(pem);
	for (n = 0; n < PKI_IMPORT_MAX_CHAIN + 1; n++)
		X509_free(c[n]);
}

static void
test_not_pem(void **state)
{
	static const char der_like[] = "\x30\x82\x01\x0a\x02\x82\x01\x01";
	static const char damaged[] = "-----BEGIN CERTIFICATE-----\n"
				      "!!!!not base64!!!!\n"
				      "-----END CERTIFICATE-----\n";
	static const char notcert[] = "-----BEGIN CERTIFICATE-----\n"
				      "AAAA\n"
				      "-----END CERTIFICATE-----\n";
	BIO *b = BIO_new(BIO_s_mem());
	struct mk m = {.cn = "Corp Root"};
	X509 *x = mk_cert(&m, k_ec256);
	char *pem, *p;
	long n;

	(void)state;
	refused(der_like, "PEM");
	refused("", "PEM");
	refused("just some text\n", "PEM");
	refused(damaged, "PEM");
	refused(notcert, "PEM");
	/* a private key beside the certificate: refused and called so */
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	assert_int_equal(
	    PEM_write_bio_PrivateKey(b, k_ec256, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &p);
	pem = strndup(p, (size_t)n);
	refused(pem, "PEM");
	free(pem);
	BIO_free(b);
	/* text around a PEM block, as `openssl x509 -text` writes it, is
	 * fine */
	p = pem_of(x, NULL);
	pem = malloc(strlen(p) + 64);
	snprintf(pem, strlen(p) + 64, "Certificate:\n  Data: ...\n%s", p);
	assert_int_equal(accepted(pem), 1);
	free(pem);
	free(p);
	X509_free(x);
}

/* A chain that breaks a CA's pathLenConstraint deploys and then fails at
 * every handshake: refused, whichever CA of the chain carries it. */
static void
test_path_length(void **state)
{
	struct mk r0 = {.cn = "Root P0", .bc = "critical,CA:TRUE,pathlen:0"};
	struct mk r1 = {.cn = "Root P1", .bc = "critical,CA:TRUE,pathlen:1"};
	X509 *root0 = mk_cert(&r0, k_ec256), *root1 = mk_cert(&r1, k_ec256);
	struct mk m0 = {.cn = "Mid", .issuer = root0, .issuer_key = k_ec256};
	struct mk m1 = {.cn = "Mid P0",
	    .issuer = root1,
	    .issuer_key = k_ec256,
	    .bc = "critical,CA:TRUE,pathlen:0"};
	X509 *mid0 = mk_cert(&m0, k_ec256b), *mid1 = mk_cert(&m1, k_ec256b);
	struct mk l1 = {.cn = "Low", .issuer = mid1, .issuer_key = k_ec256b};
	X509 *low1 = mk_cert(&l1, k_ec256c);
	char *pem;

	(void)state;
	pem = pem_of(mid0, root0, NULL);
	refused(pem, "path length");
	free(pem);
	pem = pem_of(low1, mid1, root1, NULL);
	refused(pem, "path length");
	free(pem);
	/* within the constraints: accepted */
	pem = pem_of(root0, NULL);
	assert_int_equal(accepted(pem), 1);
	free(pem);
	pem = pem_of(mid1, root1, NULL);
	assert_int_equal(accepted(pem), 2);
	free(pem);
	X509_free(root0);
	X509_free(root1);
	X509_free(mid0);
	X509_free(mid1);
	X509_free(low1);
}

/* Whatever else OpenSSL refuses in a chain (here an unknown critical
 * extension) is refused at import, not at the first handshake. */
static void
test_chain_verifies(void **state)
{
	struct mk r = {.cn = "Corp Root"};
	X509 *root = mk_cert(&r, k_ec256), *mid;
	struct mk m = {.cn = "Crit", .issuer = root, .issuer_key = k_ec256};
	X509_EXTENSION *ex;
	X509V3_CTX ctx;
	char *pem;

	(void)state;
	mid = mk_cert(&m, k_ec256b);
	X509V3_set_ctx(&ctx, root, mid, NULL, NULL, 0);
	ex = X509V3_EXT_conf(NULL, &ctx, "1.3.6.1.4.1.99999.1",
	    "critical,ASN1:UTF8String:unknown");
	assert_non_null(ex);
	assert_int_equal(X509_add_ext(mid, ex, -1), 1);
	X509_EXTENSION_free(ex);
	assert_true(X509_sign(mid, k_ec256, EVP_sha256()) > 0);
	pem = pem_of(mid, root, NULL);
	refused(pem, "chain");
	free(pem);
	X509_free(mid);
	X509_free(root);
}

/* pem with text inserted at offset `at` must be refused under "PEM",
 * quoting `quoted`. */
static void
text_refused(const char *pem, size_t at, const char *text, size_t tlen,
    const char *quoted)
{
	size_t n = strlen(pem);
	char *buf = malloc(n + tlen + 1);
	struct dbpki_err e;
	STACK_OF(X509) *sk = NULL;

	memcpy(buf, pem, at);
	memcpy(buf + at, text, tlen);
	memcpy(buf + at + tlen, pem + at, n - at + 1);
	err_clear(&e);
	assert_int_equal(
	    pki_import_check_pem(buf, n + tlen, "t.pem", util_now(), &sk, &e),
	    DBPKI_E_CONFIG);
	assert_null(sk);
	if (strstr(e.msg, "(rule: PEM)") == NULL ||
	    strstr(e.msg, quoted) == NULL)
		fail_msg("expected rule PEM and '%s' in: %s", quoted, e.msg);
	free(buf);
}

/* Nothing but blank lines after the first PEM block: text there, or
 * between blocks, or after an END line, is what dbpki would silently drop. */
static void
test_pem_text(void **state)
{
	struct mk r = {.cn = "Corp Root"};
	X509 *root = mk_cert(&r, k_ec256);
	struct mk i = {
	    .cn = "Corp Issuing", .issuer = root, .issuer_key = k_ec256};
	X509 *mid = mk_cert(&i, k_ec256b);
	char *one = pem_of(root, NULL), *two = pem_of(mid, root, NULL);
	size_t end1 = strlen(one), mid_end;

	(void)state;
	mid_end = strstr(two, "-----END CERTIFICATE-----\n") - two + 26;
	text_refused(one, end1, "garbage\n", 8, "'garbage'");
	text_refused(one, end1, "no newline", 10, "'no newline'");
	text_refused(two, mid_end, "subject=CN=x\n", 13, "subject=CN=x");
	text_refused(one, end1 - 1, "tail", 4, "END line");
	text_refused(one, end1, "\x1b[2J\n", 5, "\\x1b[2J");
	text_refused(two, mid_end, "\0", 1, "NUL byte");
	text_refused(one, 0, "-----BEGIN CERTIFICATE-----\n", 28, "BEGIN");
	/* cut: BEGIN without END */
	one[end1 - 27] = '\0';
	refused(one, "PEM");
	free(one);
	/* blank lines and spaces after and between blocks are fine */
	one = malloc(strlen(two) + 16);
	snprintf(one, strlen(two) + 16, "%.*s\n \n%s\r\n\t\n", (int)mid_end,
	    two, two + mid_end);
	assert_int_equal(accepted(one), 2);
	free(one);
	free(two);
	X509_free(root);
	X509_free(mid);
}

/* ---- leaves for issue --signed ----------------------------------------- */

struct leaf_fx {
	X509 *root, *other;
	STACK_OF(X509) * bundle;
	struct pki_spec spec;
};

static void
leaf_fx_init(struct leaf_fx *f)
{
	struct mk r = {.cn = "Corp Root"}, o = {.cn = "Other Root"};

	memset(f, 0, sizeof(*f));
	f->root = mk_cert(&r, k_rsa3072);
	f->other = mk_cert(&o, k_ec256c);
	f->bundle = sk_X509_new_null();
	sk_X509_push(f->bundle, X509_dup(f->root));
	f->spec.profile = PKI_PROFILE_SERVER;
	snprintf(f->spec.cn, sizeof(f->spec.cn), "db1.example.com");
	f->spec.san[f->spec.n_san++] = "db1.example.com";
	f->spec.san[f->spec.n_san++] = "10.0.0.11";
}

static void
leaf_fx_free(struct leaf_fx *f)
{
	X509_free(f->root);
	X509_free(f->other);
	sk_X509_pop_free(f->bundle, X509_free);
}

/* A leaf for key k signed by issuer (root by default). */
static X509 *
leaf(struct leaf_fx *f, struct mk *m, EVP_PKEY *k)
{
	if (m->cn == NULL)
		m->cn = "db1.example.com";
	if (m->issuer == NULL) {
		m->issuer = f->root;
		m->issuer_key = k_rsa3072;
	}
	m->not_ca = 1;
	if (m->ku == NULL)
		m->ku = "critical,digitalSignature";
	if (m->san == NULL)
		m->san = "DNS:db1.example.com,IP:10.0.0.11";
	return mk_cert(m, k);
}

static void
leaf_verdict(struct leaf_fx *f, struct mk *m, EVP_PKEY *k, EVP_PKEY *key,
    int want, const char *why)
{
	X509 *x = leaf(f, m, k);
	struct dbpki_err e;
	int r;

	err_clear(&e);
	r = pki_signed_check(&f->spec, KEY_EC_P256, x, key, f->bundle, &e);
	X509_free(x);
	if (r != want)
		fail_msg("want %d, got %d: %s", want, r, e.msg);
	if (why != NULL && strstr(e.msg, why) == NULL)
		fail_msg("expected '%s' in: %s", why, e.msg);
}

static void
test_signed_leaf(void **state)
{
	struct leaf_fx f;
	struct mk m;

	(void)state;
	leaf_fx_init(&f);
	m = (struct mk){.eku = "serverAuth"};
	leaf_verdict(&f, &m, k_ec256, k_ec256, 0, NULL);
	m = (struct mk){.eku = "serverAuth"};
	leaf_verdict(&f, &m, k_ec256, k_ec256b, DBPKI_E_VERIFY, "another key");
	m = (struct mk){.eku = "serverAuth", .issuer = f.other};
	m.issuer_key = k_ec256c;
	leaf_verdict(&f, &m, k_ec256, NULL, DBPKI_E_VERIFY, "unknown issuer");
	m = (struct mk){.eku = "serverAuth", .san = "DNS:db1.example.com"};
	leaf_verdict(&f, &m, k_ec256, NULL, DBPKI_E_VERIFY, "10.0.0.11");
	m = (struct mk){.eku = "serverAuth", .cn = "db9.example.com"};
	leaf_verdict(&f, &m, k_ec256, NULL, DBPKI_E_VERIFY, "its CN");
	m = (struct mk){.eku = NULL};
	leaf_verdict(&f, &m, k_ec256, NULL, DBPKI_E_VERIFY, "serverAuth");
	m = (struct mk){.eku = "clientAuth"};
	leaf_verdict(&f, &m, k_ec256, NULL, DBPKI_E_VERIFY, NULL);
	m = (struct mk){.eku = "serverAuth"};
	leaf_verdict(&f, &m, k_rsa3072, NULL, DBPKI_E_VERIFY, "ec:P-256");
	m = (struct mk){.eku = "serverAuth", .na = -60, .nb = -DAY};
	leaf_verdict(&f, &m, k_ec256, NULL, DBPKI_E_VERIFY, "expired");
	leaf_fx_free(&f);
}

/* A host name is checked only of a server: a clientAuth-only certificate
 * must not pass for one, whatever purpose the caller gave. */
static void
test_verify_host_purpose(void **state)
{
	struct leaf_fx f;
	struct mk m = {.eku = "clientAuth"};
	struct dbpki_err e;
	X509 *x;

	(void)state;
	leaf_fx_init(&f);
	x = leaf(&f, &m, k_ec256);
	err_clear(&e);
	assert_int_equal(
	    pki_verify(x, f.bundle, PKI_PURPOSE_ANY, NULL, 0, &e), 0);
	assert_int_equal(
	    pki_verify(x, f.bundle, PKI_PURPOSE_ANY, "db1.example.com", 0, &e),
	    DBPKI_E_VERIFY);
	if (strstr(e.msg, "wrong purpose") == NULL)
		fail_msg("expected 'wrong purpose' in: %s", e.msg);
	X509_free(x);
	m = (struct mk){.eku = "serverAuth"};
	x = leaf(&f, &m, k_ec256);
	err_clear(&e);
	assert_int_equal(
	    pki_verify(x, f.bundle, PKI_PURPOSE_ANY, "db1.example.com", 0, &e),
	    0);
	X509_free(x);
	leaf_fx_free(&f);
}

/* A certificate whose DNS SAN (and CN) hold a NUL: "good\0.evil". */
static X509 *
nul_cert(void)
{
	static const char name[] = "good.example.com\0.evil.test";
	struct mk m = {.cn = "nul"};
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
	X509 *x = mk_cert(&m, k_ec256);
	X509_NAME *subj = X509_NAME_new();

	assert_int_equal(ASN1_STRING_set(ia5, name, sizeof(name) - 1), 1);
	GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
	sk_GENERAL_NAME_push(gens, gn);
	assert_int_equal(
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0), 1);
	X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
	    (const unsigned char *)"postgres\0x", 10, -1, 0);
	X509_set_subject_name(x, subj);
	X509_NAME_free(subj);
	GENERAL_NAMES_free(gens);
	assert_true(X509_sign(x, k_ec256, EVP_sha256()) > 0);
	return x;
}

/* inspect shows the whole name, the NUL escaped, and says it is bad; a
 * CN with a NUL is no CN (it would compare equal to "postgres"). */
static void
test_nul_names(void **state)
{
	X509 *x = nul_cert();
	char *buf = NULL, cn[64];
	size_t len = 0;
	FILE *f;

	(void)state;
	f = open_memstream(&buf, &len);
	pki_inspect_print(f, x, 0);
	fclose(f);
	if (strstr(buf, "DNS:good.example.com\\x00.evil.test (INVALID") == NULL)
		fail_msg("NUL SAN not shown escaped and marked: %s", buf);
	free(buf);
	buf = NULL;
	f = open_memstream(&buf, &len);
	pki_inspect_print(f, x, 1);
	fclose(f);
	if (strstr(buf, "good.example.com\\\\x00.evil.test") == NULL)
		fail_msg("NUL SAN not escaped in JSON: %s", buf);
	free(buf);
	assert_int_not_equal(pki_cert_cn(x, cn, sizeof(cn)), 0);
	X509_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_rules),
	    cmocka_unit_test(test_valid_root_and_chain),
	    cmocka_unit_test(test_each_rule),
	    cmocka_unit_test(test_bad_signature),
	    cmocka_unit_test(test_chain_length),
	    cmocka_unit_test(test_not_pem),
	    cmocka_unit_test(test_path_length),
	    cmocka_unit_test(test_pem_text),
	    cmocka_unit_test(test_chain_verifies),
	    cmocka_unit_test(test_signed_leaf),
	    cmocka_unit_test(test_verify_host_purpose),
	    cmocka_unit_test(test_nul_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
