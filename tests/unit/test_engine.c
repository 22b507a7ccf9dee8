/* engine: the lock, the journal and the fan-out pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbpki/engine.h"
#include "dbpki/util.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/dbpki-test-engine.XXXXXX");
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

static void
test_lock(void **state)
{
	struct engine_lock a, b;
	struct dbpki_err e;
	char pid[32];

	(void)state;
	assert_int_equal(engine_lock_take(dir, "bootstrap", &a, &e), 0);
	assert_int_equal(
	    engine_lock_take(dir, "renew", &b, &e), DBPKI_E_LOCKED);
	snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
	assert_non_null(strstr(e.msg, pid));
	assert_non_null(strstr(e.msg, "bootstrap"));
	assert_non_null(strstr(e.msg, "started 20"));
	engine_lock_release(&a);
	assert_int_equal(engine_lock_take(dir, "renew", &b, &e), 0);
	engine_lock_release(&b);
}

static void
test_journal(void **state)
{
	struct engine_journal j;
	struct dbpki_err e;
	char id[CFG_NAME], pb[CFG_NAME], *text = NULL;

	(void)state;
	assert_int_equal(engine_journal_unfinished(dir, id, pb, &e), 0);
	assert_int_equal(engine_journal_open(dir, "renew", &j, &e), 0);
	engine_journal_event(
	    &j, "node", "node", "db1", "error", "quote\" and\nnewline", NULL);
	assert_int_equal(engine_journal_unfinished(dir, id, pb, &e), 1);
	assert_string_equal(id, j.id);
	assert_string_equal(pb, "renew");
	assert_int_equal(
	    util_read_file(j.path, 1 << 20, 0, &text, NULL, &e), 0);
	assert_non_null(strstr(text, "\"error\":\"quote\\\" and\\nnewline\""));
	free(text);
	engine_journal_close(&j, "ok");
	assert_int_equal(engine_journal_unfinished(dir, id, pb, &e), 0);
}

struct pool_arg {
	int hits[1000];
};

static void
hit(int i, void *arg)
{
	struct pool_arg *p = arg;

	__atomic_add_fetch(&p->hits[i], 1, __ATOMIC_SEQ_CST);
}

static void
test_pool(void **state)
{
	/* 2000 > the 100 items: more threads than work must be capped. */
	static const int parallel[] = {1, 2, 16, 2000};
	struct pool_arg *p = calloc(1, sizeof(*p));
	struct dbpki_err e;
	size_t k;
	int i;

	(void)state;
	for (k = 0; k < sizeof(parallel) / sizeof(parallel[0]); k++) {
		memset(p, 0, sizeof(*p));
		assert_int_equal(
		    engine_pool_run(100, parallel[k], hit, p, &e), 0);
		for (i = 0; i < 100; i++)
			assert_int_equal(p->hits[i], 1);
	}
	assert_int_equal(engine_pool_run(0, 4, hit, p, &e), 0);
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lock),
	    cmocka_unit_test(test_journal),
	    cmocka_unit_test(test_pool),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
