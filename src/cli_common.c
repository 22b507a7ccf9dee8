#include "dbpki/cli.h"
#include "dbpki/log.h"
#include "dbpki/template.h"

#include <limits.h>
#include <stdlib.h>

int
cli_exit_code(int err)
{
	switch (err) {
	case DBPKI_OK: return EXIT_DONE;
	case DBPKI_E_USAGE:
	case DBPKI_E_CONFIG: return EXIT_USAGE;
	case DBPKI_E_VERIFY: return EXIT_VERIFY;
	case DBPKI_E_NOCA: return EXIT_NOCA;
	case DBPKI_E_LOCKED: return EXIT_LOCKED;
	default: return EXIT_FAILED;
	}
}

int
cli_fail(const struct dbpki_err *e)
{
	log_error("%s", e->msg);
	return cli_exit_code(e->code);
}

int
cli_load_cluster(const char *path, struct dbpki_cluster *c)
{
	char dir[PATH_MAX];
	struct dbpki_err e;

	if (path == NULL) {
		log_error("no inventory given; use -c FILE (see dbpki --help)");
		return EXIT_USAGE;
	}
	err_clear(&e);
	if (cfg_load(path, c, &e) != 0 || cfg_check_trust(c, 0, &e) != 0)
		return cli_fail(&e);
	/* The templates run as shell on every node and the playbooks decide
	 * what runs: their directories pass the trust-path check before
	 * anything is created or any node contacted, not at the first step
	 * that renders one. */
	if (tpl_find_data_dir("templates", dir, sizeof(dir), &e) != 0 ||
	    tpl_find_data_dir("playbooks", dir, sizeof(dir), &e) != 0)
		return cli_fail(&e);
	return 0;
}
