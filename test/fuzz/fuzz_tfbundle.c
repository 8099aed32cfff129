/*
 * fuzz_tfbundle.c — libFuzzer harness for the TensorFlow checkpoint
 * reader: the .index table (footer, blocks, restart points, prefix-
 * compressed keys, CRC-32C trailers), the bundle protos and the tensor
 * views into a data shard.
 *
 * Input: a 4-byte little-endian length N, N bytes of model.ckpt.index,
 * then the bytes of its one data shard (model.ckpt.data-00000-of-00001;
 * an index declaring more shards fails to open them: an I/O error).
 * Accepted tensors are converted (CRC-32C checked); refusals must name
 * the file.  A broken rule traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/fb_source.h"
#include "formats/fb_tfbundle.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fb_source  *src;
	fb_error	err;
	fb_status	st;
	size_t		n;
	int			fi;

	if (size < 4)
		return 0;
	n = (size_t) data[0] | (size_t) data[1] << 8 | (size_t) data[2] << 16 | (size_t) data[3] << 24;
	if (n > size - 4)
		n = size - 4;
	src = fb_source_new("/nonexistent-fuzz-dir", "tf");
	if (src == NULL)
		return 0;
	memset(&err, 0, sizeof(err));
	fi = fb_source_add_memory(src, "model.ckpt.index", data + 4, n, &err);
	fb_source_add_memory(src, "model.ckpt.data-00000-of-00001", data + 4 + n, size - 4 - n, &err);
	st = fb_tf_add_bundle(src, fi, &err);
	if (st == FB_OK)
		st = fb_source_finish(src, &err);
	for (size_t i = 0; st == FB_OK && i < src->n_tensors; i++)
	{
		const fb_tensor *t = &src->tensors[i];
		float	   *dst;
		fb_status	rs;

		/* a derived tensor (albert_zh) is a product of two inputs */
		if (t->factor[0] == NULL && t->n_elems > size)
			__builtin_trap();
		if (t->n_elems > ((size_t) 1 << 24))
			continue;
		dst = malloc(t->n_elems * sizeof(float) + 4);
		if (dst == NULL)
			break;
		rs = fb_source_read_f32(src, t, dst, &err);
		free(dst);
		if (rs != FB_OK && rs != FB_ERR_CORRUPT && rs != FB_ERR_UNSUPPORTED && rs != FB_ERR_NOMEM)
			__builtin_trap();
	}
	if (st != FB_OK &&
		((st != FB_ERR_CORRUPT && st != FB_ERR_UNSUPPORTED && st != FB_ERR_NOMEM && st != FB_ERR_IO) ||
		 strstr(err.msg, "model.ckpt") == NULL))
		__builtin_trap();
	fb_source_close(src);
	return 0;
}
