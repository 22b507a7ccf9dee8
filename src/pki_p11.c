/* pki_p11: the CA key on a PKCS#11 token ([ca] key = pkcs11:..., RFC
 * 7512; docs/ca-key.md).  The key never exists as a file: ca init makes
 * it on the token, non-extractable, with C_GenerateKeyPair through the
 * module's own function list (libp11 0.4.12 cannot make EC keys), and
 * libp11's PKCS11_* API logs in, finds it and hands out an EVP_PKEY whose
 * signing goes to the token.  Callers see an EVP_PKEY like any other (the
 * one key interface of pki.h), so an OpenSSL 3 provider can replace this
 * file later.  No ENGINE.
 *
 * One login per run: the module, its session and the login are kept for
 * the process (the EVP_PKEYs refer to them).  A failed login is kept too:
 * real tokens lock the PIN after a few wrong tries, so a run never tries
 * twice. */
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <ctype.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libp11.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>

#define P11_FIELD 256

/* The parts of an RFC 7512 URI dbpki uses, percent-decoded. */
struct p11_uri {
	char token[P11_FIELD];  /* token= (the token's label) */
	char object[P11_FIELD]; /* object= (the key's CKA_LABEL) */
	char module[CFG_PATH];  /* ?module-path= */
};

static struct {
	pthread_mutex_t mu;
	PKCS11_CTX *ctx;
	PKCS11_SLOT *slots, *slot;
	unsigned int n_slots;
	char module[CFG_PATH], token[P11_FIELD];
	int login; /* 0 not yet, 1 logged in, -1 failed (never again) */
	int atexit_set, loaded;
	char why[DBPKI_ERR_MSG];
} p11 = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decode [s, s + n) into out; -1 on a bad escape, a NUL or no
 * room. */
static int
pct_decode(const char *s, size_t n, char *out, size_t outsz)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (o + 1 >= outsz)
			return -1;
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (i + 2 >= n)
			return -1;
		if ((hi = hexval((unsigned char)s[i + 1])) < 0 ||
		    (lo = hexval((unsigned char)s[i + 2])) < 0 ||
		    hi * 16 + lo == 0)
			return -1;
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	return 0;
}

/* Split "a=b;c=d" (sep ';') or "a=b&c=d" (sep '&') and keep what we use. */
static int
uri_attrs(const char *s, size_t n, char sep, struct p11_uri *u, const char *uri,
    struct dbpki_err *e)
{
	const char *end = s + n, *a, *eq, *next;
	char name[32];

	for (a = s; a < end; a = next + 1) {
		if ((next = memchr(a, sep, (size_t)(end - a))) == NULL)
			next = end;
		if (next == a)
			continue;
		if ((eq = memchr(a, '=', (size_t)(next - a))) == NULL ||
		    (size_t)(eq - a) >= sizeof(name))
			return err_set(e, DBPKI_E_CONFIG,
			    "[ca] key %s: '%.*s' is not NAME=VALUE (RFC 7512)",
			    uri, (int)(next - a), a);
		memcpy(name, a, (size_t)(eq - a));
		name[eq - a] = '\0';
		eq++;
		if ((strcmp(name, "token") == 0 &&
			pct_decode(eq, (size_t)(next - eq), u->token,
			    sizeof(u->token)) != 0) ||
		    (strcmp(name, "object") == 0 &&
			pct_decode(eq, (size_t)(next - eq), u->object,
			    sizeof(u->object)) != 0) ||
		    (strcmp(name, "module-path") == 0 &&
			pct_decode(eq, (size_t)(next - eq), u->module,
			    sizeof(u->module)) != 0))
			return err_set(e, DBPKI_E_CONFIG,
			    "[ca] key %s: bad value of %s", uri, name);
		if (strcmp(name, "type") == 0 &&
		    strncmp(eq, "private", (size_t)(next - eq)) != 0)
			return err_set(e, DBPKI_E_CONFIG,
			    "[ca] key %s: type must be private", uri);
		if (next == end)
			break;
	}
	return 0;
}

static int
uri_parse(const char *uri, struct p11_uri *u, struct dbpki_err *e)
{
	const char *path = uri + 7, *q;

	memset(u, 0, sizeof(*u));
	if (strncmp(uri, "pkcs11:", 7) != 0)
		return err_set(
		    e, DBPKI_E_CONFIG, "[ca] key %s: not a pkcs11: URI", uri);
	q = strchr(path, '?');
	if (uri_attrs(path, q != NULL ? (size_t)(q - path) : strlen(path), ';',
		u, uri, e) != 0 ||
	    (q != NULL && uri_attrs(q + 1, strlen(q + 1), '&', u, uri, e) != 0))
		return e->code;
	if (u->token[0] == '\0' || u->object[0] == '\0')
		return err_set(e, DBPKI_E_CONFIG,
		    "[ca] key %s: name the token and the key: "
		    "pkcs11:token=LABEL;object=LABEL?module-path=/path/to/"
		    "module.so",
		    uri);
	if (u->module[0] != '/')
		return err_set(e, DBPKI_E_CONFIG,
		    "[ca] key %s: give the module's absolute path: "
		    "?module-path=/usr/lib/softhsm/libsofthsm2.so (say)",
		    uri);
	return 0;
}

/* The PIN, from [ca] pin_file: private, not a symlink, one line. */
static int
read_pin(const struct dbpki_cluster *c, char **pin, struct dbpki_err *e)
{
	size_t len = 0;
	int r;

	if ((r = util_read_file(c->ca_pin_file, 4096,
		 UTIL_RF_PRIVATE | UTIL_RF_NOSYMLINK, pin, &len, e)) != 0)
		return err_wrap(e, "[ca] pin_file");
	while (len > 0 && ((*pin)[len - 1] == '\n' || (*pin)[len - 1] == '\r'))
		(*pin)[--len] = '\0';
	if (len == 0 || strlen(*pin) != len) {
		util_freezero(*pin, len + 1);
		*pin = NULL;
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: the PIN is empty or has a NUL byte", c->ca_pin_file);
	}
	return 0;
}

/* libp11's last error, as text. */
static const char *
p11_reason(void)
{
	unsigned long x = ERR_peek_last_error();
	const char *s = x != 0 ? ERR_reason_error_string(x) : NULL;

	return s != NULL ? s : "unknown error";
}

/* At exit: log out, close the sessions, C_Finalize, unload (a module may
 * keep state until C_Finalize; every EVP_PKEY is freed by then). */
static void
p11_teardown(void)
{
	if (p11.ctx != NULL) {
		if (p11.slots != NULL)
			PKCS11_release_all_slots(
			    p11.ctx, p11.slots, p11.n_slots);
		/* libp11 crashes unloading a module it failed to load. */
		if (p11.loaded)
			PKCS11_CTX_unload(p11.ctx);
		PKCS11_CTX_free(p11.ctx);
	}
	p11.loaded = 0;
	p11.ctx = NULL;
	p11.slots = p11.slot = NULL;
	p11.n_slots = 0;
}

static void
p11_close(void)
{
	pthread_mutex_lock(&p11.mu);
	p11_teardown();
	pthread_mutex_unlock(&p11.mu);
}

/* Load the module, find the token, open a session and log in: once per
 * run.  Called with p11.mu held. */
static int
p11_open(
    const struct dbpki_cluster *c, const struct p11_uri *u, struct dbpki_err *e)
{
	char *pin = NULL;
	unsigned int i;
	int r;

	if (p11.login < 0)
		return err_set(e, DBPKI_E_PKI, "%s", p11.why);
	if (p11.ctx != NULL) {
		if (strcmp(p11.module, u->module) != 0 ||
		    strcmp(p11.token, u->token) != 0)
			return err_set(e, DBPKI_E_CONFIG,
			    "the CA keys are on two tokens (%s, %s): one run "
			    "uses one",
			    p11.token, u->token);
		return 0;
	}
	/* Loading a module runs its code as us: the same trust as any
	 * file the inventory names. */
	if ((r = util_trust_path(u->module, "[ca] key module-path", 0, e)) != 0)
		return r;
	ERR_clear_error();
	if ((p11.ctx = PKCS11_CTX_new()) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	if (PKCS11_CTX_load(p11.ctx, u->module) != 0) {
		r = err_set(e, DBPKI_E_PKI,
		    "cannot load the PKCS#11 module %s: %s", u->module,
		    p11_reason());
		goto fail;
	}
	p11.loaded = 1;
	/* Registered after the module is loaded, so that it runs before
	 * the module's own exit-time destructors (SoftHSM's C++ statics):
	 * closing the sessions after those crashes. */
	if (!p11.atexit_set && atexit(p11_close) == 0)
		p11.atexit_set = 1;
	util_fmt(p11.module, sizeof(p11.module), "%s", u->module);
	util_fmt(p11.token, sizeof(p11.token), "%s", u->token);
	if (PKCS11_enumerate_slots(p11.ctx, &p11.slots, &p11.n_slots) != 0) {
		r = err_set(e, DBPKI_E_PKI, "%s: cannot list its slots: %s",
		    u->module, p11_reason());
		goto fail;
	}
	for (i = 0; i < p11.n_slots && p11.slot == NULL; i++)
		if (p11.slots[i].token != NULL &&
		    p11.slots[i].token->initialized &&
		    strcmp(p11.slots[i].token->label, u->token) == 0)
			p11.slot = &p11.slots[i];
	if (p11.slot == NULL) {
		r = err_set(e, DBPKI_E_PKI,
		    "no token labelled '%s' in %s (is it plugged in; for "
		    "SoftHSM, does SOFTHSM2_CONF name its directory?)",
		    u->token, u->module);
		goto fail;
	}
	if (PKCS11_open_session(p11.slot, 1) != 0) {
		r = err_set(e, DBPKI_E_PKI,
		    "token '%s': cannot open a "
		    "session: %s",
		    u->token, p11_reason());
		goto fail;
	}
	if ((r = read_pin(c, &pin, e)) != 0)
		goto fail;
	ERR_clear_error();
	r = PKCS11_login(p11.slot, 0, pin);
	util_freezero(pin, strlen(pin) + 1);
	if (r != 0) {
		/* Never a second try in this run, whatever failed. */
		p11.login = -1;
		util_fmt(p11.why, sizeof(p11.why),
		    "token '%s': login refused (%s); nothing was changed. "
		    "Check [ca] pin_file %s -- dbpki tried once, the token "
		    "may lock the PIN after a few failures",
		    u->token, p11_reason(), c->ca_pin_file);
		return err_set(e, DBPKI_E_PKI, "%s", p11.why);
	}
	p11.login = 1;
	return 0;
fail:
	p11_teardown();
	return r;
}

/* The private key labelled label, as an EVP_PKEY; NULL if none. */
static EVP_PKEY *
p11_find(const char *label, int *n_found)
{
	PKCS11_KEY *keys = NULL;
	unsigned int n = 0, i;
	EVP_PKEY *k = NULL;

	*n_found = 0;
	if (PKCS11_enumerate_keys(p11.slot->token, &keys, &n) != 0)
		return NULL;
	for (i = 0; i < n; i++)
		if (keys[i].isPrivate && keys[i].label != NULL &&
		    strcmp(keys[i].label, label) == 0) {
			++*n_found;
			if (k == NULL)
				k = PKCS11_get_private_key(&keys[i]);
		}
	return k;
}

int
pki_p11_load(const struct dbpki_cluster *c, const char *uri, EVP_PKEY **out,
    struct dbpki_err *e)
{
	struct p11_uri u;
	int r, n = 0;

	*out = NULL;
	if ((r = uri_parse(uri, &u, e)) != 0)
		return r;
	/* The module is the inventory's: a driver that moved is changed
	 * there, not in the store (which names the token and the key). */
	if (c->ca_key.uri[0] != '\0') {
		struct p11_uri inv;

		if ((r = uri_parse(c->ca_key.uri, &inv, e)) != 0)
			return r;
		util_fmt(u.module, sizeof(u.module), "%s", inv.module);
	}
	pthread_mutex_lock(&p11.mu);
	if ((r = p11_open(c, &u, e)) == 0) {
		*out = p11_find(u.object, &n);
		if (n > 1) {
			EVP_PKEY_free(*out);
			*out = NULL;
			r = err_set(e, DBPKI_E_PKI,
			    "token '%s': %d private keys are labelled '%s'; "
			    "the label must name one",
			    u.token, n, u.object);
		} else if (*out == NULL)
			r = err_set(e, DBPKI_E_PKI,
			    "token '%s': no private key labelled '%s' (%s)",
			    u.token, u.object, uri);
	}
	pthread_mutex_unlock(&p11.mu);
	return r;
}

/* DER of the named curve's OID, for CKA_EC_PARAMS. */
static const CK_BYTE oid_p256[] = {
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};

/* C_GenerateKeyPair on the logged-in token, through the module's own
 * function list: the module libp11 loaded (RTLD_NOLOAD: the same
 * instance, so the same login). */
static int
p11_generate(const struct p11_uri *u, enum cfg_key_alg alg, struct dbpki_err *e)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = alg == KEY_RSA_4096 ? 4096 : 3072;
	CK_BYTE exp[] = {0x01, 0x00, 0x01};
	CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_BYTE id[16];
	CK_ATTRIBUTE pub[6], prv[8];
	CK_ULONG npub = 0, nprv = 0;
	CK_C_GetFunctionList get;
	CK_FUNCTION_LIST_PTR f = NULL;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE hpub, hprv;
	CK_RV rv;
	void *h;
	size_t lablen = strlen(u->object);

	/* A fresh CKA_ID pairs the private key with its public key: libp11
	 * (and pkcs11-tool) find a key's public half by ID, and keys without
	 * one would all share the empty ID. */
	if (RAND_bytes(id, sizeof(id)) != 1)
		return err_ssl(e, "no random bytes for the key's CKA_ID");

#define ATTR(a, t, v, l)                                                       \
	do {                                                                   \
		a[n##a].type = (t);                                            \
		a[n##a].pValue = (void *)(v);                                  \
		a[n##a].ulValueLen = (l);                                      \
		n##a++;                                                        \
	} while (0)
	ATTR(pub, CKA_TOKEN, &yes, sizeof(yes));
	ATTR(pub, CKA_VERIFY, &yes, sizeof(yes));
	ATTR(pub, CKA_LABEL, u->object, lablen);
	ATTR(pub, CKA_ID, id, sizeof(id));
	if (alg == KEY_EC_P256)
		ATTR(pub, CKA_EC_PARAMS, oid_p256, sizeof(oid_p256));
	else if (alg == KEY_EC_P384)
		ATTR(pub, CKA_EC_PARAMS, oid_p384, sizeof(oid_p384));
	else {
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		ATTR(pub, CKA_MODULUS_BITS, &bits, sizeof(bits));
		ATTR(pub, CKA_PUBLIC_EXPONENT, exp, sizeof(exp));
	}
	ATTR(prv, CKA_TOKEN, &yes, sizeof(yes));
	ATTR(prv, CKA_PRIVATE, &yes, sizeof(yes));
	ATTR(prv, CKA_SENSITIVE, &yes, sizeof(yes));
	ATTR(prv, CKA_EXTRACTABLE, &no, sizeof(no));
	ATTR(prv, CKA_SIGN, &yes, sizeof(yes));
	ATTR(prv, CKA_LABEL, u->object, lablen);
	ATTR(prv, CKA_ID, id, sizeof(id));
#undef ATTR
	if ((h = dlopen(u->module, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD)) ==
		NULL ||
	    (get = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList")) ==
		NULL ||
	    get(&f) != CKR_OK || f == NULL) {
		if (h != NULL)
			dlclose(h);
		return err_set(e, DBPKI_E_PKI,
		    "%s: no C_GetFunctionList in the loaded module", u->module);
	}
	rv = f->C_OpenSession(PKCS11_get_slotid_from_slot(p11.slot),
	    CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
	if (rv == CKR_OK) {
		rv = f->C_GenerateKeyPair(
		    s, &mech, pub, npub, prv, nprv, &hpub, &hprv);
		f->C_CloseSession(s);
	}
	dlclose(h);
	if (rv != CKR_OK)
		return err_set(e, DBPKI_E_PKI,
		    "token '%s': C_GenerateKeyPair (%s) failed: CKR 0x%lx",
		    u->token, cfg_key_name(alg), (unsigned long)rv);
	return 0;
}

int
pki_p11_generate(const struct dbpki_cluster *c, const char *uri,
    enum cfg_key_alg alg, EVP_PKEY **out, struct dbpki_err *e)
{
	struct p11_uri u;
	EVP_PKEY *k;
	int r, n = 0;

	*out = NULL;
	if ((r = uri_parse(uri, &u, e)) != 0)
		return r;
	pthread_mutex_lock(&p11.mu);
	if ((r = p11_open(c, &u, e)) != 0)
		goto out;
	/* Never a second key under one label: the URI must name one. */
	if ((k = p11_find(u.object, &n)) != NULL || n > 0) {
		EVP_PKEY_free(k);
		r = err_set(e, DBPKI_E_EXISTS,
		    "token '%s' already has a private key labelled '%s'; "
		    "refusing to make another (name a new label in the URI, "
		    "or remove the old key with the token's tools)",
		    u.token, u.object);
		goto out;
	}
	if ((r = p11_generate(&u, alg, e)) != 0)
		goto out;
	if ((*out = p11_find(u.object, &n)) == NULL)
		r = err_set(e, DBPKI_E_PKI,
		    "token '%s': the key just made (%s) cannot be found",
		    u.token, u.object);
out:
	pthread_mutex_unlock(&p11.mu);
	return r;
}

int
pki_p11_derive(const char *uri, const char *suffix, char *out, size_t outsz)
{
	const char *o = strstr(uri, ";object="), *end;

	if (strncmp(uri, "pkcs11:object=", 14) == 0)
		o = uri + 14;
	else if (o != NULL)
		o += 8;
	else
		return -1;
	end = o + strcspn(o, ";?");
	return util_fmt(
	    out, outsz, "%.*s-%s%s", (int)(end - uri), uri, suffix, end);
}
