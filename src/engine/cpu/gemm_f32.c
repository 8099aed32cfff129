/*
 * gemm_f32.c — fp32 weight packing, the plain-C reference micro-kernel and
 * the blocked GEMM driver (fb_f32.h).  The AVX-512 kernel is in
 * gemm_f32_avx512.c; test/test_kernels.c checks one against the other.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fb_f32.h"

fb_pmat *
fb_pmat_new(const float *w, int K, int N)
{
	fb_pmat    *p = calloc(1, sizeof(fb_pmat));
	size_t		n;

	if (p == NULL)
		return NULL;
	p->K = K;
	p->N = N;
	p->n_panels = (N + FB_F32_NR - 1) / FB_F32_NR;
	n = (size_t) p->n_panels * K * FB_F32_NR;
	p->w = fb_alloc_aligned(sizeof(float) * n);
	if (p->w == NULL)
	{
		free(p);
		return NULL;
	}
	memset(p->w, 0, sizeof(float) * n);
	for (int k = 0; k < K; k++)
		for (int c = 0; c < N; c++)
			p->w[(size_t) (c / FB_F32_NR) * K * FB_F32_NR + (size_t) k * FB_F32_NR + c % FB_F32_NR] =
				w[(size_t) k * N + c];
	return p;
}

void
fb_pmat_free(fb_pmat *p)
{
	if (p == NULL)
		return;
	fb_free_aligned(p->w);
	free(p);
}

size_t
fb_pmat_bytes(const fb_pmat *p)
{
	return sizeof(float) * (size_t) p->n_panels * p->K * FB_F32_NR;
}

void
fb_f32_panel_ref(const float *x, int ldx, int kc, int mr, const float *panel,
				 size_t panel_stride, int np, const float *bias, float *y,
				 size_t ldy, int ncols)
{
	for (int r = 0; r < mr; r++)
		for (int c = 0; c < ncols && c < np * FB_F32_NR; c++)
		{
			const float *pc = panel + (size_t) (c / FB_F32_NR) * panel_stride + c % FB_F32_NR;
			float		sum = 0.0f;

			for (int k = 0; k < kc; k++)
				sum = fmaf(x[(size_t) r * ldx + k], pc[(size_t) k * FB_F32_NR], sum);
			y[(size_t) r * ldy + c] = (bias != NULL ? bias[c] : y[(size_t) r * ldy + c]) + sum;
		}
}

void
fb_f32_gemm_cols(fb_f32_panel_fn panel_fn, int mr_max, const float *x, int T,
				 const fb_pmat *w, const float *bias, fb_act_fn act, float *y,
				 int n0, int n1)
{
	int			K = w->K;
	size_t		stride = (size_t) K * FB_F32_NR;

	/* a chunk of two panels (up to 128 KB) stays in L2 while the block's
	 * rows (up to FB_F32_MB) pass it mr_max at a time */
	for (int t0 = 0; t0 < T; t0 += FB_F32_MB)
	{
		int			t1 = t0 + FB_F32_MB < T ? t0 + FB_F32_MB : T;

		for (int k0 = 0; k0 < K; k0 += FB_F32_KC)
		{
			int			kc = K - k0 < FB_F32_KC ? K - k0 : FB_F32_KC;
			/* the first chunk starts from the bias, the others from y; the
			 * last one leaves final values, ready for the activation */
			const float *b0 = k0 == 0 ? bias : NULL;
			bool		last = k0 + FB_F32_KC >= K;

			for (int c0 = n0; c0 < n1;)
			{
				int			np = n1 - c0 > FB_F32_NR ? 2 : 1;
				int			nc = n1 - c0 < np * FB_F32_NR ? n1 - c0 : np * FB_F32_NR;
				const float *panel = w->w + (size_t) (c0 / FB_F32_NR) * stride + (size_t) k0 * FB_F32_NR;

				for (int t = t0; t < t1; t += mr_max)
				{
					int			mr = t1 - t < mr_max ? t1 - t : mr_max;

					panel_fn(x + (size_t) t * K + k0, K, kc, mr, panel, stride, np,
							 b0 != NULL ? b0 + c0 : NULL, y + (size_t) t * w->N + c0,
							 (size_t) w->N, nc);
					if (act != NULL && last)
						for (int i = 0; i < mr; i++)
							act(y + (size_t) (t + i) * w->N + c0, (size_t) nc);
				}
				c0 += nc;
			}
		}
	}
}
