/*
 * gemm_f32_avx512.c — AVX-512 micro-kernel of the packed fp32 linear
 * layers (fb_f32.h).
 *
 * The full case, 8 rows x 2 panels (32 columns), keeps 16 accumulators in
 * registers; per input channel it loads the two panels' 16 weights each
 * and multiplies them with each row's activation, broadcast from memory
 * inside the fused multiply-add.  Partial tiles (last rows, last columns)
 * go through a masked loop with the same per-element arithmetic.
 */
#include <immintrin.h>

#include "fb_f32.h"

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

AVX512 static void
panel_8x32(const float *x, int ldx, int kc, const float *w0, const float *w1,
		   float *y, size_t ldy)
{
	__m512		a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0,
				a4 = a0, a5 = a0, a6 = a0, a7 = a0;
	__m512		b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
	const float *x0 = x,
			   *x1 = x + ldx,
			   *x2 = x + 2 * (size_t) ldx,
			   *x3 = x + 3 * (size_t) ldx,
			   *x4 = x + 4 * (size_t) ldx,
			   *x5 = x + 5 * (size_t) ldx,
			   *x6 = x + 6 * (size_t) ldx,
			   *x7 = x + 7 * (size_t) ldx;

	for (int r = 0; r < 8; r++)
	{
		/* the outputs' lines arrive while the loop runs */
		_mm_prefetch((const char *) (y + (size_t) r * ldy), _MM_HINT_T0);
		_mm_prefetch((const char *) (y + (size_t) r * ldy + FB_F32_NR), _MM_HINT_T0);
	}
	for (int k = 0; k < kc; k++)
	{
		__m512		p = _mm512_load_ps(w0 + (size_t) k * FB_F32_NR);
		__m512		q = _mm512_load_ps(w1 + (size_t) k * FB_F32_NR);
		__m512		s;

#define ROW(i) \
		s = _mm512_set1_ps(x##i[k]); \
		a##i = _mm512_fmadd_ps(s, p, a##i); \
		b##i = _mm512_fmadd_ps(s, q, b##i);
		ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)
#undef ROW
	}
#define STORE(i) \
	_mm512_storeu_ps(y + i * ldy, _mm512_add_ps(_mm512_loadu_ps(y + i * ldy), a##i)); \
	_mm512_storeu_ps(y + i * ldy + FB_F32_NR, _mm512_add_ps(_mm512_loadu_ps(y + i * ldy + FB_F32_NR), b##i));
	STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6) STORE(7)
#undef STORE
}

/* Any tile: one row and one panel at a time, masked columns. */
AVX512 static void
panel_any(const float *x, int ldx, int kc, int mr, const float *panel,
		  size_t panel_stride, int np, float *y, size_t ldy, int ncols)
{
	for (int p = 0; p < np; p++)
	{
		const float *w = panel + (size_t) p * panel_stride;
		int			nc = ncols - p * FB_F32_NR;
		__mmask16	cols = nc >= FB_F32_NR ? (__mmask16) 0xffff : (__mmask16) ((1u << nc) - 1u);

		if (nc <= 0)
			break;
		for (int r = 0; r < mr; r++)
		{
			const float *xr = x + (size_t) r * ldx;
			float	   *yr = y + (size_t) r * ldy + p * FB_F32_NR;
			__m512		acc = _mm512_setzero_ps();

			for (int k = 0; k < kc; k++)
				acc = _mm512_fmadd_ps(_mm512_set1_ps(xr[k]), _mm512_load_ps(w + (size_t) k * FB_F32_NR), acc);
			_mm512_mask_storeu_ps(yr, cols, _mm512_add_ps(_mm512_maskz_loadu_ps(cols, yr), acc));
		}
	}
}

AVX512 void
fb_avx512_f32_panel(const float *x, int ldx, int kc, int mr, const float *panel,
					size_t panel_stride, int np, float *y, size_t ldy, int ncols)
{
	if (mr == FB_F32_MR && np == 2 && ncols == 2 * FB_F32_NR)
		panel_8x32(x, ldx, kc, panel, panel + panel_stride, y, ldy);
	else
		panel_any(x, ldx, kc, mr, panel, panel_stride, np, y, ldy, ncols);
}
