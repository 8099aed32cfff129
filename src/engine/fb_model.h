/*
 * fb_model.h — in-memory layout of a loaded model and of a session.
 *
 * All fp32 parameters live in one aligned allocation (llm.c style); the
 * structs below hold pointers into it.  Linear weights are transposed at
 * load from PyTorch's [out, in] to [in, out] (row-major), so y = x W + b;
 * the classifier weight cls_w alone keeps [labels, in].
 */
#ifndef FB_MODEL_H
#define FB_MODEL_H

#include "formats/fb_config.h"
#include "cpu/fb_f32.h"
#include "fb_internal.h"
#include "cpu/fb_q8.h"

typedef struct fb_layer
{
	float	   *qkv_w;			/* [H, 3H]: query, key, value side by side */
	float	   *qkv_b;			/* [3H] */
	float	   *attn_out_w;		/* [H, H] (in, out) */
	float	   *attn_out_b;
	float	   *attn_ln_g;		/* [H] */
	float	   *attn_ln_b;
	float	   *inter_w;		/* [H, I] */
	float	   *inter_b;		/* [I] */
	float	   *out_w;			/* [I, H] */
	float	   *out_b;
	float	   *out_ln_g;
	float	   *out_ln_b;
	/* int8 copies of the four weight matrices, NULL in fp32 mode (then the
	 * fp32 pointers above are NULL: int8 mode keeps only these) */
	fb_qmat    *qkv_q,
			   *attn_out_q,
			   *inter_q,
			   *out_q;
	/* packed fp32 copies (fb_f32.h), where the kernel set has an fp32
	 * micro-kernel; then, too, the fp32 pointers above are NULL */
	fb_pmat    *qkv_p,
			   *attn_out_p,
			   *inter_p,
			   *out_p;
} fb_layer;

struct fb_model
{
	fb_config	cfg;
	fb_model_info info;
	fb_tokenizer *tok;
	int			max_batch_tokens;

	float	   *params;			/* parameters except the layer matrices */
	size_t		n_params;
	float	   *mat_params;		/* the four weight matrices of every layer;
								 * freed (NULL) in int8 mode */
	size_t		n_mat_params;

	/* embeddings: E = embedding_size (= H for BERT) */
	float	   *word_emb;		/* [V, E] */
	float	   *pos_emb;		/* [P, E] */
	float	   *type_emb;		/* [T, E] */
	float	   *emb_ln_g;		/* [E] */
	float	   *emb_ln_b;
	float	   *emb_proj_w;		/* [H, E] or NULL (ALBERT / ELECTRA) */
	float	   *emb_proj_b;

	fb_layer   *layers;			/* n_layers (ALBERT: all point to one) */
	fb_precision precision;
	fb_qmat   **qmats;			/* every int8 matrix, for freeing */
	int			n_qmats;
	fb_pmat   **pmats;			/* every packed fp32 matrix, for freeing */
	int			n_pmats;

	float	   *pool_w;			/* [H, H] or NULL */
	float	   *pool_b;

	/* heads */
	float	   *cls_dense_w;	/* ELECTRA classification head [H, H] */
	float	   *cls_dense_b;
	float	   *cls_w;			/* [L, H] */
	float	   *cls_b;			/* [L] */
	float	   *crf_trans;		/* [L, L] from -> to, or NULL */
	float	   *crf_start;		/* [L] */
	float	   *crf_end;		/* [L] */

	char		weight_file[32];
	char		dtype_name[8];
	char	   *dir;
};

/* Per-run scratch; grows to the largest batch seen, then is reused. */
struct fb_session
{
	const fb_model *model;
	fb_run_ctl	ctl;
	int			has_ctl;
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
	float	   *out;			/* task outputs of one batch (grow-only) */
	size_t		out_cap;		/* floats */
	int			n_threads;
	struct fb_pool *pool;		/* NULL when single-threaded */
	fb_encoding enc;			/* tokenizer output, reused */
	uint64_t	tokens;			/* fb_session_tokens (tasks.c) */
};

/* fb_forward with the option of running the last layer for the [CLS] row
 * of each sequence only; hidden then holds n_seq rows (bert.c). */
fb_status	fb_forward_ex(fb_session *s, const fb_batch *b, bool cls_only,
						  float *hidden, float *pooled, fb_error *err);

/* Makes sure the session buffers hold n_tokens rows and sequences of
 * max_len tokens. */
fb_status	fb_session_reserve(fb_session *s, size_t n_tokens, size_t max_len,
							   fb_error *err);

#endif
