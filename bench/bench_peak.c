/*
 * bench_peak.c — the arithmetic peaks of this CPU, measured, and the
 * BERT-base ceilings they imply.
 *
 *   bench_peak [--threads N] [--seconds S]
 *
 * Each kernel is a loop of independent multiply-accumulate instructions
 * on registers only (12 accumulators, more than latency x issue width on
 * current x86 cores), so it runs at the instruction's throughput and never
 * touches memory: an upper bound no real kernel reaches.  Measured on 1
 * thread and on N threads at once (one per core is assumed: N = the
 * engine's thread count), best of 3.  Prints one JSON object with, per
 * kernel, the multiply-adds per second of 1 thread and of all N threads.
 * bench/run.py turns these into each model's ceiling (tokens/s with every
 * multiply-add at the peak and everything else free) and prints every
 * finbert figure as a share of it.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <immintrin.h>

#include "bench_util.h"

#define NACC 12
#define UNROLL_ITERS 4096		/* instruction groups between clock reads */

typedef double (*peak_fn) (double seconds);	/* returns instructions / s */

#define REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/*
 * One peak loop: NACC independent accumulators (PEAK_DECL_<VEC>, VEC being
 * the operands' type), each updated by PEAK_STEP_<STEP> UNROLL_ITERS times
 * between clock reads.  The empty asm
 * statements make the compiler treat the multiplicand as changing every
 * round (so nothing is hoisted or folded) and every accumulator as used at
 * the end (so nothing is removed).
 */
#define PEAK_LOOP(NAME, TARGET, VEC, A, B, STEP) \
__attribute__((target(TARGET))) static double \
NAME(double seconds) \
{ \
	VEC			a = (A), \
				b = (B); \
	double		t0 = bench_now(), \
				t; \
	long		n = 0; \
	REP12(PEAK_DECL_##VEC) \
	do \
	{ \
		for (int it = 0; it < UNROLL_ITERS; it++) \
		{ \
			REP12(PEAK_STEP_##STEP) \
			__asm__ volatile ("" : "+v"(a)); \
		} \
		n += UNROLL_ITERS; \
		t = bench_now(); \
	} while (t - t0 < seconds); \
	REP12(PEAK_USE) \
	return n * (double) NACC / (t - t0); \
}

#define PEAK_DECL___m512(i) __m512 c##i = _mm512_set1_ps((float) (i));
#define PEAK_DECL___m256(i) __m256 c##i = _mm256_set1_ps((float) (i));
#define PEAK_DECL___m512i(i) __m512i c##i = _mm512_set1_epi32(i);
#define PEAK_DECL___m512bh(i) PEAK_DECL___m512(i)	/* fp32 sums of bf16 pairs */
#define PEAK_USE(i) __asm__ volatile ("" : : "v"(c##i));

#define PEAK_STEP_fma512(i) c##i = _mm512_fmadd_ps(a, b, c##i);
#define PEAK_STEP_fma256(i) c##i = _mm256_fmadd_ps(a, b, c##i);
#define PEAK_STEP_vnni512(i) c##i = _mm512_dpbusd_epi32(c##i, a, b);
#define PEAK_STEP_bf16_512(i) c##i = _mm512_dpbf16_ps(c##i, a, b);

PEAK_LOOP(peak_fma512, "avx512f,fma", __m512, _mm512_set1_ps(1e-7f), _mm512_set1_ps(0.999f), fma512)
PEAK_LOOP(peak_fma256, "avx2,fma", __m256, _mm256_set1_ps(1e-7f), _mm256_set1_ps(0.999f), fma256)
PEAK_LOOP(peak_vnni512, "avx512f,avx512bw,avx512vnni", __m512i, _mm512_set1_epi8(1), _mm512_set1_epi8(1),
		  vnni512)
/* bfloat16 0x3380 ~ 6e-8, 0x3f80 = 1.0 */
PEAK_LOOP(peak_bf16_512, "avx512f,avx512bw,avx512bf16", __m512bh,
		  (__m512bh) _mm512_set1_epi16(0x3380), (__m512bh) _mm512_set1_epi16(0x3f80), bf16_512)

typedef struct peak_kernel
{
	const char *name;
	const char *cpu_feature;	/* __builtin_cpu_supports name */
	peak_fn		fn;
	double		macs_per_instr;	/* multiply-adds per instruction */
} peak_kernel;

static const peak_kernel kernels[] = {
	{"fp32_fma_zmm", "avx512f", peak_fma512, 16},
	{"fp32_fma_ymm", "fma", peak_fma256, 8},
	{"int8_vpdpbusd_zmm", "avx512vnni", peak_vnni512, 64},
	{"bf16_vdpbf16ps_zmm", "avx512bf16", peak_bf16_512, 32},
};

typedef struct worker
{
	pthread_t	th;
	peak_fn		fn;
	double		seconds;
	double		rate;
	pthread_barrier_t *start;
} worker;

static void *
worker_main(void *arg)
{
	worker	   *w = arg;

	pthread_barrier_wait(w->start);
	w->rate = w->fn(w->seconds);
	return NULL;
}

/* Sum of the instruction rates of n threads running fn together. */
static double
rate_threads(peak_fn fn, int n, double seconds)
{
	worker	   *w = calloc((size_t) n, sizeof(worker));
	pthread_barrier_t start;
	double		sum = 0.0;

	if (w == NULL)
	{
		fprintf(stderr, "bench_peak: out of memory\n");
		exit(1);
	}
	pthread_barrier_init(&start, NULL, (unsigned) n);
	for (int i = 0; i < n; i++)
	{
		w[i] = (worker)
		{
			.fn = fn,.seconds = seconds,.start = &start
		};
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
		{
			fprintf(stderr, "bench_peak: cannot start thread %d\n", i);
			exit(1);
		}
	}
	for (int i = 0; i < n; i++)
	{
		pthread_join(w[i].th, NULL);
		sum += w[i].rate;
	}
	pthread_barrier_destroy(&start);
	free(w);
	return sum;
}

static bool
cpu_has(const char *feature)
{
	__builtin_cpu_init();
	if (strcmp(feature, "avx512f") == 0)
		return __builtin_cpu_supports("avx512f");
	if (strcmp(feature, "fma") == 0)
		return __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
	if (strcmp(feature, "avx512vnni") == 0)
		return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
	if (strcmp(feature, "avx512bf16") == 0)
		return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
	return false;
}

int
main(int argc, char **argv)
{
	int			threads = 2;
	double		seconds = 1.0;
	double		gmacs[4][2] = {{0}};	/* [kernel][1 thread, N threads], G MAC/s */

	for (int i = 1; i + 1 < argc; i += 2)
	{
		if (strcmp(argv[i], "--threads") == 0)
			threads = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--seconds") == 0)
			seconds = atof(argv[i + 1]);
		else
		{
			fprintf(stderr, "usage: bench_peak [--threads N] [--seconds S]\n");
			return 2;
		}
	}
	if (threads < 1 || threads > 1024 || seconds <= 0.0)
	{
		fprintf(stderr, "bench_peak: bad --threads or --seconds\n");
		return 2;
	}

	printf("{\"threads\":%d", threads);
	for (int k = 0; k < 4; k++)
	{
		const peak_kernel *pk = &kernels[k];

		if (!cpu_has(pk->cpu_feature))
		{
			printf(",\"%s\":null", pk->name);
			continue;
		}
		/* best of 3: other jobs on a shared host only ever slow it down */
		for (int r = 0; r < 3; r++)
		{
			double		one = rate_threads(pk->fn, 1, seconds / 3) * pk->macs_per_instr * 1e-9;
			double		all = rate_threads(pk->fn, threads, seconds / 3) * pk->macs_per_instr * 1e-9;

			if (one > gmacs[k][0])
				gmacs[k][0] = one;
			if (all > gmacs[k][1])
				gmacs[k][1] = all;
		}
		printf(",\"%s\":{\"gmac_per_s_1thread\":%.1f,\"gmac_per_s\":%.1f}", pk->name,
			   gmacs[k][0], gmacs[k][1]);
	}

	printf("}\n");
	return 0;
}
