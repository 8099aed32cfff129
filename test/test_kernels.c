/*
 * test_kernels.c — every vectorised kernel against the plain-C reference
 * on random and extreme inputs (tolerance: absolute + relative x |ref|).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu/fb_attn.h"
#include "cpu/fb_f32.h"
#include "cpu/fb_kernels.h"
#include "cpu/fb_ops.h"
#include "cpu/fb_pool.h"
#include "cpu/fb_q8.h"
#include "fb_test.h"

static float
frand(unsigned *state, float scale)
{
	*state = *state * 1664525u + 1013904223u;
	return ((float) (*state >> 8) / 16777216.0f * 2.0f - 1.0f) * scale;
}

static double
max_rel_err(const float *a, const float *ref, size_t n, double atol, double rtol)
{
	double		worst = 0.0;

	for (size_t i = 0; i < n; i++)
	{
		double		e = fabs((double) a[i] - ref[i]) / (atol + rtol * fabs(ref[i]));

		if (!(e <= worst))
			worst = isnan(e) ? INFINITY : e;
	}
	return worst;	/* <= 1 means within tolerance */
}

static void
check_set(const fb_cpu_kernels *k)
{
	unsigned	st = 12345;
	/* odd sizes exercise the scalar tails */
	const int	sizes[] = {1, 7, 8, 31, 768, 1029};
	const float scales[] = {0.01f, 1.0f, 6.0f, 30.0f};

	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
		for (size_t sc = 0; sc < sizeof(scales) / sizeof(scales[0]); sc++)
		{
			int			n = sizes[si];
			float	   *a = malloc(sizeof(float) * n * 3),
					   *b = malloc(sizeof(float) * n * 3),
					   *g = malloc(sizeof(float) * n),
					   *beta = malloc(sizeof(float) * n);

			for (int i = 0; i < n * 3; i++)
				a[i] = frand(&st, scales[sc]);
			for (int i = 0; i < n; i++)
			{
				g[i] = 1.0f + frand(&st, 0.2f);
				beta[i] = frand(&st, 0.2f);
			}

			memcpy(b, a, sizeof(float) * n * 3);
			fb_cpu_gelu_erf(b, (size_t) n * 3);
			{
				float	   *c = malloc(sizeof(float) * n * 3);

				memcpy(c, a, sizeof(float) * n * 3);
				k->gelu_erf(c, (size_t) n * 3);
				CHECK(max_rel_err(c, b, (size_t) n * 3, 1e-6, 1e-5) <= 1.0, "%s gelu_erf n=%d scale=%g", k->name, n, scales[sc]);
				memcpy(b, a, sizeof(float) * n * 3);
				fb_cpu_gelu_tanh(b, (size_t) n * 3);
				memcpy(c, a, sizeof(float) * n * 3);
				k->gelu_tanh(c, (size_t) n * 3);
				CHECK(max_rel_err(c, b, (size_t) n * 3, 1e-6, 1e-5) <= 1.0, "%s gelu_tanh n=%d scale=%g", k->name, n, scales[sc]);
				memcpy(b, a, sizeof(float) * n * 3);
				fb_cpu_softmax(b, 3, n);
				memcpy(c, a, sizeof(float) * n * 3);
				k->softmax(c, 3, n);
				CHECK(max_rel_err(c, b, (size_t) n * 3, 1e-7, 1e-5) <= 1.0, "%s softmax n=%d scale=%g", k->name, n, scales[sc]);
				/* LayerNorm with a large common offset: variance must not
				 * cancel */
				for (int i = 0; i < n * 3; i++)
					a[i] += 100.0f;
				memcpy(b, a, sizeof(float) * n * 3);
				fb_cpu_layernorm(b, NULL, g, beta, 3, n, 1e-12f);
				memcpy(c, a, sizeof(float) * n * 3);
				k->layernorm(c, NULL, g, beta, 3, n, 1e-12f);
				if (n > 1)
					CHECK(max_rel_err(c, b, (size_t) n * 3, 2e-4, 1e-4) <= 1.0, "%s layernorm n=%d scale=%g", k->name, n, scales[sc]);

				/*
				 * With the residual connection: LN(x + res) against the
				 * reference on the explicit sum, and the kernel's
				 * in-place result must equal LN applied to x + res
				 * summed beforehand by the same kernel (one fused pass,
				 * same values).
				 */
				{
					float	   *res = malloc(sizeof(float) * n * 3),
							   *d = malloc(sizeof(float) * n * 3);

					for (int i = 0; i < n * 3; i++)
						res[i] = frand(&st, scales[sc]) - 100.0f;	/* cancels most of a's offset */
					for (int i = 0; i < n * 3; i++)
						b[i] = a[i] + res[i];
					memcpy(d, b, sizeof(float) * n * 3);
					fb_cpu_layernorm(b, NULL, g, beta, 3, n, 1e-12f);
					memcpy(c, a, sizeof(float) * n * 3);
					k->layernorm(c, res, g, beta, 3, n, 1e-12f);
					if (n > 1)
						CHECK(max_rel_err(c, b, (size_t) n * 3, 2e-4, 1e-4) <= 1.0, "%s layernorm+residual n=%d scale=%g", k->name, n, scales[sc]);
					k->layernorm(d, NULL, g, beta, 3, n, 1e-12f);
					CHECK(memcmp(c, d, sizeof(float) * n * 3) == 0, "%s layernorm+residual n=%d scale=%g: same as the sum first", k->name, n, scales[sc]);
					free(res);
					free(d);
				}
				free(c);
			}
			free(a);
			free(b);
			free(g);
			free(beta);
		}

	/* extremes: every output finite, softmax of huge logits is one-hot */
	{
		float		x[16] = {-1e30f, -100.0f, -20.0f, -5.0f, 0.0f, 5.0f, 20.0f, 100.0f,
			1e30f, -88.0f, 88.0f, 89.0f, -89.0f, 1e-30f, -1e-30f, 3.0f};
		float		y[16];

		memcpy(y, x, sizeof(x));
		k->gelu_erf(y, 16);
		for (int i = 0; i < 16; i++)
			CHECK(isfinite(y[i]), "%s gelu_erf(%g) finite", k->name, x[i]);
		memcpy(y, x, sizeof(x));
		k->gelu_tanh(y, 16);
		for (int i = 0; i < 16; i++)
			CHECK(isfinite(y[i]), "%s gelu_tanh(%g) finite", k->name, x[i]);
		memcpy(y, x, sizeof(x));
		k->softmax(y, 1, 16);
		CHECK(fabsf(y[8] - 1.0f) < 1e-6f, "%s softmax one-hot", k->name);
		for (int i = 0; i < 16; i++)
			CHECK(isfinite(y[i]), "%s softmax finite", k->name);
	}
}

/*
 * int8 linear layers: each set's row quantisation and micro-kernel must
 * equal the reference bit for bit (exact int32 sums, one fma per chunk);
 * the reference must equal the same arithmetic done independently in
 * double, and stay within quantisation error of the fp32 GEMM.
 */
static void
check_q8(const fb_cpu_kernels *k)
{
	static const int shapes[][3] = {
		{1, 1, 1}, {5, 7, 13}, {13, 33, 17}, {4, 16, 16}, {64, 256, 80},
		{7, 1100, 31}, {29, 768, 48}, {9, 2051, 20}, {16, 64, 40}, {24, 100, 30},
		{40, 1030, 64}
	};
	unsigned	st = 777;

	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++)
	{
		int			T = shapes[si][0],
					K = shapes[si][1],
					N = shapes[si][2];
		float	   *x = malloc(sizeof(float) * T * K),
				   *w = malloc(sizeof(float) * K * N),
				   *yk = malloc(sizeof(float) * T * N),
				   *yr = malloc(sizeof(float) * T * N),
				   *yf = calloc((size_t) T * N, sizeof(float));
		fb_qmat    *q;
		fb_q8_rows	rk,
					rr;
		double		worst_dq = 0,
					worst_f = 0,
					fabsmax = 0;
		int			wide_weights = 0;

		for (int i = 0; i < T * K; i++)
			x[i] = frand(&st, (i / K) % 3 == 2 ? 40.0f : 1.0f) + ((i / K) % 4 == 1 ? 0.8f : 0.0f);
		for (int i = 0; i < K * N; i++)
			w[i] = frand(&st, 0.1f);
		if (T > 3)
			for (int i = 0; i < K; i++)
				x[3 * K + i] = 0.0f;	/* a zero row */
		q = fb_qmat_new(w, K, N);
		CHECK(q != NULL && q->Kp % 4 == 0 && q->n_panels * FB_Q8_NR >= N, "qmat %dx%d", K, N);
		rk.Kp = rr.Kp = q->Kp;
		rk.q = calloc((size_t) T * q->Kp, 1);
		rr.q = calloc((size_t) T * q->Kp, 1);
		rk.scale = malloc(sizeof(float) * T);
		rr.scale = malloc(sizeof(float) * T);
		rk.zero = malloc(sizeof(int32_t) * T);
		rr.zero = malloc(sizeof(int32_t) * T);
		k->q8_quantize(x, T, K, &rk);
		fb_q8_quantize_ref(x, T, K, &rr);
		CHECK(memcmp(rk.q, rr.q, (size_t) T * q->Kp) == 0 && memcmp(rk.scale, rr.scale, sizeof(float) * T) == 0 &&
			  memcmp(rk.zero, rr.zero, sizeof(int32_t) * T) == 0,
			  "%s q8_quantize == reference (T=%d K=%d)", k->name, T, K);
		if (T > 3)
			CHECK(rr.scale[3] == 0.0f && rr.zero[3] == 0, "zero row has scale 0");
		for (int t = 0; t < T; t++)
			for (int kk = 0; kk < K; kk++)
			{
				/* dequantised activations within half a step of x */
				double		d = fabs((rr.q[(size_t) t * q->Kp + kk] - rr.zero[t]) * (double) rr.scale[t] - x[(size_t) t * K + kk]);

				if (d > 0.5001 * rr.scale[t])
				{
					CHECK(0, "activation %d,%d off by %g (scale %g)", t, kk, d, rr.scale[t]);
					t = T;
					break;
				}
			}
		for (int i = 0; i < T * N; i++)
			yk[i] = yr[i] = frand(&st, 1.0f);	/* the GEMM accumulates */
		memcpy(yf, yr, sizeof(float) * T * N);
		fb_q8_gemm_cols(k->q8_panel, k->q8_panel2, NULL, &rk, T, q, NULL, NULL, yk, 0, N);
		fb_q8_gemm_cols(fb_q8_panel_ref, NULL, NULL, &rr, T, q, NULL, NULL, yr, 0, N);
		CHECK(memcmp(yk, yr, sizeof(float) * T * N) == 0, "%s q8 GEMM == reference (%d x %d x %d)", k->name, T, K, N);
		for (int t = 0; t < T; t++)
			for (int n = 0; n < N; n++)
			{
				double		dq = 0,
							f = 0;
				const uint8_t *qrow = rr.q + (size_t) t * q->Kp;

				for (int kk = 0; kk < K; kk++)
				{
					/* unpack the weight from its panel */
					int			p = n / FB_Q8_NR,
								c = n % FB_Q8_NR;
					int8_t		wq = q->w[(size_t) p * q->Kp * FB_Q8_NR + (size_t) (kk / 4) * 4 * FB_Q8_NR + (size_t) c * 4 + (kk & 3)];

					wide_weights += abs(wq) > FB_Q8_WMAX;
					dq += ((double) qrow[kk] - rr.zero[t]) * wq;
					f += (double) x[(size_t) t * K + kk] * w[(size_t) kk * N + n];
				}
				dq = dq * rr.scale[t] * q->scale[n] + yf[(size_t) t * N + n];
				f += yf[(size_t) t * N + n];
				worst_dq = fmax(worst_dq, fabs(dq - yr[(size_t) t * N + n]) / (1e-6 + 1e-5 * fabs(dq)));
				worst_f = fmax(worst_f, fabs(f - yr[(size_t) t * N + n]));
				fabsmax = fmax(fabsmax, fabs(f));
			}
		CHECK(wide_weights == 0, "%d weights beyond 7 bits", wide_weights);
		CHECK(worst_dq <= 1.0, "q8 reference == dequantised sum in double (%d x %d x %d): %g", T, K, N, worst_dq);
		CHECK(worst_f <= 0.03 * fabsmax, "q8 GEMM within 3%% of fp32 (%d x %d x %d): %g of %g", T, K, N, worst_f, fabsmax);
		/* a column range leaves the other columns alone */
		if (N > FB_Q8_NR)
		{
			memcpy(yk, yf, sizeof(float) * T * N);
			fb_q8_gemm_cols(k->q8_panel, k->q8_panel2, NULL, &rk, T, q, NULL, NULL, yk, FB_Q8_NR, N);
			for (int t = 0; t < T; t++)
			{
				CHECK(memcmp(yk + (size_t) t * N, yf + (size_t) t * N, sizeof(float) * FB_Q8_NR) == 0,
					  "columns before n0 untouched");
				CHECK(memcmp(yk + (size_t) t * N + FB_Q8_NR, yr + (size_t) t * N + FB_Q8_NR,
							 sizeof(float) * (N - FB_Q8_NR)) == 0, "column range == full GEMM");
			}
		}
		/* with a bias, y = bias + x W bit for bit as with y pre-filled
		 * with the bias, and y is not read (NaN there stays out) */
		{
			float	   *bias = malloc(sizeof(float) * N),
					   *yb = malloc(sizeof(float) * T * N);

			for (int n = 0; n < N; n++)
				bias[n] = frand(&st, 1.0f);
			for (int t = 0; t < T; t++)
				memcpy(yk + (size_t) t * N, bias, sizeof(float) * N);
			fb_q8_gemm_cols(fb_q8_panel_ref, NULL, NULL, &rr, T, q, NULL, NULL, yk, 0, N);
			for (int i = 0; i < T * N; i++)
				yb[i] = NAN;
			fb_q8_gemm_cols(k->q8_panel, k->q8_panel2, NULL, &rk, T, q, bias, NULL, yb, 0, N);
			CHECK(memcmp(yb, yk, sizeof(float) * T * N) == 0,
				  "%s q8 GEMM with bias == bias pre-filled (%d x %d x %d)", k->name, T, K, N);
			/* the activation applied tile by tile inside the GEMM == applied
			 * to the finished rows (rows of whole 8-lane groups, so no
			 * kernel set takes a scalar tail in one case only) */
			if (N % 16 == 0)
			{
				float	   *yg = malloc(sizeof(float) * T * N);

				fb_q8_gemm_cols(k->q8_panel, k->q8_panel2, NULL, &rk, T, q, bias, k->gelu_erf, yb, 0, N);
				for (int t = 0; t < T; t++)
					k->gelu_erf(yk + (size_t) t * N, (size_t) N);
				CHECK(memcmp(yb, yk, sizeof(float) * T * N) == 0,
					  "%s q8 GEMM + GELU per tile == GELU after (%d x %d x %d)", k->name, T, K, N);
				/* the kernel that applies GELU as it stores: same bits */
				for (int i = 0; i < T * N; i++)
					yg[i] = NAN;
				fb_q8_gemm_cols(k->q8_panel, k->q8_panel2, k->q8_panel2_gelu, &rk, T, q, bias,
								k->gelu_erf, yg, 0, N);
				CHECK(memcmp(yg, yk, sizeof(float) * T * N) == 0,
					  "%s q8 GEMM + GELU in the store == GELU after (%d x %d x %d)", k->name, T, K, N);
				free(yg);
			}
			free(bias);
			free(yb);
		}
		/* a non-finite input row makes exactly that row's outputs NaN */
		if (T > 1)
		{
			x[K + K / 2] = INFINITY;
			k->q8_quantize(x, T, K, &rk);
			memcpy(yk, yf, sizeof(float) * T * N);
			fb_q8_gemm_cols(k->q8_panel, k->q8_panel2, NULL, &rk, T, q, NULL, NULL, yk, 0, N);
			CHECK(isnan(rk.scale[1]) && isnan(yk[N]) && isnan(yk[2 * N - 1]) && isfinite(yk[0]),
				  "%s inf in row 1 -> NaN outputs in row 1 only", k->name);
		}
		fb_qmat_free(q);
		free(x); free(w); free(yk); free(yr); free(yf);
		free(rk.q); free(rr.q); free(rk.scale); free(rr.scale); free(rk.zero); free(rr.zero);
	}
}

/*
 * Packed fp32 linear layers: a set's micro-kernel must equal the reference
 * bit for bit (same fused multiply-adds in the same order), the reference
 * must match the product in double, and a column range must leave the
 * other columns alone.
 */
static void
check_f32(const fb_cpu_kernels *k)
{
	static const int shapes[][3] = {
		{1, 1, 1}, {5, 7, 13}, {8, 64, 32}, {13, 33, 17}, {16, 64, 40}, {29, 768, 48},
		{9, 2051, 20}, {40, 1030, 80}, {600, 24, 50}
	};
	unsigned	st = 4242;

	if (k->f32_panel == NULL)
		return;
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++)
	{
		int			T = shapes[si][0],
					K = shapes[si][1],
					N = shapes[si][2];
		float	   *x = malloc(sizeof(float) * T * K),
				   *w = malloc(sizeof(float) * K * N),
				   *yk = malloc(sizeof(float) * T * N),
				   *yr = malloc(sizeof(float) * T * N),
				   *y0 = malloc(sizeof(float) * T * N);
		fb_pmat    *p;
		double		worst = 0;

		for (int i = 0; i < T * K; i++)
			x[i] = frand(&st, 2.0f);
		for (int i = 0; i < K * N; i++)
			w[i] = frand(&st, 0.1f);
		for (int i = 0; i < T * N; i++)
			y0[i] = frand(&st, 1.0f);	/* the GEMM accumulates */
		p = fb_pmat_new(w, K, N);
		CHECK(p != NULL && p->n_panels * FB_F32_NR >= N, "pmat %dx%d", K, N);
		memcpy(yk, y0, sizeof(float) * T * N);
		memcpy(yr, y0, sizeof(float) * T * N);
		fb_f32_gemm_cols(k->f32_panel, k->f32_mr, x, T, p, NULL, NULL, yk, 0, N);
		fb_f32_gemm_cols(fb_f32_panel_ref, FB_F32_MR, x, T, p, NULL, NULL, yr, 0, N);
		CHECK(memcmp(yk, yr, sizeof(float) * T * N) == 0, "%s f32 GEMM == reference (%d x %d x %d)",
			  k->name, T, K, N);
		/* the same bits with other row counts per call: a row's result
		 * does not depend on the tile it lands in */
		for (int mr = 1; mr <= FB_F32_MR; mr++)
		{
			float	   *ym = malloc(sizeof(float) * T * N);

			memcpy(ym, y0, sizeof(float) * T * N);
			fb_f32_gemm_cols(k->f32_panel, mr, x, T, p, NULL, NULL, ym, 0, N);
			CHECK(memcmp(ym, yr, sizeof(float) * T * N) == 0, "%s f32 GEMM, %d rows a call == reference (%d x %d x %d)",
				  k->name, mr, T, K, N);
			free(ym);
		}
		for (int t = 0; t < T; t++)
			for (int n = 0; n < N; n++)
			{
				double		d = y0[(size_t) t * N + n];
				double		mag = fabs(d);

				for (int kk = 0; kk < K; kk++)
				{
					d += (double) x[(size_t) t * K + kk] * w[(size_t) kk * N + n];
					mag += fabs((double) x[(size_t) t * K + kk] * w[(size_t) kk * N + n]);
				}
				worst = fmax(worst, fabs(d - yr[(size_t) t * N + n]) / (1e-30 + mag));
			}
		CHECK(worst <= 1e-6, "f32 reference == product in double (%d x %d x %d): %g", T, K, N, worst);
		/* with a bias: as with y pre-filled with it, y not read */
		{
			for (int i = 0; i < T * N; i++)
				yk[i] = NAN;
			fb_f32_gemm_cols(k->f32_panel, k->f32_mr, x, T, p, y0, NULL, yk, 0, N);	/* bias = y0's first row */
			memcpy(yr, y0, sizeof(float) * T * N);
			for (int t = 0; t < T; t++)
				memcpy(yr + (size_t) t * N, y0, sizeof(float) * N);
			fb_f32_gemm_cols(fb_f32_panel_ref, FB_F32_MR, x, T, p, NULL, NULL, yr, 0, N);
			CHECK(memcmp(yk, yr, sizeof(float) * T * N) == 0,
				  "%s f32 GEMM with bias == bias pre-filled (%d x %d x %d)", k->name, T, K, N);
			if (N % 16 == 0)
			{
				fb_f32_gemm_cols(k->f32_panel, k->f32_mr, x, T, p, y0, k->gelu_erf, yk, 0, N);
				for (int t = 0; t < T; t++)
					k->gelu_erf(yr + (size_t) t * N, (size_t) N);
				CHECK(memcmp(yk, yr, sizeof(float) * T * N) == 0,
					  "%s f32 GEMM + fused GELU == GELU after (%d x %d x %d)", k->name, T, K, N);
			}
			memcpy(yr, y0, sizeof(float) * T * N);
			fb_f32_gemm_cols(fb_f32_panel_ref, FB_F32_MR, x, T, p, NULL, NULL, yr, 0, N);
		}
		if (N > FB_F32_NR)
		{
			memcpy(yk, y0, sizeof(float) * T * N);
			fb_f32_gemm_cols(k->f32_panel, k->f32_mr, x, T, p, NULL, NULL, yk, FB_F32_NR, N);
			for (int t = 0; t < T; t++)
			{
				CHECK(memcmp(yk + (size_t) t * N, y0 + (size_t) t * N, sizeof(float) * FB_F32_NR) == 0,
					  "f32: columns before n0 untouched");
				CHECK(memcmp(yk + (size_t) t * N + FB_F32_NR, yr + (size_t) t * N + FB_F32_NR,
							 sizeof(float) * (N - FB_F32_NR)) == 0, "f32: column range == full GEMM");
			}
		}
		fb_pmat_free(p);
		free(x); free(w); free(yk); free(yr); free(y0);
	}
}

static int	pool_hits[8];
static int	pool_bad_n;				/* calls that saw a wrong pool size */

/* runs on the workers: only atomics here (CHECK's counters are not
 * thread-safe); main checks the totals */
static void
pool_fn(void *arg, int tid, int n)
{
	(void) arg;
	__atomic_add_fetch(&pool_hits[tid], 1, __ATOMIC_SEQ_CST);
	if (n != 3)
		__atomic_add_fetch(&pool_bad_n, 1, __ATOMIC_SEQ_CST);
}

/*
 * fb_pool_run_polled: the caller's own share is empty and the workers take
 * tens of milliseconds, as when the caller's thread claims no chunk of a
 * phase.  The caller must keep polling while it waits (a host's cancel
 * would otherwise wait for the phase to end), and stop once poll says so.
 */
typedef struct slow_job
{
	int			stop;			/* set by poll_stop_third */
	int			polls;
	int			worker_polls_seen;	/* workers that saw stop before finishing */
} slow_job;

static void
slow_workers_fn(void *arg, int tid, int n)
{
	slow_job   *j = arg;

	if (tid == 0)
		return;
	/* up to 200 ms, less once the caller's poll raised stop */
	for (int i = 0; i < 200 && !__atomic_load_n(&j->stop, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	if (__atomic_load_n(&j->stop, __ATOMIC_ACQUIRE))
		__atomic_add_fetch(&j->worker_polls_seen, 1, __ATOMIC_SEQ_CST);
}

static bool
poll_stop_third(void *arg)
{
	slow_job   *j = arg;

	if (++j->polls >= 3)
		__atomic_store_n(&j->stop, 1, __ATOMIC_RELEASE);
	return j->polls >= 3;
}

static void
check_pool_polled(void)
{
	fb_pool    *p = fb_pool_create(3);
	slow_job	j = {0};
	struct timespec t0,
				t1;
	double		ms;

	CHECK(p != NULL, "pool created");
	if (p == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fb_pool_run_polled(p, slow_workers_fn, &j, poll_stop_third, &j);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	CHECK(j.polls == 3, "the waiting caller polled until stop, then no more: %d polls", j.polls);
	CHECK(j.worker_polls_seen == 2, "both workers saw the stop raised by the caller's poll: %d", j.worker_polls_seen);
	CHECK(ms < 150, "the phase ended soon after the stop: %.1f ms (200 ms without it)", ms);
	/* without a poll function the same job runs to its end */
	j = (slow_job) {0};
	fb_pool_run_polled(p, slow_workers_fn, &j, NULL, NULL);
	CHECK(j.polls == 0 && j.worker_polls_seen == 0, "no poll function: nobody polled (%d, %d)",
		  j.polls, j.worker_polls_seen);
	fb_pool_destroy(p);
}

/* Attention in double: the exact value the bfloat16 kernel approximates. */
static void
attention_double(const float *q, const float *k, const float *v, int ld, float *out,
				 int n_query, int L, int dh)
{
	double	   *s = malloc(sizeof(double) * L);

	for (int i = 0; i < n_query; i++)
	{
		double		m = -INFINITY,
					sum = 0.0;

		for (int j = 0; j < L; j++)
		{
			s[j] = 0.0;
			for (int d = 0; d < dh; d++)
				s[j] += (double) q[(size_t) i * ld + d] * k[(size_t) j * ld + d];
			s[j] /= sqrt((double) dh);
			m = s[j] > m ? s[j] : m;
		}
		for (int j = 0; j < L; j++)
			sum += (s[j] = exp(s[j] - m));
		for (int d = 0; d < dh; d++)
		{
			double		acc = 0.0;

			for (int j = 0; j < L; j++)
				acc += s[j] * v[(size_t) j * ld + d];
			out[(size_t) i * dh + d] = (float) (acc / sum);
		}
	}
	free(s);
}

/*
 * bfloat16 attention (int8 mode): the reference within bfloat16 rounding
 * of attention in double, the AVX512-BF16 kernel equal to the reference
 * bit for bit, on odd shapes (row blocks of 1-3, key tails, odd dh, dh not
 * a multiple of 16) and on saturating scores.
 */
static void
check_attn_bf16(const fb_cpu_kernels *set)
{
	const int	shapes[][3] = {	/* n_query, L, dh */
		{1, 1, 64}, {5, 7, 64}, {128, 128, 64}, {1, 128, 64}, {33, 100, 64}, {9, 17, 31},
		{3, 40, 96}, {6, 300, 128}, {2, 512, 64}, {7, 65, 8}, {4, 64, 64}, {2, 3, 1}
	};
	const float scales[] = {1.0f, 4.0f, 40.0f};
	unsigned	st = 777;

	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++)
		for (size_t sc = 0; sc < sizeof(scales) / sizeof(scales[0]); sc++)
		{
			int			nq = shapes[si][0],
						L = shapes[si][1],
						dh = shapes[si][2];
			int			ld = 3 * dh + 5,	/* rows of a [T, 3H] qkv buffer */
						ldo = dh + 3;
			float	   *qkv = malloc(sizeof(float) * (size_t) L * ld);
			float	   *ref = malloc(sizeof(float) * (size_t) nq * ldo),
					   *ker = malloc(sizeof(float) * (size_t) nq * ldo),
					   *dbl = malloc(sizeof(float) * (size_t) nq * dh);
			void	   *scratch = fb_alloc_aligned(fb_attn_bf16_scratch(L, dh));
			double		worst = 0.0;
			int			diff = 0;

			for (int i = 0; i < L * ld; i++)
				qkv[i] = frand(&st, scales[sc]);
			fb_attn_bf16_ref(qkv, qkv + dh, qkv + 2 * dh, ld, ref, ldo, scratch, nq, L, dh);
			attention_double(qkv, qkv + dh, qkv + 2 * dh, ld, dbl, nq, L, dh);
			for (int i = 0; i < nq; i++)
				for (int d = 0; d < dh; d++)
				{
					double		e = fabs((double) ref[(size_t) i * ldo + d] - dbl[(size_t) i * dh + d]);

					if (!(e <= worst))
						worst = isnan(e) ? INFINITY : e;
				}
			/*
			 * bfloat16 keeps 8 significant bits.  Scale 1 (scores of a few
			 * units, as in trained models): measured worst 0.0019, bound
			 * 0.005.  Scale 4 (scores spread over +-15, softmax close to
			 * one-hot, so score rounding moves whole weights): worst 0.069,
			 * bound 0.03 x scale.  Scale 40 (scores in the thousands, the
			 * ranking itself changes under rounding): finite and within the
			 * range of v only.
			 */
			if (scales[sc] <= 1.0f)
				CHECK(worst <= 0.005, "attn bf16 ref vs double, %dx%dx%d scale %g: %g",
					  nq, L, dh, scales[sc], worst);
			else if (scales[sc] <= 4.0f)
				CHECK(worst <= 0.03 * scales[sc], "attn bf16 ref vs double, %dx%dx%d scale %g: %g",
					  nq, L, dh, scales[sc], worst);
			else
				CHECK(worst <= 2.0 * scales[sc], "attn bf16 ref finite and in range, %dx%dx%d: %g",
					  nq, L, dh, worst);
			if (set->attn_bf16 != NULL)
			{
				set->attn_bf16(qkv, qkv + dh, qkv + 2 * dh, ld, ker, ldo, scratch, nq, L, dh);
				for (int i = 0; i < nq; i++)
					for (int d = 0; d < dh; d++)
						diff += !(ker[(size_t) i * ldo + d] == ref[(size_t) i * ldo + d]);
				CHECK(diff == 0, "%s attn bf16 = reference bit for bit, %dx%dx%d scale %g: %d differ",
					  set->name, nq, L, dh, scales[sc], diff);
			}
			fb_free_aligned(scratch);
			free(qkv);
			free(ref);
			free(ker);
			free(dbl);
		}
	/* bfloat16 rounding itself: nearest even, denormals to zero, NaN quiet */
	CHECK(fb_bf16_round(1.0f) == 0x3f80, "bf16(1)");
	CHECK(fb_bf16_round(1.00390625f) == 0x3f80, "bf16 tie to even (down)");
	CHECK(fb_bf16_round(1.01171875f) == 0x3f82, "bf16 tie to even (up)");
	CHECK(fb_bf16_round(1e-40f) == 0 && fb_bf16_round(-1e-40f) == 0x8000, "bf16 denormal to signed zero");
	CHECK((fb_bf16_round(NAN) & 0x7fc0) == 0x7fc0, "bf16 NaN stays NaN");
	CHECK(fb_bf16_round(INFINITY) == 0x7f80, "bf16 inf");
}

int
main(void)
{
	const char *names[3] = {"generic", "avx2", "avx512"};

	for (int i = 0; i < 3; i++)
	{
		const fb_cpu_kernels *set = fb_cpu_kernels_by_name(names[i]);

		if (set == NULL)
		{
			printf("SKIP: kernel set %s not available on this CPU\n", names[i]);
			continue;
		}
		check_set(set);
		check_q8(set);
		check_f32(set);
		check_attn_bf16(set);
		if (set->attn_bf16 == NULL)
			printf("note: kernel set %s has no bfloat16 attention (int8 attention runs in fp32)\n", set->name);
	}
	/* the pool runs every thread once per job, many times over */
	{
		fb_pool    *p = fb_pool_create(3);

		CHECK(p != NULL, "pool created");
		for (int r = 0; r < 1000; r++)
			fb_pool_run(p, pool_fn, NULL);
		CHECK(pool_bad_n == 0, "every call saw the pool size 3 (%d did not)", pool_bad_n);
		CHECK(pool_hits[0] == 1000 && pool_hits[1] == 1000 && pool_hits[2] == 1000,
			  "every thread ran every job: %d %d %d", pool_hits[0], pool_hits[1], pool_hits[2]);
		fb_pool_destroy(p);
	}
	check_pool_polled();
	printf("kernels in use: %s\n", fb_cpu_kernel_name());
	return fbt_finish("kernels");
}
