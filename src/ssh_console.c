/* ssh_console: an interactive shell channel, for nodes whose login is a
 * console rather than a POSIX shell (the cms platform's MMP).
 *
 * The channel asks for a terminal ("dumb", 200 columns so that the console
 * does not wrap its lines) and a shell; stderr is merged into stdout.  The
 * caller writes a command, then reads until the console's reply is
 * complete: that conversation is the caller's (engine_cms.c), this file
 * only moves bytes under the connection's deadlines, like ssh_exec.c.
 *
 * Closing: a terminal session carries no EOF to the program (sshd cannot
 * half-close a pty), so we close the channel; sshd then hangs the terminal
 * up, the console exits and sshd confirms the close.  If that does not
 * happen within a short grace period the connection is marked unusable.
 */
#include "ssh_int.h"

#include "dbpki/util.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define CONSOLE_GRACE_S 5
#define CONSOLE_COLS    200
#define CONSOLE_ROWS    50

struct ssh_console {
	struct ssh_conn *c;
	LIBSSH2_CHANNEL *ch;
};

static int
console_open_channel(struct ssh_conn *c, int64_t deadline,
    LIBSSH2_CHANNEL **out, struct dbpki_err *e)
{
	static const char what[] = "opening the console session";
	LIBSSH2_CHANNEL *ch;
	int rc, r;

	while ((ch = libssh2_channel_open_session(c->s)) == NULL &&
	       libssh2_session_last_errno(c->s) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	if (ch == NULL)
		return ssh_fail(c, e, DBPKI_E_SSH, "cannot open a channel");
	*out = ch;
	while (
	    (rc = libssh2_channel_handle_extended_data2(ch,
		 LIBSSH2_CHANNEL_EXTENDED_DATA_MERGE)) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	while ((rc = libssh2_channel_request_pty_ex(ch, "dumb", 4, NULL, 0,
		    CONSOLE_COLS, CONSOLE_ROWS, 0, 0)) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	if (rc != 0)
		return ssh_fail(
		    c, e, DBPKI_E_SSH, "the node refused a terminal");
	while ((rc = libssh2_channel_shell(ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	if (rc != 0)
		return ssh_fail(
		    c, e, DBPKI_E_SSH, "the node refused a console session");
	return 0;
}

int
ssh_console_open(struct ssh_conn *c, int64_t timeout_s,
    struct ssh_console **out, struct dbpki_err *e)
{
	struct ssh_console *k;
	int r;

	*out = NULL;
	if ((r = ssh_usable(c, e)) != 0)
		return r;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "%s: out of memory", c->where);
	k->c = c;
	r = console_open_channel(c, ssh_deadline(timeout_s), &k->ch, e);
	if (r != 0) {
		ssh_console_close(k);
		return r;
	}
	*out = k;
	return 0;
}

int
ssh_console_write(struct ssh_console *k, const char *data, size_t len,
    int64_t deadline_ms, struct dbpki_err *e)
{
	size_t sent = 0;
	ssize_t n;
	int r;

	while (sent < len) {
		n = libssh2_channel_write(k->ch, data + sent, len - sent);
		if (n > 0) {
			sent += (size_t)n;
			continue;
		}
		if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
			return ssh_fail(k->c, e, DBPKI_E_SSH,
			    "typing a command on the console");
		if ((r = ssh_wait(k->c, deadline_ms, 0,
			 "typing a command on the console", e)) != 0)
			return r;
	}
	return 0;
}

int
ssh_console_read(struct ssh_console *k, char *buf, size_t bufsz, size_t *n,
    int *eof, int64_t deadline_ms, const char *what, struct dbpki_err *e)
{
	ssize_t got;
	int r;

	*n = 0;
	*eof = 0;
	for (;;) {
		got = libssh2_channel_read(k->ch, buf, bufsz);
		if (got > 0) {
			*n = (size_t)got;
			return 0;
		}
		if (got < 0 && got != LIBSSH2_ERROR_EAGAIN)
			return ssh_fail(k->c, e, DBPKI_E_SSH,
			    "reading the console's reply");
		if (libssh2_channel_eof(k->ch)) {
			*eof = 1;
			return 0;
		}
		if ((r = ssh_wait(k->c, deadline_ms, POLLIN, what, e)) != 0)
			return r;
	}
}

/* After our close: drain what the console still sends until its EOF
 * (wait_closed refuses to run before it), then wait for its close. */
static int
drain_and_wait(struct ssh_console *k, int64_t grace)
{
	struct dbpki_err ignored;
	char buf[4096];
	ssize_t n;
	int rc;

	while (!libssh2_channel_eof(k->ch)) {
		n = libssh2_channel_read(k->ch, buf, sizeof(buf));
		if (n > 0 || libssh2_channel_eof(k->ch))
			continue;
		if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
			return (int)n;
		if (ssh_wait(k->c, grace, POLLIN, "closing the console",
			&ignored) != 0)
			return LIBSSH2_ERROR_TIMEOUT;
	}
	while (
	    (rc = libssh2_channel_wait_closed(k->ch)) == LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(k->c, grace, 0, "closing the console", &ignored) !=
		    0)
			return LIBSSH2_ERROR_TIMEOUT;
	return rc;
}

void
ssh_console_close(struct ssh_console *k)
{
	struct dbpki_err ignored;
	int64_t grace;
	int rc = 0;

	if (k == NULL)
		return;
	if (k->ch != NULL && !k->c->broken) {
		grace = ssh_deadline(CONSOLE_GRACE_S);
		while (
		    (rc = libssh2_channel_close(k->ch)) == LIBSSH2_ERROR_EAGAIN)
			if (ssh_wait(k->c, grace, 0, "closing the console",
				&ignored) != 0)
				break;
		if (rc == 0)
			rc = drain_and_wait(k, grace);
		while (rc == 0 && (rc = libssh2_channel_free(k->ch)) ==
				      LIBSSH2_ERROR_EAGAIN)
			if (ssh_wait(k->c, grace, 0, "closing the console",
				&ignored) != 0)
				break;
		if (rc != 0)
			k->c->broken = 1;
	} else if (k->ch != NULL) {
		k->c->broken = 1;
	}
	free(k);
}
