/*
 * fb_q8.h — int8 linear layers (finbert precision "int8").
 *
 * Weights: symmetric per-output-channel int8 (scale = max|w| / 127),
 * quantised once at load.  Activations: symmetric per-row int8, quantised
 * dynamically before each GEMM.  Products are summed exactly in int32 and
 * dequantised into the fp32 output:  y[t, n] += sum * sx[t] * sw[n].
 *
 * Both operands are kept as int16 holding int8 values, so the AVX2
 * kernel can use vpmaddwd (16 exact products per instruction, no
 * saturation) instead of vpmaddubsw, whose int16 pair sums saturate
 * unless one operand is cut to 7 bits; both do the same number of
 * multiplications per cycle on AVX2-only CPUs.  With VNNI, vpdpbusd would
 * double that; no such CPU is available to test on here.
 *
 * Packed weight layout: panels of FB_Q8_NR output columns; inside a panel,
 * for every pair of input rows k = 2i, 2i+1, the 2 * FB_Q8_NR values
 * (w[2i][n], w[2i+1][n]) for n = 0..NR-1.  K is padded to even and N to a
 * multiple of NR with zero weights.
 */
#ifndef FB_Q8_H
#define FB_Q8_H

#include "fb_internal.h"

#define FB_Q8_NR 16				/* output columns per panel */
#define FB_Q8_MR 6				/* rows per micro-kernel call */
#define FB_Q8_KC 512			/* input channels per chunk (even) */

typedef struct fb_qmat
{
	int			K,
				N;				/* logical shape: y[T, N] += x[T, K] W[K, N] */
	int			Kp;				/* K rounded up to even */
	int			n_panels;
	int16_t    *w;				/* n_panels * Kp * NR values */
	float	   *scale;			/* [n_panels * NR] per column, 0 past N */
} fb_qmat;

/* Quantises and packs W[K, N] (row-major, fp32).  NULL when out of memory. */
fb_qmat    *fb_qmat_new(const float *w, int K, int N);
void		fb_qmat_free(fb_qmat *q);
size_t		fb_qmat_bytes(const fb_qmat *q);

/*
 * Row quantisation: q[t, 0..Kp) (int8 values in int16, zero padded) and
 * scale[t] for x[t, 0..K), t < T.  A row of zeros gets scale 0.
 */
typedef void (*fb_q8_quantize_fn) (const float *x, int T, int K, int Kp,
								   int16_t *q, float *scale);

/*
 * Micro-kernel: rows r < mr (mr <= FB_Q8_MR) of q (leading dimension ldq)
 * times kc (even) input channels of one weight panel (panel points at the
 * chunk's first pair); y[r * ldy + c] += sum * sx[r] * sw[c] for the first
 * ncols (<= NR) columns.  The GEMM sums in chunks of FB_Q8_KC channels (so
 * a panel's chunk stays in L1), each chunk dequantised with one fused
 * multiply-add per output (fmaf in the reference): every implementation
 * gives bit-identical results.
 */
typedef void (*fb_q8_panel_fn) (const int16_t *q, int ldq, int kc,
								const float *sx, int mr, const int16_t *panel,
								const float *sw, float *y, size_t ldy, int ncols);

void		fb_q8_quantize_ref(const float *x, int T, int K, int Kp, int16_t *q,
							   float *scale);
void		fb_q8_panel_ref(const int16_t *q, int ldq, int kc, const float *sx,
							int mr, const int16_t *panel, const float *sw,
							float *y, size_t ldy, int ncols);
void		fb_avx2_q8_quantize(const float *x, int T, int K, int Kp, int16_t *q,
								float *scale);
void		fb_avx2_q8_panel(const int16_t *q, int ldq, int kc, const float *sx,
							 int mr, const int16_t *panel, const float *sw,
							 float *y, size_t ldy, int ncols);

/*
 * y[T, n0..n1) += x_q W[:, n0..n1) with x already quantised (q, sx from a
 * quantize_fn) using the micro-kernel panel_fn; n0 must be a multiple of
 * FB_Q8_NR.
 */
void		fb_q8_gemm_cols(fb_q8_panel_fn panel_fn, const int16_t *q,
							const float *sx, int T, const fb_qmat *w, float *y,
							int n0, int n1);

#endif
