#include "dbpki/template.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbpki/log.h"
#include "dbpki/util.h"

#ifndef DBPKI_DATADIR
#define DBPKI_DATADIR "/usr/local/share/dbpki"
#endif

/* Bytes a {{!name}} value may contain: enough for paths, ports, host names,
 * CIDR lists and user names, and nothing a shell or a config-file parser
 * treats specially (no quote, space, $, `, ;, #, =, \, glob characters). */
#define TPL_RAW_CHARS "_./:,@+-"

struct tbuf {
	char *p;
	size_t len;
	size_t cap;
};

int
tpl_valid_slot_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > TPL_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) ||
			isdigit((unsigned char)s[i]) || s[i] == '_'))
			return 0;
	return 1;
}

int
tpl_valid_action_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) ||
			isdigit((unsigned char)s[i]) || s[i] == '_' ||
			s[i] == '-'))
			return 0;
	return 1;
}

static int
valid_raw_value(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) &&
		    strchr(TPL_RAW_CHARS, *s) == NULL)
			return 0;
	return 1;
}

static struct tpl_var *
vars_find(const struct tpl_vars *v, const char *name, size_t namelen)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (strlen(v->v[i].name) == namelen &&
		    memcmp(v->v[i].name, name, namelen) == 0)
			return &v->v[i];
	return NULL;
}

/* Refuse what cannot travel inside one quoted shell word on one line.  A
 * newline would be safe inside '...' but breaks line-oriented scripts and
 * logs; the rest are never legitimate in inventory values. */
static int
check_value(
    const char *name, const char *value, size_t len, struct dbpki_err *e)
{
	size_t i;
	unsigned char c;

	if (len > TPL_VALUE_MAX)
		return err_set(e, DBPKI_E_CONFIG,
		    "template slot {{%s}}: value too long (%zu bytes, at most "
		    "%d)",
		    name, len, TPL_VALUE_MAX);
	for (i = 0; i < len; i++) {
		c = (unsigned char)value[i];
		if (c < 0x20 || c == 0x7f)
			return err_set(e, DBPKI_E_CONFIG,
			    "template slot {{%s}}: value has control byte "
			    "0x%02x "
			    "at offset %zu; refusing to put it into a node "
			    "script",
			    name, c, i);
	}
	return 0;
}

int
tpl_vars_setn(struct tpl_vars *v, const char *name, const char *value,
    size_t len, struct dbpki_err *e)
{
	struct tpl_var *slot, *grown;
	char *copy;
	size_t ncap;
	int r;

	if (!tpl_valid_slot_name(name))
		return err_set(e, DBPKI_E_INTERNAL,
		    "template slot name \"%.80s\" is not [a-z0-9_]+", name);
	if ((r = check_value(name, value, len, e)) != 0)
		return r;
	if ((copy = malloc(len + 1)) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	memcpy(copy, value, len);
	copy[len] = '\0';
	if ((slot = vars_find(v, name, strlen(name))) != NULL) {
		free(slot->value);
		slot->value = copy;
		return 0;
	}
	if (v->n == v->cap) {
		ncap = v->cap == 0 ? 16 : v->cap * 2;
		if ((grown = reallocarray(v->v, ncap, sizeof(*grown))) ==
		    NULL) {
			free(copy);
			return err_set(e, DBPKI_E_NOMEM, "out of memory");
		}
		v->v = grown;
		v->cap = ncap;
	}
	if ((v->v[v->n].name = strdup(name)) == NULL) {
		free(copy);
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	}
	v->v[v->n].value = copy;
	v->n++;
	return 0;
}

int
tpl_vars_set(struct tpl_vars *v, const char *name, const char *value,
    struct dbpki_err *e)
{
	return tpl_vars_setn(v, name, value, strlen(value), e);
}

const char *
tpl_vars_get(const struct tpl_vars *v, const char *name)
{
	const struct tpl_var *slot = vars_find(v, name, strlen(name));

	return slot == NULL ? NULL : slot->value;
}

void
tpl_vars_free(struct tpl_vars *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->n; i++) {
		free(v->v[i].name);
		free(v->v[i].value);
	}
	free(v->v);
	v->v = NULL;
	v->n = v->cap = 0;
}

static int
tbuf_add(struct tbuf *b, const char *s, size_t n)
{
	char *grown;
	size_t ncap;

	if (b->len + n + 1 > b->cap) {
		ncap = b->cap == 0 ? 4096 : b->cap;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((grown = realloc(b->p, ncap)) == NULL)
			return -1;
		b->p = grown;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* util_shell_quote: the same quoting as every other remote command. */
static int
tbuf_quote(struct tbuf *b, const char *s)
{
	size_t need = util_shell_quote(s, NULL, 0);
	char *q;
	int r;

	if ((q = malloc(need + 1)) == NULL)
		return -1;
	util_shell_quote(s, q, need + 1);
	r = tbuf_add(b, q, need);
	free(q);
	return r;
}

int
tpl_shell_quote(const char *s, char **out, struct dbpki_err *e)
{
	struct tbuf b = {0};

	*out = NULL;
	if (tbuf_quote(&b, s) != 0) {
		free(b.p);
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	}
	*out = b.p;
	return 0;
}

/* The names a variable set offers, for "unknown slot" messages. */
static void
known_names(const struct tpl_vars *v, char *out, size_t outsz)
{
	size_t i, len = 0;
	int n;

	out[0] = '\0';
	for (i = 0; i < v->n && len < outsz; i++) {
		n = snprintf(out + len, outsz - len, "%s%s", i ? ", " : "",
		    v->v[i].name);
		if (n < 0)
			break;
		len += (size_t)n;
	}
	if (v->n == 0)
		snprintf(out, outsz, "none");
}

/* One slot: p points at "{{".  On success appends the value and sets *next
 * past the closing "}}". */
static int
render_slot(struct tbuf *b, const char *p, const char *origin, int line,
    const struct tpl_vars *v, const char **next, struct dbpki_err *e)
{
	const char *inner = p + 2, *close, *eol, *name;
	const struct tpl_var *slot;
	char shown[96], known[512];
	size_t namelen;
	int raw;

	eol = strchr(inner, '\n');
	close = strstr(inner, "}}");
	if (close == NULL || (eol != NULL && close > eol))
		return err_set(e, DBPKI_E_CONFIG,
		    "%s:%d: unterminated \"{{\": a slot is {{name}} on one "
		    "line",
		    origin, line);
	raw = *inner == '!';
	name = inner + raw;
	namelen = (size_t)(close - name);
	log_sanitize(shown, sizeof(shown), inner, (size_t)(close - inner), 0);
	if (namelen == 0 || namelen > TPL_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != namelen)
		return err_set(e, DBPKI_E_CONFIG,
		    "%s:%d: {{%s}}: a slot name must be [a-z0-9_]+ (at most %d "
		    "characters), optionally after '!'",
		    origin, line, shown, TPL_NAME_MAX);
	if ((slot = vars_find(v, name, namelen)) == NULL) {
		known_names(v, known, sizeof(known));
		return err_set(e, DBPKI_E_CONFIG,
		    "%s:%d: unknown slot {{%s}}; this action provides: %s",
		    origin, line, shown, known);
	}
	if (raw && !valid_raw_value(slot->value))
		return err_set(e, DBPKI_E_CONFIG,
		    "%s:%d: {{%s}}: value \"%.80s\" is not a plain word of "
		    "[A-Za-z0-9%s] and cannot go in unquoted; use {{%s}}",
		    origin, line, shown, slot->value, TPL_RAW_CHARS,
		    slot->name);
	if ((raw ? tbuf_add(b, slot->value, strlen(slot->value))
		 : tbuf_quote(b, slot->value)) != 0)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	*next = close + 2;
	return 0;
}

int
tpl_render(const char *text, const char *origin, const struct tpl_vars *v,
    char **out, struct dbpki_err *e)
{
	struct tbuf b = {0};
	const char *p = text, *open;
	int line = 1, r;

	*out = NULL;
	while ((open = strstr(p, "{{")) != NULL) {
		if (tbuf_add(&b, p, (size_t)(open - p)) != 0) {
			r = err_set(e, DBPKI_E_NOMEM, "out of memory");
			goto out;
		}
		for (; p < open; p++)
			line += *p == '\n';
		if ((r = render_slot(&b, open, origin, line, v, &p, e)) != 0)
			goto out;
	}
	if (tbuf_add(&b, p, strlen(p)) != 0) {
		r = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	*out = b.p;
	b.p = NULL;
	r = 0;
out:
	free(b.p);
	return r;
}

static int
is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Cut the last path component off path in place ("/a/b" -> "/a"). */
static void
cut_last(char *path)
{
	char *slash = strrchr(path, '/');

	if (slash == NULL)
		path[0] = '\0';
	else if (slash == path)
		path[1] = '\0';
	else
		*slash = '\0';
}

/* The directory holding the running binary, into dir (PATH_MAX bytes). */
static int
exe_dir(char *dir)
{
	ssize_t n = readlink("/proc/self/exe", dir, PATH_MAX - 1);

	if (n <= 0)
		return -1;
	dir[n] = '\0';
	cut_last(dir);
	return 0;
}

/* A source checkout: the binary sits in BUILD/ or BUILD/tests/ (or
 * BUILD/tools/), so the root is one or two levels above its directory.
 * include/dbpki/ marks the root, so an installed /usr/bin/dbpki never picks
 * up an unrelated /usr/templates. */
static int
find_in_checkout(const char *kind, char *out, size_t outsz)
{
	char dir[PATH_MAX], probe[PATH_MAX];
	int up;

	if (exe_dir(dir) != 0)
		return -1;
	for (up = 0; up < 2; up++) {
		cut_last(dir);
		if (dir[0] == '\0')
			return -1;
		if (util_fmt(probe, sizeof(probe), "%s/include/dbpki", dir) !=
			0 ||
		    !is_dir(probe))
			continue;
		if (util_fmt(probe, sizeof(probe), "%s/%s",
			strcmp(dir, "/") == 0 ? "" : dir, kind) != 0 ||
		    !is_dir(probe))
			continue;
		return util_fmt(out, outsz, "%s", probe);
	}
	return -1;
}

/* An installed tree: BINDIR/dbpki finds its data in BINDIR/../share/dbpki
 * (PREFIX/bin and PREFIX/share/dbpki), so a copy installed with any PREFIX or
 * DESTDIR works without being rebuilt for it. */
static int
find_beside_binary(const char *kind, char *out, size_t outsz)
{
	char dir[PATH_MAX], probe[PATH_MAX];

	if (exe_dir(dir) != 0)
		return -1;
	cut_last(dir);
	if (util_fmt(probe, sizeof(probe), "%s/share/dbpki/%s",
		strcmp(dir, "/") == 0 ? "" : dir, kind) != 0 ||
	    !is_dir(probe))
		return -1;
	return util_fmt(out, outsz, "%s", probe);
}

int
tpl_find_data_dir(
    const char *kind, char *out, size_t outsz, struct dbpki_err *e)
{
	char envname[64], installed[PATH_MAX];
	const char *env;
	size_t i;

	if (!tpl_valid_slot_name(kind) ||
	    util_fmt(envname, sizeof(envname), "DBPKI_%s", kind) != 0)
		return err_set(e, DBPKI_E_INTERNAL, "bad data directory kind");
	for (i = 6; envname[i] != '\0'; i++)
		envname[i] = (char)toupper((unsigned char)envname[i]);
	if ((env = getenv(envname)) != NULL && env[0] != '\0') {
		if (!is_dir(env))
			return err_set(e, DBPKI_E_CONFIG,
			    "%s=%.200s: not a directory; point it at dbpki's "
			    "%s "
			    "or unset it",
			    envname, env, kind);
		if (util_fmt(out, outsz, "%s", env) != 0)
			return err_set(
			    e, DBPKI_E_CONFIG, "%s: path too long", envname);
		/* Templates run as shell on every node: whoever can write
		 * this directory runs code there. */
		return util_trust_path(out, envname, UTIL_TP_DIR, e);
	}
	if (find_in_checkout(kind, out, outsz) == 0)
		return util_trust_path(out, kind, UTIL_TP_DIR, e);
	if (find_beside_binary(kind, out, outsz) == 0)
		return util_trust_path(out, kind, UTIL_TP_DIR, e);
	if (util_fmt(installed, sizeof(installed), "%s/%s", DBPKI_DATADIR,
		kind) == 0 &&
	    is_dir(installed) && util_fmt(out, outsz, "%s", installed) == 0)
		return util_trust_path(out, kind, UTIL_TP_DIR, e);
	return err_set(e, DBPKI_E_CONFIG,
	    "cannot find dbpki's %s: %s is not set, the binary is not in a "
	    "source checkout, has no ../share/dbpki, and %s does not exist; "
	    "run `make install` or set %s",
	    kind, envname, installed, envname);
}

int
tpl_render_file(const char *platform, const char *action,
    const struct tpl_vars *v, char **out, struct dbpki_err *e)
{
	char dir[PATH_MAX], path[PATH_MAX];
	char *text = NULL;
	size_t len;
	int r;

	*out = NULL;
	if (!tpl_valid_action_name(platform) || !tpl_valid_action_name(action))
		return err_set(e, DBPKI_E_CONFIG,
		    "template name %.64s/%.64s: platform and action must be "
		    "[a-z0-9_-]+",
		    platform, action);
	if ((r = tpl_find_data_dir("templates", dir, sizeof(dir), e)) != 0)
		return r;
	if (util_fmt(
		path, sizeof(path), "%s/%s/%s.sh", dir, platform, action) != 0)
		return err_set(e, DBPKI_E_CONFIG, "%s: path too long", dir);
	if ((r = util_trust_path(path, "template", 0, e)) != 0 ||
	    (r = util_read_file(path, UTIL_MAX_INPUT,
		 UTIL_RF_NOSYMLINK | UTIL_RF_NOTWRITABLE, &text, &len, e)) != 0)
		return err_wrap(e, "template for action %s on platform %s",
		    action, platform);
	if (strlen(text) != len)
		r = err_set(e, DBPKI_E_CONFIG, "%s: contains a NUL byte", path);
	else
		r = tpl_render(text, path, v, out, e);
	free(text);
	return r;
}
