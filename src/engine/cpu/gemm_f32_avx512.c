/*
 * gemm_f32_avx512.c — AVX-512 micro-kernel of the packed fp32 linear
 * layers (fb_f32.h).
 *
 * A tile of up to 8 rows x 2 panels (32 columns) keeps up to 16
 * accumulators in registers; per input channel it loads the panels' 16
 * weights each and multiplies them with each row's activation, broadcast
 * from memory inside the fused multiply-add.  Every tile shape has its own
 * unrolled function; partial column tiles mask only the stores.
 */
#include <immintrin.h>

#include "fb_f32.h"

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

/*
 * An MR x NP tile (MR rows, NP panels): 2 * MR accumulators at most,
 * fully unrolled so that they live in registers.  Panels are zero-padded,
 * so weight loads are always full; only the stores into y are masked.
 */
AVX512 static inline __attribute__((always_inline)) void
tile(const float *x, int ldx, int kc, const float *w0, const float *w1,
	 const float *bias, float *y, size_t ldy, __mmask16 m0, __mmask16 m1,
	 const int MR, const int NP)
{
	__m512		a[FB_F32_MR],
				b[FB_F32_MR];

#pragma GCC unroll 8
	for (int r = 0; r < MR; r++)
	{
		a[r] = b[r] = _mm512_setzero_ps();
		/* the outputs' lines arrive while the loop runs */
		_mm_prefetch((const char *) (y + (size_t) r * ldy), _MM_HINT_T0);
		if (NP == 2)
			_mm_prefetch((const char *) (y + (size_t) r * ldy + FB_F32_NR), _MM_HINT_T0);
	}
	for (int k = 0; k < kc; k++)
	{
		__m512		p = _mm512_load_ps(w0 + (size_t) k * FB_F32_NR);
		__m512		q = NP == 2 ? _mm512_load_ps(w1 + (size_t) k * FB_F32_NR) : p;

#pragma GCC unroll 8
		for (int r = 0; r < MR; r++)
		{
			__m512		s = _mm512_set1_ps(x[(size_t) r * ldx + k]);

			a[r] = _mm512_fmadd_ps(s, p, a[r]);
			if (NP == 2)
				b[r] = _mm512_fmadd_ps(s, q, b[r]);
		}
	}
#pragma GCC unroll 8
	for (int r = 0; r < MR; r++)
	{
		float	   *yr = y + (size_t) r * ldy;
		/* with a bias, y is not read */
		const float *base = bias != NULL ? bias : yr;

		_mm512_mask_storeu_ps(yr, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, base), a[r]));
		if (NP == 2)
			_mm512_mask_storeu_ps(yr + FB_F32_NR, m1,
								  _mm512_add_ps(_mm512_maskz_loadu_ps(m1, base + FB_F32_NR), b[r]));
	}
}

typedef void (*tile_fn) (const float *, int, int, const float *, const float *,
						 const float *, float *, size_t, __mmask16, __mmask16);

#define TILE(MR, NP) \
AVX512 static void \
tile_##MR##_##NP(const float *x, int ldx, int kc, const float *w0, const float *w1, \
				 const float *bias, float *y, size_t ldy, __mmask16 m0, __mmask16 m1) \
{ \
	tile(x, ldx, kc, w0, w1, bias, y, ldy, m0, m1, MR, NP); \
}
TILE(1, 1) TILE(2, 1) TILE(3, 1) TILE(4, 1) TILE(5, 1) TILE(6, 1) TILE(7, 1) TILE(8, 1)
TILE(1, 2) TILE(2, 2) TILE(3, 2) TILE(4, 2) TILE(5, 2) TILE(6, 2) TILE(7, 2) TILE(8, 2)

static const tile_fn tiles[2][FB_F32_MR + 1] = {
	{NULL, tile_1_1, tile_2_1, tile_3_1, tile_4_1, tile_5_1, tile_6_1, tile_7_1, tile_8_1},
	{NULL, tile_1_2, tile_2_2, tile_3_2, tile_4_2, tile_5_2, tile_6_2, tile_7_2, tile_8_2}
};

static inline __mmask16
cols_mask(int n)
{
	return n >= FB_F32_NR ? (__mmask16) 0xffff : n <= 0 ? 0 : (__mmask16) ((1u << n) - 1u);
}

AVX512 void
fb_avx512_f32_panel(const float *x, int ldx, int kc, int mr, const float *panel,
					size_t panel_stride, int np, const float *bias, float *y,
					size_t ldy, int ncols)
{
	tiles[np - 1][mr] (x, ldx, kc, panel, panel + (np == 2 ? panel_stride : 0), bias, y, ldy,
					   cols_mask(ncols), cols_mask(ncols - FB_F32_NR));
}
