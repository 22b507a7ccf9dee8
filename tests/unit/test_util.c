/* util: durations, validators, atomic writes and their modes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbpki/util.h"

static void
test_durations(void **state)
{
	static const struct {
		const char *s;
		int ok;
		int64_t secs;
	} cases[] = {
	    {"30d", 1, 30 * 86400},
	    {"12h", 1, 12 * 3600},
	    {"90m", 1, 5400},
	    {"45s", 1, 45},
	    {"1d", 1, 86400},
	    {"0d", 0, 0},
	    {"30", 0, 0},
	    {"d", 0, 0},
	    {"-1d", 0, 0},
	    {"+1d", 0, 0},
	    {" 1d", 0, 0},
	    {"1.5d", 0, 0},
	    {"1w", 0, 0},
	    {"99999999999999999999d", 0, 0},
	    {"36600d", 1, 36600LL * 86400},
	    {"40000d", 0, 0},
	    {"", 0, 0},
	};
	size_t i;
	int64_t v;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = -1;
		if (cases[i].ok) {
			assert_int_equal(
			    util_parse_duration(cases[i].s, &v), 0);
			assert_int_equal(v, cases[i].secs);
		} else {
			assert_int_equal(
			    util_parse_duration(cases[i].s, &v), -1);
		}
	}
}

static void
test_validators(void **state)
{
	(void)state;
	assert_true(util_valid_hostname("db1.example.com"));
	assert_true(util_valid_hostname("a"));
	assert_true(util_valid_hostname("node1.lab.test"));
	assert_false(util_valid_hostname("db1;rm"));
	assert_false(util_valid_hostname("-db"));
	assert_false(util_valid_hostname("db-.x"));
	assert_false(util_valid_hostname("a..b"));
	assert_false(util_valid_hostname("db_1"));
	assert_false(util_valid_hostname("10.0.0.1"));
	assert_false(util_valid_hostname(""));
	assert_true(util_valid_ip("10.0.0.1"));
	assert_true(util_valid_ip("::1"));
	assert_false(util_valid_ip("10.0.0"));
	assert_false(util_valid_ip("10.0.0.1 "));
	assert_true(util_valid_cidr("10.0.0.0/24"));
	assert_true(util_valid_cidr("fd00::/8"));
	assert_false(util_valid_cidr("10.0.0.0/33"));
	assert_false(util_valid_cidr("10.0.0.0/"));
	assert_false(util_valid_cidr("10.0.0.0"));
	assert_true(util_valid_name("db1"));
	assert_true(util_valid_name("app_1.x-y"));
	assert_false(util_valid_name("../x"));
	assert_false(util_valid_name("a..b"));
	assert_false(util_valid_name(".hidden"));
	assert_false(util_valid_name("a b"));
	assert_false(util_valid_name("a/b"));
	assert_true(util_valid_abspath("/var/lib/postgresql/15/main"));
	assert_true(util_valid_abspath("/a/b..c/d"));
	assert_false(util_valid_abspath("relative"));
	assert_false(util_valid_abspath("/a/../b"));
	assert_false(util_valid_abspath("/a/.."));
	assert_false(util_valid_abspath("/a b"));
	assert_false(util_valid_abspath("/a;b"));
	assert_false(util_valid_abspath("/a'b"));
	assert_false(util_valid_abspath("/a$b"));
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_write_atomic(void **state)
{
	char dir[] = "/tmp/dbpki-test-util.XXXXXX";
	char path[256], sub[256];
	struct dbpki_err e;
	struct stat st;
	char *back = NULL;
	size_t len = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	umask(0); /* the mode must be exact whatever the umask */
	assert_int_equal(util_write_atomic(path, "secret", 6, 0600, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(util_write_atomic(path, "new", 3, 0644, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(util_read_file(path, 100, 0, &back, &len, &e), 0);
	assert_int_equal(len, 3);
	assert_string_equal(back, "new");
	free(back);
	assert_int_equal(count_entries(dir), 1); /* no temporary file left */

	/* a failed write leaves the old file and no temporary */
	snprintf(sub, sizeof(sub), "%s/missing/x", dir);
	assert_int_not_equal(util_write_atomic(sub, "x", 1, 0600, &e), 0);
	assert_int_equal(count_entries(dir), 1);

	/* read limits and private checks */
	back = NULL;
	assert_int_equal(
	    util_read_file(path, 2, 0, &back, &len, &e), DBPKI_E_CONFIG);
	assert_null(back);
	assert_int_equal(
	    util_read_file(path, 100, UTIL_RF_PRIVATE, &back, &len, &e),
	    DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "chmod 600"));

	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	assert_int_equal(util_mkdirs(sub, 0700, &e), 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(chmod(sub, 0777), 0);
	assert_int_equal(util_mkdirs(sub, 0700, &e), DBPKI_E_CONFIG);
	umask(077);
	unlink(path);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rmdir(sub), 0);
		*strrchr(sub, '/') = '\0';
	}
	assert_int_equal(rmdir(dir), 0);
}

/* Issue 12: the one shell quoting of every remote command.  Each value
 * goes through /bin/sh and must come back byte for byte. */
static void
test_shell_quote(void **state)
{
	static const char *const vals[] = {"", "plain", "it's", "'", "''",
	    "a'; touch /nonexistent/x; echo '", "$(id) `id` $HOME \\ \"q\"",
	    "/var/lib/dbpki/releases/20261122T205010Z-123456789/x"};
	char q[256], cmd[320], got[256];
	size_t i, n;
	FILE *p;

	(void)state;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		n = util_shell_quote(vals[i], q, sizeof(q));
		assert_true(n < sizeof(q));
		assert_int_equal(strlen(q), n);
		snprintf(cmd, sizeof(cmd), "printf '%%s' %s", q);
		assert_non_null(p = popen(cmd, "r"));
		n = fread(got, 1, sizeof(got) - 1, p);
		got[n] = '\0';
		assert_int_equal(pclose(p), 0);
		assert_string_equal(got, vals[i]);
	}
	/* snprintf's contract: the length needed, a truncated NUL-ended
	 * prefix when out is short, nothing written when outsz is 0. */
	assert_int_equal(util_shell_quote("it's", NULL, 0), 9);
	assert_int_equal(util_shell_quote("it's", q, 4), 9);
	assert_string_equal(q, "'it");
}

/* Issue 12: names made from the clock differ within one second and sort
 * like time. */
static void
test_stamp(void **state)
{
	char a[UTIL_STAMP_LEN], b[UTIL_STAMP_LEN];
	int i;

	(void)state;

	util_stamp(a);
	/* "20261122T205010Z-123456789" */
	assert_int_equal(strlen(a), 26);
	assert_int_equal(strspn(a, "0123456789TZ-"), 26);
	assert_int_equal(a[8], 'T');
	assert_int_equal(a[15], 'Z');
	assert_int_equal(a[16], '-');
	for (i = 0; i < 1000; i++) {
		util_stamp(b);
		assert_int_equal(strlen(b), 26);
		assert_true(strcmp(a, b) < 0);
		memcpy(a, b, sizeof(a));
	}
}

/* Issue 12: util_write_new creates, never replaces (the CA's files). */
static void
test_write_new(void **state)
{
	char dir[] = "/tmp/dbpki-test-new-XXXXXX", path[64], *back = NULL;
	struct dbpki_err e;
	struct stat st;
	size_t len;

	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	assert_int_equal(util_write_new(path, "one", 3, 0600, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(
	    util_write_new(path, "two", 3, 0600, &e), DBPKI_E_EXISTS);
	assert_non_null(strstr(e.msg, "already exists"));
	assert_int_equal(util_read_file(path, 100, 0, &back, &len, &e), 0);
	assert_string_equal(back, "one");
	free(back);
	/* a dangling symlink is an existing name too, and is not followed */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("/nonexistent/dbpki-target", path), 0);
	assert_int_equal(
	    util_write_new(path, "two", 3, 0600, &e), DBPKI_E_EXISTS);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(count_entries(dir), 0);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_validators),
	    cmocka_unit_test(test_write_atomic),
	    cmocka_unit_test(test_shell_quote),
	    cmocka_unit_test(test_stamp),
	    cmocka_unit_test(test_write_new),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
