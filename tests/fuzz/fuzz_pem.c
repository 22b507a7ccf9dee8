/* libFuzzer target: what dbpki reads from files it did not write:
 * certificates and keys in PEM (import, inspect, match) and bundles. */
#include "dbpki/pki.h"

#include <openssl/err.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static FILE *devnull;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dbpki_err e;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	STACK_OF(X509) *sk = NULL;

	if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
		return 0;
	if (pki_cert_from_pem(data, size, "fuzz.pem", &x, &e) == 0) {
		pki_inspect_print(devnull, x, 0);
		pki_inspect_print(devnull, x, 1);
		X509_free(x);
	}
	/* ca import's rules, and the bundle reader releases use. */
	if (pki_import_check_pem(data, size, "fuzz.pem", 1700000000, &sk, &e) ==
	    0)
		sk_X509_pop_free(sk, X509_free);
	sk = NULL;
	if (pki_bundle_from_pem(data, size, "fuzz.pem", &sk, &e) == 0)
		sk_X509_pop_free(sk, X509_free);
	/* A wrong passphrase path must not crash either. */
	if (pki_key_from_pem(data, size, NULL, "fuzz.pem", &k, &e) == 0)
		EVP_PKEY_free(k);
	ERR_clear_error();
	return 0;
}
