/* log: what the admin sees.
 *
 * Human messages go to stderr (progress, warnings, errors); results that a
 * script reads (inspect, status, JSON events) go to stdout.  Text that came
 * from outside (node output, server messages, file contents) must pass
 * through log_sanitize() before it is printed.
 */
#ifndef DBPKI_LOG_H
#define DBPKI_LOG_H

#include <stddef.h>
#include <stdio.h>

enum log_mode {
	LOG_PLAIN, /* one line per event, for files and pipes */
	LOG_TTY,   /* live progress lines on a terminal */
	LOG_JSON,  /* one JSON object per line on stdout */
};

/* Choose the output mode; LOG_PLAIN or LOG_TTY is picked from isatty(2)
 * unless json is set.  quiet drops info lines, verbose adds debug lines. */
void log_init(int json, int quiet, int verbose);
enum log_mode log_get_mode(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Live progress on a terminal: one line per label (node) showing the
 * elapsed time, redrawn in place until log_progress_done() gives the line
 * its final text.  NULL (and nothing printed) unless the mode is LOG_TTY;
 * every function accepts NULL.  No other output may be written to stderr
 * between start and end. */
struct log_progress;
struct log_progress *log_progress_start(
    const char *what, const char *const *labels, int n);
/* 0 if label was a running row of p, else -1 (the caller prints). */
int log_progress_done(
    struct log_progress *p, const char *label, const char *text);
void log_progress_end(struct log_progress *p);

/* The one output path of text from outside (DESIGN "Text from outside"):
 * node output, server messages, certificate fields, file contents.  Copy
 * at most srclen bytes of src (up to a NUL) into dst, NUL-terminated and
 * cut at a whole escape to fit dstsz.  Printable ASCII and tab pass, a
 * newline only if keep_nl; C0 controls, DEL and bytes that start no
 * well-formed UTF-8 character become \xNN; C1 controls and the bidi
 * controls (U+061C, U+200E/F, U+202A-202E, U+2066-2069) become \uNNNN;
 * other characters pass on a UTF-8 locale (LC_ALL/LC_CTYPE/LANG) and are
 * \uNNNN (\UNNNNNNNN) otherwise.  Returns dst. */
char *log_sanitize(
    char *dst, size_t dstsz, const char *src, size_t srclen, int keep_nl);

/* The same for the end of src: as much of its last part as fits (whole
 * characters, after the last NUL), and at most max_lines lines of it when
 * max_lines > 0.  For the last words of a node's output. */
char *log_sanitize_tail(char *dst, size_t dstsz, const char *src, size_t srclen,
    int keep_nl, int max_lines);

/* Write s as a JSON string literal (with quotes) to f. */
void log_json_string(FILE *f, const char *s);

#endif
