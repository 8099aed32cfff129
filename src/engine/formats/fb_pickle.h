/*
 * fb_pickle.h — a restricted unpickler for PyTorch state dicts.
 *
 * It implements only the opcodes torch.save writes for a state dict
 * (protocols 2 to 5: containers, numbers, strings, memo, GLOBAL /
 * STACK_GLOBAL, REDUCE, BINPERSID, BUILD on an OrderedDict) and resolves
 * only an exact list of globals, to tags: nothing named in a file is ever
 * imported, looked up or called.
 *
 *   collections.OrderedDict            → an empty (or listed) dict
 *   torch._utils._rebuild_tensor_v2    → a tensor record (storage, offset,
 *   torch._utils._rebuild_tensor          size, stride)
 *   torch._utils._rebuild_parameter    → its tensor
 *   torch.<Type>Storage, torch.UntypedStorage → the storage's dtype
 *   torch.device                       → an opaque value
 *
 * Any other global, a REDUCE of anything but these, BUILD on anything but
 * a dict, other opcodes, memo indices or stack use over fb_limits.h, or a
 * malformed program is FB_ERR_CORRUPT naming the file, the record and the
 * byte offset.  Objects are plain data in an arena; the unpickler never
 * recurses over them, so cycles built through the memo are harmless.
 */
#ifndef FB_PICKLE_H
#define FB_PICKLE_H

#include "fb_safetensors.h"

typedef enum fb_pk_kind
{
	FB_PK_NONE = 0,
	FB_PK_BOOL,
	FB_PK_INT,					/* fits int64 */
	FB_PK_BIGINT,				/* LONG1 of more than 8 bytes: raw bytes */
	FB_PK_FLOAT,
	FB_PK_STR,					/* text or bytes, not NUL-terminated */
	FB_PK_TUPLE,
	FB_PK_LIST,
	FB_PK_DICT,					/* items: key, value, key, value, ... */
	FB_PK_GLOBAL,				/* one of the allowed globals */
	FB_PK_STORAGE,				/* a persistent-id storage reference */
	FB_PK_TENSOR,
	FB_PK_OPAQUE				/* torch.device(...) */
} fb_pk_kind;

typedef struct fb_pk_obj fb_pk_obj;

struct fb_pk_obj
{
	fb_pk_kind	kind;
	int			global;			/* FB_PK_GLOBAL: which (pickle.c) */
	int64_t		i;				/* INT, BOOL */
	double		f;
	const uint8_t *s;			/* STR, BIGINT: bytes in the pickle */
	size_t		len;
	fb_pk_obj **items;			/* TUPLE, LIST, DICT */
	size_t		n;
	size_t		cap;
	/* STORAGE */
	fb_dtype	dtype;
	uint64_t	numel;
	/* TENSOR */
	const fb_pk_obj *storage;
	int64_t		offset;
	int			ndim;
	int64_t    *shape;			/* ndim sizes, then ndim strides */
	int64_t    *stride;
};

typedef struct fb_pickle fb_pickle;

/* Which persistent ids to accept: the zip format's 5-tuple
 * ('storage', type, key, location, numel) or the legacy format's 6-tuple
 * with a view-metadata slot that must be None. */
typedef enum fb_pk_pid
{
	FB_PK_PID_NONE = 0,			/* BINPERSID refused */
	FB_PK_PID_ZIP,
	FB_PK_PID_LEGACY
} fb_pk_pid;

/*
 * Runs one pickle program from buf (up to its STOP) and returns its value
 * in *root, valid until fb_pickle_free.  *consumed is the number of bytes
 * the program took (the legacy format stores several pickles back to back).
 * file and record name the data in messages.
 */
fb_status	fb_pickle_load(const uint8_t *buf, size_t len, fb_pk_pid pid,
						   const char *file, const char *record,
						   fb_pickle **out, const fb_pk_obj **root,
						   size_t *consumed, fb_error *err);

void		fb_pickle_free(fb_pickle *pk);

/* The storages the program referenced, in order of first reference (one
 * object per distinct key). */
size_t		fb_pickle_n_storages(const fb_pickle *pk);
const fb_pk_obj *fb_pickle_storage(const fb_pickle *pk, size_t i);

/* Dict lookup by string key (NULL when absent or not a dict). */
const fb_pk_obj *fb_pk_dict_get(const fb_pk_obj *dict, const char *key);

/* Is o a string equal to s? */
bool		fb_pk_str_is(const fb_pk_obj *o, const char *s);

#endif
