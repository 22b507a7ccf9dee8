/* engine_rotate: `dbpki rotate`, the 3 a.m. run.  Under the lock and
 * before anything changes: ask every database node what it is (see
 * engine_primary.c) and refuse unless exactly one primary is found where
 * the inventory (or --primary) says.  Then a new dbca if the store has
 * none or its dbca has expired, new certificates for everything, and
 * playbooks/rotate.ini through engine_run's machinery. */
#include "dbpki/engine_rotate.h"
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
print_probe(const struct probe_node *p, int json)
{
	if (json) {
		printf("{\"event\":\"probe\",\"node\":");
		log_json_string(stdout, p->n->name);
		printf(",\"claim\":\"%s\",\"running\":%s,\"timeline\":%d,"
		       "\"system_identifier\":",
		    p->claim == CLAIM_PRIMARY   ? "primary"
		    : p->claim == CLAIM_REPLICA ? "replica"
		    : p->claim == CLAIM_NONE    ? "none"
		    : p->claim == CLAIM_UNKNOWN ? "unknown"
						: "unreachable",
		    p->running ? "true" : "false", p->timeline);
		log_json_string(stdout, p->sysid);
		printf(",\"state\":");
		log_json_string(stdout, p->state);
		printf(",\"description\":");
		log_json_string(stdout, p->desc);
		printf(",\"error\":");
		log_json_string(stdout, p->error);
		printf("}\n");
		fflush(stdout);
		return;
	}
	if (p->claim == CLAIM_UNREACHABLE)
		log_info("  %-12s %s: %s", p->n->name, p->desc, p->error);
	else
		log_info(
		    "  %-12s %-52s system %s", p->n->name, p->desc, p->sysid);
}

/* Ask, print what was found, judge.  Changes nothing anywhere. */
static int
find_primary(const struct dbpki_cluster *c, const struct engine_opts *o,
    struct dbpki_err *e)
{
	struct probe_node *v;
	char found[2048];
	int i, rc;

	if (c->platform != PLATFORM_POSTGRES) {
		log_warn("rotate: primary detection exists for the postgres "
			 "platform only; trusting the inventory: %s is the "
			 "primary",
		    cfg_primary(c)->name);
		return 0;
	}
	if ((v = calloc((size_t)c->n_nodes, sizeof(*v))) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	log_info("%s: asking every database node what it is (SSH, "
		 "pg_controldata, its own socket; no certificate trusted, "
		 "nothing changed)",
	    c->name);
	if ((rc = probe_all(c, o, v, e)) != 0)
		goto out;
	for (i = 0; i < c->n_nodes; i++)
		if (v[i].probed)
			print_probe(&v[i], o->json);
	probe_summary(v, c->n_nodes, found, sizeof(found));
	log_info("found: %s", found);
	if ((rc = probe_judge(c, v, c->n_nodes, o->primary != NULL, e)) == 0)
		log_info("rotate: %s is the primary; it keeps its data and "
			 "restarts once with the new certificates",
		    cfg_primary(c)->name);
out:
	free(v);
	return rc;
}

static int
new_ca(const struct dbpki_cluster *c, const char *why, X509 *old,
    struct dbpki_err *e)
{
	char dir[CFG_PATH], when[32];
	int rc;

	util_iso8601(pki_cert_not_after(old), when);
	/* A passphrase too short for a new key is refused before the old
	 * CA is archived, not after. */
	if ((rc = pki_ca_pass_ready(c, e)) != 0 ||
	    (rc = pki_ca_archive(c, dir, e)) != 0)
		return rc;
	log_warn("!!! the store's dbca %s %s: it is archived in %s (kept, "
		 "never deleted) and a NEW dbca is created now; every node "
		 "gets it, and anything else that trusted the old one "
		 "(applications, `dbpki ca export` copies) must be given the "
		 "new one: dbpki ca export -c %s --out FILE !!!",
	    why, when, dir, c->path);
	return pki_ca_init(c, e);
}

/* The CA rotate signs with: the store's, unless there is none or it has
 * expired (or would cap every new certificate within renew_before). */
static int
rotate_ca(const struct dbpki_cluster *c, struct dbpki_err *e)
{
	X509 *ca = NULL;
	int64_t now = util_now(), na;
	char when[32];
	int rc;

	/* Corporate leaves: dbca signs nothing, a new one would not help;
	 * the issue step says what the company PKI must sign. */
	if (pki_trust_imported(c)) {
		log_info("dbca: not used, the store trusts an imported CA "
			 "(docs/corporate-ca.md)");
		return 0;
	}
	if ((rc = pki_ca_load_cert(c, &ca, e)) == DBPKI_E_NOCA) {
		log_warn("no dbca in %s/ca: creating a NEW dbca now; every "
			 "node gets it",
		    c->state_dir);
		err_clear(e);
		return pki_ca_init(c, e);
	}
	if (rc != 0)
		return rc;
	na = pki_cert_not_after(ca);
	if (now >= na)
		rc = new_ca(c, "EXPIRED on", ca, e);
	else if (now < pki_cert_not_before(ca))
		rc = new_ca(c, "is not valid yet (clock?); its end is", ca, e);
	else if (na - now <= c->renew_before)
		rc = new_ca(c, "expires within renew_before, on", ca, e);
	else {
		util_iso8601(na, when);
		log_info("dbca: keeping the store's (valid until %s)", when);
	}
	X509_free(ca);
	return rc;
}

/* Everything before the playbook, under the lock: ask, judge, CA, issue. */
static int
rotate_prepare(const struct dbpki_cluster *c, const struct engine_opts *o,
    struct dbpki_err *e)
{
	int rc;

	if ((rc = find_primary(c, o, e)) != 0 || (rc = rotate_ca(c, e)) != 0)
		return rc;
	/* Rotate replaces every certificate, whatever its dates. */
	return pki_issue_all(c, 1, e);
}

/* --skip-node mistakes are found before any node is asked anything. */
static int
check_skips(const struct dbpki_cluster *c, const struct engine_opts *o,
    struct dbpki_err *e)
{
	int i;

	for (i = 0; i < o->n_skip; i++) {
		if (cfg_node_by_name(c, o->skip[i]) == NULL)
			return err_set(e, DBPKI_E_USAGE,
			    "--skip-node %.64s: no such node in %s", o->skip[i],
			    c->path);
		if (strcmp(o->skip[i], cfg_primary(c)->name) == 0)
			return err_set(e, DBPKI_E_USAGE,
			    "--skip-node %s: the primary cannot be skipped",
			    o->skip[i]);
	}
	return 0;
}

int
engine_rotate(
    struct dbpki_cluster *c, const struct engine_opts *o, struct dbpki_err *e)
{
	struct engine_opts ro = *o;
	struct engine_lock lock = {.fd = -1};
	int rc;

	if ((o->primary != NULL &&
		(rc = rotate_override_primary(c, o->primary, e)) != 0) ||
	    (rc = check_skips(c, o, e)) != 0)
		return rc;
	/* One lock from the first question to the last verification: a
	 * second run started meanwhile changes nothing, not even the
	 * store. */
	if ((rc = engine_store_lock(c, "rotate", &lock, e)) != 0)
		return rc;
	if ((rc = rotate_prepare(c, o, e)) == 0) {
		ro.lock_held = 1;
		rc = engine_run(c, "rotate", &ro, e);
	}
	engine_lock_release(&lock);
	return rc;
}
