/* cli_pki: ca, issue, csr, sign, inspect, match, verify.  Argument parsing
 * and exit codes only; the work is in pki_*.c. */
#include "dbpki/cli.h"
#include "dbpki/engine.h"
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#define CLI_MAX_SAN 64

static const char usage_ca[] =
    "usage: dbpki ca init   -c INVENTORY\n"
    "       dbpki ca import -c INVENTORY --cert PEM\n"
    "       dbpki ca export -c INVENTORY --out PATH\n"
    "       dbpki ca rollover -c INVENTORY [--stage 1|2|3] [--new-key URI]\n"
    "       dbpki ca passwd -c INVENTORY [--old-passphrase-file PATH]\n"
    "\n"
    "init creates the cluster CA (dbca) in state_dir/ca: a key of [ca] key\n"
    "and a self-signed certificate valid for [ca] validity.  With [ca]\n"
    "passphrase_file or passphrase_env the key is encrypted at rest\n"
    "(PBKDF2-HMAC-SHA256, 600000 iterations; passphrase >= 16 bytes);\n"
    "a key in clear is warned about unless [ca] plaintext_key = accepted.\n"
    "An existing CA is never overwritten (exit 1).\n"
    "\n"
    "import makes a corporate root, or a chain (lowest CA first, root\n"
    "last, at most 10), the trust anchor: releases ship it as dbca.crt and\n"
    "leaves must be signed by it (dbpki csr, then dbpki issue --signed);\n"
    "dbca signs no more leaves.  PEM must be an absolute path to a regular\n"
    "file (no symlink on the way), not writable by group or others, at\n"
    "most 1 MiB; every certificate X.509 v3, valid now, a CA with\n"
    "keyCertSign, RSA >= 3072 or EC >= 256 bits, signed with SHA-256/384/512\n"
    "by the next one, the last self-signed, no pathLenConstraint broken,\n"
    "and the chain as OpenSSL verifies it; PEM blocks only (text only\n"
    "before the first).  A refusal names the rule (exit 2); the previous\n"
    "trust is backed up to state_dir/ca/backup/.  Without dbca, import\n"
    "makes the store and no CA key (an import-only store).\n"
    "\n"
    "export writes the dbca certificate to PATH (absolute, must not exist,\n"
    "in a directory that is no symlink and not writable by group/others).\n"
    "\n"
    "rollover replaces dbca without downtime (postgres): stage 1 every node\n"
    "trusts the old and a new CA, stage 2 every leaf comes from the new CA,\n"
    "stage 3 the old CA leaves the bundles and is archived.  Each stage is\n"
    "verified; one that needs the previous one refuses (exit 2).  Without\n"
    "--stage: every stage not done yet.  See docs/ca-rollover.md.  With a\n"
    "token key ([ca] key = pkcs11:...), stage 1 makes the new key on the\n"
    "same token, labelled with the time appended, or at --new-key URI.\n"
    "\n"
    "passwd re-encrypts the CA key(s) (ca/dbca.key, ca/next/dbca.key)\n"
    "with the configured passphrase and the current KDF: a key in clear,\n"
    "one of an earlier release (2048 iterations), or a new passphrase\n"
    "(the old one from --old-passphrase-file).  See docs/ca-key.md.\n"
    "\n"
    "Exit 4 when export or rollover find no dbca (run: dbpki ca init -c\n"
    "INVENTORY).  See docs/corporate-ca.md.\n";

static const char usage_issue[] =
    "usage: dbpki issue -c INVENTORY [--force]\n"
    "       dbpki issue -c INVENTORY --signed DIR [--allow-extra-san]\n"
    "\n"
    "Make the local store hold every certificate the inventory needs: a\n"
    "server certificate per database node (or one shared), and the client\n"
    "certificate.  A certificate that is valid, matches the inventory and\n"
    "is not within renew_before of expiry is kept; the others are reissued\n"
    "and the old ones marked superseded.  --force reissues all.\n"
    "After `ca import`, dbca signs nothing: issue keeps the leaves that\n"
    "chain to the imported CA and refuses when one is missing or bad.\n"
    "\n"
    "--signed DIR takes back the certificates an external CA signed from\n"
    "the CSRs of `dbpki csr -c INVENTORY`: every .crt, .pem or .cer file in\n"
    "DIR (names do not matter: each is matched to its key), checked against\n"
    "its key, CN, SANs, extendedKeyUsage and the trusted CA, then stored as\n"
    "the current leaf.  A certificate with a SAN the inventory does not\n"
    "ask for (a wildcard, another node's name) is refused unless\n"
    "--allow-extra-san says it is wanted.\n"
    "Any refusal names the file and stores nothing\n"
    "(exit 2 bad input, 3 a check failed).\n"
    "Exit 4 when there is no CA yet (run: dbpki ca init -c INVENTORY).\n";

static const char usage_csr[] =
    "usage: dbpki csr --cn CN [--san NAME]... --key-type TYPE --out PREFIX\n"
    "                 [--force]\n"
    "       dbpki csr -c INVENTORY\n"
    "\n"
    "Make a key and a certificate signing request for an external CA.\n"
    "The first form writes PREFIX.key (0600) and PREFIX.csr; --san takes a\n"
    "host name or an IP address (repeat it or give a comma list); TYPE is\n"
    "ec:P-256, ec:P-384, rsa:3072 or rsa:4096.  An existing PREFIX.key or\n"
    "PREFIX.csr is never overwritten (--force replaces both, atomically).\n"
    "The second form writes one\n"
    "pair per certificate the inventory needs into state_dir/csr/; have\n"
    "the CSRs signed, then: dbpki issue -c INVENTORY --signed DIR.\n";

static const char usage_sign[] =
    "usage: dbpki sign -c INVENTORY CSR --profile server|client --out CERT"
    " [--days N]\n"
    "                  [--force]\n"
    "\n"
    "Sign CSR with the cluster CA using the dbserver or dbclient profile.\n"
    "The CN and SANs are taken from the CSR (DNS names and IP addresses\n"
    "only); the validity is the inventory's unless --days is given, and\n"
    "never beyond the CA's.  The certificate is recorded in the store\n"
    "first, then written to CERT, which must not exist (--force replaces\n"
    "it, atomically).  Refused: a server CSR without SANs (no client could\n"
    "match the host), a client CSR for a privileged role (postgres, the\n"
    "[ssh] user, [client] common_name, pg_*): its holder would log in as\n"
    "that role.\n";

static const char usage_inspect[] =
    "usage: dbpki inspect CERT [--json]\n"
    "\n"
    "Show subject, issuer, serial, validity with days left, SANs, key type\n"
    "and size, purpose and SHA-256 fingerprint.\n";

static const char usage_match[] =
    "usage: dbpki match KEY CERT\n"
    "\n"
    "Exit 0 if KEY is the private key of CERT, 1 otherwise.\n";

static const char usage_verify[] =
    "usage: dbpki verify CERT BUNDLE [--host NAME] [--purpose "
    "server|client|any]\n"
    "\n"
    "Verify CERT against BUNDLE (at most 10 PEM certificates: the\n"
    "self-signed ones are trusted, the others may be intermediates).\n"
    "--host also requires NAME (host name or IP) in the SANs and implies\n"
    "--purpose server (serverAuth; another --purpose with it is refused).\n"
    "Exit 0 when valid, 3 with the reason otherwise.\n";

static int
help_or_usage(const char *text, int is_help)
{
	fputs(text, is_help ? stdout : stderr);
	return is_help ? EXIT_DONE : EXIT_USAGE;
}

static int
bad_usage(const char *text, const char *why)
{
	log_error("%s", why);
	return help_or_usage(text, 0);
}

/* ---- ca ---------------------------------------------------------------- */

struct ca_opts {
	const char *inv, *cert, *out, *action, *old_pass, *new_key;
	int stage; /* rollover: 1..3, 0 all; -1 not given */
};

/* --stage: exactly "1", "2" or "3". */
static int
parse_stage(const char *s)
{
	return strlen(s) == 1 && s[0] >= '1' && s[0] <= '3' ? s[0] - '0' : -2;
}

static int
ca_parse(int argc, char **argv, struct ca_opts *o)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"cert", required_argument, NULL, 'C'},
	    {"out", required_argument, NULL, 'o'},
	    {"stage", required_argument, NULL, 's'},
	    {"old-passphrase-file", required_argument, NULL, 'P'},
	    {"new-key", required_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->inv = optarg; break;
		case 'C': o->cert = optarg; break;
		case 'o': o->out = optarg; break;
		case 'P': o->old_pass = optarg; break;
		case 'K': o->new_key = optarg; break;
		case 's':
			if ((o->stage = parse_stage(optarg)) < 0)
				return bad_usage(
				    usage_ca, "ca rollover: --stage 1, 2 or 3");
			break;
		default: return help_or_usage(usage_ca, ch == 'h');
		}
	}
	if (optind + 1 != argc)
		return bad_usage(usage_ca, "ca: give one action: init, import, "
					   "export, rollover or passwd");
	o->action = argv[optind];
	if (o->new_key != NULL && (strcmp(o->action, "rollover") != 0 ||
				      strncmp(o->new_key, "pkcs11:", 7) != 0))
		return bad_usage(usage_ca, "ca: --new-key pkcs11:URI is for "
					   "rollover only");
	if (o->old_pass != NULL && strcmp(o->action, "passwd") != 0)
		return bad_usage(
		    usage_ca, "ca: --old-passphrase-file is for passwd only");
	if (strcmp(o->action, "passwd") == 0 && o->cert == NULL &&
	    o->out == NULL && o->stage < 0)
		return -1;
	if (strcmp(o->action, "rollover") == 0 && o->cert == NULL &&
	    o->out == NULL) {
		if (o->stage < 0)
			o->stage = 0;
		return -1;
	}
	if (o->stage >= 0)
		return bad_usage(usage_ca, "ca: --stage is for rollover only");
	if (strcmp(o->action, "init") == 0 && o->cert == NULL && o->out == NULL)
		return -1;
	if (strcmp(o->action, "import") == 0 && o->cert != NULL &&
	    o->out == NULL)
		return -1;
	if (strcmp(o->action, "export") == 0 && o->out != NULL &&
	    o->cert == NULL)
		return -1;
	return bad_usage(usage_ca, "ca: init takes no --cert/--out, import "
				   "needs --cert, export needs --out");
}

static int
ca_init(const struct dbpki_cluster *c, struct dbpki_err *e)
{
	char warn[CFG_PATH + 256];

	if (pki_ca_init(c, e) != 0)
		return e->code;
	if (c->ca_key.uri[0] != '\0')
		log_info("created the CA: %s/ca/dbca.crt (key: on the token, "
			 "not extractable: %s)",
		    c->state_dir, c->ca_key.uri);
	else
		log_info(
		    "created the CA: %s/ca/dbca.crt (key: %s/ca/dbca.key%s)",
		    c->state_dir, c->state_dir,
		    c->ca_passphrase_file[0] || c->ca_passphrase_env[0]
			? ", encrypted"
			: "");
	if (pki_ca_key_warning(c, warn, sizeof(warn)))
		log_warn("%s", warn);
	return 0;
}

static int
ca_passwd(
    const struct dbpki_cluster *c, const char *old_pass, struct dbpki_err *e)
{
	int n = 0;

	if (pki_ca_passwd(c, old_pass, &n, e) != 0)
		return e->code;
	log_info("%d CA key%s re-encrypted", n, n == 1 ? "" : "s");
	return 0;
}

static int
ca_run(
    const struct dbpki_cluster *c, const struct ca_opts *o, struct dbpki_err *e)
{
	struct engine_lock lock = {.fd = -1};
	int r;

	if (strcmp(o->action, "export") == 0)
		return pki_ca_export(c, o->out, e);
	if (strcmp(o->action, "rollover") == 0) {
		struct engine_opts eo;

		memset(&eo, 0, sizeof(eo));
		return engine_ca_rollover(c, o->stage, &eo, stdout, e);
	}
	/* init and import write the store: under its lock, like every
	 * writer (a second one exits 5 rather than race this one). */
	if ((r = engine_store_lock(c,
		 strcmp(o->action, "import") == 0   ? "ca import"
		 : strcmp(o->action, "passwd") == 0 ? "ca passwd"
						    : "ca init",
		 &lock, e)) != 0)
		return r;
	if (strcmp(o->action, "import") == 0)
		r = pki_ca_import(c, o->cert, e);
	else if (strcmp(o->action, "passwd") == 0)
		r = ca_passwd(c, o->old_pass, e);
	else
		r = ca_init(c, e);
	engine_lock_release(&lock);
	return r;
}

int
cli_ca(int argc, char **argv)
{
	struct ca_opts o = {NULL, NULL, NULL, NULL, NULL, NULL, -1};
	struct dbpki_cluster *c = NULL;
	struct dbpki_err e;
	int rc;

	if ((rc = ca_parse(argc, argv, &o)) != -1)
		return rc;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return EXIT_FAILED;
	if ((rc = cli_load_cluster(o.inv, c)) == 0 && o.new_key != NULL &&
	    (c->ca_key.uri[0] == '\0' ||
		util_fmt(c->ca_new_key_uri, sizeof(c->ca_new_key_uri), "%s",
		    o.new_key) != 0)) {
		log_error("ca rollover --new-key: [ca] key must be a pkcs11: "
			  "URI (a file CA moves to a token not yet), and the "
			  "URI shorter than %d bytes",
		    CFG_PATH);
		rc = EXIT_USAGE;
	}
	if (rc == 0) {
		err_clear(&e);
		rc = ca_run(c, &o, &e) != 0 ? cli_fail(&e) : EXIT_DONE;
	}
	free(c);
	return rc;
}

/* ---- issue ------------------------------------------------------------- */

int
cli_issue(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"force", no_argument, NULL, 'f'},
	    {"signed", required_argument, NULL, 's'},
	    {"allow-extra-san", no_argument, NULL, 'x'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct engine_lock lock = {.fd = -1};
	struct dbpki_cluster *c = NULL;
	struct dbpki_err e;
	const char *inv = NULL, *dir = NULL;
	int ch, rc, force = 0, extra_san = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': inv = optarg; break;
		case 'f': force = 1; break;
		case 's': dir = optarg; break;
		case 'x': extra_san = 1; break;
		case 'h': return help_or_usage(usage_issue, 1);
		default: return help_or_usage(usage_issue, 0);
		}
	}
	if (optind != argc)
		return bad_usage(usage_issue, "issue: unexpected argument");
	if (dir != NULL && force)
		return bad_usage(usage_issue, "issue: --signed and --force "
					      "do not go together");
	if (dir == NULL && extra_san)
		return bad_usage(usage_issue, "issue: --allow-extra-san goes "
					      "with --signed DIR");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return EXIT_FAILED;
	if ((rc = cli_load_cluster(inv, c)) != 0)
		goto out;
	err_clear(&e);
	if (engine_store_lock(c, "issue", &lock, &e) != 0)
		rc = cli_fail(&e);
	else if (dir != NULL)
		rc = pki_issue_signed(c, dir, extra_san, &e) != 0 ? cli_fail(&e)
								  : EXIT_DONE;
	else
		rc =
		    pki_issue_all(c, force, &e) != 0 ? cli_fail(&e) : EXIT_DONE;
	engine_lock_release(&lock);
out:
	free(c);
	return rc;
}

/* ---- csr --------------------------------------------------------------- */

struct csr_opts {
	const char *inv, *cn, *type, *out;
	char sans[CLI_MAX_SAN][CFG_HOST];
	int n_san, force;
};

/* --san takes one name or a comma list. */
static int
add_sans(struct csr_opts *o, const char *arg)
{
	const char *p = arg, *comma;
	size_t n;

	while (*p != '\0') {
		comma = strchr(p, ',');
		n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == 0 || n >= CFG_HOST || o->n_san >= CLI_MAX_SAN)
			return -1;
		memcpy(o->sans[o->n_san], p, n);
		o->sans[o->n_san][n] = '\0';
		if (!util_valid_hostname(o->sans[o->n_san]) &&
		    !util_valid_ip(o->sans[o->n_san]))
			return -1;
		o->n_san++;
		p += n + (comma ? 1 : 0);
	}
	return 0;
}

static int
csr_single(struct csr_opts *o)
{
	struct pki_spec *s = NULL;
	struct dbpki_err e;
	enum cfg_key_alg alg;
	EVP_PKEY *k = NULL;
	X509_REQ *req = NULL;
	int i, rc = EXIT_FAILED;

	err_clear(&e);
	if (o->cn == NULL || o->type == NULL || o->out == NULL)
		return bad_usage(usage_csr, "csr: --cn, --key-type and --out "
					    "are required (or -c INVENTORY)");
	if (cfg_parse_key(o->type, &alg) != 0)
		return bad_usage(usage_csr, "csr: --key-type must be ec:P-256, "
					    "ec:P-384, rsa:3072 or rsa:4096");
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return EXIT_FAILED;
	s->profile = PKI_PROFILE_SERVER;
	if (util_fmt(s->cn, sizeof(s->cn), "%s", o->cn) != 0) {
		free(s);
		return bad_usage(usage_csr, "csr: --cn too long");
	}
	for (i = 0; i < o->n_san; i++)
		s->san[s->n_san++] = o->sans[i];
	if (pki_key_generate(alg, &k, &e) != 0 ||
	    pki_csr_build(s, k, &req, &e) != 0 ||
	    pki_csr_write_out(o->out, k, req, o->force, &e) != 0)
		rc = cli_fail(&e);
	else
		rc = EXIT_DONE;
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	free(s);
	return rc;
}

int
cli_csr(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"cn", required_argument, NULL, 'n'},
	    {"san", required_argument, NULL, 's'},
	    {"key-type", required_argument, NULL, 'k'},
	    {"out", required_argument, NULL, 'o'},
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct engine_lock lock = {.fd = -1};
	struct dbpki_cluster *c = NULL;
	struct csr_opts *o;
	struct dbpki_err e;
	int ch, rc = EXIT_USAGE;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return EXIT_FAILED;
	optind = 0;
	while (
	    (ch = getopt_long(argc, argv, "c:n:s:k:o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->inv = optarg; break;
		case 'n': o->cn = optarg; break;
		case 'k': o->type = optarg; break;
		case 'o': o->out = optarg; break;
		case 'f': o->force = 1; break;
		case 's':
			if (add_sans(o, optarg) != 0) {
				rc = bad_usage(usage_csr,
				    "csr: --san takes "
				    "host names or IP addresses");
				goto out;
			}
			break;
		case 'h': rc = help_or_usage(usage_csr, 1); goto out;
		default: rc = help_or_usage(usage_csr, 0); goto out;
		}
	}
	if (optind != argc) {
		rc = bad_usage(usage_csr, "csr: unexpected argument");
		goto out;
	}
	if (o->inv == NULL) {
		rc = csr_single(o);
		goto out;
	}
	if (o->cn != NULL || o->type != NULL || o->out != NULL || o->n_san ||
	    o->force) {
		rc =
		    bad_usage(usage_csr, "csr: -c cannot be combined with "
					 "--cn/--san/--key-type/--out/--force");
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (rc = cli_load_cluster(o->inv, c)) != 0)
		goto out;
	err_clear(&e);
	if (engine_store_lock(c, "csr", &lock, &e) != 0)
		rc = cli_fail(&e);
	else
		rc = pki_csr_all(c, &e) != 0 ? cli_fail(&e) : EXIT_DONE;
	engine_lock_release(&lock);
out:
	free(c);
	free(o);
	return rc;
}

/* ---- sign -------------------------------------------------------------- */

struct sign_opts {
	const char *inv, *csr, *profile, *out;
	long long days;
	int force;
};

static int
sign_run(const struct dbpki_cluster *c, const struct sign_opts *o,
    struct dbpki_err *e)
{
	struct pki_sign_req rq = {o->csr, o->out,
	    strcmp(o->profile, "server") == 0, o->days, o->force};

	return pki_sign_csr(c, &rq, e);
}

int
cli_sign(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"profile", required_argument, NULL, 'p'},
	    {"out", required_argument, NULL, 'o'},
	    {"days", required_argument, NULL, 'd'},
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct sign_opts o = {NULL, NULL, NULL, NULL, 0, 0};
	struct engine_lock lock = {.fd = -1};
	struct dbpki_cluster *c = NULL;
	struct dbpki_err e;
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:p:o:d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': o.inv = optarg; break;
		case 'p': o.profile = optarg; break;
		case 'o': o.out = optarg; break;
		case 'f': o.force = 1; break;
		case 'd':
			if (util_parse_int(optarg, 1, 3650, &o.days) != 0)
				return bad_usage(usage_sign, "sign: --days "
							     "takes 1 to 3650");
			break;
		case 'h': return help_or_usage(usage_sign, 1);
		default: return help_or_usage(usage_sign, 0);
		}
	}
	if (optind + 1 != argc || o.profile == NULL || o.out == NULL)
		return bad_usage(usage_sign,
		    "sign: give one CSR, --profile and "
		    "--out");
	o.csr = argv[optind];
	if (strcmp(o.profile, "server") != 0 &&
	    strcmp(o.profile, "client") != 0)
		return bad_usage(usage_sign, "sign: --profile is server or "
					     "client");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return EXIT_FAILED;
	if ((rc = cli_load_cluster(o.inv, c)) == 0) {
		err_clear(&e);
		/* sign records the certificate in the index: a writer. */
		if (engine_store_lock(c, "sign", &lock, &e) != 0)
			rc = cli_fail(&e);
		else
			rc =
			    sign_run(c, &o, &e) != 0 ? cli_fail(&e) : EXIT_DONE;
		engine_lock_release(&lock);
	}
	free(c);
	return rc;
}

/* ---- inspect / match / verify ------------------------------------------ */

int
cli_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct dbpki_err e;
	X509 *x = NULL;
	int ch, json = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		if (ch == 'j')
			json = 1;
		else
			return help_or_usage(usage_inspect, ch == 'h');
	}
	if (optind + 1 != argc)
		return bad_usage(usage_inspect, "inspect: give one CERT");
	err_clear(&e);
	if (pki_cert_load_pem(argv[optind], &x, &e) != 0)
		return cli_fail(&e);
	pki_inspect_print(stdout, x, json);
	X509_free(x);
	return EXIT_DONE;
}

static int
load_any_key(const char *path, EVP_PKEY **out, struct dbpki_err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int r;

	/* Not UTIL_RF_PRIVATE: a root-owned 0640 key is legitimate on a
	 * database node, and looking at a key does not expose it. */
	if ((r = util_read_file(path, UTIL_MAX_INPUT, 0, &buf, &len, e)) != 0)
		return r;
	r = pki_key_from_pem(buf, len, NULL, path, out, e);
	util_freezero(buf, len + 1);
	return r;
}

int
cli_match(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct dbpki_err e;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int ch, rc;

	optind = 0;
	if ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		return help_or_usage(usage_match, ch == 'h');
	if (optind + 2 != argc)
		return bad_usage(usage_match, "match: give KEY and CERT");
	err_clear(&e);
	if (load_any_key(argv[optind], &k, &e) != 0 ||
	    pki_cert_load_pem(argv[optind + 1], &x, &e) != 0) {
		rc = cli_fail(&e);
		goto out;
	}
	if (pki_cert_key_matches(x, k)) {
		log_info(
		    "match: %s belongs to %s", argv[optind], argv[optind + 1]);
		rc = EXIT_DONE;
	} else {
		log_error("no match: %s is not the key of %s (the certificate "
			  "was made for another key)",
		    argv[optind], argv[optind + 1]);
		rc = EXIT_FAILED;
	}
out:
	EVP_PKEY_free(k);
	X509_free(x);
	return rc;
}

int
cli_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"host", required_argument, NULL, 'H'},
	    {"purpose", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	enum pki_purpose purpose = PKI_PURPOSE_ANY;
	STACK_OF(X509) *bundle = NULL;
	const char *host = NULL, *pur = NULL;
	struct dbpki_err e;
	X509 *x = NULL;
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "H:p:h", opts, NULL)) != -1) {
		if (ch == 'H')
			host = optarg;
		else if (ch == 'p')
			pur = optarg;
		else
			return help_or_usage(usage_verify, ch == 'h');
	}
	if (optind + 2 != argc)
		return bad_usage(usage_verify, "verify: give CERT and BUNDLE");
	if (host != NULL)
		purpose = PKI_PURPOSE_SERVER;
	if (pur != NULL && strcmp(pur, "server") == 0)
		purpose = PKI_PURPOSE_SERVER;
	else if (pur != NULL && strcmp(pur, "client") == 0)
		purpose = PKI_PURPOSE_CLIENT;
	else if (pur != NULL && strcmp(pur, "any") == 0)
		purpose = PKI_PURPOSE_ANY;
	else if (pur != NULL)
		return bad_usage(usage_verify, "verify: --purpose is server, "
					       "client or any");
	/* A host name is what a TLS client checks of a server: a
	 * certificate that may only authenticate clients must not pass. */
	if (host != NULL && purpose != PKI_PURPOSE_SERVER)
		return bad_usage(usage_verify,
		    "verify: --host checks a server certificate and implies "
		    "--purpose server; leave --purpose out");
	err_clear(&e);
	if (pki_cert_load_pem(argv[optind], &x, &e) != 0 ||
	    pki_bundle_load(argv[optind + 1], &bundle, &e) != 0) {
		rc = cli_fail(&e);
		goto out;
	}
	if (pki_verify(x, bundle, purpose, host, 0, &e) != 0) {
		log_error("%s: %s", argv[optind], e.msg);
		rc = EXIT_VERIFY;
		goto out;
	}
	log_info("%s: OK%s%s", argv[optind], host ? ", covers " : "",
	    host ? host : "");
	rc = EXIT_DONE;
out:
	sk_X509_pop_free(bundle, X509_free);
	X509_free(x);
	return rc;
}
