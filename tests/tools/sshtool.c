/* sshtool: drive the ssh module against one node, for integration tests.
 *
 *   sshtool -c INI NODE connect
 *   sshtool -c INI NODE mkdir PATH [MODE]
 *   sshtool -c INI NODE upload LOCAL REMOTE MODE [LOCAL REMOTE MODE ...]
 *   sshtool -c INI NODE exec [-s SENTINEL] [TIMEOUT_S] < script
 *
 * All of one invocation uses one connection.  exec prints the kept output
 * on stdout and "exit_status=N signal=S timed_out=N truncated=N out_len=N
 * ok=N" on stderr.
 *
 * Exit codes: 0 ok; 1 the remote command failed (non-zero status, signal,
 * or missing sentinel); 2 usage or inventory error; 10 host key; 11 ssh
 * (transport, auth, SFTP); 12 timeout; 13 anything else.
 */
#include "dbpki/config.h"
#include "dbpki/err.h"
#include "dbpki/ssh.h"
#include "dbpki/util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libssh2.h>

static int
exit_code(int err)
{
	switch (err) {
	case 0: return 0;
	case DBPKI_E_USAGE:
	case DBPKI_E_CONFIG: return 2;
	case DBPKI_E_HOSTKEY: return 10;
	case DBPKI_E_SSH: return 11;
	case DBPKI_E_TIMEOUT: return 12;
	case DBPKI_E_REMOTE: return 1;
	default: return 13;
	}
}

static int
usage(void)
{
	fprintf(stderr,
	    "usage: sshtool -c INI NODE connect | mkdir PATH [MODE] "
	    "| upload LOCAL REMOTE MODE [...] | exec [-s SENTINEL] "
	    "[TIMEOUT_S]\n");
	return 2;
}

static int
parse_mode(const char *s, int *mode)
{
	char *end;
	long v = strtol(s, &end, 8);

	if (*s == '\0' || *end != '\0' || v < 0 || v > 07777)
		return -1;
	*mode = (int)v;
	return 0;
}

static int
do_upload(struct ssh_conn *c, int argc, char **argv, struct dbpki_err *e)
{
	char *data = NULL;
	size_t len = 0;
	int i, mode, r = 0;

	if (argc < 3 || argc % 3 != 0)
		return err_set(
		    e, DBPKI_E_USAGE, "upload: LOCAL REMOTE MODE ...");
	for (i = 0; i < argc && r == 0; i += 3) {
		if (parse_mode(argv[i + 2], &mode) != 0)
			return err_set(
			    e, DBPKI_E_USAGE, "bad mode %s", argv[i + 2]);
		if ((r = util_read_file(
			 argv[i], 64 * 1024 * 1024, 0, &data, &len, e)) != 0)
			return r;
		r = ssh_upload(c, argv[i + 1], data, len, mode, e);
		free(data);
		data = NULL;
	}
	return r;
}

static int
read_stdin(char **out, struct dbpki_err *e)
{
	size_t cap = 4096, len = 0, n;
	char *buf = malloc(cap), *nb;

	*out = NULL;
	while (buf != NULL) {
		if (len + 1 >= cap) {
			if ((nb = realloc(buf, cap * 2)) == NULL)
				break;
			buf = nb;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - len - 1, stdin);
		len += n;
		if (n == 0) {
			buf[len] = '\0';
			*out = buf;
			return 0;
		}
	}
	free(buf);
	return err_set(e, DBPKI_E_NOMEM, "out of memory");
}

static int
do_exec(struct ssh_conn *c, int argc, char **argv, struct dbpki_err *e)
{
	struct ssh_result res;
	const char *sentinel = NULL;
	long long t = 0;
	char *script = NULL;
	int r, ok;

	if (argc >= 2 && strcmp(argv[0], "-s") == 0) {
		sentinel = argv[1];
		argc -= 2;
		argv += 2;
	}
	if (argc > 1 || (argc == 1 && util_parse_int(argv[0], 1, 86400, &t)))
		return err_set(
		    e, DBPKI_E_USAGE, "exec [-s SENTINEL] [TIMEOUT_S]");
	if ((r = read_stdin(&script, e)) != 0)
		return r;
	r = ssh_exec_script(c, script, t, &res, e);
	free(script);
	ok = ssh_result_ok(&res, sentinel);
	fwrite(res.out, 1, res.out_len, stdout);
	fflush(stdout);
	fprintf(stderr,
	    "exit_status=%d signal=%s timed_out=%d truncated=%d "
	    "out_len=%zu ok=%d\n",
	    res.exit_status, res.signal ? res.signal : "-", res.timed_out,
	    res.out_truncated, res.out_len, ok);
	ssh_result_free(&res);
	if (r == 0 && !ok)
		r = err_set(e, DBPKI_E_REMOTE, "the remote command failed");
	return r;
}

static int
run(const struct cfg_node *n, int argc, char **argv, struct dbpki_err *e)
{
	struct ssh_conn *c = NULL;
	int mode = 0700, r;

	if ((r = ssh_connect(n, &c, e)) != 0)
		return r;
	if (strcmp(argv[0], "connect") == 0 && argc == 1)
		r = 0;
	else if (strcmp(argv[0], "mkdir") == 0 && (argc == 2 || argc == 3)) {
		if (argc == 3 && parse_mode(argv[2], &mode) != 0)
			r = err_set(e, DBPKI_E_USAGE, "bad mode %s", argv[2]);
		else
			r = ssh_mkdir(c, argv[1], mode, e);
	} else if (strcmp(argv[0], "upload") == 0)
		r = do_upload(c, argc - 1, argv + 1, e);
	else if (strcmp(argv[0], "exec") == 0)
		r = do_exec(c, argc - 1, argv + 1, e);
	else
		r = err_set(e, DBPKI_E_USAGE, "unknown command %s", argv[0]);
	ssh_close(c);
	return r;
}

int
main(int argc, char **argv)
{
	static struct dbpki_cluster cl;
	const struct cfg_node *n;
	struct dbpki_err e;
	const char *ini = NULL;
	int ch, r;

	signal(SIGPIPE, SIG_IGN);
	umask(077);
	while ((ch = getopt(argc, argv, "+c:")) != -1) {
		if (ch != 'c')
			return usage();
		ini = optarg;
	}
	argc -= optind;
	argv += optind;
	if (ini == NULL || argc < 2)
		return usage();
	err_clear(&e);
	if (cfg_load(ini, &cl, &e) != 0) {
		fprintf(stderr, "sshtool: %s\n", e.msg);
		return 2;
	}
	if ((n = cfg_node_by_name(&cl, argv[0])) == NULL) {
		fprintf(stderr, "sshtool: no node %s in %s\n", argv[0], ini);
		return 2;
	}
	if (libssh2_init(0) != 0) {
		fprintf(stderr, "sshtool: libssh2_init failed\n");
		return 13;
	}
	r = run(n, argc - 1, argv + 1, &e);
	libssh2_exit();
	if (r != 0)
		fprintf(stderr, "sshtool: %s\n", e.msg);
	return exit_code(r);
}
