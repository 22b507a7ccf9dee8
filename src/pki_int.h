/* pki internals shared by pki_*.c only (not a public header). */
#ifndef DBPKI_PKI_INT_H
#define DBPKI_PKI_INT_H

#include "dbpki/err.h"

#include <stddef.h>

#include <openssl/x509.h>

#define PKI_SHOW_PATH  160 /* characters of a path quoted in a message */
#define PKI_TRUST_FILE "ca/trusted.pem" /* an imported trust anchor */

/* A path for a message: sanitised, and cut short (a refused path may be
 * 4096 characters long).  Returns out. */
const char *pki_show_path(const char *path, char out[PKI_SHOW_PATH + 8]);

/* Every refusal of an input file reads "FILE: refused (rule: R): detail",
 * so an admin sees at once which rule failed and a script can grep it. */
int pki_refuse(struct dbpki_err *e, int code, const char *what,
    const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The text of a PEM file, before any block is decoded: no NUL byte;
 * after the first BEGIN line only PEM blocks and blank lines (text before
 * the first block is allowed: `openssl x509 -text` writes it); every
 * block ends.  *nblocks: how many blocks.  DBPKI_E_CONFIG under the rule
 * "PEM", quoting the stray text (sanitised). */
int pki_pem_text(const char *buf, size_t len, const char *what, int *nblocks,
    struct dbpki_err *e);

/* Every block of a PEM file (pki_pem_text first) as a certificate pushed
 * onto sk: CERTIFICATE blocks only (a private key is refused loudly), at
 * most PKI_IMPORT_MAX_CHAIN, each DER exactly one certificate with no
 * byte after it.  DBPKI_E_CONFIG under the rule "PEM". */
int pki_pem_certs(const void *buf, size_t len, const char *what,
    STACK_OF(X509) * sk, struct dbpki_err *e);

/* A file that leaves the tool (--out): refused when path exists, unless
 * force (and then only a regular file).  DBPKI_E_USAGE saying so. */
int pki_out_check(const char *path, int force, struct dbpki_err *e);

#endif
