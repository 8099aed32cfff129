/*
 * tokenize.c — the model's tokenizer from SQL.
 *
 *   finbert_tokenize(text [, model]) → text[]
 *   finbert_tokenize(text[] [, model]) → setof (ord int, tokens text[])
 *
 * The WordPiece tokens of the text exactly as the model sees them (Chinese
 * split per character, "##" continuation pieces, [UNK]), without [CLS] and
 * [SEP] and without truncation.  The model comes from finbert.embed_model
 * unless named.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "finbert_pg.h"

PG_FUNCTION_INFO_V1(finbert_tokenize);
PG_FUNCTION_INFO_V1(finbert_tokenize_array);

static void
RunTokenize(FunctionCallInfo fcinfo, const fb_text *texts, int ntexts,
			FinbertResult *res)
{
	FinbertRequest req = {0};

	req.task = FINBERT_TASK_TOKENIZE;
	req.model = FinbertModelArg(fcinfo, 1, finbert_embed_model,
								"finbert.embed_model", &req.guc);
	req.ntexts = ntexts;
	req.texts = texts;
	if (ntexts > 0)
		FinbertExecute(&req, res);
}

/* The tokens of result row row (a FinbertRowArrayFn). */
static ArrayType *
TokenArray(const FinbertResult *res, int row, const void *arg)
{
	int			n = res->ntokens[row];
	Datum	   *values;

	if (n == 0)
		return construct_empty_array(TEXTOID);
	values = palloc(sizeof(Datum) * n);
	for (int k = 0; k < n; k++)
		values[k] = CStringGetTextDatum(res->tokens[row][k]);
	return construct_array(values, n, TEXTOID, -1, false, TYPALIGN_INT);
}

Datum
finbert_tokenize(PG_FUNCTION_ARGS)
{
	FinbertResult res;
	fb_text		t;

	FinbertTextArg(PG_GETARG_TEXT_PP(0), &t);
	RunTokenize(fcinfo, &t, 1, &res);
	PG_RETURN_ARRAYTYPE_P(TokenArray(&res, 0, NULL));
}

Datum
finbert_tokenize_array(PG_FUNCTION_ARGS)
{
	FinbertResult res;
	fb_text    *texts;
	bool	   *nulls;
	int			n,
				nvalid;

	texts = FinbertTextArray(PG_GETARG_ARRAYTYPE_P(0), &n, &nulls, &nvalid);
	RunTokenize(fcinfo, texts, nvalid, &res);
	FinbertReturnOrdArrays(fcinfo, &res, nulls, n, TokenArray, NULL);
	PG_RETURN_VOID();
}
