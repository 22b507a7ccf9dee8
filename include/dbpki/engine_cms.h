/* engine_cms: the Cisco Meeting Server (cms) platform.
 *
 * The MMP console of a CMS core is not a shell: dbpki uploads the node's
 * release into the console's file area by SFTP, then types console
 * commands over an interactive SSH session and reads each reply.  What to
 * type is data: templates/cms/<action>.sh, rendered like every template,
 * holds a *console script* (docs/cms.md):
 *
 *	prompt >                  the console's prompt ends with this text
 *	fail TEXT                 before any run: a reply holding TEXT failed
 *	only ROLES                the following runs apply to these roles only
 *	run COMMAND WORDS...      type the command, read its reply
 *	  confirm TEXT ANSWER     when the reply shows TEXT, type ANSWER
 *	  expect TEXT             the reply must hold TEXT
 *	  fail TEXT               this command's own failure message
 *	  until SECONDS           repeat the command until its expects hold
 *	refuse TEXT               the step fails with TEXT; nothing is sent
 *
 * Texts are compared with runs of blanks folded to one space.  A command
 * word is [A-Za-z0-9_./:,@+-]+ (what {{!slot}} may render), so no value
 * can smuggle a second command or an option the template did not write.
 *
 * The parser and the reply judge (engine_cms_script.c) are pure functions,
 * unit-tested; engine_cms.c drives them over SSH (ssh_console_*()).
 */
#ifndef DBPKI_ENGINE_CMS_H
#define DBPKI_ENGINE_CMS_H

#include <stddef.h>
#include <stdio.h>

#include "dbpki/config.h"
#include "dbpki/err.h"

#define CMS_MAX_CMDS  32
#define CMS_MAX_PATS  8
#define CMS_TEXT      256 /* a command line or a pattern */
#define CMS_PROMPT    32
#define CMS_ANSWER    16
#define CMS_MAX_UNTIL 3600 /* seconds */
#define CMS_REPLY_MAX (64 * 1024)

/* Role masks are 1u << ROLE_* (as in playbooks). */
struct cms_cmd {
	char line[CMS_TEXT]; /* the command as typed, words joined by ' ' */
	unsigned roles;      /* who receives it */
	char expect[CMS_MAX_PATS][CMS_TEXT];
	int n_expect;
	char fail[CMS_MAX_PATS][CMS_TEXT];
	int n_fail;
	char confirm[CMS_TEXT]; /* "" when the command asks nothing */
	char answer[CMS_ANSWER];
	int until_s; /* 0: send once */
	int lineno;
};

struct cms_script {
	char prompt[CMS_PROMPT];
	char fail[CMS_MAX_PATS][CMS_TEXT]; /* the console's failure texts */
	int n_fail;
	char refuse[CMS_TEXT]; /* "" unless the script refuses */
	unsigned refuse_roles;
	struct cms_cmd cmds[CMS_MAX_CMDS];
	int n;
};

/* Parse a rendered console script into s, after what s already holds:
 * zero s, parse templates/cms/common.sh, then the action's template, then
 * cms_script_check().  Each part starts with `only all` and no current
 * run.  origin names the part in messages, which read "ORIGIN:LINE: what
 * is wrong" (DBPKI_E_CONFIG); nothing to free. */
int cms_script_parse(const char *text, const char *origin, struct cms_script *s,
    struct dbpki_err *e);

/* The whole script: a prompt is set, there is something to send (or a
 * refusal), every `until` has an `expect` to wait for. */
int cms_script_check(
    struct cms_script *s, const char *origin, struct dbpki_err *e);

/* Keep only the commands (and the refusal) for a node of this role. */
void cms_script_for_role(struct cms_script *s, enum cfg_role role);

/* 1 if raw[0..len) ends with the console's prompt: its last line (after
 * the last newline, carriage returns ignored) is one word ending with
 * prompt, optionally followed by one space.  Else 0. */
int cms_reply_complete(const char *raw, size_t len, const char *prompt);

/* The reply to `cmd` as plain text: carriage returns and ANSI escape
 * sequences removed, the echo of the command (first line) and the
 * trailing prompt line dropped, other control bytes replaced by '?'.
 * out is always NUL-terminated. */
void cms_reply_clean(const char *raw, size_t len, const char *cmd,
    const char *prompt, char *out, size_t outsz);

/* 1 if text holds pattern, with runs of blanks in both folded to one
 * space (and leading/trailing blanks of the pattern ignored). */
int cms_text_has(const char *text, const char *pattern);

enum cms_verdict {
	CMS_OK,      /* no failure text, every expect present */
	CMS_FAILED,  /* a failure text is present */
	CMS_PENDING, /* no failure text, some expect missing */
};

/* Judge a cleaned reply to c under s.  On CMS_FAILED, why holds the line
 * of the reply that carries the failure text; on CMS_PENDING, the first
 * missing expect.  On CMS_OK, why holds the line that matched the last
 * expect (or the reply's last non-empty line), for progress. */
enum cms_verdict cms_reply_judge(const struct cms_script *s,
    const struct cms_cmd *c, const char *reply, char *why, size_t whysz);

/* Console file name for a release file ("server.key" -> "dbserver-ID.key",
 * "dbca.crt" -> "dbca-ID.crt"); -1 for a name it does not know. */
int cms_file_name(
    const char *release_name, const char *release_id, char *out, size_t outsz);

/* Print the script the way an admin reads the Cisco guide: one line per
 * command as typed at the prompt, with what dbpki checks under it. */
void cms_script_print(FILE *out, const struct cms_script *s, const char *node,
    const char *indent);

#endif
