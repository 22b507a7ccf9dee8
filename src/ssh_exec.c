/* ssh_exec: run a node script as `sh -s` with the script on stdin
 * (STYLE 9.4, rules 19 and 23).
 *
 * Output: stdout and stderr are merged (an unread stderr would fill the
 * channel window and stall the command) and only the last SSH_OUT_MAX
 * bytes are kept; the rest is read and dropped so the node never blocks
 * on a full pipe.  The tail is what an admin needs (the error is at the
 * end) and where the sentinel line is.
 *
 * Timeouts: the whole command (channel open to channel close) has one
 * monotonic deadline.  When it passes we report DBPKI_E_TIMEOUT and close
 * the channel.  libssh2 1.10 cannot send a signal on a channel and sshd
 * does not kill a command whose channel goes away (nor answer our channel
 * close before the command's output ends), so the remote shell is started
 * under timeout(1) with the same limit when the node has it: a timed-out
 * script does not linger on the node and our close completes at once.
 * Whichever side notices first, the result is the same: DBPKI_E_TIMEOUT
 * (timeout(1) reports itself with exit status 124 at the deadline).
 * Without timeout(1) on the node, the close cannot complete within the
 * grace period, and the connection is marked unusable.
 */
#include "ssh_int.h"

#include "dbpki/util.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXEC_GRACE_S            2    /* to close a timed-out channel cleanly */
#define REMOTE_TIMEOUT_STATUS   124  /* timeout(1): the command timed out */
#define REMOTE_TIMEOUT_SLACK_MS 1500 /* its clock started after ours */

struct outbuf {
	char *buf; /* 2 * SSH_OUT_MAX + 1: room to append before trimming */
	size_t len;
	int truncated;
};

static void
out_keep_tail(struct outbuf *o, size_t keep)
{
	if (o->len <= keep)
		return;
	memmove(o->buf, o->buf + (o->len - keep), keep);
	o->len = keep;
	o->truncated = 1;
}

static void
out_add(struct outbuf *o, const char *p, size_t n)
{
	if (n > SSH_OUT_MAX) {
		p += n - SSH_OUT_MAX;
		n = SSH_OUT_MAX;
		o->len = 0;
		o->truncated = 1;
	}
	if (o->len + n > 2 * SSH_OUT_MAX)
		out_keep_tail(o, 2 * SSH_OUT_MAX - n);
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

/* Close and free a channel whose command is abandoned; if that works in
 * the grace period the session stays usable. */
static void
abandon_channel(struct ssh_conn *c, LIBSSH2_CHANNEL *ch)
{
	struct dbpki_err ignored;
	int64_t grace = ssh_deadline(EXEC_GRACE_S);
	int rc;

	c->broken = 0;
	while ((rc = libssh2_channel_close(ch)) == LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(c, grace, 0, "closing the channel", &ignored) != 0)
			return;
	if (rc != 0) {
		c->broken = 1;
		return;
	}
	while ((rc = libssh2_channel_free(ch)) == LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(c, grace, 0, "freeing the channel", &ignored) != 0)
			return;
	if (rc != 0)
		c->broken = 1;
}

static int
open_channel(struct ssh_conn *c, int64_t deadline, const char *what,
    LIBSSH2_CHANNEL **out, struct dbpki_err *e)
{
	LIBSSH2_CHANNEL *ch;
	int rc;

	*out = NULL;
	while ((ch = libssh2_channel_open_session(c->s)) == NULL &&
	       libssh2_session_last_errno(c->s) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = ssh_wait(c, deadline, 0, what, e)) != 0)
			return rc;
	if (ch == NULL)
		return ssh_fail(c, e, DBPKI_E_SSH, "cannot open a channel");
	*out = ch;
	while (
	    (rc = libssh2_channel_handle_extended_data2(ch,
		 LIBSSH2_CHANNEL_EXTENDED_DATA_MERGE)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = ssh_wait(c, deadline, 0, what, e)) != 0)
			return rc;
	if (rc != 0)
		return ssh_fail(c, e, DBPKI_E_SSH, "cannot merge stderr");
	return 0;
}

/* Feed the script and read the output until the node sends EOF.  Writing
 * and reading interleave so a script that prints a lot before it has
 * read all of its input cannot deadlock us. */
static int
pump(struct ssh_conn *c, LIBSSH2_CHANNEL *ch, const char *script,
    int64_t deadline, const char *what, struct outbuf *o, struct dbpki_err *e)
{
	char buf[32 * 1024];
	size_t len = strlen(script), sent = 0;
	ssize_t n;
	int progress, in_done = 0, rc;

	for (;;) {
		progress = 0;
		if (!in_done && sent < len) {
			n = libssh2_channel_write(
			    ch, script + sent, len - sent);
			if (n > 0) {
				sent += (size_t)n;
				progress = 1;
			} else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
				in_done = 1; /* the shell quit early; read on */
		}
		if (!in_done && sent == len) {
			rc = libssh2_channel_send_eof(ch);
			if (rc != LIBSSH2_ERROR_EAGAIN) {
				in_done = 1;
				progress = 1;
			}
		}
		n = libssh2_channel_read(ch, buf, sizeof(buf));
		if (n > 0) {
			out_add(o, buf, (size_t)n);
			progress = 1;
		} else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
			return ssh_fail(
			    c, e, DBPKI_E_SSH, "reading the command's output");
		if (n <= 0 && libssh2_channel_eof(ch))
			return 0;
		if (!progress &&
		    (rc = ssh_wait(c, deadline, POLLIN, what, e)) != 0)
			return rc;
	}
}

/* After EOF: close, wait for the node's close (the exit status arrives
 * before it), then read status and signal. */
static int
finish(struct ssh_conn *c, LIBSSH2_CHANNEL *ch, int64_t deadline,
    const char *what, struct ssh_result *res, struct dbpki_err *e)
{
	char *sig = NULL;
	size_t siglen = 0;
	int rc;

	while ((rc = libssh2_channel_close(ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = ssh_wait(c, deadline, 0, what, e)) != 0)
			return rc;
	if (rc != 0)
		return ssh_fail(c, e, DBPKI_E_SSH, "closing the channel");
	while ((rc = libssh2_channel_wait_closed(ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((rc = ssh_wait(c, deadline, 0, what, e)) != 0)
			return rc;
	if (rc != 0)
		return ssh_fail(c, e, DBPKI_E_SSH,
		    "waiting for the channel "
		    "to close");
	res->exit_status = libssh2_channel_get_exit_status(ch);
	if (libssh2_channel_get_exit_signal(
		ch, &sig, &siglen, NULL, NULL, NULL, NULL) == 0 &&
	    sig != NULL) {
		res->signal = strndup(sig, siglen);
		libssh2_free(c->s, sig);
		if (res->signal == NULL)
			return err_set(
			    e, DBPKI_E_NOMEM, "%s: out of memory", c->where);
	}
	return 0;
}

int
ssh_exec_script(struct ssh_conn *c, const char *script, int64_t timeout_s,
    struct ssh_result *res, struct dbpki_err *e)
{
	struct outbuf o = {NULL, 0, 0};
	LIBSSH2_CHANNEL *ch = NULL;
	char cmd[256], what[96];
	int64_t secs, deadline;
	int r, rc;

	memset(res, 0, sizeof(*res));
	if ((r = ssh_usable(c, e)) != 0)
		return r;
	secs = timeout_s > 0 ? timeout_s : c->node->ssh.command_timeout;
	if (secs <= 0 || secs > 7 * 86400)
		secs = 300;
	deadline = ssh_deadline(secs);
	util_fmt(what, sizeof(what),
	    "after %llds waiting for the command "
	    "(command timeout)",
	    (long long)secs);
	/* A fixed command: no value of ours ever travels in it but the
	 * number of seconds.  The script itself goes on stdin. */
	util_fmt(cmd, sizeof(cmd),
	    "if command -v timeout >/dev/null 2>&1; "
	    "then exec timeout -k 5 %lld sh -s; else exec sh -s; fi",
	    (long long)secs);
	if ((o.buf = malloc(2 * SSH_OUT_MAX + 1)) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "%s: out of memory", c->where);
	if ((r = open_channel(c, deadline, what, &ch, e)) != 0)
		goto out;
	while ((rc = libssh2_channel_exec(ch, cmd)) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			goto out;
	if (rc != 0) {
		r = ssh_fail(c, e, DBPKI_E_SSH,
		    "the node refused to run a "
		    "command");
		goto out;
	}
	if ((r = pump(c, ch, script, deadline, what, &o, e)) != 0 ||
	    (r = finish(c, ch, deadline, what, res, e)) != 0)
		goto out;
	while ((rc = libssh2_channel_free(ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(
			 c, deadline + EXEC_GRACE_S * 1000, 0, what, e)) != 0)
			goto out;
	ch = NULL;
	if (res->exit_status == REMOTE_TIMEOUT_STATUS &&
	    util_mono_ms() >= deadline - REMOTE_TIMEOUT_SLACK_MS)
		r = err_set(
		    e, DBPKI_E_TIMEOUT, "%s: timed out %s", c->where, what);
out:
	if (r == DBPKI_E_TIMEOUT)
		res->timed_out = 1;
	if (ch != NULL && r == DBPKI_E_TIMEOUT)
		abandon_channel(c, ch);
	else if (ch != NULL)
		c->broken = 1; /* protocol trouble: do not reuse the session */
	out_keep_tail(&o, SSH_OUT_MAX);
	o.buf[o.len] = '\0';
	res->out = o.buf;
	res->out_len = o.len;
	res->out_truncated = o.truncated;
	return r;
}

int
ssh_result_ok(const struct ssh_result *r, const char *sentinel)
{
	size_t end, start, n;

	if (r == NULL || r->timed_out || r->signal != NULL ||
	    r->exit_status != 0)
		return 0;
	if (sentinel == NULL)
		return 1;
	if (r->out == NULL)
		return 0;
	end = r->out_len;
	if (end > 0 && r->out[end - 1] == '\n')
		end--;
	if (end > 0 && r->out[end - 1] == '\r')
		end--;
	start = end;
	while (start > 0 && r->out[start - 1] != '\n')
		start--;
	n = strlen(sentinel);
	return end - start == n && memcmp(r->out + start, sentinel, n) == 0;
}

void
ssh_result_free(struct ssh_result *r)
{
	if (r == NULL)
		return;
	free(r->signal);
	free(r->out);
	memset(r, 0, sizeof(*r));
}
