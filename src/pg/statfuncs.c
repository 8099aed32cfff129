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
PG_FUNCTION_INFO_V1(finbert_worker_models);

/* Models the worker has open, with the device each runs on (device.c). */
Datum
finbert_worker_models(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	FinbertDeviceStatus ds;
	FinbertDeviceModel *models = palloc(sizeof(FinbertDeviceModel) * FINBERT_DEVICE_MODELS);
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (!FinbertDeviceGetStatus(&ds, models, &n))
		return (Datum) 0;
	for (int k = 0; k < n; k++)
	{
		Datum		values[3];
		bool		nulls[3] = {0};

		values[0] = CStringGetTextDatum(models[k].name);
		values[1] = CStringGetTextDatum(models[k].device);
		values[2] = Int64GetDatum(models[k].device_bytes);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
finbert_stats(PG_FUNCTION_ARGS)
{
	FinbertStatsData st;
	FinbertQueueStatus qs;
	FinbertCacheStatus cs;
	TupleDesc	tupdesc;
	FinbertDeviceStatus ds;
	Datum		values[35];
	bool		nulls[35] = {0};
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
	/* the worker's device and engine host (device.c) */
	if (FinbertDeviceGetStatus(&ds, NULL, NULL) && ds.device != FINBERT_DEVICE_UNKNOWN)
	{
		values[i++] = CStringGetTextDatum(ds.device == FINBERT_DEVICE_ON_CUDA ?
										  (ds.name[0] ? ds.name : "cuda") : "cpu");
		values[i++] = Int64GetDatum((int64) ds.used_bytes);
		values[i++] = Int64GetDatum((int64) ds.total_bytes);
		values[i++] = Int64GetDatum((int64) ds.batches);
		values[i++] = Int64GetDatum((int64) ds.tokens);
		if (ds.host_pid != 0)
			values[i++] = Int32GetDatum(ds.host_pid);
		else
			nulls[i++] = true;
		values[i++] = Int64GetDatum((int64) ds.host_failures);
	}
	else
	{
		for (int k = 0; k < 7; k++)
			nulls[i++] = true;
	}
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
