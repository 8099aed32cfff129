/*
 * progress.c — per-backend progress of statements that run finbert calls
 * in batches (batch.c), in shared memory, and the function behind the
 * finbert_progress view:
 *
 *   finbert_progress() → setof (pid, leader_pid, query_start, model,
 *                               rows_done, rows_expected, tokens_done,
 *                               tokens_per_second, seconds_left)
 *
 * One slot per backend (indexed by its backend id, like
 * pg_stat_progress_*), written only by its backend, once per batch;
 * readers copy a slot under its change count (the protocol of
 * pgstat_report_activity), so no lock is taken on the hot path.  The slot
 * is published while a statement has a Finbert Batch node running and
 * cleared when the last one ends, and on error or cancel (the transaction
 * abort).  Only with shared_preload_libraries: otherwise the view is empty.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "finbert_pg.h"

PG_FUNCTION_INFO_V1(finbert_progress);

typedef struct ProgressSlot
{
	pg_atomic_uint32 changecount;	/* odd while being written */
	int			pid;			/* 0: not in use */
	int			leader_pid;		/* parallel worker: its leader, else 0 */
	TimestampTz query_start;
	TimestampTz first_batch;	/* start of the first batch */
	char		model[FINBERT_NAME_MAX + 1];
	int64		rows_done;
	int64		rows_expected;
	int64		tokens_done;
} ProgressSlot;

static ProgressSlot *progress_slots = NULL;
static int	progress_nslots = 0;

/* This backend's nesting of running batch nodes. */
static int	progress_users = 0;

static Size
ProgressShmemSize(void)
{
	return mul_size(sizeof(ProgressSlot), MaxBackends);
}

void
FinbertProgressShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(ProgressShmemSize()));
}

void
FinbertProgressShmemStartup(void)
{
	bool		found;

	progress_slots = ShmemInitStruct("finbert progress", ProgressShmemSize(), &found);
	progress_nslots = MaxBackends;
	if (!found)
	{
		memset(progress_slots, 0, ProgressShmemSize());
		for (int i = 0; i < progress_nslots; i++)
			pg_atomic_init_u32(&progress_slots[i].changecount, 0);
	}
}

static bool at_exit_registered = false;

static void ProgressAtExit(int code, Datum arg);

static ProgressSlot *
MySlot(void)
{
	if (progress_slots != NULL && !at_exit_registered)
	{
		before_shmem_exit(ProgressAtExit, (Datum) 0);
		at_exit_registered = true;
	}
	if (progress_slots == NULL || MyBackendId == InvalidBackendId ||
		MyBackendId > progress_nslots)
		return NULL;
	return &progress_slots[MyBackendId - 1];
}

static inline void
BeginWrite(ProgressSlot *s)
{
	pg_atomic_fetch_add_u32(&s->changecount, 1);
	pg_write_barrier();
}

static inline void
EndWrite(ProgressSlot *s)
{
	pg_write_barrier();
	pg_atomic_fetch_add_u32(&s->changecount, 1);
}

static void
ClearSlot(void)
{
	ProgressSlot *s = MySlot();

	progress_users = 0;
	if (s == NULL || s->pid == 0)
		return;
	BeginWrite(s);
	s->pid = 0;
	EndWrite(s);
}

/*
 * A batch node starts: the first one of the statement publishes the slot
 * (model and the plan's row estimate); nested ones only add to it.
 * Returns true for the node that owns the row counts.
 */
bool
FinbertProgressStart(const char *model, double rows_expected)
{
	ProgressSlot *s = MySlot();

	if (progress_users++ > 0 || s == NULL)
		return progress_users == 1;
	BeginWrite(s);
	s->pid = MyProcPid;
	s->leader_pid = (MyProc && MyProc->lockGroupLeader &&
					 MyProc->lockGroupLeader != MyProc) ? MyProc->lockGroupLeader->pid : 0;
	s->query_start = GetCurrentStatementStartTimestamp();
	s->first_batch = GetCurrentTimestamp();
	strlcpy(s->model, model ? model : "", sizeof(s->model));
	s->rows_done = 0;
	s->rows_expected = rows_expected > 0 ? (int64) rows_expected : 0;
	s->tokens_done = 0;
	EndWrite(s);
	return true;
}

/* After a batch: rows (counted by the owning node only) and tokens. */
void
FinbertProgressBatch(bool owner, int64 rows, int64 tokens)
{
	ProgressSlot *s = MySlot();

	if (s == NULL || s->pid == 0)
		return;
	BeginWrite(s);
	if (owner)
		s->rows_done += rows;
	s->tokens_done += tokens;
	EndWrite(s);
}

/* A batch node ends; the last one clears the slot. */
void
FinbertProgressEnd(void)
{
	if (progress_users > 1)
	{
		progress_users--;
		return;
	}
	ClearSlot();
}

/* Transaction abort (error, cancel): nothing runs any more. */
void
FinbertProgressAtAbort(void)
{
	ClearSlot();
}

static void
ProgressAtExit(int code, Datum arg)
{
	ClearSlot();
}

static void
ReadSlot(const ProgressSlot *s, ProgressSlot *copy)
{
	for (;;)
	{
		uint32		before = pg_atomic_read_u32((pg_atomic_uint32 *) &s->changecount);

		pg_read_barrier();
		memcpy(copy, s, sizeof(*copy));
		pg_read_barrier();
		if ((before & 1) == 0 &&
			before == pg_atomic_read_u32((pg_atomic_uint32 *) &s->changecount))
			return;
		CHECK_FOR_INTERRUPTS();
	}
}

Datum
finbert_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; progress_slots && i < progress_nslots; i++)
	{
		ProgressSlot s;
		Datum		values[9];
		bool		nulls[9] = {0};
		double		secs;

		ReadSlot(&progress_slots[i], &s);
		if (s.pid == 0)
			continue;
		s.model[FINBERT_NAME_MAX] = '\0';
		secs = (double) (now - s.first_batch) / 1e6;
		values[0] = Int32GetDatum(s.pid);
		values[1] = Int32GetDatum(s.leader_pid);
		nulls[1] = s.leader_pid == 0;
		values[2] = TimestampTzGetDatum(s.query_start);
		values[3] = CStringGetTextDatum(s.model);
		values[4] = Int64GetDatum(s.rows_done);
		values[5] = Int64GetDatum(s.rows_expected);
		values[6] = Int64GetDatum(s.tokens_done);
		if (secs > 0)
			values[7] = Float8GetDatum((double) s.tokens_done / secs);
		else
			nulls[7] = true;
		/* time left at the rows' rate so far, while the estimate holds */
		if (secs > 0 && s.rows_done > 0 && s.rows_expected > s.rows_done)
			values[8] = Float8GetDatum(secs * (double) (s.rows_expected - s.rows_done) /
									   (double) s.rows_done);
		else if (s.rows_done > 0 && s.rows_expected > 0)
			values[8] = Float8GetDatum(0.0);
		else
			nulls[8] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
