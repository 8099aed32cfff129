/*
 * heads.cu — what comes after the encoder on the device: [CLS] rows, mean
 * pooling, fp32 copies of the rows that go back to the host, and the
 * classifier / token-classification logits (the pooler and ELECTRA's
 * dense layer are GEMMs, gemm.cu, followed by fb_cuda_bias_act).  Only
 * these small outputs cross the bus.
 */
#include "kernels.cuh"

template <typename T>
__global__ void
gather_rows_kernel(const T *x, const int32_t *rows, int n, int C, T *out)
{
	size_t		total = (size_t) n * C,
				stride = (size_t) gridDim.x * blockDim.x;

	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
		out[i] = x[(size_t) rows[i / C] * C + i % C];
}

template <typename T>
cudaError_t
fb_cuda_gather_rows(const T *x, const int32_t *rows, int n, int C, T *out, cudaStream_t s)
{
	void		(*k) (const T *, const int32_t *, int, int, T *) = gather_rows_kernel<T>;
	unsigned	blocks = fb_div_up((size_t) n * C, 256);

	if (n <= 0)
		return cudaSuccess;
	FB_LAUNCH(k, blocks > 4096 ? 4096 : blocks, 256, 0, s, x, rows, n, C, out);
	return cudaGetLastError();
}

template <typename T>
__global__ void
to_f32_kernel(const T *x, size_t n, float *out)
{
	size_t		stride = (size_t) gridDim.x * blockDim.x;

	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		out[i] = fb_f32(x[i]);
}

template <typename T>
cudaError_t
fb_cuda_to_f32(const T *x, size_t n, float *out, cudaStream_t s)
{
	void		(*k) (const T *, size_t, float *) = to_f32_kernel<T>;
	unsigned	blocks = fb_div_up(n, 256);

	if (n == 0)
		return cudaSuccess;
	FB_LAUNCH(k, blocks > 4096 ? 4096 : blocks, 256, 0, s, x, n, out);
	return cudaGetLastError();
}

/* one block per sequence, threads over the channels, fp32 sums */
template <typename T>
__global__ void
mean_rows_kernel(const T *x, const int32_t *seq_start, const int32_t *seq_len, int C,
				 float *out)
{
	int			i = blockIdx.x;
	int			L = seq_len[i];
	const T    *rows = x + (size_t) seq_start[i] * C;

	for (int c = threadIdx.x; c < C; c += blockDim.x)
	{
		float		sum = 0.0f;

		for (int t = 0; t < L; t++)
			sum += fb_f32(rows[(size_t) t * C + c]);
		out[(size_t) i * C + c] = sum / (float) L;
	}
}

template <typename T>
cudaError_t
fb_cuda_mean_rows(const T *x, const int32_t *seq_start, const int32_t *seq_len, int n, int C,
				  float *out, cudaStream_t s)
{
	void		(*k) (const T *, const int32_t *, const int32_t *, int, float *) =
		mean_rows_kernel<T>;

	if (n <= 0)
		return cudaSuccess;
	FB_LAUNCH(k, (unsigned) n, 128, 0, s, x, seq_start, seq_len, C, out);
	return cudaGetLastError();
}

/* one warp per output (row, label): a dot product over K channels */
template <typename TX>
__global__ void
linear_rows_kernel(const TX *x, int rows, int K, const float *W, const float *b, int N,
				   float *out)
{
	size_t		o = (size_t) blockIdx.x * 4 + threadIdx.x / 32;
	int			lane = threadIdx.x % 32;
	const TX   *xr;
	const float *wr;
	float		sum = 0.0f;

	if (o >= (size_t) rows * N)
		return;
	xr = x + (o / N) * K;
	wr = W + (o % N) * K;
	for (int k = lane; k < K; k += 32)
		sum += fb_f32(xr[k]) * wr[k];
	sum = fb_warp_sum(sum);
	if (lane == 0)
		out[o] = sum + b[o % N];
}

template <typename TX>
cudaError_t
fb_cuda_linear_rows(const TX *x, int rows, int K, const float *W, const float *b, int N,
					float *out, cudaStream_t s)
{
	void		(*k) (const TX *, int, int, const float *, const float *, int, float *) =
		linear_rows_kernel<TX>;
	size_t		n = (size_t) rows * N;

	if (n == 0)
		return cudaSuccess;
	FB_LAUNCH(k, fb_div_up(n, 4), 128, 0, s, x, rows, K, W, b, N, out);
	return cudaGetLastError();
}

#define INSTANTIATE(T) \
	template cudaError_t fb_cuda_gather_rows<T>(const T *, const int32_t *, int, int, T *, \
												cudaStream_t); \
	template cudaError_t fb_cuda_to_f32<T>(const T *, size_t, float *, cudaStream_t); \
	template cudaError_t fb_cuda_mean_rows<T>(const T *, const int32_t *, const int32_t *, int, \
											  int, float *, cudaStream_t); \
	template cudaError_t fb_cuda_linear_rows<T>(const T *, int, int, const float *, \
												const float *, int, float *, cudaStream_t);
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
template cudaError_t fb_cuda_linear_rows<float>(const float *, int, int, const float *,
												const float *, int, float *, cudaStream_t);
