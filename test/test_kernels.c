/*
 * test_kernels.c — every vectorised kernel against the plain-C reference
 * on random and extreme inputs (tolerance: absolute + relative x |ref|).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fb_kernels.h"
#include "fb_ops.h"
#include "fb_pool.h"
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
				fb_cpu_layernorm(b, g, beta, 3, n, 1e-12f);
				memcpy(c, a, sizeof(float) * n * 3);
				k->layernorm(c, g, beta, 3, n, 1e-12f);
				if (n > 1)
					CHECK(max_rel_err(c, b, (size_t) n * 3, 2e-4, 1e-4) <= 1.0, "%s layernorm n=%d scale=%g", k->name, n, scales[sc]);
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

static int	pool_hits[8];

static void
pool_fn(void *arg, int tid, int n)
{
	(void) arg;
	__atomic_add_fetch(&pool_hits[tid], 1, __ATOMIC_SEQ_CST);
	CHECK(n == 3, "pool size %d", n);
}

int
main(void)
{
	const fb_cpu_kernels *sets[2] = {fb_cpu_kernels_by_name("generic"), fb_cpu_kernels_by_name("avx2")};

	for (int i = 0; i < 2; i++)
	{
		if (sets[i] == NULL)
		{
			printf("kernel set %d not available on this CPU: skipped\n", i);
			continue;
		}
		check_set(sets[i]);
	}
	/* the pool runs every thread once per job, many times over */
	{
		fb_pool    *p = fb_pool_create(3);

		CHECK(p != NULL, "pool created");
		for (int r = 0; r < 1000; r++)
			fb_pool_run(p, pool_fn, NULL);
		CHECK(pool_hits[0] == 1000 && pool_hits[1] == 1000 && pool_hits[2] == 1000,
			  "every thread ran every job: %d %d %d", pool_hits[0], pool_hits[1], pool_hits[2]);
		fb_pool_destroy(p);
	}
	printf("kernels in use: %s\n", fb_cpu_kernel_name());
	return fbt_finish("kernels");
}
