/*
 * classify.c — sequence classification from SQL.
 *
 *   finbert_sentiment(text [, model]) → text      (finbert.sentiment_model)
 *   finbert_industry(text [, model])  → text      (finbert.industry_model)
 *   finbert_type(text [, model])      → text      (finbert.type_model)
 *   finbert_classify(text, model)     → text
 *   finbert_scores(text, model)       → jsonb {label: probability}
 *
 * and the array forms taking text[] (one request, results in input order,
 * NULL elements stay NULL): text[] for the labels, jsonb[] for the scores.
 *
 * Pinned forms (IMMUTABLE, shippable by postgres_fdw, usable in generated
 * columns and index expressions): the model and its pin are arguments,
 * never a setting:
 *
 *   finbert_{sentiment,industry,type,classify}_pinned(text, model, pin) → text
 *   finbert_scores_pinned(text, model, pin) → jsonb
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "finbert_pg.h"

PG_FUNCTION_INFO_V1(finbert_sentiment);
PG_FUNCTION_INFO_V1(finbert_industry);
PG_FUNCTION_INFO_V1(finbert_type);
PG_FUNCTION_INFO_V1(finbert_classify);
PG_FUNCTION_INFO_V1(finbert_scores);
PG_FUNCTION_INFO_V1(finbert_sentiment_array);
PG_FUNCTION_INFO_V1(finbert_industry_array);
PG_FUNCTION_INFO_V1(finbert_type_array);
PG_FUNCTION_INFO_V1(finbert_classify_array);
PG_FUNCTION_INFO_V1(finbert_scores_array);
PG_FUNCTION_INFO_V1(finbert_classify_pinned);
PG_FUNCTION_INFO_V1(finbert_scores_pinned);

typedef enum ClassifyOutput
{
	OUTPUT_LABEL,
	OUTPUT_SCORES
} ClassifyOutput;

/* {label: probability, ...} of one row of probabilities. */
static Datum
ScoresJsonb(const FinbertResult *res, int row)
{
	StringInfoData buf;
	const float4 *p = res->probs + (size_t) row * res->nlabels;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int l = 0; l < res->nlabels; l++)
	{
		char		num[32];

		if (!isfinite(p[l]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("finbert produced a non-finite score")));
		float_to_shortest_decimal_buf(p[l], num);
		if (l > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, res->labels[l]);
		appendStringInfo(&buf, ": %s", num);
	}
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

static Datum
TopLabel(const FinbertResult *res, int row)
{
	int			top;

	if (res->nlabels <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("finbert model has no labels")));
	top = fb_argmax(res->probs + (size_t) row * res->nlabels, res->nlabels);
	if (top < 0 || top >= res->nlabels)
		elog(ERROR, "finbert: label index %d out of range", top);
	return CStringGetTextDatum(res->labels[top]);
}

/* pin_argno: the argument holding the pin (pinned forms), else 0 */
static Datum
ClassifyScalar(FunctionCallInfo fcinfo, const char *guc_value,
			   const char *guc_name, int pin_argno, ClassifyOutput output)
{
	FinbertRequest req = {0};
	FinbertResult res;
	fb_text		t;

	FinbertTextArg(PG_GETARG_TEXT_PP(0), &t);
	req.task = FINBERT_TASK_CLASSIFY;
	req.model = FinbertModelArg(fcinfo, 1, guc_value, guc_name, &req.guc);
	if (pin_argno > 0)
		req.pin = FinbertPinArg(fcinfo, pin_argno);
	req.ntexts = 1;
	req.texts = &t;
	FinbertExecute(&req, &res);
	if (output == OUTPUT_SCORES)
		return ScoresJsonb(&res, 0);
	return TopLabel(&res, 0);
}

static Datum
ClassifyArray(FunctionCallInfo fcinfo, const char *guc_value,
			  const char *guc_name, ClassifyOutput output)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	Oid			elemtype = output == OUTPUT_SCORES ? JSONBOID : TEXTOID;
	FinbertRequest req = {0};
	FinbertResult res;
	fb_text    *texts;
	bool	   *nulls;
	Datum	   *values;
	int			n,
				nvalid,
				j = 0;
	int			dims[1],
				lbs[1] = {1};

	texts = FinbertTextArray(arr, &n, &nulls, &nvalid);
	req.task = FINBERT_TASK_CLASSIFY;
	req.model = FinbertModelArg(fcinfo, 1, guc_value, guc_name, &req.guc);
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(elemtype));

	values = palloc0(sizeof(Datum) * n);
	if (nvalid > 0)
	{
		req.ntexts = nvalid;
		req.texts = texts;
		FinbertExecute(&req, &res);
		for (int i = 0; i < n; i++)
		{
			if (nulls[i])
				continue;
			values[i] = output == OUTPUT_SCORES ? ScoresJsonb(&res, j) : TopLabel(&res, j);
			j++;
		}
	}
	dims[0] = n;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(values, nulls, 1, dims, lbs,
											 elemtype, -1, false, TYPALIGN_INT));
}

Datum
finbert_sentiment(PG_FUNCTION_ARGS)
{
	return ClassifyScalar(fcinfo, finbert_sentiment_model,
						  "finbert.sentiment_model", 0, OUTPUT_LABEL);
}

Datum
finbert_industry(PG_FUNCTION_ARGS)
{
	return ClassifyScalar(fcinfo, finbert_industry_model,
						  "finbert.industry_model", 0, OUTPUT_LABEL);
}

Datum
finbert_type(PG_FUNCTION_ARGS)
{
	return ClassifyScalar(fcinfo, finbert_type_model,
						  "finbert.type_model", 0, OUTPUT_LABEL);
}

Datum
finbert_classify(PG_FUNCTION_ARGS)
{
	return ClassifyScalar(fcinfo, NULL, NULL, 0, OUTPUT_LABEL);
}

Datum
finbert_scores(PG_FUNCTION_ARGS)
{
	return ClassifyScalar(fcinfo, NULL, NULL, 0, OUTPUT_SCORES);
}

Datum
finbert_sentiment_array(PG_FUNCTION_ARGS)
{
	return ClassifyArray(fcinfo, finbert_sentiment_model,
						 "finbert.sentiment_model", OUTPUT_LABEL);
}

Datum
finbert_industry_array(PG_FUNCTION_ARGS)
{
	return ClassifyArray(fcinfo, finbert_industry_model,
						 "finbert.industry_model", OUTPUT_LABEL);
}

Datum
finbert_type_array(PG_FUNCTION_ARGS)
{
	return ClassifyArray(fcinfo, finbert_type_model,
						 "finbert.type_model", OUTPUT_LABEL);
}

Datum
finbert_classify_array(PG_FUNCTION_ARGS)
{
	return ClassifyArray(fcinfo, NULL, NULL, OUTPUT_LABEL);
}

Datum
finbert_scores_array(PG_FUNCTION_ARGS)
{
	return ClassifyArray(fcinfo, NULL, NULL, OUTPUT_SCORES);
}

/*
 * The pinned forms of finbert_sentiment/industry/type/classify(text, model)
 * (one C function: with the model named, they are the same computation).
 */
Datum
finbert_classify_pinned(PG_FUNCTION_ARGS)
{
	return ClassifyScalar(fcinfo, NULL, NULL, 2, OUTPUT_LABEL);
}

Datum
finbert_scores_pinned(PG_FUNCTION_ARGS)
{
	return ClassifyScalar(fcinfo, NULL, NULL, 2, OUTPUT_SCORES);
}
