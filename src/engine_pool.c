/* engine_pool: bounded fan-out over nodes.
 *
 * Threads, one SSH session per node and per thread: each node's work is
 * plain blocking code with its own deadlines inside the ssh module, and
 * libssh2 is safe across threads as long as a session is used by one thread
 * at a time (libssh2_init is called once in main before any thread). */
#include "dbpki/engine.h"

#include <pthread.h>
#include <stdlib.h>

struct pool {
	pthread_mutex_t mu;
	int next, n;
	void (*fn)(int, void *);
	void *arg;
};

static void *
worker(void *p_)
{
	struct pool *p = p_;
	int i;

	for (;;) {
		pthread_mutex_lock(&p->mu);
		i = p->next < p->n ? p->next++ : -1;
		pthread_mutex_unlock(&p->mu);
		if (i < 0)
			return NULL;
		p->fn(i, p->arg);
	}
}

int
engine_pool_run(int n, int parallel, void (*fn)(int i, void *arg), void *arg,
    struct dbpki_err *e)
{
	struct pool p = {PTHREAD_MUTEX_INITIALIZER, 0, n, fn, arg};
	pthread_t *t;
	int i, started = 0;

	if (n <= 0)
		return 0;
	if (parallel > n)
		parallel = n;
	if (parallel <= 1) {
		for (i = 0; i < n; i++)
			fn(i, arg);
		return 0;
	}
	if ((t = calloc((size_t)parallel, sizeof(*t))) == NULL)
		return err_set(e, DBPKI_E_NOMEM, "out of memory");
	for (i = 0; i < parallel; i++) {
		if (pthread_create(&t[i], NULL, worker, &p) != 0)
			break;
		started++;
	}
	/* With no thread at all, do the work here rather than fail. */
	if (started == 0)
		worker(&p);
	for (i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	free(t);
	return 0;
}
