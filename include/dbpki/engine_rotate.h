/* engine_rotate: the emergency rotation (`dbpki rotate`).
 *
 * Before anything changes anywhere, every database node is asked over SSH
 * what it really is (templates/<platform>/probe.sh: pg_controldata, and
 * pg_is_in_recovery() over the node's own unix socket when PostgreSQL runs
 * and lets the login user in).  No certificate is trusted for this: the
 * certificates are what is broken.  The run goes on only when exactly one
 * node is a primary and it is the one the inventory (or --primary) names.
 * Then: a new dbca when the store has none or its dbca has expired, new
 * leaf certificates, and playbooks/rotate.ini.
 *
 * engine_primary.c: the probe, its parsing and the judgement (pure
 * functions, unit-tested); engine_rotate.c: the run.  Internal to the
 * engine and its unit tests.
 */
#ifndef DBPKI_ENGINE_ROTATE_H
#define DBPKI_ENGINE_ROTATE_H

#include <stdio.h>

#include "dbpki/config.h"
#include "dbpki/engine.h"
#include "dbpki/err.h"

/* The line probe.sh prints, followed by key=value words. */
#define PROBE_MARK "DBPKI-PROBE"

/* What a database node says it is. */
enum probe_claim {
	CLAIM_UNREACHABLE, /* SSH or the probe script failed */
	CLAIM_NONE,        /* no PostgreSQL data directory */
	CLAIM_PRIMARY,     /* in production, or would start as a primary */
	CLAIM_REPLICA,     /* in recovery, or would start as a standby */
	CLAIM_UNKNOWN,     /* a data directory whose state tells neither */
};

struct probe_node {
	const struct cfg_node *n;
	int probed; /* 0: skipped (--skip-node) or not a database node */
	char error[512];
	/* as probe.sh reported them */
	int data;             /* PG_VERSION present */
	int running;          /* pg_ctl status */
	int sql;              /* pg_is_in_recovery() answered over the socket */
	int in_recovery;      /* its answer; -1 unknown */
	int timeline;         /* -1 unknown */
	char state[48];       /* pg_controldata "Database cluster state" */
	char sysid[48];       /* "Database system identifier" */
	char signal[48];      /* "standby", "recovery" or "no" */
	char receiver[48];    /* pg_stat_wal_receiver.status, "none", "-" */
	int conf_bad;         /* postgres -C could not load its configuration */
	char conf_error[256]; /* and why (sanitised) */
	/* from probe_classify() */
	enum probe_claim claim;
	char desc[160]; /* "in production, timeline 1" */
};

/* Parse the output of probe.sh (the PROBE_MARK line) into p's reported
 * fields; DBPKI_E_REMOTE naming the node when the line is missing or
 * malformed.  p->n must be set. */
int probe_parse(const char *out, struct probe_node *p, struct dbpki_err *e);

/* Derive p->claim and p->desc from the reported fields. */
void probe_classify(struct probe_node *p);

/* "primary: node1 (in production, timeline 1); replicas: node2 (...)"
 * for the n probes, into out. */
void probe_summary(const struct probe_node *v, int n, char *out, size_t outsz);

/* Decide whether rotate may go on with the cluster's primary (the
 * inventory's, or the --primary override already applied to c).  forced
 * says --primary was given.  0 to go on (warnings logged); otherwise
 * DBPKI_E_CONFIG (exit 2) with a message naming every node involved, what
 * each claims and the next step, or DBPKI_E_SSH when a node could not be
 * asked.  Nothing has been changed when it refuses. */
int probe_judge(const struct dbpki_cluster *c, const struct probe_node *v,
    int n, int forced, struct dbpki_err *e);

/* Make node `name` the primary for this run: it must be a database node
 * of c; the inventory's primary becomes a replica.  DBPKI_E_USAGE
 * otherwise.  Only the in-memory copy changes; the file is not touched. */
int rotate_override_primary(
    struct dbpki_cluster *c, const char *name, struct dbpki_err *e);

/* Probe every database node of c (those not skipped) in parallel; v has
 * room for c->n_nodes entries, one per inventory node, in order. */
int probe_all(const struct dbpki_cluster *c, const struct engine_opts *o,
    struct probe_node *v, struct dbpki_err *e);

#endif
