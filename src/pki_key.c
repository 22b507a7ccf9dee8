/* pki_key: key generation, description and PEM encoding. */
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

int
pki_key_generate(enum cfg_key_alg alg, EVP_PKEY **out, struct dbpki_err *e)
{
	EVP_PKEY *k = NULL;

	*out = NULL;
	switch (alg) {
	case KEY_EC_P256:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case KEY_EC_P384:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case KEY_RSA_3072:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
		break;
	case KEY_RSA_4096:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
		break;
	default:
		return err_set(
		    e, DBPKI_E_INTERNAL, "unknown key algorithm %d", (int)alg);
	}
	if (k == NULL)
		return err_ssl(
		    e, "cannot generate a %s key", cfg_key_name(alg));
	*out = k;
	return 0;
}

static int
ec_group(const EVP_PKEY *k, char *name, size_t namesz)
{
	size_t len = 0;

	if (!EVP_PKEY_get_utf8_string_param(
		k, OSSL_PKEY_PARAM_GROUP_NAME, name, namesz, &len))
		return -1;
	return 0;
}

int
pki_key_alg(const EVP_PKEY *k, enum cfg_key_alg *out)
{
	char group[64];
	int bits = EVP_PKEY_get_bits(k);

	if (EVP_PKEY_is_a(k, "RSA")) {
		if (bits == 3072)
			*out = KEY_RSA_3072;
		else if (bits == 4096)
			*out = KEY_RSA_4096;
		else
			return -1;
		return 0;
	}
	if (!EVP_PKEY_is_a(k, "EC") || ec_group(k, group, sizeof(group)) != 0)
		return -1;
	if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
		*out = KEY_EC_P256;
	else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
		*out = KEY_EC_P384;
	else
		return -1;
	return 0;
}

void
pki_key_describe(
    const EVP_PKEY *k, char *out, size_t outsz, const char **type, int *bits)
{
	enum cfg_key_alg alg;
	char group[64];
	const char *t;
	int b = EVP_PKEY_get_bits(k);

	if (EVP_PKEY_is_a(k, "RSA"))
		t = "RSA";
	else if (EVP_PKEY_is_a(k, "EC"))
		t = "EC";
	else if (EVP_PKEY_is_a(k, "ED25519"))
		t = "ED25519";
	else if (EVP_PKEY_is_a(k, "ED448"))
		t = "ED448";
	else
		t = "unknown";
	if (type != NULL)
		*type = t;
	if (bits != NULL)
		*bits = b;
	if (pki_key_alg(k, &alg) == 0 && alg == KEY_EC_P256)
		util_fmt(out, outsz, "EC P-256");
	else if (pki_key_alg(k, &alg) == 0 && alg == KEY_EC_P384)
		util_fmt(out, outsz, "EC P-384");
	else if (strcmp(t, "EC") == 0 && ec_group(k, group, sizeof(group)) == 0)
		util_fmt(out, outsz, "EC %s", group);
	else
		util_fmt(out, outsz, "%s %d", t, b);
}

const EVP_MD *
pki_key_digest(const EVP_PKEY *signer)
{
	enum cfg_key_alg alg;

	if (pki_key_alg(signer, &alg) == 0 &&
	    (alg == KEY_EC_P384 || alg == KEY_RSA_4096))
		return EVP_sha384();
	return EVP_sha256();
}

/* Copy a memory BIO's contents into a plain heap buffer. */
static int
bio_take(BIO *b, unsigned char **out, size_t *len, struct dbpki_err *e)
{
	char *p = NULL;
	long n = BIO_get_mem_data(b, &p);

	if (n <= 0 || p == NULL)
		return err_set(e, DBPKI_E_PKI, "PEM encoding produced nothing");
	if ((*out = malloc((size_t)n + 1)) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	memcpy(*out, p, (size_t)n);
	(*out)[n] = '\0';
	*len = (size_t)n;
	return 0;
}

/* PBKDF2-HMAC-SHA256 with PKI_KDF_ITER iterations, AES-256-CBC (PBES2).
 * Built by hand because PEM_write_bio_PKCS8PrivateKey fixes the count at
 * PKCS5_DEFAULT_ITER (2048) and OpenSSL 3.0's encoders take no count;
 * PKCS5_pbe2_set_iv_ex + PKCS8_set0_pbe set it, and every OpenSSL since
 * 1.0 (and `openssl pkcs8`) reads the result. */
static int
encrypt_pem(BIO *b, EVP_PKEY *k, const char *pass, struct dbpki_err *e)
{
	PKCS8_PRIV_KEY_INFO *p8inf = NULL;
	X509_ALGOR *pbe = NULL;
	X509_SIG *p8 = NULL;
	int r = 0;

	if ((p8inf = EVP_PKEY2PKCS8(k)) == NULL ||
	    (pbe = PKCS5_pbe2_set_iv_ex(EVP_aes_256_cbc(), PKI_KDF_ITER, NULL,
		 0, NULL, NID_hmacWithSHA256, NULL)) == NULL) {
		r = err_ssl(e, "cannot set up the key encryption");
		goto out;
	}
	if ((p8 = PKCS8_set0_pbe(pass, (int)strlen(pass), p8inf, pbe)) ==
	    NULL) {
		r = err_ssl(e, "cannot encrypt the private key");
		goto out;
	}
	pbe = NULL; /* p8 owns it now */
	if (!PEM_write_bio_PKCS8(b, p8))
		r = err_ssl(e, "cannot encode private key");
out:
	X509_SIG_free(p8);
	X509_ALGOR_free(pbe);
	PKCS8_PRIV_KEY_INFO_free(p8inf);
	return r;
}

int
pki_pass_check(const char *pass, const char *what, struct dbpki_err *e)
{
	size_t n = strlen(pass);

	if (n < PKI_PASS_MIN)
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: the passphrase has %zu bytes, a new CA key needs at "
		    "least %d; write a longer one (e.g. `openssl rand -base64 "
		    "24`)",
		    what, n, PKI_PASS_MIN);
	return 0;
}

int
pki_key_to_pem(EVP_PKEY *k, const char *pass, unsigned char **out, size_t *len,
    struct dbpki_err *e)
{
	BIO *b;
	int r;

	*out = NULL;
	*len = 0;
	if (pass != NULL &&
	    (r = pki_pass_check(
		 pass, "[ca] passphrase_file or passphrase_env", e)) != 0)
		return r;
	/* BUF_MEM_free clears the buffer, so the mem BIO leaves no key behind. */
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return err_ssl(e, "cannot allocate a BIO");
	if (pass != NULL)
		r = encrypt_pem(b, k, pass, e);
	else if (!PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
		r = err_ssl(e, "cannot encode private key");
	else
		r = 0;
	if (r == 0)
		r = bio_take(b, out, len, e);
	BIO_free(b);
	return r;
}

/* PBES2's key derivation: PBKDF2 with its count, or scrypt. */
static void
pbes2_kdf(const X509_ALGOR *alg, struct pki_key_prot *p)
{
	PBE2PARAM *p2 = NULL;
	PBKDF2PARAM *kdf = NULL;
	long iter;

	p->kdf = "pbes2";
	if ((p2 = ASN1_TYPE_unpack_sequence(
		 ASN1_ITEM_rptr(PBE2PARAM), alg->parameter)) == NULL)
		return;
	switch (OBJ_obj2nid(p2->keyfunc->algorithm)) {
	case NID_id_scrypt:
		p->kdf = "scrypt";
		p->strong = 1;
		break;
	case NID_id_pbkdf2:
		p->kdf = "pbkdf2";
		kdf = ASN1_TYPE_unpack_sequence(
		    ASN1_ITEM_rptr(PBKDF2PARAM), p2->keyfunc->parameter);
		if (kdf != NULL && (iter = ASN1_INTEGER_get(kdf->iter)) > 0)
			p->iter = iter;
		p->strong = p->iter >= PKI_KDF_ITER;
		break;
	default: break;
	}
	PBKDF2PARAM_free(kdf);
	PBE2PARAM_free(p2);
}

int
pki_key_protection(const void *buf, size_t len, struct pki_key_prot *p)
{
	const X509_ALGOR *alg = NULL;
	X509_SIG *p8 = NULL;
	BIO *b;

	memset(p, 0, sizeof(*p));
	p->kdf = "none";
	if (len > INT32_MAX || (b = BIO_new_mem_buf(buf, (int)len)) == NULL)
		return -1;
	/* Only the header is read: no passphrase, no KDF run. */
	p8 = PEM_read_bio_PKCS8(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	if (p8 != NULL) {
		p->encrypted = 1;
		X509_SIG_get0(p8, &alg, NULL);
		if (OBJ_obj2nid(alg->algorithm) == NID_pbes2)
			pbes2_kdf(alg, p);
		else
			p->kdf = "pbes1"; /* PKCS#5 v1.5 or PKCS#12 PBE: weak */
		X509_SIG_free(p8);
		return 0;
	}
	/* A traditional PEM key encrypted with EVP_BytesToKey (one MD5
	 * round): encrypted, weak. */
	if (memmem(buf, len, "Proc-Type: 4,ENCRYPTED", 22) != NULL) {
		p->encrypted = 1;
		p->kdf = "openssl-legacy";
		return 0;
	}
	if (memmem(buf, len, "PRIVATE KEY-----", 16) == NULL)
		return -1;
	return 0;
}

struct pass_cb {
	const char *pass;
	int asked;
};

static int
pass_cb(char *buf, int size, int rwflag, void *u)
{
	struct pass_cb *p = u;
	size_t n;

	(void)rwflag;
	p->asked = 1;
	if (p->pass == NULL)
		return -1;
	n = strlen(p->pass);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, p->pass, n);
	return (int)n;
}

int
pki_key_from_pem(const void *buf, size_t len, const char *pass,
    const char *what, EVP_PKEY **out, struct dbpki_err *e)
{
	struct pass_cb pcb = {pass, 0};
	BIO *b;

	*out = NULL;
	if (len > INT32_MAX || (b = BIO_new_mem_buf(buf, (int)len)) == NULL)
		return err_ssl(e, "%s: cannot read", what);
	*out = PEM_read_bio_PrivateKey(b, NULL, pass_cb, &pcb);
	BIO_free(b);
	if (*out != NULL)
		return 0;
	if (pcb.asked && pass == NULL) {
		ERR_clear_error();
		return err_set(e, DBPKI_E_PKI,
		    "%s: the key is encrypted and no "
		    "passphrase is configured; set [ca] passphrase_file or "
		    "passphrase_env",
		    what);
	}
	if (pcb.asked) {
		ERR_clear_error();
		return err_set(e, DBPKI_E_PKI,
		    "%s: wrong passphrase (cannot "
		    "decrypt the key)",
		    what);
	}
	return err_ssl(e, "%s: not a PEM private key", what);
}

/* Decrypt once per run: a slow KDF (PKI_KDF_ITER) costs a noticeable
 * fraction of a second, and one run opens the CA key several times
 * (ensure_ca, issue, the CRL, ...).  A decrypted key is kept for the
 * process, keyed by the SHA-256 of the file's bytes and the passphrase,
 * so a changed file or passphrase is decrypted (and judged) afresh.  Only
 * encrypted keys are kept: a clear one costs nothing to parse. */
#define KEY_CACHE_MAX 4

static struct {
	unsigned char id[SHA256_DIGEST_LENGTH];
	EVP_PKEY *k;
} key_cache[KEY_CACHE_MAX];
static pthread_mutex_t key_cache_mu = PTHREAD_MUTEX_INITIALIZER;

static void
cache_id(const void *buf, size_t len, const char *pass,
    unsigned char id[SHA256_DIGEST_LENGTH])
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned int n = 0;

	memset(id, 0, SHA256_DIGEST_LENGTH);
	if (m == NULL)
		return;
	if (!EVP_DigestInit_ex(m, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(m, buf, len) || !EVP_DigestUpdate(m, "", 1) ||
	    !EVP_DigestUpdate(m, pass, strlen(pass)) ||
	    !EVP_DigestFinal_ex(m, id, &n))
		memset(id, 0, SHA256_DIGEST_LENGTH);
	EVP_MD_CTX_free(m);
}

static EVP_PKEY *
cache_get(const unsigned char id[SHA256_DIGEST_LENGTH])
{
	EVP_PKEY *k = NULL;
	int i;

	pthread_mutex_lock(&key_cache_mu);
	for (i = 0; i < KEY_CACHE_MAX && k == NULL; i++)
		if (key_cache[i].k != NULL &&
		    CRYPTO_memcmp(key_cache[i].id, id, SHA256_DIGEST_LENGTH) ==
			0 &&
		    EVP_PKEY_up_ref(key_cache[i].k))
			k = key_cache[i].k;
	pthread_mutex_unlock(&key_cache_mu);
	return k;
}

static void
cache_put(const unsigned char id[SHA256_DIGEST_LENGTH], EVP_PKEY *k)
{
	int i;

	pthread_mutex_lock(&key_cache_mu);
	for (i = 0; i < KEY_CACHE_MAX; i++)
		if (key_cache[i].k == NULL && EVP_PKEY_up_ref(k)) {
			memcpy(key_cache[i].id, id, SHA256_DIGEST_LENGTH);
			key_cache[i].k = k;
			break;
		}
	pthread_mutex_unlock(&key_cache_mu);
}

void
pki_key_cache_clear(void)
{
	int i;

	pthread_mutex_lock(&key_cache_mu);
	for (i = 0; i < KEY_CACHE_MAX; i++) {
		EVP_PKEY_free(key_cache[i].k);
		key_cache[i].k = NULL;
	}
	pthread_mutex_unlock(&key_cache_mu);
}

int
pki_key_load_pem(
    const char *path, const char *pass, EVP_PKEY **out, struct dbpki_err *e)
{
	unsigned char id[SHA256_DIGEST_LENGTH];
	char *buf = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if ((r = util_read_file(path, UTIL_MAX_INPUT,
		 UTIL_RF_PRIVATE | UTIL_RF_NOSYMLINK, &buf, &len, e)) != 0)
		return r;
	if (pass != NULL) {
		cache_id(buf, len, pass, id);
		if ((*out = cache_get(id)) != NULL) {
			util_freezero(buf, len + 1);
			return 0;
		}
	}
	r = pki_key_from_pem(buf, len, pass, path, out, e);
	if (r == 0 && pass != NULL)
		cache_put(id, *out);
	util_freezero(buf, len + 1);
	return r;
}
