/*
 * fuzz_safetensors.c — libFuzzer harness for the safetensors reader.
 *
 * Parses the input as a whole file image; when it is accepted, checks the
 * invariants every caller relies on (tensors inside the buffer, sizes
 * consistent, names sorted and unique, find() exact) and converts every
 * floating-point tensor, so the sanitizers see every byte the reader
 * exposes.  A broken invariant traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/fb_safetensors.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_tensor(const fb_safetensors *st, const fb_st_tensor *t,
			 const uint8_t *data, size_t size)
{
	uint64_t	n = 1;
	fb_error	err;
	float	   *dst;

	if (t->name == NULL || t->name[0] == '\0' ||
		strlen(t->name) > FB_ST_MAX_NAME_BYTES)
		__builtin_trap();
	if (fb_safetensors_find(st, t->name) != t)
		__builtin_trap();
	if (t->ndim < 0 || t->ndim > FB_ST_MAX_DIMS)
		__builtin_trap();
	for (int d = 0; d < t->ndim; d++)
	{
		if (t->shape[d] < 0)
			__builtin_trap();
		n *= (uint64_t) t->shape[d];
	}
	if (n != t->n_elems || t->nbytes != t->n_elems * fb_dtype_size(t->dtype))
		__builtin_trap();
	if (t->data < data || t->nbytes > size ||
		(size_t) (t->data - data) > size - t->nbytes)
		__builtin_trap();

	/* every element is at most one byte of the input: allocation bounded */
	dst = malloc(t->n_elems ? t->n_elems * sizeof(float) : 1);
	if (dst == NULL)
		return;
	switch (t->dtype)
	{
		case FB_DT_F32:
		case FB_DT_F16:
		case FB_DT_BF16:
		case FB_DT_F64:
			if (fb_tensor_to_f32(t, dst, &err) != FB_OK)
				__builtin_trap();
			break;
		default:
			if (fb_tensor_to_f32(t, dst, &err) != FB_ERR_UNSUPPORTED)
				__builtin_trap();
			break;
	}
	free(dst);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fb_safetensors *st = NULL;
	fb_error	err;
	fb_status	s;
	size_t		covered = 0;

	memset(&err, 0, sizeof(err));
	s = fb_safetensors_parse(data, size, "fuzz.safetensors", &st, &err);
	if (s != FB_OK)
	{
		/* a failure names the file, returns nothing and is a file error */
		if (st != NULL || err.status != s ||
			strncmp(err.msg, "\"fuzz.safetensors\"", 18) != 0 ||
			(s != FB_ERR_CORRUPT && s != FB_ERR_UNSUPPORTED && s != FB_ERR_NOMEM))
			__builtin_trap();
		return 0;
	}
	for (size_t i = 0; i < st->n_tensors; i++)
	{
		const fb_st_tensor *t = &st->tensors[i];

		if (i > 0 && strcmp(st->tensors[i - 1].name, t->name) >= 0)
			__builtin_trap();
		check_tensor(st, t, data, size);
		covered += t->nbytes;
	}

	/* the tensors tile the data section: prefix + header + sizes = file */
	{
		uint64_t	hdr = 0;

		for (int i = 7; i >= 0; i--)
			hdr = (hdr << 8) | data[i];
		if (hdr > size || 8 + hdr + covered != size)
			__builtin_trap();
	}
	fb_safetensors_close(st);
	return 0;
}
