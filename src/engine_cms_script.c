/* engine_cms_script: console scripts for the cms platform — the parser,
 * the reply cleaner and the judge (see engine_cms.h for the syntax).
 *
 * Pure functions on text: no I/O, no global state, so the unit tests can
 * feed them whatever a console might answer. */
#include "dbpki/engine_cms.h"
#include "dbpki/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define ROLE_BIT(r) (1u << (r))
#define ALL_ROLES                                                              \
	(ROLE_BIT(ROLE_PRIMARY) | ROLE_BIT(ROLE_REPLICA) |                     \
	    ROLE_BIT(ROLE_CLIENT))

struct parse {
	const char *origin;
	int line;
	unsigned roles;      /* the current `only` filter */
	struct cms_cmd *cur; /* the run that confirm/expect/... attach to */
	struct cms_script *s;
	struct dbpki_err *e;
};

static int
perr(struct parse *p, const char *fmt, const char *arg)
{
	char what[256];

	util_fmt(what, sizeof(what), fmt, arg);
	return err_set(
	    p->e, DBPKI_E_CONFIG, "%s:%d: %s", p->origin, p->line, what);
}

static int
is_blank(int ch)
{
	return ch == ' ' || ch == '\t';
}

/* Bytes a command word may hold: exactly what {{!slot}} renders. */
static int
word_ok(const char *w, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)w[i]) &&
		    strchr("_./:,@+-", w[i]) == NULL)
			return 0;
	return 1;
}

/* A pattern: printable ASCII and blanks, not empty, fits. */
static int
set_text(struct parse *p, char *dst, const char *text, const char *what)
{
	size_t i, n = strlen(text);

	if (n == 0)
		return perr(p, "%s: the text is missing", what);
	if (n >= CMS_TEXT)
		return perr(p, "%s: the text is too long", what);
	for (i = 0; i < n; i++)
		if (!is_blank(text[i]) && (text[i] < 0x21 || text[i] > 0x7e))
			return perr(
			    p, "%s: only printable ASCII is allowed", what);
	memcpy(dst, text, n + 1);
	return 0;
}

static int
parse_roles(struct parse *p, char *list)
{
	char *tok, *save = NULL;
	unsigned m = 0;

	for (tok = strtok_r(list, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		while (is_blank(*tok))
			tok++;
		tok[strcspn(tok, " \t")] = '\0';
		if (strcmp(tok, "primary") == 0)
			m |= ROLE_BIT(ROLE_PRIMARY);
		else if (strcmp(tok, "replica") == 0)
			m |= ROLE_BIT(ROLE_REPLICA);
		else if (strcmp(tok, "client") == 0)
			m |= ROLE_BIT(ROLE_CLIENT);
		else if (strcmp(tok, "database") == 0)
			m |= ROLE_BIT(ROLE_PRIMARY) | ROLE_BIT(ROLE_REPLICA);
		else if (strcmp(tok, "all") == 0)
			m |= ALL_ROLES;
		else
			return perr(p,
			    "only: unknown role '%.40s' (primary, "
			    "replica, client, database, all)",
			    tok);
	}
	if (m == 0)
		return perr(p, "only: %s", "no role given");
	p->roles = m;
	p->cur = NULL;
	return 0;
}

/* run WORDS: each word checked, joined with single spaces. */
static int
parse_run(struct parse *p, const char *rest)
{
	struct cms_cmd *c;
	size_t n, len = 0;

	if (p->s->n >= CMS_MAX_CMDS)
		return perr(p, "run: more than %s commands", "32");
	c = &p->s->cmds[p->s->n];
	memset(c, 0, sizeof(*c));
	while (*rest != '\0') {
		n = strcspn(rest, " \t");
		if (!word_ok(rest, n))
			return perr(p,
			    "run: '%.60s' is not a console word "
			    "([A-Za-z0-9_./:,@+-])",
			    rest);
		if (len + n + 2 > sizeof(c->line))
			return perr(p, "run: %s", "the command is too long");
		if (len > 0)
			c->line[len++] = ' ';
		memcpy(c->line + len, rest, n);
		len += n;
		c->line[len] = '\0';
		rest += n;
		while (is_blank(*rest))
			rest++;
	}
	if (len == 0)
		return perr(p, "run: %s", "the command is missing");
	c->roles = p->roles;
	c->lineno = p->line;
	p->cur = c;
	p->s->n++;
	return 0;
}

/* confirm TEXT ANSWER: the last word is what gets typed. */
static int
parse_confirm(struct parse *p, char *rest)
{
	char *sp = rest + strlen(rest);
	size_t n;

	if (p->cur == NULL)
		return perr(p, "confirm: %s", "no run before it");
	if (p->cur->confirm[0] != '\0')
		return perr(p, "confirm: %s", "one per command");
	while (sp > rest && !is_blank(sp[-1]))
		sp--;
	n = strlen(sp);
	if (sp == rest || n == 0 || n >= CMS_ANSWER)
		return perr(p, "confirm: %s", "expected: confirm TEXT ANSWER");
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)sp[i]))
			return perr(p,
			    "confirm: the answer '%.20s' must be "
			    "letters and digits",
			    sp);
	memcpy(p->cur->answer, sp, n + 1);
	while (sp > rest && is_blank(sp[-1]))
		sp--;
	*sp = '\0';
	return set_text(p, p->cur->confirm, rest, "confirm");
}

static int
parse_until(struct parse *p, const char *rest)
{
	long long v;

	if (p->cur == NULL)
		return perr(p, "until: %s", "no run before it");
	if (util_parse_int(rest, 1, CMS_MAX_UNTIL, &v) != 0)
		return perr(p,
		    "until: '%.20s' is not a number of seconds "
		    "(1 to 3600)",
		    rest);
	p->cur->until_s = (int)v;
	return 0;
}

static int
add_pattern(struct parse *p, char list[][CMS_TEXT], int *n, const char *rest,
    const char *what)
{
	if (*n >= CMS_MAX_PATS)
		return perr(p, "%s: at most 8 per command", what);
	if (set_text(p, list[*n], rest, what) != 0)
		return p->e->code;
	(*n)++;
	return 0;
}

static int
parse_prompt(struct parse *p, const char *rest)
{
	size_t n = strlen(rest);

	if (n == 0 || n >= CMS_PROMPT || strpbrk(rest, " \t") != NULL)
		return perr(p, "prompt: %s",
		    "one word of at most 31 characters expected");
	return set_text(p, p->s->prompt, rest, "prompt");
}

static int
parse_refuse(struct parse *p, const char *rest)
{
	if (p->s->refuse[0] != '\0')
		return perr(p, "refuse: %s", "only one per script");
	p->s->refuse_roles = p->roles;
	p->cur = NULL;
	return set_text(p, p->s->refuse, rest, "refuse");
}

static int
parse_line(struct parse *p, char *line)
{
	char *kw, *rest, *end;

	while (is_blank(*line))
		line++;
	end = line + strlen(line);
	while (end > line && is_blank(end[-1]))
		*--end = '\0';
	if (*line == '\0' || *line == '#')
		return 0;
	kw = line;
	rest = line + strcspn(line, " \t");
	if (*rest != '\0')
		*rest++ = '\0';
	while (is_blank(*rest))
		rest++;
	if (strcmp(kw, "run") == 0)
		return parse_run(p, rest);
	if (strcmp(kw, "expect") == 0)
		return p->cur == NULL
			   ? perr(p, "expect: %s", "no run before it")
			   : add_pattern(p, p->cur->expect, &p->cur->n_expect,
				 rest, "expect");
	if (strcmp(kw, "fail") == 0)
		return p->cur == NULL ? add_pattern(p, p->s->fail,
					    &p->s->n_fail, rest, "fail")
				      : add_pattern(p, p->cur->fail,
					    &p->cur->n_fail, rest, "fail");
	if (strcmp(kw, "confirm") == 0)
		return parse_confirm(p, rest);
	if (strcmp(kw, "until") == 0)
		return parse_until(p, rest);
	if (strcmp(kw, "only") == 0)
		return parse_roles(p, rest);
	if (strcmp(kw, "prompt") == 0)
		return parse_prompt(p, rest);
	if (strcmp(kw, "refuse") == 0)
		return parse_refuse(p, rest);
	return perr(p,
	    "unknown directive '%.40s' (prompt, fail, only, run, "
	    "confirm, expect, until, refuse)",
	    kw);
}

/* What the whole script must satisfy once every part is read. */
int
cms_script_check(struct cms_script *s, const char *origin, struct dbpki_err *e)
{
	struct parse p = {origin, 0, ALL_ROLES, NULL, s, e};
	int i;

	if (s->prompt[0] == '\0')
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: no `prompt` line (templates/cms/common.sh sets it)",
		    origin);
	if (s->n == 0 && s->refuse[0] == '\0')
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: no `run` line: nothing to send", origin);
	for (i = 0; i < s->n; i++)
		if (s->cmds[i].until_s > 0 && s->cmds[i].n_expect == 0) {
			p.line = s->cmds[i].lineno;
			return perr(
			    &p, "until: %s", "needs an `expect` to wait for");
		}
	return 0;
}

int
cms_script_parse(const char *text, const char *origin, struct cms_script *s,
    struct dbpki_err *e)
{
	struct parse p = {origin, 0, ALL_ROLES, NULL, s, e};
	char buf[CMS_TEXT * 2];
	const char *nl;
	size_t n;
	int rc;

	while (*text != '\0') {
		p.line++;
		nl = strchr(text, '\n');
		n = nl ? (size_t)(nl - text) : strlen(text);
		if (n >= sizeof(buf))
			return perr(&p, "%s", "line too long");
		memcpy(buf, text, n);
		buf[n] = '\0';
		if (memchr(buf, '\r', n) != NULL)
			return perr(&p, "%s", "carriage return in the script");
		if ((rc = parse_line(&p, buf)) != 0)
			return rc;
		text += n + (nl != NULL);
	}
	return 0;
}

void
cms_script_for_role(struct cms_script *s, enum cfg_role role)
{
	int i, k = 0;

	for (i = 0; i < s->n; i++)
		if (s->cmds[i].roles & ROLE_BIT(role)) {
			if (k != i)
				s->cmds[k] = s->cmds[i];
			k++;
		}
	s->n = k;
	if (!(s->refuse_roles & ROLE_BIT(role)))
		s->refuse[0] = '\0';
}

/* ---- replies -------------------------------------------------------- */

/* [start, end) of the last line of text[0..len), '\r' included. */
static size_t
last_line_start(const char *text, size_t len)
{
	while (len > 0 && text[len - 1] != '\n')
		len--;
	return len;
}

/* Is text[0..len) (no newline in it) a prompt line? */
static int
is_prompt_line(const char *t, size_t len, const char *prompt)
{
	char buf[CMS_PROMPT + 128];
	size_t i, n = 0, pl = strlen(prompt);

	for (i = 0; i < len; i++) {
		if (t[i] == '\r')
			continue;
		if (n + 1 >= sizeof(buf))
			return 0;
		buf[n++] = t[i];
	}
	if (n > 0 && buf[n - 1] == ' ')
		n--;
	if (pl == 0 || n < pl || memcmp(buf + n - pl, prompt, pl) != 0)
		return 0;
	for (i = 0; i < n; i++)
		if (buf[i] == ' ' || buf[i] == '\t' ||
		    (unsigned char)buf[i] < 0x20)
			return 0;
	return 1;
}

int
cms_reply_complete(const char *raw, size_t len, const char *prompt)
{
	size_t start = last_line_start(raw, len);

	return is_prompt_line(raw + start, len - start, prompt);
}

/* Length of an ANSI escape sequence at s (s[0] == ESC). */
static size_t
escape_len(const char *s, size_t left)
{
	size_t i;

	if (left < 2)
		return left;
	if (s[1] != '[')
		return 2;
	for (i = 2; i < left; i++)
		if ((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e)
			return i + 1;
	return left;
}

/* Plain text: no CR, no escapes, '?' for other control or 8-bit bytes. */
static size_t
plain_text(const char *raw, size_t len, char *out, size_t outsz)
{
	size_t i = 0, n = 0;
	unsigned char ch;

	while (i < len && n + 1 < outsz) {
		ch = (unsigned char)raw[i];
		if (ch == 0x1b) {
			i += escape_len(raw + i, len - i);
			continue;
		}
		i++;
		if (ch == '\r')
			continue;
		out[n++] =
		    (ch == '\n' || ch == '\t' || (ch >= 0x20 && ch < 0x7f))
			? (char)ch
			: '?';
	}
	out[n] = '\0';
	return n;
}

/* Does the line t[0..n) equal cmd, trailing blanks ignored? */
static int
is_echo(const char *t, size_t n, const char *cmd)
{
	size_t cl = strlen(cmd);

	while (n > 0 && is_blank(t[n - 1]))
		n--;
	return n == cl && memcmp(t, cmd, cl) == 0;
}

void
cms_reply_clean(const char *raw, size_t len, const char *cmd,
    const char *prompt, char *out, size_t outsz)
{
	size_t n, first, start;

	if (outsz == 0)
		return;
	n = plain_text(raw, len, out, outsz);
	/* A terminal echoes what dbpki typed: drop that first line. */
	first = strcspn(out, "\n");
	if (out[first] == '\n' && is_echo(out, first, cmd)) {
		memmove(out, out + first + 1, n - first);
		n -= first + 1;
	}
	start = last_line_start(out, n);
	if (is_prompt_line(out + start, n - start, prompt)) {
		n = start;
		out[n] = '\0';
	}
}

/* Does pattern p match at t, blanks folded? */
static int
match_at(const char *t, const char *p)
{
	while (*p != '\0') {
		if (is_blank(*p)) {
			while (is_blank(*p))
				p++;
			if (*p == '\0')
				return 1; /* trailing blanks: ignored */
			if (!is_blank(*t))
				return 0;
			while (is_blank(*t))
				t++;
			continue;
		}
		if (*t != *p)
			return 0;
		t++;
		p++;
	}
	return 1;
}

int
cms_text_has(const char *text, const char *pattern)
{
	const char *t;

	while (is_blank(*pattern))
		pattern++;
	if (*pattern == '\0')
		return 0;
	/* A pattern that starts with a letter or digit starts a word:
	 * "10.0.0.1" must not match inside "110.0.0.1". */
	for (t = text; *t != '\0'; t++)
		if ((t == text || !isalnum((unsigned char)pattern[0]) ||
			!isalnum((unsigned char)t[-1])) &&
		    match_at(t, pattern))
			return 1;
	return 0;
}

/* Copy s[0..n) into out with runs of blanks folded and trimmed, as the
 * judge compares them (for messages and progress notes). */
static void
folded(const char *s, size_t n, char *out, size_t outsz)
{
	size_t i, k = 0;
	int blank = 0;

	for (i = 0; i < n && k + 1 < outsz; i++) {
		if (is_blank(s[i])) {
			blank = k > 0;
			continue;
		}
		if (blank && k + 2 < outsz)
			out[k++] = ' ';
		blank = 0;
		out[k++] = s[i];
	}
	out[k] = '\0';
}

/* The line of reply that holds pattern, into why; 1 if found. */
static int
line_with(const char *reply, const char *pattern, char *why, size_t whysz)
{
	char line[CMS_TEXT * 2];
	const char *s = reply, *nl;
	size_t n;

	while (*s != '\0') {
		nl = strchr(s, '\n');
		n = nl ? (size_t)(nl - s) : strlen(s);
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, s, n);
		line[n] = '\0';
		if (cms_text_has(line, pattern)) {
			folded(line, n, why, whysz);
			return 1;
		}
		if (nl == NULL)
			break;
		s = nl + 1;
	}
	return 0;
}

static void
last_nonempty_line(const char *reply, char *why, size_t whysz)
{
	const char *s = reply, *nl, *best = NULL;
	size_t n, best_n = 0;

	while (*s != '\0') {
		nl = strchr(s, '\n');
		n = nl ? (size_t)(nl - s) : strlen(s);
		while (n > 0 && is_blank(*s)) {
			s++;
			n--;
		}
		if (n > 0) {
			best = s;
			best_n = n;
		}
		if (nl == NULL)
			break;
		s = nl + 1;
	}
	folded(best ? best : "", best_n, why, whysz);
}

enum cms_verdict
cms_reply_judge(const struct cms_script *s, const struct cms_cmd *c,
    const char *reply, char *why, size_t whysz)
{
	int i;

	for (i = 0; i < s->n_fail; i++)
		if (line_with(reply, s->fail[i], why, whysz))
			return CMS_FAILED;
	for (i = 0; i < c->n_fail; i++)
		if (line_with(reply, c->fail[i], why, whysz))
			return CMS_FAILED;
	for (i = 0; i < c->n_expect; i++)
		if (!cms_text_has(reply, c->expect[i])) {
			util_fmt(why, whysz, "%s", c->expect[i]);
			return CMS_PENDING;
		}
	if (c->n_expect == 0 ||
	    !line_with(reply, c->expect[c->n_expect - 1], why, whysz))
		last_nonempty_line(reply, why, whysz);
	return CMS_OK;
}

int
cms_file_name(
    const char *release_name, const char *release_id, char *out, size_t outsz)
{
	static const struct {
		const char *from, *base, *ext;
	} map[] = {
	    {"dbca.crt", "dbca", "crt"},
	    {"server.crt", "dbserver", "crt"},
	    {"server.key", "dbserver", "key"},
	    {"client.crt", "dbclient", "crt"},
	    {"client.key", "dbclient", "key"},
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(release_name, map[i].from) == 0)
			return util_fmt(out, outsz, "%s-%s.%s", map[i].base,
				   release_id, map[i].ext) == 0
				   ? 0
				   : -1;
	return -1;
}

static void
print_list(FILE *out, const char *indent, const char *label,
    const char list[][CMS_TEXT], int n)
{
	int i;

	if (n == 0)
		return;
	fprintf(out, "%s    %s", indent, label);
	for (i = 0; i < n; i++)
		fprintf(out, "%s'%s'", i ? ", " : " ", list[i]);
	fputc('\n', out);
}

void
cms_script_print(
    FILE *out, const struct cms_script *s, const char *node, const char *indent)
{
	int i;

	if (s->refuse[0] != '\0') {
		fprintf(
		    out, "%srefused, nothing is sent: %s\n", indent, s->refuse);
		return;
	}
	for (i = 0; i < s->n; i++) {
		const struct cms_cmd *c = &s->cmds[i];

		fprintf(out, "%s%s%s %s\n", indent, node, s->prompt, c->line);
		if (c->confirm[0] != '\0')
			fprintf(out, "%s    answers %s when asked '%s'\n",
			    indent, c->answer, c->confirm);
		print_list(
		    out, indent, "reply must show", c->expect, c->n_expect);
		if (c->until_s > 0)
			fprintf(out,
			    "%s    (sent again every 2 s until it does, for "
			    "at most %d s)\n",
			    indent, c->until_s);
		print_list(out, indent, "fails on", c->fail, c->n_fail);
	}
	print_list(out, indent, "every reply fails on", s->fail, s->n_fail);
}
