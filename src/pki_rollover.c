/* pki_rollover: the store's side of a CA rollover (docs/ca-rollover.md).
 *
 * The new dbca lives in ca/next/ until stage 3 makes it the store's dbca;
 * ca/rollover/state says how far the rollover got.  Everything else in
 * the store reads that state through two questions: which CA signs leaves
 * (pki_rollover_ca_dir) and which bundle the nodes trust
 * (pki_rollover_trust_rel), so that issue and renew do the right thing on
 * any day between two stages. */
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_HEADER "# dbpki CA rollover state v1\n"
#define STATE_MAX    4096

/* ---- the state file ----------------------------------------------------- */

enum { K_DONE, K_SIGNER, K_BUNDLE, K_OLD, K_NEW, K_STARTED, K_N };
static const char *const state_keys[K_N] = {
    "done", "signer", "bundle", "old_serial", "new_serial", "started"};

static int
valid_hex(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return n > 0 && n < PKI_SERIAL_HEX && s[n] == '\0';
}

static int
set_value(struct pki_rollover *ro, int k, const char *v)
{
	int64_t t;

	switch (k) {
	case K_DONE:
		if (strlen(v) != 1 || v[0] < '0' || v[0] > '3')
			return -1;
		ro->done = v[0] - '0';
		return 0;
	case K_SIGNER:
	case K_BUNDLE:
		if (strcmp(v, k == K_SIGNER ? "old" : "both") == 0)
			return 0;
		if (strcmp(v, "new") != 0)
			return -1;
		*(k == K_SIGNER ? &ro->signer_new : &ro->bundle_new_only) = 1;
		return 0;
	case K_OLD:
	case K_NEW:
		if (!valid_hex(v))
			return -1;
		return util_fmt(k == K_OLD ? ro->old_serial : ro->new_serial,
		    PKI_SERIAL_HEX, "%s", v);
	default:
		if (pki_iso8601_parse(v, &t) != 0)
			return -1;
		return util_fmt(ro->started, sizeof(ro->started), "%s", v);
	}
}

/* One "key=value" line (modified in place); the key's index into *k. */
static int
parse_line(char *line, struct pki_rollover *ro, int seen[K_N], int *k)
{
	char *eq = strchr(line, '=');
	int i;

	if (eq == NULL)
		return -1;
	*eq = '\0';
	for (i = 0; i < K_N; i++)
		if (strcmp(line, state_keys[i]) == 0)
			break;
	*k = i;
	if (i == K_N || seen[i]++)
		return -1;
	return set_value(ro, i, eq + 1);
}

int
pki_rollover_parse(const char *buf, size_t len, const char *what,
    struct pki_rollover *out, struct dbpki_err *e)
{
	struct pki_rollover ro;
	int seen[K_N] = {0}, lineno = 0, i, k = 0;
	char *copy, *line, *nl;

	memset(out, 0, sizeof(*out));
	memset(&ro, 0, sizeof(ro));
	if (len > STATE_MAX || memchr(buf, '\0', len) != NULL)
		return err_set(
		    e, DBPKI_E_CONFIG, "%s: not a rollover state file", what);
	if ((copy = strndup(buf, len)) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	for (line = copy; line != NULL && *line != '\0'; line = nl) {
		lineno++;
		if ((nl = strchr(line, '\n')) != NULL)
			*nl++ = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		if (parse_line(line, &ro, seen, &k) != 0) {
			free(copy);
			return err_set(e, DBPKI_E_CONFIG,
			    "%s:%d: malformed line (key %s); the rollover "
			    "state is written by dbpki only: restore it or "
			    "see docs/ca-rollover.md",
			    what, lineno, k < K_N ? state_keys[k] : "unknown");
		}
	}
	free(copy);
	for (i = 0; i < K_N; i++)
		if (!seen[i])
			return err_set(e, DBPKI_E_CONFIG, "%s: no %s line",
			    what, state_keys[i]);
	/* Each flag belongs to a stage: a state that says otherwise was not
	 * written by dbpki. */
	if ((ro.bundle_new_only && !ro.signer_new) ||
	    (ro.signer_new && ro.done < 1) ||
	    (ro.bundle_new_only && ro.done < 2) ||
	    strcmp(ro.old_serial, ro.new_serial) == 0)
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: inconsistent state (done %d, signer %s, bundle %s)",
		    what, ro.done, ro.signer_new ? "new" : "old",
		    ro.bundle_new_only ? "new" : "both");
	ro.active = 1;
	*out = ro;
	return 0;
}

int
pki_rollover_format(const struct pki_rollover *ro, char *out, size_t outsz)
{
	int n = snprintf(out, outsz,
	    STATE_HEADER "done=%d\nsigner=%s\nbundle=%s\nold_serial=%s\n"
			 "new_serial=%s\nstarted=%s\n",
	    ro->done, ro->signer_new ? "new" : "old",
	    ro->bundle_new_only ? "new" : "both", ro->old_serial,
	    ro->new_serial, ro->started);

	return n < 0 || (size_t)n >= outsz ? -1 : n;
}

int
pki_rollover_load(
    const struct dbpki_cluster *c, struct pki_rollover *ro, struct dbpki_err *e)
{
	char p[CFG_PATH], *buf = NULL;
	size_t len = 0;
	int r;

	memset(ro, 0, sizeof(*ro));
	if (pki_store_path(c, p, PKI_ROLLOVER_STATE) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	r = util_read_file(p, STATE_MAX,
	    UTIL_RF_NOSYMLINK | UTIL_RF_NOTWRITABLE, &buf, &len, e);
	if (r == DBPKI_E_SYS && errno == ENOENT)
		return 0;
	if (r != 0)
		return r;
	r = pki_rollover_parse(buf, len, p, ro, e);
	free(buf);
	return r;
}

int
pki_rollover_save(const struct dbpki_cluster *c, const struct pki_rollover *ro,
    struct dbpki_err *e)
{
	char p[CFG_PATH], buf[1024];
	int n;

	if (pki_store_path(c, p, "ca/rollover") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if (util_mkdirs(p, UTIL_STORE_DIR, e) != 0)
		return e->code;
	if (pki_store_path(c, p, PKI_ROLLOVER_STATE) != 0 ||
	    (n = pki_rollover_format(ro, buf, sizeof(buf))) < 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	return util_write_atomic(p, buf, (size_t)n, 0644, e);
}

int
pki_rollover_running(const struct pki_rollover *ro)
{
	return ro->active && ro->done < PKI_ROLLOVER_STAGES;
}

void
pki_rollover_describe(const struct pki_rollover *ro, char *out, size_t outsz)
{
	if (!ro->active) {
		snprintf(out, outsz, "CA rollover: none");
		return;
	}
	snprintf(out, outsz,
	    "CA rollover: stage %d of %d done (new CA serial %s, started %s)%s",
	    ro->done, PKI_ROLLOVER_STAGES, ro->new_serial, ro->started,
	    ro->done == PKI_ROLLOVER_STAGES ? ": complete" : "");
}

/* ---- what the rest of the store asks ------------------------------------ */

int
pki_rollover_bundle(X509 *oldca, X509 *newca, unsigned char **out, size_t *len,
    struct dbpki_err *e)
{
	unsigned char *a = NULL, *b = NULL, *all;
	size_t la = 0, lb = 0;
	int r;

	*out = NULL;
	*len = 0;
	if ((r = pki_cert_to_pem(oldca, &a, &la, e)) != 0 ||
	    (r = pki_cert_to_pem(newca, &b, &lb, e)) != 0)
		goto out;
	if ((all = malloc(la + lb + 1)) == NULL) {
		r = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(all, a, la);
	memcpy(all + la, b, lb);
	all[la + lb] = '\0';
	*out = all;
	*len = la + lb;
out:
	free(a);
	free(b);
	return r;
}

int
pki_rollover_ca_dir(
    const struct dbpki_cluster *c, char dir[16], struct dbpki_err *e)
{
	struct pki_rollover ro;
	int r;

	if ((r = pki_rollover_load(c, &ro, e)) != 0)
		return r;
	return util_fmt(dir, 16, "%s",
	    pki_rollover_running(&ro) && ro.signer_new ? PKI_ROLLOVER_NEXT
						       : "ca");
}

int
pki_rollover_trust_rel(const struct dbpki_cluster *c, char rel[64],
    int *rollover, struct dbpki_err *e)
{
	struct pki_rollover ro;
	int r;

	*rollover = 0;
	if ((r = pki_rollover_load(c, &ro, e)) != 0)
		return r;
	if (!pki_rollover_running(&ro))
		return util_fmt(rel, 64, "ca/dbca.crt");
	*rollover = 1;
	return util_fmt(rel, 64, "%s",
	    ro.bundle_new_only ? PKI_ROLLOVER_NEXT "/dbca.crt"
			       : PKI_ROLLOVER_BUNDLE);
}

int
pki_rollover_trust_file(const struct dbpki_cluster *c, char path[CFG_PATH],
    char serial[PKI_SERIAL_HEX], struct dbpki_err *e)
{
	struct pki_rollover ro;
	char rel[64];
	int r, rolling;

	/* An imported corporate CA is not rolled over by dbpki. */
	if (pki_trust_imported(c))
		return 0;
	if ((r = pki_rollover_trust_rel(c, rel, &rolling, e)) != 0 || !rolling)
		return r;
	if ((r = pki_rollover_load(c, &ro, e)) != 0)
		return r;
	if (pki_store_path(c, path, "%s", rel) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	return util_fmt(serial, PKI_SERIAL_HEX, "%s", ro.new_serial);
}

/* ---- stage 1: the new CA beside the old --------------------------------- */

static int
load_rel(const struct dbpki_cluster *c, const char *rel, X509 **x,
    struct dbpki_err *e)
{
	char p[CFG_PATH];

	if (pki_store_path(c, p, "%s", rel) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	return pki_cert_load_pem(p, x, e);
}

static int
next_path(const struct dbpki_cluster *c, char p[CFG_PATH], const char *name,
    struct dbpki_err *e)
{
	if (pki_store_path(c, p, PKI_ROLLOVER_NEXT "%s", name) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	return 0;
}

/* A new self-signed CA in ca/next: the inventory's key type and validity,
 * and the CN with the day appended, so that old and new never share a
 * subject (chain building then cannot pick the wrong one). */
static int
next_ca_create(const struct dbpki_cluster *c, X509 **out, struct dbpki_err *e)
{
	struct pki_cakey_new nk = {0};
	struct pki_spec *s = NULL;
	char p[CFG_PATH], day[32], stamp[UTIL_STAMP_LEN], uri[CFG_PATH];
	unsigned char *cpem = NULL;
	size_t clen = 0;
	int r;

	*out = NULL;
	util_iso8601(util_now(), day);
	day[10] = '\0';
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	s->profile = PKI_PROFILE_CA;
	s->validity = c->ca_validity;
	if (util_fmt(s->cn, 65, "%s %s", c->ca_common_name, day) != 0 &&
	    util_fmt(s->cn, 65, "dbca %s", day) != 0) {
		r = err_set(e, DBPKI_E_INTERNAL, "CA name too long");
		goto out;
	}
	/* A token key: the same token, the inventory's label with the time
	 * appended (dbca-20261204T175300Z), so the old key stays usable
	 * until stage 3 and two rollovers never collide. */
	if (c->ca_new_key_uri[0] != '\0')
		util_fmt(uri, sizeof(uri), "%s", c->ca_new_key_uri);
	else if (c->ca_key.uri[0] != '\0') {
		util_stamp(stamp);
		stamp[16] = '\0'; /* YYYYMMDDTHHMMSSZ */
		if (pki_p11_derive(c->ca_key.uri, stamp, uri, sizeof(uri)) !=
		    0) {
			r = err_set(e, DBPKI_E_CONFIG,
			    "[ca] key: the URI names no object=");
			goto out;
		}
	}
	if ((r = pki_ca_pass_ready(c, e)) != 0 ||
	    (r = pki_cakey_generate(
		 c, c->ca_key.uri[0] != '\0' ? uri : NULL, &nk, e)) != 0 ||
	    (r = pki_cert_build(s, nk.k, NULL, nk.k, out, e)) != 0 ||
	    (r = pki_cert_to_pem(*out, &cpem, &clen, e)) != 0)
		goto out;
	/* Key first, as for ca init: a certificate is never without it. */
	if ((r = next_path(c, p, "", e)) != 0 ||
	    (r = util_mkdirs(p, 0700, e)) != 0 ||
	    (r = next_path(c, p, "/", e)) != 0 ||
	    (r = util_fmt(
		 p + strlen(p), CFG_PATH - strlen(p), "%s", nk.name)) != 0 ||
	    (r = util_write_atomic(p, nk.blob, nk.len, nk.mode, e)) != 0 ||
	    (r = next_path(c, p, "/dbca.crt", e)) != 0)
		goto out;
	r = util_write_atomic(p, cpem, clen, 0644, e);
out:
	pki_cakey_new_free(&nk);
	free(cpem);
	free(s);
	if (r != 0) {
		X509_free(*out);
		*out = NULL;
	}
	return r;
}

/* The new CA an earlier stage 1 made, when its certificate is there (it
 * is written after its key); else a fresh one. */
static int
next_ca(const struct dbpki_cluster *c, const struct pki_rollover *ro,
    X509 **out, struct dbpki_err *e)
{
	char p[CFG_PATH];
	struct stat st;

	if (pki_store_path(c, p, PKI_ROLLOVER_NEXT "/dbca.crt") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if (lstat(p, &st) == 0 && (pki_rollover_running(ro) || !ro->active))
		return pki_cert_load_pem(p, out, e);
	return next_ca_create(c, out, e);
}

int
pki_rollover_begin(
    const struct dbpki_cluster *c, struct pki_rollover *ro, struct dbpki_err *e)
{
	unsigned char *pem = NULL;
	X509 *oldca = NULL, *newca = NULL;
	char p[CFG_PATH];
	size_t len = 0;
	int r;

	if ((r = pki_rollover_load(c, ro, e)) != 0)
		return r;
	/* The old CA is ca/dbca.crt until stage 3 finishes. */
	if ((r = load_rel(c, "ca/dbca.crt", &oldca, e)) != 0 ||
	    (r = next_ca(c, ro, &newca, e)) != 0 ||
	    (r = pki_rollover_bundle(oldca, newca, &pem, &len, e)) != 0)
		goto out;
	if (pki_store_path(c, p, "ca/rollover") != 0) {
		r = err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		goto out;
	}
	if ((r = util_mkdirs(p, UTIL_STORE_DIR, e)) != 0)
		goto out;
	if (pki_store_path(c, p, PKI_ROLLOVER_BUNDLE) != 0) {
		r = err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		goto out;
	}
	if ((r = util_write_atomic(p, pem, len, 0644, e)) != 0)
		goto out;
	if (!pki_rollover_running(ro)) {
		memset(ro, 0, sizeof(*ro));
		ro->active = 1;
		pki_cert_serial_hex(oldca, ro->old_serial);
		pki_cert_serial_hex(newca, ro->new_serial);
		util_iso8601(util_now(), ro->started);
		r = pki_rollover_save(c, ro, e);
	}
out:
	free(pem);
	X509_free(oldca);
	X509_free(newca);
	return r;
}

/* ---- stage 3: the new CA becomes the store's dbca ----------------------- */

/* Rename ca/next/<name> to ca/<name>; already moved is fine. */
static int
move_next(const struct dbpki_cluster *c, const char *name, struct dbpki_err *e)
{
	char from[CFG_PATH], to[CFG_PATH];

	if (pki_store_path(c, from, PKI_ROLLOVER_NEXT "/%s", name) != 0 ||
	    pki_store_path(c, to, "ca/%s", name) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if (rename(from, to) == 0 || errno == ENOENT)
		return 0;
	return err_sys(e, "cannot move %s to %s", from, to);
}

/* The index gets the new CA as its active "ca" entry, once. */
static int
record_new_ca(const struct dbpki_cluster *c, const struct pki_rollover *ro,
    struct dbpki_err *e)
{
	struct pki_index idx = {0};
	struct pki_entry ent;
	X509 *x = NULL;
	size_t i;
	int r;

	if ((r = load_rel(c, "ca/dbca.crt", &x, e)) != 0 ||
	    (r = pki_index_load(c, &idx, e)) != 0)
		goto out;
	for (i = 0; i < idx.n; i++)
		if (strcmp(idx.v[i].serial, ro->new_serial) == 0)
			goto out;
	pki_entry_fill(&ent, x, "ca", "-");
	if ((r = pki_index_add(&idx, &ent, e)) == 0)
		r = pki_index_save(c, &idx, e);
out:
	pki_index_free(&idx);
	X509_free(x);
	return r;
}

int
pki_rollover_finish(const struct dbpki_cluster *c, struct pki_rollover *ro,
    char archived[CFG_PATH], struct dbpki_err *e)
{
	char serial[PKI_SERIAL_HEX], p[CFG_PATH];
	struct stat st;
	X509 *cur = NULL;
	int r;

	archived[0] = '\0';
	if (pki_store_path(c, p, "ca/dbca.crt") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	/* Gone already: an interrupted stage 3 archived it. */
	if (lstat(p, &st) == 0) {
		if ((r = pki_cert_load_pem(p, &cur, e)) != 0)
			return r;
		pki_cert_serial_hex(cur, serial);
		X509_free(cur);
		if (strcmp(serial, ro->old_serial) == 0 &&
		    (r = pki_ca_archive(c, archived, e)) != 0)
			return err_wrap(e, "stage 3: archiving the old CA");
	}
	/* Key first: ca/dbca.crt without its key would be a CA that cannot
	 * sign. */
	if ((r = move_next(c, "dbca.key", e)) != 0 ||
	    (r = move_next(c, PKI_CA_P11_REF, e)) != 0 ||
	    (r = move_next(c, "dbca.crt", e)) != 0 ||
	    (r = record_new_ca(c, ro, e)) != 0)
		return err_wrap(e, "stage 3: making the new CA the store's");
	if (pki_store_path(c, p, PKI_ROLLOVER_NEXT) == 0)
		(void)rmdir(p);
	ro->done = PKI_ROLLOVER_STAGES;
	return pki_rollover_save(c, ro, e);
}
