/*
 * gemm_f32_avx2.c — AVX2 micro-kernel of the packed fp32 linear layers
 * (fb_f32.h).
 *
 * Without it the AVX2 set ran its fp32 layers through OpenBLAS, whose
 * Haswell kernel computes the last rows of a call (the row count modulo
 * 12) with other kernels than the rest, so a sentence's results changed in
 * the last bits with the batch it was packed into.  This kernel does what
 * the reference does for every element, one fused multiply-add per input
 * channel in order from zero, whatever the tile: the AVX2 set gives the
 * same bits as the reference and as the AVX-512 kernel, alone or in any
 * batch.
 *
 * Full two-panel calls (32 columns, the bulk of every layer) run tiles of
 * up to 3 rows x 32 columns: 12 accumulators, each row's activation
 * broadcast once for all 32 columns (a block of rows of x does not fit L2,
 * so its reads are what to save).  The driver hands this kernel six rows a
 * call (FB_AVX2_F32_MR): two full tiles; a 2-row tile has too few
 * accumulator chains to hide the FMA latency.  Partial column ranges (the
 * last panel of a layer whose width is not a multiple of 32) run tiles of
 * up to 6 rows x one panel with masked loads and stores.
 * bench/results/2026-12-07-avx2-f32.txt has the measurements.
 */
#include <immintrin.h>

#include "fb_f32.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define TILE_MR 6
#define TILE2_MR 3

/* lanes [0, n) of 8 */
AVX2 static inline __m256i
lanes_mask(int n)
{
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/*
 * An MR x NP tile (MR rows, NP panels of 16 columns): 2 * NP accumulators a
 * row, fully unrolled so that they live in registers (12 at most: MR <= 6
 * with one panel, <= 3 with two).  Panels are zero-padded, so weight loads
 * are always full; with fewer than NP * 16 columns (one panel only) the
 * loads of y (or the bias) and the stores are masked.
 */
AVX2 static inline __attribute__((always_inline)) void
tile(const float *x, int ldx, int kc, const float *w0, const float *w1,
	 const float *bias, float *y, size_t ldy, int ncols, const int MR, const int NP)
{
	__m256		acc[TILE_MR][4];

#pragma GCC unroll 6
	for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
		for (int h = 0; h < 2 * NP; h++)
			acc[r][h] = _mm256_setzero_ps();
	for (int k = 0; k < kc; k++)
	{
		__m256		wv[4];

		wv[0] = _mm256_load_ps(w0 + (size_t) k * FB_F32_NR);
		wv[1] = _mm256_load_ps(w0 + (size_t) k * FB_F32_NR + 8);
		if (NP == 2)
		{
			wv[2] = _mm256_load_ps(w1 + (size_t) k * FB_F32_NR);
			wv[3] = _mm256_load_ps(w1 + (size_t) k * FB_F32_NR + 8);
		}
#pragma GCC unroll 6
		for (int r = 0; r < MR; r++)
		{
			__m256		s = _mm256_broadcast_ss(x + (size_t) r * ldx + k);

#pragma GCC unroll 4
			for (int h = 0; h < 2 * NP; h++)
				acc[r][h] = _mm256_fmadd_ps(s, wv[h], acc[r][h]);
		}
	}
	if (ncols >= NP * FB_F32_NR)
	{
#pragma GCC unroll 6
		for (int r = 0; r < MR; r++)
		{
			float	   *yr = y + (size_t) r * ldy;
			/* with a bias, y is not read */
			const float *base = bias != NULL ? bias : yr;

#pragma GCC unroll 4
			for (int h = 0; h < 2 * NP; h++)
				_mm256_storeu_ps(yr + 8 * h, _mm256_add_ps(_mm256_loadu_ps(base + 8 * h), acc[r][h]));
		}
	}
	else
	{
		__m256i		m0 = lanes_mask(ncols),
					m1 = lanes_mask(ncols - 8);

#pragma GCC unroll 6
		for (int r = 0; r < MR; r++)
		{
			float	   *yr = y + (size_t) r * ldy;
			const float *base = bias != NULL ? bias : yr;

			_mm256_maskstore_ps(yr, m0, _mm256_add_ps(_mm256_maskload_ps(base, m0), acc[r][0]));
			_mm256_maskstore_ps(yr + 8, m1, _mm256_add_ps(_mm256_maskload_ps(base + 8, m1), acc[r][1]));
		}
	}
}

typedef void (*tile_fn) (const float *, int, int, const float *, const float *,
						 const float *, float *, size_t, int);

#define TILE(MR, NP) \
AVX2 static void \
tile_##MR##_##NP(const float *x, int ldx, int kc, const float *w0, const float *w1, \
				 const float *bias, float *y, size_t ldy, int ncols) \
{ \
	tile(x, ldx, kc, w0, w1, bias, y, ldy, ncols, MR, NP); \
}
TILE(1, 1) TILE(2, 1) TILE(3, 1) TILE(4, 1) TILE(5, 1) TILE(6, 1)
TILE(1, 2) TILE(2, 2) TILE(3, 2)

static const tile_fn tiles1[TILE_MR + 1] = {
	NULL, tile_1_1, tile_2_1, tile_3_1, tile_4_1, tile_5_1, tile_6_1
};
static const tile_fn tiles2[TILE2_MR + 1] = {NULL, tile_1_2, tile_2_2, tile_3_2};

AVX2 void
fb_avx2_f32_panel(const float *x, int ldx, int kc, int mr, const float *panel,
				  size_t panel_stride, int np, const float *bias, float *y,
				  size_t ldy, int ncols)
{
	if (np == 2 && ncols == 2 * FB_F32_NR)
	{
		for (int r0 = 0; r0 < mr; r0 += TILE2_MR)
		{
			int			rows = mr - r0 < TILE2_MR ? mr - r0 : TILE2_MR;

			tiles2[rows] (x + (size_t) r0 * ldx, ldx, kc, panel, panel + panel_stride, bias,
						  y + (size_t) r0 * ldy, ldy, ncols);
		}
		return;
	}
	for (int pi = 0; pi < np && ncols > pi * FB_F32_NR; pi++)
	{
		int			nc = ncols - pi * FB_F32_NR;
		const float *w = panel + (size_t) pi * panel_stride;
		const float *b = bias != NULL ? bias + pi * FB_F32_NR : NULL;

		/* 7 and 8 rows (other drivers' counts) as two tiles of about
		 * half rather than 6 + 1 or 6 + 2 */
		int			step = mr <= TILE_MR ? mr : (mr + 1) / 2;

		for (int r0 = 0; r0 < mr; r0 += step)
		{
			int			rows = mr - r0 < step ? mr - r0 : step;

			tiles1[rows] (x + (size_t) r0 * ldx, ldx, kc, w, NULL, b,
						  y + (size_t) r0 * ldy + pi * FB_F32_NR, ldy, nc);
		}
	}
}
