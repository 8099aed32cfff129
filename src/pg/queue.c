/*
 * queue.c — the shared-memory request queue: backend side.
 *
 * With shared_preload_libraries = 'finbert', shared memory holds one
 * FinbertQueue with finbert.worker_slots request slots (finbert_queue.h).
 * A backend that sends a request to the worker (finbert.execution)
 *
 *   1. writes the request into a DSM segment it creates (wire.c: texts of
 *      any size, never truncated),
 *   2. fills a FREE slot (state QUEUED) and sets the worker's latch,
 *   3. sleeps on its own latch (WaitLatch with WL_EXIT_ON_PM_DEATH, wait
 *      event Extension) + CHECK_FOR_INTERRUPTS() until the slot shows DONE
 *      or FAILED,
 *   4. attaches the worker's result segment, copies the result out, frees
 *      the slot and detaches both segments, or re-raises the worker's error
 *      with its SQLSTATE, message, detail and hint.
 * The worker (worker.c) takes QUEUED slots into batches and answers each.
 *
 * Locking protocol
 * ----------------
 * One LWLock (tranche "finbert", FINBERT_LOCK_QUEUE) protects worker_pid,
 * worker_latch, worker_starts and every field of every slot.  It is held
 * for a few loads and stores only: never across ereport, palloc, DSM
 * operations, engine calls or waits.  Latches are set and the slot_freed
 * condition variable is broadcast after the lock is released.  The atomics
 * of FinbertQueue (request ids, backends inside FinbertExecute, worker
 * state) are read and written without it.
 *
 * Slot life cycle; every transition is made under the lock held
 * exclusively, by the process named:
 *
 *   FREE ---backend fills---> QUEUED ---worker takes---> RUNNING
 *   RUNNING ---worker answers---> DONE (result segment) | FAILED (error)
 *   DONE | FAILED ---backend reads---> FREE
 *   QUEUED | DONE | FAILED ---backend abandons---> FREE
 *   RUNNING ---backend abandons---> ABANDONED ---worker finishes---> FREE
 *   RUNNING ---worker exits (exit callback)---> FAILED
 *
 * A backend abandons its slot when an error (cancel, statement_timeout,
 * worker timeout) escapes the wait, and from an on_shmem_exit callback
 * when it exits (FATAL, pg_terminate_backend).  A slot is identified by
 * (index, request_id): whoever finds another request_id in it has nothing
 * left to do there.  While a slot is RUNNING only the worker writes its
 * result fields; they become visible to the backend with the state change.
 *
 * DSM segments: the request segment belongs to the backend (its resource
 * owner detaches it on error); the worker attaches it while RUNNING and
 * checks the request id written inside before trusting it.  The result
 * segment is created by the worker, which keeps its mapping until the slot
 * no longer shows DONE for that request (the backend attached and freed the
 * slot, or abandoned it) and then detaches.  Nothing is pinned: a segment
 * disappears with its last mapping, whichever process exits, so no path
 * leaks one.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/wait_event.h"

#include "finbert_pg.h"
#include "finbert_queue.h"

/*
 * finbert.execution = auto uses the worker while at least this many
 * backends are inside finbert calls: on the CPU, batching across sessions
 * pays off from about 4 concurrent clients (bench/worker.sh on 2 cores:
 * 0.7x inline throughput with 2 clients, 1.0x with 4, 1.4x with 8).
 */
#define AUTO_MIN_CONCURRENT		4

FinbertQueue *FinbertQueueShared = NULL;

/* This backend's slot while it has a request in the queue. */
static int	MySlot = -1;
static uint64 MyRequestId = 0;
static bool MyInExecute = false;
static bool ExitCallbackRegistered = false;

Size
FinbertQueueShmemSize(void)
{
	return add_size(offsetof(FinbertQueue, slots),
					mul_size(sizeof(FinbertSlot), finbert_worker_slots));
}

void
FinbertQueueShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(FinbertQueueShmemSize()));
	RequestNamedLWLockTranche("finbert", FINBERT_NUM_LOCKS);
}

void
FinbertQueueShmemStartup(void)
{
	bool		found;
	FinbertQueue *q;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	q = ShmemInitStruct("finbert queue", FinbertQueueShmemSize(), &found);
	if (!found)
	{
		memset(q, 0, FinbertQueueShmemSize());
		q->lock = &(GetNamedLWLockTranche("finbert"))[FINBERT_LOCK_QUEUE].lock;
		ConditionVariableInit(&q->slot_freed);
		q->nslots = finbert_worker_slots;
		q->worker_pid = 0;
		q->worker_latch = NULL;
		pg_atomic_init_u64(&q->next_request_id, 1);
		pg_atomic_init_u32(&q->in_execute, 0);
		pg_atomic_init_u32(&q->worker_state, WORKER_NOT_RUNNING);
		for (int i = 0; i < q->nslots; i++)
			q->slots[i].state = SLOT_FREE;
	}
	LWLockRelease(AddinShmemInitLock);
	FinbertQueueShared = q;
}

/*
 * Gives this backend's slot back (see the life cycle above): after reading
 * the answer, on every error path out of FinbertWorkerExecute, and at
 * process exit.
 */
static void
AbandonSlot(void)
{
	FinbertQueue *q = FinbertQueueShared;
	FinbertSlot *slot;
	bool		freed = false;

	if (MySlot < 0 || q == NULL)
		return;
	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	slot = &q->slots[MySlot];
	if (slot->request_id == MyRequestId)
	{
		switch (slot->state)
		{
			case SLOT_QUEUED:
			case SLOT_DONE:
			case SLOT_FAILED:
				slot->state = SLOT_FREE;
				freed = true;
				break;
			case SLOT_RUNNING:
				slot->state = SLOT_ABANDONED;
				break;
			case SLOT_FREE:
			case SLOT_ABANDONED:
				break;
		}
	}
	LWLockRelease(q->lock);
	MySlot = -1;
	if (freed)
		ConditionVariableBroadcast(&q->slot_freed);
}

static void
BackendExit(int code, Datum arg)
{
	/* nothing else of ours can hold the lock: it is never held across code that fails */
	AbandonSlot();
	if (MyInExecute && FinbertQueueShared)
	{
		pg_atomic_fetch_sub_u32(&FinbertQueueShared->in_execute, 1);
		MyInExecute = false;
	}
}

static void
EnsureExitCallback(void)
{
	if (!ExitCallbackRegistered)
	{
		on_shmem_exit(BackendExit, (Datum) 0);
		ExitCallbackRegistered = true;
	}
}

void
FinbertEnterExecute(void)
{
	if (FinbertQueueShared == NULL || MyInExecute)
		return;
	EnsureExitCallback();
	pg_atomic_fetch_add_u32(&FinbertQueueShared->in_execute, 1);
	MyInExecute = true;
}

void
FinbertLeaveExecute(void)
{
	if (FinbertQueueShared == NULL || !MyInExecute)
		return;
	pg_atomic_fetch_sub_u32(&FinbertQueueShared->in_execute, 1);
	MyInExecute = false;
}

bool
FinbertUseWorker(void)
{
	FinbertQueue *q = FinbertQueueShared;

	/* a CUDA device is only ever used in the worker's engine host */
	if (finbert_device == FB_DEVICE_CUDA)
	{
		if (finbert_execution == FINBERT_EXEC_INLINE)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("finbert.execution = inline cannot run on finbert.device = cuda"),
					 errdetail("A CUDA device is only used by the finbert worker's engine host process, never by a backend."),
					 errhint("Set finbert.execution to auto or worker, or finbert.device to cpu.")));
		if (q == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("finbert.device = cuda requires finbert in shared_preload_libraries"),
					 errdetail("A CUDA device is only used by the finbert worker's engine host process."),
					 errhint("Add finbert to shared_preload_libraries and restart the server, or set finbert.device to auto or cpu.")));
		return true;
	}

	switch (finbert_execution)
	{
		case FINBERT_EXEC_INLINE:
			return false;
		case FINBERT_EXEC_WORKER:
			if (q == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("finbert.execution = worker requires finbert in shared_preload_libraries"),
						 errhint("Add finbert to shared_preload_libraries and restart the server, or set finbert.execution to auto or inline.")));
			return true;
		case FINBERT_EXEC_AUTO:
		default:

			/*
			 * The worker pays off on a GPU (every call goes there when it
			 * runs on one) or when requests of several backends can share
			 * a batch.  Unlocked reads: this is a heuristic.
			 */
			if (q == NULL || *((volatile int *) &q->worker_pid) == 0)
				return false;
			if (finbert_device == FB_DEVICE_AUTO &&
				FinbertDeviceResolved() == FINBERT_DEVICE_ON_CUDA)
				return true;
			return pg_atomic_read_u32(&q->in_execute) >= AUTO_MIN_CONCURRENT;
	}
}

/*
 * Raises an error once no worker has been running for finbert.worker_timeout
 * while this backend waits.  *since is when the wait without a worker began.
 */
static void
CheckWorkerPresent(int worker_pid, TimestampTz *since)
{
	TimestampTz now;

	if (worker_pid != 0)
	{
		*since = 0;
		return;
	}
	now = GetCurrentTimestamp();
	if (*since == 0)
		*since = now;
	else if (TimestampDifferenceExceeds(*since, now, finbert_worker_timeout))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("finbert worker is not running"),
				 errdetail("No finbert worker was running for finbert.worker_timeout (%d ms).",
						   finbert_worker_timeout),
				 errhint("See the server log for the worker's errors; set finbert.execution to auto or inline to run in the backend.")));
}

/* Milliseconds to sleep before looking at the slot again. */
static long
WaitTimeout(TimestampTz since)
{
	long		ms = 1000;

	if (since != 0)
	{
		long		left = finbert_worker_timeout -
			(long) ((GetCurrentTimestamp() - since) / 1000);

		ms = Min(ms, Max(left, 1));
	}
	return ms;
}

/* An estimate of the tokens of a request, for max_batch_tokens. */
static int32
EstimateTokens(const FinbertRequest *req)
{
	int64		total = 0;

	for (int i = 0; i < req->ntexts; i++)
	{
		/* about one token per character for Chinese text, + [CLS] [SEP] */
		int64		n = pg_mbstrlen_with_len(req->texts[i].data,
											 (int) req->texts[i].len) + 2;

		if (req->task != FINBERT_TASK_ENTITIES &&
			req->task != FINBERT_TASK_TOKENIZE && n > req->max_length)
			n = req->max_length;
		total += n;
		if (total > PG_INT32_MAX)
			return PG_INT32_MAX;
	}
	return (int32) total;
}

/*
 * Takes a FREE slot for request id (waiting for one when all are in use)
 * and queues it; returns its index.
 */
static int
QueueRequest(uint64 id, dsm_segment *seg, Size size, int32 est_tokens)
{
	FinbertQueue *q = FinbertQueueShared;
	TimestampTz since = 0;
	bool		sleeping = false;

	for (;;)
	{
		Latch	   *worker_latch = NULL;
		int			worker_pid;
		int			found = -1;
		TimestampTz now = GetCurrentTimestamp();

		LWLockAcquire(q->lock, LW_EXCLUSIVE);
		for (int i = 0; i < q->nslots; i++)
		{
			FinbertSlot *slot = &q->slots[i];

			if (slot->state != SLOT_FREE)
				continue;
			slot->state = SLOT_QUEUED;
			slot->request_id = id;
			slot->owner = MyProc;
			slot->owner_pid = MyProcPid;
			slot->request_handle = dsm_segment_handle(seg);
			slot->request_size = size;
			slot->est_tokens = est_tokens;
			slot->enqueued_at = now;
			slot->worker_pid = 0;
			slot->result_handle = 0;
			slot->result_size = 0;
			slot->sqlerrcode = 0;
			slot->errmsg[0] = slot->errdetail[0] = slot->errhint[0] = '\0';
			MySlot = i;
			MyRequestId = id;
			found = i;
			break;
		}
		worker_latch = q->worker_latch;
		worker_pid = q->worker_pid;
		LWLockRelease(q->lock);

		if (found >= 0)
		{
			if (sleeping)
				ConditionVariableCancelSleep();
			if (worker_latch)
				SetLatch(worker_latch);
			return found;
		}

		/* all slots busy: wait for one, as long as a worker serves them */
		CheckWorkerPresent(worker_pid, &since);
		sleeping = true;
		(void) ConditionVariableTimedSleep(&q->slot_freed, WaitTimeout(since),
										   PG_WAIT_EXTENSION);
	}
}

/* Waits until the worker has answered our slot; returns its state. */
static FinbertSlotState
WaitForAnswer(void)
{
	FinbertQueue *q = FinbertQueueShared;
	TimestampTz since = 0;

	for (;;)
	{
		FinbertSlot *slot = &q->slots[MySlot];
		FinbertSlotState state;
		int			worker_pid;
		int			slot_worker;

		LWLockAcquire(q->lock, LW_SHARED);
		state = slot->state;
		worker_pid = q->worker_pid;
		slot_worker = slot->worker_pid;
		LWLockRelease(q->lock);

		if (state == SLOT_DONE || state == SLOT_FAILED)
			return state;
		if (state == SLOT_RUNNING && slot_worker != worker_pid)
		{
			CHECK_FOR_INTERRUPTS(); /* our own first (see RaiseWorkerError) */
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("finbert worker exited while running the request")));
		}
		CheckWorkerPresent(worker_pid, &since);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 WaitTimeout(since), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Re-raises the error the worker recorded in our slot. */
static void
RaiseWorkerError(void)
{
	FinbertQueue *q = FinbertQueueShared;
	FinbertSlot *slot = &q->slots[MySlot];
	int			code;
	char	   *msg = palloc(FINBERT_ERRMSG_LEN);
	char	   *detail = palloc(FINBERT_ERRDETAIL_LEN);
	char	   *hint = palloc(FINBERT_ERRHINT_LEN);

	LWLockAcquire(q->lock, LW_SHARED);
	code = slot->sqlerrcode;
	memcpy(msg, slot->errmsg, FINBERT_ERRMSG_LEN);
	memcpy(detail, slot->errdetail, FINBERT_ERRDETAIL_LEN);
	memcpy(hint, slot->errhint, FINBERT_ERRHINT_LEN);
	LWLockRelease(q->lock);
	msg[FINBERT_ERRMSG_LEN - 1] = '\0';
	detail[FINBERT_ERRDETAIL_LEN - 1] = '\0';
	hint[FINBERT_ERRHINT_LEN - 1] = '\0';
	AbandonSlot();

	/*
	 * An interrupt of our own comes first: when the server shuts down, the
	 * worker stops our request while this backend has its own SIGTERM
	 * pending, and PostgreSQL's message for that is the one to give.
	 */
	CHECK_FOR_INTERRUPTS();
	ereport(ERROR,
			(errcode(code ? code : ERRCODE_INTERNAL_ERROR),
			 errmsg_internal("%s", msg),
			 detail[0] ? errdetail_internal("%s", detail) : 0,
			 hint[0] ? errhint("%s", hint) : 0));
}

/* Copies the result out of the worker's segment and frees the slot. */
static void
ReadAnswer(const FinbertRequest *req, FinbertResult *res)
{
	FinbertQueue *q = FinbertQueueShared;
	FinbertSlot *slot = &q->slots[MySlot];
	dsm_handle	handle;
	Size		size;
	dsm_segment *seg;

	LWLockAcquire(q->lock, LW_SHARED);
	handle = slot->result_handle;
	size = slot->result_size;
	LWLockRelease(q->lock);

	seg = dsm_attach(handle);
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("finbert worker exited before its result was read")));
	/* attached: the worker may now drop its mapping */
	AbandonSlot();
	if (size > dsm_segment_map_length(seg))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("malformed result from the finbert worker")));
	FinbertWireResultRead(dsm_segment_address(seg), size, req->task, res);
	dsm_detach(seg);
}

void
FinbertWorkerExecute(const FinbertRequest *req, const FinbertModelRef *ref,
					 FinbertResult *res)
{
	uint64		id;
	Size		size;
	dsm_segment *seg;

	Assert(FinbertQueueShared != NULL);
	EnsureExitCallback();
	id = pg_atomic_fetch_add_u64(&FinbertQueueShared->next_request_id, 1);
	size = FinbertWireRequestSize(req);
	seg = dsm_create(size, 0);
	FinbertWireRequestWrite(dsm_segment_address(seg), size, id, req, ref);

	PG_TRY();
	{
		QueueRequest(id, seg, size, EstimateTokens(req));
		if (WaitForAnswer() == SLOT_FAILED)
			RaiseWorkerError();
		ReadAnswer(req, res);
	}
	PG_CATCH();
	{
		AbandonSlot();
		PG_RE_THROW();
	}
	PG_END_TRY();
	dsm_detach(seg);
	res->ntexts = req->ntexts;
}

bool
FinbertQueueGetStatus(FinbertQueueStatus *st)
{
	FinbertQueue *q = FinbertQueueShared;
	static const char *const names[] = {
		"not running", "idle", "collecting", "running", "loading model"
	};
	uint32		ws;

	memset(st, 0, sizeof(*st));
	st->worker_state = names[0];
	if (q == NULL)
		return false;
	LWLockAcquire(q->lock, LW_SHARED);
	st->worker_pid = q->worker_pid;
	for (int i = 0; i < q->nslots; i++)
	{
		FinbertSlotState s = q->slots[i].state;

		if (s == SLOT_QUEUED)
			st->queued++;
		else if (s == SLOT_RUNNING || s == SLOT_ABANDONED)
			st->running++;
		if (s != SLOT_FREE)
			st->slots_in_use++;
	}
	LWLockRelease(q->lock);
	ws = pg_atomic_read_u32(&q->worker_state);
	if (st->worker_pid != 0 && ws < lengthof(names))
		st->worker_state = names[ws];
	return true;
}
