/*
 * act.cu — bias + activation fused into one pass over a GEMM's output
 * (the feed-forward's GELU, the pooler's tanh, ELECTRA's head GELU).
 *
 * Element-wise and memory-bound: a grid-stride loop over rows x C, one
 * read and one write per element, the bias from L1.
 */
#include "kernels.cuh"

template <typename T>
__global__ void
bias_act_kernel(T *y, const float *bias, size_t n, int C, int act)
{
	size_t		stride = (size_t) gridDim.x * blockDim.x;

	for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		y[i] = fb_store<T>(fb_activate(fb_f32(y[i]) + bias[i % (size_t) C], act));
}

template <typename T>
cudaError_t
fb_cuda_bias_act(T *y, const float *bias, size_t rows, int C, int act, cudaStream_t s)
{
	void		(*k) (T *, const float *, size_t, int, int) = bias_act_kernel<T>;
	size_t		n = rows * (size_t) C;
	unsigned	blocks = fb_div_up(n, 256);

	if (n == 0)
		return cudaSuccess;
	/* enough blocks to fill any GPU; the loop covers the rest */
	if (blocks > 4096)
		blocks = 4096;
	FB_LAUNCH(k, blocks, 256, 0, s, y, bias, n, C, act);
	return cudaGetLastError();
}

template cudaError_t fb_cuda_bias_act<__half>(__half *, const float *, size_t, int, int,
											  cudaStream_t);
template cudaError_t fb_cuda_bias_act<__nv_bfloat16>(__nv_bfloat16 *, const float *, size_t,
													 int, int, cudaStream_t);
template cudaError_t fb_cuda_bias_act<float>(float *, const float *, size_t, int, int,
											 cudaStream_t);
