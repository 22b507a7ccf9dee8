/* engine_node: one node's share of a step — ship the release, render the
 * node script, run it, judge the result.  Runs on a pool thread; touches
 * only its own struct engine_node. */
#include "dbpki/engine_int.h"
#include "dbpki/log.h"
#include "dbpki/template.h"
#include "dbpki/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Comma-separated /32 (or /128) of every node, the default for pg_hba. */
static void
default_networks(const struct dbpki_cluster *c, char *out, size_t outsz)
{
	size_t len;
	int i;

	out[0] = '\0';
	for (i = 0; i < c->n_nodes; i++) {
		len = strlen(out);
		snprintf(out + len, outsz - len, "%s%s/%s", i ? "," : "",
		    c->nodes[i].address,
		    strchr(c->nodes[i].address, ':') ? "128" : "32");
	}
}

int
engine_node_vars(const struct engine_run *r, const struct cfg_node *n,
    struct tpl_vars *v, struct dbpki_err *e)
{
	const struct dbpki_cluster *c = r->c;
	const struct cfg_node *p = cfg_primary(c);
	/* The layout variables are decided on the node (common.sh), where
	 * pg_lsclusters can see what "auto" is: keep that logic in one place. */
	static const char *const tristate[] = {"auto", "yes", "no"};
	char port[16], pport[16], nets[CFG_PATH * 2], rdir[CFG_PATH * 2];
	char replicas[CFG_MAX_NODES * (CFG_NAME + 1)] = "";
	size_t len;
	int i, rc = 0;

	snprintf(port, sizeof(port), "%d", n->pg.port);
	snprintf(pport, sizeof(pport), "%d", p->pg.port);
	if (n->pg.allowed_networks[0] != '\0')
		snprintf(nets, sizeof(nets), "%s", n->pg.allowed_networks);
	else
		default_networks(c, nets, sizeof(nets));
	snprintf(rdir, sizeof(rdir), "%s/releases/%s", n->pg.cert_dir,
	    r->release_id);
	for (i = 0; i < c->n_nodes; i++) {
		if (c->nodes[i].role != ROLE_REPLICA)
			continue;
		len = strlen(replicas);
		snprintf(replicas + len, sizeof(replicas) - len, "%s%s",
		    len ? "," : "", c->nodes[i].name);
	}
	const char *kv[][2] = {
	    {"cluster", c->name},
	    {"node", n->name},
	    {"role", cfg_role_name(n->role)},
	    {"host", n->host},
	    {"address", n->address},
	    {"port", port},
	    {"pgdata", n->pg.pgdata},
	    {"bindir", n->pg.bindir},
	    {"cert_dir", n->pg.cert_dir},
	    {"socket_dir", n->pg.socket_dir},
	    {"layout", cfg_layout_name(n->pg.layout)},
	    {"pg_cluster", n->pg.cluster},
	    {"listen_localhost", tristate[n->pg.listen_localhost]},
	    {"start_conf",
		n->pg.start_conf == START_CONF_AUTO ? "auto" : "keep"},
	    {"allowed_networks", nets},
	    {"release_id", r->release_id},
	    {"release_dir", rdir},
	    {"db_user", c->client_common_name},
	    {"primary", p->name},
	    {"primary_host", p->host},
	    {"primary_address", p->address},
	    {"primary_port", pport},
	    {"replicas", replicas},
	    {"sentinel", ENGINE_SENTINEL},
	    {"run_id", r->journal.id},
	};
	for (i = 0; i < (int)(sizeof(kv) / sizeof(kv[0])) && rc == 0; i++)
		rc = tpl_vars_set(v, kv[i][0], kv[i][1], e);
	return rc;
}

static int
ship_release(struct engine_run *r, struct engine_node *en, struct dbpki_err *e)
{
	char dir[CFG_PATH * 2], path[CFG_PATH * 2 + 32];
	int i, rc;

	if (r->c->platform == PLATFORM_CMS) /* a console's file area */
		return engine_cms_ship(r, en, e);
	snprintf(dir, sizeof(dir), "%s/releases/%s", en->n->pg.cert_dir,
	    r->release_id);
	if ((rc = ssh_mkdir(en->conn, dir, 0700, e)) != 0)
		return err_wrap(e, "creating %s", dir);
	for (i = 0; i < en->rel.n; i++) {
		const struct pki_file *f = &en->rel.files[i];

		snprintf(path, sizeof(path), "%s/%s", dir, f->name);
		if ((rc = ssh_upload(en->conn, path, f->data, f->len,
			 (int)f->mode, e)) != 0)
			return err_wrap(e, "uploading %s", path);
	}
	return 0;
}

/* The last few lines of the node's output, for the error message. */
static void
output_tail(const struct ssh_result *res, char *out, size_t outsz)
{
	log_sanitize_tail(
	    out, outsz, res->out ? res->out : "", res->out_len, 1, 8);
}

int
engine_render_script(const struct engine_run *r, const struct cfg_node *n,
    const char *action, char **out, struct dbpki_err *e)
{
	const char *platform = cfg_platform_name(r->c->platform);
	struct tpl_vars v = {0};
	char *common = NULL, *body = NULL;
	size_t lc, lb;
	int rc;

	*out = NULL;
	if ((rc = engine_node_vars(r, n, &v, e)) != 0 ||
	    (rc = tpl_render_file(platform, "common", &v, &common, e)) != 0 ||
	    (rc = tpl_render_file(platform, action, &v, &body, e)) != 0)
		goto out;
	lc = strlen(common);
	lb = strlen(body);
	if ((*out = malloc(lc + lb + 1)) == NULL) {
		rc = err_set(e, DBPKI_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*out, common, lc);
	memcpy(*out + lc, body, lb + 1);
out:
	free(common);
	free(body);
	tpl_vars_free(&v);
	return rc;
}

/* The node's last word before the sentinel ("node1: restarted ..."),
 * without the "node: " prefix the scripts' say() adds. */
static void
output_note(const char *tail, const char *node, char *out, size_t outsz)
{
	char buf[sizeof(((struct engine_result *)0)->tail)];
	char *line, *save = NULL, *last = NULL;
	size_t plen = strlen(node);

	snprintf(buf, sizeof(buf), "%s", tail);
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		if (strcmp(line, ENGINE_SENTINEL) != 0)
			last = line;
	out[0] = '\0';
	if (last == NULL)
		return;
	if (strncmp(last, node, plen) == 0 &&
	    strncmp(last + plen, ": ", 2) == 0)
		last += plen + 2;
	snprintf(out, outsz, "%s", last);
}

/* The "DBPKI-DOWNTIME-MS <n>" line of the output, if any (the last one
 * wins), into res. */
static void
output_downtime(const struct ssh_result *sr, struct engine_result *res)
{
	static const char mark[] = "DBPKI-DOWNTIME-MS ";
	const char *s = sr->out, *nl;
	char num[24];
	long long v;
	size_t len;

	for (; s != NULL && *s != '\0'; s = nl ? nl + 1 : NULL) {
		nl = strchr(s, '\n');
		len = nl ? (size_t)(nl - s) : strlen(s);
		if (len <= sizeof(mark) - 1 ||
		    len - (sizeof(mark) - 1) >= sizeof(num) ||
		    strncmp(s, mark, sizeof(mark) - 1) != 0)
			continue;
		memcpy(num, s + sizeof(mark) - 1, len - (sizeof(mark) - 1));
		num[len - (sizeof(mark) - 1)] = '\0';
		if (util_parse_int(num, 0, INT64_MAX / 2, &v) == 0) {
			res->has_downtime = 1;
			res->downtime_ms = v;
		}
	}
}

int
engine_signal_error(const char *signal, struct dbpki_err *e)
{
	char name[64];

	/* The name is the node's word (SSH exit-signal), not a known list. */
	log_sanitize(name, sizeof(name), signal, 32, 0);
	return err_set(e, DBPKI_E_REMOTE, "killed by signal %s", name);
}

/* Lines "NODE: warning: ..." of the output (a debian cluster's start.conf
 * says manual, an admin's pg_hba rule could admit what dbpki's refuse):
 * shown as warnings, since the summary shows only the node's last line. */
static void
output_warnings(
    struct engine_run *r, const struct ssh_result *sr, const char *node)
{
	const char *s = sr->out, *nl;
	char pre[CFG_NAME + 16], line[512];
	size_t plen, len;

	snprintf(pre, sizeof(pre), "%s: warning: ", node);
	plen = strlen(pre);
	for (; s != NULL && *s != '\0'; s = nl ? nl + 1 : NULL) {
		nl = strchr(s, '\n');
		len = nl ? (size_t)(nl - s) : strlen(s);
		if (len <= plen || strncmp(s, pre, plen) != 0)
			continue;
		log_sanitize(line, sizeof(line), s + plen, len - plen, 0);
		pthread_mutex_lock(&r->mu);
		log_warn("%s: %s", node, line); /* dbpki: warning: NODE: ... */
		pthread_mutex_unlock(&r->mu);
	}
}

static int
run_action(struct engine_run *r, struct engine_node *en, const char *action,
    struct engine_result *res, struct dbpki_err *e)
{
	struct ssh_result sr = {0};
	char *script = NULL;
	int rc;

	if (r->c->platform == PLATFORM_CMS) /* console commands, not sh */
		return engine_cms_run(r, en, action, res, e);
	if ((rc = engine_render_script(r, en->n, action, &script, e)) != 0)
		goto out;
	rc = ssh_exec_script(
	    en->conn, script, en->n->ssh.command_timeout, &sr, e);
	res->exit_status = sr.exit_status;
	output_tail(&sr, res->tail, sizeof(res->tail));
	output_note(res->tail, en->n->name, res->note, sizeof(res->note));
	output_downtime(&sr, res);
	output_warnings(r, &sr, en->n->name);
	if (rc == 0 && !ssh_result_ok(&sr, ENGINE_SENTINEL)) {
		if (sr.signal != NULL)
			rc = engine_signal_error(sr.signal, e);
		else if (sr.exit_status != 0)
			rc = err_set(e, DBPKI_E_REMOTE, "exit status %d",
			    sr.exit_status);
		else
			rc = err_set(e, DBPKI_E_REMOTE,
			    "the script did not confirm "
			    "success (no final '%s' line)",
			    ENGINE_SENTINEL);
	}
out:
	ssh_result_free(&sr);
	free(script);
	return rc;
}

void
engine_node_step(struct engine_run *r, struct engine_node *en,
    const struct pb_step *s, const char *action, struct engine_result *res)
{
	struct dbpki_err e;
	int64_t t0 = util_mono_ms();
	int rc = 0;

	err_clear(&e);
	memset(res, 0, sizeof(*res));
	if (s->upload && strcmp(action, s->action) == 0)
		rc = ship_release(r, en, &e);
	if (rc == 0)
		rc = run_action(r, en, action, res, &e);
	res->ms = util_mono_ms() - t0;
	res->state = rc == 0 ? RES_OK : RES_FAILED;
	res->code = rc;
	if (rc != 0)
		snprintf(res->error, sizeof(res->error), "%.500s", e.msg);
	engine_report_node(r, en, s, action, res);
}
