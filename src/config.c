/* config: the inventory INI, read with inih and checked against one schema
 * table.  inih as Debian builds it does not report line numbers and treats an
 * indented line as a continuation, so we feed it through our own reader that
 * counts lines and recognises section headers (including empty sections,
 * which inih never reports). */
#include "dbpki/config.h"
#include "dbpki/log.h"
#include "dbpki/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#define INI_LINE_MAX     199 /* Debian's inih: INI_MAX_LINE 200, including NUL */
#define INIH_SECTION_MAX 50  /* inih's MAX_SECTION (ini.c), including NUL */
#define UTF8_BOM         "\xEF\xBB\xBF"

enum ftype {
	F_NAME,    /* util_valid_name */
	F_ENVNAME, /* [A-Za-z_][A-Za-z0-9_]* */
	F_TEXT,    /* a certificate common name */
	F_HOST,    /* RFC 1123 host name */
	F_ADDR,    /* IP literal */
	F_PATH,    /* absolute path */
	F_DURATION,
	F_INT,
	F_KEY,
	F_ENUM,
	F_SANLIST, /* host names and IPs, comma-separated */
	F_NETLIST, /* CIDRs, comma-separated */
	F_PGVC,    /* postgresql-common's VERSION/NAME, e.g. 15/main */
};

/* Where a field lives: in the cluster, in a cfg_ssh, in a cfg_pg, or in a
 * node.  [ssh] and [postgres] keys may be repeated in a node section. */
enum fbase { B_CLUSTER, B_SSH, B_PG, B_NODE };

struct field {
	const char *section;
	const char *key;
	enum ftype type;
	enum fbase base;
	size_t off;
	size_t size;              /* char arrays: capacity */
	long long min, max;       /* F_INT, F_DURATION (seconds) */
	const char *const *names; /* F_ENUM: NULL-terminated, index = value */
};

static const char *const platforms[] = {"postgres", "cms", NULL};
static const char *const roles[] = {"primary", "replica", "client", NULL};
static const char *const modes[] = {"per-node", "shared", NULL};
static const char *const policies[] = {"strict", "accept-new", NULL};
static const char *const plaintext_opts[] = {"warn", "accepted", NULL};
static const char *const layouts[] = {"auto", "debian", "pgdata", NULL};
static const char *const tristate[] = {"auto", "yes", "no", NULL};
static const char *const start_confs[] = {"keep", "auto", NULL};

#define DAY 86400LL
#define CL(k, t, m, ...)                                                       \
	{                                                                      \
		"cluster", k, t, B_CLUSTER, offsetof(struct dbpki_cluster, m), \
		    sizeof(((struct dbpki_cluster *)0)->m), __VA_ARGS__        \
	}
#define SEC(s, k, t, m, ...)                                                   \
	{                                                                      \
		s, k, t, B_CLUSTER, offsetof(struct dbpki_cluster, m),         \
		    sizeof(((struct dbpki_cluster *)0)->m), __VA_ARGS__        \
	}
#define SSH(k, t, m, ...)                                                      \
	{                                                                      \
		"ssh", k, t, B_SSH, offsetof(struct cfg_ssh, m),               \
		    sizeof(((struct cfg_ssh *)0)->m), __VA_ARGS__              \
	}
#define PG(k, t, m, ...)                                                       \
	{                                                                      \
		"postgres", k, t, B_PG, offsetof(struct cfg_pg, m),            \
		    sizeof(((struct cfg_pg *)0)->m), __VA_ARGS__               \
	}
#define NODE(k, t, m, ...)                                                     \
	{                                                                      \
		"node", k, t, B_NODE, offsetof(struct cfg_node, m),            \
		    sizeof(((struct cfg_node *)0)->m), __VA_ARGS__             \
	}

static const struct field fields[] = {
    CL("name", F_NAME, name, 0, 0, NULL),
    CL("platform", F_ENUM, platform, 0, 0, platforms),
    CL("state_dir", F_PATH, state_dir, 0, 0, NULL),
    CL("renew_before", F_DURATION, renew_before, 3600, 3650 * DAY, NULL),
    CL("parallel", F_INT, parallel, 1, 256, NULL),
    SEC("ca", "common_name", F_TEXT, ca_common_name, 0, 0, NULL),
    SEC("ca", "key", F_KEY, ca_key, 0, 0, NULL),
    SEC("ca", "validity", F_DURATION, ca_validity, DAY, 100 * 365 * DAY, NULL),
    SEC("ca", "passphrase_file", F_PATH, ca_passphrase_file, 0, 0, NULL),
    SEC("ca", "passphrase_env", F_ENVNAME, ca_passphrase_env, 0, 0, NULL),
    SEC("ca", "plaintext_key", F_ENUM, ca_plaintext_key, 0, 0, plaintext_opts),
    SEC("ca", "pin_file", F_PATH, ca_pin_file, 0, 0, NULL),
    SEC("ca", "token_key_type", F_KEY, ca_token_key_type, 0, 0, NULL),
    SEC("ca", "crl_validity", F_DURATION, ca_crl_validity, DAY, 3650 * DAY,
	NULL),
    SEC("server", "key", F_KEY, server_key, 0, 0, NULL),
    SEC("server", "validity", F_DURATION, server_validity, DAY, 3650 * DAY,
	NULL),
    SEC("server", "mode", F_ENUM, server_mode, 0, 0, modes),
    SEC("server", "extra_san", F_SANLIST, extra_san, 0, 0, NULL),
    SEC("client", "common_name", F_NAME, client_common_name, 0, 0, NULL),
    SEC("client", "key", F_KEY, client_key, 0, 0, NULL),
    SEC("client", "validity", F_DURATION, client_validity, DAY, 3650 * DAY,
	NULL),
    SSH("user", F_NAME, user, 0, 0, NULL),
    SSH("port", F_INT, port, 1, 65535, NULL),
    SSH("identity", F_PATH, identity, 0, 0, NULL),
    SSH("identity_passphrase_file", F_PATH, identity_passphrase_file, 0, 0,
	NULL),
    SSH("known_hosts", F_PATH, known_hosts, 0, 0, NULL),
    SSH("host_key_policy", F_ENUM, host_key_policy, 0, 0, policies),
    SSH("connect_timeout", F_DURATION, connect_timeout, 1, 3600, NULL),
    SSH("command_timeout", F_DURATION, command_timeout, 1, 7 * DAY, NULL),
    PG("port", F_INT, port, 1, 65535, NULL),
    PG("pgdata", F_PATH, pgdata, 0, 0, NULL),
    PG("bindir", F_PATH, bindir, 0, 0, NULL),
    PG("cert_dir", F_PATH, cert_dir, 0, 0, NULL),
    PG("socket_dir", F_PATH, socket_dir, 0, 0, NULL),
    PG("allowed_networks", F_NETLIST, allowed_networks, 0, 0, NULL),
    PG("layout", F_ENUM, layout, 0, 0, layouts),
    PG("cluster", F_PGVC, cluster, 0, 0, NULL),
    PG("listen_localhost", F_ENUM, listen_localhost, 0, 0, tristate),
    PG("start_conf", F_ENUM, start_conf, 0, 0, start_confs),
    NODE("host", F_HOST, host, 0, 0, NULL),
    NODE("address", F_ADDR, address, 0, 0, NULL),
    NODE("role", F_ENUM, role, 0, 0, roles),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* A [ssh]/[postgres] key given inside a node section, applied after the
 * whole file is read so that section order does not matter. */
struct override {
	int node;
	const struct field *f;
	char value[CFG_PATH];
	int line;
};

struct parser {
	struct dbpki_cluster *c;
	struct dbpki_err *e;
	const char *file;
	const char *text;       /* remaining input for the reader */
	const char *line_start; /* the line just handed to inih */
	int line;
	int failed;
	char section[CFG_TEXT];   /* "" before the first header */
	int node;                 /* index in c->nodes, or -1 */
	int seen_global[NFIELDS]; /* line of the first occurrence */
	int seen_node[CFG_MAX_NODES][NFIELDS];
	int seen_section[8];
	int cur_section_known;
	struct override *ovr;
	int n_ovr;
};

static int pfail(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
pfail(struct parser *p, int line, const char *fmt, ...)
{
	char buf[DBPKI_ERR_MSG - 256];
	va_list ap;

	if (p->failed)
		return 0; /* report the first problem only */
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (line > 0)
		err_set(p->e, DBPKI_E_CONFIG, "%s:%d: %s", p->file, line, buf);
	else
		err_set(p->e, DBPKI_E_CONFIG, "%s: %s", p->file, buf);
	p->failed = 1;
	return 0;
}

static void *
field_target(struct parser *p, const struct field *f, int node)
{
	switch (f->base) {
	case B_CLUSTER: return (char *)p->c + f->off;
	case B_SSH:
		return (char *)(node >= 0 ? &p->c->nodes[node].ssh
					  : &p->c->ssh) +
		       f->off;
	case B_PG:
		return (char *)(node >= 0 ? &p->c->nodes[node].pg : &p->c->pg) +
		       f->off;
	case B_NODE: return (char *)&p->c->nodes[node] + f->off;
	}
	return NULL;
}

static int
valid_envname(const char *s)
{
	size_t i;

	if (!isalpha((unsigned char)s[0]) && s[0] != '_')
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return i < CFG_NAME;
}

static int
valid_text(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    strchr(" _.,:@()-", s[i]) == NULL)
			return 0;
	return i > 0 && i <= 64 && s[0] != ' ';
}

/* Split a comma-separated list, trimming blanks around each item.  Calls
 * ok() on every item; returns the count, or -1 on an empty or bad item. */
static int
split_list(
    const char *v, char items[][CFG_HOST], int max, int (*ok)(const char *))
{
	const char *s = v, *comma, *b, *e;
	int n = 0;

	for (;;) {
		comma = strchr(s, ',');
		e = comma ? comma : s + strlen(s);
		for (b = s; b < e && isspace((unsigned char)*b); b++)
			;
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		if (b == e || n >= max || (size_t)(e - b) >= CFG_HOST)
			return -1; /* an empty item is a typo, not nothing */
		memcpy(items[n], b, (size_t)(e - b));
		items[n][e - b] = '\0';
		if (!ok(items[n]))
			return -1;
		n++;
		if (comma == NULL)
			return n;
		s = comma + 1;
	}
}

static int
valid_san(const char *s)
{
	return util_valid_hostname(s) || util_valid_ip(s);
}

static int
set_list(struct parser *p, const struct field *f, void *dst, const char *v,
    int line, const char *where)
{
	char items[CFG_MAX_SAN][CFG_HOST];
	char joined[CFG_PATH] = "";
	int n, i;
	size_t len;

	if (f->type == F_SANLIST) {
		n = split_list(v, p->c->extra_san, CFG_MAX_SAN, valid_san);
		if (n < 0)
			return pfail(p, line,
			    "%s: '%.200s' must be a comma-separated "
			    "list of host names and IP addresses (at most %d)",
			    where, v, CFG_MAX_SAN);
		p->c->n_extra_san = n;
		return 1;
	}
	n = split_list(v, items, CFG_MAX_SAN, util_valid_cidr);
	if (n <= 0)
		return pfail(p, line,
		    "%s: '%.200s' must be a comma-separated list "
		    "of networks like 10.0.0.0/24",
		    where, v);
	for (i = 0; i < n; i++) {
		len = strlen(joined);
		snprintf(joined + len, sizeof(joined) - len, "%s%s",
		    i ? "," : "", items[i]);
	}
	memcpy(
	    dst, joined, f->size < sizeof(joined) ? f->size : sizeof(joined));
	((char *)dst)[f->size - 1] = '\0';
	return 1;
}

static int
set_enum(struct parser *p, const struct field *f, void *dst, const char *v,
    int line, const char *where)
{
	char allowed[256] = "";
	size_t len;
	int i;

	for (i = 0; f->names[i] != NULL; i++) {
		if (strcmp(v, f->names[i]) == 0) {
			*(int *)dst = i;
			return 1;
		}
		len = strlen(allowed);
		snprintf(allowed + len, sizeof(allowed) - len, "%s%s",
		    i ? ", " : "", f->names[i]);
	}
	return pfail(
	    p, line, "%s: '%.100s' is not one of: %s", where, v, allowed);
}

/* postgresql-common's cluster: a version (digits and dots), '/', a name. */
static int
valid_pgcluster(const char *v)
{
	const char *slash = strchr(v, '/');

	if (slash == NULL || slash == v || !isdigit((unsigned char)v[0]))
		return 0;
	if (strspn(v, "0123456789.") != (size_t)(slash - v))
		return 0;
	return util_valid_name(slash + 1);
}

static int
set_string(struct parser *p, const struct field *f, void *dst, const char *v,
    int line, const char *where)
{
	static const char *const what[] = {
	    [F_NAME] = "letters, digits, '_', '.', '-' (max 63, no '..')",
	    [F_ENVNAME] = "an environment variable name",
	    [F_TEXT] =
		"text of letters, digits, spaces and _.,:@()- (at most 64)",
	    [F_HOST] = "a host name (RFC 1123), not an address",
	    [F_ADDR] = "an IPv4 or IPv6 address",
	    [F_PATH] =
		"an absolute path of letters, digits and _./@+:- without '..'",
	    [F_PGVC] = "VERSION/NAME as pg_lsclusters lists it, "
		       "e.g. 15/main",
	};
	int ok;

	switch (f->type) {
	case F_NAME: ok = util_valid_name(v); break;
	case F_ENVNAME: ok = valid_envname(v); break;
	case F_TEXT: ok = valid_text(v); break;
	case F_HOST: ok = util_valid_hostname(v); break;
	case F_ADDR: ok = util_valid_ip(v); break;
	case F_PATH: ok = util_valid_abspath(v); break;
	case F_PGVC: ok = valid_pgcluster(v); break;
	default: ok = 0; break;
	}
	if (!ok || strlen(v) >= f->size)
		return pfail(p, line, "%s: '%.200s' is not valid: expected %s",
		    where, v, what[f->type]);
	memcpy(dst, v, strlen(v) + 1);
	return 1;
}

/* Parse v into the field at dst.  Returns 1 on success, 0 after pfail(). */
/* A bound in the largest unit that divides it: 3600 reads "1h". */
static void
fmt_bound(long long secs, char *out, size_t outsz)
{
	if (secs >= DAY && secs % DAY == 0)
		snprintf(out, outsz, "%lldd", secs / DAY);
	else if (secs >= 3600 && secs % 3600 == 0)
		snprintf(out, outsz, "%lldh", secs / 3600);
	else if (secs >= 60 && secs % 60 == 0)
		snprintf(out, outsz, "%lldm", secs / 60);
	else
		snprintf(out, outsz, "%llds", secs);
}

static int
duration_fail(struct parser *p, const struct field *f, int line,
    const char *where, const char *v)
{
	char lo[32], hi[32];

	fmt_bound(f->min, lo, sizeof(lo));
	fmt_bound(f->max, hi, sizeof(hi));
	return pfail(p, line,
	    "%s: '%.100s' is not a duration from %s to %s (write it like "
	    "30d, 12h, 90m or 45s)",
	    where, v, lo, hi);
}

/* An RFC 7512 URI: printable ASCII without spaces, quotes or backslashes,
 * no pin-value (a PIN in the inventory; [ca] pin_file holds it). */
static int
set_p11_uri(
    struct parser *p, void *dst, const char *v, int line, const char *where)
{
	struct cfg_keyspec *k = dst;
	const char *s;

	for (s = v; *s != '\0'; s++)
		if (*s <= ' ' || *s > '~' || strchr("\"'\\`", *s) != NULL)
			return pfail(p, line,
			    "%s: the pkcs11: URI has a space, quote or "
			    "control character; percent-encode it (RFC 7512)",
			    where);
	if (strstr(v, "pin-value=") != NULL)
		return pfail(p, line,
		    "%s: no pin-value in the URI; put the PIN in [ca] "
		    "pin_file (0600)",
		    where);
	if (util_fmt(k->uri, sizeof(k->uri), "%s", v) != 0)
		return pfail(p, line, "%s: the URI is too long", where);
	return 1;
}

static int
set_field(struct parser *p, const struct field *f, void *dst, const char *v,
    int line, const char *where)
{
	long long n;
	int64_t secs;

	switch (f->type) {
	case F_DURATION:
		if (util_parse_duration(v, &secs) != 0 || secs < f->min ||
		    secs > f->max)
			return duration_fail(p, f, line, where, v);
		*(int64_t *)dst = secs;
		return 1;
	case F_INT:
		if (util_parse_int(v, f->min, f->max, &n) != 0)
			return pfail(p, line,
			    "%s: '%.100s' is not a whole number "
			    "from %lld to %lld",
			    where, v, f->min, f->max);
		*(int *)dst = (int)n;
		return 1;
	case F_KEY:
		/* Only the CA's key may live on a token (docs/ca-key.md). */
		if (strncmp(v, "pkcs11:", 7) == 0 &&
		    strcmp(f->section, "ca") == 0 && strcmp(f->key, "key") == 0)
			return set_p11_uri(p, dst, v, line, where);
		if (cfg_parse_key(v, &((struct cfg_keyspec *)dst)->alg) != 0)
			return pfail(p, line,
			    "%s: '%.100s' is not an accepted key: use "
			    "ec:P-256, ec:P-384, rsa:3072 or rsa:4096 (nothing "
			    "weaker)",
			    where, v);
		return 1;
	case F_ENUM: return set_enum(p, f, dst, v, line, where);
	case F_SANLIST:
	case F_NETLIST: return set_list(p, f, dst, v, line, where);
	default: return set_string(p, f, dst, v, line, where);
	}
}

static const struct field *
find_field(const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < NFIELDS; i++)
		if (strcmp(fields[i].section, section) == 0 &&
		    strcmp(fields[i].key, key) == 0)
			return &fields[i];
	return NULL;
}

/* In a node section, [ssh] and [postgres] keys are overrides.  Both sections
 * have a `port`: in a node it is PostgreSQL's, and `ssh_port` is SSH's. */
static const struct field *
find_node_field(const char *key)
{
	const struct field *f;

	if ((f = find_field("node", key)) != NULL)
		return f;
	if (strcmp(key, "ssh_port") == 0)
		return find_field("ssh", "port");
	if (strcmp(key, "port") != 0 && (f = find_field("ssh", key)) != NULL)
		return f;
	return find_field("postgres", key);
}

static const char *const known_sections[] = {
    "cluster", "ca", "server", "client", "ssh", "postgres", NULL};

static void
start_node(struct parser *p, const char *name)
{
	struct cfg_node *n;
	int i;

	if (!util_valid_name(name)) {
		pfail(p, p->line,
		    "[node %.100s]: node names are letters, digits, "
		    "'_', '.', '-' (no '..', at most 63)",
		    name);
		return;
	}
	for (i = 0; i < p->c->n_nodes; i++)
		if (strcmp(p->c->nodes[i].name, name) == 0) {
			pfail(p, p->line,
			    "[node %s] is defined twice (first at line %d)",
			    name, p->c->nodes[i].line);
			return;
		}
	if (p->c->n_nodes >= CFG_MAX_NODES) {
		pfail(p, p->line, "too many nodes (at most %d)", CFG_MAX_NODES);
		return;
	}
	n = &p->c->nodes[p->c->n_nodes];
	memcpy(n->name, name, strlen(name) + 1);
	n->line = p->line;
	n->role = -1;
	p->node = p->c->n_nodes++;
}

/* Called for every header line, so empty sections are seen too. */
static void
on_section(struct parser *p, const char *hdr)
{
	int i;

	p->node = -1;
	p->cur_section_known = 0;
	snprintf(p->section, sizeof(p->section), "%s", hdr);
	if (strncmp(hdr, "node ", 5) == 0) {
		start_node(p, hdr + 5);
		p->cur_section_known = !p->failed;
		return;
	}
	for (i = 0; known_sections[i] != NULL; i++) {
		if (strcmp(hdr, known_sections[i]) != 0)
			continue;
		if (p->seen_section[i])
			pfail(p, p->line,
			    "[%s] appears twice (first at line %d)", hdr,
			    p->seen_section[i]);
		p->seen_section[i] = p->line;
		p->cur_section_known = 1;
		return;
	}
	pfail(p, p->line,
	    "unknown section [%.100s]; known: [cluster], [ca], "
	    "[server], [client], [ssh], [postgres], [node NAME]",
	    hdr);
}

static int
add_override(struct parser *p, const struct field *f, const char *v)
{
	struct override *o;

	if (strlen(v) >= sizeof(o->value))
		return pfail(
		    p, p->line, "[%s] %s: value too long", p->section, f->key);
	o = realloc(p->ovr, sizeof(*o) * (size_t)(p->n_ovr + 1));
	if (o == NULL)
		return pfail(p, p->line, "out of memory");
	p->ovr = o;
	o = &p->ovr[p->n_ovr++];
	o->node = p->node;
	o->f = f;
	o->line = p->line;
	memcpy(o->value, v, strlen(v) + 1);
	return 1;
}

static int
check_duplicate(struct parser *p, const struct field *f, const char *key)
{
	int *seen = p->node >= 0 ? &p->seen_node[p->node][f - fields]
				 : &p->seen_global[f - fields];

	if (*seen == 0) {
		*seen = p->line;
		return 1;
	}
	if (isspace((unsigned char)p->line_start[0]))
		return pfail(p, p->line,
		    "[%s] line starts with blanks, so it reads "
		    "as a continuation of '%s'; remove the indentation",
		    p->section, key);
	return pfail(p, p->line, "[%s] %s: given twice (first at line %d)",
	    p->section, key, *seen);
}

static int
handler(void *user, const char *section, const char *key, const char *value)
{
	struct parser *p = user;
	const struct field *f;
	char where[CFG_TEXT + 80];

	if (p->failed)
		return 1;
	/* A key is never dropped: one outside any section (before the first
	 * header) is an error, not something to ignore. */
	if (p->section[0] == '\0')
		return pfail(p, p->line,
		    "'%.100s' is outside any section: put it under its "
		    "[section] header (e.g. [cluster])",
		    key);
	if (!p->cur_section_known)
		return 1; /* on_section() has already failed */
	/* The reader tracks sections (including empty ones); inih tracks its
	 * own, cut at INIH_SECTION_MAX.  Where they disagree (an indented
	 * header inih reads as a continuation line) the key would land in
	 * another section than the one the admin sees. */
	if (strncmp(section, p->section, INIH_SECTION_MAX - 1) != 0)
		return pfail(p, p->line,
		    "[%.100s] line starts with blanks, so it reads as a "
		    "continuation of '%.100s' in [%.100s]; remove the "
		    "indentation",
		    p->section, key, section);
	snprintf(where, sizeof(where), "[%s] %s", p->section, key);
	f = p->node >= 0 ? find_node_field(key) : find_field(p->section, key);
	if (f == NULL)
		return pfail(
		    p, p->line, "[%s]: unknown key '%.100s'", p->section, key);
	if (!check_duplicate(p, f, key))
		return 0;
	if (p->node >= 0 && f->base != B_NODE)
		return add_override(p, f, value);
	return set_field(
	    p, f, field_target(p, f, p->node), value, p->line, where);
}

/* inih reader: hands out one line at a time and notes section headers. */
static char *
reader(char *str, int num, void *stream)
{
	struct parser *p = stream;
	const char *nl, *s, *end;
	size_t len;

	if (*p->text == '\0')
		return NULL;
	nl = strchr(p->text, '\n');
	len = nl ? (size_t)(nl - p->text) + 1 : strlen(p->text);
	if (len >= (size_t)num)
		len = (size_t)num -
		      1; /* never reached: lines are checked first */
	memcpy(str, p->text, len);
	str[len] = '\0';
	p->line_start = p->text;
	p->text += len;
	p->line++;
	for (s = str; isspace((unsigned char)*s); s++)
		;
	if (*s == '[' && (end = strchr(s, ']')) != NULL && !p->failed) {
		char hdr[CFG_TEXT];
		size_t n = (size_t)(end - s - 1);

		if (n >= sizeof(hdr))
			pfail(p, p->line, "section name too long");
		else {
			memcpy(hdr, s + 1, n);
			hdr[n] = '\0';
			on_section(p, hdr);
		}
	}
	return str;
}

/* Lines inih would silently truncate or misread are refused up front. */
static int
precheck(struct parser *p, const char *text)
{
	const char *s = text, *nl;
	int line = 1;

	for (; *s != '\0'; s = nl + 1, line++) {
		nl = strchr(s, '\n');
		if (nl == NULL)
			nl = s + strlen(s) - 1;
		if (nl - s + 1 > INI_LINE_MAX)
			return pfail(p, line, "line longer than %d characters",
			    INI_LINE_MAX);
		/* Only the very first one is skipped (cfg_load_string); one
		 * further on (concatenated files) would hide a header. */
		if (memmem(s, (size_t)(nl - s + 1), UTF8_BOM, 3) != NULL)
			return pfail(p, line,
			    "a UTF-8 byte order mark inside the file (only one "
			    "at the very start is allowed); remove it");
		if (nl[1] == '\0')
			break;
	}
	return 1;
}

static void
set_defaults(struct dbpki_cluster *c)
{
	const char *home = getenv("HOME");

	memset(c, 0, sizeof(*c));
	c->platform = PLATFORM_POSTGRES;
	c->renew_before = 30 * DAY;
	c->parallel = 16;
	c->ca_key.alg = KEY_EC_P256;
	c->ca_token_key_type.alg = KEY_EC_P256;
	c->ca_validity = 3650 * DAY;
	/* Longer than renew_before and check's warning (30d), so a CRL that
	 * renew refreshes in time never alarms (docs/revocation.md). */
	c->ca_crl_validity = 90 * DAY;
	c->server_key.alg = KEY_EC_P256;
	c->server_validity = 397 * DAY;
	c->server_mode = SERVER_PER_NODE;
	snprintf(
	    c->client_common_name, sizeof(c->client_common_name), "postgres");
	c->client_key.alg = KEY_EC_P256;
	c->client_validity = 397 * DAY;
	snprintf(c->ssh.user, sizeof(c->ssh.user), "postgres");
	c->ssh.port = 22;
	if (home != NULL && util_valid_abspath(home))
		snprintf(c->ssh.known_hosts, sizeof(c->ssh.known_hosts),
		    "%s/.ssh/known_hosts", home);
	c->ssh.host_key_policy = HOSTKEY_STRICT;
	c->ssh.connect_timeout = 10;
	c->ssh.command_timeout = 300;
	c->pg.port = 5432;
	snprintf(
	    c->pg.pgdata, sizeof(c->pg.pgdata), "/var/lib/postgresql/15/main");
	snprintf(
	    c->pg.bindir, sizeof(c->pg.bindir), "/usr/lib/postgresql/15/bin");
	snprintf(c->pg.cert_dir, sizeof(c->pg.cert_dir),
	    "/var/lib/postgresql/dbpki");
	snprintf(
	    c->pg.socket_dir, sizeof(c->pg.socket_dir), "/var/run/postgresql");
}

static int
resolve_nodes(struct parser *p)
{
	struct dbpki_cluster *c = p->c;
	char where[CFG_TEXT + 80];
	int i;

	for (i = 0; i < c->n_nodes; i++) {
		c->nodes[i].ssh = c->ssh;
		c->nodes[i].pg = c->pg;
	}
	for (i = 0; i < p->n_ovr && !p->failed; i++) {
		struct override *o = &p->ovr[i];

		snprintf(where, sizeof(where), "[node %s] %s",
		    c->nodes[o->node].name, o->f->key);
		set_field(p, o->f, field_target(p, o->f, o->node), o->value,
		    o->line, where);
	}
	return !p->failed;
}

static int
check_node(struct parser *p, const struct cfg_node *n)
{
	static const char *const need[] = {"host", "address", "role"};
	int i;

	for (i = 0; i < 3; i++)
		if (!p->seen_node[n - p->c->nodes]
				 [find_field("node", need[i]) - fields])
			return pfail(p, n->line, "[node %s]: '%s' is required",
			    n->name, need[i]);
	if (n->ssh.known_hosts[0] == '\0')
		return pfail(p, n->line,
		    "[node %s]: no known_hosts file: set "
		    "[ssh] known_hosts",
		    n->name);
	return 1;
}

static int
check_unique(struct parser *p)
{
	const struct dbpki_cluster *c = p->c;
	int i, j;

	for (i = 0; i < c->n_nodes; i++)
		for (j = 0; j < i; j++) {
			if (strcasecmp(c->nodes[i].host, c->nodes[j].host) == 0)
				return pfail(p, c->nodes[i].line,
				    "[node %s]: host %s is "
				    "also node %s's",
				    c->nodes[i].name, c->nodes[i].host,
				    c->nodes[j].name);
			if (strcmp(c->nodes[i].address, c->nodes[j].address) ==
				0 &&
			    c->nodes[i].ssh.port == c->nodes[j].ssh.port)
				return pfail(p, c->nodes[i].line,
				    "[node %s]: address %s "
				    "port %d is also node %s's",
				    c->nodes[i].name, c->nodes[i].address,
				    c->nodes[i].ssh.port, c->nodes[j].name);
		}
	return 1;
}

static int
check_cms(struct parser *p)
{
	int i, ndb = 0;

	if (strcmp(p->c->client_common_name, "postgres") != 0)
		return pfail(p, 0,
		    "[client] common_name: Cisco Meeting Server "
		    "requires the dbclient certificate's CN to be 'postgres'");
	for (i = 0; i < p->c->n_nodes; i++)
		ndb += cfg_is_database(&p->c->nodes[i]);
	if (ndb > 5)
		return pfail(p, 0,
		    "%d database nodes: a Cisco Meeting Server "
		    "database cluster has at most 5",
		    ndb);
	if (ndb % 2 == 0)
		log_warn(
		    "%s: %d database nodes: Cisco recommends an odd number "
		    "(3 or 5) so that a majority survives a failure",
		    p->file, ndb);
	return 1;
}

static int
check_cluster(struct parser *p)
{
	struct dbpki_cluster *c = p->c;
	int i, primaries = 0;

	if (c->name[0] == '\0')
		return pfail(p, 0, "[cluster] name is required");
	if (c->state_dir[0] == '\0')
		return pfail(p, 0, "[cluster] state_dir is required");
	if (c->n_nodes == 0)
		return pfail(
		    p, 0, "no [node NAME] sections: the cluster has no nodes");
	for (i = 0; i < c->n_nodes; i++) {
		if (!check_node(p, &c->nodes[i]))
			return 0;
		primaries += c->nodes[i].role == ROLE_PRIMARY;
	}
	if (primaries != 1)
		return pfail(p, 0,
		    "%d nodes have role = primary; exactly one must",
		    primaries);
	if (!check_unique(p))
		return 0;
	if (c->ca_common_name[0] == '\0' &&
	    util_fmt(c->ca_common_name, sizeof(c->ca_common_name), "%s dbca",
		c->name) != 0)
		return pfail(p, 0, "[ca] common_name: too long");
	if (c->ca_passphrase_file[0] != '\0' && c->ca_passphrase_env[0] != '\0')
		return pfail(p, 0,
		    "[ca]: give passphrase_file or passphrase_env, "
		    "not both");
	if (c->ca_key.uri[0] != '\0' && c->ca_pin_file[0] == '\0')
		return pfail(p, 0,
		    "[ca] key = pkcs11:...: set pin_file too (the token's "
		    "PIN, a 0600 file)");
	if (c->ca_key.uri[0] == '\0' && c->ca_pin_file[0] != '\0')
		return pfail(p, 0, "[ca] pin_file is for a pkcs11: key only");
	if (c->ca_key.uri[0] != '\0' && (c->ca_passphrase_file[0] != '\0' ||
					    c->ca_passphrase_env[0] != '\0'))
		return pfail(p, 0,
		    "[ca]: a pkcs11: key has no passphrase (drop "
		    "passphrase_file/passphrase_env; the PIN is pin_file)");
	if (c->platform == PLATFORM_CMS)
		return check_cms(p);
	return 1;
}

int
cfg_load_string(const char *name, const char *text, struct dbpki_cluster *c,
    struct dbpki_err *e)
{
	struct parser *p;
	int rc;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	set_defaults(c);
	p->c = c;
	p->e = e;
	p->file = name;
	/* A UTF-8 BOM (Windows editors write one) is stripped here, before
	 * the reader and inih see the text: inih skips it on its own but the
	 * reader would not, and the first section's keys were then lost. */
	if (strncmp(text, UTF8_BOM, 3) == 0)
		text += 3;
	p->text = text;
	p->node = -1;
	snprintf(c->path, sizeof(c->path), "%s", name);
	if (strlen(text) != 0 && precheck(p, text)) {
		rc = ini_parse_stream(reader, p, handler, p);
		if (rc > 0 && !p->failed)
			pfail(p, rc,
			    "not an INI line (expected [section] or "
			    "key = value)");
		else if (rc < 0 && !p->failed)
			pfail(p, 0, "cannot parse");
	}
	if (!p->failed && resolve_nodes(p))
		check_cluster(p);
	rc = p->failed ? DBPKI_E_CONFIG : 0;
	free(p->ovr);
	free(p);
	return rc;
}

int
cfg_load(const char *path, struct dbpki_cluster *c, struct dbpki_err *e)
{
	char *text = NULL;
	const char *nul, *p;
	size_t len = 0;
	int rc, line = 1;

	if (util_read_file(path, UTIL_MAX_INPUT,
		UTIL_RF_NOSYMLINK | UTIL_RF_NOTWRITABLE, &text, &len, e) != 0) {
		e->code =
		    DBPKI_E_CONFIG; /* a missing inventory is a usage error */
		return err_wrap(e, "inventory");
	}
	if ((nul = memchr(text, '\0', len)) != NULL) {
		for (p = text; p < nul; p++)
			line += *p == '\n';
		free(text);
		/* Everything after it would be ignored unseen. */
		return err_set(e, DBPKI_E_CONFIG,
		    "%s:%d: a NUL byte: an inventory is text; remove it "
		    "(e.g. tr -d '\\000')",
		    path, line);
	}
	if (len == 0) {
		free(text);
		return err_set(e, DBPKI_E_CONFIG, "%s: empty inventory", path);
	}
	rc = cfg_load_string(path, text, c, e);
	free(text);
	return rc;
}

/* One cfg_ssh's files; known_hosts may be missing (accept-new creates it,
 * and the connection reports a missing one with what to do). */
static int
trust_ssh(
    const struct cfg_ssh *s, const char *where, int flags, struct dbpki_err *e)
{
	char what[CFG_NAME + 64];
	int r;

	snprintf(what, sizeof(what), "%s identity", where);
	if (s->identity[0] != '\0' &&
	    (r = util_trust_path(s->identity, what, flags, e)) != 0)
		return r;
	snprintf(what, sizeof(what), "%s identity_passphrase_file", where);
	if (s->identity_passphrase_file[0] != '\0' &&
	    (r = util_trust_path(
		 s->identity_passphrase_file, what, flags, e)) != 0)
		return r;
	snprintf(what, sizeof(what), "%s known_hosts", where);
	if (s->known_hosts[0] != '\0' &&
	    (r = util_trust_path(
		 s->known_hosts, what, flags | UTIL_TP_MISSING, e)) != 0)
		return r;
	return 0;
}

int
cfg_check_trust(const struct dbpki_cluster *c, int flags, struct dbpki_err *e)
{
	char where[CFG_NAME + 16], p[CFG_PATH + 16];
	int i, r;

	if ((r = util_trust_path(c->path, "inventory", flags, e)) != 0 ||
	    (r = util_trust_path(c->state_dir, "[cluster] state_dir",
		 flags | UTIL_TP_DIR | UTIL_TP_MISSING, e)) != 0)
		return r;
	/* Inside the store: whoever can write ca/ or keys/ can swap the CA
	 * key or a node's key (issued/ holds what is shipped). */
	for (i = 0; i < 3; i++) {
		static const char *const sub[] = {"ca", "keys", "issued"};

		if (util_fmt(p, sizeof(p), "%s/%s", c->state_dir, sub[i]) != 0)
			return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		if ((r = util_trust_path(p, "[cluster] state_dir",
			 flags | UTIL_TP_DIR | UTIL_TP_MISSING, e)) != 0)
			return r;
	}
	if (c->ca_passphrase_file[0] != '\0' &&
	    (r = util_trust_path(
		 c->ca_passphrase_file, "[ca] passphrase_file", flags, e)) != 0)
		return r;
	if (c->ca_pin_file[0] != '\0' && (r = util_trust_path(c->ca_pin_file,
					      "[ca] pin_file", flags, e)) != 0)
		return r;
	if ((r = trust_ssh(&c->ssh, "[ssh]", flags, e)) != 0)
		return r;
	/* Per node: an override may name other files than [ssh]. */
	for (i = 0; i < c->n_nodes; i++) {
		snprintf(where, sizeof(where), "[node %s]", c->nodes[i].name);
		if ((r = trust_ssh(&c->nodes[i].ssh, where, flags, e)) != 0)
			return r;
	}
	return 0;
}

const struct cfg_node *
cfg_primary(const struct dbpki_cluster *c)
{
	int i;

	for (i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].role == ROLE_PRIMARY)
			return &c->nodes[i];
	return NULL;
}

const struct cfg_node *
cfg_node_by_name(const struct dbpki_cluster *c, const char *name)
{
	int i;

	for (i = 0; i < c->n_nodes; i++)
		if (strcmp(c->nodes[i].name, name) == 0)
			return &c->nodes[i];
	return NULL;
}

int
cfg_is_database(const struct cfg_node *n)
{
	return n->role == ROLE_PRIMARY || n->role == ROLE_REPLICA;
}

const char *
cfg_role_name(enum cfg_role r)
{
	return (unsigned)r < 3 ? roles[r] : "?";
}

const char *
cfg_layout_name(enum cfg_pg_layout l)
{
	return (unsigned)l < 3 ? layouts[l] : "?";
}

const char *
cfg_platform_name(enum cfg_platform p)
{
	return (unsigned)p < 2 ? platforms[p] : "?";
}

static const char *const key_names[] = {
    "ec:P-256", "ec:P-384", "rsa:3072", "rsa:4096", NULL};

const char *
cfg_key_name(enum cfg_key_alg a)
{
	return (unsigned)a < 4 ? key_names[a] : "?";
}

int
cfg_parse_key(const char *s, enum cfg_key_alg *out)
{
	int i;

	for (i = 0; key_names[i] != NULL; i++)
		if (strcmp(s, key_names[i]) == 0) {
			*out = (enum cfg_key_alg)i;
			return 0;
		}
	return -1;
}
