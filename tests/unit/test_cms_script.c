/* Unit tests for the cms console scripts: the parser (and what it
 * refuses), prompt detection, reply cleaning, blank-folded matching, the
 * judge, console file names and the plan's printout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbpki/engine_cms.h"
#include "dbpki/template.h"
#include "dbpki/util.h"

static const char common[] = "# the console's rules\n"
			     "prompt >\n"
			     "fail Failure\n"
			     "fail Unknown command\n";

static const char certs[] =
    "only database\n"
    "run database cluster certs k.key s.crt ck.key cc.crt ca.crt\n"
    "only client\n"
    "run   database  cluster certs\tck.key cc.crt ca.crt\n"
    "only all\n"
    "run database cluster remove\n"
    "  confirm (Y/n) Y\n"
    "run database cluster status\n"
    "  expect 10.0.0.1 (me) : Connected   Primary\n"
    "  fail Database down\n"
    "  until 60\n";

static int
parse(const char *text, struct cms_script *s, struct dbpki_err *e)
{
	int rc;

	memset(s, 0, sizeof(*s));
	err_clear(e);
	if ((rc = cms_script_parse(common, "common.sh", s, e)) != 0 ||
	    (rc = cms_script_parse(text, "action.sh", s, e)) != 0)
		return rc;
	return cms_script_check(s, "action.sh", e);
}

static void
test_parse_script(void **state)
{
	struct cms_script *s = calloc(1, sizeof(*s));
	struct dbpki_err e;

	(void)state;
	assert_int_equal(parse(certs, s, &e), 0);
	assert_string_equal(s->prompt, ">");
	assert_int_equal(s->n_fail, 2);
	assert_int_equal(s->n, 4);
	/* words joined by one space, whatever the template's spacing */
	assert_string_equal(
	    s->cmds[1].line, "database cluster certs ck.key cc.crt ca.crt");
	assert_string_equal(s->cmds[2].confirm, "(Y/n)");
	assert_string_equal(s->cmds[2].answer, "Y");
	assert_int_equal(s->cmds[3].n_expect, 1);
	assert_int_equal(s->cmds[3].n_fail, 1);
	assert_int_equal(s->cmds[3].until_s, 60);
	assert_int_equal(s->cmds[3].lineno, 8);

	/* a primary gets the five-file certs, a client the three-file one */
	cms_script_for_role(s, ROLE_PRIMARY);
	assert_int_equal(s->n, 3);
	assert_string_equal(s->cmds[0].line,
	    "database cluster certs k.key s.crt ck.key cc.crt ca.crt");
	assert_int_equal(parse(certs, s, &e), 0);
	cms_script_for_role(s, ROLE_CLIENT);
	assert_int_equal(s->n, 3);
	assert_string_equal(
	    s->cmds[0].line, "database cluster certs ck.key cc.crt ca.crt");
	assert_string_equal(s->cmds[2].line, "database cluster status");
	free(s);
}

/* Each bad script and the words its error must carry. */
static void
test_parse_refused(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"run database cluster join 10.0.0.1;reboot\n", "console word"},
	    {"run database cluster join '10.0.0.1'\n", "console word"},
	    {"run backup snapshot $(id)\n", "console word"},
	    {"run database cluster join `id`\n", "console word"},
	    {"run\n", "command is missing"},
	    {"expect Connected\n", "no run before it"},
	    {"confirm (Y/n) Y\n", "no run before it"},
	    {"run a\nconfirm Y\n", "confirm TEXT ANSWER"},
	    {"run a\nconfirm (Y/n) Y!\n", "letters and digits"},
	    {"run a\nconfirm (Y/n) Y\nconfirm (y/N) y\n", "one per command"},
	    {"run a\nuntil 10\n", "needs an `expect`"},
	    {"run a\nexpect b\nuntil 0\n", "1 to 3600"},
	    {"run a\nexpect b\nuntil 99999\n", "1 to 3600"},
	    {"run a\nexpect b\nuntil 5s\n", "1 to 3600"},
	    {"only primary,nobody\nrun a\n", "unknown role 'nobody'"},
	    {"reboot now\n", "unknown directive 'reboot'"},
	    {"prompt two words\nrun a\n", "one word"},
	    {"run a\r\n", "carriage return"},
	    {"run a\nexpect caf\xc3\xa9\n", "printable ASCII"},
	    {"refuse no\nrefuse again\n", "only one"},
	    {"# only comments\n", "nothing to send"},
	};
	struct cms_script *s = calloc(1, sizeof(*s));
	struct dbpki_err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].text, s, &e), DBPKI_E_CONFIG);
		if (strstr(e.msg, cases[i].want) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, e.msg,
			    cases[i].want);
		assert_non_null(strstr(e.msg, "action.sh"));
	}
	free(s);
}

static void
test_parse_limits(void **state)
{
	struct cms_script *s = calloc(1, sizeof(*s));
	struct dbpki_err e;
	char text[4096] = "";
	int i;

	(void)state;
	/* no prompt at all */
	memset(s, 0, sizeof(*s));
	assert_int_equal(cms_script_parse("run a\n", "x.sh", s, &e), 0);
	assert_int_equal(cms_script_check(s, "x.sh", &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "no `prompt`"));
	/* 33 commands: one too many; the error names the line */
	for (i = 0; i < CMS_MAX_CMDS + 1; i++)
		strcat(text, "run database cluster status\n");
	assert_int_equal(parse(text, s, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "action.sh:33:"));
	/* a refusal alone is a complete script, and only for its roles */
	assert_int_equal(parse("only client\nrefuse not here\nonly all\n"
			       "run database cluster status\n",
			     s, &e),
	    0);
	cms_script_for_role(s, ROLE_REPLICA);
	assert_string_equal(s->refuse, "");
	assert_int_equal(parse("refuse not on CMS\n", s, &e), 0);
	cms_script_for_role(s, ROLE_CLIENT);
	assert_string_equal(s->refuse, "not on CMS");
	free(s);
}

static void
test_reply_complete(void **state)
{
	static const struct {
		const char *raw;
		int want;
	} cases[] = {
	    {"node1> ", 1},
	    {"node1>", 1},
	    {"Status : Enabled\r\nnode1> ", 1},
	    {"banner\nnode1>  ", 0}, /* two spaces: not the prompt */
	    {"Continue? (Y/n) ", 0},
	    {"a b> ", 0},
	    {"node1> \n", 0},
	    {"", 0},
	    {"->", 1},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (cms_reply_complete(cases[i].raw, strlen(cases[i].raw),
			">") != cases[i].want)
			fail_msg("case %zu: '%s'", i, cases[i].raw);
}

static void
test_reply_clean(void **state)
{
	const char raw[] = "database cluster status\r\n"
			   "\x1b[1mStatus\x1b[0m : Enabled\r\n"
			   "bell\x07 and \xff\r\n"
			   "node1> ";
	char out[256];

	(void)state;
	cms_reply_clean(
	    raw, sizeof(raw) - 1, "database cluster status", ">", out, 256);
	assert_string_equal(out, "Status : Enabled\nbell? and ?\n");
	/* without an echo the first line is kept */
	cms_reply_clean("Unknown command: x\nn> ",
	    strlen("Unknown command: x\nn> "), "x", ">", out, 256);
	assert_string_equal(out, "Unknown command: x\n");
	/* a tiny buffer is still terminated */
	cms_reply_clean(raw, sizeof(raw) - 1, "y", ">", out, 4);
	assert_int_equal(strlen(out), 3);
}

static void
test_text_has(void **state)
{
	const char text[] = "Nodes:\n"
			    "    10.0.0.11 (me)      : Connected Primary\n"
			    "    110.0.0.1           : Connected Replica\n";

	(void)state;
	assert_true(cms_text_has(text, "10.0.0.11 (me) : Connected Primary"));
	assert_true(cms_text_has(text, "  (me)   :  Connected  "));
	assert_false(cms_text_has(text, "(me):Connected"));
	/* a pattern starting with a digit starts a word */
	assert_false(cms_text_has(text, "10.0.0.1 : Connected"));
	assert_true(cms_text_has(text, "110.0.0.1 : Connected Replica"));
	/* never across lines */
	assert_false(cms_text_has(text, "Primary 110.0.0.1"));
	assert_false(cms_text_has(text, "   "));
	assert_false(cms_text_has(text, "Connected Primaryx"));
}

static void
test_judge(void **state)
{
	struct cms_script *s = calloc(1, sizeof(*s));
	struct dbpki_err e;
	char why[256];

	(void)state;
	assert_int_equal(parse(certs, s, &e), 0);
	/* the status command: expect and its own failure text */
	assert_int_equal(cms_reply_judge(s, &s->cmds[3],
			     "Status : Enabled\n"
			     "  10.0.0.1 (me)   : Connected    Primary\n",
			     why, sizeof(why)),
	    CMS_OK);
	assert_string_equal(why, "10.0.0.1 (me) : Connected Primary");
	assert_int_equal(cms_reply_judge(s, &s->cmds[3],
			     "Status : Enabled\n 10.0.0.1 (me) : Starting\n",
			     why, sizeof(why)),
	    CMS_PENDING);
	assert_string_equal(why, "10.0.0.1 (me) : Connected   Primary");
	assert_int_equal(
	    cms_reply_judge(s, &s->cmds[3], "10.0.0.1 (me) : Database down\n",
		why, sizeof(why)),
	    CMS_FAILED);
	assert_string_equal(why, "10.0.0.1 (me) : Database down");
	/* the console's failure text wins over a present expect */
	assert_int_equal(cms_reply_judge(s, &s->cmds[3],
			     "10.0.0.1 (me) : Connected Primary\n"
			     "Failure:   disk full\n",
			     why, sizeof(why)),
	    CMS_FAILED);
	assert_string_equal(why, "Failure: disk full");
	/* no expect: no failure text is success; the note is the last line */
	assert_int_equal(cms_reply_judge(s, &s->cmds[0], "Certificates set\n\n",
			     why, sizeof(why)),
	    CMS_OK);
	assert_string_equal(why, "Certificates set");
	assert_int_equal(
	    cms_reply_judge(s, &s->cmds[0], "", why, sizeof(why)), CMS_OK);
	assert_int_equal(cms_reply_judge(s, &s->cmds[0],
			     "Unknown command: database\n", why, sizeof(why)),
	    CMS_FAILED);
	free(s);
}

static void
test_file_names(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(
	    cms_file_name("server.key", "20250101T000000Z", out, sizeof(out)),
	    0);
	assert_string_equal(out, "dbserver-20250101T000000Z.key");
	assert_int_equal(cms_file_name("client.crt", "R", out, sizeof(out)), 0);
	assert_string_equal(out, "dbclient-R.crt");
	assert_int_equal(cms_file_name("dbca.crt", "R", out, sizeof(out)), 0);
	assert_string_equal(out, "dbca-R.crt");
	assert_int_equal(cms_file_name("../x", "R", out, sizeof(out)), -1);
	assert_int_equal(cms_file_name("dbca.crt", "R", out, 5), -1);
}

static void
test_print(void **state)
{
	struct cms_script *s = calloc(1, sizeof(*s));
	struct dbpki_err e;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(parse(certs, s, &e), 0);
	cms_script_for_role(s, ROLE_REPLICA);
	assert_non_null(f = open_memstream(&buf, &len));
	cms_script_print(f, s, "db2", "  ");
	fclose(f);
	assert_non_null(strstr(buf, "  db2> database cluster certs k.key "
				    "s.crt ck.key cc.crt ca.crt\n"));
	assert_non_null(strstr(buf, "answers Y when asked '(Y/n)'"));
	assert_non_null(strstr(buf, "at most 60 s"));
	assert_non_null(strstr(buf, "'Failure', 'Unknown command'"));
	assert_null(strstr(buf, "certs ck.key cc.crt ca.crt\n  db2>"));
	free(buf);
	free(s);
}

/* The shipped templates/cms: every action the playbooks use renders and
 * parses for every role, with only console words in every command. */
static void
test_shipped_templates(void **state)
{
	static const char *const actions[] = {"remove", "certs", "initialize",
	    "join", "connect", "snapshot", "restart", "renew-refuse", "reload",
	    "certs-undo"};
	static const char *const slots[][2] = {{"address", "10.0.0.11"},
	    {"primary_address", "10.0.0.10"}, {"ca_crt", "dbca-R.crt"},
	    {"server_key", "dbserver-R.key"}, {"server_crt", "dbserver-R.crt"},
	    {"client_key", "dbclient-R.key"}, {"client_crt", "dbclient-R.crt"},
	    {"snapshot", "dbpki-R"}};
	struct cms_script *s = calloc(1, sizeof(*s));
	char *common_txt = NULL, *text = NULL;
	struct tpl_vars v = {0};
	struct dbpki_err e;
	char why[256];
	size_t i;
	int role;

	(void)state;
	for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
		assert_int_equal(
		    tpl_vars_set(&v, slots[i][0], slots[i][1], &e), 0);
	assert_int_equal(
	    tpl_render_file("cms", "common", &v, &common_txt, &e), 0);
	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
		if (tpl_render_file("cms", actions[i], &v, &text, &e) != 0)
			fail_msg("%s: %s", actions[i], e.msg);
		for (role = ROLE_PRIMARY; role <= ROLE_CLIENT; role++) {
			memset(s, 0, sizeof(*s));
			if (cms_script_parse(common_txt, "common.sh", s, &e) !=
				0 ||
			    cms_script_parse(text, actions[i], s, &e) != 0 ||
			    cms_script_check(s, actions[i], &e) != 0)
				fail_msg("%s: %s", actions[i], e.msg);
			cms_script_for_role(s, (enum cfg_role)role);
			assert_true(s->n > 0 || s->refuse[0] != '\0');
		}
		free(text);
		text = NULL;
	}
	/* a status that reports an earlier failure is not itself one; the
	 * console's failure message is */
	assert_int_equal(tpl_render_file("cms", "remove", &v, &text, &e), 0);
	memset(s, 0, sizeof(*s));
	assert_int_equal(cms_script_parse(common_txt, "common.sh", s, &e), 0);
	assert_int_equal(cms_script_parse(text, "remove", s, &e), 0);
	free(text);
	assert_int_equal(
	    cms_reply_judge(s, &s->cmds[0],
		"Status : Enabled\n"
		"Last command : 'database cluster join' (Failure)\n",
		why, sizeof(why)),
	    CMS_OK);
	assert_int_equal(
	    cms_reply_judge(s, &s->cmds[0],
		"Failure: database cluster is busy\n", why, sizeof(why)),
	    CMS_FAILED);
	/* the documented sequence, spot-checked */
	assert_int_equal(tpl_render_file("cms", "certs", &v, &text, &e), 0);
	memset(s, 0, sizeof(*s));
	assert_int_equal(cms_script_parse(common_txt, "common.sh", s, &e), 0);
	assert_int_equal(cms_script_parse(text, "certs", s, &e), 0);
	cms_script_for_role(s, ROLE_CLIENT);
	assert_string_equal(s->cmds[0].line,
	    "database cluster certs dbclient-R.key dbclient-R.crt dbca-R.crt");
	free(text);
	free(common_txt);
	tpl_vars_free(&v);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_script),
	    cmocka_unit_test(test_parse_refused),
	    cmocka_unit_test(test_parse_limits),
	    cmocka_unit_test(test_reply_complete),
	    cmocka_unit_test(test_reply_clean),
	    cmocka_unit_test(test_text_has),
	    cmocka_unit_test(test_judge),
	    cmocka_unit_test(test_file_names),
	    cmocka_unit_test(test_print),
	    cmocka_unit_test(test_shipped_templates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
