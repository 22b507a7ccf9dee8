/* libFuzzer target: the template renderer.  The input is split at the
 * first NUL byte into a template and a value; the value fills every slot
 * the fuzzer names.  A rendered quoted value must come back out of the
 * renderer intact: the quoting is checked here by undoing it. */
#include "dbpki/template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const slots[] = {"node", "host", "cert_dir", "value"};

/* Undo tpl_shell_quote: '...' pieces joined by \' ; NULL if malformed. */
static char *
unquote(const char *q)
{
	char *out = malloc(strlen(q) + 1), *o = out;

	if (out == NULL)
		return NULL;
	while (*q != '\0') {
		if (*q == '\'') {
			const char *end = strchr(q + 1, '\'');

			if (end == NULL)
				break;
			memcpy(o, q + 1, (size_t)(end - q - 1));
			o += end - q - 1;
			q = end + 1;
		} else if (q[0] == '\\' && q[1] == '\'') {
			*o++ = '\'';
			q += 2;
		} else {
			break;
		}
	}
	*o = '\0';
	if (*q != '\0') {
		free(out);
		return NULL;
	}
	return out;
}

static void
check_quote(const char *value)
{
	struct dbpki_err e;
	char *q = NULL, *back;

	if (tpl_shell_quote(value, &q, &e) != 0)
		return;
	if ((back = unquote(q)) == NULL || strcmp(back, value) != 0)
		abort();
	free(back);
	free(q);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tpl_vars v;
	struct dbpki_err e;
	char *buf, *out = NULL;
	size_t tlen, i;

	if ((buf = malloc(size + 2)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	buf[size + 1] = '\0';
	tlen = strlen(buf);
	memset(&v, 0, sizeof(v));
	for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
		(void)tpl_vars_set(&v, slots[i], buf + tlen + 1, &e);
	check_quote(buf + tlen + 1);
	err_clear(&e);
	if (tpl_render(buf, "fuzz.sh", &v, &out, &e) == 0) {
		if (out == NULL)
			abort();
		free(out);
	} else if (e.msg[0] == '\0') {
		abort();
	}
	tpl_vars_free(&v);
	free(buf);
	return 0;
}
