/*
 * fb_exp512.h — exp for 16 lanes (Cephes expf polynomial, the same
 * constants as ops_avx2.c), shared by the AVX-512 element-wise kernels and
 * the bfloat16 attention kernel; attn_bf16.c's attn_exp is its scalar
 * mirror, one operation at a time.  2^n is applied with vscalefps, which
 * also yields correct denormals and zero far below the range.
 */
#ifndef FB_EXP512_H
#define FB_EXP512_H

#include <immintrin.h>

__attribute__((target("avx512f"))) static inline __m512
fb_exp512(__m512 x)
{
	__m512		fx,
				r,
				z,
				y;

	x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f)),
					  _mm512_set1_ps(88.3762626647949f));
	fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
							  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
	r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
	z = _mm512_mul_ps(r, r);
	y = _mm512_set1_ps(1.9875691500E-4f);
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507E-3f));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073E-3f));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894E-2f));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459E-1f));
	y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201E-1f));
	y = _mm512_fmadd_ps(y, z, r);
	y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(y, fx);
}

#endif
