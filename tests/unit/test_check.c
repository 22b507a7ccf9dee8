/* renew/check support without a cluster: durations as renew prints them,
 * check's UNKNOWN output (status line, JSON, the textfile and its mode),
 * and pg_peek_cert's failure paths against local sockets that refuse, stay
 * silent, or answer "no TLS". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <pthread.h>

#include "dbpki/engine_int.h"
#include "dbpki/pg.h"
#include "dbpki/util.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/dbpki-test-check.XXXXXX");
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
test_duration(void **state)
{
	static const struct {
		int64_t secs;
		const char *want;
	} cases[] = {
	    {30 * 86400, "30d"},
	    {400 * 86400, "400d"},
	    {12 * 3600, "12h"},
	    {90 * 60, "90m"},
	    {86400 + 1, "86401s"},
	    {45, "45s"},
	};
	char buf[32];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		engine_duration(cases[i].secs, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
}

static char *
slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	struct dbpki_err e;

	err_clear(&e);
	assert_int_equal(util_read_file(path, 1 << 20, 0, &buf, &len, &e), 0);
	return buf;
}

static void
test_unknown(void **state)
{
	char prom[128], *text, *p;
	struct check_opts o = {30 * 86400, 7 * 86400, 0, NULL, NULL};
	struct stat st;
	size_t len = 0;
	FILE *f;

	(void)state;
	snprintf(prom, sizeof(prom), "%s/dbpki.prom", dir);
	o.prometheus = prom;
	f = open_memstream(&p, &len);
	assert_non_null(f);
	/* a '|' in the reason must not start the perfdata */
	assert_int_equal(
	    engine_check_unknown(&o, "c1", "bad | thing", f), CHECK_UNKNOWN);
	fclose(f);
	assert_string_equal(p, "DBPKI UNKNOWN - bad / thing\n");
	free(p);
	assert_int_equal(stat(prom, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	text = slurp(prom);
	assert_non_null(strstr(text, "# TYPE dbpki_check_success gauge\n"));
	assert_non_null(
	    strstr(text, "dbpki_check_success{cluster=\"c1\"} 0\n"));
	assert_non_null(strstr(text, "dbpki_check_status{cluster=\"c1\"} 3\n"));
	free(text);

	o.json = 1;
	o.prometheus = NULL;
	f = open_memstream(&p, &len);
	assert_int_equal(engine_check_unknown(&o, NULL, "no \"inventory\"", f),
	    CHECK_UNKNOWN);
	fclose(f);
	assert_string_equal(p, "{\"cluster\":\"\",\"status\":\"UNKNOWN\","
			       "\"exit_code\":3,\"problems\":\"no "
			       "\\\"inventory\\\"\",\"certificates\":[]}\n");
	free(p);
}

/* A local TCP listener on 127.0.0.1 and the port it got. */
static int
listener(int *port)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void *
answer_no_tls(void *arg)
{
	int lfd = *(int *)arg, fd;
	char req[8];

	if ((fd = accept(lfd, NULL, NULL)) < 0)
		return NULL;
	/* SSLRequest in, "N" (no TLS here) out, as a server with ssl=off */
	if (read(fd, req, sizeof(req)) == (ssize_t)sizeof(req))
		(void)write(fd, "N", 1);
	sleep(1);
	close(fd);
	return NULL;
}

static void
target(struct pg_target *t, int port, int timeout)
{
	memset(t, 0, sizeof(*t));
	t->host = "node1.lab.test";
	t->hostaddr = "127.0.0.1";
	t->port = port;
	t->connect_timeout_s = timeout;
}

static void
test_peek_failures(void **state)
{
	struct pg_target t;
	struct dbpki_err e;
	pthread_t th;
	X509 *x = NULL;
	int lfd, port;

	(void)state;
	/* refused: a port nobody listens on (bound, then closed) */
	lfd = listener(&port);
	close(lfd);
	target(&t, port, 5);
	err_clear(&e);
	assert_int_equal(pg_peek_cert(&t, &x, &e), DBPKI_E_VERIFY);
	assert_null(x);
	assert_non_null(strstr(e.msg, "node1.lab.test"));

	/* silent: the connection is accepted (backlog) but never answered;
	 * the deadline is ours, not libpq's */
	lfd = listener(&port);
	target(&t, port, 1);
	err_clear(&e);
	assert_int_equal(pg_peek_cert(&t, &x, &e), DBPKI_E_TIMEOUT);
	assert_null(x);
	assert_non_null(strstr(e.msg, "no TLS handshake within 1s"));
	close(lfd);

	/* no TLS at all */
	lfd = listener(&port);
	assert_int_equal(pthread_create(&th, NULL, answer_no_tls, &lfd), 0);
	target(&t, port, 5);
	err_clear(&e);
	assert_int_equal(pg_peek_cert(&t, &x, &e), DBPKI_E_VERIFY);
	assert_null(x);
	assert_non_null(strstr(e.msg, "does not support SSL"));
	pthread_join(th, NULL);
	close(lfd);

	/* a target that is not one */
	t.host = "bad host";
	assert_int_equal(pg_peek_cert(&t, &x, &e), DBPKI_E_CONFIG);
}

/* --prometheus FILE, once reachable through a sudo wildcard as root: only
 * a NAME.prom file, in an existing directory, never through a symlink,
 * written as an O_EXCL temporary file in that directory and renamed.
 * Each refusal leaves the target and everything else untouched. */
static int
prom_refused(const char *path, const char *want)
{
	struct check_opts o = {30 * 86400, 7 * 86400, 0, NULL, NULL};
	size_t len = 0;
	char *out = NULL;
	FILE *f = open_memstream(&out, &len);
	int ok;

	assert_non_null(f);
	o.prometheus = path;
	assert_int_equal(engine_check_unknown(&o, "c1", "x", f), CHECK_UNKNOWN);
	fclose(f);
	ok = strstr(out, want) != NULL;
	if (!ok)
		print_error(
		    "--prometheus %s: expected '%s' in: %s\n", path, want, out);
	free(out);
	return ok;
}

static void
test_prometheus_paths(void **state)
{
	char p[256], victim[256], other[256], link[256];
	struct check_opts o = {30 * 86400, 7 * 86400, 0, NULL, NULL};
	char *text, *out = NULL;
	struct stat st;
	size_t len = 0;
	FILE *f;

	(void)state;
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	f = fopen(victim, "w");
	assert_non_null(f);
	fputs("precious\n", f);
	fclose(f);

	/* not *.prom: the file (say /etc/shadow) is left alone */
	assert_true(prom_refused(victim, "must name a NAME.prom file"));
	snprintf(p, sizeof(p), "%s/x.prom.txt", dir);
	assert_true(prom_refused(p, "must name a NAME.prom file"));
	snprintf(p, sizeof(p), "%s/.prom", dir);
	assert_true(prom_refused(p, "must name a NAME.prom file"));
	snprintf(p, sizeof(p), "%s/.hidden.prom", dir);
	assert_true(prom_refused(p, "must name a NAME.prom file"));
	snprintf(p, sizeof(p), "%s/", dir);
	assert_true(prom_refused(p, "must name a NAME.prom file"));

	/* a symlink as the file: refused, neither it nor its target changed */
	snprintf(link, sizeof(link), "%s/evil.prom", dir);
	assert_int_equal(symlink(victim, link), 0);
	assert_true(prom_refused(link, "is a symbolic link or not a regular"));
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	/* a directory as the file */
	snprintf(p, sizeof(p), "%s/d.prom", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_true(prom_refused(p, "not a regular file"));

	/* a symlink as the directory */
	snprintf(other, sizeof(other), "%s/other", dir);
	assert_int_equal(mkdir(other, 0700), 0);
	snprintf(link, sizeof(link), "%s/ldir", dir);
	assert_int_equal(symlink(other, link), 0);
	snprintf(p, sizeof(p), "%s/ldir/m.prom", dir);
	assert_true(prom_refused(p, "must exist and not be a symbolic link"));
	snprintf(p, sizeof(p), "%s/other/m.prom", dir);
	assert_int_equal(lstat(p, &st), -1);

	/* a directory that does not exist is not created */
	snprintf(p, sizeof(p), "%s/nodir/m.prom", dir);
	assert_true(prom_refused(p, "must exist"));
	snprintf(p, sizeof(p), "%s/nodir", dir);
	assert_int_equal(lstat(p, &st), -1);

	text = slurp(victim);
	assert_string_equal(text, "precious\n");
	free(text);

	/* the good case: written 0644, replacing a regular file, and no
	 * temporary file left in the directory */
	snprintf(p, sizeof(p), "%s/other/ok.prom", dir);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("old\n", f);
	fclose(f);
	o.prometheus = p;
	f = open_memstream(&out, &len);
	assert_non_null(f);
	assert_int_equal(engine_check_unknown(&o, "c1", "x", f), CHECK_UNKNOWN);
	fclose(f);
	assert_string_equal(out, "DBPKI UNKNOWN - x\n");
	free(out);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	text = slurp(p);
	assert_non_null(strstr(text, "dbpki_check_status{cluster=\"c1\"} 3\n"));
	free(text);
	{
		DIR *d = opendir(other);
		struct dirent *de;
		int n = 0;

		assert_non_null(d);
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.' || strlen(de->d_name) > 2)
				n += strcmp(de->d_name, "..") != 0 &&
				     strcmp(de->d_name, ".") != 0;
		closedir(d);
		assert_int_equal(n, 1); /* ok.prom only */
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_duration),
	    cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
	    cmocka_unit_test(test_peek_failures),
	    cmocka_unit_test_setup_teardown(
		test_prometheus_paths, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
