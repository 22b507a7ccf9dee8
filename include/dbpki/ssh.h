/* ssh: one node's SSH connection (libssh2): strict host-key checking,
 * key or agent authentication, atomic SFTP upload, exec of a node script
 * on stdin, exit status and timeouts.
 *
 * Concurrency model: one struct ssh_conn is one TCP connection and one
 * LIBSSH2_SESSION, used by one thread at a time.  Many nodes are served by
 * many connections (the engine runs one per worker thread, up to
 * [cluster] parallel).  Every session is non-blocking and every wait is a
 * poll() on its socket bounded by a monotonic deadline, so a silent node
 * can never hang a worker past its timeout.
 *
 * libssh2_init(0) must have been called once, before any thread starts
 * (main() does it).  SIGPIPE must be ignored (main() does it).
 *
 * Errors: every function returns 0 or a negative DBPKI_E_* code with the
 * message in *e, always naming the node and its address:
 *   DBPKI_E_HOSTKEY  unknown, changed or revoked host key (nothing was sent)
 *   DBPKI_E_SSH      transport, authentication, SFTP or protocol failure
 *   DBPKI_E_TIMEOUT  connect_timeout or command timeout passed
 *   DBPKI_E_CONFIG   a bad local file (known_hosts, identity, passphrase)
 *                    or a remote path/mode that fails validation
 *   DBPKI_E_NOMEM
 */
#ifndef DBPKI_SSH_H
#define DBPKI_SSH_H

#include <stddef.h>
#include <stdint.h>

#include "dbpki/config.h"
#include "dbpki/err.h"

/* Output kept per command: the last SSH_OUT_MAX bytes (stdout and stderr
 * merged, in arrival order); anything before is read and discarded. */
#define SSH_OUT_MAX (64 * 1024)

/* Largest known_hosts file read (OpenSSH has no limit; ours keeps a
 * hostile or runaway file from eating memory). */
#define SSH_KNOWN_HOSTS_MAX (16 * 1024 * 1024)

struct ssh_conn; /* opaque */

/* Connect to node n: TCP connect to n->address:n->ssh.port, SSH handshake,
 * host-key check against n->ssh.known_hosts per n->ssh.host_key_policy,
 * then public-key authentication as n->ssh.user with n->ssh.identity (or,
 * if identity is empty, the agent at $SSH_AUTH_SOCK).  All of it must
 * finish within n->ssh.connect_timeout seconds.
 *
 * The known_hosts entry looked up is "address" for port 22 and
 * "[address]:port" otherwise, exactly as ssh(1) records them; plain and
 * hashed (|1|salt|hash) entries, patterns and @revoked are understood.
 * strict refuses an unknown or changed key; accept-new adds an unknown key
 * to known_hosts (atomic rewrite, mode kept) but still refuses a changed
 * one.  A refusal message names the node, the key type and its SHA256
 * fingerprint and gives the exact known_hosts line.
 *
 * n must stay valid until ssh_close().  *out is NULL on entry and set only
 * on success; release it with ssh_close(). */
int ssh_connect(
    const struct cfg_node *n, struct ssh_conn **out, struct dbpki_err *e);

/* Like mkdir -p over SFTP: create path and each missing parent with mode
 * (subject to the node's umask).  Existing directories are left as they
 * are; an existing non-directory is an error.  path must pass
 * util_valid_abspath().  Bounded by the node's command_timeout. */
int ssh_mkdir(
    struct ssh_conn *c, const char *path, int mode, struct dbpki_err *e);

/* Replace remote_path with data[0..len) atomically: a reader on the node
 * sees the old file or the new one, never a partial one.  The data goes to
 * a fresh temporary name in the same directory (SFTP open EXCL, mode 0600),
 * is fsync'ed, closed (checked), chmod'ed to exactly `mode` (07777 bits),
 * then renamed over remote_path (SFTP rename; if the target exists, which
 * OpenSSH's plain SFTP rename refuses, an exec'd `mv -f` on the same
 * filesystem, i.e. rename(2)).  The result is verified with lstat: regular
 * file, size len, mode `mode`.  The temporary file is removed on any
 * failure.  The directory must exist (see ssh_mkdir()).  remote_path must
 * pass util_valid_abspath().  Bounded by the node's command_timeout. */
int ssh_upload(struct ssh_conn *c, const char *remote_path, const void *data,
    size_t len, int mode, struct dbpki_err *e);

/* What a remote command did.  out is NUL-terminated (out_len excludes the
 * NUL) and holds the last SSH_OUT_MAX bytes of stdout+stderr; out_truncated
 * says earlier output was dropped.  signal is the signal name ("KILL") if
 * the command was killed, else NULL.  Release with ssh_result_free(). */
struct ssh_result {
	int exit_status;
	int timed_out;
	char *signal;
	char *out;
	size_t out_len;
	int out_truncated;
};

/* Run script on the node with `sh -s`: the script travels on the channel's
 * stdin (never in argv), then EOF.  timeout_s > 0 overrides the node's
 * command_timeout; 0 uses it.  The remote side also runs the shell under
 * timeout(1) (when the node has it) so a timed-out script does not linger.
 *
 * Returns 0 when the command ran to completion, whatever its exit status
 * (look at *res, or better ssh_result_ok()); DBPKI_E_TIMEOUT with
 * res->timed_out set and the channel closed if it did not finish in time
 * (res->out then holds what arrived so far); another code if it could not
 * be run.  *res is zeroed on entry and must be freed with ssh_result_free()
 * whatever the return value.
 *
 * XXX libssh2 1.10 cannot tell "exit status 0" from "no exit status": a
 * zero exit_status alone does not prove success; see ssh_result_ok(). */
int ssh_exec_script(struct ssh_conn *c, const char *script, int64_t timeout_s,
    struct ssh_result *res, struct dbpki_err *e);

/* 1 if the command positively succeeded: not timed out, no signal, exit
 * status 0 and the last line of its output is exactly `sentinel` (if
 * sentinel is not NULL).  Node scripts print a sentinel as their last line
 * so that a lost exit status cannot read as success. */
int ssh_result_ok(const struct ssh_result *r, const char *sentinel);

/* Free what *r holds and zero it; NULL or a zeroed result is fine. */
void ssh_result_free(struct ssh_result *r);

/* --- interactive console (ssh_console.c), for nodes whose login is not a
 * shell (the cms platform's MMP console) --- */

struct ssh_console; /* opaque: one terminal session on a connection */

/* Open a session with a terminal ("dumb", 200 columns) and a shell, within
 * timeout_s seconds.  *out is NULL on entry, set only on success; release
 * it with ssh_console_close(). */
int ssh_console_open(struct ssh_conn *c, int64_t timeout_s,
    struct ssh_console **out, struct dbpki_err *e);

/* Type data[0..len) (all of it) before deadline_ms (util_mono_ms()). */
int ssh_console_write(struct ssh_console *k, const char *data, size_t len,
    int64_t deadline_ms, struct dbpki_err *e);

/* Wait until some output arrives (up to bufsz bytes into buf, *n set) or
 * the console ends the session (*eof set, *n 0).  DBPKI_E_TIMEOUT naming
 * `what` when deadline_ms passes first (the connection is then unusable). */
int ssh_console_read(struct ssh_console *k, char *buf, size_t bufsz, size_t *n,
    int *eof, int64_t deadline_ms, const char *what, struct dbpki_err *e);

/* Close the session (bounded grace period; if the node does not confirm,
 * the connection is marked unusable) and free k.  NULL is fine. */
void ssh_console_close(struct ssh_console *k);

/* Node name, for messages. */
const char *ssh_node_name(const struct ssh_conn *c);

/* Disconnect (best effort, bounded by a short grace period) and free
 * everything; NULL is fine. */
void ssh_close(struct ssh_conn *c);

/* --- known_hosts, exposed for the unit tests and the fuzz target --- */

enum ssh_kh_verdict {
	SSH_KH_NOTFOUND = 0, /* no entry for this host name */
	SSH_KH_MATCH,        /* an entry for this host holds exactly this key */
	SSH_KH_MISMATCH,     /* entries for this host, none with this key */
	SSH_KH_REVOKED,      /* the key is listed under @revoked */
};

/* The result of looking a host up in known_hosts text. */
struct ssh_kh_lookup {
	enum ssh_kh_verdict verdict;
	int line;        /* the matching entry, or the first one for the
			    * host of this key type (else of any type); 0 */
	char types[128]; /* key types known for the host, comma-separated,
			    * in file order ("ssh-ed25519,ssh-rsa"), or "" */
};

/* The name ssh(1) records for host:port ("host" or "[host]:port"). */
int ssh_kh_hostname(const char *host, int port, char *out, size_t outsz);

/* Look host (as from ssh_kh_hostname()) up in known_hosts text of len
 * bytes.  key/keylen is the server's key blob (SSH wire format) or NULL to
 * collect the known types only.  Lines that do not parse are ignored, as
 * ssh(1) does; host patterns (*, ?, !negation) and hashed names are
 * matched like ssh(1). */
void ssh_kh_lookup(const char *text, size_t len, const char *host,
    const unsigned char *key, size_t keylen, struct ssh_kh_lookup *out);

/* The SSH key type name embedded in a key blob ("ssh-ed25519"), into out;
 * -1 if the blob is malformed. */
int ssh_kh_blob_type(
    const unsigned char *key, size_t keylen, char *out, size_t outsz);

/* "SHA256:<base64 without padding>" of a key blob, like ssh-keygen -l. */
int ssh_kh_fingerprint(
    const unsigned char *key, size_t keylen, char *out, size_t outsz);

/* The known_hosts line "host type base64" (no newline) for a key blob. */
int ssh_kh_line(const char *host, const unsigned char *key, size_t keylen,
    char *out, size_t outsz);

#endif
