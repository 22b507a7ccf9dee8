/* rotate: what probe.sh says, what each node claims, who is the primary,
 * the --primary override, and archiving an expired CA. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbpki/engine_rotate.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

static char dir[64];

static const char inventory_fmt[] =
    "[cluster]\nname = t\nstate_dir = %s/state\n"
    "[node node1]\nhost = node1.example.com\naddress = 10.0.0.1\n"
    "role = primary\n"
    "[node node2]\nhost = node2.example.com\naddress = 10.0.0.2\n"
    "role = replica\n"
    "[node node3]\nhost = node3.example.com\naddress = 10.0.0.3\n"
    "role = replica\n"
    "[node app]\nhost = app.example.com\naddress = 10.0.0.9\n"
    "role = client\n";

static struct dbpki_cluster *
cluster(void)
{
	static struct dbpki_cluster c;
	struct dbpki_err e;
	char text[1024];

	snprintf(text, sizeof(text), inventory_fmt, dir);
	memset(&c, 0, sizeof(c));
	err_clear(&e);
	if (cfg_load_string("test.ini", text, &c, &e) != 0)
		fail_msg("inventory: %s", e.msg);
	return &c;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/dbpki-test-rotate.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A probe of node i from a probe.sh line ("" for an unreachable node). */
static void
probe(struct dbpki_cluster *c, struct probe_node *v, int i, const char *line)
{
	struct dbpki_err e;

	memset(&v[i], 0, sizeof(v[i]));
	v[i].n = &c->nodes[i];
	v[i].probed = cfg_is_database(&c->nodes[i]);
	err_clear(&e);
	if (line[0] == '\0')
		snprintf(v[i].error, sizeof(v[i].error),
		    "node %s: connection refused", c->nodes[i].name);
	else
		assert_int_equal(probe_parse(line, &v[i], &e), 0);
	probe_classify(&v[i]);
}

#define PRIMARY_UP                                                             \
	"node: x\nDBPKI-PROBE data=yes running=yes sql=yes recovery=f "        \
	"timeline=1 state=in_production sysid=7311 signal=no "                 \
	"receiver=-\nDBPKI-STEP-OK\n"
#define PRIMARY_TL2                                                            \
	"DBPKI-PROBE data=yes running=yes sql=yes recovery=f timeline=2 "      \
	"state=in_archive_recovery sysid=7311 signal=no receiver=-\n"
#define REPLICA_DOWNSTREAM                                                     \
	"DBPKI-PROBE data=yes running=yes sql=yes recovery=t timeline=1 "      \
	"state=in_archive_recovery sysid=7311 signal=standby receiver=none\n"
#define REPLICA_NOSQL                                                          \
	"DBPKI-PROBE data=yes running=yes sql=no recovery=- timeline=1 "       \
	"state=in_archive_recovery sysid=7311 signal=standby receiver=-\n"
#define PRIMARY_NOSQL                                                          \
	"DBPKI-PROBE data=yes running=yes sql=no recovery=- timeline=1 "       \
	"state=in_production sysid=7311 signal=no receiver=-\n"
#define STOPPED_STANDBY                                                        \
	"DBPKI-PROBE data=yes running=no sql=no recovery=- timeline=1 "        \
	"state=shut_down_in_recovery sysid=7311 signal=standby receiver=-\n"
#define STOPPED_PRIMARY                                                        \
	"DBPKI-PROBE data=yes running=no sql=no recovery=- timeline=3 "        \
	"state=shut_down sysid=7311 signal=no receiver=-\n"
#define EMPTY                                                                  \
	"DBPKI-PROBE data=no running=no sql=no recovery=- timeline=- "         \
	"state=none sysid=- signal=no receiver=-\n"

static void
test_parse_and_classify(void **state)
{
	static const struct {
		const char *out;
		enum probe_claim claim;
		const char *desc;
	} cases[] = {
	    {PRIMARY_UP, CLAIM_PRIMARY, "in production, timeline 1"},
	    /* the server's own answer wins over a lagging checkpoint */
	    {PRIMARY_TL2, CLAIM_PRIMARY, "in production, timeline 2"},
	    {REPLICA_DOWNSTREAM, CLAIM_REPLICA,
		"in archive recovery, not streaming"},
	    {REPLICA_NOSQL, CLAIM_REPLICA,
		"in archive recovery, streaming unknown (no SQL access)"},
	    {PRIMARY_NOSQL, CLAIM_PRIMARY, "in production, timeline 1"},
	    {STOPPED_STANDBY, CLAIM_REPLICA,
		"not running (shut down in recovery, standby.signal): would "
		"start as a standby"},
	    {STOPPED_PRIMARY, CLAIM_PRIMARY,
		"not running (shut down), timeline 3; would start as a "
		"primary"},
	    {EMPTY, CLAIM_NONE, "no data directory"},
	    {"DBPKI-PROBE data=yes running=yes sql=no recovery=- timeline=- "
	     "state=starting_up sysid=1 signal=no receiver=-\n",
		CLAIM_UNKNOWN, "running, cluster state starting up"},
	};
	struct dbpki_cluster *c = cluster();
	struct probe_node v[4];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		probe(c, v, 1, cases[i].out);
		assert_int_equal(v[1].claim, cases[i].claim);
		assert_string_equal(v[1].desc, cases[i].desc);
	}
	probe(c, v, 1, "");
	assert_int_equal(v[1].claim, CLAIM_UNREACHABLE);
}

static void
test_parse_refuses_garbage(void **state)
{
	static const char *const bad[] = {
	    "no probe line at all\nDBPKI-STEP-OK\n",
	    "DBPKI-PROBE data=yes running=maybe\n",
	    "DBPKI-PROBE data=yes state=in'production\n",
	    "DBPKI-PROBE data=yes junk\n",
	    "DBPKI-PROBE data=yes state=\n",
	};
	struct dbpki_cluster *c = cluster();
	struct probe_node p;
	struct dbpki_err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.n = &c->nodes[1];
		err_clear(&e);
		assert_int_equal(probe_parse(bad[i], &p, &e), DBPKI_E_REMOTE);
		assert_non_null(strstr(e.msg, "node node2"));
	}
}

static void
test_summary(void **state)
{
	struct dbpki_cluster *c = cluster();
	struct probe_node v[4];
	char out[1024];

	(void)state;
	probe(c, v, 0, PRIMARY_UP);
	probe(c, v, 1, REPLICA_DOWNSTREAM);
	probe(c, v, 2, EMPTY);
	memset(&v[3], 0, sizeof(v[3]));
	v[3].n = &c->nodes[3];
	probe_summary(v, 4, out, sizeof(out));
	assert_string_equal(out, "primary: node1 (in production, timeline 1); "
				 "replica: node2 (in archive recovery, not "
				 "streaming); empty: node3 (no data "
				 "directory)");
}

static int
judge(struct dbpki_cluster *c, const char *p1, const char *p2, const char *p3,
    int forced, struct dbpki_err *e)
{
	struct probe_node v[4];

	probe(c, v, 0, p1);
	probe(c, v, 1, p2);
	probe(c, v, 2, p3);
	memset(&v[3], 0, sizeof(v[3]));
	v[3].n = &c->nodes[3];
	err_clear(e);
	return probe_judge(c, v, 4, forced, e);
}

static void
test_judge(void **state)
{
	struct dbpki_cluster *c = cluster();
	struct dbpki_err e;

	(void)state;
	/* the inventory is right */
	assert_int_equal(
	    judge(c, PRIMARY_UP, REPLICA_DOWNSTREAM, STOPPED_STANDBY, 0, &e),
	    0);
	/* a replica with an empty data directory is cloned: fine */
	assert_int_equal(judge(c, PRIMARY_UP, EMPTY, REPLICA_NOSQL, 0, &e), 0);

	/* the inventory names a replica */
	assert_int_equal(
	    judge(c, REPLICA_DOWNSTREAM, PRIMARY_UP, STOPPED_STANDBY, 0, &e),
	    DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "the inventory says node1 is the "
				      "primary, but it is not (in archive "
				      "recovery, not streaming)"));
	assert_non_null(strstr(e.msg, "node2 is (in production, timeline 1)"));
	assert_non_null(strstr(e.msg, "--primary node2"));
	assert_non_null(strstr(e.msg, "Nothing was changed"));

	/* two primaries, one of them stopped */
	assert_int_equal(
	    judge(c, PRIMARY_UP, PRIMARY_TL2, STOPPED_PRIMARY, 0, &e),
	    DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "3 nodes claim to be primary"));
	assert_non_null(strstr(e.msg, "node1 (in production, timeline 1)"));
	assert_non_null(strstr(e.msg, "node2 (in production, timeline 2)"));
	assert_non_null(strstr(e.msg, "node3 (not running"));
	assert_non_null(strstr(e.msg, "--primary NAME"));

	/* no primary at all */
	assert_int_equal(
	    judge(c, STOPPED_STANDBY, REPLICA_DOWNSTREAM, EMPTY, 0, &e),
	    DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "no database node is a primary"));

	/* the inventory's primary holds no data: rotate never initdbs */
	assert_int_equal(
	    judge(c, EMPTY, REPLICA_DOWNSTREAM, REPLICA_NOSQL, 0, &e),
	    DBPKI_E_CONFIG);

	/* a node that cannot be asked: refuse, whatever the others say */
	assert_int_equal(
	    judge(c, PRIMARY_UP, "", REPLICA_DOWNSTREAM, 0, &e), DBPKI_E_SSH);
	assert_non_null(strstr(e.msg, "node node2: connection refused"));
	assert_non_null(strstr(e.msg, "--skip-node"));
	assert_int_equal(
	    judge(c, PRIMARY_UP, "", REPLICA_DOWNSTREAM, 1, &e), DBPKI_E_SSH);
}

static void
test_judge_conf(void **state)
{
	struct dbpki_cluster *c = cluster();
	struct dbpki_err e;
	int forced;

	(void)state;
	/* the primary's files would not load: restarting it would keep it
	 * down, so refuse first (with --primary too) */
	for (forced = 0; forced <= 1; forced++) {
		assert_int_equal(
		    judge(c,
			"DBPKI-PROBE-CONF FATAL:  \x1b[1minvalid value for "
			"parameter \"max_connections\": \"plenty\"\n"
			"DBPKI-PROBE data=yes running=yes sql=yes recovery=f "
			"timeline=1 state=in_production sysid=7311 signal=no "
			"receiver=- conf=bad\n",
			REPLICA_DOWNSTREAM, EMPTY, forced, &e),
		    DBPKI_E_CONFIG);
		assert_non_null(strstr(e.msg, "the primary node1 could not "
					      "start again"));
		assert_non_null(strstr(e.msg, "invalid value for parameter "
					      "\"max_connections\""));
		assert_null(strchr(e.msg, 0x1b));
	}
	/* a replica's bad files do not matter: join rewrites them */
	assert_int_equal(
	    judge(c, PRIMARY_UP,
		"DBPKI-PROBE data=yes running=yes sql=yes recovery=t "
		"timeline=1 state=in_archive_recovery sysid=7311 "
		"signal=standby receiver=none conf=bad\n",
		EMPTY, 0, &e),
	    0);
}

static void
test_judge_forced(void **state)
{
	struct dbpki_cluster *c = cluster();
	struct dbpki_err e;

	(void)state;
	/* two primaries: --primary decides */
	assert_int_equal(
	    judge(c, PRIMARY_UP, PRIMARY_TL2, REPLICA_DOWNSTREAM, 1, &e), 0);
	/* --primary names a node in recovery: never promoted by dbpki */
	assert_int_equal(judge(c, REPLICA_DOWNSTREAM, PRIMARY_UP, EMPTY, 1, &e),
	    DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "--primary node1: node1 is in archive "
				      "recovery, not streaming, not a "
				      "primary"));
	assert_non_null(strstr(e.msg, "pg_ctl promote"));
	/* a stopped primary may be named: restart starts it */
	assert_int_equal(judge(c, STOPPED_PRIMARY, REPLICA_DOWNSTREAM,
			     STOPPED_STANDBY, 1, &e),
	    0);
}

static void
test_override(void **state)
{
	struct dbpki_cluster *c = cluster();
	struct dbpki_err e;

	(void)state;
	err_clear(&e);
	assert_int_equal(
	    rotate_override_primary(c, "node9", &e), DBPKI_E_USAGE);
	assert_non_null(strstr(e.msg, "--primary node9: no such node"));
	assert_int_equal(rotate_override_primary(c, "app", &e), DBPKI_E_USAGE);
	assert_non_null(strstr(e.msg, "app is a client node"));
	assert_int_equal(cfg_primary(c), &c->nodes[0]);

	assert_int_equal(rotate_override_primary(c, "node1", &e), 0);
	assert_int_equal(cfg_primary(c), &c->nodes[0]);
	assert_int_equal(rotate_override_primary(c, "node2", &e), 0);
	assert_int_equal(cfg_primary(c), &c->nodes[1]);
	assert_int_equal(c->nodes[0].role, ROLE_REPLICA);
	assert_int_equal(c->nodes[2].role, ROLE_REPLICA);
	assert_int_equal(c->nodes[3].role, ROLE_CLIENT);
}

static void
test_ca_archive(void **state)
{
	struct dbpki_cluster *c = cluster();
	struct pki_index idx = {0};
	struct dbpki_err e;
	char arch[CFG_PATH], p[CFG_PATH + 32], old[PKI_SERIAL_HEX];
	X509 *x = NULL;
	struct stat st;
	size_t i;
	int active = 0, superseded = 0;

	(void)state;
	err_clear(&e);
	assert_int_equal(pki_ca_archive(c, arch, &e), DBPKI_E_NOCA);
	assert_int_equal(pki_ca_init(c, &e), 0);
	assert_int_equal(pki_ca_load_cert(c, &x, &e), 0);
	pki_cert_serial_hex(x, old);
	X509_free(x);
	x = NULL;

	assert_int_equal(pki_ca_archive(c, arch, &e), 0);
	assert_non_null(strstr(arch, "/state/ca/archive/"));
	snprintf(p, sizeof(p), "%s/dbca.key", arch);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(p, sizeof(p), "%s/dbca.crt", arch);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(pki_ca_load_cert(c, &x, &e), DBPKI_E_NOCA);

	/* a new CA can be made; the old one stays in the index, superseded */
	assert_int_equal(pki_ca_init(c, &e), 0);
	assert_int_equal(pki_index_load(c, &idx, &e), 0);
	for (i = 0; i < idx.n; i++) {
		if (strcmp(idx.v[i].kind, "ca") != 0)
			continue;
		active += idx.v[i].status == PKI_ACTIVE;
		superseded += idx.v[i].status == PKI_SUPERSEDED &&
			      strcmp(idx.v[i].serial, old) == 0;
	}
	pki_index_free(&idx);
	assert_int_equal(active, 1);
	assert_int_equal(superseded, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_and_classify),
	    cmocka_unit_test(test_parse_refuses_garbage),
	    cmocka_unit_test(test_summary),
	    cmocka_unit_test(test_judge),
	    cmocka_unit_test(test_judge_conf),
	    cmocka_unit_test(test_judge_forced),
	    cmocka_unit_test(test_override),
	    cmocka_unit_test(test_ca_archive),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
