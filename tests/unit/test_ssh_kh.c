/* Unit tests for the known_hosts reader (ssh_kh.c): table-driven lookups
 * with ssh(1)'s semantics, plus fingerprints and lines.  The keys and the
 * hashed entry were made with ssh-keygen. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dbpki/ssh.h"

#define K1                                                                     \
	"AAAAC3NzaC1lZDI1NTE5AAAAIGTo4M01efmCWzh/Q0hEigdKl1L++HUutGN1weP8THZQ"
#define K2                                                                     \
	"AAAAC3NzaC1lZDI1NTE5AAAAIG43lGl+J9r21D5FAV/b0xZ0GPiYU0l2fcXVlHDHB1SD"
#define K3                                                                     \
	"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPWjaTyr8PzJ2o3"  \
	"mfksYh188tlObuyAOep1goVyIGXALs+gehJIpqJbJl6PkhZSoCLo+"                \
	"npKhbZ4ux2inFqNQyOU="
#define K1_FP "SHA256:zlfIs9JbRkASMdS8/vP61sOjBavLzbq1H43N+A4oqA0"
/* [10.0.0.5]:2222 with K1, hashed by ssh-keygen -H */
#define HASHED "|1|NXH5knBK523OSRsvlwYGxsMqwuE=|FXdym0/XzVAFF3qKQedemMwZNzc="

static size_t
b64dec(const char *s, unsigned char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned int acc = 0;
	size_t o = 0;
	int bits = 0;

	for (; *s != '\0' && *s != '='; s++) {
		acc = (acc << 6) | (unsigned int)(strchr(tab, *s) - tab);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o;
}

struct kh_case {
	const char *name;
	const char *text;
	const char *host; /* as from ssh_kh_hostname() */
	const char *key;  /* base64 server key, or NULL */
	enum ssh_kh_verdict want;
	int line;
	const char *types;
};

static const struct kh_case cases[] = {
    {"plain port match", "[10.0.0.5]:2222 ssh-ed25519 " K1 "\n",
	"[10.0.0.5]:2222", K1, SSH_KH_MATCH, 1, "ssh-ed25519"},
    {"port 22 plain", "# c\n\n10.0.0.5 ssh-ed25519 " K1 "\n", "10.0.0.5", K1,
	SSH_KH_MATCH, 3, "ssh-ed25519"},
    {"bare host is not [host]:port", "10.0.0.5 ssh-ed25519 " K1 "\n",
	"[10.0.0.5]:2222", K1, SSH_KH_NOTFOUND, 0, ""},
    {"other port", "[10.0.0.5]:2200 ssh-ed25519 " K1 "\n", "[10.0.0.5]:2222",
	K1, SSH_KH_NOTFOUND, 0, ""},
    {"changed key",
	"x ssh-ed25519 " K2 "\n[10.0.0.5]:2222 ssh-ed25519 " K2 "\n",
	"[10.0.0.5]:2222", K1, SSH_KH_MISMATCH, 2, "ssh-ed25519"},
    {"mismatch prefers same type line",
	"[10.0.0.5]:2222 ecdsa-sha2-nistp256 " K3 "\n[10.0.0.5]:2222 "
	"ssh-ed25519 " K2 "\n",
	"[10.0.0.5]:2222", K1, SSH_KH_MISMATCH, 2,
	"ecdsa-sha2-nistp256,ssh-ed25519"},
    {"second entry matches",
	"[10.0.0.5]:2222 ssh-ed25519 " K2 "\n[10.0.0.5]:2222 ssh-ed25519 " K1
	"\n",
	"[10.0.0.5]:2222", K1, SSH_KH_MATCH, 2, "ssh-ed25519"},
    {"hashed", HASHED " ssh-ed25519 " K1 "\n", "[10.0.0.5]:2222", K1,
	SSH_KH_MATCH, 1, "ssh-ed25519"},
    {"hashed other host", HASHED " ssh-ed25519 " K1 "\n", "[10.0.0.6]:2222", K1,
	SSH_KH_NOTFOUND, 0, ""},
    {"comma list", "db1,10.0.0.5,db1.example ssh-ed25519 " K1 "\n", "10.0.0.5",
	K1, SSH_KH_MATCH, 1, "ssh-ed25519"},
    {"wildcard", "10.0.0.* ssh-ed25519 " K1 "\n", "10.0.0.5", K1, SSH_KH_MATCH,
	1, "ssh-ed25519"},
    {"negation wins", "10.0.0.*,!10.0.0.5 ssh-ed25519 " K1 "\n", "10.0.0.5", K1,
	SSH_KH_NOTFOUND, 0, ""},
    {"case-insensitive", "DB1.Example ssh-ed25519 " K1 "\n", "db1.example", K1,
	SSH_KH_MATCH, 1, "ssh-ed25519"},
    {"revoked beats match",
	"10.0.0.5 ssh-ed25519 " K1 "\n@revoked * "
	"ssh-ed25519 " K1 "\n",
	"10.0.0.5", K1, SSH_KH_REVOKED, 2, "ssh-ed25519"},
    {"revoked other key ignored",
	"10.0.0.5 ssh-ed25519 " K1 "\n@revoked * ssh-ed25519 " K2 "\n",
	"10.0.0.5", K1, SSH_KH_MATCH, 1, "ssh-ed25519"},
    {"cert-authority ignored", "@cert-authority 10.0.0.5 ssh-ed25519 " K1 "\n",
	"10.0.0.5", K1, SSH_KH_NOTFOUND, 0, ""},
    {"type must agree with blob", "10.0.0.5 ssh-rsa " K1 "\n", "10.0.0.5", K1,
	SSH_KH_MISMATCH, 1, "ssh-rsa"},
    {"garbage lines skipped",
	"10.0.0.5\n10.0.0.5 ssh-ed25519\n10.0.0.5 "
	"ssh-ed25519 !!!notbase64\n|1|x|y ssh-ed25519 " K1 "\n10.0.0.5 "
	"ssh-ed25519 " K1,
	"10.0.0.5", K1, SSH_KH_MATCH, 5, "ssh-ed25519"},
    {"CRLF and tabs", "10.0.0.5\tssh-ed25519\t" K1 "\r\n", "10.0.0.5", K1,
	SSH_KH_MATCH, 1, "ssh-ed25519"},
    {"types only",
	"[h]:2 ssh-ed25519 " K1 "\n[h]:2 ecdsa-sha2-nistp256 " K3
	"\n[h]:2 ssh-ed25519 " K2 "\n",
	"[h]:2", NULL, SSH_KH_MISMATCH, 1, "ssh-ed25519,ecdsa-sha2-nistp256"},
    {"empty file", "", "10.0.0.5", K1, SSH_KH_NOTFOUND, 0, ""},
};

static void
test_lookup_table(void **state)
{
	unsigned char blob[512];
	struct ssh_kh_lookup l;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct kh_case *t = &cases[i];

		n = t->key ? b64dec(t->key, blob) : 0;
		ssh_kh_lookup(t->text, strlen(t->text), t->host,
		    t->key ? blob : NULL, n, &l);
		if (l.verdict != t->want || l.line != t->line ||
		    strcmp(l.types, t->types) != 0)
			fail_msg("case '%s': verdict %d line %d types '%s', "
				 "expected %d %d '%s'",
			    t->name, l.verdict, l.line, l.types, t->want,
			    t->line, t->types);
	}
}

static void
test_hostname(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(ssh_kh_hostname("10.0.0.5", 22, out, sizeof(out)), 0);
	assert_string_equal(out, "10.0.0.5");
	assert_int_equal(
	    ssh_kh_hostname("DB1.Example", 2222, out, sizeof(out)), 0);
	assert_string_equal(out, "[db1.example]:2222");
	assert_int_equal(ssh_kh_hostname("::1", 2222, out, sizeof(out)), 0);
	assert_string_equal(out, "[::1]:2222");
	assert_int_equal(ssh_kh_hostname("a-very-long-name", 2222, out, 8), -1);
}

static void
test_fingerprint_and_line(void **state)
{
	unsigned char blob[512];
	char fp[80], line[1024], type[64];
	size_t n = b64dec(K1, blob);

	(void)state;
	assert_int_equal(ssh_kh_fingerprint(blob, n, fp, sizeof(fp)), 0);
	assert_string_equal(fp, K1_FP);
	assert_int_equal(ssh_kh_blob_type(blob, n, type, sizeof(type)), 0);
	assert_string_equal(type, "ssh-ed25519");
	assert_int_equal(
	    ssh_kh_line("[10.0.0.5]:2222", blob, n, line, sizeof(line)), 0);
	assert_string_equal(line, "[10.0.0.5]:2222 ssh-ed25519 " K1);
	n = b64dec(K3, blob);
	assert_int_equal(ssh_kh_line("h", blob, n, line, sizeof(line)), 0);
	assert_string_equal(line, "h ecdsa-sha2-nistp256 " K3);
}

static void
test_malformed_blob(void **state)
{
	static const unsigned char bad1[] = {0, 0, 0, 50, 's', 's', 'h'};
	static const unsigned char bad2[] = {0, 0, 0, 0};
	static const unsigned char bad3[] = {0, 0, 0, 3, 'a', 0, 'b'};
	struct ssh_kh_lookup l;
	char type[64];

	(void)state;
	assert_int_equal(
	    ssh_kh_blob_type(bad1, sizeof(bad1), type, sizeof(type)), -1);
	assert_int_equal(
	    ssh_kh_blob_type(bad2, sizeof(bad2), type, sizeof(type)), -1);
	assert_int_equal(
	    ssh_kh_blob_type(bad3, sizeof(bad3), type, sizeof(type)), -1);
	assert_int_equal(ssh_kh_blob_type(bad1, 2, type, sizeof(type)), -1);
	/* A malformed server key matches nothing, even an entry for it. */
	ssh_kh_lookup("h ssh-ed25519 AAAAAw==\n", 22, "h", bad1, 4, &l);
	assert_int_not_equal(l.verdict, SSH_KH_MATCH);
}

static void
test_result_ok(void **state)
{
	char out[] = "line one\nDBPKI-OK\n";
	struct ssh_result r = {0, 0, NULL, out, sizeof(out) - 1, 0};

	(void)state;
	assert_true(ssh_result_ok(&r, "DBPKI-OK"));
	assert_true(ssh_result_ok(&r, NULL));
	assert_false(ssh_result_ok(&r, "DBPKI"));
	r.exit_status = 1;
	assert_false(ssh_result_ok(&r, "DBPKI-OK"));
	r.exit_status = 0;
	r.signal = "KILL";
	assert_false(ssh_result_ok(&r, "DBPKI-OK"));
	r.signal = NULL;
	r.timed_out = 1;
	assert_false(ssh_result_ok(&r, "DBPKI-OK"));
	r.timed_out = 0;
	r.out_len = 8; /* "line one" */
	assert_false(ssh_result_ok(&r, "DBPKI-OK"));
	r.out = NULL;
	r.out_len = 0;
	assert_false(ssh_result_ok(&r, "DBPKI-OK"));
	assert_false(ssh_result_ok(NULL, NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lookup_table),
	    cmocka_unit_test(test_hostname),
	    cmocka_unit_test(test_fingerprint_and_line),
	    cmocka_unit_test(test_malformed_blob),
	    cmocka_unit_test(test_result_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
