/* engine: runs a playbook over a cluster.
 *
 * One run: take the lock, open a journal, connect to every node (refusing
 * before any change when one cannot be reached or its host key does not
 * check out), ship releases and run each step's node script with bounded
 * parallelism, verify through libpq, print a summary.
 */
#ifndef DBPKI_ENGINE_H
#define DBPKI_ENGINE_H

#include <stdint.h>
#include <stdio.h>

#include "dbpki/config.h"
#include "dbpki/err.h"

/* ---- lock (engine_lock.c) ---------------------------------------------- */

struct engine_lock {
	int fd;
};

/* Take state_dir/lock (flock, never blocks).  When another run holds it:
 * DBPKI_E_LOCKED with a message naming the holder's PID and start time.
 * `what` (e.g. "bootstrap") is recorded for the next one to read. */
int engine_lock_take(const char *state_dir, const char *what,
    struct engine_lock *l, struct dbpki_err *e);

/* What every command that writes the store calls first: take the lock as
 * above, then pki_store_sweep() what a killed writer left behind. */
int engine_store_lock(const struct dbpki_cluster *c, const char *what,
    struct engine_lock *l, struct dbpki_err *e);
void engine_lock_release(struct engine_lock *l);

/* ---- journal (engine_journal.c) ---------------------------------------- */

/* An append-only, fsynced record of one run: state_dir/journal/<id>.jsonl,
 * one JSON object per line.  A run that ends writes a "run-end" line, so a
 * journal without one belongs to a run that was interrupted. */
struct engine_journal {
	FILE *f;
	char id[64];
	char path[CFG_PATH];
};

int engine_journal_open(const char *state_dir, const char *playbook,
    struct engine_journal *j, struct dbpki_err *e);
/* Record an event: kv is a NULL-terminated list of key, value string
 * pairs (values are JSON-escaped).  Write errors are reported once. */
void engine_journal_event(struct engine_journal *j, const char *event, ...)
    __attribute__((sentinel));
void engine_journal_close(struct engine_journal *j, const char *result);

/* The newest journal in state_dir/journal that has no run-end line: its id
 * and playbook into the buffers (CFG_NAME bytes each).  1 if found, 0 if
 * none, <0 on error. */
int engine_journal_unfinished(
    const char *state_dir, char *id, char *playbook, struct dbpki_err *e);

/* ---- fan-out (engine_pool.c) ------------------------------------------- */

/* Call fn(i, arg) for i in [0, n) on at most `parallel` threads; returns
 * when every call has returned.  fn must be thread-safe for distinct i. */
int engine_pool_run(int n, int parallel, void (*fn)(int i, void *arg),
    void *arg, struct dbpki_err *e);

/* ---- runs (engine.c, engine_plan.c) ------------------------------------ */

struct engine_opts {
	int json;                        /* --json: events on stdout */
	int force;                       /* renew --force */
	const char *skip[CFG_MAX_NODES]; /* --skip-node NAME (deliberate) */
	int n_skip;
	int lock_held; /* the caller holds state_dir/lock (renew) */
	/* rotate --primary NAME: that node is the primary for this run */
	const char *primary;
};

/* Print every step of playbook `name`, the nodes it touches, the files
 * each node receives (name, mode, SHA-256) and the rendered script.
 * Touches nothing: no connection, no write. */
int engine_plan(const struct dbpki_cluster *c, const char *name, FILE *out,
    struct dbpki_err *e);

/* Run playbook `name` over the cluster.  DBPKI_E_VERIFY when the steps
 * succeeded but the result did not verify. */
int engine_run(const struct dbpki_cluster *c, const char *name,
    const struct engine_opts *o, struct dbpki_err *e);

/* bootstrap and rotate: under the lock, make sure dbca exists (creating
 * it when create_ca; DBPKI_E_NOCA otherwise), issue every leaf that is
 * missing or due, then engine_run(). */
int engine_issue_and_run(const struct dbpki_cluster *c, const char *name,
    int create_ca, const struct engine_opts *o, struct dbpki_err *e);

/* The emergency rotation (engine_rotate.c, docs/rotate.md): under the
 * lock, ask every database node over SSH what it is and refuse
 * (DBPKI_E_CONFIG, nothing changed) unless exactly one primary is found
 * where the inventory, or o->primary, says; a new dbca when the store has
 * none or its dbca expired (the old one archived); new certificates for
 * everything; then playbooks/rotate.ini.  o->primary (a database node,
 * else DBPKI_E_USAGE) makes that node the primary in c for this run: c is
 * changed in memory, the inventory file is not. */
int engine_rotate(
    struct dbpki_cluster *c, const struct engine_opts *o, struct dbpki_err *e);

/* Per node: SSH reachable, role seen through libpq, served certificate
 * (serial, days left), TLS, and replication state and lag.  Text or one
 * JSON object on out.  DBPKI_E_VERIFY when any node needs attention (down,
 * wrong role, expiring within renew_before, replica not streaming, or
 * serving a certificate without a name or address clients dial).  A
 * client node's libpq older than 15 is a warning only (engine_san.c). */
int engine_status(
    const struct dbpki_cluster *c, int json, FILE *out, struct dbpki_err *e);

/* ---- CA rollover (engine_rollover.c, docs/ca-rollover.md) -------------- */

/* `ca rollover`, postgres only, dbca only (not after `ca import`, not
 * with a CRL).  Under the lock, stage 1..3 (stage 0: every stage not done
 * yet, in a row): 1 a new CA beside the old, every node trusts both;
 * 2 every leaf reissued by the new CA; 3 the old CA leaves the bundles and
 * the store's dbca becomes the new one (the old one archived).  Each stage
 * ships releases through playbooks/ca-rollover.ini (switch, reload,
 * verify; rollback on failure) and, from stage 2, reads what every
 * database node serves and requires it to chain to the new CA.  A stage
 * whose predecessor is not done: DBPKI_E_USAGE naming the stage to run,
 * nothing changed.  One result line per stage on out. */
int engine_ca_rollover(const struct dbpki_cluster *c, int stage,
    const struct engine_opts *o, FILE *out, struct dbpki_err *e);

/* ---- renew and check (engine_renew.c, engine_check.c) ------------------ */

/* Scheduled renewal (docs/renew.md).  Under the lock, read every
 * certificate the store holds and every database node serves (also an
 * expired or untrusted one).  When nothing expires within renew_before,
 * every node serves the store's current certificate and o->force is not
 * set: print one line naming the earliest expiry on out and change nothing
 * anywhere (no journal, no release, no write to the store).  Otherwise
 * reissue (every leaf when something is due or forced; nothing but what
 * the store itself judges due when a node merely serves another
 * certificate than the store's), run playbooks/renew.ini (stage, switch,
 * pg_reload_conf, verify; rollback on failure) and print what each node
 * serves afterwards.  After a failure the message also says what every
 * node serves now, read again through libpq. */
int engine_renew(const struct dbpki_cluster *c, const struct engine_opts *o,
    FILE *out, struct dbpki_err *e);

/* Nagios/Icinga plugin statuses, which are also check's exit codes. */
enum check_status {
	CHECK_OK = 0,
	CHECK_WARNING = 1,
	CHECK_CRITICAL = 2,
	CHECK_UNKNOWN = 3,
};

struct check_opts {
	int64_t warn, crit;     /* seconds; crit <= warn */
	int json;               /* one JSON object instead of the status line */
	const char *prometheus; /* node_exporter textfile to write, or NULL */
	const char *warning;    /* found before the survey (an untrusted path,
				   cfg_check_trust): at least WARNING */
};

/* Monitoring (docs/monitoring.md): the store's CA and leaves and what each
 * database node serves, judged against warn/crit.  Writes exactly one
 * status line with perfdata (or one JSON object) on out and, when asked,
 * the textfile (atomically, mode 0644).  Reads only: no lock, no write to
 * the store, no login on any node.  Never fails: trouble is a status. */
enum check_status engine_check(
    const struct dbpki_cluster *c, const struct check_opts *o, FILE *out);

/* check could not start (bad arguments, unreadable inventory): UNKNOWN
 * with `why`, in the same formats; the textfile says the check failed.
 * cluster may be NULL when the inventory could not be read. */
enum check_status engine_check_unknown(const struct check_opts *o,
    const char *cluster, const char *why, FILE *out);

/* ---- revocation and application certificates (engine_certs.c) ---------- */

struct pki_revoke_req;
struct pki_entry;

/* `revoke` (docs/revocation.md), postgres only.  Under the lock: check the
 * CA key opens, mark req's certificate revoked (pki_revoke; nothing with
 * crl_only), issue a replacement when it was the active dbclient or a
 * node's active server certificate (revoking it bare would cut off the
 * replicas or the node's clients), rebuild the CRL and run
 * playbooks/crl.ini: every node gets a release that carries the CRL,
 * database nodes set ssl_crl_file and reload (no restart), verify; any
 * failure rolls every node back.  The store keeps the revocation even when
 * shipping fails: the message says to rerun with crl_only. */
int engine_revoke(const struct dbpki_cluster *c,
    const struct pki_revoke_req *req, int crl_only, const struct engine_opts *o,
    struct dbpki_err *e);

/* `issue-client`: pki_issue_app under the lock.  prev: PKI_SERIAL_HEX
 * bytes.  renew_with_cluster: record the role for `renew` to reissue
 * (pki_app_mark; without it an earlier record is dropped). */
int engine_issue_app(const struct dbpki_cluster *c, const char *role,
    const char *dir, const char *dbname, int renew_with_cluster,
    struct pki_entry *ent, char *prev, struct dbpki_err *e);

#endif
