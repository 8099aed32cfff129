/*
 * fuzz_torchbin.c — libFuzzer harness for the pytorch_model.bin reader:
 * the zip container, the restricted unpickler, the legacy stream and the
 * tensor views built from them.
 *
 * The input is a whole .bin image.  Every accepted tensor is converted to
 * fp32 (views, strides and CRC-32 checks exercised; a view is inside its
 * storage, so no allocation exceeds the input's size); every refusal must
 * be a file error whose message names the file.  A broken rule traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/fb_source.h"
#include "formats/fb_torchbin.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fb_source  *src = fb_source_new("fuzz", "pytorch");
	fb_error	err;
	fb_status	st;
	int			fi;

	if (src == NULL)
		return 0;
	memset(&err, 0, sizeof(err));
	fi = fb_source_add_memory(src, "pytorch_model.bin", data, size, &err);
	st = fb_torch_add_file(src, fi, &err);
	if (st == FB_OK)
		st = fb_source_finish(src, &err);
	for (size_t i = 0; st == FB_OK && i < src->n_tensors; i++)
	{
		const fb_tensor *t = &src->tensors[i];
		float	   *dst;
		fb_status	rs;

		if (t->n_elems > size)
			__builtin_trap();	/* every element lies in the input */
		dst = malloc(t->n_elems * sizeof(float) + 4);
		if (dst == NULL)
			break;
		rs = fb_source_read_f32(src, t, dst, &err);
		free(dst);
		if (rs != FB_OK && rs != FB_ERR_CORRUPT && rs != FB_ERR_UNSUPPORTED)
			__builtin_trap();
		if (rs != FB_OK && strstr(err.msg, "fuzz/pytorch_model.bin") == NULL)
			__builtin_trap();
	}
	if (st != FB_OK &&
		((st != FB_ERR_CORRUPT && st != FB_ERR_UNSUPPORTED && st != FB_ERR_NOMEM) ||
		 strstr(err.msg, "pytorch_model.bin") == NULL))
		__builtin_trap();
	fb_source_close(src);
	return 0;
}
