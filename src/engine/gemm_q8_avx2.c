/*
 * gemm_q8_avx2.c — AVX2 kernels of the int8 linear layers (fb_q8.h).
 *
 * The micro-kernel keeps a 6 x 16 block of int32 sums in twelve registers;
 * per pair of input channels it loads the panel's 32 weights (two
 * registers), broadcasts each row's pair of activations and accumulates
 * with vpmaddwd + vpaddd.  Integer sums are exact and the dequantisation
 * is the same fused multiply-add as the reference, so results match
 * fb_q8_panel_ref bit for bit.
 */
#include <math.h>
#include <string.h>

#include <immintrin.h>

#include "fb_q8.h"

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 void
fb_avx2_q8_quantize(const float *x, int T, int K, int Kp, int16_t *q, float *scale)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	const __m256 inf = _mm256_set1_ps(INFINITY);

	for (int t = 0; t < T; t++)
	{
		const float *xr = x + (size_t) t * K;
		int16_t    *qr = q + (size_t) t * Kp;
		__m256		vmax = _mm256_setzero_ps(),
					vbad = _mm256_setzero_ps();
		float		amax,
					inv,
					lanes[8];
		bool		bad = false;
		int			k = 0;

		for (; k + 8 <= K; k += 8)
		{
			__m256		a = _mm256_andnot_ps(sign, _mm256_loadu_ps(xr + k));

			vmax = _mm256_max_ps(vmax, a);
			vbad = _mm256_or_ps(vbad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ));
		}
		_mm256_storeu_ps(lanes, vmax);
		amax = 0.0f;
		for (int i = 0; i < 8; i++)
			amax = fmaxf(amax, lanes[i]);
		bad = _mm256_movemask_ps(vbad) != 0;
		for (; k < K; k++)
		{
			amax = fmaxf(amax, fabsf(xr[k]));
			bad |= !isfinite(xr[k]);
		}
		if (bad || amax == 0.0f)
		{
			memset(qr, 0, sizeof(int16_t) * (size_t) Kp);
			scale[t] = bad ? NAN : 0.0f;
			continue;
		}
		scale[t] = amax / 127.0f;
		inv = 127.0f / amax;
		{
			const __m256 vinv = _mm256_set1_ps(inv);

			for (k = 0; k + 16 <= K; k += 16)
			{
				__m256i		a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + k), vinv));
				__m256i		b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + k + 8), vinv));

				/* packs interleaves 128-bit lanes; permute restores order */
				_mm256_storeu_si256((__m256i *) (qr + k),
									_mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xd8));
			}
			for (; k < K; k++)
				qr[k] = (int16_t) lrintf(xr[k] * inv);
			for (; k < Kp; k++)
				qr[k] = 0;
		}
	}
}

/* Broadcasts the int16 pair q[2i], q[2i+1] to all eight 32-bit lanes. */
AVX2 static inline __m256i
pair(const int16_t *q, int i)
{
	int32_t		v;

	memcpy(&v, q + 2 * i, sizeof(v));
	return _mm256_set1_epi32(v);
}

AVX2 static inline void
store_row(__m256i lo, __m256i hi, float sx, const float *sw, float *y, int ncols)
{
	__m256		s = _mm256_set1_ps(sx);

	if (ncols == FB_Q8_NR)
	{
		_mm256_storeu_ps(y, _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo),
											_mm256_mul_ps(s, _mm256_loadu_ps(sw)),
											_mm256_loadu_ps(y)));
		_mm256_storeu_ps(y + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi),
												_mm256_mul_ps(s, _mm256_loadu_ps(sw + 8)),
												_mm256_loadu_ps(y + 8)));
	}
	else
	{
		int32_t		sums[FB_Q8_NR];

		_mm256_storeu_si256((__m256i *) sums, lo);
		_mm256_storeu_si256((__m256i *) (sums + 8), hi);
		for (int c = 0; c < ncols; c++)
			y[c] = fmaf((float) sums[c], sx * sw[c], y[c]);
	}
}

/* The micro-kernel for a constant number of rows MR (1..6). */
#define Q8_KERNEL(MR) \
AVX2 static void \
q8_panel_##MR(const int16_t *q, int ldq, int kc, const float *sx, \
			  const int16_t *panel, const float *sw, float *y, size_t ldy, int ncols) \
{ \
	__m256i		c0l = _mm256_setzero_si256(), c0h = _mm256_setzero_si256(); \
	__m256i		c1l = _mm256_setzero_si256(), c1h = _mm256_setzero_si256(); \
	__m256i		c2l = _mm256_setzero_si256(), c2h = _mm256_setzero_si256(); \
	__m256i		c3l = _mm256_setzero_si256(), c3h = _mm256_setzero_si256(); \
	__m256i		c4l = _mm256_setzero_si256(), c4h = _mm256_setzero_si256(); \
	__m256i		c5l = _mm256_setzero_si256(), c5h = _mm256_setzero_si256(); \
	const int16_t *q0 = q, *q1 = q + ldq, *q2 = q + 2 * (size_t) ldq, *q3 = q + 3 * (size_t) ldq; \
	const int16_t *q4 = q + 4 * (size_t) ldq, *q5 = q + 5 * (size_t) ldq; \
	for (int i = 0; i < kc / 2; i++) \
	{ \
		__m256i		bl = _mm256_load_si256((const __m256i *) (panel + (size_t) i * 2 * FB_Q8_NR)); \
		__m256i		bh = _mm256_load_si256((const __m256i *) (panel + (size_t) i * 2 * FB_Q8_NR + 16)); \
		__m256i		a; \
		a = pair(q0, i); \
		c0l = _mm256_add_epi32(c0l, _mm256_madd_epi16(a, bl)); \
		c0h = _mm256_add_epi32(c0h, _mm256_madd_epi16(a, bh)); \
		if (MR > 1) { \
			a = pair(q1, i); \
			c1l = _mm256_add_epi32(c1l, _mm256_madd_epi16(a, bl)); \
			c1h = _mm256_add_epi32(c1h, _mm256_madd_epi16(a, bh)); \
		} \
		if (MR > 2) { \
			a = pair(q2, i); \
			c2l = _mm256_add_epi32(c2l, _mm256_madd_epi16(a, bl)); \
			c2h = _mm256_add_epi32(c2h, _mm256_madd_epi16(a, bh)); \
		} \
		if (MR > 3) { \
			a = pair(q3, i); \
			c3l = _mm256_add_epi32(c3l, _mm256_madd_epi16(a, bl)); \
			c3h = _mm256_add_epi32(c3h, _mm256_madd_epi16(a, bh)); \
		} \
		if (MR > 4) { \
			a = pair(q4, i); \
			c4l = _mm256_add_epi32(c4l, _mm256_madd_epi16(a, bl)); \
			c4h = _mm256_add_epi32(c4h, _mm256_madd_epi16(a, bh)); \
		} \
		if (MR > 5) { \
			a = pair(q5, i); \
			c5l = _mm256_add_epi32(c5l, _mm256_madd_epi16(a, bl)); \
			c5h = _mm256_add_epi32(c5h, _mm256_madd_epi16(a, bh)); \
		} \
	} \
	store_row(c0l, c0h, sx[0], sw, y, ncols); \
	if (MR > 1) store_row(c1l, c1h, sx[1], sw, y + ldy, ncols); \
	if (MR > 2) store_row(c2l, c2h, sx[2], sw, y + 2 * ldy, ncols); \
	if (MR > 3) store_row(c3l, c3h, sx[3], sw, y + 3 * ldy, ncols); \
	if (MR > 4) store_row(c4l, c4h, sx[4], sw, y + 4 * ldy, ncols); \
	if (MR > 5) store_row(c5l, c5h, sx[5], sw, y + 5 * ldy, ncols); \
}

Q8_KERNEL(1)
Q8_KERNEL(2)
Q8_KERNEL(3)
Q8_KERNEL(4)
Q8_KERNEL(5)
Q8_KERNEL(6)

AVX2 void
fb_avx2_q8_panel(const int16_t *q, int ldq, int kc, const float *sx, int mr,
				 const int16_t *panel, const float *sw, float *y, size_t ldy,
				 int ncols)
{
	static void (*const by_rows[FB_Q8_MR + 1]) (const int16_t *, int, int, const float *,
												  const int16_t *, const float *, float *,
												  size_t, int) = {
		q8_panel_1, q8_panel_1, q8_panel_2, q8_panel_3, q8_panel_4, q8_panel_5, q8_panel_6
	};

	by_rows[mr](q, ldq, kc, sx, panel, sw, y, ldy, ncols);
}
