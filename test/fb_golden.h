/*
 * fb_golden.h — comparing engine outputs with golden rows (json-c arrays
 * written by tools/make_fixtures.py and tools/make_format_fixtures.py).
 */
#ifndef FB_GOLDEN_H
#define FB_GOLDEN_H

#include <math.h>

#include <json.h>

/* Largest |a[i] - row[i]|; INFINITY when row is missing or of another length. */
static inline double
fbt_max_diff_row(const float *a, json_object *row, int n)
{
	double		d = 0.0;

	if (row == NULL || (int) json_object_array_length(row) != n)
		return INFINITY;
	for (int i = 0; i < n; i++)
	{
		double		e = fabs(a[i] - json_object_get_double(json_object_array_get_idx(row, i)));

		d = e > d ? e : d;
	}
	return d;
}

#endif
