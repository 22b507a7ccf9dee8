/* ssh_kh: known_hosts lookups with ssh(1)'s semantics.
 *
 * Why our own reader next to libssh2's: libssh2 1.10 cannot tell us which
 * key types are recorded for a *hashed* entry (needed to pin the host-key
 * algorithm before the handshake), and libssh2_knownhost_checkp() with a
 * port also accepts an entry for the bare host, which ssh(1) never does
 * for a non-default port.  The connection code (ssh_hostkey.c) proceeds
 * only when this reader AND libssh2_knownhost_checkp() both say "match".
 */
#include "dbpki/ssh.h"
#include "dbpki/util.h"

#include <ctype.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define KH_MAX_BLOB 4096 /* a 16384-bit RSA key is about 2 KiB */

int
ssh_kh_hostname(const char *host, int port, char *out, size_t outsz)
{
	size_t i;
	int r;

	if (port == 22)
		r = util_fmt(out, outsz, "%s", host);
	else
		r = util_fmt(out, outsz, "[%s]:%d", host, port);
	if (r != 0)
		return -1;
	/* ssh(1) records and hashes host names in lower case. */
	for (i = 0; out[i] != '\0'; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
	return 0;
}

static int
b64_val(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Strict base64 of n chars (padding optional) into out; -1 on bad input. */
static int
b64_decode(
    const char *s, size_t n, unsigned char *out, size_t outsz, size_t *outlen)
{
	unsigned int acc = 0;
	size_t i, o = 0;
	int bits = 0, v;

	while (n > 0 && s[n - 1] == '=')
		n--;
	for (i = 0; i < n; i++) {
		if ((v = b64_val((unsigned char)s[i])) < 0)
			return -1;
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outsz)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (bits >= 6)
		return -1;
	*outlen = o;
	return 0;
}

static int
b64_encode(const unsigned char *in, size_t n, char *out, size_t outsz)
{
	if (outsz < 4 * ((n + 2) / 3) + 1 || n > KH_MAX_BLOB)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return 0;
}

int
ssh_kh_blob_type(
    const unsigned char *key, size_t keylen, char *out, size_t outsz)
{
	uint32_t n;

	if (keylen < 4)
		return -1;
	n = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 |
	    (uint32_t)key[2] << 8 | key[3];
	if (n == 0 || n > keylen - 4 || n >= outsz)
		return -1;
	memcpy(out, key + 4, n);
	out[n] = '\0';
	return strlen(out) == n ? 0 : -1;
}

int
ssh_kh_fingerprint(
    const unsigned char *key, size_t keylen, char *out, size_t outsz)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char b64[64];
	unsigned int mdlen = 0;
	size_t n;

	if (EVP_Digest(key, keylen, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    b64_encode(md, mdlen, b64, sizeof(b64)) != 0)
		return -1;
	n = strlen(b64);
	while (n > 0 && b64[n - 1] == '=')
		b64[--n] = '\0';
	return util_fmt(out, outsz, "SHA256:%s", b64);
}

int
ssh_kh_line(const char *host, const unsigned char *key, size_t keylen,
    char *out, size_t outsz)
{
	char type[64], b64[4 * ((KH_MAX_BLOB + 2) / 3) + 1];

	if (ssh_kh_blob_type(key, keylen, type, sizeof(type)) != 0 ||
	    b64_encode(key, keylen, b64, sizeof(b64)) != 0)
		return -1;
	return util_fmt(out, outsz, "%s %s %s", host, type, b64);
}

/* Case-insensitive glob with * and ?, as ssh(1)'s match_pattern();
 * iterative so a hostile pattern cannot recurse deeply. */
static int
glob_match(const char *p, size_t plen, const char *s)
{
	size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;
	size_t slen = strlen(s);

	while (si < slen) {
		if (pi < plen &&
		    (p[pi] == '?' || tolower((unsigned char)p[pi]) ==
					 tolower((unsigned char)s[si]))) {
			pi++;
			si++;
		} else if (pi < plen && p[pi] == '*') {
			star_p = pi++;
			star_s = si;
		} else if (star_p != (size_t)-1) {
			pi = star_p + 1;
			si = ++star_s;
		} else
			return 0;
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}

/* "|1|salt|hash": HMAC-SHA1 keyed with salt over the host name. */
static int
hashed_match(const char *p, size_t plen, const char *host)
{
	unsigned char salt[64], want[64], got[EVP_MAX_MD_SIZE];
	const char *bar;
	size_t saltlen, wantlen;
	unsigned int gotlen = 0;

	if (plen < 4 || memcmp(p, "|1|", 3) != 0)
		return 0;
	p += 3;
	plen -= 3;
	if ((bar = memchr(p, '|', plen)) == NULL ||
	    b64_decode(p, (size_t)(bar - p), salt, sizeof(salt), &saltlen) !=
		0 ||
	    b64_decode(bar + 1, plen - (size_t)(bar - p) - 1, want,
		sizeof(want), &wantlen) != 0 ||
	    saltlen != 20 || wantlen != 20)
		return 0;
	if (HMAC(EVP_sha1(), salt, (int)saltlen, (const unsigned char *)host,
		strlen(host), got, &gotlen) == NULL ||
	    gotlen != wantlen)
		return 0;
	return CRYPTO_memcmp(got, want, wantlen) == 0;
}

/* The comma-separated host field against host: a negated pattern that
 * matches rejects the line whatever else matches (ssh(1)'s rule). */
static int
hosts_match(const char *f, size_t flen, const char *host)
{
	const char *end = f + flen, *comma;
	size_t n;
	int neg, m, found = 0;

	while (f < end) {
		comma = memchr(f, ',', (size_t)(end - f));
		n = (size_t)((comma ? comma : end) - f);
		neg = n > 0 && f[0] == '!';
		if (n > 0 && f[0] == '|')
			m = hashed_match(f, n, host);
		else
			m = glob_match(f + neg, n - (size_t)neg, host);
		if (m && neg)
			return 0;
		if (m)
			found = 1;
		f += n + (comma ? 1 : 0);
	}
	return found;
}

/* Split off the next whitespace-separated field of [*p, end). */
static int
next_field(const char **p, const char *end, const char **f, size_t *flen)
{
	const char *s = *p;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	*f = s;
	while (s < end && *s != ' ' && *s != '\t')
		s++;
	*flen = (size_t)(s - *f);
	*p = s;
	return *flen > 0 ? 0 : -1;
}

static void
add_type(struct ssh_kh_lookup *out, const char *t, size_t tlen)
{
	char one[64];
	const char *p = out->types;
	size_t n = strlen(out->types);

	if (tlen == 0 || tlen >= sizeof(one))
		return;
	memcpy(one, t, tlen);
	one[tlen] = '\0';
	while (*p != '\0') {
		size_t l = strcspn(p, ",");
		if (l == tlen && memcmp(p, one, tlen) == 0)
			return;
		p += l + (p[l] == ',');
	}
	if (n + tlen + 2 > sizeof(out->types))
		return; /* XXX more types than we pin; the rest stay unpinned */
	util_fmt(
	    out->types + n, sizeof(out->types) - n, "%s%s", n ? "," : "", one);
}

struct kh_state {
	const char *host;
	const unsigned char *key;
	size_t keylen;
	char keytype[64];
	int match, revoked, first_same, first_any;
};

static void
kh_line(struct kh_state *st, const char *p, const char *end, int lineno,
    struct ssh_kh_lookup *out)
{
	unsigned char blob[KH_MAX_BLOB];
	const char *f, *hosts, *type, *key;
	size_t flen, hlen, tlen, klen, bloblen;
	int revoked = 0, same;

	if (next_field(&p, end, &f, &flen) != 0 || f[0] == '#')
		return;
	if (f[0] == '@') {
		if (flen == 8 && memcmp(f, "@revoked", 8) == 0)
			revoked = 1;
		else
			return; /* @cert-authority: we do not use host certificates */
		if (next_field(&p, end, &f, &flen) != 0)
			return;
	}
	hosts = f;
	hlen = flen;
	if (next_field(&p, end, &type, &tlen) != 0 ||
	    next_field(&p, end, &key, &klen) != 0 ||
	    b64_decode(key, klen, blob, sizeof(blob), &bloblen) != 0)
		return;
	if (!hosts_match(hosts, hlen, st->host))
		return;
	same = st->key != NULL && bloblen == st->keylen &&
	       memcmp(blob, st->key, bloblen) == 0;
	if (revoked) {
		if (same && !st->revoked)
			st->revoked = lineno;
		return;
	}
	add_type(out, type, tlen);
	if (same && tlen == strlen(st->keytype) &&
	    memcmp(type, st->keytype, tlen) == 0 && !st->match)
		st->match = lineno;
	if (!st->first_any)
		st->first_any = lineno;
	if (!st->first_same && tlen == strlen(st->keytype) &&
	    memcmp(type, st->keytype, tlen) == 0)
		st->first_same = lineno;
}

void
ssh_kh_lookup(const char *text, size_t len, const char *host,
    const unsigned char *key, size_t keylen, struct ssh_kh_lookup *out)
{
	struct kh_state st;
	const char *p = text, *end = text + len, *nl;
	int lineno = 0;

	memset(out, 0, sizeof(*out));
	memset(&st, 0, sizeof(st));
	st.host = host;
	st.key = key;
	st.keylen = keylen;
	if (key != NULL &&
	    ssh_kh_blob_type(key, keylen, st.keytype, sizeof(st.keytype)) != 0)
		st.key = NULL; /* a malformed server key matches nothing */
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		lineno++;
		kh_line(&st, p,
		    nl ? (nl > p && nl[-1] == '\r' ? nl - 1 : nl) : end, lineno,
		    out);
		p = nl ? nl + 1 : end;
	}
	if (st.revoked) {
		out->verdict = SSH_KH_REVOKED;
		out->line = st.revoked;
	} else if (st.match) {
		out->verdict = SSH_KH_MATCH;
		out->line = st.match;
	} else if (st.first_any) {
		out->verdict = SSH_KH_MISMATCH;
		out->line = st.first_same ? st.first_same : st.first_any;
	} else
		out->verdict = SSH_KH_NOTFOUND;
}
