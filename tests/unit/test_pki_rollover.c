/* Unit tests for the store's side of a CA rollover: the state file parses
 * back what format wrote and refuses anything else (unknown, repeated or
 * missing keys, values out of range, flags of a later stage); the bundle
 * holds old then new and leaves of both CAs verify against it; in a
 * store, each stage's flags decide which CA signs (issue) and what a
 * release ships as dbca.crt; finish archives the old CA and makes the new
 * one the store's, and running it again changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#define SER_A "1a2b3c"
#define SER_B "4d5e6f"

struct fx {
	char dir[64];
	struct dbpki_cluster c;
	struct dbpki_err e;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char text[2048];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/dbpki-test-roll-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(text, sizeof(text),
	    "[cluster]\nname = t\nstate_dir = %s/state\n"
	    "[node db1]\nhost = db1.example.com\naddress = 10.0.0.11\n"
	    "role = primary\n"
	    "[node db2]\nhost = db2.example.com\naddress = 10.0.0.12\n"
	    "role = replica\n"
	    "[node app]\nhost = app.example.com\naddress = 10.0.0.21\n"
	    "role = client\n",
	    f->dir);
	if (cfg_load_string("test.ini", text, &f->c, &f->e) != 0)
		fail_msg("inventory: %s", f->e.msg);
	*state = f;
	return 0;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void
ok(struct fx *f, int r)
{
	if (r != 0)
		fail_msg("unexpected error %d: %s", r, f->e.msg);
}

/* ---- the state file ----------------------------------------------------- */

static int
parse(const char *text, struct pki_rollover *ro, struct dbpki_err *e)
{
	err_clear(e);
	return pki_rollover_parse(text, strlen(text), "state", ro, e);
}

static void
test_state_roundtrip(void **state)
{
	struct pki_rollover ro, back;
	struct dbpki_err e;
	char buf[1024], line[256];

	(void)state;
	memset(&ro, 0, sizeof(ro));
	ro.done = 2;
	ro.signer_new = 1;
	strcpy(ro.old_serial, SER_A);
	strcpy(ro.new_serial, SER_B);
	strcpy(ro.started, "2026-11-22T20:00:00Z");
	assert_true(pki_rollover_format(&ro, buf, sizeof(buf)) > 0);
	assert_int_equal(parse(buf, &back, &e), 0);
	assert_true(back.active);
	assert_int_equal(back.done, 2);
	assert_true(back.signer_new);
	assert_false(back.bundle_new_only);
	assert_string_equal(back.old_serial, SER_A);
	assert_string_equal(back.new_serial, SER_B);
	assert_string_equal(back.started, "2026-11-22T20:00:00Z");
	assert_true(pki_rollover_running(&back));
	pki_rollover_describe(&back, line, sizeof(line));
	assert_string_equal(line, "CA rollover: stage 2 of 3 done (new CA "
				  "serial 4d5e6f, started "
				  "2026-11-22T20:00:00Z)");
	/* Too small a buffer is an error, not a truncated file. */
	assert_int_equal(pki_rollover_format(&ro, buf, 20), -1);
	back.done = 3;
	assert_false(pki_rollover_running(&back));
}

static void
test_state_refusals(void **state)
{
	static const char *const bad[] = {
	    /* unknown key */
	    "done=0\nsigner=old\nbundle=both\nold_serial=1a\nnew_serial=2b\n"
	    "started=2026-11-22T20:00:00Z\ncolour=red\n",
	    /* repeated key */
	    "done=0\ndone=1\nsigner=old\nbundle=both\nold_serial=1a\n"
	    "new_serial=2b\nstarted=2026-11-22T20:00:00Z\n",
	    /* missing key */
	    "done=0\nsigner=old\nbundle=both\nold_serial=1a\nnew_serial=2b\n",
	    /* done out of range */
	    "done=4\nsigner=old\nbundle=both\nold_serial=1a\nnew_serial=2b\n"
	    "started=2026-11-22T20:00:00Z\n",
	    /* upper-case serial */
	    "done=0\nsigner=old\nbundle=both\nold_serial=1A\nnew_serial=2b\n"
	    "started=2026-11-22T20:00:00Z\n",
	    /* a bad time */
	    "done=0\nsigner=old\nbundle=both\nold_serial=1a\nnew_serial=2b\n"
	    "started=yesterday\n",
	    /* the new CA signs before stage 1 is done */
	    "done=0\nsigner=new\nbundle=both\nold_serial=1a\nnew_serial=2b\n"
	    "started=2026-11-22T20:00:00Z\n",
	    /* new CA alone before stage 2 is done */
	    "done=1\nsigner=new\nbundle=new\nold_serial=1a\nnew_serial=2b\n"
	    "started=2026-11-22T20:00:00Z\n",
	    /* same serial twice */
	    "done=0\nsigner=old\nbundle=both\nold_serial=1a\nnew_serial=1a\n"
	    "started=2026-11-22T20:00:00Z\n",
	    /* no '=' */
	    "done 0\n",
	    /* a spelling of signer we do not write */
	    "done=1\nsigner=NEW\nbundle=both\nold_serial=1a\nnew_serial=2b\n"
	    "started=2026-11-22T20:00:00Z\n",
	};
	struct pki_rollover ro;
	struct dbpki_err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &ro, &e) == 0)
			fail_msg("accepted case %zu", i);
		assert_int_equal(e.code, DBPKI_E_CONFIG);
		assert_false(ro.active);
	}
	/* A NUL byte inside is refused too. */
	assert_int_not_equal(
	    pki_rollover_parse("done=0\0x", 8, "state", &ro, &e), 0);
}

/* ---- the bundle and the stages in a store -------------------------------- */

static X509 *
load(struct fx *f, const char *rel)
{
	char p[CFG_PATH];
	X509 *x = NULL;

	assert_int_equal(pki_store_path(&f->c, p, "%s", rel), 0);
	ok(f, pki_cert_load_pem(p, &x, &f->e));
	return x;
}

/* The serial of the certificate(s) in release file `name`, and how many. */
static int
release_ca_count(struct fx *f, const struct cfg_node *n,
    char first[PKI_SERIAL_HEX], char last[PKI_SERIAL_HEX])
{
	STACK_OF(X509) *sk = NULL;
	struct pki_release rel;
	const struct pki_file *caf;
	int k;

	memset(&rel, 0, sizeof(rel));
	ok(f, pki_release_build(&f->c, n, &rel, &f->e));
	ok(f, pki_release_check(&f->c, n, &rel, &f->e));
	assert_non_null(caf = pki_release_file(&rel, "dbca.crt"));
	ok(f, pki_bundle_from_pem(caf->data, caf->len, "dbca.crt", &sk, &f->e));
	k = sk_X509_num(sk);
	pki_cert_serial_hex(sk_X509_value(sk, 0), first);
	pki_cert_serial_hex(sk_X509_value(sk, k - 1), last);
	sk_X509_pop_free(sk, X509_free);
	pki_release_free(&rel);
	return k;
}

/* The issuer serial of the active server certificate of db1: which CA
 * signed it, by verifying against each. */
static int
leaf_verifies(struct fx *f, X509 *ca)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	struct pki_index idx = {0};
	struct pki_entry *ent;
	char p[64 + CFG_PATH];
	X509 *leaf;
	int r;

	ok(f, pki_index_load(&f->c, &idx, &f->e));
	assert_non_null(ent = pki_index_active(&idx, "server", "db1"));
	snprintf(p, sizeof(p), "issued/%s.crt", ent->serial);
	leaf = load(f, p);
	X509_up_ref(ca);
	sk_X509_push(sk, ca);
	err_clear(&f->e);
	r = pki_verify(
	    leaf, sk, PKI_PURPOSE_SERVER, "db1.example.com", 0, &f->e);
	sk_X509_pop_free(sk, X509_free);
	X509_free(leaf);
	pki_index_free(&idx);
	return r == 0;
}

static void
test_stages_in_store(void **state)
{
	struct fx *f = *state;
	const struct cfg_node *db1 = &f->c.nodes[0], *app = &f->c.nodes[2];
	char first[PKI_SERIAL_HEX], last[PKI_SERIAL_HEX], dir[16], rel[64];
	char archived[CFG_PATH], oldser[PKI_SERIAL_HEX], p[CFG_PATH + 16];
	struct pki_rollover ro, again;
	unsigned char *pem = NULL;
	STACK_OF(X509) *sk = NULL;
	X509 *oldca, *newca;
	size_t len = 0;
	struct stat st;
	int rolling;

	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	oldca = load(f, "ca/dbca.crt");
	pki_cert_serial_hex(oldca, oldser);
	ok(f, pki_rollover_trust_rel(&f->c, rel, &rolling, &f->e));
	assert_string_equal(rel, "ca/dbca.crt");
	assert_false(rolling);

	/* Stage 1: a new CA beside the old one, releases trust both. */
	ok(f, pki_rollover_begin(&f->c, &ro, &f->e));
	assert_true(pki_rollover_running(&ro));
	assert_int_equal(ro.done, 0);
	assert_string_equal(ro.old_serial, oldser);
	newca = load(f, "ca/next/dbca.crt");
	assert_int_not_equal(X509_NAME_cmp(X509_get_subject_name(oldca),
				 X509_get_subject_name(newca)),
	    0);
	assert_int_equal(pki_store_path(&f->c, p, "ca/next/dbca.key"), 0);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(release_ca_count(f, db1, first, last), 2);
	assert_string_equal(first, oldser);
	assert_string_equal(last, ro.new_serial);
	assert_int_equal(release_ca_count(f, app, first, last), 2);
	/* Begin again (an interrupted stage 1): the same new CA. */
	ok(f, pki_rollover_begin(&f->c, &again, &f->e));
	assert_string_equal(again.new_serial, ro.new_serial);
	assert_string_equal(again.started, ro.started);

	/* The bundle: old first, new last; each verifies. */
	ok(f, pki_rollover_bundle(oldca, newca, &pem, &len, &f->e));
	ok(f, pki_bundle_from_pem(pem, len, "bundle", &sk, &f->e));
	assert_int_equal(sk_X509_num(sk), 2);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 0), oldca), 0);
	assert_int_equal(X509_cmp(sk_X509_value(sk, 1), newca), 0);
	sk_X509_pop_free(sk, X509_free);
	free(pem);

	/* Between stage 1 and 2 the old CA still signs (renew). */
	ro.done = 1;
	ok(f, pki_rollover_save(&f->c, &ro, &f->e));
	ok(f, pki_rollover_ca_dir(&f->c, dir, &f->e));
	assert_string_equal(dir, "ca");
	ok(f, pki_issue_all(&f->c, 1, &f->e));
	assert_true(leaf_verifies(f, oldca));
	assert_false(leaf_verifies(f, newca));

	/* Stage 2: the new CA signs; issue replaces every old-CA leaf. */
	ro.signer_new = 1;
	ok(f, pki_rollover_save(&f->c, &ro, &f->e));
	ok(f, pki_rollover_ca_dir(&f->c, dir, &f->e));
	assert_string_equal(dir, "ca/next");
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	assert_true(leaf_verifies(f, newca));
	assert_false(leaf_verifies(f, oldca));
	assert_int_equal(release_ca_count(f, db1, first, last), 2);

	/* Stage 3: releases trust the new CA alone. */
	ro.done = 2;
	ro.bundle_new_only = 1;
	ok(f, pki_rollover_save(&f->c, &ro, &f->e));
	assert_int_equal(release_ca_count(f, db1, first, last), 1);
	assert_string_equal(first, ro.new_serial);

	ok(f, pki_rollover_finish(&f->c, &ro, archived, &f->e));
	assert_int_equal(ro.done, 3);
	assert_true(archived[0] != '\0');
	snprintf(p, sizeof(p), "%s/dbca.key", archived);
	assert_int_equal(lstat(p, &st), 0);
	X509_free(newca);
	newca = load(f, "ca/dbca.crt");
	pki_cert_serial_hex(newca, first);
	assert_string_equal(first, ro.new_serial);
	ok(f, pki_rollover_ca_dir(&f->c, dir, &f->e));
	assert_string_equal(dir, "ca");
	assert_int_equal(release_ca_count(f, db1, first, last), 1);
	assert_string_equal(first, ro.new_serial);
	/* Nothing is due after the rollover: the leaves are the new CA's. */
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	assert_true(leaf_verifies(f, newca));

	/* Finish again: nothing more archived, the store unchanged. */
	ok(f, pki_rollover_finish(&f->c, &ro, archived, &f->e));
	assert_string_equal(archived, "");
	X509_free(oldca);
	X509_free(newca);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_state_roundtrip),
	    cmocka_unit_test(test_state_refusals),
	    cmocka_unit_test_setup_teardown(
		test_stages_in_store, setup, teardown),
	};

	log_init(0, 1, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
