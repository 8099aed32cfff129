/*
 * gemm_q8.c — int8 weights and activations for the linear layers: weight
 * packing, the plain-C reference kernels and the blocked GEMM driver.
 * Layout and arithmetic are described in fb_q8.h; the AVX2 kernels are in
 * gemm_q8_avx2.c and give bit-identical results (test/test_kernels.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fb_q8.h"

/* Index of weight (k, column c) inside a panel. */
static inline size_t
panel_index(int k, int c)
{
	return (size_t) (k / 4) * 4 * FB_Q8_NR + (size_t) c * 4 + (size_t) (k & 3);
}

fb_qmat *
fb_qmat_new(const float *w, int K, int N)
{
	fb_qmat    *q = calloc(1, sizeof(fb_qmat));
	size_t		n_w,
				n_cols;

	if (q == NULL)
		return NULL;
	q->K = K;
	q->N = N;
	q->Kp = (K + 3) & ~3;
	q->n_panels = (N + FB_Q8_NR - 1) / FB_Q8_NR;
	q->n_chunks = (q->Kp + FB_Q8_KC - 1) / FB_Q8_KC;
	n_cols = (size_t) q->n_panels * FB_Q8_NR;
	n_w = n_cols * (size_t) q->Kp;
	q->w = fb_alloc_aligned(n_w);
	q->scale = fb_alloc_aligned(sizeof(float) * n_cols);
	q->colsum = fb_alloc_aligned(sizeof(int32_t) * n_cols * (size_t) q->n_chunks);
	if (q->w == NULL || q->scale == NULL || q->colsum == NULL)
	{
		fb_qmat_free(q);
		return NULL;
	}
	memset(q->w, 0, n_w);
	memset(q->colsum, 0, sizeof(int32_t) * n_cols * (size_t) q->n_chunks);
	for (size_t n = 0; n < n_cols; n++)
	{
		int8_t	   *panel = q->w + (n / FB_Q8_NR) * (size_t) q->Kp * FB_Q8_NR;
		int			c = (int) (n % FB_Q8_NR);
		float		amax = 0.0f,
					inv;
		bool		bad = false;

		q->scale[n] = 0.0f;
		if (n >= (size_t) N)
			continue;
		for (int k = 0; k < K; k++)
		{
			amax = fmaxf(amax, fabsf(w[(size_t) k * N + n]));
			bad |= !isfinite(w[(size_t) k * N + n]);
		}
		if (bad)
			q->scale[n] = NAN;	/* as in fp32, the outputs become NaN */
		if (bad || amax == 0.0f)
			continue;
		q->scale[n] = amax / (float) FB_Q8_WMAX;
		inv = (float) FB_Q8_WMAX / amax;
		for (int k = 0; k < K; k++)
		{
			long		v = lrintf(w[(size_t) k * N + n] * inv);

			v = v > FB_Q8_WMAX ? FB_Q8_WMAX : (v < -FB_Q8_WMAX ? -FB_Q8_WMAX : v);
			panel[panel_index(k, c)] = (int8_t) v;
			q->colsum[(size_t) (k / FB_Q8_KC) * n_cols + n] += (int32_t) v;
		}
	}
	return q;
}

void
fb_qmat_free(fb_qmat *q)
{
	if (q == NULL)
		return;
	fb_free_aligned(q->w);
	fb_free_aligned(q->scale);
	fb_free_aligned(q->colsum);
	free(q);
}

size_t
fb_qmat_bytes(const fb_qmat *q)
{
	size_t		n_cols = (size_t) q->n_panels * FB_Q8_NR;

	return n_cols * ((size_t) q->Kp + sizeof(float) + sizeof(int32_t) * (size_t) q->n_chunks);
}

float
fb_q8_row_scale(const fb_q8_rows *r, int t, float mn, float mx, bool bad)
{
	float		inv;
	long		z;

	if (bad || mx - mn == 0.0f)
	{
		/* a zero row stays zero; a non-finite one makes its outputs NaN,
		 * which the forward pass reports after the layer */
		memset(r->q + (size_t) t * r->Kp, 0, (size_t) r->Kp);
		r->scale[t] = bad ? NAN : 0.0f;
		r->zero[t] = 0;
		return 0.0f;
	}
	r->scale[t] = (mx - mn) / 255.0f;
	inv = 255.0f / (mx - mn);
	z = lrintf(-mn * inv);
	r->zero[t] = (int32_t) (z < 0 ? 0 : (z > 255 ? 255 : z));
	return inv;
}

void
fb_q8_row_tail(const float *x, uint8_t *q, int k0, int K, int Kp, float inv,
			   int32_t zero)
{
	for (int k = k0; k < K; k++)
	{
		long		v = lrintf(x[k] * inv) + zero;

		q[k] = (uint8_t) (v < 0 ? 0 : (v > 255 ? 255 : v));
	}
	for (int k = K; k < Kp; k++)
		q[k] = (uint8_t) zero;
}

void
fb_q8_quantize_ref(const float *x, int T, int K, const fb_q8_rows *r)
{
	for (int t = 0; t < T; t++)
	{
		const float *xr = x + (size_t) t * K;
		float		mn = 0.0f,
					mx = 0.0f,
					inv;
		bool		bad = false;

		/* the range always holds 0, so zero padding is exact */
		for (int k = 0; k < K; k++)
		{
			mn = fminf(mn, xr[k]);
			mx = fmaxf(mx, xr[k]);
			bad |= !isfinite(xr[k]);
		}
		if ((inv = fb_q8_row_scale(r, t, mn, mx, bad)) != 0.0f)
			fb_q8_row_tail(xr, r->q + (size_t) t * r->Kp, 0, K, r->Kp, inv, r->zero[t]);
	}
}

void
fb_q8_panel_ref(const uint8_t *q, int ldq, int kc, const float *sx,
				const int32_t *zero, int mr, const int8_t *panel,
				const float *sw, const int32_t *colsum, const float *bias,
				float *y, size_t ldy, int ncols)
{
	for (int t = 0; t < mr; t++)
	{
		const uint8_t *qt = q + (size_t) t * ldq;

		for (int c = 0; c < ncols; c++)
		{
			int32_t		sum = 0;

			for (int k = 0; k < kc; k++)
				sum += (int32_t) qt[k] * panel[panel_index(k, c)];
			sum -= zero[t] * colsum[c];
			y[(size_t) t * ldy + c] = fmaf((float) sum, sx[t] * sw[c],
										   bias != NULL ? bias[c] : y[(size_t) t * ldy + c]);
		}
	}
}

void
fb_q8_gemm_cols(fb_q8_panel_fn panel_fn, fb_q8_panel2_fn panel2_fn,
				fb_q8_panel2_fn panel2_act, const fb_q8_rows *r, int T,
				const fb_qmat *w, const float *bias, fb_act_fn act, float *y,
				int n0, int n1)
{
	int			Kp = w->Kp;
	size_t		n_cols = (size_t) w->n_panels * FB_Q8_NR;

	/* rows per block: the block's activations (~96 KB) stay in L2 while
	 * the weight panels stream past them, a chunk of FB_Q8_KC channels of
	 * one panel (16 KB) staying in L1 for all the block's rows */
	int			kc_max = Kp < FB_Q8_KC ? Kp : FB_Q8_KC;
	int			mb = 98304 / kc_max;

	mb = mb < FB_Q8_MR ? FB_Q8_MR : mb - mb % FB_Q8_MR;
	for (int t0 = 0; t0 < T; t0 += mb)
	{
		int			t1 = t0 + mb < T ? t0 + mb : T;

		for (int k0 = 0; k0 < Kp; k0 += FB_Q8_KC)
		{
			int			kc = Kp - k0 < FB_Q8_KC ? Kp - k0 : FB_Q8_KC;
			const int32_t *csum = w->colsum + (size_t) (k0 / FB_Q8_KC) * n_cols;
			/* the first chunk starts from the bias, the others from y; the
			 * last one leaves final values, ready for the activation */
			const float *b0 = k0 == 0 ? bias : NULL;
			bool		last = k0 + FB_Q8_KC >= Kp;
			/* the last chunk's full tiles store act(y) at once */
			fb_q8_panel2_fn p2 = act != NULL && last && panel2_act != NULL ? panel2_act : panel2_fn;

			for (int c0 = n0; c0 < n1;)
			{
				const int8_t *panel = w->w + (size_t) (c0 / FB_Q8_NR) * Kp * FB_Q8_NR
					+ (size_t) k0 * FB_Q8_NR;
				/* two panels at a time where the wide kernel exists */
				int			np = panel2_fn != NULL && n1 - c0 > FB_Q8_NR ? 2 : 1;
				int			nc = n1 - c0 < np * FB_Q8_NR ? n1 - c0 : np * FB_Q8_NR;

				for (int t = t0; t < t1; t += FB_Q8_MR)
				{
					int			mr = t1 - t < FB_Q8_MR ? t1 - t : FB_Q8_MR;
					const uint8_t *qt = r->q + (size_t) t * r->Kp + k0;
					float	   *yt = y + (size_t) t * w->N + c0;
					bool		fused = false;

					if (np == 2 && mr == FB_Q8_MR)
					{
						fused = p2 != panel2_fn;
						p2(qt, r->Kp, kc, r->scale + t, r->zero + t, panel,
						   (size_t) Kp * FB_Q8_NR, w->scale + c0, csum + c0,
						   b0 != NULL ? b0 + c0 : NULL, yt, (size_t) w->N, nc);
					}
					else
						for (int p = 0; p < np; p++)
							panel_fn(qt, r->Kp, kc, r->scale + t, r->zero + t, mr,
									 panel + (size_t) p * Kp * FB_Q8_NR,
									 w->scale + c0 + p * FB_Q8_NR, csum + c0 + p * FB_Q8_NR,
									 b0 != NULL ? b0 + c0 + p * FB_Q8_NR : NULL,
									 yt + p * FB_Q8_NR, (size_t) w->N,
									 nc - p * FB_Q8_NR < FB_Q8_NR ? nc - p * FB_Q8_NR : FB_Q8_NR);
					if (act != NULL && last && !fused)
						for (int i = 0; i < mr; i++)
							act(yt + (size_t) i * w->N, (size_t) nc);
				}
				c0 += nc;
			}
		}
	}
}
