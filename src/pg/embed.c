/*
 * embed.c — sentence embeddings from SQL.
 *
 *   finbert_embed(text [, model [, pooling]]) → real[]
 *   finbert_embed(text[] [, model [, pooling]]) → setof (ord int, embedding real[])
 *
 * pooling is 'mean' (default: mean of the token vectors, padding never
 * included), 'cls' (the [CLS] vector) or 'pooler' (BERT's pooler output,
 * when the model has one).  Embeddings are L2-normalised, so the Euclidean
 * distance of pgvector's <-> orders them like cosine similarity.  The model
 * comes from finbert.embed_model unless named; real[] casts to vector.
 *
 *   finbert_embed_pinned(text, model, pooling, pin) → real[]
 *
 * is the IMMUTABLE form (model, pooling and pin explicit; see classify.c).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "finbert_pg.h"

PG_FUNCTION_INFO_V1(finbert_embed);
PG_FUNCTION_INFO_V1(finbert_embed_array);
PG_FUNCTION_INFO_V1(finbert_embed_pinned);

static fb_pooling
ParsePooling(const char *s)
{
	if (pg_strcasecmp(s, "mean") == 0)
		return FB_POOL_MEAN;
	if (pg_strcasecmp(s, "cls") == 0)
		return FB_POOL_CLS;
	if (pg_strcasecmp(s, "pooler") == 0)
		return FB_POOL_POOLER;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown pooling \"%s\"", s),
			 errhint("Pooling is one of 'mean', 'cls' or 'pooler'.")));
	pg_unreachable();
}

static void
BuildRequest(FunctionCallInfo fcinfo, FinbertRequest *req)
{
	memset(req, 0, sizeof(*req));
	req->task = FINBERT_TASK_EMBED;
	req->model = FinbertModelArg(fcinfo, 1, finbert_embed_model,
								 "finbert.embed_model", &req->guc);
	req->pooling = FB_POOL_MEAN;
	if (PG_NARGS() > 2)
		req->pooling = ParsePooling(text_to_cstring(PG_GETARG_TEXT_PP(2)));
}

/* The embedding of result row row (a FinbertRowArrayFn). */
static ArrayType *
EmbeddingArray(const FinbertResult *res, int row, const void *arg)
{
	Datum	   *values = palloc(sizeof(Datum) * res->dim);
	const float4 *v = res->embeddings + (size_t) row * res->dim;

	for (int d = 0; d < res->dim; d++)
	{
		if (!isfinite(v[d]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("finbert produced a non-finite embedding")));
		values[d] = Float4GetDatum(v[d]);
	}
	return construct_array(values, res->dim, FLOAT4OID, sizeof(float4),
						   true, TYPALIGN_INT);
}

Datum
finbert_embed(PG_FUNCTION_ARGS)
{
	FinbertRequest req;
	FinbertResult res;
	fb_text		t;

	FinbertTextArg(PG_GETARG_TEXT_PP(0), &t);
	BuildRequest(fcinfo, &req);
	req.ntexts = 1;
	req.texts = &t;
	FinbertExecute(&req, &res);
	PG_RETURN_ARRAYTYPE_P(EmbeddingArray(&res, 0, NULL));
}

Datum
finbert_embed_array(PG_FUNCTION_ARGS)
{
	FinbertRequest req;
	FinbertResult res;
	fb_text    *texts;
	bool	   *nulls;
	int			n,
				nvalid;

	texts = FinbertTextArray(PG_GETARG_ARRAYTYPE_P(0), &n, &nulls, &nvalid);
	BuildRequest(fcinfo, &req);
	req.ntexts = nvalid;
	req.texts = texts;
	if (nvalid > 0)
		FinbertExecute(&req, &res);
	FinbertReturnOrdArrays(fcinfo, &res, nulls, n, EmbeddingArray, NULL);
	PG_RETURN_VOID();
}

Datum
finbert_embed_pinned(PG_FUNCTION_ARGS)
{
	FinbertRequest req;
	FinbertResult res;
	fb_text		t;

	FinbertTextArg(PG_GETARG_TEXT_PP(0), &t);
	BuildRequest(fcinfo, &req);
	req.pin = FinbertPinArg(fcinfo, 3);
	req.ntexts = 1;
	req.texts = &t;
	FinbertExecute(&req, &res);
	PG_RETURN_ARRAYTYPE_P(EmbeddingArray(&res, 0, NULL));
}
