#include "dbpki/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

void
err_clear(struct dbpki_err *e)
{
	e->code = DBPKI_OK;
	e->msg[0] = '\0';
}

static void
err_vformat(struct dbpki_err *e, int code, const char *fmt, va_list ap)
{
	e->code = code;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

int
err_set(struct dbpki_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vformat(e, code, fmt, ap);
	va_end(ap);
	return code;
}

static void
err_append(struct dbpki_err *e, const char *s)
{
	size_t len = strlen(e->msg);

	if (len < sizeof(e->msg) - 1)
		snprintf(e->msg + len, sizeof(e->msg) - len, "%s", s);
}

int
err_sys(struct dbpki_err *e, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	err_vformat(e, DBPKI_E_SYS, fmt, ap);
	va_end(ap);
	err_append(e, ": ");
	err_append(e, strerror(saved));
	errno = saved;
	return DBPKI_E_SYS;
}

int
err_ssl(struct dbpki_err *e, const char *fmt, ...)
{
	char buf[256];
	unsigned long code;
	int first = 1;
	va_list ap;

	va_start(ap, fmt);
	err_vformat(e, DBPKI_E_PKI, fmt, ap);
	va_end(ap);
	while ((code = ERR_get_error()) != 0) {
		ERR_error_string_n(code, buf, sizeof(buf));
		err_append(e, first ? ": " : "; ");
		err_append(e, buf);
		first = 0;
	}
	return DBPKI_E_PKI;
}

int
err_wrap(struct dbpki_err *e, const char *fmt, ...)
{
	char old[DBPKI_ERR_MSG];
	size_t len;
	va_list ap;

	memcpy(old, e->msg, sizeof(old));
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	len = strlen(e->msg);
	if (len + 2 < sizeof(e->msg)) {
		memcpy(e->msg + len, ": ", 3);
		len += 2;
		memcpy(e->msg + len, old, sizeof(e->msg) - len - 1);
		e->msg[sizeof(e->msg) - 1] = '\0';
	}
	return e->code;
}

const char *
err_name(int code)
{
	switch (code) {
	case DBPKI_OK: return "ok";
	case DBPKI_E_SYS: return "system";
	case DBPKI_E_NOMEM: return "nomem";
	case DBPKI_E_USAGE: return "usage";
	case DBPKI_E_CONFIG: return "config";
	case DBPKI_E_PKI: return "pki";
	case DBPKI_E_NOCA: return "noca";
	case DBPKI_E_EXISTS: return "exists";
	case DBPKI_E_LOCKED: return "locked";
	case DBPKI_E_SSH: return "ssh";
	case DBPKI_E_HOSTKEY: return "hostkey";
	case DBPKI_E_REMOTE: return "remote";
	case DBPKI_E_TIMEOUT: return "timeout";
	case DBPKI_E_VERIFY: return "verify";
	default: return "internal";
	}
}
