/* engine internals shared by engine*.c only (not a public header). */
#ifndef DBPKI_ENGINE_INT_H
#define DBPKI_ENGINE_INT_H

#include <pthread.h>

#include "dbpki/engine.h"
#include "dbpki/pki.h"
#include "dbpki/playbook.h"
#include "dbpki/ssh.h"
#include "dbpki/template.h"

/* Every node script ends by printing this line; without it the step has
 * not positively succeeded (libssh2 1.10 reports a missing exit status as
 * 0). */
#define ENGINE_SENTINEL "DBPKI-STEP-OK"

enum res_state { RES_NONE, RES_OK, RES_FAILED, RES_SKIPPED, RES_UNDONE };

struct engine_result {
	enum res_state state;
	int code;
	int exit_status;
	int64_t ms;
	char error[512];
	char tail[1024]; /* last lines of the node's output, sanitised */
	char note[160];  /* its last line before the sentinel, for progress */
};

struct engine_node {
	const struct cfg_node *n;
	struct ssh_conn *conn;
	struct pki_release rel;
	int skipped; /* --skip-node */
	struct engine_result res[PB_MAX_STEPS];
};

struct engine_run {
	const struct dbpki_cluster *c;
	const struct playbook *pb;
	const struct engine_opts *o;
	struct engine_node nodes[CFG_MAX_NODES];
	int n;
	struct engine_journal journal;
	char release_id[64];
	pthread_mutex_t mu; /* output and journal */
	struct log_progress *progress; /* live lines of the running step */
};

/* Template variables for node n (see docs/playbooks.md for the list). */
int engine_node_vars(const struct engine_run *r, const struct cfg_node *n,
    struct tpl_vars *v, struct dbpki_err *e);

/* The script for `action` on node n: templates/<platform>/common.sh then
 * <action>.sh, both rendered with the node's variables.  Caller frees. */
int engine_render_script(const struct engine_run *r, const struct cfg_node *n,
    const char *action, char **out, struct dbpki_err *e);

/* Run `action` of step s on one node (shipping the release first when the
 * step uploads and action is the step's own); fills res and reports it. */
void engine_node_step(struct engine_run *r, struct engine_node *en,
    const struct pb_step *s, const char *action, struct engine_result *res);

/* Progress line + journal event for one node's result (thread-safe). */
void engine_report_node(struct engine_run *r, const struct engine_node *en,
    const struct pb_step *s, const char *action,
    const struct engine_result *res);

/* Local copies of a release's client files for libpq (state_dir/verify). */
struct verify_files {
	char ca[CFG_PATH], cert[CFG_PATH], key[CFG_PATH];
};
int engine_verify_files(const struct dbpki_cluster *c,
    const struct pki_release *rel, struct verify_files *vf,
    struct dbpki_err *e);

/* A verify-full libpq target for node n with the files in vf. */
struct pg_target;
void engine_pg_target(const struct dbpki_cluster *c, const struct cfg_node *n,
    const struct verify_files *vf, struct pg_target *t);

/* Verification through libpq (engine_verify.c). */
int engine_verify(
    struct engine_run *r, const struct pb_step *s, struct dbpki_err *e);

#endif
