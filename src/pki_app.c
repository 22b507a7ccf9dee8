/* pki_app: client certificates for applications (`dbpki issue-client`),
 * recorded in the store as kind "app" and handed over as a directory with
 * a ready pg_service.conf entry (docs/revocation.md). */
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROLE_MAX 63 /* NAMEDATALEN - 1 */

/* What the directory holds, in the order it is written. */
static const char *const bundle_files[] = {
    "dbca.crt", "client.crt", "client.key", "pg_service.conf"};
#define N_BUNDLE (sizeof(bundle_files) / sizeof(bundle_files[0]))

int
pki_valid_role(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > ROLE_MAX ||
	    !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (i = 0; i < n; i++)
		if (!(isascii((unsigned char)s[i]) &&
			(isalnum((unsigned char)s[i]) || s[i] == '_')))
			return 0;
	return 1;
}

/* The checks that need nothing but the arguments and the inventory. */
static int
app_refuse(const struct dbpki_cluster *c, const char *role, const char *dir,
    const char *dbname, struct dbpki_err *e)
{
	struct stat st;
	char why[160];

	if (c->platform != PLATFORM_POSTGRES)
		return err_set(e, DBPKI_E_USAGE,
		    "issue-client writes a PostgreSQL "
		    "service entry; platform %s has none",
		    cfg_platform_name(c->platform));
	if (!pki_valid_role(role))
		return err_set(e, DBPKI_E_USAGE,
		    "'%.80s' is not a role name dbpki "
		    "issues for: a letter or _, then letters, digits or _, at "
		    "most %d",
		    role, ROLE_MAX);
	/* The superuser, the cluster's own identity: never an application's
	 * (the same rule as `dbpki sign --profile client`). */
	if (pki_role_privileged(c, role, why, sizeof(why)))
		return err_set(e, DBPKI_E_USAGE,
		    "'%s' is %s; an application gets a role of its own", role,
		    why);
	if (!pki_valid_role(dbname))
		return err_set(e, DBPKI_E_USAGE,
		    "--dbname '%.80s': letters, digits "
		    "or _, starting with a letter or _, at most %d",
		    dbname, ROLE_MAX);
	if (!util_valid_abspath(dir))
		return err_set(e, DBPKI_E_USAGE,
		    "--out '%.200s': the directory's "
		    "path may hold only [A-Za-z0-9_./@+:-], no '..' (it goes "
		    "into pg_service.conf)",
		    dir);
	if (lstat(dir, &st) == 0)
		return err_set(e, DBPKI_E_USAGE,
		    "%s already exists; give --out a "
		    "directory that does not exist yet (nothing was issued)",
		    dir);
	if (pki_trust_imported(c))
		return err_set(e, DBPKI_E_USAGE,
		    "the store trusts an imported CA: "
		    "dbca signs no leaves; have that CA sign a CSR from: dbpki "
		    "csr --cn %s --key-type %s --out PREFIX",
		    role, cfg_key_name(c->client_key.alg));
	return 0;
}

/* A relative --out is taken from the current directory. */
static int
abs_dir(const char *dir, char out[CFG_PATH], struct dbpki_err *e)
{
	char cwd[CFG_PATH];

	if (dir[0] == '/')
		return util_fmt(out, CFG_PATH, "%s", dir) == 0
			   ? 0
			   : err_set(e, DBPKI_E_USAGE, "--out: path too long");
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return err_sys(e, "cannot resolve --out %.200s", dir);
	if (util_fmt(
		out, CFG_PATH, "%s/%s", strcmp(cwd, "/") ? cwd : "", dir) != 0)
		return err_set(e, DBPKI_E_USAGE, "--out: path too long");
	return 0;
}

struct app {
	X509 *cert;
	unsigned char *kpem, *cpem, *capem;
	size_t klen, clen, calen;
	char serial[PKI_SERIAL_HEX];
};

static void
app_free(struct app *a)
{
	X509_free(a->cert);
	if (a->kpem != NULL)
		util_freezero(a->kpem, a->klen + 1);
	free(a->cpem);
	free(a->capem);
	memset(a, 0, sizeof(*a));
}

static int
app_build(const struct dbpki_cluster *c, const char *role, struct app *a,
    struct dbpki_err *e)
{
	struct pki_spec s;
	struct pki_ca *ca = NULL;
	EVP_PKEY *k = NULL;
	int r;

	pki_spec_client(c, &s);
	if (util_fmt(s.cn, sizeof(s.cn), "%s", role) != 0)
		return err_set(e, DBPKI_E_INTERNAL, "role too long");
	if ((r = pki_ca_load(c, &ca, e)) != 0 ||
	    (r = pki_key_generate(c->client_key.alg, &k, e)) != 0 ||
	    (r = pki_cert_build(&s, k, ca->cert, ca->key, &a->cert, e)) != 0 ||
	    (r = pki_key_to_pem(k, NULL, &a->kpem, &a->klen, e)) != 0 ||
	    (r = pki_cert_to_pem(a->cert, &a->cpem, &a->clen, e)) != 0 ||
	    (r = pki_cert_to_pem(ca->cert, &a->capem, &a->calen, e)) != 0)
		goto out;
	pki_cert_serial_hex(a->cert, a->serial);
out:
	EVP_PKEY_free(k);
	pki_ca_free(ca);
	return r;
}

/* Key and certificate into the store, then the index: like `issue`, an
 * index line never names a file that is not there. */
static int
app_record(const struct dbpki_cluster *c, const char *role, const struct app *a,
    struct pki_entry *ent, char prev[PKI_SERIAL_HEX], struct dbpki_err *e)
{
	struct pki_index idx = {0};
	struct pki_entry *old;
	char kp[CFG_PATH], cp[CFG_PATH];
	int r;

	prev[0] = '\0';
	if ((r = pki_store_prepare(c, e)) != 0)
		return r;
	if (pki_store_path(c, kp, "keys/%s.key", a->serial) != 0 ||
	    pki_store_path(c, cp, "issued/%s.crt", a->serial) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = util_write_atomic(kp, a->kpem, a->klen, 0600, e)) != 0 ||
	    (r = util_write_atomic(cp, a->cpem, a->clen, 0644, e)) != 0 ||
	    (r = pki_index_load(c, &idx, e)) != 0)
		goto out;
	if ((old = pki_index_active(&idx, "app", role)) != NULL) {
		old->status = PKI_SUPERSEDED;
		memcpy(prev, old->serial, PKI_SERIAL_HEX);
	}
	pki_entry_fill(ent, a->cert, "app", role);
	if ((r = pki_index_add(&idx, ent, e)) != 0 ||
	    (r = pki_index_save(c, &idx, e)) != 0)
		goto out;
	/* The application holds its own copy; the store needs it no more. */
	if (prev[0] != '\0' && pki_store_path(c, kp, "keys/%s.key", prev) == 0)
		(void)unlink(kp);
out:
	pki_index_free(&idx);
	if (r != 0) {
		(void)unlink(kp);
		(void)unlink(cp);
	}
	return r;
}

static int
service_text(const struct dbpki_cluster *c, const char *role, const char *dir,
    const char *dbname, const struct app *a, char **out, size_t *len,
    struct dbpki_err *e)
{
	const struct cfg_node *p = cfg_primary(c);
	char until[32];
	FILE *f;

	util_iso8601(pki_cert_not_after(a->cert), until);
	if ((f = open_memstream(out, len)) == NULL)
		return err_sys(e, "cannot build pg_service.conf");
	fprintf(f,
	    "# written by dbpki issue-client: role %s of cluster %s\n"
	    "# certificate serial %s, valid until %s\n"
	    "# use: PGSERVICEFILE=%s/pg_service.conf psql service=%s\n"
	    "[%s]\n"
	    "host=%s\nhostaddr=%s\nport=%d\ndbname=%s\nuser=%s\n"
	    "sslmode=verify-full\n"
	    "sslrootcert=%s/dbca.crt\nsslcert=%s/client.crt\n"
	    "sslkey=%s/client.key\n"
	    "gssencmode=disable\n",
	    role, c->name, a->serial, until, dir, role, role, p->host,
	    p->address, p->pg.port, dbname, role, dir, dir, dir);
	if (fclose(f) != 0) {
		free(*out);
		*out = NULL;
		return err_sys(e, "cannot build pg_service.conf");
	}
	return 0;
}

/* The directory handed to the application team; on failure it is gone. */
static int
app_bundle(const struct dbpki_cluster *c, const char *role, const char *dir,
    const char *dbname, const struct app *a, struct dbpki_err *e)
{
	char p[CFG_PATH], *svc = NULL;
	size_t slen = 0, i, done = 0;
	int r;

	if ((r = service_text(c, role, dir, dbname, a, &svc, &slen, e)) != 0)
		return r;
	const void *data[N_BUNDLE] = {a->capem, a->cpem, a->kpem, svc};
	size_t lens[N_BUNDLE] = {a->calen, a->clen, a->klen, slen};
	mode_t modes[N_BUNDLE] = {0644, 0644, 0600, 0644};

	for (i = 0; i < N_BUNDLE && r == 0; i++) {
		if (util_fmt(p, sizeof(p), "%s/%s", dir, bundle_files[i]) != 0)
			r = err_set(e, DBPKI_E_USAGE, "--out: path too long");
		else if ((r = util_write_atomic(
			      p, data[i], lens[i], modes[i], e)) == 0)
			done++;
	}
	free(svc);
	if (r == 0)
		return util_fsync_dir(dir, e);
	for (i = 0; i < done; i++)
		if (util_fmt(p, sizeof(p), "%s/%s", dir, bundle_files[i]) == 0)
			(void)unlink(p);
	(void)rmdir(dir);
	return r;
}

int
pki_issue_app(const struct dbpki_cluster *c, const char *role, const char *dir,
    const char *dbname, struct pki_entry *ent, char prev[PKI_SERIAL_HEX],
    struct dbpki_err *e)
{
	struct app a;
	char d[CFG_PATH];
	int r;

	memset(&a, 0, sizeof(a));
	prev[0] = '\0';
	if ((r = abs_dir(dir, d, e)) != 0 ||
	    (r = app_refuse(c, role, d, dbname, e)) != 0 ||
	    (r = app_build(c, role, &a, e)) != 0)
		goto out;
	/* Claim the directory before anything is recorded: an --out that
	 * appeared meanwhile stops the run with nothing issued. */
	if (mkdir(d, 0700) != 0) {
		r = errno == EEXIST ? err_set(e, DBPKI_E_USAGE,
					  "%s already exists; nothing was "
					  "issued",
					  d)
				    : err_sys(e, "cannot create %s", d);
		goto out;
	}
	if ((r = app_record(c, role, &a, ent, prev, e)) != 0) {
		(void)rmdir(d);
		goto out;
	}
	if ((r = app_bundle(c, role, d, dbname, &a, e)) == 0) {
		log_info("issued  app    %-20s serial %s until %s", role,
		    ent->serial, ent->not_after);
		log_info(
		    "wrote %s: dbca.crt, client.crt, client.key (0600), "
		    "pg_service.conf; use: PGSERVICEFILE=%s/pg_service.conf "
		    "psql service=%s",
		    d, d, role);
	} else
		err_wrap(e,
		    "the certificate %s is recorded in the store, but %s "
		    "could not be written; run again with another --out (the "
		    "new certificate supersedes it), or revoke it",
		    a.serial, d);
out:
	app_free(&a);
	return r;
}

/* ---- applications that `renew` keeps renewed ----------------------------
 *
 * state_dir/app-renew.tsv: one line per role recorded with `issue-client
 * --renew-with-cluster`: role, the --out directory (absolute), dbname.
 * Rewritten whole and atomically, like index.tsv. */

#define APP_RENEW_FILE "app-renew.tsv"
#define APP_RENEW_MAX  (64 * 1024 * 1024)

static int
rec_parse(const struct dbpki_cluster *c, char *line, int lineno,
    struct pki_app_rec *r, struct dbpki_err *e)
{
	char *dir, *db;

	if ((dir = strchr(line, '\t')) == NULL ||
	    (db = strchr(dir + 1, '\t')) == NULL)
		goto bad;
	*dir++ = '\0';
	*db++ = '\0';
	if (!pki_valid_role(line) || !util_valid_abspath(dir) ||
	    !pki_valid_role(db) ||
	    util_fmt(r->role, sizeof(r->role), "%s", line) != 0 ||
	    util_fmt(r->dir, sizeof(r->dir), "%s", dir) != 0 ||
	    util_fmt(r->dbname, sizeof(r->dbname), "%s", db) != 0)
		goto bad;
	return 0;
bad:
	return err_set(e, DBPKI_E_CONFIG,
	    "%s/%s:%d: expected role, directory and database name, "
	    "tab-separated",
	    c->state_dir, APP_RENEW_FILE, lineno);
}

int
pki_app_recs_load(const struct dbpki_cluster *c, struct pki_app_rec **v,
    size_t *n, struct dbpki_err *e)
{
	char p[CFG_PATH], *text = NULL, *line, *save = NULL;
	size_t len = 0, cap = 0;
	int r = 0, lineno = 0;

	*v = NULL;
	*n = 0;
	if (pki_store_path(c, p, APP_RENEW_FILE) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if (access(p, F_OK) != 0 && errno == ENOENT)
		return 0;
	if ((r = util_read_file(
		 p, APP_RENEW_MAX, UTIL_RF_NOSYMLINK, &text, &len, e)) != 0)
		return r;
	for (line = strtok_r(text, "\n", &save); line != NULL && r == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (*n == cap) {
			struct pki_app_rec *nv;

			cap = cap ? 2 * cap : 8;
			if ((nv = realloc(*v, cap * sizeof(*nv))) == NULL) {
				r = err_set(e, DBPKI_E_NOMEM, "out of memory");
				break;
			}
			*v = nv;
		}
		if ((r = rec_parse(c, line, lineno, &(*v)[*n], e)) == 0)
			(*n)++;
	}
	free(text);
	if (r != 0) {
		free(*v);
		*v = NULL;
		*n = 0;
	}
	return r;
}

static int
recs_save(const struct dbpki_cluster *c, const struct pki_app_rec *v, size_t n,
    struct dbpki_err *e)
{
	char p[CFG_PATH], *text = NULL;
	size_t len = 0, i;
	FILE *f;
	int r;

	if (pki_store_path(c, p, APP_RENEW_FILE) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((f = open_memstream(&text, &len)) == NULL)
		return err_sys(e, "cannot build %s", p);
	fprintf(f,
	    "# dbpki: application certificates that dbpki renew reissues "
	    "(issue-client --renew-with-cluster)\n# role\tdirectory\tdbname\n");
	for (i = 0; i < n; i++)
		fprintf(f, "%s\t%s\t%s\n", v[i].role, v[i].dir, v[i].dbname);
	if (fclose(f) != 0) {
		free(text);
		return err_sys(e, "cannot build %s", p);
	}
	r = util_write_atomic(p, text, len, 0600, e);
	free(text);
	return r;
}

int
pki_app_mark(const struct dbpki_cluster *c, const char *role, const char *dir,
    const char *dbname, int on, struct dbpki_err *e)
{
	struct pki_app_rec *v = NULL, *nv;
	size_t n = 0, i, k = 0;
	char d[CFG_PATH];
	int r;

	if ((r = abs_dir(dir, d, e)) != 0 ||
	    (r = pki_app_recs_load(c, &v, &n, e)) != 0)
		return r;
	/* The latest issue-client decides: drop the role's old line. */
	for (i = 0; i < n; i++)
		if (strcmp(v[i].role, role) != 0)
			v[k++] = v[i];
	if (on) {
		if ((nv = realloc(v, (k + 1) * sizeof(*v))) == NULL) {
			free(v);
			return err_set(e, DBPKI_E_NOMEM, "out of memory");
		}
		v = nv;
		memset(&v[k], 0, sizeof(v[k]));
		util_fmt(v[k].role, sizeof(v[k].role), "%s", role);
		util_fmt(v[k].dir, sizeof(v[k].dir), "%s", d);
		util_fmt(v[k].dbname, sizeof(v[k].dbname), "%s", dbname);
		k++;
	}
	r = (k == n && !on) ? 0 : recs_save(c, v, k, e);
	free(v);
	return r;
}

/* Replace each file of the handed-over directory atomically.  The set is
 * not one atomic change: a connection that starts in the instant between
 * client.crt and client.key fails once, the next one works. */
static int
app_rewrite(const struct dbpki_cluster *c, const struct pki_app_rec *rec,
    const struct app *a, struct dbpki_err *e)
{
	char p[CFG_PATH], *svc = NULL;
	size_t slen = 0, i;
	int r;

	if ((r = service_text(
		 c, rec->role, rec->dir, rec->dbname, a, &svc, &slen, e)) != 0)
		return r;
	const void *data[N_BUNDLE] = {a->capem, a->kpem, a->cpem, svc};
	const char *names[N_BUNDLE] = {
	    "dbca.crt", "client.key", "client.crt", "pg_service.conf"};
	size_t lens[N_BUNDLE] = {a->calen, a->klen, a->clen, slen};
	mode_t modes[N_BUNDLE] = {0644, 0600, 0644, 0644};

	for (i = 0; i < N_BUNDLE && r == 0; i++)
		if (util_fmt(p, sizeof(p), "%s/%s", rec->dir, names[i]) != 0)
			r = err_set(
			    e, DBPKI_E_CONFIG, "%s: path too long", rec->dir);
		else
			r = util_write_atomic(p, data[i], lens[i], modes[i], e);
	free(svc);
	return r;
}

int
pki_app_reissue(const struct dbpki_cluster *c, const struct pki_app_rec *rec,
    struct pki_entry *ent, char prev[PKI_SERIAL_HEX], int *rewrote,
    struct dbpki_err *e)
{
	struct app a;
	struct stat st;
	int r;

	memset(&a, 0, sizeof(a));
	*rewrote = 0;
	if ((r = app_build(c, rec->role, &a, e)) != 0 ||
	    (r = app_record(c, rec->role, &a, ent, prev, e)) != 0)
		goto out;
	/* Only a real directory: a symlink put there since is not followed. */
	if (lstat(rec->dir, &st) != 0 || !S_ISDIR(st.st_mode))
		goto out;
	if ((r = app_rewrite(c, rec, &a, e)) != 0)
		err_wrap(e,
		    "the new certificate %s for %s is recorded in the store, "
		    "but %s could not be rewritten",
		    a.serial, rec->role, rec->dir);
	else
		*rewrote = 1;
out:
	app_free(&a);
	return r;
}
