/* pki_key: key generation, description and PEM encoding. */
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

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

int
pki_key_to_pem(EVP_PKEY *k, const char *pass, unsigned char **out, size_t *len,
    struct dbpki_err *e)
{
	BIO *b;
	int r, ok;

	*out = NULL;
	*len = 0;
	/* BUF_MEM_free clears the buffer, so the mem BIO leaves no key behind. */
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return err_ssl(e, "cannot allocate a BIO");
	if (pass != NULL)
		ok = PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_256_cbc(),
		    pass, (int)strlen(pass), NULL, NULL);
	else
		ok = PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	if (!ok) {
		r = err_ssl(e, "cannot encode private key");
		goto out;
	}
	r = bio_take(b, out, len, e);
out:
	BIO_free(b);
	return r;
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

int
pki_key_load_pem(
    const char *path, const char *pass, EVP_PKEY **out, struct dbpki_err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if ((r = util_read_file(path, UTIL_MAX_INPUT,
		 UTIL_RF_PRIVATE | UTIL_RF_NOSYMLINK, &buf, &len, e)) != 0)
		return r;
	r = pki_key_from_pem(buf, len, pass, path, out, e);
	util_freezero(buf, len + 1);
	return r;
}
