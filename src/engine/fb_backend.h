/*
 * fb_backend.h — the seam between the engine and a compute backend.
 *
 * Everything around the encoder (tokenizer, windows over long texts,
 * batching, label decoding, CRF Viterbi, span merging, JSON/SQL) is shared;
 * a backend only turns a packed batch of token ids into the outputs asked
 * for (hidden states, pooled rows, head logits).  In the spirit of ggml's
 * ggml_backend_i: one struct of function pointers per backend, opaque
 * model and session state owned by the backend, and the engine never asks
 * which backend it runs on.
 *
 * Backends: the CPU (src/engine/cpu/, linked in) and CUDA (kernels/, a
 * shared module the engine dlopen()s, so a CPU-only build and server need
 * no CUDA library).  The module is built from the same tree but compiled
 * apart, so everything that crosses this interface is plain C data:
 * fb_weights (the fp32 parameters the engine loaded), fb_batch, fb_outputs,
 * fb_error.  FB_BACKEND_ABI changes whenever one of them does; the engine
 * refuses a module of another ABI.
 */
#ifndef FB_BACKEND_H
#define FB_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "finbert.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FB_BACKEND_ABI 1

/* Symbol a backend module exports: returns its interface for the ABI the
 * engine speaks, NULL when it speaks another one. */
#define FB_BACKEND_ENTRY "fb_backend_module_entry"

/* One encoder layer's fp32 parameters.  Linear weights are [in, out]
 * row-major (transposed at load from PyTorch's [out, in]): y = x W + b. */
typedef struct fb_weights_layer
{
	float	   *qkv_w;			/* [H, 3H]: query, key, value side by side */
	float	   *qkv_b;			/* [3H] */
	float	   *attn_out_w;		/* [H, H] */
	float	   *attn_out_b;
	float	   *attn_ln_g;		/* [H] */
	float	   *attn_ln_b;
	float	   *inter_w;		/* [H, I] */
	float	   *inter_b;		/* [I] */
	float	   *out_w;			/* [I, H] */
	float	   *out_b;
	float	   *out_ln_g;
	float	   *out_ln_b;
} fb_weights_layer;

/* Storage type of the checkpoint's tensors (what a device copy keeps). */
typedef enum fb_source_dtype
{
	FB_SRC_F32 = 0,
	FB_SRC_F16,
	FB_SRC_BF16,
	FB_SRC_MIXED
} fb_source_dtype;

/*
 * A loaded model as a backend sees it: geometry and fp32 parameters in the
 * engine's memory.  Pointers stay valid until model_free, except the four
 * layer matrices, which the engine frees after model_init when the backend
 * says it keeps its own copies.
 */
typedef struct fb_weights
{
	fb_arch		arch;
	fb_head		head;
	fb_act		act;
	fb_source_dtype dtype;
	int			n_layers;
	int			hidden;			/* H */
	int			n_heads;
	int			intermediate;	/* I */
	int			embedding_size; /* E (= H unless factorised) */
	int			vocab_size;
	int			max_position;
	int			type_vocab_size;
	int			n_labels;		/* NL, 0 without a head */
	float		layer_norm_eps;

	float	   *word_emb;		/* [V, E] */
	float	   *pos_emb;		/* [P, E] */
	float	   *type_emb;		/* [T, E]: token type 0 is row 0 */
	float	   *emb_ln_g;		/* [E] */
	float	   *emb_ln_b;
	float	   *emb_proj_w;		/* [E, H] or NULL (ALBERT, ELECTRA E != H) */
	float	   *emb_proj_b;
	fb_weights_layer *layers;	/* n_layers; ALBERT: every entry equal */
	float	   *pool_w;			/* [H, H] or NULL */
	float	   *pool_b;
	float	   *cls_dense_w;	/* ELECTRA sequence head [H, H], else NULL */
	float	   *cls_dense_b;
	float	   *cls_w;			/* [NL, H] (PyTorch layout), NULL without a head */
	float	   *cls_b;			/* [NL] */
} fb_weights;

/* Options a backend receives with a model. */
typedef struct fb_backend_options
{
	fb_precision precision;
	int			device;			/* device ordinal (CUDA) */
	int			max_batch_tokens;
	int			attention;		/* FB_ATTENTION_*: a backend's variant */
} fb_backend_options;

/* What model_init reports back. */
typedef struct fb_backend_model_info
{
	bool		needs_fp32_layers;	/* false: the engine may free the fp32
									 * layer matrices (the backend has its
									 * own copies) */
	fb_precision precision;		/* what the linear layers run in */
	size_t		host_bytes;		/* the backend's copies in host memory */
	size_t		device_bytes;	/* and in device memory */
} fb_backend_model_info;

/*
 * The interface.  Every fallible function returns an fb_status and fills
 * err; none prints, exits or aborts.  Model state is immutable after
 * model_init and shared by sessions; a session is used by one thread at a
 * time.
 *
 * Batches: submit starts a batch (it may return before the work is done;
 * the batch's ids are copied, the caller may reuse them at once; the batch
 * has been checked against the model and the outputs against its heads);
 * a submit that fails leaves nothing in flight.  wait finishes the oldest
 * batch submitted, also when it reports an error, and returns its
 * outputs, which stay valid until the session's next submit.  At most
 * FB_BACKEND_MAX_IN_FLIGHT batches are in flight.  Outputs are the FB_OUT_*
 * bits of finbert.h.  A backend polls ctl's interrupt (wait, and between
 * layers on the CPU) and returns FB_ERR_INTERRUPTED.
 */
#define FB_BACKEND_MAX_IN_FLIGHT 2

typedef struct fb_backend_i
{
	int			abi;			/* FB_BACKEND_ABI */
	const char *name;			/* "cpu", "cuda" */

	/* Is device `ordinal` usable?  Fills info (may be NULL). */
	fb_status	(*probe) (int ordinal, fb_device_info *info, fb_error *err);

	/* Builds the backend's copy of the weights in its own layout (packed,
	 * quantised, uploaded to the device...); w outlives the model. */
	fb_status	(*model_init) (const fb_weights *w, const fb_backend_options *o,
							   void **model, fb_backend_model_info *info,
							   fb_error *err);
	void		(*model_free) (void *model);

	/* ctl stays the caller's and may change between calls. */
	fb_status	(*session_init) (void *model, const fb_run_ctl *ctl, void **session,
								 fb_error *err);
	void		(*session_free) (void *session);
	/* Threads of one forward pass; returns the number in use. */
	int			(*session_set_threads) (void *session, int n);
	/* Buffers for batches of n_tokens tokens and n_seq sequences of at
	 * most max_len tokens (allocated ahead of the first batch). */
	fb_status	(*reserve) (void *session, size_t n_tokens, int n_seq, int max_len,
							fb_error *err);
	fb_status	(*submit) (void *session, const fb_batch *b, unsigned outputs, fb_error *err);
	fb_status	(*wait) (void *session, fb_outputs *out, fb_error *err);
} fb_backend_i;

/* The module entry point's type. */
typedef const fb_backend_i *(*fb_backend_entry_fn) (int abi);

/* The CPU backend (src/engine/cpu/backend.c). */
const fb_backend_i *fb_cpu_backend(void);

#ifdef __cplusplus
}
#endif

#endif
