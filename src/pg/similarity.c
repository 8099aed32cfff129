/*
 * similarity.c — finbert_cosine(real[], real[]): cosine similarity of two
 * embeddings, for similarity search where pgvector is not installed
 * (with pgvector, cast to vector and use <=> and an HNSW index instead).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"

#include "finbert_pg.h"

PG_FUNCTION_INFO_V1(finbert_cosine);

/* The elements of a one-dimensional real[] without NULLs. */
static const float4 *
EmbeddingValues(ArrayType *a, int *n)
{
	if (ARR_ELEMTYPE(a) != FLOAT4OID)
		elog(ERROR, "finbert_cosine: expected real[]");
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("embedding must be a one-dimensional array")));
	if (ARR_HASNULL(a) && array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("embedding must not contain NULL elements")));
	*n = ARR_NDIM(a) == 0 ? 0 : ARR_DIMS(a)[0];
	/* ARR_DATA_PTR, spelled out: the macro mixes signedness (-Wsign-compare) */
	return (const float4 *) ((const char *) a + (ARR_HASNULL(a) ? (size_t) a->dataoffset
												 : ARR_OVERHEAD_NONULLS(ARR_NDIM(a))));
}

/* finbert_cosine(a real[], b real[]) → double precision, NULL for a zero vector */
Datum
finbert_cosine(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *b = PG_GETARG_ARRAYTYPE_P(1);
	int			na,
				nb;
	const float4 *x = EmbeddingValues(a, &na);
	const float4 *y = EmbeddingValues(b, &nb);
	double		dot = 0,
				xx = 0,
				yy = 0;

	if (na != nb)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("embeddings of different dimensions %d and %d", na, nb)));
	for (int i = 0; i < na; i++)
	{
		dot += (double) x[i] * y[i];
		xx += (double) x[i] * x[i];
		yy += (double) y[i] * y[i];
	}
	if (xx == 0 || yy == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(dot / sqrt(xx * yy));
}
