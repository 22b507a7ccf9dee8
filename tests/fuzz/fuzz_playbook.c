/* libFuzzer target: the playbook parser on arbitrary text. */
#include "dbpki/playbook.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct playbook pb;
	struct dbpki_err e;
	char *text;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(&pb, 0, sizeof(pb));
	err_clear(&e);
	if (pb_load_string("fuzz.ini", text, &pb, &e) != 0 &&
	    (e.code == 0 || e.msg[0] == '\0'))
		abort();
	free(text);
	return 0;
}
