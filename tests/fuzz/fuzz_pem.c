/* libFuzzer target: what dbpki reads from files it did not write:
 * certificates and keys in PEM (import, inspect, match, issue --signed),
 * CSRs (sign) and bundles. */
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
	char(*names)[CFG_HOST] = NULL, extra[300];
	struct pki_spec *spec = NULL;
	X509_REQ *req = NULL;

	if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
		return 0;
	if (pki_cert_from_pem(data, size, "fuzz.pem", &x, &e) == 0) {
		pki_inspect_print(devnull, x, 0);
		pki_inspect_print(devnull, x, 1);
		/* issue --signed's SAN comparison on untrusted names */
		spec = calloc(1, sizeof(*spec));
		if (spec != NULL) {
			spec->san[0] = "db1.example.com";
			spec->n_san = 1;
			(void)pki_cert_san_extra(x, spec, extra, sizeof(extra));
			(void)pki_cert_cn(x, extra, sizeof(extra));
		}
		free(spec);
		X509_free(x);
	}
	/* ca import's rules, and the bundle reader releases use. */
	if (pki_import_check_pem(data, size, "fuzz.pem", 1700000000, &sk, &e) ==
	    0)
		sk_X509_pop_free(sk, X509_free);
	sk = NULL;
	if (pki_bundle_from_pem(data, size, "fuzz.pem", &sk, &e) == 0)
		sk_X509_pop_free(sk, X509_free);
	/* sign's CSR reader; what a CSR asks for. */
	if (pki_csr_from_pem((const char *)data, size, "fuzz.csr", &req, &e) ==
	    0) {
		spec = calloc(1, sizeof(*spec));
		names = calloc(PKI_MAX_SAN, sizeof(*names));
		if (spec != NULL && names != NULL)
			(void)pki_csr_read_spec(
			    req, spec, names, PKI_MAX_SAN, &e);
		free(names);
		free(spec);
		X509_REQ_free(req);
	}
	/* A wrong passphrase path must not crash either. */
	if (pki_key_from_pem(data, size, NULL, "fuzz.pem", &k, &e) == 0)
		EVP_PKEY_free(k);
	ERR_clear_error();
	return 0;
}
