/*
 * attn_bf16.c — plain-C reference of the bfloat16 attention head
 * (fb_attn.h defines the arithmetic; the AVX-512 kernel equals this bit
 * for bit).  Written for reading, not for speed: it converts on the fly.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "fb_attn.h"

uint16_t
fb_bf16_round(float x)
{
	uint32_t	u;

	memcpy(&u, &x, sizeof(u));
	if ((u & 0x7f800000u) == 0)
		return (uint16_t) ((u >> 16) & 0x8000u);	/* zero or denormal: signed zero */
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t) ((u >> 16) | 0x0040u);	/* NaN stays a (quiet) NaN */
	u += 0x7fffu + ((u >> 16) & 1u);	/* round to nearest, ties to even */
	return (uint16_t) (u >> 16);
}

static float
bf16_value(uint16_t h)
{
	uint32_t	u = (uint32_t) h << 16;
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* One accumulation step of vdpbf16ps: the product of two bfloat16 values
 * is exact in fp32, the sum is rounded, a denormal sum becomes zero. */
static float
bf16_madd(float acc, uint16_t a, uint16_t b)
{
	float		s = acc + bf16_value(a) * bf16_value(b);

	return fabsf(s) < FLT_MIN ? copysignf(0.0f, s) : s;
}

/* dot product of n bfloat16 pairs: pair p is (x[2p], x[2p + 1]) */
static float
bf16_dot_pairs(const uint16_t *x, const uint16_t *y, int n_pairs)
{
	float		acc = 0.0f;

	for (int p = 0; p < n_pairs; p++)
	{
		acc = bf16_madd(acc, x[2 * p + 1], y[2 * p + 1]);
		acc = bf16_madd(acc, x[2 * p], y[2 * p]);
	}
	return acc;
}

/* fb_exp512 (fb_exp512.h: Cephes polynomial, 2^n applied as vscalefps
 * does), one operation at a time in the kernel's order. */
static float
attn_exp(float x)
{
	float		fx,
				r,
				z,
				y;

	x = fminf(fmaxf(x, -88.3762626647949f), 88.3762626647949f);
	fx = rintf(x * 1.44269504088896341f);
	r = fmaf(-fx, 0.693359375f, x);
	r = fmaf(-fx, -2.12194440e-4f, r);
	z = r * r;
	y = 1.9875691500E-4f;
	y = fmaf(y, r, 1.3981999507E-3f);
	y = fmaf(y, r, 8.3334519073E-3f);
	y = fmaf(y, r, 4.1665795894E-2f);
	y = fmaf(y, r, 1.6666665459E-1f);
	y = fmaf(y, r, 5.0000001201E-1f);
	y = fmaf(y, z, r);
	y = y + 1.0f;
	return ldexpf(y, (int) fx);
}

static size_t
align64(size_t n)
{
	return (n + 63) & ~(size_t) 63;
}

/* Layout used by the AVX-512 kernel (attn_bf16_avx512.c): packed K
 * [ceil(L/16)][ceil(dh/2)][16] pair words, packed V [ceil(L/2)][ceil(dh/16)][16]
 * pair words, Q [L][ceil(dh/2)] pair words, then for a block of 4 query
 * rows: fp32 scores and bfloat16 numerators. */
size_t
fb_attn_bf16_scratch(int L, int dh)
{
	size_t		nJB = (size_t) (L + 15) / 16,
				nJP = (size_t) (L + 1) / 2,
				nP = (size_t) (dh + 1) / 2,
				nDB = (size_t) (dh + 15) / 16;

	return align64(nJB * nP * 64) + align64(nJP * nDB * 64) + align64((size_t) L * nP * 4) +
		align64(4 * nJB * 64) + align64(4 * nJB * 32) + 64;
}

void
fb_attn_bf16_ref(const float *q, const float *k, const float *v, int ld,
				 float *out, int ldo, void *scratch, int n_query, int L, int dh)
{
	float		scale = 1.0f / sqrtf((float) dh);
	int			nP = (dh + 1) / 2,
				nJP = (L + 1) / 2;
	/* the reference's own rounded copies, in the caller's scratch: one
	 * query row, one key row, one numerator row */
	uint16_t   *qb = scratch,
			   *kb = qb + 2 * nP,
			   *pb = kb + 2 * nP;
	float	   *s = (float *) (pb + 2 * nJP + 2);

	for (int i = 0; i < n_query; i++)
	{
		float		m = -INFINITY,
					part[16] = {0},
					total = 0.0f;

		memset(qb, 0, sizeof(uint16_t) * 2 * nP);
		for (int d = 0; d < dh; d++)
			qb[d] = fb_bf16_round(q[(size_t) i * ld + d] * scale);
		for (int j = 0; j < L; j++)
		{
			memset(kb, 0, sizeof(uint16_t) * 2 * nP);
			for (int d = 0; d < dh; d++)
				kb[d] = fb_bf16_round(k[(size_t) j * ld + d]);
			s[j] = bf16_dot_pairs(qb, kb, nP);
			m = fmaxf(m, s[j]);
		}
		memset(pb, 0, sizeof(uint16_t) * 2 * nJP);
		for (int j = 0; j < L; j++)
		{
			float		e = attn_exp(s[j] - m);

			part[j % 16] += e;
			pb[j] = fb_bf16_round(e);
		}
		for (int l = 0; l < 16; l++)
			total += part[l];
		for (int d = 0; d < dh; d++)
		{
			float		acc = 0.0f;

			for (int jp = 0; jp < nJP; jp++)
			{
				uint16_t	v_odd = 2 * jp + 1 < L ? fb_bf16_round(v[(size_t) (2 * jp + 1) * ld + d]) : 0;

				acc = bf16_madd(acc, pb[2 * jp + 1], v_odd);
				acc = bf16_madd(acc, pb[2 * jp], fb_bf16_round(v[(size_t) (2 * jp) * ld + d]));
			}
			out[(size_t) i * ldo + d] = acc * (1.0f / total);
		}
	}
}
