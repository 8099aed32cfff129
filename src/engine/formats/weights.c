/*
 * weights.c — which weight files of a model directory are read, and the
 * safetensors readers of the tensor source (fb_source.h).
 *
 * Precedence, first present wins (as transformers' from_pretrained, which
 * also prefers safetensors):
 *
 *   1. model.safetensors
 *   2. model.safetensors.index.json   (sharded safetensors)
 *   3. pytorch_model.bin              (torch.save: zip or legacy)
 *   4. pytorch_model.bin.index.json   (sharded pytorch_model.bin)
 *   5. a TensorFlow checkpoint: the one PREFIX.index in the directory
 *      (with several, the one the "checkpoint" file names), and its
 *      PREFIX.data-NNNNN-of-MMMMM shards.
 *
 * None of them is FB_ERR_IO.  When more than one is present, the loader
 * may compare the tensors it used with each other candidate
 * (fb_source_check_alternates) and report any difference.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

#include "fb_source.h"
#include "fb_tfbundle.h"
#include "fb_torchbin.h"

typedef enum wkind
{
	W_ST,
	W_ST_SHARDED,
	W_BIN,
	W_BIN_SHARDED,
	W_TF
} wkind;

typedef struct wcand
{
	wkind		kind;
	char		file[256];
} wcand;

#define MAX_CANDIDATES 5

/* ------------------------------------------------------------------------
 * safetensors
 * ------------------------------------------------------------------------
 */

/* The tensors of mapped file fi, parsed as safetensors. */
static fb_status
add_safetensors(fb_source *src, int fi, fb_error *err)
{
	const fb_source_file *f = &src->files[fi];
	fb_safetensors *st = NULL;
	fb_status	rc;

	rc = fb_safetensors_parse(f->map, f->len, f->path, &st, err);
	if (rc != FB_OK)
		return rc;
	for (size_t i = 0; i < st->n_tensors && rc == FB_OK; i++)
	{
		const fb_st_tensor *s = &st->tensors[i];
		fb_tensor  *t = fb_source_add_tensor(src, s->name, NULL, err);

		if (t == NULL)
		{
			rc = err ? err->status : FB_ERR_NOMEM;
			break;
		}
		t->file = fi;
		t->dtype = s->dtype;
		t->ndim = s->ndim;
		memcpy(t->shape, s->shape, sizeof(int64_t) * (size_t) s->ndim);
		t->base = s->data;
		t->storage_elems = s->n_elems;
		fb_tensor_set_contiguous(t);
	}
	fb_safetensors_close(st);	/* the mapping belongs to the source */
	return rc;
}

fb_status
fb_source_open_safetensors(const char *dir, const char *file, fb_source **out,
						   fb_error *err)
{
	return fb_source_open_file(dir, file, "safetensors", add_safetensors, out, err);
}

/* ------------------------------------------------------------------------
 * Sharded checkpoints: INDEX.json {"metadata": {...}, "weight_map":
 * {"tensor name": "shard file name", ...}}
 * ------------------------------------------------------------------------
 */

/* A shard's name: a plain file of the directory with the right suffix. */
static bool
valid_shard_name(const char *s, const char *suffix)
{
	size_t		n = strlen(s),
				k = strlen(suffix);

	return n > k && n < 256 && s[0] != '.' && strchr(s, '/') == NULL &&
		strcmp(s + n - k, suffix) == 0;
}

static int
str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

typedef struct stored_ref
{
	const char *name;
	int			file;
} stored_ref;

static int
stored_ref_cmp(const void *a, const void *b)
{
	return strcmp(((const stored_ref *) a)->name, ((const stored_ref *) b)->name);
}

static fb_status
open_sharded(const char *dir, const char *index, bool torch, fb_source **out,
			 fb_error *err)
{
	fb_source  *src = fb_source_new(dir, torch ? "pytorch" : "safetensors");
	const char *suffix = torch ? ".bin" : ".safetensors";
	struct json_tokener *tok = NULL;
	json_object *root = NULL,
			   *map;
	const char **shards = NULL;
	stored_ref *refs = NULL;
	size_t		n_names = 0,
				n_shards = 0;
	const char *path;
	int			fi;
	fb_status	st = FB_OK;

	*out = NULL;
	if (src == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	fi = fb_source_add_file(src, index, err);
	if (fi < 0)
	{
		st = err ? err->status : FB_ERR_IO;
		goto done;
	}
	path = src->files[fi].path;
	if (src->files[fi].len > FB_SHARD_INDEX_MAX_BYTES ||
		memchr(src->files[fi].map, '\0', src->files[fi].len) != NULL)
	{
		st = fb_fail(err, FB_ERR_CORRUPT, "\"%s\": over %u bytes or not text", path,
					 FB_SHARD_INDEX_MAX_BYTES);
		goto done;
	}
	tok = json_tokener_new_ex(8);
	if (tok == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, (const char *) src->files[fi].map, (int) src->files[fi].len);
	if (root == NULL || json_tokener_get_error(tok) != json_tokener_success ||
		!json_object_is_type(root, json_type_object) ||
		!json_object_object_get_ex(root, "weight_map", &map) ||
		!json_object_is_type(map, json_type_object))
	{
		st = fb_fail(err, FB_ERR_CORRUPT, "\"%s\": not a JSON object with a \"weight_map\" object", path);
		goto done;
	}

	/* the distinct shard files, sorted (the order transformers loads them) */
	n_names = (size_t) json_object_object_length(map);
	shards = malloc((n_names + 1) * sizeof(*shards));
	if (shards == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}
	{
		json_object_iter it;

		json_object_object_foreachC(map, it)
		{
			if (!json_object_is_type(it.val, json_type_string) ||
				!valid_shard_name(json_object_get_string(it.val), suffix))
			{
				st = fb_fail(err, FB_ERR_CORRUPT,
							 "\"%s\": tensor \"%.200s\" maps to a file that is not a %s file of the directory",
							 path, it.key, suffix);
				goto done;
			}
			shards[n_shards++] = json_object_get_string(it.val);
		}
	}
	qsort(shards, n_shards, sizeof(*shards), str_ptr_cmp);
	{
		size_t		k = 0;

		for (size_t i = 0; i < n_shards; i++)
			if (k == 0 || strcmp(shards[k - 1], shards[i]) != 0)
				shards[k++] = shards[i];
		n_shards = k;
	}
	if (n_shards == 0)
	{
		st = fb_fail(err, FB_ERR_CORRUPT, "\"%s\": the weight map is empty", path);
		goto done;
	}
	for (size_t i = 0; i < n_shards && st == FB_OK; i++)
	{
		int			si = fb_source_add_file(src, shards[i], err);

		if (si < 0)
			st = err ? err->status : FB_ERR_IO;
		else if (torch)
			st = fb_torch_add_file(src, si, err);
		else
			st = add_safetensors(src, si, err);
	}
	if (st != FB_OK)
		goto done;

	/* every tensor of the map is in the shard the map names */
	refs = malloc((src->n_tensors + 1) * sizeof(*refs));
	if (refs == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < src->n_tensors; i++)
	{
		refs[i].name = src->tensors[i].stored;
		refs[i].file = src->tensors[i].file;
	}
	qsort(refs, src->n_tensors, sizeof(*refs), stored_ref_cmp);
	{
		json_object_iter it;

		json_object_object_foreachC(map, it)
		{
			stored_ref	key = {it.key, 0};
			const stored_ref *r = bsearch(&key, refs, src->n_tensors, sizeof(*refs), stored_ref_cmp);

			if (r == NULL || strcmp(src->files[r->file].name, json_object_get_string(it.val)) != 0)
			{
				st = fb_fail(err, FB_ERR_CORRUPT, "\"%s\": tensor \"%.200s\" is not in %s",
							 path, it.key, json_object_get_string(it.val));
				goto done;
			}
		}
	}
	snprintf(src->format, sizeof(src->format), "%s (%zu shards)",
			 torch ? (fb_torch_is_zip(src, 1) ? "pytorch zip" : "pytorch legacy") : "safetensors",
			 n_shards);
	st = fb_source_finish(src, err);

done:
	free(refs);
	free(shards);
	json_object_put(root);
	if (tok != NULL)
		json_tokener_free(tok);
	if (st != FB_OK)
	{
		fb_source_close(src);
		return st;
	}
	*out = src;
	return FB_OK;
}

/* ------------------------------------------------------------------------
 * The directory
 * ------------------------------------------------------------------------
 */

static bool
exists_in(const char *dir, const char *name)
{
	char	   *p = fb_path_join(dir, name);
	bool		r = p != NULL && fb_file_exists(p);

	free(p);
	return r;
}

/*
 * The TensorFlow checkpoint of the directory: its one *.index file, or
 * the one named by the "checkpoint" file's model_checkpoint_path.
 * Returns 0 with file set, 1 when there is none, -1 with err set.
 */
static int
find_tf_index(const char *dir, char *file, size_t cap, fb_error *err)
{
	DIR		   *d = opendir(dir);
	struct dirent *e;
	int			n = 0;
	char		first[256] = "",
				second[256] = "";

	if (d == NULL)
		return 1;
	while ((e = readdir(d)) != NULL)
	{
		size_t		len = strlen(e->d_name);

		if (len <= 6 || len >= sizeof(first) || e->d_name[0] == '.' ||
			strcmp(e->d_name + len - 6, ".index") != 0 || !exists_in(dir, e->d_name))
			continue;
		if (n == 0)
			snprintf(first, sizeof(first), "%s", e->d_name);
		else if (n == 1)
			snprintf(second, sizeof(second), "%s", e->d_name);
		n++;
	}
	closedir(d);
	if (n == 0)
		return 1;
	if (n == 1)
	{
		snprintf(file, cap, "%s", first);
		return 0;
	}

	/* several: the "checkpoint" text proto names the latest */
	{
		char	   *path = fb_path_join(dir, "checkpoint");
		char	   *text = NULL;
		size_t		len = 0;
		fb_error	ignore;
		const char *p,
				   *q;

		if (path != NULL && fb_read_file(path, 1 << 20, &text, &len, &ignore) == FB_OK &&
			(p = strstr(text, "model_checkpoint_path:")) != NULL &&
			(p = strchr(p, '"')) != NULL && (q = strchr(p + 1, '"')) != NULL &&
			q - p - 1 > 0 && q - p - 1 < 1000)
		{
			/* the saver may have written an absolute path of the author's
			 * machine: only the file name counts, in this directory */
			for (const char *s = p + 1; s < q; s++)
				if (*s == '/')
					p = s;
			if (q - p - 1 <= 0 || q - p - 1 >= 200)
				p = q - 1;

			snprintf(file, cap, "%.*s.index", (int) (q - p - 1), p + 1);
			free(text);
			free(path);
			if (exists_in(dir, file))
				return 0;
			fb_fail(err, FB_ERR_IO, "%s: the \"checkpoint\" file names %s, which is missing", dir, file);
			return -1;
		}
		free(text);
		free(path);
	}
	fb_fail(err, FB_ERR_CORRUPT,
			"%s: %d TensorFlow checkpoints (%s, %s, ...) and no \"checkpoint\" file naming one; keep one",
			dir, n, first, second);
	return -1;
}

/* Every weight candidate present, in precedence order. */
static int
list_candidates(const char *dir, wcand *c, fb_error *err, bool *tf_error)
{
	static const struct
	{
		wkind		kind;
		const char *file;
	}			fixed[] = {
		{W_ST, "model.safetensors"},
		{W_ST_SHARDED, "model.safetensors.index.json"},
		{W_BIN, "pytorch_model.bin"},
		{W_BIN_SHARDED, "pytorch_model.bin.index.json"},
	};
	int			n = 0;
	char		tf[256];

	*tf_error = false;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (exists_in(dir, fixed[i].file))
		{
			c[n].kind = fixed[i].kind;
			snprintf(c[n].file, sizeof(c[n].file), "%s", fixed[i].file);
			n++;
		}
	switch (find_tf_index(dir, tf, sizeof(tf), err))
	{
		case 0:
			c[n].kind = W_TF;
			snprintf(c[n].file, sizeof(c[n].file), "%s", tf);
			n++;
			break;
		case -1:
			*tf_error = true;
			break;
		default:
			break;
	}
	return n;
}

static fb_status
open_candidate(const char *dir, const wcand *c, fb_source **out, fb_error *err)
{
	switch (c->kind)
	{
		case W_ST:
			return fb_source_open_safetensors(dir, c->file, out, err);
		case W_ST_SHARDED:
			return open_sharded(dir, c->file, false, out, err);
		case W_BIN:
			return fb_source_open_torch(dir, c->file, out, err);
		case W_BIN_SHARDED:
			return open_sharded(dir, c->file, true, out, err);
		case W_TF:
			return fb_source_open_tf(dir, c->file, out, err);
	}
	return fb_fail(err, FB_ERR_INVALID, "unknown weight format");
}

fb_status
fb_source_open_dir(const char *dir, fb_source **out, fb_error *err)
{
	wcand		c[MAX_CANDIDATES];
	bool		tf_error;
	int			n;

	*out = NULL;
	n = list_candidates(dir, c, err, &tf_error);
	if (n == 0)
	{
		if (tf_error)
			return err ? err->status : FB_ERR_CORRUPT;
		return fb_fail(err, FB_ERR_IO,
					   "%s: no weights (model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json or a TensorFlow checkpoint PREFIX.index)",
					   dir);
	}
	return open_candidate(dir, &c[0], out, err);
}

fb_status
fb_source_check_alternates(const char *dir, fb_source *chosen, char *notice,
						   size_t cap, fb_error *err)
{
	wcand		c[MAX_CANDIDATES];
	bool		tf_error;
	fb_error	ignore;
	size_t		used = 0;
	int			n;

	notice[0] = '\0';
	n = list_candidates(dir, c, &ignore, &tf_error);
	for (int i = 0; i < n; i++)
	{
		fb_source  *alt = NULL;
		fb_error	aerr;
		char		why[FB_ERRMSG_MAX + 32];
		int			same = 1;
		fb_status	st;

		if (chosen->n_files > 0 && strcmp(c[i].file, chosen->files[0].name) == 0)
			continue;
		if (open_candidate(dir, &c[i], &alt, &aerr) != FB_OK)
		{
			same = 0;
			snprintf(why, sizeof(why), "it cannot be read: %.400s", aerr.msg);
		}
		else if ((st = fb_source_compare(chosen, alt, &same, why, sizeof(why), err)) != FB_OK)
		{
			fb_source_close(alt);
			return st;
		}
		fb_source_close(alt);
		if (!same && used < cap)
			used += (size_t) snprintf(notice + used, cap - used,
									  "%s%s is also present and differs from %s (%s); %s was loaded",
									  used ? "; " : "", c[i].file,
									  chosen->files[0].name, why, chosen->files[0].name);
	}
	return FB_OK;
}
