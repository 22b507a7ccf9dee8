/* ssh_sftp: mkdir -p and atomic upload over SFTP (STYLE 9.3, rule 22).
 *
 * libssh2 1.10 has no posix-rename@openssh.com, and OpenSSH's plain SFTP
 * rename is link()+unlink(), which refuses an existing target.  So the
 * final step is: SFTP rename (atomic, works when the name is new), and if
 * that fails, an exec'd `mv -f -T` of two validated, single-quoted paths in
 * the same directory, which is rename(2): atomic replacement.
 *
 * The file is fsynced before its rename; the directory is not, here: that
 * would cost a round trip per file.  The step's node script, which runs
 * anyway, fsyncs the release directory (templates/postgres/certs.sh).
 */
#include "ssh_int.h"

#include "dbpki/log.h"
#include "dbpki/util.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define SFTP_CHUNK  (64 * 1024)
#define MV_SENTINEL "dbpki-mv-ok"

static const char *
fx_text(unsigned long fx)
{
	switch (fx) {
	case LIBSSH2_FX_NO_SUCH_FILE: return "no such file or directory";
	case LIBSSH2_FX_PERMISSION_DENIED: return "permission denied";
	case LIBSSH2_FX_FAILURE: return "failure";
	case LIBSSH2_FX_OP_UNSUPPORTED: return "operation not supported";
	case LIBSSH2_FX_FILE_ALREADY_EXISTS: return "file exists";
	case LIBSSH2_FX_WRITE_PROTECT: return "write protected";
	case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: return "no space left";
	case LIBSSH2_FX_QUOTA_EXCEEDED: return "quota exceeded";
	case LIBSSH2_FX_NO_SUCH_PATH: return "no such path";
	case LIBSSH2_FX_NOT_A_DIRECTORY: return "not a directory";
	default: return "SFTP error";
	}
}

/* Failure of an SFTP call on path: the server's status if it sent one. */
static int
sftp_fail(
    struct ssh_conn *c, struct dbpki_err *e, const char *what, const char *path)
{
	char ctx[1200];
	unsigned long fx;

	if (libssh2_session_last_errno(c->s) == LIBSSH2_ERROR_SFTP_PROTOCOL &&
	    c->sftp != NULL) {
		fx = libssh2_sftp_last_error(c->sftp);
		return err_set(e, DBPKI_E_SSH,
		    "%s: %s %s: %s (SFTP status %lu)", c->where, what, path,
		    fx_text(fx), fx);
	}
	util_fmt(ctx, sizeof(ctx), "%s %s", what, path);
	return ssh_fail(c, e, DBPKI_E_SSH, ctx);
}

static int
sftp_ready(
    struct ssh_conn *c, int64_t deadline, const char *what, struct dbpki_err *e)
{
	int r;

	if (c->sftp != NULL)
		return 0;
	while ((c->sftp = libssh2_sftp_init(c->s)) == NULL &&
	       libssh2_session_last_errno(c->s) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	if (c->sftp == NULL)
		return ssh_fail(c, e, DBPKI_E_SSH,
		    "cannot start SFTP (is the "
		    "sftp subsystem enabled in the node's sshd_config?)");
	return 0;
}

/* stat or lstat; 1 if path exists (attrs filled), 0 if it does not. */
static int
sftp_stat(struct ssh_conn *c, const char *path, int lnk,
    LIBSSH2_SFTP_ATTRIBUTES *a, int64_t deadline, const char *what,
    struct dbpki_err *e)
{
	int rc, r;

	while ((rc = libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path),
		    lnk ? LIBSSH2_SFTP_LSTAT : LIBSSH2_SFTP_STAT, a)) ==
	       LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	if (rc == 0)
		return 1;
	if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL &&
	    (libssh2_sftp_last_error(c->sftp) == LIBSSH2_FX_NO_SUCH_FILE ||
		libssh2_sftp_last_error(c->sftp) == LIBSSH2_FX_NO_SUCH_PATH))
		return 0;
	return sftp_fail(c, e, "cannot stat", path);
}

static int
check_path(struct ssh_conn *c, const char *path, int mode, struct dbpki_err *e)
{
	size_t n = strlen(path);

	if (!util_valid_abspath(path) || n < 2 || path[n - 1] == '/')
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: remote path '%.200s' is "
		    "not a valid absolute file path",
		    c->where, path);
	if (mode < 0 || (mode & ~07777) != 0)
		return err_set(e, DBPKI_E_CONFIG, "%s: bad mode %o for %s",
		    c->where, (unsigned)mode, path);
	return 0;
}

static int
mkdir_one(struct ssh_conn *c, const char *dir, int mode, int64_t deadline,
    const char *what, struct dbpki_err *e)
{
	LIBSSH2_SFTP_ATTRIBUTES a;
	int rc, r;

	if ((r = sftp_stat(c, dir, 0, &a, deadline, what, e)) < 0)
		return r;
	if (r == 0) {
		while (
		    (rc = libssh2_sftp_mkdir_ex(c->sftp, dir,
			 (unsigned)strlen(dir), mode)) == LIBSSH2_ERROR_EAGAIN)
			if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
				return r;
		if (rc == 0)
			return 0;
		/* Someone else may have made it meanwhile: look again. */
		if ((r = sftp_stat(c, dir, 0, &a, deadline, what, e)) < 0)
			return r;
		if (r == 0)
			return sftp_fail(c, e, "cannot create directory", dir);
	}
	if (!LIBSSH2_SFTP_S_ISDIR(a.permissions))
		return err_set(e, DBPKI_E_SSH,
		    "%s: %s exists and is not a "
		    "directory",
		    c->where, dir);
	return 0;
}

int
ssh_mkdir(struct ssh_conn *c, const char *path, int mode, struct dbpki_err *e)
{
	char buf[CFG_PATH], what[96];
	int64_t deadline;
	char *p, saved;
	int r;

	if ((r = ssh_usable(c, e)) != 0 || (r = check_path(c, path, mode, e)))
		return r;
	deadline = ssh_deadline(c->node->ssh.command_timeout);
	util_fmt(what, sizeof(what),
	    "after %llds creating a directory "
	    "(command_timeout)",
	    (long long)c->node->ssh.command_timeout);
	if ((r = sftp_ready(c, deadline, what, e)) != 0)
		return r;
	util_fmt(buf, sizeof(buf), "%s", path);
	for (p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		if (*p == '/' && p[-1] == '/')
			continue;
		saved = *p;
		*p = '\0';
		r = mkdir_one(c, buf, mode, deadline, what, e);
		*p = saved;
		if (r != 0 || saved == '\0')
			return r;
	}
}

static int
write_all(struct ssh_conn *c, LIBSSH2_SFTP_HANDLE *h, const char *data,
    size_t len, const char *tmp, int64_t deadline, const char *what,
    struct dbpki_err *e)
{
	size_t off = 0;
	ssize_t n;
	int r;

	while (off < len) {
		/* On EAGAIN libssh2 has kept (part of) the buffer: call again
		 * with the very same pointer and length. */
		n = libssh2_sftp_write(h, data + off, len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
			return sftp_fail(c, e, "cannot write", tmp);
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	}
	return 0;
}

/* fsync, exact mode, checked close. */
static int
seal(struct ssh_conn *c, LIBSSH2_SFTP_HANDLE *h, int mode, const char *tmp,
    int64_t deadline, const char *what, struct dbpki_err *e)
{
	LIBSSH2_SFTP_ATTRIBUTES a;
	int rc, r;

	while ((rc = libssh2_sftp_fsync(h)) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL &&
	    libssh2_sftp_last_error(c->sftp) == LIBSSH2_FX_OP_UNSUPPORTED)
		return err_set(e, DBPKI_E_SSH,
		    "%s: the node's SFTP server "
		    "cannot fsync (no fsync@openssh.com); refusing to install "
		    "files that might not survive a crash",
		    c->where);
	if (rc != 0)
		return sftp_fail(c, e, "cannot fsync", tmp);
	memset(&a, 0, sizeof(a));
	a.flags = LIBSSH2_SFTP_ATTR_PERMISSIONS;
	a.permissions = (unsigned long)mode;
	while ((rc = libssh2_sftp_fsetstat(h, &a)) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	if (rc != 0)
		return sftp_fail(c, e, "cannot chmod", tmp);
	return 0;
}

static int
close_handle(struct ssh_conn *c, LIBSSH2_SFTP_HANDLE *h, const char *tmp,
    int64_t deadline, const char *what, struct dbpki_err *e)
{
	int rc, r;

	/* The close can carry the error of a cached write: check it. */
	while ((rc = libssh2_sftp_close_handle(h)) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	if (rc != 0)
		return sftp_fail(c, e, "cannot close", tmp);
	return 0;
}

static int
replace(struct ssh_conn *c, const char *tmp, const char *path, int64_t deadline,
    const char *what, struct dbpki_err *e)
{
	struct ssh_result res;
	char script[4 * (2 * CFG_PATH + 64)], qtmp[4 * (CFG_PATH + 64)],
	    qpath[4 * CFG_PATH];
	int64_t left;
	int rc, r;

	while ((rc = libssh2_sftp_rename_ex(c->sftp, tmp, (unsigned)strlen(tmp),
		    path, (unsigned)strlen(path),
		    LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC |
			LIBSSH2_SFTP_RENAME_NATIVE)) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	if (rc == 0)
		return 0;
	if (rc != LIBSSH2_ERROR_SFTP_PROTOCOL)
		return sftp_fail(c, e, "cannot rename", tmp);
	/* Both paths passed util_valid_abspath(), and are quoted anyway, by
	 * the one function every remote command uses. */
	if (util_shell_quote(tmp, qtmp, sizeof(qtmp)) >= sizeof(qtmp) ||
	    util_shell_quote(path, qpath, sizeof(qpath)) >= sizeof(qpath) ||
	    util_fmt(script, sizeof(script),
		"mv -f -T -- %s %s && echo " MV_SENTINEL "\n", qtmp,
		qpath) != 0)
		return err_set(
		    e, DBPKI_E_CONFIG, "%s: path too long", c->where);
	left = (deadline - util_mono_ms()) / 1000;
	r = ssh_exec_script(c, script, left > 0 ? left : 1, &res, e);
	if (r == 0 && !ssh_result_ok(&res, MV_SENTINEL)) {
		char clean[512];

		size_t from = res.out_len > 300 ? res.out_len - 300 : 0;

		log_sanitize(clean, sizeof(clean), res.out + from,
		    res.out_len - from, 0);
		r = err_set(e, DBPKI_E_SSH,
		    "%s: cannot move %s over %s "
		    "(exit %d): %s",
		    c->where, tmp, path, res.exit_status, clean);
	}
	ssh_result_free(&res);
	return r;
}

static int
verify(struct ssh_conn *c, const char *path, size_t len, int mode,
    int64_t deadline, const char *what, struct dbpki_err *e)
{
	LIBSSH2_SFTP_ATTRIBUTES a;
	int r;

	if ((r = sftp_stat(c, path, 1, &a, deadline, what, e)) < 0)
		return r;
	if (r == 0)
		return err_set(e, DBPKI_E_SSH,
		    "%s: %s is missing right after "
		    "the upload",
		    c->where, path);
	if (!LIBSSH2_SFTP_S_ISREG(a.permissions) ||
	    (a.flags & LIBSSH2_SFTP_ATTR_SIZE) == 0 || a.filesize != len ||
	    (int)(a.permissions & 07777) != mode)
		return err_set(e, DBPKI_E_SSH,
		    "%s: %s after the upload: type/"
		    "mode %06lo, size %llu; expected a regular file, mode "
		    "%04o, "
		    "%zu bytes",
		    c->where, path, a.permissions,
		    (unsigned long long)a.filesize, (unsigned)mode, len);
	return 0;
}

static void
unlink_tmp(struct ssh_conn *c, const char *tmp)
{
	struct dbpki_err ignored;
	int64_t grace = ssh_deadline(2);

	if (c->broken || c->sftp == NULL)
		return;
	while (libssh2_sftp_unlink_ex(c->sftp, tmp, (unsigned)strlen(tmp)) ==
	       LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(c, grace, 0, "removing the temporary file",
			&ignored) != 0)
			return;
}

static int
temp_name(struct ssh_conn *c, const char *path, char *tmp, size_t tmpsz,
    struct dbpki_err *e)
{
	unsigned char rnd[8];
	char hex[17];
	const char *slash = strrchr(path, '/');

	if (getentropy(rnd, sizeof(rnd)) != 0)
		return err_sys(e, "%s: getentropy", c->where);
	util_hex(rnd, sizeof(rnd), hex);
	if (util_fmt(tmp, tmpsz, "%.*s/.%s.dbpki.%s", (int)(slash - path), path,
		slash + 1, hex) != 0 ||
	    !util_valid_abspath(tmp))
		return err_set(
		    e, DBPKI_E_CONFIG, "%s: path too long: %s", c->where, path);
	return 0;
}

int
ssh_upload(struct ssh_conn *c, const char *remote_path, const void *data,
    size_t len, int mode, struct dbpki_err *e)
{
	LIBSSH2_SFTP_HANDLE *h = NULL;
	char tmp[CFG_PATH + 64], what[96];
	int64_t deadline;
	int created = 0, r;

	if ((r = ssh_usable(c, e)) != 0 ||
	    (r = check_path(c, remote_path, mode, e)) != 0 ||
	    (r = temp_name(c, remote_path, tmp, sizeof(tmp), e)) != 0)
		return r;
	deadline = ssh_deadline(c->node->ssh.command_timeout);
	util_fmt(what, sizeof(what),
	    "after %llds uploading a file "
	    "(command_timeout)",
	    (long long)c->node->ssh.command_timeout);
	if ((r = sftp_ready(c, deadline, what, e)) != 0)
		return r;
	/* EXCL: never reuse or follow a file someone else put there. */
	while ((h = libssh2_sftp_open_ex(c->sftp, tmp, (unsigned)strlen(tmp),
		    LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL,
		    0600, LIBSSH2_SFTP_OPENFILE)) == NULL &&
	       libssh2_session_last_errno(c->s) == LIBSSH2_ERROR_EAGAIN)
		if ((r = ssh_wait(c, deadline, 0, what, e)) != 0)
			return r;
	if (h == NULL)
		return sftp_fail(c, e,
		    "cannot create (does the directory "
		    "exist?)",
		    tmp);
	created = 1;
	r = write_all(c, h, data, len, tmp, deadline, what, e);
	if (r == 0)
		r = seal(c, h, mode, tmp, deadline, what, e);
	/* Close even after a failure, but keep the first error. */
	if (r == 0)
		r = close_handle(c, h, tmp, deadline, what, e);
	else if (!c->broken) {
		struct dbpki_err ignored;

		close_handle(c, h, tmp, ssh_deadline(2), what, &ignored);
	}
	if (r == 0)
		r = replace(c, tmp, remote_path, deadline, what, e);
	if (r == 0)
		created = 0; /* the temporary name is gone */
	if (r == 0)
		r = verify(c, remote_path, len, mode, deadline, what, e);
	if (created)
		unlink_tmp(c, tmp);
	return r;
}
