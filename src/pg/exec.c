/*
 * exec.c — the single call path from SQL to the engine.
 *
 * Every SQL-callable function builds a FinbertRequest and calls
 * FinbertExecute, which
 *  1. resolves the model against the catalog in the calling backend (so
 *     catalog errors are the same in every mode),
 *  2. for embeddings, takes what it can from the embedding cache (cache.c),
 *  3. runs the rest inline (FinbertRun on a model opened in this backend)
 *     or in the background worker (FinbertWorkerExecute, queue.c), which
 *     runs the very same FinbertRun on its own copy of the model and sends
 *     back results or the error (SQLSTATE, message, detail, hint),
 *  4. queues computed embeddings for the cache writer.
 *
 * Rules for calling the engine from a backend:
 *  - never longjmp through it: its interrupt callback only reports that an
 *    interrupt is pending; the engine returns FB_ERR_INTERRUPTED with its
 *    state freed, and we call CHECK_FOR_INTERRUPTS() afterwards (which
 *    raises the cancel or timeout error, or services a harmless interrupt
 *    after which the call is repeated);
 *  - whatever the engine malloc'd (entity lists, encodings) is freed before
 *    an ereport can escape;
 *  - CHECK_FOR_INTERRUPTS() between engine calls (batches, texts).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "finbert_pg.h"

/* Consecutive harmless interrupts tolerated before giving up. */
#define FINBERT_MAX_INTERRUPT_RETRIES 1000

/* Engine interrupt callback: nonzero when CHECK_FOR_INTERRUPTS would act. */
static int
FinbertInterrupt(void *arg)
{
	return INTERRUPTS_PENDING_CONDITION() && INTERRUPTS_CAN_BE_PROCESSED();
}

static const fb_run_ctl BackendRunCtl = {FinbertInterrupt, NULL};

/* The background worker installs its own (worker.c). */
const fb_run_ctl *FinbertRunCtl = &BackendRunCtl;

/* Set in the worker: an interrupted engine call is not repeated there. */
bool		FinbertInWorker = false;

/* Set in the worker: engine calls split over its lanes. */
FinbertParallelFn FinbertParallelCall = NULL;
FinbertParallelEntitiesFn FinbertParallelEntities = NULL;

static fb_status
ClassifyCall(fb_session *s, const fb_text *texts, size_t n,
			 const fb_task_options *opts, float *out, fb_error *err)
{
	return fb_classify(s, texts, n, opts, NULL, out, err);
}

static fb_status
EmbedCall(fb_session *s, const fb_text *texts, size_t n,
		  const fb_task_options *opts, float *out, fb_error *err)
{
	return fb_embed(s, texts, n, opts, out, err);
}

/* An engine call, split over the worker's lanes when there are any. */
static fb_status
EngineCall(FinbertEngineCall call, fb_session *s, const fb_text *texts,
		   size_t n, const fb_task_options *opts, float *out,
		   size_t row_floats, fb_error *err)
{
	if (FinbertParallelCall)
		return FinbertParallelCall(call, s, texts, n, opts, out, row_floats, err);
	return call(s, texts, n, opts, out, err);
}

/*
 * After an engine call: true when it was interrupted by a harmless
 * interrupt and must be repeated; raises the error of a real one.
 */
static bool
RetryAfterInterrupt(fb_status status, int *retries)
{
	if (status != FB_ERR_INTERRUPTED)
		return false;
	if (FinbertInWorker)
		ereport(ERROR,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("finbert worker stopped the request"),
				 errdetail("The worker is shutting down, or every requester abandoned the batch.")));
	CHECK_FOR_INTERRUPTS();
	if (++(*retries) > FINBERT_MAX_INTERRUPT_RETRIES)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("finbert request interrupted too often")));
	return true;
}

/*
 * The model of a SQL call: argument argno when the call has it (the
 * functions are STRICT: never NULL), else the task's setting guc_name
 * (value guc_value), which *guc_out then names for hints.
 */
const char *
FinbertModelArg(FunctionCallInfo fcinfo, int argno, const char *guc_value,
				const char *guc_name, const char **guc_out)
{
	*guc_out = NULL;
	if (PG_NARGS() > argno)
		return text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (guc_value == NULL || guc_value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no finbert model is configured for this task"),
				 errhint("Set %s to the name of a registered model, or name the model in the call.",
						 guc_name)));
	*guc_out = guc_name;
	return guc_value;
}

static inline void
CheckEncoding(void)
{
	if (GetDatabaseEncoding() != PG_UTF8)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("finbert requires a database with encoding UTF8"),
				 errdetail("The database encoding is %s.", GetDatabaseEncodingName())));
}

static inline void
CheckInputSize(size_t len)
{
	if (len > (size_t) finbert_max_input_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("finbert input of %zu bytes exceeds the limit of %d bytes",
						len, finbert_max_input_bytes),
				 errhint("The limit is set by finbert.max_input_bytes.")));
}

void
FinbertTextArg(text *t, fb_text *out)
{
	CheckEncoding();
	out->data = VARDATA_ANY(t);
	out->len = VARSIZE_ANY_EXHDR(t);
	CheckInputSize(out->len);
}

/*
 * The non-null elements of a one-dimensional text[] as fb_text; *n gets the
 * number of elements (nulls included), *nulls their null flags and *nvalid
 * the number of non-null ones.  The returned array holds the non-null texts
 * only, in order.
 */
fb_text *
FinbertTextArray(ArrayType *arr, int *n, bool **nulls, int *nvalid)
{
	Datum	   *elems;
	fb_text    *texts;
	int			count;
	int			j = 0;

	CheckEncoding();
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("finbert array arguments must be one-dimensional")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, nulls, &count);
	texts = palloc(sizeof(fb_text) * Max(count, 1));
	for (int i = 0; i < count; i++)
	{
		text	   *t;

		if ((*nulls)[i])
			continue;
		t = (text *) DatumGetPointer(elems[i]);
		texts[j].data = VARDATA_ANY(t);
		texts[j].len = VARSIZE_ANY_EXHDR(t);
		CheckInputSize(texts[j].len);
		j++;
	}
	*n = count;
	*nvalid = j;
	return texts;
}

static void
WrongHead(const char *model, const fb_model_info *info, const char *needed,
		  const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("finbert model \"%s\" is not a %s", model, needed),
			 errdetail("Its head is \"%s\".", FinbertHeadName(info->head)),
			 errhint("%s", hint)));
}

/*
 * Tokens the model sees for one text (for statistics), clipped to
 * max_length when the task truncates.  Also validates the text early.
 */
static int64
CountTokens(const fb_tokenizer *tok, const fb_text *t, int max_length,
			const char *model)
{
	fb_encoding enc;
	fb_error	err;
	fb_status	status;
	int			retries = 0;
	int64		n;

	fb_encoding_init(&enc);
	do
	{
		status = fb_tokenizer_encode(tok, t->data, t->len, 1, FinbertRunCtl,
									 &enc, &err);
		if (status != FB_OK)
			fb_encoding_free(&enc);
	} while (RetryAfterInterrupt(status, &retries));
	if (status != FB_OK)
		FinbertEngineError(&err, psprintf("could not tokenize text for model \"%s\"", model));
	n = (int64) enc.n;
	fb_encoding_free(&enc);
	if (max_length > 0 && n > max_length)
		n = max_length;
	return n;
}

static char **
CopyLabels(const fb_model_info *info)
{
	char	  **labels = palloc(sizeof(char *) * Max(info->n_labels, 1));

	for (int i = 0; i < info->n_labels; i++)
		labels[i] = pstrdup(info->labels[i] ? info->labels[i] : "");
	return labels;
}

/* Tokens of text i, for statistics and for the worker's per-request split. */
static inline void
AddTokens(int64 *tokens, int32 *text_tokens, int i, int64 n)
{
	*tokens += n;
	if (text_tokens)
		text_tokens[i] = (int32) Min(n, PG_INT32_MAX);
}

/*
 * Classification and embeddings alike: counts the tokens of every text
 * first (statistics, and the texts are validated before any forward pass),
 * then runs the texts req->batch_size (finbert.batch_size) at a time
 * through call, which writes row_floats floats per text to out.
 */
static void
RunBatches(const FinbertRequest *req, fb_model *model, fb_session *session,
		   const fb_task_options *opts, FinbertEngineCall call, float *out,
		   int row_floats, int64 *tokens, int64 *batches, int32 *text_tokens)
{
	int			batch = Max(req->batch_size, 1);

	for (int i = 0; i < req->ntexts; i++)
		AddTokens(tokens, text_tokens, i,
				  CountTokens(fb_model_tokenizer(model), &req->texts[i],
							  opts->max_length, req->model));

	for (int i = 0; i < req->ntexts; i += batch)
	{
		int			n = Min(batch, req->ntexts - i);
		int			retries = 0;
		fb_error	err;
		fb_status	status;

		do
		{
			status = EngineCall(call, session, req->texts + i, n, opts,
								out + (size_t) i * row_floats, row_floats, &err);
		} while (RetryAfterInterrupt(status, &retries));
		if (status != FB_OK)
			FinbertEngineError(&err, psprintf("finbert model \"%s\" failed", req->model));
		(*batches)++;
		CHECK_FOR_INTERRUPTS();
	}
}

static void
RunClassify(const FinbertRequest *req, fb_model *model, fb_session *session,
			const fb_task_options *opts, FinbertResult *res,
			int64 *tokens, int64 *batches, int32 *text_tokens)
{
	const fb_model_info *info = fb_model_get_info(model);
	int			nl = info->n_labels;

	if (info->head != FB_HEAD_SEQUENCE)
		WrongHead(req->model, info, "sequence classifier",
				  "Use a model with a sequence classification head (task sentiment, industry, type or classify).");
	res->nlabels = nl;
	res->labels = CopyLabels(info);
	res->multi_label = info->multi_label != 0;
	res->probs = palloc0(sizeof(float4) * Max((size_t) req->ntexts * nl, 1));
	RunBatches(req, model, session, opts, ClassifyCall, res->probs, nl,
			   tokens, batches, text_tokens);
}

static void
RunEntities(const FinbertRequest *req, fb_model *model, fb_session *session,
			const fb_task_options *opts, FinbertResult *res,
			int64 *tokens, int64 *batches, int32 *text_tokens)
{
	const fb_model_info *info = fb_model_get_info(model);
	fb_entity_list *plists = NULL;
	fb_status  *pstatus = NULL;
	fb_error   *perr = NULL;

	if (info->head != FB_HEAD_TOKEN)
		WrongHead(req->model, info, "token classifier",
				  "Use a model with a token classification head (task ner).");
	res->nlabels = info->n_labels;
	res->labels = CopyLabels(info);
	res->nentities = palloc0(sizeof(int) * Max(req->ntexts, 1));
	res->entities = palloc0(sizeof(FinbertEntity *) * Max(req->ntexts, 1));

	/*
	 * In the worker, the texts run over its lanes first; then, in text order
	 * as inline, each is counted and its entities copied out.  A text whose
	 * lane failed (or stopped) runs again here, which raises the very error
	 * inline execution raises for it.
	 */
	if (FinbertParallelEntities && req->ntexts > 1)
	{
		plists = palloc0(sizeof(fb_entity_list) * req->ntexts);
		pstatus = palloc(sizeof(fb_status) * req->ntexts);
		perr = palloc(sizeof(fb_error) * req->ntexts);
		for (int i = 0; i < req->ntexts; i++)
			fb_entity_list_init(&plists[i]);
		FinbertParallelEntities(session, req->texts, req->ntexts, opts,
								plists, pstatus, perr);
	}

	PG_TRY();
	{
		for (int i = 0; i < req->ntexts; i++)
		{
			fb_entity_list list;
			fb_error	err;
			fb_status	status = FB_ERR_INTERRUPTED;
			int			retries = 0;

			AddTokens(tokens, text_tokens, i,
					  CountTokens(fb_model_tokenizer(model), &req->texts[i],
								  0, req->model));
			fb_entity_list_init(&list);
			if (plists && pstatus[i] == FB_OK)
			{
				list = plists[i];
				fb_entity_list_init(&plists[i]);
				status = FB_OK;
			}
			else
			{
				do
				{
					status = fb_entities(session, &req->texts[i], opts, &list, &err);
					if (status != FB_OK)
					{
						fb_entity_list_free(&list);
						fb_entity_list_init(&list);
					}
				} while (RetryAfterInterrupt(status, &retries));
			}
			if (status != FB_OK)
				FinbertEngineError(&err, psprintf("finbert model \"%s\" failed", req->model));

			/* copy out; the engine's list is freed even if palloc fails */
			PG_TRY();
			{
				FinbertEntity *ents = palloc(sizeof(FinbertEntity) * Max(list.n, 1));

				for (size_t k = 0; k < list.n; k++)
				{
					const fb_entity *e = &list.items[k];

					ents[k].text = pstrdup(e->text ? e->text : "");
					ents[k].label = NULL;
					for (int l = 0; l < res->nlabels; l++)
						if (e->label && strcmp(res->labels[l], e->label) == 0)
							ents[k].label = res->labels[l];
					if (ents[k].label == NULL)
						ents[k].label = pstrdup(e->label ? e->label : "");
					ents[k].start = e->start;
					ents[k].end = e->end;
					ents[k].score = e->score;
				}
				res->entities[i] = ents;
				res->nentities[i] = (int) list.n;
			}
			PG_FINALLY();
			{
				fb_entity_list_free(&list);
			}
			PG_END_TRY();
			(*batches)++;
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_FINALLY();
	{
		if (plists)
			for (int i = 0; i < req->ntexts; i++)
				fb_entity_list_free(&plists[i]);
	}
	PG_END_TRY();
}

static void
RunEmbed(const FinbertRequest *req, fb_model *model, fb_session *session,
		 fb_task_options *opts, FinbertResult *res,
		 int64 *tokens, int64 *batches, int32 *text_tokens)
{
	const fb_model_info *info = fb_model_get_info(model);
	int			dim = info->hidden;

	if (req->pooling == FB_POOL_POOLER && !info->has_pooler)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("finbert model \"%s\" has no pooler", req->model),
				 errhint("Use pooling 'cls' or 'mean'.")));
	opts->pooling = req->pooling;
	opts->normalize = 1;		/* <-> then orders like cosine similarity */
	res->dim = dim;
	res->embeddings = palloc0(sizeof(float4) * Max((size_t) req->ntexts * dim, 1));
	RunBatches(req, model, session, opts, EmbedCall, res->embeddings, dim,
			   tokens, batches, text_tokens);
}

static void
RunTokenize(const FinbertRequest *req, fb_model *model, FinbertResult *res,
			int64 *tokens, int32 *text_tokens)
{
	const fb_tokenizer *tok = fb_model_tokenizer(model);

	res->ntokens = palloc0(sizeof(int) * Max(req->ntexts, 1));
	res->tokens = palloc0(sizeof(char **) * Max(req->ntexts, 1));
	for (int i = 0; i < req->ntexts; i++)
	{
		fb_encoding enc;
		fb_error	err;
		fb_status	status;
		int			retries = 0;

		fb_encoding_init(&enc);
		do
		{
			status = fb_tokenizer_encode(tok, req->texts[i].data,
										 req->texts[i].len, 0,
										 FinbertRunCtl, &enc, &err);
			if (status != FB_OK)
				fb_encoding_free(&enc);
		} while (RetryAfterInterrupt(status, &retries));
		if (status != FB_OK)
			FinbertEngineError(&err, psprintf("could not tokenize text for model \"%s\"", req->model));

		PG_TRY();
		{
			char	  **toks = palloc(sizeof(char *) * Max(enc.n, 1));

			for (size_t k = 0; k < enc.n; k++)
			{
				const char *s = fb_tokenizer_id_to_token(tok, enc.ids[k]);

				toks[k] = pstrdup(s ? s : "[UNK]");
			}
			res->tokens[i] = toks;
			res->ntokens[i] = (int) enc.n;
		}
		PG_FINALLY();
		{
			fb_encoding_free(&enc);
		}
		PG_END_TRY();
		AddTokens(tokens, text_tokens, i, res->ntokens[i]);
		CHECK_FOR_INTERRUPTS();
	}
}

void
FinbertRun(const FinbertRequest *req, fb_model *model, fb_session *session,
		   FinbertResult *res, int64 *tokens, int64 *batches,
		   int32 *text_tokens)
{
	const fb_model_info *info = fb_model_get_info(model);
	fb_task_options opts = fb_task_default_options();

	memset(res, 0, sizeof(*res));
	res->ntexts = req->ntexts;
	fb_session_set_ctl(session, FinbertRunCtl);
	opts.max_length = req->max_length;
	if (info->max_position > 0 && opts.max_length > info->max_position)
		opts.max_length = info->max_position;

	switch (req->task)
	{
		case FINBERT_TASK_CLASSIFY:
			RunClassify(req, model, session, &opts, res, tokens, batches, text_tokens);
			break;
		case FINBERT_TASK_ENTITIES:
			RunEntities(req, model, session, &opts, res, tokens, batches, text_tokens);
			break;
		case FINBERT_TASK_EMBED:
			RunEmbed(req, model, session, &opts, res, tokens, batches, text_tokens);
			break;
		case FINBERT_TASK_TOKENIZE:
			RunTokenize(req, model, res, tokens, text_tokens);
			break;
	}
}

static void
ExecuteInline(const FinbertRequest *req, FinbertResult *res,
			  int64 *tokens, int64 *batches)
{
	FinbertModel *m = FinbertGetModel(req->model, req->guc);

	/* a no-op unless finbert.threads changed since the last request */
	(void) fb_session_set_threads(m->session, finbert_threads);
	m->uses++;
	FinbertRun(req, m->model, m->session, res, tokens, batches, NULL);
	FinbertStatsTokens((uint64) *tokens);
}

/* Runs req inline or in the worker, the model already resolved to ref. */
static void
ExecuteResolved(const FinbertRequest *req, const FinbertModelRef *ref,
				bool use_worker, FinbertResult *res,
				int64 *tokens, int64 *batches)
{
	if (use_worker)
		FinbertWorkerExecute(req, ref, res, tokens);
	else
		ExecuteInline(req, res, tokens, batches);
}

/*
 * Embeddings through the cache: hits are copied from the table, misses are
 * computed as one request and queued for the cache writer.
 */
static void
ExecuteEmbedCached(const FinbertRequest *req, const FinbertModelRef *ref,
				   bool use_worker, FinbertResult *res,
				   int64 *tokens, int64 *batches)
{
	bool	   *hit = palloc0(sizeof(bool) * Max(req->ntexts, 1));
	uint8	   *hashes = NULL;
	FinbertRequest sub = *req;
	FinbertResult subres;
	fb_text    *texts;
	int		   *rows;
	int			nmiss = 0;

	if (!FinbertCacheLookup(req, ref, res, hit, &hashes))
	{
		ExecuteResolved(req, ref, use_worker, res, tokens, batches);
		return;
	}
	texts = palloc(sizeof(fb_text) * Max(req->ntexts, 1));
	rows = palloc(sizeof(int) * Max(req->ntexts, 1));
	for (int i = 0; i < req->ntexts; i++)
	{
		if (hit[i])
			continue;
		texts[nmiss] = req->texts[i];
		rows[nmiss] = i;
		nmiss++;
	}
	FinbertStatsCache((uint64) (req->ntexts - nmiss), (uint64) nmiss);
	if (nmiss == 0)
		return;

	sub.texts = texts;
	sub.ntexts = nmiss;
	ExecuteResolved(&sub, ref, use_worker, &subres, tokens, batches);
	if (subres.dim != res->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("finbert model \"%s\" produced embeddings of %d dimensions; the catalog records %d",
						req->model, subres.dim, res->dim),
				 errhint("Register the model again with finbert_load_model.")));
	for (int k = 0; k < nmiss; k++)
	{
		const float4 *v = subres.embeddings + (size_t) k * subres.dim;
		bool		finite = true;

		memcpy(res->embeddings + (size_t) rows[k] * res->dim, v,
			   sizeof(float4) * res->dim);
		/* a non-finite result is an error later and is never cached */
		for (int d = 0; d < subres.dim && finite; d++)
			finite = isfinite(v[d]);
		if (finite)
			FinbertCacheStore(req, ref, hashes + (size_t) rows[k] * FINBERT_TEXT_HASH_LEN,
							  v, subres.dim);
	}
}

void
FinbertExecute(const FinbertRequest *in, FinbertResult *res)
{
	FinbertRequest req = *in;
	instr_time	start,
				duration;
	int64		tokens = 0;
	int64		batches = 0;

	memset(res, 0, sizeof(*res));
	res->ntexts = req.ntexts;
	req.max_length = finbert_max_length;
	req.batch_size = finbert_batch_size;

	INSTR_TIME_SET_CURRENT(start);
	FinbertEnterExecute();
	PG_TRY();
	{
		bool		use_worker = FinbertUseWorker();
		FinbertModel *m = FinbertResolveModel(req.model, req.guc);

		if (req.task == FINBERT_TASK_EMBED && finbert_cache)
			ExecuteEmbedCached(&req, &m->ref, use_worker, res, &tokens, &batches);
		else
			ExecuteResolved(&req, &m->ref, use_worker, res, &tokens, &batches);
	}
	PG_CATCH();
	{
		FinbertLeaveExecute();
		FinbertStatsError();
		PG_RE_THROW();
	}
	PG_END_TRY();
	FinbertLeaveExecute();
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	FinbertStatsCount((uint64) req.ntexts, (uint64) tokens, (uint64) batches,
					  (uint64) INSTR_TIME_GET_MICROSEC(duration));
}
