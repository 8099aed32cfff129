/*
 * torchbin.c — pytorch_model.bin as a tensor source, both serialisations
 * torch.save has written:
 *
 *  - zip (PyTorch >= 1.6): an archive with one top-level folder holding
 *    data.pkl (the pickled state dict, storages as persistent ids
 *    ('storage', type, key, location, numel)), data/<key> (each storage's
 *    raw bytes, stored uncompressed), version and, since 1.13, byteorder;
 *  - legacy (before 1.6, or _use_new_zipfile_serialization=False): five
 *    pickles back to back — the magic number 0x1950a86a20f9469cfc6c, the
 *    protocol version 1001, a sys-info dict (byte order, C type sizes), the
 *    state dict (persistent ids with a sixth, view-metadata slot), the
 *    sorted list of storage keys — then, for each key in that order, an
 *    8-byte little-endian element count and the storage's raw bytes.
 *
 * Tensors are views: (storage, element offset, sizes, strides), so tied
 * weights share one storage and transposed or sliced tensors read through
 * their strides (fb_source.h checks every view against its storage).
 * Storages are read in place from the file mapping; zip entries carry a
 * CRC-32 that is verified on first use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_pickle.h"
#include "fb_source.h"
#include "fb_torchbin.h"
#include "fb_zip.h"

#define TORCH_LEGACY_PROTOCOL 1001

/* 0x1950a86a20f9469cfc6c, as LONG1 writes it (little-endian) */
static const uint8_t torch_magic[10] = {
	0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19
};

/* Where each storage of the pickle lies, by its index in the pickle. */
typedef struct storage_loc
{
	const uint8_t *data;
	int			check;			/* -1: none (legacy) or not created yet */
	const fb_zip_entry *entry;	/* zip */
} storage_loc;

static fb_status
tb_fail(const char *file, fb_error *err, const char *fmt,...) FB_PRINTF(3, 4);

static fb_status
tb_fail(const char *file, fb_error *err, const char *fmt,...)
{
	char		buf[FB_ERRMSG_MAX];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return fb_fail(err, FB_ERR_CORRUPT, "\"%s\": %s", file, buf);
}

static size_t
storage_index(const fb_pickle *pk, const fb_pk_obj *s)
{
	for (size_t i = 0; i < fb_pickle_n_storages(pk); i++)
		if (fb_pickle_storage(pk, i) == s)
			return i;
	return SIZE_MAX;
}

/*
 * The tensors of the state dict: the root dict, or its "state_dict" entry
 * when that is a dict (training checkpoints); values that are not tensors
 * are ignored.
 */
static fb_status
add_tensors(fb_source *src, int fi, const fb_pickle *pk, const fb_pk_obj *root,
			storage_loc *locs, const fb_zip *z, const char *record,
			fb_error *err)
{
	const char *file = src->files[fi].path;
	const fb_pk_obj *sd;

	if (root->kind != FB_PK_DICT)
		return tb_fail(file, err, "pickle \"%s\" does not hold a dict of tensors", record);
	sd = fb_pk_dict_get(root, "state_dict");
	if (sd == NULL || sd->kind != FB_PK_DICT)
		sd = root;
	for (size_t i = 0; i + 1 < sd->n; i += 2)
	{
		const fb_pk_obj *k = sd->items[i];
		const fb_pk_obj *v = sd->items[i + 1];
		char		name[FB_ST_MAX_NAME_BYTES + 1];
		size_t		si;
		fb_tensor  *t;

		if (v->kind != FB_PK_TENSOR)
			continue;
		if (k->kind != FB_PK_STR || k->len == 0 || k->len > FB_ST_MAX_NAME_BYTES ||
			memchr(k->s, '\0', k->len) != NULL)
			return tb_fail(file, err, "pickle \"%s\": a tensor's key is not a name", record);
		memcpy(name, k->s, k->len);
		name[k->len] = '\0';
		si = storage_index(pk, v->storage);
		if (si == SIZE_MAX || locs[si].data == NULL)
			return tb_fail(file, err, "pickle \"%s\": tensor \"%.200s\" has no storage", record, name);

		/* zip: the storage's CRC, verified the first time it is read */
		if (z != NULL && locs[si].check < 0)
		{
			char		what[FB_ST_MAX_NAME_BYTES + 32];

			snprintf(what, sizeof(what), "entry \"%s\"", locs[si].entry->name);
			locs[si].check = fb_source_add_check(src, fi, locs[si].entry->data,
												 (size_t) locs[si].entry->size,
												 locs[si].entry->crc32, FB_CHECK_CRC32,
												 what, err);
			if (locs[si].check < 0)
				return err ? err->status : FB_ERR_NOMEM;
		}
		t = fb_source_add_tensor(src, name, NULL, err);
		if (t == NULL)
			return err ? err->status : FB_ERR_NOMEM;
		t->file = fi;
		t->dtype = v->dtype;
		t->ndim = v->ndim;
		for (int d = 0; d < v->ndim; d++)
		{
			t->shape[d] = v->shape[d];
			t->stride[d] = v->stride[d];
		}
		t->base = locs[si].data;
		t->storage_elems = v->storage->numel;
		t->offset = (uint64_t) v->offset;
		t->check = locs[si].check;
	}
	return FB_OK;
}

static fb_status
add_zip(fb_source *src, int fi, fb_error *err)
{
	const fb_source_file *f = &src->files[fi];
	fb_zip	   *z = NULL;
	fb_pickle  *pk = NULL;
	const fb_pk_obj *root;
	const fb_zip_entry *pkl = NULL;
	storage_loc *locs = NULL;
	char		prefix[256];
	char		name[512];
	fb_status	st;

	if ((st = fb_zip_open(f->map, f->len, f->path, &z, err)) != FB_OK)
		return st;

	/* one top-level folder holding data.pkl */
	for (size_t i = 0; i < z->n_entries; i++)
	{
		const char *n = z->entries[i].name;
		const char *slash = strchr(n, '/');

		if (slash != NULL && strcmp(slash, "/data.pkl") == 0)
		{
			if (pkl != NULL)
			{
				st = tb_fail(f->path, err, "zip archive holds two data.pkl records");
				goto done;
			}
			pkl = &z->entries[i];
		}
	}
	if (pkl == NULL || strchr(pkl->name, '/') - pkl->name >= (ptrdiff_t) sizeof(prefix))
	{
		st = tb_fail(f->path, err, "zip archive without a data.pkl record (not written by torch.save)");
		goto done;
	}
	snprintf(prefix, sizeof(prefix), "%.*s", (int) (strchr(pkl->name, '/') - pkl->name), pkl->name);

	/* a big-endian writer's storages would need byte swapping */
	snprintf(name, sizeof(name), "%s/byteorder", prefix);
	{
		const fb_zip_entry *bo = fb_zip_find(z, name);

		if (bo != NULL)
		{
			if ((st = fb_zip_verify(bo, f->path, err)) != FB_OK)
				goto done;
			if (bo->size != 6 || memcmp(bo->data, "little", 6) != 0)
			{
				st = fb_fail(err, FB_ERR_UNSUPPORTED, "\"%s\": storages are not little-endian", f->path);
				goto done;
			}
		}
	}

	if ((st = fb_zip_verify(pkl, f->path, err)) != FB_OK)
		goto done;
	if ((st = fb_pickle_load(pkl->data, (size_t) pkl->size, FB_PK_PID_ZIP, f->path,
							 pkl->name, &pk, &root, NULL, err)) != FB_OK)
		goto done;

	/* each storage is the entry <prefix>/data/<key>, of exactly its size */
	locs = calloc(fb_pickle_n_storages(pk) + 1, sizeof(*locs));
	if (locs == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < fb_pickle_n_storages(pk); i++)
	{
		const fb_pk_obj *s = fb_pickle_storage(pk, i);
		const fb_zip_entry *e;
		size_t		esize = fb_dtype_size(s->dtype);

		snprintf(name, sizeof(name), "%s/data/%.*s", prefix, (int) s->len, (const char *) s->s);
		e = fb_zip_find(z, name);
		if (e == NULL)
		{
			st = tb_fail(f->path, err, "storage record \"%s\" is missing", name);
			goto done;
		}
		if (s->numel > UINT64_MAX / esize || e->size != s->numel * esize)
		{
			st = tb_fail(f->path, err, "storage record \"%s\" has %llu bytes, its %llu elements of %s need %llu",
						 name, (unsigned long long) e->size, (unsigned long long) s->numel,
						 fb_dtype_name(s->dtype),
						 (unsigned long long) (s->numel > UINT64_MAX / esize ? 0 : s->numel * esize));
			goto done;
		}
		locs[i].data = e->data;
		locs[i].entry = e;
		locs[i].check = -1;
	}
	st = add_tensors(src, fi, pk, root, locs, z, pkl->name, err);

done:
	free(locs);
	fb_pickle_free(pk);
	fb_zip_free(z);
	return st;
}

/* One of the legacy format's leading pickles, with no persistent ids. */
static fb_status
legacy_pickle(const fb_source_file *f, size_t *pos, const char *what,
			  fb_pickle **pk, const fb_pk_obj **root, fb_pk_pid pid, fb_error *err)
{
	size_t		used = 0;
	fb_status	st = fb_pickle_load(f->map + *pos, f->len - *pos, pid, f->path, what,
									pk, root, &used, err);

	*pos += used;
	return st;
}

static fb_status
add_legacy(fb_source *src, int fi, fb_error *err)
{
	const fb_source_file *f = &src->files[fi];
	fb_pickle  *hdr = NULL,
			   *pk = NULL,
			   *keys_pk = NULL;
	const fb_pk_obj *v,
			   *root,
			   *keys;
	storage_loc *locs = NULL;
	size_t		pos = 0;
	fb_status	st;

	if (f->len < 2 || f->map[0] != 0x80)
		return tb_fail(f->path, err, "neither a zip archive nor a legacy torch.save stream");

	/* magic number, protocol version, sys info */
	if ((st = legacy_pickle(f, &pos, "magic number", &hdr, &v, FB_PK_PID_NONE, err)) != FB_OK)
		return st;
	if (v->kind != FB_PK_BIGINT || v->len != sizeof(torch_magic) ||
		memcmp(v->s, torch_magic, sizeof(torch_magic)) != 0)
		st = tb_fail(f->path, err, "not a torch.save file (wrong magic number)");
	fb_pickle_free(hdr);
	hdr = NULL;
	if (st == FB_OK &&
		(st = legacy_pickle(f, &pos, "protocol version", &hdr, &v, FB_PK_PID_NONE, err)) == FB_OK)
	{
		if (v->kind != FB_PK_INT || v->i != TORCH_LEGACY_PROTOCOL)
			st = fb_fail(err, FB_ERR_UNSUPPORTED, "\"%s\": legacy protocol version is not %d",
						 f->path, TORCH_LEGACY_PROTOCOL);
		fb_pickle_free(hdr);
		hdr = NULL;
	}
	if (st == FB_OK &&
		(st = legacy_pickle(f, &pos, "sys info", &hdr, &v, FB_PK_PID_NONE, err)) == FB_OK)
	{
		const fb_pk_obj *le = fb_pk_dict_get(v, "little_endian");

		if (le == NULL || le->kind != FB_PK_BOOL)
			st = tb_fail(f->path, err, "sys info without little_endian");
		else if (!le->i)
			st = fb_fail(err, FB_ERR_UNSUPPORTED, "\"%s\": storages are not little-endian", f->path);
		fb_pickle_free(hdr);
		hdr = NULL;
	}
	if (st != FB_OK)
		return st;

	/* the state dict, then the storage keys */
	if ((st = legacy_pickle(f, &pos, "state dict", &pk, &root, FB_PK_PID_LEGACY, err)) != FB_OK)
		return st;
	if ((st = legacy_pickle(f, &pos, "storage keys", &keys_pk, &keys, FB_PK_PID_NONE, err)) != FB_OK)
		goto done;
	if (keys->kind != FB_PK_LIST)
	{
		st = tb_fail(f->path, err, "storage keys are not a list");
		goto done;
	}
	locs = calloc(fb_pickle_n_storages(pk) + 1, sizeof(*locs));
	if (locs == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}

	/* each listed storage: 8-byte element count, then its bytes */
	for (size_t k = 0; k < keys->n; k++)
	{
		const fb_pk_obj *key = keys->items[k];
		const fb_pk_obj *s = NULL;
		size_t		si = 0,
					esize;
		uint64_t	numel = 0;

		if (key->kind != FB_PK_STR)
		{
			st = tb_fail(f->path, err, "storage key %zu is not a string", k);
			goto done;
		}
		for (si = 0; si < fb_pickle_n_storages(pk); si++)
		{
			s = fb_pickle_storage(pk, si);
			if (s->len == key->len && memcmp(s->s, key->s, key->len) == 0)
				break;
		}
		if (si == fb_pickle_n_storages(pk))
		{
			st = tb_fail(f->path, err, "storage \"%.*s\" is listed but no tensor uses it",
						 (int) (key->len > 64 ? 64 : key->len), (const char *) key->s);
			goto done;
		}
		if (locs[si].data != NULL)
		{
			st = tb_fail(f->path, err, "storage \"%.*s\" is listed twice",
						 (int) s->len, (const char *) s->s);
			goto done;
		}
		if (f->len - pos < 8)
		{
			st = tb_fail(f->path, err, "file ends before storage \"%.*s\" (byte %zu)",
						 (int) s->len, (const char *) s->s, pos);
			goto done;
		}
		for (int i = 7; i >= 0; i--)
			numel = numel << 8 | f->map[pos + (size_t) i];
		pos += 8;
		esize = fb_dtype_size(s->dtype);
		if (numel != s->numel)
		{
			st = tb_fail(f->path, err, "storage \"%.*s\" holds %llu elements, the state dict says %llu",
						 (int) s->len, (const char *) s->s, (unsigned long long) numel,
						 (unsigned long long) s->numel);
			goto done;
		}
		if (numel > (uint64_t) (f->len - pos) / esize)
		{
			st = tb_fail(f->path, err, "storage \"%.*s\" (%llu elements of %s at byte %zu) runs past the end of the file",
						 (int) s->len, (const char *) s->s, (unsigned long long) numel,
						 fb_dtype_name(s->dtype), pos);
			goto done;
		}
		locs[si].data = f->map + pos;
		locs[si].check = -1;
		pos += (size_t) numel * esize;
	}
	if (pos != f->len)
	{
		st = tb_fail(f->path, err, "%zu bytes after the last storage", f->len - pos);
		goto done;
	}
	st = add_tensors(src, fi, pk, root, locs, NULL, "state dict", err);

done:
	free(locs);
	fb_pickle_free(pk);
	fb_pickle_free(keys_pk);
	return st;
}

fb_status
fb_torch_add_file(fb_source *src, int fi, fb_error *err)
{
	const fb_source_file *f = &src->files[fi];
	bool		zip = fb_zip_sniff(f->map, f->len);

	/* a source of one .bin says which serialisation it is */
	if (strcmp(src->format, "pytorch") == 0)
		snprintf(src->format, sizeof(src->format), "%s", zip ? "pytorch zip" : "pytorch legacy");
	return zip ? add_zip(src, fi, err) : add_legacy(src, fi, err);
}

bool
fb_torch_is_zip(const fb_source *src, int fi)
{
	return fb_zip_sniff(src->files[fi].map, src->files[fi].len);
}

fb_status
fb_source_open_torch(const char *dir, const char *file, fb_source **out,
					 fb_error *err)
{
	return fb_source_open_file(dir, file, "pytorch", fb_torch_add_file, out, err);
}
