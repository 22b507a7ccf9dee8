/* pki internals shared by pki_*.c only (not a public header). */
#ifndef DBPKI_PKI_INT_H
#define DBPKI_PKI_INT_H

#include "dbpki/err.h"

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

#endif
