/*
 * fb_source.h — a checkpoint's tensors, whatever the file format: the one
 * interface between the format readers and the model loader (model.c).
 *
 * A tensor source is a set of memory-mapped files and a table of tensor
 * views into them: name → dtype, shape, and where the elements lie
 * (storage, element offset, strides).  Every reader (safetensors, sharded
 * safetensors, pytorch_model.bin in both serialisations, TensorFlow tensor
 * bundles) only fills that table; the loader asks for tensors by their
 * transformers (PyTorch) name and gets fp32, whatever the file held.
 *
 * Names: readers give each tensor its canonical name, the one transformers
 * uses for a PyTorch model (TensorFlow variables are renamed and their
 * [in, out] kernels presented as transposed [out, in] views), and keep the
 * stored name for messages.  fb_source_finish() also applies transformers'
 * own renaming of legacy LayerNorm names ("LayerNorm.gamma" → ".weight",
 * "LayerNorm.beta" → ".bias").
 *
 * Integrity: every view is checked against its storage before the source
 * is returned (fb_source_finish); a storage with a checksum (zip entries:
 * CRC-32, TensorFlow tensors: CRC-32C) is verified the first time an
 * element of it is read, so data never read is never checked (nor touched).
 */
#ifndef FB_SOURCE_H
#define FB_SOURCE_H

#include "fb_safetensors.h"

/* Which project's variable names a TensorFlow checkpoint follows. */
typedef enum fb_layout
{
	FB_LAYOUT_HF = 0,			/* transformers names (safetensors, .bin) */
	FB_LAYOUT_TF_BERT,			/* google-research/bert */
	FB_LAYOUT_TF_ALBERT,		/* google-research/albert */
	FB_LAYOUT_TF_ALBERT_ZH,		/* brightmart/albert_zh */
	FB_LAYOUT_TF_ELECTRA		/* google-research/electra */
} fb_layout;

typedef enum fb_check_kind
{
	FB_CHECK_CRC32,				/* zip entry */
	FB_CHECK_CRC32C_MASKED		/* TensorFlow bundle entry */
} fb_check_kind;

/* A checksum over a byte range of one file, verified once on first use. */
typedef struct fb_check
{
	const uint8_t *p;
	size_t		n;
	uint32_t	want;
	fb_check_kind kind;
	int			file;
	int			verified;
	char	   *what;			/* "entry \"archive/data/0\"" */
} fb_check;

typedef struct fb_tensor
{
	char	   *name;			/* canonical (transformers) name */
	char	   *stored;			/* name in the file (may equal name) */
	int			file;			/* index into the source's files; -1: derived */
	fb_dtype	dtype;
	int			ndim;
	int64_t		shape[FB_ST_MAX_DIMS];
	uint64_t	n_elems;
	const uint8_t *base;		/* first byte of the storage, in a mapping */
	uint64_t	storage_elems;	/* elements of dtype the storage holds */
	uint64_t	offset;			/* element index of [0, ..., 0] */
	int64_t		stride[FB_ST_MAX_DIMS]; /* in elements, >= 0 */
	int			check;			/* index into the source's checks, -1: none */
	char	   *factor[2];		/* derived tensor: factor[0] x factor[1]^T */
	int			used;			/* set by fb_source_get */
} fb_tensor;

typedef struct fb_source_file
{
	char	   *name;			/* relative to the directory */
	char	   *path;			/* dir/name, for messages */
	uint8_t    *map;
	size_t		len;
	int			owned;			/* mapped by the source (else a caller's buffer) */
} fb_source_file;

typedef struct fb_source
{
	char	   *dir;
	char		format[64];		/* "safetensors", "pytorch zip", ... */
	fb_layout	layout;
	int			emb_in_hidden;	/* word embeddings come hidden-sized: the
								 * factorised table is multiplied out here
								 * (brightmart/albert_zh) */
	fb_source_file *files;		/* the first is the one reported */
	int			n_files;
	fb_tensor  *tensors;		/* sorted by name after fb_source_finish */
	size_t		n_tensors;
	size_t		cap_tensors;
	fb_check   *checks;
	size_t		n_checks;
	size_t		cap_checks;
	size_t		n_skipped;		/* optimizer slots and counters left out */
} fb_source;

/* ------------------------------------------------------------------------
 * For the model loader
 * ------------------------------------------------------------------------ */

/*
 * Opens the weights of a model directory by the precedence rule (weights.c):
 * model.safetensors or its sharded index, then pytorch_model.bin or its
 * sharded index, then a TensorFlow checkpoint (*.index + data shards).
 * None of them: FB_ERR_IO.
 */
fb_status	fb_source_open_dir(const char *dir, fb_source **out, fb_error *err);

/*
 * Opens every other weight candidate of dir and compares the tensors the
 * loader used from `chosen` with them (fb_source_compare).  notice gets
 * one sentence per candidate that differs or cannot be read, "" when all
 * agree or there is none.  Errors only for out of memory.
 */
fb_status	fb_source_check_alternates(const char *dir, fb_source *chosen,
									   char *notice, size_t cap, fb_error *err);

/* Opens one weight file as the given format (tests, fuzzing, inspect). */
fb_status	fb_source_open_safetensors(const char *dir, const char *file,
									   fb_source **out, fb_error *err);
fb_status	fb_source_open_torch(const char *dir, const char *file,
								 fb_source **out, fb_error *err);
fb_status	fb_source_open_tf(const char *dir, const char *index_file,
							  fb_source **out, fb_error *err);

void		fb_source_close(fb_source *src);

/* Tensor by canonical name, NULL when absent; _get marks it used. */
const fb_tensor *fb_source_find(const fb_source *src, const char *name);
const fb_tensor *fb_source_get(fb_source *src, const char *name);

/*
 * Converts a floating-point tensor to fp32 row-major into dst
 * (t->n_elems floats), verifying its storage's checksum first.
 * FB_ERR_CORRUPT on a checksum mismatch, FB_ERR_UNSUPPORTED for a
 * non-floating dtype; the message names the file and the tensor.
 */
fb_status	fb_source_read_f32(fb_source *src, const fb_tensor *t, float *dst,
							   fb_error *err);

/* "dir/file" of a tensor (or of the source's first file) for messages. */
const char *fb_source_file_name(const fb_source *src, int file);

/*
 * Compares the tensors marked used in `a` with the same names in `b`
 * (shape and fp32 values).  Returns FB_OK with *same set, and a one-line
 * description of the first difference in why (why_len bytes).
 */
fb_status	fb_source_compare(fb_source *a, fb_source *b, int *same,
							  char *why, size_t why_len, fb_error *err);

/* ------------------------------------------------------------------------
 * For the format readers
 * ------------------------------------------------------------------------ */

/* Adds the tensors of the source's file fi (one format's reader). */
typedef fb_status (*fb_source_reader) (fb_source *src, int fi, fb_error *err);

/* A new source of one file dir/file read by `read`, finished. */
fb_status	fb_source_open_file(const char *dir, const char *file,
								const char *format, fb_source_reader read,
								fb_source **out, fb_error *err);

fb_source  *fb_source_new(const char *dir, const char *format);

/* Maps dir/name read-only and adds it; returns its index, or -1 with err
 * set (FB_ERR_IO when it cannot be opened). */
int			fb_source_add_file(fb_source *src, const char *name, fb_error *err);

/* Adds a caller's buffer as file `name` (tests, fuzzing); the buffer must
 * outlive the source.  Returns its index or -1. */
int			fb_source_add_memory(fb_source *src, const char *name,
								 const uint8_t *buf, size_t len, fb_error *err);

/* Index of the file called name, -1 when the source has none. */
int			fb_source_file_index(const fb_source *src, const char *name);

/* A zeroed tensor with its names copied (stored NULL: same as name), or
 * NULL (out of memory or over FB_ST_MAX_TENSORS, err set). */
fb_tensor  *fb_source_add_tensor(fb_source *src, const char *name,
								 const char *stored, fb_error *err);

/* A checksum record; returns its index or -1 (out of memory). */
int			fb_source_add_check(fb_source *src, int file, const uint8_t *p,
								size_t n, uint32_t want, fb_check_kind kind,
								const char *what, fb_error *err);

/* Contiguous row-major strides for t's shape. */
void		fb_tensor_set_contiguous(fb_tensor *t);

/*
 * Validates every tensor (shape product, view inside its storage, storage
 * inside its file, factors of derived tensors), renames legacy LayerNorm
 * names, sorts by name and refuses duplicates (FB_ERR_CORRUPT).
 */
fb_status	fb_source_finish(fb_source *src, fb_error *err);

/* Maps a whole regular file read-only (FB_ERR_IO, FB_ERR_CORRUPT when
 * empty). */
fb_status	fb_map_file(const char *path, uint8_t **map, size_t *len,
						fb_error *err);
void		fb_unmap_file(uint8_t *map, size_t len);

#endif
