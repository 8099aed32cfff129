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
#include "fb_backend.h"
#include "fb_internal.h"

/* One encoder layer's fp32 parameters (fb_backend.h). */
typedef fb_weights_layer fb_layer;

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

	char		weight_file[256];	/* info.weight_file */
	char		weight_format[64];
	char	  **weight_files;	/* NULL-terminated */
	char	   *weight_notice;
	char		config_file[256];
	char		dtype_name[8];
	char	   *dir;

	/* the backend that runs it (backend.c) */
	fb_weights	w;				/* view of the parameters above */
	const fb_backend_i *backend;
	void	   *bmodel;			/* the backend's copy */
	fb_backend_model_info binfo;
};

/*
 * A session: the task front ends' state and one backend session.  The
 * backend session does the numerics; batches go through submit / wait.
 */
struct fb_session
{
	const fb_model *model;
	fb_run_ctl	ctl;			/* interrupt NULL when unset */
	int			has_ctl;
	void	   *bs;				/* backend session */
	int			n_pending;		/* batches submitted, not yet waited */
	int			n_pending_user; /* of which by fb_forward_submit */
	fb_encoding enc;			/* tokenizer output, reused */
	uint64_t	tokens;			/* fb_session_tokens (tasks.c) */
};

/* Checks a batch against the model: lengths, token ids (backend.c). */
fb_status	fb_batch_check(const fb_model *m, const fb_batch *b, size_t *n_tokens,
						   int *max_len, fb_error *err);

/* Picks and prepares the backend of a model being opened (backend.c):
 * fills m->w from the parameters, m->backend, m->bmodel, m->binfo. */
fb_status	fb_model_attach_backend(fb_model *m, const fb_model_options *o, fb_error *err);
void		fb_model_detach_backend(fb_model *m);

/* Batches through the session's backend, for the task front ends: one
 * outstanding at a time from each caller (the session counts them). */
fb_status	fb_session_submit(fb_session *s, const fb_batch *b, unsigned outputs,
							  fb_error *err);
fb_status	fb_session_wait(fb_session *s, fb_outputs *out, fb_error *err);
/* FB_ERR_INVALID while batches of fb_forward_submit are in flight. */
fb_status	fb_session_check_idle(const fb_session *s, fb_error *err);

#endif
