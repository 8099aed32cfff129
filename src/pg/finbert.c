/*
 * finbert.c — module entry point: _PG_init, shared memory hooks and the
 * registration of the background workers (the top layer of the glue,
 * finbert_pg.h; the settings are defined in guc.c).
 *
 * Loaded through shared_preload_libraries (recommended: it reserves the
 * shared statistics, the request queue and the cache write queue, and
 * starts the finbert worker and the cache writer) or on first use (then
 * inference runs inline only and nothing is cached).  Nothing here starts
 * threads or opens models: models are opened lazily per backend
 * (registry.c) or in the worker (worker.c), and engine threads are started
 * by the sessions of those models, never in the postmaster.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"

#include "finbert_pg.h"
#include "finbert_queue.h"

PG_MODULE_MAGIC;

/* Seconds before the postmaster restarts the worker after it exited with code 1. */
#define FINBERT_WORKER_RESTART_SECONDS	1

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

static void
finbert_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	FinbertStatsShmemRequest();
	FinbertQueueShmemRequest();
	FinbertDeviceShmemRequest();
	FinbertProgressShmemRequest();
	RequestAddinShmemSpace(MAXALIGN(FinbertCacheShmemSize()));
}

static void
finbert_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	FinbertStatsShmemStartup();
	FinbertQueueShmemStartup();
	FinbertDeviceShmemStartup();
	FinbertCacheShmemStartup();
	FinbertProgressShmemStartup();
}

/*
 * The finbert worker: inference, shared memory only, serves every database.
 * It exits with code 1 on errors and on a SIGTERM while the server runs,
 * and is restarted; on a server shutdown it exits with code 0 (shutdown.c).
 * (The cache writer is started on demand by the backends of
 * finbert.database, cache.c.)
 */
static void
RegisterWorker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = FINBERT_WORKER_RESTART_SECONDS;
	strlcpy(worker.bgw_library_name, "finbert", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "finbert_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "finbert worker", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "finbert worker", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

void
_PG_init(void)
{
	FinbertDefineGucs();
	FinbertBatchInit();

	if (process_shared_preload_libraries_in_progress)
	{
		RegisterWorker();
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = finbert_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = finbert_shmem_startup;
	}
}
