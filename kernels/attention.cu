/*
 * attention.cu — scaled dot-product attention over packed variable-length
 * sequences (no padding rows in the activations), two ways:
 *
 * 1. fused (flash_attention_kernel): one block per (64 query rows of a
 *    sequence, head).  Keys and values stream through shared memory in
 *    tiles; each warp keeps 16 query rows, computes S = Q K^T for the tile
 *    with wmma (tensor cores, fp16/bf16 in, fp32 accumulate), updates the
 *    rows' running max and sum (online softmax, one pass, exp2 with the
 *    scale folded in), rescales its fp32 output rows and adds P V (wmma
 *    again).  Scores never reach global memory.  Head dimensions are
 *    padded with zeros to 16, 32, 64 or 128 in shared memory.
 *
 * 2. GEMM (fb_cuda_attention_gemm): per length bucket, cuBLAS batched
 *    GEMMs over (sequence, head) items padded to the bucket's length in
 *    scratch memory only: S = Q K^T (fp32 out), a masked row softmax
 *    kernel (P in T, zero past the sequence), O = P V, and a scatter of the
 *    valid rows into the packed context.
 *
 * Which is faster depends on the GPU, lengths and head size and has to be
 * measured on one (bench/gpu.py runs both); FB_ATTENTION_AUTO takes the
 * fused kernel where it applies (kernels/README.md says why).
 */
#include "kernels.cuh"

using namespace nvcuda;

#define ATTN_WARPS 4			/* FB_ATTN_QROWS = 16 rows per warp */

/* shared memory of the fused kernel for a head width DHP, KT keys per tile */
static inline size_t
flash_smem_bytes(int DHP, int KT, size_t elem)
{
	size_t		kv = 2 * (size_t) KT * DHP * elem;
	size_t		u = (size_t) 16 * (KT > DHP ? KT : DHP) * 4;
	size_t		per_warp = (size_t) 16 * KT * elem	/* P */
		+ u						/* S, Q staging, P V */
		+ (size_t) 16 * DHP * 4 /* O */
		+ 3 * 16 * 4;			/* row max, sum, rescale */

	return kv + ATTN_WARPS * per_warp;
}

template <typename T, int DHP, int KT>
__global__ void
__launch_bounds__(ATTN_WARPS * 32)
flash_attention_kernel(const T *qkv, T *ctx, const int32_t *tile_seq, const int32_t *tile_q0,
					   const int32_t *seq_start, const int32_t *seq_len, int H, int dh,
					   int cls_only, float scale_log2)
{
	FB_DYN_SMEM(unsigned char, smem);
	const int	ld = 3 * H;
	const int	warp = threadIdx.x / 32,
				lane = threadIdx.x % 32;
	const int	seq = tile_seq[blockIdx.x],
				q0 = tile_q0[blockIdx.x],
				h = blockIdx.y;
	const int	L = seq_len[seq],
				start = seq_start[seq];
	const int	nq = cls_only ? 1 : (L - q0 < FB_ATTN_QROWS ? L - q0 : FB_ATTN_QROWS);
	const int	my_rows = nq - 16 * warp;	/* valid query rows of this warp */
	const int	UW = KT > DHP ? KT : DHP;

	T		   *Ks = (T *) smem;
	T		   *Vs = Ks + KT * DHP;
	unsigned char *wbase = (unsigned char *) (Vs + KT * DHP) +
		(size_t) warp * (16 * KT * sizeof(T) + 16 * UW * 4 + 16 * DHP * 4 + 3 * 16 * 4);
	T		   *Ps = (T *) wbase;
	float	   *U = (float *) (wbase + 16 * KT * sizeof(T));
	float	   *Os = U + 16 * UW;
	float	   *Mrow = Os + 16 * DHP,
			   *Lrow = Mrow + 16,
			   *Arow = Lrow + 16;

	wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qf[DHP / 16];

	/* this warp's 16 query rows, zero-padded, staged through U */
	if (my_rows > 0)
	{
		T		   *Qs = (T *) U;

		for (int i = lane; i < 16 * DHP; i += 32)
		{
			int			r = i / DHP,
						c = i % DHP,
						q = 16 * warp + r;

			Qs[i] = q < nq && c < dh ?
				qkv[(size_t) (start + q0 + q) * ld + (size_t) h * dh + c] : fb_store<T>(0.0f);
		}
		for (int i = lane; i < 16 * DHP; i += 32)
			Os[i] = 0.0f;
		if (lane < 16)
		{
			Mrow[lane] = -INFINITY;
			Lrow[lane] = 0.0f;
		}
		__syncwarp();
		for (int d = 0; d < DHP / 16; d++)
			wmma::load_matrix_sync(qf[d], Qs + d * 16, DHP);
		__syncwarp();
	}

	for (int k0 = 0; k0 < L; k0 += KT)
	{
		__syncthreads();		/* the previous tile is no longer read */
		for (int i = threadIdx.x; i < KT * DHP; i += ATTN_WARPS * 32)
		{
			int			r = i / DHP,
						c = i % DHP,
						key = k0 + r;
			bool		ok = key < L && c < dh;
			size_t		off = (size_t) (start + key) * ld + (size_t) h * dh + c;

			Ks[i] = ok ? qkv[off + H] : fb_store<T>(0.0f);
			Vs[i] = ok ? qkv[off + 2 * (size_t) H] : fb_store<T>(0.0f);
		}
		__syncthreads();
		if (my_rows <= 0)
			continue;

		/* S = Q K^T for the tile: 16 x KT, fp32 */
		for (int j = 0; j < KT / 16; j++)
		{
			wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;

			wmma::fill_fragment(acc, 0.0f);
			for (int d = 0; d < DHP / 16; d++)
			{
				/* K^T: element (d, key) at Ks[key * DHP + d]: column-major */
				wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kf;

				wmma::load_matrix_sync(kf, Ks + j * 16 * DHP + d * 16, DHP);
				wmma::mma_sync(acc, qf[d], kf, acc);
			}
			wmma::store_matrix_sync(U + j * 16, acc, KT, wmma::mem_row_major);
		}
		__syncwarp();

		/* online softmax: two lanes per row, half a tile each */
		{
			int			r = lane >> 1,
						c0 = (lane & 1) * (KT / 2);
			float		mx = -INFINITY,
						sum = 0.0f,
						m_old,
						m_new,
						alpha;

			for (int c = c0; c < c0 + KT / 2; c++)
				if (k0 + c < L)
					mx = fmaxf(mx, U[r * KT + c] * scale_log2);
			mx = fmaxf(mx, __shfl_xor_sync(FB_FULL_MASK, mx, 1));
			m_old = Mrow[r];
			m_new = fmaxf(m_old, mx);
			for (int c = c0; c < c0 + KT / 2; c++)
			{
				float		p = k0 + c < L ? exp2f(U[r * KT + c] * scale_log2 - m_new) : 0.0f;
				T			pt = fb_store<T>(p);

				Ps[r * KT + c] = pt;
				sum += fb_f32(pt);	/* the sum of what P V multiplies */
			}
			sum += __shfl_xor_sync(FB_FULL_MASK, sum, 1);
			alpha = exp2f(m_old - m_new);	/* 0 on the first tile */
			__syncwarp();
			if ((lane & 1) == 0)
			{
				Mrow[r] = m_new;
				Lrow[r] = Lrow[r] * alpha + sum;
				Arow[r] = alpha;
			}
			__syncwarp();
		}

		/* U = P V: 16 x DHP, then O = O * alpha + U */
		for (int j = 0; j < DHP / 16; j++)
		{
			wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;

			wmma::fill_fragment(acc, 0.0f);
			for (int kk = 0; kk < KT / 16; kk++)
			{
				wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pf;
				wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vf;

				wmma::load_matrix_sync(pf, Ps + kk * 16, KT);
				wmma::load_matrix_sync(vf, Vs + kk * 16 * DHP + j * 16, DHP);
				wmma::mma_sync(acc, pf, vf, acc);
			}
			wmma::store_matrix_sync(U + j * 16, acc, DHP, wmma::mem_row_major);
		}
		__syncwarp();
		for (int i = lane; i < 16 * DHP; i += 32)
			Os[i] = Os[i] * Arow[i / DHP] + U[i];
		__syncwarp();
	}

	if (my_rows <= 0)
		return;
	for (int i = lane; i < 16 * DHP; i += 32)
	{
		int			r = i / DHP,
					c = i % DHP,
					q = 16 * warp + r;

		if (q < nq && c < dh)
		{
			size_t		row = cls_only ? (size_t) seq : (size_t) (start + q0 + q);

			ctx[row * H + (size_t) h * dh + c] = fb_store<T>(Os[i] / Lrow[r]);
		}
	}
}

/* The head width a dh runs at. */
static int
padded_dh(int dh)
{
	return dh <= 16 ? 16 : dh <= 32 ? 32 : dh <= 64 ? 64 : 128;
}

template <typename T, int DHP>
static cudaError_t
flash_setup_one(void)
{
	const int	KT = DHP == 128 ? 32 : 64;
	void		(*k) (const T *, T *, const int32_t *, const int32_t *, const int32_t *,
					  const int32_t *, int, int, int, float) = flash_attention_kernel<T, DHP, KT>;

	return cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize,
								(int) flash_smem_bytes(DHP, KT, sizeof(T)));
}

cudaError_t
fb_cuda_attention_fused_setup(void)
{
	cudaError_t e = cudaSuccess;

#define SETUP(T) \
	if (e == cudaSuccess) e = flash_setup_one<T, 16>(); \
	if (e == cudaSuccess) e = flash_setup_one<T, 32>(); \
	if (e == cudaSuccess) e = flash_setup_one<T, 64>(); \
	if (e == cudaSuccess) e = flash_setup_one<T, 128>();
	SETUP(__half)
	SETUP(__nv_bfloat16)
#undef SETUP
	return e;
}

template <typename T, int DHP>
static cudaError_t
flash_launch(const T *qkv, T *ctx, const fb_cuda_attn *a, int dh, cudaStream_t s)
{
	const int	KT = DHP == 128 ? 32 : 64;
	void		(*k) (const T *, T *, const int32_t *, const int32_t *, const int32_t *,
					  const int32_t *, int, int, int, float) = flash_attention_kernel<T, DHP, KT>;
	float		scale_log2 = 1.4426950408889634f / sqrtf((float) dh);

	FB_LAUNCH(k, dim3((unsigned) a->n_tiles, (unsigned) a->n_heads), ATTN_WARPS * 32,
			  flash_smem_bytes(DHP, KT, sizeof(T)), s,
			  qkv, ctx, a->tile_seq, a->tile_q0, a->seq_start, a->seq_len, a->H, dh,
			  a->cls_only, scale_log2);
	return cudaGetLastError();
}

template <typename T>
cudaError_t
fb_cuda_attention_fused(const T *qkv, T *ctx, const fb_cuda_attn *a, int dh, cudaStream_t s)
{
	if (a->n_tiles <= 0)
		return cudaSuccess;
	switch (padded_dh(dh))
	{
		case 16:
			return flash_launch<T, 16>(qkv, ctx, a, dh, s);
		case 32:
			return flash_launch<T, 32>(qkv, ctx, a, dh, s);
		case 64:
			return flash_launch<T, 64>(qkv, ctx, a, dh, s);
		default:
			if (dh > FB_ATTN_FUSED_MAX_DH)
				return cudaErrorInvalidValue;
			return flash_launch<T, 128>(qkv, ctx, a, dh, s);
	}
}

/* ---------------------------------------------------------------------
 * GEMM attention
 * --------------------------------------------------------------------- */

/*
 * Masked softmax of each [Lq, Lb] score block (already scaled): row r of
 * item i keeps the seq_len of the item's sequence columns; one warp per
 * row, P = 0 past the sequence.
 */
template <typename T>
__global__ void
masked_softmax_kernel(const float *scores, T *probs, const int32_t *item_seq,
					  const int32_t *seq_len, int Lq, int Lb, int n_rows, size_t stride)
{
	int			lane = threadIdx.x % 32;
	int			row = blockIdx.x * 4 + threadIdx.x / 32;
	size_t		off;
	const float *s;
	T		   *p;
	int			L;
	float		mx = -INFINITY,
				sum = 0.0f,
				inv;

	if (row >= n_rows)
		return;
	L = seq_len[item_seq[row / Lq]];
	off = (size_t) (row / Lq) * stride + (size_t) (row % Lq) * Lb;
	s = scores + off;
	p = probs + off;
	for (int c = lane; c < L; c += 32)
		mx = fmaxf(mx, s[c]);
	mx = fb_warp_max(mx);
	for (int c = lane; c < L; c += 32)
		sum += expf(s[c] - mx);
	inv = 1.0f / fb_warp_sum(sum);
	for (int c = lane; c < Lb; c += 32)
		p[c] = fb_store<T>(c < L ? expf(s[c] - mx) * inv : 0.0f);
}

/* valid rows of each item's [Lq, dh] output into the packed context */
template <typename T>
__global__ void
scatter_heads_kernel(const T *out, T *ctx, const int32_t *item_seq, const int32_t *item_head,
					 const int32_t *seq_start, const int32_t *seq_len, int Lq, int dh, int H,
					 int cls_only, size_t n, size_t out_stride)
{
	size_t		stride = (size_t) gridDim.x * blockDim.x;

	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
	{
		size_t		item = i / ((size_t) Lq * dh);
		int			r = (int) ((i / dh) % Lq),
					c = (int) (i % dh);
		int			seq = item_seq[item];

		if (r < seq_len[seq])
		{
			size_t		row = cls_only ? (size_t) seq : (size_t) seq_start[seq] + r;

			ctx[row * H + (size_t) item_head[item] * dh + c] =
				out[item * out_stride + (size_t) r * dh + c];
		}
	}
}

static cudaDataType_t
cuda_type(const __half *)
{
	return CUDA_R_16F;
}

static cudaDataType_t
cuda_type(const __nv_bfloat16 *)
{
	return CUDA_R_16BF;
}

template <typename T>
cudaError_t
fb_cuda_attention_gemm(cublasHandle_t blas, T *ctx, const fb_cuda_attn *a, int dh,
					   const fb_cuda_attn_bucket *b, cudaStream_t s)
{
	void		(*sm) (const float *, T *, const int32_t *, const int32_t *, int, int, int, size_t) =
		masked_softmax_kernel<T>;
	void		(*sc) (const T *, T *, const int32_t *, const int32_t *, const int32_t *,
					   const int32_t *, int, int, int, int, size_t, size_t) = scatter_heads_kernel<T>;
	cudaDataType_t t = cuda_type((const T *) NULL);
	float		scale = 1.0f / sqrtf((float) dh),
				zero = 0.0f,
				one = 1.0f;
	int			ld = 3 * a->H,
				rows = b->Lq * b->n_items;
	size_t		n_out = (size_t) rows * dh;
	unsigned	blocks = fb_div_up(n_out, 256);
	cublasStatus_t st;

	if (b->n_items == 0)
		return cudaSuccess;
	if (cublasSetStream(blas, s) != CUBLAS_STATUS_SUCCESS)
		return cudaErrorUnknown;
	/* S^T (Lb x Lq, column-major) = K (Lb x dh) Q^T (dh x Lq), scaled */
	st = cublasGemmBatchedEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, b->Lb, b->Lq, dh, &scale,
							 b->k, t, ld, b->q, t, ld, &zero, b->scores, CUDA_R_32F, b->Lb,
							 b->n_items, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	if (st != CUBLAS_STATUS_SUCCESS)
		return cudaErrorUnknown;
	FB_LAUNCH(sm, fb_div_up((size_t) rows, 4), 128, 0, s,
			  b->scores_base, (T *) b->probs_base, b->item_seq, a->seq_len, b->Lq, b->Lb, rows,
			  b->block_stride);
	if (cudaGetLastError() != cudaSuccess)
		return cudaErrorLaunchFailure;
	/* O^T (dh x Lq) = V^T (dh x Lb) P^T (Lb x Lq) */
	st = cublasGemmBatchedEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, dh, b->Lq, b->Lb, &one,
							 b->v, t, ld, b->probs_c, t, b->Lb, &zero, b->out, t, dh,
							 b->n_items, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	if (st != CUBLAS_STATUS_SUCCESS)
		return cudaErrorUnknown;
	if (blocks > 4096)
		blocks = 4096;
	FB_LAUNCH(sc, blocks, 256, 0, s, (const T *) b->out_base, ctx, b->item_seq, b->item_head,
			  a->seq_start, a->seq_len, b->Lq, dh, a->H, a->cls_only, n_out, b->out_stride);
	return cudaGetLastError();
}

#define INSTANTIATE(T) \
	template cudaError_t fb_cuda_attention_fused<T>(const T *, T *, const fb_cuda_attn *, int, \
													cudaStream_t); \
	template cudaError_t fb_cuda_attention_gemm<T>(cublasHandle_t, T *, const fb_cuda_attn *, \
												   int, const fb_cuda_attn_bucket *, cudaStream_t);
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
