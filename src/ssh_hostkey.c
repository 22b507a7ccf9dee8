/* ssh_hostkey: fail-closed host-key checking (STYLE 9.1, rule 20).
 *
 * known_hosts is a trust anchor: it is read once per connection through
 * an fd whose file and parent directories were checked (owned by root or
 * us, not writable by others), the host-key algorithm is pinned to the
 * types recorded for this host before the handshake (else the server may
 * offer another type and we would see a false "unknown"), and after the
 * handshake the key must match by two independent readers: ours
 * (ssh_kh.c, ssh(1) semantics) and libssh2_knownhost_checkp().
 */
#include "ssh_int.h"

#include "dbpki/log.h"
#include "dbpki/util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* accept-new rewrites known_hosts; nodes connecting in parallel threads
 * must not lose each other's entries. */
static pthread_mutex_t kh_lock = PTHREAD_MUTEX_INITIALIZER;

#define ALL_HOSTKEY_METHODS                                                    \
	"ssh-ed25519,ecdsa-sha2-nistp256,"                                     \
	"ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256,"   \
	"ssh-rsa"

/* ssh(1)'s safe_path walk (util_trust_path, shared with every other
 * trusted input), over the real path of known_hosts. */
static int
check_trust_path(
    struct ssh_conn *c, const char *path, char *real, struct dbpki_err *e)
{
	if (realpath(path, real) == NULL) {
		if (errno == ENOENT)
			return err_set(e, DBPKI_E_CONFIG,
			    "%s: known_hosts %s "
			    "does not exist; create it (touch %s) and add the "
			    "node's host key, or set host_key_policy = "
			    "accept-new",
			    c->where, path, path);
		return err_sys(e, "%s: known_hosts %s", c->where, path);
	}
	if (util_trust_path(path, "known_hosts", 0, e) != 0)
		return err_wrap(e, "%s", c->where);
	return 0;
}

static int
read_known_hosts(
    struct ssh_conn *c, struct ssh_hostkeys *kh, struct dbpki_err *e)
{
	char real[PATH_MAX];
	struct stat st;
	int r;

	free(kh->text);
	kh->text = NULL;
	if ((r = check_trust_path(c, c->node->ssh.known_hosts, real, e)) != 0)
		return r;
	if ((r = util_read_file(real, SSH_KNOWN_HOSTS_MAX, UTIL_RF_NOTWRITABLE,
		 &kh->text, &kh->len, e)) != 0)
		return err_wrap(e, "%s: known_hosts", c->where);
	kh->mode = stat(real, &st) == 0 ? (int)(st.st_mode & 0777) : 0600;
	return 0;
}

/* libssh2 method names for one known_hosts key type, or NULL. */
static const char *
type_methods(const char *t, size_t n)
{
	static const char *const map[][2] = {
	    {"ssh-ed25519", "ssh-ed25519"},
	    {"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"},
	    {"ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"},
	    {"ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"},
	    {"ssh-rsa", "rsa-sha2-512,rsa-sha2-256,ssh-rsa"},
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strlen(map[i][0]) == n && memcmp(map[i][0], t, n) == 0)
			return map[i][1];
	return NULL;
}

/* Keep only the methods this libssh2 supports: 1.10 has no rsa-sha2-*
 * host keys, and its method_pref() corrupts memory (overlapping memcpy)
 * when it has to drop an unknown name itself. */
static int
supported_only(struct ssh_conn *c, const char *want, char *out, size_t outsz)
{
	const char **algs = NULL;
	const char *p;
	size_t n, used;
	int i, na;

	out[0] = '\0';
	if ((na = libssh2_session_supported_algs(
		 c->s, LIBSSH2_METHOD_HOSTKEY, &algs)) <= 0)
		return -1;
	for (p = want; *p != '\0'; p += n + (p[n] == ',')) {
		n = strcspn(p, ",");
		for (i = 0; i < na; i++) {
			if (strlen(algs[i]) != n || memcmp(algs[i], p, n) != 0)
				continue;
			used = strlen(out);
			util_fmt(out + used, outsz - used, "%s%s",
			    used ? "," : "", algs[i]);
			break;
		}
	}
	libssh2_free(c->s, algs);
	return out[0] != '\0' ? 0 : -1;
}

int
ssh_hostkey_prepare(
    struct ssh_conn *c, struct ssh_hostkeys *kh, struct dbpki_err *e)
{
	struct ssh_kh_lookup l;
	char prefs[512] = "", usable[512];
	const char *p, *m;
	size_t n, used;
	int r;

	if ((r = read_known_hosts(c, kh, e)) != 0)
		return r;
	if (ssh_kh_hostname(c->node->address, c->node->ssh.port, kh->name,
		sizeof(kh->name)) != 0)
		return err_set(
		    e, DBPKI_E_CONFIG, "%s: address too long", c->where);
	ssh_kh_lookup(kh->text, kh->len, kh->name, NULL, 0, &l);
	for (p = l.types; *p != '\0'; p += n + (p[n] == ',')) {
		n = strcspn(p, ",");
		if ((m = type_methods(p, n)) == NULL)
			continue;
		used = strlen(prefs);
		util_fmt(prefs + used, sizeof(prefs) - used, "%s%s",
		    used ? "," : "", m);
	}
	/* Unknown host: ask for what ssh(1) prefers, so the key we show
	 * (or record) is the one ssh(1) would have recorded. */
	if (prefs[0] == '\0')
		util_fmt(prefs, sizeof(prefs), "%s", ALL_HOSTKEY_METHODS);
	if (supported_only(c, prefs, usable, sizeof(usable)) != 0)
		return err_set(e, DBPKI_E_HOSTKEY,
		    "%s: known_hosts records "
		    "only key types this libssh2 cannot verify (%s) for %s; "
		    "add an ssh-ed25519 or ecdsa entry",
		    c->where, l.types, kh->name);
	if (libssh2_session_method_pref(c->s, LIBSSH2_METHOD_HOSTKEY, usable) !=
	    0)
		return ssh_fail(c, e, DBPKI_E_HOSTKEY,
		    "cannot pin the host-key "
		    "algorithms to those known_hosts records");
	return 0;
}

void
ssh_hostkey_free(struct ssh_hostkeys *kh)
{
	free(kh->text);
	kh->text = NULL;
}

static int
keybit(int type)
{
	switch (type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA: return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519: return LIBSSH2_KNOWNHOST_KEY_ED25519;
	default: return 0; /* DSA or unknown: refused */
	}
}

/* libssh2's own verdict on the same text, fed line by line so that it
 * reads exactly what we checked (not the path a second time).  Lines it
 * cannot parse are skipped; then it simply does not know those entries. */
static int
libssh2_verdict(struct ssh_conn *c, const struct ssh_hostkeys *kh,
    const char *key, size_t keylen, int type)
{
	LIBSSH2_KNOWNHOSTS *h;
	const char *p = kh->text, *end = kh->text + kh->len, *nl;
	char *last;
	int port = c->node->ssh.port, rc;

	if ((h = libssh2_knownhost_init(c->s)) == NULL)
		return LIBSSH2_KNOWNHOST_CHECK_FAILURE;
	/* libssh2 1.10 expects the line terminator within len (without it
	 * the key loses its last character): pass it, and give a last line
	 * without one a terminated copy. */
	for (; p < end; p = nl ? nl + 1 : end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl != NULL) {
			libssh2_knownhost_readline(h, p, (size_t)(nl - p) + 1,
			    LIBSSH2_KNOWNHOST_FILE_OPENSSH);
		} else if ((last = malloc((size_t)(end - p) + 2)) != NULL) {
			memcpy(last, p, (size_t)(end - p));
			last[end - p] = '\n';
			last[end - p + 1] = '\0';
			libssh2_knownhost_readline(h, last,
			    (size_t)(end - p) + 1,
			    LIBSSH2_KNOWNHOST_FILE_OPENSSH);
			free(last);
		}
	}
	rc = libssh2_knownhost_checkp(h, c->node->address,
	    port == 22 ? -1 : port, key, keylen,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
		keybit(type),
	    NULL);
	libssh2_knownhost_free(h);
	return rc;
}

/* Add line to known_hosts unless an entry appeared meanwhile.  Called
 * with kh_lock held; re-reads the file so parallel additions survive. */
static int
record_key(struct ssh_conn *c, struct ssh_hostkeys *kh,
    const unsigned char *key, size_t keylen, const char *line,
    enum ssh_kh_verdict *v, struct dbpki_err *e)
{
	struct ssh_kh_lookup l;
	char real[PATH_MAX];
	char *buf = NULL;
	size_t n;
	int r, nl;

	if ((r = read_known_hosts(c, kh, e)) != 0)
		return r;
	ssh_kh_lookup(kh->text, kh->len, kh->name, key, keylen, &l);
	if ((*v = l.verdict) != SSH_KH_NOTFOUND)
		return 0;
	nl = kh->len > 0 && kh->text[kh->len - 1] != '\n';
	n = kh->len + (size_t)nl + strlen(line) + 1;
	if ((buf = malloc(n + 1)) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "%s: out of memory", c->where);
	memcpy(buf, kh->text, kh->len);
	util_fmt(
	    buf + kh->len, n + 1 - kh->len, "%s%s\n", nl ? "\n" : "", line);
	if (realpath(c->node->ssh.known_hosts, real) == NULL)
		r = err_sys(e, "%s: known_hosts %s", c->where,
		    c->node->ssh.known_hosts);
	else if ((r = util_write_atomic(real, buf, n, (mode_t)kh->mode, e)) !=
		 0)
		err_wrap(e, "%s: cannot record the host key", c->where);
	if (r == 0) {
		/* What we check against from now on is what we wrote. */
		free(kh->text);
		kh->text = buf;
		kh->len = n;
		buf = NULL;
		*v = SSH_KH_MATCH;
	}
	free(buf);
	return r;
}

static int
refuse(struct ssh_conn *c, const struct ssh_hostkeys *kh, enum ssh_kh_verdict v,
    int line, const char *type, const char *fp, const char *entry,
    struct dbpki_err *e)
{
	const char *file = c->node->ssh.known_hosts;

	switch (v) {
	case SSH_KH_REVOKED:
		return err_set(e, DBPKI_E_HOSTKEY,
		    "%s: the host key %s %s is "
		    "marked @revoked in %s line %d; refusing to connect.  "
		    "Nothing was sent to the node.",
		    c->where, type, fp, file, line);
	case SSH_KH_MISMATCH:
		return err_set(e, DBPKI_E_HOSTKEY,
		    "%s: HOST KEY CHANGED for "
		    "%s: the node now presents %s %s, which is not the key "
		    "recorded in %s line %d.  Someone may be intercepting this "
		    "connection, or the node was reinstalled.  Nothing was "
		    "sent "
		    "to the node.  Only if the node's administrator confirms "
		    "that fingerprint: ssh-keygen -R '%s' -f %s, then add "
		    "this line to %s:\n%s",
		    c->where, kh->name, type, fp, file, line, kh->name, file,
		    file, entry);
	case SSH_KH_NOTFOUND:
		return err_set(e, DBPKI_E_HOSTKEY,
		    "%s: unknown host key: the "
		    "node presents %s %s and %s has no entry for %s.  Nothing "
		    "was sent to the node.  Confirm the fingerprint with the "
		    "node's administrator (on the node: ssh-keygen -lf "
		    "/etc/ssh/ssh_host_*_key.pub), then add this line to %s "
		    "(or set host_key_policy = accept-new):\n%s",
		    c->where, type, fp, file, kh->name, file, entry);
	default:
		return err_set(e, DBPKI_E_HOSTKEY,
		    "%s: host key %s %s matches "
		    "%s line %d for our reader but not for libssh2 (a pattern "
		    "or an entry it cannot read?); refusing.  Add this exact "
		    "line to %s:\n%s",
		    c->where, type, fp, file, line, file, entry);
	}
}

int
ssh_hostkey_verify(
    struct ssh_conn *c, struct ssh_hostkeys *kh, struct dbpki_err *e)
{
	struct ssh_kh_lookup l;
	char type[64], fp[80], entry[4096];
	const char *key;
	size_t keylen = 0;
	int ktype = 0, r;

	key = libssh2_session_hostkey(c->s, &keylen, &ktype);
	if (key == NULL || keylen == 0)
		return err_set(e, DBPKI_E_HOSTKEY,
		    "%s: the node sent no host "
		    "key",
		    c->where);
	if (keybit(ktype) == 0 ||
	    ssh_kh_blob_type(
		(const unsigned char *)key, keylen, type, sizeof(type)) != 0 ||
	    ssh_kh_fingerprint(
		(const unsigned char *)key, keylen, fp, sizeof(fp)) != 0 ||
	    ssh_kh_line(kh->name, (const unsigned char *)key, keylen, entry,
		sizeof(entry)) != 0)
		return err_set(e, DBPKI_E_HOSTKEY,
		    "%s: unsupported or "
		    "malformed host key (type %d)",
		    c->where, ktype);
	ssh_kh_lookup(kh->text, kh->len, kh->name, (const unsigned char *)key,
	    keylen, &l);
	if (l.verdict == SSH_KH_NOTFOUND &&
	    c->node->ssh.host_key_policy == HOSTKEY_ACCEPT_NEW) {
		pthread_mutex_lock(&kh_lock);
		r = record_key(c, kh, (const unsigned char *)key, keylen, entry,
		    &l.verdict, e);
		pthread_mutex_unlock(&kh_lock);
		if (r != 0)
			return r;
		if (l.verdict == SSH_KH_MATCH)
			log_warn("%s: recorded new host key %s %s for %s in %s "
				 "(host_key_policy = accept-new)",
			    c->where, type, fp, kh->name,
			    c->node->ssh.known_hosts);
	}
	if (l.verdict != SSH_KH_MATCH)
		return refuse(c, kh, l.verdict, l.line, type, fp, entry, e);
	if (libssh2_verdict(c, kh, key, keylen, ktype) !=
	    LIBSSH2_KNOWNHOST_CHECK_MATCH)
		return refuse(c, kh, SSH_KH_MATCH, l.line, type, fp, entry, e);
	return 0;
}
