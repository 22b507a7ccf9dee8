/* engine_lock: one run per cluster at a time. */
#include "dbpki/engine.h"
#include "dbpki/log.h"
#include "dbpki/pki.h"
#include "dbpki/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static void
describe_holder(int fd, char *out, size_t outsz)
{
	ssize_t n = pread(fd, out, outsz - 1, 0);
	char *nl;

	if (n <= 0) {
		snprintf(out, outsz, "unknown holder");
		return;
	}
	out[n] = '\0';
	if ((nl = strchr(out, '\n')) != NULL)
		*nl = '\0';
}

int
engine_lock_take(const char *state_dir, const char *what, struct engine_lock *l,
    struct dbpki_err *e)
{
	char path[CFG_PATH], holder[256], line[256], when[32];
	int fd, r;

	l->fd = -1;
	if ((r = util_mkdirs(state_dir, UTIL_STORE_DIR, e)) != 0)
		return r;
	if (util_fmt(path, sizeof(path), "%s/lock", state_dir) != 0)
		return err_set(
		    e, DBPKI_E_CONFIG, "%s: path too long", state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1)
		return err_sys(e, "cannot open the lock %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		r = errno;
		describe_holder(fd, holder, sizeof(holder));
		close(fd);
		if (r == EWOULDBLOCK)
			return err_set(e, DBPKI_E_LOCKED,
			    "another dbpki run holds "
			    "%s (%s); wait for it to finish, or check that "
			    "process",
			    path, holder);
		errno = r;
		return err_sys(e, "cannot lock %s", path);
	}
	util_iso8601(util_now(), when);
	snprintf(line, sizeof(line), "pid %ld, %s, started %s\n",
	    (long)getpid(), what, when);
	if (ftruncate(fd, 0) == -1 || pwrite(fd, line, strlen(line), 0) == -1) {
		close(fd);
		return err_sys(e, "cannot write %s", path);
	}
	l->fd = fd;
	return 0;
}

int
engine_store_lock(const struct dbpki_cluster *c, const char *what,
    struct engine_lock *l, struct dbpki_err *e)
{
	int r;

	if ((r = engine_lock_take(c->state_dir, what, l, e)) != 0)
		return r;
	/* No writer runs while we hold the lock: whatever temporary file or
	 * unrecorded key is there now was left by one that was killed. */
	if ((r = pki_store_sweep(c, e)) != 0) {
		engine_lock_release(l);
		return r;
	}
	return 0;
}

void
engine_lock_release(struct engine_lock *l)
{
	if (l->fd == -1)
		return;
	/* Leave the file: unlinking it would race with a waiting run. */
	/* The holder text is only a hint; the flock is what counts. */
	if (ftruncate(l->fd, 0) == -1)
		log_debug("cannot empty the lock file: %s", strerror(errno));
	close(l->fd);
	l->fd = -1;
}
