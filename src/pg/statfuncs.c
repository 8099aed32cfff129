/*
 * statfuncs.c — the SQL functions behind the finbert_stats view.
 *
 *   finbert_stats()       → one row: the counters (stats.c), the state of
 *                           the worker and its queue (queue.c) and of the
 *                           cache writer's queue (cache.c)
 *   finbert_stats_reset() → void (admin): zeroes the counters
 *
 * The columns are listed in the install script (finbert_stats view).  This
 * file sits above stats.c, queue.c and cache.c (finbert_pg.h), so the
 * counters need not know about the queues.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "finbert_pg.h"

PG_FUNCTION_INFO_V1(finbert_stats);
PG_FUNCTION_INFO_V1(finbert_stats_reset);

Datum
finbert_stats(PG_FUNCTION_ARGS)
{
	FinbertStatsData st;
	FinbertQueueStatus qs;
	FinbertCacheStatus cs;
	TupleDesc	tupdesc;
	Datum		values[28];
	bool		nulls[28] = {0};
	bool		shared;
	int			i = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	shared = FinbertQueueGetStatus(&qs);
	FinbertCacheGetStatus(&cs);
	FinbertStatsRead(&st);

	values[i++] = CStringGetTextDatum(st.shared ? "cluster" : "backend");
	values[i++] = CStringGetTextDatum(GetConfigOption("finbert.execution", false, false));
	if (qs.worker_pid != 0)
		values[i++] = Int32GetDatum(qs.worker_pid);
	else
		nulls[i++] = true;
	values[i++] = CStringGetTextDatum(qs.worker_state);
	values[i++] = Int64GetDatum((int64) st.requests);
	values[i++] = Int64GetDatum((int64) st.worker_requests);
	values[i++] = Int64GetDatum((int64) st.texts);
	values[i++] = Int64GetDatum((int64) st.batches);
	if (st.batches > 0)
		values[i++] = Float8GetDatum((double) st.texts / (double) st.batches);
	else
		nulls[i++] = true;
	values[i++] = Int64GetDatum((int64) st.worker_batches);
	if (st.worker_batches > 0)
		values[i++] = Float8GetDatum((double) st.worker_texts / (double) st.worker_batches);
	else
		nulls[i++] = true;
	values[i++] = Int64GetDatum((int64) st.tokens);
	values[i++] = Float8GetDatum((double) st.busy_us / 1000.0);
	if (st.busy_us > 0)
		values[i++] = Float8GetDatum((double) st.tokens * 1e6 / (double) st.busy_us);
	else
		nulls[i++] = true;
	values[i++] = Float8GetDatum(st.tokens_per_second_1m);
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
	values[i++] = Int64GetDatum((int64) st.errors);
	values[i++] = Int64GetDatum((int64) st.model_loads);
	values[i++] = Int64GetDatum((int64) st.cache_hits);
	values[i++] = Int64GetDatum((int64) st.cache_misses);
	values[i++] = Int64GetDatum((int64) st.cache_writes);
	values[i++] = Int64GetDatum((int64) st.cache_evictions);
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
	values[i++] = TimestampTzGetDatum(st.reset_time);
	Assert(i == lengthof(values));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
finbert_stats_reset(PG_FUNCTION_ARGS)
{
	FinbertCheckAdmin("reset finbert statistics");
	FinbertStatsReset();
	FinbertCacheResetStats();
	PG_RETURN_VOID();
}
