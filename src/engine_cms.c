/* engine_cms: one node's share of a step on the cms platform (Cisco
 * Meeting Server).  Where the postgres platform sends a shell script to
 * `sh -s`, a CMS core gets its release in the console's file area (SFTP)
 * and then the console commands of templates/cms/<action>.sh, typed one
 * at a time over an interactive session; each reply is judged before the
 * next command goes out, so nothing runs after a failure.  Syntax and
 * rationale: engine_cms.h and docs/cms.md. */
#include "dbpki/engine_cms.h"
#include "dbpki/engine_int.h"
#include "dbpki/log.h"
#include "dbpki/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CMS_RETRY_MS   2000 /* between two tries of an `until` command */
#define CMS_TRANSCRIPT (16 * 1024)

/* ---- variables and the script ------------------------------------------ */

/* Where a release file lands: cert_dir is the console's file area (the
 * SFTP root of the login on a real core, "/"). */
static int
remote_path(const struct cfg_node *n, const char *name, char *out, size_t outsz)
{
	size_t l = strlen(n->pg.cert_dir);

	return util_fmt(out, outsz, "%s%s%s", n->pg.cert_dir,
	    l > 0 && n->pg.cert_dir[l - 1] == '/' ? "" : "/", name);
}

int
engine_cms_vars(const struct engine_run *r, const struct cfg_node *n,
    struct tpl_vars *v, struct dbpki_err *e)
{
	static const char *const slots[][2] = {
	    {"ca_crt", "dbca.crt"},
	    {"server_key", "server.key"},
	    {"server_crt", "server.crt"},
	    {"client_key", "client.key"},
	    {"client_crt", "client.crt"},
	};
	char name[CFG_NAME + 32];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		/* A client core has no server files: "none" keeps a
		 * template that names them renderable (its `only` lines
		 * leave them out). */
		if (!cfg_is_database(n) &&
		    strncmp(slots[i][1], "server", 6) == 0)
			util_fmt(name, sizeof(name), "none");
		else if (cms_file_name(slots[i][1], r->release_id, name,
			     sizeof(name)) != 0)
			return err_set(e, DBPKI_E_INTERNAL, "file name");
		if ((rc = tpl_vars_set(v, slots[i][0], name, e)) != 0)
			return rc;
	}
	util_fmt(name, sizeof(name), "dbpki-%s", r->release_id);
	return tpl_vars_set(v, "snapshot", name, e);
}

static int
parse_part(const char *action, const struct tpl_vars *v, struct cms_script *s,
    struct dbpki_err *e)
{
	char origin[96], *text = NULL;
	int rc;

	util_fmt(origin, sizeof(origin), "templates/cms/%s.sh", action);
	if ((rc = tpl_render_file("cms", action, v, &text, e)) == 0)
		rc = cms_script_parse(text, origin, s, e);
	free(text);
	return rc;
}

/* common.sh + <action>.sh, rendered with the node's variables, parsed and
 * cut down to what a node of this role receives. */
static int
cms_load_script(const struct engine_run *r, const struct cfg_node *n,
    const char *action, struct cms_script *s, struct dbpki_err *e)
{
	struct tpl_vars v = {0};
	char origin[96];
	int rc;

	memset(s, 0, sizeof(*s));
	util_fmt(origin, sizeof(origin), "templates/cms/%s.sh", action);
	if ((rc = engine_node_vars(r, n, &v, e)) != 0 ||
	    (rc = engine_cms_vars(r, n, &v, e)) != 0 ||
	    (rc = parse_part("common", &v, s, e)) != 0 ||
	    (rc = parse_part(action, &v, s, e)) != 0)
		goto out;
	cms_script_for_role(s, n->role);
	if ((rc = cms_script_check(s, origin, e)) != 0)
		err_wrap(e, "for a %s core", cfg_role_name(n->role));
out:
	tpl_vars_free(&v);
	return rc;
}

/* ---- shipping ----------------------------------------------------------- */

int
engine_cms_ship(
    struct engine_run *r, struct engine_node *en, struct dbpki_err *e)
{
	char name[CFG_NAME + 32], path[CFG_PATH + CFG_NAME + 32];
	int i, rc;

	for (i = 0; i < en->rel.n; i++) {
		const struct pki_file *f = &en->rel.files[i];

		if (cms_file_name(f->name, r->release_id, name, sizeof(name)) !=
			0 ||
		    remote_path(en->n, name, path, sizeof(path)) != 0)
			return err_set(e, DBPKI_E_CONFIG,
			    "cert_dir %s: path too long", en->n->pg.cert_dir);
		if ((rc = ssh_upload(en->conn, path, f->data, f->len,
			 (int)f->mode, e)) != 0)
			return err_wrap(e,
			    "uploading %s to the console's file "
			    "area",
			    name);
	}
	return 0;
}

/* ---- the conversation --------------------------------------------------- */

struct cms_session {
	struct ssh_console *k;
	const struct cfg_node *n;
	const struct cms_script *s;
	char *raw; /* one reply, CMS_REPLY_MAX + 1 */
	size_t len;
	char *clean;      /* the same, cleaned */
	char *transcript; /* what the admin would have seen, for the journal */
	size_t tlen;
};

static void
transcript_add(struct cms_session *cs, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), need;

	while (lb > 0 && b[lb - 1] == '\n')
		lb--;
	need = la + lb + 1;

	if (need > CMS_TRANSCRIPT) {
		a = "";
		la = 0;
		b += lb - (CMS_TRANSCRIPT / 2);
		lb = CMS_TRANSCRIPT / 2;
		need = lb + 1;
	}
	if (cs->tlen + need > CMS_TRANSCRIPT) { /* keep the newest part */
		size_t drop = cs->tlen + need - CMS_TRANSCRIPT;

		memmove(cs->transcript, cs->transcript + drop, cs->tlen - drop);
		cs->tlen -= drop;
	}
	memcpy(cs->transcript + cs->tlen, a, la);
	memcpy(cs->transcript + cs->tlen + la, b, lb);
	cs->tlen += la + lb;
	cs->transcript[cs->tlen++] = '\n';
	cs->transcript[cs->tlen] = '\0';
}

static int
type_line(struct cms_session *cs, const char *line, int64_t deadline,
    struct dbpki_err *e)
{
	int rc;

	if ((rc = ssh_console_write(cs->k, line, strlen(line), deadline, e)) ==
	    0)
		rc = ssh_console_write(cs->k, "\n", 1, deadline, e);
	return rc;
}

/* Read until the prompt comes back; answer the command's confirmation
 * question once when it shows.  cmd is NULL for the login banner. */
static int
read_reply(struct cms_session *cs, const struct cms_cmd *cmd, int64_t deadline,
    struct dbpki_err *e)
{
	char what[CMS_TEXT + 96];
	size_t n;
	int eof, rc, answered = 0;

	util_fmt(what, sizeof(what),
	    "after %llds waiting for the console's reply to '%s' "
	    "(command_timeout)",
	    (long long)cs->n->ssh.command_timeout,
	    cmd ? cmd->line : "the login");
	cs->len = 0;
	cs->raw[0] = '\0';
	for (;;) {
		if (cs->len >= CMS_REPLY_MAX)
			return err_set(e, DBPKI_E_REMOTE,
			    "the reply to '%s' is longer than %d bytes",
			    cmd ? cmd->line : "the login", CMS_REPLY_MAX);
		if ((rc = ssh_console_read(cs->k, cs->raw + cs->len,
			 CMS_REPLY_MAX - cs->len, &n, &eof, deadline, what,
			 e)) != 0)
			return rc;
		cs->len += n;
		cs->raw[cs->len] = '\0';
		if (eof)
			return err_set(e, DBPKI_E_REMOTE,
			    "the console ended the session while %s was "
			    "running",
			    cmd ? cmd->line : "the login");
		if (cmd != NULL && cmd->confirm[0] != '\0' && !answered) {
			cms_reply_clean(cs->raw, cs->len, cmd->line,
			    cs->s->prompt, cs->clean, CMS_REPLY_MAX + 1);
			if (cms_text_has(cs->clean, cmd->confirm)) {
				if ((rc = type_line(
					 cs, cmd->answer, deadline, e)) != 0)
					return rc;
				answered = 1;
				continue;
			}
		}
		if (cms_reply_complete(cs->raw, cs->len, cs->s->prompt))
			return 0;
	}
}

static void
pause_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* One command: type it, judge the reply; `until` tries again. */
static int
run_command(struct cms_session *cs, const struct cms_cmd *c, char *note,
    size_t notesz, struct dbpki_err *e)
{
	int64_t give_up = util_mono_ms() + (int64_t)c->until_s * 1000;
	char why[CMS_TEXT * 2], echo[CMS_TEXT + CFG_NAME + 8];
	enum cms_verdict v;
	int rc;

	for (;;) {
		int64_t deadline =
		    util_mono_ms() + cs->n->ssh.command_timeout * 1000;

		if ((rc = type_line(cs, c->line, deadline, e)) != 0 ||
		    (rc = read_reply(cs, c, deadline, e)) != 0)
			return rc;
		cms_reply_clean(cs->raw, cs->len, c->line, cs->s->prompt,
		    cs->clean, CMS_REPLY_MAX + 1);
		util_fmt(
		    echo, sizeof(echo), "%s%s ", cs->n->name, cs->s->prompt);
		transcript_add(cs, echo, c->line);
		if (cs->clean[0] != '\0')
			transcript_add(cs, "", cs->clean);
		v = cms_reply_judge(cs->s, c, cs->clean, why, sizeof(why));
		if (v == CMS_OK) {
			util_fmt(note, notesz, "%s", why);
			return 0;
		}
		if (v == CMS_FAILED)
			return err_set(e, DBPKI_E_REMOTE,
			    "console command '%s' failed: the console "
			    "answered '%.200s'; fix the cause on the core "
			    "(`database cluster status` shows its state), "
			    "then run dbpki again: the steps are safe to "
			    "repeat",
			    c->line, why);
		if (c->until_s == 0)
			return err_set(e, DBPKI_E_REMOTE,
			    "console command '%s': the reply does not show "
			    "'%s'; check the core with `database cluster "
			    "status`",
			    c->line, why);
		if (util_mono_ms() + CMS_RETRY_MS > give_up)
			return err_set(e, DBPKI_E_REMOTE,
			    "console command '%s': after %d s the reply "
			    "still does not show '%s'; check the core with "
			    "`database cluster status`",
			    c->line, c->until_s, why);
		pause_ms(CMS_RETRY_MS);
	}
}

static int
session_alloc(struct cms_session *cs, const struct cfg_node *n,
    const struct cms_script *s, struct dbpki_err *e)
{
	memset(cs, 0, sizeof(*cs));
	cs->n = n;
	cs->s = s;
	cs->raw = malloc(CMS_REPLY_MAX + 1);
	cs->clean = malloc(CMS_REPLY_MAX + 1);
	cs->transcript = malloc(CMS_TRANSCRIPT + 1);
	if (cs->raw == NULL || cs->clean == NULL || cs->transcript == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	cs->transcript[0] = '\0';
	return 0;
}

static void
session_free(struct cms_session *cs)
{
	ssh_console_close(cs->k);
	free(cs->raw);
	free(cs->clean);
	free(cs->transcript);
}

/* The last lines of the transcript, for the report and the journal. */
static void
transcript_tail(const struct cms_session *cs, char *out, size_t outsz)
{
	size_t start = cs->tlen > 900 ? cs->tlen - 900 : 0;

	if (cs->transcript == NULL) {
		out[0] = '\0';
		return;
	}
	while (
	    start > 0 && start < cs->tlen && cs->transcript[start - 1] != '\n')
		start++;
	log_sanitize(out, outsz, cs->transcript + start, cs->tlen - start, 1);
}

int
engine_cms_run(struct engine_run *r, struct engine_node *en, const char *action,
    struct engine_result *res, struct dbpki_err *e)
{
	struct cms_script *s = calloc(1, sizeof(*s));
	struct cms_session cs;
	int i, rc;

	memset(&cs, 0, sizeof(cs));
	if (s == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	if ((rc = cms_load_script(r, en->n, action, s, e)) != 0)
		goto out;
	if (s->refuse[0] != '\0') {
		rc = err_set(
		    e, DBPKI_E_REMOTE, "%s (nothing was sent)", s->refuse);
		goto out;
	}
	if ((rc = session_alloc(&cs, en->n, s, e)) != 0 ||
	    (rc = ssh_console_open(
		 en->conn, en->n->ssh.connect_timeout, &cs.k, e)) != 0 ||
	    (rc = read_reply(&cs, NULL,
		 util_mono_ms() + en->n->ssh.command_timeout * 1000, e)) != 0)
		goto out;
	for (i = 0; i < s->n && rc == 0; i++)
		rc = run_command(
		    &cs, &s->cmds[i], res->note, sizeof(res->note), e);
out:
	res->exit_status = 0;
	transcript_tail(&cs, res->tail, sizeof(res->tail));
	session_free(&cs);
	free(s);
	return rc;
}

/* ---- plan ----------------------------------------------------------------- */

void
engine_cms_plan_files(
    FILE *out, const struct engine_run *r, const struct cfg_node *n)
{
	struct pki_release rel;
	struct dbpki_err e;
	char name[CFG_NAME + 32];
	int i;

	memset(&rel, 0, sizeof(rel));
	err_clear(&e);
	if (pki_release_build(r->c, n, &rel, &e) != 0) {
		fprintf(out, "      files: not available yet (%s)\n", e.msg);
		return;
	}
	fprintf(out, "      files -> %s (the console's file area, by SFTP)\n",
	    n->pg.cert_dir);
	for (i = 0; i < rel.n; i++) {
		if (cms_file_name(rel.files[i].name, r->release_id, name,
			sizeof(name)) != 0)
			continue;
		fprintf(out, "        %-30s %04o  sha256 %s\n", name,
		    (unsigned)rel.files[i].mode, rel.files[i].sha256);
	}
	pki_release_free(&rel);
}

int
engine_cms_plan_script(FILE *out, const struct engine_run *r,
    const struct cfg_node *n, const char *action, struct dbpki_err *e)
{
	struct cms_script *s = calloc(1, sizeof(*s));
	int rc;

	if (s == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	if ((rc = cms_load_script(r, n, action, s, e)) == 0) {
		fprintf(out,
		    "      console commands (templates/cms/common.sh + "
		    "%s.sh), typed one at a time:\n",
		    action);
		cms_script_print(out, s, n->name, "        ");
	}
	free(s);
	return rc;
}
