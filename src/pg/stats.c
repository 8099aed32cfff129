/*
 * stats.c — request counters behind the finbert_stats view.
 *
 * With shared_preload_libraries the counters live in shared memory and
 * cover the whole cluster; every field is a pg_atomic_uint64 updated with
 * fetch-add, so no lock is needed (a reader may see a request's texts
 * before its tokens; the view is a statistic, not a snapshot).  Without
 * preloading they are kept per backend and the view says so.
 *
 * Backends count requests, texts, busy time and errors of their finbert
 * calls (inline or through the worker alike) and cache hits and misses;
 * engine calls and the tokens they run (as the engine reports them,
 * fb_session_tokens) are counted by whoever makes them, a backend inline
 * or the worker, which also counts its own batches and their texts
 * (worker_batches, worker_mean_batch_size) before it answers; the cache
 * writer counts writes and evictions.
 * Tokens per second over the last minute come from a ring of 60 one-second
 * buckets under a spinlock (a few instructions per engine call).
 *
 * A bottom layer (finbert_pg.h): every file may count, this file calls no
 * other file of src/pg.  The finbert_stats view, which adds the state of
 * the queue and of the cache writer, is built in statfuncs.c.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "finbert_pg.h"

typedef struct FinbertStats
{
	pg_atomic_uint64 requests;	/* successful FinbertExecute calls */
	pg_atomic_uint64 texts;		/* texts in them */
	pg_atomic_uint64 tokens;	/* tokens run through the model */
	pg_atomic_uint64 batches;	/* engine calls */
	pg_atomic_uint64 busy_us;	/* wall time inside FinbertExecute */
	pg_atomic_uint64 errors;	/* requests that raised an ERROR */
	pg_atomic_uint64 model_loads;	/* models opened by a backend or the worker */
	pg_atomic_uint64 worker_requests;	/* requests answered by the worker */
	pg_atomic_uint64 worker_batches;	/* engine calls of the worker */
	pg_atomic_uint64 worker_texts;	/* texts in them */
	pg_atomic_uint64 cache_hits;	/* texts found in the embedding cache */
	pg_atomic_uint64 cache_misses;	/* texts computed and queued for it */
	pg_atomic_uint64 cache_writes;	/* rows the cache writer inserted */
	pg_atomic_uint64 cache_evictions;	/* rows it evicted */
	pg_atomic_uint64 reset_time;	/* TimestampTz of the last reset */

	/* tokens per second over the last minute */
	slock_t		rate_lock;
	int64		rate_second[60];
	uint64		rate_tokens[60];
} FinbertStats;

#define STATS_COUNTERS 14		/* pg_atomic_uint64 fields before reset_time */

static FinbertStats *SharedStats = NULL;	/* in shared memory */
static FinbertStats LocalStats;
static bool LocalStatsReady = false;

static inline pg_atomic_uint64 *
Counter(FinbertStats *st, int i)
{
	return &((pg_atomic_uint64 *) st)[i];
}

static void
InitStats(FinbertStats *st)
{
	StaticAssertStmt(offsetof(FinbertStats, reset_time) ==
					 STATS_COUNTERS * sizeof(pg_atomic_uint64),
					 "counters must come first in FinbertStats");
	for (int i = 0; i < STATS_COUNTERS; i++)
		pg_atomic_init_u64(Counter(st, i), 0);
	pg_atomic_init_u64(&st->reset_time, (uint64) GetCurrentTimestamp());
	SpinLockInit(&st->rate_lock);
	memset(st->rate_second, 0, sizeof(st->rate_second));
	memset(st->rate_tokens, 0, sizeof(st->rate_tokens));
}

void
FinbertStatsShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(FinbertStats)));
}

void
FinbertStatsShmemStartup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	SharedStats = ShmemInitStruct("finbert stats", sizeof(FinbertStats), &found);
	if (!found)
		InitStats(SharedStats);
	LWLockRelease(AddinShmemInitLock);
}

static FinbertStats *
Stats(void)
{
	if (SharedStats != NULL)
		return SharedStats;
	if (!LocalStatsReady)
	{
		InitStats(&LocalStats);
		LocalStatsReady = true;
	}
	return &LocalStats;
}

void
FinbertStatsCount(uint64 texts, uint64 tokens, uint64 batches,
				  uint64 elapsed_us)
{
	FinbertStats *st = Stats();

	pg_atomic_fetch_add_u64(&st->requests, 1);
	pg_atomic_fetch_add_u64(&st->texts, texts);
	pg_atomic_fetch_add_u64(&st->tokens, tokens);
	pg_atomic_fetch_add_u64(&st->batches, batches);
	pg_atomic_fetch_add_u64(&st->busy_us, elapsed_us);
}

void
FinbertStatsError(void)
{
	pg_atomic_fetch_add_u64(&Stats()->errors, 1);
}

void
FinbertStatsModelLoad(void)
{
	pg_atomic_fetch_add_u64(&Stats()->model_loads, 1);
}

void
FinbertStatsWorkerBatch(uint64 requests, uint64 texts, uint64 batches,
						uint64 tokens)
{
	FinbertStats *st = Stats();

	pg_atomic_fetch_add_u64(&st->worker_requests, requests);
	pg_atomic_fetch_add_u64(&st->worker_batches, batches);
	pg_atomic_fetch_add_u64(&st->worker_texts, texts);
	pg_atomic_fetch_add_u64(&st->batches, batches);
	pg_atomic_fetch_add_u64(&st->tokens, tokens);
	FinbertStatsTokens(tokens);
}

void
FinbertStatsTokens(uint64 tokens)
{
	FinbertStats *st = Stats();
	int64		second = (int64) (GetCurrentTimestamp() / USECS_PER_SEC);
	int			b = (int) (second % 60);

	if (tokens == 0)
		return;
	SpinLockAcquire(&st->rate_lock);
	if (st->rate_second[b] != second)
	{
		st->rate_second[b] = second;
		st->rate_tokens[b] = 0;
	}
	st->rate_tokens[b] += tokens;
	SpinLockRelease(&st->rate_lock);
}

/* Tokens per second over the 60 seconds before the current one. */
static double
TokensLastMinute(FinbertStats *st)
{
	int64		now = (int64) (GetCurrentTimestamp() / USECS_PER_SEC);
	uint64		sum = 0;

	SpinLockAcquire(&st->rate_lock);
	for (int b = 0; b < 60; b++)
		if (st->rate_second[b] > now - 60 && st->rate_second[b] <= now)
			sum += st->rate_tokens[b];
	SpinLockRelease(&st->rate_lock);
	return (double) sum / 60.0;
}

void
FinbertStatsCache(uint64 hits, uint64 misses)
{
	FinbertStats *st = Stats();

	pg_atomic_fetch_add_u64(&st->cache_hits, hits);
	pg_atomic_fetch_add_u64(&st->cache_misses, misses);
}

void
FinbertStatsCacheWrites(uint64 n)
{
	pg_atomic_fetch_add_u64(&Stats()->cache_writes, n);
}

void
FinbertStatsCacheEvictions(uint64 n)
{
	pg_atomic_fetch_add_u64(&Stats()->cache_evictions, n);
}

void
FinbertStatsRead(FinbertStatsData *out)
{
	FinbertStats *st = Stats();

	out->shared = SharedStats != NULL;
	out->requests = pg_atomic_read_u64(&st->requests);
	out->texts = pg_atomic_read_u64(&st->texts);
	out->tokens = pg_atomic_read_u64(&st->tokens);
	out->batches = pg_atomic_read_u64(&st->batches);
	out->busy_us = pg_atomic_read_u64(&st->busy_us);
	out->errors = pg_atomic_read_u64(&st->errors);
	out->model_loads = pg_atomic_read_u64(&st->model_loads);
	out->worker_requests = pg_atomic_read_u64(&st->worker_requests);
	out->worker_batches = pg_atomic_read_u64(&st->worker_batches);
	out->worker_texts = pg_atomic_read_u64(&st->worker_texts);
	out->cache_hits = pg_atomic_read_u64(&st->cache_hits);
	out->cache_misses = pg_atomic_read_u64(&st->cache_misses);
	out->cache_writes = pg_atomic_read_u64(&st->cache_writes);
	out->cache_evictions = pg_atomic_read_u64(&st->cache_evictions);
	out->tokens_per_second_1m = TokensLastMinute(st);
	out->reset_time = (TimestampTz) pg_atomic_read_u64(&st->reset_time);
}

void
FinbertStatsReset(void)
{
	FinbertStats *st = Stats();

	for (int i = 0; i < STATS_COUNTERS; i++)
		pg_atomic_write_u64(Counter(st, i), 0);
	SpinLockAcquire(&st->rate_lock);
	memset(st->rate_second, 0, sizeof(st->rate_second));
	memset(st->rate_tokens, 0, sizeof(st->rate_tokens));
	SpinLockRelease(&st->rate_lock);
	pg_atomic_write_u64(&st->reset_time, (uint64) GetCurrentTimestamp());
}
