/* ssh: connection set-up (TCP, handshake, host key, authentication),
 * the poll()-based wait that every non-blocking libssh2 call goes through,
 * and tear-down.
 *
 * Why non-blocking with poll() even though each connection has its own
 * thread: libssh2_session_set_timeout() bounds one blocking call, not an
 * operation made of many calls, and a node that accepts TCP but never
 * speaks would otherwise hold a worker forever.  Every operation instead
 * gets one monotonic deadline and every EAGAIN waits in poll() for what
 * libssh2_session_block_directions() says, never longer than that
 * deadline.  No call is ever retried in a loop without such a wait.
 */
#include "ssh_int.h"

#include "dbpki/log.h"
#include "dbpki/util.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int64_t
ssh_deadline(int64_t secs)
{
	if (secs <= 0 || secs > INT64_MAX / 2000)
		secs = 24 * 3600;
	return util_mono_ms() + secs * 1000;
}

int
ssh_wait(struct ssh_conn *c, int64_t deadline, short extra, const char *what,
    struct dbpki_err *e)
{
	struct pollfd p;
	int64_t left = deadline - util_mono_ms();
	int dir, rc;

	if (left <= 0)
		goto timeout;
	dir = libssh2_session_block_directions(c->s);
	p.fd = c->sock;
	p.events = extra;
	p.revents = 0;
	if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
		p.events |= POLLIN;
	if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		p.events |= POLLOUT;
	/* EAGAIN without a direction should not happen; waiting for input
	 * (bounded) is safe where retrying at once would spin. */
	if (p.events == 0)
		p.events = POLLIN;
	rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
	if (rc == -1 && errno == EINTR)
		return 0;
	if (rc == -1)
		return err_sys(e, "%s: poll", c->where);
	if (rc == 0)
		goto timeout;
	/* POLLERR/POLLHUP: the next libssh2 call reports the real error. */
	return 0;
timeout:
	c->broken = 1;
	return err_set(e, DBPKI_E_TIMEOUT, "%s: timed out %s", c->where, what);
}

int
ssh_fail(struct ssh_conn *c, struct dbpki_err *e, int code, const char *what)
{
	char clean[512];
	char *msg = NULL;
	int len = 0;

	libssh2_session_last_error(c->s, &msg, &len, 0);
	log_sanitize(clean, sizeof(clean), msg ? msg : "unknown error",
	    msg ? (size_t)len : 13, 0);
	return err_set(e, code, "%s: %s: %s", c->where, what, clean);
}

int
ssh_usable(struct ssh_conn *c, struct dbpki_err *e)
{
	if (c == NULL || c->s == NULL)
		return err_set(e, DBPKI_E_INTERNAL, "ssh: not connected");
	if (c->broken)
		return err_set(e, DBPKI_E_SSH,
		    "%s: the connection was abandoned after an earlier "
		    "timeout; "
		    "connect again",
		    c->where);
	return 0;
}

const char *
ssh_node_name(const struct ssh_conn *c)
{
	return c->node->name;
}

/* Wait for a non-blocking connect() to finish; 0 or an errno value. */
static int
connect_wait(int fd, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	socklen_t sl = sizeof(int);
	int64_t left;
	int rc, soerr = 0;

	for (;;) {
		if ((left = deadline - util_mono_ms()) <= 0)
			return ETIMEDOUT;
		rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (rc == -1 && errno == EINTR)
			continue;
		if (rc == -1)
			return errno;
		if (rc == 0)
			return ETIMEDOUT;
		break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
		return errno;
	return soerr;
}

static int
tcp_connect(struct ssh_conn *c, int64_t deadline, struct dbpki_err *e)
{
	const struct cfg_node *n = c->node;
	struct addrinfo hints, *res = NULL, *ai;
	char port[16];
	int fd, one = 1, err = 0, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags =
	    AI_NUMERICSERV | (util_valid_ip(n->address) ? AI_NUMERICHOST : 0);
	util_fmt(port, sizeof(port), "%d", n->ssh.port);
	/* XXX a host name here costs a blocking DNS lookup, outside the
	 * deadline; inventories normally give addresses. */
	if ((rc = getaddrinfo(n->address, port, &hints, &res)) != 0)
		return err_set(e, DBPKI_E_SSH, "%s: cannot resolve %s: %s",
		    c->where, n->address, gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			err = 0;
		else if (errno == EINPROGRESS)
			err = connect_wait(fd, deadline);
		else
			err = errno;
		if (err == 0) {
			/* Small request/response packets: do not wait for Nagle. */
			setsockopt(
			    fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			c->sock = fd;
			break;
		}
		close(fd);
		if (err == ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (c->sock != -1)
		return 0;
	if (err == ETIMEDOUT)
		return err_set(e, DBPKI_E_TIMEOUT,
		    "%s: no TCP connection within connect_timeout (%llds); "
		    "is the node up and port %d reachable from here?",
		    c->where, (long long)n->ssh.connect_timeout, n->ssh.port);
	return err_set(e, DBPKI_E_SSH,
	    "%s: cannot connect: %s; is sshd "
	    "running on the node and listening on port %d?",
	    c->where, strerror(err), n->ssh.port);
}

static int
handshake(struct ssh_conn *c, struct ssh_hostkeys *kh, int64_t deadline,
    struct dbpki_err *e)
{
	int rc;

	while ((rc = libssh2_session_handshake(c->s, c->sock)) ==
	       LIBSSH2_ERROR_EAGAIN)
		if ((rc = ssh_wait(c, deadline, 0,
			 "during the SSH handshake "
			 "(connect_timeout)",
			 e)) != 0)
			return rc;
	if (rc == 0) {
		c->handshaken = 1;
		return 0;
	}
	if (rc == LIBSSH2_ERROR_KEX_FAILURE && kh->text != NULL &&
	    kh->name[0] != '\0') {
		struct ssh_kh_lookup l;

		ssh_kh_lookup(kh->text, kh->len, kh->name, NULL, 0, &l);
		if (l.types[0] != '\0')
			return err_set(e, DBPKI_E_HOSTKEY,
			    "%s: the node offers no host key of the type(s) "
			    "known_hosts (%s) records for %s: %s.  Its host "
			    "keys "
			    "may have changed; nothing was sent.  Check with "
			    "the "
			    "node's administrator, then fix that entry.",
			    c->where, c->node->ssh.known_hosts, kh->name,
			    l.types);
	}
	return ssh_fail(c, e, DBPKI_E_SSH, "SSH handshake failed");
}

/* The passphrase file, if any, without its line end; *out NULL if none.
 * Caller frees with util_freezero(*out, *len). */
static int
read_passphrase(
    struct ssh_conn *c, char **out, size_t *len, struct dbpki_err *e)
{
	const char *path = c->node->ssh.identity_passphrase_file;
	size_t n = 0;
	int r;

	*out = NULL;
	*len = 0;
	if (path[0] == '\0')
		return 0;
	if ((r = util_read_file(path, 4096, UTIL_RF_PRIVATE | UTIL_RF_NOSYMLINK,
		 out, &n, e)) != 0)
		return err_wrap(e, "%s: identity_passphrase_file", c->where);
	*len = n + 1;
	while (n > 0 && ((*out)[n - 1] == '\n' || (*out)[n - 1] == '\r'))
		(*out)[--n] = '\0';
	return 0;
}

static int
auth_identity(struct ssh_conn *c, int64_t deadline, struct dbpki_err *e)
{
	const struct cfg_ssh *s = &c->node->ssh;
	char *key = NULL, *pass = NULL;
	size_t keylen = 0, passlen = 0;
	int rc, r;

	/* Read on the fd with its permissions checked, as ssh(1) does. */
	if ((r = util_read_file(s->identity, 64 * 1024, UTIL_RF_PRIVATE, &key,
		 &keylen, e)) != 0) {
		err_wrap(e, "%s: identity", c->where);
		goto out;
	}
	if ((r = read_passphrase(c, &pass, &passlen, e)) != 0)
		goto out;
	while ((rc = libssh2_userauth_publickey_frommemory(c->s, s->user,
		    strlen(s->user), NULL, 0, key, keylen, pass)) ==
	       LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0,
			 "during authentication "
			 "(connect_timeout)",
			 e)) != 0)
			goto out;
	if (rc == LIBSSH2_ERROR_FILE ||
	    rc == LIBSSH2_ERROR_METHOD_NOT_SUPPORTED)
		r = err_set(e, DBPKI_E_CONFIG,
		    "%s: cannot use identity %s: "
		    "wrong passphrase%s, or a key type this build cannot read",
		    c->where, s->identity,
		    pass ? ""
			 : " (it is encrypted: set identity_passphrase_file)");
	else if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED ||
		 rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED)
		r = err_set(e, DBPKI_E_SSH,
		    "%s: the node refused the key %s "
		    "for user %s; is its public key in that user's "
		    "authorized_keys on the node?",
		    c->where, s->identity, s->user);
	else if (rc != 0)
		r = ssh_fail(c, e, DBPKI_E_SSH, "authentication failed");
	else
		r = 0;
out:
	util_freezero(key, keylen);
	util_freezero(pass, passlen);
	return r;
}

static int
auth_agent(struct ssh_conn *c, int64_t deadline, struct dbpki_err *e)
{
	const struct cfg_ssh *s = &c->node->ssh;
	struct libssh2_agent_publickey *id = NULL, *prev = NULL;
	LIBSSH2_AGENT *agent = NULL;
	int rc, r, tried = 0;

	if (getenv("SSH_AUTH_SOCK") == NULL)
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: no identity in the "
		    "inventory and no SSH agent (SSH_AUTH_SOCK is not set); "
		    "set "
		    "[ssh] identity or start ssh-agent",
		    c->where);
	if ((agent = libssh2_agent_init(c->s)) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "%s: agent", c->where);
	/* The agent is a local blocking socket; only the userauth below
	 * talks to the node. */
	if (libssh2_agent_connect(agent) != 0 ||
	    libssh2_agent_list_identities(agent) != 0) {
		r = ssh_fail(c, e, DBPKI_E_SSH, "cannot use the SSH agent");
		goto out;
	}
	r = DBPKI_E_SSH;
	while ((rc = libssh2_agent_get_identity(agent, &id, prev)) == 0) {
		tried++;
		while ((rc = libssh2_agent_userauth(agent, s->user, id)) ==
		       LIBSSH2_ERROR_EAGAIN)
			if ((r = ssh_wait(c, deadline, 0,
				 "during agent "
				 "authentication (connect_timeout)",
				 e)) != 0)
				goto out;
		if (rc == 0) {
			r = 0;
			goto out;
		}
		prev = id;
	}
	r = err_set(e, DBPKI_E_SSH,
	    "%s: the node refused all %d key(s) of "
	    "the SSH agent for user %s",
	    c->where, tried, s->user);
out:
	libssh2_agent_disconnect(agent);
	libssh2_agent_free(agent);
	return r;
}

static int
check_node(const struct cfg_node *n, struct dbpki_err *e)
{
	if (n->address[0] == '\0' || n->ssh.user[0] == '\0' ||
	    n->ssh.port < 1 || n->ssh.port > 65535 ||
	    n->ssh.known_hosts[0] == '\0')
		return err_set(e, DBPKI_E_CONFIG,
		    "node %s: incomplete ssh "
		    "settings (address, user, port, known_hosts)",
		    n->name);
	return 0;
}

int
ssh_connect(
    const struct cfg_node *n, struct ssh_conn **out, struct dbpki_err *e)
{
	struct ssh_hostkeys kh;
	struct ssh_conn *c;
	int64_t deadline;
	int r;

	*out = NULL;
	memset(&kh, 0, sizeof(kh));
	if ((r = check_node(n, e)) != 0)
		return r;
	deadline = ssh_deadline(n->ssh.connect_timeout);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return err_set(
		    e, DBPKI_E_NOMEM, "node %s: out of memory", n->name);
	c->node = n;
	c->sock = -1;
	util_fmt(c->where, sizeof(c->where),
	    strchr(n->address, ':') ? "node %s ([%s]:%d)" : "node %s (%s:%d)",
	    n->name, n->address, n->ssh.port);
	if ((c->s = libssh2_session_init_ex(NULL, NULL, NULL, c)) == NULL) {
		r = err_set(
		    e, DBPKI_E_NOMEM, "%s: cannot create a session", c->where);
		goto out;
	}
	libssh2_session_set_blocking(c->s, 0);
	if ((r = ssh_hostkey_prepare(c, &kh, e)) != 0 ||
	    (r = tcp_connect(c, deadline, e)) != 0 ||
	    (r = handshake(c, &kh, deadline, e)) != 0 ||
	    (r = ssh_hostkey_verify(c, &kh, e)) != 0)
		goto out;
	if (n->ssh.identity[0] != '\0')
		r = auth_identity(c, deadline, e);
	else
		r = auth_agent(c, deadline, e);
	if (r != 0)
		goto out;
	*out = c;
	c = NULL;
out:
	ssh_hostkey_free(&kh);
	ssh_close(c);
	return r;
}

void
ssh_close(struct ssh_conn *c)
{
	if (c == NULL)
		return;
	if (c->s != NULL) {
		/* Tear-down may need a round trip; bound it with libssh2's own
		 * timeout for blocking calls rather than more poll loops. */
		libssh2_session_set_blocking(c->s, 1);
		libssh2_session_set_timeout(c->s, c->broken ? 200 : 2000);
		if (c->sftp != NULL)
			libssh2_sftp_shutdown(c->sftp);
		if (!c->broken && c->handshaken)
			libssh2_session_disconnect(c->s, "dbpki: done");
		libssh2_session_free(c->s);
	}
	if (c->sock != -1)
		close(c->sock);
	free(c);
}
