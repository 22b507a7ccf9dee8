/* Unit tests for template: quoting, slot syntax, value checks, lookup. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbpki/template.h"
#include "dbpki/util.h"

/* The repository root, from this binary's path (BUILD/tests/test_template). */
static void
repo_root(char *out, size_t outsz)
{
	char exe[PATH_MAX], *slash;
	ssize_t n;
	int i;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	for (i = 0; i < 3; i++) {
		slash = strrchr(exe, '/');
		assert_non_null(slash);
		*slash = '\0';
	}
	assert_int_equal(util_fmt(out, outsz, "%s", exe), 0);
}

static char *
render1(const char *text, const char *name, const char *value)
{
	struct tpl_vars v = {0};
	struct dbpki_err e;
	char *out = NULL;

	err_clear(&e);
	assert_int_equal(tpl_vars_set(&v, name, value, &e), 0);
	assert_int_equal(tpl_render(text, "t.sh", &v, &out, &e), 0);
	tpl_vars_free(&v);
	return out;
}

static void
test_quote_hostile(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"db1; rm -rf /", "'db1; rm -rf /'"},
	    {"$(id)", "'$(id)'"},
	    {"`id`", "'`id`'"},
	    {"it's", "'it'\\''s'"},
	    {"'", "''\\'''"},
	    {"''", "''\\'''\\'''"},
	    {"\"x\"", "'\"x\"'"},
	    {"a\\b\\", "'a\\b\\'"},
	    {"two words  here", "'two words  here'"},
	    {"*", "'*'"},
	    {"", "''"},
	    {"$HOME ${x:-y} !x ~", "'$HOME ${x:-y} !x ~'"},
	    {"caf\xc3\xa9", "'caf\xc3\xa9'"},
	};
	struct dbpki_err e;
	char *out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err_clear(&e);
		out = NULL;
		assert_int_equal(tpl_shell_quote(cases[i].in, &out, &e), 0);
		assert_string_equal(out, cases[i].want);
		free(out);
		out = render1("x={{v}};", "v", cases[i].in);
		assert_true(strncmp(out, "x=", 2) == 0);
		assert_int_equal(
		    strncmp(out + 2, cases[i].want, strlen(cases[i].want)), 0);
		assert_string_equal(out + 2 + strlen(cases[i].want), ";");
		free(out);
	}
}

static void
test_render_many_slots(void **state)
{
	struct tpl_vars v = {0};
	struct dbpki_err e;
	char *out = NULL;

	(void)state;
	err_clear(&e);
	assert_int_equal(tpl_vars_set(&v, "pgdata", "/var/lib/pg", &e), 0);
	assert_int_equal(tpl_vars_set(&v, "port", "5432", &e), 0);
	assert_int_equal(tpl_vars_set(&v, "unused", "x", &e), 0);
	assert_int_equal(
	    tpl_render("#!/bin/sh\n{ a; }\ncd {{pgdata}} && "
		       "echo {{port}}{{port}} } {x}\nport = {{!port}}\n",
		"t.sh", &v, &out, &e),
	    0);
	assert_string_equal(out, "#!/bin/sh\n{ a; }\ncd '/var/lib/pg' && "
				 "echo '5432''5432' } {x}\nport = 5432\n");
	free(out);
	/* Text without slots comes back unchanged, including an empty one. */
	out = NULL;
	assert_int_equal(tpl_render("", "t.sh", &v, &out, &e), 0);
	assert_string_equal(out, "");
	free(out);
	tpl_vars_free(&v);
}

static void
test_vars_replace_and_get(void **state)
{
	struct tpl_vars v = {0};
	struct dbpki_err e;
	char *out = NULL;

	(void)state;
	err_clear(&e);
	assert_int_equal(tpl_vars_set(&v, "a", "1", &e), 0);
	assert_int_equal(tpl_vars_set(&v, "b", "2", &e), 0);
	assert_int_equal(tpl_vars_set(&v, "a", "3", &e), 0);
	assert_int_equal(v.n, 2);
	assert_string_equal(v.v[0].name, "a");
	assert_string_equal(tpl_vars_get(&v, "a"), "3");
	assert_null(tpl_vars_get(&v, "c"));
	assert_int_equal(tpl_render("{{a}}{{b}}", "t.sh", &v, &out, &e), 0);
	assert_string_equal(out, "'3''2'");
	free(out);
	tpl_vars_free(&v);
	assert_int_equal(v.n, 0);
	tpl_vars_free(&v);
	tpl_vars_free(NULL);
}

static void
test_vars_refuse_control_bytes(void **state)
{
	static const char *bad[] = {
	    "a\nb",
	    "a\rb",
	    "tab\there",
	    "\x1b[31m",
	    "del\x7f",
	    "\x01",
	};
	struct tpl_vars v = {0};
	struct dbpki_err e;
	char big[TPL_VALUE_MAX + 2];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		assert_int_equal(
		    tpl_vars_set(&v, "host", bad[i], &e), DBPKI_E_CONFIG);
		assert_non_null(strstr(e.msg, "{{host}}"));
		assert_non_null(strstr(e.msg, "control byte"));
	}
	err_clear(&e);
	assert_int_equal(
	    tpl_vars_setn(&v, "host", "ab\0cd", 5, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "{{host}}"));
	assert_non_null(strstr(e.msg, "0x00 at offset 2"));
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(tpl_vars_set(&v, "host", big, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "too long"));
	big[TPL_VALUE_MAX] = '\0';
	assert_int_equal(tpl_vars_set(&v, "host", big, &e), 0);
	/* Refusals left nothing behind; the accepted value is intact. */
	assert_int_equal(v.n, 1);
	assert_int_equal(strlen(tpl_vars_get(&v, "host")), TPL_VALUE_MAX);
	assert_int_equal(tpl_vars_set(&v, "Bad", "x", &e), DBPKI_E_INTERNAL);
	assert_int_equal(tpl_vars_set(&v, "", "x", &e), DBPKI_E_INTERNAL);
	assert_int_equal(tpl_vars_set(&v, "a-b", "x", &e), DBPKI_E_INTERNAL);
	assert_int_equal(v.n, 1);
	tpl_vars_free(&v);
}

static void
expect_render_error(const char *text, const char *want1, const char *want2)
{
	struct tpl_vars v = {0};
	struct dbpki_err e;
	char *out = NULL;

	err_clear(&e);
	assert_int_equal(tpl_vars_set(&v, "known", "k", &e), 0);
	assert_int_equal(tpl_vars_set(&v, "list", "a b", &e), 0);
	assert_int_equal(
	    tpl_render(text, "templates/x/y.sh", &v, &out, &e), DBPKI_E_CONFIG);
	assert_null(out);
	if (strstr(e.msg, want1) == NULL || strstr(e.msg, want2) == NULL)
		fail_msg("for %s: got \"%s\", want \"%s\" and \"%s\"", text,
		    e.msg, want1, want2);
	tpl_vars_free(&v);
}

static void
test_render_errors(void **state)
{
	(void)state;
	expect_render_error(
	    "a\nb\n{{nope}}\n", "templates/x/y.sh:3:", "unknown slot {{nope}}");
	expect_render_error("{{nope}}", "provides: known, list", ":1:");
	expect_render_error(
	    "ok {{known}}\n\necho {{known", "y.sh:3:", "unterminated");
	/* A slot does not run across lines. */
	expect_render_error("{{known\n}}", "y.sh:1:", "unterminated");
	expect_render_error("x\n{{", "y.sh:2:", "unterminated");
	expect_render_error("{{}}", ":1:", "[a-z0-9_]+");
	expect_render_error("\n{{Known}}", ":2:", "{{Known}}");
	expect_render_error("{{ known }}", ":1:", "[a-z0-9_]+");
	expect_render_error("{{kno-wn}}", ":1:", "[a-z0-9_]+");
	expect_render_error("{{!}}", ":1:", "[a-z0-9_]+");
	expect_render_error("{{!!known}}", ":1:", "[a-z0-9_]+");
	expect_render_error("{{{known}}}", ":1:", "[a-z0-9_]+");
	/* Raw form: only plain words. */
	expect_render_error(
	    "\n\nfor n in {{!list}}", ":3:", "not a plain word");
}

static void
test_raw_values(void **state)
{
	static const char *ok[] = {
	    "5432",
	    "/var/lib/postgresql/15/main",
	    "10.0.0.0/24,10.0.1.0/24",
	    "postgres@db1",
	    "db1.example.com:5432",
	    "a+b-c_d",
	};
	static const char *bad[] = {
	    "",
	    "a b",
	    "$(id)",
	    "`id`",
	    "a;b",
	    "a'b",
	    "a\"b",
	    "a\\b",
	    "*",
	    "a=b",
	    "#x",
	    "~",
	    "a|b",
	    "a&b",
	    "a>b",
	    "caf\xc3\xa9",
	};
	struct tpl_vars v = {0};
	struct dbpki_err e;
	char *out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		out = render1("{{!v}}", "v", ok[i]);
		assert_string_equal(out, ok[i]);
		free(out);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		out = NULL;
		assert_int_equal(tpl_vars_set(&v, "v", bad[i], &e), 0);
		assert_int_equal(tpl_render("x {{!v}}", "t.sh", &v, &out, &e),
		    DBPKI_E_CONFIG);
		assert_null(out);
		assert_non_null(strstr(e.msg, "t.sh:1: {{!v}}"));
		/* The same value is fine quoted. */
		assert_int_equal(
		    tpl_render("x {{v}}", "t.sh", &v, &out, &e), 0);
		free(out);
	}
	tpl_vars_free(&v);
}

static void
test_names(void **state)
{
	(void)state;
	assert_true(tpl_valid_slot_name("pgdata"));
	assert_true(tpl_valid_slot_name("a_1"));
	assert_false(tpl_valid_slot_name("A"));
	assert_false(tpl_valid_slot_name("a-b"));
	assert_false(tpl_valid_slot_name(""));
	assert_true(tpl_valid_action_name("remove"));
	assert_true(tpl_valid_action_name("primary-up"));
	assert_false(tpl_valid_action_name("-x"));
	assert_false(tpl_valid_action_name("../x"));
	assert_false(tpl_valid_action_name("a/b"));
	assert_false(tpl_valid_action_name("A"));
	assert_false(tpl_valid_action_name(""));
}

static void
test_render_file(void **state)
{
	char root[PATH_MAX], dir[PATH_MAX];
	struct tpl_vars v = {0};
	struct dbpki_err e;
	char *out = NULL;

	(void)state;
	repo_root(root, sizeof(root));
	assert_int_equal(
	    util_fmt(dir, sizeof(dir), "%s/tests/data/templates", root), 0);
	assert_int_equal(setenv("DBPKI_TEMPLATES", dir, 1), 0);
	err_clear(&e);
	assert_int_equal(tpl_vars_set(&v, "node", "db1; touch x", &e), 0);
	assert_int_equal(tpl_vars_set(&v, "port", "5432", &e), 0);
	assert_int_equal(tpl_render_file("test", "hello", &v, &out, &e), 0);
	assert_string_equal(out,
	    "#!/bin/sh\n# test template for tests/unit/test_template.c\n"
	    "printf '%s\\n' 'db1; touch x'\nport=5432\n");
	free(out);
	out = NULL;

	/* Errors name the file found and the line. */
	assert_int_equal(tpl_render_file("test", "unknown-slot", &v, &out, &e),
	    DBPKI_E_CONFIG);
	assert_non_null(
	    strstr(e.msg, "/tests/data/templates/test/"
			  "unknown-slot.sh:3: unknown slot {{pgdata}}"));
	assert_int_equal(
	    tpl_render_file("test", "absent", &v, &out, &e), DBPKI_E_SYS);
	assert_non_null(strstr(e.msg, "absent.sh"));
	assert_non_null(strstr(e.msg, "action absent on platform test"));
	/* Names that could walk out of the templates directory. */
	assert_int_equal(
	    tpl_render_file("..", "hello", &v, &out, &e), DBPKI_E_CONFIG);
	assert_int_equal(tpl_render_file("test", "../test/hello", &v, &out, &e),
	    DBPKI_E_CONFIG);
	assert_null(out);
	tpl_vars_free(&v);
	unsetenv("DBPKI_TEMPLATES");
}

static void
test_render_file_refuses_symlink_and_writable(void **state)
{
	char tmp[] = "/tmp/dbpki-tpl-XXXXXX", path[PATH_MAX], link[PATH_MAX];
	struct tpl_vars v = {0};
	struct dbpki_err e;
	char *out = NULL;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(tmp));
	assert_int_equal(util_fmt(path, sizeof(path), "%s/p", tmp), 0);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(util_fmt(path, sizeof(path), "%s/p/real.sh", tmp), 0);
	assert_non_null(f = fopen(path, "w"));
	fputs("echo hi\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(util_fmt(link, sizeof(link), "%s/p/link.sh", tmp), 0);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(setenv("DBPKI_TEMPLATES", tmp, 1), 0);
	err_clear(&e);
	assert_int_equal(tpl_render_file("p", "real", &v, &out, &e), 0);
	assert_string_equal(out, "echo hi\n");
	free(out);
	out = NULL;
	assert_int_equal(
	    tpl_render_file("p", "link", &v, &out, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "symbolic link"));
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(
	    tpl_render_file("p", "real", &v, &out, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "writable by group or others"));
	assert_null(out);
	unlink(link);
	unlink(path);
	assert_int_equal(util_fmt(path, sizeof(path), "%s/p", tmp), 0);
	rmdir(path);
	rmdir(tmp);
	unsetenv("DBPKI_TEMPLATES");
}

static void
test_find_data_dir(void **state)
{
	char root[PATH_MAX], want[PATH_MAX], got[PATH_MAX];
	struct dbpki_err e;

	(void)state;
	repo_root(root, sizeof(root));
	unsetenv("DBPKI_TEMPLATES");
	unsetenv("DBPKI_PLAYBOOKS");
	err_clear(&e);
	/* From a build directory of the checkout: the checkout's own copy. */
	assert_int_equal(
	    tpl_find_data_dir("templates", got, sizeof(got), &e), 0);
	assert_int_equal(util_fmt(want, sizeof(want), "%s/templates", root), 0);
	assert_string_equal(got, want);
	assert_int_equal(
	    tpl_find_data_dir("playbooks", got, sizeof(got), &e), 0);
	assert_int_equal(util_fmt(want, sizeof(want), "%s/playbooks", root), 0);
	assert_string_equal(got, want);
	/* The environment wins, and a wrong one is an error, not a fallback. */
	assert_int_equal(setenv("DBPKI_PLAYBOOKS", "/tmp", 1), 0);
	assert_int_equal(
	    tpl_find_data_dir("playbooks", got, sizeof(got), &e), 0);
	assert_string_equal(got, "/tmp");
	assert_int_equal(setenv("DBPKI_PLAYBOOKS", "/nonexistent/dbpki", 1), 0);
	assert_int_equal(tpl_find_data_dir("playbooks", got, sizeof(got), &e),
	    DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "DBPKI_PLAYBOOKS=/nonexistent/dbpki"));
	unsetenv("DBPKI_PLAYBOOKS");
	/* A kind that exists nowhere names every place tried. */
	assert_int_equal(tpl_find_data_dir("nosuchkind", got, sizeof(got), &e),
	    DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "DBPKI_NOSUCHKIND"));
	assert_non_null(strstr(e.msg, DBPKI_DATADIR "/nosuchkind"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quote_hostile),
	    cmocka_unit_test(test_render_many_slots),
	    cmocka_unit_test(test_vars_replace_and_get),
	    cmocka_unit_test(test_vars_refuse_control_bytes),
	    cmocka_unit_test(test_render_errors),
	    cmocka_unit_test(test_raw_values),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_render_file),
	    cmocka_unit_test(test_render_file_refuses_symlink_and_writable),
	    cmocka_unit_test(test_find_data_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
