/* pgloop: how long a PostgreSQL server cannot be reached, seen by a client
 * that keeps opening new connections (tests/bench/rotate.sh).
 *
 *   pgloop --stop FILE --host H --ca FILE [--hostaddr A] [--port P]
 *          [--cert F --key F]
 *
 * Opens one verify-full connection after another (pg_probe_node: connect,
 * read the served certificate, SELECT pg_is_in_recovery()) until FILE
 * exists, then prints one line:
 *
 *   max_gap_ms=N median_ms=N ok=N failed=N
 *
 * max_gap_ms is the longest time between the ends of two consecutive
 * successful probes; median_ms the median of those intervals (the probe
 * period, i.e. the resolution).  One process, no fork per probe, so the
 * period stays short even on a busy machine.  Exit 0, or 2 on bad usage.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbpki/err.h"
#include "dbpki/pg.h"
#include "dbpki/util.h"

#define MAX_PROBES 1000000

static void
usage(void)
{
	fprintf(stderr, "usage: pgloop --stop FILE --host H --ca FILE "
			"[--hostaddr A] [--port P] [--cert F --key F]\n");
	exit(2);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"stop", required_argument, NULL, 's'},
	    {"host", required_argument, NULL, 'h'},
	    {"hostaddr", required_argument, NULL, 'a'},
	    {"port", required_argument, NULL, 'p'},
	    {"ca", required_argument, NULL, 'C'},
	    {"cert", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {NULL, 0, NULL, 0},
	};
	const char *stop = NULL;
	struct pg_target t;
	struct pg_probe p;
	struct dbpki_err e;
	int64_t *gaps, last = -1, now, max = 0;
	long long v;
	long ok = 0, failed = 0, n = 0;
	int c;

	memset(&t, 0, sizeof(t));
	t.connect_timeout_s = 2;
	t.application_name = "pgloop";
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': stop = optarg; break;
		case 'h': t.host = optarg; break;
		case 'a': t.hostaddr = optarg; break;
		case 'p':
			if (util_parse_int(optarg, 1, 65535, &v) != 0)
				usage();
			t.port = (int)v;
			break;
		case 'C': t.sslrootcert = optarg; break;
		case 'c': t.sslcert = optarg; break;
		case 'k': t.sslkey = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || stop == NULL || t.host == NULL ||
	    t.sslrootcert == NULL)
		usage();
	if ((gaps = calloc(MAX_PROBES, sizeof(*gaps))) == NULL)
		return 1;
	while (access(stop, F_OK) != 0 && n < MAX_PROBES) {
		err_clear(&e);
		if (pg_probe_node(&t, &p, &e) != 0) {
			failed++;
			/* A refused connection returns at once: do not spin. */
			usleep(2000);
			continue;
		}
		ok++;
		now = util_mono_ms();
		if (last >= 0) {
			gaps[n++] = now - last;
			if (now - last > max)
				max = now - last;
		}
		last = now;
	}
	qsort(gaps, (size_t)n, sizeof(*gaps), cmp_i64);
	printf("max_gap_ms=%lld median_ms=%lld ok=%ld failed=%ld\n",
	    (long long)max, (long long)(n ? gaps[n / 2] : 0), ok, failed);
	free(gaps);
	return 0;
}
