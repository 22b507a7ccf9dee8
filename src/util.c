#include "dbpki/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int
util_fmt(char *out, size_t outsz, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outsz, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= outsz)
		return -1;
	return 0;
}

static int
check_stat(const char *path, const struct stat *st, size_t max, int flags,
    struct dbpki_err *e)
{
	if (!S_ISREG(st->st_mode))
		return err_set(
		    e, DBPKI_E_CONFIG, "%s: not a regular file", path);
	if ((flags & UTIL_RF_NOTWRITABLE) && (st->st_mode & 022))
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: writable by group or others (mode %04o); run: chmod "
		    "go-w %s",
		    path, (unsigned)(st->st_mode & 07777), path);
	if ((flags & UTIL_RF_PRIVATE) && (st->st_mode & 077))
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: accessible by group or others (mode %04o); run: chmod "
		    "600 %s",
		    path, (unsigned)(st->st_mode & 07777), path);
	if ((size_t)st->st_size > max)
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: too large (%lld bytes, at most %zu)", path,
		    (long long)st->st_size, max);
	return 0;
}

int
util_read_file(const char *path, size_t max, int flags, char **out, size_t *len,
    struct dbpki_err *e)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, r;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC |
			    ((flags & UTIL_RF_NOSYMLINK) ? O_NOFOLLOW : 0));
	if (fd == -1) {
		if (errno == ELOOP)
			return err_set(e, DBPKI_E_CONFIG,
			    "%s: is a symbolic link; give the real file", path);
		return err_sys(e, "cannot open %s", path);
	}
	if (fstat(fd, &st) == -1) {
		r = err_sys(e, "cannot stat %s", path);
		goto out;
	}
	if ((r = check_stat(path, &st, max, flags, e)) != 0)
		goto out;
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		r = err_set(e, DBPKI_E_NOMEM, "out of memory reading %s", path);
		goto out;
	}
	/* Read up to max+1 so a file that grows after fstat is still caught. */
	while (got <= (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size + 1 - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = err_sys(e, "cannot read %s", path);
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > (size_t)st.st_size) {
		r = err_set(
		    e, DBPKI_E_CONFIG, "%s: changed while reading", path);
		goto out;
	}
	buf[got] = '\0';
	*out = buf;
	buf = NULL;
	if (len != NULL)
		*len = got;
	r = 0;
out:
	if (buf != NULL)
		util_freezero(buf, (size_t)st.st_size + 1);
	close(fd);
	return r;
}

static int
split_dir(const char *path, char *dir, size_t dirsz, const char **base)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		if (util_fmt(dir, dirsz, ".") != 0)
			return -1;
		*base = path;
		return 0;
	}
	if (slash == path)
		return util_fmt(dir, dirsz, "/") == 0 ? (*base = slash + 1, 0)
						      : -1;
	if ((size_t)(slash - path) >= dirsz)
		return -1;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	*base = slash + 1;
	return 0;
}

int
util_fsync_dir(const char *dir, struct dbpki_err *e)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1)
		return err_sys(e, "cannot open directory %s", dir);
	if (fsync(fd) == -1) {
		close(fd);
		return err_sys(e, "cannot fsync directory %s", dir);
	}
	close(fd);
	return 0;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A fresh temporary file in dfd named .base.<16 hex>.tmp (the name
 * pki_store_sweep() knows), created exclusively, never through a link. */
static int
open_temp_at(int dfd, const char *base, mode_t mode, char *tmp, size_t tmpsz)
{
	unsigned char rnd[8];
	char hex[17];
	int fd, tries;

	for (tries = 0; tries < 16; tries++) {
		if (getentropy(rnd, sizeof(rnd)) != 0)
			return -1;
		util_hex(rnd, sizeof(rnd), hex);
		if (util_fmt(tmp, tmpsz, ".%s.%s.tmp", base, hex) != 0) {
			errno = ENAMETOOLONG;
			return -1;
		}
		fd = openat(dfd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (fd != -1 || errno != EEXIST)
			return fd;
	}
	return -1;
}

int
util_write_at(int dfd, const char *base, const void *buf, size_t len,
    mode_t mode, int excl, const char *what, struct dbpki_err *e)
{
	char tmp[NAME_MAX + 1];
	int fd, r;

	if ((fd = open_temp_at(dfd, base, mode, tmp, sizeof(tmp))) == -1)
		return err_sys(
		    e, "cannot create a temporary file beside %s", what);
	/* open() honours the umask; the mode must be exact, never wider. */
	if (fchmod(fd, mode) == -1 || write_all(fd, buf, len) == -1 ||
	    fsync(fd) == -1) {
		r = err_sys(e, "cannot write %s", what);
		close(fd);
		unlinkat(dfd, tmp, 0);
		return r;
	}
	if (close(fd) == -1) {
		r = err_sys(e, "cannot write %s", what);
		unlinkat(dfd, tmp, 0);
		return r;
	}
	if ((excl ? linkat(dfd, tmp, dfd, base, 0)
		  : renameat(dfd, tmp, dfd, base)) == -1) {
		r = errno;
		unlinkat(dfd, tmp, 0);
		errno = r;
		if (excl && r == EEXIST)
			return err_set(e, DBPKI_E_EXISTS,
			    "%s already exists; refusing to overwrite it",
			    what);
		return err_sys(
		    e, "cannot %s %s", excl ? "create" : "replace", what);
	}
	if (excl && unlinkat(dfd, tmp, 0) == -1)
		return err_sys(
		    e, "cannot remove the temporary file of %s", what);
	if (fsync(dfd) == -1)
		return err_sys(e, "cannot fsync the directory of %s", what);
	return 0;
}

/* The path-based writers: the directory of path, opened once. */
static int
write_file(const char *path, const void *buf, size_t len, mode_t mode, int excl,
    struct dbpki_err *e)
{
	char dir[PATH_MAX];
	const char *base;
	int dfd, r;

	if (split_dir(path, dir, sizeof(dir), &base) != 0 || *base == '\0')
		return err_set(e, DBPKI_E_SYS, "%s: bad path", path);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return err_sys(e, "cannot open directory %s", dir);
	r = util_write_at(dfd, base, buf, len, mode, excl, path, e);
	close(dfd);
	return r;
}

int
util_write_atomic(const char *path, const void *buf, size_t len, mode_t mode,
    struct dbpki_err *e)
{
	return write_file(path, buf, len, mode, 0, e);
}

int
util_write_new(const char *path, const void *buf, size_t len, mode_t mode,
    struct dbpki_err *e)
{
	return write_file(path, buf, len, mode, 1, e);
}

static int
check_dir(const char *path, struct dbpki_err *e)
{
	struct stat st;

	if (lstat(path, &st) == -1)
		return err_sys(e, "cannot stat %s", path);
	if (S_ISLNK(st.st_mode))
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: is a symbolic link; give the real directory", path);
	if (!S_ISDIR(st.st_mode))
		return err_set(e, DBPKI_E_CONFIG, "%s: not a directory", path);
	if (st.st_mode & 022)
		return err_set(e, DBPKI_E_CONFIG,
		    "%s: writable by group or others (mode %04o); run: chmod "
		    "go-w %s",
		    path, (unsigned)(st.st_mode & 07777), path);
	return 0;
}

/* mkdir with exactly mode (the process umask is 077: a store directory
 * the monitoring group reads is 0750); an existing directory is left.
 * The setgid bit a new directory inherits (state_dir made 2750 with the
 * monitoring group) is kept, so what is created below keeps that group. */
static int
mkdir_exact(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) == -1)
		return errno == EEXIST ? 0 : -1;
	if (stat(path, &st) == -1)
		return -1;
	return chmod(path, mode | (st.st_mode & S_ISGID));
}

int
util_mkdirs(const char *path, mode_t mode, struct dbpki_err *e)
{
	char buf[PATH_MAX];
	char *p;

	if (util_fmt(buf, sizeof(buf), "%s", path) != 0 || buf[0] == '\0')
		return err_set(e, DBPKI_E_SYS, "%s: bad path", path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir_exact(buf, mode) == -1)
			return err_sys(e, "cannot create directory %s", buf);
		*p = '/';
	}
	if (mkdir_exact(buf, mode) == -1)
		return err_sys(e, "cannot create directory %s", buf);
	return check_dir(buf, e);
}

/* Root, us, and the system user the Debian package runs dbpki as (it owns
 * state_dir; root may still run dbpki by hand, DESIGN "Who runs dbpki"). */
static int
trusted_owner(uid_t uid)
{
	struct passwd pwd, *pw = NULL;
	char buf[1024];

	if (uid == 0 || uid == geteuid())
		return 1;
	/* _r: templates are rendered (and checked) in the node threads. */
	return getpwnam_r("dbpki", &pwd, buf, sizeof(buf), &pw) == 0 &&
	       pw != NULL && pw->pw_uid == uid;
}

static const char *
user_name(uid_t uid, char *out, size_t outsz)
{
	struct passwd pwd, *pw = NULL;
	char buf[1024];

	if (getpwuid_r(uid, &pwd, buf, sizeof(buf), &pw) == 0 && pw != NULL &&
	    util_fmt(out, outsz, "%s", pw->pw_name) == 0)
		return out;
	snprintf(out, outsz, "%u", (unsigned)uid);
	return out;
}

/* One component: p is what stat() saw; top is 1 for the input itself. */
static int
trust_one(const char *path, const char *what, const char *p,
    const struct stat *st, int top, int flags, struct dbpki_err *e)
{
	char me[64];
	int isdir = S_ISDIR(st->st_mode);

	if (top && (flags & UTIL_TP_DIR) && !isdir)
		return err_set(
		    e, DBPKI_E_CONFIG, "%s %s: not a directory", what, path);
	if (top && !(flags & UTIL_TP_DIR) && !S_ISREG(st->st_mode))
		return err_set(
		    e, DBPKI_E_CONFIG, "%s %s: not a regular file", what, path);
	if (!trusted_owner(st->st_uid))
		return err_set(e, DBPKI_E_CONFIG,
		    "%s %s: %s is owned by uid %u, not by root%s%s, so that "
		    "user could change what dbpki trusts; run: chown %s %s",
		    what, path, p, (unsigned)st->st_uid,
		    geteuid() != 0 ? " or " : "",
		    geteuid() != 0 ? user_name(geteuid(), me, sizeof(me)) : "",
		    geteuid() != 0 ? me : "root", p);
	if ((st->st_mode & 022) == 0 ||
	    (isdir && st->st_uid == 0 && (st->st_mode & S_ISVTX)))
		return 0;
	return err_set(e, DBPKI_E_CONFIG,
	    "%s %s: %s is writable by group or others (mode %04o), so "
	    "another user could change what dbpki trusts; run: chmod go-w %s",
	    what, path, p, (unsigned)(st->st_mode & 07777), p);
}

/* path and each directory above it, up to "/".  On the literal path a
 * symlink is not judged itself (its directory is, and the real path is
 * walked as well). */
static int
trust_walk(const char *path, const char *what, const char *start, int flags,
    int top, int literal, struct dbpki_err *e)
{
	char dir[PATH_MAX];
	struct stat st;
	char *slash;
	int r;

	if (util_fmt(dir, sizeof(dir), "%s", start) != 0)
		return err_set(e, DBPKI_E_CONFIG, "%s: path too long", path);
	for (;;) {
		if ((literal ? lstat(dir, &st) : stat(dir, &st)) == -1) {
			if (errno == EACCES && (flags & UTIL_TP_UNSEEN_OK))
				return 0;
			return err_sys(
			    e, "%s %s: cannot stat %s", what, path, dir);
		}
		if (!(literal && S_ISLNK(st.st_mode)) &&
		    (r = trust_one(path, what, dir, &st, top, flags, e)) != 0)
			return r;
		top = 0;
		if (strcmp(dir, "/") == 0 ||
		    (slash = strrchr(dir, '/')) == NULL)
			return 0;
		slash[slash == dir ? 1 : 0] = '\0';
	}
}

int
util_trust_path(
    const char *path, const char *what, int flags, struct dbpki_err *e)
{
	char real[PATH_MAX], cut[PATH_MAX];
	char *slash;
	int top = 1, r;

	if (path[0] == '/')
		r = util_fmt(cut, sizeof(cut), "%s", path);
	else if (getcwd(real, sizeof(real)) == NULL)
		return err_sys(
		    e, "%s %s: cannot find the current directory", what, path);
	else
		r = util_fmt(cut, sizeof(cut), "%s/%s", real, path);
	if (r != 0)
		return err_set(e, DBPKI_E_CONFIG, "%s: path too long", path);
	/* A path not created yet (a fresh state_dir): its nearest existing
	 * ancestor decides who could create it. */
	while (realpath(cut, real) == NULL) {
		if (errno == EACCES && (flags & UTIL_TP_UNSEEN_OK))
			return 0;
		if (errno != ENOENT || !(flags & UTIL_TP_MISSING))
			return err_sys(e, "%s %s", what, path);
		if ((slash = strrchr(cut, '/')) == NULL || slash == cut)
			return err_sys(e, "%s %s", what, path);
		*slash = '\0';
		top = 0;
	}
	/* The literal path too: a symlink on the way lives in a directory
	 * whose writer could point it elsewhere. */
	if ((r = trust_walk(path, what, cut, flags, top, 1, e)) != 0)
		return r;
	return trust_walk(path, what, real, flags, top, 0, e);
}

int
util_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
util_parse_duration(const char *s, int64_t *secs)
{
	static const int64_t max = 100LL * 366 * 86400;
	char num[24];
	size_t n = s ? strlen(s) : 0;
	long long v, mult;

	if (n < 2 || n >= sizeof(num) || !isdigit((unsigned char)s[0]))
		return -1;
	switch (s[n - 1]) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: return -1;
	}
	memcpy(num, s, n - 1);
	num[n - 1] = '\0';
	if (util_parse_int(num, 1, max, &v) != 0 || v > max / mult)
		return -1;
	*secs = v * mult;
	return 0;
}

static int
valid_label(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

int
util_valid_hostname(const char *s)
{
	const char *dot;
	size_t n = strlen(s);

	if (n == 0 || n > 253 || util_valid_ip(s))
		return 0;
	while ((dot = strchr(s, '.')) != NULL) {
		if (!valid_label(s, (size_t)(dot - s)))
			return 0;
		s = dot + 1;
	}
	return valid_label(s, strlen(s));
}

int
util_valid_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 ||
	       inet_pton(AF_INET6, s, buf) == 1;
}

int
util_valid_cidr(const char *s)
{
	char addr[64];
	const char *slash = strchr(s, '/');
	unsigned char buf[16];
	long long bits;
	int v6;

	if (slash == NULL || (size_t)(slash - s) >= sizeof(addr))
		return 0;
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	if (inet_pton(AF_INET, addr, buf) == 1)
		v6 = 0;
	else if (inet_pton(AF_INET6, addr, buf) == 1)
		v6 = 1;
	else
		return 0;
	return util_parse_int(slash + 1, 0, v6 ? 128 : 32, &bits) == 0;
}

int
util_valid_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 63 || strstr(s, "..") != NULL || s[0] == '.' ||
	    s[0] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    strchr("_.-", s[i]) == NULL)
			return 0;
	return 1;
}

int
util_valid_abspath(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 1024 || s[0] != '/')
		return 0;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) &&
		    strchr("_./@+:-", s[i]) == NULL)
			return 0;
		/* A ".." component: at a boundary on both sides. */
		if (s[i] == '.' && s[i + 1] == '.' &&
		    (i == 0 || s[i - 1] == '/') &&
		    (s[i + 2] == '/' || s[i + 2] == '\0'))
			return 0;
	}
	return 1;
}

void
util_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

void
util_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

void
util_freezero(void *p, size_t n)
{
	if (p == NULL)
		return;
	explicit_bzero(p, n);
	free(p);
}

int64_t
util_now(void)
{
	return (int64_t)time(NULL);
}

int64_t
util_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t
util_shell_quote(const char *s, char *out, size_t outsz)
{
	size_t n = 0;

	/* snprintf's contract: count everything, write what fits. */
#define PUT(c)                                                                 \
	do {                                                                   \
		if (n + 1 < outsz)                                             \
			out[n] = (c);                                          \
		n++;                                                           \
	} while (0)
	PUT('\'');
	for (; *s != '\0'; s++) {
		if (*s == '\'') {
			PUT('\'');
			PUT('\\');
			PUT('\'');
		}
		PUT(*s);
	}
	PUT('\'');
#undef PUT
	if (outsz > 0)
		out[n < outsz ? n : outsz - 1] = '\0';
	return n;
}

void
util_stamp(char out[UTIL_STAMP_LEN])
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static struct timespec last;
	struct timespec ts;
	struct tm tm;
	char sec[17];

	clock_gettime(CLOCK_REALTIME, &ts);
	/* Strictly after the previous stamp of this process, so that two
	 * names made in one clock tick still differ and keep their order. */
	pthread_mutex_lock(&mu);
	if (ts.tv_sec < last.tv_sec ||
	    (ts.tv_sec == last.tv_sec && ts.tv_nsec <= last.tv_nsec)) {
		ts = last;
		if (++ts.tv_nsec == 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec = 0;
		}
	}
	last = ts;
	pthread_mutex_unlock(&mu);
	gmtime_r(&ts.tv_sec, &tm);
	if (strftime(sec, sizeof(sec), "%Y%m%dT%H%M%SZ", &tm) == 0)
		sec[0] = '\0'; /* a year past 9999 */
	snprintf(out, UTIL_STAMP_LEN, "%.16s-%09d", sec,
	    (int)(ts.tv_nsec % 1000000000L));
}

void
util_iso8601(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
