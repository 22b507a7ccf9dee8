/* pki_import: trusting a CA that is not dbca (docs/corporate-ca.md).
 *
 *   ca import   validate a root or chain against fixed rules and make it
 *               the store's trust anchor (state_dir/ca/trusted.pem), the
 *               previous one backed up first;
 *   ca export   hand dbca's certificate to a third party, never
 *               overwriting anything;
 *   trust       the bundle releases ship as dbca.crt and leaves must chain
 *               to: dbca, or the imported chain once there is one;
 *   (issue --signed is in pki_signed.c)
 */
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"
#include "pki_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define TRUST_FILE  PKI_TRUST_FILE
#define BACKUP_DIR  "ca/backup"
#define LABEL_SIZE  160
#define DETAIL_SIZE 1024

/* ---- messages ----------------------------------------------------------- */

/* A path for a message: sanitised, and cut short (a refused path may be
 * 4096 characters long). */
const char *
pki_show_path(const char *path, char out[PKI_SHOW_PATH + 8])
{
	size_t n = strlen(path);

	log_sanitize(out, PKI_SHOW_PATH + 1, path, n, 0);
	if (n > PKI_SHOW_PATH)
		memcpy(out + PKI_SHOW_PATH - 3, "...", 4);
	return out;
}

/* Every refusal of an input file reads "FILE: refused (rule: R): detail",
 * so an admin sees at once which rule failed and a script can grep it. */
int
pki_refuse(struct dbpki_err *e, int code, const char *what, const char *rule,
    const char *fmt, ...)
{
	char detail[DETAIL_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return err_set(
	    e, code, "%s: refused (rule: %s): %s", what, rule, detail);
}

/* "certificate #2 of 3 (CN=Corp Issuing CA)" */
static void
cert_label(X509 *x, int i, int n, char out[LABEL_SIZE])
{
	char cn[CFG_HOST], safe[80];

	if (pki_cert_cn(x, cn, sizeof(cn)) != 0 || cn[0] == '\0')
		util_fmt(cn, sizeof(cn), "(no CN)");
	log_sanitize(safe, sizeof(safe), cn, strlen(cn), 0);
	if (n == 1)
		util_fmt(out, LABEL_SIZE, "the certificate (CN=%s)", safe);
	else
		util_fmt(out, LABEL_SIZE, "certificate #%d of %d (CN=%s)",
		    i + 1, n, safe);
}

/* ---- rules on the path of the file to import ---------------------------- */

int
pki_import_check_path(const char *path, struct dbpki_err *e)
{
	char sp[PKI_SHOW_PATH + 8];
	const char *p, *end;
	size_t len = strlen(path), n;
	int levels = 0;

	pki_show_path(path, sp);
	if (path[0] != '/')
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "absolute path",
		    "give the full path, starting with /");
	if (len >= PKI_IMPORT_MAX_PATH)
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "path length",
		    "%zu characters; it must be under %d", len,
		    PKI_IMPORT_MAX_PATH);
	for (p = path; *p != '\0'; p = end) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		end = strchr(p, '/');
		if (end == NULL)
			end = p + strlen(p);
		n = (size_t)(end - p);
		if ((n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return pki_refuse(e, DBPKI_E_CONFIG, sp, "plain path",
			    "it has a '.' or '..' component; give the path "
			    "without them");
		if (n > NAME_MAX)
			return pki_refuse(e, DBPKI_E_CONFIG, sp, "path length",
			    "a component is %zu characters long (at most %d)",
			    n, NAME_MAX);
		levels++;
	}
	if (levels >= PKI_IMPORT_MAX_LEVELS)
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "path depth",
		    "%d levels; it must have fewer than %d", levels,
		    PKI_IMPORT_MAX_LEVELS);
	return 0;
}

/* ---- opening it without following any symlink -------------------------- */

/* Open directory component `name` below dfd, refusing a symlink. */
static int
walk_dir(
    int dfd, const char *name, const char *sp, int *out, struct dbpki_err *e)
{
	struct stat st;
	int fd;

	*out = -1;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1) {
		*out = fd;
		return 0;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "no symbolic link",
		    "the directory '%.80s' in its path is a symbolic link; "
		    "give the real path",
		    name);
	if (errno == ENOTDIR)
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "regular file",
		    "'%.80s' in its path is not a directory", name);
	return err_sys(e, "%s: cannot open the directory '%.80s'", sp, name);
}

/* The final component: must be a regular file (checked before opening, so
 * a device is never opened, and again on the fd, so it cannot be swapped
 * in between). */
static int
walk_file(
    int dfd, const char *name, const char *sp, int *out, struct dbpki_err *e)
{
	struct stat st;
	int fd;

	*out = -1;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return err_sys(e, "%s: cannot open", sp);
	if (S_ISLNK(st.st_mode))
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "no symbolic link",
		    "the file itself is a symbolic link; give the real file");
	if (!S_ISREG(st.st_mode))
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "regular file",
		    "it is not a regular file");
	fd = openat(dfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd == -1)
		return err_sys(e, "%s: cannot open", sp);
	*out = fd;
	return 0;
}

/* Walk path from / one component at a time with O_NOFOLLOW: a symlink
 * anywhere is refused, and no component can be replaced by one between
 * the check and the use. */
static int
open_strict(const char *path, const char *sp, int *out, struct dbpki_err *e)
{
	char name[NAME_MAX + 1];
	const char *p = path, *end;
	int dfd, fd = -1, r = 0;
	size_t n;

	*out = -1;
	if ((dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return err_sys(e, "cannot open /");
	for (;;) {
		while (*p == '/')
			p++;
		end = strchr(p, '/');
		n = end != NULL ? (size_t)(end - p) : strlen(p);
		memcpy(name, p, n); /* n <= NAME_MAX: checked before */
		name[n] = '\0';
		while (end != NULL && *end == '/')
			end++;
		if (end == NULL || *end == '\0') {
			if (end != NULL) /* "dir/": not a file */
				r = pki_refuse(e, DBPKI_E_CONFIG, sp,
				    "regular file", "it names a directory");
			else
				r = walk_file(dfd, name, sp, &fd, e);
			break;
		}
		if ((r = walk_dir(dfd, name, sp, &fd, e)) != 0)
			break;
		close(dfd);
		dfd = fd;
		fd = -1;
		p = end;
	}
	close(dfd);
	if (r == 0)
		*out = fd;
	return r;
}

/* Read the opened file after the rules on its mode and size. */
static int
read_checked(
    int fd, const char *sp, char **out, size_t *len, struct dbpki_err *e)
{
	struct stat st;
	size_t got = 0;
	ssize_t n = 0;
	char *buf;

	*out = NULL;
	if (fstat(fd, &st) == -1)
		return err_sys(e, "%s: cannot stat", sp);
	if (!S_ISREG(st.st_mode))
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "regular file",
		    "it is not a regular file");
	if (st.st_mode & 022)
		return pki_refuse(e, DBPKI_E_CONFIG, sp,
		    "not writable by group or others",
		    "mode %04o; run: chmod go-w on it",
		    (unsigned)(st.st_mode & 07777));
	if (st.st_size > PKI_IMPORT_MAX_BYTES)
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "size",
		    "%lld bytes; at most %d (1 MiB)", (long long)st.st_size,
		    PKI_IMPORT_MAX_BYTES);
	if ((buf = malloc((size_t)st.st_size + 2)) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	/* One byte more than fstat said, so a file growing now is seen. */
	while (got <= (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size + 1 - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (n == -1 || got != (size_t)st.st_size) {
		free(buf);
		return n == -1 ? err_sys(e, "%s: cannot read", sp)
			       : err_set(e, DBPKI_E_CONFIG,
				     "%s: changed while being read", sp);
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

/* ---- the text of a PEM file -------------------------------------------- */

/* Line [p, end) without its trailing blanks ("\r", spaces, tabs). */
static size_t
line_len(const char *p, const char *end)
{
	while (
	    end > p && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return (size_t)(end - p);
}

static int
has_prefix(const char *p, size_t n, const char *pre)
{
	return n >= strlen(pre) && memcmp(p, pre, strlen(pre)) == 0;
}

static int
ends_dashes(const char *p, size_t n)
{
	return n >= 10 && memcmp(p + n - 5, "-----", 5) == 0;
}

/* Refuse text where no text belongs, quoting it (sanitised, cut short):
 * the admin sees what was in the file that dbpki would have dropped. */
static int
refuse_text(struct dbpki_err *e, const char *what, const char *where,
    int lineno, const char *p, size_t n)
{
	char safe[4 * 60 + 8];

	log_sanitize(safe, sizeof(safe), p, n > 60 ? 60 : n, 0);
	return pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
	    "%s (line %d): '%s%s'; the file must hold the PEM blocks only "
	    "(text is allowed before the first one)",
	    where, lineno, safe, n > 60 ? "..." : "");
}

int
pki_pem_text(const char *buf, size_t len, const char *what, int *nblocks,
    struct dbpki_err *e)
{
	const char *p = buf, *end = buf + len, *nl, *z;
	int lineno = 0, in = 0, k = 0;
	char where[64];
	size_t n;

	*nblocks = 0;
	/* A NUL ends the text for every C string function and for OpenSSL's
	 * line reader: what follows it would be read by nobody. */
	if ((z = memchr(buf, '\0', len)) != NULL)
		return pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
		    "a NUL byte at offset %zu; a PEM file is text",
		    (size_t)(z - buf));
	for (; p < end; p = nl + 1) {
		lineno++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		n = line_len(p, nl);
		if (!in && has_prefix(p, n, "-----BEGIN ")) {
			if (!ends_dashes(p, n))
				return refuse_text(e, what,
				    "a damaged BEGIN line", lineno, p, n);
			in = 1;
			k++;
		} else if (in && has_prefix(p, n, "-----END ")) {
			if (!ends_dashes(p, n))
				return refuse_text(e, what,
				    "text after an END line", lineno, p, n);
			in = 0;
		} else if (in && has_prefix(p, n, "-----"))
			return refuse_text(e, what,
			    "a BEGIN line inside a PEM block", lineno, p, n);
		else if (!in && k > 0 && n > 0) { /* n: blanks trimmed */
			util_fmt(where, sizeof(where),
			    "text after PEM block #%d", k);
			return refuse_text(e, what, where, lineno, p, n);
		}
		if (nl == end)
			break;
	}
	if (in)
		return pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
		    "PEM block #%d has no END line (a cut file?)", k);
	*nblocks = k;
	return 0;
}

/* ---- rules on the certificates ------------------------------------------ */

/* Every PEM block must be a CERTIFICATE; a key in the file is refused
 * loudly, since it should never have been handed over. */
int
pki_pem_certs(const void *buf, size_t len, const char *what,
    STACK_OF(X509) * sk, struct dbpki_err *e)
{
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	const unsigned char *q;
	long dlen = 0;
	X509 *x = NULL;
	BIO *b;
	int r = 0, k = 0, blocks = 0;

	if ((r = pki_pem_text(buf, len, what, &blocks, e)) != 0)
		return r;
	if (len > INT32_MAX || (b = BIO_new_mem_buf(buf, (int)len)) == NULL)
		return err_ssl(e, "%s: cannot read", what);
	while (r == 0 && PEM_read_bio(b, &name, &header, &data, &dlen) == 1) {
		k++;
		q = data;
		if (strstr(name, "PRIVATE KEY") != NULL)
			r = pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
			    "PEM block #%d is a private key: a key must "
			    "never leave its owner; give the certificate(s) "
			    "only",
			    k);
		else if (strcmp(name, "CERTIFICATE") != 0)
			r = pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
			    "PEM block #%d is a '%.40s', not a CERTIFICATE", k,
			    name);
		else if (sk_X509_num(sk) >= PKI_IMPORT_MAX_CHAIN)
			r = pki_refuse(e, DBPKI_E_CONFIG, what, "chain length",
			    "more than %d certificates; a chain has at most "
			    "%d levels",
			    PKI_IMPORT_MAX_CHAIN, PKI_IMPORT_MAX_CHAIN);
		else if ((x = d2i_X509(NULL, &q, dlen)) == NULL ||
			 q != data + dlen)
			r = pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
			    "PEM block #%d is not a valid X.509 certificate",
			    k);
		else if (!sk_X509_push(sk, x))
			r = err_ssl(e, "out of memory");
		else
			x = NULL; /* owned by sk now */
		X509_free(x);
		x = NULL;
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		name = header = NULL;
		data = NULL;
	}
	if (r == 0 &&
	    ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE)
		r = pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
		    "PEM block #%d is damaged (bad base64 or no END line)",
		    k + 1);
	if (r == 0 && sk_X509_num(sk) != blocks)
		r = pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
		    "%d PEM block(s) in the text, %d read: a block is "
		    "damaged",
		    blocks, sk_X509_num(sk));
	if (r == 0 && sk_X509_num(sk) == 0)
		r = pki_refuse(e, DBPKI_E_CONFIG, what, "PEM",
		    "no PEM certificate in it (DER? convert it with: openssl "
		    "x509 -inform der -in FILE -out FILE.pem)");
	ERR_clear_error();
	BIO_free(b);
	return r;
}

/* RSA >= 3072 bits or EC >= 256 bits: the strength of our own keys. */
static int
rule_key(X509 *x, const char *what, const char *lbl, struct dbpki_err *e)
{
	EVP_PKEY *k = X509_get0_pubkey(x);
	int bits = k != NULL ? EVP_PKEY_get_bits(k) : 0;

	if (k != NULL &&
	    (EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_is_a(k, "RSA-PSS")))
		return bits >= 3072
			   ? 0
			   : pki_refuse(e, DBPKI_E_CONFIG, what, "key strength",
				 "%s has an RSA %d-bit key; RSA keys must "
				 "have at least 3072 bits",
				 lbl, bits);
	if (k != NULL && EVP_PKEY_is_a(k, "EC"))
		return bits >= 256
			   ? 0
			   : pki_refuse(e, DBPKI_E_CONFIG, what, "key strength",
				 "%s has an EC %d-bit key; EC keys must have "
				 "at least 256 bits",
				 lbl, bits);
	return pki_refuse(e, DBPKI_E_CONFIG, what, "key strength",
	    "%s has a key that is neither RSA nor EC (%s)", lbl,
	    k != NULL ? EVP_PKEY_get0_type_name(k) : "unreadable");
}

static int
rule_digest(X509 *x, const char *what, const char *lbl, struct dbpki_err *e)
{
	int md = NID_undef, pk = NID_undef;

	if (!X509_get_signature_info(x, &md, &pk, NULL, NULL))
		md = NID_undef;
	if (md == NID_sha256 || md == NID_sha384 || md == NID_sha512)
		return 0;
	return pki_refuse(e, DBPKI_E_CONFIG, what, "signature digest",
	    "%s is signed with %s; only SHA-256, SHA-384 or SHA-512 are "
	    "accepted",
	    lbl, md != NID_undef ? OBJ_nid2sn(md) : "an unknown digest");
}

static int
rule_validity(X509 *x, int64_t now, const char *what, const char *lbl,
    struct dbpki_err *e)
{
	char t[32];

	if (now < pki_cert_not_before(x)) {
		util_iso8601(pki_cert_not_before(x), t);
		return pki_refuse(e, DBPKI_E_CONFIG, what, "validity",
		    "%s is not yet valid (notBefore %s)", lbl, t);
	}
	if (now >= pki_cert_not_after(x)) {
		util_iso8601(pki_cert_not_after(x), t);
		return pki_refuse(e, DBPKI_E_CONFIG, what, "validity",
		    "%s has expired (notAfter %s)", lbl, t);
	}
	return 0;
}

/* A CA certificate: basicConstraints CA:TRUE and keyUsage keyCertSign.
 * Asked of every certificate, since an intermediate without them could
 * not sign a leaf that TLS libraries accept. */
static int
rule_ca(X509 *x, const char *what, const char *lbl, struct dbpki_err *e)
{
	BASIC_CONSTRAINTS *bc;
	int ca;

	bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
	ca = bc != NULL && bc->ca;
	BASIC_CONSTRAINTS_free(bc);
	if (!ca)
		return pki_refuse(e, DBPKI_E_CONFIG, what,
		    "basicConstraints CA:TRUE",
		    "%s is not a CA certificate (no basicConstraints "
		    "CA:TRUE)",
		    lbl);
	if (!(X509_get_extension_flags(x) & EXFLAG_KUSAGE) ||
	    !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN))
		return pki_refuse(e, DBPKI_E_CONFIG, what,
		    "keyUsage keyCertSign",
		    "%s may not sign certificates (keyUsage without "
		    "keyCertSign, or no keyUsage)",
		    lbl);
	return 0;
}

/* A CA's pathLenConstraint caps the CA certificates below it before a
 * leaf; certificate i has i of them in the chain (#1 signs the leaves).
 * TLS peers enforce it, so a chain that breaks it would deploy fine and
 * fail at the first handshake. */
static int
rule_pathlen(
    X509 *x, int i, const char *what, const char *lbl, struct dbpki_err *e)
{
	long max;

	if (X509_get_extension_flags(x) & EXFLAG_INVALID)
		return pki_refuse(e, DBPKI_E_CONFIG, what, "path length",
		    "%s has extensions that do not decode (a negative "
		    "pathLenConstraint?)",
		    lbl);
	max = X509_get_pathlen(x);
	if (max < 0 || i <= max)
		return 0;
	return pki_refuse(e, DBPKI_E_CONFIG, what, "path length",
	    "%s has pathLenConstraint %ld, but %d CA certificate(s) below it "
	    "in this chain; TLS peers would refuse every leaf it signs. Ask "
	    "for a chain whose CAs allow this depth",
	    lbl, max, i);
}

/* Certificate i is signed by i+1; the last one by itself. */
static int
rule_signature(STACK_OF(X509) * sk, int i, const char *what, const char *lbl,
    struct dbpki_err *e)
{
	int n = sk_X509_num(sk), last = i == n - 1;
	X509 *x = sk_X509_value(sk, i),
	     *up = sk_X509_value(sk, last ? i : i + 1);
	int self = X509_NAME_cmp(
		       X509_get_subject_name(x), X509_get_issuer_name(x)) == 0;
	EVP_PKEY *k;

	if (last && !self)
		return pki_refuse(e, DBPKI_E_CONFIG, what, "self-signed root",
		    "%s, the last one, is not self-signed: end the file with "
		    "the root",
		    lbl);
	if (!last && self)
		return pki_refuse(e, DBPKI_E_CONFIG, what, "chain order",
		    "%s is self-signed but not the last one: the root comes "
		    "last",
		    lbl);
	if (!last && X509_NAME_cmp(X509_get_issuer_name(x),
			 X509_get_subject_name(up)) != 0)
		return pki_refuse(e, DBPKI_E_CONFIG, what, "chain order",
		    "%s was not issued by the next certificate: order the "
		    "file from the lowest CA up to the root",
		    lbl);
	k = X509_get0_pubkey(up);
	if (k == NULL || X509_verify(x, k) != 1)
		return pki_refuse(e, DBPKI_E_CONFIG, what, "signature",
		    "the signature of %s does not verify with the key of %s",
		    lbl, last ? "itself" : "the next certificate");
	ERR_clear_error();
	return 0;
}

static int
check_one(STACK_OF(X509) * sk, int i, int64_t now, const char *what,
    struct dbpki_err *e)
{
	X509 *x = sk_X509_value(sk, i);
	char lbl[LABEL_SIZE];
	int r;

	cert_label(x, i, sk_X509_num(sk), lbl);
	if (X509_get_version(x) != X509_VERSION_3)
		return pki_refuse(e, DBPKI_E_CONFIG, what, "X.509 v3",
		    "%s is X.509 v%ld; only v3 certificates are accepted", lbl,
		    X509_get_version(x) + 1);
	if ((r = rule_validity(x, now, what, lbl, e)) != 0 ||
	    (r = rule_key(x, what, lbl, e)) != 0 ||
	    (r = rule_digest(x, what, lbl, e)) != 0 ||
	    (r = rule_ca(x, what, lbl, e)) != 0 ||
	    (r = rule_pathlen(x, i, what, lbl, e)) != 0)
		return r;
	return rule_signature(sk, i, what, lbl, e);
}

/* Last, the chain as a TLS peer will check it (OpenSSL's verification,
 * the root as the anchor): whatever else a peer enforces and the rules
 * above do not name, such as an unknown critical extension or a name
 * constraint, is found now and not at the first handshake. */
static int
rule_chain(
    STACK_OF(X509) * sk, int64_t now, const char *what, struct dbpki_err *e)
{
	struct dbpki_err why;

	err_clear(&why);
	if (pki_verify(sk_X509_value(sk, 0), sk, PKI_PURPOSE_ANY, NULL, now,
		&why) == 0)
		return 0;
	return pki_refuse(e, DBPKI_E_CONFIG, what, "chain",
	    "OpenSSL does not accept it as TLS peers would check it: %s",
	    why.msg);
}

int
pki_import_check_pem(const void *buf, size_t len, const char *what, int64_t now,
    STACK_OF(X509) * *out, struct dbpki_err *e)
{
	STACK_OF(X509) * sk;
	int i, r;

	*out = NULL;
	if ((sk = sk_X509_new_null()) == NULL)
		return err_ssl(e, "out of memory");
	r = pki_pem_certs(buf, len, what, sk, e);
	for (i = 0; r == 0 && i < sk_X509_num(sk); i++)
		r = check_one(sk, i, now, what, e);
	if (r == 0)
		r = rule_chain(sk, now, what, e);
	if (r != 0) {
		sk_X509_pop_free(sk, X509_free);
		return r;
	}
	*out = sk;
	return 0;
}

/* ---- the trust bundle --------------------------------------------------- */

int
pki_bundle_from_pem(const void *buf, size_t len, const char *what,
    STACK_OF(X509) * *out, struct dbpki_err *e)
{
	STACK_OF(X509) * sk;
	X509 *x;
	BIO *b;
	int r = 0;

	*out = NULL;
	if (len > INT32_MAX || (b = BIO_new_mem_buf(buf, (int)len)) == NULL)
		return err_ssl(e, "%s: cannot read", what);
	if ((sk = sk_X509_new_null()) == NULL) {
		BIO_free(b);
		return err_ssl(e, "out of memory");
	}
	while (r == 0 && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (sk_X509_num(sk) >= PKI_BUNDLE_MAX || !sk_X509_push(sk, x)) {
			X509_free(x);
			r = err_set(e, DBPKI_E_PKI,
			    "%s: more than %d certificates", what,
			    PKI_BUNDLE_MAX);
		}
	ERR_clear_error(); /* the end of the PEM stream reads as an error */
	BIO_free(b);
	if (r == 0 && sk_X509_num(sk) == 0)
		r = err_set(
		    e, DBPKI_E_PKI, "%s: no PEM certificate in it", what);
	if (r != 0) {
		sk_X509_pop_free(sk, X509_free);
		return r;
	}
	*out = sk;
	return 0;
}

int
pki_trust_imported(const struct dbpki_cluster *c)
{
	char p[CFG_PATH];
	struct stat st;

	return pki_store_path(c, p, TRUST_FILE) == 0 && lstat(p, &st) == 0;
}

static int
trust_read(const struct dbpki_cluster *c, char path[CFG_PATH],
    STACK_OF(X509) * *out, struct dbpki_err *e)
{
	char *buf = NULL;
	size_t len = 0;
	X509 *ca = NULL;
	int r;

	*out = NULL;
	/* Without an import the trust is dbca, and its absence gets the
	 * "run: dbpki ca init" error.  An import-only store has no dbca. */
	if (!pki_trust_imported(c)) {
		if ((r = pki_ca_load_cert(c, &ca, e)) != 0)
			return r;
		X509_free(ca);
	}
	if (pki_store_path(c, path, "%s",
		pki_trust_imported(c) ? TRUST_FILE : "ca/dbca.crt") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = util_read_file(path, UTIL_MAX_INPUT,
		 UTIL_RF_NOSYMLINK | UTIL_RF_NOTWRITABLE, &buf, &len, e)) != 0)
		return r;
	r = pki_bundle_from_pem(buf, len, path, out, e);
	free(buf);
	return r;
}

int
pki_trust_load(
    const struct dbpki_cluster *c, STACK_OF(X509) * *out, struct dbpki_err *e)
{
	char path[CFG_PATH];

	return trust_read(c, path, out, e);
}

int
pki_trust_file(const struct dbpki_cluster *c, char path[CFG_PATH],
    char serial[PKI_SERIAL_HEX], struct dbpki_err *e)
{
	STACK_OF(X509) *sk = NULL;
	int r;

	if ((r = trust_read(c, path, &sk, e)) != 0)
		return r;
	pki_cert_serial_hex(sk_X509_value(sk, sk_X509_num(sk) - 1), serial);
	sk_X509_pop_free(sk, X509_free);
	return 0;
}

static void
subject_text(X509 *x, char *out, size_t outsz)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n;

	out[0] = '\0';
	if (b != NULL &&
	    X509_NAME_print_ex(
		b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_get_mem_data(b, &p)) > 0)
		log_sanitize(out, outsz, p, (size_t)n, 0);
	BIO_free(b);
}

int
pki_trust_list(const struct dbpki_cluster *c,
    struct pki_trust_cert out[PKI_BUNDLE_MAX], int *n, struct dbpki_err *e)
{
	STACK_OF(X509) *sk = NULL;
	struct pki_trust_cert *t;
	char path[CFG_PATH];
	X509 *x;
	int i, r;

	*n = 0;
	if ((r = trust_read(c, path, &sk, e)) != 0)
		return r;
	for (i = 0; i < sk_X509_num(sk) && i < PKI_BUNDLE_MAX; i++) {
		x = sk_X509_value(sk, i);
		t = &out[i];
		memset(t, 0, sizeof(*t));
		subject_text(x, t->subject, sizeof(t->subject));
		pki_cert_serial_hex(x, t->serial);
		pki_cert_sha256_hex(x, t->sha256);
		t->not_before = pki_cert_not_before(x);
		t->not_after = pki_cert_not_after(x);
		t->imported = pki_trust_imported(c);
		t->is_root = i == sk_X509_num(sk) - 1;
		util_fmt(t->path, sizeof(t->path), "%s", path);
	}
	*n = i;
	sk_X509_pop_free(sk, X509_free);
	return 0;
}

/* ---- ca import ---------------------------------------------------------- */

static int
chain_to_pem(
    STACK_OF(X509) * sk, unsigned char **out, size_t *len, struct dbpki_err *e)
{
	unsigned char *one = NULL, *all = NULL, *nv;
	size_t n1 = 0, total = 0;
	int i, r = 0;

	*out = NULL;
	*len = 0;
	for (i = 0; r == 0 && i < sk_X509_num(sk); i++) {
		if ((r = pki_cert_to_pem(sk_X509_value(sk, i), &one, &n1, e)) !=
		    0)
			break;
		if ((nv = realloc(all, total + n1 + 1)) == NULL)
			r = err_set(e, DBPKI_E_NOMEM, "out of memory");
		else {
			all = nv;
			memcpy(all + total, one, n1 + 1);
			total += n1;
		}
		free(one);
		one = NULL;
	}
	if (r != 0) {
		free(all);
		return r;
	}
	*out = all;
	*len = total;
	return 0;
}

/* Copy the current trusted.pem to ca/backup/<UTC time>[-N]/ before it is
 * replaced: an import is never destructive. */
static int
backup_trust(const struct dbpki_cluster *c, const char *cur,
    char where[CFG_PATH], struct dbpki_err *e)
{
	char base[CFG_PATH], dir[CFG_PATH], p[CFG_PATH], stamp[UTIL_STAMP_LEN],
	    *buf = NULL;
	size_t len = 0;
	int i, r;

	if ((r = util_read_file(
		 cur, UTIL_MAX_INPUT, UTIL_RF_NOSYMLINK, &buf, &len, e)) != 0)
		return err_wrap(e, "cannot back up the current trust");
	util_stamp(stamp); /* sorts like time, unique in a second */
	if (pki_store_path(c, base, BACKUP_DIR) != 0) {
		r = err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		goto out;
	}
	if ((r = util_mkdirs(base, 0700, e)) != 0)
		goto out;
	for (i = 1; i < 1000; i++) {
		if ((i == 1 ? util_fmt(dir, sizeof(dir), "%s/%s", base, stamp)
			    : util_fmt(dir, sizeof(dir), "%s/%s-%d", base,
				  stamp, i)) != 0) {
			r = err_set(e, DBPKI_E_CONFIG, "state_dir too long");
			goto out;
		}
		if (mkdir(dir, 0700) == 0)
			break;
		if (errno != EEXIST) {
			r = err_sys(e, "cannot create %s", dir);
			goto out;
		}
	}
	if (util_fmt(p, sizeof(p), "%s/trusted.pem", dir) != 0) {
		r = err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		goto out;
	}
	if ((r = util_write_atomic(p, buf, len, 0644, e)) == 0)
		util_fmt(where, CFG_PATH, "%s", dir);
out:
	free(buf);
	return r;
}

/* 1 if the file at path holds exactly pem. */
static int
same_content(const char *path, const unsigned char *pem, size_t len)
{
	struct dbpki_err e;
	char *buf = NULL;
	size_t n = 0;
	int same;

	if (util_read_file(
		path, UTIL_MAX_INPUT, UTIL_RF_NOSYMLINK, &buf, &n, &e) != 0)
		return 0;
	same = n == len && memcmp(buf, pem, len) == 0;
	free(buf);
	return same;
}

static void
import_report(STACK_OF(X509) * sk, const char *dst, int have_dbca)
{
	char lbl[LABEL_SIZE], t[32], fp[PKI_SHA256_HEX];
	X509 *x;
	int i;

	for (i = 0; i < sk_X509_num(sk); i++) {
		x = sk_X509_value(sk, i);
		cert_label(x, i, sk_X509_num(sk), lbl);
		util_iso8601(pki_cert_not_after(x), t);
		pki_cert_sha256_hex(x, fp);
		log_info("trusted %s until %s, sha256 %s", lbl, t, fp);
	}
	log_info("wrote %s", dst);
	if (have_dbca)
		log_warn(
		    "from now on the leaf certificates must chain to this "
		    "CA: dbca no longer signs them. Run: dbpki csr -c "
		    "INVENTORY, have the CSRs signed, then: dbpki issue -c "
		    "INVENTORY --signed DIR (docs/corporate-ca.md)");
	else
		log_info(
		    "the store has no dbca and needs none: every leaf "
		    "comes from this CA. Run: dbpki csr -c INVENTORY, have "
		    "the CSRs signed, then: dbpki issue -c INVENTORY "
		    "--signed DIR (docs/corporate-ca.md)");
}

int
pki_ca_import(
    const struct dbpki_cluster *c, const char *path, struct dbpki_err *e)
{
	char sp[PKI_SHOW_PATH + 8], dst[CFG_PATH], bak[CFG_PATH] = "",
						   *buf = NULL;
	STACK_OF(X509) *sk = NULL;
	unsigned char *pem = NULL;
	size_t len = 0, plen = 0;
	struct dbpki_err ign;
	X509 *ca = NULL;
	int fd = -1, r;

	pki_show_path(path, sp);
	/* Nothing is written before every rule has passed.  dbca is not
	 * needed: a shop that uses only its corporate CA starts here, and
	 * no CA key is made for it (docs/corporate-ca.md). */
	if ((r = pki_import_check_path(path, e)) != 0 ||
	    (r = open_strict(path, sp, &fd, e)) != 0 ||
	    (r = read_checked(fd, sp, &buf, &len, e)) != 0 ||
	    (r = pki_import_check_pem(buf, len, sp, util_now(), &sk, e)) != 0 ||
	    (r = chain_to_pem(sk, &pem, &plen, e)) != 0)
		goto out;
	if (pki_store_path(c, dst, TRUST_FILE) != 0) {
		r = err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		goto out;
	}
	if ((r = pki_store_prepare(c, e)) != 0)
		goto out;
	if (pki_ca_load_cert(c, &ca, &ign) != 0)
		err_clear(&ign); /* an import-only store: no dbca */
	if (pki_trust_imported(c) && same_content(dst, pem, plen)) {
		log_info(
		    "%s already trusts exactly this chain; nothing changed",
		    dst);
		goto out;
	}
	if (pki_trust_imported(c) && (r = backup_trust(c, dst, bak, e)) != 0)
		goto out;
	if (bak[0] != '\0')
		log_info("backed up the previous trust to %s/", bak);
	if ((r = util_write_atomic(dst, pem, plen, 0644, e)) != 0)
		goto out;
	import_report(sk, dst, ca != NULL);
out:
	if (fd != -1)
		close(fd);
	sk_X509_pop_free(sk, X509_free);
	X509_free(ca);
	free(buf);
	free(pem);
	return r;
}

/* ---- ca export ---------------------------------------------------------- */

/* The directory PATH goes into: not a symlink, not writable by group or
 * others (someone else could swap the file before the third party reads
 * it).  Returns an O_DIRECTORY fd in *dfd. */
static int
export_dir(const char *path, const char *sp, int *dfd, const char **base,
    struct dbpki_err *e)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;
	int fd;

	*dfd = -1;
	*base = slash + 1;
	if (**base == '\0' || strcmp(*base, ".") == 0 ||
	    strcmp(*base, "..") == 0)
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "file name",
		    "give a file name, not a directory");
	if (util_fmt(dir, sizeof(dir), "%.*s", (int)(slash - path), path) != 0)
		return pki_refuse(
		    e, DBPKI_E_CONFIG, sp, "path length", "too long");
	if (dir[0] == '\0')
		util_fmt(dir, sizeof(dir), "/");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 && lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "no symbolic link",
		    "its directory is a symbolic link; give the real path");
	if (fd == -1)
		return err_sys(e, "%s: cannot open its directory", sp);
	if (fstat(fd, &st) == -1) {
		close(fd);
		return err_sys(e, "%s: cannot stat its directory", sp);
	}
	if (st.st_mode & 022) {
		close(fd);
		return pki_refuse(e, DBPKI_E_CONFIG, sp,
		    "directory not writable by group or others",
		    "its directory has mode %04o; use a private directory",
		    (unsigned)(st.st_mode & 07777));
	}
	*dfd = fd;
	return 0;
}

/* Created, never replaced: a file that appeared at base meanwhile is
 * refused (util_write_at's link). */
static int
export_write(int dfd, const char *base, const char *sp,
    const unsigned char *pem, size_t len, struct dbpki_err *e)
{
	int r = util_write_at(dfd, base, pem, len, 0644, 1, sp, e);

	if (r == DBPKI_E_EXISTS) {
		err_clear(e);
		return pki_refuse(e, DBPKI_E_CONFIG, sp, "must not exist",
		    "it appeared while writing; nothing replaced");
	}
	return r;
}

int
pki_ca_export(
    const struct dbpki_cluster *c, const char *path, struct dbpki_err *e)
{
	char sp[PKI_SHOW_PATH + 8], fp[PKI_SHA256_HEX];
	unsigned char *pem = NULL;
	const char *base = NULL;
	struct stat st;
	size_t len = 0;
	X509 *ca = NULL;
	int dfd = -1, r;

	pki_show_path(path, sp);
	if ((r = pki_ca_load_cert(c, &ca, e)) != 0)
		return r;
	if (path[0] != '/')
		r = pki_refuse(e, DBPKI_E_CONFIG, sp, "absolute path",
		    "give the full path, starting with /");
	else if (strlen(path) >= PKI_IMPORT_MAX_PATH)
		r = pki_refuse(e, DBPKI_E_CONFIG, sp, "path length",
		    "it must be under %d characters", PKI_IMPORT_MAX_PATH);
	else if ((r = export_dir(path, sp, &dfd, &base, e)) == 0 &&
		 fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
		r = pki_refuse(e, DBPKI_E_CONFIG, sp, "must not exist",
		    "it already exists; dbpki never overwrites it: choose a "
		    "new name");
	if (r == 0 && (r = pki_cert_to_pem(ca, &pem, &len, e)) == 0 &&
	    (r = export_write(dfd, base, sp, pem, len, e)) == 0) {
		pki_cert_sha256_hex(ca, fp);
		log_info("wrote %s: the dbca certificate, sha256 %s (compare "
			 "it with the third party out of band)",
		    sp, fp);
	}
	if (dfd != -1)
		close(dfd);
	free(pem);
	X509_free(ca);
	return r;
}
