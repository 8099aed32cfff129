/*
 * tfbundle.c — TensorFlow V2 checkpoints ("tensor bundles") as a tensor
 * source (fb_tfbundle.h).
 *
 * PREFIX.index is a sorted string table in LevelDB's format
 * (tensorflow/core/lib/io/table): data blocks of prefix-compressed
 * entries with restart points, an index block of block handles, a
 * metaindex block, and a 48-byte footer ending in a magic number.  Each
 * block is followed by a type byte (0: stored; 1: Snappy, which
 * TensorFlow's bundle writer never uses for the index — it sets
 * kNoCompression — and is refused) and the masked CRC-32C of block and
 * type byte, verified here.  The entry with the empty key is a
 * BundleHeaderProto (num_shards, endianness); every other key is a
 * variable name whose value is a BundleEntryProto (dtype, shape, shard_id,
 * offset, size, masked CRC-32C of the bytes, slices of a partitioned
 * variable).  Tensor bytes lie in PREFIX.data-%05d-of-%05d, row-major,
 * little-endian; each tensor's CRC-32C is verified the first time it is
 * read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_crc.h"
#include "fb_tfbundle.h"

#define TABLE_FOOTER_LEN	48
#define TABLE_MAGIC			0xdb4775248b80fb57ull
#define BLOCK_TRAILER_LEN	5

/* TensorFlow DataType values (types.proto) the reader maps. */
static const struct
{
	int			tf;
	fb_dtype	dt;
}			tf_dtypes[] =
{
	{1, FB_DT_F32},				/* DT_FLOAT */
	{2, FB_DT_F64},				/* DT_DOUBLE */
	{3, FB_DT_I32},				/* DT_INT32 */
	{4, FB_DT_U8},				/* DT_UINT8 */
	{5, FB_DT_I16},				/* DT_INT16 */
	{6, FB_DT_I8},				/* DT_INT8 */
	{9, FB_DT_I64},				/* DT_INT64 */
	{10, FB_DT_BOOL},			/* DT_BOOL */
	{14, FB_DT_BF16},			/* DT_BFLOAT16 */
	{19, FB_DT_F16},			/* DT_HALF */
};

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
		(uint32_t) p[3] << 24;
}

static fb_status
tf_fail(const char *file, fb_error *err, fb_status st, const char *fmt,...)
FB_PRINTF(4, 5);

static fb_status
tf_fail(const char *file, fb_error *err, fb_status st, const char *fmt,...)
{
	char		buf[FB_ERRMSG_MAX];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return fb_fail(err, st, "\"%s\": %s", file, buf);
}

/* Base-128 varint of at most max_bytes; false when truncated or longer. */
static bool
get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v, int max_bytes)
{
	uint64_t	r = 0;

	for (int i = 0; i < max_bytes; i++)
	{
		uint8_t		b;

		if (*p >= end)
			return false;
		b = *(*p)++;
		r |= (uint64_t) (b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0)
		{
			*v = r;
			return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------
 */

typedef struct block_handle
{
	uint64_t	offset;
	uint64_t	size;
} block_handle;

static bool
get_handle(const uint8_t **p, const uint8_t *end, block_handle *h)
{
	return get_varint(p, end, &h->offset, 10) && get_varint(p, end, &h->size, 10);
}

/* A block's contents after checking its bounds and trailer. */
static fb_status
block_contents(const uint8_t *buf, size_t limit, const block_handle *h,
			   const char *file, const char *what, const uint8_t **data,
			   size_t *n, fb_error *err)
{
	const uint8_t *t;
	uint32_t	crc;

	if (h->offset > limit || h->size > limit - h->offset ||
		limit - h->offset - h->size < BLOCK_TRAILER_LEN)
		return tf_fail(file, err, FB_ERR_CORRUPT,
					   "%s block (offset %llu, %llu bytes) is outside the table",
					   what, (unsigned long long) h->offset, (unsigned long long) h->size);
	*data = buf + h->offset;
	*n = (size_t) h->size;
	t = *data + *n;
	crc = fb_crc32c_update(0, *data, *n + 1);	/* contents and type byte */
	if (fb_crc32c_mask(crc) != le32(t + 1))
		return tf_fail(file, err, FB_ERR_CORRUPT,
					   "%s block at offset %llu: CRC-32C mismatch (stored %08x, computed %08x)",
					   what, (unsigned long long) h->offset, (unsigned) le32(t + 1),
					   (unsigned) fb_crc32c_mask(crc));
	if (t[0] == 1)
		return tf_fail(file, err, FB_ERR_UNSUPPORTED,
					   "%s block at offset %llu is Snappy-compressed (TensorFlow writes checkpoint indexes uncompressed)",
					   what, (unsigned long long) h->offset);
	if (t[0] != 0)
		return tf_fail(file, err, FB_ERR_CORRUPT, "%s block at offset %llu: unknown compression type %u",
					   what, (unsigned long long) h->offset, t[0]);
	return FB_OK;
}

/* Keys in strictly increasing order, across the blocks of one scan. */
typedef struct key_state
{
	uint8_t		prev[FB_ST_MAX_NAME_BYTES];
	size_t		prev_len;
	bool		any;
} key_state;

static int
key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int			c = memcmp(a, b, an < bn ? an : bn);

	if (c != 0)
		return c;
	return an < bn ? -1 : an > bn;
}

/*
 * Every entry of one block, keys rebuilt from their shared prefixes; each
 * restart point must begin an entry whose key shares nothing.
 */
static fb_status
scan_block(const uint8_t *data, size_t n, const char *file, const char *what,
		   key_state *ks, fb_tf_entry_fn fn, void *arg, fb_error *err)
{
	uint8_t		key[FB_ST_MAX_NAME_BYTES];
	size_t		key_len = 0;
	uint32_t	n_restarts;
	size_t		entries_end,
				pos = 0,
				r = 0;
	fb_status	st;

	if (n < 4)
		return tf_fail(file, err, FB_ERR_CORRUPT, "%s block of %zu bytes has no restart count", what, n);
	n_restarts = le32(data + n - 4);
	if (n_restarts > (n - 4) / 4)
		return tf_fail(file, err, FB_ERR_CORRUPT, "%s block: %u restart points do not fit %zu bytes",
					   what, n_restarts, n);
	entries_end = n - 4 - 4 * (size_t) n_restarts;
	while (pos < entries_end)
	{
		const uint8_t *p = data + pos;
		const uint8_t *end = data + entries_end;
		uint64_t	shared,
					unshared,
					vlen;
		bool		restart = r < n_restarts && le32(data + entries_end + 4 * r) == pos;

		if (restart)
			r++;
		if (!get_varint(&p, end, &shared, 5) || !get_varint(&p, end, &unshared, 5) ||
			!get_varint(&p, end, &vlen, 5))
			return tf_fail(file, err, FB_ERR_CORRUPT, "%s block: truncated entry header at byte %zu",
						   what, pos);
		if ((restart || pos == 0) && shared != 0)
			return tf_fail(file, err, FB_ERR_CORRUPT,
						   "%s block: entry at restart point %zu shares a key prefix", what, pos);
		if (shared > key_len)
			return tf_fail(file, err, FB_ERR_CORRUPT,
						   "%s block: entry at byte %zu shares %llu bytes of a %zu-byte key",
						   what, pos, (unsigned long long) shared, key_len);
		if (unshared > (uint64_t) (end - p) || vlen > (uint64_t) (end - p) - unshared)
			return tf_fail(file, err, FB_ERR_CORRUPT, "%s block: entry at byte %zu runs past the block",
						   what, pos);
		if (shared + unshared > sizeof(key))
			return tf_fail(file, err, FB_ERR_CORRUPT, "%s block: key of %llu bytes at byte %zu",
						   what, (unsigned long long) (shared + unshared), pos);
		memcpy(key + shared, p, (size_t) unshared);
		key_len = (size_t) (shared + unshared);
		p += unshared;
		if (ks->any && key_cmp(key, key_len, ks->prev, ks->prev_len) <= 0)
			return tf_fail(file, err, FB_ERR_CORRUPT, "%s block: keys out of order at byte %zu",
						   what, pos);
		memcpy(ks->prev, key, key_len);
		ks->prev_len = key_len;
		ks->any = true;
		if ((st = fn(arg, key, key_len, p, (size_t) vlen, err)) != FB_OK)
			return st;
		pos = (size_t) (p + vlen - data);
	}
	/* every restart point was an entry start (an empty block has one, 0) */
	if (r != n_restarts && !(entries_end == 0 && n_restarts == 1 && le32(data) == 0))
		return tf_fail(file, err, FB_ERR_CORRUPT,
					   "%s block: restart points do not fall on entries", what);
	return FB_OK;
}

/* The index block's callback: each value locates one data block. */
typedef struct table_scan
{
	const uint8_t *buf;
	size_t		limit;
	const char *file;
	key_state	data_keys;
	fb_tf_entry_fn fn;
	void	   *arg;
} table_scan;

static fb_status
index_entry(void *arg, const uint8_t *key, size_t key_len, const uint8_t *val,
			size_t val_len, fb_error *err)
{
	table_scan *ts = arg;
	const uint8_t *p = val;
	block_handle h;
	const uint8_t *data;
	size_t		n;
	fb_status	st;

	if (!get_handle(&p, val + val_len, &h) || p != val + val_len)
		return tf_fail(ts->file, err, FB_ERR_CORRUPT, "index block: malformed block handle");
	if ((st = block_contents(ts->buf, ts->limit, &h, ts->file, "data", &data, &n, err)) != FB_OK)
		return st;
	if ((st = scan_block(data, n, ts->file, "data", &ts->data_keys, ts->fn, ts->arg, err)) != FB_OK)
		return st;
	/* the index key separates: it is >= the block's last key */
	if (ts->data_keys.any &&
		key_cmp(ts->data_keys.prev, ts->data_keys.prev_len, key, key_len) > 0)
		return tf_fail(ts->file, err, FB_ERR_CORRUPT, "index block: a key sorts before its block's keys");
	return FB_OK;
}

static fb_status
ignore_entry(void *arg, const uint8_t *key, size_t key_len, const uint8_t *val,
			 size_t val_len, fb_error *err)
{
	return FB_OK;
}

fb_status
fb_tf_table_scan(const uint8_t *buf, size_t len, const char *file,
				 fb_tf_entry_fn fn, void *arg, fb_error *err)
{
	const uint8_t *footer,
			   *p;
	block_handle meta,
				index;
	uint64_t	magic = 0;
	table_scan *ts;
	key_state  *ks;
	const uint8_t *data;
	size_t		n;
	fb_status	st;

	if (len < TABLE_FOOTER_LEN)
		return tf_fail(file, err, FB_ERR_CORRUPT, "%zu bytes, too short for a table footer", len);
	footer = buf + len - TABLE_FOOTER_LEN;
	for (int i = 7; i >= 0; i--)
		magic = magic << 8 | footer[40 + i];
	if (magic != TABLE_MAGIC)
		return tf_fail(file, err, FB_ERR_CORRUPT, "not a TensorFlow checkpoint index (bad table magic number)");
	p = footer;
	if (!get_handle(&p, footer + 40, &meta) || !get_handle(&p, footer + 40, &index))
		return tf_fail(file, err, FB_ERR_CORRUPT, "malformed table footer");

	if ((st = block_contents(buf, len - TABLE_FOOTER_LEN, &meta, file, "metaindex", &data, &n, err)) != FB_OK)
		return st;
	ks = calloc(1, sizeof(*ks));
	ts = calloc(1, sizeof(*ts));
	if (ks == NULL || ts == NULL)
	{
		free(ks);
		free(ts);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	st = scan_block(data, n, file, "metaindex", ks, ignore_entry, NULL, err);
	if (st == FB_OK)
		st = block_contents(buf, len - TABLE_FOOTER_LEN, &index, file, "index", &data, &n, err);
	if (st == FB_OK)
	{
		memset(ks, 0, sizeof(*ks));
		ts->buf = buf;
		ts->limit = len - TABLE_FOOTER_LEN;
		ts->file = file;
		ts->fn = fn;
		ts->arg = arg;
		st = scan_block(data, n, file, "index", ks, index_entry, ts, err);
	}
	free(ks);
	free(ts);
	return st;
}

/* ------------------------------------------------------------------------
 * Bundle protos
 * ------------------------------------------------------------------------
 */

typedef struct tf_entry
{
	char	   *name;
	int			dtype;
	int			ndim;
	int64_t		shape[FB_ST_MAX_DIMS];
	uint64_t	shard;
	uint64_t	offset;
	uint64_t	size;
	uint32_t	crc32c;
	bool		sliced;
} tf_entry;

typedef struct bundle
{
	const char *file;
	bool		have_header;
	uint64_t	n_shards;
	tf_entry   *entries;
	size_t		n_entries;
	size_t		cap_entries;
} bundle;

/* Skips one field of wire type wt. */
static bool
pb_skip(const uint8_t **p, const uint8_t *end, int wt)
{
	uint64_t	v;

	switch (wt)
	{
		case 0:
			return get_varint(p, end, &v, 10);
		case 1:
			if (end - *p < 8)
				return false;
			*p += 8;
			return true;
		case 2:
			if (!get_varint(p, end, &v, 10) || v > (uint64_t) (end - *p))
				return false;
			*p += v;
			return true;
		case 5:
			if (end - *p < 4)
				return false;
			*p += 4;
			return true;
		default:
			return false;		/* groups and reserved wire types */
	}
}

/* Next field: its number, wire type, and for length-delimited fields the
 * bytes; false at a malformed key. */
static bool
pb_field(const uint8_t **p, const uint8_t *end, uint64_t *field, int *wt)
{
	uint64_t	key;

	if (!get_varint(p, end, &key, 10) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
		return false;
	*field = key >> 3;
	*wt = (int) (key & 7);
	return true;
}

static bool
pb_bytes(const uint8_t **p, const uint8_t *end, const uint8_t **b, size_t *n)
{
	uint64_t	v;

	if (!get_varint(p, end, &v, 10) || v > (uint64_t) (end - *p))
		return false;
	*b = *p;
	*n = (size_t) v;
	*p += v;
	return true;
}

static fb_status
parse_header(bundle *b, const uint8_t *p, const uint8_t *end, fb_error *err)
{
	b->n_shards = 0;
	while (p < end)
	{
		uint64_t	f,
					v;
		int			wt;

		if (!pb_field(&p, end, &f, &wt))
			return tf_fail(b->file, err, FB_ERR_CORRUPT, "malformed bundle header");
		if (f == 1 && wt == 0)
		{
			if (!get_varint(&p, end, &v, 10))
				return tf_fail(b->file, err, FB_ERR_CORRUPT, "malformed bundle header");
			b->n_shards = v;
		}
		else if (f == 2 && wt == 0)
		{
			if (!get_varint(&p, end, &v, 10))
				return tf_fail(b->file, err, FB_ERR_CORRUPT, "malformed bundle header");
			if (v != 0)
				return tf_fail(b->file, err, FB_ERR_UNSUPPORTED, "the checkpoint was written big-endian");
		}
		else if (!pb_skip(&p, end, wt))
			return tf_fail(b->file, err, FB_ERR_CORRUPT, "malformed bundle header");
	}
	if (b->n_shards < 1 || b->n_shards > FB_TF_MAX_SHARDS)
		return tf_fail(b->file, err, FB_ERR_CORRUPT, "bundle header declares %llu data shards (1 to %d)",
					   (unsigned long long) b->n_shards, FB_TF_MAX_SHARDS);
	b->have_header = true;
	return FB_OK;
}

static fb_status
parse_shape(bundle *b, tf_entry *e, const uint8_t *p, const uint8_t *end, fb_error *err)
{
	while (p < end)
	{
		uint64_t	f,
					v;
		int			wt;
		const uint8_t *d;
		size_t		dn;

		if (!pb_field(&p, end, &f, &wt))
			return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": malformed shape", e->name);
		if (f == 2 && wt == 2)
		{
			const uint8_t *q,
					   *qe;
			int64_t		size = 0;

			if (!pb_bytes(&p, end, &d, &dn))
				return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": malformed shape", e->name);
			if (e->ndim >= FB_ST_MAX_DIMS)
				return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": rank over %d",
							   e->name, FB_ST_MAX_DIMS);
			q = d;
			qe = d + dn;
			while (q < qe)
			{
				if (!pb_field(&q, qe, &f, &wt))
					return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": malformed dimension", e->name);
				if (f == 1 && wt == 0)
				{
					if (!get_varint(&q, qe, &v, 10))
						return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": malformed dimension", e->name);
					size = (int64_t) v;
				}
				else if (!pb_skip(&q, qe, wt))
					return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": malformed dimension", e->name);
			}
			if (size < 0)
				return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": dimension %lld",
							   e->name, (long long) size);
			e->shape[e->ndim++] = size;
		}
		else if (f == 3 && wt == 0)
		{
			if (!get_varint(&p, end, &v, 10))
				return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": malformed shape", e->name);
			if (v != 0)
				return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": unknown rank", e->name);
		}
		else if (!pb_skip(&p, end, wt))
			return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": malformed shape", e->name);
	}
	return FB_OK;
}

static fb_status
parse_entry(bundle *b, tf_entry *e, const uint8_t *p, const uint8_t *end, fb_error *err)
{
	while (p < end)
	{
		uint64_t	f,
					v = 0;
		int			wt;
		const uint8_t *d;
		size_t		dn;
		fb_status	st;
		bool		ok = true;

		if (!pb_field(&p, end, &f, &wt))
			return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": malformed entry", e->name);
		if (wt == 0 && (f == 1 || f == 3 || f == 4 || f == 5))
		{
			ok = get_varint(&p, end, &v, 10);
			if (f == 1)
				e->dtype = v > 1000 ? -1 : (int) v;
			else if (f == 3)
				e->shard = v;
			else if (f == 4)
				e->offset = v;
			else
				e->size = v;
		}
		else if (f == 2 && wt == 2)
		{
			ok = pb_bytes(&p, end, &d, &dn);
			if (ok && (st = parse_shape(b, e, d, d + dn, err)) != FB_OK)
				return st;
		}
		else if (f == 6 && wt == 5)
		{
			ok = end - p >= 4;
			if (ok)
				e->crc32c = le32(p);
			p += ok ? 4 : 0;
		}
		else if (f == 7 && wt == 2)
		{
			ok = pb_bytes(&p, end, &d, &dn);
			e->sliced = true;
		}
		else
			ok = pb_skip(&p, end, wt);
		if (!ok)
			return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\": malformed entry", e->name);
	}
	return FB_OK;
}

static fb_status
bundle_entry(void *arg, const uint8_t *key, size_t key_len, const uint8_t *val,
			 size_t val_len, fb_error *err)
{
	bundle	   *b = arg;
	tf_entry   *e;

	if (key_len == 0)
		return parse_header(b, val, val + val_len, err);
	if (!b->have_header)
		return tf_fail(b->file, err, FB_ERR_CORRUPT, "no bundle header before the variables");
	if (memchr(key, '\0', key_len) != NULL)
		return tf_fail(b->file, err, FB_ERR_CORRUPT, "a variable name contains a NUL byte");
	if (b->n_entries >= FB_ST_MAX_TENSORS)
		return tf_fail(b->file, err, FB_ERR_CORRUPT, "more than %d variables", FB_ST_MAX_TENSORS);
	if (b->n_entries == b->cap_entries)
	{
		size_t		cap = b->cap_entries ? b->cap_entries * 2 : 256;
		tf_entry   *es = realloc(b->entries, cap * sizeof(*es));

		if (es == NULL)
			return fb_fail(err, FB_ERR_NOMEM, "out of memory");
		b->entries = es;
		b->cap_entries = cap;
	}
	e = &b->entries[b->n_entries];
	memset(e, 0, sizeof(*e));
	e->name = malloc(key_len + 1);
	if (e->name == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	memcpy(e->name, key, key_len);
	e->name[key_len] = '\0';
	b->n_entries++;
	return parse_entry(b, e, val, val + val_len, err);
}

/* ------------------------------------------------------------------------
 * The source
 * ------------------------------------------------------------------------
 */

static fb_dtype
map_dtype(int tf, bool *known)
{
	for (size_t i = 0; i < sizeof(tf_dtypes) / sizeof(tf_dtypes[0]); i++)
		if (tf_dtypes[i].tf == tf)
		{
			*known = true;
			return tf_dtypes[i].dt;
		}
	*known = false;
	return FB_DT_F32;
}

/* One variable as a tensor view of its shard. */
static fb_status
add_variable(fb_source *src, const bundle *b, const tf_entry *e,
			 const int *shard_files, fb_error *err)
{
	char		name[FB_ST_MAX_NAME_BYTES + 64];
	bool		transpose = false,
				known;
	fb_dtype	dt = map_dtype(e->dtype, &known);
	fb_tf_name	m;
	const fb_source_file *shard;
	fb_tensor  *t;
	uint64_t	n = 1;
	char		what[FB_ST_MAX_NAME_BYTES + 32];

	m = fb_tf_map_name(src->layout, e->name, name, sizeof(name), &transpose);
	if (m == FB_TF_NAME_SKIP || !known)
	{
		/* optimizer state, counters, strings and resources: not weights */
		src->n_skipped++;
		return FB_OK;
	}
	if (m == FB_TF_NAME_TOO_LONG)
		return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable name \"%.200s...\" too long", e->name);
	if (e->sliced)
		return tf_fail(b->file, err, FB_ERR_UNSUPPORTED,
					   "variable \"%.200s\" is partitioned into slices", e->name);
	if (e->shard >= b->n_shards)
		return tf_fail(b->file, err, FB_ERR_CORRUPT, "variable \"%.200s\" is in shard %llu of %llu",
					   e->name, (unsigned long long) e->shard, (unsigned long long) b->n_shards);
	for (int d = 0; d < e->ndim; d++)
		if (__builtin_mul_overflow(n, (uint64_t) e->shape[d], &n))
			return tf_fail(b->file, err, FB_ERR_CORRUPT,
						   "variable \"%.200s\": element count of the shape overflows", e->name);
	if (n > UINT64_MAX / fb_dtype_size(dt) || e->size != n * fb_dtype_size(dt))
		return tf_fail(b->file, err, FB_ERR_CORRUPT,
					   "variable \"%.200s\": %llu bytes, its shape and dtype need %llu",
					   e->name, (unsigned long long) e->size,
					   (unsigned long long) (n > UINT64_MAX / fb_dtype_size(dt) ? 0 : n * fb_dtype_size(dt)));
	shard = &src->files[shard_files[e->shard]];
	if (e->offset > shard->len || e->size > shard->len - e->offset)
		return tf_fail(shard->path, err, FB_ERR_CORRUPT,
					   "variable \"%.200s\" (%llu bytes at offset %llu) runs past the end of the shard",
					   e->name, (unsigned long long) e->size, (unsigned long long) e->offset);

	t = fb_source_add_tensor(src, name, e->name, err);
	if (t == NULL)
		return err ? err->status : FB_ERR_NOMEM;
	t->file = shard_files[e->shard];
	t->dtype = dt;
	t->ndim = e->ndim;
	memcpy(t->shape, e->shape, sizeof(int64_t) * (size_t) e->ndim);
	t->base = shard->map + e->offset;
	t->storage_elems = n;
	t->offset = 0;
	fb_tensor_set_contiguous(t);
	if (transpose && t->ndim == 2)
	{
		/* [in, out] row-major seen as [out, in]: element (o, i) at i*out + o */
		int64_t		in = t->shape[0],
					out = t->shape[1];

		t->shape[0] = out;
		t->shape[1] = in;
		t->stride[0] = 1;
		t->stride[1] = out;
	}
	snprintf(what, sizeof(what), "variable \"%.200s\"", e->name);
	t->check = fb_source_add_check(src, t->file, t->base, (size_t) e->size, e->crc32c,
								   FB_CHECK_CRC32C_MASKED, what, err);
	if (t->check < 0)
		return err ? err->status : FB_ERR_NOMEM;
	return FB_OK;
}

/* brightmart/albert_zh: word embeddings = factor [V, E] x projection [H, E]^T. */
static fb_status
add_albert_zh_product(fb_source *src, fb_error *err)
{
	const fb_tensor *a = NULL,
			   *p = NULL;
	fb_tensor  *t;

	for (size_t i = 0; i < src->n_tensors; i++)
	{
		if (strcmp(src->tensors[i].name, FB_TF_ALBERT_ZH_FACTOR) == 0)
			a = &src->tensors[i];
		else if (strcmp(src->tensors[i].name, FB_TF_ALBERT_ZH_PROJECTION) == 0)
			p = &src->tensors[i];
	}
	if (a == NULL || p == NULL || a->ndim != 2 || p->ndim != 2)
		return tf_fail(fb_source_file_name(src, 0), err, FB_ERR_CORRUPT,
					   "brightmart/albert_zh layout without bert/embeddings/word_embeddings and word_embeddings_2 matrices");
	{
		int64_t		V = a->shape[0],
					H = p->shape[0];

		t = fb_source_add_tensor(src, "albert.embeddings.word_embeddings.weight",
								 "bert/embeddings/word_embeddings x bert/embeddings/word_embeddings_2", err);
		if (t == NULL)
			return err ? err->status : FB_ERR_NOMEM;
		t->file = -1;
		t->dtype = FB_DT_F32;
		t->ndim = 2;
		t->shape[0] = V;
		t->shape[1] = H;
		t->factor[0] = strdup(FB_TF_ALBERT_ZH_FACTOR);
		t->factor[1] = strdup(FB_TF_ALBERT_ZH_PROJECTION);
		if (t->factor[0] == NULL || t->factor[1] == NULL)
			return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	return FB_OK;
}

static void
bundle_free(bundle *b)
{
	for (size_t i = 0; i < b->n_entries; i++)
		free(b->entries[i].name);
	free(b->entries);
}

fb_status
fb_tf_add_bundle(fb_source *src, int fi, fb_error *err)
{
	bundle		b;
	const char *index_file = src->files[fi].name;
	size_t		plen = strlen(index_file);
	int		   *shard_files = NULL;
	const char **names = NULL;
	fb_status	st;

	memset(&b, 0, sizeof(b));
	b.file = src->files[fi].path;
	if (plen <= 6 || strcmp(index_file + plen - 6, ".index") != 0 || plen > 900)
		return fb_fail(err, FB_ERR_INVALID, "\"%s\" is not a checkpoint .index file name", index_file);
	if ((st = fb_tf_table_scan(src->files[fi].map, src->files[fi].len, b.file,
							   bundle_entry, &b, err)) != FB_OK)
		goto done;
	if (!b.have_header)
	{
		st = tf_fail(b.file, err, FB_ERR_CORRUPT, "no bundle header (not a tensor bundle index)");
		goto done;
	}

	/* the data shards, all of them (already added ones reused) */
	shard_files = malloc((size_t) b.n_shards * sizeof(int));
	if (shard_files == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}
	for (uint64_t s = 0; s < b.n_shards; s++)
	{
		char		shard[1024];

		snprintf(shard, sizeof(shard), "%.*s.data-%05llu-of-%05llu", (int) (plen - 6),
				 index_file, (unsigned long long) s, (unsigned long long) b.n_shards);
		shard_files[s] = fb_source_file_index(src, shard);
		if (shard_files[s] < 0 && (shard_files[s] = fb_source_add_file(src, shard, err)) < 0)
		{
			st = err ? err->status : FB_ERR_IO;
			goto done;
		}
	}

	names = malloc((b.n_entries + 1) * sizeof(*names));
	if (names == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < b.n_entries; i++)
		names[i] = b.entries[i].name;
	src->layout = fb_tf_detect_layout(names, b.n_entries);
	for (size_t i = 0; i < b.n_entries; i++)
		if ((st = add_variable(src, &b, &b.entries[i], shard_files, err)) != FB_OK)
			goto done;
	if (src->layout == FB_LAYOUT_TF_ALBERT_ZH)
	{
		src->emb_in_hidden = 1;
		if ((st = add_albert_zh_product(src, err)) != FB_OK)
			goto done;
	}
	if (b.n_shards > 1)
		snprintf(src->format, sizeof(src->format), "tensorflow checkpoint (%llu shards)",
				 (unsigned long long) b.n_shards);
	else
		snprintf(src->format, sizeof(src->format), "tensorflow checkpoint");

done:
	free(shard_files);
	free(names);
	bundle_free(&b);
	return st;
}

fb_status
fb_source_open_tf(const char *dir, const char *index_file, fb_source **out,
				  fb_error *err)
{
	return fb_source_open_file(dir, index_file, "tensorflow checkpoint",
							   fb_tf_add_bundle, out, err);
}
