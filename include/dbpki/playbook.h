/* playbook: the sequences as data, playbooks/<name>.ini (docs/playbooks.md).
 *
 * A playbook is a [playbook] section and up to PB_MAX_STEPS [step NAME]
 * sections, run in file order.  Each step either runs a node-side action
 * (templates/<platform>/<action>.sh) on the nodes of the given roles, or a
 * verification dbpki does itself through libpq.  Every error names
 * FILE:LINE and the key; nothing is defaulted silently except the keys
 * docs/playbooks.md lists as optional.
 */
#ifndef DBPKI_PLAYBOOK_H
#define DBPKI_PLAYBOOK_H

#include "dbpki/config.h"
#include "dbpki/err.h"

#define PB_MAX_STEPS 32
#define PB_NAME      64
#define PB_TEXT      192
#define PB_PATH      4096

/* Role and platform sets are bitmasks of 1u << ROLE_* / 1u << PLATFORM_*. */
#define PB_ROLES_ALL                                                           \
	((1u << ROLE_PRIMARY) | (1u << ROLE_REPLICA) | (1u << ROLE_CLIENT))
#define PB_ROLES_DATABASE ((1u << ROLE_PRIMARY) | (1u << ROLE_REPLICA))
#define PB_PLATFORMS_ALL  ((1u << PLATFORM_POSTGRES) | (1u << PLATFORM_CMS))

enum pb_on_failure {
	PB_FAIL_STOP, /* stop here; steps already done stay done */
	PB_FAIL_ROLLBACK, /* run the `undo` action of every step done, newest first */
};

enum pb_verify {
	PB_VERIFY_NONE,    /* an action step */
	PB_VERIFY_PRIMARY, /* the primary answers verify-full, not in recovery */
	PB_VERIFY_CLUSTER, /* primary, every replica streaming over SSL, clients */
};

struct pb_step {
	char name[PB_NAME];    /* [step NAME], unique in the playbook */
	char action[PB_NAME];  /* "" for a verification step */
	char undo[PB_NAME];    /* action that reverts this one; "" if none */
	enum pb_verify verify; /* PB_VERIFY_NONE for an action step */
	unsigned roles;        /* 1u << ROLE_*; never 0 */
	unsigned platforms;    /* 1u << PLATFORM_*; never 0 */
	int parallel;          /* 1: the step's nodes at once; 0: one by one */
	enum pb_on_failure on_failure;
	int upload; /* 1: ship the node's release before the action */
	int line;   /* line of the [step NAME] header */
};

struct playbook {
	char path[PB_PATH]; /* the file it was read from */
	char name[PB_NAME];
	char description[PB_TEXT];
	struct pb_step steps[PB_MAX_STEPS];
	int n_steps;
};

/* Load and validate a playbook file.  The file must be a regular file, not
 * a symlink, not writable by group or others, at most 64 KiB.  On error
 * (DBPKI_E_CONFIG, or DBPKI_E_SYS if it cannot be read) e->msg reads
 * "FILE:LINE: [section] key: what is wrong".  pb is fully overwritten;
 * nothing to free. */
int pb_load(const char *path, struct playbook *pb, struct dbpki_err *e);

/* Same as pb_load() on an in-memory text; origin stands for the file name
 * in messages. */
int pb_load_string(const char *origin, const char *text, struct playbook *pb,
    struct dbpki_err *e);

/* Load playbooks/<name>.ini from the directory tpl_find_data_dir()
 * finds.  name must be [a-z0-9_-]+ and equal to the file's
 * [playbook] name. */
int pb_load_named(const char *name, struct playbook *pb, struct dbpki_err *e);

/* 1 if step runs on a node of this role on this platform. */
int pb_step_applies(
    const struct pb_step *s, enum cfg_role role, enum cfg_platform platform);

/* Names as written in playbooks: "stop"/"rollback", "cluster"/"primary"/"". */
const char *pb_on_failure_name(enum pb_on_failure f);
const char *pb_verify_name(enum pb_verify v);

/* "primary, replica, client" for a role mask, into out (outsz bytes). */
void pb_roles_string(unsigned roles, char *out, size_t outsz);

#endif
