/* pg: libpq verification of PostgreSQL nodes (see include/dbpki/pg.h). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dbpki/err.h"
#include "dbpki/log.h"
#include "dbpki/pg.h"
#include "dbpki/util.h"

/*
 * libpq falls back to files in the login user's home (~/.postgresql/
 * postgresql.crt, root.crl, ~/.pgpass) whenever a keyword is unset or empty.
 * DESIGN.md forbids per-node state in the home directory, and a stray
 * root.crl there would turn on CRL checking against the wrong CA.  libpq
 * skips such a file silently when stat() fails with ENOENT or ENOTDIR, so
 * pointing the keyword below a regular file ("/dev/null/...") turns the
 * fallback off without creating anything.
 */
#define PG_NOFILE "/dev/null/dbpki-none"

#define PG_MAX_ROWS 4096
#define PG_POLL_MS  500
#define PG_WHERE    340 /* "host:port (addr)" */

static void
pg_where(const struct pg_target *t, char *buf, size_t sz)
{
	int port = t->port != 0 ? t->port : 5432;

	if (t->hostaddr != NULL && t->hostaddr[0] != '\0')
		(void)util_fmt(
		    buf, sz, "%.253s:%d (%.63s)", t->host, port, t->hostaddr);
	else
		(void)util_fmt(buf, sz, "%.253s:%d", t->host, port);
}

/* Is path an existing file we can read?  libpq would quietly go on without
 * a missing client certificate, which the server then reports as a vague
 * authentication failure; say plainly which file is missing instead. */
static int
pg_check_file(
    const char *what, const char *path, const char *where, struct dbpki_err *e)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return err_set(e, DBPKI_E_CONFIG, "%s: %s %.1024s: %s", where,
		    what, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: %s %.1024s: not a regular "
		    "file",
		    where, what, path);
	return 0;
}

static int
pg_check_target(const struct pg_target *t, struct dbpki_err *e)
{
	char where[PG_WHERE];
	int r;

	if (t == NULL || t->host == NULL ||
	    (!util_valid_hostname(t->host) && !util_valid_ip(t->host)))
		return err_set(e, DBPKI_E_CONFIG,
		    "pg: target host is missing or "
		    "not a valid host name or address");
	pg_where(t, where, sizeof(where));
	if (t->hostaddr != NULL && !util_valid_ip(t->hostaddr))
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: hostaddr is not an IP "
		    "address",
		    where);
	if (t->port < 0 || t->port > 65535 || t->connect_timeout_s < 0)
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: port or connect timeout "
		    "out of range",
		    where);
	if (t->sslrootcert == NULL)
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: no sslrootcert (dbca) "
		    "given; verify-full needs one",
		    where);
	if ((t->sslcert == NULL) != (t->sslkey == NULL))
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: sslcert and sslkey must be "
		    "given together",
		    where);
	if ((r = pg_check_file("sslrootcert", t->sslrootcert, where, e)) != 0)
		return r;
	if (t->sslcert != NULL &&
	    ((r = pg_check_file("sslcert", t->sslcert, where, e)) != 0 ||
		(r = pg_check_file("sslkey", t->sslkey, where, e)) != 0))
		return r;
	return 0;
}

/* Fold libpq's multi-line message into one sanitized line. */
static void
pg_fold(const char *msg, char *out, size_t outsz)
{
	char tmp[1024];
	size_t i, o = 0;
	int pending = 0;

	for (i = 0; msg != NULL && msg[i] != '\0' && o + 3 < sizeof(tmp); i++) {
		if (msg[i] == '\n' || msg[i] == '\r') {
			pending = o > 0;
			continue;
		}
		/* libpq indents continuation lines with a tab */
		if (pending && (msg[i] == '\t' || msg[i] == ' '))
			continue;
		if (pending) {
			tmp[o++] = ';';
			tmp[o++] = ' ';
			pending = 0;
		}
		tmp[o++] = msg[i];
	}
	tmp[o] = '\0';
	log_sanitize(out, outsz, tmp, o, 0);
}

/* A next step for the failures an admin actually meets. */
static const char *
pg_hint(const char *reason)
{
	static const struct {
		const char *needle;
		const char *hint;
	} hints[] = {
	    {"certificate verify failed",
		"the server certificate does not "
		"chain to sslrootcert, or it has expired: is sslrootcert the "
		"dbca that issued it?"},
	    {"does not match host name",
		"the server certificate's SANs do "
		"not contain this host name: reissue it with the node's host "
		"and address"},
	    {"valid client certificate", "the server wants the dbclient "
					 "certificate: check sslcert/sslkey"},
	    {"certificate authentication failed",
		"the client certificate's "
		"CN must equal the database user"},
	    {"no pg_hba.conf entry", "pg_hba.conf has no hostssl line for "
				     "this user and source address"},
	    {"Connection refused", "is PostgreSQL running and listening on "
				   "this address and port?"},
	    {"timeout expired", "the node did not answer in time: firewall, "
				"wrong address, or a hung server"},
	    {"has group or world access", "the key must be mode 0600"},
	};
	size_t i;

	for (i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
		if (strstr(reason, hints[i].needle) != NULL)
			return hints[i].hint;
	return NULL;
}

static int
pg_conn_error(
    PGconn *conn, const char *where, const char *doing, struct dbpki_err *e)
{
	char reason[768];
	const char *hint;

	pg_fold(conn != NULL ? PQerrorMessage(conn) : "out of memory", reason,
	    sizeof(reason));
	hint = pg_hint(reason);
	return err_set(e, DBPKI_E_VERIFY, "%s: %s: %s%s%s%s", where, doing,
	    reason[0] != '\0' ? reason : "unknown libpq error",
	    hint != NULL ? " (hint: " : "", hint != NULL ? hint : "",
	    hint != NULL ? ")" : "");
}

/* A NOTICE or WARNING the server sends is its text, not ours: libpq's
 * default processor would print it to stderr as it came. */
static void
pg_notice(void *arg, const char *message)
{
	char clean[512];

	(void)arg;
	pg_fold(message, clean, sizeof(clean));
	log_warn("PostgreSQL server said: %s", clean);
}

static int pg_peek_wait(
    PGconn *conn, PostgresPollingStatusType st, int64_t deadline);

/* PQconnectPoll until the connection is made or failed (0: PQstatus
 * says which), or connect_timeout passed (DBPKI_E_TIMEOUT). */
static int
pg_connect_poll(PGconn *conn, const struct pg_target *t, const char *where,
    struct dbpki_err *e)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int timeout = t->connect_timeout_s != 0 ? t->connect_timeout_s : 10;
	int64_t deadline = util_mono_ms() + 1000 * (int64_t)timeout;
	int r;

	if (PQstatus(conn) == CONNECTION_BAD)
		return 0;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		if ((r = pg_peek_wait(conn, st, deadline)) == 0)
			return err_set(e, DBPKI_E_VERIFY,
			    "%s: cannot connect with sslmode=verify-full: "
			    "timeout expired after %ds (hint: the node did "
			    "not answer in time: firewall, wrong address, or "
			    "a hung server)",
			    where, timeout);
		if (r < 0)
			return err_sys(e, "%s: waiting for the server", where);
		st = PQconnectPoll(conn);
	}
	return 0;
}

/* Open a verify-full connection.  *out is NULL on entry, set on success;
 * the caller PQfinish()es it.  Started and polled (not PQconnectdb), so
 * that pg_notice is in place before the server can say anything. */
static int
pg_connect(const struct pg_target *t, PGconn **out, struct dbpki_err *e)
{
	const char *kw[20], *val[20];
	char port[8], tmo[16], where[PG_WHERE];
	PGconn *conn;
	int i = 0, r;

	*out = NULL;
	if ((r = pg_check_target(t, e)) != 0)
		return r;
	pg_where(t, where, sizeof(where));
	(void)util_fmt(port, sizeof(port), "%d", t->port != 0 ? t->port : 5432);
	(void)util_fmt(tmo, sizeof(tmo), "%d",
	    t->connect_timeout_s != 0 ? t->connect_timeout_s : 10);

#define KV(k, v)                                                               \
	do {                                                                   \
		kw[i] = (k);                                                   \
		val[i] = (v);                                                  \
		i++;                                                           \
	} while (0)
	KV("host", t->host);
	if (t->hostaddr != NULL)
		KV("hostaddr", t->hostaddr);
	KV("port", port);
	KV("dbname", t->dbname != NULL ? t->dbname : "postgres");
	KV("user", t->user != NULL ? t->user : "postgres");
	KV("sslmode", "verify-full");
	KV("gssencmode", "disable");
	KV("sslrootcert", t->sslrootcert);
	KV("sslcert", t->sslcert != NULL ? t->sslcert : PG_NOFILE);
	KV("sslkey", t->sslkey != NULL ? t->sslkey : PG_NOFILE);
	KV("sslcrl", PG_NOFILE);
	KV("passfile", PG_NOFILE);
	KV("connect_timeout", tmo);
	KV("application_name",
	    t->application_name != NULL ? t->application_name : "dbpki");
	KV(NULL, NULL);
#undef KV

	if ((conn = PQconnectStartParams(kw, val, 0)) != NULL) {
		PQsetNoticeProcessor(conn, pg_notice, NULL);
		r = pg_connect_poll(conn, t, where, e);
	}
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		if (conn == NULL || r == 0)
			r = pg_conn_error(conn, where,
			    "cannot connect with "
			    "sslmode=verify-full",
			    e);
		PQfinish(conn);
		return r;
	}
	*out = conn;
	return 0;
}

/* Run one parameterless statement expecting rows.  PQexecParams, even
 * without values, refuses multiple statements.  *res is NULL on entry. */
static int
pg_query(PGconn *conn, const char *where, const char *sql, PGresult **res,
    struct dbpki_err *e)
{
	PGresult *r;

	*res = NULL;
	r = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return pg_conn_error(conn, where, "query failed", e);
	}
	*res = r;
	return 0;
}

static void
pg_copy(char *dst, size_t dstsz, const char *src)
{
	log_sanitize(dst, dstsz, src != NULL ? src : "", SIZE_MAX, 0);
}

static int
pg_serial_hex(const X509 *x, char *out, size_t outsz)
{
	BIGNUM *bn;
	char *hex;
	size_t i, n;
	int r = -1;

	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) == NULL)
		return -1;
	if ((hex = BN_bn2hex(bn)) != NULL) {
		n = strlen(hex);
		if (n < outsz) {
			for (i = 0; i <= n; i++)
				out[i] = (char)((hex[i] >= 'A' && hex[i] <= 'F')
						    ? hex[i] - 'A' + 'a'
						    : hex[i]);
			r = 0;
		}
		OPENSSL_free(hex);
	}
	BN_free(bn);
	return r;
}

static int
pg_not_after(const X509 *x, int64_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

static void
pg_subject(const X509 *x, char *out, size_t outsz)
{
	BIO *b;
	char *p;
	long n;

	out[0] = '\0';
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return;
	if (X509_NAME_print_ex(
		b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_get_mem_data(b, &p)) > 0)
		log_sanitize(out, outsz, p, (size_t)n, 0);
	BIO_free(b);
}

/* Fill the certificate half of *out from the live TLS session. */
static int
pg_served_cert(
    PGconn *conn, const char *where, struct pg_probe *out, struct dbpki_err *e)
{
	const char *lib;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	X509 *peer;
	SSL *ssl;

	lib = PQsslAttribute(conn, "library");
	if (PQsslInUse(conn) != 1 || lib == NULL || strcmp(lib, "OpenSSL") != 0)
		return err_set(e, DBPKI_E_VERIFY,
		    "%s: connection is not using "
		    "OpenSSL TLS (library %s)",
		    where, lib != NULL ? lib : "none");
	pg_copy(out->protocol, sizeof(out->protocol),
	    PQsslAttribute(conn, "protocol"));
	pg_copy(
	    out->cipher, sizeof(out->cipher), PQsslAttribute(conn, "cipher"));
	if ((ssl = PQsslStruct(conn, "OpenSSL")) == NULL ||
	    (peer = SSL_get0_peer_certificate(ssl)) == NULL)
		return err_set(e, DBPKI_E_PKI,
		    "%s: the server presented no "
		    "certificate",
		    where);
	/* get0: borrowed from the session, freed by PQfinish, not by us. */
	out->verify_ok = SSL_get_verify_result(ssl) == X509_V_OK;
	if (pg_serial_hex(peer, out->serial_hex, sizeof(out->serial_hex)) != 0)
		return err_ssl(e,
		    "%s: cannot read the served certificate's "
		    "serial",
		    where);
	if (pg_not_after(peer, &out->not_after) != 0)
		return err_ssl(e,
		    "%s: cannot read the served certificate's "
		    "notAfter",
		    where);
	if (X509_digest(peer, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
		return err_ssl(
		    e, "%s: cannot hash the served certificate", where);
	util_hex(md, mdlen, out->sha256_hex);
	pg_subject(peer, out->subject, sizeof(out->subject));
	return 0;
}

int
pg_probe_node(
    const struct pg_target *t, struct pg_probe *out, struct dbpki_err *e)
{
	char where[PG_WHERE];
	struct pg_probe p;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	const char *v;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&p, 0, sizeof(p));
	if ((r = pg_connect(t, &conn, e)) != 0)
		goto out;
	pg_where(t, where, sizeof(where));
	if ((r = pg_served_cert(conn, where, &p, e)) != 0)
		goto out;
	p.server_version = PQserverVersion(conn);
	if ((r = pg_query(
		 conn, where, "SELECT pg_is_in_recovery()", &res, e)) != 0)
		goto out;
	v = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
	if (strcmp(v, "t") != 0 && strcmp(v, "f") != 0) {
		r = err_set(e, DBPKI_E_VERIFY,
		    "%s: pg_is_in_recovery() gave an "
		    "unexpected answer",
		    where);
		goto out;
	}
	p.in_recovery = v[0] == 't';
	*out = p;
	r = 0;
out:
	PQclear(res);
	PQfinish(conn);
	return r;
}

/*
 * Walsenders and their TLS state.  The lag is measured against the
 * server's own WAL position, which on a cascading standby is its replay
 * position (pg_current_wal_lsn() fails during recovery).
 */
static const char pg_repl_sql[] =
    "SELECT coalesce(r.application_name, ''),"
    " coalesce(host(r.client_addr), ''),"
    " coalesce(r.state, ''),"
    " coalesce(s.ssl, false),"
    " coalesce(s.client_dn, ''),"
    " coalesce(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery()"
    " THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,"
    " r.replay_lsn)::bigint, -1)"
    " FROM pg_stat_replication r LEFT JOIN pg_stat_ssl s ON s.pid = r.pid"
    " ORDER BY 1, r.pid";

static int
pg_repl_row(PGresult *res, int i, struct pg_repl *row)
{
	long long lag;

	pg_copy(row->application_name, sizeof(row->application_name),
	    PQgetvalue(res, i, 0));
	pg_copy(
	    row->client_addr, sizeof(row->client_addr), PQgetvalue(res, i, 1));
	pg_copy(row->state, sizeof(row->state), PQgetvalue(res, i, 2));
	row->ssl = strcmp(PQgetvalue(res, i, 3), "t") == 0;
	pg_copy(row->ssl_client_dn, sizeof(row->ssl_client_dn),
	    PQgetvalue(res, i, 4));
	if (util_parse_int(PQgetvalue(res, i, 5), -1, LLONG_MAX, &lag) != 0)
		return -1;
	row->replay_lag_bytes = lag;
	return 0;
}

int
pg_replication(const struct pg_target *primary, struct pg_repl **rows, int *n,
    struct dbpki_err *e)
{
	char where[PG_WHERE];
	struct pg_repl *v = NULL;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	int i, nt, r;

	*rows = NULL;
	*n = 0;
	if ((r = pg_connect(primary, &conn, e)) != 0)
		goto out;
	pg_where(primary, where, sizeof(where));
	if ((r = pg_query(conn, where, pg_repl_sql, &res, e)) != 0)
		goto out;
	if ((nt = PQntuples(res)) > PG_MAX_ROWS || PQnfields(res) != 6) {
		r = err_set(e, DBPKI_E_VERIFY,
		    "%s: unexpected shape of "
		    "pg_stat_replication (%d rows)",
		    where, nt);
		goto out;
	}
	if (nt > 0 && (v = calloc((size_t)nt, sizeof(*v))) == NULL) {
		r = err_set(e, DBPKI_E_NOMEM, "%s: out of memory", where);
		goto out;
	}
	for (i = 0; i < nt; i++) {
		if (pg_repl_row(res, i, &v[i]) != 0) {
			r = err_set(e, DBPKI_E_VERIFY,
			    "%s: unreadable replay lag "
			    "in pg_stat_replication row %d",
			    where, i + 1);
			goto out;
		}
	}
	*rows = v;
	*n = nt;
	v = NULL;
	r = 0;
out:
	free(v);
	PQclear(res);
	PQfinish(conn);
	return r;
}

static const struct pg_repl *
pg_find(const struct pg_repl *rows, int n, const char *name)
{
	int i;

	/* Several rows may share a name (a replica reconnecting); any
	 * streaming one counts. */
	for (i = 0; i < n; i++)
		if (strcmp(rows[i].application_name, name) == 0 &&
		    strcmp(rows[i].state, "streaming") == 0 && rows[i].ssl)
			return &rows[i];
	for (i = 0; i < n; i++)
		if (strcmp(rows[i].application_name, name) == 0)
			return &rows[i];
	return NULL;
}

static int
pg_is_streaming(const struct pg_repl *row)
{
	return row != NULL && strcmp(row->state, "streaming") == 0 && row->ssl;
}

/* Append to a bounded message; a full buffer ends in "..." rather than
 * failing, since the message is already an error report. */
static void pg_append(char *buf, size_t sz, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
pg_append(char *buf, size_t sz, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (*len >= sz - 1)
		return;
	va_start(ap, fmt);
	k = vsnprintf(buf + *len, sz - *len, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= sz - *len) {
		if (sz >= 4)
			memcpy(buf + sz - 4, "...", 4);
		*len = sz - 1;
	} else
		*len += (size_t)k;
}

static int
pg_wait_report(const struct pg_target *t, const char *const *names, int n,
    int timeout_s, const struct pg_repl *rows, int nrows,
    const struct dbpki_err *last, struct dbpki_err *e)
{
	char where[PG_WHERE], msg[1536], nm[64];
	const struct pg_repl *row;
	size_t len = 0;
	int i;

	pg_where(t, where, sizeof(where));
	if (last->code != 0)
		return err_set(e, DBPKI_E_VERIFY,
		    "%s: timed out after %ds "
		    "waiting for replicas to stream; last attempt: %s",
		    where, timeout_s, last->msg);
	msg[0] = '\0';
	for (i = 0; i < n; i++) {
		row = pg_find(rows, nrows, names[i]);
		if (pg_is_streaming(row))
			continue;
		pg_copy(nm, sizeof(nm), names[i]);
		if (row == NULL)
			pg_append(msg, sizeof(msg), &len, "%s%s (absent)",
			    len ? ", " : "", nm);
		else
			pg_append(msg, sizeof(msg), &len,
			    "%s%s (state '%s', "
			    "ssl %s)",
			    len ? ", " : "", nm, row->state,
			    row->ssl ? "on" : "off");
	}
	pg_append(msg, sizeof(msg), &len, "; walsenders seen:");
	for (i = 0; i < nrows; i++)
		pg_append(msg, sizeof(msg), &len, " %s[%s %s ssl=%s]",
		    rows[i].application_name[0] ? rows[i].application_name
						: "''",
		    rows[i].client_addr, rows[i].state[0] ? rows[i].state : "?",
		    rows[i].ssl ? "on" : "off");
	if (nrows == 0)
		pg_append(msg, sizeof(msg), &len, " none");
	return err_set(e, DBPKI_E_VERIFY,
	    "%s: after %ds, not streaming over "
	    "SSL: %s (a replica names itself with application_name in its "
	    "primary_conninfo)",
	    where, timeout_s, msg);
}

int
pg_wait_streaming(const struct pg_target *primary, const char *const *names,
    int n, int timeout_s, struct dbpki_err *e)
{
	struct pg_repl *rows = NULL;
	struct dbpki_err last;
	struct timespec ts;
	int64_t deadline, now;
	int i, nrows = 0, ok, r;

	if (n < 0 || (n > 0 && names == NULL) || timeout_s < 1 ||
	    timeout_s > 86400)
		return err_set(e, DBPKI_E_CONFIG,
		    "pg: wait for streaming: bad "
		    "arguments (n=%d, timeout=%ds)",
		    n, timeout_s);
	for (i = 0; i < n; i++)
		if (names[i] == NULL)
			return err_set(e, DBPKI_E_CONFIG,
			    "pg: wait for "
			    "streaming: replica name %d is NULL",
			    i + 1);
	deadline = util_mono_ms() + (int64_t)timeout_s * 1000;
	for (;;) {
		free(rows);
		rows = NULL;
		err_clear(&last);
		r = pg_replication(primary, &rows, &nrows, &last);
		if (r == DBPKI_E_CONFIG || r == DBPKI_E_NOMEM) {
			*e = last;
			goto out;
		}
		for (ok = r == 0, i = 0; ok && i < n; i++)
			ok = pg_is_streaming(pg_find(rows, nrows, names[i]));
		if (ok) {
			r = 0;
			goto out;
		}
		now = util_mono_ms();
		if (now >= deadline)
			break;
		now = deadline - now < PG_POLL_MS ? deadline - now : PG_POLL_MS;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)now * 1000000L;
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	r = pg_wait_report(primary, names, n, timeout_s, rows, nrows, &last, e);
out:
	free(rows);
	return r;
}

/* ---- reading a served certificate without trusting it ----------------- */

static int
pg_peek_check(const struct pg_target *t, struct dbpki_err *e)
{
	if (t == NULL || t->host == NULL ||
	    (!util_valid_hostname(t->host) && !util_valid_ip(t->host)))
		return err_set(e, DBPKI_E_CONFIG,
		    "pg: target host is missing or not a valid host name or "
		    "address");
	if (t->hostaddr != NULL && !util_valid_ip(t->hostaddr))
		return err_set(e, DBPKI_E_CONFIG,
		    "pg: %.253s: hostaddr is not an IP address", t->host);
	if (t->port < 0 || t->port > 65535 || t->connect_timeout_s < 0)
		return err_set(e, DBPKI_E_CONFIG,
		    "pg: %.253s: port or connect timeout out of range",
		    t->host);
	return 0;
}

/* The peer certificate once the TLS handshake has finished, else NULL. */
static X509 *
pg_peek_grab(PGconn *conn)
{
	SSL *ssl = PQsslStruct(conn, "OpenSSL");

	if (ssl == NULL || !SSL_is_init_finished(ssl))
		return NULL;
	return SSL_get1_peer_certificate(ssl);
}

/* Wait until the connection's socket is ready in the direction libpq
 * asked for.  1 ready, 0 deadline passed, -1 error (errno set). */
static int
pg_peek_wait(PGconn *conn, PostgresPollingStatusType st, int64_t deadline)
{
	struct pollfd pfd;
	int64_t left;
	int r;

	/* libpq may open a new socket between polls: ask every time. */
	if ((pfd.fd = PQsocket(conn)) < 0) {
		errno = EBADF;
		return -1;
	}
	pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
	pfd.revents = 0;
	do {
		if ((left = deadline - util_mono_ms()) <= 0)
			return 0;
		r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
	} while (r == -1 && errno == EINTR);
	return r > 0 ? 1 : r;
}

static PGconn *
pg_peek_start(const struct pg_target *t, const char *port)
{
	const char *kw[16], *val[16];
	PGconn *conn;
	int i = 0;

#define KV(k, v)                                                               \
	do {                                                                   \
		kw[i] = (k);                                                   \
		val[i] = (v);                                                  \
		i++;                                                           \
	} while (0)
	KV("host", t->host);
	if (t->hostaddr != NULL)
		KV("hostaddr", t->hostaddr);
	KV("port", port);
	KV("dbname", "postgres");
	KV("user", t->user != NULL ? t->user : "postgres");
	/* require + no root certificate: encrypted, nothing verified. */
	KV("sslmode", "require");
	KV("gssencmode", "disable");
	KV("sslrootcert", PG_NOFILE);
	KV("sslcert", PG_NOFILE);
	KV("sslkey", PG_NOFILE);
	KV("sslcrl", PG_NOFILE);
	KV("passfile", PG_NOFILE);
	KV("application_name", "dbpki-peek");
	KV(NULL, NULL);
#undef KV
	conn = PQconnectStartParams(kw, val, 0);
	if (conn != NULL)
		PQsetNoticeProcessor(conn, pg_notice, NULL);
	return conn;
}

int
pg_peek_cert(
    const struct pg_target *t, struct x509_st **cert, struct dbpki_err *e)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	char port[8], where[PG_WHERE];
	int64_t deadline;
	PGconn *conn;
	X509 *x = NULL;
	int r, timeout;

	*cert = NULL;
	if ((r = pg_peek_check(t, e)) != 0)
		return r;
	pg_where(t, where, sizeof(where));
	(void)util_fmt(port, sizeof(port), "%d", t->port != 0 ? t->port : 5432);
	timeout = t->connect_timeout_s != 0 ? t->connect_timeout_s : 10;
	deadline = util_mono_ms() + 1000 * (int64_t)timeout;
	if ((conn = pg_peek_start(t, port)) == NULL ||
	    PQstatus(conn) == CONNECTION_BAD) {
		r = pg_conn_error(conn, where, "cannot connect", e);
		goto out;
	}
	/* Stop as soon as the handshake is done: the certificate is all we
	 * want, and closing before the startup packet keeps the server from
	 * logging a failed login. */
	while ((x = pg_peek_grab(conn)) == NULL) {
		if (st == PGRES_POLLING_FAILED || st == PGRES_POLLING_OK) {
			r = pg_conn_error(conn, where,
			    "cannot read the served certificate", e);
			goto out;
		}
		if ((r = pg_peek_wait(conn, st, deadline)) != 1) {
			r = r == 0 ? err_set(e, DBPKI_E_TIMEOUT,
					 "%s: no TLS handshake within %ds "
					 "(hint: the node did not answer in "
					 "time: firewall, wrong address, or a "
					 "hung server)",
					 where, timeout)
				   : err_sys(e, "%s: waiting for the server",
					 where);
			goto out;
		}
		st = PQconnectPoll(conn);
	}
	*cert = x;
	r = 0;
out:
	PQfinish(conn);
	return r;
}
