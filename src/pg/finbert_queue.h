/*
 * finbert_queue.h — the shared-memory request queue between backends
 * (queue.c) and the finbert background worker (worker.c).
 *
 * The locking protocol is written down at the top of queue.c.
 */
#ifndef FINBERT_QUEUE_H
#define FINBERT_QUEUE_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/dsm.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "utils/timestamp.h"

/* Error text sent back to the requester; longer text is cut (messages only). */
#define FINBERT_ERRMSG_LEN		1024
#define FINBERT_ERRDETAIL_LEN	1024
#define FINBERT_ERRHINT_LEN		1536

/* LWLocks of the "finbert" tranche */
#define FINBERT_LOCK_QUEUE		0
#define FINBERT_LOCK_CACHE		1
#define FINBERT_NUM_LOCKS		2

typedef enum FinbertSlotState
{
	SLOT_FREE = 0,
	SLOT_QUEUED,				/* filled by a backend, waiting for the worker */
	SLOT_RUNNING,				/* taken by the worker */
	SLOT_DONE,					/* result segment published */
	SLOT_FAILED,				/* error fields published */
	SLOT_ABANDONED				/* requester gone while RUNNING */
} FinbertSlotState;

typedef enum FinbertWorkerState
{
	WORKER_NOT_RUNNING = 0,
	WORKER_IDLE,
	WORKER_COLLECTING,			/* holding requests for batch_wait_ms */
	WORKER_RUNNING,
	WORKER_LOADING				/* opening a model */
} FinbertWorkerState;

typedef struct FinbertSlot
{
	FinbertSlotState state;
	uint64		request_id;		/* unique; identifies the slot's occupant */

	/* set by the backend when it fills the slot */
	PGPROC	   *owner;			/* whose latch to set */
	int			owner_pid;
	dsm_handle	request_handle;
	Size		request_size;
	int32		est_tokens;		/* for max_batch_tokens */
	TimestampTz enqueued_at;

	/* set by the worker */
	int			worker_pid;		/* worker that took it */
	dsm_handle	result_handle;	/* DONE */
	Size		result_size;
	int			sqlerrcode;		/* FAILED */
	char		errmsg[FINBERT_ERRMSG_LEN];
	char		errdetail[FINBERT_ERRDETAIL_LEN];
	char		errhint[FINBERT_ERRHINT_LEN];
} FinbertSlot;

typedef struct FinbertQueue
{
	LWLock	   *lock;			/* FINBERT_LOCK_QUEUE */
	ConditionVariable slot_freed;	/* broadcast when a slot becomes FREE */
	int			nslots;

	/* under lock */
	int			worker_pid;		/* 0 when no worker is running */
	Latch	   *worker_latch;	/* NULL when no worker is running */
	uint64		worker_starts;	/* worker incarnations since startup */

	/* atomics, no lock: statistics and heuristics only */
	pg_atomic_uint64 next_request_id;
	pg_atomic_uint32 in_execute;	/* backends inside FinbertExecute */
	pg_atomic_uint32 worker_state;	/* FinbertWorkerState */

	FinbertSlot slots[FLEXIBLE_ARRAY_MEMBER];
} FinbertQueue;

extern FinbertQueue *FinbertQueueShared;

/* worker.c */
extern PGDLLEXPORT void finbert_worker_main(Datum arg);
/* cache.c */
extern PGDLLEXPORT void finbert_cache_writer_main(Datum arg);

#endif							/* FINBERT_QUEUE_H */
