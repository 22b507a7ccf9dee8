/* config: the inventory schema, its validation and its error messages. */
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

#include "dbpki/config.h"

static const char *const base_ini =
    "[cluster]\n"                                     /* 1 */
    "name = prod-db\n"                                /* 2 */
    "platform = postgres          ; postgres | cms\n" /* 3 */
    "state_dir = /var/lib/dbpki/prod-db\n"            /* 4 */
    "renew_before = 30d\n"                            /* 5 */
    "parallel = 16\n"                                 /* 6 */
    "[ca]\n"                                          /* 7 */
    "common_name = prod-db dbca\n"                    /* 8 */
    "key = ec:P-384\n"                                /* 9 */
    "validity = 3650d\n"                              /* 10 */
    "[server]\n"                                      /* 11 */
    "key = rsa:3072\n"                                /* 12 */
    "mode = per-node\n"                               /* 13 */
    "extra_san = db.example.com, 10.0.0.100\n"        /* 14 */
    "[ssh]\n"                                         /* 15 */
    "user = postgres\n"                               /* 16 */
    "known_hosts = /root/.ssh/known_hosts\n"          /* 17 */
    "connect_timeout = 10s\n"                         /* 18 */
    "[postgres]\n"                                    /* 19 */
    "port = 5432\n"                                   /* 20 */
    "[node db1]\n"                                    /* 21 */
    "host = db1.example.com\n"                        /* 22 */
    "address = 10.0.0.11\n"                           /* 23 */
    "role = primary\n"                                /* 24 */
    "[node db2]\n"                                    /* 25 */
    "host = db2.example.com\n"                        /* 26 */
    "address = 10.0.0.12\n"                           /* 27 */
    "role = replica\n"                                /* 28 */
    "port = 5433\n"                                   /* 29 */
    "cert_dir = /srv/db2/certs\n"                     /* 30 */
    "[node app1]\n"                                   /* 31 */
    "host = app1.example.com\n"                       /* 32 */
    "address = fd00::21\n"                            /* 33 */
    "role = client\n";                                /* 34 */

static void
test_valid_inventory(void **state)
{
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	struct dbpki_err e;

	(void)state;
	assert_int_equal(cfg_load_string("t.ini", base_ini, c, &e), 0);
	assert_string_equal(c->name, "prod-db");
	assert_int_equal(c->platform, PLATFORM_POSTGRES);
	assert_int_equal(c->renew_before, 30 * 86400);
	assert_int_equal(c->ca_key.alg, KEY_EC_P384);
	assert_int_equal(c->server_key.alg, KEY_RSA_3072);
	assert_int_equal(c->client_key.alg, KEY_EC_P256); /* default */
	assert_string_equal(c->client_common_name, "postgres");
	assert_int_equal(c->n_extra_san, 2);
	assert_string_equal(c->extra_san[0], "db.example.com");
	assert_string_equal(c->extra_san[1], "10.0.0.100");
	assert_int_equal(c->n_nodes, 3);
	assert_string_equal(cfg_primary(c)->name, "db1");
	assert_int_equal(c->nodes[0].line, 21);
	assert_int_equal(c->nodes[0].pg.port, 5432);
	/* per-node overrides, and defaults kept elsewhere */
	assert_int_equal(c->nodes[1].pg.port, 5433);
	assert_string_equal(c->nodes[1].pg.cert_dir, "/srv/db2/certs");
	assert_string_equal(
	    c->nodes[0].pg.cert_dir, "/var/lib/postgresql/dbpki");
	assert_int_equal(c->nodes[1].ssh.connect_timeout, 10);
	assert_int_equal(c->nodes[1].ssh.command_timeout, 300);
	assert_string_equal(c->nodes[2].address, "fd00::21");
	assert_int_equal(c->nodes[2].role, ROLE_CLIENT);
	assert_true(cfg_is_database(&c->nodes[1]));
	assert_false(cfg_is_database(&c->nodes[2]));
	free(c);
}

/* An override given before the [ssh] section still wins over it. */
/* [postgres] layout and its companions (issue 15): defaults, a node's own
 * value over the section's, and refusals naming the accepted values. */
static void
test_pg_layout(void **state)
{
	const char *ini =
	    "[cluster]\nname=x\nstate_dir=/s\n"
	    "[postgres]\nlayout=debian\ncluster=15/main\n"
	    "[node a]\nhost=a\naddress=127.0.0.1\nrole=primary\n"
	    "[node b]\nhost=b\naddress=127.0.0.2\nrole=replica\n"
	    "layout=pgdata\nlisten_localhost=yes\nstart_conf=auto\n"
	    "[ssh]\nknown_hosts=/k\n";
	static const char *const bad[][2] = {
	    {"layout=rhel", "is not one of: auto, debian, pgdata"},
	    {"cluster=main", "VERSION/NAME as pg_lsclusters lists it"},
	    {"cluster=15 main", "VERSION/NAME as pg_lsclusters lists it"},
	    {"cluster=15/../x", "VERSION/NAME as pg_lsclusters lists it"},
	    {"cluster=x15/main", "VERSION/NAME as pg_lsclusters lists it"},
	    {"listen_localhost=maybe", "is not one of: auto, yes, no"},
	    {"start_conf=manual", "is not one of: keep, auto"},
	};
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	struct dbpki_err e;
	char buf[512];
	size_t i;

	(void)state;
	assert_int_equal(cfg_load_string("t.ini", ini, c, &e), 0);
	assert_int_equal(c->nodes[0].pg.layout, LAYOUT_DEBIAN);
	assert_string_equal(c->nodes[0].pg.cluster, "15/main");
	assert_int_equal(c->nodes[0].pg.listen_localhost, TRI_AUTO);
	assert_int_equal(c->nodes[0].pg.start_conf, START_CONF_KEEP);
	assert_int_equal(c->nodes[1].pg.layout, LAYOUT_PGDATA);
	assert_int_equal(c->nodes[1].pg.listen_localhost, TRI_YES);
	assert_int_equal(c->nodes[1].pg.start_conf, START_CONF_AUTO);
	assert_string_equal(cfg_layout_name(c->nodes[1].pg.layout), "pgdata");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf),
		    "[cluster]\nname=x\nstate_dir=/s\n[postgres]\n%s\n"
		    "[node a]\nhost=a\naddress=127.0.0.1\nrole=primary\n"
		    "[ssh]\nknown_hosts=/k\n",
		    bad[i][0]);
		err_clear(&e);
		if (cfg_load_string("t.ini", buf, c, &e) != DBPKI_E_CONFIG ||
		    strstr(e.msg, bad[i][1]) == NULL) {
			print_error("%s: expected '%s', got: %s\n", bad[i][0],
			    bad[i][1], e.msg);
			free(c);
			fail();
		}
	}
	free(c);
}

static void
test_override_order(void **state)
{
	const char *ini = "[cluster]\nname=x\nstate_dir=/s\n"
			  "[node a]\nhost=a\naddress=127.0.0.1\nrole=primary\n"
			  "ssh_port=2222\nport=5433\n"
			  "[ssh]\nport=22\nknown_hosts=/k\n";
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	struct dbpki_err e;

	(void)state;
	assert_int_equal(cfg_load_string("t.ini", ini, c, &e), 0);
	assert_int_equal(c->nodes[0].ssh.port, 2222);
	assert_int_equal(c->nodes[0].pg.port, 5433);
	assert_int_equal(c->ssh.port, 22);
	free(c);
}

struct bad_case {
	const char *find;    /* line of base_ini to replace (prefix match) */
	const char *replace; /* replacement line(s), or NULL to append */
	const char *expect;  /* substring of the error */
};

static const struct bad_case bad_cases[] = {
    {"host = db1.example.com", "host = db1; rm -rf /",
	"t.ini:22: [node db1] host: 'db1; rm -rf /' is not valid"},
    {"host = db1.example.com", "host = $(touch /tmp/pwned)",
	"t.ini:22: [node db1] host"},
    {"host = db1.example.com", "host = `id`", "t.ini:22:"},
    {"host = db1.example.com", "host = -db1", "t.ini:22:"},
    {"host = db1.example.com", "host = 10.0.0.11", "not an address"},
    {"[node db2]", "[node ../x]", "t.ini:25: [node ../x]: node names"},
    {"[node db2]", "[node a..b]", "t.ini:25:"},
    {"[node db2]", "[node db/2]", "t.ini:25:"},
    {"[node db2]", "[node db1]",
	"t.ini:25: [node db1] is defined twice (first at line 21)"},
    {"address = 10.0.0.12", "address = db2.example.com",
	"t.ini:27: [node db2] address: 'db2.example.com' is not valid: "
	"expected an IPv4"},
    {"address = 10.0.0.12", "address = 10.0.0.256", "t.ini:27:"},
    {"address = 10.0.0.12", "address = 10.0.0.11",
	"address 10.0.0.11 port 22 is also node db1's"},
    {"host = db2.example.com", "host = DB1.example.com",
	"host DB1.example.com is also node db1's"},
    {"role = replica", "role = primary", "2 nodes have role = primary"},
    {"role = primary", "role = replica", "0 nodes have role = primary"},
    {"role = replica", "role = standby",
	"t.ini:28: [node db2] role: 'standby' is not one of: primary, replica, "
	"client"},
    {"parallel = 16", "paralel = 16",
	"t.ini:6: [cluster]: unknown key 'paralel'"},
    {"[postgres]", "[postgresql]", "t.ini:19: unknown section [postgresql]"},
    {"parallel = 16", "parallel = 0",
	"t.ini:6: [cluster] parallel: '0' is not a whole number from 1 to 256"},
    {"parallel = 16", "parallel = 16x", "t.ini:6:"},
    {"parallel = 16", "parallel = 16\nparallel = 8",
	"t.ini:7: [cluster] parallel: given twice (first at line 6)"},
    {"renew_before = 30d", "renew_before = 30",
	"t.ini:5: [cluster] renew_before: '30' is not a duration"},
    {"renew_before = 30d", "renew_before = 99999d", "t.ini:5:"},
    {"renew_before = 30d", "renew_before = -1d", "t.ini:5:"},
    {"renew_before = 30d", "renew_before = 10s", "t.ini:5:"},
    {"connect_timeout = 10s", "connect_timeout = 0s", "t.ini:18:"},
    {"key = ec:P-384", "key = rsa:2048",
	"t.ini:9: [ca] key: 'rsa:2048' is not an accepted key"},
    {"key = ec:P-384", "key = rsa:1024", "nothing weaker"},
    {"platform = postgres", "platform = oracle", "t.ini:3:"},
    {"state_dir = /var/lib/dbpki/prod-db", "state_dir = var/lib/dbpki",
	"t.ini:4: [cluster] state_dir: 'var/lib/dbpki' is not valid: expected "
	"an absolute path"},
    {"state_dir = /var/lib/dbpki/prod-db", "state_dir = /var/lib/../../etc",
	"t.ini:4:"},
    {"state_dir = /var/lib/dbpki/prod-db", "state_dir = /tmp/a b", "t.ini:4:"},
    {"state_dir = /var/lib/dbpki/prod-db", "state_dir = /tmp/$HOME",
	"t.ini:4:"},
    {"name = prod-db", "name = prod;db", "t.ini:2:"},
    {"name = prod-db", "name = \"prod\"", "t.ini:2:"},
    {"user = postgres", "user = root'", "t.ini:16:"},
    {"extra_san = db.example.com, 10.0.0.100",
	"extra_san = db.example.com, bad_host", "t.ini:14: [server] extra_san"},
    {"extra_san = db.example.com, 10.0.0.100", "extra_san = a,,b", "t.ini:14:"},
    {"port = 5432", "port = 65536", "t.ini:20: [postgres] port"},
    {"port = 5433", "port = 0", "t.ini:29: [node db2] port"},
    {"cert_dir = /srv/db2/certs", "cert_dir = /srv/`id`",
	"t.ini:30: [node db2] cert_dir"},
    {"cert_dir = /srv/db2/certs", "bogus = 1",
	"t.ini:30: [node db2]: unknown key 'bogus'"},
    {"cert_dir = /srv/db2/certs", "  cert_dir = /x",
	"t.ini:30: [node db2] line starts with blanks"},
    {"cert_dir = /srv/db2/certs", "host_key_policy = yolo",
	"t.ini:30: [node db2] host_key_policy: 'yolo' is not one of: strict, "
	"accept-new"},
    {"cert_dir = /srv/db2/certs", "allowed_networks = 10.0.0.0/33",
	"t.ini:30:"},
    {"cert_dir = /srv/db2/certs", "allowed_networks = 10.0.0.0", "t.ini:30:"},
    {"role = client", "", "t.ini:31: [node app1]: 'role' is required"},
    {"address = fd00::21", "", "t.ini:31: [node app1]: 'address' is required"},
    {"[node app1]",
	"[node app1]\nhost = x\naddress = 1.2.3.4\nrole = client\n[node]",
	"unknown section [node]"},
    {"common_name = prod-db dbca", "common_name = prod-db\x01", "t.ini:8:"},
    {"mode = per-node", "this is not ini", "t.ini:13: not an INI line"},
    {"mode = per-node", "mode = per-node\n[ca]",
	"t.ini:14: [ca] appears twice (first at line 7)"},
    /* A key is never dropped: before the first section it is an error
     * (it was ignored, and plan exited 0). */
    {"[cluster]", "name = evil\n[cluster]",
	"t.ini:1: 'name' is outside any section"},
    {"[cluster]", "; a comment\n\nstate_dir = /x\n[cluster]",
	"t.ini:3: 'state_dir' is outside any section"},
    /* An indented header: inih reads it as a continuation of the key
     * above, the reader as a header; the keys below must not land in
     * either silently. */
    {"[node db2]", "  [node db2]",
	"t.ini:25: [node db2] line starts with blanks, so it reads as a "
	"continuation of 'role' in [node db1]"},
    {"[ca]", "\t[ca]", "t.ini:7: [ca] line starts with blanks"},
    /* A BOM anywhere but at the very start is not skipped: refused. */
    {"[ca]", "\xEF\xBB\xBF[ca]", "t.ini:7: a UTF-8 byte order mark inside"},
    {"name = prod-db", "\xEF\xBB\xBFname = prod-db",
	"t.ini:2: a UTF-8 byte order mark"},
    {"name = prod-db", "name = prod\xEF\xBB\xBF-db", "t.ini:2: a UTF-8 byte"},
};

static char *
mutate(const struct bad_case *bc)
{
	const char *at = strstr(base_ini, bc->find);
	size_t pre, len;
	char *out;

	assert_non_null(at);
	pre = (size_t)(at - base_ini);
	len = strlen(base_ini) + strlen(bc->replace) + 2;
	out = calloc(1, len);
	assert_non_null(out);
	memcpy(out, base_ini, pre);
	strcat(out, bc->replace);
	strcat(out, at + strlen(bc->find));
	return out;
}

static void
test_bad_inventories(void **state)
{
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	struct dbpki_err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		char *ini = mutate(&bad_cases[i]);

		err_clear(&e);
		if (cfg_load_string("t.ini", ini, c, &e) != DBPKI_E_CONFIG ||
		    strstr(e.msg, bad_cases[i].expect) == NULL) {
			print_error("case %zu (%s -> %s)\n  expected: %s\n  "
				    "got:      %s\n",
			    i, bad_cases[i].find, bad_cases[i].replace,
			    bad_cases[i].expect, e.msg);
			free(ini);
			free(c);
			fail();
		}
		free(ini);
	}
	free(c);
}

static void
test_long_line(void **state)
{
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	struct dbpki_err e;
	char ini[1024];

	(void)state;
	snprintf(ini, sizeof(ini), "[cluster]\nname = %0250d\n", 1);
	assert_int_equal(cfg_load_string("t.ini", ini, c, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "t.ini:2: line longer than"));
	free(c);
}

static void
test_no_nodes(void **state)
{
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	struct dbpki_err e;

	(void)state;
	assert_int_equal(
	    cfg_load_string("t.ini",
		"[cluster]\nname=a\nstate_dir=/s\n[node db1]\n", c, &e),
	    DBPKI_E_CONFIG);
	assert_non_null(
	    strstr(e.msg, "t.ini:4: [node db1]: 'host' is required"));
	assert_int_equal(cfg_load_string("t.ini",
			     "[cluster]\nname=a\nstate_dir=/s\n", c, &e),
	    DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "no [node NAME] sections"));
	free(c);
}

static void
test_cms_rules(void **state)
{
	const char *six = "[cluster]\nname=c\nplatform=cms\nstate_dir=/s\n"
			  "[ssh]\nknown_hosts=/k\n"
			  "[node a]\nhost=a\naddress=10.0.0.1\nrole=primary\n"
			  "[node b]\nhost=b\naddress=10.0.0.2\nrole=replica\n"
			  "[node c]\nhost=c\naddress=10.0.0.3\nrole=replica\n"
			  "[node d]\nhost=d\naddress=10.0.0.4\nrole=replica\n"
			  "[node e]\nhost=e\naddress=10.0.0.5\nrole=replica\n"
			  "[node f]\nhost=f\naddress=10.0.0.6\nrole=replica\n";
	const char *cn = "[cluster]\nname=c\nplatform=cms\nstate_dir=/s\n"
			 "[client]\ncommon_name=app\n[ssh]\nknown_hosts=/k\n"
			 "[node a]\nhost=a\naddress=10.0.0.1\nrole=primary\n";
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	struct dbpki_err e;

	(void)state;
	assert_int_equal(cfg_load_string("t.ini", six, c, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "6 database nodes"));
	assert_int_equal(cfg_load_string("t.ini", cn, c, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "CN to be 'postgres'"));
	free(c);
}

/* A UTF-8 BOM at the start is skipped like inih skips it: the first
 * section's keys all count (they were dropped: a [ca] key = ec:P-384 came
 * out P-256, a first [node] vanished). */
static void
test_bom(void **state)
{
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	struct dbpki_err e;
	char *ini = malloc(strlen(base_ini) + 4);
	const char *first_ca = "[ca]\nkey = ec:P-384\n[cluster]\nname = b\n"
			       "state_dir = /s\n[ssh]\nknown_hosts = /k\n"
			       "[node n1]\nhost = h\naddress = 10.0.0.1\n"
			       "role = primary\n";

	(void)state;
	assert_non_null(ini);
	snprintf(ini, strlen(base_ini) + 4, "\xEF\xBB\xBF%s", base_ini);
	err_clear(&e);
	assert_int_equal(cfg_load_string("t.ini", ini, c, &e), 0);
	assert_string_equal(c->name, "prod-db");
	assert_int_equal(c->renew_before, 30 * 86400);
	assert_int_equal(c->ca_key.alg, KEY_EC_P384);
	assert_int_equal(c->n_nodes, 3);
	free(ini);
	ini = malloc(strlen(first_ca) + 4);
	assert_non_null(ini);
	snprintf(ini, strlen(first_ca) + 4, "\xEF\xBB\xBF%s", first_ca);
	assert_int_equal(cfg_load_string("t.ini", ini, c, &e), 0);
	assert_int_equal(c->ca_key.alg, KEY_EC_P384);
	free(ini);
	/* Line numbers still count from the BOM's line. */
	assert_int_equal(
	    cfg_load_string(
		"t.ini", "\xEF\xBB\xBF[cluster]\nname = a\nbogus = 1\n", c, &e),
	    DBPKI_E_CONFIG);
	assert_non_null(
	    strstr(e.msg, "t.ini:3: [cluster]: unknown key 'bogus'"));
	free(c);
}

/* inih cuts a section name at 49 bytes; the reader does not.  A long node
 * name (63 is allowed) must still be one section to both. */
static void
test_long_node_name(void **state)
{
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	struct dbpki_err e;
	char ini[1024], name[64];

	(void)state;
	memset(name, 'n', 63);
	name[63] = '\0';
	snprintf(ini, sizeof(ini),
	    "[cluster]\nname = b\nstate_dir = /s\n[ssh]\nknown_hosts = /k\n"
	    "[node %s]\nhost = h\naddress = 10.0.0.1\nrole = primary\n"
	    "port = 5433\n",
	    name);
	err_clear(&e);
	assert_int_equal(cfg_load_string("t.ini", ini, c, &e), 0);
	assert_string_equal(c->nodes[0].name, name);
	assert_int_equal(c->nodes[0].pg.port, 5433);
	free(c);
}

static char tmpdir[] = "/tmp/dbpki-test-config.XXXXXX";

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_file_checks(void **state)
{
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	struct dbpki_err e;
	char good[256], link[256], big[256];
	char *huge;

	(void)state;
	assert_non_null(mkdtemp(tmpdir));
	snprintf(good, sizeof(good), "%s/good.ini", tmpdir);
	snprintf(link, sizeof(link), "%s/link.ini", tmpdir);
	snprintf(big, sizeof(big), "%s/big.ini", tmpdir);

	write_file(good, base_ini, 0600);
	assert_int_equal(cfg_load(good, c, &e), 0);

	assert_int_equal(chmod(good, 0620), 0);
	assert_int_equal(cfg_load(good, c, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "writable by group or others"));
	assert_int_equal(chmod(good, 0602), 0);
	assert_int_equal(cfg_load(good, c, &e), DBPKI_E_CONFIG);
	assert_int_equal(chmod(good, 0644), 0); /* world-readable is fine */
	assert_int_equal(cfg_load(good, c, &e), 0);

	assert_int_equal(symlink(good, link), 0);
	assert_int_equal(cfg_load(link, c, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "symbolic link"));

	huge = malloc(2 * 1024 * 1024);
	assert_non_null(huge);
	memset(huge, ';', 2 * 1024 * 1024 - 1);
	huge[2 * 1024 * 1024 - 1] = '\0';
	write_file(big, huge, 0600);
	free(huge);
	assert_int_equal(cfg_load(big, c, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "too large"));

	assert_int_equal(cfg_load("/nonexistent/x.ini", c, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "/nonexistent/x.ini"));

	/* A NUL byte: the text after it was ignored unseen (strlen-based
	 * check could never find it), so a second primary passed. */
	{
		static const char nul[] =
		    "[cluster]\nname = a\nstate_dir = /s\n[ssh]\n"
		    "known_hosts = /k\n[node a]\nhost = a\n"
		    "address = 10.0.0.1\nrole = primary\n\0"
		    "[node b]\nhost = b\naddress = 10.0.0.2\nrole = primary\n";
		FILE *f = fopen(good, "w");

		assert_non_null(f);
		assert_int_equal(
		    fwrite(nul, 1, sizeof(nul) - 1, f), sizeof(nul) - 1);
		fclose(f);
		assert_int_equal(chmod(good, 0600), 0);
		err_clear(&e);
		assert_int_equal(cfg_load(good, c, &e), DBPKI_E_CONFIG);
		assert_non_null(strstr(e.msg, "good.ini:10: a NUL byte"));
	}

	unlink(good);
	unlink(link);
	unlink(big);
	rmdir(tmpdir);
	free(c);
}

/* cfg_check_trust: every file the inventory names that decides who gets
 * keys, and the inventory itself, gets the same owner + parent walk that
 * only known_hosts had.  Each case loosens one thing and expects the
 * input's name and the exact command that fixes it. */
static void
expect_untrusted(const struct dbpki_cluster *c, const char *what,
    const char *fix, const char *path)
{
	struct dbpki_err e;
	char want[512];

	err_clear(&e);
	assert_int_equal(cfg_check_trust(c, 0, &e), DBPKI_E_CONFIG);
	snprintf(want, sizeof(want), "run: %s %s", fix, path);
	if (strstr(e.msg, what) == NULL || strstr(e.msg, want) == NULL) {
		print_error(
		    "expected '%s' and '%s' in: %s\n", what, want, e.msg);
		fail();
	}
}

static void
mkfile(const char *path, mode_t mode)
{
	write_file(path, "x\n", mode);
}

static void
test_trust(void **state)
{
	char d[] = "/tmp/dbpki-test-trust.XXXXXX";
	char sub[128], inv[160], pass[160], kh[160], id[160], id2[160];
	char open_dir[160], ln[160], ini[2048];
	struct dbpki_cluster *c = calloc(1, sizeof(*c));
	struct dbpki_err e;
	char cmd[256];

	(void)state;
	assert_non_null(c);
	assert_non_null(mkdtemp(d)); /* in /tmp: root's and sticky, trusted */
	snprintf(sub, sizeof(sub), "%s/sub", d);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(inv, sizeof(inv), "%s/c.ini", sub);
	snprintf(pass, sizeof(pass), "%s/pass", sub);
	snprintf(kh, sizeof(kh), "%s/kh", sub);
	snprintf(id, sizeof(id), "%s/id", sub);
	snprintf(id2, sizeof(id2), "%s/id2", sub);
	mkfile(pass, 0600);
	mkfile(kh, 0644);
	mkfile(id, 0600);
	mkfile(id2, 0600);
	snprintf(ini, sizeof(ini),
	    "[cluster]\nname = a\nstate_dir = %s/state\n"
	    "[ca]\npassphrase_file = %s\n"
	    "[ssh]\nknown_hosts = %s\nidentity = %s\n"
	    "[node a]\nhost = a\naddress = 10.0.0.1\nrole = primary\n"
	    "[node b]\nhost = b\naddress = 10.0.0.2\nrole = replica\n"
	    "identity = %s\n",
	    sub, pass, kh, id, id2);
	write_file(inv, ini, 0600);
	err_clear(&e);
	assert_int_equal(cfg_load(inv, c, &e), 0);
	/* state_dir does not exist yet: what would create it is checked */
	assert_int_equal(cfg_check_trust(c, 0, &e), 0);

	/* A directory above everything, writable by the group. */
	assert_int_equal(chmod(sub, 0775), 0);
	expect_untrusted(c, "inventory", "chmod go-w", sub);
	assert_int_equal(chmod(sub, 0755), 0);

	/* Each file in turn, writable by the group. */
	{
		const struct {
			const char *path, *what;
		} f[] = {
		    {inv, "inventory"},
		    {pass, "[ca] passphrase_file"},
		    {kh, "[ssh] known_hosts"},
		    {id, "[ssh] identity"},
		    {id2, "[node b] identity"},
		};
		size_t i;

		for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
			assert_int_equal(chmod(f[i].path, 0620), 0);
			expect_untrusted(c, f[i].what, "chmod go-w", f[i].path);
			assert_int_equal(chmod(f[i].path, 0600), 0);
		}
	}

	/* state_dir: an existing one writable by others, and a missing one
	 * whose parent is. */
	snprintf(open_dir, sizeof(open_dir), "%s/state", sub);
	assert_int_equal(mkdir(open_dir, 0700), 0);
	assert_int_equal(chmod(open_dir, 0707), 0);
	expect_untrusted(c, "[cluster] state_dir", "chmod go-w", open_dir);
	assert_int_equal(rmdir(open_dir), 0);
	snprintf(open_dir, sizeof(open_dir), "%s/open", sub);
	assert_int_equal(mkdir(open_dir, 0700), 0);
	assert_int_equal(chmod(open_dir, 0777), 0);
	snprintf(c->state_dir, sizeof(c->state_dir), "%s/state", open_dir);
	expect_untrusted(c, "[cluster] state_dir", "chmod go-w", open_dir);

	/* Inside the store: ca/ (the CA key) writable by the group. */
	snprintf(open_dir, sizeof(open_dir), "%s/state", sub);
	assert_int_equal(mkdir(open_dir, 0700), 0);
	snprintf(cmd, sizeof(cmd), "%s/state/ca", sub);
	assert_int_equal(mkdir(cmd, 0700), 0);
	assert_int_equal(chmod(cmd, 0770), 0);
	snprintf(c->state_dir, sizeof(c->state_dir), "%s", open_dir);
	expect_untrusted(c, "[cluster] state_dir", "chmod go-w", cmd);
	assert_int_equal(chmod(cmd, 0700), 0);
	assert_int_equal(cfg_check_trust(c, 0, &e), 0);
	snprintf(open_dir, sizeof(open_dir), "%s/open", sub);

	/* A symlink on the way to a world-writable directory: the real path
	 * is walked too. */
	snprintf(c->state_dir, sizeof(c->state_dir), "%s/state", sub);
	snprintf(ln, sizeof(ln), "%s/ln", sub);
	assert_int_equal(symlink(open_dir, ln), 0);
	mkfile(pass, 0600);
	snprintf(cmd, sizeof(cmd), "%s/pass", open_dir);
	mkfile(cmd, 0600);
	snprintf(c->ca_passphrase_file, sizeof(c->ca_passphrase_file),
	    "%s/pass", ln);
	expect_untrusted(c, "[ca] passphrase_file", "chmod go-w", open_dir);
	snprintf(
	    c->ca_passphrase_file, sizeof(c->ca_passphrase_file), "%s", pass);
	assert_int_equal(cfg_check_trust(c, 0, &e), 0);

	/* Owned by another user (needs root to arrange). */
	if (geteuid() == 0) {
		assert_int_equal(chown(pass, 65534, (gid_t)-1), 0);
		expect_untrusted(c, "owned by uid 65534", "chown root", pass);
		assert_int_equal(chown(pass, 0, (gid_t)-1), 0);
		assert_int_equal(chown(sub, 65534, (gid_t)-1), 0);
		expect_untrusted(c, "inventory", "chown root", sub);
		assert_int_equal(chown(sub, 0, (gid_t)-1), 0);
	}
	assert_int_equal(cfg_check_trust(c, 0, &e), 0);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_inventory),
	    cmocka_unit_test(test_override_order),
	    cmocka_unit_test(test_pg_layout),
	    cmocka_unit_test(test_bad_inventories),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_no_nodes),
	    cmocka_unit_test(test_cms_rules),
	    cmocka_unit_test(test_file_checks),
	    cmocka_unit_test(test_bom),
	    cmocka_unit_test(test_long_node_name),
	    cmocka_unit_test(test_trust),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
