/*
 * tasks.c — classification, entity extraction and embeddings on top of
 * the encoder: tokenization, windows over long texts, batching, heads.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fb_model.h"
#include "cpu/fb_ops.h"
#include "fb_tasks.h"

/* label rows this small live on the stack */
#define FB_MAX_LABELS_STACK 64

fb_task_options
fb_task_default_options(void)
{
	fb_task_options o;

	memset(&o, 0, sizeof(o));
	o.pooling = FB_POOL_CLS;
	return o;
}

int
fb_argmax(const float *row, int n)
{
	int			best = 0;

	for (int i = 1; i < n; i++)
		if (row[i] > row[best])
			best = i;
	return best;
}

/* ---------------------------------------------------------------------
 * Sequences: [CLS] tokens[a, b) [SEP] of some text, run in batches.
 * --------------------------------------------------------------------- */
void
fb_seq_list_free(seq_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].ids);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

fb_status
fb_seq_list_add(seq_list *l, const fb_model *m, const int32_t *tokens, int a, int b,
			 size_t owner, fb_error *err)
{
	fb_special_ids sp = fb_tokenizer_special_ids(m->tok);
	seq_ref    *r;
	int			n = b - a;

	if (l->n == l->cap)
	{
		size_t		cap = l->cap ? l->cap * 2 : 16;
		seq_ref    *p = realloc(l->items, cap * sizeof(seq_ref));

		if (p == NULL)
			return fb_fail(err, FB_ERR_NOMEM, "out of memory");
		l->items = p;
		l->cap = cap;
	}
	r = &l->items[l->n];
	r->ids = malloc(sizeof(int32_t) * (size_t) (n + 2));
	if (r->ids == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	r->ids[0] = sp.cls;
	if (n > 0)
		memcpy(r->ids + 1, tokens + a, sizeof(int32_t) * (size_t) n);
	r->ids[n + 1] = sp.sep;
	r->len = n + 2;
	r->owner = owner;
	l->n++;
	return FB_OK;
}

/* Runs sequences in batches of at most max_batch_tokens tokens. */
fb_status
fb_run_sequences(fb_session *s, const seq_list *l, bool want_pooled,
				 bool cls_only, seq_done_fn done, void *arg, fb_error *err)
{
	const fb_model *m = s->model;
	int			H = m->cfg.hidden;
	size_t		i = 0;
	const int32_t **ids = NULL;
	int		   *lens = NULL;
	float	   *hidden,
			   *pooled = NULL;
	fb_status	st = FB_OK;

	ids = malloc(sizeof(*ids) * (l->n ? l->n : 1));
	lens = malloc(sizeof(*lens) * (l->n ? l->n : 1));
	pooled = want_pooled ? malloc(sizeof(float) * (size_t) H * (l->n ? l->n : 1)) : NULL;
	if (ids == NULL || lens == NULL || (want_pooled && pooled == NULL))
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}
	while (i < l->n)
	{
		size_t		first = i,
					tokens = 0;
		fb_batch	b;

		while (i < l->n && (i == first || tokens + (size_t) l->items[i].len <= (size_t) m->max_batch_tokens))
		{
			ids[i - first] = l->items[i].ids;
			lens[i - first] = l->items[i].len;
			tokens += (size_t) l->items[i].len;
			i++;
		}
		/* the session keeps the output buffer: no page faults per call */
		if (tokens * (size_t) H > s->out_cap)
		{
			free(s->out);
			s->out = malloc(sizeof(float) * tokens * (size_t) H);
			s->out_cap = s->out ? tokens * (size_t) H : 0;
			if (s->out == NULL)
			{
				st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
				goto done;
			}
		}
		hidden = s->out;
		b.n_seq = (int) (i - first);
		b.ids = ids;
		b.lens = lens;
		if ((st = fb_forward_ex(s, &b, cls_only, hidden, pooled, err)) != FB_OK)
			goto done;
		s->tokens += tokens;
		{
			size_t		row = 0;

			for (size_t k = first; k < i; k++)
			{
				/* cls_only: one row per sequence, its [CLS] row */
				st = done(arg, &l->items[k], hidden + (cls_only ? k - first : row) * H,
						  pooled ? pooled + (k - first) * H : NULL, err);
				if (st != FB_OK)
					goto done;
				row += (size_t) l->items[k].len;
			}
		}
	}
done:
	free(ids);
	free(lens);
	free(pooled);
	return st;
}

uint64_t
fb_session_tokens(const fb_session *s)
{
	return s->tokens;
}

fb_status
fb_resolve_max_length(const fb_model *m, const fb_task_options *o, int *out, fb_error *err)
{
	int			L = o->max_length > 0 ? o->max_length : m->cfg.max_position;

	if (L < 3)
		return fb_fail(err, FB_ERR_INVALID, "max_length %d is too small (at least 3)", L);
	if (L > m->cfg.max_position)
		return fb_fail(err, FB_ERR_INVALID, "max_length %d exceeds the model's %d positions",
					   L, m->cfg.max_position);
	*out = L;
	return FB_OK;
}

/* Tokenizes text into the session encoding (no specials). */
fb_status
fb_encode_text(fb_session *s, const fb_text *t, fb_error *err)
{
	return fb_tokenizer_encode(s->model->tok, t->data, t->len, 0,
							   s->has_ctl ? &s->ctl : NULL, &s->enc, err);
}

/* ---------------------------------------------------------------------
 * Sequence classification
 * --------------------------------------------------------------------- */
typedef struct cls_acc
{
	const fb_model *m;
	float	   *logits;			/* n_texts x n_labels sums */
	int		   *count;			/* windows per text */
	float	   *scratch;		/* [H] */
} cls_acc;

/* Sequence-classification head on one sequence: logits[n_labels] from its
 * [CLS] hidden row (ELECTRA) or pooled row (BERT, ALBERT). */
static void
sequence_head(const fb_model *m, const float *cls_row, const float *pooled,
			  float *scratch, float *logits)
{
	int			H = m->cfg.hidden,
				NL = m->cfg.n_labels;
	const float *feat;

	if (m->cls_dense_w != NULL)
	{
		/* ELECTRA head: gelu(dense(h_cls)) then out_proj */
		fb_cpu_fill_bias(scratch, m->cls_dense_b, 1, H);
		fb_cpu_linear(cls_row, m->cls_dense_w, scratch, 1, H, H, 1.0f);
		fb_cpu_gelu_erf(scratch, (size_t) H);
		feat = scratch;
	}
	else
		feat = pooled;
	for (int j = 0; j < NL; j++)
	{
		const float *w = m->cls_w + (size_t) j * H;
		double		acc = m->cls_b[j];

		for (int k = 0; k < H; k++)
			acc += (double) w[k] * feat[k];
		logits[j] = (float) acc;
	}
}

/* probs from logits: softmax, or sigmoid for multi-label models */
static void
logits_to_probs(const fb_model *m, const float *logits, float *probs)
{
	int			NL = m->cfg.n_labels;

	memcpy(probs, logits, sizeof(float) * NL);
	if (m->cfg.multi_label)
		for (int j = 0; j < NL; j++)
			probs[j] = 1.0f / (1.0f + expf(-probs[j]));
	else
		fb_cpu_softmax(probs, 1, NL);
}

static fb_status
cls_done(void *arg, const seq_ref *seq, const float *hidden, const float *pooled,
		 fb_error *err)
{
	cls_acc    *a = arg;
	int			NL = a->m->cfg.n_labels;
	float	   *row = a->logits + seq->owner * (size_t) NL;
	float		one[FB_MAX_LABELS_STACK];
	float	   *tmp = NL <= FB_MAX_LABELS_STACK ? one : malloc(sizeof(float) * NL);

	if (tmp == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	sequence_head(a->m, hidden, pooled, a->scratch, tmp);
	for (int j = 0; j < NL; j++)
		row[j] += tmp[j];
	if (tmp != one)
		free(tmp);
	a->count[seq->owner]++;
	return FB_OK;
}

fb_status
fb_classify_batch(fb_session *s, const fb_batch *b, float *logits, float *probs,
				  fb_error *err)
{
	const fb_model *m = s->model;
	int			H = m->cfg.hidden,
				NL = m->cfg.n_labels;
	bool		pooler = m->cls_dense_w == NULL;
	float	   *hidden,
			   *pooled,
			   *scratch;
	fb_status	st;

	if (m->info.head != FB_HEAD_SEQUENCE)
		return fb_fail(err, FB_ERR_INVALID, "this model has no sequence-classification head");
	if (b == NULL || b->n_seq < 1)
		return fb_fail(err, FB_ERR_INVALID, "empty batch");
	hidden = malloc(sizeof(float) * (size_t) b->n_seq * H);
	pooled = malloc(sizeof(float) * (size_t) b->n_seq * H);
	scratch = malloc(sizeof(float) * (size_t) H);
	if (hidden == NULL || pooled == NULL || scratch == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}
	st = fb_forward_ex(s, b, true, hidden, pooler ? pooled : NULL, err);
	if (st != FB_OK)
		goto done;
	for (int i = 0; i < b->n_seq; i++)
	{
		float	   *lg = logits + (size_t) i * NL;

		sequence_head(m, hidden + (size_t) i * H, pooled + (size_t) i * H, scratch, lg);
		if (probs != NULL)
			logits_to_probs(m, lg, probs + (size_t) i * NL);
	}
done:
	free(hidden);
	free(pooled);
	free(scratch);
	return st;
}

fb_status
fb_classify(fb_session *s, const fb_text *texts, size_t n,
			const fb_task_options *opts, float *logits, float *probs,
			fb_error *err)
{
	const fb_model *m = s->model;
	fb_task_options defaults = fb_task_default_options();
	int			NL = m->cfg.n_labels,
				maxlen;
	seq_list	seqs = {0};
	cls_acc		acc = {0};
	fb_status	st;

	if (opts == NULL)
		opts = &defaults;
	if (m->info.head != FB_HEAD_SEQUENCE)
		return fb_fail(err, FB_ERR_INVALID, "this model has no sequence-classification head");
	if ((st = fb_resolve_max_length(m, opts, &maxlen, err)) != FB_OK)
		return st;
	acc.m = m;
	acc.logits = calloc(n ? n : 1, sizeof(float) * (size_t) NL);
	acc.count = calloc(n ? n : 1, sizeof(int));
	acc.scratch = malloc(sizeof(float) * (size_t) m->cfg.hidden);
	if (acc.logits == NULL || acc.count == NULL || acc.scratch == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}

	for (size_t i = 0; i < n; i++)
	{
		int			W = maxlen - 2,
					ntok;

		if ((st = fb_encode_text(s, &texts[i], err)) != FB_OK)
			goto done;
		ntok = (int) (s->enc.n > (size_t) INT32_MAX ? INT32_MAX : s->enc.n);
		if (opts->window_stride <= 0 || ntok <= W)
		{
			st = fb_seq_list_add(&seqs, m, s->enc.ids, 0, ntok < W ? ntok : W, i, err);
		}
		else
		{
			/* sliding windows of W tokens advanced by the stride; the last
			 * window is aligned to the end so every token is covered */
			int			stride = opts->window_stride < W ? opts->window_stride : W;

			for (int a = 0;; a += stride)
			{
				if (a + W >= ntok)
				{
					st = fb_seq_list_add(&seqs, m, s->enc.ids, ntok - W, ntok, i, err);
					break;
				}
				if ((st = fb_seq_list_add(&seqs, m, s->enc.ids, a, a + W, i, err)) != FB_OK)
					break;
			}
		}
		if (st != FB_OK)
			goto done;
	}

	st = fb_run_sequences(s, &seqs, m->pool_w != NULL && m->cls_dense_w == NULL, true,
						  cls_done, &acc, err);
	if (st != FB_OK)
		goto done;

	for (size_t i = 0; i < n; i++)
	{
		float	   *row = acc.logits + i * NL;

		for (int j = 0; j < NL; j++)
			row[j] /= (float) (acc.count[i] > 0 ? acc.count[i] : 1);
		if (logits != NULL)
			memcpy(logits + i * NL, row, sizeof(float) * NL);
		if (probs != NULL)
			logits_to_probs(m, row, probs + i * NL);
	}
done:
	fb_seq_list_free(&seqs);
	free(acc.logits);
	free(acc.count);
	free(acc.scratch);
	return st;
}

/* ---------------------------------------------------------------------
 * Embeddings
 * --------------------------------------------------------------------- */
typedef struct emb_acc
{
	const fb_model *m;
	const fb_task_options *o;
	float	   *out;
} emb_acc;

static fb_status
emb_done(void *arg, const seq_ref *seq, const float *hidden, const float *pooled,
		 fb_error *err)
{
	emb_acc    *a = arg;
	int			H = a->m->cfg.hidden;
	float	   *dst = a->out + seq->owner * (size_t) H;

	switch (a->o->pooling)
	{
		case FB_POOL_CLS:
			memcpy(dst, hidden, sizeof(float) * H);
			break;
		case FB_POOL_POOLER:
			memcpy(dst, pooled, sizeof(float) * H);
			break;
		case FB_POOL_MEAN:
			for (int k = 0; k < H; k++)
			{
				double		sum = 0.0;

				for (int t = 0; t < seq->len; t++)
					sum += hidden[(size_t) t * H + k];
				dst[k] = (float) (sum / seq->len);
			}
			break;
		case FB_POOL_NONE:
			return fb_fail(err, FB_ERR_INVALID, "pooling none is served by fb_hidden_states");
	}
	if (a->o->normalize)
	{
		double		ss = 0.0;

		for (int k = 0; k < H; k++)
			ss += (double) dst[k] * dst[k];
		if (ss > 0.0)
		{
			float		inv = (float) (1.0 / sqrt(ss));

			for (int k = 0; k < H; k++)
				dst[k] *= inv;
		}
	}
	return FB_OK;
}

fb_status
fb_embed(fb_session *s, const fb_text *texts, size_t n,
		 const fb_task_options *opts, float *out, fb_error *err)
{
	const fb_model *m = s->model;
	fb_task_options defaults = fb_task_default_options();
	seq_list	seqs = {0};
	emb_acc		acc;
	int			maxlen;
	fb_status	st;

	if (opts == NULL)
		opts = &defaults;
	if (opts->pooling == FB_POOL_NONE)
		return fb_fail(err, FB_ERR_INVALID, "pooling none is served by fb_hidden_states");
	if (opts->pooling == FB_POOL_POOLER && m->pool_w == NULL)
		return fb_fail(err, FB_ERR_UNSUPPORTED, "this model has no pooler; use cls or mean pooling");
	if ((st = fb_resolve_max_length(m, opts, &maxlen, err)) != FB_OK)
		return st;
	for (size_t i = 0; i < n; i++)
	{
		int			ntok;

		if ((st = fb_encode_text(s, &texts[i], err)) != FB_OK)
			goto done;
		ntok = (int) (s->enc.n < (size_t) (maxlen - 2) ? s->enc.n : (size_t) (maxlen - 2));
		if ((st = fb_seq_list_add(&seqs, m, s->enc.ids, 0, ntok, i, err)) != FB_OK)
			goto done;
	}
	acc.m = m;
	acc.o = opts;
	acc.out = out;
	st = fb_run_sequences(s, &seqs, opts->pooling == FB_POOL_POOLER,
						  opts->pooling != FB_POOL_MEAN, emb_done, &acc, err);
done:
	fb_seq_list_free(&seqs);
	return st;
}

typedef struct hs_acc
{
	int			H;
	float	   *out;
} hs_acc;

static fb_status
hs_done(void *arg, const seq_ref *seq, const float *hidden, const float *pooled,
		fb_error *err)
{
	hs_acc	   *a = arg;

	memcpy(a->out, hidden, sizeof(float) * (size_t) seq->len * a->H);
	return FB_OK;
}

fb_status
fb_hidden_states(fb_session *s, const fb_text *text, const fb_task_options *opts,
				 float **out, int *n_tokens, fb_error *err)
{
	const fb_model *m = s->model;
	fb_task_options defaults = fb_task_default_options();
	seq_list	seqs = {0};
	hs_acc		acc;
	int			maxlen,
				ntok;
	fb_status	st;

	*out = NULL;
	*n_tokens = 0;
	if (opts == NULL)
		opts = &defaults;
	if ((st = fb_resolve_max_length(m, opts, &maxlen, err)) != FB_OK)
		return st;
	if ((st = fb_encode_text(s, text, err)) != FB_OK)
		return st;
	ntok = (int) (s->enc.n < (size_t) (maxlen - 2) ? s->enc.n : (size_t) (maxlen - 2));
	if ((st = fb_seq_list_add(&seqs, m, s->enc.ids, 0, ntok, 0, err)) != FB_OK)
		goto done;
	acc.H = m->cfg.hidden;
	acc.out = malloc(sizeof(float) * (size_t) (ntok + 2) * acc.H);
	if (acc.out == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}
	st = fb_run_sequences(s, &seqs, false, false, hs_done, &acc, err);
	if (st == FB_OK)
	{
		*out = acc.out;
		*n_tokens = ntok + 2;
	}
	else
		free(acc.out);
done:
	fb_seq_list_free(&seqs);
	return st;
}
