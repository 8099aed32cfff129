/*
 * worker.c — the finbert background worker: one process that owns the
 * models and runs the requests of every session in batches.
 *
 * Registered from _PG_init when finbert is in shared_preload_libraries
 * (finbert.c).  It attaches to shared memory only — no database: the
 * backends resolve models against their own catalog and send the canonical
 * directory, checksum, precision and weight-file identity with each request
 * (FinbertModelRef), so one worker serves every database.  Models are
 * opened here on first use (with the precision of the request) and kept
 * while requests name the same files with the same precision;
 * engine threads (finbert.worker_threads) are started here, never in the
 * postmaster.  On a CUDA device (finbert.device), and on the CPU with
 * finbert.engine_host, the engine calls run in the worker's engine host
 * process instead (host.c): a GPU fault kills that child of the worker,
 * never a process of the postmaster, so the database is not restarted;
 * the requests of that batch fail and a new host serves the next one.
 * The worker itself never loads a CUDA library.
 *
 * Loop (while (!ShutdownRequestPending)):
 *   1. collect: under the queue lock, look at the QUEUED slots.  Hold them
 *      (state "collecting") while they total less than
 *      finbert.max_batch_tokens, the oldest has waited less than
 *      finbert.batch_wait_ms and sessions seen in the last
 *      RECENT_CLIENT_MS are not all queued yet (so a lone session never
 *      waits, and a batch goes as soon as every active session is in it);
 *      otherwise take them, oldest first, up to max_batch_tokens (at least
 *      one), into RUNNING;
 *   2. attach each request segment and check it (wire.c);
 *   3. group the requests by (task, model files and precision, max_length,
 *      pooling); a classification, embedding or entity group runs as one
 *      merged request, its texts sorted by length, through the same
 *      FinbertRun as inline execution (run.c), with this worker's run
 *      context (its interrupt callback, its lanes).  If the merged run fails,
 *      each request of the group runs alone, so a bad input fails only its
 *      own request;
 *   4. answer each request: a result segment (DONE) or the error's
 *      SQLSTATE, message, detail and hint (FAILED), then set the
 *      requester's latch;
 *   5. otherwise sleep on the latch (WL_EXIT_ON_PM_DEATH).
 *
 * Errors: everything that can fail for one request runs under PG_TRY and
 * is turned into that request's answer.  Any other ERROR is promoted to
 * FATAL (no outer handler in a background worker): the process exits with
 * code 1, its exit callback fails the requests it was running, and the
 * postmaster restarts it after FINBERT_WORKER_RESTART_SECONDS.
 *
 * SIGTERM (SignalHandlerForShutdownRequest, never die(): no FATAL) stops
 * the engine at its next interrupt check; the running requests get
 * "finbert worker stopped the request", the other groups of the batch are
 * failed the same way, and the loop ends.  Then (shutdown.c) a server
 * shutdown ends the worker with exit code 0 and no message, as
 * PostgreSQL's own processes; a stray SIGTERM (pg_terminate_backend) with
 * a LOG line and exit code 1, and the postmaster restarts it; requests
 * still queued wait for the new worker.  Postmaster death ends it at once
 * (WL_EXIT_ON_PM_DEATH; the engine polls PostmasterIsAlive).  SIGHUP
 * reloads the configuration (batch_wait_ms, worker_threads).  Signal
 * handlers only set flags and the latch; engine threads never call back
 * into PostgreSQL (the interrupt callback runs in this thread).
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "host_proto.h"
#include "finbert_pg.h"
#include "finbert_queue.h"

/* Other sessions seen this recently may be about to join a batch. */
#define RECENT_CLIENT_MS			100
/* A model unused this long is closed. */
#define MODEL_IDLE_SECONDS			600
/* finbert.worker_threads is at most this (its GUC maximum). */
#define MAX_LANES					256
/* Sleep bound while results wait to be read, and when idle. */
#define RESULT_POLL_MS				1000
#define IDLE_POLL_MS				60000

typedef struct WorkerModel
{
	char		name[FINBERT_NAME_MAX + 1]; /* hash key */
	FinbertModelRef ref;
	fb_model   *model;
	int			nlanes;
	fb_session **lanes;			/* lanes[0] runs in this thread */
	TimestampTz last_used;
	FinbertHostModel host;		/* the copy in the engine host, if used */
} WorkerModel;

/* One part of an engine call split over lanes. */
typedef struct Lane
{
	FinbertEngineCall call;		/* NULL: entities of each text */
	fb_entity_list *lists;		/* entities: per text */
	fb_status  *statuses;
	uint64	   *text_tokens;
	fb_error   *errs;
	fb_session *session;
	const fb_text *texts;
	size_t		start;
	size_t		end;
	const fb_task_options *opts;
	float	   *out;
	size_t		row_floats;
	pthread_t	thread;
	bool		started;
	fb_status	status;
	uint64		tokens;			/* run by this lane (fb_session_tokens) */
	fb_error	err;
} Lane;

/* One request taken into the current batch. */
typedef struct Job
{
	int			slot;
	uint64		id;
	dsm_handle	handle;
	Size		size;
	int32		est_tokens;
	dsm_segment *seg;			/* the request segment, attached */
	bool		valid;			/* attached and well-formed */
	bool		answered;
	FinbertRequest req;
	FinbertModelRef ref;
	fb_text    *texts;
	int			group;
} Job;

typedef struct RecentClient
{
	int			pid;
	TimestampTz seen;
} RecentClient;

static HTAB *WorkerModels = NULL;
static MemoryContext WorkerContext = NULL;
static MemoryContext BatchContext = NULL;
static Job *Jobs = NULL;
static int	NJobs = 0;
static int *Order = NULL;		/* scratch: queued slot indexes */
static PGPROC **Owners = NULL;	/* scratch: requesters to wake at exit */
static RecentClient *Recent = NULL;
static int	NRecent = 0;
static dsm_segment **ResultSegs = NULL; /* per slot: our published result */
static uint64 *ResultIds = NULL;

/* Jobs of the engine run in progress, for the interrupt callbacks. */
static Job **RunJobs = NULL;
static int	NRunJobs = 0;

/* Set by this thread when lane 0 stops: the other lanes stop too. */
static volatile sig_atomic_t LaneStop = 0;

/*
 * The device the engine runs on (finbert.device resolved by a probe in the
 * engine host: a CUDA driver is never loaded in this process) and whether
 * the engine runs in the host (always on CUDA; on the CPU with
 * finbert.engine_host).  The worker keeps a CPU copy of each model for its
 * labels and tokenizer either way.
 */
static FinbertDeviceKind Device = FINBERT_DEVICE_UNKNOWN;
static int	ResolvedSetting = -1;	/* finbert.device it was resolved for */
static char *ResolvedModule = NULL; /* and finbert.cuda_module */
static char *CudaModule = NULL;

static bool
UseHost(void)
{
	return Device == FINBERT_DEVICE_ON_CUDA || finbert_engine_host;
}

/* finbert.max_batch_tokens, or the GPU's default when it is left unset. */
static int
MaxBatchTokens(void)
{
	if (Device == FINBERT_DEVICE_ON_CUDA &&
		FinbertGucIsDefault("finbert.max_batch_tokens"))
		return FINBERT_GPU_MAX_BATCH_TOKENS;
	return finbert_max_batch_tokens;
}

static void
SetState(FinbertWorkerState s)
{
	pg_atomic_write_u32(&FinbertQueueShared->worker_state, (uint32) s);
}

/*
 * Has every requester of the running requests gone?  Slot states are read
 * without the lock: a RUNNING slot only ever turns ABANDONED under us, so
 * a stale read merely delays the stop.  Safe in lane threads (plain reads).
 */
static bool
AllAbandoned(void)
{
	if (NRunJobs == 0)
		return false;
	for (int i = 0; i < NRunJobs; i++)
	{
		volatile FinbertSlot *slot = &FinbertQueueShared->slots[RunJobs[i]->slot];

		if (!(slot->request_id == RunJobs[i]->id && slot->state == SLOT_ABANDONED))
			return false;
	}
	return true;
}

/*
 * Engine interrupt callback of this thread (between layers and batches):
 * stop on SIGTERM, on postmaster death, or when every requester of the
 * running requests has gone.
 */
static int
WorkerInterrupt(void *arg)
{
	return ShutdownRequestPending || !PostmasterIsAlive() || AllAbandoned();
}

/* The same for lane threads: flags only (PostmasterIsAlive may elog). */
static int
LaneInterrupt(void *arg)
{
	return ShutdownRequestPending || LaneStop || AllAbandoned();
}

static const fb_run_ctl WorkerRunCtl = {WorkerInterrupt, NULL};
static const fb_run_ctl LaneRunCtl = {LaneInterrupt, NULL};

static ErrorData *CatchError(void);
static fb_status HostParallelCall(void *arg, FinbertEngineCall call,
								  fb_session *s, const fb_text *texts,
								  size_t n, const fb_task_options *opts,
								  float *out, size_t row_floats,
								  uint64 *tokens, fb_error *err);
static void HostParallelEntities(void *arg, fb_session *s,
								 const fb_text *texts, size_t n,
								 const fb_task_options *opts,
								 fb_entity_list *lists, fb_status *statuses,
								 uint64 *tokens, fb_error *errs);

static fb_status WorkerParallelCall(void *arg, FinbertEngineCall call,
									fb_session *s, const fb_text *texts,
									size_t n, const fb_task_options *opts,
									float *out, size_t row_floats,
									uint64 *tokens, fb_error *err);
static void WorkerParallelEntities(void *arg, fb_session *s,
								   const fb_text *texts, size_t n,
								   const fb_task_options *opts,
								   fb_entity_list *lists, fb_status *statuses,
								   uint64 *tokens, fb_error *errs);

/*
 * How FinbertRun calls the engine here: this thread's interrupt callback,
 * a stop is an error (shutdown, or every requester gone), engine calls
 * split over the lanes of wm.
 */
static FinbertRunContext
RunContext(WorkerModel *wm)
{
	FinbertRunContext rc;

	rc.ctl = &WorkerRunCtl;
	rc.stop_fails = true;
	rc.parallel_call = UseHost() ? HostParallelCall : WorkerParallelCall;
	rc.parallel_entities = UseHost() ? HostParallelEntities : WorkerParallelEntities;
	rc.parallel_arg = wm;
	return rc;
}

static int
WorkerThreads(void)
{
	long		n = finbert_worker_threads;

	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	return (int) Min(Max(n, 1), MAX_LANES);
}

/* ------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------ */
/* Gives wm n lanes (at least 1; fewer if sessions cannot be created). */
static void
SetLanes(WorkerModel *wm, int n)
{
	n = Max(n, 1);
	while (wm->nlanes > n)
		fb_session_free(wm->lanes[--wm->nlanes]);
	while (wm->nlanes < n)
	{
		fb_session *s = fb_session_new(wm->model);

		if (s == NULL)
			break;
		fb_session_set_ctl(s, &LaneRunCtl);
		wm->lanes[wm->nlanes++] = s;
	}
}

static void
CloseModel(WorkerModel *wm)
{
	if (wm->host.id != 0)
	{
		/* a host that fails now is restarted; the model is closed anyway */
		PG_TRY();
		{
			FinbertHostClose(&wm->host);
		}
		PG_CATCH();
		{
			EmitErrorReport();
			FlushErrorState();
		}
		PG_END_TRY();
	}
	FinbertDeviceModelSet(wm->name, "", -1);
	SetLanes(wm, 1);
	fb_session_free(wm->lanes[0]);
	pfree(wm->lanes);
	fb_model_free(wm->model);
	hash_search(WorkerModels, wm->name, HASH_REMOVE, NULL);
}

/*
 * Opens wm in the engine host (again after the host was restarted), on
 * the worker's device.
 */
static void
EnsureHostModel(WorkerModel *wm)
{
	bool		cuda = Device == FINBERT_DEVICE_ON_CUDA;

	FinbertHostCheck();
	if (wm->host.id != 0 && wm->host.generation == FinbertHostGeneration() &&
		FinbertHostPid() != 0)
		return;
	memset(&wm->host, 0, sizeof(wm->host));
	SetState(WORKER_LOADING);
	FinbertHostOpen(wm->ref.name, wm->ref.path, (fb_precision) wm->ref.precision,
					cuda ? FB_DEVICE_CUDA : FB_DEVICE_CPU, CudaModule,
					MaxBatchTokens(), WorkerThreads(), &WorkerRunCtl, &wm->host);
	SetState(WORKER_RUNNING);
	FinbertDeviceModelSet(wm->name, wm->host.device == FB_DEVICE_CUDA ? "cuda" : "cpu",
						  (int64) wm->host.device_bytes);
}

/* The open model for ref, (re)opening it when the files changed. */
static WorkerModel *
OpenModel(const FinbertModelRef *ref)
{
	WorkerModel *wm = hash_search(WorkerModels, ref->name, HASH_FIND, NULL);
	fb_model   *model;
	fb_session *session;
	bool		found;


	if (wm && FinbertModelRefEquals(&wm->ref, ref))
	{
		wm->last_used = GetCurrentTimestamp();
		if (UseHost())
			EnsureHostModel(wm);
		return wm;
	}
	if (wm)
		CloseModel(wm);

	SetState(WORKER_LOADING);
	FinbertOpenEngineModel(ref->name, ref->path, (fb_precision) ref->precision,
						   MaxBatchTokens(), &model, &session);
	fb_session_set_ctl(session, &WorkerRunCtl);
	wm = hash_search(WorkerModels, ref->name, HASH_ENTER, &found);
	wm->ref = *ref;
	wm->model = model;
	wm->lanes = MemoryContextAllocZero(WorkerContext, sizeof(fb_session *) * MAX_LANES);
	wm->lanes[0] = session;
	wm->nlanes = 1;
	memset(&wm->host, 0, sizeof(wm->host));
	SetLanes(wm, WorkerThreads());
	wm->last_used = GetCurrentTimestamp();
	FinbertDeviceModelSet(wm->name, "cpu", 0);
	if (UseHost())
		EnsureHostModel(wm);
	SetState(WORKER_RUNNING);
	return wm;
}

static void
CloseIdleModels(bool all)
{
	HASH_SEQ_STATUS seq;
	WorkerModel *wm;
	TimestampTz now = GetCurrentTimestamp();

	hash_seq_init(&seq, WorkerModels);
	while ((wm = hash_seq_search(&seq)) != NULL)
	{
		if (all || TimestampDifferenceExceeds(wm->last_used, now,
											  MODEL_IDLE_SECONDS * 1000))
			CloseModel(wm);
	}
}

/*
 * Resolves finbert.device (at start, and after a reload that changed it or
 * finbert.cuda_module) by a probe in the engine host, logs the outcome once
 * and publishes it for the backends' routing.  A device that cannot be
 * used is no error here: with device = cuda every request then fails with
 * the reason; with auto the models run on the CPU.
 */
static void
ResolveDevice(void)
{
	char	   *module = FinbertCudaModulePath();
	fb_device_info info;
	fb_error	err;
	fb_status	st = FB_ERR_DEVICE;
	FinbertDeviceKind old = Device;

	if (ResolvedSetting == finbert_device && ResolvedModule &&
		strcmp(ResolvedModule, module) == 0)
	{
		pfree(module);
		return;
	}
	if (ResolvedModule)
	{
		/* a new device or module: models reopen in a new host */
		CloseIdleModels(true);
		FinbertHostStop(false);
		pfree(ResolvedModule);
	}
	ResolvedModule = MemoryContextStrdup(WorkerContext, module);
	CudaModule = ResolvedModule;
	ResolvedSetting = finbert_device;
	pfree(module);

	memset(&info, 0, sizeof(info));
	err.status = FB_OK;
	err.msg[0] = '\0';
	if (finbert_device != FB_DEVICE_CPU)
	{
		PG_TRY();
		{
			st = FinbertHostProbe((fb_device) finbert_device, CudaModule, &info, &err);
		}
		PG_CATCH();
		{
			ErrorData  *edata = CatchError();

			err.status = st = FB_ERR_DEVICE;
			strlcpy(err.msg, edata->message, sizeof(err.msg));
		}
		PG_END_TRY();
	}

	if (finbert_device == FB_DEVICE_CPU)
	{
		Device = FINBERT_DEVICE_ON_CPU;
		ereport(LOG,
				(errmsg("finbert worker runs the models on the CPU (finbert.device = cpu)")));
	}
	else if (st == FB_OK && info.device == FB_DEVICE_CUDA)
	{
		Device = FINBERT_DEVICE_ON_CUDA;
		ereport(LOG,
				(errmsg("finbert worker runs the models on CUDA device %d (%s) in its engine host",
						info.ordinal, info.name),
				 errdetail("Module %s; %s.", CudaModule, info.runtime[0] ? info.runtime : "no runtime details")));
	}
	else if (finbert_device == FB_DEVICE_AUTO)
	{
		Device = FINBERT_DEVICE_ON_CPU;
		ereport(LOG,
				(errmsg("finbert.device = auto: no usable CUDA device, the models run on the CPU"),
				 errdetail("%s", info.note[0] ? info.note : err.msg[0] ? err.msg : "No CUDA device was found.")));
	}
	else
	{
		/* cuda that cannot be used: each request gets the reason as its ERROR */
		Device = FINBERT_DEVICE_ON_CUDA;
		ereport(LOG,
				(errmsg("finbert.device = cuda, but the CUDA device is not usable: requests will fail"),
				 errdetail("%s", err.msg[0] ? err.msg : "The probe found no device.")));
	}
	FinbertDeviceSetResolved(Device, Device == FINBERT_DEVICE_ON_CUDA ? info.name : "cpu",
							 (uint64) info.total_bytes);
	(void) old;
	if (!UseHost())
		FinbertHostStop(false);
}

/* Starts the engine host ahead of the first request, when it is used. */
static void
ApplyEngineHost(void)
{
	if (!UseHost())
	{
		FinbertHostStop(false);
		return;
	}
	PG_TRY();
	{
		FinbertHostStart();
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
	}
	PG_END_TRY();
}

static void
ApplyThreads(void)
{
	HASH_SEQ_STATUS seq;
	WorkerModel *wm;

	hash_seq_init(&seq, WorkerModels);
	while ((wm = hash_seq_search(&seq)) != NULL)
		SetLanes(wm, WorkerThreads());
}

/* ------------------------------------------------------------------------
 * Lanes
 * ------------------------------------------------------------------------ */
static void *
LaneMain(void *arg)
{
	Lane	   *l = arg;
	uint64		before = fb_session_tokens(l->session);

	if (l->call)
	{
		l->status = l->call(l->session, l->texts + l->start, l->end - l->start,
							l->opts, l->out + l->start * l->row_floats, &l->err);
		l->tokens = fb_session_tokens(l->session) - before;
		return NULL;
	}
	/* entities: text by text, stopping at the first failure */
	l->status = FB_OK;
	for (size_t i = l->start; i < l->end && l->status == FB_OK; i++)
	{
		before = fb_session_tokens(l->session);
		l->statuses[i] = fb_entities(l->session, &l->texts[i], l->opts,
									 &l->lists[i], &l->errs[i]);
		l->text_tokens[i] = fb_session_tokens(l->session) - before;
		if (l->statuses[i] != FB_OK)
		{
			fb_entity_list_free(&l->lists[i]);
			fb_entity_list_init(&l->lists[i]);
			l->status = l->statuses[i];
		}
	}
	return NULL;
}

/*
 * Splits texts[0 .. n) over the lanes of wm into contiguous
 * parts of about equal bytes and runs them: lane 0 in this thread, the
 * others in threads with every signal blocked.  Returns the lanes used
 * (palloc'd, *nlanes of them), each with its status.
 */
static Lane *
RunLanes(WorkerModel *wm, const Lane *proto, const fb_text *texts, size_t n,
		 int *nlanes)
{
	Lane	   *lanes;
	int			nl = (int) Min((size_t) wm->nlanes, n);
	int			l = 0;
	size_t		total = 0,
				cum = 0;
	sigset_t	all,
				old;

	lanes = palloc0(sizeof(Lane) * nl);
	for (size_t i = 0; i < n; i++)
		total += texts[i].len + 1;
	for (size_t i = 0; i < n && l < nl - 1; i++)
	{
		cum += texts[i].len + 1;
		/* cut at the l-th share, or when the rest is one text per lane */
		if (cum * (size_t) nl >= total * (size_t) (l + 1) ||
			n - (i + 1) == (size_t) (nl - 1 - l))
		{
			lanes[l].end = i + 1;
			lanes[++l].start = i + 1;
		}
	}
	lanes[l].end = n;
	nl = l + 1;
	for (l = 0; l < nl; l++)
	{
		size_t		start = lanes[l].start,
					end = lanes[l].end;

		lanes[l] = *proto;
		lanes[l].start = start;
		lanes[l].end = end;
		lanes[l].session = wm->lanes[l];
		lanes[l].texts = texts;
	}

	/* lane threads get no signals: PostgreSQL's handlers run in this thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (l = 1; l < nl; l++)
		lanes[l].started = pthread_create(&lanes[l].thread, NULL, LaneMain, &lanes[l]) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	LaneMain(&lanes[0]);
	if (lanes[0].status != FB_OK)
		LaneStop = 1;
	for (l = 1; l < nl; l++)
	{
		if (lanes[l].started)
			pthread_join(lanes[l].thread, NULL);
		else if (!LaneStop)
			LaneMain(&lanes[l]);	/* no thread: run it here */
		else
			lanes[l].status = FB_ERR_INTERRUPTED;
	}
	LaneStop = 0;
	*nlanes = nl;
	return lanes;
}

static bool
UseLanes(const WorkerModel *wm, fb_session *s, size_t n)
{
	return s == wm->lanes[0] && wm->nlanes > 1 && n > 1;
}

/*
 * The parallel_call of the worker's run context (arg: the WorkerModel).
 * The status is the first real error of any part, else FB_ERR_INTERRUPTED
 * if a part was interrupted.
 */
static fb_status
WorkerParallelCall(void *arg, FinbertEngineCall call, fb_session *s,
				   const fb_text *texts, size_t n, const fb_task_options *opts,
				   float *out, size_t row_floats, uint64 *tokens,
				   fb_error *err)
{
	WorkerModel *wm = arg;
	Lane		proto;
	Lane	   *lanes;
	int			nl;
	fb_status	status = FB_OK;

	*tokens = 0;
	if (!UseLanes(wm, s, n))
	{
		uint64		before = fb_session_tokens(s);

		status = call(s, texts, n, opts, out, err);
		*tokens = fb_session_tokens(s) - before;
		return status;
	}
	memset(&proto, 0, sizeof(proto));
	proto.call = call;
	proto.opts = opts;
	proto.out = out;
	proto.row_floats = row_floats;
	lanes = RunLanes(wm, &proto, texts, n, &nl);
	for (int l = 0; l < nl; l++)
	{
		*tokens += lanes[l].tokens;
		if (lanes[l].status == FB_OK)
			continue;
		if (status == FB_OK ||
			(status == FB_ERR_INTERRUPTED && lanes[l].status != FB_ERR_INTERRUPTED))
		{
			status = lanes[l].status;
			if (err)
				*err = lanes[l].err;
		}
	}
	pfree(lanes);
	return status;
}

/* The parallel_entities of the worker's run context (arg: the WorkerModel). */
static void
WorkerParallelEntities(void *arg, fb_session *s, const fb_text *texts,
					   size_t n, const fb_task_options *opts,
					   fb_entity_list *lists, fb_status *statuses,
					   uint64 *tokens, fb_error *errs)
{
	WorkerModel *wm = arg;
	Lane		proto;
	int			nl;

	for (size_t i = 0; i < n; i++)
		statuses[i] = FB_ERR_INTERRUPTED;	/* not computed */
	if (!UseLanes(wm, s, n))
		return;					/* the caller computes them one by one */
	memset(&proto, 0, sizeof(proto));
	proto.lists = lists;
	proto.statuses = statuses;
	proto.text_tokens = tokens;
	proto.errs = errs;
	proto.opts = opts;
	pfree(RunLanes(wm, &proto, texts, n, &nl));
}

/*
 * The parallel_call of the run context when the engine runs in the host:
 * the same engine call, made there (the host splits a forward pass over
 * its own threads).
 */
static fb_status
HostParallelCall(void *arg, FinbertEngineCall call, fb_session *s,
				 const fb_text *texts, size_t n, const fb_task_options *opts,
				 float *out, size_t row_floats, uint64 *tokens,
				 fb_error *err)
{
	WorkerModel *wm = arg;
	uint32		kind;
	fb_status	status;

	if (call == FinbertClassifyCall)
		kind = FB_HOST_CLASSIFY;
	else if (call == FinbertEmbedCall)
		kind = FB_HOST_EMBED;
	else
		elog(ERROR, "engine call unknown to the finbert engine host");
	EnsureHostModel(wm);
	status = FinbertHostRun(&wm->host, kind, &WorkerRunCtl, texts, n, opts,
							out, row_floats, tokens, err);
	if (status == FB_OK && Device == FINBERT_DEVICE_ON_CUDA)
		FinbertDeviceCount(1, *tokens, FinbertHostDeviceUsed());
	return status;
}

/* The parallel_entities of the run context when the engine runs in the host. */
static void
HostParallelEntities(void *arg, fb_session *s, const fb_text *texts,
					 size_t n, const fb_task_options *opts,
					 fb_entity_list *lists, fb_status *statuses,
					 uint64 *tokens, fb_error *errs)
{
	WorkerModel *wm = arg;
	uint64		sum = 0;

	EnsureHostModel(wm);
	FinbertHostEntities(&wm->host, fb_model_get_info(wm->model), &WorkerRunCtl,
						texts, n, opts, lists, statuses, tokens, errs);
	for (size_t i = 0; i < n; i++)
		if (statuses[i] == FB_OK)
			sum += tokens[i];
	if (Device == FINBERT_DEVICE_ON_CUDA)
		FinbertDeviceCount(n, sum, FinbertHostDeviceUsed());
}

/* ------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------ */

/* Publishes an error for a job (or frees its slot if it was abandoned). */
static void
FailJob(Job *job, int sqlerrcode, const char *msg, const char *detail,
		const char *hint)
{
	FinbertQueue *q = FinbertQueueShared;
	FinbertSlot *slot = &q->slots[job->slot];
	PGPROC	   *owner = NULL;
	bool		freed = false;

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	if (slot->request_id == job->id && slot->state == SLOT_RUNNING)
	{
		slot->sqlerrcode = sqlerrcode;
		strlcpy(slot->errmsg, msg ? msg : "", sizeof(slot->errmsg));
		strlcpy(slot->errdetail, detail ? detail : "", sizeof(slot->errdetail));
		strlcpy(slot->errhint, hint ? hint : "", sizeof(slot->errhint));
		slot->state = SLOT_FAILED;
		owner = slot->owner;
	}
	else if (slot->request_id == job->id && slot->state == SLOT_ABANDONED)
	{
		slot->state = SLOT_FREE;
		freed = true;
	}
	LWLockRelease(q->lock);
	job->answered = true;
	if (owner)
		SetLatch(&owner->procLatch);
	if (freed)
		ConditionVariableBroadcast(&q->slot_freed);
}

static void
FailJobError(Job *job, const ErrorData *edata)
{
	FailJob(job, edata->sqlerrcode, edata->message, edata->detail, edata->hint);
}

/* The error being handled in a PG_CATCH block, copied; error state reset. */
static ErrorData *
CatchError(void)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(BatchContext);
	edata = CopyErrorData();
	FlushErrorState();
	return edata;
}

/* Sends rows of res (computed for job's texts) back to job's requester. */
static void
AnswerJob(Job *job, const FinbertResult *res, const int *rows)
{
	FinbertQueue *q = FinbertQueueShared;
	FinbertSlot *slot = &q->slots[job->slot];
	StringInfoData buf;
	dsm_segment *seg = NULL;
	ErrorData  *edata = NULL;
	PGPROC	   *owner = NULL;
	bool		keep = false;
	bool		freed = false;

	PG_TRY();
	{
		initStringInfo(&buf);
		FinbertWireResultWrite(&buf, job->req.task, res, rows, job->req.ntexts);
		seg = dsm_create(buf.len, DSM_CREATE_NULL_IF_MAXSEGMENTS);
		if (seg == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("too many dynamic shared memory segments for the finbert result"),
					 errhint("Lower finbert.worker_slots or raise max_connections.")));
		memcpy(dsm_segment_address(seg), buf.data, buf.len);
	}
	PG_CATCH();
	{
		edata = CatchError();
	}
	PG_END_TRY();
	if (edata)
	{
		FailJobError(job, edata);
		return;
	}

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	if (slot->request_id == job->id && slot->state == SLOT_RUNNING)
	{
		slot->result_handle = dsm_segment_handle(seg);
		slot->result_size = (Size) buf.len;
		slot->state = SLOT_DONE;
		owner = slot->owner;
		keep = true;
	}
	else if (slot->request_id == job->id && slot->state == SLOT_ABANDONED)
	{
		slot->state = SLOT_FREE;
		freed = true;
	}
	LWLockRelease(q->lock);
	job->answered = true;

	if (keep)
	{
		/* kept mapped until the requester has attached (see Collect) */
		ResultSegs[job->slot] = seg;
		ResultIds[job->slot] = job->id;
	}
	else
		dsm_detach(seg);
	if (owner)
		SetLatch(&owner->procLatch);
	if (freed)
		ConditionVariableBroadcast(&q->slot_freed);
}

/* ------------------------------------------------------------------------
 * Running groups of requests
 * ------------------------------------------------------------------------ */
typedef struct MergedText
{
	Size		len;
	int			job;			/* index into the group's jobs */
	int			row;			/* text of that job */
} MergedText;

static int
CompareMerged(const void *a, const void *b)
{
	const MergedText *x = a;
	const MergedText *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	if (x->job != y->job)
		return x->job < y->job ? -1 : 1;
	return x->row - y->row;
}

/* Runs one job's request alone and answers it. */
static void
RunAlone(Job *job, WorkerModel *wm)
{
	FinbertRequest req = job->req;
	FinbertRunContext rc = RunContext(wm);
	FinbertResult res;
	int64		tokens = 0,
				batches = 0;
	int		   *rows;
	ErrorData  *edata = NULL;

	req.batch_size = Max(req.ntexts, 1);
	RunJobs = &job;
	NRunJobs = 1;
	PG_TRY();
	{
		FinbertRun(&rc, &req, wm->model, wm->lanes[0], &res, &tokens, &batches);
	}
	PG_CATCH();
	{
		edata = CatchError();
	}
	PG_END_TRY();
	NRunJobs = 0;
	if (edata)
	{
		FailJobError(job, edata);
		return;
	}
	FinbertStatsWorkerBatch(1, (uint64) req.ntexts, (uint64) batches,
							(uint64) tokens);
	rows = palloc(sizeof(int) * Max(req.ntexts, 1));
	for (int i = 0; i < req.ntexts; i++)
		rows[i] = i;
	AnswerJob(job, &res, rows);
}

/*
 * Runs the requests of one group (same task, model files and options) as
 * one request whose texts are sorted by length; falls back to one run per
 * request when that fails.
 */
static bool
RunMerged(Job **jobs, int njobs, WorkerModel *wm)
{
	FinbertRequest req = jobs[0]->req;
	FinbertRunContext rc = RunContext(wm);
	FinbertResult res;
	MergedText *m;
	fb_text    *texts;
	int		  **rows;
	int			total = 0,
				k = 0;
	int64		tokens = 0,
				batches = 0;
	bool		ok = true;
	ErrorData  *edata = NULL;
	uint64		host_failures = FinbertHostFailures();

	for (int j = 0; j < njobs; j++)
	{
		if (jobs[j]->req.ntexts > (int) (MaxAllocSize / sizeof(MergedText)) - total)
			return false;		/* too big to merge: one by one */
		total += jobs[j]->req.ntexts;
	}
	m = palloc(sizeof(MergedText) * Max(total, 1));
	for (int j = 0; j < njobs; j++)
		for (int i = 0; i < jobs[j]->req.ntexts; i++)
		{
			m[k].len = jobs[j]->texts[i].len;
			m[k].job = j;
			m[k].row = i;
			k++;
		}
	qsort(m, total, sizeof(MergedText), CompareMerged);

	texts = palloc(sizeof(fb_text) * Max(total, 1));
	rows = palloc(sizeof(int *) * njobs);
	for (int j = 0; j < njobs; j++)
		rows[j] = palloc(sizeof(int) * Max(jobs[j]->req.ntexts, 1));
	for (k = 0; k < total; k++)
	{
		texts[k] = jobs[m[k].job]->texts[m[k].row];
		rows[m[k].job][m[k].row] = k;
	}

	req.texts = texts;
	req.ntexts = total;
	req.batch_size = Max(total, 1);
	RunJobs = jobs;
	NRunJobs = njobs;
	PG_TRY();
	{
		FinbertRun(&rc, &req, wm->model, wm->lanes[0], &res, &tokens, &batches);
	}
	PG_CATCH();
	{
		edata = CatchError();
		ok = false;
	}
	PG_END_TRY();
	NRunJobs = 0;
	if (!ok && FinbertHostFailures() != host_failures)
	{
		/* the host died under this batch: every request of it fails */
		for (int j = 0; j < njobs; j++)
			FailJobError(jobs[j], edata);
		return true;
	}
	if (!ok)
		return false;

	FinbertStatsWorkerBatch((uint64) njobs, (uint64) total, (uint64) batches,
							(uint64) tokens);
	for (int j = 0; j < njobs; j++)
		AnswerJob(jobs[j], &res, rows[j]);
	return true;
}

/* Drops jobs of the group whose requesters have gone; returns how many remain. */
static int
PruneAbandoned(Job **jobs, int njobs)
{
	FinbertQueue *q = FinbertQueueShared;
	int			kept = 0;
	bool		freed = false;

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	for (int j = 0; j < njobs; j++)
	{
		FinbertSlot *slot = &q->slots[jobs[j]->slot];

		if (slot->request_id == jobs[j]->id && slot->state == SLOT_ABANDONED)
		{
			slot->state = SLOT_FREE;
			jobs[j]->answered = true;
			freed = true;
		}
		else
			jobs[kept++] = jobs[j];
	}
	LWLockRelease(q->lock);
	if (freed)
		ConditionVariableBroadcast(&q->slot_freed);
	return kept;
}

static void
RunGroup(Job **jobs, int njobs)
{
	WorkerModel *wm = NULL;
	ErrorData  *edata = NULL;
	FinbertTask task = jobs[0]->req.task;

	njobs = PruneAbandoned(jobs, njobs);
	if (njobs == 0)
		return;

	PG_TRY();
	{
		wm = OpenModel(&jobs[0]->ref);
	}
	PG_CATCH();
	{
		edata = CatchError();
	}
	PG_END_TRY();
	SetState(WORKER_RUNNING);
	if (edata)
	{
		for (int j = 0; j < njobs; j++)
			FailJobError(jobs[j], edata);
		return;
	}

	if (njobs > 1 && task != FINBERT_TASK_TOKENIZE && RunMerged(jobs, njobs, wm))
		return;
	for (int j = 0; j < njobs; j++)
	{
		if (ShutdownRequestPending)
			FailJob(jobs[j], ERRCODE_ADMIN_SHUTDOWN,
					"finbert worker stopped the request",
					"The worker is shutting down.", NULL);
		else
			RunAlone(jobs[j], wm);
	}
}

static bool
SameGroup(const Job *a, const Job *b)
{
	return a->req.task == b->req.task &&
		a->req.max_length == b->req.max_length &&
		a->req.pooling == b->req.pooling &&
		FinbertModelRefEquals(&a->ref, &b->ref);
}

static void
RunBatch(void)
{
	Job		  **group = palloc(sizeof(Job *) * Max(NJobs, 1));
	int			ngroups = 0;

	/* attach and read the requests */
	for (int j = 0; j < NJobs; j++)
	{
		Job		   *job = &Jobs[j];

		job->seg = dsm_attach(job->handle);
		if (job->seg == NULL)
		{
			/* the requester has gone and its segment with it */
			FailJob(job, ERRCODE_QUERY_CANCELED, "finbert request abandoned", NULL, NULL);
			continue;
		}
		if (job->size > dsm_segment_map_length(job->seg) ||
			!FinbertWireRequestRead(dsm_segment_address(job->seg), job->size,
									job->id, &job->req, &job->ref, &job->texts))
		{
			FailJob(job, ERRCODE_INTERNAL_ERROR,
					"malformed request in the finbert queue", NULL, NULL);
			continue;
		}
		job->valid = true;
		job->group = -1;
		for (int k = 0; k < j; k++)
			if (Jobs[k].valid && SameGroup(&Jobs[k], job))
			{
				job->group = Jobs[k].group;
				break;
			}
		if (job->group < 0)
			job->group = ngroups++;
	}

	/* one run per group, in order of the groups' oldest requests */
	for (int g = 0; g < ngroups; g++)
	{
		int			n = 0;

		for (int j = 0; j < NJobs; j++)
			if (Jobs[j].valid && Jobs[j].group == g)
				group[n++] = &Jobs[j];
		if (ShutdownRequestPending)
		{
			for (int j = 0; j < n; j++)
				FailJob(group[j], ERRCODE_ADMIN_SHUTDOWN,
						"finbert worker stopped the request",
						"The worker is shutting down.", NULL);
			continue;
		}
		RunGroup(group, n);
	}

	for (int j = 0; j < NJobs; j++)
	{
		if (!Jobs[j].answered)
			FailJob(&Jobs[j], ERRCODE_INTERNAL_ERROR,
					"finbert worker did not answer the request", NULL, NULL);
		if (Jobs[j].seg)
			dsm_detach(Jobs[j].seg);
	}
	NJobs = 0;
}

/* ------------------------------------------------------------------------
 * Collecting requests
 * ------------------------------------------------------------------------ */
static int
CompareRequestId(const void *a, const void *b)
{
	const FinbertSlot *slots = FinbertQueueShared->slots;
	uint64		x = slots[*(const int *) a].request_id;
	uint64		y = slots[*(const int *) b].request_id;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Remembers that pid has a request queued now. */
static void
NoteClient(int pid, TimestampTz now)
{
	int			free_at = -1;

	for (int i = 0; i < NRecent; i++)
	{
		if (Recent[i].pid == pid)
		{
			Recent[i].seen = now;
			return;
		}
		if (free_at < 0 &&
			(Recent[i].pid == 0 ||
			 TimestampDifferenceExceeds(Recent[i].seen, now, RECENT_CLIENT_MS)))
			free_at = i;
	}
	if (free_at >= 0)
	{
		Recent[free_at].pid = pid;
		Recent[free_at].seen = now;
	}
}

static int
RecentClients(TimestampTz now)
{
	int			n = 0;

	for (int i = 0; i < NRecent; i++)
		if (Recent[i].pid != 0 &&
			!TimestampDifferenceExceeds(Recent[i].seen, now, RECENT_CLIENT_MS))
			n++;
	return n;
}

/*
 * Looks at the queue: takes a batch into Jobs (returns true), or returns
 * false with *timeout_ms set to how long to keep collecting (-1: nothing
 * queued).  Also releases the result segments requesters are done with.
 */
static bool
Collect(long *timeout_ms, bool *results_pending)
{
	FinbertQueue *q = FinbertQueueShared;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz oldest = 0;
	dsm_segment **detach = palloc(sizeof(dsm_segment *) * q->nslots);
	int			ndetach = 0;
	int			nqueued = 0;
	int64		tokens = 0;
	bool		take;

	*timeout_ms = -1;
	*results_pending = false;
	NJobs = 0;

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	for (int i = 0; i < q->nslots; i++)
	{
		FinbertSlot *slot = &q->slots[i];

		if (ResultSegs[i] != NULL)
		{
			if (slot->state == SLOT_DONE && slot->request_id == ResultIds[i])
				*results_pending = true;
			else
			{
				detach[ndetach++] = ResultSegs[i];
				ResultSegs[i] = NULL;
			}
		}
		if (slot->state != SLOT_QUEUED)
			continue;
		Order[nqueued++] = i;
		tokens += slot->est_tokens;
		if (oldest == 0 || slot->enqueued_at < oldest)
			oldest = slot->enqueued_at;
		NoteClient(slot->owner_pid, now);
	}

	if (nqueued == 0)
		take = false;
	else if (tokens >= MaxBatchTokens() || finbert_batch_wait_ms <= 0 ||
			 RecentClients(now) <= nqueued ||
			 TimestampDifferenceExceeds(oldest, now, finbert_batch_wait_ms))
		take = true;
	else
	{
		long		waited = (long) ((now - oldest) / 1000);

		take = false;
		*timeout_ms = Max(finbert_batch_wait_ms - waited, 1);
	}

	if (take)
	{
		int64		budget = 0;

		qsort(Order, nqueued, sizeof(int), CompareRequestId);
		for (int k = 0; k < nqueued; k++)
		{
			FinbertSlot *slot = &q->slots[Order[k]];
			Job		   *job = &Jobs[NJobs];

			if (NJobs > 0 && budget + slot->est_tokens > MaxBatchTokens())
				break;
			budget += slot->est_tokens;
			slot->state = SLOT_RUNNING;
			slot->worker_pid = MyProcPid;
			memset(job, 0, sizeof(*job));
			job->slot = Order[k];
			job->id = slot->request_id;
			job->handle = slot->request_handle;
			job->size = slot->request_size;
			job->est_tokens = slot->est_tokens;
			NJobs++;
		}
	}
	LWLockRelease(q->lock);

	for (int i = 0; i < ndetach; i++)
		dsm_detach(detach[i]);
	pfree(detach);
	return NJobs > 0;
}

/* ------------------------------------------------------------------------
 * Start and exit
 * ------------------------------------------------------------------------ */

/*
 * Fails what a worker (this one at exit, or a previous incarnation found at
 * start) left RUNNING, frees what it left ABANDONED.
 */
static void
FailLeftovers(bool at_exit)
{
	FinbertQueue *q = FinbertQueueShared;
	int			nowners = 0;
	bool		freed = false;

	LWLockAcquire(q->lock, LW_EXCLUSIVE);
	if (at_exit && q->worker_pid == MyProcPid)
	{
		q->worker_pid = 0;
		q->worker_latch = NULL;
	}
	else if (!at_exit)
	{
		q->worker_pid = MyProcPid;
		q->worker_latch = MyLatch;
		q->worker_starts++;
	}
	for (int i = 0; i < q->nslots; i++)
	{
		FinbertSlot *slot = &q->slots[i];
		bool		mine = slot->worker_pid == MyProcPid;

		if (at_exit != mine)
			continue;
		if (slot->state == SLOT_RUNNING)
		{
			slot->sqlerrcode = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
			strlcpy(slot->errmsg, "finbert worker exited while running the request",
					sizeof(slot->errmsg));
			strlcpy(slot->errdetail, "The request was in the batch the worker was running when it stopped.",
					sizeof(slot->errdetail));
			slot->errhint[0] = '\0';
			slot->state = SLOT_FAILED;
			Owners[nowners++] = slot->owner;
		}
		else if (slot->state == SLOT_ABANDONED)
		{
			slot->state = SLOT_FREE;
			freed = true;
		}
	}
	LWLockRelease(q->lock);
	for (int i = 0; i < nowners; i++)
		SetLatch(&Owners[i]->procLatch);
	if (freed)
		ConditionVariableBroadcast(&q->slot_freed);
}

static void
WorkerExit(int code, Datum arg)
{
	/* the queue lock is never held across code that can fail; be sure */
	LWLockReleaseAll();
	FinbertHostStop(true);
	FinbertDeviceModelsClear();
	if (FinbertQueueShared == NULL)
		return;
	FailLeftovers(true);
	SetState(WORKER_NOT_RUNNING);
}

void
finbert_worker_main(Datum arg)
{
	FinbertQueue *q = FinbertQueueShared;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	if (q == NULL)
		ereport(FATAL,
				(errmsg("finbert worker started without finbert shared memory")));

	WorkerContext = AllocSetContextCreate(TopMemoryContext, "finbert worker",
										  ALLOCSET_DEFAULT_SIZES);
	BatchContext = AllocSetContextCreate(WorkerContext, "finbert batch",
										 ALLOCSET_DEFAULT_SIZES);
	{
		HASHCTL		ctl;

		ctl.keysize = FINBERT_NAME_MAX + 1;
		ctl.entrysize = sizeof(WorkerModel);
		ctl.hcxt = WorkerContext;
		WorkerModels = hash_create("finbert worker models", 16, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	Jobs = MemoryContextAllocZero(WorkerContext, sizeof(Job) * q->nslots);
	Order = MemoryContextAllocZero(WorkerContext, sizeof(int) * q->nslots);
	Owners = MemoryContextAllocZero(WorkerContext, sizeof(PGPROC *) * q->nslots);
	NRecent = 2 * q->nslots;
	Recent = MemoryContextAllocZero(WorkerContext, sizeof(RecentClient) * NRecent);
	ResultSegs = MemoryContextAllocZero(WorkerContext, sizeof(dsm_segment *) * q->nslots);
	ResultIds = MemoryContextAllocZero(WorkerContext, sizeof(uint64) * q->nslots);

	on_shmem_exit(WorkerExit, (Datum) 0);
	FailLeftovers(false);
	ResolveDevice();
	ApplyEngineHost();
	SetState(WORKER_IDLE);
	ereport(LOG,
			(errmsg("finbert worker started"),
			 errdetail("%d request slots, max_batch_tokens %d, batch_wait_ms %d, %d engine lanes, engine %s.",
					   q->nslots, MaxBatchTokens(), finbert_batch_wait_ms,
					   WorkerThreads(), UseHost() ? "in the engine host process" : "in the worker")));

	MemoryContextSwitchTo(BatchContext);
	while (!ShutdownRequestPending)
	{
		long		timeout;
		bool		results_pending;
		int			events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			ApplyThreads();
			ResolveDevice();
			ApplyEngineHost();
		}

		if (Collect(&timeout, &results_pending))
		{
			SetState(WORKER_RUNNING);
			RunBatch();
			MemoryContextReset(BatchContext);
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		MemoryContextReset(BatchContext);

		if (timeout >= 0)
			SetState(WORKER_COLLECTING);
		else
		{
			SetState(WORKER_IDLE);
			CloseIdleModels(false);
			timeout = results_pending ? RESULT_POLL_MS : IDLE_POLL_MS;
		}
		(void) WaitLatch(MyLatch, events, timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	/* shutdown: exit 0 quietly; a stray SIGTERM: exit 1, restarted */
	CloseIdleModels(true);
	FinbertHostStop(false);
	FinbertExitAfterShutdownRequest("finbert worker",
									"The postmaster starts a new one; queued requests wait for it.");
}
