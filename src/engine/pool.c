/*
 * pool.c — persistent worker threads for the forward pass.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "fb_pool.h"

struct fb_pool
{
	int			n;				/* threads including the caller */
	pthread_t  *threads;
	pthread_mutex_t mu;
	pthread_cond_t start;		/* workers wait for a new generation */
	pthread_cond_t done;		/* caller waits for pending == 0 */
	unsigned long generation;
	int			pending;
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
	pthread_mutex_lock(&pool->mu);
	for (;;)
	{
		while (pool->generation == seen && !pool->stop)
			pthread_cond_wait(&pool->start, &pool->mu);
		if (pool->stop)
			break;
		seen = pool->generation;
		pthread_mutex_unlock(&pool->mu);

		pool->fn(pool->arg, tid, pool->n);

		pthread_mutex_lock(&pool->mu);
		if (--pool->pending == 0)
			pthread_cond_signal(&pool->done);
	}
	pthread_mutex_unlock(&pool->mu);
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
	pool->stop = 1;
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
	if (pool == NULL)
	{
		fn(arg, 0, 1);
		return;
	}
	pthread_mutex_lock(&pool->mu);
	pool->fn = fn;
	pool->arg = arg;
	pool->pending = pool->n - 1;
	pool->generation++;
	pthread_cond_broadcast(&pool->start);
	pthread_mutex_unlock(&pool->mu);

	fn(arg, 0, pool->n);

	pthread_mutex_lock(&pool->mu);
	while (pool->pending > 0)
		pthread_cond_wait(&pool->done, &pool->mu);
	pthread_mutex_unlock(&pool->mu);
}
