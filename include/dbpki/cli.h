/* cli: the subcommands.  Each cli_*.c only parses its arguments, calls the
 * modules below and maps the result to an exit code (see DESIGN.md). */
#ifndef DBPKI_CLI_H
#define DBPKI_CLI_H

#include "dbpki/config.h"
#include "dbpki/err.h"

enum cli_exit {
	EXIT_DONE = 0,
	EXIT_FAILED = 1,
	EXIT_USAGE = 2,  /* usage or inventory error */
	EXIT_VERIFY = 3, /* verification failed */
	EXIT_NOCA = 4,   /* CA not initialised */
	EXIT_LOCKED = 5, /* another run holds the lock */
};

/* Map a DBPKI_E_* code to the exit code above. */
int cli_exit_code(int err);

/* Print e as "dbpki: error: ..." and return its exit code. */
int cli_fail(const struct dbpki_err *e);

/* Load the inventory named by -c; on failure print the error and return the
 * exit code (2), else 0. */
int cli_load_cluster(const char *path, struct dbpki_cluster *c);

/* Each subcommand: argv[0] is the subcommand's name, getopt-ready. */
typedef int (*cli_fn)(int argc, char **argv);

int cli_ca(int argc, char **argv);
int cli_issue(int argc, char **argv);
int cli_csr(int argc, char **argv);
int cli_sign(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_match(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_plan(int argc, char **argv);
int cli_bootstrap(int argc, char **argv);
int cli_rotate(int argc, char **argv);
int cli_renew(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_list(int argc, char **argv);         /* cli_certs.c */
int cli_revoke(int argc, char **argv);       /* cli_certs.c */
int cli_issue_client(int argc, char **argv); /* cli_certs.c */

#endif
