/* cli_maint: renew and check, the commands a timer and a monitoring
 * system run.  Argument parsing and exit codes only. */
#include "dbpki/cli.h"
#include "dbpki/engine.h"
#include "dbpki/log.h"
#include "dbpki/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char renew_usage[] =
    "usage: dbpki renew -c INVENTORY [--force] [--json] [--skip-node "
    "NAME]...\n"
    "  Scheduled renewal, safe to run every hour.  Reads what the store "
    "holds\n"
    "  and what every database node serves (also an expired or untrusted\n"
    "  certificate).  Nothing expires within renew_before: prints one "
    "line\n"
    "  and changes nothing anywhere.  Otherwise: reissue, stage a new "
    "release\n"
    "  on every node, switch it, pg_reload_conf() (no restart), verify "
    "the\n"
    "  served serials and replication; any failure rolls every node "
    "back.\n"
    "  --force renews even when nothing is due.  Exit 0 done or nothing "
    "to\n"
    "  do, 1 failed, 2 usage, 3 verification failed (rolled back), 4 no "
    "CA,\n"
    "  5 another run holds the lock.  See docs/renew.md.\n";

int
cli_renew(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"force", no_argument, NULL, 'f'},
	    {"json", no_argument, NULL, 'j'},
	    {"skip-node", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct engine_opts o;
	struct dbpki_cluster *c;
	struct dbpki_err e;
	const char *inv = NULL;
	int ch, rc;

	memset(&o, 0, sizeof(o));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': inv = optarg; break;
		case 'f': o.force = 1; break;
		case 'j': o.json = 1; break;
		case 's':
			if (o.n_skip >= CFG_MAX_NODES) {
				fprintf(stderr, "%s", renew_usage);
				return EXIT_USAGE;
			}
			o.skip[o.n_skip++] = optarg;
			break;
		case 'h': printf("%s", renew_usage); return EXIT_DONE;
		default: fprintf(stderr, "%s", renew_usage); return EXIT_USAGE;
		}
	}
	if (optind != argc || inv == NULL) {
		fprintf(stderr, "%s", renew_usage);
		return EXIT_USAGE;
	}
	log_init(o.json, 0, 0);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return EXIT_FAILED;
	if ((rc = cli_load_cluster(inv, c)) == 0) {
		err_clear(&e);
		rc = engine_renew(c, &o, stdout, &e) == 0 ? EXIT_DONE
							  : cli_fail(&e);
	}
	free(c);
	return rc;
}

static const char check_usage[] =
    "usage: dbpki check -c INVENTORY [--warn 30d] [--crit 7d] [--json]\n"
    "                   [--prometheus FILE]\n"
    "  Monitoring plugin (Nagios/Icinga): the store's CA and leaves and "
    "the\n"
    "  certificate each database node serves.  One status line with "
    "perfdata\n"
    "  (or one JSON object); exit 0 OK, 1 WARNING, 2 CRITICAL, 3 "
    "UNKNOWN.\n"
    "  --warn/--crit: a duration (30d, 12h) or a number of days.  "
    "--prometheus\n"
    "  writes a node_exporter textfile NAME.prom atomically, into an "
    "existing\n"
    "  directory, never through a symlink.  Reads only; needs no root "
    "(a member\n"
    "  of the dbpki-monitor group will do).  See docs/monitoring.md.\n";

/* A duration ("30d") or a plain number of days ("30"). */
static int
parse_days(const char *s, int64_t *out)
{
	long long d;

	if (util_parse_duration(s, out) == 0)
		return 0;
	if (util_parse_int(s, 0, 36500, &d) != 0)
		return -1;
	*out = (int64_t)d * 86400;
	return 0;
}

static enum check_status
check_usage_error(const struct check_opts *o, const char *why)
{
	fprintf(stderr, "%s", check_usage);
	return engine_check_unknown(o, NULL, why, stdout);
}

int
cli_check(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"warn", required_argument, NULL, 'w'},
	    {"crit", required_argument, NULL, 'C'},
	    {"json", no_argument, NULL, 'j'},
	    {"prometheus", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct check_opts o = {30 * 86400, 7 * 86400, 0, NULL, NULL};
	const char *inv = NULL, *bad = NULL;
	struct dbpki_cluster *c;
	struct dbpki_err e;
	char why[DBPKI_ERR_MSG + 64];
	int ch, rc;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': inv = optarg; break;
		case 'w':
			if (parse_days(optarg, &o.warn) != 0)
				bad = "--warn wants a duration (30d, 12h) or "
				      "a number of days";
			break;
		case 'C':
			if (parse_days(optarg, &o.crit) != 0)
				bad = "--crit wants a duration (7d, 12h) or "
				      "a number of days";
			break;
		case 'j': o.json = 1; break;
		case 'p': o.prometheus = optarg; break;
		case 'h': printf("%s", check_usage); return CHECK_OK;
		default: bad = "unknown option or missing value"; break;
		}
	}
	/* Nagios: anything that keeps the plugin from judging is UNKNOWN. */
	if (bad != NULL || optind != argc || inv == NULL) {
		snprintf(why, sizeof(why), "usage: %s",
		    bad != NULL ? bad : "dbpki check -c INVENTORY");
		return check_usage_error(&o, why);
	}
	if (o.crit > o.warn)
		return check_usage_error(&o, "--crit must not exceed --warn");
	log_init(0, 1, 0);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return engine_check_unknown(&o, NULL, "out of memory", stdout);
	err_clear(&e);
	if (cfg_load(inv, c, &e) != 0) {
		snprintf(
		    why, sizeof(why), "cannot use the inventory: %s", e.msg);
		rc = engine_check_unknown(&o, NULL, why, stdout);
	} else {
		/* Upgrades never break a running cluster: a path the other
		 * commands now refuse is a WARNING here, with its fix, not a
		 * reason to stop watching the certificates. */
		err_clear(&e);
		/* The monitoring user may not see the SSH identity (under
		 * /root, say): not being allowed to look is no warning. */
		if (cfg_check_trust(c, UTIL_TP_UNSEEN_OK, &e) != 0) {
			snprintf(why, sizeof(why), "%s", e.msg);
			o.warning = why;
		}
		rc = engine_check(c, &o, stdout);
	}
	free(c);
	return rc;
}
