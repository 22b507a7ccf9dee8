/* dbpki: database-cluster PKI bootstrapper.  Dispatches to cli_*.c. */
#include "dbpki/cli.h"
#include "dbpki/log.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh2.h>

/* The Makefile passes both: the version from git describe (or the package's),
 * and where `make install` puts the runbooks the help texts name. */
#ifndef DBPKI_VERSION
#define DBPKI_VERSION "unknown"
#endif
#ifndef DBPKI_DOCDIR
#define DBPKI_DOCDIR "/usr/local/share/doc/dbpki"
#endif

/* Subcommands not built yet are weak, so each cli_*.c can land on its own;
 * main() reports an absent one instead of failing to link. */
#pragma weak cli_ca
#pragma weak cli_issue
#pragma weak cli_csr
#pragma weak cli_sign
#pragma weak cli_inspect
#pragma weak cli_match
#pragma weak cli_verify
#pragma weak cli_plan
#pragma weak cli_bootstrap
#pragma weak cli_rotate
#pragma weak cli_renew
#pragma weak cli_status
#pragma weak cli_check
#pragma weak cli_list
#pragma weak cli_revoke
#pragma weak cli_issue_client

struct command {
	const char *name;
	cli_fn fn;
	const char *help;
};

static const struct command commands[] = {
    {"ca", cli_ca, "init | import | export: the cluster CA (dbca)"},
    {"issue", cli_issue,
	"issue or refresh every leaf certificate in the store"},
    {"csr", cli_csr, "key + CSR for an external CA"},
    {"sign", cli_sign, "sign a CSR with dbca"},
    {"inspect", cli_inspect, "show a certificate"},
    {"match", cli_match, "does KEY belong to CERT"},
    {"verify", cli_verify, "verify CERT against a BUNDLE"},
    {"plan", cli_plan, "print every step, node and command of a playbook"},
    {"bootstrap", cli_bootstrap, "build a new cluster"},
    {"rotate", cli_rotate, "replace expired certificates, keep the data"},
    {"renew", cli_renew, "renew what expires soon, without downtime"},
    {"status", cli_status, "per node: role, served certificate, replication"},
    {"check", cli_check, "monitoring plugin (Nagios exit codes)"},
    {"list", cli_list, "every certificate ever issued, with filters"},
    {"revoke", cli_revoke, "revoke a certificate, ship the CRL, reload"},
    {"issue-client", cli_issue_client,
	"client certificate + pg_service.conf for an application role"},
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(
	    f, "usage: dbpki COMMAND [options]   (dbpki COMMAND --help)\n\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].fn != NULL)
			fprintf(f, "  %-10s %s\n", commands[i].name,
			    commands[i].help);
	fprintf(f, "\nexit codes: 0 done, 1 failed, 2 usage or inventory "
		   "error, 3 verification failed,\n            4 CA not "
		   "initialised, 5 another run holds the lock\n");
	fprintf(f,
	    "\nmanual: man dbpki, man dbpki-inventory; the runbooks "
	    "docs/NAME.md\nare in the source tree and in %s/docs/\n",
	    DBPKI_DOCDIR);
}

/* fds 0-2 must be open so that no file we open becomes stdout by accident. */
static void
sanitise_stdfd(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) != -1 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
}

static void
sanitise_process(void)
{
	struct rlimit no_core = {0, 0};

	sanitise_stdfd();
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	/* Private keys live in this process's memory: never dump it, and
	 * let no other process of the same user read it (ptrace, /proc). */
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int
main(int argc, char **argv)
{
	size_t i;
	int rc;

	sanitise_process();
	log_init(0, 0, 0);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_DONE;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("dbpki %s\n", DBPKI_VERSION);
		return EXIT_DONE;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		if (commands[i].fn == NULL) {
			log_error(
			    "'%s' is not available in this build", argv[1]);
			return EXIT_USAGE;
		}
		if (libssh2_init(0) != 0) {
			log_error("libssh2_init failed");
			return EXIT_FAILED;
		}
		rc = commands[i].fn(argc - 1, argv + 1);
		libssh2_exit();
		return rc;
	}
	log_error("unknown command '%.64s'; run: dbpki --help", argv[1]);
	return EXIT_USAGE;
}
