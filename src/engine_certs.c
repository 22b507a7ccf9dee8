/* engine_certs: revoke (store, CRL, playbooks/crl.ini) and issue-client
 * under the store's lock.  docs/revocation.md. */
#include "dbpki/engine.h"
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *
inv(const struct dbpki_cluster *c)
{
	return c->path[0] != '\0' ? c->path : "FILE";
}

/* Append what to do next after the cause (err_wrap would put it first). */
static void __attribute__((format(printf, 2, 3)))
hint(struct dbpki_err *e, const char *fmt, ...)
{
	char cause[DBPKI_ERR_MSG], next[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(next, sizeof(next), fmt, ap);
	va_end(ap);
	snprintf(cause, sizeof(cause), "%s", e->msg);
	err_set(e, e->code, "%.1400s. %s", cause, next);
}

/* The CA key must open before anything changes: a wrong passphrase
 * found after the index was written would leave a revocation that no
 * CRL states. */
static int
ca_usable(const struct dbpki_cluster *c, struct dbpki_err *e)
{
	struct pki_ca *ca = NULL;
	int rc = pki_ca_load(c, &ca, e);

	pki_ca_free(ca);
	return rc;
}

/* Does the cluster use this certificate right now?  Then revoking it
 * without a replacement would lock out replicas (client) or every
 * verify-full client of a node (server). */
static int
in_use(const struct pki_revoke_res *res)
{
	return res->was_active && (strcmp(res->ent.kind, "server") == 0 ||
				      strcmp(res->ent.kind, "client") == 0);
}

static int
revoke_in_store(const struct dbpki_cluster *c, const struct pki_revoke_req *req,
    struct dbpki_err *e)
{
	struct pki_revoke_res res;
	int rc;

	if ((rc = pki_revoke(c, req, &res, e)) != 0)
		return rc;
	if (res.already) {
		log_info("%s (%s %s) was revoked already: the store is "
			 "unchanged; shipping the CRL again",
		    res.ent.serial, res.ent.kind, res.ent.node);
		return 0;
	}
	log_info("revoked %s (%s %s, %s), reason %s", res.ent.serial,
	    res.ent.kind, res.ent.node, res.ent.subject,
	    pki_crl_reason_name(req->reason));
	if (!in_use(&res))
		return 0;
	log_warn("%s was the cluster's active %s certificate%s%s: issuing its "
		 "replacement, which ships with the CRL (no restart)",
	    res.ent.serial, res.ent.kind,
	    strcmp(res.ent.kind, "server") == 0 ? " of node " : "",
	    strcmp(res.ent.kind, "server") == 0 ? res.ent.node : "");
	if ((rc = pki_issue_all(c, 0, e)) != 0)
		hint(e,
		    "%s is revoked in the store, but no replacement was "
		    "issued and nothing was shipped; once this is fixed, run: "
		    "dbpki revoke -c %s --crl-only",
		    res.ent.serial, inv(c));
	return rc;
}

int
engine_revoke(const struct dbpki_cluster *c, const struct pki_revoke_req *req,
    int crl_only, const struct engine_opts *o, struct dbpki_err *e)
{
	struct engine_lock lock = {.fd = -1};
	struct engine_opts ro = *o;
	int rc;

	/* The CMS console has no setting for a CRL. */
	if (c->platform != PLATFORM_POSTGRES)
		return err_set(e, DBPKI_E_USAGE,
		    "revoke: platform %s cannot "
		    "check a CRL; only postgres can (docs/revocation.md)",
		    cfg_platform_name(c->platform));
	if ((rc = engine_store_lock(c, "revoke", &lock, e)) != 0)
		return rc;
	if ((rc = ca_usable(c, e)) != 0 ||
	    (!crl_only && (rc = revoke_in_store(c, req, e)) != 0) ||
	    (rc = pki_crl_update(c, e)) != 0)
		goto out;
	ro.lock_held = 1;
	if ((rc = engine_run(c, "crl", &ro, e)) != 0)
		hint(e,
		    "the store holds the revocation and the new CRL, but the "
		    "nodes do not check it yet; once this is fixed, run: dbpki "
		    "revoke -c %s --crl-only",
		    inv(c));
out:
	engine_lock_release(&lock);
	return rc;
}

int
engine_issue_app(const struct dbpki_cluster *c, const char *role,
    const char *dir, const char *dbname, int renew_with_cluster,
    struct pki_entry *ent, char *prev, struct dbpki_err *e)
{
	struct engine_lock lock = {.fd = -1};
	int rc;

	/* The index is rewritten whole: not while a renew rewrites it too. */
	if ((rc = engine_store_lock(c, "issue-client", &lock, e)) != 0)
		return rc;
	rc = pki_issue_app(c, role, dir, dbname, ent, prev, e);
	if (rc == 0 && (rc = pki_app_mark(
			    c, role, dir, dbname, renew_with_cluster, e)) != 0)
		err_wrap(e,
		    "%s's certificate was issued, but whether renew reissues "
		    "it could not be recorded",
		    role);
	engine_lock_release(&lock);
	return rc;
}
