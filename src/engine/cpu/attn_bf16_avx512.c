/*
 * attn_bf16_avx512.c — one attention head on AVX512-BF16 (vdpbf16ps).
 *
 * K and V of the head are rounded to bfloat16 once and packed so that
 * every vdpbf16ps reads one 64-byte row and broadcasts a query (or
 * numerator) pair: K as [16-key block][channel pair][16 keys], V as
 * [key pair][16-channel block][16 channels].  Queries go in blocks of 4
 * rows: scores for 4 rows x 64 keys (16 accumulators), softmax numerators
 * straight to bfloat16, then 4 rows x 64 channels of output (16
 * accumulators), scaled by 1 / sum at the store.  fb_attn_bf16_ref is the
 * same arithmetic in plain C.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <immintrin.h>

#include "fb_attn.h"
#include "fb_exp512.h"

#define BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")))
#define ROWS 4					/* query rows per block */

BF16 static inline __mmask16
lanes(int n)
{
	return n >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << n) - 1u);
}

/* 16 floats -> 16 bfloat16 (vcvtneps2bf16) */
BF16 static inline __m256i
to_bf16(__m512 x)
{
	return (__m256i) _mm512_cvtneps_pbh(x);
}

/* Keys, values and queries are rows of the [T, 3H] qkv matrix, 9 KB or
 * more apart and usually no longer in cache (a row's head slice is a few
 * cache lines on its own page): the packing pass fetches rows this far
 * ahead of the one it converts. */
#define PREFETCH_ROWS 16

BF16 static inline void
prefetch_row(const float *row, int dh)
{
	for (int d = 0; d < dh; d += 16)
		_mm_prefetch((const char *) (row + d), _MM_HINT_T0);
}

/*
 * One pass over the head's rows, converting to bfloat16:
 *   K -> kp[jb][p][16]: key j's channel pair p at block j / 16, lane j % 16;
 *   V -> vp[jp][db][16]: (V[2jp][d], V[2jp + 1][d]) for d = 16 db + lane;
 *   Q (scaled) -> qw[i][p]: query i's channel pairs, for i < n_query.
 * Keys beyond L, channels beyond dh are zero.
 */
BF16 static void
pack_head(const float *q, const float *k, const float *v, int ld, int n_query, int L,
		  int dh, float scale, uint32_t *qw, uint32_t *kp, uint32_t *vp)
{
	int			nJB = (L + 15) / 16,
				nP = (dh + 1) / 2,
				nDB = (dh + 15) / 16;
	uint32_t	w[8] __attribute__((aligned(32)));

	memset(kp, 0, sizeof(uint32_t) * 16 * (size_t) nJB * nP);
	for (int j = 0; j < L; j++)
	{
		uint32_t   *dst = kp + (size_t) (j / 16) * nP * 16 + (j % 16);
		const float *kr = k + (size_t) j * ld;

		if (j + PREFETCH_ROWS < L)
		{
			prefetch_row(kr + (size_t) PREFETCH_ROWS * ld, dh);
			prefetch_row(v + (size_t) (j + PREFETCH_ROWS) * ld, dh);
			if (j + PREFETCH_ROWS < n_query)
				prefetch_row(q + (size_t) (j + PREFETCH_ROWS) * ld, dh);
		}
		/* 16 channels = 8 pairs at a time */
		for (int p0 = 0; p0 < nP; p0 += 8)
		{
			_mm256_store_si256((__m256i *) w, to_bf16(_mm512_maskz_loadu_ps(lanes(dh - 2 * p0), kr + 2 * p0)));
			for (int p = p0; p < nP && p < p0 + 8; p++)
				dst[(size_t) p * 16] = w[p - p0];
		}
		if (j < n_query)
		{
			uint16_t   *qh = (uint16_t *) (qw + (size_t) j * nP);

			for (int d = 0; d < 2 * nP; d += 16)
			{
				__m512		x = _mm512_maskz_loadu_ps(lanes(dh - d), q + (size_t) j * ld + d);

				/* 2 nP halves per row: only the first 2 nP - d of these 16 */
				_mm256_mask_storeu_epi16(qh + d, (__mmask16) lanes(2 * nP - d),
										 to_bf16(_mm512_mul_ps(x, _mm512_set1_ps(scale))));
			}
		}
		if ((j & 1) || j == L - 1)
		{
			int			jp = j / 2;
			const float *a = v + (size_t) (2 * jp) * ld;
			bool		has_b = 2 * jp + 1 < L;

			for (int db = 0; db < nDB; db++)
			{
				__mmask16	m = lanes(dh - 16 * db);
				__m512i		lo = _mm512_cvtepu16_epi32(to_bf16(_mm512_maskz_loadu_ps(m, a + 16 * db)));
				__m512i		hi = has_b ? _mm512_cvtepu16_epi32(to_bf16(_mm512_maskz_loadu_ps(m, a + ld + 16 * db)))
					: _mm512_setzero_si512();

				_mm512_store_si512(vp + ((size_t) jp * nDB + db) * 16,
								   _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
			}
		}
	}
}

/* Scores of R query rows (qw: pair words, nP per row) against key blocks
 * [jb0, jb0 + NB): s rows of ld_s floats. */
BF16 static inline __attribute__((always_inline)) void
scores_block(const uint32_t *qw, int nP, const uint32_t *kp, int jb0, float *s,
			 int ld_s, const int R, const int NB)
{
	__m512		acc[ROWS][4];

#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++)
			acc[r][b] = _mm512_setzero_ps();
	for (int p = 0; p < nP; p++)
	{
		__m512bh	kv[4];

#pragma GCC unroll 4
		for (int b = 0; b < NB; b++)
			kv[b] = (__m512bh) _mm512_load_si512(kp + ((size_t) (jb0 + b) * nP + p) * 16);
#pragma GCC unroll 4
		for (int r = 0; r < R; r++)
		{
			__m512bh	qv = (__m512bh) _mm512_set1_epi32((int) qw[r * nP + p]);

#pragma GCC unroll 4
			for (int b = 0; b < NB; b++)
				acc[r][b] = _mm512_dpbf16_ps(acc[r][b], kv[b], qv);
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int b = 0; b < NB; b++)
			_mm512_store_ps(s + (size_t) r * ld_s + (jb0 + b) * 16, acc[r][b]);
}

BF16 static inline __attribute__((always_inline)) void
scores_rows(const uint32_t *qw, int nP, const uint32_t *kp, int nJB, float *s, int ld_s,
			const int R)
{
	int			jb = 0;

	for (; jb + 4 <= nJB; jb += 4)
		scores_block(qw, nP, kp, jb, s, ld_s, R, 4);
	switch (nJB - jb)
	{
		case 3:
			scores_block(qw, nP, kp, jb, s, ld_s, R, 3);
			break;
		case 2:
			scores_block(qw, nP, kp, jb, s, ld_s, R, 2);
			break;
		case 1:
			scores_block(qw, nP, kp, jb, s, ld_s, R, 1);
			break;
	}
}

/* Output channels [16 db0, 16 (db0 + ND)) of R rows: sum over key pairs of
 * numerator pair x V pair, times inv[r]. */
BF16 static inline __attribute__((always_inline)) void
output_block(const uint32_t *pw, int ld_p, int nJP, const uint32_t *vp, int nDB,
			 int db0, const float *inv, float *out, int ldo, int dh, const int R,
			 const int ND)
{
	__m512		acc[ROWS][4];

#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int d = 0; d < ND; d++)
			acc[r][d] = _mm512_setzero_ps();
	for (int jp = 0; jp < nJP; jp++)
	{
		__m512bh	vv[4];

#pragma GCC unroll 4
		for (int d = 0; d < ND; d++)
			vv[d] = (__m512bh) _mm512_load_si512(vp + ((size_t) jp * nDB + db0 + d) * 16);
#pragma GCC unroll 4
		for (int r = 0; r < R; r++)
		{
			__m512bh	pv = (__m512bh) _mm512_set1_epi32((int) pw[(size_t) r * ld_p + jp]);

#pragma GCC unroll 4
			for (int d = 0; d < ND; d++)
				acc[r][d] = _mm512_dpbf16_ps(acc[r][d], vv[d], pv);
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int d = 0; d < ND; d++)
			_mm512_mask_storeu_ps(out + (size_t) r * ldo + 16 * (db0 + d), lanes(dh - 16 * (db0 + d)),
								  _mm512_mul_ps(acc[r][d], _mm512_set1_ps(inv[r])));
}

BF16 static inline __attribute__((always_inline)) void
output_rows(const uint32_t *pw, int ld_p, int nJP, const uint32_t *vp, int nDB,
			const float *inv, float *out, int ldo, int dh, const int R)
{
	int			db = 0;

	for (; db + 4 <= nDB; db += 4)
		output_block(pw, ld_p, nJP, vp, nDB, db, inv, out, ldo, dh, R, 4);
	switch (nDB - db)
	{
		case 3:
			output_block(pw, ld_p, nJP, vp, nDB, db, inv, out, ldo, dh, R, 3);
			break;
		case 2:
			output_block(pw, ld_p, nJP, vp, nDB, db, inv, out, ldo, dh, R, 2);
			break;
		case 1:
			output_block(pw, ld_p, nJP, vp, nDB, db, inv, out, ldo, dh, R, 1);
			break;
	}
}

/* Softmax numerators of one score row to bfloat16 (zeros from L up to the
 * next multiple of 16); returns 1 / their fp32 sum. */
BF16 static float
numerators(const float *s, int L, uint16_t *pb)
{
	__m512		vmax = _mm512_set1_ps(-INFINITY),
				vsum = _mm512_setzero_ps(),
				m;
	float		part[16] __attribute__((aligned(64)));
	float		total = 0.0f;

	for (int j = 0; j < L; j += 16)
		vmax = _mm512_max_ps(vmax, _mm512_mask_load_ps(_mm512_set1_ps(-INFINITY), lanes(L - j), s + j));
	m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
	for (int j = 0; j < L; j += 16)
	{
		__mmask16	k = lanes(L - j);
		__m512		e = _mm512_maskz_mov_ps(k, fb_exp512(_mm512_sub_ps(_mm512_load_ps(s + j), m)));

		vsum = _mm512_add_ps(vsum, e);
		_mm256_store_si256((__m256i *) (pb + j), to_bf16(e));
	}
	_mm512_store_ps(part, vsum);
	for (int l = 0; l < 16; l++)
		total += part[l];
	return 1.0f / total;
}

static size_t
align64(size_t n)
{
	return (n + 63) & ~(size_t) 63;
}

BF16 static inline __attribute__((always_inline)) void
query_block(const uint32_t *qw, const uint32_t *kp, const uint32_t *vp, float *s,
			uint16_t *pb, float *out, int ldo, int L, int dh, const int R)
{
	int			nP = (dh + 1) / 2,
				nJB = (L + 15) / 16,
				nJP = (L + 1) / 2,
				nDB = (dh + 15) / 16;
	int			ld_s = nJB * 16;
	float		inv[ROWS];

	scores_rows(qw, nP, kp, nJB, s, ld_s, R);
	for (int r = 0; r < R; r++)
		inv[r] = numerators(s + (size_t) r * ld_s, L, pb + (size_t) r * ld_s);
	/* numerator rows are ld_s halves = ld_s / 2 pair words apart */
	output_rows((const uint32_t *) pb, ld_s / 2, nJP, vp, nDB, inv, out, ldo, dh, R);
}

BF16 void
fb_avx512_attn_bf16(const float *q, const float *k, const float *v, int ld,
					float *out, int ldo, void *scratch, int n_query, int L, int dh)
{
	int			nP = (dh + 1) / 2,
				nJB = (L + 15) / 16,
				nJP = (L + 1) / 2,
				nDB = (dh + 15) / 16;
	char	   *at = (char *) (((uintptr_t) scratch + 63) & ~(uintptr_t) 63);
	uint32_t   *kp = (uint32_t *) at;
	uint32_t   *vp = (uint32_t *) (at += align64((size_t) nJB * nP * 64));
	uint32_t   *qw = (uint32_t *) (at += align64((size_t) nJP * nDB * 64));
	float	   *s = (float *) (at += align64((size_t) L * nP * 4));
	uint16_t   *pb = (uint16_t *) (at + align64((size_t) ROWS * nJB * 64));

	pack_head(q, k, v, ld, n_query, L, dh, 1.0f / sqrtf((float) dh), qw, kp, vp);
	for (int i = 0; i < n_query; i += ROWS)
	{
		const uint32_t *qi = qw + (size_t) i * nP;
		float	   *oi = out + (size_t) i * ldo;

		switch (n_query - i >= ROWS ? ROWS : n_query - i)
		{
			case 4:
				query_block(qi, kp, vp, s, pb, oi, ldo, L, dh, 4);
				break;
			case 3:
				query_block(qi, kp, vp, s, pb, oi, ldo, L, dh, 3);
				break;
			case 2:
				query_block(qi, kp, vp, s, pb, oi, ldo, L, dh, 2);
				break;
			default:
				query_block(qi, kp, vp, s, pb, oi, ldo, L, dh, 1);
				break;
		}
	}
}
