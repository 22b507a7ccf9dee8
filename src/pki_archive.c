/* pki_archive: put an expired dbca out of the way without losing it, so a
 * new one can be created (rotate).  Nothing in the store is ever deleted:
 * the old CA's certificate and key are renamed into ca/archive/<time>/. */
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* A fresh ca/archive/<UTC time>[-N] directory (0700) into dir. */
static int
archive_dir(
    const struct dbpki_cluster *c, char dir[CFG_PATH], struct dbpki_err *e)
{
	char parent[CFG_PATH], stamp[UTIL_STAMP_LEN];
	int i, r;

	util_stamp(stamp);
	if (pki_store_path(c, parent, "ca/archive") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = util_mkdirs(parent, 0700, e)) != 0)
		return r;
	for (i = 0; i < 100; i++) {
		if ((i == 0 ? util_fmt(dir, CFG_PATH, "%s/%s", parent, stamp)
			    : util_fmt(dir, CFG_PATH, "%s/%s-%d", parent, stamp,
				  i)) != 0)
			return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
		if (mkdir(dir, 0700) == 0)
			return 0;
		if (errno != EEXIST)
			return err_sys(e, "cannot create %s", dir);
	}
	return err_set(e, DBPKI_E_EXISTS,
	    "%s/%s-*: too many archives this "
	    "second",
	    parent, stamp);
}

/* Rename ca/<name> into dir; a file that is already gone is fine (an
 * earlier, interrupted archive moved it). */
static int
move_one(const struct dbpki_cluster *c, const char *dir, const char *name,
    int *moved, struct dbpki_err *e)
{
	char from[CFG_PATH], to[CFG_PATH];

	if (pki_store_path(c, from, "ca/%s", name) != 0 ||
	    util_fmt(to, sizeof(to), "%s/%s", dir, name) != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if (rename(from, to) == 0) {
		(*moved)++;
		return 0;
	}
	if (errno == ENOENT)
		return 0;
	return err_sys(e, "cannot move %s to %s", from, to);
}

/* The index no longer calls the archived CA active. */
static int
supersede_ca(const struct dbpki_cluster *c, struct dbpki_err *e)
{
	struct pki_index idx = {0};
	size_t i;
	int r;

	if ((r = pki_index_load(c, &idx, e)) != 0)
		return r;
	for (i = 0; i < idx.n; i++)
		if (strcmp(idx.v[i].kind, "ca") == 0 &&
		    idx.v[i].status == PKI_ACTIVE)
			idx.v[i].status = PKI_SUPERSEDED;
	r = pki_index_save(c, &idx, e);
	pki_index_free(&idx);
	return r;
}

int
pki_ca_archive(
    const struct dbpki_cluster *c, char out[CFG_PATH], struct dbpki_err *e)
{
	char cadir[CFG_PATH];
	int r, moved = 0;

	if (pki_store_path(c, cadir, "ca") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = archive_dir(c, out, e)) != 0)
		return r;
	/* Key first: a certificate left without its key reads as "no
	 * usable CA"; a key left without its certificate would block
	 * `ca init` with a confusing message. */
	if ((r = move_one(c, out, "dbca.key", &moved, e)) != 0 ||
	    (r = move_one(c, out, PKI_CA_P11_REF, &moved, e)) != 0 ||
	    (r = move_one(c, out, "dbca.crt", &moved, e)) != 0)
		return err_wrap(e, "archiving the CA");
	if ((r = util_fsync_dir(out, e)) != 0 ||
	    (r = util_fsync_dir(cadir, e)) != 0)
		return r;
	if (moved == 0)
		return err_set(
		    e, DBPKI_E_NOCA, "no CA files in %s to archive", cadir);
	return supersede_ca(c, e);
}
