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

/* Per node: SSH reachable, role seen through libpq, served certificate
 * (serial, days left), TLS, and replication state and lag.  Text or one
 * JSON object on out.  DBPKI_E_VERIFY when any node needs attention (down,
 * wrong role, expiring within renew_before, replica not streaming). */
int engine_status(
    const struct dbpki_cluster *c, int json, FILE *out, struct dbpki_err *e);

#endif
