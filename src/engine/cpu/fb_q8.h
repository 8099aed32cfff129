/*
 * fb_q8.h — int8 linear layers (finbert precision "int8").
 *
 * Activations: asymmetric per-row uint8, quantised before each GEMM:
 * x ~ (q - z) * sx with q in [0, 255], zero point z.  Weights: symmetric
 * per-output-channel, 7-bit (w ~ qw * sw, qw in [-63, 63]), quantised once
 * at load.  Products are summed exactly in int32 and dequantised into the
 * fp32 output:
 *
 *     y[t, n] += (sum_k q[t, k] qw[k, n] - z[t] colsum[n]) * sx[t] * sw[n]
 *
 * Why 7-bit weights: AVX2 has no VNNI; its fastest int8 product,
 * vpmaddubsw (uint8 x int8, adjacent pairs summed into int16), saturates
 * unless 2 * 255 * |qw| <= 32767.  ONNX Runtime's AVX2 kernels make the
 * same trade ("reduce_range").  The AVX-512 VNNI kernel (vpdpbusd) would
 * take full 8-bit weights; it keeps the 7-bit ones so that every kernel
 * gives bit-identical outputs on every CPU (label agreement with fp32 is
 * measured, see bench/).
 *
 * Packed weight layout: panels of FB_Q8_NR output columns; inside a panel,
 * for every group of 4 input channels k = 4i..4i+3, the 4 * NR bytes
 * qw[4i..4i+3][n] for n = 0..NR-1 (4 bytes per column).  K is padded to a
 * multiple of 4 and N to a multiple of NR with zero weights.
 */
#ifndef FB_Q8_H
#define FB_Q8_H

#include "fb_internal.h"

#define FB_Q8_NR 16				/* output columns per panel */
#define FB_Q8_MR 8				/* rows per micro-kernel call (at most) */
#define FB_Q8_KC 1024			/* input channels per chunk (multiple of 4) */
#define FB_Q8_WMAX 63			/* largest |quantised weight| */

typedef struct fb_qmat
{
	int			K,
				N;				/* logical shape: y[T, N] += x[T, K] W[K, N] */
	int			Kp;				/* K rounded up to a multiple of 4 */
	int			n_panels;
	int8_t	   *w;				/* n_panels * Kp * NR values */
	float	   *scale;			/* [n_panels * NR] per column, 0 past N */
	int			n_chunks;		/* ceil(Kp / FB_Q8_KC) */
	int32_t    *colsum;			/* [n_chunks, n_panels * NR]: sum of qw[k, n]
								 * over the chunk's channels */
} fb_qmat;

/* Quantises and packs W[K, N] (row-major, fp32).  NULL when out of memory. */
fb_qmat    *fb_qmat_new(const float *w, int K, int N);
void		fb_qmat_free(fb_qmat *q);
size_t		fb_qmat_bytes(const fb_qmat *q);

/* Quantised activation rows: T rows of Kp bytes, scale and zero point each. */
typedef struct fb_q8_rows
{
	uint8_t    *q;				/* [T, Kp], padding = zero point */
	float	   *scale;			/* [T]; 0 for an all-zero row, NaN if non-finite */
	int32_t    *zero;			/* [T] */
	int			Kp;
} fb_q8_rows;

/* Quantises x[t, 0..K) for t < T into rows r.q + t * r.Kp etc. */
typedef void (*fb_q8_quantize_fn) (const float *x, int T, int K,
								   const fb_q8_rows *r);

/*
 * Micro-kernel: rows t < mr (mr <= FB_Q8_MR) of q (leading dimension ldq)
 * times kc (a multiple of 4) input channels of one weight panel (panel
 * points at the chunk's first group); for the first ncols (<= NR)
 * columns, y[t * ldy + c] += (sum - zero[t] * colsum[c]) * sx[t] * sw[c]
 * with colsum the chunk's column sums; with bias not NULL, y[t * ldy + c]
 * is not read and bias[c] stands in its place (the first chunk of a GEMM
 * whose output starts as the bias: one pass over y fewer).  The GEMM sums in chunks of
 * FB_Q8_KC channels (a panel's chunk stays in L1), each chunk dequantised
 * with one fused multiply-add per output (fmaf in the reference), so every
 * implementation gives bit-identical results.
 */
typedef void (*fb_q8_panel_fn) (const uint8_t *q, int ldq, int kc,
								const float *sx, const int32_t *zero, int mr,
								const int8_t *panel, const float *sw,
								const int32_t *colsum, const float *bias,
								float *y, size_t ldy, int ncols);

/*
 * Optional wider micro-kernel: exactly FB_Q8_MR rows times two consecutive
 * panels (the second at panel + panel_stride bytes), ncols in
 * (FB_Q8_NR, 2 * FB_Q8_NR]; sw and colsum point at the first panel's
 * columns.  Same arithmetic, so the same results as two panel_fn calls.
 */
typedef void (*fb_q8_panel2_fn) (const uint8_t *q, int ldq, int kc,
								 const float *sx, const int32_t *zero,
								 const int8_t *panel, size_t panel_stride,
								 const float *sw, const int32_t *colsum,
								 const float *bias, float *y, size_t ldy,
								 int ncols);

void		fb_q8_quantize_ref(const float *x, int T, int K, const fb_q8_rows *r);

/*
 * Shared by every quantize_fn, so they round alike.  fb_q8_row_scale sets
 * row t's scale and zero point from its range [mn, mx] (which holds 0) and
 * returns 255 / (mx - mn); for an all-zero or non-finite (bad) row it
 * zeroes the row and returns 0.  fb_q8_row_tail quantises x[k0..K) and
 * pads [K, Kp) with the zero point.
 */
float		fb_q8_row_scale(const fb_q8_rows *r, int t, float mn, float mx, bool bad);
void		fb_q8_row_tail(const float *x, uint8_t *q, int k0, int K, int Kp,
						   float inv, int32_t zero);
void		fb_q8_panel_ref(const uint8_t *q, int ldq, int kc, const float *sx,
							const int32_t *zero, int mr, const int8_t *panel,
							const float *sw, const int32_t *colsum, const float *bias, float *y,
							size_t ldy, int ncols);
void		fb_avx512_q8_quantize(const float *x, int T, int K, const fb_q8_rows *r);
void		fb_avx512_q8_panel(const uint8_t *q, int ldq, int kc, const float *sx,
							   const int32_t *zero, int mr, const int8_t *panel,
							   const float *sw, const int32_t *colsum, const float *bias, float *y,
							   size_t ldy, int ncols);
void		fb_avx512_q8_panel2(const uint8_t *q, int ldq, int kc, const float *sx,
								const int32_t *zero, const int8_t *panel,
								size_t panel_stride, const float *sw,
								const int32_t *colsum, const float *bias, float *y, size_t ldy,
								int ncols);
void		fb_avx512_q8_panel2_gelu(const uint8_t *q, int ldq, int kc, const float *sx,
									 const int32_t *zero, const int8_t *panel,
									 size_t panel_stride, const float *sw,
									 const int32_t *colsum, const float *bias, float *y,
									 size_t ldy, int ncols);
void		fb_avx2_q8_quantize(const float *x, int T, int K, const fb_q8_rows *r);
void		fb_avx2_q8_panel(const uint8_t *q, int ldq, int kc, const float *sx,
							 const int32_t *zero, int mr, const int8_t *panel,
							 const float *sw, const int32_t *colsum, const float *bias, float *y,
							 size_t ldy, int ncols);

/*
 * y[T, n0..n1) += x W[:, n0..n1) for rows r already quantised (r.Kp ==
 * w->Kp), with the micro-kernel panel_fn and, for full row blocks of two
 * panels, panel2_fn when not NULL; n0 must be a multiple of FB_Q8_NR.
 * With bias ([N]) not NULL, y = bias + x W instead (y is not read).  With
 * act not NULL, act (an element-wise activation) is applied to each tile
 * of the result as soon as it is final, while it is still in cache; where
 * panel2_act is not NULL (a panel2_fn that applies that same activation as
 * it stores, bit for bit), the last chunk's two-panel tiles use it instead.
 */
void		fb_q8_gemm_cols(fb_q8_panel_fn panel_fn, fb_q8_panel2_fn panel2_fn,
							fb_q8_panel2_fn panel2_act, const fb_q8_rows *r, int T,
							const fb_qmat *w, const float *bias, fb_act_fn act,
							float *y, int n0, int n1);

#endif
