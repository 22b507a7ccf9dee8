/* Unit tests for pki keys, profiles, serials, CSR/sign and verify: every
 * property is read back with OpenSSL, independently of how it was set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <valgrind/valgrind.h>

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

struct ca_fx {
	EVP_PKEY *key;
	X509 *cert;
};

static void
ok(struct dbpki_err *e, int r)
{
	if (r != 0)
		fail_msg("unexpected error %d: %s", r, e->msg);
}

static void
make_ca(
    struct ca_fx *ca, enum cfg_key_alg alg, const char *cn, int64_t validity)
{
	struct pki_spec *s = calloc(1, sizeof(*s));
	struct dbpki_err e;

	assert_non_null(s);
	s->profile = PKI_PROFILE_CA;
	s->validity = validity;
	snprintf(s->cn, sizeof(s->cn), "%s", cn);
	ok(&e, pki_key_generate(alg, &ca->key, &e));
	ok(&e, pki_cert_build(s, ca->key, NULL, ca->key, &ca->cert, &e));
	free(s);
}

static void
free_ca(struct ca_fx *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
}

/* A leaf of profile p for a fresh key of alg; *key receives the key. */
static X509 *
make_leaf(struct ca_fx *ca, enum pki_profile p, enum cfg_key_alg alg,
    const char *cn, const char *const *san, int n_san, int64_t validity,
    EVP_PKEY **key)
{
	struct pki_spec *s = calloc(1, sizeof(*s));
	struct dbpki_err e;
	X509 *x = NULL;
	int i;

	assert_non_null(s);
	s->profile = p;
	s->validity = validity;
	snprintf(s->cn, sizeof(s->cn), "%s", cn);
	for (i = 0; i < n_san; i++)
		s->san[s->n_san++] = san[i];
	ok(&e, pki_key_generate(alg, key, &e));
	ok(&e, pki_cert_build(s, *key, ca->cert, ca->key, &x, &e));
	free(s);
	return x;
}

static int
ext_critical(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	assert_true(i >= 0);
	return X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

static void
assert_serial_ok(X509 *x)
{
	const ASN1_INTEGER *ai = X509_get0_serialNumber(x);
	BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);

	assert_non_null(bn);
	assert_int_equal(ASN1_STRING_type(ai), V_ASN1_INTEGER); /* not NEG */
	assert_false(BN_is_negative(bn));
	assert_false(BN_is_zero(bn));
	assert_int_equal(BN_num_bytes(bn), 20);
	BN_free(bn);
}

/* Under valgrind an RSA key generation takes minutes: the code under test
 * handles every key the same way, so there the big RSA keys are left out
 * (make check-valgrind), and the plain run covers them. */
static int
slow_keys_ok(void)
{
	return !RUNNING_ON_VALGRIND;
}

/* A key dbpki must refuse. */
static int
weak_bits(void)
{
	return slow_keys_ok() ? 2048 : 1024;
}

static void
test_key_types(void **state)
{
	static const struct {
		enum cfg_key_alg alg;
		const char *type;
		int bits;
	} t[] = {
	    {KEY_EC_P256, "EC", 256},
	    {KEY_EC_P384, "EC", 384},
	    {KEY_RSA_3072, "RSA", 3072},
	    {KEY_RSA_4096, "RSA", 4096},
	};
	struct dbpki_err e;
	enum cfg_key_alg got;
	const char *type;
	EVP_PKEY *k;
	char desc[64];
	size_t i;
	int bits;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (t[i].bits > 3072 && !slow_keys_ok())
			continue;
		k = NULL;
		ok(&e, pki_key_generate(t[i].alg, &k, &e));
		assert_int_equal(EVP_PKEY_get_bits(k), t[i].bits);
		assert_true(EVP_PKEY_is_a(k, t[i].type));
		assert_int_equal(pki_key_alg(k, &got), 0);
		assert_int_equal(got, t[i].alg);
		pki_key_describe(k, desc, sizeof(desc), &type, &bits);
		assert_string_equal(type, t[i].type);
		assert_int_equal(bits, t[i].bits);
		EVP_PKEY_free(k);
	}
	/* Anything else is not one of ours. */
	k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)weak_bits());
	assert_non_null(k);
	assert_int_equal(pki_key_alg(k, &got), -1);
	EVP_PKEY_free(k);
}

static void
test_keygen_parallel(void **state)
{
	enum cfg_key_alg algs[5] = {
	    KEY_EC_P256, KEY_RSA_3072, KEY_EC_P384, KEY_EC_P256, KEY_RSA_3072};
	EVP_PKEY *keys[5];
	struct dbpki_err e;
	enum cfg_key_alg got;
	int i;

	(void)state;
	if (!slow_keys_ok())
		algs[1] = algs[4] = KEY_EC_P384;
	ok(&e, pki_keygen_parallel(algs, keys, 5, 0, &e));
	for (i = 0; i < 5; i++) {
		assert_non_null(keys[i]);
		assert_int_equal(pki_key_alg(keys[i], &got), 0);
		assert_int_equal(got, algs[i]);
		EVP_PKEY_free(keys[i]);
	}
	/* two RSA keys are distinct */
	ok(&e, pki_keygen_parallel(algs + 1, keys, 1, 2, &e));
	ok(&e, pki_keygen_parallel(algs + 4, keys + 1, 1, 2, &e));
	assert_int_not_equal(EVP_PKEY_eq(keys[0], keys[1]), 1);
	EVP_PKEY_free(keys[0]);
	EVP_PKEY_free(keys[1]);
}

static void
test_ca_profile(void **state)
{
	struct ca_fx ca;
	const ASN1_OCTET_STRING *ski, *aki;

	(void)state;
	make_ca(&ca, KEY_EC_P256, "test dbca", 3650LL * 86400);
	assert_int_equal(X509_get_version(ca.cert), X509_VERSION_3);
	assert_true(X509_get_extension_flags(ca.cert) & EXFLAG_CA);
	assert_true(X509_get_extension_flags(ca.cert) & EXFLAG_SS);
	assert_int_equal(X509_get_pathlen(ca.cert), 0);
	assert_true(ext_critical(ca.cert, NID_basic_constraints));
	assert_true(ext_critical(ca.cert, NID_key_usage));
	assert_int_equal(
	    X509_get_key_usage(ca.cert), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	ski = X509_get0_subject_key_id(ca.cert);
	aki = X509_get0_authority_key_id(ca.cert);
	assert_non_null(ski);
	assert_non_null(aki);
	assert_int_equal(ASN1_OCTET_STRING_cmp(ski, aki), 0);
	assert_int_equal(X509_verify(ca.cert, ca.key), 1);
	assert_int_equal(
	    X509_get_signature_nid(ca.cert), NID_ecdsa_with_SHA256);
	assert_serial_ok(ca.cert);
	/* backdated a few minutes, not more than an hour */
	assert_true(pki_cert_not_before(ca.cert) <= util_now() - 60);
	assert_true(pki_cert_not_before(ca.cert) > util_now() - 3600);
	free_ca(&ca);

	make_ca(&ca, KEY_EC_P384, "test dbca 384", 86400);
	assert_int_equal(
	    X509_get_signature_nid(ca.cert), NID_ecdsa_with_SHA384);
	free_ca(&ca);
}

static int
has_san(X509 *x, int type, const char *text)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const GENERAL_NAME *gn;
	int i, found = 0, n;

	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		gn = sk_GENERAL_NAME_value(gens, i);
		if (gn->type != type)
			continue;
		if (type == GEN_DNS) {
			n = ASN1_STRING_length(gn->d.dNSName);
			found |= (size_t)n == strlen(text) &&
				 memcmp(ASN1_STRING_get0_data(gn->d.dNSName),
				     text, n) == 0;
		} else {
			ASN1_OCTET_STRING *ip = a2i_IPADDRESS(text);

			assert_non_null(ip);
			found |=
			    ASN1_OCTET_STRING_cmp(ip, gn->d.iPAddress) == 0;
			ASN1_OCTET_STRING_free(ip);
		}
	}
	GENERAL_NAMES_free(gens);
	return found;
}

static int
san_count(X509 *x)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = gens ? sk_GENERAL_NAME_num(gens) : 0;

	GENERAL_NAMES_free(gens);
	return n;
}

static void
test_server_profile_ec(void **state)
{
	static const char *const san[] = {"db1.example.com", "10.0.0.11",
	    "db.example.com", "fd00::11", "DB1.example.com"};
	struct ca_fx ca;
	EVP_PKEY *k = NULL;
	X509 *x;
	char cn[64];

	(void)state;
	make_ca(&ca, KEY_EC_P256, "test dbca", 3650LL * 86400);
	x = make_leaf(&ca, PKI_PROFILE_SERVER, KEY_EC_P256, "db1.example.com",
	    san, 5, 397LL * 86400, &k);
	assert_false(X509_get_extension_flags(x) & EXFLAG_CA);
	assert_true(ext_critical(x, NID_basic_constraints));
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
	assert_int_equal(pki_cert_cn(x, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "db1.example.com");
	assert_true(has_san(x, GEN_DNS, "db1.example.com"));
	assert_true(has_san(x, GEN_IPADD, "10.0.0.11"));
	assert_true(has_san(x, GEN_DNS, "db.example.com"));
	assert_true(has_san(x, GEN_IPADD, "fd00::11"));
	/* an IP literal is never written as a DNS name, and the duplicate
	 * differing only in case is dropped */
	assert_false(has_san(x, GEN_DNS, "10.0.0.11"));
	assert_int_equal(san_count(x), 4);
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
			     X509_get0_subject_key_id(ca.cert)),
	    0);
	assert_non_null(X509_get0_subject_key_id(x));
	assert_int_equal(X509_check_issued(ca.cert, x), X509_V_OK);
	assert_int_equal(X509_verify(x, ca.key), 1);
	assert_serial_ok(x);
	assert_true(pki_cert_key_matches(x, k));
	assert_true(pki_cert_covers(x, "db1.example.com"));
	assert_true(pki_cert_covers(x, "fd00:0:0::11"));
	assert_false(pki_cert_covers(x, "db2.example.com"));
	assert_false(pki_cert_covers(x, "10.0.0.12"));
	EVP_PKEY_free(k);
	X509_free(x);
	free_ca(&ca);
}

static void
test_server_profile_rsa_and_client(void **state)
{
	static const char *const san[] = {"db1.example.com", "10.0.0.11"};
	struct ca_fx ca;
	EVP_PKEY *k = NULL;
	X509 *x;
	char cn[64];

	(void)state;
	make_ca(&ca, KEY_EC_P384, "test dbca", 3650LL * 86400);
	x = make_leaf(&ca, PKI_PROFILE_SERVER, KEY_RSA_3072, "db1.example.com",
	    san, 2, 397LL * 86400, &k);
	assert_int_equal(
	    X509_get_key_usage(x), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(x)), 3072);
	/* signed by a P-384 CA: SHA-384 */
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA384);
	EVP_PKEY_free(k);
	X509_free(x);

	x = make_leaf(&ca, PKI_PROFILE_CLIENT, KEY_EC_P256, "postgres", NULL, 0,
	    397LL * 86400, &k);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_CLIENT);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_false(X509_get_extension_flags(x) & EXFLAG_CA);
	assert_int_equal(pki_cert_cn(x, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "postgres");
	assert_int_equal(san_count(x), 0);
	EVP_PKEY_free(k);
	X509_free(x);
	free_ca(&ca);
}

static void
test_serials_differ(void **state)
{
	struct ca_fx ca;
	EVP_PKEY *k1 = NULL, *k2 = NULL;
	X509 *a, *b;
	char sa[PKI_SERIAL_HEX], sb[PKI_SERIAL_HEX];

	(void)state;
	make_ca(&ca, KEY_EC_P256, "test dbca", 86400 * 30);
	a = make_leaf(
	    &ca, PKI_PROFILE_CLIENT, KEY_EC_P256, "u", NULL, 0, 86400, &k1);
	b = make_leaf(
	    &ca, PKI_PROFILE_CLIENT, KEY_EC_P256, "u", NULL, 0, 86400, &k2);
	pki_cert_serial_hex(a, sa);
	pki_cert_serial_hex(b, sb);
	assert_int_equal(strlen(sa), 40);
	assert_string_not_equal(sa, sb);
	assert_true(sa[0] <= '7'); /* top bit clear */
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	X509_free(a);
	X509_free(b);
	free_ca(&ca);
}

static void
test_not_after_capped(void **state)
{
	struct ca_fx ca;
	EVP_PKEY *k = NULL;
	X509 *x;

	(void)state;
	make_ca(&ca, KEY_EC_P256, "short dbca", 5LL * 86400);
	x = make_leaf(&ca, PKI_PROFILE_CLIENT, KEY_EC_P256, "postgres", NULL, 0,
	    397LL * 86400, &k);
	assert_true(pki_cert_not_after(x) == pki_cert_not_after(ca.cert));
	assert_true(pki_cert_not_before(x) >= pki_cert_not_before(ca.cert));
	EVP_PKEY_free(k);
	X509_free(x);
	free_ca(&ca);
}

static STACK_OF(X509) * bundle_of(X509 *x)
{
	STACK_OF(X509) *sk = sk_X509_new_null();

	assert_non_null(sk);
	X509_up_ref(x);
	sk_X509_push(sk, x);
	return sk;
}

static void
assert_verify_fails(X509 *x, STACK_OF(X509) * b, enum pki_purpose p,
    const char *host, int64_t at, const char *why)
{
	struct dbpki_err e;

	err_clear(&e);
	assert_int_equal(pki_verify(x, b, p, host, at, &e), DBPKI_E_VERIFY);
	if (strncmp(e.msg, why, strlen(why)) != 0)
		fail_msg("expected '%s', got '%s'", why, e.msg);
}

static void
test_verify_reasons(void **state)
{
	static const char *const san[] = {"db1.example.com", "10.0.0.11"};
	struct ca_fx ca, other;
	STACK_OF(X509) * b, *bo;
	struct dbpki_err e;
	EVP_PKEY *k = NULL, *kc = NULL;
	X509 *srv, *cli, *bad;
	unsigned char *der = NULL;
	const unsigned char *p;
	int len;

	(void)state;
	make_ca(&ca, KEY_EC_P256, "test dbca", 3650LL * 86400);
	make_ca(&other, KEY_EC_P256, "test dbca", 3650LL * 86400);
	srv = make_leaf(&ca, PKI_PROFILE_SERVER, KEY_EC_P256, "db1.example.com",
	    san, 2, 30LL * 86400, &k);
	cli = make_leaf(&ca, PKI_PROFILE_CLIENT, KEY_EC_P256, "postgres", NULL,
	    0, 30LL * 86400, &kc);
	b = bundle_of(ca.cert);
	bo = bundle_of(other.cert);

	ok(&e,
	    pki_verify(srv, b, PKI_PURPOSE_SERVER, "db1.example.com", 0, &e));
	ok(&e, pki_verify(srv, b, PKI_PURPOSE_SERVER, "10.0.0.11", 0, &e));
	ok(&e, pki_verify(cli, b, PKI_PURPOSE_CLIENT, NULL, 0, &e));
	assert_verify_fails(srv, b, PKI_PURPOSE_ANY, NULL,
	    util_now() + 31LL * 86400, "expired");
	assert_verify_fails(
	    srv, b, PKI_PURPOSE_ANY, NULL, util_now() - 86400, "not yet valid");
	/* same CA name, different key: not our issuer */
	assert_verify_fails(
	    srv, bo, PKI_PURPOSE_ANY, NULL, 0, "unknown issuer");
	assert_verify_fails(
	    cli, b, PKI_PURPOSE_SERVER, NULL, 0, "wrong purpose");
	assert_verify_fails(
	    srv, b, PKI_PURPOSE_CLIENT, NULL, 0, "wrong purpose");
	assert_verify_fails(srv, b, PKI_PURPOSE_SERVER, "db2.example.com", 0,
	    "name not in SAN");
	assert_verify_fails(
	    srv, b, PKI_PURPOSE_SERVER, "10.0.0.12", 0, "name not in SAN");

	/* flip the last byte of the signature */
	len = i2d_X509(srv, &der);
	assert_true(len > 0);
	der[len - 1] ^= 0x01;
	p = der;
	bad = d2i_X509(NULL, &p, len);
	assert_non_null(bad);
	assert_verify_fails(bad, b, PKI_PURPOSE_ANY, NULL, 0, "bad signature");
	OPENSSL_free(der);
	X509_free(bad);

	/* match: key mismatch */
	assert_true(pki_cert_key_matches(srv, k));
	assert_false(pki_cert_key_matches(srv, kc));
	assert_false(pki_cert_key_matches(cli, k));

	sk_X509_pop_free(b, X509_free);
	sk_X509_pop_free(bo, X509_free);
	EVP_PKEY_free(k);
	EVP_PKEY_free(kc);
	X509_free(srv);
	X509_free(cli);
	free_ca(&ca);
	free_ca(&other);
}

static void
test_key_pem_roundtrip(void **state)
{
	struct dbpki_err e;
	EVP_PKEY *k = NULL, *back = NULL;
	unsigned char *pem = NULL;
	size_t len = 0;

	(void)state;
	ok(&e, pki_key_generate(KEY_EC_P384, &k, &e));
	/* The slow KDF: under valgrind test_pki_key covers it once. */
	if (!slow_keys_ok())
		goto clear;
	ok(&e, pki_key_to_pem(k, "s3cret pass phrase", &pem, &len, &e));
	assert_non_null(strstr((char *)pem, "ENCRYPTED PRIVATE KEY"));
	assert_int_equal(
	    pki_key_from_pem(pem, len, "wrong", "k", &back, &e), DBPKI_E_PKI);
	assert_non_null(strstr(e.msg, "wrong passphrase"));
	assert_int_equal(
	    pki_key_from_pem(pem, len, NULL, "k", &back, &e), DBPKI_E_PKI);
	assert_non_null(strstr(e.msg, "encrypted"));
	ok(&e,
	    pki_key_from_pem(pem, len, "s3cret pass phrase", "k", &back, &e));
	assert_int_equal(EVP_PKEY_eq(k, back), 1);
	util_freezero(pem, len + 1);
	EVP_PKEY_free(back);
	back = NULL;
clear:
	ok(&e, pki_key_to_pem(k, NULL, &pem, &len, &e));
	assert_non_null(strstr((char *)pem, "-----BEGIN PRIVATE KEY-----"));
	ok(&e, pki_key_from_pem(pem, len, NULL, "k", &back, &e));
	assert_int_equal(EVP_PKEY_eq(k, back), 1);
	util_freezero(pem, len + 1);
	EVP_PKEY_free(back);
	EVP_PKEY_free(k);
}

static void
test_csr_and_sign(void **state)
{
	static const char *const san[] = {"app.example.com", "192.0.2.7"};
	char names[8][CFG_HOST];
	struct pki_spec *s = calloc(1, sizeof(*s)),
			*got = calloc(1, sizeof(*got));
	struct dbpki_err e;
	struct ca_fx ca;
	EVP_PKEY *k = NULL, *weak;
	char want[32];
	X509_REQ *req = NULL;
	X509 *x = NULL;

	(void)state;
	assert_non_null(s);
	assert_non_null(got);
	make_ca(&ca, KEY_EC_P256, "test dbca", 3650LL * 86400);
	s->profile = PKI_PROFILE_SERVER;
	snprintf(s->cn, sizeof(s->cn), "app.example.com");
	s->san[0] = san[0];
	s->san[1] = san[1];
	s->n_san = 2;
	ok(&e, pki_key_generate(KEY_EC_P256, &k, &e));
	ok(&e, pki_csr_build(s, k, &req, &e));
	ok(&e, pki_csr_read_spec(req, got, names, 8, &e));
	assert_string_equal(got->cn, "app.example.com");
	assert_int_equal(got->n_san, 2);
	got->profile = PKI_PROFILE_SERVER;
	got->validity = 86400;
	ok(&e, pki_cert_build(
		   got, X509_REQ_get0_pubkey(req), ca.cert, ca.key, &x, &e));
	assert_true(pki_cert_san_equal(x, s));
	assert_true(pki_cert_key_matches(x, k));
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
	X509_free(x);
	X509_REQ_free(req);
	req = NULL;

	/* a CSR with a weak key is refused */
	weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)weak_bits());
	assert_non_null(weak);
	ok(&e, pki_csr_build(s, weak, &req, &e));
	assert_int_equal(
	    pki_csr_read_spec(req, got, names, 8, &e), DBPKI_E_CONFIG);
	snprintf(want, sizeof(want), "RSA %d", weak_bits());
	assert_non_null(strstr(e.msg, want));
	/* a CSR whose signature does not verify is refused */
	assert_int_equal(X509_REQ_set_pubkey(req, k), 1);
	assert_int_equal(
	    pki_csr_read_spec(req, got, names, 8, &e), DBPKI_E_PKI);
	X509_REQ_free(req);
	EVP_PKEY_free(weak);
	EVP_PKEY_free(k);
	free_ca(&ca);
	free(s);
	free(got);
}

static void
test_san_rejects_garbage(void **state)
{
	struct pki_spec *s = calloc(1, sizeof(*s));
	GENERAL_NAMES *g = NULL;
	struct dbpki_err e;

	(void)state;
	assert_non_null(s);
	s->san[0] = "db1; rm -rf /";
	s->n_san = 1;
	assert_int_equal(pki_san_build(s, &g, &e), DBPKI_E_CONFIG);
	assert_null(g);
	free(s);
}

/* Every role the cluster treats as privileged, whatever the case; an
 * application role passes. */
static void
test_role_privileged(void **state)
{
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	static const char *const bad[] = {"postgres", "POSTGRES", "replicator",
	    "dbadmin", "nodeuser", "pg_monitor", "pg_read_server_files"};
	char why[160];
	size_t i;

	(void)state;
	assert_non_null(c);
	snprintf(
	    c->client_common_name, sizeof(c->client_common_name), "replicator");
	snprintf(c->ssh.user, sizeof(c->ssh.user), "dbadmin");
	c->n_nodes = 1;
	snprintf(c->nodes[0].name, sizeof(c->nodes[0].name), "db1");
	snprintf(
	    c->nodes[0].ssh.user, sizeof(c->nodes[0].ssh.user), "nodeuser");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (!pki_role_privileged(c, bad[i], why, sizeof(why)))
			fail_msg("'%s' not privileged", bad[i]);
		assert_true(why[0] != '\0');
	}
	assert_false(pki_role_privileged(c, "billing", why, sizeof(why)));
	assert_false(pki_role_privileged(c, "app_db1", why, sizeof(why)));
	free(c);
}

/* SANs beyond the spec: another node's name and address (wildcards, which
 * dbpki never signs, are in test_cert_rules). */
static void
test_san_extra(void **state)
{
	static const char *san[] = {"db1.example.com", "10.0.0.11"};
	struct pki_spec *s = calloc(1, sizeof(*s));
	struct dbpki_err e;
	struct ca_fx ca;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	char first[300];

	(void)state;
	assert_non_null(s);
	make_ca(&ca, KEY_EC_P256, "test dbca", 3650LL * 86400);
	ok(&e, pki_key_generate(KEY_EC_P256, &k, &e));
	s->profile = PKI_PROFILE_SERVER;
	s->validity = 86400;
	snprintf(s->cn, sizeof(s->cn), "db1.example.com");
	s->san[0] = san[0];
	s->san[1] = san[1];
	s->n_san = 2;
	ok(&e, pki_cert_build(s, k, ca.cert, ca.key, &x, &e));
	assert_int_equal(pki_cert_san_extra(x, s, first, sizeof(first)), 0);
	X509_free(x);
	s->san[2] = "db2.example.com";
	s->san[3] = "10.0.0.12";
	s->n_san = 4;
	ok(&e, pki_cert_build(s, k, ca.cert, ca.key, &x, &e));
	s->n_san = 2;
	assert_int_equal(pki_cert_san_extra(x, s, first, sizeof(first)), 2);
	assert_string_equal(first, "DNS:db2.example.com");
	X509_free(x);
	EVP_PKEY_free(k);
	free_ca(&ca);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_types),
	    cmocka_unit_test(test_keygen_parallel),
	    cmocka_unit_test(test_ca_profile),
	    cmocka_unit_test(test_server_profile_ec),
	    cmocka_unit_test(test_server_profile_rsa_and_client),
	    cmocka_unit_test(test_serials_differ),
	    cmocka_unit_test(test_not_after_capped),
	    cmocka_unit_test(test_verify_reasons),
	    cmocka_unit_test(test_key_pem_roundtrip),
	    cmocka_unit_test(test_csr_and_sign),
	    cmocka_unit_test(test_san_rejects_garbage),
	    cmocka_unit_test(test_role_privileged),
	    cmocka_unit_test(test_san_extra),
	};

	log_init(0, 1, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
