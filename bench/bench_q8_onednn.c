/*
 * bench_q8_onednn.c — finbert's int8 GEMM against oneDNN's
 * (dnnl_gemm_u8s8s32, Debian libdnnl-dev) on BERT-base's four linear-layer
 * shapes, one thread each, same uint8 activations and int8 weights.
 * oneDNN returns int32 sums; finbert's kernels also dequantise into fp32
 * and add a bias (zeros here), as in the model.  Reports G
 * multiply-adds/s.
 *
 *   make bench-onednn && OMP_NUM_THREADS=1 build/bench_q8_onednn [T]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

#include "cpu/fb_kernels.h"
#include "cpu/fb_q8.h"
#include "bench_util.h"

int
main(int argc, char **argv)
{
	static const int shapes[][3] = {{768, 2304, 0}, {768, 768, 0}, {768, 3072, 0}, {3072, 768, 0}};
	const char *names[] = {"QKV 768x2304", "attn-out 768x768", "FFN-in 768x3072", "FFN-out 3072x768"};
	int			T = argc > 1 ? atoi(argv[1]) : 1024;
	const fb_cpu_kernels *k = fb_cpu_kernels_get();

	printf("finbert kernel set %s; T = %d rows; one thread\n", k->name, T);
	printf("%-18s %12s %12s %8s\n", "shape (K x N)", "finbert", "oneDNN", "ratio");
	for (int si = 0; si < 4; si++)
	{
		int			K = shapes[si][0],
					N = shapes[si][1];
		float	   *x = malloc(sizeof(float) * T * K),
				   *w = malloc(sizeof(float) * K * N),
				   *y = calloc((size_t) T * N, sizeof(float)),
				   *zeros = calloc((size_t) N, sizeof(float));
		int8_t	   *wq = malloc((size_t) K * N);
		int32_t    *c = calloc((size_t) T * N, sizeof(int32_t));
		fb_qmat    *q;
		fb_q8_rows	r;
		double		t0,
					tf = 1e30,
					td = 1e30;
		int32_t		co = 0;

		for (long i = 0; i < (long) T * K; i++)
			x[i] = (float) ((i * 7919) % 1000) / 500.0f - 1.0f;
		for (long i = 0; i < (long) K * N; i++)
		{
			w[i] = (float) ((i * 104729) % 2000) / 20000.0f - 0.05f;
			wq[i] = (int8_t) ((i * 104729) % 255 - 127);
		}
		q = fb_qmat_new(w, K, N);
		r.Kp = q->Kp;
		r.q = malloc((size_t) T * q->Kp);
		r.scale = malloc(sizeof(float) * T);
		r.zero = malloc(sizeof(int32_t) * T);
		k->q8_quantize(x, T, K, &r);
		for (int rep = 0; rep < 5; rep++)
		{
			t0 = bench_now();
			fb_q8_gemm_cols(k->q8_panel, k->q8_panel2, NULL, &r, T, q, zeros, NULL, y, 0, N);
			t0 = bench_now() - t0;
			tf = t0 < tf ? t0 : tf;
			t0 = bench_now();
			if (dnnl_gemm_u8s8s32('N', 'N', 'F', T, N, K, 1.0f, r.q, r.Kp, 0, wq, N, 0,
								  0.0f, c, N, &co) != dnnl_success)
			{
				fprintf(stderr, "dnnl_gemm_u8s8s32 failed\n");
				return 1;
			}
			t0 = bench_now() - t0;
			td = t0 < td ? t0 : td;
		}
		printf("%-18s %9.1f G/s %9.1f G/s %7.2fx\n", names[si],
			   (double) T * K * N / tf / 1e9, (double) T * K * N / td / 1e9, td / tf);
		fb_qmat_free(q);
		free(x); free(w); free(y); free(zeros); free(wq); free(c); free(r.q); free(r.scale); free(r.zero);
	}
	return 0;
}
