/* tplrender: render a template from the command line, for shell tests.
 *
 *	tplrender FILE [NAME VALUE]...
 *	tplrender -a PLATFORM ACTION [NAME VALUE]...
 *
 * The first form renders FILE (origin in messages: FILE); the second
 * renders templates/PLATFORM/ACTION.sh through tpl_render_file() and its
 * directory lookup (DBPKI_TEMPLATES, the checkout, DBPKI_DATADIR).  The
 * result goes to stdout; on error the message goes to stderr, nothing to
 * stdout, and the exit status is 1 (2 for usage).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpki/template.h"
#include "dbpki/util.h"

static int
usage(void)
{
	fprintf(stderr,
	    "usage: tplrender FILE [NAME VALUE]...\n"
	    "       tplrender -a PLATFORM ACTION [NAME VALUE]...\n");
	return 2;
}

static int
render_path(
    const char *path, const struct tpl_vars *v, char **out, struct dbpki_err *e)
{
	char *text = NULL;
	size_t len;
	int r;

	if ((r = util_read_file(
		 path, UTIL_MAX_INPUT, UTIL_RF_NOSYMLINK, &text, &len, e)) != 0)
		return r;
	r = tpl_render(text, path, v, out, e);
	free(text);
	return r;
}

int
main(int argc, char **argv)
{
	struct tpl_vars v = {0};
	struct dbpki_err e;
	char *out = NULL;
	int first, i, r;

	err_clear(&e);
	if (argc >= 2 && strcmp(argv[1], "-a") == 0)
		first = 4;
	else
		first = 2;
	if (argc < first || (argc - first) % 2 != 0)
		return usage();
	for (i = first; i < argc; i += 2)
		if ((r = tpl_vars_set(&v, argv[i], argv[i + 1], &e)) != 0)
			goto out;
	if (first == 4)
		r = tpl_render_file(argv[2], argv[3], &v, &out, &e);
	else
		r = render_path(argv[1], &v, &out, &e);
	if (r == 0 && fputs(out, stdout) == EOF)
		r = err_sys(&e, "cannot write the result");
out:
	if (r != 0)
		fprintf(stderr, "tplrender: %s\n", e.msg);
	free(out);
	tpl_vars_free(&v);
	return r == 0 ? 0 : 1;
}
