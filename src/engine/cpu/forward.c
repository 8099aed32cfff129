/*
 * forward.c — the CPU backend's encoder forward pass and its sessions
 * (fp32, or int8 linear layers; backend.c turns its rows into outputs).
 *
 * Token packing: the sequences of a batch are laid end to end as one
 * [T, H] matrix (T = total tokens), so every linear layer is a single GEMM
 * with no padding rows, and attention runs per sequence on its own rows.
 * Nothing is ever padded, so a text gives the same result alone or in any
 * batch and no mask value can leak into pooling.
 *
 * Threads: each layer is two parallel phases.  Attention splits the
 * (sequence, head) pairs between threads; everything else is row-wise, so
 * each thread takes a slice of the token rows and runs the output
 * projection, LayerNorm, feed-forward and the next layer's QKV projection
 * on it without a barrier in between.  OpenBLAS runs single-threaded
 * inside each worker.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/fb_cpu_backend.h"
#include "cpu/fb_kernels.h"
#include "cpu/fb_ops.h"
#include "cpu/fb_pool.h"

void		openblas_set_num_threads(int);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

/* The engine owns the parallelism: OpenBLAS never starts its own threads
 * beside ours (that would oversubscribe the cores). */
static void
blas_single_threaded(void)
{
	openblas_set_num_threads(1);
}

fb_cpu_session *
fb_cpu_session_new(const fb_cpu_model *cm, const fb_run_ctl *ctl)
{
	fb_cpu_session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	pthread_once(&blas_once, blas_single_threaded);
	s->cm = cm;
	s->model = cm->w;
	s->ctl = ctl;
	s->n_threads = 1;
	return s;
}

int
fb_cpu_session_set_threads(fb_cpu_session *s, int n)
{
	if (n < 1)
		n = 1;
	if (n == s->n_threads)
		return n;
	fb_pool_destroy(s->pool);
	s->pool = NULL;
	s->n_threads = 1;
	if (n > 1)
	{
		s->pool = fb_pool_create(n);
		if (s->pool != NULL)
			s->n_threads = n;
	}
	/* per-thread score buffers are sized on the next run */
	fb_free_aligned(s->scores);
	s->scores = NULL;
	s->cap_seq = 0;
	return s->n_threads;
}

static void
session_release_buffers(fb_cpu_session *s)
{
	fb_free_aligned(s->x);
	fb_free_aligned(s->qkv);
	fb_free_aligned(s->ctx);
	fb_free_aligned(s->tmp);
	fb_free_aligned(s->inter);
	fb_free_aligned(s->scores);
	fb_free_aligned(s->qx);
	fb_free_aligned(s->qscale);
	fb_free_aligned(s->qzero);
	free(s->row_pos);
	free(s->row_ids);
	s->x = s->qkv = s->ctx = s->tmp = s->inter = s->scores = NULL;
	s->qx = NULL;
	s->qscale = NULL;
	s->qzero = NULL;
	s->row_pos = NULL;
	s->row_ids = NULL;
	s->cap_tokens = 0;
	s->cap_seq = 0;
}

void
fb_cpu_session_free(fb_cpu_session *s)
{
	if (s == NULL)
		return;
	fb_pool_destroy(s->pool);
	session_release_buffers(s);
	free(s);
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

/* Bytes per quantised activation row: the widest GEMM input, padded. */
static size_t
q_ld(const fb_weights *c)
{
	size_t		k = (size_t) (c->intermediate > c->hidden ? c->intermediate : c->hidden);

	return (k + 3) & ~(size_t) 3;
}

fb_status
fb_cpu_session_reserve(fb_cpu_session *s, size_t n_tokens, size_t max_len, fb_error *err)
{
	const fb_weights *c = s->model;
	size_t		wide = (size_t) (c->embedding_size > c->hidden ? c->embedding_size : c->hidden);
	bool		ok = true;

	if (n_tokens > s->cap_tokens)
	{
		fb_free_aligned(s->x);
		fb_free_aligned(s->qkv);
		fb_free_aligned(s->ctx);
		fb_free_aligned(s->tmp);
		fb_free_aligned(s->inter);
		fb_free_aligned(s->qx);
		fb_free_aligned(s->qscale);
		fb_free_aligned(s->qzero);
		s->qx = NULL;
		s->qscale = NULL;
		s->qzero = NULL;
		free(s->row_pos);
		free(s->row_ids);
		s->x = alloc_floats(n_tokens, wide, &ok);
		s->qkv = alloc_floats(n_tokens, 3 * (size_t) c->hidden, &ok);
		s->ctx = alloc_floats(n_tokens, (size_t) c->hidden, &ok);
		s->tmp = alloc_floats(n_tokens, wide, &ok);
		s->inter = alloc_floats(n_tokens, (size_t) c->intermediate, &ok);
		if (s->cm->precision == FB_PRECISION_INT8)
		{
			/* byte rows as wide as the widest GEMM input (q_ld / 4 floats
			 * hold q_ld bytes) */
			s->qx = alloc_floats(n_tokens, q_ld(c) / 4, &ok);
			s->qscale = alloc_floats(n_tokens, 1, &ok);
			s->qzero = alloc_floats(n_tokens, 1, &ok);
		}
		s->row_pos = malloc(sizeof(int32_t) * n_tokens);
		s->row_ids = malloc(sizeof(int32_t *) * n_tokens);
		if (s->row_pos == NULL || s->row_ids == NULL)
			ok = false;
		s->cap_tokens = ok ? n_tokens : 0;
	}
	if (ok && (max_len > s->cap_seq || s->scores == NULL))
	{
		size_t		stride = max_len * max_len;

		if (s->cm->precision == FB_PRECISION_INT8)
		{
			/* the bfloat16 kernel's packed head (fb_attn.h) */
			size_t		bf16 = (fb_attn_bf16_scratch((int) max_len, c->hidden / c->n_heads) + 3) / 4;

			stride = (stride > bf16 ? stride : bf16);
		}
		stride = (stride + 15) & ~(size_t) 15;	/* each thread's part 64-byte aligned */
		fb_free_aligned(s->scores);
		s->scores = alloc_floats(stride, (size_t) s->n_threads, &ok);
		s->score_stride = stride;
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
session_interrupted(const fb_cpu_session *s)
{
	return fb_interrupted(s->ctl);
}

/* State shared by the threads of one forward pass. */
typedef struct fwd_job
{
	fb_cpu_session *s;
	const fb_batch *b;
	const size_t *seq_off;		/* first packed row of each sequence */
	const int  *chunk_seq;		/* wide batches: chunk k = sequences
								 * [chunk_seq[k], chunk_seq[k + 1]) */
	int			n_chunks;
	size_t		T;
	int			layer;			/* layer whose row phase runs next */
	int			cls_only;		/* last layer for the [CLS] rows only */
	float	   *cx,				/* cls_only: compact [n_seq, H] rows */
			   *cctx,
			   *ctmp;
	size_t		next;			/* next unclaimed work item of the phase
								 * (atomic; reset before each phase) */
	int			nonfinite;		/* set by any thread that saw inf/nan */
	int			stop;			/* the host asked to stop (atomic) */
	pthread_mutex_t mu;
} fwd_job;

/* Rows a thread runs through a whole layer between two stop checks. */
#define FB_ROWS_PER_CHECK 512

/*
 * Inside a phase: thread 0 (the host's own thread, the only one allowed to
 * call the host's interrupt callback) polls it, before each item it claims
 * and while it waits for the others (job_poll), and raises j->stop; every
 * thread stops taking work once it is set.  So a cancel lands within one
 * sequence's attention or FB_ROWS_PER_CHECK rows (one sequence's, if it is
 * longer), however large the batch.
 */
static bool
job_stopping(fwd_job *j, int tid)
{
	if (tid == 0 && !__atomic_load_n(&j->stop, __ATOMIC_RELAXED) && session_interrupted(j->s))
		__atomic_store_n(&j->stop, 1, __ATOMIC_RELAXED);
	return __atomic_load_n(&j->stop, __ATOMIC_RELAXED) != 0;
}

/* The caller's poll while it waits for the other threads of a phase
 * (fb_pool_run_polled): with work claimed dynamically, thread 0 may run
 * out of chunks first and would otherwise not poll until the phase ends. */
static bool
job_poll(void *arg)
{
	return job_stopping(arg, 0);
}

/* Rows [r0, r1) of word + position + token-type (0) embeddings, then
 * LayerNorm, into emb ([T, E]; the projection to H, if any, follows). */
static void
embed_rows(fb_cpu_session *s, size_t r0, size_t r1, float *emb)
{
	const fb_weights *m = s->model;
	const fb_weights *c = m;
	int			E = c->embedding_size;

	for (size_t r = r0; r < r1; r++)
	{
		const float *w = m->word_emb + (size_t) *s->row_ids[r] * E;
		const float *pe = m->pos_emb + (size_t) s->row_pos[r] * E;
		const float *te = m->type_emb;
		float	   *o = emb + r * E;

		for (int i = 0; i < E; i++)
			o[i] = w[i] + pe[i] + te[i];
	}
	fb_cpu_kernels_get()->layernorm(emb + r0 * E, NULL, m->emb_ln_g, m->emb_ln_b,
									(int) (r1 - r0), E, c->layer_norm_eps);
}

static void serial_linear(fb_cpu_session *s, size_t r0, const float *x,
						  const float *w, const fb_qmat *q, const fb_pmat *p,
						  const float *bias, float *y, int T, int N, int K,
						  int act);

/* Rows [r0, r1): embeddings (+ projection) and layer 0's QKV. */
static void
rows_embed(fwd_job *j, size_t r0, size_t r1)
{
	fb_cpu_session *s = j->s;
	const fb_weights *m = s->model;
	int			E = m->embedding_size,
				H = m->hidden;
	int			n = (int) (r1 - r0);

	embed_rows(s, r0, r1, m->emb_proj_w != NULL ? s->tmp : s->x);
	if (m->emb_proj_w != NULL)
	{
		fb_cpu_fill_bias(s->x + r0 * H, m->emb_proj_b, n, H);
		/* one row per call, so a row's bits do not depend on its chunk
		 * (fb_cpu_pooler); E x H is small next to the layers */
		for (int i = 0; i < n; i++)
			fb_cpu_linear(s->tmp + (r0 + i) * E, m->emb_proj_w, s->x + (r0 + i) * H, 1, H, E, 1.0f);
	}
	serial_linear(s, r0, s->x + r0 * H, s->cm->layers[0].qkv_w, s->cm->layers[0].qkv_q,
				  s->cm->layers[0].qkv_p, s->cm->layers[0].qkv_b, s->qkv + r0 * 3 * H, n, 3 * H, H, 0);
}

/*
 * How a layer's linear maps run: serially on the calling thread's rows
 * (wide batches, rows already split between threads) or with the output
 * columns split between the pool's threads (narrow batches).  act applies
 * the model's activation to the result.
 */
typedef void (*linear_fn) (fb_cpu_session *s, size_t r0, const float *x,
						   const float *w, const fb_qmat *q, const fb_pmat *p,
						   const float *bias, float *y, int T, int N, int K,
						   int act);

/* Quantised copy of rows [r0, r0 + T) of a GEMM input (int8 mode); the
 * rows' slice of the session's buffers belongs to the calling thread. */
static fb_q8_rows
quantize_rows(fb_cpu_session *s, size_t r0, const float *x, const fb_qmat *q, int T)
{
	fb_q8_rows	r;

	r.q = s->qx + r0 * q_ld(s->model);
	r.scale = s->qscale + r0;
	r.zero = s->qzero + r0;
	r.Kp = q->Kp;
	fb_cpu_kernels_get()->q8_quantize(x, T, q->K, &r);
	return r;
}

/* The model's activation, as an element-wise function. */
static fb_act_fn
act_fn(const fb_weights *c)
{
	const fb_cpu_kernels *k = fb_cpu_kernels_get();

	if (c->act == FB_ACT_GELU_ERF)
		return k->gelu_erf;
	if (c->act == FB_ACT_GELU_TANH)
		return k->gelu_tanh;
	return fb_cpu_relu;
}

/* The int8 two-panel kernel that applies act itself, if the set has one. */
static fb_q8_panel2_fn
q8_panel2_act(fb_act_fn act)
{
	const fb_cpu_kernels *k = fb_cpu_kernels_get();

	return act != NULL && act == k->gelu_erf ? k->q8_panel2_gelu : NULL;
}

/* Rows [r0, r0 + T) of y += x W (+ act) on the calling thread, or y = bias
 * + x W (+ act) when bias is not NULL; q is the int8 copy of W in int8
 * mode, p the packed fp32 copy in packed fp32 mode, else both NULL and w
 * the row-major matrix.  The int8 and packed kernels add the bias as they
 * store (no pass over y before the GEMM). */
static void
serial_linear(fb_cpu_session *s, size_t r0, const float *x, const float *w,
			  const fb_qmat *q, const fb_pmat *p, const float *bias, float *y,
			  int T, int N, int K, int act)
{
	if (q != NULL)
	{
		fb_q8_rows	r = quantize_rows(s, r0, x, q, T);
		fb_act_fn	f = act ? act_fn(s->model) : NULL;

		fb_q8_gemm_cols(fb_cpu_kernels_get()->q8_panel, fb_cpu_kernels_get()->q8_panel2, q8_panel2_act(f),
						&r, T, q, bias, f, y, 0, N);
	}
	else if (p != NULL)
		fb_f32_gemm_cols(fb_cpu_kernels_get()->f32_panel, fb_cpu_kernels_get()->f32_mr, x, T, p, bias,
						 act ? act_fn(s->model) : NULL, y, 0, N);
	else
	{
		if (bias != NULL)
			fb_cpu_fill_bias(y, bias, T, N);
		fb_cpu_linear(x, w, y, T, N, K, 1.0f);
		if (act)
			act_fn(s->model) (y, (size_t) T * N);
	}
}

/*
 * n rows of layer j->layer after attention: output projection, residual,
 * LayerNorm, feed-forward, residual, LayerNorm, then (when next_qkv is not
 * NULL) the next layer's QKV projection.  x, ctx, tmp, inter point at the
 * first of the n rows.
 */
static void
rows_layer(fwd_job *j, linear_fn linear, size_t r0, float *x, const float *ctx,
		   float *tmp, float *inter, int n, float *next_qkv)
{
	fb_cpu_session *s = j->s;
	const fb_weights *m = s->model;
	const fb_weights *c = m;
	const fb_cpu_kernels *k = fb_cpu_kernels_get();
	const fb_cpu_layer *L = &s->cm->layers[j->layer];
	int			H = c->hidden,
				I = c->intermediate;

	/*
	 * tmp = LN(ctx W_o + b_o + x): the GEMM stores bias + product without
	 * reading tmp, and the residual x joins in LayerNorm's first pass over
	 * each row (no separate pass over the rows for it).
	 */
	linear(s, r0, ctx, L->attn_out_w, L->attn_out_q, L->attn_out_p, L->attn_out_b, tmp, n, H, H, 0);
	k->layernorm(tmp, x, L->attn_ln_g, L->attn_ln_b, n, H, c->layer_norm_eps);

	/* inter = act(tmp W_i + b_i) */
	linear(s, r0, tmp, L->inter_w, L->inter_q, L->inter_p, L->inter_b, inter, n, I, H, 1);

	/* x = LN(inter W_out + b_out + tmp) */
	linear(s, r0, inter, L->out_w, L->out_q, L->out_p, L->out_b, x, n, H, I, 0);
	k->layernorm(x, tmp, L->out_ln_g, L->out_ln_b, n, H, c->layer_norm_eps);

	if (next_qkv != NULL)
	{
		const fb_cpu_layer *next = &s->cm->layers[j->layer + 1];

		linear(s, r0, x, next->qkv_w, next->qkv_q, next->qkv_p, next->qkv_b, next_qkv, n,
			   3 * H, H, 0);
	}
	else
	{
		for (size_t i = 0; i < (size_t) n * H; i++)
		{
			if (!isfinite(x[i]))
			{
				pthread_mutex_lock(&j->mu);
				j->nonfinite = 1;
				pthread_mutex_unlock(&j->mu);
				break;
			}
		}
	}
}

static void attention_head(fb_cpu_session *s, const float *qkv, float *out, float *scores,
						   int L, int n_query, int h);

/*
 * Attention of layer j->layer + next over sequences [a, b) (all heads), on
 * the calling thread, into their ctx rows; a stop request is seen between
 * sequences.  In the last layer of a cls_only pass only the [CLS] rows are
 * queries.
 */
static void
chunk_attention(fwd_job *j, int tid, int a, int b, int next)
{
	fb_cpu_session *s = j->s;
	int			n_heads = s->model->n_heads,
				H = s->model->hidden;
	float	   *scores = s->scores + (size_t) tid * s->score_stride;
	bool		cls = j->cls_only && j->layer + next + 1 == s->model->n_layers;

	for (int i = a; i < b && !job_stopping(j, tid); i++)
	{
		size_t		off = j->seq_off[i];

		for (int h = 0; h < n_heads; h++)
			attention_head(s, s->qkv + off * 3 * H, s->ctx + off * H, scores,
						   j->b->lens[i], cls ? 1 : j->b->lens[i], h);
	}
}

/*
 * Claims the next unclaimed chunk of a wide pass: false when none is left
 * or a stop was requested; else its number and first and one-past-last
 * packed rows.
 */
static bool
next_chunk(fwd_job *j, int tid, int *k, size_t *r0, size_t *r1)
{
	int			b;

	if (job_stopping(j, tid))
		return false;
	*k = (int) __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
	if (*k >= j->n_chunks)
		return false;
	b = j->chunk_seq[*k + 1];
	*r0 = j->seq_off[j->chunk_seq[*k]];
	*r1 = b < j->b->n_seq ? j->seq_off[b] : j->T;
	return true;
}

/*
 * Wide batches: chunks of whole sequences are claimed one at a time; each
 * gets its embeddings, layer 0's QKV projection and layer 0's attention on
 * the same thread, so attention reads Q, K and V while they are still in
 * cache (a batch's whole QKV matrix can exceed the L3 cache: 38 MB for
 * 4,096 BERT-base tokens).
 */
static void
phase_embed(void *arg, int tid, int nt)
{
	fwd_job    *j = arg;
	int			k;
	size_t		r0,
				r1;

	(void) nt;
	while (next_chunk(j, tid, &k, &r0, &r1))
	{
		rows_embed(j, r0, r1);
		chunk_attention(j, tid, j->chunk_seq[k], j->chunk_seq[k + 1], 0);
	}
}

/*
 * Most rows of a claimed chunk of a wide pass (chunks hold whole
 * sequences): about four chunks per thread (late threads can still even
 * out), at most FB_ROWS_PER_CHECK, at least 64 (each chunk re-reads the
 * layer's weights).
 */
static size_t
rows_chunk(size_t T, int nt)
{
	size_t		c = T / ((size_t) nt * 4);

	return c < 64 ? 64 : c > FB_ROWS_PER_CHECK ? FB_ROWS_PER_CHECK : c;
}

static void
phase_rows(void *arg, int tid, int nt)
{
	fwd_job    *j = arg;
	fb_cpu_session *s = j->s;
	int			H = s->model->hidden,
				I = s->model->intermediate;
	bool		last = j->layer + 1 == s->model->n_layers;
	int			k;
	size_t		r0,
				r1;

	if (j->cls_only && last)
	{
		/* compact rows: one per sequence */
		fb_split_range((size_t) j->b->n_seq, tid, nt, 1, &r0, &r1);
		if (r0 < r1)
			rows_layer(j, serial_linear, r0, j->cx + r0 * H, j->cctx + r0 * H,
					   j->ctmp + r0 * H, s->inter + r0 * I, (int) (r1 - r0), NULL);
		return;
	}

	/*
	 * Chunks of whole sequences are claimed one at a time rather than
	 * split in equal parts up front, so a thread whose core is shared
	 * (other backends, the host) does less of the work instead of holding
	 * the others at the end of the phase.  A chunk runs this layer's rows,
	 * the next layer's QKV projection and, while Q, K and V are still in
	 * cache, the next layer's attention for its sequences.
	 */
	while (next_chunk(j, tid, &k, &r0, &r1))
	{
		rows_layer(j, serial_linear, r0, s->x + r0 * H, s->ctx + r0 * H,
				   s->tmp + r0 * H, s->inter + r0 * I, (int) (r1 - r0),
				   last ? NULL : s->qkv + r0 * 3 * H);
		if (!last)
			chunk_attention(j, tid, j->chunk_seq[k], j->chunk_seq[k + 1], 1);
	}
}

/* int8 mode's attention kernel: bfloat16 where the CPU has it, unless
 * FINBERT_INT8_ATTENTION=fp32 (env.c); NULL runs attention in fp32. */
static fb_attn_bf16_fn
int8_attention(void)
{
	return fb_env_get()->int8_attention_fp32 ? NULL : fb_cpu_kernels_get()->attn_bf16;
}

/* One attention head of one sequence: rows [L, 3H] of qkv -> ctx, for
 * the first n_query rows (L, or 1 for the [CLS] row only). */
static void
attention_head(fb_cpu_session *s, const float *qkv, float *out, float *scores,
			   int L, int n_query, int h)
{
	const fb_weights *c = s->model;
	int			H = c->hidden,
				dh = H / c->n_heads;
	int			ld = 3 * H;
	fb_attn_bf16_fn bf16 = s->cm->precision == FB_PRECISION_INT8 ? int8_attention() : NULL;

	if (bf16 != NULL)
	{
		bf16(qkv + (size_t) h * dh, qkv + H + (size_t) h * dh, qkv + 2 * (size_t) H + (size_t) h * dh,
			 ld, out + (size_t) h * dh, H, scores, n_query, L, dh);
		return;
	}
	fb_cpu_attention_head(qkv + (size_t) h * dh, qkv + H + (size_t) h * dh,
						  qkv + 2 * (size_t) H + (size_t) h * dh, ld,
						  out + (size_t) h * dh, H, scores, n_query, L, dh,
						  fb_cpu_kernels_get()->softmax);
}

static void
phase_attention(void *arg, int tid, int nt)
{
	fwd_job    *j = arg;
	fb_cpu_session *s = j->s;
	int			n_heads = s->model->n_heads,
				H = s->model->hidden;
	size_t		items = (size_t) j->b->n_seq * n_heads;
	float	   *scores = s->scores + (size_t) tid * s->score_stride;
	bool		cls = j->cls_only && j->layer + 1 == s->model->n_layers;

	/* (sequence, head) items claimed one at a time, as the row chunks */
	(void) nt;
	while (!job_stopping(j, tid))
	{
		size_t		it = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		int			i,
					h;
		size_t		off;

		if (it >= items)
			break;
		i = (int) (it / n_heads);
		h = (int) (it % n_heads);
		off = j->seq_off[i];

		attention_head(s, s->qkv + off * 3 * H, s->ctx + off * H, scores,
					   j->b->lens[i], cls ? 1 : j->b->lens[i], h);
	}
}

/* ---------------------------------------------------------------------
 * Narrow batches (few token rows): splitting rows would leave each thread
 * a thin GEMM that re-packs every weight matrix, so instead each linear
 * layer splits its output columns between threads (each reads only its
 * part of the weights) and the cheap row-wise steps run on the caller.
 * --------------------------------------------------------------------- */
typedef struct lin_job
{
	fb_cpu_session *s;
	const float *x;				/* [T, K] */
	const float *w;				/* [K, N] */
	const fb_qmat *q;			/* int8 mode: W quantised, x in qx */
	const fb_pmat *p;			/* packed fp32 mode */
	const float *bias;			/* int8 / packed: added as y is stored */
	fb_q8_rows	qx;
	float	   *y;				/* [T, N] (pre-filled with the bias for BLAS) */
	int			T,
				N,
				K;
	int			act;			/* apply the model's activation */
} lin_job;

static void
phase_linear_cols(void *arg, int tid, int nt)
{
	lin_job    *j = arg;
	size_t		n0,
				n1;

	fb_split_range((size_t) j->N, tid, nt, 16, &n0, &n1);
	if (n0 >= n1)
		return;
	fb_act_fn	act = j->act ? act_fn(j->s->model) : NULL;

	if (j->q != NULL)
		fb_q8_gemm_cols(fb_cpu_kernels_get()->q8_panel, fb_cpu_kernels_get()->q8_panel2, q8_panel2_act(act),
						&j->qx, j->T, j->q, j->bias, act, j->y, (int) n0, (int) n1);
	else if (j->p != NULL)
		fb_f32_gemm_cols(fb_cpu_kernels_get()->f32_panel, fb_cpu_kernels_get()->f32_mr, j->x, j->T, j->p,
						 j->bias, act, j->y, (int) n0, (int) n1);
	else
	{
		fb_cpu_linear_cols(j->x, j->w, j->y, j->T, (int) n0, (int) n1, j->N, j->K);
		if (act != NULL)
			for (int t = 0; t < j->T; t++)
				act(j->y + (size_t) t * j->N + n0, n1 - n0);
	}
}

/* y[T, N] += x[T, K] W (y = bias + x W with a bias), output columns
 * split between the threads (the int8 input is quantised once, on the
 * caller). */
static void
par_linear(fb_cpu_session *s, size_t r0, const float *x, const float *w,
		   const fb_qmat *q, const fb_pmat *p, const float *bias, float *y,
		   int T, int N, int K, int act)
{
	lin_job		j = {s, x, w, q, p, bias, {0}, y, T, N, K, act};

	if (q != NULL)
		j.qx = quantize_rows(s, 0, x, q, T);
	if (q == NULL && p == NULL && bias != NULL)
	{
		fb_cpu_fill_bias(y, bias, T, N);
		j.bias = NULL;
	}

	fb_pool_run(s->pool, phase_linear_cols, &j);
}

/* Embeddings of all rows on the caller, projections column-parallel. */
static void
narrow_embed(fwd_job *j)
{
	fb_cpu_session *s = j->s;
	const fb_weights *m = s->model;
	int			H = m->hidden,
				E = m->embedding_size,
				T = (int) j->T;

	embed_rows(s, 0, j->T, m->emb_proj_w != NULL ? s->tmp : s->x);
	if (m->emb_proj_w != NULL)
	{
		fb_cpu_fill_bias(s->x, m->emb_proj_b, T, H);
		par_linear(s, 0, s->tmp, m->emb_proj_w, NULL, NULL, NULL, s->x, T, H, E, 0);
	}
	par_linear(s, 0, s->x, s->cm->layers[0].qkv_w, s->cm->layers[0].qkv_q, s->cm->layers[0].qkv_p,
			   s->cm->layers[0].qkv_b, s->qkv, T, 3 * H, H, 0);
}

/*
 * The forward pass.  With cls_only, the last layer runs for the first row
 * of each sequence only (all a sequence-classification head or CLS/pooler
 * embedding reads): its keys and values still come from every token, so
 * the result is exact while about three quarters of the last layer's work
 * is skipped.  *rows then points at n_seq rows instead of sum(lens).
 * The batch has been checked (fb_batch_check).  *rows points into the
 * session's buffers: valid until its next forward pass.
 */
fb_status
fb_cpu_forward(fb_cpu_session *s, const fb_batch *b, bool cls_only,
			   const float **rows, fb_error *err)
{
	const fb_weights *m = s->model;
	const fb_weights *c = m;
	int			H = c->hidden;
	size_t		T = 0;
	int			maxL = 0;
	size_t	   *seq_off;
	int		   *chunk_seq;
	fwd_job		job;
	bool		narrow;
	fb_status	st = FB_OK;

	for (int i = 0; i < b->n_seq; i++)
	{
		T += (size_t) b->lens[i];
		maxL = b->lens[i] > maxL ? b->lens[i] : maxL;
	}
	if ((st = fb_cpu_session_reserve(s, T, (size_t) maxL, err)) != FB_OK)
		return st;
	seq_off = malloc(sizeof(size_t) * (size_t) b->n_seq);
	chunk_seq = malloc(sizeof(int) * ((size_t) b->n_seq + 1));
	if (seq_off == NULL || chunk_seq == NULL)
	{
		free(seq_off);
		free(chunk_seq);
		return fb_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	{
		size_t		row = 0;

		for (int i = 0; i < b->n_seq; i++)
		{
			seq_off[i] = row;
			for (int p = 0; p < b->lens[i]; p++, row++)
			{
				s->row_pos[row] = p;
				s->row_ids[row] = &b->ids[i][p];
			}
		}
	}

	memset(&job, 0, sizeof(job));
	job.s = s;
	job.b = b;
	job.seq_off = seq_off;
	job.T = T;
	job.cls_only = cls_only;
	pthread_mutex_init(&job.mu, NULL);

	narrow = s->pool != NULL && T < fb_env_get()->narrow_rows * (size_t) s->n_threads;
	if (!narrow)
	{
		/*
		 * chunks of whole sequences, at most rows_chunk() rows each unless
		 * one sequence is longer (then it is a chunk of its own): at most
		 * FB_ROWS_PER_CHECK rows between two stop checks
		 */
		size_t		target = rows_chunk(T, s->n_threads),
					rows = 0;

		job.n_chunks = 0;
		for (int i = 0; i < b->n_seq; i++)
		{
			if (rows == 0 || rows + (size_t) b->lens[i] > target)
			{
				chunk_seq[job.n_chunks++] = i;
				rows = 0;
			}
			rows += (size_t) b->lens[i];
		}
		chunk_seq[job.n_chunks] = b->n_seq;
		job.chunk_seq = chunk_seq;
	}
	job.layer = 0;
	if (narrow)
		narrow_embed(&job);
	else
		fb_pool_run_polled(s->pool, phase_embed, &job, job_poll, &job);	/* + layer 0's attention */
	for (int l = 0; l < c->n_layers; l++)
	{
		if (job.stop || session_interrupted(s))
		{
			st = fb_fail(err, FB_ERR_INTERRUPTED, "interrupted");
			goto done;
		}
		job.layer = l;
		if (narrow)
		{
			job.next = 0;
			fb_pool_run_polled(s->pool, phase_attention, &job, job_poll, &job);
			if (job.stop || session_interrupted(s))
			{
				st = fb_fail(err, FB_ERR_INTERRUPTED, "interrupted");
				goto done;
			}
		}
		if (cls_only && l + 1 == c->n_layers)
		{
			/* gather the [CLS] rows into the (now free) qkv buffer */
			job.cx = s->qkv;
			job.cctx = s->qkv + (size_t) b->n_seq * H;
			job.ctmp = s->qkv + 2 * (size_t) b->n_seq * H;
			for (int i = 0; i < b->n_seq; i++)
			{
				memcpy(job.cx + (size_t) i * H, s->x + seq_off[i] * H, sizeof(float) * H);
				memcpy(job.cctx + (size_t) i * H, s->ctx + seq_off[i] * H, sizeof(float) * H);
			}
		}
		if (!narrow)
		{
			job.next = 0;
			fb_pool_run_polled(s->pool, phase_rows, &job, job_poll, &job);
		}
		else if (cls_only && l + 1 == c->n_layers)
			rows_layer(&job, par_linear, 0, job.cx, job.cctx, job.ctmp, s->inter,
					   b->n_seq, NULL);
		else
			rows_layer(&job, par_linear, 0, s->x, s->ctx, s->tmp, s->inter, (int) T,
					   l + 1 < c->n_layers ? s->qkv : NULL);
	}
	if (job.stop)
	{
		/* stopped inside the last layer's rows: the output is incomplete */
		st = fb_fail(err, FB_ERR_INTERRUPTED, "interrupted");
		goto done;
	}
	if (job.nonfinite)
	{
		st = fb_fail(err, FB_ERR_NUMERIC, "the encoder produced a non-finite value");
		goto done;
	}
	/* the final hidden state's rows */
	*rows = cls_only ? job.cx : s->x;
done:
	pthread_mutex_destroy(&job.mu);
	free(seq_off);
	free(chunk_seq);
	return st;
}
