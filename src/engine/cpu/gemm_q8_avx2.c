/*
 * gemm_q8_avx2.c — AVX2 kernels of the int8 linear layers (fb_q8.h).
 *
 * The micro-kernel keeps an MR x 16 block of int32 sums in registers; per
 * group of 4 input channels it loads the panel's 64 weight bytes (two
 * registers), broadcasts each row's 4 activation bytes and accumulates
 * with vpmaddubsw (uint8 x int8 pairs -> int16, never saturating with
 * 7-bit weights) + vpmaddwd by ones (-> int32) + vpaddd.  Integer sums are
 * exact and the dequantisation is the same fused multiply-add as the
 * reference, so results match fb_q8_panel_ref bit for bit.
 */
#include <math.h>
#include <string.h>

#include <immintrin.h>

#include "fb_q8.h"

#define AVX2 __attribute__((target("avx2,fma")))

/* 32 int32 (each in [-255, 510]) -> 32 bytes clamped to [0, 255], in order. */
AVX2 static inline __m256i
pack_u8(__m256i a, __m256i b, __m256i c, __m256i d)
{
	/* packs/packus work per 128-bit lane; the permutes restore the order */
	__m256i		ab = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xd8);
	__m256i		cd = _mm256_permute4x64_epi64(_mm256_packs_epi32(c, d), 0xd8);

	return _mm256_permute4x64_epi64(_mm256_packus_epi16(ab, cd), 0xd8);
}

AVX2 void
fb_avx2_q8_quantize(const float *x, int T, int K, const fb_q8_rows *r)
{
	const __m256 inf = _mm256_set1_ps(INFINITY);
	const __m256 sign = _mm256_set1_ps(-0.0f);

	for (int t = 0; t < T; t++)
	{
		const float *xr = x + (size_t) t * K;
		uint8_t    *qr = r->q + (size_t) t * r->Kp;
		__m256		vmin = _mm256_setzero_ps(),
					vmax = _mm256_setzero_ps(),
					vbad = _mm256_setzero_ps();
		float		mn = 0.0f,
					mx = 0.0f,
					inv,
					lo[8],
					hi[8];
		bool		bad;
		int			k = 0;

		for (; k + 8 <= K; k += 8)
		{
			__m256		v = _mm256_loadu_ps(xr + k);

			vmin = _mm256_min_ps(vmin, v);
			vmax = _mm256_max_ps(vmax, v);
			vbad = _mm256_or_ps(vbad, _mm256_cmp_ps(_mm256_andnot_ps(sign, v), inf, _CMP_NLT_UQ));
		}
		_mm256_storeu_ps(lo, vmin);
		_mm256_storeu_ps(hi, vmax);
		for (int i = 0; i < 8; i++)
		{
			mn = fminf(mn, lo[i]);
			mx = fmaxf(mx, hi[i]);
		}
		bad = _mm256_movemask_ps(vbad) != 0;
		for (; k < K; k++)
		{
			mn = fminf(mn, xr[k]);
			mx = fmaxf(mx, xr[k]);
			bad |= !isfinite(xr[k]);
		}
		if ((inv = fb_q8_row_scale(r, t, mn, mx, bad)) == 0.0f)
			continue;
		{
			const __m256 vinv = _mm256_set1_ps(inv);
			const __m256i vz = _mm256_set1_epi32(r->zero[t]);

#define Q(o) _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + k + (o)), vinv)), vz)
			for (k = 0; k + 32 <= K; k += 32)
				_mm256_storeu_si256((__m256i *) (qr + k), pack_u8(Q(0), Q(8), Q(16), Q(24)));
#undef Q
			fb_q8_row_tail(xr, qr, k, K, r->Kp, inv, r->zero[t]);
		}
	}
}

/* Broadcasts the 4 activation bytes q[4i..4i+3] to all eight 32-bit lanes. */
AVX2 static inline __m256i
group(const uint8_t *q, int i)
{
	int32_t		v;

	memcpy(&v, q + 4 * i, sizeof(v));
	return _mm256_set1_epi32(v);
}

AVX2 static inline void
store_row(__m256i lo, __m256i hi, float sx, int32_t zero, const float *sw,
		  const int32_t *colsum, const float *bias, float *y, int ncols)
{
	__m256		s = _mm256_set1_ps(sx);
	__m256i		z = _mm256_set1_epi32(zero);

	lo = _mm256_sub_epi32(lo, _mm256_mullo_epi32(z, _mm256_loadu_si256((const __m256i *) colsum)));
	hi = _mm256_sub_epi32(hi, _mm256_mullo_epi32(z, _mm256_loadu_si256((const __m256i *) (colsum + 8))));
	if (ncols == FB_Q8_NR)
	{
		const float *base = bias != NULL ? bias : y;	/* bias: y not read */

		_mm256_storeu_ps(y, _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo),
											_mm256_mul_ps(s, _mm256_loadu_ps(sw)),
											_mm256_loadu_ps(base)));
		_mm256_storeu_ps(y + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi),
												_mm256_mul_ps(s, _mm256_loadu_ps(sw + 8)),
												_mm256_loadu_ps(base + 8)));
	}
	else
	{
		int32_t		sums[FB_Q8_NR];

		_mm256_storeu_si256((__m256i *) sums, lo);
		_mm256_storeu_si256((__m256i *) (sums + 8), hi);
		for (int c = 0; c < ncols; c++)
			y[c] = fmaf((float) sums[c], sx * sw[c], bias != NULL ? bias[c] : y[c]);
	}
}

#define Q8_ROW(R) \
	if (rows > R) { \
		__m256i a = group(q##R, i); \
		c##R##l = _mm256_add_epi32(c##R##l, _mm256_madd_epi16(_mm256_maddubs_epi16(a, bl), ones)); \
		c##R##h = _mm256_add_epi32(c##R##h, _mm256_madd_epi16(_mm256_maddubs_epi16(a, bh), ones)); \
	}

/* The micro-kernel for a constant number of rows MR (1..4). */
#define Q8_KERNEL(MR) \
AVX2 static void \
q8_panel_##MR(const uint8_t *q, int ldq, int kc, const float *sx, \
			  const int32_t *zero, const int8_t *panel, const float *sw, \
			  const int32_t *colsum, const float *bias, float *y, size_t ldy, \
			  int ncols) \
{ \
	const __m256i ones = _mm256_set1_epi16(1); \
	const int	rows = MR; \
	__m256i		c0l = _mm256_setzero_si256(), c0h = _mm256_setzero_si256(); \
	__m256i		c1l = _mm256_setzero_si256(), c1h = _mm256_setzero_si256(); \
	__m256i		c2l = _mm256_setzero_si256(), c2h = _mm256_setzero_si256(); \
	__m256i		c3l = _mm256_setzero_si256(), c3h = _mm256_setzero_si256(); \
	const uint8_t *q0 = q, *q1 = q + ldq, *q2 = q + 2 * (size_t) ldq, *q3 = q + 3 * (size_t) ldq; \
	for (int i = 0; i < kc / 4; i++) \
	{ \
		__m256i		bl = _mm256_load_si256((const __m256i *) (panel + (size_t) i * 4 * FB_Q8_NR)); \
		__m256i		bh = _mm256_load_si256((const __m256i *) (panel + (size_t) i * 4 * FB_Q8_NR + 32)); \
		Q8_ROW(0) Q8_ROW(1) Q8_ROW(2) Q8_ROW(3) \
	} \
	store_row(c0l, c0h, sx[0], zero[0], sw, colsum, bias, y, ncols); \
	if (MR > 1) store_row(c1l, c1h, sx[1], zero[1], sw, colsum, bias, y + ldy, ncols); \
	if (MR > 2) store_row(c2l, c2h, sx[2], zero[2], sw, colsum, bias, y + 2 * ldy, ncols); \
	if (MR > 3) store_row(c3l, c3h, sx[3], zero[3], sw, colsum, bias, y + 3 * ldy, ncols); \
}

Q8_KERNEL(1)
Q8_KERNEL(2)
Q8_KERNEL(3)

/*
 * The full 4-row kernel, its loop written out in assembly: with eight
 * accumulators, the constant and two weight registers live, GCC's
 * scheduler hoists the four broadcasts and spills accumulators to the
 * stack (about 30 % slower); here the temporaries are reused row by row
 * (register renaming removes the false dependencies).  Same instructions
 * and arithmetic as Q8_KERNEL(4).
 */
AVX2 static void
q8_panel_4(const uint8_t *q, int ldq, int kc, const float *sx,
		   const int32_t *zero, const int8_t *panel, const float *sw,
		   const int32_t *colsum, const float *bias, float *y, size_t ldy,
		   int ncols)
{
	const __m256i ones = _mm256_set1_epi16(1);
	__m256i		c0l = _mm256_setzero_si256(), c0h = _mm256_setzero_si256();
	__m256i		c1l = _mm256_setzero_si256(), c1h = _mm256_setzero_si256();
	__m256i		c2l = _mm256_setzero_si256(), c2h = _mm256_setzero_si256();
	__m256i		c3l = _mm256_setzero_si256(), c3h = _mm256_setzero_si256();
	const uint8_t *q0 = q,
			   *q1 = q + ldq,
			   *q2 = q + 2 * (size_t) ldq,
			   *q3 = q + 3 * (size_t) ldq;
	const int8_t *b = panel;
	size_t		i = 0,
				end = (size_t) kc;	/* bytes of each activation row */

#define ROW(qr, lo, hi) \
	"vpbroadcastd (%[" qr "],%[i]), %%ymm14\n\t" \
	"vpmaddubsw %%ymm12, %%ymm14, %%ymm15\n\t" \
	"vpmaddubsw %%ymm13, %%ymm14, %%ymm14\n\t" \
	"vpmaddwd %[ones], %%ymm15, %%ymm15\n\t" \
	"vpmaddwd %[ones], %%ymm14, %%ymm14\n\t" \
	"vpaddd %%ymm15, %[" lo "], %[" lo "]\n\t" \
	"vpaddd %%ymm14, %[" hi "], %[" hi "]\n\t"
	if (kc > 0)
		__asm__ volatile(
			"1:\n\t"
			"vmovdqa (%[b]), %%ymm12\n\t"
			"vmovdqa 32(%[b]), %%ymm13\n\t"
			ROW("q0", "c0l", "c0h")
			ROW("q1", "c1l", "c1h")
			ROW("q2", "c2l", "c2h")
			ROW("q3", "c3l", "c3h")
			"add $64, %[b]\n\t"
			"add $4, %[i]\n\t"
			"cmp %[end], %[i]\n\t"
			"jb 1b\n\t"
			: [c0l] "+x"(c0l), [c0h] "+x"(c0h), [c1l] "+x"(c1l), [c1h] "+x"(c1h),
			  [c2l] "+x"(c2l), [c2h] "+x"(c2h), [c3l] "+x"(c3l), [c3h] "+x"(c3h),
			  [b] "+r"(b), [i] "+r"(i)
			: [q0] "r"(q0), [q1] "r"(q1), [q2] "r"(q2), [q3] "r"(q3), [end] "r"(end),
			  [ones] "x"(ones)
			: "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
#undef ROW
	store_row(c0l, c0h, sx[0], zero[0], sw, colsum, bias, y, ncols);
	store_row(c1l, c1h, sx[1], zero[1], sw, colsum, bias, y + ldy, ncols);
	store_row(c2l, c2h, sx[2], zero[2], sw, colsum, bias, y + 2 * ldy, ncols);
	store_row(c3l, c3h, sx[3], zero[3], sw, colsum, bias, y + 3 * ldy, ncols);
}

AVX2 void
fb_avx2_q8_panel(const uint8_t *q, int ldq, int kc, const float *sx,
				 const int32_t *zero, int mr, const int8_t *panel,
				 const float *sw, const int32_t *colsum, const float *bias,
				 float *y, size_t ldy, int ncols)
{
	static void (*const by_rows[5]) (const uint8_t *, int, int, const float *,
												  const int32_t *, const int8_t *,
												  const float *, const int32_t *,
												  const float *, float *, size_t, int) = {
		q8_panel_1, q8_panel_1, q8_panel_2, q8_panel_3, q8_panel_4
	};

	/* 4 rows at a time: 8 accumulators are all AVX2's 16 registers allow */
	for (; mr > 4; mr -= 4, q += 4 * (size_t) ldq, sx += 4, zero += 4, y += 4 * ldy)
		q8_panel_4(q, ldq, kc, sx, zero, panel, sw, colsum, bias, y, ldy, ncols);
	by_rows[mr](q, ldq, kc, sx, zero, panel, sw, colsum, bias, y, ldy, ncols);
}
