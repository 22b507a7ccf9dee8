/* cli_certs: list, revoke, issue-client.  Argument parsing and exit codes
 * only; the work is in pki_list.c, pki_crl.c, pki_app.c, engine_certs.c.
 * docs/revocation.md. */
#include "dbpki/cli.h"
#include "dbpki/engine.h"
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_list[] =
    "usage: dbpki list -c INVENTORY [--expiring DAYS|DURATION]\n"
    "                  [--status active|superseded|revoked] [--node NAME]\n"
    "                  [--kind ca|server|client|app|signed] [--json]\n"
    "\n"
    "Every certificate the store ever issued for the cluster: serial,\n"
    "status, kind, node, notAfter, days left, subject (and the reason of a\n"
    "revocation).  Filters combine.  --expiring 30 (days) or 30d, 12h:\n"
    "notAfter before now + that, expired ones included.  --json: one JSON\n"
    "array, one object per line.  Reads only.\n";

static const char usage_revoke[] =
    "usage: dbpki revoke -c INVENTORY SERIAL [--reason REASON]\n"
    "       dbpki revoke -c INVENTORY --node NAME [--kind KIND] [--reason "
    "REASON]\n"
    "       dbpki revoke -c INVENTORY --crl-only\n"
    "       (each also takes --skip-node NAME, repeatable)\n"
    "\n"
    "Mark the certificate revoked in the store, rebuild dbca's CRL\n"
    "(state_dir/crl/dbca.crl) and ship it to every database node, which\n"
    "then refuses that certificate (ssl_crl_file, pg_reload_conf, no\n"
    "restart).  --node/--kind pick the one active certificate with that\n"
    "NODE/KIND of `dbpki list` (KIND: server, client, app, signed).\n"
    "Revoking the dbclient or a node's active server certificate also\n"
    "issues and ships its replacement.  A serial revoked already is not\n"
    "an error: the CRL is shipped again.  --crl-only revokes nothing and\n"
    "ships a fresh CRL (the first one turns checking on).\n"
    "REASON: unspecified (default), keyCompromise, affiliationChanged,\n"
    "superseded, cessationOfOperation, privilegeWithdrawn.\n"
    "Exit 2: unknown serial, the CA, no or several matches, bad reason.\n";

static const char usage_issue_client[] =
    "usage: dbpki issue-client -c INVENTORY NAME [--out DIR] [--dbname DB]\n"
    "                          [--renew-with-cluster]\n"
    "\n"
    "A client certificate for the application role NAME (CN = NAME: a\n"
    "letter or _, then letters, digits, _; at most 63), recorded in the\n"
    "store as kind app.  DIR (default ./NAME; must not exist) is created\n"
    "0700 with dbca.crt, client.crt, client.key (0600) and pg_service.conf:\n"
    "service NAME reaching the primary with sslmode=verify-full, database\n"
    "DB (default postgres).  Use: PGSERVICEFILE=DIR/pg_service.conf psql\n"
    "service=NAME.  The role itself is created by the DBA (CREATE ROLE\n"
    "NAME LOGIN).  Revoke with: dbpki revoke -c INVENTORY --node NAME.\n"
    "--renew-with-cluster: `dbpki renew` reissues this certificate when it\n"
    "expires within renew_before (or with --force) and rewrites DIR in\n"
    "place while DIR exists; issuing NAME again without it stops that.\n";

static int
usage_exit(const char *text, int is_help, const char *why)
{
	if (why != NULL)
		log_error("%s", why);
	fputs(text, is_help ? stdout : stderr);
	return is_help ? EXIT_DONE : EXIT_USAGE;
}

/* Load the inventory named by -c; *cp is the caller's to free. */
static int
load(const char *inv, struct dbpki_cluster **cp)
{
	int rc;

	if ((*cp = calloc(1, sizeof(**cp))) == NULL)
		return EXIT_FAILED;
	if ((rc = cli_load_cluster(inv, *cp)) != 0) {
		free(*cp);
		*cp = NULL;
	}
	return rc;
}

static int
valid_kind(const char *k, int with_ca)
{
	static const char *const kinds[] = {
	    "server", "client", "app", "signed", "ca"};
	size_t i, n = sizeof(kinds) / sizeof(kinds[0]) - (with_ca ? 0 : 1);

	for (i = 0; i < n; i++)
		if (strcmp(k, kinds[i]) == 0)
			return 1;
	return 0;
}

/* ---- list ----------------------------------------------------------------- */

/* "30" (days), or a duration: "30d", "12h". */
static int
parse_expiring(const char *s, int64_t *out)
{
	long long days;

	if (util_parse_int(s, 1, 36500, &days) == 0) {
		*out = (int64_t)days * 86400;
		return 0;
	}
	return util_parse_duration(s, out);
}

static int
parse_status(const char *s)
{
	if (strcmp(s, "active") == 0)
		return PKI_ACTIVE;
	if (strcmp(s, "superseded") == 0)
		return PKI_SUPERSEDED;
	if (strcmp(s, "revoked") == 0)
		return PKI_REVOKED;
	return -1;
}

struct list_args {
	const char *inv;
	struct pki_list_filter f;
	int json;
};

static int
list_parse(int argc, char **argv, struct list_args *a)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"expiring", required_argument, NULL, 'x'},
	    {"status", required_argument, NULL, 's'},
	    {"node", required_argument, NULL, 'n'},
	    {"kind", required_argument, NULL, 'k'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	memset(a, 0, sizeof(*a));
	a->f.status = -1;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': a->inv = optarg; break;
		case 'j': a->json = 1; break;
		case 'n': a->f.node = optarg; break;
		case 'x':
			if (parse_expiring(optarg, &a->f.expiring) != 0)
				return usage_exit(usage_list, 0,
				    "--expiring: give days (30) or a duration "
				    "(30d, 12h)");
			break;
		case 's':
			if ((a->f.status = parse_status(optarg)) < 0)
				return usage_exit(usage_list, 0,
				    "--status: active, superseded or revoked");
			break;
		case 'k':
			if (!valid_kind(optarg, 1))
				return usage_exit(usage_list, 0,
				    "--kind: ca, server, client, app or "
				    "signed");
			a->f.kind = optarg;
			break;
		default: return usage_exit(usage_list, ch == 'h', NULL);
		}
	}
	if (optind != argc)
		return usage_exit(usage_list, 0, "list takes no operand");
	if (a->inv == NULL)
		return usage_exit(
		    usage_list, 0, "list: -c INVENTORY is needed");
	return -1;
}

int
cli_list(int argc, char **argv)
{
	struct dbpki_cluster *c = NULL;
	struct list_args a;
	struct dbpki_err e;
	size_t n = 0;
	int rc;

	if ((rc = list_parse(argc, argv, &a)) != -1)
		return rc;
	if ((rc = load(a.inv, &c)) != 0)
		return rc;
	err_clear(&e);
	rc = pki_list_print(c, &a.f, a.json, stdout, &n, &e) == 0
		 ? EXIT_DONE
		 : cli_fail(&e);
	if (rc == EXIT_DONE && !a.json)
		log_info("%zu certificate(s)", n);
	free(c);
	return rc;
}

/* ---- revoke --------------------------------------------------------------- */

struct revoke_args {
	const char *inv;
	struct pki_revoke_req req;
	int crl_only, reason_given;
	struct engine_opts o;
};

static int
revoke_option(int ch, struct revoke_args *a)
{
	switch (ch) {
	case 'c': a->inv = optarg; return 0;
	case 'n': a->req.node = optarg; return 0;
	case 'o': a->crl_only = 1; return 0;
	case 'k':
		if (!valid_kind(optarg, 0))
			return usage_exit(usage_revoke, 0,
			    "--kind: server, client, app or signed");
		a->req.kind = optarg;
		return 0;
	case 'r':
		if ((a->req.reason = pki_crl_reason_parse(optarg)) < 0) {
			log_error("--reason %.64s: not accepted; one of: %s",
			    optarg, pki_crl_reason_list());
			return EXIT_USAGE;
		}
		a->reason_given = 1;
		return 0;
	case 's':
		if (a->o.n_skip >= CFG_MAX_NODES)
			return usage_exit(
			    usage_revoke, 0, "too many --skip-node");
		a->o.skip[a->o.n_skip++] = optarg;
		return 0;
	default: return usage_exit(usage_revoke, ch == 'h', NULL);
	}
}

static int
revoke_parse(int argc, char **argv, struct revoke_args *a)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"node", required_argument, NULL, 'n'},
	    {"kind", required_argument, NULL, 'k'},
	    {"reason", required_argument, NULL, 'r'},
	    {"crl-only", no_argument, NULL, 'o'},
	    {"skip-node", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch, rc, by_select;

	memset(a, 0, sizeof(*a));
	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1)
		if ((rc = revoke_option(ch, a)) != 0)
			return rc;
	if (optind + 1 == argc)
		a->req.serial = argv[optind++];
	if (optind != argc)
		return usage_exit(
		    usage_revoke, 0, "revoke: one SERIAL at most");
	if (a->inv == NULL)
		return usage_exit(
		    usage_revoke, 0, "revoke: -c INVENTORY is needed");
	by_select = a->req.node != NULL || a->req.kind != NULL;
	if (a->crl_only + by_select + (a->req.serial != NULL) != 1)
		return usage_exit(usage_revoke, 0,
		    "revoke: give exactly one of SERIAL, --node/--kind, "
		    "--crl-only");
	if (a->crl_only && a->reason_given)
		return usage_exit(
		    usage_revoke, 0, "revoke: --crl-only takes no --reason");
	return -1;
}

int
cli_revoke(int argc, char **argv)
{
	struct dbpki_cluster *c = NULL;
	struct revoke_args a;
	struct dbpki_err e;
	int rc;

	if ((rc = revoke_parse(argc, argv, &a)) != -1)
		return rc;
	if ((rc = load(a.inv, &c)) != 0)
		return rc;
	err_clear(&e);
	rc = engine_revoke(c, &a.req, a.crl_only, &a.o, &e);
	if (rc == 0)
		log_info("%s: revoke done: every database node checks the new "
			 "CRL",
		    c->name);
	free(c);
	return rc == 0 ? EXIT_DONE : cli_fail(&e);
}

/* ---- issue-client --------------------------------------------------------- */

struct app_args {
	const char *inv, *role, *out, *dbname;
	int renew_with_cluster;
};

static int
app_parse(int argc, char **argv, struct app_args *a)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"out", required_argument, NULL, 'o'},
	    {"dbname", required_argument, NULL, 'd'},
	    {"renew-with-cluster", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	memset(a, 0, sizeof(*a));
	a->dbname = "postgres";
	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': a->inv = optarg; break;
		case 'o': a->out = optarg; break;
		case 'd': a->dbname = optarg; break;
		case 'r': a->renew_with_cluster = 1; break;
		default: return usage_exit(usage_issue_client, ch == 'h', NULL);
		}
	}
	if (optind + 1 != argc || a->inv == NULL)
		return usage_exit(usage_issue_client, 0,
		    "issue-client: -c INVENTORY and one NAME are needed");
	a->role = argv[optind];
	if (a->out == NULL)
		a->out = a->role;
	return -1;
}

int
cli_issue_client(int argc, char **argv)
{
	char prev[PKI_SERIAL_HEX];
	struct dbpki_cluster *c = NULL;
	struct pki_entry ent;
	struct app_args a;
	struct dbpki_err e;
	int rc;

	if ((rc = app_parse(argc, argv, &a)) != -1)
		return rc;
	if ((rc = load(a.inv, &c)) != 0)
		return rc;
	err_clear(&e);
	rc = engine_issue_app(
	    c, a.role, a.out, a.dbname, a.renew_with_cluster, &ent, prev, &e);
	if (rc == 0 && prev[0] != '\0')
		log_warn("%s's previous certificate %s is superseded but stays "
			 "valid until it expires; if it must stop working now: "
			 "dbpki revoke -c %s %s",
		    a.role, prev, a.inv, prev);
	free(c);
	return rc == 0 ? EXIT_DONE : cli_fail(&e);
}
