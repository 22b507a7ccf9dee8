#include "dbpki/log.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

static enum log_mode mode = LOG_PLAIN;
static int quiet_flag;
static int verbose_flag;

void
log_init(int json, int quiet, int verbose)
{
	if (json)
		mode = LOG_JSON;
	else
		mode = isatty(STDERR_FILENO) ? LOG_TTY : LOG_PLAIN;
	quiet_flag = quiet;
	verbose_flag = verbose;
}

enum log_mode
log_get_mode(void)
{
	return mode;
}

static void
vlog(const char *level, const char *fmt, va_list ap)
{
	char buf[4096];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (mode == LOG_JSON) {
		fputs("{\"event\":\"log\",\"level\":", stdout);
		log_json_string(stdout, level);
		fputs(",\"msg\":", stdout);
		log_json_string(stdout, buf);
		fputs("}\n", stdout);
		fflush(stdout);
		return;
	}
	if (strcmp(level, "info") == 0)
		fprintf(stderr, "%s\n", buf);
	else
		fprintf(stderr, "dbpki: %s: %s\n", level, buf);
}

#define DEFINE_LOG(fn, level, cond)                                            \
	void fn(const char *fmt, ...)                                          \
	{                                                                      \
		va_list ap;                                                    \
		if (!(cond))                                                   \
			return;                                                \
		va_start(ap, fmt);                                             \
		vlog(level, fmt, ap);                                          \
		va_end(ap);                                                    \
	}

DEFINE_LOG(log_debug, "debug", verbose_flag)
DEFINE_LOG(log_info, "info", !quiet_flag)
DEFINE_LOG(log_warn, "warning", 1)
DEFINE_LOG(log_error, "error", 1)

char *
log_sanitize(
    char *dst, size_t dstsz, const char *src, size_t srclen, int keep_nl)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;
	unsigned char c;

	if (dstsz == 0)
		return dst;
	for (i = 0; i < srclen && src[i] != '\0'; i++) {
		c = (unsigned char)src[i];
		if ((c >= 0x20 && c < 0x7f) || (keep_nl && c == '\n') ||
		    c == '\t') {
			if (o + 1 >= dstsz)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= dstsz)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		}
	}
	dst[o] = '\0';
	return dst;
}

void
log_json_string(FILE *f, const char *s)
{
	unsigned char c;

	fputc('"', f);
	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}
