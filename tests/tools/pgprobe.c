/* pgprobe: drive the pg module from shell tests.
 *
 *   pgprobe probe OPTIONS          print the probe of one node as key=value lines
 *   pgprobe repl  OPTIONS          one line per walsender of the node
 *   pgprobe wait  OPTIONS NAME...  wait until every NAME streams over SSL
 *
 * OPTIONS: --host H (required) --hostaddr A --port P --dbname D --user U
 *          --ca FILE (required) --cert FILE --key FILE --app NAME
 *          --connect-timeout S --timeout S (wait only, default 30)
 *
 * Exit: 0 success, 1 the pg module reported an error (its code name and
 * message on stderr as "pgprobe: CODE: MESSAGE"), 2 usage.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpki/err.h"
#include "dbpki/pg.h"
#include "dbpki/util.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: pgprobe probe|repl|wait --host H --ca FILE "
	    "[--hostaddr A] [--port P] [--dbname D] [--user U] [--cert F "
	    "--key F] [--app N] [--connect-timeout S] [--timeout S] "
	    "[NAME...]\n");
	exit(2);
}

static int
num(const char *s, long long max)
{
	long long v;

	if (util_parse_int(s, 0, max, &v) != 0)
		usage();
	return (int)v;
}

static int
do_probe(const struct pg_target *t, struct dbpki_err *e)
{
	struct pg_probe p;
	int r;

	if ((r = pg_probe_node(t, &p, e)) != 0)
		return r;
	printf("in_recovery=%d\nserial=%s\nnot_after=%" PRId64 "\n"
	       "sha256=%s\nsubject=%s\nprotocol=%s\ncipher=%s\n"
	       "server_version=%d\nverify_ok=%d\n",
	    p.in_recovery, p.serial_hex, p.not_after, p.sha256_hex, p.subject,
	    p.protocol, p.cipher, p.server_version, p.verify_ok);
	return 0;
}

static int
do_repl(const struct pg_target *t, struct dbpki_err *e)
{
	struct pg_repl *rows = NULL;
	int i, n, r;

	if ((r = pg_replication(t, &rows, &n, e)) != 0)
		return r;
	for (i = 0; i < n; i++)
		printf("name=%s addr=%s state=%s ssl=%d dn=%s lag=%" PRId64
		       "\n",
		    rows[i].application_name, rows[i].client_addr,
		    rows[i].state, rows[i].ssl, rows[i].ssl_client_dn,
		    rows[i].replay_lag_bytes);
	printf("rows=%d\n", n);
	free(rows);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'h'},
	    {"hostaddr", required_argument, NULL, 'a'},
	    {"port", required_argument, NULL, 'p'},
	    {"dbname", required_argument, NULL, 'd'},
	    {"user", required_argument, NULL, 'U'},
	    {"ca", required_argument, NULL, 'C'},
	    {"cert", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"app", required_argument, NULL, 'n'},
	    {"connect-timeout", required_argument, NULL, 'T'},
	    {"timeout", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	struct pg_target t;
	struct dbpki_err e;
	const char *cmd;
	int c, r, timeout = 30;

	memset(&t, 0, sizeof(t));
	err_clear(&e);
	if (argc < 2)
		usage();
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'h': t.host = optarg; break;
		case 'a': t.hostaddr = optarg; break;
		case 'p': t.port = num(optarg, 65535); break;
		case 'd': t.dbname = optarg; break;
		case 'U': t.user = optarg; break;
		case 'C': t.sslrootcert = optarg; break;
		case 'c': t.sslcert = optarg; break;
		case 'k': t.sslkey = optarg; break;
		case 'n': t.application_name = optarg; break;
		case 'T': t.connect_timeout_s = num(optarg, 3600); break;
		case 't': timeout = num(optarg, 86400); break;
		default: usage();
		}
	}
	if (strcmp(cmd, "probe") == 0 && optind == argc)
		r = do_probe(&t, &e);
	else if (strcmp(cmd, "repl") == 0 && optind == argc)
		r = do_repl(&t, &e);
	else if (strcmp(cmd, "wait") == 0) {
		r = pg_wait_streaming(&t, (const char *const *)argv + optind,
		    argc - optind, timeout, &e);
		if (r == 0)
			printf("streaming\n");
	} else
		usage();
	if (r != 0) {
		fprintf(stderr, "pgprobe: %s: %s\n", err_name(r), e.msg);
		return 1;
	}
	return 0;
}
