/*
 * finbert_pg.h — declarations shared by the PostgreSQL glue (src/pg/).
 *
 * The glue never does numerics: it resolves a model name to a loaded engine
 * model (registry.c), turns SQL arguments into one FinbertRequest, runs it
 * through FinbertExecute (exec.c) and turns the FinbertResult back into SQL
 * values (classify.c, entities.c, embed.c, tokenize.c).  Every request goes
 * through FinbertExecute, which runs it inline or sends it to the
 * background worker (queue.c, worker.c); both run the same FinbertRun
 * (run.c), each with its own FinbertRunContext.
 *
 * Layers.  A file calls functions of (and reads variables of) files in
 * lower layers only, never of its own layer or above: arrows go one way,
 * so the glue has no call cycle.  make test checks this on the object
 * files (test/pg/layers.sh reads this table):
 *
 *   L5  finbert.c      _PG_init: settings, shared memory, the worker
 *   L4  classify.c embed.c entities.c tokenize.c statfuncs.c similarity.c batch.c
 *                      SQL functions; the planner hook and the Finbert
 *                      Batch plan node (batch.c)
 *   L3  exec.c worker.c
 *                      FinbertExecute (inline or through the worker), the
 *                      background worker
 *   L2  run.c          FinbertRun: a request on an opened model, in a
 *                      backend or in the worker
 *   L1  registry.c cache.c queue.c host.c
 *                      model catalog, embedding cache, request queue,
 *                      the worker's engine host process
 *   L0  guc.c errors.c stats.c wire.c result.c shutdown.c device.c memo.c progress.c
 *                      settings, errors, counters, wire format, SRF rows,
 *                      how the background workers end, the worker's device,
 *                      results computed ahead by batch nodes, statement
 *                      progress
 *
 * The sections below follow the layers, bottom first.  Background worker
 * entry points are called by the postmaster by name (finbert_queue.h).
 *
 * Memory: engine objects (fb_model, fb_session, fb_entity_list, ...) are
 * malloc'd by the engine.  Loaded models live in a per-backend hash table in
 * TopMemoryContext; everything else the engine returns is copied into
 * palloc'd memory and freed before any ereport can be raised.
 */
#ifndef FINBERT_PG_H
#define FINBERT_PG_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/timestamp.h"

#include "finbert.h"

/* Model names: a safe identifier that also works as a directory name. */
#define FINBERT_NAME_MAX		63

/* Hex digest of SHA-256. */
#define FINBERT_SHA256_HEX		64

/* Cache key of a text: its SHA-256. */
#define FINBERT_TEXT_HASH_LEN	32

/* Tasks a registered model can serve (column finbert.models.task). */
#define FINBERT_TASK_NAMES "sentiment, industry, type, classify, ner, embed"

/* Precisions of a registered model (column finbert.models.precision). */
#define FINBERT_PRECISION_NAMES "fp32, int8"

typedef enum FinbertExecution
{
	FINBERT_EXEC_AUTO,
	FINBERT_EXEC_INLINE,
	FINBERT_EXEC_WORKER
} FinbertExecution;

/* ------------------------------------------------------------------------
 * Settings (guc.c)
 * ------------------------------------------------------------------------ */
extern char *finbert_model_dir;
extern char *finbert_sentiment_model;
extern char *finbert_industry_model;
extern char *finbert_type_model;
extern char *finbert_ner_model;
extern char *finbert_embed_model;
extern int	finbert_max_input_bytes;
extern int	finbert_max_length;
extern int	finbert_batch_size;
extern int	finbert_threads;
extern int	finbert_execution;
extern int	finbert_worker_slots;
extern int	finbert_max_batch_tokens;
extern int	finbert_batch_wait_ms;
extern int	finbert_worker_timeout;
extern int	finbert_worker_threads;
extern char *finbert_database;
extern bool finbert_cache;
extern int	finbert_cache_max_rows;
extern int	finbert_cache_queue_size;
extern int	finbert_device;		/* fb_device: auto, cpu, cuda */
extern char *finbert_cuda_module;
extern bool finbert_engine_host;
extern int	finbert_engine_host_timeout;	/* ms */

/* finbert.max_batch_tokens on a GPU while the setting is left at its default. */
#define FINBERT_GPU_MAX_BATCH_TOKENS	65536

/* Is a setting at its built-in default (not set anywhere)? */
extern bool FinbertGucIsDefault(const char *name);
/* finbert.cuda_module, or its default: finbert_cuda.so in the pkglibdir. */
extern char *FinbertCudaModulePath(void);

extern bool finbert_batching;
extern int	finbert_batch_rows;

/* Defines every finbert.* setting (from _PG_init). */
extern void FinbertDefineGucs(void);

/* ------------------------------------------------------------------------
 * Errors (errors.c)
 * ------------------------------------------------------------------------ */
/* Engine status to ereport(ERROR) "context: message"; never returns. */
extern void FinbertEngineError(const fb_error *err, const char *context) pg_attribute_noreturn();

/*
 * SQLSTATE of a request whose batch the engine host was running when it
 * died, hung or reported a device error (always the same).
 */
#define FINBERT_HOST_ERRCODE	ERRCODE_SYSTEM_ERROR

/* Admin check shared by every function that changes the registry. */
extern void FinbertCheckAdmin(const char *action);

/* ------------------------------------------------------------------------
 * Ending a background worker on SIGTERM (shutdown.c)
 * ------------------------------------------------------------------------ */
/* Has the postmaster begun a shutdown (postmaster.pid says "stopping")? */
extern bool FinbertServerStopping(void);
/*
 * Ends a background worker whose loop stopped on SIGTERM: exit code 0 and
 * no message when the server is shutting down, else a LOG line naming
 * what stops (with restart as its detail) and exit code 1, so that the
 * postmaster restarts a restartable worker.
 */
extern void FinbertExitAfterShutdownRequest(const char *what,
											const char *restart) pg_attribute_noreturn();

/* ------------------------------------------------------------------------
 * The worker's device and engine host, published for backends (device.c)
 * ------------------------------------------------------------------------ */
typedef enum FinbertDeviceKind
{
	FINBERT_DEVICE_UNKNOWN = 0,	/* no worker, or not resolved yet */
	FINBERT_DEVICE_ON_CPU,
	FINBERT_DEVICE_ON_CUDA
} FinbertDeviceKind;

#define FINBERT_DEVICE_MODELS	32	/* models listed with their device */

typedef struct FinbertDeviceStatus
{
	FinbertDeviceKind device;	/* where the worker runs the engine */
	char		name[128];		/* the device's name ("cpu" on the CPU) */
	uint64		total_bytes;	/* device memory */
	uint64		used_bytes;		/* in use by the engine host */
	int			host_pid;		/* engine host process, 0: none */
	uint64		host_starts;
	uint64		host_failures;	/* died, hung or device errors */
	uint64		batches;		/* engine calls run on the GPU */
	uint64		tokens;			/* and their tokens */
} FinbertDeviceStatus;

typedef struct FinbertDeviceModel
{
	char		name[FINBERT_NAME_MAX + 1];
	char		device[8];		/* "cpu", "cuda" */
	int64		device_bytes;	/* weights in device memory */
} FinbertDeviceModel;

extern void FinbertDeviceShmemRequest(void);
extern void FinbertDeviceShmemStartup(void);
extern void FinbertDeviceSetResolved(FinbertDeviceKind device, const char *name,
									 uint64 total_bytes);
extern FinbertDeviceKind FinbertDeviceResolved(void);
extern void FinbertDeviceHostStarted(int pid);
extern void FinbertDeviceHostFailed(void);
extern void FinbertDeviceCount(uint64 batches, uint64 tokens, uint64 used_bytes);
extern void FinbertDeviceModelSet(const char *name, const char *device,
								  int64 device_bytes);
extern void FinbertDeviceModelsClear(void);
/* false without shared memory; models (FINBERT_DEVICE_MODELS) may be NULL */
extern bool FinbertDeviceGetStatus(FinbertDeviceStatus *st,
								   FinbertDeviceModel *models, int *nmodels);

/* ------------------------------------------------------------------------
 * Statistics (stats.c)
 * ------------------------------------------------------------------------ */
extern void FinbertStatsShmemRequest(void);
extern void FinbertStatsShmemStartup(void);
extern void FinbertStatsCount(uint64 texts, uint64 tokens, uint64 batches,
							  uint64 elapsed_us);
extern void FinbertStatsError(void);
extern void FinbertStatsModelLoad(void);
/* background worker: a run over the texts of requests requests */
extern void FinbertStatsWorkerBatch(uint64 requests, uint64 texts,
									uint64 batches, uint64 tokens);
extern void FinbertStatsTokens(uint64 tokens);	/* last-minute rate */
extern void FinbertStatsCache(uint64 hits, uint64 misses);
extern void FinbertStatsCacheEvictions(uint64 n);
extern void FinbertStatsCacheWrites(uint64 n);

/* The counters as read by finbert_stats() (statfuncs.c). */
typedef struct FinbertStatsData
{
	bool		shared;			/* cluster-wide (preloaded), else this backend */
	uint64		requests;
	uint64		texts;
	uint64		tokens;
	uint64		batches;
	uint64		busy_us;
	uint64		errors;
	uint64		model_loads;
	uint64		worker_requests;
	uint64		worker_batches;
	uint64		worker_texts;
	uint64		cache_hits;
	uint64		cache_misses;
	uint64		cache_writes;
	uint64		cache_evictions;
	double		tokens_per_second_1m;
	TimestampTz reset_time;
} FinbertStatsData;
extern void FinbertStatsRead(FinbertStatsData *out);
extern void FinbertStatsReset(void);

/* ------------------------------------------------------------------------
 * Requests and results: the types every layer passes around
 * ------------------------------------------------------------------------ */
/*
 * A registered model as resolved from the catalog by a backend: everything
 * the background worker needs to open exactly the same files with the same
 * arithmetic (it reads no catalog), and the identity under which embeddings
 * are cached.
 */
typedef struct FinbertModelRef
{
	char		name[FINBERT_NAME_MAX + 1];
	char		path[MAXPGPATH];	/* canonical model directory */
	char		sha256[FINBERT_SHA256_HEX + 1]; /* catalog checksum */
	int64		weight_size;	/* weight file at resolution: size ... */
	int64		weight_mtime_sec;	/* ... and modification time */
	int64		weight_mtime_nsec;
	int32		max_position;	/* catalog max_length */
	int32		hidden_size;	/* catalog hidden_size */
	int32		precision;		/* fb_precision: catalog precision */
} FinbertModelRef;

typedef enum FinbertTask
{
	FINBERT_TASK_CLASSIFY,
	FINBERT_TASK_ENTITIES,
	FINBERT_TASK_EMBED,
	FINBERT_TASK_TOKENIZE
} FinbertTask;

typedef struct FinbertRequest
{
	FinbertTask task;
	const char *model;			/* registered model name */
	const char *guc;			/* setting the name came from, or NULL */
	/*
	 * Pinned forms (finbert_*_pinned): the model identity the call demands
	 * (FinbertModelPin), checked against the catalog before anything runs,
	 * and the window is the model's full length instead of
	 * finbert.max_length, so the result depends on the arguments and the
	 * model files only (IMMUTABLE).  NULL for the ordinary forms.
	 */
	const char *pin;
	int			ntexts;
	const fb_text *texts;		/* UTF-8, validated by the caller */
	fb_pooling	pooling;		/* FINBERT_TASK_EMBED */
	/* filled by FinbertExecute from the session's settings */
	int			max_length;		/* tokens per window: finbert.max_length
								 * capped by the model (FinbertExecute) */
	int			batch_size;		/* texts per engine call */
} FinbertRequest;

typedef struct FinbertEntity
{
	char	   *text;
	const char *label;			/* points into FinbertResult.labels */
	int32		start;			/* code points, 0-based */
	int32		end;			/* exclusive */
	float4		score;
} FinbertEntity;

/* Everything palloc'd in the caller's memory context. */
typedef struct FinbertResult
{
	int			ntexts;

	/* classification */
	int			nlabels;
	char	  **labels;
	bool		multi_label;
	float4	   *probs;			/* ntexts * nlabels */

	/* entities */
	int		   *nentities;		/* per text */
	FinbertEntity **entities;	/* per text */

	/* embeddings */
	int			dim;
	float4	   *embeddings;		/* ntexts * dim */

	/* tokenization */
	int		   *ntokens;		/* per text */
	char	 ***tokens;			/* per text */
} FinbertResult;

/* ------------------------------------------------------------------------
 * Serialised requests and results (wire.c)
 * ------------------------------------------------------------------------ */
extern Size FinbertWireRequestSize(const FinbertRequest *req);
extern void FinbertWireRequestWrite(char *buf, Size size, uint64 request_id,
									const FinbertRequest *req,
									const FinbertModelRef *ref);
extern bool FinbertWireRequestRead(const char *buf, Size size,
								   uint64 request_id, FinbertRequest *req,
								   FinbertModelRef *ref, fb_text **texts);
extern void FinbertWireResultWrite(StringInfo out, FinbertTask task,
								   const FinbertResult *res, const int *rows,
								   int nrows);
extern void FinbertWireResultRead(const char *buf, Size size, FinbertTask task,
								  FinbertResult *res);

/* ------------------------------------------------------------------------
 * Rows of the set-returning array forms (result.c)
 * ------------------------------------------------------------------------ */
/*
 * One (ord, value) row per element of an array argument, value built by
 * row_array from the element's result row.
 */
typedef ArrayType *(*FinbertRowArrayFn) (const FinbertResult *res, int row,
										 const void *arg);
extern void FinbertReturnOrdArrays(FunctionCallInfo fcinfo,
								   const FinbertResult *res,
								   const bool *nulls, int n,
								   FinbertRowArrayFn row_array,
								   const void *arg);

/* ------------------------------------------------------------------------
 * Results computed ahead by a Finbert Batch node (memo.c)
 * ------------------------------------------------------------------------ */
typedef struct FinbertMemo FinbertMemo;

/* A memo living in (and unregistered with) the memory context cxt. */
extern FinbertMemo *FinbertMemoCreate(MemoryContext cxt);
/* Memory of the current batch: freed by FinbertMemoReset. */
extern MemoryContext FinbertMemoContext(FinbertMemo *memo);
/* Forgets the batch's results and deactivates the memo. */
extern void FinbertMemoReset(FinbertMemo *memo);
/* Records text's result: row of res (kept, not copied). */
extern void FinbertMemoAdd(FinbertMemo *memo, FinbertTask task,
						   const char *model, fb_pooling pooling,
						   int max_length, const fb_text *text,
						   const FinbertResult *res, int row);
extern bool FinbertMemoContains(FinbertMemo *memo, FinbertTask task,
								const char *model, fb_pooling pooling,
								int max_length, const fb_text *text);
/* Makes the memo's results visible to FinbertMemoLookup. */
extern void FinbertMemoActivate(FinbertMemo *memo);
/*
 * The result of a one-text request from an active memo (same task, model,
 * pooling, window length and text): true and *out filled, else false.
 */
extern bool FinbertMemoLookup(const FinbertRequest *req, int max_length,
							  FinbertResult *out);
/*
 * The memo's model key of a call: the model name, or for a pinned call
 * "model#pin" (a model name has no '#'), so a result is only ever taken by
 * a call of the same pin.  Allocated in cxt.
 */
extern char *FinbertMemoModelKey(const char *model, const char *pin,
								 MemoryContext cxt);
/*
 * The memo's window key of a call: max_length (finbert.max_length), or 0
 * for a pinned call, whose window is always the model's full length.
 */
extern int	FinbertMemoWindowKey(const char *pin, int max_length);

/* Transaction end: no batch is in flight. */
extern void FinbertMemoAtAbort(void);

/* ------------------------------------------------------------------------
 * Progress of batched statements (progress.c): finbert_progress
 * ------------------------------------------------------------------------ */
extern void FinbertProgressShmemRequest(void);
extern void FinbertProgressShmemStartup(void);
/* A batch node starts; true for the one that counts the rows. */
extern bool FinbertProgressStart(const char *model, double rows_expected);
extern void FinbertProgressBatch(bool owner, int64 rows, int64 tokens);
extern void FinbertProgressEnd(void);
extern void FinbertProgressAtAbort(void);

/* ------------------------------------------------------------------------
 * Model registry and per-backend cache (registry.c)
 * ------------------------------------------------------------------------ */
typedef struct FinbertModel
{
	char		name[FINBERT_NAME_MAX + 1]; /* hash key */
	FinbertModelRef ref;		/* catalog row and files it came from */
	fb_model   *model;			/* engine model, NULL until opened */
	fb_session *session;		/* scratch memory for this backend */
	LocalTransactionId valid_lxid;	/* catalog checked in this transaction */
	CommandId	valid_cid;		/* ... and command */
	uint64		uses;
} FinbertModel;

/*
 * Resolves name against the catalog (once per statement): the returned
 * entry's ref is valid; its model is opened only by FinbertGetModel.  guc
 * names the setting the name came from (for hints), or NULL when the
 * caller named the model explicitly.
 */
extern FinbertModel *FinbertResolveModel(const char *name, const char *guc);
/* Same, and opens the model in this backend on first use. */
extern FinbertModel *FinbertGetModel(const char *name, const char *guc);
/* Drops name from this backend's cache (no error when absent). */
extern void FinbertForgetModel(const char *name);
/*
 * The identity a pinned call names (palloc'd): the weight checksum of the
 * catalog, followed by ":<precision>" unless the precision is fp32, since
 * the arithmetic changes results as much as the weights do.
 */
extern char *FinbertModelPin(const FinbertModelRef *ref);
/* Are two resolutions the same files under the same checksum and precision? */
extern bool FinbertModelRefEquals(const FinbertModelRef *a, const FinbertModelRef *b);

/*
 * Opens the engine model in a canonical directory with the given precision
 * of its linear layers and a session on it; errors are raised with the same
 * messages wherever a model is opened (backend or worker).
 * max_batch_tokens 0 keeps the engine default.
 */
extern void FinbertOpenEngineModel(const char *name, const char *path,
								   fb_precision precision,
								   int max_batch_tokens, fb_model **model,
								   fb_session **session);

/* Name of an architecture / head for catalogs and messages. */
extern const char *FinbertArchName(fb_arch arch);
extern const char *FinbertHeadName(fb_head head);

/* ------------------------------------------------------------------------
 * Embedding cache (cache.c)
 * ------------------------------------------------------------------------ */
extern Size FinbertCacheShmemSize(void);
extern void FinbertCacheShmemStartup(void);
/*
 * Looks the texts of an embedding request up in finbert.embedding_cache.
 * Returns false when the cache does not apply (switched off, another
 * database, extension objects missing); otherwise fills hit[i] and the
 * rows of res->embeddings (allocated with ref->hidden_size columns) of the
 * hits, and *hashes with the SHA-256 of every text for FinbertCacheStore.
 */
extern bool FinbertCacheLookup(const FinbertRequest *req,
							   const FinbertModelRef *ref, FinbertResult *res,
							   bool *hit, uint8 **hashes);
/* Queues a computed embedding for the cache writer. */
extern void FinbertCacheStore(const FinbertRequest *req,
							  const FinbertModelRef *ref,
							  const uint8 *hash, const float4 *embedding,
							  int dim);

typedef struct FinbertCacheStatus
{
	bool		available;		/* preloaded: the write queue exists */
	int64		pending;		/* queued, not yet written */
	int64		dropped;		/* not queued (queue full) or discarded */
	int			writer_pid;		/* 0 when not running */
} FinbertCacheStatus;
extern void FinbertCacheGetStatus(FinbertCacheStatus *st);
extern void FinbertCacheResetStats(void);

/* ------------------------------------------------------------------------
 * The engine host process, the worker's side (host.c)
 * ------------------------------------------------------------------------ */
/* A model opened in the engine host. */
typedef struct FinbertHostModel
{
	uint32		id;				/* 0: not open */
	uint64		generation;		/* host it was opened in */
	fb_device	device;
	uint64		device_bytes;
} FinbertHostModel;

extern void FinbertHostStart(void);
extern void FinbertHostCheck(void);
extern void FinbertHostStop(bool kill_now);
extern int	FinbertHostPid(void);
extern uint64 FinbertHostGeneration(void);
extern uint64 FinbertHostFailures(void);
extern uint64 FinbertHostDeviceUsed(void);
extern fb_status FinbertHostProbe(fb_device device, const char *cuda_module,
								  fb_device_info *info, fb_error *err);
extern fb_status FinbertHostDeviceInfo(fb_device_info *info, fb_error *err);
extern void FinbertHostOpen(const char *name, const char *path,
							fb_precision precision, fb_device device,
							const char *cuda_module, int max_batch_tokens,
							int threads, const fb_run_ctl *ctl,
							FinbertHostModel *hm);
extern void FinbertHostClose(const FinbertHostModel *hm);
extern fb_status FinbertHostRun(const FinbertHostModel *hm, uint32 kind,
								const fb_run_ctl *ctl, const fb_text *texts,
								size_t n, const fb_task_options *opts,
								float *out, size_t row_floats,
								uint64 *tokens, fb_error *err);
extern void FinbertHostEntities(const FinbertHostModel *hm,
								const fb_model_info *info,
								const fb_run_ctl *ctl, const fb_text *texts,
								size_t n, const fb_task_options *opts,
								fb_entity_list *lists, fb_status *statuses,
								uint64 *tokens, fb_error *errs);

/* ------------------------------------------------------------------------
 * Request queue, backend side (queue.c)
 * ------------------------------------------------------------------------ */
extern Size FinbertQueueShmemSize(void);
extern void FinbertQueueShmemRequest(void);
extern void FinbertQueueShmemStartup(void);

/* Should this request go to the worker (finbert.execution)? */
extern bool FinbertUseWorker(void);
/*
 * Runs req (model resolved to ref) in the worker; fills res like
 * FinbertRun.  The worker counts the tokens and batches it runs.
 */
extern void FinbertWorkerExecute(const FinbertRequest *req,
								 const FinbertModelRef *ref,
								 FinbertResult *res);
/* Backends currently inside FinbertExecute (enter/leave pairs). */
extern void FinbertEnterExecute(void);
extern void FinbertLeaveExecute(void);

typedef struct FinbertQueueStatus
{
	int			worker_pid;		/* 0 when not running */
	const char *worker_state;
	int			queued;			/* requests waiting for the worker */
	int			running;		/* requests in the worker's batch (or
								 * abandoned there) */
	int			slots_in_use;	/* any state but free */
} FinbertQueueStatus;
extern bool FinbertQueueGetStatus(FinbertQueueStatus *st);

/* ------------------------------------------------------------------------
 * Running a request on an opened model (run.c)
 * ------------------------------------------------------------------------ */
/*
 * One engine call over texts[0 .. n) writing rows of row_floats floats to
 * out (fb_classify probabilities or fb_embed vectors).
 */
typedef fb_status (*FinbertEngineCall) (fb_session *s, const fb_text *texts,
										size_t n, const fb_task_options *opts,
										float *out, fb_error *err);
/*
 * Runs call over texts[0 .. n) split over more sessions (worker lanes);
 * *tokens receives the tokens they ran (fb_session_tokens).
 */
typedef fb_status (*FinbertParallelFn) (void *arg, FinbertEngineCall call,
										fb_session *s, const fb_text *texts,
										size_t n, const fb_task_options *opts,
										float *out, size_t row_floats,
										uint64 *tokens, fb_error *err);
/*
 * Entities of texts[0 .. n) into lists[i] with status[i] (FB_OK, the
 * error of the text with err[i], or FB_ERR_INTERRUPTED when it was not
 * computed) and the tokens run for it in tokens[i], split over more
 * sessions (worker lanes).
 */
typedef void (*FinbertParallelEntitiesFn) (void *arg, fb_session *s,
										   const fb_text *texts, size_t n,
										   const fb_task_options *opts,
										   fb_entity_list *lists,
										   fb_status *status, uint64 *tokens,
										   fb_error *err);

/*
 * How FinbertRun calls the engine: given by the caller for each run
 * (FinbertBackendRunContext() in a backend, the worker's own in worker.c),
 * never stored.
 */
typedef struct FinbertRunContext
{
	const fb_run_ctl *ctl;		/* interrupt callback of the calling thread */
	bool		stop_fails;		/* an interrupted engine call is an ERROR
								 * (worker), not a harmless interrupt to
								 * service and repeat (backend) */
	FinbertParallelFn parallel_call;	/* NULL: one engine call */
	FinbertParallelEntitiesFn parallel_entities;	/* NULL: text by text */
	void	   *parallel_arg;	/* passed to both */
} FinbertRunContext;

/* The engine calls of classification and embeddings (the worker tells
 * them apart to send them to its engine host). */
extern fb_status FinbertClassifyCall(fb_session *s, const fb_text *texts,
									 size_t n, const fb_task_options *opts,
									 float *out, fb_error *err);
extern fb_status FinbertEmbedCall(fb_session *s, const fb_text *texts,
								  size_t n, const fb_task_options *opts,
								  float *out, fb_error *err);

/* A backend's context: CHECK_FOR_INTERRUPTS semantics, no lanes. */
extern const FinbertRunContext *FinbertBackendRunContext(void);

/*
 * Runs a request on an opened model in this process (backend or worker):
 * the one implementation behind both execution modes, so results, errors
 * and SQLSTATEs cannot differ.  Raises ERROR on failure.  *batches is
 * incremented by the engine calls, *tokens by the tokens the engine ran
 * through the model (fb_session_tokens: [CLS] and [SEP] included, as
 * truncated, each window of a long text; tokenization: the tokens
 * returned).  Texts are tokenized once, by the engine.
 */
extern void FinbertRun(const FinbertRunContext *rc, const FinbertRequest *req,
					   fb_model *model, fb_session *session,
					   FinbertResult *res, int64 *tokens, int64 *batches);

/* ------------------------------------------------------------------------
 * Requests (exec.c): the single call path of every SQL function
 * ------------------------------------------------------------------------ */
extern void FinbertExecute(const FinbertRequest *req, FinbertResult *res);

/*
 * Helpers for the SQL-callable functions: the model to use (argument argno
 * when the call has it, else the task's GUC) and a text argument checked
 * against the limits and the database encoding.
 */
extern const char *FinbertModelArg(FunctionCallInfo fcinfo, int argno,
								   const char *guc_value, const char *guc_name,
								   const char **guc_out);
extern void FinbertTextArg(text *t, fb_text *out);
/* The pin argument argno of a pinned form, its syntax checked. */
extern const char *FinbertPinArg(FunctionCallInfo fcinfo, int argno);
extern fb_text *FinbertTextArray(ArrayType *arr, int *n, bool **nulls,
								 int *nvalid);

/* ------------------------------------------------------------------------
 * Batching inside a query (batch.c): planner hook, Finbert Batch node
 * ------------------------------------------------------------------------ */
extern void FinbertBatchInit(void);

#endif							/* FINBERT_PG_H */
