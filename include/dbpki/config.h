/* config: the inventory INI (see docs/inventory.md) -> struct dbpki_cluster.
 *
 * Every value is validated while it is read; every error names file:line
 * and the key.  After cfg_load() succeeds, each node carries its fully
 * resolved settings (section defaults with the node's overrides applied),
 * so no other module needs to know about defaults or overrides.
 */
#ifndef DBPKI_CONFIG_H
#define DBPKI_CONFIG_H

#include <stdint.h>

#include "dbpki/err.h"

#define CFG_MAX_NODES 128
#define CFG_MAX_SAN   32
#define CFG_NAME      64
#define CFG_HOST      256
#define CFG_ADDR      64
#define CFG_PATH      1025
#define CFG_TEXT      128

enum cfg_platform { PLATFORM_POSTGRES, PLATFORM_CMS };
enum cfg_role { ROLE_PRIMARY, ROLE_REPLICA, ROLE_CLIENT };
enum cfg_key_alg { KEY_EC_P256, KEY_EC_P384, KEY_RSA_3072, KEY_RSA_4096 };
enum cfg_server_mode { SERVER_PER_NODE, SERVER_SHARED };
enum cfg_pg_layout { LAYOUT_AUTO, LAYOUT_DEBIAN, LAYOUT_PGDATA };
enum cfg_tristate { TRI_AUTO, TRI_YES, TRI_NO };
enum cfg_start_conf { START_CONF_KEEP, START_CONF_AUTO };
enum cfg_hostkey_policy { HOSTKEY_STRICT, HOSTKEY_ACCEPT_NEW };

/* Settings that [ssh] gives and a [node] may override. */
struct cfg_ssh {
	char user[CFG_NAME];
	int port;
	char identity[CFG_PATH];                 /* empty: use the SSH agent */
	char identity_passphrase_file[CFG_PATH]; /* optional */
	char known_hosts[CFG_PATH];
	enum cfg_hostkey_policy host_key_policy;
	int64_t connect_timeout; /* seconds */
	int64_t command_timeout; /* seconds */
};

/* Settings that [postgres] gives and a [node] may override. */
struct cfg_pg {
	int port;
	char pgdata[CFG_PATH];
	char bindir[CFG_PATH];
	char cert_dir[CFG_PATH];
	char socket_dir[CFG_PATH];
	/* Comma-separated CIDRs; empty means "the inventory's node addresses". */
	char allowed_networks[CFG_PATH];
	/* How the node's PostgreSQL is installed (docs/postgres-tls.md):
	 * auto is decided on the node (templates/postgres/common.sh). */
	enum cfg_pg_layout layout;
	char cluster[CFG_NAME]; /* debian: "15/main"; empty: found by pgdata */
	enum cfg_tristate listen_localhost; /* auto: yes on debian only */
	enum cfg_start_conf start_conf;     /* debian start.conf: keep|auto */
};

struct cfg_node {
	char name[CFG_NAME];
	char host[CFG_HOST];
	char address[CFG_ADDR];
	enum cfg_role role;
	int line;           /* where [node NAME] starts */
	struct cfg_ssh ssh; /* resolved */
	struct cfg_pg pg;   /* resolved */
};

struct cfg_keyspec {
	enum cfg_key_alg alg;
	char uri[CFG_PATH]; /* [ca] key = pkcs11:... (RFC 7512): the key is on
			       a token, alg is [ca] token_key_type; else "" */
};

struct dbpki_cluster {
	char path[CFG_PATH]; /* the inventory file */

	/* [cluster] */
	char name[CFG_NAME];
	enum cfg_platform platform;
	char state_dir[CFG_PATH];
	int64_t renew_before; /* seconds */
	int parallel;

	/* [ca] */
	char ca_common_name[CFG_TEXT];
	struct cfg_keyspec ca_key;
	int64_t ca_validity;               /* seconds */
	char ca_passphrase_file[CFG_PATH]; /* optional */
	char ca_passphrase_env[CFG_NAME];  /* optional: name of an env var */
	int ca_plaintext_key;       /* 0 "warn", 1 "accepted": a CA key in clear
				 is deliberate, no warning (docs/ca-key.md) */
	char ca_pin_file[CFG_PATH]; /* the token's PIN, with a pkcs11: key */
	struct cfg_keyspec ca_token_key_type; /* what ca init makes on it */
	char ca_new_key_uri[CFG_PATH]; /* not from the inventory: `ca rollover
					  --new-key URI`, the new CA's token
					  key (empty: derived from [ca] key) */
	int64_t ca_crl_validity; /* CRL nextUpdate - thisUpdate, seconds */

	/* [server] */
	struct cfg_keyspec server_key;
	int64_t server_validity;
	enum cfg_server_mode server_mode;
	char extra_san[CFG_MAX_SAN][CFG_HOST]; /* each a hostname or an IP */
	int n_extra_san;

	/* [client] */
	char client_common_name[CFG_NAME];
	struct cfg_keyspec client_key;
	int64_t client_validity;

	/* [ssh] and [postgres] as given (node copies hold the resolved ones) */
	struct cfg_ssh ssh;
	struct cfg_pg pg;

	struct cfg_node nodes[CFG_MAX_NODES];
	int n_nodes;
};

/* Load and validate an inventory.  The file must be a regular file, not a
 * symlink, not writable by group or others, at most 1 MiB, text without a
 * NUL byte (a UTF-8 BOM is skipped).  On error,
 * e->code is DBPKI_E_CONFIG (or DBPKI_E_SYS) and e->msg reads
 * "FILE:LINE: [section] key: what is wrong". */
int cfg_load(const char *path, struct dbpki_cluster *c, struct dbpki_err *e);

/* The trust-path check (util_trust_path) of every file the inventory
 * names that decides who gets keys: the inventory itself, state_dir (it
 * need not exist yet), [ca] passphrase_file, and each node's identity,
 * identity_passphrase_file and known_hosts.  Every command that acts calls
 * it after cfg_load() (exit 2 on failure); `check` reports a failure as a
 * WARNING instead, so a store made before the check existed is flagged
 * with the command that fixes it.  flags: 0, or UTIL_TP_UNSEEN_OK for a
 * caller that may not see every file (check as the monitoring user). */
int cfg_check_trust(
    const struct dbpki_cluster *c, int flags, struct dbpki_err *e);

/* Same as cfg_load() on an in-memory text; `name` is used in messages. */
int cfg_load_string(const char *name, const char *text, struct dbpki_cluster *c,
    struct dbpki_err *e);

/* Lookups and names. */
const struct cfg_node *cfg_primary(const struct dbpki_cluster *c);
const struct cfg_node *cfg_node_by_name(
    const struct dbpki_cluster *c, const char *name);
int cfg_is_database(const struct cfg_node *n); /* primary or replica */
const char *cfg_role_name(enum cfg_role r);
const char *cfg_layout_name(enum cfg_pg_layout l);
const char *cfg_platform_name(enum cfg_platform p);
const char *cfg_key_name(enum cfg_key_alg a); /* "ec:P-256", ... */
int cfg_parse_key(const char *s, enum cfg_key_alg *out);

#endif
