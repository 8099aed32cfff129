/*
 * ops_avx2.c — AVX2 + FMA versions of the element-wise kernels.
 *
 * exp: Cody-Waite range reduction and a degree-5 polynomial (Cephes expf),
 * relative error below 2e-7 on the clamped range.  erf: Abramowitz and
 * Stegun 7.1.26 (|error| < 1.5e-7), as PyTorch's vectorised GELU uses.
 * tanh(u) = 1 - 2 / (exp(2u) + 1).  Results are checked against the
 * reference kernels in test/test_kernels.c.
 */
#include <math.h>

#include <immintrin.h>

#include "fb_kernels.h"

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256
exp256(__m256 x)
{
	const __m256 hi = _mm256_set1_ps(88.3762626647949f);
	const __m256 lo = _mm256_set1_ps(-88.3762626647949f);
	const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
	const __m256 c1 = _mm256_set1_ps(0.693359375f);
	const __m256 c2 = _mm256_set1_ps(-2.12194440e-4f);
	__m256		fx,
				y,
				z;
	__m256i		emm;

	x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
	fx = _mm256_round_ps(_mm256_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	x = _mm256_fnmadd_ps(fx, c1, x);
	x = _mm256_fnmadd_ps(fx, c2, x);
	z = _mm256_mul_ps(x, x);
	y = _mm256_set1_ps(1.9875691500E-4f);
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
	y = _mm256_fmadd_ps(y, z, x);
	y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
	emm = _mm256_cvtps_epi32(fx);
	emm = _mm256_add_epi32(emm, _mm256_set1_epi32(127));
	emm = _mm256_slli_epi32(emm, 23);
	return _mm256_mul_ps(y, _mm256_castsi256_ps(emm));
}

AVX2 static inline float
hsum256(__m256 v)
{
	__m128		s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
	return _mm_cvtss_f32(s);
}

AVX2 static inline float
hmax256(__m256 v)
{
	__m128		s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_max_ps(s, _mm_movehl_ps(s, s));
	s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
	return _mm_cvtss_f32(s);
}

AVX2 void
fb_avx2_layernorm(float *x, const float *res, const float *g, const float *b, int T, int C,
				  float eps)
{
	for (int t = 0; t < T; t++)
	{
		float	   *r = x + (size_t) t * C;
		float		shift;
		__m256		vs;
		__m256		acc = _mm256_setzero_ps();
		float		m,
					var,
					inv;
		int			i = 0;

		if (res != NULL)
		{
			/* the residual connection, on the row while it is in L1 */
			const float *rr = res + (size_t) t * C;

			for (i = 0; i + 8 <= C; i += 8)
				_mm256_storeu_ps(r + i, _mm256_add_ps(_mm256_loadu_ps(r + i), _mm256_loadu_ps(rr + i)));
			for (; i < C; i++)
				r[i] += rr[i];
			i = 0;
		}

		/*
		 * work on x - x0: a large common offset cancels exactly instead of
		 * costing the mantissa of the mean (x - x0 is exact for nearby
		 * values), and the mean of the shifted values stays small
		 */
		shift = r[0];
		vs = _mm256_set1_ps(shift);
		for (; i + 8 <= C; i += 8)
			acc = _mm256_add_ps(acc, _mm256_sub_ps(_mm256_loadu_ps(r + i), vs));
		m = hsum256(acc);
		for (; i < C; i++)
			m += r[i] - shift;
		m /= (float) C;

		acc = _mm256_setzero_ps();
		{
			__m256		vm = _mm256_set1_ps(m);

			for (i = 0; i + 8 <= C; i += 8)
			{
				__m256		d = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(r + i), vs), vm);

				acc = _mm256_fmadd_ps(d, d, acc);
			}
		}
		var = hsum256(acc);
		for (; i < C; i++)
			var += ((r[i] - shift) - m) * ((r[i] - shift) - m);
		var /= (float) C;
		inv = 1.0f / sqrtf(var + eps);
		{
			__m256		vm = _mm256_set1_ps(m),
						iv = _mm256_set1_ps(inv);

			for (i = 0; i + 8 <= C; i += 8)
			{
				__m256		d = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(r + i), vs), vm);
				__m256		v = _mm256_mul_ps(d, iv);

				v = _mm256_fmadd_ps(v, _mm256_loadu_ps(g + i), _mm256_loadu_ps(b + i));
				_mm256_storeu_ps(r + i, v);
			}
		}
		for (; i < C; i++)
			r[i] = ((r[i] - shift) - m) * inv * g[i] + b[i];
	}
}

/* erf for 8 lanes, Abramowitz & Stegun 7.1.26 */
AVX2 static inline __m256
erf256(__m256 x)
{
	const __m256 sign_mask = _mm256_set1_ps(-0.0f);
	__m256		sign = _mm256_and_ps(x, sign_mask);
	__m256		ax = _mm256_andnot_ps(sign_mask, x);
	__m256		t = _mm256_div_ps(_mm256_set1_ps(1.0f),
								  _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), ax, _mm256_set1_ps(1.0f)));
	__m256		p = _mm256_set1_ps(1.061405429f);

	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
	p = _mm256_mul_ps(p, t);
	{
		__m256		e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(ax, ax)));
		__m256		y = _mm256_fnmadd_ps(p, e, _mm256_set1_ps(1.0f));

		return _mm256_or_ps(y, sign);
	}
}

AVX2 void
fb_avx2_gelu_erf(float *x, size_t n)
{
	const __m256 half = _mm256_set1_ps(0.5f);
	const __m256 rs2 = _mm256_set1_ps((float) M_SQRT1_2);
	const __m256 one = _mm256_set1_ps(1.0f);
	size_t		i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m256		v = _mm256_loadu_ps(x + i);
		__m256		e = erf256(_mm256_mul_ps(v, rs2));

		_mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, e)));
	}
	for (; i < n; i++)
		x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float) M_SQRT1_2));
}

AVX2 void
fb_avx2_gelu_tanh(float *x, size_t n)
{
	const __m256 k = _mm256_set1_ps(0.7978845608028654f);
	const __m256 c = _mm256_set1_ps(0.044715f);
	const __m256 half = _mm256_set1_ps(0.5f);
	const __m256 one = _mm256_set1_ps(1.0f);
	const __m256 two = _mm256_set1_ps(2.0f);
	size_t		i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m256		v = _mm256_loadu_ps(x + i);
		__m256		u = _mm256_mul_ps(k, _mm256_fmadd_ps(_mm256_mul_ps(c, v), _mm256_mul_ps(v, v), v));
		/* tanh(u) = 1 - 2 / (exp(2u) + 1) */
		__m256		e = exp256(_mm256_mul_ps(two, u));
		__m256		th = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(e, one)));

		_mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, th)));
	}
	for (; i < n; i++)
	{
		float		v = x[i];

		x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
	}
}

AVX2 void
fb_avx2_softmax(float *x, int rows, int n)
{
	for (int r = 0; r < rows; r++)
	{
		float	   *p = x + (size_t) r * n;
		__m256		vmax = _mm256_set1_ps(-INFINITY);
		float		mx,
					sum;
		__m256		vsum = _mm256_setzero_ps();
		int			i = 0;

		for (; i + 8 <= n; i += 8)
			vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p + i));
		mx = hmax256(vmax);
		for (; i < n; i++)
			mx = p[i] > mx ? p[i] : mx;
		{
			__m256		m = _mm256_set1_ps(mx);

			for (i = 0; i + 8 <= n; i += 8)
			{
				__m256		e = exp256(_mm256_sub_ps(_mm256_loadu_ps(p + i), m));

				_mm256_storeu_ps(p + i, e);
				vsum = _mm256_add_ps(vsum, e);
			}
		}
		sum = hsum256(vsum);
		for (; i < n; i++)
		{
			p[i] = expf(p[i] - mx);
			sum += p[i];
		}
		{
			__m256		inv = _mm256_set1_ps(1.0f / sum);

			for (i = 0; i + 8 <= n; i += 8)
				_mm256_storeu_ps(p + i, _mm256_mul_ps(_mm256_loadu_ps(p + i), inv));
			for (; i < n; i++)
				p[i] *= 1.0f / sum;
		}
	}
}
