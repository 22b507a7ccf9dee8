/* pg: prove a PostgreSQL node with libpq, the way a client would see it.
 *
 * Every connection made here is TCP with sslmode=verify-full (the served
 * certificate must chain to `sslrootcert` and its SANs must hold `host`),
 * gssencmode=disable (GSSAPI encryption would otherwise win over TLS), and
 * the dbclient certificate when one is given.  libpq is driven only through
 * keyword/value arrays (expand_dbname = 0) and PQexecParams; nothing is ever
 * concatenated into a conninfo string.
 *
 * libpq's fallbacks to the login user's home (~/.postgresql/postgresql.crt,
 * root.crl, ~/.pgpass) are switched off.  PG* environment variables still
 * fill the keywords this module leaves unset (hostaddr when NULL, sslcrldir,
 * options, PGSERVICE's entries); dbpki does not clear the environment.
 *
 * All functions block the calling thread (at most connect_timeout_s per
 * connection attempt).  libpq is thread-safe, so the engine may probe many
 * nodes from several threads; a connection is never shared between calls.
 *
 * Error codes: DBPKI_E_VERIFY both for "could not connect" (the message
 * carries libpq's reason, folded onto one line, plus a hint) and for
 * "connected but wrong" (recovery state, a replica missing from
 * pg_stat_replication); DBPKI_E_CONFIG for an unusable pg_target;
 * DBPKI_E_NOMEM; DBPKI_E_PKI when the served certificate cannot be read.
 * Every message names host:port (and hostaddr when given).
 */
#ifndef DBPKI_PG_H
#define DBPKI_PG_H

#include <stdint.h>

#include "dbpki/err.h"

/* Where and how to connect.  Only the pointers are borrowed; the strings
 * must stay valid for the duration of the call. */
struct pg_target {
	const char
	    *host; /* required: the name the server cert's SAN must hold */
	const char *hostaddr;    /* optional: IP to connect to, so no DNS lookup
	                          * happens; `host` is still what is verified */
	int port;                /* 0 means 5432 */
	const char *dbname;      /* NULL means "postgres" */
	const char *user;        /* NULL means "postgres" */
	const char *sslrootcert; /* required: dbca (PEM) */
	const char *sslcert;     /* dbclient certificate; NULL: none at all */
	const char *sslkey;      /* its key (0600); NULL iff sslcert is NULL */
	int connect_timeout_s;   /* 0 means 10; libpq treats values < 2 as 2 */
	const char *application_name; /* NULL means "dbpki" */
};

/* Serial numbers: lower-case hexadecimal of the serial as a positive
 * BIGNUM, exactly BN_bn2hex() lower-cased: whole octets (so always an even
 * number of digits), no leading zero octets, no "0x", no colons, "0" for a
 * zero serial and a leading "-" for a (non-conforming) negative one.  This
 * equals `openssl x509 -noout -serial` lower-cased for any positive serial,
 * and is the format the pki module records at issue time. */
#define PG_SERIAL_HEX 64

struct pg_probe {
	int in_recovery; /* pg_is_in_recovery(): 1 replica, 0 primary */
	char serial_hex[PG_SERIAL_HEX]; /* served certificate, see above */
	int64_t not_after;   /* served certificate, seconds since epoch */
	char sha256_hex[65]; /* SHA-256 of its DER, lower-case, no colons */
	char subject[256];   /* RFC 2253 one-line subject, sanitized */
	char protocol[32];   /* PQsslAttribute "protocol", e.g. TLSv1.3 */
	char cipher[64];     /* PQsslAttribute "cipher" */
	int server_version;  /* PQserverVersion(), e.g. 150018 */
	int verify_ok;       /* SSL_get_verify_result() == X509_V_OK */
};

/* Connect to t with verify-full and the client certificate, read the
 * certificate the server actually presented (PQsslStruct + OpenSSL) and ask
 * pg_is_in_recovery().  On success returns 0 and fills *out completely; on
 * failure returns a negative code, *out is zeroed, and e says why. */
int pg_probe_node(
    const struct pg_target *t, struct pg_probe *out, struct dbpki_err *e);

/* One row of pg_stat_replication joined with pg_stat_ssl on pid. */
struct pg_repl {
	char application_name[64];
	char client_addr[64]; /* "" for a unix-socket walsender */
	char state[32];       /* "streaming", "catchup", ...; "" if hidden */
	int ssl;              /* pg_stat_ssl.ssl for that walsender */
	char
	    ssl_client_dn[256]; /* pg_stat_ssl.client_dn, e.g. "/CN=postgres" */
	int64_t
	    replay_lag_bytes; /* current WAL position - replay_lsn; -1 unknown */
};

/* List the walsenders of `primary` (connected as with pg_probe_node).  The
 * user must be a superuser or a member of pg_read_all_stats, otherwise the
 * server hides state and addresses (state then reads "").  *rows must be
 * NULL on entry; on success it is a calloc'ed array of *n rows (possibly
 * NULL with *n == 0) that the caller frees with free().  Rows are ordered
 * by application_name.  Text from the server is sanitized. */
int pg_replication(const struct pg_target *primary, struct pg_repl **rows,
    int *n, struct dbpki_err *e);

/* Wait up to timeout_s seconds (>= 1) until every one of the n application
 * names appears in pg_replication() with state "streaming" over SSL.
 * Polls every 500 ms with a fresh connection each time, so a primary that
 * is still starting is tolerated until the deadline; with n == 0 it only
 * waits for the primary to answer.  Returns 0 when all
 * are streaming; otherwise DBPKI_E_VERIFY with a message naming each
 * missing replica and what was seen instead (its state and ssl flag, or
 * "absent", and the walsenders present), or the last connection error. */
int pg_wait_streaming(const struct pg_target *primary, const char *const *names,
    int n, int timeout_s, struct dbpki_err *e);

/* Read the certificate a node serves whatever it is: expired, from another
 * CA, for another name.  The one exception to "always verify-full": this
 * only reads, it never trusts or logs in.  libpq runs with sslmode=require
 * and no root certificate (so it checks nothing) and no client
 * certificate; the certificate is taken from the TLS session as soon as
 * the handshake is done and the connection is closed before the startup
 * packet is sent, so the server neither authenticates nor logs anything.
 * Only t->host, hostaddr, port and connect_timeout_s are used (the whole
 * wait, not per step).  *cert must be NULL on entry; on success the caller
 * frees it with X509_free().  DBPKI_E_VERIFY when the node cannot be
 * reached or serves no TLS, DBPKI_E_TIMEOUT past the deadline. */
struct x509_st;
int pg_peek_cert(
    const struct pg_target *t, struct x509_st **cert, struct dbpki_err *e);

#endif
