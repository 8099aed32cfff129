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
 * An MR x 16 tile, fully unrolled so that the accumulators live in
 * registers.  Panels are zero-padded, so weight loads are always full;
 * with fewer than 16 columns only the loads of y (or the bias) and the
 * stores are masked.
 */
AVX2 static inline __attribute__((always_inline)) void
tile(const float *x, int ldx, int kc, const float *w, const float *bias,
	 float *y, size_t ldy, int ncols, const int MR)
{
	__m256		a[TILE_MR],
				b[TILE_MR];

#pragma GCC unroll 6
	for (int r = 0; r < MR; r++)
		a[r] = b[r] = _mm256_setzero_ps();
	for (int k = 0; k < kc; k++)
	{
		__m256		p = _mm256_load_ps(w + (size_t) k * FB_F32_NR);
		__m256		q = _mm256_load_ps(w + (size_t) k * FB_F32_NR + 8);

#pragma GCC unroll 6
		for (int r = 0; r < MR; r++)
		{
			__m256		s = _mm256_broadcast_ss(x + (size_t) r * ldx + k);

			a[r] = _mm256_fmadd_ps(s, p, a[r]);
			b[r] = _mm256_fmadd_ps(s, q, b[r]);
		}
	}
	if (ncols >= FB_F32_NR)
	{
#pragma GCC unroll 6
		for (int r = 0; r < MR; r++)
		{
			float	   *yr = y + (size_t) r * ldy;
			/* with a bias, y is not read */
			const float *base = bias != NULL ? bias : yr;

			_mm256_storeu_ps(yr, _mm256_add_ps(_mm256_loadu_ps(base), a[r]));
			_mm256_storeu_ps(yr + 8, _mm256_add_ps(_mm256_loadu_ps(base + 8), b[r]));
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

			_mm256_maskstore_ps(yr, m0, _mm256_add_ps(_mm256_maskload_ps(base, m0), a[r]));
			_mm256_maskstore_ps(yr + 8, m1, _mm256_add_ps(_mm256_maskload_ps(base + 8, m1), b[r]));
		}
	}
}

/*
 * An MR x 32 tile (both panels of a two-panel call): each row's activation
 * is broadcast once for 32 columns, which halves the reads of x, the
 * operand that comes from farthest (a block of rows does not fit L2).
 */
AVX2 static inline __attribute__((always_inline)) void
tile2(const float *x, int ldx, int kc, const float *w0, const float *w1,
	  const float *bias, float *y, size_t ldy, const int MR)
{
	__m256		a[TILE2_MR][2],
				b[TILE2_MR][2];

#pragma GCC unroll 4
	for (int r = 0; r < MR; r++)
		a[r][0] = a[r][1] = b[r][0] = b[r][1] = _mm256_setzero_ps();
	for (int k = 0; k < kc; k++)
	{
		__m256		p0 = _mm256_load_ps(w0 + (size_t) k * FB_F32_NR);
		__m256		p1 = _mm256_load_ps(w0 + (size_t) k * FB_F32_NR + 8);
		__m256		q0 = _mm256_load_ps(w1 + (size_t) k * FB_F32_NR);
		__m256		q1 = _mm256_load_ps(w1 + (size_t) k * FB_F32_NR + 8);

#pragma GCC unroll 4
		for (int r = 0; r < MR; r++)
		{
			__m256		s = _mm256_broadcast_ss(x + (size_t) r * ldx + k);

			a[r][0] = _mm256_fmadd_ps(s, p0, a[r][0]);
			a[r][1] = _mm256_fmadd_ps(s, p1, a[r][1]);
			b[r][0] = _mm256_fmadd_ps(s, q0, b[r][0]);
			b[r][1] = _mm256_fmadd_ps(s, q1, b[r][1]);
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < MR; r++)
	{
		float	   *yr = y + (size_t) r * ldy;
		const float *base = bias != NULL ? bias : yr;

		_mm256_storeu_ps(yr, _mm256_add_ps(_mm256_loadu_ps(base), a[r][0]));
		_mm256_storeu_ps(yr + 8, _mm256_add_ps(_mm256_loadu_ps(base + 8), a[r][1]));
		_mm256_storeu_ps(yr + 16, _mm256_add_ps(_mm256_loadu_ps(base + 16), b[r][0]));
		_mm256_storeu_ps(yr + 24, _mm256_add_ps(_mm256_loadu_ps(base + 24), b[r][1]));
	}
}

typedef void (*tile2_fn) (const float *, int, int, const float *, const float *,
						  const float *, float *, size_t);

#define TILE2(MR) \
AVX2 static void \
tile2_##MR(const float *x, int ldx, int kc, const float *w0, const float *w1, \
		   const float *bias, float *y, size_t ldy) \
{ \
	tile2(x, ldx, kc, w0, w1, bias, y, ldy, MR); \
}
TILE2(1) TILE2(2) TILE2(3)

static const tile2_fn tiles2[TILE2_MR + 1] = {NULL, tile2_1, tile2_2, tile2_3};

typedef void (*tile_fn) (const float *, int, int, const float *, const float *,
						 float *, size_t, int);

#define TILE(MR) \
AVX2 static void \
tile_##MR(const float *x, int ldx, int kc, const float *w, const float *bias, \
		  float *y, size_t ldy, int ncols) \
{ \
	tile(x, ldx, kc, w, bias, y, ldy, ncols, MR); \
}
TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6)

static const tile_fn tiles[TILE_MR + 1] = {
	NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6
};

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
						  y + (size_t) r0 * ldy, ldy);
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

			tiles[rows] (x + (size_t) r0 * ldx, ldx, kc, w, b,
						 y + (size_t) r0 * ldy + pi * FB_F32_NR, ldy, nc);
		}
	}
}
