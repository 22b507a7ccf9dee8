/* pki: keys, the cluster CA (dbca), signing profiles, CSRs, inspect/match/
 * verify, and the local store under state_dir (layout: docs/store.md).
 *
 * Conventions: every fallible function takes a struct dbpki_err and returns
 * 0 or a negative DBPKI_E_* code; out-parameters are NULL on entry and set
 * only on success.  OpenSSL objects handed out are owned by the caller and
 * freed with the library's free (X509_free, EVP_PKEY_free, ...).  Key bytes
 * that pass through plain buffers are wiped with util_freezero().
 *
 * Thread safety: the functions here keep no global state; a loaded CA may be
 * used to sign from several threads at once (OpenSSL 3 permits concurrent
 * use of an unmodified EVP_PKEY).
 */
#ifndef DBPKI_PKI_H
#define DBPKI_PKI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "dbpki/config.h"
#include "dbpki/err.h"

#define PKI_SERIAL_BYTES 20
#define PKI_SERIAL_HEX   (2 * PKI_SERIAL_BYTES + 1) /* lower-case hex + NUL */
#define PKI_SHA256_HEX   65                         /* lower-case hex + NUL */
#define PKI_MAX_SAN      (2 * CFG_MAX_NODES + CFG_MAX_SAN)
#define PKI_BUNDLE_MAX   10
/* notBefore is set this far in the past, so a node whose clock is a little
 * behind the admin host's does not reject a fresh certificate. */
#define PKI_BACKDATE (5 * 60)

enum pki_profile { PKI_PROFILE_CA, PKI_PROFILE_SERVER, PKI_PROFILE_CLIENT };
enum pki_purpose { PKI_PURPOSE_ANY, PKI_PURPOSE_SERVER, PKI_PURPOSE_CLIENT };

/* ---- keys (pki_key.c) ------------------------------------------------- */

/* Generate a fresh key of the given algorithm.  Caller frees *out with
 * EVP_PKEY_free. */
int pki_key_generate(enum cfg_key_alg alg, EVP_PKEY **out, struct dbpki_err *e);

/* Which of our four algorithms k is; -1 if none (e.g. RSA 2048, Ed25519). */
int pki_key_alg(const EVP_PKEY *k, enum cfg_key_alg *out);

/* Human description of any key: "EC P-256", "RSA 3072", "ED25519 256".
 * Also the type and size separately when type/bits are not NULL. */
void pki_key_describe(
    const EVP_PKEY *k, char *out, size_t outsz, const char **type, int *bits);

/* Digest to sign with, chosen by the signing key: SHA-384 for P-384 and
 * RSA 4096, SHA-256 otherwise. */
const EVP_MD *pki_key_digest(const EVP_PKEY *signer);

/* A new encrypted key: PBES2, PBKDF2-HMAC-SHA256 with PKI_KDF_ITER
 * iterations, AES-256-CBC; its passphrase has at least PKI_PASS_MIN bytes.
 * Older keys (2048 iterations, shorter passphrases) still decrypt; `check`
 * warns about them and `ca passwd` re-encrypts (docs/ca-key.md). */
#define PKI_KDF_ITER 600000
#define PKI_PASS_MIN 16

/* 0 if pass is long enough for a new key; else DBPKI_E_CONFIG naming
 * `what` and the minimum. */
int pki_pass_check(const char *pass, const char *what, struct dbpki_err *e);

/* How a PEM private key is protected, read from its header alone (no
 * passphrase, no KDF run).  kdf: "none", "pbkdf2", "scrypt", "pbes1",
 * "pbes2" (another KDF), "openssl-legacy"; strong: scrypt, or PBKDF2 with
 * at least PKI_KDF_ITER iterations.  -1 if buf is no PEM private key. */
struct pki_key_prot {
	int encrypted, strong;
	long iter; /* PBKDF2's count; 0 otherwise */
	const char *kdf;
};
int pki_key_protection(const void *buf, size_t len, struct pki_key_prot *p);

/* pki_key_load_pem keeps each encrypted key it decrypted for the rest of
 * the process (decrypt once per run); this drops them. */
void pki_key_cache_clear(void);

/* Encode a private key as PEM PKCS#8; with a non-NULL pass (at least
 * PKI_PASS_MIN bytes, else DBPKI_E_CONFIG), encrypted as above.  *out is a heap buffer of *len bytes that the
 * caller frees with util_freezero(*out, *len). */
int pki_key_to_pem(EVP_PKEY *k, const char *pass, unsigned char **out,
    size_t *len, struct dbpki_err *e);

/* Decode a PEM private key (PKCS#8, encrypted or not, or traditional).
 * `what` names it in messages.  An encrypted key with pass == NULL, or a
 * wrong pass, fails with DBPKI_E_PKI and a message saying so. */
int pki_key_from_pem(const void *buf, size_t len, const char *pass,
    const char *what, EVP_PKEY **out, struct dbpki_err *e);

/* Read a private key file (must not be readable by group or others). */
int pki_key_load_pem(
    const char *path, const char *pass, EVP_PKEY **out, struct dbpki_err *e);

/* ---- the CA key on a PKCS#11 token (pki_p11.c, docs/ca-key.md) ---------
 *
 * [ca] key = pkcs11:token=T;object=L?module-path=/path/module.so.  The
 * store keeps the key's URI in ca/dbca.p11 (PKI_CA_P11_REF) where a file
 * key has ca/dbca.key.  One C_Login per process, with the PIN of [ca]
 * pin_file; after a failed one, none (every later call fails alike).
 * The EVP_PKEYs handed out sign on the token; free them as usual. */
#define PKI_CA_P11_REF "dbca.p11"

/* The private key the URI names (exactly one object with that label);
 * the module is the one [ca] key names, when it is a pkcs11: URI. */
int pki_p11_load(const struct dbpki_cluster *c, const char *uri, EVP_PKEY **out,
    struct dbpki_err *e);

/* Make a key pair of alg on the token with C_GenerateKeyPair (private:
 * CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE false, CKA_SIGN)
 * under the URI's object label, refused (DBPKI_E_EXISTS) when a private
 * key has that label already; then load it as pki_p11_load does. */
int pki_p11_generate(const struct dbpki_cluster *c, const char *uri,
    enum cfg_key_alg alg, EVP_PKEY **out, struct dbpki_err *e);

/* uri with "-suffix" appended to its object label (a rollover's new key:
 * the same token, the label with the date); -1 without object=. */
int pki_p11_derive(
    const char *uri, const char *suffix, char *out, size_t outsz);

/* ---- the one CA key interface (pki_store.c) ------------------------------
 * A new CA key and what the store keeps of it: a PEM file (dbca.key,
 * 0600, encrypted when a passphrase is configured) or, for a token key,
 * its URI (PKI_CA_P11_REF, 0644).  uri: the token key to make, or NULL
 * for a file key. */
struct pki_cakey_new {
	EVP_PKEY *k;
	unsigned char *blob; /* what to write, len bytes */
	size_t len;
	const char *name; /* "dbca.key" or PKI_CA_P11_REF */
	mode_t mode;
};
int pki_cakey_generate(const struct dbpki_cluster *c, const char *uri,
    struct pki_cakey_new *nk, struct dbpki_err *e);
void pki_cakey_new_free(struct pki_cakey_new *nk);

/* The CA key of a store directory ("ca" or PKI_ROLLOVER_NEXT): its token
 * reference when there is one, else its PEM file. */
int pki_cakey_load(const struct dbpki_cluster *c, const char *dir,
    EVP_PKEY **out, struct dbpki_err *e);

/* ---- certificates (pki_cert.c) ---------------------------------------- */

/* What a certificate should say; the SAN strings are borrowed (each a
 * hostname or an IP literal, typed accordingly in the certificate). */
struct pki_spec {
	enum pki_profile profile;
	char cn[CFG_HOST];
	const char *san[PKI_MAX_SAN];
	int n_san;
	int64_t
	    validity; /* seconds from now; capped at the issuer's notAfter */
};

/* Issue a certificate for pub, signed by issuer_key.  For PKI_PROFILE_CA
 * issuer is NULL and issuer_key is pub itself (self-signed); for leaves,
 * issuer/issuer_key are the CA and notAfter is capped at the CA's.
 * Serial: 20 random bytes, top bit clear, first byte non-zero.  Caller
 * frees *out with X509_free. */
int pki_cert_build(const struct pki_spec *s, EVP_PKEY *pub, X509 *issuer,
    EVP_PKEY *issuer_key, X509 **out, struct dbpki_err *e);

/* Add the entries of s->san (typed DNS or IP) to a fresh GENERAL_NAMES. */
int pki_san_build(
    const struct pki_spec *s, GENERAL_NAMES **out, struct dbpki_err *e);

/* PEM in and out.  pki_cert_to_pem: *out is a heap buffer, caller free()s. */
int pki_cert_to_pem(
    X509 *x, unsigned char **out, size_t *len, struct dbpki_err *e);
int pki_cert_from_pem(const void *buf, size_t len, const char *what, X509 **out,
    struct dbpki_err *e);
int pki_cert_load_pem(const char *path, X509 **out, struct dbpki_err *e);

/* Serial as lower-case hex of the integer's bytes (40 digits for our
 * 20-byte serials); "0" for a zero serial. */
void pki_cert_serial_hex(const X509 *x, char out[PKI_SERIAL_HEX]);

/* SHA-256 of the DER certificate, lower-case hex. */
void pki_cert_sha256_hex(const X509 *x, char out[PKI_SHA256_HEX]);

/* 1 if the certificate's SANs cover name_or_ip (an IP literal is compared
 * with IP SANs, anything else with DNS SANs; the subject CN is never
 * consulted and wildcards never match more than one label), else 0. */
int pki_cert_covers(X509 *x, const char *name_or_ip);

/* 1 if key is the private key for x's public key, else 0. */
int pki_cert_key_matches(X509 *x, EVP_PKEY *key);

/* Subject CN into out (empty if none); 0, or -1 if it does not fit. */
int pki_cert_cn(const X509 *x, char *out, size_t outsz);

/* notBefore/notAfter as seconds since the epoch. */
int64_t pki_cert_not_before(const X509 *x);
int64_t pki_cert_not_after(const X509 *x);

/* 1 if x's SAN set equals s's (order and duplicates ignored), else 0. */
int pki_cert_san_equal(X509 *x, const struct pki_spec *s);

/* How many SANs of x s does not ask for (any kind: a wildcard, another
 * node's name, an e-mail address...); the first, sanitised, into first. */
int pki_cert_san_extra(
    X509 *x, const struct pki_spec *s, char *first, size_t sz);

/* ---- CSRs (pki_cert.c) ------------------------------------------------ */

/* A CSR for key with CN and requested SANs from s.  Caller frees *out with
 * X509_REQ_free. */
int pki_csr_build(const struct pki_spec *s, EVP_PKEY *key, X509_REQ **out,
    struct dbpki_err *e);

/* Check req's self-signature and key type, then take its CN and SANs into
 * s (strings copied into names[], which must outlive s).  SANs that are not
 * DNS names or IP addresses, or fail validation, are refused. */
int pki_csr_read_spec(X509_REQ *req, struct pki_spec *s, char names[][CFG_HOST],
    int max_names, struct dbpki_err *e);

/* ---- sign and csr --out (pki_sign.c) ----------------------------------- */

/* Read a CSR file: one PEM CERTIFICATE REQUEST block (text only before
 * it), exactly one DER request in it.  DBPKI_E_CONFIG otherwise. */
int pki_csr_load(const char *path, X509_REQ **out, struct dbpki_err *e);
/* The same from memory; `what` names it in messages. */
int pki_csr_from_pem(const char *buf, size_t len, const char *what,
    X509_REQ **out, struct dbpki_err *e);

/* 1 (and why) if name is a role the cluster treats as privileged, for
 * which no client certificate is signed: the superuser (postgres, [ssh]
 * user of the cluster or of any node: initdb's bootstrap superuser), the
 * cluster's own client identity ([client] common_name), PostgreSQL's
 * reserved pg_* names.  Compared ignoring case. */
int pki_role_privileged(
    const struct dbpki_cluster *c, const char *name, char *why, size_t whysz);

struct pki_sign_req {
	const char *csr, *out;
	int server;     /* 1: the dbserver profile; 0: dbclient */
	long long days; /* 0: the inventory's validity */
	int force;      /* replace an existing out */
};

/* `dbpki sign`: refuses an existing out (unless force), a CSR that is not
 * one clean PEM request, a server CSR without SANs, a client CSR for a
 * privileged role (pki_role_privileged); signs with dbca, records the
 * certificate in the store, then writes out (never before it is
 * recorded; nothing at out on any failure). */
int pki_sign_csr(const struct dbpki_cluster *c, const struct pki_sign_req *rq,
    struct dbpki_err *e);

/* `csr --out PREFIX`: PREFIX.key (0600) and PREFIX.csr, created
 * exclusively (force: replaced atomically); both names are checked before
 * either is written. */
int pki_csr_write_out(const char *prefix, EVP_PKEY *k, X509_REQ *req, int force,
    struct dbpki_err *e);

/* ---- inspect / verify (pki_inspect.c) ---------------------------------- */

/* Print subject, issuer, serial, validity with days left, SANs, key type
 * and size, extended key usage and SHA-256 fingerprint; JSON (one object)
 * when json is set. */
void pki_inspect_print(FILE *f, X509 *x, int json);

/* Read a PEM bundle of 1..PKI_BUNDLE_MAX certificates.  Caller frees *out
 * with sk_X509_pop_free(*out, X509_free). */
int pki_bundle_load(
    const char *path, STACK_OF(X509) * *out, struct dbpki_err *e);

/* Verify leaf against bundle at time `at` (0 = now).  Self-signed bundle
 * certificates are the trust anchors, the others may serve as
 * intermediates.  With host != NULL, the SANs must cover it and the
 * purpose is the server's (serverAuth) whatever purpose says
 * (PKI_PURPOSE_CLIENT with a host is an internal error).  On failure
 * returns DBPKI_E_VERIFY with the reason in e ("expired", "not yet valid",
 * "unknown issuer", "bad signature", "wrong purpose", "name not in SAN"). */
int pki_verify(X509 *leaf, STACK_OF(X509) * bundle, enum pki_purpose purpose,
    const char *host, int64_t at, struct dbpki_err *e);

/* ---- the store (pki_store.c) ------------------------------------------- */

enum pki_status { PKI_ACTIVE, PKI_SUPERSEDED, PKI_REVOKED };

/* One line of state_dir/index.tsv. */
struct pki_entry {
	char serial[PKI_SERIAL_HEX];
	enum pki_status status;
	char kind[16];       /* "ca", "server", "client", "signed" */
	char node[CFG_NAME]; /* node name; "*" shared server; "-" none */
	char not_before[32];
	char not_after[32];
	char key[16]; /* "ec:P-256", ... */
	char subject[CFG_HOST + 8];
};

struct pki_index {
	struct pki_entry *v;
	size_t n, cap;
};

/* state_dir/<fmt...> into out (CFG_PATH bytes); -1 on truncation. */
int pki_store_path(const struct dbpki_cluster *c, char out[CFG_PATH],
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Create state_dir and its subdirectories (0700). */
int pki_store_prepare(const struct dbpki_cluster *c, struct dbpki_err *e);

/* Remove what a writer killed mid-way left behind (call it holding the
 * lock, so that no writer is running): temporary files of
 * util_write_atomic (".<name>.<hex>.tmp", which may hold a private key)
 * in the store's directories, and keys/<serial>.key files that no active
 * index entry names (an issue killed before its index was written; a
 * superseded key whose removal failed).  Each removal is logged.  Needs
 * index.tsv: without one, keys are left alone. */
int pki_store_sweep(const struct dbpki_cluster *c, struct dbpki_err *e);

/* Load index.tsv (a missing file is an empty index); free with
 * pki_index_free.  Save rewrites it atomically. */
int pki_index_load(
    const struct dbpki_cluster *c, struct pki_index *idx, struct dbpki_err *e);
int pki_index_save(const struct dbpki_cluster *c, const struct pki_index *idx,
    struct dbpki_err *e);
void pki_index_free(struct pki_index *idx);
int pki_index_add(
    struct pki_index *idx, const struct pki_entry *ent, struct dbpki_err *e);
/* The active entry of that kind and node, or NULL. */
struct pki_entry *pki_index_active(
    struct pki_index *idx, const char *kind, const char *node);
/* Fill an entry from a certificate. */
void pki_entry_fill(
    struct pki_entry *ent, X509 *x, const char *kind, const char *node);
const char *pki_status_name(enum pki_status s);

/* The CA passphrase from ca_passphrase_file (a private regular file, not a
 * symlink; one trailing newline stripped) or from the environment variable
 * named by ca_passphrase_env.  *out is NULL when neither is configured.
 * Caller frees with util_freezero(*out, strlen(*out) + 1). */
int pki_passphrase(
    const struct dbpki_cluster *c, char **out, struct dbpki_err *e);

/* ---- the CA (pki_store.c) ---------------------------------------------- */

struct pki_ca {
	X509 *cert;
	EVP_PKEY *key;
};

/* Create the CA: key of [ca] key, self-signed dbca certificate valid for
 * [ca] validity, key encrypted when a passphrase is configured.  Refuses
 * with DBPKI_E_EXISTS (message names the path) when a CA is already there. */
int pki_ca_init(const struct dbpki_cluster *c, struct dbpki_err *e);

/* Load the CA certificate and key.  DBPKI_E_NOCA (message says to run
 * `dbpki ca init -c FILE`) when there is none.  Free with pki_ca_free. */
int pki_ca_load(
    const struct dbpki_cluster *c, struct pki_ca **out, struct dbpki_err *e);

/* `ca passwd` (docs/ca-key.md): re-encrypt every CA key of the store
 * (ca/dbca.key, ca/next/dbca.key) with the configured passphrase (at
 * least PKI_PASS_MIN bytes) and the current KDF, each atomically.  Keys
 * are decrypted with the passphrase of old_file when not NULL, else the
 * configured one; a key in clear needs none.  *n_done: keys rewritten.
 * The caller holds the store lock. */
int pki_ca_passwd(const struct dbpki_cluster *c, const char *old_file,
    int *n_done, struct dbpki_err *e);

/* 0 if a new CA key can be written: no passphrase configured, or one
 * of at least PKI_PASS_MIN bytes.  For callers that must know before
 * they change anything (rotate archives the old CA first). */
int pki_ca_pass_ready(const struct dbpki_cluster *c, struct dbpki_err *e);

/* What `ca init`, `status` and `check` warn about (1, text in out; else
 * 0): a CA key in clear (unless [ca] plaintext_key = accepted), one
 * encrypted with a weak KDF, a passphrase shorter than PKI_PASS_MIN.
 * Reads only key headers (no KDF run); a key this user may not read is
 * judged from the inventory. */
int pki_ca_key_warning(const struct dbpki_cluster *c, char *out, size_t outsz);

/* Load only the CA certificate (no passphrase needed). */
int pki_ca_load_cert(
    const struct dbpki_cluster *c, X509 **out, struct dbpki_err *e);
void pki_ca_free(struct pki_ca *ca);

/* Write a certificate signed with the CA into the store (issued/<serial>.crt)
 * and record it in the index as kind "signed".  Used by `dbpki sign`. */
int pki_store_record_signed(
    const struct dbpki_cluster *c, X509 *x, struct dbpki_err *e);

/* Move ca/dbca.key and ca/dbca.crt into a new ca/archive/<UTC time>/
 * (renamed, never deleted; its path into out) and mark the CA's index
 * entry superseded, so pki_ca_init() can create a new CA (rotate, when
 * the old one expired).  DBPKI_E_NOCA when there was nothing to move.
 * (pki_archive.c) */
int pki_ca_archive(
    const struct dbpki_cluster *c, char out[CFG_PATH], struct dbpki_err *e);

/* ---- CA rollover (pki_rollover.c, docs/ca-rollover.md) ----------------
 *
 * A new dbca is created beside the old one (ca/next/dbca.{crt,key}); the
 * nodes first trust both (ca/rollover/bundle.pem shipped as dbca.crt),
 * then get leaves from the new CA, then trust only the new one, and the
 * store's dbca becomes the new CA (the old one archived).  The progress is
 * ca/rollover/state, written atomically. */

#define PKI_ROLLOVER_STATE  "ca/rollover/state"
#define PKI_ROLLOVER_BUNDLE "ca/rollover/bundle.pem"
#define PKI_ROLLOVER_NEXT   "ca/next"
#define PKI_ROLLOVER_STAGES 3

struct pki_rollover {
	int active;          /* a state file exists */
	int done;            /* stages done, 0..3 */
	int signer_new;      /* leaves are signed by the new CA (stage 2 on) */
	int bundle_new_only; /* releases trust only the new CA (stage 3 on) */
	char old_serial[PKI_SERIAL_HEX], new_serial[PKI_SERIAL_HEX];
	char started[32]; /* ISO 8601 UTC */
};

/* Parse / format the state file.  Parse is strict: every key once, no
 * unknown key, values in range, flags consistent with `done`.
 * DBPKI_E_CONFIG naming `what`:line.  Format returns the length, -1 when
 * out is too small. */
int pki_rollover_parse(const char *buf, size_t len, const char *what,
    struct pki_rollover *out, struct dbpki_err *e);
int pki_rollover_format(const struct pki_rollover *ro, char *out, size_t outsz);

/* Read state_dir/ca/rollover/state (missing: ro->active = 0) / write it
 * atomically (0644). */
int pki_rollover_load(const struct dbpki_cluster *c, struct pki_rollover *ro,
    struct dbpki_err *e);
int pki_rollover_save(const struct dbpki_cluster *c,
    const struct pki_rollover *ro, struct dbpki_err *e);

/* 1 while a rollover is under way (state present, fewer than 3 done). */
int pki_rollover_running(const struct pki_rollover *ro);

/* "CA rollover: stage N of 3 done (new CA serial S, started T)". */
void pki_rollover_describe(
    const struct pki_rollover *ro, char *out, size_t outsz);

/* The trust bundle old + new (old first, new last), PEM.  *out is a heap
 * buffer the caller frees. */
int pki_rollover_bundle(X509 *oldca, X509 *newca, unsigned char **out,
    size_t *len, struct dbpki_err *e);

/* Where the signing CA's files are, relative to state_dir: "ca", or
 * "ca/next" once stage 2 began and until stage 3 finished. */
int pki_rollover_ca_dir(
    const struct dbpki_cluster *c, char dir[16], struct dbpki_err *e);

/* What releases ship as dbca.crt, relative to state_dir: during a
 * rollover the bundle (stages 1-2) or the new CA alone (stage 3); else
 * "ca/dbca.crt".  *rollover: 1 when a rollover decided it. */
int pki_rollover_trust_rel(const struct dbpki_cluster *c, char rel[64],
    int *rollover, struct dbpki_err *e);

/* For pki_release_build: during a rollover replace path and serial (the
 * newest CA's) with the rollover's bundle; else leave them. */
int pki_rollover_trust_file(const struct dbpki_cluster *c, char path[CFG_PATH],
    char serial[PKI_SERIAL_HEX], struct dbpki_err *e);

/* Stage 1's store part: create the new CA in ca/next (or keep the one an
 * interrupted stage 1 made), write the bundle, and a fresh state (done 0)
 * unless a rollover is already under way.  *ro: the state now. */
int pki_rollover_begin(const struct dbpki_cluster *c, struct pki_rollover *ro,
    struct dbpki_err *e);

/* Stage 3's store part, idempotent: archive the old dbca
 * (pki_ca_archive), move ca/next/dbca.* to ca/, record the new CA in the
 * index, state done 3.  archived: the archive directory, or "" when an
 * earlier, interrupted run archived it. */
int pki_rollover_finish(const struct dbpki_cluster *c, struct pki_rollover *ro,
    char archived[CFG_PATH], struct dbpki_err *e);

/* ---- issuing (pki_issue.c) --------------------------------------------- */

/* What the inventory needs: fill spec for a node's server certificate
 * (node == NULL: the shared one) or for the cluster's client certificate. */
void pki_spec_server(const struct dbpki_cluster *c, const struct cfg_node *n,
    struct pki_spec *s);
void pki_spec_client(const struct dbpki_cluster *c, struct pki_spec *s);

/* Make the store hold a valid certificate for everything the inventory
 * needs.  One that is valid, signed by the current CA, matches the
 * inventory (CN, SANs, key type) and is not within renew_before of expiry
 * is kept, unless force; the others are reissued (keys generated on all
 * cores) and the old ones marked superseded.  Logs one line per
 * certificate.  DBPKI_E_NOCA without a CA. */
int pki_issue_all(
    const struct dbpki_cluster *c, int force, struct dbpki_err *e);

/* Generate keys on up to `threads` threads (0: all cores).  keys[i] get
 * algorithm algs[i]; on failure every generated key is freed. */
int pki_keygen_parallel(const enum cfg_key_alg *algs, EVP_PKEY **keys, int n,
    int threads, struct dbpki_err *e);

/* Write key (0600) and CSR (0644) for everything the inventory needs into
 * state_dir/csr/ (server-<node>.*, server-shared.*, client.*). */
int pki_csr_all(const struct dbpki_cluster *c, struct dbpki_err *e);

/* ---- releases (pki_release.c) ------------------------------------------ */

/* dbca.crt, server.crt/.key, client.crt/.key, crl.pem (docs/revocation.md) */
#define PKI_RELEASE_MAX 6

/* One file a node receives. */
struct pki_file {
	char name[16];       /* "dbca.crt", "server.crt", "server.key", ... */
	unsigned char *data; /* PEM bytes */
	size_t len;
	mode_t mode;                 /* 0644 certificates, 0600 keys */
	char sha256[PKI_SHA256_HEX]; /* of data */
	char serial[PKI_SERIAL_HEX]; /* certificates only, else "" */
};

struct pki_release {
	struct pki_file files[PKI_RELEASE_MAX];
	int n;
};

/* The files node n receives from the store: dbca.crt, server.crt,
 * server.key (database nodes only), client.crt, client.key, and crl.pem
 * (postgres database nodes, once the store has a CRL).  rel must be
 * zeroed on entry; free with pki_release_free (which wipes the keys). */
int pki_release_build(const struct dbpki_cluster *c, const struct cfg_node *n,
    struct pki_release *rel, struct dbpki_err *e);
void pki_release_free(struct pki_release *rel);

/* The file named `name` in rel, or NULL. */
const struct pki_file *pki_release_file(
    const struct pki_release *rel, const char *name);

/* Pre-flight: each key matches its certificate, each certificate chains to
 * the release's dbca.crt with the right purpose and is valid now, the
 * server certificate covers the node's host and address, and a crl.pem is
 * dbca's and not expired.  The error
 * (DBPKI_E_VERIFY) names the node and the file. */
int pki_release_check(const struct dbpki_cluster *c, const struct cfg_node *n,
    const struct pki_release *rel, struct dbpki_err *e);

/* ---- trusting an imported CA (pki_import.c, docs/corporate-ca.md) ------
 *
 * `ca import` makes an imported root/chain the store's trust anchor:
 * state_dir/ca/trusted.pem (PEM, lowest CA first, root last).  From then
 * on releases ship that chain as dbca.crt, leaves must chain to it, and
 * dbca signs no leaves (`issue` keeps valid leaves and refuses the rest,
 * pointing to `csr -c` + `issue --signed`).  dbca itself stays (export,
 * sign).  Without trusted.pem the trust anchor is dbca alone. */

#define PKI_IMPORT_MAX_CHAIN  10            /* certificates in a chain */
#define PKI_IMPORT_MAX_PATH   4096          /* a path must be shorter */
#define PKI_IMPORT_MAX_LEVELS 99            /* ... and have fewer levels */
#define PKI_IMPORT_MAX_BYTES  (1024 * 1024) /* file size */

/* The rules on the path string of a file to import: absolute, under
 * PKI_IMPORT_MAX_PATH characters, fewer than PKI_IMPORT_MAX_LEVELS
 * components, no "." or "..".  DBPKI_E_CONFIG names the rule. */
int pki_import_check_path(const char *path, struct dbpki_err *e);

/* The rules on the content (`what` names it in messages; `now` is the
 * time validity is checked at): PEM CERTIFICATE blocks only, 1 to
 * PKI_IMPORT_MAX_CHAIN of them, each X.509 v3, valid at now, a CA
 * (basicConstraints CA:TRUE, keyUsage keyCertSign), RSA >= 3072 or EC >=
 * 256 bits, signed with SHA-256/384/512 by the next certificate, the last
 * one self-signed.  DBPKI_E_CONFIG: "WHAT: refused (rule: R): detail",
 * naming the certificate.  *out (file order) is freed by the caller with
 * sk_X509_pop_free(*out, X509_free). */
int pki_import_check_pem(const void *buf, size_t len, const char *what,
    int64_t now, STACK_OF(X509) * *out, struct dbpki_err *e);

/* `ca import`: DBPKI_E_NOCA without dbca; then the path rules, the file
 * rules (walked from / with O_NOFOLLOW: no symlink anywhere; regular file;
 * not writable by group/others; at most PKI_IMPORT_MAX_BYTES) and the
 * content rules, all before anything is written.  An earlier trusted.pem
 * is copied to state_dir/ca/backup/<UTC time>/trusted.pem first. */
int pki_ca_import(
    const struct dbpki_cluster *c, const char *path, struct dbpki_err *e);

/* `ca export`: write the dbca certificate (PEM, 0644) to path, which must
 * be absolute and not exist; its directory must not be a symlink nor
 * writable by group or others.  Never replaces a file (link(2)). */
int pki_ca_export(
    const struct dbpki_cluster *c, const char *path, struct dbpki_err *e);

/* 1 if the store trusts an imported CA (state_dir/ca/trusted.pem). */
int pki_trust_imported(const struct dbpki_cluster *c);

/* The trust bundle: the imported chain, or dbca.  DBPKI_E_NOCA without
 * dbca.  Free *out with sk_X509_pop_free(*out, X509_free). */
int pki_trust_load(
    const struct dbpki_cluster *c, STACK_OF(X509) * *out, struct dbpki_err *e);

/* The bundle's file (what releases ship as dbca.crt) and its root's
 * serial. */
int pki_trust_file(const struct dbpki_cluster *c, char path[CFG_PATH],
    char serial[PKI_SERIAL_HEX], struct dbpki_err *e);

/* One trusted CA certificate, for monitoring (`check`). */
struct pki_trust_cert {
	char subject[256]; /* RFC 2253, sanitised */
	char serial[PKI_SERIAL_HEX];
	char sha256[PKI_SHA256_HEX];
	int64_t not_before, not_after; /* seconds since the epoch */
	int imported;                  /* 1: from ca/trusted.pem; 0: dbca */
	int is_root;                   /* the last, self-signed one */
	char path[CFG_PATH];           /* the file it is in */
};

/* The trusted CA certificates, in bundle order (root last): *n of them in
 * out.  DBPKI_E_NOCA without dbca. */
int pki_trust_list(const struct dbpki_cluster *c,
    struct pki_trust_cert out[PKI_BUNDLE_MAX], int *n, struct dbpki_err *e);

/* Every PEM certificate of buf (1..PKI_BUNDLE_MAX).  Free *out with
 * sk_X509_pop_free(*out, X509_free). */
int pki_bundle_from_pem(const void *buf, size_t len, const char *what,
    STACK_OF(X509) * *out, struct dbpki_err *e);

/* Is x a good leaf for spec s: (key, if not NULL, matches), chains to
 * bundle with the profile's purpose and is valid now, not a CA,
 * extendedKeyUsage has serverAuth/clientAuth, key of algorithm alg, CN
 * equal, every SAN of s covered.  DBPKI_E_VERIFY with the reason. */
int pki_signed_check(const struct pki_spec *s, enum cfg_key_alg alg, X509 *x,
    EVP_PKEY *key, STACK_OF(X509) * bundle, struct dbpki_err *e);

/* `issue --signed DIR`: each .crt, .pem or .cer file of dir is matched by public
 * key to a key in state_dir/csr/ (or to the active leaf's key), checked
 * with pki_signed_check against the trust bundle, and stored as the
 * active leaf; the consumed CSR files are removed.  Every need must be
 * met afterwards (new or still-good stored leaf), else nothing is stored.
 * DBPKI_E_CONFIG for bad input (not PEM, unknown key, missing), and
 * DBPKI_E_VERIFY when a certificate fails a check; both name the file.
 * A new certificate with a SAN the inventory does not ask for (a
 * wildcard, another node's name) fails unless allow_extra_san. */
int pki_issue_signed(const struct dbpki_cluster *c, const char *dir,
    int allow_extra_san, struct dbpki_err *e);

/* `issue` once a CA was imported (called by pki_issue_all): keep every
 * leaf that passes pki_signed_check, warn about those within renew_before,
 * refuse (no dbca signing) when any cannot be kept. */
int pki_issue_corporate(
    const struct dbpki_cluster *c, int force, struct dbpki_err *e);

/* ---- revocation and the CRL (pki_crl.c, docs/revocation.md) -----------
 *
 * state_dir/crl/dbca.crl (PEM, 0644) is dbca's CRL: v2, with a CRL number
 * and the authority key identifier, thisUpdate PKI_BACKDATE in the past,
 * nextUpdate [ca] crl_validity ahead.  It lists every index entry with
 * status `revoked` that dbca signed; state_dir/crl/revoked.tsv keeps when
 * and why each was revoked.  A store without a CRL has never revoked
 * anything: releases carry no crl.pem and nodes check nothing.  After
 * `ca import` dbca neither signs leaves nor CRLs: revocation is refused. */

/* The RFC 5280 CRLReason codes accepted for a leaf (cACompromise,
 * certificateHold, removeFromCRL and aACompromise are not). */
enum pki_crl_reason {
	PKI_REASON_UNSPECIFIED = 0,
	PKI_REASON_KEY_COMPROMISE = 1,
	PKI_REASON_AFFILIATION_CHANGED = 3,
	PKI_REASON_SUPERSEDED = 4,
	PKI_REASON_CESSATION = 5,
	PKI_REASON_PRIVILEGE_WITHDRAWN = 9,
};

/* "keyCompromise" -> PKI_REASON_KEY_COMPROMISE, ...; -1 when s is not an
 * accepted name.  pki_crl_reason_name(): the RFC's name, "?" if unknown. */
int pki_crl_reason_parse(const char *s);
const char *pki_crl_reason_name(int reason);
/* The accepted names, comma-separated, for messages and usage. */
const char *pki_crl_reason_list(void);

/* One revoked certificate as the CRL states it. */
struct pki_revoked {
	char serial[PKI_SERIAL_HEX];
	int64_t when; /* revocationDate, seconds since the epoch */
	int reason;   /* enum pki_crl_reason; unspecified = no extension */
};

/* Build a CRL signed by ca/key: v2, issuer = ca's subject, the entries of
 * v (sorted by serial), CRL number `number`, authority key identifier =
 * ca's subject key identifier, thisUpdate/nextUpdate as given.  Caller
 * frees *out with X509_CRL_free. */
int pki_crl_build(X509 *ca, EVP_PKEY *key, const struct pki_revoked *v,
    size_t n, uint64_t number, int64_t this_update, int64_t next_update,
    X509_CRL **out, struct dbpki_err *e);

/* Is crl usable with ca at `now`: issuer name and signature are ca's,
 * thisUpdate not after now + PKI_BACKDATE, nextUpdate present and after
 * now.  DBPKI_E_VERIFY with the reason ("expired", ...) otherwise. */
int pki_crl_check(X509_CRL *crl, X509 *ca, int64_t now, struct dbpki_err *e);

/* PEM in and out (pki_crl_to_pem: *out is a heap buffer, caller frees). */
int pki_crl_from_pem(const void *buf, size_t len, const char *what,
    X509_CRL **out, struct dbpki_err *e);
int pki_crl_to_pem(
    X509_CRL *crl, unsigned char **out, size_t *len, struct dbpki_err *e);

/* The CRL number (0 when absent) and nextUpdate (0 when absent). */
uint64_t pki_crl_number(const X509_CRL *crl);
int64_t pki_crl_next_update_of(const X509_CRL *crl);

/* Read state_dir/crl/dbca.crl; DBPKI_E_SYS with errno ENOENT when the
 * store has none.  Caller frees with X509_CRL_free. */
int pki_crl_load(
    const struct dbpki_cluster *c, X509_CRL **out, struct dbpki_err *e);

/* When and why each revoked serial was revoked (state_dir/crl/
 * revoked.tsv; missing = none).  *out is a heap array the caller frees. */
int pki_revoked_load(const struct dbpki_cluster *c, struct pki_revoked **out,
    size_t *n, struct dbpki_err *e);

/* What to revoke: a serial, or the one active entry whose node and/or
 * kind match (the columns of `dbpki list`). */
struct pki_revoke_req {
	const char *serial; /* hex, any case; NULL: select by node/kind */
	const char *node;   /* NULL: any */
	const char *kind;   /* NULL: any; "server", "client", "app", "signed" */
	int reason;         /* enum pki_crl_reason */
};

struct pki_revoke_res {
	struct pki_entry ent; /* the entry, as it is in the index now */
	int already;          /* it was revoked before: nothing changed */
	int was_active;       /* it was the active leaf of its kind and node */
};

/* Mark one certificate revoked in the index (details in revoked.tsv) and
 * delete its private key from keys/.  Does not touch the CRL (see
 * pki_crl_update).  DBPKI_E_USAGE, naming what to do, for an unknown
 * serial, a selection that matches no or several active entries, the CA
 * itself, and a store that trusts an imported CA; res->already for a
 * serial that was revoked already (nothing is written). */
int pki_revoke(const struct dbpki_cluster *c, const struct pki_revoke_req *req,
    struct pki_revoke_res *res, struct dbpki_err *e);

/* Rebuild state_dir/crl/dbca.crl from the store now (number = the
 * previous CRL's + 1, or 1) and write it atomically; also the first,
 * empty CRL.  Needs the CA key.  Logs one line. */
int pki_crl_update(const struct dbpki_cluster *c, struct dbpki_err *e);

/* For renew and check.  pki_crl_refresh: when the store has a CRL and it
 * expires within min(renew_before, [ca] crl_validity / 2), or dbca did not
 * sign it (a new CA after rotate), rebuild it (*refreshed = 1, when
 * refreshed is not NULL): the new one still has to be shipped (engine_run
 * of playbook "crl", or any release).  Nothing to do without a CRL or
 * after `ca import`.  pki_crl_next_update: the stored CRL's nextUpdate
 * into *t, 0 when the store has no CRL. */
int pki_crl_refresh(
    const struct dbpki_cluster *c, int *refreshed, struct dbpki_err *e);
int pki_crl_next_update(
    const struct dbpki_cluster *c, int64_t *t, struct dbpki_err *e);

/* ISO 8601 UTC as util_iso8601 writes it ("2026-11-22T20:00:00Z") to
 * seconds since the epoch; -1 if s is not in that form. */
int pki_iso8601_parse(const char *s, int64_t *out);

/* ---- the inventory of certificates (pki_list.c) ------------------------ */

struct pki_list_filter {
	int64_t expiring; /* > 0: only notAfter before now + expiring */
	int status;       /* enum pki_status, or -1 for any */
	const char *node; /* NULL: any */
	const char *kind; /* NULL: any */
};

/* Every certificate of the index that passes f, oldest first: a table, or
 * with json one JSON array with one object per line (serial, status,
 * kind, node, subject, key, not_before, not_after, days_left, and
 * revoked_at/reason for revoked ones).  *n_out: how many were printed. */
int pki_list_print(const struct dbpki_cluster *c,
    const struct pki_list_filter *f, int json, FILE *out, size_t *n_out,
    struct dbpki_err *e);

/* ---- application client certificates (pki_app.c) ----------------------- */

/* A database role name dbpki issues for: [A-Za-z_][A-Za-z0-9_]*, at most
 * 63 characters (a PostgreSQL identifier that needs no quoting). */
int pki_valid_role(const char *s);

/* `issue-client`: a client certificate with CN = role (kind "app", node =
 * role in the index; an earlier active one becomes superseded), and the
 * directory dir (absolute; must not exist; created 0700) holding
 * dbca.crt, client.crt, client.key (0600) and pg_service.conf (service =
 * role: the primary, dbname, user = role, verify-full, paths into dir).
 * The role may not be the cluster's dbclient CN.  *ent: what was
 * recorded; prev: the serial it superseded, or "". */
int pki_issue_app(const struct dbpki_cluster *c, const char *role,
    const char *dir, const char *dbname, struct pki_entry *ent,
    char prev[PKI_SERIAL_HEX], struct dbpki_err *e);

/* ---- applications renewed by `renew` (pki_app.c, docs/revocation.md) ---
 *
 * state_dir/app-renew.tsv (0600) records the roles issued with
 * `issue-client --renew-with-cluster`: role, the --out directory
 * (absolute) and the database name of its pg_service.conf. */

struct pki_app_rec {
	char role[CFG_NAME];
	char dir[CFG_PATH];
	char dbname[CFG_NAME];
};

/* Every record (a missing file is none).  *v is a heap array the caller
 * frees.  DBPKI_E_CONFIG names file:line of a malformed line. */
int pki_app_recs_load(const struct dbpki_cluster *c, struct pki_app_rec **v,
    size_t *n, struct dbpki_err *e);

/* Record role (on) or forget it (!on): the latest issue-client decides.
 * A relative dir is taken from the current directory. */
int pki_app_mark(const struct dbpki_cluster *c, const char *role,
    const char *dir, const char *dbname, int on, struct dbpki_err *e);

/* `renew`: a new certificate (new key, same CN) for rec->role, recorded
 * like issue-client does (the previous one superseded; prev its serial);
 * then, when rec->dir still is a directory (not a symlink), each of its
 * four files replaced atomically with the same modes (*rewrote = 1). */
int pki_app_reissue(const struct dbpki_cluster *c,
    const struct pki_app_rec *rec, struct pki_entry *ent,
    char prev[PKI_SERIAL_HEX], int *rewrote, struct dbpki_err *e);

#endif
