/*
 * fb_f32.h — fp32 linear layers on pre-packed weights.
 *
 * OpenBLAS packs the weight matrix on every call; for the short inputs of
 * interactive queries (one sentence: 64 token rows) that copy of a matrix
 * streamed from memory costs a third of the layer's time.  Packing once
 * at load into the order the micro-kernel reads removes it, and on wide
 * batches the same kernel matches OpenBLAS (bench/, README "Speed").  Used
 * where the kernel set has an fp32 micro-kernel (AVX-512, AVX2); the
 * generic set calls BLAS on the row-major weights.  Every micro-kernel
 * computes each output as the reference does, so results do not depend on
 * the tile, the batch a row is packed into or the kernel set.
 *
 * Packed layout: panels of FB_F32_NR output columns; a panel holds, for
 * k = 0..K-1, the NR weights W[k][n0..n0+NR) (zero past N): K * NR floats,
 * 64-byte aligned, so a micro-kernel reads each panel front to back.
 */
#ifndef FB_F32_H
#define FB_F32_H

#include "fb_internal.h"

#define FB_F32_NR 16			/* output columns per panel */
#define FB_F32_MR 8				/* rows per micro-kernel call (at most) */
#define FB_F32_KC 1024			/* input channels per chunk */
#define FB_F32_MB 512			/* rows per block */

typedef struct fb_pmat
{
	int			K,
				N;				/* y[T, N] += x[T, K] W[K, N] */
	int			n_panels;
	float	   *w;				/* n_panels * K * NR */
} fb_pmat;

/* Packs W[K, N] (row-major).  NULL when out of memory. */
fb_pmat    *fb_pmat_new(const float *w, int K, int N);
void		fb_pmat_free(fb_pmat *p);
size_t		fb_pmat_bytes(const fb_pmat *p);

/*
 * Micro-kernel: for rows r < mr (<= FB_F32_MR) of x (leading dimension
 * ldx, kc input channels) and np (1 or 2) consecutive panels (the second
 * at panel + panel_stride floats; panel points at the chunk's first
 * channel), y[r * ldy + c] += sum_k x[r, k] W[k, c] for c < ncols
 * (<= np * NR); with bias not NULL, y = bias[c] + the sum (y not read).
 * Sums run over k in order from zero, one fused multiply-add each, and are
 * then added to y or the bias.
 */
typedef void (*fb_f32_panel_fn) (const float *x, int ldx, int kc, int mr,
								 const float *panel, size_t panel_stride,
								 int np, const float *bias, float *y,
								 size_t ldy, int ncols);

void		fb_f32_panel_ref(const float *x, int ldx, int kc, int mr,
							 const float *panel, size_t panel_stride, int np,
							 const float *bias, float *y, size_t ldy, int ncols);
void		fb_avx512_f32_panel(const float *x, int ldx, int kc, int mr,
								const float *panel, size_t panel_stride, int np,
								const float *bias, float *y, size_t ldy, int ncols);
/* the AVX2 kernel's best row count: two tiles of 3 rows x 32 columns */
#define FB_AVX2_F32_MR 6
void		fb_avx2_f32_panel(const float *x, int ldx, int kc, int mr,
							  const float *panel, size_t panel_stride, int np,
							  const float *bias, float *y, size_t ldy, int ncols);

/* y[T, n0..n1) += x[T, K] W[:, n0..n1); n0 a multiple of FB_F32_NR; the
 * micro-kernel gets up to mr (<= FB_F32_MR) rows a call.  With bias ([N])
 * not NULL, y = bias + x W instead (y is not read); with act not NULL, act
 * is applied to each tile of the result once it is final. */
void		fb_f32_gemm_cols(fb_f32_panel_fn panel_fn, int mr, const float *x, int T,
							 const fb_pmat *w, const float *bias, fb_act_fn act,
							 float *y, int n0, int n1);

#endif
