/*
 * entities.c — named entities from SQL.
 *
 *   finbert_entities(text [, model])
 *       → setof (entity text, label text, start_pos int, end_pos int, score real)
 *   finbert_entities(text[] [, model])
 *       → setof (ord int, entity, label, start_pos, end_pos, score)
 *   finbert_companies(text [, model]) / finbert_persons(text [, model]) → text[]
 *   finbert_companies(text[] [, model]) / finbert_persons(text[] [, model])
 *       → setof (ord int, names text[])
 *
 * Positions are 1-based character positions as in substr():
 * substr(t, start_pos, end_pos - start_pos + 1) = entity.  Labels are the
 * model's BIO labels without the B-/I- prefix.  The model comes from
 * finbert.ner_model unless named; ord is the 1-based position in the array.
 *
 *   finbert_companies_pinned(text, model, pin) / finbert_persons_pinned(…) → text[]
 *
 * are the IMMUTABLE forms (model and pin explicit; see classify.c).
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "finbert_pg.h"

PG_FUNCTION_INFO_V1(finbert_entities);
PG_FUNCTION_INFO_V1(finbert_entities_array);
PG_FUNCTION_INFO_V1(finbert_companies);
PG_FUNCTION_INFO_V1(finbert_persons);
PG_FUNCTION_INFO_V1(finbert_companies_array);
PG_FUNCTION_INFO_V1(finbert_persons_array);
PG_FUNCTION_INFO_V1(finbert_companies_pinned);
PG_FUNCTION_INFO_V1(finbert_persons_pinned);

/* "B-company" → "company"; labels without a BIO prefix unchanged. */
static const char *
EntityType(const char *label)
{
	if (label[0] != '\0' && label[1] == '-' &&
		(label[0] == 'B' || label[0] == 'I' || label[0] == 'E' ||
		 label[0] == 'S'))
		return label + 2;
	return label;
}

/* pin_argno: the argument holding the pin (pinned forms), else 0 */
static void
RunEntities(FunctionCallInfo fcinfo, const fb_text *texts, int ntexts,
			int pin_argno, FinbertResult *res)
{
	FinbertRequest req = {0};

	req.task = FINBERT_TASK_ENTITIES;
	req.model = FinbertModelArg(fcinfo, 1, finbert_ner_model,
								"finbert.ner_model", &req.guc);
	if (pin_argno > 0)
		req.pin = FinbertPinArg(fcinfo, pin_argno);
	req.ntexts = ntexts;
	req.texts = texts;
	if (ntexts > 0)
		FinbertExecute(&req, res);
}

/* Rows of one text into the tuplestore; ord < 0 leaves out the ord column. */
static void
PutEntities(ReturnSetInfo *rsinfo, const FinbertResult *res, int row, int ord)
{
	for (int k = 0; k < res->nentities[row]; k++)
	{
		const FinbertEntity *e = &res->entities[row][k];
		Datum		values[6];
		bool		nulls[6] = {0};
		int			c = 0;

		if (ord >= 0)
			values[c++] = Int32GetDatum(ord);
		values[c++] = CStringGetTextDatum(e->text);
		values[c++] = CStringGetTextDatum(EntityType(e->label));
		values[c++] = Int32GetDatum(e->start + 1);
		values[c++] = Int32GetDatum(e->end);
		values[c++] = Float4GetDatum(e->score);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

Datum
finbert_entities(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	FinbertResult res;
	fb_text		t;

	FinbertTextArg(PG_GETARG_TEXT_PP(0), &t);
	RunEntities(fcinfo, &t, 1, 0, &res);
	InitMaterializedSRF(fcinfo, 0);
	PutEntities(rsinfo, &res, 0, -1);
	PG_RETURN_VOID();
}

Datum
finbert_entities_array(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	FinbertResult res;
	fb_text    *texts;
	bool	   *nulls;
	int			n,
				nvalid,
				j = 0;

	texts = FinbertTextArray(PG_GETARG_ARRAYTYPE_P(0), &n, &nulls, &nvalid);
	RunEntities(fcinfo, texts, nvalid, 0, &res);
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		PutEntities(rsinfo, &res, j++, i + 1);
	}
	PG_RETURN_VOID();
}

/*
 * Distinct entity texts of one type (type_arg, a C string) in one result
 * row, in order of first appearance (a FinbertRowArrayFn).
 */
static ArrayType *
NamesOfType(const FinbertResult *res, int row, const void *type_arg)
{
	const char *type = type_arg;
	Datum	   *values = palloc(sizeof(Datum) * Max(res->nentities[row], 1));
	int			n = 0;

	for (int k = 0; k < res->nentities[row]; k++)
	{
		const FinbertEntity *e = &res->entities[row][k];
		bool		seen = false;

		if (pg_strcasecmp(EntityType(e->label), type) != 0)
			continue;
		for (int p = 0; p < k && !seen; p++)
			seen = pg_strcasecmp(EntityType(res->entities[row][p].label), type) == 0 &&
				strcmp(res->entities[row][p].text, e->text) == 0;
		if (!seen)
			values[n++] = CStringGetTextDatum(e->text);
	}
	if (n == 0)
		return construct_empty_array(TEXTOID);
	return construct_array(values, n, TEXTOID, -1, false, TYPALIGN_INT);
}

static Datum
NamesScalar(FunctionCallInfo fcinfo, int pin_argno, const char *type)
{
	FinbertResult res;
	fb_text		t;

	FinbertTextArg(PG_GETARG_TEXT_PP(0), &t);
	RunEntities(fcinfo, &t, 1, pin_argno, &res);
	PG_RETURN_ARRAYTYPE_P(NamesOfType(&res, 0, type));
}

static Datum
NamesArray(FunctionCallInfo fcinfo, const char *type)
{
	FinbertResult res;
	fb_text    *texts;
	bool	   *nulls;
	int			n,
				nvalid;

	texts = FinbertTextArray(PG_GETARG_ARRAYTYPE_P(0), &n, &nulls, &nvalid);
	RunEntities(fcinfo, texts, nvalid, 0, &res);
	FinbertReturnOrdArrays(fcinfo, &res, nulls, n, NamesOfType, type);
	PG_RETURN_VOID();
}

Datum
finbert_companies(PG_FUNCTION_ARGS)
{
	return NamesScalar(fcinfo, 0, "company");
}

Datum
finbert_persons(PG_FUNCTION_ARGS)
{
	return NamesScalar(fcinfo, 0, "person");
}

Datum
finbert_companies_array(PG_FUNCTION_ARGS)
{
	return NamesArray(fcinfo, "company");
}

Datum
finbert_persons_array(PG_FUNCTION_ARGS)
{
	return NamesArray(fcinfo, "person");
}

Datum
finbert_companies_pinned(PG_FUNCTION_ARGS)
{
	return NamesScalar(fcinfo, 2, "company");
}

Datum
finbert_persons_pinned(PG_FUNCTION_ARGS)
{
	return NamesScalar(fcinfo, 2, "person");
}
