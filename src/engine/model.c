/*
 * model.c — opens a Hugging Face model directory and builds the fp32
 * parameter block.
 *
 * Weights are copied (and converted from fp16/bf16) out of the mapped
 * weight files into one aligned allocation, after which the mappings are
 * released.  The files are read through a tensor source (formats/
 * fb_source.h), so this loader sees transformers tensor names and fp32
 * whatever the directory holds: safetensors (one file or shards),
 * pytorch_model.bin (zip or legacy torch.save) or a TensorFlow checkpoint.  This costs one copy per process, but a file truncated or
 * replaced while a model is loaded can never fault (SIGBUS) a running
 * forward pass, and the fast paths get aligned, pre-arranged weights
 * (query/key/value stacked into one GEMM).
 *
 * Tensor names follow transformers: BertModel / BertFor*, ElectraModel /
 * ElectraFor*, AlbertModel / AlbertFor*, with or without the base-model
 * prefix ("bert.", "roberta." for BERT, "electra.", "albert."); tensors the
 * model does not need (MLM / NSP heads of *ForPreTraining and *ForMaskedLM
 * checkpoints, position_ids buffers) are left unused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_model.h"
#include "formats/fb_source.h"
#include "formats/fb_tfbundle.h"

fb_model_options
fb_model_default_options(void)
{
	fb_model_options o;

	memset(&o, 0, sizeof(o));
	o.max_batch_tokens = FB_DEFAULT_MAX_BATCH_TOKENS;
	return o;
}

/* Loader state while the parameter block is filled. */
/* What an inspection records about one tensor the model needs. */
typedef struct need_rec
{
	char	   *name;
	int64_t		d0,
				d1;
	const fb_tensor *found;		/* NULL: missing */
} need_rec;

typedef struct loader
{
	fb_source  *src;
	const char *path;			/* the weight file, for messages */
	const char *prefix;			/* "bert." or "" */
	need_rec   *needs;			/* inspection: record instead of failing */
	size_t		n_needs;
	size_t		cap_needs;
	bool		inspect;
	bool		dry;			/* first pass: check shapes, count floats */
	bool		to_mat;			/* reserve in the layer-matrix block */
	size_t		counted;		/* floats a real pass will need */
	size_t		mat_counted;	/* of which in the layer-matrix block */
	float	   *next;			/* next free float in the block */
	float	   *end;
	float	   *mat_next;		/* next free float in the layer-matrix block */
	float	   *mat_end;
	int			n_f16,
				n_bf16,
				n_f32;
} loader;

/* LayerNorm "gamma"/"beta" names of old TF-converted checkpoints are
 * renamed by the source, as transformers does on load. */
static const fb_tensor *
find_tensor(const loader *ld, const char *name, bool with_prefix)
{
	char		full[512];

	snprintf(full, sizeof(full), "%s%s", with_prefix ? ld->prefix : "", name);
	return fb_source_find(ld->src, full);
}

/* Inspection: notes a needed tensor (found with the wrong shape, or not). */
static fb_status
note_need(loader *ld, const char *name, bool with_prefix, int64_t d0, int64_t d1,
		  const fb_tensor *found, fb_error *err)
{
	need_rec   *r;

	if (ld->n_needs == ld->cap_needs)
	{
		size_t		cap = ld->cap_needs ? ld->cap_needs * 2 : 32;
		need_rec   *n = realloc(ld->needs, cap * sizeof(*n));

		if (n == NULL)
			return fb_fail(err, FB_ERR_NOMEM, "out of memory");
		ld->needs = n;
		ld->cap_needs = cap;
	}
	r = &ld->needs[ld->n_needs];
	r->name = malloc(strlen(name) + strlen(ld->prefix) + 1);
	if (r->name == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	sprintf(r->name, "%s%s", with_prefix ? ld->prefix : "", name);
	r->d0 = d0;
	r->d1 = d1;
	r->found = found;
	ld->n_needs++;
	return FB_OK;
}

/*
 * Reserves n floats, 64-byte aligned, in the parameter block or, while
 * ld->to_mat is set, in the layer-matrix block.  The four weight matrices
 * of each layer live apart so that int8 mode can free their fp32 copies
 * once they are quantised (they are ~70 % of a BERT's parameters).
 */
static float *
reserve(loader *ld, size_t n)
{
	static float dry_slot[16];
	float	  **next = ld->to_mat ? &ld->mat_next : &ld->next;
	float	   *end = ld->to_mat ? ld->mat_end : ld->end;
	float	   *p = *next;
	size_t		padded = (n + 15) & ~(size_t) 15;

	if (ld->dry)
	{
		if (ld->to_mat)
			ld->mat_counted += padded;
		else
			ld->counted += padded;
		return dry_slot;		/* never written in a dry pass */
	}
	if ((size_t) (end - p) < padded)
		return NULL;
	*next += padded;
	return p;
}

/*
 * Converts tensor `name` (shape [d0] or [d0, d1]; d1 = 0 for rank 1) into
 * dst after checking its shape against what config.json implies.  A missing
 * optional tensor returns FB_OK with *found = false.
 */
static fb_status
take_into(loader *ld, const char *name, bool with_prefix, int64_t d0, int64_t d1,
		  float *dst, bool *found, fb_error *err)
{
	const fb_tensor *t = find_tensor(ld, name, with_prefix);
	int			rank = d1 > 0 ? 2 : 1;
	fb_status	st;

	if (found != NULL)
		*found = (t != NULL);
	if (t == NULL)
	{
		if (found != NULL)
			return FB_OK;
		if (ld->inspect)
			return note_need(ld, name, with_prefix, d0, d1, NULL, err);
		return fb_fail(err, FB_ERR_CORRUPT, "%s: tensor \"%s%s\" is missing",
					   ld->path, with_prefix ? ld->prefix : "", name);
	}
	t = fb_source_get(ld->src, t->name);	/* marks it used */
	if (t->ndim != rank || t->shape[0] != d0 || (rank == 2 && t->shape[1] != d1))
	{
		if (ld->inspect)
			return note_need(ld, name, with_prefix, d0, d1, t, err);
		char		shape[96] = "";
		size_t		off = 0;

		for (int i = 0; i < t->ndim && off < sizeof(shape) - 24; i++)
			off += (size_t) snprintf(shape + off, sizeof(shape) - off, "%s%lld",
									 i ? ", " : "", (long long) t->shape[i]);
		if (rank == 2)
			return fb_fail(err, FB_ERR_CORRUPT,
						   "%s: tensor \"%.100s\" has shape [%s], config.json implies [%lld, %lld]",
						   ld->path, t->name, shape, (long long) d0, (long long) d1);
		return fb_fail(err, FB_ERR_CORRUPT,
					   "%s: tensor \"%.100s\" has shape [%s], config.json implies [%lld]",
					   ld->path, t->name, shape, (long long) d0);
	}
	if (ld->dry)
		return FB_OK;
	/* messages name the file and the tensor */
	if ((st = fb_source_read_f32(ld->src, t, dst, err)) != FB_OK)
		return st;
	if (t->dtype == FB_DT_F16)
		ld->n_f16++;
	else if (t->dtype == FB_DT_BF16)
		ld->n_bf16++;
	else
		ld->n_f32++;
	return FB_OK;
}

/* take_into() a freshly reserved region; *out = NULL for a missing
 * optional tensor. */
static fb_status
take(loader *ld, const char *name, bool with_prefix, int64_t d0, int64_t d1,
	 bool optional, float **out, fb_error *err)
{
	size_t		n = (size_t) d0 * (size_t) (d1 > 0 ? d1 : 1);
	float	   *dst;
	bool		found = true;
	fb_status	st;

	*out = NULL;
	if (optional && find_tensor(ld, name, with_prefix) == NULL)
		return FB_OK;
	dst = reserve(ld, n);
	if (dst == NULL)
		return fb_fail(err, FB_ERR_CORRUPT, "%s: parameter block overflow at \"%s\"",
					   ld->path, name);
	st = take_into(ld, name, with_prefix, d0, d1, dst, optional ? &found : NULL, err);
	if (st == FB_OK)
		*out = dst;
	return st;
}

/* Query, key and value of one layer stacked into [3H, H] and [3H]. */
static fb_status
take_qkv(loader *ld, const char *base, int H, fb_layer *L, fb_error *err)
{
	static const char *const parts[3] = {"query", "key", "value"};
	char		name[256];
	fb_status	st;

	ld->to_mat = true;
	L->qkv_w = reserve(ld, (size_t) 3 * H * H);
	ld->to_mat = false;
	L->qkv_b = reserve(ld, (size_t) 3 * H);
	if (L->qkv_w == NULL || L->qkv_b == NULL)
		return fb_fail(err, FB_ERR_CORRUPT, "%s: parameter block overflow", ld->path);
	for (int i = 0; i < 3; i++)
	{
		snprintf(name, sizeof(name), "%s.%s.weight", base, parts[i]);
		if ((st = take_into(ld, name, true, H, H,
							ld->dry ? NULL : L->qkv_w + (size_t) i * H * H, NULL, err)) != FB_OK)
			return st;
		snprintf(name, sizeof(name), "%s.%s.bias", base, parts[i]);
		if ((st = take_into(ld, name, true, H, 0,
							ld->dry ? NULL : L->qkv_b + (size_t) i * H, NULL, err)) != FB_OK)
			return st;
	}
	return FB_OK;
}

/* One encoder layer: BERT/ELECTRA "encoder.layer.i", ALBERT's shared
 * "encoder.albert_layer_groups.0.albert_layers.0". */
static fb_status
take_layer(loader *ld, const fb_config *c, int i, fb_layer *L, fb_error *err)
{
	int			H = c->hidden,
				I = c->intermediate;
	char		base[160],
				name[256];
	fb_status	st;

#define TAKE(suffix, d0, d1, dst) \
	do { snprintf(name, sizeof(name), "%s." suffix, base); \
		 if ((st = take(ld, name, true, d0, d1, false, dst, err)) != FB_OK) return st; } while (0)
#define TAKE_MAT(suffix, d0, d1, dst) \
	do { ld->to_mat = true; snprintf(name, sizeof(name), "%s." suffix, base); \
		 st = take(ld, name, true, d0, d1, false, dst, err); \
		 ld->to_mat = false; if (st != FB_OK) return st; } while (0)

	if (c->arch == FB_ARCH_ALBERT)
	{
		snprintf(base, sizeof(base), "encoder.albert_layer_groups.0.albert_layers.0");
		snprintf(name, sizeof(name), "%s.attention", base);
		if ((st = take_qkv(ld, name, H, L, err)) != FB_OK)
			return st;
		TAKE_MAT("attention.dense.weight", H, H, &L->attn_out_w);
		TAKE("attention.dense.bias", H, 0, &L->attn_out_b);
		TAKE("attention.LayerNorm.weight", H, 0, &L->attn_ln_g);
		TAKE("attention.LayerNorm.bias", H, 0, &L->attn_ln_b);
		TAKE_MAT("ffn.weight", I, H, &L->inter_w);
		TAKE("ffn.bias", I, 0, &L->inter_b);
		TAKE_MAT("ffn_output.weight", H, I, &L->out_w);
		TAKE("ffn_output.bias", H, 0, &L->out_b);
		TAKE("full_layer_layer_norm.weight", H, 0, &L->out_ln_g);
		TAKE("full_layer_layer_norm.bias", H, 0, &L->out_ln_b);
		return FB_OK;
	}
	snprintf(base, sizeof(base), "encoder.layer.%d", i);
	snprintf(name, sizeof(name), "%s.attention.self", base);
	if ((st = take_qkv(ld, name, H, L, err)) != FB_OK)
		return st;
	TAKE_MAT("attention.output.dense.weight", H, H, &L->attn_out_w);
	TAKE("attention.output.dense.bias", H, 0, &L->attn_out_b);
	TAKE("attention.output.LayerNorm.weight", H, 0, &L->attn_ln_g);
	TAKE("attention.output.LayerNorm.bias", H, 0, &L->attn_ln_b);
	TAKE_MAT("intermediate.dense.weight", I, H, &L->inter_w);
	TAKE("intermediate.dense.bias", I, 0, &L->inter_b);
	TAKE_MAT("output.dense.weight", H, I, &L->out_w);
	TAKE("output.dense.bias", H, 0, &L->out_b);
	TAKE("output.LayerNorm.weight", H, 0, &L->out_ln_g);
	TAKE("output.LayerNorm.bias", H, 0, &L->out_ln_b);
#undef TAKE
#undef TAKE_MAT
	return FB_OK;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t		a = strlen(s),
				b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/*
 * Which head does the checkpoint carry?  architectures[] decides.  Without
 * it the tensors do: ELECTRA's sequence head has classifier.dense, BERT's
 * and ALBERT's sequence heads read the pooler, so a bare classifier with no
 * pooler is a token classifier.
 */
static fb_head
detect_head(const loader *ld, const fb_config *c)
{
	bool		has_dense = find_tensor(ld, "classifier.dense.weight", false) != NULL;
	bool		has_cls = find_tensor(ld, "classifier.weight", false) != NULL;
	bool		has_pooler = find_tensor(ld, "pooler.dense.weight", true) != NULL ||
		find_tensor(ld, "pooler.weight", true) != NULL;

	if (ends_with(c->architecture, "ForTokenClassification"))
		return FB_HEAD_TOKEN;
	if (ends_with(c->architecture, "ForSequenceClassification"))
		return FB_HEAD_SEQUENCE;
	if (c->architecture[0] != '\0')
		return FB_HEAD_NONE;
	if (has_dense)
		return FB_HEAD_SEQUENCE;
	if (has_cls)
		return has_pooler && c->arch != FB_ARCH_ELECTRA ? FB_HEAD_SEQUENCE : FB_HEAD_TOKEN;
	return FB_HEAD_NONE;
}

/* Walks every tensor the model needs: a dry pass checks shapes and counts
 * floats, the real pass converts them into the block. */
static fb_status
take_all(loader *ld, fb_model *m, fb_error *err)
{
	const fb_config *c = &m->cfg;
	int			H = c->hidden,
				E = c->embedding_size,
				Lb = c->n_labels;
	int			n_stored = c->arch == FB_ARCH_ALBERT ? 1 : c->n_layers;
	fb_status	st;

	if ((st = take(ld, "embeddings.word_embeddings.weight", true, c->vocab_size, E, false, &m->word_emb, err)) != FB_OK ||
		(st = take(ld, "embeddings.position_embeddings.weight", true, c->max_position, E, false, &m->pos_emb, err)) != FB_OK ||
		(st = take(ld, "embeddings.token_type_embeddings.weight", true, c->type_vocab_size, E, false, &m->type_emb, err)) != FB_OK ||
		(st = take(ld, "embeddings.LayerNorm.weight", true, E, 0, false, &m->emb_ln_g, err)) != FB_OK ||
		(st = take(ld, "embeddings.LayerNorm.bias", true, E, 0, false, &m->emb_ln_b, err)) != FB_OK)
		return st;

	if (c->arch == FB_ARCH_ALBERT && ld->src->emb_in_hidden)
	{
		/* brightmart/albert_zh: the source multiplied the factorised word
		 * embeddings out to [V, H]; E = H here and there is no mapping */
	}
	else if (c->arch == FB_ARCH_ALBERT)
	{
		if ((st = take(ld, "encoder.embedding_hidden_mapping_in.weight", true, H, E, false, &m->emb_proj_w, err)) != FB_OK ||
			(st = take(ld, "encoder.embedding_hidden_mapping_in.bias", true, H, 0, false, &m->emb_proj_b, err)) != FB_OK)
			return st;
	}
	else if (c->arch == FB_ARCH_ELECTRA && E != H)
	{
		if ((st = take(ld, "embeddings_project.weight", true, H, E, false, &m->emb_proj_w, err)) != FB_OK ||
			(st = take(ld, "embeddings_project.bias", true, H, 0, false, &m->emb_proj_b, err)) != FB_OK)
			return st;
	}
	else if (E != H)
		return fb_fail(err, FB_ERR_CORRUPT, "%s: embedding_size %d differs from hidden_size %d",
					   ld->path, E, H);

	for (int i = 0; i < n_stored; i++)
	{
		if ((st = take_layer(ld, c, i, &m->layers[i], err)) != FB_OK)
			return st;
	}
	for (int i = n_stored; i < c->n_layers; i++)
		m->layers[i] = m->layers[0];	/* ALBERT shares one layer */

	if (c->arch != FB_ARCH_ELECTRA)
	{
		if ((st = take(ld, "pooler.dense.weight", true, H, H, true, &m->pool_w, err)) != FB_OK)
			return st;
		if (m->pool_w == NULL &&
			(st = take(ld, "pooler.weight", true, H, H, true, &m->pool_w, err)) != FB_OK)
			return st;
		if (m->pool_w != NULL)
		{
			if ((st = take(ld, "pooler.dense.bias", true, H, 0, true, &m->pool_b, err)) != FB_OK)
				return st;
			if (m->pool_b == NULL &&
				(st = take(ld, "pooler.bias", true, H, 0, false, &m->pool_b, err)) != FB_OK)
				return st;
		}
	}

	if (m->info.head == FB_HEAD_NONE)
		return FB_OK;
	if (m->info.head == FB_HEAD_SEQUENCE && c->arch == FB_ARCH_ELECTRA)
	{
		if ((st = take(ld, "classifier.dense.weight", false, H, H, false, &m->cls_dense_w, err)) != FB_OK ||
			(st = take(ld, "classifier.dense.bias", false, H, 0, false, &m->cls_dense_b, err)) != FB_OK ||
			(st = take(ld, "classifier.out_proj.weight", false, Lb, H, false, &m->cls_w, err)) != FB_OK ||
			(st = take(ld, "classifier.out_proj.bias", false, Lb, 0, false, &m->cls_b, err)) != FB_OK)
			return st;
	}
	else
	{
		if ((st = take(ld, "classifier.weight", false, Lb, H, false, &m->cls_w, err)) != FB_OK ||
			(st = take(ld, "classifier.bias", false, Lb, 0, false, &m->cls_b, err)) != FB_OK)
			return st;
	}
	if (m->info.head == FB_HEAD_SEQUENCE && c->arch != FB_ARCH_ELECTRA && m->pool_w == NULL)
		return fb_fail(err, FB_ERR_CORRUPT, "%s: sequence classifier without pooler weights", ld->path);
	if (m->info.head == FB_HEAD_TOKEN)
	{
		/* Optional CRF (pytorch-crf names). */
		if ((st = take(ld, "crf.transitions", false, Lb, Lb, true, &m->crf_trans, err)) != FB_OK)
			return st;
		if (m->crf_trans != NULL &&
			((st = take(ld, "crf.start_transitions", false, Lb, 0, false, &m->crf_start, err)) != FB_OK ||
			 (st = take(ld, "crf.end_transitions", false, Lb, 0, false, &m->crf_end, err)) != FB_OK))
			return st;
	}
	return FB_OK;
}

/* In-place transpose of a row-major [rows, cols] matrix. */
static bool
transpose_inplace(float *a, int rows, int cols)
{
	size_t		n = (size_t) rows * cols;
	float	   *t;

	if (a == NULL)
		return true;
	t = malloc(sizeof(float) * n);
	if (t == NULL)
		return false;
	for (int r = 0; r < rows; r++)
		for (int c = 0; c < cols; c++)
			t[(size_t) c * rows + r] = a[(size_t) r * cols + c];
	memcpy(a, t, sizeof(float) * n);
	free(t);
	return true;
}

/*
 * Linear weights arrive as PyTorch's [out, in]; the forward pass wants
 * [in, out] so every GEMM is y = x W with both operands untransposed, the
 * layout OpenBLAS packs fastest for the thin matrices of short inputs.
 */
static fb_status
transpose_linears(fb_model *m, fb_error *err)
{
	const fb_config *c = &m->cfg;
	int			H = c->hidden,
				I = c->intermediate,
				E = c->embedding_size;
	int			n_stored = c->arch == FB_ARCH_ALBERT ? 1 : c->n_layers;
	bool		ok = true;

	ok &= transpose_inplace(m->emb_proj_w, H, E);
	for (int i = 0; i < n_stored; i++)
	{
		fb_layer   *L = &m->layers[i];

		ok &= transpose_inplace(L->qkv_w, 3 * H, H);
		ok &= transpose_inplace(L->attn_out_w, H, H);
		ok &= transpose_inplace(L->inter_w, I, H);
		ok &= transpose_inplace(L->out_w, H, I);
	}
	ok &= transpose_inplace(m->pool_w, H, H);
	ok &= transpose_inplace(m->cls_dense_w, H, H);
	return ok ? FB_OK : fb_fail(err, FB_ERR_NOMEM, "out of memory transposing weights");
}

/* Base-model prefixes transformers checkpoints use, tried in order. */
static const char *
choose_prefix(const fb_source *src, fb_arch a)
{
	static const char *const bert[] = {"bert.", "roberta.", ""};
	static const char *const albert[] = {"albert.", ""};
	static const char *const electra[] = {"electra.", ""};
	const char *const *cand = a == FB_ARCH_ALBERT ? albert :
		a == FB_ARCH_ELECTRA ? electra : bert;
	int			n = a == FB_ARCH_BERT ? 3 : 2;

	for (int i = 0; i < n; i++)
	{
		char		probe[128];

		snprintf(probe, sizeof(probe), "%sembeddings.word_embeddings.weight", cand[i]);
		if (fb_source_find(src, probe) != NULL)
			return cand[i];
	}
	return "";
}

/*
 * TensorFlow configs name no labels: a classifier's label count is its
 * output matrix's row count (LABEL_0 ...).
 */
static fb_status
labels_from_head(fb_model *m, const loader *ld, fb_error *err)
{
	const fb_tensor *t;

	if (m->cfg.labels_given || m->info.head == FB_HEAD_NONE)
		return FB_OK;
	t = find_tensor(ld, m->info.head == FB_HEAD_SEQUENCE && m->cfg.arch == FB_ARCH_ELECTRA ?
					"classifier.out_proj.weight" : "classifier.weight", false);
	if (t == NULL || t->ndim != 2)
		return FB_OK;			/* reported as missing by the shape checks */
	return fb_config_set_n_labels(&m->cfg, (int) (t->shape[0] > FB_MAX_LABELS ? 0 : t->shape[0]), err);
}

/* The weight files' names and total size, for the model info. */
static fb_status
record_files(fb_model *m, const fb_source *src, fb_error *err)
{
	m->weight_files = calloc((size_t) src->n_files + 1, sizeof(char *));
	if (m->weight_files == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	m->info.weight_file_bytes = 0;
	for (int i = 0; i < src->n_files; i++)
	{
		m->weight_files[i] = strdup(src->files[i].name);
		if (m->weight_files[i] == NULL)
			return fb_fail(err, FB_ERR_NOMEM, "out of memory");
		m->info.weight_file_bytes += src->files[i].len;
	}
	snprintf(m->weight_file, sizeof(m->weight_file), "%s", src->files[0].name);
	snprintf(m->weight_format, sizeof(m->weight_format), "%s", src->format);
	return FB_OK;
}

/* The loader state for a source, head detected, labels settled. */
static fb_status
prepare_loader(fb_model *m, fb_source *src, loader *ld, fb_error *err)
{
	memset(ld, 0, sizeof(*ld));
	ld->src = src;
	ld->path = fb_source_file_name(src, 0);
	ld->prefix = choose_prefix(src, m->cfg.arch);
	if (src->emb_in_hidden)
		m->cfg.embedding_size = m->cfg.hidden;
	m->info.head = detect_head(ld, &m->cfg);
	return labels_from_head(m, ld, err);
}

static fb_status
load_weights(fb_model *m, fb_source *src, fb_error *err)
{
	loader		ld;
	fb_status	rc;

	if ((rc = prepare_loader(m, src, &ld, err)) != FB_OK)
		return rc;
	m->layers = calloc((size_t) m->cfg.n_layers, sizeof(fb_layer));
	if (m->layers == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");

	/* Pass 1: every shape checked against config.json before allocating. */
	ld.dry = true;
	if ((rc = take_all(&ld, m, err)) != FB_OK)
		return rc;
	m->n_params = ld.counted;
	m->n_mat_params = ld.mat_counted;
	m->params = fb_alloc_aligned(ld.counted * sizeof(float));
	m->mat_params = fb_alloc_aligned(ld.mat_counted * sizeof(float));
	if (m->params == NULL || m->mat_params == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "%s: cannot allocate %zu bytes of parameters",
					   ld.path, (ld.counted + ld.mat_counted) * sizeof(float));
	/* Pass 2: convert. */
	ld.dry = false;
	ld.next = m->params;
	ld.end = m->params + ld.counted;
	ld.mat_next = m->mat_params;
	ld.mat_end = m->mat_params + ld.mat_counted;
	if ((rc = take_all(&ld, m, err)) != FB_OK)
		return rc;
	if ((rc = transpose_linears(m, err)) != FB_OK)
		return rc;
	if ((rc = record_files(m, src, err)) != FB_OK)
		return rc;
	snprintf(m->dtype_name, sizeof(m->dtype_name), "%s",
			 ld.n_f16 > 0 && ld.n_f32 == 0 && ld.n_bf16 == 0 ? "F16" :
			 ld.n_bf16 > 0 && ld.n_f32 == 0 && ld.n_f16 == 0 ? "BF16" :
			 ld.n_f16 + ld.n_bf16 == 0 ? "F32" : "mixed");
	return FB_OK;
}

/*
 * The weights, then the configuration (a TensorFlow checkpoint's layout
 * implies the model_type its bert_config.json leaves out).
 */
static fb_status
open_source_and_config(const char *dir, fb_source **src, fb_config *cfg,
					   char *cfg_file, size_t cap, fb_error *err)
{
	fb_status	st = fb_source_open_dir(dir, src, err);

	if (st != FB_OK)
		return st;
	st = fb_config_open_dir(dir, (*src)->layout != FB_LAYOUT_HF ?
							fb_layout_model_type((*src)->layout) : NULL,
							cfg, cfg_file, cap, err);
	if (st != FB_OK)
	{
		fb_source_close(*src);
		*src = NULL;
	}
	return st;
}

static void
fill_info(fb_model *m)
{
	const fb_config *c = &m->cfg;
	fb_model_info *in = &m->info;

	in->arch = c->arch;
	in->multi_label = c->multi_label;
	in->n_layers = c->n_layers;
	in->hidden = c->hidden;
	in->n_heads = c->n_heads;
	in->intermediate = c->intermediate;
	in->vocab_size = c->vocab_size;
	in->max_position = c->max_position;
	in->type_vocab_size = c->type_vocab_size;
	in->n_labels = in->head == FB_HEAD_NONE ? 0 : c->n_labels;
	in->labels = in->head == FB_HEAD_NONE ? NULL : (const char *const *) c->labels;
	in->act = c->act;
	in->layer_norm_eps = c->layer_norm_eps;
	in->has_pooler = m->pool_w != NULL;
	in->has_crf = m->crf_trans != NULL;
	in->resident_bytes = (m->n_params + (m->mat_params != NULL ? m->n_mat_params : 0)) * sizeof(float);
	in->weight_file = m->weight_file;
	in->weight_dtype = m->dtype_name;
	in->precision = m->binfo.precision;
	in->resident_bytes += m->binfo.host_bytes;
	in->device_bytes = m->binfo.device_bytes;
	in->weight_format = m->weight_format;
	in->weight_files = (const char *const *) m->weight_files;
	in->weight_notice = m->weight_notice;
	in->config_file = m->config_file;
}

int
fb_precision_from_name(const char *name, fb_precision *out)
{
	if (strcmp(name, "fp32") == 0)
		*out = FB_PRECISION_FP32;
	else if (strcmp(name, "int8") == 0)
		*out = FB_PRECISION_INT8;
	else if (strcmp(name, "fp16") == 0)
		*out = FB_PRECISION_FP16;
	else if (strcmp(name, "bf16") == 0)
		*out = FB_PRECISION_BF16;
	else
		return -1;
	return 0;
}

const char *
fb_precision_name(fb_precision p)
{
	switch (p)
	{
		case FB_PRECISION_FP32:
			return "fp32";
		case FB_PRECISION_INT8:
			return "int8";
		case FB_PRECISION_FP16:
			return "fp16";
		case FB_PRECISION_BF16:
			return "bf16";
	}
	return "fp32";
}

/* The backend keeps its own copies of the layer matrices (packed, int8,
 * on a device): drop the row-major fp32 ones. */
static void
release_fp32_matrices(fb_model *m)
{
	for (int l = 0; l < m->cfg.n_layers; l++)
	{
		fb_layer   *L = &m->layers[l];

		L->qkv_w = L->attn_out_w = L->inter_w = L->out_w = NULL;
	}
	fb_free_aligned(m->mat_params);
	m->mat_params = NULL;
}

fb_status
fb_model_open(const char *dir, const fb_model_options *opts, fb_model **out,
			  fb_error *err)
{
	fb_model   *m;
	fb_source  *src = NULL;
	fb_status	st;
	fb_model_options defaults = fb_model_default_options();

	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	m->max_batch_tokens = opts->max_batch_tokens > 0 ? opts->max_batch_tokens
		: FB_DEFAULT_MAX_BATCH_TOKENS;
	m->dir = strdup(dir);
	if (m->dir == NULL)
	{
		fb_model_free(m);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	st = open_source_and_config(dir, &src, &m->cfg, m->config_file,
								sizeof(m->config_file), err);
	if (st != FB_OK)
		goto fail;

	st = fb_tokenizer_open(dir, &m->tok, err);
	if (st != FB_OK)
		goto fail;
	if (fb_tokenizer_vocab_size(m->tok) != (size_t) m->cfg.vocab_size)
	{
		st = fb_fail(err, FB_ERR_CORRUPT,
					 "%s/vocab.txt: %zu tokens, but %s vocab_size is %d",
					 dir, fb_tokenizer_vocab_size(m->tok), m->config_file,
					 m->cfg.vocab_size);
		goto fail;
	}
	{
		fb_special_ids sp = fb_tokenizer_special_ids(m->tok);

		if (sp.cls < 0 || sp.sep < 0 || sp.unk < 0)
		{
			st = fb_fail(err, FB_ERR_CORRUPT,
						 "%s/vocab.txt: [CLS], [SEP] or [UNK] is missing", dir);
			goto fail;
		}
	}

	st = load_weights(m, src, err);
	if (st == FB_OK && opts->check_alternates)
	{
		char		notice[2 * FB_ERRMSG_MAX];

		st = fb_source_check_alternates(dir, src, notice, sizeof(notice), err);
		if (st == FB_OK && notice[0] != '\0' && (m->weight_notice = strdup(notice)) == NULL)
			st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	fb_source_close(src);		/* unmaps: the model keeps its own copy */
	src = NULL;
	if (st != FB_OK)
		goto fail;
	if ((st = fb_model_attach_backend(m, opts, err)) != FB_OK)
		goto fail;
	if (!m->binfo.needs_fp32_layers)
		release_fp32_matrices(m);
	fill_info(m);
	*out = m;
	return FB_OK;

fail:
	fb_source_close(src);
	fb_model_free(m);
	return st;
}

void
fb_model_free(fb_model *m)
{
	if (m == NULL)
		return;
	fb_model_detach_backend(m);
	fb_tokenizer_free(m->tok);
	fb_config_free(&m->cfg);
	fb_free_aligned(m->params);
	fb_free_aligned(m->mat_params);
	free(m->layers);
	free(m->dir);
	if (m->weight_files != NULL)
		for (char **f = m->weight_files; *f != NULL; f++)
			free(*f);
	free(m->weight_files);
	free(m->weight_notice);
	free(m);
}

const fb_model_info *
fb_model_get_info(const fb_model *m)
{
	return &m->info;
}

const fb_tokenizer *
fb_model_tokenizer(const fb_model *m)
{
	return m->tok;
}

int
fb_model_file_may_read(const char *name)
{
	static const char *const suffixes[] = {
		".json", ".safetensors", ".bin", ".index"
	};
	size_t		n = strlen(name);

	if (strcmp(name, "vocab.txt") == 0 || strcmp(name, "checkpoint") == 0 ||
		strstr(name, ".data-") != NULL)
		return 1;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
	{
		size_t		k = strlen(suffixes[i]);

		if (n > k && strcmp(name + n - k, suffixes[i]) == 0)
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Inspection
 * ------------------------------------------------------------------------
 */

/* fb_inspect and the memory it points to. */
typedef struct inspect_owner
{
	fb_inspect	pub;
	char	  **strings;		/* every string the report points to */
	size_t		n_strings;
	size_t		cap_strings;
	char	  **files;
} inspect_owner;

static const char *
keep(inspect_owner *o, const char *s)
{
	char	   *c;

	if (s == NULL)
		return NULL;
	if (o->n_strings == o->cap_strings)
	{
		size_t		cap = o->cap_strings ? o->cap_strings * 2 : 64;
		char	  **a = realloc(o->strings, cap * sizeof(*a));

		if (a == NULL)
			return NULL;
		o->strings = a;
		o->cap_strings = cap;
	}
	c = strdup(s);
	if (c != NULL)
		o->strings[o->n_strings++] = c;
	return c;
}

static void
add_report(inspect_owner *o, const fb_source *src, const fb_tensor *t,
		   const need_rec *need, fb_tensor_use use)
{
	fb_inspect_tensor *r = &o->pub.tensors[o->pub.n_tensors++];

	memset(r, 0, sizeof(*r));
	r->use = use;
	r->name = keep(o, t != NULL ? t->name : need->name);
	if (t != NULL)
	{
		r->stored = keep(o, t->stored);
		r->file = t->file >= 0 ? keep(o, src->files[t->file].name) : "(derived)";
		r->dtype = fb_dtype_name(t->dtype);
		r->ndim = t->ndim;
		memcpy(r->shape, t->shape, sizeof(int64_t) * (size_t) t->ndim);
		r->bytes = t->file >= 0 ? (size_t) t->n_elems * fb_dtype_size(t->dtype) : 0;
	}
	if (need != NULL)
	{
		r->expect[0] = need->d0;
		r->expect[1] = need->d1;
	}
	switch (use)
	{
		case FB_TENSOR_USED:
			o->pub.n_used++;
			break;
		case FB_TENSOR_UNUSED:
			o->pub.n_unused++;
			break;
		case FB_TENSOR_MISSING:
			o->pub.n_missing++;
			break;
		case FB_TENSOR_BAD_SHAPE:
			o->pub.n_bad_shape++;
			break;
	}
}

fb_status
fb_model_inspect(const char *dir, fb_inspect **out, fb_error *err)
{
	inspect_owner *o;
	fb_source  *src = NULL;
	fb_model	tmp;
	loader		ld;
	fb_error	lerr;
	char		cfg_file[256];
	fb_status	st;

	*out = NULL;
	memset(&ld, 0, sizeof(ld));
	memset(&tmp, 0, sizeof(tmp));
	if ((st = fb_source_open_dir(dir, &src, err)) != FB_OK)
		return st;
	o = calloc(1, sizeof(*o));
	if (o == NULL)
	{
		fb_source_close(src);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	o->pub.dir = keep(o, dir);
	o->pub.format = keep(o, src->format);
	o->pub.layout = fb_layout_name(src->layout);
	o->pub.n_skipped = src->n_skipped;
	o->files = calloc((size_t) src->n_files + 1, sizeof(char *));
	for (int i = 0; o->files != NULL && i < src->n_files; i++)
	{
		o->files[i] = (char *) keep(o, src->files[i].name);
		o->pub.weight_bytes += src->files[i].len;
	}
	o->pub.weight_files = (const char *const *) o->files;

	/* what the loader needs, recorded instead of stopping at the first gap */
	st = fb_config_open_dir(dir, src->layout != FB_LAYOUT_HF ? fb_layout_model_type(src->layout) : NULL,
							&tmp.cfg, cfg_file, sizeof(cfg_file), &lerr);
	if (st == FB_OK)
	{
		o->pub.config_file = keep(o, cfg_file);
		o->pub.model_type = keep(o, tmp.cfg.model_type);
		o->pub.architecture = keep(o, tmp.cfg.architecture);
		st = prepare_loader(&tmp, src, &ld, &lerr);
		tmp.layers = calloc((size_t) tmp.cfg.n_layers, sizeof(fb_layer));
		if (st == FB_OK && tmp.layers == NULL)
			st = fb_fail(&lerr, FB_ERR_NOMEM, "out of memory");
		ld.inspect = true;
		ld.dry = true;
		if (st == FB_OK)
			st = take_all(&ld, &tmp, &lerr);
		o->pub.head = tmp.info.head;
		o->pub.n_layers = tmp.cfg.n_layers;
		o->pub.hidden = tmp.cfg.hidden;
		o->pub.n_labels = tmp.info.head == FB_HEAD_NONE ? 0 : tmp.cfg.n_labels;
	}
	if (st != FB_OK)
		o->pub.load_error = keep(o, lerr.msg);

	o->pub.tensors = calloc(src->n_tensors + ld.n_needs + 1, sizeof(fb_inspect_tensor));
	if (o->pub.tensors != NULL)
	{
		/* used, then the gaps, then unused */
		for (size_t i = 0; i < src->n_tensors; i++)
		{
			bool		bad = false;

			for (size_t k = 0; k < ld.n_needs; k++)
				bad |= ld.needs[k].found == &src->tensors[i];
			if (src->tensors[i].used && !bad)
				add_report(o, src, &src->tensors[i], NULL, FB_TENSOR_USED);
		}
		for (size_t k = 0; k < ld.n_needs; k++)
			add_report(o, src, ld.needs[k].found, &ld.needs[k],
					   ld.needs[k].found ? FB_TENSOR_BAD_SHAPE : FB_TENSOR_MISSING);
		for (size_t i = 0; i < src->n_tensors; i++)
			if (!src->tensors[i].used)
				add_report(o, src, &src->tensors[i], NULL, FB_TENSOR_UNUSED);
	}
	for (size_t k = 0; k < ld.n_needs; k++)
		free(ld.needs[k].name);
	free(ld.needs);
	free(tmp.layers);
	fb_config_free(&tmp.cfg);
	fb_source_close(src);

	/* the definitive verdict: a real load, other weight files compared */
	if (o->pub.load_error == NULL && o->pub.n_missing + o->pub.n_bad_shape == 0)
	{
		fb_model_options opts = fb_model_default_options();
		fb_model   *m = NULL;

		opts.check_alternates = 1;
		if (fb_model_open(dir, &opts, &m, &lerr) != FB_OK)
			o->pub.load_error = keep(o, lerr.msg);
		else
		{
			o->pub.notice = keep(o, fb_model_get_info(m)->weight_notice);
			fb_model_free(m);
		}
	}
	else if (o->pub.load_error == NULL)
		o->pub.load_error = keep(o, "tensors are missing or have other shapes than the configuration implies");
	if (o->pub.tensors == NULL || o->files == NULL)
	{
		fb_inspect_free(&o->pub);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	*out = &o->pub;
	return FB_OK;
}

void
fb_inspect_free(fb_inspect *ins)
{
	inspect_owner *o = (inspect_owner *) ins;

	if (o == NULL)
		return;
	for (size_t i = 0; i < o->n_strings; i++)
		free(o->strings[i]);
	free(o->strings);
	free(o->files);
	free(o->pub.tensors);
	free(o);
}
