/* ssh_int: what src/ssh*.c share; not part of the module's public face.
 * (Not in include/: nothing outside the ssh module may see the struct.) */
#ifndef DBPKI_SSH_INT_H
#define DBPKI_SSH_INT_H

#include <stdint.h>

#include <libssh2.h>
#include <libssh2_sftp.h>

#include "dbpki/config.h"
#include "dbpki/err.h"
#include "dbpki/ssh.h"

struct ssh_conn {
	const struct cfg_node *node;
	int sock;
	LIBSSH2_SESSION *s;
	LIBSSH2_SFTP *sftp; /* opened on first use */
	int broken;         /* a timeout left the session mid-protocol */
	int handshaken;     /* the SSH handshake completed */
	char where[CFG_NAME + CFG_ADDR + 48]; /* "node1 (127.0.0.1:2222)" */
};

/* Monotonic deadline secs from now, in ms (util_mono_ms()). */
int64_t ssh_deadline(int64_t secs);

/* The session said EAGAIN: poll() its socket in the directions libssh2
 * is blocked on (plus `extra` poll events) until it is ready or deadline
 * passes.  Returns 0 to retry the call, DBPKI_E_TIMEOUT (and marks the
 * connection broken) when the deadline passed, naming `what`. */
int ssh_wait(struct ssh_conn *c, int64_t deadline, short extra,
    const char *what, struct dbpki_err *e);

/* Set e from libssh2's last error on c's session: "<where>: <what>: msg". */
int ssh_fail(
    struct ssh_conn *c, struct dbpki_err *e, int code, const char *what);

/* Connections that are broken or not connected refuse further work. */
int ssh_usable(struct ssh_conn *c, struct dbpki_err *e);

/* Host keys (ssh_hostkey.c): before the handshake, read known_hosts
 * (checked like a trust anchor) and pin the host-key algorithms to the
 * types recorded for this host; after it, decide per the policy. */
struct ssh_hostkeys {
	char *text; /* known_hosts contents, NUL-terminated */
	size_t len;
	int mode; /* the file's permission bits, kept on rewrite */
	char name[CFG_ADDR + 16]; /* "addr" or "[addr]:port" */
};

int ssh_hostkey_prepare(
    struct ssh_conn *c, struct ssh_hostkeys *kh, struct dbpki_err *e);
int ssh_hostkey_verify(
    struct ssh_conn *c, struct ssh_hostkeys *kh, struct dbpki_err *e);
void ssh_hostkey_free(struct ssh_hostkeys *kh);

#endif
