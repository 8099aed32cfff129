/*
 * fbh_cuda.h — the CPU execution harness: runs finbert's CUDA sources,
 * compiled as C++ by g++, on the CPU, so that `make test` executes the
 * whole CUDA backend (kernels and host code) without a GPU.
 *
 * What it stands in for, with the semantics the kernels rely on:
 *  - launches (FB_LAUNCH): the blocks of a grid run one after the other;
 *    the threads of a block are fibers on one OS thread that switch only
 *    at __syncthreads and at warp-collective operations, so everything
 *    between two synchronisation points runs without interleaving (a
 *    legal schedule of the GPU's).  A barrier that cannot be completed
 *    (threads waiting at different barriers, a warp operation whose mask
 *    names an exited lane) fails the launch, as a hang would on a GPU.
 *  - shared memory: static __shared__ variables become function statics
 *    (blocks run one at a time, so one copy serves every block); dynamic
 *    shared memory (FB_DYN_SMEM) is a per-block buffer filled with NaN
 *    bytes, so a read of what no thread wrote shows up in results.  A
 *    launch asking for more than the kernel's allowed dynamic shared
 *    memory (48 KB unless raised by cudaFuncSetAttribute, at most 227 KB)
 *    fails as on a GPU.
 *  - warp collectives (__shfl_*_sync, __ballot_sync, __syncwarp, wmma
 *    load/store/mma): a lane arrives, and when every lane of the mask has
 *    arrived the operation runs once for all of them; every lane of the
 *    mask must exist, be alive and call the same operation.
 *  - atomics: plain read-modify-write (no fiber switch can split one).
 *  - __half / __nv_bfloat16: storage types with round-to-nearest-even
 *    conversions.
 *  - nvcuda::wmma fragments: each lane holds the whole tile (the GPU's
 *    distribution over lanes is unspecified, and portable code applies the
 *    same operation to every element); mma_sync and store_matrix_sync
 *    check that the lanes hold the same fragments (lanes 7, 15, 23 and 31
 *    against the first: a sample, the check costs as much as the rest),
 *    mma_sync multiplies the fp16/bf16 inputs in fp32 and accumulates in
 *    fp32.
 *  - the CUDA runtime: device memory is host memory (filled with NaN bytes
 *    when allocated), streams queue their work and run it when the host
 *    synchronises (an event query or synchronize, a blocking copy), so a
 *    host that changes a buffer an asynchronous copy still has to read, or
 *    reads results before waiting, gets wrong results here too.
 *  - cuBLAS / cuBLASLt: the few calls the backend makes, as reference
 *    GEMMs on the fp16/bf16 inputs converted exactly to fp32, fp32 sums
 *    (OpenBLAS), the output rounded to its type as the GPU would.
 *
 * Not emulated: timing, memory coalescing, bank conflicts, occupancy, the
 * order of floating-point sums inside a tensor core.  Fault injection for
 * tests: FINBERT_HARNESS_FAULT=kind:n (harness.cc).
 */
#ifndef FBH_CUDA_H
#define FBH_CUDA_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>

/* ------------------------------------------------------------------------
 * Qualifiers
 * ------------------------------------------------------------------------ */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3
{
	unsigned	x,
				y,
				z;
	constexpr	dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_)
	{
	}
};

namespace fbh
{
	/* The fiber (GPU thread) running now.  Plain globals, not thread
	 * locals: launches run one at a time under the harness's lock (and a
	 * thread-local in a dlopen()ed module costs a call per access). */
	struct Thread
	{
		dim3		thread_idx;
		dim3		block_idx;
		int			linear;		/* index in the block */
	};
	extern Thread *current;
	extern dim3 grid_dim,
				block_dim;
	void	   *dynamic_smem();
	void		sync_block();

	/* warp collectives: every lane of mask hands in its own data; fn runs
	 * once, when all have arrived, with every lane's data (lanes not in
	 * mask: NULL) */
	typedef void (*collective_fn) (void *lane_data[32], unsigned mask, void *arg);
	void		warp_collective(unsigned mask, collective_fn fn, void *arg, void *my_data,
								int kind);
	int			lane_id();
}

#define threadIdx (fbh::current->thread_idx)
#define blockIdx (fbh::current->block_idx)
#define blockDim (fbh::block_dim)
#define gridDim (fbh::grid_dim)
static constexpr int warpSize = 32;

static inline void
__syncthreads()
{
	fbh::sync_block();
}

/* Dynamic shared memory: extern __shared__ T name[] on the GPU. */
#define FB_DYN_SMEM(T, name) T *name = (T *) fbh::dynamic_smem()

/* ------------------------------------------------------------------------
 * Half precision storage types
 * ------------------------------------------------------------------------ */
namespace fbh
{
	uint16_t	f32_to_f16_bits(float f);
	extern const float *const f16_table;	/* all 65536 halves as fp32 */
	static inline float
	f16_bits_to_f32(uint16_t h)
	{
		return f16_table[h];
	}
	uint16_t	f32_to_bf16_bits(float f);
	float		bf16_bits_to_f32(uint16_t h);
}

struct __half
{
	uint16_t	bits;
	__half() = default;
	__half(float f) : bits(fbh::f32_to_f16_bits(f))
	{
	}
	operator float() const
	{
		return fbh::f16_bits_to_f32(bits);
	}
};

struct __nv_bfloat16
{
	uint16_t	bits;
	__nv_bfloat16() = default;
	__nv_bfloat16(float f) : bits(fbh::f32_to_bf16_bits(f))
	{
	}
	operator float() const
	{
		return fbh::bf16_bits_to_f32(bits);
	}
};

static inline __half
__float2half(float f)
{
	return __half(f);
}
static inline __half
__float2half_rn(float f)
{
	return __half(f);
}
static inline float
__half2float(__half h)
{
	return (float) h;
}
static inline __nv_bfloat16
__float2bfloat16(float f)
{
	return __nv_bfloat16(f);
}
static inline __nv_bfloat16
__float2bfloat16_rn(float f)
{
	return __nv_bfloat16(f);
}
static inline float
__bfloat162float(__nv_bfloat16 h)
{
	return (float) h;
}

/* ------------------------------------------------------------------------
 * Device math the kernels use
 * ------------------------------------------------------------------------ */
using std::isfinite;

static inline float
rsqrtf(float x)
{
	return 1.0f / sqrtf(x);
}
static inline float
__fdividef(float a, float b)
{
	return a / b;
}

/* ------------------------------------------------------------------------
 * Warp shuffles, votes, warp barrier
 * ------------------------------------------------------------------------ */
namespace fbh
{
	enum
	{
		K_SYNCWARP = 1, K_SHFL, K_SHFL_XOR, K_SHFL_DOWN, K_SHFL_UP, K_BALLOT,
		K_WMMA_LOAD, K_WMMA_STORE, K_WMMA_MMA, K_WMMA_FILL
	};

	struct ShflData
	{
		uint64_t	in,
					out;
		int			arg;		/* source lane, lane mask or delta */
		int			width;
	};
	void		shfl_op(void *lane_data[32], unsigned mask, void *kind);

	template <typename T>
	static inline T
	shfl(int kind, unsigned mask, T v, int arg, int width)
	{
		static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
		ShflData	d;
		T			r;

		d.in = 0;
		memcpy(&d.in, &v, sizeof(T));
		d.arg = arg;
		d.width = width;
		warp_collective(mask, shfl_op, (void *) (intptr_t) kind, &d, kind);
		memcpy(&r, &d.out, sizeof(T));
		return r;
	}
}

template <typename T>
static inline T
__shfl_sync(unsigned mask, T v, int src, int width = 32)
{
	return fbh::shfl(fbh::K_SHFL, mask, v, src, width);
}
template <typename T>
static inline T
__shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
	return fbh::shfl(fbh::K_SHFL_XOR, mask, v, lane_mask, width);
}
template <typename T>
static inline T
__shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
	return fbh::shfl(fbh::K_SHFL_DOWN, mask, v, (int) delta, width);
}
template <typename T>
static inline T
__shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
	return fbh::shfl(fbh::K_SHFL_UP, mask, v, (int) delta, width);
}

unsigned	__ballot_sync(unsigned mask, int pred);
void		__syncwarp(unsigned mask = 0xffffffffu);

static inline int
__any_sync(unsigned mask, int pred)
{
	return __ballot_sync(mask, pred) != 0;
}
static inline int
__all_sync(unsigned mask, int pred)
{
	return __ballot_sync(mask, pred) == __ballot_sync(mask, 1);
}

/* ------------------------------------------------------------------------
 * Atomics: fibers switch only at synchronisation points, so a plain
 * read-modify-write is atomic here.
 * ------------------------------------------------------------------------ */
template <typename T>
static inline T
atomicAdd(T *p, T v)
{
	T			old = *p;

	*p = old + v;
	return old;
}
static inline int
atomicMax(int *p, int v)
{
	int			old = *p;

	*p = old > v ? old : v;
	return old;
}
static inline unsigned
atomicOr(unsigned *p, unsigned v)
{
	unsigned	old = *p;

	*p = old | v;
	return old;
}
static inline int
atomicOr(int *p, int v)
{
	int			old = *p;

	*p = old | v;
	return old;
}
static inline void
__threadfence()
{
}

/* ------------------------------------------------------------------------
 * nvcuda::wmma: each lane holds the whole tile
 * ------------------------------------------------------------------------ */
namespace nvcuda
{
	namespace wmma
	{
		struct matrix_a
		{
		};
		struct matrix_b
		{
		};
		struct accumulator
		{
		};
		struct row_major
		{
		};
		struct col_major
		{
		};
		enum layout_t
		{
			mem_row_major, mem_col_major
		};

		template <typename Use, int M, int N, int K> struct tile_shape;
		template <int M, int N, int K> struct tile_shape<matrix_a, M, N, K>
		{
			static const int rows = M, cols = K;
		};
		template <int M, int N, int K> struct tile_shape<matrix_b, M, N, K>
		{
			static const int rows = K, cols = N;
		};
		template <int M, int N, int K> struct tile_shape<accumulator, M, N, K>
		{
			static const int rows = M, cols = N;
		};

		/* elements in logical row-major order: x[r * cols + c] */
		template <typename Use, int M, int N, int K, typename T, typename Layout = void>
		struct fragment
		{
			static const int rows = tile_shape<Use, M, N, K>::rows;
			static const int cols = tile_shape<Use, M, N, K>::cols;
			enum
			{
				num_elements = rows * cols
			};
			T			x[rows * cols];
		};

		template <typename Frag, typename T>
		struct LoadArgs
		{
			Frag	   *frag;
			const T    *ptr;
			unsigned	ldm;
			bool		col;
		};

		/* each lane's fragment gets the whole tile: loaded once, copied to
		 * the lanes that load the same place (all of them, in portable
		 * code) */
		template <typename Frag, typename T>
		static void
		load_op(void *lane_data[32], unsigned mask, void *)
		{
			LoadArgs<Frag, T> *first = NULL;

			for (int l = 0; l < 32; l++)
			{
				LoadArgs<Frag, T> *a = (LoadArgs<Frag, T> *) lane_data[l];

				if (a == NULL)
					continue;
				if (first != NULL && a->ptr == first->ptr && a->ldm == first->ldm &&
					a->col == first->col)
				{
					memcpy(a->frag->x, first->frag->x, sizeof(a->frag->x));
					continue;
				}
				for (int r = 0; r < Frag::rows; r++)
					for (int c = 0; c < Frag::cols; c++)
						a->frag->x[r * Frag::cols + c] =
							a->col ? a->ptr[(size_t) c * a->ldm + r] : a->ptr[(size_t) r * a->ldm + c];
				if (first == NULL)
					first = a;
			}
		}

		template <typename Use, int M, int N, int K, typename T, typename Layout>
		static inline void
		load_matrix_sync(fragment<Use, M, N, K, T, Layout> &f, const T *p, unsigned ldm)
		{
			typedef fragment<Use, M, N, K, T, Layout> F;
			LoadArgs<F, T> a = {&f, p, ldm, std::is_same<Layout, col_major>::value};

			fbh::warp_collective(0xffffffffu, load_op<F, T>, NULL, &a, fbh::K_WMMA_LOAD);
		}

		template <int M, int N, int K, typename T>
		static inline void
		load_matrix_sync(fragment<accumulator, M, N, K, T> &f, const T *p, unsigned ldm,
						 layout_t layout)
		{
			typedef fragment<accumulator, M, N, K, T> F;
			LoadArgs<F, T> a = {&f, p, ldm, layout == mem_col_major};

			fbh::warp_collective(0xffffffffu, load_op<F, T>, NULL, &a, fbh::K_WMMA_LOAD);
		}

		template <typename Frag, typename T>
		struct StoreArgs
		{
			const Frag *frag;
			T		   *ptr;
			unsigned	ldm;
			bool		col;
		};

		/* every lane must hold the same fragment and store it to the same
		 * place; it is stored once */
		void		fail_divergent(const char *op);

		template <typename Frag, typename T>
		static void
		store_op(void *lane_data[32], unsigned mask, void *)
		{
			StoreArgs<Frag, T> *first = NULL;

			for (int l = 0; l < 32; l++)
			{
				StoreArgs<Frag, T> *a = (StoreArgs<Frag, T> *) lane_data[l];

				if (a == NULL)
					continue;
				if (first == NULL)
					first = a;
				else if (a->ptr != first->ptr || a->ldm != first->ldm || a->col != first->col ||
						 ((l & 7) == 7 && memcmp(a->frag->x, first->frag->x, sizeof(first->frag->x)) != 0))
					fail_divergent("wmma::store_matrix_sync");
			}
			for (int r = 0; r < Frag::rows; r++)
				for (int c = 0; c < Frag::cols; c++)
				{
					T			v = first->frag->x[r * Frag::cols + c];

					if (first->col)
						first->ptr[(size_t) c * first->ldm + r] = v;
					else
						first->ptr[(size_t) r * first->ldm + c] = v;
				}
		}

		template <int M, int N, int K, typename T>
		static inline void
		store_matrix_sync(T *p, const fragment<accumulator, M, N, K, T> &f, unsigned ldm,
						  layout_t layout)
		{
			typedef fragment<accumulator, M, N, K, T> F;
			StoreArgs<F, T> a = {&f, p, ldm, layout == mem_col_major};

			fbh::warp_collective(0xffffffffu, store_op<F, T>, NULL, &a, fbh::K_WMMA_STORE);
		}

		template <typename Frag, typename V>
		static inline void
		fill_fragment(Frag &f, const V &v)
		{
			/* elementwise and the same in every lane: no exchange needed,
			 * but it is warp-synchronous on the GPU */
			for (int i = 0; i < Frag::num_elements; i++)
				f.x[i] = v;
		}

		template <typename FD, typename FA, typename FB, typename FC>
		struct MmaArgs
		{
			FD		   *d;
			const FA   *a;
			const FB   *b;
			const FC   *c;
		};

		template <typename FD, typename FA, typename FB, typename FC>
		static void
		mma_op(void *lane_data[32], unsigned mask, void *)
		{
			typedef MmaArgs<FD, FA, FB, FC> Args;
			Args	   *first = NULL;
			float		acc[FD::rows * FD::cols];

			for (int l = 0; l < 32; l++)
			{
				Args	   *a = (Args *) lane_data[l];

				if (a == NULL)
					continue;
				if (first == NULL)
					first = a;
				else if ((l & 7) == 7 &&
						 (memcmp(a->a->x, first->a->x, sizeof(first->a->x)) != 0 ||
						  memcmp(a->b->x, first->b->x, sizeof(first->b->x)) != 0 ||
						  memcmp(a->c->x, first->c->x, sizeof(first->c->x)) != 0))
					fail_divergent("wmma::mma_sync");
			}
			/* D = A B + C: inputs exact in fp32, fp32 sums */
			{
				float		af[FA::rows * FA::cols],
							bf[FB::rows * FB::cols];

				for (int i = 0; i < FA::rows * FA::cols; i++)
					af[i] = (float) first->a->x[i];
				for (int i = 0; i < FB::rows * FB::cols; i++)
					bf[i] = (float) first->b->x[i];
				for (int i = 0; i < FD::rows; i++)
				{
					for (int j = 0; j < FD::cols; j++)
						acc[i * FD::cols + j] = (float) first->c->x[i * FD::cols + j];
					for (int k = 0; k < FA::cols; k++)
					{
						float		a_ik = af[i * FA::cols + k];

						for (int j = 0; j < FD::cols; j++)
							acc[i * FD::cols + j] += a_ik * bf[k * FB::cols + j];
					}
				}
			}
			for (int l = 0; l < 32; l++)
			{
				Args	   *a = (Args *) lane_data[l];

				if (a != NULL)
					for (int i = 0; i < FD::rows * FD::cols; i++)
						a->d->x[i] = acc[i];
			}
		}

		template <int M, int N, int K, typename TA, typename LA, typename TB, typename LB, typename TC>
		static inline void
		mma_sync(fragment<accumulator, M, N, K, TC> &d,
				 const fragment<matrix_a, M, N, K, TA, LA> &a,
				 const fragment<matrix_b, M, N, K, TB, LB> &b,
				 const fragment<accumulator, M, N, K, TC> &c)
		{
			typedef fragment<accumulator, M, N, K, TC> FD;
			typedef fragment<matrix_a, M, N, K, TA, LA> FA;
			typedef fragment<matrix_b, M, N, K, TB, LB> FB;
			MmaArgs<FD, FA, FB, FD> args = {&d, &a, &b, &c};

			fbh::warp_collective(0xffffffffu, mma_op<FD, FA, FB, FD>, NULL, &args, fbh::K_WMMA_MMA);
		}
	}
}

/* ------------------------------------------------------------------------
 * CUDA runtime stand-in
 * ------------------------------------------------------------------------ */
typedef enum cudaError
{
	cudaSuccess = 0,
	cudaErrorInvalidValue = 1,
	cudaErrorMemoryAllocation = 2,
	cudaErrorInitializationError = 3,
	cudaErrorInvalidConfiguration = 9,
	cudaErrorInsufficientDriver = 35,
	cudaErrorNoDevice = 100,
	cudaErrorInvalidDevice = 101,
	cudaErrorInvalidResourceHandle = 400,
	cudaErrorNotReady = 600,
	cudaErrorIllegalAddress = 700,
	cudaErrorLaunchOutOfResources = 701,
	cudaErrorLaunchFailure = 719,
	cudaErrorUnknown = 999
} cudaError_t;

typedef enum cudaMemcpyKind
{
	cudaMemcpyHostToHost = 0,
	cudaMemcpyHostToDevice = 1,
	cudaMemcpyDeviceToHost = 2,
	cudaMemcpyDeviceToDevice = 3,
	cudaMemcpyDefault = 4
} cudaMemcpyKind;

typedef enum cudaFuncAttribute
{
	cudaFuncAttributeMaxDynamicSharedMemorySize = 8
} cudaFuncAttribute;

#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02
#define cudaHostAllocDefault 0x00

typedef struct fbh_stream *cudaStream_t;
typedef struct fbh_event *cudaEvent_t;

struct cudaDeviceProp
{
	char		name[256];
	size_t		totalGlobalMem;
	size_t		sharedMemPerBlock;
	size_t		sharedMemPerBlockOptin;
	int			major;
	int			minor;
	int			multiProcessorCount;
	int			warpSize;
};

const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned flags);
cudaError_t cudaMallocHost(void **p, size_t n);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k,
							cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int v, size_t n);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s = 0);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaDeviceSynchronize(void);

namespace fbh
{
	cudaError_t set_max_dynamic_smem(const void *fn, int bytes);
	/* queues a launch of body() for every thread of the grid */
	void		launch(const void *fn, const char *name, dim3 grid, dim3 block, size_t smem,
					   cudaStream_t s, std::function<void()> body);
}

template <typename F>
static inline cudaError_t
cudaFuncSetAttribute(F *fn, cudaFuncAttribute attr, int value)
{
	if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
		return cudaErrorInvalidValue;
	return fbh::set_max_dynamic_smem((const void *) fn, value);
}

namespace fbh
{
	/* The arguments are converted to the kernel's parameter types and
	 * copied now, at the launch, as a GPU launch does; the kernel runs
	 * when the stream does. */
	template <typename... P, typename... A>
	static inline void
	launch_kernel(void (*k) (P...), const char *name, dim3 grid, dim3 block, size_t smem,
				  cudaStream_t s, A &&... args)
	{
		std::tuple<typename std::decay<P>::type...> t(std::forward<A>(args)...);

		launch((const void *) k, name, grid, block, smem, s, [k, t]() { std::apply(k, t); });
	}
}

#define FB_LAUNCH(kernel, grid, block, smem, stream, ...) \
	fbh::launch_kernel((kernel), #kernel, (grid), (block), (smem), (stream), __VA_ARGS__)

/* ------------------------------------------------------------------------
 * cuBLAS / cuBLASLt stand-in (the calls the backend makes)
 * ------------------------------------------------------------------------ */
typedef enum cublasStatus_t
{
	CUBLAS_STATUS_SUCCESS = 0,
	CUBLAS_STATUS_NOT_INITIALIZED = 1,
	CUBLAS_STATUS_ALLOC_FAILED = 3,
	CUBLAS_STATUS_INVALID_VALUE = 7,
	CUBLAS_STATUS_EXECUTION_FAILED = 13,
	CUBLAS_STATUS_NOT_SUPPORTED = 15
} cublasStatus_t;

typedef enum cudaDataType_t
{
	CUDA_R_32F = 0,
	CUDA_R_16F = 2,
	CUDA_R_16BF = 14
} cudaDataType_t;

typedef enum cublasComputeType_t
{
	CUBLAS_COMPUTE_32F = 68
} cublasComputeType_t;

typedef enum cublasOperation_t
{
	CUBLAS_OP_N = 0,
	CUBLAS_OP_T = 1
} cublasOperation_t;

typedef enum cublasGemmAlgo_t
{
	CUBLAS_GEMM_DEFAULT = -1,
	CUBLAS_GEMM_DEFAULT_TENSOR_OP = 99
} cublasGemmAlgo_t;

typedef struct fbh_cublas *cublasHandle_t;
const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasGemmBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
								   int m, int n, int k, const void *alpha,
								   const void *const A[], cudaDataType_t at, int lda,
								   const void *const B[], cudaDataType_t bt, int ldb,
								   const void *beta, void *const C[], cudaDataType_t ct, int ldc,
								   int batch, cublasComputeType_t compute, cublasGemmAlgo_t algo);

typedef struct fbh_lt *cublasLtHandle_t;
typedef struct fbh_lt_desc *cublasLtMatmulDesc_t;
typedef struct fbh_lt_layout *cublasLtMatrixLayout_t;
typedef struct fbh_lt_pref *cublasLtMatmulPreference_t;

typedef struct cublasLtMatmulAlgo_t
{
	uint64_t	data[8];
} cublasLtMatmulAlgo_t;

typedef struct cublasLtMatmulHeuristicResult_t
{
	cublasLtMatmulAlgo_t algo;
	size_t		workspaceSize;
	cublasStatus_t state;
	float		wavesCount;
	int			reserved[4];
} cublasLtMatmulHeuristicResult_t;

typedef enum cublasLtMatmulDescAttributes_t
{
	CUBLASLT_MATMUL_DESC_TRANSA = 3,
	CUBLASLT_MATMUL_DESC_TRANSB = 4,
	CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
	CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8
} cublasLtMatmulDescAttributes_t;

typedef enum cublasLtEpilogue_t
{
	CUBLASLT_EPILOGUE_DEFAULT = 1,
	CUBLASLT_EPILOGUE_BIAS = 4
} cublasLtEpilogue_t;

typedef enum cublasLtMatmulPreferenceAttributes_t
{
	CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1
} cublasLtMatmulPreferenceAttributes_t;

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h);
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c,
										cudaDataType_t scale);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
											  cublasLtMatmulDescAttributes_t a,
											  const void *v, size_t n);
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t,
										  uint64_t rows, uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l);
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
													cublasLtMatmulPreferenceAttributes_t a,
													const void *v, size_t n);
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
											  cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
											  cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl,
											  cublasLtMatmulPreference_t p, int requested,
											  cublasLtMatmulHeuristicResult_t *results,
											  int *returned);
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha,
							  const void *A, cublasLtMatrixLayout_t al, const void *B,
							  cublasLtMatrixLayout_t bl, const void *beta, const void *C,
							  cublasLtMatrixLayout_t cl, void *D, cublasLtMatrixLayout_t dl,
							  const cublasLtMatmulAlgo_t *algo, void *workspace,
							  size_t workspace_bytes, cudaStream_t s);

#endif
