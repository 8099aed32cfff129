/*
 * exec.c — the single call path from SQL to the engine.
 *
 * Every SQL-callable function builds a FinbertRequest and calls
 * FinbertExecute, which
 *  1. resolves the model against the catalog in the calling backend (so
 *     catalog errors are the same in every mode),
 *  2. for embeddings, takes what it can from the embedding cache (cache.c),
 *  3. runs the rest inline (FinbertRun, run.c, on a model opened in this
 *     backend) or in the background worker (FinbertWorkerExecute,
 *     queue.c), which runs the very same FinbertRun on its own copy of the
 *     model and sends back results or the error (SQLSTATE, message,
 *     detail, hint),
 *  4. queues computed embeddings for the cache writer.
 * A one-text request whose result a Finbert Batch node computed ahead with
 * the same model and settings (memo.c) takes that result instead.
 * It also holds the argument helpers of the SQL functions.
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

/*
 * The pin of a pinned form: a SHA-256 hex digest, optionally followed by
 * ":<precision>" (FinbertModelPin).  Checked here so that a malformed pin
 * is an error on its own, not a confusing mismatch.
 */
const char *
FinbertPinArg(FunctionCallInfo fcinfo, int argno)
{
	char	   *pin = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	size_t		len = strlen(pin);
	bool		ok = len >= FINBERT_SHA256_HEX;

	for (int i = 0; ok && i < FINBERT_SHA256_HEX; i++)
		ok = (pin[i] >= '0' && pin[i] <= '9') || (pin[i] >= 'a' && pin[i] <= 'f');
	if (ok && len > FINBERT_SHA256_HEX)
	{
		fb_precision p;

		ok = pin[FINBERT_SHA256_HEX] == ':' &&
			fb_precision_from_name(pin + FINBERT_SHA256_HEX + 1, &p) == 0 &&
			p != FB_PRECISION_FP32;
	}
	if (!ok)
	{
		/* a pin is short: quote at most the first 80 bytes of anything else */
		pin[pg_mbcliplen(pin, (int) Min(len, (size_t) PG_INT32_MAX), 80)] = '\0';
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid finbert model pin \"%s\"", pin),
				 errdetail("A pin is the model's weight checksum (64 lowercase hexadecimal digits), followed by \":int8\" for a model registered with precision int8."),
				 errhint("finbert_model_pin(model) returns the pin of a registered model.")));
	}
	return pin;
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

/*
 * Tokens per window of a request on the model ref: finbert.max_length,
 * capped by the model's positions (the catalog's max_length), as the
 * setting documents.  Decided here once per request: the engine (which
 * rejects a length outside the model's range), the worker's grouping and
 * token estimate, and the embedding cache key all take req->max_length as
 * it is.
 */
static int
WindowLength(const FinbertModelRef *ref)
{
	if (ref->max_position > 0 && finbert_max_length > ref->max_position)
		return ref->max_position;
	return finbert_max_length;
}

/*
 * A pinned call runs only on the model it names: a server whose model
 * (weights or precision) differs fails loudly instead of answering
 * differently from the other servers of a sharded query.
 */
static void
CheckPin(const FinbertRequest *req, const FinbertModelRef *ref)
{
	char	   *have = FinbertModelPin(ref);

	if (strcmp(have, req->pin) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("finbert model \"%s\" on this server is not the pinned model", req->model),
				 errdetail("The call pins %s; model \"%s\" here has %s.",
						   req->pin, req->model, have),
				 errhint("Register the same model files with the same precision on every server (compare sha256 and precision in finbert_models), or pin the model this server has.")));
	pfree(have);
}

/*
 * Tokens per window of a pinned call: the model's full length, never the
 * session's finbert.max_length, which may differ between servers.  Equal
 * to WindowLength whenever finbert.max_length is at least the model's
 * length (the default 512 covers BERT-base).
 */
static int
PinnedWindowLength(const FinbertModelRef *ref)
{
	return ref->max_position > 0 ? ref->max_position : finbert_max_length;
}

static void
ExecuteInline(const FinbertRequest *req, FinbertResult *res,
			  int64 *tokens, int64 *batches)
{
	FinbertModel *m = FinbertGetModel(req->model, req->guc);

	/* a no-op unless finbert.threads changed since the last request */
	(void) fb_session_set_threads(m->session, finbert_threads);
	m->uses++;
	FinbertRun(FinbertBackendRunContext(), req, m->model, m->session, res,
			   tokens, batches);
	FinbertStatsTokens((uint64) *tokens);
}

/*
 * Runs req inline or in the worker, the model already resolved to ref.
 * tokens and batches count what runs inline; the worker counts its own.
 */
static void
ExecuteResolved(const FinbertRequest *req, const FinbertModelRef *ref,
				bool use_worker, FinbertResult *res,
				int64 *tokens, int64 *batches)
{
	if (use_worker)
		FinbertWorkerExecute(req, ref, res);
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

	/*
	 * Computed ahead by a Finbert Batch node (memo.c, batch.c); a pinned
	 * call only takes a result computed for the same pin, whose batch
	 * passed the pin check, with the model's full window.
	 */
	if (FinbertMemoLookup(&req, finbert_max_length, res))
		return;

	memset(res, 0, sizeof(*res));
	res->ntexts = req.ntexts;
	req.batch_size = finbert_batch_size;

	INSTR_TIME_SET_CURRENT(start);
	FinbertEnterExecute();
	PG_TRY();
	{
		bool		use_worker = FinbertUseWorker();
		FinbertModel *m = FinbertResolveModel(req.model, req.guc);

		if (req.pin != NULL)
		{
			CheckPin(&req, &m->ref);
			req.max_length = PinnedWindowLength(&m->ref);
		}
		else
			req.max_length = WindowLength(&m->ref);
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

