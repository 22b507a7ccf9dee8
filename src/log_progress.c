/* log_progress: live per-node lines on a terminal.
 *
 * A block of one line per node is printed when a step starts; a ticker
 * thread redraws it in place (cursor up, clear line) a few times a second
 * so that a slow node shows its elapsed time growing instead of a frozen
 * screen.  Lines are cut to the terminal's width because a wrapped line
 * would break the cursor arithmetic, and a block taller than the terminal
 * falls back to printing each final line once.
 */
#include "dbpki/log.h"
#include "dbpki/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TICK_MS 200

struct progress_row {
	char label[64];
	char text[256];
	int done;
};

struct log_progress {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t ticker;
	int ticking;
	int stop;
	int live; /* redraw in place; 0 = final lines only */
	int width;
	int64_t t0;
	char what[64];
	int n;
	struct progress_row rows[];
};

static void
term_size(int *cols, int *lines)
{
	struct winsize ws;

	*cols = 80;
	*lines = 24;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
		*cols = ws.ws_col;
		*lines = ws.ws_row;
	}
}

static void
row_line(const struct log_progress *p, int i, char *out, size_t outsz)
{
	const struct progress_row *r = &p->rows[i];
	static const char spin[] = "|/-\\";
	int64_t ms = util_mono_ms() - p->t0;

	if (r->done)
		snprintf(out, outsz, "%s", r->text);
	else if (p->stop)
		snprintf(
		    out, outsz, "  %-12s %-10s not run", r->label, p->what);
	else
		snprintf(out, outsz, "  %-12s %-10s %c running %6.1fs",
		    r->label, p->what, spin[(ms / TICK_MS) % 4],
		    (double)ms / 1000.0);
	if ((int)strlen(out) > p->width)
		out[p->width] = '\0';
}

/* Caller holds mu. */
static void
redraw(struct log_progress *p, int first)
{
	char line[512];
	int i;

	if (!first)
		fprintf(stderr, "\033[%dA", p->n);
	for (i = 0; i < p->n; i++) {
		row_line(p, i, line, sizeof(line));
		fprintf(stderr, "\r\033[2K%s\n", line);
	}
	fflush(stderr);
}

static void *
tick(void *arg)
{
	struct log_progress *p = arg;
	struct timespec ts;

	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		if (!p->stop)
			redraw(p, 0);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct log_progress *
log_progress_start(const char *what, const char *const *labels, int n)
{
	struct log_progress *p;
	int i, lines;

	if (log_get_mode() != LOG_TTY || n <= 0)
		return NULL;
	p = calloc(1, sizeof(*p) + (size_t)n * sizeof(p->rows[0]));
	if (p == NULL)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->n = n;
	p->t0 = util_mono_ms();
	snprintf(p->what, sizeof(p->what), "%s", what);
	for (i = 0; i < n; i++)
		snprintf(p->rows[i].label, sizeof(p->rows[i].label), "%s",
		    labels[i]);
	term_size(&p->width, &lines);
	p->width = p->width > 1 ? p->width - 1 : 1;
	p->live = n < lines - 1;
	if (p->live) {
		pthread_mutex_lock(&p->mu);
		redraw(p, 1);
		pthread_mutex_unlock(&p->mu);
		p->ticking = pthread_create(&p->ticker, NULL, tick, p) == 0;
	}
	return p;
}

int
log_progress_done(struct log_progress *p, const char *label, const char *text)
{
	int i;

	if (p == NULL)
		return -1;
	pthread_mutex_lock(&p->mu);
	for (i = 0; i < p->n; i++)
		if (!p->rows[i].done && strcmp(p->rows[i].label, label) == 0)
			break;
	if (i < p->n) {
		snprintf(p->rows[i].text, sizeof(p->rows[i].text), "%s", text);
		p->rows[i].done = 1;
		if (!p->live)
			fprintf(stderr, "%s\n", text);
	}
	pthread_mutex_unlock(&p->mu);
	return i < p->n ? 0 : -1;
}

void
log_progress_end(struct log_progress *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (p->ticking)
		pthread_join(p->ticker, NULL);
	if (p->live)
		redraw(p, 0);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
