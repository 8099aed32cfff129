/*
 * stats.c — request counters behind the finbert_stats view.
 *
 * With shared_preload_libraries the counters live in shared memory and
 * cover the whole cluster; every field is a pg_atomic_uint64 updated with
 * fetch-add, so no lock is needed (a reader may see a request's texts
 * before its tokens; the view is a statistic, not a snapshot).  Without
 * preloading they are kept per backend and the view says so.
 *
 * The inline path fills requests, texts, tokens, batches, busy time,
 * errors and model loads; the background worker (next issue) adds its own
 * state and the embedding cache counters.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
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
	pg_atomic_uint64 model_loads;	/* models opened by a backend */
	pg_atomic_uint64 reset_time;	/* TimestampTz of the last reset */
} FinbertStats;

static FinbertStats *SharedStats = NULL;	/* in shared memory */
static FinbertStats LocalStats;
static bool LocalStatsReady = false;

PG_FUNCTION_INFO_V1(finbert_stats);
PG_FUNCTION_INFO_V1(finbert_stats_reset);

static void
InitStats(FinbertStats *st)
{
	pg_atomic_init_u64(&st->requests, 0);
	pg_atomic_init_u64(&st->texts, 0);
	pg_atomic_init_u64(&st->tokens, 0);
	pg_atomic_init_u64(&st->batches, 0);
	pg_atomic_init_u64(&st->busy_us, 0);
	pg_atomic_init_u64(&st->errors, 0);
	pg_atomic_init_u64(&st->model_loads, 0);
	pg_atomic_init_u64(&st->reset_time, (uint64) GetCurrentTimestamp());
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

/*
 * finbert_stats() returns one row: scope, execution, worker_state,
 * requests, texts, batches, mean_batch_size, tokens, busy_ms,
 * tokens_per_second, errors, model_loads, cache_hits, cache_misses,
 * stats_reset.
 */
Datum
finbert_stats(PG_FUNCTION_ARGS)
{
	FinbertStats *st = Stats();
	TupleDesc	tupdesc;
	Datum		values[15];
	bool		nulls[15] = {0};
	uint64		requests,
				texts,
				tokens,
				batches,
				busy_us;
	int			i = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	requests = pg_atomic_read_u64(&st->requests);
	texts = pg_atomic_read_u64(&st->texts);
	tokens = pg_atomic_read_u64(&st->tokens);
	batches = pg_atomic_read_u64(&st->batches);
	busy_us = pg_atomic_read_u64(&st->busy_us);

	values[i++] = CStringGetTextDatum(SharedStats ? "cluster" : "backend");
	values[i++] = CStringGetTextDatum(finbert_execution == FINBERT_EXEC_WORKER ?
									  "worker" : "inline");
	values[i++] = CStringGetTextDatum("not running");
	values[i++] = Int64GetDatum((int64) requests);
	values[i++] = Int64GetDatum((int64) texts);
	values[i++] = Int64GetDatum((int64) batches);
	if (batches > 0)
		values[i++] = Float8GetDatum((double) texts / (double) batches);
	else
		nulls[i++] = true;
	values[i++] = Int64GetDatum((int64) tokens);
	values[i++] = Float8GetDatum((double) busy_us / 1000.0);
	if (busy_us > 0)
		values[i++] = Float8GetDatum((double) tokens * 1e6 / (double) busy_us);
	else
		nulls[i++] = true;
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&st->errors));
	values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&st->model_loads));
	values[i++] = Int64GetDatum(0); /* embedding cache: next issue */
	values[i++] = Int64GetDatum(0);
	values[i++] = TimestampTzGetDatum((TimestampTz) pg_atomic_read_u64(&st->reset_time));
	Assert(i == lengthof(values));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
finbert_stats_reset(PG_FUNCTION_ARGS)
{
	FinbertStats *st = Stats();

	FinbertCheckAdmin("reset finbert statistics");
	pg_atomic_write_u64(&st->requests, 0);
	pg_atomic_write_u64(&st->texts, 0);
	pg_atomic_write_u64(&st->tokens, 0);
	pg_atomic_write_u64(&st->batches, 0);
	pg_atomic_write_u64(&st->busy_us, 0);
	pg_atomic_write_u64(&st->errors, 0);
	pg_atomic_write_u64(&st->model_loads, 0);
	pg_atomic_write_u64(&st->reset_time, (uint64) GetCurrentTimestamp());
	PG_RETURN_VOID();
}
