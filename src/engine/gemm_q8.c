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

fb_qmat *
fb_qmat_new(const float *w, int K, int N)
{
	fb_qmat    *q = calloc(1, sizeof(fb_qmat));
	size_t		n_w;

	if (q == NULL)
		return NULL;
	q->K = K;
	q->N = N;
	q->Kp = K + (K & 1);
	q->n_panels = (N + FB_Q8_NR - 1) / FB_Q8_NR;
	n_w = (size_t) q->n_panels * (size_t) q->Kp * FB_Q8_NR;
	q->w = fb_alloc_aligned(n_w * sizeof(int16_t));
	q->scale = fb_alloc_aligned(sizeof(float) * (size_t) q->n_panels * FB_Q8_NR);
	if (q->w == NULL || q->scale == NULL)
	{
		fb_qmat_free(q);
		return NULL;
	}
	memset(q->w, 0, n_w * sizeof(int16_t));
	for (int p = 0; p < q->n_panels; p++)
	{
		int16_t    *panel = q->w + (size_t) p * q->Kp * FB_Q8_NR;

		for (int c = 0; c < FB_Q8_NR; c++)
		{
			int			n = p * FB_Q8_NR + c;
			float		amax = 0.0f,
						inv;

			q->scale[n] = 0.0f;
			if (n >= N)
				continue;
			for (int k = 0; k < K; k++)
				amax = fmaxf(amax, fabsf(w[(size_t) k * N + n]));
			if (amax == 0.0f)
				continue;
			q->scale[n] = amax / 127.0f;
			inv = 127.0f / amax;
			for (int k = 0; k < K; k++)
			{
				long		v = lrintf(w[(size_t) k * N + n] * inv);

				v = v > 127 ? 127 : (v < -127 ? -127 : v);
				panel[(size_t) (k / 2) * 2 * FB_Q8_NR + 2 * c + (k & 1)] = (int16_t) v;
			}
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
	free(q);
}

size_t
fb_qmat_bytes(const fb_qmat *q)
{
	return (size_t) q->n_panels * FB_Q8_NR * ((size_t) q->Kp * sizeof(int16_t) + sizeof(float));
}

void
fb_q8_quantize_ref(const float *x, int T, int K, int Kp, int16_t *q, float *scale)
{
	for (int t = 0; t < T; t++)
	{
		const float *xr = x + (size_t) t * K;
		int16_t    *qr = q + (size_t) t * Kp;
		float		amax = 0.0f,
					inv;
		bool		bad = false;

		for (int k = 0; k < K; k++)
		{
			amax = fmaxf(amax, fabsf(xr[k]));
			bad |= !isfinite(xr[k]);
		}
		memset(qr, 0, sizeof(int16_t) * (size_t) Kp);
		if (bad || amax == 0.0f)
		{
			/* a zero row stays zero; a non-finite one makes its outputs NaN,
			 * which the forward pass reports after the layer */
			scale[t] = bad ? NAN : 0.0f;
			continue;
		}
		scale[t] = amax / 127.0f;
		inv = 127.0f / amax;
		for (int k = 0; k < K; k++)
			qr[k] = (int16_t) lrintf(xr[k] * inv);
	}
}

void
fb_q8_panel_ref(const int16_t *q, int ldq, int kc, const float *sx, int mr,
				const int16_t *panel, const float *sw, float *y, size_t ldy,
				int ncols)
{
	for (int r = 0; r < mr; r++)
	{
		const int16_t *qr = q + (size_t) r * ldq;

		for (int c = 0; c < ncols; c++)
		{
			int32_t		sum = 0;

			for (int i = 0; i < kc / 2; i++)
			{
				const int16_t *wp = panel + (size_t) i * 2 * FB_Q8_NR + 2 * c;

				sum += (int32_t) qr[2 * i] * wp[0] + (int32_t) qr[2 * i + 1] * wp[1];
			}
			y[(size_t) r * ldy + c] = fmaf((float) sum, sx[r] * sw[c], y[(size_t) r * ldy + c]);
		}
	}
}

void
fb_q8_gemm_cols(fb_q8_panel_fn panel_fn, const int16_t *q, const float *sx,
				int T, const fb_qmat *w, float *y, int n0, int n1)
{
	int			Kp = w->Kp;

	/* rows per block: the block's activations (~128 KB) stay in L2 while
	 * the weight panels stream past them, a chunk of FB_Q8_KC channels of
	 * one panel (16 KB) staying in L1 for all the block's rows */
	int			kc_max = Kp < FB_Q8_KC ? Kp : FB_Q8_KC;
	int			mb = 131072 / (kc_max * (int) sizeof(int16_t));

	mb = mb < FB_Q8_MR ? FB_Q8_MR : mb - mb % FB_Q8_MR;
	for (int t0 = 0; t0 < T; t0 += mb)
	{
		int			t1 = t0 + mb < T ? t0 + mb : T;

		for (int k0 = 0; k0 < Kp; k0 += FB_Q8_KC)
		{
			int			kc = Kp - k0 < FB_Q8_KC ? Kp - k0 : FB_Q8_KC;

			for (int c0 = n0; c0 < n1; c0 += FB_Q8_NR)
			{
				const int16_t *panel = w->w + (size_t) (c0 / FB_Q8_NR) * Kp * FB_Q8_NR
					+ (size_t) k0 * FB_Q8_NR;
				int			nc = n1 - c0 < FB_Q8_NR ? n1 - c0 : FB_Q8_NR;

				for (int t = t0; t < t1; t += FB_Q8_MR)
				{
					int			mr = t1 - t < FB_Q8_MR ? t1 - t : FB_Q8_MR;

					panel_fn(q + (size_t) t * Kp + k0, Kp, kc, sx + t, mr, panel,
							 w->scale + c0, y + (size_t) t * w->N + c0, (size_t) w->N, nc);
				}
			}
		}
	}
}
