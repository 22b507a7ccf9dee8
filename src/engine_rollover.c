/* engine_rollover: `dbpki ca rollover`, a new dbca without downtime
 * (docs/ca-rollover.md).
 *
 * Three stages, each verified before the next may run, the cluster serving
 * throughout: trust old + new, then leaves from new, then trust only new.
 * Each stage is "change the store, ship a release, reload, verify": that
 * is renew's path (playbooks/ca-rollover.ini has renew's steps), so a
 * failure rolls every node back to the release it had.  The store says
 * which CA signs and which bundle ships (pki_rollover.c); the state only
 * advances after the stage verified, so running a stage again redoes it. */
#include "dbpki/engine_int.h"
#include "dbpki/log.h"
#include "dbpki/pg.h"
#include "dbpki/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>

#define ROLLOVER_PLAYBOOK "ca-rollover"

static const char *
inv(const struct dbpki_cluster *c)
{
	return c->path[0] != '\0' ? c->path : "INVENTORY";
}

/* What the rollover does not handle: refuse before anything changes. */
static int
refuse_unsupported(const struct dbpki_cluster *c, struct dbpki_err *e)
{
	char p[CFG_PATH];
	struct stat st;

	if (c->platform != PLATFORM_POSTGRES)
		return err_set(e, DBPKI_E_USAGE,
		    "ca rollover: only the postgres platform can switch CAs "
		    "without downtime; on cms use: dbpki rotate -c %s",
		    inv(c));
	if (pki_trust_imported(c))
		return err_set(e, DBPKI_E_USAGE,
		    "ca rollover: the store trusts an imported CA "
		    "(state_dir/ca/trusted.pem); its owner rolls it over, "
		    "not dbpki (docs/corporate-ca.md)");
	if (pki_store_path(c, p, "crl/dbca.crl") != 0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if (lstat(p, &st) == 0)
		return err_set(e, DBPKI_E_USAGE,
		    "ca rollover: the store has a CRL (%s); a node checking "
		    "it would refuse every certificate of the CA it does not "
		    "belong to, so a rollover with a CRL is not supported yet "
		    "(docs/ca-rollover.md)",
		    p);
	return 0;
}

/* Stage n may run when stage n-1 is done (a done stage may run again). */
static int
check_order(const struct dbpki_cluster *c, const struct pki_rollover *ro, int n,
    struct dbpki_err *e)
{
	if (n == 1)
		return 0;
	if (!pki_rollover_running(ro))
		return err_set(e, DBPKI_E_USAGE,
		    "ca rollover --stage %d: no rollover is under way%s; "
		    "start one: dbpki ca rollover -c %s --stage 1",
		    n, ro->active ? " (the last one is complete)" : "", inv(c));
	if (ro->done < n - 1)
		return err_set(e, DBPKI_E_USAGE,
		    "ca rollover --stage %d: stage %d is not done (%d of 3 "
		    "done); nothing was changed. Run: dbpki ca rollover -c %s "
		    "--stage %d",
		    n, n - 1, ro->done, inv(c), ro->done + 1);
	return 0;
}

/* ---- what the nodes serve ----------------------------------------------- */

static int
load_new_ca(const struct dbpki_cluster *c, const struct pki_rollover *ro,
    STACK_OF(X509) * *out, struct dbpki_err *e)
{
	char p[CFG_PATH];
	X509 *x = NULL;
	int r;

	*out = NULL;
	/* ca/next until stage 3 moved it, ca/ afterwards. */
	if (pki_store_path(c, p, "%s/dbca.crt",
		ro->done == PKI_ROLLOVER_STAGES ? "ca" : PKI_ROLLOVER_NEXT) !=
	    0)
		return err_set(e, DBPKI_E_CONFIG, "state_dir too long");
	if ((r = pki_cert_load_pem(p, &x, e)) != 0)
		return r;
	if ((*out = sk_X509_new_null()) == NULL || !sk_X509_push(*out, x)) {
		X509_free(x);
		sk_X509_free(*out);
		*out = NULL;
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	}
	return 0;
}

/* engine_verify proved each node serves the serial of its release; this
 * proves, independently of the release, that what it serves chains to
 * the new CA alone for the node's name. */
static int
check_served_new(const struct dbpki_cluster *c, const struct pki_rollover *ro,
    const struct engine_opts *o, struct dbpki_err *e)
{
	STACK_OF(X509) *newca = NULL;
	struct pg_target t;
	X509 *x;
	int i, k, r, skip;

	if ((r = load_new_ca(c, ro, &newca, e)) != 0)
		return r;
	for (i = 0; i < c->n_nodes && r == 0; i++) {
		const struct cfg_node *n = &c->nodes[i];

		for (skip = 0, k = 0; k < o->n_skip; k++)
			skip |= strcmp(o->skip[k], n->name) == 0;
		if (!cfg_is_database(n) || skip)
			continue;
		memset(&t, 0, sizeof(t));
		t.host = n->host;
		t.hostaddr = n->address;
		t.port = n->pg.port;
		t.connect_timeout_s = (int)n->ssh.connect_timeout;
		x = NULL;
		if ((r = pg_peek_cert(&t, &x, e)) == 0 &&
		    (r = pki_verify(
			 x, newca, PKI_PURPOSE_SERVER, n->host, 0, e)) != 0)
			e->code = r = DBPKI_E_VERIFY;
		if (r != 0)
			err_wrap(e,
			    "node %s: its served certificate does not chain "
			    "to the new CA",
			    n->name);
		else
			log_info(
			    "  %-12s new CA     ok      served certificate "
			    "chains to the new CA",
			    n->name);
		X509_free(x);
		ERR_clear_error();
	}
	sk_X509_pop_free(newca, X509_free);
	return r;
}

/* ---- the stages --------------------------------------------------------- */

static int
ship(const struct dbpki_cluster *c, const struct engine_opts *o, int n,
    struct dbpki_err *e)
{
	struct engine_opts ro = *o;

	ro.lock_held = 1;
	if (engine_run(c, ROLLOVER_PLAYBOOK, &ro, e) == 0)
		return 0;
	return err_wrap(e,
	    "ca rollover stage %d: every node was rolled back to the release "
	    "it had and the stage is not done; fix the cause, then run: "
	    "dbpki ca rollover -c %s --stage %d",
	    n, inv(c), n);
}

static int
stage1(const struct dbpki_cluster *c, const struct engine_opts *o,
    struct pki_rollover *ro, struct dbpki_err *e)
{
	int r;

	if ((r = pki_rollover_begin(c, ro, e)) != 0)
		return err_wrap(e, "ca rollover stage 1: the new CA");
	log_info("%s: stage 1: every node trusts the old and the new CA "
		 "(new CA serial %s)",
	    c->name, ro->new_serial);
	if ((r = ship(c, o, 1, e)) != 0)
		return r;
	if (ro->done < 1)
		ro->done = 1;
	return pki_rollover_save(c, ro, e);
}

static int
stage2(const struct dbpki_cluster *c, const struct engine_opts *o,
    struct pki_rollover *ro, struct dbpki_err *e)
{
	int r;

	/* From here on issue and renew sign with the new CA. */
	ro->signer_new = 1;
	if ((r = pki_rollover_save(c, ro, e)) != 0)
		return r;
	log_info("%s: stage 2: every leaf from the new CA", c->name);
	if ((r = pki_issue_all(c, 0, e)) != 0)
		return err_wrap(e, "ca rollover stage 2: issuing");
	if ((r = ship(c, o, 2, e)) != 0 ||
	    (r = check_served_new(c, ro, o, e)) != 0)
		return r;
	if (ro->done < 2)
		ro->done = 2;
	return pki_rollover_save(c, ro, e);
}

static int
stage3(const struct dbpki_cluster *c, const struct engine_opts *o,
    struct pki_rollover *ro, struct dbpki_err *e)
{
	char archived[CFG_PATH];
	struct dbpki_err se;
	int r;

	ro->bundle_new_only = 1;
	if ((r = pki_rollover_save(c, ro, e)) != 0)
		return r;
	log_info("%s: stage 3: the old CA leaves every bundle", c->name);
	if ((r = ship(c, o, 3, e)) != 0) {
		/* The nodes went back to old + new: so do the releases that
		 * renew builds until stage 3 is run again. */
		ro->bundle_new_only = 0;
		err_clear(&se);
		if (pki_rollover_save(c, ro, &se) != 0)
			log_error("%s", se.msg);
		return r;
	}
	if ((r = check_served_new(c, ro, o, e)) != 0 ||
	    (r = pki_rollover_finish(c, ro, archived, e)) != 0)
		return r;
	if (archived[0] != '\0')
		log_info("%s: the old CA is archived in %s", c->name, archived);
	return 0;
}

static int
run_stage(const struct dbpki_cluster *c, int n, const struct engine_opts *o,
    FILE *out, struct dbpki_err *e)
{
	struct pki_rollover ro;
	char line[256];
	int r;

	if ((r = pki_rollover_load(c, &ro, e)) != 0 ||
	    (r = check_order(c, &ro, n, e)) != 0)
		return r;
	if (n == 1)
		r = stage1(c, o, &ro, e);
	else if (n == 2)
		r = stage2(c, o, &ro, e);
	else
		r = stage3(c, o, &ro, e);
	if (r != 0)
		return r;
	pki_rollover_describe(&ro, line, sizeof(line));
	fprintf(out, "%s\n", line);
	fflush(out);
	return 0;
}

/* Without --stage: the stages not done yet, or all three afresh. */
static int
run_all(const struct dbpki_cluster *c, const struct engine_opts *o, FILE *out,
    struct dbpki_err *e)
{
	struct pki_rollover ro;
	int n, r;

	if ((r = pki_rollover_load(c, &ro, e)) != 0)
		return r;
	n = pki_rollover_running(&ro) ? ro.done + 1 : 1;
	for (; n <= PKI_ROLLOVER_STAGES; n++)
		if ((r = run_stage(c, n, o, out, e)) != 0)
			return r;
	return 0;
}

int
engine_ca_rollover(const struct dbpki_cluster *c, int stage,
    const struct engine_opts *o, FILE *out, struct dbpki_err *e)
{
	struct engine_lock lock;
	X509 *ca = NULL;
	int r;

	if (stage < 0 || stage > PKI_ROLLOVER_STAGES)
		return err_set(e, DBPKI_E_USAGE, "--stage: 1, 2 or 3");
	if ((r = refuse_unsupported(c, e)) != 0)
		return r;
	if ((r = engine_store_lock(c, "ca-rollover", &lock, e)) != 0)
		return r;
	/* The friendly "no CA; run: dbpki ca init" first. */
	if ((r = pki_ca_load_cert(c, &ca, e)) == 0)
		r = stage == 0 ? run_all(c, o, out, e)
			       : run_stage(c, stage, o, out, e);
	X509_free(ca);
	engine_lock_release(&lock);
	return r;
}
