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
#include "dbpki/engine_int.h"
#include "dbpki/engine_rotate.h"
#include "dbpki/log.h"
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

/* ---- issue 12: every byte from a node, one output path ---------------- */

/* No C0/C1 control, DEL or bidi control survives, in raw form. */
static void
assert_inert(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	for (; *u != '\0'; u++) {
		assert_false(*u < 0x20 && *u != '\t' && *u != '\n');
		assert_false(*u == 0x7f);
		assert_false(*u == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f);
		assert_false(
		    *u == 0xe2 && u[1] == 0x80 && u[2] >= 0xaa && u[2] <= 0xae);
		assert_false(
		    *u == 0xe2 && u[1] == 0x81 && u[2] >= 0xa6 && u[2] <= 0xa9);
	}
}

static void
test_sanitize_rules(void **state)
{
	/* ESC OSC title, CSI, C1 CSI (U+009B), DEL, RLO (U+202E), RLI
	 * (U+2066), a lone continuation byte, an overlong '/', a surrogate,
	 * a cut sequence, then printable UTF-8: é and € and 😀. */
	static const char hostile[] =
	    "a\033]0;owned\007b\033[2Jc\302\233d\177e\342\200\256f\342\201\246"
	    "g\200h\300\257i\355\240\200j\342\202";
	static const char utf8[] = "caf\303\251 \342\202\254 \360\237\230\200";
	char out[512];

	(void)state;
	setenv("LC_ALL", "C.UTF-8", 1);
	log_sanitize(out, sizeof(out), hostile, sizeof(hostile) - 1, 0);
	assert_inert(out);
	assert_string_equal(out,
	    "a\\x1b]0;owned\\x07b\\x1b[2Jc\\u009bd\\x7fe\\u202ef\\u2066g\\x80"
	    "h\\xc0\\xafi\\xed\\xa0\\x80j\\xe2\\x82");
	/* printable UTF-8 passes on a UTF-8 locale ... */
	log_sanitize(out, sizeof(out), utf8, sizeof(utf8) - 1, 0);
	assert_string_equal(out, utf8);
	/* ... and is escaped, as code points, on any other */
	setenv("LC_ALL", "C", 1);
	log_sanitize(out, sizeof(out), utf8, sizeof(utf8) - 1, 0);
	assert_string_equal(out, "caf\\u00e9 \\u20ac \\U0001f600");
	log_sanitize(out, sizeof(out), hostile, sizeof(hostile) - 1, 0);
	assert_inert(out);
	/* newlines only when asked; an escape is never cut in half */
	log_sanitize(out, sizeof(out), "x\ny", 3, 0);
	assert_string_equal(out, "x\\x0ay");
	log_sanitize(out, sizeof(out), "x\ny", 3, 1);
	assert_string_equal(out, "x\ny");
	log_sanitize(out, 7, "ab\033cd", 5, 0);
	assert_string_equal(out, "ab\\x1b");
	log_sanitize(out, 6, "ab\033cd", 5, 0);
	assert_string_equal(out, "ab");
	/* the tail: the last lines, whole characters, escaped */
	log_sanitize_tail(out, 16, "first\nsecond\n\033[2Jlast\n", 22, 1, 0);
	assert_string_equal(out, "nd\n\\x1b[2Jlast\n"); /* what fits */
	log_sanitize_tail(out, sizeof(out), "1\n2\n3\n", 6, 1, 2);
	assert_string_equal(out, "2\n3\n");
	unsetenv("LC_ALL");
}

/* JSON: valid UTF-8 is JSON's own encoding and passes; controls (C0,
 * DEL, C1, bidi) are \u escapes, inert in the raw text; a byte that is not
 * UTF-8 is \u00NN, so the document stays valid. */
static void
test_json_string(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_non_null(f = open_memstream(&buf, &len));
	log_json_string(
	    f, "caf\303\251 \"q\" \\ \033[2J\302\233\342\200\256\377\n");
	assert_int_equal(fclose(f), 0);
	assert_string_equal(buf,
	    "\"caf\303\251 \\\"q\\\" \\\\ \\u001b[2J\\u009b"
	    "\\u202e\\u00ff\\n\"");
	assert_inert(buf);
	free(buf);
}

/* The exit-signal name is the node's word (any bytes a hostile sshd
 * sends); the message that carries it is inert. */
static void
test_signal_name(void **state)
{
	struct dbpki_err e;

	(void)state;
	err_clear(&e);
	assert_int_equal(engine_signal_error("KILL", &e), DBPKI_E_REMOTE);
	assert_string_equal(e.msg, "killed by signal KILL");
	assert_int_equal(
	    engine_signal_error("\033]0;owned\007\342\200\256x", &e),
	    DBPKI_E_REMOTE);
	assert_inert(e.msg);
	assert_non_null(strstr(e.msg, "\\x1b]0;owned\\x07"));
	assert_non_null(strstr(e.msg, "\\u202e"));
}

/* rotate's probe: a malformed line is quoted back ("near ..."), escaped. */
static void
test_probe_near(void **state)
{
	struct cfg_node n;
	struct probe_node p;
	struct dbpki_err e;

	(void)state;
	memset(&n, 0, sizeof(n));
	memset(&p, 0, sizeof(p));
	snprintf(n.name, sizeof(n.name), "db1");
	p.n = &n;
	err_clear(&e);
	assert_int_equal(probe_parse("DBPKI-PROBE data=yes "
				     "state=\033]0;owned\007\342\200\256\n",
			     &p, &e),
	    DBPKI_E_REMOTE);
	assert_non_null(strstr(e.msg, "near"));
	assert_inert(e.msg);
	assert_non_null(strstr(e.msg, "\\x1b]0;owned\\x07"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lock),
	    cmocka_unit_test(test_journal),
	    cmocka_unit_test(test_pool),
	    cmocka_unit_test(test_sanitize_rules),
	    cmocka_unit_test(test_json_string),
	    cmocka_unit_test(test_signal_name),
	    cmocka_unit_test(test_probe_near),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
