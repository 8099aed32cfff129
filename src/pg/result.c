/*
 * result.c — results of the array forms of the SQL functions.
 *
 * A function taking text[] sends only the non-null elements to the engine,
 * as one request, so result row j belongs to the j-th non-null element.
 * The set-returning forms whose value is an array (tokens, names,
 * embeddings) all return one (ord, value) row per element, value NULL for
 * a NULL element; this is the one place that maps rows back to elements.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/tuplestore.h"

#include "finbert_pg.h"

/*
 * Materialises setof (ord int, value anyarray) for the n elements of an
 * array argument with null flags nulls: ord is 1-based, value is
 * row_array(res, j, arg) for the j-th non-null element.
 */
void
FinbertReturnOrdArrays(FunctionCallInfo fcinfo, const FinbertResult *res,
					   const bool *nulls, int n, FinbertRowArrayFn row_array,
					   const void *arg)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			j = 0;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		vnulls[2] = {false, false};

		values[0] = Int32GetDatum(i + 1);
		if (nulls[i])
		{
			values[1] = (Datum) 0;
			vnulls[1] = true;
		}
		else
			values[1] = PointerGetDatum(row_array(res, j++, arg));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, vnulls);
	}
}
