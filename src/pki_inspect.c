/* pki_inspect: show a certificate, load a bundle, verify a chain and say
 * in plain words why it fails. */
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static void
name_text(const X509_NAME *n, char *out, size_t outsz)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	long len;

	out[0] = '\0';
	if (b == NULL)
		return;
	if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0 &&
	    (len = BIO_get_mem_data(b, &p)) > 0)
		log_sanitize(out, outsz, p, (size_t)len, 0);
	BIO_free(b);
}

/* Untrusted bytes of a certificate string as text: each run between NUL
 * bytes through log_sanitize, each NUL as \x00 (a C string would end
 * there and show "good.example" for "good.example\0.evil").  Returns
 * what was found: 2 a NUL, 1 another byte that needed escaping, 0 none. */
static int
string_text(const ASN1_STRING *v, char *out, size_t outsz)
{
	const char *p = (const char *)ASN1_STRING_get0_data(v), *z;
	size_t n = (size_t)ASN1_STRING_length(v), used = 0, run, i;
	int found = 0;

	out[0] = '\0';
	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
			found = p[i] == '\0' ? 2 : found > 1 ? found : 1;
	while (n > 0 && used + 1 < outsz) {
		z = memchr(p, '\0', n);
		run = z != NULL ? (size_t)(z - p) : n;
		log_sanitize(out + used, outsz - used, p, run, 0);
		used += strlen(out + used);
		if (z == NULL)
			break;
		if (used + 5 > outsz)
			break;
		memcpy(out + used, "\\x00", 5);
		used += 4;
		p = z + 1;
		n -= run + 1;
	}
	return found;
}

/* SAN i as "DNS:x" / "IP:x"; other kinds as "other".  A DNS name with
 * bytes no host name has is shown escaped and marked, since no TLS
 * client should match it. */
static void
san_text(const GENERAL_NAME *gn, char *out, size_t outsz)
{
	const ASN1_STRING *v;
	char ip[INET6_ADDRSTRLEN], safe[300];
	int n, bad;

	if (gn->type == GEN_DNS) {
		v = gn->d.dNSName;
		bad = string_text(v, safe, sizeof(safe));
		util_fmt(out, outsz, "DNS:%s%s", safe,
		    bad == 2   ? " (INVALID: embedded NUL byte)"
		    : bad == 1 ? " (INVALID: bytes no host name has)"
			       : "");
	} else if (gn->type == GEN_IPADD) {
		v = gn->d.iPAddress;
		n = ASN1_STRING_length(v);
		if ((n == 4 || n == 16) &&
		    inet_ntop(n == 4 ? AF_INET : AF_INET6,
			ASN1_STRING_get0_data(v), ip, sizeof(ip)))
			util_fmt(out, outsz, "IP:%s", ip);
		else
			util_fmt(out, outsz, "IP:?");
	} else
		util_fmt(out, outsz, "other(type %d)", gn->type);
}

static void
eku_list(X509 *x, char *out, size_t outsz)
{
	EXTENDED_KEY_USAGE *eku;
	char name[80];
	size_t used = 0;
	int i;

	out[0] = '\0';
	eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
	for (i = 0; eku != NULL && i < sk_ASN1_OBJECT_num(eku); i++) {
		if (OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i)) != NID_undef)
			util_fmt(name, sizeof(name), "%s",
			    OBJ_nid2sn(
				OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i))));
		else
			OBJ_obj2txt(name, sizeof(name),
			    sk_ASN1_OBJECT_value(eku, i), 1);
		if (util_fmt(out + used, outsz - used, "%s%s", used ? "," : "",
			name) != 0)
			break;
		used = strlen(out);
	}
	EXTENDED_KEY_USAGE_free(eku);
}

/* "a,b" as the JSON array ["a","b"]. */
static void
json_list(FILE *f, char *list)
{
	char *p = list, *comma;
	int first = 1;

	fputc('[', f);
	while (*p != '\0') {
		if ((comma = strchr(p, ',')) != NULL)
			*comma = '\0';
		fputs(first ? "" : ",", f);
		log_json_string(f, p);
		first = 0;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	fputc(']', f);
}

static long long
days_left(int64_t na)
{
	int64_t d = na - util_now();

	/* floor, so "expired 3 hours ago" reads -1, not 0 */
	return (long long)(d >= 0 ? d / 86400 : -((-d + 86399) / 86400));
}

static void
print_json(FILE *f, X509 *x, GENERAL_NAMES *gens)
{
	char buf[1024], serial[PKI_SERIAL_HEX], fp[PKI_SHA256_HEX], t[32];
	EVP_PKEY *pub = X509_get0_pubkey(x);
	const char *type = "unknown";
	int i, bits = 0;

	fputs("{\"subject\":", f);
	name_text(X509_get_subject_name(x), buf, sizeof(buf));
	log_json_string(f, buf);
	fputs(",\"issuer\":", f);
	name_text(X509_get_issuer_name(x), buf, sizeof(buf));
	log_json_string(f, buf);
	pki_cert_serial_hex(x, serial);
	fprintf(f, ",\"serial\":\"%s\"", serial);
	util_iso8601(pki_cert_not_before(x), t);
	fprintf(f, ",\"not_before\":\"%s\"", t);
	util_iso8601(pki_cert_not_after(x), t);
	fprintf(f, ",\"not_after\":\"%s\",\"days_left\":%lld", t,
	    days_left(pki_cert_not_after(x)));
	fputs(",\"san\":[", f);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		san_text(sk_GENERAL_NAME_value(gens, i), buf, sizeof(buf));
		fputs(i ? "," : "", f);
		log_json_string(f, buf);
	}
	fputs("]", f);
	if (pub != NULL)
		pki_key_describe(pub, buf, sizeof(buf), &type, &bits);
	fputs(",\"key_type\":", f);
	log_json_string(f, type);
	fprintf(f, ",\"key_bits\":%d,\"is_ca\":%s,\"eku\":", bits,
	    X509_check_ca(x) ? "true" : "false");
	eku_list(x, buf, sizeof(buf));
	json_list(f, buf);
	pki_cert_sha256_hex(x, fp);
	fprintf(f, ",\"sha256\":\"%s\"}\n", fp);
}

static void
print_text(FILE *f, X509 *x, GENERAL_NAMES *gens)
{
	char buf[1024], serial[PKI_SERIAL_HEX], fp[PKI_SHA256_HEX], t[32];
	EVP_PKEY *pub = X509_get0_pubkey(x);
	long long dl = days_left(pki_cert_not_after(x));
	int i;

	name_text(X509_get_subject_name(x), buf, sizeof(buf));
	fprintf(f, "subject:     %s\n", buf);
	name_text(X509_get_issuer_name(x), buf, sizeof(buf));
	fprintf(f, "issuer:      %s\n", buf);
	pki_cert_serial_hex(x, serial);
	fprintf(f, "serial:      %s\n", serial);
	util_iso8601(pki_cert_not_before(x), t);
	fprintf(f, "not before:  %s%s\n", t,
	    util_now() < pki_cert_not_before(x) ? "  (NOT YET VALID)" : "");
	util_iso8601(pki_cert_not_after(x), t);
	if (util_now() >= pki_cert_not_after(x))
		fprintf(
		    f, "not after:   %s  (EXPIRED %lld days ago)\n", t, -dl);
	else
		fprintf(f, "not after:   %s  (%lld days left)\n", t, dl);
	fputs("SANs:        ", f);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		san_text(sk_GENERAL_NAME_value(gens, i), buf, sizeof(buf));
		fprintf(f, "%s%s", i ? ", " : "", buf);
	}
	fputs(gens == NULL ? "(none)\n" : "\n", f);
	if (pub != NULL)
		pki_key_describe(pub, buf, sizeof(buf), NULL, NULL);
	fprintf(f, "key:         %s\n", pub != NULL ? buf : "?");
	fprintf(f, "CA:          %s\n", X509_check_ca(x) ? "yes" : "no");
	eku_list(x, buf, sizeof(buf));
	fprintf(f, "purpose:     %s\n", buf[0] ? buf : "(any)");
	pki_cert_sha256_hex(x, fp);
	fprintf(f, "sha256:      %s\n", fp);
}

void
pki_inspect_print(FILE *f, X509 *x, int json)
{
	GENERAL_NAMES *gens;

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (json)
		print_json(f, x, gens);
	else
		print_text(f, x, gens);
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
}

int
pki_bundle_load(const char *path, STACK_OF(X509) * *out, struct dbpki_err *e)
{
	STACK_OF(X509) *sk = NULL;
	X509 *x;
	BIO *b = NULL;
	char *buf = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if ((r = util_read_file(path, UTIL_MAX_INPUT, 0, &buf, &len, e)) != 0)
		return r;
	if ((sk = sk_X509_new_null()) == NULL ||
	    (b = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		r = err_ssl(e, "out of memory");
		goto out;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_num(sk) >= PKI_BUNDLE_MAX) {
			X509_free(x);
			r = err_set(e, DBPKI_E_CONFIG,
			    "%s: more than %d "
			    "certificates; a bundle holds at most %d",
			    path, PKI_BUNDLE_MAX, PKI_BUNDLE_MAX);
			goto out;
		}
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			r = err_ssl(e, "out of memory");
			goto out;
		}
	}
	ERR_clear_error(); /* the end of the PEM stream reads as an error */
	if (sk_X509_num(sk) == 0) {
		r = err_set(
		    e, DBPKI_E_CONFIG, "%s: no PEM certificate in it", path);
		goto out;
	}
	*out = sk;
	sk = NULL;
out:
	sk_X509_pop_free(sk, X509_free);
	BIO_free(b);
	free(buf);
	return r;
}

static const char *
reason(int err)
{
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED: return "expired";
	case X509_V_ERR_CERT_NOT_YET_VALID: return "not yet valid";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return "unknown issuer";
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
		return "bad signature";
	case X509_V_ERR_INVALID_PURPOSE: return "wrong purpose";
	default: return NULL;
	}
}

static int
verify_fail(struct dbpki_err *e, X509_STORE_CTX *ctx)
{
	int err = X509_STORE_CTX_get_error(ctx);
	int depth = X509_STORE_CTX_get_error_depth(ctx);
	X509 *bad = X509_STORE_CTX_get_current_cert(ctx);
	const char *why = reason(err);
	char subj[256] = "?";

	if (bad != NULL)
		name_text(X509_get_subject_name(bad), subj, sizeof(subj));
	return err_set(e, DBPKI_E_VERIFY,
	    "%s: %s (%s) at depth %d, "
	    "certificate %s",
	    why != NULL ? why : "verification failed",
	    X509_verify_cert_error_string(err),
	    depth == 0 ? "the certificate itself" : "a CA in the chain", depth,
	    subj);
}

int
pki_verify(X509 *leaf, STACK_OF(X509) * bundle, enum pki_purpose purpose,
    const char *host, int64_t at, struct dbpki_err *e)
{
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *chain = NULL;
	X509 *x;
	int i, r = 0;

	if ((store = X509_STORE_new()) == NULL ||
	    (ctx = X509_STORE_CTX_new()) == NULL ||
	    (chain = sk_X509_new_null()) == NULL) {
		r = err_ssl(e, "out of memory");
		goto out;
	}
	/* Self-signed certificates of the bundle are the anchors; any other
	 * one is only a candidate intermediate, never trusted by itself. */
	for (i = 0; i < sk_X509_num(bundle); i++) {
		x = sk_X509_value(bundle, i);
		if ((X509_get_extension_flags(x) & EXFLAG_SS)
			? !X509_STORE_add_cert(store, x)
			: !sk_X509_push(chain, x)) {
			r = err_ssl(e, "cannot use the bundle");
			goto out;
		}
	}
	if (!X509_STORE_CTX_init(ctx, store, leaf, chain)) {
		r = err_ssl(e, "cannot set up verification");
		goto out;
	}
	/* A host name is checked only of a server: a certificate that may
	 * only authenticate clients (clientAuth alone) must never pass as
	 * one, whatever purpose the caller gave. */
	if (host != NULL && purpose == PKI_PURPOSE_CLIENT) {
		r = err_set(e, DBPKI_E_INTERNAL,
		    "pki_verify: a host name with the client purpose");
		goto out;
	}
	if (host != NULL)
		purpose = PKI_PURPOSE_SERVER;
	if (purpose != PKI_PURPOSE_ANY)
		X509_STORE_CTX_set_purpose(ctx, purpose == PKI_PURPOSE_SERVER
						    ? X509_PURPOSE_SSL_SERVER
						    : X509_PURPOSE_SSL_CLIENT);
	if (at != 0)
		X509_STORE_CTX_set_time(ctx, 0, (time_t)at);
	if (X509_verify_cert(ctx) != 1) {
		r = verify_fail(e, ctx);
		goto out;
	}
	if (host != NULL && !pki_cert_covers(leaf, host))
		r = err_set(e, DBPKI_E_VERIFY,
		    "name not in SAN: the "
		    "certificate's SANs do not cover '%.253s' (see: dbpki "
		    "inspect)",
		    host);
out:
	ERR_clear_error();
	sk_X509_free(chain);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return r;
}
