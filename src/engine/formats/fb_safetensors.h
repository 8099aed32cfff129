/*
 * fb_safetensors.h — hostile-input reader of the safetensors format.
 *
 * Layout: 8-byte little-endian header length N, N bytes of a JSON object
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *  "__metadata__": {"k": "v"}}, then the data section.  Everything is
 * validated before any tensor is exposed.
 */
#ifndef FB_SAFETENSORS_H
#define FB_SAFETENSORS_H

#include "fb_internal.h"

typedef enum fb_dtype
{
	FB_DT_F32 = 0,
	FB_DT_F16,
	FB_DT_BF16,
	FB_DT_F64,
	FB_DT_I64,
	FB_DT_I32,
	FB_DT_I16,
	FB_DT_I8,
	FB_DT_U8,
	FB_DT_BOOL
} fb_dtype;

/* Bytes per element; 0 for an unknown dtype. */
size_t		fb_dtype_size(fb_dtype dt);
const char *fb_dtype_name(fb_dtype dt);

typedef struct fb_st_tensor
{
	char	   *name;
	fb_dtype	dtype;
	int			ndim;
	int64_t		shape[FB_ST_MAX_DIMS];
	uint64_t	n_elems;
	const uint8_t *data;		/* inside the mapping; not aligned in general */
	size_t		nbytes;
} fb_st_tensor;

typedef struct fb_safetensors
{
	char	   *path;			/* for error messages */
	uint8_t    *map;			/* whole-file mapping (or caller buffer) */
	size_t		map_len;
	int			owns_map;		/* munmap on close */
	fb_st_tensor *tensors;		/* sorted by name */
	size_t		n_tensors;
} fb_safetensors;

/*
 * Parses and validates a safetensors image held in memory (the buffer is
 * not copied and must outlive the result).  name is used in messages.
 * Errors: FB_ERR_CORRUPT for every structural problem, FB_ERR_UNSUPPORTED
 * for a dtype outside the allow-list, FB_ERR_NOMEM.
 */
fb_status	fb_safetensors_parse(const uint8_t *buf, size_t len, const char *name,
								 fb_safetensors **out, fb_error *err);

/* Maps a file read-only and parses it (FB_ERR_IO when it cannot be read). */
fb_status	fb_safetensors_open(const char *path, fb_safetensors **out,
								fb_error *err);

void		fb_safetensors_close(fb_safetensors *st);

/* Tensor by exact name, NULL when absent. */
const fb_st_tensor *fb_safetensors_find(const fb_safetensors *st,
										const char *name);

/*
 * Converts a floating-point tensor (F32/F16/BF16/F64) to fp32 into dst,
 * which must hold t->n_elems floats.  Other dtypes: FB_ERR_UNSUPPORTED.
 */
fb_status	fb_tensor_to_f32(const fb_st_tensor *t, float *dst, fb_error *err);

#endif
