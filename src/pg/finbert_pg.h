/*
 * finbert_pg.h — declarations shared by the PostgreSQL glue (src/pg/).
 *
 * The glue never does numerics: it resolves a model name to a loaded engine
 * model (registry.c), turns SQL arguments into one FinbertRequest, runs it
 * through FinbertExecute (exec.c) and turns the FinbertResult back into SQL
 * values (classify.c, entities.c, embed.c, tokenize.c).  Every request goes
 * through FinbertExecute so that it can later be routed to a background
 * worker without touching the SQL-callable functions.
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
#include "utils/array.h"

#include "finbert.h"

/* Model names: a safe identifier that also works as a directory name. */
#define FINBERT_NAME_MAX		63

/* Hex digest of SHA-256. */
#define FINBERT_SHA256_HEX		64

/* Tasks a registered model can serve (column finbert.models.task). */
#define FINBERT_TASK_NAMES "sentiment, industry, type, classify, ner, embed"

typedef enum FinbertExecution
{
	FINBERT_EXEC_AUTO,
	FINBERT_EXEC_INLINE,
	FINBERT_EXEC_WORKER
} FinbertExecution;

/* GUCs (finbert.c) */
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

/* ------------------------------------------------------------------------
 * Model registry and per-backend cache (registry.c)
 * ------------------------------------------------------------------------ */
typedef struct FinbertModel
{
	char		name[FINBERT_NAME_MAX + 1]; /* hash key */
	fb_model   *model;			/* engine model, NULL while being opened */
	fb_session *session;		/* scratch memory for this backend */
	char		sha256[FINBERT_SHA256_HEX + 1]; /* catalog row it came from */
	char	   *path;			/* canonical directory (TopMemoryContext) */
	int64		weight_size;	/* weight file when opened: size ... */
	int64		weight_mtime_sec;	/* ... and modification time */
	int64		weight_mtime_nsec;
	LocalTransactionId valid_lxid;	/* catalog checked in this transaction */
	CommandId	valid_cid;		/* ... and command */
	uint64		uses;
} FinbertModel;

/*
 * Returns the loaded model called name, opening it on first use in this
 * backend.  guc names the setting the name came from (for hints), or NULL
 * when the caller named the model explicitly.
 */
extern FinbertModel *FinbertGetModel(const char *name, const char *guc);
/* Drops name from this backend's cache (no error when absent). */
extern void FinbertForgetModel(const char *name);

/* Admin check shared by every function that changes the registry. */
extern void FinbertCheckAdmin(const char *action);

/* Name of an architecture / head for catalogs and messages. */
extern const char *FinbertArchName(fb_arch arch);
extern const char *FinbertHeadName(fb_head head);

/* ------------------------------------------------------------------------
 * Requests (exec.c): the single call path of every SQL function
 * ------------------------------------------------------------------------ */
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
	int			ntexts;
	const fb_text *texts;		/* UTF-8, validated by the caller */
	fb_pooling	pooling;		/* FINBERT_TASK_EMBED */
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

extern void FinbertExecute(const FinbertRequest *req, FinbertResult *res);

/*
 * Helpers for the SQL-callable functions: the model name to use (explicit
 * argument or the task's GUC) and a text argument checked against the
 * limits and the database encoding.
 */
extern const char *FinbertModelName(const char *explicit_name,
									const char *guc_value,
									const char *guc_name,
									const char **guc_out);
extern void FinbertTextArg(text *t, fb_text *out);
extern fb_text *FinbertTextArray(ArrayType *arr, int *n, bool **nulls);

/* Engine status to ereport(ERROR); never returns. */
extern void FinbertEngineError(const fb_error *err, const char *model) pg_attribute_noreturn();

/* ------------------------------------------------------------------------
 * Statistics (stats.c)
 * ------------------------------------------------------------------------ */
extern void FinbertStatsShmemRequest(void);
extern void FinbertStatsShmemStartup(void);
extern void FinbertStatsCount(uint64 texts, uint64 tokens, uint64 batches,
							  uint64 elapsed_us);
extern void FinbertStatsError(void);
extern void FinbertStatsModelLoad(void);

#endif							/* FINBERT_PG_H */
