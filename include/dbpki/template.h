/* template: node-side scripts with {{name}} slots (see docs/playbooks.md).
 *
 * A template is shell text; the only syntax the renderer knows is
 *
 *	{{name}}   the value of `name`, shell-quoted as one single-quoted word
 *	{{!name}}  the value verbatim, allowed only when every byte is in
 *	           [A-Za-z0-9_./:,@+-] (for heredocs and config-file lines,
 *	           where quotes would be literal text)
 *
 * with name = [a-z0-9_]+.  Everything else is copied unchanged.  An unknown
 * slot, an unterminated "{{" or a malformed name is an error naming the
 * template and line; nothing is rendered partially.  Values are checked when
 * they enter a variable set, so a bad value is refused before any template
 * is even read.
 */
#ifndef DBPKI_TEMPLATE_H
#define DBPKI_TEMPLATE_H

#include <stddef.h>

#include "dbpki/err.h"

#define TPL_NAME_MAX  63   /* longest slot name */
#define TPL_VALUE_MAX 8192 /* longest value, in bytes */

struct tpl_var {
	char *name;
	char *value;
};

/* An ordered list of name -> value pairs.  Zero-initialise it
 * (`struct tpl_vars v = { 0 };`) before the first tpl_vars_set(); release
 * it with tpl_vars_free().  Treat the members as private. */
struct tpl_vars {
	struct tpl_var *v;
	size_t n;
	size_t cap;
};

/* Set name to a copy of value, replacing an earlier value of the same name
 * (the position of the first setting is kept).  name must be [a-z0-9_]+ of
 * at most TPL_NAME_MAX bytes.  value may be empty; it is refused if it holds
 * a control byte (0x00-0x1f, 0x7f: newline, tab, escape, ...) or is longer
 * than TPL_VALUE_MAX.  Errors (DBPKI_E_CONFIG, DBPKI_E_NOMEM) name the slot
 * as "{{name}}".  On error v is unchanged. */
int tpl_vars_set(struct tpl_vars *v, const char *name, const char *value,
    struct dbpki_err *e);

/* Same as tpl_vars_set() for a value of len bytes that need not be
 * NUL-terminated; an embedded NUL byte is refused. */
int tpl_vars_setn(struct tpl_vars *v, const char *name, const char *value,
    size_t len, struct dbpki_err *e);

/* The value of name, or NULL if it is not set.  Owned by v. */
const char *tpl_vars_get(const struct tpl_vars *v, const char *name);

/* Free every name and value; v is left empty and reusable.  NULL is fine. */
void tpl_vars_free(struct tpl_vars *v);

/* Quote s as one POSIX shell word: 'text' with each ' written as '\''.
 * *out is NULL on entry and set only on success; caller frees it. */
int tpl_shell_quote(const char *s, char **out, struct dbpki_err *e);

/* Render text.  origin names the template in messages
 * ("templates/postgres/join.sh"); errors read "ORIGIN:LINE: what is wrong"
 * with code DBPKI_E_CONFIG.  *out is NULL on entry and set only on success
 * to a NUL-terminated heap string; caller frees it. */
int tpl_render(const char *text, const char *origin, const struct tpl_vars *v,
    char **out, struct dbpki_err *e);

/* Render templates/<platform>/<action>.sh from the data directory found by
 * tpl_find_data_dir("templates").  platform and action must be
 * [a-z0-9_-]+.  The file must be a regular file, not a symlink, not
 * writable by group or others, at most UTIL_MAX_INPUT bytes.  Output as for
 * tpl_render(). */
int tpl_render_file(const char *platform, const char *action,
    const struct tpl_vars *v, char **out, struct dbpki_err *e);

/* Find dbpki's data directory `kind` ("templates" or "playbooks") and write
 * its path to out (outsz bytes).  Order:
 *   1. the environment variable DBPKI_<KIND> (DBPKI_TEMPLATES,
 *      DBPKI_PLAYBOOKS) if set and non-empty; it must name a directory,
 *      otherwise this is an error (no silent fallback);
 *   2. <root>/<kind> where <root> is the parent or grandparent of the
 *      directory holding the running binary and holds include/dbpki/ (a
 *      source checkout: build/dbpki, build/tests/test_x, build/tools/x);
 *   3. <bindir>/../share/dbpki/<kind>, <bindir> holding the running
 *      binary (an installed tree, whatever its PREFIX or DESTDIR);
 *   4. DBPKI_DATADIR "/<kind>" (set by the Makefile, the installed copy).
 * Returns 0, or DBPKI_E_CONFIG naming every place tried. */
int tpl_find_data_dir(
    const char *kind, char *out, size_t outsz, struct dbpki_err *e);

/* 1 if s is a valid slot name ([a-z0-9_]+, at most TPL_NAME_MAX). */
int tpl_valid_slot_name(const char *s);

/* 1 if s is a valid action, platform or playbook name: [a-z0-9_-]+, at
 * most 63 bytes, not starting with '-'. */
int tpl_valid_action_name(const char *s);

#endif
