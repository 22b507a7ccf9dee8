/* engine_plan: what a run would do, exactly, without doing any of it. */
#include "dbpki/engine_int.h"
#include "dbpki/log.h"
#include "dbpki/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
print_indented(FILE *out, const char *text, const char *prefix)
{
	const char *nl;

	while (*text != '\0') {
		nl = strchr(text, '\n');
		fprintf(out, "%s%.*s\n", prefix,
		    (int)(nl ? nl - text : (ptrdiff_t)strlen(text)), text);
		if (nl == NULL)
			break;
		text = nl + 1;
	}
}

static void
print_files(FILE *out, const struct engine_run *r, const struct cfg_node *n)
{
	struct pki_release rel;
	struct dbpki_err e;
	int i;

	if (r->c->platform == PLATFORM_CMS) {
		engine_cms_plan_files(out, r, n);
		return;
	}
	memset(&rel, 0, sizeof(rel));
	err_clear(&e);
	if (pki_release_build(r->c, n, &rel, &e) != 0) {
		fprintf(out, "      files: not available yet (%s)\n", e.msg);
		return;
	}
	fprintf(out, "      files -> %s/releases/%s/\n", n->pg.cert_dir,
	    r->release_id);
	for (i = 0; i < rel.n; i++)
		fprintf(out, "        %-11s %04o  sha256 %s%s%s\n",
		    rel.files[i].name, (unsigned)rel.files[i].mode,
		    rel.files[i].sha256,
		    rel.files[i].serial[0] ? "  serial " : "",
		    rel.files[i].serial);
	pki_release_free(&rel);
}

static int
print_script(FILE *out, const struct engine_run *r, const struct cfg_node *n,
    const char *action, struct dbpki_err *e)
{
	char *script = NULL;
	int rc;

	if (r->c->platform == PLATFORM_CMS)
		return engine_cms_plan_script(out, r, n, action, e);
	if ((rc = engine_render_script(r, n, action, &script, e)) == 0) {
		fprintf(out,
		    "      script (common.sh + %s.sh, sent to sh -s):\n",
		    action);
		print_indented(out, script, "        | ");
	}
	free(script);
	return rc;
}

void
engine_layout_note(FILE *out, const struct cfg_node *n, const char *indent)
{
	static const char *const pgdata_boot =
	    "nothing on the node starts this cluster at boot unless the "
	    "operator's own service does";
	char which[CFG_NAME + CFG_PATH + 32];

	if (!cfg_is_database(n))
		return;
	if (n->pg.cluster[0] != '\0')
		snprintf(which, sizeof(which), "cluster %s", n->pg.cluster);
	else
		snprintf(which, sizeof(which),
		    "the cluster whose data directory "
		    "is %s",
		    n->pg.pgdata);
	switch (n->pg.layout) {
	case LAYOUT_DEBIAN:
		fprintf(out,
		    "%s%s: layout debian (postgresql-common, %s): an existing "
		    "cluster is adopted (fresh or holding user data): its data "
		    "is kept and it is restarted at most once, only when a "
		    "setting read at start changes; dbpki's settings go to its "
		    "conf.d/dbpki.conf; it "
		    "starts at boot as its start.conf says%s\n",
		    indent, n->name, which,
		    n->pg.start_conf == START_CONF_AUTO
			? " (set to auto: start_conf = auto)"
			: " (manual is reported and left alone)");
		break;
	case LAYOUT_PGDATA:
		fprintf(out,
		    "%s%s: layout pgdata (%s, started by pg_ctl): %s; an "
		    "existing data directory is kept and restarted once, an "
		    "empty one gets initdb\n",
		    indent, n->name, n->pg.pgdata, pgdata_boot);
		break;
	default:
		fprintf(out,
		    "%s%s: layout auto, decided on the node: debian when "
		    "pg_lsclusters lists %s (adopted, data kept, restarted "
		    "at most once, started at boot as its start.conf says), "
		    "otherwise "
		    "pgdata (%s)\n",
		    indent, n->name, which, pgdata_boot);
		break;
	}
}

static int
print_step(FILE *out, const struct engine_run *r, int k, struct dbpki_err *e)
{
	const struct pb_step *s = &r->pb->steps[k];
	char roles[128];
	int i, rc;

	pb_roles_string(s->roles, roles, sizeof(roles));
	if (s->verify != PB_VERIFY_NONE) {
		fprintf(out,
		    "\nstep %d: %s — dbpki verifies the %s through libpq "
		    "(verify-full, dbclient certificate)\n",
		    k + 1, s->name, pb_verify_name(s->verify));
		return 0;
	}
	fprintf(out,
	    "\nstep %d: %s — action %s on %s; %s; on failure: %s%s%s\n", k + 1,
	    s->name, s->action, roles,
	    s->parallel ? "parallel" : "one at a time",
	    pb_on_failure_name(s->on_failure), s->undo[0] ? "; undo: " : "",
	    s->undo);
	for (i = 0; i < r->c->n_nodes; i++) {
		const struct cfg_node *n = &r->c->nodes[i];

		if (!pb_step_applies(s, n->role, r->c->platform))
			continue;
		fprintf(out, "    node %s (%s, %s@%s:%d)\n", n->name,
		    cfg_role_name(n->role), n->ssh.user, n->address,
		    n->ssh.port);
		if (s->upload)
			print_files(out, r, n);
		if ((rc = print_script(out, r, n, s->action, e)) != 0)
			return rc;
	}
	return 0;
}

int
engine_plan(const struct dbpki_cluster *c, const char *name, FILE *out,
    struct dbpki_err *e)
{
	struct engine_run *r = calloc(1, sizeof(*r));
	struct playbook *pb = calloc(1, sizeof(*pb));
	struct engine_opts o = {0};
	int k, rc;

	if (r == NULL || pb == NULL) {
		rc = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = pb_load_named(name, pb, e)) != 0)
		goto out;
	r->c = c;
	r->pb = pb;
	r->o = &o;
	util_stamp(r->release_id);
	snprintf(r->journal.id, sizeof(r->journal.id), "(plan)");
	fprintf(out, "plan: playbook %s (%s)\n  %s\n", pb->name, pb->path,
	    pb->description);
	fprintf(out,
	    "cluster %s, platform %s, %d node(s); release id would be "
	    "%s\nnothing below has been done: this is a plan\n",
	    c->name, cfg_platform_name(c->platform), c->n_nodes, r->release_id);
	/* Names clients dial that the store's certificates lack. */
	engine_san_plan(out, c);
	if (c->platform == PLATFORM_POSTGRES) {
		fprintf(out, "how each database node's PostgreSQL is "
			     "installed (docs/postgres-tls.md, Layouts):\n");
		for (k = 0; k < c->n_nodes; k++)
			engine_layout_note(out, &c->nodes[k], "  ");
	}
	for (k = 0; k < pb->n_steps && rc == 0; k++)
		rc = print_step(out, r, k, e);
out:
	free(r);
	free(pb);
	return rc;
}
