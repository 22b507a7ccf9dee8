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
	/* A script that takes the database down says for how long with a
	 * line "DBPKI-DOWNTIME-MS <n>" (common.sh configure_primary). */
	int has_downtime;
	int64_t downtime_ms;
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
	pthread_mutex_t mu;            /* output and journal */
	struct log_progress *progress; /* live lines of the running step */
};

/* Template variables for node n (see docs/playbooks.md for the list). */
int engine_node_vars(const struct engine_run *r, const struct cfg_node *n,
    struct tpl_vars *v, struct dbpki_err *e);

/* The script for `action` on node n: templates/<platform>/common.sh then
 * <action>.sh, both rendered with the node's variables.  Caller frees. */
/* "killed by signal NAME" into e (DBPKI_E_REMOTE), NAME being the node's
 * SSH exit-signal word, escaped (log_sanitize) and cut at 32 bytes. */
int engine_signal_error(const char *signal, struct dbpki_err *e);
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

/* ---- the cms platform (engine_cms.c; docs/cms.md) ----------------------- */

/* The cms template slots: console file names of node n's release
 * (ca_crt, server_key, server_crt, client_key, client_crt; "none" for the
 * server files of a client core) and the snapshot name. */
int engine_cms_vars(const struct engine_run *r, const struct cfg_node *n,
    struct tpl_vars *v, struct dbpki_err *e);
/* Upload the node's release into the console's file area (cert_dir). */
int engine_cms_ship(
    struct engine_run *r, struct engine_node *en, struct dbpki_err *e);
/* Type the console commands of `action` and judge every reply; fills
 * res->tail (the console transcript) and res->note. */
int engine_cms_run(struct engine_run *r, struct engine_node *en,
    const char *action, struct engine_result *res, struct dbpki_err *e);
/* plan: the files a core receives and the commands it will be sent. */
void engine_cms_plan_files(
    FILE *out, const struct engine_run *r, const struct cfg_node *n);
int engine_cms_plan_script(FILE *out, const struct engine_run *r,
    const struct cfg_node *n, const char *action, struct dbpki_err *e);

/* ---- survey of every certificate (engine_survey.c) --------------------- */

enum survey_src { SURVEY_STORE, SURVEY_SERVED };

/* One certificate: in the store (the CA chain, each leaf the inventory
 * needs) or served by a database node. */
struct survey_cert {
	enum survey_src src;
	const char *kind;         /* "ca", "server", "client" */
	const struct cfg_node *n; /* served, or a per-node server leaf */
	char label[CFG_NAME];     /* node name; "" CA/client; "shared" */
	int ok;                   /* read; else error says why */
	char error[400];
	char serial[PKI_SERIAL_HEX];
	int64_t not_after;
	int renewable;       /* a leaf whose notAfter is not capped by the CA */
	char untrusted[160]; /* served: why it does not verify, else "" */
	char want[PKI_SERIAL_HEX]; /* served: the store's current serial */
	int drift; /* served: not the store's current certificate */
};

struct survey {
	int64_t now;
	struct survey_cert v[2 * CFG_MAX_NODES + PKI_BUNDLE_MAX * 2 + 2];
	int n;
	int n_nodes_read; /* database nodes whose certificate was read */
	int n_nodes;      /* database nodes asked */
};

/* Read the store (DBPKI_E_NOCA without a CA, other store errors are
 * returned too) and, with pg_peek_cert on up to [cluster] parallel
 * threads, the certificate each database node serves, except the nodes in
 * skip.  A node that cannot be read is recorded (ok = 0), not returned.
 * Reads only.  s is allocated by the caller (it is large). */
int engine_survey(const struct dbpki_cluster *c, const char *const *skip,
    int n_skip, struct survey *s, struct dbpki_err *e);

/* "node2's server certificate", "the client certificate", ... */
void engine_survey_describe(
    const struct survey_cert *sc, char *out, size_t outsz);

/* "30d", "12h", "90m", "45s": the largest unit that divides secs. */
void engine_duration(int64_t secs, char *out, size_t outsz);

/* ---- names clients dial and the libpq that dials them (engine_san.c) ---- */

/* libpq matches an IP address it dials against the certificate's IP SANs
 * since PostgreSQL 15 (commit c1932e5, April 2022); before, only against
 * the CN or a dNSName that spells the address, so dbpki's certificates
 * (the address as an iPAddress SAN) are refused under verify-full. */
#define ENGINE_LIBPQ_IP_SAN 15
#define ENGINE_SAN_SHOWN    8

/* Which names clients dial that one certificate lacks. */
struct san_gap {
	int checked; /* a certificate was read and compared */
	int n_missing;
	struct {
		char name[CFG_HOST + 8]; /* "IP:10.0.0.12", "DNS:db1.example" */
		const char *why;         /* "dialled as its address", ... */
	} miss[ENGINE_SAN_SHOWN];
};

/* What status learns per node beyond its own checks. */
struct san_status {
	struct san_gap gap; /* database node: the served certificate */
	char libpq[128];    /* client node: its psql/pg_config --version */
	int libpq_major;    /* 0: unknown */
	int libpq_minor;
	int libpq_ip_refused; /* old libpq while addresses are dialled */
};

/* The names clients dial for node n — its host, its address, every
 * [server] extra_san — that x does not cover. */
void engine_san_check(const struct dbpki_cluster *c, const struct cfg_node *n,
    X509 *x, struct san_gap *g);

/* "IP:10.0.0.12 (dialled as its address), DNS:x (...)" */
void engine_san_list(const struct san_gap *g, char *out, size_t outsz);

/* Parse a version line ("psql (PostgreSQL) 13.9", "PostgreSQL 15.5
 * (Debian 15.5-0+deb12u1)", "psql (PostgreSQL) 16beta1").  0, or -1 when
 * no PostgreSQL version is in it. */
int engine_libpq_parse(const char *s, int *major, int *minor);

/* 1 when a client with libpq `major` (0 = unknown: no) is refused under
 * verify-full when it dials one of n_ip IP addresses of the cluster. */
int engine_libpq_ip_refused(int major, int n_ip);

/* How many IP addresses clients of c may dial: database nodes' addresses
 * and IP literals in [server] extra_san. */
int engine_san_ip_targets(const struct dbpki_cluster *c);

/* status: fill s for node n — the served certificate (pg_peek_cert,
 * also an expired or untrusted one) of a database node; the libpq
 * version of a client node over conn (NULL: not reachable). */
void engine_san_status(const struct dbpki_cluster *c, const struct cfg_node *n,
    struct ssh_conn *conn, struct san_status *s);

/* status: the node's warning lines (text), or its JSON fields (each
 * preceded by a comma). */
void engine_san_status_text(FILE *out, const struct dbpki_cluster *c,
    const struct cfg_node *n, const struct san_status *s);
void engine_san_status_json(
    FILE *out, const struct cfg_node *n, const struct san_status *s);

/* plan: warn about every database node whose server certificate in the
 * store (what its release would carry) lacks a dialled name.  Reads the
 * store only. */
void engine_san_plan(FILE *out, const struct dbpki_cluster *c);

/* One line on how database node n's PostgreSQL is installed (its [postgres]
 * layout) and what starts it at boot, for plan and status (engine_plan.c).
 * "auto" is decided on the node (templates/postgres/common.sh). */
void engine_layout_note(
    FILE *out, const struct cfg_node *n, const char *indent);

#endif
