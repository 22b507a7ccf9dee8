/* Unit tests for playbook: every parse error with its file:line, defaults,
 * and the three shipped playbooks. */
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

#include "dbpki/playbook.h"
#include "dbpki/util.h"

#define HEAD "[playbook]\nname = t\n" /* lines 1-2 */

#define P (1u << ROLE_PRIMARY)
#define R (1u << ROLE_REPLICA)
#define C (1u << ROLE_CLIENT)

static const struct {
	const char *text;
	const char *where; /* "t.ini:LINE:" or "t.ini: " */
	const char *what;
} bad[] = {
    {HEAD "[step a]\naction = x\nroles = all\n[foo]\n",
	"t.ini:6:", "unknown section [foo]"},
    {HEAD "[step a]\naction = x\nroles = all\nsleep = 3\n",
	"t.ini:6:", "[step a] sleep: unknown key"},
    {HEAD "author = me\n[step a]\naction = x\nroles = all\n",
	"t.ini:3:", "[playbook] author: unknown key"},
    {HEAD "[step a]\naction = x\nroles = primary, standby\n",
	"t.ini:5:", "[step a] roles: \"primary, standby\""},
    {HEAD "[step a]\naction = x\nroles = primary,,client\n",
	"t.ini:5:", "[step a] roles:"},
    {HEAD "[step a]\naction = x\nroles = primary,\n",
	"t.ini:5:", "[step a] roles:"},
    {HEAD "[step a]\naction = x\nroles =\n", "t.ini:5:", "[step a] roles:"},
    {HEAD "[step a]\naction = x\nroles = all\nmode = fast\n",
	"t.ini:6:", "[step a] mode: \"fast\" is not one of: parallel, serial"},
    {HEAD "[step a]\naction = x\nroles = all\non_failure = retry\n",
	"t.ini:6:", "[step a] on_failure: \"retry\""},
    {HEAD "[step a]\naction = x\nroles = all\nupload = true\n",
	"t.ini:6:", "[step a] upload: \"true\" is not one of: yes, no"},
    {HEAD "[step a]\naction = x\nroles = all\nverify = cluster\n",
	"t.ini:6:", "either action (line 4) or verify (line 6), not both"},
    {HEAD "[step a]\nverify = cluster\n\naction = x\n", "t.ini:6:",
	"[step a] action: a step has either action (line 6) or verify "
	"(line 4)"},
    {HEAD "[step a]\naction = x\nroles = all\n[step b]\nverify = cluster\n"
	  "[step a]\n",
	"t.ini:8:", "[step a]: duplicate step (first at line 3)"},
    {HEAD "\n[step a]\nroles = all\nmode = serial\n",
	"t.ini:4:", "[step a]: needs action = NAME"},
    {HEAD "[step a]\naction = ../remove\nroles = all\n",
	"t.ini:4:", "[step a] action: \"../remove\" is not an action name"},
    {HEAD "[step a]\naction = Remove\nroles = all\n",
	"t.ini:4:", "is not an action name"},
    {HEAD "[step a]\naction = x\nundo = rm -rf\nroles = all\n",
	"t.ini:5:", "[step a] undo: \"rm -rf\" is not an action name"},
    {HEAD "[step a]\naction = x\nroles = all\nroles = primary\n",
	"t.ini:6:", "[step a] roles: given twice (first at line 5)"},
    {HEAD "description = a\ndescription = b\n[step a]\nverify = cluster\n",
	"t.ini:4:", "[playbook] description: given twice (first at line 3)"},
    {HEAD "[step a]\nverify = cluster\n[playbook]\n",
	"t.ini:5:", "[playbook]: given twice (first at line 1)"},
    {"name = t\n[playbook]\n", "t.ini:1:", "key outside any section"},
    {HEAD "[step a]\naction = x\nroles = primary,\n  client\n",
	"t.ini:5:", "roles:"},
    {HEAD "[step a]\naction = x\nroles = primary\n  , client\n",
	"t.ini:6:", "indented line"},
    {HEAD "[step a]\n\taction = x\n", "t.ini:4:", "indented line"},
    {HEAD "[step a]\naction = x\nroles = all\nthis line has no equals\n",
	"t.ini:6:", "expected `key = value`"},
    {HEAD "[step a]\naction = x\nroles = all\nmode = serial\n"
	  "junk\n",
	"t.ini:7:", "expected `key = value`"},
    /* A syntax error before a key error is reported first. */
    {HEAD "junk\n[step a]\naction = x\nroles = all\nbogus = 1\n",
	"t.ini:3:", "expected `key = value`"},
    {HEAD "[step a]\nverify = cluster\n[step b\n",
	"t.ini:5:", "section header without ']'"},
    {HEAD "[step a] extra\nverify = cluster\n",
	"t.ini:3:", "text after the section header"},
    {HEAD "[step]\nverify = cluster\n",
	"t.ini:3:", "[step]: a step needs a name"},
    {HEAD "[step Big]\nverify = cluster\n",
	"t.ini:3:", "[step Big]: a step name must be [a-z0-9_-]+"},
    {HEAD "[step a]\naction = x\n\n", "t.ini:3:", "[step a]: roles = missing"},
    {HEAD "[step a]\nverify = cluster\nupload = yes\n",
	"t.ini:5:", "[step a] upload: only an action step ships files"},
    {HEAD "[step a]\nverify = cluster\nundo = revert\n",
	"t.ini:5:", "[step a] undo: a verification has nothing to undo"},
    {HEAD "[step a]\nverify = everything\n", "t.ini:4:",
	"[step a] verify: \"everything\" is not one of: cluster, primary"},
    {HEAD "[step a]\naction = x\nroles = all\nplatforms = oracle\n",
	"t.ini:6:", "[step a] platforms: \"oracle\""},
    {HEAD "[step a]\naction = x\x01\nroles = all\n",
	"t.ini:4:", "control byte 0x01"},
    {HEAD "[step a]\naction = x\nroles = all\nmode = serial\x7f\n",
	"t.ini:6:", "control byte 0x7f"},
    {"[playbook]\nname = Bad Name\n[step a]\nverify = cluster\n",
	"t.ini:2:", "[playbook] name: \"Bad Name\" is not [a-z0-9_-]+"},
    {HEAD "[step a]\naction = x\nroles = all\non_failure = rollback\n"
	  "[step b]\naction = y\nundo = y\nroles = all\n",
	"t.ini:6:",
	"[step a] on_failure: rollback, but neither this step nor one "
	"before it has undo"},
    {"[step a]\nverify = cluster\n", "t.ini: ", "no [playbook] section"},
    {"[playbook]\ndescription = x\n[step a]\nverify = cluster\n",
	"t.ini:1:", "[playbook]: name = missing"},
    {HEAD "description = nothing here\n", "t.ini: ", "no [step NAME] sections"},
    {"", "t.ini: ", "no [playbook] section"},
};

static void
test_parse_errors(void **state)
{
	struct playbook *pb;
	struct dbpki_err e;
	size_t i;

	(void)state;
	assert_non_null(pb = malloc(sizeof(*pb)));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (pb_load_string("t.ini", bad[i].text, pb, &e) !=
		    DBPKI_E_CONFIG)
			fail_msg("case %zu: accepted or wrong code %d: %s", i,
			    e.code, e.msg);
		if (strncmp(e.msg, bad[i].where, strlen(bad[i].where)) != 0 ||
		    strstr(e.msg, bad[i].what) == NULL)
			fail_msg("case %zu: got \"%s\"; want \"%s...%s\"", i,
			    e.msg, bad[i].where, bad[i].what);
		/* A failed load leaves nothing half-filled. */
		assert_int_equal(pb->n_steps, 0);
		assert_string_equal(pb->name, "");
	}
	free(pb);
}

static char *
long_line(const char *prefix, size_t total)
{
	char *s = malloc(total + 64);

	assert_non_null(s);
	assert_int_equal(util_fmt(s, total + 64, "%s", prefix), 0);
	memset(s + strlen(prefix), 'x', total - strlen(prefix));
	s[total] = '\0';
	return s;
}

static void
test_line_length(void **state)
{
	struct playbook *pb;
	struct dbpki_err e;
	char *desc, text[1024];

	(void)state;
	assert_non_null(pb = malloc(sizeof(*pb)));
	/* 197 characters: the longest line inih's 200-byte buffer takes
	 * whole (it needs room for "\r\n\0"). */
	desc = long_line("description = ", 197);
	assert_int_equal(util_fmt(text, sizeof(text),
			     HEAD "%s\r\n[step a]\nverify = cluster\n", desc),
	    0);
	err_clear(&e);
	if (pb_load_string("t.ini", text, pb, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(strlen(pb->description), 197 - 14);
	free(desc);
	/* inih would split a longer line in two and read the tail as a key. */
	desc = long_line("description = ", 198);
	assert_int_equal(util_fmt(text, sizeof(text),
			     HEAD "%s\n[step a]\nverify = cluster\n", desc),
	    0);
	assert_int_equal(pb_load_string("t.ini", text, pb, &e), DBPKI_E_CONFIG);
	assert_string_equal(
	    e.msg, "t.ini:3: line too long (198 characters, at most 197)");
	free(desc);
	free(pb);
}

static void
test_too_many_steps(void **state)
{
	struct playbook *pb;
	struct dbpki_err e;
	char text[4096], want[64];
	size_t len;
	int i;

	(void)state;
	assert_non_null(pb = malloc(sizeof(*pb)));
	len = (size_t)snprintf(text, sizeof(text), HEAD);
	for (i = 0; i < PB_MAX_STEPS; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		    "[step s%d]\nverify = cluster\n", i);
	err_clear(&e);
	assert_int_equal(pb_load_string("t.ini", text, pb, &e), 0);
	assert_int_equal(pb->n_steps, PB_MAX_STEPS);
	assert_string_equal(pb->steps[31].name, "s31");
	snprintf(
	    text + len, sizeof(text) - len, "[step s32]\nverify = cluster\n");
	assert_int_equal(pb_load_string("t.ini", text, pb, &e), DBPKI_E_CONFIG);
	/* Header of step 33 is line 2 + 2 * 32 + 1. */
	snprintf(want, sizeof(want), "t.ini:%d: [step s32]: too many steps",
	    2 + 2 * PB_MAX_STEPS + 1);
	if (strstr(e.msg, want) == NULL)
		fail_msg("got \"%s\", want \"%s\"", e.msg, want);
	free(pb);
}

static void
test_rollback_after_undo(void **state)
{
	static const char text[] =
	    HEAD "[step a]\naction = x\nroles = all\non_failure = rollback\n"
		 "undo = y\n[step b]\nverify = cluster\non_failure = rollback\n"
		 "[step c]\naction = z\nroles = all\non_failure = rollback\n";
	struct playbook *pb;
	struct dbpki_err e;

	(void)state;
	assert_non_null(pb = malloc(sizeof(*pb)));
	err_clear(&e);
	if (pb_load_string("t.ini", text, pb, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(pb->n_steps, 3);
	assert_int_equal(pb->steps[2].on_failure, PB_FAIL_ROLLBACK);
	free(pb);
}

static void
test_defaults_and_values(void **state)
{
	static const char text[] =
	    "\xef\xbb\xbf; a comment after a byte order mark\r\n"
	    "# another\n"
	    "[playbook]\n"
	    "name = t   ; inline comment\n"
	    "description = a b: c\n"
	    "\n"
	    "[step one]\n"
	    "action = act_1\n"
	    "roles = client , primary\n"
	    "[ step two ]\n"
	    "action = act-2\r\n"
	    "undo = revert\n"
	    "roles = database\n"
	    "platforms = cms\n"
	    "mode = parallel\n"
	    "on_failure = rollback\n"
	    "upload = yes\n"
	    "[step check]\n"
	    "verify = primary\n"
	    "[step all]\n"
	    "verify = cluster\n"
	    "roles = replica\n";
	struct playbook *pb;
	struct dbpki_err e;
	const struct pb_step *s;
	char roles[64];

	(void)state;
	assert_non_null(pb = malloc(sizeof(*pb)));
	err_clear(&e);
	if (pb_load_string("t.ini", text, pb, &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(pb->path, "t.ini");
	assert_string_equal(pb->name, "t");
	assert_string_equal(pb->description, "a b: c");
	assert_int_equal(pb->n_steps, 4);
	s = &pb->steps[0];
	assert_string_equal(s->name, "one");
	assert_string_equal(s->action, "act_1");
	assert_string_equal(s->undo, "");
	assert_int_equal(s->verify, PB_VERIFY_NONE);
	assert_int_equal(s->roles, P | C);
	assert_int_equal(s->platforms, PB_PLATFORMS_ALL);
	assert_int_equal(s->parallel, 0);
	assert_int_equal(s->on_failure, PB_FAIL_STOP);
	assert_int_equal(s->upload, 0);
	assert_int_equal(s->line, 7);
	s = &pb->steps[1];
	assert_string_equal(s->name, "two");
	assert_string_equal(s->action, "act-2");
	assert_string_equal(s->undo, "revert");
	assert_int_equal(s->roles, P | R);
	assert_int_equal(s->platforms, 1u << PLATFORM_CMS);
	assert_int_equal(s->parallel, 1);
	assert_int_equal(s->on_failure, PB_FAIL_ROLLBACK);
	assert_int_equal(s->upload, 1);
	assert_int_equal(s->line, 10);
	assert_true(pb_step_applies(s, ROLE_PRIMARY, PLATFORM_CMS));
	assert_false(pb_step_applies(s, ROLE_PRIMARY, PLATFORM_POSTGRES));
	assert_false(pb_step_applies(s, ROLE_CLIENT, PLATFORM_CMS));
	s = &pb->steps[2];
	assert_int_equal(s->verify, PB_VERIFY_PRIMARY);
	assert_string_equal(s->action, "");
	assert_int_equal(s->roles, PB_ROLES_ALL);
	assert_string_equal(pb_verify_name(s->verify), "primary");
	s = &pb->steps[3];
	assert_int_equal(s->verify, PB_VERIFY_CLUSTER);
	assert_int_equal(s->roles, R);
	/* A byte order mark right before the first section header. */
	if (pb_load_string("b.ini",
		"\xef\xbb\xbf[playbook]\nname = b\n"
		"[step a]\nverify = cluster\n",
		pb, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(pb->n_steps, 1);
	pb_roles_string(P | C, roles, sizeof(roles));
	assert_string_equal(roles, "primary, client");
	pb_roles_string(PB_ROLES_ALL, roles, sizeof(roles));
	assert_string_equal(roles, "primary, replica, client");
	assert_string_equal(pb_on_failure_name(PB_FAIL_ROLLBACK), "rollback");
	assert_string_equal(pb_on_failure_name(PB_FAIL_STOP), "stop");
	free(pb);
}

struct want_step {
	const char *name;
	const char *action; /* or the verify name */
	unsigned roles;
	int parallel;
	int upload;
	enum pb_on_failure on_failure;
};

static void
check_steps(const struct playbook *pb, const struct want_step *w, int n)
{
	const struct pb_step *s;
	int i;

	assert_int_equal(pb->n_steps, n);
	for (i = 0; i < n; i++) {
		s = &pb->steps[i];
		assert_string_equal(s->name, w[i].name);
		assert_string_equal(s->verify == PB_VERIFY_NONE
					? s->action
					: pb_verify_name(s->verify),
		    w[i].action);
		if (s->roles != w[i].roles || s->parallel != w[i].parallel ||
		    s->upload != w[i].upload ||
		    s->on_failure != w[i].on_failure)
			fail_msg("%s step %s: roles %u parallel %d upload %d "
				 "on_failure %d",
			    pb->name, s->name, s->roles, s->parallel, s->upload,
			    (int)s->on_failure);
	}
}

static void
test_shipped_playbooks(void **state)
{
	static const struct want_step boot[] = {
	    {"remove", "remove", P | R | C, 1, 0, PB_FAIL_STOP},
	    {"certs", "certs", P | R | C, 1, 1, PB_FAIL_STOP},
	    {"initialize", "initialize", P, 0, 0, PB_FAIL_STOP},
	    {"primary-up", "primary", P | R | C, 0, 0, PB_FAIL_STOP},
	    {"join", "join", R, 1, 0, PB_FAIL_STOP},
	    {"connect", "connect", C, 1, 0, PB_FAIL_STOP},
	    {"verify", "cluster", P | R | C, 0, 0, PB_FAIL_STOP},
	};
	static const struct want_step rot[] = {
	    {"snapshot", "snapshot", P | R, 0, 0, PB_FAIL_STOP},
	    {"remove", "remove", R | C, 1, 0, PB_FAIL_STOP},
	    {"remove-primary", "remove", P, 0, 0, PB_FAIL_STOP},
	    {"certs", "certs", P | R | C, 1, 1, PB_FAIL_STOP},
	    {"restart", "restart", P, 0, 0, PB_FAIL_STOP},
	    {"primary-up", "primary", P | R | C, 0, 0, PB_FAIL_STOP},
	    {"join", "join", R, 1, 0, PB_FAIL_STOP},
	    {"connect", "connect", C, 1, 0, PB_FAIL_STOP},
	    {"verify", "cluster", P | R | C, 0, 0, PB_FAIL_STOP},
	};
	static const struct want_step ren[] = {
	    {"cms-refuse", "renew-refuse", P, 0, 0, PB_FAIL_STOP},
	    {"certs", "certs", P | R | C, 1, 1, PB_FAIL_ROLLBACK},
	    {"reload", "reload", P | R, 1, 0, PB_FAIL_ROLLBACK},
	    {"verify", "cluster", P | R | C, 0, 0, PB_FAIL_ROLLBACK},
	};
	struct playbook *pb;
	struct dbpki_err e;

	(void)state;
	unsetenv("DBPKI_PLAYBOOKS");
	assert_non_null(pb = malloc(sizeof(*pb)));
	err_clear(&e);
	if (pb_load_named("bootstrap", pb, &e) != 0)
		fail_msg("%s", e.msg);
	assert_non_null(strstr(pb->path, "/playbooks/bootstrap.ini"));
	check_steps(pb, boot, sizeof(boot) / sizeof(boot[0]));
	assert_int_equal(pb->steps[0].platforms, PB_PLATFORMS_ALL);

	if (pb_load_named("rotate", pb, &e) != 0)
		fail_msg("%s", e.msg);
	check_steps(pb, rot, sizeof(rot) / sizeof(rot[0]));
	assert_int_equal(pb->steps[0].platforms, 1u << PLATFORM_CMS);
	assert_false(
	    pb_step_applies(&pb->steps[0], ROLE_PRIMARY, PLATFORM_POSTGRES));

	if (pb_load_named("renew", pb, &e) != 0)
		fail_msg("%s", e.msg);
	check_steps(pb, ren, sizeof(ren) / sizeof(ren[0]));
	/* CMS cannot renew without downtime: refused first (docs/cms.md) */
	assert_int_equal(pb->steps[0].platforms, 1u << PLATFORM_CMS);
	assert_string_equal(pb->steps[1].undo, "certs-undo");
	assert_string_equal(pb->steps[2].undo, "");

	/* Names are checked before any path is built. */
	assert_int_equal(
	    pb_load_named("../playbooks/renew", pb, &e), DBPKI_E_USAGE);
	assert_int_equal(pb_load_named("", pb, &e), DBPKI_E_USAGE);
	assert_int_equal(pb_load_named("nosuch", pb, &e), DBPKI_E_SYS);
	assert_non_null(strstr(e.msg, "nosuch.ini"));
	free(pb);
}

static void
write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_files(void **state)
{
	static const char good[] = HEAD "[step a]\nverify = cluster\n";
	char tmp[] = "/tmp/dbpki-pb-XXXXXX", path[PATH_MAX], link[PATH_MAX];
	struct playbook *pb;
	struct dbpki_err e;

	(void)state;
	assert_non_null(pb = malloc(sizeof(*pb)));
	assert_non_null(mkdtemp(tmp));
	assert_int_equal(setenv("DBPKI_PLAYBOOKS", tmp, 1), 0);
	err_clear(&e);

	/* [playbook] name must match the file it came from. */
	assert_int_equal(util_fmt(path, sizeof(path), "%s/other.ini", tmp), 0);
	write_file(path, good, sizeof(good) - 1, 0644);
	assert_int_equal(pb_load_named("other", pb, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "/other.ini:2: [playbook] name: says "
				      "\"t\" but the file is other.ini"));
	assert_int_equal(pb_load(path, pb, &e), 0);
	assert_string_equal(pb->path, path);
	unlink(path);

	assert_int_equal(util_fmt(path, sizeof(path), "%s/t.ini", tmp), 0);
	write_file(path, good, sizeof(good) - 1, 0644);
	assert_int_equal(pb_load_named("t", pb, &e), 0);
	assert_int_equal(pb->n_steps, 1);

	/* Refused: group-writable, a symlink, a NUL byte. */
	assert_int_equal(chmod(path, 0664), 0);
	assert_int_equal(pb_load_named("t", pb, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "writable by group or others"));
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(util_fmt(link, sizeof(link), "%s/l.ini", tmp), 0);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(pb_load(link, pb, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "symbolic link"));
	unlink(link);
	write_file(path, HEAD "\0[step a]\n", sizeof(HEAD) + 9, 0644);
	assert_int_equal(pb_load(path, pb, &e), DBPKI_E_CONFIG);
	assert_non_null(strstr(e.msg, "NUL byte"));
	unlink(path);
	assert_int_equal(pb_load(path, pb, &e), DBPKI_E_SYS);
	rmdir(tmp);
	unsetenv("DBPKI_PLAYBOOKS");
	free(pb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_line_length),
	    cmocka_unit_test(test_too_many_steps),
	    cmocka_unit_test(test_rollback_after_undo),
	    cmocka_unit_test(test_defaults_and_values),
	    cmocka_unit_test(test_shipped_playbooks),
	    cmocka_unit_test(test_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
