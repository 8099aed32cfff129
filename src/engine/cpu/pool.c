/*
 * pool.c — persistent worker threads for the forward pass.
 *
 * A forward pass is a chain of short phases (a small model's layer is a
 * few hundred microseconds), so waking sleeping threads through the
 * kernel for each phase costs as much as the work on short inputs.  Both
 * the workers (waiting for the next phase) and the caller (waiting for
 * the workers) therefore spin for a bounded time (FB_POOL_SPIN pauses,
 * some tens of microseconds) before they block on the condition
 * variables; an idle pool sleeps.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void) 0)
#endif

#include "fb_pool.h"

#define FB_POOL_SPIN 4000		/* pauses before blocking (tens of µs) */
#define FB_POOL_POLL_SPINS 256	/* pauses between two polls while spinning */
#define FB_POOL_POLL_US 1000	/* the caller's poll interval while blocked */

struct fb_pool
{
	int			n;				/* threads including the caller */
	pthread_t  *threads;
	pthread_mutex_t mu;
	pthread_cond_t start;		/* workers wait for a new generation */
	pthread_cond_t done;		/* caller waits for pending == 0 */
	unsigned long generation;	/* written under mu, read atomically */
	int			pending;		/* workers still running (atomic) */
	int			sleepers;		/* workers blocked on start (under mu) */
	int			stop;
	fb_pool_fn	fn;
	void	   *arg;
};

typedef struct worker_arg
{
	fb_pool    *pool;
	int			tid;
} worker_arg;

static void *
worker_main(void *p)
{
	worker_arg *wa = p;
	fb_pool    *pool = wa->pool;
	int			tid = wa->tid;
	unsigned long seen = 0;

	free(wa);
	for (;;)
	{
		fb_pool_fn	fn;
		void	   *arg;

		for (int i = 0; i < FB_POOL_SPIN &&
			 __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE) == seen &&
			 !__atomic_load_n(&pool->stop, __ATOMIC_RELAXED); i++)
			cpu_relax();
		pthread_mutex_lock(&pool->mu);
		while (pool->generation == seen && !pool->stop)
		{
			pool->sleepers++;
			pthread_cond_wait(&pool->start, &pool->mu);
			pool->sleepers--;
		}
		if (pool->stop)
		{
			pthread_mutex_unlock(&pool->mu);
			break;
		}
		seen = pool->generation;
		fn = pool->fn;
		arg = pool->arg;
		pthread_mutex_unlock(&pool->mu);
		fn(arg, tid, pool->n);
		if (__atomic_sub_fetch(&pool->pending, 1, __ATOMIC_ACQ_REL) == 0)
		{
			/* under mu: the caller checks pending under mu before it waits */
			pthread_mutex_lock(&pool->mu);
			pthread_cond_signal(&pool->done);
			pthread_mutex_unlock(&pool->mu);
		}
	}
	return NULL;
}

fb_pool *
fb_pool_create(int n_threads)
{
	fb_pool    *pool;
	sigset_t	all,
				old;
	int			started = 0;

	if (n_threads < 2)
		return NULL;
	pool = calloc(1, sizeof(*pool));
	if (pool == NULL)
		return NULL;
	pool->n = n_threads;
	pool->threads = calloc((size_t) n_threads, sizeof(pthread_t));
	if (pool->threads == NULL)
	{
		free(pool);
		return NULL;
	}
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->start, NULL);
	pthread_cond_init(&pool->done, NULL);

	/* workers inherit a fully blocked signal mask */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 1; i < n_threads; i++)
	{
		worker_arg *wa = malloc(sizeof(*wa));

		if (wa == NULL)
			break;
		wa->pool = pool;
		wa->tid = i;
		if (pthread_create(&pool->threads[i], NULL, worker_main, wa) != 0)
		{
			free(wa);
			break;
		}
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (started != n_threads - 1)
	{
		pool->n = started + 1;	/* stop exactly the threads that exist */
		fb_pool_destroy(pool);
		return NULL;
	}
	return pool;
}

void
fb_pool_destroy(fb_pool *pool)
{
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->mu);
	__atomic_store_n(&pool->stop, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&pool->start);
	pthread_mutex_unlock(&pool->mu);
	for (int i = 1; i < pool->n; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_mutex_destroy(&pool->mu);
	pthread_cond_destroy(&pool->start);
	pthread_cond_destroy(&pool->done);
	free(pool->threads);
	free(pool);
}

int
fb_pool_size(const fb_pool *pool)
{
	return pool ? pool->n : 1;
}

void
fb_pool_run(fb_pool *pool, fb_pool_fn fn, void *arg)
{
	fb_pool_run_polled(pool, fn, arg, NULL, NULL);
}

/* Absolute time `us` microseconds from now, for pthread_cond_timedwait. */
static struct timespec
deadline_after_us(long us)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += us * 1000;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	return ts;
}

void
fb_pool_run_polled(fb_pool *pool, fb_pool_fn fn, void *arg,
				   fb_pool_poll_fn poll, void *poll_arg)
{
	bool		stopped = false;

	if (pool == NULL)
	{
		fn(arg, 0, 1);
		return;
	}
	pthread_mutex_lock(&pool->mu);
	pool->fn = fn;
	pool->arg = arg;
	__atomic_store_n(&pool->pending, pool->n - 1, __ATOMIC_RELAXED);
	__atomic_store_n(&pool->generation, pool->generation + 1, __ATOMIC_RELEASE);
	if (pool->sleepers > 0)
		pthread_cond_broadcast(&pool->start);
	pthread_mutex_unlock(&pool->mu);

	fn(arg, 0, pool->n);

	/*
	 * The caller may finish its share first (work is claimed dynamically,
	 * and its core may be the less busy one): it keeps polling while it
	 * waits, so a stop request reaches the workers however the work was
	 * split.  Once poll says stop, the workers see it and finish soon.
	 */
	for (int i = 0; i < FB_POOL_SPIN && __atomic_load_n(&pool->pending, __ATOMIC_ACQUIRE) > 0; i++)
	{
		if (poll != NULL && !stopped && i % FB_POOL_POLL_SPINS == FB_POOL_POLL_SPINS - 1)
			stopped = poll(poll_arg);
		cpu_relax();
	}
	if (__atomic_load_n(&pool->pending, __ATOMIC_ACQUIRE) > 0)
	{
		pthread_mutex_lock(&pool->mu);
		while (__atomic_load_n(&pool->pending, __ATOMIC_ACQUIRE) > 0)
		{
			if (poll == NULL || stopped)
			{
				pthread_cond_wait(&pool->done, &pool->mu);
				continue;
			}
			{
				struct timespec until = deadline_after_us(FB_POOL_POLL_US);

				pthread_cond_timedwait(&pool->done, &pool->mu, &until);
			}
			/* the callback runs without the pool's lock */
			pthread_mutex_unlock(&pool->mu);
			stopped = poll(poll_arg);
			pthread_mutex_lock(&pool->mu);
		}
		pthread_mutex_unlock(&pool->mu);
	}
}
