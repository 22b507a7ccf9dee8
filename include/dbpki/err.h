/* err: one error namespace for dbpki.
 *
 * Every fallible function takes a `struct dbpki_err *` and returns 0 on success
 * or a negative DBPKI_E_* code.  The message is written once, where the failure
 * happens; callers may add context with err_wrap() but never log it again.
 */
#ifndef DBPKI_ERR_H
#define DBPKI_ERR_H

#include <stddef.h>

enum dbpki_code {
	DBPKI_OK = 0,
	DBPKI_E_SYS = -1, /* errno holds the detail, already in msg */
	DBPKI_E_NOMEM = -2,
	DBPKI_E_USAGE = -3,  /* bad command line */
	DBPKI_E_CONFIG = -4, /* bad inventory or input file */
	DBPKI_E_PKI = -5,  /* OpenSSL failure or invalid certificate material */
	DBPKI_E_NOCA = -6, /* the CA has not been initialised */
	DBPKI_E_EXISTS = -7,   /* refusing to overwrite */
	DBPKI_E_LOCKED = -8,   /* another run holds the lock */
	DBPKI_E_SSH = -9,      /* transport or authentication */
	DBPKI_E_HOSTKEY = -10, /* unknown or changed host key */
	DBPKI_E_REMOTE = -11,  /* a node-side command failed */
	DBPKI_E_TIMEOUT = -12,
	DBPKI_E_VERIFY = -13, /* verification of the result failed */
	DBPKI_E_INTERNAL = -14,
};

#define DBPKI_ERR_MSG 2048

struct dbpki_err {
	int code;
	char msg[DBPKI_ERR_MSG];
};

/* Reset e to "no error". */
void err_clear(struct dbpki_err *e);

/* Record an error and return code, so callers can write `return err_set(...)`.
 * Any earlier message in e is replaced. */
int err_set(struct dbpki_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like err_set(DBPKI_E_SYS) but appends ": strerror(errno)". */
int err_sys(struct dbpki_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Like err_set(DBPKI_E_PKI) but appends the drained OpenSSL error queue. */
int err_ssl(struct dbpki_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefix the existing message with context ("ctx: old message"); keeps the
 * code.  Returns e->code. */
int err_wrap(struct dbpki_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Short name of a code, for logs and JSON ("config", "hostkey", ...). */
const char *err_name(int code);

#endif
