/*
 * stats.c — request counters behind the finbert_stats view.
 *
 * With shared_preload_libraries the counters live in shared memory and
 * cover the whole cluster; every field is a pg_atomic_uint64 updated with
 * fetch-add, so no lock is needed (a reader may see a request's texts
 * before its tokens; the view is a statistic, not a snapshot).  Without
 * preloading they are kept per backend and the view says so.
 *
 * Backends count requests, texts, tokens, busy time and errors of their
 * finbert calls (inline or through the worker alike) and cache hits and
 * misses; engine calls are counted by whoever makes them (batches), the
 * worker also counts its own batches and their texts (worker_batches,
 * worker_mean_batch_size); the cache writer counts writes and evictions.
 * Tokens per second over the last minute come from a ring of 60 one-second
 * buckets under a spinlock (a few instructions per engine call).
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "finbert_pg.h"

typedef struct FinbertStats
{
	pg_atomic_uint64 requests;	/* successful FinbertExecute calls */
	pg_atomic_uint64 texts;		/* texts in them */
	pg_atomic_uint64 tokens;	/* tokens fed to the model */
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

PG_FUNCTION_INFO_V1(finbert_stats);
PG_FUNCTION_INFO_V1(finbert_stats_reset);

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
FinbertStatsWorkerBatch(uint64 requests, uint64 texts, uint64 batches)
{
	FinbertStats *st = Stats();

	pg_atomic_fetch_add_u64(&st->worker_requests, requests);
	pg_atomic_fetch_add_u64(&st->worker_batches, batches);
	pg_atomic_fetch_add_u64(&st->worker_texts, texts);
	pg_atomic_fetch_add_u64(&st->batches, batches);
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

/*
 * finbert_stats() returns one row; the columns are listed in the install
 * script (finbert_stats view).
 */
Datum
finbert_stats(PG_FUNCTION_ARGS)
{
	FinbertStats *st = Stats();
	FinbertQueueStatus qs;
	FinbertCacheStatus cs;
	TupleDesc	tupdesc;
	Datum		values[28];
	bool		nulls[28] = {0};
	uint64		requests,
				texts,
				tokens,
				batches,
				busy_us,
				wbatches,
				wtexts;
	bool		shared;
	int			i = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	shared = FinbertQueueGetStatus(&qs);
	FinbertCacheGetStatus(&cs);
	requests = pg_atomic_read_u64(&st->requests);
	texts = pg_atomic_read_u64(&st->texts);
	tokens = pg_atomic_read_u64(&st->tokens);
	batches = pg_atomic_read_u64(&st->batches);
	busy_us = pg_atomic_read_u64(&st->busy_us);
	wbatches = pg_atomic_read_u64(&st->worker_batches);
	wtexts = pg_atomic_read_u64(&st->worker_texts);

	values[i++] = CStringGetTextDatum(SharedStats ? "cluster" : "backend");
	values[i++] = CStringGetTextDatum(GetConfigOption("finbert.execution", false, false));
	if (qs.worker_pid != 0)
		values[i++] = Int32GetDatum(qs.worker_pid);
	else
		nulls[i++] = true;
	values[i++] = CStringGetTextDatum(qs.worker_state);
	values[i++] = Int64GetDatum((int64) requests);
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&st->worker_requests));
	values[i++] = Int64GetDatum((int64) texts);
	values[i++] = Int64GetDatum((int64) batches);
	if (batches > 0)
		values[i++] = Float8GetDatum((double) texts / (double) batches);
	else
		nulls[i++] = true;
	values[i++] = Int64GetDatum((int64) wbatches);
	if (wbatches > 0)
		values[i++] = Float8GetDatum((double) wtexts / (double) wbatches);
	else
		nulls[i++] = true;
	values[i++] = Int64GetDatum((int64) tokens);
	values[i++] = Float8GetDatum((double) busy_us / 1000.0);
	if (busy_us > 0)
		values[i++] = Float8GetDatum((double) tokens * 1e6 / (double) busy_us);
	else
		nulls[i++] = true;
	values[i++] = Float8GetDatum(TokensLastMinute(st));
	if (shared)
	{
		values[i++] = Int32GetDatum(qs.queued);
		values[i++] = Int32GetDatum(qs.running);
		values[i++] = Int32GetDatum(qs.slots_in_use);
	}
	else
	{
		nulls[i++] = true;
		nulls[i++] = true;
		nulls[i++] = true;
	}
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&st->errors));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&st->model_loads));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&st->cache_hits));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&st->cache_misses));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&st->cache_writes));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&st->cache_evictions));
	if (cs.available)
	{
		values[i++] = Int64GetDatum(cs.pending);
		values[i++] = Int64GetDatum(cs.dropped);
		if (cs.writer_pid != 0)
			values[i++] = Int32GetDatum(cs.writer_pid);
		else
			nulls[i++] = true;
	}
	else
	{
		nulls[i++] = true;
		nulls[i++] = true;
		nulls[i++] = true;
	}
	values[i++] = TimestampTzGetDatum((TimestampTz) pg_atomic_read_u64(&st->reset_time));
	Assert(i == lengthof(values));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
finbert_stats_reset(PG_FUNCTION_ARGS)
{
	FinbertStats *st = Stats();

	FinbertCheckAdmin("reset finbert statistics");
	for (int i = 0; i < STATS_COUNTERS; i++)
		pg_atomic_write_u64(Counter(st, i), 0);
	SpinLockAcquire(&st->rate_lock);
	memset(st->rate_second, 0, sizeof(st->rate_second));
	memset(st->rate_tokens, 0, sizeof(st->rate_tokens));
	SpinLockRelease(&st->rate_lock);
	FinbertCacheResetStats();
	pg_atomic_write_u64(&st->reset_time, (uint64) GetCurrentTimestamp());
	PG_RETURN_VOID();
}
