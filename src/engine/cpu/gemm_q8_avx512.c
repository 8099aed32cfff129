/*
 * gemm_q8_avx512.c — AVX-512 VNNI kernels of the int8 linear layers
 * (fb_q8.h).
 *
 * A panel's 16 columns x 4 input channels are 64 bytes, exactly one zmm
 * register in the order vpdpbusd wants (4 consecutive bytes per 32-bit
 * lane): per group of 4 channels the micro-kernel loads the weights once
 * and, for each of up to FB_Q8_MR rows, multiplies them with the row's 4
 * activation bytes broadcast to every lane (uint8 x int8, 4 products
 * summed into an int32 lane: one instruction where AVX2 needs three).
 * The 7-bit weights of the shared packing are kept, so the integer sums,
 * the dequantisation (one fused multiply-add, as in the reference) and
 * therefore the outputs are bit-identical to fb_q8_panel_ref and the AVX2
 * kernel on every CPU.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <immintrin.h>

#include "fb_gelu512.h"
#include "fb_q8.h"

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512vnni,fma")))
#define INLINE __attribute__((always_inline)) inline

AVX512 void
fb_avx512_q8_quantize(const float *x, int T, int K, const fb_q8_rows *r)
{
	const __m512i v0 = _mm512_setzero_si512();
	const __m512i v255 = _mm512_set1_epi32(255);

	for (int t = 0; t < T; t++)
	{
		const float *xr = x + (size_t) t * K;
		uint8_t    *qr = r->q + (size_t) t * r->Kp;
		__m512		vmin = _mm512_setzero_ps(),
					vmax = _mm512_setzero_ps();
		__mmask16	bad = 0;
		float		inv;
		int			k;

		for (k = 0; k < K; k += 16)
		{
			__mmask16	m = K - k >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << (K - k)) - 1u);
			__m512		v = _mm512_maskz_loadu_ps(m, xr + k);

			vmin = _mm512_min_ps(vmin, v);
			vmax = _mm512_max_ps(vmax, v);
			/* |v| >= inf or NaN */
			bad |= _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(INFINITY), _CMP_NLT_UQ);
		}
		inv = fb_q8_row_scale(r, t, _mm512_reduce_min_ps(vmin), _mm512_reduce_max_ps(vmax), bad != 0);
		if (inv == 0.0f)
			continue;
		{
			const __m512 vinv = _mm512_set1_ps(inv);
			const __m512i vz = _mm512_set1_epi32(r->zero[t]);

			for (k = 0; k + 16 <= K; k += 16)
			{
				__m512i		q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + k), vinv)), vz);

				q = _mm512_min_epi32(_mm512_max_epi32(q, v0), v255);
				_mm_storeu_si128((__m128i *) (qr + k), _mm512_cvtepi32_epi8(q));
			}
			fb_q8_row_tail(xr, qr, k, K, r->Kp, inv, r->zero[t]);
		}
	}
}

/* Dequantises one row's 16 sums into y (first ncols columns), adding to y
 * or, with bias not NULL, to the bias (y then not read); with gelu (a
 * constant once inlined), GELU of the result is stored instead. */
AVX512 static INLINE void
store_row_act(__m512i acc, float sx, int32_t zero, const float *sw,
			  const int32_t *colsum, const float *bias, float *y, int ncols,
			  const bool gelu)
{
	const __mmask16 cols = ncols >= FB_Q8_NR ? (__mmask16) 0xffff : (__mmask16) ((1u << ncols) - 1u);
	__m512i		s = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(zero),
															 _mm512_loadu_si512(colsum)));
	__m512		scale = _mm512_mul_ps(_mm512_set1_ps(sx), _mm512_loadu_ps(sw));
	__m512		base = _mm512_maskz_loadu_ps(cols, bias != NULL ? bias : y);

	__m512		v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, base);

	_mm512_mask_storeu_ps(y, cols, gelu ? fb_gelu_erf512(v) : v);
}

AVX512 static INLINE void
store_row(__m512i acc, float sx, int32_t zero, const float *sw,
		  const int32_t *colsum, const float *bias, float *y, int ncols)
{
	store_row_act(acc, sx, zero, sw, colsum, bias, y, ncols, false);
}

/* The micro-kernel for a constant number of rows MR (inlined per MR). */
AVX512 static INLINE void
panel_rows(const uint8_t *q, int ldq, int kc, const float *sx,
		   const int32_t *zero, const int8_t *panel, const float *sw,
		   const int32_t *colsum, const float *bias, float *y, size_t ldy,
		   int ncols, const int MR)
{
	__m512i		acc[FB_Q8_MR];

	/* fully unrolled, so that acc[] lives in registers */
#pragma GCC unroll 8
	for (int r = 0; r < MR; r++)
		acc[r] = _mm512_setzero_si512();
	for (int i = 0; i < kc; i += 4)
	{
		__m512i		b = _mm512_loadu_si512(panel + (size_t) i * FB_Q8_NR);

#pragma GCC unroll 8
		for (int r = 0; r < MR; r++)
		{
			int32_t		a;

			memcpy(&a, q + (size_t) r * ldq + i, sizeof(a));
			acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_set1_epi32(a), b);
		}
	}
#pragma GCC unroll 8
	for (int r = 0; r < MR; r++)
		store_row(acc[r], sx[r], zero[r], sw, colsum, bias, y + (size_t) r * ldy, ncols);
}

#define PANEL(MR) \
AVX512 static void \
q8_panel_##MR(const uint8_t *q, int ldq, int kc, const float *sx, \
			  const int32_t *zero, const int8_t *panel, const float *sw, \
			  const int32_t *colsum, const float *bias, float *y, size_t ldy, \
			  int ncols) \
{ \
	panel_rows(q, ldq, kc, sx, zero, panel, sw, colsum, bias, y, ldy, ncols, MR); \
}

PANEL(1)
PANEL(2)
PANEL(3)
PANEL(4)
PANEL(5)
PANEL(6)
PANEL(7)

/*
 * The full 8-row kernel with its loop in assembly: GCC keeps the eight
 * accumulators in registers but copies each of them once per iteration
 * (the intrinsic's accumulator is also its result), about 10 % of the
 * kernel's time.  Same instructions and arithmetic as panel_rows(8).
 */
AVX512 static void
q8_panel_8(const uint8_t *q, int ldq, int kc, const float *sx,
		   const int32_t *zero, const int8_t *panel, const float *sw,
		   const int32_t *colsum, const float *bias, float *y, size_t ldy,
		   int ncols)
{
	__m512i		c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0,
				c4 = c0, c5 = c0, c6 = c0, c7 = c0;
	const uint8_t *q0 = q,
			   *q4 = q + 4 * (size_t) ldq;
	size_t		ld = (size_t) ldq,
				ld3 = 3 * (size_t) ldq;
	const int8_t *b = panel;
	size_t		i = 0,
				end = (size_t) kc;

	/* rows 0-3 at q0 + i + {0, 1, 2, 3} ld, rows 4-7 at q4 + the same */
	if (kc > 0)
		__asm__ volatile(
			"1:\n\t"
			"vmovdqu64 (%[b]), %%zmm31\n\t"
			"lea (%[q0],%[i]), %%rax\n\t"
			"lea (%[q4],%[i]), %%rdx\n\t"
			"vpbroadcastd (%%rax), %%zmm30\n\t"
			"vpdpbusd %%zmm31, %%zmm30, %[c0]\n\t"
			"vpbroadcastd (%%rax,%[ld]), %%zmm29\n\t"
			"vpdpbusd %%zmm31, %%zmm29, %[c1]\n\t"
			"vpbroadcastd (%%rax,%[ld],2), %%zmm28\n\t"
			"vpdpbusd %%zmm31, %%zmm28, %[c2]\n\t"
			"vpbroadcastd (%%rax,%[ld3]), %%zmm27\n\t"
			"vpdpbusd %%zmm31, %%zmm27, %[c3]\n\t"
			"vpbroadcastd (%%rdx), %%zmm26\n\t"
			"vpdpbusd %%zmm31, %%zmm26, %[c4]\n\t"
			"vpbroadcastd (%%rdx,%[ld]), %%zmm25\n\t"
			"vpdpbusd %%zmm31, %%zmm25, %[c5]\n\t"
			"vpbroadcastd (%%rdx,%[ld],2), %%zmm24\n\t"
			"vpdpbusd %%zmm31, %%zmm24, %[c6]\n\t"
			"vpbroadcastd (%%rdx,%[ld3]), %%zmm23\n\t"
			"vpdpbusd %%zmm31, %%zmm23, %[c7]\n\t"
			"add $64, %[b]\n\t"
			"add $4, %[i]\n\t"
			"cmp %[end], %[i]\n\t"
			"jb 1b\n\t"
			: [c0] "+v"(c0), [c1] "+v"(c1), [c2] "+v"(c2), [c3] "+v"(c3),
			  [c4] "+v"(c4), [c5] "+v"(c5), [c6] "+v"(c6), [c7] "+v"(c7),
			  [b] "+r"(b), [i] "+r"(i)
			: [q0] "r"(q0), [q4] "r"(q4), [ld] "r"(ld), [ld3] "r"(ld3), [end] "r"(end)
			: "rax", "rdx", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",
			  "xmm29", "xmm30", "xmm31", "cc", "memory");
	{
		__m512i		acc[8] = {c0, c1, c2, c3, c4, c5, c6, c7};

#pragma GCC unroll 8
		for (int r = 0; r < 8; r++)
			store_row(acc[r], sx[r], zero[r], sw, colsum, bias, y + (size_t) r * ldy, ncols);
	}
}

AVX512 void
fb_avx512_q8_panel(const uint8_t *q, int ldq, int kc, const float *sx,
				   const int32_t *zero, int mr, const int8_t *panel,
				   const float *sw, const int32_t *colsum, const float *bias,
				   float *y, size_t ldy, int ncols)
{
	static void (*const by_rows[]) (const uint8_t *, int, int, const float *,
									const int32_t *, const int8_t *,
									const float *, const int32_t *,
									const float *, float *, size_t, int) = {
		q8_panel_1, q8_panel_1, q8_panel_2, q8_panel_3, q8_panel_4,
		q8_panel_5, q8_panel_6, q8_panel_7, q8_panel_8
	};

	by_rows[mr](q, ldq, kc, sx, zero, panel, sw, colsum, bias, y, ldy, ncols);
}

/*
 * 8 rows x 2 panels (32 columns): each broadcast activation word feeds two
 * vpdpbusd, halving the broadcasts per product; 16 accumulators, two
 * weight and eight activation registers fit in the 32 zmm registers.
 */
/* prefetch distance along the activation rows (bytes): four cache lines
 * ahead of the broadcasts; measured best of 128/256/512 */
#define PFD "256"

AVX512 static INLINE void
panel2_body(const uint8_t *q, int ldq, int kc, const float *sx,
			const int32_t *zero, const int8_t *panel, size_t panel_stride,
			const float *sw, const int32_t *colsum, const float *bias,
			float *y, size_t ldy, int ncols, const bool gelu)
{
	/* sums[r] (first panel) and sums[8 + r] (second panel) of row r; the
	 * accumulators live in zmm0-15 for the whole loop (more asm operands
	 * than GCC allows otherwise) and are stored here at the end */
	__m512i		sums[16];
	const uint8_t *q0 = q,
			   *q4 = q + 4 * (size_t) ldq;
	size_t		ld = (size_t) ldq,
				ld3 = 3 * (size_t) ldq;
	const int8_t *w = panel;
	size_t		i = 0,
				end = (size_t) kc;

	/* the outputs' lines (rows ldy apart, often beyond L2 for wide
	 * layers) arrive while the loop runs instead of stalling the stores */
	for (int r = 0; r < 8; r++)
	{
		_mm_prefetch((const char *) (y + (size_t) r * ldy), _MM_HINT_T0);
		_mm_prefetch((const char *) (y + (size_t) r * ldy + FB_Q8_NR), _MM_HINT_T0);
	}
#define ROW(addr, tmp, ca, cb) \
	"vpbroadcastd " addr ", %%" tmp "\n\t" \
	"vpdpbusd %%zmm31, %%" tmp ", %%" ca "\n\t" \
	"vpdpbusd %%zmm30, %%" tmp ", %%" cb "\n\t"
#define ZERO(r) "vpxord %%" r ", %%" r ", %%" r "\n\t"
#define SAVE(r, off) "vmovdqu64 %%" r ", " off "(%[out])\n\t"
	__asm__ volatile(
		ZERO("zmm0") ZERO("zmm1") ZERO("zmm2") ZERO("zmm3")
		ZERO("zmm4") ZERO("zmm5") ZERO("zmm6") ZERO("zmm7")
		ZERO("zmm8") ZERO("zmm9") ZERO("zmm10") ZERO("zmm11")
		ZERO("zmm12") ZERO("zmm13") ZERO("zmm14") ZERO("zmm15")
		"cmp %[end], %[i]\n\t"
		"jae 2f\n\t"
		"1:\n\t"
		"vmovdqu64 (%[w]), %%zmm31\n\t"
		"vmovdqu64 (%[w],%[ps]), %%zmm30\n\t"
		"lea (%[q0],%[i]), %%rax\n\t"
		"lea (%[q4],%[i]), %%rdx\n\t"
		"prefetcht0 " PFD "(%%rax)\n\t"
		"prefetcht0 " PFD "(%%rax,%[ld])\n\t"
		"prefetcht0 " PFD "(%%rax,%[ld],2)\n\t"
		"prefetcht0 " PFD "(%%rax,%[ld3])\n\t"
		"prefetcht0 " PFD "(%%rdx)\n\t"
		"prefetcht0 " PFD "(%%rdx,%[ld])\n\t"
		"prefetcht0 " PFD "(%%rdx,%[ld],2)\n\t"
		"prefetcht0 " PFD "(%%rdx,%[ld3])\n\t"
		ROW("(%%rax)", "zmm29", "zmm0", "zmm8")
		ROW("(%%rax,%[ld])", "zmm28", "zmm1", "zmm9")
		ROW("(%%rax,%[ld],2)", "zmm27", "zmm2", "zmm10")
		ROW("(%%rax,%[ld3])", "zmm26", "zmm3", "zmm11")
		ROW("(%%rdx)", "zmm25", "zmm4", "zmm12")
		ROW("(%%rdx,%[ld])", "zmm24", "zmm5", "zmm13")
		ROW("(%%rdx,%[ld],2)", "zmm23", "zmm6", "zmm14")
		ROW("(%%rdx,%[ld3])", "zmm22", "zmm7", "zmm15")
		"add $64, %[w]\n\t"
		"add $4, %[i]\n\t"
		"cmp %[end], %[i]\n\t"
		"jb 1b\n\t"
		"2:\n\t"
		SAVE("zmm0", "0") SAVE("zmm1", "64") SAVE("zmm2", "128") SAVE("zmm3", "192")
		SAVE("zmm4", "256") SAVE("zmm5", "320") SAVE("zmm6", "384") SAVE("zmm7", "448")
		SAVE("zmm8", "512") SAVE("zmm9", "576") SAVE("zmm10", "640") SAVE("zmm11", "704")
		SAVE("zmm12", "768") SAVE("zmm13", "832") SAVE("zmm14", "896") SAVE("zmm15", "960")
		: [w] "+r"(w), [i] "+r"(i)
		: [q0] "r"(q0), [q4] "r"(q4), [ld] "r"(ld), [ld3] "r"(ld3), [end] "r"(end),
		  [ps] "r"(panel_stride), [out] "r"(sums)
		: "rax", "rdx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
		  "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29",
		  "xmm30", "xmm31", "cc", "memory");
#undef ROW
#undef ZERO
#undef SAVE
	for (int r = 0; r < 8; r++)
	{
		store_row_act(sums[r], sx[r], zero[r], sw, colsum, bias, y + (size_t) r * ldy, FB_Q8_NR, gelu);
		store_row_act(sums[8 + r], sx[r], zero[r], sw + FB_Q8_NR, colsum + FB_Q8_NR,
					  bias != NULL ? bias + FB_Q8_NR : NULL,
					  y + (size_t) r * ldy + FB_Q8_NR, ncols - FB_Q8_NR, gelu);
	}
}

AVX512 void
fb_avx512_q8_panel2(const uint8_t *q, int ldq, int kc, const float *sx,
					const int32_t *zero, const int8_t *panel, size_t panel_stride,
					const float *sw, const int32_t *colsum, const float *bias,
					float *y, size_t ldy, int ncols)
{
	panel2_body(q, ldq, kc, sx, zero, panel, panel_stride, sw, colsum, bias, y, ldy, ncols, false);
}

/*
 * The same, GELU (erf) applied to the results as they are stored: for the
 * last chunk of the feed-forward GEMM, the activation costs no extra pass
 * over the tile and no call per row (same bits as fb_avx512_gelu_erf after
 * fb_avx512_q8_panel2: the same fb_gelu_erf512).
 */
AVX512 void
fb_avx512_q8_panel2_gelu(const uint8_t *q, int ldq, int kc, const float *sx,
						 const int32_t *zero, const int8_t *panel, size_t panel_stride,
						 const float *sw, const int32_t *colsum, const float *bias,
						 float *y, size_t ldy, int ncols)
{
	panel2_body(q, ldq, kc, sx, zero, panel, panel_stride, sw, colsum, bias, y, ldy, ncols, true);
}
