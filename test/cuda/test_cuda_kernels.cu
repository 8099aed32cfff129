/*
 * test_cuda_kernels.cu — every kernel of the CUDA backend against a
 * plain-C reference on odd shapes (lengths 1, 7, 129, 512; 1 to 16 heads;
 * hidden 32 to 1024), in fp16 and bf16, tolerance absolute + relative x
 * |reference|.  The references take the same rounded inputs the device
 * gets and compute in double, so the tolerances only cover the device's
 * own roundings (fp32 sums, the output's rounding, P rounded for P V).
 *
 * Built twice from the same source: with g++ against the CPU execution
 * harness (make test) and with nvcc for a GPU (test/gpu/run.sh).  The
 * shape grid is sampled: every length, head count and width occurs, not
 * every combination (the harness runs a GPU thread as a fiber).  Built
 * with FB_TEST_QUICK (the negative control, make test) only the LayerNorm
 * tests run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.cuh"
#include "fb_test.h"

static unsigned rng = 12345u;

static float
frand(float scale)
{
	rng = rng * 1664525u + 1013904223u;
	return ((float) (rng >> 8) / 16777216.0f * 2.0f - 1.0f) * scale;
}

/* Host copies of T values and their exact fp32 values. */
template <typename T> static T to_t(float f);
template <> __half
to_t<__half>(float f)
{
	return __float2half_rn(f);
}
template <> __nv_bfloat16
to_t<__nv_bfloat16>(float f)
{
	return __float2bfloat16_rn(f);
}
static float
from_t(__half h)
{
	return __half2float(h);
}
static float
from_t(__nv_bfloat16 h)
{
	return __bfloat162float(h);
}

template <typename T> static const char *type_name();
template <> const char *
type_name<__half>()
{
	return "fp16";
}
template <> const char *
type_name<__nv_bfloat16>()
{
	return "bf16";
}

template <typename T> static cudaDataType_t dtype_of();
template <> cudaDataType_t
dtype_of<__half>()
{
	return CUDA_R_16F;
}
template <> cudaDataType_t
dtype_of<__nv_bfloat16>()
{
	return CUDA_R_16BF;
}

/* the type's rounding unit: tolerances scale with it */
template <typename T> static double unit();
template <> double
unit<__half>()
{
	return 1.0 / 1024;
}
template <> double
unit<__nv_bfloat16>()
{
	return 1.0 / 128;
}

/* random T values; vals receives what they are exactly */
template <typename T>
static T *
rand_t(size_t n, float scale, float *vals)
{
	T		   *h = (T *) malloc(sizeof(T) * (n ? n : 1));

	for (size_t i = 0; i < n; i++)
	{
		h[i] = to_t<T>(frand(scale));
		vals[i] = from_t(h[i]);
	}
	return h;
}

static void *
to_device(const void *h, size_t bytes)
{
	void	   *d = NULL;

	if (cudaMalloc(&d, bytes ? bytes : 1) != cudaSuccess)
		return NULL;
	if (bytes && h != NULL)
		cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
	return d;
}

static void
from_device(void *h, const void *d, size_t bytes)
{
	cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
}

/* worst |a - ref| / (atol + rtol |ref|); <= 1 passes, NaN fails */
static double
worst_err(const float *a, const double *ref, size_t n, double atol, double rtol)
{
	double		worst = 0.0;

	for (size_t i = 0; i < n; i++)
	{
		double		e = fabs((double) a[i] - ref[i]) / (atol + rtol * fabs(ref[i]));

		if (!(e <= worst))
			worst = isnan(e) ? INFINITY : e;
	}
	return worst;
}

template <typename T>
static void
out_to_float(const T *h, size_t n, float *f)
{
	for (size_t i = 0; i < n; i++)
		f[i] = from_t(h[i]);
}

#define SYNC_OK(what) CHECK(cudaDeviceSynchronize() == cudaSuccess, "%s: %s", what, \
							cudaGetErrorString(cudaGetLastError()))

/* ---------------------------------------------------------------------
 * LayerNorm kernels
 * --------------------------------------------------------------------- */
static void
layernorm_ref(const double *v, int C, const float *g, const float *b, double eps, double *out)
{
	double		mean = 0.0,
				var = 0.0;

	for (int c = 0; c < C; c++)
		mean += v[c];
	mean /= C;
	for (int c = 0; c < C; c++)
		var += (v[c] - mean) * (v[c] - mean);
	var /= C;
	for (int c = 0; c < C; c++)
		out[c] = (v[c] - mean) / sqrt(var + eps) * g[c] + b[c];
}

template <typename T>
static void
test_bias_residual_layernorm(int rows, int C)
{
	size_t		n = (size_t) rows * C;
	float	   *yv = (float *) malloc(sizeof(float) * n),
			   *rv = (float *) malloc(sizeof(float) * n),
			   *g = (float *) malloc(sizeof(float) * C),
			   *b = (float *) malloc(sizeof(float) * C),
			   *bias = (float *) malloc(sizeof(float) * C),
			   *got = (float *) malloc(sizeof(float) * n);
	double	   *ref = (double *) malloc(sizeof(double) * n),
			   *v = (double *) malloc(sizeof(double) * C);
	T		   *yh = rand_t<T>(n, 3.0f, yv),
			   *rh = rand_t<T>(n, 1.0f, rv),
			   *oh = (T *) malloc(sizeof(T) * n);
	void	   *dy,
			   *dr,
			   *dg,
			   *db,
			   *dbias,
			   *dflag;
	unsigned	flag = 0;

	for (int c = 0; c < C; c++)
	{
		g[c] = 1.0f + frand(0.5f);
		b[c] = frand(0.5f);
		bias[c] = frand(1.0f);
	}
	dy = to_device(yh, sizeof(T) * n);
	dr = to_device(rh, sizeof(T) * n);
	dg = to_device(g, sizeof(float) * C);
	db = to_device(b, sizeof(float) * C);
	dbias = to_device(bias, sizeof(float) * C);
	dflag = to_device(&flag, sizeof(flag));
	/* out = res: the in-place form the backend uses */
	CHECK(fb_cuda_bias_residual_layernorm<T>((const T *) dy, (const float *) dbias, (const T *) dr,
											 (const float *) dg, (const float *) db, rows, C,
											 1e-12f, (T *) dr, (unsigned *) dflag, 0) == cudaSuccess,
		  "launch");
	SYNC_OK("bias_residual_layernorm");
	from_device(oh, dr, sizeof(T) * n);
	from_device(&flag, dflag, sizeof(flag));
	out_to_float(oh, n, got);
	for (int r = 0; r < rows; r++)
	{
		for (int c = 0; c < C; c++)
			v[c] = (double) yv[(size_t) r * C + c] + bias[c] + rv[(size_t) r * C + c];
		layernorm_ref(v, C, g, b, 1e-12, ref + (size_t) r * C);
	}
	{
		double		e = worst_err(got, ref, n, 2 * unit<T>(), 2 * unit<T>());

		CHECK(e <= 1.0, "bias_residual_layernorm %s rows %d C %d: error %.3g of tolerance",
			  type_name<T>(), rows, C, e);
		CHECK(flag == 0, "finite outputs flagged non-finite");
	}
	cudaFree(dy);
	cudaFree(dr);
	cudaFree(dg);
	cudaFree(db);
	cudaFree(dbias);
	cudaFree(dflag);
	free(yv);
	free(rv);
	free(g);
	free(b);
	free(bias);
	free(got);
	free(ref);
	free(v);
	free(yh);
	free(rh);
	free(oh);
}

/* an overflowing input is flagged */
template <typename T>
static void
test_layernorm_nonfinite(void)
{
	int			C = 64;
	T			y[64],
				r[64];
	float		g[64],
				b[64],
				bias[64];
	void	   *dy,
			   *dr,
			   *dg,
			   *db,
			   *dbias,
			   *dflag;
	unsigned	flag = 0;

	for (int c = 0; c < C; c++)
	{
		y[c] = to_t<T>(c == 5 ? INFINITY : 1.0f);
		r[c] = to_t<T>(0.5f);
		g[c] = 1.0f;
		b[c] = 0.0f;
		bias[c] = 0.0f;
	}
	dy = to_device(y, sizeof(y));
	dr = to_device(r, sizeof(r));
	dg = to_device(g, sizeof(g));
	db = to_device(b, sizeof(b));
	dbias = to_device(bias, sizeof(bias));
	dflag = to_device(&flag, sizeof(flag));
	fb_cuda_bias_residual_layernorm<T>((const T *) dy, (const float *) dbias, (const T *) dr,
									   (const float *) dg, (const float *) db, 1, C, 1e-12f,
									   (T *) dr, (unsigned *) dflag, 0);
	SYNC_OK("layernorm non-finite");
	from_device(&flag, dflag, sizeof(flag));
	CHECK(flag == 1, "%s: a non-finite row was not flagged", type_name<T>());
	cudaFree(dy);
	cudaFree(dr);
	cudaFree(dg);
	cudaFree(db);
	cudaFree(dbias);
	cudaFree(dflag);
}

template <typename T>
static void
test_embed_layernorm(int rows, int E)
{
	int			V = 50,
				P = 600;
	float	   *wv = (float *) malloc(sizeof(float) * V * E),
			   *pv = (float *) malloc(sizeof(float) * P * E),
			   *tv = (float *) malloc(sizeof(float) * E),
			   *g = (float *) malloc(sizeof(float) * E),
			   *b = (float *) malloc(sizeof(float) * E),
			   *got = (float *) malloc(sizeof(float) * rows * E);
	double	   *ref = (double *) malloc(sizeof(double) * rows * E),
			   *v = (double *) malloc(sizeof(double) * E);
	T		   *wh = rand_t<T>((size_t) V * E, 1.0f, wv),
			   *ph = rand_t<T>((size_t) P * E, 0.5f, pv),
			   *th = rand_t<T>((size_t) E, 0.2f, tv),
			   *oh = (T *) malloc(sizeof(T) * rows * E);
	int32_t    *ids = (int32_t *) malloc(sizeof(int32_t) * rows),
			   *pos = (int32_t *) malloc(sizeof(int32_t) * rows);
	void	   *dw,
			   *dp,
			   *dt,
			   *dg,
			   *db,
			   *dids,
			   *dpos,
			   *dout;

	for (int c = 0; c < E; c++)
	{
		g[c] = 1.0f + frand(0.5f);
		b[c] = frand(0.5f);
	}
	for (int r = 0; r < rows; r++)
	{
		ids[r] = (int32_t) ((unsigned) (frand(1.0f) * 1e6f) % (unsigned) V);
		pos[r] = r % P;
	}
	dw = to_device(wh, sizeof(T) * V * E);
	dp = to_device(ph, sizeof(T) * P * E);
	dt = to_device(th, sizeof(T) * E);
	dg = to_device(g, sizeof(float) * E);
	db = to_device(b, sizeof(float) * E);
	dids = to_device(ids, sizeof(int32_t) * rows);
	dpos = to_device(pos, sizeof(int32_t) * rows);
	dout = to_device(NULL, sizeof(T) * rows * E);
	CHECK(fb_cuda_embed_layernorm<T>((const int32_t *) dids, (const int32_t *) dpos, rows,
									 (const T *) dw, (const T *) dp, (const T *) dt,
									 (const float *) dg, (const float *) db, E, 1e-12f,
									 (T *) dout, 0) == cudaSuccess, "launch");
	SYNC_OK("embed_layernorm");
	from_device(oh, dout, sizeof(T) * rows * E);
	out_to_float(oh, (size_t) rows * E, got);
	for (int r = 0; r < rows; r++)
	{
		for (int c = 0; c < E; c++)
			v[c] = (double) wv[(size_t) ids[r] * E + c] + pv[(size_t) pos[r] * E + c] + tv[c];
		layernorm_ref(v, E, g, b, 1e-12, ref + (size_t) r * E);
	}
	{
		double		e = worst_err(got, ref, (size_t) rows * E, 2 * unit<T>(), 2 * unit<T>());

		CHECK(e <= 1.0, "embed_layernorm %s rows %d E %d: error %.3g of tolerance",
			  type_name<T>(), rows, E, e);
	}
	cudaFree(dw);
	cudaFree(dp);
	cudaFree(dt);
	cudaFree(dg);
	cudaFree(db);
	cudaFree(dids);
	cudaFree(dpos);
	cudaFree(dout);
	free(wv);
	free(pv);
	free(tv);
	free(g);
	free(b);
	free(got);
	free(ref);
	free(v);
	free(wh);
	free(ph);
	free(th);
	free(oh);
	free(ids);
	free(pos);
}

/* ---------------------------------------------------------------------
 * bias + activation
 * --------------------------------------------------------------------- */
static double
act_ref(double x, int act)
{
	switch (act)
	{
		case FB_CUDA_GELU_ERF:
			return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
		case FB_CUDA_GELU_TANH:
			return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
		case FB_CUDA_RELU:
			return x > 0 ? x : 0;
		case FB_CUDA_TANH:
			return tanh(x);
	}
	return x;
}

template <typename T>
static void
test_bias_act(int rows, int C, int act)
{
	size_t		n = (size_t) rows * C;
	float	   *yv = (float *) malloc(sizeof(float) * n),
			   *bias = (float *) malloc(sizeof(float) * C),
			   *got = (float *) malloc(sizeof(float) * n);
	double	   *ref = (double *) malloc(sizeof(double) * n);
	T		   *yh = rand_t<T>(n, 4.0f, yv);
	void	   *dy,
			   *dbias;

	for (int c = 0; c < C; c++)
		bias[c] = frand(1.0f);
	dy = to_device(yh, sizeof(T) * n);
	dbias = to_device(bias, sizeof(float) * C);
	CHECK(fb_cuda_bias_act<T>((T *) dy, (const float *) dbias, (size_t) rows, C, act, 0) ==
		  cudaSuccess, "launch");
	SYNC_OK("bias_act");
	from_device(yh, dy, sizeof(T) * n);
	out_to_float(yh, n, got);
	for (size_t i = 0; i < n; i++)
		ref[i] = act_ref((double) yv[i] + bias[i % C], act);
	{
		double		e = worst_err(got, ref, n, unit<T>(), unit<T>());

		CHECK(e <= 1.0, "bias_act %s act %d rows %d C %d: error %.3g of tolerance",
			  type_name<T>(), act, rows, C, e);
	}
	cudaFree(dy);
	cudaFree(dbias);
	free(yv);
	free(bias);
	free(got);
	free(ref);
	free(yh);
}

/* ---------------------------------------------------------------------
 * Attention: both variants against softmax(Q K^T / sqrt(dh)) V in double
 * --------------------------------------------------------------------- */
typedef struct attn_case
{
	int			n_seq;
	const int  *lens;
	int			H,
				n_heads;
	int			cls_only;
} attn_case;

/* the batch's tiles and, for the GEMM variant, one bucket per length
 * (each sequence padded to a multiple of 16) */
template <typename T>
static void
run_attention(const attn_case *c, bool fused)
{
	int			n = c->n_seq,
				H = c->H,
				nh = c->n_heads,
				dh = H / nh;
	size_t		T_rows = 0;
	int32_t    *start = (int32_t *) malloc(sizeof(int32_t) * n),
			   *len = (int32_t *) malloc(sizeof(int32_t) * n);
	float	   *qv,
			   *got;
	double	   *ref;
	T		   *qh,
			   *oh;
	size_t		out_rows;
	void	   *dqkv,
			   *dctx,
			   *dstart,
			   *dlen;
	fb_cuda_attn a;
	cudaError_t e = cudaSuccess;

	for (int i = 0; i < n; i++)
	{
		start[i] = (int32_t) T_rows;
		len[i] = c->lens[i];
		T_rows += (size_t) c->lens[i];
	}
	out_rows = c->cls_only ? (size_t) n : T_rows;
	/* qkv gets slack rows, as in the backend (zero: the GEMM path
	 * multiplies them by zero probabilities) */
	qv = (float *) malloc(sizeof(float) * (T_rows + 512) * 3 * H);
	qh = rand_t<T>(T_rows * 3 * H, 2.0f, qv);
	qh = (T *) realloc(qh, sizeof(T) * (T_rows + 512) * 3 * H);
	for (size_t i = T_rows * 3 * H; i < (T_rows + 512) * 3 * H; i++)
		qh[i] = to_t<T>(0.0f);
	oh = (T *) malloc(sizeof(T) * out_rows * H);
	got = (float *) malloc(sizeof(float) * out_rows * H);
	ref = (double *) malloc(sizeof(double) * out_rows * H);
	dqkv = to_device(qh, sizeof(T) * (T_rows + 512) * 3 * H);
	dctx = to_device(NULL, sizeof(T) * out_rows * H);
	dstart = to_device(start, sizeof(int32_t) * n);
	dlen = to_device(len, sizeof(int32_t) * n);
	memset(&a, 0, sizeof(a));
	a.n_seq = n;
	a.seq_start = (const int32_t *) dstart;
	a.seq_len = (const int32_t *) dlen;
	a.H = H;
	a.n_heads = nh;
	a.cls_only = c->cls_only;

	if (fused)
	{
		int			nt = 0;
		int32_t    *ts,
				   *tq;
		void	   *dts,
				   *dtq;

		for (int i = 0; i < n; i++)
			nt += c->cls_only ? 1 : (len[i] + FB_ATTN_QROWS - 1) / FB_ATTN_QROWS;
		ts = (int32_t *) malloc(sizeof(int32_t) * nt);
		tq = (int32_t *) malloc(sizeof(int32_t) * nt);
		nt = 0;
		for (int i = 0; i < n; i++)
			for (int q0 = 0; q0 < (c->cls_only ? 1 : len[i]); q0 += FB_ATTN_QROWS, nt++)
			{
				ts[nt] = i;
				tq[nt] = q0;
			}
		dts = to_device(ts, sizeof(int32_t) * nt);
		dtq = to_device(tq, sizeof(int32_t) * nt);
		a.n_tiles = nt;
		a.tile_seq = (const int32_t *) dts;
		a.tile_q0 = (const int32_t *) dtq;
		e = fb_cuda_attention_fused<T>((const T *) dqkv, (T *) dctx, &a, dh, 0);
		SYNC_OK("fused attention");
		cudaFree(dts);
		cudaFree(dtq);
		free(ts);
		free(tq);
	}
	else
	{
		cublasHandle_t blas;

		cublasCreate(&blas);
		/* one bucket per sequence: padded to a multiple of 16 */
		for (int i = 0; i < n && e == cudaSuccess; i++)
		{
			int			Lb = (len[i] + 15) & ~15,
						Lq = c->cls_only ? 1 : Lb;
			void	   *ptr_h[6 * 16];
			int32_t		iseq[16],
						ihead[16];
			void	   *dptr,
					   *discr,
					   *dihd,
					   *scores,
					   *probs,
					   *outs;
			fb_cuda_attn_bucket bk;

			cudaMalloc(&scores, sizeof(float) * nh * Lq * Lb);
			cudaMalloc(&probs, sizeof(T) * nh * Lq * Lb);
			cudaMalloc(&outs, sizeof(T) * nh * Lq * dh);
			for (int h = 0; h < nh; h++)
			{
				char	   *base = (char *) dqkv + ((size_t) start[i] * 3 * H + (size_t) h * dh) * sizeof(T);

				ptr_h[0 * nh + h] = base;
				ptr_h[1 * nh + h] = base + H * sizeof(T);
				ptr_h[2 * nh + h] = base + 2 * H * sizeof(T);
				ptr_h[3 * nh + h] = (char *) scores + sizeof(float) * h * Lq * Lb;
				ptr_h[4 * nh + h] = (char *) probs + sizeof(T) * h * Lq * Lb;
				ptr_h[5 * nh + h] = (char *) outs + sizeof(T) * h * Lq * dh;
				iseq[h] = i;
				ihead[h] = h;
			}
			dptr = to_device(ptr_h, sizeof(void *) * 6 * nh);
			discr = to_device(iseq, sizeof(int32_t) * nh);
			dihd = to_device(ihead, sizeof(int32_t) * nh);
			bk.Lb = Lb;
			bk.Lq = Lq;
			bk.n_items = nh;
			bk.q = (const void *const *) dptr;
			bk.k = (const void *const *) dptr + nh;
			bk.v = (const void *const *) dptr + 2 * nh;
			bk.scores = (void *const *) dptr + 3 * nh;
			bk.probs = (void *const *) dptr + 4 * nh;
			bk.probs_c = (const void *const *) dptr + 4 * nh;
			bk.out = (void *const *) dptr + 5 * nh;
			bk.item_seq = (const int32_t *) discr;
			bk.item_head = (const int32_t *) dihd;
			bk.scores_base = (float *) scores;
			bk.probs_base = probs;
			bk.out_base = outs;
			bk.block_stride = (size_t) Lq * Lb;
			bk.out_stride = (size_t) Lq * dh;
			e = fb_cuda_attention_gemm<T>(blas, (T *) dctx, &a, dh, &bk, 0);
			SYNC_OK("GEMM attention");
			cudaFree(dptr);
			cudaFree(discr);
			cudaFree(dihd);
			cudaFree(scores);
			cudaFree(probs);
			cudaFree(outs);
		}
		cublasDestroy(blas);
	}
	CHECK(e == cudaSuccess, "attention launch: %s", cudaGetErrorString(e));
	from_device(oh, dctx, sizeof(T) * out_rows * H);
	out_to_float(oh, out_rows * H, got);

	/* reference */
	for (int i = 0; i < n; i++)
	{
		int			L = len[i],
					nq = c->cls_only ? 1 : L;
		double	   *s = (double *) malloc(sizeof(double) * L);

		for (int h = 0; h < nh; h++)
			for (int q = 0; q < nq; q++)
			{
				const float *qr = qv + ((size_t) (start[i] + q) * 3 * H) + (size_t) h * dh;
				double		mx = -INFINITY,
							sum = 0.0;
				size_t		orow = c->cls_only ? (size_t) i : (size_t) (start[i] + q);

				for (int k = 0; k < L; k++)
				{
					const float *kr = qv + ((size_t) (start[i] + k) * 3 * H) + H + (size_t) h * dh;
					double		d = 0.0;

					for (int x = 0; x < dh; x++)
						d += (double) qr[x] * kr[x];
					s[k] = d / sqrt((double) dh);
					mx = s[k] > mx ? s[k] : mx;
				}
				for (int k = 0; k < L; k++)
				{
					s[k] = exp(s[k] - mx);
					sum += s[k];
				}
				for (int x = 0; x < dh; x++)
				{
					double		o = 0.0;

					for (int k = 0; k < L; k++)
						o += s[k] * qv[(size_t) (start[i] + k) * 3 * H + 2 * H + (size_t) h * dh + x];
					ref[orow * H + (size_t) h * dh + x] = o / sum;
				}
			}
		free(s);
	}
	{
		/* P is rounded to T before P V: a relative error of one unit on
		 * each weight, averaged over the keys */
		double		err = worst_err(got, ref, out_rows * H, 4 * unit<T>(), 4 * unit<T>());

		CHECK(err <= 1.0, "%s attention %s: %d seqs (first %d tokens), H %d, %d heads%s: error %.3g of tolerance",
			  fused ? "fused" : "GEMM", type_name<T>(), n, c->lens[0], H, nh,
			  c->cls_only ? ", [CLS] only" : "", err);
	}
	cudaFree(dqkv);
	cudaFree(dctx);
	cudaFree(dstart);
	cudaFree(dlen);
	free(start);
	free(len);
	free(qv);
	free(qh);
	free(oh);
	free(got);
	free(ref);
}

/* ---------------------------------------------------------------------
 * Heads and the linear layers
 * --------------------------------------------------------------------- */
template <typename T>
static void
test_heads(int n, int C, int NL)
{
	int			lens[5] = {1, 7, 3, 12, 2};
	int32_t		start[5],
				len[5],
				rows[5];
	size_t		T_rows = 0;
	float	   *xv,
			   *W = (float *) malloc(sizeof(float) * NL * C),
			   *b = (float *) malloc(sizeof(float) * NL),
			   *got;
	double	   *ref;
	T		   *xh,
			   *gh;
	void	   *dx,
			   *dW,
			   *db,
			   *dstart,
			   *dlen,
			   *drows,
			   *dout,
			   *dg;

	n = n > 5 ? 5 : n;
	for (int i = 0; i < n; i++)
	{
		start[i] = (int32_t) T_rows;
		len[i] = lens[i];
		rows[i] = start[i];
		T_rows += (size_t) lens[i];
	}
	xv = (float *) malloc(sizeof(float) * T_rows * C);
	xh = rand_t<T>(T_rows * C, 2.0f, xv);
	gh = (T *) malloc(sizeof(T) * n * C);
	got = (float *) malloc(sizeof(float) * T_rows * (C > NL ? C : NL));
	ref = (double *) malloc(sizeof(double) * T_rows * (C > NL ? C : NL));
	for (int i = 0; i < NL * C; i++)
		W[i] = frand(0.5f);
	for (int i = 0; i < NL; i++)
		b[i] = frand(0.5f);
	dx = to_device(xh, sizeof(T) * T_rows * C);
	dW = to_device(W, sizeof(float) * NL * C);
	db = to_device(b, sizeof(float) * NL);
	dstart = to_device(start, sizeof(start));
	dlen = to_device(len, sizeof(len));
	drows = to_device(rows, sizeof(rows));
	dout = to_device(NULL, sizeof(float) * T_rows * (C > NL ? C : NL));
	dg = to_device(NULL, sizeof(T) * n * C);

	/* mean of each sequence's rows */
	fb_cuda_mean_rows<T>((const T *) dx, (const int32_t *) dstart, (const int32_t *) dlen, n, C,
						 (float *) dout, 0);
	SYNC_OK("mean_rows");
	from_device(got, dout, sizeof(float) * n * C);
	for (int i = 0; i < n; i++)
		for (int c = 0; c < C; c++)
		{
			double		s = 0.0;

			for (int t = 0; t < len[i]; t++)
				s += xv[(size_t) (start[i] + t) * C + c];
			ref[(size_t) i * C + c] = s / len[i];
		}
	CHECK(worst_err(got, ref, (size_t) n * C, 1e-5, 1e-5) <= 1.0, "mean_rows %s C %d",
		  type_name<T>(), C);

	/* gather the first rows, then to fp32 */
	fb_cuda_gather_rows<T>((const T *) dx, (const int32_t *) drows, n, C, (T *) dg, 0);
	fb_cuda_to_f32<T>((const T *) dg, (size_t) n * C, (float *) dout, 0);
	SYNC_OK("gather_rows + to_f32");
	from_device(got, dout, sizeof(float) * n * C);
	for (int i = 0; i < n; i++)
		for (int c = 0; c < C; c++)
			ref[(size_t) i * C + c] = xv[(size_t) start[i] * C + c];
	CHECK(worst_err(got, ref, (size_t) n * C, 0.0, 1e-7) <= 1.0, "gather_rows %s C %d",
		  type_name<T>(), C);

	/* token logits: every row */
	fb_cuda_linear_rows<T>((const T *) dx, (int) T_rows, C, (const float *) dW,
						   (const float *) db, NL, (float *) dout, 0);
	SYNC_OK("linear_rows");
	from_device(got, dout, sizeof(float) * T_rows * NL);
	for (size_t r = 0; r < T_rows; r++)
		for (int j = 0; j < NL; j++)
		{
			double		s = b[j];

			for (int k = 0; k < C; k++)
				s += (double) xv[r * C + k] * W[(size_t) j * C + k];
			ref[r * NL + j] = s;
		}
	CHECK(worst_err(got, ref, T_rows * NL, 1e-4, 1e-4) <= 1.0, "linear_rows %s C %d NL %d",
		  type_name<T>(), C, NL);

	cudaFree(dx);
	cudaFree(dW);
	cudaFree(db);
	cudaFree(dstart);
	cudaFree(dlen);
	cudaFree(drows);
	cudaFree(dout);
	cudaFree(dg);
	free(xv);
	free(W);
	free(b);
	free(got);
	free(ref);
	free(xh);
	free(gh);
}

template <typename T>
static void
test_linear(fb_cuda_gemm *g, int rows, int K, int N, bool bias, bool f32_out)
{
	cudaDataType_t in = dtype_of<T>();
	float	   *xv = (float *) malloc(sizeof(float) * rows * K),
			   *wv = (float *) malloc(sizeof(float) * K * N),
			   *bv = (float *) malloc(sizeof(float) * N),
			   *got = (float *) malloc(sizeof(float) * rows * N);
	double	   *ref = (double *) malloc(sizeof(double) * rows * N);
	T		   *xh = rand_t<T>((size_t) rows * K, 1.0f, xv),
			   *wh = rand_t<T>((size_t) K * N, 0.1f, wv),
			   *bh = rand_t<T>((size_t) N, 1.0f, bv),
			   *yh = (T *) malloc(sizeof(T) * rows * N);
	void	   *dx = to_device(xh, sizeof(T) * rows * K),
			   *dw = to_device(wh, sizeof(T) * K * N),
			   *db = to_device(bh, sizeof(T) * N),
			   *dy = to_device(NULL, (f32_out ? 4 : 2) * (size_t) rows * N);
	cublasStatus_t st;

	st = fb_cuda_linear(g, in, dx, rows, K, dw, N, bias ? db : NULL, dy,
						f32_out ? CUDA_R_32F : in);
	CHECK(st == CUBLAS_STATUS_SUCCESS, "fb_cuda_linear: status %d", (int) st);
	SYNC_OK("linear");
	if (f32_out)
		from_device(got, dy, sizeof(float) * rows * N);
	else
	{
		from_device(yh, dy, sizeof(T) * rows * N);
		out_to_float(yh, (size_t) rows * N, got);
	}
	for (int r = 0; r < rows; r++)
		for (int n = 0; n < N; n++)
		{
			double		s = bias ? bv[n] : 0.0;

			for (int k = 0; k < K; k++)
				s += (double) xv[(size_t) r * K + k] * wv[(size_t) k * N + n];
			ref[(size_t) r * N + n] = s;
		}
	{
		/* fp32 sums of K products: about sqrt(K) ulps of fp32 */
		double		atol = f32_out ? 1e-4 * sqrt((double) K) * 0.1 : unit<T>(),
					rtol = f32_out ? 1e-5 : unit<T>();
		double		e = worst_err(got, ref, (size_t) rows * N, atol, rtol);

		CHECK(e <= 1.0, "linear %s rows %d K %d N %d%s%s: error %.3g of tolerance", type_name<T>(),
			  rows, K, N, bias ? " +bias" : "", f32_out ? " fp32 out" : "", e);
	}
	cudaFree(dx);
	cudaFree(dw);
	cudaFree(db);
	cudaFree(dy);
	free(xv);
	free(wv);
	free(bv);
	free(got);
	free(ref);
	free(xh);
	free(wh);
	free(bh);
	free(yh);
}

template <typename T>
static void
test_type(bool quick)
{
	static const int lens[] = {1, 7, 129, 512};
	static const int widths[] = {32, 96, 256, 768, 1024};

	/* LayerNorm: every length with a width; every width with a length */
	for (int i = 0; i < 4; i++)
		test_bias_residual_layernorm<T>(lens[i], widths[(i * 2 + 1) % 5]);
	for (int i = 0; i < 5; i++)
		test_bias_residual_layernorm<T>(lens[(i + 1) % 4] % 130, widths[i]);
	test_layernorm_nonfinite<T>();
	test_embed_layernorm<T>(7, 32);
	test_embed_layernorm<T>(129, 1024);
	if (quick)
		return;
	for (int act = 0; act < 4; act++)
		test_bias_act<T>(lens[act % 3], widths[act + 1], act);

	{
		/* attention: lengths 1, 7, 129, 512 alone and packed together;
		 * 1 to 16 heads; head widths 8 to 128 (fused) and 256 (GEMM only) */
		static const int one[] = {1};
		static const int seven[] = {7};
		static const int mixed[] = {7, 1, 129, 33};
		static const int long1[] = {512};
		static const int longmix[] = {129, 512};
		attn_case	cases[] = {
			{1, one, 32, 4, 0},
			{1, seven, 32, 1, 0},
			{4, mixed, 64, 8, 0},
			{4, mixed, 96, 3, 0},
			{4, mixed, 128, 16, 1},
			{1, long1, 128, 2, 0},
			{2, longmix, 256, 4, 1},
			{1, seven, 256, 2, 0},
			{2, longmix, 64, 1, 0},
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		{
			int			dh = cases[i].H / cases[i].n_heads;

			if (dh <= FB_ATTN_FUSED_MAX_DH)
				run_attention<T>(&cases[i], true);
			/* the GEMM path is the slower one to emulate: a subset */
			if (i % 2 == 0 || dh > FB_ATTN_FUSED_MAX_DH)
				run_attention<T>(&cases[i], false);
		}
	}
	test_heads<T>(5, 96, 7);
	test_heads<T>(1, 32, 1);
	{
		fb_cuda_gemm *g;
		void	   *ws;

		cudaMalloc(&ws, 1 << 20);
		fb_cuda_gemm_create(&g, 0, ws, 1 << 20);
		test_linear<T>(g, 1, 32, 96, true, false);
		test_linear<T>(g, 7, 256, 768, true, false);
		test_linear<T>(g, 129, 1024, 32, false, false);
		test_linear<T>(g, 7, 96, 1024, false, true);
		fb_cuda_gemm_destroy(g);
		cudaFree(ws);
	}
}

#ifndef __CUDACC__
extern "C" uint16_t fbh_f32_to_f16_soft(float f);

/* The harness's fp16 rounding (F16C where the CPU has it) against its
 * portable reference and a few exact values, on every class of input. */
static void
test_harness_half(void)
{
	int			bad = 0;

	for (uint32_t i = 0; i < (1u << 24); i++)
	{
		uint32_t	bits = i * 257u + (i >> 9);	/* all exponents, varied mantissas */
		float		f;
		uint16_t	a,
					b;

		memcpy(&f, &bits, 4);
		a = __float2half_rn(f).bits;
		b = fbh_f32_to_f16_soft(f);
		if (isnan(f) ? !((a & 0x7c00) == 0x7c00 && (a & 0x3ff) && (b & 0x7c00) == 0x7c00 && (b & 0x3ff))
			: a != b)
			bad++;
	}
	CHECK(bad == 0, "fp16 rounding: %d values differ from the reference", bad);
	CHECK(__float2half_rn(1.0f + 1.0f / 2048).bits == 0x3c00, "ties to even (down)");
	CHECK(__float2half_rn(1.0f + 3.0f / 2048).bits == 0x3c02, "ties to even (up)");
	CHECK(__float2half_rn(65520.0f).bits == 0x7c00, "overflow to infinity");
	CHECK(__float2half_rn(5.96046448e-08f).bits == 0x0001, "smallest subnormal");
	CHECK(__half2float(__float2half_rn(-2.5f)) == -2.5f, "round trip");
	CHECK(__float2bfloat16_rn(1.0f + 1.0f / 256).bits == 0x3f80, "bf16 ties to even");
}
#endif

int
main(void)
{
#ifdef FB_TEST_QUICK
	bool		quick = true;
#else
	bool		quick = false;
#endif
	int			n = 0;

	if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0)
	{
		printf("cuda_kernels: no CUDA device (skipped)\ncuda_kernels: 0 passed, 0 failed\n");
		return 0;
	}
	CHECK(fb_cuda_attention_fused_setup() == cudaSuccess, "fused attention setup");
#ifndef __CUDACC__
	test_harness_half();
#endif
	test_type<__half>(quick);
	test_type<__nv_bfloat16>(quick);
	return fbt_finish("cuda_kernels");
}
