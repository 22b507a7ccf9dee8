/* util: safe local files, strict parsing of small values, secrets.
 *
 * Nothing here logs; failures are reported through struct dbpki_err.
 */
#ifndef DBPKI_UTIL_H
#define DBPKI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dbpki/err.h"

#define UTIL_MAX_INPUT (1024 * 1024) /* inventories, PEM files, playbooks */

/* Store modes (DESIGN "Who runs dbpki"): the store's group (dbpki-monitor)
 * may read certificates, the index and the journal, so `check` needs no
 * root; keys stay 0600 and keys/ 0700. */
#define UTIL_STORE_DIR 0750 /* state_dir, ca/, issued/, crl/, journal/ */
#define UTIL_STORE_LOG 0640 /* journal files */

/* Flags for util_read_file(). */
#define UTIL_RF_NOSYMLINK   0x1 /* refuse a symlink as the final component */
#define UTIL_RF_NOTWRITABLE 0x2 /* refuse a file writable by group or others */
#define UTIL_RF_PRIVATE     0x4 /* refuse a file readable by group or others */

/* Read a whole regular file of at most max bytes into a NUL-terminated heap
 * buffer.  *out is NULL on entry and set only on success; caller frees it
 * (util_freezero() for secrets).  Checks are done on the open fd. */
int util_read_file(const char *path, size_t max, int flags, char **out,
    size_t *len, struct dbpki_err *e);

/* Write buf as base in the open directory dfd: a temporary file created
 * there exclusively (never through a link), with exactly mode, written and
 * fsynced, then renamed over base (replacing it, a symlink included, never
 * following one) or, with excl, linked to it (DBPKI_E_EXISTS when base
 * exists: of two racing writers one wins); then the directory is fsynced.
 * A reader never sees a half-written file.  what names base in errors. */
int util_write_at(int dfd, const char *base, const void *buf, size_t len,
    mode_t mode, int excl, const char *what, struct dbpki_err *e);

/* Replace path atomically with buf: write a temporary file in the same
 * directory created with exactly `mode` (O_EXCL, O_NOFOLLOW), fsync, rename
 * over path, fsync the directory.  On failure path is untouched and the
 * temporary file is gone. */
int util_write_atomic(const char *path, const void *buf, size_t len,
    mode_t mode, struct dbpki_err *e);

/* Create path with buf, only if it does not exist yet: the same temporary
 * file, then link(2) to path, so that of writers racing for one name
 * exactly one succeeds and nobody sees a partial file.  DBPKI_E_EXISTS
 * when path exists (a symlink included). */
int util_write_new(const char *path, const void *buf, size_t len, mode_t mode,
    struct dbpki_err *e);

/* Create path and any missing parents with mode.  An existing final
 * directory must not be a symlink nor writable by group or others. */
int util_mkdirs(const char *path, mode_t mode, struct dbpki_err *e);

/* Flags for util_trust_path(). */
#define UTIL_TP_DIR     0x1 /* path is a directory (else a regular file) */
#define UTIL_TP_MISSING 0x2 /* path may not exist yet: check what exists */
#define UTIL_TP_UNSEEN_OK                                                      \
	0x4 /* a path we may not even look at passes
				 (check as the monitoring user: the SSH
				 identity under /root is none of its business) */

/* The trust-path check (OpenSSH's safe_path) for every input that decides
 * who gets keys or what runs on the nodes: path itself and every directory
 * above it, both as written and after resolving symlinks, must be owned by
 * root, the invoking user or the `dbpki` system user, and not be writable
 * by group or others, except a root-owned sticky directory (/tmp).  `what`
 * names the input in the message, which ends with the exact chmod or chown
 * that fixes it.  Returns 0 or DBPKI_E_CONFIG. */
int util_trust_path(
    const char *path, const char *what, int flags, struct dbpki_err *e);

/* fsync the directory that contains path (or path itself if a directory). */
int util_fsync_dir(const char *dir, struct dbpki_err *e);

/* snprintf into out; returns -1 when the result would be truncated. */
int util_fmt(char *out, size_t outsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Durations: "<n>s|m|h|d", e.g. 30d, 12h.  Returns 0 and seconds in *secs,
 * -1 on anything else (no unit, sign, overflow, zero, above 100 years). */
int util_parse_duration(const char *s, int64_t *secs);

/* Whole decimal number in [min, max], nothing else on the line. */
int util_parse_int(const char *s, long long min, long long max, long long *out);

/* Validators for values that end up in names, certificates or node scripts. */
int util_valid_hostname(const char *s); /* RFC 1123, <= 253 octets */
int util_valid_ip(const char *s);       /* IPv4 or IPv6 literal */
int util_valid_cidr(const char *s);     /* addr/prefix with a valid prefix */
int util_valid_name(const char *s);     /* [A-Za-z0-9_.-]+, no "..", <= 63 */
int util_valid_abspath(
    const char *s); /* /[A-Za-z0-9_./@+:-]*, no "..", <= 1024 */

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void util_hex(const unsigned char *in, size_t n, char *out);

/* Wipe memory the compiler may not optimise away. */
void util_wipe(void *p, size_t n);
/* Wipe then free; NULL is fine. */
void util_freezero(void *p, size_t n);

/* Seconds since the epoch, and a monotonic clock in milliseconds. */
int64_t util_now(void);
int64_t util_mono_ms(void);

/* Format a UTC time as ISO 8601 ("2026-11-22T20:00:00Z"). */
void util_iso8601(int64_t t, char out[32]);

/* s as one single-quoted POSIX shell word (it's -> 'it'\''s'), the one
 * quoting of every remote command: template slots and ssh_sftp's mv.
 * snprintf's contract: returns the length the word needs; out holds it
 * (NUL-terminated) only when that is below outsz. */
size_t util_shell_quote(const char *s, char *out, size_t outsz);

/* A name made from the clock ("20261122T205010Z-123456789"): UTC, then
 * the nanoseconds, fixed width, so that sorting names sorts by time (and
 * after a pre-0.2 name of the same second, which is its prefix); strictly
 * increasing within a process (a coarse clock gets +1 ns).  Only
 * [0-9TZ-]: a CMS console word, a file name.  Release ids, journals,
 * archives and backups use it; the node-side scripts make the same form
 * with `date -u +%Y%m%dT%H%M%SZ-%N`. */
#define UTIL_STAMP_LEN 32
void util_stamp(char out[UTIL_STAMP_LEN]);

#endif
