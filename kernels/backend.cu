/*
 * backend.cu — the CUDA backend module: fb_backend_i (src/engine/
 * fb_backend.h) on a CUDA device.  Built as build/finbert_cuda.so (nvcc)
 * and, against the CPU execution harness, as
 * build/finbert_cuda_harness.so (g++); the engine dlopen()s either.
 *
 * Model: every weight is uploaded once, at open, into one device
 * allocation: linear weights and embeddings in fp16 (bf16 for a bfloat16
 * checkpoint), biases of the fused kernels, LayerNorm parameters and the
 * classifier in fp32.  Sessions share it.
 *
 * Session: one non-blocking stream, cuBLASLt (linear layers) and cuBLAS
 * (batched attention GEMMs) handles, device activations for the largest
 * batch seen, and two slots of pinned host memory: a batch's metadata
 * (token ids, positions, sequence offsets, attention tiles) goes up from
 * one with a single asynchronous copy, its outputs come back into it with
 * another, and an event marks the end.  submit() returns once the work is
 * queued; wait() polls the event (and the host's interrupt callback).
 * Two batches may be in flight: the second is queued behind the first on
 * the stream, so they share the activations safely.
 *
 * Errors: a CUDA or cuBLAS failure is FB_ERR_DEVICE naming the call
 * (FB_ERR_NOMEM for device memory); a failure other than running out of
 * memory leaves the session broken (a CUDA context does not recover from a
 * kernel fault), every later call says so, and the host process is meant
 * to restart.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.cuh"
#include "fb_backend.h"

#define FB_EXPORT extern "C" __attribute__((visibility("default")))

/* cuBLASLt workspace per session: the heuristics pick faster kernels with
 * some (NVIDIA recommends 32 MiB on Hopper). */
#define GEMM_WORKSPACE ((size_t) 32 << 20)

/* GEMM attention scratch: at most this many score elements per chunk of
 * a bucket (a chunk's scores, probabilities and outputs: about 6 bytes
 * each), so that long batches need bounded memory. */
#define ATTN_GEMM_MAX_SCORES ((size_t) 64 << 20)

static size_t device_bytes_in_use;	/* cudaMalloc'd by this module */

static fb_status
cu_fail(fb_error *err, fb_status st, const char *fmt,...)
{
	if (err != NULL)
	{
		va_list		ap;

		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		err->status = st;
	}
	return st;
}

static fb_status
cuda_fail(fb_error *err, cudaError_t e, const char *what)
{
	if (e == cudaErrorMemoryAllocation)
		return cu_fail(err, FB_ERR_NOMEM, "CUDA device out of memory (%s)", what);
	return cu_fail(err, FB_ERR_DEVICE, "CUDA error in %s: %s (%s)", what, cudaGetErrorName(e),
				   cudaGetErrorString(e));
}

static cudaError_t
dev_alloc(void **p, size_t n)
{
	cudaError_t e = cudaMalloc(p, n);

	if (e == cudaSuccess)
		__atomic_add_fetch(&device_bytes_in_use, n, __ATOMIC_RELAXED);
	return e;
}

static void
dev_free(void *p, size_t n)
{
	if (p != NULL)
	{
		cudaFree(p);
		__atomic_sub_fetch(&device_bytes_in_use, n, __ATOMIC_RELAXED);
	}
}

/* ---------------------------------------------------------------------
 * Devices
 * --------------------------------------------------------------------- */
static fb_status
cu_probe(int ordinal, fb_device_info *info, fb_error *err)
{
	int			n = 0,
				rt = 0,
				drv = 0;
	cudaDeviceProp prop;
	size_t		free_b = 0,
				total_b = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	if (e == cudaErrorInsufficientDriver)
		return cu_fail(err, FB_ERR_DEVICE,
					   "no usable NVIDIA driver: libcuda.so is missing or older than this CUDA runtime needs");
	if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0))
		return cu_fail(err, FB_ERR_DEVICE, "no CUDA device is present");
	if (e != cudaSuccess)
		return cuda_fail(err, e, "cudaGetDeviceCount");
	if (ordinal < 0 || ordinal >= n)
		return cu_fail(err, FB_ERR_DEVICE, "CUDA device %d does not exist (%d present)", ordinal, n);
	if ((e = cudaGetDeviceProperties(&prop, ordinal)) != cudaSuccess)
		return cuda_fail(err, e, "cudaGetDeviceProperties");
	if (prop.major < 8)
		return cu_fail(err, FB_ERR_DEVICE,
					   "CUDA device %d (%s) has compute capability %d.%d; finbert's kernels need 8.0 or newer",
					   ordinal, prop.name, prop.major, prop.minor);
	if ((e = cudaSetDevice(ordinal)) != cudaSuccess ||
		(e = cudaMemGetInfo(&free_b, &total_b)) != cudaSuccess)
		return cuda_fail(err, e, "cudaMemGetInfo");
	if (info != NULL)
	{
		memset(info, 0, sizeof(*info));
		info->device = FB_DEVICE_CUDA;
		info->ordinal = ordinal;
		snprintf(info->name, sizeof(info->name), "%.127s", prop.name);
		cudaRuntimeGetVersion(&rt);
		cudaDriverGetVersion(&drv);
		snprintf(info->runtime, sizeof(info->runtime), "CUDA runtime %d, driver %d, sm_%d%d",
				 rt, drv, prop.major, prop.minor);
		info->cc_major = prop.major;
		info->cc_minor = prop.minor;
		info->total_bytes = total_b;
		info->free_bytes = free_b;
		info->used_bytes = __atomic_load_n(&device_bytes_in_use, __ATOMIC_RELAXED);
	}
	return FB_OK;
}

/* ---------------------------------------------------------------------
 * Models: the weights on the device
 * --------------------------------------------------------------------- */
typedef struct cu_layer
{
	void	   *qkv_w,			/* T [H, 3H] */
			   *qkv_b,			/* T [3H] (cuBLASLt bias epilogue) */
			   *ao_w,			/* T [H, H] */
			   *inter_w,		/* T [H, I] */
			   *out_w;			/* T [I, H] */
	float	   *ao_b,
			   *attn_ln_g,
			   *attn_ln_b,
			   *inter_b,
			   *out_b,
			   *out_ln_g,
			   *out_ln_b;
} cu_layer;

typedef struct cu_model
{
	/* geometry, copied from fb_weights */
	fb_arch		arch;
	fb_head		head;
	int			act;			/* fb_cuda_act */
	int			n_layers,
				H,
				n_heads,
				I,
				E,
				vocab,
				max_pos,
				NL;
	float		eps;
	bool		bf16;
	cudaDataType_t dt;
	int			device;
	int			attention;		/* fb_attention */

	void	   *block;			/* the one allocation */
	size_t		block_bytes;
	void	   *word,
			   *pos,
			   *type0,
			   *emb_proj_w,
			   *emb_proj_b;		/* T */
	float	   *emb_ln_g,
			   *emb_ln_b;
	cu_layer   *layers;
	void	   *pool_w,
			   *cls_dense_w;	/* T [H, H] or NULL */
	float	   *pool_b,
			   *cls_dense_b,
			   *cls_w,			/* [NL, H] */
			   *cls_b;
} cu_model;

/* Places tensors in the block: offsets first (dry), then copies. */
typedef struct uploader
{
	bool		dry;
	size_t		off;
	unsigned char *host;		/* the block's image on the host */
	unsigned char *dev;
	bool		bf16;
} uploader;

static void *
place(uploader *u, size_t bytes)
{
	size_t		at = (u->off + 255) & ~(size_t) 255;	/* GEMM operands: 256-byte aligned */

	u->off = at + bytes;
	return u->dry ? NULL : u->dev + at;
}

/* n fp32 values into the block as T (rounded to nearest even) */
static void *
put_t(uploader *u, const float *src, size_t n)
{
	void	   *d;

	if (src == NULL)
		return NULL;
	d = place(u, n * 2);
	if (!u->dry)
	{
		unsigned char *h = u->host + ((unsigned char *) d - u->dev);

		for (size_t i = 0; i < n; i++)
		{
			if (u->bf16)
				((__nv_bfloat16 *) h)[i] = __float2bfloat16_rn(src[i]);
			else
				((__half *) h)[i] = __float2half_rn(src[i]);
		}
	}
	return d;
}

static float *
put_f32(uploader *u, const float *src, size_t n)
{
	void	   *d;

	if (src == NULL)
		return NULL;
	d = place(u, n * sizeof(float));
	if (!u->dry)
		memcpy(u->host + ((unsigned char *) d - u->dev), src, n * sizeof(float));
	return (float *) d;
}

static void
place_all(uploader *u, const fb_weights *w, cu_model *m)
{
	size_t		H = (size_t) w->hidden,
				I = (size_t) w->intermediate,
				E = (size_t) w->embedding_size;

	m->word = put_t(u, w->word_emb, (size_t) w->vocab_size * E);
	m->pos = put_t(u, w->pos_emb, (size_t) w->max_position * E);
	m->type0 = put_t(u, w->type_emb, E);
	m->emb_ln_g = put_f32(u, w->emb_ln_g, E);
	m->emb_ln_b = put_f32(u, w->emb_ln_b, E);
	m->emb_proj_w = put_t(u, w->emb_proj_w, E * H);
	m->emb_proj_b = put_t(u, w->emb_proj_b, H);
	for (int l = 0; l < w->n_layers; l++)
	{
		const fb_weights_layer *s = &w->layers[l];
		cu_layer   *L = &m->layers[l];

		if (l > 0 && s->qkv_b == w->layers[0].qkv_b)
		{
			*L = m->layers[0];	/* ALBERT: one layer, uploaded once */
			continue;
		}
		L->qkv_w = put_t(u, s->qkv_w, H * 3 * H);
		L->qkv_b = put_t(u, s->qkv_b, 3 * H);
		L->ao_w = put_t(u, s->attn_out_w, H * H);
		L->inter_w = put_t(u, s->inter_w, H * I);
		L->out_w = put_t(u, s->out_w, I * H);
		L->ao_b = put_f32(u, s->attn_out_b, H);
		L->attn_ln_g = put_f32(u, s->attn_ln_g, H);
		L->attn_ln_b = put_f32(u, s->attn_ln_b, H);
		L->inter_b = put_f32(u, s->inter_b, I);
		L->out_b = put_f32(u, s->out_b, H);
		L->out_ln_g = put_f32(u, s->out_ln_g, H);
		L->out_ln_b = put_f32(u, s->out_ln_b, H);
	}
	m->pool_w = put_t(u, w->pool_w, H * H);
	m->pool_b = put_f32(u, w->pool_b, H);
	m->cls_dense_w = put_t(u, w->cls_dense_w, H * H);
	m->cls_dense_b = put_f32(u, w->cls_dense_b, H);
	m->cls_w = put_f32(u, w->cls_w, (size_t) w->n_labels * H);
	m->cls_b = put_f32(u, w->cls_b, (size_t) w->n_labels);
}

static void
cu_model_free(void *model)
{
	cu_model   *m = (cu_model *) model;

	if (m == NULL)
		return;
	if (m->block != NULL)
	{
		cudaSetDevice(m->device);
		dev_free(m->block, m->block_bytes);
	}
	free(m->layers);
	free(m);
}

static int
cuda_act(fb_act a)
{
	return a == FB_ACT_GELU_TANH ? FB_CUDA_GELU_TANH : a == FB_ACT_RELU ? FB_CUDA_RELU
		: FB_CUDA_GELU_ERF;
}

static fb_status
cu_model_init(const fb_weights *w, const fb_backend_options *o, void **model,
			  fb_backend_model_info *info, fb_error *err)
{
	cu_model   *m;
	uploader	u;
	cudaError_t e;
	fb_status	st;
	static int	setup_done;		/* idempotent: a race only repeats it */

	*model = NULL;
	memset(info, 0, sizeof(*info));
	if (o->precision == FB_PRECISION_INT8)
		return cu_fail(err, FB_ERR_UNSUPPORTED, "precision int8 runs on the CPU only");
	if ((st = cu_probe(o->device, NULL, err)) != FB_OK)
		return st;
	m = (cu_model *) calloc(1, sizeof(*m));
	if (m == NULL || (m->layers = (cu_layer *) calloc((size_t) w->n_layers, sizeof(cu_layer))) == NULL)
	{
		free(m);
		return cu_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	m->arch = w->arch;
	m->head = w->head;
	m->act = cuda_act(w->act);
	m->n_layers = w->n_layers;
	m->H = w->hidden;
	m->n_heads = w->n_heads;
	m->I = w->intermediate;
	m->E = w->embedding_size;
	m->vocab = w->vocab_size;
	m->max_pos = w->max_position;
	m->NL = w->n_labels;
	m->eps = w->layer_norm_eps;
	m->bf16 = o->precision == FB_PRECISION_BF16 ||
		(o->precision == FB_PRECISION_FP32 && w->dtype == FB_SRC_BF16);
	m->dt = m->bf16 ? CUDA_R_16BF : CUDA_R_16F;
	m->device = o->device;
	m->attention = o->attention;

	if (!__atomic_load_n(&setup_done, __ATOMIC_ACQUIRE))
	{
		if ((e = fb_cuda_attention_fused_setup()) != cudaSuccess)
		{
			cu_model_free(m);
			return cuda_fail(err, e, "cudaFuncSetAttribute");
		}
		__atomic_store_n(&setup_done, 1, __ATOMIC_RELEASE);
	}

	memset(&u, 0, sizeof(u));
	u.dry = true;
	u.bf16 = m->bf16;
	place_all(&u, w, m);
	m->block_bytes = u.off;
	if ((e = dev_alloc(&m->block, m->block_bytes)) != cudaSuccess)
	{
		cu_model_free(m);
		return cuda_fail(err, e, "uploading the weights");
	}
	u.host = (unsigned char *) malloc(m->block_bytes);
	if (u.host == NULL)
	{
		cu_model_free(m);
		return cu_fail(err, FB_ERR_NOMEM, "out of memory");
	}
	memset(u.host, 0, m->block_bytes);
	u.dry = false;
	u.off = 0;
	u.dev = (unsigned char *) m->block;
	place_all(&u, w, m);
	e = cudaMemcpy(m->block, u.host, m->block_bytes, cudaMemcpyHostToDevice);
	free(u.host);
	if (e != cudaSuccess)
	{
		cu_model_free(m);
		return cuda_fail(err, e, "uploading the weights");
	}
	info->needs_fp32_layers = false;
	info->precision = m->bf16 ? FB_PRECISION_BF16 : FB_PRECISION_FP16;
	info->device_bytes = m->block_bytes;
	*model = m;
	return FB_OK;
}

/* ---------------------------------------------------------------------
 * Sessions
 * --------------------------------------------------------------------- */

/* Where a batch's pieces sit in its slot's pinned buffers (and the same
 * offsets in the device copies). */
typedef struct batch_plan
{
	int			n_seq;
	size_t		T;				/* token rows */
	int			max_len;
	bool		cls_only;
	unsigned	outputs;
	bool		fused;			/* attention variant */
	int			n_tiles;
	int			n_buckets;
	size_t		meta_bytes;
	/* int32 offsets (elements) in the metadata */
	size_t		o_ids,
				o_pos,
				o_start,
				o_len,
				o_tseq,
				o_tq0,
				o_cseq,			/* the [CLS]-only layer's tiles: one per */
				o_czero,		/* sequence, at row 0 */
				o_iseq,
				o_ihead;
	size_t		o_ptrs;			/* byte offset of the pointer arrays */
	/* float offsets in the output */
	size_t		f_hidden,
				f_cls,
				f_mean,
				f_pooled,
				f_seq,
				f_tok,
				f_scratch,
				f_flag,
				out_floats;
} batch_plan;

#define MAX_BUCKETS 64

typedef struct attn_bucket_plan
{
	int			Lb,
				first_item,
				n_items;
} attn_bucket_plan;

typedef struct cu_slot
{
	unsigned char *pin_in;
	size_t		in_cap;
	float	   *pin_out;
	size_t		out_cap;
	cudaEvent_t done;
	batch_plan	plan;
	fb_outputs	out;
} cu_slot;

typedef struct cu_session
{
	cu_model   *m;
	const fb_run_ctl *ctl;
	cudaStream_t stream;
	fb_cuda_gemm *gemm;
	cublasHandle_t blas;
	void	   *workspace;

	/* activations: capacity in rows and sequences */
	size_t		cap_T;
	int			cap_n;
	void	   *x,
			   *h1,
			   *tmp,
			   *qkv,
			   *ctx,
			   *inter,
			   *xc;				/* T */
	size_t		act_bytes;
	void	   *meta;			/* device copy of a slot's metadata */
	size_t		meta_cap;
	float	   *dout;			/* outputs, fp32 */
	size_t		dout_cap;
	void	   *attn_scratch;	/* GEMM attention */
	size_t		attn_cap;

	cu_slot		slot[FB_BACKEND_MAX_IN_FLIGHT];
	int			next;
	int			n_pending;
	attn_bucket_plan buckets[MAX_BUCKETS];

	bool		broken;
	char		broken_msg[FB_ERRMSG_MAX];
} cu_session;

static void
free_activations(cu_session *s)
{
	size_t		one = s->act_bytes;

	dev_free(s->x, one);
	s->x = NULL;
	/* the rest were carved from the same allocation */
	s->h1 = s->tmp = s->qkv = s->ctx = s->inter = s->xc = NULL;
	s->act_bytes = 0;
	s->cap_T = 0;
	s->cap_n = 0;
}

static void
cu_session_free(void *session)
{
	cu_session *s = (cu_session *) session;

	if (s == NULL)
		return;
	cudaSetDevice(s->m->device);
	if (s->stream != NULL)
		cudaStreamSynchronize(s->stream);
	free_activations(s);
	dev_free(s->meta, s->meta_cap);
	dev_free(s->dout, s->dout_cap * sizeof(float));
	dev_free(s->attn_scratch, s->attn_cap);
	dev_free(s->workspace, GEMM_WORKSPACE);
	for (int i = 0; i < FB_BACKEND_MAX_IN_FLIGHT; i++)
	{
		if (s->slot[i].pin_in != NULL)
			cudaFreeHost(s->slot[i].pin_in);
		if (s->slot[i].pin_out != NULL)
			cudaFreeHost(s->slot[i].pin_out);
		if (s->slot[i].done != NULL)
			cudaEventDestroy(s->slot[i].done);
	}
	fb_cuda_gemm_destroy(s->gemm);
	if (s->blas != NULL)
		cublasDestroy(s->blas);
	if (s->stream != NULL)
		cudaStreamDestroy(s->stream);
	free(s);
}

static fb_status
cu_session_init(void *model, const fb_run_ctl *ctl, void **session, fb_error *err)
{
	cu_model   *m = (cu_model *) model;
	cu_session *s = (cu_session *) calloc(1, sizeof(cu_session));
	cudaError_t e;

	*session = NULL;
	if (s == NULL)
		return cu_fail(err, FB_ERR_NOMEM, "out of memory");
	s->m = m;
	s->ctl = ctl;
	if ((e = cudaSetDevice(m->device)) != cudaSuccess ||
		(e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) != cudaSuccess ||
		(e = dev_alloc(&s->workspace, GEMM_WORKSPACE)) != cudaSuccess)
	{
		cu_session_free(s);
		return cuda_fail(err, e, "creating a session");
	}
	for (int i = 0; i < FB_BACKEND_MAX_IN_FLIGHT; i++)
	{
		if ((e = cudaEventCreateWithFlags(&s->slot[i].done, cudaEventDisableTiming)) != cudaSuccess)
		{
			cu_session_free(s);
			return cuda_fail(err, e, "cudaEventCreateWithFlags");
		}
	}
	if (fb_cuda_gemm_create(&s->gemm, s->stream, s->workspace, GEMM_WORKSPACE) != CUBLAS_STATUS_SUCCESS ||
		cublasCreate(&s->blas) != CUBLAS_STATUS_SUCCESS)
	{
		cu_session_free(s);
		return cu_fail(err, FB_ERR_DEVICE, "cannot create the cuBLAS handles");
	}
	*session = s;
	return FB_OK;
}

static int
cu_session_set_threads(void *session, int n)
{
	(void) session;
	(void) n;
	return 1;					/* the device is the parallelism */
}

/* Activations for T rows, n sequences.  Waits for the stream first (a
 * batch in flight may still use the old buffers). */
static fb_status
ensure_activations(cu_session *s, size_t T, int n, fb_error *err)
{
	cu_model   *m = s->m;
	size_t		H = (size_t) m->H,
				wide = (size_t) (m->E > m->H ? m->E : m->H);
	size_t		rows,
				slack,
				bytes;
	unsigned char *p;
	cudaError_t e;

	if (T <= s->cap_T && n <= s->cap_n)
		return FB_OK;
	if (T < s->cap_T)
		T = s->cap_T;
	if (n < s->cap_n)
		n = s->cap_n;
	if ((e = cudaStreamSynchronize(s->stream)) != cudaSuccess)
		return cuda_fail(err, e, "cudaStreamSynchronize");
	free_activations(s);
	/*
	 * qkv gets slack rows past the last sequence: the GEMM attention pads
	 * a sequence to its bucket's length and reads (then ignores) up to
	 * that many rows past it; they are zeroed once so they are finite.
	 */
	slack = 256;
	rows = T + slack;
	bytes = 2 * (rows * wide		/* x */
				 + T * H		/* h1 */
				 + T * wide		/* tmp */
				 + rows * 3 * H /* qkv */
				 + T * H		/* ctx */
				 + T * (size_t) m->I	/* inter */
				 + (size_t) n * H)	/* xc */
		+ 8 * 256;
	if ((e = dev_alloc(&s->x, bytes)) != cudaSuccess)
		return cuda_fail(err, e, "allocating activations");
	s->act_bytes = bytes;
	p = (unsigned char *) s->x;
#define CARVE(field, elems) do { s->field = p; p += ((2 * (elems)) + 255) & ~(size_t) 255; } while (0)
	CARVE(x, rows * wide);
	CARVE(h1, T * H);
	CARVE(tmp, T * wide);
	CARVE(qkv, rows * 3 * H);
	CARVE(ctx, T * H);
	CARVE(inter, T * (size_t) m->I);
	CARVE(xc, (size_t) n * H);
#undef CARVE
	if ((e = cudaMemsetAsync(s->qkv, 0, rows * 3 * H * 2, s->stream)) != cudaSuccess)
		return cuda_fail(err, e, "cudaMemsetAsync");
	s->cap_T = T;
	s->cap_n = n;
	return FB_OK;
}

static fb_status
ensure_device_buffer(cu_session *s, void **p, size_t *cap, size_t need, fb_error *err)
{
	cudaError_t e;

	if (need <= *cap)
		return FB_OK;
	if ((e = cudaStreamSynchronize(s->stream)) != cudaSuccess)
		return cuda_fail(err, e, "cudaStreamSynchronize");
	dev_free(*p, *cap);
	*p = NULL;
	*cap = 0;
	if ((e = dev_alloc(p, need)) != cudaSuccess)
		return cuda_fail(err, e, "allocating a batch buffer");
	*cap = need;
	return FB_OK;
}

static fb_status
ensure_pinned(void **p, size_t *cap, size_t need, fb_error *err)
{
	cudaError_t e;

	if (need <= *cap)
		return FB_OK;
	if (*p != NULL)
		cudaFreeHost(*p);
	*p = NULL;
	*cap = 0;
	if ((e = cudaHostAlloc(p, need, cudaHostAllocDefault)) != cudaSuccess)
		return cuda_fail(err, e, "allocating pinned host memory");
	*cap = need;
	return FB_OK;
}

/* Sequences padded to their bucket's length: multiples of 16 up to 64,
 * of 32 up to 512, of 256 beyond (at most 48 buckets up to
 * FB_MAX_POSITIONS; at most 255 padding rows, within the qkv slack). */
static int
bucket_step(int L)
{
	return L < 64 ? 16 : L < 512 ? 32 : 256;
}

static int
bucket_len(int L)
{
	int			Lb = 16;

	while (Lb < L)
		Lb += bucket_step(Lb);
	return Lb;
}

/*
 * GEMM attention scratch of one item (sequence, head) padded to Lb rows:
 * fp32 scores and T probabilities [Lb, Lb], T output [Lb, dh].  The
 * [CLS]-only last layer uses the first row of each block.
 */
static size_t
attn_item_bytes(int Lb, int dh)
{
	return (size_t) Lb * ((size_t) Lb * 6 + (size_t) dh * 2);
}

/* Items of a bucket per chunk of the scratch (0: not even one fits). */
static int
attn_chunk(size_t scratch_bytes, int Lb, int dh)
{
	size_t		n = scratch_bytes > 3 * 256 ? (scratch_bytes - 3 * 256) / attn_item_bytes(Lb, dh) : 0;

	return n > (size_t) INT32_MAX ? INT32_MAX : (int) n;
}

/* Which attention a model's batch runs. */
static bool
use_fused(const cu_model *m)
{
	int			dh = m->H / m->n_heads;

	if (m->attention == FB_ATTENTION_GEMM)
		return false;
	return dh <= FB_ATTN_FUSED_MAX_DH;
}

/* Lays out a batch's metadata and outputs. */
static void
plan_batch(cu_session *s, const fb_batch *b, unsigned outputs, batch_plan *p)
{
	cu_model   *m = s->m;
	size_t		H = (size_t) m->H,
				NL = (size_t) m->NL,
				n,
				off = 0;
	bool		need_pooled,
				need_cls;

	memset(p, 0, sizeof(*p));
	p->n_seq = b->n_seq;
	p->outputs = outputs;
	for (int i = 0; i < b->n_seq; i++)
	{
		p->T += (size_t) b->lens[i];
		p->max_len = b->lens[i] > p->max_len ? b->lens[i] : p->max_len;
	}
	p->cls_only = (outputs & (FB_OUT_HIDDEN | FB_OUT_MEAN | FB_OUT_TOKEN_LOGITS)) == 0;
	p->fused = use_fused(m);
	n = (size_t) b->n_seq;
	if (p->fused)
	{
		for (int i = 0; i < b->n_seq; i++)
			p->n_tiles += (b->lens[i] + FB_ATTN_QROWS - 1) / FB_ATTN_QROWS;
	}

	/* int32 metadata */
	p->o_ids = off;
	off += p->T;
	p->o_pos = off;
	off += p->T;
	p->o_start = off;
	off += n;
	p->o_len = off;
	off += n;
	p->o_tseq = off;
	off += (size_t) p->n_tiles;
	p->o_tq0 = off;
	off += (size_t) p->n_tiles;
	p->o_cseq = off;
	off += n;
	p->o_czero = off;
	off += n;
	p->o_iseq = off;
	p->o_ihead = off + n * (size_t) m->n_heads;
	if (!p->fused)
		off += 2 * n * (size_t) m->n_heads;
	/* pointer arrays of the GEMM attention: 8 per item, 8-byte aligned */
	p->o_ptrs = ((off * 4) + 15) & ~(size_t) 15;
	p->meta_bytes = p->o_ptrs + (p->fused ? 0 : 8 * sizeof(void *) * n * (size_t) m->n_heads);

	/* outputs, as the CPU backend lays them out */
	need_pooled = (outputs & FB_OUT_POOLED) ||
		((outputs & FB_OUT_SEQ_LOGITS) && m->cls_dense_w == NULL);
	need_cls = need_pooled || (outputs & (FB_OUT_CLS | FB_OUT_SEQ_LOGITS));
	off = 0;
	p->f_hidden = off;
	off += (outputs & FB_OUT_HIDDEN) ? p->T * H : 0;
	p->f_cls = off;
	off += need_cls ? n * H : 0;
	p->f_mean = off;
	off += (outputs & FB_OUT_MEAN) ? n * H : 0;
	p->f_pooled = off;
	off += need_pooled ? n * H : 0;
	p->f_seq = off;
	off += (outputs & FB_OUT_SEQ_LOGITS) ? n * NL : 0;
	p->f_tok = off;
	off += (outputs & FB_OUT_TOKEN_LOGITS) ? p->T * NL : 0;
	p->f_scratch = off;
	off += (outputs & FB_OUT_SEQ_LOGITS) && m->cls_dense_w != NULL ? n * H : 0;
	p->f_flag = off;
	off += 1;
	p->out_floats = off;
}

/* Fills a slot's pinned metadata; returns the number of attention buckets
 * (GEMM path). */
static int
fill_meta(cu_session *s, const fb_batch *b, const batch_plan *p, unsigned char *pin,
		  size_t *scratch_need)
{
	cu_model   *m = s->m;
	int32_t    *meta = (int32_t *) pin;
	size_t		row = 0;
	int			t = 0,
				nb = 0;

	*scratch_need = 0;
	for (int i = 0; i < b->n_seq; i++)
	{
		int			L = b->lens[i];

		meta[p->o_start + i] = (int32_t) row;
		meta[p->o_len + i] = L;
		meta[p->o_cseq + i] = i;
		meta[p->o_czero + i] = 0;
		for (int q = 0; q < L; q++, row++)
		{
			meta[p->o_ids + row] = b->ids[i][q];
			meta[p->o_pos + row] = q;
		}
		if (p->fused)
		{
			int			tiles = (L + FB_ATTN_QROWS - 1) / FB_ATTN_QROWS;

			for (int k = 0; k < tiles; k++, t++)
			{
				meta[p->o_tseq + t] = i;
				meta[p->o_tq0 + t] = k * FB_ATTN_QROWS;
			}
		}
	}
	if (!p->fused)
	{
		/*
		 * Items (sequence, head) grouped by bucket; each bucket's items
		 * contiguous so that their scratch blocks are too.  Pointer arrays:
		 * q, k, v, scores, probs, out (6 of the 8 slots per item).
		 */
		int			nh = m->n_heads,
					item = 0;
		size_t		H = (size_t) m->H,
					dh = H / nh;
		void	  **ptr = (void **) (pin + p->o_ptrs);
		size_t		n_items = (size_t) b->n_seq * nh;
		char	   *qkv = (char *) s->qkv;

		for (int Lb = 16; Lb <= bucket_len(p->max_len); Lb += bucket_step(Lb))
		{
			int			first = item;
			size_t		sbytes = 0;

			for (int i = 0; i < b->n_seq; i++)
			{
				if (bucket_len(b->lens[i]) != Lb)
					continue;
				for (int h = 0; h < nh; h++, item++)
				{
					size_t		base = ((size_t) meta[p->o_start + i] * 3 * H + (size_t) h * dh) * 2;

					meta[p->o_iseq + item] = i;
					meta[p->o_ihead + item] = h;
					ptr[0 * n_items + item] = qkv + base;
					ptr[1 * n_items + item] = qkv + base + H * 2;
					ptr[2 * n_items + item] = qkv + base + 2 * H * 2;
				}
			}
			if (item == first)
				continue;
			s->buckets[nb].Lb = Lb;
			s->buckets[nb].first_item = first;
			s->buckets[nb].n_items = item - first;
			nb++;
			sbytes = attn_item_bytes(Lb, (int) dh) * (size_t) (item - first) + 3 * 256;
			*scratch_need = sbytes > *scratch_need ? sbytes : *scratch_need;
		}
	}
	return nb;
}

static fb_status
broken(cu_session *s, fb_error *err)
{
	return cu_fail(err, FB_ERR_DEVICE, "%s", s->broken_msg);
}

/* A device failure: the session is not used again. */
static fb_status
session_fault(cu_session *s, fb_status st, fb_error *err)
{
	if (st != FB_ERR_NOMEM)
	{
		s->broken = true;
		snprintf(s->broken_msg, sizeof(s->broken_msg),
				 "the CUDA session failed earlier and cannot be used: %.400s",
				 err != NULL ? err->msg : "device error");
	}
	return st;
}

#define CU_TRY(call, what) do { cudaError_t e_ = (call); \
	if (e_ != cudaSuccess) return cuda_fail(err, e_, what); } while (0)
#define BLAS_TRY(call, what) do { cublasStatus_t b_ = (call); \
	if (b_ != CUBLAS_STATUS_SUCCESS) return cu_fail(err, FB_ERR_DEVICE, "cuBLAS error %d in %s", \
		(int) b_, what); } while (0)

/* The encoder and heads of one planned batch, queued on the stream. */
template <typename T>
static fb_status
run_batch(cu_session *s, const batch_plan *p, int n_buckets, size_t scratch_cap, fb_error *err)
{
	cu_model   *m = s->m;
	cudaStream_t st = s->stream;
	cudaDataType_t dt = m->dt;
	int			H = m->H,
				I = m->I,
				E = m->E,
				n = p->n_seq,
				dh = m->H / m->n_heads;
	int			T_rows = (int) p->T;
	const int32_t *meta = (const int32_t *) s->meta;
	T		   *x = (T *) s->x,
			   *h1 = (T *) s->h1,
			   *tmp = (T *) s->tmp,
			   *qkv = (T *) s->qkv,
			   *ctx = (T *) s->ctx,
			   *inter = (T *) s->inter,
			   *xc = (T *) s->xc;
	float	   *out = s->dout;
	unsigned   *flag = (unsigned *) (out + p->f_flag);
	fb_cuda_attn a;

	memset(&a, 0, sizeof(a));
	a.n_seq = n;
	a.seq_start = meta + p->o_start;
	a.seq_len = meta + p->o_len;
	a.H = H;
	a.n_heads = m->n_heads;
	a.n_tiles = p->n_tiles;
	a.tile_seq = meta + p->o_tseq;
	a.tile_q0 = meta + p->o_tq0;

	CU_TRY(cudaMemsetAsync(flag, 0, sizeof(float), st), "cudaMemsetAsync");
	/* the GEMM attention reads (and multiplies by zero) up to 255 value
	 * rows past the last sequence: keep them finite */
	if (!p->fused)
		CU_TRY(cudaMemsetAsync(qkv + p->T * 3 * (size_t) H, 0, (size_t) 256 * 3 * H * sizeof(T), st),
			   "cudaMemsetAsync");

	/* embeddings (+ the factorised projection) */
	CU_TRY(fb_cuda_embed_layernorm<T>(meta + p->o_ids, meta + p->o_pos, T_rows,
									  (const T *) m->word, (const T *) m->pos,
									  (const T *) m->type0, m->emb_ln_g, m->emb_ln_b, E,
									  m->eps, m->emb_proj_w != NULL ? tmp : x, st),
		   "embed_layernorm_kernel");
	if (m->emb_proj_w != NULL)
		BLAS_TRY(fb_cuda_linear(s->gemm, dt, tmp, T_rows, E, m->emb_proj_w, H, m->emb_proj_b, x,
								dt), "the embedding projection");

	for (int l = 0; l < m->n_layers; l++)
	{
		const cu_layer *L = &m->layers[l];
		bool		last = l + 1 == m->n_layers;
		bool		compact = last && p->cls_only;
		int			rows = compact ? n : T_rows;
		T		   *res = compact ? xc : x;

		BLAS_TRY(fb_cuda_linear(s->gemm, dt, x, T_rows, H, L->qkv_w, 3 * H, L->qkv_b, qkv, dt),
				 "the QKV projection");
		a.cls_only = compact;
		a.n_tiles = compact ? n : p->n_tiles;
		a.tile_seq = meta + (compact ? p->o_cseq : p->o_tseq);
		a.tile_q0 = meta + (compact ? p->o_czero : p->o_tq0);
		if (p->fused)
			CU_TRY(fb_cuda_attention_fused<T>(qkv, ctx, &a, dh, st), "flash_attention_kernel");
		else
		{
			void	  **dptr = (void **) ((unsigned char *) s->meta + p->o_ptrs);
			size_t		n_items = (size_t) n * m->n_heads;

			for (int k = 0; k < n_buckets; k++)
			{
				const attn_bucket_plan *bp = &s->buckets[k];
				int			chunk = attn_chunk(scratch_cap, bp->Lb, dh);

				if (chunk < 1)
					return cu_fail(err, FB_ERR_NOMEM, "attention scratch too small");
				for (int c0 = 0; c0 < bp->n_items; c0 += chunk)
				{
					fb_cuda_attn_bucket bk;
					int			cnt = bp->n_items - c0 < chunk ? bp->n_items - c0 : chunk;
					int			it = bp->first_item + c0;
					unsigned char *sc = (unsigned char *) s->attn_scratch;
					size_t		blk = (size_t) bp->Lb * bp->Lb;
					size_t		s_bytes = ((size_t) cnt * blk * 4 + 255) & ~(size_t) 255,
								p_bytes = ((size_t) cnt * blk * 2 + 255) & ~(size_t) 255;

					/* the chunk's scratch blocks: as submit laid them out */
					bk.Lb = bp->Lb;
					bk.Lq = compact ? 1 : bp->Lb;
					bk.n_items = cnt;
					bk.q = (const void *const *) (dptr + 0 * n_items + it);
					bk.k = (const void *const *) (dptr + 1 * n_items + it);
					bk.v = (const void *const *) (dptr + 2 * n_items + it);
					bk.scores = (void *const *) (dptr + 3 * n_items + it);
					bk.probs = (void *const *) (dptr + 4 * n_items + it);
					bk.probs_c = (const void *const *) (dptr + 4 * n_items + it);
					bk.out = (void *const *) (dptr + 5 * n_items + it);
					bk.item_seq = meta + p->o_iseq + it;
					bk.item_head = meta + p->o_ihead + it;
					bk.scores_base = (float *) sc;
					bk.probs_base = sc + s_bytes;
					bk.out_base = sc + s_bytes + p_bytes;
					bk.block_stride = blk;
					bk.out_stride = (size_t) bp->Lb * dh;
					CU_TRY(fb_cuda_attention_gemm<T>(s->blas, ctx, &a, dh, &bk, st),
						   "the GEMM attention");
				}
			}
		}
		if (compact)
			CU_TRY(fb_cuda_gather_rows<T>(x, a.seq_start, n, H, xc, st), "gather_rows_kernel");
		/* h1 = LN(ctx W_o + b_o + x) */
		BLAS_TRY(fb_cuda_linear(s->gemm, dt, ctx, rows, H, L->ao_w, H, NULL, tmp, dt),
				 "the attention output projection");
		CU_TRY(fb_cuda_bias_residual_layernorm<T>(tmp, L->ao_b, res, L->attn_ln_g, L->attn_ln_b,
												  rows, H, m->eps, h1, NULL, st),
			   "bias_residual_layernorm_kernel");
		/* inter = act(h1 W_i + b_i) */
		BLAS_TRY(fb_cuda_linear(s->gemm, dt, h1, rows, H, L->inter_w, I, NULL, inter, dt),
				 "the intermediate projection");
		CU_TRY(fb_cuda_bias_act<T>(inter, L->inter_b, (size_t) rows, I, m->act, st),
			   "bias_act_kernel");
		/* x = LN(inter W_out + b_out + h1) (compact rows first in x) */
		BLAS_TRY(fb_cuda_linear(s->gemm, dt, inter, rows, I, L->out_w, H, NULL, tmp, dt),
				 "the output projection");
		CU_TRY(fb_cuda_bias_residual_layernorm<T>(tmp, L->out_b, h1, L->out_ln_g, L->out_ln_b,
												  rows, H, m->eps, x, last ? flag : NULL, st),
			   "bias_residual_layernorm_kernel");
	}

	/* heads: x holds the last layer's rows (n compact rows with cls_only) */
	{
		size_t		Hs = (size_t) H;
		unsigned	o = p->outputs;
		const T    *cls = x;
		float	   *pooled = out + p->f_pooled;

		if (o & FB_OUT_HIDDEN)
			CU_TRY(fb_cuda_to_f32<T>(x, p->T * Hs, out + p->f_hidden, st), "to_f32_kernel");
		if (!p->cls_only && (o & (FB_OUT_CLS | FB_OUT_POOLED | FB_OUT_SEQ_LOGITS)))
		{
			CU_TRY(fb_cuda_gather_rows<T>(x, a.seq_start, n, H, xc, st), "gather_rows_kernel");
			cls = xc;
		}
		if (o & FB_OUT_CLS)
			CU_TRY(fb_cuda_to_f32<T>(cls, (size_t) n * Hs, out + p->f_cls, st), "to_f32_kernel");
		if (o & FB_OUT_MEAN)
			CU_TRY(fb_cuda_mean_rows<T>(x, a.seq_start, a.seq_len, n, H, out + p->f_mean, st),
				   "mean_rows_kernel");
		if ((o & FB_OUT_POOLED) || ((o & FB_OUT_SEQ_LOGITS) && m->cls_dense_w == NULL))
		{
			BLAS_TRY(fb_cuda_linear(s->gemm, dt, cls, n, H, m->pool_w, H, NULL, pooled, CUDA_R_32F),
					 "the pooler");
			CU_TRY(fb_cuda_bias_act<float>(pooled, m->pool_b, (size_t) n, H, FB_CUDA_TANH, st),
				   "bias_act_kernel");
		}
		if (o & FB_OUT_SEQ_LOGITS)
		{
			const float *feat = pooled;

			if (m->cls_dense_w != NULL)
			{
				/* ELECTRA: gelu(dense(h_cls)) then out_proj */
				float	   *d = out + p->f_scratch;

				BLAS_TRY(fb_cuda_linear(s->gemm, dt, cls, n, H, m->cls_dense_w, H, NULL, d,
										CUDA_R_32F), "the classifier's dense layer");
				CU_TRY(fb_cuda_bias_act<float>(d, m->cls_dense_b, (size_t) n, H, FB_CUDA_GELU_ERF,
											   st), "bias_act_kernel");
				feat = d;
			}
			CU_TRY(fb_cuda_linear_rows<float>(feat, n, H, m->cls_w, m->cls_b, m->NL,
											  out + p->f_seq, st), "linear_rows_kernel");
		}
		if (o & FB_OUT_TOKEN_LOGITS)
			CU_TRY(fb_cuda_linear_rows<T>(x, T_rows, H, m->cls_w, m->cls_b, m->NL,
										  out + p->f_tok, st), "linear_rows_kernel");
	}
	return FB_OK;
}

static fb_status
cu_reserve(void *session, size_t n_tokens, int n_seq, int max_len, fb_error *err)
{
	cu_session *s = (cu_session *) session;
	fb_status	st;

	(void) max_len;
	if (s->broken)
		return broken(s, err);
	cudaSetDevice(s->m->device);
	st = ensure_activations(s, n_tokens, n_seq, err);
	return st == FB_OK ? st : session_fault(s, st, err);
}

static fb_status
submit_impl(cu_session *s, const fb_batch *b, unsigned outputs, fb_error *err)
{
	cu_model   *m = s->m;
	cu_slot    *sl = &s->slot[s->next];
	batch_plan *p = &sl->plan;
	size_t		scratch_need = 0;
	int			nb;
	fb_status	st;

	plan_batch(s, b, outputs, p);
	if ((st = ensure_activations(s, p->T, p->n_seq, err)) != FB_OK ||
		(st = ensure_device_buffer(s, &s->meta, &s->meta_cap, p->meta_bytes, err)) != FB_OK ||
		(st = ensure_pinned((void **) &sl->pin_in, &sl->in_cap, p->meta_bytes, err)) != FB_OK ||
		(st = ensure_pinned((void **) &sl->pin_out, &sl->out_cap, p->out_floats * sizeof(float),
							err)) != FB_OK)
		return st;
	{
		size_t		cap = s->dout_cap * sizeof(float);

		if ((st = ensure_device_buffer(s, (void **) &s->dout, &cap, p->out_floats * sizeof(float),
									   err)) != FB_OK)
			return st;
		s->dout_cap = cap / sizeof(float);
	}
	/* the slot's previous batch was waited for: its buffers are free */
	nb = fill_meta(s, b, p, sl->pin_in, &scratch_need);
	if (!p->fused)
	{
		/* scratch for the largest bucket, bounded (chunks run in turn) */
		size_t		need = scratch_need < ATTN_GEMM_MAX_SCORES * 6 ? scratch_need
			: ATTN_GEMM_MAX_SCORES * 6;
		size_t		n_items = (size_t) p->n_seq * m->n_heads;
		void	  **ptr = (void **) (sl->pin_in + p->o_ptrs);
		int			dh = m->H / m->n_heads;

		/* at least one item of the longest bucket */
		for (int k = 0; k < nb; k++)
		{
			size_t		one = attn_item_bytes(s->buckets[k].Lb, dh) + 3 * 256;

			need = one > need ? one : need;
		}
		if ((st = ensure_device_buffer(s, &s->attn_scratch, &s->attn_cap, need, err)) != FB_OK)
			return st;
		/*
		 * Scratch pointers per item, inside its bucket's chunk: the chunk
		 * size depends on the scratch capacity, known only now.
		 */
		for (int k = 0; k < nb; k++)
		{
			const attn_bucket_plan *bp = &s->buckets[k];
			int			chunk = attn_chunk(s->attn_cap, bp->Lb, dh);
			size_t		blk = (size_t) bp->Lb * bp->Lb;

			for (int c0 = 0; c0 < bp->n_items; c0 += chunk)
			{
				int			cnt = bp->n_items - c0 < chunk ? bp->n_items - c0 : chunk;
				unsigned char *sc = (unsigned char *) s->attn_scratch;
				size_t		s_bytes = ((size_t) cnt * blk * 4 + 255) & ~(size_t) 255,
							p_bytes = ((size_t) cnt * blk * 2 + 255) & ~(size_t) 255;

				for (int j = 0; j < cnt; j++)
				{
					size_t		it = (size_t) bp->first_item + c0 + j;

					ptr[3 * n_items + it] = sc + (size_t) j * blk * 4;
					ptr[4 * n_items + it] = sc + s_bytes + (size_t) j * blk * 2;
					ptr[5 * n_items + it] = sc + s_bytes + p_bytes + (size_t) j * bp->Lb * dh * 2;
				}
			}
		}
	}
	if (cudaMemcpyAsync(s->meta, sl->pin_in, p->meta_bytes, cudaMemcpyHostToDevice, s->stream) !=
		cudaSuccess)
		return cuda_fail(err, cudaGetLastError(), "copying a batch to the device");
	st = m->bf16 ? run_batch<__nv_bfloat16>(s, p, nb, s->attn_cap, err)
		: run_batch<__half>(s, p, nb, s->attn_cap, err);
	if (st != FB_OK)
		return st;
	{
		cudaError_t e = cudaMemcpyAsync(sl->pin_out, s->dout, p->out_floats * sizeof(float),
										cudaMemcpyDeviceToHost, s->stream);

		if (e == cudaSuccess)
			e = cudaEventRecord(sl->done, s->stream);
		if (e != cudaSuccess)
			return cuda_fail(err, e, "copying the outputs back");
	}
	return FB_OK;
}

static fb_status
cu_submit(void *session, const fb_batch *b, unsigned outputs, fb_error *err)
{
	cu_session *s = (cu_session *) session;
	fb_status	st;

	if (s->broken)
		return broken(s, err);
	if (s->n_pending >= FB_BACKEND_MAX_IN_FLIGHT)
		return cu_fail(err, FB_ERR_INVALID, "two batches are in flight already");
	cudaSetDevice(s->m->device);
	if ((st = submit_impl(s, b, outputs, err)) != FB_OK)
		return session_fault(s, st, err);
	s->next = (s->next + 1) % FB_BACKEND_MAX_IN_FLIGHT;
	s->n_pending++;
	return FB_OK;
}

static fb_status
cu_wait(void *session, fb_outputs *out, fb_error *err)
{
	cu_session *s = (cu_session *) session;
	int			oldest;
	cu_slot    *sl;
	const batch_plan *p;
	cudaError_t e;
	bool		stop = false;

	if (s->n_pending == 0)
		return cu_fail(err, FB_ERR_INVALID, "no batch in flight");
	oldest = (s->next - s->n_pending + FB_BACKEND_MAX_IN_FLIGHT) % FB_BACKEND_MAX_IN_FLIGHT;
	s->n_pending--;
	if (s->broken)
		return broken(s, err);
	sl = &s->slot[oldest];
	p = &sl->plan;
	/* poll, so that a host's cancel is seen while the device works */
	while ((e = cudaEventQuery(sl->done)) == cudaErrorNotReady)
	{
		struct timespec ts = {0, 20000};

		if (!stop && s->ctl != NULL && s->ctl->interrupt != NULL && s->ctl->interrupt(s->ctl->arg))
			stop = true;
		nanosleep(&ts, NULL);
	}
	if (e != cudaSuccess)
	{
		cuda_fail(err, e, "running a batch");
		return session_fault(s, FB_ERR_DEVICE, err);
	}
	if (stop)
		return cu_fail(err, FB_ERR_INTERRUPTED, "interrupted");
	{
		unsigned	flag;

		memcpy(&flag, sl->pin_out + p->f_flag, sizeof(flag));
		if (flag != 0)
			return cu_fail(err, FB_ERR_NUMERIC, "the encoder produced a non-finite value");
	}
	memset(out, 0, sizeof(*out));
	out->n_seq = p->n_seq;
	out->n_rows = p->T;
	if (p->outputs & FB_OUT_HIDDEN)
		out->hidden = sl->pin_out + p->f_hidden;
	if (p->outputs & FB_OUT_CLS)
		out->cls = sl->pin_out + p->f_cls;
	if (p->outputs & FB_OUT_MEAN)
		out->mean = sl->pin_out + p->f_mean;
	if (p->outputs & FB_OUT_POOLED)
		out->pooled = sl->pin_out + p->f_pooled;
	if (p->outputs & FB_OUT_SEQ_LOGITS)
		out->seq_logits = sl->pin_out + p->f_seq;
	if (p->outputs & FB_OUT_TOKEN_LOGITS)
		out->token_logits = sl->pin_out + p->f_tok;
	return FB_OK;
}

static const fb_backend_i cuda_backend = {
	FB_BACKEND_ABI,
	"cuda",
	cu_probe,
	cu_model_init,
	cu_model_free,
	cu_session_init,
	cu_session_free,
	cu_session_set_threads,
	cu_reserve,
	cu_submit,
	cu_wait,
};

FB_EXPORT const fb_backend_i *
fb_backend_module_entry(int abi)
{
	return abi == FB_BACKEND_ABI ? &cuda_backend : NULL;
}
