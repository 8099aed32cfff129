/*
 * bench_attention.c — one attention head, fp32 (OpenBLAS, what fp32 mode
 * runs) against the bfloat16 vdpbf16ps kernel (what int8 mode runs where
 * the CPU has AVX512-BF16), one thread, BERT-base geometry (H = 768, 12
 * heads of 64), sequences of L tokens.  Two layouts: "warm" reuses one
 * sequence's rows (in cache), "cold" walks 32 sequences' rows in the order
 * the forward pass does (the [T, 3H] qkv matrix no longer in cache, as
 * after the QKV projection of a 4,096-token batch).  Reports microseconds
 * per head and G multiply-adds/s (2 L^2 dh per head).
 *
 *   make bench-attention && build/bench_attention [L]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cpu/fb_attn.h"
#include "cpu/fb_kernels.h"
#include "cpu/fb_ops.h"
#include "bench_util.h"

void		openblas_set_num_threads(int);

/* microseconds per head, over every head of n_seq sequences */
static double
run(const fb_cpu_kernels *k, bool bf16, const float *qkv, float *out, void *scratch,
	int n_seq, int L, int H, int n_heads)
{
	int			dh = H / n_heads,
				ld = 3 * H;
	int			reps = 0;
	double		t0 = bench_now(),
				t;

	do
	{
		for (int it = 0; it < n_seq * n_heads; it++)
		{
			int			i = it / n_heads,
						h = it % n_heads;
			const float *base = qkv + (size_t) i * L * ld + (size_t) h * dh;
			float	   *o = out + (size_t) i * L * H + (size_t) h * dh;

			if (bf16)
				k->attn_bf16(base, base + H, base + 2 * H, ld, o, H, scratch, L, L, dh);
			else
				fb_cpu_attention_head(base, base + H, base + 2 * H, ld, o, H, scratch, L, L, dh,
									  k->softmax);
		}
		reps++;
		t = bench_now() - t0;
	} while (t < 2.0);
	return t / ((double) reps * n_seq * n_heads) * 1e6;
}

int
main(int argc, char **argv)
{
	int			L = argc > 1 ? atoi(argv[1]) : 128;
	int			H = 768,
				n_heads = 12,
				n_seq = 32;
	const fb_cpu_kernels *k = fb_cpu_kernels_get();
	size_t		rows = (size_t) n_seq * L;
	float	   *qkv = fb_alloc_aligned(sizeof(float) * rows * 3 * H),
			   *out = fb_alloc_aligned(sizeof(float) * rows * H);
	size_t		scratch_bytes = fb_attn_bf16_scratch(L, H / n_heads);
	void	   *scratch;
	double		mac = 2.0 * L * L * (H / n_heads);
	unsigned	st = 1;

	if (L < 1 || L > 512)
	{
		fprintf(stderr, "usage: bench_attention [L (1..512)]\n");
		return 2;
	}
	if (scratch_bytes < sizeof(float) * L * L)
		scratch_bytes = sizeof(float) * L * L;
	scratch = fb_alloc_aligned(scratch_bytes);
	openblas_set_num_threads(1);
	for (size_t i = 0; i < rows * 3 * H; i++)
	{
		st = st * 1664525u + 1013904223u;
		qkv[i] = ((float) (st >> 8) / 16777216.0f - 0.5f) * 2.0f;
	}
	printf("kernel set %s; L = %d, 12 heads of 64; one thread; us per head (G MAC/s)\n", k->name, L);
	for (int cold = 0; cold < 2; cold++)
	{
		int			ns = cold ? n_seq : 1;
		double		f32 = run(k, false, qkv, out, scratch, ns, L, H, n_heads);

		printf("%-5s fp32 (OpenBLAS) %8.1f (%5.1f)", cold ? "cold" : "warm", f32, mac / f32 / 1e3);
		if (k->attn_bf16 != NULL)
		{
			double		bf = run(k, true, qkv, out, scratch, ns, L, H, n_heads);

			printf("   bf16 (vdpbf16ps) %8.1f (%5.1f)   x%.2f", bf, mac / bf / 1e3, f32 / bf);
		}
		else
			printf("   bf16: this CPU has no AVX512-BF16");
		printf("\n");
	}
	return 0;
}
