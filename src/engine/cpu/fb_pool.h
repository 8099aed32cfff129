/*
 * fb_pool.h — a small persistent thread pool for the forward pass.
 *
 * The caller's thread takes part as thread 0; n - 1 workers wait for the
 * next job, spinning briefly and then on a condition variable (pool.c).
 * Workers block every signal so a host such as PostgreSQL keeps receiving
 * its signals on the main thread, and they never call back into the host.
 */
#ifndef FB_POOL_H
#define FB_POOL_H

#include "fb_internal.h"

typedef struct fb_pool fb_pool;

typedef void (*fb_pool_fn) (void *arg, int tid, int n_threads);

/* NULL when threads cannot be created (the caller then runs alone). */
fb_pool    *fb_pool_create(int n_threads);
void		fb_pool_destroy(fb_pool *pool);
int			fb_pool_size(const fb_pool *pool);

/* Runs fn(arg, tid, n) on every thread of the pool (tid 0 = caller) and
 * returns when all have finished.  pool may be NULL: fn(arg, 0, 1). */
void		fb_pool_run(fb_pool *pool, fb_pool_fn fn, void *arg);

/* true: stop requested.  Called on the caller's thread only. */
typedef bool (*fb_pool_poll_fn) (void *arg);

/*
 * fb_pool_run, and while the caller waits for the other threads after its
 * own share, it calls poll about every millisecond (more often while it
 * spins) until poll returns true.  So a host's stop request is seen while
 * the workers run, even when the caller's thread ran out of work first.
 */
void		fb_pool_run_polled(fb_pool *pool, fb_pool_fn fn, void *arg,
							   fb_pool_poll_fn poll, void *poll_arg);

/* Splits [0, n) into `parts` contiguous ranges aligned to `align`. */
static inline void
fb_split_range(size_t n, int part, int parts, size_t align, size_t *begin, size_t *end)
{
	size_t		chunk = (n + (size_t) parts - 1) / (size_t) parts;

	chunk = (chunk + align - 1) / align * align;
	*begin = chunk * (size_t) part;
	*end = *begin + chunk;
	if (*begin > n)
		*begin = n;
	if (*end > n)
		*end = n;
}

#endif
