/*
 * gemm.cu — linear layers on cuBLASLt: fp16/bf16 inputs, fp32 accumulation
 * (CUBLAS_COMPUTE_32F, tensor cores), optional bias epilogue.
 *
 * Row-major y[rows, N] = x[rows, K] W[K, N] is, in cuBLAS's column-major
 * terms, y^T (N x rows) = W^T (N x K) x^T (K x rows) with both operands
 * untransposed: A = W (ld N), B = x (ld K), D = y (ld N), m = N, n = rows,
 * k = K; the bias epilogue adds bias[i] to row i of D, i.e. to output
 * feature i.
 *
 * The matmul descriptor, layouts and the heuristic's algorithm are cached
 * per shape (a heuristic query costs about as much as a small GEMM; a
 * BERT-base batch runs 48 of them), in a small table that is emptied when
 * full.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.cuh"

#define GEMM_CACHE 64

typedef struct gemm_entry
{
	int			m,
				n,
				k;
	cudaDataType_t in,
				out;
	int			bias;
	cublasLtMatmulDesc_t desc;
	cublasLtMatrixLayout_t a,
				b,
				d;
	cublasLtMatmulAlgo_t algo;
} gemm_entry;

struct fb_cuda_gemm
{
	cublasLtHandle_t lt;
	cudaStream_t stream;
	void	   *workspace;
	size_t		workspace_bytes;
	gemm_entry	cache[GEMM_CACHE];
	int			n_cache;
};

static void
entry_free(gemm_entry *e)
{
	if (e->desc)
		cublasLtMatmulDescDestroy(e->desc);
	if (e->a)
		cublasLtMatrixLayoutDestroy(e->a);
	if (e->b)
		cublasLtMatrixLayoutDestroy(e->b);
	if (e->d)
		cublasLtMatrixLayoutDestroy(e->d);
	memset(e, 0, sizeof(*e));
}

cublasStatus_t
fb_cuda_gemm_create(fb_cuda_gemm **out, cudaStream_t s, void *workspace, size_t workspace_bytes)
{
	fb_cuda_gemm *g = (fb_cuda_gemm *) calloc(1, sizeof(*g));
	cublasStatus_t st;

	*out = NULL;
	if (g == NULL)
		return CUBLAS_STATUS_ALLOC_FAILED;
	if ((st = cublasLtCreate(&g->lt)) != CUBLAS_STATUS_SUCCESS)
	{
		free(g);
		return st;
	}
	g->stream = s;
	g->workspace = workspace;
	g->workspace_bytes = workspace_bytes;
	*out = g;
	return CUBLAS_STATUS_SUCCESS;
}

void
fb_cuda_gemm_destroy(fb_cuda_gemm *g)
{
	if (g == NULL)
		return;
	for (int i = 0; i < g->n_cache; i++)
		entry_free(&g->cache[i]);
	cublasLtDestroy(g->lt);
	free(g);
}

static cublasStatus_t
entry_init(fb_cuda_gemm *g, gemm_entry *e)
{
	cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
	cublasLtEpilogue_t epi = e->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
	cublasLtMatmulPreference_t pref = NULL;
	cublasLtMatmulHeuristicResult_t res;
	uint64_t	ws = g->workspace_bytes;
	int			found = 0;
	cublasStatus_t st;

	if ((st = cublasLtMatmulDescCreate(&e->desc, compute, CUDA_R_32F)) != CUBLAS_STATUS_SUCCESS ||
		(st = cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
											 sizeof(epi))) != CUBLAS_STATUS_SUCCESS ||
		(st = cublasLtMatrixLayoutCreate(&e->a, e->in, (uint64_t) e->m, (uint64_t) e->k,
										 e->m)) != CUBLAS_STATUS_SUCCESS ||
		(st = cublasLtMatrixLayoutCreate(&e->b, e->in, (uint64_t) e->k, (uint64_t) e->n,
										 e->k)) != CUBLAS_STATUS_SUCCESS ||
		(st = cublasLtMatrixLayoutCreate(&e->d, e->out, (uint64_t) e->m, (uint64_t) e->n,
										 e->m)) != CUBLAS_STATUS_SUCCESS ||
		(st = cublasLtMatmulPreferenceCreate(&pref)) != CUBLAS_STATUS_SUCCESS ||
		(st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
												   &ws, sizeof(ws))) != CUBLAS_STATUS_SUCCESS)
		goto done;
	if (e->bias)
	{
		/* a placeholder for the heuristic; the real one is set per call */
		const void *p = g->workspace;

		if ((st = cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p,
												 sizeof(p))) != CUBLAS_STATUS_SUCCESS)
			goto done;
	}
	st = cublasLtMatmulAlgoGetHeuristic(g->lt, e->desc, e->a, e->b, e->d, e->d, pref, 1, &res,
										&found);
	if (st == CUBLAS_STATUS_SUCCESS && found == 0)
		st = CUBLAS_STATUS_NOT_SUPPORTED;
	if (st == CUBLAS_STATUS_SUCCESS)
		e->algo = res.algo;
done:
	if (pref)
		cublasLtMatmulPreferenceDestroy(pref);
	return st;
}

static cublasStatus_t
lookup(fb_cuda_gemm *g, int m, int n, int k, cudaDataType_t in, cudaDataType_t out, int bias,
	   gemm_entry **found)
{
	gemm_entry *e;
	cublasStatus_t st;

	for (int i = 0; i < g->n_cache; i++)
	{
		e = &g->cache[i];
		if (e->m == m && e->n == n && e->k == k && e->in == in && e->out == out &&
			e->bias == bias)
		{
			*found = e;
			return CUBLAS_STATUS_SUCCESS;
		}
	}
	if (g->n_cache == GEMM_CACHE)
	{
		/* lengths vary from batch to batch: start over rather than grow */
		for (int i = 0; i < g->n_cache; i++)
			entry_free(&g->cache[i]);
		g->n_cache = 0;
	}
	e = &g->cache[g->n_cache];
	memset(e, 0, sizeof(*e));
	e->m = m;
	e->n = n;
	e->k = k;
	e->in = in;
	e->out = out;
	e->bias = bias;
	if ((st = entry_init(g, e)) != CUBLAS_STATUS_SUCCESS)
	{
		entry_free(e);
		return st;
	}
	g->n_cache++;
	*found = e;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t
fb_cuda_linear(fb_cuda_gemm *g, cudaDataType_t in, const void *x, int rows, int K,
			   const void *W, int N, const void *bias, void *y, cudaDataType_t out)
{
	gemm_entry *e;
	float		one = 1.0f,
				zero = 0.0f;
	cublasStatus_t st;

	if (rows <= 0)
		return CUBLAS_STATUS_SUCCESS;
	if ((st = lookup(g, N, rows, K, in, out, bias != NULL, &e)) != CUBLAS_STATUS_SUCCESS)
		return st;
	if (bias != NULL &&
		(st = cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
											 sizeof(bias))) != CUBLAS_STATUS_SUCCESS)
		return st;
	return cublasLtMatmul(g->lt, e->desc, &one, W, e->a, x, e->b, &zero, y, e->d, y, e->d,
						  &e->algo, g->workspace, g->workspace_bytes, g->stream);
}
