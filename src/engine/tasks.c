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

/* ---------------------------------------------------------------------
 * The runner: sequences go to the backend in batches of at most
 * max_batch_tokens tokens as they are added, in order, and each batch's
 * outputs reach done() sequence by sequence.  Batches are pipelined: a
 * new batch is submitted before the previous one's outputs are taken, so
 * on a device the host tokenizes the next texts and decodes the last
 * batch's outputs while the device computes.
 * --------------------------------------------------------------------- */
fb_status
fb_runner_init(seq_runner *r, fb_session *s, unsigned output, seq_done_fn done,
			   void *arg, fb_error *err)
{
	fb_status	st;

	memset(r, 0, sizeof(*r));
	r->s = s;
	r->output = output;
	r->done = done;
	r->arg = arg;
	if ((st = fb_session_check_idle(s, err)) != FB_OK)
		return st;
	return FB_OK;
}

/* Output floats per sequence row (per_row) or per sequence. */
static size_t
output_stride(const fb_model *m, unsigned output, bool *per_row)
{
	*per_row = (output & (FB_OUT_HIDDEN | FB_OUT_TOKEN_LOGITS)) != 0;
	if (output & (FB_OUT_SEQ_LOGITS | FB_OUT_TOKEN_LOGITS))
		return (size_t) m->cfg.n_labels;
	return (size_t) m->cfg.hidden;
}

static const float *
output_array(const fb_outputs *o, unsigned output)
{
	switch (output)
	{
		case FB_OUT_HIDDEN:
			return o->hidden;
		case FB_OUT_CLS:
			return o->cls;
		case FB_OUT_MEAN:
			return o->mean;
		case FB_OUT_POOLED:
			return o->pooled;
		case FB_OUT_SEQ_LOGITS:
			return o->seq_logits;
		case FB_OUT_TOKEN_LOGITS:
			return o->token_logits;
	}
	return NULL;
}

/* Waits for the oldest batch in flight and hands its outputs to done(). */
static fb_status
complete_oldest(seq_runner *r, fb_error *err)
{
	size_t		first = r->flight_first[0],
				end = r->flight_end[0];
	fb_outputs	o;
	bool		per_row;
	size_t		stride = output_stride(r->s->model, r->output, &per_row),
				row = 0;
	const float *base;
	fb_status	st;

	r->flight_first[0] = r->flight_first[1];
	r->flight_end[0] = r->flight_end[1];
	r->n_flight--;
	if ((st = fb_session_wait(r->s, &o, err)) != FB_OK)
		return st;
	base = output_array(&o, r->output);
	for (size_t k = first; k < end; k++)
	{
		seq_ref    *q = &r->seqs.items[k];

		r->s->tokens += (uint64_t) q->len;	/* what the encoder ran */
		st = r->done(r->arg, q, base + (per_row ? row : k - first) * stride, err);
		if (st != FB_OK)
			return st;
		row += (size_t) q->len;
		free(q->ids);			/* done with it: memory stays bounded */
		q->ids = NULL;
	}
	return FB_OK;
}

/* Submits the sequences added since the last batch as one batch. */
static fb_status
submit_pending(seq_runner *r, fb_error *err)
{
	size_t		first = r->next_submit,
				n = r->seqs.n - first;
	fb_batch	b;
	fb_status	st;

	if (n == 0)
		return FB_OK;
	if (r->n_flight == FB_BACKEND_MAX_IN_FLIGHT &&
		(st = complete_oldest(r, err)) != FB_OK)
		return st;
	if (n > r->cap)
	{
		const int32_t **ids = realloc(r->ids, sizeof(*ids) * n);
		int		   *lens;

		if (ids == NULL)
			return fb_fail(err, FB_ERR_NOMEM, "out of memory");
		r->ids = ids;
		lens = realloc(r->lens, sizeof(*lens) * n);
		if (lens == NULL)
			return fb_fail(err, FB_ERR_NOMEM, "out of memory");
		r->lens = lens;
		r->cap = n;
	}
	for (size_t k = 0; k < n; k++)
	{
		r->ids[k] = r->seqs.items[first + k].ids;
		r->lens[k] = r->seqs.items[first + k].len;
	}
	b.n_seq = (int) n;
	b.ids = r->ids;
	b.lens = r->lens;
	if ((st = fb_session_submit(r->s, &b, r->output, err)) != FB_OK)
		return st;
	r->flight_first[r->n_flight] = first;
	r->flight_end[r->n_flight] = r->seqs.n;
	r->n_flight++;
	r->next_submit = r->seqs.n;
	r->pending_tokens = 0;
	/* keep one batch running while the caller prepares the next */
	if (r->n_flight == FB_BACKEND_MAX_IN_FLIGHT)
		return complete_oldest(r, err);
	return FB_OK;
}

fb_status
fb_runner_add(seq_runner *r, const int32_t *tokens, int a, int b, size_t owner,
			  fb_error *err)
{
	size_t		len = (size_t) (b - a) + 2;
	fb_status	st;

	if (r->pending_tokens > 0 &&
		r->pending_tokens + len > (size_t) r->s->model->max_batch_tokens &&
		(st = submit_pending(r, err)) != FB_OK)
		return st;
	if ((st = fb_seq_list_add(&r->seqs, r->s->model, tokens, a, b, owner, err)) != FB_OK)
		return st;
	r->pending_tokens += len;
	return FB_OK;
}

fb_status
fb_runner_finish(seq_runner *r, fb_error *err)
{
	fb_status	st = submit_pending(r, err);

	while (st == FB_OK && r->n_flight > 0)
		st = complete_oldest(r, err);
	return st;
}

void
fb_runner_free(seq_runner *r)
{
	fb_outputs	o;

	/* after an error: take back what is still in flight (its outputs are
	 * dropped) so the session is idle again */
	while (r->n_flight > 0)
	{
		r->n_flight--;
		(void) fb_session_wait(r->s, &o, NULL);
	}
	fb_seq_list_free(&r->seqs);
	free(r->ids);
	free(r->lens);
	memset(r, 0, sizeof(*r));
}

fb_status
fb_run_sequences(fb_session *s, const seq_list *l, unsigned output, seq_done_fn done,
				 void *arg, fb_error *err)
{
	seq_runner	r;
	fb_status	st;

	if ((st = fb_runner_init(&r, s, output, done, arg, err)) != FB_OK)
		return st;
	for (size_t i = 0; i < l->n && st == FB_OK; i++)
	{
		const seq_ref *q = &l->items[i];

		/* the runner adds [CLS] and [SEP] again */
		st = fb_runner_add(&r, q->ids, 1, q->len - 1, q->owner, err);
	}
	if (st == FB_OK)
		st = fb_runner_finish(&r, err);
	fb_runner_free(&r);
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
} cls_acc;

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
cls_done(void *arg, const seq_ref *seq, const float *logits, fb_error *err)
{
	cls_acc    *a = arg;
	int			NL = a->m->cfg.n_labels;
	float	   *row = a->logits + seq->owner * (size_t) NL;

	for (int j = 0; j < NL; j++)
		row[j] += logits[j];
	a->count[seq->owner]++;
	return FB_OK;
}

fb_status
fb_classify_batch(fb_session *s, const fb_batch *b, float *logits, float *probs,
				  fb_error *err)
{
	const fb_model *m = s->model;
	int			NL = m->cfg.n_labels;
	fb_outputs	o;
	fb_status	st;

	if (m->info.head != FB_HEAD_SEQUENCE)
		return fb_fail(err, FB_ERR_INVALID, "this model has no sequence-classification head");
	if (b == NULL || b->n_seq < 1)
		return fb_fail(err, FB_ERR_INVALID, "empty batch");
	if ((st = fb_session_check_idle(s, err)) != FB_OK ||
		(st = fb_session_submit(s, b, FB_OUT_SEQ_LOGITS, err)) != FB_OK ||
		(st = fb_session_wait(s, &o, err)) != FB_OK)
		return st;
	memcpy(logits, o.seq_logits, sizeof(float) * (size_t) b->n_seq * NL);
	if (probs != NULL)
		for (int i = 0; i < b->n_seq; i++)
			logits_to_probs(m, logits + (size_t) i * NL, probs + (size_t) i * NL);
	return FB_OK;
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
	seq_runner	run;
	cls_acc		acc = {0};
	fb_status	st;

	if (opts == NULL)
		opts = &defaults;
	if (m->info.head != FB_HEAD_SEQUENCE)
		return fb_fail(err, FB_ERR_INVALID, "this model has no sequence-classification head");
	if ((st = fb_resolve_max_length(m, opts, &maxlen, err)) != FB_OK)
		return st;
	if ((st = fb_runner_init(&run, s, FB_OUT_SEQ_LOGITS, cls_done, &acc, err)) != FB_OK)
		return st;
	acc.m = m;
	acc.logits = calloc(n ? n : 1, sizeof(float) * (size_t) NL);
	acc.count = calloc(n ? n : 1, sizeof(int));
	if (acc.logits == NULL || acc.count == NULL)
	{
		st = fb_fail(err, FB_ERR_NOMEM, "out of memory");
		goto done;
	}

	/* texts are tokenized while the backend runs the previous batch */
	for (size_t i = 0; i < n; i++)
	{
		int			W = maxlen - 2,
					ntok;

		if ((st = fb_encode_text(s, &texts[i], err)) != FB_OK)
			goto done;
		ntok = (int) (s->enc.n > (size_t) INT32_MAX ? INT32_MAX : s->enc.n);
		if (opts->window_stride <= 0 || ntok <= W)
		{
			st = fb_runner_add(&run, s->enc.ids, 0, ntok < W ? ntok : W, i, err);
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
					st = fb_runner_add(&run, s->enc.ids, ntok - W, ntok, i, err);
					break;
				}
				if ((st = fb_runner_add(&run, s->enc.ids, a, a + W, i, err)) != FB_OK)
					break;
			}
		}
		if (st != FB_OK)
			goto done;
	}
	if ((st = fb_runner_finish(&run, err)) != FB_OK)
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
	fb_runner_free(&run);
	free(acc.logits);
	free(acc.count);
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

/* the pooled row of one text (pooling on the backend), L2-normalised on
 * request */
static fb_status
emb_done(void *arg, const seq_ref *seq, const float *row, fb_error *err)
{
	emb_acc    *a = arg;
	int			H = a->m->cfg.hidden;
	float	   *dst = a->out + seq->owner * (size_t) H;

	memcpy(dst, row, sizeof(float) * H);
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
	seq_runner	run;
	emb_acc		acc;
	unsigned	output;
	int			maxlen;
	fb_status	st;

	if (opts == NULL)
		opts = &defaults;
	switch (opts->pooling)
	{
		case FB_POOL_CLS:
			output = FB_OUT_CLS;
			break;
		case FB_POOL_MEAN:
			output = FB_OUT_MEAN;
			break;
		case FB_POOL_POOLER:
			if (m->pool_w == NULL)
				return fb_fail(err, FB_ERR_UNSUPPORTED, "this model has no pooler; use cls or mean pooling");
			output = FB_OUT_POOLED;
			break;
		default:
			return fb_fail(err, FB_ERR_INVALID, "pooling none is served by fb_hidden_states");
	}
	if ((st = fb_resolve_max_length(m, opts, &maxlen, err)) != FB_OK)
		return st;
	acc.m = m;
	acc.o = opts;
	acc.out = out;
	if ((st = fb_runner_init(&run, s, output, emb_done, &acc, err)) != FB_OK)
		return st;
	for (size_t i = 0; i < n; i++)
	{
		int			ntok;

		if ((st = fb_encode_text(s, &texts[i], err)) != FB_OK)
			goto done;
		ntok = (int) (s->enc.n < (size_t) (maxlen - 2) ? s->enc.n : (size_t) (maxlen - 2));
		if ((st = fb_runner_add(&run, s->enc.ids, 0, ntok, i, err)) != FB_OK)
			goto done;
	}
	st = fb_runner_finish(&run, err);
done:
	fb_runner_free(&run);
	return st;
}

typedef struct hs_acc
{
	int			H;
	float	   *out;
} hs_acc;

static fb_status
hs_done(void *arg, const seq_ref *seq, const float *hidden, fb_error *err)
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
	seq_runner	run;
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
	acc.H = m->cfg.hidden;
	acc.out = malloc(sizeof(float) * (size_t) (ntok + 2) * acc.H);
	if (acc.out == NULL)
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	if ((st = fb_runner_init(&run, s, FB_OUT_HIDDEN, hs_done, &acc, err)) != FB_OK)
	{
		free(acc.out);
		return st;
	}
	st = fb_runner_add(&run, s->enc.ids, 0, ntok, 0, err);
	if (st == FB_OK)
		st = fb_runner_finish(&run, err);
	fb_runner_free(&run);
	if (st == FB_OK)
	{
		*out = acc.out;
		*n_tokens = ntok + 2;
	}
	else
		free(acc.out);
	return st;
}
