/*
 * guc.c — the finbert.* settings: their variables, checks and definitions.
 *
 * The bottom layer of the glue (finbert_pg.h): every file may read the
 * variables; this file calls no other file of src/pg.  _PG_init (finbert.c)
 * defines them with FinbertDefineGucs, then reserves the prefix.
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"

#include "finbert_pg.h"

char	   *finbert_model_dir = NULL;
char	   *finbert_sentiment_model = NULL;
char	   *finbert_industry_model = NULL;
char	   *finbert_type_model = NULL;
char	   *finbert_ner_model = NULL;
char	   *finbert_embed_model = NULL;
int			finbert_max_input_bytes = 1024 * 1024;
int			finbert_max_length = 512;
int			finbert_batch_size = 32;
int			finbert_threads = 1;
int			finbert_execution = FINBERT_EXEC_AUTO;
int			finbert_worker_slots = 64;
int			finbert_max_batch_tokens = 8192;
int			finbert_batch_wait_ms = 10;
bool		finbert_batching = true;
int			finbert_batch_rows = 256;
int			finbert_worker_timeout = 10000;
int			finbert_worker_threads = 0;
char	   *finbert_database = NULL;
bool		finbert_cache = true;
int			finbert_cache_max_rows = 1000000;
int			finbert_cache_queue_size = 1024;
int			finbert_device = FB_DEVICE_AUTO;
char	   *finbert_cuda_module = NULL;
bool		finbert_engine_host = false;
int			finbert_engine_host_timeout = 300000;

static const struct config_enum_entry execution_options[] = {
	{"auto", FINBERT_EXEC_AUTO, false},
	{"inline", FINBERT_EXEC_INLINE, false},
	{"worker", FINBERT_EXEC_WORKER, false},
	{NULL, 0, false}
};

static const struct config_enum_entry device_options[] = {
	{"auto", FB_DEVICE_AUTO, false},
	{"cpu", FB_DEVICE_CPU, false},
	{"cuda", FB_DEVICE_CUDA, false},
	{NULL, 0, false}
};

/* finbert.cuda_module must be empty (the default) or an absolute path. */
static bool
check_cuda_module(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!is_absolute_path(*newval))
	{
		GUC_check_errdetail("finbert.cuda_module must be an absolute path.");
		return false;
	}
	return true;
}

char *
FinbertCudaModulePath(void)
{
	if (finbert_cuda_module && finbert_cuda_module[0])
		return pstrdup(finbert_cuda_module);
	return psprintf("%s/finbert_cuda.so", pkglib_path);
}

bool
FinbertGucIsDefault(const char *name)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
		if (strcmp(vars[i]->name, name) == 0)
			return vars[i]->source == PGC_S_DEFAULT;
	return true;
}

/* finbert.model_dir must be empty (unset) or an absolute path. */
static bool
check_model_dir(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!is_absolute_path(*newval))
	{
		GUC_check_errdetail("finbert.model_dir must be an absolute path.");
		return false;
	}
	return true;
}

/* Task model settings: empty (no model) or a valid model name. */
static bool
check_model_name(char **newval, void **extra, GucSource source)
{
	const char *s = *newval;

	if (s == NULL || s[0] == '\0')
		return true;
	if (strlen(s) > FINBERT_NAME_MAX)
	{
		GUC_check_errdetail("Model names are at most %d bytes.", FINBERT_NAME_MAX);
		return false;
	}
	for (; *s; s++)
	{
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			  (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
		{
			GUC_check_errdetail("Model names consist of ASCII letters, digits, \"_\", \"-\" and \".\".");
			return false;
		}
	}
	return true;
}

void
FinbertDefineGucs(void)
{
	DefineCustomStringVariable("finbert.model_dir",
							   "Directory under which every model directory must lie.",
							   "finbert_load_model resolves model paths inside it; "
							   "paths escaping it (\"..\", symbolic links) are refused.",
							   &finbert_model_dir,
							   "",
							   PGC_SUSET,
							   0,
							   check_model_dir, NULL, NULL);

	DefineCustomStringVariable("finbert.sentiment_model",
							   "Model used by finbert_sentiment when no model is named.",
							   NULL,
							   &finbert_sentiment_model,
							   "finbert-sentiment",
							   PGC_USERSET, 0,
							   check_model_name, NULL, NULL);

	DefineCustomStringVariable("finbert.industry_model",
							   "Model used by finbert_industry when no model is named.",
							   NULL,
							   &finbert_industry_model,
							   "finbert-industry",
							   PGC_USERSET, 0,
							   check_model_name, NULL, NULL);

	DefineCustomStringVariable("finbert.type_model",
							   "Model used by finbert_type when no model is named.",
							   NULL,
							   &finbert_type_model,
							   "finbert-type",
							   PGC_USERSET, 0,
							   check_model_name, NULL, NULL);

	DefineCustomStringVariable("finbert.ner_model",
							   "Model used by finbert_entities, finbert_companies and finbert_persons when no model is named.",
							   NULL,
							   &finbert_ner_model,
							   "finbert-ner",
							   PGC_USERSET, 0,
							   check_model_name, NULL, NULL);

	DefineCustomStringVariable("finbert.embed_model",
							   "Model used by finbert_embed and finbert_tokenize when no model is named.",
							   NULL,
							   &finbert_embed_model,
							   "finbert-base",
							   PGC_USERSET, 0,
							   check_model_name, NULL, NULL);

	DefineCustomIntVariable("finbert.max_input_bytes",
							"Largest text accepted by finbert functions.",
							"Longer texts raise program_limit_exceeded.",
							&finbert_max_input_bytes,
							1024 * 1024,
							1, MaxAllocSize / 4,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.max_length",
							"Tokens per model input, including [CLS] and [SEP].",
							"Classification and embeddings truncate to it; entity extraction "
							"covers longer texts with overlapping windows.  The model's "
							"max_position_embeddings caps it.",
							&finbert_max_length,
							512,
							8, 8192,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.batch_size",
							"Texts per engine call in the array forms of the functions.",
							NULL,
							&finbert_batch_size,
							32,
							1, 4096,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("finbert.batching",
							 "Evaluates finbert calls of per-row queries in batches (Finbert Batch plan node).",
							 "Off: plans keep per-row evaluation.",
							 &finbert_batching,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.batch_rows",
							"Most rows a Finbert Batch node evaluates in one batch.",
							"Batches grow 1, 4, 16, ... up to this, and are cut at finbert.max_batch_tokens estimated tokens.",
							&finbert_batch_rows,
							256,
							1, 65536,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.threads",
							"Threads one backend uses for a forward pass.",
							"The engine runs its own worker threads (OpenBLAS stays single-threaded); "
							"each backend that runs a model with more than one thread keeps a pool of them.",
							&finbert_threads,
							1,
							1, 256,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("finbert.execution",
							 "Where inference runs: inline in the backend, in the finbert worker, or auto.",
							 NULL,
							 &finbert_execution,
							 FINBERT_EXEC_AUTO,
							 execution_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("finbert.device",
							 "Where the finbert worker runs the models: cpu, cuda, or auto (cuda when the module loads and a device is present).",
							 "On a CUDA device the engine runs in the worker's engine host process, and "
							 "finbert.execution = auto sends every call to the worker.",
							 &finbert_device,
							 FB_DEVICE_AUTO,
							 device_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("finbert.cuda_module",
							   "Path of the finbert CUDA backend module (empty: finbert_cuda.so in the package library directory).",
							   NULL,
							   &finbert_cuda_module,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   check_cuda_module, NULL, NULL);

	DefineCustomBoolVariable("finbert.engine_host",
							 "Runs the finbert worker's CPU engine in its engine host process too.",
							 "Isolates the database from every engine fault, at the cost of a round trip "
							 "per engine call; on a CUDA device the host is always used.",
							 &finbert_engine_host,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.host_timeout",
							"How long the finbert worker waits for one answer of its engine host before it kills and restarts it.",
							NULL,
							&finbert_engine_host_timeout,
							300000,
							100, INT_MAX / 2,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.worker_slots",
							"Request slots of the finbert worker's queue in shared memory.",
							"Each backend (or parallel worker) waiting for the worker uses one; "
							"when all are in use, further requests wait for a free slot.",
							&finbert_worker_slots,
							64,
							1, 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.max_batch_tokens",
							"Tokens the finbert worker gathers into one batch (and one forward pass).",
							"Left at its default, 65536 when the worker runs on a GPU.",
							&finbert_max_batch_tokens,
							8192,
							64, 1024 * 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.batch_wait_ms",
							"How long the finbert worker holds requests for more to join the batch.",
							"Only while sessions that sent requests in the last 100 ms have none queued "
							"(a lone session never waits); 0 runs every request at once.",
							&finbert_batch_wait_ms,
							10,
							0, 10000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.worker_timeout",
							"How long a request waits while no finbert worker is running before it fails.",
							NULL,
							&finbert_worker_timeout,
							10000,
							100, INT_MAX / 2,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.worker_threads",
							"Engine calls the finbert worker runs at once, one thread each (0: one per CPU).",
							"A batch is split into this many parts of about equal size.",
							&finbert_worker_threads,
							0,
							0, 256,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("finbert.database",
							   "Database whose finbert.embedding_cache is used: the cache writer connects to it.",
							   "Calls in other databases do not use the cache; empty: nothing is cached.",
							   &finbert_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("finbert.cache",
							 "Looks embeddings up in finbert.embedding_cache and queues computed ones for it.",
							 NULL,
							 &finbert_cache,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.cache_max_rows",
							"Rows the embedding cache keeps; the least recently used beyond it are evicted (0: no limit).",
							NULL,
							&finbert_cache_max_rows,
							1000000,
							0, INT_MAX,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("finbert.cache_queue_size",
							"Shared memory for embeddings waiting for the cache writer.",
							"When it is full, further embeddings are not cached (finbert_stats.cache_dropped).",
							&finbert_cache_queue_size,
							1024,
							64, 1024 * 1024,
							PGC_POSTMASTER,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("finbert");
}
