/* cli_run: plan, bootstrap, rotate, renew — the commands that run a
 * playbook.  Argument parsing and exit codes only. */
#include "dbpki/cli.h"
#include "dbpki/engine.h"
#include "dbpki/log.h"
#include "dbpki/pki.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What parse_run_args() accepts besides the common options. */
#define ARG_PLAYBOOK 1 /* plan: a positional PLAYBOOK */
#define ARG_PRIMARY  2 /* rotate: --primary NAME */

struct run_args {
	const char *inventory;
	const char *playbook; /* plan: the positional argument */
	struct engine_opts o;
};

static int
parse_run_args(
    int argc, char **argv, const char *usage, int flags, struct run_args *a)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"force", no_argument, NULL, 'f'},
	    {"skip-node", required_argument, NULL, 's'},
	    {"primary", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	memset(a, 0, sizeof(*a));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': a->inventory = optarg; break;
		case 'j': a->o.json = 1; break;
		case 'f': a->o.force = 1; break;
		case 's':
			if (a->o.n_skip >= CFG_MAX_NODES)
				return EXIT_USAGE;
			a->o.skip[a->o.n_skip++] = optarg;
			break;
		case 'p':
			if (!(flags & ARG_PRIMARY)) {
				fprintf(stderr, "%s", usage);
				return EXIT_USAGE;
			}
			a->o.primary = optarg;
			break;
		case 'h': printf("%s", usage); return -1;
		default: fprintf(stderr, "%s", usage); return EXIT_USAGE;
		}
	}
	if ((flags & ARG_PLAYBOOK) && optind < argc)
		a->playbook = argv[optind++];
	if (optind != argc || a->inventory == NULL ||
	    ((flags & ARG_PLAYBOOK) && a->playbook == NULL)) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	log_init(a->o.json, 0, 0);
	return 0;
}

/* Parse the arguments and load the inventory into *cp (caller frees).
 * Returns 0 to go on, or 1 when the command is over (--help, bad usage,
 * bad inventory) with its exit code in *exit_code. */
static int
prepare(int argc, char **argv, const char *usage, int flags, struct run_args *a,
    struct dbpki_cluster **cp, int *exit_code)
{
	struct dbpki_cluster *c;
	int rc;

	*cp = NULL;
	if ((rc = parse_run_args(argc, argv, usage, flags, a)) != 0) {
		*exit_code = rc < 0 ? EXIT_DONE : rc;
		return 1;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		*exit_code = EXIT_FAILED;
		return 1;
	}
	if ((*exit_code = cli_load_cluster(a->inventory, c)) != 0) {
		free(c);
		return 1;
	}
	*cp = c;
	return 0;
}

int
cli_plan(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dbpki plan -c INVENTORY PLAYBOOK\n"
	    "  Print every step of PLAYBOOK (bootstrap, rotate, renew, ...), "
	    "the\n"
	    "  nodes it touches, the files each node receives (name, mode,\n"
	    "  SHA-256) and the rendered node scripts.  Connects to nothing "
	    "and\n"
	    "  changes nothing.\n";
	struct dbpki_cluster *c;
	struct dbpki_err e;
	struct run_args a;
	int rc;

	if (prepare(argc, argv, usage, ARG_PLAYBOOK, &a, &c, &rc))
		return rc;
	err_clear(&e);
	rc = engine_plan(c, a.playbook, stdout, &e) == 0 ? EXIT_DONE
							 : cli_fail(&e);
	free(c);
	return rc;
}

static int
run_playbook(int argc, char **argv, const char *playbook, const char *usage,
    int create_ca)
{
	struct dbpki_cluster *c;
	struct dbpki_err e;
	struct run_args a;
	int rc;

	if (prepare(argc, argv, usage, 0, &a, &c, &rc))
		return rc;
	err_clear(&e);
	rc = engine_issue_and_run(c, playbook, create_ca, &a.o, &e);
	if (rc == 0)
		log_info("%s: %s done", c->name, playbook);
	free(c);
	return rc == 0 ? EXIT_DONE : cli_fail(&e);
}

int
cli_bootstrap(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dbpki bootstrap -c INVENTORY [--json] [--skip-node "
	    "NAME]...\n"
	    "  Build a new cluster: create dbca if missing, issue every\n"
	    "  certificate, run playbooks/bootstrap.ini (remove, certs,\n"
	    "  initialize, join, connect) and verify with libpq "
	    "(verify-full).\n"
	    "  Running it again on a bootstrapped cluster converges: no data\n"
	    "  directory is ever initialised twice, deleted or overwritten.\n";

	return run_playbook(argc, argv, "bootstrap", usage, 1);
}

int
cli_rotate(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dbpki rotate -c INVENTORY [--primary NAME] [--json]\n"
	    "                    [--skip-node NAME]...\n"
	    "  Emergency: the certificates expired.  First asks every\n"
	    "  database node over SSH whether it is the primary (no\n"
	    "  certificate trusted) and refuses, changing nothing, unless\n"
	    "  exactly one is, where the inventory says, and its files load.\n"
	    "  --primary NAME: this database node is the primary for this\n"
	    "  run, whatever the inventory says; other nodes claiming\n"
	    "  primary are re-cloned from it.  Then new certificates\n"
	    "  (a new dbca if there is none or it expired) and\n"
	    "  playbooks/rotate.ini: the primary keeps its data (one restart,\n"
	    "  never initdb), replicas catch up or are re-cloned with the old\n"
	    "  data directory moved aside, clients get the new files; "
	    "verify.\n"
	    "  See docs/rotate.md.\n";
	struct dbpki_cluster *c;
	struct dbpki_err e;
	struct run_args a;
	int rc;

	if (prepare(argc, argv, usage, ARG_PRIMARY, &a, &c, &rc))
		return rc;
	err_clear(&e);
	rc = engine_rotate(c, &a.o, &e);
	if (rc == 0)
		log_info("%s: rotate done", c->name);
	free(c);
	return rc == 0 ? EXIT_DONE : cli_fail(&e);
}

int
cli_status(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dbpki status -c INVENTORY [--json]\n"
	    "  Per node: SSH reachable, role seen through libpq "
	    "(verify-full),\n"
	    "  served certificate serial and days to expiry, TLS, replication\n"
	    "  state and lag.  Exit 0 when all is well, 3 when a node needs\n"
	    "  attention.\n";
	struct dbpki_cluster *c;
	struct dbpki_err e;
	struct run_args a;
	char warn[CFG_PATH + 256];
	int rc;

	if (prepare(argc, argv, usage, 0, &a, &c, &rc))
		return rc;
	if (pki_ca_key_warning(c, warn, sizeof(warn)))
		log_warn("%s", warn);
	err_clear(&e);
	rc = engine_status(c, a.o.json, stdout, &e) == 0 ? EXIT_DONE
							 : cli_fail(&e);
	free(c);
	return rc;
}
