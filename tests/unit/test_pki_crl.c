/* Unit tests for revocation and the CRL: a built CRL verifies against the
 * CA and holds exactly the given serials with their reasons (none for
 * unspecified), its number and authority key identifier; pki_crl_check's
 * refusals; in a store: revoke + update list exactly the revoked serials,
 * the number grows, refusals (unknown, CA, ambiguous), a repeat changes
 * nothing; releases carry crl.pem only on database nodes and refuse an
 * expired one; refresh on a near nextUpdate and after a new CA. */
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

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "dbpki/cli.h"
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

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
	snprintf(f->dir, sizeof(f->dir), "/tmp/dbpki-test-crl-XXXXXX");
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

static void
store_ready(struct fx *f)
{
	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_issue_all(&f->c, 0, &f->e));
}

/* The reason of serial in crl: -1 when not listed, 0 when listed without
 * a reason extension. */
static int
crl_reason(X509_CRL *crl, const char *serial)
{
	STACK_OF(X509_REVOKED) *sk = X509_CRL_get_REVOKED(crl);
	ASN1_ENUMERATED *en;
	BIGNUM *bn = NULL;
	char *hex;
	int i, r = -1;

	for (i = 0; i < sk_X509_REVOKED_num(sk) && r < 0; i++) {
		X509_REVOKED *rv = sk_X509_REVOKED_value(sk, i);

		bn = ASN1_INTEGER_to_BN(
		    X509_REVOKED_get0_serialNumber(rv), NULL);
		hex = BN_bn2hex(bn);
		for (char *p = hex; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'F' ? *p + 32 : *p);
		if (strcmp(hex, serial) == 0) {
			en = X509_REVOKED_get_ext_d2i(
			    rv, NID_crl_reason, NULL, NULL);
			r = en ? (int)ASN1_ENUMERATED_get(en) : 0;
			ASN1_ENUMERATED_free(en);
		}
		OPENSSL_free(hex);
		BN_free(bn);
	}
	return r;
}

static int
crl_count(X509_CRL *crl)
{
	STACK_OF(X509_REVOKED) *sk = X509_CRL_get_REVOKED(crl);

	/* RFC 5280: an empty CRL has no revokedCertificates at all. */
	return sk == NULL ? 0 : sk_X509_REVOKED_num(sk);
}

static void
test_reasons_and_time(void **state)
{
	int64_t t;

	(void)state;
	assert_int_equal(pki_crl_reason_parse("keyCompromise"), 1);
	assert_int_equal(pki_crl_reason_parse("cessationOfOperation"), 5);
	assert_int_equal(pki_crl_reason_parse("unspecified"), 0);
	assert_int_equal(pki_crl_reason_parse("cACompromise"), -1);
	assert_int_equal(pki_crl_reason_parse("certificateHold"), -1);
	assert_int_equal(pki_crl_reason_parse("removeFromCRL"), -1);
	assert_int_equal(pki_crl_reason_parse("keycompromise"), -1);
	assert_string_equal(pki_crl_reason_name(9), "privilegeWithdrawn");
	assert_int_equal(pki_iso8601_parse("2026-11-22T20:00:00Z", &t), 0);
	assert_int_equal(t, 1795377600);
	assert_int_equal(pki_iso8601_parse("2026-11-22 20:00:00", &t), -1);
	assert_int_equal(pki_iso8601_parse("2026-11-22T20:00:00Zx", &t), -1);
}

static void
test_build_verify_entries(void **state)
{
	struct fx *f = *state;
	struct pki_revoked v[3] = {
	    {"1a2b", 1700000000, PKI_REASON_KEY_COMPROMISE},
	    {"7f00ff", 1700000100, PKI_REASON_UNSPECIFIED},
	    {"3c", 1700000200, PKI_REASON_CESSATION},
	};
	const ASN1_OCTET_STRING *ski;
	AUTHORITY_KEYID *akid;
	struct pki_ca *ca = NULL;
	X509_CRL *crl = NULL, *back = NULL;
	unsigned char *pem = NULL;
	int64_t now = util_now();
	size_t len = 0;

	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_ca_load(&f->c, &ca, &f->e));
	ok(f, pki_crl_build(ca->cert, ca->key, v, 3, 7, now - 60, now + 86400,
		  &crl, &f->e));
	/* Through PEM and back, as nodes read it. */
	ok(f, pki_crl_to_pem(crl, &pem, &len, &f->e));
	ok(f, pki_crl_from_pem(pem, len, "test", &back, &f->e));
	assert_int_equal(X509_CRL_verify(back, X509_get0_pubkey(ca->cert)), 1);
	ok(f, pki_crl_check(back, ca->cert, now, &f->e));
	assert_int_equal(X509_CRL_get_version(back), X509_CRL_VERSION_2);
	assert_int_equal(pki_crl_number(back), 7);
	assert_int_equal(pki_crl_next_update_of(back), now + 86400);
	assert_int_equal(crl_count(back), 3);
	assert_int_equal(crl_reason(back, "1a2b"), PKI_REASON_KEY_COMPROMISE);
	assert_int_equal(crl_reason(back, "7f00ff"), 0);
	assert_int_equal(crl_reason(back, "3c"), PKI_REASON_CESSATION);
	assert_int_equal(crl_reason(back, "1a2c"), -1);
	akid = X509_CRL_get_ext_d2i(
	    back, NID_authority_key_identifier, NULL, NULL);
	ski = X509_get0_subject_key_id(ca->cert);
	assert_non_null(akid);
	assert_non_null(ski);
	assert_int_equal(ASN1_OCTET_STRING_cmp(akid->keyid, ski), 0);
	AUTHORITY_KEYID_free(akid);
	free(pem);
	X509_CRL_free(back);
	X509_CRL_free(crl);
	pki_ca_free(ca);
}

static void
test_check_refuses(void **state)
{
	struct fx *f = *state;
	struct pki_ca *ca = NULL, *other = NULL;
	X509_CRL *crl = NULL;
	int64_t now = util_now();
	char other_dir[128];

	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_ca_load(&f->c, &ca, &f->e));
	/* Expired: nextUpdate an hour ago. */
	ok(f, pki_crl_build(ca->cert, ca->key, NULL, 0, 1, now - 7200,
		  now - 3600, &crl, &f->e));
	assert_int_equal(
	    pki_crl_check(crl, ca->cert, now, &f->e), DBPKI_E_VERIFY);
	assert_non_null(strstr(f->e.msg, "expired"));
	X509_CRL_free(crl);
	/* Not yet valid beyond the clock-skew allowance. */
	ok(f, pki_crl_build(ca->cert, ca->key, NULL, 0, 1, now + 3600,
		  now + 7200, &crl, &f->e));
	assert_int_equal(
	    pki_crl_check(crl, ca->cert, now, &f->e), DBPKI_E_VERIFY);
	assert_non_null(strstr(f->e.msg, "not yet valid"));
	X509_CRL_free(crl);
	/* Another CA with the same name: the signature gives it away. */
	snprintf(other_dir, sizeof(other_dir), "%s/other", f->dir);
	snprintf(f->c.state_dir, sizeof(f->c.state_dir), "%s", other_dir);
	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_ca_load(&f->c, &other, &f->e));
	ok(f, pki_crl_build(other->cert, other->key, NULL, 0, 1, now - 60,
		  now + 3600, &crl, &f->e));
	assert_int_equal(
	    pki_crl_check(crl, ca->cert, now, &f->e), DBPKI_E_VERIFY);
	assert_non_null(strstr(f->e.msg, "bad signature"));
	X509_CRL_free(crl);
	pki_ca_free(other);
	pki_ca_free(ca);
}

static X509_CRL *
stored_crl(struct fx *f)
{
	X509_CRL *crl = NULL;

	ok(f, pki_crl_load(&f->c, &crl, &f->e));
	return crl;
}

static void
active_serial(
    struct fx *f, const char *kind, const char *node, char out[PKI_SERIAL_HEX])
{
	struct pki_index idx;
	struct pki_entry *ent;

	ok(f, pki_index_load(&f->c, &idx, &f->e));
	ent = pki_index_active(&idx, kind, node);
	assert_non_null(ent);
	memcpy(out, ent->serial, PKI_SERIAL_HEX);
	pki_index_free(&idx);
}

static void
test_store_revoke_update(void **state)
{
	struct fx *f = *state;
	char s1[PKI_SERIAL_HEX], s2[PKI_SERIAL_HEX], p[CFG_PATH];
	struct pki_revoke_req req = {0};
	struct pki_revoke_res res;
	struct pki_ca *ca = NULL;
	X509_CRL *crl;
	struct stat st;

	store_ready(f);
	ok(f, pki_ca_load(&f->c, &ca, &f->e));
	/* The first CRL may be empty: number 1, nothing listed. */
	ok(f, pki_crl_update(&f->c, &f->e));
	crl = stored_crl(f);
	assert_int_equal(pki_crl_number(crl), 1);
	assert_int_equal(crl_count(crl), 0);
	ok(f, pki_crl_check(crl, ca->cert, util_now(), &f->e));
	X509_CRL_free(crl);

	active_serial(f, "server", "db1", s1);
	active_serial(f, "server", "db2", s2);
	req.serial = s1;
	req.reason = PKI_REASON_KEY_COMPROMISE;
	ok(f, pki_revoke(&f->c, &req, &res, &f->e));
	assert_false(res.already);
	assert_true(res.was_active);
	assert_int_equal(res.ent.status, PKI_REVOKED);
	pki_store_path(&f->c, p, "keys/%s.key", s1);
	assert_int_equal(lstat(p, &st), -1);
	/* By node and kind, with the serial written like openssl does. */
	req.serial = NULL;
	req.node = "db2";
	req.kind = "server";
	req.reason = PKI_REASON_UNSPECIFIED;
	ok(f, pki_revoke(&f->c, &req, &res, &f->e));
	assert_string_equal(res.ent.serial, s2);
	ok(f, pki_crl_update(&f->c, &f->e));
	crl = stored_crl(f);
	assert_int_equal(pki_crl_number(crl), 2);
	assert_int_equal(crl_count(crl), 2);
	assert_int_equal(crl_reason(crl, s1), PKI_REASON_KEY_COMPROMISE);
	assert_int_equal(crl_reason(crl, s2), 0);
	ok(f, pki_crl_check(crl, ca->cert, util_now(), &f->e));
	X509_CRL_free(crl);
	ok(f, pki_crl_update(&f->c, &f->e));
	crl = stored_crl(f);
	assert_int_equal(pki_crl_number(crl), 3);
	X509_CRL_free(crl);
	pki_ca_free(ca);
}

static void
test_revoke_refusals(void **state)
{
	struct fx *f = *state;
	char ca_serial[PKI_SERIAL_HEX], cl[PKI_SERIAL_HEX], upper[80];
	struct pki_revoke_req req = {0};
	struct pki_revoke_res res;
	struct pki_index before, after;
	size_t i;

	store_ready(f);
	active_serial(f, "ca", "-", ca_serial);
	active_serial(f, "client", "-", cl);
	req.serial = "00ff00ff";
	assert_int_equal(pki_revoke(&f->c, &req, &res, &f->e), DBPKI_E_USAGE);
	assert_int_equal(cli_exit_code(DBPKI_E_USAGE), 2);
	assert_non_null(strstr(f->e.msg, "not in the index"));
	req.serial = "not-hex";
	assert_int_equal(pki_revoke(&f->c, &req, &res, &f->e), DBPKI_E_USAGE);
	req.serial = ca_serial;
	assert_int_equal(pki_revoke(&f->c, &req, &res, &f->e), DBPKI_E_USAGE);
	assert_non_null(strstr(f->e.msg, "CA certificate"));
	req.serial = NULL;
	req.kind = "server";
	assert_int_equal(pki_revoke(&f->c, &req, &res, &f->e), DBPKI_E_USAGE);
	assert_non_null(strstr(f->e.msg, "2 active certificates match"));
	req.kind = "app";
	assert_int_equal(pki_revoke(&f->c, &req, &res, &f->e), DBPKI_E_USAGE);
	assert_non_null(strstr(f->e.msg, "no active certificate matches"));
	/* Upper case with colons, as openssl prints it. */
	upper[0] = '\0';
	for (i = 0; cl[i] != '\0'; i += 2)
		snprintf(upper + strlen(upper), sizeof(upper) - strlen(upper),
		    "%s%c%c", i ? ":" : "", cl[i] - (cl[i] >= 'a' ? 32 : 0),
		    cl[i + 1] - (cl[i + 1] >= 'a' ? 32 : 0));
	req.serial = upper;
	req.kind = NULL;
	req.reason = PKI_REASON_SUPERSEDED;
	ok(f, pki_revoke(&f->c, &req, &res, &f->e));
	assert_string_equal(res.ent.serial, cl);
	assert_true(res.was_active);
	/* Again: nothing changes, not even the file. */
	ok(f, pki_index_load(&f->c, &before, &f->e));
	ok(f, pki_revoke(&f->c, &req, &res, &f->e));
	assert_true(res.already);
	ok(f, pki_index_load(&f->c, &after, &f->e));
	assert_int_equal(before.n, after.n);
	assert_memory_equal(before.v, after.v, before.n * sizeof(*before.v));
	pki_index_free(&before);
	pki_index_free(&after);
}

static void
test_release_carries_crl(void **state)
{
	struct fx *f = *state;
	struct pki_release rel = {0};
	const struct pki_file *pf;
	struct pki_ca *ca = NULL;
	X509_CRL *old = NULL;
	unsigned char *pem = NULL;
	char p[CFG_PATH];
	size_t len = 0;
	int64_t now = util_now();

	store_ready(f);
	/* No CRL yet: no crl.pem anywhere. */
	ok(f, pki_release_build(&f->c, &f->c.nodes[0], &rel, &f->e));
	assert_null(pki_release_file(&rel, "crl.pem"));
	pki_release_free(&rel);
	ok(f, pki_crl_update(&f->c, &f->e));
	ok(f, pki_release_build(&f->c, &f->c.nodes[1], &rel, &f->e));
	assert_non_null(pf = pki_release_file(&rel, "crl.pem"));
	assert_int_equal(pf->mode, 0644);
	ok(f, pki_release_check(&f->c, &f->c.nodes[1], &rel, &f->e));
	pki_release_free(&rel);
	ok(f, pki_release_build(&f->c, &f->c.nodes[2], &rel, &f->e));
	assert_null(pki_release_file(&rel, "crl.pem")); /* client node */
	pki_release_free(&rel);
	/* An expired CRL in the store is never shipped. */
	ok(f, pki_ca_load(&f->c, &ca, &f->e));
	ok(f, pki_crl_build(ca->cert, ca->key, NULL, 0, 9, now - 7200, now - 60,
		  &old, &f->e));
	ok(f, pki_crl_to_pem(old, &pem, &len, &f->e));
	pki_store_path(&f->c, p, "crl/dbca.crl");
	ok(f, util_write_atomic(p, pem, len, 0644, &f->e));
	ok(f, pki_release_build(&f->c, &f->c.nodes[0], &rel, &f->e));
	assert_int_equal(pki_release_check(&f->c, &f->c.nodes[0], &rel, &f->e),
	    DBPKI_E_VERIFY);
	assert_non_null(strstr(f->e.msg, "node db1: crl.pem"));
	assert_non_null(strstr(f->e.msg, "expired"));
	assert_non_null(strstr(f->e.msg, "--crl-only"));
	pki_release_free(&rel);
	/* ... and refresh rebuilds it with the next number. */
	int refreshed = 0;
	ok(f, pki_crl_refresh(&f->c, &refreshed, &f->e));
	assert_true(refreshed);
	X509_CRL_free(old);
	old = stored_crl(f);
	assert_int_equal(pki_crl_number(old), 10);
	ok(f, pki_crl_check(old, ca->cert, now, &f->e));
	X509_CRL_free(old);
	free(pem);
	pki_ca_free(ca);
}

static void
test_refresh(void **state)
{
	struct fx *f = *state;
	char archived[CFG_PATH], s1[PKI_SERIAL_HEX];
	struct pki_revoke_req req = {0};
	struct pki_revoke_res res;
	struct pki_ca *ca = NULL;
	X509_CRL *crl;
	int64_t t;
	int refreshed = -1;

	store_ready(f);
	/* Without a CRL there is nothing to refresh or watch. */
	ok(f, pki_crl_refresh(&f->c, &refreshed, &f->e));
	assert_int_equal(refreshed, 0);
	ok(f, pki_crl_next_update(&f->c, &t, &f->e));
	assert_int_equal(t, 0);
	/* A 2-day CRL, judged with 10-day settings: within 5 days, rebuilt
	 * (number 2); a fresh 10-day one is left alone. */
	f->c.ca_crl_validity = 2 * 86400;
	ok(f, pki_crl_update(&f->c, &f->e));
	ok(f, pki_crl_next_update(&f->c, &t, &f->e));
	assert_true(t > util_now() + 86400 && t <= util_now() + 2 * 86400);
	f->c.ca_crl_validity = 10 * 86400;
	ok(f, pki_crl_refresh(&f->c, &refreshed, &f->e));
	assert_int_equal(refreshed, 1);
	ok(f, pki_crl_refresh(&f->c, &refreshed, &f->e));
	assert_int_equal(refreshed, 0);
	crl = stored_crl(f);
	assert_int_equal(pki_crl_number(crl), 2);
	X509_CRL_free(crl);
	/* A revoked leaf, then a new CA (rotate): `issue` rebuilds the CRL,
	 * signed by the new CA, without the old CA's serials. */
	active_serial(f, "server", "db1", s1);
	req.serial = s1;
	ok(f, pki_revoke(&f->c, &req, &res, &f->e));
	ok(f, pki_crl_update(&f->c, &f->e));
	ok(f, pki_ca_archive(&f->c, archived, &f->e));
	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_issue_all(&f->c, 1, &f->e));
	ok(f, pki_ca_load(&f->c, &ca, &f->e));
	crl = stored_crl(f);
	ok(f, pki_crl_check(crl, ca->cert, util_now(), &f->e));
	assert_int_equal(pki_crl_number(crl), 1);
	assert_int_equal(crl_count(crl), 0);
	X509_CRL_free(crl);
	pki_ca_free(ca);
}

static void
test_list_filters(void **state)
{
	struct fx *f = *state;
	struct pki_list_filter lf = {0, -1, NULL, NULL};
	struct pki_revoke_req req = {0};
	struct pki_revoke_res res;
	char *buf = NULL;
	size_t len = 0, n = 0;
	FILE *out;

	store_ready(f);
	ok(f, pki_issue_all(&f->c, 1, &f->e));
	req.node = "db2";
	req.kind = "server";
	req.reason = PKI_REASON_PRIVILEGE_WITHDRAWN;
	ok(f, pki_revoke(&f->c, &req, &res, &f->e));
	assert_non_null(out = open_memstream(&buf, &len));
	ok(f, pki_list_print(&f->c, &lf, 0, out, &n, &f->e));
	assert_int_equal(n, 7); /* CA + 3 superseded + 3 newer */
	lf.status = PKI_REVOKED;
	ok(f, pki_list_print(&f->c, &lf, 1, out, &n, &f->e));
	assert_int_equal(n, 1);
	lf.status = PKI_SUPERSEDED;
	lf.node = "db1";
	ok(f, pki_list_print(&f->c, &lf, 0, out, &n, &f->e));
	assert_int_equal(n, 1);
	lf.status = -1;
	lf.node = NULL;
	lf.expiring = 30 * 86400; /* leaves are 397 days, the CA 10 years */
	ok(f, pki_list_print(&f->c, &lf, 0, out, &n, &f->e));
	assert_int_equal(n, 0);
	lf.expiring = 398 * 86400;
	lf.kind = "server";
	ok(f, pki_list_print(&f->c, &lf, 0, out, &n, &f->e));
	assert_int_equal(n, 4);
	fclose(out);
	assert_non_null(strstr(buf, "\"reason\":\"privilegeWithdrawn\""));
	assert_non_null(strstr(buf, res.ent.serial));
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reasons_and_time),
	    cmocka_unit_test_setup_teardown(
		test_build_verify_entries, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_check_refuses, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_store_revoke_update, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_revoke_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_release_carries_crl, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
	};

	log_init(0, 1, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
