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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_validators),
	    cmocka_unit_test(test_write_atomic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
