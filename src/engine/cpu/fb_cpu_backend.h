/*
 * fb_cpu_backend.h — the CPU backend: its weight layout and sessions.
 *
 * The CPU backend owns how the layer matrices are kept: row-major fp32
 * for BLAS (kernel sets without an fp32 micro-kernel), packed fp32 panels
 * (fb_f32.h, AVX-512) or int8 panels (fb_q8.h, precision int8).  The
 * packed and int8 copies replace the engine's fp32 matrices, which the
 * engine then frees.
 */
#ifndef FB_CPU_BACKEND_H
#define FB_CPU_BACKEND_H

#include "fb_backend.h"
#include "fb_internal.h"
#include "cpu/fb_f32.h"
#include "cpu/fb_q8.h"

/* One layer as the CPU reads it: the engine's vectors, and each of the
 * four matrices in exactly one form (w, q or p; the others NULL). */
typedef struct fb_cpu_layer
{
	const float *qkv_w,			/* [H, 3H] row-major, or NULL */
			   *qkv_b,
			   *attn_out_w,
			   *attn_out_b,
			   *attn_ln_g,
			   *attn_ln_b,
			   *inter_w,
			   *inter_b,
			   *out_w,
			   *out_b,
			   *out_ln_g,
			   *out_ln_b;
	fb_qmat    *qkv_q,			/* int8 copies (precision int8) */
			   *attn_out_q,
			   *inter_q,
			   *out_q;
	fb_pmat    *qkv_p,			/* packed fp32 copies (fb_f32.h) */
			   *attn_out_p,
			   *inter_p,
			   *out_p;
} fb_cpu_layer;

typedef struct fb_cpu_model
{
	const fb_weights *w;		/* the engine's (outlives this model) */
	fb_cpu_layer *layers;		/* n_layers (ALBERT: copies of one) */
	fb_precision precision;		/* FP32 or INT8 */
	fb_qmat   **qmats;			/* every int8 matrix, for freeing */
	int			n_qmats;
	fb_pmat   **pmats;			/* every packed fp32 matrix, for freeing */
	int			n_pmats;
} fb_cpu_model;

/* Per-run scratch; grows to the largest batch seen, then is reused. */
typedef struct fb_cpu_session
{
	const fb_cpu_model *cm;
	const fb_weights *model;	/* cm->w */
	const fb_run_ctl *ctl;		/* the engine session's, may be NULL */
	size_t		cap_tokens;		/* rows the activation buffers hold */
	size_t		cap_seq;		/* longest sequence the score buffer holds */
	float	   *x;				/* [T, H] hidden state */
	float	   *qkv;			/* [T, 3H] */
	float	   *ctx;			/* [T, H] attention context */
	float	   *tmp;			/* [T, H] */
	float	   *inter;			/* [T, I] */
	float	   *scores;			/* n_threads x score_stride: attention scratch */
	size_t		score_stride;	/* floats per thread: [Lmax, Lmax] scores or the
								 * bfloat16 kernel's scratch, whichever is larger */
	uint8_t    *qx;				/* int8 mode: [T, q_ld] quantised rows */
	float	   *qscale;			/* [T] their scales */
	int32_t    *qzero;			/* [T] and zero points */
	int32_t    *row_pos;		/* [T] position of each packed row */
	const int32_t **row_ids;	/* [T] pointer to each row's token id */
	int			n_threads;
	struct fb_pool *pool;		/* NULL when single-threaded */
} fb_cpu_session;

fb_cpu_session *fb_cpu_session_new(const fb_cpu_model *cm, const fb_run_ctl *ctl);
void		fb_cpu_session_free(fb_cpu_session *s);
int			fb_cpu_session_set_threads(fb_cpu_session *s, int n);
/* Makes sure the buffers hold n_tokens rows and sequences of max_len
 * tokens. */
fb_status	fb_cpu_session_reserve(fb_cpu_session *s, size_t n_tokens, size_t max_len,
								   fb_error *err);

/* The encoder on a checked batch (forward.c); *rows: the last layer's
 * rows, all of them or (cls_only) each sequence's first. */
fb_status	fb_cpu_forward(fb_cpu_session *s, const fb_batch *b, bool cls_only,
						   const float **rows, fb_error *err);

/*
 * Heads on the last layer's rows (heads.c), the readable fp32 reference
 * every backend's heads are checked against.  H = hidden, NL = labels.
 */
/* pooled[n, H] = tanh(cls[n, H] pool_w + pool_b); scratch unused */
void		fb_cpu_pooler(const fb_weights *w, const float *cls, int n, float *pooled);
/* logits[NL] of one sequence: ELECTRA from its [CLS] row (dense, GELU,
 * out_proj), BERT / ALBERT from its pooled row; scratch [H] */
void		fb_cpu_sequence_head(const fb_weights *w, const float *cls_row,
								 const float *pooled, float *scratch, float *logits);
/* mean[H] of rows[len, H] */
void		fb_cpu_mean_rows(const float *rows, int len, int H, float *mean);
/* logits[T, NL] = rows[T, H] cls_w^T + cls_b */
void		fb_cpu_token_head(const fb_weights *w, const float *rows, size_t T,
							  float *logits);

#endif
