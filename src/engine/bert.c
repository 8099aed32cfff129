/*
 * bert.c — the fp32 encoder forward pass and per-run sessions.
 *
 * Token packing: the sequences of a batch are laid end to end as one
 * [T, H] matrix (T = total tokens), so every linear layer is a single GEMM
 * with no padding rows, and attention runs per sequence on its own rows.
 * Nothing is ever padded, so a text gives the same result alone or in any
 * batch and no mask value can leak into pooling.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fb_model.h"
#include "fb_ops.h"

fb_session *
fb_session_new(const fb_model *model)
{
	fb_session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->model = model;
	fb_encoding_init(&s->enc);
	return s;
}

static void
session_release_buffers(fb_session *s)
{
	fb_free_aligned(s->x);
	fb_free_aligned(s->qkv);
	fb_free_aligned(s->ctx);
	fb_free_aligned(s->tmp);
	fb_free_aligned(s->inter);
	fb_free_aligned(s->scores);
	s->x = s->qkv = s->ctx = s->tmp = s->inter = s->scores = NULL;
	s->cap_tokens = 0;
	s->cap_seq = 0;
}

void
fb_session_free(fb_session *s)
{
	if (s == NULL)
		return;
	session_release_buffers(s);
	fb_encoding_free(&s->enc);
	free(s);
}

void
fb_session_set_ctl(fb_session *s, const fb_run_ctl *ctl)
{
	if (ctl != NULL)
	{
		s->ctl = *ctl;
		s->has_ctl = 1;
	}
	else
		s->has_ctl = 0;
}

static void *
alloc_floats(size_t a, size_t b, bool *ok)
{
	size_t		n;
	void	   *p;

	if (!fb_mul_size(a, b, &n) || !fb_mul_size(n, sizeof(float), &n))
	{
		*ok = false;
		return NULL;
	}
	p = fb_alloc_aligned(n);
	if (p == NULL)
		*ok = false;
	return p;
}

fb_status
fb_session_reserve(fb_session *s, size_t n_tokens, size_t max_len, fb_error *err)
{
	const fb_config *c = &s->model->cfg;
	size_t		wide = (size_t) (c->embedding_size > c->hidden ? c->embedding_size : c->hidden);
	bool		ok = true;

	if (n_tokens > s->cap_tokens)
	{
		fb_free_aligned(s->x);
		fb_free_aligned(s->qkv);
		fb_free_aligned(s->ctx);
		fb_free_aligned(s->tmp);
		fb_free_aligned(s->inter);
		s->x = alloc_floats(n_tokens, wide, &ok);
		s->qkv = alloc_floats(n_tokens, 3 * (size_t) c->hidden, &ok);
		s->ctx = alloc_floats(n_tokens, (size_t) c->hidden, &ok);
		s->tmp = alloc_floats(n_tokens, wide, &ok);
		s->inter = alloc_floats(n_tokens, (size_t) c->intermediate, &ok);
		s->cap_tokens = ok ? n_tokens : 0;
	}
	if (ok && max_len > s->cap_seq)
	{
		fb_free_aligned(s->scores);
		s->scores = alloc_floats(max_len, max_len, &ok);
		s->cap_seq = ok ? max_len : 0;
	}
	if (!ok)
	{
		session_release_buffers(s);
		return fb_fail(err, FB_ERR_NOMEM, "cannot allocate activations for %zu tokens", n_tokens);
	}
	return FB_OK;
}

static bool
session_interrupted(const fb_session *s)
{
	return s->has_ctl && fb_interrupted(&s->ctl);
}

/* Embedding rows for every token: word + position + token type (0). */
static void
embed_tokens(const fb_model *m, const fb_batch *b, float *out)
{
	int			E = m->cfg.embedding_size;
	size_t		row = 0;

	for (int i = 0; i < b->n_seq; i++)
	{
		for (int p = 0; p < b->lens[i]; p++, row++)
		{
			const float *w = m->word_emb + (size_t) b->ids[i][p] * E;
			const float *pe = m->pos_emb + (size_t) p * E;
			const float *te = m->type_emb;
			float	   *o = out + row * E;

			for (int k = 0; k < E; k++)
				o[k] = w[k] + pe[k] + te[k];
		}
	}
	fb_cpu_layernorm(out, m->emb_ln_g, m->emb_ln_b, (int) row, E, m->cfg.layer_norm_eps);
}

static void
encoder_layer(fb_session *s, const fb_layer *L, const fb_batch *b, int T)
{
	const fb_config *c = &s->model->cfg;
	int			H = c->hidden,
				I = c->intermediate;
	size_t		off = 0;

	/* qkv[T, 3H] = x W_qkv^T + b_qkv */
	fb_cpu_fill_bias(s->qkv, L->qkv_b, T, 3 * H);
	fb_cpu_linear(s->x, L->qkv_w, s->qkv, T, 3 * H, H, 1.0f);

	/* attention, one sequence at a time on its own rows */
	for (int i = 0; i < b->n_seq; i++)
	{
		fb_cpu_attention(s->qkv + off * 3 * H, s->ctx + off * H, H, s->scores,
						 b->lens[i], H, c->n_heads);
		off += (size_t) b->lens[i];
	}

	/* x = LN(x + ctx W_o^T + b_o) */
	fb_cpu_residual_bias(s->tmp, s->x, L->attn_out_b, T, H);
	fb_cpu_linear(s->ctx, L->attn_out_w, s->tmp, T, H, H, 1.0f);
	fb_cpu_layernorm(s->tmp, L->attn_ln_g, L->attn_ln_b, T, H, c->layer_norm_eps);

	/* inter = act(x W_i^T + b_i) */
	fb_cpu_fill_bias(s->inter, L->inter_b, T, I);
	fb_cpu_linear(s->tmp, L->inter_w, s->inter, T, I, H, 1.0f);
	fb_cpu_activation(c->act, s->inter, (size_t) T * I);

	/* x = LN(x + inter W_out^T + b_out) */
	fb_cpu_residual_bias(s->x, s->tmp, L->out_b, T, H);
	fb_cpu_linear(s->inter, L->out_w, s->x, T, H, I, 1.0f);
	fb_cpu_layernorm(s->x, L->out_ln_g, L->out_ln_b, T, H, c->layer_norm_eps);
}

static fb_status
check_batch(const fb_model *m, const fb_batch *b, size_t *T, int *maxL, fb_error *err)
{
	size_t		total = 0;
	int			longest = 0;

	if (b == NULL || b->n_seq < 1 || b->ids == NULL || b->lens == NULL)
		return fb_fail(err, FB_ERR_INVALID, "empty batch");
	for (int i = 0; i < b->n_seq; i++)
	{
		int			L = b->lens[i];

		if (L < 1 || L > m->cfg.max_position)
			return fb_fail(err, FB_ERR_LIMIT,
						   "sequence %d has %d tokens; the model accepts 1 to %d",
						   i, L, m->cfg.max_position);
		for (int p = 0; p < L; p++)
		{
			if (b->ids[i][p] < 0 || b->ids[i][p] >= m->cfg.vocab_size)
				return fb_fail(err, FB_ERR_INVALID, "token id %d outside the vocabulary",
							   b->ids[i][p]);
		}
		total += (size_t) L;
		longest = L > longest ? L : longest;
	}
	*T = total;
	*maxL = longest;
	return FB_OK;
}

fb_status
fb_forward(fb_session *s, const fb_batch *b, float *hidden, float *pooled,
		   fb_error *err)
{
	const fb_model *m = s->model;
	const fb_config *c = &m->cfg;
	int			H = c->hidden;
	size_t		T = 0;
	int			maxL = 0;
	fb_status	st;

	if ((st = check_batch(m, b, &T, &maxL, err)) != FB_OK)
		return st;
	if (pooled != NULL && m->pool_w == NULL)
		return fb_fail(err, FB_ERR_UNSUPPORTED, "this model has no pooler");
	if ((st = fb_session_reserve(s, T, (size_t) maxL, err)) != FB_OK)
		return st;

	if (m->emb_proj_w != NULL)
	{
		/* factorised embeddings: LN in E dims, then project to H */
		embed_tokens(m, b, s->tmp);
		fb_cpu_fill_bias(s->x, m->emb_proj_b, (int) T, H);
		fb_cpu_linear(s->tmp, m->emb_proj_w, s->x, (int) T, H, c->embedding_size, 1.0f);
	}
	else
		embed_tokens(m, b, s->x);

	for (int l = 0; l < c->n_layers; l++)
	{
		if (session_interrupted(s))
			return fb_fail(err, FB_ERR_INTERRUPTED, "interrupted");
		encoder_layer(s, &m->layers[l], b, (int) T);
	}

	for (size_t i = 0; i < T * (size_t) H; i++)
	{
		if (!isfinite(s->x[i]))
			return fb_fail(err, FB_ERR_NUMERIC, "the encoder produced a non-finite value");
	}
	if (hidden != NULL)
		memcpy(hidden, s->x, sizeof(float) * T * (size_t) H);
	if (pooled != NULL)
	{
		size_t		row = 0;

		for (int i = 0; i < b->n_seq; i++)
		{
			memcpy(s->tmp + (size_t) i * H, s->x + row * H, sizeof(float) * H);
			row += (size_t) b->lens[i];
		}
		fb_cpu_fill_bias(pooled, m->pool_b, b->n_seq, H);
		fb_cpu_linear(s->tmp, m->pool_w, pooled, b->n_seq, H, H, 1.0f);
		fb_cpu_tanh(pooled, (size_t) b->n_seq * H);
	}
	return FB_OK;
}
