/*
 * ops_cpu.c — CPU reference operators.  GEMMs go through OpenBLAS; the
 * rest is plain C in double-checked, readable form.
 */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "fb_ops.h"

void
fb_cpu_linear(const float *x, const float *w, float *y, int T, int N, int K,
			  float beta)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, N, K,
				1.0f, x, K, w, N, beta, y, N);
}

void
fb_cpu_linear_nt(const float *x, const float *w, float *y, int T, int N, int K,
				 float beta)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K,
				1.0f, x, K, w, K, beta, y, N);
}

void
fb_cpu_linear_cols(const float *x, const float *w, float *y, int T, int n0,
				   int n1, int N, int K)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, n1 - n0, K,
				1.0f, x, K, w + n0, N, 1.0f, y + n0, N);
}

void
fb_cpu_fill_bias(float *y, const float *bias, int T, int N)
{
	for (int t = 0; t < T; t++)
		memcpy(y + (size_t) t * N, bias, sizeof(float) * (size_t) N);
}

void
fb_cpu_layernorm(float *x, const float *res, const float *g, const float *b,
				 int T, int C, float eps)
{
	for (int t = 0; t < T; t++)
	{
		float	   *r = x + (size_t) t * C;
		double		mean = 0.0,
					var = 0.0;
		float		inv;

		if (res != NULL)
			for (int i = 0; i < C; i++)
				r[i] += res[(size_t) t * C + i];
		for (int i = 0; i < C; i++)
			mean += r[i];
		mean /= C;
		for (int i = 0; i < C; i++)
		{
			double		d = r[i] - mean;

			var += d * d;
		}
		var /= C;
		inv = (float) (1.0 / sqrt(var + eps));
		for (int i = 0; i < C; i++)
			r[i] = (float) (r[i] - mean) * inv * g[i] + b[i];
	}
}

void
fb_cpu_gelu_erf(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float) M_SQRT1_2));
}

void
fb_cpu_gelu_tanh(float *x, size_t n)
{
	const float k = 0.7978845608028654f;	/* sqrt(2 / pi) */

	for (size_t i = 0; i < n; i++)
	{
		float		v = x[i];

		x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
	}
}

void
fb_cpu_relu(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void
fb_cpu_activation(fb_act act, float *x, size_t n)
{
	switch (act)
	{
		case FB_ACT_GELU_ERF:
			fb_cpu_gelu_erf(x, n);
			break;
		case FB_ACT_GELU_TANH:
			fb_cpu_gelu_tanh(x, n);
			break;
		case FB_ACT_RELU:
			fb_cpu_relu(x, n);
			break;
	}
}

void
fb_cpu_softmax(float *x, int rows, int n)
{
	for (int r = 0; r < rows; r++)
	{
		float	   *p = x + (size_t) r * n;
		float		mx = p[0];
		float		sum = 0.0f;

		for (int i = 1; i < n; i++)
			mx = p[i] > mx ? p[i] : mx;
		for (int i = 0; i < n; i++)
		{
			p[i] = expf(p[i] - mx);
			sum += p[i];
		}
		for (int i = 0; i < n; i++)
			p[i] /= sum;
	}
}

void
fb_cpu_tanh(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = tanhf(x[i]);
}

void
fb_cpu_attention_head(const float *q, const float *k, const float *v, int ld,
					  float *out, int ldo, float *scores, int n_query, int L,
					  int dh, void (*softmax) (float *, int, int))
{
	float		scale = 1.0f / sqrtf((float) dh);

	/* scores[Q, L] = scale * Q_h K_h^T */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_query, L, dh,
				scale, q, ld, k, ld, 0.0f, scores, L);
	softmax(scores, n_query, L);
	/* out_h[Q, dh] = P V_h */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n_query, dh, L,
				1.0f, scores, L, v, ld, 0.0f, out, ldo);
}

void
fb_cpu_attention(const float *qkv, float *out, int ldo, float *scores, int L,
				 int C, int n_heads)
{
	int			dh = C / n_heads;

	for (int h = 0; h < n_heads; h++)
		fb_cpu_attention_head(qkv + (size_t) h * dh, qkv + C + (size_t) h * dh,
							  qkv + 2 * (size_t) C + (size_t) h * dh, 3 * C,
							  out + (size_t) h * dh, ldo, scores, L, L, dh, fb_cpu_softmax);
}
