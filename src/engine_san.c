/* engine_san: do the certificates cover every name and address clients
 * dial, and can the clients' libpq check an address at all?
 *
 * A certificate that verifies for the node's host name (all dbpki's own
 * connections use host= plus hostaddr=) can still lack the address or an
 * [server] extra_san that applications dial: they are refused under
 * verify-full while dbpki sees nothing wrong.  status reads what each node
 * serves, plan reads the store.  And a libpq before 15 never matches an
 * address against an iPAddress SAN, so an application that dials an
 * address from such a client node is refused whatever the certificate
 * says; status asks the client nodes over SSH.
 */
#include "dbpki/engine_int.h"
#include "dbpki/log.h"
#include "dbpki/pg.h"
#include "dbpki/template.h"
#include "dbpki/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#define LIBPQ_MARK "DBPKI-LIBPQ "

static void
gap_add(struct san_gap *g, const char *name, const char *why)
{
	int k = g->n_missing++;

	if (k >= ENGINE_SAN_SHOWN)
		return;
	util_fmt(g->miss[k].name, sizeof(g->miss[k].name), "%s:%s",
	    util_valid_ip(name) ? "IP" : "DNS", name);
	g->miss[k].why = why;
}

void
engine_san_check(const struct dbpki_cluster *c, const struct cfg_node *n,
    X509 *x, struct san_gap *g)
{
	int i;

	memset(g, 0, sizeof(*g));
	g->checked = 1;
	if (!pki_cert_covers(x, n->host))
		gap_add(g, n->host, "dialled as its host name");
	if (!pki_cert_covers(x, n->address))
		gap_add(g, n->address, "dialled as its address");
	for (i = 0; i < c->n_extra_san; i++)
		if (!pki_cert_covers(x, c->extra_san[i]))
			gap_add(g, c->extra_san[i], "in [server] extra_san");
	ERR_clear_error();
}

void
engine_san_list(const struct san_gap *g, char *out, size_t outsz)
{
	size_t len;
	int i;

	out[0] = '\0';
	for (i = 0; i < g->n_missing && i < ENGINE_SAN_SHOWN; i++) {
		len = strlen(out);
		snprintf(out + len, outsz - len, "%s%s (%s)", i ? ", " : "",
		    g->miss[i].name, g->miss[i].why);
	}
	if (g->n_missing > ENGINE_SAN_SHOWN) {
		len = strlen(out);
		snprintf(out + len, outsz - len, " and %d more",
		    g->n_missing - ENGINE_SAN_SHOWN);
	}
}

/* "by address", "by name" or "by name or address": how the refused
 * clients dial. */
static const char *
gap_how(const struct san_gap *g)
{
	int i, ip = 0, dns = 0;

	for (i = 0; i < g->n_missing && i < ENGINE_SAN_SHOWN; i++) {
		if (strncmp(g->miss[i].name, "IP:", 3) == 0)
			ip = 1;
		else
			dns = 1;
	}
	return ip && dns ? "by name or address" : ip ? "by address" : "by name";
}

/* ---- libpq versions ----------------------------------------------------- */

static int
read_number(const char **p, int *out)
{
	int v = 0, digits = 0;

	while (isdigit((unsigned char)**p) && digits < 4) {
		v = v * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	*out = v;
	return digits > 0 && !isdigit((unsigned char)**p) ? 0 : -1;
}

int
engine_libpq_parse(const char *s, int *major, int *minor)
{
	const char *p = strstr(s, "PostgreSQL");

	*major = *minor = 0;
	if (p == NULL)
		return -1;
	p += strlen("PostgreSQL");
	if (*p == ')')
		p++;
	while (*p == ' ')
		p++;
	if (read_number(&p, major) != 0 || *major < 6 || *major > 99) {
		*major = 0;
		return -1;
	}
	/* "16beta1", "17devel": the major is all that counts */
	if (*p == '.' && (p++, read_number(&p, minor) != 0)) {
		*major = *minor = 0;
		return -1;
	}
	return 0;
}

int
engine_libpq_ip_refused(int major, int n_ip)
{
	return major > 0 && major < ENGINE_LIBPQ_IP_SAN && n_ip > 0;
}

int
engine_san_ip_targets(const struct dbpki_cluster *c)
{
	int i, n = 0;

	for (i = 0; i < c->n_nodes; i++)
		n += cfg_is_database(&c->nodes[i]) &&
		     util_valid_ip(c->nodes[i].address);
	for (i = 0; i < c->n_extra_san; i++)
		n += util_valid_ip(c->extra_san[i]);
	return n;
}

/* The first IP address a client dials, for the message. */
static const char *
first_ip(const struct dbpki_cluster *c)
{
	const struct cfg_node *p = cfg_primary(c);
	int i;

	if (p != NULL && util_valid_ip(p->address))
		return p->address;
	for (i = 0; i < c->n_extra_san; i++)
		if (util_valid_ip(c->extra_san[i]))
			return c->extra_san[i];
	return "an address";
}

/* Run templates/postgres/libpq-version.sh on a client node. */
static int
libpq_ask(const struct cfg_node *n, struct ssh_conn *conn, char *line,
    size_t linesz, struct dbpki_err *e)
{
	struct tpl_vars v = {0};
	struct ssh_result res;
	char *script = NULL;
	const char *m, *end;
	int r;

	memset(&res, 0, sizeof(res));
	if ((r = tpl_vars_set(&v, "bindir", n->pg.bindir, e)) != 0 ||
	    (r = tpl_vars_set(&v, "sentinel", ENGINE_SENTINEL, e)) != 0 ||
	    (r = tpl_render_file(
		 "postgres", "libpq-version", &v, &script, e)) != 0 ||
	    (r = ssh_exec_script(conn, script, 0, &res, e)) != 0)
		goto out;
	if (!ssh_result_ok(&res, ENGINE_SENTINEL) ||
	    (m = strstr(res.out, LIBPQ_MARK)) == NULL) {
		r = err_set(e, DBPKI_E_REMOTE,
		    "node %s: the libpq-version script did not finish",
		    n->name);
		goto out;
	}
	m += strlen(LIBPQ_MARK);
	end = strchr(m, '\n');
	/* The node's words: shown in status as they are, escaped. */
	log_sanitize(
	    line, linesz, m, end != NULL ? (size_t)(end - m) : strlen(m), 0);
out:
	ssh_result_free(&res);
	free(script);
	tpl_vars_free(&v);
	return r;
}

static void
status_client(const struct dbpki_cluster *c, const struct cfg_node *n,
    struct ssh_conn *conn, struct san_status *s)
{
	struct dbpki_err e;

	err_clear(&e);
	if (conn == NULL || c->platform != PLATFORM_POSTGRES ||
	    libpq_ask(n, conn, s->libpq, sizeof(s->libpq), &e) != 0)
		return;
	if (engine_libpq_parse(s->libpq, &s->libpq_major, &s->libpq_minor) != 0)
		return;
	s->libpq_ip_refused =
	    engine_libpq_ip_refused(s->libpq_major, engine_san_ip_targets(c));
}

static void
status_database(const struct dbpki_cluster *c, const struct cfg_node *n,
    struct san_status *s)
{
	struct pg_target t;
	struct dbpki_err e;
	X509 *x = NULL;

	memset(&t, 0, sizeof(t));
	t.host = n->host;
	t.hostaddr = n->address;
	t.port = n->pg.port;
	t.connect_timeout_s = (int)n->ssh.connect_timeout;
	err_clear(&e);
	/* Not verify-full: the point is to see a certificate that would
	 * fail it for some name.  A node that cannot be read is already a
	 * problem of its own in status. */
	if (pg_peek_cert(&t, &x, &e) == 0)
		engine_san_check(c, n, x, &s->gap);
	X509_free(x);
	ERR_clear_error();
}

void
engine_san_status(const struct dbpki_cluster *c, const struct cfg_node *n,
    struct ssh_conn *conn, struct san_status *s)
{
	memset(s, 0, sizeof(*s));
	if (cfg_is_database(n))
		status_database(c, n, s);
	else
		status_client(c, n, conn, s);
}

void
engine_san_status_text(FILE *out, const struct dbpki_cluster *c,
    const struct cfg_node *n, const struct san_status *s)
{
	char list[1024];

	if (s->gap.n_missing > 0) {
		engine_san_list(&s->gap, list, sizeof(list));
		fprintf(out,
		    "warning: %s serves a certificate without %s: clients "
		    "using sslmode=verify-full %s will be refused; run dbpki "
		    "renew -c %s --force\n",
		    n->name, list, gap_how(&s->gap), c->path);
	}
	if (s->libpq_ip_refused)
		fprintf(out,
		    "warning: %s has libpq %d.%d (%s): libpq before %d "
		    "does not match an address against IP SANs, so "
		    "applications there that dial an address (%s) with "
		    "sslmode=verify-full will be refused; dial by name "
		    "(host=NAME, hostaddr=ADDRESS, as dbpki's pg_service.conf "
		    "does) or upgrade libpq on %s to %d or later\n",
		    n->name, s->libpq_major, s->libpq_minor, s->libpq,
		    ENGINE_LIBPQ_IP_SAN, first_ip(c), n->name,
		    ENGINE_LIBPQ_IP_SAN);
}

void
engine_san_status_json(
    FILE *out, const struct cfg_node *n, const struct san_status *s)
{
	int i;

	if (cfg_is_database(n) && s->gap.checked) {
		fprintf(out, ",\"san_missing\":[");
		for (i = 0; i < s->gap.n_missing && i < ENGINE_SAN_SHOWN; i++) {
			fprintf(out, "%s{\"name\":", i ? "," : "");
			log_json_string(out, s->gap.miss[i].name);
			fprintf(out, ",\"why\":");
			log_json_string(out, s->gap.miss[i].why);
			fputc('}', out);
		}
		fputc(']', out);
	}
	if (!cfg_is_database(n) && s->libpq[0] != '\0') {
		fprintf(out, ",\"libpq\":");
		log_json_string(out, s->libpq);
		fprintf(out, ",\"libpq_major\":%d,\"libpq_ip_san\":%s",
		    s->libpq_major, s->libpq_ip_refused ? "false" : "true");
	}
}

/* ---- plan ----------------------------------------------------------------- */

static void
plan_node(FILE *out, const struct dbpki_cluster *c, const struct cfg_node *n)
{
	struct pki_release rel;
	const struct pki_file *f;
	struct san_gap g;
	struct dbpki_err e;
	char list[1024];
	X509 *x = NULL;

	memset(&rel, 0, sizeof(rel));
	err_clear(&e);
	/* No store yet: the steps below say so already. */
	if (pki_release_build(c, n, &rel, &e) != 0)
		return;
	if ((f = pki_release_file(&rel, "server.crt")) != NULL &&
	    pki_cert_from_pem(f->data, f->len, "server.crt", &x, &e) == 0) {
		engine_san_check(c, n, x, &g);
		if (g.n_missing > 0) {
			engine_san_list(&g, list, sizeof(list));
			fprintf(out,
			    "warning: %s's server certificate in the store "
			    "(what its release carries) is without %s: clients "
			    "using sslmode=verify-full %s will be refused; "
			    "dbpki issue -c %s reissues it (bootstrap and "
			    "rotate do so first; on a running cluster: dbpki "
			    "renew -c %s --force)\n",
			    n->name, list, gap_how(&g), c->path, c->path);
		}
	}
	X509_free(x);
	pki_release_free(&rel);
	ERR_clear_error();
}

void
engine_san_plan(FILE *out, const struct dbpki_cluster *c)
{
	int i, clients = 0;

	for (i = 0; i < c->n_nodes; i++) {
		if (cfg_is_database(&c->nodes[i]))
			plan_node(out, c, &c->nodes[i]);
		else
			clients++;
	}
	if (clients > 0 && c->platform == PLATFORM_POSTGRES &&
	    engine_san_ip_targets(c) > 0)
		fprintf(out,
		    "note: plan connects nowhere, so it cannot know the "
		    "libpq version of the client nodes (before %d, libpq "
		    "refuses an address under verify-full); dbpki status "
		    "reads it\n",
		    ENGINE_LIBPQ_IP_SAN);
}
