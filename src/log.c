#include "dbpki/log.h"

#include <stdarg.h>
#include <stdlib.h>
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

/* DESIGN "Text from outside": printable UTF-8 passes on a UTF-8 locale
 * only.  dbpki never calls setlocale(), so the environment decides, as it
 * would for a C program that did (LC_ALL, then LC_CTYPE, then LANG). */
static int
locale_is_utf8(void)
{
	static const char *const vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
	const char *v = NULL;
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if ((v = getenv(vars[i])) != NULL && *v != '\0')
			break;
	return v != NULL && (strcasestr(v, "utf-8") != NULL ||
				strcasestr(v, "utf8") != NULL);
}

/* The code point of the well-formed UTF-8 sequence at s (at most n bytes),
 * its length into *len; -1 if s does not start one (a stray continuation,
 * an overlong form, a surrogate, above U+10FFFF, cut short). */
static long
utf8_decode(const unsigned char *s, size_t n, size_t *len)
{
	static const long min[] = {0, 0, 0x80, 0x800, 0x10000};
	size_t k, i;
	long cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		k = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		k = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		k = 4;
		cp = s[0] & 0x07;
	} else
		return -1;
	if (n < k)
		return -1;
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*len = k;
	return cp;
}

/* C1 controls and the bidi controls that reorder what follows them. */
static int
cp_is_control(long cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
	       cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

/* Append text (n bytes) to dst at *o, whole or not at all. */
static int
put(char *dst, size_t dstsz, size_t *o, const char *text, size_t n)
{
	if (*o + n >= dstsz)
		return -1;
	memcpy(dst + *o, text, n);
	*o += n;
	return 0;
}

char *
log_sanitize(
    char *dst, size_t dstsz, const char *src, size_t srclen, int keep_nl)
{
	const unsigned char *s = (const unsigned char *)src;
	char esc[16];
	size_t i = 0, o = 0, len;
	long cp;
	int r;

	if (dstsz == 0)
		return dst;
	while (i < srclen && s[i] != '\0') {
		if ((s[i] >= 0x20 && s[i] < 0x7f) || s[i] == '\t' ||
		    (keep_nl && s[i] == '\n')) {
			r = put(dst, dstsz, &o, (const char *)s + i, 1);
			len = 1;
		} else if (s[i] < 0x80 ||
			   (cp = utf8_decode(s + i, srclen - i, &len)) < 0) {
			/* C0, DEL, or a byte that starts no character */
			snprintf(esc, sizeof(esc), "\\x%02x", s[i]);
			r = put(dst, dstsz, &o, esc, 4);
			len = 1;
		} else if (!cp_is_control(cp) && locale_is_utf8())
			r = put(dst, dstsz, &o, (const char *)s + i, len);
		else {
			snprintf(esc, sizeof(esc),
			    cp > 0xffff ? "\\U%08lx" : "\\u%04lx", cp);
			r = put(dst, dstsz, &o, esc, strlen(esc));
		}
		if (r != 0)
			break;
		i += len;
	}
	dst[o] = '\0';
	return dst;
}

char *
log_sanitize_tail(char *dst, size_t dstsz, const char *src, size_t srclen,
    int keep_nl, int max_lines)
{
	size_t start = srclen, cost = 0, i;
	int lines = 0;

	if (dstsz == 0)
		return dst;
	/* Back from the end while the escaped text surely fits (no byte
	 * takes more than 4 once escaped), and not past a NUL, which would
	 * end the text there. */
	while (start > 0 && src[start - 1] != '\0') {
		unsigned char c = (unsigned char)src[start - 1];
		size_t w =
		    (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t' ? 1 : 4;

		if (cost + w >= dstsz)
			break;
		cost += w;
		start--;
	}
	/* Whole characters: never start inside a UTF-8 sequence. */
	while (start < srclen && start > 0 &&
	       ((unsigned char)src[start] & 0xc0) == 0x80)
		start++;
	for (i = srclen; max_lines > 0 && i > start; i--)
		if (src[i - 1] == '\n' && i != srclen && ++lines == max_lines) {
			start = i;
			break;
		}
	return log_sanitize(dst, dstsz, src + start, srclen - start, keep_nl);
}

void
log_json_string(FILE *f, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len;
	long cp;

	fputc('"', f);
	while (*u != '\0') {
		len = 1;
		if (*u == '"' || *u == '\\')
			fprintf(f, "\\%c", *u);
		else if (*u == '\n')
			fputs("\\n", f);
		else if (*u < 0x20 || *u == 0x7f)
			fprintf(f, "\\u%04x", *u);
		else if (*u < 0x80)
			fputc(*u, f);
		else if ((cp = utf8_decode(u, 4, &len)) < 0) {
			/* not UTF-8 (a NUL ends the decoding too): the byte
			 * as the code point of its value, as before, so the
			 * document stays valid JSON */
			fprintf(f, "\\u%04x", *u);
			len = 1;
		} else if (cp_is_control(cp))
			fprintf(f, "\\u%04lx", cp); /* the same to a reader */
		else
			fwrite(u, 1, len, f); /* UTF-8 is JSON's own encoding */
		u += len;
	}
	fputc('"', f);
}
