/* engine_san: which dialled names a certificate lacks, libpq version
 * lines, and the "old libpq dials an address" decision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbpki/engine_int.h"

static void
test_parse(void **state)
{
	static const struct {
		const char *s;
		int rc, major, minor;
	} v[] = {
	    {"psql (PostgreSQL) 13.9", 0, 13, 9},
	    {"psql (PostgreSQL) 15.5 (Debian 15.5-0+deb12u1)", 0, 15, 5},
	    {"PostgreSQL 14.10 (Ubuntu 14.10-0ubuntu0.22.04.1)", 0, 14, 10},
	    {"PostgreSQL 15.0", 0, 15, 0},
	    {"psql (PostgreSQL) 16beta1", 0, 16, 0},
	    {"psql (PostgreSQL) 9.6.24", 0, 9, 6},
	    {"unknown", -1, 0, 0},
	    {"", -1, 0, 0},
	    {"psql (PostgreSQL) ", -1, 0, 0},
	    {"psql (PostgreSQL) 123456.1", -1, 0, 0},
	    {"psql (PostgreSQL) 15.", -1, 0, 0},
	    {"PostgreSQL 3.1", -1, 0, 0},
	};
	size_t i;
	int major, minor;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(
		    engine_libpq_parse(v[i].s, &major, &minor), v[i].rc);
		assert_int_equal(major, v[i].major);
		assert_int_equal(minor, v[i].minor);
	}
}

static void
test_decision(void **state)
{
	(void)state;
	/* PostgreSQL 15 is the first libpq that matches IP SANs. */
	assert_int_equal(ENGINE_LIBPQ_IP_SAN, 15);
	assert_true(engine_libpq_ip_refused(13, 1));
	assert_true(engine_libpq_ip_refused(14, 3));
	assert_true(engine_libpq_ip_refused(9, 1));
	assert_false(engine_libpq_ip_refused(15, 1));
	assert_false(engine_libpq_ip_refused(16, 1));
	/* nothing dialled by address, or version unknown: no warning */
	assert_false(engine_libpq_ip_refused(13, 0));
	assert_false(engine_libpq_ip_refused(0, 2));
}

static struct dbpki_cluster *
cluster(void)
{
	struct dbpki_cluster *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	snprintf(c->path, sizeof(c->path), "/x/cluster.ini");
	c->n_nodes = 2;
	snprintf(c->nodes[0].name, CFG_NAME, "db1");
	snprintf(c->nodes[0].host, CFG_HOST, "db1.example.com");
	snprintf(c->nodes[0].address, CFG_ADDR, "10.0.0.11");
	c->nodes[0].role = ROLE_PRIMARY;
	snprintf(c->nodes[1].name, CFG_NAME, "app1");
	snprintf(c->nodes[1].host, CFG_HOST, "app1.example.com");
	snprintf(c->nodes[1].address, CFG_ADDR, "10.0.0.21");
	c->nodes[1].role = ROLE_CLIENT;
	return c;
}

/* A leaf for db1 with the SANs given, signed by a throwaway CA. */
static X509 *
leaf(const char *const *san, int n)
{
	struct pki_spec ca = {.profile = PKI_PROFILE_CA, .validity = 86400};
	struct pki_spec s = {.profile = PKI_PROFILE_SERVER, .validity = 3600};
	EVP_PKEY *k = NULL;
	X509 *cax = NULL, *x = NULL;
	struct dbpki_err e;
	int i;

	snprintf(ca.cn, sizeof(ca.cn), "test ca");
	snprintf(s.cn, sizeof(s.cn), "db1.example.com");
	for (i = 0; i < n; i++)
		s.san[s.n_san++] = san[i];
	err_clear(&e);
	assert_int_equal(pki_key_generate(KEY_EC_P256, &k, &e), 0);
	assert_int_equal(pki_cert_build(&ca, k, NULL, k, &cax, &e), 0);
	assert_int_equal(pki_cert_build(&s, k, cax, k, &x, &e), 0);
	X509_free(cax);
	EVP_PKEY_free(k);
	return x;
}

static void
test_check(void **state)
{
	static const char *const full[] = {
	    "db1.example.com", "10.0.0.11", "db.example.com", "10.0.0.100"};
	static const char *const no_ip[] = {"db1.example.com"};
	struct dbpki_cluster *c = cluster();
	struct san_gap g;
	char list[1024];
	X509 *x;

	(void)state;
	snprintf(c->extra_san[0], CFG_HOST, "db.example.com");
	snprintf(c->extra_san[1], CFG_HOST, "10.0.0.100");
	c->n_extra_san = 2;
	assert_int_equal(engine_san_ip_targets(c), 2);

	x = leaf(full, 4);
	engine_san_check(c, &c->nodes[0], x, &g);
	assert_true(g.checked);
	assert_int_equal(g.n_missing, 0);
	X509_free(x);

	x = leaf(no_ip, 1);
	engine_san_check(c, &c->nodes[0], x, &g);
	assert_int_equal(g.n_missing, 3);
	engine_san_list(&g, list, sizeof(list));
	assert_string_equal(list,
	    "IP:10.0.0.11 (dialled as its address), DNS:db.example.com (in "
	    "[server] extra_san), IP:10.0.0.100 (in [server] extra_san)");
	X509_free(x);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_decision),
	    cmocka_unit_test(test_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
