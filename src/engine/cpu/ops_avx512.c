/*
 * ops_avx512.c — AVX-512 versions of the element-wise kernels.
 *
 * Same algorithms and constants as ops_avx2.c (Cephes expf), 16 lanes wide,
 * except erf (a rational approximation without exp, see fb_gelu512.h); the tails
 * run under a lane mask instead of a scalar loop, so every element goes
 * through the same polynomial.  Checked
 * against the reference kernels in test/test_kernels.c.
 */
#include <math.h>

#include <immintrin.h>

#include "fb_exp512.h"
#include "fb_gelu512.h"
#include "fb_kernels.h"

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

/* mask of the first n (< 16) lanes, or all 16 */
AVX512 static inline __mmask16
lanes(size_t n)
{
	return n >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << n) - 1u);
}

AVX512 void
fb_avx512_layernorm(float *x, const float *res, const float *g, const float *b, int T, int C,
					float eps)
{
	for (int t = 0; t < T; t++)
	{
		float	   *r = x + (size_t) t * C;
		const float *rr = res != NULL ? res + (size_t) t * C : NULL;

		/* shifted by the row's first value, as in the AVX2 kernel (see
		 * there why) */
		__m512		vs = _mm512_set1_ps(rr != NULL ? r[0] + rr[0] : r[0]);
		__m512		acc = _mm512_setzero_ps();
		__m512		vm,
					iv;
		float		m,
					var;

		for (int i = 0; i < C; i += 16)
		{
			__mmask16	k = lanes((size_t) (C - i));
			__m512		v = _mm512_maskz_loadu_ps(k, r + i);

			if (rr != NULL)
			{
				/* the residual connection, in the same pass */
				v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, rr + i));
				_mm512_mask_storeu_ps(r + i, k, v);
			}
			acc = _mm512_add_ps(acc, _mm512_maskz_sub_ps(k, v, vs));
		}
		m = _mm512_reduce_add_ps(acc) / (float) C;
		vm = _mm512_set1_ps(m);
		acc = _mm512_setzero_ps();
		for (int i = 0; i < C; i += 16)
		{
			__mmask16	k = lanes((size_t) (C - i));
			__m512		d = _mm512_maskz_sub_ps(k, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, r + i), vs), vm);

			acc = _mm512_fmadd_ps(d, d, acc);
		}
		var = _mm512_reduce_add_ps(acc) / (float) C;
		iv = _mm512_set1_ps(1.0f / sqrtf(var + eps));
		for (int i = 0; i < C; i += 16)
		{
			__mmask16	k = lanes((size_t) (C - i));
			__m512		d = _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, r + i), vs), vm);
			__m512		v = _mm512_fmadd_ps(_mm512_mul_ps(d, iv), _mm512_maskz_loadu_ps(k, g + i),
											_mm512_maskz_loadu_ps(k, b + i));

			_mm512_mask_storeu_ps(r + i, k, v);
		}
	}
}

AVX512 void
fb_avx512_gelu_erf(float *x, size_t n)
{
	for (size_t i = 0; i < n; i += 16)
	{
		__mmask16	k = lanes(n - i);

		_mm512_mask_storeu_ps(x + i, k, fb_gelu_erf512(_mm512_maskz_loadu_ps(k, x + i)));
	}
}

AVX512 void
fb_avx512_gelu_tanh(float *x, size_t n)
{
	const __m512 kk = _mm512_set1_ps(0.7978845608028654f);
	const __m512 c = _mm512_set1_ps(0.044715f);
	const __m512 half = _mm512_set1_ps(0.5f);
	const __m512 one = _mm512_set1_ps(1.0f);
	const __m512 two = _mm512_set1_ps(2.0f);

	for (size_t i = 0; i < n; i += 16)
	{
		__mmask16	k = lanes(n - i);
		__m512		v = _mm512_maskz_loadu_ps(k, x + i);
		__m512		u = _mm512_mul_ps(kk, _mm512_fmadd_ps(_mm512_mul_ps(c, v), _mm512_mul_ps(v, v), v));
		/* tanh(u) = 1 - 2 / (exp(2u) + 1) */
		__m512		e = fb_exp512(_mm512_mul_ps(two, u));
		__m512		th = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(e, one)));

		_mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, th)));
	}
}

AVX512 void
fb_avx512_softmax(float *x, int rows, int n)
{
	for (int r = 0; r < rows; r++)
	{
		float	   *p = x + (size_t) r * n;
		__m512		vmax = _mm512_set1_ps(-INFINITY);
		__m512		vsum = _mm512_setzero_ps();
		__m512		m,
					inv;

		for (int i = 0; i < n; i += 16)
			vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), lanes((size_t) (n - i)), p + i));
		m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
		for (int i = 0; i < n; i += 16)
		{
			__mmask16	k = lanes((size_t) (n - i));
			__m512		e = _mm512_maskz_mov_ps(k, fb_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p + i), m)));

			_mm512_mask_storeu_ps(p + i, k, e);
			vsum = _mm512_add_ps(vsum, e);
		}
		inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
		for (int i = 0; i < n; i += 16)
		{
			__mmask16	k = lanes((size_t) (n - i));

			_mm512_mask_storeu_ps(p + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), inv));
		}
	}
}
