/*
 * backend.c — the CPU backend behind fb_backend_i: its weight layout
 * (packed fp32 or int8 copies of the layer matrices, or the engine's
 * row-major matrices for BLAS), sessions, and the outputs of a batch
 * (forward.c runs the encoder, heads.c the heads).
 *
 * The CPU runs a batch inside submit; wait hands back its outputs.  Two
 * output slots alternate, so a batch's outputs stay valid while the next
 * one is submitted, as on a device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/fb_cpu_backend.h"
#include "cpu/fb_kernels.h"

/* One of a layer's four weight matrices: the row-major fp32 copy (K x N)
 * and the slots of its int8 and packed fp32 copies. */
typedef struct layer_mat
{
	const float **w;
	int			K,
				N;
	fb_qmat   **q;
	fb_pmat   **p;
} layer_mat;

static void
layer_mats(fb_cpu_layer *L, int H, int I, layer_mat mats[4])
{
	mats[0] = (layer_mat) {&L->qkv_w, H, 3 * H, &L->qkv_q, &L->qkv_p};
	mats[1] = (layer_mat) {&L->attn_out_w, H, H, &L->attn_out_q, &L->attn_out_p};
	mats[2] = (layer_mat) {&L->inter_w, H, I, &L->inter_q, &L->inter_p};
	mats[3] = (layer_mat) {&L->out_w, I, H, &L->out_q, &L->out_p};
}

/*
 * int8 (quantised) or packed fp32 copies of every layer's weight matrices,
 * into cm->qmats or cm->pmats, which own them; the layers then read only
 * those (their row-major pointers are cleared).  Layers sharing layer 0's
 * weights, as in ALBERT, share its copies too.
 */
static fb_status
convert_layers(fb_cpu_model *cm, bool int8, fb_error *err)
{
	const fb_weights *w = cm->w;
	layer_mat	first[4];

	if (int8)
		cm->qmats = calloc((size_t) w->n_layers * 4, sizeof(fb_qmat *));
	else
		cm->pmats = calloc((size_t) w->n_layers * 4, sizeof(fb_pmat *));
	if (int8 ? cm->qmats == NULL : cm->pmats == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	layer_mats(&cm->layers[0], w->hidden, w->intermediate, first);
	for (int l = 0; l < w->n_layers; l++)
	{
		fb_cpu_layer *L = &cm->layers[l];
		layer_mat	mats[4];
		bool		shared = l > 0 && w->layers[l].qkv_w == w->layers[0].qkv_w;

		layer_mats(L, w->hidden, w->intermediate, mats);
		for (int i = 0; i < 4; i++)
		{
			if (int8)
			{
				*mats[i].q = shared ? *first[i].q : fb_qmat_new(*mats[i].w, mats[i].K, mats[i].N);
				if (*mats[i].q == NULL)
					return fb_fail(err, FB_ERR_NOMEM, "out of memory quantising layer %d", l);
				if (!shared)
					cm->qmats[cm->n_qmats++] = *mats[i].q;
			}
			else
			{
				*mats[i].p = shared ? *first[i].p : fb_pmat_new(*mats[i].w, mats[i].K, mats[i].N);
				if (*mats[i].p == NULL)
					return fb_fail(err, FB_ERR_NOMEM, "out of memory packing layer %d", l);
				if (!shared)
					cm->pmats[cm->n_pmats++] = *mats[i].p;
			}
		}
	}
	for (int l = 0; l < w->n_layers; l++)
	{
		fb_cpu_layer *L = &cm->layers[l];

		L->qkv_w = L->attn_out_w = L->inter_w = L->out_w = NULL;
	}
	return FB_OK;
}

static void
cpu_model_free(void *model)
{
	fb_cpu_model *cm = model;

	if (cm == NULL)
		return;
	for (int i = 0; i < cm->n_qmats; i++)
		fb_qmat_free(cm->qmats[i]);
	free(cm->qmats);
	for (int i = 0; i < cm->n_pmats; i++)
		fb_pmat_free(cm->pmats[i]);
	free(cm->pmats);
	free(cm->layers);
	free(cm);
}

/*
 * int8 precision quantises the layer matrices; fp32 packs them where the
 * kernel set has an fp32 micro-kernel, else BLAS reads the engine's
 * row-major matrices.
 */
static fb_status
cpu_model_init(const fb_weights *w, const fb_backend_options *o, void **model,
			   fb_backend_model_info *info, fb_error *err)
{
	fb_cpu_model *cm;
	fb_status	st = FB_OK;

	*model = NULL;
	memset(info, 0, sizeof(*info));
	if (o->precision != FB_PRECISION_FP32 && o->precision != FB_PRECISION_INT8)
		return fb_fail(err, FB_ERR_UNSUPPORTED, "precision %s runs on a CUDA device only",
					   fb_precision_name(o->precision));
	cm = calloc(1, sizeof(*cm));
	if (cm == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	cm->w = w;
	cm->precision = o->precision;
	cm->layers = calloc((size_t) w->n_layers, sizeof(fb_cpu_layer));
	if (cm->layers == NULL)
	{
		cpu_model_free(cm);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	for (int l = 0; l < w->n_layers; l++)
	{
		const fb_weights_layer *src = &w->layers[l];
		fb_cpu_layer *L = &cm->layers[l];

		L->qkv_w = src->qkv_w;
		L->qkv_b = src->qkv_b;
		L->attn_out_w = src->attn_out_w;
		L->attn_out_b = src->attn_out_b;
		L->attn_ln_g = src->attn_ln_g;
		L->attn_ln_b = src->attn_ln_b;
		L->inter_w = src->inter_w;
		L->inter_b = src->inter_b;
		L->out_w = src->out_w;
		L->out_b = src->out_b;
		L->out_ln_g = src->out_ln_g;
		L->out_ln_b = src->out_ln_b;
	}
	info->needs_fp32_layers = true;
	if (o->precision == FB_PRECISION_INT8)
		st = convert_layers(cm, true, err);
	else if (fb_cpu_kernels_get()->f32_panel != NULL)
		st = convert_layers(cm, false, err);
	if (st != FB_OK)
	{
		cpu_model_free(cm);
		return st;
	}
	info->needs_fp32_layers = cm->qmats == NULL && cm->pmats == NULL;
	info->precision = cm->precision;
	for (int i = 0; i < cm->n_qmats; i++)
		info->host_bytes += fb_qmat_bytes(cm->qmats[i]);
	for (int i = 0; i < cm->n_pmats; i++)
		info->host_bytes += fb_pmat_bytes(cm->pmats[i]);
	*model = cm;
	return FB_OK;
}

static fb_status
cpu_probe(int ordinal, fb_device_info *info, fb_error *err)
{
	if (ordinal != 0)
		return fb_fail(err, FB_ERR_DEVICE, "the CPU backend has device 0 only");
	if (info != NULL)
	{
		memset(info, 0, sizeof(*info));
		info->device = FB_DEVICE_CPU;
		snprintf(info->name, sizeof(info->name), "cpu");
		snprintf(info->runtime, sizeof(info->runtime), "%s kernels", fb_cpu_kernel_name());
	}
	return FB_OK;
}

/* ---------------------------------------------------------------------
 * Sessions and batches
 * --------------------------------------------------------------------- */
typedef struct cpu_slot
{
	float	   *buf;
	size_t		cap;			/* floats */
	fb_outputs	out;
} cpu_slot;

typedef struct cpu_bsession
{
	fb_cpu_session *fs;
	cpu_slot	slot[FB_BACKEND_MAX_IN_FLIGHT];
	int			next;			/* slot of the next submit */
	int			n_pending;		/* submitted, not yet waited */
} cpu_bsession;

static fb_status
cpu_session_init(void *model, const fb_run_ctl *ctl, void **session, fb_error *err)
{
	cpu_bsession *bs = calloc(1, sizeof(*bs));

	*session = NULL;
	if (bs == NULL || (bs->fs = fb_cpu_session_new(model, ctl)) == NULL)
	{
		free(bs);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	*session = bs;
	return FB_OK;
}

static void
cpu_session_free(void *session)
{
	cpu_bsession *bs = session;

	if (bs == NULL)
		return;
	fb_cpu_session_free(bs->fs);
	for (int i = 0; i < FB_BACKEND_MAX_IN_FLIGHT; i++)
		free(bs->slot[i].buf);
	free(bs);
}

static int
cpu_session_set_threads(void *session, int n)
{
	return fb_cpu_session_set_threads(((cpu_bsession *) session)->fs, n);
}

static fb_status
cpu_reserve(void *session, size_t n_tokens, int n_seq, int max_len, fb_error *err)
{
	(void) n_seq;
	return fb_cpu_session_reserve(((cpu_bsession *) session)->fs, n_tokens,
								  (size_t) max_len, err);
}

/* Floats of a slot laid out as outs[] below for this batch. */
static size_t
slot_floats(const fb_weights *w, unsigned outputs, size_t T, size_t n, bool need_cls,
			bool need_pooled)
{
	size_t		H = (size_t) w->hidden,
				NL = (size_t) w->n_labels;

	return ((outputs & FB_OUT_HIDDEN) ? T * H : 0) + (need_cls ? n * H : 0) +
		((outputs & FB_OUT_MEAN) ? n * H : 0) + (need_pooled ? n * H : 0) +
		((outputs & FB_OUT_SEQ_LOGITS) ? n * NL : 0) +
		((outputs & FB_OUT_TOKEN_LOGITS) ? T * NL : 0) + H;
}

/*
 * Runs the batch and computes its outputs into the next slot: the rows of
 * the last layer (all of them only when an output needs every row), then
 * the [CLS] rows, pooler, heads and means.
 */
static fb_status
cpu_submit(void *session, const fb_batch *b, unsigned outputs, fb_error *err)
{
	cpu_bsession *bs = session;
	const fb_weights *w = bs->fs->model;
	int			H = w->hidden,
				NL = w->n_labels,
				n = b->n_seq;
	bool		all_rows = (outputs & (FB_OUT_HIDDEN | FB_OUT_MEAN | FB_OUT_TOKEN_LOGITS)) != 0;
	bool		need_pooled = (outputs & FB_OUT_POOLED) ||
		((outputs & FB_OUT_SEQ_LOGITS) && w->cls_dense_w == NULL);
	bool		need_cls = need_pooled || (outputs & (FB_OUT_CLS | FB_OUT_SEQ_LOGITS));
	cpu_slot   *sl = &bs->slot[bs->next];
	fb_outputs *o = &sl->out;
	const float *rows;
	size_t		T = 0,
				need;
	float	   *p,
			   *cls = NULL,
			   *pooled = NULL,
			   *scratch;
	fb_status	st;

	if (bs->n_pending >= FB_BACKEND_MAX_IN_FLIGHT)
		return fb_fail(err, FB_ERR_INVALID, "two batches are in flight already");
	for (int i = 0; i < n; i++)
		T += (size_t) b->lens[i];
	need = slot_floats(w, outputs, T, (size_t) n, need_cls, need_pooled);
	if (need > sl->cap)
	{
		free(sl->buf);
		sl->buf = malloc(sizeof(float) * need);
		sl->cap = sl->buf != NULL ? need : 0;
		if (sl->buf == NULL)
			return fb_fail(err, FB_ERR_NOMEM, "out of memory for the outputs of %zu tokens", T);
	}
	if ((st = fb_cpu_forward(bs->fs, b, !all_rows, &rows, err)) != FB_OK)
		return st;

	memset(o, 0, sizeof(*o));
	o->n_seq = n;
	o->n_rows = T;
	p = sl->buf;
	if (outputs & FB_OUT_HIDDEN)
	{
		memcpy(p, rows, sizeof(float) * T * H);
		o->hidden = p;
		p += T * H;
	}
	if (need_cls)
	{
		size_t		off = 0;

		cls = p;
		for (int i = 0; i < n; i++)
		{
			memcpy(cls + (size_t) i * H, rows + (all_rows ? off : (size_t) i) * H,
				   sizeof(float) * H);
			off += (size_t) b->lens[i];
		}
		if (outputs & FB_OUT_CLS)
			o->cls = cls;
		p += (size_t) n * H;
	}
	if (outputs & FB_OUT_MEAN)
	{
		size_t		off = 0;

		for (int i = 0; i < n; i++)
		{
			fb_cpu_mean_rows(rows + off * H, b->lens[i], H, p + (size_t) i * H);
			off += (size_t) b->lens[i];
		}
		o->mean = p;
		p += (size_t) n * H;
	}
	if (need_pooled)
	{
		pooled = p;
		fb_cpu_pooler(w, cls, n, pooled);
		if (outputs & FB_OUT_POOLED)
			o->pooled = pooled;
		p += (size_t) n * H;
	}
	scratch = sl->buf + need - H;
	if (outputs & FB_OUT_SEQ_LOGITS)
	{
		for (int i = 0; i < n; i++)
			fb_cpu_sequence_head(w, cls + (size_t) i * H,
								 pooled != NULL ? pooled + (size_t) i * H : NULL,
								 scratch, p + (size_t) i * NL);
		o->seq_logits = p;
		p += (size_t) n * NL;
	}
	if (outputs & FB_OUT_TOKEN_LOGITS)
	{
		fb_cpu_token_head(w, rows, T, p);
		o->token_logits = p;
	}
	bs->next = (bs->next + 1) % FB_BACKEND_MAX_IN_FLIGHT;
	bs->n_pending++;
	return FB_OK;
}

static fb_status
cpu_wait(void *session, fb_outputs *out, fb_error *err)
{
	cpu_bsession *bs = session;
	int			oldest;

	if (bs->n_pending == 0)
		return fb_fail(err, FB_ERR_INVALID, "no batch in flight");
	oldest = (bs->next - bs->n_pending + FB_BACKEND_MAX_IN_FLIGHT) % FB_BACKEND_MAX_IN_FLIGHT;
	*out = bs->slot[oldest].out;
	bs->n_pending--;
	return FB_OK;
}

static const fb_backend_i cpu_backend = {
	FB_BACKEND_ABI,
	"cpu",
	cpu_probe,
	cpu_model_init,
	cpu_model_free,
	cpu_session_init,
	cpu_session_free,
	cpu_session_set_threads,
	cpu_reserve,
	cpu_submit,
	cpu_wait,
};

const fb_backend_i *
fb_cpu_backend(void)
{
	return &cpu_backend;
}
