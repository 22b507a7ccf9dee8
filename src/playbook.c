#include "dbpki/playbook.h"

#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpki/template.h"
#include "dbpki/util.h"

#define PB_MAX_FILE (64 * 1024)

/* The section the line being parsed belongs to. */
#define SEC_NONE     (-1)
#define SEC_PLAYBOOK (-2)

enum pb_key {
	K_NAME,
	K_DESCRIPTION, /* [playbook] */
	K_ACTION,
	K_VERIFY,
	K_UNDO,
	K_ROLES,
	K_PLATFORMS, /* [step NAME] */
	K_MODE,
	K_ON_FAILURE,
	K_UPLOAD,
	K_COUNT
};

static const struct {
	const char *name;
	int in_step;
} pb_keys[K_COUNT] = {
    [K_NAME] = {"name", 0},
    [K_DESCRIPTION] = {"description", 0},
    [K_ACTION] = {"action", 1},
    [K_VERIFY] = {"verify", 1},
    [K_UNDO] = {"undo", 1},
    [K_ROLES] = {"roles", 1},
    [K_PLATFORMS] = {"platforms", 1},
    [K_MODE] = {"mode", 1},
    [K_ON_FAILURE] = {"on_failure", 1},
    [K_UPLOAD] = {"upload", 1},
};

/* Where each key of a section was given (0: not given). */
struct pb_seen {
	int line[K_COUNT];
};

/*
 * Debian's libinih is built with inline ';' comments and multi-line
 * continuation on, 200-byte lines and no line numbers in the handler, and
 * its knobs are process-wide globals shared with config.c.  Rather than
 * touch them, every line goes through pb_reader() first: it counts lines,
 * refuses what inih would silently mangle (over-long lines, which inih splits
 * in two, and indented lines, which it glues onto the previous value), and
 * reads the section headers itself, so empty and repeated sections are seen
 * too (inih reports neither).  inih then only splits `key = value`.
 */
struct pb_parse {
	const char *origin;
	const char *text;
	size_t len;
	size_t off;
	int lineno;
	int cur;                 /* SEC_NONE, SEC_PLAYBOOK or step index */
	const char *expect_name; /* from pb_load_named(), or NULL */
	int playbook_line;
	struct pb_seen pb_seen;
	struct pb_seen step_seen[PB_MAX_STEPS];
	struct playbook *pb;
	struct dbpki_err *e;
	int failed;
	int err_line;
};

static int pfail(struct pb_parse *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
pfail(struct pb_parse *p, int line, const char *fmt, ...)
{
	char what[DBPKI_ERR_MSG];
	va_list ap;

	if (p->failed)
		return p->e->code;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	p->failed = 1;
	p->err_line = line;
	if (line > 0)
		return err_set(
		    p->e, DBPKI_E_CONFIG, "%s:%d: %s", p->origin, line, what);
	return err_set(p->e, DBPKI_E_CONFIG, "%s: %s", p->origin, what);
}

/* src was checked with tpl_valid_action_name(), so it fits. */
static void
copy_name(char dst[PB_NAME], const char *src)
{
	size_t n = strlen(src);

	if (n >= PB_NAME)
		n = PB_NAME - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static const char *
skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static int
blank_or_comment(const char *s)
{
	s = skip_ws(s);
	return *s == '\0' || *s == '\r' || *s == '\n' || *s == ';' || *s == '#';
}

static int
open_step(struct pb_parse *p, const char *name)
{
	struct playbook *pb = p->pb;
	int i;

	if (!tpl_valid_action_name(name))
		return pfail(p, p->lineno,
		    "[step %.80s]: a step name must be [a-z0-9_-]+ (at most 63 "
		    "characters)",
		    name);
	for (i = 0; i < pb->n_steps; i++)
		if (strcmp(pb->steps[i].name, name) == 0)
			return pfail(p, p->lineno,
			    "[step %s]: duplicate step (first at line %d); "
			    "give "
			    "each step its own name",
			    name, pb->steps[i].line);
	if (pb->n_steps == PB_MAX_STEPS)
		return pfail(p, p->lineno,
		    "[step %s]: too many steps (at most %d)", name,
		    PB_MAX_STEPS);
	i = pb->n_steps++;
	memset(&pb->steps[i], 0, sizeof(pb->steps[i]));
	copy_name(pb->steps[i].name, name);
	pb->steps[i].line = p->lineno;
	pb->steps[i].platforms = PB_PLATFORMS_ALL;
	pb->steps[i].on_failure = PB_FAIL_STOP;
	p->cur = i;
	return 0;
}

/* s is the line after its leading '['. */
static int
open_section(struct pb_parse *p, const char *s)
{
	char name[256];
	const char *close = strchr(s, ']');
	size_t n;

	if (close == NULL)
		return pfail(p, p->lineno, "section header without ']'");
	if (!blank_or_comment(close + 1))
		return pfail(
		    p, p->lineno, "text after the section header's ']'");
	s = skip_ws(s);
	for (n = (size_t)(close - s);
	     n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'); n--)
		;
	if (n >= sizeof(name))
		return pfail(p, p->lineno, "section name too long");
	memcpy(name, s, n);
	name[n] = '\0';
	if (strcmp(name, "playbook") == 0) {
		if (p->playbook_line != 0)
			return pfail(p, p->lineno,
			    "[playbook]: given twice (first at line %d)",
			    p->playbook_line);
		p->playbook_line = p->lineno;
		p->cur = SEC_PLAYBOOK;
		return 0;
	}
	if (strncmp(name, "step", 4) == 0 &&
	    (name[4] == ' ' || name[4] == '\t'))
		return open_step(p, skip_ws(name + 5));
	if (strcmp(name, "step") == 0)
		return pfail(
		    p, p->lineno, "[step]: a step needs a name: [step NAME]");
	return pfail(p, p->lineno,
	    "unknown section [%.80s]; expected [playbook] or [step NAME]",
	    name);
}

static int
scan_line(struct pb_parse *p, const char *line)
{
	const char *s;

	for (s = line; *s != '\0'; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t' && *s != '\r' &&
			*s != '\n') ||
		    *s == 0x7f)
			return pfail(p, p->lineno, "control byte 0x%02x",
			    (unsigned char)*s);
	if (blank_or_comment(line))
		return 0;
	s = skip_ws(line);
	if (s != line)
		return pfail(p, p->lineno,
		    "indented line: inih would read it as a continuation of "
		    "the previous value; remove the leading whitespace");
	if (*s == '[')
		return open_section(p, s + 1);
	return 0;
}

static char *
pb_reader(char *str, int num, void *stream)
{
	struct pb_parse *p = stream;
	const char *s, *nl;
	size_t n, content;

	if (p->failed || p->off >= p->len)
		return NULL;
	s = p->text + p->off;
	nl = memchr(s, '\n', p->len - p->off);
	n = nl != NULL ? (size_t)(nl - s) + 1 : p->len - p->off;
	p->lineno++;
	content = n - (nl != NULL);
	if (content > 0 && s[content - 1] == '\r')
		content--;
	/* inih needs room for "\r\n\0" after the longest line. */
	if (num < 4 || content > (size_t)num - 3 || n > (size_t)num - 1) {
		pfail(p, p->lineno,
		    "line too long (%zu characters, at most %d)", content,
		    num - 3);
		return NULL;
	}
	memcpy(str, s, n);
	str[n] = '\0';
	p->off += n;
	/* inih skips a UTF-8 byte order mark on the first line; so do we. */
	if (scan_line(p, p->lineno == 1 && strncmp(str, "\xef\xbb\xbf", 3) == 0
			     ? str + 3
			     : str) != 0)
		return NULL;
	return str;
}

static const char *
section_label(const struct pb_parse *p, char *buf, size_t bufsz)
{
	if (p->cur == SEC_PLAYBOOK)
		snprintf(buf, bufsz, "[playbook]");
	else
		snprintf(buf, bufsz, "[step %s]", p->pb->steps[p->cur].name);
	return buf;
}

static int
role_word(const char *w, size_t n, unsigned *roles)
{
	static const struct {
		const char *name;
		unsigned mask;
	} words[] = {
	    {"primary", 1u << ROLE_PRIMARY},
	    {"replica", 1u << ROLE_REPLICA},
	    {"client", 1u << ROLE_CLIENT},
	    {"database", PB_ROLES_DATABASE},
	    {"all", PB_ROLES_ALL},
	};
	size_t i;

	while (n > 0 && (*w == ' ' || *w == '\t')) {
		w++;
		n--;
	}
	while (n > 0 && (w[n - 1] == ' ' || w[n - 1] == '\t'))
		n--;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i].name) == n &&
		    memcmp(words[i].name, w, n) == 0) {
			*roles |= words[i].mask;
			return 0;
		}
	/* Also an empty item ("primary,,client", a trailing comma): a typo. */
	return -1;
}

/* Comma-separated roles: primary, replica, client, database, all. */
static int
parse_roles(const char *value, unsigned *out)
{
	const char *comma;
	unsigned roles = 0;

	for (;;) {
		comma = strchr(value, ',');
		if (role_word(value,
			comma != NULL ? (size_t)(comma - value) : strlen(value),
			&roles) != 0)
			return -1;
		if (comma == NULL)
			break;
		value = comma + 1;
	}
	*out = roles;
	return 0;
}

static int
parse_platforms(const char *value, unsigned *out)
{
	if (strcmp(value, "all") == 0)
		*out = PB_PLATFORMS_ALL;
	else if (strcmp(value, "postgres") == 0)
		*out = 1u << PLATFORM_POSTGRES;
	else if (strcmp(value, "cms") == 0)
		*out = 1u << PLATFORM_CMS;
	else
		return -1;
	return 0;
}

static int
set_playbook_key(struct pb_parse *p, enum pb_key k, const char *value)
{
	struct playbook *pb = p->pb;

	if (k == K_NAME) {
		if (!tpl_valid_action_name(value))
			return pfail(p, p->lineno,
			    "[playbook] name: \"%.80s\" is not [a-z0-9_-]+",
			    value);
		if (p->expect_name != NULL &&
		    strcmp(value, p->expect_name) != 0)
			return pfail(p, p->lineno,
			    "[playbook] name: says \"%s\" but the file is "
			    "%s.ini; "
			    "make them agree",
			    value, p->expect_name);
		copy_name(pb->name, value);
		return 0;
	}
	if (util_fmt(pb->description, sizeof(pb->description), "%s", value) !=
	    0)
		return pfail(p, p->lineno,
		    "[playbook] description: too long (at most %d characters)",
		    PB_TEXT - 1);
	return 0;
}

static int
set_action(struct pb_parse *p, struct pb_step *st, enum pb_key k,
    const char *value, const char *sec)
{
	if (!tpl_valid_action_name(value))
		return pfail(p, p->lineno,
		    "%s %s: \"%.80s\" is not an action name ([a-z0-9_-]+, "
		    "the file templates/<platform>/NAME.sh)",
		    sec, pb_keys[k].name, value);
	copy_name(k == K_ACTION ? st->action : st->undo, value);
	return 0;
}

static int
set_step_key(
    struct pb_parse *p, enum pb_key k, const char *value, const char *sec)
{
	struct pb_step *st = &p->pb->steps[p->cur];
	const struct pb_seen *seen = &p->step_seen[p->cur];

	switch (k) {
	case K_ACTION:
	case K_UNDO:
		if (k == K_ACTION && seen->line[K_VERIFY] != 0)
			break;
		return set_action(p, st, k, value, sec);
	case K_VERIFY:
		if (seen->line[K_ACTION] != 0)
			break;
		if (strcmp(value, "cluster") == 0)
			st->verify = PB_VERIFY_CLUSTER;
		else if (strcmp(value, "primary") == 0)
			st->verify = PB_VERIFY_PRIMARY;
		else
			return pfail(p, p->lineno,
			    "%s verify: \"%.80s\" is not one of: cluster, "
			    "primary",
			    sec, value);
		return 0;
	case K_ROLES:
		if (parse_roles(value, &st->roles) != 0)
			return pfail(p, p->lineno,
			    "%s roles: \"%.80s\" is not a comma-separated list "
			    "of "
			    "primary, replica, client, database, all",
			    sec, value);
		return 0;
	case K_PLATFORMS:
		if (parse_platforms(value, &st->platforms) != 0)
			return pfail(p, p->lineno,
			    "%s platforms: \"%.80s\" is not one of: all, "
			    "postgres, "
			    "cms",
			    sec, value);
		return 0;
	case K_MODE:
		if (strcmp(value, "parallel") != 0 &&
		    strcmp(value, "serial") != 0)
			return pfail(p, p->lineno,
			    "%s mode: \"%.80s\" is not one of: parallel, "
			    "serial",
			    sec, value);
		st->parallel = strcmp(value, "parallel") == 0;
		return 0;
	case K_ON_FAILURE:
		if (strcmp(value, "stop") == 0)
			st->on_failure = PB_FAIL_STOP;
		else if (strcmp(value, "rollback") == 0)
			st->on_failure = PB_FAIL_ROLLBACK;
		else
			return pfail(p, p->lineno,
			    "%s on_failure: \"%.80s\" is not one of: stop, "
			    "rollback",
			    sec, value);
		return 0;
	case K_UPLOAD:
		if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0)
			return pfail(p, p->lineno,
			    "%s upload: \"%.80s\" is not one of: yes, no", sec,
			    value);
		st->upload = strcmp(value, "yes") == 0;
		return 0;
	default:
		return pfail(p, p->lineno, "%s: internal: key %d", sec, (int)k);
	}
	return pfail(p, p->lineno,
	    "%s %s: a step has either action (line %d) or verify (line %d), "
	    "not both; split it into two steps",
	    sec, pb_keys[k].name,
	    k == K_ACTION ? p->lineno : seen->line[K_ACTION],
	    k == K_VERIFY ? p->lineno : seen->line[K_VERIFY]);
}

static int
pb_handler(void *user, const char *section, const char *name, const char *value)
{
	struct pb_parse *p = user;
	struct pb_seen *seen;
	char sec[PB_NAME + 16];
	int k, in_step;

	(void)section; /* the reader tracks sections; see struct pb_parse */
	if (p->failed)
		return 0;
	if (p->cur == SEC_NONE) {
		pfail(p, p->lineno,
		    "%.80s: key outside any section; start with [playbook]",
		    name);
		return 0;
	}
	section_label(p, sec, sizeof(sec));
	in_step = p->cur >= 0;
	for (k = 0; k < K_COUNT; k++)
		if (pb_keys[k].in_step == in_step &&
		    strcmp(pb_keys[k].name, name) == 0)
			break;
	if (k == K_COUNT) {
		pfail(p, p->lineno, "%s %.80s: unknown key; a %s takes %s", sec,
		    name, in_step ? "step" : "[playbook]",
		    in_step ? "action, verify, undo, roles, platforms, mode, "
			      "on_failure, "
			      "upload"
			    : "name, description");
		return 0;
	}
	seen = in_step ? &p->step_seen[p->cur] : &p->pb_seen;
	if (seen->line[k] != 0) {
		pfail(p, p->lineno, "%s %s: given twice (first at line %d)",
		    sec, name, seen->line[k]);
		return 0;
	}
	seen->line[k] = p->lineno;
	if (in_step)
		set_step_key(p, (enum pb_key)k, value, sec);
	else
		set_playbook_key(p, (enum pb_key)k, value);
	return !p->failed;
}

/* What only the whole section can tell. */
static int
check_step(struct pb_parse *p, int i)
{
	struct pb_step *st = &p->pb->steps[i];
	const struct pb_seen *seen = &p->step_seen[i];

	if (st->action[0] == '\0' && st->verify == PB_VERIFY_NONE)
		return pfail(p, st->line,
		    "[step %s]: needs action = NAME (a node-side script) or "
		    "verify = cluster|primary",
		    st->name);
	if (st->verify != PB_VERIFY_NONE && seen->line[K_UPLOAD] != 0 &&
	    st->upload)
		return pfail(p, seen->line[K_UPLOAD],
		    "[step %s] upload: only an action step ships files",
		    st->name);
	if (st->verify != PB_VERIFY_NONE && seen->line[K_UNDO] != 0)
		return pfail(p, seen->line[K_UNDO],
		    "[step %s] undo: a verification has nothing to undo",
		    st->name);
	if (st->action[0] != '\0' && seen->line[K_ROLES] == 0)
		return pfail(p, st->line,
		    "[step %s]: roles = missing; say which nodes run %s "
		    "(primary, replica, client, database, all)",
		    st->name, st->action);
	if (seen->line[K_ROLES] == 0)
		st->roles = PB_ROLES_ALL;
	return 0;
}

/* on_failure = rollback with no undo before it would promise a rollback
 * that does nothing; say so instead. */
static int
check_rollback(struct pb_parse *p)
{
	const struct pb_step *st;
	int i, have_undo = 0;

	for (i = 0; i < p->pb->n_steps; i++) {
		st = &p->pb->steps[i];
		have_undo |= st->undo[0] != '\0';
		if (st->on_failure == PB_FAIL_ROLLBACK && !have_undo)
			return pfail(p, p->step_seen[i].line[K_ON_FAILURE],
			    "[step %s] on_failure: rollback, but neither this "
			    "step "
			    "nor one before it has undo = ACTION; nothing "
			    "would be "
			    "rolled back (use stop, or give an undo)",
			    st->name);
	}
	return 0;
}

static int
check_playbook(struct pb_parse *p)
{
	int i, r;

	if (p->playbook_line == 0)
		return pfail(p, 0,
		    "no [playbook] section; start the file with "
		    "[playbook] and name = ...");
	if (p->pb->name[0] == '\0')
		return pfail(p, p->playbook_line, "[playbook]: name = missing");
	if (p->pb->n_steps == 0)
		return pfail(p, 0, "no [step NAME] sections; nothing to do");
	for (i = 0; i < p->pb->n_steps; i++)
		if ((r = check_step(p, i)) != 0)
			return r;
	return check_rollback(p);
}

static int
pb_parse_text(const char *origin, const char *text, size_t len,
    const char *expect_name, struct playbook *pb, struct dbpki_err *e)
{
	struct pb_parse *p;
	int ret, r;

	memset(pb, 0, sizeof(*pb));
	if (util_fmt(pb->path, sizeof(pb->path), "%s", origin) != 0)
		return err_set(
		    e, DBPKI_E_CONFIG, "%.200s...: path too long", origin);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	p->origin = origin;
	p->text = text;
	p->len = len;
	p->cur = SEC_NONE;
	p->expect_name = expect_name;
	p->pb = pb;
	p->e = e;
	if (strlen(text) != len) {
		r = pfail(p, 0, "contains a NUL byte; not a text file");
		goto out;
	}
	ret = ini_parse_stream(pb_reader, p, pb_handler, p);
	if (ret == -2) {
		r = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	/* inih counts lines like pb_reader() does, since no line is split. */
	if (ret > 0 && (!p->failed || ret < p->err_line)) {
		p->failed = 0;
		r = pfail(p, ret,
		    "expected `key = value`, a [section] or a "
		    "comment");
		goto out;
	}
	if (p->failed) {
		r = p->e->code;
		goto out;
	}
	r = check_playbook(p);
out:
	free(p);
	if (r != 0)
		memset(pb, 0, sizeof(*pb));
	return r;
}

int
pb_load_string(const char *origin, const char *text, struct playbook *pb,
    struct dbpki_err *e)
{
	return pb_parse_text(origin, text, strlen(text), NULL, pb, e);
}

static int
load_file(const char *path, const char *expect_name, struct playbook *pb,
    struct dbpki_err *e)
{
	char *text = NULL;
	size_t len;
	int r;

	memset(pb, 0, sizeof(*pb));
	/* A playbook decides what runs on the nodes (util_trust_path). */
	if ((r = util_trust_path(path, "playbook", 0, e)) != 0 ||
	    (r = util_read_file(path, PB_MAX_FILE,
		 UTIL_RF_NOSYMLINK | UTIL_RF_NOTWRITABLE, &text, &len, e)) != 0)
		return err_wrap(e, "playbook");
	r = pb_parse_text(path, text, len, expect_name, pb, e);
	free(text);
	return r;
}

int
pb_load(const char *path, struct playbook *pb, struct dbpki_err *e)
{
	return load_file(path, NULL, pb, e);
}

int
pb_load_named(const char *name, struct playbook *pb, struct dbpki_err *e)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int r;

	memset(pb, 0, sizeof(*pb));
	if (!tpl_valid_action_name(name))
		return err_set(e, DBPKI_E_USAGE,
		    "playbook name \"%.80s\": must be [a-z0-9_-]+ (e.g. "
		    "bootstrap, rotate, renew)",
		    name);
	if ((r = tpl_find_data_dir("playbooks", dir, sizeof(dir), e)) != 0)
		return r;
	if (util_fmt(path, sizeof(path), "%s/%s.ini", dir, name) != 0)
		return err_set(e, DBPKI_E_CONFIG, "%s: path too long", dir);
	return load_file(path, name, pb, e);
}

int
pb_step_applies(
    const struct pb_step *s, enum cfg_role role, enum cfg_platform platform)
{
	return (s->roles & (1u << role)) != 0 &&
	       (s->platforms & (1u << platform)) != 0;
}

const char *
pb_on_failure_name(enum pb_on_failure f)
{
	return f == PB_FAIL_ROLLBACK ? "rollback" : "stop";
}

const char *
pb_verify_name(enum pb_verify v)
{
	switch (v) {
	case PB_VERIFY_CLUSTER: return "cluster";
	case PB_VERIFY_PRIMARY: return "primary";
	default: return "";
	}
}

void
pb_roles_string(unsigned roles, char *out, size_t outsz)
{
	static const enum cfg_role order[] = {
	    ROLE_PRIMARY, ROLE_REPLICA, ROLE_CLIENT};
	static const char *names[] = {"primary", "replica", "client"};
	size_t i, len = 0;
	int n;

	if (outsz == 0)
		return;
	out[0] = '\0';
	for (i = 0; i < 3; i++) {
		if (!(roles & (1u << order[i])) || len >= outsz)
			continue;
		n = snprintf(
		    out + len, outsz - len, "%s%s", len ? ", " : "", names[i]);
		if (n < 0)
			return;
		len += (size_t)n;
	}
}
