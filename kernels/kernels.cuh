/*
 * kernels.cuh — launchers of the CUDA backend's kernels (one .cu per
 * family: norm, act, attention, heads, gemm), for backend.cu and the
 * kernel tests.  Every launcher queues work on a stream and returns
 * cudaGetLastError() of the launch (configuration errors); faults inside
 * a kernel show up at the next synchronisation.
 *
 * Layouts: activations are row-major [rows, C] of the storage type T
 * (__half or __nv_bfloat16); the sequences of a batch are packed end to
 * end, no padding (seq_start / seq_len give each one's rows).  Bias,
 * LayerNorm parameters and head weights are fp32.  See kernels/README.md.
 */
#ifndef FB_CUDA_KERNELS_CUH
#define FB_CUDA_KERNELS_CUH

#include "common.cuh"

/* ---- norm.cu ---------------------------------------------------------- */

/* out[r] = LayerNorm(word[ids[r]] + pos_emb[pos[r]] + type0) over E
 * channels (statistics in fp32), r < rows. */
template <typename T>
cudaError_t fb_cuda_embed_layernorm(const int32_t *ids, const int32_t *pos, int rows,
									const T *word, const T *pos_emb, const T *type0,
									const float *g, const float *b, int E, float eps,
									T *out, cudaStream_t s);

/* out[r] = LayerNorm(y[r] + bias + res[r]) over C channels (fp32
 * statistics); out may be res.  nonfinite (may be NULL): set to 1 when an
 * output is not finite. */
template <typename T>
cudaError_t fb_cuda_bias_residual_layernorm(const T *y, const float *bias, const T *res,
											const float *g, const float *b, int rows, int C,
											float eps, T *out, unsigned *nonfinite,
											cudaStream_t s);

/* ---- act.cu ------------------------------------------------------------ */

/* y[r, c] = act(y[r, c] + bias[c]) in place (T = __half, __nv_bfloat16 or
 * float); act is an fb_cuda_act. */
template <typename T>
cudaError_t fb_cuda_bias_act(T *y, const float *bias, size_t rows, int C, int act,
							 cudaStream_t s);

/* ---- attention.cu -------------------------------------------------------- */

/*
 * One batch's attention geometry.  Query rows of sequence i are its
 * seq_len[i] rows from seq_start[i] (or, cls_only, its first row only, and
 * its output goes to compact row i).  qkv rows are [q | k | v] of H
 * channels each (3H), heads of dh = H / n_heads channels; the bias is
 * already in.  All pointers are device memory.
 */
typedef struct fb_cuda_attn
{
	int			n_seq;
	const int32_t *seq_start;	/* [n_seq] */
	const int32_t *seq_len;		/* [n_seq] */
	int			H,
				n_heads;
	int			cls_only;
	/* fused kernel: tiles of 64 query rows */
	int			n_tiles;
	const int32_t *tile_seq;	/* [n_tiles] */
	const int32_t *tile_q0;		/* [n_tiles] first query row */
} fb_cuda_attn;

#define FB_ATTN_QROWS 64		/* query rows per block of the fused kernel */

/* Largest head dimension the fused kernel takes (padded to 16, 32, 64 or
 * 128); above it the GEMM path runs. */
#define FB_ATTN_FUSED_MAX_DH 128

/* Raises the fused kernel's dynamic shared memory limits (once). */
cudaError_t fb_cuda_attention_fused_setup(void);

/* Flash-style fused attention (online softmax, wmma tensor cores). */
template <typename T>
cudaError_t fb_cuda_attention_fused(const T *qkv, T *ctx, const fb_cuda_attn *a, int dh,
									cudaStream_t s);

/*
 * GEMM attention, one call per length bucket: n_items (sequence, head)
 * pairs whose sequences are padded (in scratch only) to Lb rows.  The
 * pointer arrays (device memory, n_items each) point at each item's Q, K,
 * V in qkv, its [Lq, Lb] fp32 scores and T probabilities and its [Lq, dh]
 * output, which are also at fixed strides from the *_base pointers;
 * item_seq / item_head (device) say whose it is.  Lq = 1 with cls_only,
 * else Lb.
 */
typedef struct fb_cuda_attn_bucket
{
	int			Lb,
				Lq,
				n_items;
	const void *const *q,
			   *const *k,
			   *const *v;
	void	   *const *scores;	/* float */
	void	   *const *probs;	/* T */
	void	   *const *out;		/* T */
	const void *const *probs_c; /* the same arrays, const */
	const int32_t *item_seq;
	const int32_t *item_head;
	float	   *scores_base;	/* item i's [Lq, Lb] scores at i * block_stride */
	void	   *probs_base;		/* and probabilities */
	void	   *out_base;		/* item i's [Lq, dh] output at i * out_stride */
	size_t		block_stride;	/* elements, >= Lq * Lb */
	size_t		out_stride;		/* elements, >= Lq * dh */
} fb_cuda_attn_bucket;

template <typename T>
cudaError_t fb_cuda_attention_gemm(cublasHandle_t blas, T *ctx, const fb_cuda_attn *a, int dh,
								   const fb_cuda_attn_bucket *b, cudaStream_t s);

/* ---- heads.cu ----------------------------------------------------------- */

/* out[i] = x[rows[i]], n rows of C channels. */
template <typename T>
cudaError_t fb_cuda_gather_rows(const T *x, const int32_t *rows, int n, int C, T *out,
								cudaStream_t s);

/* out[i] = (float) x[i], n elements. */
template <typename T>
cudaError_t fb_cuda_to_f32(const T *x, size_t n, float *out, cudaStream_t s);

/* out[i] = mean of rows seq_start[i] .. + seq_len[i] of x (fp32 sums). */
template <typename T>
cudaError_t fb_cuda_mean_rows(const T *x, const int32_t *seq_start, const int32_t *seq_len,
							  int n, int C, float *out, cudaStream_t s);

/* out[r, j] = b[j] + sum_k x[r, k] W[j, k]: rows x N, W fp32 [N, K]
 * (PyTorch's layout); x T or float. */
template <typename TX>
cudaError_t fb_cuda_linear_rows(const TX *x, int rows, int K, const float *W,
								const float *b, int N, float *out, cudaStream_t s);

/* ---- gemm.cu ------------------------------------------------------------- */

/* cuBLASLt linear layers with cached algorithms. */
typedef struct fb_cuda_gemm fb_cuda_gemm;

cublasStatus_t fb_cuda_gemm_create(fb_cuda_gemm **g, cudaStream_t s, void *workspace,
								   size_t workspace_bytes);
void		fb_cuda_gemm_destroy(fb_cuda_gemm *g);

/*
 * y[rows, N] = x[rows, K] W[K, N] (+ bias[N]): x and W of type in
 * (CUDA_R_16F / CUDA_R_16BF), y of type out (in, or CUDA_R_32F), bias of
 * type out or NULL; row-major, fp32 accumulation (CUBLAS_COMPUTE_32F,
 * tensor cores).
 */
cublasStatus_t fb_cuda_linear(fb_cuda_gemm *g, cudaDataType_t in, const void *x, int rows,
							  int K, const void *W, int N, const void *bias, void *y,
							  cudaDataType_t out);

#endif
