/*
 * common.cuh — what every CUDA source of the backend includes.
 *
 * The same sources compile with nvcc for the GPU and with g++ against the
 * CPU execution harness (harness/fbh_cuda.h) for `make test`, so kernels
 * are launched through FB_LAUNCH and dynamic shared memory is declared
 * with FB_DYN_SMEM; nothing else differs.
 *
 * Element types: T is the storage type of weights and activations,
 * __half (fp16 checkpoints and the default) or __nv_bfloat16 (bf16
 * checkpoints).  Arithmetic is fp32 throughout: values are converted on
 * load (fb_f32) and rounded to nearest even on store (fb_store<T>).
 */
#ifndef FB_CUDA_COMMON_CUH
#define FB_CUDA_COMMON_CUH

#ifdef __CUDACC__
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cublasLt.h>
#include <cublas_v2.h>
#include <mma.h>

#define FB_LAUNCH(kernel, grid, block, smem, stream, ...) \
	kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#define FB_DYN_SMEM(T, name) extern __shared__ __align__(128) unsigned char fb_dyn_smem_[]; \
	T *name = reinterpret_cast<T *>(fb_dyn_smem_)
#else
#include "harness/fbh_cuda.h"
#endif

#include <stddef.h>
#include <stdint.h>

#define FB_WARP 32
#define FB_FULL_MASK 0xffffffffu

static __device__ __forceinline__ float
fb_f32(float x)
{
	return x;
}
static __device__ __forceinline__ float
fb_f32(__half x)
{
	return __half2float(x);
}
static __device__ __forceinline__ float
fb_f32(__nv_bfloat16 x)
{
	return __bfloat162float(x);
}

template <typename T> __device__ __forceinline__ T fb_store(float x);
template <> __device__ __forceinline__ float
fb_store<float>(float x)
{
	return x;
}
template <> __device__ __forceinline__ __half
fb_store<__half>(float x)
{
	return __float2half_rn(x);
}
template <> __device__ __forceinline__ __nv_bfloat16
fb_store<__nv_bfloat16>(float x)
{
	return __float2bfloat16_rn(x);
}

/* Sum (max) over the 32 lanes of a warp, result in every lane. */
static __device__ __forceinline__ float
fb_warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(FB_FULL_MASK, v, o);
	return v;
}

static __device__ __forceinline__ float
fb_warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(FB_FULL_MASK, v, o));
	return v;
}

/* The model's activation (fb_act of finbert.h). */
enum fb_cuda_act
{
	FB_CUDA_GELU_ERF = 0,
	FB_CUDA_GELU_TANH = 1,
	FB_CUDA_RELU = 2,
	FB_CUDA_TANH = 3,			/* the pooler */
	FB_CUDA_NONE = 4
};

static __device__ __forceinline__ float
fb_activate(float x, int act)
{
	switch (act)
	{
		case FB_CUDA_GELU_ERF:
			return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
		case FB_CUDA_GELU_TANH:
			return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
		case FB_CUDA_RELU:
			return x > 0.0f ? x : 0.0f;
		case FB_CUDA_TANH:
			return tanhf(x);
		default:
			return x;
	}
}

static inline unsigned
fb_div_up(size_t a, size_t b)
{
	return (unsigned) ((a + b - 1) / b);
}

#endif
