/* Unit tests for the pki store: CA init/load (plain and encrypted), the
 * refusal to overwrite, the no-CA path, idempotent issue, supersede on a
 * changed inventory, file modes, releases and their pre-flight check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <valgrind/valgrind.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbpki/cli.h"
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

struct fx {
	char dir[64];
	char state[128];
	struct dbpki_cluster c;
	struct dbpki_err e;
};

static const char inv_fmt[] =
    "[cluster]\nname = t\nplatform = postgres\nstate_dir = %s\n"
    "renew_before = 30d\n"
    "[ca]\nkey = ec:P-256\nvalidity = %s\n%s\n"
    "[server]\nkey = %s\nvalidity = 397d\nmode = %s\n"
    "extra_san = db.example.com, 10.0.0.100\n"
    "[client]\nkey = ec:P-256\nvalidity = 397d\n"
    "[node db1]\nhost = db1.example.com\naddress = 10.0.0.11\n"
    "role = primary\n"
    "[node db2]\nhost = %s\naddress = 10.0.0.12\nrole = replica\n"
    "[node app1]\nhost = app1.example.com\naddress = 10.0.0.21\n"
    "role = client\n";

/* Load the test inventory with the given variations. */
static void
load(struct fx *f, const char *ca_validity, const char *ca_extra,
    const char *server_key, const char *mode, const char *db2_host)
{
	char text[4096];

	assert_int_equal(util_fmt(text, sizeof(text), inv_fmt, f->state,
			     ca_validity, ca_extra, server_key, mode, db2_host),
	    0);
	err_clear(&f->e);
	if (cfg_load_string("test.ini", text, &f->c, &f->e) != 0)
		fail_msg("inventory: %s", f->e.msg);
}

static void
load_default(struct fx *f)
{
	load(f, "3650d", "", "ec:P-256", "per-node", "db2.example.com");
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/dbpki-test-pki-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
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

static struct pki_entry *
active(struct pki_index *idx, const char *kind, const char *node)
{
	struct pki_entry *ent = pki_index_active(idx, kind, node);

	assert_non_null(ent);
	return ent;
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		fail_msg("%s: missing", path);
	return st.st_mode & 07777;
}

static void
test_no_ca(void **state)
{
	struct fx *f = *state;
	struct pki_ca *ca = NULL;
	int r;

	load_default(f);
	r = pki_issue_all(&f->c, 0, &f->e);
	assert_int_equal(r, DBPKI_E_NOCA);
	assert_int_equal(cli_exit_code(r), 4);
	assert_non_null(strstr(f->e.msg, "run: dbpki ca init -c test.ini"));
	assert_int_equal(pki_ca_load(&f->c, &ca, &f->e), DBPKI_E_NOCA);
	assert_null(ca);
}

static void
test_ca_init_refuses_overwrite(void **state)
{
	struct fx *f = *state;
	char crt[CFG_PATH];
	X509 *before = NULL, *after = NULL;
	int r;

	load_default(f);
	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_ca_load_cert(&f->c, &before, &f->e));
	r = pki_ca_init(&f->c, &f->e);
	assert_int_equal(r, DBPKI_E_EXISTS);
	assert_int_equal(cli_exit_code(r), 1);
	assert_int_equal(pki_store_path(&f->c, crt, "ca/dbca.crt"), 0);
	assert_non_null(strstr(f->e.msg, crt));
	ok(f, pki_ca_load_cert(&f->c, &after, &f->e));
	assert_int_equal(X509_cmp(before, after), 0);
	X509_free(before);
	X509_free(after);
}

static void
test_store_modes(void **state)
{
	struct fx *f = *state;
	struct pki_index idx;
	char p[CFG_PATH];
	size_t i;

	load_default(f);
	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	/* The monitoring group reads certificates, never keys (DESIGN "Who
	 * runs dbpki"): the directories 0750, keys/ 0700. */
	assert_int_equal(mode_of(f->state), 0750);
	pki_store_path(&f->c, p, "ca");
	assert_int_equal(mode_of(p), 0750);
	pki_store_path(&f->c, p, "keys");
	assert_int_equal(mode_of(p), 0700);
	pki_store_path(&f->c, p, "issued");
	assert_int_equal(mode_of(p), 0750);
	pki_store_path(&f->c, p, "ca/dbca.key");
	assert_int_equal(mode_of(p), 0600);
	pki_store_path(&f->c, p, "ca/dbca.crt");
	assert_int_equal(mode_of(p), 0644);
	ok(f, pki_index_load(&f->c, &idx, &f->e));
	/* CA, two servers, one client */
	assert_int_equal(idx.n, 4);
	for (i = 0; i < idx.n; i++) {
		pki_store_path(&f->c, p, "issued/%s.crt", idx.v[i].serial);
		assert_int_equal(mode_of(p), 0644);
		if (strcmp(idx.v[i].kind, "ca") == 0)
			continue;
		pki_store_path(&f->c, p, "keys/%s.key", idx.v[i].serial);
		assert_int_equal(mode_of(p), 0600);
	}
	pki_index_free(&idx);
}

static void
test_issue_idempotent_and_supersede(void **state)
{
	struct fx *f = *state;
	struct pki_index a, b;
	char s1[PKI_SERIAL_HEX], s2[PKI_SERIAL_HEX], cl[PKI_SERIAL_HEX];
	char p[CFG_PATH];
	X509 *x = NULL;
	size_t i;
	int superseded = 0;

	load_default(f);
	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	ok(f, pki_index_load(&f->c, &a, &f->e));
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	ok(f, pki_index_load(&f->c, &b, &f->e));
	assert_int_equal(a.n, b.n);
	for (i = 0; i < a.n; i++) {
		assert_string_equal(a.v[i].serial, b.v[i].serial);
		assert_int_equal(b.v[i].status, PKI_ACTIVE);
	}
	memcpy(s1, active(&b, "server", "db1")->serial, sizeof(s1));
	memcpy(s2, active(&b, "server", "db2")->serial, sizeof(s2));
	memcpy(cl, active(&b, "client", "-")->serial, sizeof(cl));
	pki_index_free(&a);
	pki_index_free(&b);

	/* db2 moves to another name: only its certificate is reissued. */
	load(f, "3650d", "", "ec:P-256", "per-node", "db2-new.example.com");
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	ok(f, pki_index_load(&f->c, &a, &f->e));
	assert_string_equal(active(&a, "server", "db1")->serial, s1);
	assert_string_equal(active(&a, "client", "-")->serial, cl);
	assert_string_not_equal(active(&a, "server", "db2")->serial, s2);
	for (i = 0; i < a.n; i++)
		if (strcmp(a.v[i].serial, s2) == 0) {
			assert_int_equal(a.v[i].status, PKI_SUPERSEDED);
			superseded++;
		}
	assert_int_equal(superseded, 1);
	/* The old certificate stays for the audit trail, its key goes. */
	pki_store_path(&f->c, p, "issued/%s.crt", s2);
	assert_int_equal(access(p, F_OK), 0);
	pki_store_path(&f->c, p, "keys/%s.key", s2);
	assert_int_equal(access(p, F_OK), -1);
	pki_store_path(
	    &f->c, p, "issued/%s.crt", active(&a, "server", "db2")->serial);
	ok(f, pki_cert_load_pem(p, &x, &f->e));
	assert_true(pki_cert_covers(x, "db2-new.example.com"));
	assert_false(pki_cert_covers(x, "db2.example.com"));
	X509_free(x);
	pki_index_free(&a);
}

static void
test_issue_force_and_key_change(void **state)
{
	struct fx *f = *state;
	struct pki_index a, b;
	char s1[PKI_SERIAL_HEX], cl[PKI_SERIAL_HEX];

	load_default(f);
	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	ok(f, pki_index_load(&f->c, &a, &f->e));
	memcpy(s1, active(&a, "server", "db1")->serial, sizeof(s1));
	memcpy(cl, active(&a, "client", "-")->serial, sizeof(cl));
	/* A different server key type reissues the servers, not the client. */
	load(f, "3650d", "", "ec:P-384", "per-node", "db2.example.com");
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	ok(f, pki_index_load(&f->c, &b, &f->e));
	assert_string_not_equal(active(&b, "server", "db1")->serial, s1);
	assert_string_equal(active(&b, "server", "db1")->key, "ec:P-384");
	assert_string_equal(active(&b, "client", "-")->serial, cl);
	pki_index_free(&b);
	/* --force reissues everything. */
	ok(f, pki_issue_all(&f->c, 1, &f->e));
	ok(f, pki_index_load(&f->c, &b, &f->e));
	assert_string_not_equal(active(&b, "client", "-")->serial, cl);
	assert_int_equal(b.n, a.n + 2 + 3); /* 2 servers, then all 3 */
	pki_index_free(&a);
	pki_index_free(&b);
}

static void
test_leaf_capped_at_ca(void **state)
{
	struct fx *f = *state;
	struct pki_index a, b;
	char p[CFG_PATH];
	X509 *ca = NULL, *x = NULL;

	/* CA valid 10 days, servers ask for 397: capped, and a second run
	 * keeps them (reissuing could not make them any longer). */
	load(f, "10d", "", "ec:P-256", "per-node", "db2.example.com");
	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	ok(f, pki_ca_load_cert(&f->c, &ca, &f->e));
	ok(f, pki_index_load(&f->c, &a, &f->e));
	pki_store_path(
	    &f->c, p, "issued/%s.crt", active(&a, "server", "db1")->serial);
	ok(f, pki_cert_load_pem(p, &x, &f->e));
	assert_true(pki_cert_not_after(x) <= pki_cert_not_after(ca));
	assert_true(pki_cert_not_after(x) >= pki_cert_not_after(ca) - 1);
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	ok(f, pki_index_load(&f->c, &b, &f->e));
	assert_int_equal(a.n, b.n);
	pki_index_free(&a);
	pki_index_free(&b);
	X509_free(ca);
	X509_free(x);
}

static void
write_pass(struct fx *f, const char *name, const char *text, mode_t mode)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", f->dir, name);
	ok(f, util_write_atomic(p, text, strlen(text), mode, &f->e));
}

static void
test_encrypted_ca_key(void **state)
{
	struct fx *f = *state;
	struct pki_ca *ca = NULL;
	char extra[256], p[CFG_PATH], *pem = NULL;
	size_t len = 0;

	/* The slow KDF: under valgrind test_pki_key covers it once. */
	if (RUNNING_ON_VALGRIND)
		skip();

	write_pass(f, "pass", "correct horse battery\n", 0600);
	snprintf(extra, sizeof(extra), "passphrase_file = %s/pass", f->dir);
	load(f, "3650d", extra, "ec:P-256", "per-node", "db2.example.com");
	ok(f, pki_ca_init(&f->c, &f->e));
	pki_store_path(&f->c, p, "ca/dbca.key");
	ok(f, util_read_file(p, 1 << 20, 0, &pem, &len, &f->e));
	assert_non_null(strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
	util_freezero(pem, len + 1);
	ok(f, pki_ca_load(&f->c, &ca, &f->e));
	assert_true(pki_cert_key_matches(ca->cert, ca->key));
	pki_ca_free(ca);
	ca = NULL;
	ok(f, pki_issue_all(&f->c, 0, &f->e));

	/* Wrong passphrase: a clear error, no CA. */
	write_pass(f, "pass", "wrong horse\n", 0600);
	assert_int_equal(pki_ca_load(&f->c, &ca, &f->e), DBPKI_E_PKI);
	assert_null(ca);
	assert_non_null(strstr(f->e.msg, "wrong passphrase"));
	/* A passphrase file others can read is refused. */
	write_pass(f, "pass", "correct horse battery\n", 0644);
	assert_int_not_equal(pki_ca_load(&f->c, &ca, &f->e), 0);
	assert_non_null(strstr(f->e.msg, "passphrase_file"));
	/* Without any passphrase configured the encrypted key is refused. */
	load_default(f);
	assert_int_equal(pki_ca_load(&f->c, &ca, &f->e), DBPKI_E_PKI);
	assert_non_null(strstr(f->e.msg, "encrypted"));
}

static void
test_encrypted_ca_key_env(void **state)
{
	struct fx *f = *state;
	struct pki_ca *ca = NULL;

	/* The slow KDF: under valgrind test_pki_key covers it once. */
	if (RUNNING_ON_VALGRIND)
		skip();

	setenv("DBPKI_TEST_CA_PASS", "from the environment", 1);
	load(f, "3650d", "passphrase_env = DBPKI_TEST_CA_PASS", "ec:P-256",
	    "per-node", "db2.example.com");
	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_ca_load(&f->c, &ca, &f->e));
	pki_ca_free(ca);
	ca = NULL;
	setenv("DBPKI_TEST_CA_PASS", "something else", 1);
	assert_int_equal(pki_ca_load(&f->c, &ca, &f->e), DBPKI_E_PKI);
	unsetenv("DBPKI_TEST_CA_PASS");
	assert_int_equal(pki_ca_load(&f->c, &ca, &f->e), DBPKI_E_CONFIG);
	assert_non_null(strstr(f->e.msg, "DBPKI_TEST_CA_PASS"));
}

static void
test_release_build_and_check(void **state)
{
	struct fx *f = *state;
	struct pki_release rel;
	const struct cfg_node *db1, *app1;
	struct pki_file tmp;
	X509 *x = NULL;
	int i;

	load_default(f);
	ok(f, pki_ca_init(&f->c, &f->e));
	memset(&rel, 0, sizeof(rel));
	db1 = cfg_node_by_name(&f->c, "db1");
	app1 = cfg_node_by_name(&f->c, "app1");
	/* Before issue: the store has no leaves yet. */
	assert_int_not_equal(pki_release_build(&f->c, db1, &rel, &f->e), 0);
	assert_non_null(strstr(f->e.msg, "dbpki issue"));
	ok(f, pki_issue_all(&f->c, 0, &f->e));

	ok(f, pki_release_build(&f->c, db1, &rel, &f->e));
	assert_int_equal(rel.n, 5);
	assert_non_null(pki_release_file(&rel, "dbca.crt"));
	assert_non_null(pki_release_file(&rel, "server.crt"));
	assert_non_null(pki_release_file(&rel, "client.key"));
	for (i = 0; i < rel.n; i++) {
		assert_int_equal(rel.files[i].mode,
		    strstr(rel.files[i].name, ".key") ? 0600 : 0644);
		assert_int_equal(strlen(rel.files[i].sha256), 64);
		assert_int_equal(strlen(rel.files[i].serial),
		    strstr(rel.files[i].name, ".key") ? 0 : 40);
	}
	ok(f, pki_cert_from_pem(pki_release_file(&rel, "server.crt")->data,
		  pki_release_file(&rel, "server.crt")->len, "t", &x, &f->e));
	assert_true(pki_cert_covers(x, "db1.example.com"));
	assert_true(pki_cert_covers(x, "10.0.0.11"));
	X509_free(x);
	ok(f, pki_release_check(&f->c, db1, &rel, &f->e));

	/* Swap the keys: the check names the node and the file. */
	tmp = rel.files[2];
	rel.files[2] = rel.files[4];
	rel.files[4] = tmp;
	memcpy(rel.files[2].name, "server.key", sizeof("server.key"));
	memcpy(rel.files[4].name, "client.key", sizeof("client.key"));
	assert_int_equal(
	    pki_release_check(&f->c, db1, &rel, &f->e), DBPKI_E_VERIFY);
	assert_non_null(strstr(f->e.msg, "db1"));
	assert_non_null(strstr(f->e.msg, "server.key"));
	pki_release_free(&rel);

	/* A client node gets the CA and the client pair only. */
	ok(f, pki_release_build(&f->c, app1, &rel, &f->e));
	assert_int_equal(rel.n, 3);
	assert_null(pki_release_file(&rel, "server.crt"));
	ok(f, pki_release_check(&f->c, app1, &rel, &f->e));
	/* The server release of db1 does not cover db2. */
	pki_release_free(&rel);
	ok(f, pki_release_build(&f->c, db1, &rel, &f->e));
	assert_int_equal(pki_release_check(&f->c,
			     cfg_node_by_name(&f->c, "db2"), &rel, &f->e),
	    DBPKI_E_VERIFY);
	assert_non_null(strstr(f->e.msg, "db2"));
	pki_release_free(&rel);
}

static void
test_shared_mode(void **state)
{
	struct fx *f = *state;
	struct pki_release rel;
	struct pki_index idx;
	X509 *x = NULL;

	load(f, "3650d", "", "ec:P-256", "shared", "db2.example.com");
	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	ok(f, pki_index_load(&f->c, &idx, &f->e));
	assert_null(pki_index_active(&idx, "server", "db1"));
	assert_non_null(pki_index_active(&idx, "server", "*"));
	assert_int_equal(idx.n, 3);
	pki_index_free(&idx);
	memset(&rel, 0, sizeof(rel));
	ok(f, pki_release_build(
		  &f->c, cfg_node_by_name(&f->c, "db2"), &rel, &f->e));
	ok(f, pki_cert_from_pem(pki_release_file(&rel, "server.crt")->data,
		  pki_release_file(&rel, "server.crt")->len, "t", &x, &f->e));
	assert_true(pki_cert_covers(x, "db1.example.com"));
	assert_true(pki_cert_covers(x, "10.0.0.12"));
	assert_true(pki_cert_covers(x, "db.example.com"));
	assert_false(pki_cert_covers(x, "app1.example.com"));
	ok(f, pki_release_check(
		  &f->c, cfg_node_by_name(&f->c, "db2"), &rel, &f->e));
	X509_free(x);
	pki_release_free(&rel);
}

static void
test_index_damaged(void **state)
{
	struct fx *f = *state;
	struct pki_index idx;
	char p[CFG_PATH];
	const char *bad = "# header\nnot\ta\tvalid line\n";

	load_default(f);
	ok(f, pki_store_prepare(&f->c, &f->e));
	pki_store_path(&f->c, p, "index.tsv");
	ok(f, util_write_atomic(p, bad, strlen(bad), 0644, &f->e));
	assert_int_equal(pki_index_load(&f->c, &idx, &f->e), DBPKI_E_CONFIG);
	assert_non_null(strstr(f->e.msg, "index.tsv:2"));
}

/* Issue 12: what a writer killed mid-way leaves, and only that, goes. */
static void
put_file(struct fx *f, const char *rel)
{
	char p[CFG_PATH];

	pki_store_path(&f->c, p, "%s", rel);
	ok(f, util_write_atomic(p, "x", 1, 0600, &f->e));
}

static int
exists(struct fx *f, const char *rel)
{
	char p[CFG_PATH];
	struct stat st;

	pki_store_path(&f->c, p, "%s", rel);
	return lstat(p, &st) == 0;
}

static void
test_sweep(void **state)
{
	static const char *const gone[] = {
	    "keys/0123abcd.key",                       /* no index line */
	    "keys/.0123abcd.key.0123456789abcdef.tmp", /* a key's temp */
	    ".index.tsv.fedcba9876543210.tmp",         /* the index's */
	    "ca/.dbca.key.00112233445566ff.tmp",       /* the CA key's */
	    "issued/.0123abcd.crt.0123456789abcdef.tmp",
	};
	static const char *const kept[] = {
	    "keys/notes.txt",               /* not a key name */
	    "keys/.0123abcd.key.tmp",       /* not util_write_atomic's */
	    "keys/.x.0123456789ABCDEF.tmp", /* upper-case: not its hex */
	    "issued/0123abcd.crt",          /* certificates are kept */
	};
	struct fx *f = *state;
	struct pki_index idx;
	char p[CFG_PATH], q[CFG_PATH], serial[PKI_SERIAL_HEX];
	size_t i;

	load_default(f);
	ok(f, pki_ca_init(&f->c, &f->e));
	ok(f, pki_issue_all(&f->c, 0, &f->e));
	ok(f, pki_index_load(&f->c, &idx, &f->e));
	memcpy(serial, active(&idx, "server", "db1")->serial, sizeof(serial));
	pki_index_free(&idx);
	for (i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
		put_file(f, gone[i]);
	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		put_file(f, kept[i]);
	/* a symlink named like a temporary file: not a regular file, kept */
	pki_store_path(&f->c, p, "keys/.l.0123456789abcdef.tmp");
	assert_int_equal(symlink("/nonexistent", p), 0);
	/* the key of a superseded entry (its unlink failed once) goes */
	ok(f, pki_issue_all(&f->c, 1, &f->e));
	pki_store_path(&f->c, p, "keys/%s.key", serial);
	assert_int_equal(access(p, F_OK), -1);
	pki_store_path(&f->c, q, "issued/%s.crt", serial);
	ok(f, util_write_atomic(p, "old", 3, 0600, &f->e));

	ok(f, pki_store_sweep(&f->c, &f->e));
	for (i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
		if (exists(f, gone[i]))
			fail_msg("%s was not removed", gone[i]);
	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		if (!exists(f, kept[i]))
			fail_msg("%s was removed", kept[i]);
	assert_true(exists(f, "keys/.l.0123456789abcdef.tmp"));
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(access(q, F_OK), 0);
	/* every active entry keeps its key */
	ok(f, pki_index_load(&f->c, &idx, &f->e));
	for (i = 0; i < idx.n; i++) {
		if (idx.v[i].status != PKI_ACTIVE ||
		    strcmp(idx.v[i].kind, "ca") == 0)
			continue;
		pki_store_path(&f->c, p, "keys/%s.key", idx.v[i].serial);
		assert_int_equal(access(p, F_OK), 0);
	}
	pki_index_free(&idx);

	/* no index: nothing to judge a key by, keys are left alone */
	pki_store_path(&f->c, p, "index.tsv");
	assert_int_equal(unlink(p), 0);
	put_file(f, "keys/0123abcd.key");
	ok(f, pki_store_sweep(&f->c, &f->e));
	assert_true(exists(f, "keys/0123abcd.key"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_no_ca, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_ca_init_refuses_overwrite, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_modes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_issue_idempotent_and_supersede, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_issue_force_and_key_change, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_leaf_capped_at_ca, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_encrypted_ca_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_encrypted_ca_key_env, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_release_build_and_check, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shared_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_index_damaged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
	};

	log_init(0, 1, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
