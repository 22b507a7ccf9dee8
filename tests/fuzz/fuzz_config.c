/* libFuzzer target: the inventory parser (inih + the counting reader +
 * every validator) on arbitrary text.  Accepting or refusing is fine; a
 * crash, a leak, undefined behaviour, a refusal without a message, or an
 * accepted text that breaks a promise of the parser is not. */
#include "dbpki/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dbpki_cluster c; /* large: keep it off the stack */
	struct dbpki_err e;
	char *text;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(&c, 0, sizeof(c));
	err_clear(&e);
	if (cfg_load_string("fuzz.ini", text, &c, &e) != 0) {
		if (e.code == 0 || e.msg[0] == '\0')
			abort(); /* a refusal must say why */
	} else {
		/* Accepted: what check_cluster promises, and no byte order
		 * mark past the start (only a leading one is skipped). */
		size_t skip =
		    size >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;

		if (c.n_nodes < 1 || cfg_primary(&c) == NULL ||
		    memmem(text + skip, strlen(text + skip), "\xEF\xBB\xBF",
			3) != NULL)
			abort();
	}
	free(text);
	return 0;
}
